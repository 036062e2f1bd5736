/* Integration tests for kontena-lb: a real etcd (one for the binary, a key root per test),
 * the real kontena-lb running Debian's haproxy on loopback ports, and real HTTP backends
 * (busybox httpd processes on 127.0.0.1, each serving its own name). The keys are written
 * by hand, as kontena-lbconfig would write them (test_lbconfig checks that part).
 *
 *   routes_by_host_path_and_tcp   virtual host, path (stripped), tcp port, health URI,
 *                                 stats, unmatched host → 503
 *   new_upstream_latency          key written → first request served by it (printed)
 *   invalid_custom_setting        haproxy refuses a backend's new line → the running
 *                                 configuration stays; other changes still apply (that
 *                                 backend with its last accepted settings, a new refused
 *                                 backend left out); fixed → applied
 *   bad_keys_left_out             a backend with a bad value is left out, the rest serves
 *   zero_failures_under_load      bounded load (keep-alive + new connections) while
 *                                 upstreams come and go (runtime API) and settings change
 *                                 (seamless reloads): no failed request
 *   sigterm_leaves_no_haproxy     SIGTERM → exit 0, no haproxy process left
 *   etcd_restart                  etcd down: the LB keeps serving; back: changes apply
 *   usage_errors                  bad LB settings: exit 2 with a message naming them
 *   same_name_new_address         a re-created instance (same name, new address) through
 *                                 the runtime API, no reload
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/httpload.h"
#include "tests/support/proc.h"

static struct etcd_proc g_etcd = ETCD_PROC_INIT;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (etcd_proc_start(&g_etcd) == 0)
        setenv("TEST_LB_ETCD", g_etcd.endpoint, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    etcd_proc_cleanup(&g_etcd);
}

#define MAX_BACKENDS 8

struct backend_proc {
    pid_t pid;
    int port;
    char name[64];
};

static struct {
    char *dir;
    char *root; /* /kontena/haproxy/t/<test> */
    struct etcd *etcd;
    pid_t lb;
    char *lb_log;
    char *run_dir;
    int http_port, stats_port, tcp_port;
    struct backend_proc be[MAX_BACKENDS];
} T;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void put(const char *rel, const char *value)
{
    char *key = xasprintf("%s/%s", T.root, rel);
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(T.etcd, key, value, strlen(value), 0, NULL, NULL, &e), ST_OK,
                 "put %s: %s", key, e.msg);
    free(key);
}

static void del(const char *rel)
{
    char *key = xasprintf("%s/%s", T.root, rel);
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_delete(T.etcd, key, NULL, NULL, &e), ST_OK, "delete %s: %s", key, e.msg);
    free(key);
}

/* Start busybox httpd #i serving "<name>\n" at / (and at /index.html). */
static struct backend_proc *backend_start(int i, const char *name)
{
    struct backend_proc *b = &T.be[i];
    char *www = xasprintf("%s/www-%s", T.dir, name), *index = xasprintf("%s/index.html", www),
         *bind, *log = xasprintf("%s/httpd-%s.log", T.dir, name);
    FILE *f;

