/* agent/vxfilter.h -- admission for the overlay's VXLAN socket (--overlay only).
 *
 * The kernel's VXLAN socket (udp/4789) takes frames from any source address, and vxlan0
 * learns the inner source MAC of each at the outer source address. So every overlay node
 * keeps, in its own network namespace, the iptables chain KONTENA-VXLAN (filter table),
 * jumped to from the first rule of INPUT for udp/4789, which ACCEPTs VXLAN only from
 *   - each plain peer's underlay address (the destination of its forwarding entry), and
 *   - each encrypted peer's WireGuard address 169.254.81.<n>, and only arriving on this
 *     node's WireGuard device (wireguard-go already admitted it by key),
 * and DROPs everything else. The rules come from the same per-peer plan as the forwarding
 * entries (overlay_plan()), so a peer is admitted exactly when it has an entry.
 *
 * This module only renders text and compares it: overlay.c reads the table with
 * `iptables-save -t filter` and, only when something differs, feeds the text of
 * vxfilter_restore() to `iptables-restore -w --noflush` (one atomic transaction that touches
 * only this chain and the one jump). See docs/internals/overlay.md ("VXLAN admission").
 */
#ifndef AGENT_VXFILTER_H
#define AGENT_VXFILTER_H

#include <jansson.h>

#define VXFILTER_CHAIN "KONTENA-VXLAN"
/* The jump, as iptables-save prints it (after "-A INPUT "). */
#define VXFILTER_JUMP "-p udp -m udp --dport 4789 -j " VXFILTER_CHAIN

/* The chain's rules for plan (an overlay_plan() array: entries with a string "dst" have a
 * forwarding entry; "encrypted" says how), in the exact form iptables-save prints them, one
 * per line, each ending in '\n':
 *     -A KONTENA-VXLAN -s <dst>/32 -j ACCEPT                  (plain peer)
 *     -A KONTENA-VXLAN -s <dst>/32 -i <wg_if> -j ACCEPT       (encrypted peer)
 * sorted and unique, then always last
 *     -A KONTENA-VXLAN -j DROP
 * Entries whose dst is not an IPv4 address, and encrypted entries when wg_if is NULL or not a
 * plain interface name ([A-Za-z0-9_.-], under 16 characters), get no ACCEPT (fail closed).
 * plan and wg_if are borrowed; returns a new string (free()). */
char *vxfilter_rules(const json_t *plan, const char *wg_if);

/* What to feed `iptables-restore --noflush` so that the filter table described by save (the
 * output of `iptables-save -t filter`; NULL or "" = an empty table) ends up with exactly
 * `rules` (vxfilter_rules()) in the chain and exactly one jump, as the first rule of INPUT:
 *     *filter
 *     :KONTENA-VXLAN - [0:0]        (creates the chain, or empties it: with --noflush a
 *     <rules>                        declared user chain is flushed) -- only if it differs
 *     -D INPUT <jump>               (once per jump found, when the jump is not alone first)
 *     -I INPUT 1 <jump>
 *     COMMIT
 * Returns a new string, or NULL when the table is already right (nothing to do). */
char *vxfilter_restore(const char *save, const char *rules);

#endif
