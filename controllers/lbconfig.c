/* controllers/lbconfig.c -- kontena-lbconfig: writes the load balancers' etcd keys.
 *
 * For every service S linked to a load balancer L (reference networking-lb-health.md §7.1)
 * it writes, under /kontena/haproxy/<grid>/<L stack>/<L name>/ (<L name> alone in the null
 * stack), the original's keys (§7.2) from S's KONTENA_LB_* env (common/lbenv) and one
 * upstream per healthy, running instance of S. Values are the original's plain strings, so
 * a stock confd + haproxy could read them.
 *
 * One work queue keyed by grid. Reconcile is level-triggered: compute the wanted key set of
 * every LB of the grid from the informer caches (services, instances, observed), read what
 * is under /kontena/haproxy/<grid>/ from etcd (the values are not JSON, so no informer can
 * cache them), and write the difference in fenced transactions. Keys nobody wants any more
 * (link removed, service or LB deleted, instance stopped or unhealthy, mode changed) are
 * deleted by the same diff. A service whose settings are invalid is skipped and logged
 * once: its keys are never written (and any old ones are removed). docs/internals/lbconfig.md.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/lbenv.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define P_SERVICES "/kontena/services/"
#define P_INSTANCES "/kontena/instances/"
#define P_OBSERVED "/kontena/observed/"
#define P_HAPROXY "/kontena/haproxy/"

/* Operations per transaction (etcd's default --max-txn-ops is 128; the fence is a compare). */
#define TXN_OPS 120

struct lbconfig {
    struct ctl *ctl;
    struct wq *wq;
    struct informer *services, *instances, *observed;
    struct ctl_metric *puts, *deletes, *invalid;
    pthread_mutex_t lock; /* guards skipped */
    json_t *skipped;      /* service id -> message last logged for it (logged once) */
};

static struct lbconfig the_lbc;

/* --- helpers ---------------------------------------------------------------------------- */

/* The first '/'-separated segment after prefix (the grid), fresh memory, or NULL. */
static char *grid_of(const char *key, const char *prefix)
{
    size_t pl = strlen(prefix);
    const char *g, *slash;

    if (strncmp(key, prefix, pl) != 0)
        return NULL;
    g = key + pl;
    slash = strchr(g, '/');
    if (!slash || slash == g)
        return NULL;
    return xstrndup(g, (size_t)(slash - g));
}

/* The fields of instance and observed keys that upstreams depend on (upstream_of): a change
 * of anything else (checked_at of every health check, timestamps, spec) queues nothing. */
static const char *const inst_fields[] = {"service_id",         "desired_state",   "revision",
                                          "restart_generation", "health_restarts", NULL};
static const char *const obs_fields[] = {
    "state", "ip", "ready", "revision", "restart_generation", "health_restarts", NULL};

static int same(const json_t *a, const json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

static int relevant_change(const json_t *o, const json_t *n, const char *const *fields, int health)
{
    if (!o || !n)
        return 1;
    for (const char *const *f = fields; *f; f++)
        if (!same(json_object_get(o, *f), json_object_get(n, *f)))
            return 1;
    if (health) {
        const json_t *ho = json_object_get(o, "health"), *hn = json_object_get(n, "health");
        if (json_is_null(ho) != json_is_null(hn) || !ho != !hn ||
            !same(json_object_get(ho, "status"), json_object_get(hn, "status")))
            return 1;
    }
    return 0;
}

static void on_change(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct lbconfig *lc = arg;
    const char *prefixes[] = {P_SERVICES, P_INSTANCES, P_OBSERVED};

    if (!strncmp(key, P_INSTANCES, strlen(P_INSTANCES)) && !relevant_change(o, n, inst_fields, 0))
        return;
    if (!strncmp(key, P_OBSERVED, strlen(P_OBSERVED)) && !relevant_change(o, n, obs_fields, 1))
        return;
    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
        char *grid = grid_of(key, prefixes[i]);
        if (grid) {
            wq_add(lc->wq, grid);
            free(grid);
            return;
        }
    }
}

/* Log why service id is skipped, once per distinct message; forget it when it is fine
 * again (msg NULL). */
