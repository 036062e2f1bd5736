/* tests/support/hosts.h -- several Docker "hosts" on this machine for multi-host tests: a
 * Criterion fixture around hack/hosts.sh (docs/internals/multihost.md).
 *
 * Host i (1..n) is a network namespace "<prefix>-h<i>" with its own dockerd (socket
 * hs.host[i-1].sock, the test image kontena-test/busybox:latest already imported) and an
 * underlay address 10.250.<subnet>.(10+i). Processes of the test (the root netns) reach every
 * host's underlay address; processes in a host reach the other hosts and hs.master (the root
 * netns end of the harness's veth, 10.251.<subnet>.1), nothing else. Servers the hosts must
 * reach (etcd, the apiserver's agents' endpoint, a test's listener) listen on hs.master or on
 * 0.0.0.0 in the root netns.
 *
 *     static struct hosts hs;
 *     static void fini(void) { hosts_down(&hs); }  // also after a failed assertion
 *     Test(multi, x, .fini = fini, .timeout = 60) {
 *         hosts_init(&hs, "kmx", 3);                // own prefix and subnet per test
 *         cr_assert_eq(hosts_up(&hs, 3), 0, "%s", hs.err); // removes stale leftovers first
 *         char *out = NULL;
 *         const char *ping[] = {"ping", "-c1", "-W2", hs.host[1].ip, NULL};
 *         cr_assert_eq(hosts_exec(&hs.host[0], ping, &out, NULL), 0);
 *         free(out);
 *     }
 *
 * A test killed by its timeout skips .fini: call hosts_down() for every prefix the binary uses
 * from ReportHook(POST_ALL) too (hosts_down_prefix()), and hosts_up() starts with a down.
 * Tests running at the same time must use different prefixes AND subnets.
 * Needs root. Every function says why it failed in hs->err (and on stderr).
 */
#ifndef TESTS_SUPPORT_HOSTS_H
#define TESTS_SUPPORT_HOSTS_H

#define HOSTS_MAX 16

struct hosts_host {
    int index;             /* 1..n */
    char netns[32];        /* "<prefix>-h<i>": run commands in it with hosts_exec() */
    char ip[16];           /* underlay address, e.g. "10.250.0.11" (= the agent's --private-ip) */
    char sock[128];        /* docker socket path, e.g. "/run/kontena-hosts/kh/h1/docker.sock" */
    char docker_host[136]; /* "unix://<sock>", for DOCKER_HOST= */
};

struct hosts {
    char prefix[8];  /* 1-6 characters [a-z0-9] */
    int subnet;      /* 0..255: underlay 10.250.<subnet>.0/24, link 10.251.<subnet>.0/30 */
    int n;           /* hosts up, 0 when down */
    char master[16]; /* root netns address reachable from the hosts, e.g. "10.251.0.1" */
    struct hosts_host host[HOSTS_MAX]; /* host[i-1] is host i */
    char err[512];                     /* why the last call failed */
    long up_ms;   /* how long the last hosts_up() took (with its initial down) */
    long down_ms; /* how long the last hosts_down() took */
};

/* Set the prefix (NULL: $KONTENA_HOSTS_PREFIX or "kh") and the subnet (-1:
 * $KONTENA_HOSTS_SUBNET or 0); everything else zero. */
void hosts_init(struct hosts *hs, const char *prefix, int subnet);

/* Remove anything left with this prefix, then `hack/hosts.sh up n`, and parse what it printed.
 * 0, or -1 (hs->err says why; what was made is left for hosts_down()). */
int hosts_up(struct hosts *hs, int n);

/* `hack/hosts.sh down`: removes every netns, link, route, process, cgroup and directory with
 * the prefix, whether this process made them or a crashed run did. Safe to call on a struct
 * that was never brought up (after hosts_init()) and more than once. 0 or -1. */
int hosts_down(struct hosts *hs);
/* The same for a prefix alone (a ReportHook(POST_ALL) has no struct). */
int hosts_down_prefix(const char *prefix);

/* Run argv (searched in PATH, e.g. "busybox") inside the host's network namespace with
 * `ip netns exec`, bounded by timeout_s seconds (<= 0: 30), with env additions env ("K=V",
 * NULL-ended, may be NULL). Returns the exit status (124 on timeout, 128+signal), and the
 * captured stdout and stderr in fresh memory (out, err may be NULL). */
int hosts_exec_env(const struct hosts_host *h, const char *const argv[], const char *const env[],
                   int timeout_s, char **out, char **err);
/* hosts_exec_env() with no env additions and the default 30 s bound. */
int hosts_exec(const struct hosts_host *h, const char *const argv[], char **out, char **err);

/* Run `docker -H unix://<sock> args...` (NULL-ended) from the root netns against the host's
 * dockerd, bounded by 60 s. Exit status; output as for hosts_exec(). */
int hosts_docker(const struct hosts_host *h, const char *const args[], char **out, char **err);

/* A TCP relay in a thread of the calling process: listens on hs->master:<port> and forwards
 * every connection to 127.0.0.1:target_port, so a server that binds to loopback only (the
 * etcd of tests/support/etcd_proc.h, an apiserver started by api_proc.h) becomes reachable
 * from the hosts without changing how it is started. port 0: the kernel picks one (read it
 * with hosts_relay_port()). Up to 64 connections at once, both directions, half-closes kept.
 * NULL on failure (hs->err says why). */
struct hosts_relay;
struct hosts_relay *hosts_relay_start(struct hosts *hs, int port, int target_port);
/* The port the relay listens on (on hs->master). */
int hosts_relay_port(const struct hosts_relay *r);
/* Stop the thread, close every connection, free. NULL is fine. */
void hosts_relay_stop(struct hosts_relay *r);

#endif
