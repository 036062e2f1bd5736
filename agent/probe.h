/* agent/probe.h -- health checks and wait_for_port of the containers the agent runs.
 *
 * The reconciler's worker tells the prober, on every pass, what each running container must
 * be checked for (probe_update) and forgets the ones that stopped or went away
 * (probe_remove); it reads the results back into the observed value (probe_fill). The
 * checks themselves run on the prober's own threads (one per probed container), so a slow
 * or hanging target never blocks the worker. Rules (docs/internals/agent.md, "Health
 * checks"):
 *   - spec.health_check {protocol http|tcp, port, uri, timeout, interval, initial_delay}
 *     (seconds; defaults uri "/", timeout 10, interval 60, initial_delay 10): sleep
 *     initial_delay, then check every interval. http: GET <uri> with a timeout, healthy iff
 *     the status is 200-399, redirects are not followed; tcp: healthy iff connect succeeds.
 *     Result: health {status: healthy|unhealthy, status_code (HTTP status, "open"/"closed"
 *     for tcp, null on a connection error), checked_at, failures (consecutive unhealthy)};
 *   - spec.wait_for_port N: ready false until a TCP connect to <ip>:N succeeds (tried every
 *     second), true after;
 *   - a container start (a different container id or StartedAt) resets both.
 *
 * Everything here is thread-safe; the notify callback is called from a probe thread with no
 * prober lock held.
 */
#ifndef AGENT_PROBE_H
#define AGENT_PROBE_H

#include <jansson.h>

#include "common/err.h"

struct prober;

/* notify(arg) is called after a result of some container changed (see probe_take_changed). */
struct prober *probe_create(void (*notify)(void *arg), void *arg);
/* Stop and join every probe thread, free. NULL is fine. */
void probe_destroy(struct prober *p);

/* Container `name` runs as container_id since started_at, reachable at ip ("" when it has
 * none); health_check (borrowed, may be NULL or inactive) and wait_for_port (0 = none) come
 * from its spec. Starts, keeps or restarts its probes accordingly. */
void probe_update(struct prober *p, const char *name, const char *container_id,
                  const char *started_at, const char *ip, const json_t *health_check,
                  int wait_for_port);
/* Stop probing name (no-op if not probed): its results are gone. */
void probe_remove(struct prober *p, const char *name);
/* Set obs's "health" (object, or null before the first check) and "ready" (only with
 * wait_for_port) from name's results; leaves obs alone when name is not probed. */
void probe_fill(struct prober *p, const char *name, json_t *obs);
/* Names whose results changed since the last call, as a new JSON array. */
json_t *probe_take_changed(struct prober *p);

/* One check, on the caller's thread, bounded by timeout_ms. stop (may be NULL) is polled
 * every 100 ms: a non-zero value abandons the check (ST_RETRY).
 * probe_http: ST_OK with *status_code set when an HTTP status line arrived (whatever the
 * code), else ST_IO with the reason. probe_tcp: ST_OK when connect succeeded. */
enum status probe_http(const char *ip, int port, const char *uri, int timeout_ms,
                       const volatile int *stop, int *status_code, struct err *e);
enum status probe_tcp(const char *ip, int port, int timeout_ms, const volatile int *stop,
                      struct err *e);

#endif
