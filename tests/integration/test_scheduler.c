/* kontena-scheduler against a real etcd and a real kontena-apiserver (issue 5, point 2).
 *
 * Suite `scheduler`: no agents. Nodes are faked the way the API server's agents' endpoint
 * writes them: a node key plus a node_status key (online = the status key exists). Services
 * and deploys go through the API; what the scheduler wrote is read from etcd directly.
 *
 * Suite `scheduler_agents`: 2 real kontena-agents on the real dockerd plus kontena-ipam
 * (containers start only once they have an overlay address), and two scheduler replicas. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/deployrec.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/agent_proc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/docker_env.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    docker_env_global_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
}

static char *tok;
static struct http_reply rep;
static struct etcd *ec;
static struct ctl_proc sched[2], ipam;
static char *grid; /* "grd" without agents; "<run id>-<n>" with */
/* Container names are global on the one dockerd: with agents, the service's name is unique to
 * the run and the test ("<run id>-<what>"), so parallel tests and runs never collide. */
static char *agent_svc;

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
    for (int i = 0; i < 2; i++)
        ctl_proc_cleanup(&sched[i]);
    ctl_proc_cleanup(&ipam);
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    FREE_AND_NULL(tok);
    etcd_destroy(ec);
    ec = NULL;
    api_fixture_teardown();
}

TestSuite(scheduler, .init = init, .fini = fini, .timeout = 120);

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
    cr_assert_eq(http_do(method, u, tok, body, (size_t)-1, NULL, &rep), 0, "%s %s", method, path);
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

/* A fake node as the agents' endpoint writes it; online adds its status key. */
static void fake_node(const char *name, int number, const char *labels, int online)
{
    char *k = xasprintf("/kontena/nodes/%s/%s", grid, name);
    put(k,
        "{'id':'%s/%s','grid':'%s','node_id':'ID-%s','name':'%s','node_number':%d,'labels':[%s],"
        "'availability':'active','cpus':2,'mem_total':4294967296,'connected_at':'2026-01-01T00:00:"
        "00Z',"
        "'created_at':'2026-01-01T00:00:00Z','updated_at':'2026-01-01T00:00:00Z'}",
        grid, name, grid, name, name, number, labels ? labels : "");
    free(k);
    if (online) {
        k = xasprintf("/kontena/node_status/%s/%s", grid, name);
        put(k,
            "{'node':'%s','node_id':'ID-%s','connected_at':'2026-01-01T00:00:00Z','session':'s'}",
            name, name);
        free(k);
    }
}

static void start_scheduler(int replica)
{
    cr_assert_eq(
        ctl_proc_start(&sched[replica], api.dir, "scheduler", replica + 1, etcd.endpoint, NULL), 0,
        "kontena-scheduler did not start");
}

static void setup_grid(const char *name)
{
    grid = xstrdup(name);
    tok = xstrdup(api_proc_admin_token(&api));
    EXPECT(201, "POST", "/v1/grids", "{'name':'%s'}", grid);
}

/* Every key under prefix as a JSON object {key: value}. */
static json_t *etcd_list(const char *prefix)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    json_t *out = json_object();

    cr_assert_eq(etcd_range(ec, prefix, &ro, &res, NULL), ST_OK);
    for (size_t i = 0; i < res.n; i++) {
        json_t *v = json_loads(res.kvs[i].value, 0, NULL);
        json_object_set_new(out, res.kvs[i].key + strlen(prefix), v ? v : json_null());
    }
    etcd_range_result_release(&res);
    return out;
}

/* The instance keys of the grid: {"<node>/<container>": value}. */
static json_t *instances(void)
{
    char *p = xasprintf("/kontena/instances/%s/", grid);
    json_t *o = etcd_list(p);
    free(p);
    return o;
}

static json_t *get_json(const char *key)
{
    struct etcd_kv kv = {0};
    json_t *v = NULL;
    if (etcd_get(ec, key, &kv, NULL, NULL) == ST_OK)
        v = json_loads(kv.value, 0, NULL);
    etcd_kv_release(&kv);
    return v;
}

/* The current deploy record of a service (via its deploy_id). */
static json_t *deploy_of(const char *stack, const char *svc)
{
    char *k = xasprintf("/kontena/services/%s/%s/%s", grid, stack, svc);
    json_t *s = get_json(k), *d = NULL;
    free(k);
    if (s && json_string_value(json_object_get(s, "deploy_id"))) {
        k = xasprintf("/kontena/deploys/%s/%s", grid,
                      json_string_value(json_object_get(s, "deploy_id")));
        d = get_json(k);
        free(k);
    }
    json_decref(s);
    return d;
}

static const char *js(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(none)";
}

typedef int (*cond_fn)(void *arg);

static int wait_for(cond_fn f, void *arg, int timeout_ms)
{
    int64_t end = time_mono_ms() + timeout_ms;
    while (time_mono_ms() < end) {
        if (f(arg))
            return 1;
        time_sleep_ms(100);
    }
    return f(arg);
}

struct count_arg {
    const char *service; /* service name or NULL for all */
    size_t want;
};

static size_t count_instances(const char *service, json_t **out)
{
    json_t *all = instances(), *v;
    const char *k;
    size_t n = 0;
    json_object_foreach(all, k, v) if (!service || strcmp(js(v, "service"), service) == 0) n++;
    if (out)
        *out = all;
    else
        json_decref(all);
    return n;
}

static int has_count(void *arg)
{
    struct count_arg *a = arg;
    return count_instances(a->service, NULL) == a->want;
}

