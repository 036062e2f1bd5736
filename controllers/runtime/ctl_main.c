/* controllers/runtime/ctl_main.c -- ctl_main(): flags, start-up order, the resync timer,
 * signals and shutdown. docs/internals/controllers.md describes the process. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cmdline.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "common/banned.h"

/* --- small shared helpers --- */

int ctl__synced(struct ctl *c)
{
    for (size_t i = 0; i < c->ninfs; i++)
        if (!atomic_load(&c->infs[i]->synced))
            return 0;
    return 1;
}

int ctl__sleep(struct ctl *c, int64_t ms)
{
    struct timespec ts;
    int stop;

    ts = time_deadline(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&c->mu);
    while (!(stop = atomic_load(&c->stopping)))
        if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&c->mu);
    return stop || atomic_load(&c->stopping);
}

void ctl__wake_queues(struct ctl *c)
{
    for (size_t i = 0; i < c->nwqs; i++)
        wq__wake(c->wqs[i]);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

void ctl__set_leader(struct ctl *c, int leading, int64_t fence_rev, int64_t lease_id)
{
    pthread_mutex_lock(&c->mu);
    c->fence_rev = leading ? fence_rev : -1;
    c->lease_id = leading ? lease_id : 0;
    if (leading)
        c->leader_gen++;
    atomic_store(&c->leader, leading);
    pthread_mutex_unlock(&c->mu);
    ctl_metric_set(c->m_leader, leading);
    ctl__wake_queues(c);
}

void ctl__etcd_error(struct ctl *c, const char *msg)
{
    (void)msg;
    ctl_metric_add(c->m_etcd_errors, 1);
}

/* --- public accessors --- */

struct etcd *ctl_etcd(struct ctl *c)
{
    return c->etcd;
}

const char *ctl_id(const struct ctl *c)
{
    return c->id;
}

const char *ctl_name(const struct ctl *c)
{
    return c->name;
}

int ctl_is_leader(struct ctl *c)
{
    return atomic_load(&c->leader);
}

int ctl_stopping(struct ctl *c)
{
    return atomic_load(&c->stopping);
}

void ctl_txn_fence(struct ctl *c, struct etcd_txn *t)
{
    int64_t fence;

    if (!c->leader_elect)
        return;
    pthread_mutex_lock(&c->mu);
    fence = c->fence_rev; /* -1 while not leading: never equal, the write fails */
    pthread_mutex_unlock(&c->mu);
    etcd_txn_cmp(t, c->leader_key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, fence);
}

/* --- resync timer --- */

static void *resync_main(void *arg)
{
    struct ctl *c = arg;
    unsigned done_gen = 0;
    int64_t next = 0;

    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->stopping)) {
        struct timespec ts;
        int64_t now = time_mono_ms();

        if (atomic_load(&c->leader) && ctl__synced(c) &&
            (c->leader_gen != done_gen || now >= next)) {
            done_gen = c->leader_gen;
            next = now + c->resync_ms;
            pthread_mutex_unlock(&c->mu);
            log_debug("msg=\"resync\"");
            c->def->resync(c, c->state);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        /* leadership and sync changes broadcast c->cond; poll as a safety net */
        ts = time_deadline(CLOCK_MONOTONIC, 200);
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* --- life cycle --- */

static struct ctl *ctl_alloc(const struct ctl_def *def, void *state)
{
    struct ctl *c = xcalloc(1, sizeof(*c));
    pthread_condattr_t ca;

    c->def = def;
    c->state = state;
    c->name = xstrdup(def && def->name ? def->name : "test");
    c->leader_key = xasprintf("/kontena/leaders/%s", c->name);
    c->leader_elect = 1;
    c->lease_ttl_ms = 10000;
    c->resync_ms = 30000;
    c->workers = 2;
    c->fence_rev = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->timer_mu, NULL);
    pthread_mutex_init(&c->metrics_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_cond_init(&c->timer_cond, &ca);
    pthread_condattr_destroy(&ca);
    c->m_leader = ctl_gauge(c, "kontena_leader", "1 while this process is the leader");
    c->m_etcd_errors = ctl_counter(c, "kontena_etcd_errors_total",
                                   "failed etcd requests and dropped watch streams");
    return c;
}

static void start_threads(struct ctl *c, int informers)
{
    atomic_store(&c->setup_done, 1);
    if (pthread_create(&c->timer_thread, NULL, ctl__timer_main, c) != 0)
        BUG_ON("cannot create the timer thread");
    c->timer_started = 1;
    if (informers)
        for (size_t i = 0; i < c->ninfs; i++)
            informer__start(c->infs[i]);
    for (size_t i = 0; i < c->nwqs; i++)
        wq__start(c->wqs[i]);
    if (c->leader_elect) {
        if (pthread_create(&c->leader_thread, NULL, ctl__leader_main, c) != 0)
            BUG_ON("cannot create the leader-election thread");
        c->leader_started = 1;
    } else {
        ctl__set_leader(c, 1, -1, 0);
    }
    if (c->def && c->def->resync) {
        if (pthread_create(&c->resync_thread, NULL, resync_main, c) != 0)
            BUG_ON("cannot create the resync thread");
        c->resync_started = 1;
    }
}

/* Stop in an order that keeps the guarantees: workers finish their reconciles first, then
 * the lease is revoked (a standby takes over at once, and no two leaders act together). */
static void stop_threads(struct ctl *c)
{
    atomic_store(&c->stopping, 1);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cond);
    if (c->leader_watch)
        etcd_watch_stop(c->leader_watch);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->timer_mu);
    pthread_cond_broadcast(&c->timer_cond);
    pthread_mutex_unlock(&c->timer_mu);
    for (size_t i = 0; i < c->ninfs; i++)
        informer__stop(c->infs[i]);

    for (size_t i = 0; i < c->nwqs; i++)
        wq__join(c->wqs[i]);
    if (c->resync_started)
        pthread_join(c->resync_thread, NULL);
    c->resync_started = 0;
    if (c->leader_started) {
        /* the leader thread may be inside a watch it had not published yet */
        pthread_mutex_lock(&c->mu);
        if (c->leader_watch)
            etcd_watch_stop(c->leader_watch);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->leader_thread, NULL);
        c->leader_started = 0;
        ctl__leader_release(c);
    }
    for (size_t i = 0; i < c->ninfs; i++)
        informer__join(c->infs[i]);
    if (c->timer_started)
        pthread_join(c->timer_thread, NULL);
    c->timer_started = 0;
}

