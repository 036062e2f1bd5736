/* cli/cmd_stack.c -- `kontena stack ls|show|rm|deploy|stop|restart|label` (cli.md §5): the
 * commands that act on installed stacks. The stack file commands (validate, install,
 * upgrade, apply) are in cmd_stack_file.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "cli/stackfile/ynode.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define POLL_MS 1000
#define REMOVE_WAIT_S 60
#define LABELS_MAX 41

static const char *jstr_or(const json_t *o, const char *key, const char *def)
{
    const char *s = jstr(o, key);

    return s ? s : def;
}

static void bput(struct buf *b, const char *s)
{
    if (buf_puts(b, s) != ST_OK)
        BUG_ON("uncapped buffer refused an append");
}

char *stack_path(const char *grid, const char *name, const char *suffix)
{
    char *g = cli_escape(grid), *n = cli_escape(name);
    char *p = xasprintf("/v1/stacks/%s/%s%s", g, n, suffix ? suffix : "");

    free(n);
    free(g);
    return p;
}

json_t *stack_fetch(struct cli *c, const char *grid, const char *name)
{
    char *path = stack_path(grid, name, NULL);
    json_t *stack = NULL;
    enum status st = api_get(c->api, path, &stack);

    free(path);
    if (st != ST_OK) {
        cli_fail_api(c);
        return NULL;
    }
    return stack;
}

/* Connect and find the grid; NULL after printing the error. */
static const char *connect_grid(struct cli *c, struct opts *o)
{
    if (cli_connect(c))
        return NULL;
    return cli_grid(c, o);
}

/* ---- stack ls ---- */

static const char *stack_icon(const json_t *stack)
{
    const char *state = jstr_or(stack, "state", "");

    if (!strcmp(state, "running"))
        return "⊛";
    if (!strcmp(state, "partially_running") || !strcmp(state, "deploying"))
        return "⊙";
    return "⊝";
}

/* Exposed ports of every service: "*:80->80/tcp", comma separated. Caller frees. */
static char *stack_ports(const json_t *stack)
{
    struct buf b = BUF_INIT;
    json_t *svc, *p;
    size_t i, k;

    json_array_foreach(json_object_get(stack, "services"), i, svc)
    {
        json_array_foreach(json_object_get(svc, "ports"), k, p)
        {
            const char *ip = jstr_or(p, "ip", "0.0.0.0");

            if (buf_printf(&b, "%s%s:%lld->%lld/%s", b.len ? ", " : "",
                           strcmp(ip, "0.0.0.0") ? ip : "*",
                           (long long)json_integer_value(json_object_get(p, "node_port")),
                           (long long)json_integer_value(json_object_get(p, "container_port")),
                           jstr_or(p, "protocol", "tcp")) != ST_OK)
                BUG_ON("uncapped buffer refused an append");
        }
    }
    return b.ptr ? buf_take(&b) : xstrdup("");
}

static char *stack_labels(const json_t *stack, int tty)
{
    struct buf b = BUF_INIT;
    json_t *l;
    size_t i;

    json_array_foreach(json_object_get(stack, "labels"), i, l)
    {
        if (i)
            bput(&b, ",");
        bput(&b, json_string_value(l) ? json_string_value(l) : "");
    }
    if (!b.len)
        return xstrdup("-");
    if (tty && b.len > LABELS_MAX) {
        b.ptr[LABELS_MAX] = '\0';
        b.len = LABELS_MAX;
        bput(&b, "...");
    }
    return buf_take(&b);
}

