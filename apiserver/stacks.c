/* apiserver/stacks.c -- stacks: /v1/grids/:grid/stacks and /v1/stacks/:grid/:stack.
 *
 * /kontena/stacks/<grid>/<name> holds the stack's latest revision, services included (as
 * specs); the live services are their own keys (services.c). Install writes the stack and
 * every service key (state initialized) in one transaction; upgrade writes a new revision
 * (only when the spec changed) and creates the services that are new; deploy applies the
 * revision to the service keys and writes the deploy records; remove deletes the stack, its
 * services and their deploy records. Each is ONE transaction, so a stack is written
 * completely or not at all; each compares every key it read and decided on and starts over
 * when it loses.
 */
#include <ctype.h>
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
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

/* What a revision is made of: a change of any of these makes a new revision. Labels are
 * the stack's, not the revision's (PATCH changes them without a new revision). */
static const char *const rev_fields[] = {"stack",  "version", "registry",     "expose",
                                         "source", "variables", "metadata",   "parent",
                                         "volumes", "dependencies", "services", NULL};

/* Both set and equal: stored objects are ours, but a hand-edited key must not crash us. */
static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static void audit_stack(struct req *r, const char *grid, const char *name)
{
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", name ? name : "");
    snprintf(r->audit_id, sizeof(r->audit_id), "%s/%s", grid, name ? name : "");
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", grid);
}

static int valid_label(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-");
    return n > 0 && s[n] == '=' && strlen(s) <= 1024;
}

static int check_labels(const json_t *labels, json_t *errs)
{
    size_t i;
    json_t *x;

    if (!json_is_array(labels) || json_array_size(labels) > 100) {
        json_object_set_new(errs, "labels", json_string("Labels must be an array of key=value"));
        return 0;
    }
    json_array_foreach(labels, i, x) if (!json_is_string(x) || !valid_label(json_string_value(x)))
    {
        json_object_set_new(errs, "labels", json_sprintf("Label %s isn't in the right format",
                                                         json_is_string(x) ? json_string_value(x) : "?"));
        return 0;
    }
    return 1;
}

/* errs.services.<svc>.<field> = msg */
static void svc_error(json_t *errs, const char *svc, const char *field, const char *msg)
{
    json_t *s = json_object_get(errs, "services"), *one;

    if (!json_is_object(s)) {
        s = json_object();
        json_object_set_new(errs, "services", s);
    }
    one = json_object_get(s, svc);
    if (!one) {
        one = json_object();
        json_object_set_new(s, svc, one);
    }
    if (!json_object_get(one, field))
        json_object_set_new(one, field, json_string(msg));
}

/* Index of the in-stack service a resolved link points at, or -1. */
static long link_index(const json_t *link, const char *grid, const char *stack,
                       const json_t *names)
{
    const char *id = jstr(link, "id");
    size_t gl = strlen(grid), sl = strlen(stack), i;
    json_t *n;

    if (!id || strncmp(id, grid, gl) != 0 || id[gl] != '/' || strncmp(id + gl + 1, stack, sl) != 0 ||
        id[gl + 1 + sl] != '/')
        return -1;
    json_array_foreach(names, i, n) if (strcmp(json_string_value(n), id + gl + sl + 2) == 0) return (long)i;
    return -1;
}

/* A cycle through service `start` over in-stack links, as "a -> b -> a" (fresh), or NULL. */
static char *find_cycle(const json_t *specs, const json_t *names, const char *grid,
                        const char *stack, size_t start)
{
    size_t n = json_array_size(specs), head = 0, tail = 0;
    long *parent = xcalloc(n, sizeof(*parent)), *queue = xcalloc(n + 1, sizeof(*queue));
    char *out = NULL;
    long found = -1;

    for (size_t i = 0; i < n; i++)
        parent[i] = -2; /* unvisited */
    queue[tail++] = (long)start;
    while (head < tail && found < 0) {
        long cur = queue[head++];
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(json_array_get(specs, (size_t)cur), "links"), k, l)
        {
            long to = link_index(l, grid, stack, names);
            if (to < 0)
                continue;
            if ((size_t)to == start) {
                found = cur;
                break;
            }
            if (parent[to] == -2) {
                parent[to] = cur;
                queue[tail++] = to;
            }
        }
    }
    if (found >= 0) {
        /* Path start -> ... -> found -> start, rebuilt backwards. */
        long path[WL_MAX_STACK_SERVICES + 2];
        size_t len = 0;
        struct buf b = BUF_INIT;
        for (long c = found; c >= 0 && (size_t)c != start && len < WL_MAX_STACK_SERVICES; c = parent[c])
            path[len++] = c;
        BUG_ON(buf_printf(&b, "%s", json_string_value(json_array_get(names, start))) != ST_OK);
        while (len-- > 0)
            BUG_ON(buf_printf(&b, " -> %s", json_string_value(json_array_get(names, (size_t)path[len]))) != ST_OK);
        BUG_ON(buf_printf(&b, " -> %s", json_string_value(json_array_get(names, start))) != ST_OK);
        out = buf_take(&b);
    }
    free(parent);
    free(queue);
    return out;
}

