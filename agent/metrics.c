/* agent/metrics.c -- GET /metrics in the Prometheus text format (see metrics.h), served by
 * the shared small listener (common/httpmini.h). */
#include "agent/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/logs.h"
#include "agent/stats.h"
#include "common/buf.h"
#include "common/httpmini.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct agent_metrics {
    struct httpmini *http;
    struct logs *l;
    struct stats *s;
};

static void metric(struct buf *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    if (buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v) !=
        ST_OK)
        BUG_ON(1);
}

static unsigned long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * (unsigned long long)sysconf(_SC_PAGESIZE);
}

char *agent_metrics_render(struct logs *l, struct stats *s)
{
    struct buf b = BUF_INIT;

    if (l) {
        struct logs_counters n;
        logs_counters(l, &n);
        metric(&b, "kontena_agent_log_lines_read_total", "counter",
               "Log lines read from Docker.", n.lines_read);
        metric(&b, "kontena_agent_log_lines_skipped_total", "counter",
               "Log lines read again after a reconnect and skipped (the master had them).",
               n.lines_skipped);
        metric(&b, "kontena_agent_log_lines_sent_total", "counter",
               "Log lines sent to the master in batches.", n.lines_sent);
        metric(&b, "kontena_agent_log_lines_acked_total", "counter",
               "Log lines the master acknowledged.", n.lines_acked);
        metric(&b, "kontena_agent_log_lines_cut_total", "counter",
               "Pieces of log lines longer than 16 KiB.", n.lines_cut);
        metric(&b, "kontena_agent_log_batches_sent_total", "counter",
               "Log batches sent to the master.", n.batches_sent);
        metric(&b, "kontena_agent_log_batches_acked_total", "counter",
               "Log batches the master acknowledged.", n.batches_acked);
        metric(&b, "kontena_agent_log_batches_failed_total", "counter",
               "Log batches refused or lost with the connection.", n.batches_failed);
        metric(&b, "kontena_agent_log_read_bytes_total", "counter",
               "Bytes of Docker log streams read.", n.bytes_read);
        metric(&b, "kontena_agent_log_pauses_total", "counter",
               "Times the log transfers were paused because the master was behind.", n.pauses);
        metric(&b, "kontena_agent_log_follows_started_total", "counter",
               "Docker log streams opened.", n.follows_started);
        metric(&b, "kontena_agent_log_follow_errors_total", "counter",
               "Docker log streams that ended with an error.", n.follow_errors);
        metric(&b, "kontena_agent_log_queued_lines", "gauge",
               "Log lines read and not yet acknowledged by the master.",
               n.queued_lines > 0 ? (unsigned long long)n.queued_lines : 0);
        metric(&b, "kontena_agent_log_containers_followed", "gauge",
               "Containers whose logs are being followed.",
               n.followed > 0 ? (unsigned long long)n.followed : 0);
        metric(&b, "kontena_agent_ws_links_total", "counter",
               "Registered connections to the master (the first one and every reconnect).",
               n.links);
    }
    if (s) {
        struct stats_counters c;
        stats_counters(s, &c);
        metric(&b, "kontena_agent_stats_container_samples_total", "counter",
               "Container statistics samples taken.", c.container_samples);
        metric(&b, "kontena_agent_stats_node_samples_total", "counter",
               "Node statistics samples taken.", c.node_samples);
        metric(&b, "kontena_agent_stats_errors_total", "counter",
               "Statistics samples that failed.", c.errors);
    }
    metric(&b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           rss_bytes());
    return buf_take(&b);
}

static void on_get(void *arg, const char *path, int *status, char **body,
                   const char **content_type)
{
    struct agent_metrics *m = arg;

    if (strcmp(path, "/metrics") == 0) {
        *body = agent_metrics_render(m->l, m->s);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(path, "/healthz") == 0) {
        *body = xstrdup("ok\n");
    } else {
        *status = 404;
        *body = xstrdup("not found: try /metrics\n");
    }
}

struct agent_metrics *agent_metrics_start(const char *addr_port, struct logs *l, struct stats *s,
                                          struct err *e)
{
    static const struct httpmini_opts opts = {.log_prefix = "metrics http", .conn_limit = 16};
    struct sockaddr_in sin;
    struct agent_metrics *m;

    if (httpmini_parse_addr(addr_port, &sin, e) != ST_OK) {
        err_wrap(e, "--metrics-listen");
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    m->l = l;
    m->s = s;
    m->http = httpmini_start(&sin, &opts, on_get, m, NULL);
    if (!m->http) {
        free(m);
        err_set(e, ST_IO, "cannot listen on %s for /metrics: address in use?", addr_port);
        return NULL;
    }
    return m;
}

void agent_metrics_stop(struct agent_metrics *m)
{
    if (!m)
        return;
    httpmini_stop(m->http);
    free(m);
}
