/* cli/stackfile/vars_resolve.c -- the non-interactive resolvers (`from:`, stack-file.md
 * §6.3) and the table that names every resolver. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/vars_internal.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* ---------------------------------------------------------------------------------------- */
/* The non-interactive resolvers (the contract is resolver_fn in vars_internal.h). */

static const char *host_getenv(const struct vars *v, const char *name)
{
    if (v->host->getenv)
        return v->host->getenv(v->host->ctx, name);
    return getenv(name);
}

int vars__all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static enum status r_env(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                         struct err *re)
{
    json_t *names = json_array();
    size_t i;
    const json_t *it;
    enum status st = ST_OK;

    if (!hint)
        json_array_append_new(names, json_string(x->name));
    else if (json_is_array(hint))
        json_array_foreach(hint, i, it) json_array_append(names, (json_t *)it);
    else
        json_array_append(names, (json_t *)hint);
    json_array_foreach(names, i, it)
    {
        char *n;
        const char *val;
        long long num;
        if (json_is_array(it) || json_is_object(it) || json_is_null(it)) {
            st = err_set(re, ST_INVALID, "Invalid environment variable name");
            break;
        }
        n = vars__to_text(it);
        val = host_getenv(v, n);
        if (!val) {
            free(n);
            continue;
        }
        if (vars__all_digits(val) && vars__parse_int(val, &num))
            *out = json_integer(num);
        else if (strcmp(val, "true") == 0)
            *out = json_true();
        else if (strcmp(val, "false") == 0)
            *out = json_false();
        else if (strcmp(val, "null") == 0 || strcmp(val, "nil") == 0)
            *out = NULL;
        else if (!(*out = json_string(val)))
            st = err_set(re, ST_INVALID, "Environment variable %s is not valid UTF-8", n);
        free(n);
        if (*out || st != ST_OK)
            break;
    }
    json_decref(names);
    return st;
}

static enum status r_default(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                             struct err *re)
{
    (void)v, (void)hint, (void)re;
    if (x->dflt)
        *out = json_incref(x->dflt);
    return ST_OK;
}

static enum status r_file(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                          struct err *re)
{
    const json_t *p = hint;
    int ignore = 0;
    FILE *f;
    struct buf b;
    char chunk[8192];
    size_t n;
    enum status st = ST_OK;

    (void)v, (void)x;
    if (json_is_object(hint)) {
        p = json_object_get(hint, "path");
        ignore = json_is_true(json_object_get(hint, "ignore_errors"));
    }
    if (!vars__nonempty_string(p))
        return err_set(re, ST_INVALID, "File path missing");
    buf_init(&b, MAX_FILE_SIZE);
    f = fopen(json_string_value(p), "rb");
    if (!f) {
        if (!ignore)
            st = err_set(re, ST_INVALID, "Cannot read file '%s': %s", json_string_value(p),
                         strerror(errno));
        goto out;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) != ST_OK) {
            if (!ignore)
                st = err_set(re, ST_INVALID, "File '%s' is larger than %d bytes",
                             json_string_value(p), MAX_FILE_SIZE);
            goto out;
        }
    }
    if (ferror(f)) {
        if (!ignore)
            st = err_set(re, ST_INVALID, "Cannot read file '%s': %s", json_string_value(p),
                         strerror(errno));
        goto out;
    }
    if (!(*out = vars__text_json(b.ptr ? b.ptr : "", b.len)) && !ignore)
        st = err_set(re, ST_INVALID, "File '%s' is not UTF-8 text", json_string_value(p));
out:
    if (f)
        fclose(f);
    buf_release(&b);
    return st;
}

/* Uniform random integer in [0, n) (n == 0: any 64-bit value). */
static uint64_t rand_below(uint64_t n)
{
    uint64_t r, limit;

    if (n == 0) {
        crypto_random_bytes(&r, sizeof(r));
        return r;
    }
    limit = UINT64_MAX - (UINT64_MAX % n);
    do
        crypto_random_bytes(&r, sizeof(r));
    while (r >= limit);
    return r % n;
}

static int hint_int(const json_t *j, long long *out)
{
    if (json_is_integer(j)) {
        *out = json_integer_value(j);
        return 1;
    }
    return json_is_string(j) && vars__parse_int(json_string_value(j), out);
}