    cr_assert_eq(b->pid, 0);
    mkdir(www, 0755);
    f = fopen(index, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", name);
    fclose(f);
    snprintf(b->name, sizeof(b->name), "%s", name);
    for (int attempt = 0; attempt < 3; attempt++) {
        char *url;
        b->port = proc_free_port();
        bind = xasprintf("127.0.0.1:%d", b->port);
        b->pid =
            proc_spawn((const char *const[]){"busybox", "httpd", "-f", "-p", bind, "-h", www, NULL},
                       NULL, log);
        free(bind);
        url = xasprintf("http://127.0.0.1:%d/", b->port);
        if (b->pid > 0 && proc_wait_http(url, 200, 5000) == 0) {
            free(url);
            break;
        }
        free(url);
        if (b->pid > 0)
            proc_stop(b->pid, SIGKILL, 1000);
        b->pid = 0;
    }
    cr_assert_gt(b->pid, 0, "busybox httpd did not start");
    free(www);
    free(index);
    free(log);
    return b;
}

static void backend_stop(int i)
{
    if (T.be[i].pid > 0)
        proc_stop(T.be[i].pid, SIGTERM, 2000);
    T.be[i].pid = 0;
}

static char *upstream_of(int i)
{
    return xasprintf("127.0.0.1:%d", T.be[i].port);
}

static void put_upstream(const char *svc_dir, int i)
{
    char *k = xasprintf("%s/upstreams/%s", svc_dir, T.be[i].name), *v = upstream_of(i);
    put(k, v);
    free(k);
    free(v);
}

static void del_upstream(const char *svc_dir, int i)
{
    char *k = xasprintf("%s/upstreams/%s", svc_dir, T.be[i].name);
    del(k);
    free(k);
}

static char *lb_url(const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", T.http_port, path);
}

static void lb_start(const char *const *extra_env)
{
    char *bin = xasprintf("%s/kontena-lb", KONTENA_BIN_DIR), *hp, *sp, *ep, *path, *run, *url;
    const char *env[16];
    size_t n = 0;

    hp = xasprintf("KONTENA_LB_HTTP_PORT=%d", T.http_port);
    sp = xasprintf("KONTENA_LB_STATS_PORT=%d", T.stats_port);
    ep = xasprintf("ETCD_ENDPOINTS=%s", getenv("TEST_LB_ETCD"));
    path = xasprintf("ETCD_PATH=%s", T.root);
    run = xasprintf("KONTENA_LB_RUN_DIR=%s", T.run_dir);
    env[n++] = hp;
    env[n++] = sp;
    env[n++] = ep;
    env[n++] = path;
    env[n++] = run;
    env[n++] = "KONTENA_LB_HEALTH_URI=/__health";
    env[n++] = "KONTENA_LB_HTTPS_PORT=1";
    for (; extra_env && *extra_env && n < 15; extra_env++)
        env[n++] = *extra_env;
    env[n] = NULL;
    T.lb = proc_spawn((const char *const[]){bin, NULL}, env, T.lb_log);
    cr_assert_gt(T.lb, 0);
    url = lb_url("/__health");
    if (proc_wait_http(url, 200, 15000) != 0) {
        proc_dump_file(T.lb_log);
        cr_assert_fail("kontena-lb did not answer %s", url);
    }
    free(url);
    free(bin);
    free(hp);
    free(sp);
    free(ep);
    free(path);
    free(run);
}

static void setup(void)
{
    const char *ep = getenv("TEST_LB_ETCD");
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;
    const struct criterion_test *t = criterion_current_test;

    cr_assert_not_null(ep, "etcd did not start (see the runner's output)");
    memset(&T, 0, sizeof(T));
    T.dir = proc_tempdir("testlb");
    T.root = xasprintf("/kontena/haproxy/t/%s", t->name);
    T.run_dir = xasprintf("%s/run", T.dir);
    T.lb_log = xasprintf("%s/lb.log", T.dir);
    o.endpoints = ep;
    T.etcd = etcd_create(&o, &e);
    cr_assert_not_null(T.etcd, "%s", e.msg);
    T.http_port = proc_free_port();
    do
        T.stats_port = proc_free_port();
    while (T.stats_port == T.http_port);
    do
        T.tcp_port = proc_free_port();
    while (T.tcp_port == T.http_port || T.tcp_port == T.stats_port);
}

/* pids of processes whose command line mentions s. */
static int procs_mentioning(const char *s, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL && n < max) {
        char path[300], buf[4096];
        FILE *f;
        size_t len;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[len] = 0;
        if (strstr(buf, s) && strstr(buf, "haproxy"))
            out[n++] = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    return n;
}

static void teardown(void)
{
    pid_t left[16];
    int n;

    if (T.lb > 0)
        proc_stop(T.lb, SIGTERM, 12000);
    if (getenv("TEST_LB_VERBOSE") && T.lb_log)
        proc_dump_file(T.lb_log);
    /* Never leave a haproxy behind, even when a test failed half-way. */
    n = procs_mentioning(T.run_dir ? T.run_dir : "/nonexistent", left, 16);
    for (int i = 0; i < n; i++)
        kill(left[i], SIGKILL);
    for (int i = 0; i < MAX_BACKENDS; i++)
        backend_stop(i);
    if (T.etcd) {
        char *end = etcd_prefix_end(T.root);
        struct err e = ERR_INIT;
        if (etcd_delete(T.etcd, T.root, end, NULL, &e) != ST_OK)
            fprintf(stderr, "test_lb: cleanup of %s: %s\n", T.root, e.msg);
        free(end);
    }
    etcd_destroy(T.etcd);
    if (T.dir) {
        proc_rmtree(T.dir);
        free(T.dir);
    }
    free(T.root);
    free(T.run_dir);
    free(T.lb_log);
    memset(&T, 0, sizeof(T));
}

TestSuite(lb, .init = setup, .fini = teardown, .timeout = 90);

/* GET url with an optional Host; the status and the first line of the body. */
static long get(const char *path, const char *host, char *first, size_t cap)
{
    struct http_reply r = {0};
    char *url = lb_url(path), *hdr = host ? xasprintf("Host: %s", host) : NULL;
    long status;

    http_do("GET", url, NULL, NULL, 0, hdr, &r);
    status = r.status;
    if (first) {
        size_t l = r.body ? strcspn(r.body, "\n") : 0;
        if (l >= cap)
            l = cap - 1;
        memcpy(first, r.body ? r.body : "", l);
        first[l] = 0;
    }
    http_reply_release(&r);
    free(url);
    free(hdr);
    return status;
}

/* Poll until GET path (Host host) answers with body `want` (status 200), up to timeout_ms.
 * Returns the elapsed µs or -1. */
static int64_t wait_body(const char *path, const char *host, const char *want, int timeout_ms)
{
    int64_t t0 = now_us();
    char body[128];

    while (now_us() - t0 < (int64_t)timeout_ms * 1000) {
        if (get(path, host, body, sizeof(body)) == 200 && strcmp(body, want) == 0)
            return now_us() - t0;
        usleep(5000);
    }
    return -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = xmalloc((size_t)n + 1);
    n = (long)fread(s, 1, (size_t)n, f);
    s[n] = 0;
    fclose(f);
    return s;
}

static int log_has(const char *what)
{
    char *s = read_file(T.lb_log);
    int has = s && strstr(s, what);
    free(s);
    return has;
}

/* A plain TCP exchange: connect, send an HTTP request, read the first line of the body. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
static int tcp_get(int port, char *first, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    const char req[] = "GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    struct timeval tv = {3, 0};
    char *body;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
        close(fd);
        return -1;
    }
    while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = 0;
    body = strstr(buf, "\r\n\r\n");
    if (!body)
        return -1;
    body += 4;
    snprintf(first, cap, "%.*s", (int)strcspn(body, "\n"), body);
    return 0;
}

Test(lb, routes_by_host_path_and_tcp)
{
    char body[128], *v;

    backend_start(0, "web-1");
    backend_start(1, "api-1");
    backend_start(2, "db-1");
    put("services/web/virtual_hosts", "web.test,*.web.test");
    put_upstream("services/web", 0);
    put("services/api/virtual_path", "/api");
    put_upstream("services/api", 1);
    put("services/api-keep/virtual_path", "/keep");
    put("services/api-keep/keep_virtual_path", "true");
    put_upstream("services/api-keep", 1);
    v = xasprintf("%d", T.tcp_port);
    put("tcp-services/db/external_port", v);
    free(v);
    put_upstream("tcp-services/db", 2);
    lb_start(NULL);

    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0, "by virtual host");
    cr_assert_eq(get("/", "web.test:8080", body, sizeof(body)), 200, "port stripped from Host");
    cr_assert_str_eq(body, "web-1");
    cr_assert_eq(get("/", "a.b.web.test", body, sizeof(body)), 200, "wildcard host");
    cr_assert_str_eq(body, "web-1");
    cr_assert_eq(get("/api/", "other.test", body, sizeof(body)), 200, "by path, prefix stripped");
    cr_assert_str_eq(body, "api-1");
    cr_assert_eq(get("/api", NULL, body, sizeof(body)), 200);
    cr_assert_str_eq(body, "api-1");
    cr_assert_eq(get("/api/index.html", NULL, body, sizeof(body)), 200);
    cr_assert_str_eq(body, "api-1");
    cr_assert_eq(get("/keep/", NULL, NULL, 0), 404,
                 "keep_virtual_path: /keep/ reaches the backend as is (it has no /keep)");
    cr_assert_eq(get("/", "nothing.test", NULL, 0), 503, "no default backend");
    cr_assert_eq(get("/__health", "nothing.test", NULL, 0), 200, "monitor-uri");
    cr_assert_eq(tcp_get(T.tcp_port, body, sizeof(body)), 0, "tcp port %d", T.tcp_port);
    cr_assert_str_eq(body, "db-1");
    {
        struct http_reply r = {0};
        char *url = xasprintf("http://stats:secret@127.0.0.1:%d/", T.stats_port);
        http_do("GET", url, NULL, NULL, 0, NULL, &r);
        cr_assert_eq(r.status, 200, "stats with the password");
        cr_assert(r.body && strstr(r.body, "web-1"), "stats lists the servers");
        http_reply_release(&r);
        free(url);
        url = xasprintf("http://127.0.0.1:%d/", T.stats_port);
        http_do("GET", url, NULL, NULL, 0, NULL, &r);
        cr_assert_eq(r.status, 401, "stats without the password");
        http_reply_release(&r);
        free(url);
        /* haproxy's Prometheus exporter on the stats port, for scrapers (no password) */
        url = xasprintf("http://127.0.0.1:%d/metrics", T.stats_port);
        http_do("GET", url, NULL, NULL, 0, NULL, &r);
        cr_assert_eq(r.status, 200, "/metrics on the stats port");
        cr_assert(r.body && strstr(r.body, "haproxy_server_") && strstr(r.body, "web-1"),
                  "/metrics has the servers: %.300s", r.body ? r.body : "");
        http_reply_release(&r);
        free(url);
    }

    /* A backend's keys removed: it is gone from the configuration. */
    del("services/api/virtual_path");
    del_upstream("services/api", 1);
    {
        int64_t t0 = now_us();
        long st = 0;
        while (now_us() - t0 < 5000000 && (st = get("/api/", NULL, NULL, 0)) != 503)
            usleep(10000);
        cr_assert_eq(st, 503, "removed backend still answers");
    }
}

