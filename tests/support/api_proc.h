/* tests/support/api_proc.h -- a real kontena-apiserver for integration tests, plus a runner
 * for the real `kontena` CLI against it.
 *
 * The server runs from build/bin (KONTENA_BIN_DIR) on a free loopback port, against the
 * etcd endpoint it is given, with HTTPS and a generated certificate (written to
 * <dir>/master.pem so the CLI can trust it) unless `insecure_http` is set. The CLI runs
 * with HOME and KONTENA_CONFIG inside <dir>, so tests never touch the user's files.
 */
#ifndef TESTS_SUPPORT_API_PROC_H
#define TESTS_SUPPORT_API_PROC_H

#include <sys/types.h>

struct api_proc {
    pid_t pid;
    int port;
    int insecure_http;
    char *dir;      /* temp dir: log, certificate, CLI home */
    char *etcd;     /* etcd endpoint(s) */
    char *url;      /* https://127.0.0.1:<port> */
    char *admin_password;
    char *admin_token; /* api_proc_admin_token()'s cache */
};

/* Start (dir created when NULL). Returns 0, or -1 with the log path printed to stderr. */
int api_proc_start(struct api_proc *p, const char *etcd_endpoint, int insecure_http);
/* SIGTERM and wait; the dir is kept, so api_proc_restart() serves the same port. Returns 0
 * when the server exited with status 0, else -1 after printing its log (so a sanitizer
 * report or a crash at shutdown fails the test). */
int api_proc_stop(struct api_proc *p);
int api_proc_restart(struct api_proc *p);
/* Stop (same result as api_proc_stop), remove the dir, free. */
int api_proc_cleanup(struct api_proc *p);

/* An access token of the bootstrap admin (logged in once, then cached in p; valid across
 * restarts, since tokens live in etcd). NULL after printing why on stderr. */
const char *api_proc_admin_token(struct api_proc *p);

/* Run `kontena args...` (NULL-terminated) with the test's HOME/KONTENA_CONFIG, optional
 * stdin input. Returns the exit status; *out and *err (may be NULL) get fresh copies. */
int api_cli(struct api_proc *p, const char *input, char **out, char **err, ...)
    __attribute__((sentinel));
/* Same with extra environment entries ("K=V", NULL-ended). */
int api_cli_env(struct api_proc *p, const char *const env[], const char *input, char **out,
                char **err, const char *const args[]);

#endif