#define WAIT_COUNT(svc, n)                                                                         \
    do {                                                                                           \
        struct count_arg a_ = {svc, n};                                                            \
        cr_assert(wait_for(has_count, &a_, 15000), "expected %zu instances of %s, have %zu",       \
                  (size_t)(n), svc ? svc : "all", count_instances(svc, NULL));                     \
    } while (0)

struct deploy_arg {
    const char *stack, *svc, *state;
};

static int deploy_in(void *arg)
{
    struct deploy_arg *a = arg;
    json_t *d = deploy_of(a->stack, a->svc);
    int ok = d && strcmp(js(d, "state"), a->state) == 0;
    json_decref(d);
    return ok;
}

static json_t *wait_deploy(const char *stack, const char *svc, const char *state)
{
    struct deploy_arg a = {stack, svc, state};
    json_t *d;
    int ok = wait_for(deploy_in, &a, 15000);
    d = deploy_of(stack, svc);
    cr_assert(ok, "deploy of %s/%s not %s: %s", stack, svc, state,
              d ? json_dumps(d, JSON_COMPACT) : "(none)");
    return d;
}

/* Node name of every instance of svc, indexed by instance number (fresh JSON array). */
static json_t *node_by_number(const char *svc, int max)
{
    json_t *all = instances(), *v, *out = json_array();
    const char *k;
    for (int i = 0; i <= max; i++)
        json_array_append_new(out, json_null());
    json_object_foreach(all, k, v)
    {
        json_int_t n = json_integer_value(json_object_get(v, "instance_number"));
        if (strcmp(js(v, "service"), svc) != 0 || n < 1 || n > max)
            continue;
        json_array_set_new(out, (size_t)n, json_stringn(k, (size_t)(strchr(k, '/') - k)));
    }
    json_decref(all);
    return out;
}

/* Stop every running scheduler replica; fails the test unless each exited with status 0 (a
 * sanitizer report or a crash at shutdown), with its log on stderr. */
static void stop_schedulers_checked(void)
{
    for (int i = 0; i < 2; i++) {
        int ws;
        if (sched[i].pid <= 0)
            continue;
        ws = ctl_proc_stop(&sched[i], SIGTERM);
        if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            proc_dump_file(sched[i].log);
        cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
                  "kontena-scheduler %d did not exit cleanly (wait status %d)", i + 1, ws);
    }
}

#define SCHED_TEST(suite, name)                                                                    \
    static void name##_body(void);                                                                 \
    Test(suite, name)                                                                              \
    {                                                                                              \
        name##_body();                                                                             \
        stop_schedulers_checked();                                                                 \
    }                                                                                              \
    static void name##_body(void)

/* --- tests without agents --------------------------------------------------------------- */

SCHED_TEST(scheduler, ha_service_spreads_over_online_nodes_with_deploy_record_ongoing)
{
    json_t *all, *v, *d;
    const char *k;
    int per_node[4] = {0};

    setup_grid("grd");
    fake_node("node-1", 1, "'az=a'", 1);
    fake_node("node-2", 2, "'az=b'", 1);
    fake_node("node-3", 3, "'az=c'", 1);
    fake_node("node-4", 4, "'az=d'", 0); /* offline: never a candidate */
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'busybox','instances':3,'env':['A=1'],'cmd':['sleep','1000'],"
           "'ports':[{'node_port':8080,'container_port':80}],'memory':67108864,"
           "'health_check':{'protocol':'tcp','port':80},'deploy_opts':{'wait_for_port':80}}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    WAIT_COUNT("web", 3);
    all = instances();
    json_object_foreach(all, k, v)
    {
        const json_t *spec = json_object_get(v, "spec");
        cr_assert(strncmp(k, "node-4/", 7) != 0, "instance on the offline node: %s", k);
        per_node[k[5] - '1']++;
        cr_assert_str_eq(js(v, "desired_state"), "running");
        cr_assert_str_eq(js(v, "service_id"), "grd/null/web");
        cr_assert_str_eq(js(spec, "image"), "busybox");
        cr_assert_eq(json_integer_value(json_object_get(spec, "memory")), 67108864);
        cr_assert_eq(json_integer_value(json_object_get(spec, "wait_for_port")), 80);
        cr_assert_str_eq(js(json_object_get(spec, "health_check"), "protocol"), "tcp");
        cr_assert_eq(json_integer_value(json_object_get(
                         json_array_get(json_object_get(spec, "ports"), 0), "node_port")),
                     8080);
        cr_assert(strstr(k, "/web-") != NULL, "container name %s", k);
    }
    json_decref(all);
    cr_assert(per_node[0] == 1 && per_node[1] == 1 && per_node[2] == 1,
              "ha did not spread: %d %d %d", per_node[0], per_node[1], per_node[2]);
    d = wait_deploy("null", "web", "ongoing");
    cr_assert_eq(json_array_size(json_object_get(d, "instance_deploys")), 3);
    cr_assert_str_eq(js(json_array_get(json_object_get(d, "instance_deploys"), 0), "state"),
                     "ongoing");
    cr_assert(strncmp(js(d, "reason"), "waiting for web-", 16) == 0, "reason: %s", js(d, "reason"));
    cr_assert(json_string_value(json_object_get(d, "started_at")) != NULL);
    json_decref(d);
}

SCHED_TEST(scheduler, daemon_places_instances_per_node_and_random_only_online)
{
    json_t *all, *v;
    const char *k;
    int per_node[3] = {0};

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    fake_node("node-3", 3, NULL, 0);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'agent','image':'busybox','strategy':'daemon','instances':2}");
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'rnd','image':'busybox','strategy':'random','instances':5}");
    EXPECT(200, "POST", "/v1/services/grd/null/agent/deploy", "{}");
    EXPECT(200, "POST", "/v1/services/grd/null/rnd/deploy", "{}");
    WAIT_COUNT("agent", 4);
    WAIT_COUNT("rnd", 5);
    all = instances();
    json_object_foreach(all, k, v)
    {
        cr_assert(strncmp(k, "node-3/", 7) != 0, "instance on the offline node: %s", k);
        if (strcmp(js(v, "service"), "agent") == 0)
            per_node[k[5] - '1']++;
    }
    json_decref(all);
    cr_assert(per_node[0] == 2 && per_node[1] == 2, "daemon: %d %d", per_node[0], per_node[1]);
}

