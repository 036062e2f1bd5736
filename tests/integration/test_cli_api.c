/* The `kontena` CLI and its HTTP client (cli/api.c) against a real kontena-apiserver and a
 * real etcd, one of each per test. What the CLI sends is checked through what the master
 * did with it: the objects it stored, the tokens it accepts or refuses, and its audit
 * trail, which records each change's method, path, user, source IP and User-Agent.
 * test_cli_flow.c covers the broad command flows; this file pins the exact output and the
 * request details. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/config.h"
#include "common/crypto.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#define USER_AGENT "kontena-cli/" KONTENA_VERSION

static char *out, *err;   /* output of the last CLI run, freed by the next */
static char *admin_token; /* from a direct login, for looking behind the CLI's back */

static void setup(void)
{
    static const char *const vars[] = {"KONTENA_URL",       "KONTENA_MASTER",   "KONTENA_TOKEN",
                                       "KONTENA_GRID",      "KONTENA_PASSWORD", "DEBUG",
                                       "SSL_IGNORE_ERRORS", "KONTENA_CONFIG"};

    /* The CLI inherits our environment: a developer's own settings must not leak in. */
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
    api_fixture_setup();
    /* cli/api.c called in-process finds the master's certificate under $HOME, as the CLI
     * binary run by api_cli() does. */
    setenv("HOME", api.dir, 1);
}

static void teardown(void)
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    FREE_AND_NULL(admin_token);
    api_fixture_teardown();
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

#define KONTENA(...) run(NULL, (const char *[]){__VA_ARGS__, NULL})

/* Run the CLI with extra environment entries (may be NULL); returns its exit status. */
static int run(const char *env[], const char *args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, env, NULL, &out, &err, args);
}

static char *pem_path(void)
{
    return xasprintf("%s/master.pem", api.dir);
}

static void login_admin(void)
{
    char *pem = pem_path();
    int rc = KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p", api.admin_password,
                     "--name", "test-master", api.url);

    cr_assert_eq(rc, 0, "login failed: %s %s", out, err);
    free(pem);
}

/* A request to the master; asserts the transport worked. */
static void req(const char *method, const char *path, const char *token, const char *body,
                struct http_reply *r)
{
    char *u = xasprintf("%s%s", api.url, path);

    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, r), 0, "%s %s failed", method,
                 path);
    free(u);
}

/* req() that must answer `want`. */
static void req_ok(const char *method, const char *path, const char *token, const char *body,
                   long want, struct http_reply *r)
{
    req(method, path, token, body, r);
    cr_assert_eq(r->status, want, "%s %s: %ld %s", method, path, r->status, r->body);
}

/* An admin token of our own, from POST /oauth2/token. */
static const char *admin(void)
{
    struct http_reply r;
    char *body;

    if (admin_token)
        return admin_token;
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     api.admin_password);
    req_ok("POST", "/oauth2/token", NULL, body, 201, &r);
    admin_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    http_reply_release(&r);
    free(body);
    return admin_token;
}

