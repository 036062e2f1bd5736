/* controllers/scheduler.c -- kontena-scheduler: turns services and their deploy records into
 * instance keys (/kontena/instances/<grid>/<node>/<container>), the only thing agents read.
 *
 * One work queue keyed by service id "<grid>/<stack>/<service>". A reconcile reads the caches
 * only (services, nodes, node_status, instances, observed, deploys, stack_deploys, grids),
 * then:
 *   - level-triggered, always: every instance key of the service gets desired_state and
 *     restart_generation from the service (stateful on a drained node: stopped); a service
 *     that no longer exists loses its instance keys;
 *   - while the service's deploy record (service.deploy_id) is unfinished: plan the instances
 *     (controllers/sched), delete numbers above N, create missing instances at once, replace
 *     changed or moved ones throttled by min_health, and write the record's progress
 *     (ongoing, instance_deploys, reason) whenever it changed, then success or error.
 *   - when its writes finished a deploy record: delete the service's finished records beyond
 *     the newest --deploy-history, and its stack's stack deploys beyond as many (a second
 *     fenced transaction, after the first is committed).
 *
 * Writes are etcd transactions of up to SCHED_TXN_OPS instance writes, each compared on the
 * key's mod_revision (create_revision == 0 for a new key) and fenced on leadership, and go
 * through to the instance cache at once, so the next reconcile (of any service) sees them.
 * Reconciles are serialised by one mutex: placement decisions read the placements of every
 * service of the grid (ports, affinity), so two must never be computed side by side.
 *
 * Design notes, texts and benchmark: docs/internals/scheduler.md.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/lbenv.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl.h"
#include "controllers/sched/sched.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define P_GRIDS "/kontena/grids/"
#define P_NODES "/kontena/nodes/"
#define P_STATUS "/kontena/node_status/"
#define P_SERVICES "/kontena/services/"
#define P_INSTANCES "/kontena/instances/"
#define P_OBSERVED "/kontena/observed/"
#define P_DEPLOYS "/kontena/deploys/"
#define P_STACK_DEPLOYS "/kontena/stack_deploys/"

/* etcd refuses transactions of more than 128 compares (or ops): one compare per instance
 * write plus the leadership fence, and a move (delete + put) never split. */
#define SCHED_TXN_OPS 120
#define MAX_IN_FLIGHT 20

struct scheduler {
    struct ctl *c;
    struct informer *grids, *nodes, *status, *services, *instances, *observed, *deploys,
        *stack_deploys;
    struct wq *q;
    struct ctl_metric *m_placements, *m_deploy_success, *m_deploy_error, *m_deploy_started;
    pthread_mutex_t mu; /* one reconcile at a time: see the top of the file */
    json_t *prune;      /* set of service ids whose deploy history wants pruning; under mu */
    int64_t instance_timeout_ms;
    int64_t deploy_history; /* finished records kept per service, stack deploys per stack */
    uint64_t seed;
};

/* --- small JSON helpers --------------------------------------------------------------------- */

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int deploy_unfinished(const json_t *rec)
{
    const char *st = jstr(rec, "state");
    return !st || streq(st, "created") || streq(st, "ongoing");
}

/* "<grid>/<stack>/<svc>" → its three parts (into buf); -1 when malformed. */
static int split_service_id(const char *id, char *buf, size_t len, const char **grid,
                            const char **stack, const char **name)
{
    char *a, *b;

    if (!id || strlen(id) >= len)
        return -1;
    memcpy(buf, id, strlen(id) + 1);
    a = strchr(buf, '/');
    if (!a)
        return -1;
    b = strchr(a + 1, '/');
    if (!b || strchr(b + 1, '/') || a == buf || b == a + 1 || !b[1])
        return -1;
    *a = *b = '\0';
    *grid = buf;
    *stack = a + 1;
    *name = b + 1;
    return 0;
}

/* "/kontena/<kind>/<grid>/<node>/<container>" (after prefix) → node and container (into
 * buf); -1 when malformed. */
static int split_node_key(const char *key, const char *prefix, char *buf, size_t len,
                          const char **grid, const char **node, const char **container)
{
    char *a, *b;
    size_t pl = strlen(prefix);

    if (strncmp(key, prefix, pl) != 0 || strlen(key + pl) >= len)
        return -1;
    memcpy(buf, key + pl, strlen(key + pl) + 1);
    a = strchr(buf, '/');
    if (!a)
        return -1;
    b = strchr(a + 1, '/');
    if (!b || strchr(b + 1, '/') || !b[1])
        return -1;
    *a = *b = '\0';
    *grid = buf;
    *node = a + 1;
    if (container)
        *container = b + 1;
    return 0;
}

/* --- instance spec -------------------------------------------------------------------------- */

/* The load balancer svc is balanced by (reference networking-lb-health.md §7.1): its first
 * link to a service that is a load balancer, as "<stack>/<name>" ("<name>" in the null
 * stack), or NULL. Fresh. */
static char *lb_of(struct scheduler *s, const json_t *svc)
{
    size_t i;
    const json_t *l;
    char *out = NULL;

    json_array_foreach(json_object_get(svc, "links"), i, l)
    {
        const char *id = jstr(l, "id");
        char *k;
        json_t *t;
        if (!id)
            continue;
        k = xasprintf(P_SERVICES "%s", id);
        t = informer_get(s->services, k, NULL, NULL);
        free(k);
        if (t && jstr(t, "name") &&
            lbenv_is_lb(jstr(t, "image"), json_object_get(t, "env"))) {
            const char *st = jstr(t, "stack");
            out = !st || !*st || !strcmp(st, "null") ? xstrdup(jstr(t, "name"))
                                                     : xasprintf("%s/%s", st, jstr(t, "name"));
        }
        json_decref(t);
        if (out)
            break;
    }
    return out;
}

/* The agent's spec for the service (architecture.md §2 + health_check, wait_for_port), without
 * the per-instance hostname; lb = the load balancer it is balanced by (label
 * io.kontena.load_balancer.name: the agent drains such containers before stopping them), or
 * NULL. Fresh. */
static json_t *base_spec(const json_t *svc, const char *lb)
{
    static const char *const copied[] = {
        "image",      "cmd",        "entrypoint",   "env",
        "ports",      "volumes",    "memory",       "memory_swap",
        "cpus",       "cpu_shares", "cap_add",      "cap_drop",
        "privileged", "user",       "stop_signal",  "stop_grace_period",
        "net",        "read_only",  "health_check",
    };
    json_t *spec = json_object(), *labels = json_object(), *v;

    for (size_t i = 0; i < ARRAY_SIZE(copied); i++) {
        v = json_object_get(svc, copied[i]);
        json_object_set(spec, copied[i], v ? v : json_null());
    }
    if (json_is_null(json_object_get(spec, "net")))
        json_object_set_new(spec, "net", json_string("bridge"));
    json_object_set_new(spec, "restart", json_string("always"));
    v = json_object_get(json_object_get(svc, "deploy_opts"), "wait_for_port");
    json_object_set(spec, "wait_for_port", json_is_integer(v) ? v : json_null());
    json_object_set_new(labels, "io.kontena.container.type", json_string("container"));
    json_object_set_new(labels, "io.kontena.grid.name", json_string(jstr(svc, "grid") ?: ""));
    json_object_set_new(labels, "io.kontena.stack.name", json_string(jstr(svc, "stack") ?: ""));
    json_object_set_new(labels, "io.kontena.service.name", json_string(jstr(svc, "name") ?: ""));
    json_object_set_new(labels, "io.kontena.service.id", json_string(jstr(svc, "id") ?: ""));
    if (lb)
        json_object_set_new(labels, "io.kontena.load_balancer.name", json_string(lb));
    json_object_set_new(spec, "labels", labels);
    return spec;
}

