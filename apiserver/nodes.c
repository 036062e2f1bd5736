/* apiserver/nodes.c -- node routes: list, show, update (labels, availability), remove.
 *
 * Nodes are created by the agents' endpoint (agentws.c) when an agent first connects.
 * A node's status is derived when read: the liveness key /kontena/node_status/<grid>/<node>
 * exists while its agent is connected and answering pings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define NODE_TXN_ATTEMPTS 8

char *key_node(const char *grid, const char *name)
{
    return xasprintf(KEY_NODES "%s/%s", grid, name);
}

char *key_node_status(const char *grid, const char *name)
{
    return xasprintf(KEY_NODE_STATUS "%s/%s", grid, name);
}

char *key_node_number(const char *grid, int number)
{
    return xasprintf(KEY_IPAM "%s/node_numbers/%d", grid, number);
}

int node_name_valid(const char *name)
{
    size_t n = strlen(name);

    return n > 0 && n <= 64 && name[0] != '.' && name[0] != '-' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

json_t *node_view(const json_t *node, int online)
{
    json_t *v = json_deep_copy(node);
    const char *avail = json_string_value(json_object_get(node, "availability"));
    const char *status;

    if (online)
        status = (avail && !strcmp(avail, "drain")) ? "drain" : "online";
    else if (json_is_string(json_object_get(node, "connected_at")))
        status = "offline";
    else
        status = "created";
    json_object_set_new(v, "status", json_string(status));
    json_object_set_new(v, "connected", json_boolean(online));
    json_object_set_new(v, "has_token", json_false());
    return v;
}

static void audit_node(struct req *r, const char *grid, const char *name)
{
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", name);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s/%s", grid, name);
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", grid);
}

static enum status node_online(struct api *a, const char *grid, const char *name, int *online,
                               struct err *e)
{
    char *key = key_node_status(grid, name);
    struct etcd_kv kv = {0};
    enum status st = etcd_get(a->etcd, key, &kv, NULL, e);

    free(key);
    etcd_kv_release(&kv);
    *online = st == ST_OK;
    return st == ST_NOTFOUND ? ST_OK : st;
}

/* The node object, or NULL after replying (404 "Node <name> not found" or the store error). */
static json_t *node_load(struct req *r, const char *grid, const char *name, int64_t *rev)
{
    char *key = key_node(grid, name);
    json_t *n = NULL;
    struct err e = ERR_INIT;
    enum status st = store_get(r->api->etcd, key, &n, rev, &e);

    free(key);
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Node %s not found", name);
    else if (st != ST_OK)
        reply_status(r, st, &e);
    return st == ST_OK ? n : NULL;
}

static void reply_node(struct req *r, const char *grid, const json_t *node)
{
    struct err e = ERR_INIT;
    int online = 0;
    enum status st =
        node_online(r->api, grid, json_string_value(json_object_get(node, "name")), &online, &e);

    if (st != ST_OK) {
        reply_status(r, st, &e);
    } else {
        json_t *v = node_view(node, online),
               *stats = stats_node_latest(r->api, grid,
                                          json_string_value(json_object_get(node, "name")));
        json_object_set_new(v, "stats", stats ? stats : json_null()); /* latest sample */
        reply_json(r, 200, v);
    }
}

static void h_node_list(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *out;
    char *prefix, *sprefix;
    struct store_set nodes = {0}, live = {0};
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    prefix = key_grid_child_prefix(KEY_NODES, params[0]);
    sprefix = key_grid_child_prefix(KEY_NODE_STATUS, params[0]);
    st = store_list_set(r->api->etcd, prefix, 1, &nodes, &e);
    if (st == ST_OK)
        st = store_list_set(r->api->etcd, sprefix, 1, &live, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
    } else {
        out = json_array();
        for (size_t i = 0; i < nodes.n; i++) {
            const char *name =
                json_string_value(json_object_get(json_array_get(nodes.objs, i), "name"));
            char *skey = name ? key_node_status(params[0], name) : NULL;
            int online = skey && store_set_find(&live, skey) >= 0;
            json_array_append_new(out, node_view(json_array_get(nodes.objs, i), online));
            free(skey);
        }
        reply_json(r, 200, json_pack("{s:o}", "nodes", out));
    }
    store_set_release(&nodes);
    store_set_release(&live);
    free(sprefix);
    free(prefix);
    json_decref(g);
}

