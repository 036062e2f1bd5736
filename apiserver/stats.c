/* apiserver/stats.c -- the latest container and node statistics: written to etcd from the
 * agents' /containers/stats and /nodes/stats notifications (on the agents' lease, so they
 * vanish with the apiserver that wrote them), served by the stats routes and node show.
 *
 * Keys: /kontena/stats/<grid>/containers/<container name> = the agent's sample + node,
 * updated_at; /kontena/stats/<grid>/nodes/<node> = the node sample + updated_at.
 * docs/internals/stats.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/scope.h"
#include "apiserver/store.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define TXN_OPS 100
#define MAX_CONTAINERS 5000
#define SAMPLE_MAX 16384 /* bytes of one stored sample */

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 200 && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void set_now(json_t *o)
{
    char now[40];
    time_iso8601_now(now, sizeof(now));
    json_object_set_new(o, "updated_at", json_string(now));
}

/* Numbers only (integers or reals), at most two levels deep, of the keys given: an agent
 * cannot make us store anything else. */
static json_t *numbers(const json_t *src, const char *const *keys)
{
    json_t *o = json_object();
    for (size_t i = 0; keys[i]; i++) {
        const json_t *v = json_object_get(src, keys[i]);
        if (json_is_number(v))
            json_object_set(o, keys[i], (json_t *)v);
    }
    return o;
}

static json_t *container_sample(const json_t *c, const char *node)
{
    static const char *const cpu_k[] = {"usage_pct", "num_cores", "usage", "limit", NULL};
    static const char *const mem_k[] = {"usage", "limit", "working_set", NULL};
    static const char *const net_k[] = {"rx_bytes", "tx_bytes", "rx_bytes_per_second",
                                        "tx_bytes_per_second", NULL};
    static const char *const blk_k[] = {"read_bytes", "write_bytes", NULL};
    const json_t *inst = json_object_get(c, "instance");
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(jstr(c, "id") ? jstr(c, "id") : ""));
    json_object_set_new(o, "name", json_string(jstr(c, "name")));
    json_object_set_new(o, "node", json_string(node));
    json_object_set_new(o, "stack", jstr(c, "service") && name_ok(jstr(c, "stack"))
                                        ? json_string(jstr(c, "stack"))
                                        : json_null());
    json_object_set_new(o, "service", name_ok(jstr(c, "service")) ? json_string(jstr(c, "service"))
                                                                  : json_null());
    json_object_set_new(o, "instance", json_is_integer(inst) ? json_incref((json_t *)inst)
                                                             : json_null());
    json_object_set_new(o, "cpu", numbers(json_object_get(c, "cpu"), cpu_k));
    json_object_set_new(o, "memory", numbers(json_object_get(c, "memory"), mem_k));
    json_object_set_new(o, "network", numbers(json_object_get(c, "network"), net_k));
    json_object_set_new(o, "blkio", numbers(json_object_get(c, "blkio"), blk_k));
    json_object_set_new(o, "time", json_string(jstr(c, "time") && strlen(jstr(c, "time")) < 64
                                                   ? jstr(c, "time")
                                                   : ""));
    set_now(o);
    return o;
}

/* Commit *t and start over once it holds TXN_OPS operations, or (last) any: a failure is
 * logged as "cannot <what> container stats of node ...". */
static void txn_flush(struct api *a, struct etcd_txn **t, size_t *ops, int last,
                      const char *what, const char *node)
{
    struct etcd_txn_result r = {0};
    struct err e = ERR_INIT;

    if (!*t || !*ops || (*ops < TXN_OPS && !last))
        return;
    if (etcd_txn_commit(a->etcd, *t, &r, &e) != ST_OK)
        log_warn("msg=\"cannot %s container stats of node '%s': %s\"", what, node, e.msg);
    etcd_txn_result_release(&r);
    etcd_txn_free(*t);
    *t = NULL;
    *ops = 0;
}

