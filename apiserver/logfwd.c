/* apiserver/logfwd.c -- RFC 5424 syslog forwarding of stored log lines (see logfwd.h).
 *
 * One sender thread owns every socket: producers (the agents' endpoint's worker, through
 * logstore_append()'s callback) only format the message and queue it under a mutex.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "apiserver/api.h"
#include "apiserver/logfwd.h"
#include "apiserver/store.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct msg {
    struct msg *next;
    char *grid;
    size_t len;
    char text[]; /* len bytes */
};

/* A grid's destination, owned by the sender thread (the copy producers check lives in
 * `enabled`). */
struct dest {
    struct dest *next;
    char *grid, *addr; /* "udp://h:p" */
    int tcp, fd;
    int64_t retry_at_ms;
};

struct logfwd {
    struct api *api;
    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* guards the fields up to the next comment */
    pthread_cond_t cond;
    struct msg *head, **tail;
    size_t n, bytes;
    int stop, kick;
    char **enabled; /* names of grids that forward, NULL-terminated */
    /* sender thread only */
    struct dest *dests;
    int64_t refreshed_ms;
};

/* --- formatting ---------------------------------------------------------------------------- */

/* RFC 5424 header fields: printable US-ASCII without spaces, at most max characters; "-"
 * when empty. */
static size_t put_field(char *out, size_t cap, size_t pos, const char *s, size_t max)
{
    size_t n = 0;

    if (!s || !*s)
        s = "-";
    for (; s[n] && n < max && pos + 1 < cap; n++) {
        unsigned char c = (unsigned char)s[n];
        out[pos++] = c > 32 && c < 127 ? (char)c : '_';
    }
    return pos;
}

size_t logfwd_format(char *out, size_t cap, const struct log_item *it, const char *created_at)
{
    char app[600], inst[24], ts[40];
    int sev = it->type && !strcmp(it->type, "stderr") ? 3 : 6;
    size_t pos, dn;
    int n;

    if (cap < 64)
        return 0;
    if (it->service)
        snprintf(app, sizeof(app), "%s.%s", it->stack ? it->stack : "null", it->service);
    else
        snprintf(app, sizeof(app), "%s", it->name ? it->name : "-");
    if (it->instance >= 0)
        snprintf(inst, sizeof(inst), "%ld", it->instance);
    else
        snprintf(inst, sizeof(inst), "-");
    /* RFC 5424 allows at most 6 fraction digits: "2026-01-02T03:04:05.123456Z" */
    snprintf(ts, sizeof(ts), "%.26sZ", created_at ? created_at : "");
    if (!created_at || strlen(created_at) < 26)
        snprintf(ts, sizeof(ts), "-");
    n = snprintf(out, cap, "<%d>1 %s ", 1 * 8 + sev, ts);
    pos = (size_t)n;
    pos = put_field(out, cap, pos, it->node, 255);
    out[pos++] = ' ';
    pos = put_field(out, cap, pos, app, 48);
    out[pos++] = ' ';
    pos = put_field(out, cap, pos, inst, 128);
    out[pos++] = ' ';
    pos = put_field(out, cap, pos, it->type, 32);
    if (pos + 4 >= cap)
        return pos;
    memcpy(out + pos, " - ", 3);
    pos += 3;
    dn = it->data ? strlen(it->data) : 0;
    if (dn > cap - pos - 1)
        dn = cap - pos - 1;
    memcpy(out + pos, it->data ? it->data : "", dn);
    pos += dn;
    out[pos] = '\0';
    return pos;
}

int logfwd_address_ok(const char *addr, char *why, size_t whylen)
{
    const char *h, *colon;
    char *end;
    long port;
    size_t hl;

    if (!addr || (strncmp(addr, "udp://", 6) != 0 && strncmp(addr, "tcp://", 6) != 0)) {
        snprintf(why, whylen, "syslog-address must be udp://host:port or tcp://host:port");
        return 0;
    }
    h = addr + 6;
    colon = strrchr(h, ':');
    if (!colon || colon == h) {
        snprintf(why, whylen, "syslog-address '%s' has no host:port", addr);
        return 0;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] == '\0' || port < 1 || port > 65535) {
        snprintf(why, whylen, "syslog-address '%s': port must be 1..65535", addr);
        return 0;
    }
    hl = (size_t)(colon - h);
    if (hl > 253 || (h[0] == '[' ? h[hl - 1] != ']' : strspn(h, "abcdefghijklmnopqrstuvwxyz"
                                                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "0123456789.-") != hl)) {
        snprintf(why, whylen, "syslog-address '%s': bad host", addr);
        return 0;
    }
    return 1;
}

