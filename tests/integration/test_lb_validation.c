/* Bad load balancer settings (issue 7, point 4) are refused at install time with a clear
 * message naming the service and the variable, and nothing is installed: over the API
 * (stack install, service create, service update, env add) and in the CLI (`kontena stack
 * validate` and `stack install`, before anything is sent). Unknown mode, invalid virtual
 * host, port clash (two tcp services on one LB, a tcp port equal to the LB's own port). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

TestSuite(lb_validation, .init = api_fixture_setup, .fini = api_fixture_teardown, .timeout = 90);

static char *tok;
static struct http_reply rep;

/* body with single quotes for readability: 'x' -> "x" */
static long call(const char *method, const char *path, const char *body)
{
    char *u = xasprintf("%s%s", api.url, path), *b = body ? xstrdup(body) : NULL;

    for (char *p = b; p && *p; p++)
        if (*p == '\'')
            *p = '"';
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    cr_assert_eq(http_do(method, u, tok, b, (size_t)-1, NULL, &rep), 0, "%s %s", method, path);
    free(u);
    free(b);
    return rep.status;
}

#define EXPECT(code, m, p, b_)                                                                     \
    do {                                                                                           \
        long got_ = call(m, p, b_);                                                                \
        cr_assert_eq(got_, code, "%s %s -> %ld %s", m, p, got_, rep.body);                         \
    } while (0)

