/* cli/cmd_node.c -- `kontena node ls|show|update|rm` and `node label ls|add|rm` (cli.md §4).
 *
 * Nodes are registered by their agents (docs/internals/agent.md); these commands read and
 * change them through GET /v1/grids/<g>/nodes and GET/PUT/DELETE /v1/nodes/<g>/<node>. A
 * node's status (created, online, offline, drain) is derived by the master when read.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/jsonutil.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* "/v1/nodes/<grid>/<name><suffix>", segments escaped; caller frees. */
static char *node_path(const char *grid, const char *name, const char *suffix)
{
    char *g = cli_escape(grid), *n = cli_escape(name), *path;

    path = xasprintf("/v1/nodes/%s/%s%s", g, n, suffix ? suffix : "");
    free(g);
    free(n);
    return path;
}

/* GET the node; NULL after printing the API error (404 "Node x not found" included). */
static json_t *fetch_node(struct cli *c, const char *grid, const char *name)
{
    char *path = node_path(grid, name, NULL);
    json_t *node = NULL;
    enum status st = api_get(c->api, path, &node);

    free(path);
    if (st != ST_OK) {
        cli_fail_api(c);
        return NULL;
    }
    return node;
}

/* The grid, for its initial size and subnet; NULL after printing the API error. */
static json_t *fetch_grid(struct cli *c, const char *grid)
{
    char *g = cli_escape(grid), *path = xasprintf("/v1/grids/%s", g);
    json_t *reply = NULL;
    enum status st = api_get(c->api, path, &reply);

    free(path);
    free(g);
    if (st != ST_OK) {
        cli_fail_api(c);
        return NULL;
    }
    return reply;
}

/* Terse time since an ISO-8601 timestamp: "12s", "5m", "3h", "2d"; "" when unknown. */
static void terse_age(const char *iso, char *out, size_t len)
{
    int64_t t = iso ? time_iso8601_parse(iso) : -1;
    int64_t s = t < 0 ? -1 : (time_now_us() - t) / 1000000;

    if (t < 0)
        snprintf(out, len, "%s", "");
    else if (s < 60)
        snprintf(out, len, "%llds", (long long)(s < 0 ? 0 : s));
    else if (s < 3600)
        snprintf(out, len, "%lldm", (long long)(s / 60));
    else if (s < 86400)
        snprintf(out, len, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, len, "%lldd", (long long)(s / 86400));
}

static int is_drain(const json_t *node)
{
    const char *a = jstr(node, "availability");

    return a && !strcmp(a, "drain");
}

/* STATUS column: "online 5m", "offline 12s", "drain", "created"; an offline drained node
 * "offline 12s (drain)" so the availability is never hidden. Caller frees. */
static char *status_text(const json_t *node)
{
    const char *st = jstr(node, "status");
    char age[32];

    if (!st)
        st = "unknown";
    if (!strcmp(st, "online")) {
        terse_age(jstr(node, "connected_at"), age, sizeof(age));
        return xasprintf("online%s%s", *age ? " " : "", age);
    }
    if (!strcmp(st, "offline")) {
        const char *since = jstr(node, "disconnected_at");

        terse_age(since ? since : jstr(node, "last_seen_at"), age, sizeof(age));
        return xasprintf("offline%s%s%s", *age ? " " : "", age, is_drain(node) ? " (drain)" : "");
    }
    if (!strcmp(st, "created") && is_drain(node))
        return xstrdup("created (drain)");
    return xstrdup(st);
}

static const char *health_icon(const json_t *node)
{
    const char *st = jstr(node, "status");

    if (st && !strcmp(st, "online"))
        return "⊛";
    if (st && !strcmp(st, "offline"))
        return "⊗";
    return "⊙"; /* drain, created, connecting */
}

/* *list = *list + sep + item, or item when *list is NULL. */
static void join(char **list, const char *sep, const char *item)
{
    char *s = *list ? xasprintf("%s%s%s", *list, sep, item) : xstrdup(item);

    free(*list);
    *list = s;
}