static json_t *instance_spec(const json_t *base, const json_t *svc, int n)
{
    json_t *spec = json_copy((json_t *)base); /* shallow: children are shared, never edited */
    json_t *labels = json_copy(json_object_get(base, "labels"));
    char num[24];

    snprintf(num, sizeof(num), "%d", n);
    json_object_set_new(labels, "io.kontena.service.instance_number", json_string(num));
    json_object_set_new(spec, "labels", labels);
    json_object_set_new(spec, "hostname", json_sprintf("%s-%d", jstr(svc, "name") ?: "x", n));
    return spec;
}

/* --- writes: batched transactions, committed outside the lock ------------------------------
 *
 * A reconcile decides under s->mu and only collects operations; the etcd round trips happen
 * after the mutex is released, so a second worker plans the next service while the first
 * waits for etcd (and etcd can group both into one fsync). Until they are in the cache, the
 * instance keys a reconcile is writing are "pending": view_load() shows them to every other
 * reconcile, so placements never overlap (ports, anti-affinity). */

struct op {
    char *key;
    json_t *val;          /* NULL: delete */
    int64_t mod_rev;      /* 0: create (create_revision == 0) */
    int joined;           /* 1: must share the previous op's transaction (a move) */
    struct informer *inf; /* the cache the write goes through to */
};

struct ops {
    struct op *v;
    size_t n, cap;
};

static void ops_add(struct ops *o, struct informer *inf, const char *key, json_t *val,
                    int64_t mod_rev, int joined)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n++] = (struct op){xstrdup(key), val, mod_rev, joined, inf};
}

static void ops_release(struct ops *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].key);
        json_decref(o->v[i].val);
    }
    FREE_AND_NULL(o->v);
    o->n = o->cap = 0;
}

/* Instance puts in flight, tagged with the reconcile that makes them. Under s->mu. */
struct pending {
    char *key;
    json_t *val;
    uint64_t tag;
};

static struct pending *pend;
static size_t n_pend, cap_pend;

static void pending_add(struct scheduler *s, const struct ops *o, uint64_t tag)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i].inf != s->instances || !o->v[i].val)
            continue;
        if (n_pend == cap_pend) {
            cap_pend = cap_pend ? cap_pend * 2 : 256;
            pend = xrealloc(pend, cap_pend * sizeof(*pend));
        }
        pend[n_pend++] = (struct pending){xstrdup(o->v[i].key), json_incref(o->v[i].val), tag};
    }
}

static void pending_drop(uint64_t tag)
{
    size_t j = 0;

    for (size_t i = 0; i < n_pend; i++) {
        if (pend[i].tag == tag) {
            free(pend[i].key);
            json_decref(pend[i].val);
        } else {
            pend[j++] = pend[i];
        }
    }
    n_pend = j;
}

static void deploy_written(struct scheduler *s, const char *key, const json_t *rec, int64_t rev)
{
    if (!deploy_unfinished(rec)) {
        const char *state = jstr(rec, "state");
        ctl_metric_add(streq(state, "success") ? s->m_deploy_success : s->m_deploy_error, 1);
        log_info("deploy=%s state=%s reason=\"%s\" rev=%lld", key, state ?: "?",
                 jstr(rec, "reason") ?: "", (long long)rev);
    }
}

static void wake_stack_deploy(struct scheduler *s, const json_t *new_val);

/* Commit ops[0, n) as one transaction (every op compared on its key's revision, plus the
 * leadership fence); write-through to the caches on success. Called without s->mu. */
static enum status commit_batch(struct scheduler *s, struct op *ops, size_t n, struct err *e)
{
    struct etcd_txn *t = etcd_txn_new();
    struct etcd_txn_result res = {0};
    char **vals = xcalloc(n ? n : 1, sizeof(*vals));
    enum status st;

    for (size_t i = 0; i < n; i++) {
        etcd_txn_cmp(t, ops[i].key, ops[i].mod_rev ? ETCD_CMP_MOD : ETCD_CMP_CREATE, ETCD_CMP_EQUAL,
                     ops[i].mod_rev);
        if (ops[i].val) {
            vals[i] = json_dumps(ops[i].val, JSON_COMPACT | JSON_SORT_KEYS);
            etcd_txn_put(t, ETCD_THEN, ops[i].key, vals[i], strlen(vals[i]), 0);
        } else {
            etcd_txn_delete(t, ETCD_THEN, ops[i].key, NULL);
        }
    }
    ctl_txn_fence(s->c, t);
    st = etcd_txn_commit(ctl_etcd(s->c), t, &res, e);
    if (st == ST_OK && !res.succeeded)
        st = err_set(e, ST_CONFLICT, "keys changed meanwhile (or leadership lost)");
    if (st == ST_OK) {
        /* Under the lock: a reconcile reading the cache and the pending list sees each key
         * exactly once. */
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            if (ops[i].val)
                informer_store(ops[i].inf, ops[i].key, ops[i].val, res.revision);
            else
                informer_forget(ops[i].inf, ops[i].key, res.revision);
            if (ops[i].inf == s->deploys && ops[i].val)
                deploy_written(s, ops[i].key, ops[i].val, res.revision);
        }
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++)
            if (ops[i].inf == s->deploys && ops[i].val)
                wake_stack_deploy(s, ops[i].val);
    }
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    etcd_txn_result_release(&res);
    etcd_txn_free(t);
    return st;
}

/* Commit every op in batches of SCHED_TXN_OPS, in order (a move's two ops together). */
static enum status commit_ops(struct scheduler *s, struct ops *o, struct err *e)
{
    size_t from = 0;

    while (from < o->n) {
        size_t to = from + 1;
        enum status st;
        while (to < o->n && (to - from < SCHED_TXN_OPS || o->v[to].joined))
            to++;
        st = commit_batch(s, o->v + from, to - from, e);
        if (st != ST_OK)
            return st;
        from = to;
    }
    return ST_OK;
}

/* Queue rec (owned) over the cached deploy record at key when it differs from old. */
static void write_deploy(struct scheduler *s, struct ops *o, const char *key, const json_t *old,
                         int64_t mod_rev, json_t *rec)
{
    if (old && json_equal((json_t *)old, rec)) {
        json_decref(rec);
        return;
    }
    ops_add(o, s->deploys, key, rec, mod_rev, 0);
}

/* Finish an unfinished record as error with reason. */
static void fail_deploy(struct scheduler *s, struct ops *o, const char *key, const json_t *rec,
                        int64_t mod_rev, const char *reason)
{
    json_t *n = json_deep_copy(rec);
    char now[40];

    time_iso8601_now(now, sizeof(now));
    json_object_set_new(n, "state", json_string("error"));
    json_object_set_new(n, "reason", json_string(reason));
    json_object_set_new(n, "finished_at", json_string(now));
    write_deploy(s, o, key, rec, mod_rev, n);
}

/* --- the grid's current instances ------------------------------------------------------- */

/* An instance key of the service being reconciled. */
struct inst {
    const struct ctl_obj *obj;
    char node[256];
    char container[256];
    int n;
};

struct view {
    struct ctl_obj *objs; /* every instance key of the grid */
    size_t n_objs;
    struct inst *mine; /* those of the service */
    size_t n_mine;
};

static void view_release(struct view *v)
{
    ctl_objs_free(v->objs, v->n_objs);
    free(v->mine);
    memset(v, 0, sizeof(*v));
}

