/* kontena-lbconfig against a real etcd, one of each per test. The test writes service keys
 * (as the API server does), instance keys (as the scheduler does) and observed keys (as the
 * agents do) and checks the exact keys and values under /kontena/haproxy/<grid>/
 * (reference networking-lb-health.md §7.2, contract of issue 7). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static struct etcd_proc ep;
static struct etcd *ec;
static struct ctl_proc lc[2];
static char *dir;

#define HAP "/kontena/haproxy/lab/"

static void setup(void)
{
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_proc_start(&ep), 0, "cannot start etcd");
    o.endpoints = ep.endpoint;
    ec = etcd_create(&o, &e);
    cr_assert_not_null(ec, "%s", e.msg);
    dir = proc_tempdir("lbconfig");
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (lc[i].log)
            ctl_proc_cleanup(&lc[i]);
    etcd_destroy(ec);
    ec = NULL;
    etcd_proc_cleanup(&ep);
    if (dir)
        proc_rmtree(dir);
    FREE_AND_NULL(dir);
}

TestSuite(lbconfig, .init = setup, .fini = teardown, .timeout = 90);

/* Each test ends by stopping the running controllers and asserting a clean exit (status 0),
 * so a sanitizer report or a crash at shutdown fails the test. */
#define LTEST(name)                                                                                \
    static void name##_body(void);                                                                 \
    Test(lbconfig, name)                                                                           \
    {                                                                                              \
        name##_body();                                                                             \
        for (int i = 0; i < 2; i++) {                                                              \
            int st;                                                                                \
            if (!lc[i].pid)                                                                        \
                continue;                                                                          \
            st = ctl_proc_stop(&lc[i], SIGTERM);                                                   \
            if (st != 0)                                                                           \
                proc_dump_file(lc[i].log);                                                         \
            cr_assert_eq(st, 0, "kontena-lbconfig did not exit cleanly (status %d)", st);          \
        }                                                                                          \
    }                                                                                              \
    static void name##_body(void)

static void start(int replica)
{
    const char *extra[] = {"--resync-interval", "1s", NULL};

    cr_assert_eq(ctl_proc_start(&lc[replica], dir, "lbconfig", replica + 1, ep.endpoint, extra), 0,
                 "kontena-lbconfig did not start");
}

static void put(const char *key, json_t *val) /* steals val */
{
    char *s = json_dumps(val, JSON_COMPACT);
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_put(ec, key, s, strlen(s), 0, NULL, NULL, &e), ST_OK, "put %s: %s", key,
                 e.msg);
    free(s);
    json_decref(val);
}

static void del(const char *key)
{
    struct err e = ERR_INIT;

    cr_assert_eq(etcd_delete(ec, key, NULL, NULL, &e), ST_OK, "delete %s: %s", key, e.msg);
}

/* A service key as the API server stores it. stack "null" = the null stack. links: ids
 * ("lab/infra/lb") or NULL; env: a JSON array (stolen) or NULL. */
static void service(const char *stack, const char *name, const char *image, json_t *env,
                    const char *link, json_t *health_check)
{
    char *key = xasprintf("/kontena/services/lab/%s/%s", stack, name);
    char *id = xasprintf("lab/%s/%s", stack, name);
    json_t *links = json_array();

    if (link)
        json_array_append_new(links, json_pack("{s:s,s:s,s:s}", "id", link, "alias", "lb", "name",
                                               strrchr(link, '/') + 1));
    put(key, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:o,s:o,s:o*}", "id", id, "grid", "lab", "stack",
                       stack, "name", name, "image", image, "instances", 1, "env",
                       env ? env : json_array(), "links", links, "health_check", health_check));
    free(key);
    free(id);
}

/* An instance key (scheduler) and, when state is not NULL, its observed key (agent).
 * health: NULL (no check), "healthy" or "unhealthy". */
static void instance(const char *sid, const char *node, const char *container, const char *desired,
                     const char *state, const char *ip, const char *health)
{
    char *ikey = xasprintf("/kontena/instances/lab/%s/%s", node, container);
    char *okey = xasprintf("/kontena/observed/lab/%s/%s", node, container);

    put(ikey, json_pack("{s:s,s:s,s:i,s:s}", "service_id", sid, "grid", "lab", "revision", 1,
                        "desired_state", desired));
    if (state)
        put(okey, json_pack("{s:s,s:s,s:s*,s:o}", "state", state, "container_id", "abc", "ip", ip,
                            "health",
                            health ? json_pack("{s:s,s:i}", "status", health, "failures",
                                               strcmp(health, "healthy") ? 1 : 0)
                                   : json_null()));
    free(ikey);
    free(okey);
}

