/* tests/integration/test_agent_reconcile.c -- kontena-agent making the real dockerd match
 * the instance keys in a real etcd (issue 4, points 3 and 6).
 *
 * Suite `reconcile`: one etcd and agents in reconcile-only mode (--etcd-endpoints, --grid,
 * --node-name, no --uri) per test. Suite `master`: etcd + kontena-apiserver + an agent
 * that learns its grid from the master's node_info.
 *
 * Every test uses its own grid, "<run id>-<test>", so its containers (named
 * "<grid>.web-<n>") never meet another test's or another run's; every spec carries the
 * run's cleanup label, and each test removes its grid's containers at the end. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agent/docker.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/agent_proc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/docker_env.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define MAX_AGENTS 2

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

static struct docker *dk;
static struct etcd *ec;
static char *grid, *dir;
static pid_t agents[MAX_AGENTS];
static char *logs[MAX_AGENTS]; /* their log files */

/* The agents label their containers with the test's grid, not with the run's label. */
static void remove_grid_containers(void)
{
    char *label;

    if (!grid)
        return;
    label = xasprintf("io.kontena.grid=%s", grid);
    if (docker_env_remove_containers(label) < 0)
        fprintf(stderr, "cannot remove the test containers of grid %s\n", grid);
    free(label);
}

static void common_init(void)
{
    struct err e = ERR_INIT;

    docker_env_require();
    dk = docker_create(NULL, &e);
    cr_assert(dk, "docker_create: %s", e.msg);
}

static void common_fini(void)
{
    for (int i = 0; i < MAX_AGENTS; i++)
        if (agents[i] > 0) {
            proc_stop(agents[i], SIGTERM, 5000);
            agents[i] = 0;
        }
    remove_grid_containers();
    for (int i = 0; i < MAX_AGENTS; i++)
        FREE_AND_NULL(logs[i]);
    etcd_destroy(ec);
    ec = NULL;
    docker_destroy(dk);
    dk = NULL;
    FREE_AND_NULL(grid);
}

/* SIGTERM every agent; fails the test unless each exited with status 0 (a sanitizer report
 * or a crash at shutdown fails it), with the agent's log on stderr. */
static void stop_agents_checked(void)
{
    for (int i = 0; i < MAX_AGENTS; i++) {
        int ws;
        if (agents[i] <= 0)
            continue;
        ws = proc_stop(agents[i], SIGTERM, 5000);
        agents[i] = 0;
        if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            proc_dump_file(logs[i]);
        cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
                  "agent %d did not exit cleanly (wait status %d); logs in %s", i, ws, dir);
    }
}

/* Test + the agents' clean exit. */
#define RC_TEST(suite, name)                                                                       \
    static void name##_body(void);                                                                 \
    Test(suite, name)                                                                              \
    {                                                                                              \
        name##_body();                                                                             \
        stop_agents_checked();                                                                     \
    }                                                                                              \
    static void name##_body(void)

static void open_etcd(void)
{
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct err e = ERR_INIT;
    ec = etcd_create(&o, &e);
    cr_assert(ec, "etcd_create: %s", e.msg);
}

static void rec_init(void)
{
    common_init();
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
    dir = xstrdup(etcd.dir);
    open_etcd();
}

static void rec_fini(void)
{
    common_fini();
    etcd_proc_cleanup(&etcd);
    FREE_AND_NULL(dir);
}

TestSuite(reconcile, .init = rec_init, .fini = rec_fini, .timeout = 120);

static void use_grid(const char *test)
{
    grid = docker_env_name(test);
}

/* An agent in reconcile-only mode for node `node` of this test's grid. */
static void start_agent_prefixed(int slot, const char *node, const char *prefix);
static void start_agent(int slot, const char *node)
{
    start_agent_prefixed(slot, node, "");
}

