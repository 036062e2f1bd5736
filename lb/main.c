/* lb/main.c -- kontena-lb: watch one load balancer's keys in etcd, render the haproxy
 * configuration, validate it, apply it with a seamless reload. docs/internals/lb.md
 * describes the process; lb/README.md how to run it.
 *
 * Threads: the main thread owns haproxy (fork, signals, reloads) and the loop below; one
 * watch thread lists the root, then watches it, and keeps the key map (under `mu`) up to
 * date, waking the main thread through an eventfd. The main thread renders from the map
 * under the same lock.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cmdline.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "lb/certs.h"
#include "lb/haproxy.h"
#include "lb/render.h"

#include "common/banned.h"

extern char **environ;

#define PROG "kontena-lb"
#define COALESCE_MS 100
#define STOP_TIMEOUT_MS 8000
#define RELOAD_WAIT_MS 5000

struct kv {
    char *key; /* relative to the root */
    char *value;
};

/* A copy of the key map, for work outside the lock. */
struct kvset {
    struct kv *v;
    size_t n;
};

struct lb {
    /* Set once at start. */
    char *haproxy;
    char *root;   /* "/kontena/haproxy/<grid>/<lb path>" */
    char *prefix; /* root + "/" */
    char *cfg, *cfg_new, *master_sock;
    struct lb_settings settings;
    struct etcd *etcd;
    int efd;

    /* Shared with the watch thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kv *kvs;
    size_t n, cap;
    int synced;
    int stop;
    struct etcd_watch *w;
    int64_t first_change; /* monotonic ms of the first change the main thread has not taken */

    /* Main thread only. */
    pid_t master;
    struct lb_render applied; /* what haproxy runs with (applied.text NULL before the first) */
    struct kvset good;        /* the keys it was rendered from (see apply's fallback) */
    char **parked;            /* "<backend>/<server>" put in maint by the runtime API, to be */
    size_t n_parked;          /* deleted once their connections are gone (frees the name) */
    int64_t unpark_at;        /* next deletion attempt (monotonic ms), 0 = none pending */
    char *admin_sock;
    char *rejected;     /* the last text haproxy refused (not retried until the keys change) */
    int force;          /* SIGHUP: validate and reload even if the text did not change */
    int64_t changed_at; /* monotonic ms of the first change not yet applied, 0 = none */
};

