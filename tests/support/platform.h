/* tests/support/platform.h -- a whole Kontena platform for one end-to-end test: a real etcd,
 * kontena-apiserver with its agents' endpoint, a logged-in CLI (HOME and KONTENA_CONFIG in
 * the platform's temp dir), the four controllers (kontena-scheduler, -ipam, -rescheduler,
 * -health), with .lbconfig a fifth (kontena-lbconfig), and N kontena-agent processes named
 * node-1..node-N, all managing containers on the machine's one dockerd.
 *
 *     struct platform pf;
 *     struct platform_opts o = {.agents = 3, .ctl_args = short_graces};
 *     cr_assert_eq(platform_start(&pf, &o), 0, "...");
 *     cr_assert_eq(platform_cli(&pf, "stack", "install", file, NULL), 0, "%s", pf.err);
 *     ...
 *     platform_cleanup(&pf);           // also from a suite .fini: safe after a failure
 *
 * The grid is "<run id>-<grid_suffix>" (docker_env.h), so every container the agents make
 * carries io.kontena.grid=<that grid>; platform_cleanup() removes those containers, so a
 * failed test leaves nothing behind. Container names are "<stack>.<service>-<n>" on the
 * shared dockerd: tests running in parallel must use different stack names
 * (platform_name() makes one unique to the test and the run).
 *
 * Every function reports why it failed on stderr. Not thread-safe (one test thread).
 */
#ifndef TESTS_SUPPORT_PLATFORM_H
#define TESTS_SUPPORT_PLATFORM_H

#include <jansson.h>
#include <sys/types.h>

#include "tests/support/api_proc.h"
#include "tests/support/ctl_proc.h"
#include "tests/support/etcd_proc.h"

#define PLATFORM_MAX_AGENTS 8
#define PLATFORM_NCTL 4    /* the four every platform starts */
#define PLATFORM_CTL_MAX 5 /* ... and kontena-lbconfig with opts.lbconfig */
#define PLATFORM_CTL_LBCONFIG 4

/* The controllers, in start order; index into platform.ctl[]: scheduler ipam rescheduler
 * health, then lbconfig (started only with opts.lbconfig). */
extern const char *const platform_ctl_names[PLATFORM_CTL_MAX];

struct platform_opts {
    int agents;              /* node-1..node-N, 0..PLATFORM_MAX_AGENTS (default 0) */
    const char *grid_suffix; /* grid "<run id>-<suffix>" (default "e2e") */
    int no_controllers;      /* start none of the four (a test starts them itself) */
    int lbconfig;            /* also start kontena-lbconfig (load balancers, issue 7) */
    /* Extra arguments of controller `name` (NULL-ended, borrowed until the next call),
     * e.g. {"--grace-ha", "3s", "--online-grace", "1s", NULL}. NULL: none. */
    const char *const *(*ctl_args)(const char *name, void *arg);
    void *ctl_arg;
    /* Extra arguments of every agent (NULL-ended, may be NULL). */
    const char *const *agent_args;
};

struct platform_agent {
    pid_t pid;  /* 0 while stopped */
    char *name; /* node-<i+1> */
    char *log;
};

struct platform {
    struct etcd_proc etcd;
    struct api_proc api;
    struct ctl_proc ctl[PLATFORM_CTL_MAX]; /* pid 0 when not running */
    struct platform_agent agents[PLATFORM_MAX_AGENTS];
    int n_agents;
    struct platform_opts opts;
    char *grid;
    char *grid_token;
    char *agents_uri; /* wss://127.0.0.1:<port>/ */
    char *pem;        /* the master's certificate */
    struct etcd *ec;  /* a client of the platform's etcd */
    char *out, *err;  /* the last platform_cli()'s output */
    int started;
};

/* Start everything and wait until every agent's node is online (status key present) and
 * every controller's /healthz answers 200. 0, or -1 (the caller still calls
 * platform_cleanup()). */
int platform_start(struct platform *p, const struct platform_opts *o);
/* Stop every process (controllers and agents SIGTERM, then the apiserver and etcd), remove
 * the grid's containers and the temp dir. Safe on a zeroed or half-started p; idempotent. */
void platform_cleanup(struct platform *p);

/* SIGTERM every running controller and agent, then the apiserver, and wait for each. Returns
 * how many did not exit with status 0 (a sanitizer report, a crash, a hang at shutdown),
 * printing each one's log; 0 when all exited cleanly. etcd and the containers stay until
 * platform_cleanup(). */
int platform_stop(struct platform *p);

/* "<what>-<8 hex of the run id>": stack names unique to the test and the run; fresh. */
char *platform_name(const char *what);
/* Write text to <dir>/<file>; the path (fresh) or NULL. */
char *platform_write_file(struct platform *p, const char *file, const char *text);

/* Run `kontena args...` (NULL-ended) as the logged-in admin with the platform's grid
 * selected. Returns the exit status; p->out and p->err hold stdout and stderr. */
int platform_cli(struct platform *p, ...) __attribute__((sentinel));

/* Agents: stop with sig (SIGKILL: a lost node) and reap; start again (same name, same
 * node id, log appended). 0 or -1. */
