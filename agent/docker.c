/* agent/docker.c -- the Docker Engine API client: one curl easy handle on the unix socket,
 * driven through a private curl multi handle so that docker_cancel() can wake a blocked
 * stream from another thread (curl_multi_wakeup), plus the stream decoders (8-byte frame
 * demultiplexer with line reassembly, NDJSON events).
 *
 * Every reply body goes through a capped buffer or a capped decoder. A request's error
 * message is only formatted when it fails.
 */
#include "agent/docker.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define DEF_CONNECT_MS 2000L
#define DEF_REQUEST_MS 60000L
#define DEF_MAX_REPLY (16u << 20)
#define DEF_MAX_LINE (1u << 20)
#define DEF_MAX_EXEC_OUTPUT (4u << 20)
/* Error bodies are short JSON; keep at most this much of one for the message. */
#define MAX_ERROR_BODY (64u << 10)
/* How long to wait for an exec's exit code to be recorded after its stream closed. */
#define EXEC_EXIT_WAIT_MS 5000

struct docker {
    CURL *h;
    CURLM *m;
    struct curl_slist *hdrs;
    char *sock;
    long connect_ms;
    long request_ms;
    size_t max_reply;
    size_t max_line;
    atomic_int cancel;
    char curl_err[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    /* Process-wide, never undone: others in the process may still use libcurl. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- requests ------------------------------------------------------------------------------ */

/* A streaming consumer of a 2xx body: returns SINK_GO, SINK_STOP (the caller is done: the
 * call returns ST_OK) or SINK_ERR (with *e filled). */
enum { SINK_GO = 0, SINK_STOP = 1, SINK_ERR = -1 };
typedef int (*sink_fn)(void *arg, const char *p, size_t n, struct err *e);

struct req {
    const char *method;
    char *path;       /* after /v1.41 (or absolute with raw_path), with its query; owned */
    int raw_path;     /* path is not versioned (/_ping) */
    const char *body; /* JSON text or NULL */
    long timeout_ms;  /* 0: the handle's request timeout; < 0: none */
    int stream;       /* a cancel ends it with ST_OK */
    sink_fn sink;     /* NULL: the 2xx body is buffered in `body_buf` */
    void *sink_arg;
    void (*on_headers)(void *arg); /* called once the headers of a 2xx reply are in */
    /* results */
    long status;
    struct buf body_buf;
    int overflow;    /* buffered body over its cap */
    int sink_result; /* SINK_STOP or SINK_ERR once the sink ended the transfer */
    int cancelled;   /* docker_cancel() ended it */
    struct err sink_err;
    CURL *h;
};

static void req_init(struct req *r, const char *method, char *path)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->path = path;
}

static void req_release(struct req *r)
{
    FREE_AND_NULL(r->path);
    buf_release(&r->body_buf);
}

static size_t on_write(char *p, size_t sz, size_t nm, void *u)
{
    struct req *r = u;
    size_t n = sz * nm;

    if (!r->status)
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->sink && r->status / 100 == 2) {
        int rc = r->sink(r->sink_arg, p, n, &r->sink_err);
        if (rc != SINK_GO) {
            r->sink_result = rc;
            return 0; /* CURLE_WRITE_ERROR ends the transfer */
        }
        return n;
    }
    if (buf_append(&r->body_buf, p, n) != ST_OK) {
        r->overflow = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *u)
{
    struct req *r = u;
    size_t n = sz * nm;

    /* The empty line ends the headers: the daemon has accepted the request (for /events
     * it flushes them at once, before any event). */
    if (n <= 2 && (n == 0 || p[0] == '\r' || p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
        if (status / 100 == 2 && r->on_headers) {
            r->on_headers(r->sink_arg);
            r->on_headers = NULL;
        }
    }
    return n;
}

static void setup(struct docker *d, struct req *r)
{
    CURL *h = d->h;
    char *url;
    long timeout = r->timeout_ms == 0 ? d->request_ms : r->timeout_ms;

    /* reset keeps the connection cache, so the keep-alive connection is reused */
    curl_easy_reset(h);
    url = xasprintf("http://localhost%s%s%s", r->raw_path ? "" : "/v",
                    r->raw_path ? "" : DOCKER_API_VERSION, r->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, d->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout > 0 ? timeout : 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, d->hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, d->curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    /* The daemon answers HTTP/1.1 on the socket; keep curl from trying anything else. */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        /* A POST without a body still needs POSTFIELDS "" (else curl reads stdin). */
        const char *body = r->body ? r->body : "";
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        if (strcmp(r->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* Docker's message from an error body: {"message": "..."}, else the text itself. */
static void docker_message(const struct req *r, char *out, size_t len)
{
    json_t *j = NULL, *m;
    size_t n;

    if (r->body_buf.len) {
        j = json_loadb(r->body_buf.ptr, r->body_buf.len, 0, NULL);
        m = json_object_get(j, "message");
        if (json_is_string(m)) {
            snprintf(out, len, "%s", json_string_value(m));
            json_decref(j);
            return;
        }
        json_decref(j);
        n = r->body_buf.len;
        while (n && isspace((unsigned char)r->body_buf.ptr[n - 1]))
            n--;
        if (n) {
            snprintf(out, len, "%.*s", (int)(n > 300 ? 300 : n), r->body_buf.ptr);
            return;
        }
    }
    snprintf(out, len, "HTTP %ld", r->status);
}

static enum status status_of_http(long status)
{
    switch (status) {
    case 400:
        return ST_INVALID;
    case 404:
        return ST_NOTFOUND;
    case 403: /* "Address already in use" and other refusals of the current state */
    case 409:
        return ST_CONFLICT;
    default:
        return ST_IO;
    }
}

/* Run r on d. On failure the message is "<what>: <cause>", what formatted from fmt only
 * then. 2xx and 304 are success; r->status tells them apart. */
static enum status perform(struct docker *d, struct req *r, struct err *e, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static enum status perform(struct docker *d, struct req *r, struct err *e, const char *fmt, ...)
{
    CURLcode rc = CURLE_OK;
    CURLMcode mc;
    CURLMsg *msg;
    int running = 1, left, cancelled = 0;
    enum status st = ST_OK;
    char what[256], cause[ERR_MSG_LEN];
    va_list ap;

    r->h = d->h;
    buf_init(&r->body_buf, r->sink ? MAX_ERROR_BODY : d->max_reply);
    d->curl_err[0] = '\0';
    setup(d, r);
    mc = curl_multi_add_handle(d->m, d->h);
    if (mc != CURLM_OK) {
        snprintf(cause, sizeof(cause), "%s", curl_multi_strerror(mc));
        st = ST_IO;
        goto fail;
    }
    rc = CURLE_OK;
    for (;;) {
        if (atomic_load(&d->cancel)) {
            cancelled = 1;
            break;
        }
        mc = curl_multi_perform(d->m, &running);
        if (mc != CURLM_OK || !running)
            break;
        /* bounded so a lost wakeup costs at most a second */
        mc = curl_multi_poll(d->m, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK)
            break;
    }
    while ((msg = curl_multi_info_read(d->m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == d->h)
            rc = msg->data.result;
    curl_multi_remove_handle(d->m, d->h);
    atomic_store(&d->cancel, 0);
    curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &r->status);

    if (cancelled) {
        r->cancelled = 1;
        if (r->stream)
            return ST_OK;
        snprintf(cause, sizeof(cause), "cancelled");
        st = ST_RETRY;
        goto fail;
    }
    if (mc != CURLM_OK) {
        snprintf(cause, sizeof(cause), "%s", curl_multi_strerror(mc));
        st = ST_IO;
        goto fail;
    }
    if (r->sink_result == SINK_STOP)
        return ST_OK;
    if (r->sink_result == SINK_ERR) {
        snprintf(cause, sizeof(cause), "%s", r->sink_err.msg);
        st = r->sink_err.st != ST_OK ? r->sink_err.st : ST_IO;
        goto fail;
    }
    if (r->overflow) {
        snprintf(cause, sizeof(cause), "reply over %zu bytes", r->body_buf.cap);
        st = ST_INVALID;
        goto fail;
    }
    if (rc != CURLE_OK) {
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
            st = ST_RETRY;
            break;
        default:
            st = ST_IO;
        }
        snprintf(cause, sizeof(cause), "%s%s%s (docker at '%s')", curl_easy_strerror(rc),
                 d->curl_err[0] ? ": " : "", d->curl_err, d->sock);
        goto fail;
    }
    if (r->status / 100 == 2 || r->status == 304)
        return ST_OK;
    docker_message(r, cause, sizeof(cause));
    st = status_of_http(r->status);
fail:
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return err_set(e, st, "%s: %s", what, cause);
}

/* Path segment or query value, percent-encoded, fresh memory. */
static char *esc(struct docker *d, const char *s)
{
    char *c = curl_easy_escape(d->h, s ? s : "", 0);
    char *out = xstrdup(c ? c : "");
    curl_free(c);
    return out;
}

static char *pathf(const char *fmt, ...) PRINTF_LIKE(1, 2);
static char *pathf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    BUG_ON(n < 0);
    return s;
}

/* Parse the buffered body as JSON. */
static enum status reply_json(struct req *r, json_t **out, struct err *e, const char *what)
{
    json_error_t je;

    *out =
        json_loadb(r->body_buf.ptr ? r->body_buf.ptr : "", r->body_buf.len, JSON_DECODE_ANY, &je);
    if (!*out)
        return err_set(e, ST_INVALID, "%s: unparsable reply: %s", what, je.text);
    return ST_OK;
}

/* GET path → JSON; what is the error context. */
static enum status get_json(struct docker *d, char *path, json_t **out, struct err *e,
                            const char *what)
{
    struct req r;
    enum status st;

    *out = NULL;
    req_init(&r, "GET", path);
    st = perform(d, &r, e, "%s", what);
    if (st == ST_OK)
        st = reply_json(&r, out, e, what);
    req_release(&r);
    return st;
}

/* --- handle ------------------------------------------------------------------------------- */

struct docker *docker_create(const struct docker_opts *o, struct err *e)
{
    static const struct docker_opts defaults;
    struct docker *d;
    const char *sock;
    const char *env = getenv("DOCKER_HOST");

    if (!o)
        o = &defaults;
    sock = o->socket_path;
    if (!sock && env && *env) {
        if (strncmp(env, "unix://", 7) != 0) {
            err_set(e, ST_INVALID, "DOCKER_HOST '%s' is not supported: only unix:// sockets", env);
            return NULL;
        }
        sock = env + 7;
    }
    if (!sock || !*sock)
        sock = DOCKER_DEFAULT_SOCKET;
    pthread_once(&curl_once, curl_init_once);
    d = xcalloc(1, sizeof(*d));
    d->sock = xstrdup(sock);
    d->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEF_CONNECT_MS;
    d->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : DEF_REQUEST_MS;
    d->max_reply = o->max_reply_bytes ? o->max_reply_bytes : DEF_MAX_REPLY;
    d->max_line = o->max_line_bytes ? o->max_line_bytes : DEF_MAX_LINE;
    atomic_init(&d->cancel, 0);
    d->h = curl_easy_init();
    d->m = curl_multi_init();
    BUG_ON(!d->h || !d->m);
    d->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    d->hdrs = curl_slist_append(d->hdrs, "Expect:"); /* no 100-continue round trip */
    return d;
}

void docker_destroy(struct docker *d)
{
    if (!d)
        return;
    curl_multi_cleanup(d->m);
    curl_easy_cleanup(d->h);
    curl_slist_free_all(d->hdrs);
    free(d->sock);
    free(d);
}

const char *docker_socket_path(const struct docker *d)
{
    return d->sock;
}

void docker_cancel(struct docker *d)
{
    atomic_store(&d->cancel, 1);
    curl_multi_wakeup(d->m);
}

/* --- system --------------------------------------------------------------------------------- */

enum status docker_ping(struct docker *d, struct err *e)
{
    struct req r;
    enum status st;

    req_init(&r, "GET", xstrdup("/_ping"));
    r.raw_path = 1;
    st = perform(d, &r, e, "cannot ping docker");
    if (st == ST_OK && (r.body_buf.len != 2 || memcmp(r.body_buf.ptr, "OK", 2) != 0))
        st = err_set(e, ST_IO, "cannot ping docker: unexpected answer '%.40s'",
                     r.body_buf.ptr ? r.body_buf.ptr : "");
    req_release(&r);
    return st;
}

enum status docker_version(struct docker *d, json_t **out, struct err *e)
{
    return get_json(d, xstrdup("/version"), out, e, "cannot read docker version");
}

enum status docker_info(struct docker *d, json_t **out, struct err *e)
{
    return get_json(d, xstrdup("/info"), out, e, "cannot read docker info");
}

static char *str_field(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return xstrdup(s ? s : "");
}

enum status docker_node_info(struct docker *d, struct docker_node_info *out, struct err *e)
{
    json_t *ver = NULL, *info = NULL, *labels;
    enum status st;
    size_t i;

    memset(out, 0, sizeof(*out));
    st = docker_version(d, &ver, e);
    if (st != ST_OK)
        goto out;
    st = docker_info(d, &info, e);
    if (st != ST_OK)
        goto out;
    out->id = str_field(info, "ID");
    out->name = str_field(info, "Name");
    out->server_version = str_field(info, "ServerVersion");
    out->api_version = str_field(ver, "ApiVersion");
    out->os = str_field(info, "OperatingSystem");
    out->kernel = str_field(info, "KernelVersion");
    out->driver = str_field(info, "Driver");
    out->cpus = json_integer_value(json_object_get(info, "NCPU"));
    out->memory = json_integer_value(json_object_get(info, "MemTotal"));
    out->labels = json_object();
    labels = json_object_get(info, "Labels");
    for (i = 0; i < json_array_size(labels); i++) {
        const char *l = json_string_value(json_array_get(labels, i));
        const char *eq = l ? strchr(l, '=') : NULL;
        char *k;

        if (!l)
            continue;
        k = eq ? xstrndup(l, (size_t)(eq - l)) : xstrdup(l);
        json_object_set_new(out->labels, k, json_string(eq ? eq + 1 : ""));
        free(k);
    }
out:
    json_decref(ver);
    json_decref(info);
    return st;
}

void docker_node_info_release(struct docker_node_info *ni)
{
    free(ni->id);
    free(ni->name);
    free(ni->server_version);
    free(ni->api_version);
    free(ni->os);
    free(ni->kernel);
    free(ni->driver);
    json_decref(ni->labels);
    memset(ni, 0, sizeof(*ni));
}

/* --- images --------------------------------------------------------------------------------- */

enum status docker_image_inspect(struct docker *d, const char *name, json_t **out, struct err *e)
{
    struct req r;
    enum status st;
    char *n = esc(d, name);

    *out = NULL;
    req_init(&r, "GET", pathf("/images/%s/json", n));
    free(n);
    st = perform(d, &r, e, "cannot inspect image '%s'", name);
    if (st == ST_NOTFOUND)
        st = err_set(e, ST_NOTFOUND, "image '%s' not found", name);
    else if (st == ST_OK)
        st = reply_json(&r, out, e, "cannot inspect image");
    req_release(&r);
    return st;
}

enum status docker_image_list(struct docker *d, json_t **out, struct err *e)
{
    return get_json(d, pathf("/images/json"), out, e, "cannot list images");
}

enum status docker_image_remove(struct docker *d, const char *name, int force, json_t **out,
                                struct err *e)
{
    char *n = esc(d, name);
    struct req r;
    enum status st;

    if (out)
        *out = NULL;
    req_init(&r, "DELETE", pathf("/images/%s?force=%d&noprune=0", n, force ? 1 : 0));
    free(n);
    st = perform(d, &r, e, "cannot remove image '%s'", name);
    if (st == ST_OK && out)
        st = reply_json(&r, out, e, "cannot remove image");
    req_release(&r);
    return st;
}

/* --- containers ----------------------------------------------------------------------------- */

enum status docker_container_list(struct docker *d, const char *const *labels, int all,
                                  json_t **out, struct err *e)
{
    json_t *filters = json_object(), *arr = json_array();
    char *text, *q, *path;
    size_t i;

    for (i = 0; labels && labels[i]; i++)
        json_array_append_new(arr, json_string(labels[i]));
    json_object_set_new(filters, "label", arr);
    text = json_dumps(filters, JSON_COMPACT);
    json_decref(filters);
    q = esc(d, text);
    free(text);
    path = pathf("/containers/json?all=%d%s%s", all ? 1 : 0, labels ? "&filters=" : "",
                 labels ? q : "");
    free(q);
    return get_json(d, path, out, e, "cannot list containers");
}

enum status docker_container_inspect(struct docker *d, const char *id, json_t **out, struct err *e)
{
    char *n = esc(d, id), *path = pathf("/containers/%s/json", n);
    struct req r;
    enum status st;

    free(n);
    *out = NULL;
    req_init(&r, "GET", path);
    st = perform(d, &r, e, "cannot inspect container '%s'", id);
    if (st == ST_OK)
        st = reply_json(&r, out, e, "cannot inspect container");
    req_release(&r);
    return st;
}

enum status docker_container_create(struct docker *d, const char *name, const json_t *config,
                                    char **id_out, struct err *e)
{
    struct req r;
    enum status st;
    json_t *reply = NULL;
    char *body = json_dumps(config, JSON_COMPACT), *n = name ? esc(d, name) : NULL;
    const char *id;

    if (id_out)
        *id_out = NULL;
    if (!body) {
        free(n);
        return err_set(e, ST_INVALID, "cannot create container '%s': config is not an object",
                       name ? name : "");
    }
    req_init(&r, "POST",
             n ? pathf("/containers/create?name=%s", n) : xstrdup("/containers/create"));
    free(n);
    r.body = body;
    st = perform(d, &r, e, "cannot create container '%s'", name ? name : "");
    if (st == ST_OK)
        st = reply_json(&r, &reply, e, "cannot create container");
    if (st == ST_OK) {
        id = json_string_value(json_object_get(reply, "Id"));
        if (!id)
            st = err_set(e, ST_INVALID, "cannot create container '%s': reply without Id",
                         name ? name : "");
        else if (id_out)
            *id_out = xstrdup(id);
    }
    json_decref(reply);
    free(body);
    req_release(&r);
    return st;
}

void docker_config_set_network(json_t *config, const char *network, const char *ipv4)
{
    json_t *hc = json_object_get(config, "HostConfig"), *ep = json_object(), *eps, *nc;

    if (!json_is_object(hc)) {
        hc = json_object();
        json_object_set_new(config, "HostConfig", hc);
    }
    json_object_set_new(hc, "NetworkMode", json_string(network));
    if (ipv4)
        json_object_set_new(ep, "IPAMConfig", json_pack("{s:s}", "IPv4Address", ipv4));
    eps = json_object();
    json_object_set_new(eps, network, ep);
    nc = json_object();
    json_object_set_new(nc, "EndpointsConfig", eps);
    json_object_set_new(config, "NetworkingConfig", nc);
}

/* POST with an empty body to a container sub-resource. */
static enum status container_post(struct docker *d, const char *id, const char *action,
                                  const char *query, long timeout_ms, const char *verb,
                                  struct err *e)
{
    char *n = esc(d, id);
    struct req r;
    enum status st;

    req_init(&r, "POST",
             pathf("/containers/%s/%s%s%s", n, action, query ? "?" : "", query ? query : ""));
    free(n);
    r.timeout_ms = timeout_ms;
    st = perform(d, &r, e, "cannot %s container '%s'", verb, id);
    req_release(&r);
    return st;
}

enum status docker_container_start(struct docker *d, const char *id, struct err *e)
{
    return container_post(d, id, "start", NULL, 0, "start", e);
}

enum status docker_container_stop(struct docker *d, const char *id, int timeout_s, struct err *e)
{
    char q[32];
    /* Docker waits up to the grace period (default 10 s), then kills and waits for the
     * exit: allow the grace period on top of the usual request time. */
    long grace_ms = (timeout_s >= 0 ? timeout_s : 10) * 1000L;

    snprintf(q, sizeof(q), "t=%d", timeout_s);
    return container_post(d, id, "stop", timeout_s >= 0 ? q : NULL, d->request_ms + grace_ms,
                          "stop", e);
}

enum status docker_container_kill(struct docker *d, const char *id, const char *signal,
                                  struct err *e)
{
    char *s = esc(d, signal ? signal : "SIGKILL"), *q = pathf("signal=%s", s);
    enum status st = container_post(d, id, "kill", q, 0, "kill", e);

    free(s);
    free(q);
    return st;
}

enum status docker_container_remove(struct docker *d, const char *id, int force, int volumes,
                                    struct err *e)
{
    char *n = esc(d, id);
    struct req r;
    enum status st;

    req_init(&r, "DELETE",
             pathf("/containers/%s?force=%d&v=%d", n, force ? 1 : 0, volumes ? 1 : 0));
    free(n);
    st = perform(d, &r, e, "cannot remove container '%s'", id);
    req_release(&r);
    return st;
}

enum status docker_container_wait(struct docker *d, const char *id, long timeout_ms, int *exit_code,
                                  struct err *e)
{
    char *n = esc(d, id);
    struct req r;
    enum status st;
    json_t *reply = NULL, *code, *errobj;

    *exit_code = -1;
    req_init(&r, "POST", pathf("/containers/%s/wait?condition=not-running", n));
    free(n);
    r.timeout_ms = timeout_ms > 0 ? timeout_ms : -1;
    r.stream = 1;
    st = perform(d, &r, e, "cannot wait for container '%s'", id);
    if (st != ST_OK || r.cancelled) /* cancelled: no reply, *exit_code stays -1 */
        goto out;
    st = reply_json(&r, &reply, e, "cannot wait for container");
    if (st != ST_OK)
        goto out;
    errobj = json_object_get(reply, "Error");
    if (json_is_object(errobj) && json_string_value(json_object_get(errobj, "Message"))) {
        st = err_set(e, ST_IO, "cannot wait for container '%s': %s", id,
                     json_string_value(json_object_get(errobj, "Message")));
        goto out;
    }
    code = json_object_get(reply, "StatusCode");
    if (!json_is_integer(code)) {
        st = err_set(e, ST_INVALID, "cannot wait for container '%s': reply without StatusCode", id);
        goto out;
    }
    *exit_code = (int)json_integer_value(code);
out:
    json_decref(reply);
    req_release(&r);
    return st;
}

enum status docker_container_rename(struct docker *d, const char *id, const char *new_name,
                                    struct err *e)
{
    char *n = esc(d, new_name), *q = pathf("name=%s", n);
    enum status st = container_post(d, id, "rename", q, 0, "rename", e);

    free(n);
    free(q);
    return st;
}

enum status docker_container_stats(struct docker *d, const char *id, json_t **out, struct err *e)
{
    return docker_container_stats_sample(d, id, 0, out, e);
}

enum status docker_container_stats_sample(struct docker *d, const char *id, int one_shot,
                                          json_t **out, struct err *e)
{
    char *n = esc(d, id);
    struct req r;
    enum status st;

    *out = NULL;
    req_init(&r, "GET",
             pathf("/containers/%s/stats?stream=false%s", n, one_shot ? "&one-shot=true" : ""));
    free(n);
    st = perform(d, &r, e, "cannot read stats of container '%s'", id);
    if (st == ST_OK)
        st = reply_json(&r, out, e, "cannot read container stats");
    req_release(&r);
    return st;
}

/* --- frame demultiplexer ------------------------------------------------------------------ */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int64_t docker_parse_time_ns(const char *s, size_t len)
{
    struct tm tm;
    int y, mo, da, h, mi, se, oh, om;
    int64_t ns = 0, scale = 100000000, secs;
    size_t i = 19;

    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &da) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    if (s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            ns += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (i >= len)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    secs = (int64_t)timegm(&tm);
    if (s[i] == 'Z' && i + 1 == len)
        goto done;
    if ((s[i] == '+' || s[i] == '-') && i + 6 == len && s[i + 3] == ':' &&
        !digits(s + i + 1, 2, &oh) && !digits(s + i + 4, 2, &om)) {
        int64_t off = (int64_t)oh * 3600 + om * 60;
        secs += s[i] == '+' ? -off : off;
        goto done;
    }
    return -1;
done:
    /* Docker's "never" is 0001-01-01T00:00:00Z: before the epoch (and anything past 2262)
     * has no ns value */
    if (secs < 0 || secs > INT64_MAX / 1000000000 - 1)
        return -1;
    return secs * 1000000000 + ns;
}

void docker_demux_init(struct docker_demux *x, int raw, int timestamps, size_t max_line,
                       docker_log_cb cb, void *arg)
{
    memset(x, 0, sizeof(*x));
    x->raw = raw;
    x->timestamps = timestamps;
    x->max_line = max_line ? max_line : DEF_MAX_LINE;
    x->cb = cb;
    x->arg = arg;
    x->stream = DOCKER_STDOUT;
    x->in_ts = raw && timestamps; /* raw: a timestamp starts every line */
}

void docker_demux_release(struct docker_demux *x)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(x->line); i++)
        FREE_AND_NULL(x->line[i].ptr);
}

int docker_demux_stopped(const struct docker_demux *x)
{
    return x->stopped;
}

static void emit(struct docker_demux *x, int stream, int partial)
{
    struct docker_demux_line *ln = &x->line[stream];
    struct docker_log_line l;

    if (x->stopped)
        return;
    if (!ln->ptr) {
        ln->alloc = 64;
        ln->ptr = xmalloc(ln->alloc);
    }
    ln->ptr[ln->len] = '\0';
    l.stream = (enum docker_stream)stream;
    l.text = ln->ptr;
    l.len = ln->len;
    l.time = ln->time;
    l.time_ns = ln->time[0] ? docker_parse_time_ns(ln->time, strlen(ln->time)) : 0;
    if (l.time_ns < 0)
        l.time_ns = 0;
    l.partial = partial;
    if (x->cb(x->arg, &l))
        x->stopped = 1;
    ln->len = 0;
    ln->time[0] = '\0'; /* line_append() restores it for the next piece of a cut line */
}

static void line_append(struct docker_demux *x, int stream, const char *p, size_t n)
{
    struct docker_demux_line *ln = &x->line[stream];

    while (n && !x->stopped) {
        size_t room, take;

        if (ln->len >= x->max_line) {
            /* full and more is coming: deliver this piece (a line of exactly max_line
             * bytes followed by its newline is still delivered whole) */
            char keep[sizeof(ln->time)];
            memcpy(keep, ln->time, sizeof(keep));
            emit(x, stream, 1);
            memcpy(ln->time, keep, sizeof(keep));
            continue;
        }
        room = x->max_line - ln->len;
        take = n < room ? n : room;
        if (ln->alloc < ln->len + take + 1) {
            size_t want = ln->alloc ? ln->alloc : 64;
            while (want < ln->len + take + 1)
                want *= 2;
            ln->ptr = xrealloc(ln->ptr, want);
            ln->alloc = want;
        }
        memcpy(ln->ptr + ln->len, p, take);
        ln->len += take;
        p += take;
        n -= take;
    }
}

/* Payload bytes of one stream, in order: strip a leading timestamp where one is due, cut
 * into lines. */
static void payload(struct docker_demux *x, int stream, const char *p, size_t n)
{
    struct docker_demux_line *ln = &x->line[stream];

    while (n && !x->stopped) {
        const char *nl;

        if (x->in_ts) {
            const char *sp = memchr(p, ' ', n);
            size_t take = sp ? (size_t)(sp - p) : n;

            if (x->ts_len + take >= sizeof(x->ts)) {
                /* no timestamp after all: keep the bytes as text */
                x->in_ts = 0;
                line_append(x, stream, x->ts, x->ts_len);
                x->ts_len = 0;
                continue;
            }
            memcpy(x->ts + x->ts_len, p, take);
            x->ts_len += take;
            p += take;
            n -= take;
            if (!sp)
                break;
            p++; /* the space */
            n--;
            x->ts[x->ts_len] = '\0';
            if (ln->len == 0 && !ln->time[0])
                memcpy(ln->time, x->ts, x->ts_len + 1);
            x->in_ts = 0;
            x->ts_len = 0;
            continue;
        }
        nl = memchr(p, '\n', n);
        if (!nl) {
            line_append(x, stream, p, n);
            break;
        }
        line_append(x, stream, p, (size_t)(nl - p));
        emit(x, stream, 0);
        n -= (size_t)(nl - p) + 1;
        p = nl + 1;
        if (x->raw && x->timestamps)
            x->in_ts = 1;
    }
}

enum status docker_demux_feed(struct docker_demux *x, const void *data, size_t len, struct err *e)
{
    const char *p = data;

    while (len && !x->stopped) {
        size_t take;

        if (x->raw) {
            payload(x, DOCKER_STDOUT, p, len);
            break;
        }
        if (x->hdr_len < 8) {
            take = 8 - x->hdr_len < len ? 8 - x->hdr_len : len;
            memcpy(x->hdr + x->hdr_len, p, take);
            x->hdr_len += take;
            p += take;
            len -= take;
            if (x->hdr_len < 8)
                break;
            if (x->hdr[0] > 2 || x->hdr[1] || x->hdr[2] || x->hdr[3])
                return err_set(e, ST_INVALID, "malformed stream frame header %02x %02x %02x %02x",
                               x->hdr[0], x->hdr[1], x->hdr[2], x->hdr[3]);
            x->stream = x->hdr[0];
            x->left = (uint64_t)x->hdr[4] << 24 | (uint64_t)x->hdr[5] << 16 |
                      (uint64_t)x->hdr[6] << 8 | x->hdr[7];
            x->in_ts = x->timestamps;
            x->ts_len = 0;
            if (x->left == 0)
                x->hdr_len = 0;
            continue;
        }
        take = x->left < len ? (size_t)x->left : len;
        if (x->bytes) {
            /* exec capture wants each stream's bytes, not lines */
            if (x->bytes(x->bytes_arg, x->stream, p, take))
                x->stopped = 1;
        } else {
            payload(x, x->stream, p, take);
        }
        p += take;
        len -= take;
        x->left -= take;
        if (x->left == 0) {
            x->hdr_len = 0;
            /* a timestamp-only frame (nothing after it) must not leak into the next */
            x->in_ts = 0;
            x->ts_len = 0;
        }
    }
    return ST_OK;
}

void docker_demux_finish(struct docker_demux *x)
{
    size_t i;

    if (x->bytes)
        return;
    for (i = 0; i < ARRAY_SIZE(x->line); i++)
        if (x->line[i].len)
            emit(x, (int)i, 1);
}

/* --- logs ----------------------------------------------------------------------------------- */

static int demux_sink(void *arg, const char *p, size_t n, struct err *e)
{
    struct docker_demux *x = arg;

    if (docker_demux_feed(x, p, n, e) != ST_OK)
        return SINK_ERR;
    return docker_demux_stopped(x) ? SINK_STOP : SINK_GO;
}

enum status docker_container_logs(struct docker *d, const char *id,
                                  const struct docker_logs_opts *o, docker_log_cb cb, void *arg,
                                  struct err *e)
{
    static const struct docker_logs_opts defaults;
    struct docker_demux x;
    struct req r;
    enum status st;
    char *n = esc(d, id), tail[32];
    int out, errs;

    if (!o)
        o = &defaults;
    out = o->stdout_ || !o->stderr_;
    errs = o->stderr_ || !o->stdout_;
    if (o->tail > 0)
        snprintf(tail, sizeof(tail), "%ld", o->tail);
    else
        snprintf(tail, sizeof(tail), "all");
    req_init(&r, "GET",
             pathf("/containers/%s/logs?stdout=%d&stderr=%d&timestamps=1&follow=%d&tail=%s"
                   "&since=%lld",
                   n, out, errs, o->follow ? 1 : 0, tail, (long long)o->since));
    free(n);
    docker_demux_init(&x, o->tty ? 1 : 0, 1, d->max_line, cb, arg);
    r.sink = demux_sink;
    r.sink_arg = &x;
    r.stream = 1;
    r.timeout_ms = o->follow ? -1 : 0;
    st = perform(d, &r, e, "cannot read logs of container '%s'", id);
    if (st == ST_OK)
        docker_demux_finish(&x);
    docker_demux_release(&x);
    req_release(&r);
    return st;
}

/* --- events --------------------------------------------------------------------------------- */

struct events_ctx {
    struct buf line; /* capped at max_line: the tail of an incomplete event */
    docker_event_cb cb;
    void *arg;
    void (*on_connected)(void *arg);
};

static void events_connected(void *arg)
{
    struct events_ctx *c = arg;

    if (c->on_connected)
        c->on_connected(c->arg);
}

static int deliver_event(struct events_ctx *c, const char *p, size_t n, struct err *e)
{
    json_error_t je;
    json_t *j = json_loadb(p, n, 0, &je), *actor;
    struct docker_event ev;
    int rc;

    if (!j) {
        err_set(e, ST_INVALID, "unparsable event: %s", je.text);
        return SINK_ERR;
    }
    actor = json_object_get(j, "Actor");
    ev.type = json_string_value(json_object_get(j, "Type"));
    ev.action = json_string_value(json_object_get(j, "Action"));
    ev.id = json_string_value(json_object_get(actor, "ID"));
    ev.attributes = json_object_get(actor, "Attributes");
    ev.time_ns = json_integer_value(json_object_get(j, "timeNano"));
    ev.raw = j;
    if (!ev.type)
        ev.type = "";
    if (!ev.action)
        ev.action = json_string_value(json_object_get(j, "status")) ?: "";
    if (!ev.id)
        ev.id = json_string_value(json_object_get(j, "id")) ?: "";
    rc = c->cb(c->arg, &ev);
    json_decref(j);
    return rc ? SINK_STOP : SINK_GO;
}

static int events_sink(void *arg, const char *p, size_t n, struct err *e)
{
    struct events_ctx *c = arg;

    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        int rc;

        if (buf_append(&c->line, p, take) != ST_OK) {
            err_set(e, ST_INVALID, "event over %zu bytes", c->line.cap);
            return SINK_ERR;
        }
        if (!nl)
            break;
        p = nl + 1;
        n -= take + 1;
        if (c->line.len == 0)
            continue;
        rc = deliver_event(c, c->line.ptr, c->line.len, e);
        buf_reset(&c->line);
        if (rc != SINK_GO)
            return rc;
    }
    return SINK_GO;
}

enum status docker_events(struct docker *d, const json_t *filters, int64_t since, int64_t until,
                          void (*on_connected)(void *arg), docker_event_cb cb, void *arg,
                          struct err *e)
{
    struct events_ctx c;
    struct req r;
    struct buf q = BUF_INIT;
    enum status st;

    memset(&c, 0, sizeof(c));
    buf_init(&c.line, d->max_line);
    c.cb = cb;
    c.arg = arg;
    c.on_connected = on_connected;
    buf_init(&q, 0);
    st = buf_puts(&q, "/events?");
    if (st == ST_OK && filters && json_object_size(filters)) {
        char *text = json_dumps(filters, JSON_COMPACT), *f = esc(d, text ? text : "{}");
        st = buf_printf(&q, "filters=%s&", f);
        free(text);
        free(f);
    }
    if (st == ST_OK && since > 0)
        st = buf_printf(&q, "since=%lld&", (long long)since);
    if (st == ST_OK && until > 0)
        st = buf_printf(&q, "until=%lld&", (long long)until);
    BUG_ON(st != ST_OK);   /* uncapped */
    q.ptr[--q.len] = '\0'; /* the trailing '&' or '?' */
    req_init(&r, "GET", buf_take(&q));
    r.sink = events_sink;
    r.sink_arg = &c;
    r.on_headers = events_connected;
    r.stream = 1;
    r.timeout_ms = -1;
    st = perform(d, &r, e, "cannot read docker events");
    /* a final event without a newline (the daemon closed after `until`) */
    if (st == ST_OK && c.line.len && r.sink_result == 0) {
        struct err tmp = ERR_INIT;
        if (deliver_event(&c, c.line.ptr, c.line.len, &tmp) == SINK_ERR)
            st = err_set(e, tmp.st, "cannot read docker events: %s", tmp.msg);
    }
    buf_release(&c.line);
    buf_release(&q);
    req_release(&r);
    return st;
}

/* --- exec ----------------------------------------------------------------------------------- */

struct exec_ctx {
    struct buf out, err;
    struct err e;
};

static int exec_bytes(void *arg, int stream, const char *p, size_t n)
{
    struct exec_ctx *c = arg;
    struct buf *b = stream == DOCKER_STDERR ? &c->err : &c->out;

    if (buf_append(b, p, n) != ST_OK) {
        err_set(&c->e, ST_INVALID, "%s over %zu bytes",
                stream == DOCKER_STDERR ? "stderr" : "stdout", b->cap);
        return 1;
    }
    return 0;
}

static int exec_sink(void *arg, const char *p, size_t n, struct err *e)
{
    struct docker_demux *x = arg;
    struct exec_ctx *c = x->bytes_arg;

    if (docker_demux_feed(x, p, n, e) != ST_OK)
        return SINK_ERR;
    if (docker_demux_stopped(x)) {
        *e = c->e;
        return SINK_ERR;
    }
    return SINK_GO;
}

static json_t *str_array(const char *const *v)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

enum status docker_exec(struct docker *d, const char *id, const struct docker_exec_opts *o,
                        struct docker_exec_result *out, struct err *e)
{
    struct exec_ctx c;
    struct docker_demux x;
    struct req r;
    json_t *cfg, *reply = NULL, *code;
    char *body, *n, *exec_id = NULL, *xid;
    size_t cap = o->max_output ? o->max_output : DEF_MAX_EXEC_OUTPUT;
    enum status st;
    int64_t deadline;

    memset(out, 0, sizeof(*out));
    out->exit_code = -1;
    if (!o->cmd || !o->cmd[0])
        return err_set(e, ST_INVALID, "cannot exec in container '%s': no command", id);
    memset(&c, 0, sizeof(c));
    buf_init(&c.out, cap);
    buf_init(&c.err, cap);

    /* 1. create */
    cfg = json_pack("{s:b, s:b, s:b, s:b, s:o}", "AttachStdin", 0, "AttachStdout", 1,
                    "AttachStderr", 1, "Tty", 0, "Cmd", str_array(o->cmd));
    if (o->env)
        json_object_set_new(cfg, "Env", str_array(o->env));
    if (o->user)
        json_object_set_new(cfg, "User", json_string(o->user));
    if (o->workdir)
        json_object_set_new(cfg, "WorkingDir", json_string(o->workdir));
    body = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    n = esc(d, id);
    req_init(&r, "POST", pathf("/containers/%s/exec", n));
    free(n);
    r.body = body;
    st = perform(d, &r, e, "cannot exec '%s' in container '%s'", o->cmd[0], id);
    if (st == ST_OK)
        st = reply_json(&r, &reply, e, "cannot create exec");
    free(body);
    req_release(&r);
    if (st != ST_OK)
        goto out;
    if (!json_string_value(json_object_get(reply, "Id"))) {
        st = err_set(e, ST_INVALID, "cannot exec '%s' in container '%s': reply without Id",
                     o->cmd[0], id);
        goto out;
    }
    exec_id = xstrdup(json_string_value(json_object_get(reply, "Id")));
    json_decref(reply);
    reply = NULL;

    /* 2. start attached: the daemon hijacks the connection and sends raw multiplexed
     * frames (no chunking, no length) until the process's output ends, then closes. */
    xid = esc(d, exec_id);
    req_init(&r, "POST", pathf("/exec/%s/start", xid));
    free(xid);
    r.body = "{\"Detach\":false,\"Tty\":false}";
    docker_demux_init(&x, 0, 0, 0, NULL, NULL);
    x.bytes = exec_bytes;
    x.bytes_arg = &c;
    r.sink = exec_sink;
    r.sink_arg = &x;
    r.timeout_ms = o->timeout_ms;
    st = perform(d, &r, e, "cannot run '%s' in container '%s'", o->cmd[0], id);
    docker_demux_release(&x);
    req_release(&r);
    if (st != ST_OK)
        goto out;

    /* 3. the exit code; it may be recorded a moment after the stream closed */
    deadline = time_mono_ms() + EXEC_EXIT_WAIT_MS;
    for (;;) {
        xid = esc(d, exec_id);
        st = get_json(d, pathf("/exec/%s/json", xid), &reply, e, "cannot inspect exec");
        free(xid);
        if (st != ST_OK)
            goto out;
        code = json_object_get(reply, "ExitCode");
        if (!json_is_true(json_object_get(reply, "Running")) && json_is_integer(code)) {
            out->exit_code = (int)json_integer_value(code);
            break;
        }
        json_decref(reply);
        reply = NULL;
        if (time_mono_ms() > deadline) {
            st = err_set(e, ST_RETRY,
                         "cannot run '%s' in container '%s': no exit code %d ms "
                         "after its output ended",
                         o->cmd[0], id, EXEC_EXIT_WAIT_MS);
            goto out;
        }
        time_sleep_ms(20);
    }
out:
    json_decref(reply);
    free(exec_id);
    if (st == ST_OK) {
        out->out_len = c.out.len;
        out->out = buf_take(&c.out);
        out->err_len = c.err.len;
        out->err = buf_take(&c.err);
    }
    buf_release(&c.out);
    buf_release(&c.err);
    return st;
}

void docker_exec_result_release(struct docker_exec_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
    r->exit_code = -1;
}

/* --- networks -------------------------------------------------------------------------------- */

enum status docker_network_inspect(struct docker *d, const char *name, json_t **out, struct err *e)
{
    char *n = esc(d, name), *path = pathf("/networks/%s", n);
    struct req r;
    enum status st;

    free(n);
    *out = NULL;
    req_init(&r, "GET", path);
    st = perform(d, &r, e, "cannot inspect network '%s'", name);
    if (st == ST_OK)
        st = reply_json(&r, out, e, "cannot inspect network");
    req_release(&r);
    return st;
}

/* POST path with a JSON body; *out (may be NULL) gets the parsed reply. */
static enum status post_json(struct docker *d, char *path, const json_t *body_json, json_t **out,
                             struct err *e, const char *what)
{
    struct req r;
    enum status st;
    char *body = json_dumps(body_json, JSON_COMPACT);
    json_t *reply = NULL;

    if (out)
        *out = NULL;
    req_init(&r, "POST", path);
    r.body = body;
    st = perform(d, &r, e, "%s", what);
    if (st == ST_OK && out && r.body_buf.len)
        st = reply_json(&r, &reply, e, what);
    if (st == ST_OK && out)
        *out = reply;
    else
        json_decref(reply);
    free(body);
    req_release(&r);
    return st;
}

enum status docker_network_create(struct docker *d, const json_t *config, char **id_out,
                                  struct err *e)
{
    json_t *cfg = json_deep_copy(config), *reply = NULL;
    const char *name = json_string_value(json_object_get(config, "Name"));
    char what[200];
    enum status st;

    if (id_out)
        *id_out = NULL;
    snprintf(what, sizeof(what), "cannot create network '%s'", name ? name : "");
    if (!json_is_object(cfg) || !name) {
        json_decref(cfg);
        return err_set(e, ST_INVALID, "%s: config needs a Name", what);
    }
    json_object_set_new(cfg, "CheckDuplicate", json_true());
    st = post_json(d, xstrdup("/networks/create"), cfg, &reply, e, what);
    json_decref(cfg);
    if (st == ST_OK && id_out) {
        const char *id = json_string_value(json_object_get(reply, "Id"));
        if (!id)
            st = err_set(e, ST_INVALID, "%s: reply without Id", what);
        else
            *id_out = xstrdup(id);
    }
    json_decref(reply);
    return st;
}

enum status docker_network_remove(struct docker *d, const char *name, struct err *e)
{
    char *n = esc(d, name);
    struct req r;
    enum status st;

    req_init(&r, "DELETE", pathf("/networks/%s", n));
    free(n);
    st = perform(d, &r, e, "cannot remove network '%s'", name);
    req_release(&r);
    return st;
}

enum status docker_network_connect(struct docker *d, const char *name, const char *container,
                                   const char *ipv4, struct err *e)
{
    json_t *body = json_pack("{s:s}", "Container", container), *ep = json_object();
    char *n = esc(d, name), what[300];
    enum status st;

    if (ipv4)
        json_object_set_new(ep, "IPAMConfig", json_pack("{s:s}", "IPv4Address", ipv4));
    json_object_set_new(body, "EndpointConfig", ep);
    snprintf(what, sizeof(what), "cannot connect container '%s' to network '%s'", container, name);
    st = post_json(d, pathf("/networks/%s/connect", n), body, NULL, e, what);
    free(n);
    json_decref(body);
    return st;
}

enum status docker_network_disconnect(struct docker *d, const char *name, const char *container,
                                      int force, struct err *e)
{
    json_t *body = json_pack("{s:s, s:b}", "Container", container, "Force", force ? 1 : 0);
    char *n = esc(d, name), what[300];
    enum status st;

    snprintf(what, sizeof(what), "cannot disconnect container '%s' from network '%s'", container,
             name);
    st = post_json(d, pathf("/networks/%s/disconnect", n), body, NULL, e, what);
    free(n);
    json_decref(body);
    return st;
}

/* --- volumes --------------------------------------------------------------------------------- */

enum status docker_volume_create(struct docker *d, const json_t *config, json_t **out,
                                 struct err *e)
{
    const char *name = json_string_value(json_object_get(config, "Name"));
    char what[200];

    snprintf(what, sizeof(what), "cannot create volume '%s'", name ? name : "");
    return post_json(d, xstrdup("/volumes/create"), config, out, e, what);
}

enum status docker_volume_inspect(struct docker *d, const char *name, json_t **out, struct err *e)
{
    char *n = esc(d, name), *path = pathf("/volumes/%s", n);
    struct req r;
    enum status st;

    free(n);
    *out = NULL;
    req_init(&r, "GET", path);
    st = perform(d, &r, e, "cannot inspect volume '%s'", name);
    if (st == ST_OK)
        st = reply_json(&r, out, e, "cannot inspect volume");
    req_release(&r);
    return st;
}

enum status docker_volume_remove(struct docker *d, const char *name, int force, struct err *e)
{
    char *n = esc(d, name);
    struct req r;
    enum status st;

    req_init(&r, "DELETE", pathf("/volumes/%s?force=%d", n, force ? 1 : 0));
    free(n);
    st = perform(d, &r, e, "cannot remove volume '%s'", name);
    req_release(&r);
    return st;
}
