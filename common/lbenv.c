/* common/lbenv.c -- KONTENA_LB_* settings: parsing and validation (lbenv.h). */
#include "common/lbenv.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* A value shortened for a message, with control characters shown as '?'. */
static const char *shown(const char *v, char *out, size_t len)
{
    size_t i;

    for (i = 0; v[i] && i + 4 < len; i++)
        out[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

#define SHOW(v) shown((v), show, sizeof(show))

static int too_long(const char *v)
{
    return strnlen(v, LBENV_MAX_VALUE + 1) > LBENV_MAX_VALUE;
}

void lbenv_release(struct lbenv *lb)
{
    if (!lb)
        return;
    free(lb->balance);
    free(lb->virtual_hosts);
    free(lb->virtual_path);
    free(lb->keep_virtual_path);
    free(lb->cookie);
    free(lb->basic_auth_secrets);
    free(lb->custom_settings);
    *lb = (struct lbenv)LBENV_INIT;
}

/* --- single values --------------------------------------------------------------------- */

enum status lbenv_check_mode(const char *v, enum lb_mode *mode, struct err *e)
{
    char show[64];

    if (v && strcmp(v, "http") == 0) {
        if (mode)
            *mode = LB_MODE_HTTP;
        return ST_OK;
    }
    if (v && strcmp(v, "tcp") == 0) {
        if (mode)
            *mode = LB_MODE_TCP;
        return ST_OK;
    }
    return err_set(e, ST_INVALID, "unknown mode '%s' (http or tcp)", v ? SHOW(v) : "");
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* "<digits>" with no leading garbage, at most 9 digits. */
static int all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* "(<chars of set>)" spanning s[0..n-1], the inside 1+ chars. */
static int paren_arg(const char *s, size_t n, int digits_only)
{
    if (n < 3 || s[0] != '(' || s[n - 1] != ')')
        return 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = s[i];
        if (digits_only ? !is_digit(c) : !(is_alnum(c) || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* A plain word: parameter names, header names. */
static int word_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(is_alnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return 1;
}

enum status lbenv_check_balance(const char *v, struct err *e)
{
    char show[80];
    const char *words[8];
    size_t lens[8], nw = 0;
    const char *p = v;

    if (!v || !*v)
        return err_set(e, ST_INVALID, "empty balance algorithm");
    if (strlen(v) > 256)
        return err_set(e, ST_INVALID, "balance algorithm '%s' is too long", SHOW(v));
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (nw == ARRAY_SIZE(words))
            goto bad;
        words[nw] = p;
        while (*p && *p != ' ')
            p++;
        lens[nw] = (size_t)(p - words[nw]);
        nw++;
    }
    if (nw == 0)
        return err_set(e, ST_INVALID, "empty balance algorithm");

#define IS(i, lit) (lens[i] == strlen(lit) && memcmp(words[i], lit, lens[i]) == 0)
#define PREFIX(i, lit) (lens[i] >= strlen(lit) && memcmp(words[i], lit, strlen(lit)) == 0)
    if (IS(0, "roundrobin") || IS(0, "static-rr") || IS(0, "leastconn") || IS(0, "first") ||
        IS(0, "source")) {
        if (nw == 1)
            return ST_OK;
        goto bad;
    }
    if (PREFIX(0, "random")) {
        size_t l = strlen("random");
        if (nw == 1 && (lens[0] == l || paren_arg(words[0] + l, lens[0] - l, 1)))
            return ST_OK;
        goto bad;
    }
    if (PREFIX(0, "rdp-cookie")) {
        size_t l = strlen("rdp-cookie");
        if (nw == 1 && (lens[0] == l || paren_arg(words[0] + l, lens[0] - l, 0)))
            return ST_OK;
        goto bad;
    }
    if (PREFIX(0, "hdr(")) {
        if (!paren_arg(words[0] + 3, lens[0] - 3, 0))
            goto bad;
        if (nw == 1 || (nw == 2 && IS(1, "use_domain_only")))
            return ST_OK;
        goto bad;
    }
    if (IS(0, "uri")) {
        for (size_t i = 1; i < nw; i++) {
            if (IS(i, "whole") || IS(i, "path-only"))
                continue;
            if ((IS(i, "len") || IS(i, "depth")) && i + 1 < nw &&
                all_digits(words[i + 1], lens[i + 1])) {
                i++;
                continue;
            }
            goto bad;
        }
        return ST_OK;
    }
    if (IS(0, "url_param")) {
        if (nw >= 2 && word_ok(words[1], lens[1]) && (nw == 2 || (nw == 3 && IS(2, "check_post"))))
            return ST_OK;
        goto bad;
    }
#undef IS
#undef PREFIX
bad:
    return err_set(e, ST_INVALID,
                   "'%s' is not a haproxy balance algorithm (roundrobin, static-rr, leastconn, "
                   "first, source, random, uri, url_param <name>, hdr(<name>), rdp-cookie)",
                   SHOW(v));
}

/* Split a comma list; calls item(s, n) for each trimmed item. Returns the first failure. */
typedef enum status (*item_fn)(const char *s, size_t n, struct err *e);

static enum status each_item(const char *v, item_fn item, const char *what, struct err *e)
{
    const char *p = v;
    char show[64];

    if (too_long(v))
        return err_set(e, ST_INVALID, "%s list is too long", what);
    for (;;) {
        const char *end = strchr(p, ',');
        const char *a = p, *b = end ? end : p + strlen(p);
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b)
            return err_set(e, ST_INVALID, "empty %s in '%s'", what, SHOW(v));
        enum status st = item(a, (size_t)(b - a), e);
        if (st != ST_OK)
            return st;
        if (!end)
            return ST_OK;
        p = end + 1;
    }
}

static enum status host_item(const char *s, size_t n, struct err *e)
{
    char show[80], tmp[LBENV_MAX_NAME + 4];
    const char *p = s;
    size_t left = n, label = 0;

    snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1), s);
    if (n >= 2 && s[0] == '*' && s[1] == '.') {
        p += 2;
        left -= 2;
    }
    if (left == 0 || left > LBENV_MAX_NAME)
        goto bad;
    for (size_t i = 0; i < left; i++) {
        char c = p[i];
        if (c == '.') {
            if (label == 0 || p[i - 1] == '-')
                goto bad;
            label = 0;
            continue;
        }
        if (c == '-') {
            if (label == 0)
                goto bad;
        } else if (!is_alnum(c)) {
            goto bad;
        }
        if (++label > 63)
            goto bad;
    }
    if (label == 0 || p[left - 1] == '-')
        goto bad;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "invalid virtual host '%s' (a DNS name or *.<DNS name>)",
                   SHOW(tmp));
}

enum status lbenv_check_virtual_hosts(const char *v, struct err *e)
{
    if (!v)
        return err_set(e, ST_INVALID, "no virtual hosts");
    return each_item(v, host_item, "virtual host", e);
}

static enum status path_item(const char *s, size_t n, struct err *e)
{
    char show[80], tmp[256];

    snprintf(tmp, sizeof(tmp), "%.*s", (int)(n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1), s);
    if (s[0] != '/')
        return err_set(e, ST_INVALID, "invalid virtual path '%s' (must start with '/')", SHOW(tmp));
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_alnum(c) || strchr("-._~/%:@+=", c)))
            return err_set(e, ST_INVALID,
                           "invalid virtual path '%s' (only letters, digits and -._~/%%:@+= "
                           "are allowed)",
                           SHOW(tmp));
    }
    return ST_OK;
}

