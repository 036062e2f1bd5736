/* cli/cmd_version.c -- `kontena version` (cli.md §14). */
#include <stdio.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/banned.h"

static int cmd_version(struct cli *c, struct opts *o)
{
    struct server *s;
    json_t *root = NULL;
    const char *v;

    if (opts_flag(o, "cli")) {
        printf("kontena-cli %s\n", KONTENA_VERSION);
        return 0;
    }
    printf("cli: %s\n", KONTENA_VERSION);
    if (!cli_config(c))
        return 1;
    s = config_master(c->cfg);
    if (!s || !s->url)
        return 0;
    cli_use_server(c, s, config_token(s));
    if (api_get(c->api, "/", &root) != ST_OK)
        return cli_fail_api(c);
    v = json_string_value(json_object_get(root, "version"));
    printf("master: %s (%s)\n", v ? v : "unknown", s->url);
    json_decref(root);
    return 0;
}

const struct cli_cmd cli_version_cmds[] = {
    {"version", NULL, cmd_version, "Show CLI and current master version", NULL,
     (const struct cli_opt[]){
         {0, "cli", NULL, 0, "Only show the CLI version", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