static void ctl_free(struct ctl *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nwqs; i++)
        wq__free(c->wqs[i]);
    free(c->wqs);
    for (size_t i = 0; i < c->ninfs; i++)
        informer__free(c->infs[i]);
    free(c->infs);
    ctl__timers_free(c);
    ctl__metrics_free(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->timer_mu);
    pthread_mutex_destroy(&c->metrics_mu);
    pthread_cond_destroy(&c->cond);
    pthread_cond_destroy(&c->timer_cond);
    free(c->name);
    free(c->id);
    free(c->leader_key);
    free(c->http_addr);
    free(c);
}

/* --- for tests --- */

struct ctl *ctl_new_for_test(const struct ctl_def *def, void *state, struct etcd *etcd,
                             int workers)
{
    struct ctl *c = ctl_alloc(def, state);

    c->etcd = etcd;
    c->leader_elect = 0;
    c->workers = workers > 0 ? workers : 2;
    c->id = xasprintf("%s-test-%d", c->name, (int)getpid());
    return c;
}

void ctl_start_for_test(struct ctl *c)
{
    if (!c->etcd)
        for (size_t i = 0; i < c->ninfs; i++)
            atomic_store(&c->infs[i]->synced, 1);
    start_threads(c, c->etcd != NULL);
}

void ctl_free_for_test(struct ctl *c)
{
    if (!c)
        return;
    if (atomic_load(&c->setup_done))
        stop_threads(c);
    ctl_free(c);
}

/* --- flags --- */

