/* agent/logs.c -- container logs to the master (see logs.h, docs/internals/agent-logs.md).
 *
 * Threads: the watcher (blocking Docker calls: list, inspect, events) tells the follower
 * what runs through a mutex-protected queue plus curl_multi_wakeup(); the follower owns
 * every other piece of state. Replies from the transport arrive on its thread (the
 * WebSocket's) and take the same queue, deep-copied (jansson objects of another thread
 * are never touched here).
 */
#include "agent/logs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "agent/docker.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define DEF_ITEMS 1000
#define DEF_BYTES (512u << 10)
#define DEF_INFLIGHT 4
#define DEF_MAX_LINE (16u << 10)
#define DEF_TAIL 1000
#define CURSOR_IDS 200        /* ids per /containers/log_cursor request */
#define RETRY_MS 2000         /* after a failed follow, cursor request or batch */
#define CURSOR_MAX_DELAY_MS 60000
#define FIRST_LINGER_MS 5     /* nothing out: a partial batch waits this long for company */
#define FIRST_ITEMS 256       /* ... or until it has this many lines */
#define LINGER_MS 20          /* batches out: a partial batch waits this long (or is full) */
#define RESYNC_S 30           /* the watcher re-lists the containers this often */
#define REPLAY_NS 1000000000LL /* a follow from a cursor reads this much before it again */
#define ITEM_OVERHEAD 64      /* ,"type":"stdout","data":"..."} around the data */

/* What the watcher learned about one container (all strings owned). */
struct cinfo {
    char *id, *name, *stack, *service;
    long instance; /* -1: none */
    int tty, running;
    int64_t started_ns; /* State.StartedAt: identifies the run */
    int64_t run_since_ns; /* where the current run's lines start (see learn()) */
};

enum lc_state { LC_IDLE, LC_WANT_CURSOR, LC_ASKED, LC_FOLLOWING };

/* One container, follower thread only. */
struct lc {
    struct lc *next;
    struct logs *l;
    struct cinfo ci;
    enum lc_state st;
    int have_cursor;   /* this link: the master said where it stands (maybe "nowhere") */
    int64_t cursor_ns; /* last line stored by the master or queued by us on this link */
    int64_t skip_ns;   /* the follow in progress drops lines at or before this */
    int64_t bump_ns;   /* the follow in progress: time given to its last line */
    int reattach;      /* started again while the previous follow was still draining */
    int64_t done_ns;   /* StartedAt of the run read to its end on this link (-1: none) */
    int64_t run_ns;    /* StartedAt of the run being followed */
    int64_t retry_at;  /* IDLE and running: follow again at this time (mono ms), 0 never */
    CURL *h;
    long http;
    struct buf errbody;
    struct docker_demux dx;
    int paused;
    char *prefix; /* {"id":..,"name":..,..,"time":" */
    size_t prefix_len;
};

struct batch {
    struct batch *next;
    struct buf text;
    size_t items;
    int64_t first_ms;
};

enum call_kind { CALL_BATCH, CALL_CURSOR };
struct call {
    struct logs *l;
    enum call_kind kind;
    uint64_t gen;
    size_t items;
    char **ids; /* CALL_CURSOR */
    size_t nids;
};

enum msg_kind { M_LINK, M_INFO, M_DESTROY, M_REPLY, M_LISTED };
struct lmsg {
    struct lmsg *next;
    enum msg_kind kind;
    int up;
    struct cinfo ci; /* M_INFO; M_DESTROY uses ci.id */
    struct call *call;
    json_t *error, *result; /* M_LISTED: result is the array of listed ids */
};

struct logs {
    char *socket, *node, *node_json;
    char *grid; /* under mu; NULL until known */
    int grid_changed; /* under mu: the watcher lists again */
    struct logs_transport tr;
    size_t batch_items, batch_bytes, max_line;
    unsigned max_inflight;
    long tail;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct lmsg *q, **qtail;
    int stop;
    CURLM *multi;
    pthread_t follower, watcher;
    int started_f, started_w;
    struct docker *dev, *dapi; /* watcher's handles: events, inspect/list */

    /* follower thread */
    struct lc *cs;
    int linked;
    int64_t link_ns; /* wall clock when the link came up */
    uint64_t gen;
    unsigned inflight;
    int cursor_call; /* a /containers/log_cursor request is out */
    int64_t cursor_retry_at;
    int cursor_delay_ms; /* doubles after each refused cursor request (a master without
                            logs answers 501), up to CURSOR_MAX_DELAY_MS */
    struct batch *cur, *ready, **ready_tail;
    size_t nready;
    unsigned npaused;
    int64_t warn_at;

    struct {
        atomic_ullong lines_read, lines_skipped, lines_sent, lines_acked, lines_cut;
        atomic_ullong batches_sent, batches_acked, batches_failed, bytes_read, links, pauses;
        atomic_ullong follows_started, follow_errors;
        atomic_llong queued, followed;
    } n;
};