enum status lbenv_check_virtual_paths(const char *v, struct err *e)
{
    if (!v)
        return err_set(e, ST_INVALID, "no virtual path");
    return each_item(v, path_item, "virtual path", e);
}

enum status lbenv_check_keep_virtual_path(const char *v, struct err *e)
{
    char show[64];

    if (v && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
        return ST_OK;
    return err_set(e, ST_INVALID, "'%s' is not true or false", v ? SHOW(v) : "");
}

/* Control characters: everything below 0x20 but the allowed ones, and DEL. */
static int bad_char(unsigned char c, int multiline)
{
    if (c == '\t')
        return 0;
    if (c == '\n')
        return !multiline;
    return c < 0x20 || c == 0x7f;
}

static const char *const section_words[] = {
    "global", "defaults",  "frontend",    "backend", "listen",      "userlist",
    "peers",  "resolvers", "mailers",     "program", "http-errors", "ring",
    "cache",  "crt-store", "log-forward", "traces",  NULL,
};

/* The first word of the line s[0..n-1] (after blanks) opens a section. */
static int opens_section(const char *s, size_t n)
{
    size_t i = 0, w;

    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    w = i;
    while (w < n && s[w] != ' ' && s[w] != '\t')
        w++;
    for (const char *const *k = section_words; *k; k++)
        if (w - i == strlen(*k) && memcmp(s + i, *k, w - i) == 0)
            return 1;
    return 0;
}

static enum status check_text(const char *v, int multiline, struct err *e)
{
    size_t i;

