/* apiserver/logs.c -- the container log routes (master-api.md §2.12, contract of issue 8):
 * queries and follow streams over the log window (logstore.h).
 *
 * A follow stream is a chunked response whose reader pulls from the store at the client's
 * pace: each connection holds at most FOLLOW_BUF bytes of not-yet-sent entries, whatever
 * the backlog, and keeps its position as an entry id. When no entry is ready the reader
 * parks the connection (MHD_suspend_connection) in the hub's list under the hub's mutex;
 * an append to the grid resumes its parked followers, and a ticker resumes every follower
 * idle for KEEPALIVE_MS so it writes the " " keep-alive (which is also how a gone client is
 * noticed: MHD does not watch a suspended socket). A follower whose position fell out of the
 * window gets {"dropped": N, "reason": "older than the log window"} and goes on at the oldest
 * entry. docs/internals/logs.md.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/logstore.h"
#include "apiserver/scope.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 10000
#define FOLLOW_BATCH 300
#define FOLLOW_BUF (64 * 1024)
#define FOLLOW_SCAN 20000 /* lines examined per read: a rare filter never stalls an MHD thread */
#define QUERY_MAX_BYTES (32u << 20)
#define KEEPALIVE_MS 500
#define TICK_MS 100
#define LIST_MAX 100

struct follower {
    struct follower *next; /* in the hub's parked list */
    struct api *api;
    struct MHD_Connection *conn;
    char *grid;
    struct log_filter f;
    char **lists[4]; /* owned storage behind f's lists */
    char *q;
    char since[LOGSTORE_TIME_LEN + 1];
    int64_t next_id;
    struct buf out; /* entries read, not yet handed to MHD */
    int64_t last_out_ms;
    int parked;
};

struct follow_hub {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct follower *parked;
    int shutting, stop;
    pthread_t ticker;
    int ticker_started;
};

/* --- hub ------------------------------------------------------------------------------------ */

/* Resume parked followers of grid (all when NULL) idle for at least idle_ms. Under hub->mu. */
static void resume_locked(struct follow_hub *h, const char *grid, int64_t idle_ms)
{
    int64_t now = time_mono_ms();

    for (struct follower **pp = &h->parked; *pp;) {
        struct follower *f = *pp;
        if ((!grid || !strcmp(f->grid, grid)) && now - f->last_out_ms >= idle_ms) {
            *pp = f->next;
            f->next = NULL;
            f->parked = 0;
            MHD_resume_connection(f->conn);
        } else {
            pp = &f->next;
        }
    }
}

static void on_append(void *arg, const char *grid)
{
    struct api *a = arg;
    struct follow_hub *h = a->hub;

    pthread_mutex_lock(&h->mu);
    resume_locked(h, grid, 0);
    pthread_mutex_unlock(&h->mu);
}

static void *ticker_main(void *arg)
{
    struct follow_hub *h = arg;

    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts = time_deadline(CLOCK_REALTIME, TICK_MS);
        pthread_cond_timedwait(&h->cond, &h->mu, &ts);
        resume_locked(h, NULL, KEEPALIVE_MS);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

void logs_hub_start(struct api *a)
{
    struct follow_hub *h = xcalloc(1, sizeof(*h));

    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cond, NULL);
    a->hub = h;
    if (pthread_create(&h->ticker, NULL, ticker_main, h) == 0)
        h->ticker_started = 1;
    if (a->logs)
        logstore_set_notify(a->logs, on_append, a);
}

void logs_hub_shutdown(struct api *a)
{
    struct follow_hub *h = a->hub;

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->shutting = 1;
    resume_locked(h, NULL, 0);
    pthread_mutex_unlock(&h->mu);
}

void logs_hub_free(struct api *a)
{
    struct follow_hub *h = a->hub;

    if (!h)
        return;
    if (a->logs)
        logstore_set_notify(a->logs, NULL, NULL);
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    if (h->ticker_started)
        pthread_join(h->ticker, NULL);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
    a->hub = NULL;
}

/* --- parameters ----------------------------------------------------------------------------- */

