/* lb/render.c -- haproxy configuration from the LB keys (see render.h, docs/internals/lb.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/lbenv.h"
#include "common/xmalloc.h"
#include "lb/render.h"

#include "common/banned.h"

#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define DEFAULT_LOG_TARGET "stdout format raw local0 info"

/* ---- settings ----------------------------------------------------------------------------- */

void lb_settings_release(struct lb_settings *s)
{
    struct lb_settings init = LB_SETTINGS_INIT;

    if (!s)
        return;
    free(s->run_dir);
    free(s->certs_dir);
    free(s->health_uri);
    free(s->ssl_ciphers);
    free(s->custom_settings);
    free(s->global_settings);
    free(s->stats_password);
    free(s->log_target);
    *s = init;
}

/* A word that goes into the configuration as it is: no whitespace, control characters,
 * quotes, '#' or '\\' (which haproxy's parser would interpret). */
static int plain_word(const char *v)
{
    if (!*v)
        return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\'' || *p == '#' || *p == '\\')
            return 0;
    return 1;
}

/* One line (spaces allowed) with no control characters. */
static int plain_line(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return 0;
    return 1;
}

static enum status env_port(lb_getenv_fn get, void *arg, const char *name, int *port, struct err *e)
{
    const char *v = get(arg, name);
    struct err pe = ERR_INIT;

    if (!v || !*v)
        return ST_OK;
    if (lbenv_check_port(v, port, &pe) != ST_OK)
        return err_set(e, ST_INVALID, "%s: %s", name, pe.msg);
    return ST_OK;
}

static enum status env_lines(lb_getenv_fn get, void *arg, const char *name, char **out,
                             struct err *e)
{
    const char *v = get(arg, name);
    struct err pe = ERR_INIT;

    if (!v || !*v)
        return ST_OK;
    if (lbenv_check_lines(v, &pe) != ST_OK)
        return err_set(e, ST_INVALID, "%s: %s", name, pe.msg);
    *out = xstrdup(v);
    return ST_OK;
}

enum status lb_settings_from_env(struct lb_settings *s, lb_getenv_fn get, void *arg,
                                 const char *run_dir, struct err *e)
{
    enum status st;
    const char *v;
    struct err pe = ERR_INIT;

    if (!run_dir || !plain_word(run_dir) || run_dir[0] != '/') {
        st = err_set(e, ST_INVALID,
                     "run directory '%s': an absolute path without spaces, quotes or '#'",
                     run_dir ? run_dir : "");
        goto fail;
    }
    s->run_dir = xstrdup(run_dir);
    s->certs_dir = xasprintf("%s/certs", run_dir);
    if ((st = env_port(get, arg, "KONTENA_LB_HTTP_PORT", &s->http_port, e)) != ST_OK ||
        (st = env_port(get, arg, "KONTENA_LB_HTTPS_PORT", &s->https_port, e)) != ST_OK ||
        (st = env_port(get, arg, "KONTENA_LB_STATS_PORT", &s->stats_port, e)) != ST_OK)
        goto fail;
    if (s->http_port == s->https_port || s->http_port == s->stats_port ||
        s->https_port == s->stats_port) {
        st = err_set(e, ST_INVALID,
                     "KONTENA_LB_HTTP_PORT %d, KONTENA_LB_HTTPS_PORT %d and "
                     "KONTENA_LB_STATS_PORT %d must differ",
                     s->http_port, s->https_port, s->stats_port);
        goto fail;
    }
    v = get(arg, "KONTENA_LB_HEALTH_URI");
    if (v && *v) {
        if (lbenv_check_uri(v, &pe) != ST_OK) {
            st = err_set(e, ST_INVALID, "KONTENA_LB_HEALTH_URI: %s", pe.msg);
            goto fail;
        }
        s->health_uri = xstrdup(v);
    }
    v = get(arg, "KONTENA_LB_SSL_CIPHERS");
    if (v && *v && !plain_word(v)) {
        st = err_set(e, ST_INVALID, "KONTENA_LB_SSL_CIPHERS: '%s' is not one word", v);
        goto fail;
    }
    s->ssl_ciphers = xstrdup(v && *v ? v : DEFAULT_CIPHERS);
    if ((st = env_lines(get, arg, "KONTENA_LB_CUSTOM_SETTINGS", &s->custom_settings, e)) != ST_OK ||
        (st = env_lines(get, arg, "KONTENA_LB_GLOBAL_SETTINGS", &s->global_settings, e)) != ST_OK)
        goto fail;
    s->accept_proxy = get(arg, "KONTENA_LB_ACCEPT_PROXY") != NULL;
    v = get(arg, "KONTENA_LB_HTTP2");
    s->http2 = !(v && strcmp(v, "false") == 0);
    v = get(arg, "STATS_PASSWORD");
    if (v && *v && !plain_word(v)) {
        st = err_set(e, ST_INVALID,
                     "STATS_PASSWORD: no whitespace, quotes, '#' or '\\' in the password");
        goto fail;
    }
    s->stats_password = xstrdup(v && *v ? v : "secret");
    v = get(arg, "SYSLOG_TARGET");
    if (v && *v) {
        if (!plain_line(v)) {
            st = err_set(e, ST_INVALID, "SYSLOG_TARGET: control characters in '%s'", v);
            goto fail;
        }
        s->log_target = xstrdup(v);
    }
    return ST_OK;
fail:
    lb_settings_release(s);
    return st;
}

