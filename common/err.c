#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum status err_set(struct err *e, enum status st, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return st;
    e->st = st;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return st;
}

enum status err_wrap(struct err *e, const char *fmt, ...)
{
    char old[ERR_MSG_LEN];
    va_list ap;
    int n;

    if (!e)
        return ST_IO;
    memcpy(old, e->msg, sizeof(old));
    va_start(ap, fmt);
    n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    /* Append ": <old message>", truncating the old message if the whole does not fit. */
    if (n >= 0 && (size_t)n + 2 < sizeof(e->msg)) {
        size_t room = sizeof(e->msg) - (size_t)n - 2;
        e->msg[n] = ':';
        e->msg[n + 1] = ' ';
        memcpy(e->msg + n + 2, old, room);
        e->msg[sizeof(e->msg) - 1] = '\0';
    }
    return e->st;
}

void err_clear(struct err *e)
{
    if (!e)
        return;
    e->st = ST_OK;
    e->msg[0] = '\0';
}

const char *status_name(enum status st)
{
    switch (st) {
    case ST_OK:
        return "ok";
    case ST_RETRY:
        return "retry";
    case ST_CONFLICT:
        return "conflict";
    case ST_NOTFOUND:
        return "not found";
    case ST_INVALID:
        return "invalid";
    case ST_IO:
        return "i/o error";
    case ST_DENIED:
        return "denied";
    case ST_COMPACTED:
        return "compacted";
    }
    return "unknown";
}

void bug_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "BUG: %s:%d: %s\n", file, line, what);
    abort();
}
