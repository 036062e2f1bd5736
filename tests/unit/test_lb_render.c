/* Unit tests for lb/render (the haproxy configuration of kontena-lb) and lb/certs.
 *
 * Golden configurations: the expected text of every section after `defaults` (global and
 * defaults are checked once, in render.global_and_defaults). Every rendered configuration
 * is also given to the real `haproxy -c` (Debian's /usr/sbin/haproxy, or $HAPROXY), which
 * must accept it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "lb/certs.h"
#include "lb/render.h"
#include "tests/support/proc.h"

#define KV(k, v) ((struct lb_kv){k, v})
#define KVS(...) ((const struct lb_kv[]){__VA_ARGS__})
#define NKVS(...) (sizeof((const struct lb_kv[]){__VA_ARGS__}) / sizeof(struct lb_kv))

static const char *haproxy_bin(void)
{
    const char *h = getenv("HAPROXY");
    return h && *h ? h : "/usr/sbin/haproxy";
}

static void settings(struct lb_settings *s)
{
    struct lb_settings init = LB_SETTINGS_INIT;
    *s = init;
    s->run_dir = xstrdup("/tmp/lbrender-run");
    s->certs_dir = xstrdup("/tmp/lbrender-run/certs");
    s->stats_password = xstrdup("secret");
}

/* The text after the defaults section. */
static const char *body(const char *text)
{
    const char *d = strstr(text, "\ndefaults\n");
    cr_assert_not_null(d, "no defaults section in:\n%s", text);
    for (const char *p = d + 10; *p; p = strchr(p, '\n') + 1) {
        if (p[0] != ' ')
            return p;
        if (!strchr(p, '\n'))
            break;
    }
    return "";
}

/* haproxy -c must accept text (certs_dir: a directory with a certificate, or NULL). */
static void haproxy_accepts(const char *text)
{
    char *dir, *cfg, *out = NULL, *err = NULL;
    FILE *f;
    int rc;

    if (access(haproxy_bin(), X_OK) != 0)
        cr_skip_test("no haproxy at %s", haproxy_bin());
    dir = proc_tempdir("lbrender");
    cfg = xasprintf("%s/haproxy.cfg", dir);
    f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    rc = proc_run((const char *const[]){haproxy_bin(), "-c", "-f", cfg, NULL}, NULL, NULL, &out,
                  &err);
    cr_assert_eq(rc, 0, "haproxy -c refuses:\n%s\n%s\n---\n%s", out, err, text);
    free(out);
    free(err);
    proc_rmtree(dir);
    free(dir);
    free(cfg);
}

static char *render(const struct lb_settings *s, const struct lb_kv *kvs, size_t n,
                    struct lb_render *r)
{
    lb_render(s, kvs, n, NULL, 0, r);
    cr_assert_not_null(r->text);
    cr_assert_eq(r->text[strlen(r->text) - 1], '\n');
    cr_assert_null(strstr(r->text, "\n\n"), "no blank line");
    return r->text;
}

static const char STATS[] = "listen stats\n"
                            "  bind 0.0.0.0:1000\n"
                            "  http-request use-service prometheus-exporter if { path /metrics }\n"
                            "  stats enable\n"
                            "  stats uri /\n"
                            "  stats refresh 10s\n"
                            "  stats auth stats:secret\n";

static void check_body(const struct lb_kv *kvs, size_t n, const char *want_before_stats)
{
    struct lb_settings s;
    struct lb_render r = LB_RENDER_INIT;
    char *want = xasprintf("%s%s", want_before_stats, STATS);

    settings(&s);
    render(&s, kvs, n, &r);
    cr_assert_str_eq(body(r.text), want, "got:\n%s\nwant:\n%s", body(r.text), want);
    cr_assert_eq(r.n_dropped, 0, "dropped: %s", r.n_dropped ? r.dropped[0] : "");
    haproxy_accepts(r.text);
    free(want);
    lb_render_release(&r);
    lb_settings_release(&s);
}

