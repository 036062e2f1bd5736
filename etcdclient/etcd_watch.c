/* etcdclient/etcd_watch.c -- a resumable watch over one long POST to /v3/watch.
 *
 * The stream is newline-delimited JSON. Bytes go through etcd__lines (a capped splitter
 * that keeps a partial line between write callbacks), each line through etcd__wmsg_parse(),
 * and each message through handle_msg(), which is the only place that moves next_rev:
 *
 *   events    next_rev = last event's mod_revision + 1 (older events are dropped: they
 *             were delivered before a reconnect)
 *   progress  next_rev = max(next_rev, header.revision + 1)
 *   created   next_rev = header.revision + 1, only for a watch "from now" (start 0): etcd
 *             starts such a watch right after that revision. With an explicit start, the
 *             created header is the store's current revision, ahead of pending events.
 *
 * Each attempt runs its own easy handle in the watch's private multi handle, so that
 * etcd_watch_stop() can interrupt curl_multi_poll() with curl_multi_wakeup() whether run()
 * is waiting on an idle stream or sleeping in a backoff (the sleep is a poll too).
 */
#include "etcdclient/etcd_watch.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd_internal.h"

#include "common/banned.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define ERRBODY_MAX 65536 /* a non-200 answer is a short JSON error */

/* How an attempt ended, decided by the message handler or the transfer result. */
enum outcome {
    OUT_NONE,  /* still streaming */
    OUT_STOP,  /* stop requested (etcd_watch_stop or the callback): run() returns ST_OK */
    OUT_RETRY, /* stream dropped or etcd unavailable: back off and resume */
    OUT_TOKEN, /* etcd rejected the token: renew it and resume */
    OUT_FATAL, /* run() returns end_st (COMPACTED, DENIED, INVALID) */
};

struct etcd_watch {
    struct etcd *c;
    char *key;
    char *range_end; /* NULL, or an explicit end key */
    int prefix;
    int progress_notify;
    int prev_kv;
    size_t max_msg;
    etcd_watch_cb cb;
    void *arg;

    CURLM *multi;
    atomic_int stop;
    _Atomic int64_t next_rev; /* 0 until known for a watch "from now" */
    unsigned rnd;             /* jitter state, run() thread only */

    /* Per attempt. */
    CURL *h;
    long http;
    struct etcd__lines lines;
    struct buf errbody;
    int created;
    enum outcome end;
    enum status end_st;
    struct err end_err;
    uint64_t end_gen; /* OUT_TOKEN: generation of the rejected token */
};

/* --- line splitter ------------------------------------------------------------------------ */

void etcd__lines_init(struct etcd__lines *l, size_t max_line)
{
    buf_init(&l->tail, max_line);
    l->max_line = max_line;
}

void etcd__lines_release(struct etcd__lines *l)
{
    buf_release(&l->tail);
}

void etcd__lines_reset(struct etcd__lines *l)
{
    buf_reset(&l->tail);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

enum status etcd__lines_feed(struct etcd__lines *l, const char *data, size_t len, etcd__line_fn fn,
                             void *arg)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        const char *line;
        size_t n, take;
        enum status st;

        if (!nl) {
            /* The tail's own cap keeps a runaway line from growing without bound. */
            if (buf_append(&l->tail, data, len) != ST_OK)
                return ST_INVALID;
            return ST_OK;
        }
        take = (size_t)(nl - data);
        if (l->tail.len) {
            if (buf_append(&l->tail, data, take) != ST_OK)
                return ST_INVALID;
            line = l->tail.ptr;
            n = l->tail.len;
        } else {
            /* Whole line inside this chunk: no copy. */
            if (l->max_line && take > l->max_line)
                return ST_INVALID;
            line = data;
            n = take;
        }
        data += take + 1;
        len -= take + 1;
        if (n && line[n - 1] == '\r')
            n--;
        st = blank(line, n) ? ST_OK : fn(arg, line, n);
        buf_reset(&l->tail);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

/* --- message parser ----------------------------------------------------------------------- */

void etcd__wmsg_release(struct etcd__wmsg *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_events; i++) {
        etcd_kv_release(&m->events[i].kv);
        etcd_kv_release(&m->events[i].prev_kv);
    }
    FREE_AND_NULL(m->events);
    FREE_AND_NULL(m->reason);
    memset(m, 0, sizeof(*m));
}