/* ---- the model read from the keys --------------------------------------------------------- */

enum field {
    F_BALANCE,
    F_VHOSTS,
    F_VPATH,
    F_KEEP,
    F_COOKIE,
    F_AUTH,
    F_CUSTOM,
    F_HCURI,
    F_HCPORT,
    F_EXTPORT,
    NFIELDS
};

static const char *const field_names[NFIELDS] = {
    "balance",           "virtual_hosts",    "virtual_path",
    "keep_virtual_path", "cookie",           "basic_auth_secrets",
    "custom_settings",   "health_check_uri", "health_check_port",
    "external_port",
};

/* Which fields each kind reads (the others are ignored, as the original did). */
static int field_applies(enum field f, int tcp)
{
    if (tcp)
        return f == F_BALANCE || f == F_CUSTOM || f == F_EXTPORT;
    return f != F_EXTPORT;
}

struct upstream {
    const char *name; /* borrowed from the kvs */
    const char *addr;
};

struct backend {
    char *name;
    int tcp;
    const char *f[NFIELDS]; /* borrowed; NULL = key absent */
    struct upstream *ups;
    size_t n_ups, cap_ups;
    char **hosts, **paths; /* split and trimmed lists */
    size_t n_hosts, n_paths;
    int ext_port;
    int dropped;
};

struct model {
    struct backend *b;
    size_t n, cap;
};

static struct backend *backend_get(struct model *m, const char *name, size_t len, int tcp)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->b[i].tcp == tcp && strlen(m->b[i].name) == len &&
            memcmp(m->b[i].name, name, len) == 0)
            return &m->b[i];
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->b = xrealloc(m->b, m->cap * sizeof(*m->b));
    }
    memset(&m->b[m->n], 0, sizeof(m->b[m->n]));
    m->b[m->n].name = xstrndup(name, len);
    m->b[m->n].tcp = tcp;
    return &m->b[m->n++];
}

