/* cli/cmd_master_token.c -- `kontena master token create|ls|show|rm|current` (cli.md §2):
 * the logged-in user's access tokens at /oauth2/tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static char *token_path(const char *id_or_token)
{
    char *esc = cli_escape(id_or_token), *path = xasprintf("/oauth2/tokens/%s", esc);

    free(esc);
    return path;
}

/* "never", "in 5 minutes", "2 hours ago" for a number of seconds left (JSON null = never). */
static char *expires_text(const json_t *v)
{
    static const struct {
        long secs;
        const char *unit;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    long left, abs_left;

    if (!json_is_integer(v))
        return xstrdup("never");
    left = (long)json_integer_value(v);
    abs_left = left < 0 ? -left : left;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        long n = abs_left / units[i].secs;

        if (n == 0 && units[i].secs > 1)
            continue;
        return left < 0 ? xasprintf("%ld %s%s ago", n, units[i].unit, n == 1 ? "" : "s")
                        : xasprintf("in %ld %s%s", n, units[i].unit, n == 1 ? "" : "s");
    }
    return xstrdup("never");
}

static void print_field(const char *key, const json_t *v)
{
    char *text = cli_json_text(v, "-");

    printf("  %s: %s\n", key, *text ? text : "-");
    free(text);
}

/* The `<id>:` + `  key: value` block of token create/show. */
static void print_token(const json_t *t)
{
    json_t *user = json_object_get(t, "user"), *server = json_object_get(t, "server");
    json_t *type = json_object_get(t, "token_type");
    char *id = cli_json_text(json_object_get(t, "id"), "-");

    printf("%s:\n", id);
    free(id);
    print_field("token_type", type ? type : json_object_get(t, "grant_type"));
    print_field("scopes", json_object_get(t, "scopes"));
    print_field("user_id", json_object_get(user, "id"));
    print_field("user_email", json_object_get(user, "email"));
    print_field("user_name", json_object_get(user, "name"));
    print_field("server_name", json_object_get(server, "name"));
    print_field("description", json_object_get(t, "description"));
    print_field("access_token_last_four", json_object_get(t, "access_token_last_four"));
    print_field("refresh_token_last_four", json_object_get(t, "refresh_token_last_four"));
    print_field("access_token", json_object_get(t, "access_token"));
    print_field("refresh_token", json_object_get(t, "refresh_token"));
    print_field("expires_in", json_object_get(t, "expires_in"));
}

static int cmd_token_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"id",         "token_type", "token_last4",
                                          "expires_in", "scopes",     "description"};
    int json = cli_want_json(c, o);
    json_t *reply = NULL, *t;
    struct table *tab;
    size_t i;

    if (json < 0 || cli_connect(c))
        return 1;
    if (api_get(c->api, "/oauth2/tokens", &reply) != ST_OK)
        return cli_fail_api(c);
    if (json) {
        cli_print_json(reply);
    } else if (opts_flag(o, "quiet")) {
        json_array_foreach(json_object_get(reply, "tokens"), i, t)
        {
            char *id = cli_json_text(json_object_get(t, "id"), "");
            printf("%s\n", id);
            free(id);
        }
    } else {
        tab = table_create(headers, ARRAY_SIZE(headers));
        json_array_foreach(json_object_get(reply, "tokens"), i, t)
        {
            char *cells[] = {
                cli_json_text(json_object_get(t, "id"), ""),
                cli_json_text(json_object_get(t, "token_type"), ""),
                cli_json_text(json_object_get(t, "access_token_last_four"), ""),
                expires_text(json_object_get(t, "expires_in")),
                cli_json_text(json_object_get(t, "scopes"), ""),
                cli_json_text(json_object_get(t, "description"), ""),
            };
            table_add(tab, (const char *const *)cells);
            for (size_t k = 0; k < ARRAY_SIZE(cells); k++)
                free(cells[k]);
        }
        table_print(tab, stdout);
        table_destroy(tab);
    }
    json_decref(reply);
    return 0;
}

static int cmd_token_create(struct cli *c, struct opts *o)
{
    int json = cli_want_json(c, o);
    json_t *body, *reply = NULL;
    char *text;

    if (json < 0 || cli_connect(c))
        return 1;
    body = json_pack("{s:s, s:s, s:I}", "response_type", "token", "scope", opts_str(o, "scopes"),
                     "expires_in", (json_int_t)opts_int(o, "expires-in", 7200));
    if (opts_str(o, "description"))
        json_object_set_new(body, "description", json_string(opts_str(o, "description")));
    if (opts_str(o, "user"))
        json_object_set_new(body, "user", json_string(opts_str(o, "user")));
    if (api_call(c->api, "POST", "/oauth2/authorize", body, &reply) != ST_OK) {
        json_decref(body);
        return cli_fail_api(c);
    }
    json_decref(body);
    if (json) {
        cli_print_json(reply);
    } else if (opts_flag(o, "id")) {
        text = cli_json_text(json_object_get(reply, "id"), "");
        printf("%s\n", text);
        free(text);
    } else if (opts_flag(o, "token")) {
        text = cli_json_text(json_object_get(reply, "access_token"), "");
        printf("%s\n", text);
        free(text);
    } else {
        print_token(reply);
    }
    json_decref(reply);
    return 0;
}