static void observe_running(int rev);

/* With no node online a daemon service plans N = 0: the deploy must fail, not delete
 * every instance (the nodes may come back). */
SCHED_TEST(scheduler, daemon_deploy_with_no_node_online_fails_and_keeps_its_instances)
{
    json_t *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'agent','image':'busybox','strategy':'daemon','instances':1}");
    EXPECT(200, "POST", "/v1/services/grd/null/agent/deploy", "{}");
    WAIT_COUNT("agent", 2);
    /* the first deploy finishes (an unfinished one would follow each node going away) */
    observe_running(1);
    json_decref(wait_deploy("null", "agent", "success"));
    cr_assert_eq(etcd_delete(ec, "/kontena/node_status/grd/", ETCD_PREFIX, NULL, NULL), ST_OK);
    EXPECT(200, "POST", "/v1/services/grd/null/agent/deploy", "{}");
    d = wait_deploy("null", "agent", "error");
    cr_assert(strstr(js(d, "reason"), "There are no nodes available"), "reason: %s",
              js(d, "reason"));
    json_decref(d);
    {
        json_t *all = NULL;
        size_t n = count_instances("agent", &all);
        char *txt = json_dumps(all, JSON_COMPACT);
        cr_assert_eq(n, 2, "the failed deploy changed the instances: %s", txt);
        free(txt);
        json_decref(all);
    }
}

SCHED_TEST(scheduler, scale_up_then_down_deletes_the_highest_numbers)
{
    json_t *nodes;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox','instances':1}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    WAIT_COUNT("web", 1);
    EXPECT(200, "POST", "/v1/services/grd/null/web/scale", "{'instances':5}");
    WAIT_COUNT("web", 5);
    EXPECT(200, "POST", "/v1/services/grd/null/web/scale", "{'instances':2}");
    WAIT_COUNT("web", 2);
    nodes = node_by_number("web", 5);
    cr_assert(json_is_string(json_array_get(nodes, 1)) && json_is_string(json_array_get(nodes, 2)),
              "instances 1 and 2 must remain: %s", json_dumps(nodes, JSON_COMPACT));
    json_decref(nodes);
}

SCHED_TEST(scheduler, unsatisfiable_affinity_fails_the_deploy_with_the_original_text)
{
    json_t *d, *id;

    setup_grid("grd");
    fake_node("node-1", 1, "'az=a'", 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'busybox','affinity':['label==az=nowhere']}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    d = wait_deploy("null", "web", "error");
    cr_assert_str_eq(js(d, "reason"),
                     "Cannot find applicable node for service instance grd/null/web-1: Did not "
                     "find any nodes for affinity filter: label==az=nowhere");
    id = json_array_get(json_object_get(d, "instance_deploys"), 0);
    cr_assert_str_eq(js(id, "state"), "error");
    cr_assert(json_string_value(json_object_get(d, "finished_at")) != NULL);
    cr_assert_eq(count_instances(NULL, NULL), 0);
    json_decref(d);
}

SCHED_TEST(scheduler, port_conflict_between_services_placed_back_to_back)
{
    json_t *a, *b, *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    fake_node("node-3", 3, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'a','image':'busybox','instances':2,'ports':['8080:80']}");
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'b','image':'busybox','instances':1,'ports':['8080:80']}");
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'c','image':'busybox','instances':1,'ports':['8080:80']}");
    /* Back to back: the scheduler must see a's placements when it places b, and b's for c. */
    EXPECT(200, "POST", "/v1/services/grd/null/a/deploy", "{}");
    EXPECT(200, "POST", "/v1/services/grd/null/b/deploy", "{}");
    WAIT_COUNT("a", 2);
    WAIT_COUNT("b", 1);
    a = node_by_number("a", 2);
    b = node_by_number("b", 1);
    cr_assert(strcmp(json_string_value(json_array_get(b, 1)),
                     json_string_value(json_array_get(a, 1))) != 0 &&
                  strcmp(json_string_value(json_array_get(b, 1)),
                         json_string_value(json_array_get(a, 2))) != 0,
              "b shares port 8080 with a: a=%s b=%s", json_dumps(a, JSON_COMPACT),
              json_dumps(b, JSON_COMPACT));
    /* Every node has 8080 taken now: c cannot be placed. */
    EXPECT(200, "POST", "/v1/services/grd/null/c/deploy", "{}");
    d = wait_deploy("null", "c", "error");
    cr_assert(
        strstr(js(d, "reason"), "Cannot find applicable node for service instance grd/null/c-1") ==
            js(d, "reason"),
        "reason: %s", js(d, "reason"));
    json_decref(a);
    json_decref(b);
    json_decref(d);
}

struct field_arg {
    const char *field;
    const char *want_str; /* or */
    json_int_t want_int;
};

static int all_have(void *arg)
{
    struct field_arg *f = arg;
    json_t *all = instances(), *v;
    const char *k;
    int ok = json_object_size(all) > 0;
    json_object_foreach(all, k, v)
    {
        json_t *x = json_object_get(v, f->field);
        if (f->want_str ? !json_is_string(x) || strcmp(json_string_value(x), f->want_str) != 0
                        : json_integer_value(x) != f->want_int)
            ok = 0;
    }
    json_decref(all);
    return ok;
}

