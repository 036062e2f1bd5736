/* common/specparse.c -- service spec string formats (specparse.h). Hand-written scanners
 * rather than regexes: each format is small, and a scanner can say what is wrong. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/specparse.h"
#include "common/xmalloc.h"
#include "common/banned.h"

/* Read a run of decimal digits into *v (capped, so no overflow); returns the digit count. */
static size_t digits(const char *s, long long *v)
{
    size_t n = 0;
    long long x = 0;

    while (isdigit((unsigned char)s[n])) {
        if (x < (1LL << 62) / 10)
            x = x * 10 + (s[n] - '0');
        else
            x = 1LL << 62;
        n++;
    }
    *v = x;
    return n;
}

static int parse_ipv4(const char *s, size_t len)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        long long v;
        size_t n;

        if (part > 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
        n = digits(s + i, &v);
        if (n == 0 || n > 3 || v > 255 || i + n > len)
            return 0;
        i += n;
    }
    return i == len;
}

enum status spec_parse_port(const char *s, struct spec_port *out, struct err *e)
{
    const char *p = s, *colon1, *colon2, *slash;
    long long v;
    size_t n;

    memset(out, 0, sizeof(*out));
    slash = strchr(s, '/');
    colon1 = strchr(s, ':');
    if (!colon1 || (slash && colon1 > slash))
        goto bad;
    colon2 = strchr(colon1 + 1, ':');
    if (colon2 && (!slash || colon2 < slash)) {
        /* ip:node:container */
        if (!parse_ipv4(s, (size_t)(colon1 - s)))
            goto bad;
        memcpy(out->ip, s, (size_t)(colon1 - s));
        out->ip[colon1 - s] = '\0';
        p = colon1 + 1;
    } else {
        memcpy(out->ip, "0.0.0.0", 8);
    }
    n = digits(p, &v);
    if (n == 0 || p[n] != ':' || v < 1 || v > 65535)
        goto bad;
    out->node_port = (int)v;
    p += n + 1;
    n = digits(p, &v);
    if (n == 0 || v < 1 || v > 65535)
        goto bad;
    out->container_port = (int)v;
    p += n;
    if (*p == '\0') {
        memcpy(out->protocol, "tcp", 4);
        return ST_OK;
    }
    if (strcmp(p, "/tcp") != 0 && strcmp(p, "/udp") != 0)
        goto bad;
    memcpy(out->protocol, p + 1, 4);
    return ST_OK;
bad:
    return err_set(e, ST_INVALID,
                   "invalid port mapping '%s': expected [ip:]node_port:container_port[/tcp|udp]",
                   s);
}

enum status spec_parse_memory(const char *s, long long *bytes, struct err *e)
{
    long long v, mul = 1;
    size_t n = digits(s, &v);
    const char *u = s + n;

    if (n == 0)
        goto bad;
    switch (tolower((unsigned char)*u)) {
    case 'k': mul = 1LL << 10; u++; break;
    case 'm': mul = 1LL << 20; u++; break;
    case 'g': mul = 1LL << 30; u++; break;
    case 't': mul = 1LL << 40; u++; break;
    default: break;
    }
    if (tolower((unsigned char)*u) == 'b')
        u++;
    if (*u != '\0')
        goto bad;
    if (v > (1LL << 62) / mul)
        return err_set(e, ST_INVALID, "memory size '%s' is too large", s);
    *bytes = v * mul;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID,
                   "invalid memory size '%s': expected a number with an optional unit k, m, g", s);
}

enum status spec_parse_duration(const char *s, double *secs, struct err *e)
{
    const char *p = s;
    double total = 0;

    if (*p == '\0')
        goto bad;
    while (*p) {
        long long whole, frac = 0;
        size_t n = digits(p, &whole), fn = 0;
        double part;

        if (n == 0)
            goto bad;
        p += n;
        part = (double)whole;
        if (*p == '.') {
            fn = digits(p + 1, &frac);
            if (fn == 0)
                goto bad;
            p += fn + 1;
            double scale = 1;
            for (size_t i = 0; i < fn && i < 18; i++)
                scale *= 10;
            part += (double)frac / scale;
        }
        switch (*p) {
        case 'h': part *= 3600; break;
        case 'm': part *= 60; break;
        case 's': break;
        default: goto bad;
        }
        p++;
        total += part;
    }
    *secs = total;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "invalid duration '%s': expected e.g. 10s, 1m30s, 1.5h", s);
}

enum status spec_parse_interval(const char *s, long long *secs, struct err *e)
{
    long long v, mul;
    size_t n = digits(s, &v);
    const char *u = s + n;

