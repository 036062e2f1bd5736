/* cli/cmd_service.c -- `kontena service ls|show|create|update|start|stop|restart|rm|link|
 * unlink` (cli.md §6). deploy and scale are in cmd_service_deploy.c, `service env` in
 * cmd_service_env.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/specparse.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* How long `service rm` waits for the service to be gone. */
#define REMOVE_WAIT_S 30

/* ---- names ---- */

/* A name segment must be non-empty and hold no further '/'. */
static int bad_segment(const char *s, size_t n)
{
    return n == 0 || memchr(s, '/', n) != NULL;
}

int svc_ref_parse(struct cli *c, struct opts *o, const char *typed, struct svc_ref *r)
{
    const char *s1 = strchr(typed, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    char *g, *st, *n;

    memset(r, 0, sizeof(*r));
    if (s2 && strchr(s2 + 1, '/'))
        return cli_error("invalid service name '%s': use svc, stack/svc or grid/stack/svc", typed);
    if (s2) {
        if (bad_segment(typed, (size_t)(s1 - typed)) || bad_segment(s1 + 1, (size_t)(s2 - s1 - 1)))
            return cli_error("invalid service name '%s': use svc, stack/svc or grid/stack/svc",
                             typed);
        r->grid = xstrndup(typed, (size_t)(s1 - typed));
        r->stack = xstrndup(s1 + 1, (size_t)(s2 - s1 - 1));
        r->name = xstrdup(s2 + 1);
    } else {
        const char *grid = cli_grid(c, o);

        if (!grid)
            return 1;
        r->grid = xstrdup(grid);
        if (s1) {
            r->stack = xstrndup(typed, (size_t)(s1 - typed));
            r->name = xstrdup(s1 + 1);
        } else {
            r->stack = xstrdup("null");
            r->name = xstrdup(typed);
        }
    }
    if (!*r->grid || !*r->stack || !*r->name) {
        svc_ref_release(r);
        return cli_error("invalid service name '%s': use svc, stack/svc or grid/stack/svc", typed);
    }
    g = cli_escape(r->grid);
    st = cli_escape(r->stack);
    n = cli_escape(r->name);
    r->path = xasprintf("/v1/services/%s/%s/%s", g, st, n);
    r->typed = xstrdup(typed);
    free(g);
    free(st);
    free(n);
    return 0;
}

void svc_ref_release(struct svc_ref *r)
{
    FREE_AND_NULL(r->grid);
    FREE_AND_NULL(r->stack);
    FREE_AND_NULL(r->name);
    FREE_AND_NULL(r->path);
    FREE_AND_NULL(r->typed);
}

/* "svc" for stack-less services, else "stack/svc". Caller frees. */
static char *short_name(const json_t *svc)
{
    const char *stack = jstr(json_object_get(svc, "stack"), "name");
    const char *name = jstr(svc, "name");

    if (!stack || !strcmp(stack, "null"))
        return xstrdup(name ? name : "");
    return xasprintf("%s/%s", stack, name ? name : "");
}

/* ---- health icons (shared look with stack ls) ---- */

static const char *health_icon(const json_t *svc)
{
    const json_t *hs = json_object_get(svc, "health_status");
    long long running =
        json_integer_value(json_object_get(json_object_get(svc, "instance_counts"), "running"));
    long long want = json_integer_value(json_object_get(svc, "instances"));
    const char *state = jstr(svc, "state");

    if (!state || strcmp(state, "running") != 0)
        return "⊝";
    /* A running service with a health check: all healthy, some, none. */
    if (json_is_object(hs)) {
        long long healthy = json_integer_value(json_object_get(hs, "healthy"));
        long long total = json_integer_value(json_object_get(hs, "total"));

        if (total > 0 && healthy >= total)
            return "⊛";
        return healthy > 0 ? "⊙" : "⊗";
    }
    if (running >= want && want > 0)
        return "⊛";
    return running > 0 ? "⊙" : "⊗";
}

/* "ip:node->container/proto" for each port, comma separated. Caller frees. */
static char *ports_text(const json_t *ports, int star_any)
{
    struct buf b = BUF_INIT;
    json_t *p;
    size_t i;

    json_array_foreach(ports, i, p)
    {
        const char *ip = jstr(p, "ip");

        if (!ip || (star_any && !strcmp(ip, "0.0.0.0")))
            ip = star_any ? "*" : "0.0.0.0";
        if (buf_printf(&b, "%s%s:%lld->%lld/%s", i ? ", " : "", ip,
                       (long long)json_integer_value(json_object_get(p, "node_port")),
                       (long long)json_integer_value(json_object_get(p, "container_port")),
                       jstr(p, "protocol") ? jstr(p, "protocol") : "tcp") != ST_OK)
            BUG_ON("uncapped buffer refused an append");
    }
    return b.ptr ? buf_take(&b) : xstrdup("");
}

/* ---- service ls ---- */

static int newer_first(const void *a, const void *b)
{
    const char *x = jstr(*(json_t *const *)a, "updated_at");
    const char *y = jstr(*(json_t *const *)b, "updated_at");

    return strcmp(y ? y : "", x ? x : "");
}

static int cmd_service_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"name", "instances", "stateful", "state",
                                          "exposed ports"};
    int json = cli_want_json(c, o);
    const char *grid, *stack = opts_str(o, "stack");
    char *g, *path, *q = NULL;
    json_t *reply = NULL, *list, **v;
    struct table *t;
    size_t n;

    if (json < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    g = cli_escape(grid);
    if (stack)
        q = cli_escape(stack);
    path = xasprintf("/v1/grids/%s/services%s%s", g, q ? "?stack=" : "", q ? q : "");
    free(g);
    free(q);
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
    list = json_object_get(reply, "services");
    n = json_array_size(list);
    v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(list, i);
    qsort(v, n, sizeof(*v), newer_first);
    if (opts_flag(o, "quiet")) {
        for (size_t i = 0; i < n; i++) {
            char *name = short_name(v[i]);
            printf("%s\n", name);
            free(name);
        }
        goto out;
    }
    t = table_create(headers, ARRAY_SIZE(headers));
    for (size_t i = 0; i < n; i++) {
        char *sn = short_name(v[i]);
        char *name = xasprintf("%s %s", health_icon(v[i]), sn);
        char *inst = xasprintf("%lld / %lld",
                               (long long)json_integer_value(json_object_get(
                                   json_object_get(v[i], "instance_counts"), "running")),
                               (long long)json_integer_value(json_object_get(v[i], "instances")));
        char *ports = ports_text(json_object_get(v[i], "ports"), 0);
        const char *row[] = {name, inst,
                             json_is_true(json_object_get(v[i], "stateful")) ? "yes" : "no",
                             jstr(v[i], "state"), ports};

        table_add(t, row);
        free(sn);
        free(name);
        free(inst);
        free(ports);
    }
    table_print(t, stdout);
    table_destroy(t);
out:
    free(v);
    json_decref(reply);
    return 0;
}

