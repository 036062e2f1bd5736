/* tests/support/hosts.c -- see hosts.h. The work is done by hack/hosts.sh; this file runs it
 * and parses the lines `up` prints:
 *     master 10.251.K.1
 *     host I P-hI 10.250.K.(10+I) /run/kontena-hosts/P/hI/docker.sock
 */
#include "tests/support/hosts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/proc.h"
#include "common/banned.h"

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
        set_err(hs, "hack/hosts.sh up %d --prefix %s --subnet %d exited with %d: %s", n,
                hs->prefix, hs->subnet, rc, err ? err : "");
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
