/* Agents connecting to the master: real kontena-agent processes (--no-docker) against a real
 * kontena-apiserver with its agents' endpoint and a real etcd, one of each per test. Checks
 * registration (node numbers), liveness (online/offline through the socket, pings and the
 * lease), reconnects, rejection, and the node routes and commands. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/crypto.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/agent_proc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#define PING_MS 500
#define PING_TIMEOUT_MS 1000
#define LEASE_TTL_S 3

static char *uri, *token, *grid_token, *pem;

static char *url(const char *path)
{
    return xasprintf("%s%s", api.url, path);
}

static void req(const char *method, const char *path, const char *body, struct http_reply *r)
{
    char *u = url(path);
    cr_assert_eq(http_do(method, u, token, body, (size_t)-1, NULL, r), 0, "%s %s failed", method,
                 path);
    free(u);
}

static void setup(void)
{
    struct http_reply r;
    char *u, *body;

    uri = agent_proc_env(1, PING_MS, PING_TIMEOUT_MS, LEASE_TTL_S);
    api_fixture_setup();
    pem = xasprintf("%s/master.pem", api.dir);
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     api.admin_password);
    u = url("/oauth2/token");
    cr_assert_eq(http_do("POST", u, NULL, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "login: %ld %s", r.status, r.body);
    token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    http_reply_release(&r);
    free(u);
    free(body);
    req("POST", "/v1/grids", "{\"name\":\"grd\",\"initial_size\":1}", &r);
    cr_assert_eq(r.status, 201, "grid create: %ld %s", r.status, r.body);
    grid_token = xstrdup(json_string_value(json_object_get(r.json, "token")));
    http_reply_release(&r);
}

static void teardown(void)
{
    api_fixture_teardown();
    FREE_AND_NULL(uri);
    FREE_AND_NULL(token);
    FREE_AND_NULL(grid_token);
    FREE_AND_NULL(pem);
}

TestSuite(agent, .init = setup, .fini = teardown, .timeout = 120);

/* GET the node; its status ("online", ...) or "missing"; *number (may be NULL). */
static char *node_status(const char *name, long *number)
{
    struct http_reply r;
    char *path = xasprintf("/v1/nodes/grd/%s", name), *st;

    req("GET", path, NULL, &r);
    free(path);
    if (r.status == 404) {
        st = xstrdup("missing");
    } else {
        cr_assert_eq(r.status, 200, "GET node %s: %ld %s", name, r.status, r.body);
        st = xstrdup(json_string_value(json_object_get(r.json, "status")));
        if (number)
            *number = (long)json_integer_value(json_object_get(r.json, "node_number"));
    }
    http_reply_release(&r);
    return st;
}

/* Poll until the node has status want; returns the ms it took, or -1 after timeout_ms. */
static long wait_status(const char *name, const char *want, int timeout_ms)
{
    int64_t t0 = time_mono_ms();

    for (;;) {
        char *st = node_status(name, NULL);
        int ok = !strcmp(st, want);
        free(st);
        if (ok)
            return (long)(time_mono_ms() - t0);
        if (time_mono_ms() - t0 > timeout_ms)
            return -1;
        time_sleep_ms(50);
    }
}

static void start_agent(struct agent_proc *a, const char *name)
{
    const char *extra[] = {
        "--ca-cert", pem, "--ping-interval", "500", "--ping-timeout", "1000", "--backoff-max",
        "1000",      NULL};
    cr_assert_eq(agent_proc_start(a, api.dir, uri, grid_token, name, extra), 0);
}

