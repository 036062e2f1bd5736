/* agent/ws.c -- the agent's WebSocket client (see ws.h).
 *
 * Everything lws is done on the service thread: connect attempts and pings are lws_sul
 * timers, and the only cross-thread call is agent_ws_stop()'s lws_cancel_service().
 * Messages are JSON text frames shaped like MessagePack-RPC (docs/internals/agent.md).
 */
#include <libwebsockets.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/ws.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/rpcmsg.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define RX_MAX (1 << 20)
#define TICK_US (100 * 1000)

struct txmsg {
    struct txmsg *next;
    size_t len;
    unsigned char *buf; /* LWS_PRE headroom */
    /* agent_ws_call_text(): the request's id and who wants the answer (cb NULL otherwise) */
    int64_t id;
    agent_ws_reply_cb cb;
    void *cbarg;
};

/* A request of ours the master has not answered yet (service thread only). */
struct pcall {
    struct pcall *next;
    int64_t id;
    agent_ws_reply_cb cb;
    void *cbarg;
};

struct agent_ws {
    const struct agent_config *cfg;
    struct lws_context *ctx;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    int stop_req;
    struct txmsg *outq, **outtail; /* agent_ws_send() → service thread */

    /* Service thread only. */
    struct lws *wsi;
    int connected, stopping, exit_loop, fatal;
    int64_t stop_deadline_ms;
    unsigned attempts;
    int close_code;
    char close_reason[128];
    int want_ping, ping_outstanding;
    int64_t last_ping_ms;
    struct txmsg *txq, **txtail;
    struct buf rx;
    int linked;            /* registered: /agent/node_info seen on this connection */
    struct pcall *pending; /* calls sent on this connection, awaiting their answer */
    atomic_llong next_msgid; /* any thread */
    lws_sorted_usec_list_t sul_conn, sul_tick;
};

static void connect_cb(lws_sorted_usec_list_t *sul);

static void fail_call(agent_ws_reply_cb cb, void *arg, const char *why)
{
    json_t *err = rpcmsg_error_obj(503, why);

    cb(arg, err, NULL);
    json_decref(err);
}

static void fail_pending(struct agent_ws *w, const char *why)
{
    struct pcall *p = w->pending, *n;

    w->pending = NULL;
    for (; p; p = n) {
        n = p->next;
        fail_call(p->cb, p->cbarg, why);
        free(p);
    }
}

/* The connection is gone: fail what waits for an answer on it, then say so. */
static void link_down(struct agent_ws *w)
{
    fail_pending(w, "the connection to the master closed");
    if (w->linked) {
        w->linked = 0;
        if (w->cfg->on_link)
            w->cfg->on_link(w->cfg->on_link_arg, 0);
    }
}

static void free_txmsg(struct txmsg *m, const char *why)
{
    if (m->cb)
        fail_call(m->cb, m->cbarg, why);
    free(m->buf);
    free(m);
}

/* msg framed for lws_write(), or NULL when it cannot be dumped. */
static struct txmsg *txmsg_of(const json_t *msg)
{
    size_t len;
    unsigned char *buf = rpcmsg_frame(msg, LWS_PRE, &len);
    struct txmsg *m;

    if (!buf)
        return NULL;
    m = xcalloc(1, sizeof(*m));
    m->len = len;
    m->buf = buf;
    return m;
}

static void queue_json(struct agent_ws *w, json_t *msg)
{
    struct txmsg *m = txmsg_of(msg);

    if (!m)
        return;
    *w->txtail = m;
    w->txtail = &m->next;
    if (w->wsi)
        lws_callback_on_writable(w->wsi);
}

static void free_txq(struct agent_ws *w)
{
    for (struct txmsg *m = w->txq, *n; m; m = n) {
        n = m->next;
        free(m->buf);
        free(m);
    }
    w->txq = NULL;
    w->txtail = &w->txq;
}

