/* controllers/rescheduler.c -- kontena-rescheduler: creates the deploys nobody asked for.
 *
 * One work queue keyed by service key (/kontena/services/<grid>/<stack>/<svc>). Reconcile
 * reads the caches and, for a running stateless service with no unfinished deploy and no
 * unfinished stack deploy of its stack, creates a deploy record (the scheduler carries it
 * out) when
 *   - the deploy interval has passed (forced: revision + 1),
 *   - the service was saved after its last deploy (updated_at > deployed_at), or
 *   - sched_mismatch() over the available nodes says the placement is wrong (a node went
 *     offline past its grace, was drained or removed, or a new node came online).
 * The record and the service's new deploy_id go in one transaction compared on the
 * service's mod_revision and fenced on our leadership. Rules and timings:
 * docs/internals/rescheduler.md, reference/scheduling.md §9–§11.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/deployrec.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl.h"
#include "controllers/sched/sched.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define P_SERVICES "/kontena/services/"
#define P_NODES "/kontena/nodes/"
#define P_STATUS "/kontena/node_status/"
#define P_INSTANCES "/kontena/instances/"
#define P_DEPLOYS "/kontena/deploys/"
#define P_STACK_DEPLOYS "/kontena/stack_deploys/"
#define P_GRIDS "/kontena/grids/"

/* After a deploy ends, wait this long before judging the placement (caches settle). */
#define RESCHED_SETTLE_MS 1000
/* Wake this long after a grace period ends, so the period has surely passed. */
#define RESCHED_WAKE_SLACK_MS 50

struct resched {
    struct ctl *ctl;
    struct wq *wq;
    struct informer *services, *nodes, *status, *instances, *deploys, *stack_deploys, *grids;
    int64_t online_grace_ms, grace_ha_ms, grace_daemon_ms, grace_random_ms;
    pthread_mutex_t lock; /* guards seen */
    json_t *seen;
};

static struct resched the_resched;

/* --- key helpers ---------------------------------------------------------------------- */

/* The n-th '/'-separated segment after prefix in key (0 = grid), copied into out; 0 if the
 * key has it, -1 if not. */
static int key_seg(const char *key, const char *prefix, int n, char *out, size_t len)
{
    size_t pl = strlen(prefix);
    const char *p, *end;

    if (strncmp(key, prefix, pl) != 0)
        return -1;
    p = key + pl;
    for (int i = 0; i < n; i++) {
        p = strchr(p, '/');
        if (!p)
            return -1;
        p++;
    }
    end = strchr(p, '/');
    if (!end)
        end = p + strlen(p);
    if (end == p || (size_t)(end - p) >= len)
        return -1;
    snprintf(out, len, "%.*s", (int)(end - p), p);
    return 0;
}

static int64_t jtime(const json_t *o, const char *k)
{
    const char *s = jstr(o, k);
    return s ? time_iso8601_parse(s) : -1;
}

/* Queue every service of grid (and of stack, if not NULL). */
static void add_services(struct resched *r, const char *grid, const char *stack)
{
    struct ctl_obj *objs = NULL;
    char *prefix =
        stack ? xasprintf(P_SERVICES "%s/%s/", grid, stack) : xasprintf(P_SERVICES "%s/", grid);
    size_t n = informer_list(r->services, prefix, &objs);

    for (size_t i = 0; i < n; i++)
        wq_add(r->wq, objs[i].key);
    ctl_objs_free(objs, n);
    free(prefix);
}

/* --- node liveness seen by this process ------------------------------------------------- */

/* r->seen["<grid>/<node>"] = {"gone": µs} when we saw the status key go, {"up": µs} when we
 * saw it appear; used when the node key has no usable timestamp. */
static void seen_mark(struct resched *r, const char *grid, const char *node, int up)
{
    char id[300];

    snprintf(id, sizeof(id), "%s/%s", grid, node);
    pthread_mutex_lock(&r->lock);
    json_object_set_new(r->seen, id,
                        json_pack("{s:I}", up ? "up" : "gone", (json_int_t)time_now_us()));
    pthread_mutex_unlock(&r->lock);
}

static int64_t seen_get(struct resched *r, const char *grid, const char *node, int up)
{
    char id[300];
    int64_t v;

    snprintf(id, sizeof(id), "%s/%s", grid, node);
    pthread_mutex_lock(&r->lock);
    v = json_integer_value(json_object_get(json_object_get(r->seen, id), up ? "up" : "gone"));
    pthread_mutex_unlock(&r->lock);
    return v > 0 ? v : -1;
}

