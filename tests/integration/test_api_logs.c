/* The master side of logs and statistics (issue 8), against a real etcd and a real
 * kontena-apiserver: the test plays an agent on the agents' WebSocket (a minimal client
 * below, plain ws://), sending /containers/log_batch and /containers/log_cursor requests and
 * /containers/stats and /nodes/stats notifications as the agent does, then checks the log
 * routes (queries, filters, follow streams, a slow follower, a master restart), the stats
 * routes and keys, /metrics (with `promtool check metrics`) and syslog forwarding to a real
 * rsyslogd on loopback. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/agent_proc.h"
#include "tests/support/api_fixture.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

static char *token, *grid_token, *logdir;
static int agent_port, metrics_port;

/* --- a minimal WebSocket client (RFC 6455, client side, text frames) ----------------------- */

struct wsc {
    int fd;
    unsigned char *buf;
    size_t len, cap;
};

static int wsc_connect(struct wsc *c, const char *node)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)agent_port)};
    char req[2048];
    char *hdr;
    int n;

    memset(c, 0, sizeof(*c));
    c->cap = 1 << 22;
    c->buf = xmalloc(c->cap);
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        return -1;
    n = snprintf(req, sizeof(req),
                 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: kontena-agent\r\n"
                 "Kontena-Grid-Token: %s\r\nKontena-Node-Id: id-%s\r\nKontena-Node-Name: %s\r\n"
                 "Kontena-Version: %s\r\n\r\n",
                 agent_port, grid_token, node, node, KONTENA_VERSION);
    if (write(c->fd, req, (size_t)n) != n)
        return -1;
    /* the 101 answer, up to the blank line */
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        hdr = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (hdr)
            break;
    }
    if (memcmp(c->buf, "HTTP/1.1 101", 12) != 0)
        return -1;
    {
        size_t used = (size_t)((unsigned char *)hdr + 4 - c->buf);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    return 0;
}

static int wsc_frame(struct wsc *c, int opcode, const char *p, size_t n)
{
    unsigned char h[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t hl = 0;
    unsigned char *f;
    int ok;

    h[hl++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(h + hl, mask, 4);
    hl += 4;
    f = xmalloc(hl + n);
    memcpy(f, h, hl);
    for (size_t i = 0; i < n; i++)
        f[hl + i] = (unsigned char)p[i] ^ mask[i % 4];
    ok = 1;
    for (size_t off = 0; off < hl + n;) {
        ssize_t w = write(c->fd, f + off, hl + n - off);
        if (w <= 0) {
            ok = 0;
            break;
        }
        off += (size_t)w;
    }
    free(f);
    return ok ? 0 : -1;
}

static int wsc_send(struct wsc *c, const json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    int rc = wsc_frame(c, 1, s, strlen(s));
    free(s);
    return rc;
}

/* The next text message (fresh) within timeout_ms, or NULL (timeout, close). Pings are
 * answered. */
static char *wsc_recv(struct wsc *c, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;

    for (;;) {
        if (c->len >= 2) {
            size_t pl = c->buf[1] & 0x7f, hl = 2;
            int op = c->buf[0] & 0x0f;
            if (pl == 126 && c->len >= 4) {
                pl = ((size_t)c->buf[2] << 8) | c->buf[3];
                hl = 4;
            } else if (pl == 127 && c->len >= 10) {
                pl = 0;
                for (int i = 0; i < 8; i++)
                    pl = (pl << 8) | c->buf[2 + i];
                hl = 10;
            } else if (pl >= 126) {
                goto more;
            }
            if (c->len >= hl + pl) {
                char *out = NULL;
                if (op == 1) {
                    out = xmalloc(pl + 1);
                    memcpy(out, c->buf + hl, pl);
                    out[pl] = '\0';
                } else if (op == 9) {
                    wsc_frame(c, 10, (char *)c->buf + hl, pl);
                } else if (op == 8) {
                    return NULL;
                }
                memmove(c->buf, c->buf + hl + pl, c->len - hl - pl);
                c->len -= hl + pl;
                if (out)
                    return out;
                continue;
            }
        }
    more : {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int64_t left = deadline - time_mono_ms();
        ssize_t r;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return NULL;
        r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r <= 0)
            return NULL;
        c->len += (size_t)r;
    }
    }
}

static void wsc_close(struct wsc *c)
{
    if (c->fd > 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

/* Connect as node and wait for its /agent/node_info. */
static void agent_connect(struct wsc *c, const char *node)
{
    char *m;
    cr_assert_eq(wsc_connect(c, node), 0, "cannot connect to the agents' endpoint");
    while ((m = wsc_recv(c, 10000)) != NULL) {
        int done = strstr(m, "/agent/node_info") != NULL;
        free(m);
        if (done)
            return;
    }
    cr_assert_fail("no node_info for %s", node);
}

static json_int_t next_call = 1;

/* A request; its result (new reference), or NULL with the error printed. */
static json_t *call(struct wsc *c, const char *method, json_t *params)
{
    json_int_t id = next_call++;
    json_t *msg = json_pack("[i, I, s, o]", 0, id, method, params), *res = NULL;
    char *m;

    cr_assert_eq(wsc_send(c, msg), 0);
    json_decref(msg);
    while ((m = wsc_recv(c, 20000)) != NULL) {
        json_t *j = json_loads(m, 0, NULL);
        free(m);
        if (json_is_array(j) && json_integer_value(json_array_get(j, 0)) == 1 &&
            json_integer_value(json_array_get(j, 1)) == id) {
            if (!json_is_null(json_array_get(j, 2))) {
                char *text = json_dumps(j, 0);
                fprintf(stderr, "error answer: %s\n", text);
                free(text);
            } else
                res = json_incref(json_array_get(j, 3));
            json_decref(j);
            return res;
        }
        json_decref(j);
    }
    return NULL;
}

static void notify(struct wsc *c, const char *method, json_t *params)
{
    json_t *msg = json_pack("[i, s, o]", 2, method, params);
    cr_assert_eq(wsc_send(c, msg), 0);
    json_decref(msg);
}

#define T0 1795000000LL /* seconds: 2026-11-17 */

/* RFC 3339 with nanoseconds, trailing zeros trimmed, as Docker's timestamps=1 writes them. */
static char *ts(long long sec, long long ns)
{
    char frac[16];
    int n;
    time_t t = (time_t)sec;
    struct tm tm;
    char day[32];

    gmtime_r(&t, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(frac, sizeof(frac), ".%09lld", ns);
    while (n > 1 && frac[n - 1] == '0')
        frac[--n] = '\0';
    if (n == 1)
        frac[0] = '\0';
    return xasprintf("%s%sZ", day, frac);
}

/* Send lines [from, from+n) of container cid/name as log_batch items (times T0 + i µs);
 * returns the result. */
static json_t *send_lines(struct wsc *c, const char *cid, const char *name, const char *stack,
                          const char *svc, int inst, const char *type, int from, int n)
{
    json_t *items = json_array();

    for (int i = from; i < from + n; i++) {
        char *t = ts(T0 + i / 1000000, (long long)(i % 1000000) * 1000), *d =
                                                                               xasprintf("%s %d",
                                                                                         name, i);
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:s, s:s, s:s}", "id",
                                        cid, "name", name, "node", "ignored", "stack", stack,
                                        "service", svc,
                                        "instance", inst >= 0 ? json_integer(inst) : json_null(),
                                        "time", t, "type", type, "data", d));
        free(t);
        free(d);
    }
    return call(c, "/containers/log_batch", json_pack("[{s:o}]", "items", items));
}

/* --- HTTP helpers ----------------------------------------------------------------------- */

static void get(const char *path, struct http_reply *r)
{
    char *u = xasprintf("%s%s", api.url, path);
    cr_assert_eq(http_do("GET", u, token, NULL, 0, NULL, r), 0, "GET %s failed", path);
    free(u);
}

static json_t *logs_of(const char *path)
{
    struct http_reply r;
    json_t *l;

    get(path, &r);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    l = json_incref(json_object_get(r.json, "logs"));
    cr_assert(json_is_array(l), "%s", r.body);
    http_reply_release(&r);
    return l;
}

static const char *data_at(const json_t *logs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(logs, i), "data"));
}

