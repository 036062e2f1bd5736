/* Unit tests for cli/api.c and for commands end to end, against a fake master: a thread that
 * answers each connection with the next canned reply and records the request it got. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#define MAX_EXCHANGES 16

struct fake {
    int fd;
    int port;
    pthread_t thread;
    char *replies[MAX_EXCHANGES];
    size_t nreplies;
    char *requests[MAX_EXCHANGES]; /* head and body as received */
    size_t nrequests;
};

static struct fake fake;
static char tmpdir[64], url[64];

static void reply(int status, const char *body)
{
    cr_assert_lt(fake.nreplies, MAX_EXCHANGES);
    fake.replies[fake.nreplies++] =
        xasprintf("HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nX-Kontena-Version: " KONTENA_VERSION "\r\n"
                  "Connection: close\r\n\r\n%s",
                  status, strlen(body), body);
}

/* Read one request: the head up to the blank line, then Content-Length bytes of body. */
static char *read_request(int c)
{
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t want = 0;
    ssize_t n;

    while ((n = read(c, chunk, sizeof(chunk))) > 0) {
        char *end, *cl;

        cr_assert_eq(buf_append(&b, chunk, (size_t)n), ST_OK);
        end = strstr(b.ptr, "\r\n\r\n");
        if (!end)
            continue;
        cl = strcasestr(b.ptr, "\r\nContent-Length:");
        want = (size_t)(end - b.ptr) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        if (b.len >= want)
            break;
    }
    return buf_take(&b);
}

static void *serve(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < fake.nreplies; i++) {
        int c = accept(fake.fd, NULL, NULL);
        const char *r = fake.replies[i];
        size_t done = 0, len = strlen(r);

        if (c == -1)
            break;
        fake.requests[fake.nrequests++] = read_request(c);
        while (done < len) {
            ssize_t n = write(c, r + done, len - done);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

/* Start answering with the replies queued so far. */
static void fake_start(void)
{
    cr_assert_eq(pthread_create(&fake.thread, NULL, serve, NULL), 0);
}

/* Wait until every reply was served; returns the number of requests seen. */
static size_t fake_wait(void)
{
    pthread_join(fake.thread, NULL);
    return fake.nrequests;
}

static void setup(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char *cfg;

    memset(&fake, 0, sizeof(fake));
    fake.fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fake.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fake.fd, 8), 0);
    getsockname(fake.fd, (struct sockaddr *)&sa, &len);
    fake.port = ntohs(sa.sin_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fake.port);

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cli_api.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1);
    cfg = xasprintf("%s/config.json", tmpdir);
    setenv("KONTENA_CONFIG", cfg, 1);
    free(cfg);
    unsetenv("KONTENA_URL");
    unsetenv("KONTENA_MASTER");
    unsetenv("KONTENA_TOKEN");
    unsetenv("KONTENA_GRID");
    unsetenv("KONTENA_PASSWORD");
    unsetenv("DEBUG");
}

static void teardown(void)
{
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);

    close(fake.fd);
    for (size_t i = 0; i < fake.nreplies; i++)
        free(fake.replies[i]);
    for (size_t i = 0; i < fake.nrequests; i++)
        free(fake.requests[i]);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(flow, .init = setup, .fini = teardown, .timeout = 30);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cr_assert_eq(buf_append(&b, chunk, n), ST_OK);
    fclose(f);
    return buf_take(&b);
}

/* A config logged into the fake master as admin, with grid `grid` (may be NULL). */
static void logged_in(const char *grid)
{
    FILE *f = fopen(getenv("KONTENA_CONFIG"), "w");

    fprintf(f,
            "{\"current_server\":\"fake\",\"servers\":[{\"name\":\"fake\",\"url\":\"%s\","
            "\"grid\":%s%s%s,\"username\":\"admin\",\"token\":\"tok\",\"token_id\":\"tid\"}]}",
            url, grid ? "\"" : "", grid ? grid : "null", grid ? "\"" : "");
    fclose(f);
}

