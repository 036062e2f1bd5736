/* apiserver/metrics.c -- the apiserver's Prometheus /metrics listener (--metrics-listen):
 * process counters (agents, HTTP answers by code, log lines, followers, forwarding, stats
 * samples) and the grids' latest container and node statistics read from etcd at each
 * scrape. Text format 0.0.4, one HELP/TYPE per family, every family's series together.
 * docs/internals/metrics.md.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/logstore.h"
#include "common/buf.h"
#include "common/httpmini.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

enum mtype { COUNTER, GAUGE };

struct family {
    const char *name, *help;
    enum mtype type;
    struct buf b;
};

enum {
    F_CPU, F_MEM, F_MEMLIM, F_RX, F_TX, F_NCPU, F_NMEM_TOTAL, F_NMEM_USED, F_NMEM_FREE,
    F_NMEM_CACHED, F_NLOAD1, F_NLOAD5, F_NLOAD15, F_NFS_TOTAL, F_NFS_USED, F_NFS_AVAIL,
    F_NSTATS,
};

static const struct {
    const char *name, *help;
    enum mtype type;
} stat_families[F_NSTATS] = {
    {"kontena_container_cpu_usage_percent", "CPU use of the container in percent of one core", GAUGE},
    {"kontena_container_memory_usage_bytes", "Memory used by the container", GAUGE},
    {"kontena_container_memory_limit_bytes", "Memory limit of the container", GAUGE},
    {"kontena_container_network_receive_bytes_total", "Bytes received by the container", COUNTER},
    {"kontena_container_network_transmit_bytes_total", "Bytes sent by the container", COUNTER},
    {"kontena_node_cpu_used_percent", "CPU use of the node in percent, summed over its cores", GAUGE},
    {"kontena_node_memory_size_bytes", "Memory of the node", GAUGE},
    {"kontena_node_memory_used_bytes", "Memory used on the node", GAUGE},
    {"kontena_node_memory_free_bytes", "Memory free on the node", GAUGE},
    {"kontena_node_memory_cached_bytes", "Memory used as cache on the node", GAUGE},
    {"kontena_node_load1", "Load average of the node over 1 minute", GAUGE},
    {"kontena_node_load5", "Load average of the node over 5 minutes", GAUGE},
    {"kontena_node_load15", "Load average of the node over 15 minutes", GAUGE},
    {"kontena_node_filesystem_size_bytes", "Size of the node's Docker filesystem", GAUGE},
    {"kontena_node_filesystem_used_bytes", "Bytes used on the node's Docker filesystem", GAUGE},
    {"kontena_node_filesystem_available_bytes", "Bytes available on the node's Docker filesystem", GAUGE},
};

/* A label value escaped as the text format wants (\\, \", \n). */
static void label(struct buf *b, const char *k, const char *v, int first)
{
    if (!first && buf_puts(b, ",") != ST_OK)
        return;
    if (buf_printf(b, "%s=\"", k) != ST_OK)
        return;
    for (const char *p = v ? v : ""; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if ((esc ? buf_puts(b, esc) : buf_append(b, p, 1)) != ST_OK)
            return;
    }
    if (buf_puts(b, "\"") != ST_OK)
        return;
}

static void sample(struct buf *b, const char *name, const char *labels, const json_t *v)
{
    if (!json_is_number(v))
        return;
    if (buf_printf(b, "%s{%s} %.17g\n", name, labels, json_number_value(v)) != ST_OK)
        return;
}

