/* agent/metrics.c -- GET /metrics in the Prometheus text format (see metrics.h).
 *
 * libmicrohttpd calls the handler at least twice per request; answering on the first call
 * makes it close the connection, so the first call only marks the request (as the
 * controllers' ctl_http.c). */
#include "agent/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/logs.h"
#include "agent/stats.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct agent_metrics {
    struct MHD_Daemon *mhd;
    struct logs *l;
    struct stats *s;
};

static int marker;

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

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body,
                              const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct agent_metrics *m = cls;

    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, xstrdup("method not allowed\n"),
                      "text/plain");
    if (strcmp(url, "/metrics") == 0)
        return answer(conn, MHD_HTTP_OK, agent_metrics_render(m->l, m->s),
                      "text/plain; version=0.0.4; charset=utf-8");
    if (strcmp(url, "/healthz") == 0)
        return answer(conn, MHD_HTTP_OK, xstrdup("ok\n"), "text/plain");
    return answer(conn, MHD_HTTP_NOT_FOUND, xstrdup("not found: try /metrics\n"), "text/plain");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("msg=\"metrics http: %s\"", msg);
}

struct agent_metrics *agent_metrics_start(const char *addr_port, struct logs *l, struct stats *s,
                                          struct err *e)
{
    struct sockaddr_in sin;
    const char *colon = addr_port ? strrchr(addr_port, ':') : NULL;
    char host[64];
    char *end;
    long port;
    struct agent_metrics *m;

    if (!colon || (size_t)(colon - addr_port) >= sizeof(host) || colon == addr_port) {
        err_set(e, ST_INVALID, "bad metrics address '%s': want ADDR:PORT", addr_port ? addr_port : "");
        return NULL;
    }
    memcpy(host, addr_port, (size_t)(colon - addr_port));
    host[colon - addr_port] = '\0';
    port = strtol(colon + 1, &end, 10);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        err_set(e, ST_INVALID, "bad metrics address '%s': want IPv4:PORT", addr_port);
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    m->l = l;
    m->s = s;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &sin},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 16, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              on_request, m, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!m->mhd) {
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
    MHD_stop_daemon(m->mhd);
    free(m);
}