/* ---- service show ---- */

/* Memory as the original showed it: bytes divided by a power of 1000, truncated. */
static void print_bytes(const char *label, const json_t *v)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    long long n = json_integer_value(v);
    size_t u = 0;

    if (!json_is_integer(v) || n <= 0)
        return;
    while (u + 1 < ARRAY_SIZE(units) && n >= 1000) {
        n /= 1000;
        u++;
    }
    printf("  %s: %lld%s\n", label, n, units[u]);
}

/* "  key: value" when the value is a scalar that is set (not null, not ""). */
static void print_set(const char *indent, const char *label, const json_t *v)
{
    char *text;

    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
        return;
    text = cli_json_text(v, "");
    printf("%s%s: %s\n", indent, label, text);
    free(text);
}

/* "  key:" and "    - item" for a non-empty list of strings. */
static void print_list(const char *indent, const char *label, const json_t *list)
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

static void print_instances(const json_t *instances, const char *typed)
{
    json_t *inst, *ctr;
    size_t i, k;

    puts("  instances:");
    json_array_foreach(instances, i, inst)
    {
        const json_t *node = json_object_get(inst, "node");
        const char *nodename = jstr(node, "name");
        char *rev;

        printf("    %s/%lld:\n", typed,
               (long long)json_integer_value(json_object_get(inst, "instance_number")));
        printf("      scheduled_to: %s\n", nodename ? nodename : "-");
        rev = cli_json_text(json_object_get(inst, "deploy_rev"), "");
        printf("      deploy_rev: %s\n", rev);
        free(rev);
        rev = cli_json_text(json_object_get(inst, "rev"), "");
        printf("      rev: %s\n", rev);
        free(rev);
        printf("      state: %s\n", jstr(inst, "state") ? jstr(inst, "state") : "");
        print_set("      ", "error", json_object_get(inst, "error"));
        if (!json_array_size(json_object_get(inst, "containers")))
            continue;
        puts("      containers:");
        json_array_foreach(json_object_get(inst, "containers"), k, ctr)
        {
            const char *cnode = jstr(json_object_get(ctr, "node"), "name");
            const json_t *health = json_object_get(ctr, "health_status");

            printf("        %s (on %s):\n", jstr(ctr, "name") ? jstr(ctr, "name") : "",
                   cnode ? cnode : "-");
            print_set("          ", "dns", json_object_get(ctr, "hostname"));
            print_set("          ", "ip", json_object_get(ctr, "ip_address"));
            print_set("          ", "public ip",
                      json_object_get(json_object_get(ctr, "node"), "public_ip"));
            if (json_is_string(health))
                printf("          health: %s\n", json_string_value(health));
            print_set("          ", "status", json_object_get(ctr, "status"));
            print_set("          ", "reason", json_object_get(ctr, "reason"));
            if (json_integer_value(json_object_get(ctr, "exit_code")))
                print_set("          ", "exit code", json_object_get(ctr, "exit_code"));
        }
    }
}