static void add_kv(struct model *m, const struct lb_kv *kv)
{
    const char *k = kv->key, *rest, *slash;
    int tcp;
    struct backend *b;

    if (!k || !kv->value)
        return;
    if (strncmp(k, "services/", 9) == 0) {
        tcp = 0;
        rest = k + 9;
    } else if (strncmp(k, "tcp-services/", 13) == 0) {
        tcp = 1;
        rest = k + 13;
    } else {
        return;
    }
    slash = strchr(rest, '/');
    if (!slash || slash == rest)
        return;
    b = NULL;
    if (strncmp(slash + 1, "upstreams/", 10) == 0) {
        const char *un = slash + 11;
        if (!*un || strchr(un, '/'))
            return;
        b = backend_get(m, rest, (size_t)(slash - rest), tcp);
        for (size_t i = 0; i < b->n_ups; i++)
            if (strcmp(b->ups[i].name, un) == 0) {
                b->ups[i].addr = kv->value;
                return;
            }
        if (b->n_ups == b->cap_ups) {
            b->cap_ups = b->cap_ups ? 2 * b->cap_ups : 4;
            b->ups = xrealloc(b->ups, b->cap_ups * sizeof(*b->ups));
        }
        b->ups[b->n_ups].name = un;
        b->ups[b->n_ups].addr = kv->value;
        b->n_ups++;
        return;
    }
    for (int f = 0; f < NFIELDS; f++)
        if (strcmp(slash + 1, field_names[f]) == 0) {
            if (!field_applies((enum field)f, tcp))
                return;
            b = backend_get(m, rest, (size_t)(slash - rest), tcp);
            b->f[f] = kv->value;
            return;
        }
}

static void split_list(const char *v, char ***out, size_t *n)
{
    const char *p = v;

    *out = NULL;
    *n = 0;
    if (!v)
        return;
    for (;;) {
        const char *end = strchr(p, ','), *s = p, *t;
        if (!end)
            end = p + strlen(p);
        t = end;
        while (s < t && (*s == ' ' || *s == '\t'))
            s++;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t > s) {
            *out = xrealloc(*out, (*n + 1) * sizeof(**out));
            (*out)[(*n)++] = xstrndup(s, (size_t)(t - s));
        }
        if (!*end)
            break;
        p = end + 1;
    }
}

static void model_release(struct model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        struct backend *b = &m->b[i];
        free(b->name);
        free(b->ups);
        for (size_t j = 0; j < b->n_hosts; j++)
            free(b->hosts[j]);
        for (size_t j = 0; j < b->n_paths; j++)
            free(b->paths[j]);
        free(b->hosts);
        free(b->paths);
    }
    free(m->b);
    m->b = NULL;
    m->n = m->cap = 0;
}

static int cmp_backend(const void *a, const void *b)
{
    const struct backend *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->tcp - y->tcp;
}

