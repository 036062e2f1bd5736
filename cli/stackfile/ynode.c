/* cli/stackfile/ynode.c -- YAML text → struct ynode trees (libyaml events), Psych-style
 * scalar typing, and the Psych-style YAML emitter used by `stack validate` (ynode.h). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli/stackfile/ynode.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* Aliases are expanded into deep copies, so a small document can describe a huge tree
 * ("billion laughs"). These caps bound the whole tree, copies included. */
#define YNODE_MAX_NODES 200000
#define YNODE_MAX_BYTES (32u << 20) /* scalar text, copies included */
#define YNODE_MAX_DEPTH 256

/* ---------------------------------------------------------------------------------------
 * Scalar typing: Psych's ScalarScanner#tokenize (Psych 3, the Ruby 2.x era), restricted to
 * the types JSON can carry. Dates, times and symbols stay strings.
 */

static int str_class(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ' ' || c == '\t' ||
           c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           (c && strchr("!@#$%^&*(){}<>|/\\~;=", c) != NULL);
}

static int ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+ followed by an optional fraction (when frac is set:
 * \.[0-9_]*). Returns 1 and the value on a match. */
static int base60(const char *s, int frac, double *out)
{
    const char *p = s;
    int neg = 0;
    double v = 0, part = 0;
    int parts = 0;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p) || *p == '_') {
        if (*p != '_')
            part = part * 10 + (*p - '0');
        p++;
    }
    v = part;
    while (*p == ':') {
        p++;
        if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
            if (p[0] > '5')
                return 0;
            part = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
        } else if (isdigit((unsigned char)p[0])) {
            part = p[0] - '0';
            p++;
        } else {
            return 0;
        }
        v = v * 60 + part;
        parts++;
    }
    if (parts == 0)
        return 0;
    if (frac) {
        if (*p != '.')
            return 0;
        double scale = 0.1;
        for (p++; isdigit((unsigned char)*p) || *p == '_'; p++) {
            if (*p != '_') {
                v += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    if (*p)
        return 0;
    *out = neg ? -v : v;
    return 1;
}

/* FLOAT of Psych: [-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)? */
static int psych_float(const char *s, double *out)
{
    const char *p = s;
    char clean[128];
    size_t n = 0;

    if (*p == '-' || *p == '+')
        p++;
    if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p) || *p == '_' || *p == ',')
            p++;
    }
    if (*p != '.')
        return 0;
    p++;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p != '-' && *p != '+')
            return 0;
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return 0;
    /* "." and "-." are strings. */
    p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (strcmp(p, ".") == 0)
        return 0;
    /* gsub(/[,_]|\.([Ee]|$)/, '\1') then Float(). */
    for (p = s; *p && n + 2 < sizeof(clean); p++) {
        if (*p == ',' || *p == '_')
            continue;
        if (*p == '.' && (p[1] == 'e' || p[1] == 'E' || p[1] == '\0'))
            continue;
        clean[n++] = *p;
    }
    if (*p)
        return 0; /* absurdly long: leave it a string */
    clean[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(clean, &end);
    if (*end || end == clean)
        return 0;
    *out = v;
    return 1;
}

