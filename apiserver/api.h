/* apiserver/api.h -- the API server's shared types: configuration, the per-request record
 * that handlers fill in, the route table and the reply helpers.
 *
 * Threading: libmicrohttpd runs an internal epoll thread pool (--threads, default 4). Every
 * handler runs on one of those threads and makes synchronous etcd calls through the shared,
 * thread-safe `struct etcd`. Handlers keep no state between requests: everything lives in
 * etcd (docs/architecture.md has the key layout), so any number of API servers can run
 * against one etcd, and a restarted one loses nothing.
 */
#ifndef APISERVER_API_H
#define APISERVER_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct etcd;
struct agentws;
struct logstore;
struct logfwd;
struct follow_hub;
struct MHD_Connection;
struct MHD_Response;
struct MHD_Daemon;
struct httpmini;

struct api_config {
    const char *listen_addr; /* "0.0.0.0" */
    int port;                /* 9292 */
    int insecure_http;       /* serve plain HTTP (explicit flag only) */
    const char *tls_cert_file, *tls_key_file; /* NULL: generated, kept in etcd */
    const char *tls_san;     /* extra subjectAltName entries for the generated cert */
    const char *cert_out;    /* write the served certificate PEM here (may be NULL) */
    const char *server_name; /* "kontena-master" */
    const char *initial_admin_password; /* create user "admin" if it does not exist */
    unsigned threads;        /* MHD thread pool size */
    size_t max_body;         /* request body cap in bytes (413 above) */
    unsigned conn_timeout_s; /* idle connection timeout */
    const char *log_dir;     /* the log window's directory (logstore.h) */
    uint64_t log_window_bytes; /* per grid */
    const char *metrics_listen; /* "127.0.0.1:9300"; NULL: off */
    int metrics_required;    /* a failure to listen on it is fatal (given explicitly) */
};

/* Process counters for /metrics (metrics.c); every field updated with __atomic builtins. */
struct api_counters {
    uint64_t http_by_code[600];
    uint64_t log_batches, log_lines_received, log_lines_stored, log_lines_dropped;
    uint64_t log_forwarded, log_forward_dropped, log_forward_errors;
    uint64_t followers, follow_dropped_markers;
    uint64_t stats_container_samples, stats_node_samples;
    uint64_t agents_connected;
};

struct api {
    struct api_config cfg;
    struct etcd *etcd;
    struct MHD_Daemon *mhd;
    char *tls_cert_pem, *tls_key_pem, *tls_fingerprint;
    /* The agents' endpoint (agentws.c) or NULL; set and cleared by agentws_start/stop with
     * __atomic stores, read by handlers with __atomic_load_n. */
    struct agentws *agentws;
    struct logstore *logs;     /* NULL: no log window (its directory was unusable) */
    struct logfwd *logfwd;     /* syslog forwarding (logfwd.c) */
    struct follow_hub *hub;    /* parked log followers (logs.c) */
    struct httpmini *metrics_http;
    struct api_counters ctr;
};

/* The authenticated caller. */
struct principal {
    json_t *user;       /* the user object from etcd (owned) */
    const char *email;  /* borrowed from user */
};

struct req {
    struct api *api;
    struct MHD_Connection *conn;
    const char *method;
    char *path;         /* decoded path, no query */
    struct buf body;
    int too_large;
    json_t *json;       /* parsed body: an object (empty object for an empty body) */
    struct principal *who; /* NULL when the route needs no auth */
    char source_ip[64];

    /* What the handler produces: r->reply, or a ready response (a stream, a raw body) that
     * send_reply queues instead (owned; destroyed after queueing). */
    unsigned status;
    json_t *reply;
    struct MHD_Response *response;

    /* Audit record, filled by handlers of mutating routes. */
    const char *audit_event;    /* "create", "update", "delete", ...; NULL = not audited */
    const char *audit_type;     /* "Grid", "User", "Token", ... */
    char audit_name[160];       /* resource name */
    char audit_id[200];         /* resource id */
    char audit_grid[80];        /* grid name or "" */
};

/* Route handler: params[] are the ":name" path segments in order (decoded, NUL-terminated). */
typedef void (*api_handler)(struct req *r, char **params);

enum route_auth { AUTH_NONE, AUTH_TOKEN };