Test(render, global_and_defaults)
{
    struct lb_settings s;
    struct lb_render r = LB_RENDER_INIT;

    settings(&s);
    s.drop_privileges = 1;
    s.custom_settings = xstrdup("option dontlognull\n\n  timeout tunnel 1h  \n");
    s.global_settings = xstrdup("tune.bufsize 32768");
    render(&s, NULL, 0, &r);
    cr_assert_str_eq(
        r.text,
        "global\n"
        "  pidfile /tmp/lbrender-run/haproxy.pid\n"
        "  user nobody\n"
        "  group nogroup\n"
        "  maxconn 100000\n"
        "  log stdout format raw local0 info\n"
        "  tune.ssl.default-dh-param 2048\n"
        "  ssl-default-bind-ciphers "
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384\n"
        "  stats socket /tmp/lbrender-run/admin.sock mode 600 level admin expose-fd listeners\n"
        "  tune.bufsize 32768\n"
        "defaults\n"
        "  mode http\n"
        "  log global\n"
        "  option splice-auto\n"
        "  option http-keep-alive\n"
        "  option redispatch 1\n"
        "  option httplog\n"
        "  retries 3\n"
        "  retry-on conn-failure empty-response response-timeout\n"
        "  timeout http-request 5s\n"
        "  timeout queue 1m\n"
        "  timeout connect 5s\n"
        "  timeout client 1m\n"
        "  timeout server 1m\n"
        "  timeout http-keep-alive 10s\n"
        "  timeout check 10s\n"
        "  option dontlognull\n"
        "  timeout tunnel 1h\n"
        "listen stats\n"
        "  bind 0.0.0.0:1000\n"
        "  http-request use-service prometheus-exporter if { path /metrics }\n"
        "  stats enable\n"
        "  stats uri /\n"
        "  stats refresh 10s\n"
        "  stats auth stats:secret\n",
        "no backend, no certificate, no health URI: no frontend; got:\n%s", r.text);
    cr_assert_eq(r.n_backends, 0);
    haproxy_accepts(r.text);
    lb_render_release(&r);
    lb_render_release(&r);
    lb_render_release(NULL);
    lb_settings_release(&s);
}

Test(render, http_default_path)
{
    check_body(KVS(KV("services/web/balance", "roundrobin"), KV("services/web/virtual_path", "/"),
                   KV("services/web/upstreams/web-2", "10.81.0.3:80"),
                   KV("services/web/upstreams/web-1", "10.81.0.2:80")),
               4,
               "frontend http-in\n"
               "  bind *:80\n"
               "  http-request replace-header Host '^([^:\\[\\]]+):[0-9]+$' '\\1'\n"
               "  acl host_web_virtual_path path_beg /\n"
               "  use_backend web if host_web_virtual_path\n"
               "backend web\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "  server web-1 10.81.0.2:80 check\n"
               "  server web-2 10.81.0.3:80 check\n");
}

Test(render, hosts_paths_order_and_stripping)
{
    /* Groups: hosts+paths (both), then hosts only, then paths only; key order inside. */
    check_body(KVS(KV("services/d-paths/virtual_path", "/api, /v2/"),
                   KV("services/d-paths/upstreams/d.paths-1", "10.81.0.9:8080"),
                   KV("services/c-keep/virtual_path", "/keep"),
                   KV("services/c-keep/keep_virtual_path", "true"),
                   KV("services/b-hosts/virtual_hosts", "www.example.com,*.example.org"),
                   KV("services/b-hosts/upstreams/b.hosts-1", "10.81.0.8:80"),
                   KV("services/a-both/virtual_hosts", "api.example.com"),
                   KV("services/a-both/virtual_path", "/a.b+c"),
                   KV("services/a-both/upstreams/a.both-1", "[fd00::1]:80")),
               9,
               "frontend http-in\n"
               "  bind *:80\n"
               "  http-request replace-header Host '^([^:\\[\\]]+):[0-9]+$' '\\1'\n"
               "  acl host_a-both hdr(host) -i api.example.com\n"
               "  acl host_a-both_virtual_path path_beg /a.b+c\n"
               "  acl host_b-hosts hdr(host) -i www.example.com\n"
               "  acl host_b-hosts hdr_end(host) -i .example.org\n"
               "  acl host_c-keep_virtual_path path_beg /keep\n"
               "  acl host_d-paths_virtual_path path_beg /api\n"
               "  acl host_d-paths_virtual_path path_beg /v2/\n"
               "  use_backend a-both if host_a-both host_a-both_virtual_path\n"
               "  use_backend b-hosts if host_b-hosts\n"
               "  use_backend c-keep if host_c-keep_virtual_path\n"
               "  use_backend d-paths if host_d-paths_virtual_path\n"
               "backend a-both\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "  http-request replace-path '^(/a\\.b\\+c)/?(.*)' '/\\2'\n"
               "  server a.both-1 [fd00::1]:80 check\n"
               "backend b-hosts\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "  server b.hosts-1 10.81.0.8:80 check\n"
               "backend c-keep\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "backend d-paths\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "  http-request replace-path '^(/api|/v2)/?(.*)' '/\\2'\n"
               "  server d.paths-1 10.81.0.9:8080 check\n");
}

Test(render, tcp_services)
{
    check_body(KVS(KV("tcp-services/db-mysql/external_port", "3306"),
                   KV("tcp-services/db-mysql/custom_settings", "timeout client 1h\n"),
                   KV("tcp-services/db-mysql/upstreams/db.mysql-1", "10.81.0.5:3306"),
                   KV("tcp-services/db-redis/external_port", "6379"),
                   KV("tcp-services/db-redis/balance", "roundrobin"),
                   KV("tcp-services/db-redis/upstreams/db.redis-1", "10.81.0.6:6379"),
                   /* no upstream yet, or no port: not rendered (as the original) */
                   KV("tcp-services/db-empty/external_port", "5000"),
                   KV("tcp-services/db-noport/upstreams/x-1", "10.81.0.7:1")),
               8,
               "listen db-mysql\n"
               "  bind *:3306\n"
               "  mode tcp\n"
               "  timeout client 1h\n"
               "  balance leastconn\n"
               "  server db.mysql-1 10.81.0.5:3306 check\n"
               "listen db-redis\n"
               "  bind *:6379\n"
               "  mode tcp\n"
               "  balance roundrobin\n"
               "  server db.redis-1 10.81.0.6:6379 check\n");
}