/* INTEGER of Psych, then Integer(s.delete(',_')). Values beyond long long saturate. */
static int psych_int(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0, base = 10;
    const char *digits;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (p[0] == '0' && p[1] == 'b') {
        base = 2;
        digits = p + 2;
        if (!*digits)
            return 0;
        for (const char *q = digits; *q; q++)
            if (*q != '0' && *q != '1' && *q != '_' && *q != ',')
                return 0;
    } else if (p[0] == '0' && p[1] == 'x') {
        base = 16;
        digits = p + 2;
        if (!*digits)
            return 0;
        for (const char *q = digits; *q; q++)
            if (!isxdigit((unsigned char)*q) && *q != '_' && *q != ',')
                return 0;
    } else if (p[0] == '0' && p[1]) {
        base = 8;
        digits = p + 1;
        for (const char *q = digits; *q; q++)
            if ((*q < '0' || *q > '7') && *q != '_' && *q != ',')
                return 0;
    } else if (p[0] == '0') {
        *out = 0;
        return 1;
    } else if (p[0] >= '1' && p[0] <= '9') {
        digits = p;
        for (const char *q = p + 1; *q; q++) {
            if (isdigit((unsigned char)*q))
                continue;
            if ((*q == ',' || *q == '_') && isdigit((unsigned char)q[1])) {
                q++;
                continue;
            }
            return 0;
        }
    } else {
        return 0;
    }
    unsigned long long v = 0;
    int any = 0, over = 0;
    for (const char *q = digits; *q; q++) {
        int d;
        if (*q == '_' || *q == ',')
            continue;
        d = isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10);
        if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base)
            over = 1;
        else
            v = v * (unsigned)base + (unsigned)d;
        any = 1;
    }
    if (!any)
        return 0; /* "0b_": Integer() would raise; keep the text */
    if (over || v > (unsigned long long)LLONG_MAX)
        *out = neg ? LLONG_MIN : LLONG_MAX;
    else
        *out = neg ? -(long long)v : (long long)v;
    return 1;
}

/* Type a plain, untagged scalar. */
static void tokenize(struct ynode *n)
{
    const char *s = n->text;
    size_t len = strlen(s);
    double d;

    n->stype = YS_STR;
    if (len == 0) {
        n->stype = YS_NULL;
        return;
    }
    if (strchr(s, '\n'))
        return;
    if (str_class((unsigned char)s[0]) ||
        (!isdigit((unsigned char)s[0]) && !strchr(".:-", s[0]) && str_class((unsigned char)s[1]))) {
        if (len > 5 || !strchr("ytonfYTONF~", s[0]))
            return;
        if (strcmp(s, "~") == 0 || ieq(s, "null")) {
            n->stype = YS_NULL;
        } else if (ieq(s, "yes") || ieq(s, "true") || ieq(s, "on")) {
            n->stype = YS_BOOL;
            n->bval = 1;
        } else if (ieq(s, "no") || ieq(s, "false") || ieq(s, "off")) {
            n->stype = YS_BOOL;
            n->bval = 0;
        }
        return;
    }
    if (ieq(s, ".inf") || ieq(s, "+.inf")) {
        n->stype = YS_FLOAT;
        n->fval = INFINITY;
        return;
    }
    if (ieq(s, "-.inf")) {
        n->stype = YS_FLOAT;
        n->fval = -INFINITY;
        return;
    }
    if (ieq(s, ".nan")) {
        n->stype = YS_FLOAT;
        n->fval = NAN;
        return;
    }
    if (s[0] == ':')
        return; /* a Ruby symbol: its text */
    if (base60(s, 0, &d)) {
        n->stype = YS_INT;
        n->ival = d >= (double)LLONG_MAX   ? LLONG_MAX
                  : d <= (double)LLONG_MIN ? LLONG_MIN
                                           : (long long)d;
        return;
    }
    if (base60(s, 1, &d)) {
        n->stype = YS_FLOAT;
        n->fval = d;
        return;
    }
    if (psych_float(s, &d)) {
        n->stype = YS_FLOAT;
        n->fval = d;
        return;
    }
    if (psych_int(s, &n->ival))
        n->stype = YS_INT;
}

/* ---------------------------------------------------------------------------------------
 * Nodes.
 */

struct budget {
    size_t nodes;
    size_t bytes;
    int over;
};

static int spend(struct budget *b, size_t bytes)
{
    if (!b)
        return 1;
    b->nodes++;
    b->bytes += bytes;
    if (b->nodes > YNODE_MAX_NODES || b->bytes > YNODE_MAX_BYTES)
        b->over = 1;
    return !b->over;
}

/* Item arrays are sized to capfor(len), so a node can grow without a capacity field. */
static size_t capfor(size_t len)
{
    size_t c = 4;
    while (c < len)
        c *= 2;
    return c;
}