SCHED_TEST(scheduler, stop_start_restart_and_removal_reach_the_instance_keys)
{
    struct field_arg stopped = {"desired_state", "stopped", 0};
    struct field_arg running = {"desired_state", "running", 0};
    struct field_arg gen1 = {"restart_generation", NULL, 1};

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox','instances':2}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    WAIT_COUNT("web", 2);
    EXPECT(200, "POST", "/v1/services/grd/null/web/stop", NULL);
    cr_assert(wait_for(all_have, &stopped, 10000), "instances not stopped");
    EXPECT(200, "POST", "/v1/services/grd/null/web/start", NULL);
    cr_assert(wait_for(all_have, &running, 10000), "instances not running again");
    EXPECT(200, "POST", "/v1/services/grd/null/web/restart", NULL);
    cr_assert(wait_for(all_have, &gen1, 10000), "restart_generation not 1");
    cr_assert_eq(count_instances("web", NULL), 2, "start/stop must not re-place");
    EXPECT(200, "DELETE", "/v1/services/grd/null/web", NULL);
    WAIT_COUNT(NULL, 0);
}

SCHED_TEST(scheduler, stateful_instance_on_a_drained_node_is_stopped_not_moved)
{
    struct field_arg stopped = {"desired_state", "stopped", 0};
    struct field_arg running = {"desired_state", "running", 0};
    json_t *all;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'db','image':'busybox','stateful':true}");
    EXPECT(200, "POST", "/v1/services/grd/null/db/deploy", "{}");
    WAIT_COUNT("db", 1);
    fake_node("node-2", 2, NULL, 1);
    EXPECT(200, "PUT", "/v1/nodes/grd/node-1", "{'availability':'drain'}");
    cr_assert(wait_for(all_have, &stopped, 10000), "stateful instance not stopped on drain");
    all = instances();
    cr_assert_not_null(json_object_get(all, "node-1/db-1"), "moved: %s",
                       json_dumps(all, JSON_COMPACT));
    json_decref(all);
    EXPECT(200, "PUT", "/v1/nodes/grd/node-1", "{'availability':'active'}");
    cr_assert(wait_for(all_have, &running, 10000), "stateful instance not running again");
}

SCHED_TEST(scheduler, stack_deploy_waits_for_linked_services_and_removal_deletes_keys)
{
    json_t *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(
        201, "POST", "/v1/grids/grd/stacks",
        "{'name':'shop','stack':'test/shop','version':'1.0.0','source':'...','services':["
        "{'name':'redis','image':'redis:3-alpine'},"
        "{'name':'app','image':'busybox','instances':2,'links':[{'name':'redis','alias':'db'}]}]}");
    EXPECT(200, "POST", "/v1/stacks/grd/shop/deploy", NULL);
    WAIT_COUNT("redis", 1);
    /* No agent ever runs redis, so app waits for it. */
    time_sleep_ms(1000);
    d = deploy_of("shop", "app");
    cr_assert_not_null(d);
    cr_assert_str_eq(js(d, "reason"), "waiting for redis to be deployed");
    cr_assert_eq(count_instances("app", NULL), 0);
    json_decref(d);
    {
        json_t *all = instances();
        cr_assert_not_null(json_object_get(all, "node-1/shop.redis-1"), "%s",
                           json_dumps(all, JSON_COMPACT));
        json_decref(all);
    }
    EXPECT(200, "DELETE", "/v1/stacks/grd/shop", NULL);
    WAIT_COUNT(NULL, 0);
}

/* The scheduler finishes redis's deploy itself (its instance observed running); app, waiting
 * on that link, must be placed at once, not at the next resync (30 s here): the informer
 * calls no handler for the scheduler's own write-through, so commit_batch() queues the stack
 * deploy's services itself. Without that, app waited ~30 s (hack/up.sh's worker services). */
SCHED_TEST(scheduler, a_service_waiting_on_a_link_is_placed_as_soon_as_the_link_deployed)
{
    struct count_arg app = {"app", 2};
    int64_t t0, took;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(
        201, "POST", "/v1/grids/grd/stacks",
        "{'name':'shop','stack':'test/shop','version':'1.0.0','source':'...','services':["
        "{'name':'redis','image':'redis:3-alpine'},"
        "{'name':'app','image':'busybox','instances':2,'links':[{'name':'redis','alias':'db'}]}]}");
    EXPECT(200, "POST", "/v1/stacks/grd/shop/deploy", NULL);
    WAIT_COUNT("redis", 1);
    time_sleep_ms(500); /* app's deploy is waiting for redis by now */
    t0 = time_mono_ms();
    observe_running(1);
    cr_assert(wait_for(has_count, &app, 10000),
              "app not placed within 10 s of redis running (resync is 30 s): %zu instances",
              count_instances("app", NULL));
    took = time_mono_ms() - t0;
    fprintf(stderr, "scheduler: app placed %lld ms after redis ran\n", (long long)took);
}

SCHED_TEST(scheduler, new_deploy_supersedes_an_unfinished_one)
{
    json_t *d1, *d2;
    char *first, *k;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox'}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    d1 = wait_deploy("null", "web", "ongoing");
    first = xstrdup(js(d1, "id"));
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{'force':true}");
    d2 = wait_deploy("null", "web", "ongoing");
    cr_assert_str_neq(js(d2, "id"), first);
    k = xasprintf("/kontena/deploys/grd/%s", first);
    json_decref(d1);
    d1 = get_json(k);
    cr_assert_str_eq(js(d1, "state"), "error");
    cr_assert(strncmp(js(d1, "reason"), "superseded by ", 14) == 0, "%s", js(d1, "reason"));
    /* The forced revision reached the instance. */
    {
        json_t *all = instances();
        cr_assert_eq(
            json_integer_value(json_object_get(json_object_get(all, "node-1/web-1"), "revision")),
            2);
        json_decref(all);
    }
    free(k);
    free(first);
    json_decref(d1);
    json_decref(d2);
}

