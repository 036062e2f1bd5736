/* apiserver/grids.c -- grids, grid membership and the audit listings.
 *
 * A grid is one object at /kontena/grids/<name>. Membership is kept on the user objects
 * (user.grids), so a grid create (which makes the creator a member) and a grid removal
 * (which drops it from every member) are single etcd transactions over the grid key and the
 * user keys involved, compared on their mod_revisions and retried when they lose.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/logfwd.h"
#include "apiserver/logstore.h"
#include "apiserver/store.h"
#include "apiserver/validate.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

#define TXN_ATTEMPTS 8

/* Users (objects + their keys' mod revisions) as parallel arrays. */
struct user_set {
    json_t *users; /* array of user objects */
    int64_t *revs;
    char **keys;
    size_t n;
};

static void user_set_release(struct user_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->revs);
    json_decref(s->users);
    memset(s, 0, sizeof(*s));
}

static enum status user_set_load(struct api *a, struct user_set *s, struct err *e)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    enum status st = etcd_range(a->etcd, KEY_USERS, &o, &res, e);

    memset(s, 0, sizeof(*s));
    if (st != ST_OK)
        return st;
    s->users = json_array();
    s->revs = xcalloc(res.n, sizeof(*s->revs));
    s->keys = xcalloc(res.n, sizeof(*s->keys));
    for (size_t i = 0; i < res.n; i++) {
        json_t *u = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
        if (!json_is_object(u)) {
            json_decref(u);
            continue;
        }
        json_array_append_new(s->users, u);
        s->revs[s->n] = res.kvs[i].mod_revision;
        s->keys[s->n] = xstrdup(res.kvs[i].key);
        s->n++;
    }
    etcd_range_result_release(&res);
    return ST_OK;
}

static int64_t count_members(const struct user_set *s, const char *grid)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (json_array_has_string(json_object_get(json_array_get(s->users, i), "grids"), grid))
            n++;
    return n;
}

static enum status grid_view(struct api *a, const json_t *g, const struct user_set *us,
                             json_t **out, struct err *e)
{
    static const struct {
        const char *field, *prefix;
    } counts[] = {{"node_count", "/kontena/nodes/"},
                  {"service_count", "/kontena/services/"},
                  {"container_count", "/kontena/instances/"}};
    const char *name = jstr(g, "name");
    json_t *v = json_deep_copy(g);

    for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
        int64_t n = 0;
        char *p = key_grid_child_prefix(counts[i].prefix, name);
        enum status st = store_count(a->etcd, p, &n, e);
        free(p);
        if (st != ST_OK) {
            json_decref(v);
            return st;
        }
        json_object_set_new(v, counts[i].field, json_integer(n));
    }
    json_object_set_new(v, "user_count", json_integer(count_members(us, name)));
    *out = v;
    return ST_OK;
}

/* Load the grid, check the caller may see it (declared in api.h). */
json_t *grid_load(struct req *r, const char *name, int64_t *rev)
{
    char *key = key_grid(name);
    json_t *g = NULL;
    struct err e = ERR_INIT;
    enum status st = store_get(r->api->etcd, key, &g, rev, &e);

    free(key);
    if (st == ST_NOTFOUND || (st == ST_OK && !perm_grid_access(r->who->user, name))) {
        /* Same answer for "missing" and "not yours": grid names are not disclosed. */
        reply_error(r, 404, "Grid %s not found", name);
        json_decref(g);
        return NULL;
    }
    if (st != ST_OK) {
        reply_status(r, st, &e);
        return NULL;
    }
    return g;
}

/* --- validation -------------------------------------------------------------------------- */

static void check_string_list(json_t *body, const char *field, int cidr, json_t *errs)
{
    json_t *v = json_object_get(body, field), *x;
    size_t i;

    if (!v)
        return;
    if (!json_all_strings(v)) {
        json_object_set_new(errs, field, json_sprintf("%s must be an array of strings", field));
        return;
    }
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        if (cidr && !valid_cidr4(s)) {
            json_object_set_new(errs, field, json_sprintf("Invalid trusted_subnet %s", s));
            return;
        }
        if (!cidr && (strlen(s) == 0 || strlen(s) > 256)) {
            json_object_set_new(errs, field, json_sprintf("Invalid affinity '%s'", s));
            return;
        }
    }
}