static struct ynode *node_new(enum ynode_kind kind, int line, int col)
{
    struct ynode *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->line = line;
    n->col = col;
    if (kind != YN_SCALAR) {
        n->vals = xcalloc(capfor(0), sizeof(*n->vals));
        if (kind == YN_MAP)
            n->keys = xcalloc(capfor(0), sizeof(*n->keys));
    }
    return n;
}

static void node_append(struct ynode *n, struct ynode *k, struct ynode *v)
{
    if (n->len + 1 > capfor(n->len)) {
        size_t c = capfor(n->len + 1);
        n->vals = xrealloc(n->vals, c * sizeof(*n->vals));
        if (n->kind == YN_MAP)
            n->keys = xrealloc(n->keys, c * sizeof(*n->keys));
    }
    if (n->kind == YN_MAP)
        n->keys[n->len] = k;
    n->vals[n->len++] = v;
}

void ynode_free(struct ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->len; i++) {
        if (n->keys)
            ynode_free(n->keys[i]);
        ynode_free(n->vals[i]);
    }
    free(n->keys);
    free(n->vals);
    free(n->text);
    free(n);
}

static struct ynode *dup_budget(const struct ynode *n, struct budget *b)
{
    struct ynode *c;

    if (!n || !spend(b, n->text ? strlen(n->text) : 0))
        return NULL;
    c = node_new(n->kind, n->line, n->col);
    c->stype = n->stype;
    c->text = n->text ? xstrdup(n->text) : NULL;
    c->ival = n->ival;
    c->fval = n->fval;
    c->bval = n->bval;
    for (size_t i = 0; i < n->len; i++) {
        struct ynode *k = NULL, *v;
        if (n->kind == YN_MAP) {
            k = dup_budget(n->keys[i], b);
            if (!k)
                goto fail;
        }
        v = dup_budget(n->vals[i], b);
        if (!v) {
            ynode_free(k);
            goto fail;
        }
        node_append(c, k, v);
    }
    return c;
fail:
    ynode_free(c);
    return NULL;
}

struct ynode *ynode_dup(const struct ynode *n)
{
    return dup_budget(n, NULL);
}

static int scalar_equal(const struct ynode *a, const struct ynode *b)
{
    if (a->stype != b->stype)
        return 0;
    switch (a->stype) {
    case YS_NULL:
        return 1;
    case YS_BOOL:
        return a->bval == b->bval;
    case YS_INT:
        return a->ival == b->ival;
    case YS_FLOAT:
        return a->fval == b->fval;
    case YS_STR:
        return strcmp(a->text, b->text) == 0;
    }
    return 0;
}

/* Equality of hash keys (Ruby eql? on the loaded values). */
static int node_equal(const struct ynode *a, const struct ynode *b)
{
    if (a->kind != b->kind || a->len != b->len)
        return 0;
    if (a->kind == YN_SCALAR)
        return scalar_equal(a, b);
    for (size_t i = 0; i < a->len; i++) {
        if (a->kind == YN_MAP && !node_equal(a->keys[i], b->keys[i]))
            return 0;
        if (!node_equal(a->vals[i], b->vals[i]))
            return 0;
    }
    return 1;
}