/* The same, with --docker-name-prefix prefix. */
static void start_agent_prefixed(int slot, const char *node, const char *prefix)
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    char *log = xasprintf("%s/agent-%s.log", dir, node);
    const char *argv[] = {bin,
                          "--etcd-endpoints",
                          etcd.endpoint,
                          "--grid",
                          grid,
                          "--node-name",
                          node,
                          "--docker-socket",
                          docker_env_socket(),
                          "--resync-interval",
                          "5000",
                          "--log-level",
                          "debug",
                          "--docker-name-prefix",
                          prefix,
                          NULL};
    agents[slot] = proc_spawn(argv, NULL, log);
    cr_assert_gt(agents[slot], 0, "cannot start kontena-agent");
    free(bin);
    free(logs[slot]);
    logs[slot] = log;
}

/* "<grid>.web-<n>" */
static char *cname(int n)
{
    return xasprintf("%s.web-%d", grid, n);
}

/* An instance value: rev, desired state, extra spec fields as a JSON object text (may be
 * NULL), image (NULL: the test image). */
static char *instance(int n, int rev, const char *state, const char *image, const char *spec_extra)
{
    json_t *spec = spec_extra ? json_loads(spec_extra, 0, NULL) : json_object(), *v;
    char *s;

    cr_assert(spec, "bad spec_extra in the test");
    json_object_set_new(spec, "image", json_string(image ? image : DOCKER_ENV_IMAGE));
    if (!json_object_get(spec, "cmd"))
        json_object_set_new(spec, "cmd", json_pack("[s,s]", "sleep", "3600"));
    if (!json_object_get(spec, "stop_grace_period"))
        json_object_set_new(spec, "stop_grace_period", json_integer(1));
    json_object_set_new(spec, "labels",
                        json_pack("{s:s}", DOCKER_ENV_RUN_LABEL, docker_env_run_id()));
    v = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:o}", "service_id", "svc-id", "grid",
                  grid, "stack", grid, "service", "web", "instance_number", n, "revision", rev,
                  "desired_state", state, "restart_generation", 0, "spec", spec);
    /* kontena-ipam's part: the agent creates a container only once it has an address */
    json_object_set_new(v, "overlay_cidr", json_sprintf("10.81.128.%d/16", n));
    s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static void put_key(const char *key, const char *value)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(ec, key, value, strlen(value), 0, NULL, NULL, &e), ST_OK, "put %s: %s",
                 key, e.msg);
}

static void put_instance(const char *node, int n, const char *value)
{
    char *name = cname(n), *key = xasprintf("/kontena/instances/%s/%s/%s", grid, node, name);
    put_key(key, value);
    free(key);
    free(name);
}

static void delete_instance(const char *node, int n)
{
    char *name = cname(n), *key = xasprintf("/kontena/instances/%s/%s/%s", grid, node, name);
    cr_assert_eq(etcd_delete(ec, key, NULL, NULL, NULL), ST_OK);
    free(key);
    free(name);
}

/* The observed value of instance n on node (new reference) or NULL. */
static json_t *get_observed(const char *node, int n)
{
    char *name = cname(n), *key = xasprintf("/kontena/observed/%s/%s/%s", grid, node, name);
    struct etcd_kv kv;
    json_t *v = NULL;

    if (etcd_get(ec, key, &kv, NULL, NULL) == ST_OK) {
        v = json_loads(kv.value, 0, NULL);
        etcd_kv_release(&kv);
    }
    free(key);
    free(name);
    return v;
}

/* Poll until the observed state is `state` (and, if not NULL, container_id differs from
 * not_id); returns the value or fails after timeout_ms. */
static json_t *wait_observed(const char *node, int n, const char *state, const char *not_id,
                             int timeout_ms)
{
    int64_t t0 = time_mono_ms();
    json_t *v = NULL;

    for (;;) {
        v = get_observed(node, n);
        if (v && !strcmp(json_string_value(json_object_get(v, "state")) ?: "", state) &&
            (!not_id ||
             strcmp(json_string_value(json_object_get(v, "container_id")) ?: "", not_id) != 0))
            return v;
        if (time_mono_ms() - t0 > timeout_ms) {
            char *s = v ? json_dumps(v, 0) : xstrdup("(none)");
            cr_assert_fail("instance %d on %s: observed %s, want state %s", n, node, s, state);
        }
        json_decref(v);
        time_sleep_ms(20);
    }
}

