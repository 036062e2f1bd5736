/* Integration test of the load balancer image (hack/lb-image.sh): built from the binaries
 * under test with a tag of its own, run by the real Docker with host networking against a
 * real etcd, with real HTTP backends (busybox httpd on 127.0.0.1).
 *
 *   serves_and_stops   key root computed from KONTENA_GRID_NAME/STACK_NAME/SERVICE_NAME
 *                      (reference §7.2), routing by virtual host, a new upstream, `docker
 *                      stop` → exit code 0 after haproxy's soft-stop
 *   ssl_certs          SSL_CERTS bundle → https on KONTENA_LB_HTTPS_PORT (TLS terminated
 *                      in the container), http still served
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/docker_env.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static struct etcd_proc g_etcd = ETCD_PROC_INIT;
static char g_image[128];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    char *script, *e_bin, *e_img, *out = NULL, *err = NULL;
    int rc;

    (void)set;
    docker_env_global_setup();
    if (etcd_proc_start(&g_etcd) == 0)
        setenv("TEST_LB_ETCD", g_etcd.endpoint, 1);
    snprintf(g_image, sizeof(g_image), "kontena/lb:%s-%d", docker_env_run_id(), (int)getpid());
    script = xasprintf("%s/hack/lb-image.sh", docker_env_source_dir());
    e_bin = xasprintf("KONTENA_BIN_DIR=%s", KONTENA_BIN_DIR);
    e_img = xasprintf("KONTENA_LB_IMAGE=%s", g_image);
    rc = proc_run((const char *const[]){script, NULL}, (const char *const[]){e_bin, e_img, NULL},
                  NULL, &out, &err);
    if (rc == 0)
        setenv("TEST_LB_IMAGE", g_image, 1);
    else
        fprintf(stderr, "test_lb_image: %s failed (exit %d): %s%s\n", script, rc, out, err);
    free(out);
    free(err);
    free(script);
    free(e_bin);
    free(e_img);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
    if (g_image[0])
        (void)proc_run((const char *const[]){"docker", "rmi", "-f", g_image, NULL}, NULL, NULL,
                       NULL, NULL);
    etcd_proc_cleanup(&g_etcd);
}

static struct {
    char *dir;
    struct etcd *etcd;
    pid_t httpd[2];
    int httpd_port[2];
    char *container;
    const char *name; /* this test's container name part: tests run in parallel */
    const char *root; /* this test's key root, the only one teardown deletes */
    int http_port, https_port, stats_port;
} T;

static void setup(void)
{
    struct etcd_opts o = {0};
    struct err e = ERR_INIT;

    docker_env_require();
    cr_assert_not_null(getenv("TEST_LB_ETCD"), "etcd did not start");
    cr_assert_not_null(getenv("TEST_LB_IMAGE"), "hack/lb-image.sh failed (see the output)");
    memset(&T, 0, sizeof(T));
    T.dir = proc_tempdir("testlbimg");
    o.endpoints = getenv("TEST_LB_ETCD");
    T.etcd = etcd_create(&o, &e);
    cr_assert_not_null(T.etcd, "%s", e.msg);
    T.http_port = proc_free_port();
    do
        T.https_port = proc_free_port();
    while (T.https_port == T.http_port);
    do
        T.stats_port = proc_free_port();
    while (T.stats_port == T.http_port || T.stats_port == T.https_port);
}

static void teardown(void)
{
    if (T.container)
        (void)proc_run((const char *const[]){"docker", "rm", "-f", T.container, NULL}, NULL, NULL,
                       NULL, NULL);
    for (int i = 0; i < 2; i++)
        if (T.httpd[i] > 0)
            proc_stop(T.httpd[i], SIGTERM, 2000);
    if (T.etcd && T.root) {
        char *end = etcd_prefix_end(T.root);
        struct err e = ERR_INIT;
        if (etcd_delete(T.etcd, T.root, end, NULL, &e) != ST_OK)
            fprintf(stderr, "test_lb_image: cleanup: %s\n", e.msg);
        free(end);
    }
    etcd_destroy(T.etcd);
    if (T.dir)
        proc_rmtree(T.dir);
    free(T.dir);
    free(T.container);
    memset(&T, 0, sizeof(T));
}

