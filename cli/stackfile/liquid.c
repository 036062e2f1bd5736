/* cli/stackfile/liquid.c -- the Liquid 4 subset of liquid.h, strict variables and filters.
 *
 * Three stages, each bounded:
 *   1. tokenize: the template is cut into text, `{{ }}` and `{% %}` tokens the way Liquid 4's
 *      tokenizer regexp does (a `{{` runs to the first `}`, a `{%` to the first `%}`; a
 *      token that does not end properly is kept and reported when the parser meets it, so
 *      that `{% raw %}` can swallow it). Whitespace control is applied here: `{{-`/`{%-`
 *      rstrips the text token just before, `-}}`/`-%}` lstrips the one just after.
 *   2. parse: tokens become a tree of nodes; tag markup is lexed and parsed like Liquid's
 *      strict parser (its token names appear in syntax errors). Block nesting and
 *      expression nesting are capped at MAX_DEPTH, so neither stage recurses without bound.
 *   3. render: the tree is walked with a context holding the caller's variables, the
 *      assigns (Liquid's outermost scope) and one scope per running for loop. Output goes
 *      to capped buffers; loop iterations and the total work are capped too.
 *
 * Values are jansson values throughout and are never modified once built, so they are
 * shared by reference. Numbers follow Ruby: integers stay integers (divided_by of two
 * integers is floor division), floats print like Float#to_s ("1.5", "2.0", "1.0e+20"),
 * arithmetic with a float operand is rounded to 15 significant digits to come close to
 * Liquid's BigDecimal results (0.1 plus 0.2 is 0.3). Integer overflow, which Ruby would
 * turn into a Bignum, is an error here.
 */
#include "cli/stackfile/liquid.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define MAX_OUTPUT ((size_t)16 << 20) /* bytes in any rendered string */
#define MAX_DEPTH 100                 /* nested blocks, nested expressions */
#define MAX_VALUE_DEPTH 256           /* nested arrays/objects printed or compared */
#define MAX_ITERATIONS 1000000        /* for-loop iterations in one render */
#define MAX_ARRAY 1000000             /* elements in an array a filter builds */
#define MAX_WORK ((size_t)1 << 30)    /* bytes and elements produced in one render */

/* ---------------------------------------------------------------------------------------- */
/* Errors */

