/* kontena-rescheduler against a real etcd, one of each per test. The test writes the keys
 * the API server and the scheduler would write (nodes, node_status, services, instances,
 * deploy records) and watches for the deploy records the rescheduler creates. Grace periods
 * are shortened with the rescheduler's flags. */
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
static struct ctl_proc rs[2];
static char *dir;

static void setup(void)
{
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_proc_start(&ep), 0, "cannot start etcd");
    o.endpoints = ep.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert_not_null(ec, "%s", e.msg);
    dir = proc_tempdir("resched");
}

static void teardown(void)
{
    for (size_t i = 0; i < 2; i++)
        if (rs[i].log)
            ctl_proc_cleanup(&rs[i]);
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&ep);
    if (dir)
        proc_rmtree(dir);
    FREE_AND_NULL(dir);
}

TestSuite(rescheduler, .init = setup, .fini = teardown, .timeout = 120);

/* Each test ends by stopping the rescheduler(s) and asserting a clean exit (status 0), so a
 * sanitizer report or a crash at shutdown fails the test. */
static void stop_clean(void)
{
    for (size_t i = 0; i < 2; i++)
        if (rs[i].pid > 0) {
            int st = ctl_proc_stop(&rs[i], SIGTERM);
            if (st != 0)
                proc_dump_file(rs[i].log);
            cr_assert_eq(st, 0, "%s did not exit cleanly (status %d)", rs[i].id, st);
        }
}

#define RTEST(name)                                                                                \
    static void name##_body(void);                                                                 \
    Test(rescheduler, name)                                                                        \
    {                                                                                              \
        name##_body();                                                                             \
        stop_clean();                                                                              \
    }                                                                                              \
    static void name##_body(void)

/* --- writing keys as the API server and the scheduler do ------------------------------------ */

static void put(const char *key, json_t *val) /* steals val */
{
    char *s = json_dumps(val, JSON_COMPACT);
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_put(ec, key, s, strlen(s), 0, NULL, NULL, &e), ST_OK, "put %s: %s", key,
                 e.msg);
    free(s);
    json_decref(val);
}

static void del(const char *key)
{
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_delete(ec, key, NULL, NULL, &e), ST_OK, "delete %s: %s", key, e.msg);
}

static json_t *get(const char *key)
{
    struct etcd_kv kv = {0};
    struct err e = ERR_INIT;
    json_t *v;

    if (etcd_get(ec, key, &kv, NULL, &e) != ST_OK)
        return NULL;
    v = json_loadb(kv.value, kv.value_len, 0, NULL);
    etcd_kv_release(&kv);
    return v;
}

/* ISO-8601 of now - ago_s seconds (static buffer, one per call site at a time). */
static const char *ago(double ago_s)
{
    static char buf[4][40];
    static int i;

    i = (i + 1) % 4;
    time_iso8601(time_now_us() - (int64_t)(ago_s * 1e6), buf[i], sizeof(buf[i]));
    return buf[i];
}

static int64_t node_numbers;

/* Node of grid lab; online: its status key exists, connected online_s seconds ago. */
static void node(const char *name, int online, double online_s)
{
    char *key = xasprintf("/kontena/nodes/lab/%s", name);
    json_t *n = json_pack("{s:s,s:s,s:s,s:I,s:s,s:[],s:i,s:I,s:s,s:s}", "id", name, "name", name,
                          "grid", "lab", "node_number", ++node_numbers, "availability", "active",
                          "labels", "cpus", 2, "mem_total", (json_int_t)4 << 30, "connected_at",
                          ago(online ? online_s : 3600), "last_seen_at", ago(online ? 0 : 3600));

    json_object_set_new(n, "disconnected_at", online ? json_null() : json_string(ago(3600)));
    put(key, n);
    free(key);
    key = xasprintf("/kontena/node_status/lab/%s", name);
    if (online)
        put(key, json_pack("{s:s,s:s,s:s,s:s}", "node", name, "node_id", name, "connected_at",
                           ago(online_s), "session", "t"));
    else
        del(key);
    free(key);
}