static void check_stats(json_t *body, json_t *errs)
{
    json_t *st = json_object_get(body, "stats"), *sd;

    if (!st || json_is_null(st))
        return;
    sd = json_object_get(st, "statsd");
    if (!json_is_object(st) || (sd && !json_is_null(sd) &&
                                (!json_is_object(sd) || !json_is_string(json_object_get(sd, "server")) ||
                                 !json_is_integer(json_object_get(sd, "port")) ||
                                 json_integer_value(json_object_get(sd, "port")) < 1 ||
                                 json_integer_value(json_object_get(sd, "port")) > 65535)))
        json_object_set_new(errs, "stats",
                            json_string("Stats must be {\"statsd\": {\"server\": host, \"port\": 1..65535}} or null"));
}

static void check_logs(json_t *body, json_t *errs)
{
    json_t *lg = json_object_get(body, "logs"), *opts;
    const char *fw;
    char why[200];

    if (!lg || json_is_null(lg))
        return;
    fw = jstr(lg, "forwarder");
    opts = json_object_get(lg, "opts");
    if (!json_is_object(lg) || !fw ||
        (strcmp(fw, "syslog") != 0 && strcmp(fw, "fluentd") != 0 && strcmp(fw, "none") != 0)) {
        json_object_set_new(errs, "logs", json_string("Forwarder must be syslog, fluentd or none"));
        return;
    }
    if (opts && !json_is_object(opts)) {
        json_object_set_new(errs, "logs", json_string("Opts must be an object"));
        return;
    }
    if (strcmp(fw, "fluentd") == 0 && !json_is_string(json_object_get(opts, "fluentd-address")))
        json_object_set_new(errs, "logs", json_string("Option fluentd-address is required for fluentd"));
    if (strcmp(fw, "syslog") == 0) {
        if (!json_is_string(json_object_get(opts, "syslog-address")))
            json_object_set_new(errs, "logs",
                                json_string("Option syslog-address is required for syslog "
                                            "(udp://host:port or tcp://host:port)"));
        else if (!logfwd_address_ok(jstr(opts, "syslog-address"), why, sizeof(why)))
            json_object_set_new(errs, "logs", json_string(why));
    }
}

/* Apply the updatable fields of body to grid g (validated already). */
static void apply_grid_fields(json_t *g, json_t *body)
{
    static const char *fields[] = {"default_affinity", "trusted_subnets", "stats"};
    json_t *lg = json_object_get(body, "logs");
    char now[40];

    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (v && json_is_null(v) && strcmp(fields[i], "stats") != 0)
            json_object_set_new(g, fields[i], json_array());
        else if (v)
            json_object_set(g, fields[i], v);
    }
    if (lg) {
        const char *fw = jstr(lg, "forwarder");
        if (json_is_null(lg) || (fw && strcmp(fw, "none") == 0))
            json_object_del(g, "logs");
        else
            json_object_set_new(g, "logs", json_pack("{s:s,s:O}", "forwarder", fw, "opts",
                                                     json_object_get(lg, "opts") ? json_object_get(lg, "opts") : json_object()));
    }
    time_iso8601_now(now, sizeof(now));
    json_object_set_new(g, "updated_at", json_string(now));
}

/* --- handlers ---------------------------------------------------------------------------- */