/* mu held. */
static void notify(struct lb *lb)
{
    uint64_t one = 1;
    if (!lb->first_change)
        lb->first_change = time_mono_ms();
    if (write(lb->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
        log_warn("msg=\"cannot wake the main loop: %s\"", strerror(errno));
}

/* ---- the key map (mu held) ----------------------------------------------------------------- */

static struct kv *map_find(struct lb *lb, const char *key)
{
    for (size_t i = 0; i < lb->n; i++)
        if (strcmp(lb->kvs[i].key, key) == 0)
            return &lb->kvs[i];
    return NULL;
}

static void map_put(struct lb *lb, const char *key, const char *value)
{
    struct kv *kv = map_find(lb, key);

    if (kv) {
        free(kv->value);
        kv->value = xstrdup(value);
        return;
    }
    if (lb->n == lb->cap) {
        lb->cap = lb->cap ? 2 * lb->cap : 64;
        lb->kvs = xrealloc(lb->kvs, lb->cap * sizeof(*lb->kvs));
    }
    lb->kvs[lb->n].key = xstrdup(key);
    lb->kvs[lb->n].value = xstrdup(value);
    lb->n++;
}

static void map_del(struct lb *lb, const char *key)
{
    struct kv *kv = map_find(lb, key);

    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    *kv = lb->kvs[--lb->n];
}

static void map_clear(struct lb *lb)
{
    for (size_t i = 0; i < lb->n; i++) {
        free(lb->kvs[i].key);
        free(lb->kvs[i].value);
    }
    lb->n = 0;
}

/* ---- the watch thread ------------------------------------------------------------------- */

static int on_watch(void *arg, const struct etcd_watch_msg *m)
{
    struct lb *lb = arg;
    size_t pl = strlen(lb->prefix);

    switch (m->kind) {
    case ETCD_WATCH_EVENTS:
        pthread_mutex_lock(&lb->mu);
        for (size_t i = 0; i < m->n_events; i++) {
            const struct etcd_event *ev = &m->events[i];
            if (!ev->kv.key || strncmp(ev->kv.key, lb->prefix, pl) != 0)
                continue;
            if (ev->type == ETCD_EVENT_PUT)
                map_put(lb, ev->kv.key + pl, ev->kv.value ? ev->kv.value : "");
            else
                map_del(lb, ev->kv.key + pl);
            log_debug("key=%s rev=%lld msg=\"%s\"", ev->kv.key, (long long)ev->kv.mod_revision,
                      ev->type == ETCD_EVENT_PUT ? "put" : "delete");
        }
        notify(lb);
        pthread_mutex_unlock(&lb->mu);
        break;
    case ETCD_WATCH_DISCONNECTED:
        log_warn("key=%s msg=\"watch interrupted, resuming: %s\"", lb->prefix,
                 m->error ? m->error : "unknown cause");
        break;
    default:
        break;
    }
    return 0;
}

/* Sleep ms unless stopped; returns 1 when stopped. */
static int pause_ms(struct lb *lb, int64_t ms)
{
    struct timespec dl = time_deadline(CLOCK_MONOTONIC, ms);
    int stop;

    pthread_mutex_lock(&lb->mu);
    while (!lb->stop && pthread_cond_timedwait(&lb->cv, &lb->mu, &dl) == 0)
        ;
    stop = lb->stop;
    pthread_mutex_unlock(&lb->mu);
    return stop;
}

static void *watch_main(void *arg)
{
    struct lb *lb = arg;
    int64_t backoff = 200;
    int warned = 0;

    for (;;) {
        struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
        struct etcd_range_result rr = {0};
        struct etcd_watch_opts wo = {0};
        struct etcd_watch *w;
        struct err e = ERR_INIT;
        enum status st;

        pthread_mutex_lock(&lb->mu);
        if (lb->stop) {
            pthread_mutex_unlock(&lb->mu);
            break;
        }
        pthread_mutex_unlock(&lb->mu);

        st = etcd_range(lb->etcd, lb->prefix, &ro, &rr, &e);
        if (st != ST_OK) {
            if (!warned++)
                log_warn("key=%s msg=\"cannot list the load balancer's keys, retrying: %s\"",
                         lb->prefix, e.msg);
            if (pause_ms(lb, backoff))
                break;
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        if (warned)
            log_info("key=%s msg=\"etcd answers again\"", lb->prefix);
        warned = 0;
        backoff = 200;
        pthread_mutex_lock(&lb->mu);
        map_clear(lb);
        for (size_t i = 0; i < rr.n; i++)
            if (strncmp(rr.kvs[i].key, lb->prefix, strlen(lb->prefix)) == 0)
                map_put(lb, rr.kvs[i].key + strlen(lb->prefix),
                        rr.kvs[i].value ? rr.kvs[i].value : "");
        if (!lb->synced)
            log_info("key=%s rev=%lld msg=\"listed %zu keys\"", lb->prefix, (long long)rr.revision,
                     rr.n);
        lb->synced = 1;
        notify(lb);
        pthread_mutex_unlock(&lb->mu);

        wo.key = lb->prefix;
        wo.range_end = ETCD_PREFIX;
        wo.start_revision = rr.revision + 1;
        wo.progress_notify = 1;
        etcd_range_result_release(&rr);
        w = etcd_watch_create(lb->etcd, &wo, on_watch, lb);
        pthread_mutex_lock(&lb->mu);
        if (lb->stop) {
            pthread_mutex_unlock(&lb->mu);
            etcd_watch_destroy(w);
            break;
        }
        lb->w = w;
        pthread_mutex_unlock(&lb->mu);
        st = etcd_watch_run(w, &e);
        pthread_mutex_lock(&lb->mu);
        lb->w = NULL;
        pthread_mutex_unlock(&lb->mu);
        etcd_watch_destroy(w);
        if (st == ST_COMPACTED) {
            log_info("key=%s msg=\"history compacted, listing again\"", lb->prefix);
            continue;
        }
        if (st != ST_OK) {
            log_warn("key=%s msg=\"watch failed, listing again: %s\"", lb->prefix, e.msg);
            if (pause_ms(lb, 1000))
                break;
        }
    }
    return NULL;
}

/* ---- applying a configuration (main thread) ---------------------------------------------- */

static enum status write_text(const char *path, const char *text, struct err *e)
{
    FILE *f = fopen(path, "we");
    int ok;

    if (!f)
        return err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
    ok = fputs(text, f) != EOF;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        return err_set(e, ST_IO, "cannot write '%s': %s", path, strerror(errno));
    return ST_OK;
}

/* Log haproxy's complaint line by line, naming the backend of each line it points at. */
static void log_refusal(const struct lb_render *r, const char *cfg, const char *output)
{
    const char *p = output;
    size_t cl = strlen(cfg);

    while (p && *p) {
        const char *eol = strchr(p, '\n'), *at;
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *ln = xstrndup(p, len);
        const char *owner = NULL;
        if ((strstr(ln, "ALERT") || strstr(ln, "WARNING")) && (at = strstr(ln, cfg)) &&
            at[cl] == ':')
            owner = lb_render_line_backend(r, (size_t)strtoul(at + cl + 1, NULL, 10));
        if (strstr(ln, "ALERT") || strstr(ln, "WARNING"))
            log_error("msg=\"haproxy: %s\"%s%s", ln, owner ? " backend=" : "", owner ? owner : "");
        free(ln);
        p = eol ? eol + 1 : NULL;
    }
}

/* The first line of a runtime API reply, for a log line (static storage). */
static const char *reply_oneline(const char *reply)
{
    static char one[256];
    size_t n = 0;

    for (const char *p = reply ? reply : ""; *p && n < sizeof(one) - 1; p++)
        one[n++] = (*p == '\n' || *p == '"') ? ' ' : *p;
    one[n] = 0;
    while (n && one[n - 1] == ' ')
        one[--n] = 0;
    return one;
}

/* Did every runtime API command work? "add server" answers "New server registered.", the
 * others answer nothing; anything else is an error message. */
static int runtime_reply_ok(const char *reply)
{
    static const char ok[] = "New server registered.";
    const char *p = reply;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len && !(len == strlen(ok) && strncmp(p, ok, len) == 0))
            return 0;
        p = eol ? eol + 1 : NULL;
    }
    return 1;
}

static void kvset_release(struct kvset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].key);
        free(s->v[i].value);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static void kvset_add(struct kvset *s, const char *key, const char *value)
{
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n].key = xstrdup(key);
    s->v[s->n].value = xstrdup(value);
    s->n++;
}