/* A follow stream read by a thread with libcurl; the bytes collected so far. */
struct follow {
    pthread_t th;
    char *url;
    pthread_mutex_t mu;
    char *data;
    size_t len, cap;
    int stop, done;
    long max_speed; /* bytes/s, 0 = unlimited */
    long rc;
};

static size_t follow_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct follow *f = arg;
    size_t n = sz * nm;
    int stop;

    pthread_mutex_lock(&f->mu);
    if (f->len + n + 1 > f->cap) {
        f->cap = (f->len + n + 1) * 2;
        f->data = xrealloc(f->data, f->cap);
    }
    memcpy(f->data + f->len, p, n);
    f->len += n;
    f->data[f->len] = '\0';
    stop = f->stop;
    pthread_mutex_unlock(&f->mu);
    return stop ? 0 : n;
}

static int follow_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct follow *f = arg;
    int stop;
    (void)a, (void)b, (void)c, (void)d;
    pthread_mutex_lock(&f->mu);
    stop = f->stop;
    pthread_mutex_unlock(&f->mu);
    return stop;
}

static void *follow_main(void *arg)
{
    struct follow *f = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = NULL;
    char *auth = xasprintf("Authorization: Bearer %s", token);

    hd = curl_slist_append(hd, auth);
    curl_easy_setopt(h, CURLOPT_URL, f->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, follow_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, follow_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
    if (f->max_speed) {
        curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)f->max_speed);
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 1024L);
    }
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f->rc);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    free(auth);
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void follow_start(struct follow *f, const char *path, long max_speed)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->url = xasprintf("%s%s", api.url, path);
    f->max_speed = max_speed;
    cr_assert_eq(pthread_create(&f->th, NULL, follow_main, f), 0);
}

static void follow_stop(struct follow *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    free(f->url);
    free(f->data);
    pthread_mutex_destroy(&f->mu);
}

/* The JSON objects of a follow stream so far (whitespace between them skipped). */
static json_t *follow_objects(struct follow *f, size_t *spaces)
{
    json_t *arr = json_array();
    size_t off = 0;

    pthread_mutex_lock(&f->mu);
    if (spaces)
        *spaces = 0;
    while (off < f->len) {
        json_error_t je;
        json_t *o;
        if (f->data[off] == ' ' || f->data[off] == '\n') {
            if (spaces && f->data[off] == ' ')
                (*spaces)++;
            off++;
            continue;
        }
        o = json_loadb(f->data + off, f->len - off, JSON_DISABLE_EOF_CHECK, &je);
        if (!o)
            break; /* incomplete */
        json_array_append_new(arr, o);
        off += je.position;
    }
    pthread_mutex_unlock(&f->mu);
    return arr;
}

/* Wait until the stream holds at least n objects. */
static json_t *follow_wait(struct follow *f, size_t n, int timeout_ms)
{
    int64_t t0 = time_mono_ms();
    for (;;) {
        json_t *a = follow_objects(f, NULL);
        if (json_array_size(a) >= n || time_mono_ms() - t0 > timeout_ms)
            return a;
        json_decref(a);
        time_sleep_ms(50);
    }
}

