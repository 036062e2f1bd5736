/* agent/metrics.h -- the agent's Prometheus /metrics listener (libmicrohttpd's own thread).
 *
 * kontena-agent --metrics-listen ADDR:PORT (env KONTENA_AGENT_METRICS; off when not given).
 * Series (docs/internals/agent-logs.md, agent-stats.md): kontena_agent_log_* (lines read,
 * skipped, sent, acknowledged, cut; batches; bytes; pauses; follows; queued lines and
 * followed containers as gauges), kontena_agent_stats_* (samples, errors),
 * kontena_agent_ws_links_total (registered connections), process resident memory.
 */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include "common/err.h"

struct logs;
struct stats;
struct agent_metrics;

/* addr_port: "127.0.0.1:9310". logs and stats may be NULL (their series are then absent);
 * both are borrowed and must outlive the listener. */
struct agent_metrics *agent_metrics_start(const char *addr_port, struct logs *l, struct stats *s,
                                          struct err *e);
void agent_metrics_stop(struct agent_metrics *m); /* NULL is fine */
/* The page (fresh memory), exposed for tests. */
char *agent_metrics_render(struct logs *l, struct stats *s);

#endif