struct run {
    int rc;
    char *out, *err;
};

static struct run run_cli(const char *first, ...)
{
    char *argv[32], *outp = xasprintf("%s/stdout", tmpdir), *errp = xasprintf("%s/stderr", tmpdir);
    int argc = 0, saved_out = dup(1), saved_err = dup(2), fo, fe;
    struct run r;
    va_list ap;

    argv[argc++] = (char *)"kontena";
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    r.rc = cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(fo);
    close(fe);
    close(saved_out);
    close(saved_err);
    r.out = slurp(outp);
    r.err = slurp(errp);
    free(outp);
    free(errp);
    return r;
}

static void run_release(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* ---- api.c ---- */

Test(api, request_headers_and_reply)
{
    struct api *a;
    json_t *out = NULL, *body = json_pack("{s:s}", "name", "x");

    reply(201, "{\"name\":\"x\"}");
    fake_start();
    a = api_create(url, "tok", 0);
    cr_assert_eq(api_call(a, "POST", "/v1/grids", body, &out), ST_OK, "%s", api_error(a));
    cr_assert_str_eq(json_string_value(json_object_get(out, "name")), "x");
    cr_assert_str_eq(api_server_version(a), KONTENA_VERSION);
    cr_assert_eq(fake_wait(), 1);
    cr_assert(!strncmp(fake.requests[0], "POST /v1/grids HTTP/1.1\r\n", 25), "%s",
              fake.requests[0]);
    cr_assert(strstr(fake.requests[0], "\r\nAuthorization: Bearer tok\r\n"));
    cr_assert(strstr(fake.requests[0], "\r\nAccept: application/json\r\n"));
    cr_assert(strstr(fake.requests[0], "\r\nContent-Type: application/json\r\n"));
    cr_assert(strstr(fake.requests[0], "\r\nUser-Agent: kontena-cli/" KONTENA_VERSION "\r\n"));
    cr_assert(strstr(fake.requests[0], "\r\n\r\n{\"name\":\"x\"}"));
    json_decref(out);
    json_decref(body);
    api_destroy(a);
}

Test(api, errors_map_to_status_and_message)
{
    struct api *a;
    json_t *out = NULL;

    reply(404, "{\"error\":\"Grid x not found\"}");
    reply(403, "{\"error\":\"invalid_token\",\"error_description\":\"Invalid token\"}");
    reply(409, "{\"error\":\"Grid with name x already exists\"}");
    reply(200, "not json");
    fake_start();
    a = api_create(url, NULL, 0);
    cr_assert_eq(api_get(a, "/v1/grids/x?y=1", &out), ST_NOTFOUND);
    cr_assert_null(out);
    cr_assert_str_eq(api_error(a), "404 : Grid x not found (/v1/grids/x)");
    cr_assert_eq(api_status(a), 404);
    cr_assert_eq(api_get(a, "/v1/user", &out), ST_DENIED);
    cr_assert_str_eq(api_error(a), "403 : Invalid token (/v1/user)");
    cr_assert_eq(api_call(a, "POST", "/v1/grids", NULL, &out), ST_CONFLICT);
    cr_assert_eq(api_get(a, "/", &out), ST_INVALID);
    cr_assert_str_eq(api_error(a), "200 : unparsable reply (/)");
    fake_wait();
    cr_assert_null(strstr(fake.requests[0], "Authorization:"), "no token, no header");
    api_destroy(a);
}

Test(api, connection_refused)
{
    struct api *a;
    json_t *out = NULL;

    close(fake.fd);
    fake.fd = -1;
    a = api_create(url, NULL, 0);
    cr_assert_eq(api_get(a, "/", &out), ST_RETRY);
    cr_assert(!strncmp(api_error(a), "cannot connect to http://127.0.0.1:", 35), "%s",
              api_error(a));
    cr_assert_eq(api_status(a), 0);
    api_destroy(a);
}

/* ---- commands against the fake master ---- */

static const char grids_json[] =
    "{\"grids\":["
    "{\"name\":\"big\",\"node_count\":3,\"service_count\":5,\"user_count\":4},"
    "{\"name\":\"small\",\"node_count\":1,\"service_count\":0,\"user_count\":1}]}";

Test(flow, grid_ls_table_quiet_and_json)
{
    struct run r;

    logged_in("big");
    reply(200, grids_json);
    reply(200, grids_json);
    reply(200, grids_json);
    fake_start();
    r = run_cli("grid", "ls", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "NAME   NODES  SERVICES  USERS\n"
                            "small  1      0         1\n"
                            "big *  3      5         4\n");
    run_release(&r);
    r = run_cli("grid", "list", "-q", NULL);
    cr_assert_str_eq(r.out, "small\nbig\n");
    run_release(&r);
    r = run_cli("grid", "ls", "-o", "json", NULL);
    cr_assert(strstr(r.out, "\"grids\": ["), "%s", r.out);
    run_release(&r);
    fake_wait();
    cr_assert(strstr(fake.requests[0], "\r\nAuthorization: Bearer tok\r\n"));
}

Test(flow, grid_create_switches_scope)
{
    struct run r;
    char *cfg;

    logged_in(NULL);
    reply(201, "{\"name\":\"demo\",\"initial_size\":3}");
    fake_start();
    r = run_cli("grid", "create", "demo", "--initial-size=3", "--default-affinity", "label==a",
                "--statsd-server", "stats:9125", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "* Creating demo grid.. done\n* Switching scope to demo grid.. done\n");
    cr_assert_str_eq(r.err, "");
    run_release(&r);
    fake_wait();
    cr_assert(strstr(fake.requests[0], "\"name\":\"demo\""), "%s", fake.requests[0]);
    cr_assert(strstr(fake.requests[0], "\"initial_size\":3"));
    cr_assert(strstr(fake.requests[0], "\"default_affinity\":[\"label==a\"]"));
    cr_assert(
        strstr(fake.requests[0], "\"stats\":{\"statsd\":{\"server\":\"stats\",\"port\":9125}}"),
        "%s", fake.requests[0]);
    cfg = slurp(getenv("KONTENA_CONFIG"));
    cr_assert(strstr(cfg, "\"grid\": \"demo\""), "%s", cfg);
    free(cfg);
}

Test(flow, grid_create_size_one_warns)
{
    struct run r;

    logged_in(NULL);
    reply(201, "{\"name\":\"dev\"}");
    fake_start();
    r = run_cli("grid", "create", "dev", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.err, " [warn] Option --initial-size=1 is only recommended for test/dev "
                            "usage\n");
    run_release(&r);
    fake_wait();
}

Test(flow, validation_error_is_rendered_as_yaml)
{
    struct run r;

    logged_in("g");
    reply(200, "{\"name\":\"g\"}");
    reply(422, "{\"error\":{\"grid\":\"grid 'g' still has 2 nodes and 1 stack\"}}");
    fake_start();
    r = run_cli("grid", "rm", "--force", "g", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.out, "* Removing g grid.. fail\n");
    cr_assert_str_eq(r.err, " [error] 422 : Unprocessable Entity:\n"
                            "\tgrid: grid 'g' still has 2 nodes and 1 stack\n");
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[1], "DELETE /v1/grids/g HTTP/1.1", 27), "%s",
              fake.requests[1]);
}

