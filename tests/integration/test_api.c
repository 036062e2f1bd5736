/* Integration tests of kontena-apiserver over HTTP: a real etcd and a real API server per
 * test (each test gets its own, so state never leaks between tests). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

TestSuite(api, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 60);

static char *url(const char *path)
{
    return xasprintf("%s%s", api.url, path);
}

/* Request; asserts the transport worked. */
static void req(const char *method, const char *path, const char *token, const char *body,
                struct http_reply *r)
{
    char *u = url(path);
    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, r), 0, "%s %s failed", method,
                 path);
    free(u);
}

static char *login(const char *user, const char *password)
{
    struct http_reply r;
    char *body = xasprintf("{\"grant_type\":\"password\",\"username\":\"%s\",\"password\":\"%s\"}",
                           user, password);
    char *tok;

    req("POST", "/oauth2/token", NULL, body, &r);
    free(body);
    cr_assert_eq(r.status, 201, "login of %s: %ld %s", user, r.status, r.body);
    tok = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    http_reply_release(&r);
    return tok;
}

static const char *jerr(struct http_reply *r)
{
    return json_string_value(json_object_get(r->json, "error"));
}

API_TEST(api, root_and_ping_answer_without_auth)
{
    struct http_reply r;
    req("GET", "/", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "Kontena Master");
    cr_assert(strstr(r.headers, "X-Kontena-Version:") != NULL);
    http_reply_release(&r);
    req("GET", "/v1/ping", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "message")), "pong");
    http_reply_release(&r);
}

API_TEST(api, bad_tokens_get_403_in_the_original_shape)
{
    struct http_reply r;
    req("GET", "/v1/user", NULL, NULL, &r);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(jerr(&r), "invalid_token");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "error_description")),
                     "Invalid token");
    cr_assert(strstr(r.headers, "WWW-Authenticate: Bearer realm=\"kontena_master\"") != NULL);
    http_reply_release(&r);
    req("GET", "/v1/grids", "0123456789abcdef", NULL, &r);
    cr_assert_eq(r.status, 403);
    http_reply_release(&r);
}

API_TEST(api, wrong_password_is_refused)
{
    struct http_reply r;
    req("POST", "/oauth2/token", NULL,
        "{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"nope-nope\"}", &r);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(jerr(&r), "invalid_grant");
    http_reply_release(&r);
    req("POST", "/oauth2/token", NULL,
        "{\"grant_type\":\"password\",\"username\":\"ghost\",\"password\":\"nope-nope\"}", &r);
    cr_assert_eq(r.status, 403, "unknown users get the same answer");
    http_reply_release(&r);
}

