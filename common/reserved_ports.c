/* common/reserved_ports.c -- the node ports reserved for infrastructure (reserved_ports.h). */
#include <string.h>

#include "common/reserved_ports.h"

#include "common/banned.h"

/* 53: the node's dnsmasq binds only the node's overlay address 10.81.0.N, but Docker's
 * userland proxy binds a published port on 0.0.0.0, and Linux refuses a wildcard and a
 * specific bind of the same port in either order (udp and tcp): a publish on 0.0.0.0 would
 * break the node's DNS or fail the container. A publish on one of the node's own addresses
 * is fine (docs/internals/dns.md, "Reserved ports"). */
const struct reserved_port reserved_ports[] = {
    {4789, "udp", 0, "the overlay network's VXLAN tunnel"},
    {51820, "udp", 0, "the overlay network's WireGuard encryption"},
    {53, "udp", 1, "the node's DNS server (dnsmasq on its overlay address)"},
    {53, "tcp", 1, "the node's DNS server (dnsmasq on its overlay address)"},
    {0, NULL, 0, NULL},
};

/* 0.0.0.0 or an address of the overlay 10.81.0.0/16. */
static int wildcard_or_overlay(const char *ip)
{
    return !ip || !*ip || strcmp(ip, "0.0.0.0") == 0 || strncmp(ip, "10.81.", 6) == 0;
}

const char *reserved_port_user(int port, const char *protocol, const char *ip)
{
    for (const struct reserved_port *r = reserved_ports; r->port; r++)
        if (r->port == port && protocol && strcmp(r->protocol, protocol) == 0 &&
            (!r->wildcard_only || wildcard_or_overlay(ip)))
            return r->used_by;
    return NULL;
}