/* Set up state through the API as admin (not what the test is about). */
static void as_admin(const char *method, const char *path, const char *body, long want)
{
    struct http_reply r;

    req_ok(method, path, admin(), body, want, &r);
    http_reply_release(&r);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The newest audit entry for method and path, or NULL; caller decrefs. */
static json_t *audit_entry(const char *method, const char *path)
{
    struct http_reply r;
    json_t *logs, *found = NULL;

    req_ok("GET", "/v1/audit_logs?limit=3000", admin(), NULL, 200, &r);
    logs = json_object_get(r.json, "logs");
    for (size_t i = json_array_size(logs); i-- > 0 && !found;) {
        json_t *e = json_array_get(logs, i);
        if (!strcmp(jstr(e, "method"), method) && !strcmp(jstr(e, "path"), path))
            found = json_incref(e);
    }
    http_reply_release(&r);
    return found;
}

/* Assert that an audit entry came from the CLI on this host. */
static void assert_from_cli(const json_t *entry, const char *email, long status)
{
    cr_assert_not_null(entry, "no audit entry");
    cr_assert_str_eq(jstr(entry, "user_agent"), USER_AGENT);
    cr_assert_str_eq(jstr(entry, "source_ip"), "127.0.0.1");
    cr_assert_eq(json_integer_value(json_object_get(entry, "status_code")), status);
    if (email)
        cr_assert_str_eq(jstr(json_object_get(entry, "user_identity"), "email"), email);
}

static char *config_path(void)
{
    return xasprintf("%s/kontena_client.json", api.dir);
}

static int config_exists(void)
{
    char *path = config_path();
    int rc = access(path, F_OK);
    int e = errno;

    free(path);
    cr_assert(rc == 0 || e == ENOENT, "%s", strerror(e));
    return rc == 0;
}

/* The config file's current server entry; caller decrefs. */
static json_t *config_server(void)
{
    char *path = config_path();
    json_t *cfg = json_load_file(path, 0, NULL), *servers, *s, *found = NULL;
    const char *cur;
    size_t i;

    cr_assert_not_null(cfg, "cannot read %s", path);
    cur = jstr(cfg, "current_server");
    servers = json_object_get(cfg, "servers");
    json_array_foreach(servers, i, s)
    {
        if (cur && !found && !strcmp(jstr(s, "name"), cur))
            found = json_incref(s);
    }
    cr_assert_not_null(found, "no current server in %s", path);
    json_decref(cfg);
    free(path);
    return found;
}

/* Parse the last CLI run's stdout as JSON; caller decrefs. */
static json_t *out_json(void)
{
    json_error_t je;
    json_t *v = json_loads(out, JSON_DECODE_ANY, &je);

    cr_assert_not_null(v, "stdout is not JSON (%s): %s", je.text, out);
    return v;
}

/* What the master says about a token (by id or value). */
static json_t *token_info(const char *id_or_token)
{
    struct http_reply r;
    char *path = xasprintf("/oauth2/tokens/%s", id_or_token);
    json_t *v;

    req_ok("GET", path, admin(), NULL, 200, &r);
    v = json_incref(r.json);
    http_reply_release(&r);
    free(path);
    return v;
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static int is_hex(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return 0;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return 0;
    return 1;
}

/* etcd v3 JSON gateway: keys and values are base64. */
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

/* Store a record as an agent or the stack code would (the API has no route for them). */
static void etcd_seed(const char *key, const char *value)
{
    char *k = crypto_b64_encode(key, strlen(key)), *v = crypto_b64_encode(value, strlen(value));

    json_decref(etcd_post("/v3/kv/put", json_pack("{s:s, s:s}", "key", k, "value", v)));
    free(k);
    free(v);
}

static long long etcd_count(const char *prefix)
{
    char *end = xstrdup(prefix), *k, *e;
    json_t *reply;
    long long n;

    end[strlen(end) - 1]++;
    k = crypto_b64_encode(prefix, strlen(prefix));
    e = crypto_b64_encode(end, strlen(end));
    reply = etcd_post("/v3/kv/range",
                      json_pack("{s:s, s:s, s:b}", "key", k, "range_end", e, "count_only", 1));
    n = jstr(reply, "count") ? atoll(jstr(reply, "count")) : 0; /* int64 come as strings */
    json_decref(reply);
    free(e);
    free(k);
    free(end);
    return n;
}

/* ---- cli/api.c in-process ---- */

/* Trust the master's certificate the way `master login --ca-cert` does. */
static void trust_master(void)
{
    struct err e = ERR_INIT;
    char *pem = pem_path();

    cr_assert_eq(config_install_cert(api.url, pem, &e), ST_OK, "%s", e.msg);
    free(pem);
}

API_TEST(api, request_shape_seen_by_the_master)
{
    char *base = xasprintf("%s/", api.url); /* a trailing slash is dropped */
    json_t *reply = NULL, *body = json_pack("{s:s, s:i}", "name", "lab", "initial_size", 3);
    json_t *entry;
    struct api *a;

    trust_master();
    a = api_create(base, admin(), 0);
    cr_assert_eq(api_call(a, "POST", "/v1/grids", body, &reply), ST_OK, "%s", api_error(a));
    cr_assert_eq(api_status(a), 201);
    cr_assert_str_eq(jstr(reply, "name"), "lab");
    cr_assert_eq(jint(reply, "initial_size"), 3, "the JSON body arrived");
    cr_assert_str_eq(api_server_version(a), KONTENA_VERSION);
    /* Bearer token, User-Agent, method and path, as the master recorded them. */
    entry = audit_entry("POST", "/v1/grids");
    assert_from_cli(entry, "admin", 201);
    cr_assert_str_eq(jstr(entry, "resource_name"), "lab");
    json_decref(entry);
    json_decref(reply);
    json_decref(body);
    api_destroy(a);
    free(base);
}

API_TEST(api, errors_map_to_status_and_message)
{
    struct api *anon, *a;
    json_t *o = NULL, *body = json_pack("{s:s}", "name", "lab");

    trust_master();
    anon = api_create(api.url, NULL, 0);
    a = api_create(api.url, admin(), 0);

    cr_assert_eq(api_get(anon, "/v1/user", &o), ST_DENIED);
    cr_assert_null(o);
    cr_assert_eq(api_status(anon), 403);
    cr_assert_str_eq(api_error(anon), "403 : Invalid token (/v1/user)");

    cr_assert_eq(api_get(a, "/v1/grids/nope?y=1", &o), ST_NOTFOUND);
    cr_assert_null(o);
    cr_assert_eq(api_status(a), 404);
    cr_assert_str_eq(api_error(a), "404 : Grid nope not found (/v1/grids/nope)",
                     "the query string is left out");

    cr_assert_eq(api_call(a, "POST", "/v1/grids", body, &o), ST_OK, "%s", api_error(a));
    json_decref(o);
    cr_assert_eq(api_call(a, "POST", "/v1/grids", body, &o), ST_CONFLICT);
    cr_assert_str_eq(api_error(a), "409 : Conflict:\n\tname: Grid with name already exists: lab");

    json_object_set_new(body, "name", json_string("x"));
    json_object_set_new(body, "subnet", json_string("bad"));
    cr_assert_eq(api_call(a, "POST", "/v1/grids", body, &o), ST_INVALID);
    cr_assert_eq(api_status(a), 422);
    cr_assert_str_eq(api_error(a),
                     "422 : Unprocessable Entity:\n"
                     "\tname: Name must be 3 to 64 word characters or dashes, not starting with a "
                     "dash\n"
                     "\tsubnet: Subnet isn't in the right format");

    cr_assert_eq(api_call(a, "PATCH", "/v1/grids", NULL, &o), ST_INVALID, "other 4xx");
    cr_assert_str_eq(api_error(a), "405 : Method PATCH not allowed on /v1/grids (/v1/grids)");

    cr_assert_eq(api_get(a, "/v1/grids", &o), ST_OK, "a success clears the error");
    cr_assert_str_eq(api_error(a), "");
    json_decref(o);
    json_decref(body);
    api_destroy(a);
    api_destroy(anon);

    /* A 2xx that is not JSON: a URL that is not a master's, here etcd's metrics. */
    a = api_create(etcd.endpoint, NULL, 0);
    cr_assert_eq(api_get(a, "/metrics", &o), ST_INVALID);
    cr_assert_null(o);
    cr_assert_str_eq(api_error(a), "200 : unparsable reply (/metrics)");
    api_destroy(a);
}

/* A plain Test: it stops the server itself, and checks it exited cleanly. */
Test(api, connection_refused)
{
    struct api *a;
    json_t *o = NULL;
    char *want = xasprintf("cannot connect to %s: ", api.url);

    login_admin();
    cr_assert_eq(api_proc_stop(&api), 0);
    trust_master();
    a = api_create(api.url, NULL, 0);
    cr_assert_eq(api_get(a, "/", &o), ST_RETRY);
    cr_assert_null(o);
    cr_assert(!strncmp(api_error(a), want, strlen(want)), "%s", api_error(a));
    cr_assert_eq(api_status(a), 0);
    api_destroy(a);

    cr_assert_eq(KONTENA("whoami"), 1);
    cr_assert(!strncmp(err, " [error] ", 9) && !strncmp(err + 9, want, strlen(want)), "%s", err);
    cr_assert_str_eq(out, "");
    free(want);
}

/* A server-side failure for real: with etcd gone the master answers 503. */
API_TEST(api, store_down_is_a_503)
{
    struct api *a;
    json_t *o = NULL;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    trust_master();
    a = api_create(api.url, admin(), 0);
    cr_assert_eq(etcd_proc_stop(&etcd), 0);

    cr_assert_eq(api_get(a, "/v1/grids", &o), ST_IO);
    cr_assert_eq(api_status(a), 503);
    cr_assert_str_eq(api_error(a),
                     "503 : Service unavailable: the store is not reachable (/v1/grids)");
    cr_assert_eq(KONTENA("grid", "ls"), 1);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(
        err, " [error] 503 : Service unavailable: the store is not reachable (/v1/grids)\n");

    cr_assert_eq(etcd_proc_restart(&etcd), 0);
    cr_assert_eq(KONTENA("grid", "ls", "-q"), 0, "the master recovers: %s", err);
    cr_assert_str_eq(out, "lab\n");
    api_destroy(a);
}

/* ---- commands ---- */

/* Grids "big" with two members and "small" with one (admin is in both). */
static void two_grids(void)
{
    as_admin("POST", "/v1/grids", "{\"name\":\"big\",\"initial_size\":3}", 201);
    as_admin("POST", "/v1/grids", "{\"name\":\"small\",\"initial_size\":3}", 201);
    as_admin("POST", "/v1/users", "{\"email\":\"bob@example.com\",\"password\":\"bob-password\"}",
             201);
    as_admin("POST", "/v1/grids/big/users", "{\"email\":\"bob@example.com\"}", 201);
}

API_TEST(cli, grid_ls_table_quiet_and_json)
{
    json_t *v, *grids;

    two_grids();
    login_admin();
    cr_assert_eq(KONTENA("grid", "use", "big"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME   NODES  SERVICES  USERS\n"
                          "small  0      0         1\n"
                          "big *  0      0         2\n");
    cr_assert_str_eq(err, "");
    cr_assert_eq(KONTENA("grid", "list", "-q"), 0);
    cr_assert_str_eq(out, "small\nbig\n");
    cr_assert_eq(KONTENA("grid", "ls", "-o", "json"), 0);
    v = out_json();
    grids = json_object_get(v, "grids");
    cr_assert_eq(json_array_size(grids), 2, "%s", out);
    cr_assert_str_eq(jstr(json_array_get(grids, 0), "name"), "big", "the master's order");
    cr_assert_eq(jint(json_array_get(grids, 0), "user_count"), 2);
    json_decref(v);
}

API_TEST(cli, grid_create_sends_settings_and_switches_scope)
{
    json_t *v, *statsd, *srv;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "demo", "--initial-size=3", "--default-affinity",
                         "label==a", "--statsd-server", "stats:9125"),
                 0, "%s", err);
    cr_assert_str_eq(out, "* Creating demo grid.. done\n* Switching scope to demo grid.. done\n");
    cr_assert_str_eq(err, "");
    srv = config_server();
    cr_assert_str_eq(jstr(srv, "grid"), "demo");
    json_decref(srv);

    cr_assert_eq(KONTENA("grid", "show", "demo", "-o", "json"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(jint(v, "initial_size"), 3);
    cr_assert_eq(json_array_size(json_object_get(v, "default_affinity")), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "default_affinity"), 0)),
                     "label==a");
    statsd = json_object_get(json_object_get(v, "stats"), "statsd");
    cr_assert_str_eq(jstr(statsd, "server"), "stats", "%s", out);
    cr_assert_eq(jint(statsd, "port"), 9125);
    json_decref(v);

    cr_assert_eq(KONTENA("grid", "create", "dev"), 0, "%s", err);
    cr_assert_str_eq(err, " [warn] Option --initial-size=1 is only recommended for test/dev "
                          "usage\n");
    cr_assert_str_eq(out, "* Creating dev grid.. done\n* Switching scope to dev grid.. done\n");
    cr_assert_eq(KONTENA("grid", "show", "dev", "-o", "json"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(jint(v, "initial_size"), 1);
    json_decref(v);
}

/* A grid with nodes and stacks is refused with a 422 whose error is an object, rendered as
 * YAML; --with-resources (?force=true) removes it and everything under it. */
API_TEST(cli, grid_rm_with_resources_validation_error_and_unknown_grid)
{
    json_t *entry, *srv;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    etcd_seed("/kontena/nodes/lab/node-1", "{\"id\":\"node-1\"}");
    etcd_seed("/kontena/nodes/lab/node-2", "{\"id\":\"node-2\"}");
    etcd_seed("/kontena/stacks/lab/web", "{\"name\":\"web\"}");

    cr_assert_eq(KONTENA("grid", "rm", "--force", "lab"), 1);
    cr_assert_str_eq(out, "* Removing lab grid.. fail\n");
    cr_assert_str_eq(err, " [error] 422 : Unprocessable Entity:\n"
                          "\tgrid: Grid lab still has 2 node(s) and 1 stack(s): remove them "
                          "first, or force the removal\n");
    entry = audit_entry("DELETE", "/v1/grids/lab");
    assert_from_cli(entry, "admin", 422);
    json_decref(entry);

    cr_assert_eq(KONTENA("grid", "rm", "--force", "--with-resources", "lab"), 0, "%s", err);
    cr_assert_str_eq(out, "* Removing lab grid.. done\n");
    cr_assert_eq(etcd_count("/kontena/nodes/lab/"), 0);
    cr_assert_eq(etcd_count("/kontena/stacks/lab/"), 0);
    srv = config_server();
    cr_assert(json_is_null(json_object_get(srv, "grid")), "the removed current grid is cleared");
    json_decref(srv);

    cr_assert_eq(KONTENA("grid", "rm", "--force", "nope"), 1);
    cr_assert_str_eq(err, " [error] Could not resolve grid by name [nope]. For a list of "
                          "existing grids please run: kontena grid list\n");
}

API_TEST(cli, password_login_stores_token_and_selects_grid)
{
    char *pem = pem_path(), *want;
    json_t *srv, *info, *entry;
    struct http_reply r;
    const char *token;
    long left;

    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "--password",
                         "wrong-password", api.url),
                 1);
    cr_assert_str_eq(err, " [error] 403 : Invalid username or password (/oauth2/token)\n");
    cr_assert(!config_exists(), "no config written on failure");

    two_grids();
    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "--password",
                         api.admin_password, api.url),
                 0, "%s", err);
    want = xasprintf("Authenticated to Kontena Master kontena-master at %s as admin\n"
                     "Using grid: small\n",
                     api.url);
    cr_assert_str_eq(out, want, "the master's name; the grid with the fewest users");
    free(want);

    srv = config_server();
    cr_assert_str_eq(jstr(srv, "name"), "kontena-master");
    cr_assert_str_eq(jstr(srv, "username"), "admin");
    cr_assert_str_eq(jstr(srv, "grid"), "small");
    cr_assert_eq(jint(srv, "token_expires_at"), 0, "-e defaults to never");
    token = jstr(srv, "token");
    cr_assert(is_hex(token, 64), "%s", token);
    req_ok("GET", "/v1/user", token, NULL, 200, &r);
    cr_assert_str_eq(jstr(r.json, "email"), "admin");
    http_reply_release(&r);
    info = token_info(token);
    cr_assert_str_eq(jstr(srv, "token_id"), jstr(info, "id"));
    cr_assert(json_is_null(json_object_get(info, "expires_in")), "expires_in 0 = never");
    cr_assert(!strncmp(jstr(info, "description"), "kontena-cli login", 17), "%s",
              jstr(info, "description"));
    json_decref(info);
    entry = audit_entry("POST", "/oauth2/token");
    assert_from_cli(entry, "admin", 201);
    json_decref(entry);
    json_decref(srv);

    /* -e: a token that expires, at the master and in the config. */
    cr_assert_eq(KONTENA("master", "login", "-e", "600", "-u", "admin", "-p", api.admin_password),
                 0, "%s", err);
    srv = config_server();
    info = token_info(jstr(srv, "token"));
    left = (long)jint(info, "expires_in");
    cr_assert(left > 590 && left <= 600, "expires_in %ld", left);
    cr_assert_str_eq(jstr(srv, "grid"), "small", "the grid is kept");
    cr_assert_eq(KONTENA("master", "token", "current", "--expires-in"), 0, "%s", err);
    left = atol(out);
    cr_assert(left > 590 && left <= 600, "%s", out);
    json_decref(info);
    json_decref(srv);
    free(pem);
}