/* --- fixture ----------------------------------------------------------------------------- */

static void put_key(const char *key, const char *val)
{
    struct etcd_opts o = {.endpoints = etcd.endpoint};
    struct err e = ERR_INIT;
    struct etcd *c = etcd_create(&o, &e);
    cr_assert(c, "%s", e.msg);
    cr_assert_eq(etcd_put(c, key, val, strlen(val), 0, NULL, NULL, &e), ST_OK, "%s", e.msg);
    etcd_destroy(c);
}

static void setup_window(const char *window_mb)
{
    struct http_reply r;
    char *u, *body, v[32];

    /* plain ws:// and http://, no pings during a test (the client answers them anyway) */
    free(agent_proc_env(0, 600000, 600000, 10));
    agent_port = atoi(strrchr(getenv("KONTENA_AGENT_LISTEN"), ':') + 1);
    logdir = proc_tempdir("test_api_logs");
    setenv("KONTENA_LOG_DIR", logdir, 1);
    setenv("KONTENA_LOG_WINDOW_MB", window_mb, 1);
    metrics_port = proc_free_port();
    snprintf(v, sizeof(v), "127.0.0.1:%d", metrics_port);
    setenv("KONTENA_METRICS_LISTEN", v, 1);
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
    cr_assert_eq(api_proc_start(&api, etcd.endpoint, 1), 0, "cannot start kontena-apiserver");
    body = xasprintf("{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"%s\"}",
                     api.admin_password);
    u = xasprintf("%s/oauth2/token", api.url);
    cr_assert_eq(http_do("POST", u, NULL, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "login: %ld %s", r.status, r.body);
    token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    http_reply_release(&r);
    free(u);
    free(body);
    u = xasprintf("%s/v1/grids", api.url);
    cr_assert_eq(http_do("POST", u, token, "{\"name\":\"grd\",\"initial_size\":1}", (size_t)-1,
                         NULL, &r),
                 0);
    cr_assert_eq(r.status, 201, "grid create: %ld %s", r.status, r.body);
    grid_token = xstrdup(json_string_value(json_object_get(r.json, "token")));
    http_reply_release(&r);
    free(u);
    put_key("/kontena/stacks/grd/stk", "{\"name\":\"stk\",\"grid\":\"grd\"}");
    put_key("/kontena/services/grd/stk/web", "{\"name\":\"web\",\"grid\":\"grd\",\"stack\":\"stk\"}");
    put_key("/kontena/services/grd/stk/db", "{\"name\":\"db\",\"grid\":\"grd\",\"stack\":\"stk\"}");
}

static void setup(void)
{
    setup_window("256");
}

static void setup_small(void)
{
    setup_window("1");
}

static void teardown(void)
{
    (void)api_fixture_setup; /* setup_window() starts etcd and the apiserver itself */
    api_fixture_teardown();
    if (logdir)
        proc_rmtree(logdir);
    FREE_AND_NULL(logdir);
    FREE_AND_NULL(token);
    FREE_AND_NULL(grid_token);
}

TestSuite(logs, .init = setup, .fini = teardown, .timeout = 180);
TestSuite(logs_small, .init = setup_small, .fini = teardown, .timeout = 240);

/* --- tests --------------------------------------------------------------------------------- */

API_TEST(logs, batches_are_stored_acked_and_queried_with_filters)
{
    struct wsc c;
    json_t *res, *l;
    struct http_reply r;
    char *ack;

    agent_connect(&c, "n1");
    res = send_lines(&c, "aaa1", "stk.web-1", "stk", "web", 1, "stdout", 0, 10);
    cr_assert(res);
    ack = xstrdup(json_string_value(json_object_get(json_object_get(res, "acked"), "aaa1")));
    cr_assert_str_eq(ack, "2026-11-18T11:06:40.000009000Z", "acked %s", ack);
    json_decref(res);
    json_decref(send_lines(&c, "aaa2", "stk.web-2", "stk", "web", 2, "stderr", 0, 10));
    json_decref(send_lines(&c, "aaa3", "stk.db-1", "stk", "db", 1, "stdout", 0, 10));
    json_decref(send_lines(&c, "aaa4", "loner", NULL, NULL, -1, "stdout", 0, 10));
    /* resent: nothing new */
    res = send_lines(&c, "aaa1", "stk.web-1", "stk", "web", 1, "stdout", 5, 5);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res, "acked"), "aaa1")),
                     ack);
    json_decref(res);

    l = logs_of("/v1/grids/grd/container_logs?limit=1000");
    cr_assert_eq(json_array_size(l), 40, "%zu", json_array_size(l));
    {
        json_t *o = json_array_get(l, 0);
        cr_assert_eq(json_integer_value(json_object_get(o, "id")), 1);
        cr_assert_str_eq(json_string_value(json_object_get(o, "container_id")), "aaa1");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "node"), "name")),
                         "n1", "the session's node, not the item's");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "stack"), "name")),
                         "stk");
        cr_assert_str_eq(json_string_value(json_object_get(o, "created_at")),
                         "2026-11-18T11:06:40.000000000Z");
    }
    json_decref(l);
    /* default limit 100, newest first-limited and oldest first */
    l = logs_of("/v1/grids/grd/container_logs?limit=3");
    cr_assert_eq(json_array_size(l), 3);
    cr_assert_str_eq(data_at(l, 0), "loner 7");
    cr_assert_str_eq(data_at(l, 2), "loner 9");
    json_decref(l);
    /* from: after id 5 */
    l = logs_of("/v1/grids/grd/container_logs?from=5&limit=2");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(l, 0), "id")), 6);
    json_decref(l);
    /* service, instance, containers, nodes, stacks, services, search */
    l = logs_of("/v1/services/grd/stk/web/container_logs?limit=100");
    cr_assert_eq(json_array_size(l), 20);
    json_decref(l);
    l = logs_of("/v1/services/grd/stk/web/container_logs?instance=2&limit=4");
    cr_assert_eq(json_array_size(l), 4);
    cr_assert_str_eq(data_at(l, 0), "stk.web-2 6");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "type")), "stderr");
    json_decref(l);
    l = logs_of("/v1/stacks/grd/stk/container_logs?services=db");
    cr_assert_eq(json_array_size(l), 10);
    json_decref(l);
    l = logs_of("/v1/stacks/grd/stk/container_logs");
    cr_assert_eq(json_array_size(l), 30);
    json_decref(l);
    l = logs_of("/v1/grids/grd/container_logs?services=stk/db,stk/web&containers=stk.web-1,stk.db-1");
    cr_assert_eq(json_array_size(l), 20);
    json_decref(l);
    l = logs_of("/v1/grids/grd/container_logs?nodes=n2");
    cr_assert_eq(json_array_size(l), 0);
    json_decref(l);
    l = logs_of("/v1/grids/grd/container_logs?q=web-2%209");
    cr_assert_eq(json_array_size(l), 1);
    cr_assert_str_eq(data_at(l, 0), "stk.web-2 9");
    json_decref(l);
    l = logs_of("/v1/containers/grd/n1/loner/logs?limit=5");
    cr_assert_eq(json_array_size(l), 5);
    cr_assert_str_eq(data_at(l, 4), "loner 9");
    json_decref(l);
    /* since: created_at after T0 + 7 µs (Unix seconds with a fraction, or RFC 3339) */
    l = logs_of("/v1/containers/grd/n1/loner/logs?since=2026-11-18T11:06:40.000007Z");
    cr_assert_eq(json_array_size(l), 2);
    json_decref(l);
    l = logs_of("/v1/containers/grd/n1/loner/logs?since=1795000000.000007");
    cr_assert_eq(json_array_size(l), 2);
    json_decref(l);
    /* errors */
    get("/v1/grids/grd/container_logs?since=yesterday", &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_reply_release(&r);
    get("/v1/services/grd/stk/nope/container_logs", &r);
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_reply_release(&r);
    get("/v1/grids/nope/container_logs", &r);
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_reply_release(&r);
    get("/v1/containers/grd/ghost/x/logs", &r);
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert(strstr(r.body, "Node ghost not found"), "%s", r.body);
    http_reply_release(&r);

    /* cursors */
    res = call(&c, "/containers/log_cursor", json_pack("[[s, s, s]]", "aaa1", "aaa4", "ffff"));
    cr_assert(res);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res, "cursors"), "aaa1")),
                     ack);
    cr_assert(json_is_string(json_object_get(json_object_get(res, "cursors"), "aaa4")));
    cr_assert_null(json_object_get(json_object_get(res, "cursors"), "ffff"));
    json_decref(res);
    /* a bad batch is refused, the session goes on */
    res = call(&c, "/containers/log_batch", json_pack("[{s:s}]", "items", "nope"));
    cr_assert_null(res);
    free(ack);
    wsc_close(&c);
}