/* The string at error.a[.b[.c]] of the last reply (or at a[.b] when there is no "error"). */
static const char *err_at(const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(rep.json, "error");
    v = json_object_get(v ? v : rep.json, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_string_value(v) ? json_string_value(v) : "(none)";
}

static void login(void)
{
    char *login = xasprintf("{'grant_type':'password','username':'admin','password':'%s'}",
                            api.admin_password);
    tok = NULL;
    cr_assert_eq(call("POST", "/oauth2/token", login), 201, "%s", rep.body);
    free(login);
    tok = xstrdup(json_string_value(json_object_get(rep.json, "access_token")));
    EXPECT(201, "POST", "/v1/grids", "{'name':'grd'}");
}

static void done(void)
{
    http_reply_release(&rep);
    memset(&rep, 0, sizeof(rep));
    FREE_AND_NULL(tok);
}

API_TEST(lb_validation, api_unknown_mode_and_invalid_virtual_host_are_refused)
{
    login();
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'shop','stack':'t/shop','services':[{'name':'lb','image':'kontena/lb'},"
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_MODE=udp']}]}");
    cr_assert_str_eq(err_at("services", "web", "env"),
                     "service 'shop/web': KONTENA_LB_MODE: unknown mode 'udp' (http or tcp)");
    EXPECT(404, "GET", "/v1/stacks/grd/shop", NULL);

    EXPECT(201, "POST", "/v1/grids/grd/services", "{'name':'lb','image':'kontena/lb:latest'}");
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_VIRTUAL_HOSTS=www.example.com, bad host.example.com']}");
    cr_assert_str_eq(err_at("env", NULL, NULL),
                     "service 'web': KONTENA_LB_VIRTUAL_HOSTS: invalid virtual host 'bad "
                     "host.example.com' (a DNS name or *.<DNS name>)");
    EXPECT(404, "GET", "/v1/services/grd/null/web", NULL);
    /* a custom line that would open a section of its own */
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_CUSTOM_SETTINGS=option httpclose\\nbackend evil']}");
    cr_assert(strstr(err_at("env", NULL, NULL),
                     "KONTENA_LB_CUSTOM_SETTINGS: line 'backend evil' would open a new haproxy "
                     "section"),
              "%s", rep.body);
    /* what haproxy would refuse: an unknown cookie option, a user in an undeclared group */
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_COOKIE=cookie SRV insert sticky']}");
    cr_assert(strstr(err_at("env", NULL, NULL),
                     "service 'web': KONTENA_LB_COOKIE: unknown cookie option or missing value at "
                     "'sticky'"),
              "%s", rep.body);
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_BASIC_AUTH_SECRETS=user a insecure-password b groups admins']}");
    cr_assert_str_eq(err_at("env", NULL, NULL),
                     "service 'web': KONTENA_LB_BASIC_AUTH_SECRETS: a user is in group 'admins', "
                     "which no 'group' line declares");
    /* good settings pass */
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'web','image':'nginx','links':[{'name':'lb'}],"
           "'env':['KONTENA_LB_VIRTUAL_HOSTS=www.example.com,*.example.org',"
           "'KONTENA_LB_VIRTUAL_PATH=/a,/b','KONTENA_LB_BALANCE=leastconn',"
           "'KONTENA_LB_CUSTOM_SETTINGS=option httpclose\\ntimeout server 30s']}");

    /* update and env add are checked too; the stored service does not change */
    EXPECT(422, "PUT", "/v1/services/grd/null/web", "{'env':['KONTENA_LB_BALANCE=fastest']}");
    cr_assert(strstr(err_at("env", NULL, NULL),
                     "service 'web': KONTENA_LB_BALANCE: 'fastest' is not a haproxy balance "
                     "algorithm"),
              "%s", rep.body);
    EXPECT(422, "POST", "/v1/services/grd/null/web/envs", "{'env':'KONTENA_LB_INTERNAL_PORT=0'}");
    cr_assert_str_eq(err_at("env", NULL, NULL), "service 'web': KONTENA_LB_INTERNAL_PORT: '0' "
                                                "is not a port (1..65535)");
    EXPECT(200, "GET", "/v1/services/grd/null/web", NULL);
    cr_assert_eq(json_array_size(json_object_get(rep.json, "env")), 4, "%s", rep.body);
    done();
}

API_TEST(lb_validation, api_port_clashes_are_refused_across_stacks)
{
    login();
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'infra','stack':'t/infra','services':[{'name':'lb','image':'kontena/lb'}]}");
    EXPECT(201, "POST", "/v1/grids/grd/stacks",
           "{'name':'db1','stack':'t/db','services':[{'name':'mysql','image':'mysql',"
           "'links':[{'name':'infra/lb'}],'env':['KONTENA_LB_MODE=tcp',"
           "'KONTENA_LB_EXTERNAL_PORT=3306']}]}");
    EXPECT(422, "POST", "/v1/grids/grd/stacks",
           "{'name':'db2','stack':'t/db','services':[{'name':'mysql','image':'mysql',"
           "'links':[{'name':'infra/lb'}],'env':['KONTENA_LB_MODE=tcp',"
           "'KONTENA_LB_EXTERNAL_PORT=3306']}]}");
    cr_assert_str_eq(err_at("services", "mysql", "env"),
                     "port clash on load balancer 'infra/lb': services 'db1/mysql' and "
                     "'db2/mysql' both use KONTENA_LB_EXTERNAL_PORT 3306");
    EXPECT(404, "GET", "/v1/stacks/grd/db2", NULL);
    /* the LB's own http port */
    EXPECT(422, "POST", "/v1/grids/grd/services",
           "{'name':'pg','image':'postgres','links':[{'name':'infra/lb'}],"
           "'env':['KONTENA_LB_MODE=tcp','KONTENA_LB_EXTERNAL_PORT=80']}");
    cr_assert_str_eq(err_at("env", NULL, NULL),
                     "port clash on load balancer 'infra/lb': service 'pg' uses "
                     "KONTENA_LB_EXTERNAL_PORT 80, the load balancer's own http port");
    EXPECT(404, "GET", "/v1/services/grd/null/pg", NULL);
    /* another port is fine; re-installing db1 itself with the same port is fine */
    EXPECT(201, "POST", "/v1/grids/grd/services",
           "{'name':'pg','image':'postgres','links':[{'name':'infra/lb'}],"
           "'env':['KONTENA_LB_MODE=tcp','KONTENA_LB_EXTERNAL_PORT=5432']}");
    EXPECT(200, "PUT", "/v1/stacks/grd/db1",
           "{'stack':'t/db','services':[{'name':'mysql','image':'mysql:8',"
           "'links':[{'name':'infra/lb'}],'env':['KONTENA_LB_MODE=tcp',"
           "'KONTENA_LB_EXTERNAL_PORT=3306']}]}");
    /* moving pg onto 3306 by an update is refused */
    EXPECT(422, "PUT", "/v1/services/grd/null/pg",
           "{'env':['KONTENA_LB_MODE=tcp','KONTENA_LB_EXTERNAL_PORT=3306']}");
    cr_assert_str_eq(err_at("env", NULL, NULL),
                     "port clash on load balancer 'infra/lb': services 'db1/mysql' and 'pg' "
                     "both use KONTENA_LB_EXTERNAL_PORT 3306");
    done();
}

/* --- the CLI ------------------------------------------------------------------------------ */

