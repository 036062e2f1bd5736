/* agent/dns.h -- the node's DNS server for service discovery (only with --overlay).
 *
 * One dnsmasq per node, listening only on the node's overlay address 10.81.0.<node_number>
 * (--bind-dynamic: it starts before the address exists and binds when it appears), serving
 * the grid's names from a directory of hosts files (--hostsdir, re-read by dnsmasq on
 * inotify), answering NXDOMAIN for unknown names under <grid>.kontena.local (--local) and
 * forwarding every other name to the host's resolvers (/etc/resolv.conf).
 *
 * The names, one hosts file per stack ("<stack>.hosts"; stack-less services: "null.hosts"),
 * for every instance whose observed state is "running" and whose instance key has an
 * overlay_cidr:
 *   <service>-<n>.<stack>.<grid>.kontena.local and <service>.<stack>.<grid>.kontena.local
 *   <stack>.<grid>.kontena.local (and <stack>-<n>...) when service is the stack's `expose`
 *   stack-less: <service>-<n>.<grid>.kontena.local and <service>.<grid>.kontena.local
 * Files are written atomically (".<stack>.tmp", which dnsmasq ignores, then rename) and only
 * when their content changes; files of stacks that no longer have names are removed.
 *
 * Threads, owned by struct dns: one per watched prefix (/kontena/instances/<grid>/,
 * /kontena/observed/<grid>/, /kontena/stacks/<grid>/: list, then watch from the listing's
 * revision, re-list after compaction), and one writer that rewrites the hosts files when a
 * watch saw a change and supervises dnsmasq (restarted with backoff when it dies, stopped
 * with SIGTERM on dns_stop). docs/internals/dns.md describes it.
 */
#ifndef AGENT_DNS_H
#define AGENT_DNS_H

#include <jansson.h>

#include "common/err.h"

#define DNS_DOMAIN "kontena.local"
#define DNS_NODE_PREFIX "10.81.0." /* + node_number: the node's overlay address */

struct dns;

struct dns_opts {
    const char *etcd_endpoints; /* required */
    const char *grid;           /* required */
    const char *node;           /* required: its /kontena/nodes key gives node_number */
    const char *listen_address; /* NULL: 10.81.0.<node_number> (tests: 127.0.0.x) */
    int port;                   /* 0: 53 */
    const char *run_dir;        /* NULL: /run/kontena/dns/<grid>/<node>; holds hosts/ and
                                 * dnsmasq.pid */
    const char *dnsmasq;        /* NULL: "dnsmasq" from PATH */
    const char *resolv_file;    /* NULL: /etc/resolv.conf (where other names go) */
};

/* Start the threads (etcd or dnsmasq being away is retried by them, not an error here).
 * NULL with e set on bad options or when the run directory cannot be made. */
struct dns *dns_start(const struct dns_opts *o, struct err *e);
/* Stop dnsmasq and the threads, free. The hosts files are left. NULL is fine. */
void dns_stop(struct dns *d);

/* The node's DNS server address (what containers get as Dns) into out: 0, or -1 when the
 * node's number is not known yet (its node key is read once, synchronously, on the first
 * call that needs it). Any thread. */
int dns_server_address(struct dns *d, char out[16]);

/* The search domain of a container of `stack` (NULL, "" or "null": stack-less) in grid:
 * "<stack>.<grid>.kontena.local" or "<grid>.kontena.local". Returns a new string. */
char *dns_search_domain(const char *grid, const char *stack);

/* The hosts files of grid: instances and observed map "<node>/<container name>" to the
 * keys' values, stacks maps "<stack>" to the stack key's value. Returns a new object
 * "<file name>" -> content (string). Bad or foreign values are skipped, never written. */
json_t *dns_hosts_files(const char *grid, const json_t *instances, const json_t *observed,
                        const json_t *stacks);

#endif
