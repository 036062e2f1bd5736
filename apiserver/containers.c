/* apiserver/containers.c -- container routes (issue 4 point 4): the grid's containers as
 * the agents observe them (from etcd, no agent involved), and inspect / logs / exec of one
 * container through its node's agent WebSocket (agentws_call()). The logs of a container
 * come from the master's log window now (logs.c).
 *
 * A container is named <node>/<name> (the original's CONTAINER_ID). Grid access rules as
 * every grid route (grid_load()). exec is audited. docs/api.md lists the routes;
 * docs/internals/agent.md the RPC methods.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define KEY_OBSERVED "/kontena/observed/"
#define KEY_INSTANCES "/kontena/instances/"
#define RPC_TIMEOUT_MS 30000

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 128 && s[0] != '.' && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* "<node>/<name>" of a key under prefix, or NULL. */
static const char *key_rest(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *rest = strncmp(key, prefix, n) == 0 ? key + n : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;

    return slash && slash != rest && slash[1] && !strchr(slash + 1, '/') ? rest : NULL;
}

static json_t *joined_command(const json_t *inst)
{
    const json_t *spec = json_object_get(inst, "spec"), *x;
    struct buf b;
    size_t i;
    char *s;
    json_t *out;

    buf_init(&b, 4096);
    json_array_foreach(json_object_get(spec, "entrypoint"), i, x) if (json_is_string(x))
    {
        if (b.len && buf_append(&b, " ", 1) != ST_OK)
            break;
        if (buf_append(&b, json_string_value(x), json_string_length(x)) != ST_OK)
            break;
    }
    json_array_foreach(json_object_get(spec, "cmd"), i, x) if (json_is_string(x))
    {
        if (b.len && buf_append(&b, " ", 1) != ST_OK)
            break;
        if (buf_append(&b, json_string_value(x), json_string_length(x)) != ST_OK)
            break;
    }
    s = buf_take(&b);
    out = json_string(s ? s : "");
    free(s);
    buf_release(&b);
    return out ? out : json_string("");
}

static void h_container_list(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *out;
    char *oprefix, *iprefix;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result obs = {0}, inst = {0};
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    oprefix = xasprintf(KEY_OBSERVED "%s/", params[0]);
    iprefix = xasprintf(KEY_INSTANCES "%s/", params[0]);
    st = etcd_range(r->api->etcd, oprefix, &o, &obs, &e);
    if (st == ST_OK)
        st = etcd_range(r->api->etcd, iprefix, &o, &inst, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
        goto out;
    }
    out = json_array();
    for (size_t i = 0; i < obs.n; i++) {
        const char *id = key_rest(obs.kvs[i].key, oprefix), *created;
        json_t *ov, *iv = NULL, *c;
        char *node;

        if (!id)
            continue;
        ov = json_loadb(obs.kvs[i].value, obs.kvs[i].value_len, 0, NULL);
        if (!json_is_object(ov)) {
            json_decref(ov);
            continue;
        }
        for (size_t k = 0; k < inst.n; k++) {
            const char *iid = key_rest(inst.kvs[k].key, iprefix);
            if (iid && !strcmp(iid, id)) {
                iv = json_loadb(inst.kvs[k].value, inst.kvs[k].value_len, 0, NULL);
                break;
            }
        }
        node = xstrdup(id);
        node[strcspn(node, "/")] = '\0';
        created = json_string_value(json_object_get(ov, "created_at"));
        if (!created)
            created = json_string_value(json_object_get(ov, "started_at"));
        if (!created)
            created = json_string_value(json_object_get(ov, "updated_at"));
        c = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:s?, s:O, s:O, s:O, s:O}", "id", id,
                      "name", strchr(id, '/') + 1, "node", node, "grid", params[0], "image",
                      json_object_get(ov, "image") ? json_object_get(ov, "image")
                                                   : json_null(),
                      "command", joined_command(iv), "created", created, "status",
                      json_object_get(ov, "state") ? json_object_get(ov, "state")
                                                   : json_null(),
                      "exit_code",
                      json_object_get(ov, "exit_code") ? json_object_get(ov, "exit_code")
                                                       : json_null(),
                      "container_id",
                      json_object_get(ov, "container_id") ? json_object_get(ov, "container_id")
                                                          : json_null(),
                      "error",
                      json_object_get(ov, "error") ? json_object_get(ov, "error") : json_null());
        if (c)
            json_array_append_new(out, c);
        free(node);
        json_decref(iv);
        json_decref(ov);
    }
    reply_json(r, 200, json_pack("{s:o}", "containers", out));