enum {
    OPT_ETCD_EP = 256, OPT_ETCD_USER, OPT_ETCD_PW, OPT_ETCD_CA, OPT_ETCD_CERT, OPT_ETCD_KEY,
    OPT_ETCD_INSECURE, OPT_HTTP, OPT_ID, OPT_ELECT, OPT_NO_ELECT, OPT_TTL, OPT_RESYNC,
    OPT_WORKERS, OPT_LOG_LEVEL, OPT_VERSION, OPT_DEF = 1000, OPT_DEF_NO = 2000,
};

static const struct option common_opts[] = {
    {"etcd-endpoints", required_argument, NULL, OPT_ETCD_EP},
    {"etcd-username", required_argument, NULL, OPT_ETCD_USER},
    {"etcd-password", required_argument, NULL, OPT_ETCD_PW},
    {"etcd-cacert", required_argument, NULL, OPT_ETCD_CA},
    {"etcd-cert", required_argument, NULL, OPT_ETCD_CERT},
    {"etcd-key", required_argument, NULL, OPT_ETCD_KEY},
    {"etcd-insecure-skip-verify", no_argument, NULL, OPT_ETCD_INSECURE},
    {"http-listen", required_argument, NULL, OPT_HTTP},
    {"id", required_argument, NULL, OPT_ID},
    {"leader-elect", no_argument, NULL, OPT_ELECT},
    {"no-leader-elect", no_argument, NULL, OPT_NO_ELECT},
    {"lease-ttl", required_argument, NULL, OPT_TTL},
    {"resync-interval", required_argument, NULL, OPT_RESYNC},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
};

/* "500ms", "30s", "2m", "1h", "1m30s" or a bare number of seconds, in ms; -1 if bad. */
int64_t ctl_parse_duration(const char *s)
{
    int64_t total = 0;
    const char *p = s;

    if (!s || !*s)
        return -1;
    if (strspn(s, "0123456789") == strlen(s))
        return strlen(s) > 12 ? -1 : strtoll(s, NULL, 10) * 1000;
    while (*p) {
        int64_t n = 0, unit;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 12)
            return -1;
        for (size_t i = 0; i < digits; i++)
            n = n * 10 + (p[i] - '0');
        p += digits;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60000;
            p++;
        } else if (*p == 'h') {
            unit = 3600000;
            p++;
        } else {
            return -1;
        }
        total += n * unit;
        if (total > (int64_t)1e15)
            return -1;
    }
    return total;
}

static char *prog_name(const struct ctl_def *def)
{
    return xasprintf("kontena-%s", def->name);
}