/* Everything under /kontena/haproxy/lab/ as {key relative to it: value}. */
static json_t *haproxy_keys(void)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r = {0};
    struct err e = ERR_INIT;
    json_t *out = json_object();

    cr_assert_eq(etcd_range(ec, HAP, &o, &r, &e), ST_OK, "%s", e.msg);
    for (size_t i = 0; i < r.n; i++)
        json_object_set_new(out, r.kvs[i].key + strlen(HAP),
                            json_stringn(r.kvs[i].value, r.kvs[i].value_len));
    etcd_range_result_release(&r);
    return out;
}

/* Wait up to ms for the keys under HAP to be exactly want (stolen); the ms it took. */
static int64_t expect_keys(json_t *want, int64_t ms)
{
    int64_t t0 = time_mono_ms(), end = t0 + ms;
    json_t *have = NULL;

    for (;;) {
        json_decref(have);
        have = haproxy_keys();
        if (json_equal(have, want) || time_mono_ms() > end)
            break;
        time_sleep_ms(20);
    }
    if (!json_equal(have, want)) {
        char *h = json_dumps(have, JSON_INDENT(1) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);
        for (int i = 0; i < 2; i++)
            if (lc[i].log)
                proc_dump_file(lc[i].log);
        cr_assert_fail("load balancer keys:\n%s\nwanted:\n%s", h, w);
    }
    json_decref(have);
    json_decref(want);
    return time_mono_ms() - t0;
}

/* kontena_lbconfig_invalid_services from replica 0's /metrics, -1 when absent. */
static int invalid_services(void)
{
    char *url = ctl_proc_url(&lc[0], "/metrics");
    struct http_reply r = {0};
    const char *m;
    int n = -1;

    cr_assert_eq(http_do("GET", url, NULL, NULL, 0, NULL, &r), 0);
    m = r.body ? strstr(r.body, "\nkontena_lbconfig_invalid_services ") : NULL;
    if (m)
        n = atoi(m + strlen("\nkontena_lbconfig_invalid_services "));
    http_reply_release(&r);
    free(url);
    return n;
}

/* How many times needle occurs in the file at path. */
static int count_in_log(const char *path, const char *needle)
{
    char *s = proc_read_file(path);
    int n = 0;

    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(s);
    return n;
}

static void lb_null_stack(void)
{
    service("null", "lb", "kontena/lb:latest", NULL, NULL, NULL);
}

LTEST(http_backend_with_defaults)
{
    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/", "lb/services/web/upstreams/web-1",
                          "10.81.0.5:80"),
                5000);
}

LTEST(http_backend_every_setting_across_stacks)
{
    service("infra", "lb", "example/haproxy", json_pack("[s]", "KONTENA_SERVICE_ROLE=lb"), NULL,
            NULL);
    service(
        "shop", "web", "nginx",
        json_pack("[s,s,s,s,s,s,s,s]", "KONTENA_LB_INTERNAL_PORT=8080",
                  "KONTENA_LB_BALANCE=leastconn",
                  "KONTENA_LB_VIRTUAL_HOSTS=shop.example.com, *.shop.example.com",
                  "KONTENA_LB_VIRTUAL_PATH=/shop", "KONTENA_LB_KEEP_VIRTUAL_PATH=true",
                  "KONTENA_LB_COOKIE=", "KONTENA_LB_BASIC_AUTH_SECRETS=user a insecure-password b",
                  "KONTENA_LB_CUSTOM_SETTINGS=option httpclose\ntimeout server 30s"),
        "lab/infra/lb",
        json_pack("{s:s,s:i,s:s}", "protocol", "http", "port", 8081, "uri", "/health"));
    instance("lab/shop/web", "node-1", "shop.web-1", "running", "running", "10.81.0.5", "healthy");
    instance("lab/shop/web", "node-2", "shop.web-2", "running", "running", "10.81.0.6", "healthy");
    start(0);
    expect_keys(
        json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "infra/lb/services/shop-web/balance",
            "leastconn", "infra/lb/services/shop-web/virtual_hosts",
            "shop.example.com,*.shop.example.com", "infra/lb/services/shop-web/virtual_path",
            "/shop", "infra/lb/services/shop-web/keep_virtual_path", "true",
            "infra/lb/services/shop-web/cookie", "",
            "infra/lb/services/shop-web/basic_auth_secrets", "user a insecure-password b",
            "infra/lb/services/shop-web/custom_settings", "option httpclose\ntimeout server 30s",
            "infra/lb/services/shop-web/health_check_uri", "/health",
            "infra/lb/services/shop-web/health_check_port", "8081",
            "infra/lb/services/shop-web/upstreams/shop.web-1", "10.81.0.5:8080",
            "infra/lb/services/shop-web/upstreams/shop.web-2", "10.81.0.6:8080"),
        5000);
}

