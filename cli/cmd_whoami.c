/* cli/cmd_whoami.c -- `kontena whoami` (cli.md §14). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/banned.h"

/* Unlike the original, which printed whatever the config said, this asks the master
 * (GET /v1/user), so a revoked or expired token shows up here. */
static int cmd_whoami(struct cli *c, struct opts *o)
{
    const char *env_url = getenv("KONTENA_URL"), *grid, *email;
    json_t *user = NULL;
    struct server *s;

    if (cli_connect(c))
        return 1;
    s = c->server;
    if (opts_flag(o, "token")) {
        printf("%s\n", config_token(s));
        return 0;
    }
    if (api_get(c->api, "/v1/user", &user) != ST_OK)
        return cli_fail_api(c);
    email = json_string_value(json_object_get(user, "email"));
    if (env_url && !*env_url)
        env_url = NULL;
    grid = config_grid(s);
    printf("Master: %s\n", env_url ? env_url : s->name);
    printf("URL: %s\n", s->url);
    printf("Grid: %s\n", grid ? grid : "");
    if (!env_url)
        printf("User: %s\n", email ? email : "");
    if (!s->username && email && config_token(s) == s->token) {
        /* Keep the user's email in the config, as login does. */
        config_set_str(&s->username, email);
        if (cli_save_config(c)) {
            json_decref(user);
            return 1;
        }
    }
    json_decref(user);
    return 0;
}

const struct cli_cmd cli_whoami_cmds[] = {
    {"whoami", NULL, cmd_whoami, "Shows current logged in user", NULL,
     (const struct cli_opt[]){
         {0, "token", NULL, CLI_OPT_HIDDEN, "Print the access token", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