static json_t *inspect(const char *name_or_id)
{
    json_t *c = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(docker_container_inspect(dk, name_or_id, &c, &e), ST_OK, "inspect %s: %s",
                 name_or_id, e.msg);
    return c;
}

static const char *id_of(json_t *obs)
{
    return json_string_value(json_object_get(obs, "container_id"));
}

static int array_has(const json_t *a, const char *s)
{
    size_t i;
    json_t *x;
    json_array_foreach(a, i,
                       x) if (json_string_value(x) && !strcmp(json_string_value(x), s)) return 1;
    return 0;
}

RC_TEST(reconcile, instance_key_written_with_etcdctl_runs_with_its_spec)
{
    char *v, *name, *key;
    json_t *o, *c, *cfg, *host, *labels;
    int rc;

    use_grid("spec");
    start_agent(0, "a");
    name = cname(1);
    key = xasprintf("/kontena/instances/%s/a/%s", grid, name);
    v = instance(1, 3, "running", NULL,
                 "{\"cmd\":[\"sleep\",\"1234\"],\"env\":[\"FOO=bar\"],\"memory\":67108864,"
                 "\"cap_add\":[\"NET_ADMIN\"],\"hostname\":\"web-1\",\"user\":\"65534\"}");
    {
        const char *argv[] = {"etcdctl", "--endpoints", etcd.endpoint, "put", key, v, NULL};
        const char *env[] = {"ETCDCTL_API=3", NULL};
        rc = proc_run(argv, env, NULL, NULL, NULL);
        cr_assert_eq(rc, 0, "etcdctl put failed");
    }
    o = wait_observed("a", 1, "running", NULL, 20000);
    cr_assert_eq(json_integer_value(json_object_get(o, "revision")), 3);
    c = inspect(name);
    cr_assert_str_eq(id_of(o), json_string_value(json_object_get(c, "Id")));
    /* the container's address (Docker bridge here: no overlay), for load balancers */
    cr_assert_str_eq(json_string_value(json_object_get(o, "ip")) ?: "(null)",
                     json_string_value(json_object_get(
                         json_object_get(c, "NetworkSettings"), "IPAddress")) ?: "");
    cfg = json_object_get(c, "Config");
    host = json_object_get(c, "HostConfig");
    labels = json_object_get(cfg, "Labels");
    cr_assert_str_eq(json_string_value(json_object_get(cfg, "Image")), DOCKER_ENV_IMAGE);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(cfg, "Cmd"), 1)), "1234");
    cr_assert(array_has(json_object_get(cfg, "Env"), "FOO=bar"));
    cr_assert(array_has(json_object_get(cfg, "Env"), "KONTENA_NODE_NAME=a"));
    cr_assert(array_has(json_object_get(cfg, "Env"), "KONTENA_SERVICE_INSTANCE_NUMBER=1"));
    cr_assert_str_eq(json_string_value(json_object_get(cfg, "Hostname")), "web-1");
    cr_assert_str_eq(json_string_value(json_object_get(cfg, "User")), "65534");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.node")), "a");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.grid")), grid);
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.stack")), grid);
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.service")), "web");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.instance")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.kontena.revision")), "3");
    cr_assert_eq(json_integer_value(json_object_get(host, "Memory")), 67108864);
    cr_assert(array_has(json_object_get(host, "CapAdd"), "NET_ADMIN"));
    /* created_at is Docker's Created, so `container ls` CREATED is not the last start */
    cr_assert_str_eq(json_string_value(json_object_get(o, "created_at")) ?: "(none)",
                     json_string_value(json_object_get(c, "Created")));
    json_decref(c);
    json_decref(o);
    free(v);
    free(key);
    free(name);
}

