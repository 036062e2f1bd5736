/* agent/rpc.h -- the agent's answers to the master's requests over the WebSocket
 * (/containers/list, /containers/inspect, /containers/logs, /containers/exec): one worker
 * thread with its own Docker handle, so Docker calls never run on the lws thread and pings
 * keep flowing. Only containers labelled io.kontena.node=<this node> are visible; others
 * are 404. docs/internals/agent.md ("Container commands").
 */
#ifndef AGENT_RPC_H
#define AGENT_RPC_H

#include <jansson.h>

#include "common/err.h"

struct agent_rpc;

/* send(send_arg, msg) delivers a response (agent_ws_send). docker_name_prefix (NULL = "")
 * is put before every container name given in a request (kontena-agent
 * --docker-name-prefix). NULL and e set on failure. */
struct agent_rpc *agent_rpc_start(const char *docker_socket, const char *docker_name_prefix,
                                  const char *node, void (*send)(void *arg, const json_t *msg), void *send_arg,
                                  struct err *e);
/* Queue a request [0, id, method, params] (borrowed); any thread, never blocks. After
 * agent_rpc_stop() requests are dropped. NULL r is fine. */
void agent_rpc_submit(struct agent_rpc *r, const json_t *msg);
/* Cancel the call in flight and join the worker; the object stays valid for submit. */
void agent_rpc_stop(struct agent_rpc *r);
void agent_rpc_free(struct agent_rpc *r); /* after stop, once nothing submits any more */

/* The answer to one request, synchronously (the worker's body; exposed for tests). */
json_t *agent_rpc_handle(struct agent_rpc *r, const json_t *msg);

#endif
