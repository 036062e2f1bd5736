/* Unit tests for common/lbenv: KONTENA_LB_* parsing, defaults and validation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/lbenv.h"
#include "common/xmalloc.h"

#define ENV(...) ((const char *const[]){__VA_ARGS__})
#define NENV(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define PARSE(lb, e, ...) lbenv_parse(lb, ENV(__VA_ARGS__), NENV(__VA_ARGS__), "web/api", e)

Test(lbenv, defaults_http)
{
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;

    cr_assert_eq(PARSE(&lb, &e, "FOO=bar", "NOEQUALS"), ST_OK, "%s", e.msg);
    cr_assert_eq(lb.mode, LB_MODE_HTTP);
    cr_assert_str_eq(lb.balance, "roundrobin");
    cr_assert_null(lb.virtual_hosts);
    cr_assert_str_eq(lb.virtual_path, "/", "no hosts and no path: path '/' (reference 7.2)");
    cr_assert_null(lb.keep_virtual_path);
    cr_assert_null(lb.cookie);
    cr_assert_null(lb.basic_auth_secrets);
    cr_assert_null(lb.custom_settings);
    cr_assert_eq(lb.internal_port, 80);
    cr_assert_eq(lb.external_port, 5000);
    lbenv_release(&lb);
    lbenv_release(&lb);
    lbenv_release(NULL);
}

Test(lbenv, every_variable)
{
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;

    cr_assert_eq(PARSE(&lb, &e, "KONTENA_LB_MODE=http", "KONTENA_LB_BALANCE=leastconn",
                       "KONTENA_LB_VIRTUAL_HOSTS=www.example.com, *.example.org",
                       "KONTENA_LB_VIRTUAL_PATH=/api,/v2/", "KONTENA_LB_KEEP_VIRTUAL_PATH=true",
                       "KONTENA_LB_COOKIE=", "KONTENA_LB_INTERNAL_PORT=8080",
                       "KONTENA_LB_BASIC_AUTH_SECRETS=user admin insecure-password x\n",
                       "KONTENA_LB_CUSTOM_SETTINGS=option httpclose\n\thttp-request set-header "
                       "X-A b"),
                 ST_OK, "%s", e.msg);
    cr_assert_str_eq(lb.balance, "leastconn");
    cr_assert_str_eq(lb.virtual_hosts, "www.example.com,*.example.org", "items trimmed");
    cr_assert_str_eq(lb.virtual_path, "/api,/v2/");
    cr_assert_str_eq(lb.keep_virtual_path, "true");
    cr_assert_str_eq(lb.cookie, "", "empty cookie = default cookie, not unset");
    cr_assert_eq(lb.internal_port, 8080);
    cr_assert_str_eq(lb.basic_auth_secrets, "user admin insecure-password x\n");
    cr_assert_str_eq(lb.custom_settings, "option httpclose\n\thttp-request set-header X-A b");
    lbenv_release(&lb);
}

Test(lbenv, hosts_only_has_no_default_path_and_last_entry_wins)
{
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;

    cr_assert_eq(PARSE(&lb, &e, "KONTENA_LB_VIRTUAL_HOSTS=bad..host",
                       "KONTENA_LB_VIRTUAL_HOSTS=a.b", "KONTENA_LB_BASIC_AUTH_SECRETS=  \n",
                       "KONTENA_LB_CUSTOM_SETTINGS="),
                 ST_OK, "%s", e.msg);
    cr_assert_str_eq(lb.virtual_hosts, "a.b");
    cr_assert_null(lb.virtual_path);
    cr_assert_null(lb.basic_auth_secrets, "empty secrets are deleted, not written empty");
    cr_assert_null(lb.custom_settings);
    lbenv_release(&lb);
}

Test(lbenv, tcp)
{
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;

    cr_assert_eq(PARSE(&lb, &e, "KONTENA_LB_MODE=tcp", "KONTENA_LB_EXTERNAL_PORT=3306",
                       "KONTENA_LB_INTERNAL_PORT=3306", "KONTENA_LB_BALANCE=source"),
                 ST_OK, "%s", e.msg);
    cr_assert_eq(lb.mode, LB_MODE_TCP);
    cr_assert_eq(lb.external_port, 3306);
    cr_assert_eq(lb.internal_port, 3306);
    cr_assert_str_eq(lb.balance, "source");
    lbenv_release(&lb);
}

/* Each bad env gives ST_INVALID with a message naming the service and the variable. */
static void bad(const char *entry, const char *var, const char *part)
{
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;
    const char *env[] = {"A=b", entry};

    cr_assert_eq(lbenv_parse(&lb, env, 2, "web/api", &e), ST_INVALID, "'%s' accepted", entry);
    cr_assert(strstr(e.msg, "service 'web/api'"), "no service in '%s'", e.msg);
    cr_assert(strstr(e.msg, var), "no variable in '%s'", e.msg);
    cr_assert(strstr(e.msg, part), "'%s' not in '%s'", part, e.msg);
    cr_assert_null(lb.balance, "released on error");
}