TestSuite(lb_image, .init = setup, .fini = teardown, .timeout = 120);

static void put(const char *key, const char *value)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(T.etcd, key, value, strlen(value), 0, NULL, NULL, &e), ST_OK, "%s",
                 e.msg);
}

static void httpd_start(int i, const char *name)
{
    char *www = xasprintf("%s/www-%s", T.dir, name), *index = xasprintf("%s/index.html", www),
         *bind, *url;
    FILE *f;

    mkdir(www, 0755);
    f = fopen(index, "w");
    fprintf(f, "%s\n", name);
    fclose(f);
    T.httpd_port[i] = proc_free_port();
    bind = xasprintf("127.0.0.1:%d", T.httpd_port[i]);
    T.httpd[i] =
        proc_spawn((const char *const[]){"busybox", "httpd", "-f", "-p", bind, "-h", www, NULL},
                   NULL, "/dev/null");
    url = xasprintf("http://%s/", bind);
    cr_assert_eq(proc_wait_http(url, 200, 5000), 0, "busybox httpd %s", name);
    free(url);
    free(bind);
    free(www);
    free(index);
}

/* docker run -d the image with the given extra -e arguments (NULL-ended). */
static void lb_run(const char *const *env)
{
    const char *argv[64];
    char *hp = xasprintf("KONTENA_LB_HTTP_PORT=%d", T.http_port),
         *sp = xasprintf("KONTENA_LB_STATS_PORT=%d", T.stats_port),
         *tp = xasprintf("KONTENA_LB_HTTPS_PORT=%d", T.https_port),
         *ep = xasprintf("ETCD_ENDPOINTS=%s", getenv("TEST_LB_ETCD")), *out = NULL, *err = NULL,
         *url;
    size_t n = 0;
    int rc;

    T.container = docker_env_name(T.name ? T.name : "lb");
    argv[n++] = "docker";
    argv[n++] = "run";
    argv[n++] = "-d";
    argv[n++] = "--name";
    argv[n++] = T.container;
    argv[n++] = "--label";
    argv[n++] = docker_env_run_filter();
    argv[n++] = "--network";
    argv[n++] = "host";
    const char *base[] = {hp, sp, tp, ep, "KONTENA_LB_HEALTH_URI=/__health", NULL};
    for (const char *const *p = base; *p; p++) {
        argv[n++] = "-e";
        argv[n++] = *p;
    }
    for (const char *const *p = env; p && *p && n < 60; p++) {
        argv[n++] = "-e";
        argv[n++] = *p;
    }
    argv[n++] = getenv("TEST_LB_IMAGE");
    argv[n] = NULL;
    rc = proc_run(argv, NULL, NULL, &out, &err);
    cr_assert_eq(rc, 0, "docker run: %s", err);
    url = xasprintf("http://127.0.0.1:%d/__health", T.http_port);
    if (proc_wait_http(url, 200, 20000) != 0) {
        char *logs = NULL, *logs_err = NULL;
        (void)proc_run((const char *const[]){"docker", "logs", T.container, NULL}, NULL, NULL,
                       &logs, &logs_err);
        cr_assert_fail("the LB container does not answer %s:\n%s%s", url, logs ? logs : "",
                       logs_err ? logs_err : "");
    }
    free(url);
    free(out);
    free(err);
    free(hp);
    free(sp);
    free(tp);
    free(ep);
}

static long get(const char *scheme, int port, const char *host, char *first, size_t cap)
{
    struct http_reply r = {0};
    char *url = xasprintf("%s://127.0.0.1:%d/", scheme, port), *hdr = xasprintf("Host: %s", host);
    long st;

    http_do("GET", url, NULL, NULL, 0, hdr, &r);
    st = r.status;
    snprintf(first, cap, "%.*s", r.body ? (int)strcspn(r.body, "\n") : 0, r.body ? r.body : "");
    http_reply_release(&r);
    free(url);
    free(hdr);
    return st;
}

static int wait_body(const char *scheme, int port, const char *host, const char *want)
{
    char body[128];
    for (int i = 0; i < 500; i++) {
        if (get(scheme, port, host, body, sizeof(body)) == 200 && strcmp(body, want) == 0)
            return 0;
        usleep(20000);
    }
    return -1;
}