static void view_load(struct scheduler *s, const char *grid, const char *service_id, struct view *v)
{
    char *prefix = xasprintf(P_INSTANCES "%s/", grid);

    memset(v, 0, sizeof(*v));
    v->n_objs = informer_list(s->instances, prefix, &v->objs);
    /* Other reconciles' writes in flight (not yet in the cache) count as placed. */
    {
        size_t listed = v->n_objs, cap = v->n_objs, plen = strlen(prefix);
        for (size_t i = 0; i < n_pend; i++) {
            size_t lo = 0, hi = listed;
            int found = 0;
            if (strncmp(pend[i].key, prefix, plen) != 0)
                continue;
            while (lo < hi && !found) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(v->objs[mid].key, pend[i].key);
                if (c == 0)
                    found = 1;
                else if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (found)
                continue;
            if (v->n_objs == cap) {
                cap = cap ? cap * 2 : 16;
                v->objs = xrealloc(v->objs, cap * sizeof(*v->objs));
            }
            v->objs[v->n_objs++] =
                (struct ctl_obj){xstrdup(pend[i].key), json_incref(pend[i].val), 0, 0};
        }
    }
    v->mine = xcalloc(v->n_objs ? v->n_objs : 1, sizeof(*v->mine));
    for (size_t i = 0; i < v->n_objs; i++) {
        const char *g, *node, *container;
        char buf[768];
        struct inst *in;
        if (!streq(jstr(v->objs[i].val, "service_id"), service_id))
            continue;
        if (split_node_key(v->objs[i].key, P_INSTANCES, buf, sizeof(buf), &g, &node, &container) !=
            0)
            continue;
        in = &v->mine[v->n_mine++];
        in->obj = &v->objs[i];
        snprintf(in->node, sizeof(in->node), "%s", node);
        snprintf(in->container, sizeof(in->container), "%s", container);
        in->n = (int)jint(v->objs[i].val, "instance_number", 0);
    }
    free(prefix);
}

/* --- level-triggered duties --------------------------------------------------------------- */

/* The desired_state of an instance of svc on node. */
static const char *desired_state(struct scheduler *s, const json_t *svc, const char *grid,
                                 const char *node)
{
    const char *want = streq(jstr(svc, "state"), "running") ? "running" : "stopped";

    if (streq(want, "running") && json_is_true(json_object_get(svc, "stateful"))) {
        char *key = xasprintf(P_NODES "%s/%s", grid, node);
        json_t *nd = informer_get(s->nodes, key, NULL, NULL);
        if (streq(jstr(nd, "availability"), "drain"))
            want = "stopped";
        json_decref(nd);
        free(key);
    }
    return want;
}

/* The instance value of svc number n on node: old (may be NULL) with the scheduler's fields
 * replaced (fields of the other writers copied unchanged). Fresh. */
static json_t *instance_value(struct scheduler *s, const json_t *svc, const json_t *base,
                              const json_t *old, const char *grid, const char *node, int n,
                              const char *deploy_id, const char *now)
{
    json_t *v = old ? json_copy((json_t *)old) : json_object();

    json_object_set(v, "service_id", json_object_get(svc, "id"));
    json_object_set(v, "grid", json_object_get(svc, "grid"));
    json_object_set(v, "stack", json_object_get(svc, "stack"));
    json_object_set(v, "service", json_object_get(svc, "name"));
    json_object_set_new(v, "instance_number", json_integer(n));
    json_object_set_new(v, "revision", json_integer(jint(svc, "revision", 1)));
    json_object_set_new(v, "desired_state", json_string(desired_state(s, svc, grid, node)));
    json_object_set_new(v, "restart_generation", json_integer(jint(svc, "restart_generation", 0)));
    json_object_set_new(v, "deploy_id", deploy_id ? json_string(deploy_id) : json_null());
    json_object_set_new(v, "spec", instance_spec(base, svc, n));
    if (!json_object_get(v, "created_at"))
        json_object_set_new(v, "created_at", json_string(now));
    json_object_set_new(v, "updated_at", json_string(now));
    return v;
}

/* desired_state / restart_generation of an existing instance, when they differ. */
static void level_update(struct scheduler *s, const json_t *svc, const char *grid,
                         const struct inst *in, const char *now, struct ops *o)
{
    const json_t *old = in->obj->val;
    const char *want = desired_state(s, svc, grid, in->node);
    json_int_t gen = jint(svc, "restart_generation", 0);
    json_t *v;

    if (streq(jstr(old, "desired_state"), want) && jint(old, "restart_generation", 0) == gen)
        return;
    v = json_copy((json_t *)old);
    json_object_set_new(v, "desired_state", json_string(want));
    json_object_set_new(v, "restart_generation", json_integer(gen));
    json_object_set_new(v, "updated_at", json_string(now));
    ops_add(o, s->instances, in->obj->key, v, in->obj->mod_rev, 0);
}

/* --- deploys ------------------------------------------------------------------------------ */

/* The observed value of an instance (new reference or NULL). */
static json_t *observed_of(struct scheduler *s, const char *grid, const char *node,
                           const char *container)
{
    char *key = xasprintf(P_OBSERVED "%s/%s/%s", grid, node, container);
    json_t *v = informer_get(s->observed, key, NULL, NULL);
    free(key);
    return v;
}

enum progress { P_WAITING, P_DONE, P_FAILED };

/* How far the agent got with instance value inst on node. why gets the observed state (or the
 * error) for reasons. */
static enum progress instance_progress(const json_t *inst, const json_t *obs, char *why, size_t len)
{
    json_int_t rev = jint(inst, "revision", -1);
    const char *state = jstr(obs, "state");

    if (!obs) {
        snprintf(why, len, "pending");
        return P_WAITING;
    }
    /* An error counts once it is about this instance value: at its revision, or written after
     * it (a new image that is missing keeps the old container, and its old revision). */
    if (streq(state, "error") &&
        (jint(obs, "revision", -2) == rev ||
         (jstr(obs, "updated_at") && jstr(inst, "updated_at") &&
          strcmp(jstr(obs, "updated_at"), jstr(inst, "updated_at")) >= 0))) {
        snprintf(why, len, "%s", jstr(obs, "error") ?: "error");
        return P_FAILED;
    }
    if (jint(obs, "revision", -2) != rev) {
        snprintf(why, len, "%s", streq(state, "pending") ? "pending" : "pending (older revision)");
        if (jstr(obs, "reason") && streq(state, "pending"))
            snprintf(why, len, "pending (%s)", jstr(obs, "reason"));
        return P_WAITING;
    }
    if (streq(state, "running") && !json_is_false(json_object_get(obs, "ready")))
        return P_DONE;
    if (streq(state, "running"))
        snprintf(why, len, "running, waiting for its port");
    else if (jstr(obs, "reason"))
        snprintf(why, len, "%s (%s)", state ?: "unknown", jstr(obs, "reason"));
    else
        snprintf(why, len, "%s", state ?: "unknown");
    return P_WAITING;
}

/* A deploy of the same stack deploy that svc links to and that is not finished: 1 with why
 * filled ("waiting for <svc> to be deployed"), 2 when one of them failed, 3 when the caches
 * have not caught up with the stack deploy yet (look again shortly), else 0. */
static int waits_for_links(struct scheduler *s, const json_t *svc, const json_t *rec,
                           int64_t rec_rev, const char *grid, char *why, size_t len)
{
    const char *sd_id = jstr(rec, "stack_deploy_id");
    char *key;
    json_t *sd, *x;
    size_t i;
    int ret = 0;
    int64_t sd_rev = 0;

    if (!sd_id || !json_array_size(json_object_get(svc, "links")))
        return 0;
    key = xasprintf(P_STACK_DEPLOYS "%s/%s", grid, sd_id);
    sd = informer_get(s->stack_deploys, key, &sd_rev, NULL);
    free(key);
    /* The stack deploy and its service deploys are written in one transaction, but the
     * caches follow separate watches (and apply a transaction's events one by one): until
     * both caches have caught up with it, a missing record says nothing. */
    if (!sd)
        return informer_revision(s->stack_deploys) < rec_rev ? 3 : 0;
    json_array_foreach(json_object_get(sd, "service_deploys"), i, x)
    {
        json_t *other, *l;
        size_t j;
        if (!json_is_string(x) || streq(json_string_value(x), jstr(rec, "id")))
            continue;
        key = xasprintf(P_DEPLOYS "%s/%s", grid, json_string_value(x));
        other = informer_get(s->deploys, key, NULL, NULL);
        free(key);
        if (!other && informer_revision(s->deploys) < sd_rev) {
            ret = 3;
            break;
        }
        json_array_foreach(json_object_get(svc, "links"), j, l)
        {
            if (!other || !streq(jstr(l, "id"), jstr(other, "service_id")))
                continue;
            if (deploy_unfinished(other)) {
                snprintf(why, len, "waiting for %s to be deployed", jstr(other, "service") ?: "?");
                ret = 1;
            } else if (streq(jstr(other, "state"), "error")) {
                snprintf(why, len, "linked service %s failed to deploy",
                         jstr(other, "service") ?: "?");
                ret = 2;
            }
            break;
        }
        json_decref(other);
        if (ret)
            break;
    }
    json_decref(sd);
    return ret;
}

