/* lb/haproxy.h -- running haproxy: validate a configuration, start the master-worker master,
 * reload it seamlessly, stop it softly.
 *
 * The master runs as `haproxy -W -db -f <cfg> -S <run-dir>/master.sock`: it stays in the
 * foreground as our child (PR_SET_PDEATHSIG=SIGTERM, so it never outlives us), its workers
 * log to stdout. A reload is SIGUSR2 to the master: it re-executes itself with the new
 * configuration and the new workers take the listening sockets over from the old ones
 * (no port is ever closed), while the old workers finish their connections (soft-stop).
 * Call these from the thread that will live as long as the process (the main thread):
 * the parent-death signal fires when the thread that forked exits.
 */
#ifndef LB_HAPROXY_H
#define LB_HAPROXY_H

#include <sys/types.h>

#include "common/err.h"

/* Run `<bin> -c -f <cfg>` (bounded: 20 s). ST_OK when valid; ST_INVALID when haproxy says
 * the configuration is invalid, with its output (alerts, capped at 64 KiB) in *output
 * (fresh memory, or NULL); ST_IO when haproxy cannot be run. */
enum status lb_haproxy_check(const char *bin, const char *cfg, char **output,
                             struct err *e) WARN_UNUSED_RESULT;

/* Start the master; *pid gets its pid. ST_IO when fork/exec fails (exec failures show as
 * an exit status 127 of the child). */
enum status lb_haproxy_start(const char *bin, const char *cfg, const char *master_sock, pid_t *pid,
                             struct err *e) WARN_UNUSED_RESULT;

/* Seamless reload (SIGUSR2 to the master). */
enum status lb_haproxy_reload(pid_t pid, struct err *e) WARN_UNUSED_RESULT;

/* Send one line of runtime API commands (';'-separated) to the stats socket at sock and
 * read the answer (bounded: 2 s, 64 KiB) into *reply (fresh memory). ST_IO when the socket
 * cannot be reached. */
enum status lb_haproxy_cli(const char *sock, const char *cmds, char **reply,
                           struct err *e) WARN_UNUSED_RESULT;

/* The pid of the current worker, from the master CLI's "show proc" on master_sock; 0 when
 * the master does not answer (it is re-executing during a reload) or has no worker. */
pid_t lb_haproxy_current_worker(const char *master_sock);

/* Soft-stop (SIGUSR1: workers finish their connections, then the master exits), SIGTERM
 * after timeout_ms, SIGKILL 2 s later. Returns the wait status, or -1 when pid was not
 * our child. */
int lb_haproxy_stop(pid_t pid, int timeout_ms);

#endif
