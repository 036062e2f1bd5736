/* etcdclient/etcd_watch.h -- a resumable watch on a key or prefix.
 *
 * A watch is one long POST to /v3/watch. etcd_watch_run() blocks the calling thread: it
 * opens the stream, delivers every message to the callback, and when the stream drops (etcd
 * restarted, network cut, endpoint failover) it reconnects with exponential backoff and
 * jitter (200 ms .. 5 s) from the revision after the last one it delivered, so no event is
 * missed or delivered twice. Progress notifications advance that revision too.
 *
 * If the revision to resume from has been compacted away, the callback gets
 * ETCD_WATCH_COMPACTED and run() returns ST_COMPACTED: the caller re-lists (etcd_range) and
 * starts a new watch from the listing's revision + 1.
 *
 * Threads: run() on one thread; etcd_watch_stop() from any thread (or from the callback)
 * makes run() return ST_OK promptly, even while it waits on an idle stream or a backoff.
 */
#ifndef ETCDCLIENT_ETCD_WATCH_H
#define ETCDCLIENT_ETCD_WATCH_H

#include "etcdclient/etcd.h"

struct etcd_watch;

struct etcd_watch_opts {
    const char *key;
    const char *range_end;   /* NULL: one key; ETCD_PREFIX; or an end key */
    int64_t start_revision;  /* 0: from now */
    int progress_notify;     /* ask etcd for progress notifications */
    int prev_kv;             /* deliver the previous pair with each event */
    size_t max_message_bytes; /* cap on one stream message; 0 = 64 MiB */
};

enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };

struct etcd_event {
    enum etcd_event_type type;
    struct etcd_kv kv;      /* for a delete: key and mod_revision (of the delete) only */
    struct etcd_kv prev_kv; /* prev_kv.key NULL when not asked for or none */
};

enum etcd_watch_msg_kind {
    ETCD_WATCH_EVENTS,       /* events[0..n_events) in revision order */
    ETCD_WATCH_PROGRESS,     /* no events; everything up to revision has been seen */
    ETCD_WATCH_CONNECTED,    /* the stream is (re)established */
    ETCD_WATCH_DISCONNECTED, /* the stream dropped; reconnecting (error has the cause) */
    ETCD_WATCH_COMPACTED,    /* start revision compacted; run() returns ST_COMPACTED */
};

struct etcd_watch_msg {
    enum etcd_watch_msg_kind kind;
    int64_t revision;         /* header revision of the message */
    int64_t compact_revision; /* COMPACTED: the oldest revision still available */
    const struct etcd_event *events; /* borrowed for the duration of the callback */
    size_t n_events;
    const char *error; /* DISCONNECTED: why */
};

/* Return 0 to go on, non-zero to stop (run() then returns ST_OK). */
typedef int (*etcd_watch_cb)(void *arg, const struct etcd_watch_msg *m);

struct etcd_watch *etcd_watch_create(struct etcd *c, const struct etcd_watch_opts *o,
                                     etcd_watch_cb cb, void *arg);
void etcd_watch_destroy(struct etcd_watch *w); /* NULL is fine; run() must have returned */
enum status etcd_watch_run(struct etcd_watch *w, struct err *e) WARN_UNUSED_RESULT;
void etcd_watch_stop(struct etcd_watch *w);
/* The revision the watch would resume from (last delivered + 1). */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);

#endif