/* --- producers ----------------------------------------------------------------------------- */

void logfwd_line(struct logfwd *f, const char *grid, const struct log_item *it,
                 const char *created_at)
{
    char text[LOGFWD_MSG_MAX];
    size_t len;
    struct msg *m;
    int on = 0;

    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; f->enabled && f->enabled[i] && !on; i++)
        on = !strcmp(f->enabled[i], grid);
    pthread_mutex_unlock(&f->mu);
    if (!on)
        return;
    len = logfwd_format(text, sizeof(text), it, created_at);
    m = xmalloc(sizeof(*m) + len);
    m->next = NULL;
    m->grid = xstrdup(grid);
    m->len = len;
    memcpy(m->text, text, len);
    pthread_mutex_lock(&f->mu);
    if (f->n >= LOGFWD_QUEUE_MAX || f->bytes + len > LOGFWD_QUEUE_BYTES) {
        pthread_mutex_unlock(&f->mu);
        __atomic_add_fetch(&f->api->ctr.log_forward_dropped, 1, __ATOMIC_RELAXED);
        free(m->grid);
        free(m);
        return;
    }
    *f->tail = m;
    f->tail = &m->next;
    f->n++;
    f->bytes += len;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

void logfwd_kick(struct logfwd *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->kick = 1;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

/* --- sender thread ------------------------------------------------------------------------- */

static void dest_close(struct dest *d)
{
    if (d->fd != -1)
        close(d->fd);
    d->fd = -1;
}

static void dests_free(struct dest *d)
{
    for (struct dest *n; d; d = n) {
        n = d->next;
        dest_close(d);
        free(d->grid);
        free(d->addr);
        free(d);
    }
}

/* Re-read the grids: which forward where. */
static void refresh(struct logfwd *f)
{
    json_t *grids = NULL, *g;
    struct err e = ERR_INIT;
    struct dest *nd = NULL;
    char **en;
    size_t i, k = 0;

    f->refreshed_ms = time_mono_ms();
    if (store_list(f->api->etcd, KEY_GRIDS, 1, &grids, &e) != ST_OK) {
        log_warn("msg=\"log forwarding: cannot read the grids: %s\"", e.msg);
        return;
    }
    en = xcalloc(json_array_size(grids) + 1, sizeof(*en));
    json_array_foreach(grids, i, g)
    {
        const json_t *lg = json_object_get(g, "logs");
        const char *fw = json_string_value(json_object_get(lg, "forwarder"));
        const char *addr =
            json_string_value(json_object_get(json_object_get(lg, "opts"), "syslog-address"));
        const char *name = json_string_value(json_object_get(g, "name"));
        char why[200];
        struct dest *d = NULL;

        if (!name || !fw || strcmp(fw, "syslog") != 0 || !logfwd_address_ok(addr, why,
                                                                            sizeof(why)))
            continue;
        /* keep an open socket when nothing changed */
        for (struct dest **pp = &f->dests; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->grid, name) && !strcmp((*pp)->addr, addr)) {
                d = *pp;
                *pp = d->next;
                break;
            }
        if (!d) {
            d = xcalloc(1, sizeof(*d));
            d->grid = xstrdup(name);
            d->addr = xstrdup(addr);
            d->tcp = !strncmp(addr, "tcp://", 6);
            d->fd = -1;
            log_info("msg=\"grid '%s' forwards its logs to %s\"", name, addr);
        }
        d->next = nd;
        nd = d;
        en[k++] = xstrdup(name);
    }
    json_decref(grids);
    dests_free(f->dests);
    f->dests = nd;
    pthread_mutex_lock(&f->mu);
    for (size_t j = 0; f->enabled && f->enabled[j]; j++)
        free(f->enabled[j]);
    free(f->enabled);
    f->enabled = en;
    pthread_mutex_unlock(&f->mu);
}