    if (too_long(v))
        return err_set(e, ST_INVALID, "value is longer than %d bytes", LBENV_MAX_VALUE);
    for (i = 0; v[i]; i++)
        if (bad_char((unsigned char)v[i], multiline))
            return err_set(e, ST_INVALID, "control character 0x%02x at byte %zu%s",
                           (unsigned char)v[i], i, v[i] == '\n' ? " (must be a single line)" : "");
    return ST_OK;
}

/* Quotes of the line s[0..n-1] closed the way haproxy's parser reads them: '...' literal,
 * "..." with backslash escapes, a backslash escapes the next character outside single
 * quotes, '#' outside quotes starts a comment. */
static int quotes_closed(const char *s, size_t n)
{
    char q = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (q == '\'') {
            if (c == '\'')
                q = 0;
        } else if (c == '\\') {
            i++;
        } else if (q == '"') {
            if (c == '"')
                q = 0;
        } else if (c == '\'' || c == '"') {
            q = c;
        } else if (c == '#') {
            return 1;
        }
    }
    return q == 0;
}

enum status lbenv_check_lines(const char *v, struct err *e)
{
    char show[64], line[128];
    const char *p;
    enum status st;

    if (!v)
        return ST_OK;
    st = check_text(v, 1, e);
    if (st != ST_OK)
        return st;
    for (p = v; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
        if (opens_section(p, n))
            return err_set(e, ST_INVALID, "line '%s' would open a new haproxy section", SHOW(line));
        if (!quotes_closed(p, n))
            return err_set(e, ST_INVALID, "line '%s' has an unmatched quote", SHOW(line));
        if (!nl)
            break;
        p = nl + 1;
    }
    return ST_OK;
}

/* Blank-separated words of s[0..n-1]. */
struct tok {
    const char *p;
    size_t n;
};

/* Up to max words into t; returns their number, or max + 1 when there are more. */
static size_t tokens(const char *s, size_t n, struct tok *t, size_t max)
{
    size_t k = 0, i = 0;

    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (k == max)
            return max + 1;
        t[k].p = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        t[k].n = (size_t)(s + i - t[k].p);
        k++;
    }
    return k;
}

static int tok_is(const struct tok *t, const char *lit)
{
    return t->n == strlen(lit) && memcmp(t->p, lit, t->n) == 0;
}

/* 1..128 characters, each a letter, a digit or one of extra. */
static int tok_chars(const struct tok *t, const char *extra)
{
    if (t->n == 0 || t->n > 128)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (!is_alnum(t->p[i]) && !strchr(extra, t->p[i]))
            return 0;
    return 1;
}

/* A haproxy time: digits with an optional unit us, ms, s, m, h, d. */
static int tok_time(const struct tok *t)
{
    size_t d = 0;

    while (d < t->n && is_digit(t->p[d]))
        d++;
    if (d == 0 || d > 9)
        return 0;
    struct tok unit = {t->p + d, t->n - d};
    return unit.n == 0 || tok_is(&unit, "us") || tok_is(&unit, "ms") || tok_is(&unit, "s") ||
           tok_is(&unit, "m") || tok_is(&unit, "h") || tok_is(&unit, "d");
}

#define TOKS(t) (int)(t).n, (t).p

enum status lbenv_check_cookie(const char *v, struct err *e)
{
    char show[64];
    struct tok t[32];
    size_t nt;
    enum status st;
    const struct tok *mode = NULL;
    int indirect = 0, preserve = 0;

