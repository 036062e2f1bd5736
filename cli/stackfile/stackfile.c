/* cli/stackfile/stackfile.c -- the stack file pipeline (stack-file.md §2): raw parse, internal
 * parse for `variables:`, variables, Liquid, `${}`, `$$`, YAML, schema, conversion; `depends:`
 * children first; the install payload (§11). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/internal.h"
#include "cli/stackfile/lbcheck.h"
#include "cli/stackfile/liquid.h"
#include "cli/stackfile/pipeline.h"
#include "cli/stackfile/stackfile.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* How deep depends: may nest (a chain of distinct files; a cycle is caught before). */
#define SF_MAX_DEPENDS_DEPTH 16

/* The stack files being loaded, root first: a child that is already on it is a cycle. */
struct chain {
    const char *source;
    const struct chain *up;
    int depth;
};

struct pipeline {
    const struct stackfile_opts *o;
    struct vars *vars;
    FILE *msg;
};

/* ---------------------------------------------------------------------------------------
 * Small helpers.
 */

static const char *str_of(const struct ynode *n)
{
    return ynode_is_str(n) ? n->text : NULL;
}

/* The text of any scalar, as Ruby's to_s would give it for the version. */
static char *scalar_text(const struct ynode *n)
{
    json_t *j;
    char *s;

    if (!n || n->kind != YN_SCALAR || n->stype == YS_NULL)
        return NULL;
    if (n->stype == YS_STR)
        return xstrdup(n->text);
    j = ynode_to_json(n);
    s = sf__ruby_to_s(j);
    json_decref(j);
    return s;
}

static enum status parse_error(const char *base, struct err *inner, struct err *e)
{
    return err_set(e, ST_INVALID, "Error while parsing %s : %s", base, inner->msg);
}

/* Lookup for the internal parse: GRID, STACK, PLATFORM; every other name is declared and
 * empty (it silently becomes ""). */
static int builtin_lookup(void *arg, const char *name, const json_t **val)
{
    *val = json_object_get(arg, name);
    return 1;
}

static int vars_lookup_fn(void *arg, const char *name, const json_t **val)
{
    return vars_lookup(arg, name, val);
}

/* Liquid, `${}` with the resolved variables, `$$`, YAML: steps 5-8 of §2 for any file. */
static enum status interpolate(struct pipeline *p, const char *raw, const char *base,
                               struct ynode **doc, struct err *e)
{
    json_t *values = vars_values(p->vars);
    char *rendered = NULL, *substituted = NULL, *text = NULL;
    struct err inner = ERR_INIT;
    enum status st;

    *doc = NULL;
    st = liquid_render(raw, values, &rendered, e);
    if (st != ST_OK)
        goto out;
    st = sf__subst(rendered, base, vars_lookup_fn, p->vars, p->msg, &substituted, e);
    if (st != ST_OK)
        goto out;
    text = sf__dollars(substituted);
    st = ynode_parse(text, strlen(text), doc, &inner);
    if (st != ST_OK)
        st = parse_error(base, &inner, e);
out:
    free(text);
    free(substituted);
    free(rendered);
    json_decref(values);
    return st;
}

/* cx->load_doc: a file named by extends.file, read through the same pipeline with the same
 * variables. */
static enum status load_doc(struct sf_ctx *cx, const char *path, struct ynode **doc, char **abs,
                            struct err *e)
{
    struct pipeline *p = cx->pipeline;
    struct sf_source src;
    enum status st;

    *doc = NULL;
    *abs = NULL;
    st = sf__source_read(path, cx->dir, p->o->no_network, &src, e);
    if (st != ST_OK)
        return st;
    st = interpolate(p, src.text, src.base, doc, e);
    if (st == ST_OK) {
        *abs = src.abs;
        src.abs = NULL;
    }
    sf__source_release(&src);
    return st;
}

/* Values for a child: the depends entry's `variables:`, then every "<dep>.<rest>" of the
 * parent's values as "<rest>". New reference. */
static json_t *route_values(const json_t *entry_vars, const json_t *parent_values, const char *dep)
{
    json_t *out = json_is_object(entry_vars) ? json_deep_copy(entry_vars) : json_object();
    size_t dl = strlen(dep);
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)parent_values, k, v)
    {
        if (strncmp(k, dep, dl) == 0 && k[dl] == '.' && k[dl + 1])
            json_object_set(out, k + dl + 1, v);
    }
    return out;
}

