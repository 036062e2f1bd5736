/* `kontena stack ...` (cli.md §5, stack-file.md) against a real kontena-apiserver and etcd,
 * one of each per test, with the stack files of tests/integration/stacks/. There is no
 * scheduler yet, so stacks are installed with --no-deploy or deployed with --no-wait. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

/* The CLI runs in the stack files' directory, so they are named relative to it. */
#define STACKS ""

static char stacks_dir[4096];

static char *out, *err;

static void setup(void)
{
    static const char *const vars[] = {"KONTENA_URL",       "KONTENA_MASTER",   "KONTENA_TOKEN",
                                       "KONTENA_GRID",      "KONTENA_PASSWORD", "DEBUG",
                                       "SSL_IGNORE_ERRORS", "KONTENA_CONFIG"};

    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
    const char *slash = strrchr(__FILE__, '/');

    api_fixture_setup();
    setenv("HOME", api.dir, 1);
    snprintf(stacks_dir, sizeof(stacks_dir), "%.*s/stacks", (int)(slash - __FILE__), __FILE__);
    cr_assert_eq(chdir(stacks_dir), 0, "cannot enter %s", stacks_dir);
}

/* An absolute stack file path as the CLI reports it; caller frees. */
static char *abs_path(const char *file)
{
    return xasprintf("%s/%s", stacks_dir, file);
}

static void teardown(void)
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    api_fixture_teardown();
}

TestSuite(stack, .init = setup, .fini = teardown, .timeout = 90);

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

/* GET path as admin: the JSON on 200, NULL on 404. */
static json_t *get(const char *path)
{
    struct http_reply r;
    char *u = xasprintf("%s%s", api.url, path);
    json_t *v = NULL;

    cr_assert_eq(http_do("GET", u, admin(), NULL, 0, NULL, &r), 0);
    cr_assert(r.status == 200 || r.status == 404, "GET %s: %ld %s", path, r.status, r.body);
    if (r.status == 200)
        v = json_incref(r.json);
    http_reply_release(&r);
    free(u);
    return v;
}

static json_t *stack(const char *name)
{
    char *path = xasprintf("/v1/stacks/lab/%s", name);
    json_t *v = get(path);

    free(path);
    return v;
}

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
    json_t *v = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);

    cr_assert_not_null(v, "stdout is not JSON (%s): %s", je.text, out);
    return v;
}

/* ---- validate ---- */

API_TEST(stack, validate_needs_no_master_and_prints_the_document)
{
    json_t *v;

    cr_assert_eq(KONTENA("stack", "validate", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert(!strncmp(out, "---\nstack: test/web\nversion: 1.0.0\nservices:\n", 45), "%s", out);
    cr_assert_str_eq(err, "");

    cr_assert_eq(KONTENA("stack", "validate", "--format", "api-json", STACKS "web-v1.yml"), 0, "%s",
                 err);
    v = out_json();
    cr_assert_str_eq(jstr(v, "name"), "web");
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "services"), 0), "image"), "nginx:1");
    json_decref(v);

    cr_assert_eq(KONTENA("stack", "validate", "--dependency-tree", STACKS "app.yml"), 0, "%s", err);
    cr_assert_str_eq(out, "---\nname: app\nstack: test/app:0.1.0\ndepends:\n- name: app-db\n"
                          "  stack: test/db:0.1.0\n  depends: []\n");

    cr_assert_eq(KONTENA("stack", "validate", STACKS "app.yml"), 0, "%s", err);
    {
        char *db = abs_path("db.yml"), *want = xasprintf("---\n# %s\n", db);
        cr_assert(strstr(out, want), "children first, named: %s", out);
        free(want);
        free(db);
    }
    cr_assert(strstr(out, "- SIZE=small\n"), "the depends: values reach the child: %s", out);
    cr_assert(strstr(out, "- DB_HOST=app-db\n"), "%s", out);
    cr_assert_eq(KONTENA("stack", "validate", "-v", "db.size=huge", STACKS "app.yml"), 0, "%s",
                 err);
    cr_assert(strstr(out, "- SIZE=huge\n"), "-v dep.name routes to the child: %s", out);
}