API_TEST(agent, connects_and_registers_as_node_1)
{
    struct agent_proc a;
    struct http_reply r;
    json_t *n;

    start_agent(&a, "n1");
    cr_assert_geq(wait_status("n1", "online", 10000), 0, "n1 not online; agent log:\n%s",
                  agent_proc_read_log(&a));
    cr_assert(agent_proc_wait_log(&a, "registered as node 'n1' number 1 of grid 'grd'", 5000));
    /* /nodes/update has filled in the host's facts. */
    for (int i = 0; i < 100; i++) {
        req("GET", "/v1/nodes/grd/n1", NULL, &r);
        if (json_is_integer(json_object_get(r.json, "cpus")))
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    n = r.json;
    cr_assert_eq(json_integer_value(json_object_get(n, "node_number")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(n, "id")), "grd/n1");
    cr_assert_str_eq(json_string_value(json_object_get(n, "availability")), "active");
    cr_assert(json_is_true(json_object_get(n, "connected")));
    cr_assert_gt(json_integer_value(json_object_get(n, "cpus")), 0);
    cr_assert_gt(json_integer_value(json_object_get(n, "mem_total")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(n, "agent_version")), KONTENA_VERSION);
    cr_assert_str_eq(json_string_value(json_object_get(n, "public_ip")), "127.0.0.1");
    cr_assert(json_is_string(json_object_get(n, "kernel_version")));
    http_reply_release(&r);

    req("GET", "/v1/grids/grd/nodes", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "nodes")), 1);
    http_reply_release(&r);
    req("GET", "/v1/grids/grd", NULL, &r);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "node_count")), 1, "%s", r.body);
    http_reply_release(&r);

    /* A clean stop of the agent: offline, and the agent exits 0. */
    cr_assert_eq(WEXITSTATUS(agent_proc_stop(&a, SIGTERM)), 0);
    cr_assert_geq(wait_status("n1", "offline", 3000), 0);
    agent_proc_cleanup(&a);
}

API_TEST(agent, killed_or_frozen_agent_goes_offline_within_the_timeout)
{
    struct agent_proc a;
    long ms;

    start_agent(&a, "n1");
    cr_assert_geq(wait_status("n1", "online", 10000), 0);
    /* Frozen: the socket stays open, pings go unanswered → ping timeout. */
    kill(a.pid, SIGSTOP);
    ms = wait_status("n1", "offline", PING_MS + PING_TIMEOUT_MS + 2000);
    cr_assert_geq(ms, 0, "frozen agent still online");
    kill(a.pid, SIGCONT);
    /* It notices the closed socket and comes back. */
    cr_assert_geq(wait_status("n1", "online", 10000), 0, "agent did not reconnect:\n%s",
                  agent_proc_read_log(&a));
    /* Killed: the kernel closes the socket → offline at once. */
    agent_proc_stop(&a, SIGKILL);
    ms = wait_status("n1", "offline", PING_MS + PING_TIMEOUT_MS + 1000);
    cr_assert_geq(ms, 0, "killed agent still online");
    agent_proc_cleanup(&a);
}

/* Both agents' logs and the apiserver's (old and new server: the log is appended to), for
 * the message of a failed wait (fresh memory; the test ends there, so it is not freed). */
static char *restart_logs(const struct agent_proc *a, const struct agent_proc *b)
{
    char *la = agent_proc_read_log(a), *lb = agent_proc_read_log(b), *ls, *out;
    char *path = xasprintf("%s/apiserver.log", api.dir);
    struct agent_proc srv = {.log = path};

    ls = agent_proc_read_log(&srv); /* any file: reads it whole, up to 1 MiB */
    out = xasprintf("--- agent %s:\n%s--- agent %s:\n%s--- apiserver:\n%s", a->name, la, b->name,
                    lb, ls);
    free(la);
    free(lb);
    free(ls);
    free(path);
    return out;
}