#define INC(f, v) atomic_fetch_add_explicit(&l->n.f, (v), memory_order_relaxed)

/* --- JSON text --------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4, cp = c & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

static void put(struct buf *b, const void *p, size_t n)
{
    /* b has no cap: buf_append only fails over a cap */
    if (buf_append(b, p, n) != ST_OK)
        BUG_ON(1);
}

void logs_json_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        unsigned c = p[i];
        size_t k;
        char e[8];

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80 && (k = utf8_len(p + i, n - i)) > 0) {
            i += k;
            continue;
        }
        put(b, p + run, i - run);
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            put(b, e, 2);
        } else if (c == '\n') {
            put(b, "\\n", 2);
        } else if (c == '\r') {
            put(b, "\\r", 2);
        } else if (c == '\t') {
            put(b, "\\t", 2);
        } else if (c == 0) {
            put(b, "\xef\xbf\xbd", 3); /* \u0000 is refused by most JSON readers */
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            put(b, e, 6);
        } else {
            put(b, "\xef\xbf\xbd", 3); /* U+FFFD for a byte that is not UTF-8 */
        }
        i++;
        run = i;
    }
    put(b, p + run, n - run);
}

static void put_jstr(struct buf *b, const char *s)
{
    if (!s) {
        put(b, "null", 4);
        return;
    }
    put(b, "\"", 1);
    logs_json_escape(b, s, strlen(s));
    put(b, "\"", 1);
}

/* --- queue to the follower ---------------------------------------------------------------- */

static void cinfo_release(struct cinfo *c)
{
    FREE_AND_NULL(c->id);
    FREE_AND_NULL(c->name);
    FREE_AND_NULL(c->stack);
    FREE_AND_NULL(c->service);
}

static void post(struct logs *l, struct lmsg *m)
{
    pthread_mutex_lock(&l->mu);
    *l->qtail = m;
    l->qtail = &m->next;
    pthread_mutex_unlock(&l->mu);
    curl_multi_wakeup(l->multi);
}

static void free_call(struct call *c)
{
    for (size_t i = 0; i < c->nids; i++)
        free(c->ids[i]);
    free(c->ids);
    free(c);
}

static void free_msg(struct lmsg *m)
{
    cinfo_release(&m->ci);
    if (m->call)
        free_call(m->call);
    json_decref(m->error);
    json_decref(m->result);
    free(m);
}

static void on_reply(void *cbarg, const json_t *error, const json_t *result)
{
    struct call *c = cbarg;
    struct lmsg *m = xcalloc(1, sizeof(*m));

    m->kind = M_REPLY;
    m->call = c;
    m->error = error ? json_deep_copy(error) : NULL;
    m->result = result ? json_deep_copy(result) : NULL;
    if (error && !m->error)
        m->error = json_object(); /* still an error */
    post(c->l, m);
}

void logs_link(struct logs *l, int up)
{
    struct lmsg *m;

    if (!l)
        return;
    m = xcalloc(1, sizeof(*m));
    m->kind = M_LINK;
    m->up = up;
    post(l, m);
}

/* --- batches ------------------------------------------------------------------------------- */

static void batch_free(struct batch *b)
{
    if (!b)
        return;
    buf_release(&b->text);
    free(b);
}

static void drop_batches(struct logs *l)
{
    batch_free(l->cur);
    l->cur = NULL;
    for (struct batch *b = l->ready, *n; b; b = n) {
        n = b->next;
        batch_free(b);
    }
    l->ready = NULL;
    l->ready_tail = &l->ready;
    l->nready = 0;
}

static void send_batch(struct logs *l, struct batch *b)
{
    struct call *c = xcalloc(1, sizeof(*c));

    put(&b->text, "]}]", 3);
    c->l = l;
    c->kind = CALL_BATCH;
    c->gen = l->gen;
    c->items = b->items;
    l->inflight++;
    INC(batches_sent, 1);
    INC(lines_sent, b->items);
    l->tr.call(l->tr.arg, "/containers/log_batch", b->text.ptr, b->text.len, on_reply, c);
    batch_free(b);
}

static void seal(struct logs *l)
{
    if (!l->cur)
        return;
    l->cur->next = NULL;
    *l->ready_tail = l->cur;
    l->ready_tail = &l->cur->next;
    l->nready++;
    l->cur = NULL;
}

/* Hand sealed batches to the transport while slots are free; a partial batch goes too when
 * nothing is out and it has waited FIRST_LINGER_MS (or has FIRST_ITEMS lines), or when it has
 * waited LINGER_MS: a line waits at most a few ms, and a busy node sends batches of hundreds
 * of lines, not one WebSocket message per Docker read. */