Test(render, cookie_auth_custom_health_check)
{
    check_body(KVS(KV("services/a/cookie", ""), KV("services/a/upstreams/a-1", "10.0.0.1:80"),
                   KV("services/a/upstreams/a-2", "10.0.0.2:80"),
                   KV("services/b/cookie", "cookie SRV insert indirect nocache"),
                   KV("services/b/basic_auth_secrets",
                      "user admin insecure-password s3cret\n\nuser ro insecure-password x\n"),
                   KV("services/b/custom_settings", "  http-request set-header X-Lb kontena\n\n"
                                                    "timeout server 2m"),
                   KV("services/b/balance", "source"), KV("services/b/virtual_hosts", "b.test"),
                   KV("services/b/upstreams/b-1", "10.0.0.3:80"),
                   KV("services/c/health_check_uri", "/healthz"),
                   KV("services/c/health_check_port", "8081"), KV("services/c/virtual_path", "/c"),
                   KV("services/c/upstreams/c-1", "10.0.0.4:8080")),
               13,
               "frontend http-in\n"
               "  bind *:80\n"
               "  http-request replace-header Host '^([^:\\[\\]]+):[0-9]+$' '\\1'\n"
               "  acl host_b hdr(host) -i b.test\n"
               "  acl host_c_virtual_path path_beg /c\n"
               "  use_backend b if host_b\n"
               "  use_backend c if host_c_virtual_path\n"
               "backend a\n"
               "  option forwardfor\n"
               "  cookie KONTENA_SERVERID insert indirect nocache\n"
               "  balance roundrobin\n"
               "  server a-1 10.0.0.1:80 check cookie a-1\n"
               "  server a-2 10.0.0.2:80 check cookie a-2\n"
               "backend b\n"
               "  option forwardfor\n"
               "  http-request set-header X-Lb kontena\n"
               "  timeout server 2m\n"
               "  cookie SRV insert indirect nocache\n"
               "  balance source\n"
               "  acl auth_ok_b http_auth(auth_users_b)\n"
               "  http-request auth realm b if !auth_ok_b\n"
               "  server b-1 10.0.0.3:80 check cookie b-1\n"
               "userlist auth_users_b\n"
               "  user admin insecure-password s3cret\n"
               "  user ro insecure-password x\n"
               "backend c\n"
               "  option forwardfor\n"
               "  balance roundrobin\n"
               "  http-request replace-path '^(/c)/?(.*)' '/\\2'\n"
               "  option httpchk GET /healthz\n"
               "  server c-1 10.0.0.4:8080 check port 8081\n");
}