API_TEST(stack, validate_errors_exit_1)
{
    cr_assert_eq(KONTENA("stack", "validate", STACKS "invalid.yml"), 1);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(err, " YAML validation failed! Aborting.\n\n"
                          "- invalid.yml:\n"
                          "  - services:\n"
                          "      redis:\n"
                          "        omg: key not expected (line 5)\n\n");
    cr_assert_eq(KONTENA("stack", "validate", STACKS "nope.yml"), 1);
    cr_assert(strstr(err, "no such file"), "%s", err);
    cr_assert_eq(KONTENA("stack", "validate", "--format", "xml", STACKS "web-v1.yml"), 1);
    cr_assert(strstr(err, "ERROR: option '--format'"), "%s", err);
}

/* ---- install, ls, show ---- */

API_TEST(stack, install_without_deploy_ls_and_show)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME  STACK  SERVICES  STATE  EXPOSED PORTS  LABELS\n");
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_str_eq(out, "* Creating stack web.. done\n");
    cr_assert_eq(KONTENA("stack", "ls"), 0, "%s", err);
    cr_assert_str_eq(out, "NAME   STACK           SERVICES  STATE        EXPOSED PORTS  LABELS\n"
                          "⊝ web  test/web:1.0.0  2         initialized  *:80->80/tcp   -\n");
    cr_assert_eq(KONTENA("stack", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "web\n");
    cr_assert_eq(KONTENA("stack", "ls", "-o", "json"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(json_array_size(json_object_get(v, "stacks")), 1);
    json_decref(v);

    cr_assert_eq(KONTENA("stack", "show", "web"), 0, "%s", err);
    cr_assert(!strncmp(out, "web:\n  created: ", 16), "%s", out);
    cr_assert(strstr(out, "  state: initialized\n  stack: test/web\n  version: 1.0.0\n"
                          "  revision: 1\n  expose: -\n  variables: -\n  metadata: -\n"
                          "  parent: -\n  services:\n"),
              "%s", out);
    cr_assert(strstr(out, "      image: nginx:1\n      revision:\n      state: initialized\n"),
              "%s", out);
    cr_assert(strstr(out, "      dns: web.web.lab.kontena.local\n      ports:\n"
                          "        - 80:80/tcp\n"),
              "%s", out);
    cr_assert_eq(KONTENA("stack", "show", "-o", "json", "web"), 0, "%s", err);
    v = out_json();
    cr_assert_eq(jint(v, "revision"), 1);
    json_decref(v);

    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "web-v1.yml"), 1, "twice");
    cr_assert(strstr(err, "409"), "%s", err);
    cr_assert_eq(KONTENA("stack", "show", "nope"), 1);
    cr_assert_str_eq(err, " [error] 404 : Stack not found (/v1/stacks/lab/nope)\n");
    cr_assert_eq(KONTENA("stack", "install", STACKS "invalid.yml"), 1);
    cr_assert(strstr(err, "YAML validation failed! Aborting."), "%s", err);
    cr_assert_eq(KONTENA("stack", "install", STACKS "nope.yml"), 1);
    cr_assert(strstr(err, "no such file"), "%s", err);
}

/* The metadata block is YAML that reads back: ">= 0.0.1" stays quoted. */
API_TEST(stack, show_prints_metadata_as_valid_yaml)
{
    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "meta.yml"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "show", "meta"), 0, "%s", err);
    cr_assert(strstr(out, "  metadata:\n    required_kontena_version: \">= 0.0.1\"\n"
                          "    tags:\n    - tag1\n  parent: -\n"),
              "%s", out);
}

/* A 422 shows every service's error, not only the first. */
API_TEST(stack, install_422_prints_every_service_error)
{
    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "badlinks.yml"), 1);
    cr_assert(strstr(err, " [error] 422 : Unprocessable Entity:\n\tservices:\n"
                          "\t  a:\n\t    links: service a has missing links: nope\n"
                          "\t  b:\n\t    links: service b has missing links: nada\n"),
              "%s", err);
}

