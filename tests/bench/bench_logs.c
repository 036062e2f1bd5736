/* tests/bench/bench_logs.c -- issue 8's benchmark: log lines per second from containers to a
 * following `kontena` CLI, and the agent's and the apiserver's memory while it runs.
 *
 *   build-x/tests/bench/bench_logs [--containers N (4)] [--lines N per container (250000)]
 *                                  [--timeout SECONDS (300)]
 *
 * Method: a whole platform (tests/support/platform.h) with one agent on the machine's
 * dockerd, the apiserver's log store in a temp dir with its default window (256 MiB). One
 * stack service with N instances, each running `sleep 8; seq 1 L | sed 's/^/bench-line-/'`:
 * the containers write their lines as fast as busybox can. As soon as the service exists,
 * `kontena service logs -f --tail 1 <stack>/flood` starts with its stdout on a pipe this
 * program reads; the clock starts at the first line the CLI prints and stops when it has
 * printed N*L lines (every one, in the default text format), so the figure covers Docker's
 * json-file log -> the agent's follow and batches over the WebSocket -> the apiserver's
 * store -> the follow stream -> the CLI's parser and stdout. Memory: VmHWM (peak RSS) and
 * VmRSS of the agent, the apiserver and the CLI from /proc at the end, with the apiserver's
 * and agent's VmRSS sampled every 100 ms while the lines flow (the peak of those samples is
 * printed too), and the CPU seconds each of the three used between the first and the last
 * line, with dockerd's (which of them is the bottleneck). Nothing is asserted; the goal (>= 50,000
 * lines/s on this 2-core machine) is printed beside the figure.
 *
 * Needs dockerd, the test image and build-x/bin (kontena, kontena-apiserver, kontena-agent,
 * controllers). Leaves nothing behind (platform_cleanup removes the grid's containers).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/platform.h"
#include "tests/support/proc.h"

#include "common/banned.h"

static int int_arg(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end || v < lo || v > hi) {
        fprintf(stderr, "bench_logs: %s must be %ld..%ld\n", what, lo, hi);
        exit(2);
    }
    return (int)v;
}

/* A field of /proc/<pid>/status in KiB, -1 when unreadable. */
static long status_kb(pid_t pid, const char *field)
{
    char path[64], *text, *p;
    long v = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = proc_read_file(path);
    if (text && (p = strstr(text, field)) != NULL)
        v = strtol(p + strlen(field) + 1, NULL, 10);
    free(text);
    return v;
}

/* The first field of /proc/loadavg (static buffer). */
static const char *loadavg(void)
{
    static char out[16];
    char *text = proc_read_file("/proc/loadavg");

    snprintf(out, sizeof(out), "%.*s", text ? (int)strcspn(text, " ") : 1, text ? text : "?");
    free(text);
    return out;
}