Test(lb_image, serves_and_stops)
{
    char v[64], *out = NULL, *logs = NULL, *logs_err = NULL;

    T.name = "lb-serve";
    T.root = "/kontena/haproxy/g1/infra/";
    httpd_start(0, "web-1");
    httpd_start(1, "web-2");
    /* The root the original computed: /kontena/haproxy/<grid>/<stack>/<service>. */
    put("/kontena/haproxy/g1/infra/lb/services/web/virtual_hosts", "web.test");
    snprintf(v, sizeof(v), "127.0.0.1:%d", T.httpd_port[0]);
    put("/kontena/haproxy/g1/infra/lb/services/web/upstreams/web-1", v);
    lb_run((const char *const[]){"KONTENA_GRID_NAME=g1", "KONTENA_STACK_NAME=infra",
                                 "KONTENA_SERVICE_NAME=lb", NULL});
    cr_assert_eq(wait_body("http", T.http_port, "web.test", "web-1"), 0, "not routed");
    snprintf(v, sizeof(v), "127.0.0.1:%d", T.httpd_port[1]);
    put("/kontena/haproxy/g1/infra/lb/services/web/upstreams/web-2", v);
    cr_assert_eq(wait_body("http", T.http_port, "web.test", "web-2"), 0, "new upstream");

    cr_assert_eq(proc_run((const char *const[]){"docker", "stop", "-t", "20", T.container, NULL},
                          NULL, NULL, NULL, NULL),
                 0);
    cr_assert_eq(proc_run((const char *const[]){"docker", "inspect", "-f", "{{.State.ExitCode}}",
                                                T.container, NULL},
                          NULL, NULL, &out, NULL),
                 0);
    /* kontena-lb and haproxy log to stdout */
    (void)proc_run((const char *const[]){"docker", "logs", T.container, NULL}, NULL, NULL, &logs,
                   &logs_err);
    cr_assert_eq(atoi(out), 0, "exit code %s; logs:\n%s%s", out, logs, logs_err);
    cr_assert(logs && strstr(logs, "haproxy stopped (status 0)"), "stdout:\n%s\nstderr:\n%s", logs,
              logs_err);
    cr_assert(strstr(logs, "key=/kontena/haproxy/g1/infra/lb/"), "root computed from the env");
    free(out);
    free(logs);
    free(logs_err);
}

Test(lb_image, ssl_certs)
{
    char *key = xasprintf("%s/k.pem", T.dir), *crt = xasprintf("%s/c.pem", T.dir), *pem, *env_certs,
         body[128], v[64];
    char *out = NULL, *err = NULL;
    int rc;

    T.name = "lb-ssl";
    T.root = "/kontena/haproxy/g1/lb/";
    rc = proc_run((const char *const[]){"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
                                        crt, "-days", "2", "-subj", "/CN=web.test", NULL},
                  NULL, NULL, &out, &err);
    cr_assert_eq(rc, 0, "openssl: %s", err);
    free(out);
    free(err);
    {
        char *cmd = xasprintf("cat %s %s", crt, key);
        cr_assert_eq(proc_run((const char *const[]){"sh", "-c", cmd, NULL}, NULL, NULL, &pem, NULL),
                     0);
        free(cmd);
    }
    env_certs = xasprintf("SSL_CERTS=%s", pem);
    httpd_start(0, "web-1");
    put("/kontena/haproxy/g1/lb/services/web/virtual_hosts", "web.test");
    snprintf(v, sizeof(v), "127.0.0.1:%d", T.httpd_port[0]);
    put("/kontena/haproxy/g1/lb/services/web/upstreams/web-1", v);
    /* KONTENA_STACK_NAME=null: no stack part in the root. */
    lb_run((const char *const[]){"KONTENA_GRID_NAME=g1", "KONTENA_STACK_NAME=null",
                                 "KONTENA_SERVICE_NAME=lb", env_certs, NULL});
    cr_assert_eq(wait_body("https", T.https_port, "web.test", "web-1"), 0, "https not served");
    cr_assert_eq(get("http", T.http_port, "web.test", body, sizeof(body)), 200);
    cr_assert_str_eq(body, "web-1");
    free(key);
    free(crt);
    free(pem);
    free(env_certs);
}