API_TEST(stack, install_deploys_without_waiting)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-wait", "-n", "front", STACKS "web-v1.yml"), 0,
                 "%s", err);
    cr_assert_str_eq(out, "* Creating stack front.. done\n"
                          "* Triggering deployment of stack front.. done\n");
    v = stack("front");
    cr_assert_str_eq(jstr(v, "state"), "deploying");
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "show", "front"), 0, "%s", err);
    cr_assert(strstr(out, "      revision: 1\n"), "deployed from revision 1: %s", out);
    cr_assert_eq(KONTENA("stack", "deploy", "--timeout", "1", "front"), 1, "no scheduler");
    cr_assert_str_eq(err, " [error] deploy timed out: waiting for the scheduler\n");
    cr_assert(strstr(out, "Waiting for deployment to start (waiting for the scheduler)"), "%s", out);
    cr_assert_eq(KONTENA("stack", "stop", "front"), 0, "%s", err);
    cr_assert_str_eq(out, "* Sending stop signal for stack front services.. done\n");
    /* The stack stays "deploying" while its deploys wait for the scheduler; its services
     * are stopped. */
    v = stack("front");
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "services"), 0), "state"), "stopped");
    cr_assert_str_eq(jstr(json_array_get(json_object_get(v, "services"), 1), "state"), "stopped");
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "restart", "front"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "start", "--no-wait", "front"), 0, "%s", err);
}

API_TEST(stack, install_with_a_child_stack_and_rm_removes_it)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "app.yml"), 0, "%s", err);
    {
        char *db = abs_path("db.yml"), *want = xasprintf("> Installing dependency %s as app-db ..\n"
                                                         "* Creating stack app-db.. done\n"
                                                         "* Creating stack app.. done\n",
                                                         db);
        cr_assert_str_eq(out, want);
        free(want);
        free(db);
    }
    v = stack("app-db");
    cr_assert_str_eq(jstr(json_object_get(v, "parent"), "name"), "app");
    cr_assert_str_eq(jstr(json_object_get(v, "variables"), "size"), "small");
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "app\napp-db\n", "children listed under their parent");
    cr_assert_eq(KONTENA("stack", "show", "app"), 0, "%s", err);
    cr_assert(strstr(out, "  children:\n    - app-db\n"), "%s", out);
    /* The dependency name is one of the parent's stored variables (stack-file.md §6.7). */
    cr_assert(strstr(out, "  variables:\n    db: app-db\n"), "%s", out);

    cr_assert_eq(KONTENA("stack", "rm", "app"), 1, "no terminal to confirm on");
    cr_assert(strstr(out, "Warning: The stack app has dependencies that will be removed:\n"
                          "- app-db\n"),
              "%s", out);
    cr_assert_str_eq(err, " [error] Command requires --force\n");
    cr_assert_eq(KONTENA("stack", "rm", "--force", "app"), 0, "%s", err);
    cr_assert_str_eq(out, "> Removing dependency app-db ..\n"
                          "* Removing stack app-db.. done\n"
                          "* Removing stack app.. done\n");
    cr_assert_null(stack("app"));
    cr_assert_null(stack("app-db"));
}

/* ---- upgrade ---- */

API_TEST(stack, upgrade_reports_changed_added_and_removed_services)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "upgrade", "--dry-run", "web", STACKS "web-v2.yml"), 0, "%s",
                 err);
    cr_assert_str_eq(out, "* Reading stack web from master.. done\n"
                          "\n> Calculated changes:\n"
                          "  ~ web\n"
                          "    ~ web/web\n"
                          "    + web/cache\n"
                          "    - web/db\n"
                          "\n");
    cr_assert_eq(KONTENA("stack", "upgrade", "web", STACKS "web-v2.yml"), 1,
                 "removing a service needs a confirmation");
    cr_assert(strstr(out, "Warning: This can not be undone, data will be lost.\n"), "%s", out);
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 1);
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "upgrade", "--force", "--no-wait", "web", STACKS "web-v2.yml"), 0,
                 "%s", err);
    cr_assert(strstr(out, "* Upgrading stack web.. done\n"
                          "* Triggering deployment of stack web.. done\n"),
              "%s", out);
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 2);
    cr_assert_str_eq(jstr(v, "version"), "1.0.1");
    cr_assert_eq(json_array_size(json_object_get(v, "services")), 2, "db went with the deploy");
    json_decref(v);

    /* Another stack: under the same name, a replacement. */
    cr_assert_eq(KONTENA("stack", "upgrade", "--dry-run", "web", STACKS "notweb.yml"), 0, "%s",
                 err);
    cr_assert(strstr(out, "  -/+ web\n    ~ web/web\n    - web/cache\n"
                          "- web from test/web to test/notweb\n\n  ~ web\n"),
              "%s", out);
}