/* Validate an install/upgrade body into a stack object (fresh, without timestamps and
 * revision). Messages go into errs; keys the decision read go into cmps. */
static enum status stack_build(struct req *r, const char *grid, const char *name,
                               const json_t *body, json_t **out, json_t *cmps, json_t *errs,
                               struct err *e)
{
    json_t *stk = json_object(), *v, *names = json_array(), *specs = json_array(), *vols;
    const char *s;
    enum status st = ST_OK;
    size_t i;
    json_t *x;

    *out = stk;
    json_object_set_new(stk, "name", json_string(name));
    json_object_set_new(stk, "grid", json_string(grid));
    json_object_set_new(stk, "id", json_sprintf("%s/%s", grid, name));
    s = jstr(body, "stack");
    if (!s || !*s || strlen(s) > 256)
        json_object_set_new(errs, "stack", json_string("Stack is required"));
    json_object_set_new(stk, "stack", json_string(s ? s : ""));
    static const char *const strs[] = {"version", "registry", "source"};
    for (size_t k = 0; k < ARRAY_SIZE(strs); k++) {
        v = json_object_get(body, strs[k]);
        if (v && !json_is_null(v) && !json_is_string(v))
            json_object_set_new(errs, strs[k], json_sprintf("%s must be a string", strs[k]));
        json_object_set_new(stk, strs[k], json_is_string(v) ? json_incref(v) : json_null());
    }
    static const char *const objs[] = {"variables", "metadata"};
    for (size_t k = 0; k < ARRAY_SIZE(objs); k++) {
        v = json_object_get(body, objs[k]);
        if (v && !json_is_null(v) && !json_is_object(v))
            json_object_set_new(errs, objs[k], json_sprintf("%s must be an object", objs[k]));
        json_object_set_new(stk, objs[k], json_is_object(v) ? json_deep_copy(v) : json_object());
    }
    v = json_object_get(body, "dependencies");
    json_object_set_new(stk, "dependencies", v ? json_deep_copy(v) : json_null());
    v = json_object_get(body, "labels");
    if (v && !json_is_null(v) && check_labels(v, errs))
        json_object_set_new(stk, "labels", json_deep_copy(v));
    else
        json_object_set_new(stk, "labels", json_array());

    /* Parent: {name} or the older parent_name. The parent need not exist yet: the CLI
     * installs children first (the parent may link to their services), as the original did,
     * which stored the parent's name only. */
    v = json_object_get(body, "parent");
    s = json_is_object(v) ? jstr(v, "name") : jstr(body, "parent_name");
    json_object_set_new(stk, "parent", json_null());
    if (s) {
        json_t *p = NULL;
        int64_t prev = 0;
        char *pkey;
        if (!valid_name(s, 1, 64) || strcmp(s, name) == 0) {
            json_object_set_new(errs, "parent", json_sprintf("Parent stack name %s is not valid", s));
        } else {
            pkey = key_stack(grid, s);
            st = store_get(r->api->etcd, pkey, &p, &prev, e);
            json_decref(p);
            if (st == ST_OK) {
                json_array_append_new(cmps, json_pack("{s:s,s:I}", "key", pkey, "rev", (json_int_t)prev));
                json_object_set_new(stk, "parent", json_pack("{s:s}", "name", s));
            } else if (st == ST_NOTFOUND) {
                json_object_set_new(stk, "parent", json_pack("{s:s}", "name", s));
                st = ST_OK;
            }
            free(pkey);
            if (st != ST_OK)
                goto out;
        }
    }

    /* Volumes: external ones only, which must exist as grid volumes. */
    vols = json_array();
    json_object_set_new(stk, "volumes", vols);
    v = json_object_get(body, "volumes");
    if (v && !json_is_null(v) && !json_is_array(v))
        json_object_set_new(errs, "volumes", json_string("Volumes must be an array"));
    json_array_foreach(json_is_array(v) ? v : NULL, i, x)
    {
        const char *vn = jstr(x, "name");
        json_t *ext = json_object_get(x, "external");
        const char *en = json_is_true(ext) ? vn : json_is_string(ext) ? json_string_value(ext) : jstr(ext, "name");
        json_t *ve = json_object_get(errs, "volumes"), *got = NULL;
        char *vkey;
        if (!vn || !valid_name(vn, 1, 64)) {
            json_object_set_new(errs, "volumes", json_sprintf("Volumes[%zu] isn't in the right format", i));
            break;
        }
        if (!ve || !json_is_object(ve)) {
            if (ve)
                break;
            ve = json_object();
            json_object_set_new(errs, "volumes", ve);
        }
        if (!en || !valid_name(en, 1, 256)) {
            json_object_set_new(ve, vn, json_pack("{s:s}", "external", "Only external volumes supported"));
            continue;
        }
        vkey = xasprintf("/kontena/volumes/%s/%s", grid, en);
        st = store_get(r->api->etcd, vkey, &got, NULL, e);
        free(vkey);
        json_decref(got);
        if (st == ST_NOTFOUND) {
            json_object_set_new(ve, vn, json_pack("{s:s++}", "external", "External volume ", en, " not found"));
            st = ST_OK;
            continue;
        }
        if (st != ST_OK)
            goto out;
        json_array_append_new(vols, json_pack("{s:s,s:s}", "name", vn, "external", en));
    }
    if (json_is_object(json_object_get(errs, "volumes")) && json_object_size(json_object_get(errs, "volumes")) == 0)
        json_object_del(errs, "volumes");

