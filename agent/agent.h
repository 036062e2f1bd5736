/* agent/agent.h -- kontena-agent's configuration, shared by main.c and the modules.
 *
 * main.c fills it from flags and the environment (KONTENA_URI, KONTENA_TOKEN, ...);
 * docs/internals/agent.md describes the agent. Every string is borrowed from argv/environ
 * or owned by main for the whole run.
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <jansson.h>

struct agent_config {
    /* The master's agents' endpoint, parsed from KONTENA_URI (ws://, wss://, http://,
     * https://; http(s) are rewritten to ws(s)). */
    int tls;
    char *host;
    int port;
    char *path;

    const char *ca_file; /* verify the master's certificate against this PEM */
    char *pin_sha256;    /* or against this SHA-256 fingerprint (lower-case hex) */
    int insecure;        /* no verification at all (development only) */

    const char *grid_token; /* Kontena-Grid-Token */
    const char *node_id;
    const char *node_name;
    char *labels; /* comma-joined */

    int ping_interval_ms; /* 30000 */
    int ping_timeout_ms;  /* 5000 */
    int backoff_max_ms;   /* 90000 */

    json_t *node_info; /* the /nodes/update info object (owned by main) */

    /* Called on the WebSocket thread with each /agent/node_info's node object (borrowed;
     * node.grid.name is the grid). May be NULL. Must not block. */
    void (*on_node_info)(void *arg, const json_t *node);
    void *on_node_info_arg;

    /* Called on the WebSocket thread with each request [0, id, "/method", [params]] from
     * the master (borrowed: incref to keep). The answer goes back with agent_ws_send().
     * Must not block. NULL: requests are answered 501. */
    void (*on_request)(void *arg, const json_t *msg);
    void *on_request_arg;

    /* Called on the WebSocket thread with up = 1 when a connection is registered (the
     * first /agent/node_info after connecting: the master accepts requests from then on)
     * and with up = 0 when that connection has closed (after every pending
     * agent_ws_call_text() callback has been failed). May be NULL. Must not block. */
    void (*on_link)(void *arg, int up);
    void *on_link_arg;
};

#endif