static uint64_t node_hash(const struct ynode *n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p;
    size_t len;

    if (n->kind != YN_SCALAR)
        return h ^ ((uint64_t)n->kind << 8) ^ n->len;
    switch (n->stype) {
    case YS_STR:
        p = (const unsigned char *)n->text;
        len = strlen(n->text);
        break;
    case YS_INT:
        p = (const unsigned char *)&n->ival;
        len = sizeof(n->ival);
        break;
    case YS_BOOL:
        p = (const unsigned char *)&n->bval;
        len = sizeof(n->bval);
        break;
    default: /* floats (0.0 == -0.0) and null share a bucket per type */
        p = NULL;
        len = 0;
        break;
    }
    h ^= (uint64_t)n->stype;
    h *= 1099511628211ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A mapping under construction, with an index of its keys so that duplicate keys and
 * merges stay linear. */
struct mapb {
    struct ynode *n;
    size_t *slots; /* index + 1, 0 = empty */
    size_t nslots;
};

static void mapb_rehash(struct mapb *m)
{
    size_t want = 16;
    while (want < m->n->len * 2 + 2)
        want *= 2;
    free(m->slots);
    m->slots = xcalloc(want, sizeof(*m->slots));
    m->nslots = want;
    for (size_t i = 0; i < m->n->len; i++) {
        size_t s = node_hash(m->n->keys[i]) & (want - 1);
        while (m->slots[s])
            s = (s + 1) & (want - 1);
        m->slots[s] = i + 1;
    }
}

/* hash[k] = v, Ruby style: an existing key keeps its place and its key node. Takes both. */
static void mapb_set(struct mapb *m, struct ynode *k, struct ynode *v)
{
    size_t s;

    if (m->nslots < m->n->len * 2 + 2)
        mapb_rehash(m);
    s = node_hash(k) & (m->nslots - 1);
    while (m->slots[s]) {
        size_t i = m->slots[s] - 1;
        if (node_equal(m->n->keys[i], k)) {
            ynode_free(m->n->vals[i]);
            m->n->vals[i] = v;
            ynode_free(k);
            return;
        }
        s = (s + 1) & (m->nslots - 1);
    }
    node_append(m->n, k, v);
    m->slots[s] = m->n->len;
}

static void mapb_release(struct mapb *m)
{
    free(m->slots);
    m->slots = NULL;
    m->nslots = 0;
}

/* hash.merge!(src): moves src's pairs into m and frees src's shell. */
static void mapb_merge(struct mapb *m, struct ynode *src)
{
    for (size_t i = 0; i < src->len; i++) {
        mapb_set(m, src->keys[i], src->vals[i]);
        src->keys[i] = src->vals[i] = NULL;
    }
    src->len = 0;
    ynode_free(src);
}

/* One key/value pair of a mapping, with Psych's merge-key rules:
 * `<<: {map}` merges; `<<: [maps]` merges the list (earlier items win among themselves);
 * anything else is stored under the key "<<". */
static void map_add_pair(struct mapb *m, struct ynode *k, struct ynode *v, int k_plain)
{
    if (k_plain && k->kind == YN_SCALAR && k->stype == YS_STR && strcmp(k->text, "<<") == 0) {
        if (v->kind == YN_MAP) {
            ynode_free(k);
            mapb_merge(m, v);
            return;
        }
        if (v->kind == YN_SEQ) {
            size_t i;
            for (i = 0; i < v->len && v->vals[i]->kind == YN_MAP; i++)
                ;
            if (i == v->len) {
                struct mapb h = {node_new(YN_MAP, v->line, v->col), NULL, 0};
                for (i = v->len; i-- > 0;) {
                    mapb_merge(&h, v->vals[i]);
                    v->vals[i] = NULL;
                }
                v->len = 0;
                ynode_free(v);
                ynode_free(k);
                mapb_release(&h);
                mapb_merge(m, h.n);
                return;
            }
        }
    }
    mapb_set(m, k, v);
}

/* ---------------------------------------------------------------------------------------
 * Parser: libyaml events → tree, with an explicit stack (no recursion on input depth).
 */

struct frame {
    struct mapb m; /* m.n: the collection being built */
    char *anchor;
    struct ynode *key; /* mappings: the key waiting for its value */
    int key_plain;
};

struct anchor {
    char *name;
    struct ynode *node; /* a private copy: the tree's own node may be merged away */
};

struct builder {
    struct frame *st;
    size_t depth, stcap;
    struct anchor *anchors;
    size_t nanchors, anchcap;
    struct budget budget;
    struct ynode *root;
    int done;
};

/* Remember a copy of n under name (a redefined anchor replaces the old one for later
 * aliases). Returns 0 when the copy goes over the budget. */
static int set_anchor(struct builder *b, const char *name, const struct ynode *n)
{
    struct ynode *copy;

    if (!name)
        return 1;
    copy = dup_budget(n, &b->budget);
    if (!copy)
        return 0;
    for (size_t i = 0; i < b->nanchors; i++) {
        if (strcmp(b->anchors[i].name, name) == 0) {
            ynode_free(b->anchors[i].node);
            b->anchors[i].node = copy;
            return 1;
        }
    }
    if (b->nanchors == b->anchcap) {
        b->anchcap = b->anchcap ? b->anchcap * 2 : 8;
        b->anchors = xrealloc(b->anchors, b->anchcap * sizeof(*b->anchors));
    }
    b->anchors[b->nanchors].name = xstrdup(name);
    b->anchors[b->nanchors++].node = copy;
    return 1;
}

/* A complete node: becomes the root, a sequence item, a mapping key or a mapping value. */
static void deliver(struct builder *b, struct ynode *n, int plain)
{
    struct frame *f;

    if (b->depth == 0) {
        b->root = n;
        return;
    }
    f = &b->st[b->depth - 1];
    if (f->m.n->kind == YN_SEQ) {
        node_append(f->m.n, NULL, n);
    } else if (!f->key) {
        f->key = n;
        f->key_plain = plain;
    } else {
        struct ynode *k = f->key;
        f->key = NULL;
        map_add_pair(&f->m, k, n, f->key_plain);
    }
}

static void builder_release(struct builder *b)
{
    for (size_t i = b->depth; i-- > 0;) {
        ynode_free(b->st[i].key);
        mapb_release(&b->st[i].m);
        ynode_free(b->st[i].m.n);
        free(b->st[i].anchor);
    }
    free(b->st);
    for (size_t i = 0; i < b->nanchors; i++) {
        free(b->anchors[i].name);
        ynode_free(b->anchors[i].node);
    }
    free(b->anchors);
    ynode_free(b->root);
}

static enum status yaml_problem(yaml_parser_t *p, struct err *e)
{
    const char *ctx = p->context ? p->context : "";
    return err_set(e, ST_INVALID, "(%zu:%zu) %s%s%s", p->problem_mark.line + 1,
                   p->problem_mark.column + 1, p->problem ? p->problem : "syntax error",
                   *ctx ? " " : "", ctx);
}

static enum status handle_event(struct builder *b, yaml_event_t *ev, struct err *e)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    struct ynode *n;

    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *tag = (const char *)ev->data.scalar.tag;
        int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!spend(&b->budget, ev->data.scalar.length))
            return err_set(e, ST_INVALID, "(%d:%d) document too large after expanding aliases",
                           line, col);
        n = node_new(YN_SCALAR, line, col);
        n->text = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->stype = YS_STR;
        if (tag && (strcmp(tag, "tag:yaml.org,2002:str") == 0 || strcmp(tag, "!str") == 0)) {
            plain = 0;
        } else if (tag &&
                   (strcmp(tag, "tag:yaml.org,2002:float") == 0 || strcmp(tag, "!float") == 0)) {
            tokenize(n);
            if (n->stype == YS_INT) {
                n->stype = YS_FLOAT;
                n->fval = (double)n->ival;
            }
        } else if (plain || (tag && strcmp(tag, "!") != 0)) {
            tokenize(n);
        }
        if (!set_anchor(b, (const char *)ev->data.scalar.anchor, n)) {
            ynode_free(n);
            return err_set(e, ST_INVALID, "(%d:%d) document too large after expanding aliases",
                           line, col);
        }
        deliver(b, n, plain && !tag);
        return ST_OK;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const yaml_char_t *anchor =
            seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
        if (b->depth >= YNODE_MAX_DEPTH)
            return err_set(e, ST_INVALID, "(%d:%d) nesting too deep (over %d levels)", line, col,
                           YNODE_MAX_DEPTH);
        if (!spend(&b->budget, 0))
            return err_set(e, ST_INVALID, "(%d:%d) document too large after expanding aliases",
                           line, col);
        if (b->depth == b->stcap) {
            b->stcap = b->stcap ? b->stcap * 2 : 16;
            b->st = xrealloc(b->st, b->stcap * sizeof(*b->st));
        }
        memset(&b->st[b->depth], 0, sizeof(b->st[0]));
        b->st[b->depth].m.n = node_new(seq ? YN_SEQ : YN_MAP, line, col);
        b->st[b->depth].anchor = anchor ? xstrdup((const char *)anchor) : NULL;
        b->depth++;
        return ST_OK;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame f = b->st[--b->depth];
        int ok;
        mapb_release(&f.m);
        ynode_free(f.key); /* cannot happen with a well-formed event stream */
        ok = set_anchor(b, f.anchor, f.m.n);
        free(f.anchor);
        deliver(b, f.m.n, 0);
        if (!ok)
            return err_set(e, ST_INVALID, "(%d:%d) document too large after expanding aliases",
                           line, col);
        return ST_OK;
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const struct ynode *target = NULL;
        for (size_t i = 0; i < b->nanchors; i++)
            if (strcmp(b->anchors[i].name, name) == 0)
                target = b->anchors[i].node;
        if (!target)
            return err_set(e, ST_INVALID, "(%d:%d) found undefined alias %s", line, col, name);
        n = dup_budget(target, &b->budget);
        if (!n)
            return err_set(e, ST_INVALID, "(%d:%d) document too large after expanding aliases",
                           line, col);
        deliver(b, n, 0);
        return ST_OK;
    }
    case YAML_DOCUMENT_END_EVENT:
        b->done = 1;
        return ST_OK;
    default:
        return ST_OK;
    }
}

