/* cli/stackfile/convert.c -- from a valid interpolated document to the master's JSON
 * (reference/stack-file.md §4, §4.4 extends, §4.5 only_if/skip_if, §11).
 *
 * Each service is first normalised in the context of the file it was written in (environment
 * list/map and env_file → one "K=V" list, build → {context (absolute), dockerfile, args
 * (mapping)}); extends parents are normalised in their own file and merged under the child
 * before the single conversion to master fields, so that every key is inherited (the original
 * dropped command, mem_limit, deploy and logging: fixed).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/internal.h"
#include "common/buf.h"
#include "common/specparse.h"
#include "common/xmalloc.h"
#include "common/banned.h"

#define EXTENDS_MAX_DEPTH 16
#define ENV_FILE_MAX (1024 * 1024)

/* A file named by extends.file, loaded and validated once. */
struct xfile {
    char *key; /* the path as asked for */
    char *abs, *base, *dir;
    struct ynode *doc;
    struct sf_ctx cx;
    int invalid; /* its schema validation found errors */
};

struct conv {
    struct sf_ctx *cx;
    json_t *values; /* vars_values() or {} */
    struct xfile *files;
    size_t nfiles;
};

/* ---- shell words -------------------------------------------------------------------- */

json_t *sf_shell_split(const char *s, struct err *e)
{
    json_t *words = json_array();
    struct buf w = BUF_INIT;
    int in_word = 0;
    const char *p = s;

#define PUT(c)                                                                                     \
    do {                                                                                           \
        char ch_ = (c);                                                                            \
        if (buf_append(&w, &ch_, 1) != ST_OK)                                                      \
            BUG_ON(1);                                                                             \
    } while (0)

    while (*p) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
            if (in_word) {
                json_array_append_new(words, json_stringn(w.ptr ? w.ptr : "", w.len));
                buf_reset(&w);
                in_word = 0;
            }
            p++;
            continue;
        }
        in_word = 1;
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                err_set(e, ST_INVALID, "unmatched single quote in '%s'", s);
                goto fail;
            }
            if (buf_append(&w, p + 1, (size_t)(end - p - 1)) != ST_OK)
                BUG_ON(1);
            p = end + 1;
        } else if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1] && strchr("$`\"\\\n", p[1])) {
                    if (p[1] != '\n')
                        PUT(p[1]);
                    p += 2;
                } else {
                    PUT(*p++);
                }
            }
            if (*p != '"') {
                err_set(e, ST_INVALID, "unmatched double quote in '%s'", s);
                goto fail;
            }
            p++;
        } else if (*p == '\\') {
            if (p[1] == '\0') {
                PUT('\\');
                p++;
            } else {
                if (p[1] != '\n')
                    PUT(p[1]);
                p += 2;
            }
        } else {
            PUT(*p++);
        }
    }
    if (in_word)
        json_array_append_new(words, json_stringn(w.ptr ? w.ptr : "", w.len));
    buf_release(&w);
    return words;
fail:
    buf_release(&w);
    json_decref(words);
    return NULL;
#undef PUT
}

/* ---- helpers -------------------------------------------------------------------------- */

static int is_map(const struct ynode *n)
{
    return n && n->kind == YN_MAP;
}

static int is_seq(const struct ynode *n)
{
    return n && n->kind == YN_SEQ;
}

static int is_str(const struct ynode *n)
{
    return n && n->kind == YN_SCALAR && n->stype == YS_STR;
}

