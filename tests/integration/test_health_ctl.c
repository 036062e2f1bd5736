/* kontena-health against a real etcd, one of each per test. The test writes instance keys
 * (as the scheduler does) and observed keys with health results (as the agents do) and
 * checks the health_restarts the controller asks for. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static struct etcd_proc ep;
static struct etcd *ec;
static struct ctl_proc hc;
static char *dir;

#define IKEY "/kontena/instances/lab/node-1/web-1"
#define OKEY "/kontena/observed/lab/node-1/web-1"

static void setup(void)
{
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_proc_start(&ep), 0, "cannot start etcd");
    o.endpoints = ep.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert_not_null(ec, "%s", e.msg);
    dir = proc_tempdir("healthctl");
}

static void teardown(void)
{
    if (hc.log)
        ctl_proc_cleanup(&hc);
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&ep);
    if (dir)
        proc_rmtree(dir);
    FREE_AND_NULL(dir);
}

TestSuite(health_ctl, .init = setup, .fini = teardown, .timeout = 60);

/* Each test ends by stopping kontena-health and asserting a clean exit (status 0), so a
 * sanitizer report or a crash at shutdown fails the test. */
#define HTEST(name)                                                                                \
    static void name##_body(void);                                                                 \
    Test(health_ctl, name)                                                                         \
    {                                                                                              \
        int st;                                                                                    \
        name##_body();                                                                             \
        st = ctl_proc_stop(&hc, SIGTERM);                                                          \
        if (st != 0)                                                                               \
            proc_dump_file(hc.log);                                                                \
        cr_assert_eq(st, 0, "kontena-health did not exit cleanly (status %d)", st);                \
    }                                                                                              \
    static void name##_body(void)

static void put(const char *key, json_t *val) /* steals val */
{
    char *s = json_dumps(val, JSON_COMPACT);
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_put(ec, key, s, strlen(s), 0, NULL, NULL, &e), ST_OK, "put %s: %s", key,
                 e.msg);
    free(s);
    json_decref(val);
}

static json_t *get(const char *key)
{
    struct etcd_kv kv = {0};
    struct err e = ERR_INIT;
    json_t *v;

    cr_assert_eq(etcd_get(ec, key, &kv, NULL, &e), ST_OK, "get %s: %s", key, e.msg);
    v = json_loadb(kv.value, kv.value_len, 0, NULL);
    etcd_kv_release(&kv);
    return v;
}

static void start(const char *threshold)
{
    const char *extra[] = {"--threshold", threshold, NULL};

    cr_assert_eq(ctl_proc_start(&hc, dir, "health", 1, ep.endpoint, extra), 0,
                 "kontena-health did not start");
}

static void instance(void)
{
    put(IKEY, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:{s:s,s:{s:s,s:i}}}", "service_id",
                        "lab/null/web", "grid", "lab", "stack", "null", "service", "web",
                        "instance_number", 1, "revision", 1, "desired_state", "running",
                        "restart_generation", 0, "spec", "image", "redis:3", "health_check",
                        "protocol", "tcp", "port", 6379));
}

/* What the agent reports: the container started at started (ISO), the health restarts it
 * applied, and failures consecutive failed checks (0: healthy). */
static void observed(const char *started, int applied, int failures)
{
    put(OKEY,
        json_pack("{s:s,s:s,s:i,s:s,s:i,s:{s:s,s:o,s:s,s:i}}", "state", "running", "container_id",
                  "abc", "revision", 1, "started_at", started, "health_restarts", applied, "health",
                  "status", failures ? "unhealthy" : "healthy", "status_code",
                  failures ? json_null() : json_integer(200), "checked_at", started, "failures",
                  failures));
}

static long long restarts(void)
{
    json_t *v = get(IKEY);
    long long n = json_integer_value(json_object_get(v, "health_restarts"));

    json_decref(v);
    return n;
}

/* Wait up to ms for health_restarts to reach want; its value then. */
static long long wait_restarts(long long want, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;
    long long n;

    while ((n = restarts()) < want && time_mono_ms() < end)
        time_sleep_ms(100);
    return n;
}

static void now_iso(char *buf, size_t len, int64_t plus_ms)
{
    time_iso8601(time_now_us() + plus_ms * 1000, buf, len);
}

HTEST(unhealthy_container_is_restarted_once_per_run)
{
    char t0[40], t1[40];
    json_t *v;
    struct http_reply r;
    char *url;

    instance();
    now_iso(t0, sizeof(t0), -60000);
    observed(t0, 0, 0);
    start("1");
    time_sleep_ms(1000);
    cr_assert_eq(restarts(), 0, "a healthy container was restarted");

    observed(t0, 0, 1);
    cr_assert_eq(wait_restarts(1, 5000), 1, "no restart for an unhealthy container");
    v = get(IKEY);
    cr_assert(json_is_string(json_object_get(v, "health_restarted_at")));
    cr_assert_str_eq(json_string_value(json_object_get(v, "desired_state")), "running",
                     "fields the controller does not own are kept");
    json_decref(v);

    /* More failures of the same run, and the agent applying the restart late: no second
     * restart until a new container run starts. */
    observed(t0, 0, 2);
    time_sleep_ms(800);
    observed(t0, 1, 3);
    time_sleep_ms(1500);
    cr_assert_eq(restarts(), 1, "the same failure run was restarted twice");

    /* The restarted container fails again: one more restart. */
    now_iso(t1, sizeof(t1), 1000);
    observed(t1, 1, 1);
    cr_assert_eq(wait_restarts(2, 5000), 2, "no restart for the new run's failure");
    time_sleep_ms(1000);
    cr_assert_eq(restarts(), 2);

    url = ctl_proc_url(&hc, "/metrics");
    cr_assert_eq(http_do("GET", url, NULL, NULL, 0, NULL, &r), 0);
    cr_assert(r.body && strstr(r.body, "kontena_health_restarts_total 2"), "%s",
              r.body ? r.body : "");
    http_reply_release(&r);
    free(url);
}

HTEST(threshold_counts_consecutive_failures)
{
    char t0[40];

    instance();
    now_iso(t0, sizeof(t0), -60000);
    observed(t0, 0, 1);
    start("3");
    time_sleep_ms(800);
    observed(t0, 0, 2);
    time_sleep_ms(1500);
    cr_assert_eq(restarts(), 0, "restarted below the threshold");
    observed(t0, 0, 3);
    cr_assert_eq(wait_restarts(1, 5000), 1, "no restart at the threshold");
}