static enum status lq_err(struct err *e, int line, bool syntax, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static enum status lq_err(struct err *e, int line, bool syntax, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(e, ST_INVALID, "Liquid %s: %s (line %d)", syntax ? "syntax error" : "error", msg,
                   line);
}

static bool is_rspace(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_word(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool all_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_rspace((unsigned char)p[i]))
            return false;
    return true;
}

/* Room for element n of an array that holds n elements: capacity doubles at powers of two,
 * so a long markup costs amortized linear time. */
static void *grow_for(void *p, size_t n, size_t size)
{
    if (n == 0)
        return xrealloc(p, size);
    if ((n & (n - 1)) == 0)
        return xrealloc(p, 2 * n * size);
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Tokenizer */

enum tkind { TK_TEXT, TK_VAR, TK_TAG, TK_BADVAR, TK_BADTAG };

struct tok {
    enum tkind kind;
    const char *s; /* the token as written (text: after whitespace control) */
    size_t n;
    const char *m; /* VAR: markup inside the delimiters; TAG: markup after the tag name */
    size_t mn;
    const char *name; /* TAG: the tag name */
    size_t namen;
    int line;
};

struct toks {
    struct tok *v;
    size_t n, alloc;
};

static struct tok *tok_push(struct toks *t)
{
    if (t->n == t->alloc) {
        t->alloc = t->alloc ? t->alloc * 2 : 64;
        t->v = xrealloc(t->v, t->alloc * sizeof(*t->v));
    }
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    return &t->v[t->n++];
}

/* Split a VAR/TAG token into markup (and tag name); a tag without a \w+ name is bad, as
 * Liquid's FullToken regexp does not match it. */
static void tok_markup(struct tok *t)
{
    size_t a = 2, b = t->n - 2;
    if (t->s[a] == '-')
        a++;
    if (b > a && t->s[b - 1] == '-')
        b--;
    if (t->kind == TK_VAR) {
        t->m = t->s + a;
        t->mn = b > a ? b - a : 0;
        return;
    }
    while (a < b && is_rspace((unsigned char)t->s[a]))
        a++;
    size_t ns = a;
    while (a < b && is_word((unsigned char)t->s[a]))
        a++;
    if (a == ns) {
        t->kind = TK_BADTAG;
        return;
    }
    t->name = t->s + ns;
    t->namen = a - ns;
    while (a < b && is_rspace((unsigned char)t->s[a]))
        a++;
    t->m = t->s + a;
    t->mn = b - a;
}

static void tokenize(const char *s, size_t len, struct toks *out)
{
    size_t i = 0;
    int line = 1;
    bool lstrip_next = false;

    while (i < len) {
        size_t j = i;
        const char *q;
        for (;;) {
            q = memchr(s + j, '{', len - j);
            if (!q || (size_t)(q - s) + 1 >= len) {
                q = NULL;
                break;
            }
            j = (size_t)(q - s);
            if (s[j + 1] == '{' || s[j + 1] == '%')
                break;
            j++;
        }
        size_t end = q ? j : len;
        if (end > i) {
            struct tok *t = tok_push(out);
            t->kind = TK_TEXT;
            t->s = s + i;
            t->n = end - i;
            t->line = line;
            if (lstrip_next)
                while (t->n && is_rspace((unsigned char)t->s[0])) {
                    t->s++;
                    t->n--;
                }
            for (size_t k = i; k < end; k++)
                line += s[k] == '\n';
        }
        lstrip_next = false;
        if (!q)
            break;
        struct tok *t = tok_push(out);
        t->s = s + j;
        t->line = line;
        if (s[j + 1] == '%') {
            const char *e = NULL;
            for (size_t k = j + 2; k + 1 < len; k++)
                if (s[k] == '%' && s[k + 1] == '}') {
                    e = s + k;
                    break;
                }
            t->kind = e ? TK_TAG : TK_BADTAG;
            t->n = e ? (size_t)(e - t->s) + 2 : 2;
        } else {
            const char *e = memchr(s + j + 2, '}', len - j - 2);
            if (!e) {
                t->kind = TK_BADVAR;
                t->n = 2;
            } else {
                t->n = (size_t)(e - t->s) + 1;
                if (j + t->n < len && s[j + t->n] == '}')
                    t->n++;
                t->kind = (t->n >= 4 && t->s[t->n - 2] == '}') ? TK_VAR : TK_BADVAR;
            }
        }
        if (t->kind == TK_VAR || t->kind == TK_TAG) {
            bool trim_l = t->s[2] == '-', trim_r = t->s[t->n - 3] == '-';
            tok_markup(t);
            /* t may be the first token, or follow another markup token: only text trims. */
            if (trim_l && out->n >= 2 && out->v[out->n - 2].kind == TK_TEXT) {
                struct tok *p = &out->v[out->n - 2];
                while (p->n && (is_rspace((unsigned char)p->s[p->n - 1]) || p->s[p->n - 1] == 0))
                    p->n--;
            }
            lstrip_next = trim_r;
        }
        for (size_t k = j; k < j + t->n; k++)
            line += s[k] == '\n';
        i = j + t->n;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Syntax tree */

enum ekind { E_LIT, E_RANGE, E_VAR, E_EMPTY, E_BLANK };

struct expr;

struct lookup {
    char *key;        /* a.key (NULL for a bracket lookup) */
    struct expr *idx; /* a[idx] */
    bool command;     /* a.size / a.first / a.last: may call the method */
};

struct expr {
    enum ekind kind;
    json_t *lit;
    struct expr *lo, *hi;
    char *name;
    struct lookup *lk;
    size_t nlk;
};

struct filter {
    char *name;
    struct expr **args;
    size_t nargs;
    char **kwn; /* keyword arguments, passed on as one trailing object (as Liquid does) */
    struct expr **kwv;
    size_t nkw;
};

struct var {
    struct expr *base; /* NULL for an empty {{ }} */
    struct filter *f;
    size_t nf;
};

enum cmpop { OP_NONE, OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE, OP_CONTAINS };

struct cmp {
    struct expr *l, *r;
    enum cmpop op;
};

/* c[0] j[0] c[1] j[1] ... c[n-1], j[i] true for `and`; evaluated right to left (Liquid). */
struct cond {
    struct cmp *c;
    bool *j;
    size_t n;
};

enum nkind { N_TEXT, N_OUTPUT, N_IF, N_FOR, N_ASSIGN, N_CAPTURE, N_BREAK, N_CONTINUE };

struct node;

struct body {
    struct node **v;
    size_t n, alloc;
    bool blank; /* only whitespace text and blank tags: its output is dropped (Liquid 4) */
};

struct branch {
    struct cond *cond; /* NULL: else */
    struct body body;
};

struct node {
    enum nkind kind;
    int line;
    const char *text; /* N_TEXT */
    size_t tn;
    struct var *var;   /* N_OUTPUT, N_ASSIGN */
    char *name;        /* N_ASSIGN, N_CAPTURE, N_FOR (loop variable) */
    char *loopname;    /* N_FOR: forloop.name */
    struct branch *br; /* N_IF */
    size_t nbr;
    bool unless;
    struct expr *coll, *limit, *offset; /* N_FOR */
    bool reversed;
    struct body body, ebody; /* N_FOR (ebody: else), N_CAPTURE */
    bool blank;
};

static void expr_free(struct expr *x);

static void lookups_free(struct lookup *lk, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(lk[i].key);
        expr_free(lk[i].idx);
    }
    free(lk);
}

static void expr_free(struct expr *x)
{
    if (!x)
        return;
    json_decref(x->lit);
    expr_free(x->lo);
    expr_free(x->hi);
    free(x->name);
    lookups_free(x->lk, x->nlk);
    free(x);
}

static void var_free(struct var *v)
{
    if (!v)
        return;
    expr_free(v->base);
    for (size_t i = 0; i < v->nf; i++) {
        struct filter *f = &v->f[i];
        free(f->name);
        for (size_t k = 0; k < f->nargs; k++)
            expr_free(f->args[k]);
        free(f->args);
        for (size_t k = 0; k < f->nkw; k++) {
            free(f->kwn[k]);
            expr_free(f->kwv[k]);
        }
        free(f->kwn);
        free(f->kwv);
    }
    free(v->f);
    free(v);
}

static void cond_free(struct cond *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        expr_free(c->c[i].l);
        expr_free(c->c[i].r);
    }
    free(c->c);
    free(c->j);
    free(c);
}

static void node_free(struct node *nd);

static void body_release(struct body *b)
{
    for (size_t i = 0; i < b->n; i++)
        node_free(b->v[i]);
    free(b->v);
    b->v = NULL;
    b->n = b->alloc = 0;
}

static void node_free(struct node *nd)
{
    if (!nd)
        return;
    var_free(nd->var);
    free(nd->name);
    free(nd->loopname);
    for (size_t i = 0; i < nd->nbr; i++) {
        cond_free(nd->br[i].cond);
        body_release(&nd->br[i].body);
    }
    free(nd->br);
    expr_free(nd->coll);
    expr_free(nd->limit);
    expr_free(nd->offset);
    body_release(&nd->body);
    body_release(&nd->ebody);
    free(nd);
}

static void body_add(struct body *b, struct node *nd)
{
    if (b->n == b->alloc) {
        b->alloc = b->alloc ? b->alloc * 2 : 8;
        b->v = xrealloc(b->v, b->alloc * sizeof(*b->v));
    }
    b->v[b->n++] = nd;
}

static struct node *node_new(enum nkind kind, int line)
{
    struct node *nd = xcalloc(1, sizeof(*nd));
    nd->kind = kind;
    nd->line = line;
    return nd;
}

/* ---------------------------------------------------------------------------------------- */
/* Markup lexer and parser (Liquid's strict parser) */

enum lt {
    L_ID,
    L_STR,
    L_NUM,
    L_CMP,
    L_DOT,
    L_DOTDOT,
    L_PIPE,
    L_COLON,
    L_COMMA,
    L_LSQ,
    L_RSQ,
    L_LPAR,
    L_RPAR,
    L_QUES,
    L_DASH,
    L_EOS
};

static const char *const lt_names[] = {
    "id",          "string",   "number", "comparison",    "dot",          "dotdot",
    "pipe",        "colon",    "comma",  "open_square",   "close_square", "open_round",
    "close_round", "question", "dash",   "end_of_string",
};

struct lx {
    enum lt t;
    const char *p;
    size_t n;
};

struct mp {
    struct lx *v;
    size_t n, pos;
    const char *m; /* the markup, for error context */
    size_t mn;
    int line;
    int depth;
    struct err *e;
};

static enum status mp_err(struct mp *mp, const char *fmt, ...) PRINTF_LIKE(2, 3);

static enum status mp_err(struct mp *mp, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    const char *m = mp->m;
    size_t mn = mp->mn;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    while (mn && is_rspace((unsigned char)*m)) {
        m++;
        mn--;
    }
    while (mn && is_rspace((unsigned char)m[mn - 1]))
        mn--;
    return lq_err(mp->e, mp->line, true, "%s in \"%.*s%s\"", msg, (int)(mn > 80 ? 80 : mn), m,
                  mn > 80 ? "..." : "");
}

static void lx_push(struct mp *mp, enum lt t, const char *p, size_t n)
{
    mp->v = grow_for(mp->v, mp->n, sizeof(*mp->v));
    mp->v[mp->n].t = t;
    mp->v[mp->n].p = p;
    mp->v[mp->n].n = n;
    mp->n++;
}

static enum status lex(struct mp *mp, const char *m, size_t mn, int line, struct err *e)
{
    size_t i = 0;

    memset(mp, 0, sizeof(*mp));
    mp->m = m;
    mp->mn = mn;
    mp->line = line;
    mp->e = e;
    while (i < mn) {
        const char *p = m + i;
        size_t left = mn - i;
        unsigned char c = (unsigned char)*p;
        if (is_rspace(c)) {
            i++;
            continue;
        }
        size_t n = 0;
        enum lt t;
        if (left >= 2 && (!memcmp(p, "==", 2) || !memcmp(p, "!=", 2) || !memcmp(p, "<>", 2))) {
            t = L_CMP;
            n = 2;
        } else if (c == '<' || c == '>') {
            t = L_CMP;
            n = (left >= 2 && p[1] == '=') ? 2 : 1;
        } else if (left > 8 && !memcmp(p, "contains", 8) && is_rspace((unsigned char)p[8])) {
            t = L_CMP;
            n = 8;
        } else if (c == '\'' || c == '"') {
            const char *q = memchr(p + 1, c, left - 1);
            if (!q)
                return mp_err(mp, "Unexpected character %c", c);
            t = L_STR;
            n = (size_t)(q - p) + 1;
        } else if ((c >= '0' && c <= '9') ||
                   (c == '-' && left >= 2 && p[1] >= '0' && p[1] <= '9')) {
            n = c == '-' ? 1 : 0;
            while (n < left && p[n] >= '0' && p[n] <= '9')
                n++;
            if (n + 1 < left && p[n] == '.' && p[n + 1] >= '0' && p[n + 1] <= '9') {
                n++;
                while (n < left && p[n] >= '0' && p[n] <= '9')
                    n++;
            }
            t = L_NUM;
        } else if (isalpha(c) || c == '_') {
            while (n < left && (is_word((unsigned char)p[n]) || p[n] == '-'))
                n++;
            if (n < left && p[n] == '?')
                n++;
            t = L_ID;
        } else if (left >= 2 && p[0] == '.' && p[1] == '.') {
            t = L_DOTDOT;
            n = 2;
        } else {
            n = 1;
            switch (c) {
            case '|':
                t = L_PIPE;
                break;
            case '.':
                t = L_DOT;
                break;
            case ':':
                t = L_COLON;
                break;
            case ',':
                t = L_COMMA;
                break;
            case '[':
                t = L_LSQ;
                break;
            case ']':
                t = L_RSQ;
                break;
            case '(':
                t = L_LPAR;
                break;
            case ')':
                t = L_RPAR;
                break;
            case '?':
                t = L_QUES;
                break;
            case '-':
                t = L_DASH;
                break;
            default:
                if (c < 0x20 || c >= 0x7f)
                    return mp_err(mp, "Unexpected character \\x%02x", c);
                return mp_err(mp, "Unexpected character %c", c);
            }
        }
        lx_push(mp, t, p, n);
        i += n;
    }
    lx_push(mp, L_EOS, m + mn, 0);
    return ST_OK;
}

static void mp_release(struct mp *mp)
{
    FREE_AND_NULL(mp->v);
}

static const struct lx *look(struct mp *mp, size_t ahead)
{
    size_t i = mp->pos + ahead;
    return &mp->v[i < mp->n ? i : mp->n - 1];
}

static bool look_is(struct mp *mp, enum lt t, size_t ahead)
{
    return look(mp, ahead)->t == t;
}

static const struct lx *consume(struct mp *mp, enum lt t)
{
    const struct lx *x = look(mp, 0);
    if (x->t != t) {
        mp_err(mp, "Expected %s but found %s", lt_names[t], lt_names[x->t]);
        return NULL;
    }
    if (mp->pos < mp->n - 1)
        mp->pos++;
    return x;
}

static bool consume_opt(struct mp *mp, enum lt t)
{
    if (!look_is(mp, t, 0))
        return false;
    mp->pos++;
    return true;
}

static bool lx_is(const struct lx *x, const char *word)
{
    return x->t == L_ID && x->n == strlen(word) && !memcmp(x->p, word, x->n);
}

static bool id_opt(struct mp *mp, const char *word)
{
    if (!lx_is(look(mp, 0), word))
        return false;
    mp->pos++;
    return true;
}

static json_t *number_literal(const char *p, size_t n)
{
    char tmp[64];
    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    if (!memchr(tmp, '.', n)) {
        char *end;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno == 0)
            return json_integer(v);
    }
    double d = strtod(tmp, NULL);
    json_t *r = json_real(isfinite(d) ? d : 0.0);
    return r;
}

static struct expr *p_expression(struct mp *mp);

static struct expr *expr_new(enum ekind k)
{
    struct expr *x = xcalloc(1, sizeof(*x));
    x->kind = k;
    return x;
}

static struct expr *p_variable(struct mp *mp)
{
    const struct lx *id = consume(mp, L_ID);
    if (!id)
        return NULL;
    bool more = look_is(mp, L_DOT, 0) || look_is(mp, L_LSQ, 0);
    static const struct {
        const char *w;
        enum ekind k;
    } lits[] = {{"nil", E_LIT},   {"null", E_LIT},    {"true", E_LIT},
                {"false", E_LIT}, {"empty", E_EMPTY}, {"blank", E_BLANK}};
    if (!more)
        for (size_t i = 0; i < ARRAY_SIZE(lits); i++)
            if (lx_is(id, lits[i].w)) {
                struct expr *x = expr_new(lits[i].k);
                if (lits[i].k == E_LIT)
                    x->lit = id->p[0] == 't'   ? json_true()
                             : id->p[0] == 'f' ? json_false()
                                               : json_null();
                return x;
            }
    struct expr *x = expr_new(E_VAR);
    x->name = xstrndup(id->p, id->n);
    for (;;) {
        struct lookup lk = {NULL, NULL, false};
        if (consume_opt(mp, L_LSQ)) {
            lk.idx = p_expression(mp);
            if (!lk.idx || !consume(mp, L_RSQ)) {
                expr_free(lk.idx);
                goto fail;
            }
        } else if (consume_opt(mp, L_DOT)) {
            const struct lx *k = consume(mp, L_ID);
            if (!k)
                goto fail;
            lk.key = xstrndup(k->p, k->n);
            lk.command = lx_is(k, "size") || lx_is(k, "first") || lx_is(k, "last");
        } else {
            break;
        }
        x->lk = grow_for(x->lk, x->nlk, sizeof(*x->lk));
        x->lk[x->nlk++] = lk;
    }
    return x;
fail:
    expr_free(x);
    return NULL;
}

static struct expr *p_expression(struct mp *mp)
{
    const struct lx *t = look(mp, 0);
    struct expr *x = NULL;

    if (++mp->depth > MAX_DEPTH) {
        lq_err(mp->e, mp->line, false, "nesting too deep");
        goto out;
    }
    switch (t->t) {
    case L_ID:
        x = p_variable(mp);
        break;
    case L_STR:
        x = expr_new(E_LIT);
        x->lit = json_stringn_nocheck(t->p + 1, t->n - 2);
        mp->pos++;
        break;
    case L_NUM:
        x = expr_new(E_LIT);
        x->lit = number_literal(t->p, t->n);
        mp->pos++;
        break;
    case L_LPAR:
        mp->pos++;
        x = expr_new(E_RANGE);
        if (!(x->lo = p_expression(mp)) || !consume(mp, L_DOTDOT) || !(x->hi = p_expression(mp)) ||
            !consume(mp, L_RPAR)) {
            expr_free(x);
            x = NULL;
        }
        break;
    default:
        if (t->t == L_EOS)
            mp_err(mp, "[:end_of_string] is not a valid expression");
        else
            mp_err(mp, "[:%s, \"%.*s\"] is not a valid expression", lt_names[t->t], (int)t->n,
                   t->p);
        break;
    }
out:
    mp->depth--;
    return x;
}

/* expr ( '|' name [':' arg (',' arg)*] )* end_of_string */
static struct var *p_var(struct mp *mp)
{
    struct var *v = xcalloc(1, sizeof(*v));

    if (look_is(mp, L_EOS, 0))
        return v;
    if (!(v->base = p_expression(mp)))
        goto fail;
    while (consume_opt(mp, L_PIPE)) {
        const struct lx *name = consume(mp, L_ID);
        if (!name)
            goto fail;
        v->f = grow_for(v->f, v->nf, sizeof(*v->f));
        struct filter *f = &v->f[v->nf++];
        memset(f, 0, sizeof(*f));
        f->name = xstrndup(name->p, name->n);
        if (!consume_opt(mp, L_COLON))
            continue;
        do {
            char *kw = NULL;
            if (look_is(mp, L_ID, 0) && look_is(mp, L_COLON, 1)) {
                kw = xstrndup(look(mp, 0)->p, look(mp, 0)->n);
                mp->pos += 2;
            }
            struct expr *a = p_expression(mp);
            if (!a) {
                free(kw);
                goto fail;
            }
            if (kw) {
                f->kwn = grow_for(f->kwn, f->nkw, sizeof(*f->kwn));
                f->kwv = grow_for(f->kwv, f->nkw, sizeof(*f->kwv));
                f->kwn[f->nkw] = kw;
                f->kwv[f->nkw++] = a;
            } else {
                f->args = grow_for(f->args, f->nargs, sizeof(*f->args));
                f->args[f->nargs++] = a;
            }
        } while (consume_opt(mp, L_COMMA));
    }
    if (!consume(mp, L_EOS))
        goto fail;
    return v;
fail:
    var_free(v);
    return NULL;
}

static enum cmpop cmp_op(const struct lx *x)
{
    if (x->n == 2 && !memcmp(x->p, "==", 2))
        return OP_EQ;
    if (x->n == 2 && (!memcmp(x->p, "!=", 2) || !memcmp(x->p, "<>", 2)))
        return OP_NE;
    if (x->n == 2 && !memcmp(x->p, "<=", 2))
        return OP_LE;
    if (x->n == 2 && !memcmp(x->p, ">=", 2))
        return OP_GE;
    if (x->n == 1)
        return x->p[0] == '<' ? OP_LT : OP_GT;
    return OP_CONTAINS;
}

static struct cond *p_cond(struct mp *mp)
{
    struct cond *c = xcalloc(1, sizeof(*c));

    for (;;) {
        struct cmp k = {NULL, NULL, OP_NONE};
        if (!(k.l = p_expression(mp)))
            goto fail;
        if (look_is(mp, L_CMP, 0)) {
            k.op = cmp_op(look(mp, 0));
            mp->pos++;
            if (!(k.r = p_expression(mp))) {
                expr_free(k.l);
                goto fail;
            }
        }
        c->c = grow_for(c->c, c->n, sizeof(*c->c));
        c->j = grow_for(c->j, c->n, sizeof(*c->j));
        c->c[c->n] = k;
        c->j[c->n++] = false;
        if (id_opt(mp, "and"))
            c->j[c->n - 1] = true;
        else if (!id_opt(mp, "or"))
            break;
    }
    if (!consume(mp, L_EOS))
        goto fail;
    return c;
fail:
    cond_free(c);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Block parser */

struct parser {
    struct toks *t;
    size_t pos;
    const char *tmpl;
    struct err *e;
};

static enum status parse_body(struct parser *ps, struct body *b, int depth, size_t *stop);

static bool tok_name_is(const struct tok *t, const char *name)
{
    return t->kind == TK_TAG && t->namen == strlen(name) && !memcmp(t->name, name, t->namen);
}

static enum status bad_token(struct parser *ps, const struct tok *t)
{
    int n = (int)(t->n > 60 ? 60 : t->n);
    const char *more = t->n > 60 ? "..." : "";
    if (t->kind == TK_BADVAR)
        return lq_err(ps->e, t->line, true,
                      "Variable '%.*s%s' was not properly terminated with regexp: /\\}\\}/", n,
                      t->s, more);
    return lq_err(ps->e, t->line, true,
                  "Tag '%.*s%s' was not properly terminated with regexp: /\\%%\\}/", n, t->s, more);
}

/* Liquid's Block#unknown_tag: the message for a tag a block body stopped on. */
static enum status unexpected_tag(struct parser *ps, const struct tok *t, const char *block)
{
    if (t->namen == 4 && !memcmp(t->name, "else", 4))
        return lq_err(ps->e, t->line, true, "%s tag does not expect 'else' tag", block);
    if (t->namen >= 3 && !memcmp(t->name, "end", 3))
        return lq_err(ps->e, t->line, true,
                      "'%.*s' is not a valid delimiter for %s tags. use end%s", (int)t->namen,
                      t->name, block, block);
    return lq_err(ps->e, t->line, true, "Unknown tag '%.*s'", (int)t->namen, t->name);
}

static enum status never_closed(struct parser *ps, int line, const char *block)
{
    return lq_err(ps->e, line, true, "'%s' tag was never closed", block);
}

static enum status parse_if(struct parser *ps, const struct tok *open, bool unless, int depth,
                            struct node **out)
{
    const char *block = unless ? "unless" : "if";
    struct node *nd = node_new(N_IF, open->line);
    const struct tok *t = open;
    enum status st;
    struct mp mp;

    nd->unless = unless;
    nd->blank = true;
    for (;;) {
        nd->br = grow_for(nd->br, nd->nbr, sizeof(*nd->br));
        struct branch *br = &nd->br[nd->nbr++];
        memset(br, 0, sizeof(*br));
        if (!tok_name_is(t, "else")) {
            st = lex(&mp, t->m, t->mn, t->line, ps->e);
            if (st == ST_OK) {
                br->cond = p_cond(&mp);
                if (!br->cond)
                    st = ST_INVALID;
            }
            mp_release(&mp);
            if (st != ST_OK)
                goto fail;
        }
        size_t stop;
        st = parse_body(ps, &br->body, depth + 1, &stop);
        if (st != ST_OK)
            goto fail;
        nd->blank = nd->blank && br->body.blank;
        if (stop == ps->t->n) {
            st = never_closed(ps, open->line, block);
            goto fail;
        }
        t = &ps->t->v[stop];
        ps->pos = stop + 1;
        if (tok_name_is(t, unless ? "endunless" : "endif"))
            break;
        if (!tok_name_is(t, "elsif") && !tok_name_is(t, "else")) {
            st = unexpected_tag(ps, t, block);
            goto fail;
        }
    }
    *out = nd;
    return ST_OK;
fail:
    node_free(nd);
    return st;
}

static enum status parse_for(struct parser *ps, const struct tok *open, int depth,
                             struct node **out)
{
    struct node *nd = node_new(N_FOR, open->line);
    enum status st;
    struct mp mp;
    const struct lx *id;

    st = lex(&mp, open->m, open->mn, open->line, ps->e);
    if (st != ST_OK)
        goto fail;
    if (!(id = consume(&mp, L_ID))) {
        st = ST_INVALID;
        goto fail;
    }
    nd->name = xstrndup(id->p, id->n);
    if (!id_opt(&mp, "in")) {
        st = mp_err(&mp, "For loops require an 'in' clause");
        goto fail;
    }
    const char *cstart = look(&mp, 0)->p;
    if (!(nd->coll = p_expression(&mp))) {
        st = ST_INVALID;
        goto fail;
    }
    const char *cend = look(&mp, 0)->p;
    while (cend > cstart && is_rspace((unsigned char)cend[-1]))
        cend--;
    nd->loopname = xasprintf("%s-%.*s", nd->name, (int)(cend - cstart), cstart);
    for (;;) {
        if (id_opt(&mp, "reversed")) {
            nd->reversed = true;
            continue;
        }
        if (!(look_is(&mp, L_ID, 0) && look_is(&mp, L_COLON, 1)))
            break;
        struct expr **slot = lx_is(look(&mp, 0), "limit")    ? &nd->limit
                             : lx_is(look(&mp, 0), "offset") ? &nd->offset
                                                             : NULL;
        if (!slot) {
            st = mp_err(&mp, "Invalid attribute in for loop. Valid attributes are limit and "
                             "offset");
            goto fail;
        }
        mp.pos += 2;
        expr_free(*slot);
        if (!(*slot = p_expression(&mp))) {
            st = ST_INVALID;
            goto fail;
        }
    }
    if (!consume(&mp, L_EOS)) {
        st = ST_INVALID;
        goto fail;
    }
    mp_release(&mp);

    struct body *cur = &nd->body;
    nd->blank = true;
    for (;;) {
        size_t stop;
        st = parse_body(ps, cur, depth + 1, &stop);
        if (st != ST_OK)
            goto fail;
        nd->blank = nd->blank && cur->blank;
        if (stop == ps->t->n) {
            st = never_closed(ps, open->line, "for");
            goto fail;
        }
        const struct tok *t = &ps->t->v[stop];
        ps->pos = stop + 1;
        if (tok_name_is(t, "endfor"))
            break;
        if (!tok_name_is(t, "else")) {
            st = unexpected_tag(ps, t, "for");
            goto fail;
        }
        /* A second else replaces the first, as in Liquid 4. */
        body_release(&nd->ebody);
        cur = &nd->ebody;
    }
    *out = nd;
    return ST_OK;
fail:
    mp_release(&mp);
    node_free(nd);
    return st;
}

/* A variable name for assign/capture: [\w-]+ (Liquid's VariableSignature without the
 * lookups, which would name a key nothing can read back). */
static size_t var_name_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (is_word((unsigned char)p[i]) || p[i] == '-'))
        i++;
    return i;
}