RC_TEST(reconcile, revision_change_recreates_same_revision_does_not)
{
    char *v;
    json_t *o1, *o2, *o3;
    char *id1;

    use_grid("rev");
    start_agent(0, "a");
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("a", 1, v);
    free(v);
    o1 = wait_observed("a", 1, "running", NULL, 20000);
    id1 = xstrdup(id_of(o1));

    /* Same revision rewritten, even with another spec: never recreated. */
    v = instance(1, 1, "running", NULL, "{\"env\":[\"X=changed\"]}");
    put_instance("a", 1, v);
    free(v);
    time_sleep_ms(1500);
    o2 = wait_observed("a", 1, "running", NULL, 1000);
    cr_assert_str_eq(id_of(o2), id1, "recreated without a revision change");
    json_decref(inspect(id1));

    v = instance(1, 2, "running", NULL, NULL);
    put_instance("a", 1, v);
    free(v);
    o3 = wait_observed("a", 1, "running", id1, 20000);
    cr_assert_eq(json_integer_value(json_object_get(o3, "revision")), 2);
    {
        json_t *c = NULL;
        cr_assert_eq(docker_container_inspect(dk, id1, &c, NULL), ST_NOTFOUND,
                     "the old container is still there");
    }
    json_decref(o1);
    json_decref(o2);
    json_decref(o3);
    free(id1);
}

RC_TEST(reconcile, stopped_honours_grace_period_then_delete_removes)
{
    char *v, *name = NULL;
    json_t *o, *c;
    int64_t t0, took;

    use_grid("stop");
    start_agent(0, "a");
    /* sleep as PID 1 ignores SIGTERM: docker stop waits the whole grace period */
    v = instance(1, 1, "running", NULL, "{\"stop_grace_period\":2}");
    put_instance("a", 1, v);
    free(v);
    json_decref(wait_observed("a", 1, "running", NULL, 20000));
    v = instance(1, 1, "stopped", NULL, "{\"stop_grace_period\":2}");
    t0 = time_mono_ms();
    put_instance("a", 1, v);
    free(v);
    o = wait_observed("a", 1, "stopped", NULL, 15000);
    took = time_mono_ms() - t0;
    cr_assert_geq(took, 1900, "stopped after %lld ms, before the grace period", (long long)took);
    cr_assert_lt(took, 9000, "stopped after %lld ms: grace period not honoured", (long long)took);
    cr_assert_eq(json_integer_value(json_object_get(o, "exit_code")), 137);
    name = cname(1);
    c = inspect(name);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "State"), "Status")),
                     "exited");
    json_decref(c);
    json_decref(o);

    delete_instance("a", 1);
    for (int i = 0; i < 300; i++) {
        json_t *left = NULL;
        o = get_observed("a", 1);
        if (docker_container_inspect(dk, name, &left, NULL) == ST_NOTFOUND && !o)
            break;
        json_decref(left);
        json_decref(o);
        o = NULL;
        time_sleep_ms(50);
    }
    cr_assert_null(o, "the observed key is still there");
    {
        json_t *left = NULL;
        cr_assert_eq(docker_container_inspect(dk, name, &left, NULL), ST_NOTFOUND,
                     "the container is still there");
    }
    free(name);
}

RC_TEST(reconcile, docker_kill_is_observed_within_a_second)
{
    char *v, *name;
    json_t *o;
    int64_t t0, took;

    use_grid("kill");
    start_agent(0, "a");
    v = instance(1, 1, "running", NULL, "{\"restart\":\"no\"}");
    put_instance("a", 1, v);
    free(v);
    json_decref(wait_observed("a", 1, "running", NULL, 20000));
    name = cname(1);
    cr_assert_eq(docker_container_kill(dk, name, "SIGKILL", NULL), ST_OK);
    t0 = time_mono_ms();
    o = wait_observed("a", 1, "stopped", NULL, 5000);
    took = time_mono_ms() - t0;
    /* Docker's event reaches the agent in milliseconds (the issue asks for "within a
     * second"; typically < 100 ms here). The bound is looser so a loaded CI machine does not
     * fail the test, yet well under the 5 s resync: passing needs the events path. */
    cr_log_info("docker kill observed as stopped after %lld ms", (long long)took);
    cr_assert_leq(took, 2500, "observed stopped after %lld ms", (long long)took);
    cr_assert_eq(json_integer_value(json_object_get(o, "exit_code")), 137);
    json_decref(o);
    free(name);
}