    /* Services. */
    v = json_object_get(body, "services");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        json_object_set_new(errs, "services", json_string("stack does not specify any services"));
        goto out;
    }
    if (json_array_size(v) > WL_MAX_STACK_SERVICES) {
        json_object_set_new(errs, "services", json_sprintf("A stack may have at most %d services",
                                                           WL_MAX_STACK_SERVICES));
        goto out;
    }
    json_array_foreach(v, i, x)
    {
        const char *sn = jstr(x, "name");
        char idx[32];
        snprintf(idx, sizeof(idx), "services[%zu]", i);
        if (!json_is_object(x) || !sn || !valid_name(sn, 1, 64)) {
            svc_error(errs, sn && json_is_object(x) ? sn : idx, "name", "Name is required: word characters or dashes, not starting with a dash");
            json_array_append_new(names, json_string(""));
            continue;
        }
        if (json_array_has_string(names, sn))
            svc_error(errs, sn, "name", "Name is duplicated");
        json_array_append_new(names, json_string(sn));
    }
    json_array_foreach(v, i, x)
    {
        struct svcspec_ctx ctx = {grid, name, vols};
        json_t *serrs = json_object(), *spec;
        const char *sn = json_string_value(json_array_get(names, i)), *f;
        char *msg = NULL;
        json_t *m;

        if (!*sn) {
            json_decref(serrs);
            json_array_append_new(specs, json_object());
            continue;
        }
        spec = svcspec_build(x, NULL, &ctx, serrs);
        if (!json_object_get(serrs, "links")) {
            st = links_resolve(r->api, grid, name, spec, names, cmps, &msg, e);
            if (msg)
                json_object_set_new(serrs, "links", json_string(msg));
            free(msg);
        }
        json_object_foreach(serrs, f, m) svc_error(errs, sn, f, json_string_value(m));
        json_decref(serrs);
        json_array_append_new(specs, spec);
        if (st != ST_OK)
            goto out;
    }
    for (i = 0; i < json_array_size(specs) && !json_object_get(errs, "services"); i++) {
        char *cycle = find_cycle(specs, names, grid, name, i);
        if (cycle) {
            char *msg = xasprintf("service %s has recursive links: %s",
                                  json_string_value(json_array_get(names, i)), cycle);
            svc_error(errs, json_string_value(json_array_get(names, i)), "links", msg);
            free(msg);
            free(cycle);
        }
    }
    if (!json_object_get(errs, "services")) {
        char *msg = NULL;
        size_t which = 0;
        st = lbcheck_specs(r->api, grid, name, specs, 1, &msg, &which, e);
        if (st != ST_OK)
            goto out;
        if (msg)
            svc_error(errs, json_string_value(json_array_get(names, which)), "env", msg);
        free(msg);
    }
    json_object_set(stk, "services", specs);
    v = json_object_get(body, "expose");
    if (v && !json_is_null(v) && (!json_is_string(v) || !json_array_has_string(names, json_string_value(v))))
        json_object_set_new(errs, "expose", json_sprintf("%s is not defined in the services array",
                                                         json_is_string(v) ? json_string_value(v) : "expose"));
    json_object_set_new(stk, "expose", json_is_string(v) ? json_incref(v) : json_null());
out:
    json_decref(names);
    json_decref(specs);
    return st;
}

static int rev_changed(const json_t *a, const json_t *b)
{
    for (size_t i = 0; rev_fields[i]; i++) {
        json_t *x = json_object_get(a, rev_fields[i]), *y = json_object_get(b, rev_fields[i]);
        if (!json_equal(x ? x : json_null(), y ? y : json_null()))
            return 1;
    }
    return 0;
}

/* A new service key's object from a revision's spec. */
static json_t *service_from_spec(const json_t *spec, const char *grid, const char *stack,
                                 const char *now)
{
    json_t *svc = json_object();

    svcspec_copy_fields(svc, spec);
    json_object_update_new(
        svc, json_pack("{s:s++++,s:s,s:s,s:i,s:n,s:s,s:i,s:s,s:s,s:n}", "id", grid, "/", stack,
                       "/", jstr(spec, "name"), "grid", grid, "stack", stack, "revision", 1,
                       "stack_revision", "state", "initialized", "restart_generation", 0,
                       "created_at", now, "updated_at", now, "deployed_at"));
    return svc;
}

/* Services of one stack out of the grid's services. */
static json_t *stack_services(const json_t *grid_svcs, const char *stack)
{
    json_t *out = json_array(), *s;
    size_t i;

    json_array_foreach(grid_svcs, i, s) if (jstr(s, "stack") && strcmp(jstr(s, "stack"), stack) == 0)
        json_array_append(out, s);
    return out;
}