Test(lbenv, invalid_values_named)
{
    bad("KONTENA_LB_MODE=udp", "KONTENA_LB_MODE", "unknown mode 'udp'");
    bad("KONTENA_LB_MODE=HTTP", "KONTENA_LB_MODE", "unknown mode");
    bad("KONTENA_LB_BALANCE=fastest", "KONTENA_LB_BALANCE", "balance algorithm");
    bad("KONTENA_LB_BALANCE=roundrobin\nbackend x", "KONTENA_LB_BALANCE", "balance algorithm");
    bad("KONTENA_LB_VIRTUAL_HOSTS=exa mple.com", "KONTENA_LB_VIRTUAL_HOSTS",
        "invalid virtual host");
    bad("KONTENA_LB_VIRTUAL_HOSTS=a.com,,b.com", "KONTENA_LB_VIRTUAL_HOSTS", "empty virtual host");
    bad("KONTENA_LB_VIRTUAL_HOSTS=-a.com", "KONTENA_LB_VIRTUAL_HOSTS", "'-a.com'");
    bad("KONTENA_LB_VIRTUAL_HOSTS=a*.com", "KONTENA_LB_VIRTUAL_HOSTS", "invalid virtual host");
    bad("KONTENA_LB_VIRTUAL_HOSTS=a.com.", "KONTENA_LB_VIRTUAL_HOSTS", "invalid virtual host");
    bad("KONTENA_LB_VIRTUAL_PATH=api", "KONTENA_LB_VIRTUAL_PATH", "must start with '/'");
    bad("KONTENA_LB_VIRTUAL_PATH=/a b", "KONTENA_LB_VIRTUAL_PATH", "invalid virtual path");
    bad("KONTENA_LB_VIRTUAL_PATH=/a\"", "KONTENA_LB_VIRTUAL_PATH", "invalid virtual path");
    bad("KONTENA_LB_KEEP_VIRTUAL_PATH=yes", "KONTENA_LB_KEEP_VIRTUAL_PATH", "not true or false");
    bad("KONTENA_LB_INTERNAL_PORT=0", "KONTENA_LB_INTERNAL_PORT", "not a port");
    bad("KONTENA_LB_INTERNAL_PORT=65536", "KONTENA_LB_INTERNAL_PORT", "not a port");
    bad("KONTENA_LB_EXTERNAL_PORT=+80", "KONTENA_LB_EXTERNAL_PORT", "not a port");
    bad("KONTENA_LB_EXTERNAL_PORT=99999999999", "KONTENA_LB_EXTERNAL_PORT", "not a port");
    bad("KONTENA_LB_COOKIE=SERVERID insert", "KONTENA_LB_COOKIE", "cookie line");
    bad("KONTENA_LB_COOKIE=cookie A\nbackend evil", "KONTENA_LB_COOKIE", "single line");
    bad("KONTENA_LB_CUSTOM_SETTINGS=option a\nbackend evil\n", "KONTENA_LB_CUSTOM_SETTINGS",
        "new haproxy section");
    bad("KONTENA_LB_CUSTOM_SETTINGS=  listen x", "KONTENA_LB_CUSTOM_SETTINGS",
        "new haproxy section");
    bad("KONTENA_LB_CUSTOM_SETTINGS=option a\r\nx", "KONTENA_LB_CUSTOM_SETTINGS",
        "control character 0x0d");
    bad("KONTENA_LB_BASIC_AUTH_SECRETS=admin:x", "KONTENA_LB_BASIC_AUTH_SECRETS", "userlist");
    bad("KONTENA_LB_BASIC_AUTH_SECRETS=user a password x\nfrontend f",
        "KONTENA_LB_BASIC_AUTH_SECRETS", "userlist");
}