/* --- handlers ---------------------------------------------------------------------------- */

static void on_service(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct resched *r = arg;

    (void)o;
    (void)n;
    wq_add(r->wq, key);
}

static void on_node(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct resched *r = arg;
    char grid[128];

    (void)o;
    (void)n;
    if (key_seg(key, P_NODES, 0, grid, sizeof(grid)) == 0)
        add_services(r, grid, NULL);
}

static void on_status(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct resched *r = arg;
    char grid[128], node[128];

    if (key_seg(key, P_STATUS, 0, grid, sizeof(grid)) != 0 ||
        key_seg(key, P_STATUS, 1, node, sizeof(node)) != 0)
        return;
    if (!o && n)
        seen_mark(r, grid, node, 1);
    else if (o && !n)
        seen_mark(r, grid, node, 0);
    add_services(r, grid, NULL);
}

/* An instance or deploy record names its service by grid, stack and service. */
static void add_owner(struct resched *r, const json_t *v)
{
    const char *g = jstr(v, "grid"), *st = jstr(v, "stack"), *s = jstr(v, "service");
    char *key;

    if (!g || !st || !s)
        return;
    key = xasprintf(P_SERVICES "%s/%s/%s", g, st, s);
    wq_add(r->wq, key);
    free(key);
}

static void on_instance(void *arg, const char *key, const json_t *o, const json_t *n)
{
    (void)key;
    add_owner(arg, n ? n : o);
}

static void on_deploy(void *arg, const char *key, const json_t *o, const json_t *n)
{
    const json_t *v = n ? n : o;
    const char *stack = jstr(v, "stack");
    char grid[128];

    /* Only state changes matter: a deploy that ends may let a waiting rule fire, for its
     * service and, through the stack deploy rule, for the rest of its stack. */
    if (n && o && jstr(o, "state") && jstr(n, "state") &&
        strcmp(jstr(o, "state"), jstr(n, "state")) == 0)
        return;
    if (stack && strcmp(stack, "null") != 0 && key_seg(key, P_DEPLOYS, 0, grid, sizeof(grid)) == 0)
        add_services(arg, grid, stack);
    else
        add_owner(arg, v);
}

static void on_stack_deploy(void *arg, const char *key, const json_t *o, const json_t *n)
{
    const json_t *v = n ? n : o;
    char grid[128];

    if (key_seg(key, P_STACK_DEPLOYS, 0, grid, sizeof(grid)) == 0 && jstr(v, "stack"))
        add_services(arg, grid, jstr(v, "stack"));
}

/* --- reconcile ------------------------------------------------------------------------------ */

/* 1 when the deploy record id of grid is created or ongoing. A record the cache does not
 * have (yet) counts as unfinished while its id says it is younger than 5 minutes: the
 * services cache may be ahead of the deploys cache. *finished_us gets its finished_at. */
static int deploy_unfinished(struct resched *r, const char *grid, const char *id,
                             int64_t *finished_us)
{
    char *key = xasprintf(P_DEPLOYS "%s/%s", grid, id);
    json_t *rec = informer_get(r->deploys, key, NULL, NULL);
    const char *st = jstr(rec, "state");
    int busy;

    free(key);
    if (finished_us)
        *finished_us = -1;
    if (!rec) {
        long long created = atoll(id); /* "<16-digit µs>-<hex>" */
        return created > 0 && time_now_us() - created < 5LL * 60 * 1000000;
    }
    busy = !st || strcmp(st, "created") == 0 || strcmp(st, "ongoing") == 0;
    if (finished_us)
        *finished_us = jtime(rec, "finished_at");
    json_decref(rec);
    return busy;
}

/* 1 when the stack has a stack deploy younger than 30 minutes with an unfinished service
 * deploy (reference §9 rule 4). */