/* Add stack (and, below it, its children among list) to the table. */
static void add_stack_row(struct table *t, const json_t *list, const json_t *stack, int depth,
                          int tty, int quiet)
{
    const char *name = jstr_or(stack, "name", "");
    json_t *other;
    size_t i;

    if (quiet) {
        printf("%s\n", name);
    } else {
        char *label, *kind, *svcs, *ports, *labels;
        struct buf indent = BUF_INIT;

        for (int d = 1; d < depth; d++)
            bput(&indent, "   ");
        if (depth > 0 && tty)
            bput(&indent, "┗━ ");
        label = xasprintf("%s%s %s", indent.ptr ? indent.ptr : "", stack_icon(stack), name);
        kind = xasprintf("%s:%s", jstr_or(stack, "stack", ""), jstr_or(stack, "version", ""));
        svcs = xasprintf("%zu", json_array_size(json_object_get(stack, "services")));
        ports = stack_ports(stack);
        labels = stack_labels(stack, tty);
        {
            const char *row[] = {label, kind, svcs, jstr_or(stack, "state", ""), ports, labels};
            table_add(t, row);
        }
        free(label);
        free(kind);
        free(svcs);
        free(ports);
        free(labels);
        buf_release(&indent);
    }
    json_array_foreach(list, i, other)
    {
        const char *parent = jstr(json_object_get(other, "parent"), "name");

        if (parent && !strcmp(parent, name) && depth < 16)
            add_stack_row(t, list, other, depth + 1, tty, quiet);
    }
}

/* Whether stack's parent is in list (children are listed under it, not at the top). */
static int parent_listed(const json_t *list, const json_t *stack)
{
    const char *parent = jstr(json_object_get(stack, "parent"), "name");
    json_t *other;
    size_t i;

    if (!parent)
        return 0;
    json_array_foreach(list, i, other)
    {
        if (!strcmp(jstr_or(other, "name", ""), parent))
            return 1;
    }
    return 0;
}

static int cmd_stack_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"name",  "stack",         "services",
                                          "state", "exposed ports", "labels"};
    int json = cli_want_json(c, o), quiet = opts_flag(o, "quiet");
    int tty = output_tty(STDOUT_FILENO);
    const char *grid;
    char *g, *path;
    json_t *reply = NULL, *list, *stack;
    struct table *t;
    size_t i;

    if (json < 0 || !(grid = connect_grid(c, o)))
        return 1;
    g = cli_escape(grid);
    path = xasprintf("/v1/grids/%s/stacks", g);
    free(g);
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    if (json) {
        cli_print_json(reply);
        json_decref(reply);
        return 0;
    }
    list = json_object_get(reply, "stacks");
    t = table_create(headers, ARRAY_SIZE(headers));
    json_array_foreach(list, i, stack)
    {
        if (!parent_listed(list, stack))
            add_stack_row(t, list, stack, 0, tty, quiet);
    }
    if (!quiet)
        table_print(t, stdout);
    table_destroy(t);
    json_decref(reply);
    return 0;
}

/* ---- stack show ---- */

static void print_strings(const char *indent, const char *label, const json_t *list)
{
    json_t *item;
    size_t i;

    if (!json_array_size(list))
        return;
    printf("%s%s:\n", indent, label);
    json_array_foreach(list, i, item)
    {
        char *text = cli_json_text(item, "");
        printf("%s  - %s\n", indent, text);
        free(text);
    }
}