static void print_service(const json_t *svc, const json_t *instances, const char *typed)
{
    const json_t *hc = json_object_get(svc, "health_check");
    const json_t *hs = json_object_get(svc, "health_status");
    const json_t *dopts = json_object_get(svc, "deploy_opts");
    const char *net = jstr(svc, "net");
    json_t *item;
    const char *key;
    size_t i;
    char *text;

    printf("%s:\n", jstr(svc, "id") ? jstr(svc, "id") : typed);
    printf("  created: %s\n", jstr(svc, "created_at") ? jstr(svc, "created_at") : "");
    printf("  updated: %s\n", jstr(svc, "updated_at") ? jstr(svc, "updated_at") : "");
    printf("  stack: %s\n", jstr(json_object_get(svc, "stack"), "id")
                                ? jstr(json_object_get(svc, "stack"), "id")
                                : "");
    printf("  desired_state: %s\n", jstr(svc, "state") ? jstr(svc, "state") : "");
    printf("  image: %s\n", jstr(svc, "image") ? jstr(svc, "image") : "");
    text = cli_json_text(json_object_get(svc, "revision"), "");
    printf("  revision: %s\n", text);
    free(text);
    print_set("  ", "stack_revision", json_object_get(svc, "stack_revision"));
    printf("  stateful: %s\n", json_is_true(json_object_get(svc, "stateful")) ? "yes" : "no");
    text = cli_json_text(json_object_get(svc, "instances"), "");
    printf("  scaling: %s\n", text);
    free(text);
    printf("  strategy: %s\n", jstr(svc, "strategy") ? jstr(svc, "strategy") : "ha");
    printf("  read_only: %s\n", json_is_true(json_object_get(svc, "read_only")) ? "yes" : "no");
    print_set("  ", "stop_signal", json_object_get(svc, "stop_signal"));
    text = cli_json_text(json_object_get(svc, "stop_grace_period"), "10");
    printf("  stop_grace_period: %ss\n", text);
    free(text);
    puts("  deploy_opts:");
    text = cli_json_text(json_object_get(dopts, "min_health"), "0.8");
    printf("    min_health: %s\n", text);
    free(text);
    print_set("    ", "wait_for_port", json_object_get(dopts, "wait_for_port"));
    print_set("    ", "interval", json_object_get(dopts, "interval"));
    printf("  dns: %s\n", jstr(svc, "dns") ? jstr(svc, "dns") : "");
    print_list("  ", "affinity", json_object_get(svc, "affinity"));
    if (json_array_size(json_object_get(svc, "cmd"))) {
        fputs("  cmd:", stdout);
        json_array_foreach(json_object_get(svc, "cmd"), i, item)
            printf(" %s", json_string_value(item) ? json_string_value(item) : "");
        fputc('\n', stdout);
    }
    if (json_array_size(json_object_get(svc, "hooks"))) {
        puts("  hooks:");
        json_array_foreach(json_object_get(svc, "hooks"), i, item)
            printf("    - %s: %s (%s)\n", jstr(item, "type") ? jstr(item, "type") : "",
                   jstr(item, "cmd") ? jstr(item, "cmd") : "",
                   jstr(item, "name") ? jstr(item, "name") : "");
    }
    if (json_array_size(json_object_get(svc, "secrets"))) {
        puts("  secrets:");
        json_array_foreach(json_object_get(svc, "secrets"), i, item)
            printf("    - secret: %s\n      name: %s\n      type: %s\n",
                   jstr(item, "secret") ? jstr(item, "secret") : "",
                   jstr(item, "name") ? jstr(item, "name") : "",
                   jstr(item, "type") ? jstr(item, "type") : "env");
    }
    if (json_array_size(json_object_get(svc, "certificates"))) {
        puts("  certificates:");
        json_array_foreach(json_object_get(svc, "certificates"), i, item)
            printf("    - subject: %s\n      name: %s\n      type: %s\n",
                   jstr(item, "subject") ? jstr(item, "subject") : "",
                   jstr(item, "name") ? jstr(item, "name") : "",
                   jstr(item, "type") ? jstr(item, "type") : "env");
    }
    /* env, ports and links only when non-empty, as the original; instances always. */
    if (json_array_size(json_object_get(svc, "env")))
        puts("  env:");
    json_array_foreach(json_object_get(svc, "env"), i, item)
        printf("    - %s\n", json_string_value(item) ? json_string_value(item) : "");
    if (net && strcmp(net, "bridge") != 0)
        printf("  net: %s\n", net);
    if (json_array_size(json_object_get(svc, "ports")))
        puts("  ports:");
    json_array_foreach(json_object_get(svc, "ports"), i, item)
    {
        const char *ip = jstr(item, "ip");

        printf("    - %s%s%lld:%lld/%s\n", ip && strcmp(ip, "0.0.0.0") ? ip : "",
               ip && strcmp(ip, "0.0.0.0") ? ":" : "",
               (long long)json_integer_value(json_object_get(item, "node_port")),
               (long long)json_integer_value(json_object_get(item, "container_port")),
               jstr(item, "protocol") ? jstr(item, "protocol") : "tcp");
    }
    print_list("  ", "volumes", json_object_get(svc, "volumes"));
    print_list("  ", "volumes_from", json_object_get(svc, "volumes_from"));
    print_list("  ", "cap_add", json_object_get(svc, "cap_add"));
    print_list("  ", "cap_drop", json_object_get(svc, "cap_drop"));
    if (json_array_size(json_object_get(svc, "links")))
        puts("  links:");
    json_array_foreach(json_object_get(svc, "links"), i, item)
        printf("    - %s\n", jstr(item, "alias") ? jstr(item, "alias") : "");
    print_set("  ", "log_driver", json_object_get(svc, "log_driver"));
    if (json_object_size(json_object_get(svc, "log_opts"))) {
        puts("  log_opts:");
        json_object_foreach(json_object_get(svc, "log_opts"), key, item)
        {
            text = cli_json_text(item, "");
            printf("    %s: %s\n", key, text);
            free(text);
        }
    }
    if (json_number_value(json_object_get(svc, "cpus")) > 0)
        print_set("  ", "cpus", json_object_get(svc, "cpus"));
    if (json_integer_value(json_object_get(svc, "cpu_shares")) > 0)
        print_set("  ", "cpu_shares", json_object_get(svc, "cpu_shares"));
    print_bytes("memory", json_object_get(svc, "memory"));
    print_bytes("memory_swap", json_object_get(svc, "memory_swap"));
    print_bytes("shm_size", json_object_get(svc, "shm_size"));
    print_set("  ", "pid", json_object_get(svc, "pid"));
    if (json_is_object(hc) && !json_is_null(json_object_get(hc, "protocol"))) {
        const char *proto = jstr(hc, "protocol");

        puts("  health check:");
        print_set("    ", "protocol", json_object_get(hc, "protocol"));
        if (proto && !strcmp(proto, "http"))
            print_set("    ", "uri", json_object_get(hc, "uri"));
        print_set("    ", "port", json_object_get(hc, "port"));
        print_set("    ", "timeout", json_object_get(hc, "timeout"));
        print_set("    ", "interval", json_object_get(hc, "interval"));
        print_set("    ", "initial_delay", json_object_get(hc, "initial_delay"));
    }
    if (json_is_object(hs)) {
        puts("  health status:");
        print_set("    ", "healthy", json_object_get(hs, "healthy"));
        print_set("    ", "total", json_object_get(hs, "total"));
    }
    print_instances(instances, typed);
}

