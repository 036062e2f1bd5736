/* apiserver/services.c -- services: /v1/grids/:grid/services and /v1/services/:grid/:stack/:svc.
 *
 * A service is one key, /kontena/services/<grid>/<stack>/<name> (stack "null" for stack-less
 * services), holding the spec of svcspec.h plus revision, stack_revision, state,
 * restart_generation, deploy_id (its latest deploy record) and timestamps. Every change is a
 * transaction comparing the key's mod_revision together with the keys the decision read
 * (link targets), retried when lost; a deploy writes the service and its deploy record in
 * the same transaction.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/lbcheck.h"
#include "apiserver/store.h"
#include "apiserver/svcspec.h"
#include "apiserver/validate.h"
#include "apiserver/workload.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

/* --- shared with stacks.c ------------------------------------------------------------------ */

void txn_add_cmps(struct etcd_txn *t, const json_t *cmps)
{
    size_t i;
    json_t *c;

    json_array_foreach(cmps, i, c)
        etcd_txn_cmp(t, jstr(c, "key"), ETCD_CMP_MOD, ETCD_CMP_EQUAL,
                     json_integer_value(json_object_get(c, "rev")));
}

void txn_put_json(struct etcd_txn *t, const char *key, const json_t *obj)
{
    char *s = store_dump(obj);
    etcd_txn_put(t, ETCD_THEN, key, s, strlen(s), 0);
    free(s);
}

void service_touch(json_t *svc, const char *now)
{
    json_object_set_new(svc, "updated_at", json_string(now));
}

static int cmps_has(const json_t *cmps, const char *key)
{
    size_t i;
    json_t *c;
    json_array_foreach(cmps, i, c) if (strcmp(jstr(c, "key"), key) == 0) return 1;
    return 0;
}

enum status links_resolve(struct api *a, const char *grid, const char *stack, json_t *spec,
                          const json_t *stack_names, json_t *cmps, char **msg, struct err *e)
{
    const char *self = jstr(spec, "name");
    json_t *links = json_object_get(spec, "links"), *l;
    struct buf missing = BUF_INIT;
    enum status st = ST_OK;
    size_t i;

    *msg = NULL;
    json_array_foreach(links, i, l)
    {
        const char *name = jstr(l, "name"), *alias = jstr(l, "alias");
        char ts[80], tv[80];
        char *id;

        if (!name || svcspec_link_target(name, grid, stack, ts, sizeof(ts), tv, sizeof(tv))) {
            *msg = xasprintf("Link %s isn't in the right format", name ? name : "");
            break;
        }
        if (strcmp(ts, stack) == 0 && self && strcmp(tv, self) == 0) {
            *msg = xasprintf("service %s has recursive links: %s -> %s", self, self, self);
            break;
        }
        if (strcmp(ts, stack) == 0 && stack_names) {
            if (!json_array_has_string(stack_names, tv))
                if (buf_printf(&missing, "%s%s", missing.len ? ", " : "", tv) != ST_OK)
                    BUG_ON(1);
        } else {
            int64_t rev = 0;
            json_t *obj = NULL;
            char *key;
            if (strcmp(ts, "null") != 0 && strcmp(ts, stack) != 0) {
                key = key_stack(grid, ts);
                st = store_get(a->etcd, key, &obj, NULL, e);
                free(key);
                json_decref(obj);
                obj = NULL;
                if (st == ST_NOTFOUND) {
                    *msg = xasprintf("Link %s/%s points to non-existing stack", ts, tv);
                    st = ST_OK;
                    break;
                }
                if (st != ST_OK)
                    break;
            }
            key = key_service(grid, ts, tv);
            st = store_get(a->etcd, key, &obj, &rev, e);
            json_decref(obj);
            if (st == ST_NOTFOUND) {
                free(key);
                *msg = xasprintf("Service %s/%s does not exist", ts, tv);
                st = ST_OK;
                break;
            }
            if (st != ST_OK) {
                free(key);
                break;
            }
            if (!cmps_has(cmps, key))
                json_array_append_new(cmps, json_pack("{s:s,s:I}", "key", key, "rev",
                                                      (json_int_t)rev));
            free(key);
        }
        id = xasprintf("%s/%s/%s", grid, ts, tv);
        json_array_set_new(links, i,
                           json_pack("{s:s,s:s,s:s}", "id", id, "alias", alias ? alias : tv,
                                     "name", tv));
        free(id);
    }
    if (!*msg && st == ST_OK && missing.len)
        *msg = xasprintf("service %s has missing links: %s", self ? self : "", missing.ptr);
    buf_release(&missing);
    return st;
}