/* variables.<name>.<key> findings from vars_run's errors. */
static void vars_findings(json_t *errors, const json_t *verrs)
{
    const char *name, *key;
    json_t *keys, *msg;

    json_object_foreach((json_t *)verrs, name, keys)
    {
        if (!json_is_object(keys)) {
            sf_finding(errors, "", 0,
                       json_is_string(keys) ? json_string_value(keys) : "is not valid", "variables",
                       name, NULL);
            continue;
        }
        json_object_foreach(keys, key, msg)
        {
            char *m = json_is_string(msg) ? xstrdup(json_string_value(msg)) : sf__ruby_to_s(msg);
            sf_finding(errors, "", 0, m, "variables", name, key, NULL);
            free(m);
        }
    }
}

static int has_finding(const json_t *list, const char *path, const char *message)
{
    size_t i;
    json_t *f;

    json_array_foreach(list, i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "path")), path) == 0 &&
            strcmp(json_string_value(json_object_get(f, "message")), message) == 0)
            return 1;
    }
    return 0;
}

/* The `dependencies` tree of the payload (null without children): one entry per loaded
 * child, {name: <dependency name>, stack: <child source>, variables: <the depends entry's
 * variables as written>, depends: <the child's own tree, when it has one>}. */
static json_t *dependency_tree(const struct stackfile *sf)
{
    struct ynode *raw = NULL;
    const struct ynode *deps;
    json_t *arr;

    if (sf->nchildren == 0)
        return json_null();
    if (ynode_parse(sf->raw, strlen(sf->raw), &raw, NULL) != ST_OK)
        raw = NULL;
    deps = ynode_get(raw, "depends");
    arr = json_array();
    for (size_t i = 0; i < sf->nchildren; i++) {
        const struct stackfile *c = sf->children[i];
        json_t *vars = ynode_to_json(ynode_get(ynode_get(deps, c->dep_name), "variables"));
        json_t *sub = dependency_tree(c);
        json_t *d =
            json_pack("{s:s, s:s, s:o}", "name", c->dep_name, "stack", c->source, "variables",
                      json_is_object(vars) ? json_incref(vars) : json_object());
        if (json_is_array(sub))
            json_object_set(d, "depends", sub);
        json_decref(sub);
        json_decref(vars);
        json_array_append_new(arr, d);
    }
    ynode_free(raw);
    return arr;
}

/* ---------------------------------------------------------------------------------------
 * One stack file.
 */

static enum status load_one(const struct stackfile_opts *o, struct sf_source *src,
                            const char *dep_name, const struct chain *up, struct stackfile **out,
                            struct err *e);

/* Load the depends: children of sf (children first, §5). deps is the raw `depends:`. */
static enum status load_children(const struct stackfile_opts *o, struct stackfile *sf,
                                 const char *dir, const json_t *deps, const struct chain *me,
                                 json_t *builtins, struct err *e)
{
    const char *dep;
    json_t *entry;

    if (!json_is_object(deps))
        return ST_OK;
    json_object_foreach((json_t *)deps, dep, entry)
    {
        char *child_name = xasprintf("%s-%s", sf->name, dep);
        const char *child_src = json_string_value(json_object_get(entry, "stack"));
        json_t *values, *defaults;
        struct stackfile *child = NULL;
        struct sf_source src;
        enum status st;

        json_object_set_new(builtins, dep, json_string(child_name));
        if (o->skip_dependencies || !child_src) {
            /* No stack: to load: the schema reports the entry. */
            free(child_name);
            continue;
        }
        st = sf__source_read(child_src, dir, o->no_network, &src, e);
        if (st != ST_OK) {
            free(child_name);
            return err_wrap(e, "dependency '%s' of %s", dep, sf->source);
        }
        for (const struct chain *c = me; c; c = c->up) {
            if (strcmp(c->source, src.abs) == 0) {
                st = err_set(e, ST_INVALID,
                             "dependency '%s' of %s: %s depends on itself (a cycle in depends:)",
                             dep, sf->source, src.abs);
                sf__source_release(&src);
                free(child_name);
                return st;
            }
        }
        if (me->depth + 1 > SF_MAX_DEPENDS_DEPTH) {
            sf__source_release(&src);
            free(child_name);
            return err_set(e, ST_INVALID,
                           "dependency '%s' of %s: depends: nested more than %d deep", dep,
                           sf->source, SF_MAX_DEPENDS_DEPTH);
        }
        values = route_values(json_object_get(entry, "variables"), o->values, dep);
        defaults = route_values(NULL, o->defaults, dep);
        struct stackfile_opts co = *o;
        co.source = child_src;
        co.name = child_name;
        co.parent_name = sf->name;
        co.values = values;
        co.defaults = defaults;
        st = load_one(&co, &src, dep, me, &child, e);
        json_decref(values);
        json_decref(defaults);
        free(child_name);
        sf__source_release(&src);
        if (st != ST_OK)
            return err_wrap(e, "dependency '%s'", dep);
        sf->children = xrealloc(sf->children, (sf->nchildren + 1) * sizeof(*sf->children));
        sf->children[sf->nchildren++] = child;
    }
    return ST_OK;
}

