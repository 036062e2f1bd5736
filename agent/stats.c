/* agent/stats.c -- container and node samples for the master (see stats.h). */
#include "agent/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "agent/docker.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define DEF_INTERVAL_MS 60000
#define MAX_PROC_FILE (256u << 10)

/* Interfaces of the node's two networks (reference §8.2: internal = the overlay). */
static const char *const internal_ifs[] = {"kontena0", "vxlan0", NULL};
static const char *const external_ifs[] = {"docker0", NULL};

struct prev_entry {
    struct prev_entry *next;
    char *id;
    struct stats_prev p;
    int seen;
};

struct stats {
    char *socket, *node, *fs_path, *proc_root;
    char *grid; /* under mu */
    int interval_ms;
    void (*send)(void *arg, const json_t *msg);
    void *send_arg;
    struct docker *d;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    struct prev_entry *prevs;
    struct stats_node_prev nprev;
    atomic_ullong container_samples, node_samples, errors, sends;
};

static uint64_t ju(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    if (json_is_real(v))
        return json_real_value(v) > 0 ? (uint64_t)json_real_value(v) : 0;
    return 0;
}

static double round2(double v)
{
    return round(v * 100.0) / 100.0;
}

static void now_text(char *out, size_t len)
{
    time_iso8601_now(out, len);
}

json_t *stats_container_item(const json_t *summary, const json_t *raw, struct stats_prev *prev,
                             int64_t now_ms)
{
    const json_t *labels = json_object_get(summary, "Labels");
    const json_t *cpu = json_object_get(raw, "cpu_stats");
    const json_t *mem = json_object_get(raw, "memory_stats");
    const json_t *mstats = json_object_get(mem, "stats");
    const json_t *nets = json_object_get(raw, "networks");
    const json_t *blk = json_object_get(json_object_get(raw, "blkio_stats"),
                                        "io_service_bytes_recursive");
    uint64_t total = ju(json_object_get(cpu, "cpu_usage"), "total_usage");
    uint64_t system = ju(cpu, "system_cpu_usage");
    uint64_t ncpu = ju(cpu, "online_cpus"), rx = 0, tx = 0, rd = 0, wr = 0, usage, limit, inactive;
    double pct = 0, rxps = 0, txps = 0;
    const char *k, *name, *inst;
    json_t *v, *item;
    size_t i;
    char t[64];

    if (!ncpu)
        ncpu = json_array_size(json_object_get(json_object_get(cpu, "cpu_usage"), "percpu_usage"));
    if (!ncpu)
        ncpu = 1;
    json_object_foreach((json_t *)nets, k, v) {
        rx += ju(v, "rx_bytes");
        tx += ju(v, "tx_bytes");
    }
    json_array_foreach(blk, i, v) {
        const char *op = jstr(v, "op");
        if (op && !strcasecmp(op, "read"))
            rd += ju(v, "value");
        else if (op && !strcasecmp(op, "write"))
            wr += ju(v, "value");
    }
    /* as docker stats: the page cache that can be dropped is not "used" */
    usage = ju(mem, "usage");
    inactive = json_object_get(mstats, "total_inactive_file") ? ju(mstats, "total_inactive_file")
                                                               : ju(mstats, "inactive_file");
    usage = usage > inactive ? usage - inactive : usage;
    limit = ju(mem, "limit");
    if (prev->valid) {
        double dt = (double)(now_ms - prev->at_ms) / 1000.0;
        if (system > prev->cpu_system && total >= prev->cpu_total)
            pct = (double)(total - prev->cpu_total) / (double)(system - prev->cpu_system) *
                  (double)ncpu * 100.0;
        if (dt > 0) {
            rxps = rx >= prev->rx ? (double)(rx - prev->rx) / dt : 0;
            txps = tx >= prev->tx ? (double)(tx - prev->tx) / dt : 0;
        }
    }
    prev->cpu_total = total;
    prev->cpu_system = system;
    prev->rx = rx;
    prev->tx = tx;
    prev->at_ms = now_ms;
    prev->valid = 1;

    name = jstr(labels, "io.kontena.container.name");
    if (!name) {
        name = json_string_value(json_array_get(json_object_get(summary, "Names"), 0));
        if (name && *name == '/')
            name++;
    }
    inst = jstr(labels, "io.kontena.instance");
    now_text(t, sizeof(t));
    item = json_pack(
        "{s:s?, s:s?, s:s, s:s?, s:o, s:{s:f, s:I}, s:{s:I, s:I}, s:{s:I, s:I, s:f, s:f}, "
        "s:{s:I, s:I}, s:s}",
        "id", jstr(summary, "Id"), "name", name, "stack",
        jstr(labels, "io.kontena.stack") ? jstr(labels, "io.kontena.stack") : "null", "service",
        jstr(labels, "io.kontena.service"), "instance",
        inst && *inst ? json_integer(strtol(inst, NULL, 10)) : json_null(), "cpu", "usage_pct",
        round2(pct), "num_cores", (json_int_t)ncpu, "memory", "usage", (json_int_t)usage, "limit",
        (json_int_t)limit, "network", "rx_bytes", (json_int_t)rx, "tx_bytes", (json_int_t)tx,
        "rx_bytes_per_second", round2(rxps), "tx_bytes_per_second", round2(txps), "blkio",
        "read_bytes", (json_int_t)rd, "write_bytes", (json_int_t)wr, "time", t);
    return item;
}

