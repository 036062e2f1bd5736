/* etcdclient/etcd.h -- etcd v3 client over the JSON gateway (/v3/...), libcurl + jansson.
 *
 * One `struct etcd` per process is enough: every call below is thread-safe and may be made
 * from any thread at the same time (each call borrows a curl handle from an internal pool,
 * so connections are reused). Calls are synchronous and bounded by the request timeout,
 * except the watch stream (etcd_watch.h), which only relies on TCP keepalive.
 *
 * Endpoints: several may be given; a call that cannot connect to the current endpoint tries
 * the next ones before failing with ST_RETRY, and the endpoint that answered becomes the
 * current one. etcd auth: with a username, the client gets a token from
 * /v3/auth/authenticate and sends it on every request; an expired token is renewed once,
 * transparently.
 *
 * Errors: ST_RETRY (no endpoint reachable, timeout, etcd unavailable), ST_DENIED (auth),
 * ST_NOTFOUND (etcd_get of a missing key, unknown lease), ST_CONFLICT (a lost compare in
 * the *_if helpers), ST_INVALID (bad arguments, reply over its cap or unparsable), ST_IO.
 *
 * Gateway quirks handled here so callers never see them: keys and values are base64,
 * int64 fields arrive as strings, zero values are omitted.
 */
#ifndef ETCDCLIENT_ETCD_H
#define ETCDCLIENT_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct etcd;

struct etcd_opts {
    const char *endpoints;        /* comma-separated "http(s)://host:port"; required */
    const char *username;         /* etcd auth, NULL for none */
    const char *password;
    const char *cacert;           /* PEM file to verify etcd's certificate, NULL = system */
    const char *cert;             /* client certificate PEM file, NULL for none */
    const char *key;              /* its key */
    int insecure_skip_verify;     /* do not verify etcd's certificate (development only) */
    long connect_timeout_ms;      /* 0 = 2000 */
    long request_timeout_ms;      /* 0 = 10000; not applied to watch streams */
    size_t max_reply_bytes;       /* 0 = 64 MiB: a larger reply is ST_INVALID */
};

/* Create a client. Does not connect yet (the first call does). NULL and e set on bad opts. */
struct etcd *etcd_create(const struct etcd_opts *o, struct err *e);
void etcd_destroy(struct etcd *c); /* NULL is fine; no call may be in flight */
/* The endpoint the last successful call used (borrowed, valid until the next call). */
const char *etcd_current_endpoint(struct etcd *c);

/* Pass as range_end to mean "every key with `key` as a prefix". */
#define ETCD_PREFIX ((const char *)1)

/* A key-value pair. key and value are NUL-terminated copies owned by the struct (value may
 * also hold binary data: use value_len). Release with etcd_kv_release(). */
struct etcd_kv {
    char *key;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};
void etcd_kv_release(struct etcd_kv *kv);

struct etcd_range_opts {
    const char *range_end; /* NULL: the single key; ETCD_PREFIX; or an explicit end key */
    int64_t limit;         /* 0 = no limit */
    int64_t revision;      /* 0 = latest; else read at that revision (ST_COMPACTED if gone) */
    int keys_only;         /* values are left NULL */
    int count_only;        /* only `count` is filled */
    int sort_descend;      /* by key, descending (default ascending by key) */
};

struct etcd_range_result {
    int64_t revision; /* store revision the read was served at */
    int64_t count;    /* number of keys in the range (even past limit) */
    int more;         /* 1 if limit cut the result */
    struct etcd_kv *kvs;
    size_t n;
};
void etcd_range_result_release(struct etcd_range_result *r);

enum status etcd_range(struct etcd *c, const char *key, const struct etcd_range_opts *o,
                       struct etcd_range_result *out, struct err *e) WARN_UNUSED_RESULT;
/* One key. ST_NOTFOUND if it does not exist. rev (may be NULL) gets the store revision. */
enum status etcd_get(struct etcd *c, const char *key, struct etcd_kv *out, int64_t *rev,
                     struct err *e) WARN_UNUSED_RESULT;

/* Put value (len bytes; pass strlen for text). lease 0 = none. If prev is not NULL it gets
 * the previous pair (prev->key == NULL when there was none). rev (may be NULL) gets the
 * revision of the write. */
enum status etcd_put(struct etcd *c, const char *key, const char *value, size_t len,
                     int64_t lease, struct etcd_kv *prev, int64_t *rev,
                     struct err *e) WARN_UNUSED_RESULT;