static enum status r_random_string(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                   struct err *re)
{
    long long len = 0, lo = 0, hi = 0;
    const json_t *cs = NULL;
    char *charset = NULL;
    const char *named = NULL;
    struct buf b = BUF_INIT;
    /* chars: each element one UTF-8 sequence of the literal set */
    size_t *starts = NULL, nchars = 0;
    enum { CS_LIST, CS_NUMRANGE } mode = CS_LIST;
    enum status st = ST_OK;

    (void)v, (void)x;
    if (json_is_object(hint)) {
        if (!hint_int(json_object_get(hint, "length"), &len))
            return err_set(re, ST_INVALID,
                           "Invalid settings for random string. Required: length, optional: "
                           "charset. Charsets : numbers, letters, alphanumeric, hex, base64, "
                           "ascii_printable and X-Y range.");
        cs = json_object_get(hint, "charset");
        if (json_is_null(cs))
            cs = NULL;
    } else if (!hint_int(hint, &len) || len <= 0) {
        return err_set(re, ST_INVALID, "Missing settings for random string.");
    }
    if (len < 0 || len > MAX_RANDOM_LEN)
        return err_set(re, ST_INVALID, "Invalid length %lld for random string (0-%d)", len,
                       MAX_RANDOM_LEN);
    if (cs && (json_is_array(cs) || json_is_object(cs)))
        return err_set(re, ST_INVALID, "Invalid charset for random string");
    charset = cs ? vars__to_text(cs) : xstrdup("alphanumeric");
    if (strcmp(charset, "base64") == 0 && len % 4 != 0) {
        st = err_set(re, ST_INVALID, "Length must be divisible by 4 when using base64");
        goto out;
    }
    if (strcmp(charset, "numbers") == 0)
        named = "0123456789";
    else if (strcmp(charset, "letters") == 0)
        named = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    else if (strcmp(charset, "downcase") == 0)
        named = "abcdefghijklmnopqrstuvwxyz";
    else if (strcmp(charset, "upcase") == 0)
        named = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    else if (strcmp(charset, "alphanumeric") == 0)
        named = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    else if (strcmp(charset, "hex") == 0)
        named = "0123456789abcdef";
    else if (strcmp(charset, "hex_upcase") == 0)
        named = "0123456789ABCDEF";
    else if (strcmp(charset, "base64") == 0)
        named = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    else if (strcmp(charset, "ascii_printable") == 0)
        named = "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                "abcdefghijklmnopqrstuvwxyz{|}~";
    if (named) {
        free(charset);
        charset = xstrdup(named);
    } else if (strlen(charset) == 3 && charset[1] == '-' &&
               ((islower((unsigned char)charset[0]) && islower((unsigned char)charset[2])) ||
                (isupper((unsigned char)charset[0]) && isupper((unsigned char)charset[2])))) {
        /* a-z style range (A-Z too: the original took that as the three literal chars) */
        char lo_c = charset[0], hi_c = charset[2];
        free(charset);
        charset = xstrdup("");
        for (char c = lo_c; c <= hi_c; c++) {
            char one[2] = {c, 0};
            char *t = xasprintf("%s%s", charset, one);
            free(charset);
            charset = t;
        }
    } else {
        const char *dash = strchr(charset, '-');
        if (dash && dash != charset && vars__all_digits(dash + 1)) {
            char *left = xstrndup(charset, (size_t)(dash - charset));
            if (vars__all_digits(left) && vars__parse_int(left, &lo) &&
                vars__parse_int(dash + 1, &hi))
                mode = CS_NUMRANGE; /* 1-12: each pick is a number of that range */
            free(left);
        }
    }
    if (mode == CS_NUMRANGE) {
        if (hi < lo) {
            st = err_set(re, ST_INVALID, "Empty charset for random string");
            goto out;
        }
        for (long long i = 0; i < len; i++)
            BUF_OK(buf_printf(&b, "%lld", lo + (long long)rand_below((uint64_t)(hi - lo) + 1)));
    } else {
        for (size_t i = 0; charset[i]; i++)
            if (((unsigned char)charset[i] & 0xC0) != 0x80) {
                starts = xrealloc(starts, (nchars + 1) * sizeof(*starts));
                starts[nchars++] = i;
            }
        if (nchars == 0) {
            st = err_set(re, ST_INVALID, "Empty charset for random string");
            goto out;
        }
        for (long long i = 0; i < len; i++) {
            size_t k = (size_t)rand_below(nchars);
            size_t end = k + 1 < nchars ? starts[k + 1] : strlen(charset);
            BUF_OK(buf_append(&b, charset + starts[k], end - starts[k]));
        }
    }
    if (!(*out = vars__text_json(b.ptr ? b.ptr : "", b.len)))
        st = err_set(re, ST_INVALID, "Invalid charset for random string");
out:
    free(starts);
    free(charset);
    buf_release(&b);
    return st;
}

