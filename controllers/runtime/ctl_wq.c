/* controllers/runtime/ctl_wq.c -- work queues (client-go's dirty and processing sets, with
 * per-key exponential backoff) and the one timer thread behind wq_add_after().
 *
 * Every key the queue knows has one entry in a hash table:
 *   dirty       queued (or to be queued again when its reconcile returns)
 *   processing  a worker is reconciling it right now
 *   failures    consecutive failed reconciles (backoff)
 *   due         monotonic ms of its pending delayed add, 0 for none
 * An entry sits in the FIFO exactly while dirty && !processing, and is freed when it has
 * nothing left to remember (not dirty, not processing, no failures, no delay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "common/banned.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 30000

struct wq_ent {
    char *key;
    unsigned hash;
    int dirty, processing, failures;
    int64_t due;
    struct wq_ent *hnext; /* hash chain */
    struct wq_ent *qnext; /* FIFO */
};

struct ctl_timer {
    int64_t due;
    struct wq *q;
    char *key;
};

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct wq_ent *ent_find(struct wq *q, const char *key, unsigned h)
{
    struct wq_ent *e;

    for (e = q->buckets[h % q->nbuckets]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void rehash(struct wq *q, size_t n)
{
    struct wq_ent **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < q->nbuckets; i++) {
        struct wq_ent *e, *next;
        for (e = q->buckets[i]; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash % n];
            b[e->hash % n] = e;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = n;
}

static struct wq_ent *ent_get(struct wq *q, const char *key)
{
    unsigned h = hash_str(key);
    struct wq_ent *e = ent_find(q, key, h);

    if (e)
        return e;
    if (q->nents >= q->nbuckets)
        rehash(q, q->nbuckets * 2);
    e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->hash = h;
    e->hnext = q->buckets[h % q->nbuckets];
    q->buckets[h % q->nbuckets] = e;
    q->nents++;
    return e;
}

/* Free e if it has nothing left to remember. */
static void ent_maybe_free(struct wq *q, struct wq_ent *e)
{
    struct wq_ent **pp;

    if (e->dirty || e->processing || e->failures || e->due)
        return;
    for (pp = &q->buckets[e->hash % q->nbuckets]; *pp != e; pp = &(*pp)->hnext)
        ;
    *pp = e->hnext;
    q->nents--;
    free(e->key);
    free(e);
}

static void fifo_push(struct wq *q, struct wq_ent *e)
{
    e->qnext = NULL;
    if (q->tail)
        q->tail->qnext = e;
    else
        q->head = e;
    q->tail = e;
    q->len++;
    pthread_cond_signal(&q->cond);
}

static struct wq_ent *fifo_pop(struct wq *q)
{
    struct wq_ent *e = q->head;

    if (!e)
        return NULL;
    q->head = e->qnext;
    if (!q->head)
        q->tail = NULL;
    e->qnext = NULL;
    q->len--;
    return e;
}

/* Under q->mu. */
static void add_locked(struct wq *q, const char *key)
{
    struct wq_ent *e = ent_get(q, key);

    ctl_metric_add(q->m_adds, 1);
    if (e->dirty)
        return;
    e->dirty = 1;
    if (!e->processing)
        fifo_push(q, e);
}

/* --- timer heap (ctl->timer_mu) --- */

static void heap_swap(struct ctl_timer *a, struct ctl_timer *b)
{
    struct ctl_timer t = *a;
    *a = *b;
    *b = t;
}

static void timer_push(struct ctl *c, struct wq *q, const char *key, int64_t due)
{
    size_t i;

    pthread_mutex_lock(&c->timer_mu);
    if (c->ntimers == c->timers_alloc) {
        c->timers_alloc = c->timers_alloc ? c->timers_alloc * 2 : 64;
        c->timers = xrealloc(c->timers, c->timers_alloc * sizeof(*c->timers));
    }
    i = c->ntimers++;
    c->timers[i].due = due;
    c->timers[i].q = q;
    c->timers[i].key = xstrdup(key);
    while (i > 0 && c->timers[(i - 1) / 2].due > c->timers[i].due) {
        heap_swap(&c->timers[(i - 1) / 2], &c->timers[i]);
        i = (i - 1) / 2;
    }
    if (i == 0)
        pthread_cond_signal(&c->timer_cond); /* a new earliest deadline */
    pthread_mutex_unlock(&c->timer_mu);
}

/* Remove the root; under timer_mu. */
static struct ctl_timer timer_pop(struct ctl *c)
{
    struct ctl_timer top = c->timers[0];
    size_t i = 0;

    c->timers[0] = c->timers[--c->ntimers];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->ntimers && c->timers[l].due < c->timers[m].due)
            m = l;
        if (r < c->ntimers && c->timers[r].due < c->timers[m].due)
            m = r;
        if (m == i)
            break;
        heap_swap(&c->timers[i], &c->timers[m]);
        i = m;
    }
    return top;
}