static void h_node_show(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *n;

    if (!g)
        return;
    n = node_load(r, params[0], params[1], NULL);
    if (n)
        reply_node(r, params[0], n);
    json_decref(n);
    json_decref(g);
}

static int valid_node_label(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 255 && s[0] != '=' && !strpbrk(s, " \t\r\n,");
}

static void h_node_update(struct req *r, char **params)
{
    const char *grid = params[0], *name = params[1];
    json_t *g, *labels = json_object_get(r->json, "labels");
    json_t *avail = json_object_get(r->json, "availability"), *x, *n = NULL;
    char *key = key_node(grid, name), now[40];
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;
    size_t i;

    audit_node(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    if (labels) {
        if (!json_is_array(labels) || json_array_size(labels) > 100) {
            reply_invalid(r, "labels", "Labels must be an array of strings");
            goto out;
        }
        json_array_foreach(labels, i,
                           x) if (!json_is_string(x) || !valid_node_label(json_string_value(x)))
        {
            reply_invalid(r, "labels", "Invalid label '%s'",
                          json_is_string(x) ? json_string_value(x) : "(not a string)");
            goto out;
        }
    }
    if (avail && (!json_is_string(avail) || (strcmp(json_string_value(avail), "active") != 0 &&
                                             strcmp(json_string_value(avail), "drain") != 0))) {
        reply_invalid(r, "availability", "Availability must be active or drain");
        goto out;
    }
    for (int attempt = 0; attempt < NODE_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        int64_t rev = 0;
        json_decref(n);
        n = node_load(r, grid, name, &rev);
        if (!n)
            goto out;
        if (labels)
            json_object_set(n, "labels", labels);
        if (avail)
            json_object_set(n, "availability", avail);
        time_iso8601_now(now, sizeof(now));
        json_object_set_new(n, "updated_at", json_string(now));
        st = store_put_if(r->api->etcd, key, n, rev, &e);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_node(r, grid, n);
out:
    json_decref(n);
    json_decref(g);
    free(key);
}

static void h_node_delete(struct req *r, char **params)
{
    const char *grid = params[0], *name = params[1], *force = req_query(r, "force");
    json_t *g, *n = NULL;
    char *key = key_node(grid, name), *skey = key_node_status(grid, name), *numkey = NULL;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;
    int online = 0;

    audit_node(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    for (int attempt = 0; attempt < NODE_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        int64_t rev = 0;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        json_t *num;

        json_decref(n);
        n = node_load(r, grid, name, &rev);
        if (!n)
            goto out;
        st = node_online(r->api, grid, name, &online, &e);
        if (st != ST_OK)
            break;
        if (online && !(force && (!strcmp(force, "true") || !strcmp(force, "1")))) {
            reply_invalid(r, "node",
                          "Node %s is online: stop its agent first, or remove it with force", name);
            goto out;
        }
        num = json_object_get(n, "node_number");
        free(numkey);
        numkey = json_is_integer(num) ? key_node_number(grid, (int)json_integer_value(num)) : NULL;
        t = etcd_txn_new();
        etcd_txn_cmp(t, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
        etcd_txn_delete(t, ETCD_THEN, key, NULL);
        etcd_txn_delete(t, ETCD_THEN, skey, NULL); /* a forced removal: offline at once */
        if (numkey)
            etcd_txn_delete(t, ETCD_THEN, numkey, NULL);
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, json_object());
out:
    json_decref(n);
    json_decref(g);
    free(numkey);
    free(skey);
    free(key);
}

const struct route node_routes[] = {
    {"GET", "/v1/grids/:grid/nodes", AUTH_TOKEN, h_node_list, NULL, NULL},
    {"GET", "/v1/nodes/:grid/:node", AUTH_TOKEN, h_node_show, NULL, NULL},
    {"PUT", "/v1/nodes/:grid/:node", AUTH_TOKEN, h_node_update, "update", "Node"},
    {"DELETE", "/v1/nodes/:grid/:node", AUTH_TOKEN, h_node_delete, "delete", "Node"},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