Test(flow, grid_rm_with_resources_and_unknown_grid)
{
    struct run r;
    char *cfg;

    logged_in("g");
    reply(200, "{\"name\":\"g\"}");
    reply(200, "{}");
    reply(404, "{\"error\":\"Grid nope not found\"}");
    fake_start();
    r = run_cli("grid", "rm", "--force", "--with-resources", "g", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    run_release(&r);
    cfg = slurp(getenv("KONTENA_CONFIG"));
    cr_assert(strstr(cfg, "\"grid\": null"), "the removed current grid is cleared: %s", cfg);
    free(cfg);
    r = run_cli("grid", "rm", "--force", "nope", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, " [error] Could not resolve grid by name [nope]. For a list of "
                            "existing grids please run: kontena grid list\n");
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[1], "DELETE /v1/grids/g?force=true HTTP/1.1", 38));
}

Test(flow, password_login_stores_token_and_selects_grid)
{
    struct run r;
    char *cfg, *want;

    reply(201, "{\"id\":\"t-1\",\"token_type\":\"bearer\",\"access_token\":\"abc\","
               "\"refresh_token\":null,\"expires_in\":null,\"user\":{\"email\":\"admin\"},"
               "\"server\":{\"name\":\"lab\"}}");
    reply(200, grids_json);
    fake_start();
    r = run_cli("master", "login", "-u", "admin", "--password", "pw", url, NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    want =
        xasprintf("Authenticated to Kontena Master lab at %s as admin\nUsing grid: small\n", url);
    cr_assert_str_eq(r.out, want);
    free(want);
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[0], "POST /oauth2/token HTTP/1.1", 27));
    cr_assert(strstr(fake.requests[0], "\"grant_type\":\"password\""), "%s", fake.requests[0]);
    cr_assert(strstr(fake.requests[0], "\"username\":\"admin\""));
    cr_assert(strstr(fake.requests[0], "\"password\":\"pw\""));
    cr_assert(strstr(fake.requests[0], "\"expires_in\":0"));
    cr_assert_null(strstr(fake.requests[0], "Authorization:"));
    cr_assert(strstr(fake.requests[1], "Authorization: Bearer abc"));
    cfg = slurp(getenv("KONTENA_CONFIG"));
    cr_assert(strstr(cfg, "\"current_server\": \"lab\""), "%s", cfg);
    cr_assert(strstr(cfg, "\"token\": \"abc\""), "%s", cfg);
    cr_assert(strstr(cfg, "\"token_id\": \"t-1\""), "%s", cfg);
    cr_assert(strstr(cfg, "\"username\": \"admin\""), "%s", cfg);
    cr_assert(strstr(cfg, "\"grid\": \"small\""), "first grid by user count: %s", cfg);
    free(cfg);
}