char *links_from_others(const json_t *grid_services, const char *id, const char *except_stack)
{
    struct buf out = BUF_INIT;
    size_t i, k;
    json_t *s, *l;

    json_array_foreach(grid_services, i, s)
    {
        const char *stack = jstr(s, "stack"), *name = jstr(s, "name");
        if (!stack || !name || (except_stack && strcmp(stack, except_stack) == 0))
            continue;
        if (jstr(s, "id") && strcmp(jstr(s, "id"), id) == 0)
            continue;
        json_array_foreach(json_object_get(s, "links"), k, l) if (jstr(l, "id") &&
                                                                  strcmp(jstr(l, "id"), id) == 0)
        {
            enum status st;
            if (strcmp(stack, "null") == 0)
                st = buf_printf(&out, "%s%s", out.len ? ", " : "", name);
            else
                st = buf_printf(&out, "%s%s/%s", out.len ? ", " : "", stack, name);
            BUG_ON(st != ST_OK);
            break;
        }
    }
    return out.len ? buf_take(&out) : NULL;
}

/* "<node>/<container>" of a key under prefix ("/kontena/instances/<grid>/"), or NULL. */
static const char *node_container(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *rest = strncmp(key, prefix, n) == 0 ? key + n : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;

    return slash && slash != rest && slash[1] && !strchr(slash + 1, '/') ? rest : NULL;
}

static void count_up(json_t *c, const char *field)
{
    json_object_set_new(c, field, json_integer(json_integer_value(json_object_get(c, field)) + 1));
}

enum status instance_counts(struct api *a, const char *grid, json_t **out, struct err *e)
{
    struct store_set inst = {0}, obs = {0};
    char *iprefix = key_grid_child_prefix(KEY_INSTANCES, grid);
    char *oprefix = key_grid_child_prefix("/kontena/observed/", grid);
    json_t *observed = NULL; /* "<node>/<container>" -> observed value (borrowed) */
    enum status st;

    *out = NULL;
    st = store_list_set(a->etcd, iprefix, 0, &inst, e);
    if (st == ST_OK)
        st = store_list_set(a->etcd, oprefix, 0, &obs, e);
    if (st != ST_OK)
        goto out;
    observed = json_object();
    for (size_t i = 0; i < obs.n; i++) {
        const char *id = node_container(obs.keys[i], oprefix);
        if (id)
            json_object_set(observed, id, json_array_get(obs.objs, i));
    }
    *out = json_object();
    for (size_t i = 0; i < inst.n; i++) {
        /* <prefix><node>/<container>; the value names its service. */
        const json_t *iv = json_array_get(inst.objs, i), *ov, *health;
        const char *id = node_container(inst.keys[i], iprefix), *stack = jstr(iv, "stack");
        const char *svc = jstr(iv, "service"), *state, *hs;
        char sid[200];
        json_t *c;

        /* A truncated id is skipped (the precision keeps gcc -O2 format-truncation quiet). */
        if (!id || !stack || !svc ||
            (size_t)snprintf(sid, sizeof(sid), "%s/%.*s", stack, (int)(sizeof(sid) - 1), svc) >=
                sizeof(sid))
            continue;
        c = json_object_get(*out, sid);
        if (!c) {
            c = json_pack("{s:i,s:i,s:i,s:i}", "total", 0, "running", 0, "healthy", 0,
                          "unhealthy", 0);
            json_object_set_new(*out, sid, c);
        }
        count_up(c, "total");
        ov = json_object_get(observed, id);
        state = jstr(ov, "state");
        if (state && strcmp(state, "running") == 0)
            count_up(c, "running");
        health = json_object_get(ov, "health");
        hs = jstr(health, "status");
        if (hs && strcmp(hs, "healthy") == 0)
            count_up(c, "healthy");
        else if (hs && strcmp(hs, "unhealthy") == 0)
            count_up(c, "unhealthy");
    }
out:
    json_decref(observed);
    store_set_release(&inst);
    store_set_release(&obs);
    free(iprefix);
    free(oprefix);
    return st;
}

json_t *service_views(const json_t *svcs, const json_t *grid, const json_t *counts)
{
    json_t *out = json_array(), *s;
    size_t i;

    json_array_foreach(svcs, i, s)
    {
        char id[200];
        snprintf(id, sizeof(id), "%s/%s", jstr(s, "stack") ? jstr(s, "stack") : "",
                 jstr(s, "name") ? jstr(s, "name") : "");
        json_array_append_new(out, svcspec_view(s, json_object_get(grid, "default_affinity"),
                                                json_object_get(counts, id)));
    }
    return out;
}

/* --- helpers ------------------------------------------------------------------------------ */

static void audit_service(struct req *r, const char *grid, const char *stack, const char *name)
{
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", name ? name : "");
    snprintf(r->audit_id, sizeof(r->audit_id), "%s/%s/%s", grid, stack, name ? name : "");
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", grid);
}

