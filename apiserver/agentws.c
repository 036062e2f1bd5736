/* apiserver/agentws.c -- the agents' WebSocket endpoint: sockets on a libwebsockets service
 * thread, etcd work on a worker thread, the liveness lease on a keep-alive thread.
 *
 * The service thread never calls etcd and the worker never calls lws: they meet in two
 * mutex-protected queues. The service thread posts events (open with the handshake headers,
 * message, pong, closed) to the worker; the worker posts commands (send a text frame, close
 * with a code) back and wakes the service thread with lws_cancel_service(), the only lws call
 * that is safe off its thread. Sessions are named by a 64-bit id on both sides, never by a
 * `struct lws *`, because a socket may be gone by the time a command arrives.
 *
 * Messages are JSON text frames shaped like the original's MessagePack-RPC arrays:
 * request [0, id, "/method", [params]], response [1, id, error, result], notification
 * [2, "/method", [params]] (docs/internals/agent.md).
 */
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/logbatch.h"
#include "apiserver/logfwd.h"
#include "apiserver/logstore.h"
#include "apiserver/store.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/rpcmsg.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define RX_MAX (1 << 20) /* one message from an agent, reassembled */
#define HDR_MAX 4096
#define TICK_US (100 * 1000)
#define ALLOC_ATTEMPTS 64
#define LOG_BATCH_MAX 10000 /* items in one /containers/log_batch */

/* --- queues between the threads ------------------------------------------------------------ */

enum ev_kind { EV_OPEN, EV_MESSAGE, EV_PONG, EV_CLOSED, EV_LEASE };

/* Service (or keep-alive) thread → worker. */
struct ev {
    struct ev *next;
    enum ev_kind kind;
    uint64_t sid;
    /* EV_OPEN: handshake headers (any may be NULL) and the peer address. */
    char *grid_token, *node_token, *node_id, *node_name, *labels, *version, *connected_at;
    char peer[64];
    /* EV_MESSAGE */
    char *msg;
    size_t len;
    /* EV_LEASE */
    int64_t lease;
};

/* Worker → service thread. */
struct cmd {
    struct cmd *next;
    uint64_t sid;
    int close_code; /* 0: send text */
    char reason[100];
    size_t len;
    unsigned char *buf; /* LWS_PRE bytes of headroom, then len bytes */
};

/* Per-socket data, owned by the service thread (lws allocates it). */
struct pss {
    uint64_t sid; /* 0 until ESTABLISHED */
    struct lws *wsi;
    struct pss *next;
    struct cmd *txq, **txtail;
    int close_code;
    char close_reason[100];
    int want_ping, ping_outstanding;
    int64_t last_ping_ms;
    struct buf rx;
};

/* An RPC to an agent made by agentws_call(), waiting for its response (under mu). */
struct rpc_call {
    struct rpc_call *next;
    json_int_t id;
    uint64_t sid;
    int done;
    json_t *error, *result;
};

/* Which session serves a connected node (under mu): written by the worker, read by
 * agentws_call() on the API's threads. */
struct live_node {
    struct live_node *next;
    char *grid, *name;
    uint64_t sid;
};

/* A registered node session, owned by the worker thread. */
struct wsess {
    struct wsess *next;
    uint64_t sid;
    char *grid, *name, *node_id, *connected_at, *status_key;
    int64_t status_rev; /* mod_revision of our status key, 0 if not written */
    /* The node's liveness is no longer ours (a newer connection, or the node was removed):
     * never write or delete its status key again. Kept apart from status_rev, which is
     * also 0 after a failed write: such a session must keep retrying at its pongs. */
    int released;
    int64_t last_check_ms;
    json_t *stat_names; /* container names of the session's last /containers/stats */
    /* A log batch of this session could not be stored: the session is being closed and
     * every later message of it is dropped, so no later batch is stored past the lost one
     * (the agent reconnects and resumes from the cursors). */
    int store_failed;
};

struct agentws {
    struct api *api;
    struct agentws_config cfg;
    struct lws_context *ctx;
    char server_id[17];

    pthread_t lws_thread, worker_thread, ka_thread;
    int lws_started, worker_started, ka_started;

    pthread_mutex_t mu; /* guards everything below until the next comment */
    pthread_cond_t cond;
    struct ev *evq, **evtail;
    struct cmd *cmdq, **cmdtail;
    int stop;         /* service thread: close every socket and return */
    int stop_threads; /* worker (after draining its queue) and keep-alive: return */
    int64_t lease;
    pthread_cond_t rpc_cond; /* a call completed */
    struct rpc_call *calls;
    json_int_t next_call_id;
    struct live_node *live;

    /* Service thread only. */
    struct pss *sessions;
    uint64_t next_sid;
    int stopping, exit_loop;
    int64_t stop_deadline_ms;
    lws_sorted_usec_list_t tick;

    /* Worker only. */
    struct wsess *wsessions;
};

static void ev_free(struct ev *v)
{
    if (!v)
        return;
    free(v->grid_token);
    free(v->node_token);
    free(v->node_id);
    free(v->node_name);
    free(v->labels);
    free(v->version);
    free(v->connected_at);
    free(v->msg);
    free(v);
}

