/* controllers/runtime/ctl_leader.c -- leader election on an etcd lease.
 *
 * Campaign: grant a lease of --lease-ttl, then one transaction creates
 * /kontena/leaders/<name> on it if the key does not exist (create_revision == 0), else
 * reads it. The winner's fence is the key's create_revision (the transaction's revision):
 * ctl_txn_fence() compares it, so writes of a leader whose key is gone (lease expired while
 * it was stalled) fail. The leader keeps the lease alive every ttl/3 and checks that the
 * key is still the one it created; a lease that is gone, a different key, or no successful
 * keep-alive for a whole TTL ends its leadership at once (workers stop taking keys).
 * A standby watches the key and campaigns again as soon as it is deleted (lease expired, or
 * revoked by a leader shutting down). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "common/banned.h"

static struct etcd *le(struct ctl *c)
{
    return c->etcd_le ? c->etcd_le : c->etcd;
}

static void leader_err(struct ctl *c, const char *what, const char *msg)
{
    ctl__etcd_error(c, msg);
    pthread_mutex_lock(&c->mu);
    snprintf(c->etcd_err, sizeof(c->etcd_err), "%s: %s", what, msg);
    pthread_mutex_unlock(&c->mu);
    log_warn("msg=\"leader election: %s: %s\"", what, msg);
}

static void leader_ok(struct ctl *c)
{
    pthread_mutex_lock(&c->mu);
    c->etcd_err[0] = '\0';
    pthread_mutex_unlock(&c->mu);
}

static char *leader_value(struct ctl *c)
{
    char host[256] = "", now[40];
    json_t *v;
    char *s;

    gethostname(host, sizeof(host) - 1);
    time_iso8601_now(now, sizeof(now));
    v = json_pack("{s:s, s:s, s:I, s:s}", "id", c->id, "host", host, "pid",
                  (json_int_t)getpid(), "acquired_at", now);
    s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static int standby_cb(void *arg, const struct etcd_watch_msg *m)
{
    struct ctl *c = arg;

    if (m->kind == ETCD_WATCH_EVENTS)
        for (size_t i = 0; i < m->n_events; i++)
            if (m->events[i].type == ETCD_EVENT_DELETE)
                return 1;
    return atomic_load(&c->stopping) ? 1 : 0;
}

/* Wait until the leader key changes hands (deleted after rev) or we stop. */
static void standby(struct ctl *c, int64_t rev)
{
    struct etcd_watch_opts wo = {0};
    struct etcd_watch *w;
    struct err e = ERR_INIT;
    enum status st = ST_OK;

    wo.key = c->leader_key;
    wo.start_revision = rev + 1;
    w = etcd_watch_create(c->etcd, &wo, standby_cb, c);
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->stopping)) {
        pthread_mutex_unlock(&c->mu);
        etcd_watch_destroy(w);
        return;
    }
    c->leader_watch = w;
    pthread_mutex_unlock(&c->mu);
    st = etcd_watch_run(w, &e);
    pthread_mutex_lock(&c->mu);
    c->leader_watch = NULL;
    pthread_mutex_unlock(&c->mu);
    etcd_watch_destroy(w);
    if (st != ST_OK && st != ST_COMPACTED)
        leader_err(c, "cannot watch the leader key", e.msg);
}

static void revoke_lease(struct ctl *c, int64_t lease)
{
    struct err e = ERR_INIT;

    if (lease && etcd_lease_revoke(le(c), lease, &e) != ST_OK && e.st != ST_NOTFOUND)
        log_warn("msg=\"cannot revoke lease %llx: %s\"", (unsigned long long)lease, e.msg);
}

