/* tests/integration/test_lb_e2e.c -- the load balancer end to end (issue 7, point 3): a
 * whole platform (etcd, kontena-apiserver, the four controllers plus kontena-lbconfig, three
 * agents on the machine's one dockerd) runs a stack with a kontena/lb service (the image
 * hack/lb-image.sh builds from the binaries under test) and web services linked to it; real
 * HTTP and TCP go through the LB on loopback.
 *
 * The LB service runs with host networking (as hack/up.sh's example does): it reaches the
 * platform's etcd on 127.0.0.1 (ETCD_ENDPOINTS from the stack's environment) and listens on
 * ports the test picks (KONTENA_LB_HTTP_PORT, _HTTPS_PORT, _STATS_PORT, and a tcp service's
 * KONTENA_LB_EXTERNAL_PORT). The web instances are on the Docker bridge; their observed `ip`
 * is their bridge address, which the LB on the host reaches.
 *
 * Each web instance answers "web-<n> <container id>" (its first 12 characters, so a
 * re-created container answers differently) at / and "ok" at
 * /health, which its http health check probes every second; on SIGTERM it exits at once:
 * taking a stopping instance out of rotation before its address disappears is the
 * platform's job (the agent waits --lb-drain before it stops a container labelled
 * io.kontena.load_balancer.name, which the scheduler sets). An instance is made unhealthy
 * by removing /health inside its container: / keeps answering, the agent reports it
 * unhealthy, kontena-lbconfig removes its upstream, kontena-health restarts it.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/docker_env.h"
#include "tests/support/http.h"
#include "tests/support/httpload.h"
#include "tests/support/platform.h"
#include "tests/support/proc.h"

#include "common/banned.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    docker_env_global_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
}

#define WEB_HOST "web.e2e.test"

static struct platform pf;
static struct httpload *load;
static struct platform_health_log *health;
static char *image, *stack_name, *stack_file, *lb_url;
static int http_port, https_port, stats_port, tcp_port;

static void lb_init(void)
{
    struct platform_opts o = {.agents = 3, .lbconfig = 1};
    const struct criterion_test *t = criterion_current_test;
    char suffix[64];

    docker_env_require();
    {
        /* as test_e2e: a grid name of its own for every test, short */
        const char *name = t ? t->name : "x";
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const char *c = name; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        snprintf(suffix, sizeof(suffix), "l-%06x", (unsigned)(h & 0xffffff));
    }
    o.grid_suffix = suffix;
    image = platform_lb_image();
    cr_assert_not_null(image, "cannot build the load balancer image (hack/lb-image.sh, above)");
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        cr_assert_fail("cannot start the platform (logs above)");
    }
    http_port = proc_free_port();
    https_port = proc_free_port();
    stats_port = proc_free_port();
    tcp_port = proc_free_port();
    lb_url = xasprintf("http://127.0.0.1:%d", http_port);
    health = platform_health_watch(&pf);
    cr_assert_not_null(health, "cannot watch the observed keys");
}

static void lb_fini(void)
{
    httpload_destroy(load);
    load = NULL;
    platform_health_unwatch(health);
    health = NULL;
    platform_cleanup(&pf);
    platform_lb_image_remove(image);
    FREE_AND_NULL(image);
    FREE_AND_NULL(stack_name);
    FREE_AND_NULL(stack_file);
    FREE_AND_NULL(lb_url);
}

TestSuite(lb_e2e, .init = lb_init, .fini = lb_fini, .timeout = 240);

/* A test, then every process of the platform (kontena-lbconfig too) must exit with status 0
 * on SIGTERM. */
#define LB_TEST(name)                                                                              \
    static void name##_body(void);                                                                 \
    Test(lb_e2e, name)                                                                             \
    {                                                                                              \
        name##_body();                                                                             \
        cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly (logs above)");        \
    }                                                                                              \
    static void name##_body(void)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (load)                                                                              \
                httpload_report(load, stderr);                                                     \
            platform_dump_logs(&pf);                                                               \
            dump_lb_logs();                                                                        \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* The LB container's own log lines (docker logs of the stack's lb containers, without the
 * access log lines) and its keys in etcd. */
