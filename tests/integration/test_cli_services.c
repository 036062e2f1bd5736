/* `kontena service ...` (cli.md §6) against a real kontena-apiserver and etcd, one of each per
 * test. What the CLI did is checked through its output and through what the master stored.
 * There is no scheduler yet: deploy records stay "created", so deploys run with --no-wait,
 * or with a short --timeout, or with this file playing the scheduler (finish_deploys()). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static char *out, *err;

static void setup(void)
{
    static const char *const vars[] = {"KONTENA_URL",       "KONTENA_MASTER",   "KONTENA_TOKEN",
                                       "KONTENA_GRID",      "KONTENA_PASSWORD", "DEBUG",
                                       "SSL_IGNORE_ERRORS", "KONTENA_CONFIG"};

    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
    api_fixture_setup();
    setenv("HOME", api.dir, 1);
}

static void teardown(void)
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    api_fixture_teardown();
}

TestSuite(service, .init = setup, .fini = teardown, .timeout = 90);

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

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static const char *admin(void)
{
    const char *tok = api_proc_admin_token(&api);

    cr_assert_not_null(tok, "cannot log in as admin");
    return tok;
}

/* A request as admin that must answer want; the reply's JSON (new reference). */
static json_t *as_admin(const char *method, const char *path, const char *body, long want)
{
    struct http_reply r;
    char *u = xasprintf("%s%s", api.url, path);
    json_t *v;

    cr_assert_eq(http_do(method, u, admin(), body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    v = json_incref(r.json);
    http_reply_release(&r);
    free(u);
    return v;
}

/* Log in, create grid "lab" and select it. */
static void login_with_grid(void)
{
    char *pem = xasprintf("%s/master.pem", api.dir);

    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p",
                         api.admin_password, "--name", "test-master", api.url),
                 0, "login failed: %s %s", out, err);
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    free(pem);
}

static json_t *out_json(void)
{
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);

    cr_assert_not_null(v, "stdout is not JSON (%s): %s", je.text, out);
    return v;
}

static json_t *service(const char *id)
{
    char *path = xasprintf("/v1/services/%s", id);
    json_t *v = as_admin("GET", path, NULL, 200);

    free(path);
    return v;
}