LTEST(tcp_backend_and_mode_switch_removes_the_other_subtree)
{
    lb_null_stack();
    service("null", "db", "mysql",
            json_pack("[s,s]", "KONTENA_LB_MODE=tcp", "KONTENA_LB_INTERNAL_PORT=3306"),
            "lab/null/lb", NULL);
    instance("lab/null/db", "node-1", "db-1", "running", "running", "10.81.0.9", NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/tcp-services/db/external_port", "5000",
                          "lb/tcp-services/db/balance", "roundrobin",
                          "lb/tcp-services/db/upstreams/db-1", "10.81.0.9:3306"),
                5000);
    service("null", "db", "mysql",
            json_pack("[s,s,s]", "KONTENA_LB_MODE=tcp", "KONTENA_LB_INTERNAL_PORT=3306",
                      "KONTENA_LB_EXTERNAL_PORT=3307"),
            "lab/null/lb", NULL);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/tcp-services/db/external_port", "3307",
                          "lb/tcp-services/db/balance", "roundrobin",
                          "lb/tcp-services/db/upstreams/db-1", "10.81.0.9:3306"),
                5000);
    service("null", "db", "mysql", json_pack("[s]", "KONTENA_LB_VIRTUAL_HOSTS=db.example.com"),
            "lab/null/lb", NULL);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/services/db/balance", "roundrobin",
                          "lb/services/db/virtual_hosts", "db.example.com",
                          "lb/services/db/upstreams/db-1", "10.81.0.9:80"),
                5000);
}

LTEST(env_changes_are_written_and_unset_values_deleted)
{
    lb_null_stack();
    service("null", "web", "nginx",
            json_pack("[s,s]", "KONTENA_LB_VIRTUAL_HOSTS=a.example.com",
                      "KONTENA_LB_COOKIE=cookie S insert"),
            "lab/null/lb", NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_hosts", "a.example.com",
                          "lb/services/web/cookie", "cookie S insert"),
                5000);
    service("null", "web", "nginx", json_pack("[s]", "KONTENA_LB_BALANCE=source"), "lab/null/lb",
            NULL);
    expect_keys(json_pack("{s:s,s:s}", "lb/services/web/balance", "source",
                          "lb/services/web/virtual_path", "/"),
                5000);
}

LTEST(link_service_and_lb_removal_remove_the_keys)
{
    json_t *two = json_pack("{s:s,s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                            "lb/services/web/virtual_path", "/", "lb/services/api/balance",
                            "roundrobin", "lb/services/api/virtual_path", "/");
    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    service("null", "api", "nginx", NULL, "lab/null/lb", NULL);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", NULL);
    start(0);
    json_object_set_new(two, "lb/services/web/upstreams/web-1", json_string("10.81.0.5:80"));
    expect_keys(two, 5000);
    /* link removed */
    service("null", "web", "nginx", NULL, NULL, NULL);
    expect_keys(json_pack("{s:s,s:s}", "lb/services/api/balance", "roundrobin",
                          "lb/services/api/virtual_path", "/"),
                5000);
    /* linked again, then the service removed */
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    expect_keys(json_pack("{s:s,s:s,s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/", "lb/services/web/upstreams/web-1",
                          "10.81.0.5:80", "lb/services/api/balance", "roundrobin",
                          "lb/services/api/virtual_path", "/"),
                5000);
    del("/kontena/services/lab/null/api");
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/", "lb/services/web/upstreams/web-1",
                          "10.81.0.5:80"),
                5000);
    /* the load balancer removed: its whole root goes */
    del("/kontena/services/lab/null/lb");
    expect_keys(json_object(), 5000);
}

