/* cli/commands.c -- the command tree, --help, dispatch, and the helpers commands share. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/config.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define HELP_LABEL_WIDTH 29

static const struct cli_cmd root = {
    "", NULL, NULL, "Command line interface for Kontena.", NULL, NULL, 0,
};

/* Group tables in the order their commands appear in help and completion. */
static const struct cli_cmd *const tables[] = {
    cli_master_cmds,      cli_master_user_cmds, cli_master_token_cmds, cli_grid_cmds,
    cli_grid_subnet_cmds, cli_grid_user_cmds,   cli_audit_cmds,        cli_whoami_cmds,
    cli_version_cmds,     cli_complete_cmds,
    cli_stack_cmds,       cli_stack_file_cmds,  cli_stack_label_cmds,
    cli_service_cmds,     cli_service_deploy_cmds, cli_service_env_cmds,
    cli_node_cmds,        cli_container_cmds,
};

const struct cli_cmd *cli_cmd_at(size_t i)
{
    if (i == 0)
        return &root;
    i--;
    for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
        size_t n = 0;

        while (tables[t][n].path)
            n++;
        if (i < n)
            return &tables[t][i];
        i -= n;
    }
    return NULL;
}

const struct cli_cmd *cli_cmd_find(const char *path)
{
    const struct cli_cmd *cmd;

    for (size_t i = 0; (cmd = cli_cmd_at(i)) != NULL; i++)
        if (!strcmp(cmd->path, path))
            return cmd;
    return NULL;
}

const char *cli_cmd_name(const struct cli_cmd *cmd)
{
    const char *sp = strrchr(cmd->path, ' ');

    return sp ? sp + 1 : cmd->path;
}

int cli_cmd_is_child(const struct cli_cmd *parent, const struct cli_cmd *child)
{
    size_t n = strlen(parent->path);

    if (child == &root)
        return 0;
    if (n == 0)
        return strchr(child->path, ' ') == NULL;
    return !strncmp(child->path, parent->path, n) && child->path[n] == ' ' &&
           !strchr(child->path + n + 1, ' ');
}

static int has_alias(const struct cli_cmd *cmd, const char *word)
{
    size_t len = strlen(word);

    for (const char *p = cmd->aliases; p && *p;) {
        size_t n = strcspn(p, " ");
        if (n == len && !strncmp(p, word, n))
            return 1;
        p += n;
        p += strspn(p, " ");
    }
    return 0;
}

const struct cli_cmd *cli_cmd_child(const struct cli_cmd *parent, const char *word)
{
    const struct cli_cmd *cmd;

    for (size_t i = 1; (cmd = cli_cmd_at(i)) != NULL; i++)
        if (cli_cmd_is_child(parent, cmd) &&
            (!strcmp(cli_cmd_name(cmd), word) || has_alias(cmd, word)))
            return cmd;
    return NULL;
}

/* ---- help ---- */

static void help_item(FILE *out, const char *label, const char *text)
{
    fprintf(out, "    %-*s %s\n", HELP_LABEL_WIDTH, label, text ? text : "");
}

static void help_options(FILE *out, const struct cli_opt *list)
{
    char label[128], text[512];

    for (const struct cli_opt *p = list; p && p->long_name; p++) {
        int n = 0;

        if (p->flags & CLI_OPT_HIDDEN)
            continue;
        if (p->short_name)
            n = snprintf(label, sizeof(label), "-%c, ", p->short_name);
        snprintf(label + n, sizeof(label) - (size_t)n, "--%s%s%s%s",
                 (p->flags & CLI_OPT_NEG) ? "[no-]" : "", p->long_name, p->arg ? " " : "",
                 p->arg ? p->arg : "");
        if (p->env)
            snprintf(text, sizeof(text), "%s (default: $%s)", p->help, p->env);
        else if (p->def)
            snprintf(text, sizeof(text), "%s (default: %s)", p->help, p->def);
        else
            snprintf(text, sizeof(text), "%s", p->help);
        help_item(out, label, text);
    }
}