/* Finish every other unfinished record of the service as superseded by rec. */
static void supersede_older(struct scheduler *s, struct ops *o, const char *grid,
                            const char *service_id, const char *id)
{
    char *prefix = xasprintf(P_DEPLOYS "%s/", grid), reason[200];
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(s->deploys, prefix, &objs);

    snprintf(reason, sizeof(reason), "superseded by %s", id);
    for (size_t i = 0; i < n; i++) {
        const json_t *r = objs[i].val;
        /* Only older ones (ids sort by creation): a newer record the services cache does
         * not know about yet is the next deploy, not a superseded one. */
        if (!streq(jstr(r, "service_id"), service_id) || !jstr(r, "id") ||
            strcmp(jstr(r, "id"), id) >= 0 || !deploy_unfinished(r))
            continue;
        fail_deploy(s, o, objs[i].key, r, objs[i].mod_rev, reason);
    }
    ctl_objs_free(objs, n);
    free(prefix);
}

/* Node ports of a service, into a fresh array. */
static int *service_ports(const json_t *svc, size_t *n)
{
    json_t *ports = json_object_get(svc, "ports"), *p;
    int *out = xcalloc(json_array_size(ports) + 1, sizeof(*out));
    size_t i;

    *n = 0;
    json_array_foreach(ports, i, p)
    {
        json_int_t np = jint(p, "node_port", 0);
        if (np > 0 && np <= 65535)
            out[(*n)++] = (int)np;
    }
    return out;
}

/* Whether planning ss depends on other services' instances: published ports (one service
 * per port per node), service/container affinity, volumes_from and net "container:". Without
 * any of them only its own instances matter (strategies count per pass and per service). */
static int needs_other_services(const struct sched_service *ss)
{
    if (ss->n_node_ports || ss->n_volumes_from || ss->net_container)
        return 1;
    for (size_t i = 0; i < ss->n_affinity; i++)
        if (strncmp(ss->affinity[i], "service", 7) == 0 ||
            strncmp(ss->affinity[i], "container", 9) == 0)
            return 1;
    return 0;
}

/* The grid snapshot: nodes (candidates = online) and the instances of the grid (only those
 * of the service itself when `all` is 0). */