static int stack_deploying(struct resched *r, const char *grid, const char *stack)
{
    struct ctl_obj *objs = NULL;
    char *prefix = xasprintf(P_STACK_DEPLOYS "%s/", grid);
    size_t n = informer_list(r->stack_deploys, prefix, &objs);
    int64_t now = time_now_us();
    int busy = 0;

    for (size_t i = 0; i < n && !busy; i++) {
        const json_t *sd = objs[i].val, *id;
        int64_t created = jtime(sd, "created_at");
        size_t k;

        if (!jstr(sd, "stack") || strcmp(jstr(sd, "stack"), stack) != 0)
            continue;
        if (created < 0 || now - created > 30LL * 60 * 1000000)
            continue;
        json_array_foreach(json_object_get(sd, "service_deploys"), k, id)
        {
            if (json_is_string(id) && deploy_unfinished(r, grid, json_string_value(id), NULL))
                busy = 1;
        }
    }
    ctl_objs_free(objs, n);
    free(prefix);
    return busy;
}

static int64_t grace_ms(const struct resched *r, const json_t *svc)
{
    const char *s = jstr(svc, "strategy");

    if (s && strcmp(s, "daemon") == 0)
        return r->grace_daemon_ms;
    if (s && strcmp(s, "random") == 0)
        return r->grace_random_ms;
    return r->grace_ha_ms;
}

/* Keep the earliest wake-up. */
static void wake_at(int64_t *wake_us, int64_t at_us)
{
    if (at_us > 0 && (*wake_us < 0 || at_us < *wake_us))
        *wake_us = at_us;
}

/* What happened to the nodes the service was on, for the reason text. */
struct lost {
    char node[128];
    char what[200];
};