/* etcd v3 JSON gateway. */
static json_t *etcd_post(const char *path, json_t *body)
{
    char *u = xasprintf("%s%s", etcd.endpoint, path), *s = json_dumps(body, JSON_COMPACT);
    struct http_reply r;
    json_t *v;

    cr_assert_eq(http_do("POST", u, NULL, s, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    v = json_incref(r.json);
    http_reply_release(&r);
    json_decref(body);
    free(s);
    free(u);
    return v;
}

/* The values under prefix, decoded (array of JSON objects). */
static json_t *etcd_values(const char *prefix)
{
    char *end = xstrdup(prefix), *k, *e;
    json_t *reply, *kv, *list = json_array();
    size_t i;

    end[strlen(end) - 1]++;
    k = crypto_b64_encode(prefix, strlen(prefix));
    e = crypto_b64_encode(end, strlen(end));
    reply = etcd_post("/v3/kv/range", json_pack("{s:s, s:s}", "key", k, "range_end", e));
    json_array_foreach(json_object_get(reply, "kvs"), i, kv)
    {
        size_t len = 0;
        const char *b64 = jstr(kv, "value") ? jstr(kv, "value") : "";
        char *val = crypto_b64_decode(b64, strlen(b64), &len);
        json_t *o = val ? json_loadb(val, len, 0, NULL) : NULL;

        if (o)
            json_array_append_new(list, o);
        free(val);
    }
    json_decref(reply);
    free(e);
    free(k);
    free(end);
    return list;
}

/* ---- ls, create, show ---- */

API_TEST(service, ls_is_a_header_when_empty_and_newest_first)
{
    json_t *v, *list;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME  INSTANCES  STATEFUL  STATE  EXPOSED PORTS\n");
    cr_assert_eq(KONTENA("service", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "");

    cr_assert_eq(KONTENA("service", "create", "test-1", "redis:3.2.8-alpine"), 0, "%s", err);
    cr_assert_str_eq(out, "* Creating test-1 service.. done\n");
    time_sleep_ms(5);
    cr_assert_eq(KONTENA("service", "create", "-p", "8080:80", "--instances", "2", "--stateful",
                         "test-2", "nginx"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("service", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME      INSTANCES  STATEFUL  STATE        EXPOSED PORTS\n"
                          "⊝ test-2  0 / 2      yes       initialized  0.0.0.0:8080->80/tcp\n"
                          "⊝ test-1  0 / 1      no        initialized\n");
    cr_assert_eq(KONTENA("service", "list", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "test-2\ntest-1\n");
    cr_assert_eq(KONTENA("service", "ls", "-o", "json"), 0, "%s", err);
    v = out_json();
    list = json_object_get(v, "services");
    cr_assert_eq(json_array_size(list), 2);
    json_decref(v);

    v = service("lab/null/test-2");
    cr_assert_str_eq(jstr(v, "image"), "nginx:latest", ":latest is added to a bare image");
    cr_assert(json_is_true(json_object_get(v, "stateful")));
    cr_assert_eq(jint(v, "instances"), 2);
    json_decref(v);
}

API_TEST(service, create_sends_every_option_and_show_prints_the_block)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "db", "redis:3.2"), 0, "%s", err);
    cr_assert_eq(
        KONTENA("service", "create", "-p", "80:8080", "-p", "1.2.3.4:53:53/udp", "-e", "A=1", "-e",
                "B=two", "-l", "db:cache", "-v", "/data", "-a", "node==n1", "--cpus", "1.5", "-c",
                "512", "-m", "512m", "--cmd", "redis-server --dir '/a b'", "--instances", "3", "-u",
                "nobody", "--privileged", "--cap-add", "NET_ADMIN", "--log-driver", "syslog",
                "--log-opt", "tag=x", "--deploy-strategy", "daemon", "--deploy-wait-for-port",
                "8080", "--deploy-min-health", "0.5", "--deploy-interval", "1min",
                "--health-check-protocol", "http", "--health-check-port", "8080",
                "--health-check-uri", "/", "--stop-signal", "SIGINT", "--stop-timeout", "1m23s",
                "--read-only", "web", "redis:3.2.8-alpine"),
        0, "%s", err);
    v = service("lab/null/web");
    cr_assert_eq(json_array_size(json_object_get(v, "ports")), 2);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "ports"), 1), "protocol"), "udp");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "cmd"), 2)), "/a b",
                     "shell split");
    cr_assert_eq(jint(v, "memory"), 536870912);
    cr_assert_eq(jint(v, "stop_grace_period"), 83);
    cr_assert_eq(jint(json_object_get(v, "deploy_opts"), "interval"), 60);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "links"), 0), "alias"), "cache");
    cr_assert_str_eq(jstr(v, "strategy"), "daemon");
    json_decref(v);

    cr_assert_eq(KONTENA("service", "show", "web"), 0, "%s", err);
    cr_assert(strstr(out, "lab/null/web:\n  created: "), "%s", out);
    cr_assert(strstr(out, "  stack: lab/null\n  desired_state: initialized\n"
                          "  image: redis:3.2.8-alpine\n  revision: 1\n"),
              "%s", out);
    cr_assert(strstr(out, "  stateful: no\n  scaling: 3\n  strategy: daemon\n  read_only: yes\n"
                          "  stop_signal: SIGINT\n  stop_grace_period: 83s\n"
                          "  deploy_opts:\n    min_health: 0.5\n    wait_for_port: 8080\n"
                          "    interval: 60\n  dns: web.lab.kontena.local\n"),
              "%s", out);
    cr_assert(strstr(out, "  cmd: redis-server --dir /a b\n"), "%s", out);
    cr_assert(strstr(out, "  env:\n    - A=1\n    - B=two\n"), "%s", out);
    cr_assert(strstr(out, "  ports:\n    - 80:8080/tcp\n    - 1.2.3.4:53:53/udp\n"), "%s", out);
    cr_assert(strstr(out, "  links:\n    - cache\n"), "%s", out);
    cr_assert(strstr(out, "  memory: 536MB\n"), "%s", out);
    cr_assert(strstr(out, "  health check:\n    protocol: http\n    uri: /\n    port: 8080\n"),
              "%s", out);
    cr_assert(strstr(out, "  instances:\n"), "%s", out);

    cr_assert_eq(KONTENA("service", "show", "-o", "json", "lab/null/web"), 0, "%s", err);
    v = out_json();
    cr_assert_str_eq(jstr(v, "id"), "lab/null/web");
    json_decref(v);
}