RC_TEST(reconcile, crashed_container_is_restarted_with_restart_always)
{
    char *v, *name;
    json_t *o1, *o2;

    use_grid("crash");
    start_agent(0, "a");
    v = instance(1, 1, "running", NULL, NULL); /* restart defaults to always */
    put_instance("a", 1, v);
    free(v);
    o1 = wait_observed("a", 1, "running", NULL, 20000);
    name = cname(1);
    cr_assert_eq(docker_container_kill(dk, name, "SIGKILL", NULL), ST_OK);
    for (int i = 0; i < 200; i++) {
        json_t *c = inspect(name);
        int running = json_is_true(json_object_get(json_object_get(c, "State"), "Running"));
        o2 = get_observed("a", 1);
        if (running && o2 &&
            strcmp(json_string_value(json_object_get(o2, "started_at")),
                   json_string_value(json_object_get(o1, "started_at"))) != 0) {
            json_decref(c);
            break;
        }
        json_decref(c);
        json_decref(o2);
        o2 = NULL;
        time_sleep_ms(50);
    }
    cr_assert_not_null(o2, "not restarted");
    cr_assert_str_eq(id_of(o2), id_of(o1), "restarted, not recreated");
    json_decref(o1);
    json_decref(o2);
    free(name);
}

RC_TEST(reconcile, missing_image_is_an_observed_error)
{
    char *v, *msg;
    json_t *o;

    use_grid("img");
    start_agent(0, "a");
    v = instance(1, 1, "running", "kontena-test/missing:nope", NULL);
    put_instance("a", 1, v);
    free(v);
    o = wait_observed("a", 1, "error", NULL, 20000);
    msg = xasprintf("image 'kontena-test/missing:nope' not found on node a");
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")), msg);
    json_decref(o);
    free(msg);
    /* the agent is still alive and still works */
    v = instance(2, 1, "running", NULL, NULL);
    put_instance("a", 2, v);
    free(v);
    json_decref(wait_observed("a", 2, "running", NULL, 20000));
    cr_assert_eq(waitpid(agents[0], NULL, WNOHANG), 0, "the agent died");
}

/* A moved instance has the same name on its old and new node: with --docker-name-prefix
 * two agents on one dockerd can both run it (the old node's agent may be dead, its
 * container still there). */
RC_TEST(reconcile, name_prefix_lets_two_nodes_run_the_same_instance_name)
{
    char *v = NULL, *n = NULL, *pa = NULL, *pb = NULL;
    json_t *oa, *ob, *ca, *cb;

    use_grid("prefix");
    pa = xasprintf("%s-a.", grid);
    pb = xasprintf("%s-b.", grid);
    start_agent_prefixed(0, "a", pa);
    start_agent_prefixed(1, "b", pb);
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("a", 1, v);
    put_instance("b", 1, v);
    oa = wait_observed("a", 1, "running", NULL, 20000);
    ob = wait_observed("b", 1, "running", NULL, 20000);
    n = cname(1);
    {
        char *da = xasprintf("%s%s", pa, n), *db = xasprintf("%s%s", pb, n);
        ca = inspect(da);
        cb = inspect(db);
        cr_assert_str_eq(id_of(oa), json_string_value(json_object_get(ca, "Id")));
        cr_assert_str_eq(id_of(ob), json_string_value(json_object_get(cb, "Id")));
        free(da);
        free(db);
    }
    /* a resync later nothing was recreated: each agent found its container by its label */
    time_sleep_ms(5500);
    json_decref(ob);
    ob = wait_observed("b", 1, "running", NULL, 1000);
    cr_assert_str_eq(id_of(ob), json_string_value(json_object_get(cb, "Id")));
    delete_instance("a", 1);
    {
        char *da = xasprintf("%s%s", pa, n);
        enum status st = ST_OK;
        for (int i = 0; i < 200 && st != ST_NOTFOUND; i++) {
            json_t *c = NULL;
            st = docker_container_inspect(dk, da, &c, NULL);
            json_decref(c);
            if (st != ST_NOTFOUND)
                time_sleep_ms(50);
        }
        cr_assert_eq(st, ST_NOTFOUND, "a's container %s was not removed", da);
        free(da);
    }
    /* b's is still there */
    json_decref(inspect(json_string_value(json_object_get(cb, "Id"))));
    json_decref(oa);
    json_decref(ob);
    json_decref(ca);
    json_decref(cb);
    free(v);
    free(n);
    free(pa);
    free(pb);
}

