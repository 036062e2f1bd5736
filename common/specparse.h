/* common/specparse.h -- parsers for the small string formats of service specs, shared by the
 * CLI's stack file reader and the API server (reference/stack-file.md §4, master-api.md §4.4,
 * scheduling.md §5).
 *
 * Every parser takes the whole string: trailing garbage is an error. On failure it returns
 * ST_INVALID with a message naming the input in e (may be NULL), and leaves *out unspecified.
 */
#ifndef COMMON_SPECPARSE_H
#define COMMON_SPECPARSE_H

#include <regex.h>

#include "common/err.h"

/* A port mapping "[ipv4:]node_port:container_port[/protocol]", e.g. "80:80", "53:53/udp",
 * "1.2.3.4:8443:443". Ports are 1..65535, the protocol tcp or udp (default tcp), the ip a
 * dotted IPv4 address (default "0.0.0.0"). A bare "80" is rejected. */
struct spec_port {
    char ip[16];
    int node_port;
    int container_port;
    char protocol[4];
};
enum status spec_parse_port(const char *s, struct spec_port *out, struct err *e);

/* A memory size "<n>[k|m|g|t][b]" (case-insensitive; k = 1024, m = 1024², ...; no unit =
 * bytes): "512m" → 536870912. Overflow past 2^62 is an error. */
enum status spec_parse_memory(const char *s, long long *bytes, struct err *e);

/* A Go-style duration made only of "<number><h|m|s>" parts, decimals allowed:
 * "23s", "1m30s", "1m12.3s", "0s" → seconds. A bare number or an empty string is an error. */
enum status spec_parse_duration(const char *s, double *secs, struct err *e);

/* A redeploy interval "<n>" (seconds), "<n>min", "<n>h" or "<n>d" → seconds. */
enum status spec_parse_interval(const char *s, long long *secs, struct err *e);

/* A stop signal: "SIG<NAME>" (letters/digits), "SIGRTMIN+<n>", "SIGRTMAX-<n>" (the "SIG" of
 * those two is optional) or a number; case-insensitive. 1 when valid. */
int spec_valid_stop_signal(const char *s);

/* An affinity rule "<key><op>[~]<value>" (scheduling.md §5): key node|service|container|label,
 * op "==" or "!=", "~" after the op marks a soft rule, a value "/re/" is a regular expression
 * (value then holds re without the slashes). The value must not be empty and a regex must
 * compile (spec_regex_compile). key and value are allocated: spec_affinity_release(). */
struct spec_affinity {
    char *key;
    char *value;
    int negate;   /* op "!=" */
    int soft;     /* "~" */
    int is_regex; /* value was written /.../ */
};
enum status spec_parse_affinity(const char *s, struct spec_affinity *out, struct err *e);
void spec_affinity_release(struct spec_affinity *a); /* NULL fine; fields cleared */

/* Compile a Ruby-style regular expression (as the original's users wrote them) with POSIX
 * extended syntax, after turning the Perl classes \d \D \w \W \s \S into bracket
 * expressions. flags: extra regcomp flags (REG_NOSUB, REG_ICASE). On success the caller
 * owns *re (regfree). */
enum status spec_regex_compile(const char *pattern, regex_t *re, int flags, struct err *e);

#endif
