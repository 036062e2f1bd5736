/* cli/logscan.c -- object boundaries in a log follow stream; see logscan.h. */
#include "cli/logscan.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- logentry: the printed fields of an entry, without a JSON tree ---- */

void logentry_init(struct logentry *e)
{
    memset(e, 0, sizeof(*e));
    buf_init(&e->store, 0);
}

void logentry_release(struct logentry *e)
{
    buf_release(&e->store);
    memset(e, 0, sizeof(*e));
}

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put(struct buf *b, const void *p, size_t n)
{
    return b && buf_append(b, p, n) != ST_OK ? -1 : 0;
}

static int put_utf8(struct buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return put(b, u, n);
}

/* A string at c->p (its opening quote): decoded into b (NUL-terminated) when b is not NULL,
 * else only skipped. 0, or -1 when it is not a valid JSON string. */
static int string(struct cursor *c, struct buf *b)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    c->p++;
    while (c->p < c->end) {
        const char *run = c->p;
        unsigned cp, lo;

        while (c->p < c->end && *c->p != '"' && *c->p != '\\' && (unsigned char)*c->p >= 0x20)
            c->p++;
        if (put(b, run, (size_t)(c->p - run)) != 0 || c->p >= c->end)
            return -1;
        if (*c->p == '"') {
            c->p++;
            return put(b, "", 1);
        }
        if ((unsigned char)*c->p < 0x20)
            return -1;
        /* an escape */
        if (c->end - c->p < 2)
            return -1;
        switch (c->p[1]) {
        case '"':
        case '\\':
        case '/':
            if (put(b, c->p + 1, 1) != 0)
                return -1;
            break;
        case 'b':
            if (put(b, "\b", 1) != 0)
                return -1;
            break;
        case 'f':
            if (put(b, "\f", 1) != 0)
                return -1;
            break;
        case 'n':
            if (put(b, "\n", 1) != 0)
                return -1;
            break;
        case 'r':
            if (put(b, "\r", 1) != 0)
                return -1;
            break;
        case 't':
            if (put(b, "\t", 1) != 0)
                return -1;
            break;
        case 'u':
            if (c->end - c->p < 6 || hex4(c->p + 2, &cp) != 0)
                return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                /* a high surrogate needs its low half */
                if (c->end - c->p < 12 || c->p[6] != '\\' || c->p[7] != 'u' ||
                    hex4(c->p + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                c->p += 6;
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }
            if (put_utf8(b, cp) != 0)
                return -1;
            c->p += 4;
            break;
        default:
            return -1;
        }
        c->p += 2;
    }
    return -1;
}

/* A scalar token (number, true, false, null) at c->p: its extent. 0 or -1. */
static int token(struct cursor *c, const char **start, size_t *len)
{
    *start = c->p;
    while (c->p < c->end &&
           (isalnum((unsigned char)*c->p) || *c->p == '-' || *c->p == '+' || *c->p == '.'))
        c->p++;
    *len = (size_t)(c->p - *start);
    return *len ? 0 : -1;
}

/* Skip any value (objects and arrays by depth, strings with their escapes). */
static int skip_value(struct cursor *c)
{
    const char *t;
    size_t n;
    int depth = 0;

    skip_ws(c);
    if (c->p >= c->end)
        return -1;
    if (*c->p == '"')
        return string(c, NULL);
    if (*c->p != '{' && *c->p != '[')
        return token(c, &t, &n);
    do {
        if (c->p >= c->end)
            return -1;
        if (*c->p == '"') {
            if (string(c, NULL) != 0)
                return -1;
            continue;
        }
        if (*c->p == '{' || *c->p == '[')
            depth++;
        else if (*c->p == '}' || *c->p == ']')
            depth--;
        c->p++;
    } while (depth > 0);
    return 0;
}

/* An integer token as long long; 0 or -1. */
static int integer(const char *t, size_t n, long long *out)
{
    char tmp[32], *end;

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    *out = strtoll(tmp, &end, 10);
    return *end ? -1 : 0;
}

enum status logentry_parse(struct logentry *e, const char *obj, size_t len)
{
    /* where each wanted string starts in e->store (SIZE_MAX: absent) */
    enum { F_ID, F_NAME, F_CREATED, F_TYPE, F_DATA, F_REASON, NF };
    static const char *const keys[NF] = {"id", "name", "created_at", "type", "data", "reason"};
    size_t off[NF];
    struct cursor c = {obj, obj + len};
    const char **fields[NF];

    fields[F_ID] = &e->id;
    fields[F_NAME] = &e->name;
    fields[F_CREATED] = &e->created_at;
    fields[F_TYPE] = &e->type;
    fields[F_DATA] = &e->data;
    fields[F_REASON] = &e->reason;
    for (int i = 0; i < NF; i++) {
        off[i] = SIZE_MAX;
        *fields[i] = NULL;
    }
    e->has_instance = e->has_dropped = 0;
    buf_reset(&e->store);

    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return ST_INVALID;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
        goto done;
    }
    for (;;) {
        const char *k, *t;
        size_t klen, n;
        int want = -1;

        skip_ws(&c);
        k = c.p + 1;
        if (string(&c, NULL) != 0)
            return ST_INVALID;
        klen = (size_t)(c.p - 1 - k);
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return ST_INVALID;
        c.p++;
        skip_ws(&c);
        if (c.p >= c.end)
            return ST_INVALID;
        for (int i = 0; i < NF; i++)
            if (strlen(keys[i]) == klen && !memcmp(keys[i], k, klen))
                want = i;
        if (want >= 0 && *c.p == '"') {
            off[want] = e->store.len;
            if (string(&c, &e->store) != 0)
                return ST_INVALID;
        } else if (*c.p == '-' || isdigit((unsigned char)*c.p)) {
            long long v;
            if (token(&c, &t, &n) != 0)
                return ST_INVALID;
            if (want == F_ID) {
                off[F_ID] = e->store.len;
                if (put(&e->store, t, n) != 0 || put(&e->store, "", 1) != 0)
                    return ST_INVALID;
            } else if (klen == 8 && !memcmp(k, "instance", 8) && integer(t, n, &v) == 0) {
                e->instance = v;
                e->has_instance = 1;
            } else if (klen == 7 && !memcmp(k, "dropped", 7) && integer(t, n, &v) == 0) {
                e->dropped = v;
                e->has_dropped = 1;
            }
        } else if (skip_value(&c) != 0) {
            return ST_INVALID;
        }
        skip_ws(&c);
        if (c.p >= c.end)
            return ST_INVALID;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}') {
            c.p++;
            break;
        }
        return ST_INVALID;
    }
done:
    skip_ws(&c);
    if (c.p != c.end) {
        for (int i = 0; i < NF; i++)
            *fields[i] = NULL;
        e->has_instance = e->has_dropped = 0;
        return ST_INVALID;
    }
    /* the store does not move any more: point into it */
    for (int i = 0; i < NF; i++)
        *fields[i] = off[i] == SIZE_MAX ? NULL : e->store.ptr + off[i];
    return ST_OK;
}