API_TEST(service, bad_input_and_unknown_services_exit_1)
{
    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "-p", "80", "web", "nginx"), 1);
    cr_assert(strstr(err, "Invalid port value 80"), "%s", err);
    cr_assert_eq(KONTENA("service", "create", "--memory", "lots", "web", "nginx"), 1);
    cr_assert_eq(KONTENA("service", "create", "--cmd", "echo 'x", "web", "nginx"), 1);
    cr_assert(strstr(err, "unmatched quote"), "%s", err);
    cr_assert_eq(KONTENA("service", "create", "web"), 1);
    cr_assert_str_eq(err, "ERROR: parameter 'IMAGE': no value provided\n\n"
                          "See: 'kontena service create --help'\n");
    cr_assert_eq(KONTENA("service", "show", "nope"), 1);
    cr_assert_str_eq(err, " [error] 404 : Service not found (/v1/services/lab/null/nope)\n");
    cr_assert_eq(KONTENA("service", "show", "a/b/c/d"), 1);
    cr_assert(strstr(err, "invalid service name 'a/b/c/d'"), "%s", err);
    cr_assert_eq(KONTENA("service", "scale", "web", "many"), 1);
    cr_assert(strstr(err, "parameter 'INSTANCES'"), "%s", err);
    cr_assert_eq(KONTENA("service", "create", "web", "nginx"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "create", "web", "nginx"), 1, "a duplicate");
    cr_assert(strstr(err, " [error] 409 : Conflict:\n\tname: "), "%s", err);
}

/* Names: svc (stack null), stack/svc and grid/stack/svc. */
API_TEST(service, stack_service_names)
{
    json_t *v;

    login_with_grid();
    v = as_admin("POST", "/v1/grids/lab/stacks",
                 "{\"name\":\"simple\",\"stack\":\"test/simple\",\"version\":\"1.0.0\","
                 "\"services\":[{\"name\":\"redis\",\"image\":\"redis:3\",\"stateful\":false}]}",
                 201);
    json_decref(v);
    cr_assert_eq(KONTENA("service", "show", "simple/redis"), 0, "%s", err);
    cr_assert(!strncmp(out, "lab/simple/redis:\n", 18), "%s", out);
    cr_assert(strstr(out, "  dns: redis.simple.lab.kontena.local\n"), "%s", out);
    /* Empty env, ports and links print no header; instances is always there. */
    cr_assert(!strstr(out, "  env:") && !strstr(out, "  ports:") && !strstr(out, "  links:"),
              "%s", out);
    cr_assert(strstr(out, "  instances:\n"), "%s", out);
    cr_assert_eq(KONTENA("service", "show", "lab/simple/redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "ls", "--stack", "simple", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "simple/redis\n");
    cr_assert_eq(KONTENA("service", "create", "simple/extra", "busybox"), 0, "%s", err);
    v = service("lab/simple/extra");
    cr_assert_str_eq(jstr(json_object_get(v, "stack"), "name"), "simple");
    json_decref(v);
    /* A stack-less service links to the stack's service by stack/svc. */
    cr_assert_eq(KONTENA("service", "create", "front", "nginx"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "link", "front", "simple/redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "show", "front"), 0, "%s", err);
    cr_assert(strstr(out, "  links:\n    - simple/redis\n"), "%s", out);
}

/* ---- update, link, env, start/stop ---- */

API_TEST(service, update_bumps_revision_and_shows_grace_period)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "--health-check-protocol", "tcp",
                         "--health-check-port", "6379", "web", "redis:3"),
                 0, "%s", err);
    cr_assert_eq(
        KONTENA("service", "update", "--image", "redis:4", "--stop-timeout", "1m23s", "web"), 0,
        "%s", err);
    cr_assert_str_eq(out, "* Updating web service.. done\n");
    cr_assert_eq(KONTENA("service", "show", "web"), 0, "%s", err);
    cr_assert(strstr(out, "  image: redis:4\n  revision: 2\n"), "%s", out);
    cr_assert(strstr(out, "  stop_grace_period: 83s\n"), "%s", out);
    cr_assert(strstr(out, "  health check:\n    protocol: tcp\n    port: 6379\n"), "%s", out);
    cr_assert_eq(KONTENA("service", "update", "--health-check-port", "none",
                         "--health-check-protocol", "none", "web"),
                 0, "%s", err);
    v = service("lab/null/web");
    cr_assert(json_is_null(json_object_get(v, "health_check")) ||
                  !json_object_get(v, "health_check"),
              "the health check is gone");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "update", "--stop-timeout", "soon", "web"), 1);
    cr_assert_eq(KONTENA("service", "update", "--image", "x", "nope"), 1);
    cr_assert(strstr(err, "404 : Service not found"), "%s", err);
}