static void pump(struct logs *l, int64_t now)
{
    while (l->ready && l->inflight < l->max_inflight) {
        struct batch *b = l->ready;
        l->ready = b->next;
        if (!l->ready)
            l->ready_tail = &l->ready;
        l->nready--;
        send_batch(l, b);
    }
    if (l->cur && !l->ready && l->linked &&
        (l->inflight == 0 ? now - l->cur->first_ms >= FIRST_LINGER_MS || l->cur->items >= FIRST_ITEMS
                          : l->inflight < l->max_inflight && now - l->cur->first_ms >= LINGER_MS)) {
        struct batch *b = l->cur;
        l->cur = NULL;
        send_batch(l, b);
    }
}

static struct batch *batch_for(struct logs *l, size_t worst)
{
    if (l->cur && (l->cur->items >= l->batch_items ||
                   l->cur->text.len + worst + 3 > l->batch_bytes)) {
        seal(l);
        pump(l, time_mono_ms());
    }
    if (!l->cur) {
        l->cur = xcalloc(1, sizeof(*l->cur));
        buf_init(&l->cur->text, 0);
        put(&l->cur->text, "[{\"items\":[", 11);
        l->cur->first_ms = time_mono_ms();
    }
    return l->cur;
}

/* --- following ----------------------------------------------------------------------------- */

static void make_prefix(struct logs *l, struct lc *c)
{
    struct buf b = BUF_INIT;
    char num[32];

    put(&b, "{\"id\":", 6);
    put_jstr(&b, c->ci.id);
    put(&b, ",\"name\":", 8);
    put_jstr(&b, c->ci.name);
    put(&b, ",\"node\":", 8);
    put(&b, l->node_json, strlen(l->node_json));
    put(&b, ",\"stack\":", 9);
    put_jstr(&b, c->ci.stack ? c->ci.stack : "null");
    put(&b, ",\"service\":", 11);
    put_jstr(&b, c->ci.service);
    put(&b, ",\"instance\":", 12);
    if (c->ci.instance >= 0)
        snprintf(num, sizeof(num), "%ld", c->ci.instance);
    else
        snprintf(num, sizeof(num), "null");
    put(&b, num, strlen(num));
    put(&b, ",\"time\":\"", 9);
    free(c->prefix);
    c->prefix_len = b.len;
    c->prefix = buf_take(&b);
}

/* RFC 3339 with nanoseconds, as Docker writes it. */
static void format_ns(int64_t ns, char *out, size_t len)
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    char base[32];

    gmtime_r(&secs, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%09lldZ", base, (long long)(ns % 1000000000));
}

static int on_line(void *arg, const struct docker_log_line *ln)
{
    struct lc *c = arg;
    struct logs *l = c->l;
    struct batch *b;
    char tbuf[48];
    const char *t = ln->time;
    int64_t tns = ln->time_ns;

    INC(lines_read, 1);
    if (!t || !*t || !tns) { /* no timestamp from Docker (never expected): ours */
        tns = time_now_us() * 1000;
        t = NULL;
    }
    if (tns <= c->bump_ns) {
        /* Docker stamps stdout and stderr in two goroutines, so the log file is not
         * always in time order across the two streams: the times we send are made
         * strictly increasing per container, or the master's "time <= cursor" rule would
         * drop the later-written line. A follow from a cursor starts REPLAY_NS earlier and
         * computes the same times again, so what is at or before the cursor is known
         * exactly even around such a line (docs/internals/agent-logs.md) */
        tns = c->bump_ns + 1;
        t = NULL;
    }
    c->bump_ns = tns;
    if (tns <= c->skip_ns) {
        INC(lines_skipped, 1);
        return 0;
    }
    if (!t || !*t) {
        format_ns(tns, tbuf, sizeof(tbuf));
        t = tbuf;
    }
    if (ln->partial && ln->len >= l->max_line)
        INC(lines_cut, 1);
    b = batch_for(l, c->prefix_len + strlen(t) + ITEM_OVERHEAD + ln->len * 6);
    if (b->items)
        put(&b->text, ",", 1);
    put(&b->text, c->prefix, c->prefix_len);
    logs_json_escape(&b->text, t, strlen(t));
    if (ln->stream == DOCKER_STDERR)
        put(&b->text, "\",\"type\":\"stderr\",\"data\":\"", 26);
    else
        put(&b->text, "\",\"type\":\"stdout\",\"data\":\"", 26);
    logs_json_escape(&b->text, ln->text, ln->len);
    put(&b->text, "\"}", 2);
    b->items++;
    c->cursor_ns = tns;
    INC(queued, 1);
    return 0;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *u)
{
    struct lc *c = u;
    struct logs *l = c->l;
    size_t n = sz * nm;
    struct err e = ERR_INIT;

    if (!c->http)
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->http);
    if (c->http / 100 != 2) {
        if (buf_append(&c->errbody, p, n) != ST_OK)
            return 0;
        return n;
    }
    if (l->ready && l->inflight >= l->max_inflight) {
        /* a full batch waits for a slot: leave the rest in Docker's log file for now */
        if (!c->paused) {
            c->paused = 1;
            l->npaused++;
            INC(pauses, 1);
        }
        return CURL_WRITEFUNC_PAUSE;
    }
    INC(bytes_read, n);
    if (docker_demux_feed(&c->dx, p, n, &e) != ST_OK) {
        log_warn("container=%s msg=\"log stream unreadable: %s\"", c->ci.name, e.msg);
        return 0;
    }
    return n;
}

