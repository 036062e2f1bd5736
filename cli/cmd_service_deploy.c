/* cli/cmd_service_deploy.c -- `kontena service deploy|scale` and waiting on a service deploy
 * record (cli.md §6), which `stack deploy` shares. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/output.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define POLL_MS 1000

long cli_deploy_timeout(struct cli *c, struct opts *o)
{
    long t = opts_int(o, "timeout", 600);

    if (t <= 0) {
        cli_usage_error(c->cmd->path, "option '--timeout': must be a positive number of seconds");
        return -1;
    }
    return t;
}

static int finished(const json_t *d)
{
    const char *at = jstr(d, "finished_at"), *state = jstr(d, "state");

    return (at && *at) || (state && (!strcmp(state, "success") || !strcmp(state, "error")));
}

/* "⊛ Deployed instance <service>-<n> to node <node>" per successful instance. */
static void print_deployed(const json_t *d)
{
    const char *svc = jstr(d, "service_id");
    json_t *inst;
    size_t i;

    json_array_foreach(json_object_get(d, "instance_deploys"), i, inst)
    {
        const char *state = jstr(inst, "state"), *node = jstr(inst, "node");

        if (state && !strcmp(state, "success"))
            printf("⊛ Deployed instance %s-%lld to node %s\n", svc ? svc : "",
                   (long long)json_integer_value(json_object_get(inst, "instance_number")),
                   node ? node : "-");
    }
}

/* " [error] 500 : <reason>:" and a tab-indented line per failed instance. */
static int deploy_failed(const json_t *d)
{
    const char *svc = jstr(d, "service_id"), *reason = jstr(d, "reason");
    struct buf b = BUF_INIT;
    json_t *inst;
    size_t i;
    int rc;

    json_array_foreach(json_object_get(d, "instance_deploys"), i, inst)
    {
        const char *state = jstr(inst, "state"), *node = jstr(inst, "node");
        const char *error = jstr(inst, "error");

        if (!state || strcmp(state, "error") != 0)
            continue;
        if (buf_printf(&b, "\n\t⊗ Failed to deploy instance %s-%lld to node %s: %s", svc ? svc : "",
                       (long long)json_integer_value(json_object_get(inst, "instance_number")),
                       node ? node : "-", error ? error : "") != ST_OK)
            BUG_ON("uncapped buffer refused an append");
    }
    rc = cli_error("500 : %s%s%s", reason && *reason ? reason : "deploy failed", b.len ? ":" : "",
                   b.len ? b.ptr : "");
    buf_release(&b);
    return rc;
}

int cli_service_deploy_wait(struct cli *c, const char *svc_path, const json_t *deploy,
                            const char *label, long timeout_s)
{
    const char *id = jstr(deploy, "id"), *state;
    int64_t deadline = time_mono_ms() + (int64_t)timeout_s * 1000;
    json_t *cur = json_incref((json_t *)deploy);
    char *shown = xstrdup(""), *esc, *path;
    int rc = 1;

    if (!id) {
        json_decref(cur);
        free(shown);
        return cli_error("the master answered the deploy without a deploy id");
    }
    esc = cli_escape(id);
    path = xasprintf("%s/deploys/%s", svc_path, esc);
    free(esc);
    while (!finished(cur)) {
        const char *reason = jstr(cur, "reason");
        json_t *next = NULL;

        if (reason && *reason && strcmp(reason, shown) != 0) {
            /* A new phase of the deploy ("waiting for the scheduler"): one spinner each. */
            if (spinner_active())
                spinner_done();
            spinner_start(0, "%s: %s", label, reason);
            free(shown);
            shown = xstrdup(reason);
        }
        if (time_mono_ms() >= deadline) {
            rc = cli_error("500 : deploy timed out");
            goto out;
        }
        time_sleep_ms(POLL_MS);
        if (api_get(c->api, path, &next) != ST_OK) {
            rc = cli_fail_api(c);
            goto out;
        }
        json_decref(cur);
        cur = next;
    }
    state = jstr(cur, "state");
    if (state && !strcmp(state, "error")) {
        rc = deploy_failed(cur);
        goto out;
    }
    if (spinner_active())
        spinner_done();
    print_deployed(cur);
    rc = 0;
out:
    free(path);
    free(shown);
    json_decref(cur);
    return rc;
}

/* Whether to wait: --[no-]wait, default on. */
static int want_wait(struct opts *o)
{
    return !opts_given(o, "wait") || opts_flag(o, "wait");
}

/* POST <service>/<action> body under a spinner, then wait unless --no-wait. */
static int deploy_like(struct cli *c, struct opts *o, const struct svc_ref *r, const char *action,
                       json_t *body, const char *msg)
{
    long timeout = cli_deploy_timeout(c, o);
    json_t *deploy = NULL;
    char *path;
    int rc;

    if (timeout < 0)
        return 1;
    path = xasprintf("%s/%s", r->path, action);
    spinner_start(0, "%s", msg);
    if (api_call(c->api, "POST", path, body, &deploy) != ST_OK) {
        free(path);
        return cli_fail_api(c);
    }
    free(path);
    if (!want_wait(o)) {
        spinner_done();
        json_decref(deploy);
        return 0;
    }
    rc = cli_service_deploy_wait(c, r->path, deploy, msg, timeout);
    json_decref(deploy);
    return rc;
}

static int cmd_service_deploy(struct cli *c, struct opts *o)
{
    struct svc_ref r;
    json_t *body;
    char *msg;
    int rc;

    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    body = json_pack("{s:b}", "force", opts_flag(o, "force"));
    msg = xasprintf("Deploying service %s", r.typed);
    rc = deploy_like(c, o, &r, "deploy", body, msg);
    free(msg);
    json_decref(body);
    svc_ref_release(&r);
    return rc;
}

static int cmd_service_scale(struct cli *c, struct opts *o)
{
    struct svc_ref r;
    long long n;
    json_t *body;
    char *msg, *end;
    int rc;

    errno = 0;
    n = strtoll(o->args[1], &end, 10);
    if (errno || end == o->args[1] || *end || n < 0 || n > 100000)
        return cli_usage_error(c->cmd->path,
                               "parameter 'INSTANCES': must be a number of instances");
    if (cli_connect(c) || svc_ref_parse(c, o, o->args[0], &r))
        return 1;
    body = json_pack("{s:I}", "instances", (json_int_t)n);
    msg = xasprintf("Scaling %s to %lld instances", r.typed, n);
    rc = deploy_like(c, o, &r, "scale", body, msg);
    free(msg);
    json_decref(body);
    svc_ref_release(&r);
    return rc;
}

#define WAIT_OPTS                                                                                  \
    {0, "wait", NULL, CLI_OPT_NEG, "Wait for the deploy to finish", "true", NULL},                 \
    {                                                                                              \
        0, "timeout", "SECONDS", CLI_OPT_INT, "How long to wait for the deploy", "600", NULL       \
    }

const struct cli_cmd cli_service_deploy_cmds[] = {
    {"service deploy", NULL, cmd_service_deploy, "Deploy a service",
     (const struct cli_param[]){{"NAME", "Service name"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         WAIT_OPTS,
         {0, "force", NULL, 0, "Deploy even when nothing changed", NULL, NULL},
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    {"service scale", NULL, cmd_service_scale, "Scale a service",
     (const struct cli_param[]){
         {"NAME", "Service name"}, {"INSTANCES", "Number of instances"}, CLI_PARAM_END},
     (const struct cli_opt[]){
         WAIT_OPTS,
         CLI_OPT_GRID,
         CLI_OPT_END,
     },
     0},
    CLI_CMD_END,
};