    if (!v)
        return err_set(e, ST_INVALID, "no cookie");
    if (!*v)
        return ST_OK;
    st = check_text(v, 0, e);
    if (st != ST_OK)
        return st;
    nt = tokens(v, strlen(v), t, ARRAY_SIZE(t));
    if (nt < 2 || nt > ARRAY_SIZE(t) || !tok_is(&t[0], "cookie") || !tok_chars(&t[1], "_.-"))
        return err_set(e, ST_INVALID,
                       "'%s' is not a haproxy cookie line (empty for the default cookie, or "
                       "'cookie <name> [options]', the name made of letters, digits, _.-)",
                       SHOW(v));
    for (size_t i = 2; i < nt; i++) {
        const struct tok *o = &t[i], *arg = i + 1 < nt ? &t[i + 1] : NULL;
        if (tok_is(o, "rewrite") || tok_is(o, "insert") || tok_is(o, "prefix")) {
            if (mode && !(mode->n == o->n && memcmp(mode->p, o->p, o->n) == 0))
                return err_set(e, ST_INVALID,
                               "cookie modes '%.*s' and '%.*s' cannot be combined in '%s'",
                               TOKS(*mode), TOKS(*o), SHOW(v));
            mode = o;
        } else if (tok_is(o, "indirect")) {
            indirect = 1;
        } else if (tok_is(o, "preserve")) {
            preserve = 1;
        } else if (tok_is(o, "nocache") || tok_is(o, "postonly") || tok_is(o, "httponly") ||
                   tok_is(o, "secure") || tok_is(o, "dynamic")) {
            continue;
        } else if (tok_is(o, "domain") && arg && tok_chars(arg, ".-")) {
            i++;
        } else if ((tok_is(o, "maxidle") || tok_is(o, "maxlife")) && arg && tok_time(arg)) {
            i++;
        } else if (tok_is(o, "attr") && arg && tok_chars(arg, "=_.-/:+")) {
            i++;
        } else {
            return err_set(e, ST_INVALID,
                           "unknown cookie option or missing value at '%.*s' in '%s' (rewrite, "
                           "insert, prefix, indirect, nocache, postonly, preserve, httponly, "
                           "secure, dynamic, domain <d>, maxidle <time>, maxlife <time>, "
                           "attr <value>)",
                           TOKS(*o), SHOW(v));
        }
    }
    if (preserve && !indirect && !(mode && tok_is(mode, "insert")))
        return err_set(e, ST_INVALID,
                       "cookie option 'preserve' needs 'insert' or 'indirect' in '%s'", SHOW(v));
    return ST_OK;
}

/* The comma-separated names of list, each made of name characters, into names (a
 * "\n<a>\n<b>\n" set); 0 when one is not a name. */
static int add_names(const struct tok *list, struct buf *names)
{
    const char *p = list->p, *end = list->p + list->n;

    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        struct tok one = {p, (size_t)((c ? c : end) - p)};
        if (!tok_chars(&one, "_.@-"))
            return 0;
        if (buf_append(names, one.p, one.n) != ST_OK || buf_puts(names, "\n") != ST_OK)
            return 0;
        if (!c)
            break;
        p = c + 1;
    }
    return 1;
}

/* Every name of want ("a\nb\n") is in have ("\na\nb\n"): NULL, or the first missing one
 * (fresh memory). */
static char *missing_name(const struct buf *want, const struct buf *have)
{
    const char *p = want->ptr ? want->ptr : "";

    while (*p) {
        const char *nl = strchr(p, '\n');
        char *needle = xasprintf("\n%.*s\n", (int)(nl - p), p);
        int found = have->ptr && strstr(have->ptr, needle);
        free(needle);
        if (!found)
            return xstrndup(p, (size_t)(nl - p));
        p = nl + 1;
    }
    return NULL;
}

enum status lbenv_check_basic_auth(const char *v, struct err *e)
{
    char show[64], line[128], *miss = NULL;
    const char *p;
    enum status st;
    struct buf users = BUF_INIT, groups = BUF_INIT, want_users = BUF_INIT, want_groups = BUF_INIT;

    if (!v)
        return ST_OK;
    st = check_text(v, 1, e);
    if (st != ST_OK)
        return st;
    (void)!buf_puts(&users, "\n");
    (void)!buf_puts(&groups, "\n");
    for (p = v; *p && st == ST_OK;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p), nt, i;
        struct tok t[16];
        int ok;

