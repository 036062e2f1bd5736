/* cli/cmd_grid_user.c -- `kontena grid user ls|add|rm`: who may use the current grid. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* "/v1/grids/<current grid>/users"; caller frees. NULL after printing the error when there
 * is no master or grid. */
static char *users_path(struct cli *c, struct opts *o, const char **grid)
{
    char *esc, *path;

    if (cli_connect(c))
        return NULL;
    *grid = cli_grid(c, o);
    if (!*grid)
        return NULL;
    esc = cli_escape(*grid);
    path = xasprintf("/v1/grids/%s/users", esc);
    free(esc);
    return path;
}

static int cmd_grid_user_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"email", "name"};
    int json = cli_want_json(c, o);
    const char *grid;
    char *path;
    json_t *reply = NULL, *user;
    struct table *t;
    size_t i;

    if (json < 0 || !(path = users_path(c, o, &grid)))
        return 1;
    if (api_get(c->api, path, &reply) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    if (json) {
        cli_print_json(reply);
    } else if (opts_flag(o, "quiet")) {
        json_array_foreach(json_object_get(reply, "users"), i, user)
            printf("%s\n", json_string_value(json_object_get(user, "email")));
    } else {
        t = table_create(headers, ARRAY_SIZE(headers));
        json_array_foreach(json_object_get(reply, "users"), i, user)
        {
            const char *row[] = {json_string_value(json_object_get(user, "email")),
                                 json_string_value(json_object_get(user, "name"))};
            table_add(t, row);
        }
        table_print(t, stdout);
        table_destroy(t);
    }
    json_decref(reply);
    return 0;
}

static int cmd_grid_user_add(struct cli *c, struct opts *o)
{
    const char *grid;
    char *path = users_path(c, o, &grid);

    if (!path)
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        json_t *body = json_pack("{s:s}", "email", o->args[i]), *reply = NULL;
        enum status st;

        spinner_start(0, "Assigning user %s to grid %s", o->args[i], grid);
        st = api_call(c->api, "POST", path, body, &reply);
        json_decref(body);
        json_decref(reply);
        if (st != ST_OK) {
            free(path);
            return cli_fail_api(c);
        }
        spinner_done();
    }
    free(path);
    return 0;
}

static int cmd_grid_user_rm(struct cli *c, struct opts *o)
{
    const char *grid;
    char *base = users_path(c, o, &grid);

    if (!base)
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        char *esc = cli_escape(o->args[i]), *path = xasprintf("%s/%s", base, esc);
        int rc;

        spinner_start(0, "Removing user %s from grid %s", o->args[i], grid);
        rc = cli_api_delete(c, path);
        free(path);
        free(esc);
        if (rc) {
            free(base);
            return rc;
        }
    }
    free(base);
    return 0;
}

const struct cli_cmd cli_grid_user_cmds[] = {
    {"grid user", "users", NULL, "Grid user related commands", NULL, NULL, 0},
    {"grid user ls", "list", cmd_grid_user_ls, "List grid users", NULL,
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    {"grid user add", NULL, cmd_grid_user_add, "Assign users to the current grid",
     (const struct cli_param[]){{"EMAIL ...", "User email"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"grid user rm", "remove", cmd_grid_user_rm, "Unassign users from the current grid",
     (const struct cli_param[]){{"EMAIL ...", "User email"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
