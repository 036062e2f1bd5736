/* cli/stackfile/vars.c -- stack file variables (vars.h; reference/stack-file.md §6).
 *
 * One struct var per builtin and per definition. Resolution is depth-first on demand: a
 * variable whose condition or resolver names another variable resolves that one first, so
 * declaration order only decides the order of prompts. A variable's state goes
 * UNRESOLVED → RESOLVING → DONE; meeting a RESOLVING one again is a cycle.
 *
 * Definitions are checked once, in vars_new(), for every shape the resolution code relies on
 * (option types, resolver/setter names, condition syntax), so the run itself only meets
 * errors that come from values.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stackfile/vars_internal.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static const char *const type_names[] = {"string", "integer", "boolean", "enum", "uri", "array"};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

const json_t *vars__opt(const struct var *x, const char *key)
{
    const json_t *o = x->def ? json_object_get(x->def, key) : NULL;
    return json_is_null(o) ? NULL : o;
}

int vars__opt_bool(const struct var *x, const char *key, int dflt)
{
    const json_t *o = vars__opt(x, key);
    return o ? json_is_true(o) : dflt;
}

int vars__opt_int(const struct var *x, const char *key, long long *out)
{
    const json_t *o = vars__opt(x, key);
    if (!o)
        return 0;
    *out = json_integer_value(o);
    return 1;
}

struct var *vars__find(const struct vars *v, const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i].name, name) == 0)
            return &v->v[i];
    return NULL;
}

static void fmt_real(struct buf *b, double d)
{
    char tmp[64];
    int p;

    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (!strpbrk(tmp, ".eEn"))
        snprintf(tmp + strlen(tmp), sizeof(tmp) - strlen(tmp), ".0");
    BUF_OK(buf_puts(b, tmp));
}

/* The value as text, the way the original's to_s showed it: null is "", numbers and
 * booleans their literal, lists and mappings compact JSON. Caller frees. */
char *vars__to_text(const json_t *j)
{
    struct buf b = BUF_INIT;

    switch (json_typeof(j ? j : json_null())) {
    case JSON_STRING:
        return xstrndup(json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(j));
    case JSON_REAL:
        fmt_real(&b, json_real_value(j));
        return buf_take(&b);
    case JSON_TRUE:
        return xstrdup("true");
    case JSON_FALSE:
        return xstrdup("false");
    case JSON_NULL:
        return xstrdup("");
    default: {
        char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        char *r = xstrdup(s ? s : "");
        free(s);
        return r;
    }
    }
}

/* A JSON string from bytes that may not be UTF-8: NULL if they are not. */
json_t *vars__text_json(const char *s, size_t n)
{
    return json_stringn(s, n);
}

int vars__is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

size_t vars__utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* Equality for `in`, `eq`, conditions: JSON equality, with 1 == 1.0 as in Ruby. */
int vars__values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

/* ---------------------------------------------------------------------------------------- */
/* Definition checking (vars_new) */

enum okind { K_BOOL, K_INT, K_STR, K_SCALAR, K_LIST, K_STRLIST, K_BOOL_OR_STR, K_ANY };

struct optspec {
    unsigned types; /* bit mask of enum vtype; 0 = every type */
    const char *key;
    enum okind kind;
};

#define TB(t) (1u << (t))
static const struct optspec optspecs[] = {
    {0, "required", K_BOOL},
    {0, "label", K_SCALAR},
    {0, "description", K_SCALAR},
    {0, "echo", K_BOOL},
    {0, "in", K_LIST},
    {TB(T_STRING), "min_length", K_INT},
    {TB(T_STRING), "max_length", K_INT},
    {TB(T_STRING) | TB(T_ARRAY), "empty_is_nil", K_BOOL},
    {TB(T_STRING), "strip", K_BOOL},
    {TB(T_STRING), "chomp", K_BOOL},
    {TB(T_STRING), "upcase", K_BOOL},
    {TB(T_STRING), "downcase", K_BOOL},
    {TB(T_STRING), "capitalize", K_BOOL},
    {TB(T_STRING), "encode_64", K_BOOL},
    {TB(T_STRING), "decode_64", K_BOOL},
    {TB(T_STRING), "hexdigest", K_STR},
    {TB(T_INTEGER), "min", K_INT},
    {TB(T_INTEGER), "max", K_INT},
    {TB(T_INTEGER), "nil_is_zero", K_BOOL},
    {TB(T_BOOLEAN), "truthy", K_LIST},
    {TB(T_BOOLEAN), "nil_is", K_BOOL},
    {TB(T_BOOLEAN), "blank_is", K_BOOL},
    {TB(T_BOOLEAN), "as", K_STR},
    {TB(T_BOOLEAN), "true", K_SCALAR},
    {TB(T_BOOLEAN), "false", K_SCALAR},
    {TB(T_ENUM), "can_be_other", K_BOOL},
    {TB(T_URI), "schemes", K_STRLIST},
    {TB(T_ARRAY), "split", K_STR},
    {TB(T_ARRAY), "join", K_BOOL_OR_STR},
    {TB(T_ARRAY), "sort", K_BOOL},
    {TB(T_ARRAY), "uniq", K_BOOL},
    {TB(T_ARRAY), "compact", K_BOOL},
    {TB(T_ARRAY), "count", K_BOOL},
};

