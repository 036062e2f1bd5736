/* controllers/runtime/ctl.h -- the runtime every controller process shares
 * (kontena-scheduler, kontena-ipam, kontena-rescheduler, kontena-health).
 *
 * A controller is a `struct ctl_def` handed to ctl_main(). The runtime parses the common
 * flags, connects to etcd, starts the informers and work queues the controller registered in
 * its setup() callback, runs leader election, serves /healthz and /metrics, and shuts down
 * cleanly on SIGTERM/SIGINT. The controller itself only writes level-triggered, idempotent
 * reconcile functions (sample-controller's syncHandler): given a key, read the caches, make
 * etcd match, return.
 *
 * Threads (docs/internals/controllers.md):
 *   - one thread per informer: list the prefix, then watch from the listing's revision + 1;
 *     on ST_COMPACTED list again and deliver the difference as events;
 *   - `workers` threads per work queue, running the reconcile callback; they run only while
 *     this process is the leader (or leader election is off);
 *   - one leader-election thread (lease keep-alive, campaign), one resync timer thread, and
 *     libmicrohttpd's own thread for /healthz and /metrics;
 *   - main() sigwait()s.
 * Handlers and reconcile callbacks run concurrently on those threads: everything reachable
 * from them must be thread-safe. Cache values are jansson objects that are never modified
 * after they are decoded (jansson 2.14's reference counts are atomic), so a reference taken
 * from a cache may be read on any thread without a lock.
 *
 * Everything here is thread-safe unless it says otherwise.
 */
#ifndef CONTROLLERS_RUNTIME_CTL_H
#define CONTROLLERS_RUNTIME_CTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct ctl;
struct informer;
struct wq;
struct etcd;
struct etcd_txn;

/* --- controller definition and main ----------------------------------------------------- */

enum ctl_opt_type {
    CTL_OPT_STRING,   /* dest: char ** (fresh copy; the default is copied too) */
    CTL_OPT_INT,      /* dest: int64_t *, within [min, max] */
    CTL_OPT_DURATION, /* dest: int64_t * in milliseconds: "500ms", "30s", "2m", "1h", "1m30s"
                       * or a bare number of seconds; within [min, max] ms */
    CTL_OPT_FLAG,     /* dest: int *, set to 1 by --name, 0 by --no-name; no value */
};

/* A controller-specific option: --<name> VALUE, or the environment variable env. */
struct ctl_opt {
    const char *name;    /* "grace-ha" */
    const char *env;     /* "KONTENA_GRACE_HA" or NULL */
    enum ctl_opt_type type;
    void *dest;
    const char *defval;  /* default as text, parsed like the flag; NULL = leave dest alone */
    int64_t min, max;
    const char *help;    /* one line for --help, e.g. "offline grace period of ha services" */
};

struct ctl_def {
    const char *name;    /* "scheduler": program kontena-<name>, leader key
                          * /kontena/leaders/<name>, log component, metric prefix */
    const char *summary; /* one line for --help */
    int http_port;       /* default port of --http-listen on 127.0.0.1 */
    const struct ctl_opt *opts; /* extra options, terminated by an entry with name NULL */
    /* Called once after the flags are parsed and the etcd client exists, before any thread
     * starts: register informers (ctl_informer) and queues (ctl_wq), metrics. Return ST_OK or
     * fail the start (the message is printed, exit status 1). */
    enum status (*setup)(struct ctl *c, void *state, struct err *e);
    /* Enqueue every key the controller owns. Called when this process becomes the leader
     * (after every informer has synced), and every --resync-interval while it leads. */
    void (*resync)(struct ctl *c, void *state);
    /* Called after every thread has stopped, before the etcd client is freed. May be NULL. */
    void (*teardown)(struct ctl *c, void *state);
};

/* The whole process: parse argv (common flags below plus def->opts), run until SIGTERM or
 * SIGINT, return the exit status (0 after a clean shutdown, 1 on a start failure, 2 on a
 * usage error). `state` is handed to every callback.
 *
 * Common flags (environment variable in brackets):
 *   --etcd-endpoints URLS   [KONTENA_ETCD_ENDPOINTS] default http://127.0.0.1:2379
 *   --http-listen ADDR:PORT|off  [KONTENA_HTTP_LISTEN] default 127.0.0.1:<def->http_port>
 *   --id ID                 identity in the leader key, default <hostname>-<pid>
 *   --leader-elect / --no-leader-elect   default on
 *   --lease-ttl DURATION    [KONTENA_LEASE_TTL] leader lease, default 10s (2s..60s)
 *   --resync-interval DURATION  [KONTENA_RESYNC_INTERVAL] default 30s
 *   --workers N             reconcile threads per queue, default 2 (1..64)
 *   --log-level LEVEL       [KONTENA_LOG_LEVEL] default info
 *   --help, --version
 */
int ctl_main(int argc, char **argv, const struct ctl_def *def, void *state);

struct etcd *ctl_etcd(struct ctl *c); /* the process's client (thread-safe) */
const char *ctl_id(const struct ctl *c);
const char *ctl_name(const struct ctl *c);

/* 1 while this process holds the leader lease (always 1 with --no-leader-elect). */
int ctl_is_leader(struct ctl *c);
/* Add to t a compare that holds only while this process still leads (the leader key's
 * create_revision equals the one this process created). Every write a reconcile makes should
 * carry it, so a leader that lost its lease without noticing yet cannot write (fencing).
 * No-op with --no-leader-elect. */
