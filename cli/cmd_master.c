/* cli/cmd_master.c -- `kontena master login|logout|ls|use|current|rm` (cli.md §2).
 *
 * Unlike the original, login is by password (POST /oauth2/token with grant_type
 * "password") or with an existing token, not through a browser OAuth flow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define DEFAULT_MASTER_NAME "kontena-master"

/* What a successful authentication tells us. Every string is owned. */
struct login {
    char *email;
    char *token;
    char *token_id;
    char *refresh_token;
    long expires_in; /* seconds, 0 = never */
    char *server_name;
};

static void login_release(struct login *l)
{
    free(l->email);
    free(l->token);
    free(l->token_id);
    free(l->refresh_token);
    free(l->server_name);
    memset(l, 0, sizeof(*l));
}

static char *jdup(const json_t *v)
{
    return json_is_null(v) || !v ? NULL : cli_json_text(v, "");
}

static int is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* The master's own name from GET / (no authentication needed), or NULL. */
static char *fetch_server_name(struct api *a)
{
    json_t *root = NULL;
    char *name = NULL;

    if (api_get(a, "/", &root) == ST_OK) {
        const char *n = json_string_value(json_object_get(root, "server_name"));
        if (n && *n)
            name = xstrdup(n);
    }
    json_decref(root);
    return name;
}

/* Fill l from a token reply (POST /oauth2/token, GET /oauth2/tokens/<x>). */
static void login_from_token_json(struct login *l, const json_t *t)
{
    json_t *exp = json_object_get(t, "expires_in");
    char *s;

    if ((s = jdup(json_object_get(t, "access_token"))) != NULL) {
        free(l->token);
        l->token = s;
    }
    if ((s = jdup(json_object_get(t, "id"))) != NULL) {
        free(l->token_id);
        l->token_id = s;
    }
    config_set_str(&l->refresh_token, json_string_value(json_object_get(t, "refresh_token")));
    l->expires_in = json_is_integer(exp) ? (long)json_integer_value(exp) : 0;
    if ((s = jdup(json_object_get(json_object_get(t, "user"), "email"))) != NULL) {
        free(l->email);
        l->email = s;
    }
    if ((s = jdup(json_object_get(json_object_get(t, "server"), "name"))) != NULL) {
        free(l->server_name);
        l->server_name = s;
    }
}

/* Check `token` with GET /v1/user and learn what we can about it. */
static enum status login_with_token(struct api *a, const char *token, struct login *l)
{
    json_t *user = NULL, *info = NULL;
    enum status st;
    char *path, *esc;

    api_set_token(a, token);
    st = api_get(a, "/v1/user", &user);
    if (st != ST_OK)
        return st;
    config_set_str(&l->token, token);
    config_set_str(&l->email, json_string_value(json_object_get(user, "email")));
    json_decref(user);
    /* Best effort: the token's id (for logout) and expiry. */
    esc = cli_escape(token);
    path = xasprintf("/oauth2/tokens/%s", esc);
    if (api_get(a, path, &info) == ST_OK) {
        login_from_token_json(l, info);
        config_set_str(&l->token, token); /* listings hide the plain value */
    }
    json_decref(info);
    free(path);
    free(esc);
    return ST_OK;
}

static int ask_credentials(struct opts *o, char **user, char **password)
{
    const char *u = opts_str(o, "username"), *p = opts_str(o, "password");

    *user = u ? xstrdup(u) : prompt_line("Username: ", 1);
    if (!*user || !**user)
        return cli_error("Username is required: use --username (or run on a terminal)");
    if (opts_flag(o, "password-stdin")) {
        *password = read_stdin_line();
        if (!*password)
            return cli_error("cannot read the password from stdin");
    } else {
        *password = p ? xstrdup(p) : prompt_line("Password: ", 0);
    }
    if (!*password || !**password)
        return cli_error("Password is required: use --password, --password-stdin or "
                         "KONTENA_PASSWORD (or run on a terminal)");
    return 0;
}

static enum status login_with_password(struct api *a, const char *user, const char *password,
                                       long expires_in, struct login *l)
{
    json_t *body, *reply = NULL;
    char host[256] = "", *desc;
    enum status st;

    if (gethostname(host, sizeof(host) - 1) == -1)
        host[0] = '\0';
    desc = xasprintf("kontena-cli login%s%s", *host ? " from " : "", host);
    body =
        json_pack("{s:s, s:s, s:s, s:I, s:s}", "grant_type", "password", "username", user,
                  "password", password, "expires_in", (json_int_t)expires_in, "description", desc);
    free(desc);
    api_set_token(a, NULL);
    st = api_call(a, "POST", "/oauth2/token", body, &reply);
    json_decref(body);
    if (st == ST_OK) {
        login_from_token_json(l, reply);
        if (!l->token)
            st = ST_INVALID;
        if (!l->email)
            l->email = xstrdup(user);
    }
    json_decref(reply);
    return st;
}

