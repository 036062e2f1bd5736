/* lb/haproxy.c -- haproxy processes (see haproxy.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "lb/haproxy.h"

#include "common/banned.h"

#define CHECK_TIMEOUT_MS 20000
#define OUTPUT_CAP (64 * 1024)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child, before exec: die with the parent, default signals, nothing inherited
 * but stdin/stdout/stderr. */
static void child_setup(pid_t parent)
{
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    close_range(3, ~0U, 0);
}

/* Wait for pid up to timeout_ms; the wait status, or -1 on timeout / not our child. */
static int wait_for(pid_t pid, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int ws;

    for (;;) {
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid)
            return ws;
        if (r == -1 && errno != EINTR)
            return -1;
        if (now_ms() >= end)
            return -1;
        poll(NULL, 0, 20);
    }
}

enum status lb_haproxy_check(const char *bin, const char *cfg, char **output, struct err *e)
{
    int fds[2];
    pid_t parent = getpid(), pid;
    struct buf out = BUF_INIT;
    long long end = now_ms() + CHECK_TIMEOUT_MS;
    int ws = -1, done = 0;
    enum status st;

    if (output)
        *output = NULL;
    if (pipe2(fds, O_CLOEXEC) == -1)
        return err_set(e, ST_IO, "cannot run '%s -c': pipe: %s", bin, strerror(errno));
    pid = fork();
    if (pid == -1) {
        close(fds[0]);
        close(fds[1]);
        return err_set(e, ST_IO, "cannot run '%s -c': fork: %s", bin, strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        child_setup(parent);
        execl(bin, bin, "-c", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    buf_init(&out, OUTPUT_CAP);
    while (!done) {
        struct pollfd p = {fds[0], POLLIN, 0};
        long long left = end - now_ms();
        char chunk[4096];
        ssize_t r;
        if (left <= 0)
            break;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        r = read(fds[0], chunk, sizeof(chunk));
        if (r > 0) {
            if (out.len + (size_t)r <= OUTPUT_CAP)
                if (buf_append(&out, chunk, (size_t)r) != ST_OK)
                    break;
        } else if (r == 0 || errno != EINTR) {
            done = 1;
        }
    }
    close(fds[0]);
    ws = wait_for(pid, done ? 5000 : 0);
    if (ws == -1) {
        kill(pid, SIGKILL);
        ws = wait_for(pid, 2000);
        st = err_set(e, ST_IO, "'%s -c -f %s' did not finish within %d s", bin, cfg,
                     CHECK_TIMEOUT_MS / 1000);
        goto out;
    }
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        st = ST_OK;
    } else if (WIFEXITED(ws) && WEXITSTATUS(ws) == 127) {
        st = err_set(e, ST_IO, "cannot run '%s'", bin);
    } else {
        st = err_set(e, ST_INVALID, "haproxy refuses the configuration '%s'", cfg);
        if (output)
            *output = buf_take(&out);
    }
out:
    buf_release(&out);
    return st;
}

enum status lb_haproxy_start(const char *bin, const char *cfg, const char *master_sock, pid_t *pid,
                             struct err *e)
{
    pid_t parent = getpid(), p;

    unlink(master_sock);
    p = fork();
    if (p == -1)
        return err_set(e, ST_IO, "cannot start '%s': fork: %s", bin, strerror(errno));
    if (p == 0) {
        child_setup(parent);
        execl(bin, bin, "-W", "-db", "-f", cfg, "-S", master_sock, (char *)NULL);
        _exit(127);
    }
    *pid = p;
    return ST_OK;
}

enum status lb_haproxy_reload(pid_t pid, struct err *e)
{
    if (pid <= 0 || kill(pid, SIGUSR2) == -1)
        return err_set(e, ST_IO, "cannot signal haproxy (pid %d): %s", (int)pid,
                       pid <= 0 ? "not running" : strerror(errno));
    return ST_OK;
}

int lb_haproxy_stop(pid_t pid, int timeout_ms)
{
    int ws;

    if (pid <= 0)
        return -1;
    kill(pid, SIGUSR1);
    ws = wait_for(pid, timeout_ms);
    if (ws != -1)
        return ws;
    kill(pid, SIGTERM);
    ws = wait_for(pid, 2000);
    if (ws != -1)
        return ws;
    kill(pid, SIGKILL);
    return wait_for(pid, 2000);
}

enum status lb_haproxy_cli(const char *sock, const char *cmds, char **reply, struct err *e)
{
    struct sockaddr_un a = {0};
    int fd;
    struct buf out = BUF_INIT;
    char *line = xasprintf("%s\n", cmds);
    size_t off = 0, len = strlen(line);
    long long end = now_ms() + 2000;
    enum status st = ST_OK;

    *reply = NULL;
    if (strlen(sock) >= sizeof(a.sun_path)) {
        free(line);
        return err_set(e, ST_INVALID, "socket path '%s' too long", sock);
    }
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
        st = err_set(e, ST_IO, "cannot connect to '%s': %s", sock, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1) {
            st = err_set(e, ST_IO, "cannot write to '%s': %s", sock, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    buf_init(&out, OUTPUT_CAP);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = end - now_ms();
        char chunk[4096];
        ssize_t r;
        if (left <= 0) {
            st = err_set(e, ST_IO, "no answer from '%s' within 2 s", sock);
            break;
        }
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        r = read(fd, chunk, sizeof(chunk));
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (out.len + (size_t)r > OUTPUT_CAP || buf_append(&out, chunk, (size_t)r) != ST_OK)
            break;
    }
    if (st == ST_OK)
        *reply = buf_take(&out);
out:
    if (fd != -1)
        close(fd);
    buf_release(&out);
    free(line);
    return st;
}

pid_t lb_haproxy_current_worker(const char *master_sock)
{
    char *reply = NULL;
    const char *p;
    pid_t pid = 0;

    /* The master CLI keeps the connection open unless told to quit. */
    if (lb_haproxy_cli(master_sock, "show proc;quit", &reply, NULL) != ST_OK)
        return 0;
    /* "#<PID> <type> ...", "<pid> master ...", "# workers", "<pid> worker ...", "# old workers" */
    p = strstr(reply, "# workers\n");
    if (p) {
        p += 10;
        if (*p >= '0' && *p <= '9' && strstr(p, "worker") && strchr(p, '\n') &&
            strstr(p, "worker") < strchr(p, '\n'))
            pid = (pid_t)atoi(p);
    }
    free(reply);
    return pid;
}
