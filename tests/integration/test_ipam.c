/* tests/integration/test_ipam.c -- kontena-ipam against a real etcd (one per test).
 *
 * The test writes what the others would: the grid key (apiserver), node status keys
 * (apiserver, while agents are connected) and instance keys (scheduler), and checks the
 * addresses kontena-ipam gives: overlay_cidr in the instance keys, one address key per
 * address naming its owner, never two owners (docs/internals/ipam.md). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define GRID "g1"
#define INST "/kontena/instances/" GRID "/"
#define ADDRS "/kontena/ipam/" GRID "/addresses/"

static struct etcd_proc etcdp;
static struct etcd *ec;
static struct ctl_proc ipams[2];

static void init(void)
{
    struct etcd_opts o;
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_proc_start(&etcdp), 0, "cannot start etcd");
    memset(&o, 0, sizeof(o));
    o.endpoints = etcdp.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert(ec, "etcd_create: %s", e.msg);
}

static void fini(void)
{
    for (int i = 0; i < 2; i++)
        ctl_proc_cleanup(&ipams[i]);
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&etcdp);
}

TestSuite(ipam, .init = init, .fini = fini, .timeout = 120);

static void start_ipam(int slot, const char *const extra[])
{
    cr_assert_eq(ctl_proc_start(&ipams[slot], etcdp.dir, "ipam", slot + 1, etcdp.endpoint, extra),
                 0, "kontena-ipam did not become healthy");
}

/* SIGTERM and a clean exit (status 0). */
static void stop_ipam(int slot)
{
    int ws = ctl_proc_stop(&ipams[slot], SIGTERM);
    if (!(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0))
        proc_dump_file(ipams[slot].log);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "kontena-ipam did not exit cleanly (wait status %d)", ws);
}

static void put(const char *key, const char *val)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(ec, key, val, strlen(val), 0, NULL, NULL, &e), ST_OK, "put %s: %s", key,
                 e.msg);
}

static void del(const char *key)
{
    cr_assert_eq(etcd_delete(ec, key, NULL, NULL, NULL), ST_OK, "delete %s", key);
}

static void put_grid(void)
{
    put("/kontena/grids/" GRID, "{\"name\":\"" GRID "\",\"subnet\":\"10.81.0.0/16\"}");
}

static void node_online(const char *node, int online)
{
    char *key = xasprintf("/kontena/node_status/" GRID "/%s", node);
    if (online)
        put(key, "{\"node\":\"x\"}");
    else
        del(key);
    free(key);
}

/* An instance key as the scheduler writes it (no address). */
static char *inst_value(const char *svc, int n)
{
    return xasprintf("{\"service_id\":\"" GRID "/null/%s\",\"grid\":\"" GRID "\","
                     "\"stack\":\"null\",\"service\":\"%s\",\"instance_number\":%d,"
                     "\"revision\":1,\"desired_state\":\"running\",\"restart_generation\":0,"
                     "\"spec\":{\"image\":\"busybox\"}}",
                     svc, svc, n);
}

static void put_instance(const char *node, const char *svc, int n)
{
    char *key = xasprintf(INST "%s/%s-%d", node, svc, n), *v = inst_value(svc, n);
    put(key, v);
    free(key);
    free(v);
}

static void del_instance(const char *node, const char *svc, int n)
{
    char *key = xasprintf(INST "%s/%s-%d", node, svc, n);
    del(key);
    free(key);
}

/* Every key under prefix: {key: value} (values parsed), new reference. */
static json_t *list(const char *prefix)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res;
    json_t *m = json_object();

    cr_assert_eq(etcd_range(ec, prefix, &ro, &res, NULL), ST_OK);
    for (size_t i = 0; i < res.n; i++) {
        json_t *v = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
        json_object_set_new(m, res.kvs[i].key, v ? v : json_null());
    }
    etcd_range_result_release(&res);
    return m;
}

