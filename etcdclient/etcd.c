/* etcdclient/etcd.c -- the client: curl handle pool, endpoints and failover, auth token,
 * request/reply plumbing and the mapping of gateway errors to enum status.
 *
 * Locking: c->lock guards the idle-handle pool, the current endpoint index and the token.
 * It is never held across network I/O. c->auth_lock serialises authentication so that a
 * burst of requests that all see an expired token produce one /v3/auth/authenticate, not
 * one per thread (the token generation tells a waiter that someone else renewed it).
 */
#include "etcdclient/etcd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd_internal.h"

#include "common/banned.h"

/* Idle handles kept for reuse; more concurrent calls than this create (and later free)
 * extra handles, which only costs a new connection. */
#define POOL_MAX 16

struct etcd {
    char **endpoints; /* never change after create: borrowed pointers stay valid */
    size_t n_endpoints;
    char *username;
    char *password;
    char *cacert;
    char *cert;
    char *key;
    int insecure;
    long connect_ms;
    long request_ms;
    size_t max_reply;

    pthread_mutex_t lock;
    size_t current;       /* index into endpoints */
    CURL *idle[POOL_MAX]; /* handles reset and ready for reuse */
    size_t n_idle;
    char *token;        /* NULL: not authenticated yet; "": auth disabled in etcd */
    uint64_t token_gen; /* bumped on every successful authenticate */

