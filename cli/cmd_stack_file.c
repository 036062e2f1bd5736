/* cli/cmd_stack_file.c -- the stack commands that read a stack file: `kontena stack
 * validate|install|upgrade|apply` (cli.md §5, stack-file.md). `apply` is ours: install when
 * the stack is not there, else upgrade, and nothing at all when nothing would change. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "cli/stackfile/stackfile.h"
#include "cli/stackfile/ynode.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define MAX_DEPTH 16
#define VALUES_FILE_MAX (1u << 20)

static int want_flag(struct opts *o, const char *name) /* --[no-]x, default on */
{
    return !opts_given(o, name) || opts_flag(o, name);
}

/* ---- values from the command line ---- */

/* Stored values of an installed stack and, under "<dep>." prefixes, of its children. */
static int stored_values(struct cli *c, const char *grid, const char *name, const char *prefix,
                         json_t *out, int depth)
{
    json_t *stack, *child, *v;
    const char *k;
    size_t i;

    if (depth > MAX_DEPTH)
        return cli_error("stack '%s': dependencies nested too deep", name);
    stack = stack_fetch(c, grid, name);
    if (!stack)
        return 1;
    json_object_foreach(json_object_get(stack, "variables"), k, v)
    {
        char *key = xasprintf("%s%s", prefix, k);
        json_object_set(out, key, v);
        free(key);
    }
    json_array_foreach(json_object_get(stack, "children"), i, child)
    {
        const char *cname = jstr(child, "name") ? jstr(child, "name") : "";
        size_t n = strlen(name);
        char *p;
        int rc;

        /* Children are installed as <parent>-<dependency>. */
        if (strncmp(cname, name, n) != 0 || cname[n] != '-')
            continue;
        p = xasprintf("%s%s.", prefix, cname + n + 1);
        rc = stored_values(c, grid, cname, p, out, depth + 1);
        free(p);
        if (rc) {
            json_decref(stack);
            return rc;
        }
    }
    json_decref(stack);
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    buf_init(&b, VALUES_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) != ST_OK) {
            buf_release(&b);
            fclose(f);
            errno = EFBIG;
            return NULL;
        }
    }
    fclose(f);
    *len = b.len;
    if (!b.ptr && buf_append(&b, "", 0) != ST_OK)
        BUG_ON("empty append refused");
    return buf_take(&b);
}

/* --values-from FILE: a YAML mapping name → value. */
static int values_file(const char *path, json_t *out)
{
    struct err e = ERR_INIT;
    struct ynode *doc = NULL;
    size_t len = 0;
    char *text = read_file(path, &len);
    json_t *v;

    if (!text)
        return cli_error("cannot read '%s': %s", path, strerror(errno));
    if (ynode_parse(text, len, &doc, &e) != ST_OK) {
        free(text);
        return cli_error("Error while parsing %s : %s", path, e.msg);
    }
    free(text);
    v = ynode_to_json(doc);
    ynode_free(doc);
    if (!json_is_object(v)) {
        json_decref(v);
        return cli_error("%s: values must be a YAML mapping of name: value", path);
    }
    json_object_update(out, v);
    json_decref(v);
    return 0;
}

/* The values of -v NAME=VALUE > --values-from FILE > --values-from-stack STACK
 * (stack-file.md §6.7). grid NULL: offline, --values-from-stack needs a master. */
static int collect_values(struct cli *c, struct opts *o, const char *grid, json_t **out)
{
    const char *const *list;
    size_t n;

    *out = json_object();
    list = opts_list(o, "values-from-stack", &n);
    for (size_t i = 0; i < n; i++) {
        if (!grid)
            return cli_error("--values-from-stack needs a master: use --online");
        if (stored_values(c, grid, list[i], "", *out, 0))
            return 1;
    }
    list = opts_list(o, "values-from", &n);
    for (size_t i = 0; i < n; i++)
        if (values_file(list[i], *out))
            return 1;
    list = opts_list(o, "value", &n);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(list[i], '=');
        char *key;

        if (!eq || eq == list[i])
            return cli_error("invalid -v '%s': use NAME=VALUE", list[i]);
        key = xstrndup(list[i], (size_t)(eq - list[i]));
        json_object_set_new(*out, key, json_string(eq + 1));
        free(key);
    }
    return 0;
}

/* ---- reading and reporting ---- */

struct load {
    const char *source;
    const char *name;
    const char *grid; /* NULL: offline validation */
    const char *parent_name;
    json_t *values;   /* owned */
    json_t *defaults; /* owned, may be NULL */
    int skip_deps;
    struct vars_host *host; /* owned */
};

static void load_release(struct load *l)
{
    json_decref(l->values);
    json_decref(l->defaults);
    stackhost_destroy(l->host);
    memset(l, 0, sizeof(*l));
}