RC_TEST(reconcile, two_agents_on_one_dockerd_keep_their_own)
{
    char *v, *name1, *name2;
    json_t *oa, *ob, *ob2;

    use_grid("two");
    start_agent(0, "a");
    start_agent(1, "b");
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("a", 1, v);
    free(v);
    v = instance(2, 1, "running", NULL, NULL);
    put_instance("b", 2, v);
    free(v);
    oa = wait_observed("a", 1, "running", NULL, 20000);
    ob = wait_observed("b", 2, "running", NULL, 20000);
    name1 = cname(1);
    name2 = cname(2);
    {
        json_t *c = inspect(name2);
        cr_assert_str_eq(
            json_string_value(json_object_get(
                json_object_get(json_object_get(c, "Config"), "Labels"), "io.kontena.node")),
            "b");
        json_decref(c);
    }
    /* a's instance goes: only a's container is removed; after two resyncs b's is intact */
    delete_instance("a", 1);
    for (int i = 0; i < 200; i++) {
        json_t *c = NULL;
        if (docker_container_inspect(dk, name1, &c, NULL) == ST_NOTFOUND)
            break;
        json_decref(c);
        time_sleep_ms(50);
    }
    {
        json_t *c = NULL;
        cr_assert_eq(docker_container_inspect(dk, name1, &c, NULL), ST_NOTFOUND);
    }
    time_sleep_ms(1000);
    ob2 = wait_observed("b", 2, "running", NULL, 1000);
    cr_assert_str_eq(id_of(ob2), id_of(ob));
    json_decref(inspect(name2));
    cr_assert_null(get_observed("a", 2), "agent a wrote about b's instance");
    json_decref(oa);
    json_decref(ob);
    json_decref(ob2);
    free(name1);
    free(name2);
}

RC_TEST(reconcile, restart_generation_restarts_in_place)
{
    char *v;
    json_t *o1, *o2 = NULL, *val;

    use_grid("gen");
    start_agent(0, "a");
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("a", 1, v);
    o1 = wait_observed("a", 1, "running", NULL, 20000);
    val = json_loads(v, 0, NULL);
    free(v);
    json_object_set_new(val, "restart_generation", json_integer(1));
    v = json_dumps(val, JSON_COMPACT);
    json_decref(val);
    put_instance("a", 1, v);
    free(v);
    for (int i = 0; i < 300; i++) {
        o2 = get_observed("a", 1);
        if (o2 && json_integer_value(json_object_get(o2, "restart_generation")) == 1 &&
            !strcmp(json_string_value(json_object_get(o2, "state")), "running") &&
            strcmp(json_string_value(json_object_get(o2, "started_at")),
                   json_string_value(json_object_get(o1, "started_at"))) != 0)
            break;
        json_decref(o2);
        o2 = NULL;
        time_sleep_ms(50);
    }
    cr_assert_not_null(o2, "not restarted");
    cr_assert_str_eq(id_of(o2), id_of(o1));
    json_decref(o1);
    json_decref(o2);
}