Test(render, certs_health_uri_accept_proxy)
{
    struct lb_settings s;
    struct lb_render r = LB_RENDER_INIT;
    char *dir, *certs, *out = NULL, *err = NULL;
    int rc;

    settings(&s);
    s.health_uri = xstrdup("/__health");
    s.accept_proxy = 1;
    s.http_port = 8080;
    s.https_port = 8443;
    render(&s, NULL, 0, &r);
    cr_assert_str_eq(body(r.text),
                     "frontend http-in\n"
                     "  bind *:8080 accept-proxy\n"
                     "  monitor-uri /__health\n"
                     "  http-request replace-header Host '^([^:\\[\\]]+):[0-9]+$' '\\1'\n"
                     "listen stats\n"
                     "  bind 0.0.0.0:1000\n"
                     "  http-request use-service prometheus-exporter if { path /metrics }\n"
                     "  stats enable\n"
                     "  stats uri /\n"
                     "  stats refresh 10s\n"
                     "  stats auth stats:secret\n",
                     "a health URI alone renders the frontend; got:\n%s", body(r.text));
    haproxy_accepts(r.text);
    lb_render_release(&r);

    /* With a certificate: the https bind, with and without h2. */
    dir = proc_tempdir("lbcerts");
    certs = xasprintf("%s/certs", dir);
    free(s.certs_dir);
    s.certs_dir = xstrdup(certs);
    s.have_certs = 1;
    s.accept_proxy = 0;
    render(&s, NULL, 0, &r);
    {
        char *want = xasprintf("frontend http-in\n"
                               "  bind *:8080\n"
                               "  bind *:8443 ssl crt %s/ no-sslv3 alpn h2,http/1.1\n"
                               "  http-request set-header X-Forwarded-Proto https if { ssl_fc }\n"
                               "  http-request set-header X-Forwarded-Port %%[dst_port] if { "
                               "ssl_fc }\n"
                               "  monitor-uri /__health\n",
                               certs);
        cr_assert_eq(strncmp(body(r.text), want, strlen(want)), 0, "got:\n%s\nwant:\n%s",
                     body(r.text), want);
        free(want);
    }
    lb_render_release(&r);
    s.http2 = 0;
    render(&s, NULL, 0, &r);
    cr_assert_not_null(strstr(r.text, "ssl crt "));
    cr_assert_null(strstr(r.text, "alpn"), "KONTENA_LB_HTTP2=false: no alpn");
    /* haproxy loads the directory: put a real certificate there. */
    if (access(haproxy_bin(), X_OK) == 0) {
        char *pem = xasprintf("%s/cert1_gen.pem", certs), *key = xasprintf("%s/k.pem", dir),
             *crt = xasprintf("%s/c.pem", dir), *cmd;
        cr_assert_eq(
            proc_run((const char *const[]){"mkdir", "-p", certs, NULL}, NULL, NULL, NULL, NULL), 0);
        rc =
            proc_run((const char *const[]){"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                                           "-out", crt, "-days", "2", "-subj", "/CN=lb.test", NULL},
                     NULL, NULL, &out, &err);
        cr_assert_eq(rc, 0, "openssl: %s", err);
        cmd = xasprintf("cat %s %s > %s", crt, key, pem);
        cr_assert_eq(proc_run((const char *const[]){"sh", "-c", cmd, NULL}, NULL, NULL, NULL, NULL),
                     0);
        haproxy_accepts(r.text);
        free(cmd);
        free(pem);
        free(key);
        free(crt);
        free(out);
        free(err);
    }
    lb_render_release(&r);
    proc_rmtree(dir);
    free(dir);
    free(certs);
    lb_settings_release(&s);
}

/* Same keys in any order: byte-identical text. */
Test(render, deterministic_in_any_order)
{
    const struct lb_kv kvs[] = {
        KV("services/web/virtual_hosts", "web.test"),
        KV("services/web/upstreams/web-3", "10.0.0.3:80"),
        KV("services/web/upstreams/web-1", "10.0.0.1:80"),
        KV("services/web/upstreams/web-2", "10.0.0.2:80"),
        KV("services/api/virtual_path", "/api"),
        KV("services/api-v2/virtual_path", "/v2"),
        KV("services/api/upstreams/api-1", "10.0.0.4:80"),
        KV("tcp-services/db/external_port", "5432"),
        KV("tcp-services/db/upstreams/db-1", "10.0.0.5:5432"),
        KV("unknown/key", "ignored"),
        KV("services/web/unknown_field", "ignored"),
    };
    size_t n = sizeof(kvs) / sizeof(kvs[0]);
    struct lb_kv shuffled[sizeof(kvs) / sizeof(kvs[0])];
    struct lb_settings s;
    struct lb_render first = LB_RENDER_INIT;

    settings(&s);
    render(&s, kvs, n, &first);
    cr_assert_eq(first.n_backends, 4);
    cr_assert_str_eq(first.backends[0], "api");
    cr_assert_str_eq(first.backends[1], "api-v2", "sorted by name, not by key");
    cr_assert_str_eq(first.backends[2], "web");
    cr_assert_str_eq(first.backends[3], "db", "tcp after http");
    srand(7);
    for (int round = 0; round < 50; round++) {
        struct lb_render r = LB_RENDER_INIT;
        memcpy(shuffled, kvs, sizeof(kvs));
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)rand() % (i + 1);
            struct lb_kv t = shuffled[i];
            shuffled[i] = shuffled[j];
            shuffled[j] = t;
        }
        render(&s, shuffled, n, &r);
        cr_assert_str_eq(r.text, first.text, "round %d differs", round);
        lb_render_release(&r);
    }
    haproxy_accepts(first.text);
    lb_render_release(&first);
    lb_settings_release(&s);
}

static int dropped_has(const struct lb_render *r, const char *what)
{
    for (size_t i = 0; i < r->n_dropped; i++)
        if (strstr(r->dropped[i], what))
            return 1;
    return 0;
}

/* Keys written by hand with values the install-time validation would have refused: the
 * backend is left out (with a message), the rest of the configuration is rendered, and
 * haproxy accepts it. */