/* Reply with the view of one service (reads the grid's instance counts). */
static void reply_service(struct req *r, unsigned status, const json_t *svc, const json_t *grid)
{
    json_t *counts = NULL, *arr, *v;
    struct err e = ERR_INIT;
    enum status st = instance_counts(r->api, jstr(svc, "grid"), &counts, &e);

    if (st != ST_OK) {
        reply_status(r, st, &e);
        return;
    }
    arr = json_pack("[O]", svc);
    v = service_views(arr, grid, counts);
    reply_json(r, status, json_incref(json_array_get(v, 0)));
    json_decref(v);
    json_decref(arr);
    json_decref(counts);
}

/* One mutation of one service: fn edits svc (a private copy) and may add compares and a
 * deploy record to write in the same transaction. fn returns ST_OK to write, anything else
 * to stop: after replying itself (r->status set) or with e filled. */
typedef enum status (*svc_edit_fn)(struct req *r, json_t *svc, void *arg, json_t *cmps,
                                   json_t **deploy, struct err *e);

static void service_mutate(struct req *r, char **params, svc_edit_fn fn, void *arg,
                           int reply_deploy)
{
    const char *grid = params[0], *stack = params[1], *name = params[2];
    json_t *g;
    char *key = NULL;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_service(r, grid, stack, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        return;
    key = key_service(grid, stack, name);
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        json_t *svc = NULL, *cmps = json_array(), *dep = NULL;
        int64_t rev = 0;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};

        st = store_get(r->api->etcd, key, &svc, &rev, &e);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "Service not found");
            st = ST_OK;
            json_decref(cmps);
            break;
        }
        if (st == ST_OK)
            st = fn(r, svc, arg, cmps, &dep, &e);
        if (st != ST_OK) {
            if (r->status)
                st = ST_OK;
            json_decref(svc);
            json_decref(cmps);
            json_decref(dep);
            break;
        }
        t = etcd_txn_new();
        etcd_txn_cmp(t, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
        txn_add_cmps(t, cmps);
        txn_put_json(t, key, svc);
        if (dep) {
            char *dkey = key_deploy(grid, jstr(dep, "id"));
            txn_put_json(t, dkey, dep);
            free(dkey);
        }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK && reply_deploy == 2)
            reply_json(r, 200, json_object());
        else if (st == ST_OK && reply_deploy && dep)
            reply_json(r, 200, deploy_view(dep));
        else if (st == ST_OK)
            reply_service(r, 200, svc, g);
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        json_decref(svc);
        json_decref(cmps);
        json_decref(dep);
    }
    if (st == ST_CONFLICT && !e.msg[0])
        err_set(&e, ST_CONFLICT, "service %s/%s/%s kept changing under concurrent updates", grid,
                stack, name);
    if (st != ST_OK)
        reply_status(r, st, &e);
    json_decref(g);
    free(key);
}

/* --- handlers ------------------------------------------------------------------------------ */

static int by_updated_desc(const void *a, const void *b)
{
    const char *x = jstr(*(json_t *const *)a, "updated_at"), *y = jstr(*(json_t *const *)b, "updated_at");
    return strcmp(y ? y : "", x ? x : "");
}