void stats_containers_update(struct api *a, const char *grid, const char *node, const json_t *p,
                             int64_t lease, json_t **names)
{
    const json_t *list = json_object_get(p, "containers"), *c;
    char *prefix = xasprintf(KEY_STATS "%s/containers/", grid);
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    struct etcd_txn *t = NULL;
    struct err e = ERR_INIT;
    json_t *seen = json_object();
    size_t i, ops = 0;
    char **vals = NULL, **keys = NULL;
    size_t nv = 0;

    if (!json_is_array(list)) {
        log_warn("msg=\"node '%s': /containers/stats without a containers list\"", node);
        goto out;
    }
    vals = xcalloc(json_array_size(list) + 1, sizeof(*vals));
    keys = xcalloc(json_array_size(list) + 1, sizeof(*keys));
    json_array_foreach(list, i, c)
    {
        const char *name = jstr(c, "name");
        json_t *smp;
        if (i >= MAX_CONTAINERS || !name_ok(name))
            continue;
        smp = container_sample(c, node);
        keys[nv] = xasprintf("%s%s", prefix, name);
        vals[nv] = store_dump(smp);
        json_decref(smp);
        if (strlen(vals[nv]) > SAMPLE_MAX) {
            free(keys[nv]);
            free(vals[nv]);
            continue;
        }
        json_object_set_new(seen, name, json_true());
        if (!t)
            t = etcd_txn_new();
        etcd_txn_put(t, ETCD_THEN, keys[nv], vals[nv], strlen(vals[nv]), lease);
        nv++;
        ops++;
        txn_flush(a, &t, &ops, 0, "write the", node);
    }
    __atomic_add_fetch(&a->ctr.stats_container_samples, nv, __ATOMIC_RELAXED);
    /* This node's samples of containers it no longer runs: those it reported last time
     * (the session remembers them), or on a session's first report those etcd has for it
     * (left by an earlier session). */
    if (names && *names) {
        const char *name;
        json_t *v;
        json_object_foreach(*names, name, v)
        {
            char *key;
            if (json_object_get(seen, name))
                continue;
            if (!t)
                t = etcd_txn_new();
            key = xasprintf("%s%s", prefix, name);
            etcd_txn_delete(t, ETCD_THEN, key, NULL);
            free(key);
            ops++;
            txn_flush(a, &t, &ops, 0, "delete", node);
        }
    } else if (etcd_range(a->etcd, prefix, &o, &res, &e) == ST_OK) {
        for (size_t k = 0; k < res.n; k++) {
            const char *name = res.kvs[k].key + strlen(prefix);
            json_t *v;
            if (json_object_get(seen, name))
                continue;
            v = json_loadb(res.kvs[k].value, res.kvs[k].value_len, 0, NULL);
            if (jstr(v, "node") && !strcmp(jstr(v, "node"), node)) {
                if (!t)
                    t = etcd_txn_new();
                etcd_txn_delete(t, ETCD_THEN, res.kvs[k].key, NULL);
                ops++;
            }
            json_decref(v);
            txn_flush(a, &t, &ops, 0, "delete", node);
        }
    } else {
        log_warn("msg=\"cannot list the container stats of grid '%s': %s\"", grid, e.msg);
    }
    if (names) {
        json_decref(*names);
        *names = json_incref(seen);
    }
    txn_flush(a, &t, &ops, 1, "write the", node);
out:
    etcd_txn_free(t);
    etcd_range_result_release(&res);
    for (size_t k = 0; k < nv; k++) {
        free(keys[k]);
        free(vals[k]);
    }
    free(keys);
    free(vals);
    json_decref(seen);
    free(prefix);
}

