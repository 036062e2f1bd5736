/* cli/cmd_grid.c -- `kontena grid create|ls|use|show|current|update|rm|env` (cli.md §3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define STATSD_DEFAULT_PORT 8125

static char *grid_path(const char *grid, const char *suffix)
{
    char *esc = cli_escape(grid), *path;

    path = xasprintf("/v1/grids/%s%s", esc, suffix ? suffix : "");
    free(esc);
    return path;
}

/* GET /v1/grids/<name>. On failure prints the error (not_found_msg for a 404, when given)
 * and returns NULL. */
static json_t *fetch_grid(struct cli *c, const char *name, const char *not_found_msg)
{
    char *path = grid_path(name, NULL);
    json_t *grid = NULL;
    enum status st;

    st = api_get(c->api, path, &grid);
    free(path);
    if (st == ST_OK)
        return grid;
    if (st == ST_NOTFOUND && not_found_msg)
        cli_error("%s", not_found_msg);
    else
        cli_fail_api(c);
    return NULL;
}

static char *unresolved_msg(const char *name)
{
    return xasprintf("Could not resolve grid by name [%s]. For a list of existing grids please "
                     "run: kontena grid list",
                     name);
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static double jnum(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* Ruby's Float#round(2).to_s: "0.1", "1.0", "12.35". */
static void fmt_num(double v, char *out, size_t len)
{
    size_t n;

    snprintf(out, len, "%.2f", v);
    n = strlen(out);
    while (n > 0 && out[n - 1] == '0' && n >= 2 && out[n - 2] != '.')
        out[--n] = '\0';
}

/* The master URL as the agents' WebSocket URL: http -> ws, https -> wss. */
static char *ws_url(const char *url)
{
    if (!strncmp(url, "http", 4))
        return xasprintf("ws%s", url + 4);
    return xstrdup(url);
}

/* "stats:" lines from the grid's nodes (best effort: without the nodes API only counts). */
static void print_grid_stats(struct cli *c, const json_t *grid)
{
    const char *name = json_string_value(json_object_get(grid, "name"));
    char *path = grid_path(name ? name : "", "/nodes");
    json_t *reply = NULL, *nodes, *node;
    long long connected = 0, cpus = 0;
    double load[3] = {0, 0, 0}, mem_used = 0, mem_total = 0, fs_used = 0, fs_total = 0;
    char a[32], b[32], d[32];
    size_t i;

    puts("  stats:");
    if (api_get(c->api, path, &reply) != ST_OK ||
        !json_is_array(nodes = json_object_get(reply, "nodes"))) {
        printf("    nodes: %lld\n", jint(grid, "node_count"));
        goto counts;
    }
    json_array_foreach(nodes, i, node)
    {
        json_t *usage = json_object_get(node, "resource_usage"), *fs;
        json_t *mem = json_object_get(usage, "memory"), *ld = json_object_get(usage, "load");
        size_t k;

        if (!json_is_true(json_object_get(node, "connected")))
            continue;
        connected++;
        cpus += jint(node, "cpus");
        load[0] += jnum(ld, "1m");
        load[1] += jnum(ld, "5m");
        load[2] += jnum(ld, "15m");
        mem_used += jnum(mem, "used") - jnum(mem, "cached") - jnum(mem, "buffers");
        mem_total += jnum(mem, "total");
        json_array_foreach(json_object_get(usage, "filesystem"), k, fs)
        {
            fs_used += jnum(fs, "used");
            fs_total += jnum(fs, "total");
        }
    }
    printf("    nodes: %lld of %zu\n", connected, json_array_size(nodes));
    printf("    cpus: %lld\n", cpus);
    for (int k = 0; k < 3 && connected; k++)
        load[k] /= (double)connected;
    fmt_num(load[0], a, sizeof(a));
    fmt_num(load[1], b, sizeof(b));
    fmt_num(load[2], d, sizeof(d));
    printf("    load: %s %s %s\n", a, b, d);
    fmt_num(mem_used / (1 << 30), a, sizeof(a));
    fmt_num(mem_total / (1 << 30), b, sizeof(b));
    printf("    memory: %s of %s GB\n", a, b);
    fmt_num(fs_used / (1 << 30), a, sizeof(a));
    fmt_num(fs_total / (1 << 30), b, sizeof(b));
    printf("    filesystem: %s of %s GB\n", a, b);
counts:
    printf("    users: %lld\n", jint(grid, "user_count"));
    printf("    services: %lld\n", jint(grid, "service_count"));
    printf("    containers: %lld\n", jint(grid, "container_count"));
    json_decref(reply);
    free(path);
}

/* The grid block of `grid show` and `grid current`. */
static void print_grid(struct cli *c, const json_t *grid)
{
    json_t *statsd = json_object_get(json_object_get(grid, "stats"), "statsd");
    json_t *logs = json_object_get(grid, "logs"), *item;
    const char *fwd = json_string_value(json_object_get(logs, "forwarder"));
    char *uri = ws_url(api_url(c->api)), *text;
    const char *key;
    size_t i;

    printf("%s:\n", json_string_value(json_object_get(grid, "name")));
    printf("  uri: %s\n", uri);
    printf("  initial_size: %lld\n", jint(grid, "initial_size"));
    puts("  default_affinity:");
    json_array_foreach(json_object_get(grid, "default_affinity"), i, item)
        printf("    - %s\n", json_string_value(item) ? json_string_value(item) : "");
    printf("  subnet: %s\n", json_string_value(json_object_get(grid, "subnet")));
    printf("  supernet: %s\n", json_string_value(json_object_get(grid, "supernet")));
    print_grid_stats(c, grid);
    if (json_is_object(statsd)) {
        text = cli_json_text(json_object_get(statsd, "port"), "");
        puts("  exports:");
        printf("    statsd: %s:%s\n", json_string_value(json_object_get(statsd, "server")), text);
        free(text);
    }
    if (fwd && strcmp(fwd, "none") != 0) {
        puts("logs:");
        printf("  forwarder: %s\n", fwd);
        json_object_foreach(json_object_get(logs, "opts"), key, item)
        {
            text = cli_json_text(item, "");
            printf("  %s: %s\n", key, text);
            free(text);
        }
    }
    free(uri);
}

int cli_grid_use(struct cli *c, const char *name, int silent)
{
    char *msg = unresolved_msg(name);
    json_t *grid = fetch_grid(c, name, msg);
    const char *real;

    free(msg);
    if (!grid)
        return 1;
    real = json_string_value(json_object_get(grid, "name"));
    config_set_str(&c->server->grid, real ? real : name);
    json_decref(grid);
    if (cli_save_config(c))
        return 1;
    if (!silent)
        printf("Using grid: %s\n", c->server->grid);
    return 0;
}

/* Order of `grid ls` (and of the automatic selection at login): by user count. */
static int by_user_count(const void *a, const void *b)
{
    long long x = jint(*(json_t *const *)a, "user_count");
    long long y = jint(*(json_t *const *)b, "user_count");

    return (x > y) - (x < y);
}

/* The grids sorted as `grid ls` shows them, in a new array (borrowed elements). */
static json_t **sorted_grids(json_t *list, size_t *n)
{
    json_t **v;

    *n = json_array_size(list);
    v = xcalloc(*n + 1, sizeof(*v));
    for (size_t i = 0; i < *n; i++)
        v[i] = json_array_get(list, i);
    /* Insertion sort, which is stable: grids with as many users keep the master's order. */
    for (size_t i = 1; i < *n; i++) {
        json_t *x = v[i];
        size_t j = i;

        while (j > 0 && by_user_count(&v[j - 1], &x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return v;
}

static void no_grids_msg(struct cli *c)
{
    printf("Kontena Master %s doesn't have any grids yet. Create one now using 'kontena grid "
           "create' command\n",
           c->server->name);
}

int cli_grid_autoselect(struct cli *c, int silent)
{
    json_t *reply = NULL, **grids;
    size_t n;
    int rc = 0;

    if (api_get(c->api, "/v1/grids", &reply) != ST_OK) {
        cli_warn("cannot select a grid: %s", api_error(c->api));
        return 0;
    }
    grids = sorted_grids(json_object_get(reply, "grids"), &n);
    if (n == 0) {
        if (!silent)
            no_grids_msg(c);
    } else {
        config_set_str(&c->server->grid, json_string_value(json_object_get(grids[0], "name")));
        rc = cli_save_config(c);
        if (!rc && !silent)
            printf("Using grid: %s\n", c->server->grid);
    }
    free(grids);
    json_decref(reply);
    return rc;
}

static int cmd_grid_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"name", "nodes", "services", "users"};
    int json = cli_want_json(c, o), rc = 0;
    json_t *reply = NULL, **grids = NULL;
    const char *current;
    struct table *t;
    size_t n;

    if (json < 0 || cli_connect(c))
        return 1;
    if (api_get(c->api, "/v1/grids", &reply) != ST_OK)
        return cli_fail_api(c);
    if (opts_flag(o, "use")) {
        json_decref(reply);
        return cli_grid_autoselect(c, 0);
    }
    if (json) {
        cli_print_json(reply);
        goto out;
    }
    grids = sorted_grids(json_object_get(reply, "grids"), &n);
    if (opts_flag(o, "quiet")) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", json_string_value(json_object_get(grids[i], "name")));
        goto out;
    }
    if (n == 0) {
        no_grids_msg(c);
        goto out;
    }
    current = config_grid(c->server);
    t = table_create(headers, ARRAY_SIZE(headers));
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(grids[i], "name"));
        char *label = xasprintf("%s%s", name ? name : "",
                                current && name && !strcmp(current, name) ? " *" : "");
        char *nodes = cli_json_text(json_object_get(grids[i], "node_count"), "0");
        char *services = cli_json_text(json_object_get(grids[i], "service_count"), "0");
        char *users = cli_json_text(json_object_get(grids[i], "user_count"), "0");
        const char *row[] = {label, nodes, services, users};

        table_add(t, row);
        free(label);
        free(nodes);
        free(services);
        free(users);
    }
    table_print(t, stdout);
    table_destroy(t);
out:
    free(grids);
    json_decref(reply);
    return rc;
}

