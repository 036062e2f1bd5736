/* etcdclient/etcd_internal.h -- what the etcdclient files share with each other (and with
 * tests/unit/test_etcd_parse.c). Not part of the public interface: names carry `etcd__`.
 *
 * Files:
 *   etcd.c        client, curl handle pool, endpoints and failover, auth token, error mapping
 *   etcd_kv.c     range/put/delete/txn/lease/compact, gateway JSON <-> struct etcd_kv
 *   etcd_watch.c  the watch loop, the line splitter and the watch message parser
 */
#ifndef ETCDCLIENT_ETCD_INTERNAL_H
#define ETCDCLIENT_ETCD_INTERNAL_H

#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/buf.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"

#define ETCD__DEFAULT_CONNECT_MS 2000L
#define ETCD__DEFAULT_REQUEST_MS 10000L
#define ETCD__DEFAULT_MAX_BYTES ((size_t)64 << 20)

/* --- etcd.c ------------------------------------------------------------------------------ */

/* POST body to path on the current endpoint, failing over to the others when the
 * connection cannot be made. *reply gets the parsed JSON document (a new reference) on
 * ST_OK. Gateway errors ({"error":..,"code":..} with any HTTP status, or {"error":{..}}
 * inside a stream) become a status via etcd__grpc_status(). With auth, an invalid-token
 * error renews the token once and repeats the request. Only the first line of the reply is
 * parsed (streaming endpoints such as /v3/lease/keepalive answer one line). */
enum status etcd__post(struct etcd *c, const char *path, json_t *body, json_t **reply,
                       struct err *e) WARN_UNUSED_RESULT;

/* Map a gRPC status code (as the gateway reports it) plus its message to our status. */
enum status etcd__grpc_status(int code, const char *msg);
/* 1 if the gateway error means "the token is no longer valid": renew and repeat. */
int etcd__is_token_error(int code, const char *msg);

/* A fresh easy handle with the client's TLS, connect-timeout and keepalive options
 * (no request timeout, no URL). The caller owns it (curl_easy_cleanup). */
CURL *etcd__new_handle(struct etcd *c);

/* Endpoint bookkeeping for the watch, which runs its own transfer. */
size_t etcd__endpoint_count(struct etcd *c);
/* The endpoint to use for attempt `attempt` (0 = current), borrowed for the client's life. */
const char *etcd__endpoint_at(struct etcd *c, size_t attempt, size_t *idx);
void etcd__endpoint_good(struct etcd *c, size_t idx);
/* Endpoint idx could not serve (unreachable or unavailable): later calls start at the next. */
void etcd__endpoint_bad(struct etcd *c, size_t idx);

/* Auth. *hdr gets "Authorization: <token>" (fresh memory) or NULL without auth, and *gen
 * the token generation to hand to etcd__token_renew() if etcd rejects it. */
enum status etcd__auth_header(struct etcd *c, char **hdr, uint64_t *gen,
                              struct err *e) WARN_UNUSED_RESULT;
/* Drop the token of generation gen (unless another thread already did) and get a new one. */
enum status etcd__token_renew(struct etcd *c, uint64_t gen, struct err *e) WARN_UNUSED_RESULT;

/* 1 if the transfer on h failed with rc before the request reached the server, so it is
 * safe to send it to another endpoint. */
int etcd__curl_no_connect(CURL *h, CURLcode rc);
/* Status for a failed transfer (not counting a write callback's own abort). */
enum status etcd__curl_status(CURLcode rc);

/* --- etcd_kv.c --------------------------------------------------------------------------- */

/* Fill kv from a gateway KeyValue object. want_value: decode the value ("" when omitted);
 * otherwise value stays NULL. ST_INVALID on bad base64. kv is zeroed first. */
enum status etcd__kv_from_json(json_t *j, int want_value, struct etcd_kv *kv, struct err *e);
/* int64 field that may be a JSON string or integer; 0 when missing. */
int64_t etcd__json_int64(json_t *obj, const char *field);
/* The header.revision of a reply, 0 when missing. */
int64_t etcd__header_revision(json_t *reply);
/* Base64 of len bytes as a new JSON string. */
json_t *etcd__b64_json(const void *data, size_t len);
/* Set "key" (and "range_end") of a request object, resolving ETCD_PREFIX and the empty
 * key. range_end may be NULL, ETCD_PREFIX or a key. */
void etcd__set_key_range(json_t *req, const char *key, const char *range_end);

/* --- etcd_watch.c: pure parts, tested without a socket ------------------------------------ */

/* Splits a byte stream into lines. Lines longer than max_line bytes are an error; a line may
 * arrive over any number of feeds (libcurl gives at most 16 KiB per write callback). */
struct etcd__lines {
    struct buf tail; /* bytes of the current, incomplete line */
    size_t max_line;
};
typedef enum status (*etcd__line_fn)(void *arg, const char *line, size_t len);
void etcd__lines_init(struct etcd__lines *l, size_t max_line);
void etcd__lines_release(struct etcd__lines *l);
void etcd__lines_reset(struct etcd__lines *l); /* drop the partial tail (reconnect) */
/* Call fn for every complete non-blank line in data (without '\n' or a trailing '\r').
 * Returns ST_OK, ST_INVALID when a line passes max_line, or the first non-OK status fn
 * returned (the rest of data is then dropped). */
enum status etcd__lines_feed(struct etcd__lines *l, const char *data, size_t len, etcd__line_fn fn,
                             void *arg) WARN_UNUSED_RESULT;

enum etcd__wmsg_type {
    ETCD__WMSG_CREATED,   /* the watch exists; revision = store revision at creation */
    ETCD__WMSG_EVENTS,    /* events[0..n) */
    ETCD__WMSG_PROGRESS,  /* no events, not created, not canceled */
    ETCD__WMSG_COMPACTED, /* canceled because start revision < compact_revision */
    ETCD__WMSG_CANCELED,  /* canceled for another reason (reason) */
    ETCD__WMSG_ERROR,     /* {"error":{grpc_code, message}} in the stream, or a plain error */
};

struct etcd__wmsg {
    enum etcd__wmsg_type type;
    int64_t revision;
    int64_t compact_revision;
    struct etcd_event *events; /* owned */
    size_t n_events;
    int grpc_code; /* ERROR */
    char *reason;  /* CANCELED / ERROR, owned */
};

/* Parse one gateway watch line. m is zeroed first; release it with etcd__wmsg_release()
 * whatever the result. ST_INVALID when the line is not a watch message. */
enum status etcd__wmsg_parse(const char *line, size_t len, struct etcd__wmsg *m,
                             struct err *e) WARN_UNUSED_RESULT;
void etcd__wmsg_release(struct etcd__wmsg *m);

#endif