void stats_node_update(struct api *a, const char *grid, const char *node, const json_t *p,
                       int64_t lease)
{
    static const char *const cpu_k[] = {"num_cores", "user", "system", "nice", "idle",
                                        "used_pct", NULL};
    static const char *const mem_k[] = {"total", "free", "used", "active", "inactive",
                                        "cached", "buffers", NULL};
    static const char *const load_k[] = {"1m", "5m", "15m", NULL};
    static const char *const fs_k[] = {"total", "used", "free", "available", NULL};
    const json_t *fs = json_object_get(p, "filesystem"), *x;
    json_t *o = json_object(), *fsl = json_array();
    char *key = xasprintf(KEY_STATS "%s/nodes/%s", grid, node), *val;
    struct err e = ERR_INIT;
    size_t i;

    json_object_set_new(o, "node", json_string(node));
    json_object_set_new(o, "cpu", numbers(json_object_get(p, "cpu"), cpu_k));
    json_object_set_new(o, "memory", numbers(json_object_get(p, "memory"), mem_k));
    json_object_set_new(o, "load", numbers(json_object_get(p, "load"), load_k));
    json_array_foreach(fs, i, x)
    {
        json_t *f;
        if (i >= 32)
            break;
        f = numbers(x, fs_k);
        json_object_set_new(f, "name", json_string(jstr(x, "name") && strlen(jstr(x, "name")) < 256
                                                       ? jstr(x, "name")
                                                       : ""));
        json_array_append_new(fsl, f);
    }
    json_object_set_new(o, "filesystem", fsl);
    if (json_is_object(json_object_get(p, "network"))) {
        json_t *net = json_deep_copy(json_object_get(p, "network"));
        char *s = json_dumps(net, JSON_COMPACT);
        if (s && strlen(s) < 4096)
            json_object_set_new(o, "network", net);
        else
            json_decref(net);
        free(s);
    }
    json_object_set_new(o, "time", json_string(jstr(p, "time") && strlen(jstr(p, "time")) < 64
                                                   ? jstr(p, "time")
                                                   : ""));
    set_now(o);
    val = store_dump(o);
    if (etcd_put(a->etcd, key, val, strlen(val), lease, NULL, NULL, &e) != ST_OK)
        log_warn("msg=\"cannot write the stats of node '%s': %s\"", node, e.msg);
    else
        __atomic_add_fetch(&a->ctr.stats_node_samples, 1, __ATOMIC_RELAXED);
    free(val);
    free(key);
    json_decref(o);
}

void stats_node_gone(struct api *a, const char *grid, const char *node, json_t **names)
{
    json_t *empty = json_pack("{s:[]}", "containers");
    char *key = xasprintf(KEY_STATS "%s/nodes/%s", grid, node);
    struct err e = ERR_INIT;

    stats_containers_update(a, grid, node, empty, 0, names);
    if (etcd_delete(a->etcd, key, NULL, NULL, &e) != ST_OK)
        log_warn("msg=\"cannot delete the stats of node '%s': %s\"", node, e.msg);
    free(key);
    json_decref(empty);
}

json_t *stats_node_latest(struct api *a, const char *grid, const char *node)
{
    char *key = xasprintf(KEY_STATS "%s/nodes/%s", grid, node);
    json_t *o = NULL;
    struct err e = ERR_INIT;

    if (store_get(a->etcd, key, &o, NULL, &e) != ST_OK)
        o = NULL;
    free(key);
    return o;
}

/* --- routes -------------------------------------------------------------------------------- */

static double sort_value(const json_t *s, const char *by)
{
    const json_t *v;
    if (!strcmp(by, "memory"))
        v = json_object_get(json_object_get(s, "memory"), "usage");
    else if (!strcmp(by, "rx_bytes"))
        v = json_object_get(json_object_get(s, "network"), "rx_bytes");
    else if (!strcmp(by, "tx_bytes"))
        v = json_object_get(json_object_get(s, "network"), "tx_bytes");
    else
        v = json_object_get(json_object_get(s, "cpu"), "usage_pct");
    return json_number_value(v);
}