static const char *stack_state(const json_t *live, int deploying)
{
    size_t i, n = json_array_size(live), init = 0, run = 0, stop = 0;
    json_t *s;

    json_array_foreach(live, i, s)
    {
        const char *st = jstr(s, "state");
        if (!st || strcmp(st, "initialized") == 0)
            init++;
        else if (strcmp(st, "running") == 0)
            run++;
        else if (strcmp(st, "stopped") == 0)
            stop++;
    }
    if (init == n)
        return "initialized";
    if (deploying)
        return "deploying";
    if (stop == n)
        return "stopped";
    if (run == n)
        return "running";
    return "partially_running";
}

/* The stack JSON of master-api §4.3 (fresh). */
static enum status stack_view(struct api *a, const json_t *stk, const json_t *all_stacks,
                              const json_t *grid_svcs, const json_t *g, const json_t *counts,
                              json_t **out, struct err *e)
{
    const char *grid = jstr(stk, "grid"), *name = jstr(stk, "name");
    json_t *live = stack_services(grid_svcs, name), *svcs, *children = json_array(), *x, *v;
    const char *parent = jstr(json_object_get(stk, "parent"), "name");
    int deploying = 0;
    enum status st;
    size_t i;

    st = services_deploying(a, grid, live, &deploying, e);
    if (st != ST_OK) {
        json_decref(live);
        json_decref(children);
        return st;
    }
    svcs = json_copy(live);
    json_array_foreach(json_object_get(stk, "services"), i, x)
    {
        size_t k;
        json_t *l;
        int found = 0;
        json_array_foreach(live, k, l) found |= streq(jstr(l, "name"), jstr(x, "name"));
        if (!found)
            json_array_append_new(svcs, service_from_spec(x, grid, name, jstr(stk, "created_at")));
    }
    json_array_foreach(all_stacks, i, x)
    {
        const char *p = jstr(json_object_get(x, "parent"), "name");
        if (p && strcmp(p, name) == 0)
            json_array_append_new(children, json_pack("{s:s++,s:O}", "id", grid, "/", jstr(x, "name"),
                                                      "name", json_object_get(x, "name")));
    }
    v = json_deep_copy(stk);
    json_object_set_new(v, "state", json_string(stack_state(live, deploying)));
    json_object_set_new(v, "services", service_views(svcs, g, counts));
    /* The latest revision's services as the next deploy will apply them: what the CLI
     * compares a stack file with (the live services lag behind after --no-deploy). */
    {
        json_t *rev = json_array();
        json_array_foreach(json_object_get(stk, "services"), i, x)
            json_array_append_new(rev, service_from_spec(x, grid, name, jstr(stk, "created_at")));
        json_object_set_new(v, "revision_services", service_views(rev, g, counts));
        json_decref(rev);
    }
    json_object_set_new(v, "parent", parent ? json_pack("{s:s++,s:s}", "id", grid, "/", parent, "name", parent)
                                            : json_null());
    json_object_set_new(v, "children", children);
    json_object_del(v, "grid");
    *out = v;
    json_decref(svcs);
    json_decref(live);
    return ST_OK;
}

/* Everything a stack view needs, read once. */
struct grid_state {
    json_t *stacks;  /* array */
    json_t *svcs;    /* array */
    json_t *counts;
};

static enum status grid_state_load(struct api *a, const char *grid, struct grid_state *gs,
                                   struct err *e)
{
    char *p1 = key_grid_child_prefix(KEY_STACKS, grid), *p2 = key_grid_child_prefix(KEY_SERVICES, grid);
    enum status st;

    memset(gs, 0, sizeof(*gs));
    st = store_list(a->etcd, p1, 1, &gs->stacks, e);
    if (st == ST_OK)
        st = store_list(a->etcd, p2, 0, &gs->svcs, e);
    if (st == ST_OK)
        st = instance_counts(a, grid, &gs->counts, e);
    free(p1);
    free(p2);
    return st;
}

static void grid_state_release(struct grid_state *gs)
{
    json_decref(gs->stacks);
    json_decref(gs->svcs);
    json_decref(gs->counts);
    memset(gs, 0, sizeof(*gs));
}

/* Reply code with the view of stack `name` (read afresh). */
static void reply_stack(struct req *r, unsigned code, const char *grid, const char *name,
                        const json_t *g)
{
    struct grid_state gs;
    struct err e = ERR_INIT;
    enum status st = grid_state_load(r->api, grid, &gs, &e);
    json_t *x, *v = NULL;
    size_t i;

    if (st == ST_OK) {
        st = ST_NOTFOUND;
        json_array_foreach(gs.stacks, i, x) if (streq(jstr(x, "name"), name))
        {
            st = stack_view(r->api, x, gs.stacks, gs.svcs, g, gs.counts, &v, &e);
            break;
        }
    }
    grid_state_release(&gs);
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Stack not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, code, v);
}

/* --- handlers ------------------------------------------------------------------------------ */