static char *path_join(const char *dir, const char *p)
{
    if (p[0] == '/' || !dir || !*dir)
        return xstrdup(p);
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (strcmp(p, ".") == 0 || *p == '\0')
        return xstrdup(dir);
    return xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", p);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Length of the KEY part of "KEY=VALUE" (the whole string when there is no '='). */
static size_t env_key_len(const char *s)
{
    const char *eq = strchr(s, '=');
    return eq ? (size_t)(eq - s) : strlen(s);
}

static int env_has_key(const json_t *list, const char *entry)
{
    size_t i, n = env_key_len(entry);
    json_t *x;

    json_array_foreach(list, i, x) {
        const char *s = json_string_value(x);
        if (s && env_key_len(s) == n && strncmp(s, entry, n) == 0)
            return 1;
    }
    return 0;
}

/* Append entry unless its key is already there (first one wins). */
static void env_add(json_t *list, const char *entry)
{
    if (!env_has_key(list, entry))
        json_array_append_new(list, json_string(entry));
}

static char *scalar_text(const struct ynode *n)
{
    if (ynode_is_null(n))
        return xstrdup("");
    if (n->stype == YS_INT)
        return xasprintf("%lld", n->ival);
    if (n->stype == YS_BOOL)
        return xstrdup(n->bval ? "true" : "false");
    return xstrdup(n->text ? n->text : "");
}

static enum status read_env_file(const char *dir, const char *name, json_t *env, struct err *e)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t n;
    enum status st = ST_OK;

    if (!f) {
        st = err_set(e, ST_IO, "cannot read env_file '%s': %s", path, strerror(errno));
        goto out;
    }
    while ((n = getline(&line, &cap, f)) != -1) {
        char *s = line, *end;
        total += (size_t)n;
        if (total > ENV_FILE_MAX) {
            st = err_set(e, ST_INVALID, "env_file '%s' is larger than %d bytes", path,
                         ENV_FILE_MAX);
            goto out;
        }
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
                           end[-1] == '\n'))
            *--end = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        env_add(env, s);
    }
    if (ferror(f))
        st = err_set(e, ST_IO, "cannot read env_file '%s': %s", path, strerror(errno));
out:
    if (f)
        fclose(f);
    free(line);
    free(path);
    return st;
}

static const char *host_getenv(const struct sf_ctx *cx, const char *name)
{
    const struct vars_host *h = cx->opts ? cx->opts->host : NULL;

    if (h && h->getenv)
        return h->getenv(h->ctx, name);
    return getenv(name);
}

/* The service's options as JSON, with environment/env_file and build made independent of
 * the file they were written in. */
static enum status normalize(const struct sf_ctx *fcx, const struct ynode *svc, json_t **out,
                             struct err *e)
{
    json_t *o = ynode_to_json(svc);
    const struct ynode *env = ynode_get(svc, "environment");
    const struct ynode *files = ynode_get(svc, "env_file");
    const struct ynode *build = ynode_get(svc, "build");
    enum status st = ST_OK;

    *out = NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    if (!ynode_is_null(env) || !ynode_is_null(files)) {
        json_t *list = json_array();
        if (is_seq(env)) {
            for (size_t i = 0; i < env->len; i++)
                if (is_str(env->vals[i]))
                    env_add(list, env->vals[i]->text);
        } else if (is_map(env)) {
            for (size_t i = 0; i < env->len; i++) {
                char *v = scalar_text(env->vals[i]);
                char *entry = xasprintf("%s=%s", env->keys[i]->text, v);
                env_add(list, entry);
                free(entry);
                free(v);
            }
        }
        if (is_str(files)) {
            st = read_env_file(fcx->dir, files->text, list, e);
        } else if (is_seq(files)) {
            for (size_t i = 0; i < files->len && st == ST_OK; i++)
                if (is_str(files->vals[i]))
                    st = read_env_file(fcx->dir, files->vals[i]->text, list, e);
        }
        json_object_set_new(o, "environment", list);
        json_object_del(o, "env_file");
        if (st != ST_OK) {
            json_decref(o);
            return st;
        }
    }
    if (!ynode_is_null(build)) {
        json_t *b = json_object();
        const struct ynode *ctx = is_str(build) ? build : ynode_get(build, "context");
        const struct ynode *df = ynode_get(build, "dockerfile");
        const struct ynode *args = ynode_get(build, "args");
        char *abs = path_join(fcx->dir, is_str(ctx) ? ctx->text : ".");

        json_object_set_new(b, "context", json_string(abs));
        free(abs);
        if (is_str(df))
            json_object_set_new(b, "dockerfile", json_string(df->text));
        if (is_seq(args) || is_map(args)) {
            json_t *a = json_object();
            for (size_t i = 0; i < args->len; i++) {
                if (is_seq(args)) {
                    const char *s = is_str(args->vals[i]) ? args->vals[i]->text : "";
                    size_t kl = env_key_len(s);
                    char *k = xstrndup(s, kl);
                    if (*k)
                        json_object_set_new(a, k, json_string(s[kl] ? s + kl + 1 : ""));
                    free(k);
                } else if (ynode_is_null(args->vals[i])) {
                    const char *v = host_getenv(fcx, args->keys[i]->text);
                    json_object_set_new(a, args->keys[i]->text, v ? json_string(v) : json_null());
                } else {
                    char *v = scalar_text(args->vals[i]);
                    json_object_set_new(a, args->keys[i]->text, json_string(v));
                    free(v);
                }
            }
            json_object_set_new(b, "args", a);
        }
        json_object_set_new(o, "build", b);
    }
    *out = o;
    return ST_OK;
}