static void dump_lb_logs(void)
{
    char *filter = xasprintf("label=io.kontena.grid=%s", pf.grid);
    char *ids = NULL, *save = NULL, *prefix = xasprintf("/kontena/haproxy/%s/", pf.grid);
    const char *ps[] = {
        "docker", "ps", "-aq", "--filter", filter, "--filter", "label=io.kontena.service=lb", NULL};
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r;
    struct err e = ERR_INIT;

    if (proc_run(ps, NULL, NULL, &ids, NULL) == 0 && ids) {
        for (char *id = strtok_r(ids, "\n", &save); id; id = strtok_r(NULL, "\n", &save)) {
            char *out = NULL, *err = NULL, *lsave = NULL;
            const char *logs[] = {"docker", "logs", id, NULL};
            (void)proc_run(logs, NULL, NULL, &out, &err);
            fprintf(stderr, "--- docker logs %s (the LB; access log lines left out)\n", id);
            for (char *ln = strtok_r(err, "\n", &lsave); ln; ln = strtok_r(NULL, "\n", &lsave))
                if (!strstr(ln, " http-in ") && !strstr(ln, "[NOTICE]"))
                    fprintf(stderr, "%s\n", ln);
            lsave = NULL;
            for (char *ln = strtok_r(out, "\n", &lsave); ln; ln = strtok_r(NULL, "\n", &lsave))
                if (!strstr(ln, " http-in ") && !strstr(ln, "[NOTICE]"))
                    fprintf(stderr, "%s\n", ln);
            free(out);
            free(err);
        }
    }
    if (etcd_range(pf.ec, prefix, &ro, &r, &e) == ST_OK) {
        fprintf(stderr, "--- etcd %s*\n", prefix);
        for (size_t i = 0; i < r.n; i++)
            fprintf(stderr, "%s = %.*s\n", r.kvs[i].key, (int)r.kvs[i].value_len, r.kvs[i].value);
        etcd_range_result_release(&r);
    }
    free(prefix);
    free(ids);
    free(filter);
}

/* An http service answering "<name>-<n> <container id>" at / and "ok" at /health. The
 * container learns the first 12 characters of its id from its mounts (Docker mounts
 * /var/lib/docker/containers/<id>/hostname); the hostname is the instance's name. On
 * SIGTERM it stops at once (no draining of its own: the platform's drain is under test). */
#define WEB_CMD(name)                                                                              \
    "sh -c 'id=$$(grep -o \"containers/[0-9a-f]*\" /proc/self/mountinfo | head -1 | cut -c12-23) " \
    "&& mkdir -p /www && echo " name "-$$KONTENA_SERVICE_INSTANCE_NUMBER $$id > /www/index.html "  \
    "&& echo ok > /www/health || exit 1; httpd -f -p 8080 -h /www & pid=$$!; "                     \
    "trap \"kill $$pid; exit 0\" TERM; wait'"

/* The stack: lb (host network, ports of this test), web (virtual host WEB_HOST, `instances`
 * of it), api (virtual path /api), echo (tcp on tcp_port, answering "tcp-<n>"). */