static void h_service_list(struct req *r, char **params)
{
    const char *grid = params[0], *stack = req_query(r, "stack");
    json_t *g = grid_load(r, grid, NULL), *all = NULL, *counts = NULL, *sorted;
    char *prefix;
    struct err e = ERR_INIT;
    enum status st;
    json_t **items;
    size_t n;

    if (!g)
        return;
    if (stack && !valid_name(stack, 1, 64)) {
        json_decref(g);
        reply_json(r, 200, json_pack("{s:[]}", "services"));
        return;
    }
    prefix = stack ? xasprintf(KEY_SERVICES "%s/%s/", grid, stack)
                   : key_grid_child_prefix(KEY_SERVICES, grid);
    st = store_list(r->api->etcd, prefix, 0, &all, &e);
    free(prefix);
    if (st == ST_OK)
        st = instance_counts(r->api, grid, &counts, &e);
    if (st != ST_OK) {
        json_decref(g);
        json_decref(all);
        reply_status(r, st, &e);
        return;
    }
    n = json_array_size(all);
    items = xcalloc(n + 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(all, i);
    qsort(items, n, sizeof(*items), by_updated_desc);
    sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    free(items);
    reply_json(r, 200, json_pack("{s:o}", "services", service_views(sorted, g, counts)));
    json_decref(sorted);
    json_decref(all);
    json_decref(counts);
    json_decref(g);
}

static void h_service_show(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *svc = NULL;
    char *key;
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    key = key_service(params[0], params[1], params[2]);
    st = store_get(r->api->etcd, key, &svc, NULL, &e);
    free(key);
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Service not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_service(r, 200, svc, g);
    json_decref(svc);
    json_decref(g);
}

/* KONTENA_LB_* settings of spec (about to be written in stack of grid) against the grid:
 * a bad one goes into errs as "env" (lbcheck.h). */
static enum status lb_check_one(struct api *a, const char *grid, const char *stack,
                                const json_t *spec, json_t *errs, struct err *e)
{
    json_t *one = json_pack("[O]", spec);
    char *msg = NULL;
    size_t which;
    enum status st = lbcheck_specs(a, grid, stack, one, 0, &msg, &which, e);

    if (st == ST_OK && msg)
        json_object_set_new(errs, "env", json_string(msg));
    free(msg);
    json_decref(one);
    return st;
}

static void h_service_create(struct req *r, char **params)
{
    const char *grid = params[0], *name = jstr(r->json, "name");
    json_t *stackv = json_object_get(r->json, "stack"), *g, *stack_obj = NULL;
    const char *stack = "null";
    char *key = NULL, *skey = NULL;
    int64_t srev = 0;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    if (json_is_string(stackv))
        stack = json_string_value(stackv);
    audit_service(r, grid, stack, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        return;
    if ((stackv && !json_is_null(stackv) && !json_is_string(stackv)) || !valid_name(stack, 1, 64)) {
        reply_invalid(r, "stack", "Stack isn't in the right format");
        goto out;
    }
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        struct svcspec_ctx ctx = {grid, stack, NULL};
        json_t *errs = json_object(), *spec, *cmps = json_array();
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        char now[40], *msg = NULL, *id;

        json_decref(stack_obj);
        stack_obj = NULL;
        if (strcmp(stack, "null") != 0) {
            free(skey);
            skey = key_stack(grid, stack);
            st = store_get(r->api->etcd, skey, &stack_obj, &srev, &e);
            if (st == ST_NOTFOUND) {
                json_decref(errs);
                json_decref(cmps);
                reply_invalid(r, "stack", "Stack %s not found", stack);
                st = ST_OK;
                break;
            }
            if (st != ST_OK) {
                json_decref(errs);
                json_decref(cmps);
                break;
            }
            ctx.stack_volumes = json_object_get(stack_obj, "volumes");
            json_array_append_new(cmps, json_pack("{s:s,s:I}", "key", skey, "rev", (json_int_t)srev));
        }
        spec = svcspec_build(r->json, NULL, &ctx, errs);
        if (!json_object_get(errs, "links")) {
            st = links_resolve(r->api, grid, stack, spec, NULL, cmps, &msg, &e);
            if (st != ST_OK) {
                json_decref(errs);
                json_decref(cmps);
                json_decref(spec);
                break;
            }
            if (msg)
                json_object_set_new(errs, "links", json_string(msg));
            free(msg);
        }
        if (!json_object_size(errs)) {
            st = lb_check_one(r->api, grid, stack, spec, errs, &e);
            if (st != ST_OK) {
                json_decref(errs);
                json_decref(cmps);
                json_decref(spec);
                break;
            }
        }
        if (json_object_size(errs)) {
            reply_invalid_obj(r, errs);
            json_decref(cmps);
            json_decref(spec);
            st = ST_OK;
            break;
        }
        json_decref(errs);
        time_iso8601_now(now, sizeof(now));
        id = xasprintf("%s/%s/%s", grid, stack, name);
        json_object_update_new(
            spec, json_pack("{s:s,s:s,s:s,s:i,s:n,s:s,s:i,s:s,s:s,s:n}", "id", id, "grid", grid,
                            "stack", stack, "revision", 1, "stack_revision", "state",
                            "initialized", "restart_generation", 0, "created_at", now,
                            "updated_at", now, "deployed_at"));
        free(id);
        free(key);
        key = key_service(grid, stack, name);
        t = etcd_txn_new();
        etcd_txn_cmp(t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
        txn_add_cmps(t, cmps);
        txn_put_json(t, key, spec);
        etcd_txn_range(t, ETCD_ELSE, key, NULL);
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded) {
            st = ST_CONFLICT;
            if (res.n >= 1 && res.responses[0].range.n > 0) {
                reply_json(r, 409, json_pack("{s:{s:s+}}", "error", "name", name,
                                             " already exists"));
                st = ST_OK;
            }
        } else if (st == ST_OK) {
            reply_service(r, 201, spec, g);
        }
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        json_decref(cmps);
        json_decref(spec);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    json_decref(stack_obj);
    json_decref(g);
    free(key);
    free(skey);
}

/* Service context for specs: the stack's volumes, when the service is in a stack. */
static enum status spec_ctx_volumes(struct api *a, const json_t *svc, json_t **vols,
                                    struct err *e)
{
    json_t *stack = NULL;
    char *key;
    enum status st;

    *vols = NULL;
    if (!jstr(svc, "stack") || !jstr(svc, "grid") || strcmp(jstr(svc, "stack"), "null") == 0)
        return ST_OK;
    key = key_stack(jstr(svc, "grid"), jstr(svc, "stack"));
    st = store_get(a->etcd, key, &stack, NULL, e);
    free(key);
    if (st == ST_NOTFOUND)
        return ST_OK;
    if (st == ST_OK)
        *vols = json_incref(json_object_get(stack, "volumes"));
    json_decref(stack);
    return st;
}

static enum status edit_update(struct req *r, json_t *svc, void *arg, json_t *cmps,
                               json_t **deploy, struct err *e)
{
    json_t *errs = json_object(), *vols = NULL, *spec;
    struct svcspec_ctx ctx = {jstr(svc, "grid"), jstr(svc, "stack"), NULL};
    int force = json_is_true(json_object_get(r->json, "force"));
    enum status st;
    char now[40];

    (void)arg;
    (void)deploy;
    st = spec_ctx_volumes(r->api, svc, &vols, e);
    if (st != ST_OK) {
        json_decref(errs);
        return st;
    }
    ctx.stack_volumes = vols;
    spec = svcspec_build(r->json, svc, &ctx, errs);
    json_decref(vols);
    if (json_object_get(r->json, "links") && !json_object_get(errs, "links")) {
        char *msg = NULL;
        st = links_resolve(r->api, ctx.grid, ctx.stack, spec, NULL, cmps, &msg, e);
        if (msg)
            json_object_set_new(errs, "links", json_string(msg));
        free(msg);
    }
    if (st == ST_OK && !json_object_size(errs))
        st = lb_check_one(r->api, ctx.grid, ctx.stack, spec, errs, e);
    if (st == ST_OK && json_object_size(errs)) {
        reply_invalid_obj(r, json_incref(errs));
        st = ST_INVALID;
    }
    if (st == ST_OK && (force || svcspec_changed(svc, spec))) {
        svcspec_copy_fields(svc, spec);
        json_object_set_new(svc, "revision",
                            json_integer(json_integer_value(json_object_get(svc, "revision")) + 1));
        time_iso8601_now(now, sizeof(now));
        service_touch(svc, now);
    }
    json_decref(errs);
    json_decref(spec);
    return st;
}

static void h_service_update(struct req *r, char **params)
{
    service_mutate(r, params, edit_update, NULL, 0);
}

struct deploy_arg {
    int force;
    json_int_t instances; /* -1: unchanged */
};

static enum status edit_deploy(struct req *r, json_t *svc, void *arg, json_t *cmps,
                               json_t **deploy, struct err *e)
{
    struct deploy_arg *d = arg;
    char now[40];

    (void)cmps;
    (void)e;
    time_iso8601_now(now, sizeof(now));
    if (d->instances >= 0) {
        /* Validated like an update (FQDN length), without a revision bump. */
        json_t *errs = json_object(), *body = json_pack("{s:I}", "instances", d->instances);
        struct svcspec_ctx ctx = {jstr(svc, "grid"), jstr(svc, "stack"), NULL};
        json_t *spec = svcspec_build(body, svc, &ctx, errs);
        json_decref(body);
        json_decref(spec);
        if (json_object_size(errs)) {
            reply_invalid_obj(r, errs);
            return ST_INVALID;
        }
        json_decref(errs);
        json_object_set_new(svc, "instances", json_integer(d->instances));
        service_touch(svc, now);
    }
    if (d->force)
        json_object_set_new(svc, "revision",
                            json_integer(json_integer_value(json_object_get(svc, "revision")) + 1));
    json_object_set_new(svc, "state", json_string("running"));
    json_object_set_new(svc, "deployed_at", json_string(now));
    *deploy = deploy_record_new(svc, NULL, d->force, now);
    json_object_set(svc, "deploy_id", json_object_get(*deploy, "id"));
    return ST_OK;
}

static void h_service_deploy(struct req *r, char **params)
{
    struct deploy_arg d = {json_is_true(json_object_get(r->json, "force")), -1};
    service_mutate(r, params, edit_deploy, &d, 1);
}

static void h_service_scale(struct req *r, char **params)
{
    json_t *n = json_object_get(r->json, "instances");
    struct deploy_arg d = {0, -1};

    if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > 10000) {
        audit_service(r, params[0], params[1], params[2]);
        json_decref(grid_load(r, params[0], NULL));
        if (!r->status)
            reply_invalid(r, "instances", "Instances must be an integer from 0 to 10000");
        return;
    }
    d.instances = json_integer_value(n);
    service_mutate(r, params, edit_deploy, &d, 1);
}

static enum status edit_state(struct req *r, json_t *svc, void *arg, json_t *cmps,
                              json_t **deploy, struct err *e)
{
    (void)r;
    (void)cmps;
    (void)deploy;
    (void)e;
    if (arg)
        json_object_set_new(svc, "state", json_string(arg));
    else
        json_object_set_new(
            svc, "restart_generation",
            json_integer(json_integer_value(json_object_get(svc, "restart_generation")) + 1));
    return ST_OK;
}

static void h_service_start(struct req *r, char **params)
{
    service_mutate(r, params, edit_state, (void *)(uintptr_t) "running", 2);
}

static void h_service_stop(struct req *r, char **params)
{
    service_mutate(r, params, edit_state, (void *)(uintptr_t) "stopped", 2);
}

static void h_service_restart(struct req *r, char **params)
{
    service_mutate(r, params, edit_state, NULL, 2);
}

/* Remove every "KEY=..." of env; returns how many were removed. */
static size_t env_remove(json_t *env, const char *k)
{
    size_t n = 0, klen = strlen(k);
    for (size_t i = json_array_size(env); i-- > 0;) {
        const char *s = json_string_value(json_array_get(env, i));
        if (s && strncmp(s, k, klen) == 0 && s[klen] == '=') {
            json_array_remove(env, i);
            n++;
        }
    }
    return n;
}

static enum status edit_env_add(struct req *r, json_t *svc, void *arg, json_t *cmps,
                                json_t **deploy, struct err *e)
{
    const char *kv = jstr(r->json, "env"), *eq;
    json_t *env = json_object_get(svc, "env");
    char now[40], *k;

    (void)arg;
    (void)cmps;
    (void)deploy;
    (void)e;
    if (!kv || !(eq = strchr(kv, '=')) || eq == kv || strlen(kv) > SVCSPEC_ENV_MAX) {
        /* The original answers this route's 422 without the "error" wrapper. */
        reply_json(r, 422, json_pack("{s:s}", "env", "Env isn't in the right format"));
        return ST_INVALID;
    }
    if (!json_is_array(env)) {
        env = json_array();
        json_object_set_new(svc, "env", env);
    }
    k = xstrndup(kv, (size_t)(eq - kv));
    env_remove(env, k);
    free(k);
    json_array_append_new(env, json_string(kv));
    {
        json_t *errs = json_object();
        enum status st = lb_check_one(r->api, jstr(svc, "grid"), jstr(svc, "stack"), svc,
                                      errs, e);
        if (st == ST_OK && json_object_size(errs)) {
            reply_json(r, 422, json_incref(errs)); /* this route's shape, as above */
            st = ST_INVALID;
        }
        json_decref(errs);
        if (st != ST_OK)
            return st;
    }
    json_object_set_new(svc, "revision",
                        json_integer(json_integer_value(json_object_get(svc, "revision")) + 1));
    time_iso8601_now(now, sizeof(now));
    service_touch(svc, now);
    return ST_OK;
}

static enum status edit_env_remove(struct req *r, json_t *svc, void *arg, json_t *cmps,
                                   json_t **deploy, struct err *e)
{
    char now[40];

    (void)r;
    (void)cmps;
    (void)deploy;
    (void)e;
    if (env_remove(json_object_get(svc, "env"), arg) > 0) {
        json_object_set_new(
            svc, "revision",
            json_integer(json_integer_value(json_object_get(svc, "revision")) + 1));
        time_iso8601_now(now, sizeof(now));
        service_touch(svc, now);
    }
    return ST_OK;
}

static void h_env_add(struct req *r, char **params)
{
    service_mutate(r, params, edit_env_add, NULL, 2);
}

static void h_env_remove(struct req *r, char **params)
{
    service_mutate(r, params, edit_env_remove, params[3], 2);
}

static void h_service_delete(struct req *r, char **params)
{
    const char *grid = params[0], *stack = params[1], *name = params[2];
    json_t *g;
    char *key, *id = xasprintf("%s/%s/%s", grid, stack, name);
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_service(r, grid, stack, name);
    g = grid_load(r, grid, NULL);
    if (!g) {
        free(id);
        return;
    }
    key = key_service(grid, stack, name);
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        struct store_set svcs = {0}, deps = {0};
        char *prefix = key_grid_child_prefix(KEY_SERVICES, grid), *linked;
        long idx;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        size_t ndel = 0;

        st = store_list_set(r->api->etcd, prefix, 0, &svcs, &e);
        free(prefix);
        if (st != ST_OK)
            break;
        idx = store_set_find(&svcs, key);
        if (idx < 0) {
            store_set_release(&svcs);
            reply_error(r, 404, "Service not found");
            st = ST_OK;
            break;
        }
        linked = links_from_others(svcs.objs, id, NULL);
        if (linked) {
            reply_invalid(r, "service",
                          "Cannot delete service that is linked to another service (%s)", linked);
            free(linked);
            store_set_release(&svcs);
            st = ST_OK;
            break;
        }
        prefix = key_grid_child_prefix(KEY_DEPLOYS, grid);
        st = store_list_set(r->api->etcd, prefix, 0, &deps, &e);
        free(prefix);
        if (st != ST_OK) {
            store_set_release(&svcs);
            break;
        }
        t = etcd_txn_new();
        etcd_txn_cmp(t, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, svcs.revs[idx]);
        etcd_txn_delete(t, ETCD_THEN, key, NULL);
        /* Its deploy records go in the same transaction while they fit under etcd's
         * operation cap; older ones past that are left for the grid removal. */
        for (size_t i = 0; i < deps.n && ndel < 100; i++) {
            const char *sid = jstr(json_array_get(deps.objs, i), "service_id");
            if (sid && strcmp(sid, id) == 0) {
                etcd_txn_delete(t, ETCD_THEN, deps.keys[i], NULL);
                ndel++;
            }
        }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK)
            reply_json(r, 200, json_object());
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        store_set_release(&svcs);
        store_set_release(&deps);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
    json_decref(g);
    free(key);
    free(id);
}