static int cmd_grid_use(struct cli *c, struct opts *o)
{
    if (cli_connect(c))
        return 1;
    return cli_grid_use(c, o->args[0], opts_flag(o, "silent"));
}

static int cmd_grid_show(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    json_t *grid;

    if (json < 0 || cli_connect(c))
        return 1;
    grid = fetch_grid(c, o->args[0], "Grid not found");
    if (!grid)
        return 1;
    if (json)
        cli_print_json(grid);
    else if (opts_flag(o, "token"))
        printf("%s\n", json_string_value(json_object_get(grid, "token")));
    else
        print_grid(c, grid);
    json_decref(grid);
    return 0;
}

static int cmd_grid_current(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    const char *name;
    json_t *grid;

    if (json < 0 || cli_connect(c))
        return 1;
    name = config_grid(c->server);
    if (!name || !*name)
        return cli_error("No grid selected. To select grid, please run: kontena grid use <grid "
                         "name>");
    if (opts_flag(o, "name")) {
        printf("%s\n", name);
        return 0;
    }
    grid = fetch_grid(c, name, NULL);
    if (!grid)
        return 1;
    if (json)
        cli_print_json(grid);
    else
        print_grid(c, grid);
    json_decref(grid);
    return 0;
}

/* The stats, logs and default_affinity members shared by create and update. Returns 0, or
 * 1 after printing an error. */