static void h_grid_list(struct req *r, char **params)
{
    json_t *all = NULL, *out = json_array(), *g;
    struct user_set us;
    struct err e = ERR_INIT;
    enum status st;
    size_t i;

    (void)params;
    st = store_list(r->api->etcd, KEY_GRIDS, 1, &all, &e);
    if (st == ST_OK)
        st = user_set_load(r->api, &us, &e);
    if (st != ST_OK) {
        json_decref(all);
        json_decref(out);
        reply_status(r, st, &e);
        return;
    }
    json_array_foreach(all, i, g)
    {
        json_t *v;
        if (!perm_grid_access(r->who->user, jstr(g, "name")))
            continue;
        st = grid_view(r->api, g, &us, &v, &e);
        if (st != ST_OK)
            break;
        json_array_append_new(out, v);
    }
    user_set_release(&us);
    json_decref(all);
    if (st != ST_OK) {
        json_decref(out);
        reply_status(r, st, &e);
        return;
    }
    reply_json(r, 200, json_pack("{s:o}", "grids", out));
}

static void h_grid_create(struct req *r, char **params)
{
    json_t *b = r->json, *errs = json_object(), *g = NULL, *v;
    const char *name = jstr(b, "name"), *subnet = jstr(b, "subnet"), *supernet = jstr(b, "supernet");
    const char *token = jstr(b, "token");
    json_int_t size = 1;
    char now[40], *gkey = NULL, *ukey = NULL;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    (void)params;
    if (!perm_master_admin(r->who->user)) {
        json_decref(errs);
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    if (!name)
        json_object_set_new(errs, "name", json_string("Name is required"));
    else if (!valid_name(name, 3, 64))
        json_object_set_new(errs, "name",
                            json_string("Name must be 3 to 64 word characters or dashes, not starting with a dash"));
    v = json_object_get(b, "initial_size");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 7)
            json_object_set_new(errs, "initial_size", json_string("Initial size must be an integer from 1 to 7"));
        else
            size = json_integer_value(v);
    }
    if ((v = json_object_get(b, "token")) && !json_is_null(v) &&
        (!token || strlen(token) < 16 || strlen(token) > 256))
        json_object_set_new(errs, "token", json_string("Token must be 16 to 256 characters"));
    if ((v = json_object_get(b, "subnet")) && !json_is_null(v) && (!subnet || !valid_cidr4(subnet)))
        json_object_set_new(errs, "subnet", json_string("Subnet isn't in the right format"));
    if ((v = json_object_get(b, "supernet")) && !json_is_null(v) && (!supernet || !valid_cidr4(supernet)))
        json_object_set_new(errs, "supernet", json_string("Supernet isn't in the right format"));
    check_string_list(b, "trusted_subnets", 1, errs);
    check_string_list(b, "default_affinity", 0, errs);
    check_stats(b, errs);
    check_logs(b, errs);
    if (json_object_size(errs)) {
        reply_invalid_obj(r, errs);
        return;
    }
    json_decref(errs);
    snprintf(r->audit_name, sizeof(r->audit_name), "%s", name);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", name);
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", name);

    time_iso8601_now(now, sizeof(now));
    if (!token) { /* as the original: 64 random bytes, base64 */
        unsigned char raw[64];
        char *b64;
        crypto_random_bytes(raw, sizeof(raw));
        b64 = crypto_b64_encode(raw, sizeof(raw));
        g = json_pack("{s:s}", "token", b64);
        free(b64);
    } else {
        g = json_pack("{s:s}", "token", token);
    }
    json_object_update_new(g, json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:[],s:{s:n},s:s,s:s}", "id", name,
                                    "name", name, "initial_size", (json_int_t)size, "subnet",
                                    subnet ? subnet : "10.81.0.0/16", "supernet",
                                    supernet ? supernet : "10.80.0.0/12", "default_affinity",
                                    "trusted_subnets", "stats", "statsd", "created_at", now,
                                    "updated_at", now));
    apply_grid_fields(g, b);

    gkey = key_grid(name);
    ukey = key_user(r->who->email);
    for (int attempt = 0; attempt < TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        json_t *u = NULL, *grids;
        int64_t urev = 0;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        char *gs, *usr;

        st = store_get(r->api->etcd, ukey, &u, &urev, &e);
        if (st != ST_OK)
            break;
        grids = json_object_get(u, "grids");
        if (!json_is_array(grids)) {
            grids = json_array();
            json_object_set_new(u, "grids", grids);
        }
        if (!json_array_has_string(grids, name))
            json_array_append_new(grids, json_string(name));
        gs = store_dump(g);
        usr = store_dump(u);
        t = etcd_txn_new();
        etcd_txn_cmp(t, gkey, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
        etcd_txn_cmp(t, ukey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, urev);
        etcd_txn_put(t, ETCD_THEN, gkey, gs, strlen(gs), 0);
        etcd_txn_put(t, ETCD_THEN, ukey, usr, strlen(usr), 0);
        etcd_txn_range(t, ETCD_ELSE, gkey, NULL);
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded) {
            if (res.n == 1 && res.responses[0].range.n > 0) {
                st = ST_OK;
                reply_json(r, 409, json_pack("{s:{s:s+}}", "error", "name",
                                             "Grid with name already exists: ", name));
            } else {
                st = ST_CONFLICT; /* the user object changed: read it again */
            }
        } else if (st == ST_OK) {
            struct user_set us = {0};
            json_t *view = NULL;
            st = user_set_load(r->api, &us, &e);
            if (st == ST_OK)
                st = grid_view(r->api, g, &us, &view, &e);
            user_set_release(&us);
            if (st == ST_OK)
                reply_json(r, 201, view);
            logfwd_kick(r->api->logfwd);
        }
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        free(gs);
        free(usr);
        json_decref(u);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
    json_decref(g);
    free(gkey);
    free(ukey);
}

