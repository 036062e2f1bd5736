/* common/err.h -- one status enum for the whole tree, with an optional detail record.
 *
 * Functions that can fail return enum status and take an optional last argument
 * `struct err *e` (may be NULL) that receives a human-readable message in the git style:
 * lower case, no final period, what failed first, subject in quotes, cause last.
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stdarg.h>

enum status {
    ST_OK = 0,
    ST_RETRY,    /* timeout, peer down: the same call may succeed later */
    ST_CONFLICT, /* an etcd compare was lost (someone else wrote first) or a duplicate */
    ST_NOTFOUND, /* the thing asked for does not exist */
    ST_INVALID,  /* bad input or a reply over its cap: retrying will not help */
    ST_IO,       /* anything else that went wrong talking to the outside world */
    ST_DENIED,   /* authentication or permission refused */
    ST_COMPACTED, /* an etcd watch's start revision was compacted: re-list, then watch again */
};

#define ERR_MSG_LEN 512

struct err {
    enum status st;
    char msg[ERR_MSG_LEN];
};

#define ERR_INIT {ST_OK, ""}

#if defined(__GNUC__)
#define WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#else
#define WARN_UNUSED_RESULT
#define PRINTF_LIKE(f, a)
#define NORETURN
#endif

/* Record st and a formatted message in e (if not NULL) and return st. */
enum status err_set(struct err *e, enum status st, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Prefix the message already in e with "<prefix>: " (keeps its status); returns e->st or
 * ST_IO when e is NULL. */
enum status err_wrap(struct err *e, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Clear e (no-op on NULL). */
void err_clear(struct err *e);
/* Lower-case name of a status, e.g. "conflict". */
const char *status_name(enum status st);

/* Bugs are not errors: abort with file:line. */
#define BUG_ON(cond)                                                                               \
    do {                                                                                           \
        if (cond)                                                                                  \
            bug_fail(__FILE__, __LINE__, #cond);                                                   \
    } while (0)
NORETURN void bug_fail(const char *file, int line, const char *what);

#endif
