/* agent/docker.h -- synchronous Docker Engine API client over the unix socket (libcurl).
 *
 * One `struct docker` is one curl easy handle on the daemon's unix socket, so consecutive
 * calls reuse one keep-alive connection. A handle is thread-compatible, not thread-safe:
 * use it from one thread at a time (give each thread its own handle). The one exception
 * is docker_cancel(), which any thread may call at any time.
 *
 * Paths are pinned to API v1.41 (Docker 20.10, Debian 12's docker.io); newer daemons still
 * serve it. Everything we parse follows that version's shapes.
 *
 * Calls are bounded: connect timeout, and a total timeout per request (docker_opts), except
 * the streams (events, logs with follow, wait without a timeout, exec output), which run
 * until the daemon ends them, the callback asks to stop, or docker_cancel() is called.
 *
 * Errors. Every call returns enum status and fills the optional `struct err` with Docker's
 * own message behind what we were doing:
 *     "cannot start container 'web-1': Address already in use"
 * HTTP status → status: 404 ST_NOTFOUND, 409 ST_CONFLICT, 400 ST_INVALID, 403 ST_CONFLICT
 * (Docker uses 403 for "Address already in use" and similar refusals), other non-2xx
 * ST_IO; socket missing, connection refused, timeout: ST_RETRY; a reply over its cap or
 * unparsable: ST_INVALID. A missing image is ST_NOTFOUND "image 'x' not found".
 *
 * Ownership: json_t results are new references (caller json_decref()s); json_t arguments
 * are borrowed; strings returned through char ** are fresh memory (caller frees).
 */
#ifndef AGENT_DOCKER_H
#define AGENT_DOCKER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DOCKER_API_VERSION "1.41"
#define DOCKER_DEFAULT_SOCKET "/var/run/docker.sock"

struct docker;

struct docker_opts {
    const char *socket_path; /* NULL = $DOCKER_HOST (unix:// only) or /var/run/docker.sock */
    long connect_timeout_ms; /* 0 = 2000 */
    long request_timeout_ms; /* 0 = 60000: ordinary calls (stop/wait/exec add their own) */
    size_t max_reply_bytes;  /* 0 = 16 MiB: cap on any buffered reply (inspect, list, ...) */
    size_t max_line_bytes;   /* 0 = 1 MiB: cap on one log line or event; longer log lines
                                are delivered in pieces flagged `partial` */
};

/* Create a handle (does not connect yet). opts may be NULL for the defaults. NULL and e
 * set only on bad options (e.g. a DOCKER_HOST that is not unix://). */
struct docker *docker_create(const struct docker_opts *opts, struct err *e);
void docker_destroy(struct docker *d); /* NULL is fine; no call may be in flight */
/* The socket path in use (borrowed). */
const char *docker_socket_path(const struct docker *d);

/* Make the call in flight on d (or, if none, the next one) return promptly: a stream
 * (events, logs follow, wait, exec) returns ST_OK, any other call ST_RETRY "cancelled".
 * Any thread, any time; async-signal-unsafe. The request clears when that call returns. */
void docker_cancel(struct docker *d);

/* --- system ---------------------------------------------------------------------------- */

/* GET /_ping: ST_OK when the daemon answers "OK". */
enum status docker_ping(struct docker *d, struct err *e) WARN_UNUSED_RESULT;
/* GET /version and /info as parsed JSON. */
enum status docker_version(struct docker *d, json_t **out, struct err *e) WARN_UNUSED_RESULT;
enum status docker_info(struct docker *d, json_t **out, struct err *e) WARN_UNUSED_RESULT;

/* What node registration needs, from /version + /info. Strings are fresh memory; labels
 * is a new reference to an object {key: value} made from Info.Labels ("k=v" strings). */
struct docker_node_info {
    char *id;             /* engine ID (not a node identity: several daemons may share it) */
    char *name;           /* hostname as Docker sees it */
    char *server_version; /* "20.10.24+dfsg1" */
    char *api_version;    /* "1.41" */
    char *os;             /* OperatingSystem, "Debian GNU/Linux 12 (bookworm)" */
    char *kernel;         /* KernelVersion */
    char *driver;         /* storage driver */
    int64_t cpus;         /* NCPU */
    int64_t memory;       /* MemTotal, bytes */
    json_t *labels;
};
enum status docker_node_info(struct docker *d, struct docker_node_info *out,
                             struct err *e) WARN_UNUSED_RESULT;
void docker_node_info_release(struct docker_node_info *ni); /* fields freed, zeroed */

/* --- images ---------------------------------------------------------------------------- */