static void add_container(struct family *fam, const char *grid, const json_t *s)
{
    struct buf l = BUF_INIT;
    char inst[24] = "";
    const json_t *i = json_object_get(s, "instance");

    buf_init(&l, 4096);
    if (json_is_integer(i))
        snprintf(inst, sizeof(inst), "%lld", (long long)json_integer_value(i));
    label(&l, "grid", grid, 1);
    label(&l, "stack", jstr(s, "stack"), 0);
    label(&l, "service", jstr(s, "service"), 0);
    label(&l, "instance", inst, 0);
    label(&l, "node", jstr(s, "node"), 0);
    label(&l, "container", jstr(s, "name"), 0);
    if (l.len) {
        const json_t *cpu = json_object_get(s, "cpu"), *mem = json_object_get(s, "memory"),
                     *net = json_object_get(s, "network");
        sample(&fam[F_CPU].b, fam[F_CPU].name, l.ptr, json_object_get(cpu, "usage_pct"));
        sample(&fam[F_MEM].b, fam[F_MEM].name, l.ptr, json_object_get(mem, "usage"));
        sample(&fam[F_MEMLIM].b, fam[F_MEMLIM].name, l.ptr, json_object_get(mem, "limit"));
        sample(&fam[F_RX].b, fam[F_RX].name, l.ptr, json_object_get(net, "rx_bytes"));
        sample(&fam[F_TX].b, fam[F_TX].name, l.ptr, json_object_get(net, "tx_bytes"));
    }
    buf_release(&l);
}

static void add_node(struct family *fam, const char *grid, const char *node, const json_t *s)
{
    struct buf l = BUF_INIT;
    const json_t *mem = json_object_get(s, "memory"), *load = json_object_get(s, "load"), *f;
    size_t k;

    buf_init(&l, 4096);
    label(&l, "grid", grid, 1);
    label(&l, "node", node, 0);
    if (!l.len)
        goto out;
    sample(&fam[F_NCPU].b, fam[F_NCPU].name, l.ptr,
           json_object_get(json_object_get(s, "cpu"), "used_pct"));
    sample(&fam[F_NMEM_TOTAL].b, fam[F_NMEM_TOTAL].name, l.ptr, json_object_get(mem, "total"));
    sample(&fam[F_NMEM_USED].b, fam[F_NMEM_USED].name, l.ptr, json_object_get(mem, "used"));
    sample(&fam[F_NMEM_FREE].b, fam[F_NMEM_FREE].name, l.ptr, json_object_get(mem, "free"));
    sample(&fam[F_NMEM_CACHED].b, fam[F_NMEM_CACHED].name, l.ptr, json_object_get(mem, "cached"));
    sample(&fam[F_NLOAD1].b, fam[F_NLOAD1].name, l.ptr, json_object_get(load, "1m"));
    sample(&fam[F_NLOAD5].b, fam[F_NLOAD5].name, l.ptr, json_object_get(load, "5m"));
    sample(&fam[F_NLOAD15].b, fam[F_NLOAD15].name, l.ptr, json_object_get(load, "15m"));
    json_array_foreach(json_object_get(s, "filesystem"), k, f)
    {
        struct buf fl = BUF_INIT;
        buf_init(&fl, 4096);
        if (buf_append(&fl, l.ptr, l.len) == ST_OK && buf_puts(&fl, "") == ST_OK) {
            label(&fl, "mountpoint", jstr(f, "name"), 0);
            if (fl.len) {
                sample(&fam[F_NFS_TOTAL].b, fam[F_NFS_TOTAL].name, fl.ptr,
                       json_object_get(f, "total"));
                sample(&fam[F_NFS_USED].b, fam[F_NFS_USED].name, fl.ptr,
                       json_object_get(f, "used"));
                sample(&fam[F_NFS_AVAIL].b, fam[F_NFS_AVAIL].name, fl.ptr,
                       json_object_get(f, "available"));
            }
        }
        buf_release(&fl);
    }
out:
    buf_release(&l);
}

static void one(struct buf *b, const char *name, const char *help, enum mtype t, double v)
{
    if (buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
                   t == COUNTER ? "counter" : "gauge", name, v) != ST_OK)
        return;
}

static double u64(const uint64_t *p)
{
    return (double)__atomic_load_n(p, __ATOMIC_RELAXED);
}