static void write_lb_stack(const char *what, int instances)
{
    char *text;

    /* one stack name per test: tests run in parallel on one dockerd, and the containers
     * are named "<node>.<stack>.<service>-<n>" */
    if (!stack_name)
        stack_name = platform_name(what);
    text = xasprintf(
        "stack: e2e/lb\n"
        "version: 1.0.0\n"
        "services:\n"
        "  lb:\n"
        "    image: %s\n"
        "    network_mode: host\n"
        "    instances: 1\n"
        "    stop_grace_period: 5s\n"
        "    environment:\n"
        "      - ETCD_ENDPOINTS=%s\n"
        "      - KONTENA_LB_HTTP_PORT=%d\n"
        "      - KONTENA_LB_HTTPS_PORT=%d\n"
        "      - KONTENA_LB_STATS_PORT=%d\n"
        "      - KONTENA_LB_HEALTH_URI=/__lb_health\n"
        "  web:\n"
        "    image: %s\n"
        "    command: " WEB_CMD("web") "\n"
                                       "    instances: %d\n"
                                       "    stop_grace_period: 2s\n"
                                       "    links:\n"
                                       "      - lb\n"
                                       "    environment:\n"
                                       "      - KONTENA_LB_INTERNAL_PORT=8080\n"
                                       "      - KONTENA_LB_VIRTUAL_HOSTS=" WEB_HOST "\n"
                                       "    health_check:\n"
                                       "      protocol: http\n"
                                       "      port: 8080\n"
                                       "      uri: /health\n"
                                       "      interval: 1\n"
                                       "      timeout: 1\n"
                                       "      initial_delay: 1\n"
                                       "    deploy:\n"
                                       "      strategy: ha\n"
                                       "      min_health: 0.8\n"
                                       "  api:\n"
                                       "    image: %s\n"
                                       "    command: " WEB_CMD(
                                           "api") "\n"
                                                  "    stop_grace_period: 2s\n"
                                                  "    links:\n"
                                                  "      - lb\n"
                                                  "    environment:\n"
                                                  "      - KONTENA_LB_INTERNAL_PORT=8080\n"
                                                  "      - KONTENA_LB_VIRTUAL_PATH=/api\n"
                                                  "  echo:\n"
                                                  "    image: %s\n"
                                                  "    command: sh -c 'exec nc -ll -p 7000 -e echo "
                                                  "tcp-$$KONTENA_SERVICE_INSTANCE_NUMBER'\n"
                                                  "    stop_grace_period: 1s\n"
                                                  "    links:\n"
                                                  "      - lb\n"
                                                  "    environment:\n"
                                                  "      - KONTENA_LB_MODE=tcp\n"
                                                  "      - KONTENA_LB_INTERNAL_PORT=7000\n"
                                                  "      - KONTENA_LB_EXTERNAL_PORT=%d\n",
        image, pf.etcd.endpoint, http_port, https_port, stats_port, DOCKER_ENV_IMAGE, instances,
        DOCKER_ENV_IMAGE, DOCKER_ENV_IMAGE, tcp_port);
    free(stack_file);
    stack_file = platform_write_file(&pf, "lb.yml", text);
    cr_assert_not_null(stack_file);
    free(text);
}

static void install_and_wait(const char *what, int web_instances)
{
    json_t *l;

    write_lb_stack(what, web_instances);
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "120", "--wait",
                       stack_file, NULL) == 0,
          "stack install failed: %s%s", pf.out, pf.err);
    CHECK((l = platform_wait_running(&pf, stack_name, "lb", 1, 60000)), "the LB is not running");
    json_decref(l);
    CHECK((l = platform_wait_running(&pf, stack_name, "web", web_instances, 60000)),
          "web is not running");
    json_decref(l);
    CHECK(platform_wait_http(lb_url, WEB_HOST, 200, "web-", 30000) == 0,
          "the LB does not serve " WEB_HOST " within 30 s of the stack running");
}

/* --- who answered: instance <-> "web-<n> <hostname>" --------------------------------------- */

/* The body the instance of this platform_instances() entry answers with, or NULL when it
 * has no container yet: "web-<n> <first 12 of its container id>". Fresh. */
static char *who_of(const json_t *it)
{
    const json_t *obs = json_object_get(it, "observed");
    const char *id = json_string_value(json_object_get(obs, "container_id"));

    if (!id || strlen(id) < 12)
        return NULL;
    return xasprintf("web-%lld %.12s",
                     (long long)json_integer_value(json_object_get(it, "instance_number")), id);
}

/* The first healthy (healthy 1) or unhealthy (0) check of the container answering `who`
 * ("web-<n> <id>"), from the platform's health watch: µs or -1. */