static enum status r_random_number(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                   struct err *re)
{
    long long lo, hi;

    (void)v, (void)x;
    if (!json_is_object(hint) || !hint_int(json_object_get(hint, "min"), &lo) ||
        !hint_int(json_object_get(hint, "max"), &hi))
        return err_set(re, ST_INVALID,
                       "Invalid settings for random number. Required: min and max (integers)");
    if (lo > hi)
        return err_set(re, ST_INVALID, "Invalid settings for random number: min %lld > max %lld",
                       lo, hi);
    *out = json_integer((json_int_t)((uint64_t)lo + rand_below((uint64_t)hi - (uint64_t)lo + 1)));
    return ST_OK;
}

static enum status r_random_uuid(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re)
{
    unsigned char u[16];

    (void)v, (void)x, (void)hint, (void)re;
    crypto_random_bytes(u, sizeof(u));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    {
        char s[37];
        snprintf(s, sizeof(s),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                 u[15]);
        *out = json_string(s);
    }
    return ST_OK;
}

static enum status r_variable(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                              struct err *re)
{
    const json_t *val;
    int declared;

    (void)x;
    if (!vars__nonempty_string(hint))
        return err_set(re, ST_INVALID, "Variable name missing");
    if (vars__value_of(v, json_string_value(hint), &val, &declared) != ST_OK) {
        v->nested_fail = 1;
        return ST_INVALID;
    }
    if (!declared)
        return err_set(re, ST_INVALID, "Variable %s not declared", json_string_value(hint));
    if (!json_is_null(val))
        *out = json_deep_copy(val);
    return ST_OK;
}

/* $name / ${name} substitution of other variables' values (the §7 pattern). dotted: names
 * may contain '.' (evaluate). */
static enum status subst(struct vars *v, const char *t, int dotted, struct buf *b, struct err *re)
{
    for (size_t i = 0; t[i];) {
        size_t j = i + 1, ns, ne;
        char *name;
        const json_t *val;
        int declared;
        if (t[i] != '$' || (i > 0 && t[i - 1] == '$') || t[j] == '$') {
            BUF_OK(buf_append(b, &t[i], 1));
            i++;
            continue;
        }
        if (t[j] == '{')
            j++;
        ns = j;
        while (isalnum((unsigned char)t[j]) || t[j] == '_' || (dotted && t[j] == '.'))
            j++;
        ne = j;
        if (ne == ns) {
            BUF_OK(buf_append(b, &t[i], 1));
            i++;
            continue;
        }
        if (t[j] == '}')
            j++;
        name = xstrndup(t + ns, ne - ns);
        if (vars__value_of(v, name, &val, &declared) != ST_OK) {
            free(name);
            v->nested_fail = 1;
            return ST_INVALID;
        }
        if (!declared) {
            err_set(re, ST_INVALID, "Variable %s not declared", name);
            free(name);
            return ST_INVALID;
        }
        if (json_is_null(val)) {
            err_set(re, ST_INVALID, "No value for %s, note that the order is meaningful", name);
            free(name);
            return ST_INVALID;
        }
        free(name);
        {
            char *txt = vars__to_text(val);
            BUF_OK(buf_puts(b, txt));
            free(txt);
        }
        i = j;
    }
    if (!b->ptr)
        BUF_OK(buf_puts(b, ""));
    return ST_OK;
}

static enum status r_interpolate(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                 struct err *re)
{
    struct buf b = BUF_INIT;
    enum status st;

