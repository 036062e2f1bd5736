/* cli/cmd_container.c -- `kontena container ls|inspect|logs|exec` (cli.md §7, §6.2).
 *
 * A container is named NODE/NAME (the original's CONTAINER_ID). ls reads the grid's
 * observed containers (GET /v1/grids/<g>/containers); inspect and exec go through the
 * master to the node's agent (GET/POST /v1/containers/<g>/<node>/<name>/...); logs come from
 * the master's log store (cmd_logs.c). exec runs the
 * command to its end and exits with its exit code. Deviation: no interactive -i/-t (the
 * original's exec WebSocket) yet.
 */
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

/* "/v1/containers/<grid>/<node>/<name>/<what>" from "node/name"; NULL after printing the
 * error. */
static char *container_path(struct cli *c, struct opts *o, const char *id, const char *what,
                            const char **grid_out)
{
    const char *grid, *slash = strchr(id, '/');
    char *node, *g, *n, *m, *path;

    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/')) {
        cli_error("Invalid container id '%s': use NODE/NAME (see kontena container ls)", id);
        return NULL;
    }
    if (cli_connect(c))
        return NULL;
    grid = cli_grid(c, o);
    if (!grid)
        return NULL;
    if (grid_out)
        *grid_out = grid;
    node = xstrndup(id, (size_t)(slash - id));
    g = cli_escape(grid);
    n = cli_escape(node);
    m = cli_escape(slash + 1);
    path = xasprintf("/v1/containers/%s/%s/%s/%s", g, n, m, what);
    free(g);
    free(n);
    free(m);
    free(node);
    return path;
}

/* "N minutes ago" and friends; "" when unknown. */
static void ago(const char *iso, char *out, size_t len)
{
    int64_t t = iso ? time_iso8601_parse(iso) : -1;
    int64_t s = t < 0 ? -1 : (time_now_us() - t) / 1000000;

    if (t < 0)
        snprintf(out, len, "%s", "");
    else if (s < 60)
        snprintf(out, len, "%lld seconds ago", (long long)(s < 0 ? 0 : s));
    else if (s < 3600)
        snprintf(out, len, "%lld minutes ago", (long long)(s / 60));
    else if (s < 86400)
        snprintf(out, len, "%lld hours ago", (long long)(s / 3600));
    else
        snprintf(out, len, "%lld days ago", (long long)(s / 86400));
}

static int cmd_container_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"container_id", "image", "command", "created",
                                          "status"};
    int json = cli_want_json(c, o), all = opts_flag(o, "all"), rc = 1;
    json_t *reply = NULL, *x, *list;
    const char *grid;
    char *g, *path;
    struct table *t;
    size_t i;

    if (json < 0 || cli_connect(c))
        return 1;
    grid = cli_grid(c, o);
    if (!grid)
        return 1;
    g = cli_escape(grid);
    path = xasprintf("/v1/grids/%s/containers", g);
    free(g);
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    list = json_array();
    json_array_foreach(json_object_get(reply, "containers"), i, x)
    {
        const char *st = jstr(x, "status");
        if (all || (st && (!strcmp(st, "running") || !strcmp(st, "restarting"))))
            json_array_append(list, x);
    }
    if (json) {
        json_t *out = json_pack("{s:O}", "containers", list);
        cli_print_json(out);
        json_decref(out);
        rc = 0;
        goto out;
    }
    if (opts_flag(o, "quiet")) {
        json_array_foreach(list, i, x) printf("%s\n", jstr(x, "id") ? jstr(x, "id") : "");
        rc = 0;
        goto out;
    }
    t = table_create(headers, ARRAY_SIZE(headers));
    json_array_foreach(list, i, x)
    {
        const char *cmd = jstr(x, "command") ? jstr(x, "command") : "";
        char created[64], *quoted;
        const char *st = jstr(x, "status");
        const char *row[5];

        if (strlen(cmd) > 25)
            quoted = xasprintf("\"%.25s..\"", cmd);
        else
            quoted = xasprintf("\"%s\"", cmd);
        ago(jstr(x, "created"), created, sizeof(created));
        row[0] = jstr(x, "id") ? jstr(x, "id") : "";
        row[1] = jstr(x, "image") ? jstr(x, "image") : "";
        row[2] = quoted;
        row[3] = created;
        row[4] = !st ? "unknown" : !strcmp(st, "running") || !strcmp(st, "restarting") ? st
                                                                                       : "stopped";
        table_add(t, row);
        free(quoted);
    }
    table_print(t, stdout);
    table_destroy(t);
    rc = 0;
out:
    json_decref(list);
    json_decref(reply);
    return rc;
}

static int cmd_container_inspect(struct cli *c, struct opts *o)
{
    char *path = container_path(c, o, o->args[0], "inspect", NULL);
    json_t *reply = NULL;

    if (!path)
        return 1;
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    cli_print_json(reply);
    json_decref(reply);
    return 0;
}

static int cmd_container_exec(struct cli *c, struct opts *o)
{
    char *path = container_path(c, o, o->args[0], "exec", NULL);
    json_t *body, *cmd = json_array(), *reply = NULL, *out, *err;
    int rc;

    if (!path) {
        json_decref(cmd);
        return 1;
    }
    for (int i = 1; i < o->nargs; i++)
        json_array_append_new(cmd, json_string(o->args[i]));
    body = json_pack("{s:o, s:b}", "cmd", cmd, "shell", opts_flag(o, "shell"));
    if (api_call(c->api, "POST", path, body, &reply) != ST_OK) {
        free(path);
        json_decref(body);
        return cli_fail_api(c);
    }
    free(path);
    json_decref(body);
    out = json_object_get(reply, "stdout");
    err = json_object_get(reply, "stderr");
    fwrite(json_string_value(out) ? json_string_value(out) : "", 1, json_string_length(out),
           stdout);
    fflush(stdout);
    fwrite(json_string_value(err) ? json_string_value(err) : "", 1, json_string_length(err),
           stderr);
    rc = (int)json_integer_value(json_object_get(reply, "exit_code"));
    if (!json_is_integer(json_object_get(reply, "exit_code")) || rc < 0 || rc > 255)
        rc = 1;
    json_decref(reply);
    return rc;
}

#define CONTAINER_PARAM                                                                            \
    ((const struct cli_param[]){{"CONTAINER_ID", "Container id (NODE/NAME)"}, CLI_PARAM_END})

const struct cli_cmd cli_container_cmds[] = {
    {"container", NULL, NULL, "Container specific commands", NULL, NULL, 0},
    {"container ls", "list", cmd_container_ls, "List the grid's containers", NULL,
     (const struct cli_opt[]){
         {'a', "all", NULL, 0, "Include stopped containers", NULL, NULL},
         CLI_OPT_QUIET,
         CLI_OPT_OUTPUT,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"container inspect", NULL, cmd_container_inspect, "Inspect a container (docker inspect)",
     CONTAINER_PARAM,
     (const struct cli_opt[]){
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"container logs", NULL, cli_cmd_container_logs, "Show a container's logs", CONTAINER_PARAM,
     (const struct cli_opt[]){
         CLI_LOG_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"container exec", NULL, cmd_container_exec,
     "Run a command in a container\nPut -- before a command that has options of its own. "
     "Interactive (-i/-t) exec is not supported yet.",
     (const struct cli_param[]){{"CONTAINER_ID", "Container id (NODE/NAME)"},
                                {"CMD ...", "Command"},
                                CLI_PARAM_END},
     (const struct cli_opt[]){
         {0, "shell", NULL, 0, "Run the words through /bin/sh -c", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {NULL, NULL, NULL, NULL, NULL, NULL, 0},
};
