#include "tests/support/agent_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/proc.h"

char *agent_proc_env(int tls, int ping_interval_ms, int ping_timeout_ms, int lease_ttl_s)
{
    int port = proc_free_port();
    char v[64];

    snprintf(v, sizeof(v), "127.0.0.1:%d", port);
    setenv("KONTENA_AGENT_LISTEN", v, 1);
    snprintf(v, sizeof(v), "%d", ping_interval_ms);
    setenv("KONTENA_AGENT_PING_INTERVAL", v, 1);
    snprintf(v, sizeof(v), "%d", ping_timeout_ms);
    setenv("KONTENA_AGENT_PING_TIMEOUT", v, 1);
    snprintf(v, sizeof(v), "%d", lease_ttl_s);
    setenv("KONTENA_AGENT_LEASE_TTL", v, 1);
    return xasprintf("%s://127.0.0.1:%d/", tls ? "wss" : "ws", port);
}

int agent_proc_start(struct agent_proc *p, const char *dir, const char *uri, const char *token,
                     const char *name, const char *const extra[])
{
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    const char *argv[40];
    int n = 0;

    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->log = xasprintf("%s/agent-%s.log", dir, name);
    argv[n++] = bin;
    argv[n++] = "--no-docker";
    argv[n++] = "--uri";
    argv[n++] = uri;
    argv[n++] = "--token";
    argv[n++] = token;
    argv[n++] = "--node-name";
    argv[n++] = name;
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    p->pid = proc_spawn(argv, NULL, p->log);
    free(bin);
    return p->pid == -1 ? -1 : 0;
}

char *agent_proc_read_log(const struct agent_proc *p)
{
    FILE *f = fopen(p->log, "r");
    char *s = NULL;
    size_t n = 0;

    if (!f)
        return xstrdup("");
    s = xmalloc(1 << 20);
    n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

int agent_proc_wait_log(const struct agent_proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;

    for (;;) {
        char *s = agent_proc_read_log(p);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return 1;
        if (time_mono_ms() >= deadline)
            return 0;
        time_sleep_ms(50);
    }
}

int agent_proc_wait_exit(struct agent_proc *p, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    int st;

    while (p->pid > 0) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return st;
        }
        if (r == -1 && errno != EINTR)
            return -1;
        if (time_mono_ms() >= deadline)
            return -1;
        time_sleep_ms(20);
    }
    return -1;
}

int agent_proc_stop(struct agent_proc *p, int sig)
{
    int st;

    if (p->pid <= 0)
        return -1;
    st = proc_stop(p->pid, sig, 5000);
    p->pid = 0;
    return st;
}

void agent_proc_cleanup(struct agent_proc *p)
{
    if (p->pid > 0)
        agent_proc_stop(p, SIGKILL);
    free(p->log);
    free(p->name);
    memset(p, 0, sizeof(*p));
}
