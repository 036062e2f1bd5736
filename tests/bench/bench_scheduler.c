/* tests/bench/bench_scheduler.c -- placements persisted per second by kontena-scheduler,
 * beside etcd's own batched write rate measured in the same run (issue 5, point 7).
 *
 *   build/tests/bench/bench_scheduler [nodes] [services] [instances per service] [-- scheduler
 * args]
 *
 * 1. Starts a private etcd (tests/support/etcd_proc.h).
 * 2. etcd's rate: 10,000 keys of an instance-sized JSON value written in transactions of
 *    128 puts, each compared on create_revision == 0 (what the scheduler's writes look
 *    like), through the same etcd client library: one transaction at a time, then from 2
 *    and 4 threads at once; the best of these is the reference.
 * 3. Writes one grid, 1,000 nodes with their node_status keys (online), 100 services of 100
 *    instances (ha) each with a deploy record in state created, as the API server would.
 * 4. Starts kontena-scheduler (tests/support/ctl_proc.h) and polls the number of instance
 *    keys every 20 ms until all 10,000 exist.
 * Prints both rates and their ratio. Timings are printed, never asserted. BENCH_PORTS=1 gives
 * every service a published port (each plan then reads every instance of the grid).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define BATCH 128

static struct etcd *ec;

static void die(const char *what, const struct err *e)
{
    fprintf(stderr, "bench_scheduler: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

/* Buffered writes: puts go out in transactions of BATCH, compared on create_revision == 0. */
struct batch {
    struct etcd_txn *t;
    int n;
};

static void batch_flush(struct batch *b)
{
    struct etcd_txn_result res = {0};
    struct err e = ERR_INIT;

    if (!b->n)
        return;
    if (etcd_txn_commit(ec, b->t, &res, &e) != ST_OK)
        die("txn", &e);
    if (!res.succeeded)
        die("txn compare failed", NULL);
    etcd_txn_result_release(&res);
    etcd_txn_free(b->t);
    b->t = NULL;
    b->n = 0;
}

static void batch_put(struct batch *b, const char *key, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

    if (!b->t)
        b->t = etcd_txn_new();
    etcd_txn_cmp(b->t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
    etcd_txn_put(b->t, ETCD_THEN, key, s, strlen(s), 0);
    free(s);
    json_decref(v);
    if (++b->n == BATCH)
        batch_flush(b);
}

static json_t *service_json(int i, int instances)
{
    char name[32], id[64];
    json_t *s = json_object();

    snprintf(name, sizeof(name), "svc%03d", i);
    snprintf(id, sizeof(id), "bench/null/%s", name);
    json_object_set_new(s, "id", json_string(id));
    json_object_set_new(s, "grid", json_string("bench"));
    json_object_set_new(s, "stack", json_string("null"));
    json_object_set_new(s, "name", json_string(name));
    json_object_set_new(s, "image", json_string("nginx:1.25-alpine"));
    json_object_set_new(s, "instances", json_integer(instances));
    json_object_set_new(s, "strategy", json_string("ha"));
    json_object_set_new(s, "stateful", json_false());
    json_object_set_new(s, "env", json_pack("[s,s]", "A=1", "LONGER_VARIABLE=some value"));
    json_object_set_new(s, "cmd", json_pack("[s,s]", "nginx", "-g daemon off;"));
    json_object_set_new(s, "entrypoint", json_null());
    json_object_set_new(s, "affinity", json_array());
    json_object_set_new(s, "links", json_array());
    /* BENCH_PORTS=1: every service publishes its own node port, so each plan reads every
     * instance of the grid (the port filter), the scheduler's slow path. */
    json_object_set_new(s, "ports",
                        getenv("BENCH_PORTS") && strcmp(getenv("BENCH_PORTS"), "1") == 0
                            ? json_pack("[{s:i,s:i,s:s,s:s}]", "node_port", 20000 + i,
                                        "container_port", 80, "protocol", "tcp", "ip", "0.0.0.0")
                            : json_array());
    json_object_set_new(s, "volumes", json_array());
    json_object_set_new(s, "volumes_from", json_array());
    json_object_set_new(s, "cap_add", json_array());
    json_object_set_new(s, "cap_drop", json_array());
    json_object_set_new(s, "cpus", json_null());
    json_object_set_new(s, "cpu_shares", json_null());
    json_object_set_new(s, "memory", json_null());
    json_object_set_new(s, "memory_swap", json_null());
    json_object_set_new(s, "privileged", json_false());
    json_object_set_new(s, "read_only", json_false());
    json_object_set_new(s, "net", json_string("bridge"));
    json_object_set_new(s, "user", json_null());
    json_object_set_new(s, "health_check", json_null());
    json_object_set_new(s, "stop_signal", json_null());
    json_object_set_new(s, "stop_grace_period", json_integer(10));
    json_object_set_new(s, "deploy_opts",
                        json_pack("{s:n,s:f,s:n}", "wait_for_port", "min_health", 0.8, "interval"));
    json_object_set_new(s, "state", json_string("running"));
    json_object_set_new(s, "revision", json_integer(1));
    json_object_set_new(s, "restart_generation", json_integer(0));
    json_object_set_new(s, "created_at", json_string("2026-01-01T00:00:00.000Z"));
    json_object_set_new(s, "updated_at", json_string("2026-01-01T00:00:00.000Z"));
    json_object_set_new(s, "deployed_at", json_string("2026-01-01T00:00:00.000Z"));
    return s;
}

/* A value of the size of a scheduler-written instance key. */
static json_t *instance_like(int i)
{
    json_t *svc = service_json(i % 100, 100), *v;

    v = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:s,s:o,s:s,s:s}", "service_id",
                  "bench/null/svc000", "grid", "bench", "stack", "null", "service", "svc000",
                  "instance_number", i, "revision", 1, "desired_state", "running",
                  "restart_generation", 0, "deploy_id", "1763866000000000-0123abcd", "spec", svc,
                  "created_at", "2026-01-01T00:00:00.000Z", "updated_at",
                  "2026-01-01T00:00:00.000Z");
    return v;
}