        nt = tokens(p, n, t, ARRAY_SIZE(t));
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
        if (nt == 0)
            goto next;
        ok = nt <= ARRAY_SIZE(t) && nt >= 2 && (tok_is(&t[0], "user") || tok_is(&t[0], "group")) &&
             tok_chars(&t[1], "_.@-");
        if (ok && tok_is(&t[0], "user")) {
            ok = add_names(&t[1], &users) && !memchr(t[1].p, ',', t[1].n);
            for (i = 2; ok && i < nt; i += 2) {
                const struct tok *arg = i + 1 < nt ? &t[i + 1] : NULL;
                if (!arg)
                    ok = 0;
                else if (tok_is(&t[i], "password") || tok_is(&t[i], "insecure-password"))
                    ok = tok_chars(arg, "$./=+-_!%&*,:;<>?@[]^{}|~()");
                else if (tok_is(&t[i], "groups"))
                    ok = add_names(arg, &want_groups);
                else
                    ok = 0;
            }
        } else if (ok) {
            ok = add_names(&t[1], &groups) && !memchr(t[1].p, ',', t[1].n);
            if (ok && nt > 2)
                ok = nt == 4 && tok_is(&t[2], "users") && add_names(&t[3], &want_users);
        }
        if (!ok)
            st = err_set(e, ST_INVALID,
                         "line '%s' is not a haproxy userlist line ('user <name> "
                         "[password|insecure-password <secret>] [groups <g>,...]' or 'group "
                         "<name> [users <u>,...]'; names of letters, digits, _.@-, secrets "
                         "without blanks, quotes, '#' or '\\')",
                         SHOW(line));
    next:
        if (!nl)
            break;
        p = nl + 1;
    }
    if (st == ST_OK && (miss = missing_name(&want_groups, &groups)) != NULL)
        st =
            err_set(e, ST_INVALID, "a user is in group '%s', which no 'group' line declares", miss);
    else if (st == ST_OK && (miss = missing_name(&want_users, &users)) != NULL)
        st = err_set(e, ST_INVALID, "a group lists user '%s', which no 'user' line declares", miss);
    free(miss);
    buf_release(&users);
    buf_release(&groups);
    buf_release(&want_users);
    buf_release(&want_groups);
    return st;
}

enum status lbenv_check_port(const char *v, int *port, struct err *e)
{
    char show[64];
    size_t n = v ? strnlen(v, 16) : 0;
    long x;

    if (!v || !all_digits(v, n) || v[n])
        goto bad;
    x = strtol(v, NULL, 10);
    if (x < 1 || x > 65535)
        goto bad;
    if (port)
        *port = (int)x;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "'%s' is not a port (1..65535)", v ? SHOW(v) : "");
}

enum status lbenv_check_name(const char *v, struct err *e)
{
    char show[64];
    size_t n = v ? strnlen(v, LBENV_MAX_NAME + 1) : 0;

    if (n == 0 || n > LBENV_MAX_NAME)
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (!(is_alnum(v[i]) || strchr("_.:-", v[i])))
            goto bad;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "'%s' is not a valid haproxy name ([A-Za-z0-9_.:-])",
                   v ? SHOW(v) : "");
}

enum status lbenv_check_upstream(const char *v, struct err *e)
{
    char show[64], host[64];
    const char *colon;
    size_t hl;
    unsigned char addr[16];

    if (!v)
        goto bad;
    colon = strrchr(v, ':');
    if (!colon || lbenv_check_port(colon + 1, NULL, NULL) != ST_OK)
        goto bad;
    hl = (size_t)(colon - v);
    if (hl >= sizeof(host) || hl == 0)
        goto bad;
    if (v[0] == '[') {
        if (hl < 3 || v[hl - 1] != ']')
            goto bad;
        memcpy(host, v + 1, hl - 2);
        host[hl - 2] = '\0';
        if (inet_pton(AF_INET6, host, addr) != 1)
            goto bad;
        return ST_OK;
    }
    memcpy(host, v, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, addr) != 1)
        goto bad;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID, "'%s' is not an upstream address (<ip>:<port>)",
                   v ? SHOW(v) : "");
}

enum status lbenv_check_uri(const char *v, struct err *e)
{
    char show[64];

    if (!v || v[0] != '/' || strlen(v) > 1024)
        goto bad;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || strchr("\"'#\\", *p))
            goto bad;
    return ST_OK;
bad:
    return err_set(e, ST_INVALID,
                   "'%s' is not a health check URI (starts with '/', no spaces or quotes)",
                   v ? SHOW(v) : "");
}

/* --- env ------------------------------------------------------------------------------- */