void cli_help(const struct cli_cmd *cmd, FILE *out)
{
    const struct cli_cmd *sub;
    const char *d;

    fprintf(out, "Usage:\n    kontena%s%s [OPTIONS]", *cmd->path ? " " : "", cmd->path);
    if (!cmd->fn)
        fputs(" SUBCOMMAND [ARG] ...", out);
    for (const struct cli_param *p = cmd->params; p && p->name; p++)
        fprintf(out, " %s", p->name);
    fputs("\n\n", out);
    for (d = cmd->desc; d && *d;) {
        size_t n = strcspn(d, "\n");
        fprintf(out, "  %.*s\n", (int)n, d);
        d += n;
        if (*d)
            d++;
    }
    fputc('\n', out);

    if (!cmd->fn || (cmd->params && cmd->params[0].name)) {
        fputs("Parameters:\n", out);
        if (!cmd->fn) {
            help_item(out, "SUBCOMMAND", "subcommand");
            help_item(out, "[ARG] ...", "subcommand arguments");
        }
        for (const struct cli_param *p = cmd->params; p && p->name; p++)
            help_item(out, p->name, p->help);
        fputc('\n', out);
    }
    if (!cmd->fn) {
        fputs("Subcommands:\n", out);
        for (size_t i = 1; (sub = cli_cmd_at(i)) != NULL; i++) {
            char label[128];

            if (!cli_cmd_is_child(cmd, sub) || sub->hidden)
                continue;
            snprintf(label, sizeof(label), "%s", cli_cmd_name(sub));
            for (const char *a = sub->aliases; a && *a;) {
                size_t n = strcspn(a, " "), len = strlen(label);
                snprintf(label + len, sizeof(label) - len, ", %.*s", (int)n, a);
                a += n;
                a += strspn(a, " ");
            }
            d = sub->desc ? sub->desc : "";
            fprintf(out, "    %-*s %.*s\n", HELP_LABEL_WIDTH, label, (int)strcspn(d, "\n"), d);
        }
        fputc('\n', out);
    }
    fputs("Options:\n", out);
    help_options(out, cmd->opts);
    if (!*cmd->path)
        help_options(out, opts_toplevel);
    help_options(out, opts_global);
}

/* ---- shared helpers ---- */

struct config *cli_config(struct cli *c)
{
    struct err e = ERR_INIT;

    if (!c->cfg && config_load(NULL, &c->cfg, &e) != ST_OK)
        cli_error("%s", e.msg);
    return c->cfg;
}

void cli_use_server(struct cli *c, struct server *s, const char *token)
{
    api_destroy(c->api);
    c->api = api_create(s->url, token, c->debug);
    c->server = s;
}

int cli_connect(struct cli *c)
{
    struct server *s;
    const char *token;

    if (!cli_config(c))
        return 1;
    s = config_master(c->cfg);
    token = config_token(s);
    if (!s || !s->url || !token || !*token)
        return cli_error("You are not logged into a Kontena Master. Use: kontena master login");
    cli_use_server(c, s, token);
    return 0;
}

const char *cli_grid(struct cli *c, struct opts *o)
{
    const char *g = NULL;

    if (o && opts_has(o, "grid") && opts_given(o, "grid"))
        g = opts_str(o, "grid");
    if (!g)
        g = config_grid(c->server);
    if (!g || !*g) {
        cli_error("You have not selected a grid. Use: kontena grid");
        return NULL;
    }
    return g;
}

int cli_fail_api(struct cli *c)
{
    return cli_error("%s", api_error(c->api));
}

int cli_api_delete(struct cli *c, const char *path)
{
    json_t *reply = NULL;
    enum status st = api_call(c->api, "DELETE", path, NULL, &reply);

    json_decref(reply);
    if (st != ST_OK)
        return cli_fail_api(c);
    spinner_done();
    return 0;
}

int cli_wait_gone(struct cli *c, const char *path, const char *what, int seconds)
{
    int64_t deadline = time_mono_ms() + (int64_t)seconds * 1000;

    for (;;) {
        json_t *obj = NULL;
        enum status st = api_get(c->api, path, &obj);

        json_decref(obj);
        if (st == ST_NOTFOUND)
            return 0;
        if (st != ST_OK)
            return cli_fail_api(c);
        if (time_mono_ms() > deadline)
            return cli_error("%s is still there %d seconds after its removal", what, seconds);
        time_sleep_ms(1000);
    }
}

int cli_save_config(struct cli *c)
{
    struct err e = ERR_INIT;

    if (config_save(c->cfg, &e) != ST_OK)
        return cli_error("%s", e.msg);
    return 0;
}

