/* cli/stackfile/schema.c -- strict validation of the interpolated stack file document
 * (reference/stack-file.md §3, §4, §9), in the shape of the original's hash validator:
 * unknown keys are "key not expected", scalar types are exact (an integer is not a float,
 * a number is not a string) and every problem is reported, never only the first.
 *
 * Lines: a problem with a key's value is reported on the key's line; a problem with one
 * item of a list on that item's line; a missing required key on its parent key's line.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/internal.h"
#include "common/buf.h"
#include "common/reserved_ports.h"
#include "common/specparse.h"
#include "common/xmalloc.h"
#include "common/banned.h"

/* One service (or one top-level section) being checked; findings are appended under
 * k0[.k1] followed by up to four more segments. */
struct vs {
    struct sf_ctx *cx;
    const struct ynode *doc;
    const char *k0, *k1;
};

static void verr(const struct vs *v, int line, const char *msg, const char *a, const char *b,
                 const char *c, const char *d)
{
    sf_finding(v->cx->errors, v->cx->base, line, msg, v->k0, v->k1, a, b, c, d, NULL);
}

static int is_map(const struct ynode *n)
{
    return n && n->kind == YN_MAP;
}

static int is_seq(const struct ynode *n)
{
    return n && n->kind == YN_SEQ;
}

static int is_scalar(const struct ynode *n, enum yscalar t)
{
    return n && n->kind == YN_SCALAR && n->stype == t;
}

static const char *class_of(const struct ynode *n)
{
    return n ? ynode_class(n) : "NilClass";
}

static int line_of(const struct ynode *n)
{
    return n ? n->line : 0;
}

static const char *key_text(const struct ynode *k)
{
    return k && k->text ? k->text : "";
}

enum ty { T_STR, T_INT, T_FLOAT, T_BOOL, T_ARRAY, T_HASH };

static const char *const ty_required[] = {"string required", "integer required",
                                          "float required",  "boolean required",
                                          "array required",  "hash required"};

static int has_type(const struct ynode *n, enum ty t)
{
    switch (t) {
    case T_STR: return is_scalar(n, YS_STR);
    case T_INT: return is_scalar(n, YS_INT);
    case T_FLOAT: return is_scalar(n, YS_FLOAT);
    case T_BOOL: return is_scalar(n, YS_BOOL);
    case T_ARRAY: return is_seq(n);
    case T_HASH: return is_map(n);
    }
    return 0;
}

/* Check an optional typed value (null passes); returns 1 when the value is present and of
 * the type, so that callers can go on with finer checks. */
static int opt_type(const struct vs *v, const struct ynode *key, const struct ynode *val,
                    enum ty t, const char *a, const char *b, const char *c)
{
    if (ynode_is_null(val))
        return 0;
    if (has_type(val, t))
        return 1;
    verr(v, line_of(key), ty_required[t], a, b, c, NULL);
    return 0;
}

/* The same for a required value; line is where to report a missing one. */
static int req_type(const struct vs *v, int line, const struct ynode *key,
                    const struct ynode *val, enum ty t, const char *a, const char *b,
                    const char *c)
{
    if (has_type(val, t))
        return 1;
    verr(v, key ? line_of(key) : line, ty_required[t], a, b, c, NULL);
    return 0;
}

/* Strict sub-mapping: every key of map must be in allowed, else "key not expected" under
 * [a.][b.]<key> (a and b may be NULL). */
static void strict_keys(const struct vs *v, const struct ynode *map, const char *const *allowed,
                        const char *a, const char *b)
{
    for (size_t i = 0; i < map->len; i++) {
        const char *k = key_text(map->keys[i]), *seg[3];
        size_t n = 0;
        int ok = 0;
        for (const char *const *p = allowed; *p; p++)
            if (strcmp(*p, k) == 0)
                ok = 1;
        if (ok)
            continue;
        if (a)
            seg[n++] = a;
        if (b)
            seg[n++] = b;
        seg[n++] = k;
        verr(v, line_of(map->keys[i]), "key not expected", seg[0], n > 1 ? seg[1] : NULL,
             n > 2 ? seg[2] : NULL, NULL);
    }
}

/* ---- service keys with their own rules ---------------------------------------------- */

static int env_item_ok(const struct ynode *it)
{
    const char *eq;

    if (!is_scalar(it, YS_STR))
        return 0;
    eq = strchr(it->text, '=');
    return eq && eq != it->text;
}

static void check_environment(const struct vs *v, const struct ynode *key,
                              const struct ynode *val)
{
    int line = 0;

    if (is_map(val)) {
        for (size_t i = 0; i < val->len && !line; i++) {
            const struct ynode *x = val->vals[i];
            if (!is_scalar(val->keys[i], YS_STR) ||
                !(ynode_is_null(x) || is_scalar(x, YS_STR) || is_scalar(x, YS_INT) ||
                  is_scalar(x, YS_BOOL)))
                line = line_of(val->keys[i]);
        }
    } else if (is_seq(val)) {
        for (size_t i = 0; i < val->len && !line; i++)
            if (!env_item_ok(val->vals[i]))
                line = line_of(val->vals[i]);
    } else {
        line = line_of(key);
    }
    if (line)
        verr(v, line, "is not valid", "environment", NULL, NULL, NULL);
}