static int load_file(struct cli *c, struct load *l, struct stackfile **out)
{
    struct stackfile_opts so;
    struct err e = ERR_INIT;

    memset(&so, 0, sizeof(so));
    so.source = l->source;
    so.name = l->name;
    so.grid = l->grid;
    so.platform = l->grid;
    so.parent_name = l->parent_name;
    so.values = l->values;
    so.defaults = l->defaults;
    so.skip_dependencies = l->skip_deps;
    if (!l->host)
        l->host = stackhost_create(c, l->grid);
    so.host = l->host;
    so.msg = stderr;
    *out = NULL;
    if (stackfile_load(&so, out, &e) != ST_OK) {
        stackfile_free(*out);
        *out = NULL;
        return cli_error("%s", e.msg);
    }
    return 0;
}

/* Notifications and errors of sf and its children (children first), as stack-file.md §9.
 * Returns 1 when there are errors. prefix: name the source of every file. */
static int report_findings(const struct stackfile *sf, int prefix, int depth)
{
    int bad = 0;

    for (size_t i = 0; i < sf->nchildren; i++)
        bad |= report_findings(sf->children[i], prefix, depth + 1);
    fflush(stdout);
    if (json_array_size(sf->notifications)) {
        char *y = stackfile_findings_yaml(sf->notifications);
        fprintf(stderr,
                "YAML contains the following unsupported options and they were "
                "rejected:\n\n%s\n",
                y);
        free(y);
    }
    if (json_array_size(sf->errors)) {
        char *y = stackfile_findings_yaml(sf->errors);

        if (prefix || depth > 0)
            fprintf(stderr, "(%s) YAML validation failed! Aborting.\n\n%s\n", sf->source, y);
        else
            fprintf(stderr, " YAML validation failed! Aborting.\n\n%s\n", y);
        free(y);
        bad = 1;
    }
    return bad;
}

/* --values-to FILE: the values stored for the root stack, as YAML. */
static int values_to(struct opts *o, const struct stackfile *sf)
{
    const char *path = opts_has(o, "values-to") ? opts_str(o, "values-to") : NULL;
    json_t *vars, *empty;
    char *y;
    FILE *f;

    if (!path)
        return 0;
    empty = json_object();
    vars = json_object_get(sf->payload, "variables");
    y = yaml_dump(json_is_object(vars) ? vars : empty);
    json_decref(empty);
    f = fopen(path, "w");
    if (!f || fputs(y, f) == EOF || fclose(f) != 0) {
        free(y);
        return cli_error("cannot write '%s': %s", path, strerror(errno));
    }
    free(y);
    return 0;
}

/* ---- master version requirement (meta.required_kontena_version) ---- */

/* Compare dotted versions numerically: <0, 0, >0. */
static int vercmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);

        if (x != y)
            return x < y ? -1 : 1;
        a += strcspn(a, ".");
        b += strcspn(b, ".");
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
        if (!*a && !*b)
            break;
    }
    return 0;
}

/* One RubyGems-style clause: ">= 1.4.0", "~> 1.2", "1.0". */
static int clause_ok(const char *clause, const char *ver)
{
    char op[3] = "=";
    size_t n = 0;

    while (*clause == ' ')
        clause++;
    while (n < 2 && strchr("<>=!~", clause[n])) {
        op[n] = clause[n];
        n++;
    }
    op[n ? n : 1] = '\0';
    clause += n;
    while (*clause == ' ')
        clause++;
    if (!strcmp(op, ">="))
        return vercmp(ver, clause) >= 0;
    if (!strcmp(op, "<="))
        return vercmp(ver, clause) <= 0;
    if (!strcmp(op, ">"))
        return vercmp(ver, clause) > 0;
    if (!strcmp(op, "<"))
        return vercmp(ver, clause) < 0;
    if (!strcmp(op, "!="))
        return vercmp(ver, clause) != 0;
    if (!strcmp(op, "~>")) {
        /* ~> 1.2 means >= 1.2 and < 2.0; ~> 1.2.3 means >= 1.2.3 and < 1.3. */
        char *upper = xstrdup(clause), *last = strrchr(upper, '.');
        int ok;

        if (!last) {
            free(upper);
            return vercmp(ver, clause) >= 0;
        }
        *last = '\0';
        last = strrchr(upper, '.');
        {
            char *bump = last ? last + 1 : upper;
            char *nu = xasprintf("%.*s%ld", (int)(bump - upper), upper, strtol(bump, NULL, 10) + 1);
            ok = vercmp(ver, clause) >= 0 && vercmp(ver, nu) < 0;
            free(nu);
        }
        free(upper);
        return ok;
    }
    return vercmp(ver, clause) == 0;
}

static int version_ok(const char *req, const char *ver)
{
    char *copy = xstrdup(req), *p = copy;
    int ok = 1;

    while (p && ok) {
        char *comma = strchr(p, ',');

        if (comma)
            *comma = '\0';
        ok = clause_ok(p, ver);
        p = comma ? comma + 1 : NULL;
    }
    free(copy);
    return ok;
}

