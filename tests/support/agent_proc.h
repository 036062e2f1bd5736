/* tests/support/agent_proc.h -- real kontena-agent processes for integration tests, and the
 * settings that give a test's kontena-apiserver an agents' endpoint.
 *
 * agent_proc_env() must be called before api_proc_start() (the apiserver inherits the
 * test's environment): it picks a free port for the agents' endpoint and short ping and
 * lease settings, and returns the ws(s) URI agents dial.
 */
#ifndef TESTS_SUPPORT_AGENT_PROC_H
#define TESTS_SUPPORT_AGENT_PROC_H

#include <sys/types.h>

struct agent_proc {
    pid_t pid;
    char *log; /* <dir>/agent-<name>.log */
    char *name;
};

/* Set KONTENA_AGENT_LISTEN (a free port), KONTENA_AGENT_PING_INTERVAL/TIMEOUT (ms) and
 * KONTENA_AGENT_LEASE_TTL (s) for the apiserver about to start. Returns the URI agents
 * dial, "wss://127.0.0.1:<port>/" (or ws:// when tls is 0); fresh memory. */
char *agent_proc_env(int tls, int ping_interval_ms, int ping_timeout_ms, int lease_ttl_s);

/* Start `kontena-agent --no-docker --uri uri --token token --node-name name` plus extra
 * arguments (NULL-ended, may be NULL), its output in <dir>/agent-<name>.log. 0 or -1. */
int agent_proc_start(struct agent_proc *p, const char *dir, const char *uri, const char *token,
                     const char *name, const char *const extra[]);
/* Whether the log contains needle, polling up to timeout_ms. 1 or 0. */
int agent_proc_wait_log(const struct agent_proc *p, const char *needle, int timeout_ms);
/* The log's content (fresh memory, "" if unreadable). */
char *agent_proc_read_log(const struct agent_proc *p);
/* Wait for the agent to exit by itself, up to timeout_ms. Its wait status, or -1 if it
 * is still running (it is then left running). */
int agent_proc_wait_exit(struct agent_proc *p, int timeout_ms);
/* Send sig (SIGKILL after 5 s) and reap; the wait status or -1. Frees nothing. */
int agent_proc_stop(struct agent_proc *p, int sig);
/* Stop if running, free. */
void agent_proc_cleanup(struct agent_proc *p);

#endif
