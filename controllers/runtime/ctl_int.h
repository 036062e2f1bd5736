/* controllers/runtime/ctl_int.h -- the runtime's internals, shared by its .c files and
 * by tests. Controllers use ctl.h only; unit tests may also use the ctl_*_for_test()
 * functions at the end.
 *
 * Locks, never taken in the other order:
 *   wq->mu  ->  ctl->timer_mu
 *   inf->mu (cache) is a leaf; handlers run with no lock held.
 *   ctl->mu guards the stop/leadership condition variable and the leader's fence.
 */
#ifndef CONTROLLERS_RUNTIME_CTL_INT_H
#define CONTROLLERS_RUNTIME_CTL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "controllers/runtime/ctl.h"

struct httpmini;
struct etcd_watch;

/* --- metrics (ctl_metrics.c) --- */
enum ctl_metric_type { CTL_METRIC_COUNTER, CTL_METRIC_GAUGE, CTL_METRIC_SUMMARY };

struct ctl_metric {
    char *series;  /* full name with labels: kontena_reconcile_total{queue="x",result="ok"} */
    char *base;    /* name the HELP/TYPE lines use: kontena_reconcile_total */
    char *help;
    enum ctl_metric_type type;
    double value;  /* under ctl->metrics_mu */
};

/* Register (or find) a series of any type; base NULL = series up to '{'. */
struct ctl_metric *ctl__metric(struct ctl *c, const char *series, const char *base,
                               const char *help, enum ctl_metric_type type);
/* The Prometheus text of every series, fresh memory. */
char *ctl__metrics_render(struct ctl *c);
void ctl__metrics_free(struct ctl *c);

/* --- informers (ctl_informer.c) --- */
struct cache; /* sorted map of keys, skip list */

struct informer {
    struct ctl *c;
    char *prefix;
    informer_handler handler;
    void *arg;
    pthread_t thread;
    int started;

    pthread_rwlock_t lock;       /* the cache and its tombstones */
    struct cache *cache;

    pthread_mutex_t mu;          /* watch pointer, hold, lasterr */
    struct etcd_watch *watch;    /* the running watch, for stop */
    int hold, holding;           /* test hook: watch stopped until released */
    pthread_cond_t hold_cond;

    atomic_int synced;
    atomic_int connected;
    _Atomic int64_t revision;
    char lasterr[256];           /* under mu: why not healthy */

    struct ctl_metric *m_events, *m_relists;
};

void informer__start(struct informer *inf);
void informer__stop(struct informer *inf);  /* asks the thread to end (no join) */
void informer__join(struct informer *inf);
void informer__free(struct informer *inf);
/* Healthy: synced and watch connected; else 0 and why in buf. */
int informer__healthy(struct informer *inf, char *why, size_t len);

/* --- work queues (ctl_wq.c) --- */
struct wq_ent;

struct wq {
    struct ctl *c;
    char *name;
    wq_reconcile fn;
    void *arg;
    int nworkers;
    pthread_t *workers;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct wq_ent **buckets; /* hash of every key the queue knows */
    size_t nbuckets, nents;
    struct wq_ent *head, *tail; /* FIFO of dirty keys not being processed */
    size_t len;

    struct ctl_metric *m_depth, *m_adds, *m_ok, *m_err, *m_sec_sum, *m_sec_count;
};

void wq__start(struct wq *q);
void wq__wake(struct wq *q); /* leadership or sync changed: re-check */
void wq__join(struct wq *q);
void wq__free(struct wq *q);
/* Timer thread: fire delayed adds. */
void *ctl__timer_main(void *arg);
void ctl__timers_free(struct ctl *c); /* after the timer thread stopped */
/* Backoff of the n-th consecutive failure (n >= 1), ms. */
int64_t wq__backoff_ms(int failures);

/* --- leader election (ctl_leader.c) --- */
void *ctl__leader_main(void *arg);
/* Give the lease back on shutdown (the standby takes over at once). */
void ctl__leader_release(struct ctl *c);

/* --- http (ctl_http.c) --- */
enum status ctl__http_start(struct ctl *c, struct err *e);
void ctl__http_stop(struct ctl *c);

/* --- the process --- */
struct ctl_timer; /* delayed add, heap entry */

struct ctl {
    const struct ctl_def *def;
    void *state;
    char *name;
    char *id;
    char *leader_key;     /* /kontena/leaders/<name> */
    struct etcd *etcd;
    struct etcd *etcd_le; /* leader election's client: request timeout ttl/3, so a hung etcd
                           * cannot keep a leader that lost its lease acting for long */

    /* flags */
    int leader_elect;
    int64_t lease_ttl_ms;
    int64_t resync_ms;
    int workers;
    char *http_addr;      /* NULL: off */
    int http_port;

    atomic_int stopping;
    atomic_int leader;
    atomic_int setup_done; /* ctl_informer/ctl_wq only before */

    pthread_mutex_t mu;    /* with cond: stop, leadership changes, fence */
    pthread_cond_t cond;
    int64_t fence_rev;     /* leader key's create_revision while leading, else -1 */
    int64_t lease_id;      /* while leading */
    unsigned leader_gen;   /* bumped each time leadership is gained */
    struct etcd_watch *leader_watch; /* standby's watch on the leader key, for stop */
    char etcd_err[256];    /* last etcd failure seen by leader election, "" if fine */

    struct informer **infs;
    size_t ninfs;
    struct wq **wqs;
    size_t nwqs;

    pthread_mutex_t timer_mu;
    pthread_cond_t timer_cond;
    struct ctl_timer *timers; /* min-heap by due */
    size_t ntimers, timers_alloc;

    pthread_mutex_t metrics_mu;
    struct ctl_metric **metrics;
    size_t nmetrics;
    struct ctl_metric *m_leader, *m_etcd_errors;

    pthread_t timer_thread, leader_thread, resync_thread;
    int timer_started, leader_started, resync_started;
    struct httpmini *http; /* /healthz + /metrics, NULL: off */
};

/* 1 once every informer has synced (and always with none). */
int ctl__synced(struct ctl *c);
/* Sleep up to ms or until stop; returns 1 if stopping. */
int ctl__sleep(struct ctl *c, int64_t ms);
/* Wake every queue's workers (leadership or sync changed). */
void ctl__wake_queues(struct ctl *c);
void ctl__set_leader(struct ctl *c, int leading, int64_t fence_rev, int64_t lease_id);
/* Count an etcd failure in kontena_etcd_errors_total. */
void ctl__etcd_error(struct ctl *c, const char *msg);

/* --- for tests ---------------------------------------------------------------------------
 * A ctl without ctl_main: no flags, no signals, no leader election (ctl_is_leader() is 1),
 * no HTTP. def may be NULL (name "test"), etcd may be NULL (informers then only hold what
 * informer_store() puts there: a seeded cache for reconcile unit tests; do not start them).
 * Register informers and queues, then ctl_start_for_test() runs their threads (informers
 * only if etcd is set). ctl_free_for_test() stops and joins everything and frees it; it
 * does not destroy etcd. */
struct ctl *ctl_new_for_test(const struct ctl_def *def, void *state, struct etcd *etcd,
                             int workers);
void ctl_start_for_test(struct ctl *c);
void ctl_free_for_test(struct ctl *c);
/* Test hook: hold=1 stops the informer's watch and keeps it stopped (the cache stays as it
 * is); hold=0 resumes it from the revision after the last one it saw. */
void informer_hold_for_test(struct informer *inf, int hold);

#endif
