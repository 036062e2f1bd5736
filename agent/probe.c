/* agent/probe.c -- see probe.h. One thread per probed container: it sleeps on the prober's
 * condition variable between checks, so stopping it (a container restart or removal) only
 * has to set its flag and broadcast; the worker never waits for it (stopped entries are
 * joined later, once their thread has finished). */
#include "agent/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#ifndef KONTENA_VERSION
#define KONTENA_VERSION "dev"
#endif

#define SLICE_MS 100
#define WAIT_FOR_PORT_EVERY_MS 1000
#define MAX_STATUS_LINE 1024

enum proto { PROTO_NONE, PROTO_HTTP, PROTO_TCP };

struct entry {
    struct prober *p;
    struct entry *next;
    char *name, *cid, *started, *ip;
    json_t *hc; /* the health_check it was started with (for comparing), or NULL */
    int wfp;
    enum proto proto;
    int port, timeout_s, interval_s, delay_s;
    char *uri;

    /* Under p->mu. */
    json_t *health; /* NULL before the first check */
    int ready;
    int failures;
    int done; /* the thread has returned */

    volatile int stop;
    pthread_t t;
};

struct prober {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *live, *dead;
    json_t *changed; /* name -> true */
    void (*notify)(void *arg);
    void *arg;
};

/* --- one check -------------------------------------------------------------------------- */

static int stopped(const volatile int *stop)
{
    return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE);
}

/* Wait for ev on fd until deadline (monotonic ms); 1 ready, 0 timeout, -1 stopped/error. */
static int wait_fd(int fd, short ev, int64_t deadline, const volatile int *stop)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = ev};
        int64_t left = deadline - time_mono_ms();
        int rc;

        if (stopped(stop))
            return -1;
        if (left <= 0)
            return 0;
        rc = poll(&pfd, 1, (int)(left < SLICE_MS ? left : SLICE_MS));
        if (rc == -1 && errno != EINTR)
            return -1;
        if (rc > 0)
            return 1;
    }
}