static int64_t health_at(const char *who, int healthy)
{
    const char *id = strchr(who, ' ');

    return id ? platform_health_first(health, id + 1, healthy, NULL) : -1;
}

/* When the watch received that first healthy result: µs or -1. */
static int64_t health_written(const char *who)
{
    const char *id = strchr(who, ' ');
    int64_t seen = -1;

    if (id)
        (void)platform_health_first(health, id + 1, 1, &seen);
    return seen;
}

/* Wait until `count` web instances run. */
static json_t *wait_web(int count, int timeout_ms)
{
    return platform_wait_running(&pf, stack_name, "web", count, timeout_ms);
}

/* For every running instance of l that did not answer before since_us (wall clock): wait
 * until it has been healthy and has answered through the LB; check it did so within a second
 * of its first healthy check and not before it, and print the delay. Returns the largest
 * delay in ms. */
static int64_t check_served_after_healthy(const json_t *l, int64_t since_us, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms, worst = INT64_MIN;
    size_t i;
    json_t *it;

    json_array_foreach(l, i, it)
    {
        char *who = who_of(it);
        int64_t h, first, d;

        CHECK(who, "an instance without a container id");
        first = httpload_first_seen(load, who);
        if (first >= 0 && first < since_us) { /* an instance from before */
            free(who);
            continue;
        }
        while ((h = health_at(who, 1)) < 0 || (first = httpload_first_seen(load, who)) < 0) {
            CHECK(time_mono_ms() < deadline,
                  "%s: healthy at %lld, first answer through the LB at %lld: not both within "
                  "%d ms",
                  who, (long long)health_at(who, 1), (long long)httpload_first_seen(load, who),
                  timeout_ms);
            time_sleep_ms(20);
        }
        d = (first - h) / 1000;
        fprintf(stderr,
                "lb_e2e: %s answered through the LB %lld ms after its first healthy check (in "
                "etcd %lld ms after the check)\n",
                who, (long long)d, (long long)(health_written(who) - h) / 1000);
        CHECK(d <= 1000, "%s answered through the LB %lld ms after it was healthy (> 1 s)", who,
              (long long)d);
        /* and not before: an instance is an upstream once it is healthy (a negative delay is a
         * container answering on an upstream address the LB kept from its predecessor) */
        CHECK(d >= 0, "%s answered through the LB %lld ms before its first healthy check", who,
              (long long)-d);
        if (d > worst)
            worst = d;
        free(who);
    }
    return worst;
}

static void start_load(void)
{
    struct httpload_opts o = {.url = lb_url,
                              .host = WEB_HOST,
                              .threads = 4,
                              .rate = 50, /* 4 x 50 = 200 requests/s */
                              .max_ms = 200000,
                              .timeout_ms = 5000};
    char *url = xasprintf("%s/", lb_url);

    free(lb_url);
    lb_url = url;
    o.url = lb_url;
    load = httpload_start(&o);
    cr_assert_not_null(load, "cannot start the load");
}

static char *web_path(void)
{
    return xasprintf("%s/web", stack_name);
}

/* ---------------------------------------------------------------------------------------- */

/* hack/examples/lb.yml, the stack hack/up.sh installs, as it is (only its variables set):
 * the LB answers with each of the three web instances in turn, and the tcp service. */
