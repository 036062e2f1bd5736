/* `kontena node ...` (cli.md §4) against a real kontena-apiserver with its agents' endpoint, a
 * real etcd and real kontena-agent processes (--no-docker), one apiserver and etcd per test.
 * What the CLI did is checked through its output and through what the master answers. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/agent_proc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"

#define PING_MS 500
#define PING_TIMEOUT_MS 1000
#define LEASE_TTL_S 3

static char *out, *err;
static char *uri, *pem, *grid_token, *admin_token;

static void setup(void)
{
    static const char *const vars[] = {"KONTENA_URL",       "KONTENA_MASTER",   "KONTENA_TOKEN",
                                       "KONTENA_GRID",      "KONTENA_PASSWORD", "DEBUG",
                                       "SSL_IGNORE_ERRORS", "KONTENA_CONFIG"};

    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
    uri = agent_proc_env(1, PING_MS, PING_TIMEOUT_MS, LEASE_TTL_S);
    api_fixture_setup();
    setenv("HOME", api.dir, 1);
    pem = xasprintf("%s/master.pem", api.dir);
}

static void teardown(void)
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    FREE_AND_NULL(uri);
    FREE_AND_NULL(pem);
    FREE_AND_NULL(grid_token);
    FREE_AND_NULL(admin_token);
    api_fixture_teardown();
}

TestSuite(node, .init = setup, .fini = teardown, .timeout = 120);

#define KONTENA(...) run((const char *[]){__VA_ARGS__, NULL})

static int run(const char *args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, NULL, NULL, &out, &err, args);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Log in with the CLI, create grid "grd" (initial size 1) and keep its token for agents. */
static void login_and_grid(void)
{
    struct http_reply r;
    char *body, *u;
    size_t n;

    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p",
                         api.admin_password, "--name", "m", api.url),
                 0, "login: %s %s", out, err);
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "1", "grd"), 0, "%s %s", out, err);
    cr_assert_eq(KONTENA("grid", "show", "--token", "grd"), 0, "%s %s", out, err);
    n = strcspn(out, "\n");
    grid_token = xstrndup(out, n);
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     api.admin_password);
    u = xasprintf("%s/oauth2/token", api.url);
    cr_assert_eq(http_do("POST", u, NULL, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    admin_token = xstrdup(jstr(r.json, "access_token"));
    http_reply_release(&r);
    free(u);
    free(body);
}

static void start_agent(struct agent_proc *a, const char *name)
{
    const char *extra[] = {"--ca-cert", pem, "--ping-interval", "500", "--ping-timeout", "1000",
                           "--backoff-max", "1000", NULL};
    cr_assert_eq(agent_proc_start(a, api.dir, uri, grid_token, name, extra), 0);
}

/* The node's status as the master reports it, or "missing" after a 404. Fresh memory. */
static char *node_status(const char *name)
{
    struct http_reply r;
    char *u = xasprintf("%s/v1/nodes/grd/%s", api.url, name), *st;

    cr_assert_eq(http_do("GET", u, admin_token, NULL, (size_t)-1, NULL, &r), 0);
    free(u);
    if (r.status == 404) {
        st = xstrdup("missing");
    } else {
        cr_assert_eq(r.status, 200, "GET node %s: %ld %s", name, r.status, r.body);
        st = xstrdup(jstr(r.json, "status"));
    }
    http_reply_release(&r);
    return st;
}

static void wait_status(const char *name, const char *want, int timeout_ms)
{
    int64_t t0 = time_mono_ms();

    for (;;) {
        char *st = node_status(name);
        int ok = !strcmp(st, want);

        if (ok) {
            free(st);
            return;
        }
        cr_assert(time_mono_ms() - t0 < timeout_ms, "node %s is %s, not %s after %d ms", name, st,
                  want, timeout_ms);
        free(st);
        time_sleep_ms(50);
    }
}

/* The line of `out` that contains needle (fresh memory), or NULL. */
static char *line_with(const char *needle)
{
    const char *p = out ? strstr(out, needle) : NULL, *b, *e;

    if (!p)
        return NULL;
    for (b = p; b > out && b[-1] != '\n'; b--)
        ;
    e = p + strcspn(p, "\n");
    return xstrndup(b, (size_t)(e - b));
}

static void assert_line(const char *needle, const char *expect)
{
    char *l = line_with(needle);

    cr_assert(l, "no line with '%s' in:\n%s", needle, out);
    cr_assert(strstr(l, expect), "line '%s' lacks '%s'\n%s", l, expect, out);
    free(l);
}

API_TEST(node, ls_two_agents_one_killed_goes_offline_quiet_and_json)
{
    struct agent_proc a, b;
    json_t *v, *nodes;
    json_error_t je;

    login_and_grid();
    cr_assert_eq(KONTENA("node", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME  VERSION  STATUS  INITIAL  LABELS\n");
    cr_assert_eq(KONTENA("node", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "");

    start_agent(&a, "n1");
    wait_status("n1", "online", 10000);
    start_agent(&b, "n2");
    wait_status("n2", "online", 10000);

    cr_assert_eq(KONTENA("node", "ls"), 0, "%s", err);
    cr_assert(!strncmp(out, "NAME ", 5), "%s", out);
    cr_assert(strstr(out, "VERSION") && strstr(out, "STATUS") && strstr(out, "INITIAL") &&
                  strstr(out, "LABELS"),
              "%s", out);
    assert_line("⊛ n1", "online ");
    assert_line("⊛ n1", "1 / 1");
    assert_line("⊛ n1", KONTENA_VERSION);
    assert_line("⊛ n2", "online ");
    assert_line("⊛ n2", "  -"); /* not an initial node; no labels */
    cr_assert(strstr(out, "n1") < strstr(out, "n2"), "sorted by node number:\n%s", out);

    cr_assert_eq(KONTENA("node", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "n1\nn2\n");

    /* Killed: offline once the socket drops. */
    agent_proc_stop(&b, SIGKILL);
    wait_status("n2", "offline", 10000);
    cr_assert_eq(KONTENA("node", "ls"), 0, "%s", err);
    assert_line("⊗ n2", "offline ");
    assert_line("⊛ n1", "online ");

    cr_assert_eq(KONTENA("node", "ls", "-o", "json"), 0, "%s", err);
    v = json_loads(out, 0, &je);
    cr_assert(v, "not JSON: %s\n%s", je.text, out);
    nodes = json_object_get(v, "nodes");
    cr_assert_eq(json_array_size(nodes), 2, "%s", out);
    cr_assert_str_eq(jstr(json_array_get(nodes, 0), "name"), "n1");
    cr_assert_str_eq(jstr(json_array_get(nodes, 0), "status"), "online");
    cr_assert_str_eq(jstr(json_array_get(nodes, 1), "status"), "offline");
    cr_assert_null(json_object_get(json_array_get(nodes, 0), "_initial_size"));
    json_decref(v);

    /* All grids: names as grid/node. */
    cr_assert_eq(KONTENA("node", "ls", "--all", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "grd/n1\ngrd/n2\n");
    cr_assert_eq(KONTENA("node", "ls", "-o", "yaml"), 1);
    cr_assert(strstr(err, "ERROR: "), "%s", err);

    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

API_TEST(node, show_update_and_labels)
{
    struct agent_proc a;
    json_t *v;
    json_error_t je;

    login_and_grid();
    start_agent(&a, "n1");
    wait_status("n1", "online", 10000);

    cr_assert_eq(KONTENA("node", "show", "n1"), 0, "%s", err);
    cr_assert(!strncmp(out, "grd/n1:\n", 8), "%s", out);
    cr_assert(strstr(out, "\n  connected: yes\n"), "%s", out);
    cr_assert(strstr(out, "\n  status: online"), "%s", out);
    cr_assert(strstr(out, "\n  availability: active\n"), "%s", out);
    cr_assert(strstr(out, "\n  initial node: yes\n"), "%s", out);
    cr_assert(strstr(out, "\n  overlay ip: 10.81.0.1\n"), "%s", out);
    cr_assert(strstr(out, "\n  agent version: " KONTENA_VERSION "\n"), "%s", out);
    cr_assert(strstr(out, "\n  labels:\n  stats:\n"), "%s", out);

    cr_assert_eq(KONTENA("node", "show", "n1", "-o", "json"), 0, "%s", err);
    v = json_loads(out, 0, &je);
    cr_assert(v, "not JSON: %s\n%s", je.text, out);
    cr_assert_str_eq(jstr(v, "name"), "n1");
    cr_assert(json_is_true(json_object_get(v, "connected")));
    json_decref(v);

    /* Labels and drain. */
    cr_assert_eq(KONTENA("node", "update", "n1", "-l", "region=eu", "--label", "az=a",
                         "--availability", "drain"),
                 0, "%s %s", out, err);
    cr_assert(strstr(out, "Updating n1 node"), "%s", out);
    cr_assert_eq(KONTENA("node", "ls"), 0, "%s", err);
    assert_line("n1", "drain");
    assert_line("n1", "region=eu,az=a");
    cr_assert_eq(KONTENA("node", "show", "n1"), 0, "%s", err);
    cr_assert(strstr(out, "\n  availability: drain\n"), "%s", out);
    cr_assert(strstr(out, "\n  status: drain\n"), "%s", out);
    cr_assert(strstr(out, "\n  labels:\n    - region=eu\n    - az=a\n"), "%s", out);

    cr_assert_eq(KONTENA("node", "update", "n1", "--availability", "sideways"), 1);
    cr_assert(strstr(err, "must be active or drain"), "%s", err);
    cr_assert_eq(KONTENA("node", "update", "n1"), 1);
    cr_assert(strstr(err, "nothing to update"), "%s", err);
    /* The master's own validation comes through as a 422. */
    cr_assert_eq(KONTENA("node", "update", "n1", "--labels", "a b"), 1);
    cr_assert(strstr(err, "422"), "%s", err);

    cr_assert_eq(KONTENA("node", "update", "n1", "--availability", "active", "--labels", "x=1,y=2"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("node", "ls"), 0, "%s", err);
    assert_line("⊛ n1", "online ");
    assert_line("⊛ n1", "x=1,y=2");

    /* label add (deduplicated) / ls / rm. */
    cr_assert_eq(KONTENA("node", "label", "add", "n1", "y=2", "z=3"), 0, "%s", err);
    cr_assert_eq(KONTENA("node", "label", "ls", "n1"), 0, "%s", err);
    cr_assert_str_eq(out, "x=1\ny=2\nz=3\n");
    cr_assert_eq(KONTENA("node", "label", "rm", "n1", "x=1"), 0, "%s", err);
    cr_assert_eq(KONTENA("node", "label", "ls", "n1"), 0, "%s", err);
    cr_assert_str_eq(out, "y=2\nz=3\n");
    cr_assert_eq(KONTENA("node", "label", "rm", "n1", "nope", "z=3"), 1);
    cr_assert(strstr(err, " [error] Label(s) nope not found on node n1"), "%s", err);
    cr_assert_eq(KONTENA("node", "label", "ls", "n1"), 0, "%s", err);
    cr_assert_str_eq(out, "y=2\nz=3\n"); /* nothing changed */
    cr_assert_eq(KONTENA("node", "label", "rm", "--force", "n1", "nope", "z=3"), 0, "%s", err);
    cr_assert_eq(KONTENA("node", "label", "ls", "n1"), 0, "%s", err);
    cr_assert_str_eq(out, "y=2\n");
    cr_assert_eq(KONTENA("node", "label", "ls", "n1", "-o", "json"), 0, "%s", err);
    v = json_loads(out, 0, &je);
    cr_assert(json_is_array(v) && json_array_size(v) == 1, "%s", out);
    cr_assert_str_eq(json_string_value(json_array_get(v, 0)), "y=2");
    json_decref(v);
    cr_assert_eq(KONTENA("node", "update", "n1", "--clear-labels"), 0, "%s", err);
    cr_assert_eq(KONTENA("node", "label", "ls", "n1"), 0, "%s", err);
    cr_assert_str_eq(out, "");

    agent_proc_cleanup(&a);
}

API_TEST(node, rm_refused_while_online_unless_forced)
{
    struct agent_proc a, b;
    char *st;
    int ws;

    login_and_grid();
    start_agent(&a, "n1");
    wait_status("n1", "online", 10000);
    start_agent(&b, "n2");
    wait_status("n2", "online", 10000);

    cr_assert_eq(KONTENA("node", "rm", "n1"), 1);
    cr_assert(strstr(err, " [error] Node n1 is still online"), "%s", err);
    st = node_status("n1");
    cr_assert_str_eq(st, "online");
    free(st);

    /* Offline: no --force needed on the master's side, but the confirmation needs a
     * terminal, so without one the CLI asks for --force. */
    agent_proc_stop(&b, SIGKILL);
    wait_status("n2", "offline", 10000);
    cr_assert_eq(KONTENA("node", "rm", "n2"), 1);
    cr_assert(strstr(err, "Command requires --force"), "%s", err);
    cr_assert_eq(KONTENA("node", "rm", "--force", "n2"), 0, "%s %s", out, err);
    cr_assert(strstr(out, "Removing n2 node"), "%s", out);
    wait_status("n2", "missing", 10);

    /* Forced while online: removed, and its agent stops. */
    cr_assert_eq(KONTENA("node", "rm", "n1", "--force"), 0, "%s %s", out, err);
    wait_status("n1", "missing", 10);
    ws = agent_proc_wait_exit(&a, 5000);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "%s", agent_proc_read_log(&a));
    cr_assert_eq(KONTENA("node", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "");

    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

API_TEST(node, unknown_node_is_a_clear_error)
{
    login_and_grid();
    cr_assert_eq(KONTENA("node", "show", "nope"), 1);
    cr_assert(strstr(err, " [error] 404 : Node nope not found"), "%s", err);
    cr_assert_eq(KONTENA("node", "update", "nope", "--availability", "drain"), 1);
    cr_assert(strstr(err, "Node nope not found"), "%s", err);
    cr_assert_eq(KONTENA("node", "label", "add", "nope", "a=b"), 1);
    cr_assert(strstr(err, "Node nope not found"), "%s", err);
    cr_assert_eq(KONTENA("node", "rm", "--force", "nope"), 1);
    cr_assert(strstr(err, "Node nope not found"), "%s", err);
    cr_assert_eq(KONTENA("node", "show", "--grid", "nogrid", "nope"), 1);
    cr_assert(strstr(err, "404"), "%s", err);
    cr_assert_eq(KONTENA("node", "show"), 1);
    cr_assert(strstr(err, "parameter 'NODE': no value provided"), "%s", err);
}