/* child's keys over parent's (stack-file.md §4.4 merge rules). Steals neither. */
static json_t *merge(const json_t *parent, const json_t *child)
{
    json_t *r = json_deep_copy(parent);
    const char *k;
    json_t *cv;

    json_object_del(r, "only_if");
    json_object_del(r, "skip_if");
    json_object_del(r, "extends");
    json_object_foreach((json_t *)child, k, cv) {
        json_t *pv = json_object_get(r, k);
        if (strcmp(k, "environment") == 0 && json_is_array(pv) && json_is_array(cv)) {
            json_t *env = json_deep_copy(cv);
            size_t i;
            json_t *x;
            json_array_foreach(pv, i, x)
                if (json_is_string(x))
                    env_add(env, json_string_value(x));
            json_object_set_new(r, k, env);
        } else if (strcmp(k, "secrets") == 0 && json_is_array(pv) && json_is_array(cv)) {
            json_t *list = json_deep_copy(cv);
            size_t i, j;
            json_t *x, *y;
            json_array_foreach(pv, i, x) {
                int dup = 0;
                json_array_foreach(cv, j, y)
                    if (json_equal(json_object_get(x, "secret"), json_object_get(y, "secret")))
                        dup = 1;
                if (!dup)
                    json_array_append(list, x);
            }
            json_object_set_new(r, k, list);
        } else if (strcmp(k, "build") == 0 && json_is_object(pv) && json_is_object(cv)) {
            json_t *b = json_deep_copy(cv);
            json_t *pa = json_object_get(pv, "args"), *ca = json_object_get(cv, "args");
            if (json_is_object(pa)) {
                json_t *args = json_deep_copy(pa);
                if (json_is_object(ca))
                    json_object_update(args, ca);
                json_object_set_new(b, "args", args);
            }
            json_object_set_new(r, k, b);
        } else {
            json_object_set(r, k, cv);
        }
    }
    return r;
}

/* Load (once) a file named by extends.file and validate it; NULL with e set when it cannot
 * be read. */
static enum status load_xfile(struct conv *c, const struct sf_ctx *from, const char *name,
                              struct xfile **out, struct err *e)
{
    char *want = path_join(from->dir, name), *abs = NULL;
    struct ynode *doc = NULL;
    enum status st;

    *out = NULL;
    for (size_t i = 0; i < c->nfiles; i++)
        if (strcmp(c->files[i].key, want) == 0) {
            *out = &c->files[i];
            free(want);
            return ST_OK;
        }
    if (!c->cx->load_doc) {
        st = err_set(e, ST_INVALID, "cannot read extends file '%s': no loader", want);
        free(want);
        return st;
    }
    st = c->cx->load_doc(c->cx, want, &doc, &abs, e);
    if (st != ST_OK) {
        free(want);
        return st;
    }
    c->files = xrealloc(c->files, (c->nfiles + 1) * sizeof(*c->files));
    struct xfile *x = &c->files[c->nfiles++];
    memset(x, 0, sizeof(*x));
    x->key = want;
    x->abs = abs ? abs : xstrdup(want);
    x->dir = dir_of(x->abs);
    x->base = xstrdup(base_of(x->abs));
    x->doc = doc;
    x->cx = *c->cx;
    x->cx.path = x->abs;
    x->cx.base = x->base;
    x->cx.dir = x->dir;
    size_t before = json_array_size(c->cx->errors);
    sf_schema_validate(&x->cx, doc, 1);
    x->invalid = json_array_size(c->cx->errors) > before;
    *out = x;
    return ST_OK;
}

/* The merged, normalised options of service name of file (fcx, doc); *out NULL (and ST_OK)
 * when an extended file had schema errors (they are reported). */