struct rev_arg {
    int rev;
    size_t want;
};

static int n_at_revision(void *arg)
{
    struct rev_arg *a = arg;
    json_t *all = instances(), *v;
    const char *k;
    size_t n = 0;
    json_object_foreach(all, k, v) if (json_integer_value(json_object_get(v, "revision")) == a->rev)
        n++;
    json_decref(all);
    return n == a->want;
}

/* Report every instance at revision rev as running, as an agent would. */
static void observe_running(int rev)
{
    json_t *all = instances(), *v;
    const char *k;
    json_object_foreach(all, k, v)
    {
        char *key;
        if (json_integer_value(json_object_get(v, "revision")) != rev)
            continue;
        key = xasprintf("/kontena/observed/%s/%s", grid, k);
        put(key, "{'state':'running','revision':%d,'error':null,'restart_generation':0}", rev);
        free(key);
    }
    json_decref(all);
}

SCHED_TEST(scheduler, min_health_throttles_replacements_until_observed_running)
{
    struct rev_arg one = {2, 1}, two = {2, 2}, three = {2, 3};
    json_t *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    fake_node("node-2", 2, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox','instances':3}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    WAIT_COUNT("web", 3); /* new instances: all at once */
    observe_running(1);
    json_decref(wait_deploy("null", "web", "success"));

    /* Revision 2, min_health 0.8 and N = 3: one replacement at a time. */
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{'force':true}");
    cr_assert(wait_for(n_at_revision, &one, 10000), "first replacement not written");
    time_sleep_ms(1000);
    cr_assert(n_at_revision(&one), "more than one replacement in flight");
    d = wait_deploy("null", "web", "ongoing");
    cr_assert_str_eq(js(json_array_get(json_object_get(d, "instance_deploys"), 0), "state"),
                     "ongoing");
    cr_assert_str_eq(js(json_array_get(json_object_get(d, "instance_deploys"), 1), "state"),
                     "created");
    cr_assert(strstr(js(d, "reason"), "web-1") != NULL, "reason: %s", js(d, "reason"));
    json_decref(d);
    observe_running(2);
    cr_assert(wait_for(n_at_revision, &two, 10000), "second replacement not written");
    observe_running(2);
    cr_assert(wait_for(n_at_revision, &three, 10000), "third replacement not written");
    observe_running(2);
    d = wait_deploy("null", "web", "success");
    cr_assert(json_is_null(json_object_get(d, "reason")), "reason: %s", js(d, "reason"));
    json_decref(d);
}

SCHED_TEST(scheduler, observed_error_fails_the_deploy)
{
    json_t *d, *all, *v;
    const char *k;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'nosuch'}");
    EXPECT(200, "POST", "/v1/services/grd/null/web/deploy", "{}");
    WAIT_COUNT("web", 1);
    all = instances();
    json_object_foreach(all, k, v)
    {
        char *key = xasprintf("/kontena/observed/grd/%s", k);
        put(key, "{'state':'error','revision':1,'error':'image nosuch not found on node node-1'}");
        free(key);
    }
    json_decref(all);
    d = wait_deploy("null", "web", "error");
    cr_assert_str_eq(js(d, "reason"), "one or more instances failed");
    cr_assert_str_eq(js(json_array_get(json_object_get(d, "instance_deploys"), 0), "error"),
                     "image nosuch not found on node node-1");
    json_decref(d);
}

SCHED_TEST(scheduler, unfinished_deploy_of_a_removed_service_ends_in_error)
{
    json_t *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    put("/kontena/deploys/grd/0000000000000001-00000001",
        "{'id':'0000000000000001-00000001','grid':'grd','stack':'null','service':'gone',"
        "'service_id':'grd/null/gone','state':'created','reason':'waiting for the scheduler',"
        "'instance_deploys':[],'started_at':null,'finished_at':null}");
    start_scheduler(0);
    for (int i = 0; i < 100; i++) {
        d = get_json("/kontena/deploys/grd/0000000000000001-00000001");
        if (strcmp(js(d, "state"), "error") == 0)
            break;
        json_decref(d);
        d = NULL;
        time_sleep_ms(100);
    }
    cr_assert_not_null(d, "the record was not finished");
    cr_assert_str_eq(js(d, "reason"), "service was removed");
    json_decref(d);
}

/* --- bounded deploy history ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* POST a deploy of grd/null/<svc>; returns the new record's id (fresh). */
static char *deploy_now(const char *svc, int force)
{
    char *path = xasprintf("/v1/services/%s/null/%s/deploy", grid, svc), *id;
    json_t *v;

    EXPECT(200, "POST", path, force ? "{'force':true}" : "{}");
    v = json_loads(rep.body, 0, NULL);
    cr_assert(json_string_value(json_object_get(v, "id")) != NULL, "deploy reply: %s", rep.body);
    id = xstrdup(json_string_value(json_object_get(v, "id")));
    json_decref(v);
    free(path);
    return id;
}

/* Service deploy records of service_id: finished and unfinished counts; *ids (if not NULL)
 * gets {id: state} of every one. */