LB_TEST(example_stack_from_hack_up_serves_through_the_lb)
{
    char *file = xasprintf("%s/hack/examples/lb.yml", docker_env_source_dir());
    char *v_image = xasprintf("lb_image=%s", image);
    char *v_etcd = xasprintf("etcd_endpoints=%s", pf.etcd.endpoint);
    char *v_http = xasprintf("http_port=%d", http_port);
    char *v_https = xasprintf("https_port=%d", https_port);
    char *v_stats = xasprintf("stats_port=%d", stats_port);
    char *v_tcp = xasprintf("tcp_port=%d", tcp_port);
    char *got;
    int seen[4] = {0};
    int64_t t;
    json_t *l;

    stack_name = platform_name("lbex");
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "120", "-v",
                       v_image, "-v", v_etcd, "-v", v_http, "-v", v_https, "-v", v_stats, "-v",
                       v_tcp, file, NULL) == 0,
          "stack install %s failed: %s%s", file, pf.out, pf.err);
    CHECK((l = platform_wait_running(&pf, stack_name, "web", 3, 60000)), "web is not running");
    json_decref(l);
    t = time_mono_ms();
    while (!(seen[1] && seen[2] && seen[3])) {
        struct http_reply r = {0};
        CHECK(time_mono_ms() - t < 30000,
              "not every web instance answered through the LB in 30 s"
              " (web-1 %d, web-2 %d, web-3 %d times)",
              seen[1], seen[2], seen[3]);
        if (http_do("GET", lb_url, NULL, NULL, 0, NULL, &r) == 0 && r.status == 200 && r.body &&
            !strncmp(r.body, "web-", 4) && r.body[4] >= '1' && r.body[4] <= '3')
            seen[r.body[4] - '0']++;
        http_reply_release(&r);
        time_sleep_ms(20);
    }
    t = time_mono_ms();
    while (!(got = platform_tcp_read(tcp_port)) || strncmp(got, "tcp-1", 5) != 0) {
        CHECK(time_mono_ms() - t < 30000, "tcp port %d does not answer tcp-1 (last: %s)", tcp_port,
              got ? got : "connection failed");
        free(got);
        time_sleep_ms(200);
    }
    free(got);
    free(file);
    free(v_image);
    free(v_etcd);
    free(v_http);
    free(v_https);
    free(v_stats);
    free(v_tcp);
}

LB_TEST(routes_by_virtual_host_by_path_and_tcp_port)
{
    struct http_reply r = {0};
    char *url, *got;
    int64_t t;

    install_and_wait("lbroute", 2);
    /* by virtual host: both instances answer, round robin (once both passed a health check:
     * the LB may have served the first one a moment before the second) */
    {
        int w1 = 0, w2 = 0;
        t = time_mono_ms();
        while (!(w1 && w2)) {
            CHECK(time_mono_ms() - t < 30000, "not both web instances answered in 30 s: %d, %d",
                  w1, w2);
            if (http_do("GET", lb_url, NULL, NULL, 0, "Host: " WEB_HOST, &r) == 0 &&
                r.status == 200 && r.body) {
                w1 += !strncmp(r.body, "web-1 ", 6);
                w2 += !strncmp(r.body, "web-2 ", 6);
            }
            http_reply_release(&r);
            time_sleep_ms(50);
        }
        w1 = w2 = 0;
        for (int i = 0; i < 20; i++) {
            CHECK(http_do("GET", lb_url, NULL, NULL, 0, "Host: " WEB_HOST, &r) == 0 &&
                      r.status == 200,
                  "GET / Host " WEB_HOST ": HTTP %ld %s", r.status, r.body ? r.body : "");
            w1 += !strncmp(r.body, "web-1 ", 6);
            w2 += !strncmp(r.body, "web-2 ", 6);
            http_reply_release(&r);
        }
        fprintf(stderr, "lb_e2e: 20 requests to " WEB_HOST ": web-1 %d, web-2 %d\n", w1, w2);
        CHECK(w1 > 0 && w2 > 0 && w1 + w2 == 20, "not both web instances answered: %d, %d", w1, w2);
    }
    /* the Host header's port is ignored, and the name is case-insensitive */
    CHECK(platform_wait_http(lb_url, "WEB.e2e.test:80", 200, "web-", 1000) == 0,
          "Host WEB.e2e.test:80 is not routed to web");
    /* by path: /api/ reaches api with the prefix stripped (its / is index.html) */
    url = xasprintf("%s/api/", lb_url);
    CHECK(platform_wait_http(url, "anything.test", 200, "api-1 ", 30000) == 0,
          "/api/ is not routed to api");
    free(url);
    url = xasprintf("%s/api/health", lb_url);
    CHECK(platform_wait_http(url, "anything.test", 200, "ok", 5000) == 0,
          "/api/health is not routed to api's /health");
    free(url);
    /* hosts before paths: /api/ on web's host goes to web */
    url = xasprintf("%s/api/", lb_url);
    CHECK(http_do("GET", url, NULL, NULL, 0, "Host: " WEB_HOST, &r) == 0,
          "GET /api/ Host " WEB_HOST " failed");
    CHECK(r.status == 404 || (r.body && !strncmp(r.body, "web-", 4)),
          "/api/ on " WEB_HOST " did not reach web: HTTP %ld %s", r.status, r.body ? r.body : "");
    http_reply_release(&r);
    free(url);
    /* nothing matches: 503, no default backend */
    CHECK(http_do("GET", lb_url, NULL, NULL, 0, "Host: nothing.test", &r) == 0 && r.status == 503,
          "an unmatched request got HTTP %ld, not 503", r.status);
    http_reply_release(&r);
    /* the LB's own health endpoint */
    url = xasprintf("%s/__lb_health", lb_url);
    CHECK(platform_wait_http(url, NULL, 200, NULL, 5000) == 0, "the LB health URI does not answer");
    free(url);
    /* tcp: the echo service through its external port */
    t = time_mono_ms();
    while (!(got = platform_tcp_read(tcp_port)) || strncmp(got, "tcp-1", 5) != 0) {
        CHECK(time_mono_ms() - t < 30000, "tcp port %d does not answer tcp-1 (last: %s)", tcp_port,
              got ? got : "connection failed");
        free(got);
        time_sleep_ms(200);
    }
    fprintf(stderr, "lb_e2e: tcp port %d answered %s", tcp_port, got);
    free(got);
}