static void usage(const struct ctl_def *def, FILE *f)
{
    char *prog = prog_name(def);

    fprintf(f,
            "Usage:\n"
            "    %s [OPTIONS]\n"
            "\n"
            "  %s\n"
            "\n"
            "Options:\n"
            "    --etcd-endpoints URLS         comma-separated etcd URLs (env KONTENA_ETCD_ENDPOINTS,\n"
            "                                  default http://127.0.0.1:2379)\n"
            "    --etcd-username USER          etcd auth user (env KONTENA_ETCD_USERNAME)\n"
            "    --etcd-password PW            etcd auth password (env KONTENA_ETCD_PASSWORD)\n"
            "    --etcd-cacert FILE            CA to verify etcd's certificate\n"
            "    --etcd-cert FILE              client certificate for etcd\n"
            "    --etcd-key FILE               key of --etcd-cert\n"
            "    --etcd-insecure-skip-verify   do not verify etcd's certificate\n"
            "    --http-listen ADDR:PORT|off   /healthz and /metrics (env KONTENA_HTTP_LISTEN,\n"
            "                                  default 127.0.0.1:%d)\n"
            "    --id ID                       identity in the leader key (default <host>-<pid>)\n"
            "    --leader-elect                take part in leader election (default)\n"
            "    --no-leader-elect             act without electing a leader (one replica only)\n"
            "    --lease-ttl DURATION          leader lease TTL, 2s..60s (env KONTENA_LEASE_TTL,\n"
            "                                  default 10s)\n"
            "    --resync-interval DURATION    re-queue every key this often while leading\n"
            "                                  (env KONTENA_RESYNC_INTERVAL, default 30s)\n"
            "    --workers N                   reconcile threads per queue, 1..64 (default 2)\n"
            "    --log-level LEVEL             debug, info, warn or error (env KONTENA_LOG_LEVEL,\n"
            "                                  default info)\n",
            prog, def->summary ? def->summary : "", def->http_port);
    for (const struct ctl_opt *o = def->opts; o && o->name; o++) {
        char left[64];
        const char *arg = o->type == CTL_OPT_FLAG       ? ""
                          : o->type == CTL_OPT_DURATION ? " DURATION"
                          : o->type == CTL_OPT_INT      ? " N"
                                                        : " VALUE";
        char extra[256] = "";
        const char *help = o->help ? o->help : "";
        snprintf(left, sizeof(left), "--%s%s", o->name, arg);
        if (o->env && o->defval)
            snprintf(extra, sizeof(extra), "(env %s, default %s)", o->env, o->defval);
        else if (o->env)
            snprintf(extra, sizeof(extra), "(env %s)", o->env);
        else if (o->defval)
            snprintf(extra, sizeof(extra), "(default %s)", o->defval);
        /* the help text, then the env/default note on the same line if it fits */
        if (!extra[0])
            fprintf(f, "    %-29s %s\n", left, help);
        else if (34 + strlen(help) + 1 + strlen(extra) <= 92)
            fprintf(f, "    %-29s %s %s\n", left, help, extra);
        else
            fprintf(f, "    %-29s %s\n%34s%s\n", left, help, "", extra);
        if (o->type == CTL_OPT_FLAG) {
            snprintf(left, sizeof(left), "--no-%s", o->name);
            fprintf(f, "    %-29s turn --%s off\n", left, o->name);
        }
    }
    fputs("    -h, --help                    print this help\n"
          "    --version                     print the version\n",
          f);
    free(prog);
}

struct owned_str {
    char **dest;
    char *val;
};

struct parse {
    const struct ctl_def *def;
    char *prog;
    struct owned_str *strs; /* strings the runtime allocated into def->opts dests */
    size_t nstrs;
};

static int set_def_opt(struct parse *ps, const struct ctl_opt *o, const char *val,
                       const char *from)
{
    int64_t v;
    long lv;

    switch (o->type) {
    case CTL_OPT_STRING: {
        char **dest = o->dest;
        for (size_t i = 0; i < ps->nstrs; i++)
            if (ps->strs[i].dest == dest && *dest == ps->strs[i].val) {
                free(ps->strs[i].val);
                ps->strs[i].val = NULL;
            }
        *dest = xstrdup(val);
        ps->strs = xrealloc(ps->strs, (ps->nstrs + 1) * sizeof(*ps->strs));
        ps->strs[ps->nstrs].dest = dest;
        ps->strs[ps->nstrs++].val = *dest;
        return 0;
    }
    case CTL_OPT_INT:
        lv = cmdline_long(val, (long)o->min, (long)o->max);
        if (lv == -1 && !(o->min <= -1 && o->max >= -1 && strcmp(val, "-1") == 0))
            return cmdline_usage(ps->prog, "bad %s '%s': a number from %lld to %lld", from, val,
                                 (long long)o->min, (long long)o->max);
        *(int64_t *)o->dest = lv;
        return 0;
    case CTL_OPT_DURATION:
        v = ctl_parse_duration(val);
        if (v == -1 || v < o->min || v > o->max)
            return cmdline_usage(ps->prog,
                                 "bad %s '%s': a duration like 500ms, 30s, 2m or 1m30s "
                                 "from %lld ms to %lld ms",
                                 from, val, (long long)o->min, (long long)o->max);
        *(int64_t *)o->dest = v;
        return 0;
    case CTL_OPT_FLAG:
        if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 || strcmp(val, "yes") == 0)
            *(int *)o->dest = 1;
        else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 || strcmp(val, "no") == 0)
            *(int *)o->dest = 0;
        else
            return cmdline_usage(ps->prog, "bad %s '%s': true or false", from, val);
        return 0;
    }
    return 0;
}