static void h_stack_list(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *out, *x;
    struct grid_state gs;
    struct err e = ERR_INIT;
    enum status st;
    size_t i;

    if (!g)
        return;
    st = grid_state_load(r->api, params[0], &gs, &e);
    out = json_array();
    if (st == ST_OK)
        json_array_foreach(gs.stacks, i, x)
        {
            json_t *v = NULL;
            st = stack_view(r->api, x, gs.stacks, gs.svcs, g, gs.counts, &v, &e);
            if (st != ST_OK)
                break;
            json_array_append_new(out, v);
        }
    grid_state_release(&gs);
    if (st != ST_OK) {
        json_decref(out);
        reply_status(r, st, &e);
    } else {
        reply_json(r, 200, json_pack("{s:o}", "stacks", out));
    }
    json_decref(g);
}

static void h_stack_show(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL);

    if (!g)
        return;
    reply_stack(r, 200, params[0], params[1], g);
    json_decref(g);
}

static void h_stack_create(struct req *r, char **params)
{
    const char *grid = params[0], *name = jstr(r->json, "name");
    json_t *g;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_stack(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        return;
    if (!name || !valid_name(name, 1, 64) || strcmp(name, "null") == 0) {
        reply_invalid(r, "name", name ? "Name must be word characters or dashes, not starting "
                                        "with a dash (and not null)"
                                      : "Name is required");
        json_decref(g);
        return;
    }
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        json_t *cmps = json_array(), *errs = json_object(), *stk = NULL, *x;
        char now[40], *skey;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        size_t i;

        st = stack_build(r, grid, name, r->json, &stk, cmps, errs, &e);
        if (st != ST_OK || json_object_size(errs)) {
            if (st == ST_OK)
                reply_invalid_obj(r, json_incref(errs));
            json_decref(errs);
            json_decref(cmps);
            json_decref(stk);
            break;
        }
        json_decref(errs);
        time_iso8601_now(now, sizeof(now));
        json_object_update_new(stk, json_pack("{s:i,s:s,s:s}", "revision", 1, "created_at", now,
                                              "updated_at", now));
        skey = key_stack(grid, name);
        t = etcd_txn_new();
        etcd_txn_cmp(t, skey, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
        txn_add_cmps(t, cmps);
        txn_put_json(t, skey, stk);
        json_array_foreach(json_object_get(stk, "services"), i, x)
        {
            char *k = key_service(grid, name, jstr(x, "name"));
            json_t *svc = service_from_spec(x, grid, name, now);
            etcd_txn_cmp(t, k, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
            txn_put_json(t, k, svc);
            json_decref(svc);
            free(k);
        }
        etcd_txn_range(t, ETCD_ELSE, skey, NULL);
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded) {
            st = ST_CONFLICT;
            if (res.n >= 1 && res.responses[0].range.n > 0) {
                reply_json(r, 409, json_pack("{s:{s:s+}}", "error", "name", name, " already exists"));
                st = ST_OK;
            }
        } else if (st == ST_OK) {
            reply_stack(r, 201, grid, name, g);
        }
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        free(skey);
        json_decref(cmps);
        json_decref(stk);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
    json_decref(g);
}

static void h_stack_update(struct req *r, char **params)
{
    const char *grid = params[0], *name = params[1];
    json_t *g;
    char *skey = key_stack(grid, name);
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_stack(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        json_t *old = NULL, *cmps = json_array(), *errs = json_object(), *stk = NULL, *x, *svcs = NULL;
        int64_t rev = 0;
        char now[40], *prefix;
        struct buf linked = BUF_INIT;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        size_t i;

        st = store_get(r->api->etcd, skey, &old, &rev, &e);
        if (st == ST_OK)
            st = stack_build(r, grid, name, r->json, &stk, cmps, errs, &e);
        prefix = key_grid_child_prefix(KEY_SERVICES, grid);
        if (st == ST_OK)
            st = store_list(r->api->etcd, prefix, 0, &svcs, &e);
        free(prefix);
        if (st == ST_OK && !json_object_size(errs)) {
            /* Services this revision drops must not be linked from other stacks (the
             * original removed them at once, with the service removal's message). */
            json_array_foreach(json_object_get(old, "services"), i, x)
            {
                size_t k;
                json_t *n;
                int kept = 0;
                char *id, *l;
                json_array_foreach(json_object_get(stk, "services"), k, n) kept |=
                    streq(jstr(n, "name"), jstr(x, "name"));
                if (kept)
                    continue;
                id = xasprintf("%s/%s/%s", grid, name, jstr(x, "name"));
                l = links_from_others(svcs, id, name);
                if (l)
                    BUG_ON(buf_printf(&linked, "%s%s", linked.len ? ", " : "", l) != ST_OK);
                free(l);
                free(id);
            }
            if (linked.len)
                json_object_set_new(errs, "stack",
                                    json_sprintf("Cannot delete service that is linked to "
                                                 "another service (%s)", linked.ptr));
        }
        buf_release(&linked);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "Stack not found");
            st = ST_OK;
        } else if (st == ST_OK && json_object_size(errs)) {
            reply_invalid_obj(r, json_incref(errs));
        }
        json_decref(errs);
        if (st != ST_OK || r->status) {
            json_decref(old);
            json_decref(cmps);
            json_decref(stk);
            json_decref(svcs);
            break;
        }
        time_iso8601_now(now, sizeof(now));
        json_object_set(stk, "created_at", json_object_get(old, "created_at"));
        if (rev_changed(old, stk)) {
            json_object_set_new(stk, "revision",
                                json_integer(json_integer_value(json_object_get(old, "revision")) + 1));
            json_object_set_new(stk, "updated_at", json_string(now));
        } else {
            json_object_set(stk, "revision", json_object_get(old, "revision"));
            json_object_set(stk, "updated_at", json_object_get(old, "updated_at"));
        }
        if (!json_object_get(r->json, "labels") || json_is_null(json_object_get(r->json, "labels")))
            json_object_set(stk, "labels", json_object_get(old, "labels"));
        t = etcd_txn_new();
        etcd_txn_cmp(t, skey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
        txn_add_cmps(t, cmps);
        txn_put_json(t, skey, stk);
        json_array_foreach(json_object_get(stk, "services"), i, x)
        {
            char *k = key_service(grid, name, jstr(x, "name"));
            size_t j;
            json_t *s;
            int exists = 0;
            json_array_foreach(svcs, j, s) exists |=
                streq(jstr(s, "stack"), name) && streq(jstr(s, "name"), jstr(x, "name"));
            if (!exists) {
                json_t *svc = service_from_spec(x, grid, name, now);
                etcd_txn_cmp(t, k, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
                txn_put_json(t, k, svc);
                json_decref(svc);
            }
            free(k);
        }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK)
            reply_stack(r, 200, grid, name, g);
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        json_decref(old);
        json_decref(cmps);
        json_decref(stk);
        json_decref(svcs);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    json_decref(g);
    free(skey);
}

static enum status edit_labels(json_t *stk, void *arg, struct err *e)
{
    (void)e;
    json_object_set(stk, "labels", arg);
    return ST_OK;
}

static void h_stack_patch(struct req *r, char **params)
{
    json_t *g, *labels = json_object_get(r->json, "labels"), *errs;
    char *skey;
    struct err e = ERR_INIT;
    enum status st;

    audit_stack(r, params[0], params[1]);
    g = grid_load(r, params[0], NULL);
    if (!g)
        return;
    errs = json_object();
    if (!labels || !check_labels(labels, errs)) {
        if (!labels)
            json_object_set_new(errs, "labels", json_string("Labels are required"));
        reply_invalid_obj(r, errs);
        json_decref(g);
        return;
    }
    json_decref(errs);
    skey = key_stack(params[0], params[1]);
    st = store_update(r->api->etcd, skey, edit_labels, labels, NULL, &e);
    free(skey);
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Stack not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_stack(r, 200, params[0], params[1], g);
    json_decref(g);
}

static void h_stack_delete(struct req *r, char **params)
{
    const char *grid = params[0], *name = params[1];
    json_t *g;
    char *skey = key_stack(grid, name);
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_stack(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        struct grid_state gs = {0};
        struct store_set deps = {0}, sdeps = {0};
        json_t *stk = NULL, *x;
        int64_t rev = 0;
        struct buf msg = BUF_INIT;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        char *prefix;
        size_t i, ndel = 0;

        st = store_get(r->api->etcd, skey, &stk, &rev, &e);
        if (st == ST_OK)
            st = grid_state_load(r->api, grid, &gs, &e);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "Stack not found");
            st = ST_OK;
            break;
        }
        if (st != ST_OK) {
            json_decref(stk);
            grid_state_release(&gs);
            break;
        }
        json_array_foreach(gs.stacks, i, x)
        {
            const char *p = jstr(json_object_get(x, "parent"), "name");
            if (p && strcmp(p, name) == 0)
                BUG_ON(buf_printf(&msg, "%s%s", msg.len ? ", " : "", jstr(x, "name")) != ST_OK);
        }
        if (msg.len) {
            reply_invalid(r, "stack", "Stack has dependencies that must be removed first: %s", msg.ptr);
        } else {
            json_array_foreach(gs.svcs, i, x)
            {
                char *l;
                if (!streq(jstr(x, "stack"), name) || !jstr(x, "id"))
                    continue;
                l = links_from_others(gs.svcs, jstr(x, "id"), name);
                if (l)
                    BUG_ON(buf_printf(&msg, "%s%s", msg.len ? ", " : "", l) != ST_OK);
                free(l);
            }
            if (msg.len)
                reply_invalid(r, "stack",
                              "Cannot delete service that is linked from another stack (%s)", msg.ptr);
        }
        buf_release(&msg);
        grid_state_release(&gs);
        json_decref(stk);
        if (r->status) {
            st = ST_OK;
            break;
        }
        prefix = key_grid_child_prefix(KEY_DEPLOYS, grid);
        st = store_list_set(r->api->etcd, prefix, 0, &deps, &e);
        free(prefix);
        prefix = key_grid_child_prefix(KEY_STACK_DEPLOYS, grid);
        if (st == ST_OK)
            st = store_list_set(r->api->etcd, prefix, 0, &sdeps, &e);
        free(prefix);
        if (st != ST_OK) {
            store_set_release(&deps);
            break;
        }
        t = etcd_txn_new();
        etcd_txn_cmp(t, skey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
        etcd_txn_delete(t, ETCD_THEN, skey, NULL);
        prefix = xasprintf(KEY_SERVICES "%s/%s/", grid, name);
        etcd_txn_delete(t, ETCD_THEN, prefix, ETCD_PREFIX);
        free(prefix);
        /* Deploy records go in the same transaction while they fit under etcd's operation
         * cap (128 per branch); the oldest past that are left for the grid removal. */
        for (size_t k = deps.n; k-- > 0 && ndel < 100;)
            if (jstr(json_array_get(deps.objs, k), "stack") &&
                strcmp(jstr(json_array_get(deps.objs, k), "stack"), name) == 0) {
                etcd_txn_delete(t, ETCD_THEN, deps.keys[k], NULL);
                ndel++;
            }
        for (size_t k = sdeps.n; k-- > 0 && ndel < 120;)
            if (jstr(json_array_get(sdeps.objs, k), "stack") &&
                strcmp(jstr(json_array_get(sdeps.objs, k), "stack"), name) == 0) {
                etcd_txn_delete(t, ETCD_THEN, sdeps.keys[k], NULL);
                ndel++;
            }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK)
            reply_json(r, 200, json_object());
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        store_set_release(&deps);
        store_set_release(&sdeps);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    json_decref(g);
    free(skey);
}

/* Deploy order: services before those that link to them (Kahn; ties keep file order). */
static json_t *deploy_order(const json_t *specs, const char *grid, const char *stack)
{
    size_t n = json_array_size(specs), i;
    json_t *names = json_array(), *order = json_array(), *x;
    char *done = xcalloc(n + 1, 1);

    json_array_foreach(specs, i, x) json_array_append_new(names, json_string(jstr(x, "name")));
    for (size_t round = 0; round < n; round++) {
        int progressed = 0;
        for (i = 0; i < n; i++) {
            size_t k;
            json_t *l;
            int ready = 1;
            if (done[i])
                continue;
            json_array_foreach(json_object_get(json_array_get(specs, i), "links"), k, l)
            {
                long to = link_index(l, grid, stack, names);
                if (to >= 0 && (size_t)to != i && !done[to])
                    ready = 0;
            }
            if (ready) {
                done[i] = 1;
                progressed = 1;
                json_array_append(order, json_array_get(specs, i));
            }
        }
        if (!progressed)
            break;
    }
    for (i = 0; i < n; i++) /* a cycle (refused at install) would leave some: keep them */
        if (!done[i])
            json_array_append(order, json_array_get(specs, i));
    free(done);
    json_decref(names);
    return order;
}

static void h_stack_deploy(struct req *r, char **params)
{
    const char *grid = params[0], *name = params[1];
    json_t *g;
    char *skey = key_stack(grid, name);
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_stack(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        struct store_set live = {0};
        json_t *stk = NULL, *order, *x, *ids = json_array(), *sd;
        int64_t rev = 0;
        char now[40], *prefix, *sdid, *sdkey;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        size_t i;

        st = store_get(r->api->etcd, skey, &stk, &rev, &e);
        prefix = xasprintf(KEY_SERVICES "%s/%s/", grid, name);
        if (st == ST_OK)
            st = store_list_set(r->api->etcd, prefix, 1, &live, &e);
        free(prefix);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "Stack not found");
            st = ST_OK;
        }
        if (st != ST_OK || r->status) {
            json_decref(stk);
            json_decref(ids);
            break;
        }
        time_iso8601_now(now, sizeof(now));
        sdid = deploy_new_id();
        t = etcd_txn_new();
        etcd_txn_cmp(t, skey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev);
        order = deploy_order(json_object_get(stk, "services"), grid, name);
        json_array_foreach(order, i, x)
        {
            char *k = key_service(grid, name, jstr(x, "name")), *dk;
            long idx = store_set_find(&live, k);
            json_t *svc, *dep;
            if (idx >= 0) {
                json_t *cur = json_array_get(live.objs, (size_t)idx);
                svc = json_deep_copy(cur);
                svcspec_copy_fields(svc, x);
                if (svcspec_changed(cur, svc)) {
                    json_object_set_new(svc, "revision",
                                        json_integer(json_integer_value(json_object_get(cur, "revision")) + 1));
                    service_touch(svc, now);
                }
                etcd_txn_cmp(t, k, ETCD_CMP_MOD, ETCD_CMP_EQUAL, live.revs[idx]);
            } else {
                svc = service_from_spec(x, grid, name, now);
                etcd_txn_cmp(t, k, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
            }
            json_object_set(svc, "stack_revision", json_object_get(stk, "revision"));
            json_object_set_new(svc, "state", json_string("running"));
            json_object_set_new(svc, "deployed_at", json_string(now));
            dep = deploy_record_new(svc, sdid, 0, now);
            json_object_set(svc, "deploy_id", json_object_get(dep, "id"));
            json_array_append(ids, json_object_get(dep, "id"));
            txn_put_json(t, k, svc);
            dk = key_deploy(grid, jstr(dep, "id"));
            txn_put_json(t, dk, dep);
            free(dk);
            json_decref(svc);
            json_decref(dep);
            free(k);
        }
        /* Services the revision no longer has go away. */
        for (i = 0; i < live.n; i++) {
            const char *ln = jstr(json_array_get(live.objs, i), "name");
            size_t k;
            int kept = 0;
            json_array_foreach(order, k, x) kept |= streq(jstr(x, "name"), ln);
            if (!kept) {
                etcd_txn_cmp(t, live.keys[i], ETCD_CMP_MOD, ETCD_CMP_EQUAL, live.revs[i]);
                etcd_txn_delete(t, ETCD_THEN, live.keys[i], NULL);
            }
        }
        sd = json_pack("{s:s,s:s,s:s,s:s++,s:O,s:s,s:O}", "id", sdid, "grid", grid, "stack", name,
                       "stack_id", grid, "/", name, "stack_revision",
                       json_object_get(stk, "revision"), "created_at", now, "service_deploys", ids);
        sdkey = key_stack_deploy(grid, sdid);
        txn_put_json(t, sdkey, sd);
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK)
            st = stack_deploy_reply(r, sd) == ST_OK ? ST_OK : ST_OK; /* replied either way */
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        free(sdkey);
        free(sdid);
        json_decref(sd);
        json_decref(order);
        json_decref(ids);
        json_decref(stk);
        store_set_release(&live);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    json_decref(g);
    free(skey);
}