static void history(const char *service_id, size_t *finished, size_t *unfinished, json_t **ids)
{
    char *p = xasprintf("/kontena/deploys/%s/", grid);
    json_t *all = etcd_list(p), *v;
    const char *k;

    *finished = *unfinished = 0;
    if (ids)
        *ids = json_object();
    json_object_foreach(all, k, v)
    {
        const char *st = js(v, "state");
        if (strcmp(js(v, "service_id"), service_id) != 0)
            continue;
        if (strcmp(st, "success") == 0 || strcmp(st, "error") == 0)
            (*finished)++;
        else
            (*unfinished)++;
        if (ids)
            json_object_set_new(*ids, k, json_string(st));
    }
    json_decref(all);
    free(p);
}

struct hist_arg {
    const char *service_id;
    size_t finished, unfinished;
};

static int history_is(void *arg)
{
    struct hist_arg *a = arg;
    size_t f, u;
    history(a->service_id, &f, &u, NULL);
    return f == a->finished && u == a->unfinished;
}

#define WAIT_HISTORY(sid, f, u)                                                                    \
    do {                                                                                           \
        struct hist_arg h_ = {sid, f, u};                                                          \
        size_t hf_, hu_;                                                                           \
        int ok_ = wait_for(history_is, &h_, 15000);                                                \
        history(sid, &hf_, &hu_, NULL);                                                            \
        cr_assert(ok_, "history of %s: %zu finished + %zu unfinished, want %zu + %zu", sid, hf_,   \
                  hu_, (size_t)(f), (size_t)(u));                                                  \
    } while (0)

/* 30 deploys with the default --deploy-history 20: the 20 newest finished records stay, and
 * the unfinished one (a forced deploy nobody reports running) is kept too. */
SCHED_TEST(scheduler, deploy_history_keeps_the_20_newest_finished_records_and_unfinished_ones)
{
    char *ids[31];
    json_t *left, *d;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    start_scheduler(0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox'}");
    ids[0] = deploy_now("web", 0);
    WAIT_COUNT("web", 1);
    observe_running(1);
    json_decref(wait_deploy("null", "web", "success"));
    for (int i = 1; i < 30; i++) {
        ids[i] = deploy_now("web", 0);
        d = wait_deploy("null", "web", "success");
        cr_assert_str_eq(js(d, "id"), ids[i]);
        json_decref(d);
    }
    ids[30] = deploy_now("web", 1); /* revision 2: waits for web-1 to run it */
    json_decref(wait_deploy("null", "web", "ongoing"));
    WAIT_HISTORY("grd/null/web", 20, 1);
    {
        size_t f, u;
        history("grd/null/web", &f, &u, &left);
    }
    for (int i = 0; i < 31; i++) {
        json_t *st = json_object_get(left, ids[i]);
        if (i < 10)
            cr_assert_null(st, "deploy %d (%s) should have been pruned", i, ids[i]);
        else
            cr_assert_not_null(st, "deploy %d (%s), one of the newest, was pruned", i, ids[i]);
    }
    cr_assert_str_eq(json_string_value(json_object_get(left, ids[30])), "ongoing");
    /* The deploy routes still answer for kept records, 404 for pruned ones. */
    {
        char *path = xasprintf("/v1/services/grd/null/web/deploys/%s", ids[29]);
        EXPECT(200, "GET", path, NULL);
        free(path);
        path = xasprintf("/v1/services/grd/null/web/deploys/%s", ids[0]);
        EXPECT(404, "GET", path, NULL);
        free(path);
    }
    json_decref(left);
    for (int i = 0; i < 31; i++)
        free(ids[i]);
}

/* Records created while the scheduler finishes (supersedes) and prunes older ones, by the API
 * and straight into etcd (as the rescheduler does, here already finished): whatever the
 * interleaving, the --deploy-history newest records all survive and no more are kept. */
SCHED_TEST(scheduler, deploy_history_pruning_never_loses_a_concurrent_create)
{
    static const char *const extra[] = {"--deploy-history", "5", NULL};
    json_t *all = json_array(), *left, *x;
    size_t f, u, i;
    char *id;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    cr_assert_eq(ctl_proc_start(&sched[0], api.dir, "scheduler", 1, etcd.endpoint, extra), 0);
    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'web','image':'busybox'}");
    id = deploy_now("web", 0);
    json_array_append_new(all, json_string(id));
    free(id);
    WAIT_COUNT("web", 1);
    observe_running(1);
    json_decref(wait_deploy("null", "web", "success"));
    /* Back to back: each new record supersedes the one before while the scheduler prunes. */
    for (int n = 0; n < 12; n++) {
        char *key;
        id = deploy_now("web", 0);
        json_array_append_new(all, json_string(id));
        free(id);
        id = deploy_new_id();
        key = xasprintf("/kontena/deploys/grd/%s", id);
        put(key,
            "{'id':'%s','grid':'grd','stack':'null','service':'web','service_id':'grd/null/web',"
            "'state':'success','reason':null,'instance_deploys':[],'started_at':null,"
            "'finished_at':'2026-01-01T00:00:00Z'}",
            id);
        json_array_append_new(all, json_string(id));
        free(key);
        free(id);
    }
    id = deploy_now("web", 0);
    json_array_append_new(all, json_string(id));
    {
        json_t *d = wait_deploy("null", "web", "success");
        cr_assert_str_eq(js(d, "id"), id);
        json_decref(d);
    }
    free(id);
    WAIT_HISTORY("grd/null/web", 5, 0);
    history("grd/null/web", &f, &u, &left);
    /* The ids sort by creation: the last five of the sorted list are the newest. */
    {
        size_t n = json_array_size(all);
        const char **v = xcalloc(n, sizeof(*v));
        json_array_foreach(all, i, x) v[i] = json_string_value(x);
        qsort(v, n, sizeof(*v), cmp_str);
        for (i = n - 5; i < n; i++)
            cr_assert_not_null(json_object_get(left, v[i]), "record %s, one of the newest, was lost",
                               v[i]);
        free(v);
    }
    json_decref(left);
    json_decref(all);
}