static int grid_settings(struct opts *o, json_t *body)
{
    const char *statsd = opts_str(o, "statsd-server"), *fwd = opts_str(o, "log-forwarder");
    const char *const *list;
    size_t n;

    if (statsd) {
        const char *colon = strrchr(statsd, ':');
        long port = STATSD_DEFAULT_PORT;
        char *host, *end;

        if (colon) {
            port = strtol(colon + 1, &end, 10);
            if (*end || end == colon + 1 || port < 1 || port > 65535)
                return cli_error("invalid --statsd-server '%s': the port must be 1..65535", statsd);
        }
        host = colon ? xstrndup(statsd, (size_t)(colon - statsd)) : xstrdup(statsd);
        json_object_set_new(
            body, "stats",
            json_pack("{s:{s:s, s:i}}", "statsd", "server", host, "port", (int)port));
        free(host);
    }
    if (opts_has(o, "no-statsd-server") && opts_flag(o, "no-statsd-server")) {
        if (statsd)
            return cli_error("Can't use --statsd-server and --no-statsd-server together");
        json_object_set_new(body, "stats", json_pack("{s:n}", "statsd"));
    }

    list = opts_list(o, "log-opt", &n);
    if (n && !fwd)
        return cli_error("1 : Need to specify --log-forwarder when using --log-opt");
    if (fwd && opts_flag(o, "no-log-forwarder"))
        return cli_error("Can't use --log-forwarder and --no-log-forwarder together");
    if (fwd) {
        json_t *logopts = json_object();

        for (size_t i = 0; i < n; i++) {
            const char *eq = strchr(list[i], '=');
            char *key;

            if (!eq || eq == list[i]) {
                json_decref(logopts);
                return cli_error("invalid --log-opt '%s': use key=value", list[i]);
            }
            key = xstrndup(list[i], (size_t)(eq - list[i]));
            json_object_set_new(logopts, key, json_string(eq + 1));
            free(key);
        }
        json_object_set_new(body, "logs",
                            json_pack("{s:s, s:o}", "forwarder", fwd, "opts", logopts));
    } else if (opts_flag(o, "no-log-forwarder")) {
        json_object_set_new(body, "logs", json_pack("{s:s}", "forwarder", "none"));
    }

    list = opts_list(o, "default-affinity", &n);
    if (n) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_string(list[i]));
        json_object_set_new(body, "default_affinity", arr);
    }
    if (opts_has(o, "no-default-affinity") && opts_flag(o, "no-default-affinity")) {
        if (n)
            return cli_error("Can't use --default-affinity and --no-default-affinity together");
        json_object_set_new(body, "default_affinity", json_array());
    }
    return 0;
}