API_TEST(logs, follow_sees_every_line_once_in_order_with_keepalives)
{
    struct wsc c;
    struct follow f;
    json_t *objs;
    size_t spaces = 0;

    agent_connect(&c, "n1");
    json_decref(send_lines(&c, "bbb1", "stk.web-1", "stk", "web", 1, "stdout", 0, 50));
    follow_start(&f, "/v1/services/grd/stk/web/container_logs?follow=1&limit=10", 0);
    objs = follow_wait(&f, 10, 10000);
    cr_assert_eq(json_array_size(objs), 10, "first poll: the newest 10, got %zu: %.300s", json_array_size(objs), f.data ? f.data : "(none)");
    cr_assert_str_eq(data_at(objs, 0), "stk.web-1 40");
    json_decref(objs);
    /* idle: keep-alives */
    time_sleep_ms(1300);
    json_decref(follow_objects(&f, &spaces));
    json_decref(follow_objects(&f, &spaces));
    cr_assert_geq(spaces, 2, "keep-alive spaces: %zu", spaces);
    /* 5000 more in batches, interleaved with another service that the filter leaves out */
    for (int b = 0; b < 10; b++) {
        json_decref(send_lines(&c, "bbb1", "stk.web-1", "stk", "web", 1, "stdout", 50 + b * 500,
                               500));
        json_decref(send_lines(&c, "bbb2", "stk.db-1", "stk", "db", 1, "stdout", b * 10, 10));
    }
    objs = follow_wait(&f, 5010, 30000);
    cr_assert_eq(json_array_size(objs), 5010, "got %zu", json_array_size(objs));
    for (size_t i = 0; i < 5010; i++) {
        char want[40];
        snprintf(want, sizeof(want), "stk.web-1 %zu", i + 40);
        cr_assert_str_eq(data_at(objs, i), want);
    }
    json_decref(objs);
    follow_stop(&f);
    wsc_close(&c);
}