/* Delete one key, a prefix (ETCD_PREFIX) or [key, range_end). deleted (may be NULL) gets
 * the number of keys removed. */
enum status etcd_delete(struct etcd *c, const char *key, const char *range_end,
                        int64_t *deleted, struct err *e) WARN_UNUSED_RESULT;

/* --- transactions ---------------------------------------------------------------------- */

enum etcd_cmp_target { ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE };
enum etcd_cmp_result { ETCD_CMP_EQUAL, ETCD_CMP_NOT_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS };
enum etcd_branch { ETCD_THEN, ETCD_ELSE };

struct etcd_txn; /* builder: copies every string it is given */
struct etcd_txn *etcd_txn_new(void);
void etcd_txn_free(struct etcd_txn *t); /* NULL is fine */
/* Compare a revision/version number of key (CREATE == 0 means "does not exist"). */
void etcd_txn_cmp(struct etcd_txn *t, const char *key, enum etcd_cmp_target target,
                  enum etcd_cmp_result result, int64_t number);
/* Compare the value of key with value (len bytes). */
void etcd_txn_cmp_value(struct etcd_txn *t, const char *key, enum etcd_cmp_result result,
                        const char *value, size_t len);
void etcd_txn_put(struct etcd_txn *t, enum etcd_branch b, const char *key, const char *value,
                  size_t len, int64_t lease);
void etcd_txn_delete(struct etcd_txn *t, enum etcd_branch b, const char *key,
                     const char *range_end);
void etcd_txn_range(struct etcd_txn *t, enum etcd_branch b, const char *key,
                    const struct etcd_range_opts *o);

/* One response per op of the branch that ran, in the order they were added. */
struct etcd_txn_response {
    enum { ETCD_RESP_RANGE, ETCD_RESP_PUT, ETCD_RESP_DELETE } type;
    struct etcd_range_result range; /* RANGE */
    int64_t deleted;                /* DELETE */
};
struct etcd_txn_result {
    int succeeded; /* 1: compares held, THEN ran; 0: ELSE ran */
    int64_t revision;
    struct etcd_txn_response *responses;
    size_t n;
};
void etcd_txn_result_release(struct etcd_txn_result *r);
/* Run the transaction. ST_OK whether or not the compares held: look at res->succeeded. */
enum status etcd_txn_commit(struct etcd *c, const struct etcd_txn *t, struct etcd_txn_result *res,
                            struct err *e) WARN_UNUSED_RESULT;

/* Compare-and-swap helpers: write key only if its mod_revision is still mod_rev
 * (mod_rev == 0: only if the key does not exist). ST_CONFLICT when the compare was lost.
 * rev (may be NULL) gets the revision of the write. */
enum status etcd_put_if(struct etcd *c, const char *key, const char *value, size_t len,
                        int64_t mod_rev, int64_t lease, int64_t *rev,
                        struct err *e) WARN_UNUSED_RESULT;
enum status etcd_delete_if(struct etcd *c, const char *key, int64_t mod_rev,
                           struct err *e) WARN_UNUSED_RESULT;

/* --- leases ---------------------------------------------------------------------------- */

/* Grant a lease of ttl seconds; *id gets its id. */
enum status etcd_lease_grant(struct etcd *c, int64_t ttl, int64_t *id,
                             struct err *e) WARN_UNUSED_RESULT;
/* One keep-alive round trip; *ttl (may be NULL) gets the renewed TTL. ST_NOTFOUND when the
 * lease has already expired or was revoked. Call it every ttl/3 seconds or so. */
enum status etcd_lease_keepalive(struct etcd *c, int64_t id, int64_t *ttl,
                                 struct err *e) WARN_UNUSED_RESULT;
/* Revoke: keys attached to the lease are deleted. ST_NOTFOUND if it is already gone. */
enum status etcd_lease_revoke(struct etcd *c, int64_t id, struct err *e) WARN_UNUSED_RESULT;

/* --- maintenance (used by tests and tools) ----------------------------------------------- */

/* Compact the history up to rev (physical compaction, waits for it). */
enum status etcd_compact(struct etcd *c, int64_t rev, struct err *e) WARN_UNUSED_RESULT;
/* Key that ends the prefix range of `prefix` (last byte + 1), fresh memory. */
char *etcd_prefix_end(const char *prefix);

#endif