enum status ynode_parse(const char *text, size_t len, struct ynode **out, struct err *e)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct builder b;
    enum status st = ST_OK;

    *out = NULL;
    memset(&b, 0, sizeof(b));
    if (!yaml_parser_initialize(&p))
        return err_set(e, ST_IO, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!b.done) {
        if (!yaml_parser_parse(&p, &ev)) {
            st = yaml_problem(&p, e);
            goto out;
        }
        int end = ev.type == YAML_STREAM_END_EVENT;
        st = handle_event(&b, &ev, e);
        yaml_event_delete(&ev);
        if (st != ST_OK)
            goto out;
        if (end)
            break;
    }
    if (!b.root) {
        b.root = node_new(YN_SCALAR, 1, 1);
        b.root->text = xstrdup("");
        b.root->stype = YS_NULL;
    }
    *out = b.root;
    b.root = NULL;
out:
    builder_release(&b);
    yaml_parser_delete(&p);
    return st;
}

/* ---------------------------------------------------------------------------------------
 * Accessors.
 */

const struct ynode *ynode_key(const struct ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP)
        return NULL;
    /* Last match: duplicates were folded already, but a key "1" and a key 1 may both be
     * there; only string keys are named by text. */
    for (size_t i = map->len; i-- > 0;) {
        const struct ynode *k = map->keys[i];
        if (k->kind == YN_SCALAR && k->stype == YS_STR && strcmp(k->text, key) == 0)
            return k;
    }
    return NULL;
}

