/* cli/logscan.c -- object boundaries in a log follow stream; see logscan.h. */
#include "cli/logscan.h"

#include <ctype.h>

#include "common/banned.h"

void logscan_init(struct logscan *s, size_t max_object)
{
    buf_init(&s->pending, max_object);
    s->scan = 0;
    s->depth = s->in_str = s->esc = 0;
    s->garbage = 0;
}

void logscan_release(struct logscan *s)
{
    buf_release(&s->pending);
}

void logscan_reset(struct logscan *s)
{
    buf_reset(&s->pending);
    s->scan = 0;
    s->depth = s->in_str = s->esc = 0;
}

/* Scan p[from..len): calls fn per complete object; returns where the incomplete object
 * begins (len when there is none). */
static size_t scan(struct logscan *s, const char *p, size_t from, size_t len, logscan_fn *fn,
                   void *arg)
{
    size_t i, start = 0;

    for (i = from; i < len; i++) {
        char ch = p[i];

        if (s->depth == 0) {
            if (ch == '{') {
                start = i;
                s->depth = 1;
            } else if (!isspace((unsigned char)ch)) {
                s->garbage++;
            }
            continue;
        }
        if (s->in_str) {
            if (s->esc)
                s->esc = 0;
            else if (ch == '\\')
                s->esc = 1;
            else if (ch == '"')
                s->in_str = 0;
            continue;
        }
        if (ch == '"') {
            s->in_str = 1;
        } else if (ch == '{') {
            s->depth++;
        } else if (ch == '}' && --s->depth == 0) {
            fn(arg, p + start, i + 1 - start);
        }
    }
    return s->depth == 0 ? len : start;
}

enum status logscan_feed(struct logscan *s, const char *p, size_t n, logscan_fn *fn, void *arg)
{
    size_t keep;

    if (s->pending.len == 0) {
        /* The common case: scan the piece where it is, copy only an incomplete tail. */
        keep = scan(s, p, 0, n, fn, arg);
        if (keep < n && buf_append(&s->pending, p + keep, n - keep) != ST_OK)
            goto too_big;
        s->scan = n - keep;
        return ST_OK;
    }
    /* An object is pending (it starts at pending[0]): add the piece and go on scanning. */
    if (buf_append(&s->pending, p, n) != ST_OK)
        goto too_big;
    keep = scan(s, s->pending.ptr, s->scan, s->pending.len, fn, arg);
    /* Drop what is done: the rest (if any) is the next incomplete object, all scanned. */
    buf_consume(&s->pending, keep);
    s->scan = s->pending.len;
    return ST_OK;
too_big:
    logscan_reset(s);
    return ST_INVALID;
}