static void since_text(int64_t ns, char *out, size_t len)
{
    if (ns <= 0)
        snprintf(out, len, "0");
    else
        snprintf(out, len, "%lld.%09lld", (long long)(ns / 1000000000),
                 (long long)(ns % 1000000000));
}

static void follow(struct logs *l, struct lc *c)
{
    char since[48], tail[32], *url;
    CURL *h;

    c->bump_ns = 0;
    if (c->have_cursor && c->cursor_ns > 0) {
        since_text(c->cursor_ns - REPLAY_NS, since, sizeof(since));
        snprintf(tail, sizeof(tail), "all");
        c->skip_ns = c->cursor_ns;
    } else {
        since_text(c->ci.run_since_ns, since, sizeof(since));
        /* history (a run older than the link) is bounded; a run we saw start is read whole */
        if (c->ci.started_ns && c->ci.started_ns + 2000000000LL >= l->link_ns)
            snprintf(tail, sizeof(tail), "all");
        else
            snprintf(tail, sizeof(tail), "%ld", l->tail);
        c->skip_ns = 0;
    }
    h = curl_easy_init();
    BUG_ON(!h);
    url = xasprintf("http://localhost/v" DOCKER_API_VERSION "/containers/%s/logs?stdout=1&stderr=1"
                    "&timestamps=1&follow=1&tail=%s&since=%s",
                    c->ci.id, tail, since);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, l->socket);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    c->h = h;
    c->run_ns = c->ci.started_ns;
    c->http = 0;
    c->paused = 0;
    c->reattach = 0;
    c->retry_at = 0;
    buf_init(&c->errbody, 1024);
    docker_demux_init(&c->dx, c->ci.tty, 1, l->max_line, on_line, c);
    if (!c->prefix)
        make_prefix(l, c);
    c->st = LC_FOLLOWING;
    curl_multi_add_handle(l->multi, h);
    INC(follows_started, 1);
    INC(followed, 1);
    log_debug("container=%s msg=\"following its logs since %s (tail %s)\"", c->ci.name, since,
              tail);
}

/* End the follow in progress (if any) without delivering what is half-read. */
static void unfollow(struct logs *l, struct lc *c)
{
    if (!c->h)
        return;
    curl_multi_remove_handle(l->multi, c->h);
    curl_easy_cleanup(c->h);
    c->h = NULL;
    if (c->paused)
        l->npaused--;
    c->paused = 0;
    docker_demux_release(&c->dx);
    buf_release(&c->errbody);
    INC(followed, -1);
    c->st = LC_IDLE;
}

/* Start following c if it runs or has a run not read to its end on this link (a short-lived
 * container may be gone before we look): with a cursor known on this link at once, else
 * after asking the master. */
static void want(struct logs *l, struct lc *c)
{
    if (!l->linked || c->st != LC_IDLE || (!c->ci.running && c->ci.started_ns == c->done_ns))
        return;
    if (c->retry_at)
        return;
    if (c->have_cursor)
        follow(l, c);
    else
        c->st = LC_WANT_CURSOR;
}

static struct lc *find(struct logs *l, const char *id)
{
    for (struct lc *c = l->cs; c; c = c->next)
        if (!strcmp(c->ci.id, id))
            return c;
    return NULL;
}

static void lc_free(struct logs *l, struct lc *c)
{
    unfollow(l, c);
    cinfo_release(&c->ci);
    free(c->prefix);
    free(c);
}

static void transfer_done(struct logs *l, CURL *h, CURLcode res)
{
    struct lc *c = NULL;
    long http = 0;

    curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
    if (!c)
        return;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    if (res == CURLE_OK && http / 100 == 2) {
        docker_demux_finish(&c->dx); /* a last line without its newline */
        log_debug("container=%s msg=\"log stream ended\"", c->ci.name);
        c->done_ns = c->run_ns;
        if (!c->reattach)
            c->ci.running = 0;
    } else if (http == 404) {
        c->ci.running = 0;
        c->done_ns = c->ci.started_ns;
    } else {
        INC(follow_errors, 1);
        if (l->warn_at <= time_mono_ms()) {
            log_warn("container=%s msg=\"cannot follow its logs: %s\"", c->ci.name,
                     http ? (c->errbody.ptr ? c->errbody.ptr : "error reply")
                          : curl_easy_strerror(res));
            l->warn_at = time_mono_ms() + 10000;
        }
        c->retry_at = time_mono_ms() + RETRY_MS;
    }
    unfollow(l, c);
    want(l, c);
}

/* --- messages ----------------------------------------------------------------------------- */

