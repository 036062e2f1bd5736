/* cli/opts.c -- option parser; the rules are in opts.h. */
#include "cli/opts.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#include "common/banned.h"

const struct cli_opt opts_global[] = {
    {'h', "help", NULL, 0, "print help", NULL, NULL},
    {'D', "debug", NULL, CLI_OPT_NEG, "Enable debug", NULL, "DEBUG"},
    CLI_OPT_END,
};

const struct cli_opt opts_toplevel[] = {
    {'v', "version", NULL, 0, "Output Kontena CLI version", NULL, NULL},
    CLI_OPT_END,
};

int opts_env_true(const char *v)
{
    if (!v || !*v)
        return 0;
    return strcmp(v, "false") != 0 && strcmp(v, "0") != 0 && strcmp(v, "no") != 0;
}

static void add_specs(struct opts *o, const struct cli_opt *list)
{
    const struct cli_opt *p;

    for (p = list; p && p->long_name; p++) {
        o->spec = xrealloc(o->spec, (o->nspec + 1) * sizeof(*o->spec));
        o->spec[o->nspec++] = p;
    }
}

static int find_long(const struct opts *o, const char *name, size_t len)
{
    for (size_t i = 0; i < o->nspec; i++)
        if (strlen(o->spec[i]->long_name) == len && strncmp(o->spec[i]->long_name, name, len) == 0)
            return (int)i;
    return -1;
}

static int find_short(const struct opts *o, char c)
{
    for (size_t i = 0; i < o->nspec; i++)
        if (o->spec[i]->short_name == c)
            return (int)i;
    return -1;
}

/* Record one occurrence of option i; value is NULL for flags. */
static enum status apply(struct opts *o, size_t i, const char *sw, const char *value, int neg,
                         struct err *e)
{
    const struct cli_opt *s = o->spec[i];
    struct optval *v = &o->val[i];

    if (s->flags & CLI_OPT_INT) {
        char *end;
        long n;

        errno = 0;
        n = strtol(value, &end, 10);
        if (errno || end == value || *end || n < INT_MIN || n > INT_MAX)
            return err_set(e, ST_INVALID, "option '%s': invalid value for Integer(): \"%s\"", sw,
                           value);
    }
    v->set = 1;
    v->neg = neg;
    v->str = value;
    if (s->flags & CLI_OPT_MULTI) {
        v->list = xrealloc(v->list, (v->nlist + 1) * sizeof(*v->list));
        v->list[v->nlist++] = value;
    }
    return ST_OK;
}

/* Name of a parameter without its arity decoration: "[NAME] ..." -> "NAME". */
static void param_label(const char *name, char *out, size_t len)
{
    size_t n = 0;

    for (; *name && n + 1 < len; name++) {
        if (*name == '[' || *name == ']')
            continue;
        if (*name == ' ')
            break;
        out[n++] = *name;
    }
    out[n] = '\0';
}

static enum status check_params(const struct opts *o, struct err *e)
{
    const struct cli_param *p;
    int required = 0, max = 0;

    for (p = o->cmd->params; p && p->name; p++) {
        size_t len = strlen(p->name);
        int multi = len > 4 && strcmp(p->name + len - 4, " ...") == 0;

        if (p->name[0] != '[') {
            if (required == o->nargs) {
                char label[64];

                param_label(p->name, label, sizeof(label));
                return err_set(e, ST_INVALID, "parameter '%s': no value provided", label);
            }
            required++;
        }
        max = multi ? INT_MAX : max + 1;
    }
    if (o->nargs > max)
        return err_set(e, ST_INVALID, "too many arguments");
    return ST_OK;
}

static enum status parse_long(struct opts *o, int argc, char **argv, int *i, struct err *e)
{
    const char *a = argv[*i] + 2, *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    char sw[128];
    int k, neg = 0;

    snprintf(sw, sizeof(sw), "--%.*s", (int)len, a);
    k = find_long(o, a, len);
    if (k < 0 && len > 3 && strncmp(a, "no-", 3) == 0) {
        k = find_long(o, a + 3, len - 3);
        if (k >= 0 && !(o->spec[k]->flags & CLI_OPT_NEG))
            k = -1;
        neg = 1;
    }
    if (k < 0)
        return err_set(e, ST_INVALID, "Unrecognised option '%s'", sw);
    if (!o->spec[k]->arg) {
        if (eq)
            return err_set(e, ST_INVALID, "option '%s': flag does not take a value", sw);
        return apply(o, (size_t)k, sw, NULL, neg, e);
    }
    if (eq)
        return apply(o, (size_t)k, sw, eq + 1, 0, e);
    if (*i + 1 >= argc)
        return err_set(e, ST_INVALID, "option '%s': no value provided", sw);
    (*i)++;
    return apply(o, (size_t)k, sw, argv[*i], 0, e);
}