static int cmd_service_show(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o), rc = 1;
    struct svc_ref r;
    json_t *svc = NULL, *inst = NULL;
    char *path;

    if (json < 0 || cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    if (api_get(c->api, r.path, &svc) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    if (json) {
        cli_print_json(svc);
        rc = 0;
        goto out;
    }
    /* Instances arrive with the scheduler; a master without the route shows none. */
    path = xasprintf("%s/instances", r.path);
    if (api_get(c->api, path, &inst) != ST_OK)
        inst = NULL;
    free(path);
    print_service(svc, json_object_get(inst, "instances"), r.typed);
    rc = 0;
out:
    json_decref(inst);
    json_decref(svc);
    svc_ref_release(&r);
    return rc;
}

/* ---- create / update: the service spec from options ---- */

/* Split a command line the way a POSIX shell (and Ruby's Shellwords) does: blanks separate
 * words, single quotes keep everything, double quotes keep all but \" \\ \$ \`, a backslash
 * outside quotes escapes the next character. Returns 0, or -1 for an unmatched quote. */
static int shell_split(const char *s, json_t *out)
{
    struct buf w = BUF_INIT;
    int in_word = 0;

    for (;;) {
        char ch = *s;

        if (ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n') {
            if (in_word) {
                json_array_append_new(out, json_stringn(w.ptr ? w.ptr : "", w.len));
                buf_reset(&w);
                in_word = 0;
            }
            if (ch == '\0')
                break;
            s++;
            continue;
        }
        in_word = 1;
        if (ch == '\'') {
            const char *end = strchr(s + 1, '\'');

            if (!end)
                goto bad;
            if (buf_append(&w, s + 1, (size_t)(end - s - 1)) != ST_OK)
                goto bad;
            s = end + 1;
        } else if (ch == '"') {
            for (s++; *s && *s != '"'; s++) {
                if (*s == '\\' && s[1] && strchr("\"\\$`", s[1]))
                    s++;
                if (buf_append(&w, s, 1) != ST_OK)
                    goto bad;
            }
            if (*s != '"')
                goto bad;
            s++;
        } else if (ch == '\\' && s[1]) {
            if (buf_append(&w, s + 1, 1) != ST_OK)
                goto bad;
            s += 2;
        } else {
            if (buf_append(&w, s, 1) != ST_OK)
                goto bad;
            s++;
        }
    }
    buf_release(&w);
    return 0;
bad:
    buf_release(&w);
    return -1;
}

static int parse_long(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || end == s || *end ? -1 : 0;
}

static int parse_float(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end ? -1 : 0;
}

/* "[ip:]node:container[/proto]" → {ip, node_port, container_port, protocol}. */
static json_t *parse_port(const char *s)
{
    struct spec_port p;

    if (spec_parse_port(s, &p, NULL) != ST_OK)
        return NULL;
    return json_pack("{s:s, s:i, s:i, s:s}", "ip", p.ip, "node_port", p.node_port, "container_port",
                     p.container_port, "protocol", p.protocol);
}

/* "svc[:alias]" → {name, alias}; the alias is the name as typed when not given. */
static json_t *parse_link(const char *s)
{
    const char *colon = strchr(s, ':');
    char *name = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
    json_t *l = NULL;

    if (*name && (!colon || colon[1]))
        l = json_pack("{s:s, s:s}", "name", name, "alias", colon ? colon + 1 : name);
    free(name);
    return l;
}

/* "secret:name[:type]" → {secret, name, type}. */
static json_t *parse_secret(const char *s)
{
    const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char *secret, *name;
    json_t *v = NULL;

    if (!c1 || c1 == s || c1[1] == '\0' || c2 == c1 + 1 || (c2 && !c2[1]))
        return NULL;
    secret = xstrndup(s, (size_t)(c1 - s));
    name = c2 ? xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)) : xstrdup(c1 + 1);
    v = json_pack("{s:s, s:s, s:s}", "secret", secret, "name", name, "type", c2 ? c2 + 1 : "env");
    free(secret);
    free(name);
    return v;
}

static json_t *str_list(struct opts *o, const char *name)
{
    const char *const *list;
    json_t *arr = json_array();
    size_t n;

    list = opts_list(o, name, &n);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(list[i]));
    return arr;
}

/* Set body[key] from repeatable option `name` when it was given. */
static void set_list(struct opts *o, json_t *body, const char *name, const char *key)
{
    if (opts_given(o, name))
        json_object_set_new(body, key, str_list(o, name));
}

static void set_str(struct opts *o, json_t *body, const char *name, const char *key)
{
    if (opts_given(o, name))
        json_object_set_new(body, key, json_string(opts_str(o, name)));
}

/* The members of a create or update body that the options give. Returns 0, or 1 after
 * printing the error. */