API_TEST(service, link_and_unlink)
{
    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "test-1", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "create", "test-2", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "link", "test-1", "test-2"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "show", "test-1"), 0, "%s", err);
    cr_assert(strstr(out, "  links:\n    - test-2\n"), "%s", out);
    cr_assert_eq(KONTENA("service", "link", "test-1", "test-2"), 1);
    cr_assert_str_eq(err, " [error] Service is already linked to test-2\n");
    cr_assert_eq(KONTENA("service", "link", "test-1", "nope"), 1, "a missing target");
    cr_assert(strstr(err, " [error] 422 : Unprocessable Entity:"), "%s", err);
    cr_assert_eq(KONTENA("service", "unlink", "test-1", "test-2"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "show", "test-1"), 0, "%s", err);
    cr_assert(!strstr(out, "  links:"), "no links left, no header: %s", out);
    cr_assert_eq(KONTENA("service", "unlink", "test-1", "test-2"), 1);
    cr_assert_str_eq(err, " [error] Service is not linked to test-2\n");
}

API_TEST(service, env_ls_add_rm)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "-e", "ZED=1", "-e", "ALPHA=2", "web", "redis"), 0,
                 "%s", err);
    cr_assert_eq(KONTENA("service", "env", "ls", "web"), 0, "%s", err);
    cr_assert_str_eq(out, "ALPHA=2\nZED=1\n");
    cr_assert_eq(KONTENA("service", "env", "add", "web", "MID=x=y"), 0, "%s", err);
    cr_assert_str_eq(out, "* Setting env variable MID of service web.. done\n");
    cr_assert_eq(KONTENA("service", "env", "ls", "-q", "web"), 0, "%s", err);
    cr_assert_str_eq(out, "ALPHA\nMID\nZED\n");
    cr_assert_eq(KONTENA("service", "env", "ls", "-o", "json", "web"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(json_array_size(v), 3, "%s", out);
    cr_assert_str_eq(json_string_value(json_array_get(v, 1)), "MID=x=y");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "env", "rm", "web", "ZED", "ALPHA"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "env", "list", "web"), 0, "%s", err);
    cr_assert_str_eq(out, "MID=x=y\n");
    v = service("lab/null/web");
    cr_assert_eq(jint(v, "revision"), 4, "each change is a revision");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "env", "add", "web", "novalue"), 1);
}

API_TEST(service, start_stop_restart_set_the_desired_state)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "a", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "create", "b", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "start", "a", "b"), 0, "%s", err);
    cr_assert_str_eq(out, "* Sending start signal to a service.. done\n"
                          "* Sending start signal to b service.. done\n");
    cr_assert_eq(KONTENA("service", "show", "a"), 0, "%s", err);
    cr_assert(strstr(out, "  desired_state: running\n"), "%s", out);
    cr_assert_eq(KONTENA("service", "stop", "a"), 0, "%s", err);
    cr_assert_str_eq(out, "* Sending stop signal to a service.. done\n");
    cr_assert_eq(KONTENA("service", "show", "a"), 0, "%s", err);
    cr_assert(strstr(out, "  desired_state: stopped\n"), "%s", out);
    cr_assert_eq(KONTENA("service", "restart", "b"), 0, "%s", err);
    cr_assert_str_eq(out, "* Sending restart signal to b service.. done\n");
    v = service("lab/null/b");
    cr_assert_str_eq(jstr(v, "state"), "running");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "stop", "nope"), 1);
}

/* ---- deploy, scale ---- */

API_TEST(service, deploy_and_scale_without_waiting_create_deploy_records)
{
    json_t *list, *v;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "deploy", "--no-wait", "web"), 0, "%s", err);
    cr_assert_str_eq(out, "* Deploying service web.. done\n");
    cr_assert_eq(KONTENA("service", "scale", "--no-wait", "web", "3"), 0, "%s", err);
    cr_assert_str_eq(out, "* Scaling web to 3 instances.. done\n");
    list = etcd_values("/kontena/deploys/lab/");
    cr_assert_eq(json_array_size(list), 2, "one record per deploy");
    cr_assert_str_eq(jstr(json_array_get(list, 0), "state"), "created");
    json_decref(list);
    v = service("lab/null/web");
    cr_assert_eq(jint(v, "instances"), 3);
    cr_assert_str_eq(jstr(v, "state"), "running");
    cr_assert_eq(jint(v, "revision"), 1, "scale keeps the revision");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "deploy", "--no-wait", "--force", "web"), 0, "%s", err);
    v = service("lab/null/web");
    cr_assert_eq(jint(v, "revision"), 2, "--force bumps the revision");
    json_decref(v);
}