/* A connected socket, or -1 with *st (and e) set. */
static int connect_to(const char *ip, int port, int64_t deadline, const volatile int *stop,
                      enum status *st, struct err *e)
{
    struct sockaddr_in sa;
    int fd, soerr = 0, rc;
    socklen_t sl = sizeof(soerr);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!ip || inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        *st = err_set(e, ST_INVALID, "no IPv4 address to check ('%s')", ip ? ip : "");
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *st = err_set(e, ST_IO, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        if (errno != EINPROGRESS) {
            *st = err_set(e, ST_IO, "connect to %s:%d: %s", ip, port, strerror(errno));
            goto fail;
        }
        rc = wait_fd(fd, POLLOUT, deadline, stop);
        if (rc <= 0) {
            *st = err_set(e, rc == 0 ? ST_IO : ST_RETRY, "connect to %s:%d: %s", ip, port,
                          rc == 0 ? "timed out" : "cancelled");
            goto fail;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1 || soerr != 0) {
            *st = err_set(e, ST_IO, "connect to %s:%d: %s", ip, port,
                          strerror(soerr ? soerr : errno));
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    return -1;
}

enum status probe_tcp(const char *ip, int port, int timeout_ms, const volatile int *stop,
                      struct err *e)
{
    enum status st = ST_OK;
    int fd = connect_to(ip, port, time_mono_ms() + timeout_ms, stop, &st, e);
    if (fd == -1)
        return st;
    close(fd);
    return ST_OK;
}

enum status probe_http(const char *ip, int port, const char *uri, int timeout_ms,
                       const volatile int *stop, int *status_code, struct err *e)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    char req[2048], line[MAX_STATUS_LINE + 1];
    size_t sent = 0, got = 0, len;
    int fd, code;
    enum status st = ST_OK;

    *status_code = 0;
    if (!uri || !*uri)
        uri = "/";
    for (const char *s = uri; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return err_set(e, ST_INVALID, "health check uri '%s' has a space or control byte", uri);
    len = (size_t)snprintf(req, sizeof(req),
                           "GET %s%s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: Kontena-Agent/%s\r\n"
                           "Accept: */*\r\nConnection: close\r\n\r\n",
                           *uri == '/' ? "" : "/", uri, ip ? ip : "", port, KONTENA_VERSION);
    if (len >= sizeof(req))
        return err_set(e, ST_INVALID, "health check uri too long");
    fd = connect_to(ip, port, deadline, stop, &st, e);
    if (fd == -1)
        return st;
    while (sent < len) {
        ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            int rc = wait_fd(fd, POLLOUT, deadline, stop);
            if (rc <= 0) {
                st = err_set(e, rc == 0 ? ST_IO : ST_RETRY, "sending the request to %s:%d: %s", ip,
                             port, rc == 0 ? "timed out" : "cancelled");
                goto out;
            }
            continue;
        }
        st = err_set(e, ST_IO, "sending the request to %s:%d: %s", ip, port, strerror(errno));
        goto out;
    }
    while (got < MAX_STATUS_LINE && !memchr(line, '\n', got)) {
        ssize_t n = recv(fd, line + got, MAX_STATUS_LINE - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EAGAIN || errno == EINTR) {
            int rc = wait_fd(fd, POLLIN, deadline, stop);
            if (rc <= 0) {
                st = err_set(e, rc == 0 ? ST_IO : ST_RETRY, "no answer from %s:%d: %s", ip, port,
                             rc == 0 ? "timed out" : "cancelled");
                goto out;
            }
            continue;
        }
        st = err_set(e, ST_IO, "reading the answer of %s:%d: %s", ip, port, strerror(errno));
        goto out;
    }
    line[got] = '\0';
    if (sscanf(line, "HTTP/%*d.%*d %3d", &code) != 1 || code < 100 || code > 599) {
        st = err_set(e, ST_IO, "%s:%d did not answer with an HTTP status line", ip, port);
        goto out;
    }
    *status_code = code;
out:
    close(fd);
    return st;
}

/* --- entries ---------------------------------------------------------------------------- */

static int jint_or(const json_t *o, const char *k, int def, int min, int max)
{
    const json_t *v = json_object_get(o, k);
    json_int_t n;
    if (json_is_integer(v))
        n = json_integer_value(v);
    else if (json_is_real(v))
        n = (json_int_t)json_real_value(v);
    else
        return def;
    return n < min ? min : n > max ? max : (int)n;
}

static void entry_free(struct entry *x)
{
    if (!x)
        return;
    free(x->name);
    free(x->cid);
    free(x->started);
    free(x->ip);
    free(x->uri);
    json_decref(x->hc);
    json_decref(x->health);
    free(x);
}

/* Sleep until deadline (monotonic ms) or stop; 1 when stopping. Called with p->mu held. */
static int sleep_locked(struct entry *x, int64_t deadline)
{
    struct prober *p = x->p;
    while (!stopped(&x->stop)) {
        int64_t left = deadline - time_mono_ms();
        struct timespec ts;
        if (left <= 0)
            break;
        ts = time_deadline(CLOCK_MONOTONIC, left);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    return stopped(&x->stop);
}

static void mark_changed(struct entry *x)
{
    json_object_set_new(x->p->changed, x->name, json_true());
}

static void check_health(struct entry *x)
{
    struct prober *p = x->p;
    struct err e = ERR_INIT;
    json_t *code = json_null();
    char ts[40];
    int healthy, status = 0;

    if (x->proto == PROTO_HTTP) {
        healthy = probe_http(x->ip, x->port, x->uri, x->timeout_s * 1000, &x->stop, &status, &e) ==
                      ST_OK &&
                  status >= 200 && status <= 399;
        if (status)
            code = json_integer(status);
    } else {
        healthy = probe_tcp(x->ip, x->port, x->timeout_s * 1000, &x->stop, &e) == ST_OK;
        code = json_string(healthy ? "open" : "closed");
    }
    if (stopped(&x->stop)) {
        json_decref(code);
        return;
    }
    time_iso8601_now(ts, sizeof(ts));
    pthread_mutex_lock(&p->mu);
    x->failures = healthy ? 0 : x->failures + 1;
    json_decref(x->health);
    x->health = json_pack("{s:s, s:o, s:s, s:i}", "status", healthy ? "healthy" : "unhealthy",
                          "status_code", code, "checked_at", ts, "failures", x->failures);
    mark_changed(x);
    pthread_mutex_unlock(&p->mu);
    if (!healthy)
        log_info("container=%s msg=\"health check failed (%d in a row): %s\"", x->name, x->failures,
                 e.msg[0] ? e.msg : "status out of 200-399");
}

static void *entry_main(void *arg)
{
    struct entry *x = arg;
    struct prober *p = x->p;
    int64_t start = time_mono_ms();
    int64_t next_hc = start + (int64_t)x->delay_s * 1000, next_wfp = start;

    for (;;) {
        int64_t now = time_mono_ms(), wake = INT64_MAX;
        int ready;

        pthread_mutex_lock(&p->mu);
        ready = x->ready;
        pthread_mutex_unlock(&p->mu);
        if (stopped(&x->stop))
            break;
        if (x->wfp && !ready && now >= next_wfp) {
            if (probe_tcp(x->ip, x->wfp, WAIT_FOR_PORT_EVERY_MS, &x->stop, NULL) == ST_OK) {
                pthread_mutex_lock(&p->mu);
                x->ready = 1;
                mark_changed(x);
                pthread_mutex_unlock(&p->mu);
                log_info("container=%s port=%d msg=\"ready: port open\"", x->name, x->wfp);
                p->notify(p->arg);
            }
            next_wfp = time_mono_ms() + WAIT_FOR_PORT_EVERY_MS;
        }
        if (stopped(&x->stop))
            break;
        if (x->proto != PROTO_NONE && now >= next_hc) {
            check_health(x);
            if (stopped(&x->stop))
                break;
            p->notify(p->arg);
            next_hc = now + (int64_t)x->interval_s * 1000;
        }
        pthread_mutex_lock(&p->mu);
        if (x->proto != PROTO_NONE)
            wake = next_hc;
        if (x->wfp && !x->ready && next_wfp < wake)
            wake = next_wfp;
        if (wake == INT64_MAX)
            wake = time_mono_ms() + 3600 * 1000;
        sleep_locked(x, wake);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    x->done = 1;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Join and free stopped entries whose thread has returned (all of them when wait). */
static void reap(struct prober *p, int wait)
{
    struct entry **pp, *x, *done = NULL;

    pthread_mutex_lock(&p->mu);
    for (pp = &p->dead; (x = *pp) != NULL;) {
        if (x->done || wait) {
            *pp = x->next;
            x->next = done;
            done = x;
        } else {
            pp = &x->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (done) {
        x = done;
        done = x->next;
        pthread_join(x->t, NULL);
        entry_free(x);
    }
}

/* Move name's live entry to the dead list, stopping its thread. Called with p->mu held. */
static void kill_locked(struct prober *p, const char *name)
{
    struct entry **pp, *x;

    for (pp = &p->live; (x = *pp) != NULL; pp = &x->next)
        if (!strcmp(x->name, name)) {
            *pp = x->next;
            __atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
            x->next = p->dead;
            p->dead = x;
            pthread_cond_broadcast(&p->cv);
            json_object_set_new(p->changed, name, json_true());
            return;
        }
}

struct prober *probe_create(void (*notify)(void *arg), void *arg)
{
    struct prober *p = xcalloc(1, sizeof(*p));
    pthread_condattr_t ca;

    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->changed = json_object();
    p->notify = notify;
    p->arg = arg;
    return p;
}

void probe_destroy(struct prober *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    while (p->live)
        kill_locked(p, p->live->name);
    pthread_mutex_unlock(&p->mu);
    reap(p, 1);
    json_decref(p->changed);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int same_str(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

void probe_update(struct prober *p, const char *name, const char *container_id,
                  const char *started_at, const char *ip, const json_t *health_check,
                  int wait_for_port)
{
    const char *proto = json_string_value(json_object_get(health_check, "protocol"));
    enum proto pr = PROTO_NONE;
    int port = jint_or(health_check, "port", 0, 0, 65535);
    struct entry *x;
    const json_t *hc = NULL;

    if (proto && !strcmp(proto, "http"))
        pr = PROTO_HTTP;
    else if (proto && !strcmp(proto, "tcp"))
        pr = PROTO_TCP;
    if (pr != PROTO_NONE && port > 0)
        hc = health_check;
    else
        pr = PROTO_NONE;
    if (wait_for_port < 0 || wait_for_port > 65535)
        wait_for_port = 0;

    reap(p, 0);
    pthread_mutex_lock(&p->mu);
    for (x = p->live; x; x = x->next)
        if (!strcmp(x->name, name))
            break;
    if (x && same_str(x->cid, container_id) && same_str(x->started, started_at) &&
        same_str(x->ip, ip) && x->wfp == wait_for_port &&
        ((!x->hc && !hc) || (x->hc && hc && json_equal(x->hc, hc)))) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (x)
        kill_locked(p, name);
    if (pr == PROTO_NONE && !wait_for_port) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    x = xcalloc(1, sizeof(*x));
    x->p = p;
    x->name = xstrdup(name);
    x->cid = xstrdup(container_id ? container_id : "");
    x->started = xstrdup(started_at ? started_at : "");
    x->ip = xstrdup(ip ? ip : "");
    x->hc = hc ? json_deep_copy(hc) : NULL;
    x->wfp = wait_for_port;
    x->proto = pr;
    x->port = port;
    x->uri = xstrdup(json_string_value(json_object_get(health_check, "uri"))
                         ? json_string_value(json_object_get(health_check, "uri"))
                         : "/");
    x->timeout_s = jint_or(health_check, "timeout", 10, 1, 3600);
    x->interval_s = jint_or(health_check, "interval", 60, 1, 86400);
    x->delay_s = jint_or(health_check, "initial_delay", 10, 0, 86400);
    mark_changed(x);
    if (pthread_create(&x->t, NULL, entry_main, x) != 0) {
        log_error("container=%s msg=\"cannot start a probe thread\"", name);
        pthread_mutex_unlock(&p->mu);
        entry_free(x);
        return;
    }
    x->next = p->live;
    p->live = x;
    pthread_mutex_unlock(&p->mu);
    log_debug("container=%s ip=%s protocol=%s port=%d wait_for_port=%d msg=\"probing\"", name,
              ip ? ip : "", proto ? proto : "none", port, wait_for_port);
}

void probe_remove(struct prober *p, const char *name)
{
    pthread_mutex_lock(&p->mu);
    kill_locked(p, name);
    pthread_mutex_unlock(&p->mu);
    reap(p, 0);
}

void probe_fill(struct prober *p, const char *name, json_t *obs)
{
    struct entry *x;

    pthread_mutex_lock(&p->mu);
    for (x = p->live; x; x = x->next)
        if (!strcmp(x->name, name))
            break;
    if (x) {
        if (x->proto != PROTO_NONE)
            json_object_set_new(obs, "health", x->health ? json_copy(x->health) : json_null());
        if (x->wfp)
            json_object_set_new(obs, "ready", json_boolean(x->ready));
    }
    pthread_mutex_unlock(&p->mu);
}

json_t *probe_take_changed(struct prober *p)
{
    json_t *a = json_array(), *v;
    const char *k;

    pthread_mutex_lock(&p->mu);
    json_object_foreach(p->changed, k, v) json_array_append_new(a, json_string(k));
    json_object_clear(p->changed);
    pthread_mutex_unlock(&p->mu);
    reap(p, 0);
    return a;
}