Test(render, bad_values_dropped)
{
    const struct lb_kv kvs[] = {
        KV("services/good/upstreams/good-1", "10.0.0.1:80"),
        KV("services/good/upstreams/bad-addr", "10.0.0.1:80\n  server evil 1.2.3.4:80"),
        KV("services/good/upstreams/bad name", "10.0.0.2:80"),
        KV("services/b-balance/balance", "fastest"),
        KV("services/b-vhost/virtual_hosts", "bad host.com"),
        KV("services/b-path/virtual_path", "api"),
        KV("services/b-custom/custom_settings", "option x\nbackend evil"),
        KV("services/b-ctrl/custom_settings", "option x\rfoo"),
        KV("services/b-cookie/cookie", "nocookie\nserver x"),
        KV("services/b-auth/basic_auth_secrets", "frontend evil"),
        KV("services/b-keep/keep_virtual_path", "maybe"),
        KV("services/b-hc/health_check_uri", "healthz"),
        KV("services/b-hcport/health_check_port", "70000"),
        KV("services/stats/virtual_path", "/stats"),
        KV("services/bad$name/virtual_path", "/x"),
        /* tcp: its port is the LB's http port; two on one port (the first by name stays);
         * an http service of the same name */
        KV("tcp-services/t-http/external_port", "80"),
        KV("tcp-services/t-http/upstreams/t-1", "10.0.0.3:1"),
        KV("tcp-services/t-a/external_port", "5000"),
        KV("tcp-services/t-a/upstreams/t-1", "10.0.0.3:1"),
        KV("tcp-services/t-b/external_port", "5000"),
        KV("tcp-services/t-b/upstreams/t-1", "10.0.0.3:1"),
        KV("tcp-services/t-c/external_port", "0"),
        KV("tcp-services/t-c/upstreams/t-1", "10.0.0.3:1"),
        KV("tcp-services/good/external_port", "6000"),
        KV("tcp-services/good/upstreams/t-1", "10.0.0.3:1"),
    };
    struct lb_settings s;
    struct lb_render r = LB_RENDER_INIT;
    static const char *const want_dropped[] = {
        "upstream 'bad-addr' of backend 'good'",
        "upstream 'bad name' of backend 'good'",
        "backend 'b-balance' (services): balance:",
        "backend 'b-vhost' (services): virtual_hosts:",
        "backend 'b-path' (services): virtual_path:",
        "backend 'b-custom' (services): custom_settings:",
        "backend 'b-ctrl' (services): custom_settings:",
        "backend 'b-cookie' (services): cookie:",
        "backend 'b-auth' (services): basic_auth_secrets:",
        "backend 'b-keep' (services): keep_virtual_path:",
        "backend 'b-hc' (services): health_check_uri:",
        "backend 'b-hcport' (services): health_check_port:",
        "backend 'stats' (services): name:",
        "backend 'bad$name' (services): name:",
        "backend 't-http' (tcp-services): port clash: external_port 80",
        "backend 't-b' (tcp-services): port clash: external_port 5000 is already used by 't-a'",
        "backend 't-c' (tcp-services): external_port:",
        "backend 'good' (tcp-services): the service is also under services/",
    };

    settings(&s);
    render(&s, kvs, sizeof(kvs) / sizeof(kvs[0]), &r);
    for (size_t i = 0; i < sizeof(want_dropped) / sizeof(want_dropped[0]); i++)
        cr_expect(dropped_has(&r, want_dropped[i]), "no message '%s'", want_dropped[i]);
    cr_assert_eq(r.n_dropped, sizeof(want_dropped) / sizeof(want_dropped[0]), "%zu messages",
                 r.n_dropped);
    cr_assert_eq(r.n_backends, 2, "good and t-a stay");
    cr_assert_str_eq(r.backends[0], "good");
    cr_assert_str_eq(r.backends[1], "t-a");
    cr_assert_null(strstr(r.text, "evil"));
    cr_assert_null(strstr(r.text, "b-"));
    cr_assert_not_null(strstr(r.text, "  server good-1 10.0.0.1:80 check\n"));
    cr_assert_null(strstr(r.text, "bad-addr"));
    haproxy_accepts(r.text);
    lb_render_release(&r);

    /* The caller's skip list (backends haproxy refused) leaves a backend out silently. */
    lb_render(&s, kvs, sizeof(kvs) / sizeof(kvs[0]), (const char *const[]){"good"}, 1, &r);
    cr_assert_eq(r.n_backends, 1);
    cr_assert_str_eq(r.backends[0], "t-a");
    lb_render_release(&r);
    lb_settings_release(&s);
}

Test(render, line_owner)
{
    struct lb_settings s;
    struct lb_render r = LB_RENDER_INIT;
    size_t line = 0;
    const char *p;

    settings(&s);
    render(&s,
           KVS(KV("services/a/virtual_path", "/a"), KV("services/b/custom_settings", "foo bar"),
               KV("services/b/virtual_path", "/b")),
           3, &r);
    cr_assert_null(lb_render_line_backend(&r, 0));
    cr_assert_null(lb_render_line_backend(&r, 1), "global is the LB's own");
    cr_assert_null(lb_render_line_backend(&r, r.n_lines + 1));
    for (p = r.text; *p; p = strchr(p, '\n') + 1) {
        line++;
        if (strncmp(p, "  foo bar\n", 10) == 0)
            break;
    }
    cr_assert_str_eq(lb_render_line_backend(&r, line), "b");
    cr_assert_str_eq(lb_render_line_backend(&r, line - 2), "b", "backend b's own line");
    for (line = 0, p = r.text; *p; p = strchr(p, '\n') + 1) {
        line++;
        if (strncmp(p, "  acl host_a_virtual_path", 25) == 0)
            break;
    }
    cr_assert_str_eq(lb_render_line_backend(&r, line), "a", "frontend lines of a");
    lb_render_release(&r);
    lb_settings_release(&s);
}