static void note_skip(struct lbconfig *lc, const char *id, const char *msg)
{
    const char *old;

    pthread_mutex_lock(&lc->lock);
    old = jstr(lc->skipped, id);
    if (!msg) {
        if (old)
            log_info("service=%s msg=\"load balancer settings valid again\"", id);
        json_object_del(lc->skipped, id);
    } else if (!old || strcmp(old, msg) != 0) {
        log_warn("service=%s msg=\"not balanced: %s\"", id, msg);
        json_object_set_new(lc->skipped, id, json_string(msg));
    }
    ctl_metric_set(lc->invalid, (double)json_object_size(lc->skipped));
    pthread_mutex_unlock(&lc->lock);
}

/* Drop the skip notes of grid's services that no longer exist. */
static void forget_gone(struct lbconfig *lc, const char *grid, const struct ctl_obj *svcs, size_t n)
{
    size_t gl = strlen(grid);
    const char *id;
    json_t *v, *gone = json_array();
    size_t i;

    pthread_mutex_lock(&lc->lock);
    json_object_foreach(lc->skipped, id, v)
    {
        int found = 0;
        if (strncmp(id, grid, gl) != 0 || id[gl] != '/')
            continue;
        for (i = 0; i < n && !found; i++)
            found = strcmp(svcs[i].key + strlen(P_SERVICES), id) == 0;
        if (!found)
            json_array_append_new(gone, json_string(id));
    }
    json_array_foreach(gone, i, v) json_object_del(lc->skipped, json_string_value(v));
    ctl_metric_set(lc->invalid, (double)json_object_size(lc->skipped));
    pthread_mutex_unlock(&lc->lock);
    json_decref(gone);
}

static void want(json_t *wanted, const char *root, const char *rel, const char *val)
{
    char *k = xasprintf("%s%s", root, rel);

    json_object_set_new(wanted, k, json_string(val));
    free(k);
}

/* "<stack>/<svc>" or "<svc>" in the null stack: the LB's path and names in messages. */
static char *stacked(const char *stack, const char *svc, char sep)
{
    if (!stack || strcmp(stack, "null") == 0 || !*stack)
        return xstrdup(svc);
    return xasprintf("%s%c%s", stack, sep, svc);
}

/* Both have integer field f and the values differ. */
static int differ(const json_t *a, const json_t *b, const char *f)
{
    const json_t *x = json_object_get(a, f), *y = json_object_get(b, f);

    return json_is_integer(x) && json_is_integer(y) &&
           json_integer_value(x) != json_integer_value(y);
}

/* An instance's address as an upstream, or NULL when it must not receive traffic: it must
 * be meant to run (desired_state running: one about to be stopped leaves first), run with
 * an address, not wait for its port (ready false while deploy_opts.wait_for_port is not
 * open yet), not be about to be replaced (the instance's revision or restart_generation
 * differs from what the container runs, or a health restart was asked for and not applied
 * yet: the agent stops the old container right away, so it leaves the upstreams now), and,
 * when its service has a health check, have passed it (health null means "not checked yet"
 * then); a failed check takes it out in any case. */
static char *upstream_of(const json_t *inst, const json_t *obs, int port, int checked)
{
    const char *ip = jstr(obs, "ip"), *state = jstr(obs, "state");
    const char *desired = jstr(inst, "desired_state");
    const json_t *health = json_object_get(obs, "health"), *ready = json_object_get(obs, "ready");
    const char *hs = jstr(health, "status");
    char *v;

    if (!desired || strcmp(desired, "running") != 0)
        return NULL;
    if (!state || strcmp(state, "running") != 0 || !ip || !*ip)
        return NULL;
    if (json_is_false(ready))
        return NULL;
    if (differ(inst, obs, "revision") || differ(inst, obs, "restart_generation") ||
        jint(inst, "health_restarts", 0) > jint(obs, "health_restarts", INT64_MAX))
        return NULL; /* about to be re-created or restarted by its agent */
    if (checked ? !hs || strcmp(hs, "healthy") != 0 : hs && strcmp(hs, "healthy") != 0)
        return NULL;
    v = strchr(ip, ':') ? xasprintf("[%s]:%d", ip, port) : xasprintf("%s:%d", ip, port);
    if (lbenv_check_upstream(v, NULL) != ST_OK)
        FREE_AND_NULL(v);
    return v;
}