static void print_stack_service(const json_t *svc)
{
    const json_t *hs = json_object_get(svc, "health_status");
    const json_t *dopts = json_object_get(svc, "deploy_opts");
    json_t *item;
    size_t i;
    char *text;

    printf("    %s:\n", jstr_or(svc, "name", ""));
    printf("      created: %s\n", jstr_or(svc, "created_at", ""));
    printf("      updated: %s\n", jstr_or(svc, "updated_at", ""));
    printf("      image: %s\n", jstr_or(svc, "image", ""));
    /* The stack revision the service was last deployed from; empty before a deploy. */
    text = cli_json_text(json_object_get(svc, "stack_revision"), "");
    printf("      revision:%s%s\n", *text ? " " : "", text);
    free(text);
    printf("      state: %s\n", jstr_or(svc, "state", ""));
    if (json_is_object(hs)) {
        puts("      health_status:");
        printf("        healthy: %lld\n",
               (long long)json_integer_value(json_object_get(hs, "healthy")));
        printf("        total: %lld\n",
               (long long)json_integer_value(json_object_get(hs, "total")));
    }
    printf("      stateful: %s\n", json_is_true(json_object_get(svc, "stateful")) ? "yes" : "no");
    text = cli_json_text(json_object_get(svc, "instances"), "");
    printf("      scaling: %s\n", text);
    free(text);
    printf("      strategy: %s\n", jstr_or(svc, "strategy", "ha"));
    printf("      read_only: %s\n", json_is_true(json_object_get(svc, "read_only")) ? "yes" : "no");
    puts("      deploy_opts:");
    text = cli_json_text(json_object_get(dopts, "min_health"), "0.8");
    printf("        min_health: %s\n", text);
    free(text);
    /* As the original printed them: next to deploy_opts, not under it. */
    if (!json_is_null(json_object_get(dopts, "wait_for_port")) &&
        json_object_get(dopts, "wait_for_port")) {
        text = cli_json_text(json_object_get(dopts, "wait_for_port"), "");
        printf("      wait_for_port: %s\n", text);
        free(text);
    }
    if (!json_is_null(json_object_get(dopts, "interval")) && json_object_get(dopts, "interval")) {
        text = cli_json_text(json_object_get(dopts, "interval"), "");
        printf("      interval: %s\n", text);
        free(text);
    }
    printf("      dns: %s\n", jstr_or(svc, "dns", ""));
    print_strings("      ", "affinity", json_object_get(svc, "affinity"));
    if (json_array_size(json_object_get(svc, "secrets"))) {
        puts("      secrets:");
        json_array_foreach(json_object_get(svc, "secrets"), i, item)
            printf("        - %s (%s, %s)\n", jstr_or(item, "secret", ""),
                   jstr_or(item, "name", ""), jstr_or(item, "type", "env"));
    }
    if (json_array_size(json_object_get(svc, "cmd"))) {
        fputs("      cmd:", stdout);
        json_array_foreach(json_object_get(svc, "cmd"), i, item)
            printf(" %s", json_string_value(item) ? json_string_value(item) : "");
        fputc('\n', stdout);
    }
    if (json_array_size(json_object_get(svc, "ports"))) {
        puts("      ports:");
        json_array_foreach(json_object_get(svc, "ports"), i, item)
        {
            const char *ip = jstr_or(item, "ip", "0.0.0.0");

            printf("        - %s%s%lld:%lld/%s\n", strcmp(ip, "0.0.0.0") ? ip : "",
                   strcmp(ip, "0.0.0.0") ? ":" : "",
                   (long long)json_integer_value(json_object_get(item, "node_port")),
                   (long long)json_integer_value(json_object_get(item, "container_port")),
                   jstr_or(item, "protocol", "tcp"));
        }
    }
    print_strings("      ", "volumes", json_object_get(svc, "volumes"));
    print_strings("      ", "volumes_from", json_object_get(svc, "volumes_from"));
    if (json_array_size(json_object_get(svc, "links"))) {
        puts("      links:");
        json_array_foreach(json_object_get(svc, "links"), i, item)
            printf("        - %s => %s\n", jstr_or(item, "alias", ""), jstr_or(item, "id", ""));
    }
}