LTEST(unhealthy_stopped_or_removed_instances_leave_the_upstreams)
{
    const char *b = "lb/services/web/";
    json_t *base = json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                             "lb/services/web/virtual_path", "/");
    char *u1 = xasprintf("%supstreams/web-1", b), *u2 = xasprintf("%supstreams/web-2", b);
    json_t *w;

    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", "healthy");
    instance("lab/null/web", "node-2", "web-2", "running", "running", "10.81.0.6", "healthy");
    start(0);
#define BOTH()                                                                                     \
    (w = json_deep_copy(base), json_object_set_new(w, u1, json_string("10.81.0.5:80")),            \
     json_object_set_new(w, u2, json_string("10.81.0.6:80")), w)
#define ONLY2()                                                                                    \
    (w = json_deep_copy(base), json_object_set_new(w, u2, json_string("10.81.0.6:80")), w)
    expect_keys(BOTH(), 5000);
    /* unhealthy, healthy again */
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", "unhealthy");
    expect_keys(ONLY2(), 5000);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", "healthy");
    expect_keys(BOTH(), 5000);
    /* about to be stopped: desired_state stopped while the container still runs */
    instance("lab/null/web", "node-1", "web-1", "stopped", "running", "10.81.0.5", "healthy");
    expect_keys(ONLY2(), 5000);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", "healthy");
    expect_keys(BOTH(), 5000);
    /* the container exited */
    instance("lab/null/web", "node-1", "web-1", "running", "exited", NULL, NULL);
    expect_keys(ONLY2(), 5000);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.7", NULL);
    w = json_deep_copy(base);
    json_object_set_new(w, u1, json_string("10.81.0.7:80"));
    json_object_set_new(w, u2, json_string("10.81.0.6:80"));
    expect_keys(w, 5000);
    /* no address yet */
    instance("lab/null/web", "node-1", "web-1", "running", "running", NULL, NULL);
    expect_keys(ONLY2(), 5000);
    /* the instance key removed (observed still there) */
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", NULL);
    expect_keys(BOTH(), 5000);
    del("/kontena/instances/lab/node-1/web-1");
    expect_keys(ONLY2(), 5000);
#undef BOTH
#undef ONLY2
    json_decref(base);
    free(u1);
    free(u2);
}

/* With a health check, "not checked yet" (health null) is not healthy; an instance waiting
 * for its port (ready false) gets no traffic either. */
LTEST(checked_services_wait_for_the_first_healthy_check_and_the_port)
{
    json_t *base =
        json_pack("{s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                  "lb/services/web/virtual_path", "/", "lb/services/web/health_check_port", "8080");
    json_t *w;

    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb",
            json_pack("{s:s,s:i}", "protocol", "tcp", "port", 8080));
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", NULL);
    start(0);
    expect_keys(json_deep_copy(base), 5000);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", "healthy");
    w = json_deep_copy(base);
    json_object_set_new(w, "lb/services/web/upstreams/web-1", json_string("10.81.0.5:80"));
    expect_keys(w, 5000);
    put("/kontena/observed/lab/node-1/web-1",
        json_pack("{s:s,s:s,s:b,s:{s:s}}", "state", "running", "ip", "10.81.0.5", "ready", 0,
                  "health", "status", "healthy"));
    expect_keys(json_deep_copy(base), 5000);
    json_decref(base);
}

/* Instance key and observed key with the generation fields the agent compares: revision,
 * restart_generation, health_restarts (wanted on the instance, applied on the observed). */
static void generations(int rev, int gen, int hr, int orev, int ogen, int ohr)
{
    put("/kontena/instances/lab/node-1/web-1",
        json_pack("{s:s,s:s,s:i,s:i,s:i,s:s}", "service_id", "lab/null/web", "grid", "lab",
                  "revision", rev, "restart_generation", gen, "health_restarts", hr,
                  "desired_state", "running"));
    put("/kontena/observed/lab/node-1/web-1",
        json_pack("{s:s,s:s,s:i,s:i,s:i,s:n}", "state", "running", "ip", "10.81.0.5", "revision",
                  orev, "restart_generation", ogen, "health_restarts", ohr, "health"));
}

/* The agent stops the old container as soon as it sees a new revision, restart generation
 * or health restart: the upstream goes first and comes back with the new container. */