const struct ynode *ynode_get(const struct ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP)
        return NULL;
    for (size_t i = map->len; i-- > 0;) {
        const struct ynode *k = map->keys[i];
        if (k->kind == YN_SCALAR && k->stype == YS_STR && strcmp(k->text, key) == 0)
            return map->vals[i];
    }
    return NULL;
}

const char *ynode_class(const struct ynode *n)
{
    if (!n)
        return "NilClass";
    if (n->kind == YN_MAP)
        return "Hash";
    if (n->kind == YN_SEQ)
        return "Array";
    switch (n->stype) {
    case YS_NULL:
        return "NilClass";
    case YS_BOOL:
        return n->bval ? "TrueClass" : "FalseClass";
    case YS_INT:
        return "Integer";
    case YS_FLOAT:
        return "Float";
    case YS_STR:
        return "String";
    }
    return "String";
}

int ynode_is_null(const struct ynode *n)
{
    return !n || (n->kind == YN_SCALAR && n->stype == YS_NULL);
}

int ynode_is_str(const struct ynode *n)
{
    return n && n->kind == YN_SCALAR && n->stype == YS_STR;
}

/* Ruby's Float#to_s: shortest round-trip digits, "1.0", "0.0001", "1.0e-05", "1.0e+16". */
static void ruby_float(double v, char *out, size_t size)
{
    char digits[40];
    int prec, exp10;

    if (isnan(v)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == 0) {
        snprintf(out, size, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(digits, sizeof(digits), "%.*e", prec - 1, v);
        if (strtod(digits, NULL) == v)
            break;
    }
    /* digits: [-]d.ddde[+-]XX */
    char mant[40];
    size_t m = 0;
    const char *p = digits;
    int neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            mant[m++] = *p;
    mant[m] = '\0';
    exp10 = atoi(p + 1);
    while (m > 1 && mant[m - 1] == '0')
        mant[--m] = '\0';
    if (exp10 >= 16 || exp10 < -4) {
        snprintf(out, size, "%s%c.%se%c%02d", neg ? "-" : "", mant[0], m > 1 ? mant + 1 : "0",
                 exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 >= 0) {
        char ip[40], fp[40];
        size_t il = (size_t)exp10 + 1;
        for (size_t i = 0; i < il; i++)
            ip[i] = i < m ? mant[i] : '0';
        ip[il] = '\0';
        if (m > il)
            snprintf(fp, sizeof(fp), "%s", mant + il);
        else
            snprintf(fp, sizeof(fp), "0");
        /* At most 17 significant digits and exp10 < 16: fits the caller's buffer. */
        if (snprintf(out, size, "%s%s.%s", neg ? "-" : "", ip, fp) >= (int)size)
            out[size - 1] = '\0';
    } else {
        char zeros[8] = "";
        for (int i = 0; i < -exp10 - 1; i++)
            zeros[i] = '0';
        zeros[-exp10 - 1] = '\0';
        snprintf(out, size, "%s0.%s%s", neg ? "-" : "", zeros, mant);
    }
}

static char *key_text(const struct ynode *k)
{
    char tmp[64];

    if (k->kind != YN_SCALAR) {
        json_t *j = ynode_to_json(k);
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        return s ? s : xstrdup("");
    }
    switch (k->stype) {
    case YS_NULL:
        return xstrdup("");
    case YS_BOOL:
        return xstrdup(k->bval ? "true" : "false");
    case YS_INT:
        return xasprintf("%lld", k->ival);
    case YS_FLOAT:
        ruby_float(k->fval, tmp, sizeof(tmp));
        return xstrdup(tmp);
    case YS_STR:
        break;
    }
    return xstrdup(k->text);
}

json_t *ynode_to_json(const struct ynode *n)
{
    json_t *j;

    if (!n)
        return json_null();
    switch (n->kind) {
    case YN_MAP:
        j = json_object();
        for (size_t i = 0; i < n->len; i++) {
            char *k = key_text(n->keys[i]);
            json_object_set_new(j, k, ynode_to_json(n->vals[i]));
            free(k);
        }
        return j;
    case YN_SEQ:
        j = json_array();
        for (size_t i = 0; i < n->len; i++)
            json_array_append_new(j, ynode_to_json(n->vals[i]));
        return j;
    case YN_SCALAR:
        break;
    }
    switch (n->stype) {
    case YS_NULL:
        return json_null();
    case YS_BOOL:
        return json_boolean(n->bval);
    case YS_INT:
        return json_integer(n->ival);
    case YS_FLOAT:
        /* JSON has no NaN or infinity (Ruby's to_json refuses them too). */
        return isfinite(n->fval) ? json_real(n->fval) : json_null();
    case YS_STR:
        break;
    }
    j = json_string(n->text);
    return j ? j : json_string(""); /* not UTF-8: cannot happen, libyaml checks input */
}

/* ---------------------------------------------------------------------------------------
 * Emitter: libyaml's, driven as Psych's YAMLTree drives it, so the output reads like the
 * original's `to_yaml` (indentless sequences in mappings, 80-column folding, quoting).
 */

static int write_buf(void *data, unsigned char *bytes, size_t size)
{
    return buf_append(data, bytes, size) == ST_OK;
}

/* Psych's visit_String: which style a string asks for. */
static yaml_scalar_style_t string_style(const char *s)
{
    struct ynode probe = {0};

    if (strchr(s, '\n'))
        return YAML_LITERAL_SCALAR_STYLE;
    if (strcmp(s, "<<") == 0)
        return YAML_SINGLE_QUOTED_SCALAR_STYLE;
    /* /^[^[:word:]][^"]*$/ */
    if (*s && !(isalnum((unsigned char)*s) || *s == '_' || (unsigned char)*s >= 0x80) &&
        !strchr(s, '"'))
        return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    probe.text = (char *)s;
    tokenize(&probe);
    if (probe.stype != YS_STR)
        return YAML_SINGLE_QUOTED_SCALAR_STYLE;
    return YAML_PLAIN_SCALAR_STYLE;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, int is_string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = is_string ? string_style(s) : YAML_ANY_SCALAR_STYLE;
    int plain_implicit = 1, quoted_implicit = is_string;
    const char *tag = NULL;

    if (is_string && strcmp(s, "<<") == 0) {
        tag = "tag:yaml.org,2002:str";
        plain_implicit = quoted_implicit = 0;
    }
    if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)tag, (yaml_char_t *)s,
                                      (int)strlen(s), plain_implicit, quoted_implicit, style))
        return 0;
    return yaml_emitter_emit(em, &ev);
}