API_TEST(logs, window_and_cursors_survive_a_master_restart_and_from_resumes)
{
    struct wsc c;
    struct follow fl;
    json_t *l, *res;
    int64_t last;

    agent_connect(&c, "n1");
    json_decref(send_lines(&c, "ccc1", "stk.web-1", "stk", "web", 1, "stdout", 0, 100));
    l = logs_of("/v1/grids/grd/container_logs?limit=10");
    last = json_integer_value(json_object_get(json_array_get(l, 9), "id"));
    cr_assert_eq(last, 100);
    json_decref(l);
    /* a follower's stream ends cleanly when the master stops (it reconnects with from=) */
    follow_start(&fl, "/v1/grids/grd/container_logs?follow=1&limit=5", 0);
    l = follow_wait(&fl, 5, 10000);
    cr_assert_eq(json_array_size(l), 5);
    json_decref(l);
    wsc_close(&c);
    cr_assert_eq(api_proc_restart(&api), 0);
    for (int i = 0; i < 100; i++) {
        int done;
        pthread_mutex_lock(&fl.mu);
        done = fl.done;
        pthread_mutex_unlock(&fl.mu);
        if (done)
            break;
        time_sleep_ms(50);
    }
    cr_assert(fl.done, "the follow stream did not end when the master stopped");
    cr_assert_eq(fl.rc, 200);
    follow_stop(&fl);
    agent_connect(&c, "n1");
    res = call(&c, "/containers/log_cursor", json_pack("[[s]]", "ccc1"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res, "cursors"), "ccc1")),
                     "2026-11-18T11:06:40.000099000Z");
    json_decref(res);
    /* the agent resumes from its cursor but resends an overlap: no duplicates */
    json_decref(send_lines(&c, "ccc1", "stk.web-1", "stk", "web", 1, "stdout", 90, 60));
    l = logs_of("/v1/grids/grd/container_logs?from=100&limit=1000");
    cr_assert_eq(json_array_size(l), 50);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(l, 0), "id")), 101);
    cr_assert_str_eq(data_at(l, 0), "stk.web-1 100");
    json_decref(l);
    wsc_close(&c);
}

static long rss_kb(pid_t pid);

/* Figures, not a timing assertion: how fast the master stores batches of 1000 lines from one
 * agent while one follower reads them all (every line once and in order). */
API_TEST(logs, ingest_and_follow_figures)
{
    struct wsc c;
    struct follow f;
    json_t *objs;
    char **batches = xcalloc(100, sizeof(*batches));
    int64_t t0, t1, t2;
    const int nb = 100;

    agent_connect(&c, "n1");
    follow_start(&f, "/v1/grids/grd/container_logs?follow=1", 0);
    time_sleep_ms(300);
    /* build the messages first: only the master's side is timed */
    for (int b = 0; b < nb; b++) {
        json_t *items = json_array();
        for (int i = b * 1000; i < (b + 1) * 1000; i++) {
            char *t = ts(T0 + i / 1000000, (long long)(i % 1000000) * 1000);
            char *d = xasprintf("line %d of a benchmark run, some text to make it look real", i);
            json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}",
                                                   "id", "abcdef0123456789", "name", "stk.web-1",
                                                   "node", "n1", "stack", "stk", "service", "web",
                                                   "instance", 1, "time", t, "type", "stdout",
                                                   "data", d));
            free(t);
            free(d);
        }
        {
            json_t *m = json_pack("[i, I, s, [{s:o}]]", 0, (json_int_t)(100000 + b),
                                  "/containers/log_batch", "items", items);
            batches[b] = json_dumps(m, JSON_COMPACT);
            json_decref(m);
        }
    }
    t0 = time_mono_ms();
    /* up to 4 batches in flight, as the agent does */
    {
        int sent = 0, acked = 0;
        while (acked < nb) {
            char *m;
            while (sent < nb && sent - acked < 4)
            {
                cr_assert_eq(wsc_frame(&c, 1, batches[sent], strlen(batches[sent])), 0);
                sent++;
            }
            m = wsc_recv(&c, 20000);
            cr_assert(m, "no answer");
            if (!strncmp(m, "[1,", 3))
                acked++;
            free(m);
        }
    }
    t1 = time_mono_ms();
    /* count entries by their newline (parsing is for the end) */
    for (;;) {
        size_t nl = 0;
        pthread_mutex_lock(&f.mu);
        for (size_t i = 0; i < f.len; i++)
            nl += f.data[i] == '\n';
        pthread_mutex_unlock(&f.mu);
        if (nl >= (size_t)nb * 1000 || time_mono_ms() - t0 > 60000)
            break;
        time_sleep_ms(20);
    }
    t2 = time_mono_ms();
    objs = follow_objects(&f, NULL);
    cr_assert_eq(json_array_size(objs), (size_t)nb * 1000);
    for (size_t i = 0; i < json_array_size(objs); i += 997) {
        char want[96];
        snprintf(want, sizeof(want), "line %zu of a benchmark run, some text to make it look real",
                 i);
        cr_assert_str_eq(data_at(objs, i), want);
    }
    fprintf(stderr,
            "ingest: %d lines stored in %lld ms (%.0f lines/s, batches of 1000, 4 in flight); "
            "the follower had all of them %lld ms after the first was sent (%.0f lines/s); "
            "apiserver RSS %ld kB\n",
            nb * 1000, (long long)(t1 - t0), nb * 1000.0 * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1),
            (long long)(t2 - t0), nb * 1000.0 * 1000.0 / (double)(t2 - t0 ? t2 - t0 : 1),
            rss_kb(api.pid));
    json_decref(objs);
    for (int b = 0; b < nb; b++)
        free(batches[b]);
    free(batches);
    follow_stop(&f);
    wsc_close(&c);
}