out:
    etcd_range_result_release(&obs);
    etcd_range_result_release(&inst);
    free(oprefix);
    free(iprefix);
    json_decref(g);
}

/* Checks the grid and the names; 0 after replying. */
static int container_target(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL);

    if (!g)
        return 0;
    json_decref(g);
    if (!node_name_valid(params[1])) {
        reply_error(r, 404, "Node %s not found", params[1]);
        return 0;
    }
    if (!name_ok(params[2])) {
        reply_error(r, 404, "Container %s/%s not found", params[1], params[2]);
        return 0;
    }
    return 1;
}

static void reply_rpc_error(struct req *r, enum status st, const struct err *e)
{
    switch (st) {
    case ST_NOTFOUND:
        reply_error(r, 404, "%s", e->msg);
        break;
    case ST_CONFLICT:
        reply_error(r, 409, "%s", e->msg);
        break;
    case ST_INVALID:
        reply_error(r, 422, "%s", e->msg);
        break;
    case ST_RETRY:
        reply_error(r, 503, "%s", e->msg);
        break;
    default:
        reply_error(r, 500, "%s", e->msg);
        break;
    }
}

static void call_agent(struct req *r, char **params, const char *method, json_t *args)
{
    struct err e = ERR_INIT;
    json_t *res = NULL;
    enum status st =
        agentws_call(__atomic_load_n(&r->api->agentws, __ATOMIC_ACQUIRE), params[0], params[1],
                     method, args, RPC_TIMEOUT_MS, &res, &e);

    if (st != ST_OK)
        reply_rpc_error(r, st, &e);
    else
        reply_json(r, 200, res);
    json_decref(args);
}

static void h_container_inspect(struct req *r, char **params)
{
    if (container_target(r, params))
        call_agent(r, params, "/containers/inspect", json_pack("[s]", params[2]));
}

static void h_container_exec(struct req *r, char **params)
{
    json_t *cmd = json_object_get(r->json, "cmd"), *x, *shell = json_object_get(r->json, "shell");
    size_t i;

    if (!container_target(r, params))
        return;
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", params[2]);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s/%s/%s", params[0], params[1], params[2]);
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", params[0]);
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 1000) {
        reply_invalid(r, "cmd", "must be a non-empty array of strings");
        return;
    }
    json_array_foreach(cmd, i, x) if (!json_is_string(x))
    {
        reply_invalid(r, "cmd", "must be a non-empty array of strings");
        return;
    }
    if (shell && !json_is_boolean(shell)) {
        reply_invalid(r, "shell", "must be true or false");
        return;
    }
    call_agent(r, params, "/containers/exec",
               json_pack("[s, O, {s:b}]", params[2], cmd, "shell", json_is_true(shell)));
}

const struct route container_routes[] = {
    {"GET", "/v1/grids/:grid/containers", AUTH_TOKEN, h_container_list, NULL, NULL},
    {"GET", "/v1/containers/:grid/:node/:name/inspect", AUTH_TOKEN, h_container_inspect, NULL,
     NULL},
    {"POST", "/v1/containers/:grid/:node/:name/exec", AUTH_TOKEN, h_container_exec, "exec",
     "Container"},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