static int cmd_grid_create(struct cli *c, struct opts *o)
{
    const char *name = o->args[0];
    long size = opts_int(o, "initial-size", 1);
    int silent = opts_flag(o, "silent"), rc = 1;
    json_t *body = json_pack("{s:s, s:i}", "name", name, "initial_size", (int)size);
    json_t *grid = NULL;
    const char *created;

    if (opts_str(o, "token"))
        json_object_set_new(body, "token", json_string(opts_str(o, "token")));
    if (opts_str(o, "subnet"))
        json_object_set_new(body, "subnet", json_string(opts_str(o, "subnet")));
    if (opts_str(o, "supernet"))
        json_object_set_new(body, "supernet", json_string(opts_str(o, "supernet")));
    if (grid_settings(o, body) || cli_connect(c))
        goto out;
    if (size == 1 && !silent)
        cli_warn("Option --initial-size=1 is only recommended for test/dev usage");
    spinner_start(silent, "Creating %s grid", name);
    if (api_call(c->api, "POST", "/v1/grids", body, &grid) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    spinner_done();
    created = json_string_value(json_object_get(grid, "name"));
    spinner_start(silent, "Switching scope to %s grid", created ? created : name);
    config_set_str(&c->server->grid, created ? created : name);
    if (cli_save_config(c))
        goto out;
    spinner_done();
    rc = 0;
out:
    json_decref(grid);
    json_decref(body);
    return rc;
}

static int cmd_grid_update(struct cli *c, struct opts *o)
{
    json_t *body = json_object(), *grid = NULL;
    char *path = NULL;
    int rc = 1;

    if (grid_settings(o, body) || cli_connect(c))
        goto out;
    path = grid_path(o->args[0], NULL);
    if (api_call(c->api, "PUT", path, body, &grid) != ST_OK) {
        rc = cli_fail_api(c);
        goto out;
    }
    rc = 0;
out:
    free(path);
    json_decref(grid);
    json_decref(body);
    return rc;
}

static int cmd_grid_rm(struct cli *c, struct opts *o)
{
    int force = opts_flag(o, "force");

    if (cli_connect(c))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        const char *name = o->args[i];
        char *msg = unresolved_msg(name), *path;
        json_t *grid = fetch_grid(c, name, msg);
        int rc;

        free(msg);
        if (!grid)
            return 1;
        json_decref(grid);
        if (confirm_command(name, force))
            return 1;
        path = grid_path(name, opts_flag(o, "with-resources") ? "?force=true" : NULL);
        spinner_start(0, "Removing %s grid", name);
        rc = cli_api_delete(c, path);
        free(path);
        if (rc)
            return rc;
        if (c->server->grid && !strcmp(c->server->grid, name)) {
            config_set_str(&c->server->grid, NULL);
            if (cli_save_config(c))
                return 1;
        }
    }
    return 0;
}

static int cmd_grid_env(struct cli *c, struct opts *o)
{
    const char *name, *prefix = opts_flag(o, "export") ? "export " : "";
    json_t *grid;
    char *uri;

    if (cli_connect(c))
        return 1;
    name = o->nargs ? o->args[0] : cli_grid(c, NULL);
    if (!name)
        return 1;
    grid = fetch_grid(c, name, "Grid not found");
    if (!grid)
        return 1;
    uri = ws_url(api_url(c->api));
    printf("%sKONTENA_URI=%s\n", prefix, uri);
    printf("%sKONTENA_TOKEN=%s\n", prefix, json_string_value(json_object_get(grid, "token")));
    free(uri);
    json_decref(grid);
    return 0;
}