static int cmp_stats(const void *a, const void *b, void *by)
{
    double x = sort_value(*(json_t *const *)a, by), y = sort_value(*(json_t *const *)b, by);
    int c = x < y ? 1 : x > y ? -1 : 0;
    return c ? c : strcmp(jstr(*(json_t *const *)a, "name") ? jstr(*(json_t *const *)a, "name") : "",
                          jstr(*(json_t *const *)b, "name") ? jstr(*(json_t *const *)b, "name") : "");
}

/* GET …/stats: the grid's samples, of one stack or service when given. */
static void reply_stats(struct req *r, const char *grid, const char *stack, const char *svc)
{
    const char *sort = req_query(r, "sort"), *lim = req_query(r, "limit");
    char *prefix = xasprintf(KEY_STATS "%s/containers/", grid);
    json_t *all = NULL, *out = json_array(), **v = NULL, *x;
    struct err e = ERR_INIT;
    size_t i, n = 0;
    long limit = 0;
    enum status st;

    if (sort && strcmp(sort, "cpu") && strcmp(sort, "memory") && strcmp(sort, "rx_bytes") &&
        strcmp(sort, "tx_bytes")) {
        reply_invalid(r, "sort", "must be cpu, memory, rx_bytes or tx_bytes");
        goto out;
    }
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || limit < 0 || limit > 100000) {
            reply_invalid(r, "limit", "must be a number 0..100000");
            goto out;
        }
    }
    st = store_list(r->api->etcd, prefix, 1, &all, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
        goto out;
    }
    v = xcalloc(json_array_size(all) + 1, sizeof(*v));
    json_array_foreach(all, i, x)
    {
        if (stack && (!jstr(x, "stack") || strcmp(jstr(x, "stack"), stack)))
            continue;
        if (svc && (!jstr(x, "service") || strcmp(jstr(x, "service"), svc)))
            continue;
        v[n++] = x;
    }
    qsort_r(v, n, sizeof(*v), cmp_stats, (void *)(sort ? sort : "cpu"));
    for (i = 0; i < n && (limit == 0 || (long)i < limit); i++) {
        x = v[i];
        json_array_append_new(
            out, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}",
                           "container_id", json_object_get(x, "name"), "id",
                           json_object_get(x, "id"), "instance",
                           json_object_get(x, "instance"), "node", json_object_get(x, "node"),
                           "stack", json_object_get(x, "stack"), "service",
                           json_object_get(x, "service"), "cpu", json_object_get(x, "cpu"),
                           "memory", json_object_get(x, "memory"), "network",
                           json_object_get(x, "network"), "blkio", json_object_get(x, "blkio"),
                           "updated_at", json_object_get(x, "updated_at")));
    }
    reply_json(r, 200, json_pack("{s:O}", "stats", out));
out:
    free(v);
    json_decref(all);
    json_decref(out);
    free(prefix);
}

static void h_grid_stats(struct req *r, char **params)
{
    struct scope sc;

    if (scope_parse(r, SCOPE_GRID, params, &sc))
        reply_stats(r, sc.grid, NULL, NULL);
}

static void h_stack_stats(struct req *r, char **params)
{
    struct scope sc;

    if (scope_parse(r, SCOPE_STACK, params, &sc))
        reply_stats(r, sc.grid, sc.stack, NULL);
}

static void h_service_stats(struct req *r, char **params)
{
    struct scope sc;

    if (scope_parse(r, SCOPE_SERVICE, params, &sc))
        reply_stats(r, sc.grid, sc.stack, sc.service);
}

const struct route stats_routes[] = {
    {"GET", "/v1/grids/:grid/stats", AUTH_TOKEN, h_grid_stats, NULL, NULL},
    {"GET", "/v1/stacks/:grid/:stack/stats", AUTH_TOKEN, h_stack_stats, NULL, NULL},
    {"GET", "/v1/services/:grid/:stack/:svc/stats", AUTH_TOKEN, h_service_stats, NULL, NULL},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