/* Forget everything unacknowledged and start over from the master's cursors. */
static void restart_link(struct logs *l, int up)
{
    l->gen++;
    l->inflight = 0;
    l->cursor_call = 0;
    drop_batches(l);
    atomic_store(&l->n.queued, 0);
    for (struct lc *c = l->cs; c; c = c->next) {
        unfollow(l, c);
        c->st = LC_IDLE;
        c->have_cursor = 0;
        c->cursor_ns = 0;
        c->retry_at = 0;
        c->done_ns = -1;
    }
    l->linked = up;
    l->link_ns = time_now_us() * 1000;
    if (up)
        for (struct lc *c = l->cs; c; c = c->next)
            want(l, c);
}

static void on_info(struct logs *l, struct cinfo *ci)
{
    struct lc *c = find(l, ci->id);

    if (!c) {
        c = xcalloc(1, sizeof(*c));
        c->l = l;
        c->done_ns = -1;
        c->next = l->cs;
        l->cs = c;
    } else if (c->st == LC_FOLLOWING && ci->running && ci->started_ns != c->ci.started_ns) {
        c->reattach = 1; /* a new run: follow again once the old stream has drained */
    }
    cinfo_release(&c->ci);
    c->ci = *ci;
    memset(ci, 0, sizeof(*ci));
    FREE_AND_NULL(c->prefix); /* names may have changed */
    if (c->h)
        make_prefix(l, c);
    if (c->st == LC_IDLE)
        c->retry_at = 0;
    want(l, c);
}

static void on_destroy(struct logs *l, const char *id)
{
    for (struct lc **pp = &l->cs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ci.id, id) != 0)
            continue;
        struct lc *c = *pp;
        *pp = c->next;
        lc_free(l, c);
        return;
    }
}

/* A full list of the node's containers: forget idle ones that are gone (a destroy event
 * missed while the events stream was down), so the table cannot grow without bound. */
static void on_listed(struct logs *l, const json_t *ids)
{
    for (struct lc **pp = &l->cs; *pp;) {
        struct lc *c = *pp;
        int found = 0;
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v) if (!strcmp(json_string_value(v) ? json_string_value(v) : "",
                                                  c->ci.id)) found = 1;
        if (found || c->st != LC_IDLE) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        lc_free(l, c);
    }
}

static void on_batch_reply(struct logs *l, struct lmsg *m)
{
    struct call *c = m->call;

    if (c->gen != l->gen)
        return;
    l->inflight--;
    if (m->error) {
        char *t = json_dumps(m->error, JSON_COMPACT);
        INC(batches_failed, 1);
        /* 503: the connection closed under it (the link-down message follows) */
        LOG_AT(json_integer_value(json_object_get(m->error, "code")) == 503 ? LOG_DEBUG : LOG_WARN,"msg=\"the master refused a batch of %zu log lines: %s: following again from "
                 "its cursors\"",
                 c->items, t ? t : "?");
        free(t);
        /* lines may be missing in the master: start over from what it has stored */
        restart_link(l, 1);
        l->cursor_retry_at = time_mono_ms() + RETRY_MS;
        return;
    }
    INC(batches_acked, 1);
    INC(lines_acked, c->items);
    INC(queued, -(long long)c->items);
}

static void on_cursor_reply(struct logs *l, struct lmsg *m)
{
    struct call *c = m->call;
    json_t *cursors = json_object_get(m->result, "cursors");

    if (c->gen != l->gen)
        return;
    l->cursor_call = 0;
    if (m->error) {
        char *t = json_dumps(m->error, JSON_COMPACT);
        l->cursor_delay_ms = l->cursor_delay_ms ? l->cursor_delay_ms * 2 : RETRY_MS;
        if (l->cursor_delay_ms > CURSOR_MAX_DELAY_MS)
            l->cursor_delay_ms = CURSOR_MAX_DELAY_MS;
        log_warn("msg=\"cannot get log cursors from the master: %s: asking again in %d ms\"",
                 t ? t : "?", l->cursor_delay_ms);
        free(t);
        l->cursor_retry_at = time_mono_ms() + l->cursor_delay_ms;
    } else {
        l->cursor_delay_ms = 0;
    }
    for (size_t i = 0; i < c->nids; i++) {
        struct lc *x = find(l, c->ids[i]);
        const char *cur;
        if (!x || x->st != LC_ASKED)
            continue;
        x->st = LC_IDLE;
        if (m->error) {
            x->st = LC_WANT_CURSOR;
            continue;
        }
        cur = json_string_value(json_object_get(cursors, c->ids[i]));
        x->have_cursor = 1;
        if (cur) {
            int64_t ns = docker_parse_time_ns(cur, strlen(cur));
            if (ns > x->cursor_ns)
                x->cursor_ns = ns;
        }
        want(l, x);
    }
}