API_TEST(api, malformed_and_oversized_bodies)
{
    char *tok = login("admin", api.admin_password);
    struct http_reply r;
    char *big = xmalloc(2 << 20), *u;

    req("POST", "/v1/grids", tok, "{\"name\": \"x\",", &r);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(jerr(&r), "Invalid json");
    http_reply_release(&r);
    req("POST", "/v1/grids", tok, "[1,2,3]", &r);
    cr_assert_eq(r.status, 400, "a body must be an object");
    http_reply_release(&r);

    memset(big, 'a', (2 << 20) - 1);
    big[(2 << 20) - 1] = '\0';
    u = url("/v1/grids");
    cr_assert_eq(http_do("POST", u, tok, big, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 413);
    cr_assert(strstr(jerr(&r), "too large") != NULL);
    http_reply_release(&r);
    /* Same body sent chunked (no Content-Length): refused at the end, not mid-upload. */
    cr_assert_eq(http_do("POST", u, tok, big, (size_t)-1, "Transfer-Encoding: chunked", &r), 0);
    cr_assert_eq(r.status, 413);
    http_reply_release(&r);
    free(u);
    free(big);

    req("GET", "/v1/nothing/here", tok, NULL, &r);
    cr_assert_eq(r.status, 404);
    http_reply_release(&r);
    req("PATCH", "/v1/grids", tok, NULL, &r);
    cr_assert_eq(r.status, 405);
    http_reply_release(&r);
    req("GET", "/v1/ping", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "the server survived");
    http_reply_release(&r);
    free(tok);
}

API_TEST(api, garbage_never_crashes_the_server)
{
    /* Bounded fuzz: 300 random bodies at the mutating endpoints; nothing may answer 5xx. */
    static const char *paths[] = {"/v1/grids", "/v1/users", "/oauth2/token", "/oauth2/authorize",
                                  "/v1/grids/g1/users", "/v1/users/admin/roles"};
    static const char *pieces[] = {"{", "}", "[", "]", "\"name\"", ":", ",", "null", "1e999",
                                   "\"\\u0000\"", "-1", "\"initial_size\"", "\"trusted_subnets\"",
                                   "true", "\"10.0.0.0/8\"", "\"x\"", "{\"a\":", "\"role\""};
    char *tok = login("admin", api.admin_password);
    unsigned seed = 42;

    for (int i = 0; i < 300; i++) {
        char body[512] = "";
        size_t len = 0;
        int n = 1 + rand_r(&seed) % 12;
        struct http_reply r;
        for (int k = 0; k < n; k++) {
            const char *p = pieces[rand_r(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
            len += (size_t)snprintf(body + len, sizeof(body) - len, "%s", p);
        }
        req("POST", paths[i % 6], i % 3 ? tok : NULL, body, &r);
        cr_assert(r.status >= 200 && r.status < 500, "POST %s %s -> %ld %s", paths[i % 6], body,
                  r.status, r.body);
        http_reply_release(&r);
    }
    free(tok);
}

API_TEST(api, validation_errors_are_422_per_field)
{
    char *tok = login("admin", api.admin_password);
    struct http_reply r;
    json_t *err;

    req("POST", "/v1/grids", tok,
        "{\"name\":\"x\",\"initial_size\":9,\"subnet\":\"10.81.0.0/33\","
        "\"trusted_subnets\":[\"banana\"]}",
        &r);
    cr_assert_eq(r.status, 422);
    err = json_object_get(r.json, "error");
    cr_assert(json_is_object(err));
    cr_assert_not_null(json_object_get(err, "name"));
    cr_assert_not_null(json_object_get(err, "initial_size"));
    cr_assert_not_null(json_object_get(err, "subnet"));
    cr_assert_str_eq(json_string_value(json_object_get(err, "trusted_subnets")),
                     "Invalid trusted_subnet banana");
    http_reply_release(&r);

    req("POST", "/v1/grids", tok, "{\"name\":\"grid1\"}", &r);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "subnet")), "10.81.0.0/16");
    cr_assert_eq(json_integer_value(json_object_get(r.json, "initial_size")), 1);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "user_count")), 1);
    http_reply_release(&r);
    req("POST", "/v1/grids", tok, "{\"name\":\"grid1\"}", &r);
    cr_assert_eq(r.status, 409, "duplicate grid: %ld %s", r.status, r.body);
    cr_assert_not_null(json_object_get(json_object_get(r.json, "error"), "name"));
    http_reply_release(&r);
    req("GET", "/v1/grids/nope", tok, NULL, &r);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(jerr(&r), "Grid nope not found");
    http_reply_release(&r);
    free(tok);
}

API_TEST(api, grid_with_nodes_is_kept_unless_forced)
{
    char *tok = login("admin", api.admin_password), *cmd_out = NULL;
    struct http_reply r;
    const char *argv[] = {"etcdctl", "--endpoints", etcd.endpoint, "put", "/kontena/nodes/gtwo/node-1",
                    "{\"name\":\"node-1\"}", NULL};

    req("POST", "/v1/grids", tok, "{\"name\":\"gtwo\"}", &r);
    cr_assert_eq(r.status, 201);
    http_reply_release(&r);
    cr_assert_eq(proc_run(argv, NULL, NULL, &cmd_out, NULL), 0, "etcdctl put");
    free(cmd_out);
    req("GET", "/v1/grids/gtwo", tok, NULL, &r);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "node_count")), 1);
    http_reply_release(&r);
    req("DELETE", "/v1/grids/gtwo", tok, NULL, &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "1 node(s)") != NULL, "%s", r.body);
    http_reply_release(&r);
    req("DELETE", "/v1/grids/gtwo?force=true", tok, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    req("GET", "/v1/grids/gtwo", tok, NULL, &r);
    cr_assert_eq(r.status, 404);
    http_reply_release(&r);
    req("GET", "/v1/user", tok, NULL, &r);
    cr_assert_eq(json_array_size(json_object_get(r.json, "grids")), 0,
                 "the grid left its members' lists");
    http_reply_release(&r);
    free(tok);
}

