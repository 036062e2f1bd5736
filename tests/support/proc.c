#include "tests/support/proc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

extern char **environ;

int proc_free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd == -1)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

static void apply_env(const char *const env[])
{
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
}

pid_t proc_spawn(const char *const argv[], const char *const env[], const char *log_path)
{
    pid_t parent = getpid(), pid = fork();

    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull != -1)
            dup2(devnull, 0);
    }
    apply_env(env);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
    _exit(127);
}

int proc_stop(pid_t pid, int sig, int timeout_ms)
{
    int status;
    int64_t deadline = time_mono_ms() + timeout_ms;

    if (pid <= 0)
        return -1;
    kill(pid, sig);
    while (time_mono_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r == -1)
            return -1;
        time_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    return waitpid(pid, &status, 0) == pid ? status : -1;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
    (void)p;
    (void)u;
    return sz * n;
}

int proc_wait_http(const char *url, long want, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    CURL *h = curl_easy_init();
    int rc = -1;

    while (time_mono_ms() < deadline) {
        long code = 0;
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(h) == CURLE_OK &&
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == want) {
            rc = 0;
            break;
        }
        time_sleep_ms(50);
    }
    curl_easy_cleanup(h);
    return rc;
}

static void drain(int fd, struct buf *b, int *open_flag)
{
    char chunk[8192];
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n > 0) {
        if (buf_append(b, chunk, (size_t)n) != ST_OK)
            *open_flag = 0;
    } else if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN)) {
        *open_flag = 0;
    }
}

int proc_run(const char *const argv[], const char *const env[], const char *input, char **out,
             char **err)
{
    int pin[2], pout[2], perr[2], status = 0;
    struct buf bo, be;
    pid_t pid;
    int oopen = 1, eopen = 1;

    buf_init(&bo, 64 << 20);
    buf_init(&be, 64 << 20);
    if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(pout, O_CLOEXEC) == -1 || pipe2(perr, O_CLOEXEC) == -1)
        return -1;
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        apply_env(env);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (input) {
        size_t len = strlen(input), off = 0;
        signal(SIGPIPE, SIG_IGN);
        while (off < len) {
            ssize_t n = write(pin[1], input + off, len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    close(pin[1]);
    while (oopen || eopen) {
        struct pollfd fds[2] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}};
        if (poll(fds, 2, 1000) == -1 && errno != EINTR)
            break;
        if (oopen && fds[0].revents)
            drain(pout[0], &bo, &oopen);
        if (eopen && fds[1].revents)
            drain(perr[0], &be, &eopen);
    }
    close(pout[0]);
    close(perr[0]);
    waitpid(pid, &status, 0);
    if (out)
        *out = buf_take(&bo);
    if (err)
        *err = buf_take(&be);
    buf_release(&bo);
    buf_release(&be);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

char *proc_tempdir(const char *prefix)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *path = xasprintf("%s/%s-XXXXXX", tmp, prefix);

    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void proc_rmtree(const char *path)
{
    if (path && *path && strcmp(path, "/") != 0)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* never follows symlinks */
}

void proc_dump_file(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];

    if (!f)
        return;
    fprintf(stderr, "--- %s\n", path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

char *proc_read_file(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    struct buf b;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    buf_init(&b, 64u << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) != ST_OK)
            break;
    fclose(f);
    return buf_take(&b);
}