API_TEST(cli, token_login_with_kontena_url_does_not_write_config)
{
    char *pem = pem_path(), *env_url = xasprintf("KONTENA_URL=%s", api.url), *want;
    const char *env[] = {env_url, NULL};
    struct http_reply r;
    char *token;

    as_admin("POST", "/v1/users", "{\"email\":\"ci@example.com\",\"password\":\"ci-password\"}",
             201);
    req_ok("POST", "/oauth2/authorize", admin(),
           "{\"response_type\":\"token\",\"user\":\"ci@example.com\",\"expires_in\":0}", 201, &r);
    token = xstrdup(jstr(r.json, "access_token"));
    http_reply_release(&r);

    cr_assert_eq(
        run(env, (const char *[]){"master", "login", "--ca-cert", pem, "--token", token, NULL}), 0,
        "%s", err);
    want = xasprintf("Authenticated to Kontena Master kontena-master at %s as ci@example.com\n",
                     api.url);
    cr_assert(!strncmp(out, want, strlen(want)), "%s", out);
    cr_assert(strstr(out, "doesn't have any grids yet"), "%s", out);
    cr_assert(!config_exists(), "KONTENA_URL turns saving off");
    free(want);
    free(token);
    free(env_url);
    free(pem);
}

API_TEST(cli, logout_revokes_the_token_at_the_master)
{
    json_t *srv, *entry;
    struct http_reply r;
    char *token, *id, *path;

    login_admin();
    srv = config_server();
    token = xstrdup(jstr(srv, "token"));
    id = xstrdup(jstr(srv, "token_id"));
    json_decref(srv);

    cr_assert_eq(KONTENA("master", "logout"), 0, "%s", err);
    cr_assert_str_eq(out, "Logged out of test-master\n");
    srv = config_server();
    cr_assert(json_is_null(json_object_get(srv, "token")));
    cr_assert_null(jstr(srv, "token_id"));
    json_decref(srv);

    req("GET", "/v1/user", token, NULL, &r);
    cr_assert_eq(r.status, 403, "the token is revoked, not just forgotten");
    http_reply_release(&r);
    /* Revoked by id: the token itself never appears in a URL. */
    path = xasprintf("/oauth2/tokens/%s", id);
    entry = audit_entry("DELETE", path);
    assert_from_cli(entry, "admin", 200);
    json_decref(entry);
    req_ok("GET", "/v1/audit_logs?limit=3000", admin(), NULL, 200, &r);
    cr_assert_null(strstr(r.body, token));
    http_reply_release(&r);
    free(path);
    free(id);
    free(token);
}

