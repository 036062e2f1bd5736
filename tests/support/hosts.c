/* tests/support/hosts.c -- see hosts.h. The work is done by hack/hosts.sh; this file runs it
 * and parses the lines `up` prints:
 *     master 10.251.K.1
 *     host I P-hI 10.250.K.(10+I) /run/kontena-hosts/P/hI/docker.sock
 */
#include "tests/support/hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/proc.h"

#define EXEC_DEFAULT_TIMEOUT_S 30
#define DOCKER_TIMEOUT_S 60

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void set_err(struct hosts *hs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct hosts *hs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(hs->err, sizeof(hs->err), fmt, ap);
    va_end(ap);
    fprintf(stderr, "hosts: %s\n", hs->err);
}

static void chomp(char *s)
{
    size_t n = s ? strlen(s) : 0;

    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* hack/hosts.sh <verb> [n] --prefix P [--subnet K]; exit status, output in *out and *err. */
static int run_script(const char *verb, int n, const char *prefix, int subnet, char **out,
                      char **err)
{
    char *path = xasprintf("%s/hack/hosts.sh", docker_env_source_dir());
    char nbuf[16], kbuf[16];
    const char *argv[10];
    int a = 0, rc;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    snprintf(kbuf, sizeof(kbuf), "%d", subnet);
    argv[a++] = path;
    argv[a++] = verb;
    if (n > 0)
        argv[a++] = nbuf;
    argv[a++] = "--prefix";
    argv[a++] = prefix;
    if (subnet >= 0) {
        argv[a++] = "--subnet";
        argv[a++] = kbuf;
    }
    argv[a] = NULL;
    rc = proc_run(argv, NULL, NULL, out, err);
    free(path);
    return rc;
}

void hosts_init(struct hosts *hs, const char *prefix, int subnet)
{
    const char *p = prefix ? prefix : getenv("KONTENA_HOSTS_PREFIX");
    const char *k = getenv("KONTENA_HOSTS_SUBNET");

    memset(hs, 0, sizeof(*hs));
    snprintf(hs->prefix, sizeof(hs->prefix), "%s", p && *p ? p : "kh");
    hs->subnet = subnet >= 0 ? subnet : (k && *k ? atoi(k) : 0);
}

static int down(const char *prefix, char *errbuf, size_t errlen)
{
    char *out = NULL, *err = NULL;
    int rc = run_script("down", 0, prefix, -1, &out, &err);

    if (rc != 0) {
        chomp(err);
        snprintf(errbuf, errlen, "hack/hosts.sh down --prefix %s exited with %d: %s", prefix, rc,
                 err ? err : "");
        fprintf(stderr, "hosts: %s\n", errbuf);
    }
    free(out);
    free(err);
    return rc == 0 ? 0 : -1;
}

int hosts_down_prefix(const char *prefix)
{
    char e[512];

    return down(prefix, e, sizeof(e));
}

int hosts_down(struct hosts *hs)
{
    long t0 = now_ms();
    int rc;

    if (!hs->prefix[0])
        hosts_init(hs, NULL, -1);
    rc = down(hs->prefix, hs->err, sizeof(hs->err));
    hs->down_ms = now_ms() - t0;
    hs->n = 0;
    memset(hs->host, 0, sizeof(hs->host));
    return rc;
}

/* One "host I NS IP SOCK" line into hs->host[I-1]; 0 or -1. */
static int parse_host(struct hosts *hs, const char *line, int want)
{
    char ns[64], ip[64], sock[256];
    int idx;
    struct hosts_host *h;

    if (sscanf(line, "host %d %63s %63s %255s", &idx, ns, ip, sock) != 4)
        return -1;
    if (idx < 1 || idx > want || strlen(ns) >= sizeof(h->netns) || strlen(ip) >= sizeof(h->ip) ||
        strlen(sock) >= sizeof(h->sock))
        return -1;
    h = &hs->host[idx - 1];
    h->index = idx;
    memcpy(h->netns, ns, strlen(ns) + 1);
    memcpy(h->ip, ip, strlen(ip) + 1);
    memcpy(h->sock, sock, strlen(sock) + 1);
    memcpy(h->docker_host, "unix://", 7);
    memcpy(h->docker_host + 7, sock, strlen(sock) + 1); /* 7 + 127 + 1 <= 136 */
    return 0;
}

int hosts_up(struct hosts *hs, int n)
{
    char *out = NULL, *err = NULL, *save = NULL, *line;
    long t0 = now_ms();
    int rc, got = 0;

    if (!hs->prefix[0])
        hosts_init(hs, NULL, -1);
    if (n < 1 || n > HOSTS_MAX) {
        set_err(hs, "hosts_up: %d hosts asked, 1..%d possible", n, HOSTS_MAX);
        return -1;
    }
    /* leftovers of a crashed or timed-out run with this prefix would be reused half-made */
    if (down(hs->prefix, hs->err, sizeof(hs->err)) != 0)
        return -1;
    rc = run_script("up", n, hs->prefix, hs->subnet, &out, &err);
    if (rc != 0) {
        chomp(err);
        set_err(hs, "hack/hosts.sh up %d --prefix %s --subnet %d exited with %d: %s", n, hs->prefix,
                hs->subnet, rc, err ? err : "");
        free(out);
        free(err);
        return -1;
    }
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "master ", 7) == 0) {
            snprintf(hs->master, sizeof(hs->master), "%s", line + 7);
        } else if (strncmp(line, "host ", 5) == 0) {
            if (parse_host(hs, line, n) != 0) {
                set_err(hs, "hack/hosts.sh up printed an unexpected line: '%s'", line);
                free(out);
                free(err);
                return -1;
            }
            got++;
        }
    }
    free(out);
    free(err);
    if (got != n || !hs->master[0]) {
        set_err(hs, "hack/hosts.sh up %d printed %d hosts%s", n, got,
                hs->master[0] ? "" : " and no master address");
        return -1;
    }
    hs->n = n;
    hs->up_ms = now_ms() - t0;
    return 0;
}