static int cmp_upstream(const void *a, const void *b)
{
    const struct upstream *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void add_dropped(struct lb_render *r, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void add_dropped(struct lb_render *r, const char *fmt, ...)
{
    va_list ap;
    char msg[ERR_MSG_LEN + 256];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->dropped = xrealloc(r->dropped, (r->n_dropped + 1) * sizeof(*r->dropped));
    r->dropped[r->n_dropped++] = xstrdup(msg);
}

/* The defence-in-depth re-check of one backend's values (common/lbenv, the same checks the
 * API server and kontena-lbconfig made before the keys were written). ST_INVALID with
 * "<key>: <why>" in e. */
static enum status backend_check(struct backend *b, struct err *e)
{
    struct err pe = ERR_INIT;
    int bad = -1;

    if (lbenv_check_name(b->name, &pe) != ST_OK)
        return err_set(e, ST_INVALID, "name: %s", pe.msg);
    if (strcmp(b->name, "stats") == 0 || strcmp(b->name, "http-in") == 0)
        return err_set(e, ST_INVALID, "name: '%s' is the name of a section of the load balancer",
                       b->name);
    for (int f = 0; f < NFIELDS && bad < 0; f++) {
        const char *v = b->f[f];
        enum status st = ST_OK;
        if (!v)
            continue;
        switch ((enum field)f) {
        case F_BALANCE:
            st = lbenv_check_balance(v, &pe);
            break;
        case F_VHOSTS:
            st = lbenv_check_virtual_hosts(v, &pe);
            break;
        case F_VPATH:
            st = lbenv_check_virtual_paths(v, &pe);
            break;
        case F_KEEP:
            st = lbenv_check_keep_virtual_path(v, &pe);
            break;
        case F_COOKIE:
            st = lbenv_check_cookie(v, &pe);
            break;
        case F_AUTH:
            st = lbenv_check_basic_auth(v, &pe);
            break;
        case F_CUSTOM:
            st = lbenv_check_lines(v, &pe);
            break;
        case F_HCURI:
            st = lbenv_check_uri(v, &pe);
            break;
        case F_HCPORT:
            st = lbenv_check_port(v, NULL, &pe);
            break;
        case F_EXTPORT:
            st = lbenv_check_port(v, &b->ext_port, &pe);
            break;
        case NFIELDS:
            break;
        }
        if (st != ST_OK)
            bad = f;
    }
    if (bad >= 0)
        return err_set(e, ST_INVALID, "%s: %s", field_names[bad], pe.msg);
    return ST_OK;
}

/* ---- the text ----------------------------------------------------------------------------- */

struct out {
    struct buf text;
    int *owner;
    size_t n, cap;
    int cur; /* owner of the lines emitted now */
};

static void line(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void line(struct out *o, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) == -1)
        s = NULL;
    va_end(ap);
    BUG_ON(!s);
    BUG_ON(buf_puts(&o->text, s) != ST_OK || buf_puts(&o->text, "\n") != ST_OK);
    free(s);
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 256;
        o->owner = xrealloc(o->owner, o->cap * sizeof(*o->owner));
    }
    o->owner[o->n++] = o->cur;
}

/* Each non-blank line of a multi-line value, indented; leading/trailing blanks trimmed. */
static void lines(struct out *o, const char *v)
{
    const char *p = v;

    while (p && *p) {
        const char *end = strchr(p, '\n'), *s = p, *t;
        if (!end)
            end = p + strlen(p);
        t = end;
        while (s < t && (*s == ' ' || *s == '\t'))
            s++;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t > s)
            line(o, "  %.*s", (int)(t - s), s);
        p = *end ? end + 1 : end;
    }
}

static const char *accept_proxy(const struct lb_settings *s)
{
    return s->accept_proxy ? " accept-proxy" : "";
}

static void render_frontend(const struct lb_settings *s, struct backend **hb, size_t nh,
                            struct out *o)
{
    line(o, "frontend http-in");
    line(o, "  bind *:%d%s", s->http_port, accept_proxy(s));
    if (s->have_certs) {
        line(o, "  bind *:%d ssl crt %s/ no-sslv3%s%s", s->https_port, s->certs_dir,
             s->http2 ? " alpn h2,http/1.1" : "", accept_proxy(s));
        line(o, "  http-request set-header X-Forwarded-Proto https if { ssl_fc }");
        line(o, "  http-request set-header X-Forwarded-Port %%[dst_port] if { ssl_fc }");
    }
    if (s->health_uri)
        line(o, "  monitor-uri %s", s->health_uri);
    line(o, "  http-request replace-header Host '^([^:\\[\\]]+):[0-9]+$' '\\1'");
    for (size_t i = 0; i < nh; i++) {
        struct backend *b = hb[i];
        o->cur = (int)i;
        for (size_t j = 0; j < b->n_hosts; j++) {
            if (strncmp(b->hosts[j], "*.", 2) == 0)
                line(o, "  acl host_%s hdr_end(host) -i %s", b->name, b->hosts[j] + 1);
            else
                line(o, "  acl host_%s hdr(host) -i %s", b->name, b->hosts[j]);
        }
        for (size_t j = 0; j < b->n_paths; j++)
            line(o, "  acl host_%s_virtual_path path_beg %s", b->name, b->paths[j]);
    }
    /* Hosts and paths, then hosts only, then paths only; key order within each group. */
    for (int group = 0; group < 3; group++)
        for (size_t i = 0; i < nh; i++) {
            struct backend *b = hb[i];
            o->cur = (int)i;
            if (group == 0 && b->n_hosts && b->n_paths)
                line(o, "  use_backend %s if host_%s host_%s_virtual_path", b->name, b->name,
                     b->name);
            else if (group == 1 && b->n_hosts && !b->n_paths)
                line(o, "  use_backend %s if host_%s", b->name, b->name);
            else if (group == 2 && !b->n_hosts && b->n_paths)
                line(o, "  use_backend %s if host_%s_virtual_path", b->name, b->name);
        }
    o->cur = -1;
}

