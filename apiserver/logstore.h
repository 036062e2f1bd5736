/* apiserver/logstore.h -- the master's window of container log lines, per grid, on disk.
 *
 * Layout: <dir>/<grid>/<first id, 20 digits>.seg, append-only files of JSON lines, one entry
 * per line, each line exactly the API's log entry (master-api.md §2.12) with its keys in a
 * fixed order:
 *
 *   {"id":N,"created_at":"<RFC3339, 9 fraction digits, Z>","name":..,"container_id":..,
 *    "node":{"name":..},"grid":{"id":..,"name":..},"stack":{"id":"<grid>/<stack>","name":..}|null,
 *    "service":{"id":"<grid>/<stack>/<svc>","name":..}|null,"instance":n|null,
 *    "type":"stdout"|"stderr","data":".."}
 *
 * so a reader copies lines out as they are and filters by looking for exact serialized
 * fragments (strings are escaped, so a fragment with bare quotes cannot occur inside data).
 * Ids are per-grid, consecutive, and survive restarts (the next id is recovered from the
 * last segment). A grid's segments together hold at most window_bytes (oldest segments are
 * deleted). Per container (Docker id) the store keeps a cursor: the time of the newest line
 * stored, which dedups lines sent twice; cursors are saved to <dir>/<grid>/cursors.json
 * (at most once a second and at close) and completed at start from the lines after it.
 * docs/internals/logs.md.
 *
 * Thread-safety: every function may be called from any thread; one mutex per grid.
 */
#ifndef APISERVER_LOGSTORE_H
#define APISERVER_LOGSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define LOGSTORE_DATA_MAX (16 * 1024) /* longer lines are cut */
#define LOGSTORE_TIME_LEN 30          /* "2026-01-02T03:04:05.123456789Z" */

struct logstore;

/* One line to store; every string borrowed. stack/service NULL for unmanaged containers;
 * instance < 0 for none. time: RFC 3339 with any fraction and Z or an offset. */
struct log_item {
    const char *container_id, *name, *node, *stack, *service, *type, *time, *data;
    long instance;
};

/* What a query wants; every string borrowed, lists NULL-terminated (NULL: no filter).
 * Within a list any element matches; across lists all must. */
struct log_filter {
    const char *const *containers; /* container names */
    const char *const *nodes;
    const char *const *stacks;
    const char *const *services;   /* "stack/service" */
    long instance;                 /* < 0: any */
    const char *q;                 /* substring of data, NULL or "" = any */
    const char *since;             /* normalized time (logstore_time_norm), entries after it */
};

/* Open (creating dir if needed) and recover every grid found under dir. window_bytes per
 * grid (>= 64 KiB). epoch (may be NULL) names the cluster the window belongs to: when
 * <dir>/epoch holds another one, every grid's files are deleted first (the window of
 * another etcd cluster, e.g. a re-installed master or an earlier test run), then epoch is
 * written there. ST_CONFLICT when another process has dir open. */
enum status logstore_open(const char *dir, uint64_t window_bytes, const char *epoch,
                          struct logstore **out, struct err *e) WARN_UNUSED_RESULT;
/* Save the cursors and close. NULL is fine. */
void logstore_close(struct logstore *s);

/* Append items of one agent batch to grid. Lines with a time <= the container's cursor as it
 * was before this batch are dropped (sent twice); items that are not valid are dropped too.
 * *stored / *dropped (may be NULL) get the counts. The callback (may be NULL) sees each stored
 * line (without its newline), e.g. for forwarding. */
typedef void (*logstore_line_cb)(void *arg, const char *grid, const struct log_item *it,
                                 const char *created_at, const char *line, size_t len);
enum status logstore_append(struct logstore *s, const char *grid, const struct log_item *items,
                            size_t n, size_t *stored, size_t *dropped, logstore_line_cb cb,
                            void *cb_arg, struct err *e) WARN_UNUSED_RESULT;

/* The container's cursor (normalized time) into out (LOGSTORE_TIME_LEN + 1 bytes);
 * 0 if the store has none for it, 1 if found. */
int logstore_cursor(struct logstore *s, const char *grid, const char *container_id, char *out);

/* Ids of grid: *first = the oldest id still stored, *next = the id the next line gets
 * (first == next: empty). */
void logstore_bounds(struct logstore *s, const char *grid, int64_t *first, int64_t *next);

/* Forward read: from id `from` (inclusive) append matching lines to out, each followed by
 * sep (may be NULL), until max_entries lines, or out->len would exceed max_bytes (at least one
 * line is taken when there is one), or max_scan lines were examined (0: no limit), or the
 * end. *next_id gets the id after the last line examined; *dropped gets how many ids were
 * below the window (from was evicted: reading starts at the oldest). Returns the number of
 * lines appended. */
size_t logstore_read(struct logstore *s, const char *grid, int64_t from,
                     const struct log_filter *f, size_t max_entries, size_t max_bytes,
                     size_t max_scan, struct buf *out, const char *sep, int64_t *next_id,
                     int64_t *dropped);

/* The id of the oldest of the newest `limit` matching lines (limit >= 1), or the next id
 * when none match: where a reader of the last `limit` lines starts. */
int64_t logstore_tail_start(struct logstore *s, const char *grid, const struct log_filter *f,
                            size_t limit);

/* Forget a grid: delete its files. */
void logstore_drop_grid(struct logstore *s, const char *grid);

/* Wait-free notification: called (under no store lock) after every append to grid. */
typedef void (*logstore_notify_cb)(void *arg, const char *grid);
void logstore_set_notify(struct logstore *s, logstore_notify_cb cb, void *arg);

/* Totals for /metrics. */
struct logstore_totals {
    uint64_t stored, dropped_dup, dropped_invalid, evicted_segments, bytes;
};
void logstore_totals(struct logstore *s, struct logstore_totals *t);

/* Time helpers. Parse RFC 3339 (any fraction digits, Z or ±hh:mm) or Unix seconds (with an
 * optional fraction) into ns since the epoch; -1 if invalid. Format ns as the stored form. */
int64_t logstore_time_parse(const char *s);
void logstore_time_format(int64_t ns, char *out /* LOGSTORE_TIME_LEN + 1 */);

/* JSON string escaping as the store writes it (quotes not included). */
enum status logstore_json_escape(struct buf *b, const char *s, size_t n) WARN_UNUSED_RESULT;

#endif