    if (n == 0)
        goto bad;
    if (*u == '\0')
        mul = 1;
    else if (strcmp(u, "min") == 0)
        mul = 60;
    else if (strcmp(u, "h") == 0)
        mul = 3600;
    else if (strcmp(u, "d") == 0)
        mul = 86400;
    else
        goto bad;
    if (v > (1LL << 62) / mul)
        return err_set(e, ST_INVALID, "interval '%s' is too large", s);
    *secs = v * mul;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "invalid interval '%s': expected <n>, <n>min, <n>h or <n>d", s);
}

int spec_valid_stop_signal(const char *s)
{
    long long v;
    size_t n;

    if (isdigit((unsigned char)*s)) {
        n = digits(s, &v);
        return s[n] == '\0';
    }
    int sig = strncasecmp(s, "SIG", 3) == 0;
    if (sig)
        s += 3;
    if (strncasecmp(s, "RTMIN+", 6) == 0 || strncasecmp(s, "RTMAX-", 6) == 0) {
        n = digits(s + 6, &v);
        return n > 0 && s[6 + n] == '\0';
    }
    if (!sig || *s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s))
            return 0;
    return 1;
}

static const char *const affinity_keys[] = {"node", "service", "container", "label"};

enum status spec_parse_affinity(const char *s, struct spec_affinity *out, struct err *e)
{
    const char *op = NULL, *val;
    size_t klen;
    enum status st;

    memset(out, 0, sizeof(*out));
    /* The original splits greedily ("anything, then == or !="), so the last operator wins. */
    for (const char *p = s; p[0] && p[1]; p++)
        if ((p[0] == '=' || p[0] == '!') && p[1] == '=')
            op = p;
    if (!op)
        return err_set(e, ST_INVALID, "invalid affinity '%s': no == or != operator", s);
    klen = (size_t)(op - s);
    for (size_t i = 0; i < ARRAY_SIZE(affinity_keys); i++)
        if (strlen(affinity_keys[i]) == klen && strncmp(s, affinity_keys[i], klen) == 0)
            out->key = xstrdup(affinity_keys[i]);
    if (!out->key)
        return err_set(e, ST_INVALID,
                       "invalid affinity '%s': key must be node, service, container or label",
                       s);
    out->negate = op[0] == '!';
    val = op + 2;
    if (*val == '~') {
        out->soft = 1;
        val++;
    }
    if (*val == '\0') {
        st = err_set(e, ST_INVALID, "invalid affinity '%s': empty value", s);
        goto fail;
    }
    size_t vlen = strlen(val);
    if (vlen >= 2 && val[0] == '/' && val[vlen - 1] == '/') {
        regex_t re;
        out->is_regex = 1;
        out->value = xstrndup(val + 1, vlen - 2);
        st = spec_regex_compile(out->value, &re, REG_NOSUB, e);
        if (st != ST_OK) {
            err_wrap(e, "invalid affinity '%s'", s);
            goto fail;
        }
        regfree(&re);
    } else {
        out->value = xstrdup(val);
    }
    return ST_OK;
fail:
    spec_affinity_release(out);
    return st;
}

void spec_affinity_release(struct spec_affinity *a)
{
    if (!a)
        return;
    FREE_AND_NULL(a->key);
    FREE_AND_NULL(a->value);
}

enum status spec_regex_compile(const char *pattern, regex_t *re, int flags, struct err *e)
{
    struct buf b = BUF_INIT;
    int in_bracket = 0, rc;
    enum status st = ST_OK;

    for (const char *p = pattern; *p; p++) {
        const char *add = NULL;
        char one[3] = {0};

        if (*p == '\\' && p[1]) {
            switch (p[1]) {
            case 'd': add = in_bracket ? "0-9" : "[0-9]"; break;
            case 'D': add = in_bracket ? NULL : "[^0-9]"; break;
            case 'w': add = in_bracket ? "A-Za-z0-9_" : "[A-Za-z0-9_]"; break;
            case 'W': add = in_bracket ? NULL : "[^A-Za-z0-9_]"; break;
            case 's': add = in_bracket ? " \t\r\n\f\v" : "[ \t\r\n\f\v]"; break;
            case 'S': add = in_bracket ? NULL : "[^ \t\r\n\f\v]"; break;
            default: break;
            }
            if (!add) {
                one[0] = p[0];
                one[1] = p[1];
                add = one;
            }
            p++;
        } else {
            if (*p == '[' && !in_bracket)
                in_bracket = 1;
            else if (*p == ']' && in_bracket)
                in_bracket = 0;
            one[0] = *p;
            add = one;
        }
        if (buf_puts(&b, add) != ST_OK)
            BUG_ON(1);
    }
    rc = regcomp(re, b.ptr ? b.ptr : "", REG_EXTENDED | flags);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        st = err_set(e, ST_INVALID, "invalid regular expression '%s': %s", pattern, msg);
    }
    buf_release(&b);
    return st;
}
