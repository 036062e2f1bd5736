/* cli/cmd_grid_subnet.c -- `kontena grid trusted-subnet ls|add|rm` (cli.md §3): the grid's
 * trusted_subnets list, read with GET and written back whole with PUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* GET the current grid; *name gets its name (borrowed from c's config or o). */
static json_t *current_grid(struct cli *c, struct opts *o, const char **name, char **path)
{
    json_t *grid = NULL;
    char *esc;

    if (cli_connect(c))
        return NULL;
    *name = cli_grid(c, o);
    if (!*name)
        return NULL;
    esc = cli_escape(*name);
    *path = xasprintf("/v1/grids/%s", esc);
    free(esc);
    if (api_get(c->api, *path, &grid) != ST_OK) {
        cli_fail_api(c);
        return NULL;
    }
    return grid;
}

static int has_subnet(const json_t *list, const char *subnet)
{
    json_t *item;
    size_t i;

    json_array_foreach(list, i, item) if (json_string_value(item) &&
                                          !strcmp(json_string_value(item), subnet)) return 1;
    return 0;
}

static int put_subnets(struct cli *c, const char *path, json_t *list)
{
    json_t *body = json_pack("{s:O}", "trusted_subnets", list), *reply = NULL;
    enum status st = api_call(c->api, "PUT", path, body, &reply);

    json_decref(body);
    json_decref(reply);
    return st == ST_OK ? 0 : cli_fail_api(c);
}

static int cmd_subnet_ls(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    const char *name;
    char *path = NULL;
    json_t *grid, *item, *list;
    size_t i;

    if (json < 0)
        return 1;
    grid = current_grid(c, o, &name, &path);
    free(path);
    if (!grid)
        return 1;
    list = json_object_get(grid, "trusted_subnets");
    if (json)
        cli_print_json(list ? list : json_array());
    else
        json_array_foreach(list, i, item)
            printf("%s\n", json_string_value(item) ? json_string_value(item) : "");
    json_decref(grid);
    return 0;
}

static int cmd_subnet_add(struct cli *c, struct opts *o)
{
    const char *name, *subnet = o->args[0];
    char *path = NULL;
    json_t *grid = current_grid(c, o, &name, &path), *list;
    int rc = 1;

    if (!grid)
        goto out;
    list = json_object_get(grid, "trusted_subnets");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(grid, "trusted_subnets", list);
    }
    if (has_subnet(list, subnet)) {
        rc = cli_error("Grid %s already has a trusted subnet %s", name, subnet);
        goto out;
    }
    json_array_append_new(list, json_string(subnet));
    spinner_start(0, "Adding %s as a trusted subnet in %s grid", subnet, name);
    rc = put_subnets(c, path, list);
    if (!rc)
        spinner_done();
out:
    json_decref(grid);
    free(path);
    return rc;
}

static int cmd_subnet_rm(struct cli *c, struct opts *o)
{
    const char *name;
    char *path = NULL;
    json_t *grid = current_grid(c, o, &name, &path), *list, *keep = NULL, *item;
    size_t i;
    int rc = 1;

    if (!grid)
        goto out;
    list = json_object_get(grid, "trusted_subnets");
    for (int k = 0; k < o->nargs; k++)
        if (!has_subnet(list, o->args[k])) {
            rc = cli_error("Grid %s does not have trusted subnet %s", name, o->args[k]);
            goto out;
        }
    if (confirm(NULL, opts_flag(o, "force")))
        goto out;
    keep = json_array();
    json_array_foreach(list, i, item)
    {
        int drop = 0;
        for (int k = 0; k < o->nargs; k++)
            if (json_string_value(item) && !strcmp(json_string_value(item), o->args[k]))
                drop = 1;
        if (!drop)
            json_array_append(keep, item);
    }
    spinner_start(0, "Removing trusted subnet from %s grid", name);
    rc = put_subnets(c, path, keep);
    if (!rc)
        spinner_done();
out:
    json_decref(keep);
    json_decref(grid);
    free(path);
    return rc;
}

const struct cli_cmd cli_grid_subnet_cmds[] = {
    {"grid trusted-subnet", NULL, NULL,
     "Trusted subnet related commands\n"
     "Traffic between nodes in a trusted subnet is not encrypted by the overlay network.",
     NULL, NULL, 0},
    {"grid trusted-subnet ls", "list", cmd_subnet_ls, "List trusted subnets of the current grid",
     NULL,
     (const struct cli_opt[]){
         CLI_OPT_GRID,
         {'q', "quiet", NULL, CLI_OPT_HIDDEN, "Ignored: the output is the list", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    {"grid trusted-subnet add", NULL, cmd_subnet_add, "Add a trusted subnet to the current grid",
     (const struct cli_param[]){{"SUBNET", "Subnet (CIDR)"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"grid trusted-subnet rm", "remove", cmd_subnet_rm,
     "Remove trusted subnets from the current grid",
     (const struct cli_param[]){{"SUBNET ...", "Subnet (CIDR)"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_FORCE, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
