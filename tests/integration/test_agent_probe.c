/* tests/integration/test_agent_probe.c -- the agent's issue 5 duties against the real dockerd
 * and a real etcd: no container before the instance has an overlay address, a changed
 * address recreates, health_restarts restarts, health checks (http, tcp) and
 * wait_for_port reach the observed value.
 *
 * Like test_agent_reconcile.c: one etcd and one agent in reconcile-only mode per test, a
 * grid per test ("<run id>-<test>"), containers "<grid>.web-<n>" removed at the end. The
 * instance keys are written here as kontena-scheduler and kontena-ipam would. */
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
#include "tests/support/docker_env.h"
#include "tests/support/etcd_proc.h"
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

static struct etcd_proc etcdp;
static struct docker *dk;
static struct etcd *ec;
static char *grid, *agent_log;
static pid_t agent;

static void init(void)
{
    struct err e = ERR_INIT;
    struct etcd_opts o;

    docker_env_require();
    dk = docker_create(NULL, &e);
    cr_assert(dk, "docker_create: %s", e.msg);
    cr_assert_eq(etcd_proc_start(&etcdp), 0, "cannot start etcd");
    memset(&o, 0, sizeof(o));
    o.endpoints = etcdp.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert(ec, "etcd_create: %s", e.msg);
}

static void fini(void)
{
    if (agent > 0)
        proc_stop(agent, SIGTERM, 5000);
    agent = 0;
    if (grid) {
        char *label = xasprintf("io.kontena.grid=%s", grid);
        if (docker_env_remove_containers(label) < 0)
            fprintf(stderr, "cannot remove the test containers of grid %s\n", grid);
        free(label);
    }
    etcd_destroy(ec);
    ec = NULL;
    docker_destroy(dk);
    dk = NULL;
    etcd_proc_cleanup(&etcdp);
    FREE_AND_NULL(grid);
    FREE_AND_NULL(agent_log);
}

TestSuite(probe, .init = init, .fini = fini, .timeout = 120);

/* The agent exits cleanly (a sanitizer report or a crash at shutdown fails the test). */
static void stop_agent_checked(void)
{
    int ws = proc_stop(agent, SIGTERM, 5000);
    agent = 0;
    if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        proc_dump_file(agent_log);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "the agent did not exit cleanly (wait status %d)", ws);
}

static void start_agent(const char *test)
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    const char *argv[] = {bin,
                          "--etcd-endpoints",
                          etcdp.endpoint,
                          "--grid",
                          NULL,
                          "--node-name",
                          "a",
                          "--docker-socket",
                          NULL,
                          "--resync-interval",
                          "5000",
                          "--log-level",
                          "debug",
                          NULL};

    grid = docker_env_name(test);
    agent_log = xasprintf("%s/agent.log", etcdp.dir);
    argv[4] = grid;
    argv[8] = docker_env_socket();
    agent = proc_spawn(argv, NULL, agent_log);
    cr_assert_gt(agent, 0, "cannot start kontena-agent");
    free(bin);
}

static char *cname(void)
{
    return xasprintf("%s.web-1", grid);
}

/* Instance web-1 on node a: revision 1, running, the given spec fields (JSON text, may be
 * NULL), overlay_cidr (NULL: none yet), health_restarts. */