/* CPU seconds (user + system) the process has used so far, -1 when unreadable. */
static double cpu_s(pid_t pid)
{
    char path[64], *text, *p;
    unsigned long long ut = 0, st = 0;
    double r = -1;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    text = proc_read_file(path);
    /* fields after the command's closing parenthesis: state is field 3, utime 14, stime 15 */
    if (text && (p = strrchr(text, ')')) != NULL &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
        r = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    free(text);
    return r;
}

/* The dockerd serving the tests (its pid file from /var/run/docker.pid), or -1. */
static pid_t dockerd_pid(void)
{
    char *text = proc_read_file("/var/run/docker.pid");
    long v = text ? strtol(text, NULL, 10) : -1;

    free(text);
    return v > 0 ? (pid_t)v : -1;
}

/* Start `kontena args...` as the platform's logged-in admin with stdout on a pipe (*fd) and
 * stderr to err_path. The pid or -1. */
static pid_t spawn_follower(struct platform *p, const char *const args[], const char *err_path,
                            int *fd)
{
    int pipefd[2];
    pid_t pid;

    if (pipe(pipefd) == -1)
        return -1;
    pid = fork();
    if (pid == -1) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        const char *argv[32];
        char *bin = xasprintf("%s/kontena", KONTENA_BIN_DIR);
        char *cfg = xasprintf("%s/kontena_client.json", p->api.dir);
        int n = 0, efd = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

        argv[n++] = bin;
        for (size_t i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("HOME", p->api.dir, 1);
        setenv("KONTENA_CONFIG", cfg, 1);
        dup2(pipefd[1], 1);
        if (efd != -1)
            dup2(efd, 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    *fd = pipefd[0];
    return pid;
}

int main(int argc, char **argv)
{
    int containers = 4, lines = 250000, timeout_s = 300, fd = -1, rc = 1;
    struct platform pf;
    struct platform_opts o = {0};
    char *stack = NULL, *text, *file, *svc = NULL, *err_path = NULL, *log_dir;
    long long want, got = 0;
    int64_t t_first = 0, t_last = 0, deadline, next_sample = 0;
    long agent_peak = 0, api_peak = 0;
    double cpu0[4] = {0, 0, 0, 0}; /* agent, apiserver, CLI, dockerd at the first line */
    pid_t dockerd = dockerd_pid();
    pid_t cli = -1;
    char buf[1 << 16];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--containers") && i + 1 < argc)
            containers = int_arg(argv[++i], 1, 50, "--containers");
        else if (!strcmp(argv[i], "--lines") && i + 1 < argc)
            lines = int_arg(argv[++i], 1, 10000000, "--lines");
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = int_arg(argv[++i], 10, 3600, "--timeout");
        else {
            fprintf(stderr, "usage: %s [--containers N] [--lines N] [--timeout SECONDS]\n",
                    argv[0]);
            return 2;
        }
    }
    want = (long long)containers * lines;
    memset(&pf, 0, sizeof(pf));
    signal(SIGPIPE, SIG_IGN);
    docker_env_global_setup();
    if (getenv("KONTENA_TEST_DOCKER_ERROR") && *getenv("KONTENA_TEST_DOCKER_ERROR")) {
        fprintf(stderr, "bench_logs: Docker is not usable: %s\n",
                getenv("KONTENA_TEST_DOCKER_ERROR"));
        return 1;
    }
    log_dir = proc_tempdir("kontena-bench-logs");
    setenv("KONTENA_LOG_DIR", log_dir, 1);
    setenv("KONTENA_METRICS_LISTEN", "off", 1);
    o.agents = 1;
    o.grid_suffix = "blogs";
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        goto out;
    }
    stack = platform_name("blogs");
    text = xasprintf("stack: bench/logs\nversion: 1.0.0\nservices:\n"
                     "  flood:\n"
                     "    image: " DOCKER_ENV_IMAGE "\n"
                     "    instances: %d\n"
                     "    stop_grace_period: 1s\n"
                     "    command: sh -c 'sleep 8; seq 1 %d | sed \"s/^/bench-line-/\"; "
                     "exec sleep 3600'\n",
                     containers, lines);
    file = platform_write_file(&pf, "bench.yml", text);
    free(text);
    if (!file || platform_cli(&pf, "stack", "install", "--name", stack, "--no-wait", file, NULL)) {
        fprintf(stderr, "bench_logs: stack install failed: %s%s\n", pf.out, pf.err);
        free(file);
        goto out;
    }
    free(file);
    svc = xasprintf("%s/flood", stack);
    err_path = xasprintf("%s/follower.err", pf.api.dir);
    {
        const char *args[] = {"service", "logs", "-f", "--tail", "1", svc, NULL};
        cli = spawn_follower(&pf, args, err_path, &fd);
    }
    if (cli == -1) {
        fprintf(stderr, "bench_logs: cannot start the follower: %s\n", strerror(errno));
        goto out;
    }
    printf("bench_logs: %d containers x %d lines (busybox seq | sed, ~20 bytes a line), 1 agent, "
           "follower: kontena service logs -f (text output to a pipe)\n",
           containers, lines);
    fflush(stdout);

    deadline = time_mono_ms() + (int64_t)timeout_s * 1000;
    while (got < want && time_mono_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t now = time_mono_ms();
        ssize_t n;

        if (now >= next_sample) {
            long a = status_kb(pf.agents[0].pid, "VmRSS:"), s = status_kb(pf.api.pid, "VmRSS:");
            if (a > agent_peak)
                agent_peak = a;
            if (s > api_peak)
                api_peak = s;
            next_sample = now + 100;
        }
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n') {
                if (!t_first) {
                    t_first = time_mono_ms();
                    cpu0[0] = cpu_s(pf.agents[0].pid);
                    cpu0[1] = cpu_s(pf.api.pid);
                    cpu0[2] = cpu_s(cli);
                    cpu0[3] = dockerd > 0 ? cpu_s(dockerd) : 0;
                }
                got++;
            }
        if (got)
            t_last = time_mono_ms();
    }
    if (got < want) {
        fprintf(stderr, "bench_logs: the follower printed %lld of %lld lines in %d s\n", got, want,
                timeout_s);
        proc_dump_file(err_path);
    }
    {
        double secs = (double)(t_last - t_first) / 1000.0;
        long a_hwm = status_kb(pf.agents[0].pid, "VmHWM:"),
             a_rss = status_kb(pf.agents[0].pid, "VmRSS:");
        long s_hwm = status_kb(pf.api.pid, "VmHWM:"), s_rss = status_kb(pf.api.pid, "VmRSS:");
        long c_hwm = status_kb(cli, "VmHWM:");

        printf("lines: %lld of %lld in %.3f s (first to last line at the CLI): %.0f lines/s "
               "(goal >= 50000)\n",
               got, want, secs, secs > 0 ? (double)got / secs : 0.0);
        printf("agent:     peak RSS %ld KiB (VmHWM), sampled peak %ld KiB, now %ld KiB\n", a_hwm,
               agent_peak, a_rss);
        printf("apiserver: peak RSS %ld KiB (VmHWM), sampled peak %ld KiB, now %ld KiB\n", s_hwm,
               api_peak, s_rss);
        printf("cli:       peak RSS %ld KiB (VmHWM)\n", c_hwm);
        printf("CPU seconds from the first to the last line: agent %.2f, apiserver %.2f, cli %.2f, "
               "dockerd %.2f (of %.2f s wall on %ld CPUs; load average now %s)\n",
               cpu_s(pf.agents[0].pid) - cpu0[0], cpu_s(pf.api.pid) - cpu0[1], cpu_s(cli) - cpu0[2],
               dockerd > 0 ? cpu_s(dockerd) - cpu0[3] : -1.0, secs, sysconf(_SC_NPROCESSORS_ONLN),
               loadavg());
        rc = got == want ? 0 : 1;
    }
out:
    if (cli > 0)
        proc_stop(cli, SIGTERM, 3000);
    if (fd != -1)
        close(fd);
    platform_cleanup(&pf);
    proc_rmtree(log_dir);
    free(log_dir);
    free(err_path);
    free(svc);
    free(stack);
    docker_env_global_cleanup();
    return rc;
}
