/* apiserver/agentws.h -- the agents' WebSocket endpoint and the node records it keeps.
 *
 * kontena-apiserver accepts agents on its own port (--agent-listen, default 0.0.0.0:9293),
 * TLS with the API's certificate unless --insecure-http. docs/internals/agent.md describes
 * the protocol, the etcd keys and the threads; in short:
 *
 *   - one libwebsockets service thread owns every socket (handshake headers, ping/pong,
 *     frames, close codes);
 *   - one worker thread makes every etcd call (grid token check, node registration with a
 *     node number, liveness key, node updates), fed by a queue from the service thread and
 *     answering through another queue woken with lws_cancel_service();
 *   - one keep-alive thread keeps this server's liveness lease alive.
 *
 * Liveness: /kontena/node_status/<grid>/<node> exists while the node's socket answers pings.
 * Every status key this server writes is attached to one lease of the server's (TTL
 * --agent-lease-ttl). The key is deleted when the socket closes or a ping times out; if the
 * server dies, the lease expires and etcd deletes the keys.
 */
#ifndef APISERVER_AGENTWS_H
#define APISERVER_AGENTWS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct api;
struct etcd;

#define KEY_NODES "/kontena/nodes/"
#define KEY_NODE_STATUS "/kontena/node_status/"
#define KEY_IPAM "/kontena/ipam/"
#define NODE_NUMBER_MAX 254

struct agentws_config {
    const char *listen_addr; /* IPv4 literal */
    int port;
    int required;         /* a failure to listen is fatal (the flag was given explicitly) */
    int ping_interval_ms; /* 30000 */
    int ping_timeout_ms;  /* 5000 */
    int lease_ttl_s;      /* 10 */
};

struct agentws;

/* Start the three threads. The API's TLS material (a->tls_*) must be loaded unless
 * a->cfg.insecure_http. *out is NULL when the endpoint was not started because the
 * default port was taken and cfg->required is 0 (a warning is logged). */
enum status agentws_start(struct api *a, const struct agentws_config *cfg, struct agentws **out,
                          struct err *e) WARN_UNUSED_RESULT;
/* Close every agent socket (1001), stop the threads, revoke the lease (the nodes of this
 * server go offline at once). NULL is fine. */
void agentws_stop(struct agentws *w);

/* Ask the agent of node <grid>/<node> over its socket: sends [0, id, method, params] and
 * waits up to timeout_ms for [1, id, error, result]. Callable from any thread but the
 * endpoint's own (the API's handlers); concurrent calls are fine. *result gets the result
 * (new reference). ST_NOTFOUND "Node <n> is not connected" (w NULL: no endpoint);
 * ST_RETRY "Connection timeout (<s>s)"; an error answered by the agent {code, message}
 * maps its code: 404 ST_NOTFOUND, 409 ST_CONFLICT, 400/413/422 ST_INVALID, 503 ST_RETRY,
 * else ST_IO, with its message. */
enum status agentws_call(struct agentws *w, const char *grid, const char *node,
                         const char *method, const json_t *params, int timeout_ms,
                         json_t **result, struct err *e) WARN_UNUSED_RESULT;

/* How many agents are connected to this endpoint (0 when w is NULL). */
size_t agentws_connected(struct agentws *w);

/* Node keys (nodes.c); fresh memory. */
char *key_node(const char *grid, const char *name);
char *key_node_status(const char *grid, const char *name);
char *key_node_number(const char *grid, int number);
/* Whether name is usable as a node name: 1..64 of [A-Za-z0-9._-], not starting with '.' */
int node_name_valid(const char *name);
/* The node as the API shows it: a fresh copy with `status` (online, offline, drain,
 * created) and `connected` derived from the presence of its status key. */
json_t *node_view(const json_t *node, int online);

#endif
