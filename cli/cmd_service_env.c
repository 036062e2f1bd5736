/* cli/cmd_service_env.c -- `kontena service env ls|add|rm` (cli.md §6): a service's
 * environment variables. Each change bumps the service's revision at the master. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmd_service_env_ls(struct cli *c, struct opts *o)
{
    struct svc_ref r;
    json_t *svc = NULL, *env;
    const char **v;
    size_t n;
    int quiet = opts_flag(o, "quiet"), json = cli_want_json(c, o);

    if (json < 0 || cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    if (api_get(c->api, r.path, &svc) != ST_OK) {
        svc_ref_release(&r);
        return cli_fail_api(c);
    }
    env = json_object_get(svc, "env");
    n = json_array_size(env);
    v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(env, i));
        v[i] = s ? s : "";
    }
    qsort(v, n, sizeof(*v), by_text);
    if (json) {
        json_t *list = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, json_string(v[i]));
        cli_print_json(list);
        json_decref(list);
    }
    for (size_t i = 0; i < n && !json; i++) {
        if (quiet)
            printf("%.*s\n", (int)strcspn(v[i], "="), v[i]);
        else
            printf("%s\n", v[i]);
    }
    free(v);
    json_decref(svc);
    svc_ref_release(&r);
    return 0;
}

static int cmd_service_env_add(struct cli *c, struct opts *o)
{
    const char *kv = o->args[1], *eq = strchr(kv, '=');
    struct svc_ref r;
    json_t *body, *reply = NULL;
    char *path;
    int rc = 0;

    if (!eq || eq == kv)
        return cli_error("invalid environment variable '%s': use KEY=VALUE", kv);
    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    body = json_pack("{s:s}", "env", kv);
    path = xasprintf("%s/envs", r.path);
    spinner_start(0, "Setting env variable %.*s of service %s", (int)(eq - kv), kv, r.typed);
    if (api_call(c->api, "POST", path, body, &reply) != ST_OK)
        rc = cli_fail_api(c);
    else
        spinner_done();
    free(path);
    json_decref(reply);
    json_decref(body);
    svc_ref_release(&r);
    return rc;
}

static int cmd_service_env_rm(struct cli *c, struct opts *o)
{
    struct svc_ref r;
    int rc = 0;

    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    for (int i = 1; i < o->nargs && !rc; i++) {
        char *key = cli_escape(o->args[i]);
        char *path = xasprintf("%s/envs/%s", r.path, key);

        spinner_start(0, "Removing env variable %s of service %s", o->args[i], r.typed);
        rc = cli_api_delete(c, path);
        free(path);
        free(key);
    }
    svc_ref_release(&r);
    return rc;
}

const struct cli_cmd cli_service_env_cmds[] = {
    {"service env", NULL, NULL, "Environment variables of a service", NULL, NULL, 0},
    {"service env ls", "list", cmd_service_env_ls, "List the environment variables",
     (const struct cli_param[]){{"NAME", "Service name"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_QUIET, CLI_OPT_OUTPUT, CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service env add", NULL, cmd_service_env_add, "Add or replace an environment variable",
     (const struct cli_param[]){{"NAME", "Service name"}, {"ENV", "KEY=VALUE"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    {"service env rm", "remove", cmd_service_env_rm, "Remove environment variables",
     (const struct cli_param[]){
         {"NAME", "Service name"}, {"KEY ...", "Variable name"}, CLI_PARAM_END},
     (const struct cli_opt[]){CLI_OPT_GRID, CLI_OPT_END}, 0},
    CLI_CMD_END,
};