static const char *const kind_desc[] = {
    [K_BOOL] = "true or false",
    [K_INT] = "an integer",
    [K_STR] = "a string",
    [K_SCALAR] = "a scalar",
    [K_LIST] = "a list",
    [K_STRLIST] = "a list of strings",
    [K_BOOL_OR_STR] = "true, false or a string",
    [K_ANY] = "anything",
};

static int kind_ok(const json_t *o, enum okind k)
{
    size_t i;
    const json_t *it;

    switch (k) {
    case K_BOOL:
        return json_is_boolean(o);
    case K_INT:
        return json_is_integer(o);
    case K_STR:
        return json_is_string(o);
    case K_SCALAR:
        return !json_is_array(o) && !json_is_object(o);
    case K_LIST:
        return json_is_array(o);
    case K_STRLIST:
        if (!json_is_array(o))
            return 0;
        json_array_foreach(o, i, it) if (!json_is_string(it)) return 0;
        return 1;
    case K_BOOL_OR_STR:
        return json_is_boolean(o) || json_is_string(o);
    case K_ANY:
        return 1;
    }
    return 0;
}

static enum status check_options(struct var *x, struct err *e)
{
    const json_t *o;

    for (size_t i = 0; i < ARRAY_SIZE(optspecs); i++) {
        const struct optspec *s = &optspecs[i];
        if (s->types && !(s->types & TB(x->type)))
            continue;
        o = vars__opt(x, s->key);
        if (o && !kind_ok(o, s->kind))
            return err_set(e, ST_INVALID, "Variable %s: option %s must be %s", x->name, s->key,
                           kind_desc[s->kind]);
    }
    if (x->type == T_STRING && (o = vars__opt(x, "hexdigest"))) {
        static const char *const algs[] = {"md5", "sha1", "sha256", "sha384", "sha512"};
        int ok = 0;
        for (size_t i = 0; i < ARRAY_SIZE(algs); i++)
            ok |= strcmp(json_string_value(o), algs[i]) == 0;
        if (!ok)
            return err_set(e, ST_INVALID,
                           "Variable %s: unknown hexdigest '%s' (md5, sha1, sha256, sha384, "
                           "sha512)",
                           x->name, json_string_value(o));
    }
    if (x->type == T_BOOLEAN && (o = vars__opt(x, "as"))) {
        static const char *const as[] = {"boolean", "string", "integer", "true_or_nil"};
        int ok = 0;
        for (size_t i = 0; i < ARRAY_SIZE(as); i++)
            ok |= strcmp(json_string_value(o), as[i]) == 0;
        if (!ok)
            return err_set(e, ST_INVALID,
                           "Variable %s: option as must be boolean, string, integer or "
                           "true_or_nil",
                           x->name);
    }
    if (x->type == T_ARRAY && (o = vars__opt(x, "split")) && json_string_length(o) == 0)
        return err_set(e, ST_INVALID, "Variable %s: option split must not be empty", x->name);
    return ST_OK;
}

/* enum options: list of scalars, list of {value, label, description}, or value → description. */
static enum status normalise_enum(struct var *x, struct err *e)
{
    const json_t *o = vars__opt(x, "options"), *it, *val;
    const char *k;
    size_t i;
    json_t *out = json_array();