static enum status parse_assign(struct parser *ps, const struct tok *t, struct node **out)
{
    size_t nl = var_name_len(t->m, t->mn), i = nl;
    while (i < t->mn && is_rspace((unsigned char)t->m[i]))
        i++;
    if (nl == 0 || i >= t->mn || t->m[i] != '=')
        return lq_err(ps->e, t->line, true,
                      "Syntax Error in 'assign' - Valid syntax: assign [var] = [source]");
    i++;
    struct mp mp;
    enum status st = lex(&mp, t->m + i, t->mn - i, t->line, ps->e);
    struct var *v = NULL;
    if (st == ST_OK && !(v = p_var(&mp)))
        st = ST_INVALID;
    mp_release(&mp);
    if (st != ST_OK)
        return st;
    if (!v->base) {
        var_free(v);
        return lq_err(ps->e, t->line, true,
                      "Syntax Error in 'assign' - Valid syntax: assign [var] = [source]");
    }
    struct node *nd = node_new(N_ASSIGN, t->line);
    nd->name = xstrndup(t->m, nl);
    nd->var = v;
    nd->blank = true;
    *out = nd;
    return ST_OK;
}

static enum status parse_capture(struct parser *ps, const struct tok *open, int depth,
                                 struct node **out)
{
    const char *m = open->m;
    size_t mn = open->mn, nl;
    if (mn >= 2 && (m[0] == '"' || m[0] == '\'') && memchr(m + 1, m[0], mn - 1)) {
        const char *q = memchr(m + 1, m[0], mn - 1);
        m++;
        nl = (size_t)(q - m);
    } else {
        nl = var_name_len(m, mn);
    }
    if (nl == 0)
        return lq_err(ps->e, open->line, true,
                      "Syntax Error in 'capture' - Valid syntax: capture [var]");
    struct node *nd = node_new(N_CAPTURE, open->line);
    nd->name = xstrndup(m, nl);
    nd->blank = true;
    size_t stop;
    enum status st = parse_body(ps, &nd->body, depth + 1, &stop);
    if (st == ST_OK && stop == ps->t->n)
        st = never_closed(ps, open->line, "capture");
    if (st == ST_OK) {
        ps->pos = stop + 1;
        if (!tok_name_is(&ps->t->v[stop], "endcapture"))
            st = unexpected_tag(ps, &ps->t->v[stop], "capture");
    }
    if (st != ST_OK) {
        node_free(nd);
        return st;
    }
    *out = nd;
    return ST_OK;
}

/* Comment bodies are skipped, counting nested comments; tokens must still be well formed. */
static enum status parse_comment(struct parser *ps, const struct tok *open)
{
    int nest = 0;
    while (ps->pos < ps->t->n) {
        const struct tok *t = &ps->t->v[ps->pos++];
        if (t->kind == TK_BADVAR || t->kind == TK_BADTAG)
            return bad_token(ps, t);
        if (tok_name_is(t, "comment"))
            nest++;
        else if (tok_name_is(t, "endcomment") && nest-- == 0)
            return ST_OK;
    }
    return never_closed(ps, open->line, "comment");
}

/* Raw: everything up to the next {% endraw %} tag, as written (bad tokens included). */
static enum status parse_raw(struct parser *ps, const struct tok *open, struct node **out)
{
    if (!all_space(open->m, open->mn))
        return lq_err(ps->e, open->line, true, "Syntax Error in 'raw' - Valid syntax: raw");
    const char *start = open->s + open->n;
    while (ps->pos < ps->t->n) {
        const struct tok *t = &ps->t->v[ps->pos++];
        if (tok_name_is(t, "endraw")) {
            struct node *nd = node_new(N_TEXT, open->line);
            nd->text = start;
            nd->tn = (size_t)(t->s - start);
            nd->blank = nd->tn == 0;
            *out = nd;
            return ST_OK;
        }
    }
    return never_closed(ps, open->line, "raw");
}

/* Parse nodes into b until a tag this level does not know (an end/else tag for the caller)
 * or the end of input; *stop is that tag's index, or the token count at the end. */
static enum status parse_body(struct parser *ps, struct body *b, int depth, size_t *stop)
{
    enum status st;

    b->blank = true;
    if (depth > MAX_DEPTH) {
        int line = ps->pos < ps->t->n ? ps->t->v[ps->pos].line : 1;
        if (ps->pos > 0)
            line = ps->t->v[ps->pos - 1].line;
        return lq_err(ps->e, line, false, "nesting too deep");
    }
    while (ps->pos < ps->t->n) {
        const struct tok *t = &ps->t->v[ps->pos];
        struct node *nd = NULL;
        switch (t->kind) {
        case TK_TEXT:
            nd = node_new(N_TEXT, t->line);
            nd->text = t->s;
            nd->tn = t->n;
            b->blank = b->blank && all_space(t->s, t->n);
            ps->pos++;
            break;
        case TK_BADVAR:
        case TK_BADTAG:
            return bad_token(ps, t);
        case TK_VAR: {
            struct mp mp;
            struct var *v = NULL;
            st = lex(&mp, t->m, t->mn, t->line, ps->e);
            if (st == ST_OK && !(v = p_var(&mp)))
                st = ST_INVALID;
            mp_release(&mp);
            if (st != ST_OK)
                return st;
            nd = node_new(N_OUTPUT, t->line);
            nd->var = v;
            b->blank = false;
            ps->pos++;
            break;
        }
        case TK_TAG:
            ps->pos++;
            if (tok_name_is(t, "if") || tok_name_is(t, "unless"))
                st = parse_if(ps, t, t->name[0] == 'u', depth, &nd);
            else if (tok_name_is(t, "for"))
                st = parse_for(ps, t, depth, &nd);
            else if (tok_name_is(t, "assign"))
                st = parse_assign(ps, t, &nd);
            else if (tok_name_is(t, "capture"))
                st = parse_capture(ps, t, depth, &nd);
            else if (tok_name_is(t, "comment"))
                st = parse_comment(ps, t);
            else if (tok_name_is(t, "raw"))
                st = parse_raw(ps, t, &nd);
            else if (tok_name_is(t, "break") || tok_name_is(t, "continue")) {
                nd = node_new(t->name[0] == 'b' ? N_BREAK : N_CONTINUE, t->line);
                st = ST_OK;
            } else {
                ps->pos--;
                *stop = ps->pos;
                return ST_OK;
            }
            if (st != ST_OK)
                return st;
            if (nd)
                b->blank = b->blank && nd->blank;
            break;
        }
        if (nd)
            body_add(b, nd);
    }
    *stop = ps->t->n;
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Render context */

struct ctx {
    const json_t *vars;
    json_t *assigns;
    json_t **scopes; /* for-loop scopes, innermost last */
    size_t nscopes, ascopes;
    size_t iterations;
    size_t work;
    int line; /* line of the node being rendered, for errors */
    struct err *e;
};

static int rt_err(struct ctx *cx, const char *fmt, ...) PRINTF_LIKE(2, 3);

static int rt_err(struct ctx *cx, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lq_err(cx->e, cx->line, false, "%s", msg);
    return -1;
}

static int add_work(struct ctx *cx, size_t n)
{
    cx->work += n;
    if (cx->work > MAX_WORK)
        return rt_err(cx, "render limit exceeded (the template does too much work)");
    return 0;
}

static int put(struct ctx *cx, struct buf *b, const char *p, size_t n)
{
    if (add_work(cx, n))
        return -1;
    if (n == 0)
        return 0;
    if (buf_append(b, p, n) != ST_OK)
        return rt_err(cx, "output too large");
    return 0;
}

static int puts_(struct ctx *cx, struct buf *b, const char *s)
{
    return put(cx, b, s, strlen(s));
}

static json_t *jstr(const char *p, size_t n)
{
    return json_stringn_nocheck(p ? p : "", n);
}

/* Take b's bytes as a string value (b is emptied). */
static json_t *jstr_buf(struct buf *b)
{
    json_t *s = jstr(b->ptr, b->len);
    buf_release(b);
    return s;
}

static int jreal(struct ctx *cx, double d, json_t **out)
{
    if (!isfinite(d))
        return rt_err(cx, "float result out of range");
    *out = json_real(d);
    return 0;
}

static bool truthy(const json_t *v)
{
    return v && !json_is_null(v) && !json_is_false(v);
}

/* Number of UTF-8 characters (Ruby String#size). */
static size_t u8len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xc0) != 0x80;
    return c;
}

/* Byte offset of character ci (n when past the end). */
static size_t u8off(const char *p, size_t n, size_t ci)
{
    size_t i = 0;
    while (i < n && ci > 0) {
        i++;
        while (i < n && ((unsigned char)p[i] & 0xc0) == 0x80)
            i++;
        ci--;
    }
    return i;
}

/* ---------------------------------------------------------------------------------------- */
/* Ruby's to_s and inspect */

