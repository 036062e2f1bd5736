/* End-to-end flows through the real `kontena` CLI against a real kontena-apiserver and etcd
 * (one of each per test). The CLI trusts the server's generated certificate through
 * `master login --ca-cert`, as a user would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/proc.h"

TestSuite(cli, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 90);

/* Run the CLI; returns its exit status and keeps the output in out/err (freed by the next
 * call). */
static char *out, *err;

#define KONTENA(...) run((const char *[]){__VA_ARGS__, NULL})

static int run(const char *args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, NULL, NULL, &out, &err, args);
}

static int run_env(const char *env[], const char *args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, env, NULL, &out, &err, args);
}

static void login_admin(void)
{
    char *pem = xasprintf("%s/master.pem", api.dir);
    int rc = KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p", api.admin_password,
                     "--name", "test-master", api.url);
    cr_assert_eq(rc, 0, "login failed: %s %s", out, err);
    free(pem);
}

API_TEST(cli, login_whoami_logout)
{
    login_admin();
    cr_assert(strstr(out, "Authenticated to Kontena Master test-master at ") != NULL, "%s", out);
    cr_assert_eq(KONTENA("whoami"), 0, "%s", err);
    cr_assert(strstr(out, "admin") != NULL, "%s", out);
    cr_assert(strstr(out, api.url) != NULL, "%s", out);
    cr_assert_eq(KONTENA("master", "ls"), 0);
    cr_assert(strstr(out, "* test-master") != NULL, "%s", out);
    cr_assert_eq(KONTENA("master", "current", "--url"), 0);
    cr_assert(strncmp(out, api.url, strlen(api.url)) == 0, "%s", out);
    cr_assert_eq(KONTENA("master", "logout"), 0, "%s", err);
    cr_assert_neq(KONTENA("whoami"), 0, "logged out: whoami must fail");
}

API_TEST(cli, wrong_password_fails_clearly)
{
    char *pem = xasprintf("%s/master.pem", api.dir);
    int rc = KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p", "not-the-password",
                     api.url);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "Invalid username or password") != NULL, "stderr: %s", err);
    free(pem);
}

API_TEST(cli, untrusted_certificate_is_refused)
{
    int rc = KONTENA("master", "login", "-u", "admin", "-p", api.admin_password, api.url);
    cr_assert_eq(rc, 1, "a self-signed certificate must not be trusted silently");
    cr_assert_neq(strlen(err), 0);
}

API_TEST(cli, grid_lifecycle)
{
    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "--initial-size", "3", "demo"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "ls"), 0);
    cr_assert(strstr(out, "demo") != NULL, "%s", out);
    cr_assert_eq(KONTENA("grid", "current", "--name"), 0);
    cr_assert_str_eq(out, "demo\n", "grid create switches to the new grid");
    cr_assert_eq(KONTENA("grid", "show", "demo"), 0);
    cr_assert(strstr(out, "initial_size: 3") != NULL, "%s", out);
    cr_assert(strstr(out, "subnet: 10.81.0.0/16") != NULL, "%s", out);
    cr_assert_eq(KONTENA("grid", "create", "other"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "use", "demo"), 0);
    cr_assert(strstr(out, "Using grid: demo") != NULL, "%s", out);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "add", "192.168.66.0/24"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "ls"), 0);
    cr_assert_str_eq(out, "192.168.66.0/24\n");
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "add", "not-a-subnet"), 1);
    cr_assert(strstr(err, "422") != NULL, "%s", err);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "rm", "--force", "192.168.66.0/24"), 0, "%s",
                 err);
    cr_assert_eq(KONTENA("grid", "trusted-subnet", "ls"), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(KONTENA("grid", "update", "--default-affinity", "label==fast", "demo"), 0, "%s",
                 err);
    cr_assert_eq(KONTENA("grid", "show", "demo"), 0);
    cr_assert(strstr(out, "label==fast") != NULL, "%s", out);
    cr_assert_eq(KONTENA("grid", "rm", "--force", "demo"), 0, "%s", err);
    cr_assert_eq(KONTENA("grid", "ls", "-q"), 0);
    cr_assert_str_eq(out, "other\n");
    cr_assert_eq(KONTENA("grid", "show", "demo"), 1);
}

