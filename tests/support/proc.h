/* tests/support/proc.h -- helpers for tests that run real programs: free ports, spawning
 * with captured output, waiting for HTTP endpoints.
 *
 * Children are started with PR_SET_PDEATHSIG=SIGKILL, so a crashed or timed-out test never
 * leaves a server behind.
 */
#ifndef TESTS_SUPPORT_PROC_H
#define TESTS_SUPPORT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* A free TCP port on 127.0.0.1 (bound, read back, closed). */
int proc_free_port(void);

/* Start argv[0] (searched in PATH) with extra environment entries env ("K=V", NULL-ended,
 * may be NULL) added to ours; stdout+stderr appended to log_path. Returns the pid or -1. */
pid_t proc_spawn(const char *const argv[], const char *const env[], const char *log_path);

/* Send sig and wait for the process (up to timeout_ms, then SIGKILL). Returns its wait
 * status, or -1. */
int proc_stop(pid_t pid, int sig, int timeout_ms);

/* Poll url until it answers with HTTP status `want` (TLS not verified), up to timeout_ms.
 * Returns 0 on success, -1 on timeout. */
int proc_wait_http(const char *url, long want, int timeout_ms);

/* Run a command to completion with env additions, feeding `input` (may be NULL) to its
 * stdin; returns the exit status (0..255, or 128+signal) and the captured stdout and
 * stderr in fresh memory (out and err may be NULL to discard). */
int proc_run(const char *const argv[], const char *const env[], const char *input, char **out,
             char **err);

/* mkdtemp in $TMPDIR (or /tmp) with the given name prefix; fresh memory. */
char *proc_tempdir(const char *prefix);
/* rm -rf path, in-process. */
void proc_rmtree(const char *path); /* never follows symlinks */
/* Copy a log file to stderr under a "--- <path>" line (a failing test's evidence); nothing
 * when it cannot be read. */
void proc_dump_file(const char *path);

/* The whole file (up to 64 MiB) as a string, or NULL when it cannot be read. */
char *proc_read_file(const char *path);

#endif