struct envtab {
    const char *const *kv; /* NULL-terminated "K=V" */
};

static const char *tab_get(void *arg, const char *name)
{
    struct envtab *t = arg;
    size_t l = strlen(name);
    for (const char *const *p = t->kv; *p; p++)
        if (strncmp(*p, name, l) == 0 && (*p)[l] == '=')
            return *p + l + 1;
    return NULL;
}

static enum status from_env(struct lb_settings *s, struct err *e, const char *const *kv)
{
    struct envtab t = {kv};
    struct lb_settings init = LB_SETTINGS_INIT;
    *s = init;
    return lb_settings_from_env(s, tab_get, &t, "/run/lb", e);
}

Test(settings, from_env)
{
    struct lb_settings s;
    struct err e = ERR_INIT;

    cr_assert_eq(from_env(&s, &e, (const char *const[]){NULL}), ST_OK, "%s", e.msg);
    cr_assert_eq(s.http_port, 80);
    cr_assert_eq(s.https_port, 443);
    cr_assert_eq(s.stats_port, 1000);
    cr_assert_str_eq(s.stats_password, "secret");
    cr_assert_str_eq(s.certs_dir, "/run/lb/certs");
    cr_assert_eq(s.http2, 1);
    cr_assert_eq(s.accept_proxy, 0);
    cr_assert_null(s.health_uri);
    lb_settings_release(&s);

    cr_assert_eq(
        from_env(&s, &e,
                 (const char *const[]){"KONTENA_LB_HTTP_PORT=8080", "KONTENA_LB_STATS_PORT=8081",
                                       "KONTENA_LB_HEALTH_URI=/health", "KONTENA_LB_HTTP2=false",
                                       "KONTENA_LB_ACCEPT_PROXY=", "STATS_PASSWORD=pw", NULL}),
        ST_OK, "%s", e.msg);
    cr_assert_eq(s.http_port, 8080);
    cr_assert_eq(s.stats_port, 8081);
    cr_assert_str_eq(s.health_uri, "/health");
    cr_assert_eq(s.http2, 0);
    cr_assert_eq(s.accept_proxy, 1, "any value, even empty");
    cr_assert_str_eq(s.stats_password, "pw");
    lb_settings_release(&s);

    cr_assert_eq(from_env(&s, &e, (const char *const[]){"KONTENA_LB_HTTP_PORT=0", NULL}),
                 ST_INVALID);
    cr_assert(strstr(e.msg, "KONTENA_LB_HTTP_PORT"), "%s", e.msg);
    cr_assert_eq(from_env(&s, &e, (const char *const[]){"KONTENA_LB_STATS_PORT=80", NULL}),
                 ST_INVALID);
    cr_assert(strstr(e.msg, "must differ"), "%s", e.msg);
    cr_assert_eq(from_env(&s, &e, (const char *const[]){"KONTENA_LB_HEALTH_URI=health", NULL}),
                 ST_INVALID);
    cr_assert(strstr(e.msg, "KONTENA_LB_HEALTH_URI"), "%s", e.msg);
    cr_assert_eq(from_env(&s, &e, (const char *const[]){"STATS_PASSWORD=a b", NULL}), ST_INVALID);
    cr_assert(strstr(e.msg, "STATS_PASSWORD"), "%s", e.msg);
    cr_assert_eq(from_env(&s, &e, (const char *const[]){"KONTENA_LB_GLOBAL_SETTINGS=a\x01", NULL}),
                 ST_INVALID);
    cr_assert(strstr(e.msg, "KONTENA_LB_GLOBAL_SETTINGS"), "%s", e.msg);
    cr_assert_eq(
        from_env(&s, &e, (const char *const[]){"KONTENA_LB_CUSTOM_SETTINGS=frontend x", NULL}),
        ST_INVALID);
    cr_assert(strstr(e.msg, "KONTENA_LB_CUSTOM_SETTINGS"), "%s", e.msg);
    lb_settings_release(NULL);
}

static const char FAKE_KEY_END[] = "-----END PRIVATE KEY-----";