#define GRID_NAME_PARAM ((const struct cli_param[]){{"NAME", "Grid name"}, CLI_PARAM_END})
#define GRID_SETTINGS_OPTS                                                                           \
    {0,                                                                                              \
     "default-affinity",                                                                             \
     "AFFINITY",                                                                                     \
     CLI_OPT_MULTI,                                                                                  \
     "Default affinity rule for the grid (can be given more than once)",                             \
     NULL,                                                                                           \
     NULL},                                                                                          \
        {0, "statsd-server", "STATSD_SERVER", 0, "Statsd server address (host[:port])", NULL, NULL}, \
        {0,                                                                                          \
         "log-forwarder",                                                                            \
         "LOG_FORWARDER",                                                                            \
         0,                                                                                          \
         "Set grid wide log forwarder: syslog or none (fluentd is accepted but not implemented)",                                            \
         NULL,                                                                                       \
         NULL},                                                                                      \
        {0, "no-log-forwarder", NULL, 0, "Disable log forwarding", NULL, NULL},                      \
    {                                                                                                \
        0, "log-opt", "LOG_OPT", CLI_OPT_MULTI, "Set log options (key=value), e.g. syslog-address=udp://host:514", NULL, NULL            \
    }

const struct cli_cmd cli_grid_cmds[] = {
    {"grid", NULL, NULL, "Grid specific commands", NULL, NULL, 0},
    {"grid create", NULL, cmd_grid_create, "Create a new grid", GRID_NAME_PARAM,
     (const struct cli_opt[]){
         {0, "initial-size", "INITIAL_SIZE", CLI_OPT_INT, "Initial grid size (number of nodes)",
          "1", NULL},
         {0, "token", "TOKEN", 0, "Set grid token", NULL, NULL},
         {0, "subnet", "SUBNET", 0, "Configure grid overlay subnet", NULL, NULL},
         {0, "supernet", "SUPERNET", 0, "Configure grid IPAM supernet", NULL, NULL},
         GRID_SETTINGS_OPTS,
         {0, "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"grid ls", "list", cmd_grid_ls, "List all grids", NULL,
     (const struct cli_opt[]){
         CLI_OPT_QUIET,
         CLI_OPT_OUTPUT,
         {'u', "use", NULL, CLI_OPT_HIDDEN, "Use the first grid", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"grid use", NULL, cmd_grid_use, "Switch to use specific grid", GRID_NAME_PARAM,
     (const struct cli_opt[]){
         {0, "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"grid show", NULL, cmd_grid_show, "Show grid details", GRID_NAME_PARAM,
     (const struct cli_opt[]){
         {0, "token", NULL, 0, "Just output grid token", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    {"grid current", NULL, cmd_grid_current, "Show current grid details", NULL,
     (const struct cli_opt[]){
         {0, "name", NULL, 0, "Just output grid name", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    {"grid update", NULL, cmd_grid_update, "Update grid", GRID_NAME_PARAM,
     (const struct cli_opt[]){
         GRID_SETTINGS_OPTS,
         {0, "no-default-affinity", NULL, 0, "Unset grid default affinity", NULL, NULL},
         {0, "no-statsd-server", NULL, 0, "Unset statsd server setting", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"grid rm", "remove", cmd_grid_rm, "Remove a grid",
     (const struct cli_param[]){{"NAME ...", "Grid name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         CLI_OPT_FORCE,
         {0, "with-resources", NULL, 0, "Also remove the grid's nodes and stacks", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"grid logs", NULL, cli_cmd_grid_logs, "Show the logs of the grid's containers", NULL,
     (const struct cli_opt[]){
         {0, "node", "NODE", CLI_OPT_MULTI, "Only containers on this node (repeatable)", NULL,
          NULL},
         {0, "stack", "STACK", CLI_OPT_MULTI, "Only this stack's containers (repeatable)", NULL,
          NULL},
         {0, "service", "SERVICE", CLI_OPT_MULTI,
          "Only this service's containers: svc or stack/svc (repeatable)", NULL, NULL},
         {'c', "container", "CONTAINER", CLI_OPT_MULTI,
          "Only this container, by name (repeatable)", NULL, NULL},
         CLI_LOG_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"grid stats", NULL, cli_cmd_grid_stats,
     "Show the latest statistics of the grid's containers", NULL,
     (const struct cli_opt[]){
         CLI_STATS_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"grid env", NULL, cmd_grid_env, "Show the environment variables an agent needs",
     (const struct cli_param[]){{"[NAME]", "Grid name (default: current grid)"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {'e', "export", NULL, 0, "Add export", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