static void h_grid_show(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *v = NULL;
    struct user_set us;
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    st = user_set_load(r->api, &us, &e);
    if (st == ST_OK) {
        st = grid_view(r->api, g, &us, &v, &e);
        user_set_release(&us);
    }
    json_decref(g);
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, v);
}

static enum status grid_edit(json_t *g, void *arg, struct err *e)
{
    (void)e;
    apply_grid_fields(g, arg);
    return ST_OK;
}

static void h_grid_update(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *errs, *upd = NULL, *v = NULL;
    char *key;
    struct user_set us;
    struct err e = ERR_INIT;
    enum status st;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", params[0]);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", params[0]);
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", params[0]);
    if (!g)
        return;
    json_decref(g);
    if (!perm_grid_admin(r->who->user, params[0])) {
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    errs = json_object();
    check_string_list(r->json, "trusted_subnets", 1, errs);
    check_string_list(r->json, "default_affinity", 0, errs);
    check_stats(r->json, errs);
    check_logs(r->json, errs);
    if (json_object_size(errs)) {
        reply_invalid_obj(r, errs);
        return;
    }
    json_decref(errs);
    key = key_grid(params[0]);
    st = store_update(r->api->etcd, key, grid_edit, r->json, &upd, &e);
    free(key);
    if (st == ST_OK)
        st = user_set_load(r->api, &us, &e);
    if (st == ST_OK) {
        st = grid_view(r->api, upd, &us, &v, &e);
        user_set_release(&us);
    }
    json_decref(upd);
    logfwd_kick(r->api->logfwd);
    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, v);
}