/* Pick or create the config entry the login is stored in. */
static struct server *login_entry(struct config *cfg, struct server *srv, const char *url,
                                  const char *name, const char *server_name)
{
    struct server *other;

    if (srv == cfg->env_server)
        srv = NULL; /* KONTENA_URL's temporary entry: store the login as a real one */
    if (srv) {
        if (name && strcmp(srv->name, name) != 0) {
            other = config_find(cfg, name);
            if (other)
                config_remove(cfg, other);
            config_set_str(&srv->name, name);
        }
        return srv;
    }
    if (name) {
        other = config_find(cfg, name);
        if (other) {
            if (!other->url || strcmp(other->url, url) != 0)
                config_set_str(&other->grid, NULL);
            config_set_str(&other->url, url);
            return other;
        }
        return config_add(cfg, name, url);
    }
    return config_add(cfg, server_name ? server_name : DEFAULT_MASTER_NAME, url);
}

static int after_login(struct cli *c, struct opts *o, struct server *srv, const char *token)
{
    int silent = opts_flag(o, "silent");

    cli_use_server(c, srv, token);
    if (opts_given(o, "grid"))
        return cli_grid_use(c, opts_str(o, "grid"), silent);
    if (!srv->grid && !opts_flag(o, "skip-grid-auto-select"))
        return cli_grid_autoselect(c, silent);
    return 0;
}

static int cmd_master_login(struct cli *c, struct opts *o)
{
    const char *arg = o->nargs ? o->args[0] : NULL, *token = opts_str(o, "token");
    const char *name = opts_str(o, "name"), *ca = opts_str(o, "ca-cert");
    int force = opts_flag(o, "force"), silent = opts_flag(o, "silent");
    int pw_given =
        opts_given(o, "password") || opts_given(o, "password-stdin") || opts_given(o, "username");
    struct login l = {NULL, NULL, NULL, NULL, 0, NULL};
    struct server *srv = NULL;
    struct err e = ERR_INIT;
    char *url = NULL, *user = NULL, *password = NULL;
    struct api *a = NULL;
    enum status st;
    int rc = 1;

    if (opts_given(o, "token") && pw_given)
        return cli_error("Can't use --token and --username/--password together");
    if (opts_given(o, "token") && force)
        return cli_error("Can't use --token and --force together");
    if (opts_given(o, "password") && opts_given(o, "password-stdin"))
        return cli_error("Can't use --password and --password-stdin together");
    if (!cli_config(c))
        return 1;

    if (arg && is_url(arg)) {
        size_t len = strlen(arg);
        while (len > 1 && arg[len - 1] == '/')
            len--;
        url = xstrndup(arg, len);
        srv = config_find_url(c->cfg, url);
    } else if (arg) {
        srv = config_find(c->cfg, arg);
        if (!srv || !srv->url)
            return cli_error("Could not resolve master by name '%s'. For a list of known masters "
                             "please run: kontena master list",
                             arg);
        url = xstrdup(srv->url);
    } else {
        srv = config_master(c->cfg);
        if (!srv || !srv->url)
            return cli_error("URL not specified and current master not selected");
        url = xstrdup(srv->url);
    }
    if (ca && config_install_cert(url, ca, &e) != ST_OK) {
        rc = cli_error("%s", e.msg);
        goto out;
    }
    a = api_create(url, NULL, c->debug);

    if (!token && !pw_given && !force && srv && srv->token) {
        /* Already logged in with a token that still works: nothing to do. */
        api_set_token(a, srv->token);
        json_t *user_json = NULL;
        if (api_get(a, "/v1/user", &user_json) == ST_OK) {
            const char *email = json_string_value(json_object_get(user_json, "email"));
            if (!silent)
                printf("Authenticated to Kontena Master %s at %s as %s\n", srv->name, srv->url,
                       email ? email : "?");
            json_decref(user_json);
            config_set_current(c->cfg, srv);
            if (srv != c->cfg->env_server && cli_save_config(c))
                goto out;
            rc = after_login(c, o, srv, srv->token);
            goto out;
        }
    }

    if (token) {
        st = login_with_token(a, token, &l);
    } else {
        if (ask_credentials(o, &user, &password))
            goto out;
        st = login_with_password(a, user, password, opts_int(o, "expires-in", 0), &l);
    }
    if (st != ST_OK) {
        rc = api_status(a) || *api_error(a) ? cli_error("%s", api_error(a))
                                            : cli_error("unexpected reply from the master");
        goto out;
    }
    if (!l.server_name && !name && !srv)
        l.server_name = fetch_server_name(a);

    srv = login_entry(c->cfg, srv, url, name, l.server_name);
    config_set_str(&srv->token, l.token);
    config_set_str(&srv->token_id, l.token_id);
    config_set_str(&srv->refresh_token, l.refresh_token);
    config_set_str(&srv->username, l.email);
    srv->token_expires_at = l.expires_in > 0 ? (int64_t)time(NULL) + l.expires_in : 0;
    config_set_current(c->cfg, srv);
    if (cli_save_config(c))
        goto out;
    if (!silent)
        printf("Authenticated to Kontena Master %s at %s as %s\n", srv->name, srv->url,
               l.email ? l.email : "?");
    rc = after_login(c, o, srv, l.token);
out:
    api_destroy(a);
    if (password)
        memset(password, 0, strlen(password));
    free(password);
    free(user);
    free(url);
    login_release(&l);
    return rc;
}