API_TEST(cli, token_create_outputs)
{
    struct http_reply r;
    json_t *info, *v;
    char *id, *token, *want, *user_id;
    long left;

    login_admin();
    req_ok("GET", "/v1/user", admin(), NULL, 200, &r);
    user_id = xstrdup(jstr(r.json, "id"));
    http_reply_release(&r);

    cr_assert_eq(KONTENA("master", "token", "create", "--id", "-d", "ci"), 0, "%s", err);
    id = xstrndup(out, strcspn(out, "\n"));
    cr_assert(is_hex(id, 16) && !strcmp(out + 16, "\n"), "%s", out);
    info = token_info(id);
    cr_assert_str_eq(jstr(info, "description"), "ci");
    cr_assert_str_eq(jstr(info, "scopes"), "user");
    left = (long)jint(info, "expires_in");
    cr_assert(left > 7190 && left <= 7200, "-e defaults to 7200: %ld", left);
    json_decref(info);
    free(id);

    cr_assert_eq(KONTENA("master", "token", "create", "--token"), 0, "%s", err);
    token = xstrndup(out, strcspn(out, "\n"));
    cr_assert(is_hex(token, 64), "%s", out);
    req_ok("GET", "/v1/user", token, NULL, 200, &r);
    http_reply_release(&r);
    free(token);

    cr_assert_eq(KONTENA("master", "token", "create", "-e", "0", "-d", "full"), 0, "%s", err);
    id = xstrndup(out, strcspn(out, ":"));
    token = strstr(out, "  access_token: ");
    cr_assert_not_null(token, "%s", out);
    token = xstrndup(token + 16, 64);
    want = xasprintf("%s:\n"
                     "  token_type: bearer\n"
                     "  scopes: user\n"
                     "  user_id: %s\n"
                     "  user_email: admin\n"
                     "  user_name: admin\n"
                     "  server_name: kontena-master\n"
                     "  description: full\n"
                     "  access_token_last_four: %s\n"
                     "  refresh_token_last_four: -\n"
                     "  access_token: %s\n"
                     "  refresh_token: -\n"
                     "  expires_in: -\n",
                     id, user_id, token + 60, token);
    cr_assert_str_eq(out, want);
    info = token_info(token);
    cr_assert_str_eq(jstr(info, "id"), id);
    json_decref(info);
    free(want);
    free(token);
    free(id);

    cr_assert_eq(KONTENA("master", "token", "create", "-o", "json"), 0, "%s", err);
    v = out_json();
    cr_assert(is_hex(jstr(v, "access_token"), 64), "%s", out);
    cr_assert(is_hex(jstr(v, "id"), 16), "%s", out);
    json_decref(v);
    free(user_id);
}

