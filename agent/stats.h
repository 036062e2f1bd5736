/* agent/stats.h -- container and node statistics for the master (docs/internals/agent-stats.md).
 *
 * One thread with its own Docker handle. Every interval it samples each running container
 * labelled io.kontena.node=<node> through the Engine API (stats?stream=false&one-shot=true,
 * answered at once; CPU % and network rates come from two of our own consecutive samples)
 * and the node from /proc/stat, /proc/meminfo, /proc/loadavg, /proc/net/dev and statvfs of
 * Docker's root directory, and sends two notifications (contract of issue 8):
 *
 *   [2, "/containers/stats", [{"node", "containers": [{id, name, stack, service, instance,
 *       cpu: {usage_pct, num_cores}, memory: {usage, limit}, network: {rx_bytes, tx_bytes,
 *       rx_bytes_per_second, tx_bytes_per_second}, blkio: {read_bytes, write_bytes}, time}]}]]
 *   [2, "/nodes/stats", [{"node", cpu: {num_cores, user, system, nice, idle, used_pct},
 *       memory: {total, free, used, active, inactive, cached, buffers}, load: {1m, 5m, 15m},
 *       filesystem: [{name, total, used, free, available}], network: {internal, external},
 *       time}]]
 *
 * The container list is complete (every managed running container of the node), so the
 * master deletes the stats of containers that are not in it.
 */
#ifndef AGENT_STATS_H
#define AGENT_STATS_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"

struct stats_opts {
    const char *docker_socket; /* NULL: /var/run/docker.sock */
    const char *node;          /* required */
    const char *grid;          /* containers labelled io.kontena.grid=<grid>; NULL: none
                                  until stats_set_grid() (node samples go out anyway) */
    int interval_ms;           /* 0 = 60000 */
    const char *fs_path;       /* statvfs of this (Docker's root dir); NULL = "/" */
    const char *proc_root;     /* NULL = "/proc" (tests) */
    /* Delivers one notification (borrowed): agent_ws_send. Any thread. */
    void (*send)(void *arg, const json_t *msg);
    void *send_arg;
};

struct stats;

/* Start the thread; the first samples go out at once (with CPU % 0 and rates 0: there is
 * nothing to compare with yet), then every interval. NULL and e set on failure. */
struct stats *stats_start(const struct stats_opts *o, struct err *e);
void stats_stop(struct stats *s); /* stop, join, free; NULL is fine */
/* The node's grid (from /agent/node_info); copied, any thread. */
void stats_set_grid(struct stats *s, const char *grid);

struct stats_counters {
    uint64_t container_samples, node_samples, errors, sends;
};
void stats_counters(struct stats *s, struct stats_counters *out);

/* --- exposed for tests ------------------------------------------------------------------ */

/* Previous sample of one container (for CPU % and rates). */
struct stats_prev {
    uint64_t cpu_total, cpu_system, rx, tx;
    int64_t at_ms;
    int valid;
};
/* The contract's container item from Docker's stats reply `raw` (borrowed) and the container
 * summary `summary` (borrowed: Id, Names, Labels); updates *prev. New reference. */
json_t *stats_container_item(const json_t *summary, const json_t *raw, struct stats_prev *prev,
                             int64_t now_ms);

/* Previous node counters. */
struct stats_node_prev {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
    uint64_t rx[2], tx[2];
    int64_t at_ms;
    int valid;
};
/* The node sample (without "node") from <proc_root>/{stat,meminfo,loadavg,net/dev} and
 * statvfs(fs_path); updates *prev. New reference; fields that cannot be read are left out. */
json_t *stats_node_sample(const char *proc_root, const char *fs_path, struct stats_node_prev *prev,
                          int64_t now_ms);

#endif