static enum status parse_events(json_t *arr, struct etcd__wmsg *m, struct err *e)
{
    size_t n = json_array_size(arr);

    m->events = xcalloc(n, sizeof(*m->events));
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get(arr, i), *pkv;
        struct etcd_event *out = &m->events[i];
        const char *type = json_string_value(json_object_get(ev, "type"));

        m->n_events++;
        /* proto3 JSON omits the zero enum value: no "type" is a PUT. */
        out->type = type && !strcmp(type, "DELETE") ? ETCD_EVENT_DELETE : ETCD_EVENT_PUT;
        if (etcd__kv_from_json(json_object_get(ev, "kv"), out->type == ETCD_EVENT_PUT, &out->kv,
                               e) != ST_OK)
            return ST_INVALID;
        pkv = json_object_get(ev, "prev_kv");
        if (pkv && etcd__kv_from_json(pkv, 1, &out->prev_kv, e) != ST_OK)
            return ST_INVALID;
    }
    return ST_OK;
}

enum status etcd__wmsg_parse(const char *line, size_t len, struct etcd__wmsg *m, struct err *e)
{
    json_t *doc, *err, *res, *events;
    json_error_t je;
    enum status st = ST_OK;

    memset(m, 0, sizeof(*m));
    doc = json_loadb(line, len, 0, &je);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return err_set(e, ST_INVALID, "unparsable etcd watch message: %s",
                       doc ? "not an object" : je.text);
    }
    err = json_object_get(doc, "error");
    if (err) {
        const char *msg;
        m->type = ETCD__WMSG_ERROR;
        if (json_is_object(err)) { /* in-stream: {"error":{"grpc_code":14,"message":..}} */
            m->grpc_code = (int)json_integer_value(json_object_get(err, "grpc_code"));
            msg = json_string_value(json_object_get(err, "message"));
        } else { /* before the stream: {"error":"..","code":3,"message":".."} */
            m->grpc_code = (int)json_integer_value(json_object_get(doc, "code"));
            msg = json_string_value(json_object_get(doc, "message"));
            if (!msg)
                msg = json_string_value(err);
        }
        m->reason = xstrdup(msg ? msg : "unknown error");
        goto out;
    }
    res = json_object_get(doc, "result");
    if (!json_is_object(res)) {
        st = err_set(e, ST_INVALID, "etcd watch message has no result");
        goto out;
    }
    m->revision = etcd__header_revision(res);
    events = json_object_get(res, "events");
    if (json_is_true(json_object_get(res, "canceled"))) {
        const char *why = json_string_value(json_object_get(res, "cancel_reason"));
        m->compact_revision = etcd__json_int64(res, "compact_revision");
        m->type = m->compact_revision ? ETCD__WMSG_COMPACTED : ETCD__WMSG_CANCELED;
        m->reason = xstrdup(why ? why : "canceled");
    } else if (json_is_true(json_object_get(res, "created"))) {
        m->type = ETCD__WMSG_CREATED;
    } else if (json_array_size(events)) {
        m->type = ETCD__WMSG_EVENTS;
        st = parse_events(events, m, e);
    } else {
        m->type = ETCD__WMSG_PROGRESS;
    }
out:
    json_decref(doc);
    return st;
}

/* --- the watch ---------------------------------------------------------------------------- */

struct etcd_watch *etcd_watch_create(struct etcd *c, const struct etcd_watch_opts *o,
                                     etcd_watch_cb cb, void *arg)
{
    struct etcd_watch *w;

    BUG_ON(!c || !o || !o->key || !cb);
    w = xcalloc(1, sizeof(*w));
    w->c = c;
    w->key = xstrdup(o->key);
    w->prefix = o->range_end == ETCD_PREFIX;
    if (o->range_end && !w->prefix)
        w->range_end = xstrdup(o->range_end);
    w->progress_notify = o->progress_notify;
    w->prev_kv = o->prev_kv;
    w->max_msg = o->max_message_bytes ? o->max_message_bytes : ETCD__DEFAULT_MAX_BYTES;
    w->cb = cb;
    w->arg = arg;
    w->multi = curl_multi_init(); /* etcd_create() did curl_global_init */
    BUG_ON(!w->multi);
    atomic_init(&w->stop, 0);
    atomic_init(&w->next_rev, o->start_revision > 0 ? o->start_revision : 0);
    w->rnd = (unsigned)time_mono_ms() ^ (unsigned)(uintptr_t)w;
    etcd__lines_init(&w->lines, w->max_msg);
    buf_init(&w->errbody, ERRBODY_MAX);
    return w;
}