    (void)x;
    if (!json_is_string(hint))
        return err_set(re, ST_INVALID, "String expected");
    st = subst(v, json_string_value(hint), 0, &b, re);
    if (st == ST_OK && !(*out = vars__text_json(b.ptr, b.len)))
        st = err_set(re, ST_INVALID, "Result is not valid UTF-8");
    buf_release(&b);
    return st;
}

/* evaluate: a recursive-descent calculator over + - * / ( ) with integer and decimal numbers;
 * integer division floors, as Ruby's does. */
struct num {
    int real;
    long long i;
    double d;
};

struct calc {
    const char *s;
    size_t p;
    int depth;
    const char *err; /* NULL: syntax error */
};

static int calc_expr(struct calc *c, struct num *out);

static double as_d(const struct num *n)
{
    return n->real ? n->d : (double)n->i;
}

static int calc_primary(struct calc *c, struct num *out)
{
    const char *s = c->s;

    if (s[c->p] == '(') {
        if (++c->depth > 64)
            return 0;
        c->p++;
        if (!calc_expr(c, out) || s[c->p] != ')')
            return 0;
        c->p++;
        c->depth--;
        return 1;
    }
    if (s[c->p] == '+' || s[c->p] == '-') {
        int neg = s[c->p++] == '-';
        if (++c->depth > 64 || !calc_primary(c, out))
            return 0;
        c->depth--;
        if (neg) {
            if (out->real)
                out->d = -out->d;
            else if (__builtin_sub_overflow(0, out->i, &out->i))
                return c->err = "integer overflow", 0;
        }
        return 1;
    }
    if (!isdigit((unsigned char)s[c->p]))
        return 0;
    {
        size_t a = c->p;
        long long v = 0;
        while (isdigit((unsigned char)s[c->p])) {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[c->p] - '0', &v))
                return c->err = "integer overflow", 0;
            c->p++;
        }
        if (s[c->p] == '.') {
            char *tmp;
            c->p++;
            if (!isdigit((unsigned char)s[c->p]))
                return 0;
            while (isdigit((unsigned char)s[c->p]))
                c->p++;
            tmp = xstrndup(s + a, c->p - a);
            out->real = 1;
            out->d = strtod(tmp, NULL);
            free(tmp);
        } else {
            out->real = 0;
            out->i = v;
        }
    }
    return 1;
}

static int calc_apply(struct calc *c, char op, struct num *a, const struct num *b)
{
    if (a->real || b->real) {
        double x = as_d(a), y = as_d(b);
        a->real = 1;
        if (op == '/' && y == 0)
            return c->err = "divided by 0", 0;
        a->d = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
        if (!isfinite(a->d))
            return c->err = "result out of range", 0;
        return 1;
    }
    switch (op) {
    case '+':
        if (__builtin_add_overflow(a->i, b->i, &a->i))
            return c->err = "integer overflow", 0;
        return 1;
    case '-':
        if (__builtin_sub_overflow(a->i, b->i, &a->i))
            return c->err = "integer overflow", 0;
        return 1;
    case '*':
        if (__builtin_mul_overflow(a->i, b->i, &a->i))
            return c->err = "integer overflow", 0;
        return 1;
    default: {
        long long q, r;
        if (b->i == 0)
            return c->err = "divided by 0", 0;
        if (a->i == LLONG_MIN && b->i == -1)
            return c->err = "integer overflow", 0;
        q = a->i / b->i;
        r = a->i % b->i;
        if (r != 0 && ((r < 0) != (b->i < 0)))
            q--;
        a->i = q;
        return 1;
    }
    }
}

static int calc_term(struct calc *c, struct num *out)
{
    if (!calc_primary(c, out))
        return 0;
    while (c->s[c->p] == '*' || c->s[c->p] == '/') {
        char op = c->s[c->p++];
        struct num b;
        if (!calc_primary(c, &b) || !calc_apply(c, op, out, &b))
            return 0;
    }
    return 1;
}

static int calc_expr(struct calc *c, struct num *out)
{
    if (!calc_term(c, out))
        return 0;
    while (c->s[c->p] == '+' || c->s[c->p] == '-') {
        char op = c->s[c->p++];
        struct num b;
        if (!calc_term(c, &b) || !calc_apply(c, op, out, &b))
            return 0;
    }
    return 1;
}