static void h_grid_delete(struct req *r, char **params)
{
    const char *name = params[0], *force = req_query(r, "force");
    int forced = force && (strcmp(force, "true") == 0 || strcmp(force, "1") == 0);
    char *gkey = key_grid(name);
    json_t *g;
    int64_t grev = 0, nodes = 0, stacks = 0;
    struct err e = ERR_INIT;
    enum status st = ST_CONFLICT;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", name);
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", name);
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", name);
    g = grid_load(r, name, &grev);
    if (!g)
        goto out;
    json_decref(g);
    if (!perm_master_admin(r->who->user)) {
        reply_error(r, 403, "Operation not allowed");
        goto out;
    }
    for (int attempt = 0; attempt < TXN_ATTEMPTS && st == ST_CONFLICT; attempt++) {
        char *np = key_grid_child_prefix("/kontena/nodes/", name);
        char *sp = key_grid_child_prefix("/kontena/stacks/", name);
        struct user_set us = {0};
        struct etcd_txn *t = NULL;
        struct etcd_txn_result res = {0};

        st = store_count(r->api->etcd, np, &nodes, &e);
        if (st == ST_OK)
            st = store_count(r->api->etcd, sp, &stacks, &e);
        free(np);
        free(sp);
        if (st != ST_OK)
            break;
        if ((nodes || stacks) && !forced) {
            reply_invalid(r, "grid",
                          "Grid %s still has %lld node(s) and %lld stack(s): remove them first, "
                          "or force the removal",
                          name, (long long)nodes, (long long)stacks);
            st = ST_OK;
            break;
        }
        st = user_set_load(r->api, &us, &e);
        if (st != ST_OK)
            break;
        /* One transaction: the grid, everything under its prefixes, and its name in every
         * member's grid list. Any of those keys changing meanwhile makes us start over. */
        t = etcd_txn_new();
        etcd_txn_cmp(t, gkey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, grev);
        etcd_txn_delete(t, ETCD_THEN, gkey, NULL);
        for (size_t i = 0; grid_child_prefixes[i]; i++) {
            char *p = key_grid_child_prefix(grid_child_prefixes[i], name);
            etcd_txn_delete(t, ETCD_THEN, p, ETCD_PREFIX);
            free(p);
        }
        for (size_t i = 0; i < us.n; i++) {
            json_t *u = json_array_get(us.users, i), *grids = json_object_get(u, "grids");
            char *s;
            if (!json_array_has_string(grids, name))
                continue;
            for (size_t k = json_array_size(grids); k-- > 0;)
                if (strcmp(json_string_value(json_array_get(grids, k)), name) == 0)
                    json_array_remove(grids, k);
            s = store_dump(u);
            etcd_txn_cmp(t, us.keys[i], ETCD_CMP_MOD, ETCD_CMP_EQUAL, us.revs[i]);
            etcd_txn_put(t, ETCD_THEN, us.keys[i], s, strlen(s), 0);
            free(s);
        }
        st = etcd_txn_commit(r->api->etcd, t, &res, &e);
        if (st == ST_OK && !res.succeeded) {
            st = ST_CONFLICT;
            json_decref(g = grid_load(r, name, &grev)); /* the grid may have changed too */
            if (r->status) { /* it is gone: 404 already set */
                st = ST_OK;
            }
        } else if (st == ST_OK) {
            if (r->api->logs)
                logstore_drop_grid(r->api->logs, name); /* its log window goes with it */
            reply_json(r, 200, json_object());
        }
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
        user_set_release(&us);
    }
    if (st != ST_OK)
        reply_status(r, st, &e);
out:
    free(gkey);
}

static void h_grid_users(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL), *out;
    struct user_set us;
    struct err e = ERR_INIT;

    if (!g)
        return;
    json_decref(g);
    if (user_set_load(r->api, &us, &e) != ST_OK) {
        reply_status(r, e.st, &e);
        return;
    }
    out = json_array();
    for (size_t i = 0; i < us.n; i++) {
        json_t *u = json_array_get(us.users, i);
        if (json_array_has_string(json_object_get(u, "grids"), params[0]))
            json_array_append_new(out, user_view(u));
    }
    user_set_release(&us);
    reply_json(r, 200, json_pack("{s:o}", "users", out));
}

struct membership {
    const char *grid;
    int add;
};

static enum status edit_membership(json_t *u, void *arg, struct err *e)
{
    struct membership *m = arg;
    json_t *grids = json_object_get(u, "grids");

    if (!json_is_array(grids)) {
        grids = json_array();
        json_object_set_new(u, "grids", grids);
    }
    if (m->add) {
        if (!json_array_has_string(grids, m->grid))
            json_array_append_new(grids, json_string(m->grid));
        return ST_OK;
    }
    for (size_t k = json_array_size(grids); k-- > 0;)
        if (strcmp(json_string_value(json_array_get(grids, k)), m->grid) == 0) {
            json_array_remove(grids, k);
            return ST_OK;
        }
    return err_set(e, ST_INVALID, "User is not a member of grid %s", m->grid);
}