/* Float#to_s: shortest round-trip digits, fixed notation for 1e-4 <= |d| < 1e16. */
static void fmt_float(double d, char *out, size_t sz)
{
    char tmp[48], digits[24];
    int prec, exp10, nd = 0;
    size_t o = 0;

    if (isnan(d)) {
        snprintf(out, sz, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(out, sz, "%sInfinity", d < 0 ? "-" : "");
        return;
    }
    if (d == 0) {
        snprintf(out, sz, "%s0.0", signbit(d) ? "-" : "");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *p = tmp;
    char sign = 0;
    if (*p == '-') {
        sign = '-';
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof(digits) - 1)
            digits[nd++] = *p;
    digits[nd] = 0;
    exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    int decpt = exp10 + 1;
    char res[64];
    if (sign)
        res[o++] = sign;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            res[o++] = '0';
            res[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                res[o++] = '0';
            for (int i = 0; i < nd; i++)
                res[o++] = digits[i];
        } else {
            for (int i = 0; i < decpt; i++)
                res[o++] = i < nd ? digits[i] : '0';
            res[o++] = '.';
            if (decpt >= nd)
                res[o++] = '0';
            for (int i = decpt; i < nd; i++)
                res[o++] = digits[i];
        }
        res[o] = 0;
    } else {
        res[o++] = digits[0];
        res[o++] = '.';
        if (nd == 1)
            res[o++] = '0';
        for (int i = 1; i < nd; i++)
            res[o++] = digits[i];
        snprintf(res + o, sizeof(res) - o, "e%+03d", decpt - 1);
    }
    snprintf(out, sz, "%s", res);
}

static int inspect(struct ctx *cx, const json_t *v, struct buf *b, int depth);

static int inspect_str(struct ctx *cx, const char *s, size_t n, struct buf *b)
{
    if (put(cx, b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *r = NULL;
        switch (c) {
        case '"':
            r = "\\\"";
            break;
        case '\\':
            r = "\\\\";
            break;
        case '\n':
            r = "\\n";
            break;
        case '\t':
            r = "\\t";
            break;
        case '\r':
            r = "\\r";
            break;
        case '\f':
            r = "\\f";
            break;
        case '\v':
            r = "\\v";
            break;
        case '\a':
            r = "\\a";
            break;
        case '\b':
            r = "\\b";
            break;
        case 27:
            r = "\\e";
            break;
        case '#':
            if (i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '$' || s[i + 1] == '@'))
                r = "\\#";
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04X", c);
                r = esc;
            }
        }
        if (r ? puts_(cx, b, r) : put(cx, b, s + i, 1))
            return -1;
    }
    return put(cx, b, "\"", 1);
}

/* Ruby to_s of a value: nil "", arrays joined without separator, hashes inspected. */
static int to_s(struct ctx *cx, const json_t *v, struct buf *b, int depth)
{
    char num[64];

    if (depth > MAX_VALUE_DEPTH)
        return rt_err(cx, "nesting too deep");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return 0;
    case JSON_TRUE:
        return put(cx, b, "true", 4);
    case JSON_FALSE:
        return put(cx, b, "false", 5);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return puts_(cx, b, num);
    case JSON_REAL:
        fmt_float(json_real_value(v), num, sizeof(num));
        return puts_(cx, b, num);
    case JSON_STRING:
        return put(cx, b, json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (to_s(cx, x, b, depth + 1))
                return -1;
        }
        return 0;
    }
    case JSON_OBJECT:
        return inspect(cx, v, b, depth);
    }
    return 0;
}

static int inspect(struct ctx *cx, const json_t *v, struct buf *b, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        return rt_err(cx, "nesting too deep");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return put(cx, b, "nil", 3);
    case JSON_STRING:
        return inspect_str(cx, json_string_value(v), json_string_length(v), b);
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        if (put(cx, b, "[", 1))
            return -1;
        json_array_foreach(v, i, x)
        {
            if ((i && put(cx, b, ", ", 2)) || inspect(cx, x, b, depth + 1))
                return -1;
        }
        return put(cx, b, "]", 1);
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        bool first = true;
        if (put(cx, b, "{", 1))
            return -1;
        json_object_foreach((json_t *)v, k, x)
        {
            if ((!first && put(cx, b, ", ", 2)) || inspect_str(cx, k, strlen(k), b) ||
                put(cx, b, "=>", 2) || inspect(cx, x, b, depth + 1))
                return -1;
            first = false;
        }
        return put(cx, b, "}", 1);
    }
    default:
        return to_s(cx, v, b, depth);
    }
}

/* to_s into a fresh buffer (caller releases it). */
static int sval(struct ctx *cx, const json_t *v, struct buf *b)
{
    buf_init(b, MAX_OUTPUT);
    if (to_s(cx, v, b, 0)) {
        buf_release(b);
        return -1;
    }
    if (!b->ptr && buf_append(b, "", 0) != ST_OK) {
        buf_release(b);
        return rt_err(cx, "output too large");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Numbers (Liquid's Utils.to_number / to_integer, Ruby's to_i) */

struct num {
    bool f;
    int64_t i;
    double d;
};

static double num_d(struct num n)
{
    return n.f ? n.d : (double)n.i;
}

/* Ruby String#to_i: leading space, sign, digits (single underscores between them). */
static int str_to_i(struct ctx *cx, const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    const uint64_t lim = (uint64_t)INT64_MAX + 1;

    while (i < n && is_rspace((unsigned char)s[i]))
        i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    for (; i < n; i++) {
        if (s[i] == '_' && i > 0 && isdigit((unsigned char)s[i - 1]) && i + 1 < n &&
            isdigit((unsigned char)s[i + 1]))
            continue;
        if (!isdigit((unsigned char)s[i]))
            break;
        if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
            return rt_err(cx, "integer out of range");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return rt_err(cx, "integer out of range");
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int dbl_to_i(struct ctx *cx, double d, int64_t *out)
{
    d = trunc(d);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return rt_err(cx, "integer out of range");
    *out = (int64_t)d;
    return 0;
}

static const char *class_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return "NilClass";
    case JSON_TRUE:
        return "TrueClass";
    case JSON_FALSE:
        return "FalseClass";
    case JSON_INTEGER:
        return "Integer";
    case JSON_REAL:
        return "Float";
    case JSON_STRING:
        return "String";
    case JSON_ARRAY:
        return "Array";
    case JSON_OBJECT:
        return "Hash";
    }
    return "Object";
}

/* Ruby's to_i, as used for range bounds and for-loop limit/offset. */
static int to_i(struct ctx *cx, const json_t *v, int64_t *out)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        *out = 0;
        return 0;
    case JSON_INTEGER:
        *out = json_integer_value(v);
        return 0;
    case JSON_REAL:
        return dbl_to_i(cx, json_real_value(v), out);
    case JSON_STRING:
        return str_to_i(cx, json_string_value(v), json_string_length(v), out);
    default:
        return rt_err(cx, "invalid integer (%s has no to_i)", class_name(v));
    }
}

/* Liquid's Utils.to_integer: Integer(x.to_s), which refuses anything but an integer. */
static int to_integer(struct ctx *cx, const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), a = 0, b = n;
        while (a < b && is_rspace((unsigned char)s[a]))
            a++;
        while (b > a && is_rspace((unsigned char)s[b - 1]))
            b--;
        size_t d = a + (a < b && (s[a] == '-' || s[a] == '+'));
        bool ok = d < b;
        for (size_t i = d; i < b; i++)
            ok = ok && (isdigit((unsigned char)s[i]) ||
                        (s[i] == '_' && i > d && i + 1 < b && isdigit((unsigned char)s[i + 1])));
        if (ok)
            return str_to_i(cx, s + a, b - a, out);
    }
    return rt_err(cx, "invalid integer");
}

static bool is_decimal(const char *s, size_t n)
{
    size_t a = 0, b = n, i;
    while (a < b && (is_rspace((unsigned char)s[a]) || s[a] == 0))
        a++;
    while (b > a && (is_rspace((unsigned char)s[b - 1]) || s[b - 1] == 0))
        b--;
    i = a + (a < b && s[a] == '-');
    size_t d0 = i;
    while (i < b && isdigit((unsigned char)s[i]))
        i++;
    if (i == d0 || i >= b || s[i] != '.')
        return false;
    size_t d1 = ++i;
    while (i < b && isdigit((unsigned char)s[i]))
        i++;
    return i > d1 && i == b;
}

static int to_number(struct ctx *cx, const json_t *v, struct num *n)
{
    memset(n, 0, sizeof(*n));
    if (json_is_integer(v)) {
        n->i = json_integer_value(v);
    } else if (json_is_real(v)) {
        n->f = true;
        n->d = json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (is_decimal(s, len)) {
            n->f = true;
            n->d = strtod(s, NULL);
            if (!isfinite(n->d))
                return rt_err(cx, "number out of range");
        } else {
            return str_to_i(cx, s, len, &n->i);
        }
    }
    return 0;
}

static json_t *num_json(struct num n)
{
    return n.f ? json_real(n.d) : json_integer(n.i);
}

/* Round to 15 significant digits: Liquid computes with BigDecimal, which has no binary
 * representation error (0.1 + 0.2 == 0.3). */
static double dec15(double d)
{
    char tmp[48];
    snprintf(tmp, sizeof(tmp), "%.15g", d);
    return strtod(tmp, NULL);
}

static int arith(struct ctx *cx, struct num a, struct num b, char op, json_t **out)
{
    if (!a.f && !b.f) {
        int64_t r;
        switch (op) {
        case '+':
            if (__builtin_add_overflow(a.i, b.i, &r))
                return rt_err(cx, "integer overflow");
            break;
        case '-':
            if (__builtin_sub_overflow(a.i, b.i, &r))
                return rt_err(cx, "integer overflow");
            break;
        case '*':
            if (__builtin_mul_overflow(a.i, b.i, &r))
                return rt_err(cx, "integer overflow");
            break;
        case '/':
            if (b.i == 0)
                return rt_err(cx, "divided by 0");
            if (a.i == INT64_MIN && b.i == -1)
                return rt_err(cx, "integer overflow");
            r = a.i / b.i;
            if (a.i % b.i != 0 && ((a.i < 0) != (b.i < 0)))
                r--;
            break;
        default:
            if (b.i == 0)
                return rt_err(cx, "divided by 0");
            if (b.i == -1) {
                r = 0;
                break;
            }
            r = a.i % b.i;
            if (r != 0 && ((r < 0) != (b.i < 0)))
                r += b.i;
            break;
        }
        *out = json_integer(r);
        return 0;
    }
    double x = num_d(a), y = num_d(b), r;
    switch (op) {
    case '+':
        r = dec15(x + y);
        break;
    case '-':
        r = dec15(x - y);
        break;
    case '*':
        r = dec15(x * y);
        break;
    case '/':
        if (y == 0)
            return rt_err(cx, "divided by 0");
        r = x / y;
        break;
    default:
        if (y == 0)
            return rt_err(cx, "divided by 0");
        r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0)))
            r += y;
        r = dec15(r);
        break;
    }
    return jreal(cx, r, out);
}

/* BigDecimal(d.to_s).round(n) with ROUND_HALF_UP, back to a double. */
static double round_decimal(double d, int64_t n)
{
    char tmp[48], digits[24];
    int prec, nd = 0;

    if (d == 0 || !isfinite(d))
        return d;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *p = tmp + (tmp[0] == '-');
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p))
            digits[nd++] = *p;
    int decpt = atoi(p + 1) + 1; /* value = 0.digits * 10^decpt */
    if (n > 400)
        return d;
    if (n < -400)
        return 0;
    int64_t keep = decpt + n;
    if (keep >= nd)
        return d;
    if (keep < 0)
        return 0.0 * d;
    bool up = digits[keep] >= '5';
    nd = (int)keep;
    if (up) {
        int i = nd - 1;
        while (i >= 0 && digits[i] == '9')
            digits[i--] = '0';
        if (i >= 0) {
            digits[i]++;
        } else {
            memmove(digits + 1, digits, (size_t)nd);
            digits[0] = '1';
            nd++;
            decpt++;
        }
    }
    if (nd == 0)
        return 0.0 * d;
    digits[nd] = 0;
    snprintf(tmp, sizeof(tmp), "%s0.%se%d", d < 0 ? "-" : "", digits, decpt);
    return strtod(tmp, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Comparison */

static bool num_type(const json_t *v)
{
    return json_is_integer(v) || json_is_real(v);
}

/* Ruby ==: 1 == 1.0; strict (eql?): 1 != 1.0. */
static bool equal(const json_t *a, const json_t *b, bool strict, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        return false;
    if (num_type(a) && num_type(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        if (strict)
            return false;
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!equal(json_array_get(a, i), json_array_get(b, i), strict, depth + 1))
                return false;
        return true;
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, k, x)
        {
            json_t *y = json_object_get(b, k);
            if (!y || !equal(x, y, strict, depth + 1))
                return false;
        }
        return true;
    }
    default:
        return true; /* null, true, false */
    }
}

/* Ruby's "comparison of A with B failed": B is shown by value when it is an immediate. */
static int cmperr(struct ctx *cx, const json_t *a, const json_t *b)
{
    char what[80];
    if (json_is_integer(b) || json_is_real(b) || json_is_null(b) || json_is_boolean(b)) {
        struct buf t;
        if (sval(cx, b, &t))
            return -1;
        snprintf(what, sizeof(what), "%s", json_is_null(b) ? "nil" : t.ptr);
        buf_release(&t);
    } else {
        snprintf(what, sizeof(what), "%s", class_name(b));
    }
    return rt_err(cx, "comparison of %s with %s failed", class_name(a), what);
}

/* a <=> b for numbers and strings; anything else cannot be ordered. */
static int spaceship(struct ctx *cx, const json_t *a, const json_t *b, int *res)
{
    if (num_type(a) && num_type(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            int64_t x = json_integer_value(a), y = json_integer_value(b);
            *res = (x > y) - (x < y);
        } else {
            double x = json_number_value(a), y = json_number_value(b);
            *res = (x > y) - (x < y);
        }
        return 0;
    }
    if (json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        *res = c ? (c > 0) - (c < 0) : (la > lb) - (la < lb);
        return 0;
    }
    return cmperr(cx, a, b);
}