static void print_stack(const json_t *stack)
{
    const json_t *vars = json_object_get(stack, "variables");
    const json_t *meta = json_object_get(stack, "metadata");
    const char *parent = jstr(json_object_get(stack, "parent"), "name");
    json_t *item;
    size_t i;
    char *text;

    printf("%s:\n", jstr_or(stack, "name", ""));
    printf("  created: %s\n", jstr_or(stack, "created_at", ""));
    printf("  updated: %s\n", jstr_or(stack, "updated_at", ""));
    printf("  state: %s\n", jstr_or(stack, "state", ""));
    printf("  stack: %s\n", jstr_or(stack, "stack", ""));
    printf("  version: %s\n", jstr_or(stack, "version", ""));
    text = cli_json_text(json_object_get(stack, "revision"), "");
    printf("  revision: %s\n", text);
    free(text);
    printf("  expose: %s\n",
           jstr(stack, "expose") && *jstr(stack, "expose") ? jstr(stack, "expose") : "-");
    if (json_object_size(vars)) {
        struct buf b = BUF_INIT;

        puts("  variables:");
        yaml_render(vars, "    ", &b);
        fputs(b.ptr ? b.ptr : "", stdout);
        buf_release(&b);
    } else {
        puts("  variables: -");
    }
    if (json_object_size(meta)) {
        /* Through the Psych-style emitter, so scalars such as ">= 99.0.0" come out quoted
         * and the block reads back as YAML; without its "---" line, indented by four. */
        char *y = yaml_dump(meta);
        const char *line = strncmp(y, "---\n", 4) == 0 ? y + 4 : y;

        puts("  metadata:");
        while (*line) {
            size_t n = strcspn(line, "\n");

            printf("    %.*s\n", (int)n, line);
            line += n + (line[n] == '\n');
        }
        free(y);
    } else {
        puts("  metadata: -");
    }
    printf("  parent: %s\n", parent ? parent : "-");
    if (json_array_size(json_object_get(stack, "children"))) {
        puts("  children:");
        json_array_foreach(json_object_get(stack, "children"), i, item)
            printf("    - %s\n", jstr_or(item, "name", ""));
    }
    puts("  services:");
    json_array_foreach(json_object_get(stack, "services"), i, item) print_stack_service(item);
}

/* The stored variables as YAML; children's under "<dep>." prefixes are not included (they
 * are separate stacks). */
static char *values_yaml(const json_t *stack)
{
    json_t *vars = json_object_get(stack, "variables");
    json_t *empty = json_object();
    char *y = yaml_dump(json_is_object(vars) ? vars : empty);

    json_decref(empty);
    return y;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return cli_error("cannot write '%s': %s", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0)
        return cli_error("cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static int cmd_stack_show(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o), rc = 0;
    const char *grid, *to = opts_str(o, "values-to");
    json_t *stack;

    if (json < 0 || !(grid = connect_grid(c, o)))
        return 1;
    stack = stack_fetch(c, grid, o->args[0]);
    if (!stack)
        return 1;
    if (to || opts_flag(o, "values")) {
        char *y = values_yaml(stack);

        if (to)
            rc = write_file(to, y);
        if (opts_flag(o, "values"))
            fputs(y, stdout);
        free(y);
    } else if (json) {
        cli_print_json(stack);
    } else {
        print_stack(stack);
    }
    json_decref(stack);
    return rc;
}

/* ---- stack rm ---- */

static int remove_tree(struct cli *c, const char *grid, const char *name, int keep_deps, int depth)
{
    json_t *stack, *child, *reply = NULL;
    char *path;
    size_t i;
    int rc = 0;

    if (depth > 16)
        return cli_error("stack '%s': dependencies nested too deep", name);
    stack = stack_fetch(c, grid, name);
    if (!stack)
        return 1;
    if (!keep_deps) {
        json_array_foreach(json_object_get(stack, "children"), i, child)
        {
            const char *cname = jstr_or(child, "name", "");

            printf("> Removing dependency %s ..\n", cname);
            rc = remove_tree(c, grid, cname, keep_deps, depth + 1);
            if (rc)
                goto out;
        }
    }
    path = stack_path(grid, name, NULL);
    spinner_start(0, "Removing stack %s", name);
    if (api_call(c->api, "DELETE", path, NULL, &reply) != ST_OK)
        rc = cli_fail_api(c);
    else if (!(rc = cli_wait_gone(c, path, "stack", REMOVE_WAIT_S)))
        spinner_done();
    free(path);
out:
    json_decref(reply);
    json_decref(stack);
    return rc;
}

int stack_remove(struct cli *c, const char *grid, const char *name, int keep_deps)
{
    return remove_tree(c, grid, name, keep_deps, 0);
}

static int cmd_stack_rm(struct cli *c, struct opts *o)
{
    int force = opts_flag(o, "force"), keep = opts_flag(o, "keep-dependencies");
    const char *grid;

    if (!(grid = connect_grid(c, o)))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        const char *name = o->args[i];
        json_t *stack = stack_fetch(c, grid, name), *child;
        const char *parent;
        size_t k;

        if (!stack)
            return 1;
        if (!force) {
            parent = jstr(json_object_get(stack, "parent"), "name");
            if (parent)
                printf("Warning: The stack %s depends on stack %s\n", parent, name);
            if (json_array_size(json_object_get(stack, "children")) && !keep) {
                printf("Warning: The stack %s has dependencies that will be removed:\n", name);
                json_array_foreach(json_object_get(stack, "children"), k, child)
                    printf("- %s\n", jstr_or(child, "name", ""));
            }
        }
        json_decref(stack);
        if (confirm_command(name, force) || stack_remove(c, grid, name, keep))
            return 1;
    }
    return 0;
}