static struct sched_grid *grid_snapshot(struct scheduler *s, const char *grid, const struct view *v,
                                        const struct sched_service *ss, int all)
{
    struct sched_grid *g = sched_grid_new(s->seed++);
    char *prefix = xasprintf(P_NODES "%s/", grid);
    struct ctl_obj *objs = NULL, *svcs = NULL;
    size_t n = informer_list(s->nodes, prefix, &objs), n_svcs;
    const char *last_sid = NULL;
    int *ports = NULL, **svc_ports;
    size_t n_ports = 0, *svc_nports;

    for (size_t i = 0; i < n; i++) {
        const char *name = jstr(objs[i].val, "name");
        char *skey;
        json_t *st;
        int online;
        if (!name)
            continue;
        skey = xasprintf(P_STATUS "%s/%s", grid, name);
        st = informer_get(s->status, skey, NULL, NULL);
        online = st != NULL;
        json_decref(st);
        free(skey);
        sched_grid_add_node(g, objs[i].val, online);
    }
    ctl_objs_free(objs, n);
    free(prefix);
    if (!all) {
        for (size_t i = 0; i < v->n_mine; i++)
            sched_grid_add_instance(g, v->mine[i].node, ss->id, v->mine[i].n, v->mine[i].container,
                                    ss->node_ports, ss->n_node_ports);
        return g;
    }

    /* Node ports per service, computed once per service of the grid (the listing is sorted
     * by key, so a binary search finds an instance's service). */
    prefix = xasprintf(P_SERVICES "%s/", grid);
    n_svcs = informer_list(s->services, prefix, &svcs);
    free(prefix);
    svc_ports = xcalloc(n_svcs + 1, sizeof(*svc_ports));
    svc_nports = xcalloc(n_svcs + 1, sizeof(*svc_nports));
    for (size_t i = 0; i < n_svcs; i++)
        svc_ports[i] = service_ports(svcs[i].val, &svc_nports[i]);
    for (size_t i = 0; i < v->n_objs; i++) {
        const json_t *iv = v->objs[i].val;
        const char *sid = jstr(iv, "service_id"), *g_, *node, *container;
        char buf[768];
        size_t lo = 0, hi = n_svcs, plen = strlen(P_SERVICES);
        if (!sid || split_node_key(v->objs[i].key, P_INSTANCES, buf, sizeof(buf), &g_, &node,
                                   &container) != 0)
            continue;
        if (!last_sid || strcmp(last_sid, sid) != 0) {
            ports = NULL;
            n_ports = 0;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(svcs[mid].key + plen, sid);
                if (c == 0) {
                    ports = svc_ports[mid];
                    n_ports = svc_nports[mid];
                    break;
                }
                if (c < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            last_sid = sid;
        }
        sched_grid_add_instance(g, node, sid, (int)jint(iv, "instance_number", 0), container, ports,
                                n_ports);
    }
    for (size_t i = 0; i < n_svcs; i++)
        free(svc_ports[i]);
    free(svc_ports);
    free(svc_nports);
    ctl_objs_free(svcs, n_svcs);
    return g;
}

/* What one reconcile decided for instance n (1-based) of a deploy. */
struct slot {
    int target;             /* node index or -1 */
    const struct inst *cur; /* its instance key on the target, or elsewhere, or NULL */
    int written;            /* written (or already current) at the target */
    json_t *val;            /* value at the target after this reconcile (borrowed) */
};

/* Carry the deploy rec (cached at dkey/drev) forward for svc. */
static enum status run_deploy(struct scheduler *s, const json_t *svc, const char *grid,
                              const char *dkey, const json_t *rec, int64_t drev, struct view *v,
                              struct ops *o, int *touched, struct err *e)
{
    const char *sid = jstr(svc, "id");
    struct sched_service ss;
    struct sched_plan plan = {0};
    struct sched_grid *g = NULL;
    json_t *grid_obj, *base = NULL, *nrec = NULL, *ideps;
    struct slot *slots = NULL;
    char now[40], reason[SCHED_REASON_LEN + 200] = "", *gkey;
    enum status st;
    json_int_t revision = jint(svc, "revision", 1);
    int limit, in_flight = 0, failed = 0, waiting = 0;
    int64_t next_timeout = -1, started_us;

    time_iso8601_now(now, sizeof(now));
    gkey = xasprintf(P_GRIDS "%s", grid);
    grid_obj = informer_get(s->grids, gkey, NULL, NULL);
    free(gkey);
    st = sched_service_from_json(&ss, svc, grid_obj, e);
    json_decref(grid_obj);
    if (st != ST_OK) {
        char msg[sizeof(e->msg) + 64];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        err_clear(e);
        fail_deploy(s, o, dkey, rec, drev, msg);
        return ST_OK;
    }
    g = grid_snapshot(s, grid, v, &ss, needs_other_services(&ss));
    st = sched_plan(g, &ss, &plan, e);
    if (st != ST_OK) {
        char msg[sizeof(e->msg)];
        snprintf(msg, sizeof(msg), "%s", e->msg);
        err_clear(e);
        fail_deploy(s, o, dkey, rec, drev, msg);
        st = ST_OK;
        goto out;
    }

    nrec = json_deep_copy(rec);
    if (!streq(jstr(rec, "state"), "ongoing")) {
        json_object_set_new(nrec, "state", json_string("ongoing"));
        json_object_set_new(nrec, "started_at", json_string(now));
        ctl_metric_add(s->m_deploy_started, 1);
    }
    started_us = time_iso8601_parse(jstr(nrec, "started_at") ?: now);
    json_object_set_new(nrec, "instance_count", json_integer(plan.n));

    /* Scale down first: every number above N, and duplicates of a number (a key of the
     * same instance on another node, left by an older writer). */
    slots = xcalloc((size_t)plan.n + 1, sizeof(*slots));
    for (int n = 1; n <= plan.n; n++)
        slots[n].target = plan.node[n - 1];
    for (size_t i = 0; i < v->n_mine; i++) {
        struct inst *in = &v->mine[i];
        if (in->n < 1 || in->n > plan.n) {
            /* A failed plan scales nothing down: a daemon service with no node online plans
             * N = 0, which must not delete every instance it has. */
            if (plan.failed && in->n >= 1)
                continue;
            ops_add(o, s->instances, in->obj->key, NULL, in->obj->mod_rev, 0);
            touched[i] = 1;
            continue;
        }
        struct slot *sl = &slots[in->n];
        const char *tname = sl->target >= 0 ? sched_grid_node_name(g, sl->target) : NULL;
        if (!sl->cur || (tname && streq(in->node, tname))) {
            if (sl->cur) { /* the older one elsewhere is the duplicate */
                size_t j = (size_t)(sl->cur - v->mine);
                ops_add(o, s->instances, sl->cur->obj->key, NULL, sl->cur->obj->mod_rev, 0);
                touched[j] = 1;
            }
            sl->cur = in;
        } else {
            ops_add(o, s->instances, in->obj->key, NULL, in->obj->mod_rev, 0);
            touched[i] = 1;
        }
    }

    /* In flight: instances at their target and at the service's revision, not yet done. */
    limit = (int)floor(plan.n * (1.0 - ss.min_health));
    if (limit < 1)
        limit = 1;
    if (limit > MAX_IN_FLIGHT)
        limit = MAX_IN_FLIGHT;
    for (int n = 1; n <= plan.n; n++) {
        struct slot *sl = &slots[n];
        const char *tname = sl->target >= 0 ? sched_grid_node_name(g, sl->target) : NULL;
        char why[256];
        if (sl->cur && tname && streq(sl->cur->node, tname) &&
            jint(sl->cur->obj->val, "revision", -1) == revision) {
            json_t *obs = observed_of(s, grid, sl->cur->node, sl->cur->container);
            if (instance_progress(sl->cur->obj->val, obs, why, sizeof(why)) == P_WAITING)
                in_flight++;
            json_decref(obs);
        }
    }

    {
        char *lb = lb_of(s, svc);
        base = base_spec(svc, lb);
        free(lb);
    }
    for (int n = 1; n <= plan.n; n++) {
        struct slot *sl = &slots[n];
        const char *tname;
        char *container, *key;
        if (sl->target < 0 || (plan.failed && n >= plan.failed))
            continue;
        tname = sched_grid_node_name(g, sl->target);
        container = sched_container_name(jstr(svc, "stack"), jstr(svc, "name"), n);
        key = xasprintf(P_INSTANCES "%s/%s/%s", grid, tname, container);
        if (!sl->cur) { /* new: all at once */
            sl->val = instance_value(s, svc, base, NULL, grid, tname, n, jstr(rec, "id"), now);
            ops_add(o, s->instances, key, sl->val, 0, 0);
            ctl_metric_add(s->m_placements, 1);
            sl->written = 1;
        } else if (!streq(sl->cur->node, tname)) { /* move: throttled */
            if (in_flight < limit) {
                size_t j = (size_t)(sl->cur - v->mine);
                json_t *carry = json_copy((json_t *)sl->cur->obj->val);
                /* health restarts belong to the old container */
                json_object_del(carry, "health_restarts");
                json_object_del(carry, "health_restarted_at");
                json_object_del(carry, "created_at");
                sl->val = instance_value(s, svc, base, carry, grid, tname, n, jstr(rec, "id"), now);
                json_decref(carry);
                ops_add(o, s->instances, sl->cur->obj->key, NULL, sl->cur->obj->mod_rev, 0);
                ops_add(o, s->instances, key, sl->val, 0, 1);
                touched[j] = 1;
                ctl_metric_add(s->m_placements, 1);
                in_flight++;
                sl->written = 1;
            }
        } else if (jint(sl->cur->obj->val, "revision", -1) != revision) { /* replace */
            if (in_flight < limit) {
                size_t j = (size_t)(sl->cur - v->mine);
                sl->val = instance_value(s, svc, base, sl->cur->obj->val, grid, tname, n,
                                         jstr(rec, "id"), now);
                ops_add(o, s->instances, sl->cur->obj->key, sl->val, sl->cur->obj->mod_rev, 0);
                touched[j] = 1;
                in_flight++;
                sl->written = 1;
            }
        } else {
            sl->val = sl->cur->obj->val;
            sl->written = 1;
        }
        free(container);
        free(key);
    }

    /* Per-instance states and the reason. */
    ideps = json_array();
    for (int n = 1; n <= plan.n; n++) {
        struct slot *sl = &slots[n];
        const char *tname = sl->target >= 0 ? sched_grid_node_name(g, sl->target) : NULL;
        const char *state = "created";
        json_t *err = json_null();
        char why[300] = "";
        if (plan.failed && n == plan.failed) {
            state = "error";
            err = json_string(plan.reason);
        } else if (sl->written && sl->val) {
            char *container = sched_container_name(jstr(svc, "stack"), jstr(svc, "name"), n);
            json_t *obs = observed_of(s, grid, tname, container);
            enum progress p = instance_progress(sl->val, obs, why, sizeof(why));
            int64_t since = time_iso8601_parse(jstr(sl->val, "updated_at") ?: now);
            if (since < started_us)
                since = started_us;
            if (p == P_DONE) {
                state = "success";
            } else if (p == P_FAILED) {
                state = "error";
                err = json_string(why);
                failed++;
            } else if (time_now_us() - since > s->instance_timeout_ms * 1000) {
                state = "error";
                err =
                    json_sprintf("timed out after %lld s waiting for %s on %s: %s",
                                 (long long)(s->instance_timeout_ms / 1000), container, tname, why);
                failed++;
            } else {
                int64_t left = (since + s->instance_timeout_ms * 1000 - time_now_us()) / 1000;
                state = "ongoing";
                if (next_timeout < 0 || left < next_timeout)
                    next_timeout = left;
                if (!waiting++)
                    snprintf(reason, sizeof(reason), "waiting for %s on %s: %s", container, tname,
                             why);
            }
            json_decref(obs);
            free(container);
        } else if (!waiting++ && tname) {
            char *container = sched_container_name(jstr(svc, "stack"), jstr(svc, "name"), n);
            snprintf(reason, sizeof(reason),
                     "waiting for %s on %s: %d of %d replacements in flight", container, tname,
                     in_flight, limit);
            free(container);
        }
        json_array_append_new(ideps, json_pack("{s:i,s:o,s:s,s:o}", "instance_number", n, "node",
                                               tname ? json_string(tname) : json_null(), "state",
                                               state, "error", err));
    }
    json_object_set_new(nrec, "instance_deploys", ideps);

    if (plan.failed) {
        snprintf(reason, sizeof(reason),
                 "Cannot find applicable node for service instance %s/%s/%s-%d: %s", grid,
                 jstr(svc, "stack") ?: "null", jstr(svc, "name") ?: "?", plan.failed, plan.reason);
        json_object_set_new(nrec, "state", json_string("error"));
        json_object_set_new(nrec, "finished_at", json_string(now));
    } else if (failed) {
        snprintf(reason, sizeof(reason), "one or more instances failed");
        json_object_set_new(nrec, "state", json_string("error"));
        json_object_set_new(nrec, "finished_at", json_string(now));
    } else if (!waiting) {
        reason[0] = '\0';
        json_object_set_new(nrec, "state", json_string("success"));
        json_object_set_new(nrec, "finished_at", json_string(now));
    }
    json_object_set_new(nrec, "reason", reason[0] ? json_string(reason) : json_null());

    /* The record follows the instance writes (in their last transaction when it fits): it
     * never claims more than etcd holds, and costs no round trip of its own. */
    write_deploy(s, o, dkey, rec, drev, nrec);
    nrec = NULL;
    if (next_timeout >= 0)
        wq_add_after(s->q, sid, next_timeout + 100);
out:
    json_decref(base);
    free(slots);
    sched_plan_release(&plan);
    sched_grid_free(g);
    sched_service_release(&ss);
    return st;
}

/* --- bounded deploy history ------------------------------------------------------------ */

/* A stack deploy is finished when each of its service deploys is: finished, or gone from a
 * cache that has caught up with the stack deploy (pruned or removed with its service). */
static int stack_deploy_finished(struct scheduler *s, const char *grid, const json_t *sd,
                                 int64_t sd_rev)
{
    json_t *x;
    size_t i;

    json_array_foreach(json_object_get(sd, "service_deploys"), i, x)
    {
        char *key;
        json_t *d;
        int done;
        if (!json_is_string(x))
            continue;
        key = xasprintf(P_DEPLOYS "%s/%s", grid, json_string_value(x));
        d = informer_get(s->deploys, key, NULL, NULL);
        free(key);
        done = d ? !deploy_unfinished(d) : informer_revision(s->deploys) >= sd_rev;
        json_decref(d);
        if (!done)
            return 0;
    }
    return 1;
}

/* Deletes (into o) that bring the service's history down to s->deploy_history finished
 * records, the newest kept (ids sort by creation), and, for a service of a stack, the stack's
 * history down to s->deploy_history stack deploys, keeping those with unfinished service
 * deploys. Unfinished records and the one the service names are never deleted. Every delete
 * compares the cached mod_revision: a record that changed meanwhile fails the transaction and
 * the reconcile is retried against the then-current cache. New records (the API server and
 * the rescheduler create them at any time) are other keys, untouched by it. Under s->mu. */
static void prune_history(struct scheduler *s, const char *grid, const char *service_id,
                          const json_t *svc, struct ops *o)
{
    char *prefix = xasprintf(P_DEPLOYS "%s/", grid);
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(s->deploys, prefix, &objs), finished = 0;
    const char *keep = jstr(svc, "deploy_id"), *stack = jstr(svc, "stack");

    free(prefix);
    for (size_t i = 0; i < n; i++)
        if (streq(jstr(objs[i].val, "service_id"), service_id) && !deploy_unfinished(objs[i].val))
            finished++;
    /* informer_list sorts by key, so by id: the oldest come first. */
    for (size_t i = 0; i < n && finished > (size_t)s->deploy_history; i++) {
        const json_t *r = objs[i].val;
        if (!streq(jstr(r, "service_id"), service_id) || deploy_unfinished(r))
            continue;
        finished--;
        if (streq(jstr(r, "id"), keep))
            continue;
        ops_add(o, s->deploys, objs[i].key, NULL, objs[i].mod_rev, 0);
    }
    ctl_objs_free(objs, n);

    if (!stack || streq(stack, "null"))
        return;
    prefix = xasprintf(P_STACK_DEPLOYS "%s/", grid);
    n = informer_list(s->stack_deploys, prefix, &objs);
    free(prefix);
    {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            if (streq(jstr(objs[i].val, "stack"), stack))
                total++;
        for (size_t i = 0; i < n && total > (size_t)s->deploy_history; i++) {
            if (!streq(jstr(objs[i].val, "stack"), stack))
                continue;
            total--;
            if (stack_deploy_finished(s, grid, objs[i].val, objs[i].mod_rev))
                ops_add(o, s->stack_deploys, objs[i].key, NULL, objs[i].mod_rev, 0);
        }
    }
    ctl_objs_free(objs, n);
}

/* 1 when o finishes a deploy record (the service's history may have grown past the limit). */
static int ops_finish_a_deploy(struct scheduler *s, const struct ops *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].inf == s->deploys && o->v[i].val && !deploy_unfinished(o->v[i].val))
            return 1;
    return 0;
}