static bool is_blank(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return true;
    case JSON_STRING:
        return all_space(json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        return json_array_size(v) == 0;
    case JSON_OBJECT:
        return json_object_size(v) == 0;
    default:
        return false;
    }
}

static bool is_empty(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) == 0;
    case JSON_ARRAY:
        return json_array_size(v) == 0;
    case JSON_OBJECT:
        return json_object_size(v) == 0;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Expression evaluation */

static int eval_expr(struct ctx *cx, const struct expr *x, json_t **out);

static json_t *find_var(struct ctx *cx, const char *name)
{
    for (size_t i = cx->nscopes; i-- > 0;) {
        json_t *v = json_object_get(cx->scopes[i], name);
        if (v)
            return v;
    }
    json_t *v = json_object_get(cx->assigns, name);
    if (v)
        return v;
    return json_object_get(cx->vars, name);
}

static int eval_range_bounds(struct ctx *cx, const struct expr *x, int64_t *lo, int64_t *hi)
{
    json_t *a = NULL, *b = NULL;
    int rc = -1;
    if (eval_expr(cx, x->lo, &a) || eval_expr(cx, x->hi, &b))
        goto out;
    if (to_i(cx, a, lo) || to_i(cx, b, hi))
        goto out;
    rc = 0;
out:
    json_decref(a);
    json_decref(b);
    return rc;
}

static int eval_expr(struct ctx *cx, const struct expr *x, json_t **out)
{
    *out = NULL;
    switch (x->kind) {
    case E_LIT:
        *out = json_incref(x->lit);
        return 0;
    case E_EMPTY:
    case E_BLANK:
        *out = json_string("");
        return 0;
    case E_RANGE: {
        int64_t lo, hi;
        if (eval_range_bounds(cx, x, &lo, &hi))
            return -1;
        if (hi >= lo && (uint64_t)hi - (uint64_t)lo >= MAX_ARRAY)
            return rt_err(cx, "range (%" PRId64 "..%" PRId64 ") too large", lo, hi);
        json_t *a = json_array();
        for (int64_t i = lo; hi >= lo && i <= hi; i++) {
            json_array_append_new(a, json_integer(i));
            if (i == INT64_MAX)
                break;
        }
        *out = a;
        return add_work(cx, json_array_size(a));
    }
    case E_VAR:
        break;
    }
    json_t *obj = find_var(cx, x->name);
    if (!obj)
        return rt_err(cx, "undefined variable %s", x->name);
    json_incref(obj);
    for (size_t i = 0; i < x->nlk; i++) {
        const struct lookup *lk = &x->lk[i];
        json_t *key = NULL, *next = NULL;
        if (lk->idx) {
            if (eval_expr(cx, lk->idx, &key)) {
                json_decref(obj);
                return -1;
            }
        } else {
            key = json_string(lk->key);
        }
        if (json_is_object(obj) && json_is_string(key) &&
            (next = json_object_get(obj, json_string_value(key)))) {
            json_incref(next);
        } else if (json_is_array(obj) && json_is_integer(key)) {
            int64_t k = json_integer_value(key), n = (int64_t)json_array_size(obj);
            if (k < 0)
                k += n;
            next = (k >= 0 && k < n) ? json_incref(json_array_get(obj, (size_t)k)) : json_null();
        } else if (lk->command && !strcmp(lk->key, "size") &&
                   (json_is_array(obj) || json_is_object(obj) || json_is_string(obj) ||
                    json_is_integer(obj))) {
            size_t n = json_is_array(obj)    ? json_array_size(obj)
                       : json_is_object(obj) ? json_object_size(obj)
                       : json_is_string(obj)
                           ? u8len(json_string_value(obj), json_string_length(obj))
                           : sizeof(int64_t);
            next = json_integer((json_int_t)n);
        } else if (lk->command && !strcmp(lk->key, "first") &&
                   (json_is_array(obj) || json_is_object(obj))) {
            if (json_is_array(obj)) {
                next = json_array_size(obj) ? json_incref(json_array_get(obj, 0)) : json_null();
            } else {
                void *it = json_object_iter(obj);
                next = it ? json_pack("[sO]", json_object_iter_key(it), json_object_iter_value(it))
                          : json_null();
            }
        } else if (lk->command && !strcmp(lk->key, "last") && json_is_array(obj)) {
            size_t n = json_array_size(obj);
            next = n ? json_incref(json_array_get(obj, n - 1)) : json_null();
        } else {
            struct buf kb;
            int rc = sval(cx, key, &kb);
            if (rc == 0)
                rt_err(cx, "undefined variable %.100s", kb.ptr);
            buf_release(&kb);
            json_decref(key);
            json_decref(obj);
            return -1;
        }
        json_decref(key);
        json_decref(obj);
        obj = next;
    }
    *out = obj;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Filters */

struct fcall {
    struct ctx *cx;
    json_t *in;
    json_t **a; /* arguments after the input */
    size_t na;
};

typedef int (*filter_fn)(struct fcall *fc, json_t **out);

static const json_t *arg(struct fcall *fc, size_t i)
{
    return i < fc->na ? fc->a[i] : NULL;
}

/* input.to_s as a buffer; the filters below build their result into a second one. */
#define IN_STR(fc, b)                                                                              \
    struct buf b;                                                                                  \
    if (sval((fc)->cx, (fc)->in, &b))                                                              \
    return -1

static int str_result(struct fcall *fc, struct buf *res, json_t **out)
{
    *out = jstr_buf(res);
    return add_work(fc->cx, json_string_length(*out));
}

static int f_case(struct fcall *fc, json_t **out, int mode)
{
    IN_STR(fc, b);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.ptr[i];
        bool upper = mode == 1 || (mode == 2 && i == 0);
        b.ptr[i] = (char)(upper ? toupper(c) : tolower(c));
    }
    return str_result(fc, &b, out);
}

static int f_upcase(struct fcall *fc, json_t **out)
{
    return f_case(fc, out, 1);
}

static int f_downcase(struct fcall *fc, json_t **out)
{
    return f_case(fc, out, 0);
}

static int f_capitalize(struct fcall *fc, json_t **out)
{
    return f_case(fc, out, 2);
}

static int f_strip_ends(struct fcall *fc, json_t **out, bool left, bool right)
{
    IN_STR(fc, b);
    size_t a = 0, z = b.len;
    while (left && a < z && is_rspace((unsigned char)b.ptr[a]))
        a++;
    while (right && z > a && (is_rspace((unsigned char)b.ptr[z - 1]) || b.ptr[z - 1] == 0))
        z--;
    *out = jstr(b.ptr + a, z - a);
    buf_release(&b);
    return 0;
}

static int f_strip(struct fcall *fc, json_t **out)
{
    return f_strip_ends(fc, out, true, true);
}

static int f_lstrip(struct fcall *fc, json_t **out)
{
    return f_strip_ends(fc, out, true, false);
}

static int f_rstrip(struct fcall *fc, json_t **out)
{
    return f_strip_ends(fc, out, false, true);
}

/* gsub/sub with a plain string pattern (an empty pattern matches between characters). */
static int subst(struct ctx *cx, const char *s, size_t n, const char *pat, size_t pn,
                 const char *rep, size_t rn, bool all, json_t **out)
{
    struct buf r;
    size_t i = 0;
    bool done = false;

    buf_init(&r, MAX_OUTPUT);
    while (i <= n) {
        if (!done && pn == 0) {
            if (put(cx, &r, rep, rn))
                goto fail;
            done = !all;
            if (i == n)
                break;
            size_t next = i + 1;
            while (next < n && ((unsigned char)s[next] & 0xc0) == 0x80)
                next++;
            if (put(cx, &r, s + i, next - i))
                goto fail;
            i = next;
            continue;
        }
        const char *hit = (!done && pn <= n - i) ? memmem(s + i, n - i, pat, pn) : NULL;
        if (!hit) {
            if (put(cx, &r, s + i, n - i))
                goto fail;
            break;
        }
        if (put(cx, &r, s + i, (size_t)(hit - (s + i))) || put(cx, &r, rep, rn))
            goto fail;
        i = (size_t)(hit - s) + pn;
        done = !all;
    }
    *out = jstr_buf(&r);
    return 0;
fail:
    buf_release(&r);
    return -1;
}

static int f_subst(struct fcall *fc, json_t **out, bool all, bool remove)
{
    struct buf s, p, r = BUF_INIT;
    int rc = -1;
    if (sval(fc->cx, fc->in, &s))
        return -1;
    if (sval(fc->cx, arg(fc, 0), &p))
        goto out1;
    if (!remove && arg(fc, 1)) {
        if (sval(fc->cx, arg(fc, 1), &r))
            goto out2;
    }
    rc = subst(fc->cx, s.ptr, s.len, p.ptr, p.len, r.ptr ? r.ptr : "", r.len, all, out);
    buf_release(&r);
out2:
    buf_release(&p);
out1:
    buf_release(&s);
    return rc;
}

static int f_replace(struct fcall *fc, json_t **out)
{
    return f_subst(fc, out, true, false);
}

static int f_replace_first(struct fcall *fc, json_t **out)
{
    return f_subst(fc, out, false, false);
}

static int f_remove(struct fcall *fc, json_t **out)
{
    return f_subst(fc, out, true, true);
}

static int f_remove_first(struct fcall *fc, json_t **out)
{
    return f_subst(fc, out, false, true);
}

static int f_strip_newlines(struct fcall *fc, json_t **out)
{
    IN_STR(fc, b);
    size_t o = 0;
    for (size_t i = 0; i < b.len; i++) {
        if (b.ptr[i] == '\n')
            continue;
        if (b.ptr[i] == '\r' && i + 1 < b.len && b.ptr[i + 1] == '\n')
            continue;
        b.ptr[o++] = b.ptr[i];
    }
    *out = jstr(b.ptr, o);
    buf_release(&b);
    return 0;
}

static int f_newline_to_br(struct fcall *fc, json_t **out)
{
    IN_STR(fc, b);
    int rc = subst(fc->cx, b.ptr, b.len, "\n", 1, "<br />\n", 7, true, out);
    buf_release(&b);
    return rc;
}

static int f_escape(struct fcall *fc, json_t **out)
{
    if (json_is_null(fc->in)) {
        *out = json_null();
        return 0;
    }
    IN_STR(fc, b);
    struct buf r;
    buf_init(&r, MAX_OUTPUT);
    for (size_t i = 0; i < b.len; i++) {
        const char *e = NULL;
        switch (b.ptr[i]) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        }
        if (e ? puts_(fc->cx, &r, e) : put(fc->cx, &r, b.ptr + i, 1)) {
            buf_release(&b);
            buf_release(&r);
            return -1;
        }
    }
    buf_release(&b);
    return str_result(fc, &r, out);
}

static int f_append_prepend(struct fcall *fc, json_t **out, bool append)
{
    struct buf a, b;
    if (sval(fc->cx, fc->in, &a))
        return -1;
    if (sval(fc->cx, arg(fc, 0), &b)) {
        buf_release(&a);
        return -1;
    }
    struct buf *first = append ? &a : &b, *second = append ? &b : &a;
    int rc = put(fc->cx, first, second->ptr, second->len);
    buf_release(second);
    if (rc) {
        buf_release(first);
        return -1;
    }
    *out = jstr_buf(first);
    return 0;
}

static int f_append(struct fcall *fc, json_t **out)
{
    return f_append_prepend(fc, out, true);
}

static int f_prepend(struct fcall *fc, json_t **out)
{
    return f_append_prepend(fc, out, false);
}

static int arr_push(struct ctx *cx, json_t *a, json_t *v)
{
    if (json_array_size(a) >= MAX_ARRAY) {
        json_decref(v);
        return rt_err(cx, "array too large (over %d elements)", MAX_ARRAY);
    }
    json_array_append_new(a, v);
    return add_work(cx, 16);
}

/* Ruby String#split with a string pattern: " " splits on runs of whitespace ignoring
 * leading ones, "" splits into characters, trailing empty fields are dropped. */
static int f_split(struct fcall *fc, json_t **out)
{
    struct buf s, p;
    json_t *a = json_array();
    int rc = -1;

    if (sval(fc->cx, fc->in, &s)) {
        json_decref(a);
        return -1;
    }
    if (sval(fc->cx, arg(fc, 0), &p))
        goto out1;
    size_t i = 0, n = s.len;
    if (p.len == 1 && p.ptr[0] == ' ') {
        for (;;) {
            while (i < n && is_rspace((unsigned char)s.ptr[i]))
                i++;
            if (i >= n)
                break;
            size_t st = i;
            while (i < n && !is_rspace((unsigned char)s.ptr[i]))
                i++;
            if (arr_push(fc->cx, a, jstr(s.ptr + st, i - st)))
                goto out2;
        }
    } else if (p.len == 0) {
        while (i < n) {
            size_t st = i++;
            while (i < n && ((unsigned char)s.ptr[i] & 0xc0) == 0x80)
                i++;
            if (arr_push(fc->cx, a, jstr(s.ptr + st, i - st)))
                goto out2;
        }
    } else if (n > 0) {
        for (;;) {
            const char *hit = p.len <= n - i ? memmem(s.ptr + i, n - i, p.ptr, p.len) : NULL;
            size_t end = hit ? (size_t)(hit - s.ptr) : n;
            if (arr_push(fc->cx, a, jstr(s.ptr + i, end - i)))
                goto out2;
            if (!hit)
                break;
            i = end + p.len;
        }
        while (json_array_size(a) &&
               json_string_length(json_array_get(a, json_array_size(a) - 1)) == 0)
            json_array_remove(a, json_array_size(a) - 1);
    }
    *out = a;
    a = NULL;
    rc = 0;
out2:
    buf_release(&p);
out1:
    buf_release(&s);
    json_decref(a);
    return rc;
}