static enum status r_evaluate(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                              struct err *re)
{
    struct buf b = BUF_INIT;
    struct calc c = {0};
    struct num n = {0};
    enum status st;
    size_t w = 0;

    (void)x;
    if (!json_is_string(hint))
        return err_set(re, ST_INVALID, "String required");
    st = subst(v, json_string_value(hint), 1, &b, re);
    if (st != ST_OK)
        goto out;
    for (size_t i = 0; i < b.len; i++) /* whitespace is dropped, as the original did */
        if (!isspace((unsigned char)b.ptr[i]))
            b.ptr[w++] = b.ptr[i];
    b.ptr[w] = 0;
    b.len = w;
    c.s = b.ptr;
    if (b.len == 0 || strspn(b.ptr, "()-+/*0123456789.") != b.len || !calc_expr(&c, &n) ||
        c.p != b.len) {
        if (c.err)
            st = err_set(re, ST_INVALID, "Cannot evaluate '%s': %s", b.ptr, c.err);
        else
            st = err_set(re, ST_INVALID,
                         "Syntax error: '%s' does not look like a number or a calculation", b.ptr);
        goto out;
    }
    *out = n.real ? json_real(n.d) : json_integer(n.i);
out:
    buf_release(&b);
    return st;
}

static enum status r_condition(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                               struct err *re)
{
    size_t i;
    const json_t *br, *c, *res = NULL;
    int r;

    (void)x, (void)re;
    json_array_foreach(hint, i, br)
    {
        if ((res = json_object_get(br, "else")))
            break;
        c = json_object_get(br, "if");
        if (!c)
            c = json_object_get(br, "elsif");
        if (vars__cond_eval(v, c, 0, &r) != ST_OK) {
            v->nested_fail = 1;
            return ST_INVALID;
        }
        if (r) {
            res = json_object_get(br, "then");
            break;
        }
    }
    if (res && !json_is_null(res))
        *out = json_deep_copy(res);
    return ST_OK;
}

static enum status r_vault(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                           struct err *re)
{
    (void)x, (void)re;
    if (v->host->vault_get)
        *out = v->host->vault_get(v->host->ctx, json_string_value(hint));
    return ST_OK;
}

static enum status r_service_instances(struct vars *v, struct var *x, const json_t *hint,
                                       json_t **out, struct err *re)
{
    struct var *stack = vars__find(v, "STACK");

    (void)x;
    if (!vars__nonempty_string(hint))
        return err_set(re, ST_INVALID, "Service name missing");
    if (!v->host->service_instances || !stack || !json_is_string(stack->value))
        return ST_OK;
    *out = v->host->service_instances(v->host->ctx, json_string_value(stack->value),
                                      json_string_value(hint));
    return ST_OK;
}

static const struct {
    const char *name;
    resolver_fn fn;
} resolvers[] = {
    {"env", r_env},
    {"file", r_file},
    {"random_string", r_random_string},
    {"random_number", r_random_number},
    {"random_uuid", r_random_uuid},
    {"variable", r_variable},
    {"interpolate", r_interpolate},
    {"evaluate", r_evaluate},
    {"condition", r_condition},
    {"prompt", vars__r_prompt},
    {"vault", r_vault},
    {"service_instances", r_service_instances},
    {"service_link", vars__r_service_link},
    {"certificates", vars__r_certificates},
    {"vault_cert_prompt", vars__r_vault_cert_prompt},
    {"default", r_default},
};

enum status vars__run_resolver(struct vars *v, struct var *x, const struct hinted *r, json_t **out)
{
    struct err re = ERR_INIT;
    enum status st = ST_INVALID;

    *out = NULL;
    v->nested_fail = 0;
    for (size_t i = 0; i < ARRAY_SIZE(resolvers); i++)
        if (strcmp(resolvers[i].name, r->name) == 0)
            st = resolvers[i].fn(v, x, r->hint, out, &re);
    if (st == ST_OK)
        return ST_OK;
    json_decref(*out);
    *out = NULL;
    if (!v->nested_fail)
        err_set(v->e, ST_INVALID, "Resolver '%s' for '%s' : %s", r->name, x->name, re.msg);
    v->nested_fail = 1;
    return ST_INVALID;
}
