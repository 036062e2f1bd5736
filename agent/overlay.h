/* agent/overlay.h -- the node's side of the grid's overlay network (only with --overlay).
 *
 * Per host, kept by overlay_sync() (idempotent; the reconciler's worker runs it at start,
 * on every resync and whenever a node or node_status key of the grid, or the grid key,
 * changes):
 *   - Docker bridge network `kontena` on Linux bridge `kontena0`: subnet 10.81.0.0/16,
 *     gateway 10.81.0.<node_number> (the node's own overlay address), MTU 1450 when the
 *     node's private address is in the grid's trusted_subnets, else 1370 (room for
 *     WireGuard);
 *   - `vxlan0`: VNI 42, dstport 4789, no fixed local address or device (routing picks them
 *     per destination), the same MTU, enslaved to kontena0 and up (re-attached after Docker
 *     re-made the bridge: `docker network rm` deletes kontena0 and leaves vxlan0 unattached);
 *   - each online peer node's underlay address: its private ip when both nodes carry the
 *     same `region=` label (default "default"), else its public ip. A pair runs plain when
 *     both ends' addresses are in the grid's trusted_subnets, else over WireGuard;
 *   - one all-zero FDB entry on vxlan0 per peer (head-end replication): at its underlay
 *     address for a plain pair, at its WireGuard address 169.254.81.<node_number> for an
 *     encrypted one (none until the peer has published its key: never plain instead);
 *     entries of departed peers are deleted;
 *   - with any encrypted pair: the WireGuard device (agent/wg.h: wireguard-go, address
 *     169.254.81.<node_number>/24, MTU 1420, port 51820, this node's key) with exactly the
 *     encrypted peers that have published `wireguard_public_key` in their node key;
 *   - VXLAN admission (agent/vxfilter.h): the iptables chain KONTENA-VXLAN, first in INPUT
 *     for udp/4789, accepting only the forwarding entries' addresses (an encrypted peer's
 *     only on the WireGuard device) and dropping the rest; written first in the pass, only
 *     when it differs. If iptables fails, that is logged and the overlay runs on without it.
 * Links are changed with iproute2 (`ip`, `bridge`), the chain with `iptables-save` and
 * `iptables-restore`, run as child processes whose stderr is captured into the error; see
 * docs/internals/overlay.md.
 *
 * Threads: one struct overlay is used by one thread at a time (the reconciler's worker);
 * overlay_announce() may be called from any thread.
 */
#ifndef AGENT_OVERLAY_H
#define AGENT_OVERLAY_H

#include <jansson.h>
#include <sys/types.h>

#include "agent/docker.h"
#include "agent/wg.h"
#include "common/err.h"
#include "etcdclient/etcd.h"

#define OVERLAY_NETWORK "kontena"
#define OVERLAY_BRIDGE "kontena0"
#define OVERLAY_VXLAN "vxlan0"
#define OVERLAY_VNI 42
#define OVERLAY_PORT 4789
#define OVERLAY_MTU 1450           /* trusted node: plain VXLAN on a 1500 underlay */
#define OVERLAY_MTU_ENCRYPTED 1370 /* untrusted node: VXLAN inside WireGuard (1420 - 50) */
#define OVERLAY_WG_MTU 1420
#define OVERLAY_WG_PREFIX "169.254.81." /* + node_number: the node's WireGuard address */
#define OVERLAY_SUBNET "10.81.0.0/16"
#define OVERLAY_NODE_PREFIX "10.81.0." /* + node_number: the node's overlay address */

struct overlay;

struct overlay_opts {
    const char *grid;            /* required */
    const char *node;            /* required: the node's name (its /kontena/nodes key) */
    const char *private_ip;      /* the underlay address; NULL = the node key's private_ip */
    const struct wg_key *wg_key; /* required: this node's WireGuard keys (copied) */
    const char *wg_ifname;       /* required: its device name (wg_ifname()) */
};

struct overlay *overlay_create(const struct overlay_opts *o, struct err *e);
void overlay_destroy(struct overlay *ov); /* NULL is fine; the links are left as they are */

/* One reconcile pass (see above). etcd and d are borrowed. ST_RETRY while the node's key
 * (its node_number) is not in etcd yet; other failures say which step failed and why. */
enum status overlay_sync(struct overlay *ov, struct etcd *etcd, struct docker *d,
                         struct err *e) WARN_UNUSED_RESULT;

/* The peer plan for node `self` (see above): nodes maps node name -> node key value, online
 * maps node name -> anything, trusted is the grid's trusted_subnets (NULL: none). A new array,
 * in the order of nodes, of {node, ip (underlay), number|null, key (base64)|null, encrypted,
 * dst (FDB destination)|null}; offline nodes, self and nodes without an address are left
 * out. */
json_t *overlay_plan(const char *self, const json_t *nodes, const json_t *online,
                     const json_t *trusted);

/* Whether ipv4 is in one of the CIDRs of subnets (a JSON array of strings). */
int overlay_in_subnets(const char *ipv4, const json_t *subnets);

/* The peers' underlay addresses for node `self`: nodes maps node name -> node key value,
 * online maps node name -> anything (its node_status key exists). Returns a new sorted
 * array of unique address strings; nodes that are offline, self, or have no usable address
 * are left out. */
json_t *overlay_peers(const char *self, const json_t *nodes, const json_t *online);

/* The address of `c` (a container inspect) on the kontena network, or NULL (borrowed). */
const char *overlay_container_ip(const json_t *c);

/* Send one gratuitous ARP for ipv4 out of ifname ("eth0") inside the network namespace of
 * process pid (a container's State.Pid), so peers re-learn where the address now lives. */
enum status overlay_announce(pid_t pid, const char *ifname, const char *ipv4,
                             struct err *e) WARN_UNUSED_RESULT;

#endif