static int by_instance_number(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "instance_number"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "instance_number"));

    return (x > y) - (x < y);
}

/* The instance JSON of master-api §4.6 for instance key `id` ("<node>/<container>") with
 * value iv, its observed value ov (may be NULL) and its node (may be NULL), plus the
 * `containers` the CLI's service show prints (fresh; NULL when a value is not UTF-8).
 * deploy_rev is the service revision the instance was placed at, rev the one its container
 * runs. */
static json_t *instance_view(const char *id, const json_t *iv, const json_t *ov,
                             const json_t *node)
{
    const char *slash = strchr(id, '/'), *ip = jstr(iv, "overlay_cidr");
    char *nodename = xasprintf("%.*s", (int)(slash - id), id);
    const json_t *health = json_object_get(ov, "health");
    json_t *pub = json_object_get(node, "public_ip"), *v, *ctrs = json_array();

    v = json_pack("{s:s,s:O?,s:O?,s:O?,s:s,s:O?,s:O?,s:O?,s:O?,s:{s:s,s:s,s:O?}}", "id", id,
                  "instance_number", json_object_get(iv, "instance_number"), "created_at",
                  json_object_get(iv, "created_at"), "updated_at",
                  json_object_get(iv, "updated_at"), "desired_state",
                  jstr(iv, "desired_state") ? jstr(iv, "desired_state") : "running", "state",
                  json_object_get(ov, "state"), "deploy_rev", json_object_get(iv, "revision"),
                  "rev", json_object_get(ov, "revision"), "error", json_object_get(ov, "error"),
                  "node", "id", nodename, "name", nodename, "public_ip", pub);
    if (!v) { /* not UTF-8: a key nobody of ours wrote */
        json_decref(ctrs);
        free(nodename);
        return NULL;
    }
    if (!jstr(ov, "state"))
        json_object_set_new(v, "state", json_string("pending"));
    if (ov) {
        char *addr = ip ? xstrdup(ip) : NULL;
        json_t *c;

        if (addr)
            addr[strcspn(addr, "/")] = '\0';
        c = json_pack("{s:s,s:{s:s,s:O?},s:s,s:s?,s:O?,s:O?,s:O?,s:O?}", "name", slash + 1,
                      "node", "name", nodename, "public_ip", pub, "hostname",
                      slash + 1, "ip_address", addr, "status", json_object_get(ov, "state"),
                      "reason", json_object_get(ov, "error"), "exit_code",
                      json_object_get(ov, "exit_code"), "health_status",
                      json_object_get(health, "status"));
        if (c)
            json_array_append_new(ctrs, c);
        free(addr);
    }
    json_object_set_new(v, "containers", ctrs);
    free(nodename);
    return v;
}