static void post_ev(struct agentws *w, struct ev *v)
{
    pthread_mutex_lock(&w->mu);
    *w->evtail = v;
    w->evtail = &v->next;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void post_cmd(struct agentws *w, struct cmd *c)
{
    pthread_mutex_lock(&w->mu);
    *w->cmdtail = c;
    w->cmdtail = &c->next;
    pthread_mutex_unlock(&w->mu);
    lws_cancel_service(w->ctx);
}

static void send_text(struct agentws *w, uint64_t sid, const json_t *msg)
{
    size_t len;
    unsigned char *buf = rpcmsg_frame(msg, LWS_PRE, &len);
    struct cmd *c;

    if (!buf)
        return;
    c = xcalloc(1, sizeof(*c));
    c->sid = sid;
    c->len = len;
    c->buf = buf;
    post_cmd(w, c);
}

/* /agent/master_info, the first message of every session (and of a rejected one). */
static void send_master_info(struct agentws *w, uint64_t sid)
{
    json_t *params = json_pack("[{s:s}]", "version", KONTENA_VERSION);
    json_t *mi = rpcmsg_notification("/agent/master_info", params);

    send_text(w, sid, mi);
    json_decref(mi);
    json_decref(params);
}

static void send_close(struct agentws *w, uint64_t sid, int code, const char *reason)
{
    struct cmd *c = xcalloc(1, sizeof(*c));

    c->sid = sid;
    c->close_code = code;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    post_cmd(w, c);
}

/* --- service thread ------------------------------------------------------------------------- */

static struct pss *find_pss(struct agentws *w, uint64_t sid)
{
    for (struct pss *p = w->sessions; p; p = p->next)
        if (p->sid == sid)
            return p;
    return NULL;
}

static void unlink_pss(struct agentws *w, struct pss *p)
{
    for (struct pss **pp = &w->sessions; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static void mark_closing(struct pss *p, int code, const char *reason)
{
    if (p->close_code)
        return;
    p->close_code = code;
    snprintf(p->close_reason, sizeof(p->close_reason), "%s", reason);
    lws_callback_on_writable(p->wsi);
}

static char *hdr_custom(struct lws *wsi, const char *name)
{
    int nlen = (int)strlen(name), n = lws_hdr_custom_length(wsi, name, nlen);
    char *s;

    if (n < 0 || n > HDR_MAX)
        return NULL;
    s = xmalloc((size_t)n + 1);
    if (lws_hdr_custom_copy(wsi, s, n + 1, name, nlen) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct agentws *w = lws_container_of(sul, struct agentws, tick);
    int64_t now = time_mono_ms();

    if (w->stopping && (!w->sessions || now >= w->stop_deadline_ms)) {
        w->exit_loop = 1;
        lws_cancel_service(w->ctx); /* lws_service() would sleep on with no timer left */
        return;
    }
    for (struct pss *p = w->sessions; p; p = p->next) {
        if (p->close_code)
            continue;
        if (p->ping_outstanding && now - p->last_ping_ms > w->cfg.ping_timeout_ms) {
            log_info("msg=\"agent session %llu: ping timeout\"", (unsigned long long)p->sid);
            /* No close handshake: a peer that does not answer pings would not answer
             * that either, and its node must go offline now, not after the close timeout. */
            p->close_code = 4030;
            lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (!p->ping_outstanding && now - p->last_ping_ms >= w->cfg.ping_interval_ms) {
            p->want_ping = 1;
            lws_callback_on_writable(p->wsi);
        }
    }
    lws_sul_schedule(w->ctx, 0, &w->tick, tick_cb, TICK_US);
}

static void drain_cmds(struct agentws *w)
{
    struct cmd *q, *next;
    int stop;

    pthread_mutex_lock(&w->mu);
    q = w->cmdq;
    w->cmdq = NULL;
    w->cmdtail = &w->cmdq;
    stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    for (; q; q = next) {
        struct pss *p = find_pss(w, q->sid);
        next = q->next;
        q->next = NULL;
        if (!p || p->close_code) {
            free(q->buf);
            free(q);
        } else if (q->close_code) {
            mark_closing(p, q->close_code, q->reason);
            free(q);
        } else {
            *p->txtail = q;
            p->txtail = &q->next;
            lws_callback_on_writable(p->wsi);
        }
    }
    if (stop && !w->stopping) {
        w->stopping = 1;
        w->stop_deadline_ms = time_mono_ms() + 2000;
        for (struct pss *p = w->sessions; p; p = p->next)
            mark_closing(p, LWS_CLOSE_STATUS_GOINGAWAY, "master shutting down");
    }
}

static void free_txq(struct pss *p)
{
    for (struct cmd *c = p->txq, *n; c; c = n) {
        n = c->next;
        free(c->buf);
        free(c);
    }
    p->txq = NULL;
    p->txtail = &p->txq;
}

static int on_established(struct agentws *w, struct pss *p, struct lws *wsi)
{
    struct ev *v = xcalloc(1, sizeof(*v));

    memset(p, 0, sizeof(*p));
    p->sid = ++w->next_sid;
    p->wsi = wsi;
    p->txtail = &p->txq;
    p->last_ping_ms = time_mono_ms();
    buf_init(&p->rx, RX_MAX);
    p->next = w->sessions;
    w->sessions = p;
    v->kind = EV_OPEN;
    v->sid = p->sid;
    v->grid_token = hdr_custom(wsi, "kontena-grid-token:");
    v->node_token = hdr_custom(wsi, "kontena-node-token:");
    v->node_id = hdr_custom(wsi, "kontena-node-id:");
    v->node_name = hdr_custom(wsi, "kontena-node-name:");
    v->labels = hdr_custom(wsi, "kontena-node-labels:");
    v->version = hdr_custom(wsi, "kontena-version:");
    v->connected_at = hdr_custom(wsi, "kontena-connected-at:");
    lws_get_peer_simple(wsi, v->peer, sizeof(v->peer));
    if (w->stopping)
        mark_closing(p, LWS_CLOSE_STATUS_GOINGAWAY, "master shutting down");
    post_ev(w, v);
    return 0;
}

static int on_receive(struct agentws *w, struct pss *p, struct lws *wsi, const void *in, size_t len)
{
    struct ev *v;

    if (lws_frame_is_binary(wsi)) {
        mark_closing(p, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary frames are not supported");
        return 0;
    }
    if (buf_append(&p->rx, in, len) != ST_OK) {
        mark_closing(p, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message over 1 MiB");
        return 0;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    v = xcalloc(1, sizeof(*v));
    v->kind = EV_MESSAGE;
    v->sid = p->sid;
    v->len = p->rx.len;
    v->msg = buf_take(&p->rx);
    if (!v->msg)
        v->msg = xstrdup("");
    buf_init(&p->rx, RX_MAX);
    post_ev(w, v);
    return 0;
}

static int on_writeable(struct pss *p, struct lws *wsi)
{
    struct cmd *c;
    int n;

    if (p->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)p->close_code,
                         (unsigned char *)p->close_reason, strlen(p->close_reason));
        return -1;
    }
    if (p->want_ping) {
        unsigned char ping[LWS_PRE + 4] = {0};
        p->want_ping = 0;
        p->ping_outstanding = 1;
        p->last_ping_ms = time_mono_ms();
        if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
    } else if ((c = p->txq) != NULL) {
        p->txq = c->next;
        if (!p->txq)
            p->txtail = &p->txq;
        n = lws_write(wsi, c->buf + LWS_PRE, c->len, LWS_WRITE_TEXT);
        free(c->buf);
        free(c);
        if (n < 0)
            return -1;
    }
    if (p->txq || p->want_ping)
        lws_callback_on_writable(wsi);
    return 0;
}

static int agent_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct agentws *w = ctx ? lws_context_user(ctx) : NULL;
    struct pss *p = user;
    char uri[64];

    if (!w)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* The agents' endpoint is "/" only. */
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, "/") != 0)
            return 1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(w, p, wsi);
    case LWS_CALLBACK_RECEIVE:
        return p->sid ? on_receive(w, p, wsi, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (p->sid && p->ping_outstanding) {
            struct ev *v = xcalloc(1, sizeof(*v));
            int64_t rtt = time_mono_ms() - p->last_ping_ms;
            if (rtt > w->cfg.ping_timeout_ms / 2)
                log_warn("msg=\"agent session %llu: slow pong (%lld ms)\"",
                         (unsigned long long)p->sid, (long long)rtt);
            p->ping_outstanding = 0;
            v->kind = EV_PONG;
            v->sid = p->sid;
            post_ev(w, v);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return p->sid ? on_writeable(p, wsi) : 0;
    case LWS_CALLBACK_CLOSED:
        if (p->sid) {
            struct ev *v = xcalloc(1, sizeof(*v));
            v->kind = EV_CLOSED;
            v->sid = p->sid;
            post_ev(w, v);
            unlink_pss(w, p);
            free_txq(p);
            buf_release(&p->rx);
            p->sid = 0;
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_cmds(w);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"kontena-agent", agent_cb, sizeof(struct pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *lws_main(void *arg)
{
    struct agentws *w = arg;

    lws_sul_schedule(w->ctx, 0, &w->tick, tick_cb, TICK_US);
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

/* --- worker: etcd ----------------------------------------------------------------------------- */

static struct wsess *find_wsess(struct agentws *w, uint64_t sid)
{
    for (struct wsess *s = w->wsessions; s; s = s->next)
        if (s->sid == sid)
            return s;
    return NULL;
}

static void wsess_free(struct wsess *s)
{
    if (!s)
        return;
    free(s->grid);
    free(s->name);
    free(s->node_id);
    free(s->connected_at);
    free(s->status_key);
    json_decref(s->stat_names);
    free(s);
}

static int64_t current_lease(struct agentws *w)
{
    int64_t l;
    pthread_mutex_lock(&w->mu);
    l = w->lease;
    pthread_mutex_unlock(&w->mu);
    return l;
}

/* The grid whose token is `token`, or NULL. */
static json_t *grid_by_token(struct agentws *w, const char *token, struct err *e, enum status *st)
{
    json_t *grids = NULL, *g, *found = NULL;
    size_t i;

    *st = store_list(w->api->etcd, KEY_GRIDS, 1, &grids, e);
    if (*st != ST_OK)
        return NULL;
    json_array_foreach(grids, i, g)
    {
        const char *t = json_string_value(json_object_get(g, "token"));
        if (t && *t && crypto_streq(t, token)) {
            found = json_incref(g);
            break;
        }
    }
    json_decref(grids);
    return found;
}

/* "a,b c" → ["a","b","c"]: labels are split on commas and whitespace. */
static json_t *split_labels(const char *s)
{
    json_t *arr = json_array();
    const char *p = s;

    while (p && *p) {
        size_t n;
        p += strspn(p, ", \t");
        n = strcspn(p, ", \t");
        if (n && n <= 255)
            json_array_append_new(arr, json_stringn(p, n));
        p += n;
    }
    return arr;
}

static int version_compatible(const char *agent)
{
    /* Same major.minor as the master, any patch (agent-protocol.md §1.4). */
    const char *m = KONTENA_VERSION, *d1 = strchr(m, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    size_t n = d2 ? (size_t)(d2 - m) : strlen(m);

    return agent && strncmp(agent, m, n) == 0 && (agent[n] == '.' || agent[n] == '\0');
}

static int lowest_free_number(struct agentws *w, const char *grid, struct err *e, enum status *st)
{
    char *prefix = xasprintf(KEY_IPAM "%s/node_numbers/", grid);
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .keys_only = 1};
    struct etcd_range_result res = {0};
    unsigned char used[NODE_NUMBER_MAX + 1] = {0};
    int n = -1;

    *st = etcd_range(w->api->etcd, prefix, &o, &res, e);
    if (*st == ST_OK) {
        for (size_t i = 0; i < res.n; i++) {
            long v = strtol(res.kvs[i].key + strlen(prefix), NULL, 10);
            if (v >= 1 && v <= NODE_NUMBER_MAX)
                used[v] = 1;
        }
        for (int k = 1; k <= NODE_NUMBER_MAX && n == -1; k++)
            if (!used[k])
                n = k;
        if (n == -1)
            *st = err_set(e, ST_INVALID, "grid '%s' is full: %d nodes", grid, NODE_NUMBER_MAX);
    }
    etcd_range_result_release(&res);
    free(prefix);
    return n;
}

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

/* Create the node, or update the existing one for this connection. */
static enum status register_node(struct agentws *w, const struct ev *v, const char *grid,
                                 json_t **node_out, struct err *e)
{
    struct etcd *c = w->api->etcd;
    char *key = key_node(grid, v->node_name), now[40];
    enum status st = ST_CONFLICT;

    time_iso8601_now(now, sizeof(now));
    *node_out = NULL;
    for (int attempt = 0; attempt < ALLOC_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        json_t *node = NULL;
        int64_t rev = 0;

        st = store_get(c, key, &node, &rev, e);
        if (st == ST_OK) {
            const char *have = json_string_value(json_object_get(node, "node_id"));
            if (have && strcmp(have, v->node_id) != 0) {
                json_decref(node);
                st = err_set(e, ST_DENIED, "node name '%s' belongs to another node id",
                             v->node_name);
                break;
            }
            set_str(node, "connected_at", now);
            set_str(node, "last_seen_at", now);
            set_str(node, "agent_version", v->version);
            set_str(node, "updated_at", now);
            if (!json_is_string(json_object_get(node, "public_ip")) && v->peer[0])
                set_str(node, "public_ip", v->peer);
            st = store_put_if(c, key, node, rev, e);
        } else if (st == ST_NOTFOUND) {
            int num = lowest_free_number(w, grid, e, &st);
            char *numkey, *val, *numval;
            struct etcd_txn *t;
            struct etcd_txn_result res = {0};

            if (num == -1)
                break;
            node = json_object();
            json_object_set_new(node, "id", json_sprintf("%s/%s", grid, v->node_name));
            set_str(node, "grid", grid);
            set_str(node, "node_id", v->node_id);
            set_str(node, "name", v->node_name);
            json_object_set_new(node, "node_number", json_integer(num));
            json_object_set_new(node, "labels", split_labels(v->labels));
            set_str(node, "public_ip", v->peer[0] ? v->peer : NULL);
            set_str(node, "private_ip", NULL);
            set_str(node, "agent_version", v->version);
            set_str(node, "docker_version", NULL);
            json_object_set_new(node, "cpus", json_null());
            json_object_set_new(node, "mem_total", json_null());
            set_str(node, "os", NULL);
            set_str(node, "kernel_version", NULL);
            set_str(node, "availability", "active");
            set_str(node, "connected_at", now);
            set_str(node, "disconnected_at", NULL);
            set_str(node, "last_seen_at", now);
            set_str(node, "created_at", now);
            set_str(node, "updated_at", now);
            numkey = key_node_number(grid, num);
            val = store_dump(node);
            {
                json_t *nv = json_pack("{s:s}", "node", v->node_name);
                numval = store_dump(nv);
                json_decref(nv);
            }
            t = etcd_txn_new();
            etcd_txn_cmp(t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
            etcd_txn_cmp(t, numkey, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
            etcd_txn_put(t, ETCD_THEN, key, val, strlen(val), 0);
            etcd_txn_put(t, ETCD_THEN, numkey, numval, strlen(numval), 0);
            st = etcd_txn_commit(c, t, &res, e);
            if (st == ST_OK && !res.succeeded)
                st = ST_CONFLICT; /* another agent took the number (or the name): again */
            etcd_txn_result_release(&res);
            etcd_txn_free(t);
            free(numval);
            free(val);
            free(numkey);
        }
        if (st == ST_OK)
            *node_out = node;
        else
            json_decref(node);
    }
    if (st == ST_CONFLICT)
        err_set(e, ST_CONFLICT, "cannot register node '%s': too many concurrent changes",
                v->node_name);
    free(key);
    return st;
}

static enum status put_status(struct agentws *w, struct wsess *s, struct err *e)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "node", s->name, "node_id", s->node_id,
                          "connected_at", s->connected_at, "session", "");
    char sess[64], *val;
    enum status st;

    snprintf(sess, sizeof(sess), "%s-%llu", w->server_id, (unsigned long long)s->sid);
    json_object_set_new(o, "session", json_string(sess));
    val = store_dump(o);
    st = etcd_put(w->api->etcd, s->status_key, val, strlen(val), current_lease(w), NULL,
                  &s->status_rev, e);
    free(val);
    json_decref(o);
    return st;
}

static json_t *node_info_msg(const json_t *node, const json_t *grid)
{
    json_t *n = json_deep_copy(node), *g = json_object();

    json_object_set(g, "id", json_object_get(grid, "name"));
    json_object_set(g, "name", json_object_get(grid, "name"));
    json_object_set(g, "initial_size", json_object_get(grid, "initial_size"));
    json_object_set(g, "subnet", json_object_get(grid, "subnet"));
    json_object_set(g, "supernet", json_object_get(grid, "supernet"));
    json_object_set(g, "trusted_subnets", json_object_get(grid, "trusted_subnets"));
    json_object_set_new(n, "grid", g);
    json_t *params = json_pack("[o]", n), *msg = rpcmsg_notification("/agent/node_info", params);

    json_decref(params);
    return msg;
}

/* --- RPC to agents ----------------------------------------------------------------------------- */

static void live_set(struct agentws *w, const char *grid, const char *name, uint64_t sid)
{
    struct live_node *l;

    pthread_mutex_lock(&w->mu);
    for (l = w->live; l; l = l->next)
        if (!strcmp(l->grid, grid) && !strcmp(l->name, name))
            break;
    if (!l) {
        l = xcalloc(1, sizeof(*l));
        l->grid = xstrdup(grid);
        l->name = xstrdup(name);
        l->next = w->live;
        w->live = l;
    }
    l->sid = sid;
    pthread_mutex_unlock(&w->mu);
}

/* The session sid is gone: forget it as a node's socket and fail the calls waiting on it. */
static void live_drop(struct agentws *w, uint64_t sid)
{
    pthread_mutex_lock(&w->mu);
    for (struct live_node **pp = &w->live; *pp;) {
        struct live_node *l = *pp;
        if (l->sid == sid) {
            *pp = l->next;
            free(l->grid);
            free(l->name);
            free(l);
        } else {
            pp = &l->next;
        }
    }
    for (struct rpc_call *c = w->calls; c; c = c->next)
        if (c->sid == sid && !c->done) {
            c->done = 1;
            c->error = rpcmsg_error_obj(503, "the node disconnected before it answered");
        }
    pthread_cond_broadcast(&w->rpc_cond);
    pthread_mutex_unlock(&w->mu);
}

/* A response [1, id, error, result] from session sid. */
static void rpc_complete(struct agentws *w, uint64_t sid, const struct rpcmsg *r)
{
    pthread_mutex_lock(&w->mu);
    for (struct rpc_call *c = w->calls; c; c = c->next)
        if (c->id == r->idval && c->sid == sid && !c->done) {
            c->done = 1;
            if (r->error)
                c->error = json_incref(r->error);
            else
                c->result = r->result ? json_incref(r->result) : json_null();
            pthread_cond_broadcast(&w->rpc_cond);
            break;
        }
    pthread_mutex_unlock(&w->mu);
}

static enum status status_of_code(json_int_t code)
{
    switch (code) {
    case 400:
    case 413:
    case 422:
        return ST_INVALID;
    case 404:
        return ST_NOTFOUND;
    case 409:
        return ST_CONFLICT;
    case 503:
        return ST_RETRY;
    default:
        return ST_IO;
    }
}

size_t agentws_connected(struct agentws *w)
{
    size_t n = 0;

    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    for (struct live_node *l = w->live; l; l = l->next)
        n++;
    pthread_mutex_unlock(&w->mu);
    return n;
}

enum status agentws_call(struct agentws *w, const char *grid, const char *node,
                         const char *method, const json_t *params, int timeout_ms,
                         json_t **result, struct err *e)
{
    struct rpc_call *c = NULL;
    struct timespec ts;
    uint64_t sid = 0;
    enum status st;
    json_t *msg;

    *result = NULL;
    if (w) {
        pthread_mutex_lock(&w->mu);
        for (struct live_node *l = w->live; l; l = l->next)
            if (!strcmp(l->grid, grid) && !strcmp(l->name, node))
                sid = l->sid;
        if (sid) {
            c = xcalloc(1, sizeof(*c));
            c->id = ++w->next_call_id;
            c->sid = sid;
            c->next = w->calls;
            w->calls = c;
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (!c)
        return err_set(e, ST_NOTFOUND, "Node %s is not connected", node);
    msg = rpcmsg_request(c->id, method, params);
    send_text(w, sid, msg);
    json_decref(msg);

    ts = time_deadline(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (!c->done && pthread_cond_timedwait(&w->rpc_cond, &w->mu, &ts) == 0)
        ;
    for (struct rpc_call **pp = &w->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    pthread_mutex_unlock(&w->mu);
    if (!c->done) {
        st = err_set(e, ST_RETRY, "Connection timeout (%ds)", timeout_ms / 1000);
    } else if (c->error) {
        const char *m = json_string_value(json_object_get(c->error, "message"));
        if (!m)
            m = json_string_value(json_object_get(c->error, "error"));
        st = err_set(e, status_of_code(json_integer_value(json_object_get(c->error, "code"))),
                     "%s", m ? m : "the agent answered an error");
    } else {
        *result = c->result;
        c->result = NULL;
        st = ST_OK;
    }
    json_decref(c->error);
    json_decref(c->result);
    free(c);
    return st;
}

static void on_open(struct agentws *w, struct ev *v)
{
    struct err e = ERR_INIT;
    enum status st;
    json_t *grid = NULL, *node = NULL;
    struct wsess *s;
    const char *gname;
    const char *who = v->node_name ? v->node_name : "?";

    if (!v->node_id || !*v->node_id || !v->node_name || !*v->node_name) {
        log_warn("msg=\"rejected agent from %s: missing Kontena-Node-Id or Kontena-Node-Name\"",
                 v->peer);
        send_close(w, v->sid, 4000, "missing Kontena-Node-Id or Kontena-Node-Name");
        return;
    }
    if (!node_name_valid(v->node_name) || strlen(v->node_id) > 128) {
        log_warn("msg=\"rejected agent from %s: invalid node name or id\"", v->peer);
        send_close(w, v->sid, 4000, "invalid Kontena-Node-Name or Kontena-Node-Id");
        return;
    }
    if (!version_compatible(v->version)) {
        log_warn("msg=\"rejected agent '%s' from %s: version '%s' is not compatible with %s\"", who,
                 v->peer, v->version ? v->version : "", KONTENA_VERSION);
        send_master_info(w, v->sid);
        send_close(w, v->sid, 4010, "incompatible agent version");
        return;
    }
    if (!v->grid_token || !*v->grid_token) {
        const char *why = v->node_token ? "node tokens are not supported, use the grid token"
                                        : "missing Kontena-Grid-Token";
        log_warn("msg=\"rejected agent '%s' from %s: %s\"", who, v->peer, why);
        send_close(w, v->sid, v->node_token ? 4002 : 4004, why);
        return;
    }
    grid = grid_by_token(w, v->grid_token, &e, &st);
    if (st != ST_OK) {
        log_error("msg=\"cannot check the grid token of agent '%s': %s\"", who, e.msg);
        send_close(w, v->sid, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "master error");
        return;
    }
    if (!grid) {
        log_warn("msg=\"rejected agent '%s' from %s: invalid grid token\"", who, v->peer);
        send_close(w, v->sid, 4001, "invalid grid token");
        return;
    }
    gname = json_string_value(json_object_get(grid, "name"));
    if (!gname) {
        json_decref(grid);
        send_close(w, v->sid, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "master error");
        return;
    }
    send_master_info(w, v->sid);
    st = register_node(w, v, gname, &node, &e);
    if (st != ST_OK) {
        log_warn("msg=\"cannot register node '%s' of grid '%s': %s\"", who, gname, e.msg);
        send_close(w, v->sid, st == ST_DENIED ? 4006 : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                   st == ST_DENIED ? "node name belongs to another node id"
                                   : "cannot register the node");
        json_decref(grid);
        return;
    }
    /* The newest connection of a node wins: close older ones on this server. */
    for (struct wsess *o = w->wsessions; o; o = o->next)
        if (!strcmp(o->grid, gname) && !strcmp(o->name, v->node_name)) {
            send_close(w, o->sid, 4041, "superseded by a newer connection");
            o->released = 1; /* the new session owns the status key now */
        }
    s = xcalloc(1, sizeof(*s));
    s->sid = v->sid;
    s->grid = xstrdup(gname);
    s->name = xstrdup(v->node_name);
    s->node_id = xstrdup(v->node_id);
    s->connected_at = xstrdup(json_string_value(json_object_get(node, "connected_at")));
    s->status_key = key_node_status(gname, v->node_name);
    s->last_check_ms = time_mono_ms();
    s->next = w->wsessions;
    w->wsessions = s;
    live_set(w, gname, v->node_name, s->sid);
    if (put_status(w, s, &e) != ST_OK)
        log_warn("msg=\"cannot write the liveness of node '%s': %s\"", s->name, e.msg);
    log_info("msg=\"node '%s' of grid '%s' connected\" node_number=%lld peer=%s", s->name, gname,
             (long long)json_integer_value(json_object_get(node, "node_number")), v->peer);
    {
        json_t *ni = node_info_msg(node, grid);
        send_text(w, v->sid, ni);
        json_decref(ni);
    }
    json_decref(node);
    json_decref(grid);
}

static enum status mark_disconnected(json_t *node, void *arg, struct err *e)
{
    const char *connected_at = arg, *have;
    char now[40];

    (void)e;
    have = json_string_value(json_object_get(node, "connected_at"));
    if (!have || strcmp(have, connected_at) != 0)
        return ST_DENIED; /* a newer connection owns the node: leave it */
    time_iso8601_now(now, sizeof(now));
    set_str(node, "disconnected_at", now);
    set_str(node, "last_seen_at", now);
    set_str(node, "updated_at", now);
    return ST_OK;
}

static void on_closed(struct agentws *w, struct ev *v)
{
    struct err e = ERR_INIT;
    struct wsess **pp, *s = NULL;
    char *key;
    enum status st;

    live_drop(w, v->sid);
    for (pp = &w->wsessions; *pp; pp = &(*pp)->next)
        if ((*pp)->sid == v->sid) {
            s = *pp;
            *pp = s->next;
            break;
        }
    if (!s)
        return;
    if (!s->released) {
        if (s->status_rev) {
            st = etcd_delete_if(w->api->etcd, s->status_key, s->status_rev, &e);
            if (st != ST_OK && st != ST_CONFLICT)
                log_warn("msg=\"cannot clear the liveness of node '%s': %s\"", s->name, e.msg);
        }
        key = key_node(s->grid, s->name);
        st = store_update(w->api->etcd, key, mark_disconnected, s->connected_at, NULL, &e);
        if (st != ST_OK && st != ST_NOTFOUND && st != ST_DENIED)
            log_warn("msg=\"cannot mark node '%s' disconnected: %s\"", s->name, e.msg);
        free(key);
        stats_node_gone(w->api, s->grid, s->name, &s->stat_names);
        log_info("msg=\"node '%s' of grid '%s' disconnected\"", s->name, s->grid);
    }
    wsess_free(s);
}

/* A pong: the node must still exist and this session must still own its liveness. */
static void on_pong(struct agentws *w, struct ev *v)
{
    struct wsess *s = find_wsess(w, v->sid);
    struct err e = ERR_INIT;
    struct etcd_kv kv = {0};
    char *key;
    enum status st;

    /* Not !s->status_rev: a failed write (etcd slow, or the lease just expired and the
     * keep-alive has not granted the new one yet) leaves it 0, and returning here left
     * the node offline for good while its agent stayed connected (test
     * agent::nodes_come_back_online_after_the_lease_expired). 0 never equals a
     * mod_revision, so the key is checked and written again below. */
    if (!s || s->released)
        return;
    key = key_node(s->grid, s->name);
    st = etcd_get(w->api->etcd, key, &kv, NULL, &e);
    etcd_kv_release(&kv);
    free(key);
    if (st == ST_NOTFOUND) {
        log_info("msg=\"node '%s' of grid '%s' was removed: closing its agent\"", s->name, s->grid);
        s->released = 1;
        send_close(w, s->sid, 4040, "node removed");
        return;
    }
    st = etcd_get(w->api->etcd, s->status_key, &kv, NULL, &e);
    if (st == ST_NOTFOUND || (st == ST_OK && kv.mod_revision != s->status_rev)) {
        json_t *o = st == ST_OK ? json_loadb(kv.value, kv.value_len, 0, NULL) : NULL;
        const char *ca = json_string_value(json_object_get(o, "connected_at"));
        if (ca && strcmp(ca, s->connected_at) > 0) {
            s->released = 1;
            send_close(w, s->sid, 4041, "superseded by a newer connection");
        } else if (put_status(w, s, &e) != ST_OK) {
            log_warn("msg=\"cannot write the liveness of node '%s': %s\"", s->name, e.msg);
        }
        json_decref(o);
    }
    etcd_kv_release(&kv);
}

static enum status apply_node_info(json_t *node, void *arg, struct err *e)
{
    const json_t *info = arg;
    json_t *labels;
    char now[40];
    static const struct {
        const char *from, *to;
    } fields[] = {
        {"PublicIp", "public_ip"},
        {"PrivateIp", "private_ip"},
        {"AgentVersion", "agent_version"},
        {"ServerVersion", "docker_version"},
        {"OperatingSystem", "os"},
        {"KernelVersion", "kernel_version"},
        {"NCPU", "cpus"},
        {"MemTotal", "mem_total"},
        {"Driver", "driver"},
    };

    (void)e;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *x = json_object_get(info, fields[i].from);
        if (json_is_string(x) && json_string_length(x) <= 255 && json_string_length(x) > 0)
            json_object_set(node, fields[i].to, x);
        else if (json_is_integer(x) && json_integer_value(x) >= 0)
            json_object_set(node, fields[i].to, x);
    }
    /* The overlay's WireGuard public key (agent --overlay): peers read it from the node key.
     * Only a well-formed key (44 base64 characters) is kept. */
    {
        const char *k = json_string_value(json_object_get(info, "WireguardPublicKey"));
        size_t n = k ? strlen(k) : 0;
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        if (n == 44 && k[43] == '=' && strspn(k, b64) == 43)
            set_str(node, "wireguard_public_key", k);
    }
    /* Engine labels only when the node has none yet (agent-protocol.md §2.6). */
    labels = json_object_get(info, "Labels");
    if (json_is_array(labels) && json_array_size(json_object_get(node, "labels")) == 0) {
        json_t *l = json_array(), *x;
        size_t i;
        json_array_foreach(labels, i, x) if (json_is_string(x) && json_string_length(x) <= 255 &&
                                             i < 100) json_array_append(l, x);
        json_object_set_new(node, "labels", l);
    }
    time_iso8601_now(now, sizeof(now));
    set_str(node, "updated_at", now);
    return ST_OK;
}

/* --- logs and statistics (issue 8) ----------------------------------------------------------- */

/* The stored line goes to the grid's syslog forwarder, if it has one. */
static void forward_line(void *arg, const char *grid, const struct log_item *it,
                         const char *created_at, const char *line, size_t len)
{
    struct agentws *w = arg;
    (void)line;
    (void)len;
    logfwd_line(w->api->logfwd, grid, it, created_at);
}

/* [0, id, "/containers/log_batch", [{"items": [...]}]], read by logbatch_parse(): store,
 * answer the cursors. When the store fails, the answer is an error and the session is
 * closed (1011): the agent's later batches, maybe already sent, would otherwise be stored
 * past the missing lines and the cursor would hide the gap. */
static json_t *on_log_batch(struct agentws *w, struct wsess *s, struct logbatch *lb)
{
    json_int_t id = (json_int_t)lb->msgid;
    struct err e = ERR_INIT;
    size_t i, stored = 0, dropped = 0;
    json_t *acked;
    enum status st;

    if (!w->api->logs)
        return rpcmsg_error(id, 503, "the master keeps no logs: its log directory is unusable");
    for (i = 0; i < lb->n; i++) {
        lb->items[i].node = s->name; /* the session's node, whatever the item says */
        if (!lb->items[i].service)
            lb->items[i].stack = NULL;
    }
    __atomic_add_fetch(&w->api->ctr.log_batches, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->api->ctr.log_lines_received, lb->n, __ATOMIC_RELAXED);
    st = logstore_append(w->api->logs, s->grid, lb->items, lb->n, &stored, &dropped,
                         w->api->logfwd ? forward_line : NULL, w, &e);
    __atomic_add_fetch(&w->api->ctr.log_lines_stored, stored, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->api->ctr.log_lines_dropped, dropped, __ATOMIC_RELAXED);
    if (st != ST_OK) {
        log_error("msg=\"cannot store logs of node '%s' of grid '%s': %s: closing its "
                  "connection, it resumes from the stored cursors\"",
                  s->name, s->grid, e.msg);
        s->store_failed = 1;
        return rpcmsg_error(id, 500, e.msg);
    }
    acked = json_object();
    for (i = 0; i < lb->n; i++) {
        char t[LOGSTORE_TIME_LEN + 1];
        const char *cid = lb->items[i].container_id;
        if (!cid || json_object_get(acked, cid))
            continue;
        if (logstore_cursor(w->api->logs, s->grid, cid, t))
            json_object_set_new(acked, cid, json_string(t));
    }
    return rpcmsg_ok(id, json_pack("{s:o}", "acked", acked));
}

/* [0, id, "/containers/log_cursor", [["<docker id>", ...]]] */
static json_t *on_log_cursor(struct agentws *w, struct wsess *s, json_int_t id,
                             const json_t *params)
{
    const json_t *ids = json_array_get(params, 0), *x;
    json_t *cur;
    size_t i;

    if (!json_is_array(ids))
        return rpcmsg_error(id, 400, "params must be [[\"<container id>\", ...]]");
    if (!w->api->logs)
        return rpcmsg_error(id, 503, "the master keeps no logs: its log directory is unusable");
    cur = json_object();
    json_array_foreach(ids, i, x)
    {
        char t[LOGSTORE_TIME_LEN + 1];
        if (i >= 100000)
            break;
        if (json_is_string(x) &&
            logstore_cursor(w->api->logs, s->grid, json_string_value(x), t))
            json_object_set_new(cur, json_string_value(x), json_string(t));
    }
    return rpcmsg_ok(id, json_pack("{s:o}", "cursors", cur));
}

static void on_notification(struct agentws *w, struct wsess *s, const char *method,
                            const json_t *params)
{
    const json_t *p = json_array_get(params, 0);

    if (!method || !json_is_object(p))
        return;
    if (!strcmp(method, "/containers/stats"))
        stats_containers_update(w->api, s->grid, s->name, p, current_lease(w), &s->stat_names);
    else if (!strcmp(method, "/nodes/stats"))
        stats_node_update(w->api, s->grid, s->name, p, current_lease(w));
}

static void on_message(struct agentws *w, struct ev *v)
{
    struct wsess *s = find_wsess(w, v->sid);
    json_error_t jerr;
    json_t *m = NULL, *reply = NULL;
    const char *why;
    struct rpcmsg r;
    struct logbatch lb;
    int fast;

    if (!s) /* not registered (yet, or rejected): the agent waits for node_info */
        goto out;
    if (s->store_failed) /* closing: see on_log_batch() */
        goto out;
    /* Log batches, most of the traffic, skip the general JSON parser. */
    fast = logbatch_parse(v->msg, v->len, LOG_BATCH_MAX, &lb, &why);
    if (fast == 1) {
        reply = on_log_batch(w, s, &lb);
        logbatch_release(&lb);
        send_text(w, v->sid, reply);
        if (s->store_failed) {
            char reason[96];
            snprintf(reason, sizeof(reason), "cannot store logs: %s",
                     json_string_value(json_object_get(json_array_get(reply, 2), "message")));
            send_close(w, v->sid, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, reason);
        }
        goto out;
    }
    if (fast == -1) {
        log_warn("msg=\"node '%s': bad log batch: %s\"", s->name, why);
        reply = rpcmsg_error((json_int_t)lb.msgid, 400, why);
        send_text(w, v->sid, reply);
        goto out;
    }
    m = json_loadb(v->msg, v->len, 0, &jerr);
    if (rpcmsg_parse(m, &r) != 0 || r.size < 3) {
        log_warn("msg=\"node '%s': unparsable message dropped\"", s->name);
        goto out;
    }
    if (r.type == RPCMSG_RESPONSE) { /* a response to agentws_call() */
        rpc_complete(w, v->sid, &r);
        goto out;
    }
    if (r.type == RPCMSG_NOTIFICATION) {
        on_notification(w, s, r.method, r.params);
        goto out;
    }
    if (r.type != RPCMSG_REQUEST)
        goto out;
    if (r.method && !strcmp(r.method, "/containers/log_cursor")) {
        reply = on_log_cursor(w, s, r.idval, r.params);
    } else if (r.method && !strcmp(r.method, "/nodes/update")) {
        json_t *info = json_array_get(r.params, 1);
        struct err e = ERR_INIT;
        char *key = key_node(s->grid, s->name);
        enum status st = json_is_object(info)
                             ? store_update(w->api->etcd, key, apply_node_info, info, NULL, &e)
                             : err_set(&e, ST_INVALID, "params must be [node_id, info]");
        free(key);
        if (st == ST_OK)
            reply = rpcmsg_ok(r.idval, json_object());
        else
            reply = rpcmsg_error(r.idval, st == ST_INVALID ? 422 : 500, e.msg);
    } else { /* "error", not "message", as the master always answered it */
        json_t *id = json_integer(r.idval);
        reply = rpcmsg_response(id, json_pack("{s:i, s:s}", "code", 501, "error",
                                              "service not implemented"),
                                NULL);
        json_decref(id);
    }
    send_text(w, v->sid, reply);
out:
    json_decref(reply);
    json_decref(m);
}

static void on_lease(struct agentws *w, struct ev *v)
{
    struct err e = ERR_INIT;

    (void)v;
    for (struct wsess *s = w->wsessions; s; s = s->next)
        if (!s->released && put_status(w, s, &e) != ST_OK)
            log_warn("msg=\"cannot write the liveness of node '%s': %s\"", s->name, e.msg);
}

static void *worker_main(void *arg)
{
    struct agentws *w = arg;

    for (;;) {
        struct ev *v;
        pthread_mutex_lock(&w->mu);
        while (!w->evq && !w->stop_threads)
            pthread_cond_wait(&w->cond, &w->mu);
        if (!w->evq) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        v = w->evq;
        w->evq = v->next;
        if (!w->evq)
            w->evtail = &w->evq;
        pthread_mutex_unlock(&w->mu);
        switch (v->kind) {
        case EV_OPEN:
            on_open(w, v);
            break;
        case EV_MESSAGE:
            on_message(w, v);
            break;
        case EV_PONG:
            on_pong(w, v);
            break;
        case EV_CLOSED:
            on_closed(w, v);
            break;
        case EV_LEASE:
            on_lease(w, v);
            break;
        }
        ev_free(v);
    }
    return NULL;
}

/* --- keep-alive thread ------------------------------------------------------------------------ */

static void *ka_main(void *arg)
{
    struct agentws *w = arg;
    struct err e = ERR_INIT;
    int64_t period_ms = (int64_t)w->cfg.lease_ttl_s * 1000 / 3;

    for (;;) {
        struct timespec ts;
        int64_t lease, ttl = 0;
        enum status st;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += period_ms / 1000;
        ts.tv_nsec += (period_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&w->mu);
        while (!w->stop_threads && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0)
            ;
        lease = w->lease;
        if (w->stop_threads) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        pthread_mutex_unlock(&w->mu);
        st = etcd_lease_keepalive(w->api->etcd, lease, &ttl, &e);
        if (st == ST_OK && ttl > 0)
            continue;
        if (st != ST_NOTFOUND && !(st == ST_OK && ttl <= 0)) {
            log_warn("msg=\"cannot keep the agents' liveness lease: %s\"", e.msg);
            continue;
        }
        /* The lease expired (etcd was away longer than its TTL): take a new one and have
         * the worker write every live node's status key again. */
        if (etcd_lease_grant(w->api->etcd, w->cfg.lease_ttl_s, &lease, &e) != ST_OK) {
            log_warn("msg=\"cannot grant the agents' liveness lease: %s\"", e.msg);
            continue;
        }
        log_warn("msg=\"agents' liveness lease was lost: rewriting the node status keys\"");
        pthread_mutex_lock(&w->mu);
        w->lease = lease;
        pthread_mutex_unlock(&w->mu);
        {
            struct ev *v = xcalloc(1, sizeof(*v));
            v->kind = EV_LEASE;
            v->lease = lease;
            post_ev(w, v);
        }
    }
    return NULL;
}

/* --- lifecycle -----------------------------------------------------------------------------------
 */

enum status agentws_start(struct api *a, const struct agentws_config *cfg, struct agentws **out,
                          struct err *e)
{
    struct lws_context_creation_info info;
    struct agentws *w = xcalloc(1, sizeof(*w));
    char *hex = crypto_random_hex(8);
    enum status st;

    *out = NULL;
    w->api = a;
    w->cfg = *cfg;
    snprintf(w->server_id, sizeof(w->server_id), "%s", hex);
    free(hex);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_cond_init(&w->rpc_cond, NULL);
    w->evtail = &w->evq;
    w->cmdtail = &w->cmdq;

    st = etcd_lease_grant(a->etcd, cfg->lease_ttl_s, &w->lease, e);
    if (st != ST_OK) {
        err_wrap(e, "cannot grant the agents' liveness lease");
        goto fail;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface = cfg->listen_addr;
    info.protocols = protocols;
    info.user = w;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.fd_limit_per_thread = 8192;
    if (!a->cfg.insecure_http) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.server_ssl_cert_mem = a->tls_cert_pem;
        info.server_ssl_cert_mem_len = (unsigned)strlen(a->tls_cert_pem);
        info.server_ssl_private_key_mem = a->tls_key_pem;
        info.server_ssl_private_key_mem_len = (unsigned)strlen(a->tls_key_pem);
    }
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        if (!cfg->required) {
            log_warn("msg=\"agents' endpoint not started: cannot listen on %s:%d (pass "
                     "--agent-listen to choose another port)\"",
                     cfg->listen_addr, cfg->port);
            if (etcd_lease_revoke(a->etcd, w->lease, e) != ST_OK)
                err_clear(e);
            st = ST_OK;
            goto fail;
        }
        st = err_set(e, ST_IO,
                     "cannot listen for agents on %s:%d: address in use or TLS setup "
                     "failed",
                     cfg->listen_addr, cfg->port);
        goto fail;
    }
    if (pthread_create(&w->worker_thread, NULL, worker_main, w) == 0)
        w->worker_started = 1;
    if (pthread_create(&w->ka_thread, NULL, ka_main, w) == 0)
        w->ka_started = 1;
    if (pthread_create(&w->lws_thread, NULL, lws_main, w) == 0)
        w->lws_started = 1;
    if (!w->worker_started || !w->ka_started || !w->lws_started) {
        agentws_stop(w);
        return err_set(e, ST_IO, "cannot start the agents' endpoint threads");
    }
    *out = w;
    __atomic_store_n(&a->agentws, w, __ATOMIC_RELEASE);
    return ST_OK;
fail:
    pthread_cond_destroy(&w->rpc_cond);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return st;
}

void agentws_stop(struct agentws *w)
{
    struct err e = ERR_INIT;

    if (!w)
        return;
    /* Sockets first (the agents see 1001 and reconnect elsewhere or later), then the worker
     * and the keep-alive, then the lease: this server's nodes go offline at once. */
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_mutex_unlock(&w->mu);
    if (w->lws_started) {
        lws_cancel_service(w->ctx);
        pthread_join(w->lws_thread, NULL);
    }
    pthread_mutex_lock(&w->mu);
    w->stop_threads = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->worker_started)
        pthread_join(w->worker_thread, NULL);
    if (w->ka_started)
        pthread_join(w->ka_thread, NULL);
    if (etcd_lease_revoke(w->api->etcd, w->lease, &e) != ST_OK && e.st != ST_NOTFOUND)
        log_warn("msg=\"cannot revoke the agents' liveness lease: %s\"", e.msg);
    lws_context_destroy(w->ctx);
    w->ctx = NULL;
    for (struct ev *v = w->evq, *n; v; v = n) {
        n = v->next;
        ev_free(v);
    }
    for (struct cmd *c = w->cmdq, *n; c; c = n) {
        n = c->next;
        free(c->buf);
        free(c);
    }
    for (struct wsess *s = w->wsessions, *n; s; s = n) {
        n = s->next;
        wsess_free(s);
    }
    for (struct live_node *l = w->live, *n; l; l = n) {
        n = l->next;
        free(l->grid);
        free(l->name);
        free(l);
    }
    if (__atomic_load_n(&w->api->agentws, __ATOMIC_ACQUIRE) == w)
        __atomic_store_n(&w->api->agentws, NULL, __ATOMIC_RELEASE);
    pthread_cond_destroy(&w->rpc_cond);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
