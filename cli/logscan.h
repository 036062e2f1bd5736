/* cli/logscan.h -- finds the JSON objects in a log follow stream (master-api.md §2.12).
 *
 * The master writes one bare JSON object per entry, no separator, with " " keep-alives in
 * between, and the bytes arrive split anywhere. A logscan is fed the bytes as they come and
 * calls back once per complete top-level object: it counts braces outside strings (escapes
 * inside strings understood), so it never parses a partial object and copies only the bytes
 * of the object still incomplete at the end of a piece. Whitespace between objects is
 * skipped; any other byte there is counted in `garbage` and skipped.
 *
 *     struct logscan s;
 *     logscan_init(&s, 4u << 20);
 *     while (piece arrives) if (logscan_feed(&s, p, n, on_object, arg) != ST_OK) break;
 *     logscan_release(&s);
 *
 * Not thread-safe (one stream, one thread).
 */
#ifndef CLI_LOGSCAN_H
#define CLI_LOGSCAN_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct logscan {
    struct buf pending;     /* the incomplete object, from its '{' */
    size_t scan;            /* bytes of pending already scanned */
    int depth, in_str, esc; /* scanner state after them */
    size_t garbage;         /* bytes between objects that were not whitespace */
};

/* Called with each complete object (borrowed, not NUL-terminated, valid during the call). */
typedef void logscan_fn(void *arg, const char *obj, size_t len);

/* max_object: the largest object accepted (bytes). */
void logscan_init(struct logscan *s, size_t max_object);
void logscan_release(struct logscan *s);
/* Forget a partial object (a new connection starts at an object boundary). */
void logscan_reset(struct logscan *s);
/* Scan n more bytes. ST_OK, or ST_INVALID when an object grows beyond max_object (the
 * scanner is then reset). */
enum status logscan_feed(struct logscan *s, const char *p, size_t n, logscan_fn *fn,
                         void *arg) WARN_UNUSED_RESULT;

/* The fields of one log entry the CLI prints, read straight from the object's text without
 * building a JSON tree (the follower's hot path: a tree per line cost more CPU than the
 * master spent storing it). Strings are decoded (every JSON escape, \uXXXX with surrogate
 * pairs, into UTF-8); a member that is absent, null or of another type is NULL / not set.
 * Nested objects and arrays (node, grid, stack, service) are skipped. Pointers stay valid
 * until the next logentry_parse() on the same struct or logentry_release(). */
struct logentry {
    const char *id;   /* "id" as text: a number's digits or a string's value */
    const char *name; /* container name */
    const char *created_at;
    const char *type; /* "stdout" | "stderr" */
    const char *data;
    const char *reason; /* of a {"dropped": N, "reason": ...} marker */
    long long instance; /* when has_instance */
    long long dropped;  /* when has_dropped */
    int has_instance, has_dropped;
    struct buf store; /* the decoded strings */
};

void logentry_init(struct logentry *e);
void logentry_release(struct logentry *e);
/* Parse one object (as logscan hands it over). ST_OK, or ST_INVALID when it is not a JSON
 * object (the fields are then unset). */
enum status logentry_parse(struct logentry *e, const char *obj, size_t len) WARN_UNUSED_RESULT;

#endif