static int service_spec(struct opts *o, json_t *body)
{
    const char *const *list;
    const char *v;
    long long n;
    double f;
    size_t cnt;

    if (opts_given(o, "ports")) {
        json_t *arr = json_array();

        list = opts_list(o, "ports", &cnt);
        for (size_t i = 0; i < cnt; i++) {
            json_t *p = parse_port(list[i]);

            if (!p) {
                json_decref(arr);
                return cli_error("Invalid port value %s: use [ip:]node_port:container_port"
                                 "[/protocol]",
                                 list[i]);
            }
            json_array_append_new(arr, p);
        }
        json_object_set_new(body, "ports", arr);
    }
    set_list(o, body, "env", "env");
    if (opts_given(o, "link")) {
        json_t *arr = json_array();

        list = opts_list(o, "link", &cnt);
        for (size_t i = 0; i < cnt; i++) {
            json_t *l = parse_link(list[i]);

            if (!l) {
                json_decref(arr);
                return cli_error("invalid link '%s': use service[:alias]", list[i]);
            }
            json_array_append_new(arr, l);
        }
        json_object_set_new(body, "links", arr);
    }
    set_list(o, body, "volume", "volumes");
    set_list(o, body, "volumes-from", "volumes_from");
    set_list(o, body, "affinity", "affinity");
    set_list(o, body, "cap-add", "cap_add");
    set_list(o, body, "cap-drop", "cap_drop");
    if ((v = opts_str(o, "cpus")) != NULL) {
        if (parse_float(v, &f) || f <= 0)
            return cli_error("option '--cpus': invalid value for Float(): \"%s\"", v);
        json_object_set_new(body, "cpus", json_real(f));
    }
    if (opts_given(o, "cpu-shares"))
        json_object_set_new(body, "cpu_shares", json_integer(opts_int(o, "cpu-shares", 0)));
    if (opts_given(o, "instances"))
        json_object_set_new(body, "instances", json_integer(opts_int(o, "instances", 1)));
    static const char *const mems[][2] = {
        {"memory", "memory"}, {"memory-swap", "memory_swap"}, {"shm-size", "shm_size"}};
    for (size_t i = 0; i < ARRAY_SIZE(mems); i++) {
        if (!(v = opts_str(o, mems[i][0])))
            continue;
        if (spec_parse_memory(v, &n, NULL) != ST_OK)
            return cli_error("option '--%s': invalid size '%s' (use e.g. 512m or 1g)", mems[i][0],
                             v);
        json_object_set_new(body, mems[i][1], json_integer(n));
    }
    if ((v = opts_str(o, "cmd")) != NULL) {
        json_t *arr = json_array();

        if (shell_split(v, arr)) {
            json_decref(arr);
            return cli_error("option '--cmd': unmatched quote in '%s'", v);
        }
        json_object_set_new(body, "cmd", arr);
    }
    set_str(o, body, "user", "user");
    if (opts_has(o, "stateful"))
        json_object_set_new(body, "stateful", json_boolean(opts_flag(o, "stateful")));
    if (opts_given(o, "privileged"))
        json_object_set_new(body, "privileged", json_boolean(opts_flag(o, "privileged")));
    if (opts_has(o, "read-only") && opts_given(o, "read-only"))
        json_object_set_new(body, "read_only", json_boolean(opts_flag(o, "read-only")));
    set_str(o, body, "net", "net");
    set_str(o, body, "pid", "pid");
    set_str(o, body, "log-driver", "log_driver");
    if (opts_given(o, "log-opt")) {
        json_t *lo = json_object();

        list = opts_list(o, "log-opt", &cnt);
        for (size_t i = 0; i < cnt; i++) {
            const char *eq = strchr(list[i], '=');
            char *key;

            if (!eq || eq == list[i]) {
                json_decref(lo);
                return cli_error("invalid --log-opt '%s': use key=value", list[i]);
            }
            key = xstrndup(list[i], (size_t)(eq - list[i]));
            json_object_set_new(lo, key, json_string(eq + 1));
            free(key);
        }
        json_object_set_new(body, "log_opts", lo);
    }
    if ((v = opts_str(o, "deploy-strategy")) != NULL) {
        if (strcmp(v, "ha") && strcmp(v, "daemon") && strcmp(v, "random"))
            return cli_error("option '--deploy-strategy': must be ha, daemon or random, not '%s'",
                             v);
        json_object_set_new(body, "strategy", json_string(v));
    }
    if (opts_given(o, "deploy-wait-for-port") || opts_given(o, "deploy-min-health") ||
        opts_given(o, "deploy-interval")) {
        json_t *d = json_object();

        if (opts_given(o, "deploy-wait-for-port"))
            json_object_set_new(d, "wait_for_port",
                                json_integer(opts_int(o, "deploy-wait-for-port", 0)));
        if ((v = opts_str(o, "deploy-min-health")) != NULL) {
            if (parse_float(v, &f) || f < 0 || f > 1) {
                json_decref(d);
                return cli_error("option '--deploy-min-health': must be 0.0..1.0, not '%s'", v);
            }
            json_object_set_new(d, "min_health", json_real(f));
        }
        if ((v = opts_str(o, "deploy-interval")) != NULL) {
            if (spec_parse_interval(v, &n, NULL) != ST_OK) {
                json_decref(d);
                return cli_error("option '--deploy-interval': use e.g. 30s, 1min, 2h or 1d, "
                                 "not '%s'",
                                 v);
            }
            json_object_set_new(d, "interval", json_integer(n));
        }
        json_object_set_new(body, "deploy_opts", d);
    }
    if (opts_given(o, "secret")) {
        json_t *arr = json_array();

        list = opts_list(o, "secret", &cnt);
        for (size_t i = 0; i < cnt; i++) {
            json_t *s = parse_secret(list[i]);

            if (!s) {
                json_decref(arr);
                return cli_error("invalid --secret '%s': use secret:name:type", list[i]);
            }
            json_array_append_new(arr, s);
        }
        json_object_set_new(body, "secrets", arr);
    }
    if (opts_given(o, "health-check-uri") || opts_given(o, "health-check-timeout") ||
        opts_given(o, "health-check-interval") || opts_given(o, "health-check-initial-delay") ||
        opts_given(o, "health-check-port") || opts_given(o, "health-check-protocol")) {
        json_t *hc = json_object();

        if ((v = opts_str(o, "health-check-port")) != NULL) {
            if (!strcmp(v, "none")) {
                json_object_set_new(hc, "port", json_null());
            } else if (parse_long(v, &n) || n < 1 || n > 65535) {
                json_decref(hc);
                return cli_error("option '--health-check-port': must be 1..65535 or none");
            } else {
                json_object_set_new(hc, "port", json_integer(n));
            }
        }
        if ((v = opts_str(o, "health-check-protocol")) != NULL)
            json_object_set_new(hc, "protocol", !strcmp(v, "none") ? json_null() : json_string(v));
        set_str(o, hc, "health-check-uri", "uri");
        if (opts_given(o, "health-check-timeout"))
            json_object_set_new(hc, "timeout",
                                json_integer(opts_int(o, "health-check-timeout", 10)));
        if (opts_given(o, "health-check-interval"))
            json_object_set_new(hc, "interval",
                                json_integer(opts_int(o, "health-check-interval", 60)));
        if (opts_given(o, "health-check-initial-delay"))
            json_object_set_new(hc, "initial_delay",
                                json_integer(opts_int(o, "health-check-initial-delay", 10)));
        json_object_set_new(body, "health_check", hc);
    }
    if ((v = opts_str(o, "stop-signal")) != NULL) {
        if (!spec_valid_stop_signal(v))
            return cli_error("option '--stop-signal': invalid signal '%s'", v);
        json_object_set_new(body, "stop_signal", json_string(v));
    }
    if ((v = opts_str(o, "stop-timeout")) != NULL) {
        if (spec_parse_duration(v, &f, NULL) != ST_OK)
            return cli_error("option '--stop-timeout': use a duration such as 30s or 1m23s, "
                             "not '%s'",
                             v);
        json_object_set_new(body, "stop_grace_period", json_string(v));
    }
    return 0;
}