Test(flow, wrong_password)
{
    struct run r;

    reply(403, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid username or "
               "password\"}");
    fake_start();
    r = run_cli("master", "login", "-u", "admin", "-p", "bad", "--name", "m", url, NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, " [error] 403 : Invalid username or password (/oauth2/token)\n");
    run_release(&r);
    fake_wait();
    cr_assert_null(slurp(getenv("KONTENA_CONFIG")), "no config written on failure");
}

Test(flow, token_login_with_kontena_url_does_not_write_config)
{
    struct run r;

    setenv("KONTENA_URL", url, 1);
    reply(200, "{\"email\":\"ci@example.com\"}");
    reply(200, "{\"id\":\"t-9\",\"expires_in\":null}");
    reply(200, "{\"grids\":[]}");
    fake_start();
    r = run_cli("master", "login", "--token", "xyz", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "as ci@example.com\n"), "%s", r.out);
    cr_assert(strstr(r.out, "doesn't have any grids yet"), "%s", r.out);
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[0], "GET /v1/user HTTP/1.1", 21));
    cr_assert(strstr(fake.requests[0], "Authorization: Bearer xyz"));
    cr_assert(!strncmp(fake.requests[1], "GET /oauth2/tokens/xyz HTTP/1.1", 31));
    cr_assert_null(slurp(getenv("KONTENA_CONFIG")));
}

Test(flow, logout_revokes_by_id_and_forgets)
{
    struct run r;
    char *cfg;

    logged_in("g");
    reply(200, "{}");
    fake_start();
    r = run_cli("master", "logout", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "Logged out of fake\n");
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[0], "DELETE /oauth2/tokens/tid HTTP/1.1", 34));
    cfg = slurp(getenv("KONTENA_CONFIG"));
    cr_assert(strstr(cfg, "\"token\": null"), "%s", cfg);
    free(cfg);
}