static void put_instance(const char *spec_extra, const char *cidr, int health_restarts)
{
    json_t *spec = spec_extra ? json_loads(spec_extra, 0, NULL) : json_object(), *v;
    char *name = cname(), *key = xasprintf("/kontena/instances/%s/a/%s", grid, name), *s;

    cr_assert(spec, "bad spec_extra in the test");
    json_object_set_new(spec, "image", json_string(DOCKER_ENV_IMAGE));
    if (!json_object_get(spec, "cmd"))
        json_object_set_new(spec, "cmd", json_pack("[s,s]", "sleep", "3600"));
    json_object_set_new(spec, "stop_grace_period", json_integer(1));
    json_object_set_new(spec, "labels",
                        json_pack("{s:s}", DOCKER_ENV_RUN_LABEL, docker_env_run_id()));
    v = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:i, s:o}", "service_id", "svc-id",
                  "grid", grid, "stack", grid, "service", "web", "instance_number", 1, "revision",
                  1, "desired_state", "running", "restart_generation", 0, "health_restarts",
                  health_restarts, "spec", spec);
    if (cidr) {
        json_object_set_new(v, "overlay_cidr", json_string(cidr));
        json_object_set_new(v, "overlay_since", json_integer(1));
    }
    s = json_dumps(v, JSON_COMPACT);
    cr_assert_eq(etcd_put(ec, key, s, strlen(s), 0, NULL, NULL, NULL), ST_OK);
    json_decref(v);
    free(s);
    free(key);
    free(name);
}