/* "a,b,c" → fresh NULL-terminated list (NULL when s is NULL or empty); each element made
 * by fmt with prefix (may be NULL). -1 when over LIST_MAX elements. */
static int split_list(const char *s, const char *prefix, char ***out)
{
    char **l;
    size_t n = 0;
    const char *p = s;

    *out = NULL;
    if (!s || !*s)
        return 0;
    l = xcalloc(LIST_MAX + 1, sizeof(*l));
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len) {
            if (n == LIST_MAX) {
                for (size_t i = 0; i < n; i++)
                    free(l[i]);
                free(l);
                return -1;
            }
            l[n++] = prefix ? xasprintf("%s/%.*s", prefix, (int)len, p)
                            : xstrndup(p, len);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        free(l);
        return 0;
    }
    *out = l;
    return 0;
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        free(l[i]);
    free(l);
}

/* Bare service names mean the stack-less "null" stack (as the original's grid route). */
static void qualify_services(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        if (!strchr(l[i], '/')) {
            char *q = xasprintf("null/%s", l[i]);
            free(l[i]);
            l[i] = q;
        }
}

struct query {
    char *grid;
    struct log_filter f;
    char **lists[4]; /* containers, nodes, stacks, services */
    char since[LOGSTORE_TIME_LEN + 1];
    long limit;
    int64_t from; /* -1: none */
    int follow;
};

static void query_release(struct query *q)
{
    for (int i = 0; i < 4; i++)
        free_list(q->lists[i]);
    free(q->grid);
}

static int parse_common(struct req *r, struct query *q)
{
    const char *lim = req_query(r, "limit"), *from = req_query(r, "from"),
               *since = req_query(r, "since"), *follow = req_query(r, "follow"),
               *search = req_query(r, "q");
    char *end;

    q->limit = LIMIT_DEFAULT;
    q->from = -1;
    q->f.instance = -1;
    if (lim && *lim) {
        long v = strtol(lim, &end, 10);
        if (*end) {
            reply_invalid(r, "limit", "must be a number");
            return 0;
        }
        q->limit = v <= 0 ? LIMIT_DEFAULT : v > LIMIT_MAX ? LIMIT_MAX : v;
    }
    if (from && *from) {
        long long v = strtoll(from, &end, 10);
        if (*end || v < 0) {
            reply_invalid(r, "from", "must be the id of a log entry");
            return 0;
        }
        q->from = v;
    }
    if (since && *since && q->from < 0) {
        int64_t ns = logstore_time_parse(since);
        if (ns < 0) {
            reply_invalid(r, "since", "must be an RFC 3339 time or Unix seconds");
            return 0;
        }
        logstore_time_format(ns, q->since);
        q->f.since = q->since;
    }
    q->follow = follow != NULL && strcmp(follow, "false") != 0 && strcmp(follow, "0") != 0;
    if (search && *search) {
        if (strlen(search) > 1024) {
            reply_invalid(r, "q", "must be at most 1024 characters");
            return 0;
        }
        q->f.q = search;
    }
    return 1;
}

static int parse_lists(struct req *r, struct query *q, const char *containers, const char *nodes,
                       const char *stacks, const char *services, const char *svc_prefix)
{
    if (split_list(containers, NULL, &q->lists[0]) || split_list(nodes, NULL, &q->lists[1]) ||
        split_list(stacks, NULL, &q->lists[2]) ||
        split_list(services, svc_prefix, &q->lists[3])) {
        reply_invalid(r, "filter", "at most %d names per list", LIST_MAX);
        return 0;
    }
    if (!svc_prefix)
        qualify_services(q->lists[3]);
    q->f.containers = (const char *const *)q->lists[0];
    q->f.nodes = (const char *const *)q->lists[1];
    q->f.stacks = (const char *const *)q->lists[2];
    q->f.services = (const char *const *)q->lists[3];
    return 1;
}

static int parse_instance(struct req *r, struct query *q)
{
    const char *inst = req_query(r, "instance");
    char *end;

    if (inst && *inst) {
        long v = strtol(inst, &end, 10);
        if (*end || v < 0 || v > 1000000) {
            reply_invalid(r, "instance", "must be an instance number");
            return 0;
        }
        q->f.instance = v;
    }
    return 1;
}

