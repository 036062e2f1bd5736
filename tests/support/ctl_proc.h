/* tests/support/ctl_proc.h -- real controller processes (kontena-scheduler, -ipam,
 * -rescheduler, -health) for integration tests.
 *
 * ctl_proc_start() runs `kontena-<name> --etcd-endpoints <etcd> --http-listen
 * 127.0.0.1:<free port> --id <name>-<n> --lease-ttl 2s` plus extra arguments, its output in
 * <dir>/<name>-<n>.log, and waits until /healthz answers 200 (informers synced).
 */
#ifndef TESTS_SUPPORT_CTL_PROC_H
#define TESTS_SUPPORT_CTL_PROC_H

#include <sys/types.h>

struct ctl_proc {
    pid_t pid;
    int http_port;
    char *name; /* "scheduler" */
    char *id;   /* "scheduler-1" */
    char *log;
};

/* Start controller `name` (scheduler, ipam, rescheduler, health) against etcd_endpoint;
 * replica numbers the instance (id and log name). extra: more arguments, NULL-ended, may be
 * NULL. Returns 0 once /healthz is 200 (up to 10 s), else -1 (the log is dumped to stderr;
 * the process, if any, is left for ctl_proc_cleanup). */
int ctl_proc_start(struct ctl_proc *p, const char *dir, const char *name, int replica,
                   const char *etcd_endpoint, const char *const extra[]);
/* "http://127.0.0.1:<port>" + path, fresh memory. */
char *ctl_proc_url(const struct ctl_proc *p, const char *path);
/* Send sig (SIGKILL after 10 s) and reap: the wait status or -1. */
int ctl_proc_stop(struct ctl_proc *p, int sig);
/* Stop (SIGTERM) if running, free. */
void ctl_proc_cleanup(struct ctl_proc *p);

#endif
