/* tests/support/etcd_proc.c -- start, stop and restart a real etcd (see etcd_proc.h). */
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/timeutil.h"

#include "common/banned.h"

#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 10000
#define START_TRIES 3

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *member_name(const struct etcd_proc *p)
{
    const char *slash = strrchr(p->dir, '/');

    return slash ? slash + 1 : p->dir; /* the temp dir's name is unique */
}

/* Child side: never returns. */
static void exec_etcd(const struct etcd_proc *p, pid_t parent)
{
    char data[300], logf[300], cu[64], pu[64], cluster[400], name[256];
    const char *argv[40];
    const char *bin = getenv("ETCD_BIN");
    int n = 0, fd;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
        _exit(127); /* the parent is already gone */
    snprintf(data, sizeof(data), "%s/data", p->dir);
    snprintf(logf, sizeof(logf), "%s/etcd.log", p->dir);
    snprintf(cu, sizeof(cu), "%s", p->endpoint);
    snprintf(pu, sizeof(pu), "http://127.0.0.1:%d", p->peer_port);
    snprintf(name, sizeof(name), "%s", member_name(p));
    snprintf(cluster, sizeof(cluster), "%s=%s", name, pu);

    fd = open("/dev/null", O_RDONLY);
    if (fd != -1) {
        dup2(fd, 0);
        close(fd);
    }
    fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd == -1)
        _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    /* Leave nothing of the test runner open in etcd (Criterion's pipes and sockets). */
    for (int i = 3; i < 1024; i++)
        close(i);

    argv[n++] = "etcd";
    argv[n++] = "--name";
    argv[n++] = name;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--listen-client-urls";
    argv[n++] = cu;
    argv[n++] = "--advertise-client-urls";
    argv[n++] = cu;
    argv[n++] = "--listen-peer-urls";
    argv[n++] = pu;
    argv[n++] = "--initial-advertise-peer-urls";
    argv[n++] = pu;
    argv[n++] = "--initial-cluster";
    argv[n++] = cluster;
    argv[n++] = "--initial-cluster-token";
    argv[n++] = name;
    argv[n++] = "--logger";
    argv[n++] = "zap";
    argv[n++] = "--log-outputs";
    argv[n++] = "stderr";
    if (p->cert_file && p->key_file) {
        argv[n++] = "--cert-file";
        argv[n++] = p->cert_file;
        argv[n++] = "--key-file";
        argv[n++] = p->key_file;
    }
    for (int i = 0; i < ETCD_PROC_MAX_ARGS && p->extra_args[i]; i++)
        argv[n++] = p->extra_args[i];
    argv[n] = NULL;
    execvp(bin ? bin : "etcd", (char *const *)argv);
    fprintf(stderr, "etcd_proc: cannot run '%s': %s\n", bin ? bin : "etcd", strerror(errno));
    _exit(127);
}

struct body {
    char data[4096];
    size_t len;
};

static size_t body_write(char *ptr, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len = size * n, room = sizeof(b->data) - 1 - b->len;

    if (len > room)
        len = room; /* only the start matters */
    memcpy(b->data + b->len, ptr, len);
    b->len += len;
    b->data[b->len] = '\0';
    return size * n;
}

/* GET or POST (when post is not NULL) path; 1 if it answered 200 with `want` in the body. */
static int probe(const struct etcd_proc *p, const char *path, const char *post, const char *want)
{
    CURL *h = curl_easy_init();
    struct body b = {.len = 0};
    char url[128];
    long code = 0;
    int ok = 0;

    if (!h)
        return 0;
    snprintf(url, sizeof(url), "%s%s", p->endpoint, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (post)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    b.data[0] = '\0';
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        ok = code == 200 && strstr(b.data, want) != NULL;
    }
    curl_easy_cleanup(h);
    return ok;
}

/* 1 once our etcd is healthy, 0 on timeout, -1 if it exited. */
static int wait_ready(struct etcd_proc *p)
{
    int64_t deadline = time_mono_ms() + START_TIMEOUT_MS;
    char want[300];
    int status;

    snprintf(want, sizeof(want), "\"name\":\"%s\"", member_name(p));
    while (time_mono_ms() < deadline) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return -1;
        }
        if (probe(p, "/health", NULL, "true") && probe(p, "/v3/cluster/member/list", "{}", want))
            return 1;
        time_sleep_ms(50);
    }
    return 0;
}