/* --- answers -------------------------------------------------------------------------------- */

static int64_t start_id(struct api *a, const struct query *q)
{
    if (q->from >= 0)
        return q->from + 1;
    return logstore_tail_start(a->logs, q->grid, &q->f, (size_t)q->limit);
}

static void reply_query(struct req *r, struct query *q)
{
    struct buf b = BUF_INIT;
    int64_t next, dropped;
    size_t n;
    struct MHD_Response *resp;
    char *body;

    buf_init(&b, 0);
    if (buf_puts(&b, "{\"logs\":[") != ST_OK)
        goto fail;
    n = logstore_read(r->api->logs, q->grid, start_id(r->api, q), &q->f, (size_t)q->limit,
                      QUERY_MAX_BYTES, 0, &b, ",", &next, &dropped);
    if (n)
        b.len--; /* the last "," */
    if (buf_puts(&b, "]}") != ST_OK)
        goto fail;
    r->status = 200;
    n = b.len;
    body = buf_take(&b);
    resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    r->response = resp;
    return;
fail:
    buf_release(&b);
    reply_error(r, 500, "cannot build the log reply");
}

static void follower_free(void *cls)
{
    struct follower *f = cls;
    struct follow_hub *h = f->api->hub;

    pthread_mutex_lock(&h->mu);
    for (struct follower **pp = &h->parked; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    pthread_mutex_unlock(&h->mu);
    __atomic_sub_fetch(&f->api->ctr.followers, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 4; i++)
        free_list(f->lists[i]);
    free(f->q);
    free(f->grid);
    buf_release(&f->out);
    free(f);
}

static void refill(struct follower *f)
{
    struct buf tmp = BUF_INIT;
    int64_t next, dropped;

    buf_init(&tmp, 0);
    logstore_read(f->api->logs, f->grid, f->next_id, &f->f, FOLLOW_BATCH, FOLLOW_BUF,
                  FOLLOW_SCAN, &tmp, "\n", &next, &dropped);
    if (dropped > 0) {
        __atomic_add_fetch(&f->api->ctr.follow_dropped_markers, 1, __ATOMIC_RELAXED);
        if (buf_printf(&f->out, "{\"dropped\":%lld,\"reason\":\"older than the log window\"}\n",
                       (long long)dropped) != ST_OK)
            buf_reset(&f->out);
    }
    if (tmp.len && buf_append(&f->out, tmp.ptr, tmp.len) != ST_OK)
        buf_reset(&f->out);
    f->next_id = next;
    buf_release(&tmp);
}

static ssize_t follow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct follower *f = cls;
    struct follow_hub *h = f->api->hub;
    size_t n;

    (void)pos;
    for (int round = 0; f->out.len == 0 && round < 4; round++) {
        int64_t first, next;
        refill(f);
        if (f->out.len)
            break;
        pthread_mutex_lock(&h->mu);
        if (h->shutting) {
            pthread_mutex_unlock(&h->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        logstore_bounds(f->api->logs, f->grid, &first, &next);
        if (next > f->next_id) { /* appended since the read: read again */
            pthread_mutex_unlock(&h->mu);
            continue;
        }
        if (time_mono_ms() - f->last_out_ms >= KEEPALIVE_MS) {
            pthread_mutex_unlock(&h->mu);
            buf[0] = ' ';
            f->last_out_ms = time_mono_ms();
            return 1;
        }
        /* Park under the hub's mutex: an append after the check above resumes us. */
        f->parked = 1;
        f->next = h->parked;
        h->parked = f;
        MHD_suspend_connection(f->conn);
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    if (f->out.len == 0) { /* only filtered-out lines kept arriving: come back soon */
        buf[0] = ' ';
        f->last_out_ms = time_mono_ms();
        return 1;
    }
    n = f->out.len < max ? f->out.len : max;
    memcpy(buf, f->out.ptr, n);
    buf_consume(&f->out, n);
    f->last_out_ms = time_mono_ms();
    return (ssize_t)n;
}

static void reply_follow(struct req *r, struct query *q)
{
    struct follower *f = xcalloc(1, sizeof(*f));
    struct MHD_Response *resp;

    f->next_id = start_id(r->api, q); /* before q's storage moves to f */
    f->api = r->api;
    f->conn = r->conn;
    f->grid = q->grid;
    q->grid = NULL;
    f->f = q->f;
    for (int i = 0; i < 4; i++) {
        f->lists[i] = q->lists[i];
        q->lists[i] = NULL;
    }
    if (q->f.q)
        f->q = xstrdup(q->f.q);
    f->f.q = f->q;
    if (q->f.since) {
        memcpy(f->since, q->since, sizeof(f->since));
        f->f.since = f->since;
    }
    buf_init(&f->out, 0);
    f->last_out_ms = time_mono_ms();
    __atomic_add_fetch(&r->api->ctr.followers, 1, __ATOMIC_RELAXED);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, follow_reader, f,
                                             follower_free);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    r->status = 200;
    r->response = resp;
}

static void answer(struct req *r, struct query *q)
{
    if (!r->api->logs) {
        reply_error(r, 503, "The master keeps no logs: its log directory is unusable");
        return;
    }
    if (q->follow)
        reply_follow(r, q);
    else
        reply_query(r, q);
}

static void h_grid_logs(struct req *r, char **params)
{
    struct query q = {0};
    struct scope sc;

    if (!scope_parse(r, SCOPE_GRID, params, &sc))
        return;
    q.grid = xstrdup(sc.grid);
    if (parse_common(r, &q) && parse_instance(r, &q) &&
        parse_lists(r, &q, req_query(r, "containers"), req_query(r, "nodes"),
                    req_query(r, "stacks"), req_query(r, "services"), NULL))
        answer(r, &q);
    query_release(&q);
}

static void h_stack_logs(struct req *r, char **params)
{
    struct query q = {0};
    const char *c = req_query(r, "containers") ? req_query(r, "containers")
                                                : req_query(r, "container");
    struct scope sc;

    if (!scope_parse(r, SCOPE_STACK, params, &sc))
        return;
    q.grid = xstrdup(sc.grid);
    if (parse_common(r, &q) && parse_instance(r, &q) &&
        parse_lists(r, &q, c, NULL, sc.stack, req_query(r, "services"), sc.stack))
        answer(r, &q);
    query_release(&q);
}

static void h_service_logs(struct req *r, char **params)
{
    struct query q = {0};
    const char *c = req_query(r, "containers") ? req_query(r, "containers")
                                                : req_query(r, "container");
    struct scope sc;
    char *svc;

    if (!scope_parse(r, SCOPE_SERVICE, params, &sc))
        return;
    q.grid = xstrdup(sc.grid);
    svc = xasprintf("%s/%s", sc.stack, sc.service);
    if (parse_common(r, &q) && parse_instance(r, &q) &&
        parse_lists(r, &q, c, NULL, NULL, svc, NULL))
        answer(r, &q);
    free(svc);
    query_release(&q);
}

/* The node must exist; its container may be gone (its lines stay readable). */
static void h_container_logs(struct req *r, char **params)
{
    struct query q = {0};
    struct scope sc;

    if (!scope_parse(r, SCOPE_NODE, params, &sc))
        return;
    q.grid = xstrdup(sc.grid);
    if (parse_common(r, &q) && parse_lists(r, &q, sc.container, sc.node, NULL, NULL, NULL))
        answer(r, &q);
    query_release(&q);
}

const struct route log_routes[] = {
    {"GET", "/v1/grids/:grid/container_logs", AUTH_TOKEN, h_grid_logs, NULL, NULL},
    {"GET", "/v1/stacks/:grid/:stack/container_logs", AUTH_TOKEN, h_stack_logs, NULL, NULL},
    {"GET", "/v1/services/:grid/:stack/:svc/container_logs", AUTH_TOKEN, h_service_logs, NULL,
     NULL},
    {"GET", "/v1/containers/:grid/:node/:name/logs", AUTH_TOKEN, h_container_logs, NULL, NULL},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