static void render_http_backend(struct backend *b, struct out *o)
{
    const char *cookie = b->f[F_COOKIE];

    line(o, "backend %s", b->name);
    line(o, "  option forwardfor");
    lines(o, b->f[F_CUSTOM]);
    if (cookie && !*cookie)
        line(o, "  cookie KONTENA_SERVERID insert indirect nocache");
    else if (cookie)
        lines(o, cookie);
    line(o, "  balance %s", b->f[F_BALANCE] ? b->f[F_BALANCE] : "roundrobin");
    if (b->f[F_AUTH]) {
        line(o, "  acl auth_ok_%s http_auth(auth_users_%s)", b->name, b->name);
        line(o, "  http-request auth realm %s if !auth_ok_%s", b->name, b->name);
    }
    if (b->n_paths && !(b->f[F_KEEP] && strcmp(b->f[F_KEEP], "true") == 0)) {
        /* One rule for all prefixes, so a stripped path is never stripped again. The paths
         * hold no regex specials (lbenv_check_virtual_paths) but '.' and '+', escaped here. */
        struct buf re = BUF_INIT;
        for (size_t j = 0; j < b->n_paths; j++) {
            const char *p = b->paths[j];
            size_t l = strlen(p);
            while (l > 0 && p[l - 1] == '/')
                l--; /* "/api/" strips like "/api"; "/" strips nothing */
            if (!l)
                continue;
            BUG_ON(buf_puts(&re, re.len ? "|" : "") != ST_OK);
            for (size_t k = 0; k < l; k++) {
                char c[3] = {'\\', p[k], 0};
                BUG_ON(buf_puts(&re, (p[k] == '.' || p[k] == '+') ? c : c + 1) != ST_OK);
            }
        }
        if (re.len)
            line(o, "  http-request replace-path '^(%s)/?(.*)' '/\\2'", re.ptr);
        buf_release(&re);
    }
    if (b->f[F_HCURI])
        line(o, "  option httpchk GET %s", b->f[F_HCURI]);
    for (size_t j = 0; j < b->n_ups; j++) {
        char port[32] = "";
        if (b->f[F_HCPORT])
            snprintf(port, sizeof(port), " port %s", b->f[F_HCPORT]);
        line(o, "  server %s %s check%s%s%s", b->ups[j].name, b->ups[j].addr, port,
             cookie ? " cookie " : "", cookie ? b->ups[j].name : "");
    }
    if (b->f[F_AUTH]) {
        line(o, "userlist auth_users_%s", b->name);
        lines(o, b->f[F_AUTH]);
    }
}

static void render_tcp(const struct lb_settings *s, struct backend *b, struct out *o)
{
    line(o, "listen %s", b->name);
    line(o, "  bind *:%d%s", b->ext_port, accept_proxy(s));
    line(o, "  mode tcp");
    lines(o, b->f[F_CUSTOM]);
    line(o, "  balance %s", b->f[F_BALANCE] ? b->f[F_BALANCE] : "leastconn");
    for (size_t j = 0; j < b->n_ups; j++)
        line(o, "  server %s %s check", b->ups[j].name, b->ups[j].addr);
}