const char *lbenv_get(const char *const *env, size_t n, const char *name)
{
    size_t nl = strlen(name);
    const char *found = NULL;

    for (size_t i = 0; i < n; i++)
        if (env[i] && strncmp(env[i], name, nl) == 0 && env[i][nl] == '=')
            found = env[i] + nl + 1;
    return found;
}

const char *lbenv_get_json(const json_t *env, const char *name)
{
    size_t nl = strlen(name), i;
    const char *found = NULL;
    const json_t *it;

    if (!json_is_array(env))
        return NULL;
    json_array_foreach(env, i, it)
    {
        const char *s = json_string_value(it);
        if (s && strncmp(s, name, nl) == 0 && s[nl] == '=')
            found = s + nl + 1;
    }
    return found;
}

int lbenv_is_lb(const char *image, const json_t *env)
{
    const char *role = lbenv_get_json(env, "KONTENA_SERVICE_ROLE");

    return (image && strstr(image, "kontena/lb")) || (role && strcmp(role, "lb") == 0);
}

/* A comma list with its items trimmed of blanks: "a.com, b.com" → "a.com,b.com". */
static char *normalised_list(const char *v)
{
    struct buf b = BUF_INIT;
    const char *p = v;

    for (;;) {
        const char *end = strchr(p, ',');
        const char *a = p, *z = end ? end : p + strlen(p);
        while (a < z && (*a == ' ' || *a == '\t'))
            a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
            z--;
        if (b.len)
            (void)!buf_puts(&b, ",");
        (void)!buf_append(&b, a, (size_t)(z - a));
        if (!end)
            break;
        p = end + 1;
    }
    return buf_take(&b);
}

/* Value blank (empty or only blanks/newlines). */
static int blank(const char *v)
{
    return v[strspn(v, " \t\r\n")] == '\0';
}

#define FAIL(var, st)                                                                              \
    do {                                                                                           \
        (void)(st);                                                                                \
        err_wrap(e, "service '%s': %s", svc, var);                                                 \
        lbenv_release(out);                                                                        \
        return ST_INVALID;                                                                         \
    } while (0)

enum status lbenv_parse(struct lbenv *out, const char *const *env, size_t n, const char *svc,
                        struct err *e)
{
    const char *v;
    const char *hosts, *paths;

    if (!svc)
        svc = "?";
    *out = (struct lbenv)LBENV_INIT;
    err_clear(e);

    v = lbenv_get(env, n, "KONTENA_LB_MODE");
    if (v && *v && lbenv_check_mode(v, &out->mode, e) != ST_OK)
        FAIL("KONTENA_LB_MODE", 0);

    v = lbenv_get(env, n, "KONTENA_LB_BALANCE");
    if (v && *v) {
        if (lbenv_check_balance(v, e) != ST_OK)
            FAIL("KONTENA_LB_BALANCE", 0);
        out->balance = xstrdup(v);
    } else {
        out->balance = xstrdup("roundrobin");
    }

    v = lbenv_get(env, n, "KONTENA_LB_INTERNAL_PORT");
    if (v && *v && lbenv_check_port(v, &out->internal_port, e) != ST_OK)
        FAIL("KONTENA_LB_INTERNAL_PORT", 0);
    v = lbenv_get(env, n, "KONTENA_LB_EXTERNAL_PORT");
    if (v && *v && lbenv_check_port(v, &out->external_port, e) != ST_OK)
        FAIL("KONTENA_LB_EXTERNAL_PORT", 0);

    hosts = lbenv_get(env, n, "KONTENA_LB_VIRTUAL_HOSTS");
    if (hosts && !blank(hosts)) {
        if (lbenv_check_virtual_hosts(hosts, e) != ST_OK)
            FAIL("KONTENA_LB_VIRTUAL_HOSTS", 0);
        out->virtual_hosts = normalised_list(hosts);
    }
    paths = lbenv_get(env, n, "KONTENA_LB_VIRTUAL_PATH");
    if (paths && !blank(paths)) {
        if (lbenv_check_virtual_paths(paths, e) != ST_OK)
            FAIL("KONTENA_LB_VIRTUAL_PATH", 0);
        out->virtual_path = normalised_list(paths);
    } else if (!out->virtual_hosts) {
        out->virtual_path = xstrdup("/");
    }