/* Docker's default tag, added only when the image has no ':' at all (stack-file.md §13.11). */
static json_t *image_with_tag(const char *image)
{
    if (strchr(image, ':'))
        return json_string(image);
    return json_sprintf("%s:latest", image);
}

static int cmd_service_create(struct cli *c, struct opts *o)
{
    const char *name = o->args[0], *grid, *slash = strchr(name, '/');
    json_t *body = json_object(), *reply = NULL;
    char *g = NULL, *path = NULL;
    int rc = 1;

    json_object_set_new(body, "image", image_with_tag(o->args[1]));
    if (slash) {
        /* "stack/svc": a service of an existing stack. */
        char *stack = xstrndup(name, (size_t)(slash - name));
        json_object_set_new(body, "stack", json_string(stack));
        free(stack);
        name = slash + 1;
    }
    json_object_set_new(body, "name", json_string(name));
    if (service_spec(o, body) || cli_connect(c) || !(grid = cli_grid(c, o)))
        goto out;
    g = cli_escape(grid);
    path = xasprintf("/v1/grids/%s/services", g);
    spinner_start(0, "Creating %s service", o->args[0]);
    if (api_call(c->api, "POST", path, body, &reply) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    spinner_done();
    rc = 0;
out:
    free(path);
    free(g);
    json_decref(reply);
    json_decref(body);
    return rc;
}

static int cmd_service_update(struct cli *c, struct opts *o)
{
    json_t *body = json_object(), *reply = NULL;
    struct svc_ref r = {0};
    int rc = 1;

    if (opts_str(o, "image"))
        json_object_set_new(body, "image", image_with_tag(opts_str(o, "image")));
    if (service_spec(o, body) || cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        goto out;
    spinner_start(0, "Updating %s service", r.typed);
    if (api_call(c->api, "PUT", r.path, body, &reply) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    spinner_done();
    rc = 0;
out:
    svc_ref_release(&r);
    json_decref(reply);
    json_decref(body);
    return rc;
}

/* ---- start / stop / restart ---- */

/* POST <service>/<action> for each named service under a spinner. */
static int post_each(struct cli *c, struct opts *o, const char *action, const char *what)
{
    if (cli_connect(c))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        struct svc_ref r;
        json_t *reply = NULL;
        char *path;
        enum status st;

        if (svc_ref_parse(c, o, o->args[i], &r))
            return 1;
        path = xasprintf("%s/%s", r.path, action);
        spinner_start(0, "Sending %s signal to %s service", what, r.typed);
        st = api_call(c->api, "POST", path, NULL, &reply);
        json_decref(reply);
        free(path);
        svc_ref_release(&r);
        if (st != ST_OK)
            return cli_fail_api(c);
        spinner_done();
    }
    return 0;
}

static int cmd_service_start(struct cli *c, struct opts *o)
{
    return post_each(c, o, "start", "start");
}

static int cmd_service_stop(struct cli *c, struct opts *o)
{
    return post_each(c, o, "stop", "stop");
}

static int cmd_service_restart(struct cli *c, struct opts *o)
{
    return post_each(c, o, "restart", "restart");
}

/* ---- rm ---- */

/* Remove instance number `which` of the service (detach it so the scheduler re-places it). */
static int remove_instance(struct cli *c, const struct svc_ref *r, const char *which)
{
    json_t *reply = NULL, *inst, *found = NULL;
    char *path = xasprintf("%s/instances", r->path), *id;
    long long want;
    size_t i;
    int rc;

    if (parse_long(which, &want)) {
        free(path);
        return cli_error("option '--instance': invalid value for Integer(): \"%s\"", which);
    }
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    json_array_foreach(json_object_get(reply, "instances"), i, inst)
    {
        if (json_integer_value(json_object_get(inst, "instance_number")) == want)
            found = inst;
    }
    if (!found || !jstr(found, "id")) {
        free(path);
        json_decref(reply);
        return cli_error("Instance not found");
    }
    id = cli_escape(jstr(found, "id"));
    free(path);
    path = xasprintf("%s/instances/%s", r->path, id);
    spinner_start(0, "Removing instance %s of service %s", which, r->typed);
    rc = cli_api_delete(c, path);
    free(id);
    free(path);
    json_decref(reply);
    return rc;
}

static int cmd_service_rm(struct cli *c, struct opts *o)
{
    int force = opts_flag(o, "force");

    if (cli_connect(c))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        struct svc_ref r;
        json_t *reply = NULL;
        enum status st;
        int rc;

        if (svc_ref_parse(c, o, o->args[i], &r))
            return 1;
        if (opts_str(o, "instance")) {
            rc = confirm(NULL, force) || remove_instance(c, &r, opts_str(o, "instance"));
            svc_ref_release(&r);
            if (rc)
                return 1;
            continue;
        }
        if (confirm_command(r.typed, force)) {
            svc_ref_release(&r);
            return 1;
        }
        spinner_start(0, "Removing service %s", r.typed);
        st = api_call(c->api, "DELETE", r.path, NULL, &reply);
        json_decref(reply);
        rc = st != ST_OK ? cli_fail_api(c) : cli_wait_gone(c, r.path, "service", REMOVE_WAIT_S);
        if (!rc)
            spinner_done();
        svc_ref_release(&r);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- link / unlink ---- */

/* The link `name` the API takes for an existing link's id "grid/stack/svc", relative to a
 * service of stack own_stack: "svc" within the same stack, else "stack/svc". */
static char *link_name_of(const char *id, const char *own_stack)
{
    const char *s1 = id ? strchr(id, '/') : NULL, *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

    if (!s2)
        return xstrdup(id ? id : "");
    if ((size_t)(s2 - s1 - 1) == strlen(own_stack) &&
        !strncmp(s1 + 1, own_stack, strlen(own_stack)))
        return xstrdup(s2 + 1);
    return xstrdup(s1 + 1);
}

/* The id "grid/stack/svc" a typed link target stands for: without '/', a stack-less
 * service (cli.md §6). */
static char *target_id(const struct svc_ref *r, const char *target)
{
    if (strchr(target, '/'))
        return xasprintf("%s/%s", r->grid, target);
    return xasprintf("%s/null/%s", r->grid, target);
}

/* The service's links in the form a PUT takes, leaving out the one with id `skip_id`. */
static json_t *links_body(const json_t *svc, const struct svc_ref *r, const char *skip_id)
{
    json_t *out = json_array(), *l;
    size_t i;

    json_array_foreach(json_object_get(svc, "links"), i, l)
    {
        const char *id = jstr(l, "id");
        char *name;

        if (skip_id && id && !strcmp(id, skip_id))
            continue;
        name = link_name_of(id, r->stack);
        json_array_append_new(out, json_pack("{s:s, s:s}", "name", name, "alias",
                                             jstr(l, "alias") ? jstr(l, "alias") : name));
        free(name);
    }
    return out;
}

static int link_change(struct cli *c, struct opts *o, int add)
{
    const char *target = o->args[1];
    struct svc_ref r;
    json_t *svc = NULL, *links, *l, *body = NULL, *reply = NULL;
    char *want = NULL;
    int rc = 1, linked = 0;
    size_t i;

    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    if (api_get(c->api, r.path, &svc) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    want = target_id(&r, target);
    json_array_foreach(json_object_get(svc, "links"), i, l)
    {
        if (jstr(l, "id") && !strcmp(jstr(l, "id"), want))
            linked = 1;
    }
    if (add && linked) {
        rc = cli_error("Service is already linked to %s", target);
        goto out;
    }
    if (!add && !linked) {
        rc = cli_error("Service is not linked to %s", target);
        goto out;
    }
    links = links_body(svc, &r, add ? NULL : want);
    if (add) {
        /* A stack-less target from a stack service needs its pseudo-stack spelled out. */
        char *name = strchr(target, '/') || !strcmp(r.stack, "null") ? xstrdup(target)
                                                                     : xasprintf("null/%s", target);
        json_array_append_new(links, json_pack("{s:s, s:s}", "name", name, "alias", target));
        free(name);
    }
    body = json_pack("{s:o}", "links", links);
    if (api_call(c->api, "PUT", r.path, body, &reply) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    rc = 0;
out:
    free(want);
    json_decref(reply);
    json_decref(body);
    json_decref(svc);
    svc_ref_release(&r);
    return rc;
}

static int cmd_service_link(struct cli *c, struct opts *o)
{
    return link_change(c, o, 1);
}

static int cmd_service_unlink(struct cli *c, struct opts *o)
{
    return link_change(c, o, 0);
}

/* ---- tables ---- */

#define SVC_PARAM ((const struct cli_param[]){{"NAME", "Service name"}, CLI_PARAM_END})
#define SVC_PARAMS ((const struct cli_param[]){{"NAME ...", "Service name"}, CLI_PARAM_END})

/* Options of create and update (update adds --image and drops --stateful/--read-only). */
#define SVC_SPEC_OPTS                                                                                \
    {                                                                                                \
        'p',                                                                                         \
        "ports",                                                                                     \
        "PORTS",                                                                                     \
        CLI_OPT_MULTI,                                                                               \
        "Publish a port: [ip:]node_port:container_port[/proto]",                                     \
        NULL,                                                                                        \
        NULL},                                                                                       \
        {'e', "env", "ENV", CLI_OPT_MULTI, "Environment variable KEY=VALUE", NULL, NULL},            \
        {'l', "link", "LINK", CLI_OPT_MULTI, "Link to a service: service[:alias]", NULL, NULL},      \
        {'v', "volume", "VOLUME", CLI_OPT_MULTI, "Volume: [name:|/host:]/path[:flags]", NULL, NULL}, \
        {0,                                                                                          \
         "volumes-from",                                                                             \
         "VOLUMES_FROM",                                                                             \
         CLI_OPT_MULTI,                                                                              \
         "Mount volumes from another container",                                                     \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {'a', "affinity", "AFFINITY", CLI_OPT_MULTI, "Affinity rule", NULL, NULL},                   \
        {0, "cpus", "CPUS", 0, "Number of CPUs (float)", NULL, NULL},                                \
        {'c', "cpu-shares", "CPU_SHARES", CLI_OPT_INT, "CPU shares (relative weight)", NULL, NULL},  \
        {'m', "memory", "MEMORY", 0, "Memory limit (e.g. 512m, 1g)", NULL, NULL},                    \
        {0, "memory-swap", "MEMORY_SWAP", 0, "Total memory usage (memory + swap)", NULL, NULL},      \
        {0, "shm-size", "SHM_SIZE", 0, "Size of /dev/shm (e.g. 64m)", NULL, NULL},                   \
        {0, "cmd", "CMD", 0, "Command to execute (split like a shell)", NULL, NULL},                 \
        {0, "instances", "INSTANCES", CLI_OPT_INT, "How many instances to run", NULL, NULL},         \
        {'u', "user", "USER", 0, "Username or UID the containers run as", NULL, NULL},               \
        {0, "privileged", NULL, 0, "Give extended privileges", NULL, NULL},                          \
        {0, "cap-add", "CAP_ADD", CLI_OPT_MULTI, "Add a Linux capability", NULL, NULL},              \
        {0, "cap-drop", "CAP_DROP", CLI_OPT_MULTI, "Drop a Linux capability", NULL, NULL},           \
        {0, "net", "NET", 0, "Network mode: bridge, host or container:<name>", NULL, NULL},          \
        {0, "log-driver", "LOG_DRIVER", 0, "Logging driver", NULL, NULL},                            \
        {0, "log-opt", "LOG_OPT", CLI_OPT_MULTI, "Logging driver option key=value", NULL, NULL},     \
        {0, "deploy-strategy", "STRATEGY", 0, "Deploy strategy: ha, daemon or random", NULL, NULL},  \
        {0,                                                                                          \
         "deploy-wait-for-port",                                                                     \
         "PORT",                                                                                     \
         CLI_OPT_INT,                                                                                \
         "Wait for this port before the next "                                                       \
         "instance",                                                                                 \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0,                                                                                          \
         "deploy-min-health",                                                                        \
         "FLOAT",                                                                                    \
         0,                                                                                          \
         "Minimum share of healthy instances during a deploy",                                       \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0, "deploy-interval", "TIME", 0, "Redeploy every TIME (e.g. 1min, 2h, 1d)", NULL, NULL},    \
        {0, "pid", "PID", 0, "PID namespace (host)", NULL, NULL},                                    \
        {0, "secret", "SECRET", CLI_OPT_MULTI, "Vault secret: secret:name:type", NULL, NULL},        \
        {0, "health-check-uri", "URI", 0, "URI of the HTTP health check", NULL, NULL},               \
        {0,                                                                                          \
         "health-check-timeout",                                                                     \
         "TIMEOUT",                                                                                  \
         CLI_OPT_INT,                                                                                \
         "Health check timeout in seconds",                                                          \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0,                                                                                          \
         "health-check-interval",                                                                    \
         "INTERVAL",                                                                                 \
         CLI_OPT_INT,                                                                                \
         "Health check interval in seconds",                                                         \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0,                                                                                          \
         "health-check-initial-delay",                                                               \
         "DELAY",                                                                                    \
         CLI_OPT_INT,                                                                                \
         "Seconds before the first health check",                                                    \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0,   "health-check-port", "PORT", 0, "Health check port (none removes the check)", NULL,    \
         NULL},                                                                                      \
        {0,                                                                                          \
         "health-check-protocol",                                                                    \
         "PROTOCOL",                                                                                 \
         0,                                                                                          \
         "Health check protocol: http, tcp or none",                                                 \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0, "stop-signal", "SIGNAL", 0, "Signal that stops the containers", NULL, NULL},             \
    {                                                                                                \
        0, "stop-timeout", "DURATION", 0, "Grace period before killing (e.g. 1m23s)", NULL, NULL     \
    }

const struct cli_cmd cli_service_cmds[] = {
    {"service", NULL, NULL, "Service specific commands", NULL, NULL, 0},
    {"service ls", "list", cmd_service_ls, "List services", NULL,
     (const struct cli_opt[]){
         {0, "stack", "STACK", 0, "Only the services of this stack", NULL, NULL},
         CLI_OPT_QUIET,
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service show", NULL, cmd_service_show, "Show service details", SVC_PARAM,
     (const struct cli_opt[]){
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service create", NULL, cmd_service_create, "Create a new service",
     (const struct cli_param[]){{"NAME", "Service name (svc or stack/svc)"},
                                {"IMAGE", "Service image (e.g. redis:3.2)"},
                                CLI_PARAM_END},
     (const struct cli_opt[]){
         SVC_SPEC_OPTS,
         {0, "stateful", NULL, 0, "Keep the containers' data between deploys", NULL, NULL},
         {0, "read-only", NULL, 0, "Mount the container's root filesystem read-only", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service update", NULL, cmd_service_update, "Update a service", SVC_PARAM,
     (const struct cli_opt[]){
         {0, "image", "IMAGE", 0, "Service image", NULL, NULL},
         SVC_SPEC_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service start", NULL, cmd_service_start, "Start services", SVC_PARAMS,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service stop", NULL, cmd_service_stop, "Stop services", SVC_PARAMS,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service restart", NULL, cmd_service_restart, "Restart services", SVC_PARAMS,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service rm", "remove", cmd_service_rm, "Remove services", SVC_PARAMS,
     (const struct cli_opt[]){
         {0, "force", NULL, 0, "Force remove (no confirmation)", NULL, NULL},
         {0, "instance", "INSTANCE", 0, "Remove only this instance number", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service logs", NULL, cli_cmd_service_logs, "Show the logs of a service's containers",
     SVC_PARAM,
     (const struct cli_opt[]){
         {'i', "instance", "INSTANCE", CLI_OPT_INT, "Only this instance number", NULL, NULL},
         CLI_LOG_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service stats", NULL, cli_cmd_service_stats,
     "Show the latest statistics of a service's containers", SVC_PARAM,
     (const struct cli_opt[]){
         CLI_STATS_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service link", NULL, cmd_service_link, "Link a service to another",
     (const struct cli_param[]){
         {"NAME", "Service name"}, {"TARGET", "Linked service (svc or stack/svc)"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service unlink", NULL, cmd_service_unlink, "Remove a link between services",
     (const struct cli_param[]){
         {"NAME", "Service name"}, {"TARGET", "Linked service (svc or stack/svc)"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