/* One `token ls` row: the widths are the headers' except for the id (16 digits). */
static char *token_row(const char *token, const char *id)
{
    struct http_reply r;
    char *path = xasprintf("/oauth2/tokens/%s", id), *exp, *row;

    req_ok("GET", path, token, NULL, 200, &r);
    exp = json_is_null(json_object_get(r.json, "expires_in")) ? xstrdup("never")
                                                              : xstrdup("in 1 hour");
    row = xasprintf("%s  bearer      %s         %-10s  user    %s", id,
                    jstr(r.json, "access_token_last_four"), exp, jstr(r.json, "description"));
    while (row[strlen(row) - 1] == ' ')
        row[strlen(row) - 1] = '\0';
    http_reply_release(&r);
    free(exp);
    free(path);
    return row;
}

API_TEST(cli, token_ls_and_current)
{
    json_t *srv;
    char *id2, *want, *row1, *row2;
    const char *id1, *token;

    login_admin();
    cr_assert_eq(KONTENA("master", "token", "create", "-e", "7000", "--id"), 0, "%s", err);
    id2 = xstrndup(out, strcspn(out, "\n"));
    srv = config_server();
    id1 = jstr(srv, "token_id");
    token = jstr(srv, "token");

    cr_assert_eq(KONTENA("master", "token", "ls"), 0, "%s", err);
    row1 = token_row(token, id1);
    row2 = token_row(token, id2);
    cr_assert(strstr(row1, "  never       user    kontena-cli login"), "%s", row1);
    cr_assert(strstr(row2, "  in 1 hour   user"), "%s", row2);
    /* The master lists tokens in id order. */
    want = xasprintf("ID                TOKEN_TYPE  TOKEN_LAST4  EXPIRES_IN  SCOPES  DESCRIPTION\n"
                     "%s\n%s\n",
                     strcmp(id1, id2) < 0 ? row1 : row2, strcmp(id1, id2) < 0 ? row2 : row1);
    cr_assert_str_eq(out, want);
    free(want);

    cr_assert_eq(KONTENA("master", "token", "current", "--token"), 0, "%s", err);
    want = xasprintf("%s\n", token);
    cr_assert_str_eq(out, want);
    free(want);
    cr_assert_eq(KONTENA("master", "token", "current", "--id"), 0, "%s", err);
    want = xasprintf("%s\n", id1);
    cr_assert_str_eq(out, want);
    free(want);
    free(row1);
    free(row2);
    json_decref(srv);
    free(id2);
}

