/* tests/support/etcd_proc.h -- run a real, single-member etcd for tests.
 *
 *     struct etcd_proc p = ETCD_PROC_INIT;
 *     if (etcd_proc_start(&p) != 0)
 *         cr_skip_test("cannot start etcd");   // or fail: the log is in p.dir/etcd.log
 *     ... talk to p.endpoint ...
 *     etcd_proc_cleanup(&p);                   // stop it and remove its directory
 *
 * etcd_proc_start() makes a temp dir ($TMPDIR or /tmp, "etcdproc-XXXXXX") holding data/
 * and etcd.log, takes two free loopback ports, and runs `etcd` (or $ETCD_BIN) with them.
 * It returns once GET /health answers 200 and the member list names our member (so the
 * answering server is ours, not a stranger that grabbed the port), within 15 s. If etcd
 * dies during start-up (a port taken in between), it retries with new ports, up to 3 times.
 *
 * The child gets PR_SET_PDEATHSIG=SIGKILL: if the process that started it dies (a crashing
 * Criterion test skips its .fini), etcd dies too. The temp dir then stays behind; see
 * etcd_proc_cleanup(). Note that the death signal fires when the *thread* that forked
 * exits, so start etcd from a thread that outlives it (the main thread, normally).
 *
 * Criterion: each test is its own process, and .init/.fini run per test. Start one shared
 * etcd in ReportHook(PRE_ALL) (the runner process), publish p.endpoint with setenv() and
 * stop it in ReportHook(POST_ALL); give each test its own key prefix. Tests that stop or
 * restart etcd, enable auth or compact should start a private one.
 *
 * All functions return 0 on success and -1 on failure, after printing why to stderr.
 * Not thread-safe: one thread drives a given struct etcd_proc.
 */
#ifndef TESTS_SUPPORT_ETCD_PROC_H
#define TESTS_SUPPORT_ETCD_PROC_H

#include <sys/types.h>

#define ETCD_PROC_MAX_ARGS 8

struct etcd_proc {
    pid_t pid;         /* 0 when not running */
    char dir[256];     /* temp dir; "" before the first start */
    char endpoint[64]; /* "http://127.0.0.1:PORT" ("https://" with TLS) */
    int client_port;
    int peer_port;
    /* Set before etcd_proc_start(), kept for restarts. Borrowed: they must outlive p. */
    const char *extra_args[ETCD_PROC_MAX_ARGS]; /* extra etcd flags, NULL-terminated,
                                                   e.g. "--auth-token-ttl=1" */
    const char *cert_file; /* serve clients over TLS with this cert/key (PEM files) */
    const char *key_file;
};

#define ETCD_PROC_INIT {0}

/* Start a fresh etcd (new temp dir, new ports). */
int etcd_proc_start(struct etcd_proc *p);
/* SIGTERM and wait for it (SIGKILL after 10 s). Keeps the dir, the ports and the data. */
int etcd_proc_stop(struct etcd_proc *p);
/* SIGKILL and wait: a crash. Keeps the dir. */
void etcd_proc_kill(struct etcd_proc *p);
/* Start again after stop/kill: same ports, same data dir, log appended. */
int etcd_proc_restart(struct etcd_proc *p);
/* Stop if running and remove the temp dir. Safe on a never-started or cleaned-up p. */
void etcd_proc_cleanup(struct etcd_proc *p);

/* Enable etcd auth with etcdctl: user "root" with password root_password (root gets the
 * root role), then `auth enable`. Afterwards every request needs a token. */
int etcd_proc_enable_auth(struct etcd_proc *p, const char *root_password);

/* Free ports and temp-dir removal: tests/support/proc.h. */

#endif
