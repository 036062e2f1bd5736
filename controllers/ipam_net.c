/* controllers/ipam_net.c -- see ipam_net.h. */
#include "controllers/ipam_net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

int ipam_parse_ip(const char *s, uint32_t *ip)
{
    struct in_addr a;

    if (!s || strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
        return -1;
    *ip = ntohl(a.s_addr);
    return 0;
}

int ipam_parse_cidr(const char *s, uint32_t *ip, int *len)
{
    char buf[20], *slash, *end;
    long l;

    if (!s || strlen(s) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", s);
    slash = strchr(buf, '/');
    if (!slash || !slash[1])
        return -1;
    *slash = '\0';
    l = strtol(slash + 1, &end, 10);
    if (*end || l < 0 || l > 32 || slash[1] == '-' || slash[1] == '+')
        return -1;
    if (ipam_parse_ip(buf, ip) != 0)
        return -1;
    *len = (int)l;
    return 0;
}

void ipam_format_ip(uint32_t ip, char *out, size_t n)
{
    snprintf(out, n, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

static uint32_t mask_of(int len)
{
    return len == 0 ? 0 : 0xffffffffu << (32 - len);
}

enum status ipam_default_range(const char *subnet, int range_len, char *out, size_t n,
                               struct err *e)
{
    uint32_t net;
    int len;
    char ip[16];

    if (ipam_parse_cidr(subnet, &net, &len) != 0)
        return err_set(e, ST_INVALID, "subnet '%s' is not an IPv4 CIDR", subnet ? subnet : "");
    if (len < 8 || len > 29 || (net & ~mask_of(len)) != 0)
        return err_set(e, ST_INVALID, "subnet '%s' must be a network address between /8 and /29",
                       subnet);
    if (range_len <= len)
        range_len = len + 1;
    if (range_len > IPAM_MAX_RANGE_LEN || range_len < IPAM_MIN_RANGE_LEN)
        return err_set(e, ST_INVALID, "an address range of /%d does not fit subnet '%s'", range_len,
                       subnet);
    ipam_format_ip(net + (1u << (31 - len)), ip, sizeof(ip));
    snprintf(out, n, "%s/%d", ip, range_len);
    return ST_OK;
}

enum status ipam_pool_parse(const char *subnet, const char *iprange, struct ipam_pool *p,
                            struct err *e)
{
    uint32_t size;

    memset(p, 0, sizeof(*p));
    if (ipam_parse_cidr(subnet, &p->net, &p->len) != 0 || p->len < 8 || p->len > 29 ||
        (p->net & ~mask_of(p->len)) != 0)
        return err_set(e, ST_INVALID, "pool subnet '%s' is not an IPv4 network address",
                       subnet ? subnet : "");
    if (ipam_parse_cidr(iprange, &p->range, &p->range_len) != 0 ||
        (p->range & ~mask_of(p->range_len)) != 0)
        return err_set(e, ST_INVALID, "pool iprange '%s' is not an IPv4 network address",
                       iprange ? iprange : "");
    if (p->range_len < IPAM_MIN_RANGE_LEN || p->range_len > IPAM_MAX_RANGE_LEN ||
        p->range_len <= p->len || (p->range & mask_of(p->len)) != p->net)
        return err_set(e, ST_INVALID, "pool iprange '%s' is not inside subnet '%s' (/%d..%d)",
                       iprange, subnet, IPAM_MIN_RANGE_LEN, IPAM_MAX_RANGE_LEN);
    size = 1u << (32 - p->range_len);
    p->lo = p->range + 1;
    p->count = size - 2;
    return ST_OK;
}