    if (json_is_object(o)) {
        json_object_foreach((json_t *)o, k, val)
        {
            if (json_is_array(val) || json_is_object(val))
                goto bad;
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:O}", "value", k, "label", k, "description", val));
        }
    } else if (json_is_array(o)) {
        json_array_foreach(o, i, it)
        {
            if (json_is_object(it)) {
                const json_t *v = json_object_get(it, "value");
                const json_t *d = json_object_get(it, "description");
                const json_t *l = json_object_get(it, "label");
                if (json_is_null(v) || !v || json_is_null(d) || !d) {
                    json_decref(out);
                    return err_set(e, ST_INVALID,
                                   "Variable %s: enum option definition requires value and "
                                   "description and can have label when using hash syntax",
                                   x->name);
                }
                if (json_is_array(v) || json_is_object(v) || json_is_array(d) ||
                    json_is_object(d) || json_is_array(l) || json_is_object(l))
                    goto bad;
                json_array_append_new(out,
                                      json_pack("{s:O, s:O, s:O}", "value", v, "label",
                                                l && !json_is_null(l) ? l : v, "description", d));
            } else if (json_is_array(it) || json_is_null(it)) {
                goto bad;
            } else {
                json_array_append_new(
                    out, json_pack("{s:O, s:O, s:O}", "value", it, "label", it, "description", it));
            }
        }
    } else if (o) {
        goto bad;
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return err_set(e, ST_INVALID, "No options defined for enum %s", x->name);
    }
    x->enum_opts = out;
    return ST_OK;
bad:
    json_decref(out);
    return err_set(e, ST_INVALID, "Variable %s: invalid format for enum option list definition",
                   x->name);
}

/* Condition syntax (§6.5): a name, a list of conditions, or a mapping name → value or
 * name → {operator: operand}. */
static const char *const cond_ops[] = {"lt", "lte",        "gt",       "gte",     "eq",
                                       "ne", "start_with", "end_with", "contain", "any_of"};

static enum status check_cond(const char *var, const json_t *c, int depth, struct err *e)
{
    size_t i;
    const json_t *it, *ops, *operand;
    const char *k, *op;

    if (depth > 32)
        return err_set(e, ST_INVALID, "Variable %s: condition nested too deep", var);
    if (json_is_string(c))
        return ST_OK;
    if (json_is_array(c)) {
        json_array_foreach(c, i, it)
        {
            if (!json_is_string(it) && !json_is_object(it))
                return err_set(e, ST_INVALID, "Variable %s: invalid syntax for condition", var);
            if (check_cond(var, it, depth + 1, e) != ST_OK)
                return e ? e->st : ST_INVALID;
        }
        return ST_OK;
    }
    if (!json_is_object(c))
        return err_set(e, ST_INVALID, "Variable %s: invalid syntax for condition", var);
    json_object_foreach((json_t *)c, k, ops)
    {
        if (!json_is_object(ops))
            continue; /* equality */
        json_object_foreach((json_t *)ops, op, operand)
        {
            size_t j;
            for (j = 0; j < ARRAY_SIZE(cond_ops); j++)
                if (strcmp(op, cond_ops[j]) == 0)
                    break;
            if (j == ARRAY_SIZE(cond_ops))
                return err_set(e, ST_INVALID, "Variable %s: unknown condition operator '%s'", var,
                               op);
            if (strcmp(op, "any_of") == 0 && !json_is_array(operand) && !json_is_string(operand))
                return err_set(e, ST_INVALID,
                               "Variable %s: any_of needs a list or a comma-separated string", var);
        }
    }
    return ST_OK;
}

static const char *const resolver_names[] = {"env",           "file",         "random_string",
                                             "random_number", "random_uuid",  "variable",
                                             "interpolate",   "evaluate",     "condition",
                                             "prompt",        "vault",        "service_instances",
                                             "service_link",  "certificates", "vault_cert_prompt",
                                             "default"};

static void add_hinted(struct hinted **list, size_t *n, const char *name, const json_t *hint)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*list)[i].name, name) == 0) { /* later mapping entries win, as in Ruby */
            json_decref((*list)[i].hint);
            (*list)[i].hint = hint ? json_deep_copy(hint) : NULL;
            return;
        }
    }
    *list = xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[*n].name = xstrdup(name);
    (*list)[*n].hint = hint ? json_deep_copy(hint) : NULL;
    (*n)++;
}

/* `from:` / `to:` shapes: `name`, `[name, ...]` (hint = the variable's name), `{name: hint}`,
 * `[{name: hint}, ...]` or a mix of the last two list forms. */