API_TEST(service, deploy_wait_times_out_without_a_scheduler)
{
    int64_t t0;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    t0 = time_mono_ms();
    cr_assert_eq(KONTENA("service", "deploy", "--timeout", "2", "web"), 1);
    cr_assert_geq(time_mono_ms() - t0, 2000);
    cr_assert_str_eq(out, "* Deploying service web.. done\n"
                          "* Deploying service web: waiting for the scheduler.. fail\n");
    cr_assert_str_eq(err, " [error] 500 : deploy timed out\n");
    cr_assert_eq(KONTENA("service", "deploy", "--timeout", "0", "web"), 1);
    cr_assert(strstr(err, "option '--timeout'"), "%s", err);
}

/* Plays the scheduler: marks the first deploy record it sees as finished with the given
 * state, with one instance on node-1. */
struct fake_scheduler {
    pthread_t th;
    const char *state;
    volatile int done;
};

static void *scheduler_main(void *arg)
{
    struct fake_scheduler *s = arg;
    int64_t deadline = time_mono_ms() + 20000;

    while (time_mono_ms() < deadline) {
        json_t *list = etcd_values("/kontena/deploys/lab/");
        json_t *d = json_array_get(list, 0);

        if (d) {
            char *key = xasprintf("/kontena/deploys/lab/%s", jstr(d, "id"));
            int ok = !strcmp(s->state, "success");
            char *val, *k, *v;

            json_object_set_new(d, "state", json_string(s->state));
            json_object_set_new(d, "finished_at", json_string("2026-01-01T00:00:00Z"));
            json_object_set_new(d, "reason",
                                json_string(ok ? ""
                                               : "halting deploy of "
                                                 "lab/null/web, one or more "
                                                 "instances failed"));
            json_object_set_new(d, "instance_deploys",
                                json_pack("[{s:i, s:s, s:s, s:s?}]", "instance_number", 1, "node",
                                          "node-1", "state", s->state, "error",
                                          ok ? NULL : "stat /dev/null/wtf: not a directory"));
            val = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
            k = crypto_b64_encode(key, strlen(key));
            v = crypto_b64_encode(val, strlen(val));
            json_decref(etcd_post("/v3/kv/put", json_pack("{s:s, s:s}", "key", k, "value", v)));
            free(k);
            free(v);
            free(val);
            free(key);
            json_decref(list);
            break;
        }
        json_decref(list);
        time_sleep_ms(100);
    }
    s->done = 1;
    return NULL;
}

API_TEST(service, deploy_waits_for_the_record_to_finish)
{
    struct fake_scheduler s = {.state = "success"};

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    cr_assert_eq(pthread_create(&s.th, NULL, scheduler_main, &s), 0);
    cr_assert_eq(KONTENA("service", "deploy", "--timeout", "20", "web"), 0, "%s", err);
    pthread_join(s.th, NULL);
    cr_assert(strstr(out, "⊛ Deployed instance lab/null/web-1 to node node-1\n"), "%s", out);
    cr_assert_str_eq(err, "");
}

API_TEST(service, deploy_failure_lists_the_failed_instances)
{
    struct fake_scheduler s = {.state = "error"};

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    cr_assert_eq(pthread_create(&s.th, NULL, scheduler_main, &s), 0);
    cr_assert_eq(KONTENA("service", "deploy", "--timeout", "20", "web"), 1);
    pthread_join(s.th, NULL);
    cr_assert_str_eq(err, " [error] 500 : halting deploy of lab/null/web, one or more instances "
                          "failed:\n\t⊗ Failed to deploy instance lab/null/web-1 to node node-1: "
                          "stat /dev/null/wtf: not a directory\n");
}

/* ---- rm ---- */

API_TEST(service, rm_confirms_unless_forced)
{
    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "create", "db", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "link", "web", "db"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "rm", "web"), 1, "no terminal to confirm on");
    cr_assert_str_eq(err, " [error] Command requires --force\n");
    cr_assert_eq(KONTENA("service", "rm", "--force", "db"), 1, "web links to db");
    cr_assert(strstr(err, "Cannot delete service that is linked to another service"), "%s", err);
    cr_assert_eq(KONTENA("service", "remove", "--force", "web", "db"), 0, "%s", err);
    cr_assert_str_eq(out, "* Removing service web.. done\n* Removing service db.. done\n");
    cr_assert_eq(KONTENA("service", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert_eq(KONTENA("service", "rm", "--force", "web"), 1);
    cr_assert(strstr(err, "404"), "%s", err);
    cr_assert_eq(KONTENA("service", "create", "web", "redis"), 0, "%s", err);
    cr_assert_eq(KONTENA("service", "rm", "--force", "--instance", "1", "web"), 1);
    cr_assert_str_eq(err, " [error] Instance not found\n");
}
