/* cli/cmd_master_user.c -- `kontena master user ls|add|rm|role add|role rm` (cli.md §2).
 * Local users with passwords replace the original's invitations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static char *user_path(const char *email, const char *suffix)
{
    char *esc = cli_escape(email), *path = xasprintf("/v1/users/%s%s", esc, suffix);

    free(esc);
    return path;
}

/* "a,b" from [{"name":"a"},{"name":"b"}] (or from plain strings); caller frees. */
static char *role_names(const json_t *roles)
{
    struct buf b = BUF_INIT;
    json_t *r;
    size_t i;

    json_array_foreach(roles, i, r)
    {
        const char *name = json_is_string(r) ? json_string_value(r)
                                             : json_string_value(json_object_get(r, "name"));
        if (!name)
            continue;
        if ((b.len && buf_puts(&b, ",") != ST_OK) || buf_puts(&b, name) != ST_OK)
            BUG_ON("uncapped buffer refused an append");
    }
    return buf_take(&b);
}

static int cmd_user_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"email", "roles"};
    int json = cli_want_json(c, o);
    json_t *reply = NULL, *user;
    struct table *t;
    size_t i;

    if (json < 0 || cli_connect(c))
        return 1;
    if (api_get(c->api, "/v1/users", &reply) != ST_OK)
        return cli_fail_api(c);
    if (json) {
        cli_print_json(reply);
    } else if (opts_flag(o, "quiet")) {
        json_array_foreach(json_object_get(reply, "users"), i, user)
            printf("%s\n", json_string_value(json_object_get(user, "email")));
    } else {
        t = table_create(headers, ARRAY_SIZE(headers));
        json_array_foreach(json_object_get(reply, "users"), i, user)
        {
            char *roles = role_names(json_object_get(user, "roles"));
            const char *row[] = {json_string_value(json_object_get(user, "email")), roles};

            table_add(t, row);
            free(roles);
        }
        table_print(t, stdout);
        table_destroy(t);
    }
    json_decref(reply);
    return 0;
}

/* The new user's password: --password, --password-stdin, or asked twice on a terminal. */
static char *new_password(struct opts *o)
{
    char *pw, *again;

    if (opts_given(o, "password") && opts_flag(o, "password-stdin")) {
        cli_error("Can't use --password and --password-stdin together");
        return NULL;
    }
    if (opts_str(o, "password"))
        return xstrdup(opts_str(o, "password"));
    if (opts_flag(o, "password-stdin")) {
        pw = read_stdin_line();
        if (!pw)
            cli_error("cannot read the password from stdin");
        return pw;
    }
    pw = prompt_line("Password: ", 0);
    if (!pw) {
        cli_error("Password is required: use --password or --password-stdin");
        return NULL;
    }
    again = prompt_line("Password (again): ", 0);
    if (!again || strcmp(pw, again) != 0) {
        free(pw);
        free(again);
        cli_error("Passwords do not match");
        return NULL;
    }
    free(again);
    return pw;
}

static int cmd_user_add(struct cli *c, struct opts *o)
{
    const char *email = o->args[0], *roles = opts_str(o, "roles");
    json_t *body, *reply = NULL;
    char *pw;
    enum status st;

    if (cli_connect(c))
        return 1;
    pw = new_password(o);
    if (!pw)
        return 1;
    body = json_pack("{s:s, s:s}", "email", email, "password", pw);
    memset(pw, 0, strlen(pw));
    free(pw);
    if (opts_str(o, "name"))
        json_object_set_new(body, "name", json_string(opts_str(o, "name")));
    if (roles) {
        json_t *list = json_array();

        for (const char *p = roles; *p;) {
            size_t n = strcspn(p, ",");
            if (n)
                json_array_append_new(list, json_stringn(p, n));
            p += n;
            p += *p == ',';
        }
        json_object_set_new(body, "roles", list);
    }
    spinner_start(opts_flag(o, "silent"), "Creating user %s", email);
    st = api_call(c->api, "POST", "/v1/users", body, &reply);
    json_decref(body);
    json_decref(reply);
    if (st != ST_OK)
        return cli_fail_api(c);
    spinner_done();
    return 0;
}

