/* common/reserved_ports.h -- node ports that the platform's own infrastructure uses on every
 * node, so a service may not publish them (issue 6, point 4). One list, used by the API
 * server (apiserver/svcspec.c: 422) and by the CLI's stack file reader (kontena stack
 * validate). docs/internals/dns.md explains the choice of ports.
 */
#ifndef COMMON_RESERVED_PORTS_H
#define COMMON_RESERVED_PORTS_H

struct reserved_port {
    int port;
    const char *protocol; /* "tcp" or "udp" */
    const char *used_by;  /* "the overlay's VXLAN tunnel", ... */
};

/* What uses port/protocol ("tcp"/"udp") on a node, or NULL when the port is free to
 * publish. The publish address does not matter (the infrastructure binds every address or
 * the underlay address). */
const char *reserved_port_user(int port, const char *protocol);

/* The list itself, ending with {0, NULL, NULL}: for documentation and tests. */
extern const struct reserved_port reserved_ports[];

#endif