/* GET /images/<name>/json. ST_NOTFOUND "image '<name>' not found". */
enum status docker_image_inspect(struct docker *d, const char *name, json_t **out,
                                 struct err *e) WARN_UNUSED_RESULT;

/* GET /images/json (top-level images, not intermediate layers): array of summaries {Id,
 * RepoTags, RepoDigests, Created, Size, Labels, ...}. Added for agent/imagegc.c. */
enum status docker_image_list(struct docker *d, json_t **out, struct err *e) WARN_UNUSED_RESULT;
/* DELETE /images/<name>?force=<force>&noprune=0: name is an image id, "repo:tag" or
 * "repo@digest". By a reference, the reference goes (and the image with its last one); by
 * id, every reference goes, unless they are of several repositories (ST_CONFLICT "...
 * referenced in multiple repositories" without force). An image used by a container, even a
 * stopped one, is ST_CONFLICT without force. *out (may be NULL) gets Docker's array of
 * {Untagged} / {Deleted} items. Added for agent/imagegc.c. */
enum status docker_image_remove(struct docker *d, const char *name, int force, json_t **out,
                                struct err *e) WARN_UNUSED_RESULT;

/* --- containers -------------------------------------------------------------------------- */

/* GET /containers/json?all=<all>&filters={"label":[...]}. labels: NULL-terminated list of
 * "key" or "key=value" (all must match), may be NULL. *out: array of summaries. */
enum status docker_container_list(struct docker *d, const char *const *labels, int all,
                                  json_t **out, struct err *e) WARN_UNUSED_RESULT;
/* GET /containers/<id or name>/json. */
enum status docker_container_inspect(struct docker *d, const char *id, json_t **out,
                                     struct err *e) WARN_UNUSED_RESULT;
/* POST /containers/create?name=<name> with config (the Docker create body, built by the
 * caller; see docker_config_set_network()). name may be NULL. *id_out (may be NULL) gets
 * the new container's id. An existing name is ST_CONFLICT. Note: a bad static IP is NOT
 * refused here but at start. */
enum status docker_container_create(struct docker *d, const char *name, const json_t *config,
                                    char **id_out, struct err *e) WARN_UNUSED_RESULT;
/* Attach a create body to one network with an optional static IPv4 address: sets
 * HostConfig.NetworkMode = network and NetworkingConfig.EndpointsConfig = {network:
 * {IPAMConfig: {IPv4Address: ip}}} (ip NULL: no static address). Always set NetworkMode:
 * without it inspect shows "default". */
void docker_config_set_network(json_t *config, const char *network, const char *ipv4);

/* POST /containers/<id>/start. Already running is ST_OK (HTTP 304). A failed start leaves
 * the created container behind (IP errors surface here: "Address already in use"). */
enum status docker_container_start(struct docker *d, const char *id,
                                   struct err *e) WARN_UNUSED_RESULT;
/* POST /containers/<id>/stop?t=<timeout_s>: the container's StopSignal, then SIGKILL after
 * timeout_s (< 0: Docker's default, the container's StopTimeout or 10 s). Already stopped
 * is ST_OK. The request timeout is extended by the grace period. */
enum status docker_container_stop(struct docker *d, const char *id, int timeout_s,
                                  struct err *e) WARN_UNUSED_RESULT;
/* POST /containers/<id>/kill?signal=<signal> ("SIGKILL", "HUP", "9"; NULL = SIGKILL). A
 * container that is not running is ST_CONFLICT. */
enum status docker_container_kill(struct docker *d, const char *id, const char *signal,
                                  struct err *e) WARN_UNUSED_RESULT;
/* DELETE /containers/<id>?force=<force>&v=<volumes> (v: its anonymous volumes too). */
enum status docker_container_remove(struct docker *d, const char *id, int force, int volumes,
                                    struct err *e) WARN_UNUSED_RESULT;
/* POST /containers/<id>/wait?condition=not-running: block until the container is not
 * running and give its exit code. timeout_ms <= 0: no limit (docker_cancel() ends it,
 * ST_OK with *exit_code = -1). A timeout is ST_RETRY. */
enum status docker_container_wait(struct docker *d, const char *id, long timeout_ms, int *exit_code,
                                  struct err *e) WARN_UNUSED_RESULT;
/* POST /containers/<id>/rename?name=<new_name>. A taken name is ST_CONFLICT. */
enum status docker_container_rename(struct docker *d, const char *id, const char *new_name,
                                    struct err *e) WARN_UNUSED_RESULT;
