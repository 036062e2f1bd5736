#include "apiserver/validate.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

int valid_name(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);

    if (n < min || n > max || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

int valid_cidr4(const char *s)
{
    char addr[INET_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    struct in_addr in;
    char *end;
    long bits;
    uint32_t host, mask;

    if (!slash || (size_t)(slash - s) >= sizeof(addr) || slash == s)
        return 0;
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1)
        return 0;
    if (!isdigit((unsigned char)slash[1]))
        return 0;
    bits = strtol(slash + 1, &end, 10);
    if (*end != '\0' || bits < 0 || bits > 32)
        return 0;
    host = ntohl(in.s_addr);
    mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (host & ~mask) == 0;
}

int valid_email(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 254)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._%+@-", s[i]))
            return 0;
    return 1;
}

int json_array_has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
        return 1;
    return 0;
}

int json_all_strings(const json_t *arr)
{
    size_t i;
    json_t *v;

    if (!arr)
        return 1;
    if (!json_is_array(arr))
        return 0;
    json_array_foreach(arr, i, v) if (!json_is_string(v)) return 0;
    return 1;
}