void etcd_watch_destroy(struct etcd_watch *w)
{
    if (!w)
        return;
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    etcd__lines_release(&w->lines);
    buf_release(&w->errbody);
    free(w->key);
    free(w->range_end);
    free(w);
}

void etcd_watch_stop(struct etcd_watch *w)
{
    atomic_store(&w->stop, 1);
    curl_multi_wakeup(w->multi); /* thread-safe; also wakes the next poll if none is running */
}

int64_t etcd_watch_next_revision(const struct etcd_watch *w)
{
    return atomic_load(&((struct etcd_watch *)w)->next_rev);
}

static int stopping(struct etcd_watch *w)
{
    return atomic_load(&w->stop);
}

/* Record how the attempt ends: "watch on '<key>' <what>: <detail>". */
static enum status finish(struct etcd_watch *w, enum outcome how, enum status st, const char *what,
                          const char *detail)
{
    w->end = how;
    w->end_st = st;
    err_set(&w->end_err, st, "watch on '%s' %s: %s", w->key, what, detail);
    return ST_INVALID; /* any non-OK stops the splitter */
}

static int deliver(struct etcd_watch *w, const struct etcd_watch_msg *m)
{
    return w->cb(w->arg, m) != 0;
}

/* Act on one message. Returns ST_OK to keep streaming. */
static enum status handle_msg(struct etcd_watch *w, struct etcd__wmsg *p)
{
    struct etcd_watch_msg m = {0};
    int64_t next = atomic_load(&w->next_rev);
    enum status st;
    size_t first = 0;

    m.revision = p->revision;
    switch (p->type) {
    case ETCD__WMSG_CREATED:
        w->created = 1;
        if (next == 0)
            atomic_store(&w->next_rev, p->revision + 1);
        m.kind = ETCD_WATCH_CONNECTED;
        break;
    case ETCD__WMSG_EVENTS:
        /* Drop what an earlier stream already delivered. */
        while (first < p->n_events && next && p->events[first].kv.mod_revision < next)
            first++;
        if (first == p->n_events)
            return ST_OK;
        m.kind = ETCD_WATCH_EVENTS;
        m.events = p->events + first;
        m.n_events = p->n_events - first;
        atomic_store(&w->next_rev, p->events[p->n_events - 1].kv.mod_revision + 1);
        break;
    case ETCD__WMSG_PROGRESS:
        if (p->revision + 1 > next)
            atomic_store(&w->next_rev, p->revision + 1);
        m.kind = ETCD_WATCH_PROGRESS;
        break;
    case ETCD__WMSG_COMPACTED:
        m.kind = ETCD_WATCH_COMPACTED;
        m.compact_revision = p->compact_revision;
        (void)deliver(w, &m); /* the watch ends either way */
        w->end = OUT_FATAL;
        w->end_st = ST_COMPACTED;
        err_set(&w->end_err, ST_COMPACTED,
                "cannot watch '%s' from revision %lld: compacted up to revision %lld", w->key,
                (long long)next, (long long)p->compact_revision);
        return ST_INVALID;
    case ETCD__WMSG_CANCELED:
        if (etcd__is_token_error(0, p->reason))
            return finish(w, OUT_TOKEN, ST_DENIED, "canceled", p->reason);
        if (strstr(p->reason, "PermissionDenied") || strstr(p->reason, "permission denied"))
            return finish(w, OUT_FATAL, ST_DENIED, "canceled", p->reason);
        if (strstr(p->reason, "Unavailable") || strstr(p->reason, "no leader"))
            return finish(w, OUT_RETRY, ST_RETRY, "canceled", p->reason);
        return finish(w, OUT_FATAL, ST_INVALID, "canceled", p->reason);
    case ETCD__WMSG_ERROR:
        if (etcd__is_token_error(p->grpc_code, p->reason))
            return finish(w, OUT_TOKEN, ST_DENIED, "failed", p->reason);
        st = etcd__grpc_status(p->grpc_code, p->reason);
        if (st == ST_RETRY || st == ST_IO || st == ST_OK)
            return finish(w, OUT_RETRY, ST_RETRY, "failed", p->reason);
        return finish(w, OUT_FATAL, st, "failed", p->reason);
    }
    if (deliver(w, &m) || stopping(w)) {
        w->end = OUT_STOP;
        return ST_INVALID;
    }
    return ST_OK;
}