/* GET /containers/<id>/stats?stream=false: one sample with precpu_stats filled, so CPU use
 * can be computed; takes 1-2 s (the daemon samples twice). */
enum status docker_container_stats(struct docker *d, const char *id, json_t **out,
                                   struct err *e) WARN_UNUSED_RESULT;
/* The same; one_shot: stream=false&one-shot=true, answered at once with precpu_stats
 * empty (the caller computes CPU use from two of its own samples). */
enum status docker_container_stats_sample(struct docker *d, const char *id, int one_shot,
                                          json_t **out, struct err *e) WARN_UNUSED_RESULT;

/* --- logs ---------------------------------------------------------------------------------- */

enum docker_stream { DOCKER_STDIN = 0, DOCKER_STDOUT = 1, DOCKER_STDERR = 2 };

/* One line of output, without its newline. Borrowed for the callback's duration. */
struct docker_log_line {
    enum docker_stream stream;
    const char *text; /* NUL-terminated; may contain other NULs, use len */
    size_t len;
    int64_t time_ns;  /* Docker's timestamp of the line's first piece, ns since the epoch;
                         0 if none */
    const char *time; /* the same as Docker wrote it (RFC 3339, ns), "" if none */
    int partial;      /* 1: cut at max_line_bytes or the stream ended without a newline */
};
/* Return 0 to go on, non-zero to stop the stream (the call then returns ST_OK). */
typedef int (*docker_log_cb)(void *arg, const struct docker_log_line *l);

struct docker_logs_opts {
    int follow;  /* keep streaming new lines until the container stops or cancel */
    int stdout_; /* both 0 means both */
    int stderr_;
    long tail;     /* last N lines only; 0 = all (use follow with since for "none") */
    int64_t since; /* unix seconds, 0 = from the beginning */
    int tty;       /* the container has Config.Tty: no frame headers, all is stdout */
};

/* GET /containers/<id>/logs. Lines of one stream arrive in order; Docker's 8-byte frame
 * headers are removed (frames split across reads and lines split across frames are put
 * back together: the json-file driver cuts lines at 16 KiB). Ends when the daemon ends
 * the stream (at once without follow; when the container stops with it). */
enum status docker_container_logs(struct docker *d, const char *id,
                                  const struct docker_logs_opts *o, docker_log_cb cb, void *arg,
                                  struct err *e) WARN_UNUSED_RESULT;

/* --- events -------------------------------------------------------------------------------- */

/* Borrowed for the callback's duration. */
struct docker_event {
    const char *type;   /* "container", "network", "volume", "image", ... */
    const char *action; /* "start", "die", "kill", "exec_create: sh -c ..." (match prefixes) */
    const char *id;     /* Actor.ID */
    const json_t *attributes; /* Actor.Attributes: labels mixed with name, image, exitCode */
    int64_t time_ns;          /* timeNano */
    const json_t *raw;        /* the whole event */
};
typedef int (*docker_event_cb)(void *arg, const struct docker_event *ev);

/* GET /events?filters=<filters>&since=<since>&until=<until>. filters: a Docker filters
 * object, e.g. {"type":["container"],"label":["io.kontena.grid=g"]}, borrowed, may be
 * NULL. since/until: unix seconds, 0 = none (since replays the daemon's recent events, use
 * it to resume after a reconnect). Blocks until the callback returns non-zero,
 * docker_cancel(), `until` passes, or the daemon closes the stream: ST_OK in those cases.
 * on_connected (may be NULL) is called once the daemon has accepted the subscription. */
enum status docker_events(struct docker *d, const json_t *filters, int64_t since, int64_t until,
                          void (*on_connected)(void *arg), docker_event_cb cb, void *arg,
                          struct err *e) WARN_UNUSED_RESULT;

/* --- exec ---------------------------------------------------------------------------------- */

struct docker_exec_opts {
    const char *const *cmd; /* NULL-terminated argv, required */
    const char *const *env; /* "K=V", NULL-terminated, may be NULL */
    const char *user;       /* may be NULL */
    const char *workdir;    /* may be NULL */
    long timeout_ms;        /* 0 = request_timeout_ms; < 0 = none */
    size_t max_output;      /* cap per stream, 0 = 4 MiB; over it: ST_INVALID */
};
struct docker_exec_result {
    int exit_code; /* 126: the command could not be run (missing binary, ...) */
    char *out;     /* stdout, fresh NUL-terminated memory (may hold NULs: out_len) */
    size_t out_len;
    char *err; /* stderr; Docker's own exec errors ("OCI runtime exec failed: ...")
                  arrive on stdout */
    size_t err_len;
};
/* Create an exec instance, start it attached, read its multiplexed output until the
 * daemon closes the (hijacked) connection, then inspect it for the exit code. A container
 * that is not running is ST_CONFLICT. */