int hosts_exec_env(const struct hosts_host *h, const char *const argv[], const char *const env[],
                   int timeout_s, char **out, char **err)
{
    const char **full;
    char tbuf[16];
    size_t n = 0, i;
    int rc;

    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!h || !h->netns[0] || !argv || !argv[0])
        return -1;
    while (argv[n])
        n++;
    full = xcalloc(n + 8, sizeof(*full));
    snprintf(tbuf, sizeof(tbuf), "%d", timeout_s > 0 ? timeout_s : EXEC_DEFAULT_TIMEOUT_S);
    /* timeout -k: a command ignoring SIGTERM is killed 2 s later */
    full[0] = "timeout";
    full[1] = "-k2";
    full[2] = tbuf;
    full[3] = "ip";
    full[4] = "netns";
    full[5] = "exec";
    full[6] = h->netns;
    for (i = 0; i < n; i++)
        full[7 + i] = argv[i];
    full[7 + n] = NULL;
    rc = proc_run(full, env, NULL, out, err);
    free(full);
    return rc;
}

int hosts_exec(const struct hosts_host *h, const char *const argv[], char **out, char **err)
{
    return hosts_exec_env(h, argv, NULL, 0, out, err);
}

int hosts_docker(const struct hosts_host *h, const char *const args[], char **out, char **err)
{
    const char **full;
    char tbuf[16];
    size_t n = 0, i;
    int rc;

    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!h || !h->docker_host[0] || !args)
        return -1;
    while (args[n])
        n++;
    full = xcalloc(n + 7, sizeof(*full));
    snprintf(tbuf, sizeof(tbuf), "%d", DOCKER_TIMEOUT_S);
    full[0] = "timeout";
    full[1] = "-k2";
    full[2] = tbuf;
    full[3] = "docker";
    full[4] = "-H";
    full[5] = h->docker_host;
    for (i = 0; i < n; i++)
        full[6 + i] = args[i];
    full[6 + n] = NULL;
    rc = proc_run(full, NULL, NULL, out, err);
    free(full);
    return rc;
}

/* --- relay -------------------------------------------------------------------------------- */

#define RELAY_MAX_CONN 64
#define RELAY_BUF 65536

struct relay_conn {
    int fd[2];   /* 0: the host's side, 1: the loopback server; -1 when closed */
    int done[2]; /* direction fd[i] -> fd[1-i] has seen EOF */
};

struct hosts_relay {
    int lfd;
    int port;
    int target_port;
    int stop[2]; /* pipe: a byte written = stop */
    pthread_t thread;
    struct relay_conn conn[RELAY_MAX_CONN];
};