/* Build the grid snapshot for svc and ask sched_mismatch(). why gets the reason text. */
static enum status placement_mismatch(struct resched *r, const char *grid, const char *key,
                                      const json_t *svc, int *mismatch, char *why, size_t why_len,
                                      int64_t *wake_us, struct err *e)
{
    char *sprefix = xasprintf(P_SERVICES "%s/", grid), *nprefix = xasprintf(P_NODES "%s/", grid);
    char *iprefix = xasprintf(P_INSTANCES "%s/", grid), *gkey = xasprintf(P_GRIDS "%s", grid);
    struct ctl_obj *svcs = NULL, *nodes = NULL, *insts = NULL;
    size_t ns = informer_list(r->services, sprefix, &svcs);
    size_t nn = informer_list(r->nodes, nprefix, &nodes);
    size_t ni = informer_list(r->instances, iprefix, &insts);
    json_t *g = informer_get(r->grids, gkey, NULL, NULL);
    json_t *ports = json_object();     /* service id -> [node ports] */
    json_t *own_nodes = json_object(); /* nodes holding an instance of svc */
    struct sched_service me = {0};
    struct sched_grid *sg = NULL;
    struct lost lost = {"", ""};
    const char *sid = jstr(svc, "id");
    int64_t now = time_now_us(), grace = grace_ms(r, svc) * 1000;
    uint64_t seed = 1469598103934665603ULL;
    enum status st;

    *mismatch = 0;
    st = sched_service_from_json(&me, svc, g, e);
    if (st != ST_OK)
        goto out;
    /* Node ports of every service of the grid: the port filter needs them. */
    for (size_t i = 0; i < ns; i++) {
        struct sched_service s = {0};
        json_t *arr = json_array();

        if (jstr(svcs[i].val, "id") && sched_service_from_json(&s, svcs[i].val, g, NULL) == ST_OK) {
            for (size_t k = 0; k < s.n_node_ports; k++)
                json_array_append_new(arr, json_integer(s.node_ports[k]));
            sched_service_release(&s);
        }
        json_object_set_new(ports, jstr(svcs[i].val, "id") ? jstr(svcs[i].val, "id") : "", arr);
    }
    for (size_t i = 0; i < ni; i++) {
        char node[128];
        const char *isid = jstr(insts[i].val, "service_id");
        if (isid && sid && strcmp(isid, sid) == 0 &&
            key_seg(insts[i].key, P_INSTANCES, 1, node, sizeof(node)) == 0)
            json_object_set_new(own_nodes, node, json_true());
    }

    for (const char *p = key; *p; p++)
        seed = (seed ^ (unsigned char)*p) * 1099511628211ULL;
    sg = sched_grid_new(seed);
    for (size_t i = 0; i < nn; i++) {
        char node[128], *skey;
        json_t *status;
        int cand = 0, mine;
        const char *avail = jstr(nodes[i].val, "availability");

        if (key_seg(nodes[i].key, P_NODES, 1, node, sizeof(node)) != 0)
            continue;
        mine = json_object_get(own_nodes, node) != NULL;
        skey = xasprintf(P_STATUS "%s/%s", grid, node);
        status = informer_get(r->status, skey, NULL, NULL);
        free(skey);
        if (status) {
            /* Online: a candidate once online for the online grace, or at once when it
             * already runs instances of this service. */
            int64_t since = jtime(status, "connected_at");
            if (since < 0)
                since = jtime(nodes[i].val, "connected_at");
            if (since < 0)
                since = seen_get(r, grid, node, 1);
            if (mine || since < 0 || now - since >= r->online_grace_ms * 1000)
                cand = 1;
            else
                wake_at(wake_us, since + r->online_grace_ms * 1000);
        } else if (mine) {
            /* Offline: still counts for its own instances until the strategy's grace ends,
             * measured from the latest sign of life we know of. */
            int64_t since = jtime(nodes[i].val, "disconnected_at"), x;
            char ts[40];

            if ((x = jtime(nodes[i].val, "last_seen_at")) > since)
                since = x;
            if ((x = seen_get(r, grid, node, 0)) > since)
                since = x;
            if (since >= 0 && now - since < grace) {
                cand = 1;
                wake_at(wake_us, since + grace);
            } else if (!lost.node[0]) {
                snprintf(lost.node, sizeof(lost.node), "%s", node);
                if (since >= 0) {
                    time_iso8601(since, ts, sizeof(ts));
                    snprintf(lost.what, sizeof(lost.what), "node %s offline since %s", node, ts);
                } else {
                    snprintf(lost.what, sizeof(lost.what), "node %s offline", node);
                }
            }
        }
        if (avail && strcmp(avail, "drain") == 0) {
            if (mine && !lost.node[0]) {
                snprintf(lost.node, sizeof(lost.node), "%s", node);
                snprintf(lost.what, sizeof(lost.what), "node %s drained", node);
            }
            cand = 0;
        }
        json_object_del(own_nodes, node);
        json_decref(status);
        sched_grid_add_node(sg, nodes[i].val, cand);
    }
    /* Whatever is left in own_nodes is not a node of the grid any more. */
    if (!lost.node[0] && json_object_size(own_nodes) > 0) {
        const char *gone = json_object_iter_key(json_object_iter(own_nodes));
        snprintf(lost.node, sizeof(lost.node), "%s", gone);
        snprintf(lost.what, sizeof(lost.what), "node %s removed", gone);
    }
    for (size_t i = 0; i < ni; i++) {
        char node[128], ctr[256];
        const json_t *v = insts[i].val, *pa;
        const char *isid = jstr(v, "service_id");
        int pbuf[64];
        size_t np = 0, k;
        json_t *x;

        if (!isid || key_seg(insts[i].key, P_INSTANCES, 1, node, sizeof(node)) != 0 ||
            key_seg(insts[i].key, P_INSTANCES, 2, ctr, sizeof(ctr)) != 0)
            continue;
        pa = json_object_get(ports, isid);
        json_array_foreach(pa, k, x) if (np < 64) pbuf[np++] = (int)json_integer_value(x);
        sched_grid_add_instance(sg, node, isid,
                                (int)json_integer_value(json_object_get(v, "instance_number")), ctr,
                                pbuf, np);
    }
    {
        char mwhy[SCHED_REASON_LEN] = "";
        *mismatch = sched_mismatch(sg, &me, mwhy, sizeof(mwhy));
        if (*mismatch && lost.what[0])
            snprintf(why, why_len, "%s", lost.what);
        else if (*mismatch)
            snprintf(why, why_len,
                     "has wrong number of instances (or they are not distributed correctly)");
    }
out:
    sched_grid_free(sg);
    if (st == ST_OK)
        sched_service_release(&me);
    ctl_objs_free(svcs, ns);
    ctl_objs_free(nodes, nn);
    ctl_objs_free(insts, ni);
    json_decref(g);
    json_decref(ports);
    json_decref(own_nodes);
    free(sprefix);
    free(nprefix);
    free(iprefix);
    free(gkey);
    return st;
}

/* Write the deploy record and the service in one transaction. */
static enum status create_deploy(struct resched *r, const char *key, const json_t *cur,
                                 int64_t mod_rev, int force, const char *why, const char *metric,
                                 struct err *e)
{
    char now[40], *dkey = NULL, *sval = NULL, *dval = NULL, *reason;
    json_t *svc = json_deep_copy(cur), *rec;
    struct etcd_txn *t;
    struct etcd_txn_result res = {0};
    enum status st;