static enum status normalise_from_to(struct var *x, const char *key, struct hinted **list,
                                     size_t *n, struct err *e)
{
    const json_t *o = vars__opt(x, key), *it, *h;
    json_t *self = json_string(x->name);
    const char *k;
    size_t i;
    enum status st = ST_OK;

    if (!o)
        goto out;
    if (json_is_string(o)) {
        add_hinted(list, n, json_string_value(o), self);
    } else if (json_is_object(o)) {
        json_object_foreach((json_t *)o, k, h) add_hinted(list, n, k, json_is_null(h) ? NULL : h);
    } else if (json_is_array(o)) {
        json_array_foreach(o, i, it)
        {
            if (json_is_string(it)) {
                add_hinted(list, n, json_string_value(it), self);
            } else if (json_is_object(it)) {
                json_object_foreach((json_t *)it, k, h)
                    add_hinted(list, n, k, json_is_null(h) ? NULL : h);
            } else {
                st = err_set(e, ST_INVALID, "Variable %s: invalid format for %s", x->name, key);
                goto out;
            }
        }
    } else {
        st = err_set(e, ST_INVALID, "Variable %s: invalid format for %s", x->name, key);
    }
out:
    json_decref(self);
    return st;
}

int vars__nonempty_string(const json_t *h)
{
    return json_is_string(h) && json_string_length(h) > 0;
}

static enum status check_resolvers(struct var *x, struct err *e)
{
    int has_env = 0;

    for (size_t i = 0; i < x->nfrom; i++) {
        const struct hinted *r = &x->from[i];
        size_t j;
        for (j = 0; j < ARRAY_SIZE(resolver_names); j++)
            if (strcmp(r->name, resolver_names[j]) == 0)
                break;
        if (j == ARRAY_SIZE(resolver_names))
            return err_set(e, ST_INVALID, "Unknown resolver: %s", r->name);
        if (strcmp(r->name, "env") == 0)
            has_env = 1;
        if (strcmp(r->name, "vault") == 0 && !vars__nonempty_string(r->hint))
            return err_set(e, ST_INVALID, "Missing or empty vault secret name");
        if (strcmp(r->name, "service_link") == 0 &&
            !(json_is_object(r->hint) && vars__nonempty_string(json_object_get(r->hint, "prompt"))))
            return err_set(e, ST_INVALID, "Variable %s: service_link: prompt missing", x->name);
        if (strcmp(r->name, "condition") == 0) {
            size_t k;
            const json_t *br;
            if (!json_is_array(r->hint))
                return err_set(e, ST_INVALID, "Variable %s: condition: a list of mappings expected",
                               x->name);
            json_array_foreach(r->hint, k, br)
            {
                const json_t *c = NULL;
                if (!json_is_object(br))
                    return err_set(e, ST_INVALID,
                                   "Variable %s: condition: a list of mappings expected", x->name);
                if (json_object_get(br, "else"))
                    continue;
                c = json_object_get(br, "if");
                if (!c)
                    c = json_object_get(br, "elsif");
                if (!c)
                    return err_set(e, ST_INVALID,
                                   "Variable %s: invalid condition definition (no 'if', 'elsif' "
                                   "or 'else')",
                                   x->name);
                if (!json_object_get(br, "then"))
                    return err_set(e, ST_INVALID,
                                   "Variable %s: invalid condition definition (no 'then')",
                                   x->name);
                if (check_cond(x->name, c, 0, e) != ST_OK)
                    return ST_INVALID;
            }
        }
    }
    /* Implicit resolvers: the variable's own environment name, then the default. */
    if (!has_env) {
        json_t *self = json_string(x->name);
        add_hinted(&x->from, &x->nfrom, "env", self);
        json_decref(self);
    }
    add_hinted(&x->from, &x->nfrom, "default", NULL);
    return ST_OK;
}

static enum status check_setters(struct var *x, struct err *e)
{
    for (size_t i = 0; i < x->nto; i++) {
        const struct hinted *s = &x->to[i];
        if (strcmp(s->name, "env") == 0) {
            const json_t *h = s->hint;
            if (json_is_object(h))
                h = json_object_get(h, "name");
            if (!vars__nonempty_string(h))
                return err_set(e, ST_INVALID, "Variable %s: env setter needs a variable name",
                               x->name);
        } else if (strcmp(s->name, "vault") == 0) {
            if (!vars__nonempty_string(s->hint))
                return err_set(e, ST_INVALID, "Missing or empty vault secret name");
        } else {
            return err_set(e, ST_INVALID, "Unknown setter: %s", s->name);
        }
    }
    return ST_OK;
}

