/* apiserver/store.h -- JSON objects in etcd, one object per key.
 *
 * Values are written compact with sorted keys, so `etcdctl get --prefix /kontena/` reads
 * well and equal objects are byte-equal. Read-modify-write goes through store_update(),
 * which retries lost compares; nothing here keeps a cache.
 */
#ifndef APISERVER_STORE_H
#define APISERVER_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"

struct etcd;

/* Key builders (fresh memory). The layout is documented in docs/architecture.md. */
#define KEY_USERS "/kontena/users/"
#define KEY_TOKENS "/kontena/tokens/"
#define KEY_GRIDS "/kontena/grids/"
#define KEY_AUDIT "/kontena/audit/"
#define KEY_TLS "/kontena/master/tls"
#define KEY_STACKS "/kontena/stacks/"
#define KEY_SERVICES "/kontena/services/"
#define KEY_DEPLOYS "/kontena/deploys/"
#define KEY_STACK_DEPLOYS "/kontena/stack_deploys/"
#define KEY_INSTANCES "/kontena/instances/"
char *key_user(const char *email);
char *key_token(const char *sha256hex);
char *key_grid(const char *grid);
char *key_stack(const char *grid, const char *stack);
char *key_service(const char *grid, const char *stack, const char *service); /* stack "null" */
char *key_deploy(const char *grid, const char *id);
char *key_stack_deploy(const char *grid, const char *id);
/* Per-grid prefixes of the resources later issues add; a grid removal clears them all. */
extern const char *const grid_child_prefixes[];
char *key_grid_child_prefix(const char *kind_prefix, const char *grid); /* "<kind><grid>/" */

/* Read one object. ST_NOTFOUND when the key is missing; *mod_rev (may be NULL). */
enum status store_get(struct etcd *c, const char *key, json_t **out, int64_t *mod_rev,
                      struct err *e) WARN_UNUSED_RESULT;
/* Create: ST_CONFLICT if the key exists. */
enum status store_create(struct etcd *c, const char *key, const json_t *obj,
                         struct err *e) WARN_UNUSED_RESULT;
/* Replace if mod_rev still matches: ST_CONFLICT otherwise. */
enum status store_put_if(struct etcd *c, const char *key, const json_t *obj, int64_t mod_rev,
                         struct err *e) WARN_UNUSED_RESULT;
/* Objects of every key under prefix, in key order, as a new array. Unparsable values are
 * skipped with a warning. If direct_only, keys with a further '/' after the prefix are
 * skipped. */
enum status store_list(struct etcd *c, const char *prefix, int direct_only, json_t **out,
                       struct err *e) WARN_UNUSED_RESULT;
/* Objects under prefix with their keys and mod revisions (parallel arrays, key order).
 * Unparsable values are skipped. Release with store_set_release(). */
struct store_set {
    json_t *objs; /* array */
    char **keys;
    int64_t *revs;
    size_t n;
};
enum status store_list_set(struct etcd *c, const char *prefix, int direct_only,
                           struct store_set *out, struct err *e) WARN_UNUSED_RESULT;
void store_set_release(struct store_set *s);
/* Index of key in s, or -1. */
long store_set_find(const struct store_set *s, const char *key);

/* Number of keys under prefix. */
enum status store_count(struct etcd *c, const char *prefix, int64_t *n,
                        struct err *e) WARN_UNUSED_RESULT;

/* Read-modify-write with retries. fn edits obj in place (a private copy) and returns
 * ST_OK to write it, or any other status to stop (returned as is, e.g. ST_INVALID after
 * filling its own error). ST_NOTFOUND if the key does not exist. After 8 lost compares
 * in a row: ST_CONFLICT. *result (may be NULL) gets the object as written. */
typedef enum status (*store_mutate_fn)(json_t *obj, void *arg, struct err *e);
enum status store_update(struct etcd *c, const char *key, store_mutate_fn fn, void *arg,
                         json_t **result, struct err *e) WARN_UNUSED_RESULT;

/* Serialize the way the store does (compact, sorted keys). Caller frees. */
char *store_dump(const json_t *obj);

#endif