API_TEST(stack, upgrade_adds_and_removes_child_stacks)
{
    login_with_grid();
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", STACKS "app.yml"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "upgrade", "--force", "--no-deploy", "app", STACKS "app-v2.yml"),
                 0, "%s", err);
    cr_assert(strstr(out, "> Calculated changes:\n  - app-db\n    - app-db/redis\n"
                          "  + app-cache\n    + app-cache/memcached\n  ~ app\n    ~ app/app\n"),
              "%s", out);
    {
        char *cache = abs_path("cache.yml");
        char *want = xasprintf("> Installing new dependency %s as app-cache ..\n", cache);
        cr_assert(strstr(out, want), "%s", out);
        free(want);
        free(cache);
    }
    cr_assert(strstr(out, "* Upgrading stack app.. done\n"), "%s", out);
    cr_assert(strstr(out, "* Removing stack app-db.. done\n"), "%s", out);
    cr_assert_null(stack("app-db"));
    json_decref(stack("app-cache"));
    cr_assert_eq(KONTENA("stack", "ls", "-q"), 0, "%s", err);
    cr_assert_str_eq(out, "app\napp-cache\n");
}

/* ---- apply ---- */

API_TEST(stack, apply_twice_writes_once)
{
    json_t *v;
    char *updated;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "apply", "--no-wait", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_str_eq(out, "* Creating stack web.. done\n"
                          "* Triggering deployment of stack web.. done\n");
    v = stack("web");
    updated = xstrdup(jstr(v, "updated_at"));
    cr_assert_eq(jint(v, "revision"), 1);
    json_decref(v);

    cr_assert_eq(KONTENA("stack", "apply", "--no-wait", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_str_eq(out, "* Reading stack web from master.. done\n"
                          "No changes: stack web is up to date (revision 1)\n");
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 1);
    cr_assert_str_eq(jstr(v, "updated_at"), updated, "no write at all");
    json_decref(v);
    free(updated);
}

/* Without a deploy the live services lag behind the stack's revision; apply compares with
 * the revision, so a second apply of the same file still changes nothing. */
API_TEST(stack, apply_no_deploy_twice_writes_once)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "apply", "--no-deploy", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "apply", "--no-deploy", "--force", STACKS "web-v2.yml"), 0, "%s",
                 err);
    cr_assert(strstr(out, "Upgrading stack web"), "%s", out);
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 2);
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "apply", "--no-deploy", "--force", STACKS "web-v2.yml"), 0, "%s",
                 err);
    cr_assert(strstr(out, "No changes: stack web is up to date (revision 2)\n"), "%s", out);
    cr_assert_null(strstr(out, "Upgrading"), "%s", out);
}

API_TEST(stack, apply_dry_run_prints_key_changes_and_changes_nothing)
{
    json_t *v;

    login_with_grid();
    cr_assert_eq(KONTENA("stack", "apply", "--dry-run", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert(strstr(out, "+ stack web (new)\n  + web: new service, image nginx:1\n"), "%s", out);
    cr_assert_null(stack("web"), "a dry run installs nothing");
    cr_assert_eq(KONTENA("stack", "apply", "--no-deploy", STACKS "web-v1.yml"), 0, "%s", err);
    cr_assert_eq(KONTENA("stack", "apply", "--dry-run", STACKS "web-v2.yml"), 0, "%s", err);
    cr_assert(strstr(out, "~ stack web (revision 1)\n"), "%s", out);
    cr_assert(strstr(out, "  ~ version: \"1.0.0\" → \"1.0.1\"\n"), "%s", out);
    cr_assert(strstr(out, "  ~ web.image: \"nginx:1\" → \"nginx:2\"\n"), "%s", out);
    cr_assert(strstr(out, "  + web.ports[1]: {\"container_port\":443,\"ip\":\"0.0.0.0\","
                          "\"node_port\":443,\"protocol\":\"tcp\"}\n"),
              "%s", out);
    cr_assert(strstr(out, "  + cache: new service, image memcached:1\n"), "%s", out);
    cr_assert(strstr(out, "  - db: service removed\n"), "%s", out);
    cr_assert(strstr(out, "Dry run: nothing was changed\n"), "%s", out);
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 1);
    json_decref(v);

    cr_assert_eq(KONTENA("stack", "apply", "--force", "--no-wait", STACKS "web-v2.yml"), 0, "%s",
                 err);
    v = stack("web");
    cr_assert_eq(jint(v, "revision"), 2);
    json_decref(v);
    cr_assert_eq(KONTENA("stack", "apply", "--no-wait", STACKS "web-v2.yml"), 0, "%s", err);
    cr_assert(strstr(out, "No changes: stack web is up to date (revision 2)\n"), "%s", out);
}