LTEST(an_instance_about_to_be_recreated_or_restarted_leaves_first)
{
    json_t *base = json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                             "lb/services/web/virtual_path", "/");
    json_t *up = json_deep_copy(base);

    json_object_set_new(up, "lb/services/web/upstreams/web-1", json_string("10.81.0.5:80"));
    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    generations(1, 0, 0, 1, 0, 0);
    start(0);
    expect_keys(json_deep_copy(up), 5000);
    generations(2, 0, 0, 1, 0, 0); /* redeploy */
    expect_keys(json_deep_copy(base), 5000);
    generations(2, 0, 0, 2, 0, 0);
    expect_keys(json_deep_copy(up), 5000);
    generations(2, 1, 0, 2, 0, 0); /* service restart */
    expect_keys(json_deep_copy(base), 5000);
    generations(2, 1, 0, 2, 1, 0);
    expect_keys(json_deep_copy(up), 5000);
    generations(2, 1, 1, 2, 1, 0); /* health restart asked for */
    expect_keys(json_deep_copy(base), 5000);
    generations(2, 1, 1, 2, 1, 1);
    expect_keys(json_deep_copy(up), 5000);
    json_decref(base);
    json_decref(up);
}

LTEST(a_new_healthy_instance_is_an_upstream_within_a_second)
{
    int64_t worst = 0;

    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/"),
                5000);
    for (int i = 1; i <= 3; i++) {
        char name[16], ip[16];
        json_t *w = json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                              "lb/services/web/virtual_path", "/");
        for (int k = 1; k <= i; k++) {
            char *key = xasprintf("lb/services/web/upstreams/web-%d", k);
            snprintf(ip, sizeof(ip), "10.81.0.%d", 10 + k);
            json_object_set_new(w, key, json_sprintf("%s:80", ip));
            free(key);
        }
        snprintf(name, sizeof(name), "web-%d", i);
        snprintf(ip, sizeof(ip), "10.81.0.%d", 10 + i);
        /* the agent reports it running and not yet checked healthy, then healthy */
        instance("lab/null/web", "node-1", name, "running", "running", ip, "unhealthy");
        time_sleep_ms(200);
        instance("lab/null/web", "node-1", name, "running", "running", ip, "healthy");
        int64_t ms = expect_keys(w, 5000);
        if (ms > worst)
            worst = ms;
    }
    cr_log_info("a healthy instance became an upstream after at most %lld ms", (long long)worst);
    cr_assert_lt(worst, 1000, "took %lld ms", (long long)worst);
}

LTEST(invalid_settings_and_port_clashes_are_never_written)
{
    lb_null_stack();
    service("null", "bad", "nginx", json_pack("[s]", "KONTENA_LB_MODE=udp"), "lab/null/lb", NULL);
    service("null", "evil", "nginx",
            json_pack("[s]", "KONTENA_LB_CUSTOM_SETTINGS=option a\nbackend x"), "lab/null/lb",
            NULL);
    service("null", "good", "nginx", NULL, "lab/null/lb", NULL);
    service("null", "db1", "mysql", json_pack("[s]", "KONTENA_LB_MODE=tcp"), "lab/null/lb", NULL);
    service("null", "db2", "mysql", json_pack("[s]", "KONTENA_LB_MODE=tcp"), "lab/null/lb", NULL);
    service("null", "db3", "mysql",
            json_pack("[s,s]", "KONTENA_LB_MODE=tcp", "KONTENA_LB_EXTERNAL_PORT=80"), "lab/null/lb",
            NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s,s:s,s:s}", "lb/services/good/balance", "roundrobin",
                          "lb/services/good/virtual_path", "/", "lb/tcp-services/db1/balance",
                          "roundrobin", "lb/tcp-services/db1/external_port", "5000"),
                5000);
    time_sleep_ms(1500); /* a resync changes nothing */
    expect_keys(json_pack("{s:s,s:s,s:s,s:s}", "lb/services/good/balance", "roundrobin",
                          "lb/services/good/virtual_path", "/", "lb/tcp-services/db1/balance",
                          "roundrobin", "lb/tcp-services/db1/external_port", "5000"),
                100);
    /* the log says why, once per service */
    cr_assert_eq(count_in_log(lc[0].log, "service=lab/null/bad msg=\"not balanced: service "
                                         "'lab/null/bad': KONTENA_LB_MODE: unknown mode 'udp'"),
                 1);
    cr_assert_eq(count_in_log(lc[0].log, "port clash on load balancer 'lb': services "
                                         "'lab/null/db1' and 'lab/null/db2' both use "
                                         "KONTENA_LB_EXTERNAL_PORT 5000"),
                 1);
    cr_assert_eq(count_in_log(lc[0].log, "service 'lab/null/db3' uses "
                                         "KONTENA_LB_EXTERNAL_PORT 80, the load balancer's "
                                         "own http port"),
                 1);
    cr_assert_eq(count_in_log(lc[0].log, "service=lab/null/evil msg=\"not balanced"), 1);
    /* fixed: written */
    service("null", "bad", "nginx", json_pack("[s]", "KONTENA_LB_MODE=http"), "lab/null/lb", NULL);
    expect_keys(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "lb/services/good/balance", "roundrobin",
                          "lb/services/good/virtual_path", "/", "lb/services/bad/balance",
                          "roundrobin", "lb/services/bad/virtual_path", "/",
                          "lb/tcp-services/db1/balance", "roundrobin",
                          "lb/tcp-services/db1/external_port", "5000"),
                5000);
    /* the gauge of skipped services: evil, db2, db3; then evil deleted */
    cr_assert_eq(invalid_services(), 3);
    del("/kontena/services/lab/null/evil");
    for (int i = 0; i < 50 && invalid_services() != 2; i++)
        time_sleep_ms(100);
    cr_assert_eq(invalid_services(), 2);
}