/* Revoke the token at the master (best effort) and forget it. */
static void logout_server(struct cli *c, struct server *s)
{
    const char *token = config_token(s);
    json_t *reply = NULL;

    if (token && s->url) {
        struct api *a = api_create(s->url, token, c->debug);
        char *esc = cli_escape(s->token_id ? s->token_id : token);
        char *path = xasprintf("/oauth2/tokens/%s", esc);

        if (api_call(a, "DELETE", path, NULL, &reply) != ST_OK && c->debug)
            fprintf(stderr, "DEBUG: token revocation failed: %s\n", api_error(a));
        json_decref(reply);
        free(path);
        free(esc);
        api_destroy(a);
    }
    config_set_str(&s->token, NULL);
    config_set_str(&s->token_id, NULL);
    config_set_str(&s->refresh_token, NULL);
    s->token_expires_at = 0;
    printf("Logged out of %s\n", s->name);
}

static int cmd_master_logout(struct cli *c, struct opts *o)
{
    struct server *s;

    if (!cli_config(c))
        return 1;
    if (opts_flag(o, "all")) {
        for (size_t i = 0; i < c->cfg->nservers; i++)
            logout_server(c, c->cfg->servers[i]);
        return cli_save_config(c);
    }
    s = config_master(c->cfg);
    if (!s) {
        cli_warn("Current master has not been selected");
        return 0;
    }
    logout_server(c, s);
    return cli_save_config(c);
}

static int cmd_master_ls(struct cli *c, struct opts *o)
{
    static const char *const headers[] = {"name", "url"};
    int json = cli_want_json(c, o);
    struct server *cur;
    struct table *t;

    if (json < 0 || !cli_config(c))
        return 1;
    cur = config_master(c->cfg);
    if (json) {
        json_t *list = json_array();

        for (size_t i = 0; i < c->cfg->nservers; i++) {
            const struct server *s = c->cfg->servers[i];
            json_array_append_new(list, json_pack("{s:s?, s:s?, s:s?, s:s?, s:b}", "name", s->name,
                                                  "url", s->url, "grid", s->grid, "username",
                                                  s->username, "current", s == cur));
        }
        cli_print_json(list);
        json_decref(list);
        return 0;
    }
    if (opts_flag(o, "quiet")) {
        for (size_t i = 0; i < c->cfg->nservers; i++)
            printf("%s\n", c->cfg->servers[i]->name);
        return 0;
    }
    t = table_create(headers, ARRAY_SIZE(headers));
    for (size_t i = 0; i < c->cfg->nservers; i++) {
        const struct server *s = c->cfg->servers[i];
        char *name = xasprintf("%s%s", s == cur ? "* " : "", s->name);
        const char *row[] = {name, s->url};

        table_add(t, row);
        free(name);
    }
    table_print(t, stdout);
    table_destroy(t);
    return 0;
}

static int cmd_master_use(struct cli *c, struct opts *o)
{
    struct server *s;

    if (!cli_config(c))
        return 1;
    if (opts_flag(o, "clear")) {
        config_set_current(c->cfg, NULL);
        return cli_save_config(c);
    }
    if (o->nargs == 0)
        return cli_usage_error(c->cmd->path, "parameter 'NAME': no value provided");
    s = config_find(c->cfg, o->args[0]);
    if (!s)
        return cli_error("Could not resolve master by name '%s'. For a list of known masters "
                         "please run: kontena master list",
                         o->args[0]);
    config_set_current(c->cfg, s);
    if (cli_save_config(c))
        return 1;
    printf("Using master: %s (%s)\n", s->name, s->url ? s->url : "");
    printf("Using grid: %s\n", s->grid ? s->grid : "<none>");
    return 0;
}