static void ask_cursors(struct logs *l, int64_t now)
{
    struct call *c;
    struct buf b = BUF_INIT;

    if (!l->linked || l->cursor_call || now < l->cursor_retry_at)
        return;
    c = xcalloc(1, sizeof(*c));
    c->ids = xcalloc(CURSOR_IDS, sizeof(*c->ids));
    for (struct lc *x = l->cs; x && c->nids < CURSOR_IDS; x = x->next) {
        if (x->st != LC_WANT_CURSOR)
            continue;
        x->st = LC_ASKED;
        c->ids[c->nids++] = xstrdup(x->ci.id);
    }
    if (!c->nids) {
        free_call(c);
        return;
    }
    c->l = l;
    c->kind = CALL_CURSOR;
    c->gen = l->gen;
    put(&b, "[[", 2);
    for (size_t i = 0; i < c->nids; i++) {
        if (i)
            put(&b, ",", 1);
        put_jstr(&b, c->ids[i]);
    }
    put(&b, "]]", 2);
    l->cursor_call = 1;
    l->tr.call(l->tr.arg, "/containers/log_cursor", b.ptr, b.len, on_reply, c);
    buf_release(&b);
}

/* Returns 1 when asked to stop. */
static int drain(struct logs *l)
{
    struct lmsg *q;
    int stop;

    pthread_mutex_lock(&l->mu);
    q = l->q;
    l->q = NULL;
    l->qtail = &l->q;
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    for (struct lmsg *n; q; q = n) {
        n = q->next;
        switch (q->kind) {
        case M_LINK:
            if (q->up)
                INC(links, 1);
            l->cursor_delay_ms = 0; /* a new connection (maybe a new master): ask at once */
            l->cursor_retry_at = 0;
            restart_link(l, q->up);
            break;
        case M_INFO:
            on_info(l, &q->ci);
            break;
        case M_DESTROY:
            on_destroy(l, q->ci.id);
            break;
        case M_LISTED:
            on_listed(l, q->result);
            break;
        case M_REPLY:
            if (q->call->kind == CALL_BATCH)
                on_batch_reply(l, q);
            else
                on_cursor_reply(l, q);
            break;
        }
        free_msg(q);
    }
    return stop;
}

static void unpause(struct logs *l)
{
    if (!l->npaused || l->ready)
        return;
    for (struct lc *c = l->cs; c && !l->ready; c = c->next) {
        if (!c->paused)
            continue;
        c->paused = 0;
        l->npaused--;
        curl_easy_pause(c->h, CURLPAUSE_CONT); /* may call on_data (and pause again) */
    }
}

static void *follower_main(void *arg)
{
    struct logs *l = arg;

    for (;;) {
        int running = 0, left, timeout = 1000;
        int64_t now;
        CURLMsg *cm;

        if (drain(l))
            break;
        now = time_mono_ms();
        for (struct lc *c = l->cs; c; c = c->next)
            if (c->st == LC_IDLE && c->retry_at && now >= c->retry_at) {
                c->retry_at = 0;
                want(l, c);
            }
        ask_cursors(l, now);
        pump(l, now);
        unpause(l);
        curl_multi_perform(l->multi, &running);
        while ((cm = curl_multi_info_read(l->multi, &left)))
            if (cm->msg == CURLMSG_DONE)
                transfer_done(l, cm->easy_handle, cm->data.result);
        now = time_mono_ms();
        pump(l, now);
        if (l->cur && l->linked) {
            int64_t due = l->cur->first_ms + (l->inflight ? LINGER_MS : FIRST_LINGER_MS) - now;
            timeout = due > 0 ? (int)due : 1;
        }
        else if (l->cursor_retry_at > now)
            timeout = (int)(l->cursor_retry_at - now) < timeout ? (int)(l->cursor_retry_at - now)
                                                                 : timeout;
        for (struct lc *c = l->cs; c; c = c->next)
            if (c->retry_at && c->retry_at - now < timeout)
                timeout = c->retry_at > now ? (int)(c->retry_at - now) : 0;
        curl_multi_poll(l->multi, NULL, 0, timeout, NULL);
    }
    return NULL;
}

/* --- watcher ------------------------------------------------------------------------------- */

static int watcher_stopping(struct logs *l)
{
    int s;

    pthread_mutex_lock(&l->mu);
    s = l->stop;
    pthread_mutex_unlock(&l->mu);
    return s;
}

static void watcher_sleep(struct logs *l, int ms)
{
    struct timespec ts = time_deadline(CLOCK_MONOTONIC, ms);

    pthread_mutex_lock(&l->mu);
    while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &ts) == 0)
        ;
    pthread_mutex_unlock(&l->mu);
}

static const char *sget(const json_t *o, const char *k, const char *def)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : def;
}