static const char *env_target(const struct hinted *s)
{
    const json_t *h = s->hint;
    if (strcmp(s->name, "env") != 0)
        return NULL;
    if (json_is_object(h))
        h = json_object_get(h, "name");
    return json_string_value(h);
}

static enum status setup_var(struct var *x, struct err *e)
{
    const json_t *t = vars__opt(x, "type"), *o;

    if (!json_is_object(x->def))
        return err_set(e, ST_INVALID, "Variable %s: definition must be a mapping", x->name);
    x->type = T_STRING;
    if (t) {
        size_t i;
        char *tn = vars__to_text(t);
        for (i = 0; i < ARRAY_SIZE(type_names); i++)
            if (strcmp(tn, type_names[i]) == 0)
                break;
        if (i == ARRAY_SIZE(type_names) || !json_is_string(t)) {
            err_set(e, ST_INVALID, "No handler for type %s", tn);
            free(tn);
            return ST_INVALID;
        }
        free(tn);
        x->type = (enum vtype)i;
    }
    if (check_options(x, e) != ST_OK)
        return ST_INVALID;
    x->required = vars__opt_bool(x, "required", 1);
    if ((o = vars__opt(x, "default")))
        x->dflt = json_deep_copy(o);
    if (x->type == T_ENUM && normalise_enum(x, e) != ST_OK)
        return ST_INVALID;
    if ((o = vars__opt(x, "only_if")) && check_cond(x->name, o, 0, e) != ST_OK)
        return ST_INVALID;
    if ((o = vars__opt(x, "skip_if")) && check_cond(x->name, o, 0, e) != ST_OK)
        return ST_INVALID;
    if (normalise_from_to(x, "from", &x->from, &x->nfrom, e) != ST_OK ||
        check_resolvers(x, e) != ST_OK)
        return ST_INVALID;
    if (normalise_from_to(x, "to", &x->to, &x->nto, e) != ST_OK || check_setters(x, e) != ST_OK)
        return ST_INVALID;
    return ST_OK;
}

struct vars *vars_new(const json_t *defs, const json_t *builtins, struct err *e)
{
    struct vars *v = xcalloc(1, sizeof(*v));
    const char *k;
    json_t *d;
    const json_t *b;

    if (defs && !json_is_null(defs) && !json_is_object(defs)) {
        err_set(e, ST_INVALID, "variables must be a mapping");
        goto fail;
    }
    if (builtins && !json_is_object(builtins)) {
        err_set(e, ST_INVALID, "variable builtins must be a mapping");
        goto fail;
    }
    v->defs = json_is_object(defs) ? json_deep_copy(defs) : json_object();
    v->v = xcalloc(json_object_size(v->defs) + json_object_size(builtins) + 1, sizeof(*v->v));
    json_object_foreach((json_t *)builtins, k, b)
    {
        struct var *x = &v->v[v->n++];
        x->name = xstrdup(k);
        x->builtin = 1;
        x->state = DONE;
        x->value = json_deep_copy(b);
    }
    json_object_foreach(v->defs, k, d)
    {
        struct var *x;
        if (builtins && json_object_get(builtins, k))
            continue; /* builtins override same-named definitions */
        x = &v->v[v->n++];
        x->name = xstrdup(k);
        x->def = d;
        if (setup_var(x, e) != ST_OK)
            goto fail;
    }
    return v;
fail:
    vars_free(v);
    return NULL;
}

static void free_hinted(struct hinted *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].name);
        json_decref(l[i].hint);
    }
    free(l);
}

void vars_free(struct vars *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        struct var *x = &v->v[i];
        free(x->name);
        json_decref(x->cli);
        json_decref(x->dflt);
        free_hinted(x->from, x->nfrom);
        free_hinted(x->to, x->nto);
        json_decref(x->enum_opts);
        json_decref(x->value);
        free(x->conv_error);
    }
    free(v->v);
    json_decref(v->defs);
    free(v);
}

void vars_set_value(struct vars *v, const char *name, const json_t *value)
{
    struct var *x = vars__find(v, name);
    if (!x || x->builtin)
        return;
    json_decref(x->cli);
    x->cli = value && !json_is_null(value) ? json_deep_copy(value) : NULL;
}

