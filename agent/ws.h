/* agent/ws.h -- the agent's WebSocket to the master: one libwebsockets client thread that
 * connects, authenticates with the handshake headers, answers and sends pings, reconnects
 * with full-jitter backoff, and stops for good on the close codes that say retrying is
 * pointless (4001 invalid grid token, 4010 incompatible version, 4040 node removed,
 * 4041 superseded).
 *
 * Threading: agent_ws_start() starts the thread; agent_ws_stop() may be called from any
 * thread (it wakes the service thread with lws_cancel_service()). When the connection ends
 * for good, the thread sends SIGUSR1 to the process so that a main blocked in sigwait()
 * wakes up.
 */
#ifndef AGENT_WS_H
#define AGENT_WS_H

#include "agent/agent.h"
#include "common/err.h"

struct agent_ws;

/* cfg is borrowed for the life of the object. */
enum status agent_ws_start(const struct agent_config *cfg, struct agent_ws **out,
                           struct err *e) WARN_UNUSED_RESULT;
/* Close the socket (1001), stop and join the thread, free. Returns the exit status the
 * agent should end with: 0 after a requested stop, 1 after a fatal close code (its
 * message was logged). NULL is fine (returns 0). */
int agent_ws_stop(struct agent_ws *w);
/* Queue a message (e.g. a response [1, id, error, result]) for the master; any thread. It is
 * dropped when the socket is not connected (the master fails the call when the socket
 * closes). */
void agent_ws_send(struct agent_ws *w, const json_t *msg);

/* The answer to an agent_ws_call_text(): error is the master's error object or NULL,
 * result its result (both borrowed). When no answer can come (not registered, the
 * connection closed, the agent stops) error is {"code": 503, "message": "..."} and result
 * NULL. Runs on the WebSocket thread (must not block), or on the thread calling
 * agent_ws_stop() for calls still pending then. */
typedef void (*agent_ws_reply_cb)(void *arg, const json_t *error, const json_t *result);
/* Send the request [0, <new id>, method, <params>] to the master; params is the JSON text of
 * the params array (len bytes, copied; the caller vouches it is valid JSON in UTF-8). cb is
 * called exactly once. Any thread, never blocks. */
void agent_ws_call_text(struct agent_ws *w, const char *method, const char *params, size_t len,
                        agent_ws_reply_cb cb, void *arg);

#endif