/* Inspect one container and tell the follower (nothing when it is not ours or gone). */
static void learn(struct logs *l, const char *id)
{
    json_t *j = NULL, *labels;
    struct err e = ERR_INIT;
    struct lmsg *m;
    const char *inst, *name, *started;
    int ours;

    if (docker_container_inspect(l->dapi, id, &j, &e) != ST_OK) {
        if (e.st != ST_NOTFOUND)
            log_warn("msg=\"%s\"", e.msg);
        return;
    }
    labels = json_object_get(json_object_get(j, "Config"), "Labels");
    if (strcmp(sget(labels, "io.kontena.node", ""), l->node) != 0)
        goto out;
    pthread_mutex_lock(&l->mu);
    ours = l->grid && !strcmp(sget(labels, "io.kontena.grid", ""), l->grid);
    pthread_mutex_unlock(&l->mu);
    if (!ours)
        goto out;
    m = xcalloc(1, sizeof(*m));
    m->kind = M_INFO;
    m->ci.id = xstrdup(sget(j, "Id", id));
    name = sget(labels, "io.kontena.container.name", NULL);
    if (!name) {
        name = sget(j, "Name", id);
        if (*name == '/')
            name++;
    }
    m->ci.name = xstrdup(name);
    if (sget(labels, "io.kontena.stack", NULL))
        m->ci.stack = xstrdup(sget(labels, "io.kontena.stack", NULL));
    if (sget(labels, "io.kontena.service", NULL))
        m->ci.service = xstrdup(sget(labels, "io.kontena.service", NULL));
    inst = sget(labels, "io.kontena.instance", NULL);
    m->ci.instance = inst && *inst ? strtol(inst, NULL, 10) : -1;
    m->ci.tty = json_is_true(json_object_get(json_object_get(j, "Config"), "Tty"));
    m->ci.running = json_is_true(json_object_get(json_object_get(j, "State"), "Running"));
    started = sget(json_object_get(j, "State"), "StartedAt", "");
    m->ci.started_ns = docker_parse_time_ns(started, strlen(started));
    if (m->ci.started_ns < 0)
        m->ci.started_ns = 0;
    /* The first lines of a run can carry times before StartedAt (Docker records it after
     * the process has started): a run's lines start a second before it, or at the end of
     * the previous run if that is later. */
    m->ci.run_since_ns = m->ci.started_ns > 1000000000 ? m->ci.started_ns - 1000000000 : 0;
    if (m->ci.running) {
        const char *fin = sget(json_object_get(j, "State"), "FinishedAt", "");
        int64_t f = docker_parse_time_ns(fin, strlen(fin));
        if (f > m->ci.run_since_ns && f < m->ci.started_ns)
            m->ci.run_since_ns = f;
    }
    post(l, m);
out:
    json_decref(j);
}

static int on_event(void *arg, const struct docker_event *ev)
{
    struct logs *l = arg;

    if (!ev->id || !ev->action || strcmp(ev->type ? ev->type : "", "container") != 0)
        return 0;
    if (!strcmp(ev->action, "start") || !strcmp(ev->action, "die")) {
        /* die too: a run so short that the start's inspect raced with it is seen again,
         * with its final state (a run not read to its end is followed then) */
        learn(l, ev->id);
    } else if (!strcmp(ev->action, "destroy")) {
        struct lmsg *m = xcalloc(1, sizeof(*m));
        m->kind = M_DESTROY;
        m->ci.id = xstrdup(ev->id);
        post(l, m);
    }
    return watcher_stopping(l) || l->grid_changed;
}

