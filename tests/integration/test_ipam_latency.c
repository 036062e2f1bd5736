/* tests/integration/test_ipam_latency.c -- kontena-ipam addresses instances created after its
 * first pass at once (on the watch), not at its next resync.
 *
 * A real etcd and kontena-apiserver (api_fixture.h), fake online nodes (node + node_status
 * keys, as the agents' endpoint writes them), a real kontena-scheduler and kontena-ipam with
 * the default 30 s --resync-interval. Once ipam has done its first pass (the grid's pool
 * key exists), a stack is installed and deployed through the API; every instance the
 * scheduler places must hold an overlay address within a bound far below the resync
 * interval (a correctness bound: a missed watch event shows as ~30 s). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/api_fixture.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define GRID "grd"
#define BOUND_MS 5000 /* every instance addressed within this; the resync is 30 s */

static struct etcd *ec;
static struct ctl_proc sched, ipam;
static struct http_reply rep;

static void init(void)
{
    struct etcd_opts o = {0};

    api_fixture_setup();
    o.endpoints = etcd.endpoint;
    ec = etcd_create(&o, NULL);
    cr_assert_not_null(ec);
}

static void fini(void)
{
    ctl_proc_cleanup(&sched);
    ctl_proc_cleanup(&ipam);
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    etcd_destroy(ec);
    ec = NULL;
    api_fixture_teardown();
}

TestSuite(ipam_latency, .init = init, .fini = fini, .timeout = 120);

/* JSON written with single quotes: 'x' -> "x". */
static char *jq(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

static long call(const char *method, const char *path, const char *fmt, ...)
{
    char *u = xasprintf("%s%s", api.url, path), *body = NULL, *raw = NULL;
    va_list ap;

    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    if (fmt) {
        va_start(ap, fmt);
        if (vasprintf(&raw, fmt, ap) < 0)
            cr_assert_fail("vasprintf");
        va_end(ap);
        body = jq(raw);
        free(raw);
    }
    cr_assert_eq(http_do(method, u, api_proc_admin_token(&api), body, (size_t)-1, NULL, &rep), 0,
                 "%s %s", method, path);
    free(u);
    free(body);
    return rep.status;
}

#define EXPECT(code, m, ...)                                                                       \
    do {                                                                                           \
        long got_ = call(m, __VA_ARGS__);                                                          \
        cr_assert_eq(got_, code, "%s -> %ld %s", m, got_, rep.body);                               \
    } while (0)

static void put(const char *key, const char *fmt, ...)
{
    char *raw = NULL, *v;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&raw, fmt, ap) < 0)
        cr_assert_fail("vasprintf");
    va_end(ap);
    v = jq(raw);
    cr_assert_eq(etcd_put(ec, key, v, strlen(v), 0, NULL, NULL, NULL), ST_OK, "put %s", key);
    free(raw);
    free(v);
}

/* An online node as the agents' endpoint writes it: node key + status key. */
static void fake_node(const char *name, int number)
{
    {
        char *k = xasprintf("/kontena/nodes/%s/%s", GRID, name);
        put(k,
            "{'id':'%s/%s','grid':'%s','node_id':'ID-%s','name':'%s','node_number':%d,"
            "'labels':[],'availability':'active','cpus':2,'mem_total':4294967296,"
            "'connected_at':'2026-01-01T00:00:00Z','created_at':'2026-01-01T00:00:00Z',"
            "'updated_at':'2026-01-01T00:00:00Z'}",
            GRID, name, GRID, name, name, number);
        free(k);
        k = xasprintf("/kontena/node_status/%s/%s", GRID, name);
        put(k, "{'node':'%s','node_id':'ID-%s','connected_at':'2026-01-01T00:00:00Z',"
               "'session':'s'}",
            name, name);
        free(k);
    }
}

static int key_exists(const char *key)
{
    struct etcd_kv kv = {0};
    int ok = etcd_get(ec, key, &kv, NULL, NULL) == ST_OK;
    etcd_kv_release(&kv);
    return ok;
}

/* Instance keys of the grid, and how many of them hold overlay_cidr. */
static size_t count_instances(size_t *addressed)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    size_t n;

    *addressed = 0;
    cr_assert_eq(etcd_range(ec, "/kontena/instances/" GRID "/", &ro, &res, NULL), ST_OK);
    n = res.n;
    for (size_t i = 0; i < res.n; i++) {
        json_t *v = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
        if (json_string_value(json_object_get(v, "overlay_cidr")))
            (*addressed)++;
        json_decref(v);
    }
    etcd_range_result_release(&res);
    return n;
}

static void stop_checked(struct ctl_proc *p)
{
    int ws = ctl_proc_stop(p, SIGTERM);
    if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        proc_dump_file(p->log);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "kontena-%s did not exit cleanly (wait status %d)", p->name, ws);
}

API_TEST(ipam_latency, a_stack_installed_after_the_first_pass_is_addressed_without_a_resync)
{
    const size_t want = 6;
    int64_t t0, waited;
    size_t n = 0, addressed = 0;

    EXPECT(201, "POST", "/v1/grids", "{'name':'" GRID "'}");
    fake_node("node-1", 1);
    fake_node("node-2", 2);
    fake_node("node-3", 3);
    cr_assert_eq(ctl_proc_start(&sched, api.dir, "scheduler", 1, etcd.endpoint, NULL), 0,
                 "kontena-scheduler did not start");
    cr_assert_eq(ctl_proc_start(&ipam, api.dir, "ipam", 1, etcd.endpoint, NULL), 0,
                 "kontena-ipam did not start");
    /* ipam's first pass: it creates the grid's pool */
    for (int i = 0; !key_exists("/kontena/ipam/" GRID "/pool"); i++) {
        cr_assert_lt(i, 200, "kontena-ipam made no pool for grid " GRID);
        time_sleep_ms(50);
    }
    time_sleep_ms(1000); /* well after the first pass, well before the resync (30 s) */

    EXPECT(201, "POST", "/v1/grids/" GRID "/stacks",
           "{'name':'web','stack':'test/web','version':'1.0.0','services':["
           "{'name':'a','image':'busybox','instances':3},"
           "{'name':'b','image':'busybox','instances':3}]}");
    t0 = time_mono_ms();
    EXPECT(200, "POST", "/v1/stacks/" GRID "/web/deploy", NULL);
    for (;;) {
        n = count_instances(&addressed);
        waited = time_mono_ms() - t0;
        if ((n == want && addressed == want) || waited > 40000)
            break;
        time_sleep_ms(50);
    }
    cr_log_info("%zu/%zu instances addressed %lld ms after the deploy", addressed, n,
                (long long)waited);
    fprintf(stderr, "ipam_latency: %zu/%zu instances addressed %lld ms after the deploy\n",
            addressed, n, (long long)waited);
    if (waited > BOUND_MS) {
        proc_dump_file(ipam.log);
        proc_dump_file(sched.log);
    }
    cr_assert_eq(n, want, "the scheduler placed %zu instances, want %zu", n, want);
    cr_assert_eq(addressed, want, "%zu of %zu instances hold an address", addressed, want);
    cr_assert_leq(waited, BOUND_MS, "every instance addressed only after %lld ms (bound %d ms)",
                  (long long)waited, BOUND_MS);
    stop_checked(&ipam);
    stop_checked(&sched);
}