API_TEST(cli, users_and_roles)
{
    login_admin();
    cr_assert_eq(KONTENA("master", "users", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "EMAIL  ROLES\n"
                          "admin  master_admin\n");
    cr_assert_eq(KONTENA("master", "user", "add", "bob@example.com", "--password", "secret-pw",
                         "-r", "grid_admin,user_admin"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("master", "user", "add", "carol@example.com", "--password", "secret-pw"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("master", "user", "role", "add", "grid_admin", "carol@example.com"), 0,
                 "%s", err);
    cr_assert_str_eq(out, "Added role grid_admin to carol@example.com\n");
    cr_assert_eq(KONTENA("master", "users", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "EMAIL              ROLES\n"
                          "admin              master_admin\n"
                          "bob@example.com    grid_admin,user_admin\n"
                          "carol@example.com  grid_admin\n");
}

API_TEST(cli, trusted_subnets)
{
    struct http_reply r;
    json_t *list;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    as_admin("PUT", "/v1/grids/lab", "{\"trusted_subnets\":[\"10.1.0.0/16\"]}", 200);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "10.1.0.0/16\n");

    cr_assert_eq(KONTENA("grid", "trusted-subnet", "add", "10.2.0.0/16"), 0, "%s", err);
    cr_assert_str_eq(out, "* Adding 10.2.0.0/16 as a trusted subnet in lab grid.. done\n");
    req_ok("GET", "/v1/grids/lab", admin(), NULL, 200, &r);
    list = json_object_get(r.json, "trusted_subnets");
    cr_assert_eq(json_array_size(list), 2, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(list, 0)), "10.1.0.0/16");
    cr_assert_str_eq(json_string_value(json_array_get(list, 1)), "10.2.0.0/16");
    http_reply_release(&r);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "ls", "-o", "json"), 0, "%s", err);
    list = out_json();
    cr_assert_eq(json_array_size(list), 2, "%s", out);
    json_decref(list);

    cr_assert_eq(KONTENA("grid", "trusted-subnet", "rm", "10.9.0.0/16", "--force"), 1);
    cr_assert_str_eq(err, " [error] Grid lab does not have trusted subnet 10.9.0.0/16\n");
}