API_TEST(agent, master_restart_agent_reconnects_with_the_same_number)
{
    struct agent_proc a, b;
    long na = 0, nb = 0;
    char *st;

    start_agent(&a, "n1");
    start_agent(&b, "n2");
    cr_assert_geq(wait_status("n1", "online", 10000), 0, "n1 not online:\n%s",
                  restart_logs(&a, &b));
    cr_assert_geq(wait_status("n2", "online", 10000), 0, "n2 not online:\n%s",
                  restart_logs(&a, &b));
    free(node_status("n1", &na));
    free(node_status("n2", &nb));
    cr_assert_eq(api_proc_restart(&api), 0);
    cr_assert_geq(wait_status("n1", "online", 15000), 0, "n1 did not come back:\n%s",
                  restart_logs(&a, &b));
    cr_assert_geq(wait_status("n2", "online", 15000), 0, "n2 did not come back:\n%s",
                  restart_logs(&a, &b));
    st = node_status("n1", &na);
    free(st);
    {
        long na2 = 0, nb2 = 0;
        free(node_status("n1", &na2));
        free(node_status("n2", &nb2));
        cr_assert_eq(na2, na);
        cr_assert_eq(nb2, nb);
        cr_assert_neq(na2, nb2);
    }
    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

API_TEST(agent, master_killed_nodes_go_offline_when_the_lease_expires)
{
    struct agent_proc a;
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct etcd *c = etcd_create(&o, NULL);
    struct etcd_kv kv = {0};
    int64_t t0;
    enum status st = ST_OK;

    start_agent(&a, "n1");
    cr_assert_geq(wait_status("n1", "online", 10000), 0);
    cr_assert_eq(etcd_get(c, "/kontena/node_status/grd/n1", &kv, NULL, NULL), ST_OK);
    etcd_kv_release(&kv);
    /* The master dies without a word: only the lease can tell. */
    proc_stop(api.pid, SIGKILL, 1000);
    api.pid = 0;
    agent_proc_stop(&a, SIGKILL); /* so it does not come back in between */
    t0 = time_mono_ms();
    while (time_mono_ms() - t0 < (LEASE_TTL_S + 3) * 1000 &&
           (st = etcd_get(c, "/kontena/node_status/grd/n1", &kv, NULL, NULL)) == ST_OK) {
        etcd_kv_release(&kv);
        time_sleep_ms(100);
    }
    cr_assert_eq(st, ST_NOTFOUND, "status key outlived the lease");
    etcd_destroy(c);
    agent_proc_cleanup(&a);
    cr_assert_eq(api_proc_restart(&api), 0); /* API_TEST wants a server to stop */
}

API_TEST(agent, twenty_agents_at_once_get_twenty_distinct_numbers)
{
    struct agent_proc a[20];
    char name[16];
    int seen[256] = {0};
    struct http_reply r;
    json_t *x;
    size_t i;

    for (int k = 0; k < 20; k++) {
        snprintf(name, sizeof(name), "node-%02d", k);
        start_agent(&a[k], name);
    }
    for (int k = 0; k < 20; k++) {
        snprintf(name, sizeof(name), "node-%02d", k);
        cr_assert_geq(wait_status(name, "online", 30000), 0, "%s not online:\n%s", name,
                      agent_proc_read_log(&a[k]));
    }
    req("GET", "/v1/grids/grd/nodes", NULL, &r);
    cr_assert_eq(json_array_size(json_object_get(r.json, "nodes")), 20);
    json_array_foreach(json_object_get(r.json, "nodes"), i, x)
    {
        json_int_t n = json_integer_value(json_object_get(x, "node_number"));
        cr_assert(n >= 1 && n <= 20, "number %lld", (long long)n);
        cr_assert_eq(seen[n], 0, "number %lld given twice", (long long)n);
        seen[n] = 1;
    }
    http_reply_release(&r);
    for (int k = 0; k < 20; k++)
        agent_proc_cleanup(&a[k]);
}

API_TEST(agent, bad_token_is_rejected_and_ends_the_agent)
{
    struct agent_proc a;
    const char *extra[] = {"--ca-cert", pem, NULL};
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct etcd *c = etcd_create(&o, NULL);
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct etcd_range_result res = {0};
    char *log, *alog = xasprintf("%s/apiserver.log", api.dir);
    int st;

    cr_assert_eq(agent_proc_start(&a, api.dir, uri, "not-the-token", "bad", extra), 0);
    st = agent_proc_wait_exit(&a, 10000);
    log = agent_proc_read_log(&a);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "agent did not exit 1:\n%s", log);
    cr_assert(strstr(log, "invalid grid token"), "%s", log);
    free(log);
    {
        struct agent_proc m = {.log = alog};
        cr_assert(agent_proc_wait_log(&m, "rejected agent 'bad' from 127.0.0.1: invalid grid token",
                                      1000));
    }
    cr_assert_eq(etcd_range(c, "/kontena/nodes/", &ro, &res, NULL), ST_OK);
    cr_assert_eq(res.count, 0, "a node was created");
    etcd_range_result_release(&res);
    cr_assert_eq(etcd_range(c, "/kontena/ipam/", &ro, &res, NULL), ST_OK);
    cr_assert_eq(res.count, 0, "a node number was taken");
    etcd_range_result_release(&res);
    etcd_destroy(c);
    free(alog);
    agent_proc_cleanup(&a);
}