static int spawn(struct etcd_proc *p)
{
    pid_t parent = getpid(), pid;
    int r;

    snprintf(p->endpoint, sizeof(p->endpoint), "%s://127.0.0.1:%d", p->cert_file ? "https" : "http",
             p->client_port);
    fflush(NULL);
    pid = fork();
    if (pid == -1) {
        fprintf(stderr, "etcd_proc: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        exec_etcd(p, parent);
    p->pid = pid;
    r = wait_ready(p);
    if (r == 1)
        return 0;
    if (r == 0) {
        fprintf(stderr, "etcd_proc: etcd at %s not healthy after %d ms, see %s/etcd.log\n",
                p->endpoint, START_TIMEOUT_MS, p->dir);
        etcd_proc_kill(p);
    }
    return -1;
}

int etcd_proc_start(struct etcd_proc *p)
{
    const char *tmp = getenv("TMPDIR");

    pthread_once(&curl_once, curl_init_once);
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(p->dir, sizeof(p->dir), "%s/etcdproc-XXXXXX", tmp);
    if (!mkdtemp(p->dir)) {
        fprintf(stderr, "etcd_proc: mkdtemp '%s': %s\n", p->dir, strerror(errno));
        p->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < START_TRIES; i++) {
        p->client_port = proc_free_port();
        p->peer_port = proc_free_port();
        if (p->client_port <= 0 || p->peer_port <= 0 || p->client_port == p->peer_port)
            continue;
        if (spawn(p) == 0)
            return 0;
    }
    fprintf(stderr, "etcd_proc: cannot start etcd, see %s/etcd.log\n", p->dir);
    return -1;
}

int etcd_proc_restart(struct etcd_proc *p)
{
    pthread_once(&curl_once, curl_init_once);
    if (p->pid)
        etcd_proc_stop(p);
    /* Same ports: a stranger could have taken one meanwhile; then etcd exits, and we try
     * again shortly in case it was only passing. */
    for (int i = 0; i < START_TRIES; i++) {
        if (spawn(p) == 0)
            return 0;
        time_sleep_ms(200);
    }
    fprintf(stderr, "etcd_proc: cannot restart etcd, see %s/etcd.log\n", p->dir);
    return -1;
}

static int reap(struct etcd_proc *p, int64_t timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r == -1 && errno == ECHILD)) {
            p->pid = 0;
            return 0;
        }
        if (time_mono_ms() >= deadline)
            return -1;
        time_sleep_ms(10);
    }
}

int etcd_proc_stop(struct etcd_proc *p)
{
    if (!p->pid)
        return 0;
    kill(p->pid, SIGTERM);
    if (reap(p, STOP_TIMEOUT_MS) == 0)
        return 0;
    fprintf(stderr, "etcd_proc: etcd %d ignored SIGTERM, killing it\n", (int)p->pid);
    etcd_proc_kill(p);
    return -1;
}

void etcd_proc_kill(struct etcd_proc *p)
{
    if (!p->pid)
        return;
    kill(p->pid, SIGKILL);
    reap(p, STOP_TIMEOUT_MS);
}

void etcd_proc_cleanup(struct etcd_proc *p)
{
    etcd_proc_stop(p);
    if (p->dir[0])
        proc_rmtree(p->dir);
    p->dir[0] = '\0';
}

/* Run etcdctl with args against p, output appended to the etcd log. */
static int etcdctl(const struct etcd_proc *p, const char *const *args)
{
    char ep[96], logf[300];
    const char *argv[16];
    int n = 0, status;
    pid_t pid;

    snprintf(ep, sizeof(ep), "--endpoints=%s", p->endpoint);
    snprintf(logf, sizeof(logf), "%s/etcd.log", p->dir);
    argv[n++] = "etcdctl";
    argv[n++] = ep;
    if (p->cert_file)
        argv[n++] = "--insecure-skip-tls-verify";
    while (*args && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    fflush(NULL);
    pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("ETCDCTL_API", "3", 1);
        execvp("etcdctl", (char *const *)argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "etcd_proc: etcdctl %s failed, see %s\n", argv[2], logf);
        return -1;
    }
    return 0;
}

int etcd_proc_enable_auth(struct etcd_proc *p, const char *root_password)
{
    char user[128];
    const char *add[] = {"user", "add", user, NULL};
    const char *enable[] = {"auth", "enable", NULL};

    snprintf(user, sizeof(user), "root:%s", root_password);
    /* etcdctl's `auth enable` creates the root role and grants it to root if needed. */
    if (etcdctl(p, add) != 0 || etcdctl(p, enable) != 0)
        return -1;
    return 0;
}