static int cmd_user_rm(struct cli *c, struct opts *o)
{
    if (cli_connect(c) || confirm(NULL, opts_flag(o, "force")))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        char *path = user_path(o->args[i], "");
        int rc;

        spinner_start(0, "Removing user %s", o->args[i]);
        rc = cli_api_delete(c, path);
        free(path);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmd_role_add(struct cli *c, struct opts *o)
{
    const char *role = o->args[0];

    if (cli_connect(c))
        return 1;
    for (int i = 1; i < o->nargs; i++) {
        char *path = user_path(o->args[i], "/roles");
        json_t *body = json_pack("{s:s}", "role", role), *reply = NULL;
        enum status st = api_call(c->api, "POST", path, body, &reply);

        free(path);
        json_decref(body);
        json_decref(reply);
        if (st != ST_OK)
            return cli_fail_api(c);
        if (!opts_flag(o, "silent"))
            printf("Added role %s to %s\n", role, o->args[i]);
    }
    return 0;
}

static int cmd_role_rm(struct cli *c, struct opts *o)
{
    const char *role = o->args[0];
    char *esc_role = cli_escape(role), *suffix = xasprintf("/roles/%s", esc_role);
    int rc = 0;

    free(esc_role);
    if (cli_connect(c)) {
        free(suffix);
        return 1;
    }
    for (int i = 1; i < o->nargs && !rc; i++) {
        char *path = user_path(o->args[i], suffix);
        json_t *reply = NULL;

        if (api_call(c->api, "DELETE", path, NULL, &reply) != ST_OK)
            rc = cli_fail_api(c);
        else if (!opts_flag(o, "silent"))
            printf("Removed role %s from %s\n", role, o->args[i]);
        json_decref(reply);
        free(path);
    }
    free(suffix);
    return rc;
}

#define ROLE_PARAMS                                                                                \
    ((const struct cli_param[]){{"ROLE", "Role name (master_admin, grid_admin, user_admin)"},      \
                                {"USER ...", "User email"},                                        \
                                CLI_PARAM_END})

const struct cli_cmd cli_master_user_cmds[] = {
    {"master user", "users", NULL, "User specific commands", NULL, NULL, 0},
    {"master user ls", "list", cmd_user_ls, "List users", NULL,
     (const struct cli_opt[]){CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    {"master user add", NULL, cmd_user_add,
     "Create a user that logs in with a password.\n"
     "Without --password or --password-stdin the password is asked for on a terminal.",
     (const struct cli_param[]){{"EMAIL", "User email (login name)"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {'p', "password", "PASSWORD", 0, "Password", NULL, NULL},
         {0, "password-stdin", NULL, 0, "Read the password from the first line of stdin", NULL,
          NULL},
         {'n', "name", "NAME", 0, "Full name", NULL, NULL},
         {'r', "roles", "ROLES", 0, "Comma separated list of roles to give the user", NULL, NULL},
         {'s', "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"master user rm", "remove", cmd_user_rm, "Remove users",
     (const struct cli_param[]){{"EMAIL ...", "User email"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_FORCE, CLI_OPT_END}, 0},
    {"master user role", NULL, NULL, "User role specific commands", NULL, NULL, 0},
    {"master user role add", NULL, cmd_role_add, "Add role to users", ROLE_PARAMS,
     (const struct cli_opt[]){{0, "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
                              CLI_OPT_END},
     0},
    {"master user role rm", "remove", cmd_role_rm, "Remove role from users", ROLE_PARAMS,
     (const struct cli_opt[]){{0, "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
                              CLI_OPT_END},
     0},
    CLI_CMD_END,
};