Test(lb, new_upstream_latency)
{
    int64_t worst = 0, sum = 0;
    const int rounds = 5;

    backend_start(0, "web-1");
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);
    for (int i = 1; i <= rounds; i++) {
        char name[32];
        int64_t t0, dt, poll_t0;
        snprintf(name, sizeof(name), "web-%d", i + 1);
        backend_start(i, name);
        t0 = now_us();
        put_upstream("services/web", i);
        poll_t0 = now_us();
        /* roundrobin over i+1 servers: the new one answers within i+1 requests once live */
        dt = wait_body("/", "web.test", name, 5000);
        cr_assert_geq(dt, 0, "%s never answered", name);
        dt += poll_t0 - t0;
        fprintf(stderr, "test_lb: upstream %s: key written -> first request served: %.1f ms\n",
                name, (double)dt / 1000.0);
        sum += dt;
        if (dt > worst)
            worst = dt;
    }
    fprintf(stderr, "test_lb: key written -> served: mean %.1f ms, worst %.1f ms (%d rounds)\n",
            (double)sum / rounds / 1000.0, (double)worst / 1000.0, rounds);
    if (worst > 500000 || getenv("TEST_LB_VERBOSE"))
        proc_dump_file(T.lb_log);
    cr_assert_lt(worst, 1000000, "a new upstream took %.1f ms to serve", (double)worst / 1000.0);
}