static void conn_close(struct relay_conn *c)
{
    if (c->fd[0] >= 0)
        close(c->fd[0]);
    if (c->fd[1] >= 0)
        close(c->fd[1]);
    c->fd[0] = c->fd[1] = -1;
    c->done[0] = c->done[1] = 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void relay_accept(struct hosts_relay *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target_port)};
    int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC), s, i;

    if (c < 0)
        return;
    for (i = 0; i < RELAY_MAX_CONN && r->conn[i].fd[0] >= 0; i++)
        ;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* a blocking connect to loopback answers at once (accepted or refused) */
    if (i == RELAY_MAX_CONN || s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (s >= 0)
            close(s);
        close(c);
        return;
    }
    r->conn[i].fd[0] = c;
    r->conn[i].fd[1] = s;
    r->conn[i].done[0] = r->conn[i].done[1] = 0;
}

/* Copy what fd[dir] has to fd[1-dir]; on EOF pass the half-close on. */
static void relay_copy(struct relay_conn *c, int dir, char *buf)
{
    ssize_t n = recv(c->fd[dir], buf, RELAY_BUF, 0);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        c->done[dir] = 1;
        shutdown(c->fd[1 - dir], SHUT_WR);
        if (n < 0 || c->done[1 - dir])
            conn_close(c);
        return;
    }
    if (write_all(c->fd[1 - dir], buf, (size_t)n) != 0)
        conn_close(c);
}

static void *relay_main(void *arg)
{
    struct hosts_relay *r = arg;
    char *buf = xmalloc(RELAY_BUF);

    for (;;) {
        struct pollfd p[2 + 2 * RELAY_MAX_CONN];
        int who[2 + 2 * RELAY_MAX_CONN];
        int np = 2, i, k;

        p[0] = (struct pollfd){r->stop[0], POLLIN, 0};
        p[1] = (struct pollfd){r->lfd, POLLIN, 0};
        for (i = 0; i < RELAY_MAX_CONN; i++) {
            for (k = 0; k < 2; k++) {
                if (r->conn[i].fd[k] < 0 || r->conn[i].done[k])
                    continue;
                p[np] = (struct pollfd){r->conn[i].fd[k], POLLIN, 0};
                who[np++] = i * 2 + k;
            }
        }
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents)
            break;
        for (i = 2; i < np; i++) {
            struct relay_conn *c = &r->conn[who[i] / 2];
            /* the connection may have been closed by its other direction in this round */
            if (p[i].revents && c->fd[who[i] % 2] == p[i].fd)
                relay_copy(c, who[i] % 2, buf);
        }
        if (p[1].revents & POLLIN)
            relay_accept(r);
    }
    free(buf);
    return NULL;
}

struct hosts_relay *hosts_relay_start(struct hosts *hs, int port, int target_port)
{
    struct hosts_relay *r;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(sa);
    int one = 1, i;

    if (port < 0 || port > 65535 || target_port <= 0 || target_port > 65535) {
        set_err(hs, "hosts_relay_start: bad port %d or target port %d", port, target_port);
        return NULL;
    }
    if (inet_pton(AF_INET, hs->master, &sa.sin_addr) != 1) {
        set_err(hs, "hosts_relay_start: no master address (hosts not up?)");
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    for (i = 0; i < RELAY_MAX_CONN; i++)
        r->conn[i].fd[0] = r->conn[i].fd[1] = -1;
    r->target_port = target_port;
    r->stop[0] = r->stop[1] = -1;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->lfd < 0 || setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(r->lfd, 64) != 0 ||
        getsockname(r->lfd, (struct sockaddr *)&sa, &len) != 0 || pipe2(r->stop, O_CLOEXEC) != 0) {
        set_err(hs, "hosts_relay_start: listen on %s:%d: %s", hs->master, port, strerror(errno));
        goto fail;
    }
    r->port = ntohs(sa.sin_port);
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        set_err(hs, "hosts_relay_start: cannot start its thread");
        goto fail;
    }
    return r;
fail:
    if (r->lfd >= 0)
        close(r->lfd);
    if (r->stop[0] >= 0) {
        close(r->stop[0]);
        close(r->stop[1]);
    }
    free(r);
    return NULL;
}

int hosts_relay_port(const struct hosts_relay *r)
{
    return r ? r->port : 0;
}

void hosts_relay_stop(struct hosts_relay *r)
{
    int i;

    if (!r)
        return;
    if (write(r->stop[1], "x", 1) != 1)
        fprintf(stderr, "hosts: cannot signal the relay thread: %s\n", strerror(errno));
    pthread_join(r->thread, NULL);
    for (i = 0; i < RELAY_MAX_CONN; i++)
        conn_close(&r->conn[i]);
    close(r->lfd);
    close(r->stop[0]);
    close(r->stop[1]);
    free(r);
}
