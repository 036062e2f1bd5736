/* Service health in the API (health_status of the service JSON) and in `kontena service ls`
 * / `service show`, against a real kontena-apiserver and etcd. The instance and observed
 * keys are written by the test the way kontena-scheduler and the agents write them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
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

TestSuite(health, .init = setup, .fini = teardown, .timeout = 90);

#define KONTENA(...) run((const char *[]){__VA_ARGS__, NULL})

static int run(const char *args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, NULL, NULL, &out, &err, args);
}

static json_t *as_admin(const char *method, const char *path, const char *body, long want)
{
    struct http_reply r;
    char *u = xasprintf("%s%s", api.url, path);
    const char *tok = api_proc_admin_token(&api);
    json_t *v;

    cr_assert_not_null(tok, "cannot log in as admin");
    cr_assert_eq(http_do(method, u, tok, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    v = json_incref(r.json);
    http_reply_release(&r);
    free(u);
    return v;
}

/* Put key = val (stolen) through etcd's JSON gateway. */
static void put(const char *key, json_t *val)
{
    char *s = json_dumps(val, JSON_COMPACT), *k = crypto_b64_encode(key, strlen(key));
    char *v = crypto_b64_encode(s, strlen(s)), *u = xasprintf("%s/v3/kv/put", etcd.endpoint);
    char *body = xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    struct http_reply r;

    cr_assert_eq(http_do("POST", u, NULL, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "put %s: %s", key, r.body);
    http_reply_release(&r);
    free(body);
    free(u);
    free(v);
    free(k);
    free(s);
    json_decref(val);
}

/* Instance n of lab/null/<svc> on node and what its agent observes: state and health
 * ("healthy", "unhealthy" or NULL for not checked). */
static void instance(const char *svc, int n, const char *node, const char *state,
                     const char *health)
{
    char *key = xasprintf("/kontena/instances/lab/%s/%s-%d", node, svc, n);
    char *sid = xasprintf("lab/null/%s", svc);
    json_t *obs;

    put(key, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s}", "service_id", sid, "grid", "lab", "stack",
                       "null", "service", svc, "instance_number", n, "revision", 1, "desired_state",
                       "running"));
    free(key);
    free(sid);
    obs = json_pack("{s:s,s:i,s:s}", "state", state, "revision", 1, "started_at",
                    "2026-01-01T00:00:00.000Z");
    if (health)
        json_object_set_new(obs, "health",
                            json_pack("{s:s,s:i}", "status", health, "failures",
                                      strcmp(health, "healthy") ? 1 : 0));
    key = xasprintf("/kontena/observed/lab/%s/%s-%d", node, svc, n);
    put(key, obs);
    free(key);
}

static void login_with_grid(void)
{
    char *pem = xasprintf("%s/master.pem", api.dir);

    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p",
                         api.admin_password, "--name", "test-master", api.url),
                 0, "login failed: %s %s", out, err);
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "1", "lab"), 0, "%s", err);
    free(pem);
}