/* stop: every service state -> stopped; restart: restart_generation += 1. One transaction. */
static void stack_signal(struct req *r, char **params, const char *state)
{
    const char *grid = params[0], *name = params[1];
    json_t *g;
    char *skey = key_stack(grid, name);
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    audit_stack(r, grid, name);
    g = grid_load(r, grid, NULL);
    if (!g)
        goto out;
    for (int attempt = 0; attempt < WL_TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        struct store_set live = {0};
        json_t *stk = NULL;
        char *prefix = xasprintf(KEY_SERVICES "%s/%s/", grid, name);
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};

        st = store_get(r->api->etcd, skey, &stk, NULL, &e);
        json_decref(stk);
        if (st == ST_OK)
            st = store_list_set(r->api->etcd, prefix, 1, &live, &e);
        free(prefix);
        if (st == ST_NOTFOUND) {
            reply_error(r, 404, "Stack not found");
            st = ST_OK;
            break;
        }
        if (st != ST_OK)
            break;
        t = etcd_txn_new();
        for (size_t i = 0; i < live.n; i++) {
            json_t *svc = json_array_get(live.objs, i);
            if (state)
                json_object_set_new(svc, "state", json_string(state));
            else
                json_object_set_new(svc, "restart_generation",
                                    json_integer(json_integer_value(json_object_get(svc, "restart_generation")) + 1));
            etcd_txn_cmp(t, live.keys[i], ETCD_CMP_MOD, ETCD_CMP_EQUAL, live.revs[i]);
            txn_put_json(t, live.keys[i], svc);
        }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded)
            st = ST_CONFLICT;
        else if (st == ST_OK)
            reply_json(r, 200, json_object());
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        store_set_release(&live);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    json_decref(g);
    free(skey);
}