/* The node goes offline now, as the API server marks it when the agent's socket closes. */
static void node_lost(const char *name)
{
    char *key = xasprintf("/kontena/nodes/lab/%s", name), *skey;
    json_t *n = get(key);

    cr_assert_not_null(n);
    json_object_set_new(n, "disconnected_at", json_string(ago(0)));
    json_object_set_new(n, "last_seen_at", json_string(ago(0)));
    skey = xasprintf("/kontena/node_status/lab/%s", name);
    del(skey);
    put(key, n);
    free(skey);
    free(key);
}

static void node_set(const char *name, const char *field, json_t *v)
{
    char *key = xasprintf("/kontena/nodes/lab/%s", name);
    json_t *n = get(key);

    cr_assert_not_null(n);
    json_object_set_new(n, field, v);
    put(key, n);
    free(key);
}

/* A deploy record of lab/<stack>/<svc>. */
static void deploy(const char *id, const char *stack, const char *svc, const char *state)
{
    char *key = xasprintf("/kontena/deploys/lab/%s", id);
    char *sid = xasprintf("lab/%s/%s", stack, svc);
    int done = !strcmp(state, "success") || !strcmp(state, "error");

    put(key, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:s,s:i,s:i,s:b,s:[]}", "id",
                       id, "grid", "lab", "stack", stack, "service", svc, "service_id", sid,
                       "created_at", ago(3600), "queued_at", ago(3600), "started_at", ago(3600),
                       "finished_at", done ? json_string(ago(3600)) : json_null(),
                       "stack_deploy_id", json_null(), "state", state, "reason", "",
                       "instance_count", 1, "service_revision", 1, "force", 0, "instance_deploys"));
    free(sid);
    free(key);
}

struct svc_opts {
    const char *stack;    /* default "null" */
    const char *strategy; /* default "ha" */
    int instances;
    int stateful;
    const char *deploy_state;     /* of its last deploy, default "success" */
    double updated_s, deployed_s; /* ago; default both 3600 */
    int interval;
    const char *nodes[8]; /* where instances 1.. are */
};

static char *service_key(const char *stack, const char *name)
{
    return xasprintf("/kontena/services/lab/%s/%s", stack, name);
}

static void service(const char *name, struct svc_opts o)
{
    const char *stack = o.stack ? o.stack : "null";
    char *key = service_key(stack, name), *sid = xasprintf("lab/%s/%s", stack, name);
    char *did = xasprintf("0000000000000001-%s", name);
    json_t *s;

    deploy(did, stack, name, o.deploy_state ? o.deploy_state : "success");
    s = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:s,s:[],s:[],s:[],s:[],s:[],s:{s:f,s:n,s:o},"
                  "s:n,s:i,s:s,s:i,s:s,s:s,s:s,s:s,s:s}",
                  "id", sid, "grid", "lab", "stack", stack, "name", name, "image", "redis:3",
                  "stateful", o.stateful, "instances", o.instances, "strategy",
                  o.strategy ? o.strategy : "ha", "ports", "links", "affinity", "volumes",
                  "volumes_from", "deploy_opts", "min_health", 0.8, "wait_for_port", "interval",
                  o.interval ? json_integer(o.interval) : json_null(), "health_check", "revision",
                  1, "state", "running", "restart_generation", 0, "deploy_id", did, "created_at",
                  ago(7200), "updated_at", ago(o.updated_s ? o.updated_s : 3600), "deployed_at",
                  ago(o.deployed_s ? o.deployed_s : 3600), "net", "bridge");
    cr_assert_not_null(s);
    put(key, s);
    for (int i = 0; i < 8 && o.nodes[i]; i++) {
        char *ctr = strcmp(stack, "null") ? xasprintf("%s.%s-%d", stack, name, i + 1)
                                          : xasprintf("%s-%d", name, i + 1);
        char *ikey = xasprintf("/kontena/instances/lab/%s/%s", o.nodes[i], ctr);
        put(ikey, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:i,s:s,s:{s:s}}", "service_id", sid,
                            "grid", "lab", "stack", stack, "service", name, "instance_number",
                            i + 1, "revision", 1, "desired_state", "running", "restart_generation",
                            0, "deploy_id", did, "spec", "image", "redis:3"));
        free(ikey);
        free(ctr);
    }
    free(did);
    free(sid);
    free(key);
}