static void check_env_file(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    if (is_scalar(val, YS_STR))
        return;
    if (is_seq(val)) {
        for (size_t i = 0; i < val->len; i++)
            if (!is_scalar(val->vals[i], YS_STR)) {
                verr(v, line_of(val->vals[i]), "is not valid", "env_file", NULL, NULL, NULL);
                return;
            }
        return;
    }
    verr(v, line_of(key), "is not valid", "env_file", NULL, NULL, NULL);
}

/* "service", "service:alias", "stack/service[:alias]": no spaces, at most one ':'. */
static int link_text_ok(const char *s)
{
    const char *colon = strchr(s, ':');

    if (!*s || *s == ':' || *s == '/')
        return 0;
    if (colon && (colon[1] == '\0' || strchr(colon + 1, ':')))
        return 0;
    for (; *s; s++)
        if (isspace((unsigned char)*s))
            return 0;
    return 1;
}

static void check_links(const struct vs *v, const struct ynode *key, const struct ynode *val,
                        const char *name, int allow_null)
{
    if (ynode_is_null(val) && allow_null)
        return;
    if (!is_seq(val)) {
        verr(v, line_of(key), allow_null ? "is not valid" : "array required", name, NULL, NULL,
             NULL);
        return;
    }
    for (size_t i = 0; i < val->len; i++) {
        const struct ynode *it = val->vals[i];
        int ok;
        if (is_map(it)) {
            const struct ynode *n = ynode_get(it, "name"), *a = ynode_get(it, "alias");
            ok = is_scalar(n, YS_STR) && link_text_ok(n->text) && !strchr(n->text, ':') &&
                 (ynode_is_null(a) || is_scalar(a, YS_STR));
            for (size_t j = 0; j < it->len; j++) {
                const char *k = key_text(it->keys[j]);
                if (strcmp(k, "name") != 0 && strcmp(k, "alias") != 0)
                    ok = 0;
            }
        } else {
            ok = is_scalar(it, YS_STR) && link_text_ok(it->text);
        }
        if (!ok)
            verr(v, line_of(it), "is not valid", name, NULL, NULL, NULL);
    }
}

static void check_depends_on(const struct vs *v, const struct ynode *key,
                             const struct ynode *val)
{
    if (!opt_type(v, key, val, T_ARRAY, "depends_on", NULL, NULL))
        return;
    for (size_t i = 0; i < val->len; i++)
        if (!is_scalar(val->vals[i], YS_STR) || !link_text_ok(val->vals[i]->text) ||
            strchr(val->vals[i]->text, ':'))
            verr(v, line_of(val->vals[i]), "is not valid", "depends_on", NULL, NULL, NULL);
}

static void check_ports(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    struct spec_port p;

    if (!opt_type(v, key, val, T_ARRAY, "ports", NULL, NULL))
        return;
    for (size_t i = 0; i < val->len; i++) {
        const char *user;
        if (!is_scalar(val->vals[i], YS_STR) ||
            spec_parse_port(val->vals[i]->text, &p, NULL) != ST_OK) {
            verr(v, line_of(val->vals[i]), "is not valid", "ports", NULL, NULL, NULL);
        } else if ((user = reserved_port_user(p.node_port, p.protocol, p.ip))) {
            char *msg = xasprintf("node port %d/%s on %s is reserved: %s uses it", p.node_port,
                                  p.protocol, p.ip, user);
            verr(v, line_of(val->vals[i]), msg, "ports", NULL, NULL, NULL);
            free(msg);
        }
    }
}

static void check_string_list(const struct vs *v, const struct ynode *key,
                              const struct ynode *val, const char *name)
{
    if (!opt_type(v, key, val, T_ARRAY, name, NULL, NULL))
        return;
    for (size_t i = 0; i < val->len; i++)
        if (!is_scalar(val->vals[i], YS_STR))
            verr(v, line_of(val->vals[i]), "string required", name, NULL, NULL, NULL);
}