static enum status resolve(struct conv *c, const struct sf_ctx *fcx, const struct ynode *doc,
                           const char *name, int depth, json_t **out, struct err *e)
{
    const struct ynode *services = ynode_get(doc, "services");
    const struct ynode *svc = ynode_get(services, name), *ext;
    const struct sf_ctx *pcx = fcx;
    const struct ynode *pdoc = doc;
    const char *pname = NULL;
    json_t *self = NULL, *parent = NULL;
    enum status st;

    *out = NULL;
    if (!is_map(svc))
        return err_set(e, ST_NOTFOUND, "Service '%s' not found in %s", name, fcx->base);
    if (depth > EXTENDS_MAX_DEPTH)
        return err_set(e, ST_INVALID, "extends of service '%s' in %s nests too deep (a cycle?)",
                       name, fcx->base);
    st = normalize(fcx, svc, &self, e);
    if (st != ST_OK)
        return st;
    ext = ynode_get(svc, "extends");
    if (ynode_is_null(ext)) {
        *out = self;
        return ST_OK;
    }
    if (is_str(ext)) {
        pname = ext->text;
    } else {
        const struct ynode *file = ynode_get(ext, "file");
        pname = is_str(ynode_get(ext, "service")) ? ynode_get(ext, "service")->text : "";
        if (ynode_get(ext, "stack")) {
            st = err_set(e, ST_INVALID,
                         "service '%s': extending a service of a registry stack is not supported",
                         name);
            goto out;
        }
        if (is_str(file)) {
            struct xfile *x;
            st = load_xfile(c, fcx, file->text, &x, e);
            if (st != ST_OK)
                goto out;
            if (x->invalid)
                goto out; /* reported under that file's name */
            pcx = &x->cx;
            pdoc = x->doc;
        }
    }
    if (pcx == fcx && strcmp(pname, name) == 0) {
        st = err_set(e, ST_INVALID, "service '%s' in %s extends itself", name, fcx->base);
        goto out;
    }
    st = resolve(c, pcx, pdoc, pname, depth + 1, &parent, e);
    if (st != ST_OK || !parent)
        goto out;
    *out = merge(parent, self);
    json_object_del(*out, "extends");
out:
    json_decref(self);
    json_decref(parent);
    return st;
}

/* ---- conditions (§4.5) ---------------------------------------------------------------- */

static int cond_true(const struct conv *c, const char *var)
{
    return c->cx->vars && vars_truthy(c->cx->vars, var);
}

/* only_if: all conditions true. skip_if (any = 1): any condition true. */
static int conditions(const struct conv *c, const struct ynode *cond, int any)
{
    if (is_str(cond))
        return cond_true(c, cond->text);
    if (is_seq(cond) || is_map(cond)) {
        for (size_t i = 0; i < cond->len; i++) {
            int t;
            if (is_seq(cond)) {
                t = is_str(cond->vals[i]) && cond_true(c, cond->vals[i]->text);
            } else {
                json_t *want = ynode_to_json(cond->vals[i]);
                json_t *have = json_object_get(c->values, cond->keys[i]->text);
                t = json_equal(have ? have : json_null(), want);
                json_decref(want);
            }
            if (any && t)
                return 1;
            if (!any && !t)
                return 0;
        }
        return !any;
    }
    return !any; /* null: no condition */
}

static int service_skipped(const struct conv *c, const struct ynode *svc)
{
    const struct ynode *only = ynode_get(svc, "only_if"), *skip = ynode_get(svc, "skip_if");

    if (!ynode_is_null(only) && !conditions(c, only, 0))
        return 1;
    if (!ynode_is_null(skip) && conditions(c, skip, 1))
        return 1;
    return 0;
}

/* ---- master fields (§11) -------------------------------------------------------------- */

static json_t *parse_links(const json_t *list, json_t *into)
{
    size_t i;
    json_t *x;

    json_array_foreach(list, i, x) {
        json_t *link = NULL;
        if (json_is_string(x)) {
            const char *s = json_string_value(x), *colon = strchr(s, ':');
            char *n = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
            link = json_pack("{s:s, s:s}", "name", n, "alias", colon ? colon + 1 : n);
            free(n);
        } else if (json_is_object(x) && json_is_string(json_object_get(x, "name"))) {
            json_t *a = json_object_get(x, "alias");
            link = json_pack("{s:O, s:O}", "name", json_object_get(x, "name"), "alias",
                             json_is_string(a) ? a : json_object_get(x, "name"));
        }
        if (!link)
            continue;
        size_t j;
        json_t *y;
        int dup = 0;
        json_array_foreach(into, j, y)
            if (json_equal(y, link))
                dup = 1;
        if (dup)
            json_decref(link);
        else
            json_array_append_new(into, link);
    }
    return into;
}

static json_t *copy_or(const json_t *o, const char *k, json_t *dflt)
{
    json_t *v = json_object_get(o, k);

    if (v && !json_is_null(v)) {
        json_decref(dflt);
        return json_deep_copy(v);
    }
    return dflt;
}