static long rss_kb(pid_t pid)
{
    char *p = xasprintf("/proc/%d/status", (int)pid), *s = proc_read_file(p), *v;
    long kb = -1;
    free(p);
    if (s && (v = strstr(s, "VmRSS:")))
        kb = strtol(v + 6, NULL, 10);
    free(s);
    return kb;
}

API_TEST(logs_small, slow_follower_is_bounded_and_told_what_was_dropped)
{
    struct wsc c;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)api.port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 4096;
    char *req, *buf, *marker, *after;
    size_t len = 0, cap = 64u << 20;
    long before, after_kb;
    int64_t t0;
    long long dropped = 0, next_id = 0;

    agent_connect(&c, "n1");
    json_decref(send_lines(&c, "ddd1", "x-1", NULL, NULL, -1, "stdout", 0, 1000));
    /* a follower from the start of the window that does not read (a tiny receive buffer) */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    req = xasprintf("GET /v1/grids/grd/container_logs?follow=1&from=0 HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer %s\r\n\r\n",
                    token);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    free(req);
    time_sleep_ms(500);
    before = rss_kb(api.pid);
    /* 100,000 lines of ~330 bytes (33 MB) through a 1 MiB window */
    for (int b = 1; b < 101; b++)
        json_decref(send_lines(&c, "ddd1", "x-1", NULL, NULL, -1, "stdout", b * 1000, 1000));
    after_kb = rss_kb(api.pid);
    fprintf(stderr, "slow follower: apiserver RSS %ld kB -> %ld kB over 100,000 lines\n", before,
            after_kb);
#ifndef __SANITIZE_ADDRESS__
    /* (ASan keeps freed memory in quarantine, 256 MB by default: no bound to check there) */
    cr_assert_lt(after_kb - before, 20 * 1024, "apiserver RSS grew from %ld to %ld kB", before,
                 after_kb);
#endif
    /* now it reads: the dropped marker, then the oldest entry of the window onwards */
    buf = xmalloc(cap);
    t0 = time_mono_ms();
    marker = NULL;
    while (time_mono_ms() - t0 < 20000 && len < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (poll(&p, 1, 1000) <= 0)
            break;
        r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        marker = strstr(buf, "{\"dropped\":");
        if (marker && strstr(marker, "\"data\":\"x-1 "))
            break;
    }
    cr_assert(marker, "no dropped marker in %zu bytes", len);
    cr_assert_eq(sscanf(marker, "{\"dropped\":%lld,\"reason\":\"older than the log window\"}",
                        &dropped),
                 1, "%.200s", marker);
    after = strstr(marker, "{\"id\":");
    cr_assert(after);
    cr_assert_eq(sscanf(after, "{\"id\":%lld,", &next_id), 1);
    cr_assert_gt(dropped, 0);
    cr_assert_gt(next_id, 1000, "continues in the window at %lld after %lld dropped", next_id,
                 dropped);
    fprintf(stderr, "slow follower: dropped %lld, went on at id %lld\n", dropped, next_id);
    free(buf);
    close(fd);
    wsc_close(&c);
}

static char *metrics_text(void)
{
    struct http_reply r;
    char *u = xasprintf("http://127.0.0.1:%d/metrics", metrics_port), *out;
    cr_assert_eq(http_do("GET", u, NULL, NULL, 0, NULL, &r), 0);
    cr_assert_eq(r.status, 200);
    out = xstrdup(r.body);
    http_reply_release(&r);
    free(u);
    return out;
}

static json_t *cstat(const char *id, const char *name, const char *svc, int inst, double cpu,
                     long mem)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:{s:f, s:i}, s:{s:I, s:I}, s:{s:I, s:I, s:f, "
                     "s:f}, s:{s:I, s:I}, s:s}",
                     "id", id, "name", name, "stack", "stk", "service", svc, "instance", inst,
                     "cpu", "usage_pct", cpu, "num_cores", 2, "memory", "usage", (json_int_t)mem,
                     "limit", (json_int_t)(256 << 20), "network", "rx_bytes", (json_int_t)1000,
                     "tx_bytes", (json_int_t)2000, "rx_bytes_per_second", 10.5,
                     "tx_bytes_per_second", 20.5, "blkio", "read_bytes", (json_int_t)1,
                     "write_bytes", (json_int_t)2, "time", "2026-11-23T06:00:00Z");
}