static enum status parse_short(struct opts *o, int argc, char **argv, int *i, struct err *e)
{
    const char *a = argv[*i];

    for (size_t j = 1; a[j]; j++) {
        char sw[3] = {'-', a[j], '\0'};
        int k = find_short(o, a[j]);
        enum status st;

        if (k < 0)
            return err_set(e, ST_INVALID, "Unrecognised option '%s'", sw);
        if (!o->spec[k]->arg) {
            st = apply(o, (size_t)k, sw, NULL, 0, e);
            if (st != ST_OK)
                return st;
            if (!strcmp(o->spec[k]->long_name, "help") || !strcmp(o->spec[k]->long_name, "version"))
                return ST_OK; /* the rest of the word does not matter any more */
            continue;
        }
        if (a[j + 1])
            return apply(o, (size_t)k, sw, a + j + 1, 0, e);
        if (*i + 1 >= argc)
            return err_set(e, ST_INVALID, "option '%s': no value provided", sw);
        (*i)++;
        return apply(o, (size_t)k, sw, argv[*i], 0, e);
    }
    return ST_OK;
}

enum status opts_parse(struct opts *o, const struct cli_cmd *cmd, int argc, char **argv,
                       struct err *e)
{
    int only_args = 0, group = cmd->fn == NULL;
    enum status st;

    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    o->rest = argc;
    add_specs(o, cmd->opts);
    if (cmd->path[0] == '\0')
        add_specs(o, opts_toplevel);
    add_specs(o, opts_global);
    o->val = xcalloc(o->nspec, sizeof(*o->val));
    o->args = xcalloc((size_t)argc + 1, sizeof(*o->args));

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (!only_args && a[0] == '-' && a[1]) {
            if (!strcmp(a, "--")) {
                only_args = 1;
                continue;
            }
            st = a[1] == '-' ? parse_long(o, argc, argv, &i, e) : parse_short(o, argc, argv, &i, e);
            if (st != ST_OK)
                return st;
            /* Help and version act as soon as they are seen, like Clamp's. */
            if (opts_given(o, "help")) {
                o->help = 1;
                return ST_OK;
            }
            if (cmd->path[0] == '\0' && opts_given(o, "version")) {
                o->version = 1;
                return ST_OK;
            }
            continue;
        }
        if (group) {
            o->rest = i;
            return ST_OK;
        }
        o->args[o->nargs++] = argv[i];
    }
    if (group)
        return ST_OK;
    for (size_t k = 0; k < o->nspec; k++) {
        const struct cli_opt *s = o->spec[k];

        if ((s->flags & CLI_OPT_REQUIRED) && !o->val[k].set && !(s->env && getenv(s->env)))
            return err_set(e, ST_INVALID, "option '--%s' is required", s->long_name);
    }
    return check_params(o, e);
}

void opts_release(struct opts *o)
{
    for (size_t i = 0; o->val && i < o->nspec; i++)
        FREE_AND_NULL(o->val[i].list);
    FREE_AND_NULL(o->val);
    FREE_AND_NULL(o->spec);
    FREE_AND_NULL(o->args);
    o->nspec = 0;
    o->nargs = 0;
}

static size_t lookup(const struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->nspec; i++)
        if (!strcmp(o->spec[i]->long_name, name))
            return i;
    bug_fail(__FILE__, __LINE__, name);
}

int opts_has(const struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->nspec; i++)
        if (!strcmp(o->spec[i]->long_name, name))
            return 1;
    return 0;
}

int opts_given(const struct opts *o, const char *name)
{
    return o->val[lookup(o, name)].set;
}

const char *opts_str(const struct opts *o, const char *name)
{
    size_t i = lookup(o, name);
    const char *env;

    if (o->val[i].set)
        return o->val[i].str;
    env = o->spec[i]->env ? getenv(o->spec[i]->env) : NULL;
    if (env && *env)
        return env;
    return o->spec[i]->def;
}

int opts_flag(const struct opts *o, const char *name)
{
    size_t i = lookup(o, name);

    if (o->val[i].set)
        return !o->val[i].neg;
    return o->spec[i]->env ? opts_env_true(getenv(o->spec[i]->env)) : 0;
}

long opts_int(const struct opts *o, const char *name, long def)
{
    const char *v = opts_str(o, name);
    char *end;
    long n;

    if (!v)
        return def;
    n = strtol(v, &end, 10);
    return end == v || *end ? def : n;
}

const char *const *opts_list(const struct opts *o, const char *name, size_t *n)
{
    size_t i = lookup(o, name);

    *n = o->val[i].nlist;
    return o->val[i].list;
}