static int show_token(struct cli *c, struct opts *o, const char *id_or_token)
{
    int json = cli_want_json(c, o);
    char *path = token_path(id_or_token);
    json_t *reply = NULL;
    enum status st;

    if (json < 0) {
        free(path);
        return 1;
    }
    st = api_get(c->api, path, &reply);
    free(path);
    if (st != ST_OK)
        return cli_fail_api(c);
    if (json)
        cli_print_json(reply);
    else
        print_token(reply);
    json_decref(reply);
    return 0;
}

static int cmd_token_show(struct cli *c, struct opts *o)
{
    if (cli_connect(c))
        return 1;
    return show_token(c, o, o->args[0]);
}

static int cmd_token_rm(struct cli *c, struct opts *o)
{
    if (cli_connect(c) || confirm(NULL, opts_flag(o, "force")))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        char *path = token_path(o->args[i]);
        int rc;

        spinner_start(0, "Removing token %s", o->args[i]);
        rc = cli_api_delete(c, path);
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmd_token_current(struct cli *c, struct opts *o)
{
    const char *token;
    const struct server *s;

    if (cli_connect(c))
        return 1;
    s = c->server;
    token = config_token(s);
    if (opts_flag(o, "token")) {
        printf("%s\n", token);
        return 0;
    }
    if (opts_flag(o, "refresh-token")) {
        if (s->refresh_token)
            printf("%s\n", s->refresh_token);
        return 0;
    }
    if (opts_flag(o, "expires-in")) {
        /* KONTENA_TOKEN tokens have no known expiry. */
        if (s->token_expires_at > 0 && token == s->token)
            printf("%lld\n", (long long)(s->token_expires_at - (int64_t)time(NULL)));
        return 0;
    }
    if (opts_flag(o, "id") && s->token_id && token == s->token) {
        printf("%s\n", s->token_id);
        return 0;
    }
    if (opts_flag(o, "id")) {
        char *path = token_path(token), *id;
        json_t *reply = NULL;
        enum status st = api_get(c->api, path, &reply);

        free(path);
        if (st != ST_OK)
            return cli_fail_api(c);
        id = cli_json_text(json_object_get(reply, "id"), "");
        printf("%s\n", id);
        free(id);
        json_decref(reply);
        return 0;
    }
    return show_token(c, o, s->token_id && token == s->token ? s->token_id : token);
}

const struct cli_cmd cli_master_token_cmds[] = {
    {"master token", NULL, NULL, "Manage Kontena Master access tokens", NULL, NULL, 0},
    {"master token ls", "list", cmd_token_ls, "List access tokens", NULL,
     (const struct cli_opt[]){CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    {"master token create", NULL, cmd_token_create, "Generate an access token", NULL,
     (const struct cli_opt[]){
         {'s', "scopes", "SCOPES", 0, "Comma separated list of access scopes for the token", "user",
          NULL},
         {'e', "expires-in", "SECONDS", CLI_OPT_INT, "Access token expiration time, 0 = never",
          "7200", NULL},
         {'u', "user", "EMAIL", 0, "Generate a token for another user (master_admin only)", NULL,
          NULL},
         {'d', "description", "DESCRIPTION", 0, "Set token description", NULL, NULL},
         {0, "id", NULL, 0, "Only output the token ID", NULL, NULL},
         {0, "token", NULL, 0, "Only output the access token", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    {"master token show", NULL, cmd_token_show, "Display access token",
     (const struct cli_param[]){{"TOKEN_OR_ID", "Access token or access token id"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {0, "id", NULL, CLI_OPT_HIDDEN, "Parameter is an id", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    {"master token rm", "remove", cmd_token_rm, "Remove access tokens",
     (const struct cli_param[]){{"TOKEN_OR_ID ...", "Access token or access token id"},
                                CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_FORCE, CLI_OPT_END}, 0},
    {"master token current", NULL, cmd_token_current, "Display current access token", NULL,
     (const struct cli_opt[]){
         {0, "token", NULL, 0, "Only output access token", NULL, NULL},
         {0, "refresh-token", NULL, 0, "Only output refresh token", NULL, NULL},
         {0, "expires-in", NULL, 0, "Only output expires in seconds", NULL, NULL},
         {0, "id", NULL, 0, "Only output access token id", NULL, NULL},
         CLI_OPT_OUTPUT,
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