static json_t *get_observed(void)
{
    char *name = cname(), *key = xasprintf("/kontena/observed/%s/a/%s", grid, name);
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

typedef int (*obs_pred)(const json_t *o, const void *arg);

/* Poll the observed value until pred holds; returns it or fails after timeout_ms. */
static json_t *wait_for(obs_pred pred, const void *arg, const char *what, int timeout_ms)
{
    int64_t t0 = time_mono_ms();

    for (;;) {
        json_t *v = get_observed();
        if (v && pred(v, arg))
            return v;
        if (time_mono_ms() - t0 > timeout_ms) {
            char *s = v ? json_dumps(v, 0) : xstrdup("(none)");
            proc_dump_file(agent_log);
            cr_assert_fail("waiting for %s: observed %s", what, s);
        }
        json_decref(v);
        time_sleep_ms(50);
    }
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int is_state(const json_t *o, const void *arg)
{
    return !strcmp(sget(o, "state"), arg);
}

/* running, in a container other than arg (NULL: any) */
static int running_not(const json_t *o, const void *arg)
{
    return is_state(o, "running") && (!arg || strcmp(sget(o, "container_id"), arg) != 0);
}

static int health_is(const json_t *o, const void *arg)
{
    return !strcmp(sget(json_object_get(o, "health"), "status"), arg);
}

static int ready_is(const json_t *o, const void *arg)
{
    const json_t *r = json_object_get(o, "ready");
    return json_is_boolean(r) && json_is_true(r) == (arg != NULL);
}

static json_t *inspect_name(void)
{
    char *name = cname();
    json_t *c = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(docker_container_inspect(dk, name, &c, &e), ST_OK, "inspect %s: %s", name, e.msg);
    free(name);
    return c;
}

static const char *label_of(const json_t *c, const char *k)
{
    const char *s = json_string_value(
        json_object_get(json_object_get(json_object_get(c, "Config"), "Labels"), k));
    return s ? s : "";
}

Test(probe, waits_for_overlay_address_then_creates_and_a_new_address_recreates)
{
    json_t *o, *c, *left = NULL;
    char *name, *id1;

    start_agent("ovl");
    put_instance(NULL, NULL, 0);
    o = wait_for(is_state, "pending", "state pending", 20000);
    cr_assert_str_eq(sget(o, "reason"), "waiting for an overlay address");
    cr_assert(json_is_null(json_object_get(o, "error")));
    json_decref(o);
    name = cname();
    time_sleep_ms(1000); /* still nothing after a while */
    cr_assert_eq(docker_container_inspect(dk, name, &left, NULL), ST_NOTFOUND,
                 "a container was created without an overlay address");

    put_instance(NULL, "10.81.128.7/16", 0);
    o = wait_for(running_not, NULL, "running", 20000);
    c = inspect_name();
    cr_assert_str_eq(label_of(c, "io.kontena.container.overlay_cidr"), "10.81.128.7/16");
    id1 = xstrdup(sget(o, "container_id"));
    json_decref(c);
    json_decref(o);

    /* Same address rewritten: nothing happens. */
    put_instance("{\"env\":[\"X=1\"]}", "10.81.128.7/16", 0);
    time_sleep_ms(1500);
    o = wait_for(running_not, NULL, "running", 1000);
    cr_assert_str_eq(sget(o, "container_id"), id1, "recreated without an address change");
    json_decref(o);

    /* A new address: a new container carrying it, the old one gone. */
    put_instance(NULL, "10.81.128.9/16", 0);
    o = wait_for(running_not, id1, "running in a new container", 20000);
    c = inspect_name();
    cr_assert_str_eq(label_of(c, "io.kontena.container.overlay_cidr"), "10.81.128.9/16");
    cr_assert_eq(docker_container_inspect(dk, id1, &left, NULL), ST_NOTFOUND,
                 "the old container is still there");
    json_decref(c);
    json_decref(o);
    free(id1);
    free(name);
    stop_agent_checked();
}

Test(probe, host_network_needs_no_address)
{
    json_t *o, *c;

    start_agent("hostnet");
    put_instance("{\"net\":\"host\"}", NULL, 0);
    o = wait_for(running_not, NULL, "running", 20000);
    c = inspect_name();
    cr_assert_str_eq(label_of(c, "io.kontena.container.overlay_cidr"), "");
    json_decref(c);
    json_decref(o);
    stop_agent_checked();
}

#define HTTPD_CMD "{\"cmd\":[\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/var/www\"],"
#define TCP_CHECK_DELAYED                                                                          \
    HTTPD_CMD "\"health_check\":{\"protocol\":\"tcp\",\"port\":8080,\"timeout\":1,"                \
              "\"interval\":1,\"initial_delay\":2}}"

/* Also: the health results start over with the new run of the container. */
Test(probe, health_restarts_restarts_the_same_container)
{
    json_t *o, *c;
    char *id, *started;

    start_agent("hr");
    put_instance(TCP_CHECK_DELAYED, "10.81.128.2/16", 0);
    o = wait_for(health_is, "healthy", "healthy", 20000);
    cr_assert_eq(json_integer_value(json_object_get(o, "health_restarts")), 0);
    id = xstrdup(sget(o, "container_id"));
    c = inspect_name();
    started = xstrdup(sget(json_object_get(c, "State"), "StartedAt"));
    json_decref(c);
    json_decref(o);

    put_instance(TCP_CHECK_DELAYED, "10.81.128.2/16", 1);
    for (int i = 0;; i++) {
        o = get_observed();
        if (o && json_integer_value(json_object_get(o, "health_restarts")) == 1 &&
            is_state(o, "running") && strcmp(sget(o, "started_at"), started) != 0)
            break;
        cr_assert_lt(i, 400, "health_restarts 1 not applied");
        json_decref(o);
        time_sleep_ms(50);
    }
    cr_assert_str_eq(sget(o, "container_id"), id, "a restart must keep the container");
    c = inspect_name();
    cr_assert_str_neq(sget(json_object_get(c, "State"), "StartedAt"), started,
                      "StartedAt did not change: not restarted");
    free(started);
    started = xstrdup(sget(json_object_get(c, "State"), "StartedAt"));
    json_decref(c);
    cr_assert(json_is_null(json_object_get(o, "health")),
              "health not reset by the restart (initial_delay 2 s)");
    json_decref(o);
    o = wait_for(health_is, "healthy", "healthy again", 10000);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "health"), "failures")), 0);
    json_decref(o);

    /* Applied once only, also across an agent restart. */
    stop_agent_checked();
    FREE_AND_NULL(grid);
    FREE_AND_NULL(agent_log);
    start_agent("hr");
    time_sleep_ms(2000);
    c = inspect_name();
    cr_assert_str_eq(sget(json_object_get(c, "State"), "StartedAt"), started,
                     "the restarted agent restarted the container again");
    o = wait_for(running_not, NULL, "running", 5000);
    cr_assert_str_eq(sget(o, "container_id"), id);
    json_decref(o);
    json_decref(c);
    free(id);
    free(started);
    stop_agent_checked();
}