void vars_set_default(struct vars *v, const char *name, const json_t *value)
{
    struct var *x = vars__find(v, name);
    if (!x || x->builtin)
        return;
    json_decref(x->dflt);
    x->dflt = value && !json_is_null(value) ? json_deep_copy(value) : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Resolution: conditions */

/* The value of variable name, resolving it first (json_null() when undeclared). */
enum status vars__value_of(struct vars *v, const char *name, const json_t **out, int *declared)
{
    struct var *x = vars__find(v, name);

    *out = json_null();
    if (declared)
        *declared = x != NULL;
    if (!x)
        return ST_OK;
    if (vars__resolve_var(v, x) != ST_OK)
        return ST_INVALID;
    if (x->value)
        *out = x->value;
    return ST_OK;
}

int vars__text_is_false(const json_t *j)
{
    return json_is_string(j) && strcmp(json_string_value(j), "false") == 0;
}

/* Truthiness of a resolved variable for conditions, per its type (§6.2). */
static int var_truthy(const struct var *x)
{
    const json_t *val = x->value;

    if (x->skipped || !val || json_is_null(val) || json_is_false(val) || vars__text_is_false(val))
        return 0;
    if (x->builtin)
        return !(json_is_string(val) && vars__is_blank(json_string_value(val)));
    switch (x->type) {
    case T_BOOLEAN:
        if (json_is_string(val)) {
            char *t = vars__to_text(vars__opt(x, "true") ? vars__opt(x, "true") : NULL);
            int r = vars__opt(x, "true") ? strcmp(t, json_string_value(val)) == 0
                                         : strcmp(json_string_value(val), "true") == 0;
            free(t);
            return r;
        }
        if (json_is_integer(val))
            return json_integer_value(val) != 0;
        return json_is_true(val);
    case T_STRING:
        return !(json_is_string(val) && vars__is_blank(json_string_value(val)));
    case T_ARRAY:
        return !json_is_array(val) || json_array_size(val) > 0;
    default:
        return 1;
    }
}

static int num_cmp(const json_t *a, const json_t *b, int *r)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        *r = (x > y) - (x < y);
        return 1;
    }
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        *r = (x > y) - (x < y);
        return 1;
    }
    if (json_is_string(a) && json_is_string(b)) {
        *r = strcmp(json_string_value(a), json_string_value(b));
        return 1;
    }
    return 0; /* not comparable: the comparison is false */
}

static int scalar_match(const json_t *val, const json_t *item)
{
    char *a, *b;
    int r;

    if (vars__values_equal(val, item))
        return 1;
    if (json_is_array(val) || json_is_object(val) || json_is_null(val) || !json_is_string(item))
        return 0;
    a = vars__to_text(val);
    b = vars__to_text(item);
    r = strcmp(a, b) == 0;
    free(a);
    free(b);
    return r;
}

static int op_true(const char *op, const json_t *val, const json_t *o)
{
    int c;

    if (strcmp(op, "eq") == 0)
        return vars__values_equal(val, o);
    if (strcmp(op, "ne") == 0)
        return !vars__values_equal(val, o);
    if (strcmp(op, "lt") == 0)
        return num_cmp(val, o, &c) && c < 0;
    if (strcmp(op, "lte") == 0)
        return num_cmp(val, o, &c) && c <= 0;
    if (strcmp(op, "gt") == 0)
        return num_cmp(val, o, &c) && c > 0;
    if (strcmp(op, "gte") == 0) /* the original's gte behaved as gt: fixed */
        return num_cmp(val, o, &c) && c >= 0;
    if (json_is_null(val))
        return 0;
    if (strcmp(op, "start_with") == 0 || strcmp(op, "end_with") == 0) {
        char *a, *b;
        size_t la, lb;
        int r = 0;
        if (json_is_array(val) || json_is_object(val))
            return 0;
        a = vars__to_text(val);
        b = vars__to_text(o);
        la = strlen(a);
        lb = strlen(b);
        if (lb <= la)
            r = op[0] == 's' ? memcmp(a, b, lb) == 0 : memcmp(a + la - lb, b, lb) == 0;
        free(a);
        free(b);
        return r;
    }
    if (strcmp(op, "contain") == 0) {
        size_t i;
        const json_t *it;
        if (json_is_array(val)) {
            json_array_foreach(val, i, it) if (scalar_match(it, o)) return 1;
            return 0;
        }
        if (json_is_string(val)) {
            char *b = vars__to_text(o);
            int r = strstr(json_string_value(val), b) != NULL;
            free(b);
            return r;
        }
        return 0;
    }
    if (strcmp(op, "any_of") == 0) {
        size_t i;
        const json_t *it;
        if (json_is_array(o)) {
            json_array_foreach(o, i, it) if (scalar_match(val, it)) return 1;
            return 0;
        }
        if (json_is_string(o)) {
            const char *s = json_string_value(o), *p;
            char *t = vars__to_text(val);
            int r = 0;
            if (json_is_array(val) || json_is_object(val)) {
                free(t);
                return 0;
            }
            while (!r) {
                size_t a, b;
                p = strchr(s, ',');
                b = p ? (size_t)(p - s) : strlen(s);
                for (a = 0; a < b && isspace((unsigned char)s[a]); a++)
                    ;
                while (b > a && isspace((unsigned char)s[b - 1]))
                    b--;
                r = strlen(t) == b - a && memcmp(t, s + a, b - a) == 0;
                if (!p)
                    break;
                s = p + 1;
            }
            free(t);
            return r;
        }
    }
    return 0;
}