Test(flow, token_create_outputs)
{
    static const char token_json[] =
        "{\"id\":\"t-2\",\"token_type\":\"bearer\",\"access_token\":\"secret\","
        "\"refresh_token\":null,\"access_token_last_four\":\"cret\",\"expires_in\":7200,"
        "\"scopes\":\"user\",\"description\":\"ci\",\"user\":{\"id\":\"u1\","
        "\"email\":\"admin\",\"name\":\"admin\"},\"server\":{\"name\":\"fake\"}}";
    struct run r;

    logged_in("g");
    reply(201, token_json);
    reply(201, token_json);
    reply(201, token_json);
    fake_start();
    r = run_cli("master", "token", "create", "--id", "-d", "ci", NULL);
    cr_assert_str_eq(r.out, "t-2\n");
    run_release(&r);
    r = run_cli("master", "token", "create", "--token", NULL);
    cr_assert_str_eq(r.out, "secret\n");
    run_release(&r);
    r = run_cli("master", "token", "create", NULL);
    cr_assert_str_eq(r.out, "t-2:\n"
                            "  token_type: bearer\n"
                            "  scopes: user\n"
                            "  user_id: u1\n"
                            "  user_email: admin\n"
                            "  user_name: admin\n"
                            "  server_name: fake\n"
                            "  description: ci\n"
                            "  access_token_last_four: cret\n"
                            "  refresh_token_last_four: -\n"
                            "  access_token: secret\n"
                            "  refresh_token: -\n"
                            "  expires_in: 7200\n");
    run_release(&r);
    fake_wait();
    cr_assert(strstr(fake.requests[0], "\"response_type\":\"token\""), "%s", fake.requests[0]);
    cr_assert(strstr(fake.requests[0], "\"description\":\"ci\""));
    cr_assert(strstr(fake.requests[0], "\"expires_in\":7200"));
}

Test(flow, token_ls_and_current)
{
    struct run r;

    logged_in("g");
    reply(200, "{\"tokens\":[{\"id\":\"t-1\",\"token_type\":\"bearer\",\"access_token_last_four\":"
               "\"abcd\",\"expires_in\":null,\"scopes\":\"user\",\"description\":\"login\"},"
               "{\"id\":\"t-2\",\"token_type\":\"bearer\",\"access_token_last_four\":\"wxyz\","
               "\"expires_in\":7000,\"scopes\":\"user\",\"description\":null}]}");
    fake_start();
    r = run_cli("master", "token", "ls", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "ID   TOKEN_TYPE  TOKEN_LAST4  EXPIRES_IN  SCOPES  DESCRIPTION\n"
                            "t-1  bearer      abcd         never       user    login\n"
                            "t-2  bearer      wxyz         in 1 hour   user\n");
    run_release(&r);
    r = run_cli("master", "token", "current", "--token", NULL);
    cr_assert_str_eq(r.out, "tok\n");
    run_release(&r);
    r = run_cli("master", "token", "current", "--id", NULL);
    cr_assert_str_eq(r.out, "tid\n");
    run_release(&r);
    fake_wait();
}