Test(lb, invalid_custom_setting)
{
    char *cfg = NULL, *after = NULL, body[128], *p = xasprintf("%s/haproxy.cfg", T.run_dir);

    backend_start(0, "web-1");
    backend_start(1, "web-2");
    backend_start(2, "api-1");
    put("services/web/virtual_hosts", "web.test");
    put("services/web/custom_settings", "http-response set-header X-Ok yes");
    put_upstream("services/web", 0);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);
    cfg = read_file(p);
    cr_assert_not_null(cfg);

    /* A line common/lbenv lets through (no control characters, no new section) but haproxy
     * refuses: the running configuration stays, and keeps serving. */
    put("services/web/custom_settings", "option no-such-option-anywhere");
    for (int i = 0; i < 300 && !log_has("haproxy refuses the new settings"); i++)
        usleep(10000);
    cr_assert(log_has("haproxy refuses the new settings"), "no refusal logged");
    cr_assert(log_has("backend=web"), "the refused line is traced to backend web");
    after = read_file(p);
    cr_assert_str_eq(after, cfg, "the running configuration was replaced");
    FREE_AND_NULL(after);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(get("/", "web.test", body, sizeof(body)), 200, "still serving");
        cr_assert_str_eq(body, "web-1");
    }

    /* Other changes are not held up: web's upstreams follow (with its last accepted
     * settings), a new backend appears; a new backend haproxy refuses stays out. */
    put_upstream("services/web", 1);
    put("services/api/virtual_path", "/api");
    put_upstream("services/api", 2);
    put("services/bad/virtual_path", "/bad");
    put("services/bad/custom_settings", "option another-unknown-option");
    put_upstream("services/bad", 2);
    cr_assert_geq(wait_body("/", "web.test", "web-2", 5000), 0, "web's new upstream held up");
    cr_assert_geq(wait_body("/api/", NULL, "api-1", 5000), 0, "new backend held up");
    cr_assert_eq(get("/bad/", NULL, NULL, 0), 503, "a backend haproxy refuses is left out");
    after = read_file(p);
    cr_assert(strstr(after, "X-Ok yes"), "web keeps its last accepted settings");
    cr_assert_null(strstr(after, "no-such-option"));
    cr_assert_null(strstr(after, "another-unknown"));
    FREE_AND_NULL(after);

    /* Fixed: the new settings are applied. */
    put("services/web/custom_settings", "http-response set-header X-Ok fixed");
    for (int i = 0; i < 300; i++) {
        after = read_file(p);
        if (after && strstr(after, "X-Ok fixed"))
            break;
        FREE_AND_NULL(after);
        usleep(10000);
    }
    cr_assert_not_null(after, "the fixed setting was not applied");
    free(after);
    free(cfg);
    free(p);
}

