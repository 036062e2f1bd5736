/* `kontena container ls / inspect / logs / exec` end to end (issue 4 point 4): a real etcd,
 * kontena-apiserver with its agents' endpoint, a kontena-agent that reconciles against the
 * real dockerd, and the CLI binary. inspect, logs and exec go CLI → master → the agent's
 * WebSocket → Docker and back.
 */
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
static char *grid, *uri, *token, *grid_token, *pem, *agent_log;
static pid_t agent;
static char *out, *err;

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

static void req(const char *method, const char *path, const char *body, struct http_reply *r)
{
    char *u = xasprintf("%s%s", api.url, path);
    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, r), 0, "%s %s failed", method,
                 path);
    free(u);
}

static void init(void)
{
    struct http_reply r;
    struct err e = ERR_INIT;
    struct etcd_opts eo = {0};
    char *u, *body;

    docker_env_require();
    dk = docker_create(NULL, &e);
    cr_assert(dk, "docker_create: %s", e.msg);
    uri = agent_proc_env(1, 500, 1000, 3);
    api_fixture_setup();
    eo.endpoints = etcd.endpoint;
    ec = etcd_create(&eo, &e);
    cr_assert(ec, "etcd_create: %s", e.msg);
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
    grid = docker_env_name("c");
    body = xasprintf("{\"name\":\"%s\",\"initial_size\":1}", grid);
    req("POST", "/v1/grids", body, &r);
    free(body);
    cr_assert_eq(r.status, 201, "grid create: %ld %s", r.status, r.body);
    grid_token = xstrdup(json_string_value(json_object_get(r.json, "token")));
    http_reply_release(&r);
}

static void fini(void)
{
    if (agent > 0)
        proc_stop(agent, SIGTERM, 5000);
    agent = 0;
    remove_grid_containers();
    etcd_destroy(ec);
    ec = NULL;
    docker_destroy(dk);
    dk = NULL;
    api_fixture_teardown();
    FREE_AND_NULL(grid);
    FREE_AND_NULL(uri);
    FREE_AND_NULL(token);
    FREE_AND_NULL(grid_token);
    FREE_AND_NULL(pem);
    FREE_AND_NULL(agent_log);
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
}

TestSuite(containers, .init = init, .fini = fini, .timeout = 120);

/* Run the CLI against the test master; its exit status. */
#define KONTENA(...) run((const char *[]){__VA_ARGS__, NULL})
static int run(const char *args[])
{
    char *e_url = xasprintf("KONTENA_URL=%s", api.url), *e_tok = xasprintf("KONTENA_TOKEN=%s", token),
         *e_grid = xasprintf("KONTENA_GRID=%s", grid);
    const char *env[] = {e_url, e_tok, e_grid, "SSL_IGNORE_ERRORS=true", NULL};
    int rc;

    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    rc = api_cli_env(&api, env, NULL, &out, &err, args);
    free(e_url);
    free(e_tok);
    free(e_grid);
    return rc;
}

static void start_agent(const char *node)
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    const char *argv[] = {bin,           "--uri",         uri,   "--token",
                          grid_token,    "--ca-cert",     pem,   "--node-name",
                          node,          "--etcd-endpoints", etcd.endpoint, "--docker-socket",
                          docker_env_socket(), "--backoff-max", "1000", NULL};

    agent_log = xasprintf("%s/agent-%s.log", api.dir, node);
    agent = proc_spawn(argv, NULL, agent_log);
    cr_assert_gt(agent, 0, "cannot start kontena-agent");
    free(bin);
}

static void stop_agent_checked(void)
{
    int ws = proc_stop(agent, SIGTERM, 5000);

    agent = 0;
    if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        proc_dump_file(agent_log);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "the agent did not exit cleanly (wait status %d)", ws);
}