Test(flow, users_and_roles)
{
    struct run r;

    logged_in("g");
    reply(200, "{\"users\":[{\"email\":\"admin\",\"roles\":[{\"name\":\"master_admin\"}]},"
               "{\"email\":\"bob@example.com\",\"roles\":[{\"name\":\"grid_admin\"},"
               "{\"name\":\"user_admin\"}]}]}");
    reply(201, "{\"email\":\"carol@example.com\"}");
    reply(201, "{\"email\":\"carol@example.com\"}");
    fake_start();
    r = run_cli("master", "users", "ls", NULL);
    cr_assert_str_eq(r.out, "EMAIL            ROLES\n"
                            "admin            master_admin\n"
                            "bob@example.com  grid_admin,user_admin\n");
    run_release(&r);
    r = run_cli("master", "user", "add", "carol@example.com", "--password", "secret-pw", "-r",
                "grid_admin,user_admin", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    run_release(&r);
    r = run_cli("master", "user", "role", "add", "grid_admin", "carol@example.com", NULL);
    cr_assert_str_eq(r.out, "Added role grid_admin to carol@example.com\n");
    run_release(&r);
    fake_wait();
    cr_assert(strstr(fake.requests[1], "\"roles\":[\"grid_admin\",\"user_admin\"]"), "%s",
              fake.requests[1]);
    cr_assert(!strncmp(fake.requests[2], "POST /v1/users/carol%40example.com/roles HTTP", 44), "%s",
              fake.requests[2]);
}

Test(flow, trusted_subnets)
{
    struct run r;

    logged_in("g");
    reply(200, "{\"name\":\"g\",\"trusted_subnets\":[\"10.1.0.0/16\"]}");
    reply(200, "{\"name\":\"g\",\"trusted_subnets\":[\"10.1.0.0/16\"]}");
    reply(200, "{\"name\":\"g\"}");
    reply(200, "{\"name\":\"g\",\"trusted_subnets\":[\"10.1.0.0/16\",\"10.2.0.0/16\"]}");
    fake_start();
    r = run_cli("grid", "trusted-subnet", "ls", NULL);
    cr_assert_str_eq(r.out, "10.1.0.0/16\n");
    run_release(&r);
    r = run_cli("grid", "trusted-subnet", "add", "10.2.0.0/16", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "* Adding 10.2.0.0/16 as a trusted subnet in g grid.. done\n");
    run_release(&r);
    r = run_cli("grid", "trusted-subnet", "rm", "10.9.0.0/16", "--force", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, " [error] Grid g does not have trusted subnet 10.9.0.0/16\n");
    run_release(&r);
    fake_wait();
    cr_assert(strstr(fake.requests[2], "{\"trusted_subnets\":[\"10.1.0.0/16\",\"10.2.0.0/16\"]}"),
              "%s", fake.requests[2]);
}

Test(flow, whoami_asks_the_master)
{
    struct run r;
    char *want;

    logged_in("g");
    reply(200, "{\"email\":\"admin\"}");
    reply(403, "{\"error\":\"invalid_token\",\"error_description\":\"Invalid token\"}");
    fake_start();
    r = run_cli("whoami", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    want = xasprintf("Master: fake\nURL: %s\nGrid: g\nUser: admin\n", url);
    cr_assert_str_eq(r.out, want);
    free(want);
    run_release(&r);
    r = run_cli("whoami", NULL);
    cr_assert_eq(r.rc, 1);
    cr_assert_str_eq(r.err, " [error] 403 : Invalid token (/v1/user)\n");
    run_release(&r);
    fake_wait();
}

Test(flow, audit_log_table)
{
    struct run r;

    logged_in("g");
    reply(200, "{\"logs\":[{\"time\":\"2026-05-01T10:00:00Z\",\"grid\":\"g\",\"resource_type\":"
               "\"Grid\",\"resource_name\":\"g\",\"event_name\":\"create\",\"event_status\":"
               "\"success\",\"user_identity\":{\"email\":\"admin\"},\"source_ip\":\"127.0.0.1\","
               "\"user_agent\":\"kontena-cli/0.1.0\"}]}");
    fake_start();
    r = run_cli("grid", "audit-log", "-l", "5", NULL);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "TIME                  GRID  RESOURCE_TYPE  RESOURCE_NAME  EVENT_NAME  "
                            "STATUS   USER   SOURCE_IP  USER_AGENT\n"
                            "2026-05-01T10:00:00Z  g     Grid           g              create      "
                            "success  admin  127.0.0.1  kontena-cli/0.1.0\n");
    run_release(&r);
    fake_wait();
    cr_assert(!strncmp(fake.requests[0], "GET /v1/grids/g/audit_log?limit=5 HTTP", 38));
}