    pthread_mutex_t auth_lock;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    /* Process-wide and not thread-safe in itself, hence pthread_once. Never undone: other
     * code in the process may use libcurl after the last client is gone. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

static enum status parse_endpoints(struct etcd *c, const char *list, struct err *e)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;

        p = end ? end + 1 : p + len;
        while (len && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '/'))
            len--;
        if (!len)
            continue;
        if (!((len > 7 && !strncmp(s, "http://", 7)) || (len > 8 && !strncmp(s, "https://", 8))))
            return err_set(e, ST_INVALID, "bad etcd endpoint '%.*s': want http(s)://host:port",
                           (int)len, s);
        c->endpoints = xrealloc(c->endpoints, (c->n_endpoints + 1) * sizeof(*c->endpoints));
        c->endpoints[c->n_endpoints++] = xstrndup(s, len);
    }
    if (!c->n_endpoints)
        return err_set(e, ST_INVALID, "no etcd endpoint in '%s'", list);
    return ST_OK;
}

struct etcd *etcd_create(const struct etcd_opts *o, struct err *e)
{
    struct etcd *c;

    if (!o || !o->endpoints) {
        err_set(e, ST_INVALID, "etcd endpoints are required");
        return NULL;
    }
    if (o->username && !o->password) {
        err_set(e, ST_INVALID, "etcd user '%s' has no password", o->username);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->auth_lock, NULL);
    if (parse_endpoints(c, o->endpoints, e) != ST_OK) {
        etcd_destroy(c);
        return NULL;
    }
    c->username = dup_opt(o->username);
    c->password = c->username ? xstrdup(o->password) : NULL;
    c->cacert = dup_opt(o->cacert);
    c->cert = dup_opt(o->cert);
    c->key = dup_opt(o->key);
    c->insecure = o->insecure_skip_verify;
    c->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : ETCD__DEFAULT_CONNECT_MS;
    c->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : ETCD__DEFAULT_REQUEST_MS;
    c->max_reply = o->max_reply_bytes ? o->max_reply_bytes : ETCD__DEFAULT_MAX_BYTES;
    return c;
}

void etcd_destroy(struct etcd *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_idle; i++)
        curl_easy_cleanup(c->idle[i]);
    c->n_idle = 0;
    for (size_t i = 0; i < c->n_endpoints; i++)
        free(c->endpoints[i]);
    free(c->endpoints);
    free(c->username);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->password);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    free(c->token);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->auth_lock);
    free(c);
}

const char *etcd_current_endpoint(struct etcd *c)
{
    const char *ep;

    pthread_mutex_lock(&c->lock);
    ep = c->endpoints[c->current];
    pthread_mutex_unlock(&c->lock);
    return ep;
}

/* --- endpoints ---------------------------------------------------------------------------- */

size_t etcd__endpoint_count(struct etcd *c)
{
    return c->n_endpoints;
}

const char *etcd__endpoint_at(struct etcd *c, size_t attempt, size_t *idx)
{
    size_t i;

    pthread_mutex_lock(&c->lock);
    i = (c->current + attempt) % c->n_endpoints;
    pthread_mutex_unlock(&c->lock);
    *idx = i;
    return c->endpoints[i];
}

void etcd__endpoint_good(struct etcd *c, size_t idx)
{
    pthread_mutex_lock(&c->lock);
    c->current = idx;
    pthread_mutex_unlock(&c->lock);
}

void etcd__endpoint_bad(struct etcd *c, size_t idx)
{
    pthread_mutex_lock(&c->lock);
    if (c->current == idx)
        c->current = (idx + 1) % c->n_endpoints;
    pthread_mutex_unlock(&c->lock);
}

/* --- curl handles ------------------------------------------------------------------------- */

static void setup_handle(struct etcd *c, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (c->cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
    if (c->key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

CURL *etcd__new_handle(struct etcd *c)
{
    CURL *h = curl_easy_init();

    BUG_ON(!h); /* only fails on out-of-memory */
    setup_handle(c, h);
    return h;
}

static CURL *pool_get(struct etcd *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->n_idle)
        h = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->lock);
    if (!h)
        return etcd__new_handle(c);
    setup_handle(c, h);
    return h;
}

static void pool_put(struct etcd *c, CURL *h)
{
    /* Reset drops every option (and so every pointer into the caller's stack) but keeps
     * the handle's connection cache, which is the point of pooling. */
    curl_easy_reset(h);
    pthread_mutex_lock(&c->lock);
    if (c->n_idle < POOL_MAX) {
        c->idle[c->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        curl_easy_cleanup(h);
}

int etcd__curl_no_connect(CURL *h, CURLcode rc)
{
    curl_off_t connect_us = 0;

    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout before the TCP connection was up: nothing was sent. */
        curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
        return connect_us == 0;
    default:
        return 0;
    }
}

enum status etcd__curl_status(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return ST_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return ST_RETRY;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
        return ST_INVALID;
    default:
        return ST_IO;
    }
}

/* --- gateway errors ----------------------------------------------------------------------- */

enum status etcd__grpc_status(int code, const char *msg)
{
    if (!msg)
        msg = "";
    switch (code) {
    case 0:
        return ST_OK;
    case 1:  /* Canceled */
    case 4:  /* DeadlineExceeded */
    case 8:  /* ResourceExhausted ("too many requests") */
    case 10: /* Aborted */
    case 14: /* Unavailable: no leader, request timed out, transport closing */
        return ST_RETRY;
    case 3: /* InvalidArgument: etcd also uses it for several auth failures */
        if (strstr(msg, "authentication failed") || strstr(msg, "user name is empty") ||
            strstr(msg, "auth store is old"))
            return ST_DENIED;
        return ST_INVALID;
    case 5:
        return ST_NOTFOUND;
    case 6:
        return ST_CONFLICT;
    case 7:  /* PermissionDenied */
    case 16: /* Unauthenticated */
        return ST_DENIED;
    case 11: /* OutOfRange */
        return strstr(msg, "compacted") ? ST_COMPACTED : ST_INVALID;
    case 9:  /* FailedPrecondition */
    case 12: /* Unimplemented */
        return ST_INVALID;
    default: /* Unknown, Internal, DataLoss */
        return ST_IO;
    }
}

int etcd__is_token_error(int code, const char *msg)
{
    if (code == 16)
        return 1;
    if (!msg)
        return 0;
    /* "user name is empty" is what etcd says to a request without a token, e.g. when auth
     * was enabled after we found it disabled; "auth store is old" wants a new token too. */
    return strstr(msg, "invalid auth token") || strstr(msg, "user name is empty") ||
           strstr(msg, "auth store is old") || strstr(msg, "Unauthenticated");
}

/* --- one request -------------------------------------------------------------------------- */

struct sink {
    struct buf *b;
    int over;
};

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;

    if (buf_append(s->b, p, size * n) != ST_OK) {
        s->over = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* POST data to path, trying each endpoint once, starting at the current one. */
static enum status post_raw(struct etcd *c, const char *path, const char *data,
                            const char *auth_hdr, struct buf *out, long *http, size_t *ep_idx,
                            struct err *e)
{
    CURL *h = pool_get(c);
    struct curl_slist *hdrs = NULL;
    struct buf tried = BUF_INIT;
    struct sink sink = {out, 0};
    char errbuf[CURL_ERROR_SIZE];
    enum status st = ST_RETRY;
    size_t n = etcd__endpoint_count(c), start;

    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip on big bodies */
    if (auth_hdr)
        hdrs = curl_slist_append(hdrs, auth_hdr);
    BUG_ON(!hdrs);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(data));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    (void)etcd__endpoint_at(c, 0, &start);
    for (size_t attempt = 0; attempt < n; attempt++) {
        size_t idx = (start + attempt) % n;
        const char *ep = c->endpoints[idx];
        char *url = xasprintf("%s%s", ep, path);
        CURLcode rc;

        buf_reset(out);
        errbuf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url);
        rc = curl_easy_perform(h);
        free(url);
        if (rc == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
            etcd__endpoint_good(c, idx);
            *ep_idx = idx;
            st = ST_OK;
            goto out;
        }
        if (sink.over) {
            st = err_set(e, ST_INVALID, "etcd reply to '%s' is over %zu bytes", path, c->max_reply);
            goto out;
        }
        if (!etcd__curl_no_connect(h, rc)) {
            st = err_set(e, etcd__curl_status(rc), "etcd request '%s' to '%s' failed: %s", path, ep,
                         errbuf[0] ? errbuf : curl_easy_strerror(rc));
            goto out;
        }
        if (buf_printf(&tried, "%s%s: %s", tried.len ? "; " : "", ep,
                       errbuf[0] ? errbuf : curl_easy_strerror(rc)) != ST_OK)
            BUG_ON(1); /* uncapped buffer */
        etcd__endpoint_bad(c, idx);
    }
    st = err_set(e, ST_RETRY, "no etcd endpoint reachable for '%s': %s", path,
                 tried.ptr ? tried.ptr : "");
out:
    buf_release(&tried);
    curl_slist_free_all(hdrs);
    pool_put(c, h);
    return st;
}

/* Turn a reply body into a document or a status. *code gets the gRPC code of a gateway
 * error (0 otherwise) so the caller can spot token errors. */
static enum status parse_reply(const char *path, struct buf *body, long http, json_t **reply,
                               int *code, struct err *e)
{
    const char *nl = body->ptr ? memchr(body->ptr, '\n', body->len) : NULL;
    size_t len = nl ? (size_t)(nl - body->ptr) : body->len;
    json_t *doc = NULL, *err, *res;
    json_error_t je;
    enum status st;

    *reply = NULL;
    *code = 0;
    if (len)
        doc = json_loadb(body->ptr, len, 0, &je);
    if (!json_is_object(doc)) {
        json_decref(doc);
        if (http >= 500 || http == 0)
            return err_set(e, ST_RETRY, "etcd request '%s' failed: HTTP %ld", path, http);
        if (http != 200)
            return err_set(e, ST_IO, "etcd request '%s' failed: HTTP %ld", path, http);
        return err_set(e, ST_INVALID, "unparsable etcd reply to '%s': %s", path,
                       len ? je.text : "empty body");
    }
    err = json_object_get(doc, "error");
    if (err) {
        /* Unary endpoints: {"error":"..","message":"..","code":N} with an HTTP error
         * status. Streams: {"error":{"grpc_code":N,"message":".."}} with HTTP 200. */
        const char *msg;
        if (json_is_object(err)) {
            *code = (int)json_integer_value(json_object_get(err, "grpc_code"));
            msg = json_string_value(json_object_get(err, "message"));
        } else {
            *code = (int)json_integer_value(json_object_get(doc, "code"));
            msg = json_string_value(json_object_get(doc, "message"));
            if (!msg)
                msg = json_string_value(err);
        }
        if (!msg)
            msg = "unknown error";
        st = etcd__grpc_status(*code, msg);
        if (st == ST_OK) /* an error object without a code: don't call it success */
            st = ST_IO;
        err_set(e, st, "etcd request '%s' failed: %s", path, msg);
        json_decref(doc);
        return st;
    }
    if (http != 200) {
        json_decref(doc);
        return err_set(e, http >= 500 ? ST_RETRY : ST_IO, "etcd request '%s' failed: HTTP %ld",
                       path, http);
    }
    res = json_object_get(doc, "result"); /* streaming endpoints wrap each message */
    if (json_is_object(res)) {
        json_incref(res);
        json_decref(doc);
        doc = res;
    }
    *reply = doc;
    return ST_OK;
}

static enum status authenticate(struct etcd *c, char **token, struct err *e)
{
    json_t *req = json_pack("{s:s, s:s}", "name", c->username, "password", c->password);
    char *data = json_dumps(req, JSON_COMPACT);
    struct buf body;
    json_t *reply = NULL;
    long http = 0;
    size_t idx;
    int code;
    enum status st;