LB_TEST(zero_failed_requests_while_scaling_redeploying_and_unhealthy)
{
    json_t *l;
    char *svc, *victim = NULL, *docker_name = NULL;
    int64_t t, worst, unhealthy_us = -1, last, since;
    json_int_t rev;
    int64_t phase_ok[5];

    install_and_wait("lbload", 1);
    svc = web_path();
    start_load();
    t = time_mono_ms();
    while (httpload_ok(load) < 100) {
        CHECK(time_mono_ms() - t < 10000, "the load got fewer than 100 answers in 10 s");
        time_sleep_ms(20);
    }
    phase_ok[0] = httpload_ok(load);

    /* 1 -> 5: every new instance is served within a second of being healthy */
    since = time_now_us();
    CHECK(platform_cli(&pf, "service", "scale", "--no-wait", svc, "5", NULL) == 0,
          "scale 5 failed: %s%s", pf.out, pf.err);
    CHECK((l = wait_web(5, 60000)), "not 5 web instances running");
    worst = check_served_after_healthy(l, since, 15000);
    fprintf(stderr, "lb_e2e: scale 1 -> 5: slowest new instance served %lld ms after healthy\n",
            (long long)worst);
    phase_ok[1] = httpload_ok(load);

    /* redeploy (a rolling update, one instance at a time at min_health 0.8): every new
     * container is served within a second of being healthy. --no-wait: the health times are
     * watched meanwhile. */
    rev = json_integer_value(json_object_get(json_array_get(l, 0), "revision"));
    since = time_now_us();
    json_decref(l);
    CHECK(platform_cli(&pf, "service", "deploy", "--force", "--no-wait", svc, NULL) == 0,
          "deploy --force failed: %s%s", pf.out, pf.err);
    t = time_mono_ms();
    for (;;) {
        size_t i;
        json_t *it;
        int renewed = 0;

        l = platform_instances(&pf, stack_name, "web");
        json_array_foreach(l, i, it)
        {
            renewed += json_integer_value(json_object_get(it, "revision")) > rev;
        }
        if (l && json_array_size(l) == 5 && renewed == 5 && platform_count_running(l) == 5)
            break;
        json_decref(l);
        CHECK(time_mono_ms() - t < 90000, "the redeploy did not finish within 90 s");
        time_sleep_ms(20);
    }
    worst = check_served_after_healthy(l, since, 15000);
    fprintf(stderr, "lb_e2e: redeploy: slowest new container served %lld ms after healthy\n",
            (long long)worst);
    phase_ok[2] = httpload_ok(load);

    /* one instance turns unhealthy: its /health goes away (it still answers /) */
    {
        json_t *it = json_array_get(l, 1);
        const char *node = json_string_value(json_object_get(it, "node"));
        const char *cname = json_string_value(json_object_get(it, "container"));
        const char *rm[] = {"docker", "exec", NULL, "rm", "/www/health", NULL};
        char *out = NULL, *err = NULL;
        int rc;

        victim = who_of(it);
        docker_name = xasprintf("%s.%s", node, cname);
        rm[2] = docker_name;
        rc = proc_run(rm, NULL, NULL, &out, &err);
        CHECK(rc == 0, "docker exec %s rm /www/health: %s%s", docker_name, out ? out : "",
              err ? err : "");
        free(out);
        free(err);
    }
    json_decref(l);
    /* until the agent saw it unhealthy */
    t = time_mono_ms();
    while ((unhealthy_us = health_at(victim, 0)) < 0) {
        CHECK(time_mono_ms() - t < 15000, "%s was not reported unhealthy within 15 s", victim);
        time_sleep_ms(20);
    }
    /* kontena-health restarts it (same container: same answer; a restart takes more than
     * the 1 s initial delay before it can be healthy again, so what answered in the second
     * after the failed check came before the restart); it is back in rotation */
    time_sleep_ms(1000);
    last = httpload_last_seen(load, victim);
    fprintf(stderr,
            "lb_e2e: %s checked unhealthy; its last answer through the LB before the restart "
            "%lld ms after that check\n",
            victim, (long long)(last - unhealthy_us) / 1000);
    CHECK((l = wait_web(5, 60000)), "not 5 web instances running after the unhealthy one");
    t = time_mono_ms();
    while (httpload_last_seen(load, victim) <= last + 1000000) {
        CHECK(time_mono_ms() - t < 30000, "%s is not served again after its restart", victim);
        time_sleep_ms(50);
    }
    json_decref(l);
    phase_ok[3] = httpload_ok(load);

    /* 5 -> 1 */
    CHECK(platform_cli(&pf, "service", "scale", "--timeout", "120", svc, "1", NULL) == 0,
          "scale 1 failed: %s%s", pf.out, pf.err);
    CHECK((l = wait_web(1, 60000)), "not 1 web instance running");
    json_decref(l);
    t = time_mono_ms();
    while (platform_docker_count(&pf, stack_name, "web", 0) != 1) {
        CHECK(time_mono_ms() - t < 30000, "the scaled-down containers were not removed");
        time_sleep_ms(200);
    }
    time_sleep_ms(1000); /* requests after the last removal */
    httpload_stop(load);
    phase_ok[4] = httpload_ok(load);
    httpload_report(load, stderr);
    fprintf(stderr,
            "lb_e2e: answers: at 1 instance %lld, during 1 -> 5 %lld, redeploy %lld, "
            "unhealthy %lld, 5 -> 1 %lld; failed %lld; %.0f requests/s\n",
            (long long)phase_ok[0], (long long)(phase_ok[1] - phase_ok[0]),
            (long long)(phase_ok[2] - phase_ok[1]), (long long)(phase_ok[3] - phase_ok[2]),
            (long long)(phase_ok[4] - phase_ok[3]), (long long)httpload_failed(load),
            httpload_rps(load));
    CHECK(httpload_failed(load) == 0, "%lld failed requests (first ones above)",
          (long long)httpload_failed(load));
    free(svc);
    free(victim);
    free(docker_name);
}