static void h_service_instances(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *svc = NULL, *list = NULL, *omap, *nmap;
    struct store_set inst = {0}, obs = {0}, nodes = {0};
    char *key, *iprefix = NULL, *oprefix = NULL, *nprefix = NULL, *sid;
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    json_decref(g);
    key = key_service(params[0], params[1], params[2]);
    st = store_get(r->api->etcd, key, &svc, NULL, &e);
    free(key);
    json_decref(svc);
    if (st == ST_NOTFOUND) {
        reply_error(r, 404, "Service not found");
        return;
    }
    /* Instances are /kontena/instances/<grid>/<node>/<container>: one read of the grid's
     * instances, observed containers and nodes, filtered by service id. */
    iprefix = key_grid_child_prefix(KEY_INSTANCES, params[0]);
    oprefix = key_grid_child_prefix("/kontena/observed/", params[0]);
    nprefix = key_grid_child_prefix("/kontena/nodes/", params[0]);
    if (st == ST_OK)
        st = store_list_set(r->api->etcd, iprefix, 0, &inst, &e);
    if (st == ST_OK)
        st = store_list_set(r->api->etcd, oprefix, 0, &obs, &e);
    if (st == ST_OK)
        st = store_list_set(r->api->etcd, nprefix, 1, &nodes, &e);
    if (st != ST_OK) {
        reply_status(r, st, &e);
        goto out;
    }
    sid = xasprintf("%s/%s/%s", params[0], params[1], params[2]);
    omap = json_object();
    for (size_t i = 0; i < obs.n; i++) {
        const char *id = node_container(obs.keys[i], oprefix);
        if (id)
            json_object_set(omap, id, json_array_get(obs.objs, i));
    }
    nmap = json_object();
    for (size_t i = 0; i < nodes.n; i++)
        json_object_set(nmap, nodes.keys[i] + strlen(nprefix), json_array_get(nodes.objs, i));
    list = json_array();
    for (size_t i = 0; i < inst.n; i++) {
        const json_t *iv = json_array_get(inst.objs, i);
        const char *id = node_container(inst.keys[i], iprefix);
        char node[256];
        json_t *view;

        if (!id || !jstr(iv, "service_id") || strcmp(jstr(iv, "service_id"), sid) != 0 ||
            strcspn(id, "/") >= sizeof(node))
            continue;
        snprintf(node, sizeof(node), "%.*s", (int)strcspn(id, "/"), id);
        view = instance_view(id, iv, json_object_get(omap, id), json_object_get(nmap, node));
        if (view)
            json_array_append_new(list, view);
    }
    json_decref(omap);
    json_decref(nmap);
    free(sid);
    if (json_array_size(list) > 1) {
        /* Sort a C array of borrowed pointers, then rebuild the list in that order. */
        size_t n = json_array_size(list);
        json_t **v = xmalloc(n * sizeof(*v)), *sorted = json_array();
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(list, i);
        qsort(v, n, sizeof(*v), by_instance_number);
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, v[i]);
        free(v);
        json_decref(list);
        list = sorted;
    }
    reply_json(r, 200, json_pack("{s:o}", "instances", list));