/* --- node ---------------------------------------------------------------------------------- */

static char *slurp(const char *root, const char *name)
{
    char *path = xasprintf("%s/%s", root, name), *out;
    FILE *f = fopen(path, "r");
    size_t n;

    free(path);
    if (!f)
        return NULL;
    out = xmalloc(MAX_PROC_FILE + 1);
    n = fread(out, 1, MAX_PROC_FILE, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return 1;
    return 0;
}

static json_t *net_group(const char *const *ifs, uint64_t rx, uint64_t tx, double rxps, double txps)
{
    json_t *names = json_array();

    for (; *ifs; ifs++)
        json_array_append_new(names, json_string(*ifs));
    return json_pack("{s:o, s:I, s:I, s:f, s:f}", "interfaces", names, "rx_bytes", (json_int_t)rx,
                     "tx_bytes", (json_int_t)tx, "rx_bytes_per_second", round2(rxps),
                     "tx_bytes_per_second", round2(txps));
}

json_t *stats_node_sample(const char *proc_root, const char *fs_path, struct stats_node_prev *prev,
                          int64_t now_ms)
{
    json_t *out = json_object();
    char *txt, t[64];
    struct statvfs sv;
    double dt = prev->valid ? (double)(now_ms - prev->at_ms) / 1000.0 : 0;

    /* cpu: the first line of /proc/stat, jiffies */
    if ((txt = slurp(proc_root, "stat"))) {
        unsigned long long v[8] = {0};
        long ncores = 0;
        for (char *p = strstr(txt, "\ncpu"); p; p = strstr(p + 1, "\ncpu"))
            if (p[4] >= '0' && p[4] <= '9')
                ncores++;
        if (sscanf(txt, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
            double du = 0, dn = 0, ds = 0, di = 0, tot = 0, used = 0;
            if (prev->valid) {
                du = (double)(v[0] - prev->user);
                dn = (double)(v[1] - prev->nice);
                ds = (double)(v[2] - prev->system + v[5] - prev->irq + v[6] - prev->softirq);
                di = (double)(v[3] - prev->idle + v[4] - prev->iowait);
                tot = du + dn + ds + di + (double)(v[7] - prev->steal);
            }
            if (ncores < 1)
                ncores = 1;
            /* user/system/nice/idle: percentages summed over the cores (0..100 x cores, the
             * reference's scale); used_pct: 0..100 of the whole node */
            double scale = tot > 0 ? 100.0 * (double)ncores / tot : 0;
            used = tot > 0 ? (tot - di) / tot * 100.0 : 0;
            json_object_set_new(out, "cpu",
                                json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "num_cores",
                                          (json_int_t)ncores, "user", round2(du * scale),
                                          "system", round2(ds * scale), "nice", round2(dn * scale),
                                          "idle", round2(di * scale), "used_pct", round2(used)));
            prev->user = v[0];
            prev->nice = v[1];
            prev->system = v[2];
            prev->idle = v[3];
            prev->iowait = v[4];
            prev->irq = v[5];
            prev->softirq = v[6];
            prev->steal = v[7];
        }
        free(txt);
    }
    if ((txt = slurp(proc_root, "meminfo"))) {
        unsigned long long total = 0, fr = 0, act = 0, inact = 0, cached = 0, buffers = 0;
        for (char *line = txt; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            unsigned long long kb;
            char key[64];
            if (sscanf(line, "%63[^:]: %llu", key, &kb) != 2)
                continue;
            kb *= 1024;
            if (!strcmp(key, "MemTotal"))
                total = kb;
            else if (!strcmp(key, "MemFree"))
                fr = kb;
            else if (!strcmp(key, "Active"))
                act = kb;
            else if (!strcmp(key, "Inactive"))
                inact = kb;
            else if (!strcmp(key, "Cached"))
                cached = kb;
            else if (!strcmp(key, "Buffers"))
                buffers = kb;
        }
        if (total)
            json_object_set_new(
                out, "memory",
                json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)total,
                          "free", (json_int_t)fr, "used", (json_int_t)(total - fr), "active",
                          (json_int_t)act, "inactive", (json_int_t)inact, "cached",
                          (json_int_t)cached, "buffers", (json_int_t)buffers));
        free(txt);
    }
    if ((txt = slurp(proc_root, "loadavg"))) {
        double a, b, c;
        if (sscanf(txt, "%lf %lf %lf", &a, &b, &c) == 3)
            json_object_set_new(out, "load",
                                json_pack("{s:f, s:f, s:f}", "1m", a, "5m", b, "15m", c));
        free(txt);
    }
    if ((txt = slurp(proc_root, "net/dev"))) {
        uint64_t rx[2] = {0, 0}, tx[2] = {0, 0};
        for (char *line = txt; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            char ifname[64];
            unsigned long long r, x, skip;
            if (sscanf(line, " %63[^:]: %llu %llu %llu %llu %llu %llu %llu %llu %llu", ifname, &r,
                       &skip, &skip, &skip, &skip, &skip, &skip, &skip, &x) != 10)
                continue;
            if (in_list(ifname, internal_ifs)) {
                rx[0] += r;
                tx[0] += x;
            } else if (in_list(ifname, external_ifs)) {
                rx[1] += r;
                tx[1] += x;
            }
        }
        double rate[2][2] = {{0, 0}, {0, 0}};
        for (int k = 0; k < 2; k++)
            if (prev->valid && dt > 0) {
                rate[k][0] = rx[k] >= prev->rx[k] ? (double)(rx[k] - prev->rx[k]) / dt : 0;
                rate[k][1] = tx[k] >= prev->tx[k] ? (double)(tx[k] - prev->tx[k]) / dt : 0;
            }
        json_object_set_new(
            out, "network",
            json_pack("{s:o, s:o}", "internal",
                      net_group(internal_ifs, rx[0], tx[0], rate[0][0], rate[0][1]), "external",
                      net_group(external_ifs, rx[1], tx[1], rate[1][0], rate[1][1])));
        memcpy(prev->rx, rx, sizeof(rx));
        memcpy(prev->tx, tx, sizeof(tx));
        free(txt);
    }
    if (fs_path && statvfs(fs_path, &sv) == 0) {
        uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
        uint64_t fr = (uint64_t)sv.f_bfree * sv.f_frsize;
        uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        json_object_set_new(out, "filesystem",
                            json_pack("[{s:s, s:I, s:I, s:I, s:I}]", "name", fs_path, "total",
                                      (json_int_t)total, "used", (json_int_t)(total - fr), "free",
                                      (json_int_t)fr, "available", (json_int_t)avail));
    }
    prev->at_ms = now_ms;
    prev->valid = 1;
    now_text(t, sizeof(t));
    json_object_set_new(out, "time", json_string(t));
    return out;
}