/* --- the wanted keys of one grid --------------------------------------------------------- */

struct grid_view {
    const char *grid;
    struct ctl_obj *svcs;
    size_t nsvcs;
    json_t *lbs;       /* service id -> {path, http, https, stats} */
    json_t *instances; /* service id -> [{container, node, inst}] */
    json_t *ports;     /* lb path -> {port: backend service id} */
    json_t *names;     /* "<lb path>/<backend>" -> service id (two services, one name) */
};

static void find_lbs(struct grid_view *g)
{
    for (size_t i = 0; i < g->nsvcs; i++) {
        const json_t *s = g->svcs[i].val;
        const char *id = g->svcs[i].key + strlen(P_SERVICES);
        const json_t *env = json_object_get(s, "env");
        struct lbenv_lb_ports p;
        char *path;

        if (!json_is_object(s) || !lbenv_is_lb(jstr(s, "image"), env) || !jstr(s, "name"))
            continue;
        lbenv_lb_ports(env, &p);
        path = stacked(jstr(s, "stack"), jstr(s, "name"), '/');
        json_object_set_new(g->lbs, id,
                            json_pack("{s:s,s:i,s:i,s:i}", "path", path, "http", p.http, "https",
                                      p.https, "stats", p.stats));
        free(path);
    }
}

static void index_instances(struct lbconfig *lc, struct grid_view *g)
{
    char *prefix = xasprintf(P_INSTANCES "%s/", g->grid);
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(lc->instances, prefix, &objs);

    for (size_t i = 0; i < n; i++) {
        const char *sid = jstr(objs[i].val, "service_id");
        const char *rest = objs[i].key + strlen(prefix); /* <node>/<container> */
        const char *slash = strchr(rest, '/');
        json_t *list;

        if (!sid || !slash || slash == rest || !slash[1] || strchr(slash + 1, '/'))
            continue;
        list = json_object_get(g->instances, sid);
        if (!list) {
            list = json_array();
            json_object_set_new(g->instances, sid, list);
        }
        json_array_append_new(list,
                              json_pack("{s:s%,s:s,s:O}", "node", rest, (size_t)(slash - rest),
                                        "container", slash + 1, "inst", objs[i].val));
    }
    ctl_objs_free(objs, n);
    free(prefix);
}

/* The first link of s that points to a load balancer of the grid: its entry in g->lbs. */
static const json_t *lb_of(const struct grid_view *g, const json_t *s, const char **lb_id)
{
    size_t i;
    const json_t *l;

    json_array_foreach(json_object_get(s, "links"), i, l)
    {
        const char *id = jstr(l, "id");
        const json_t *lb = id ? json_object_get(g->lbs, id) : NULL;
        if (lb) {
            *lb_id = id;
            return lb;
        }
    }
    return NULL;
}

/* Port clash of a tcp backend: the message, or NULL (then the port is taken for it). */
static char *tcp_clash(struct grid_view *g, const json_t *lb, const char *lb_id, const char *id,
                       int port)
{
    struct lbenv_lb_ports p = {(int)jint(lb, "http", 80), (int)jint(lb, "https", 443),
                               (int)jint(lb, "stats", 1000)};
    const char *path = jstr(lb, "path");
    json_t *taken = json_object_get(g->ports, path);
    char key[16];
    const char *other;
    struct lbenv_tcp_use uses[2];
    struct err e = ERR_INIT;
    size_t n = 0;

    (void)lb_id;
    if (!taken) {
        taken = json_object();
        json_object_set_new(g->ports, path, taken);
    }
    snprintf(key, sizeof(key), "%d", port);
    other = jstr(taken, key);
    if (other)
        uses[n++] = (struct lbenv_tcp_use){other, port};
    uses[n++] = (struct lbenv_tcp_use){id, port};
    if (lbenv_check_port_clash(path, &p, uses, n, &e) != ST_OK)
        return xstrdup(e.msg);
    json_object_set_new(taken, key, json_string(id));
    return NULL;
}