API_TEST(api, roles_gate_what_users_may_do)
{
    char *admin = login("admin", api.admin_password), *bob;
    struct http_reply r;

    req("POST", "/v1/users", admin, "{\"email\":\"bob@example.com\",\"password\":\"short\"}", &r);
    cr_assert_eq(r.status, 422);
    cr_assert_not_null(json_object_get(json_object_get(r.json, "error"), "password"));
    http_reply_release(&r);
    req("POST", "/v1/users", admin,
        "{\"email\":\"bob@example.com\",\"password\":\"bob-password\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_null(json_object_get(r.json, "password_hash"), "hashes never leave the server");
    http_reply_release(&r);
    bob = login("bob@example.com", "bob-password");
    req("POST", "/v1/grids", bob, "{\"name\":\"bobs\"}", &r);
    cr_assert_eq(r.status, 403);
    http_reply_release(&r);
    req("POST", "/v1/grids", admin, "{\"name\":\"shared\"}", &r);
    http_reply_release(&r);
    req("GET", "/v1/grids/shared", bob, NULL, &r);
    cr_assert_eq(r.status, 404, "not a member: the grid is invisible");
    http_reply_release(&r);
    req("POST", "/v1/grids/shared/users", admin, "{\"email\":\"bob@example.com\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "users")), 2);
    http_reply_release(&r);
    req("GET", "/v1/grids/shared", bob, NULL, &r);
    cr_assert_eq(r.status, 200);
    http_reply_release(&r);
    req("PUT", "/v1/grids/shared", bob, "{\"trusted_subnets\":[\"192.168.0.0/24\"]}", &r);
    cr_assert_eq(r.status, 403, "members are not grid admins");
    http_reply_release(&r);
    req("POST", "/v1/users/bob@example.com/roles", admin, "{\"role\":\"grid_admin\"}", &r);
    cr_assert_eq(r.status, 201);
    http_reply_release(&r);
    req("PUT", "/v1/grids/shared", bob, "{\"trusted_subnets\":[\"192.168.0.0/24\"]}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "trusted_subnets"), 0)),
                     "192.168.0.0/24");
    http_reply_release(&r);
    req("POST", "/v1/users/bob@example.com/roles", admin, "{\"role\":\"wizard\"}", &r);
    cr_assert_eq(r.status, 422);
    http_reply_release(&r);
    req("DELETE", "/v1/users/admin", admin, NULL, &r);
    cr_assert_eq(r.status, 400, "cannot remove itself");
    http_reply_release(&r);
    req("DELETE", "/v1/users/bob@example.com", admin, NULL, &r);
    cr_assert_eq(r.status, 200);
    http_reply_release(&r);
    req("GET", "/v1/user", bob, NULL, &r);
    cr_assert_eq(r.status, 403, "a removed user's tokens stop working");
    http_reply_release(&r);
    free(admin);
    free(bob);
}

API_TEST(api, audit_records_who_what_and_outcome)
{
    char *tok = login("admin", api.admin_password);
    struct http_reply r;
    json_t *logs, *e;
    size_t i;
    int saw_create = 0, saw_failed = 0, saw_login = 0;

    req("POST", "/v1/grids", tok, "{\"name\":\"audited\"}", &r);
    http_reply_release(&r);
    req("POST", "/v1/grids", tok, "{\"name\":\"audited\"}", &r); /* 409 */
    http_reply_release(&r);
    req("GET", "/v1/audit_logs?limit=50", tok, NULL, &r);
    cr_assert_eq(r.status, 200);
    logs = json_object_get(r.json, "logs");
    json_array_foreach(logs, i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "event_name"));
        const char *status = json_string_value(json_object_get(e, "event_status"));
        cr_assert_str_eq(json_string_value(json_object_get(e, "source_ip")), "127.0.0.1");
        cr_assert_not_null(json_object_get(e, "time"));
        if (strcmp(ev, "login") == 0)
            saw_login = 1;
        if (strcmp(ev, "create") == 0 && strcmp(status, "success") == 0) {
            saw_create = 1;
            cr_assert_str_eq(json_string_value(json_object_get(e, "resource_type")), "Grid");
            cr_assert_str_eq(json_string_value(json_object_get(e, "resource_name")), "audited");
            cr_assert_str_eq(json_string_value(json_object_get(e, "grid")), "audited");
            cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(e, "user_identity"), "email")),
                "admin");
        }
        if (strcmp(ev, "create") == 0 && strcmp(status, "error") == 0)
            saw_failed = 1;
    }
    cr_assert(saw_login && saw_create && saw_failed, "audit: %s", r.body);
    http_reply_release(&r);
    req("GET", "/v1/grids/audited/audit_log", tok, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_geq(json_array_size(json_object_get(r.json, "logs")), 2);
    http_reply_release(&r);
    free(tok);
}