static void free_owned(struct parse *ps, int all)
{
    for (size_t i = 0; i < ps->nstrs; i++) {
        if (all && ps->strs[i].val && *ps->strs[i].dest == ps->strs[i].val) {
            free(ps->strs[i].val);
            *ps->strs[i].dest = NULL;
        }
    }
    free(ps->strs);
    ps->strs = NULL;
    ps->nstrs = 0;
}

struct common {
    struct etcd_opts eo;
    const char *http;
    const char *id;
};

static int parse_http(struct ctl *c, struct parse *ps, const char *v)
{
    const char *colon;
    long port;

    if (strcmp(v, "off") == 0) {
        FREE_AND_NULL(c->http_addr);
        return 0;
    }
    colon = strrchr(v, ':');
    if (!colon || colon == v || (port = cmdline_long(colon + 1, 1, 65535)) == -1)
        return cmdline_usage(ps->prog, "bad --http-listen '%s': use ADDR:PORT or off", v);
    free(c->http_addr);
    c->http_addr = xstrndup(v, (size_t)(colon - v));
    c->http_port = (int)port;
    return 0;
}

/* Defaults, then the environment, then the flags. Returns -1 to go on, else an exit
 * status (0 after --help/--version, 2 on a usage error). */
static int parse_args(struct ctl *c, struct parse *ps, struct common *co, int argc,
                      char **argv)
{
    const struct ctl_def *def = ps->def;
    size_t ncommon = ARRAY_SIZE(common_opts), ndef = 0, k = 0;
    struct option *lo;
    const char *s;
    int opt, rc = -1;
    int64_t v;
    char *nonames = NULL;

    for (const struct ctl_opt *o = def->opts; o && o->name; o++)
        ndef++;
    lo = xcalloc(ncommon + 2 * ndef + 1, sizeof(*lo));
    memcpy(lo, common_opts, sizeof(common_opts));
    k = ncommon;
    /* "no-<name>" strings live in one block */
    {
        size_t total = 0;
        for (size_t i = 0; i < ndef; i++)
            total += strlen(def->opts[i].name) + 4;
        nonames = xcalloc(total + 1, 1);
    }
    {
        char *p = nonames;
        for (size_t i = 0; i < ndef; i++) {
            const struct ctl_opt *o = &def->opts[i];
            lo[k].name = o->name;
            lo[k].has_arg = o->type == CTL_OPT_FLAG ? no_argument : required_argument;
            lo[k++].val = OPT_DEF + (int)i;
            if (o->type == CTL_OPT_FLAG) {
                size_t n = strlen(o->name);
                memcpy(p, "no-", 3);
                memcpy(p + 3, o->name, n + 1);
                lo[k].name = p;
                lo[k].has_arg = no_argument;
                lo[k++].val = OPT_DEF_NO + (int)i;
                p += n + 4;
            }
        }
    }

    /* defaults */
    c->http_addr = xstrdup("127.0.0.1");
    c->http_port = def->http_port;
    for (size_t i = 0; i < ndef; i++) {
        const struct ctl_opt *o = &def->opts[i];
        char *from;
        if (!o->defval)
            continue;
        from = xasprintf("default of --%s", o->name);
        rc = set_def_opt(ps, o, o->defval, from);
        free(from);
        BUG_ON(rc == 2); /* a controller's own default must parse */
        rc = -1;
    }

    /* environment */
    co->eo.endpoints = "http://127.0.0.1:2379";
    if ((s = getenv("KONTENA_ETCD_ENDPOINTS")) && *s)
        co->eo.endpoints = s;
    co->eo.username = getenv("KONTENA_ETCD_USERNAME");
    co->eo.password = getenv("KONTENA_ETCD_PASSWORD");
    if ((s = getenv("KONTENA_HTTP_LISTEN")) && *s && (rc = parse_http(c, ps, s)) != 0)
        goto out;
    if ((s = getenv("KONTENA_LEASE_TTL")) && *s) {
        if ((v = ctl_parse_duration(s)) < 2000 || v > 60000) {
            rc = cmdline_usage(ps->prog, "bad KONTENA_LEASE_TTL '%s': from 2s to 60s", s);
            goto out;
        }
        c->lease_ttl_ms = v;
    }
    if ((s = getenv("KONTENA_RESYNC_INTERVAL")) && *s) {
        if ((v = ctl_parse_duration(s)) < 100 || v > 86400000) {
            rc = cmdline_usage(ps->prog,
                               "bad KONTENA_RESYNC_INTERVAL '%s': from 100ms to 24h", s);
            goto out;
        }
        c->resync_ms = v;
    }
    if ((s = getenv("KONTENA_LOG_LEVEL")) && *s) {
        if (log_level_parse(s) == -1) {
            rc = cmdline_usage(ps->prog, "bad KONTENA_LOG_LEVEL '%s': debug, info, warn or "
                               "error", s);
            goto out;
        }
        log_min_level = (enum log_level)log_level_parse(s);
    }
    for (size_t i = 0; i < ndef; i++) {
        const struct ctl_opt *o = &def->opts[i];
        if (o->env && (s = getenv(o->env)) && *s && (rc = set_def_opt(ps, o, s, o->env)) != 0)
            goto out;
    }
    rc = -1;

    /* flags */
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case OPT_ETCD_EP: co->eo.endpoints = optarg; break;
        case OPT_ETCD_USER: co->eo.username = optarg; break;
        case OPT_ETCD_PW: co->eo.password = optarg; break;
        case OPT_ETCD_CA: co->eo.cacert = optarg; break;
        case OPT_ETCD_CERT: co->eo.cert = optarg; break;
        case OPT_ETCD_KEY: co->eo.key = optarg; break;
        case OPT_ETCD_INSECURE: co->eo.insecure_skip_verify = 1; break;
        case OPT_HTTP:
            if ((rc = parse_http(c, ps, optarg)) != 0)
                goto out;
            rc = -1;
            break;
        case OPT_ID:
            if (!*optarg || strlen(optarg) > 200) {
                rc = cmdline_usage(ps->prog, "bad --id '%s': 1 to 200 characters", optarg);
                goto out;
            }
            co->id = optarg;
            break;
        case OPT_ELECT: c->leader_elect = 1; break;
        case OPT_NO_ELECT: c->leader_elect = 0; break;
        case OPT_TTL:
            if ((v = ctl_parse_duration(optarg)) < 2000 || v > 60000) {
                rc = cmdline_usage(ps->prog, "bad --lease-ttl '%s': from 2s to 60s", optarg);
                goto out;
            }
            c->lease_ttl_ms = v;
            break;
        case OPT_RESYNC:
            if ((v = ctl_parse_duration(optarg)) < 100 || v > 86400000) {
                rc = cmdline_usage(ps->prog, "bad --resync-interval '%s': from 100ms to 24h",
                                   optarg);
                goto out;
            }
            c->resync_ms = v;
            break;
        case OPT_WORKERS:
            if ((v = cmdline_long(optarg, 1, 64)) == -1) {
                rc = cmdline_usage(ps->prog, "bad --workers '%s': a number from 1 to 64",
                                   optarg);
                goto out;
            }
            c->workers = (int)v;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg) == -1) {
                rc = cmdline_usage(ps->prog,
                                   "bad --log-level '%s': debug, info, warn or error", optarg);
                goto out;
            }
            log_min_level = (enum log_level)log_level_parse(optarg);
            break;
        case 'h':
            usage(def, stdout);
            rc = 0;
            goto out;
        case OPT_VERSION:
            printf("%s %s\n", ps->prog, KONTENA_VERSION);
            rc = 0;
            goto out;
        default:
            if (opt >= OPT_DEF_NO && opt < OPT_DEF_NO + (int)ndef) {
                *(int *)def->opts[opt - OPT_DEF_NO].dest = 0;
            } else if (opt >= OPT_DEF && opt < OPT_DEF + (int)ndef) {
                const struct ctl_opt *o = &def->opts[opt - OPT_DEF];
                char *from = xasprintf("--%s", o->name);
                rc = set_def_opt(ps, o, o->type == CTL_OPT_FLAG ? "1" : optarg, from);
                free(from);
                if (rc != 0)
                    goto out;
                rc = -1;
            } else {
                fprintf(stderr, "See '%s --help'.\n", ps->prog);
                rc = 2;
                goto out;
            }
        }
    }
    if (optind < argc)
        rc = cmdline_usage(ps->prog, "unexpected argument '%s'", argv[optind]);