    time_iso8601_now(now, sizeof(now));
    if (force)
        json_object_set_new(svc, "revision",
                            json_integer(json_integer_value(json_object_get(svc, "revision")) + 1));
    json_object_set_new(svc, "deployed_at", json_string(now));
    rec = deploy_record_new(svc, NULL, force, now);
    reason = xasprintf("rescheduled: %s", why);
    json_object_set_new(rec, "reason", json_string(reason));
    json_object_set(svc, "deploy_id", json_object_get(rec, "id"));
    dkey = xasprintf(P_DEPLOYS "%s/%s", jstr(svc, "grid"), jstr(rec, "id"));
    sval = json_dumps(svc, JSON_COMPACT);
    dval = json_dumps(rec, JSON_COMPACT);
    BUG_ON(!sval || !dval);

    t = etcd_txn_new();
    etcd_txn_cmp(t, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, mod_rev);
    etcd_txn_cmp(t, dkey, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
    ctl_txn_fence(r->ctl, t);
    etcd_txn_put(t, ETCD_THEN, key, sval, strlen(sval), 0);
    etcd_txn_put(t, ETCD_THEN, dkey, dval, strlen(dval), 0);
    st = etcd_txn_commit(ctl_etcd(r->ctl), t, &res, e);
    if (st == ST_OK && !res.succeeded) {
        st = err_set(e, ST_CONFLICT,
                     "service '%s' changed (or leadership lost) before its deploy "
                     "could be written",
                     key);
    } else if (st == ST_OK) {
        /* Read our own write: the next pass sees the unfinished deploy, not the old
         * deploy_id, and does not deploy twice. */
        informer_store(r->services, key, svc, res.revision);
        informer_store(r->deploys, dkey, rec, res.revision);
        ctl_metric_add(ctl_counter(r->ctl, metric, NULL), 1);
        log_info("key=%s rev=%lld msg=\"deploy %s created: %s\"", key, (long long)res.revision,
                 jstr(rec, "id"), reason);
    }
    etcd_txn_result_release(&res);
    etcd_txn_free(t);
    free(reason);
    free(sval);
    free(dval);
    free(dkey);
    json_decref(rec);
    json_decref(svc);
    return st;
}

static enum status reconcile(void *arg, const char *key, struct err *e)
{
    struct resched *r = arg;
    int64_t mod_rev = 0, now = time_now_us(), wake_us = -1, finished = -1;
    json_t *svc = informer_get(r->services, key, &mod_rev, NULL);
    const char *grid, *stack, *state, *did;
    const json_t *dopts;
    int64_t updated, deployed, interval;
    char why[SCHED_REASON_LEN + 64] = "";
    int mismatch = 0;
    enum status st = ST_OK;

    if (!svc)
        return ST_OK; /* deleted: nothing to deploy */
    grid = jstr(svc, "grid");
    stack = jstr(svc, "stack");
    state = jstr(svc, "state");
    if (!grid || !stack || !jstr(svc, "name") || !jstr(svc, "id") ||
        !json_is_integer(json_object_get(svc, "revision")) ||
        !json_is_integer(json_object_get(svc, "instances")))
        goto out; /* not a service the API server wrote: leave it */
    if (!state || strcmp(state, "running") != 0 || json_is_true(json_object_get(svc, "stateful")))
        goto out;
    did = jstr(svc, "deploy_id");
    if (did && deploy_unfinished(r, grid, did, &finished))
        goto out; /* the deploy's end queues the service again (on_deploy) */
    if (strcmp(stack, "null") != 0 && stack_deploying(r, grid, stack))
        goto out;
    /* Give the other caches a moment to catch up with a deploy that just ended: the
     * instances cache may still be behind the deploys cache. */
    if (finished > 0 && now - finished < RESCHED_SETTLE_MS * 1000) {
        wq_add_after(r->wq, key, RESCHED_SETTLE_MS - (now - finished) / 1000 + 1);
        goto out;
    }