static void process_metrics(struct buf *b)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char line[2048];
    long pages = 0, tps = sysconf(_SC_CLK_TCK), psz = sysconf(_SC_PAGESIZE);
    int fds = 0;
    DIR *d;
    struct dirent *de;

    if (f) {
        if (fgets(line, sizeof(line), f)) {
            char *p = strrchr(line, ')');
            unsigned long long ut = 0, st = 0, start = 0;
            long rss = 0;
            /* fields after ") ": state(3) ... utime(14) stime(15) ... starttime(22) rss(24) */
            if (p && sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                            "%*d %*d %*d %llu %*u %ld",
                            &ut, &st, &start, &rss) == 4) {
                FILE *u = fopen("/proc/uptime", "r");
                double up = 0;
                pages = rss;
                one(b, "process_cpu_seconds_total", "User and system CPU time spent in seconds",
                    COUNTER, (double)(ut + st) / (double)tps);
                if (u && fscanf(u, "%lf", &up) == 1) {
                    struct timespec now;
                    clock_gettime(CLOCK_REALTIME, &now);
                    one(b, "process_start_time_seconds",
                        "Start time of the process since the epoch in seconds", GAUGE,
                        (double)now.tv_sec - up + (double)start / (double)tps);
                }
                if (u)
                    fclose(u);
            }
        }
        fclose(f);
    }
    one(b, "process_resident_memory_bytes", "Resident memory size in bytes", GAUGE,
        (double)pages * (double)psz);
    d = opendir("/proc/self/fd");
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            fds++;
    if (d)
        closedir(d);
    one(b, "process_open_fds", "Number of open file descriptors", GAUGE, fds);
}

static char *render(struct api *a)
{
    struct buf b = BUF_INIT;
    struct family fam[F_NSTATS];
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    struct logstore_totals lt;
    struct err e = ERR_INIT;
    int stats_ok;

    buf_init(&b, 0);
    process_metrics(&b);
    one(&b, "kontena_apiserver_agents_connected", "Agents connected to this apiserver", GAUGE,
        (double)agentws_connected(__atomic_load_n(&a->agentws, __ATOMIC_ACQUIRE)));
    if (buf_puts(&b, "# HELP kontena_apiserver_http_requests_total HTTP requests answered, by "
                     "status code\n# TYPE kontena_apiserver_http_requests_total counter\n") ==
        ST_OK) {
        for (int c = 100; c < 600; c++) {
            uint64_t n = __atomic_load_n(&a->ctr.http_by_code[c], __ATOMIC_RELAXED);
            if (n && buf_printf(&b, "kontena_apiserver_http_requests_total{code=\"%d\"} %llu\n", c,
                                (unsigned long long)n) != ST_OK)
                break;
        }
    }
    one(&b, "kontena_apiserver_log_batches_total", "Log batches received from agents", COUNTER,
        u64(&a->ctr.log_batches));
    one(&b, "kontena_apiserver_log_lines_received_total", "Log lines received from agents",
        COUNTER, u64(&a->ctr.log_lines_received));
    one(&b, "kontena_apiserver_log_lines_stored_total", "Log lines stored in the log window",
        COUNTER, u64(&a->ctr.log_lines_stored));
    one(&b, "kontena_apiserver_log_lines_dropped_total",
        "Log lines not stored: sent twice or invalid", COUNTER, u64(&a->ctr.log_lines_dropped));
    one(&b, "kontena_apiserver_log_lines_forwarded_total", "Log lines sent to syslog servers",
        COUNTER, u64(&a->ctr.log_forwarded));
    one(&b, "kontena_apiserver_log_forward_dropped_total",
        "Log lines not forwarded because the forwarding queue was full", COUNTER,
        u64(&a->ctr.log_forward_dropped));
    one(&b, "kontena_apiserver_log_forward_errors_total",
        "Log lines that could not be sent to a syslog server", COUNTER,
        u64(&a->ctr.log_forward_errors));
    one(&b, "kontena_apiserver_log_followers", "Log follow streams open", GAUGE,
        u64(&a->ctr.followers));
    one(&b, "kontena_apiserver_log_follow_dropped_total",
        "Dropped markers sent to followers that fell out of the log window", COUNTER,
        u64(&a->ctr.follow_dropped_markers));
    logstore_totals(a->logs, &lt);
    one(&b, "kontena_apiserver_log_window_bytes", "Bytes held in the log windows of all grids",
        GAUGE, (double)lt.bytes);
    one(&b, "kontena_apiserver_log_segments_evicted_total",
        "Log segments deleted to keep the window size", COUNTER, (double)lt.evicted_segments);
    one(&b, "kontena_apiserver_stats_container_samples_total",
        "Container statistics samples written", COUNTER, u64(&a->ctr.stats_container_samples));
    one(&b, "kontena_apiserver_stats_node_samples_total", "Node statistics samples written",
        COUNTER, u64(&a->ctr.stats_node_samples));

    for (int i = 0; i < F_NSTATS; i++) {
        fam[i].name = stat_families[i].name;
        fam[i].help = stat_families[i].help;
        fam[i].type = stat_families[i].type;
        buf_init(&fam[i].b, 0);
    }
    stats_ok = etcd_range(a->etcd, KEY_STATS, &o, &res, &e) == ST_OK;
    if (!stats_ok)
        log_warn("msg=\"metrics: cannot read the statistics: %s\"", e.msg);
    for (size_t k = 0; stats_ok && k < res.n; k++) {
        /* /kontena/stats/<grid>/containers/<name> or /kontena/stats/<grid>/nodes/<node> */
        const char *rest = res.kvs[k].key + strlen(KEY_STATS), *s1 = strchr(rest, '/');
        char grid[256];
        json_t *v;
        if (!s1 || (size_t)(s1 - rest) >= sizeof(grid))
            continue;
        memcpy(grid, rest, (size_t)(s1 - rest));
        grid[s1 - rest] = '\0';
        v = json_loadb(res.kvs[k].value, res.kvs[k].value_len, 0, NULL);
        if (!json_is_object(v)) {
            json_decref(v);
            continue;
        }
        if (!strncmp(s1, "/containers/", 12))
            add_container(fam, grid, v);
        else if (!strncmp(s1, "/nodes/", 7))
            add_node(fam, grid, s1 + 7, v);
        json_decref(v);
    }
    etcd_range_result_release(&res);
    one(&b, "kontena_apiserver_stats_up", "1 if the statistics could be read from etcd", GAUGE,
        stats_ok);
    for (int i = 0; i < F_NSTATS; i++) {
        if (fam[i].b.len &&
            (buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fam[i].name, fam[i].help,
                        fam[i].name, fam[i].type == COUNTER ? "counter" : "gauge") != ST_OK ||
             buf_append(&b, fam[i].b.ptr, fam[i].b.len) != ST_OK)) {
            /* out of memory cannot happen (no cap): keep going */
        }
        buf_release(&fam[i].b);
    }
    return buf_take(&b);
}