/* The backend of a key ("services/<svc>/..." or "tcp-services/<svc>/...": *svc, *len) and
 * whether it is an upstream key; 0 for a key of no backend. */
static int key_backend(const char *key, const char **svc, size_t *len, int *upstream)
{
    const char *rest = NULL, *slash;

    if (strncmp(key, "services/", 9) == 0)
        rest = key + 9;
    else if (strncmp(key, "tcp-services/", 13) == 0)
        rest = key + 13;
    if (!rest || !(slash = strchr(rest, '/')))
        return 0;
    *svc = rest;
    *len = (size_t)(slash - rest);
    *upstream = strncmp(slash + 1, "upstreams/", 10) == 0;
    return 1;
}

static int in_names(char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return 1;
    return 0;
}

/* The keys to render: cur, except that the settings (not the upstreams) of the backends in
 * old[0..n_old) come from good, the last configuration haproxy accepted. *kvs borrows from
 * cur and good. */
static size_t compose(const struct kvset *cur, const struct kvset *good, char *const *old,
                      size_t n_old, struct lb_kv **kvs)
{
    size_t n = 0;
    const char *svc;
    size_t len;
    int up;

    *kvs = xcalloc(cur->n + good->n + 1, sizeof(**kvs));
    for (size_t i = 0; i < cur->n; i++) {
        if (key_backend(cur->v[i].key, &svc, &len, &up) && !up && in_names(old, n_old, svc, len))
            continue;
        (*kvs)[n].key = cur->v[i].key;
        (*kvs)[n++].value = cur->v[i].value;
    }
    for (size_t i = 0; i < good->n; i++)
        if (key_backend(good->v[i].key, &svc, &len, &up) && !up && in_names(old, n_old, svc, len)) {
            (*kvs)[n].key = good->v[i].key;
            (*kvs)[n++].value = good->v[i].value;
        }
    return n;
}

/* Add to *names the backends owning the lines haproxy complains about ("[<cfg>:<line>]")
 * and not in it yet; the number added. */
static size_t culprits(const struct lb_render *r, const char *cfg, const char *output,
                       char ***names, size_t *n)
{
    size_t added = 0, cl = strlen(cfg);

    for (const char *p = output; p && (p = strstr(p, cfg)) != NULL; p += cl) {
        const char *owner;
        if (p[cl] != ':')
            continue;
        owner = lb_render_line_backend(r, (size_t)strtoul(p + cl + 1, NULL, 10));
        if (owner && !in_names(*names, *n, owner, strlen(owner))) {
            *names = xrealloc(*names, (*n + 1) * sizeof(**names));
            (*names)[(*n)++] = xstrdup(owner);
            added++;
        }
    }
    return added;
}

#define MAX_PARKED 512

static void parked_clear(struct lb *lb)
{
    for (size_t i = 0; i < lb->n_parked; i++)
        free(lb->parked[i]);
    FREE_AND_NULL(lb->parked);
    lb->n_parked = 0;
    lb->unpark_at = 0;
}

/* Remember the servers cmds put in maint ("set server <b>/<s> state maint"). */
static void park(struct lb *lb, const char *cmds)
{
    static const char pre[] = "set server ", post[] = " state maint";

    for (const char *p = cmds; (p = strstr(p, pre)) != NULL;) {
        const char *name = p + sizeof(pre) - 1, *end = strstr(name, post);
        if (!end)
            break;
        if (lb->n_parked < MAX_PARKED) {
            lb->parked = xrealloc(lb->parked, (lb->n_parked + 1) * sizeof(*lb->parked));
            lb->parked[lb->n_parked++] = xstrndup(name, (size_t)(end - name));
        }
        p = end;
    }
}

/* Delete the parked servers whose connections are gone (haproxy refuses while a server has
 * active or idle connections), so that a server of the same name can be added again
 * through the runtime API (an instance re-created under its name with a new address). */
static void unpark(struct lb *lb)
{
    size_t w = 0;

    for (size_t i = 0; i < lb->n_parked; i++) {
        char *cmd = xasprintf("del server %s", lb->parked[i]), *reply = NULL;
        int gone = 0;
        if (lb_haproxy_cli(lb->admin_sock, cmd, &reply, NULL) == ST_OK)
            gone = strstr(reply, "Server deleted.") || strstr(reply, "No such server") ||
                   strstr(reply, "No such backend");
        if (gone) {
            log_debug("msg=\"runtime API: %s\"", cmd);
            free(lb->parked[i]);
        } else {
            lb->parked[w++] = lb->parked[i];
        }
        free(cmd);
        free(reply);
    }
    lb->n_parked = w;
    lb->unpark_at = w ? time_mono_ms() + 1000 : 0;
}