API_TEST(api, etcd_holds_readable_json_and_no_secrets)
{
    char *tok = login("admin", api.admin_password), *dump = NULL, *line, *save = NULL;
    struct http_reply r;
    const char *argv[] = {"etcdctl", "--endpoints", etcd.endpoint, "get", "--prefix", "/kontena/", NULL};
    int keys = 0, is_value = 0;

    req("POST", "/v1/grids", tok, "{\"name\":\"readable\"}", &r);
    http_reply_release(&r);
    cr_assert_eq(proc_run(argv, NULL, NULL, &dump, NULL), 0);
    cr_assert(strstr(dump, "/kontena/grids/readable") != NULL);
    cr_assert(strstr(dump, "/kontena/users/admin") != NULL);
    cr_assert_null(strstr(dump, tok), "the plain token must not be stored");
    cr_assert_null(strstr(dump, api.admin_password), "the plain password must not be stored");
    /* etcdctl prints key, value, key, value...: every value is a JSON object. */
    for (line = strtok_r(dump, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (is_value) {
            json_t *j = json_loads(line, 0, NULL);
            cr_assert(json_is_object(j), "not JSON: %s", line);
            json_decref(j);
            keys++;
        }
        is_value = !is_value;
    }
    cr_assert_geq(keys, 4);
    free(dump);
    free(tok);
}

API_TEST(api, restart_loses_nothing)
{
    char *tok = login("admin", api.admin_password);
    struct http_reply r;
    char *fp1 = NULL, *fp2 = NULL;
    const char *argv[] = {"etcdctl", "--endpoints", etcd.endpoint, "get", "--print-value-only",
                    "/kontena/master/tls", NULL};

    req("POST", "/v1/grids", tok, "{\"name\":\"durable\",\"initial_size\":3}", &r);
    http_reply_release(&r);
    req("POST", "/v1/users", tok, "{\"email\":\"eve@example.com\",\"password\":\"eve-password\"}", &r);
    http_reply_release(&r);
    cr_assert_eq(proc_run(argv, NULL, NULL, &fp1, NULL), 0);
    cr_assert_eq(api_proc_restart(&api), 0);
    cr_assert_eq(proc_run(argv, NULL, NULL, &fp2, NULL), 0);
    cr_assert_str_eq(fp1, fp2, "the same certificate is served after a restart");
    req("GET", "/v1/grids/durable", tok, NULL, &r);
    cr_assert_eq(r.status, 200, "the old token still works: %s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "initial_size")), 3);
    http_reply_release(&r);
    req("GET", "/v1/users", tok, NULL, &r);
    cr_assert(strstr(r.body, "eve@example.com") != NULL);
    http_reply_release(&r);
    {
        char *path = xasprintf("/oauth2/tokens/%s", tok);
        req("GET", path, tok, NULL, &r);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "user"), "name")),
                         "admin", "token show names its owner: %s", r.body);
        cr_assert(json_is_null(json_object_get(r.json, "access_token")), "never shown again");
        http_reply_release(&r);
        free(path);
    }
    free(fp1);
    free(fp2);
    free(tok);
}

API_TEST(api, tls_is_the_default_and_verifiable)
{
    char *pem = xasprintf("%s/master.pem", api.dir), *out = NULL, *err = NULL;
    char *u = url("/v1/ping");
    const char *strict[] = {"curl", "-sS", "-o", "/dev/null", u, NULL};
    const char *pinned[] = {"curl", "-sS", "-o", "/dev/null", "--cacert", pem, u, NULL};

    cr_assert(strncmp(api.url, "https://", 8) == 0);
    cr_assert_neq(proc_run(strict, NULL, NULL, &out, &err), 0,
                  "an unknown self-signed certificate must not verify");
    free(out);
    free(err);
    cr_assert_eq(proc_run(pinned, NULL, NULL, &out, &err), 0, "with the CA: %s", err);
    free(out);
    free(err);
    free(pem);
    free(u);
}