static enum status on_line(void *arg, const char *line, size_t len)
{
    struct etcd_watch *w = arg;
    struct etcd__wmsg m;
    struct err e = ERR_INIT;
    enum status st;

    if (etcd__wmsg_parse(line, len, &m, &e) != ST_OK) {
        etcd__wmsg_release(&m);
        return finish(w, OUT_FATAL, ST_INVALID, "got a bad message", e.msg);
    }
    st = handle_msg(w, &m);
    etcd__wmsg_release(&m);
    return st;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct etcd_watch *w = arg;
    size_t len = size * n;

    if (!w->http)
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->http);
    if (w->http != 200) {
        /* An error document, only used for its message: keep what fits under the cap. */
        size_t room = ERRBODY_MAX - w->errbody.len;
        BUG_ON(buf_append(&w->errbody, p, len < room ? len : room) != ST_OK);
        return len;
    }
    if (etcd__lines_feed(&w->lines, p, len, on_line, w) != ST_OK) {
        if (w->end == OUT_NONE) {
            w->end = OUT_FATAL;
            w->end_st = ST_INVALID;
            err_set(&w->end_err, ST_INVALID, "watch on '%s': message over %zu bytes", w->key,
                    w->max_msg);
        }
        return 0; /* abort the transfer */
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct etcd_watch *w = arg;

    (void)dt, (void)dn, (void)ut, (void)un;
    return stopping(w); /* belt and braces: the poll loop checks too */
}

static char *create_body(struct etcd_watch *w)
{
    json_t *req = json_object(), *body;
    int64_t next = atomic_load(&w->next_rev);
    char rev[32];
    char *s;

    etcd__set_key_range(req, w->key, w->prefix ? ETCD_PREFIX : w->range_end);
    if (next > 0) {
        snprintf(rev, sizeof(rev), "%lld", (long long)next);
        json_object_set_new(req, "start_revision", json_string(rev));
    }
    if (w->progress_notify)
        json_object_set_new(req, "progress_notify", json_true());
    if (w->prev_kv)
        json_object_set_new(req, "prev_kv", json_true());
    body = json_pack("{s:o}", "create_request", req);
    s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    BUG_ON(!s);
    return s;
}

/* After a non-200 answer: the gateway's {"error":..,"code":..} decides the outcome. */
static void http_error(struct etcd_watch *w)
{
    struct etcd__wmsg m = {0};
    char detail[128];

    if (w->errbody.len && etcd__wmsg_parse(w->errbody.ptr, w->errbody.len, &m, NULL) == ST_OK &&
        m.type == ETCD__WMSG_ERROR) {
        (void)handle_msg(w, &m);
        etcd__wmsg_release(&m);
        return;
    }
    etcd__wmsg_release(&m);
    snprintf(detail, sizeof(detail), "HTTP %ld", w->http);
    finish(w, w->http >= 500 ? OUT_RETRY : OUT_FATAL, w->http >= 500 ? ST_RETRY : ST_IO, "failed",
           detail);
}