/* Labels joined with commas, or "-". Caller frees. */
static char *labels_text(const json_t *labels)
{
    char *s = NULL;
    const json_t *l;
    size_t i;

    json_array_foreach(labels, i, l)
    {
        if (json_is_string(l))
            join(&s, ",", json_string_value(l));
    }
    return s ? s : xstrdup("-");
}

static long long node_number(const json_t *node)
{
    const json_t *n = json_object_get(node, "node_number");

    return json_is_integer(n) ? (long long)json_integer_value(n) : -1;
}

/* ls order: by node number, nodes without one last, then by name. */
static int by_number(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    unsigned long long nx = (unsigned long long)node_number(x);
    unsigned long long ny = (unsigned long long)node_number(y); /* -1 sorts last */
    const char *sx = jstr(x, "name"), *sy = jstr(y, "name");

    if (nx != ny)
        return nx < ny ? -1 : 1;
    return strcmp(sx ? sx : "", sy ? sy : "");
}

/* One grid's rows for `node ls`: appended to rows (new references), with the grid's initial
 * size in a parallel "_initial_size" member. Returns 0, or 1 after printing the error. */
static int list_grid(struct cli *c, const char *grid, json_t *rows)
{
    char *g = cli_escape(grid), *path = xasprintf("/v1/grids/%s/nodes", g);
    json_t *reply = NULL, *gr, *node;
    size_t i;

    free(g);
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    gr = fetch_grid(c, grid);
    if (!gr) {
        json_decref(reply);
        return 1;
    }
    json_array_foreach(json_object_get(reply, "nodes"), i, node)
    {
        json_t *row = json_deep_copy(node);

        json_object_set(row, "_initial_size", json_object_get(gr, "initial_size"));
        if (!json_is_string(json_object_get(row, "grid")))
            json_object_set_new(row, "grid", json_string(grid));
        json_array_append_new(rows, row);
    }
    json_decref(gr);
    json_decref(reply);
    return 0;
}

static int cmd_node_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"name", "version", "status", "initial", "labels"};
    int json = cli_want_json(c, o), all = opts_flag(o, "all"), rc = 1;
    json_t *rows = json_array(), *grids = NULL, *g, **v = NULL;
    struct table *t;
    const char *grid;
    size_t i, n;

    if (json < 0 || cli_connect(c))
        goto out;
    if (all) {
        if (api_get(c->api, "/v1/grids", &grids) != ST_OK) {
            rc = cli_fail_api(c);
            goto out;
        }
        json_array_foreach(json_object_get(grids, "grids"), i, g)
        {
            if (jstr(g, "name") && list_grid(c, jstr(g, "name"), rows))
                goto out;
        }
    } else {
        grid = cli_grid(c, o);
        if (!grid || list_grid(c, grid, rows))
            goto out;
    }
    n = json_array_size(rows);
    v = xcalloc(n + 1, sizeof(*v));
    for (i = 0; i < n; i++)
        v[i] = json_array_get(rows, i);
    qsort(v, n, sizeof(*v), by_number);
    if (json) {
        json_t *list = json_array();

        for (i = 0; i < n; i++) {
            json_t *x = json_copy(v[i]);
            json_object_del(x, "_initial_size");
            json_array_append_new(list, x);
        }
        list = json_pack("{s:o}", "nodes", list);
        cli_print_json(list);
        json_decref(list);
        rc = 0;
        goto out;
    }
    if (opts_flag(o, "quiet")) {
        for (i = 0; i < n; i++) {
            if (all)
                printf("%s/", jstr(v[i], "grid"));
            printf("%s\n", jstr(v[i], "name") ? jstr(v[i], "name") : "");
        }
        rc = 0;
        goto out;
    }
    t = table_create(headers, ARRAY_SIZE(headers));
    for (i = 0; i < n; i++) {
        const char *name = jstr(v[i], "name");
        long long num = node_number(v[i]);
        json_t *size = json_object_get(v[i], "_initial_size");
        char *label = all ? xasprintf("%s %s/%s", health_icon(v[i]), jstr(v[i], "grid"),
                                      name ? name : "")
                          : xasprintf("%s %s", health_icon(v[i]), name ? name : "");
        char *status = status_text(v[i]), *labels = labels_text(json_object_get(v[i], "labels"));
        char *initial =
            num > 0 && json_is_integer(size) && num <= json_integer_value(size)
                ? xasprintf("%lld / %lld", num, (long long)json_integer_value(size))
                : xstrdup("-");
        const char *version = jstr(v[i], "agent_version");
        const char *row[] = {label, version ? version : "-", status, initial, labels};

        table_add(t, row);
        free(label);
        free(status);
        free(labels);
        free(initial);
    }
    table_print(t, stdout);
    table_destroy(t);
    rc = 0;