/* Add the keys of backend service s (key skey) to wanted, or note why it is skipped. */
static void backend_keys(struct lbconfig *lc, struct grid_view *g, const struct ctl_obj *so,
                         json_t *wanted)
{
    const json_t *s = so->val, *lb, *hc, *list, *it;
    const char *id = so->key + strlen(P_SERVICES), *lb_id = NULL;
    const char *stack = jstr(s, "stack"), *name = jstr(s, "name");
    struct lbenv env = LBENV_INIT;
    struct err e = ERR_INIT;
    char *bname = NULL, *root = NULL, *namekey = NULL, *msg = NULL, port[8];
    const char *sub;
    size_t i;
    int checked;

    if (!json_is_object(s) || !name || lbenv_is_lb(jstr(s, "image"), json_object_get(s, "env")))
        return;
    lb = lb_of(g, s, &lb_id);
    if (!lb) {
        note_skip(lc, id, NULL);
        return;
    }
    bname = stacked(stack, name, '-');
    if (lbenv_check_name(bname, &e) != ST_OK) {
        msg = xasprintf("backend name: %s", e.msg);
        goto out;
    }
    if (lbenv_parse_json(&env, json_object_get(s, "env"), id, &e) != ST_OK) {
        msg = xstrdup(e.msg);
        goto out;
    }
    namekey = xasprintf("%s/%s", jstr(lb, "path"), bname);
    if (jstr(g->names, namekey)) {
        msg = xasprintf("backend name '%s' on load balancer '%s' is already used by service "
                        "'%s'",
                        bname, jstr(lb, "path"), jstr(g->names, namekey));
        goto out;
    }
    if (env.mode == LB_MODE_TCP && (msg = tcp_clash(g, lb, lb_id, id, env.external_port)) != NULL)
        goto out;
    json_object_set_new(g->names, namekey, json_string(id));

    sub = env.mode == LB_MODE_TCP ? "tcp-services" : "services";
    root = xasprintf(P_HAPROXY "%s/%s/%s/%s/", g->grid, jstr(lb, "path"), sub, bname);
    want(wanted, root, "balance", env.balance);
    if (env.custom_settings)
        want(wanted, root, "custom_settings", env.custom_settings);
    if (env.mode == LB_MODE_TCP) {
        snprintf(port, sizeof(port), "%d", env.external_port);
        want(wanted, root, "external_port", port);
    } else {
        if (env.virtual_hosts)
            want(wanted, root, "virtual_hosts", env.virtual_hosts);
        if (env.virtual_path)
            want(wanted, root, "virtual_path", env.virtual_path);
        if (env.keep_virtual_path)
            want(wanted, root, "keep_virtual_path", env.keep_virtual_path);
        if (env.cookie)
            want(wanted, root, "cookie", env.cookie);
        if (env.basic_auth_secrets)
            want(wanted, root, "basic_auth_secrets", env.basic_auth_secrets);
        hc = json_object_get(s, "health_check");
        if (jstr(hc, "protocol")) {
            const char *uri = jstr(hc, "uri");
            json_int_t hp = jint(hc, "port", 0);
            if (strcmp(jstr(hc, "protocol"), "http") == 0 && uri &&
                lbenv_check_uri(uri, NULL) == ST_OK)
                want(wanted, root, "health_check_uri", uri);
            if (hp >= 1 && hp <= 65535) {
                snprintf(port, sizeof(port), "%d", (int)hp);
                want(wanted, root, "health_check_port", port);
            }
        }
    }
    checked = jstr(json_object_get(s, "health_check"), "protocol") != NULL;
    list = json_object_get(g->instances, id);
    json_array_foreach(list, i, it)
    {
        const char *container = jstr(it, "container");
        char *okey = xasprintf(P_OBSERVED "%s/%s/%s", g->grid, jstr(it, "node"), container);
        json_t *obs = informer_get(lc->observed, okey, NULL, NULL);
        char *up = upstream_of(json_object_get(it, "inst"), obs, env.internal_port, checked);
        if (up && lbenv_check_name(container, NULL) == ST_OK) {
            char *rel = xasprintf("upstreams/%s", container);
            want(wanted, root, rel, up);
            free(rel);
        }
        free(up);
        json_decref(obs);
        free(okey);
    }
out:
    note_skip(lc, id, msg);
    free(msg);
    free(namekey);
    free(root);
    free(bname);
    lbenv_release(&env);
}