static void on_get(void *arg, const char *path, int *status, char **body,
                   const char **content_type)
{
    struct api *a = arg;

    if (!strcmp(path, "/metrics")) {
        *body = render(a);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (!strcmp(path, "/healthz")) {
        *body = xstrdup("ok\n");
    } else {
        *status = 404;
        *body = xstrdup("not found: see /metrics\n");
    }
}

enum status metrics_start(struct api *a, struct err *e)
{
    static const struct httpmini_opts opts = {
        .log_prefix = "metrics http", .text_type = "text/plain; charset=utf-8", .conn_limit = 64};
    const char *l = a->cfg.metrics_listen;
    struct sockaddr_in sin;

    if (!l)
        return ST_OK;
    if (httpmini_parse_addr(l, &sin, e) != ST_OK)
        return err_wrap(e, "--metrics-listen (ADDR:PORT or off)");
    a->metrics_http = httpmini_start(&sin, &opts, on_get, a, NULL);
    if (!a->metrics_http) {
        if (!a->cfg.metrics_required) {
            log_warn("msg=\"no /metrics: cannot listen on %s (pass --metrics-listen)\"", l);
            return ST_OK;
        }
        return err_set(e, ST_IO, "cannot listen for /metrics on %s: address in use?", l);
    }
    log_info("msg=\"metrics on http://%s/metrics\"", l);
    return ST_OK;
}

void metrics_stop(struct api *a)
{
    httpmini_stop(a->metrics_http);
    a->metrics_http = NULL;
}