/* Records written before pruning existed: the first resync of a new leader brings them down,
 * stack deploys too, but never a stack deploy with an unfinished service deploy. */
SCHED_TEST(scheduler, deploy_history_resync_prunes_old_records_and_stack_deploys)
{
    static const char *const extra[] = {"--deploy-history", "3", NULL};
    json_t *sds, *deps;

    setup_grid("grd");
    fake_node("node-1", 1, NULL, 1);
    for (int i = 1; i <= 6; i++) {
        char *k = xasprintf("/kontena/deploys/grd/000000000000000%d-0000000d", i);
        put(k,
            "{'id':'000000000000000%d-0000000d','grid':'grd','stack':'shop','service':'web',"
            "'service_id':'grd/shop/web','stack_deploy_id':'000000000000000%d-0000000s',"
            "'state':'%s','reason':null,'instance_deploys':[],'started_at':null,"
            "'finished_at':null}",
            i, i, i == 2 ? "ongoing" : "success");
        free(k);
        k = xasprintf("/kontena/stack_deploys/grd/000000000000000%d-0000000s", i);
        put(k,
            "{'id':'000000000000000%d-0000000s','grid':'grd','stack':'shop','stack_id':'grd/shop',"
            "'stack_revision':%d,'created_at':'2026-01-01T00:00:00Z',"
            "'service_deploys':['000000000000000%d-0000000d']}",
            i, i, i);
        free(k);
    }
    put("/kontena/services/grd/shop/web",
        "{'id':'grd/shop/web','grid':'grd','stack':'shop','name':'web','image':'busybox',"
        "'instances':1,'revision':1,'state':'running','restart_generation':0,"
        "'deploy_id':'0000000000000006-0000000d'}");
    cr_assert_eq(ctl_proc_start(&sched[0], api.dir, "scheduler", 1, etcd.endpoint, extra), 0);
    WAIT_HISTORY("grd/shop/web", 3, 1);
    deps = etcd_list("/kontena/deploys/grd/");
    cr_assert_null(json_object_get(deps, "0000000000000001-0000000d"));
    cr_assert_not_null(json_object_get(deps, "0000000000000002-0000000d"), "unfinished: kept");
    cr_assert_null(json_object_get(deps, "0000000000000003-0000000d"));
    for (int i = 4; i <= 6; i++) {
        char *id = xasprintf("000000000000000%d-0000000d", i);
        cr_assert_not_null(json_object_get(deps, id), "newest %s pruned", id);
        free(id);
    }
    for (int tries = 0; tries < 100; tries++) {
        sds = etcd_list("/kontena/stack_deploys/grd/");
        if (json_object_size(sds) == 4)
            break;
        json_decref(sds);
        sds = NULL;
        time_sleep_ms(100);
    }
    cr_assert_not_null(sds, "stack deploys not pruned to 4");
    cr_assert_null(json_object_get(sds, "0000000000000001-0000000s"));
    cr_assert_not_null(json_object_get(sds, "0000000000000002-0000000s"),
                       "a stack deploy with an unfinished service deploy was pruned");
    cr_assert_null(json_object_get(sds, "0000000000000003-0000000s"));
    json_decref(sds);
    json_decref(deps);
}

/* --- with agents on the real dockerd ---------------------------------------------------- */

#define N_AGENTS 2
static pid_t agents[N_AGENTS];
static char *agent_uri;

static void agents_init(void)
{
    struct etcd_opts o = {0};

    docker_env_require();
    agent_uri = agent_proc_env(1, 1000, 1000, 3);
    api_fixture_setup();
    o.endpoints = etcd.endpoint;
    ec = etcd_create(&o, NULL);
    cr_assert_not_null(ec);
}

static void agents_fini(void)
{
    for (int i = 0; i < N_AGENTS; i++)
        if (agents[i] > 0) {
            proc_stop(agents[i], SIGTERM, 5000);
            agents[i] = 0;
        }
    if (grid) {
        char *label = xasprintf("io.kontena.grid=%s", grid);
        (void)docker_env_remove_containers(label);
        free(label);
    }
    FREE_AND_NULL(grid);
    FREE_AND_NULL(agent_svc);
    FREE_AND_NULL(agent_uri);
    fini();
}

TestSuite(scheduler_agents, .init = agents_init, .fini = agents_fini, .timeout = 180);

/* A grid named for this run and test ("<run id>-<what>": agents remove the containers of
 * their grid and node that they do not know, so two tests never share a grid), N_AGENTS
 * agents with Docker, and kontena-ipam. */
static void setup_agent_grid(const char *what)
{
    char *name = docker_env_name(what), *path, *bin, *pem;
    char *token;

    setup_grid(name);
    free(name);
    path = xasprintf("/v1/grids/%s", grid);
    EXPECT(200, "GET", path, NULL);
    free(path);
    token = xstrdup(json_string_value(json_object_get(rep.json, "token")));
    bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    pem = xasprintf("%s/master.pem", api.dir);
    for (int i = 0; i < N_AGENTS; i++) {
        char nname[32], *log;
        snprintf(nname, sizeof(nname), "node-%d", i + 1);
        log = xasprintf("%s/agent-%s.log", api.dir, nname);
        const char *argv[] = {bin,
                              "--uri",
                              agent_uri,
                              "--token",
                              token,
                              "--ca-cert",
                              pem,
                              "--node-name",
                              nname,
                              "--etcd-endpoints",
                              etcd.endpoint,
                              "--docker-socket",
                              docker_env_socket(),
                              "--backoff-max",
                              "1000",
                              NULL};
        agents[i] = proc_spawn(argv, NULL, log);
        cr_assert_gt(agents[i], 0, "agent %s did not start", nname);
        free(log);
    }
    free(bin);
    free(pem);
    free(token);
    cr_assert_eq(ctl_proc_start(&ipam, api.dir, "ipam", 1, etcd.endpoint, NULL), 0,
                 "kontena-ipam did not start");
}