/* After the reconcile's own writes went through (so the cache holds the records it just
 * finished): prune the service's history if it is marked for it; the mark goes once the
 * deletes are committed, so a lost compare prunes again on the retry. */
static enum status prune_committed(struct scheduler *s, const char *id, struct err *e)
{
    char idbuf[600], *skey;
    const char *grid, *stack, *name;
    struct ops p = {0};
    json_t *svc;
    enum status st;

    pthread_mutex_lock(&s->mu);
    if (!json_object_get(s->prune, id)) {
        pthread_mutex_unlock(&s->mu);
        return ST_OK;
    }
    if (split_service_id(id, idbuf, sizeof(idbuf), &grid, &stack, &name) != 0) {
        json_object_del(s->prune, id);
        pthread_mutex_unlock(&s->mu);
        return ST_OK;
    }
    skey = xasprintf(P_SERVICES "%s", id);
    svc = informer_get(s->services, skey, NULL, NULL);
    free(skey);
    /* A removed service's records go with it (the API server deletes them). */
    if (svc)
        prune_history(s, grid, id, svc, &p);
    pthread_mutex_unlock(&s->mu);
    json_decref(svc);
    st = commit_ops(s, &p, e);
    if (st == ST_OK && p.n)
        log_info("key=%s msg=\"deploy history pruned: %zu records deleted\"", id, p.n);
    pthread_mutex_lock(&s->mu);
    if (st == ST_OK)
        json_object_del(s->prune, id);
    pthread_mutex_unlock(&s->mu);
    ops_release(&p);
    return st;
}

/* --- reconcile ---------------------------------------------------------------------------- */

/* Decide what service id needs: fills o (committed by the caller, outside the lock). */
static enum status reconcile_locked(struct scheduler *s, const char *id, struct ops *o,
                                    struct err *e)
{
    const char *grid, *stack, *name;
    char idbuf[600], now[40], *skey = NULL, *dkey = NULL;
    json_t *svc = NULL, *rec = NULL;
    int64_t drev = 0;
    struct view v = {0};
    int *touched = NULL;
    enum status st = ST_OK;

    if (split_service_id(id, idbuf, sizeof(idbuf), &grid, &stack, &name) != 0) {
        log_warn("key=%s msg=\"not a service id, dropped\"", id);
        return ST_OK;
    }
    (void)stack;
    (void)name;
    time_iso8601_now(now, sizeof(now));
    skey = xasprintf(P_SERVICES "%s", id);
    svc = informer_get(s->services, skey, NULL, NULL);
    view_load(s, grid, id, &v);
    touched = xcalloc(v.n_mine + 1, sizeof(*touched));