void lb_render(const struct lb_settings *s, const struct lb_kv *kvs, size_t n,
               const char *const *skip, size_t n_skip, struct lb_render *r)
{
    struct model m = {0};
    struct out o = {BUF_INIT, NULL, 0, 0, -1};
    struct backend **keep;
    size_t nkeep = 0, nhttp;

    for (size_t i = 0; i < n; i++)
        add_kv(&m, &kvs[i]);
    if (m.n)
        qsort(m.b, m.n, sizeof(*m.b), cmp_backend);

    /* Checks, in backend order, so which one of two clashing backends stays is stable. */
    keep = xcalloc(m.n + 1, sizeof(*keep));
    for (size_t i = 0; i < m.n; i++) {
        struct backend *b = &m.b[i];
        struct err e = ERR_INIT;
        size_t w = 0;
        int skipped = 0;

        for (size_t j = 0; j < n_skip; j++)
            if (skip[j] && strcmp(skip[j], b->name) == 0)
                skipped = 1;
        if (skipped)
            continue;
        if (backend_check(b, &e) != ST_OK) {
            add_dropped(r, "backend '%s' (%s): %s", b->name, b->tcp ? "tcp-services" : "services",
                        e.msg);
            continue;
        }
        if (b->tcp && nkeep && !keep[nkeep - 1]->tcp &&
            strcmp(keep[nkeep - 1]->name, b->name) == 0) {
            add_dropped(r, "backend '%s' (tcp-services): the service is also under services/",
                        b->name);
            continue;
        }
        for (size_t j = 0; j < b->n_ups; j++) {
            struct err ue = ERR_INIT;
            if (lbenv_check_name(b->ups[j].name, &ue) != ST_OK ||
                lbenv_check_upstream(b->ups[j].addr, &ue) != ST_OK) {
                add_dropped(r, "upstream '%s' of backend '%s': %s", b->ups[j].name, b->name,
                            ue.msg);
                continue;
            }
            b->ups[w++] = b->ups[j];
        }
        b->n_ups = w;
        if (b->n_ups)
            qsort(b->ups, b->n_ups, sizeof(*b->ups), cmp_upstream);
        if (b->tcp) {
            if (!b->f[F_EXTPORT] || !b->n_ups)
                continue; /* nothing to listen for yet: the original left it out too */
            if (b->ext_port == s->http_port || b->ext_port == s->stats_port ||
                (s->have_certs && b->ext_port == s->https_port)) {
                add_dropped(r,
                            "backend '%s' (tcp-services): port clash: external_port %d is a "
                            "port of the load balancer itself",
                            b->name, b->ext_port);
                continue;
            }
            for (size_t j = 0; j < nkeep; j++)
                if (keep[j]->tcp && keep[j]->ext_port == b->ext_port) {
                    add_dropped(r,
                                "backend '%s' (tcp-services): port clash: external_port %d is "
                                "already used by '%s'",
                                b->name, b->ext_port, keep[j]->name);
                    skipped = 1;
                    break;
                }
            if (skipped)
                continue;
        } else {
            split_list(b->f[F_VHOSTS], &b->hosts, &b->n_hosts);
            split_list(b->f[F_VPATH], &b->paths, &b->n_paths);
        }
        keep[nkeep++] = b;
    }
    for (size_t i = 0; i < m.n; i++)
        m.b[i].dropped = 1;
    for (size_t i = 0; i < nkeep; i++)
        keep[i]->dropped = 0;

    /* Http backends first (their index is their owner id), then tcp ones. */
    {
        struct backend **ordered = xcalloc(nkeep + 1, sizeof(*ordered));
        size_t k = 0;
        for (size_t i = 0; i < nkeep; i++)
            if (!keep[i]->tcp)
                ordered[k++] = keep[i];
        nhttp = k;
        for (size_t i = 0; i < nkeep; i++)
            if (keep[i]->tcp)
                ordered[k++] = keep[i];
        free(keep);
        keep = ordered;
    }

    line(&o, "global");
    line(&o, "  pidfile %s/haproxy.pid", s->run_dir);
    if (s->drop_privileges) {
        line(&o, "  user nobody");
        line(&o, "  group nogroup");
    }
    line(&o, "  maxconn %d", s->maxconn > 0 ? s->maxconn : 100000);
    line(&o, "  log %s", s->log_target ? s->log_target : DEFAULT_LOG_TARGET);
    line(&o, "  tune.ssl.default-dh-param 2048");
    line(&o, "  ssl-default-bind-ciphers %s", s->ssl_ciphers ? s->ssl_ciphers : DEFAULT_CIPHERS);
    line(&o, "  stats socket %s/admin.sock mode 600 level admin expose-fd listeners", s->run_dir);
    lines(&o, s->global_settings);
    line(&o, "defaults");
    line(&o, "  mode http");
    line(&o, "  log global");
    line(&o, "  option splice-auto");
    line(&o, "  option http-keep-alive");
    line(&o, "  option redispatch 1");
    line(&o, "  option httplog");
    line(&o, "  retries 3");
    line(&o, "  retry-on conn-failure empty-response response-timeout");
    line(&o, "  timeout http-request 5s");
    line(&o, "  timeout queue 1m");
    line(&o, "  timeout connect 5s");
    line(&o, "  timeout client 1m");
    line(&o, "  timeout server 1m");
    line(&o, "  timeout http-keep-alive 10s");
    line(&o, "  timeout check 10s");
    lines(&o, s->custom_settings);
    if (nhttp || s->have_certs || s->health_uri)
        render_frontend(s, keep, nhttp, &o);
    for (size_t i = 0; i < nkeep; i++) {
        o.cur = (int)i;
        if (keep[i]->tcp)
            render_tcp(s, keep[i], &o);
        else
            render_http_backend(keep[i], &o);
    }
    o.cur = -1;
    line(&o, "listen stats");
    line(&o, "  bind 0.0.0.0:%d", s->stats_port);
    /* haproxy's own Prometheus exporter (Debian builds it with PROMEX), without the stats
     * password: scrapers read /metrics, people the stats page */
    line(&o, "  http-request use-service prometheus-exporter if { path /metrics }");
    line(&o, "  stats enable");
    line(&o, "  stats uri /");
    line(&o, "  stats refresh 10s");
    line(&o, "  stats auth stats:%s", s->stats_password ? s->stats_password : "secret");

    r->text = buf_take(&o.text);
    r->line_owner = o.owner;
    r->n_lines = o.n;
    r->backends = xcalloc(nkeep + 1, sizeof(*r->backends));
    for (size_t i = 0; i < nkeep; i++)
        r->backends[i] = xstrdup(keep[i]->name);
    r->n_backends = nkeep;
    free(keep);
    model_release(&m);
}