/* Evaluate a condition (§6.5). any: a list or mapping is true when any part is (skip_if),
 * else when all are (only_if, condition resolver). */
enum status vars__cond_eval(struct vars *v, const json_t *c, int any, int *res)
{
    const json_t *val, *it;
    const char *k;
    size_t i;
    int r;

    if (json_is_string(c)) {
        struct var *x = vars__find(v, json_string_value(c));
        *res = 0;
        if (!x)
            return ST_OK;
        if (vars__resolve_var(v, x) != ST_OK)
            return ST_INVALID;
        *res = var_truthy(x);
        return ST_OK;
    }
    *res = !any;
    if (json_is_array(c)) {
        json_array_foreach(c, i, it)
        {
            if (vars__cond_eval(v, it, any, &r) != ST_OK)
                return ST_INVALID;
            if (r == any) {
                *res = any;
                return ST_OK;
            }
        }
        return ST_OK;
    }
    json_object_foreach((json_t *)c, k, it)
    {
        if (vars__value_of(v, k, &val, NULL) != ST_OK)
            return ST_INVALID;
        if (json_is_object(it)) {
            const char *op;
            const json_t *o;
            r = 1;
            json_object_foreach((json_t *)it, op, o) r = r && op_true(op, val, o);
        } else {
            r = vars__values_equal(val, it);
        }
        if (r == any) {
            *res = any;
            return ST_OK;
        }
    }
    return ST_OK;
}

enum status vars__resolve_var(struct vars *v, struct var *x)
{
    const json_t *c;
    json_t *raw = NULL;
    char *why = NULL;
    int r;

    if (x->state == DONE)
        return ST_OK;
    if (x->state == RESOLVING) {
        v->nested_fail = 1;
        return err_set(v->e, ST_INVALID, "Variable %s depends on itself", x->name);
    }
    if (v->depth >= MAX_DEPTH) {
        v->nested_fail = 1;
        return err_set(v->e, ST_INVALID, "Variable %s: variables refer to each other too deeply",
                       x->name);
    }
    x->state = RESOLVING;
    v->depth++;
    if ((c = vars__opt(x, "skip_if"))) {
        if (vars__cond_eval(v, c, 1, &r) != ST_OK)
            goto fail;
        x->skipped = r;
    }
    if (!x->skipped && (c = vars__opt(x, "only_if"))) {
        if (vars__cond_eval(v, c, 0, &r) != ST_OK)
            goto fail;
        x->skipped = !r;
    }
    if (x->skipped) {
        x->value = json_null();
        goto done;
    }
    if (x->cli)
        raw = json_incref(x->cli);
    else if ((c = vars__opt(x, "value")))
        raw = json_incref((json_t *)c);
    for (size_t i = 0; !raw && i < x->nfrom; i++)
        if (vars__run_resolver(v, x, &x->from[i], &raw) != ST_OK)
            goto fail;
    x->value = vars__convert(x, raw, &why);
    if (!x->value) {
        x->conv_error = why;
        x->value = json_null();
    }
    json_decref(raw);
done:
    x->state = DONE;
    v->depth--;
    return ST_OK;
fail:
    v->depth--;
    v->nested_fail = 1;
    return ST_INVALID;
}

/* ---------------------------------------------------------------------------------------- */
/* Setters, run, accessors */