    v = lbenv_get(env, n, "KONTENA_LB_KEEP_VIRTUAL_PATH");
    if (v && *v) {
        if (lbenv_check_keep_virtual_path(v, e) != ST_OK)
            FAIL("KONTENA_LB_KEEP_VIRTUAL_PATH", 0);
        out->keep_virtual_path = xstrdup(v);
    }

    v = lbenv_get(env, n, "KONTENA_LB_COOKIE");
    if (v) {
        if (lbenv_check_cookie(v, e) != ST_OK)
            FAIL("KONTENA_LB_COOKIE", 0);
        out->cookie = xstrdup(v);
    }

    v = lbenv_get(env, n, "KONTENA_LB_BASIC_AUTH_SECRETS");
    if (v && !blank(v)) {
        if (lbenv_check_basic_auth(v, e) != ST_OK)
            FAIL("KONTENA_LB_BASIC_AUTH_SECRETS", 0);
        out->basic_auth_secrets = xstrdup(v);
    }

    v = lbenv_get(env, n, "KONTENA_LB_CUSTOM_SETTINGS");
    if (v && !blank(v)) {
        if (lbenv_check_lines(v, e) != ST_OK)
            FAIL("KONTENA_LB_CUSTOM_SETTINGS", 0);
        out->custom_settings = xstrdup(v);
    }
    return ST_OK;
}

enum status lbenv_parse_json(struct lbenv *out, const json_t *env, const char *svc, struct err *e)
{
    size_t n = json_is_array(env) ? json_array_size(env) : 0, k = 0, i;
    const char **arr = xcalloc(n ? n : 1, sizeof(*arr));
    const json_t *it;
    enum status st;

    if (n)
        json_array_foreach(env, i, it) if (json_is_string(it)) arr[k++] = json_string_value(it);
    st = lbenv_parse(out, arr, k, svc, e);
    free(arr);
    return st;
}

/* --- port clash ------------------------------------------------------------------------ */

static int env_port(const json_t *env, const char *name, int def)
{
    int p;
    const char *v = lbenv_get_json(env, name);

    if (v && lbenv_check_port(v, &p, NULL) == ST_OK)
        return p;
    return def;
}

void lbenv_lb_ports(const json_t *lb_env, struct lbenv_lb_ports *out)
{
    out->http = env_port(lb_env, "KONTENA_LB_HTTP_PORT", 80);
    out->https = env_port(lb_env, "KONTENA_LB_HTTPS_PORT", 443);
    out->stats = env_port(lb_env, "KONTENA_LB_STATS_PORT", 1000);
}

enum status lbenv_check_port_clash(const char *lb, const struct lbenv_lb_ports *ports,
                                   const struct lbenv_tcp_use *uses, size_t n, struct err *e)
{
    struct lbenv_lb_ports def = {80, 443, 1000};

    if (!ports)
        ports = &def;
    if (!lb)
        lb = "?";
    for (size_t i = 0; i < n; i++) {
        int p = uses[i].external_port;
        const char *own = p == ports->http    ? "http"
                          : p == ports->https ? "https"
                          : p == ports->stats ? "stats"
                                              : NULL;
        if (own)
            return err_set(e, ST_CONFLICT,
                           "port clash on load balancer '%s': service '%s' uses "
                           "KONTENA_LB_EXTERNAL_PORT %d, the load balancer's own %s port",
                           lb, uses[i].service ? uses[i].service : "?", p, own);
        for (size_t j = 0; j < i; j++)
            if (uses[j].external_port == p)
                return err_set(e, ST_CONFLICT,
                               "port clash on load balancer '%s': services '%s' and '%s' both "
                               "use KONTENA_LB_EXTERNAL_PORT %d",
                               lb, uses[j].service ? uses[j].service : "?",
                               uses[i].service ? uses[i].service : "?", p);
    }
    return ST_OK;
}

/* --- install-time check of a set ------------------------------------------------------- */

/* The LB env variables that are ports of the LB itself (our extension, kontena-lb). */
static enum status check_lb_own(const json_t *env, const char *id, struct err *e)
{
    static const char *const ports[] = {"KONTENA_LB_HTTP_PORT", "KONTENA_LB_HTTPS_PORT",
                                        "KONTENA_LB_STATS_PORT"};
    static const char *const lines[] = {"KONTENA_LB_CUSTOM_SETTINGS", "KONTENA_LB_GLOBAL_SETTINGS"};