/* A watcher on the prefix written, as every controller has on its own keys: etcd then also
 * encodes and streams each event. */
struct watcher {
    struct etcd_watch *w;
    pthread_t th;
    size_t events;
};

static int watch_cb(void *arg, const struct etcd_watch_msg *m)
{
    struct watcher *wa = arg;
    wa->events += m->n_events;
    return 0;
}

static void *watch_main(void *arg)
{
    struct watcher *wa = arg;
    struct err e = ERR_INIT;
    if (etcd_watch_run(wa->w, &e) != ST_OK)
        fprintf(stderr, "watch: %s\n", e.msg);
    return NULL;
}

/* Write total instance-like keys under prefix in transactions of BATCH; the rate in keys/s. */
static double raw_rate(const char *prefix, int total, int nodes, int per, int watched)
{
    struct batch b = {0};
    struct watcher wa = {0};
    struct etcd_watch_opts wo = {.key = prefix, .range_end = ETCD_PREFIX};
    struct err e = ERR_INIT;
    char key[256];
    int64_t t0, t1, deleted = 0;

    if (watched) {
        wa.w = etcd_watch_create(ec, &wo, watch_cb, &wa);
        pthread_create(&wa.th, NULL, watch_main, &wa);
        time_sleep_ms(300);
    }
    t0 = time_mono_ms();
    for (int i = 0; i < total; i++) {
        snprintf(key, sizeof(key), "%snode-%04d/svc%03d-%d", prefix, i % nodes, i / per, i % per);
        batch_put(&b, key, instance_like(i));
    }
    batch_flush(&b);
    if (watched)
        while (wa.events < (size_t)total && time_mono_ms() - t0 < 120000)
            time_sleep_ms(5);
    t1 = time_mono_ms();
    if (watched) {
        etcd_watch_stop(wa.w);
        pthread_join(wa.th, NULL);
        etcd_watch_destroy(wa.w);
    }
    if (etcd_delete(ec, prefix, ETCD_PREFIX, &deleted, &e) != ST_OK)
        die("delete", &e);
    return total * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
}

/* The same keys written by `writers` threads at once (the scheduler commits from two
 * workers concurrently, so etcd's best rate is the fair reference); keys/s. */
struct writer {
    const char *prefix;
    int from, to, nodes, per;
    pthread_t th;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct batch b = {0};
    char key[256];