/* --- watching what the rescheduler does ---------------------------------------------------- */

/* The deploy records of service lab/<stack>/<name> in state created, as an array. */
static json_t *created_deploys(const char *stack, const char *name)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r = {0};
    struct err e = ERR_INIT;
    char *sid = xasprintf("lab/%s/%s", stack, name);
    json_t *out = json_array();

    cr_assert_eq(etcd_range(ec, "/kontena/deploys/lab/", &o, &r, &e), ST_OK, "%s", e.msg);
    for (size_t i = 0; i < r.n; i++) {
        json_t *v = json_loadb(r.kvs[i].value, r.kvs[i].value_len, 0, NULL);
        const char *s = json_string_value(json_object_get(v, "service_id"));
        const char *st = json_string_value(json_object_get(v, "state"));
        if (s && st && !strcmp(s, sid) && !strcmp(st, "created"))
            json_array_append(out, v);
        json_decref(v);
    }
    etcd_range_result_release(&r);
    free(sid);
    return out;
}

/* Wait up to ms for a created deploy of the service; the first one (new reference) or NULL. */
static json_t *wait_deploy(const char *stack, const char *name, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;

    for (;;) {
        json_t *l = created_deploys(stack, name), *d = json_incref(json_array_get(l, 0));
        json_decref(l);
        if (d || time_mono_ms() >= end)
            return d;
        time_sleep_ms(100);
    }
}

static void no_deploy_for(const char *stack, const char *name, int64_t ms)
{
    json_t *d = wait_deploy(stack, name, ms);

    cr_assert_null(d, "unexpected deploy of %s/%s: %s", stack, name, d ? json_dumps(d, 0) : "");
}

static void start(int replica, const char *const extra[])
{
    cr_assert_eq(ctl_proc_start(&rs[replica], dir, "rescheduler", replica + 1, ep.endpoint, extra),
                 0, "kontena-rescheduler did not start");
}

static void start_default(const char *grace_ha, const char *online)
{
    const char *extra[] = {"--grace-ha", grace_ha, "--online-grace", online, NULL};
    start(0, extra);
}

static void assert_reason(const json_t *d, const char *part)
{
    const char *r = json_string_value(json_object_get(d, "reason"));

    cr_assert(r && strstr(r, part), "reason '%s' lacks '%s'", r ? r : "(null)", part);
}

/* The service now points at deploy d. */
static void assert_service_deploy(const char *stack, const char *name, const json_t *d)
{
    char *key = service_key(stack, name);
    json_t *s = get(key);

    cr_assert_str_eq(json_string_value(json_object_get(s, "deploy_id")),
                     json_string_value(json_object_get(d, "id")));
    json_decref(s);
    free(key);
}

static void assert_metric(const char *line)
{
    char *url = ctl_proc_url(&rs[0], "/metrics");
    struct http_reply r;

    cr_assert_eq(http_do("GET", url, NULL, NULL, 0, NULL, &r), 0);
    cr_assert(r.body && strstr(r.body, line), "no '%s' in /metrics:\n%s", line,
              r.body ? r.body : "");
    http_reply_release(&r);
    free(url);
}

/* --- tests -------------------------------------------------------------------------------- */