API_TEST(logs, stats_keys_routes_node_show_and_metrics)
{
    struct wsc c;
    struct http_reply r;
    json_t *st;
    char *m, *path, *out = NULL, *err = NULL;
    FILE *fp;
    int rc;

    agent_connect(&c, "n1");
    notify(&c, "/containers/stats",
           json_pack("[{s:s, s:[o, o, o]}]", "node", "n1", "containers",
                     cstat("e1", "stk.web-1", "web", 1, 12.5, 100 << 20),
                     cstat("e2", "stk.web-2", "web", 2, 50.25, 50 << 20),
                     cstat("e3", "stk.db-1", "db", 1, 1.0, 200 << 20)));
    notify(&c, "/nodes/stats",
           json_pack("[{s:s, s:{s:i, s:f, s:f, s:f, s:f, s:f}, s:{s:I, s:I, s:I}, s:{s:f, s:f, "
                     "s:f}, s:[{s:s, s:I, s:I, s:I, s:I}], s:s}]",
                     "node", "n1", "cpu", "num_cores", 2, "user", 10.0, "system", 5.0, "nice",
                     0.0, "idle", 185.0, "used_pct", 15.0, "memory", "total",
                     (json_int_t)1 << 30, "free", (json_int_t)1 << 29, "used",
                     (json_int_t)1 << 29, "load", "1m", 0.5, "5m", 0.25, "15m", 0.125,
                     "filesystem", "name", "/var/lib/docker", "total", (json_int_t)1 << 34,
                     "used", (json_int_t)1 << 33, "free", (json_int_t)1 << 33, "available",
                     (json_int_t)1 << 33, "time", "2026-11-23T06:00:00Z"));
    for (int i = 0; i < 100; i++) {
        get("/v1/grids/grd/stats", &r);
        if (json_array_size(json_object_get(r.json, "stats")) == 3)
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    st = json_object_get(r.json, "stats");
    cr_assert_eq(json_array_size(st), 3, "%s", r.body);
    /* sorted by cpu, descending */
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(st, 0), "container_id")),
                     "stk.web-2");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(st, 0), "instance")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(st, 0), "node")), "n1");
    http_reply_release(&r);
    get("/v1/services/grd/stk/web/stats?sort=memory", &r);
    st = json_object_get(r.json, "stats");
    cr_assert_eq(json_array_size(st), 2, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(st, 0), "container_id")),
                     "stk.web-1");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(st, 0),
                                                                    "memory"),
                                                    "limit")),
                 256 << 20);
    http_reply_release(&r);
    get("/v1/stacks/grd/stk/stats?limit=1", &r);
    cr_assert_eq(json_array_size(json_object_get(r.json, "stats")), 1, "%s", r.body);
    http_reply_release(&r);
    get("/v1/grids/grd/stats?sort=bogus", &r);
    cr_assert_eq(r.status, 422);
    http_reply_release(&r);
    for (int i = 0; i < 100; i++) {
        get("/v1/nodes/grd/n1", &r);
        if (!json_is_null(json_object_get(r.json, "stats")))
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_real_value(json_object_get(
                     json_object_get(json_object_get(r.json, "stats"), "load"), "1m")),
                 0.5, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "online");
    http_reply_release(&r);

    /* /metrics carries them and passes promtool */
    m = metrics_text();
    cr_assert(strstr(m, "kontena_container_cpu_usage_percent{grid=\"grd\",stack=\"stk\","
                        "service=\"web\",instance=\"2\",node=\"n1\",container=\"stk.web-2\"} "
                        "50.25"),
              "%s", m);
    cr_assert(strstr(m, "kontena_node_load1{grid=\"grd\",node=\"n1\"} 0.5"), "%s", m);
    cr_assert(strstr(m, "kontena_apiserver_agents_connected 1"), "%s", m);
    path = xasprintf("%s/metrics.txt", logdir);
    fp = fopen(path, "w");
    fputs(m, fp);
    fclose(fp);
    {
        const char *argv[] = {"sh", "-c", NULL, NULL};
        char *cmd = xasprintf("promtool check metrics < '%s'", path);
        argv[2] = cmd;
        rc = proc_run(argv, NULL, NULL, &out, &err);
        cr_assert_eq(rc, 0, "promtool check metrics: %s %s\n%s", out, err, m);
        free(cmd);
    }
    free(out);
    free(err);
    free(path);
    free(m);

    /* a container gone from the node's list loses its sample */
    notify(&c, "/containers/stats",
           json_pack("[{s:s, s:[o]}]", "node", "n1", "containers",
                     cstat("e1", "stk.web-1", "web", 1, 12.5, 100 << 20)));
    for (int i = 0; i < 100; i++) {
        get("/v1/grids/grd/stats", &r);
        if (json_array_size(json_object_get(r.json, "stats")) == 1)
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    cr_assert_eq(json_array_size(json_object_get(r.json, "stats")), 1, "%s", r.body);
    http_reply_release(&r);
    /* the agent goes: its samples go */
    wsc_close(&c);
    for (int i = 0; i < 100; i++) {
        get("/v1/grids/grd/stats", &r);
        if (json_array_size(json_object_get(r.json, "stats")) == 0)
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    cr_assert_eq(json_array_size(json_object_get(r.json, "stats")), 0, "%s", r.body);
    http_reply_release(&r);
    get("/v1/nodes/grd/n1", &r);
    cr_assert(json_is_null(json_object_get(r.json, "stats")), "%s", r.body);
    http_reply_release(&r);
}

/* rsyslogd on loopback: UDP and TCP inputs, every message's fields to one file. */
static pid_t start_rsyslogd(const char *dir, int udp, int tcp, char **outfile)
{
    char *conf = xasprintf("%s/rsyslog.conf", dir), *pidf = xasprintf("%s/rsyslog.pid", dir);
    char *bin = xasprintf("/usr/sbin/rsyslogd");
    FILE *f = fopen(conf, "w");
    const char *argv[] = {bin, "-n", "-f", conf, "-i", pidf, NULL};
    char *log = xasprintf("%s/rsyslogd.log", dir);
    pid_t pid;

    *outfile = xasprintf("%s/out.log", dir);
    fprintf(f,
            "global(workDirectory=\"%s\")\n"
            "module(load=\"imudp\")\nmodule(load=\"imtcp\")\n"
            "input(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\")\n"
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\")\n"
            "template(name=\"t\" type=\"string\" string=\"%%inputname%%|%%pri%%|%%timereported:::date-rfc3339%%|%%hostname%%|%%app-name%%|%%procid%%|%%msgid%%|%%msg%%\\n\")\n"
            "*.* action(type=\"omfile\" file=\"%s\" template=\"t\")\n",
            dir, udp, tcp, *outfile);
    fclose(f);
    pid = proc_spawn(argv, NULL, log);
    free(conf);
    free(pidf);
    free(bin);
    free(log);
    return pid;
}

static char *wait_file_lines(const char *path, int n, int timeout_ms)
{
    int64_t t0 = time_mono_ms();
    for (;;) {
        char *s = proc_read_file(path);
        int lines = 0;
        for (char *p = s; p && *p; p++)
            lines += *p == '\n';
        if (lines >= n || time_mono_ms() - t0 > timeout_ms)
            return s;
        free(s);
        time_sleep_ms(100);
    }
}

API_TEST(logs, syslog_forwarding_reaches_a_real_rsyslogd_over_udp_and_tcp)
{
    struct wsc c;
    struct http_reply r;
    char *dir = proc_tempdir("rsyslog"), *out, *body, *u, *s;
    int udp = proc_free_port(), tcp = proc_free_port();
    pid_t pid = start_rsyslogd(dir, udp, tcp, &out);

    cr_assert_gt(pid, 0);
    time_sleep_ms(1000); /* rsyslogd binds its inputs */
    /* validation */
    u = xasprintf("%s/v1/grids/grd", api.url);
    cr_assert_eq(http_do("PUT", u, token,
                         "{\"logs\":{\"forwarder\":\"syslog\",\"opts\":{\"syslog-address\":\"http://x:1\"}}}",
                         (size_t)-1, NULL, &r),
                 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_reply_release(&r);
    body = xasprintf("{\"logs\":{\"forwarder\":\"syslog\",\"opts\":{\"syslog-address\":\"udp://127.0.0.1:%d\"}}}", udp);
    cr_assert_eq(http_do("PUT", u, token, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    free(body);
    time_sleep_ms(500); /* the forwarder re-reads the grid */
    agent_connect(&c, "n1");
    json_decref(send_lines(&c, "fff1", "stk.web-1", "stk", "web", 1, "stdout", 0, 5));
    json_decref(send_lines(&c, "fff2", "stk.web-2", "stk", "web", 2, "stderr", 0, 5));
    s = wait_file_lines(out, 10, 10000);
    cr_assert(s && strstr(s, "imudp|14|2026-11-18T11:06:40.000001Z|n1|stk.web|1|stdout|stk.web-1 1\n"),
              "rsyslog got:\n%s", s ? s : "(nothing)");
    cr_assert(strstr(s, "imudp|11|2026-11-18T11:06:40.000004Z|n1|stk.web|2|stderr|stk.web-2 4\n"),
              "rsyslog got:\n%s", s);
    free(s);
    /* TCP, octet-counted */
    body = xasprintf("{\"logs\":{\"forwarder\":\"syslog\",\"opts\":{\"syslog-address\":\"tcp://127.0.0.1:%d\"}}}", tcp);
    cr_assert_eq(http_do("PUT", u, token, body, (size_t)-1, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    free(body);
    time_sleep_ms(500);
    json_decref(send_lines(&c, "fff1", "stk.web-1", "stk", "web", 1, "stdout", 5, 1000));
    s = wait_file_lines(out, 1010, 15000);
    cr_assert(s && strstr(s, "imtcp|14|2026-11-18T11:06:40.001004Z|n1|stk.web|1|stdout|stk.web-1 1004\n"),
              "rsyslog got:\n%.2000s", s ? s : "(nothing)");
    {
        int lines = 0;
        for (char *p = s; *p; p++)
            lines += *p == '\n';
        cr_assert_eq(lines, 1010, "lines at rsyslogd: %d", lines);
    }
    free(s);
    /* none: switched off */
    cr_assert_eq(http_do("PUT", u, token, "{\"logs\":{\"forwarder\":\"none\"}}", (size_t)-1, NULL,
                         &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    free(u);
    wsc_close(&c);
    proc_stop(pid, SIGTERM, 3000);
    proc_rmtree(dir);
    free(dir);
    free(out);
}

API_TEST(logs, a_removed_grid_takes_its_logs_and_stats_along)
{
    struct wsc c;
    struct http_reply r;
    json_t *l;
    char *u = xasprintf("%s/v1/grids/grd?force=true", api.url);

    agent_connect(&c, "n1");
    l = send_lines(&c, "eee1", "stk.web-1", "stk", "web", 1, "stdout", 0, 20);
    cr_assert(json_object_get(json_object_get(l, "acked"), "eee1"), "not stored");
    json_decref(l);
    notify(&c, "/containers/stats",
           json_pack("[{s:s, s:[o]}]", "node", "n1", "containers",
                     cstat("g1", "stk.web-1", "web", 1, 1.0, 1 << 20)));
    for (int i = 0; i < 100; i++) {
        get("/v1/grids/grd/stats", &r);
        if (json_array_size(json_object_get(r.json, "stats")) == 1)
            break;
        http_reply_release(&r);
        time_sleep_ms(50);
    }
    http_reply_release(&r);
    l = logs_of("/v1/grids/grd/container_logs");
    cr_assert_eq(json_array_size(l), 20, "%s", json_dumps(l, 0));
    json_decref(l);
    wsc_close(&c);
    cr_assert_eq(http_do("DELETE", u, token, NULL, 0, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_reply_release(&r);
    free(u);
    u = xasprintf("%s/v1/grids", api.url);
    cr_assert_eq(http_do("POST", u, token, "{\"name\":\"grd\",\"initial_size\":1}", (size_t)-1,
                         NULL, &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_reply_release(&r);
    free(u);
    l = logs_of("/v1/grids/grd/container_logs");
    cr_assert_eq(json_array_size(l), 0, "the old grid's lines are gone");
    json_decref(l);
    get("/v1/grids/grd/stats", &r);
    cr_assert_eq(json_array_size(json_object_get(r.json, "stats")), 0, "%s", r.body);
    http_reply_release(&r);
}
