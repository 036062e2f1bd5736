#include "apiserver/store.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

#define UPDATE_ATTEMPTS 8

/* Prefixes under which later issues keep per-grid resources: "<prefix><grid>/...". */
const char *const grid_child_prefixes[] = {
    "/kontena/nodes/",   "/kontena/stacks/",        "/kontena/services/",
    "/kontena/instances/", "/kontena/deploys/", "/kontena/stack_deploys/",
    "/kontena/ipam/",    "/kontena/secrets/",       "/kontena/volumes/",
    "/kontena/node_status/", "/kontena/stats/",
    NULL,
};

char *key_user(const char *email)
{
    return xasprintf(KEY_USERS "%s", email);
}

char *key_token(const char *sha256hex)
{
    return xasprintf(KEY_TOKENS "%s", sha256hex);
}

char *key_grid(const char *grid)
{
    return xasprintf(KEY_GRIDS "%s", grid);
}

char *key_stack(const char *grid, const char *stack)
{
    return xasprintf(KEY_STACKS "%s/%s", grid, stack);
}

char *key_service(const char *grid, const char *stack, const char *service)
{
    return xasprintf(KEY_SERVICES "%s/%s/%s", grid, stack, service);
}

char *key_deploy(const char *grid, const char *id)
{
    return xasprintf(KEY_DEPLOYS "%s/%s", grid, id);
}

char *key_stack_deploy(const char *grid, const char *id)
{
    return xasprintf(KEY_STACK_DEPLOYS "%s/%s", grid, id);
}

char *key_grid_child_prefix(const char *kind_prefix, const char *grid)
{
    return xasprintf("%s%s/", kind_prefix, grid);
}

char *store_dump(const json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    BUG_ON(!s);
    return s;
}

static enum status parse(const char *key, const char *v, size_t len, json_t **out, struct err *e)
{
    json_error_t je;
    json_t *j = json_loadb(v, len, 0, &je);

    if (!j || !json_is_object(j)) {
        json_decref(j);
        return err_set(e, ST_INVALID, "value of '%s' is not a JSON object", key);
    }
    *out = j;
    return ST_OK;
}

enum status store_get(struct etcd *c, const char *key, json_t **out, int64_t *mod_rev,
                      struct err *e)
{
    struct etcd_kv kv = {0};
    enum status st;

    *out = NULL;
    st = etcd_get(c, key, &kv, NULL, e);
    if (st != ST_OK)
        return st;
    st = parse(key, kv.value, kv.value_len, out, e);
    if (mod_rev)
        *mod_rev = kv.mod_revision;
    etcd_kv_release(&kv);
    return st;
}

enum status store_create(struct etcd *c, const char *key, const json_t *obj, struct err *e)
{
    char *s = store_dump(obj);
    enum status st = etcd_put_if(c, key, s, strlen(s), 0, 0, NULL, e);
    free(s);
    return st;
}

enum status store_put_if(struct etcd *c, const char *key, const json_t *obj, int64_t mod_rev,
                         struct err *e)
{
    char *s = store_dump(obj);
    enum status st = etcd_put_if(c, key, s, strlen(s), mod_rev, 0, NULL, e);
    free(s);
    return st;
}

enum status store_list(struct etcd *c, const char *prefix, int direct_only, json_t **out,
                       struct err *e)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    size_t plen = strlen(prefix);
    enum status st;

    *out = NULL;
    st = etcd_range(c, prefix, &o, &res, e);
    if (st != ST_OK)
        return st;
    *out = json_array();
    for (size_t i = 0; i < res.n; i++) {
        json_t *j = NULL;
        struct err pe = ERR_INIT;
        if (direct_only && strchr(res.kvs[i].key + plen, '/'))
            continue;
        if (parse(res.kvs[i].key, res.kvs[i].value, res.kvs[i].value_len, &j, &pe) != ST_OK) {
            log_warn("msg=\"skipping unreadable object: %s\"", pe.msg);
            continue;
        }
        json_array_append_new(*out, j);
    }
    etcd_range_result_release(&res);
    return ST_OK;
}

enum status store_list_set(struct etcd *c, const char *prefix, int direct_only,
                           struct store_set *out, struct err *e)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res = {0};
    size_t plen = strlen(prefix);
    enum status st;

    memset(out, 0, sizeof(*out));
    st = etcd_range(c, prefix, &o, &res, e);
    if (st != ST_OK)
        return st;
    out->objs = json_array();
    out->keys = xcalloc(res.n + 1, sizeof(*out->keys));
    out->revs = xcalloc(res.n + 1, sizeof(*out->revs));
    for (size_t i = 0; i < res.n; i++) {
        json_t *j = NULL;
        struct err pe = ERR_INIT;
        if (direct_only && strchr(res.kvs[i].key + plen, '/'))
            continue;
        if (parse(res.kvs[i].key, res.kvs[i].value, res.kvs[i].value_len, &j, &pe) != ST_OK) {
            log_warn("msg=\"skipping unreadable object: %s\"", pe.msg);
            continue;
        }
        json_array_append_new(out->objs, j);
        out->keys[out->n] = xstrdup(res.kvs[i].key);
        out->revs[out->n] = res.kvs[i].mod_revision;
        out->n++;
    }
    etcd_range_result_release(&res);
    return ST_OK;
}

void store_set_release(struct store_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->revs);
    json_decref(s->objs);
    memset(s, 0, sizeof(*s));
}

long store_set_find(const struct store_set *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return (long)i;
    return -1;
}

enum status store_count(struct etcd *c, const char *prefix, int64_t *n, struct err *e)
{
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct etcd_range_result res = {0};
    enum status st = etcd_range(c, prefix, &o, &res, e);

    *n = st == ST_OK ? res.count : 0;
    etcd_range_result_release(&res);
    return st;
}

enum status store_update(struct etcd *c, const char *key, store_mutate_fn fn, void *arg,
                         json_t **result, struct err *e)
{
    enum status st = ST_CONFLICT;

    if (result)
        *result = NULL;
    for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        json_t *obj = NULL;
        int64_t rev = 0;

        st = store_get(c, key, &obj, &rev, e);
        if (st != ST_OK)
            return st;
        st = fn(obj, arg, e);
        if (st == ST_OK)
            st = store_put_if(c, key, obj, rev, e);
        if (st == ST_OK && result)
            *result = json_incref(obj);
        json_decref(obj);
        if (st != ST_CONFLICT)
            return st;
    }
    return err_set(e, ST_CONFLICT, "'%s' kept changing under concurrent updates", key);
}