static void h_stack_stop(struct req *r, char **params)
{
    stack_signal(r, params, "stopped");
}

static void h_stack_restart(struct req *r, char **params)
{
    stack_signal(r, params, NULL);
}

const struct route stack_routes[] = {
    {"GET", "/v1/grids/:grid/stacks", AUTH_TOKEN, h_stack_list, NULL, NULL},
    {"POST", "/v1/grids/:grid/stacks", AUTH_TOKEN, h_stack_create, "create", "Stack"},
    {"GET", "/v1/stacks/:grid/:stack", AUTH_TOKEN, h_stack_show, NULL, NULL},
    {"PUT", "/v1/stacks/:grid/:stack", AUTH_TOKEN, h_stack_update, "update", "Stack"},
    {"PATCH", "/v1/stacks/:grid/:stack", AUTH_TOKEN, h_stack_patch, "update", "Stack"},
    {"DELETE", "/v1/stacks/:grid/:stack", AUTH_TOKEN, h_stack_delete, "delete", "Stack"},
    {"POST", "/v1/stacks/:grid/:stack/deploy", AUTH_TOKEN, h_stack_deploy, "deploy", "Deploy"},
    {"POST", "/v1/stacks/:grid/:stack/stop", AUTH_TOKEN, h_stack_stop, "stop", "Stack"},
    {"POST", "/v1/stacks/:grid/:stack/restart", AUTH_TOKEN, h_stack_restart, "restart", "Stack"},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