API_TEST(health, status_counts_observed_health_and_cli_shows_it)
{
    json_t *v, *hs, *ic, *list, *x;
    size_t i;
    int seen = 0;

    login_with_grid();
    cr_assert_eq(KONTENA("service", "create", "--instances", "3", "--health-check-protocol", "tcp",
                         "--health-check-port", "6379", "web", "redis:3"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("service", "create", "--instances", "2", "plain", "redis:3"), 0, "%s",
                 err);

    /* Before any instance exists: zero counts, and null without a health check. */
    v = as_admin("GET", "/v1/services/lab/null/web", NULL, 200);
    hs = json_object_get(v, "health_status");
    cr_assert(json_is_object(hs), "health_status of a health-checked service is an object");
    cr_assert_eq(json_integer_value(json_object_get(hs, "total")), 0);
    json_decref(v);
    v = as_admin("GET", "/v1/services/lab/null/plain", NULL, 200);
    cr_assert(json_is_null(json_object_get(v, "health_status")),
              "health_status is null without a health check");
    json_decref(v);

    instance("web", 1, "node-1", "running", "healthy");
    instance("web", 2, "node-2", "running", "unhealthy");
    instance("web", 3, "node-3", "running", NULL);
    instance("plain", 1, "node-1", "running", NULL);
    instance("plain", 2, "node-2", "stopped", NULL);

    v = as_admin("GET", "/v1/services/lab/null/web", NULL, 200);
    hs = json_object_get(v, "health_status");
    ic = json_object_get(v, "instance_counts");
    cr_assert_eq(json_integer_value(json_object_get(hs, "healthy")), 1, "%s", json_dumps(v, 0));
    cr_assert_eq(json_integer_value(json_object_get(hs, "unhealthy")), 1);
    cr_assert_eq(json_integer_value(json_object_get(hs, "total")), 3);
    cr_assert_eq(json_integer_value(json_object_get(ic, "total")), 3);
    cr_assert_eq(json_integer_value(json_object_get(ic, "running")), 3);
    json_decref(v);

    /* The list answers the same from the same two reads. */
    v = as_admin("GET", "/v1/grids/lab/services", NULL, 200);
    list = json_object_get(v, "services");
    json_array_foreach(list, i, x)
    {
        const char *name = json_string_value(json_object_get(x, "name"));
        if (name && strcmp(name, "plain") == 0) {
            ic = json_object_get(x, "instance_counts");
            cr_assert_eq(json_integer_value(json_object_get(ic, "total")), 2);
            cr_assert_eq(json_integer_value(json_object_get(ic, "running")), 1);
            cr_assert(json_is_null(json_object_get(x, "health_status")));
            seen++;
        } else if (name && strcmp(name, "web") == 0) {
            cr_assert_eq(
                json_integer_value(json_object_get(json_object_get(x, "health_status"), "healthy")),
                1);
            seen++;
        }
    }
    cr_assert_eq(seen, 2);
    json_decref(v);

    cr_assert_eq(KONTENA("service", "show", "web"), 0, "%s", err);
    cr_assert(strstr(out, "  health status:\n    healthy: 1\n    total: 3\n"), "%s", out);
    /* Per instance, from GET .../instances: its node and its container's health. */
    cr_assert(strstr(out, "    web/2:\n      scheduled_to: node-2\n"), "%s", out);
    cr_assert(strstr(out, "        web-2 (on node-2):\n"), "%s", out);
    cr_assert(strstr(out, "          health: unhealthy\n"), "%s", out);
    cr_assert(strstr(out, "          health: healthy\n"), "%s", out);
    v = as_admin("GET", "/v1/services/lab/null/web/instances", NULL, 200);
    list = json_object_get(v, "instances");
    cr_assert_eq(json_array_size(list), 3, "%s", json_dumps(v, 0));
    for (i = 0; i < 3; i++) {
        x = json_array_get(list, i);
        cr_assert_eq(json_integer_value(json_object_get(x, "instance_number")), (long long)i + 1,
                     "instances in number order");
        cr_assert_str_eq(json_string_value(json_object_get(x, "state")), "running");
    }
    x = json_array_get(json_object_get(json_array_get(list, 2), "containers"), 0);
    cr_assert(json_is_null(json_object_get(x, "health_status")), "not checked yet: null");
    json_decref(v);
    cr_assert_eq(KONTENA("service", "show", "plain"), 0, "%s", err);
    cr_assert_null(strstr(out, "health status:"), "%s", out);

    /* Not deployed yet: the icon says so whatever the health. Running: some healthy. */
    cr_assert_eq(KONTENA("service", "ls"), 0, "%s", err);
    cr_assert(strstr(out, "⊝ web "), "%s", out);
    json_decref(as_admin("POST", "/v1/services/lab/null/web/deploy", "{}", 200));
    cr_assert_eq(KONTENA("service", "ls"), 0, "%s", err);
    cr_assert(strstr(out, "⊙ web "), "%s", out);

    /* All healthy: full icon. */
    instance("web", 2, "node-2", "running", "healthy");
    instance("web", 3, "node-3", "running", "healthy");
    cr_assert_eq(KONTENA("service", "ls"), 0, "%s", err);
    cr_assert(strstr(out, "⊛ web "), "%s", out);
    cr_assert_eq(KONTENA("service", "show", "web"), 0, "%s", err);
    cr_assert(strstr(out, "  health status:\n    healthy: 3\n    total: 3\n"), "%s", out);
}