API_TEST(cli, token_create_use_revoke)
{
    char *token, *id, env_tok[200];
    const char *env[] = {env_tok, NULL};

    login_admin();
    cr_assert_eq(KONTENA("master", "token", "create", "--token", "-d", "ci-token"), 0, "%s", err);
    token = xstrndup(out, strcspn(out, "\n"));
    cr_assert_eq(strlen(token), 64, "token: '%s'", token);
    cr_assert_eq(KONTENA("master", "token", "ls"), 0);
    cr_assert(strstr(out, "ci-token") != NULL, "%s", out);
    snprintf(env_tok, sizeof(env_tok), "KONTENA_TOKEN=%s", token);
    cr_assert_eq(run_env(env, (const char *[]){"whoami", NULL}), 0, "token works: %s", err);
    cr_assert_eq(KONTENA("master", "token", "show", token), 0, "%s", err);
    id = xstrndup(out, strcspn(out, ":"));
    cr_assert_eq(KONTENA("master", "token", "rm", "--force", id), 0, "%s", err);
    cr_assert_eq(KONTENA("master", "token", "ls", "-q"), 0);
    cr_assert_null(strstr(out, id), "removed id still listed: %s", out);
    cr_assert_eq(run_env(env, (const char *[]){"grid", "ls", NULL}), 1, "revoked token must fail");
    cr_assert(strstr(err, "403") != NULL && strstr(err, "Invalid token") != NULL, "%s", err);
    free(token);
    free(id);
}

API_TEST(cli, users_and_roles)
{
    login_admin();
    cr_assert_eq(KONTENA("master", "user", "add", "--password", "carol-password", "carol@example.com"),
                 0, "%s", err);
    cr_assert_eq(KONTENA("master", "user", "ls"), 0);
    cr_assert(strstr(out, "carol@example.com") != NULL, "%s", out);
    cr_assert_eq(KONTENA("master", "user", "role", "add", "grid_admin", "carol@example.com"), 0,
                 "%s", err);
    cr_assert_eq(KONTENA("master", "user", "ls"), 0);
    cr_assert(strstr(out, "grid_admin") != NULL, "%s", out);
    cr_assert_eq(KONTENA("master", "user", "role", "rm", "grid_admin", "carol@example.com"), 0,
                 "%s", err);
    cr_assert_eq(KONTENA("master", "user", "rm", "--force", "carol@example.com"), 0, "%s", err);
    cr_assert_eq(KONTENA("master", "user", "ls", "-q"), 0);
    cr_assert_null(strstr(out, "carol"), "%s", out);
}

API_TEST(cli, audit_log_shows_changes)
{
    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "audited"), 0, "%s", err);
    cr_assert_eq(KONTENA("master", "audit-log"), 0, "%s", err);
    cr_assert(strstr(out, "Grid") != NULL && strstr(out, "audited") != NULL &&
                  strstr(out, "create") != NULL,
              "%s", out);
    cr_assert_eq(KONTENA("grid", "audit-log"), 0, "%s", err);
    cr_assert(strstr(out, "audited") != NULL, "%s", out);
}

API_TEST(cli, state_survives_an_apiserver_restart)
{
    login_admin();
    cr_assert_eq(KONTENA("grid", "create", "keep"), 0, "%s", err);
    cr_assert_eq(api_proc_restart(&api), 0);
    cr_assert_eq(KONTENA("grid", "ls", "-q"), 0, "the stored token still works: %s", err);
    cr_assert_str_eq(out, "keep\n");
    cr_assert_eq(KONTENA("whoami"), 0);
}

API_TEST(cli, every_command_has_help)
{
    static const char *paths[][4] = {
        {"master", "login"}, {"master", "logout"}, {"master", "ls"}, {"master", "use"},
        {"master", "current"}, {"master", "user", "ls"}, {"master", "user", "add"},
        {"master", "user", "rm"}, {"master", "user", "role", "add"},
        {"master", "user", "role", "rm"}, {"master", "token", "create"},
        {"master", "token", "ls"}, {"master", "token", "rm"}, {"master", "token", "current"},
        {"grid", "create"}, {"grid", "ls"}, {"grid", "use"}, {"grid", "show"},
        {"grid", "current"}, {"grid", "update"}, {"grid", "rm"},
        {"grid", "trusted-subnet", "ls"}, {"grid", "trusted-subnet", "add"},
        {"grid", "trusted-subnet", "rm"}, {"whoami"}, {"master"}, {"grid"}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const char *args[6] = {0};
        int n = 0;
        for (; n < 4 && paths[i][n]; n++)
            args[n] = paths[i][n];
        args[n] = "--help";
        cr_assert_eq(run(args), 0, "%s --help", paths[i][0]);
        cr_assert(strstr(out, "Usage:") && strstr(out, "Options:"), "help of %s %s: %s",
                  paths[i][0], paths[i][1] ? paths[i][1] : "", out);
    }
}