out:
    store_set_release(&inst);
    store_set_release(&obs);
    store_set_release(&nodes);
    free(iprefix);
    free(oprefix);
    free(nprefix);
}

const struct route service_routes[] = {
    {"GET", "/v1/grids/:grid/services", AUTH_TOKEN, h_service_list, NULL, NULL},
    {"POST", "/v1/grids/:grid/services", AUTH_TOKEN, h_service_create, "create", "GridService"},
    {"GET", "/v1/services/:grid/:stack/:service", AUTH_TOKEN, h_service_show, NULL, NULL},
    {"PUT", "/v1/services/:grid/:stack/:service", AUTH_TOKEN, h_service_update, "update",
     "GridService"},
    {"DELETE", "/v1/services/:grid/:stack/:service", AUTH_TOKEN, h_service_delete, "delete",
     "GridService"},
    {"POST", "/v1/services/:grid/:stack/:service/deploy", AUTH_TOKEN, h_service_deploy, "deploy",
     "Deploy"},
    {"POST", "/v1/services/:grid/:stack/:service/scale", AUTH_TOKEN, h_service_scale, "scale",
     "Deploy"},
    {"POST", "/v1/services/:grid/:stack/:service/start", AUTH_TOKEN, h_service_start, "start",
     "GridService"},
    {"POST", "/v1/services/:grid/:stack/:service/stop", AUTH_TOKEN, h_service_stop, "stop",
     "GridService"},
    {"POST", "/v1/services/:grid/:stack/:service/restart", AUTH_TOKEN, h_service_restart,
     "restart", "GridService"},
    {"GET", "/v1/services/:grid/:stack/:service/instances", AUTH_TOKEN, h_service_instances, NULL,
     NULL},
    {"POST", "/v1/services/:grid/:stack/:service/envs", AUTH_TOKEN, h_env_add, "add env",
     "GridService"},
    {"DELETE", "/v1/services/:grid/:stack/:service/envs/:key", AUTH_TOKEN, h_env_remove,
     "remove env", "GridService"},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
