/* cli/cmd_complete.c -- `kontena complete` for shell completion (cli.md §14).
 *
 *   kontena complete --subcommand-tree      every command path, depth first
 *   kontena complete kontena WORD...        candidates for the word after WORD...
 *
 * It runs before normal option parsing (the words may look like options) and prints
 * nothing at all when something is missing: no master, no token, an API error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/banned.h"

static void print_tree(const struct cli_cmd *cmd)
{
    const struct cli_cmd *sub;

    printf("kontena%s%s\n", *cmd->path ? " " : "", cmd->path);
    for (size_t i = 1; (sub = cli_cmd_at(i)) != NULL; i++)
        if (!sub->hidden && cli_cmd_is_child(cmd, sub))
            print_tree(sub);
}

static void complete_masters(struct cli *c, int skip_current)
{
    const struct server *cur;

    if (!cli_config(c))
        return;
    cur = config_master(c->cfg);
    for (size_t i = 0; i < c->cfg->nservers; i++)
        if (!skip_current || c->cfg->servers[i] != cur)
            printf("%s\n", c->cfg->servers[i]->name);
}

static void complete_grids(struct cli *c, int skip_current)
{
    struct server *s;
    const char *current;
    json_t *reply = NULL, *grid;
    size_t i;

    if (!cli_config(c))
        return;
    s = config_master(c->cfg);
    if (!s || !s->url || !config_token(s))
        return;
    cli_use_server(c, s, config_token(s));
    if (api_get(c->api, "/v1/grids", &reply) != ST_OK)
        return;
    current = config_grid(s);
    json_array_foreach(json_object_get(reply, "grids"), i, grid)
    {
        const char *name = json_string_value(json_object_get(grid, "name"));

        if (name && !(skip_current && current && !strcmp(current, name)))
            printf("%s\n", name);
    }
    json_decref(reply);
}

static void complete_leaf(struct cli *c, const struct cli_cmd *cmd)
{
    const char *p = cmd->path;

    if (!strcmp(p, "master use"))
        complete_masters(c, 1);
    else if (!strcmp(p, "master rm") || !strcmp(p, "master login"))
        complete_masters(c, 0);
    else if (!strcmp(p, "grid use"))
        complete_grids(c, 1);
    else if (!strcmp(p, "grid show") || !strcmp(p, "grid update") || !strcmp(p, "grid rm") ||
             !strcmp(p, "grid env"))
        complete_grids(c, 0);
}

int cli_complete(struct cli *c, int argc, char **argv)
{
    const struct cli_cmd *cmd = cli_cmd_at(0), *sub;
    int i = 0;

    if (argc >= 1 && !strcmp(argv[0], "--subcommand-tree")) {
        print_tree(cmd);
        return 0;
    }
    if (argc >= 1 && !strcmp(argv[0], "kontena"))
        i = 1;
    for (; i < argc && !cmd->fn; i++) {
        cmd = cli_cmd_child(cmd, argv[i]);
        if (!cmd)
            return 0;
    }
    if (cmd->fn) {
        complete_leaf(c, cmd);
        return 0;
    }
    for (size_t k = 1; (sub = cli_cmd_at(k)) != NULL; k++)
        if (!sub->hidden && cli_cmd_is_child(cmd, sub))
            printf("%s\n", cli_cmd_name(sub));
    return 0;
}

/* Reached only through normal parsing, which cli_main() skips for everything but --help. */
static int cmd_complete(struct cli *c, struct opts *o)
{
    if (opts_flag(o, "subcommand-tree")) {
        print_tree(cli_cmd_at(0));
        return 0;
    }
    return cli_complete(c, o->nargs, o->args);
}

const struct cli_cmd cli_complete_cmds[] = {
    {"complete", NULL, cmd_complete, "Shell completion helper",
     (const struct cli_param[]){{"[WORD] ...", "Command line words so far"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {0, "subcommand-tree", NULL, 0, "Print every command path", NULL, NULL},
         CLI_OPT_END,
     },
     1},
    CLI_CMD_END,
};