API_TEST(cli, whoami_asks_the_master)
{
    char *want, *path;
    json_t *srv;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    cr_assert_eq(KONTENA("whoami"), 0, "%s", err);
    want = xasprintf("Master: test-master\nURL: %s\nGrid: lab\nUser: admin\n", api.url);
    cr_assert_str_eq(out, want);
    free(want);

    /* Revoked behind the CLI's back. */
    srv = config_server();
    path = xasprintf("/oauth2/tokens/%s", jstr(srv, "token_id"));
    as_admin("DELETE", path, NULL, 200);
    cr_assert_eq(KONTENA("whoami"), 1);
    cr_assert_str_eq(err, " [error] 403 : Invalid token (/v1/user)\n");
    cr_assert_str_eq(out, "");

    /* Expired: login -e 1, then wait the second out. */
    cr_assert_eq(KONTENA("master", "login", "-e", "1", "-u", "admin", "-p", api.admin_password), 0,
                 "%s", err);
    time_sleep_ms(1100);
    cr_assert_eq(KONTENA("whoami"), 1);
    cr_assert_str_eq(err, " [error] 403 : Token expired (/v1/user)\n");
    free(path);
    json_decref(srv);
}

API_TEST(cli, audit_log_table_and_limit)
{
    struct http_reply r;
    json_t *v;
    char *want;

    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "lab"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "audit-log", "-l", "5"), 0, "%s", err);
    req_ok("GET", "/v1/grids/lab/audit_log", admin(), NULL, 200, &r);
    cr_assert_eq(json_array_size(json_object_get(r.json, "logs")), 1, "%s", r.body);
    want = xasprintf("%-24s  GRID  RESOURCE_TYPE  RESOURCE_NAME  EVENT_NAME  STATUS   USER   "
                     "SOURCE_IP  USER_AGENT\n"
                     "%s  lab   Grid           lab            create      success  admin  "
                     "127.0.0.1  " USER_AGENT "\n",
                     "TIME", jstr(json_array_get(json_object_get(r.json, "logs"), 0), "time"));
    cr_assert_str_eq(out, want);
    http_reply_release(&r);
    free(want);

    for (int i = 0; i < 5; i++)
        cr_assert_eq(KONTENA("grid", "update", "--default-affinity", "label==x", "lab"), 0, "%s",
                     err);
    cr_assert_eq(KONTENA("grid", "audit-log", "-l", "5", "-o", "json"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(json_array_size(json_object_get(v, "logs")), 5, "the newest 5: %s", out);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "logs"), 0), "event_name"), "update");
    json_decref(v);
}