/* Lead until the lease is lost or we stop. */
static void lead(struct ctl *c, int64_t lease, int64_t fence)
{
    int64_t last_ok = time_mono_ms(), interval = c->lease_ttl_ms / 3;
    const char *why = NULL;
    char whybuf[600];

    ctl__set_leader(c, 1, fence, lease);
    log_info("id=%s rev=%lld msg=\"became the leader\"", c->id, (long long)fence);
    while (!ctl__sleep(c, interval)) {
        struct err e = ERR_INIT;
        struct etcd_kv kv = {0};
        enum status st = etcd_lease_keepalive(le(c), lease, NULL, &e);

        if (st == ST_OK)
            st = etcd_get(le(c), c->leader_key, &kv, NULL, &e);
        if (st == ST_OK) {
            int64_t cr = kv.create_revision;
            etcd_kv_release(&kv);
            if (cr != fence) {
                why = "the leader key was replaced";
                break;
            }
            last_ok = time_mono_ms();
            leader_ok(c);
            continue;
        }
        if (st == ST_NOTFOUND) {
            why = "the lease or the leader key is gone";
            break;
        }
        leader_err(c, "cannot renew the leader lease", e.msg);
        if (time_mono_ms() - last_ok >= c->lease_ttl_ms) {
            snprintf(whybuf, sizeof(whybuf), "no renewal for %lld ms: %s",
                     (long long)c->lease_ttl_ms, e.msg);
            why = whybuf;
            break;
        }
    }
    if (why) {
        ctl__set_leader(c, 0, -1, 0);
        log_warn("id=%s msg=\"lost the leadership: %s\"", c->id, why);
        revoke_lease(c, lease);
    }
    /* stopping: ctl__leader_release() revokes once the workers are done */
}

void *ctl__leader_main(void *arg)
{
    struct ctl *c = arg;
    int64_t ttl_s = (c->lease_ttl_ms + 999) / 1000;
    int64_t retry = c->lease_ttl_ms / 3 < 1000 ? c->lease_ttl_ms / 3 : 1000;

    while (!atomic_load(&c->stopping)) {
        struct err e = ERR_INIT;
        struct etcd_txn *t;
        struct etcd_txn_result res = {0};
        int64_t lease = 0;
        char *val;

        if (etcd_lease_grant(le(c), ttl_s, &lease, &e) != ST_OK) {
            leader_err(c, "cannot grant a lease", e.msg);
            ctl__sleep(c, retry);
            continue;
        }
        val = leader_value(c);
        t = etcd_txn_new();
        etcd_txn_cmp(t, c->leader_key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
        etcd_txn_put(t, ETCD_THEN, c->leader_key, val, strlen(val), lease);
        etcd_txn_range(t, ETCD_ELSE, c->leader_key, NULL);
        free(val);
        if (etcd_txn_commit(le(c), t, &res, &e) != ST_OK) {
            etcd_txn_free(t);
            leader_err(c, "cannot campaign", e.msg);
            revoke_lease(c, lease);
            ctl__sleep(c, retry);
            continue;
        }
        etcd_txn_free(t);
        leader_ok(c);
        if (res.succeeded) {
            int64_t fence = res.revision;
            etcd_txn_result_release(&res);
            lead(c, lease, fence);
            if (!atomic_load(&c->stopping))
                ctl__sleep(c, retry); /* let another replica win after a loss */
            continue;
        }
        revoke_lease(c, lease);
        if (res.n == 1 && res.responses[0].type == ETCD_RESP_RANGE &&
            res.responses[0].range.n == 1) {
            const struct etcd_kv *kv = &res.responses[0].range.kvs[0];
            json_t *v = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, NULL);
            const char *who = json_string_value(json_object_get(v, "id"));
            log_info("msg=\"standing by: the leader is %s\"", who ? who : "unknown");
            json_decref(v);
        }
        int64_t rev = res.revision;
        etcd_txn_result_release(&res);
        standby(c, rev);
    }
    return NULL;
}

void ctl__leader_release(struct ctl *c)
{
    int64_t lease;

    pthread_mutex_lock(&c->mu);
    lease = atomic_load(&c->leader) ? c->lease_id : 0;
    pthread_mutex_unlock(&c->mu);
    if (!lease)
        return;
    ctl__set_leader(c, 0, -1, 0);
    revoke_lease(c, lease);
    log_info("id=%s msg=\"gave up the leadership\"", c->id);
}