Test(probe, http_check_healthy_then_unhealthy_when_the_file_goes)
{
    json_t *o, *h;
    char *name;

    start_agent("http");
    put_instance(HTTPD_CMD "\"health_check\":{\"protocol\":\"http\",\"port\":8080,"
                           "\"uri\":\"/index.html\",\"timeout\":2,\"interval\":1,"
                           "\"initial_delay\":0}}",
                 "10.81.128.3/16", 0);
    o = wait_for(health_is, "healthy", "health healthy", 20000);
    h = json_object_get(o, "health");
    cr_assert_eq(json_integer_value(json_object_get(h, "status_code")), 200);
    cr_assert_eq(json_integer_value(json_object_get(h, "failures")), 0);
    cr_assert(*sget(h, "checked_at"));
    json_decref(o);

    name = cname();
    {
        const char *cmd[] = {"rm", "/var/www/index.html", NULL};
        struct docker_exec_opts eo = {.cmd = cmd};
        struct docker_exec_result res;
        struct err e = ERR_INIT;
        cr_assert_eq(docker_exec(dk, name, &eo, &res, &e), ST_OK, "exec: %s", e.msg);
        cr_assert_eq(res.exit_code, 0);
        docker_exec_result_release(&res);
    }
    o = wait_for(health_is, "unhealthy", "health unhealthy", 10000);
    h = json_object_get(o, "health");
    cr_assert_eq(json_integer_value(json_object_get(h, "status_code")), 404);
    cr_assert_geq(json_integer_value(json_object_get(h, "failures")), 1);
    json_decref(o);

    free(name);
    stop_agent_checked();
}

Test(probe, tcp_check_open_and_closed)
{
    json_t *o, *h;

    start_agent("tcp");
    put_instance(HTTPD_CMD "\"health_check\":{\"protocol\":\"tcp\",\"port\":8080,"
                           "\"timeout\":1,\"interval\":1,\"initial_delay\":0}}",
                 "10.81.128.4/16", 0);
    o = wait_for(health_is, "healthy", "tcp healthy", 20000);
    h = json_object_get(o, "health");
    cr_assert_str_eq(sget(h, "status_code"), "open");
    json_decref(o);

    /* Another port: nothing listens. A changed spec without a new revision keeps the
     * container; the agent follows the new check. */
    put_instance(HTTPD_CMD "\"health_check\":{\"protocol\":\"tcp\",\"port\":8081,"
                           "\"timeout\":1,\"interval\":1,\"initial_delay\":0}}",
                 "10.81.128.4/16", 0);
    o = wait_for(health_is, "unhealthy", "tcp unhealthy", 20000);
    h = json_object_get(o, "health");
    cr_assert_str_eq(sget(h, "status_code"), "closed");
    json_decref(o);
    stop_agent_checked();
}

Test(probe, wait_for_port_ready_false_then_true)
{
    json_t *o;
    int64_t t0;

    start_agent("wfp");
    put_instance("{\"cmd\":[\"sh\",\"-c\",\"sleep 3; exec httpd -f -p 8080 -h /var/www\"],"
                 "\"wait_for_port\":8080}",
                 "10.81.128.5/16", 0);
    o = wait_for(ready_is, NULL, "ready false", 20000);
    cr_assert(is_state(o, "running"));
    t0 = time_mono_ms();
    json_decref(o);
    o = wait_for(ready_is, "", "ready true", 15000);
    cr_log_info("ready after %lld ms", (long long)(time_mono_ms() - t0));
    cr_assert(json_object_get(o, "health") == NULL, "health without a health check");
    json_decref(o);
    stop_agent_checked();
}
