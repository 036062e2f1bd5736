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
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/stackfile/vars.h"
#include "common/banned.h"
#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#define MAX_DEPTH 200           /* nested on-demand resolution */
#define MAX_RANDOM_LEN 65536    /* random_string length cap */
#define MAX_FILE_SIZE (4 << 20) /* file: resolver cap */
#define MAX_LINE 65536          /* prompt answer cap */
#define MAX_ATTEMPTS 10         /* invalid prompt answers before giving up */

/* For buffers without a cap, which cannot fail (allocation aborts). */
#define BUF_OK(call) BUG_ON((call) != ST_OK)

enum vtype { T_STRING, T_INTEGER, T_BOOLEAN, T_ENUM, T_URI, T_ARRAY };
static const char *const type_names[] = {"string", "integer", "boolean", "enum", "uri", "array"};

enum vstate { UNRESOLVED, RESOLVING, DONE };

/* A resolver (`from:`) or setter (`to:`) entry: name and its hint (owned, NULL for none). */
struct hinted {
    char *name;
    json_t *hint;
};

struct var {
    char *name;
    const json_t *def; /* borrowed from vars->defs; NULL for builtins */
    int builtin;
    enum vtype type;
    int required;
    json_t *cli;  /* command-line value (owned), wins over def's value: */
    json_t *dflt; /* default (owned) */
    struct hinted *from;
    size_t nfrom;
    struct hinted *to;
    size_t nto;
    json_t *enum_opts; /* enum: normalised [{value,label,description}] (owned) */
    enum vstate state;
    int skipped;
    json_t *value;    /* owned; NULL until resolved */
    char *conv_error; /* the value could not be converted to the type */
};

struct vars {
    json_t *defs; /* our deep copy of the definitions */
    struct var *v;
    size_t n;
    /* During vars_run only. */
    const struct vars_host *host;
    struct err *e;
    int depth;
    int nested_fail; /* e already holds a complete message from a nested resolution */
};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static const json_t *opt(const struct var *x, const char *key)
{
    const json_t *o = x->def ? json_object_get(x->def, key) : NULL;
    return json_is_null(o) ? NULL : o;
}

static int opt_bool(const struct var *x, const char *key, int dflt)
{
    const json_t *o = opt(x, key);
    return o ? json_is_true(o) : dflt;
}

static int opt_int(const struct var *x, const char *key, long long *out)
{
    const json_t *o = opt(x, key);
    if (!o)
        return 0;
    *out = json_integer_value(o);
    return 1;
}