    *token = NULL;
    buf_init(&body, c->max_reply);
    st = post_raw(c, "/v3/auth/authenticate", data, NULL, &body, &http, &idx, e);
    if (st != ST_OK)
        goto out;
    st = parse_reply("/v3/auth/authenticate", &body, http, &reply, &code, e);
    if (st != ST_OK) {
        if (code == 9 && e && strstr(e->msg, "not enabled")) {
            /* etcd runs without auth: go on without a token. */
            *token = xstrdup("");
            st = ST_OK;
            err_clear(e);
        }
        goto out;
    }
    if (!json_is_string(json_object_get(reply, "token"))) {
        st = err_set(e, ST_INVALID, "etcd authenticate reply has no token");
        goto out;
    }
    *token = xstrdup(json_string_value(json_object_get(reply, "token")));
out:
    json_decref(reply);
    buf_release(&body);
    free(data);
    json_decref(req);
    if (st != ST_OK)
        err_wrap(e, "cannot authenticate to etcd as '%s'", c->username);
    return st;
}

enum status etcd__token_renew(struct etcd *c, uint64_t gen, struct err *e)
{
    struct err le = ERR_INIT;
    char *tok = NULL;
    enum status st = ST_OK;

    pthread_mutex_lock(&c->auth_lock);
    pthread_mutex_lock(&c->lock);
    if (c->token_gen != gen) { /* someone renewed while we waited */
        pthread_mutex_unlock(&c->lock);
        goto out;
    }
    pthread_mutex_unlock(&c->lock);
    /* le, not e: authenticate() inspects the message to spot "auth not enabled". */
    st = authenticate(c, &tok, &le);
    if (st != ST_OK) {
        err_set(e, st, "%s", le.msg);
        goto out;
    }
    pthread_mutex_lock(&c->lock);
    free(c->token);
    c->token = tok;
    c->token_gen++;
    pthread_mutex_unlock(&c->lock);
out:
    pthread_mutex_unlock(&c->auth_lock);
    return st;
}

static int auth_header_locked(struct etcd *c, char **hdr, uint64_t *gen)
{
    if (!c->token)
        return 0;
    *hdr = *c->token ? xasprintf("Authorization: %s", c->token) : NULL;
    *gen = c->token_gen;
    return 1;
}

enum status etcd__auth_header(struct etcd *c, char **hdr, uint64_t *gen, struct err *e)
{
    uint64_t seen;
    enum status st;
    int have;