Test(certs, split)
{
    char **b;
    size_t n;
    char *pem = xasprintf("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
                          "-----BEGIN PRIVATE KEY-----\nBBB\n%s\n"
                          "-----BEGIN CERTIFICATE-----\nCCC\n-----END CERTIFICATE-----\n"
                          "-----BEGIN EC PRIVATE KEY-----\nDDD\n-----END EC PRIVATE KEY-----"
                          "\n\n  \ntrailing junk\n",
                          FAKE_KEY_END);

    lb_certs_split(pem, &b, &n);
    cr_assert_eq(n, 3, "two bundles and the junk tail, got %zu", n);
    cr_assert(strstr(b[0], "AAA") && strstr(b[0], "BBB") && !strstr(b[0], "CCC"));
    cr_assert(strstr(b[1], "CCC") && strstr(b[1], "DDD"));
    cr_assert_eq(strcmp(b[1] + strlen(b[1]) - 29, "-----END EC PRIVATE KEY-----\n"), 0,
                 "a bundle ends with its key line: '%s'", b[1]);
    cr_assert(strstr(b[2], "trailing junk"));
    cr_assert_eq(lb_cert_valid(b[0]), 0, "not a real certificate");
    lb_certs_free(b, n);
    lb_certs_split("\n\n", &b, &n);
    cr_assert_eq(n, 0);
    lb_certs_free(b, n);
    free(pem);
}

Test(certs, write_real_certificate)
{
    char *dir = proc_tempdir("lbcertw"), *key = xasprintf("%s/k.pem", dir),
         *crt = xasprintf("%s/c.pem", dir), *out = NULL, *err = NULL, *bundle, *certs,
         **warnings = NULL;
    size_t nw = 0;
    int written = 0, rc;
    struct err e = ERR_INIT;
    FILE *f;
    char buf[8192];
    size_t l1, l2;

    rc = proc_run((const char *const[]){"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
                                        crt, "-days", "2", "-subj", "/CN=lb.test", NULL},
                  NULL, NULL, &out, &err);
    cr_assert_eq(rc, 0, "openssl: %s", err);
    f = fopen(crt, "r");
    l1 = fread(buf, 1, sizeof(buf) / 2, f);
    fclose(f);
    f = fopen(key, "r");
    l2 = fread(buf + l1, 1, sizeof(buf) / 2 - 1, f);
    fclose(f);
    buf[l1 + l2] = 0;
    cr_assert_eq(lb_cert_valid(buf), 1);
    bundle = xasprintf("SSL_CERTS=%s%s", buf, buf); /* two bundles */
    {
        char *one = xasprintf("SSL_CERT_example=%s", buf);
        const char *env[] = {"PATH=/bin", bundle, one, "SSL_CERT_bad=nothing",
                             "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"};
        certs = xasprintf("%s/certs", dir);
        cr_assert_eq(lb_certs_write(certs, env, 5, &written, &warnings, &nw, &e), ST_OK, "%s",
                     e.msg);
        free(one);
    }
    cr_assert_eq(written, 3);
    cr_assert_eq(nw, 1, "SSL_CERT_bad is reported, SSL_CERT_FILE is OpenSSL's");
    cr_assert(strstr(warnings[0], "SSL_CERT_bad"), "%s", warnings[0]);
    {
        char *p1 = xasprintf("%s/cert1_gen.pem", certs), *p2 = xasprintf("%s/cert2_gen.pem", certs),
             *p3 = xasprintf("%s/SSL_CERT_example.pem", certs);
        cr_assert_eq(access(p1, R_OK), 0);
        cr_assert_eq(access(p2, R_OK), 0);
        cr_assert_eq(access(p3, R_OK), 0);
        lb_certs_free(warnings, nw);
        /* Written again without certificates: the old files are gone. */
        cr_assert_eq(
            lb_certs_write(certs, (const char *const[]){"A=b"}, 1, &written, &warnings, &nw, &e),
            ST_OK);
        cr_assert_eq(written, 0);
        cr_assert_neq(access(p1, F_OK), 0);
        free(p1);
        free(p2);
        free(p3);
    }
    lb_certs_free(warnings, nw);
    proc_rmtree(dir);
    free(dir);
    free(key);
    free(crt);
    free(out);
    free(err);
    free(bundle);
    free(certs);
}

/* Servers added or removed and nothing else: runtime API commands; anything else: none. */
Test(render, runtime_cmds)
{
    struct lb_settings s;
    struct lb_render a = LB_RENDER_INIT, b = LB_RENDER_INIT, c = LB_RENDER_INIT, d = LB_RENDER_INIT;
    char *cmds;

    settings(&s);
    render(&s,
           KVS(KV("services/web/virtual_path", "/"),
               KV("services/web/upstreams/w-1", "10.0.0.1:80"),
               KV("services/web/upstreams/w-2", "10.0.0.2:80")),
           3, &a);
    render(&s,
           KVS(KV("services/web/virtual_path", "/"),
               KV("services/web/upstreams/w-1", "10.0.0.1:80"),
               KV("services/web/upstreams/w-3", "10.0.0.3:80")),
           3, &b);
    cmds = lb_render_runtime_cmds(&a, &b);
    cr_assert_str_eq(cmds,
                     "add server web/w-3 10.0.0.3:80 check;enable server web/w-3;enable health "
                     "web/w-3;set server web/w-2 state maint");
    free(cmds);
    cr_assert_null(lb_render_runtime_cmds(&a, &a), "nothing changed");
    render(&s,
           KVS(KV("services/web/virtual_path", "/"),
               KV("services/web/upstreams/w-1", "10.0.0.9:80"),
               KV("services/web/upstreams/w-2", "10.0.0.2:80")),
           3, &c);
    cr_assert_null(lb_render_runtime_cmds(&a, &c), "same name, new address: reload only");
    render(
        &s,
        KVS(KV("services/web/virtual_path", "/x"), KV("services/web/upstreams/w-1", "10.0.0.1:80")),
        2, &d);
    cr_assert_null(lb_render_runtime_cmds(&a, &d), "more than servers changed");
    cr_assert_null(lb_render_runtime_cmds(NULL, &d));
    lb_render_release(&a);
    lb_render_release(&b);
    lb_render_release(&c);
    lb_render_release(&d);
    lb_settings_release(&s);
}

