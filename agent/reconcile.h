/* agent/reconcile.h -- make the local Docker Engine run what etcd says this node must run.
 *
 * Desired state: /kontena/instances/<grid>/<node>/<container name> (written by the
 * scheduler); observed state: /kontena/observed/<grid>/<node>/<container name> (written only
 * here). Shapes and rules: docs/internals/agent.md, "Reconciliation".
 *
 * Threads, all owned by the reconciler:
 *   - watch: lists the node's instance prefix, then watches it from the listing's revision
 *     (re-lists after ST_COMPACTED); keeps the desired map;
 *   - events: Docker's event stream filtered by this grid's and node's labels; every
 *     container event (and every reconnect to dockerd) wakes the worker;
 *   - worker: level-triggered sync of every instance against Docker, on a wake-up and every
 *     resync interval; the only thread that changes containers or writes observed keys.
 * Nothing is touched before the first listing succeeded, so an agent that starts while etcd
 * is away leaves the running containers alone.
 *
 * Only containers carrying io.kontena.grid=<grid> and io.kontena.node=<node> are ever
 * listed, changed or removed: several agents may share one dockerd.
 */
#ifndef AGENT_RECONCILE_H
#define AGENT_RECONCILE_H

#include "agent/wg.h"
#include "common/err.h"

#define RECONCILE_INSTANCES_PREFIX "/kontena/instances/"
#define RECONCILE_OBSERVED_PREFIX "/kontena/observed/"

struct reconciler;
struct dns;

struct reconcile_opts {
    const char *etcd_endpoints;     /* comma-separated, required */
    const char *docker_socket;      /* NULL = /var/run/docker.sock */
    const char *grid;               /* required; copied */
    const char *node;               /* required; copied */
    struct dns *dns;                /* --overlay: containers on the overlay get this DNS
                                     * server and search domain (agent/dns.h); NULL = none */
    int resync_interval_ms;         /* 0 = 30000 */
    int lb_drain_ms;                /* wait before stopping a container labelled
                                     * io.kontena.load_balancer.name (0: none) */
    const char *docker_name_prefix; /* put before every Docker container name, so several
                                     * agents can share one dockerd; NULL = "" */
    int overlay;                 /* --overlay: keep the overlay (agent/overlay.h) and put containers
                                  * on network "kontena" with their overlay_cidr address */
    const char *private_ip;      /* the overlay's underlay address; NULL = the node key's */
    const struct wg_key *wg_key; /* --overlay: this node's WireGuard keys (agent/wg.h) */
    const char *wg_ifname;       /* --overlay: its WireGuard device name */
};

/* Start the threads. Returns NULL with e set on bad options (nothing is contacted yet:
 * etcd or Docker being away is retried by the threads, not an error here). */
struct reconciler *reconcile_start(const struct reconcile_opts *o, struct err *e);
/* Stop and join the threads, free. Containers are left as they are. NULL is fine. */
void reconcile_stop(struct reconciler *r);

#endif