/* A delayed add came due: only the entry's current delay counts (an earlier one may have
 * replaced this one, or it may have been consumed). */
static void timer_fire(struct ctl_timer *t)
{
    struct wq *q = t->q;
    struct wq_ent *e;

    pthread_mutex_lock(&q->mu);
    e = ent_find(q, t->key, hash_str(t->key));
    if (e && e->due == t->due) {
        e->due = 0;
        add_locked(q, t->key);
    }
    pthread_mutex_unlock(&q->mu);
    free(t->key);
}

void *ctl__timer_main(void *arg)
{
    struct ctl *c = arg;

    pthread_mutex_lock(&c->timer_mu);
    while (!atomic_load(&c->stopping)) {
        int64_t now = time_mono_ms();
        if (c->ntimers && c->timers[0].due <= now) {
            struct ctl_timer t = timer_pop(c);
            pthread_mutex_unlock(&c->timer_mu);
            timer_fire(&t);
            pthread_mutex_lock(&c->timer_mu);
            continue;
        }
        if (c->ntimers) {
            struct timespec ts = time_deadline(CLOCK_MONOTONIC, c->timers[0].due - now);
            pthread_cond_timedwait(&c->timer_cond, &c->timer_mu, &ts);
        } else {
            pthread_cond_wait(&c->timer_cond, &c->timer_mu);
        }
    }
    pthread_mutex_unlock(&c->timer_mu);
    return NULL;
}

/* --- public --- */

struct wq *ctl_wq(struct ctl *c, const char *name, wq_reconcile fn, void *arg, int workers)
{
    struct wq *q = xcalloc(1, sizeof(*q));
    char *s;

    BUG_ON(atomic_load(&c->setup_done));
    BUG_ON(!fn || !name);
    q->c = c;
    q->name = xstrdup(name);
    q->fn = fn;
    q->arg = arg;
    q->nworkers = workers > 0 ? workers : c->workers;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->nbuckets = 64;
    q->buckets = xcalloc(q->nbuckets, sizeof(*q->buckets));

    s = xasprintf("kontena_workqueue_depth{queue=\"%s\"}", name);
    q->m_depth = ctl__metric(c, s, NULL, "keys waiting in the work queue", CTL_METRIC_GAUGE);
    free(s);
    s = xasprintf("kontena_workqueue_adds_total{queue=\"%s\"}", name);
    q->m_adds = ctl__metric(c, s, NULL, "keys added to the work queue", CTL_METRIC_COUNTER);
    free(s);
    s = xasprintf("kontena_reconcile_total{queue=\"%s\",result=\"ok\"}", name);
    q->m_ok = ctl__metric(c, s, NULL, "reconciles by result", CTL_METRIC_COUNTER);
    free(s);
    s = xasprintf("kontena_reconcile_total{queue=\"%s\",result=\"error\"}", name);
    q->m_err = ctl__metric(c, s, NULL, "reconciles by result", CTL_METRIC_COUNTER);
    free(s);
    s = xasprintf("kontena_reconcile_seconds_sum{queue=\"%s\"}", name);
    q->m_sec_sum = ctl__metric(c, s, "kontena_reconcile_seconds", "time spent reconciling",
                               CTL_METRIC_SUMMARY);
    free(s);
    s = xasprintf("kontena_reconcile_seconds_count{queue=\"%s\"}", name);
    q->m_sec_count = ctl__metric(c, s, "kontena_reconcile_seconds", "time spent reconciling",
                                 CTL_METRIC_SUMMARY);
    free(s);