static int flatten_into(struct ctx *cx, json_t *dst, const json_t *src, int depth)
{
    size_t i;
    json_t *x;
    if (depth > MAX_VALUE_DEPTH)
        return rt_err(cx, "nesting too deep");
    json_array_foreach(src, i, x)
    {
        if (json_is_array(x)) {
            if (flatten_into(cx, dst, x, depth + 1))
                return -1;
        } else if (arr_push(cx, dst, json_incref(x))) {
            return -1;
        }
    }
    return 0;
}

/* Liquid's InputIterator: arrays flattened, a hash as [hash], nil as [], else [input]. */
static int input_iter(struct ctx *cx, const json_t *in, json_t **out)
{
    json_t *a = json_array();
    if (json_is_array(in)) {
        if (flatten_into(cx, a, in, 0)) {
            json_decref(a);
            return -1;
        }
    } else if (!json_is_null(in)) {
        json_array_append(a, (json_t *)in);
    }
    *out = a;
    return 0;
}

static int join(struct ctx *cx, const json_t *a, const char *glue, size_t gn, struct buf *b,
                int depth)
{
    size_t i;
    json_t *x;
    if (depth > MAX_VALUE_DEPTH)
        return rt_err(cx, "nesting too deep");
    json_array_foreach(a, i, x)
    {
        if (i && put(cx, b, glue, gn))
            return -1;
        if (json_is_array(x) ? join(cx, x, glue, gn, b, depth + 1) : to_s(cx, x, b, depth + 1))
            return -1;
    }
    return 0;
}

static int f_join(struct fcall *fc, json_t **out)
{
    json_t *a;
    struct buf g, r;
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    if (arg(fc, 0)) {
        if (sval(fc->cx, arg(fc, 0), &g)) {
            json_decref(a);
            return -1;
        }
    } else {
        buf_init(&g, 0);
        if (buf_puts(&g, " ") != ST_OK)
            BUG_ON(1);
    }
    buf_init(&r, MAX_OUTPUT);
    int rc = join(fc->cx, a, g.ptr, g.len, &r, 0);
    json_decref(a);
    buf_release(&g);
    if (rc) {
        buf_release(&r);
        return -1;
    }
    *out = jstr_buf(&r);
    return 0;
}

static size_t size_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return u8len(json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        return json_array_size(v);
    case JSON_OBJECT:
        return json_object_size(v);
    case JSON_INTEGER:
        return sizeof(int64_t); /* Integer#size: bytes in the machine word */
    default:
        return 0;
    }
}

static int f_size(struct fcall *fc, json_t **out)
{
    *out = json_integer((json_int_t)size_of(fc->in));
    return 0;
}

static int f_first(struct fcall *fc, json_t **out)
{
    if (json_is_array(fc->in) && json_array_size(fc->in)) {
        *out = json_incref(json_array_get(fc->in, 0));
    } else if (json_is_object(fc->in) && json_object_size(fc->in)) {
        void *it = json_object_iter(fc->in);
        *out = json_pack("[sO]", json_object_iter_key(it), json_object_iter_value(it));
    } else {
        *out = json_null();
    }
    return 0;
}

static int f_last(struct fcall *fc, json_t **out)
{
    size_t n = json_is_array(fc->in) ? json_array_size(fc->in) : 0;
    *out = n ? json_incref(json_array_get(fc->in, n - 1)) : json_null();
    return 0;
}

/* e[property] for map/sort/uniq/compact: a hash's value, a string's substring (Ruby
 * String#[]), nil for what has no []; arrays and integers would raise. */
static int prop(struct ctx *cx, const json_t *e, const json_t *p, json_t **out)
{
    *out = NULL;
    if (json_is_object(e)) {
        json_t *v = json_is_string(p) ? json_object_get(e, json_string_value(p)) : NULL;
        *out = v ? json_incref(v) : json_null();
    } else if (json_is_string(e) && json_is_string(p)) {
        *out = memmem(json_string_value(e), json_string_length(e), json_string_value(p),
                      json_string_length(p))
                   ? json_incref((json_t *)p)
                   : json_null();
    } else if (json_is_array(e) || json_is_integer(e)) {
        struct buf b;
        if (sval(cx, p, &b))
            return -1;
        rt_err(cx, "cannot select the property '%.100s'", b.ptr);
        buf_release(&b);
        return -1;
    } else {
        *out = json_null();
    }
    return 0;
}

/* Stable merge sort whose comparison may fail (Ruby raises on incomparable values). */
struct sortctx {
    struct ctx *cx;
    json_t **keys;
    bool failed;
};

static int sort_cmp(struct sortctx *sc, size_t a, size_t b)
{
    const json_t *x = sc->keys[a], *y = sc->keys[b];
    int r = 0;
    if (sc->failed)
        return 0;
    if (add_work(sc->cx, 4)) {
        sc->failed = true;
        return 0;
    }
    /* nil_safe_compare: nils sort last */
    if (json_is_null(x) || json_is_null(y))
        return json_is_null(x) ? (json_is_null(y) ? 0 : 1) : -1;
    if (spaceship(sc->cx, x, y, &r))
        sc->failed = true;
    return r;
}

static void merge_sort(struct sortctx *sc, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2 || sc->failed)
        return;
    size_t h = n / 2;
    merge_sort(sc, idx, tmp, h);
    merge_sort(sc, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = sort_cmp(sc, idx[i], idx[j]) <= 0 ? idx[i++] : idx[j++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof(*idx));
}

static int f_sort(struct fcall *fc, json_t **out)
{
    json_t *a;
    const json_t *p = arg(fc, 0);
    int rc = -1;
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    size_t n = json_array_size(a);
    struct sortctx sc = {fc->cx, xcalloc(n + 1, sizeof(json_t *)), false};
    size_t *idx = xcalloc(n + 1, sizeof(size_t)), *tmp = xcalloc(n + 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        json_t *e = json_array_get(a, i);
        if (p && !json_is_null(p)) {
            if (!json_is_object(e) && !json_is_string(e) && !json_is_array(e) &&
                !json_is_integer(e)) {
                *out = json_null(); /* not every element has []: Liquid returns nil */
                rc = 0;
                goto out;
            }
            if (prop(fc->cx, e, p, &sc.keys[i]))
                goto out;
        } else {
            sc.keys[i] = json_incref(e);
        }
    }
    merge_sort(&sc, idx, tmp, n);
    if (sc.failed)
        goto out;
    json_t *r = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(r, json_array_get(a, idx[i]));
    *out = r;
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        json_decref(sc.keys[i]);
    free(sc.keys);
    free(idx);
    free(tmp);
    json_decref(a);
    return rc;
}

static int f_uniq_compact(struct fcall *fc, json_t **out, bool uniq)
{
    json_t *a, *keys, *r;
    const json_t *p = arg(fc, 0);
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    keys = json_array();
    r = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        json_t *k;
        if (p && !json_is_null(p)) {
            if (prop(fc->cx, e, p, &k))
                goto fail;
        } else {
            k = json_incref(e);
        }
        bool keep = true;
        if (uniq) {
            if (add_work(fc->cx, json_array_size(keys))) {
                json_decref(k);
                goto fail;
            }
            for (size_t j = 0; keep && j < json_array_size(keys); j++)
                keep = !equal(json_array_get(keys, j), k, true, 0);
        } else {
            keep = !json_is_null(k);
        }
        if (keep) {
            json_array_append(keys, k);
            json_array_append(r, e);
        }
        json_decref(k);
    }
    json_decref(a);
    json_decref(keys);
    *out = r;
    return 0;
fail:
    json_decref(a);
    json_decref(keys);
    json_decref(r);
    return -1;
}

static int f_uniq(struct fcall *fc, json_t **out)
{
    return f_uniq_compact(fc, out, true);
}

static int f_compact(struct fcall *fc, json_t **out)
{
    return f_uniq_compact(fc, out, false);
}

static int f_reverse(struct fcall *fc, json_t **out)
{
    json_t *a;
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    json_t *r = json_array();
    for (size_t i = json_array_size(a); i-- > 0;)
        json_array_append(r, json_array_get(a, i));
    json_decref(a);
    *out = r;
    return 0;
}

static int f_map(struct fcall *fc, json_t **out)
{
    json_t *a, *r, *e;
    size_t i;
    const json_t *p = arg(fc, 0);
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    r = json_array();
    json_array_foreach(a, i, e)
    {
        json_t *v;
        if (json_is_string(p) && !strcmp(json_string_value(p), "to_liquid")) {
            v = json_incref(e);
        } else if (prop(fc->cx, e, p, &v)) {
            json_decref(a);
            json_decref(r);
            return -1;
        }
        json_array_append_new(r, v);
    }
    json_decref(a);
    *out = r;
    return add_work(fc->cx, json_array_size(r));
}

static int f_concat(struct fcall *fc, json_t **out)
{
    json_t *a;
    if (!json_is_array(arg(fc, 0)))
        return rt_err(fc->cx, "concat filter requires an array argument");
    if (input_iter(fc->cx, fc->in, &a))
        return -1;
    if (json_array_size(a) + json_array_size(arg(fc, 0)) > MAX_ARRAY) {
        json_decref(a);
        return rt_err(fc->cx, "array too large (over %d elements)", MAX_ARRAY);
    }
    json_array_extend(a, (json_t *)arg(fc, 0));
    *out = a;
    return add_work(fc->cx, json_array_size(a));
}

/* Ruby's slice(start, len) on arrays and (by characters) on strings. */
static int f_slice(struct fcall *fc, json_t **out)
{
    int64_t off, len = 1;
    if (to_integer(fc->cx, arg(fc, 0), &off))
        return -1;
    if (arg(fc, 1) && to_integer(fc->cx, arg(fc, 1), &len))
        return -1;
    if (json_is_array(fc->in)) {
        int64_t n = (int64_t)json_array_size(fc->in);
        json_t *r = json_array();
        if (off < 0)
            off += n;
        if (off >= 0 && off <= n && len >= 0)
            for (int64_t i = off; i < n && i - off < len; i++)
                json_array_append(r, json_array_get(fc->in, (size_t)i));
        *out = r;
        return 0;
    }
    IN_STR(fc, b);
    int64_t n = (int64_t)u8len(b.ptr, b.len);
    if (off < 0)
        off += n;
    if (off < 0 || off > n || len < 0) {
        *out = json_string("");
    } else {
        size_t a = u8off(b.ptr, b.len, (size_t)off);
        size_t z = len > n - off ? b.len : u8off(b.ptr, b.len, (size_t)(off + len));
        *out = jstr(b.ptr + a, z - a);
    }
    buf_release(&b);
    return 0;
}

static int f_truncate(struct fcall *fc, json_t **out)
{
    int64_t len = 50;
    struct buf ts;
    if (json_is_null(fc->in)) {
        *out = json_null();
        return 0;
    }
    if (arg(fc, 0) && to_integer(fc->cx, arg(fc, 0), &len))
        return -1;
    IN_STR(fc, b);
    if (arg(fc, 1)) {
        if (sval(fc->cx, arg(fc, 1), &ts)) {
            buf_release(&b);
            return -1;
        }
    } else {
        buf_init(&ts, 0);
        if (buf_puts(&ts, "...") != ST_OK)
            BUG_ON(1);
    }
    int64_t chars = (int64_t)u8len(b.ptr, b.len);
    if (chars > len) {
        int64_t tl = (int64_t)u8len(ts.ptr, ts.len);
        int64_t l = len > tl ? len - tl : 0;
        b.len = u8off(b.ptr, b.len, (size_t)l);
        if (put(fc->cx, &b, ts.ptr, ts.len)) {
            buf_release(&b);
            buf_release(&ts);
            return -1;
        }
    }
    buf_release(&ts);
    *out = jstr_buf(&b);
    return 0;
}

static int f_truncatewords(struct fcall *fc, json_t **out)
{
    int64_t words = 15;
    struct buf ts, r;
    if (json_is_null(fc->in)) {
        *out = json_null();
        return 0;
    }
    if (arg(fc, 0) && to_integer(fc->cx, arg(fc, 0), &words))
        return -1;
    IN_STR(fc, b);
    if (arg(fc, 1)) {
        if (sval(fc->cx, arg(fc, 1), &ts)) {
            buf_release(&b);
            return -1;
        }
    } else {
        buf_init(&ts, 0);
        if (buf_puts(&ts, "...") != ST_OK)
            BUG_ON(1);
    }
    int64_t l = words - 1 < 0 ? 0 : words - 1;
    int64_t count = 0;
    for (size_t i = 0; i < b.len;) {
        while (i < b.len && is_rspace((unsigned char)b.ptr[i]))
            i++;
        if (i < b.len)
            count++;
        while (i < b.len && !is_rspace((unsigned char)b.ptr[i]))
            i++;
    }
    /* Liquid 4 appends the ellipsis when there are more than words-1 words. */
    if (count <= l) {
        buf_release(&ts);
        *out = json_incref(fc->in);
        buf_release(&b);
        return 0;
    }
    buf_init(&r, MAX_OUTPUT);
    int64_t w = 0;
    int rc = 0;
    for (size_t i = 0; i < b.len && w <= l && rc == 0;) {
        while (i < b.len && is_rspace((unsigned char)b.ptr[i]))
            i++;
        size_t st = i;
        while (i < b.len && !is_rspace((unsigned char)b.ptr[i]))
            i++;
        if (i > st)
            rc = (w++ ? put(fc->cx, &r, " ", 1) : 0) || put(fc->cx, &r, b.ptr + st, i - st);
    }
    rc = rc || put(fc->cx, &r, ts.ptr, ts.len);
    buf_release(&ts);
    buf_release(&b);
    if (rc) {
        buf_release(&r);
        return -1;
    }
    *out = jstr_buf(&r);
    return 0;
}