static struct var *find(const struct vars *v, const char *name)
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
static char *to_text(const json_t *j)
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
static json_t *text_json(const char *s, size_t n)
{
    return json_stringn(s, n);
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* Equality for `in`, `eq`, conditions: JSON equality, with 1 == 1.0 as in Ruby. */
static int values_equal(const json_t *a, const json_t *b)
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
        o = opt(x, s->key);
        if (o && !kind_ok(o, s->kind))
            return err_set(e, ST_INVALID, "Variable %s: option %s must be %s", x->name, s->key,
                           kind_desc[s->kind]);
    }
    if (x->type == T_STRING && (o = opt(x, "hexdigest"))) {
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
    if (x->type == T_BOOLEAN && (o = opt(x, "as"))) {
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
    if (x->type == T_ARRAY && (o = opt(x, "split")) && json_string_length(o) == 0)
        return err_set(e, ST_INVALID, "Variable %s: option split must not be empty", x->name);
    return ST_OK;
}

/* enum options: list of scalars, list of {value, label, description}, or value → description. */
static enum status normalise_enum(struct var *x, struct err *e)
{
    const json_t *o = opt(x, "options"), *it, *val;
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
    const json_t *o = opt(x, key), *it, *h;
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

static int nonempty_string(const json_t *h)
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
        if (strcmp(r->name, "vault") == 0 && !nonempty_string(r->hint))
            return err_set(e, ST_INVALID, "Missing or empty vault secret name");
        if (strcmp(r->name, "service_link") == 0 &&
            !(json_is_object(r->hint) && nonempty_string(json_object_get(r->hint, "prompt"))))
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
            if (!nonempty_string(h))
                return err_set(e, ST_INVALID, "Variable %s: env setter needs a variable name",
                               x->name);
        } else if (strcmp(s->name, "vault") == 0) {
            if (!nonempty_string(s->hint))
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
    const json_t *t = opt(x, "type"), *o;

    if (!json_is_object(x->def))
        return err_set(e, ST_INVALID, "Variable %s: definition must be a mapping", x->name);
    x->type = T_STRING;
    if (t) {
        size_t i;
        char *tn = to_text(t);
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
    x->required = opt_bool(x, "required", 1);
    if ((o = opt(x, "default")))
        x->dflt = json_deep_copy(o);
    if (x->type == T_ENUM && normalise_enum(x, e) != ST_OK)
        return ST_INVALID;
    if ((o = opt(x, "only_if")) && check_cond(x->name, o, 0, e) != ST_OK)
        return ST_INVALID;
    if ((o = opt(x, "skip_if")) && check_cond(x->name, o, 0, e) != ST_OK)
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
    struct var *x = find(v, name);
    if (!x || x->builtin)
        return;
    json_decref(x->cli);
    x->cli = value && !json_is_null(value) ? json_deep_copy(value) : NULL;
}

void vars_set_default(struct vars *v, const char *name, const json_t *value)
{
    struct var *x = find(v, name);
    if (!x || x->builtin)
        return;
    json_decref(x->dflt);
    x->dflt = value && !json_is_null(value) ? json_deep_copy(value) : NULL;
}

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
    char *s = to_text(raw), *t;
    size_t n = strlen(s), len;
    const json_t *hd;
    json_t *out;

    if (opt_bool(x, "encode_64", 0)) {
        t = crypto_b64_encode(s, n);
        free(s);
        s = t;
        n = strlen(s);
    }
    if (opt_bool(x, "decode_64", 0)) {
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
    if (opt_bool(x, "upcase", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)toupper((unsigned char)s[i]);
    if (opt_bool(x, "downcase", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)tolower((unsigned char)s[i]);
    if (opt_bool(x, "strip", 0)) {
        size_t a = 0;
        while (a < n && isspace((unsigned char)s[a]))
            a++;
        while (n > a && isspace((unsigned char)s[n - 1]))
            n--;
        memmove(s, s + a, n - a);
        n -= a;
        s[n] = 0;
    }
    if (opt_bool(x, "chomp", 0)) {
        if (n && s[n - 1] == '\n')
            n--;
        if (n && s[n - 1] == '\r')
            n--;
        s[n] = 0;
    }
    if (opt_bool(x, "capitalize", 0))
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(i ? tolower((unsigned char)s[i]) : toupper((unsigned char)s[i]));
    if (opt_bool(x, "empty_is_nil", 1) && is_blank(s)) {
        free(s);
        return json_null();
    }
    if ((hd = opt(x, "hexdigest"))) {
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
    out = text_json(s, n);
    free(s);
    if (!out)
        *why = xstrdup("Value is not valid UTF-8 text");
    return out;
}

/* Whole-string integer: optional blanks, sign, digits (underscores between digits). */
static int parse_int(const char *s, long long *out)
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
        return opt_bool(x, "nil_is_zero", 0) ? json_integer(0) : json_null();
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
    s = to_text(raw);
    if (json_is_string(raw) && parse_int(s, &i)) {
        free(s);
        return json_integer(i);
    }
    *why = xasprintf("Value '%s' is not an integer", s);
    free(s);
    return NULL;
}

static int bool_of(const struct var *x, const json_t *raw)
{
    const json_t *truthy = opt(x, "truthy");
    static const char *const dflt[] = {"true", "yes", "1", "on", "enabled", "enable"};
    char *s;
    size_t a, n, i;
    int r = 0;

    if (json_is_boolean(raw))
        return json_is_true(raw);
    if (json_is_null(raw))
        return opt_bool(x, "nil_is", 0);
    s = to_text(raw);
    for (a = 0; s[a] && isspace((unsigned char)s[a]); a++)
        ;
    n = strlen(s + a);
    while (n && isspace((unsigned char)s[a + n - 1]))
        n--;
    s[a + n] = 0;
    if (n == 0) {
        free(s);
        return opt_bool(x, "blank_is", 0);
    }
    for (i = a; s[i]; i++)
        s[i] = (char)tolower((unsigned char)s[i]);
    if (truthy) {
        const json_t *it;
        json_array_foreach(truthy, i, it)
        {
            char *t = to_text(it);
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
    int b = bool_of(x, raw);
    const json_t *as = opt(x, "as");
    const char *a = as ? json_string_value(as) : "boolean";
    const json_t *tv;

    if (strcmp(a, "integer") == 0) {
        tv = opt(x, b ? "true" : "false");
        return json_is_integer(tv) ? json_incref((json_t *)tv) : json_integer(b);
    }
    if (strcmp(a, "string") == 0) {
        tv = opt(x, b ? "true" : "false");
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
    s = to_text(raw);
    json_array_foreach(x->enum_opts, i, o)
    {
        char *t = to_text(json_object_get(o, "value"));
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
    s = to_text(raw);
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
    ta = to_text(a);
    tb = to_text(b);
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
        const char *sep = opt(x, "split") ? json_string_value(opt(x, "split")) : ",";
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
    if (opt_bool(x, "compact", 0)) {
        for (i = json_array_size(arr); i-- > 0;) {
            it = json_array_get(arr, i);
            if (json_is_null(it) || (json_is_string(it) && is_blank(json_string_value(it))))
                json_array_remove(arr, i);
        }
    }
    if (opt_bool(x, "uniq", 0)) {
        out = json_array();
        json_array_foreach(arr, i, it)
        {
            size_t k;
            int dup = 0;
            json_array_foreach(out, k, j) dup |= values_equal(it, j);
            if (!dup)
                json_array_append(out, (json_t *)it);
        }
        json_decref(arr);
        arr = out;
    }
    if (opt_bool(x, "sort", 0) && json_array_size(arr) > 1) {
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
    if (opt_bool(x, "empty_is_nil", 0) && json_array_size(arr) == 0) {
        json_decref(arr);
        return json_null();
    }
    j = opt(x, "join");
    if (j && !json_is_false(j)) {
        const char *sep = json_is_string(j) ? json_string_value(j) : ",";
        struct buf b = BUF_INIT;
        json_array_foreach(arr, i, it)
        {
            char *t = to_text(it);
            BUF_OK(buf_printf(&b, "%s%s", i ? sep : "", t));
            free(t);
        }
        json_decref(arr);
        out = json_string(b.ptr ? b.ptr : "");
        buf_release(&b);
        return out;
    }
    if (opt_bool(x, "count", 0)) {
        out = json_integer((json_int_t)json_array_size(arr));
        json_decref(arr);
        return out;
    }
    return arr;
}

/* Convert raw (borrowed, NULL = null) to x's type. NULL return: *why says why. */
static json_t *convert(const struct var *x, const json_t *raw, char **why)
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
        char *t = to_text(it);
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
static json_t *validate(const struct var *x)
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
    if ((in = opt(x, "in"))) {
        size_t i;
        const json_t *it;
        int ok = 0;
        json_array_foreach(in, i, it) ok |= values_equal(val, it);
        if (!ok) {
            char *t = to_text(val), *l = list_text(in);
            set_msg(errs, "validate_in", "Value %s not in %s", t, l);
            free(t);
            free(l);
        }
    }
    switch (x->type) {
    case T_STRING:
        if (json_is_string(val)) {
            long long len = (long long)utf8_len(json_string_value(val), json_string_length(val));
            if (opt_int(x, "min_length", &lim) && len < lim)
                set_msg(errs, "validate_min_length",
                        "Too short. Minimum length is %lld, length is %lld.", lim, len);
            if (opt_int(x, "max_length", &lim) && len > lim)
                set_msg(errs, "validate_max_length",
                        "Too long. Maximum length is %lld, length is %lld.", lim, len);
        }
        break;
    case T_INTEGER:
        if (json_is_integer(val)) {
            long long n = json_integer_value(val);
            if (!opt_int(x, "min", &lim))
                lim = 0;
            if (n < lim)
                set_msg(errs, "validate_min", "Too small. Minimum value is %lld, Value is %lld.",
                        lim, n);
            if (opt_int(x, "max", &lim) && n > lim)
                set_msg(errs, "validate_max", "Too large. Maximum value is %lld, Value is %lld.",
                        lim, n);
        }
        break;
    case T_ENUM:
        if (!opt_bool(x, "can_be_other", 0)) {
            size_t i;
            const json_t *o;
            int ok = 0;
            json_array_foreach(x->enum_opts, i, o)
            {
                ok |= values_equal(val, json_object_get(o, "value"));
            }
            if (!ok)
                json_object_set_new(errs, "validate_options",
                                    json_string("Value is not one of the options"));
        }
        break;
    case T_URI:
        if (json_is_string(val)) {
            const char *s = json_string_value(val);
            const json_t *schemes = opt(x, "schemes");
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

/* ---------------------------------------------------------------------------------------- */
/* Resolution: conditions */

static enum status resolve_var(struct vars *v, struct var *x);

/* The value of variable name, resolving it first (json_null() when undeclared). */
static enum status value_of(struct vars *v, const char *name, const json_t **out, int *declared)
{
    struct var *x = find(v, name);

    *out = json_null();
    if (declared)
        *declared = x != NULL;
    if (!x)
        return ST_OK;
    if (resolve_var(v, x) != ST_OK)
        return ST_INVALID;
    if (x->value)
        *out = x->value;
    return ST_OK;
}

static int text_is_false(const json_t *j)
{
    return json_is_string(j) && strcmp(json_string_value(j), "false") == 0;
}

/* Truthiness of a resolved variable for conditions, per its type (§6.2). */
static int var_truthy(const struct var *x)
{
    const json_t *val = x->value;

    if (x->skipped || !val || json_is_null(val) || json_is_false(val) || text_is_false(val))
        return 0;
    if (x->builtin)
        return !(json_is_string(val) && is_blank(json_string_value(val)));
    switch (x->type) {
    case T_BOOLEAN:
        if (json_is_string(val)) {
            char *t = to_text(opt(x, "true") ? opt(x, "true") : NULL);
            int r = opt(x, "true") ? strcmp(t, json_string_value(val)) == 0
                                   : strcmp(json_string_value(val), "true") == 0;
            free(t);
            return r;
        }
        if (json_is_integer(val))
            return json_integer_value(val) != 0;
        return json_is_true(val);
    case T_STRING:
        return !(json_is_string(val) && is_blank(json_string_value(val)));
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

    if (values_equal(val, item))
        return 1;
    if (json_is_array(val) || json_is_object(val) || json_is_null(val) || !json_is_string(item))
        return 0;
    a = to_text(val);
    b = to_text(item);
    r = strcmp(a, b) == 0;
    free(a);
    free(b);
    return r;
}

static int op_true(const char *op, const json_t *val, const json_t *o)
{
    int c;

    if (strcmp(op, "eq") == 0)
        return values_equal(val, o);
    if (strcmp(op, "ne") == 0)
        return !values_equal(val, o);
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
        a = to_text(val);
        b = to_text(o);
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
            char *b = to_text(o);
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
            char *t = to_text(val);
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
static enum status cond_eval(struct vars *v, const json_t *c, int any, int *res)
{
    const json_t *val, *it;
    const char *k;
    size_t i;
    int r;

    if (json_is_string(c)) {
        struct var *x = find(v, json_string_value(c));
        *res = 0;
        if (!x)
            return ST_OK;
        if (resolve_var(v, x) != ST_OK)
            return ST_INVALID;
        *res = var_truthy(x);
        return ST_OK;
    }
    *res = !any;
    if (json_is_array(c)) {
        json_array_foreach(c, i, it)
        {
            if (cond_eval(v, it, any, &r) != ST_OK)
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
        if (value_of(v, k, &val, NULL) != ST_OK)
            return ST_INVALID;
        if (json_is_object(it)) {
            const char *op;
            const json_t *o;
            r = 1;
            json_object_foreach((json_t *)it, op, o) r = r && op_true(op, val, o);
        } else {
            r = values_equal(val, it);
        }
        if (r == any) {
            *res = any;
            return ST_OK;
        }
    }
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Resolution: resolvers. Each gives *out (new reference) or NULL for "no value"; errors of
 * its own go to re, errors of a nested resolution are already in v->e (v->nested_fail). */

typedef enum status (*resolver_fn)(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                   struct err *re);

static const char *host_getenv(const struct vars *v, const char *name)
{
    if (v->host->getenv)
        return v->host->getenv(v->host->ctx, name);
    return getenv(name);
}

static int all_digits(const char *s)
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
        n = to_text(it);
        val = host_getenv(v, n);
        if (!val) {
            free(n);
            continue;
        }
        if (all_digits(val) && parse_int(val, &num))
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
    if (!nonempty_string(p))
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
    if (!(*out = text_json(b.ptr ? b.ptr : "", b.len)) && !ignore)
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
    return json_is_string(j) && parse_int(json_string_value(j), out);
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
    charset = cs ? to_text(cs) : xstrdup("alphanumeric");
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
        if (dash && dash != charset && all_digits(dash + 1)) {
            char *left = xstrndup(charset, (size_t)(dash - charset));
            if (all_digits(left) && parse_int(left, &lo) && parse_int(dash + 1, &hi))
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
    if (!(*out = text_json(b.ptr ? b.ptr : "", b.len)))
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
    if (!nonempty_string(hint))
        return err_set(re, ST_INVALID, "Variable name missing");
    if (value_of(v, json_string_value(hint), &val, &declared) != ST_OK) {
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
        if (value_of(v, name, &val, &declared) != ST_OK) {
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
            char *txt = to_text(val);
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
    if (st == ST_OK && !(*out = text_json(b.ptr, b.len)))
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
        if (cond_eval(v, c, 0, &r) != ST_OK) {
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

/* ---------------------------------------------------------------------------------------- */
/* Prompts */

static FILE *p_in(const struct vars *v)
{
    return v->host->in ? v->host->in : stdin;
}

static FILE *p_out(const struct vars *v)
{
    return v->host->out ? v->host->out : stderr;
}

/* One line of input without its newline; -1 at end of input. echo == 0 turns the terminal's
 * echo off while reading (only when input is a terminal). */
static int read_answer(struct vars *v, int echo, char **line)
{
    FILE *in = p_in(v), *out = p_out(v);
    int fd = fileno(in), c, restore = 0;
    struct termios old, quiet;
    struct buf b;

    fflush(out);
    if (!echo && fd != -1 && isatty(fd) && tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(fd, TCSANOW, &quiet) == 0; /* keeps type-ahead */
    }
    buf_init(&b, MAX_LINE);
    while ((c = getc(in)) != EOF && c != '\n') {
        char ch = (char)c;
        if (buf_append(&b, &ch, 1) != ST_OK)
            continue; /* over the cap: the rest of the line is dropped */
    }
    if (restore) {
        tcsetattr(fd, TCSANOW, &old);
        fputc('\n', out);
    }
    if (c == EOF && b.len == 0) {
        buf_release(&b);
        *line = NULL;
        return -1;
    }
    if (b.len && b.ptr[b.len - 1] == '\r')
        b.ptr[--b.len] = 0;
    *line = buf_take(&b);
    return 0;
}

static char *label_of(const struct var *x)
{
    const json_t *l = opt(x, "label");
    return l ? to_text(l) : xstrdup(x->name);
}

/* The question: "<hint> :" when the hint is a custom text, else "<verb> <label> :". */
static char *question(const struct var *x, const json_t *hint, const char *verb)
{
    char *l, *q;

    if (json_is_string(hint) && json_string_length(hint) &&
        strcmp(json_string_value(hint), x->name) != 0)
        return xasprintf("%s :", json_string_value(hint));
    if (hint && !json_is_string(hint) && !json_is_boolean(hint) && !json_is_null(hint)) {
        l = to_text(hint);
        q = xasprintf("%s :", l);
        free(l);
        return q;
    }
    l = label_of(x);
    q = xasprintf("%s %s :", verb, l);
    free(l);
    return q;
}

/* A numbered menu; *choice gets 1..n, or 0 for "the default / nothing" (empty answer with
 * dflt 0, or end of input). */
static void menu(struct vars *v, const char *q, char **items, size_t n, size_t dflt, size_t *choice)
{
    FILE *out = p_out(v);
    char *line;

    fprintf(out, "%s\n", q);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %zu. %s\n", i + 1, items[i]);
    *choice = dflt;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        char *end;
        unsigned long k;
        if (dflt)
            fprintf(out, "Choose 1-%zu (%zu): ", n, dflt);
        else
            fprintf(out, "Choose 1-%zu: ", n);
        if (read_answer(v, 1, &line) != 0)
            return;
        if (!*line) {
            free(line);
            if (dflt)
                return;
            continue;
        }
        errno = 0;
        k = strtoul(line, &end, 10);
        if (!errno && end != line && !*end && k >= 1 && k <= n) {
            free(line);
            *choice = k;
            return;
        }
        fprintf(out, "Invalid choice '%s'\n", line);
        free(line);
    }
}

/* Several of items; *chosen gets a list of 0-based indices in menu order. */
static void menu_multi(struct vars *v, const char *q, char **items, size_t n, json_t **chosen)
{
    FILE *out = p_out(v);
    char *line;

    fprintf(out, "%s\n", q);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %zu. %s\n", i + 1, items[i]);
    *chosen = json_array();
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        char *p, *end;
        int ok = 1;
        unsigned char *pick = xcalloc(n, 1);
        fprintf(out, "Choose any of 1-%zu, separated by commas or spaces (empty for none): ", n);
        if (read_answer(v, 1, &line) != 0) {
            free(pick);
            return;
        }
        for (p = line; *p;) {
            unsigned long k;
            if (*p == ',' || isspace((unsigned char)*p)) {
                p++;
                continue;
            }
            errno = 0;
            k = strtoul(p, &end, 10);
            if (errno || end == p || k < 1 || k > n) {
                ok = 0;
                break;
            }
            pick[k - 1] = 1;
            p = end;
        }
        if (ok) {
            for (size_t i = 0; i < n; i++)
                if (pick[i])
                    json_array_append_new(*chosen, json_integer((json_int_t)i));
            free(pick);
            free(line);
            return;
        }
        fprintf(out, "Invalid choice '%s'\n", line);
        free(pick);
        free(line);
    }
}

static enum status prompt_text(struct vars *v, struct var *x, const char *q, json_t **out,
                               struct err *re)
{
    int echo = opt_bool(x, "echo", 1);
    char *line, *d = NULL;

    if (x->dflt && echo)
        d = to_text(x->dflt);
    fprintf(p_out(v), d && *d ? "%s (%s) " : "%s ", q, d);
    free(d);
    if (read_answer(v, echo, &line) != 0 || !*line) {
        free(line);
        if (x->dflt)
            *out = json_incref(x->dflt);
        return ST_OK;
    }
    *out = json_string(line);
    free(line);
    if (!*out)
        return err_set(re, ST_INVALID, "Answer is not valid UTF-8 text");
    return ST_OK;
}

static enum status prompt_bool(struct vars *v, struct var *x, const char *q, json_t **out)
{
    int d = x->dflt ? bool_of(x, x->dflt) : 1;
    FILE *o = p_out(v);
    char *line;

    *out = json_boolean(d);
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        fprintf(o, "%s %s ", q, d ? "(Y/n)" : "(y/N)");
        if (read_answer(v, 1, &line) != 0)
            return ST_OK;
        for (char *p = line; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (!*line) {
            free(line);
            return ST_OK;
        }
        if (!strcmp(line, "y") || !strcmp(line, "yes") || !strcmp(line, "true")) {
            free(line);
            json_decref(*out);
            *out = json_true();
            return ST_OK;
        }
        if (!strcmp(line, "n") || !strcmp(line, "no") || !strcmp(line, "false")) {
            free(line);
            json_decref(*out);
            *out = json_false();
            return ST_OK;
        }
        fprintf(o, "Invalid answer '%s', answer y or n\n", line);
        free(line);
    }
    return ST_OK;
}

static enum status prompt_enum(struct vars *v, struct var *x, const char *q, json_t **out,
                               struct err *re)
{
    size_t n = json_array_size(x->enum_opts), dflt = 0, choice, i;
    int other = opt_bool(x, "can_be_other", 0);
    char **items = xcalloc(n + 1, sizeof(*items));
    char *dt = x->dflt ? to_text(x->dflt) : NULL;
    const json_t *o;
    enum status st = ST_OK;

    json_array_foreach(x->enum_opts, i, o)
    {
        char *l = to_text(json_object_get(o, "label"));
        char *d = to_text(json_object_get(o, "description"));
        char *val = to_text(json_object_get(o, "value"));
        items[i] = strcmp(l, d) ? xasprintf("%s (%s)", l, d) : xstrdup(l);
        if (dt && !dflt && strcmp(dt, val) == 0)
            dflt = i + 1;
        free(l);
        free(d);
        free(val);
    }
    if (other)
        items[n] = xstrdup("(Other)");
    menu(v, q, items, n + (other ? 1 : 0), dflt, &choice);
    if (choice >= 1 && choice <= n) {
        *out = json_deep_copy(json_object_get(json_array_get(x->enum_opts, choice - 1), "value"));
    } else if (choice == n + 1) {
        char *l = label_of(x), *q2 = xasprintf("Enter %s :", l);
        json_t *saved = x->dflt;
        x->dflt = NULL; /* the free-text answer has no default */
        st = prompt_text(v, x, q2, out, re);
        x->dflt = saved;
        free(q2);
        free(l);
    }
    for (i = 0; i <= n; i++)
        free(items[i]);
    free(items);
    free(dt);
    return st;
}

static enum status r_prompt(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                            struct err *re)
{
    char *q;
    enum status st;

    if (!v->host->interactive)
        return ST_OK;
    switch (x->type) {
    case T_ENUM:
        q = question(x, hint, "Select");
        st = prompt_enum(v, x, q, out, re);
        break;
    case T_BOOLEAN:
        q = question(x, hint, "Enable");
        st = prompt_bool(v, x, q, out);
        break;
    default:
        q = question(x, hint, "Enter");
        st = prompt_text(v, x, q, out, re);
        break;
    }
    free(q);
    return st;
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
    struct var *stack = find(v, "STACK");

    (void)x;
    if (!nonempty_string(hint))
        return err_set(re, ST_INVALID, "Service name missing");
    if (!v->host->service_instances || !stack || !json_is_string(stack->value))
        return ST_OK;
    *out = v->host->service_instances(v->host->ctx, json_string_value(stack->value),
                                      json_string_value(hint));
    return ST_OK;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return n == 0;
}

static enum status r_service_link(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                  struct err *re)
{
    const char *img = json_string_value(json_object_get(hint, "image"));
    const char *nm = json_string_value(json_object_get(hint, "name"));
    json_t *list, *ids = json_array();
    char **items = NULL;
    size_t n = 0, i, choice;
    const json_t *s;

    (void)re;
    if (!v->host->interactive || !v->host->service_list)
        goto out;
    list = v->host->service_list(v->host->ctx);
    json_array_foreach(list, i, s)
    {
        const char *id = json_string_value(json_object_get(s, "id"));
        const char *sn = json_string_value(json_object_get(s, "name"));
        const char *si = json_string_value(json_object_get(s, "image"));
        if (!id || (img && !(si && strstr(si, img))) || (nm && !(sn && strstr(sn, nm))))
            continue;
        items = xrealloc(items, (n + 2) * sizeof(*items));
        items[n++] = si ? xasprintf("%s (%s)", id, si) : xstrdup(id);
        json_array_append_new(ids, json_string(id));
    }
    json_decref(list);
    if (n == 0)
        goto out;
    if (!x->required)
        items[n] = xstrdup("<none>");
    menu(v, json_string_value(json_object_get(hint, "prompt")), items, n + !x->required, 0,
         &choice);
    if (choice >= 1 && choice <= n)
        *out = json_deep_copy(json_array_get(ids, choice - 1));
    for (i = 0; i < n + !x->required; i++)
        free(items[i]);
out:
    free(items);
    json_decref(ids);
    return ST_OK;
}

/* Multi-select over a list of strings from the master (certificates, vault secrets). */
static void pick_many(struct vars *v, const json_t *list, const char *q, int certs_only,
                      json_t **out)
{
    json_t *names = json_array(), *chosen = NULL;
    char **items = NULL;
    size_t n = 0, i;
    const json_t *it;

    json_array_foreach(list, i, it)
    {
        const char *s = json_string_value(it);
        if (!s || (certs_only && !contains_ci(s, "ssl") && !contains_ci(s, "cert")))
            continue;
        items = xrealloc(items, (n + 1) * sizeof(*items));
        items[n++] = xstrdup(s);
        json_array_append(names, (json_t *)it);
    }
    if (n) {
        menu_multi(v, q, items, n, &chosen);
        *out = json_array();
        json_array_foreach(chosen, i, it)
            json_array_append(*out, json_array_get(names, (size_t)json_integer_value(it)));
    }
    for (i = 0; i < n; i++)
        free(items[i]);
    free(items);
    json_decref(chosen);
    json_decref(names);
}

static enum status r_certificates(struct vars *v, struct var *x, const json_t *hint, json_t **out,
                                  struct err *re)
{
    json_t *list;
    char *q;

    (void)re;
    if (!v->host->interactive || !v->host->certificate_list)
        return ST_OK;
    q = nonempty_string(hint) && strcmp(json_string_value(hint), x->name)
            ? xstrdup(json_string_value(hint))
            : xstrdup("Select SSL certificates");
    list = v->host->certificate_list(v->host->ctx);
    pick_many(v, list, q, 0, out);
    json_decref(list);
    free(q);
    return ST_OK;
}

static enum status r_vault_cert_prompt(struct vars *v, struct var *x, const json_t *hint,
                                       json_t **out, struct err *re)
{
    json_t *list;
    char *q;

    (void)re;
    if (!v->host->interactive || !v->host->vault_list)
        return ST_OK;
    q = nonempty_string(hint) && strcmp(json_string_value(hint), x->name)
            ? xstrdup(json_string_value(hint))
            : xstrdup("Select SSL certs");
    list = v->host->vault_list(v->host->ctx);
    pick_many(v, list, q, 1, out);
    json_decref(list);
    free(q);
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
    {"prompt", r_prompt},
    {"vault", r_vault},
    {"service_instances", r_service_instances},
    {"service_link", r_service_link},
    {"certificates", r_certificates},
    {"vault_cert_prompt", r_vault_cert_prompt},
    {"default", r_default},
};

static enum status run_resolver(struct vars *v, struct var *x, const struct hinted *r, json_t **out)
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

static enum status resolve_var(struct vars *v, struct var *x)
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
    if ((c = opt(x, "skip_if"))) {
        if (cond_eval(v, c, 1, &r) != ST_OK)
            goto fail;
        x->skipped = r;
    }
    if (!x->skipped && (c = opt(x, "only_if"))) {
        if (cond_eval(v, c, 0, &r) != ST_OK)
            goto fail;
        x->skipped = !r;
    }
    if (x->skipped) {
        x->value = json_null();
        goto done;
    }
    if (x->cli)
        raw = json_incref(x->cli);
    else if ((c = opt(x, "value")))
        raw = json_incref((json_t *)c);
    for (size_t i = 0; !raw && i < x->nfrom; i++)
        if (run_resolver(v, x, &x->from[i], &raw) != ST_OK)
            goto fail;
    x->value = convert(x, raw, &why);
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
        char *val = to_text(x->value);
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
        if ((st = resolve_var(v, &v->v[i])) != ST_OK)
            goto out;
    }
    verr = xcalloc(v->n, sizeof(*verr));
    for (i = 0; i < v->n; i++) {
        struct var *x = &v->v[i];
        if (x->builtin || x->skipped)
            continue;
        if ((verr[i] = validate(x)))
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
    const struct var *x = find(v, name);

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
    const struct var *x = find(v, name);
    return x && !x->skipped && x->value && !json_is_null(x->value) && !json_is_false(x->value) &&
           !text_is_false(x->value);
}

json_t *vars_stored(const struct vars *v)
{
    json_t *o = json_object();

    for (size_t i = 0; i < v->n; i++) {
        const struct var *x = &v->v[i];
        int vault = 0;
        if (x->builtin)
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