int cli_want_json(struct cli *c, struct opts *o)
{
    const char *fmt = opts_str(o, "output");
    char msg[256];

    if (!fmt || !strcmp(fmt, "table") || !strcmp(fmt, "text"))
        return 0;
    if (!strcmp(fmt, "json"))
        return 1;
    snprintf(msg, sizeof(msg), "option '--output': unknown format '%s' (json or table)", fmt);
    cli_usage_error(c->cmd->path, msg);
    return -1;
}

void cli_print_json(const json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

char *cli_json_text(const json_t *v, const char *null_text)
{
    if (!v)
        return xstrdup(null_text);
    switch (json_typeof(v)) {
    case JSON_STRING:
        return xstrdup(json_string_value(v));
    case JSON_INTEGER:
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return xasprintf("%g", json_real_value(v));
    case JSON_TRUE:
        return xstrdup("true");
    case JSON_FALSE:
        return xstrdup("false");
    default:
        return xstrdup(null_text);
    }
}

char *cli_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(strlen(s) * 3 + 1), *p = out;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}

/* ---- dispatch ---- */

/* "0.1.0" -> major.minor compared; warn like the original when they differ. */
static void check_server_version(const struct cli *c)
{
    const char *sv = c->api ? api_server_version(c->api) : NULL;
    const char *cv = KONTENA_VERSION;
    size_t ns, nc;

    if (!sv || !*sv)
        return;
    ns = strcspn(sv, ".");
    ns += sv[ns] == '.' ? 1 + strcspn(sv + ns + 1, ".") : 0;
    nc = strcspn(cv, ".");
    nc += cv[nc] == '.' ? 1 + strcspn(cv + nc + 1, ".") : 0;
    if (ns != nc || strncmp(sv, cv, ns) != 0)
        fprintf(stderr, "Warning: Server version is %s. You are using CLI version %s.\n", sv, cv);
}

static int removed_command(const char *word)
{
    if (!strcmp(word, "login"))
        return cli_error("The 'login' command has been removed. Use: kontena master login");
    if (!strcmp(word, "logout"))
        return cli_error("The 'logout' command has been removed. Use: kontena master logout");
    return 0;
}

static int run(struct cli *c, int argc, char **argv)
{
    const struct cli_cmd *cmd = &root;
    int i = 1;

    for (;;) {
        struct opts o = OPTS_INIT;
        struct err e = ERR_INIT;
        const struct cli_cmd *child;
        char msg[300];
        int rc;

        if (opts_parse(&o, cmd, argc - i, argv + i, &e) != ST_OK) {
            opts_release(&o);
            return cli_usage_error(cmd->path, e.msg);
        }
        if (o.help || o.version) {
            if (o.help)
                cli_help(cmd, stdout);
            else
                printf("kontena-cli %s\n", KONTENA_VERSION);
            opts_release(&o);
            return 0;
        }
        if (opts_given(&o, "debug"))
            c->debug = opts_flag(&o, "debug");
        if (cmd->fn) {
            c->cmd = cmd;
            rc = cmd->fn(c, &o);
            opts_release(&o);
            return rc;
        }
        if (o.rest >= argc - i) {
            opts_release(&o);
            return cli_usage_error(cmd->path, "parameter 'SUBCOMMAND': no value provided");
        }
        i += o.rest;
        opts_release(&o);
        child = cli_cmd_child(cmd, argv[i]);
        if (!child) {
            if (cmd == &root && removed_command(argv[i]))
                return 1;
            snprintf(msg, sizeof(msg), "No such sub-command '%s'", argv[i]);
            return cli_usage_error(cmd->path, msg);
        }
        cmd = child;
        i++;
    }
}

int cli_main(int argc, char **argv)
{
    struct cli c = {NULL, 0, NULL, NULL, NULL};
    int rc;

    c.debug = opts_env_true(getenv("DEBUG"));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc >= 2 && !strcmp(argv[1], "complete") &&
        !(argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))))
        rc = cli_complete(&c, argc - 2, argv + 2);
    else
        rc = run(&c, argc, argv);
    if (spinner_active())
        spinner_fail();
    if (c.cmd && c.cmd->fn)
        check_server_version(&c);
    fflush(stdout);
    api_destroy(c.api);
    config_free(c.cfg);
    curl_global_cleanup();
    return rc;
}