static int check_master_version(struct cli *c, const struct stackfile *sf, int force)
{
    const char *req = jstr(json_object_get(sf->payload, "metadata"), "required_kontena_version");
    json_t *root = NULL;
    char *ver, *q;
    int rc = 0;

    if (!req || !*req)
        return 0;
    if (api_get(c->api, "/", &root) != ST_OK)
        return cli_fail_api(c);
    ver = xstrdup(jstr(root, "version") ? jstr(root, "version") : "0");
    json_decref(root);
    if (!version_ok(req, ver)) {
        printf("Warning:  Stack requires kontena version %s but Master version is %s\n", req, ver);
        q = xstrdup("Are you sure? You can skip this prompt by running this command with "
                    "--force option");
        rc = confirm(q, force);
        free(q);
    }
    free(ver);
    return rc;
}

/* ---- install ---- */

static int create_stack(struct cli *c, const char *grid, const struct stackfile *sf,
                        const char *parent)
{
    json_t *body = json_deep_copy(sf->payload), *reply = NULL;
    char *g = cli_escape(grid), *path = xasprintf("/v1/grids/%s/stacks", g);
    int rc = 0;

    json_object_set_new(body, "name", json_string(sf->name));
    if (parent)
        json_object_set_new(body, "parent", json_pack("{s:s}", "name", parent));
    spinner_start(0, "Creating stack %s", sf->name);
    if (api_call(c->api, "POST", path, body, &reply) != ST_OK)
        rc = cli_fail_api(c);
    else
        spinner_done();
    json_decref(reply);
    json_decref(body);
    free(path);
    free(g);
    return rc;
}

/* Install sf's children (each before its parent), then sf. */
static int install_tree(struct cli *c, const char *grid, const struct stackfile *sf,
                        const char *parent, const char *caret)
{
    for (size_t i = 0; i < sf->nchildren; i++) {
        const struct stackfile *ch = sf->children[i];

        printf("> %s %s as %s ..\n", caret, ch->source, ch->name);
        if (install_tree(c, grid, ch, sf->name, caret))
            return 1;
    }
    return create_stack(c, grid, sf, parent);
}

/* Deploy every stack of the tree, children first. */
static int deploy_tree(struct cli *c, const char *grid, const struct stackfile *sf, int wait,
                       long timeout)
{
    for (size_t i = 0; i < sf->nchildren; i++)
        if (deploy_tree(c, grid, sf->children[i], wait, timeout))
            return 1;
    return stack_deploy(c, grid, sf->name, wait, timeout);
}