static int cmd_master_current(struct cli *c, struct opts *o)
{
    struct server *s;

    if (!cli_config(c))
        return 1;
    s = config_master(c->cfg);
    if (!s)
        return cli_error("You are not logged into a Kontena Master. Use: kontena master login");
    if (opts_flag(o, "name")) {
        printf("%s\n", s->name);
    } else if (opts_flag(o, "url")) {
        printf("%s\n", s->url ? s->url : "");
    } else if (opts_flag(o, "address")) {
        char *host = s->url ? config_url_host(s->url) : NULL;
        printf("%s\n", host ? host : "");
        free(host);
    } else {
        printf("%s %s\n", s->name, s->url ? s->url : "");
    }
    return 0;
}

static int cmd_master_rm(struct cli *c, struct opts *o)
{
    int removed_current = 0;

    if (!cli_config(c))
        return 1;
    for (int i = 0; i < o->nargs; i++)
        if (!config_find(c->cfg, o->args[i]))
            return cli_error("Could not resolve master by name '%s'. For a list of known masters "
                             "please run: kontena master list",
                             o->args[i]);
    if (confirm(NULL, opts_flag(o, "force")))
        return 1;
    for (int i = 0; i < o->nargs; i++) {
        struct server *s = config_find(c->cfg, o->args[i]);

        if (!s)
            continue; /* named twice */
        if (c->cfg->current_server && !strcmp(c->cfg->current_server, s->name))
            removed_current = 1;
        config_remove(c->cfg, s);
    }
    if (cli_save_config(c))
        return 1;
    if (removed_current)
        printf("Current master was removed, to select a new current master use:\n"
               "  kontena master use <master_name>\n");
    return 0;
}

const struct cli_cmd cli_master_cmds[] = {
    {"master", NULL, NULL, "Kontena Master specific commands", NULL, NULL, 0},
    {"master login", NULL, cmd_master_login,
     "Authenticate to a Kontena Master with a username and password or an access token.\n"
     "Without credentials, a still valid stored token is reused; otherwise the username and\n"
     "password are asked for on a terminal.",
     (const struct cli_param[]){{"[URL]", "Kontena Master URL or name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {'u', "username", "USER", 0, "Username (email) to log in with", NULL, NULL},
         {'p', "password", "PASSWORD", 0, "Password", NULL, "KONTENA_PASSWORD"},
         {0, "password-stdin", NULL, 0, "Read the password from the first line of stdin", NULL,
          NULL},
         {'t', "token", "TOKEN", 0, "Use a pre-generated access token", NULL, "KONTENA_TOKEN"},
         {'n', "name", "NAME", 0, "Set server name", NULL, "KONTENA_MASTER"},
         {'e', "expires-in", "SECONDS", CLI_OPT_INT,
          "Request a token that expires in SECONDS, 0 = never", "0", NULL},
         {0, "ca-cert", "FILE", 0, "Trust this CA certificate for the master's TLS", NULL, NULL},
         {'f', "force", NULL, 0, "Force reauthentication", NULL, NULL},
         {'s', "silent", NULL, 0, "Reduce output verbosity", NULL, NULL},
         {0, "grid", "GRID", 0, "Select grid after login", NULL, NULL},
         {0, "skip-grid-auto-select", NULL, 0, "Do not auto select a grid", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"master logout", NULL, cmd_master_logout, "Log out of Kontena Masters", NULL,
     (const struct cli_opt[]){{'A', "all", NULL, 0, "Log out of all masters", NULL, NULL},
                              CLI_OPT_END},
     0},
    {"master ls", "list", cmd_master_ls, "List Kontena Masters in the configuration", NULL,
     (const struct cli_opt[]){CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_END}, 0},
    {"master use", NULL, cmd_master_use, "Switch to use selected Kontena Master",
     (const struct cli_param[]){{"[NAME]", "Master name to use"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         {0, "clear", NULL, 0, "Clear current master setting", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"master current", NULL, cmd_master_current, "Show current Kontena Master", NULL,
     (const struct cli_opt[]){
         {0, "name", NULL, 0, "Show name only", NULL, NULL},
         {0, "url", NULL, 0, "Show URL only", NULL, NULL},
         {0, "address", NULL, 0, "Show host address only", NULL, NULL},
         CLI_OPT_END,
     },
     0},
    {"master rm", "remove", cmd_master_rm,
     "Remove Kontena Masters from the local configuration (the master is not touched)",
     (const struct cli_param[]){{"NAME ...", "Master name"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_FORCE, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