static void set_if(json_t *m, const json_t *o, const char *from, const char *to)
{
    json_t *v = json_object_get(o, from);

    if (v && !json_is_null(v))
        json_object_set_new(m, to, json_deep_copy(v));
}

static void set_memory(json_t *m, const json_t *o, const char *from, const char *to)
{
    const char *s = json_string_value(json_object_get(o, from));
    long long b;

    if (s && spec_parse_memory(s, &b, NULL) == ST_OK)
        json_object_set_new(m, to, json_integer(b));
}

static json_t *to_master(struct conv *c, const char *name, const json_t *o, int line)
{
    json_t *m = json_object(), *links, *ports, *v;
    const char *image = json_string_value(json_object_get(o, "image"));
    const json_t *deploy = json_object_get(o, "deploy");
    const json_t *logging = json_object_get(o, "logging");
    const json_t *hc = json_object_get(o, "health_check");
    size_t i;

    json_object_set_new(m, "name", json_string(name));
    if (!image || !*image) {
        sf_finding(c->cx->errors, c->cx->base, line, "image is missing", "services", name,
                   "image", NULL);
        json_object_set_new(m, "image", json_null());
    } else if (strchr(image, ':')) {
        json_object_set_new(m, "image", json_string(image));
    } else {
        json_object_set_new(m, "image", json_pack("s++", image, ":", "latest"));
    }
    json_object_set_new(m, "instances", copy_or(o, "instances", json_null()));
    json_object_set_new(m, "env", copy_or(o, "environment", json_null()));
    links = parse_links(json_object_get(o, "links"), json_array());
    v = json_object_get(o, "depends_on");
    if (json_is_array(v)) {
        json_t *deps = json_array(), *x;
        json_array_foreach(v, i, x)
            if (json_is_string(x))
                json_array_append_new(deps, json_pack("{s:O, s:O}", "name", x, "alias", x));
        parse_links(deps, links);
        json_decref(deps);
    }
    json_object_set_new(m, "links", links);
    json_object_set_new(m, "external_links",
                        parse_links(json_object_get(o, "external_links"), json_array()));
    ports = json_array();
    json_array_foreach(json_object_get(o, "ports"), i, v) {
        struct spec_port p;
        if (json_is_string(v) && spec_parse_port(json_string_value(v), &p, NULL) == ST_OK)
            json_array_append_new(ports, json_pack("{s:s, s:i, s:i, s:s}", "ip", p.ip,
                                                   "node_port", p.node_port, "container_port",
                                                   p.container_port, "protocol", p.protocol));
    }
    json_object_set_new(m, "ports", ports);
    json_object_set_new(m, "volumes", copy_or(o, "volumes", json_array()));
    json_object_set_new(m, "volumes_from", copy_or(o, "volumes_from", json_array()));
    v = json_object_get(o, "command");
    if (json_is_string(v)) {
        json_t *words = sf_shell_split(json_string_value(v), NULL);
        if (words)
            json_object_set_new(m, "cmd", words);
    }
    set_if(m, o, "entrypoint", "entrypoint");
    json_object_set_new(m, "affinity", copy_or(o, "affinity", json_array()));
    set_if(m, o, "user", "user");
    json_object_set_new(m, "stateful", json_boolean(json_is_true(json_object_get(o, "stateful"))));
    set_if(m, o, "privileged", "privileged");
    set_if(m, o, "cap_add", "cap_add");
    set_if(m, o, "cap_drop", "cap_drop");
    set_if(m, o, "network_mode", "net");
    set_if(m, o, "pid", "pid");
    set_memory(m, o, "mem_limit", "memory");
    /* Quirk fixed: memswap_limit (the documented name) and mem_swaplimit both set the swap;
     * memswap_limit wins when both are given. */
    set_memory(m, o, "mem_swaplimit", "memory_swap");
    set_memory(m, o, "memswap_limit", "memory_swap");
    set_memory(m, o, "shm_size", "shm_size");
    set_if(m, o, "cpus", "cpus");
    set_if(m, o, "cpu_shares", "cpu_shares");
    json_object_set_new(m, "log_driver", copy_or(logging, "driver", json_null()));
    json_object_set_new(m, "log_opts", copy_or(logging, "options", json_null()));
    set_if(m, deploy, "strategy", "strategy");
    {
        json_t *d = json_object(), *iv = json_object_get(deploy, "interval");
        long long secs = 0;
        json_object_set_new(d, "wait_for_port", copy_or(deploy, "wait_for_port", json_null()));
        json_object_set_new(d, "min_health", copy_or(deploy, "min_health", json_null()));
        if (json_is_integer(iv))
            secs = json_integer_value(iv);
        else if (json_is_string(iv) &&
                 spec_parse_interval(json_string_value(iv), &secs, NULL) != ST_OK)
            secs = 0;
        json_object_set_new(d, "interval", secs > 0 ? json_integer(secs) : json_null());
        json_object_set_new(m, "deploy_opts", d);
    }
    json_object_set_new(m, "hooks", copy_or(o, "hooks", json_object()));
    set_if(m, o, "secrets", "secrets");
    set_if(m, o, "certificates", "certificates");
    set_if(m, o, "build", "build");
    {
        static const char *const hk[] = {"port",     "protocol", "uri",
                                         "timeout", "interval", "initial_delay"};
        json_t *h = json_object();
        for (size_t k = 0; k < ARRAY_SIZE(hk); k++)
            json_object_set_new(h, hk[k], copy_or(hc, hk[k], json_null()));
        json_object_set_new(m, "health_check", h);
    }
    set_if(m, o, "stop_signal", "stop_signal");
    set_if(m, o, "stop_grace_period", "stop_grace_period");
    json_object_set_new(m, "read_only",
                        json_boolean(json_is_true(json_object_get(o, "read_only"))));
    return m;
}