Test(lbenv, balance_algorithms)
{
    const char *good[] = {"roundrobin",
                          "static-rr",
                          "leastconn",
                          "first",
                          "source",
                          "random",
                          "random(2)",
                          "uri",
                          "uri len 10 depth 2 whole",
                          "uri path-only",
                          "url_param userid",
                          "url_param id check_post",
                          "hdr(host)",
                          "hdr(Host) use_domain_only",
                          "rdp-cookie",
                          "rdp-cookie(mstshash)",
                          " leastconn "};
    const char *nope[] = {"",
                          " ",
                          "round robin",
                          "roundrobin x",
                          "random(a)",
                          "hdr()",
                          "hdr",
                          "url_param",
                          "uri len",
                          "uri len x",
                          "hash",
                          "hash path",
                          "hdr(a b)",
                          "leastconn # comment",
                          "source\tx"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_assert_eq(lbenv_check_balance(good[i], NULL), ST_OK, "'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(nope) / sizeof(*nope); i++)
        cr_assert_eq(lbenv_check_balance(nope[i], NULL), ST_INVALID, "'%s' accepted", nope[i]);
    cr_assert_eq(lbenv_check_balance(NULL, NULL), ST_INVALID);
}

Test(lbenv, single_values)
{
    int port = 0;
    enum lb_mode m = LB_MODE_HTTP;

    cr_assert_eq(lbenv_check_mode("tcp", &m, NULL), ST_OK);
    cr_assert_eq(m, LB_MODE_TCP);
    cr_assert_eq(lbenv_check_mode(NULL, &m, NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_port("65535", &port, NULL), ST_OK);
    cr_assert_eq(port, 65535);
    cr_assert_eq(lbenv_check_port("1", NULL, NULL), ST_OK);
    cr_assert_eq(lbenv_check_port("80 ", NULL, NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_port("", NULL, NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_port(NULL, NULL, NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_virtual_hosts("*.example.com,localhost,a-b.c1", NULL), ST_OK);
    cr_assert_eq(lbenv_check_virtual_hosts("*", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_virtual_hosts("a.*.com", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_virtual_hosts("", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_virtual_paths("/", NULL), ST_OK);
    cr_assert_eq(lbenv_check_virtual_paths("/a/b-c_d.e~f%20:@+=", NULL), ST_OK);
    cr_assert_eq(lbenv_check_virtual_paths("/a(.*)", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_virtual_paths("/a#b", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_keep_virtual_path("false", NULL), ST_OK);
    cr_assert_eq(lbenv_check_cookie("", NULL), ST_OK);
    cr_assert_eq(lbenv_check_cookie("cookie SRV insert indirect nocache", NULL), ST_OK);
    cr_assert_eq(lbenv_check_cookie("cookie ", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_lines(NULL, NULL), ST_OK);
    cr_assert_eq(lbenv_check_lines("option forwardfor\n\nhttp-check expect status 200", NULL),
                 ST_OK);
    cr_assert_eq(lbenv_check_lines("defaults", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_lines("backendx y", NULL), ST_OK, "only the whole first word counts");
    cr_assert_eq(lbenv_check_basic_auth("user a password $5$x\ngroup g users a", NULL), ST_OK);
    cr_assert_eq(lbenv_check_basic_auth("user", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_name("web-1.x_y", NULL), ST_OK);
    cr_assert_eq(lbenv_check_name("", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_name("a b", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_name("a/b", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream("10.81.0.5:80", NULL), ST_OK);
    cr_assert_eq(lbenv_check_upstream("[fd00::1]:8080", NULL), ST_OK);
    cr_assert_eq(lbenv_check_upstream("10.81.0.5", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream("10.81.0.5:0", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream("host:80", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream(":80", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream("[]:80", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_upstream("10.0.0.1 check:80", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_uri("/health?x=1", NULL), ST_OK);
    cr_assert_eq(lbenv_check_uri("health", NULL), ST_INVALID);
    cr_assert_eq(lbenv_check_uri("/a b", NULL), ST_INVALID);
}

Test(lbenv, is_lb_and_get)
{
    json_t *env = json_pack("[s,s,i]", "KONTENA_SERVICE_ROLE=lb", "X=1", 5);
    json_t *plain = json_pack("[s]", "KONTENA_SERVICE_ROLE=web");

    cr_assert(lbenv_is_lb("kontena/lb:latest", NULL));
    cr_assert(lbenv_is_lb("registry.local/kontena/lb", plain));
    cr_assert(lbenv_is_lb("custom/haproxy", env));
    cr_assert_not(lbenv_is_lb("custom/haproxy", plain));
    cr_assert_not(lbenv_is_lb(NULL, NULL));
    cr_assert_str_eq(lbenv_get_json(env, "X"), "1");
    cr_assert_null(lbenv_get_json(env, "KONTENA"));
    json_decref(env);
    json_decref(plain);
}

Test(lbenv, parse_json_ignores_non_strings)
{
    json_t *env = json_pack("[s,i,n,s]", "KONTENA_LB_MODE=tcp", 1, "KONTENA_LB_EXTERNAL_PORT=22");
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;

    cr_assert_eq(lbenv_parse_json(&lb, env, "db", &e), ST_OK, "%s", e.msg);
    cr_assert_eq(lb.mode, LB_MODE_TCP);
    cr_assert_eq(lb.external_port, 22);
    lbenv_release(&lb);
    cr_assert_eq(lbenv_parse_json(&lb, NULL, "db", &e), ST_OK);
    lbenv_release(&lb);
    json_decref(env);
}

Test(lbenv, port_clash)
{
    json_t *lbenv_json = json_pack("[s]", "KONTENA_LB_HTTP_PORT=8080");
    struct lbenv_lb_ports ports;
    struct err e = ERR_INIT;
    struct lbenv_tcp_use ok[] = {{"db/a", 5000}, {"db/b", 5001}};
    struct lbenv_tcp_use dup[] = {{"db/a", 5000}, {"db/b", 5001}, {"db/c", 5000}};
    struct lbenv_tcp_use own[] = {{"db/a", 443}};

    lbenv_lb_ports(lbenv_json, &ports);
    cr_assert_eq(ports.http, 8080);
    cr_assert_eq(ports.https, 443);
    cr_assert_eq(ports.stats, 1000);
    cr_assert_eq(lbenv_check_port_clash("infra/lb", &ports, ok, 2, &e), ST_OK);
    cr_assert_eq(lbenv_check_port_clash("infra/lb", &ports, dup, 3, &e), ST_CONFLICT);
    cr_assert_str_eq(e.msg, "port clash on load balancer 'infra/lb': services 'db/a' and 'db/c' "
                            "both use KONTENA_LB_EXTERNAL_PORT 5000");
    cr_assert_eq(lbenv_check_port_clash("infra/lb", NULL, own, 1, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "service 'db/a' uses KONTENA_LB_EXTERNAL_PORT 443, the load "
                            "balancer's own https port"),
              "%s", e.msg);
    struct lbenv_tcp_use eighty[] = {{"db/a", 80}};
    cr_assert_eq(lbenv_check_port_clash("lb", &ports, eighty, 1, &e), ST_OK,
                 "the LB's http port was moved to 8080");
    cr_assert_eq(lbenv_check_port_clash("lb", NULL, eighty, 1, &e), ST_CONFLICT);
    json_decref(lbenv_json);
}

/* Bytes of every value never crash and a long value is refused, not truncated. */
Test(lbenv, hostile_input)
{
    char *big = xmalloc(LBENV_MAX_VALUE + 40);
    struct lbenv lb = LBENV_INIT;
    struct err e = ERR_INIT;
    char v[4] = {0};

    memcpy(big, "KONTENA_LB_CUSTOM_SETTINGS=", 27);
    memset(big + 27, 'a', LBENV_MAX_VALUE + 5);
    big[27 + LBENV_MAX_VALUE + 5] = '\0';
    const char *env[] = {big};
    cr_assert_eq(lbenv_parse(&lb, env, 1, "x", &e), ST_INVALID);
    cr_assert(strstr(e.msg, "longer than"), "%s", e.msg);
    free(big);
    for (int c = 1; c < 256; c++) {
        v[0] = (char)c;
        (void)lbenv_check_balance(v, NULL);
        (void)lbenv_check_virtual_hosts(v, NULL);
        (void)lbenv_check_virtual_paths(v, NULL);
        (void)lbenv_check_lines(v, NULL);
        (void)lbenv_check_cookie(v, NULL);
        (void)lbenv_check_basic_auth(v, NULL);
        (void)lbenv_check_upstream(v, NULL);
        (void)lbenv_check_name(v, NULL);
        (void)lbenv_check_uri(v, NULL);
    }
    cr_assert_eq(lbenv_check_name("\x01", NULL), ST_INVALID);
}

/* {"id", "image", "env", "links", "changed"} */
static json_t *svc(const char *id, const char *image, json_t *env, const char *link, int changed)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:b}", "id", id, "image", image, "env",
                     env ? env : json_array(), "links",
                     link ? json_pack("[s]", link) : json_array(), "changed", changed);
}

Test(lbenv_set, values_of_changed_services_only)
{
    json_t *set =
        json_pack("[o,o,o]", svc("infra/lb", "kontena/lb:latest", NULL, NULL, 0),
                  svc("old", "nginx", json_pack("[s]", "KONTENA_LB_MODE=udp"), "infra/lb", 0),
                  svc("web/api", "nginx", json_pack("[s]", "KONTENA_LB_MODE=http"), "infra/lb", 1));
    struct err e = ERR_INIT;
    const char *who = "x";

    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_OK, "%s", e.msg);
    cr_assert_null(who);
    json_array_append_new(
        set, svc("web/bad", "nginx", json_pack("[s]", "KONTENA_LB_VIRTUAL_HOSTS=a b"), NULL, 1));
    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_INVALID);
    cr_assert_str_eq(who, "web/bad");
    cr_assert(strstr(e.msg, "service 'web/bad': KONTENA_LB_VIRTUAL_HOSTS: invalid virtual host"),
              "%s", e.msg);
    json_decref(set);
}

Test(lbenv_set, lb_own_settings)
{
    json_t *set = json_pack(
        "[o]",
        svc("lb", "custom/haproxy",
            json_pack("[s,s]", "KONTENA_SERVICE_ROLE=lb", "KONTENA_LB_HTTP_PORT=http"), NULL, 1));
    struct err e = ERR_INIT;
    const char *who = NULL;

    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_INVALID);
    cr_assert_str_eq(who, "lb");
    cr_assert(strstr(e.msg, "service 'lb': KONTENA_LB_HTTP_PORT: 'http' is not a port"), "%s",
              e.msg);
    json_decref(set);
}

Test(lbenv_set, port_clashes)
{
    json_t *tcp = json_pack("[s]", "KONTENA_LB_MODE=tcp");
    json_t *set = json_pack("[o,o,o,o]", svc("infra/lb", "kontena/lb", NULL, NULL, 0),
                            svc("other/lb", "kontena/lb", NULL, NULL, 0),
                            svc("db/a", "mysql", json_deep_copy(tcp), "infra/lb", 0),
                            svc("db/b", "mysql", json_deep_copy(tcp), "other/lb", 1));
    struct err e = ERR_INIT;
    const char *who = NULL;

    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_OK, "different LBs: %s", e.msg);
    json_array_append_new(set, svc("db/c", "mysql", json_deep_copy(tcp), "infra/lb", 1));
    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_CONFLICT);
    cr_assert_str_eq(who, "db/c");
    cr_assert_str_eq(e.msg, "port clash on load balancer 'infra/lb': services 'db/a' and 'db/c' "
                            "both use KONTENA_LB_EXTERNAL_PORT 5000");
    /* only the first link to a load balancer counts; an http service has no port */
    json_array_remove(set, 4);
    json_array_append_new(set, svc("db/d", "mysql", NULL, "infra/lb", 1));
    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_OK, "%s", e.msg);
    /* the LB itself changes its http port onto a tcp service's port */
    json_array_append_new(
        set, svc("db/e", "mysql",
                 json_pack("[s,s]", "KONTENA_LB_MODE=tcp", "KONTENA_LB_EXTERNAL_PORT=8080"),
                 "other/lb", 0));
    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_OK, "%s", e.msg);
    json_array_set_new(
        set, 1,
        svc("other/lb", "kontena/lb", json_pack("[s]", "KONTENA_LB_HTTP_PORT=8080"), NULL, 1));
    cr_assert_eq(lbenv_check_set(set, &who, &e), ST_CONFLICT);
    cr_assert_str_eq(who, "other/lb");
    cr_assert(strstr(e.msg, "service 'db/e' uses KONTENA_LB_EXTERNAL_PORT 8080, the load "
                            "balancer's own http port"),
              "%s", e.msg);
    cr_assert_eq(lbenv_check_set(NULL, NULL, &e), ST_OK);
    json_decref(tcp);
    json_decref(set);
}

/* Every accepted line was checked with haproxy 2.6's -c; every refused one fails it. */
Test(lbenv, cookie_options_as_haproxy_takes_them)
{
    const char *good[] = {"",
                          "cookie S insert indirect nocache",
                          "cookie S prefix",
                          "cookie SRV insert domain .a.com maxidle 30m maxlife 1h httponly "
                          "secure attr SameSite=Lax",
                          "cookie S rewrite maxidle 30",
                          "cookie S preserve indirect",
                          "cookie S insert dynamic",
                          "cookie S insert insert",
                          "cookie S",
                          "cookie S postonly"};
    const char *nope[] = {"cookie",
                          "cookie S foo",
                          "cookie S insert prefix",
                          "cookie S rewrite preserve",
                          "cookie S insert maxidle x",
                          "cookie S attr",
                          "cookie S domain",
                          "cookie S insert attr a;b",
                          "cookie S=x insert",
                          "cookie 'S' insert",
                          "cookie S insert # x"};
    struct err e = ERR_INIT;

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_assert_eq(lbenv_check_cookie(good[i], &e), ST_OK, "'%s' refused: %s", good[i], e.msg);
    for (size_t i = 0; i < sizeof(nope) / sizeof(*nope); i++)
        cr_assert_eq(lbenv_check_cookie(nope[i], NULL), ST_INVALID, "'%s' accepted", nope[i]);
    cr_assert_eq(lbenv_check_cookie("cookie S insert prefix", &e), ST_INVALID);
    cr_assert(strstr(e.msg, "cookie modes 'insert' and 'prefix' cannot be combined"), "%s", e.msg);
}

Test(lbenv, userlists_as_haproxy_takes_them)
{
    const char *good[] = {"user a insecure-password b", "user a password $5$abc$def", "user a",
                          "user a insecure-password b groups g1,g2\ngroup g1\ngroup g2 users a",
                          "\n  user admin insecure-password s3cr3t!\n\n"};
    const char *nope[] = {"user a pass b",
                          "user a insecure-password",
                          "user a insecure-password 'b c'",
                          "user a insecure-password b#c",
                          "user a,b",
                          "group g users",
                          "group g members a",
                          "admin:secret"};
    struct err e = ERR_INIT;

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        cr_assert_eq(lbenv_check_basic_auth(good[i], &e), ST_OK, "'%s' refused: %s", good[i],
                     e.msg);
    for (size_t i = 0; i < sizeof(nope) / sizeof(*nope); i++)
        cr_assert_eq(lbenv_check_basic_auth(nope[i], NULL), ST_INVALID, "'%s' accepted", nope[i]);
    cr_assert_eq(lbenv_check_basic_auth("user a insecure-password b groups g1", &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "a user is in group 'g1', which no 'group' line declares");
    cr_assert_eq(lbenv_check_basic_auth("group g1 users a", &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "a group lists user 'a', which no 'user' line declares");
}

Test(lbenv, custom_lines_with_unmatched_quotes)
{
    struct err e = ERR_INIT;

    cr_assert_eq(lbenv_check_lines("http-request set-header X \"a\\\"b\"\n"
                                   "http-request set-header Y 'a\\'\n"
                                   "http-request set-header Z a # \"comment",
                                   &e),
                 ST_OK, "%s", e.msg);
    cr_assert_eq(lbenv_check_lines("option a\nhttp-request set-header X 'a b", &e), ST_INVALID);
    cr_assert_str_eq(e.msg, "line 'http-request set-header X 'a b' has an unmatched quote");
    cr_assert_eq(lbenv_check_lines("http-request set-header X \"a b", NULL), ST_INVALID);
}