int platform_agent_stop(struct platform *p, int i, int sig);
int platform_agent_start(struct platform *p, int i);
/* Whether node `name` is online (its /kontena/node_status key exists): 1, 0, or -1. */
int platform_node_online(struct platform *p, const char *name);
/* Wait until node `name` is online (want 1) or offline (want 0). 0 or -1 on timeout. */
int platform_wait_node(struct platform *p, const char *name, int want, int timeout_ms);

/* Controllers by name ("scheduler"...): stop with sig and reap; start again (waits for its
 * /healthz). 0 or -1. */
int platform_ctl_stop(struct platform *p, const char *name, int sig);
int platform_ctl_start(struct platform *p, const char *name);

/* The instance keys of one service: a JSON array, one object per key, sorted by key:
 * {node, container, instance_number, revision, desired_state, overlay_cidr,
 *  observed: <the observed value of the same node and container, or null>}.
 * stack NULL means "null". A new reference, or NULL when etcd could not be read. */
json_t *platform_instances(struct platform *p, const char *stack, const char *service);
/* How many instances of the service are running: an instance key with desired_state
 * running whose observed value (same node and container) has state running and the same
 * revision. -1 when etcd could not be read. */
int platform_running(struct platform *p, const char *stack, const char *service);
/* How many entries of a platform_instances() array are running (as platform_running). */
int platform_count_running(const json_t *list);
/* Wait until exactly `count` instance keys exist for the service and every one is
 * running (platform_running == count). The instance array (as platform_instances) or
 * NULL on timeout, after printing what was there. */
json_t *platform_wait_running(struct platform *p, const char *stack, const char *service, int count,
                              int timeout_ms);
/* Containers on the dockerd carrying io.kontena.grid=<grid> and, when service is not
 * NULL, io.kontena.service=<service> (and stack when not NULL), running or not; -1 when
 * Docker could not be asked. (Duplicates show here: two containers of one instance.) */
int platform_docker_count(struct platform *p, const char *stack, const char *service,
                          int running_only);

/* Remove (force) the grid's containers on node `name` (io.kontena.grid and io.kontena.node
 * labels): with SIGKILL of its agent, a lost host. How many, or -1. */
int platform_remove_node_containers(struct platform *p, const char *name);

/* --- load balancers (issue 7) --- */

/* Build the load balancer image with hack/lb-image.sh from the binaries under test
 * (KONTENA_BIN_DIR), tagged "kontena/lb:<run id>-<pid>": the name holds "kontena/lb" (which
 * makes a service an LB), the tag keeps the developer's kontena/lb:latest and parallel test
 * processes apart. With KONTENA_TEST_LB_IMAGE set, that image is used as it is (nothing is
 * built, and platform_lb_image_remove() leaves it). The image name (fresh) or NULL after
 * saying why. */
char *platform_lb_image(void);
/* docker rmi -f image (not KONTENA_TEST_LB_IMAGE's); NULL is fine. */
void platform_lb_image_remove(const char *image);
/* GET url (Host header `host` unless NULL) until it answers status `want` with a body that
 * begins with `prefix` (NULL: any), up to timeout_ms. 0, or -1 after printing the last
 * reply. */
int platform_wait_http(const char *url, const char *host, long want, const char *prefix,
                       int timeout_ms);
/* Connect to 127.0.0.1:port and read what the peer sends until it closes (or 2 s): fresh,
 * NUL-terminated; NULL when the connection failed. */
char *platform_tcp_read(int port);

/* Health results as they happen: a thread watching every observed key of the grid (an etcd
 * watch, so no result is missed however long the test is busy elsewhere) records for each
 * container (by its Docker id) the agent's check time (checked_at, wall clock µs) of its
 * first healthy and its first unhealthy result. */
struct platform_health_log;
/* Start watching from now; NULL after saying why. */
struct platform_health_log *platform_health_watch(struct platform *p);
/* The first healthy (healthy 1) or unhealthy (0) result of the container whose id begins
 * with id_prefix (e.g. the 12 characters Docker shows): its checked_at in µs, or -1 when
 * none was seen. *seen_us (may be NULL) gets when the watch received that observed value
 * (wall clock µs): the agent's delay from check to etcd is the difference. */
int64_t platform_health_first(struct platform_health_log *h, const char *id_prefix, int healthy,
                              int64_t *seen_us);
/* Stop the thread and free; NULL is fine. */
void platform_health_unwatch(struct platform_health_log *h);

/* The stored log entries of a service ("stack/service" or a bare name in the CLI's sense),
 * oldest first, as `kontena service logs --tail 10000 -o json` prints them: a new array,
 * empty when the CLI fails. */
json_t *platform_service_logs(struct platform *p, const char *svc);
/* Poll platform_service_logs() every 300 ms until it holds at least n entries or timeout_ms
 * passed; how many it held last. */
size_t platform_wait_service_logs(struct platform *p, const char *svc, size_t n, int timeout_ms);

/* Print every process log of the platform to stderr (a failing test's evidence). */
void platform_dump_logs(struct platform *p);

#endif