static json_t *convert_volumes(const struct ynode *vols)
{
    json_t *out = json_array();

    if (!is_map(vols))
        return out;
    for (size_t i = 0; i < vols->len; i++) {
        const struct ynode *ext = ynode_get(vols->vals[i], "external");
        const char *name = vols->keys[i]->text;
        const char *grid_name = name;
        if (is_map(ext) && is_str(ynode_get(ext, "name")))
            grid_name = ynode_get(ext, "name")->text;
        json_array_append_new(out,
                              json_pack("{s:s, s:s}", "name", name, "external", grid_name));
    }
    return out;
}

enum status sf_convert(struct sf_ctx *cx, const struct ynode *doc, json_t *payload,
                       struct err *e)
{
    struct conv c = {cx, NULL, NULL, 0};
    const struct ynode *services = ynode_get(doc, "services");
    const struct ynode *expose = ynode_get(doc, "expose");
    json_t *out = json_array();
    enum status st = ST_OK;

    c.values = cx->vars ? vars_values(cx->vars) : json_object();
    for (size_t i = 0; is_map(services) && i < services->len; i++) {
        const char *name = services->keys[i]->text;
        json_t *o = NULL;

        if (!is_map(services->vals[i]) || service_skipped(&c, services->vals[i]))
            continue;
        st = resolve(&c, cx, doc, name, 0, &o, e);
        if (st != ST_OK)
            goto out;
        if (!o)
            continue;
        json_array_append_new(out, to_master(&c, name, o, services->keys[i]->line));
        json_decref(o);
    }
    if (is_str(expose)) {
        int found = 0;
        size_t i;
        json_t *s;
        json_array_foreach(out, i, s)
            if (strcmp(json_string_value(json_object_get(s, "name")), expose->text) == 0)
                found = 1;
        if (!found) {
            char *m = xasprintf("%s is not defined in the services array", expose->text);
            sf_finding(cx->errors, cx->base, ynode_key(doc, "expose")->line, m, "expose", NULL);
            free(m);
        }
        json_object_set_new(payload, "expose", json_string(expose->text));
    } else {
        json_object_set_new(payload, "expose", json_null());
    }
    {
        json_t *labels = ynode_get(doc, "labels") && is_seq(ynode_get(doc, "labels"))
                             ? ynode_to_json(ynode_get(doc, "labels"))
                             : json_array();
        json_object_set_new(payload, "labels", labels);
    }
    json_object_set_new(payload, "services", out);
    out = NULL;
    json_object_set_new(payload, "volumes", convert_volumes(ynode_get(doc, "volumes")));
out:
    json_decref(out);
    json_decref(c.values);
    for (size_t i = 0; i < c.nfiles; i++) {
        free(c.files[i].key);
        free(c.files[i].abs);
        free(c.files[i].base);
        free(c.files[i].dir);
        ynode_free(c.files[i].doc);
    }
    free(c.files);
    return st;
}