/* Full jitter: attempt k waits random(0,1) × min(max, 1 s × 2^k). */
static void schedule_connect(struct agent_ws *w)
{
    int64_t cap = 1000;
    uint32_t r;

    for (unsigned k = 0; k < w->attempts && cap < w->cfg->backoff_max_ms; k++)
        cap *= 2;
    if (cap > w->cfg->backoff_max_ms)
        cap = w->cfg->backoff_max_ms;
    crypto_random_bytes(&r, sizeof(r));
    w->attempts++;
    lws_sul_schedule(w->ctx, 0, &w->sul_conn, connect_cb,
                     (lws_usec_t)((double)r / 4294967296.0 * (double)cap * 1000.0));
}

static void connect_cb(lws_sorted_usec_list_t *sul)
{
    struct agent_ws *w = lws_container_of(sul, struct agent_ws, sul_conn);
    struct lws_client_connect_info i;

    if (w->stopping)
        return;
    memset(&i, 0, sizeof(i));
    i.context = w->ctx;
    i.address = w->cfg->host;
    i.port = w->cfg->port;
    i.path = w->cfg->path;
    i.host = w->cfg->host;
    i.origin = w->cfg->host;
    i.protocol = NULL;
    i.pwsi = &w->wsi;
    if (w->cfg->tls) {
        i.ssl_connection = LCCSCF_USE_SSL;
        if (w->cfg->pin_sha256)
            i.ssl_connection |= LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
        if (w->cfg->insecure)
            i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    log_debug("msg=\"connecting to %s://%s:%d%s\"", w->cfg->tls ? "wss" : "ws", w->cfg->host,
              w->cfg->port, w->cfg->path);
    if (!lws_client_connect_via_info(&i)) {
        w->wsi = NULL;
        schedule_connect(w);
    }
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct agent_ws *w = lws_container_of(sul, struct agent_ws, sul_tick);
    int64_t now = time_mono_ms();

    if (w->stopping && (!w->wsi || now >= w->stop_deadline_ms)) {
        w->exit_loop = 1;
        lws_cancel_service(w->ctx); /* lws_service() would sleep on with no timer left */
        return;
    }
    if (w->wsi && w->connected) {
        if (w->ping_outstanding && now - w->last_ping_ms > w->cfg->ping_timeout_ms) {
            log_warn("msg=\"master did not answer a ping within %d ms: reconnecting\"",
                     w->cfg->ping_timeout_ms);
            w->ping_outstanding = 0;
            lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (!w->ping_outstanding && now - w->last_ping_ms >= w->cfg->ping_interval_ms) {
            w->want_ping = 1;
            lws_callback_on_writable(w->wsi);
        }
    }
    lws_sul_schedule(w->ctx, 0, &w->sul_tick, tick_cb, TICK_US);
}

static void connected_at_now(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, len, "%s.%09ldZ", base, ts.tv_nsec);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    if (!value || !*value)
        return 0;
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* A notification or response from the master. */
static void on_message(struct agent_ws *w, const char *s, size_t len)
{
    json_t *m = json_loadb(s, len, 0, NULL);
    struct rpcmsg r;
    const json_t *params;
    const char *method;

    if (rpcmsg_parse(m, &r) != 0) {
        log_warn("msg=\"unparsable message from the master dropped\"");
        goto out;
    }
    if (r.type == RPCMSG_RESPONSE) {
        for (struct pcall **pp = &w->pending; *pp; pp = &(*pp)->next) {
            struct pcall *p = *pp;
            if (p->id != r.idval)
                continue;
            *pp = p->next;
            p->cb(p->cbarg, r.error, r.result);
            free(p);
            goto out;
        }
        if (r.error) {
            char *t = json_dumps(r.error, JSON_COMPACT);
            log_warn("msg=\"master answered an error: %s\"", t);
            free(t);
        }
        goto out;
    }
    if (r.type == RPCMSG_REQUEST) {
        if (w->cfg->on_request) {
            w->cfg->on_request(w->cfg->on_request_arg, m);
        } else {
            json_t *reply =
                rpcmsg_response(r.id, rpcmsg_error_obj(501, "service not implemented"), NULL);
            if (reply)
                queue_json(w, reply);
            json_decref(reply);
        }
        goto out;
    }
    if (r.type != RPCMSG_NOTIFICATION)
        goto out;
    method = r.method;
    params = r.params;
    if (method && !strcmp(method, "/agent/master_info")) {
        log_info("msg=\"connected to master %s\"",
                 json_string_value(json_object_get(json_array_get(params, 0), "version"))
                     ? json_string_value(json_object_get(json_array_get(params, 0), "version"))
                     : "?");
    } else if (method && !strcmp(method, "/agent/node_info")) {
        json_t *node = json_array_get(params, 0), *req, *up;
        log_info("msg=\"registered as node '%s' number %lld of grid '%s'\"",
                 json_string_value(json_object_get(node, "name"))
                     ? json_string_value(json_object_get(node, "name"))
                     : "?",
                 (long long)json_integer_value(json_object_get(node, "node_number")),
                 json_string_value(json_object_get(json_object_get(node, "grid"), "name"))
                     ? json_string_value(json_object_get(json_object_get(node, "grid"), "name"))
                     : "?");
        if (w->cfg->on_node_info && json_is_object(node))
            w->cfg->on_node_info(w->cfg->on_node_info_arg, node);
        up = json_pack("[s, O]", w->cfg->node_id, w->cfg->node_info);
        req = rpcmsg_request((json_int_t)(atomic_fetch_add(&w->next_msgid, 1) + 1),
                             "/nodes/update", up);
        if (req)
            queue_json(w, req);
        json_decref(req);
        json_decref(up);
        if (!w->linked) {
            w->linked = 1;
            if (w->cfg->on_link)
                w->cfg->on_link(w->cfg->on_link_arg, 1);
        }
    }
out:
    json_decref(m);
}

static const char *fatal_text(int code)
{
    switch (code) {
    case 4001:
        return "invalid grid token";
    case 4010:
        return "agent version is not compatible with the master";
    case 4040:
        return "node was removed from the grid";
    case 4041:
        return "another agent connected as this node";
    default:
        return NULL;
    }
}

static int verify_pin(struct agent_ws *w, X509_STORE_CTX *xs)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    static const char digits[] = "0123456789abcdef";

    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 0;
    if (!X509_digest(X509_STORE_CTX_get_current_cert(xs), EVP_sha256(), md, &n))
        return 1;
    for (unsigned k = 0; k < n; k++) {
        hex[2 * k] = digits[md[k] >> 4];
        hex[2 * k + 1] = digits[md[k] & 15];
    }
    hex[2 * n] = '\0';
    if (strcmp(hex, w->cfg->pin_sha256) != 0) {
        log_error("msg=\"master certificate sha256 %s does not match the pinned %s\"", hex,
                  w->cfg->pin_sha256);
        return 1;
    }
    X509_STORE_CTX_set_error(xs, X509_V_OK);
    return 0;
}

/* The chain failed OpenSSL's check (the pin is not used): one clear line per attempt. */
static void untrusted(const struct agent_ws *w, X509_STORE_CTX *xs)
{
    int err = X509_STORE_CTX_get_error(xs);

    if (err == X509_V_OK)
        return;
    if (w->cfg->ca_file)
        log_error("msg=\"the master's certificate is not trusted by --ca-cert %s: %s\"",
                  w->cfg->ca_file, X509_verify_cert_error_string(err));
    else
        log_error("msg=\"the master's certificate is not trusted by the system's CAs: %s (use "
                  "--ca-cert or --pin-sha256)\"",
                  X509_verify_cert_error_string(err));
}

static void end_for_good(struct agent_ws *w)
{
    w->stopping = 1;
    w->stop_deadline_ms = time_mono_ms();
    kill(getpid(), SIGUSR1); /* wakes main's sigwait() */
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct agent_ws *w = ctx ? lws_context_user(ctx) : NULL;

    (void)user;
    if (!w)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        if (w->cfg->pin_sha256)
            return verify_pin(w, user);
        if (!len && user) /* OpenSSL's verdict was no: say why, and what to check */
            untrusted(w, user);
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        char at[64];
        connected_at_now(at, sizeof(at));
        if (add_header(wsi, "Kontena-Grid-Token:", w->cfg->grid_token, p, end) ||
            add_header(wsi, "Kontena-Node-Id:", w->cfg->node_id, p, end) ||
            add_header(wsi, "Kontena-Node-Name:", w->cfg->node_name, p, end) ||
            add_header(wsi, "Kontena-Version:", KONTENA_VERSION, p, end) ||
            add_header(wsi, "Kontena-Node-Labels:", w->cfg->labels, p, end) ||
            add_header(wsi, "Kontena-Connected-At:", at, p, end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        w->attempts = 0;
        w->connected = 1;
        w->close_code = 0;
        w->close_reason[0] = '\0';
        w->ping_outstanding = 0;
        w->last_ping_ms = time_mono_ms();
        buf_reset(&w->rx);
        log_info("msg=\"connected to %s://%s:%d%s\"", w->cfg->tls ? "wss" : "ws", w->cfg->host,
                 w->cfg->port, w->cfg->path);
        if (w->stopping)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (buf_append(&w->rx, in, len) != ST_OK) {
            log_warn("msg=\"message from the master over 1 MiB: reconnecting\"");
            return -1;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_message(w, w->rx.ptr ? w->rx.ptr : "", w->rx.len);
            buf_reset(&w->rx);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        w->ping_outstanding = 0;
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            size_t n =
                len - 2 < sizeof(w->close_reason) - 1 ? len - 2 : sizeof(w->close_reason) - 1;
            w->close_code = (b[0] << 8) | b[1];
            memcpy(w->close_reason, b + 2, n);
            w->close_reason[n] = '\0';
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (w->stopping) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"agent stopping",
                             14);
            return -1;
        }
        if (w->want_ping) {
            unsigned char ping[LWS_PRE + 4] = {0};
            w->want_ping = 0;
            w->ping_outstanding = 1;
            w->last_ping_ms = time_mono_ms();
            if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
                return -1;
        } else if (w->txq) {
            struct txmsg *m = w->txq;
            int n;
            w->txq = m->next;
            if (!w->txq)
                w->txtail = &w->txq;
            n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
            free(m->buf);
            free(m);
            if (n < 0)
                return -1;
        }
        if (w->txq || w->want_ping)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        log_warn("msg=\"cannot connect to %s:%d: %s\"", w->cfg->host, w->cfg->port,
                 in ? (const char *)in : "connection failed");
        w->wsi = NULL;
        w->connected = 0;
        free_txq(w);
        link_down(w);
        if (!w->stopping)
            schedule_connect(w);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED: {
        const char *fatal = fatal_text(w->close_code);
        w->wsi = NULL;
        w->connected = 0;
        free_txq(w);
        link_down(w);
        if (w->stopping)
            return 0;
        if (fatal) {
            log_error("msg=\"master closed the connection with %d: %s (%s): not reconnecting\"",
                      w->close_code, fatal, w->close_reason);
            w->fatal = 1;
            end_for_good(w);
            return 0;
        }
        log_warn("msg=\"connection closed%s%s%s: reconnecting\"",
                 w->close_code ? " by the master: " : "", w->close_reason, w->close_code ? "" : "");
        schedule_connect(w);
        return 0;
    }
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        int stop;
        struct txmsg *q;
        pthread_mutex_lock(&w->mu);
        stop = w->stop_req;
        q = w->outq;
        w->outq = NULL;
        w->outtail = &w->outq;
        pthread_mutex_unlock(&w->mu);
        for (struct txmsg *n; q; q = n) {
            n = q->next;
            q->next = NULL;
            if (w->wsi && w->connected && !w->stopping && (!q->cb || w->linked)) {
                if (q->cb) {
                    struct pcall *p = xcalloc(1, sizeof(*p));
                    p->id = q->id;
                    p->cb = q->cb;
                    p->cbarg = q->cbarg;
                    p->next = w->pending;
                    w->pending = p;
                    q->cb = NULL; /* answered through the pending list from now on */
                }
                *w->txtail = q;
                w->txtail = &q->next;
                lws_callback_on_writable(w->wsi);
            } else {
                free_txmsg(q, "not connected to the master");
            }
        }
        if (stop && !w->stopping) {
            w->stopping = 1;
            w->stop_deadline_ms = time_mono_ms() + 2000;
            lws_sul_cancel(&w->sul_conn);
            if (w->wsi)
                lws_callback_on_writable(w->wsi);
        }
        return 0;
    }
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"kontena-agent", client_cb, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *ws_main(void *arg)
{
    struct agent_ws *w = arg;

    lws_sul_schedule(w->ctx, 0, &w->sul_tick, tick_cb, TICK_US);
    lws_sul_schedule(w->ctx, 0, &w->sul_conn, connect_cb, 1);
    while (!w->exit_loop)
        if (lws_service(w->ctx, 0) < 0)
            break;
    return NULL;
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        log_warn("msg=\"lws: %.*s\"", (int)n, line);
    else
        log_debug("msg=\"lws: %.*s\"", (int)n, line);
}

enum status agent_ws_start(const struct agent_config *cfg, struct agent_ws **out, struct err *e)
{
    struct lws_context_creation_info info;
    struct agent_ws *w = xcalloc(1, sizeof(*w));

    *out = NULL;
    w->cfg = cfg;
    w->txtail = &w->txq;
    w->outtail = &w->outq;
    buf_init(&w->rx, RX_MAX);
    pthread_mutex_init(&w->mu, NULL);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = w;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (cfg->ca_file)
        info.client_ssl_ca_filepath = cfg->ca_file;
    if (cfg->pin_sha256 || cfg->ca_file)
        info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        pthread_mutex_destroy(&w->mu);
        buf_release(&w->rx);
        free(w);
        return err_set(e, ST_IO, "cannot set up the WebSocket client (TLS setup failed%s%s)",
                       cfg->ca_file ? ": check --ca-cert " : "", cfg->ca_file ? cfg->ca_file : "");
    }
    if (pthread_create(&w->thread, NULL, ws_main, w) != 0) {
        lws_context_destroy(w->ctx);
        pthread_mutex_destroy(&w->mu);
        buf_release(&w->rx);
        free(w);
        return err_set(e, ST_IO, "cannot start the WebSocket thread");
    }
    w->started = 1;
    *out = w;
    return ST_OK;
}

int agent_ws_stop(struct agent_ws *w)
{
    int rc;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    w->stop_req = 1;
    pthread_mutex_unlock(&w->mu);
    lws_cancel_service(w->ctx);
    if (w->started)
        pthread_join(w->thread, NULL);
    rc = w->fatal ? 1 : 0;
    lws_context_destroy(w->ctx);
    free_txq(w);
    fail_pending(w, "the agent is stopping");
    for (struct txmsg *m = w->outq, *n; m; m = n) {
        n = m->next;
        free_txmsg(m, "the agent is stopping");
    }
    buf_release(&w->rx);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return rc;
}

void agent_ws_send(struct agent_ws *w, const json_t *msg)
{
    struct txmsg *m = txmsg_of(msg);

    if (!m)
        return;
    pthread_mutex_lock(&w->mu);
    *w->outtail = m;
    w->outtail = &m->next;
    pthread_mutex_unlock(&w->mu);
    lws_cancel_service(w->ctx);
}

void agent_ws_call_text(struct agent_ws *w, const char *method, const char *params, size_t len,
                        agent_ws_reply_cb cb, void *arg)
{
    struct txmsg *m = xcalloc(1, sizeof(*m));

    m->id = atomic_fetch_add(&w->next_msgid, 1) + 1;
    m->cb = cb;
    m->cbarg = arg;
    m->buf = rpcmsg_frame_request_text(m->id, method, params, len, LWS_PRE, &m->len);
    pthread_mutex_lock(&w->mu);
    *w->outtail = m;
    w->outtail = &m->next;
    pthread_mutex_unlock(&w->mu);
    lws_cancel_service(w->ctx);
}
