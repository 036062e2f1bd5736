/* Unit tests for common/specparse: ports, memory sizes, durations, intervals, stop signals,
 * affinity rules and Ruby-style regexes. */
#include <criterion/criterion.h>
#include <regex.h>
#include <string.h>

#include "common/err.h"
#include "common/specparse.h"

Test(specparse, ports)
{
    struct spec_port p;
    struct err e = ERR_INIT;

    cr_assert_eq(spec_parse_port("80:8080", &p, NULL), ST_OK);
    cr_assert_str_eq(p.ip, "0.0.0.0");
    cr_assert_eq(p.node_port, 80);
    cr_assert_eq(p.container_port, 8080);
    cr_assert_str_eq(p.protocol, "tcp");
    cr_assert_eq(spec_parse_port("53:53/udp", &p, NULL), ST_OK);
    cr_assert_str_eq(p.protocol, "udp");
    cr_assert_eq(spec_parse_port("1.2.3.4:8443:443/tcp", &p, NULL), ST_OK);
    cr_assert_str_eq(p.ip, "1.2.3.4");
    cr_assert_eq(p.node_port, 8443);
    cr_assert_eq(p.container_port, 443);

    const char *bad[] = {"80", "", ":80", "80:", "a:80", "80:80/sctp", "80:80/", "1.2.3:80:80",
                         "1.2.3.256:80:80", "0:80", "80:70000", "1.2.3.4:80", "80:80:80",
                         "80:80 ", "/udp:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(spec_parse_port(bad[i], &p, &e), ST_INVALID, "'%s' must be rejected",
                     bad[i]);
    cr_assert(strstr(e.msg, "'/udp:80'"), "message names the input: %s", e.msg);
}

Test(specparse, memory)
{
    long long b;

    cr_assert_eq(spec_parse_memory("512m", &b, NULL), ST_OK);
    cr_assert_eq(b, 512LL << 20);
    cr_assert_eq(spec_parse_memory("1G", &b, NULL), ST_OK);
    cr_assert_eq(b, 1LL << 30);
    cr_assert_eq(spec_parse_memory("64k", &b, NULL), ST_OK);
    cr_assert_eq(b, 65536);
    cr_assert_eq(spec_parse_memory("1000", &b, NULL), ST_OK);
    cr_assert_eq(b, 1000);
    cr_assert_eq(spec_parse_memory("2gb", &b, NULL), ST_OK);
    cr_assert_eq(b, 2LL << 30);
    cr_assert_eq(spec_parse_memory("", &b, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_memory("m", &b, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_memory("1.5g", &b, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_memory("12x", &b, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_memory("99999999999999999999t", &b, NULL), ST_INVALID);
}

Test(specparse, durations)
{
    double s;

    cr_assert_eq(spec_parse_duration("23s", &s, NULL), ST_OK);
    cr_assert_float_eq(s, 23.0, 1e-9);
    cr_assert_eq(spec_parse_duration("1m30s", &s, NULL), ST_OK);
    cr_assert_float_eq(s, 90.0, 1e-9);
    cr_assert_eq(spec_parse_duration("1m12.3s", &s, NULL), ST_OK);
    cr_assert_float_eq(s, 72.3, 1e-9);
    cr_assert_eq(spec_parse_duration("1h", &s, NULL), ST_OK);
    cr_assert_float_eq(s, 3600.0, 1e-9);
    cr_assert_eq(spec_parse_duration("0s", &s, NULL), ST_OK);
    cr_assert_float_eq(s, 0.0, 1e-9);
    const char *bad[] = {"", "10", "10x", "s", "1.s", "10sec", "1m 30s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(spec_parse_duration(bad[i], &s, NULL), ST_INVALID, "'%s'", bad[i]);
}

Test(specparse, intervals)
{
    long long s;

    cr_assert_eq(spec_parse_interval("30", &s, NULL), ST_OK);
    cr_assert_eq(s, 30);
    cr_assert_eq(spec_parse_interval("5min", &s, NULL), ST_OK);
    cr_assert_eq(s, 300);
    cr_assert_eq(spec_parse_interval("2h", &s, NULL), ST_OK);
    cr_assert_eq(s, 7200);
    cr_assert_eq(spec_parse_interval("1d", &s, NULL), ST_OK);
    cr_assert_eq(s, 86400);
    cr_assert_eq(spec_parse_interval("1m", &s, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_interval("min", &s, NULL), ST_INVALID);
    cr_assert_eq(spec_parse_interval("", &s, NULL), ST_INVALID);
}

Test(specparse, stop_signals)
{
    const char *good[] = {"SIGINT", "sigterm", "SIGRTMIN+3", "RTMAX-1", "9", "SIGUSR1"};
    const char *bad[] = {"", "SIG", "INT", "SIG-INT", "SIGRTMIN+", "RTMINX", "9a"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(spec_valid_stop_signal(good[i]), "'%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(spec_valid_stop_signal(bad[i]), "'%s'", bad[i]);
}

Test(specparse, affinity)
{
    struct spec_affinity a;
    struct err e = ERR_INIT;

    cr_assert_eq(spec_parse_affinity("node==node-1", &a, NULL), ST_OK);
    cr_assert_str_eq(a.key, "node");
    cr_assert_str_eq(a.value, "node-1");
    cr_assert_not(a.negate);
    cr_assert_not(a.soft);
    spec_affinity_release(&a);

    cr_assert_eq(spec_parse_affinity("label!=~az=eu-1a", &a, NULL), ST_OK);
    cr_assert_str_eq(a.key, "label");
    cr_assert_str_eq(a.value, "az=eu-1a");
    cr_assert(a.negate);
    cr_assert(a.soft);
    spec_affinity_release(&a);

    cr_assert_eq(spec_parse_affinity("container==/^web-\\d+$/", &a, NULL), ST_OK);
    cr_assert(a.is_regex);
    cr_assert_str_eq(a.value, "^web-\\d+$");
    spec_affinity_release(&a);

    cr_assert_eq(spec_parse_affinity("node=node-1", &a, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "no == or != operator"), "%s", e.msg);
    cr_assert_eq(spec_parse_affinity("host==x", &a, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "key must be"), "%s", e.msg);
    cr_assert_eq(spec_parse_affinity("node==", &a, &e), ST_INVALID);
    cr_assert_eq(spec_parse_affinity("node==~", &a, &e), ST_INVALID);
    cr_assert_eq(spec_parse_affinity("service==/a(b/", &a, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "invalid regular expression"), "%s", e.msg);
    cr_assert_null(a.key);
    cr_assert_null(a.value);
    spec_affinity_release(NULL);
}

Test(specparse, ruby_regex_classes)
{
    regex_t re;

    cr_assert_eq(spec_regex_compile("^web-\\d+$", &re, REG_NOSUB, NULL), ST_OK);
    cr_assert_eq(regexec(&re, "web-12", 0, NULL, 0), 0);
    cr_assert_neq(regexec(&re, "web-x", 0, NULL, 0), 0);
    regfree(&re);
    cr_assert_eq(spec_regex_compile("^[\\w.]+\\s\\S$", &re, REG_NOSUB, NULL), ST_OK);
    cr_assert_eq(regexec(&re, "a_b.c x", 0, NULL, 0), 0);
    regfree(&re);
    cr_assert_eq(spec_regex_compile("stack\\/svc", &re, REG_NOSUB, NULL), ST_OK);
    cr_assert_eq(regexec(&re, "stack/svc", 0, NULL, 0), 0);
    regfree(&re);
}