static int f_default(struct fcall *fc, json_t **out)
{
    const json_t *opts = arg(fc, 1);
    bool allow_false = json_is_object(opts) && truthy(json_object_get(opts, "allow_false"));
    bool use_default =
        json_is_null(fc->in) || (json_is_false(fc->in) && !allow_false) || is_empty(fc->in);
    if (use_default)
        *out = arg(fc, 0) ? json_incref((json_t *)arg(fc, 0)) : json_string("");
    else
        *out = json_incref(fc->in);
    return 0;
}

static int f_arith(struct fcall *fc, json_t **out, char op)
{
    struct num a, b;
    if (to_number(fc->cx, fc->in, &a) || to_number(fc->cx, arg(fc, 0), &b))
        return -1;
    return arith(fc->cx, a, b, op, out);
}

static int f_plus(struct fcall *fc, json_t **out)
{
    return f_arith(fc, out, '+');
}

static int f_minus(struct fcall *fc, json_t **out)
{
    return f_arith(fc, out, '-');
}

static int f_times(struct fcall *fc, json_t **out)
{
    return f_arith(fc, out, '*');
}

static int f_divided_by(struct fcall *fc, json_t **out)
{
    return f_arith(fc, out, '/');
}

static int f_modulo(struct fcall *fc, json_t **out)
{
    return f_arith(fc, out, '%');
}

static int f_abs(struct fcall *fc, json_t **out)
{
    struct num a;
    if (to_number(fc->cx, fc->in, &a))
        return -1;
    if (a.f)
        return jreal(fc->cx, fabs(a.d), out);
    if (a.i == INT64_MIN)
        return rt_err(fc->cx, "integer overflow");
    *out = json_integer(a.i < 0 ? -a.i : a.i);
    return 0;
}

static int f_ceil_floor(struct fcall *fc, json_t **out, bool ceil_)
{
    struct num a;
    int64_t r = 0;
    if (to_number(fc->cx, fc->in, &a))
        return -1;
    if (!a.f) {
        *out = json_integer(a.i);
        return 0;
    }
    if (dbl_to_i(fc->cx, ceil_ ? ceil(a.d) : floor(a.d), &r))
        return -1;
    *out = json_integer(r);
    return 0;
}

static int f_ceil(struct fcall *fc, json_t **out)
{
    return f_ceil_floor(fc, out, true);
}

static int f_floor(struct fcall *fc, json_t **out)
{
    return f_ceil_floor(fc, out, false);
}

static int f_round(struct fcall *fc, json_t **out)
{
    struct num a, nn = {false, 0, 0};
    int64_t n = 0, r = 0;
    if (to_number(fc->cx, fc->in, &a))
        return -1;
    if (arg(fc, 0) && to_number(fc->cx, arg(fc, 0), &nn))
        return -1;
    if (nn.f && dbl_to_i(fc->cx, nn.d, &nn.i))
        return -1;
    n = nn.i;
    if (!a.f) {
        /* Integer#round(n): only a negative n changes anything (half away from zero). */
        r = a.i;
        if (n < 0) {
            if (n < -18) {
                r = 0;
            } else {
                int64_t p = 1;
                for (int64_t k = 0; k < -n; k++)
                    p *= 10;
                int64_t q = a.i / p, rem = a.i % p;
                if (rem < 0)
                    rem = -rem;
                if (rem * 2 >= p)
                    q += a.i < 0 ? -1 : 1;
                if (__builtin_mul_overflow(q, p, &r))
                    return rt_err(fc->cx, "integer overflow");
            }
        }
        *out = json_integer(r);
        return 0;
    }
    double d = round_decimal(a.d, n);
    if (n == 0) {
        if (dbl_to_i(fc->cx, d, &r))
            return -1;
        *out = json_integer(r);
        return 0;
    }
    return jreal(fc->cx, d, out);
}

static int f_at_least_most(struct fcall *fc, json_t **out, bool least)
{
    struct num a, b;
    if (to_number(fc->cx, fc->in, &a) || to_number(fc->cx, arg(fc, 0), &b))
        return -1;
    bool take_b = least ? num_d(b) > num_d(a) : num_d(b) < num_d(a);
    if (!a.f && !b.f)
        take_b = least ? b.i > a.i : b.i < a.i;
    *out = num_json(take_b ? b : a);
    return 0;
}

static int f_at_least(struct fcall *fc, json_t **out)
{
    return f_at_least_most(fc, out, true);
}

static int f_at_most(struct fcall *fc, json_t **out)
{
    return f_at_least_most(fc, out, false);
}

/* CGI.escape: keep [a-zA-Z0-9_.~-], space becomes '+', the rest %XX. */
static int f_url_encode(struct fcall *fc, json_t **out)
{
    if (json_is_null(fc->in)) {
        *out = json_null();
        return 0;
    }
    IN_STR(fc, b);
    struct buf r;
    buf_init(&r, MAX_OUTPUT);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.ptr[i];
        char enc[4];
        int rc;
        if (isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~') {
            rc = put(fc->cx, &r, b.ptr + i, 1);
        } else if (c == ' ') {
            rc = put(fc->cx, &r, "+", 1);
        } else {
            snprintf(enc, sizeof(enc), "%%%02X", c);
            rc = put(fc->cx, &r, enc, 3);
        }
        if (rc) {
            buf_release(&b);
            buf_release(&r);
            return -1;
        }
    }
    buf_release(&b);
    return str_result(fc, &r, out);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int f_url_decode(struct fcall *fc, json_t **out)
{
    if (json_is_null(fc->in)) {
        *out = json_null();
        return 0;
    }
    IN_STR(fc, b);
    size_t o = 0;
    for (size_t i = 0; i < b.len; i++) {
        if (b.ptr[i] == '+') {
            b.ptr[o++] = ' ';
        } else if (b.ptr[i] == '%' && i + 2 < b.len + 0 && hexval(b.ptr[i + 1]) >= 0 &&
                   hexval(b.ptr[i + 2]) >= 0) {
            b.ptr[o++] = (char)(hexval(b.ptr[i + 1]) * 16 + hexval(b.ptr[i + 2]));
            i += 2;
        } else {
            b.ptr[o++] = b.ptr[i];
        }
    }
    *out = jstr(b.ptr, o);
    buf_release(&b);
    return 0;
}

static int f_base64_encode(struct fcall *fc, json_t **out)
{
    IN_STR(fc, b);
    if ((b.len + 2) / 3 * 4 > MAX_OUTPUT) {
        buf_release(&b);
        return rt_err(fc->cx, "output too large");
    }
    char *s = crypto_b64_encode(b.ptr, b.len);
    buf_release(&b);
    *out = json_string(s);
    free(s);
    return add_work(fc->cx, json_string_length(*out));
}

static int f_base64_decode(struct fcall *fc, json_t **out)
{
    IN_STR(fc, b);
    size_t n = 0;
    bool ok = b.len % 4 == 0;
    for (size_t i = 0; ok && i < b.len; i++) {
        char c = b.ptr[i];
        ok = isalnum((unsigned char)c) || c == '+' || c == '/' ||
             (c == '=' && i + 2 >= b.len && (i + 1 == b.len || b.ptr[i + 1] == '='));
    }
    char *s = ok ? crypto_b64_decode(b.ptr, b.len, &n) : NULL;
    buf_release(&b);
    if (!s)
        return rt_err(fc->cx, "invalid base64 provided to base64_decode");
    *out = jstr(s, n);
    free(s);
    return 0;
}

/* date: only "now"/"today" and seconds since the epoch (Liquid also parses date strings,
 * which stack files do not need); anything else is returned unchanged. */
static int f_date(struct fcall *fc, json_t **out)
{
    struct buf f;
    time_t t;
    struct tm tm;
    int64_t secs = 0;

    if (sval(fc->cx, arg(fc, 0), &f))
        return -1;
    bool have = false;
    if (f.len > 0) {
        if (json_is_integer(fc->in)) {
            secs = json_integer_value(fc->in);
            have = true;
        } else if (json_is_string(fc->in)) {
            const char *s = json_string_value(fc->in);
            size_t n = json_string_length(fc->in), i = 0;
            if ((n == 3 && !strncasecmp(s, "now", 3)) || (n == 5 && !strncasecmp(s, "today", 5))) {
                secs = (int64_t)time(NULL);
                have = true;
            } else {
                while (i < n && isdigit((unsigned char)s[i]))
                    i++;
                if (n > 0 && i == n) {
                    if (str_to_i(fc->cx, s, n, &secs)) {
                        buf_release(&f);
                        return -1;
                    }
                    have = true;
                }
            }
        }
    }
    t = (time_t)secs;
    if (!have || (int64_t)t != secs || !localtime_r(&t, &tm) || memchr(f.ptr, 0, f.len)) {
        buf_release(&f);
        *out = json_incref(fc->in);
        return 0;
    }
    char res[1024];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = f.len < 256 ? strftime(res, sizeof(res), f.ptr, &tm) : 0;
#pragma GCC diagnostic pop
    buf_release(&f);
    if (n == 0)
        return rt_err(fc->cx, "date format too long or empty result");
    *out = jstr(res, n);
    return 0;
}