void logs_set_grid(struct logs *l, const char *grid)
{
    if (!l || !grid)
        return;
    pthread_mutex_lock(&l->mu);
    if (!l->grid || strcmp(l->grid, grid) != 0) {
        free(l->grid);
        l->grid = xstrdup(grid);
        l->grid_changed = 1;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    if (l->dev)
        docker_cancel(l->dev); /* an events stream with the old filter ends */
}

/* The grid label, once known ("" when stopping); fresh memory. */
static char *wait_grid(struct logs *l)
{
    char *g;

    pthread_mutex_lock(&l->mu);
    while (!l->stop && !l->grid)
        pthread_cond_wait(&l->cond, &l->mu);
    g = xasprintf("io.kontena.grid=%s", l->stop ? "" : l->grid);
    l->grid_changed = 0;
    pthread_mutex_unlock(&l->mu);
    return g;
}

static void *watcher_main(void *arg)
{
    struct logs *l = arg;
    char *label = xasprintf("io.kontena.node=%s", l->node);

    while (!watcher_stopping(l)) {
        json_t *list = NULL, *c, *filters;
        struct err e = ERR_INIT;
        size_t i;
        int64_t since = time(NULL) - 1;
        char *glabel = wait_grid(l);
        const char *labels[] = {label, glabel, NULL};

        if (watcher_stopping(l)) {
            free(glabel);
            break;
        }
        filters = json_pack("{s:[s], s:[s, s], s:[s, s, s]}", "type", "container", "label", label,
                            glabel, "event", "start", "die", "destroy");

        /* all: a stopped container may still have lines the master has not stored */
        if (docker_container_list(l->dapi, labels, 1, &list, &e) != ST_OK) {
            log_warn("msg=\"cannot list containers to follow their logs: %s\"", e.msg);
            watcher_sleep(l, RETRY_MS);
            json_decref(filters);
            free(glabel);
            continue;
        }
        json_t *ids = json_array();
        json_array_foreach(list, i, c) {
            learn(l, sget(c, "Id", ""));
            json_array_append_new(ids, json_string(sget(c, "Id", "")));
        }
        json_decref(list);
        struct lmsg *lm = xcalloc(1, sizeof(*lm));
        lm->kind = M_LISTED;
        lm->result = ids; /* built on this thread, only read on the follower's */
        post(l, lm);
        /* events since just before the list: nothing started in between is missed; until
         * RESYNC_S from now, then list again */
        if (docker_events(l->dev, filters, since, time(NULL) + RESYNC_S, NULL, on_event, l, &e) !=
            ST_OK) {
            log_warn("msg=\"cannot follow Docker's events for logs: %s\"", e.msg);
            watcher_sleep(l, RETRY_MS);
        }
        json_decref(filters);
        free(glabel);
    }
    free(label);
    return NULL;
}

/* --- lifetime ------------------------------------------------------------------------------ */

struct logs *logs_start(const struct logs_opts *o, struct err *e)
{
    struct logs *l = xcalloc(1, sizeof(*l));
    struct docker_opts dopts;
    struct buf nj = BUF_INIT;

    BUG_ON(!o->node || !o->transport.call);
    l->socket = xstrdup(o->docker_socket ? o->docker_socket : DOCKER_DEFAULT_SOCKET);
    l->node = xstrdup(o->node);
    l->grid = o->grid ? xstrdup(o->grid) : NULL;
    put_jstr(&nj, o->node);
    l->node_json = buf_take(&nj);
    l->tr = o->transport;
    l->batch_items = o->batch_items ? o->batch_items : DEF_ITEMS;
    l->batch_bytes = o->batch_bytes ? o->batch_bytes : DEF_BYTES;
    l->max_inflight = o->inflight ? o->inflight : DEF_INFLIGHT;
    l->max_line = o->max_line ? o->max_line : DEF_MAX_LINE;
    l->tail = o->tail > 0 ? o->tail : DEF_TAIL;
    if (l->batch_bytes < l->max_line * 6 + 4096)
        l->batch_bytes = l->max_line * 6 + 4096; /* one worst-case line must fit */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->qtail = &l->q;
    l->ready_tail = &l->ready;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    l->multi = curl_multi_init();
    memset(&dopts, 0, sizeof(dopts));
    dopts.socket_path = l->socket;
    l->dev = docker_create(&dopts, e);
    l->dapi = l->dev ? docker_create(&dopts, e) : NULL;
    if (!l->multi || !l->dev || !l->dapi) {
        if (!l->multi)
            err_set(e, ST_IO, "cannot set up the log follower (curl multi)");
        goto fail;
    }
    if (pthread_create(&l->follower, NULL, follower_main, l) != 0) {
        err_set(e, ST_IO, "cannot start the log follower thread");
        goto fail;
    }
    l->started_f = 1;
    if (pthread_create(&l->watcher, NULL, watcher_main, l) != 0) {
        err_set(e, ST_IO, "cannot start the container watcher thread");
        logs_stop(l);
        logs_free(l);
        return NULL;
    }
    l->started_w = 1;
    return l;
fail:
    logs_free(l);
    return NULL;
}

void logs_stop(struct logs *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (l->multi)
        curl_multi_wakeup(l->multi);
    if (l->dev)
        docker_cancel(l->dev);
    if (l->started_f)
        pthread_join(l->follower, NULL);
    if (l->started_w)
        pthread_join(l->watcher, NULL);
    l->started_f = l->started_w = 0;
}

void logs_free(struct logs *l)
{
    if (!l)
        return;
    for (struct lc *c = l->cs, *n; c; c = n) {
        n = c->next;
        lc_free(l, c);
    }
    l->cs = NULL;
    drop_batches(l);
    for (struct lmsg *m = l->q, *n; m; m = n) {
        n = m->next;
        free_msg(m);
    }
    if (l->multi)
        curl_multi_cleanup(l->multi);
    docker_destroy(l->dev);
    docker_destroy(l->dapi);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free(l->socket);
    free(l->node);
    free(l->grid);
    free(l->node_json);
    free(l);
}

void logs_counters(struct logs *l, struct logs_counters *o)
{
    memset(o, 0, sizeof(*o));
    if (!l)
        return;
#define GET(f) atomic_load_explicit(&l->n.f, memory_order_relaxed)
    o->lines_read = GET(lines_read);
    o->lines_skipped = GET(lines_skipped);
    o->lines_sent = GET(lines_sent);
    o->lines_acked = GET(lines_acked);
    o->lines_cut = GET(lines_cut);
    o->batches_sent = GET(batches_sent);
    o->batches_acked = GET(batches_acked);
    o->batches_failed = GET(batches_failed);
    o->bytes_read = GET(bytes_read);
    o->links = GET(links);
    o->pauses = GET(pauses);
    o->follows_started = GET(follows_started);
    o->follow_errors = GET(follow_errors);
    o->queued_lines = GET(queued);
    o->followed = GET(followed);
#undef GET
}