out:
    free(v);
    json_decref(grids);
    json_decref(rows);
    return rc;
}

/* The grid's overlay address of node number n: the subnet's base plus n ("10.81.0.3"). */
static void overlay_ip(const char *subnet, long long n, char *out, size_t len)
{
    char base[INET_ADDRSTRLEN];
    struct in_addr a;
    size_t blen = subnet ? strcspn(subnet, "/") : 0;

    snprintf(out, len, "%s", "-");
    if (!subnet || n < 1 || blen >= sizeof(base))
        return;
    memcpy(base, subnet, blen);
    base[blen] = '\0';
    if (inet_pton(AF_INET, base, &a) != 1)
        return;
    a.s_addr = htonl(ntohl(a.s_addr) + (uint32_t)n);
    if (!inet_ntop(AF_INET, &a, out, (socklen_t)len))
        snprintf(out, len, "%s", "-");
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* "7.78" GB with two decimals at most, trailing zeros dropped (like grid show). */
static void gb_text(double bytes, char *out, size_t len)
{
    size_t n;

    snprintf(out, len, "%.2f", bytes / (1 << 30));
    n = strlen(out);
    while (n >= 2 && out[n - 1] == '0' && out[n - 2] != '.')
        out[--n] = '\0';
}

/* The "  stats:" block of node show: from the agent's latest sample ("stats", issue 8) when
 * there is one, else from the node's resource_usage. */
static void print_node_stats(const json_t *node)
{
    const json_t *st = json_object_get(node, "stats");
    const json_t *src = json_is_object(st) ? st : json_object_get(node, "resource_usage");
    const json_t *ld = json_object_get(src, "load"), *m = json_object_get(src, "memory");
    const json_t *cpu = json_object_get(src, "cpu"), *fs, *mem_total, *l;
    char a[32], b[32];
    char *text;
    size_t i;

    puts("  stats:");
    if (json_is_number(json_object_get(cpu, "num_cores")))
        text = cli_json_text(json_object_get(cpu, "num_cores"), "-");
    else
        text = cli_json_text(json_object_get(node, "cpus"), "-");
    printf("    cpus: %s\n", text);
    free(text);
    if (json_is_number(json_object_get(cpu, "used_pct")))
        printf("    cpu: %.2f%%\n", json_number_value(json_object_get(cpu, "used_pct")));
    if (json_is_object(ld))
        printf("    load: %.2f %.2f %.2f\n", json_number_value(json_object_get(ld, "1m")),
               json_number_value(json_object_get(ld, "5m")),
               json_number_value(json_object_get(ld, "15m")));
    mem_total = json_object_get(node, "mem_total");
    if (json_is_object(m)) {
        gb_text(json_number_value(json_object_get(m, "used")) -
                    json_number_value(json_object_get(m, "cached")) -
                    json_number_value(json_object_get(m, "buffers")),
                a, sizeof(a));
        gb_text(json_number_value(json_object_get(m, "total")), b, sizeof(b));
        printf("    memory: %s of %s GB\n", a, b);
    } else if (json_is_number(mem_total)) {
        gb_text(json_number_value(mem_total), b, sizeof(b));
        printf("    memory: - of %s GB\n", b);
    }
    fs = json_object_get(src, "filesystem");
    if (json_array_size(fs)) {
        puts("    filesystem:");
        json_array_foreach(fs, i, l)
        {
            gb_text(json_number_value(json_object_get(l, "used")), a, sizeof(a));
            gb_text(json_number_value(json_object_get(l, "total")), b, sizeof(b));
            printf("      - %s: %s of %s GB\n", or_dash(jstr(l, "name")), a, b);
        }
    }
}

static void print_node(const json_t *node, const json_t *grid)
{
    const char *gname = jstr(node, "grid");
    const json_t *size = json_object_get(grid, "initial_size"), *l;
    long long num = node_number(node);
    char ip[INET_ADDRSTRLEN + 8];
    char *text;
    size_t i;

    printf("%s/%s:\n", or_dash(gname ? gname : jstr(grid, "name")), or_dash(jstr(node, "name")));
    printf("  id: %s\n", or_dash(jstr(node, "node_id")));
    printf("  agent version: %s\n", or_dash(jstr(node, "agent_version")));
    printf("  docker version: %s\n", or_dash(jstr(node, "docker_version")));
    printf("  connected: %s\n", json_is_true(json_object_get(node, "connected")) ? "yes" : "no");
    text = status_text(node);
    printf("  status: %s\n", text);
    free(text);
    printf("  last connect: %s\n", or_dash(jstr(node, "connected_at")));
    printf("  last seen: %s\n", or_dash(jstr(node, "last_seen_at")));
    printf("  availability: %s\n", or_dash(jstr(node, "availability")));
    printf("  public ip: %s\n", or_dash(jstr(node, "public_ip")));
    printf("  private ip: %s\n", or_dash(jstr(node, "private_ip")));
    overlay_ip(jstr(grid, "subnet"), num, ip, sizeof(ip));
    printf("  overlay ip: %s\n", ip);
    printf("  os: %s\n", or_dash(jstr(node, "os")));
    printf("  kernel: %s\n", or_dash(jstr(node, "kernel_version")));
    puts("  drivers:");
    printf("    storage: %s\n", or_dash(jstr(node, "driver")));
    json_array_foreach(json_object_get(node, "volume_drivers"), i, l)
        printf("    volume: %s\n", or_dash(jstr(l, "name")));
    printf("  initial node: %s\n",
           num > 0 && json_is_integer(size) && num <= json_integer_value(size) ? "yes" : "no");
    puts("  labels:");
    json_array_foreach(json_object_get(node, "labels"), i, l)
        printf("    - %s\n", json_is_string(l) ? json_string_value(l) : "");
    print_node_stats(node);
}

static int cmd_node_show(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    const char *grid;
    json_t *node, *g;

    if (json < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    node = fetch_node(c, grid, o->args[0]);
    if (!node)
        return 1;
    if (json) {
        cli_print_json(node);
        json_decref(node);
        return 0;
    }
    g = fetch_grid(c, grid);
    if (!g) {
        json_decref(node);
        return 1;
    }
    print_node(node, g);
    json_decref(g);
    json_decref(node);
    return 0;
}

/* PUT body to the node under the spinner "Updating <name> node". 0, or 1 after the error. */
static int put_node(struct cli *c, const char *grid, const char *name, const json_t *body)
{
    char *path = node_path(grid, name, NULL);
    json_t *reply = NULL;
    enum status st;

    spinner_start(0, "Updating %s node", name);
    st = api_call(c->api, "PUT", path, body, &reply);
    free(path);
    json_decref(reply);
    if (st != ST_OK)
        return cli_fail_api(c);
    spinner_done();
    return 0;
}

/* Append each comma-separated label of s to arr, skipping empty ones and duplicates. */
static void add_labels(json_t *arr, const char *s)
{
    while (*s) {
        size_t n = strcspn(s, ",");
        const json_t *x;
        size_t i;
        int dup = 0;

        json_array_foreach(arr, i, x) if (json_string_length(x) == n &&
                                          !memcmp(json_string_value(x), s, n)) dup = 1;
        if (n && !dup)
            json_array_append_new(arr, json_stringn(s, n));
        s += n;
        if (*s)
            s++;
    }
}

static int cmd_node_update(struct cli *c, struct opts *o)
{
    const char *avail = opts_str(o, "availability"), *list = opts_str(o, "labels"), *grid;
    const char *const *labels;
    size_t n;
    json_t *body = json_object();
    int rc = 1;

    labels = opts_list(o, "label", &n);
    if (avail && strcmp(avail, "active") != 0 && strcmp(avail, "drain") != 0) {
        rc = cli_usage_error(c->cmd->path, "option '--availability': must be active or drain");
        goto out;
    }
    if ((n || list) && opts_flag(o, "clear-labels")) {
        rc = cli_error("Can't use --label and --clear-labels together");
        goto out;
    }
    if (n || list || opts_flag(o, "clear-labels")) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
            add_labels(arr, labels[i]);
        if (list)
            add_labels(arr, list);
        json_object_set_new(body, "labels", arr);
    }
    if (avail)
        json_object_set_new(body, "availability", json_string(avail));
    if (json_object_size(body) == 0) {
        rc = cli_usage_error(c->cmd->path,
                             "nothing to update: give --label, --clear-labels or --availability");
        goto out;
    }
    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        goto out;
    rc = put_node(c, grid, o->args[0], body);
out:
    json_decref(body);
    return rc;
}

static int cmd_node_rm(struct cli *c, struct opts *o)
{
    int force = opts_flag(o, "force");
    const char *grid;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        const char *name = o->args[i];
        json_t *node = fetch_node(c, grid, name);
        int online, rc;
        char *path;

        if (!node)
            return 1;
        online = json_is_true(json_object_get(node, "connected"));
        json_decref(node);
        if (online && !force)
            return cli_error("Node %s is still online. Stop its agent before removing the node, "
                             "or remove it anyway with --force",
                             name);
        cli_warn("Removing a node from the grid does not terminate the host machine%s",
                 online ? "; its agent is disconnected and stops" : "");
        if (confirm_command(name, force))
            return 1;
        path = node_path(grid, name, force ? "?force=true" : NULL);
        spinner_start(0, "Removing %s node", name);
        rc = cli_api_delete(c, path);
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmd_node_label_ls(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    const char *grid;
    const json_t *l;
    json_t *node;
    size_t i;

    if (json < 0 || cli_connect(c) || !(grid = cli_grid(c, o)))
        return 1;
    node = fetch_node(c, grid, o->args[0]);
    if (!node)
        return 1;
    if (json) {
        json_t *arr = json_object_get(node, "labels");

        arr = json_is_array(arr) ? json_incref(arr) : json_array();
        cli_print_json(arr);
        json_decref(arr);
        json_decref(node);
        return 0;
    }
    json_array_foreach(json_object_get(node, "labels"), i, l)
    {
        if (json_is_string(l))
            printf("%s\n", json_string_value(l));
    }
    json_decref(node);
    return 0;
}

static int has_label(const json_t *arr, const char *label)
{
    const json_t *x;
    size_t i;

    json_array_foreach(arr, i, x) if (json_is_string(x) && !strcmp(json_string_value(x), label))
        return 1;
    return 0;
}

/* label add / rm: read the node, change its label list, PUT it back. (Not atomic: two
 * concurrent label changes of one node may lose one; the API has no compare-and-set.) */
static int change_labels(struct cli *c, struct opts *o, int add)
{
    const char *grid, *name = o->args[0];
    json_t *node, *labels = json_array(), *body = NULL, *x;
    char *missing = NULL;
    size_t i;
    int rc = 1;

    if (cli_connect(c) || !(grid = cli_grid(c, o)))
        goto out;
    node = fetch_node(c, grid, name);
    if (!node)
        goto out;
    json_array_foreach(json_object_get(node, "labels"), i, x)
    {
        if (json_is_string(x) && (add || !has_label(labels, json_string_value(x))))
            json_array_append(labels, x);
    }
    json_decref(node);
    for (int k = 1; k < o->nargs; k++) {
        const char *l = o->args[k];

        if (add) {
            if (!has_label(labels, l))
                json_array_append_new(labels, json_string(l));
            continue;
        }
        if (!has_label(labels, l)) {
            join(&missing, ", ", l);
            continue;
        }
        for (i = json_array_size(labels); i-- > 0;)
            if (!strcmp(json_string_value(json_array_get(labels, i)), l))
                json_array_remove(labels, i);
    }
    if (missing && !opts_flag(o, "force")) {
        rc = cli_error("Label(s) %s not found on node %s", missing, name);
        goto out;
    }
    body = json_pack("{s:O}", "labels", labels);
    rc = put_node(c, grid, name, body);
out:
    free(missing);
    json_decref(body);
    json_decref(labels);
    return rc;
}

static int cmd_node_label_add(struct cli *c, struct opts *o)
{
    return change_labels(c, o, 1);
}

static int cmd_node_label_rm(struct cli *c, struct opts *o)
{
    return change_labels(c, o, 0);
}

#define NODE_PARAM ((const struct cli_param[]){{"NODE", "Node name"}, CLI_PARAM_END})
#define NODE_LABELS_PARAM                                                                          \
    ((const struct cli_param[]){{"NODE", "Node name"}, {"LABEL ...", "Labels"}, CLI_PARAM_END})

const struct cli_cmd cli_node_cmds[] = {
    {"node", NULL, NULL, "Node specific commands", NULL, NULL, 0},
    {"node ls", "list", cmd_node_ls, "List grid nodes", NULL,
     (const struct cli_opt[]){
         {'a', "all", NULL, 0, "List nodes of all grids (names as grid/node)", NULL, NULL},
         CLI_OPT_QUIET,
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node show", NULL, cmd_node_show, "Show node details", NODE_PARAM,
     (const struct cli_opt[]){
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node update", NULL, cmd_node_update, "Update node labels or availability", NODE_PARAM,
     (const struct cli_opt[]){
         {'l', "label", "LABEL", CLI_OPT_MULTI,
          "Node label (can be given more than once; replaces all labels)", NULL, NULL},
         {0, "labels", "LABELS", 0, "Comma-separated labels (replaces all labels)", NULL, NULL},
         {0, "clear-labels", NULL, 0, "Remove all labels", NULL, NULL},
         {0, "availability", "AVAILABILITY", 0,
          "active, or drain (move workloads away and schedule nothing new here)", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node rm", "remove", cmd_node_rm, "Remove nodes from the grid",
     (const struct cli_param[]){{"NODE ...", "Node name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {'f', "force", NULL, 0, "No confirmation; also remove a node that is still online",
          NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node label", NULL, NULL, "Node label specific commands", NULL, NULL, 0},
    {"node label ls", "list", cmd_node_label_ls, "List node labels", NODE_PARAM,
     (const struct cli_opt[]){
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node label add", NULL, cmd_node_label_add, "Add labels to a node", NODE_LABELS_PARAM,
     (const struct cli_opt[]){
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"node label rm", "remove", cmd_node_label_rm, "Remove labels from a node", NODE_LABELS_PARAM,
     (const struct cli_opt[]){
         {'f', "force", NULL, 0, "Do not fail when a label is missing", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