    dopts = json_object_get(svc, "deploy_opts");
    interval = json_integer_value(json_object_get(dopts, "interval"));
    updated = jtime(svc, "updated_at");
    deployed = jtime(svc, "deployed_at");
    if (interval > 0 && deployed >= 0) {
        if (now >= deployed + interval * 1000000) {
            st = create_deploy(r, key, svc, mod_rev, 1, "deploy interval has passed",
                               "kontena_rescheduler_deploys_total{reason=\"interval\"}", e);
            goto out;
        }
        wake_at(&wake_us, deployed + interval * 1000000);
    }
    if (updated >= 0 && deployed >= 0 && updated > deployed) {
        st = create_deploy(r, key, svc, mod_rev, 0, "does have older version running",
                           "kontena_rescheduler_deploys_total{reason=\"outdated\"}", e);
        goto out;
    }
    st = placement_mismatch(r, grid, key, svc, &mismatch, why, sizeof(why), &wake_us, e);
    if (st == ST_INVALID) {
        /* The service cannot be scheduled as stored: its deploys say why, not us. */
        log_debug("key=%s msg=\"not checked for placement: %s\"", key, e ? e->msg : "");
        st = ST_OK;
        goto out;
    }
    if (st == ST_OK && mismatch)
        st = create_deploy(r, key, svc, mod_rev, 0, why,
                           "kontena_rescheduler_deploys_total{reason=\"mismatch\"}", e);
out:
    if (st == ST_OK && wake_us > 0)
        wq_add_after(r->wq, key, (wake_us - time_now_us()) / 1000 + RESCHED_WAKE_SLACK_MS);
    json_decref(svc);
    return st;
}

/* --- controller definition ------------------------------------------------------------------ */

static enum status setup(struct ctl *c, void *arg, struct err *e)
{
    struct resched *r = arg;

    (void)e;
    r->ctl = c;
    r->wq = ctl_wq(c, "rescheduler", reconcile, r, 0);
    r->services = ctl_informer(c, P_SERVICES, on_service, r);
    r->nodes = ctl_informer(c, P_NODES, on_node, r);
    r->status = ctl_informer(c, P_STATUS, on_status, r);
    r->instances = ctl_informer(c, P_INSTANCES, on_instance, r);
    r->deploys = ctl_informer(c, P_DEPLOYS, on_deploy, r);
    r->stack_deploys = ctl_informer(c, P_STACK_DEPLOYS, on_stack_deploy, r);
    r->grids = ctl_informer(c, P_GRIDS, NULL, NULL);
    static const char *const reasons[] = {"mismatch", "outdated", "interval"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char name[128];
        snprintf(name, sizeof(name), "kontena_rescheduler_deploys_total{reason=\"%s\"}",
                 reasons[i]);
        ctl_counter(c, name, "deploys created by the rescheduler, by reason");
    }
    return ST_OK;
}

static void resync(struct ctl *c, void *arg)
{
    struct resched *r = arg;
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(r->services, P_SERVICES, &objs);

    (void)c;
    for (size_t i = 0; i < n; i++)
        wq_add(r->wq, objs[i].key);
    ctl_objs_free(objs, n);
}

static const struct ctl_opt opts[] = {
    {"online-grace", "KONTENA_ONLINE_GRACE", CTL_OPT_DURATION, &the_resched.online_grace_ms, "20s",
     0, 86400000, "time a node must be online before services are rebalanced onto it"},
    {"grace-ha", "KONTENA_GRACE_HA", CTL_OPT_DURATION, &the_resched.grace_ha_ms, "2m", 0, 86400000,
     "how long an offline node keeps the instances of ha services"},
    {"grace-daemon", "KONTENA_GRACE_DAEMON", CTL_OPT_DURATION, &the_resched.grace_daemon_ms, "10m",
     0, 86400000, "how long an offline node keeps the instances of daemon services"},
    {"grace-random", "KONTENA_GRACE_RANDOM", CTL_OPT_DURATION, &the_resched.grace_random_ms, "30s",
     0, 86400000, "how long an offline node keeps the instances of random services"},
    {NULL, NULL, CTL_OPT_FLAG, NULL, NULL, 0, 0, NULL},
};

static const struct ctl_def def = {
    .name = "rescheduler",
    .summary = "deploys services whose placement no longer fits the grid's nodes",
    .http_port = 9303,
    .opts = opts,
    .setup = setup,
    .resync = resync,
};

int main(int argc, char **argv)
{
    int rc;

    the_resched.seen = json_object();
    pthread_mutex_init(&the_resched.lock, NULL);
    rc = ctl_main(argc, argv, &def, &the_resched);
    json_decref(the_resched.seen);
    the_resched.seen = NULL;
    pthread_mutex_destroy(&the_resched.lock);
    return rc;
}