static enum status load_one(const struct stackfile_opts *o, struct sf_source *src,
                            const char *dep_name, const struct chain *up, struct stackfile **out,
                            struct err *e)
{
    struct stackfile *sf = xcalloc(1, sizeof(*sf));
    struct pipeline p = {o, NULL, o->msg ? o->msg : stdout};
    struct chain me = {src->abs, up, up ? up->depth + 1 : 0};
    struct ynode *raw = NULL, *internal = NULL, *doc = NULL;
    struct err inner = ERR_INIT;
    json_t *builtins = json_object(), *deps = NULL, *meta = NULL, *defs = NULL, *verrs = NULL;
    char *text = NULL, *tmp = NULL;
    const char *grid = o->grid ? o->grid : "validate";
    const char *platform = o->platform ? o->platform : o->grid ? o->grid : "validate-platform";
    enum status st;

    *out = NULL;
    sf->source = xstrdup(src->abs);
    sf->raw = xstrdup(src->text);
    sf->dep_name = dep_name ? xstrdup(dep_name) : NULL;
    sf->errors = json_array();
    sf->notifications = json_array();

    /* 1. Raw parse: stack, version, meta, depends. */
    st = ynode_parse(src->text, src->len, &raw, &inner);
    if (st != ST_OK) {
        st = parse_error(src->base, &inner, e);
        goto out;
    }
    {
        const char *stack = str_of(ynode_get(raw, "stack"));
        const char *colon = stack ? strchr(stack, ':') : NULL;
        if (stack) {
            sf->stack = colon ? xstrndup(stack, (size_t)(colon - stack)) : xstrdup(stack);
            if (colon && colon[1])
                sf->version = xstrdup(colon + 1);
        }
        if (!sf->version)
            sf->version = scalar_text(ynode_get(raw, "version"));
        if (!sf->version)
            sf->version = xstrdup("0.0.1");
        if (o->name) {
            sf->name = xstrdup(o->name);
        } else if (sf->stack) {
            const char *slash = strrchr(sf->stack, '/');
            sf->name = xstrdup(slash ? slash + 1 : sf->stack);
        } else {
            sf->name = xstrdup("");
        }
        meta = ynode_to_json(ynode_get(raw, "meta"));
        deps = ynode_to_json(ynode_get(raw, "depends"));
    }

    /* Children first: their installed names are variables of this file. */
    st = load_children(o, sf, src->dir, deps, &me, builtins, e);
    if (st != ST_OK)
        goto out;

    /* 2. Internal parse: `${}` with GRID/STACK/PLATFORM only, `$$`, YAML → `variables:`. */
    json_object_set_new(builtins, "GRID", json_string(grid));
    json_object_set_new(builtins, "STACK", json_string(sf->name));
    json_object_set_new(builtins, "PLATFORM", json_string(platform));
    if (o->parent_name)
        json_object_set_new(builtins, "PARENT_STACK", json_string(o->parent_name));
    {
        json_t *only =
            json_pack("{s:s, s:s, s:s}", "GRID", grid, "STACK", sf->name, "PLATFORM", platform);
        st = sf__subst(src->text, src->base, builtin_lookup, only, NULL, &tmp, e);
        json_decref(only);
        if (st != ST_OK)
            goto out;
        text = sf__dollars(tmp);
        FREE_AND_NULL(tmp);
        st = ynode_parse(text, strlen(text), &internal, &inner);
        if (st != ST_OK) {
            st = parse_error(src->base, &inner, e);
            goto out;
        }
        const struct ynode *vdefs = ynode_get(internal, "variables");
        if (vdefs && vdefs->kind == YN_MAP) {
            defs = ynode_to_json(vdefs);
        } else if (!ynode_is_null(vdefs)) {
            char *m = xasprintf("must be a mapping, not %s", ynode_class(vdefs));
            sf_finding(sf->errors, src->base, ynode_key(internal, "variables")->line, m,
                       "variables", NULL);
            free(m);
        }
    }

