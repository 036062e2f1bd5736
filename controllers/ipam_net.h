/* controllers/ipam_net.h -- IPv4 address arithmetic of kontena-ipam (pure functions).
 *
 * Addresses are host-order uint32_t. A pool is the grid's subnet plus the range containers
 * take their addresses from (docs/internals/ipam.md): by default the first /19 of the
 * subnet's upper half, 10.81.128.0/19 for 10.81.0.0/16 = 8,190 usable addresses (the range's
 * own first and last address are never handed out).
 */
#ifndef CONTROLLERS_IPAM_NET_H
#define CONTROLLERS_IPAM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define IPAM_DEFAULT_SUBNET "10.81.0.0/16"
#define IPAM_DEFAULT_RANGE_LEN 19
#define IPAM_MIN_RANGE_LEN 12 /* at most 2^20 addresses in one range (the bitmap's size) */
#define IPAM_MAX_RANGE_LEN 30

struct ipam_pool {
    uint32_t net;   /* subnet network address */
    int len;        /* subnet prefix length: the suffix of every overlay_cidr */
    uint32_t range; /* iprange network address */
    int range_len;  /* iprange prefix length */
    uint32_t lo;    /* first usable address of the range */
    uint32_t count; /* usable addresses: lo .. lo + count - 1 */
};

/* "a.b.c.d" → *ip. 0 on success, -1 when s is not a dotted quad. */
int ipam_parse_ip(const char *s, uint32_t *ip);
/* "a.b.c.d/len" → *ip, *len (0..32). 0 on success, -1 otherwise. */
int ipam_parse_cidr(const char *s, uint32_t *ip, int *len);
/* ip as "a.b.c.d" into out (>= 16 bytes). */
void ipam_format_ip(uint32_t ip, char *out, size_t n);

/* The default iprange of subnet/len: the first /range_len of the subnet's upper half (the
 * lower half is for node addresses). ST_INVALID when the subnet is not a network address,
 * is smaller than /8 or larger than /29, or range_len does not fit inside its upper half
 * (it is raised to len + 1 when smaller). out gets "a.b.c.d/n". */
enum status ipam_default_range(const char *subnet, int range_len, char *out, size_t n,
                               struct err *e);
/* Parse a pool value's subnet and iprange (iprange inside the subnet, /IPAM_MIN_RANGE_LEN
 * to /IPAM_MAX_RANGE_LEN). */
enum status ipam_pool_parse(const char *subnet, const char *iprange, struct ipam_pool *p,
                            struct err *e);

#endif