static void change_membership(struct req *r, const char *grid, const char *email, int add)
{
    struct membership m = {grid, add};
    json_t *g = grid_load(r, grid, NULL);
    char *key;
    struct err e = ERR_INIT;
    enum status st;

    snprintf(r->audit_name, sizeof(r->audit_name), "%s", email ? email : "");
    snprintf(r->audit_id, sizeof(r->audit_id), "%s", email ? email : "");
    snprintf(r->audit_grid, sizeof(r->audit_grid), "%s", grid);
    if (!g)
        return;
    json_decref(g);
    if (!perm_user_admin(r->who->user) && !perm_grid_admin(r->who->user, grid)) {
        reply_error(r, 403, "Operation not allowed");
        return;
    }
    if (!email) {
        reply_invalid(r, "email", "Email is required");
        return;
    }
    if (!add) {
        struct user_set us;
        if (user_set_load(r->api, &us, &e) != ST_OK) {
            reply_status(r, e.st, &e);
            return;
        }
        int64_t n = count_members(&us, grid);
        user_set_release(&us);
        if (n <= 1) {
            reply_invalid(r, "user", "Cannot remove the last user of grid %s", grid);
            return;
        }
    }
    key = key_user(email);
    st = store_update(r->api->etcd, key, edit_membership, &m, NULL, &e);
    free(key);
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "User not found");
    else if (st == ST_INVALID)
        reply_invalid(r, "user", "%s", e.msg);
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else {
        h_grid_users(r, (char *[]){(char *)grid});
        if (r->status == 200 && add)
            r->status = 201;
    }
}

static void h_grid_user_add(struct req *r, char **params)
{
    change_membership(r, params[0], json_string_value(json_object_get(r->json, "email")), 1);
}

static void h_grid_user_remove(struct req *r, char **params)
{
    change_membership(r, params[0], params[1], 0);
}

static int64_t parse_limit(struct req *r)
{
    const char *s = req_query(r, "limit");
    long long n = s ? atoll(s) : 500;
    return n < 1 ? 500 : n > 3000 ? 3000 : n;
}

static void reply_audit(struct req *r, const char *grid)
{
    json_t *logs = NULL;
    struct err e = ERR_INIT;
    enum status st = audit_list(r->api, grid, parse_limit(r), &logs, &e);

    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, json_pack("{s:o}", "logs", logs));
}

static void h_grid_audit(struct req *r, char **params)
{
    json_t *g = grid_load(r, params[0], NULL);
    if (!g)
        return;
    json_decref(g);
    reply_audit(r, params[0]);
}

static void h_audit(struct req *r, char **params)
{
    (void)params;
    if (!perm_master_admin(r->who->user)) {
        reply_error(r, 403, "Access denied");
        return;
    }
    reply_audit(r, NULL);
}

const struct route grid_routes[] = {
    {"GET", "/v1/grids", AUTH_TOKEN, h_grid_list, NULL, NULL},
    {"POST", "/v1/grids", AUTH_TOKEN, h_grid_create, "create", "Grid"},
    {"GET", "/v1/grids/:grid", AUTH_TOKEN, h_grid_show, NULL, NULL},
    {"PUT", "/v1/grids/:grid", AUTH_TOKEN, h_grid_update, "update", "Grid"},
    {"DELETE", "/v1/grids/:grid", AUTH_TOKEN, h_grid_delete, "delete", "Grid"},
    {"GET", "/v1/grids/:grid/users", AUTH_TOKEN, h_grid_users, NULL, NULL},
    {"POST", "/v1/grids/:grid/users", AUTH_TOKEN, h_grid_user_add, "assign user", "User"},
    {"DELETE", "/v1/grids/:grid/users/:email", AUTH_TOKEN, h_grid_user_remove, "unassign user", "User"},
    {"GET", "/v1/grids/:grid/audit_log", AUTH_TOKEN, h_grid_audit, NULL, NULL},
    {"GET", "/v1/audit_logs", AUTH_TOKEN, h_audit, NULL, NULL},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
