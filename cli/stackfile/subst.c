/* cli/stackfile/subst.c -- `$VAR` / `${VAR}` substitution and `$$` (stack-file.md §7). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/pipeline.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static void put(struct buf *b, const char *s, size_t n)
{
    /* Uncapped buffers only fail on a bug. */
    BUG_ON(buf_append(b, s, n) != ST_OK);
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Ruby Float#to_s (same digits as ynode's emitter uses). */
static void ruby_float(double v, struct buf *b)
{
    char digits[40], out[64];
    int prec, exp10;

    if (isnan(v)) {
        puts_(b, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(b, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == 0) {
        puts_(b, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(digits, sizeof(digits), "%.*e", prec - 1, v);
        if (strtod(digits, NULL) == v)
            break;
    }
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
        snprintf(out, sizeof(out), "%s%c.%se%c%02d", neg ? "-" : "", mant[0],
                 m > 1 ? mant + 1 : "0", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 >= 0) {
        char ip[40];
        size_t il = (size_t)exp10 + 1;
        for (size_t i = 0; i < il; i++)
            ip[i] = i < m ? mant[i] : '0';
        ip[il] = '\0';
        snprintf(out, sizeof(out), "%s%s.%s", neg ? "-" : "", ip, m > il ? mant + il : "0");
    } else {
        char zeros[8];
        int nz = -exp10 - 1;
        memset(zeros, '0', (size_t)nz);
        zeros[nz] = '\0';
        snprintf(out, sizeof(out), "%s0.%s%s", neg ? "-" : "", zeros, mant);
    }
    puts_(b, out);
}

/* Ruby String#inspect, minus the `\#` escapes (YAML's double-quoted style has no `\#`, and
 * the result must stay valid YAML). */
static void inspect_str(const char *s, struct buf *b)
{
    char tmp[8];

    puts_(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            puts_(b, "\\\"");
            break;
        case '\\':
            puts_(b, "\\\\");
            break;
        case '\n':
            puts_(b, "\\n");
            break;
        case '\r':
            puts_(b, "\\r");
            break;
        case '\t':
            puts_(b, "\\t");
            break;
        case '\f':
            puts_(b, "\\f");
            break;
        case '\v':
            puts_(b, "\\v");
            break;
        case '\b':
            puts_(b, "\\b");
            break;
        case '\a':
            puts_(b, "\\a");
            break;
        case 0x1b:
            puts_(b, "\\e");
            break;
        default:
            if (*p < 0x20) {
                snprintf(tmp, sizeof(tmp), "\\u%04X", *p);
                puts_(b, tmp);
            } else if (*p == 0x7f) {
                puts_(b, "\\x7F");
            } else {
                put(b, (const char *)p, 1);
            }
        }
    }
    puts_(b, "\"");
}

static void inspect(const json_t *v, struct buf *b, int depth)
{
    char tmp[32];
    size_t i;
    const char *k;
    json_t *x;

    if (depth > 64) {
        puts_(b, "[...]");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        inspect_str(json_string_value(v), b);
        break;
    case JSON_INTEGER:
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        puts_(b, tmp);
        break;
    case JSON_REAL:
        ruby_float(json_real_value(v), b);
        break;
    case JSON_TRUE:
        puts_(b, "true");
        break;
    case JSON_FALSE:
        puts_(b, "false");
        break;
    case JSON_NULL:
        puts_(b, "nil");
        break;
    case JSON_ARRAY:
        puts_(b, "[");
        json_array_foreach(v, i, x)
        {
            if (i)
                puts_(b, ", ");
            inspect(x, b, depth + 1);
        }
        puts_(b, "]");
        break;
    case JSON_OBJECT:
        puts_(b, "{");
        i = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (i++)
                puts_(b, ", ");
            inspect_str(k, b);
            puts_(b, "=>");
            inspect(x, b, depth + 1);
        }
        puts_(b, "}");
        break;
    }
}

char *sf__ruby_inspect(const json_t *v)
{
    struct buf b = BUF_INIT;
    inspect(v ? v : json_null(), &b, 0);
    return buf_take(&b);
}

char *sf__ruby_to_s(const json_t *v)
{
    if (!v || json_is_null(v))
        return xstrdup("");
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    return sf__ruby_inspect(v); /* numbers and booleans print alike; Array/Hash#to_s = inspect */
}

/* Ruby's `val.nil? || (val.respond_to?(:empty?) && val.empty?)`. */
static int is_empty(const json_t *v)
{
    if (!v || json_is_null(v))
        return 1;
    if (json_is_string(v))
        return json_string_length(v) == 0;
    if (json_is_array(v))
        return json_array_size(v) == 0;
    if (json_is_object(v))
        return json_object_size(v) == 0;
    return 0;
}

static int word(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int skipped_line(const char *line, size_t n)
{
    while (n && isspace((unsigned char)*line)) {
        line++;
        n--;
    }
    return (n >= 12 && strncmp(line, "interpolate:", 12) == 0) ||
           (n >= 9 && strncmp(line, "evaluate:", 9) == 0);
}

enum status sf__subst(const char *text, const char *file, sf_lookup_fn lookup, void *arg,
                      FILE *warn, char **out, struct err *e)
{
    struct buf b = BUF_INIT;
    const char *line = text;
    int lineno = 1;

    *out = NULL;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t n = eol ? (size_t)(eol - line) : strlen(line);

        if (skipped_line(line, n)) {
            put(&b, line, n);
        } else {
            /* (?<!\$)\$(?!\$)\{?\w+\}? */
            size_t i = 0;
            while (i < n) {
                const char *p = line + i;
                size_t j, start;
                if (*p != '$' || (i > 0 && p[-1] == '$') || (i + 1 < n && p[1] == '$')) {
                    put(&b, p, 1);
                    i++;
                    continue;
                }
                j = i + 1;
                if (j < n && line[j] == '{')
                    j++;
                start = j;
                while (j < n && word((unsigned char)line[j]))
                    j++;
                if (j == start) {
                    put(&b, p, 1);
                    i++;
                    continue;
                }
                char *name = xstrndup(line + start, j - start);
                if (j < n && line[j] == '}')
                    j++;
                const json_t *val = NULL;
                if (!lookup(arg, name, &val)) {
                    char *row = xstrndup(line, n);
                    size_t rl = strlen(row);
                    if (rl && row[rl - 1] == '\r')
                        row[rl - 1] = '\0';
                    err_set(e, ST_INVALID, "Undeclared variable '%s' in %s:%d -- %s", name, file,
                            lineno, row);
                    free(row);
                    free(name);
                    buf_release(&b);
                    return ST_INVALID;
                }
                if (is_empty(val)) {
                    if (warn)
                        fprintf(warn,
                                "Value for %s is not set. Substituting with an empty string.\n",
                                name);
                } else {
                    char *s = sf__ruby_to_s(val);
                    if (strpbrk(s, "\r\n\"'|")) {
                        char *q = sf__ruby_inspect(val);
                        puts_(&b, q);
                        free(q);
                    } else {
                        puts_(&b, s);
                    }
                    free(s);
                }
                free(name);
                i = j;
            }
        }
        if (!eol)
            break;
        put(&b, "\n", 1);
        line = eol + 1;
        lineno++;
    }
    *out = buf_take(&b);
    return ST_OK;
}

char *sf__dollars(const char *text)
{
    struct buf b = BUF_INIT;
    const char *p = text;

    while (*p) {
        const char *d = strstr(p, "$$");
        if (!d) {
            puts_(&b, p);
            break;
        }
        put(&b, p, (size_t)(d - p) + 1);
        p = d + 2;
    }
    return buf_take(&b);
}