Test(lb, bad_keys_left_out)
{
    char body[128];

    backend_start(0, "web-1");
    backend_start(1, "api-1");
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    put("services/api/virtual_path", "/api");
    put("services/api/balance", "fastest-please");
    put_upstream("services/api", 1);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);
    cr_assert_eq(get("/api/", NULL, NULL, 0), 503, "backend with a bad balance left out");
    cr_assert(log_has("left out: backend 'api' (services): balance:"), "not logged");
    put("services/api/balance", "leastconn");
    cr_assert_geq(wait_body("/api/", NULL, "api-1", 5000), 0, "fixed backend not applied");
    cr_assert_eq(get("/", "web.test", body, sizeof(body)), 200);
}

Test(lb, zero_failures_under_load, .timeout = 120)
{
    struct httpload_opts o = {0};
    struct httpload *l;
    int64_t ok, failed, t_put[MAX_BACKENDS] = {0};
    char *url = lb_url("/");

    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof(name), "web-%d", i + 1);
        backend_start(i, name);
    }
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);

    o.url = url;
    o.host = "web.test";
    o.threads = 4; /* 2 keep-alive, 2 new connection per request */
    o.max_requests = 40000;
    o.max_ms = 25000;
    l = httpload_start(&o);
    cr_assert_not_null(l);
    usleep(500000);
    /* Scale 1 → 6, one upstream every 300 ms. */
    for (int i = 1; i < 6; i++) {
        t_put[i] = now_us();
        put_upstream("services/web", i);
        usleep(300000);
    }
    for (int i = 1; i < 6; i++) {
        int64_t first = httpload_wait_seen(l, T.be[i].name, 3000);
        cr_expect_geq(first, 0, "%s never served under load", T.be[i].name);
        if (first >= 0)
            fprintf(stderr, "test_lb: under load, %s served %.1f ms after its key\n", T.be[i].name,
                    (double)(first - t_put[i]) / 1000.0);
    }
    /* Changes that need a reload (a backend's settings), under load: seamless. */
    for (int i = 0; i < 3; i++) {
        char v[64];
        snprintf(v, sizeof(v), "http-response set-header X-Rev %d", i);
        put("services/web/custom_settings", v);
        usleep(400000);
    }
    put("services/other/virtual_hosts", "other.test");
    usleep(400000);
    cr_expect(log_has("configuration applied (reload)"), "no reload happened under load");
    cr_expect(log_has("configuration applied (runtime API, no reload)"),
              "no runtime API change happened under load");
    /* Scale 6 → 1 as an instance going away does it: the upstream leaves first, the
     * process stops a moment later; one is killed abruptly while still in the keys
     * (retry-on conn-failure + redispatch). */
    for (int i = 5; i >= 1; i--) {
        del_upstream("services/web", i);
        usleep(300000);
    }
    usleep(700000);
    for (int i = 5; i >= 1; i--)
        backend_stop(i);
    /* Up again and killed while listed: the retries hide it. */
    backend_start(1, "web-2b");
    put_upstream("services/web", 1);
    cr_expect_geq(httpload_wait_seen(l, "web-2b", 3000), 0);
    proc_stop(T.be[1].pid, SIGKILL, 1000);
    T.be[1].pid = 0;
    usleep(1000000);
    del_upstream("services/web", 1);
    usleep(500000);
    httpload_stop(l);
    ok = httpload_ok(l);
    failed = httpload_failed(l);
    fprintf(stderr, "test_lb: under load: %lld ok, %lld failed, %.0f req/s\n", (long long)ok,
            (long long)failed, httpload_rps(l));
    if (failed || getenv("TEST_LB_VERBOSE")) {
        httpload_report(l, stderr);
        proc_dump_file(T.lb_log);
    }
    cr_assert_eq(failed, 0, "%lld failed requests", (long long)failed);
    cr_assert_gt(ok, 1000, "only %lld requests", (long long)ok);
    httpload_destroy(l);
    free(url);
}