void lb_render_release(struct lb_render *r)
{
    struct lb_render init = LB_RENDER_INIT;

    if (!r)
        return;
    free(r->text);
    free(r->line_owner);
    for (size_t i = 0; i < r->n_backends; i++)
        free(r->backends[i]);
    free(r->backends);
    for (size_t i = 0; i < r->n_dropped; i++)
        free(r->dropped[i]);
    free(r->dropped);
    *r = init;
}

const char *lb_render_line_backend(const struct lb_render *r, size_t line_no)
{
    int owner;

    if (!r || line_no == 0 || line_no > r->n_lines)
        return NULL;
    owner = r->line_owner[line_no - 1];
    if (owner < 0 || (size_t)owner >= r->n_backends)
        return NULL;
    return r->backends[owner];
}

/* ---- runtime API commands for server-only changes ------------------------------------------ */

struct srv_line {
    const char *backend; /* borrowed from the render */
    const char *line;    /* start of "  server ..." in the text */
    size_t len;          /* without the newline */
};

/* Split r's text into its server lines (srv) and the rest (other, "\n"-joined). */
static void split_servers(const struct lb_render *r, struct srv_line **srv, size_t *n_srv,
                          struct buf *other)
{
    const char *p = r->text;
    size_t line_no = 0;

    *srv = NULL;
    *n_srv = 0;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        line_no++;
        if (len > 9 && strncmp(p, "  server ", 9) == 0 && lb_render_line_backend(r, line_no)) {
            *srv = xrealloc(*srv, (*n_srv + 1) * sizeof(**srv));
            (*srv)[*n_srv].backend = lb_render_line_backend(r, line_no);
            (*srv)[*n_srv].line = p;
            (*srv)[*n_srv].len = len;
            (*n_srv)++;
        } else {
            BUG_ON(buf_append(other, p, len) != ST_OK || buf_puts(other, "\n") != ST_OK);
        }
        p = eol ? eol + 1 : NULL;
    }
}