out:
    free(lo);
    free(nonames);
    return rc;
}

int ctl_main(int argc, char **argv, const struct ctl_def *def, void *state)
{
    struct ctl *c = ctl_alloc(def, state);
    struct parse ps = {0};
    struct common co;
    struct err e = ERR_INIT;
    sigset_t sigs;
    int rc, sig;

    memset(&co, 0, sizeof(co));
    ps.def = def;
    ps.prog = prog_name(def);
    log_init(def->name, LOG_INFO);
    rc = parse_args(c, &ps, &co, argc, argv);
    if (rc != -1) {
        free_owned(&ps, 1);
        free(ps.prog);
        ctl_free(c);
        return rc;
    }
    rc = 1;
    if (co.id) {
        c->id = xstrdup(co.id);
    } else {
        char host[256] = "";
        gethostname(host, sizeof(host) - 1);
        c->id = xasprintf("%s-%d", host[0] ? host : "localhost", (int)getpid());
    }

    /* libcurl and libmicrohttpd start threads: block the signals first, then sigwait */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    c->etcd = etcd_create(&co.eo, &e);
    if (!c->etcd) {
        log_error("msg=\"cannot use etcd at %s: %s\"", co.eo.endpoints, e.msg);
        goto out;
    }
    if (c->leader_elect) {
        struct etcd_opts leo = co.eo;
        leo.request_timeout_ms = c->lease_ttl_ms / 3;
        leo.connect_timeout_ms = leo.request_timeout_ms < 2000 ? leo.request_timeout_ms : 2000;
        c->etcd_le = etcd_create(&leo, &e);
        if (!c->etcd_le) {
            log_error("msg=\"cannot use etcd at %s: %s\"", co.eo.endpoints, e.msg);
            goto out;
        }
    }
    if (def->setup && def->setup(c, state, &e) != ST_OK) {
        log_error("msg=\"cannot start: %s\"", e.msg[0] ? e.msg : "setup failed");
        goto out;
    }
    atomic_store(&c->setup_done, 1);
    if (ctl__http_start(c, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        goto out;
    }
    start_threads(c, 1);
    {
        char http[300] = "off";
        if (c->http_addr)
            snprintf(http, sizeof(http), "%s:%d", c->http_addr, c->http_port);
        log_info("id=%s etcd=%s http=%s leader_elect=%s lease_ttl_ms=%lld msg=\"started\"",
                 c->id, co.eo.endpoints, http, c->leader_elect ? "on" : "off",
                 (long long)c->lease_ttl_ms);
    }
    if (sigwait(&sigs, &sig) == 0)
        log_info("msg=\"signal %d: shutting down\"", sig);
    stop_threads(c);
    rc = 0;
out:
    if (!rc || atomic_load(&c->setup_done)) {
        stop_threads(c);
        ctl__http_stop(c);
        if (def->teardown)
            def->teardown(c, state);
    }
    if (rc == 0)
        log_info("msg=\"stopped\"");
    etcd_destroy(c->etcd_le);
    c->etcd_le = NULL;
    etcd_destroy(c->etcd);
    c->etcd = NULL;
    ctl_free(c);
    free_owned(&ps, 1);
    free(ps.prog);
    return rc;
}