    c->wqs = xrealloc(c->wqs, (c->nwqs + 1) * sizeof(*c->wqs));
    c->wqs[c->nwqs++] = q;
    return q;
}

void wq_add(struct wq *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    add_locked(q, key);
    pthread_mutex_unlock(&q->mu);
}

/* Under q->mu. */
static void add_after_locked(struct wq *q, const char *key, int64_t delay_ms)
{
    struct wq_ent *e;
    int64_t due;

    if (delay_ms <= 0) {
        add_locked(q, key);
        return;
    }
    due = time_mono_ms() + delay_ms;
    e = ent_get(q, key);
    if (e->due && e->due <= due)
        return; /* an earlier delay is pending: it wins */
    e->due = due;
    timer_push(q->c, q, key, due);
}

void wq_add_after(struct wq *q, const char *key, int64_t delay_ms)
{
    pthread_mutex_lock(&q->mu);
    add_after_locked(q, key, delay_ms);
    pthread_mutex_unlock(&q->mu);
}

size_t wq_len(struct wq *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int64_t wq__backoff_ms(int failures)
{
    int64_t ms = BACKOFF_BASE_MS;

    for (int i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* Workers act only while this process leads and every informer has synced. */
static int active(struct wq *q)
{
    return atomic_load(&q->c->leader) && ctl__synced(q->c);
}

static void *worker_main(void *arg)
{
    struct wq *q = arg;
    struct wq_ent *e;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct err err = ERR_INIT;
        enum status st;
        int64_t t0;
        char *key;

        while (!atomic_load(&q->c->stopping) && (!q->head || !active(q)))
            pthread_cond_wait(&q->cond, &q->mu);
        if (atomic_load(&q->c->stopping))
            break;
        e = fifo_pop(q);
        e->processing = 1;
        e->dirty = 0;
        key = xstrdup(e->key);
        pthread_mutex_unlock(&q->mu);

        t0 = time_now_us();
        st = q->fn(q->arg, key, &err);
        ctl_metric_add(q->m_sec_sum, (double)(time_now_us() - t0) / 1e6);
        ctl_metric_add(q->m_sec_count, 1);
        if (st == ST_OK) {
            ctl_metric_add(q->m_ok, 1);
        } else {
            ctl_metric_add(q->m_err, 1);
            if (!atomic_load(&q->c->stopping))
                log_warn("queue=%s key=%s msg=\"reconcile failed (%s): %s\"", q->name, key,
                         status_name(st), err.msg[0] ? err.msg : "no reason given");
        }

        pthread_mutex_lock(&q->mu);
        e = ent_find(q, key, hash_str(key)); /* still there: processing keeps it */
        e->processing = 0;
        if (st == ST_OK) {
            e->failures = 0;
        } else {
            if (e->failures < 1000)
                e->failures++;
            add_after_locked(q, key, wq__backoff_ms(e->failures));
        }
        if (e->dirty)
            fifo_push(q, e);
        else
            ent_maybe_free(q, e);
        free(key);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

void wq__start(struct wq *q)
{
    q->workers = xcalloc((size_t)q->nworkers, sizeof(*q->workers));
    for (int i = 0; i < q->nworkers; i++)
        if (pthread_create(&q->workers[i], NULL, worker_main, q) != 0)
            BUG_ON("cannot create a worker thread");
    q->started = 1;
}

void wq__wake(struct wq *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

void wq__join(struct wq *q)
{
    if (!q->started)
        return;
    wq__wake(q);
    for (int i = 0; i < q->nworkers; i++)
        pthread_join(q->workers[i], NULL);
    q->started = 0;
}

void wq__free(struct wq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct wq_ent *e, *next;
        for (e = q->buckets[i]; e; e = next) {
            next = e->hnext;
            free(e->key);
            free(e);
        }
    }
    free(q->buckets);
    free(q->workers);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cond);
    free(q->name);
    free(q);
}

void ctl__timers_free(struct ctl *c)
{
    for (size_t i = 0; i < c->ntimers; i++)
        free(c->timers[i].key);
    free(c->timers);
    c->timers = NULL;
    c->ntimers = c->timers_alloc = 0;
}