/* --- writing the difference -------------------------------------------------------------- */

static int is_upstream(const char *key)
{
    return strstr(key, "/upstreams/") != NULL;
}

/* Ops in the order they should reach the load balancer: upstreams that go first (traffic
 * leaves an instance as early as possible), then settings, then new upstreams (a backend's
 * settings exist before its first server), then the rest of the deletions. */
struct op {
    const char *key;
    const char *val; /* NULL: delete */
};

static int op_rank(const struct op *o)
{
    if (!o->val)
        return is_upstream(o->key) ? 0 : 3;
    return is_upstream(o->key) ? 2 : 1;
}

static int op_cmp(const void *a, const void *b)
{
    const struct op *x = a, *y = b;
    int rx = op_rank(x), ry = op_rank(y);

    if (rx != ry)
        return rx - ry;
    return strcmp(x->key, y->key);
}

static enum status apply(struct lbconfig *lc, const char *grid, struct op *ops, size_t n,
                         struct err *e)
{
    enum status st = ST_OK;

    qsort(ops, n, sizeof(*ops), op_cmp);
    for (size_t at = 0; at < n && st == ST_OK; at += TXN_OPS) {
        size_t end = at + TXN_OPS < n ? at + TXN_OPS : n, puts = 0;
        struct etcd_txn *t = etcd_txn_new();
        struct etcd_txn_result res = {0};

        ctl_txn_fence(lc->ctl, t);
        for (size_t i = at; i < end; i++) {
            if (ops[i].val) {
                etcd_txn_put(t, ETCD_THEN, ops[i].key, ops[i].val, strlen(ops[i].val), 0);
                puts++;
            } else {
                etcd_txn_delete(t, ETCD_THEN, ops[i].key, NULL);
            }
        }
        st = etcd_txn_commit(ctl_etcd(lc->ctl), t, &res, e);
        if (st == ST_OK && !res.succeeded)
            st = err_set(e, ST_CONFLICT,
                         "leadership lost before the keys of grid '%s' could be "
                         "written",
                         grid);
        if (st == ST_OK) {
            ctl_metric_add(lc->puts, (double)puts);
            ctl_metric_add(lc->deletes, (double)(end - at - puts));
            for (size_t i = at; i < end; i++)
                log_debug("grid=%s rev=%lld key=%s msg=\"%s\"", grid, (long long)res.revision,
                          ops[i].key, ops[i].val ? "written" : "deleted");
            log_info("grid=%s rev=%lld msg=\"%zu load balancer key(s) written, %zu deleted\"", grid,
                     (long long)res.revision, puts, end - at - puts);
        }
        etcd_txn_result_release(&res);
        etcd_txn_free(t);
    }
    return st;
}

static enum status reconcile(void *arg, const char *grid, struct err *e)
{
    struct lbconfig *lc = arg;
    struct grid_view g = {0};
    char *sprefix = xasprintf(P_SERVICES "%s/", grid), *hprefix = NULL;
    json_t *wanted = json_object(), *seen = json_object(), *v;
    struct etcd_range_opts ro = {0};
    struct etcd_range_result have = {0};
    struct op *ops = NULL;
    size_t nops = 0, cap = 0;
    const char *k;
    enum status st;

    g.grid = grid;
    g.lbs = json_object();
    g.instances = json_object();
    g.ports = json_object();
    g.names = json_object();
    g.nsvcs = informer_list(lc->services, sprefix, &g.svcs);
    find_lbs(&g);
    index_instances(lc, &g);
    for (size_t i = 0; i < g.nsvcs; i++)
        backend_keys(lc, &g, &g.svcs[i], wanted);
    forget_gone(lc, grid, g.svcs, g.nsvcs);