/* Put the validated configuration r (rendered from `used`) in place and make haproxy run
 * it: nothing more when the runtime API already did (runtime > 0), a seamless reload
 * otherwise, or the first start. Takes r and used. */
static void install(struct lb *lb, struct lb_render *r, struct kvset *used, int runtime, int64_t t0)
{
    struct err e = ERR_INIT;
    int64_t t1 = time_mono_ms();

    if (rename(lb->cfg_new, lb->cfg) == -1) {
        log_error("msg=\"cannot rename '%s' to '%s': %s\"", lb->cfg_new, lb->cfg, strerror(errno));
        if (runtime && lb_haproxy_reload(lb->master, &e) != ST_OK)
            log_error("msg=\"%s\"", e.msg); /* undo the runtime API's change */
        lb_render_release(r);
        kvset_release(used);
        return;
    }
    lb_render_release(&lb->applied);
    lb->applied = *r;
    *r = (struct lb_render)LB_RENDER_INIT;
    kvset_release(&lb->good);
    lb->good = *used;
    used->v = NULL;
    used->n = 0;
    if (lb->master > 0 && runtime > 0) {
        log_info("msg=\"configuration applied (runtime API, no reload), %zu backends\" "
                 "check_ms=%lld since_change_ms=%lld",
                 lb->applied.n_backends, (long long)(t1 - t0),
                 (long long)(lb->changed_at ? t1 - lb->changed_at : 0));
    } else if (lb->master > 0) {
        pid_t old = lb_haproxy_current_worker(lb->master_sock), cur = 0;
        int64_t t2;
        if (lb_haproxy_reload(lb->master, &e) != ST_OK) {
            log_error("msg=\"%s\"", e.msg);
            return;
        }
        parked_clear(lb); /* the new worker runs the file, which has none of them */
        /* Wait until the new worker serves, so that a runtime API command that follows
         * reaches it rather than the worker on its way out. */
        for (int i = 0; i < RELOAD_WAIT_MS / 10; i++) {
            cur = lb_haproxy_current_worker(lb->master_sock);
            if (cur > 0 && cur != old)
                break;
            poll(NULL, 0, 10);
        }
        t2 = time_mono_ms();
        log_info("msg=\"configuration applied (reload%s), %zu backends\" worker=%d check_ms=%lld "
                 "reload_ms=%lld since_change_ms=%lld",
                 cur > 0 && cur != old ? "" : ", new worker not seen yet", lb->applied.n_backends,
                 (int)cur, (long long)(t1 - t0), (long long)(t2 - t1),
                 (long long)(lb->changed_at ? t2 - lb->changed_at : 0));
    } else if (lb_haproxy_start(lb->haproxy, lb->cfg, lb->master_sock, &lb->master, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
    } else {
        log_info("msg=\"haproxy started (pid %d), %zu backends\"", (int)lb->master,
                 lb->applied.n_backends);
    }
}

/* Write r's text to the .new file and run haproxy -c on it: ST_OK, or ST_INVALID with
 * haproxy's output in *output (fresh), or ST_IO. */
static enum status check_text(struct lb *lb, const struct lb_render *r, char **output)
{
    struct err e = ERR_INIT;
    enum status st;

    *output = NULL;
    if (write_text(lb->cfg_new, r->text, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        return ST_IO;
    }
    st = lb_haproxy_check(lb->haproxy, lb->cfg_new, output, &e);
    if (st == ST_IO)
        log_error("msg=\"%s\"", e.msg);
    return st;
}

#define FALLBACK_ROUNDS 4

static void apply(struct lb *lb)
{
    struct lb_render r = LB_RENDER_INIT;
    struct kvset cur = {0};
    struct lb_kv *kvs;
    struct err e = ERR_INIT;
    char *output = NULL, **old = NULL;
    size_t n_old = 0;
    enum status st;
    int64_t t0 = time_mono_ms();
    int runtime = 0; /* runtime API: 0 not used, 1 every command worked, -1 one failed */

    pthread_mutex_lock(&lb->mu);
    for (size_t i = 0; i < lb->n; i++)
        kvset_add(&cur, lb->kvs[i].key, lb->kvs[i].value);
    pthread_mutex_unlock(&lb->mu);
    n_old = compose(&cur, &lb->good, NULL, 0, &kvs);
    lb_render(&lb->settings, kvs, n_old, NULL, 0, &r);
    free(kvs);
    n_old = 0;

    if (!lb->force && lb->applied.text && strcmp(r.text, lb->applied.text) == 0)
        goto out; /* nothing changed for haproxy */
    if (!lb->force && lb->rejected && strcmp(r.text, lb->rejected) == 0)
        goto out;
    lb->force = 0;
    for (size_t i = 0; i < r.n_dropped; i++)
        log_warn("msg=\"left out: %s\"", r.dropped[i]);
    /* Servers added or removed, nothing else: tell the running workers at once through the
     * runtime API (a new upstream serves within milliseconds, a removed one gets no new
     * request), then validate and write the file without a reload. When a command fails,
     * the validated, seamless reload brings haproxy to the new configuration. */
    if (lb->master > 0 && lb->applied.text) {
        char *cmds = lb_render_runtime_cmds(&lb->applied, &r), *reply = NULL;
        if (cmds) {
            if (lb->n_parked)
                unpark(lb);
            st = lb_haproxy_cli(lb->admin_sock, cmds, &reply, &e);
            runtime = st == ST_OK && runtime_reply_ok(reply) ? 1 : -1;
            if (runtime > 0) {
                park(lb, cmds);
                if (lb->n_parked)
                    unpark(lb);
            }
            if (st != ST_OK)
                log_warn("msg=\"runtime API: %s; reloading instead\"", e.msg);
            else
                log_info("msg=\"runtime API: %s\" reply=\"%s\"%s since_change_ms=%lld", cmds,
                         reply_oneline(reply), runtime > 0 ? "" : " (reloading instead)",
                         (long long)(lb->changed_at ? time_mono_ms() - lb->changed_at : 0));
            free(reply);
            free(cmds);
        }
    }
    st = check_text(lb, &r, &output);
    if (st == ST_OK) {
        FREE_AND_NULL(lb->rejected);
        install(lb, &r, &cur, runtime, t0);
        goto out;
    }
    if (st != ST_INVALID)
        goto undo;
    log_refusal(&r, lb->cfg_new, output);
    free(lb->rejected);
    lb->rejected = xstrdup(r.text);
    /* haproxy refuses a line of some backends (a custom setting it does not know, say):
     * render those with the settings it last accepted (their upstreams still follow), or
     * leave them out when it never accepted any, so that the other backends' changes are
     * not held up. Never more than a few rounds; the result must pass haproxy -c too. */
    if (culprits(&r, lb->cfg_new, output, &old, &n_old) == 0)
        goto refused; /* not a backend's line: nothing to fall back on */
    for (int round = 0; round < FALLBACK_ROUNDS; round++) {
        struct lb_render fb = LB_RENDER_INIT;
        char **skip = NULL;
        size_t n_skip = 0, n;

        for (size_t i = 0; i < n_old; i++) {
            int have = 0;
            for (size_t j = 0; j < lb->good.n && !have; j++) {
                const char *svc;
                size_t len;
                int up;
                have = key_backend(lb->good.v[j].key, &svc, &len, &up) && !up &&
                       len == strlen(old[i]) && memcmp(svc, old[i], len) == 0;
            }
            if (!have) {
                skip = xrealloc(skip, (n_skip + 1) * sizeof(*skip));
                skip[n_skip++] = old[i];
            }
        }
        n = compose(&cur, &lb->good, old, n_old, &kvs);
        lb_render(&lb->settings, kvs, n, (const char *const *)skip, n_skip, &fb);
        free(kvs);
        free(skip);
        FREE_AND_NULL(output);
        if (lb->applied.text && strcmp(fb.text, lb->applied.text) == 0 && !runtime) {
            log_warn("msg=\"haproxy refuses the new settings of %zu backend(s), first '%s': "
                     "the running configuration stays until their keys change\"",
                     n_old, old[0]);
            lb_render_release(&fb);
            goto out;
        }
        st = check_text(lb, &fb, &output);
        if (st == ST_OK) {
            struct kvset used = {0};
            for (size_t i = 0; i < n_old; i++)
                log_warn("msg=\"haproxy refuses the new settings of backend '%s': its last "
                         "accepted settings stay (or it stays out) until its keys change\" "
                         "backend=%s",
                         old[i], old[i]);
            n = compose(&cur, &lb->good, old, n_old, &kvs);
            for (size_t i = 0; i < n; i++)
                kvset_add(&used, kvs[i].key, kvs[i].value);
            free(kvs);
            install(lb, &fb, &used, 0, t0);
            kvset_release(&used);
            lb_render_release(&fb);
            goto out;
        }
        if (st == ST_INVALID)
            log_refusal(&fb, lb->cfg_new, output);
        n = st == ST_INVALID ? culprits(&fb, lb->cfg_new, output, &old, &n_old) : 0;
        lb_render_release(&fb);
        if (n == 0)
            break;
    }
refused:
    log_error("msg=\"haproxy refuses the configuration; %s\"",
              lb->applied.text ? "the running configuration stays" : "haproxy not started yet");
undo:
    /* Undo what the runtime API did: the old file is still in place. */
    if (runtime && lb_haproxy_reload(lb->master, &e) != ST_OK)
        log_error("msg=\"%s\"", e.msg);
out:
    for (size_t i = 0; i < n_old; i++)
        free(old[i]);
    free(old);
    free(output);
    kvset_release(&cur);
    lb_render_release(&r);
}

/* ---- start-up ----------------------------------------------------------------------------- */

static const char *env_get(void *arg, const char *name)
{
    (void)arg;
    const char *v = getenv(name);
    return v;
}

/* The default gateway from /proc/net/route ("a.b.c.d", fresh memory), or NULL. */
static char *default_gateway(void)
{
    FILE *f = fopen("/proc/net/route", "re");
    char line[512];
    char *gw = NULL;

    if (!f)
        return NULL;
    while (!gw && fgets(line, sizeof(line), f)) {
        char ifname[64];
        unsigned long dst, g;
        if (sscanf(line, "%63s %lx %lx", ifname, &dst, &g) == 3 && dst == 0 && g != 0)
            gw = xasprintf("%lu.%lu.%lu.%lu", g & 0xff, (g >> 8) & 0xff, (g >> 16) & 0xff,
                           (g >> 24) & 0xff);
    }
    fclose(f);
    return gw;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: " PROG " [options]\n"
        "\n"
        "Watches one load balancer's keys in etcd (/kontena/haproxy/<grid>/<lb path>/),\n"
        "renders the haproxy configuration, validates it with `haproxy -c` and applies\n"
        "it with a seamless reload of haproxy in master-worker mode.\n"
        "\n"
        "options (environment in brackets):\n"
        "    --etcd-endpoints URLS   etcd, comma-separated [ETCD_ENDPOINTS]; default\n"
        "                            http://$ETCD_NODE:2379, else the default gateway's\n"
        "    --etcd-path PATH        root of the keys [ETCD_PATH]; default\n"
        "                            /kontena/haproxy/$KONTENA_GRID_NAME/[$KONTENA_STACK_NAME/]"
        "$KONTENA_SERVICE_NAME\n"
        "    --haproxy PATH          the haproxy binary [KONTENA_LB_HAPROXY] (/usr/sbin/haproxy)\n"
        "    --run-dir DIR           configuration, sockets, certificates\n"
        "                            [KONTENA_LB_RUN_DIR] (/var/run/kontena-lb)\n"
        "    --log-level LEVEL       debug, info, warn, error [KONTENA_LOG_LEVEL] (info)\n"
        "    -h, --help              this text\n"
        "    --version               print the version\n"
        "\n"
        "load balancer settings (environment only, reference §7.8):\n"
        "    KONTENA_LB_HTTP_PORT (80), KONTENA_LB_HTTPS_PORT (443), KONTENA_LB_STATS_PORT\n"
        "    (1000), KONTENA_LB_HEALTH_URI, KONTENA_LB_SSL_CIPHERS, KONTENA_LB_CUSTOM_SETTINGS,\n"
        "    KONTENA_LB_GLOBAL_SETTINGS, KONTENA_LB_ACCEPT_PROXY, KONTENA_LB_HTTP2,\n"
        "    STATS_PASSWORD (secret), SYSLOG_TARGET (stdout), SSL_CERTS, SSL_CERT_*\n"
        "\n"
        "SIGTERM/SIGINT: soft-stop haproxy (connections finish, %d s at most), exit 0.\n"
        "SIGHUP: render and apply again.\n",
        STOP_TIMEOUT_MS / 1000);
}

static char *opt_or_env(const char *opt, const char *env)
{
    const char *v = opt ? opt : getenv(env);
    return v && *v ? xstrdup(v) : NULL;
}

static int mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    int rc = 0;

    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) == -1 && errno != EEXIST)
                rc = -1;
            *s = '/';
        }
    if (mkdir(p, 0755) == -1 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

enum { OPT_ENDPOINTS = 256, OPT_PATH, OPT_HAPROXY, OPT_RUN_DIR, OPT_LOG_LEVEL, OPT_VERSION };

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"etcd-endpoints", required_argument, NULL, OPT_ENDPOINTS},
        {"etcd-path", required_argument, NULL, OPT_PATH},
        {"haproxy", required_argument, NULL, OPT_HAPROXY},
        {"run-dir", required_argument, NULL, OPT_RUN_DIR},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *o_endpoints = NULL, *o_path = NULL, *o_haproxy = NULL, *o_run = NULL,
               *o_level = NULL;
    char *endpoints = NULL, *run_dir = NULL;
    struct lb lb = {0};
    struct err e = ERR_INIT;
    struct etcd_opts eo = {0};
    sigset_t sigs;
    int sfd = -1, opt, level, rc = 1, stopping = 0;
    pthread_t th;
    int th_started = 0;
    int64_t restart_at = 0, restart_backoff = 500;
    char **warnings = NULL;
    size_t n_warnings = 0, n_env = 0;
    int n_certs = 0;

    {
        struct lb_settings init = LB_SETTINGS_INIT; /* the defaults: ports 80, 443, 1000 */
        lb.settings = init;
    }
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case OPT_ENDPOINTS:
            o_endpoints = optarg;
            break;
        case OPT_PATH:
            o_path = optarg;
            break;
        case OPT_HAPROXY:
            o_haproxy = optarg;
            break;
        case OPT_RUN_DIR:
            o_run = optarg;
            break;
        case OPT_LOG_LEVEL:
            o_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf(PROG " %s\n", KONTENA_VERSION);
            return 0;
        default:
            return cmdline_usage(PROG, "unknown option");
        }
    }
    if (optind < argc)
        return cmdline_usage(PROG, "unexpected argument '%s'", argv[optind]);
    if (!o_level)
        o_level = getenv("KONTENA_LOG_LEVEL");
    level = o_level && *o_level ? log_level_parse(o_level) : LOG_INFO;
    if (level < 0)
        return cmdline_usage(PROG, "bad log level '%s': debug, info, warn or error", o_level);
    log_init("lb", (enum log_level)level);

    /* etcd endpoints and the root, as the original's entrypoint computed them. */
    endpoints = opt_or_env(o_endpoints, "ETCD_ENDPOINTS");
    if (!endpoints && getenv("ETCD_NODE") && *getenv("ETCD_NODE"))
        endpoints = xasprintf("http://%s:2379", getenv("ETCD_NODE"));
    if (!endpoints) {
        char *gw = default_gateway();
        if (!gw) {
            rc = cmdline_usage(PROG, "no etcd: set --etcd-endpoints, ETCD_ENDPOINTS or "
                                     "ETCD_NODE (there is no default gateway either)");
            goto out;
        }
        endpoints = xasprintf("http://%s:2379", gw);
        free(gw);
    }
    lb.root = opt_or_env(o_path, "ETCD_PATH");
    if (!lb.root) {
        const char *grid = getenv("KONTENA_GRID_NAME"), *stack = getenv("KONTENA_STACK_NAME"),
                   *svc = getenv("KONTENA_SERVICE_NAME");
        if (!grid || !*grid || !svc || !*svc) {
            rc = cmdline_usage(PROG, "no key root: set --etcd-path, ETCD_PATH, or "
                                     "KONTENA_GRID_NAME and KONTENA_SERVICE_NAME");
            goto out;
        }
        if (stack && *stack && strcmp(stack, "null") != 0)
            lb.root = xasprintf("/kontena/haproxy/%s/%s/%s", grid, stack, svc);
        else
            lb.root = xasprintf("/kontena/haproxy/%s/%s", grid, svc);
    }
    while (strlen(lb.root) > 1 && lb.root[strlen(lb.root) - 1] == '/')
        lb.root[strlen(lb.root) - 1] = 0;
    if (lb.root[0] != '/' || strlen(lb.root) < 2) {
        rc = cmdline_usage(PROG, "bad etcd path '%s': an absolute key path", lb.root);
        goto out;
    }
    lb.prefix = xasprintf("%s/", lb.root);
    lb.haproxy = opt_or_env(o_haproxy, "KONTENA_LB_HAPROXY");
    if (!lb.haproxy)
        lb.haproxy = xstrdup("/usr/sbin/haproxy");
    run_dir = opt_or_env(o_run, "KONTENA_LB_RUN_DIR");
    if (!run_dir)
        run_dir = xstrdup("/var/run/kontena-lb");
    if (lb_settings_from_env(&lb.settings, env_get, NULL, run_dir, &e) != ST_OK) {
        rc = cmdline_usage(PROG, "%s", e.msg);
        goto out;
    }
    lb.settings.drop_privileges = geteuid() == 0;
    {
        /* haproxy needs about 2.5 descriptors per connection (splice pipes included) and
         * refuses to start when it cannot raise its limit that far. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
            rl.rlim_max < 251000)
            lb.settings.maxconn = rl.rlim_max > 2000 ? (int)((rl.rlim_max - 1000) * 2 / 5) : 400;
    }
    if (access(lb.haproxy, X_OK) == -1) {
        log_error("msg=\"cannot run haproxy '%s': %s\"", lb.haproxy, strerror(errno));
        goto out;
    }
    if (mkdir_p(run_dir) == -1) {
        log_error("msg=\"cannot create the run directory '%s': %s\"", run_dir, strerror(errno));
        goto out;
    }
    lb.cfg = xasprintf("%s/haproxy.cfg", run_dir);
    lb.cfg_new = xasprintf("%s/haproxy.cfg.new", run_dir);
    lb.master_sock = xasprintf("%s/master.sock", run_dir);
    lb.admin_sock = xasprintf("%s/admin.sock", run_dir);
    unlink(lb.cfg);
    {
        char *pid = xasprintf("%s/haproxy.pid", run_dir);
        unlink(pid);
        free(pid);
    }

    /* Certificates: once, at start (a changed certificate means a new LB container). */
    while (environ && environ[n_env])
        n_env++;
    if (lb_certs_write(lb.settings.certs_dir, (const char *const *)environ, n_env, &n_certs,
                       &warnings, &n_warnings, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        goto out;
    }
    for (size_t i = 0; i < n_warnings; i++)
        log_warn("msg=\"%s\"", warnings[i]);
    lb_certs_free(warnings, n_warnings);
    lb.settings.have_certs = n_certs > 0;
    if (n_certs)
        log_info("msg=\"%d certificates in %s\"", n_certs, lb.settings.certs_dir);

    eo.endpoints = endpoints;
    eo.username = getenv("ETCD_USERNAME");
    eo.password = getenv("ETCD_PASSWORD");
    eo.request_timeout_ms = 5000;
    lb.etcd = etcd_create(&eo, &e);
    if (!lb.etcd) {
        rc = cmdline_usage(PROG, "bad etcd endpoints '%s': %s", endpoints, e.msg);
        goto out;
    }

    /* One stream, as the original's container had: our lines, haproxy's notices and its
     * access log (log stdout) all go to stdout. Usage errors (above) stay on stderr. */
    if (dup2(STDOUT_FILENO, STDERR_FILENO) == -1)
        log_warn("msg=\"cannot send logs to stdout: %s\"", strerror(errno));
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    lb.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd == -1 || lb.efd == -1) {
        log_error("msg=\"cannot create signalfd/eventfd: %s\"", strerror(errno));
        goto out;
    }
    pthread_mutex_init(&lb.mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&lb.cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    log_info("msg=\"starting\" version=%s etcd=%s key=%s run_dir=%s haproxy=%s http_port=%d "
             "stats_port=%d",
             KONTENA_VERSION, endpoints, lb.prefix, run_dir, lb.haproxy, lb.settings.http_port,
             lb.settings.stats_port);
    if (pthread_create(&th, NULL, watch_main, &lb) != 0) {
        log_error("msg=\"cannot start the watch thread\"");
        goto out;
    }
    th_started = 1;

    for (;;) {
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {lb.efd, POLLIN, 0}};
        int64_t now = time_mono_ms(), timeout = -1;
        int synced;

        if (lb.changed_at)
            timeout = lb.changed_at + COALESCE_MS - now;
        if (restart_at && (timeout < 0 || restart_at - now < timeout))
            timeout = restart_at - now;
        if (lb.unpark_at && (timeout < 0 || lb.unpark_at - now < timeout))
            timeout = lb.unpark_at - now;
        if (timeout < -1 || (timeout < 0 && (lb.changed_at || restart_at || lb.unpark_at)))
            timeout = 0;
        if (poll(p, 2, (int)timeout) == -1 && errno != EINTR) {
            log_error("msg=\"poll: %s\"", strerror(errno));
            break;
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            if (read(lb.efd, &v, sizeof(v)) > 0) {
                /* The coalescing window starts when the change arrived, not when this
                 * thread got to it (it may have been busy with a reload). */
                pthread_mutex_lock(&lb.mu);
                if (!lb.changed_at)
                    lb.changed_at = lb.first_change ? lb.first_change : time_mono_ms();
                lb.first_change = 0;
                pthread_mutex_unlock(&lb.mu);
            }
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    log_info("msg=\"%s: stopping\"", strsignal((int)si.ssi_signo));
                    stopping = 1;
                } else if (si.ssi_signo == SIGHUP) {
                    lb.force = 1;
                    lb.changed_at = time_mono_ms();
                } else if (si.ssi_signo == SIGCHLD) {
                    int ws;
                    pid_t pid;
                    while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
                        if (pid != lb.master)
                            continue;
                        log_error("msg=\"haproxy (pid %d) exited: %s %d; restarting in %lld ms\"",
                                  (int)pid, WIFEXITED(ws) ? "status" : "signal",
                                  WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws),
                                  (long long)restart_backoff);
                        lb.master = 0;
                        parked_clear(&lb);
                        restart_at = time_mono_ms() + restart_backoff;
                        restart_backoff = restart_backoff * 2 > 5000 ? 5000 : restart_backoff * 2;
                    }
                }
            }
        }
        if (stopping)
            break;
        now = time_mono_ms();
        if (restart_at && now >= restart_at) {
            restart_at = 0;
            if (lb.applied.text &&
                lb_haproxy_start(lb.haproxy, lb.cfg, lb.master_sock, &lb.master, &e) != ST_OK)
                log_error("msg=\"%s\"", e.msg);
            else if (lb.applied.text)
                log_info("msg=\"haproxy restarted (pid %d)\"", (int)lb.master);
        }
        if (lb.unpark_at && now >= lb.unpark_at && lb.master > 0)
            unpark(&lb);
        pthread_mutex_lock(&lb.mu);
        synced = lb.synced;
        pthread_mutex_unlock(&lb.mu);
        if (lb.changed_at && synced && now >= lb.changed_at + COALESCE_MS) {
            apply(&lb);
            lb.changed_at = 0;
        }
    }
    rc = stopping ? 0 : 1;