static char *out, *err;

static int kontena(const char *const args[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return api_cli_env(&api, NULL, NULL, &out, &err, args);
}
#define KONTENA(...) kontena((const char *const[]){__VA_ARGS__, NULL})

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", api.dir, name);
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static void cli_login(void)
{
    char *pem = xasprintf("%s/master.pem", api.dir);

    cr_assert_eq(KONTENA("master", "login", "--ca-cert", pem, "-u", "admin", "-p",
                         api.admin_password, "--name", "test-master", api.url),
                 0, "login failed: %s %s", out, err);
    cr_assert_eq(KONTENA("grid", "create", "lab"), 0, "%s", err);
    free(pem);
}

/* s with every run of blanks and newlines made one space (YAML folds long messages). */
static int has(const char *s, const char *want)
{
    char *flat = xstrdup(s ? s : ""), *w = flat;
    int found;

    for (const char *p = flat; *p; p++) {
        if (*p == ' ' || *p == '\n') {
            while (p[1] == ' ' || p[1] == '\n')
                p++;
            *w++ = ' ';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    found = strstr(flat, want) != NULL;
    free(flat);
    return found;
}

/* `stack validate` and `stack install` of text both fail with want in their output, and
 * the stack is not installed. */
static void refused(const char *file, const char *text, const char *want)
{
    char *path = write_file(file, text);
    struct http_reply r;
    char *u;

    cr_assert_eq(KONTENA("stack", "validate", path), 1, "validate %s: %s %s", file, out, err);
    cr_assert(has(out, want) || has(err, want), "'%s' not in:\n%s\n%s", want, out, err);
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", path), 1, "install %s", file);
    cr_assert(has(out, want) || has(err, want), "'%s' not in:\n%s\n%s", want, out, err);
    u = xasprintf("%s/v1/stacks/lab/bad", api.url);
    cr_assert_eq(http_do("GET", u, api_proc_admin_token(&api), NULL, 0, NULL, &r), 0);
    cr_assert_eq(r.status, 404, "the stack was installed: %s", r.body);
    http_reply_release(&r);
    free(u);
    free(path);
}

API_TEST(lb_validation, cli_refuses_bad_settings_before_installing)
{
    const char *head = "stack: t/bad\nversion: 0.1.0\nservices:\n"
                       "  lb:\n    image: kontena/lb:latest\n    ports:\n      - 80:80\n";
    char *text;

    cli_login();
    text = xasprintf("%s  web:\n    image: nginx\n    links:\n      - lb\n"
                     "    environment:\n      - KONTENA_LB_MODE=udp\n",
                     head);
    refused("mode.yml", text, "KONTENA_LB_MODE: unknown mode ''udp'' (http");
    free(text);
    text = xasprintf("%s  web:\n    image: nginx\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_VIRTUAL_HOSTS: \"www.example.com,-bad.example.com\"\n",
                     head);
    refused("host.yml", text, "invalid virtual host ''-bad.example.com''");
    free(text);
    text = xasprintf("%s  db1:\n    image: mysql\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_MODE: tcp\n      KONTENA_LB_EXTERNAL_PORT: 3306\n"
                     "  db2:\n    image: mysql\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_MODE: tcp\n      KONTENA_LB_EXTERNAL_PORT: 3306\n",
                     head);
    refused("clash.yml", text, "port clash on load balancer ''lb'': services ''db1'' and ''db2''");
    free(text);
    text = xasprintf("%s  db1:\n    image: mysql\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_MODE: tcp\n      KONTENA_LB_EXTERNAL_PORT: 1000\n",
                     head);
    refused("stats.yml", text, "the load balancer''s own stats port");
    free(text);

    /* the same stack with good settings installs */
    text = xasprintf("%s  web:\n    image: nginx\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_VIRTUAL_HOSTS: www.example.com\n"
                     "      KONTENA_LB_VIRTUAL_PATH: /app\n"
                     "  db1:\n    image: mysql\n    links: [lb]\n    environment:\n"
                     "      KONTENA_LB_MODE: tcp\n      KONTENA_LB_EXTERNAL_PORT: 3306\n",
                     head);
    char *path = write_file("good.yml", text);
    cr_assert_eq(KONTENA("stack", "validate", path), 0, "%s %s", out, err);
    cr_assert_eq(KONTENA("stack", "install", "--no-deploy", path), 0, "%s %s", out, err);
    free(path);
    free(text);
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
}