    for (int i = w->from; i < w->to; i++) {
        snprintf(key, sizeof(key), "%snode-%04d/svc%03d-%d", w->prefix, i % w->nodes, i / w->per,
                 i % w->per);
        batch_put(&b, key, instance_like(i));
    }
    batch_flush(&b);
    return NULL;
}

static double parallel_rate(const char *prefix, int total, int nodes, int per, int writers)
{
    struct writer w[8];
    struct err e = ERR_INIT;
    int64_t t0, t1, deleted = 0;

    if (writers > 8)
        writers = 8;
    t0 = time_mono_ms();
    for (int k = 0; k < writers; k++) {
        w[k] = (struct writer){prefix, total * k / writers, total * (k + 1) / writers, nodes, per,
                               0};
        pthread_create(&w[k].th, NULL, writer_main, &w[k]);
    }
    for (int k = 0; k < writers; k++)
        pthread_join(w[k].th, NULL);
    t1 = time_mono_ms();
    if (etcd_delete(ec, prefix, ETCD_PREFIX, &deleted, &e) != ST_OK)
        die("delete", &e);
    return total * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
}

static int64_t count_prefix(const char *prefix)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct etcd_range_result res = {0};
    struct err e = ERR_INIT;
    int64_t n;

    if (etcd_range(ec, prefix, &ro, &res, &e) != ST_OK)
        die("count", &e);
    n = res.count;
    etcd_range_result_release(&res);
    return n;
}