static enum status run_setters(struct vars *v, struct var *x)
{
    for (size_t i = 0; i < x->nto; i++) {
        const struct hinted *s = &x->to[i];
        char *val = vars__to_text(x->value);
        enum status st = ST_OK;
        if (strcmp(s->name, "env") == 0) {
            const char *name = env_target(s);
            int rc =
                v->host->setenv ? v->host->setenv(v->host->ctx, name, val) : setenv(name, val, 1);
            if (rc != 0)
                st = err_set(v->e, ST_INVALID, "Setter 'env' for '%s' : cannot set %s", x->name,
                             name);
        } else if (v->host->vault_set && !json_is_null(x->value)) {
            struct err se = ERR_INIT;
            if (v->host->vault_set(v->host->ctx, json_string_value(s->hint), val, &se) != ST_OK)
                st = err_set(v->e, se.st ? se.st : ST_IO, "Setter 'vault' for '%s' : %s", x->name,
                             se.msg);
        }
        free(val);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

enum status vars_run(struct vars *v, const struct vars_host *host, json_t **errors, struct err *e)
{
    static const struct vars_host offline;
    struct err le = ERR_INIT;
    enum status st = ST_OK;
    json_t **verr;
    size_t i;

    *errors = json_object();
    v->host = host ? host : &offline;
    v->e = &le;
    v->depth = 0;
    for (i = 0; i < v->n; i++) {
        struct var *x = &v->v[i];
        if (x->builtin)
            continue;
        x->state = UNRESOLVED;
        x->skipped = 0;
        json_decref(x->value);
        x->value = NULL;
        FREE_AND_NULL(x->conv_error);
    }
    for (i = 0; i < v->n; i++) {
        if ((st = vars__resolve_var(v, &v->v[i])) != ST_OK)
            goto out;
    }
    verr = xcalloc(v->n, sizeof(*verr));
    for (i = 0; i < v->n; i++) {
        struct var *x = &v->v[i];
        if (x->builtin || x->skipped)
            continue;
        if ((verr[i] = vars__validate(x)))
            json_object_set(*errors, x->name, verr[i]);
    }
    for (i = 0; i < v->n && st == ST_OK; i++) {
        struct var *x = &v->v[i];
        if (!x->builtin && !x->skipped && !verr[i])
            st = run_setters(v, x);
    }
    for (i = 0; i < v->n; i++)
        json_decref(verr[i]);
    free(verr);
out:
    if (st != ST_OK && e)
        *e = le;
    v->host = NULL;
    v->e = NULL;
    return st;
}

json_t *vars_values(const struct vars *v)
{
    json_t *o = json_object();
    for (size_t i = 0; i < v->n; i++)
        json_object_set_new(o, v->v[i].name,
                            v->v[i].value ? json_deep_copy(v->v[i].value) : json_null());
    return o;
}

int vars_lookup(const struct vars *v, const char *name, const json_t **out)
{
    const struct var *x = vars__find(v, name);

    for (size_t i = 0; !x && i < v->n; i++)
        for (size_t k = 0; !x && k < v->v[i].nto; k++) {
            const char *t = env_target(&v->v[i].to[k]);
            if (t && strcmp(t, name) == 0)
                x = &v->v[i];
        }
    if (!x)
        return 0;
    *out = x->value && !x->skipped ? x->value : json_null();
    return 1;
}

int vars_truthy(const struct vars *v, const char *name)
{
    const struct var *x = vars__find(v, name);
    return x && !x->skipped && x->value && !json_is_null(x->value) && !json_is_false(x->value) &&
           !vars__text_is_false(x->value);
}

json_t *vars_stored(const struct vars *v)
{
    json_t *o = json_object();

    for (size_t i = 0; i < v->n; i++) {
        const struct var *x = &v->v[i];
        int vault = 0;
        /* Of the built-ins only the dependency names are kept (stack-file.md §6.7). */
        if (x->builtin && (!strcmp(x->name, "GRID") || !strcmp(x->name, "STACK") ||
                           !strcmp(x->name, "PLATFORM") || !strcmp(x->name, "PARENT_STACK")))
            continue;
        for (size_t k = 0; k < x->nfrom; k++)
            vault |= strcmp(x->from[k].name, "vault") == 0;
        for (size_t k = 0; k < x->nto; k++)
            vault |= strcmp(x->to[k].name, "vault") == 0;
        if (!vault)
            json_object_set_new(o, x->name, x->value ? json_deep_copy(x->value) : json_null());
    }
    return o;
}