static int emit_json(yaml_emitter_t *em, const json_t *v, int depth)
{
    yaml_event_t ev;
    char tmp[64];

    if (depth > YNODE_MAX_DEPTH * 4)
        return emit_scalar(em, "...", 1);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        const json_t *x;
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!emit_scalar(em, k, 1) || !emit_json(em, x, depth + 1))
                return 0;
        }
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    case JSON_ARRAY: {
        size_t i;
        const json_t *x;
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        json_array_foreach(v, i, x)
        {
            if (!emit_json(em, x, depth + 1))
                return 0;
        }
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    case JSON_STRING:
        return emit_scalar(em, json_string_value(v), 1);
    case JSON_INTEGER:
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return emit_scalar(em, tmp, 0);
    case JSON_REAL:
        ruby_float(json_real_value(v), tmp, sizeof(tmp));
        return emit_scalar(em, tmp, 0);
    case JSON_TRUE:
        return emit_scalar(em, "true", 0);
    case JSON_FALSE:
        return emit_scalar(em, "false", 0);
    case JSON_NULL:
        return emit_scalar(em, "", 0);
    }
    return 0;
}

char *yaml_dump(const json_t *v)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    struct buf out = BUF_INIT;
    int ok;

    if (!yaml_emitter_initialize(&em))
        return xstrdup("--- # cannot initialise the YAML emitter\n");
    yaml_emitter_set_output(&em, write_buf, &out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_indent(&em, 2);
    ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
         yaml_emitter_emit(&em, &ev) &&
         yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0) &&
         yaml_emitter_emit(&em, &ev) && emit_json(&em, v ? v : json_null(), 0) &&
         yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
         yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) &&
         yaml_emitter_flush(&em);
    if (!ok) {
        char *msg =
            xasprintf("--- # YAML emitter error: %s\n", em.problem ? em.problem : "unknown");
        yaml_emitter_delete(&em);
        buf_release(&out);
        return msg;
    }
    yaml_emitter_delete(&em);
    return buf_take(&out);
}