RC_TEST(reconcile, etcd_and_agent_restarts_keep_containers)
{
    char *v;
    json_t *o1, *o2;

    use_grid("etcdrs");
    start_agent(0, "a");
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("a", 1, v);
    free(v);
    o1 = wait_observed("a", 1, "running", NULL, 20000);

    /* etcd goes away and comes back: the watch resumes and sees a new key */
    cr_assert_eq(etcd_proc_stop(&etcd), 0);
    time_sleep_ms(1000);
    cr_assert_eq(etcd_proc_restart(&etcd), 0);
    v = instance(2, 1, "running", NULL, NULL);
    put_instance("a", 2, v);
    free(v);
    json_decref(wait_observed("a", 2, "running", NULL, 20000));

    /* the agent restarts: nothing recreated */
    cr_assert_eq(WEXITSTATUS(proc_stop(agents[0], SIGTERM, 5000)), 0);
    agents[0] = 0;
    start_agent(0, "a");
    time_sleep_ms(2000);
    o2 = wait_observed("a", 1, "running", NULL, 1000);
    cr_assert_str_eq(id_of(o2), id_of(o1), "recreated by a restarted agent");
    json_decref(inspect(id_of(o1)));
    json_decref(o1);
    json_decref(o2);
}

/* --- with the master ------------------------------------------------------------------- */

static char *uri, *token, *grid_token, *pem;

static void req(const char *method, const char *path, const char *body, struct http_reply *r)
{
    char *u = xasprintf("%s%s", api.url, path);
    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, r), 0, "%s %s failed", method,
                 path);
    free(u);
}

static void master_init(void)
{
    struct http_reply r;
    char *u, *body;

    common_init();
    uri = agent_proc_env(1, 500, 1000, 3);
    api_fixture_setup();
    dir = xstrdup(api.dir);
    open_etcd();
    pem = xasprintf("%s/master.pem", api.dir);
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     api.admin_password);
    u = xasprintf("%s/oauth2/token", api.url);
    cr_assert_eq(http_do("POST", u, NULL, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "login: %ld %s", r.status, r.body);
    token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    http_reply_release(&r);
    free(u);
    free(body);
    use_grid("m");
    body = xasprintf("{\"name\":\"%s\",\"initial_size\":1}", grid);
    req("POST", "/v1/grids", body, &r);
    free(body);
    cr_assert_eq(r.status, 201, "grid create: %ld %s", r.status, r.body);
    grid_token = xstrdup(json_string_value(json_object_get(r.json, "token")));
    http_reply_release(&r);
}

static void master_fini(void)
{
    common_fini();
    api_fixture_teardown();
    FREE_AND_NULL(uri);
    FREE_AND_NULL(token);
    FREE_AND_NULL(grid_token);
    FREE_AND_NULL(pem);
    FREE_AND_NULL(dir);
}

TestSuite(master, .init = master_init, .fini = master_fini, .timeout = 120);

RC_TEST(master, grid_from_node_info_and_master_restart_recreates_nothing)
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    char *log = xasprintf("%s/agent-n1.log", dir);
    const char *argv[] = {bin,
                          "--uri",
                          uri,
                          "--token",
                          grid_token,
                          "--ca-cert",
                          pem,
                          "--node-name",
                          "n1",
                          "--etcd-endpoints",
                          etcd.endpoint,
                          "--docker-socket",
                          docker_env_socket(),
                          "--backoff-max",
                          "1000",
                          NULL};
    json_t *o1, *o2;
    char *v;

    agents[0] = proc_spawn(argv, NULL, log);
    cr_assert_gt(agents[0], 0);
    logs[0] = xstrdup(log);
    v = instance(1, 1, "running", NULL, NULL);
    put_instance("n1", 1, v);
    free(v);
    o1 = wait_observed("n1", 1, "running", NULL, 20000);

    cr_assert_eq(api_proc_stop(&api), 0);
    time_sleep_ms(1500);
    cr_assert_eq(api_proc_restart(&api), 0);
    time_sleep_ms(2500);
    o2 = wait_observed("n1", 1, "running", NULL, 1000);
    cr_assert_str_eq(id_of(o2), id_of(o1), "recreated after the master's restart");
    {
        json_t *c = inspect(id_of(o1));
        cr_assert(json_is_true(json_object_get(json_object_get(c, "State"), "Running")));
        json_decref(c);
    }
    cr_assert_eq(waitpid(agents[0], NULL, WNOHANG), 0, "the agent died");
    json_decref(o1);
    json_decref(o2);
    free(bin);
    free(log);
    cr_assert_eq(api_proc_stop(&api), 0, "kontena-apiserver did not exit cleanly");
}