/* The server name of a server line: [start, *len). */
static const char *srv_name(const struct srv_line *s, size_t *len)
{
    const char *n = s->line + 9;
    const char *sp = memchr(n, ' ', s->len - 9);
    *len = sp ? (size_t)(sp - n) : s->len - 9;
    return n;
}

static const struct srv_line *srv_find(const struct srv_line *v, size_t n,
                                       const struct srv_line *want)
{
    size_t wl, l;
    const char *wn = srv_name(want, &wl);

    for (size_t i = 0; i < n; i++) {
        const char *nm = srv_name(&v[i], &l);
        if (strcmp(v[i].backend, want->backend) == 0 && l == wl && memcmp(nm, wn, l) == 0)
            return &v[i];
    }
    return NULL;
}

char *lb_render_runtime_cmds(const struct lb_render *old, const struct lb_render *new_r)
{
    struct srv_line *os = NULL, *ns = NULL;
    size_t on = 0, nn = 0;
    struct buf oo = BUF_INIT, no = BUF_INIT, cmds = BUF_INIT;
    char *out = NULL;

    if (!old || !new_r || !old->text || !new_r->text)
        return NULL;
    split_servers(old, &os, &on, &oo);
    split_servers(new_r, &ns, &nn, &no);
    if (oo.len != no.len || (oo.len && memcmp(oo.ptr, no.ptr, oo.len) != 0))
        goto out; /* more than servers changed: the reload does it */
    for (size_t i = 0; i < nn; i++) {
        const struct srv_line *o = srv_find(os, on, &ns[i]);
        size_t l;
        const char *nm = srv_name(&ns[i], &l);
        const char *rest = nm + l;
        if (o && (o->len != ns[i].len || memcmp(o->line, ns[i].line, o->len) != 0))
            goto out; /* same name, new address or options */
        if (o)
            continue;
        BUG_ON(buf_printf(&cmds, "%sadd server %s/%.*s%.*s;enable server %s/%.*s",
                          cmds.len ? ";" : "", ns[i].backend, (int)l, nm,
                          (int)(ns[i].len - (size_t)(rest - ns[i].line)), rest, ns[i].backend,
                          (int)l, nm) != ST_OK);
        if (strstr(rest, " check") && (size_t)(strstr(rest, " check") - ns[i].line) < ns[i].len)
            BUG_ON(buf_printf(&cmds, ";enable health %s/%.*s", ns[i].backend, (int)l, nm) != ST_OK);
    }
    for (size_t i = 0; i < on; i++) {
        size_t l;
        const char *nm = srv_name(&os[i], &l);
        if (srv_find(ns, nn, &os[i]))
            continue;
        BUG_ON(buf_printf(&cmds, "%sset server %s/%.*s state maint", cmds.len ? ";" : "",
                          os[i].backend, (int)l, nm) != ST_OK);
    }
    if (cmds.len)
        out = buf_take(&cmds);
out:
    free(os);
    free(ns);
    buf_release(&oo);
    buf_release(&no);
    buf_release(&cmds);
    return out;
}