enum status docker_exec(struct docker *d, const char *id, const struct docker_exec_opts *o,
                        struct docker_exec_result *out, struct err *e) WARN_UNUSED_RESULT;
void docker_exec_result_release(struct docker_exec_result *r);

/* --- networks and volumes ------------------------------------------------------------------ */

/* GET /networks/<name or id>. */
enum status docker_network_inspect(struct docker *d, const char *name, json_t **out,
                                   struct err *e) WARN_UNUSED_RESULT;
/* POST /networks/create with config ({Name, Driver, Options, IPAM: {Config: [{Subnet,
 * Gateway}]}, Labels}); CheckDuplicate is set, so an existing name is ST_CONFLICT. *id_out
 * may be NULL. */
enum status docker_network_create(struct docker *d, const json_t *config, char **id_out,
                                  struct err *e) WARN_UNUSED_RESULT;
/* DELETE /networks/<name>. Note: it also deletes a Linux bridge we created beforehand. */
enum status docker_network_remove(struct docker *d, const char *name,
                                  struct err *e) WARN_UNUSED_RESULT;
/* POST /networks/<name>/connect {Container, EndpointConfig: {IPAMConfig: {IPv4Address}}};
 * ipv4 may be NULL. */
enum status docker_network_connect(struct docker *d, const char *name, const char *container,
                                   const char *ipv4, struct err *e) WARN_UNUSED_RESULT;
enum status docker_network_disconnect(struct docker *d, const char *name, const char *container,
                                      int force, struct err *e) WARN_UNUSED_RESULT;

/* POST /volumes/create with config ({Name, Driver, DriverOpts, Labels}); *out (may be NULL)
 * gets the volume. Creating an existing local volume is ST_OK (Docker's behaviour). */
enum status docker_volume_create(struct docker *d, const json_t *config, json_t **out,
                                 struct err *e) WARN_UNUSED_RESULT;
enum status docker_volume_inspect(struct docker *d, const char *name, json_t **out,
                                  struct err *e) WARN_UNUSED_RESULT;
/* DELETE /volumes/<name>?force=<force>. A volume in use is ST_CONFLICT. */
enum status docker_volume_remove(struct docker *d, const char *name, int force,
                                 struct err *e) WARN_UNUSED_RESULT;

/* --- frame demultiplexer (exposed for the agent's async transport and for tests) ----- */

/* Splits Docker's multiplexed stream ([stream, 0, 0, 0, uint32 BE length] + payload) into
 * lines per stream. Feed it bytes in any pieces. With timestamps, every frame starts with
 * "<RFC 3339 ns> " (logs?timestamps=1), which is stripped and parsed. raw: no headers
 * (Tty containers); everything is stdout. Values are embedded: docker_demux_init() /
 * docker_demux_release(). */
struct docker_demux {
    int raw, timestamps;
    size_t max_line;
    docker_log_cb cb;
    void *arg;
    /* private */
    int (*bytes)(void *arg, int stream, const char *p, size_t n); /* exec: raw bytes */
    void *bytes_arg;
    unsigned char hdr[8];
    size_t hdr_len;
    uint64_t left; /* payload bytes left in the current frame */
    int stream;    /* of the current frame */
    int in_ts;     /* collecting the current frame's timestamp */
    char ts[48];   /* timestamp being collected */
    size_t ts_len;
    struct docker_demux_line {
        char *ptr;
        size_t len, alloc;
        char time[48];
    } line[3];
    int stopped;
};
void docker_demux_init(struct docker_demux *x, int raw, int timestamps, size_t max_line,
                       docker_log_cb cb, void *arg);
/* ST_OK; ST_INVALID on a malformed header (stream byte > 2); stops quietly (ST_OK, and
 * docker_demux_stopped() is 1) when the callback returned non-zero. */
enum status docker_demux_feed(struct docker_demux *x, const void *data, size_t len,
                              struct err *e) WARN_UNUSED_RESULT;
/* Deliver what is left (lines without a final newline, flagged partial). */
void docker_demux_finish(struct docker_demux *x);
int docker_demux_stopped(const struct docker_demux *x);
void docker_demux_release(struct docker_demux *x);

/* Parse "2026-11-23T01:17:36.612324683Z" (or with a +hh:mm offset) to ns since the epoch;
 * -1 if malformed. */
int64_t docker_parse_time_ns(const char *s, size_t len);

#endif