/* §4.3: shape of each entry, named volumes declared at the top, mount points unique. */
static void check_volumes(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    const struct ynode *top_key = ynode_key(v->doc, "volumes");
    const struct ynode *top = ynode_get(v->doc, "volumes");
    json_t *mounts = json_object(); /* container path → count */

    if (!opt_type(v, key, val, T_ARRAY, "volumes", NULL, NULL))
        goto out;
    for (size_t i = 0; i < val->len; i++) {
        const struct ynode *it = val->vals[i];
        char *parts[4] = {NULL, NULL, NULL, NULL};
        size_t n = 0;
        int ok = 1;

        if (!is_scalar(it, YS_STR)) {
            verr(v, line_of(it), "string required", "volumes", NULL, NULL, NULL);
            continue;
        }
        for (const char *p = it->text;; n++) {
            const char *c = strchr(p, ':');
            if (n == 3) {
                ok = 0;
                break;
            }
            parts[n] = c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p);
            if (!c) {
                n++;
                break;
            }
            p = c + 1;
        }
        if (ok) {
            if (n == 1)
                ok = parts[0][0] == '/';
            else
                ok = parts[0][0] && parts[1][0] == '/' && (n < 3 || parts[2][0]);
        }
        if (!ok) {
            char *m = xasprintf("volume definition not in right format: %s", it->text);
            verr(v, line_of(it), m, "volumes", it->text, NULL, NULL);
            free(m);
        } else {
            const char *mp = n == 1 ? parts[0] : parts[1];
            json_t *c = json_object_get(mounts, mp);
            json_object_set_new(mounts, mp, json_integer(c ? json_integer_value(c) + 1 : 1));
            if (n > 1 && parts[0][0] != '/') {
                if (!top_key)
                    verr(v, line_of(it),
                         "defines volume name, but file does not contain volumes definitions",
                         "volumes", it->text, NULL, NULL);
                else if (is_map(top) && !ynode_key(top, parts[0]))
                    verr(v, line_of(it), "not found in top level volumes list", "volumes",
                         parts[0], NULL, NULL);
            }
        }
        for (size_t j = 0; j < 4; j++)
            free(parts[j]);
    }
    const char *mp;
    json_t *cnt;
    json_object_foreach(mounts, mp, cnt) {
        if (json_integer_value(cnt) > 1) {
            char *m = xasprintf("mount point defined %lld times",
                                (long long)json_integer_value(cnt));
            verr(v, line_of(key), m, "volumes", mp, NULL, NULL);
            free(m);
        }
    }
out:
    json_decref(mounts);
}