    /* 3-4. Variables. */
    p.vars = vars_new(defs, builtins, e);
    if (!p.vars) {
        st = e && e->st != ST_OK ? e->st : ST_INVALID;
        goto out;
    }
    {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)o->defaults, k, v)
        {
            if (!strchr(k, '.'))
                vars_set_default(p.vars, k, v);
        }
        json_object_foreach((json_t *)o->values, k, v)
        {
            if (!strchr(k, '.'))
                vars_set_value(p.vars, k, v);
        }
    }
    st = vars_run(p.vars, o->host, &verrs, e);
    if (st != ST_OK)
        goto out;
    vars_findings(sf->errors, verrs);

    /* 5-8. Liquid, `${}`, `$$`, YAML. */
    st = interpolate(&p, src->text, src->base, &doc, e);
    if (st != ST_OK)
        goto out;
    sf->doc = ynode_to_json(doc);

    /* 9. Schema. */
    struct sf_ctx cx = {
        .path = src->abs,
        .base = src->base,
        .dir = src->dir,
        .stack_name = sf->name,
        .vars = p.vars,
        .errors = sf->errors,
        .notes = sf->notifications,
        .opts = o,
        .load_doc = load_doc,
        .pipeline = &p,
    };
    sf_schema_validate(&cx, doc, 0); /* also: dependency names equal to service names */

    /* 10. Conversion and the last checks. */
    if (json_array_size(sf->errors) == 0) {
        json_t *payload = json_object();
        json_object_set_new(payload, "stack", sf->stack ? json_string(sf->stack) : json_null());
        json_object_set_new(payload, "version", json_string(sf->version));
        json_object_set_new(payload, "name", json_string(sf->name));
        json_object_set_new(payload, "labels", json_array());
        json_object_set_new(payload, "registry", json_string(src->registry));
        json_object_set_new(payload, "expose", json_null());
        json_object_set_new(payload, "services", json_array());
        json_object_set_new(payload, "volumes", json_array());
        json_object_set_new(payload, "dependencies", dependency_tree(sf));
        json_object_set_new(payload, "source", json_string(sf->raw));
        json_object_set_new(payload, "variables", vars_stored(p.vars));
        json_object_set_new(payload, "metadata",
                            json_is_object(meta) ? json_incref(meta) : json_object());
        json_object_set_new(payload, "parent",
                            o->parent_name ? json_pack("{s:s}", "name", o->parent_name)
                                           : json_null());
        st = sf_convert(&cx, doc, payload, e);
        if (st != ST_OK) {
            json_decref(payload);
            goto out;
        }
        if (json_array_size(sf->errors) == 0)
            sf__lb_check(payload, sf->errors, src->base);
        if (!sf->stack && !has_finding(sf->errors, "stack", "Required field missing"))
            sf_finding(sf->errors, src->abs, 0, "Required field missing", "stack", NULL);
        if (json_array_size(sf->errors) == 0)
            sf->payload = payload;
        else
            json_decref(payload);
    }
    st = ST_OK;
out:
    free(tmp);
    free(text);
    ynode_free(raw);
    ynode_free(internal);
    ynode_free(doc);
    json_decref(builtins);
    json_decref(deps);
    json_decref(meta);
    json_decref(defs);
    json_decref(verrs);
    vars_free(p.vars);
    if (st != ST_OK) {
        stackfile_free(sf);
        return st;
    }
    *out = sf;
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------
 * Public API.
 */

enum status stackfile_load(const struct stackfile_opts *o, struct stackfile **out, struct err *e)
{
    struct sf_source src;
    enum status st;

    *out = NULL;
    st = sf__source_read(o->source ? o->source : "kontena.yml", NULL, o->no_network, &src, e);
    if (st != ST_OK)
        return st;
    st = load_one(o, &src, NULL, NULL, out, e);
    sf__source_release(&src);
    return st;
}

enum status stackfile_load_text(const struct stackfile_opts *o, const char *path, const char *text,
                                size_t len, struct stackfile **out, struct err *e)
{
    struct sf_source src;
    enum status st;

    *out = NULL;
    sf__source_mem(path, text, len, &src);
    st = load_one(o, &src, NULL, NULL, out, e);
    sf__source_release(&src);
    return st;
}

void stackfile_free(struct stackfile *sf)
{
    if (!sf)
        return;
    for (size_t i = 0; i < sf->nchildren; i++)
        stackfile_free(sf->children[i]);
    free(sf->children);
    free(sf->source);
    free(sf->name);
    free(sf->dep_name);
    free(sf->stack);
    free(sf->version);
    free(sf->raw);
    json_decref(sf->doc);
    json_decref(sf->payload);
    json_decref(sf->errors);
    json_decref(sf->notifications);
    free(sf);
}

int stackfile_valid(const struct stackfile *sf)
{
    if (!sf || json_array_size(sf->errors) > 0)
        return 0;
    for (size_t i = 0; i < sf->nchildren; i++)
        if (!stackfile_valid(sf->children[i]))
            return 0;
    return 1;
}