/* --- the thread ------------------------------------------------------------------------------ */

static struct prev_entry *prev_for(struct stats *s, const char *id)
{
    struct prev_entry *p;

    for (p = s->prevs; p; p = p->next)
        if (!strcmp(p->id, id))
            return p;
    p = xcalloc(1, sizeof(*p));
    p->id = xstrdup(id);
    p->next = s->prevs;
    s->prevs = p;
    return p;
}

static void prune_prevs(struct stats *s)
{
    for (struct prev_entry **pp = &s->prevs; *pp;) {
        struct prev_entry *p = *pp;
        if (p->seen) {
            p->seen = 0;
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        free(p->id);
        free(p);
    }
}

void stats_set_grid(struct stats *s, const char *grid)
{
    if (!s || !grid)
        return;
    pthread_mutex_lock(&s->mu);
    free(s->grid);
    s->grid = xstrdup(grid);
    pthread_mutex_unlock(&s->mu);
}

static void sample(struct stats *s)
{
    char *label = xasprintf("io.kontena.node=%s", s->node), *glabel;
    const char *labels[] = {label, NULL, NULL};
    json_t *list = NULL, *c, *items = json_array(), *msg, *node;
    struct err e = ERR_INIT;
    size_t i;

    pthread_mutex_lock(&s->mu);
    glabel = s->grid ? xasprintf("io.kontena.grid=%s", s->grid) : NULL;
    pthread_mutex_unlock(&s->mu);
    labels[1] = glabel;
    if (!glabel) {
        json_decref(items); /* which containers are ours is not known yet */
        items = NULL;
    } else if (docker_container_list(s->d, labels, 0, &list, &e) != ST_OK) {
        atomic_fetch_add(&s->errors, 1);
        log_warn("msg=\"cannot list containers for stats: %s\"", e.msg);
        json_decref(items);
        items = NULL;
    }
    json_array_foreach(list, i, c) {
        const char *id = jstr(c, "Id");
        json_t *raw = NULL;
        struct prev_entry *p;
        if (!id)
            continue;
        if (docker_container_stats_sample(s->d, id, 1, &raw, &e) != ST_OK) {
            if (e.st != ST_NOTFOUND) { /* removed meanwhile: simply not in the list */
                atomic_fetch_add(&s->errors, 1);
                log_warn("msg=\"%s\"", e.msg);
            }
            continue;
        }
        p = prev_for(s, id);
        p->seen = 1;
        json_array_append_new(items, stats_container_item(c, raw, &p->p, time_mono_ms()));
        atomic_fetch_add(&s->container_samples, 1);
        json_decref(raw);
    }
    json_decref(list);
    if (items) {
        prune_prevs(s);
        msg = json_pack("[i, s, [{s:s, s:o}]]", 2, "/containers/stats", "node", s->node,
                        "containers", items);
        s->send(s->send_arg, msg);
        atomic_fetch_add(&s->sends, 1);
        json_decref(msg);
    }
    node = stats_node_sample(s->proc_root, s->fs_path, &s->nprev, time_mono_ms());
    json_object_set_new(node, "node", json_string(s->node));
    msg = json_pack("[i, s, [o]]", 2, "/nodes/stats", node);
    s->send(s->send_arg, msg);
    atomic_fetch_add(&s->sends, 1);
    atomic_fetch_add(&s->node_samples, 1);
    json_decref(msg);
    free(label);
    free(glabel);
}

static void *stats_main(void *arg)
{
    struct stats *s = arg;

    for (;;) {
        struct timespec ts;
        int stop;

        sample(s);
        ts = time_deadline(CLOCK_MONOTONIC, s->interval_ms);
        pthread_mutex_lock(&s->mu);
        while (!s->stop && pthread_cond_timedwait(&s->cond, &s->mu, &ts) == 0)
            ;
        stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
    }
    return NULL;
}

struct stats *stats_start(const struct stats_opts *o, struct err *e)
{
    struct stats *s = xcalloc(1, sizeof(*s));
    struct docker_opts dopts;
    pthread_condattr_t ca;

    BUG_ON(!o->node || !o->send);
    s->socket = xstrdup(o->docker_socket ? o->docker_socket : DOCKER_DEFAULT_SOCKET);
    s->node = xstrdup(o->node);
    s->grid = o->grid ? xstrdup(o->grid) : NULL;
    s->fs_path = xstrdup(o->fs_path ? o->fs_path : "/");
    s->proc_root = xstrdup(o->proc_root ? o->proc_root : "/proc");
    s->interval_ms = o->interval_ms > 0 ? o->interval_ms : DEF_INTERVAL_MS;
    s->send = o->send;
    s->send_arg = o->send_arg;
    memset(&dopts, 0, sizeof(dopts));
    dopts.socket_path = s->socket;
    dopts.request_timeout_ms = 10000;
    s->d = docker_create(&dopts, e);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!s->d || pthread_create(&s->thread, NULL, stats_main, s) != 0) {
        if (s->d)
            err_set(e, ST_IO, "cannot start the stats thread");
        docker_destroy(s->d);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mu);
        free(s->socket);
        free(s->node);
        free(s->grid);
        free(s->fs_path);
        free(s->proc_root);
        free(s);
        return NULL;
    }
    return s;
}

void stats_stop(struct stats *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    docker_cancel(s->d);
    pthread_join(s->thread, NULL);
    for (struct prev_entry *p = s->prevs, *n; p; p = n) {
        n = p->next;
        free(p->id);
        free(p);
    }
    docker_destroy(s->d);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s->socket);
    free(s->node);
    free(s->grid);
    free(s->fs_path);
    free(s->proc_root);
    free(s);
}

void stats_counters(struct stats *s, struct stats_counters *o)
{
    memset(o, 0, sizeof(*o));
    if (!s)
        return;
    o->container_samples = atomic_load(&s->container_samples);
    o->node_samples = atomic_load(&s->node_samples);
    o->errors = atomic_load(&s->errors);
    o->sends = atomic_load(&s->sends);
}