Test(lb, sigterm_leaves_no_haproxy)
{
    pid_t left[16];
    int ws, n;

    backend_start(0, "web-1");
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);
    cr_assert_gt(procs_mentioning(T.run_dir, left, 16), 0, "no haproxy running?");
    ws = proc_stop(T.lb, SIGTERM, 12000);
    T.lb = 0;
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "kontena-lb exit status %d", ws);
    n = procs_mentioning(T.run_dir, left, 16);
    cr_assert_eq(n, 0, "%d haproxy processes left (first pid %d)", n, n ? (int)left[0] : 0);
    cr_assert(log_has("haproxy stopped (status 0)"), "haproxy not soft-stopped");

    /* SIGKILL of kontena-lb: the parent-death signal takes haproxy down too. */
    lb_start(NULL);
    cr_assert_gt(procs_mentioning(T.run_dir, left, 16), 0);
    proc_stop(T.lb, SIGKILL, 2000);
    T.lb = 0;
    for (int i = 0; i < 100 && procs_mentioning(T.run_dir, left, 16) > 0; i++)
        usleep(50000);
    cr_assert_eq(procs_mentioning(T.run_dir, left, 16), 0, "haproxy outlived kontena-lb");
}

Test(lb, etcd_restart, .timeout = 120)
{
    struct etcd_proc p = ETCD_PROC_INIT;
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;
    char *ep;
    const char *env[2];

    /* A private etcd: this test stops it. */
    cr_assert_eq(etcd_proc_start(&p), 0);
    etcd_destroy(T.etcd);
    o.endpoints = p.endpoint;
    T.etcd = etcd_create(&o, &e);
    cr_assert_not_null(T.etcd);
    backend_start(0, "web-1");
    backend_start(1, "web-2");
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    ep = xasprintf("ETCD_ENDPOINTS=%s", p.endpoint);
    env[0] = ep;
    env[1] = NULL;
    lb_start(env);
    cr_assert_geq(wait_body("/", "web.test", "web-1", 5000), 0);
    etcd_proc_stop(&p);
    usleep(1500000);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(get("/", "web.test", NULL, 0), 200, "etcd down: still serving");
    cr_assert_eq(etcd_proc_restart(&p), 0);
    del_upstream("services/web", 0);
    put_upstream("services/web", 1);
    cr_assert_geq(wait_body("/", "web.test", "web-2", 15000), 0, "change after restart");
    proc_stop(T.lb, SIGTERM, 12000);
    T.lb = 0;
    free(ep);
    etcd_destroy(T.etcd);
    T.etcd = NULL; /* its keys went with the private etcd */
    etcd_proc_cleanup(&p);
}