/* Put instance web-1 on node n1 and wait until it runs. Returns "n1/<name>" (fresh). */
static char *run_container(void)
{
    char *name = xasprintf("%s.web-1", grid), *key = xasprintf("/kontena/instances/%s/n1/%s", grid, name);
    json_t *v = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:{s:s, s:[s,s,s], s:i, s:{s:s}}}", "service_id",
        "svc", "grid", grid, "stack", grid, "service", "web", "instance_number", 1, "revision", 1,
        "desired_state", "running", "restart_generation", 0, "spec", "image", DOCKER_ENV_IMAGE,
        "cmd", "sh", "-c", "echo line-one; echo line-two >&2; exec sleep 3600",
        "stop_grace_period", 1, "labels", DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    json_object_set_new(v, "overlay_cidr", json_string("10.81.128.1/16")); /* as kontena-ipam */
    char *s = json_dumps(v, JSON_COMPACT), *okey = xasprintf("/kontena/observed/%s/n1/%s", grid, name);
    int64_t t0 = time_mono_ms();
    char *id = xasprintf("n1/%s", name);

    cr_assert_eq(etcd_put(ec, key, s, strlen(s), 0, NULL, NULL, NULL), ST_OK);
    for (;;) {
        struct etcd_kv kv;
        int running = 0;
        if (etcd_get(ec, okey, &kv, NULL, NULL) == ST_OK) {
            running = strstr(kv.value, "\"state\":\"running\"") != NULL;
            etcd_kv_release(&kv);
        }
        if (running)
            break;
        if (time_mono_ms() - t0 > 30000) {
            proc_dump_file(agent_log);
            cr_assert_fail("the container did not start");
        }
        time_sleep_ms(50);
    }
    json_decref(v);
    free(s);
    free(key);
    free(okey);
    free(name);
    return id;
}

Test(containers, ls_inspect_logs_exec_through_the_agent)
{
    char *id, *bad;
    json_t *j, *cmd;
    int rc;

    start_agent("n1");
    id = run_container();

    rc = KONTENA("container", "ls");
    cr_assert_eq(rc, 0, "ls: %s %s", out, err);
    cr_assert(strstr(out, "CONTAINER_ID") && strstr(out, id), "ls: %s", out);
    cr_assert(strstr(out, DOCKER_ENV_IMAGE) && strstr(out, "running"), "ls: %s", out);
    rc = KONTENA("container", "ls", "-q");
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, id) && !strstr(out, "IMAGE"), "ls -q: %s", out);

    /* inspect: Docker's own JSON */
    rc = KONTENA("container", "inspect", id);
    cr_assert_eq(rc, 0, "inspect: %s %s", out, err);
    j = json_loads(out, 0, NULL);
    cr_assert(j, "inspect is not JSON: %s", out);
    cmd = json_object_get(json_object_get(j, "Config"), "Cmd");
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 0)), "sh");
    cr_assert_str_eq(json_string_value(json_array_get(cmd, 2)),
                     "echo line-one; echo line-two >&2; exec sleep 3600");
    json_decref(j);

    /* logs: both streams, with the container's name */
    rc = KONTENA("container", "logs", id);
    cr_assert_eq(rc, 0, "logs: %s %s", out, err);
    cr_assert(strstr(out, "web-1: line-one"), "logs stdout: %s", out);
    cr_assert(strstr(err, "web-1: line-two"), "logs stderr: %s", err);
    rc = KONTENA("container", "logs", "--tail", "1", id);
    cr_assert_eq(rc, 0);

    /* exec: exit codes pass through */
    rc = KONTENA("container", "exec", id, "--", "sh", "-c", "echo out; echo err >&2; exit 32");
    cr_assert_eq(rc, 32, "exec exit 32: %d %s %s", rc, out, err);
    cr_assert_str_eq(out, "out\n");
    cr_assert(strstr(err, "err\n"), "%s", err);
    rc = KONTENA("container", "exec", id, "no-such-binary");
    cr_assert_eq(rc, 126, "missing binary: %d %s %s", rc, out, err);
    rc = KONTENA("container", "exec", "--shell", id, "echo hi");
    cr_assert_eq(rc, 0, "exec --shell: %s %s", out, err);
    cr_assert_str_eq(out, "hi\n");

    /* unknown container, node not connected: clear errors, exit 1 */
    bad = xasprintf("n1/%s.nope-1", grid);
    rc = KONTENA("container", "inspect", bad);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "not found"), "unknown container: %s", err);
    rc = KONTENA("container", "exec", bad, "true");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "not found"), "unknown container exec: %s", err);
    free(bad);
    rc = KONTENA("container", "logs", "ghost/x");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "Node ghost not found"), "unknown node: %s", err);
    rc = KONTENA("container", "inspect", "no-slash");
    cr_assert_eq(rc, 1);

    /* a container of this node but not labelled with it is not reachable */
    free(id);
    stop_agent_checked();
    rc = KONTENA("container", "exec", "n1/whatever", "true");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "Node n1 is not connected"), "after the agent stopped: %s", err);
}