int main(int argc, char **argv)
{
    int nodes = argc > 1 ? atoi(argv[1]) : 1000;
    int services = argc > 2 ? atoi(argv[2]) : 100;
    int per = argc > 3 ? atoi(argv[3]) : 100;
    int total = services * per;
    struct etcd_proc ep = ETCD_PROC_INIT;
    struct etcd_opts o = {0};
    struct ctl_proc cp;
    struct batch b = {0};
    struct err e = ERR_INIT;
    char key[256], *dir;
    int64_t t0, t1, t_first = -1, n = 0, spawn;
    double etcd_rate, watched_rate, sched_rate, overall;
    int sample = 0;

    if (nodes < 1 || services < 1 || per < 1) {
        fprintf(stderr, "usage: bench_scheduler [nodes] [services] [instances per service]\n");
        return 2;
    }
    if (etcd_proc_start(&ep) != 0)
        return 1;
    o.endpoints = ep.endpoint;
    o.request_timeout_ms = 60000;
    ec = etcd_create(&o, &e);
    if (!ec)
        die("etcd client", &e);

    /* 1. etcd alone, then with one watcher on the prefix (until every event arrived). */
    etcd_rate = raw_rate("/bench/raw/", total, nodes, per, 0);
    watched_rate = raw_rate("/bench/raw2/", total, nodes, per, 1);
    printf("etcd batched writes: %d keys = %.0f keys/s (txns of %d puts with create compares); "
           "%.0f keys/s with one watcher on the prefix\n",
           total, etcd_rate, BATCH, watched_rate);
    for (int k = 2; k <= 4; k *= 2) {
        double r = parallel_rate("/bench/raw3/", total, nodes, per, k);
        printf("etcd batched writes from %d writers at once: %.0f keys/s\n", k, r);
        if (r > etcd_rate)
            etcd_rate = r; /* the reference is the best etcd did */
    }
    printf("etcd's best batched rate: %.0f keys/s\n", etcd_rate);

    /* 2. The grid as the API server leaves it. */
    batch_put(&b, "/kontena/grids/bench",
              json_pack("{s:s,s:s,s:[],s:s}", "id", "bench", "name", "bench", "default_affinity",
                        "subnet", "10.81.0.0/16"));
    for (int i = 0; i < nodes; i++) {
        char name[32];
        snprintf(name, sizeof(name), "node-%04d", i + 1);
        snprintf(key, sizeof(key), "/kontena/nodes/bench/%s", name);
        batch_put(&b, key,
                  json_pack("{s:s,s:s,s:s,s:s,s:i,s:[s],s:s,s:i,s:I}", "id", "bench/x", "grid",
                            "bench", "node_id", name, "name", name, "node_number", i + 1, "labels",
                            i % 3 == 0   ? "az=a"
                            : i % 3 == 1 ? "az=b"
                                         : "az=c",
                            "availability", "active", "cpus", 4, "mem_total", (json_int_t)8 << 30));
        snprintf(key, sizeof(key), "/kontena/node_status/bench/%s", name);
        batch_put(&b, key,
                  json_pack("{s:s,s:s,s:s,s:s}", "node", name, "node_id", name, "connected_at",
                            "2026-01-01T00:00:00.000Z", "session", "bench"));
    }
    for (int i = 0; i < services; i++) {
        json_t *svc = service_json(i, per);
        char did[64];
        snprintf(did, sizeof(did), "%016d-%08x", 1000 + i, (unsigned)i);
        json_object_set_new(svc, "deploy_id", json_string(did));
        snprintf(key, sizeof(key), "/kontena/deploys/bench/%s", did);
        batch_put(&b, key,
                  json_pack("{s:s,s:s,s:s,s:O,s:O,s:n,s:s,s:s,s:n,s:n,s:s,s:s,s:i,s:i,s:b,s:[]}",
                            "id", did, "grid", "bench", "stack", "null", "service",
                            json_object_get(svc, "name"), "service_id", json_object_get(svc, "id"),
                            "stack_deploy_id", "created_at", "2026-01-01T00:00:00.000Z",
                            "queued_at", "2026-01-01T00:00:00.000Z", "started_at", "finished_at",
                            "state", "created", "reason", "waiting for the scheduler",
                            "instance_count", per, "service_revision", 1, "force", 0,
                            "instance_deploys"));
        snprintf(key, sizeof(key), "/kontena/services/bench/null/svc%03d", i);
        batch_put(&b, key, svc);
    }
    batch_flush(&b);
    printf("seeded %d nodes (online), %d services x %d instances with deploy records\n", nodes,
           services, per);

    /* 3. The scheduler. */
    dir = proc_tempdir("bench-sched-");
    spawn = time_mono_ms();
    if (ctl_proc_start(&cp, dir, "scheduler", 1, ep.endpoint,
                       argc > 5 && strcmp(argv[4], "--") == 0 ? (const char *const *)argv + 5
                                                              : NULL) != 0)
        die("kontena-scheduler did not start", NULL);
    t0 = time_mono_ms();
    while (n < total && time_mono_ms() - t0 < 600000) {
        n = count_prefix("/kontena/instances/bench/");
        if (n > 0 && t_first < 0)
            t_first = time_mono_ms();
        if (++sample % 50 == 0)
            fprintf(stderr, "  %lld instance keys after %lld ms\n", (long long)n,
                    (long long)(time_mono_ms() - t0));
        if (n < total)
            time_sleep_ms(20);
    }
    t1 = time_mono_ms();
    if (n < total) {
        fprintf(stderr, "only %lld of %d instance keys after 600 s\n", (long long)n, total);
        proc_dump_file(cp.log);
    }
    sched_rate = n * 1000.0 / (double)(t1 - (t_first > 0 ? t_first : t0) ?: 1);
    overall = n * 1000.0 / (double)(t1 - spawn ?: 1);
    printf("scheduler: %lld placements in %lld ms from the first key (%lld ms from spawn, "
           "%lld ms until /healthz) = %.0f placements/s (%.0f/s including start-up)\n",
           (long long)n, (long long)(t1 - (t_first > 0 ? t_first : t0)), (long long)(t1 - spawn),
           (long long)(t0 - spawn), sched_rate, overall);
    printf("ratio to etcd's batched write rate: %.2f (target >= 0.5; target rate >= 10000/s); "
           "%.2f of the watched rate\n",
           sched_rate / etcd_rate, sched_rate / watched_rate);
    {
        /* The scheduler's own CPU time: what it costs beside waiting for etcd. */
        char path[64], buf[1024];
        FILE *f;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)cp.pid);
        f = fopen(path, "r");
        if (f && fgets(buf, sizeof(buf), f)) {
            char *p = strrchr(buf, ')');
            unsigned long ut = 0, stt = 0;
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &stt) == 2)
                printf("scheduler CPU: %.2f s user, %.2f s system\n",
                       (double)ut / (double)sysconf(_SC_CLK_TCK),
                       (double)stt / (double)sysconf(_SC_CLK_TCK));
        }
        if (f)
            fclose(f);
    }
    ctl_proc_cleanup(&cp);
    proc_rmtree(dir);
    free(dir);
    etcd_destroy(ec);
    etcd_proc_cleanup(&ep);
    return n == total ? 0 : 1;
}