    if (!svc) { /* removed: its instances go, its unfinished deploys end */
        char *prefix;
        struct ctl_obj *objs = NULL;
        struct etcd_range_opts ro = {.count_only = 1};
        struct etcd_range_result rr = {0};
        size_t n;
        /* The caches follow separate watches and were listed at different revisions (a
         * deploy record or an instance key can be seen before its service): ask etcd before
         * deleting anything. If the service is there, its cache event is on the way. */
        st = etcd_range(ctl_etcd(s->c), skey, &ro, &rr, e);
        n = (size_t)rr.count;
        etcd_range_result_release(&rr);
        if (st != ST_OK || n > 0)
            goto out;
        for (size_t i = 0; i < v.n_mine; i++)
            ops_add(o, s->instances, v.mine[i].obj->key, NULL, v.mine[i].obj->mod_rev, 0);
        if (o->n)
            log_info("key=%s msg=\"service removed, deleting %zu instance keys\"", id, o->n);
        prefix = xasprintf(P_DEPLOYS "%s/", grid);
        n = informer_list(s->deploys, prefix, &objs);
        for (size_t i = 0; i < n; i++)
            if (streq(jstr(objs[i].val, "service_id"), id) && deploy_unfinished(objs[i].val))
                fail_deploy(s, o, objs[i].key, objs[i].val, objs[i].mod_rev, "service was removed");
        ctl_objs_free(objs, n);
        free(prefix);
        goto out;
    }

    if (jstr(svc, "deploy_id")) {
        dkey = xasprintf(P_DEPLOYS "%s/%s", grid, jstr(svc, "deploy_id"));
        rec = informer_get(s->deploys, dkey, &drev, NULL);
    }
    if (rec && deploy_unfinished(rec)) {
        char why[300];
        int w;
        if (streq(jstr(rec, "state"), "created") || !jstr(rec, "state"))
            supersede_older(s, o, grid, id, jstr(rec, "id") ?: "?");
        if (!streq(jstr(svc, "state"), "running")) {
            fail_deploy(s, o, dkey, rec, drev, "service is not running");
        } else if ((w = waits_for_links(s, svc, rec, drev, grid, why, sizeof(why))) == 1) {
            json_t *n = json_deep_copy(rec);
            json_object_set_new(n, "reason", json_string(why));
            write_deploy(s, o, dkey, rec, drev, n);
        } else if (w == 2) {
            fail_deploy(s, o, dkey, rec, drev, why);
        } else if (w == 3) {
            wq_add_after(s->q, id, 200);
        } else {
            st = run_deploy(s, svc, grid, dkey, rec, drev, &v, o, touched, e);
            if (st != ST_OK)
                goto out;
        }
    }

    /* Instances the deploy wrote carry the service's states already. */
    for (size_t i = 0; i < v.n_mine; i++)
        if (!touched[i])
            level_update(s, svc, grid, &v.mine[i], now, o);
out:
    free(touched);
    view_release(&v);
    json_decref(rec);
    json_decref(svc);
    free(dkey);
    free(skey);
    return st;
}

static enum status reconcile(void *arg, const char *id, struct err *e)
{
    static uint64_t next_tag;
    struct scheduler *s = arg;
    struct ops o = {0};
    enum status st;
    uint64_t tag;

    pthread_mutex_lock(&s->mu);
    tag = ++next_tag;
    st = reconcile_locked(s, id, &o, e);
    if (st == ST_OK)
        pending_add(s, &o, tag);
    pthread_mutex_unlock(&s->mu);
    if (st == ST_OK)
        st = commit_ops(s, &o, e);
    pthread_mutex_lock(&s->mu);
    pending_drop(tag);
    if (st == ST_OK && ops_finish_a_deploy(s, &o))
        json_object_set_new(s->prune, id, json_true());
    pthread_mutex_unlock(&s->mu);
    ops_release(&o);
    if (st == ST_OK)
        st = prune_committed(s, id, e);
    return st;
}

/* --- event handlers: map a change to service ids ------------------------------------------ */

static void on_service(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    struct scheduler *s = arg;
    (void)old_val;
    (void)new_val;
    if (s->q && strncmp(key, P_SERVICES, strlen(P_SERVICES)) == 0)
        wq_add(s->q, key + strlen(P_SERVICES));
}

static void on_by_service_id(void *arg, const char *key, const json_t *old_val,
                             const json_t *new_val)
{
    struct scheduler *s = arg;
    const char *a = jstr(new_val, "service_id"), *b = jstr(old_val, "service_id");
    (void)key;
    if (a)
        wq_add(s->q, a);
    if (b && !streq(a, b))
        wq_add(s->q, b);
}

/* A finished deploy of a stack deploy may unblock the services that link to it: queue every
 * service of that stack deploy. Called for deploys others wrote (the informer's handler) and
 * for the ones this scheduler finished itself (commit_batch(): the handler is not called for
 * write-through changes, so without this a service waiting on a link was queued again only
 * at the next resync, up to 30 s later). */
static void wake_stack_deploy(struct scheduler *s, const json_t *new_val)
{
    const char *sd = jstr(new_val, "stack_deploy_id");

    if (sd && new_val && !deploy_unfinished(new_val) && jstr(new_val, "grid")) {
        char *k = xasprintf(P_STACK_DEPLOYS "%s/%s", jstr(new_val, "grid"), sd);
        json_t *rec = informer_get(s->stack_deploys, k, NULL, NULL), *x;
        size_t i;
        free(k);
        json_array_foreach(json_object_get(rec, "service_deploys"), i, x)
        {
            json_t *d;
            if (!json_is_string(x))
                continue;
            k = xasprintf(P_DEPLOYS "%s/%s", jstr(new_val, "grid"), json_string_value(x));
            d = informer_get(s->deploys, k, NULL, NULL);
            free(k);
            if (jstr(d, "service_id"))
                wq_add(s->q, jstr(d, "service_id"));
            json_decref(d);
        }
        json_decref(rec);
    }
}

static void on_deploy(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    on_by_service_id(arg, key, old_val, new_val);
    wake_stack_deploy(arg, new_val);
}

static void on_stack_deploy(void *arg, const char *key, const json_t *old_val,
                            const json_t *new_val)
{
    struct scheduler *s = arg;
    json_t *x;
    size_t i;
    (void)key;
    (void)old_val;
    json_array_foreach(json_object_get(new_val, "service_deploys"), i, x)
    {
        char *k;
        json_t *d;
        if (!json_is_string(x) || !jstr(new_val, "grid"))
            continue;
        k = xasprintf(P_DEPLOYS "%s/%s", jstr(new_val, "grid"), json_string_value(x));
        d = informer_get(s->deploys, k, NULL, NULL);
        free(k);
        if (jstr(d, "service_id"))
            wq_add(s->q, jstr(d, "service_id"));
        json_decref(d);
    }
}

static void on_observed(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    struct scheduler *s = arg;
    char *ikey;
    json_t *inst;
    (void)old_val;
    (void)new_val;
    if (strncmp(key, P_OBSERVED, strlen(P_OBSERVED)) != 0)
        return;
    ikey = xasprintf(P_INSTANCES "%s", key + strlen(P_OBSERVED));
    inst = informer_get(s->instances, ikey, NULL, NULL);
    if (jstr(inst, "service_id"))
        wq_add(s->q, jstr(inst, "service_id"));
    json_decref(inst);
    free(ikey);
}

/* Services of grid with an unfinished deploy (or all of them), plus those with instances on
 * node (NULL: none). */
static void enqueue_grid(struct scheduler *s, const char *grid, const char *node, int all)
{
    char *prefix = xasprintf(P_SERVICES "%s/", grid);
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(s->services, prefix, &objs);

    for (size_t i = 0; i < n; i++) {
        const char *did = jstr(objs[i].val, "deploy_id");
        int want = all;
        if (!want && did) {
            char *k = xasprintf(P_DEPLOYS "%s/%s", grid, did);
            json_t *d = informer_get(s->deploys, k, NULL, NULL);
            want = d && deploy_unfinished(d);
            json_decref(d);
            free(k);
        }
        if (want)
            wq_add(s->q, objs[i].key + strlen(P_SERVICES));
    }
    ctl_objs_free(objs, n);
    free(prefix);
    if (node) {
        prefix = xasprintf(P_INSTANCES "%s/%s/", grid, node);
        n = informer_list(s->instances, prefix, &objs);
        for (size_t i = 0; i < n; i++)
            if (jstr(objs[i].val, "service_id"))
                wq_add(s->q, jstr(objs[i].val, "service_id"));
        ctl_objs_free(objs, n);
        free(prefix);
    }
}