static void check_affinity(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    struct buf bad = BUF_INIT;
    int line = 0;

    if (ynode_is_null(val))
        return;
    if (!is_seq(val)) {
        verr(v, line_of(key), "affinity must be array", "affinity", NULL, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < val->len; i++) {
        const struct ynode *it = val->vals[i];
        struct spec_affinity a;
        if (is_scalar(it, YS_STR) && spec_parse_affinity(it->text, &a, NULL) == ST_OK) {
            spec_affinity_release(&a);
            continue;
        }
        if (!line)
            line = line_of(it);
        if (buf_printf(&bad, "%s%s", bad.len ? ", " : "",
                       it->kind == YN_SCALAR ? it->text : class_of(it)) != ST_OK)
            BUG_ON(1);
    }
    if (line) {
        char *m = xasprintf("affinity contains invalid formats: %s", bad.ptr);
        verr(v, line, m, "affinity", NULL, NULL, NULL);
        free(m);
    }
    buf_release(&bad);
}

/* secrets / certificates: a list of mappings with three required string fields. */
static void check_item_list(const struct vs *v, const struct ynode *key, const struct ynode *val,
                            const char *name, const char *const *fields)
{
    if (ynode_is_null(val))
        return;
    if (!is_seq(val)) {
        char *m = xasprintf("%s must be array", name);
        verr(v, line_of(key), m, name, NULL, NULL, NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < val->len; i++) {
        const struct ynode *it = val->vals[i];
        if (!is_map(it)) {
            verr(v, line_of(it), "hash required", name, NULL, NULL, NULL);
            continue;
        }
        for (const char *const *f = fields; *f; f++)
            req_type(v, line_of(it), ynode_key(it, *f), ynode_get(it, *f), T_STR, name, *f,
                     NULL);
        strict_keys(v, it, fields, name, NULL);
    }
}

static int hook_instances_ok(const struct ynode *n)
{
    const char *s;

    if (is_scalar(n, YS_INT))
        return 1;
    if (!is_scalar(n, YS_STR))
        return 0;
    if (strcmp(n->text, "*") == 0)
        return 1;
    /* "1,2,3" as the master takes it. */
    s = n->text;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !(*s == ',' && s[1] && isdigit((unsigned char)s[1])))
            return 0;
    return isdigit((unsigned char)n->text[0]);
}

static void check_hooks(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    static const char *const build_fields[] = {"name", "cmd", NULL};
    static const char *const run_fields[] = {"name", "cmd", "instances", "oneshot", NULL};

    if (ynode_is_null(val))
        return;
    if (!is_map(val)) {
        char *m = xasprintf("must be a mapping, not %s", class_of(val));
        verr(v, line_of(key), m, "hooks", NULL, NULL, NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < val->len; i++) {
        const char *type = key_text(val->keys[i]);
        const struct ynode *list = val->vals[i];
        int pre_build = strcmp(type, "pre_build") == 0;

        if (!pre_build && strcmp(type, "pre_start") != 0 && strcmp(type, "post_start") != 0 &&
            strcmp(type, "pre_stop") != 0) {
            char *m = xasprintf("invalid hook %s", type);
            verr(v, line_of(val->keys[i]), m, "hooks", type, NULL, NULL);
            free(m);
            continue;
        }
        if (ynode_is_null(list))
            continue;
        if (!is_seq(list)) {
            verr(v, line_of(val->keys[i]), "must be an array", "hooks", type, NULL, NULL);
            continue;
        }
        for (size_t j = 0; j < list->len; j++) {
            const struct ynode *it = list->vals[j];
            if (!is_map(it)) {
                char *m = xasprintf("must be a mapping, not %s", class_of(it));
                verr(v, line_of(it), m, "hooks", type, NULL, NULL);
                free(m);
                continue;
            }
            req_type(v, line_of(it), ynode_key(it, "name"), ynode_get(it, "name"), T_STR,
                     "hooks", type, "name");
            req_type(v, line_of(it), ynode_key(it, "cmd"), ynode_get(it, "cmd"), T_STR,
                     "hooks", type, "cmd");
            if (!pre_build) {
                if (!hook_instances_ok(ynode_get(it, "instances")))
                    verr(v,
                         ynode_key(it, "instances") ? line_of(ynode_key(it, "instances"))
                                                    : line_of(it),
                         "is not valid", "hooks", type, "instances", NULL);
                opt_type(v, ynode_key(it, "oneshot"), ynode_get(it, "oneshot"), T_BOOL, "hooks",
                         type, "oneshot");
            }
            strict_keys(v, it, pre_build ? build_fields : run_fields, "hooks", type);
        }
    }
}

static void check_condition(const struct vs *v, const struct ynode *key, const struct ynode *val,
                            const char *name)
{
    int ok = 1;

    if (ynode_is_null(val) || is_scalar(val, YS_STR))
        return;
    if (is_seq(val)) {
        for (size_t i = 0; i < val->len; i++)
            if (!is_scalar(val->vals[i], YS_STR))
                ok = 0;
    } else if (!is_map(val)) {
        ok = 0;
    }
    if (!ok)
        verr(v, line_of(key), "is not valid", name, NULL, NULL, NULL);
}

static void check_deploy(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    static const char *const fields[] = {"strategy", "wait_for_port", "min_health", "interval",
                                         NULL};
    const struct ynode *x, *k;

    if (!opt_type(v, key, val, T_HASH, "deploy", NULL, NULL))
        return;
    x = ynode_get(val, "strategy");
    k = ynode_key(val, "strategy");
    if (!ynode_is_null(x) &&
        !(is_scalar(x, YS_STR) && (strcmp(x->text, "ha") == 0 || strcmp(x->text, "daemon") == 0 ||
                                   strcmp(x->text, "random") == 0)))
        verr(v, line_of(k), "value from list required", "deploy", "strategy", NULL, NULL);
    opt_type(v, ynode_key(val, "wait_for_port"), ynode_get(val, "wait_for_port"), T_INT,
             "deploy", "wait_for_port", NULL);
    x = ynode_get(val, "min_health");
    k = ynode_key(val, "min_health");
    if (opt_type(v, k, x, T_FLOAT, "deploy", "min_health", NULL) &&
        !(x->fval >= 0.0 && x->fval <= 1.0))
        verr(v, line_of(k), "is not valid", "deploy", "min_health", NULL, NULL);
    x = ynode_get(val, "interval");
    k = ynode_key(val, "interval");
    if (!ynode_is_null(x)) {
        long long secs;
        /* Quirk fixed: an integer is a number of seconds (the original crashed on it). */
        int ok = (is_scalar(x, YS_INT) && x->ival >= 0) ||
                 (is_scalar(x, YS_STR) && spec_parse_interval(x->text, &secs, NULL) == ST_OK);
        if (!ok)
            verr(v, line_of(k), "does not match regular expression", "deploy", "interval", NULL,
                 NULL);
    }
    strict_keys(v, val, fields, "deploy", NULL);
}

static void check_health_check(const struct vs *v, const struct ynode *key,
                               const struct ynode *val)
{
    static const char *const fields[] = {"protocol", "port",     "uri", "timeout",
                                         "interval", "initial_delay", NULL};
    static const char *const ints[] = {"timeout", "interval", "initial_delay"};
    const struct ynode *x, *k;

    if (!opt_type(v, key, val, T_HASH, "health_check", NULL, NULL))
        return;
    x = ynode_get(val, "protocol");
    k = ynode_key(val, "protocol");
    if (!(is_scalar(x, YS_STR) && (strcmp(x->text, "http") == 0 || strcmp(x->text, "tcp") == 0)))
        verr(v, k ? line_of(k) : line_of(key), "does not match regular expression",
             "health_check", "protocol", NULL, NULL);
    x = ynode_get(val, "port");
    k = ynode_key(val, "port");
    if (req_type(v, line_of(key), k, x, T_INT, "health_check", "port", NULL) &&
        (x->ival < 1 || x->ival > 65535))
        verr(v, line_of(k), "is not valid", "health_check", "port", NULL, NULL);
    x = ynode_get(val, "uri");
    k = ynode_key(val, "uri");
    if (!ynode_is_null(x) && !(is_scalar(x, YS_STR) && strchr(x->text, '/')))
        verr(v, line_of(k), "does not match regular expression", "health_check", "uri", NULL,
             NULL);
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        opt_type(v, ynode_key(val, ints[i]), ynode_get(val, ints[i]), T_INT, "health_check",
                 ints[i], NULL);
    strict_keys(v, val, fields, "health_check", NULL);
}

static void check_logging(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    static const char *const fields[] = {"driver", "options", NULL};
    const struct ynode *x;

    if (!opt_type(v, key, val, T_HASH, "logging", NULL, NULL))
        return;
    opt_type(v, ynode_key(val, "driver"), ynode_get(val, "driver"), T_STR, "logging", "driver",
             NULL);
    x = ynode_get(val, "options");
    if (!ynode_is_null(x) && !is_map(x))
        verr(v, line_of(ynode_key(val, "options")), "is not valid", "logging", "options", NULL,
             NULL);
    strict_keys(v, val, fields, "logging", NULL);
}

static void check_build(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    static const char *const fields[] = {"context", "dockerfile", "args", NULL};
    const struct ynode *x;

    if (ynode_is_null(val) || is_scalar(val, YS_STR))
        return;
    if (!is_map(val)) {
        verr(v, line_of(key), "build must be string or hash", "build", NULL, NULL, NULL);
        return;
    }
    req_type(v, line_of(key), ynode_key(val, "context"), ynode_get(val, "context"), T_STR,
             "build", "context", NULL);
    opt_type(v, ynode_key(val, "dockerfile"), ynode_get(val, "dockerfile"), T_STR, "build",
             "dockerfile", NULL);
    x = ynode_get(val, "args");
    if (!ynode_is_null(x) && !is_map(x) && !is_seq(x))
        verr(v, line_of(ynode_key(val, "args")), "is not valid", "build", "args", NULL, NULL);
    strict_keys(v, val, fields, "build", NULL);
}

static void check_extends(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    static const char *const fields[] = {"service", "file", "stack", NULL};

    if (ynode_is_null(val) || is_scalar(val, YS_STR))
        return;
    if (!is_map(val)) {
        verr(v, line_of(key), "extends must be string or hash", "extends", NULL, NULL, NULL);
        return;
    }
    req_type(v, line_of(key), ynode_key(val, "service"), ynode_get(val, "service"), T_STR,
             "extends", "service", NULL);
    opt_type(v, ynode_key(val, "file"), ynode_get(val, "file"), T_STR, "extends", "file", NULL);
    if (ynode_key(val, "stack"))
        verr(v, line_of(ynode_key(val, "stack")),
             "extending a service of a registry stack is not supported (use file:)", "extends",
             "stack", NULL, NULL);
    strict_keys(v, val, fields, "extends", NULL);
}

static void check_command(const struct vs *v, const struct ynode *key, const struct ynode *val)
{
    struct err e = ERR_INIT;
    json_t *words;

    if (!opt_type(v, key, val, T_STR, "command", NULL, NULL))
        return;
    words = sf_shell_split(val->text, &e);
    if (!words)
        verr(v, line_of(key), e.msg, "command", NULL, NULL, NULL);
    json_decref(words);
}

static void check_memory(const struct vs *v, const struct ynode *key, const struct ynode *val,
                         const char *name)
{
    long long b;

    if (opt_type(v, key, val, T_STR, name, NULL, NULL) &&
        spec_parse_memory(val->text, &b, NULL) != ST_OK)
        verr(v, line_of(key), "is not valid", name, NULL, NULL, NULL);
}

static void check_one_of(const struct vs *v, const struct ynode *key, const struct ynode *val,
                         const char *name, const char *a, const char *b)
{
    if (!ynode_is_null(val) &&
        !(is_scalar(val, YS_STR) && (strcmp(val->text, a) == 0 || strcmp(val->text, b) == 0)))
        verr(v, line_of(key), "value from list required", name, NULL, NULL, NULL);
}

enum kind {
    K_STR,
    K_INT,
    K_FLOAT,
    K_BOOL,
    K_ARRAY,
    K_STRLIST,
    K_CUSTOM,
};

static const struct {
    const char *name;
    enum kind kind;
} service_keys[] = {
    {"image", K_STR},
    {"build", K_CUSTOM},
    {"command", K_CUSTOM},
    {"entrypoint", K_STR},
    {"environment", K_CUSTOM},
    {"env_file", K_CUSTOM},
    {"links", K_CUSTOM},
    {"depends_on", K_CUSTOM},
    {"external_links", K_CUSTOM},
    {"ports", K_CUSTOM},
    {"volumes", K_CUSTOM},
    {"volumes_from", K_STRLIST},
    {"affinity", K_CUSTOM},
    {"instances", K_INT},
    {"stateful", K_BOOL},
    {"deploy", K_CUSTOM},
    {"health_check", K_CUSTOM},
    {"hooks", K_CUSTOM},
    {"secrets", K_CUSTOM},
    {"certificates", K_CUSTOM},
    {"logging", K_CUSTOM},
    {"network_mode", K_CUSTOM},
    {"pid", K_STR},
    {"privileged", K_BOOL},
    {"user", K_STR},
    {"cap_add", K_STRLIST},
    {"cap_drop", K_STRLIST},
    {"mem_limit", K_CUSTOM},
    {"mem_swaplimit", K_CUSTOM},
    {"memswap_limit", K_CUSTOM},
    {"shm_size", K_CUSTOM},
    {"cpus", K_FLOAT},
    {"cpu_shares", K_INT},
    {"stop_signal", K_CUSTOM},
    {"stop_grace_period", K_CUSTOM},
    {"read_only", K_BOOL},
    {"extends", K_CUSTOM},
    {"only_if", K_CUSTOM},
    {"skip_if", K_CUSTOM},
};

static void check_custom(const struct vs *v, const char *name, const struct ynode *key,
                         const struct ynode *val)
{
    static const char *const secret_fields[] = {"secret", "name", "type", NULL};
    static const char *const cert_fields[] = {"subject", "name", "type", NULL};

    if (strcmp(name, "build") == 0)
        check_build(v, key, val);
    else if (strcmp(name, "command") == 0)
        check_command(v, key, val);
    else if (strcmp(name, "environment") == 0)
        ynode_is_null(val) ? (void)0 : check_environment(v, key, val);
    else if (strcmp(name, "env_file") == 0)
        ynode_is_null(val) ? (void)0 : check_env_file(v, key, val);
    else if (strcmp(name, "links") == 0)
        check_links(v, key, val, "links", 1);
    else if (strcmp(name, "external_links") == 0)
        ynode_is_null(val) ? (void)0 : check_links(v, key, val, "external_links", 0);
    else if (strcmp(name, "depends_on") == 0)
        check_depends_on(v, key, val);
    else if (strcmp(name, "ports") == 0)
        check_ports(v, key, val);
    else if (strcmp(name, "volumes") == 0)
        check_volumes(v, key, val);
    else if (strcmp(name, "affinity") == 0)
        check_affinity(v, key, val);
    else if (strcmp(name, "deploy") == 0)
        check_deploy(v, key, val);
    else if (strcmp(name, "health_check") == 0)
        check_health_check(v, key, val);
    else if (strcmp(name, "hooks") == 0)
        check_hooks(v, key, val);
    else if (strcmp(name, "secrets") == 0)
        check_item_list(v, key, val, "secrets", secret_fields);
    else if (strcmp(name, "certificates") == 0)
        check_item_list(v, key, val, "certificates", cert_fields);
    else if (strcmp(name, "logging") == 0)
        check_logging(v, key, val);
    else if (strcmp(name, "network_mode") == 0)
        check_one_of(v, key, val, "network_mode", "host", "bridge");
    else if (strcmp(name, "mem_limit") == 0 || strcmp(name, "mem_swaplimit") == 0 ||
             strcmp(name, "memswap_limit") == 0 || strcmp(name, "shm_size") == 0)
        check_memory(v, key, val, name);
    else if (strcmp(name, "stop_signal") == 0) {
        if (opt_type(v, key, val, T_STR, name, NULL, NULL) && !spec_valid_stop_signal(val->text))
            verr(v, line_of(key), "is not valid", name, NULL, NULL, NULL);
    } else if (strcmp(name, "stop_grace_period") == 0) {
        double secs;
        if (!ynode_is_null(val) &&
            !(is_scalar(val, YS_STR) && spec_parse_duration(val->text, &secs, NULL) == ST_OK))
            verr(v, line_of(key), "does not match regular expression", name, NULL, NULL, NULL);
    } else if (strcmp(name, "extends") == 0)
        check_extends(v, key, val);
    else if (strcmp(name, "only_if") == 0 || strcmp(name, "skip_if") == 0)
        check_condition(v, key, val, name);
    else
        BUG_ON(1);
}

/* Lower-case letters, digits and '-', not starting with '-' (name notifications). */
static int dns_name_ok(const char *s, size_t len)
{
    if (len == 0 || s[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return 0;
    return 1;
}

static void check_service(struct sf_ctx *cx, const struct ynode *doc, const struct ynode *key,
                          const struct ynode *opts)
{
    struct vs v = {cx, doc, "services", key_text(key)};

    if (!dns_name_ok(v.k1, strlen(v.k1)))
        sf_finding(cx->notes, cx->base, line_of(key),
                   "A service name should only include a-z, 0-9 and - characters and not start "
                   "with the - character",
                   "services", v.k1, "name", NULL);
    if (!is_map(opts)) {
        char *m = xasprintf("must be a mapping not %s", class_of(opts));
        verr(&v, line_of(key), m, "options", NULL, NULL, NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < opts->len; i++) {
        const char *name = key_text(opts->keys[i]);
        const struct ynode *k = opts->keys[i], *val = opts->vals[i];
        size_t j;

        for (j = 0; j < ARRAY_SIZE(service_keys); j++)
            if (strcmp(service_keys[j].name, name) == 0)
                break;
        if (j == ARRAY_SIZE(service_keys)) {
            verr(&v, line_of(k), "key not expected", name, NULL, NULL, NULL);
            continue;
        }
        switch (service_keys[j].kind) {
        case K_STR: opt_type(&v, k, val, T_STR, name, NULL, NULL); break;
        case K_INT: opt_type(&v, k, val, T_INT, name, NULL, NULL); break;
        case K_FLOAT: opt_type(&v, k, val, T_FLOAT, name, NULL, NULL); break;
        case K_BOOL: opt_type(&v, k, val, T_BOOL, name, NULL, NULL); break;
        case K_ARRAY: opt_type(&v, k, val, T_ARRAY, name, NULL, NULL); break;
        case K_STRLIST: check_string_list(&v, k, val, name); break;
        case K_CUSTOM: check_custom(&v, name, k, val); break;
        }
    }
}

/* ---- top level ------------------------------------------------------------------------ */

static const char *const known_top[] = {"services", "errors", "volumes", "networks",
                                        "variables", "stack", "version", "data",
                                        "description", "expose", "labels", "meta",
                                        "depends", NULL};

static void check_top_volumes(struct sf_ctx *cx, const struct ynode *key,
                              const struct ynode *vols)
{
    struct vs v = {cx, NULL, "volumes", NULL};

    if (ynode_is_null(vols))
        return;
    if (!is_map(vols)) {
        char *m = xasprintf("must be a mapping, not %s", class_of(vols));
        sf_finding(cx->errors, cx->base, line_of(key), m, "volumes", NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < vols->len; i++) {
        const char *name = key_text(vols->keys[i]);
        const struct ynode *o = vols->vals[i], *ext;
        v.k1 = name;
        if (!is_map(o)) {
            char *m = xasprintf("must be a mapping, not %s", class_of(o));
            verr(&v, line_of(vols->keys[i]), m, "options", NULL, NULL, NULL);
            free(m);
            continue;
        }
        ext = ynode_get(o, "external");
        if (!ynode_is_null(ext) &&
            !(is_scalar(ext, YS_BOOL) && ext->bval) &&
            !(is_map(ext) && is_scalar(ynode_get(ext, "name"), YS_STR)))
            verr(&v, line_of(ynode_key(o, "external")), "is not valid", "external", NULL, NULL,
                 NULL);
        for (size_t j = 0; j < o->len; j++)
            if (strcmp(key_text(o->keys[j]), "external") != 0)
                verr(&v, line_of(o->keys[j]), "key not expected", key_text(o->keys[j]), NULL,
                     NULL, NULL);
    }
}

static void check_depends(struct sf_ctx *cx, const struct ynode *doc, const struct ynode *key,
                          const struct ynode *deps)
{
    static const char *const fields[] = {"stack", "variables", NULL};
    const struct ynode *services = ynode_get(doc, "services");
    struct vs v = {cx, doc, "depends", NULL};

    if (ynode_is_null(deps))
        return;
    if (!is_map(deps)) {
        char *m = xasprintf("Must be a mapping, not %s", class_of(deps));
        sf_finding(cx->errors, cx->base, line_of(key), m, "depends", NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < deps->len; i++) {
        const char *name = key_text(deps->keys[i]);
        const struct ynode *d = deps->vals[i], *vars;
        v.k1 = name;
        if (is_map(services) && ynode_key(services, name))
            verr(&v, line_of(deps->keys[i]), "is defined both as service and dependency name",
                 NULL, NULL, NULL, NULL);
        if (!is_map(d)) {
            verr(&v, line_of(deps->keys[i]), "hash required", NULL, NULL, NULL, NULL);
            continue;
        }
        req_type(&v, line_of(deps->keys[i]), ynode_key(d, "stack"), ynode_get(d, "stack"),
                 T_STR, "stack", NULL, NULL);
        vars = ynode_get(d, "variables");
        if (!ynode_is_null(vars) && !is_map(vars))
            verr(&v, line_of(ynode_key(d, "variables")), "is not valid", "variables", NULL,
                 NULL, NULL);
        strict_keys(&v, d, fields, NULL, NULL);
    }
}

static void check_labels(struct sf_ctx *cx, const struct ynode *key, const struct ynode *labels)
{
    if (ynode_is_null(labels))
        return;
    if (!is_seq(labels)) {
        sf_finding(cx->errors, cx->base, line_of(key), "array required", "labels", NULL);
        return;
    }
    for (size_t i = 0; i < labels->len; i++) {
        const struct ynode *it = labels->vals[i];
        const char *s = is_scalar(it, YS_STR) ? it->text : NULL;
        size_t n = 0;
        /* master regex ^[a-z0-9.-]+= */
        while (s && (islower((unsigned char)s[n]) || isdigit((unsigned char)s[n]) ||
                     s[n] == '.' || s[n] == '-'))
            n++;
        if (!s || n == 0 || s[n] != '=')
            sf_finding(cx->errors, cx->base, line_of(it), "is not valid", "labels", NULL);
    }
}

static void check_stack_name(struct sf_ctx *cx, const struct ynode *key, const struct ynode *st,
                             int is_extends_file)
{
    const char *s, *name, *colon;

    if (!key) {
        if (!is_extends_file)
            sf_finding(cx->errors, cx->base, 0, "Required field missing", "stack", NULL);
        return;
    }
    if (!is_scalar(st, YS_STR)) {
        sf_finding(cx->errors, cx->base, line_of(key), "string required", "stack", NULL);
        return;
    }
    s = st->text;
    name = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
    colon = strchr(name, ':');
    if (!dns_name_ok(name, colon ? (size_t)(colon - name) : strlen(name)))
        sf_finding(cx->notes, cx->base, line_of(key),
                   "A stack name should only include a-z, 0-9 and - characters and not start "
                   "with the - character",
                   "stack", NULL);
}

void sf_schema_validate(struct sf_ctx *cx, const struct ynode *doc, int is_extends_file)
{
    const struct ynode *services, *vols, *x;

    if (!is_map(doc)) {
        char *m = xasprintf("must be a mapping, not %s", class_of(doc));
        sf_finding(cx->errors, cx->base, line_of(doc), m, "file", NULL);
        free(m);
        return;
    }
    for (size_t i = 0; i < doc->len; i++) {
        const char *k = key_text(doc->keys[i]);
        int known = 0;
        for (const char *const *p = known_top; *p; p++)
            if (strcmp(*p, k) == 0)
                known = 1;
        if (!known)
            sf_finding(cx->notes, cx->base, line_of(doc->keys[i]), "unknown top level key", k,
                       NULL);
    }
    check_stack_name(cx, ynode_key(doc, "stack"), ynode_get(doc, "stack"), is_extends_file);

    x = ynode_get(doc, "version");
    if (x && x->kind != YN_SCALAR)
        sf_finding(cx->errors, cx->base, line_of(ynode_key(doc, "version")), "string required",
                   "version", NULL);
    x = ynode_get(doc, "expose");
    if (!ynode_is_null(x) && !is_scalar(x, YS_STR))
        sf_finding(cx->errors, cx->base, line_of(ynode_key(doc, "expose")), "string required",
                   "expose", NULL);
    x = ynode_get(doc, "meta");
    if (!ynode_is_null(x) && !is_map(x))
        sf_finding(cx->errors, cx->base, line_of(ynode_key(doc, "meta")), "hash required",
                   "meta", NULL);
    check_labels(cx, ynode_key(doc, "labels"), ynode_get(doc, "labels"));
    check_depends(cx, doc, ynode_key(doc, "depends"), ynode_get(doc, "depends"));

    services = ynode_get(doc, "services");
    if (!ynode_key(doc, "services")) {
        sf_finding(cx->notes, cx->base, 0, "does not define any services", "file", NULL);
    } else if (is_map(services)) {
        for (size_t i = 0; i < services->len; i++)
            check_service(cx, doc, services->keys[i], services->vals[i]);
    } else if (!ynode_is_null(services)) {
        char *m = xasprintf("must be a mapping, not %s", class_of(services));
        sf_finding(cx->errors, cx->base, line_of(ynode_key(doc, "services")), m, "services",
                   NULL);
        free(m);
    }

    vols = ynode_get(doc, "volumes");
    check_top_volumes(cx, ynode_key(doc, "volumes"), vols);

    if (ynode_key(doc, "networks"))
        sf_finding(cx->notes, cx->base, line_of(ynode_key(doc, "networks")),
                   "Kontena does not support multiple networks yet. You can reference services "
                   "with Kontena's internal DNS (service_name.kontena.local)",
                   "networks", NULL);

    if (!((is_map(vols) && vols->len) || (is_map(services) && services->len)))
        sf_finding(cx->errors, cx->base, 0, "does not list any services or volumes", "file",
                   NULL);
}