void ctl_txn_fence(struct ctl *c, struct etcd_txn *t);
/* 1 once shutdown has begun: long reconciles should return early. */
int ctl_stopping(struct ctl *c);
/* A duration as CTL_OPT_DURATION reads it ("500ms", "30s", "2m", "1h", "1m30s", or a bare
 * number of seconds) in milliseconds; -1 when malformed. */
int64_t ctl_parse_duration(const char *s);

/* --- informers: a cache of one etcd prefix ---------------------------------------------- */

/* One cached key. val is a JSON value decoded from the etcd value (keys whose value is not
 * JSON are logged once and left out of the cache). */
struct ctl_obj {
    char *key;
    json_t *val; /* a reference owned by the struct */
    int64_t mod_rev;
    int64_t create_rev;
};
void ctl_objs_free(struct ctl_obj *objs, size_t n); /* NULL fine */

/* Called on the informer's thread after the cache changed: old_val NULL for a new key,
 * new_val NULL for a deleted one (both borrowed for the duration of the call). Called for
 * every key of the initial listing too, and for the difference after a re-list. Keep it
 * short: enqueue keys and return. */
typedef void (*informer_handler)(void *arg, const char *key, const json_t *old_val,
                                 const json_t *new_val);

/* Register an informer on prefix (must end with '/'). Only from setup(). handler may be
 * NULL (a pure cache). */
struct informer *ctl_informer(struct ctl *c, const char *prefix, informer_handler h, void *arg);

/* 1 once the first listing is in the cache. */
int informer_synced(struct informer *inf);
/* The etcd revision the cache reflects (the last listing or event). */
int64_t informer_revision(struct informer *inf);
/* The cached value of key: a new reference (json_decref it) or NULL. mod_rev and create_rev
 * (either may be NULL) get its revisions. */
json_t *informer_get(struct informer *inf, const char *key, int64_t *mod_rev,
                     int64_t *create_rev);
/* Every cached key starting with prefix, sorted by key, as a fresh array (*out, free with
 * ctl_objs_free); returns the count. Costs O(log n + k) for k results. */
size_t informer_list(struct informer *inf, const char *prefix, struct ctl_obj **out);
/* Number of cached keys starting with prefix. */
size_t informer_count(struct informer *inf, const char *prefix);

/* Write-through, after a transaction of ours succeeded: put val (borrowed; the cache takes
 * its own reference) at key with mod_rev (the transaction's revision), or forget key as
 * deleted at rev. Lets the next reconcile read its own writes before the watch delivers
 * them. Watch events and listings older than what the cache holds for a key (including a
 * forgotten key's rev) are ignored, so a late event never brings back a stale value. The
 * handler is not called for write-through changes. */
void informer_store(struct informer *inf, const char *key, const json_t *val, int64_t mod_rev);
void informer_forget(struct informer *inf, const char *key, int64_t rev);

/* --- work queues -------------------------------------------------------------------------- */

/* Reconcile one key. ST_OK: done (the key's failure count is reset). Anything else: logged
 * with the key and e's message, then the key is queued again after its backoff
 * (base 100 ms, doubling per consecutive failure, capped at 30 s). */
typedef enum status (*wq_reconcile)(void *arg, const char *key, struct err *e);

/* Register a queue with `workers` threads (0: the --workers value). Only from setup().
 * name labels its metrics ("kontena_workqueue_depth{queue=\"<name>\"}"). */
struct wq *ctl_wq(struct ctl *c, const char *name, wq_reconcile fn, void *arg, int workers);

/* Queue key (copied). A key that is already queued is not queued twice; a key being
 * processed right now is queued again when its reconcile returns (client-go's dirty and
 * processing sets): one key is never reconciled by two threads at once. */
void wq_add(struct wq *q, const char *key);
/* Queue key after delay_ms (the earlier of two pending delays wins). */
void wq_add_after(struct wq *q, const char *key, int64_t delay_ms);
/* Keys waiting (not counting delayed or in-flight ones). */
size_t wq_len(struct wq *q);

/* --- metrics (Prometheus text format on /metrics) ---------------------------------------- */

struct ctl_metric;
/* Register a counter or gauge. name may carry labels: "kontena_placements_total" or
 * "kontena_deploys_total{state=\"error\"}" (series of one name share its help and type).
 * Registering the same name twice returns the same metric. */
struct ctl_metric *ctl_counter(struct ctl *c, const char *name, const char *help);
struct ctl_metric *ctl_gauge(struct ctl *c, const char *name, const char *help);
void ctl_metric_add(struct ctl_metric *m, double v);
void ctl_metric_set(struct ctl_metric *m, double v);

/* Built in: kontena_leader (0/1), kontena_workqueue_depth{queue}, kontena_workqueue_adds_total,
 * kontena_reconcile_total{queue,result="ok|error"}, kontena_reconcile_seconds_sum/_count,
 * kontena_informer_events_total{prefix}, kontena_informer_relists_total{prefix},
 * kontena_etcd_errors_total.
 * /healthz: 200 "ok" once every informer has synced and its watch is connected; otherwise
 * 503 with the reason ("informer /kontena/nodes/ not synced", "etcd unreachable: ..."). */

#endif