static void on_node(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    struct scheduler *s = arg;
    const char *prefix = strncmp(key, P_NODES, strlen(P_NODES)) == 0 ? P_NODES : P_STATUS;
    char buf[600];
    const char *grid, *node;
    char *p;

    (void)old_val;
    if (strlen(key) <= strlen(prefix) || strlen(key + strlen(prefix)) >= sizeof(buf))
        return;
    snprintf(buf, sizeof(buf), "%s", key + strlen(prefix));
    p = strchr(buf, '/');
    if (!p || !p[1])
        return;
    *p = '\0';
    grid = buf;
    node = p + 1;
    /* Availability (stateful desired states), labels or online state (deploys waiting for a
     * node) changed. */
    (void)new_val;
    enqueue_grid(s, grid, node, 0);
}

static void on_grid(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    struct scheduler *s = arg;
    (void)new_val;
    if (!old_val) /* a new grid has no services yet */
        return;
    if (strlen(key) > strlen(P_GRIDS))
        enqueue_grid(s, key + strlen(P_GRIDS), NULL, 0);
}

/* Mark (and queue) every service whose history is over the limit, and one service of every
 * stack whose stack deploys are: the safety net for prunes that never ran (a scheduler that
 * stopped in between, records written before pruning existed). One pass over each cache. */
static void prune_resync(struct scheduler *s)
{
    json_t *count = json_object(), *v;
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(s->deploys, P_DEPLOYS, &objs);
    const char *k;

    for (size_t i = 0; i < n; i++) {
        const char *sid = jstr(objs[i].val, "service_id");
        if (!sid || deploy_unfinished(objs[i].val))
            continue;
        v = json_object_get(count, sid);
        json_object_set_new(count, sid, json_integer(json_integer_value(v) + 1));
    }
    ctl_objs_free(objs, n);
    n = informer_list(s->stack_deploys, P_STACK_DEPLOYS, &objs);
    for (size_t i = 0; i < n; i++) {
        const char *grid = jstr(objs[i].val, "grid"), *stack = jstr(objs[i].val, "stack");
        char *sk;
        if (!grid || !stack)
            continue;
        sk = xasprintf("%s/%s/", grid, stack); /* a prefix, never a service id */
        v = json_object_get(count, sk);
        json_object_set_new(count, sk, json_integer(json_integer_value(v) + 1));
        free(sk);
    }
    ctl_objs_free(objs, n);
    json_object_foreach(count, k, v)
    {
        char *svc_id = NULL;
        if (json_integer_value(v) <= s->deploy_history)
            continue;
        if (k[strlen(k) - 1] == '/') { /* a stack: any of its services prunes it */
            char *prefix = xasprintf(P_SERVICES "%s", k);
            struct ctl_obj *svcs = NULL;
            size_t m = informer_list(s->services, prefix, &svcs);
            if (m)
                svc_id = xstrdup(svcs[0].key + strlen(P_SERVICES));
            ctl_objs_free(svcs, m);
            free(prefix);
        } else {
            svc_id = xstrdup(k);
        }
        if (!svc_id)
            continue;
        pthread_mutex_lock(&s->mu);
        json_object_set_new(s->prune, svc_id, json_true());
        pthread_mutex_unlock(&s->mu);
        wq_add(s->q, svc_id);
        free(svc_id);
    }
    json_decref(count);
}

static void resync(struct ctl *c, void *arg)
{
    struct scheduler *s = arg;
    struct ctl_obj *objs = NULL;
    size_t n;
    const char *last = NULL;

    (void)c;
    n = informer_list(s->services, P_SERVICES, &objs);
    for (size_t i = 0; i < n; i++)
        wq_add(s->q, objs[i].key + strlen(P_SERVICES));
    ctl_objs_free(objs, n);
    /* Unfinished deploys and instances whose service is gone. */
    n = informer_list(s->deploys, P_DEPLOYS, &objs);
    for (size_t i = 0; i < n; i++) {
        const char *sid = jstr(objs[i].val, "service_id");
        char *k;
        json_t *svc;
        if (!sid || !deploy_unfinished(objs[i].val))
            continue;
        k = xasprintf(P_SERVICES "%s", sid);
        svc = informer_get(s->services, k, NULL, NULL);
        if (!svc)
            wq_add(s->q, sid);
        json_decref(svc);
        free(k);
    }
    ctl_objs_free(objs, n);
    prune_resync(s);
    last = NULL;
    n = informer_list(s->instances, P_INSTANCES, &objs);
    for (size_t i = 0; i < n; i++) {
        const char *sid = jstr(objs[i].val, "service_id");
        char *k;
        json_t *svc;
        if (!sid || (last && strcmp(last, sid) == 0))
            continue;
        last = sid;
        k = xasprintf(P_SERVICES "%s", sid);
        svc = informer_get(s->services, k, NULL, NULL);
        if (!svc)
            wq_add(s->q, sid);
        json_decref(svc);
        free(k);
    }
    ctl_objs_free(objs, n);
}

static enum status setup(struct ctl *c, void *arg, struct err *e)
{
    struct scheduler *s = arg;

    (void)e;
    s->c = c;
    s->seed = (uint64_t)time_now_us();
    s->prune = json_object();
    /* The queue first: the handlers below enqueue into it. */
    s->q = ctl_wq(c, "services", reconcile, s, 0);
    s->grids = ctl_informer(c, P_GRIDS, on_grid, s);
    s->nodes = ctl_informer(c, P_NODES, on_node, s);
    s->status = ctl_informer(c, P_STATUS, on_node, s);
    s->services = ctl_informer(c, P_SERVICES, on_service, s);
    s->instances = ctl_informer(c, P_INSTANCES, on_by_service_id, s);
    s->observed = ctl_informer(c, P_OBSERVED, on_observed, s);
    s->deploys = ctl_informer(c, P_DEPLOYS, on_deploy, s);
    s->stack_deploys = ctl_informer(c, P_STACK_DEPLOYS, on_stack_deploy, s);
    s->m_placements = ctl_counter(c, "kontena_scheduler_placements_total",
                                  "instances placed on a node (new or moved)");
    s->m_deploy_success = ctl_counter(c, "kontena_scheduler_deploys_total{state=\"success\"}",
                                      "service deploys finished or started, by state");
    s->m_deploy_error = ctl_counter(c, "kontena_scheduler_deploys_total{state=\"error\"}",
                                    "service deploys finished or started, by state");
    s->m_deploy_started = ctl_counter(c, "kontena_scheduler_deploys_total{state=\"ongoing\"}",
                                      "service deploys finished or started, by state");
    return ST_OK;
}

/* After every thread has stopped: nothing is in flight any more. */
static void teardown(struct ctl *c, void *arg)
{
    struct scheduler *s = arg;

    (void)c;
    pending_drop(0);
    for (size_t i = 0; i < n_pend; i++) {
        free(pend[i].key);
        json_decref(pend[i].val);
    }
    FREE_AND_NULL(pend);
    n_pend = cap_pend = 0;
    json_decref(s->prune);
    s->prune = NULL;
}

static struct scheduler sched_state = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const struct ctl_opt opts[] = {
    {"instance-timeout", "KONTENA_INSTANCE_TIMEOUT", CTL_OPT_DURATION,
     &sched_state.instance_timeout_ms, "300s", 1000, 86400000,
     "how long a deploy waits for one instance to run before failing it"},
    {"deploy-history", "KONTENA_DEPLOY_HISTORY", CTL_OPT_INT, &sched_state.deploy_history, "20",
     1, 100000, "finished deploy records kept per service, stack deploy records per stack"},
    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
};

static const struct ctl_def def = {
    .name = "scheduler",
    .summary = "places service instances on nodes and carries out deploys",
    .http_port = 9301,
    .opts = opts,
    .setup = setup,
    .resync = resync,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return ctl_main(argc, argv, &def, &sched_state);
}