RTEST(offline_node_moves_stateless_after_the_grace_only)
{
    json_t *d;
    int64_t lost_at;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    node("node-3", 1, 3600);
    service("web", (struct svc_opts){.instances = 2, .nodes = {"node-1", "node-2"}});
    service("db", (struct svc_opts){.instances = 1, .stateful = 1, .nodes = {"node-1"}});
    start_default("4s", "1s");
    /* Steady state: nothing to do. */
    no_deploy_for("null", "web", 1500);

    node_lost("node-1");
    lost_at = time_mono_ms();
    no_deploy_for("null", "web", 2500); /* within the 4 s grace */
    d = wait_deploy("null", "web", 4000 + 3000 - (time_mono_ms() - lost_at));
    cr_assert_not_null(d, "no deploy within grace + 3 s");
    cr_assert_geq(time_mono_ms() - lost_at, 3900, "deployed before the grace ended");
    assert_reason(d, "rescheduled: node node-1 offline since ");
    cr_assert(json_is_false(json_object_get(d, "force")));
    assert_service_deploy("null", "web", d);
    json_decref(d);
    no_deploy_for("null", "db", 500); /* stateful: never moved */
    assert_metric("kontena_rescheduler_deploys_total{reason=\"mismatch\"} 1");
}

RTEST(unfinished_deploy_or_stack_deploy_is_waited_for)
{
    json_t *d, *sd;
    char *key;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    node("node-3", 1, 3600);
    service("web", (struct svc_opts){
                       .instances = 2, .deploy_state = "ongoing", .nodes = {"node-1", "node-2"}});
    service("api",
            (struct svc_opts){.stack = "shop", .instances = 2, .nodes = {"node-1", "node-2"}});
    service("db",
            (struct svc_opts){
                .stack = "shop", .instances = 1, .deploy_state = "created", .nodes = {"node-3"}});
    /* shop's stack deploy is still running db's deploy. */
    sd = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:[s,s]}", "id", "sd-1", "grid", "lab", "stack",
                   "shop", "stack_id", "lab/shop", "stack_revision", 1, "created_at", ago(10),
                   "service_deploys", "0000000000000001-api", "0000000000000001-db");
    put("/kontena/stack_deploys/lab/sd-1", sd);
    node_lost("node-1");
    start_default("1s", "1s");
    no_deploy_for("null", "web", 3000);
    no_deploy_for("shop", "api", 100);

    /* The deploys end: both services are moved off node-1. */
    key = xasprintf("/kontena/deploys/lab/0000000000000001-web");
    d = get(key);
    json_object_set_new(d, "state", json_string("success"));
    json_object_set_new(d, "finished_at", json_string(ago(0)));
    put(key, d);
    free(key);
    d = wait_deploy("null", "web", 4000);
    cr_assert_not_null(d, "no deploy once the service's deploy finished");
    json_decref(d);
    key = xasprintf("/kontena/deploys/lab/0000000000000001-db");
    d = get(key);
    json_object_set_new(d, "state", json_string("error"));
    json_object_set_new(d, "finished_at", json_string(ago(0)));
    put(key, d);
    free(key);
    d = wait_deploy("shop", "api", 4000);
    cr_assert_not_null(d, "no deploy once the stack deploy finished");
    json_decref(d);
}

RTEST(service_saved_after_its_deploy_is_deployed)
{
    json_t *d;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    service("web",
            (struct svc_opts){
                .instances = 2, .updated_s = 10, .deployed_s = 20, .nodes = {"node-1", "node-2"}});
    service("ok",
            (struct svc_opts){
                .instances = 2, .updated_s = 20, .deployed_s = 10, .nodes = {"node-1", "node-2"}});
    start_default("2m", "1s");
    d = wait_deploy("null", "web", 3000);
    cr_assert_not_null(d);
    assert_reason(d, "rescheduled: does have older version running");
    assert_service_deploy("null", "web", d);
    json_decref(d);
    no_deploy_for("null", "ok", 500);
    /* Once deployed (deployed_at moved on), no second deploy. */
    time_sleep_ms(500);
    d = created_deploys("null", "web");
    cr_assert_eq(json_array_size(d), 1);
    json_decref(d);
}