    hprefix = xasprintf(P_HAPROXY "%s/", grid);
    ro.range_end = ETCD_PREFIX;
    st = etcd_range(ctl_etcd(lc->ctl), hprefix, &ro, &have, e);
    if (st != ST_OK) {
        err_wrap(e, "cannot read the load balancer keys of grid '%s'", grid);
        goto out;
    }
    /* Deletions and changed values: every key we have. */
    for (size_t i = 0; i < have.n; i++) {
        const char *w = jstr(wanted, have.kvs[i].key);
        if (w && strlen(w) == have.kvs[i].value_len &&
            memcmp(w, have.kvs[i].value, have.kvs[i].value_len) == 0) {
            json_object_del(wanted, have.kvs[i].key); /* already right */
            continue;
        }
        json_object_set_new(seen, have.kvs[i].key, json_true());
        if (nops == cap)
            ops = xrealloc(ops, (cap = cap ? cap * 2 : 64) * sizeof(*ops));
        ops[nops++] = (struct op){have.kvs[i].key, w};
    }
    /* New keys: the wanted ones etcd does not have. */
    json_object_foreach(wanted, k, v)
    {
        if (json_object_get(seen, k))
            continue;
        if (nops == cap)
            ops = xrealloc(ops, (cap = cap ? cap * 2 : 64) * sizeof(*ops));
        ops[nops++] = (struct op){k, json_string_value(v)};
    }
    if (nops)
        st = apply(lc, grid, ops, nops, e);
out:
    free(ops);
    etcd_range_result_release(&have);
    json_decref(wanted);
    json_decref(seen);
    json_decref(g.lbs);
    json_decref(g.instances);
    json_decref(g.ports);
    json_decref(g.names);
    ctl_objs_free(g.svcs, g.nsvcs);
    free(hprefix);
    free(sprefix);
    return st;
}

/* --- runtime glue ------------------------------------------------------------------------- */

static enum status setup(struct ctl *c, void *arg, struct err *e)
{
    struct lbconfig *lc = arg;

    (void)e;
    lc->ctl = c;
    lc->wq = ctl_wq(c, "lbconfig", reconcile, lc, 0);
    lc->services = ctl_informer(c, P_SERVICES, on_change, lc);
    lc->instances = ctl_informer(c, P_INSTANCES, on_change, lc);
    lc->observed = ctl_informer(c, P_OBSERVED, on_change, lc);
    lc->puts = ctl_counter(c, "kontena_lbconfig_keys_written_total",
                           "load balancer keys written under /kontena/haproxy/");
    lc->deletes = ctl_counter(c, "kontena_lbconfig_keys_deleted_total",
                              "load balancer keys deleted under /kontena/haproxy/");
    lc->invalid = ctl_gauge(c, "kontena_lbconfig_invalid_services",
                            "services linked to a load balancer whose settings are invalid");
    return ST_OK;
}

/* Every grid with services, and every grid that still has load balancer keys (so the keys
 * of a grid whose services are all gone are removed too). */
static void resync(struct ctl *c, void *arg)
{
    struct lbconfig *lc = arg;
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(lc->services, P_SERVICES, &objs);
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX, .keys_only = 1};
    struct etcd_range_result r = {0};
    struct err e = ERR_INIT;

    for (size_t i = 0; i < n; i++) {
        char *grid = grid_of(objs[i].key, P_SERVICES);
        if (grid)
            wq_add(lc->wq, grid);
        free(grid);
    }
    ctl_objs_free(objs, n);
    if (etcd_range(ctl_etcd(c), P_HAPROXY, &ro, &r, &e) != ST_OK) {
        log_warn("msg=\"cannot list %s: %s\"", P_HAPROXY, e.msg);
        return;
    }
    for (size_t i = 0; i < r.n; i++) {
        char *grid = grid_of(r.kvs[i].key, P_HAPROXY);
        if (grid)
            wq_add(lc->wq, grid);
        free(grid);
    }
    etcd_range_result_release(&r);
}

static const struct ctl_def def = {
    .name = "lbconfig",
    .summary = "writes the load balancers' keys (/kontena/haproxy/) from the services "
               "linked to them and their healthy instances",
    .http_port = 9305,
    .opts = NULL,
    .setup = setup,
    .resync = resync,
};

int main(int argc, char **argv)
{
    int rc;

    pthread_mutex_init(&the_lbc.lock, NULL);
    the_lbc.skipped = json_object();
    rc = ctl_main(argc, argv, &def, &the_lbc);
    json_decref(the_lbc.skipped);
    the_lbc.skipped = NULL;
    pthread_mutex_destroy(&the_lbc.lock);
    return rc;
}