static int f_json(struct fcall *fc, json_t **out)
{
    char *s = json_dumps(fc->in, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        return rt_err(fc->cx, "json filter cannot encode its input");
    *out = json_string_nocheck(s);
    free(s);
    return add_work(fc->cx, json_string_length(*out));
}

static const struct {
    const char *name;
    filter_fn fn;
    int min, max; /* arguments counting the input, as Ruby counts them */
} filters[] = {
    {"upcase", f_upcase, 1, 1},
    {"downcase", f_downcase, 1, 1},
    {"capitalize", f_capitalize, 1, 1},
    {"strip", f_strip, 1, 1},
    {"lstrip", f_lstrip, 1, 1},
    {"rstrip", f_rstrip, 1, 1},
    {"strip_newlines", f_strip_newlines, 1, 1},
    {"newline_to_br", f_newline_to_br, 1, 1},
    {"escape", f_escape, 1, 1},
    {"append", f_append, 2, 2},
    {"prepend", f_prepend, 2, 2},
    {"remove", f_remove, 2, 2},
    {"remove_first", f_remove_first, 2, 2},
    {"replace", f_replace, 2, 3},
    {"replace_first", f_replace_first, 2, 3},
    {"split", f_split, 2, 2},
    {"join", f_join, 1, 2},
    {"size", f_size, 1, 1},
    {"first", f_first, 1, 1},
    {"last", f_last, 1, 1},
    {"sort", f_sort, 1, 2},
    {"uniq", f_uniq, 1, 2},
    {"reverse", f_reverse, 1, 1},
    {"compact", f_compact, 1, 2},
    {"map", f_map, 2, 2},
    {"slice", f_slice, 2, 3},
    {"truncate", f_truncate, 1, 3},
    {"truncatewords", f_truncatewords, 1, 3},
    {"default", f_default, 1, 3},
    {"plus", f_plus, 2, 2},
    {"minus", f_minus, 2, 2},
    {"times", f_times, 2, 2},
    {"divided_by", f_divided_by, 2, 2},
    {"modulo", f_modulo, 2, 2},
    {"abs", f_abs, 1, 1},
    {"ceil", f_ceil, 1, 1},
    {"floor", f_floor, 1, 1},
    {"round", f_round, 1, 2},
    {"at_least", f_at_least, 2, 2},
    {"at_most", f_at_most, 2, 2},
    {"url_encode", f_url_encode, 1, 1},
    {"url_decode", f_url_decode, 1, 1},
    {"base64_encode", f_base64_encode, 1, 1},
    {"base64_decode", f_base64_decode, 1, 1},
    {"concat", f_concat, 2, 2},
    {"date", f_date, 2, 2},
    {"json", f_json, 1, 1},
};

static int apply_filter(struct ctx *cx, const struct filter *f, json_t *in, json_t **out)
{
    size_t fi;
    int rc = -1;

    *out = NULL;
    for (fi = 0; fi < ARRAY_SIZE(filters); fi++)
        if (!strcmp(filters[fi].name, f->name))
            break;
    if (fi == ARRAY_SIZE(filters))
        return rt_err(cx, "undefined filter %.100s", f->name);
    size_t na = f->nargs + (f->nkw ? 1 : 0);
    json_t **a = xcalloc(na + 1, sizeof(*a));
    for (size_t i = 0; i < f->nargs; i++)
        if (eval_expr(cx, f->args[i], &a[i]))
            goto out;
    if (f->nkw) {
        a[f->nargs] = json_object();
        for (size_t i = 0; i < f->nkw; i++) {
            json_t *v;
            if (eval_expr(cx, f->kwv[i], &v))
                goto out;
            json_object_set_new(a[f->nargs], f->kwn[i], v);
        }
    }
    int given = (int)na + 1;
    if (given < filters[fi].min || given > filters[fi].max) {
        if (filters[fi].min == filters[fi].max)
            rt_err(cx, "wrong number of arguments (given %d, expected %d)", given, filters[fi].min);
        else
            rt_err(cx, "wrong number of arguments (given %d, expected %d..%d)", given,
                   filters[fi].min, filters[fi].max);
        goto out;
    }
    struct fcall fc = {cx, in, a, na};
    rc = filters[fi].fn(&fc, out);
    if (rc == 0 && json_is_string(*out) && json_string_length(*out) > MAX_OUTPUT) {
        json_decref(*out);
        *out = NULL;
        rc = rt_err(cx, "output too large");
    }
out:
    for (size_t i = 0; i < na; i++)
        json_decref(a[i]);
    free(a);
    return rc;
}

static int eval_var(struct ctx *cx, const struct var *v, json_t **out)
{
    json_t *cur;
    *out = NULL;
    if (!v->base) {
        *out = json_null();
        return 0;
    }
    if (eval_expr(cx, v->base, &cur))
        return -1;
    for (size_t i = 0; i < v->nf; i++) {
        json_t *next;
        int rc = apply_filter(cx, &v->f[i], cur, &next);
        json_decref(cur);
        if (rc)
            return -1;
        cur = next;
    }
    *out = cur;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Conditions */

static int eval_cmp(struct ctx *cx, const struct cmp *k, bool *res)
{
    json_t *l = NULL, *r = NULL;
    int rc = -1;

    *res = false;
    if (eval_expr(cx, k->l, &l))
        return -1;
    if (k->op == OP_NONE) {
        *res = truthy(l);
        json_decref(l);
        return 0;
    }
    if (eval_expr(cx, k->r, &r))
        goto out;
    switch (k->op) {
    case OP_EQ:
    case OP_NE: {
        bool eq;
        if (k->l->kind == E_EMPTY || k->r->kind == E_EMPTY)
            eq = is_empty(k->l->kind == E_EMPTY ? r : l);
        else if (k->l->kind == E_BLANK || k->r->kind == E_BLANK)
            eq = is_blank(k->l->kind == E_BLANK ? r : l);
        else
            eq = equal(l, r, false, 0);
        *res = k->op == OP_EQ ? eq : !eq;
        break;
    }
    case OP_LT:
    case OP_GT:
    case OP_LE:
    case OP_GE: {
        int c;
        bool ordered = (num_type(l) || json_is_string(l)) && (num_type(r) || json_is_string(r));
        if (k->l->kind == E_EMPTY || k->l->kind == E_BLANK || k->r->kind == E_EMPTY ||
            k->r->kind == E_BLANK || !ordered)
            break; /* Liquid: operands without the operator compare as nil */
        if (spaceship(cx, l, r, &c))
            goto out;
        *res = k->op == OP_LT ? c < 0 : k->op == OP_GT ? c > 0 : k->op == OP_LE ? c <= 0 : c >= 0;
        break;
    }
    case OP_CONTAINS:
        if (json_is_null(l) || json_is_null(r))
            break;
        if (json_is_string(l)) {
            struct buf s;
            if (sval(cx, r, &s))
                goto out;
            *res = memmem(json_string_value(l), json_string_length(l), s.ptr, s.len) != NULL;
            buf_release(&s);
        } else if (json_is_array(l)) {
            for (size_t i = 0; !*res && i < json_array_size(l); i++)
                *res = equal(json_array_get(l, i), r, false, 0);
        } else if (json_is_object(l) && json_is_string(r)) {
            *res = json_object_get(l, json_string_value(r)) != NULL;
        }
        break;
    default:
        break;
    }
    rc = 0;
out:
    json_decref(l);
    json_decref(r);
    return rc;
}

/* `a and b or c` is a and (b or c): Liquid folds from the right; evaluation still goes left
 * to right and stops as soon as the result is known. */
static int eval_cond(struct ctx *cx, const struct cond *c, bool *res)
{
    for (size_t i = 0; i < c->n; i++) {
        bool r;
        if (eval_cmp(cx, &c->c[i], &r))
            return -1;
        if (i == c->n - 1 || (c->j[i] && !r) || (!c->j[i] && r)) {
            *res = r;
            return 0;
        }
    }
    *res = false;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Rendering */

enum rres { R_OK, R_BREAK, R_CONTINUE, R_ERR };

static enum rres render_body(struct ctx *cx, const struct body *b, struct buf *out);

/* A blank block (only whitespace and tags without output) renders nothing (Liquid 4). */
static enum rres render_block_body(struct ctx *cx, const struct body *b, bool blank,
                                   struct buf *out)
{
    if (!blank)
        return render_body(cx, b, out);
    struct buf scratch;
    buf_init(&scratch, MAX_OUTPUT);
    enum rres r = render_body(cx, b, &scratch);
    buf_release(&scratch);
    return r;
}

static enum rres render_if(struct ctx *cx, const struct node *nd, struct buf *out)
{
    for (size_t i = 0; i < nd->nbr; i++) {
        bool r = true;
        cx->line = nd->line;
        if (nd->br[i].cond) {
            if (eval_cond(cx, nd->br[i].cond, &r))
                return R_ERR;
            if (i == 0 && nd->unless)
                r = !r;
        }
        if (r)
            return render_block_body(cx, &nd->br[i].body, nd->blank, out);
    }
    return R_OK;
}

static int set_int(json_t *o, const char *k, int64_t v)
{
    return json_object_set_new(o, k, json_integer(v));
}

static enum rres render_for(struct ctx *cx, const struct node *nd, struct buf *out)
{
    json_t *coll = NULL, *lim = NULL, *offv = NULL;
    int64_t lo = 0, from = 0, to = 0, n = 0;
    bool have_to = false, is_range = nd->coll->kind == E_RANGE;
    enum rres res = R_ERR;
    json_t *scope = NULL, *loop = NULL;

    cx->line = nd->line;
    if (is_range) {
        int64_t hi;
        if (eval_range_bounds(cx, nd->coll, &lo, &hi))
            goto out;
        if (hi >= lo) {
            uint64_t span = (uint64_t)hi - (uint64_t)lo;
            n = span >= (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)span + 1;
        }
    } else {
        if (eval_expr(cx, nd->coll, &coll))
            goto out;
        if (json_is_array(coll))
            n = (int64_t)json_array_size(coll);
        else if (json_is_object(coll)) {
            /* a hash iterates as [key, value] pairs */
            json_t *pairs = json_array();
            const char *k;
            json_t *v;
            json_object_foreach(coll, k, v)
            {
                json_array_append_new(pairs, json_pack("[sO]", k, v));
            }
            json_decref(coll);
            coll = pairs;
            n = (int64_t)json_array_size(coll);
        } else if (json_is_string(coll))
            n = json_string_length(coll) ? 1 : 0;
    }
    if (nd->offset) {
        if (eval_expr(cx, nd->offset, &offv) || to_i(cx, offv, &from))
            goto out;
    }
    if (nd->limit) {
        if (eval_expr(cx, nd->limit, &lim))
            goto out;
        if (!json_is_null(lim)) {
            int64_t l;
            if (to_i(cx, lim, &l))
                goto out;
            if (__builtin_add_overflow(l, from, &to))
                to = l < 0 ? INT64_MIN : INT64_MAX;
            have_to = true;
        }
    }
    /* Liquid's slice_collection_using_each: indexes in [from, to); strings ignore both. */
    int64_t start = 0, end = n;
    if (!json_is_string(coll)) {
        start = from < 0 ? 0 : from > n ? n : from;
        if (have_to)
            end = to < start ? start : to > n ? n : to;
    }
    int64_t len = end - start;
    if (len <= 0) {
        res = render_block_body(cx, &nd->ebody, nd->blank, out);
        goto out;
    }
    if (len > MAX_ITERATIONS) {
        rt_err(cx, "too many loop iterations (over %d)", MAX_ITERATIONS);
        goto out;
    }

    scope = json_object();
    loop = json_object();
    json_t *parent = NULL;
    for (size_t i = cx->nscopes; i-- > 0 && !parent;)
        parent = json_object_get(cx->scopes[i], "forloop");
    json_object_set(loop, "parentloop", parent ? parent : json_null());
    json_object_set_new(loop, "name", json_string_nocheck(nd->loopname));
    set_int(loop, "length", len);
    json_object_set(scope, "forloop", loop);
    if (cx->nscopes == cx->ascopes) {
        cx->ascopes = cx->ascopes ? cx->ascopes * 2 : 8;
        cx->scopes = xrealloc(cx->scopes, cx->ascopes * sizeof(*cx->scopes));
    }
    cx->scopes[cx->nscopes++] = scope;

    res = R_OK;
    for (int64_t k = 0; k < len; k++) {
        int64_t idx = nd->reversed ? end - 1 - k : start + k;
        json_t *item;
        if (++cx->iterations > MAX_ITERATIONS) {
            cx->line = nd->line;
            rt_err(cx, "too many loop iterations (over %d)", MAX_ITERATIONS);
            res = R_ERR;
            break;
        }
        if (is_range) {
            item = json_integer(lo + idx);
        } else if (json_is_array(coll)) {
            item = json_incref(json_array_get(coll, (size_t)idx));
        } else {
            item = json_incref(coll);
        }
        json_object_set_new(scope, nd->name, item);
        set_int(loop, "index", k + 1);
        set_int(loop, "index0", k);
        set_int(loop, "rindex", len - k);
        set_int(loop, "rindex0", len - k - 1);
        json_object_set(loop, "first", k == 0 ? json_true() : json_false());
        json_object_set(loop, "last", k == len - 1 ? json_true() : json_false());
        enum rres r = render_block_body(cx, &nd->body, nd->blank, out);
        if (r == R_ERR) {
            res = R_ERR;
            break;
        }
        if (r == R_BREAK)
            break;
    }
    cx->nscopes--;
out:
    json_decref(loop);
    json_decref(scope);
    json_decref(coll);
    json_decref(lim);
    json_decref(offv);
    return res;
}

static enum rres render_body(struct ctx *cx, const struct body *b, struct buf *out)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct node *nd = b->v[i];
        enum rres r = R_OK;
        cx->line = nd->line;
        switch (nd->kind) {
        case N_TEXT:
            if (put(cx, out, nd->text, nd->tn))
                return R_ERR;
            break;
        case N_OUTPUT: {
            json_t *v;
            const struct expr *x = nd->var->base;
            if (x && x->kind == E_RANGE && nd->var->nf == 0) {
                /* a Ruby Range prints as "a..b" */
                int64_t lo, hi;
                char tmp[64];
                if (eval_range_bounds(cx, x, &lo, &hi))
                    return R_ERR;
                snprintf(tmp, sizeof(tmp), "%" PRId64 "..%" PRId64, lo, hi);
                if (puts_(cx, out, tmp))
                    return R_ERR;
                break;
            }
            if (eval_var(cx, nd->var, &v))
                return R_ERR;
            int rc = to_s(cx, v, out, 0);
            json_decref(v);
            if (rc)
                return R_ERR;
            break;
        }
        case N_ASSIGN: {
            json_t *v;
            if (eval_var(cx, nd->var, &v))
                return R_ERR;
            json_object_set_new(cx->assigns, nd->name, v);
            break;
        }
        case N_CAPTURE: {
            struct buf cap;
            buf_init(&cap, MAX_OUTPUT);
            r = render_body(cx, &nd->body, &cap);
            if (r != R_ERR)
                json_object_set_new(cx->assigns, nd->name, jstr_buf(&cap));
            buf_release(&cap);
            break;
        }
        case N_IF:
            r = render_if(cx, nd, out);
            break;
        case N_FOR:
            r = render_for(cx, nd, out);
            break;
        case N_BREAK:
            return R_BREAK;
        case N_CONTINUE:
            return R_CONTINUE;
        }
        if (r != R_OK)
            return r;
    }
    return R_OK;
}

/* ---------------------------------------------------------------------------------------- */

enum status liquid_render(const char *tmpl, const json_t *vars, char **out, struct err *e)
{
    struct toks toks = {NULL, 0, 0};
    struct parser ps;
    struct body doc = {NULL, 0, 0, false};
    struct ctx cx;
    struct buf res;
    enum status st;
    size_t stop;

    *out = NULL;
    if (!tmpl)
        tmpl = "";
    memset(&cx, 0, sizeof(cx));
    buf_init(&res, MAX_OUTPUT);
    tokenize(tmpl, strlen(tmpl), &toks);
    ps.t = &toks;
    ps.pos = 0;
    ps.tmpl = tmpl;
    ps.e = e;
    st = parse_body(&ps, &doc, 0, &stop);
    if (st != ST_OK)
        goto out;
    if (stop < toks.n) {
        const struct tok *t = &toks.v[stop];
        bool outer = (t->namen == 4 && !memcmp(t->name, "else", 4)) ||
                     (t->namen == 5 && !memcmp(t->name, "elsif", 5)) ||
                     (t->namen >= 3 && !memcmp(t->name, "end", 3));
        if (outer)
            st = lq_err(e, t->line, true, "Unexpected outer '%.*s' tag", (int)t->namen, t->name);
        else
            st = lq_err(e, t->line, true, "Unknown tag '%.*s'", (int)t->namen, t->name);
        goto out;
    }

    cx.vars = json_is_object(vars) ? vars : NULL;
    cx.assigns = json_object();
    cx.e = e;
    cx.line = 1;
    /* A break/continue outside any loop stops the rendering, keeping what came before. */
    if (render_body(&cx, &doc, &res) == R_ERR) {
        st = ST_INVALID;
        goto out;
    }
    *out = buf_take(&res);
    st = ST_OK;
out:
    buf_release(&res);
    json_decref(cx.assigns);
    free(cx.scopes);
    body_release(&doc);
    free(toks.v);
    return st;
}