static int dest_connect(struct dest *d)
{
    struct addrinfo hints, *res = NULL;
    char host[260], *colon;
    const char *h = d->addr + 6;
    struct timeval tv = {2, 0};
    int rc;

    if (d->fd != -1)
        return 0;
    if (time_mono_ms() < d->retry_at_ms)
        return -1;
    snprintf(host, sizeof(host), "%s", h);
    colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = d->tcp ? SOCK_STREAM : SOCK_DGRAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        log_warn("msg=\"log forwarding of grid '%s': cannot resolve '%s': %s\"", d->grid,
                 d->addr, gai_strerror(rc));
        d->retry_at_ms = time_mono_ms() + 5000;
        return -1;
    }
    d->fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    if (d->fd != -1) {
        setsockopt(d->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(d->fd, res->ai_addr, res->ai_addrlen) != 0) {
            log_warn("msg=\"log forwarding of grid '%s': cannot connect to %s: %s\"", d->grid,
                     d->addr, strerror(errno));
            dest_close(d);
        }
    }
    freeaddrinfo(res);
    if (d->fd == -1) {
        d->retry_at_ms = time_mono_ms() + 2000;
        return -1;
    }
    return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void deliver(struct logfwd *f, struct msg *m)
{
    struct dest *d;
    int ok = 0;

    for (d = f->dests; d; d = d->next)
        if (!strcmp(d->grid, m->grid))
            break;
    if (!d)
        return; /* forwarding was switched off meanwhile */
    for (int attempt = 0; attempt < 2 && !ok; attempt++) {
        if (dest_connect(d) != 0)
            break;
        if (d->tcp) {
            char hdr[24];
            int hl = snprintf(hdr, sizeof(hdr), "%zu ", m->len);
            ok = send_all(d->fd, hdr, (size_t)hl) == 0 && send_all(d->fd, m->text, m->len) == 0;
        } else {
            /* a refused datagram (ECONNREFUSED from an earlier one) is not worth a retry */
            ok = send(d->fd, m->text, m->len, MSG_NOSIGNAL) == (ssize_t)m->len;
            if (!ok && errno == ECONNREFUSED)
                ok = send(d->fd, m->text, m->len, MSG_NOSIGNAL) == (ssize_t)m->len;
            attempt = 2;
        }
        if (!ok)
            dest_close(d); /* TCP: reconnect once and resend */
    }
    if (ok)
        __atomic_add_fetch(&f->api->ctr.log_forwarded, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&f->api->ctr.log_forward_errors, 1, __ATOMIC_RELAXED);
}

static void *sender_main(void *arg)
{
    struct logfwd *f = arg;
    int64_t stop_deadline = 0;

    refresh(f);
    for (;;) {
        struct msg *m = NULL;
        int do_refresh;
        pthread_mutex_lock(&f->mu);
        while (!f->head && !f->stop && !f->kick &&
               time_mono_ms() - f->refreshed_ms < LOGFWD_REFRESH_MS) {
            struct timespec ts = time_deadline(CLOCK_REALTIME, 250);
            pthread_cond_timedwait(&f->cond, &f->mu, &ts);
        }
        if (f->stop && (!f->head || (stop_deadline && time_mono_ms() > stop_deadline))) {
            pthread_mutex_unlock(&f->mu);
            break;
        }
        if (f->stop && !stop_deadline)
            stop_deadline = time_mono_ms() + 1000;
        do_refresh = f->kick || time_mono_ms() - f->refreshed_ms >= LOGFWD_REFRESH_MS;
        f->kick = 0;
        if (f->head) {
            m = f->head;
            f->head = m->next;
            if (!f->head)
                f->tail = &f->head;
            f->n--;
            f->bytes -= m->len;
        }
        pthread_mutex_unlock(&f->mu);
        if (do_refresh && !f->stop)
            refresh(f);
        if (m) {
            deliver(f, m);
            free(m->grid);
            free(m);
        }
    }
    return NULL;
}

struct logfwd *logfwd_start(struct api *a)
{
    struct logfwd *f = xcalloc(1, sizeof(*f));

    f->api = a;
    f->tail = &f->head;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (pthread_create(&f->thread, NULL, sender_main, f) == 0)
        f->started = 1;
    else
        log_error("msg=\"cannot start the log forwarding thread\"");
    return f;
}

void logfwd_stop(struct logfwd *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (f->started)
        pthread_join(f->thread, NULL);
    for (struct msg *m = f->head, *n; m; m = n) {
        n = m->next;
        free(m->grid);
        free(m);
    }
    for (size_t j = 0; f->enabled && f->enabled[j]; j++)
        free(f->enabled[j]);
    free(f->enabled);
    dests_free(f->dests);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