/* ---- stack deploy / stop / restart ---- */

/* A service deploy's service path from its service_id "grid/stack/svc". */
static char *deploy_service_path(const json_t *sd)
{
    const char *id = jstr_or(sd, "service_id", "");
    const char *s1 = strchr(id, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    char *g, *s, *n, *p;

    if (!s2)
        return NULL;
    g = xstrndup(id, (size_t)(s1 - id));
    s = xstrndup(s1 + 1, (size_t)(s2 - s1 - 1));
    n = xstrdup(s2 + 1);
    {
        char *eg = cli_escape(g), *es = cli_escape(s), *en = cli_escape(n);
        p = xasprintf("/v1/services/%s/%s/%s", eg, es, en);
        free(eg);
        free(es);
        free(en);
    }
    free(g);
    free(s);
    free(n);
    return p;
}

/* "Stack deploy failed" and " - <reason>" per failed service deploy. */
static int stack_deploy_failed(const json_t *d)
{
    json_t *sd;
    size_t i;

    if (spinner_active())
        spinner_fail();
    fflush(stdout);
    fputs("Stack deploy failed\n", stderr);
    json_array_foreach(json_object_get(d, "service_deploys"), i, sd)
    {
        if (!strcmp(jstr_or(sd, "state", ""), "error"))
            fprintf(stderr, " - %s\n", jstr_or(sd, "reason", "deploy failed"));
    }
    return 1;
}

int stack_deploy(struct cli *c, const char *grid, const char *name, int wait, long timeout_s)
{
    int64_t deadline = time_mono_ms() + (int64_t)timeout_s * 1000;
    char *path = stack_path(grid, name, "/deploy"), *dpath = NULL, *id;
    json_t *d = NULL, *sd;
    size_t i;
    int rc = 1;

    spinner_start(0, "Triggering deployment of stack %s", name);
    if (api_call(c->api, "POST", path, NULL, &d) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    spinner_done();
    if (!wait) {
        rc = 0;
        goto out;
    }
    if (!jstr(d, "id")) {
        rc = cli_error("the master answered the deploy without a deploy id");
        goto out;
    }
    id = cli_escape(jstr(d, "id"));
    free(path);
    path = xasprintf("/deploys/%s", id);
    free(id);
    dpath = stack_path(grid, name, path);
    {
        /* Say why it waits ("waiting for the scheduler") when the master says so. */
        const char *why = jstr_or(json_array_get(json_object_get(d, "service_deploys"), 0),
                                  "reason", NULL);
        if (why && *why)
            spinner_start(0, "Waiting for deployment to start (%s)", why);
        else
            spinner_start(0, "Waiting for deployment to start");
    }
    while (!strcmp(jstr_or(d, "state", "created"), "created")) {
        json_t *next = NULL;

        if (time_mono_ms() >= deadline) {
            const char *why = jstr_or(json_array_get(json_object_get(d, "service_deploys"), 0),
                                      "reason", NULL);
            rc = why && *why ? cli_error("deploy timed out: %s", why)
                             : cli_error("deploy timed out");
            goto out;
        }
        time_sleep_ms(POLL_MS);
        if (api_get(c->api, dpath, &next) != ST_OK) {
            rc = cli_fail_api(c);
            goto out;
        }
        json_decref(d);
        d = next;
    }
    if (!strcmp(jstr_or(d, "state", ""), "error") &&
        !json_array_size(json_object_get(d, "service_deploys"))) {
        rc = stack_deploy_failed(d);
        goto out;
    }
    spinner_done();
    json_array_foreach(json_object_get(d, "service_deploys"), i, sd)
    {
        char *spath = deploy_service_path(sd);
        const char *sid = jstr_or(sd, "service_id", "");
        const char *svc = strrchr(sid, '/') ? strrchr(sid, '/') + 1 : sid;
        char *label = xasprintf("Deploying service %s", svc);
        int64_t left = (deadline - time_mono_ms()) / 1000;

        if (!spath) {
            free(label);
            continue;
        }
        spinner_start(0, "%s", label);
        rc = cli_service_deploy_wait(c, spath, sd, label, left > 0 ? left : 1);
        free(label);
        free(spath);
        if (rc)
            goto out;
    }
    rc = 0;
out:
    free(dpath);
    free(path);
    json_decref(d);
    return rc;
}

static int cmd_stack_deploy(struct cli *c, struct opts *o)
{
    int wait = !opts_given(o, "wait") || opts_flag(o, "wait");
    long timeout = cli_deploy_timeout(c, o);
    const char *grid;

    if (timeout < 0 || !(grid = connect_grid(c, o)))
        return 1;
    for (int i = 0; i < o->nargs; i++)
        if (stack_deploy(c, grid, o->args[i], wait, timeout))
            return 1;
    return 0;
}

static int signal_stacks(struct cli *c, struct opts *o, const char *action)
{
    const char *grid;

    if (!(grid = connect_grid(c, o)))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        char *suffix = xasprintf("/%s", action);
        char *path = stack_path(grid, o->args[i], suffix);
        json_t *reply = NULL;
        enum status st;

        spinner_start(0, "Sending %s signal for stack %s services", action, o->args[i]);
        st = api_call(c->api, "POST", path, NULL, &reply);
        json_decref(reply);
        free(path);
        free(suffix);
        if (st != ST_OK)
            return cli_fail_api(c);
        spinner_done();
    }
    return 0;
}

static int cmd_stack_stop(struct cli *c, struct opts *o)
{
    return signal_stacks(c, o, "stop");
}

static int cmd_stack_restart(struct cli *c, struct opts *o)
{
    return signal_stacks(c, o, "restart");
}

/* ---- stack label ---- */

static int cmd_stack_label_ls(struct cli *c, struct opts *o)
{
    const char *grid;
    json_t *stack, *l;
    size_t i;

    if (!(grid = connect_grid(c, o)) || !(stack = stack_fetch(c, grid, o->args[0])))
        return 1;
    json_array_foreach(json_object_get(stack, "labels"), i, l)
        printf("%s\n", json_string_value(l) ? json_string_value(l) : "");
    json_decref(stack);
    return 0;
}

/* PATCH the labels: add (add != 0) or remove the given ones. */
static int label_change(struct cli *c, struct opts *o, int add)
{
    const char *grid;
    json_t *stack, *labels, *l, *body, *reply = NULL;
    char *path;
    size_t i;
    int rc = 0;

    if (!(grid = connect_grid(c, o)) || !(stack = stack_fetch(c, grid, o->args[0])))
        return 1;
    labels = json_array();
    json_array_foreach(json_object_get(stack, "labels"), i, l)
    {
        int drop = 0;

        for (int k = 1; k < o->nargs && !add; k++)
            drop |= json_string_value(l) && !strcmp(json_string_value(l), o->args[k]);
        if (!drop)
            json_array_append(labels, l);
    }
    for (int k = 1; k < o->nargs && add; k++) {
        int have = 0;

        json_array_foreach(labels, i, l)
        {
            have |= !strcmp(json_string_value(l), o->args[k]);
        }
        if (!have)
            json_array_append_new(labels, json_string(o->args[k]));
    }
    body = json_pack("{s:o}", "labels", labels);
    path = stack_path(grid, o->args[0], NULL);
    if (api_call(c->api, "PATCH", path, body, &reply) != ST_OK)
        rc = cli_fail_api(c);
    free(path);
    json_decref(reply);
    json_decref(body);
    json_decref(stack);
    return rc;
}

static int cmd_stack_label_add(struct cli *c, struct opts *o)
{
    return label_change(c, o, 1);
}

static int cmd_stack_label_rm(struct cli *c, struct opts *o)
{
    return label_change(c, o, 0);
}

#define STACK_NAMES ((const struct cli_param[]){{"NAME ...", "Stack name"}, CLI_PARAM_END})
#define STACK_LABEL_PARAMS                                                                         \
    ((const struct cli_param[]){{"NAME", "Stack name"}, {"LABEL ...", "key=value"}, CLI_PARAM_END})

const struct cli_cmd cli_stack_cmds[] = {
    {"stack", NULL, NULL, "Stack specific commands", NULL, NULL, 0},
    {"stack ls", "list", cmd_stack_ls, "List installed stacks", NULL,
     (const struct cli_opt[]){CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"stack show", NULL, cmd_stack_show, "Show a stack's details",
     (const struct cli_param[]){{"NAME", "Stack name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {0, "values", NULL, 0, "Output the stored variable values as YAML", NULL, NULL},
         {0, "values-to", "FILE", 0, "Write the stored variable values to a YAML file", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack rm", "remove", cmd_stack_rm, "Remove stacks (and their dependencies)", STACK_NAMES,
     (const struct cli_opt[]){
         {0, "force", NULL, 0, "Force remove (no confirmation)", NULL, NULL},
         {0, "keep-dependencies", NULL, 0, "Do not remove the stacks it depends on", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack deploy", "start", cmd_stack_deploy, "Deploy stacks", STACK_NAMES,
     (const struct cli_opt[]){
         {0, "wait", NULL, CLI_OPT_NEG, "Wait for the deploy to finish", "true", NULL},
         {0, "timeout", "SECONDS", CLI_OPT_INT, "How long to wait for the deploy", "600", NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack stop", NULL, cmd_stack_stop, "Stop the services of stacks", STACK_NAMES,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"stack restart", NULL, cmd_stack_restart, "Restart the services of stacks", STACK_NAMES,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    CLI_CMD_END,
};

const struct cli_cmd cli_stack_label_cmds[] = {
    {"stack logs", NULL, cli_cmd_stack_logs, "Show the logs of a stack's containers",
     (const struct cli_param[]){{"NAME", "Stack name"},
                                {"[SERVICE] ...", "Only these services of the stack"},
                                CLI_PARAM_END},
     (const struct cli_opt[]){
         CLI_LOG_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack stats", NULL, cli_cmd_stack_stats,
     "Show the latest statistics of a stack's containers",
     (const struct cli_param[]){{"NAME", "Stack name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         CLI_STATS_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"stack label", NULL, NULL, "Stack labels", NULL, NULL, 0},
    {"stack label ls", "list", cmd_stack_label_ls, "List a stack's labels",
     (const struct cli_param[]){{"NAME", "Stack name"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"stack label add", NULL, cmd_stack_label_add, "Add labels to a stack", STACK_LABEL_PARAMS,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"stack label rm", "remove", cmd_stack_label_rm, "Remove labels from a stack",
     STACK_LABEL_PARAMS, (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