    for (size_t i = 0; i < ARRAY_SIZE(ports); i++) {
        const char *v = lbenv_get_json(env, ports[i]);
        if (v && *v && lbenv_check_port(v, NULL, e) != ST_OK)
            return err_wrap(e, "service '%s': %s", id, ports[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
        const char *v = lbenv_get_json(env, lines[i]);
        if (v && lbenv_check_lines(v, e) != ST_OK)
            return err_wrap(e, "service '%s': %s", id, lines[i]);
    }
    return ST_OK;
}

/* The first link of s to a load balancer of svcs: its index, or -1. */
static long lb_link(const json_t *svcs, const json_t *s, const char *lbs)
{
    size_t i, j;
    const json_t *l, *x;

    json_array_foreach(json_object_get(s, "links"), i, l)
    {
        const char *target = json_string_value(l);
        if (!target)
            continue;
        json_array_foreach(svcs, j, x)
        {
            const char *id = json_string_value(json_object_get(x, "id"));
            if (lbs[j] && id && strcmp(id, target) == 0)
                return (long)j;
        }
    }
    return -1;
}

enum status lbenv_check_set(const json_t *svcs, const char **who, struct err *e)
{
    size_t n = json_array_size(svcs), i, j;
    char *lbs = xcalloc(n ? n : 1, 1);
    long *lb = xcalloc(n ? n : 1, sizeof(*lb));
    int *port = xcalloc(n ? n : 1, sizeof(*port));
    enum status st = ST_OK;
    const json_t *s;

    if (who)
        *who = NULL;
    json_array_foreach(svcs, i, s) lbs[i] = (char)lbenv_is_lb(
        json_string_value(json_object_get(s, "image")), json_object_get(s, "env"));
    /* Values of the changed services; the tcp port of every linked tcp service. */
    json_array_foreach(svcs, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        int changed = json_is_true(json_object_get(s, "changed"));
        struct lbenv env = LBENV_INIT;

        lb[i] = -1;
        if (!id)
            continue;
        if (lbs[i]) {
            if (changed && (st = check_lb_own(json_object_get(s, "env"), id, e)) != ST_OK)
                goto fail;
            continue;
        }
        if (lbenv_parse_json(&env, json_object_get(s, "env"), id, e) != ST_OK) {
            if (changed) {
                st = ST_INVALID;
                goto fail;
            }
            continue; /* an old bad service: not this request's fault */
        }
        lb[i] = lb_link(svcs, s, lbs);
        port[i] = env.mode == LB_MODE_TCP ? env.external_port : 0;
        lbenv_release(&env);
    }
    err_clear(e);
    /* Port clashes per load balancer. */
    for (i = 0; i < n; i++) {
        const json_t *l;
        struct lbenv_lb_ports ports;
        const char *lbid;
        int lb_changed;

        if (lb[i] < 0 || !port[i])
            continue;
        l = json_array_get(svcs, (size_t)lb[i]);
        lbid = json_string_value(json_object_get(l, "id"));
        lb_changed = json_is_true(json_object_get(l, "changed"));
        lbenv_lb_ports(json_object_get(l, "env"), &ports);
        s = json_array_get(svcs, i);
        int ci = json_is_true(json_object_get(s, "changed"));
        struct lbenv_tcp_use me = {json_string_value(json_object_get(s, "id")), port[i]};
        if ((ci || lb_changed) && (st = lbenv_check_port_clash(lbid, &ports, &me, 1, e)) != ST_OK) {
            if (!ci)
                s = l;
            goto fail;
        }
        for (j = 0; j < i; j++) {
            const json_t *o = json_array_get(svcs, j);
            struct lbenv_tcp_use two[2] = {{json_string_value(json_object_get(o, "id")), port[j]},
                                           me};
            if (lb[j] != lb[i] || !port[j] || !(ci || json_is_true(json_object_get(o, "changed"))))
                continue;
            if ((st = lbenv_check_port_clash(lbid, &ports, two, 2, e)) != ST_OK) {
                if (!ci)
                    s = o;
                goto fail;
            }
        }
    }
    goto out;
fail:
    if (who)
        *who = json_string_value(json_object_get(s, "id"));
out:
    free(lbs);
    free(lb);
    free(port);
    return st;
}