static int cmd_stack_install(struct cli *c, struct opts *o)
{
    struct load l = {0};
    struct stackfile *sf = NULL;
    long timeout = cli_deploy_timeout(c, o);
    const char *grid;
    int rc = 1;

    if (timeout < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    l.source = o->nargs ? o->args[0] : "kontena.yml";
    l.name = opts_str(o, "name");
    l.grid = grid;
    l.parent_name = opts_str(o, "parent-name");
    l.skip_deps = opts_flag(o, "skip-dependencies");
    if (collect_values(c, o, grid, &l.values) || load_file(c, &l, &sf))
        goto out;
    if (report_findings(sf, 0, 0) || values_to(o, sf) ||
        check_master_version(c, sf, opts_flag(o, "force")))
        goto out;
    if (install_tree(c, grid, sf, l.parent_name, "Installing dependency"))
        goto out;
    if (want_flag(o, "deploy") && deploy_tree(c, grid, sf, want_flag(o, "wait"), timeout))
        goto out;
    rc = 0;
out:
    stackfile_free(sf);
    load_release(&l);
    return rc;
}

/* ---- validate ---- */

static json_t *dependency_tree(const struct stackfile *sf)
{
    json_t *deps = json_array();
    char *stack = xasprintf("%s:%s", sf->stack ? sf->stack : "", sf->version ? sf->version : "");
    json_t *node;

    for (size_t i = 0; i < sf->nchildren; i++)
        json_array_append_new(deps, dependency_tree(sf->children[i]));
    node = json_pack("{s:s, s:s, s:o}", "name", sf->name ? sf->name : "", "stack", stack, "depends",
                     deps);
    free(stack);
    return node;
}

/* Every document of the tree, children first. */
static void print_validated(const struct stackfile *sf, int api_json, int with_source)
{
    for (size_t i = 0; i < sf->nchildren; i++)
        print_validated(sf->children[i], api_json, with_source);
    if (api_json) {
        cli_print_json(sf->payload);
        return;
    }
    {
        char *y = yaml_dump(sf->doc);
        const char *rest = y;

        if (!strncmp(y, "---\n", 4)) {
            fputs("---\n", stdout);
            rest = y + 4;
        }
        if (with_source)
            printf("# %s\n", sf->source);
        fputs(rest, stdout);
        free(y);
    }
}

static int cmd_stack_validate(struct cli *c, struct opts *o)
{
    const char *format = opts_str(o, "format");
    int online = opts_flag(o, "online"), rc = 1;
    struct load l = {0};
    struct stackfile *sf = NULL;

    if (format && strcmp(format, "yaml") && strcmp(format, "api-json"))
        return cli_usage_error(c->cmd->path, "option '--format': must be yaml or api-json");
    if (online) {
        if (cli_connect(c) || !(l.grid = cli_grid(c, o)))
            return 1;
    }
    l.source = o->nargs ? o->args[0] : "kontena.yml";
    l.name = opts_str(o, "name");
    l.parent_name = opts_str(o, "parent-name");
    l.skip_deps = !want_flag(o, "dependencies");
    if (collect_values(c, o, l.grid, &l.values) || load_file(c, &l, &sf))
        goto out;
    if (opts_flag(o, "dependency-tree")) {
        json_t *tree = dependency_tree(sf);
        char *y = yaml_dump(tree);

        fputs(y, stdout);
        free(y);
        json_decref(tree);
        rc = 0;
        goto out;
    }
    if (report_findings(sf, sf->nchildren > 0, 0) || values_to(o, sf))
        goto out;
    print_validated(sf, format && !strcmp(format, "api-json"), sf->nchildren > 0);
    rc = 0;
out:
    stackfile_free(sf);
    load_release(&l);
    return rc;
}

/* ---- upgrade and apply: the installed tree against the file's ---- */

struct installed {
    json_t *byname; /* name → stack JSON, the root and every descendant */
    json_t *order;  /* names, deepest first (children before their parent) */
};

static int read_installed(struct cli *c, const char *grid, const char *name, struct installed *in,
                          int depth)
{
    json_t *stack, *child;
    size_t i;

    if (depth > MAX_DEPTH)
        return cli_error("stack '%s': dependencies nested too deep", name);
    stack = stack_fetch(c, grid, name);
    if (!stack)
        return 1;
    /* Compare files with the stack's latest revision (what the next deploy applies), not
     * with the live services, which lag behind after an upgrade --no-deploy. */
    if (json_is_array(json_object_get(stack, "revision_services")))
        json_object_set(stack, "services", json_object_get(stack, "revision_services"));
    json_object_set_new(in->byname, name, stack);
    json_array_foreach(json_object_get(stack, "children"), i, child)
    {
        const char *cname = jstr(child, "name");

        if (cname && read_installed(c, grid, cname, in, depth + 1))
            return 1;
    }
    json_array_append_new(in->order, json_string(name));
    return 0;
}

static const struct stackfile *tree_find(const struct stackfile *sf, const char *name)
{
    if (sf->name && !strcmp(sf->name, name))
        return sf;
    for (size_t i = 0; i < sf->nchildren; i++) {
        const struct stackfile *f = tree_find(sf->children[i], name);
        if (f)
            return f;
    }
    return NULL;
}

/* The services of the file's stack, by name. */
static int has_service(const json_t *services, const char *name)
{
    json_t *s;
    size_t i;

    json_array_foreach(services, i, s)
    {
        if (jstr(s, "name") && !strcmp(jstr(s, "name"), name))
            return 1;
    }
    return 0;
}

/* "    ~ stack/svc" lines of an upgraded or replaced stack; sets *unsafe when a service goes. */
static void service_lines(const json_t *old, const json_t *payload, const char *name, int *unsafe)
{
    json_t *s;
    size_t i;

    json_array_foreach(json_object_get(payload, "services"), i, s)
    {
        const char *sn = jstr(s, "name") ? jstr(s, "name") : "";
        printf("    %c %s/%s\n", has_service(json_object_get(old, "services"), sn) ? '~' : '+',
               name, sn);
    }
    json_array_foreach(json_object_get(old, "services"), i, s)
    {
        const char *sn = jstr(s, "name") ? jstr(s, "name") : "";

        if (!has_service(json_object_get(payload, "services"), sn)) {
            printf("    - %s/%s\n", name, sn);
            *unsafe = 1;
        }
    }
}

struct plan {
    json_t *removed;  /* names, deepest first */
    json_t *added;    /* names of the file's stacks not installed */
    json_t *upgraded; /* names to PUT */
    json_t *replaced; /* names whose stack: changed */
    int unsafe;
};

static void plan_release(struct plan *p)
{
    json_decref(p->removed);
    json_decref(p->added);
    json_decref(p->upgraded);
    json_decref(p->replaced);
}

static int in_list(const json_t *list, const char *name)
{
    json_t *v;
    size_t i;

    json_array_foreach(list, i, v)
    {
        if (!strcmp(json_string_value(v), name))
            return 1;
    }
    return 0;
}

/* Fill the plan's added/upgraded/replaced from the file's tree (children first). For apply
 * (changes != NULL) a stack is upgraded only when stack_diff() finds something, and the
 * changes are collected per stack in changes (name → [lines]). */
static void plan_tree(const struct stackfile *sf, const struct installed *in, struct plan *p,
                      json_t *changes, int is_root)
{
    const json_t *old = json_object_get(in->byname, sf->name);

    for (size_t i = 0; i < sf->nchildren; i++)
        plan_tree(sf->children[i], in, p, changes, 0);
    if (!old) {
        json_array_append_new(p->added, json_string(sf->name));
        return;
    }
    if (jstr(old, "stack") && sf->stack && strcmp(jstr(old, "stack"), sf->stack) != 0) {
        json_array_append_new(p->replaced, json_string(sf->name));
        p->unsafe = 1;
    }
    if (changes) {
        json_t *lines = json_array();

        stack_diff(old, sf->payload, lines);
        if (json_array_size(lines))
            json_array_append_new(p->upgraded, json_string(sf->name));
        json_object_set_new(changes, sf->name, lines);
        return;
    }
    if (is_root || in_list(p->replaced, sf->name) ||
        !json_equal(json_object_get(old, "version"), json_object_get(sf->payload, "version")) ||
        !json_equal(json_object_get(old, "variables"), json_object_get(sf->payload, "variables")))
        json_array_append_new(p->upgraded, json_string(sf->name));
}

static void plan_make(const struct stackfile *sf, const struct installed *in, struct plan *p,
                      json_t *changes)
{
    json_t *v;
    size_t i;

    p->removed = json_array();
    p->added = json_array();
    p->upgraded = json_array();
    p->replaced = json_array();
    p->unsafe = 0;
    json_array_foreach(in->order, i, v)
    {
        if (!tree_find(sf, json_string_value(v))) {
            json_array_append(p->removed, v);
            p->unsafe = 1;
        }
    }
    plan_tree(sf, in, p, changes, 1);
}

/* The "Calculated changes" report of `stack upgrade` (cli.md §5). */
static void print_upgrade_report(const struct stackfile *sf, const struct installed *in,
                                 struct plan *p)
{
    json_t *v, *s;
    size_t i, k;

    printf("\n> Calculated changes:\n");
    json_array_foreach(p->removed, i, v)
    {
        const char *name = json_string_value(v);

        printf("  - %s\n", name);
        json_array_foreach(json_object_get(json_object_get(in->byname, name), "services"), k, s)
            printf("    - %s/%s\n", name, jstr(s, "name") ? jstr(s, "name") : "");
    }
    if (json_array_size(p->replaced)) {
        json_array_foreach(p->replaced, i, v)
        {
            const char *name = json_string_value(v);

            printf("  -/+ %s\n", name);
            service_lines(json_object_get(in->byname, name), tree_find(sf, name)->payload, name,
                          &p->unsafe);
        }
        json_array_foreach(p->replaced, i, v)
        {
            const char *name = json_string_value(v);

            printf("- %s from %s to %s\n", name, jstr(json_object_get(in->byname, name), "stack"),
                   tree_find(sf, name)->stack);
        }
        printf("\n");
    }
    json_array_foreach(p->added, i, v)
    {
        const char *name = json_string_value(v);

        printf("  + %s\n", name);
        json_array_foreach(json_object_get(tree_find(sf, name)->payload, "services"), k, s)
            printf("    + %s/%s\n", name, jstr(s, "name") ? jstr(s, "name") : "");
    }
    json_array_foreach(p->upgraded, i, v)
    {
        const char *name = json_string_value(v);

        printf("  ~ %s\n", name);
        service_lines(json_object_get(in->byname, name), tree_find(sf, name)->payload, name,
                      &p->unsafe);
    }
    printf("\n");
}

/* Whether a removed service is among the changes (unsafe). */
static void mark_removed_services(const struct stackfile *sf, const struct installed *in,
                                  struct plan *p)
{
    json_t *v, *s;
    size_t i, k;

    json_array_foreach(p->upgraded, i, v)
    {
        const json_t *old = json_object_get(in->byname, json_string_value(v));
        const struct stackfile *f = tree_find(sf, json_string_value(v));

        json_array_foreach(json_object_get(old, "services"), k, s)
        {
            if (f && !has_service(json_object_get(f->payload, "services"), jstr(s, "name")))
                p->unsafe = 1;
        }
    }
}

static int put_stack(struct cli *c, const char *grid, const struct stackfile *f, int is_root,
                     const char *parent)
{
    json_t *body = json_deep_copy(f->payload), *reply = NULL;
    char *path = stack_path(grid, f->name, NULL);
    int rc = 0;

    json_object_del(body, "name");
    if (parent)
        json_object_set_new(body, "parent", json_pack("{s:s}", "name", parent));
    spinner_start(0, "Upgrading %s %s", is_root ? "stack" : "dependency", f->name);
    if (api_call(c->api, "PUT", path, body, &reply) != ST_OK)
        rc = cli_fail_api(c);
    else
        spinner_done();
    json_decref(reply);
    json_decref(body);
    free(path);
    return rc;
}

/* Install the added stacks: an added stack whose parent is installed brings its subtree. */
static int install_added(struct cli *c, const char *grid, const struct stackfile *sf,
                         const struct plan *p)
{
    for (size_t i = 0; i < sf->nchildren; i++) {
        const struct stackfile *ch = sf->children[i];

        if (in_list(p->added, ch->name)) {
            printf("> Installing new dependency %s as %s ..\n", ch->source, ch->name);
            if (install_tree(c, grid, ch, sf->name, "Installing dependency"))
                return 1;
        } else if (install_added(c, grid, ch, p)) {
            return 1;
        }
    }
    return 0;
}

/* PUT the upgraded stacks, children first. */
static int upgrade_tree(struct cli *c, const char *grid, const struct stackfile *sf,
                        const struct plan *p, const char *parent)
{
    for (size_t i = 0; i < sf->nchildren; i++)
        if (upgrade_tree(c, grid, sf->children[i], p, sf->name))
            return 1;
    if (!in_list(p->upgraded, sf->name))
        return 0;
    return put_stack(c, grid, sf, parent == NULL, parent);
}

/* Deploy the stacks that were installed or upgraded, children first. */
static int deploy_changed(struct cli *c, const char *grid, const struct stackfile *sf,
                          const struct plan *p, int wait, long timeout)
{
    for (size_t i = 0; i < sf->nchildren; i++)
        if (deploy_changed(c, grid, sf->children[i], p, wait, timeout))
            return 1;
    if (!in_list(p->upgraded, sf->name) && !in_list(p->added, sf->name))
        return 0;
    return stack_deploy(c, grid, sf->name, wait, timeout);
}

static int execute_plan(struct cli *c, struct opts *o, const char *grid, const struct stackfile *sf,
                        const struct plan *p)
{
    json_t *v;
    size_t i;

    if (p->unsafe && !opts_flag(o, "force")) {
        printf("Warning: This can not be undone, data will be lost.\n");
        if (confirm(NULL, 0))
            return 1;
    }
    if (install_added(c, grid, sf, p) || upgrade_tree(c, grid, sf, p, NULL))
        return 1;
    if (want_flag(o, "deploy") &&
        deploy_changed(c, grid, sf, p, want_flag(o, "wait"), cli_deploy_timeout(c, o)))
        return 1;
    json_array_foreach(p->removed, i, v)
    {
        if (stack_remove(c, grid, json_string_value(v), 1))
            return 1;
    }
    return 0;
}

/* Read the installed tree and the file (with the stored values as defaults, or as values
 * with --reuse-values). */
static int load_for_upgrade(struct cli *c, struct opts *o, const char *grid, const char *name,
                            struct load *l, struct installed *in, struct stackfile **sf)
{
    json_t *stored = json_object();
    int rc;

    in->byname = json_object();
    in->order = json_array();
    spinner_start(0, "Reading stack %s from master", name);
    rc = read_installed(c, grid, name, in, 0) || stored_values(c, grid, name, "", stored, 0);
    if (rc) {
        json_decref(stored);
        return 1;
    }
    spinner_done();
    if (collect_values(c, o, grid, &l->values)) {
        json_decref(stored);
        return 1;
    }
    if (opts_flag(o, "reuse-values")) {
        json_t *merged = json_deep_copy(stored);

        json_object_update(merged, l->values);
        json_decref(l->values);
        l->values = merged;
    }
    l->defaults = stored;
    l->name = name;
    l->grid = grid;
    l->skip_deps = opts_flag(o, "skip-dependencies");
    /* A child keeps its parent. */
    l->parent_name = jstr(json_object_get(json_object_get(in->byname, name), "parent"), "name");
    if (load_file(c, l, sf))
        return 1;
    if (report_findings(*sf, 0, 0) || values_to(o, *sf) ||
        check_master_version(c, *sf, opts_flag(o, "force")))
        return 1;
    return 0;
}

static void installed_release(struct installed *in)
{
    json_decref(in->byname);
    json_decref(in->order);
}

static int cmd_stack_upgrade(struct cli *c, struct opts *o)
{
    struct load l = {0};
    struct installed in = {0};
    struct stackfile *sf = NULL;
    struct plan p = {0};
    const char *grid;
    int rc = 1;

    if (cli_deploy_timeout(c, o) < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    l.source = o->nargs > 1 ? o->args[1] : "kontena.yml";
    if (load_for_upgrade(c, o, grid, o->args[0], &l, &in, &sf))
        goto out;
    plan_make(sf, &in, &p, NULL);
    mark_removed_services(sf, &in, &p);
    print_upgrade_report(sf, &in, &p);
    if (opts_flag(o, "dry-run")) {
        rc = 0;
        goto out;
    }
    rc = execute_plan(c, o, grid, sf, &p);
out:
    plan_release(&p);
    installed_release(&in);
    stackfile_free(sf);
    load_release(&l);
    return rc;
}

/* ---- apply ---- */

/* The installed name a stack file asks for: the name part of its `stack:` value, read from
 * the raw YAML (stack-file.md §2 step 1). Caller frees; NULL after printing the error. */
static char *name_from_file(const char *source)
{
    struct err e = ERR_INIT;
    struct ynode *doc = NULL;
    const struct ynode *stack;
    size_t len = 0;
    char *text, *name = NULL;
    const char *v, *slash;

    if (strstr(source, "://")) {
        cli_error("stack apply of '%s' needs --name", source);
        return NULL;
    }
    text = read_file(source, &len);
    if (!text) {
        cli_error("Not found: no such file %s or invalid uri scheme", source);
        return NULL;
    }
    if (ynode_parse(text, len, &doc, &e) != ST_OK) {
        free(text);
        cli_error("Error while parsing %s : %s", source, e.msg);
        return NULL;
    }
    free(text);
    stack = ynode_get(doc, "stack");
    if (!ynode_is_str(stack) || !*(v = stack->text)) {
        ynode_free(doc);
        cli_error("%s: stack: Required field missing", source);
        return NULL;
    }
    slash = strchr(v, '/');
    v = slash ? slash + 1 : v;
    name = xstrndup(v, strcspn(v, ":"));
    ynode_free(doc);
    return name;
}

/* Print the changes of apply; returns how many lines there were. */
static size_t print_apply_changes(const struct stackfile *sf, const struct installed *in,
                                  const struct plan *p, const json_t *changes)
{
    size_t count = 0, i, k;
    json_t *v, *line, *s;

    json_array_foreach(p->added, i, v)
    {
        const char *name = json_string_value(v);

        printf("+ stack %s (new)\n", name);
        json_array_foreach(json_object_get(tree_find(sf, name)->payload, "services"), k, s)
            printf("  + %s: new service, image %s\n", jstr(s, "name") ? jstr(s, "name") : "",
                   jstr(s, "image") ? jstr(s, "image") : "-");
        count++;
    }
    json_array_foreach(p->upgraded, i, v)
    {
        const char *name = json_string_value(v);
        const json_t *old = json_object_get(in->byname, name);
        char *rev = cli_json_text(json_object_get(old, "revision"), "?");

        printf("~ stack %s (revision %s)\n", name, rev);
        free(rev);
        json_array_foreach(json_object_get(changes, name), k, line)
        {
            printf("  %s\n", json_string_value(line));
            count++;
        }
    }
    json_array_foreach(p->removed, i, v)
    {
        printf("- stack %s (no longer a dependency, will be removed)\n", json_string_value(v));
        count++;
    }
    return count;
}

static int cmd_stack_apply(struct cli *c, struct opts *o)
{
    struct load l = {0};
    struct installed in = {0};
    struct stackfile *sf = NULL;
    struct plan p = {0};
    json_t *changes = NULL, *probe = NULL;
    const char *grid;
    char *name = NULL, *path;
    int rc = 1, dry = opts_flag(o, "dry-run");
    enum status st;

    if (cli_deploy_timeout(c, o) < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    l.source = o->nargs ? o->args[0] : "kontena.yml";
    name = opts_str(o, "name") ? xstrdup(opts_str(o, "name")) : name_from_file(l.source);
    if (!name)
        return 1;
    path = stack_path(grid, name, NULL);
    st = api_get(c->api, path, &probe);
    free(path);
    json_decref(probe);
    if (st == ST_NOTFOUND) {
        /* Not installed: an install. */
        l.name = name;
        l.grid = grid;
        l.skip_deps = opts_flag(o, "skip-dependencies");
        if (collect_values(c, o, grid, &l.values) || load_file(c, &l, &sf) ||
            report_findings(sf, 0, 0) || values_to(o, sf) ||
            check_master_version(c, sf, opts_flag(o, "force")))
            goto out;
        if (dry) {
            struct installed none = {json_object(), json_array()};

            plan_make(sf, &none, &p, NULL);
            print_apply_changes(sf, &none, &p, NULL);
            printf("Dry run: stack %s is not installed; nothing was changed\n", name);
            installed_release(&none);
            rc = 0;
            goto out;
        }
        if (install_tree(c, grid, sf, NULL, "Installing dependency") ||
            (want_flag(o, "deploy") &&
             deploy_tree(c, grid, sf, want_flag(o, "wait"), cli_deploy_timeout(c, o))))
            goto out;
        rc = 0;
        goto out;
    }
    if (st != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    if (load_for_upgrade(c, o, grid, name, &l, &in, &sf))
        goto out;
    changes = json_object();
    plan_make(sf, &in, &p, changes);
    mark_removed_services(sf, &in, &p);
    if (!json_array_size(p.added) && !json_array_size(p.upgraded) && !json_array_size(p.removed)) {
        char *rev =
            cli_json_text(json_object_get(json_object_get(in.byname, name), "revision"), "?");
        printf("No changes: stack %s is up to date (revision %s)\n", name, rev);
        free(rev);
        rc = 0;
        goto out;
    }
    print_apply_changes(sf, &in, &p, changes);
    if (dry) {
        printf("Dry run: nothing was changed\n");
        rc = 0;
        goto out;
    }
    rc = execute_plan(c, o, grid, sf, &p);
out:
    json_decref(changes);
    plan_release(&p);
    installed_release(&in);
    stackfile_free(sf);
    load_release(&l);
    free(name);
    return rc;
}

/* ---- tables ---- */

#define VALUE_OPTS                                                                                 \
    {'v', "value", "NAME=VALUE", CLI_OPT_MULTI, "Set a variable value (repeatable)", NULL, NULL},  \
        {0,                                                                                        \
         "values-from",                                                                            \
         "FILE",                                                                                   \
         CLI_OPT_MULTI,                                                                            \
         "Read variable values from a YAML file (repeatable)",                                     \
         NULL,                                                                                     \
         NULL},                                                                                    \
        {0,                                                                                        \
         "values-from-stack",                                                                      \
         "STACK",                                                                                  \
         CLI_OPT_MULTI,                                                                            \
         "Read variable values from an installed stack",                                           \
         NULL,                                                                                     \
         NULL},                                                                                    \
    {                                                                                              \
        0, "values-to", "FILE", 0, "Write the variable values to a YAML file", NULL, NULL          \
    }
#define DEPLOY_OPTS                                                                                \
    {0, "deploy", NULL, CLI_OPT_NEG, "Deploy after the change", "true", NULL},                     \
        {0, "wait", NULL, CLI_OPT_NEG, "Wait for the deploys to finish", "true", NULL},            \
    {                                                                                              \
        0, "timeout", "SECONDS", CLI_OPT_INT, "How long to wait for each deploy", "600", NULL      \
    }
#define FILE_PARAM                                                                                 \
    ((const struct cli_param[]){{"[FILE]", "Stack file (default kontena.yml)"}, CLI_PARAM_END})

const struct cli_cmd cli_stack_file_cmds[] = {
    {"stack install", NULL, cmd_stack_install, "Install a stack from a stack file", FILE_PARAM,
     (const struct cli_opt[]){
         {'n', "name", "NAME", 0, "Installed name (default: from stack:)", NULL, NULL},
         VALUE_OPTS,
         DEPLOY_OPTS,
         {0, "skip-dependencies", NULL, 0, "Do not install the depends: stacks", NULL, NULL},
         {0, "force", NULL, 0, "Skip the version prompt", NULL, NULL},
         {0, "parent-name", "NAME", CLI_OPT_HIDDEN, "Parent stack", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack upgrade", NULL, cmd_stack_upgrade, "Upgrade an installed stack from a stack file",
     (const struct cli_param[]){
         {"NAME", "Stack name"}, {"[FILE]", "Stack file (default kontena.yml)"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         VALUE_OPTS,
         DEPLOY_OPTS,
         {0, "force", NULL, 0, "Do not ask before removing stacks or services", NULL, NULL},
         {0, "skip-dependencies", NULL, 0, "Do not process the depends: stacks", NULL, NULL},
         {0, "reuse-values", NULL, 0, "Use the stored values as values, not as defaults", NULL,
          NULL},
         {0, "dry-run", NULL, 0, "Only show what would change", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack apply", NULL, cmd_stack_apply,
     "Install a stack, or upgrade it when it is installed\n"
     "Nothing is written when the stack file would change nothing.",
     FILE_PARAM,
     (const struct cli_opt[]){
         {'n', "name", "NAME", 0, "Installed name (default: from stack:)", NULL, NULL},
         VALUE_OPTS,
         DEPLOY_OPTS,
         {0, "force", NULL, 0, "Do not ask before removing stacks or services", NULL, NULL},
         {0, "skip-dependencies", NULL, 0, "Do not process the depends: stacks", NULL, NULL},
         {0, "reuse-values", NULL, 0, "Use the stored values as values, not as defaults", NULL,
          NULL},
         {0, "dry-run", NULL, 0, "Only show what would change, key by key", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack validate", NULL, cmd_stack_validate, "Validate a stack file", FILE_PARAM,
     (const struct cli_opt[]){
         {'n', "name", "NAME", 0, "Installed name (default: from stack:)", NULL, NULL},
         VALUE_OPTS,
         {0, "online", NULL, 0, "Use the current master and grid", NULL, NULL},
         {0, "dependency-tree", NULL, 0, "Print the dependency tree", NULL, NULL},
         {0, "dependencies", NULL, CLI_OPT_NEG, "Validate the depends: stacks", "true", NULL},
         {0, "format", "FORMAT", 0, "Output format: yaml or api-json", "yaml", NULL},
         {0, "parent-name", "NAME", CLI_OPT_HIDDEN, "Parent stack", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