/* {key: mod_revision} under prefix. */
static json_t *revisions(const char *prefix)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res;
    json_t *m = json_object();

    cr_assert_eq(etcd_range(ec, prefix, &ro, &res, NULL), ST_OK);
    for (size_t i = 0; i < res.n; i++)
        json_object_set_new(m, res.kvs[i].key, json_integer(res.kvs[i].mod_revision));
    etcd_range_result_release(&res);
    return m;
}

static json_t *get(const char *key)
{
    struct etcd_kv kv;
    json_t *v = NULL;
    if (etcd_get(ec, key, &kv, NULL, NULL) == ST_OK) {
        v = json_loads(kv.value, 0, NULL);
        etcd_kv_release(&kv);
    }
    return v;
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *cidr_of(const char *node, const char *svc, int n, json_t **hold)
{
    char *key = xasprintf(INST "%s/%s-%d", node, svc, n);
    *hold = get(key);
    free(key);
    return json_string_value(json_object_get(*hold, "overlay_cidr"));
}

/* The consistency every state must have once kontena-ipam is done: each instance on an
 * online node (online: NULL-terminated list) has an address no other instance has, whose
 * key names it; each address key is owned by such an instance. Returns how many instances
 * hold an address; fails the test otherwise. */
static int check_consistent(const char *const online[])
{
    json_t *insts = list(INST), *addrs = list(ADDRS), *seen = json_object(), *v;
    const char *k;
    int held = 0;

    json_object_foreach(insts, k, v)
    {
        const char *rest = k + strlen(INST), *slash = strchr(rest, '/');
        const char *cidr = json_string_value(json_object_get(v, "overlay_cidr"));
        char node[64], ip[32], *akey;
        json_t *a;
        int is_online = 0;

        cr_assert(slash && (size_t)(slash - rest) < sizeof(node));
        memcpy(node, rest, (size_t)(slash - rest));
        node[slash - rest] = '\0';
        for (int i = 0; online[i]; i++)
            is_online |= !strcmp(online[i], node);
        if (!is_online || !cidr)
            continue;
        cr_assert(strlen(cidr) < sizeof(ip) && strchr(cidr, '/'), "bad overlay_cidr %s", cidr);
        cr_assert_str_eq(strchr(cidr, '/'), "/16", "%s: %s has not the subnet's length", k, cidr);
        snprintf(ip, sizeof(ip), "%.*s", (int)(strchr(cidr, '/') - cidr), cidr);
        cr_assert_null(json_object_get(seen, ip), "%s and %s both hold %s", k,
                       json_string_value(json_object_get(seen, ip)), ip);
        json_object_set_new(seen, ip, json_string(k));
        akey = xasprintf(ADDRS "%s", ip);
        a = json_object_get(addrs, akey);
        cr_assert(a, "%s holds %s but there is no %s", k, cidr, akey);
        cr_assert_str_eq(sget(a, "container"), slash + 1);
        cr_assert_str_eq(sget(a, "node"), node);
        cr_assert_str_eq(sget(a, "address"), cidr);
        free(akey);
        held++;
    }
    json_object_foreach(addrs, k, v)
    {
        cr_assert(json_object_get(seen, k + strlen(ADDRS)), "%s is owned by no online instance", k);
    }
    json_decref(insts);
    json_decref(addrs);
    json_decref(seen);
    return held;
}

/* Poll until check_consistent() would pass with `want` instances holding an address (and
 * the number of address keys equals it). */
static void wait_consistent(const char *const online[], int want, int timeout_ms)
{
    int64_t t0 = time_mono_ms();

    for (;;) {
        json_t *insts = list(INST), *addrs = list(ADDRS), *v;
        const char *k;
        int held = 0, ok;

        json_object_foreach(insts, k, v)
        {
            const char *rest = k + strlen(INST);
            for (int i = 0; online[i]; i++)
                if (!strncmp(rest, online[i], strlen(online[i])) &&
                    rest[strlen(online[i])] == '/' && json_object_get(v, "overlay_cidr"))
                    held++;
        }
        ok = held == want && (int)json_object_size(addrs) == want;
        json_decref(insts);
        json_decref(addrs);
        if (ok) {
            cr_assert_eq(check_consistent(online), want);
            return;
        }
        if (time_mono_ms() - t0 > timeout_ms) {
            for (int i = 0; i < 2; i++)
                if (ipams[i].log)
                    proc_dump_file(ipams[i].log);
            cr_assert_fail("after %d ms: %d instances hold an address, want %d", timeout_ms, held,
                           want);
        }
        time_sleep_ms(50);
    }
}

/* The value of a metric series on replica slot's /metrics, -1 when absent. */
static double metric(int slot, const char *series)
{
    char *url = ctl_proc_url(&ipams[slot], "/metrics");
    struct http_reply r;
    double v = -1;
    const char *p;

    cr_assert_eq(http_do("GET", url, NULL, NULL, 0, NULL, &r), 0);
    for (p = r.body; p && (p = strstr(p, series)) != NULL; p += strlen(series))
        if ((p == r.body || p[-1] == '\n') && p[strlen(series)] == ' ') {
            v = strtod(p + strlen(series) + 1, NULL);
            break;
        }
    http_reply_release(&r);
    free(url);
    return v;
}

Test(ipam, fifty_instances_get_fifty_distinct_addresses_of_the_pool)
{
    const char *online[] = {"n1", "n2", NULL};
    json_t *pool, *insts, *v;
    const char *k;

    put_grid();
    node_online("n1", 1);
    node_online("n2", 1);
    start_ipam(0, NULL);
    for (int i = 1; i <= 50; i++)
        put_instance(i % 2 ? "n1" : "n2", "web", i);
    wait_consistent(online, 50, 20000);

    pool = get("/kontena/ipam/" GRID "/pool");
    cr_assert(pool, "no pool key");
    cr_assert_str_eq(sget(pool, "subnet"), "10.81.0.0/16");
    cr_assert_str_eq(sget(pool, "iprange"), "10.81.128.0/19");
    cr_assert_str_eq(sget(pool, "gateway"), "10.81.0.1/16");
    json_decref(pool);
    insts = list(INST);
    json_object_foreach(insts, k, v)
    {
        unsigned a, b, c, d;
        cr_assert_eq(sscanf(sget(v, "overlay_cidr"), "%u.%u.%u.%u/16", &a, &b, &c, &d), 4);
        cr_assert(a == 10 && b == 81 && c >= 128 && c < 160 && !(c == 128 && d == 0),
                  "%s outside 10.81.128.1-10.81.159.254", sget(v, "overlay_cidr"));
        cr_assert(json_is_integer(json_object_get(v, "overlay_since")));
        /* the scheduler's fields are untouched */
        cr_assert_str_eq(sget(json_object_get(v, "spec"), "image"), "busybox");
    }
    json_decref(insts);
    cr_assert_eq(metric(0, "kontena_ipam_addresses_allocated{grid=\"" GRID "\"}"), 50);
    cr_assert_eq(metric(0, "kontena_ipam_pool_size{grid=\"" GRID "\"}"), 8190);
    cr_assert_geq(metric(0, "kontena_ipam_allocations_total"), 50);
    stop_ipam(0);
}

Test(ipam, removal_releases_and_a_move_keeps_the_address)
{
    const char *online[] = {"n1", "n2", NULL};
    json_t *h1 = NULL, *h2 = NULL, *old;
    char *cidr, *v, *akey;
    struct etcd_txn *t;
    struct etcd_txn_result res;

    put_grid();
    node_online("n1", 1);
    node_online("n2", 1);
    start_ipam(0, NULL);
    for (int i = 1; i <= 4; i++)
        put_instance("n1", "web", i);
    wait_consistent(online, 4, 20000);

    /* Scale down: web-4 removed, its address key goes. */
    del_instance("n1", "web", 4);
    wait_consistent(online, 3, 10000);
    cr_assert_geq(metric(0, "kontena_ipam_releases_total"), 1);

    /* Move web-1 to n2 as the scheduler does: delete + create in one transaction, the new
     * key carrying overlay_cidr and overlay_since. */
    cidr = xstrdup(cidr_of("n1", "web", 1, &h1));
    old = json_deep_copy(h1);
    v = json_dumps(old, JSON_COMPACT);
    t = etcd_txn_new();
    etcd_txn_delete(t, ETCD_THEN, INST "n1/web-1", NULL);
    etcd_txn_put(t, ETCD_THEN, INST "n2/web-1", v, strlen(v), 0);
    cr_assert_eq(etcd_txn_commit(ec, t, &res, NULL), ST_OK);
    etcd_txn_result_release(&res);
    etcd_txn_free(t);
    *strchr(cidr, '/') = '\0';
    akey = xasprintf(ADDRS "%s", cidr);
    for (int i = 0;; i++) {
        json_t *a = get(akey);
        int moved = a && !strcmp(sget(a, "node"), "n2") && !strcmp(sget(a, "container"), "web-1");
        json_decref(a);
        if (moved)
            break;
        cr_assert_lt(i, 200, "the address key of the moved instance does not follow it");
        time_sleep_ms(50);
    }
    cr_assert(strncmp(cidr_of("n2", "web", 1, &h2), cidr, strlen(cidr)) == 0,
              "the moved instance lost its address");
    wait_consistent(online, 3, 10000);
    json_decref(h1);
    json_decref(h2);
    json_decref(old);
    free(v);
    free(akey);
    free(cidr);
    stop_ipam(0);
}

/* A pool of 2 addresses (--pool-prefix-len 30): node offline releases, another container
 * gets the address meanwhile, the node comes back: the older claim wins, the newer one
 * waits (pool full) and gets the next address that frees up. */
Test(ipam, offline_release_online_restore_older_claim_wins_and_pool_full)
{
    const char *const extra[] = {"--pool-prefix-len", "30", NULL};
    const char *both[] = {"n1", "n2", NULL}, *only2[] = {"n2", NULL};
    json_t *h1 = NULL, *h2 = NULL, *h3 = NULL, *pool;
    char *a1;

    put_grid();
    node_online("n1", 1);
    node_online("n2", 1);
    start_ipam(0, extra);
    put_instance("n1", "web", 1);
    wait_consistent(both, 1, 10000);
    put_instance("n2", "web", 2);
    wait_consistent(both, 2, 10000);
    pool = get("/kontena/ipam/" GRID "/pool");
    cr_assert_str_eq(sget(pool, "iprange"), "10.81.128.0/30");
    json_decref(pool);
    a1 = xstrdup(cidr_of("n1", "web", 1, &h1));

    /* n1 offline: its address key goes, the instance keeps overlay_cidr. */
    node_online("n1", 0);
    wait_consistent(only2, 1, 10000);
    json_decref(h1);
    cr_assert_str_eq(cidr_of("n1", "web", 1, &h1) ?: "(none)", a1);

    /* Meanwhile a new container on n2 gets the only free address: n1's. */
    time_sleep_ms(5); /* a later overlay_since */
    put_instance("n2", "web", 3);
    wait_consistent(only2, 2, 10000);
    cr_assert_str_eq(cidr_of("n2", "web", 3, &h3) ?: "(none)", a1);
    json_decref(h3);

    /* n1 back: web-1's claim is older, web-3 loses the address and, the pool being full,
     * waits with overlay_error. */
    node_online("n1", 1);
    wait_consistent(both, 2, 10000);
    json_decref(h1);
    cr_assert_str_eq(cidr_of("n1", "web", 1, &h1) ?: "(none)", a1);
    cr_assert_null(cidr_of("n2", "web", 3, &h3));
    cr_assert(strstr(sget(h3, "overlay_error"), "is full"), "overlay_error: '%s'",
              sget(h3, "overlay_error"));
    json_decref(h3);
    cr_assert_geq(metric(0, "kontena_ipam_pool_full_total"), 1);
    cr_assert_geq(metric(0, "kontena_ipam_conflicts_total"), 1);

    /* web-2 removed: web-3 gets its address, overlay_error goes. */
    {
        char *a2 = xstrdup(cidr_of("n2", "web", 2, &h2));
        del_instance("n2", "web", 2);
        wait_consistent(both, 2, 10000);
        cr_assert_str_eq(cidr_of("n2", "web", 3, &h3) ?: "(none)", a2);
        cr_assert_null(json_object_get(h3, "overlay_error"));
        free(a2);
    }
    json_decref(h1);
    json_decref(h2);
    json_decref(h3);
    free(a1);
    stop_ipam(0);
}

Test(ipam, host_networking_gets_no_address)
{
    const char *online[] = {"n1", NULL};
    const char *v = "{\"service_id\":\"g1/null/h\",\"grid\":\"g1\",\"stack\":\"null\","
                    "\"service\":\"h\",\"instance_number\":1,\"revision\":1,"
                    "\"desired_state\":\"running\",\"spec\":{\"image\":\"x\",\"net\":\"host\"}}";
    json_t *h = NULL;

    put_grid();
    node_online("n1", 1);
    start_ipam(0, NULL);
    put(INST "n1/h-1", v);
    put_instance("n1", "web", 1);
    wait_consistent(online, 1, 10000);
    time_sleep_ms(500);
    cr_assert_null(cidr_of("n1", "h", 1, &h));
    json_decref(h);
    stop_ipam(0);
}

/* Two replicas acting at once (no leader election: the transactions alone must keep
 * ownership unique), while instances come and go. */
Test(ipam, two_replicas_at_once_never_give_an_address_twice)
{
    const char *const extra[] = {"--no-leader-elect", "--workers", "2", NULL};
    const char *online[] = {"n1", "n2", "n3", NULL};

    put_grid();
    for (int i = 0; online[i]; i++)
        node_online(online[i], 1);
    start_ipam(0, extra);
    start_ipam(1, extra);
    for (int i = 1; i <= 120; i++) {
        put_instance(online[i % 3], "web", i);
        if (i % 10 == 0)
            del_instance(online[(i - 5) % 3], "web", i - 5);
    }
    wait_consistent(online, 108, 30000);
    /* and it stays so */
    time_sleep_ms(1000);
    cr_assert_eq(check_consistent(online), 108);
    stop_ipam(0);
    stop_ipam(1);
}

Test(ipam, restart_changes_nothing)
{
    const char *online[] = {"n1", NULL};
    json_t *before, *after, *b2, *a2;

    put_grid();
    node_online("n1", 1);
    start_ipam(0, NULL);
    for (int i = 1; i <= 20; i++)
        put_instance("n1", "web", i);
    wait_consistent(online, 20, 20000);
    before = revisions(INST);
    b2 = revisions("/kontena/ipam/");
    stop_ipam(0);
    ctl_proc_cleanup(&ipams[0]);
    start_ipam(0, NULL);
    time_sleep_ms(1500);
    after = revisions(INST);
    a2 = revisions("/kontena/ipam/");
    cr_assert(json_equal(before, after), "instance keys were rewritten after a restart");
    cr_assert(json_equal(b2, a2), "ipam keys were rewritten after a restart");
    /* and new instances continue after the last address handed out (next fit) */
    put_instance("n1", "web", 21);
    wait_consistent(online, 21, 10000);
    json_decref(before);
    json_decref(after);
    json_decref(b2);
    json_decref(a2);
    stop_ipam(0);
}