LTEST(keys_written_by_hand_are_put_right_and_a_resync_writes_nothing_else)
{
    struct err e = ERR_INIT;
    struct etcd_kv kv = {0};
    int64_t rev1, rev2;

    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    start(0);
    expect_keys(json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/"),
                5000);
    cr_assert_eq(etcd_put(ec, HAP "lb/services/web/balance", "x", 1, 0, NULL, NULL, &e), ST_OK);
    cr_assert_eq(etcd_put(ec, HAP "old/services/x/balance", "x", 1, 0, NULL, NULL, &e), ST_OK);
    expect_keys(json_pack("{s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/"),
                5000);
    cr_assert_eq(etcd_get(ec, HAP "lb/services/web/balance", &kv, NULL, &e), ST_OK);
    rev1 = kv.mod_revision;
    etcd_kv_release(&kv);
    time_sleep_ms(2500); /* two resyncs */
    cr_assert_eq(etcd_get(ec, HAP "lb/services/web/balance", &kv, NULL, &e), ST_OK);
    rev2 = kv.mod_revision;
    etcd_kv_release(&kv);
    cr_assert_eq(rev1, rev2, "a resync rewrote an unchanged key");
}

/* The id in /kontena/leaders/lbconfig: 0 or 1 (replica index), -1 when none. */
static int leader(void)
{
    struct etcd_kv kv = {0};
    struct err e = ERR_INIT;
    int who = -1;

    if (etcd_get(ec, "/kontena/leaders/lbconfig", &kv, NULL, &e) == ST_OK) {
        json_t *v = json_loads(kv.value, 0, NULL);
        const char *s = json_string_value(json_object_get(v, "id"));
        if (s && strcmp(s, "lbconfig-1") == 0)
            who = 0;
        else if (s && strcmp(s, "lbconfig-2") == 0)
            who = 1;
        json_decref(v);
    }
    etcd_kv_release(&kv);
    return who;
}

LTEST(two_replicas_the_standby_takes_over_when_the_leader_is_killed)
{
    int l, other;

    lb_null_stack();
    service("null", "web", "nginx", NULL, "lab/null/lb", NULL);
    instance("lab/null/web", "node-1", "web-1", "running", "running", "10.81.0.5", NULL);
    start(0);
    start(1);
    expect_keys(json_pack("{s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/", "lb/services/web/upstreams/web-1",
                          "10.81.0.5:80"),
                5000);
    l = leader();
    cr_assert(l == 0 || l == 1, "no leader");
    other = 1 - l;
    cr_assert_eq(ctl_proc_stop(&lc[l], SIGKILL) & 0x7f, SIGKILL);
    lc[l].pid = 0;
    instance("lab/null/web", "node-1", "web-2", "running", "running", "10.81.0.6", NULL);
    /* the lease is 2 s: the standby leads and writes within a few seconds */
    expect_keys(json_pack("{s:s,s:s,s:s,s:s}", "lb/services/web/balance", "roundrobin",
                          "lb/services/web/virtual_path", "/", "lb/services/web/upstreams/web-1",
                          "10.81.0.5:80", "lb/services/web/upstreams/web-2", "10.81.0.6:80"),
                10000);
    cr_assert_eq(leader(), other);
}
