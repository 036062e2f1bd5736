/* cli/stackfile/vars_type.c -- a variable's value converted to its type (the original's
 * "sanitizers") and validated (stack-file.md §6.2). */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/stackfile/vars_internal.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* ---------------------------------------------------------------------------------------- */
/* Type conversion (the original's sanitizers) and validation */

static char *b64_lenient_decode(const char *s, size_t n, size_t *outlen)
{
    /* Ruby's decode64 ignores line breaks and tolerates missing padding. */
    struct buf b = BUF_INIT;
    char *r;

    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            BUF_OK(buf_append(&b, &s[i], 1));
    while (b.len % 4)
        BUF_OK(buf_puts(&b, "="));
    r = crypto_b64_decode(b.ptr ? b.ptr : "", b.len, outlen);
    buf_release(&b);
    return r;
}

static json_t *conv_string(const struct var *x, const json_t *raw, char **why)
{
    char *s = vars__to_text(raw), *t;
    size_t n = strlen(s), len;
    const json_t *hd;
    json_t *out;

    if (vars__opt_bool(x, "encode_64", 0)) {
        t = crypto_b64_encode(s, n);
        free(s);
        s = t;
        n = strlen(s);
    }
    if (vars__opt_bool(x, "decode_64", 0)) {
        t = b64_lenient_decode(s, n, &len);
        if (!t) {
            free(s);
            *why = xstrdup("Value is not valid base64");
            return NULL;
        }
        free(s);
        s = t;
        n = len;
        if (memchr(s, 0, n)) {
            free(s);
            *why = xstrdup("Decoded value is not text");
            return NULL;
        }
    }
    if (vars__opt_bool(x, "upcase", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)toupper((unsigned char)s[i]);
    if (vars__opt_bool(x, "downcase", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)tolower((unsigned char)s[i]);
    if (vars__opt_bool(x, "strip", 0)) {
        size_t a = 0;
        while (a < n && isspace((unsigned char)s[a]))
            a++;
        while (n > a && isspace((unsigned char)s[n - 1]))
            n--;
        memmove(s, s + a, n - a);
        n -= a;
        s[n] = 0;
    }
    if (vars__opt_bool(x, "chomp", 0)) {
        if (n && s[n - 1] == '\n')
            n--;
        if (n && s[n - 1] == '\r')
            n--;
        s[n] = 0;
    }
    if (vars__opt_bool(x, "capitalize", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(i ? tolower((unsigned char)s[i]) : toupper((unsigned char)s[i]));
    if (vars__opt_bool(x, "empty_is_nil", 1) && vars__is_blank(s)) {
        free(s);
        return json_null();
    }
    if ((hd = vars__opt(x, "hexdigest"))) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        const EVP_MD *alg = EVP_get_digestbyname(json_string_value(hd));
        struct buf b = BUF_INIT;
        if (!alg || !EVP_Digest(s, n, md, &mdlen, alg, NULL)) {
            free(s);
            *why = xasprintf("Cannot compute %s digest", json_string_value(hd));
            return NULL;
        }
        for (unsigned int i = 0; i < mdlen; i++)
            BUF_OK(buf_printf(&b, "%02x", md[i]));
        free(s);
        s = buf_take(&b);
        n = strlen(s);
    }
    out = vars__text_json(s, n);
    free(s);
    if (!out)
        *why = xstrdup("Value is not valid UTF-8 text");
    return out;
}

/* Whole-string integer: optional blanks, sign, digits (underscores between digits). */
int vars__parse_int(const char *s, long long *out)
{
    char digits[64];
    size_t n = 0;
    int neg = 0;
    long long r = 0;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!isdigit((unsigned char)*s))
        return 0;
    for (; *s; s++) {
        if (isdigit((unsigned char)*s)) {
            if (n + 1 >= sizeof(digits))
                return 0;
            digits[n++] = *s;
        } else if (*s == '_' && isdigit((unsigned char)s[1]) && n) {
            continue;
        } else {
            break;
        }
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (__builtin_mul_overflow(r, 10, &r) ||
            __builtin_add_overflow(r, neg ? -(digits[i] - '0') : digits[i] - '0', &r))
            return 0;
    }
    *out = r;
    return 1;
}

static json_t *conv_integer(const struct var *x, const json_t *raw, char **why)
{
    long long i;
    char *s;

    if (json_is_null(raw))
        return vars__opt_bool(x, "nil_is_zero", 0) ? json_integer(0) : json_null();
    if (json_is_integer(raw))
        return json_integer(json_integer_value(raw));
    if (json_is_real(raw)) {
        double d = json_real_value(raw);
        if (!(d > -9.2e18 && d < 9.2e18)) {
            *why = xstrdup("Value is out of range for an integer");
            return NULL;
        }
        return json_integer((json_int_t)d);
    }
    s = vars__to_text(raw);
    if (json_is_string(raw) && vars__parse_int(s, &i)) {
        free(s);
        return json_integer(i);
    }
    *why = xasprintf("Value '%s' is not an integer", s);
    free(s);
    return NULL;
}

int vars__bool_of(const struct var *x, const json_t *raw)
{
    const json_t *truthy = vars__opt(x, "truthy");
    static const char *const dflt[] = {"true", "yes", "1", "on", "enabled", "enable"};
    char *s;
    size_t a, n, i;
    int r = 0;

    if (json_is_boolean(raw))
        return json_is_true(raw);
    if (json_is_null(raw))
        return vars__opt_bool(x, "nil_is", 0);
    s = vars__to_text(raw);
    for (a = 0; s[a] && isspace((unsigned char)s[a]); a++)
        ;
    n = strlen(s + a);
    while (n && isspace((unsigned char)s[a + n - 1]))
        n--;
    s[a + n] = 0;
    if (n == 0) {
        free(s);
        return vars__opt_bool(x, "blank_is", 0);
    }
    for (i = a; s[i]; i++)
        s[i] = (char)tolower((unsigned char)s[i]);
    if (truthy) {
        const json_t *it;
        json_array_foreach(truthy, i, it)
        {
            char *t = vars__to_text(it);
            for (char *p = t; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            r |= strcmp(t, s + a) == 0;
            free(t);
        }
    } else {
        for (i = 0; i < ARRAY_SIZE(dflt); i++)
            r |= strcmp(dflt[i], s + a) == 0;
    }
    free(s);
    return r;
}

static json_t *conv_boolean(const struct var *x, const json_t *raw)
{
    int b = vars__bool_of(x, raw);
    const json_t *as = vars__opt(x, "as");
    const char *a = as ? json_string_value(as) : "boolean";
    const json_t *tv;

    if (strcmp(a, "integer") == 0) {
        tv = vars__opt(x, b ? "true" : "false");
        return json_is_integer(tv) ? json_incref((json_t *)tv) : json_integer(b);
    }
    if (strcmp(a, "string") == 0) {
        tv = vars__opt(x, b ? "true" : "false");
        return tv ? json_incref((json_t *)tv) : json_string(b ? "true" : "false");
    }
    if (strcmp(a, "true_or_nil") == 0)
        return b ? json_true() : json_null();
    return json_boolean(b);
}

static json_t *conv_enum(const struct var *x, const json_t *raw)
{
    char *s;
    size_t i;
    const json_t *o;
    json_t *out = NULL;

    if (json_is_null(raw))
        return json_null();
    s = vars__to_text(raw);
    json_array_foreach(x->enum_opts, i, o)
    {
        char *t = vars__to_text(json_object_get(o, "value"));
        int eq = strcmp(s, t) == 0;
        free(t);
        if (eq) {
            out = json_deep_copy(json_object_get(o, "value"));
            break;
        }
    }
    free(s);
    return out ? out : json_deep_copy(raw);
}

static json_t *conv_uri(const json_t *raw)
{
    char *s;
    size_t a = 0, n;
    json_t *out;

    if (json_is_null(raw))
        return json_null();
    s = vars__to_text(raw);
    while (isspace((unsigned char)s[a]))
        a++;
    n = strlen(s + a);
    while (n && isspace((unsigned char)s[a + n - 1]))
        n--;
    out = n ? json_stringn(s + a, n) : json_null();
    free(s);
    return out;
}

static int cmp_items(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    char *ta, *tb;
    int r;

    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_number(a) != json_is_number(b))
        return json_is_number(a) ? -1 : 1;
    ta = vars__to_text(a);
    tb = vars__to_text(b);
    r = strcmp(ta, tb);
    free(ta);
    free(tb);
    return r;
}

static json_t *conv_array(const struct var *x, const json_t *raw, char **why)
{
    json_t *arr, *out;
    const json_t *it, *j;
    size_t i;

    if (json_is_null(raw))
        return json_null();
    if (json_is_object(raw)) {
        *why = xstrdup("Value is a mapping, not a list");
        return NULL;
    }
    if (json_is_array(raw)) {
        arr = json_deep_copy(raw);
    } else if (json_is_string(raw)) {
        const char *sep = vars__opt(x, "split") ? json_string_value(vars__opt(x, "split")) : ",";
        const char *s = json_string_value(raw), *end = s + json_string_length(raw), *p;
        size_t sl = strlen(sep);
        arr = json_array();
        while (s < end) {
            p = strstr(s, sep);
            if (!p)
                p = end;
            json_array_append_new(arr, json_stringn(s, (size_t)(p - s)));
            s = p == end ? end : p + sl;
        }
        /* Ruby's split drops trailing empty fields. */
        while (json_array_size(arr) &&
               json_string_length(json_array_get(arr, json_array_size(arr) - 1)) == 0)
            json_array_remove(arr, json_array_size(arr) - 1);
    } else {
        arr = json_array();
        json_array_append_new(arr, json_deep_copy(raw));
    }
    if (vars__opt_bool(x, "compact", 0)) {
        for (i = json_array_size(arr); i-- > 0;) {
            it = json_array_get(arr, i);
            if (json_is_null(it) || (json_is_string(it) && vars__is_blank(json_string_value(it))))
                json_array_remove(arr, i);
        }
    }
    if (vars__opt_bool(x, "uniq", 0)) {
        out = json_array();
        json_array_foreach(arr, i, it)
        {
            size_t k;
            int dup = 0;
            json_array_foreach(out, k, j) dup |= vars__values_equal(it, j);
            if (!dup)
                json_array_append(out, (json_t *)it);
        }
        json_decref(arr);
        arr = out;
    }
    if (vars__opt_bool(x, "sort", 0) && json_array_size(arr) > 1) {
        size_t n = json_array_size(arr);
        json_t **items = xmalloc(n * sizeof(*items));
        for (i = 0; i < n; i++)
            items[i] = json_incref(json_array_get(arr, i));
        qsort(items, n, sizeof(*items), cmp_items);
        json_array_clear(arr);
        for (i = 0; i < n; i++)
            json_array_append_new(arr, items[i]);
        free(items);
    }
    if (vars__opt_bool(x, "empty_is_nil", 0) && json_array_size(arr) == 0) {
        json_decref(arr);
        return json_null();
    }
    j = vars__opt(x, "join");
    if (j && !json_is_false(j)) {
        const char *sep = json_is_string(j) ? json_string_value(j) : ",";
        struct buf b = BUF_INIT;
        json_array_foreach(arr, i, it)
        {
            char *t = vars__to_text(it);
            BUF_OK(buf_printf(&b, "%s%s", i ? sep : "", t));
            free(t);
        }
        json_decref(arr);
        out = json_string(b.ptr ? b.ptr : "");
        buf_release(&b);
        return out;
    }
    if (vars__opt_bool(x, "count", 0)) {
        out = json_integer((json_int_t)json_array_size(arr));
        json_decref(arr);
        return out;
    }
    return arr;
}

/* Convert raw (borrowed, NULL = null) to x's type. NULL return: *why says why. */
json_t *vars__convert(const struct var *x, const json_t *raw, char **why)
{
    if (!raw)
        raw = json_null();
    switch (x->type) {
    case T_STRING:
        return json_is_null(raw) ? json_null() : conv_string(x, raw, why);
    case T_INTEGER:
        return conv_integer(x, raw, why);
    case T_BOOLEAN:
        return conv_boolean(x, raw);
    case T_ENUM:
        return conv_enum(x, raw);
    case T_URI:
        return conv_uri(raw);
    case T_ARRAY:
        return conv_array(x, raw, why);
    }
    return json_null();
}

static char *list_text(const json_t *arr)
{
    struct buf b = BUF_INIT;
    size_t i;
    const json_t *it;

    json_array_foreach(arr, i, it)
    {
        char *t = vars__to_text(it);
        BUF_OK(buf_printf(&b, "%s%s", i ? ", " : "", t));
        free(t);
    }
    return buf_take(&b);
}

static void set_msg(json_t *o, const char *key, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void set_msg(json_t *o, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *m;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    m = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(m, (size_t)n + 1, fmt, ap);
    va_end(ap);
    json_object_set_new(o, key, json_string(m));
    free(m);
}

/* Validation errors of x's value as an object (NULL when valid). */
json_t *vars__validate(const struct var *x)
{
    json_t *errs = json_object(), *val = x->value;
    const json_t *in;
    long long lim;

    if (x->conv_error) {
        json_object_set_new(errs, "type", json_string(x->conv_error));
        goto out;
    }
    if (!val || json_is_null(val)) {
        if (x->required)
            json_object_set_new(errs, "presence", json_string("Required value missing"));
        goto out;
    }
    if ((in = vars__opt(x, "in"))) {
        size_t i;
        const json_t *it;
        int ok = 0;
        json_array_foreach(in, i, it) ok |= vars__values_equal(val, it);
        if (!ok) {
            char *t = vars__to_text(val), *l = list_text(in);
            set_msg(errs, "validate_in", "Value %s not in %s", t, l);
            free(t);
            free(l);
        }
    }
    switch (x->type) {
    case T_STRING:
        if (json_is_string(val)) {
            long long len =
                (long long)vars__utf8_len(json_string_value(val), json_string_length(val));
            if (vars__opt_int(x, "min_length", &lim) && len < lim)
                set_msg(errs, "validate_min_length",
                        "Too short. Minimum length is %lld, length is %lld.", lim, len);
            if (vars__opt_int(x, "max_length", &lim) && len > lim)
                set_msg(errs, "validate_max_length",
                        "Too long. Maximum length is %lld, length is %lld.", lim, len);
        }
        break;
    case T_INTEGER:
        if (json_is_integer(val)) {
            long long n = json_integer_value(val);
            if (!vars__opt_int(x, "min", &lim))
                lim = 0;
            if (n < lim)
                set_msg(errs, "validate_min", "Too small. Minimum value is %lld, Value is %lld.",
                        lim, n);
            if (vars__opt_int(x, "max", &lim) && n > lim)
                set_msg(errs, "validate_max", "Too large. Maximum value is %lld, Value is %lld.",
                        lim, n);
        }
        break;
    case T_ENUM:
        if (!vars__opt_bool(x, "can_be_other", 0)) {
            size_t i;
            const json_t *o;
            int ok = 0;
            json_array_foreach(x->enum_opts, i, o)
            {
                ok |= vars__values_equal(val, json_object_get(o, "value"));
            }
            if (!ok)
                json_object_set_new(errs, "validate_options",
                                    json_string("Value is not one of the options"));
        }
        break;
    case T_URI:
        if (json_is_string(val)) {
            const char *s = json_string_value(val);
            const json_t *schemes = vars__opt(x, "schemes");
            size_t n = 0, i;
            const json_t *it;
            int ok = 0;
            char *sch;
            if (isalpha((unsigned char)s[0]))
                while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.')
                    n++;
            sch = xstrndup(s, s[n] == ':' ? n : 0);
            if (schemes) {
                json_array_foreach(schemes, i, it)
                {
                    ok |= strcasecmp(json_string_value(it), sch) == 0;
                }
            } else {
                ok = strcasecmp(sch, "http") == 0 || strcasecmp(sch, "https") == 0;
            }
            if (!ok) {
                char *l = schemes ? list_text(schemes) : xstrdup("http, https");
                set_msg(errs, "validate_scheme", "Uri scheme '%s' not allowed, allowed schemes: %s",
                        sch, l);
                free(l);
            }
            free(sch);
        }
        break;
    default:
        break;
    }
out:
    if (json_object_size(errs) == 0) {
        json_decref(errs);
        return NULL;
    }
    return errs;
}