    *hdr = NULL;
    *gen = 0;
    if (!c->username)
        return ST_OK;
    pthread_mutex_lock(&c->lock);
    have = auth_header_locked(c, hdr, gen);
    seen = c->token_gen;
    pthread_mutex_unlock(&c->lock);
    if (have)
        return ST_OK;
    st = etcd__token_renew(c, seen, e);
    if (st != ST_OK)
        return st;
    pthread_mutex_lock(&c->lock);
    have = auth_header_locked(c, hdr, gen);
    pthread_mutex_unlock(&c->lock);
    return have ? ST_OK : err_set(e, ST_DENIED, "no etcd auth token");
}

enum status etcd__post(struct etcd *c, const char *path, json_t *body, json_t **reply,
                       struct err *e)
{
    char *data = json_dumps(body, JSON_COMPACT);
    struct err le = ERR_INIT; /* e may be NULL, but we need the message to spot token errors */
    struct buf out;
    enum status st;
    int renewed = 0;

    BUG_ON(!data);
    *reply = NULL;
    buf_init(&out, c->max_reply);
    for (;;) {
        char *auth = NULL;
        uint64_t gen = 0;
        long http = 0;
        size_t idx = 0;
        int code = 0;

        st = etcd__auth_header(c, &auth, &gen, &le);
        if (st != ST_OK)
            break;
        st = post_raw(c, path, data, auth, &out, &http, &idx, &le);
        free(auth);
        if (st != ST_OK)
            break;
        st = parse_reply(path, &out, http, reply, &code, &le);
        if (st != ST_OK && c->username && !renewed && etcd__is_token_error(code, le.msg)) {
            renewed = 1;
            st = etcd__token_renew(c, gen, &le);
            if (st != ST_OK)
                break;
            continue;
        }
        if (st == ST_RETRY && code)
            etcd__endpoint_bad(c, idx); /* e.g. "no leader": let the next call try another */
        break;
    }
    if (st != ST_OK)
        err_set(e, st, "%s", le.msg);
    buf_release(&out);
    free(data);
    return st;
}