RTEST(interval_forces_a_deploy_with_a_new_revision)
{
    json_t *d, *s;
    char *key = service_key("null", "cron");
    int64_t t0;

    node("node-1", 1, 3600);
    service("cron", (struct svc_opts){.instances = 1,
                                      .interval = 3,
                                      .updated_s = 3600,
                                      .deployed_s = 1,
                                      .nodes = {"node-1"}});
    t0 = time_mono_ms();
    start_default("2m", "1s");
    d = wait_deploy("null", "cron", 6000);
    cr_assert_not_null(d, "no deploy after the interval");
    cr_assert_geq(time_mono_ms() - t0, 1500, "deployed before the interval passed");
    assert_reason(d, "rescheduled: deploy interval has passed");
    cr_assert(json_is_true(json_object_get(d, "force")));
    cr_assert_eq(json_integer_value(json_object_get(d, "service_revision")), 2);
    s = get(key);
    cr_assert_eq(json_integer_value(json_object_get(s, "revision")), 2);
    json_decref(s);
    json_decref(d);
    free(key);
}

RTEST(new_node_gets_instances_only_after_the_online_grace)
{
    json_t *d;
    int64_t t0;

    node("node-1", 1, 3600);
    service("web", (struct svc_opts){.instances = 2, .nodes = {"node-1", "node-1"}});
    start_default("2m", "4s");
    no_deploy_for("null", "web", 1000);
    node("node-2", 1, 0);
    t0 = time_mono_ms();
    no_deploy_for("null", "web", 2500);
    d = wait_deploy("null", "web", 4000 + 3000 - (time_mono_ms() - t0));
    cr_assert_not_null(d, "no rebalance after the online grace");
    cr_assert_geq(time_mono_ms() - t0, 3500, "rebalanced during the online grace");
    assert_reason(d, "rescheduled: has wrong number of instances (or they are not distributed "
                     "correctly)");
    json_decref(d);
}

RTEST(drain_moves_stateless_services_only)
{
    json_t *d;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    service("web", (struct svc_opts){.instances = 2, .nodes = {"node-1", "node-2"}});
    service("db", (struct svc_opts){.instances = 1, .stateful = 1, .nodes = {"node-2"}});
    start_default("2m", "1s");
    no_deploy_for("null", "web", 1000);
    node_set("node-2", "availability", json_string("drain"));
    d = wait_deploy("null", "web", 3000);
    cr_assert_not_null(d, "drain did not move web");
    assert_reason(d, "rescheduled: node node-2 drained");
    json_decref(d);
    no_deploy_for("null", "db", 500);
}

RTEST(removed_node_leaves_instances_to_replace)
{
    json_t *d;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    service("web", (struct svc_opts){.instances = 2, .nodes = {"node-1", "node-2"}});
    start_default("2m", "1s");
    no_deploy_for("null", "web", 1000);
    del("/kontena/node_status/lab/node-2");
    del("/kontena/nodes/lab/node-2");
    d = wait_deploy("null", "web", 3000);
    cr_assert_not_null(d, "removing node-2 did not deploy web");
    assert_reason(d, "rescheduled: node node-2 removed");
    json_decref(d);
}

RTEST(two_replicas_create_one_deploy)
{
    const char *extra[] = {"--grace-ha", "1s", "--online-grace", "1s", NULL};
    json_t *l;

    node("node-1", 1, 3600);
    node("node-2", 1, 3600);
    node("node-3", 1, 3600);
    service("web", (struct svc_opts){.instances = 2, .nodes = {"node-1", "node-2"}});
    start(0, extra);
    start(1, extra);
    node_lost("node-1");
    json_decref(wait_deploy("null", "web", 5000));
    time_sleep_ms(2000);
    l = created_deploys("null", "web");
    cr_assert_eq(json_array_size(l), 1, "%zu deploys: %s", json_array_size(l), json_dumps(l, 0));
    json_decref(l);
}