/* Usage errors: exit status 2 and a message naming what is wrong; --help lists the flags. */
Test(lb, usage_errors)
{
    char *bin = xasprintf("%s/kontena-lb", KONTENA_BIN_DIR), *out = NULL, *err = NULL;
    char *run = xasprintf("KONTENA_LB_RUN_DIR=%s", T.run_dir);
    static const struct {
        const char *env, *arg, *want;
    } cases[] = {
        {"KONTENA_LB_HTTP_PORT=0", "--etcd-path=/x", "KONTENA_LB_HTTP_PORT"},
        {"KONTENA_LB_STATS_PORT=80", "--etcd-path=/x", "must differ"},
        {"STATS_PASSWORD=a b", "--etcd-path=/x", "STATS_PASSWORD"},
        {"KONTENA_LB_HEALTH_URI=health", "--etcd-path=/x", "KONTENA_LB_HEALTH_URI"},
        {"KONTENA_GRID_NAME=", "--log-level=info", "no key root"},
        {"KONTENA_LB_CUSTOM_SETTINGS=backend x", "--etcd-path=/x", "KONTENA_LB_CUSTOM_SETTINGS"},
        {"X=1", "--bogus", "unknown option"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = proc_run(
            (const char *const[]){bin, "--etcd-endpoints=http://127.0.0.1:1", cases[i].arg, NULL},
            (const char *const[]){cases[i].env, run, NULL}, NULL, &out, &err);
        cr_expect_eq(rc, 2, "%s %s: exit %d", cases[i].env, cases[i].arg, rc);
        cr_expect(err && strstr(err, cases[i].want), "%s %s: '%s'", cases[i].env, cases[i].arg,
                  err);
        FREE_AND_NULL(out);
        FREE_AND_NULL(err);
    }
    cr_assert_eq(proc_run((const char *const[]){bin, "--help", NULL}, NULL, NULL, &out, &err), 0);
    cr_assert(strstr(out, "--etcd-path") && strstr(out, "KONTENA_LB_HTTP_PORT (80)"), "%s", out);
    free(out);
    free(err);
    free(run);
    free(bin);
}

/* An instance re-created under its name with a new address (a redeploy): its upstream key
 * goes, then comes back with another value. The removed server is deleted from the running
 * haproxy once its connections are gone, so the new one is added through the runtime API
 * again, without a reload. */
Test(lb, same_name_new_address)
{
    char *v;
    int64_t t0, dt;

    backend_start(0, "web-1");
    backend_start(1, "web-2");
    backend_start(2, "web-2-new");
    put("services/web/virtual_hosts", "web.test");
    put_upstream("services/web", 0);
    put_upstream("services/web", 1);
    lb_start(NULL);
    cr_assert_geq(wait_body("/", "web.test", "web-2", 5000), 0);
    del_upstream("services/web", 1);
    usleep(1500000);
    v = upstream_of(2);
    t0 = now_us();
    put("services/web/upstreams/web-2", v);
    dt = wait_body("/", "web.test", "web-2-new", 5000);
    cr_assert_geq(dt, 0, "the re-created instance is not served");
    dt = now_us() - t0;
    fprintf(stderr, "test_lb: same name, new address: served %.1f ms after its key\n",
            (double)dt / 1000.0);
    cr_assert_lt(dt, 1000000);
    cr_assert_eq(log_has("configuration applied (reload"), 0,
                 "a reload was needed (the old server was not deleted)");
    free(v);
}
