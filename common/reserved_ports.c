/* common/reserved_ports.c -- the node ports reserved for infrastructure (reserved_ports.h). */
#include <string.h>

#include "common/reserved_ports.h"

#include "common/banned.h"

/* Port 53 is not here: the node's dnsmasq binds only the node's overlay address
 * (10.81.0.N, --bind-dynamic), so a service publishing 53 on the host's addresses does not
 * clash with it (docs/internals/dns.md, "Reserved ports"). */
const struct reserved_port reserved_ports[] = {
    {4789, "udp", "the overlay network's VXLAN tunnel"},
    {51820, "udp", "the overlay network's WireGuard encryption"},
    {0, NULL, NULL},
};

const char *reserved_port_user(int port, const char *protocol)
{
    for (const struct reserved_port *r = reserved_ports; r->port; r++)
        if (r->port == port && protocol && strcmp(r->protocol, protocol) == 0)
            return r->used_by;
    return NULL;
}