API_TEST(agent, pinned_fingerprint_accepted_wrong_pin_refused)
{
    struct agent_proc a, b;
    struct http_reply r;
    const char *fp;
    char *pin;

    req("GET", "/v1/ping", NULL, &r);
    http_reply_release(&r);
    /* The fingerprint the apiserver logs at start. */
    {
        struct agent_proc m = {.log = xasprintf("%s/apiserver.log", api.dir)};
        char *s = agent_proc_read_log(&m), *p = strstr(s, "cert_sha256=");
        cr_assert(p, "no fingerprint in the log:\n%s", s);
        fp = p + strlen("cert_sha256=");
        pin = xstrndup(fp, 64);
        free(s);
        free(m.log);
    }
    {
        const char *extra[] = {"--pin-sha256", pin, NULL};
        cr_assert_eq(agent_proc_start(&a, api.dir, uri, grid_token, "pinned", extra), 0);
    }
    cr_assert_geq(wait_status("pinned", "online", 10000), 0, "%s", agent_proc_read_log(&a));
    {
        const char *extra[] = {"--pin-sha256",
                               "00000000000000000000000000000000000000000000000000000000000000aa",
                               NULL};
        cr_assert_eq(agent_proc_start(&b, api.dir, uri, grid_token, "wrongpin", extra), 0);
    }
    cr_assert(agent_proc_wait_log(&b, "does not match the pinned", 5000), "%s",
              agent_proc_read_log(&b));
    free(node_status("wrongpin", NULL));
    cr_assert_geq(wait_status("wrongpin", "missing", 10), 0);
    free(pin);
    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

API_TEST(agent, node_update_and_remove)
{
    struct agent_proc a;
    struct http_reply r;
    long n = 0;

    start_agent(&a, "n1");
    cr_assert_geq(wait_status("n1", "online", 10000), 0);
    req("PUT", "/v1/nodes/grd/n1",
        "{\"labels\":[\"region=eu\",\"az=a\"],\"availability\":\"drain\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "drain");
    cr_assert_eq(json_array_size(json_object_get(r.json, "labels")), 2);
    http_reply_release(&r);
    req("PUT", "/v1/nodes/grd/n1", "{\"availability\":\"sideways\"}", &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_reply_release(&r);
    /* Online: refused unless forced. */
    req("DELETE", "/v1/nodes/grd/n1", NULL, &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "online"), "%s", r.body);
    http_reply_release(&r);
    req("DELETE", "/v1/nodes/grd/n1?force=true", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    /* The agent learns at its next pong that its node is gone (4040) and stops. */
    {
        int st = agent_proc_wait_exit(&a, 5000);
        cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", agent_proc_read_log(&a));
        cr_assert(agent_proc_wait_log(&a, "node was removed", 100));
    }
    free(node_status("n1", &n));
    cr_assert_geq(wait_status("n1", "missing", 10), 0);
    /* Its number is free again. */
    agent_proc_cleanup(&a);
    start_agent(&a, "n2");
    cr_assert_geq(wait_status("n2", "online", 10000), 0);
    free(node_status("n2", &n));
    cr_assert_eq(n, 1);
    agent_proc_cleanup(&a);
}

/* etcd away longer than the lease TTL: the lease expires with every status key on it. A
 * pong seen in between finds the key gone and rewrites it on the dead lease, which fails;
 * the session must still get its key back (at its next pong or with the new lease). */
API_TEST(agent, nodes_come_back_online_after_the_lease_expired)
{
    struct agent_proc a, b;

    start_agent(&a, "n1");
    start_agent(&b, "n2");
    cr_assert_geq(wait_status("n1", "online", 10000), 0, "n1 not online:\n%s",
                  restart_logs(&a, &b));
    cr_assert_geq(wait_status("n2", "online", 10000), 0, "n2 not online:\n%s",
                  restart_logs(&a, &b));
    kill(etcd.pid, SIGSTOP);
    time_sleep_ms((LEASE_TTL_S + 3) * 1000);
    kill(etcd.pid, SIGCONT);
    cr_assert_geq(wait_status("n1", "online", 15000), 0, "n1 did not come back:\n%s",
                  restart_logs(&a, &b));
    cr_assert_geq(wait_status("n2", "online", 15000), 0, "n2 did not come back:\n%s",
                  restart_logs(&a, &b));
    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

/* A missing or non-PEM --ca-cert ends the agent at start with the reason (exit 2), not a
 * reconnect loop of TLS errors. */
API_TEST(agent, unusable_ca_cert_file_is_refused_at_start)
{
    struct agent_proc a, b;
    char *missing = xasprintf("%s/no-such-ca.pem", api.dir), *log;
    const char *extra_a[] = {"--ca-cert", missing, NULL};
    const char *extra_b[] = {"--ca-cert", "/etc/hostname", NULL};
    int st;

    cr_assert_eq(agent_proc_start(&a, api.dir, uri, grid_token, "noca", extra_a), 0);
    st = agent_proc_wait_exit(&a, 5000);
    log = agent_proc_read_log(&a);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "agent did not exit 2:\n%s", log);
    cr_assert(strstr(log, "cannot use --ca-cert") && strstr(log, "No such file or directory"), "%s",
              log);
    free(log);
    cr_assert_eq(agent_proc_start(&b, api.dir, uri, grid_token, "notpem", extra_b), 0);
    st = agent_proc_wait_exit(&b, 5000);
    log = agent_proc_read_log(&b);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "agent did not exit 2:\n%s", log);
    cr_assert(strstr(log, "no PEM certificate"), "%s", log);
    free(log);
    free(missing);
    agent_proc_cleanup(&a);
    agent_proc_cleanup(&b);
}

/* --ca-cert naming another CA: the agent says the master's certificate is not trusted by that
 * file and why, and no node is registered. */
API_TEST(agent, master_certificate_not_signed_by_ca_cert_is_named_clearly)
{
    struct agent_proc a;
    char *cert = NULL, *key = NULL, *fp = NULL, *other = xasprintf("%s/other-ca.pem", api.dir);
    char *log;
    const char *extra[] = {"--ca-cert", other, NULL};
    struct err e = ERR_INIT;
    FILE *f;

    cr_assert_eq(crypto_selfsigned_cert("someone-else", NULL, 1, &cert, &key, &fp, &e), ST_OK,
                 "%s", e.msg);
    f = fopen(other, "w");
    cr_assert(f && fputs(cert, f) >= 0 && fclose(f) == 0, "cannot write %s", other);
    cr_assert_eq(agent_proc_start(&a, api.dir, uri, grid_token, "otherca", extra), 0);
    agent_proc_wait_log(&a, "is not trusted by --ca-cert", 5000);
    log = agent_proc_read_log(&a);
    cr_assert(strstr(log, "is not trusted by --ca-cert") && strstr(log, other), "%s", log);
    free(log);
    free(node_status("otherca", NULL));
    cr_assert_geq(wait_status("otherca", "missing", 10), 0);
    free(cert);
    free(key);
    free(fp);
    free(other);
    agent_proc_cleanup(&a);
}
