/* apiserver/logbatch.c -- one pass over a /containers/log_batch message (see logbatch.h). */
#include <stdlib.h>
#include <string.h>

#include "apiserver/logbatch.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define DEPTH_MAX 64
#define METHOD "\"/containers/log_batch\""

struct p {
    const char *s, *e;
    char *out; /* scratch write position */
};

static void ws(struct p *p)
{
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int lit(struct p *p, char c)
{
    ws(p);
    if (p->s < p->e && *p->s == c) {
        p->s++;
        return 1;
    }
    return 0;
}

static int word(struct p *p, const char *w)
{
    size_t n = strlen(w);
    ws(p);
    if ((size_t)(p->e - p->s) >= n && memcmp(p->s, w, n) == 0) {
        p->s += n;
        return 1;
    }
    return 0;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        *v <<= 4;
        if (c >= '0' && c <= '9')
            *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            *v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

static void put_utf8(struct p *p, unsigned cp)
{
    if (cp < 0x80) {
        *p->out++ = (char)cp;
    } else if (cp < 0x800) {
        *p->out++ = (char)(0xc0 | (cp >> 6));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *p->out++ = (char)(0xe0 | (cp >> 12));
        *p->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *p->out++ = (char)(0xf0 | (cp >> 18));
        *p->out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *p->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *p->out++ = (char)(0x80 | (cp & 0x3f));
    }
}

/* A string at p->s, decoded into the scratch (when out is set; else only checked). The
 * decoded form is never longer than the encoded one (a \uXXXX escape is 6 bytes for at most
 * 3, a surrogate pair 12 for 4), and the closing quote pays for the NUL. */
static char *str(struct p *p, int keep)
{
    char *start = p->out;

    ws(p);
    if (p->s >= p->e || *p->s != '"')
        return NULL;
    p->s++;
    while (p->s < p->e) {
        const char *q = p->s;
        unsigned char c;
        while (q < p->e && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        if (keep) {
            memcpy(p->out, p->s, (size_t)(q - p->s));
            p->out += q - p->s;
        }
        p->s = q;
        if (p->s >= p->e)
            return NULL;
        c = (unsigned char)*p->s;
        if (c == '"') {
            p->s++;
            if (!keep)
                return (char *)p->s; /* any non-NULL */
            *p->out++ = '\0';
            return start;
        }
        if (c < 0x20)
            return NULL;
        /* a backslash */
        if (p->e - p->s < 2)
            return NULL;
        p->s++;
        c = (unsigned char)*p->s++;
        if (c == 'u') {
            unsigned cp, lo;
            if (p->e - p->s < 4 || hex4(p->s, &cp) != 0)
                return NULL;
            p->s += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p->e - p->s >= 6 && p->s[0] == '\\' &&
                p->s[1] == 'u' && hex4(p->s + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p->s += 6;
            } else if (cp >= 0xd800 && cp < 0xe000) {
                cp = '?'; /* a lone surrogate has no UTF-8 form */
            }
            if (keep)
                put_utf8(p, cp);
            continue;
        }
        {
            char d;
            switch (c) {
            case '"': d = '"'; break;
            case '\\': d = '\\'; break;
            case '/': d = '/'; break;
            case 'b': d = '\b'; break;
            case 'f': d = '\f'; break;
            case 'n': d = '\n'; break;
            case 'r': d = '\r'; break;
            case 't': d = '\t'; break;
            default: return NULL;
            }
            if (keep)
                *p->out++ = d;
        }
    }
    return NULL;
}

/* A JSON number: its span, checked against the grammar. */
static int number(struct p *p, const char **start, size_t *n)
{
    const char *s;

    ws(p);
    s = p->s;
    if (p->s < p->e && *p->s == '-')
        p->s++;
    if (p->s >= p->e)
        return 0;
    if (*p->s == '0') {
        p->s++;
    } else if (*p->s >= '1' && *p->s <= '9') {
        while (p->s < p->e && *p->s >= '0' && *p->s <= '9')
            p->s++;
    } else {
        return 0;
    }
    if (p->s < p->e && *p->s == '.') {
        const char *d = ++p->s;
        while (p->s < p->e && *p->s >= '0' && *p->s <= '9')
            p->s++;
        if (p->s == d)
            return 0;
    }
    if (p->s < p->e && (*p->s == 'e' || *p->s == 'E')) {
        const char *d;
        p->s++;
        if (p->s < p->e && (*p->s == '+' || *p->s == '-'))
            p->s++;
        d = p->s;
        while (p->s < p->e && *p->s >= '0' && *p->s <= '9')
            p->s++;
        if (p->s == d)
            return 0;
    }
    *start = s;
    *n = (size_t)(p->s - s);
    return 1;
}

static int skip(struct p *p, int depth)
{
    const char *ns;
    size_t nn;

    if (depth > DEPTH_MAX)
        return 0;
    ws(p);
    if (p->s >= p->e)
        return 0;
    switch (*p->s) {
    case '"':
        return str(p, 0) != NULL;
    case '{':
        p->s++;
        if (lit(p, '}'))
            return 1;
        do {
            if (!str(p, 0) || !lit(p, ':') || !skip(p, depth + 1))
                return 0;
        } while (lit(p, ','));
        return lit(p, '}');
    case '[':
        p->s++;
        if (lit(p, ']'))
            return 1;
        do {
            if (!skip(p, depth + 1))
                return 0;
        } while (lit(p, ','));
        return lit(p, ']');
    case 't':
        return word(p, "true");
    case 'f':
        return word(p, "false");
    case 'n':
        return word(p, "null");
    default:
        return number(p, &ns, &nn);
    }
}

/* Whether s[0..n) is an integer (the input is not NUL-terminated: no str* here). */
static int all_int(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-')))
            return 0;
    return n > 0;
}

/* An integer value that fits, else -1 (the value is consumed either way); 0 on bad JSON. */
static int int_or_skip(struct p *p, long long *v)
{
    const char *s;
    size_t n;
    char tmp[24];

    ws(p);
    *v = -1;
    if (p->s < p->e && (*p->s == '-' || (*p->s >= '0' && *p->s <= '9'))) {
        if (!number(p, &s, &n))
            return 0;
        if (n < sizeof(tmp) && all_int(s, n)) {
            memcpy(tmp, s, n);
            tmp[n] = '\0';
            *v = strtoll(tmp, NULL, 10);
        }
        return 1;
    }
    return skip(p, 1);
}

/* A string value (decoded) or NULL when it is another type; 0 on bad JSON. */
static int str_or_null(struct p *p, const char **out)
{
    ws(p);
    *out = NULL;
    if (p->s < p->e && *p->s == '"')
        return (*out = str(p, 1)) != NULL;
    return skip(p, 1);
}

static int item(struct p *p, struct log_item *it)
{
    memset(it, 0, sizeof(*it));
    it->instance = -1;
    if (lit(p, '}'))
        return 1;
    do {
        const char *k = str(p, 1);
        const char **dst = NULL;
        if (!k || !lit(p, ':'))
            return 0;
        if (!strcmp(k, "id"))
            dst = &it->container_id;
        else if (!strcmp(k, "name"))
            dst = &it->name;
        else if (!strcmp(k, "stack"))
            dst = &it->stack;
        else if (!strcmp(k, "service"))
            dst = &it->service;
        else if (!strcmp(k, "time"))
            dst = &it->time;
        else if (!strcmp(k, "type"))
            dst = &it->type;
        else if (!strcmp(k, "data"))
            dst = &it->data;
        if (dst) {
            if (!str_or_null(p, dst))
                return 0;
        } else if (!strcmp(k, "instance")) {
            long long v;
            if (!int_or_skip(p, &v))
                return 0;
            it->instance = v >= 0 && v < 1000000 ? (long)v : -1;
        } else if (!skip(p, 1)) {
            return 0;
        }
    } while (lit(p, ','));
    return lit(p, '}');
}

int logbatch_parse(const char *msg, size_t len, size_t max_items, struct logbatch *b,
                   const char **why)
{
    struct p p = {msg, msg + len, NULL};
    const char *ns;
    size_t nn, cap = 0;
    long long id;
    char tmp[24];
    int found = 0;

    *why = NULL;
    /* cheap test first: every other message goes its usual way */
    if (!lit(&p, '[') || !word(&p, "0") || !lit(&p, ',') || !number(&p, &ns, &nn) ||
        !lit(&p, ','))
        return 0;
    ws(&p);
    if ((size_t)(p.e - p.s) < sizeof(METHOD) - 1 || memcmp(p.s, METHOD, sizeof(METHOD) - 1) != 0)
        return 0;
    p.s += sizeof(METHOD) - 1;
    memset(b, 0, sizeof(*b));
    if (nn >= sizeof(tmp) || !all_int(ns, nn)) {
        *why = "the request id must be an integer";
        return -1;
    }
    memcpy(tmp, ns, nn);
    tmp[nn] = '\0';
    id = strtoll(tmp, NULL, 10);
    b->msgid = id;
    b->scratch = xmalloc(len + 1);
    p.out = b->scratch;
    *why = "params must be [{\"items\": [...]}]";
    if (!lit(&p, ',') || !lit(&p, '[') || !lit(&p, '{'))
        goto bad;
    if (!lit(&p, '}')) {
        do {
            const char *k = str(&p, 1);
            if (!k || !lit(&p, ':'))
                goto bad;
            if (strcmp(k, "items") != 0) {
                if (!skip(&p, 1))
                    goto bad;
                continue;
            }
            if (!lit(&p, '['))
                goto bad;
            found = 1;
            if (lit(&p, ']'))
                continue;
            do {
                ws(&p);
                if (p.s < p.e && *p.s == '{') {
                    p.s++;
                    if (b->n == max_items) {
                        *why = "too many items in one batch";
                        goto bad;
                    }
                    if (b->n == cap) {
                        cap = cap ? cap * 2 : 64;
                        b->items = xrealloc(b->items, cap * sizeof(*b->items));
                    }
                    if (!item(&p, &b->items[b->n]))
                        goto bad;
                    b->n++;
                } else if (!skip(&p, 1)) {
                    goto bad;
                }
            } while (lit(&p, ','));
            if (!lit(&p, ']'))
                goto bad;
        } while (lit(&p, ','));
        if (!lit(&p, '}'))
            goto bad;
    }
    while (lit(&p, ',')) /* more params: ignored */
        if (!skip(&p, 1))
            goto bad;
    if (!found || !lit(&p, ']') || !lit(&p, ']'))
        goto bad;
    ws(&p);
    if (p.s != p.e)
        goto bad;
    *why = NULL;
    return 1;
bad:
    logbatch_release(b);
    b->msgid = id;
    return -1;
}

void logbatch_release(struct logbatch *b)
{
    free(b->items);
    free(b->scratch);
    b->items = NULL;
    b->scratch = NULL;
    b->n = 0;
}
