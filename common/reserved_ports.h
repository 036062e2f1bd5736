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
    int wildcard_only;    /* 1: only a publish on every address (0.0.0.0) or on the overlay
                           * (10.81.0.0/16) clashes; 0: any publish address does */
    const char *used_by;  /* "the overlay network's VXLAN tunnel", ... */
};

/* What uses port/protocol ("tcp"/"udp") published on ip (dotted IPv4; NULL or "" mean
 * 0.0.0.0) on a node, or NULL when that publish is fine. */
const char *reserved_port_user(int port, const char *protocol, const char *ip);

/* The list itself, ending with {0, NULL, 0, NULL}: for documentation and tests. */
extern const struct reserved_port reserved_ports[];

#endif
