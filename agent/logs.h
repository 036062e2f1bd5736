/* agent/logs.h -- follows the stdout/stderr of every container this agent manages and
 * streams the lines to the master in acknowledged batches (docs/internals/agent-logs.md).
 *
 * Two threads. The watcher lists the node's containers (label io.kontena.node=<node>),
 * inspects them and follows Docker's events (start, destroy), with its own blocking Docker
 * handle. The follower runs one curl multi handle with one `GET /containers/<id>/logs?
 * follow=1&timestamps=1&since=...` transfer per running container, demultiplexes the frames
 * (docker_demux) and writes each line straight into the JSON text of the batch being built.
 *
 * Protocol (the contract of issue 8, reference agent-protocol.md §7): once the connection is
 * registered (logs_link(l, 1)) the follower asks `/containers/log_cursor` for the containers
 * it is about to follow and follows each from its cursor (Docker's since=, lines whose time
 * is <= the cursor dropped), or, for a container the master never saw, from its current
 * run's start but at most the last `tail` lines. Batches go out as `/containers/log_batch`
 * requests, at most `max_inflight` unanswered. When the connection drops every follow is
 * stopped and everything unacknowledged is forgotten: Docker's json-file log is the buffer,
 * and the next connection resumes from the master's cursors. So no line is lost or sent
 * twice under normal operation.
 *
 * Back-pressure: when a sealed batch waits for a free in-flight slot, the transfers pause
 * (CURL_WRITEFUNC_PAUSE) instead of queueing more; memory stays bounded by
 * (max_inflight + 2) batches whatever the output rate.
 */
#ifndef AGENT_LOGS_H
#define AGENT_LOGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* How the follower talks to the master: agent_ws_call_text() in the agent, a recording sink
 * in tests. call() must not block; reply() must be called exactly once per call, from any
 * thread (also from inside call()). error/result are borrowed. */
typedef void (*logs_reply_fn)(void *cbarg, const json_t *error, const json_t *result);
struct logs_transport {
    void (*call)(void *arg, const char *method, const char *params, size_t len,
                 logs_reply_fn reply, void *cbarg);
    void *arg;
};

struct logs_opts {
    const char *docker_socket; /* NULL: /var/run/docker.sock */
    const char *node;          /* required: selects io.kontena.node=<node>, item "node" */
    const char *grid;          /* io.kontena.grid=<grid>; NULL: wait for logs_set_grid() */
    struct logs_transport transport;
    size_t batch_items;  /* 0 = 1000 */
    size_t batch_bytes;  /* 0 = 512 KiB */
    unsigned inflight;   /* 0 = 4 */
    size_t max_line;     /* 0 = 16 KiB: longer lines are cut into pieces */
    long tail;           /* 0 = 1000: lines of a container the master has no cursor for */
};

struct logs;

/* Start both threads (they do nothing until logs_link(l, 1)). opts' strings are copied.
 * NULL and e set when Docker's socket cannot be used. */
struct logs *logs_start(const struct logs_opts *o, struct err *e);
/* The node's grid (from /agent/node_info): only containers labelled io.kontena.grid=<grid>
 * are followed (several agents of different grids may share a dockerd under one node name).
 * Copied; any thread. */
void logs_set_grid(struct logs *l, const char *grid);
/* The connection to the master is registered (up = 1) or gone (up = 0). Any thread, never
 * blocks (agent_config.on_link). */
void logs_link(struct logs *l, int up);
/* Stop and join both threads; the object stays valid for logs_link() and late replies
 * (they are dropped). NULL is fine. */
void logs_stop(struct logs *l);
void logs_free(struct logs *l); /* after logs_stop(), once nothing calls in any more */

/* Counters for /metrics (monotonic unless said otherwise). */
struct logs_counters {
    uint64_t lines_read;    /* lines taken from Docker (before the cursor filter) */
    uint64_t lines_skipped; /* at or before a cursor: already stored by the master */
    uint64_t lines_sent;    /* in batches handed to the transport */
    uint64_t lines_acked;   /* in batches the master acknowledged */
    uint64_t lines_cut;     /* pieces of lines longer than max_line */
    uint64_t batches_sent, batches_acked, batches_failed;
    uint64_t bytes_read;    /* log stream bytes from Docker */
    uint64_t links;         /* registered connections seen */
    uint64_t pauses;        /* times the transfers were paused for back-pressure */
    uint64_t follows_started, follow_errors;
    int64_t queued_lines;   /* gauge: lines read, not yet acknowledged */
    int64_t followed;       /* gauge: containers being followed */
};
void logs_counters(struct logs *l, struct logs_counters *out);

/* --- exposed for tests ---------------------------------------------------------------- */

/* Append s (n bytes) to b as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, every invalid UTF-8 byte replaced by U+FFFD. Never fails (b has no
 * cap). */
struct buf;
void logs_json_escape(struct buf *b, const char *s, size_t n);

#endif