struct route {
    const char *method;
    const char *pattern; /* "/v1/grids/:grid/users/:email" */
    enum route_auth auth;
    api_handler fn;
    const char *audit_event; /* default audit event for the route, NULL = not audited */
    const char *audit_type;
};

/* Reply helpers: set r->status and r->reply (reply steals j). */
void reply_json(struct req *r, unsigned status, json_t *j);
void reply_error(struct req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 422 {"error":{field: message}} */
void reply_invalid(struct req *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 422 with a ready error object (stolen) */
void reply_invalid_obj(struct req *r, json_t *errors);
/* Map a store/etcd failure to a reply: NOTFOUND 404, CONFLICT 409, RETRY 503, else 500. */
void reply_status(struct req *r, enum status st, const struct err *e);
/* Query parameter or NULL. */
const char *req_query(struct req *r, const char *name);
/* Request header or NULL. */
const char *req_header(struct req *r, const char *name);

/* Route tables of each module, NULL-method terminated. */
extern const struct route auth_routes[];
extern const struct route grid_routes[];
extern const struct route stack_routes[];   /* stacks.c */
extern const struct route service_routes[]; /* services.c */
extern const struct route deploy_routes[];  /* deploys.c */
extern const struct route node_routes[];    /* nodes.c */
extern const struct route container_routes[]; /* containers.c */
extern const struct route log_routes[];       /* logs.c */
extern const struct route stats_routes[];     /* stats.c */

/* Parked log followers (logs.c): started before the HTTP daemon, shut down (every follower
 * ends its stream) before it stops. */
void logs_hub_start(struct api *a);
void logs_hub_shutdown(struct api *a);
void logs_hub_free(struct api *a);

/* Statistics (stats.c), called by the agents' endpoint's worker with the node's grid and
 * name (from its session) and the notification's params[0]; lease: the agents' lease. */
/* *names (may be NULL; owned, replaced) holds the container names the session reported
 * last: samples of names no longer reported are deleted; when NULL (a session's first
 * report) etcd is searched for the node's samples instead. */
void stats_containers_update(struct api *a, const char *grid, const char *node,
                             const json_t *p, int64_t lease, json_t **names);
void stats_node_update(struct api *a, const char *grid, const char *node, const json_t *p,
                       int64_t lease);
/* The node's agent went away: delete its node and container samples. */
void stats_node_gone(struct api *a, const char *grid, const char *node, json_t **names);
/* The latest node sample (fresh) or NULL. */
json_t *stats_node_latest(struct api *a, const char *grid, const char *node);
#define KEY_STATS "/kontena/stats/"

/* The apiserver's /metrics listener (metrics.c). */
enum status metrics_start(struct api *a, struct err *e);
void metrics_stop(struct api *a);

/* The grid object (fresh) if it exists and r's caller may see it; otherwise NULL after
 * replying 404 "Grid <name> not found" (same answer for both: grid names are not disclosed)
 * or the store error (grids.c). *rev (may be NULL) gets its mod_revision. */
json_t *grid_load(struct req *r, const char *name, int64_t *rev);

/* Server lifecycle (server.c). */
enum status api_start(struct api *a, struct err *e);
void api_stop(struct api *a);

/* Bootstrap (auth.c): create the admin user if it does not exist yet. */
enum status auth_bootstrap_admin(struct api *a, const char *password, struct err *e);
/* Resolve "Authorization: Bearer ..." into r->who. On failure fills the 403 reply. */
int auth_authenticate(struct req *r);
void principal_free(struct principal *p);

/* Permissions (auth.c). */
int perm_master_admin(const json_t *user);
int perm_user_admin(const json_t *user);
int perm_grid_admin(const json_t *user, const char *grid);
int perm_grid_access(const json_t *user, const char *grid);

/* The user as the API shows it (no password hash); fresh object (auth.c). */
json_t *user_view(const json_t *u);

/* Audit (audit.c): write r's audit record, if any. Never fails the request. */
void audit_record(struct req *r);
/* The newest `limit` entries (of one grid, or all when grid is NULL), oldest first. */
enum status audit_list(struct api *a, const char *grid, int64_t limit, json_t **out,
                       struct err *e);

/* TLS material (tlsboot.c): load the configured files or the generated certificate kept in
 * etcd (generating it on first start). Fills a->tls_*. */
enum status tls_bootstrap(struct api *a, struct err *e);

#endif