/* One connection: stream until it ends. Sets w->end (never OUT_NONE on return). */
static void attempt(struct etcd_watch *w)
{
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char *auth = NULL, *body = NULL, *url;
    uint64_t gen = 0;
    size_t idx;
    const char *ep;
    CURLcode rc = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;
    struct err e = ERR_INIT;
    enum status st;

    w->end = OUT_NONE;
    w->http = 0;
    w->created = 0;
    etcd__lines_reset(&w->lines);
    buf_reset(&w->errbody);

    st = etcd__auth_header(w->c, &auth, &gen, &e);
    if (st != ST_OK) {
        finish(w, st == ST_RETRY ? OUT_RETRY : OUT_FATAL, st, "cannot start", e.msg);
        return;
    }
    ep = etcd__endpoint_at(w->c, 0, &idx);
    url = xasprintf("%s/v3/watch", ep);
    body = create_body(w);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    BUG_ON(!hdrs);

    w->h = etcd__new_handle(w->c); /* connect timeout and TCP keepalive, no total timeout */
    curl_easy_setopt(w->h, CURLOPT_URL, url);
    curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(w->h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(w->h, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, errbuf);
    curl_multi_add_handle(w->multi, w->h);

    while (running && !stopping(w)) {
        if (curl_multi_perform(w->multi, &running) != CURLM_OK)
            break;
        if (running && !stopping(w))
            curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->h)
            rc = msg->data.result;
    if (w->created)
        etcd__endpoint_good(w->c, idx);
    if (!w->http) /* no body at all: the write callback never ran */
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->http);

    if (w->end != OUT_NONE) {
        /* the message handler decided */
    } else if (stopping(w)) {
        w->end = OUT_STOP;
    } else if (running) {
        finish(w, OUT_RETRY, ST_RETRY, "failed", "curl multi error");
    } else if (rc == CURLE_OK && w->http != 200) {
        http_error(w);
    } else {
        const char *why = rc == CURLE_OK ? "stream ended"
                          : errbuf[0]    ? errbuf
                                         : curl_easy_strerror(rc);
        char detail[CURL_ERROR_SIZE + 64];
        snprintf(detail, sizeof(detail), "%s: %s", ep, why);
        if (etcd__curl_status(rc) == ST_INVALID) { /* bad URL or TLS setup: retrying won't help */
            finish(w, OUT_FATAL, ST_INVALID, "failed", detail);
        } else {
            finish(w, OUT_RETRY, ST_RETRY, "dropped", detail);
            etcd__endpoint_bad(w->c, idx); /* with several endpoints, try the next one */
        }
    }
    if (w->end == OUT_TOKEN)
        w->end_gen = gen;

    curl_multi_remove_handle(w->multi, w->h);
    curl_easy_cleanup(w->h);
    w->h = NULL;
    curl_slist_free_all(hdrs);
    free(body);
    free(url);
    free(auth);
}

/* Sleep ms unless stopped first. */
static void nap(struct etcd_watch *w, int64_t ms)
{
    int64_t deadline = time_mono_ms() + ms;

    while (!stopping(w)) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0)
            break;
        curl_multi_poll(w->multi, NULL, 0, (int)(left > 1000 ? 1000 : left), NULL);
    }
}

static int64_t jitter(struct etcd_watch *w, int64_t ms)
{
    /* +-20%, so that many watchers do not reconnect in lockstep */
    int64_t spread = ms / 5;

    return ms - spread + (int64_t)(rand_r(&w->rnd) % (unsigned)(2 * spread + 1));
}

enum status etcd_watch_run(struct etcd_watch *w, struct err *e)
{
    int64_t backoff = BACKOFF_MIN_MS;
    int just_renewed = 0;

    while (!stopping(w)) {
        struct etcd_watch_msg m = {0};
        int64_t next;

        attempt(w);
        if (w->created)
            backoff = BACKOFF_MIN_MS;
        if (w->end == OUT_TOKEN) {
            /* Renew and retry at once; a rejection right after a renewal is final. */
            struct err re = ERR_INIT;
            enum status st;

            if (just_renewed)
                return err_set(e, ST_DENIED, "%s", w->end_err.msg);
            st = etcd__token_renew(w->c, w->end_gen, &re);
            if (st == ST_OK) {
                just_renewed = 1;
                continue;
            }
            if (st != ST_RETRY)
                return err_set(e, st, "%s", re.msg);
            err_set(&w->end_err, st, "%s", re.msg); /* etcd unreachable: back off */
        }
        just_renewed = 0;
        if (w->end == OUT_STOP || w->end == OUT_NONE)
            return ST_OK;
        if (w->end == OUT_FATAL)
            return err_set(e, w->end_st, "%s", w->end_err.msg);

        next = atomic_load(&w->next_rev);
        m.kind = ETCD_WATCH_DISCONNECTED;
        m.revision = next ? next - 1 : 0;
        m.error = w->end_err.msg;
        if (deliver(w, &m))
            return ST_OK;
        nap(w, jitter(w, backoff));
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return ST_OK;
}