static int nodes_online(void *arg)
{
    char *p = xasprintf("/kontena/node_status/%s/", grid);
    json_t *o = etcd_list(p);
    int ok = json_object_size(o) == (size_t)(intptr_t)arg;
    free(p);
    json_decref(o);
    return ok;
}

/* Every observed key of the grid is running at its instance's revision. */
static int all_running(void *arg)
{
    char *p = xasprintf("/kontena/observed/%s/", grid);
    json_t *obs = etcd_list(p), *inst = instances(), *v;
    const char *k;
    int ok = json_object_size(inst) == (size_t)(intptr_t)arg;
    json_object_foreach(inst, k, v)
    {
        json_t *o = json_object_get(obs, k);
        if (!o || strcmp(js(o, "state"), "running") != 0 ||
            json_integer_value(json_object_get(o, "revision")) !=
                json_integer_value(json_object_get(v, "revision")))
            ok = 0;
    }
    free(p);
    json_decref(obs);
    json_decref(inst);
    return ok;
}

static void create_web(const char *what, int n)
{
    char *path = xasprintf("/v1/grids/%s/services", grid);
    agent_svc = docker_env_name(what);
    EXPECT(201, "POST", path,
           "{'name':'%s','image':'" DOCKER_ENV_IMAGE "','instances':%d,'cmd':['sleep','3600'],"
           "'deploy_opts':{'min_health':0.5},'stop_grace_period':'1s'}",
           agent_svc, n);
    free(path);
    path = xasprintf("/v1/services/%s/null/%s/deploy", grid, agent_svc);
    EXPECT(200, "POST", path, "{}");
    free(path);
}

SCHED_TEST(scheduler_agents, install_runs_every_instance_and_the_deploy_succeeds)
{
    json_t *d;

    setup_agent_grid("g1");
    cr_assert(wait_for(nodes_online, (void *)(intptr_t)N_AGENTS, 15000), "agents not online");
    start_scheduler(0);
    create_web("w1", 3);
    cr_assert(wait_for(all_running, (void *)(intptr_t)3, 90000), "instances not all running");
    d = wait_deploy("null", agent_svc, "success");
    cr_assert_eq(json_array_size(json_object_get(d, "instance_deploys")), 3);
    cr_assert_str_eq(js(json_array_get(json_object_get(d, "instance_deploys"), 2), "state"),
                     "success");
    json_decref(d);
}

/* The value of a metric line "name value" on a controller's /metrics, -1 when absent. */
static double metric(const struct ctl_proc *p, const char *name)
{
    char *u = ctl_proc_url(p, "/metrics");
    struct http_reply r = {0};
    double v = -1;
    const char *line;

    if (http_do("GET", u, NULL, NULL, 0, NULL, &r) == 0 && r.body) {
        size_t len = strlen(name);
        for (line = r.body; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (strncmp(line, name, len) == 0 && line[len] == ' ') {
                v = atof(line + len + 1);
                break;
            }
    }
    http_reply_release(&r);
    free(u);
    return v;
}

SCHED_TEST(scheduler_agents, killed_leader_mid_rollout_the_other_replica_finishes_it)
{
    json_t *d, *all, *v, *leader;
    const char *k;
    char seen[8][64], *path;
    int n_seen = 0, victim;

    setup_agent_grid("g2");
    cr_assert(wait_for(nodes_online, (void *)(intptr_t)N_AGENTS, 15000), "agents not online");
    start_scheduler(0);
    start_scheduler(1);
    create_web("w2", 4);
    cr_assert(wait_for(all_running, (void *)(intptr_t)4, 90000), "instances not all running");
    json_decref(wait_deploy("null", agent_svc, "success"));

    /* Only the leader acts. */
    leader = get_json("/kontena/leaders/scheduler");
    cr_assert_not_null(leader);
    victim = strcmp(js(leader, "id"), sched[0].id) == 0 ? 0 : 1;
    json_decref(leader);
    cr_assert_eq(metric(&sched[victim], "kontena_scheduler_placements_total"), 4);
    cr_assert(metric(&sched[1 - victim], "kontena_scheduler_placements_total") <= 0,
              "the follower placed instances");

    /* A forced deploy replaces the 4 containers two at a time (min_health 0.5); kill the
     * leader without warning while it rolls. */
    path = xasprintf("/v1/services/%s/null/%s/deploy", grid, agent_svc);
    EXPECT(200, "POST", path, "{'force':true}");
    free(path);
    {
        struct deploy_arg a = {"null", agent_svc, "ongoing"};
        cr_assert(wait_for(deploy_in, &a, 15000), "deploy not started");
    }
    (void)ctl_proc_stop(&sched[victim], SIGKILL);

    cr_assert(wait_for(all_running, (void *)(intptr_t)4, 120000), "instances not all running");
    d = wait_deploy("null", agent_svc, "success");
    all = instances();
    cr_assert_eq(json_object_size(all), 4, "lost or extra instances: %s",
                 json_dumps(all, JSON_COMPACT));
    json_object_foreach(all, k, v)
    {
        const char *c = strchr(k, '/') + 1;
        cr_assert_eq(json_integer_value(json_object_get(v, "revision")), 2);
        for (int i = 0; i < n_seen; i++)
            cr_assert_str_neq(seen[i], c, "duplicate container %s", c);
        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", c);
    }
    json_decref(all);
    json_decref(d);
}