/* Random keys and values (control characters, quotes, '#', section keywords, newlines):
 * the renderer never crashes, and nothing it renders opens a section it did not mean to or
 * carries a control character. */
Test(render, random_input_is_safe)
{
    static const char *const fields[] = {"balance",
                                         "virtual_hosts",
                                         "virtual_path",
                                         "keep_virtual_path",
                                         "cookie",
                                         "basic_auth_secrets",
                                         "custom_settings",
                                         "health_check_uri",
                                         "health_check_port",
                                         "external_port",
                                         "upstreams/a-1",
                                         "upstreams/b-2",
                                         "upstreams/",
                                         "",
                                         "x/y"};
    static const char *const pieces[] = {
        "roundrobin",
        "leastconn",
        "/api",
        "*.x.test",
        "a.test",
        "true",
        "80",
        "5000",
        "10.0.0.1:80",
        "[::1]:80",
        "cookie X insert",
        "user a insecure-password b",
        "\n",
        "\r",
        "\t",
        " ",
        "'",
        "\"",
        "#",
        "\\",
        "backend evil",
        "frontend",
        "listen x",
        "global",
        "option httplog",
        ",",
        "/",
        ":",
        "\x01",
        "\x7f",
        "é",
        "$",
        "%",
    };
    static const char *const svcs[] = {"web", "api", "stats", "a b", "", "x/y", "t-1"};
    struct lb_settings s;
    size_t rendered = 0, dropped = 0;

    settings(&s);
    srand(12345);
    for (int round = 0; round < 300; round++) {
        struct lb_kv kvs[24];
        char *keys[24], *vals[24];
        size_t n = (size_t)(rand() % 24);
        struct lb_render r = LB_RENDER_INIT;

        for (size_t i = 0; i < n; i++) {
            char v[256] = "";
            int parts = rand() % 5;
            keys[i] = xasprintf("%s/%s/%s", rand() % 3 ? "services" : "tcp-services",
                                svcs[rand() % (int)(sizeof(svcs) / sizeof(svcs[0]))],
                                fields[rand() % (int)(sizeof(fields) / sizeof(fields[0]))]);
            for (int p = 0; p < parts; p++)
                strncat(v, pieces[rand() % (int)(sizeof(pieces) / sizeof(pieces[0]))],
                        sizeof(v) - strlen(v) - 1);
            vals[i] = xstrdup(v);
            kvs[i].key = keys[i];
            kvs[i].value = vals[i];
        }
        lb_render(&s, kvs, n, NULL, 0, &r);
        rendered += r.n_backends;
        dropped += r.n_dropped;
        for (const char *p = r.text; *p; p++)
            cr_assert(*p == '\n' || (unsigned char)*p >= ' ', "control character in:\n%s", r.text);
        for (const char *p = r.text; *p; p = strchr(p, '\n') + 1) {
            if (p[0] == ' ')
                continue;
            /* A section header: one of ours, naming a rendered backend. */
            int ok = !strncmp(p, "global\n", 7) || !strncmp(p, "defaults\n", 9) ||
                     !strncmp(p, "frontend http-in\n", 17) || !strncmp(p, "listen stats\n", 13);
            for (size_t b = 0; !ok && b < r.n_backends; b++) {
                char *h1 = xasprintf("backend %s\n", r.backends[b]),
                     *h2 = xasprintf("listen %s\n", r.backends[b]),
                     *h3 = xasprintf("userlist auth_users_%s\n", r.backends[b]);
                ok = !strncmp(p, h1, strlen(h1)) || !strncmp(p, h2, strlen(h2)) ||
                     !strncmp(p, h3, strlen(h3));
                free(h1);
                free(h2);
                free(h3);
            }
            cr_assert(ok, "unexpected section line '%.*s' in:\n%s", (int)strcspn(p, "\n"), p,
                      r.text);
        }
        lb_render_release(&r);
        for (size_t i = 0; i < n; i++) {
            free(keys[i]);
            free(vals[i]);
        }
    }
    cr_assert_gt(rendered, 20, "the random input rendered only %zu backends", rendered);
    cr_assert_gt(dropped, 20, "the random input dropped only %zu backends", dropped);
    lb_settings_release(&s);
}