out:
    if (th_started) {
        pthread_mutex_lock(&lb.mu);
        lb.stop = 1;
        if (lb.w)
            etcd_watch_stop(lb.w);
        pthread_cond_broadcast(&lb.cv);
        pthread_mutex_unlock(&lb.mu);
    }
    if (lb.master > 0) {
        int ws = lb_haproxy_stop(lb.master, STOP_TIMEOUT_MS);
        log_info("msg=\"haproxy stopped (%s %d)\"", ws != -1 && WIFEXITED(ws) ? "status" : "signal",
                 ws == -1        ? -1
                 : WIFEXITED(ws) ? WEXITSTATUS(ws)
                                 : WTERMSIG(ws));
        lb.master = 0;
    }
    if (th_started) {
        pthread_join(th, NULL);
        pthread_mutex_destroy(&lb.mu);
        pthread_cond_destroy(&lb.cv);
    }
    map_clear(&lb);
    free(lb.kvs);
    etcd_destroy(lb.etcd);
    if (sfd != -1)
        close(sfd);
    if (lb.efd > 0)
        close(lb.efd);
    lb_settings_release(&lb.settings);
    lb_render_release(&lb.applied);
    kvset_release(&lb.good);
    parked_clear(&lb);
    free(lb.admin_sock);
    free(lb.rejected);
    free(lb.cfg);
    free(lb.cfg_new);
    free(lb.master_sock);
    free(lb.root);
    free(lb.prefix);
    free(lb.haproxy);
    free(endpoints);
    free(run_dir);
    if (rc == 0)
        log_info("msg=\"stopped\"");
    return rc;
}
