/* controllers/ipam.c -- kontena-ipam: overlay addresses of service containers.
 *
 * One work-queue key per grid. A reconcile reads the grid's instance keys, node status keys
 * and address keys from the caches and makes etcd match these rules (docs/internals/ipam.md):
 *   - every instance on an online node (spec.net not host/container:) holds an address:
 *     `overlay_cidr` in its instance key and an address key naming it as the owner, both
 *     written in one transaction (create-only address key + CAS on the instance key);
 *   - an address is claimed by at most one online instance: among instances carrying the
 *     same overlay_cidr the oldest claim (overlay_since, then key) wins, the others are
 *     given a new address (their agents recreate the container);
 *   - address keys no online instance claims are deleted: the instance was removed, or its
 *     node is offline (its instance keys keep overlay_cidr, so the address comes back when
 *     the node does, unless meanwhile another container got it and is older).
 * Never two owners: an address key is only ever created with create_revision == 0, or
 * rewritten with a compare on its mod_revision, and every write carries the leader fence.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/ipam_net.h"
#include "controllers/runtime/ctl.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define GRIDS_PREFIX "/kontena/grids/"
#define NODE_STATUS_PREFIX "/kontena/node_status/"
#define INSTANCES_PREFIX "/kontena/instances/"
#define IPAM_PREFIX "/kontena/ipam/"
#define MAX_TXN_PART 120 /* compares or writes per transaction (etcd allows 128) */
#define POOL_FULL_ERROR "the address pool of grid '%s' (%s) is full"
/* Events queue their grid this much later: a burst (the scheduler placing many instances)
 * becomes one pass, and the two halves of a move (delete + create in one transaction, which
 * the informer applies one key at a time) are seen together. */
#define DEBOUNCE_MS 50

struct ipam {
    struct ctl *c;
    struct informer *grids, *status, *insts, *addrs;
    struct wq *q;
    int64_t range_len;

    pthread_mutex_t mu;
    json_t *cursors; /* grid -> next-fit offset into the pool's usable addresses */

    struct ctl_metric *m_alloc, *m_release, *m_full, *m_conflict, *m_lost;
};

/* --- key helpers ------------------------------------------------------------------------ */

/* The grid segment of key after prefix, into out; 0 or -1 when there is none. */
static int grid_of(const char *key, const char *prefix, char *out, size_t n)
{
    size_t pl = strlen(prefix), gl;
    const char *s, *slash;

    if (strncmp(key, prefix, pl) != 0)
        return -1;
    s = key + pl;
    slash = strchr(s, '/');
    gl = slash ? (size_t)(slash - s) : strlen(s);
    if (gl == 0 || gl >= n)
        return -1;
    memcpy(out, s, gl);
    out[gl] = '\0';
    return 0;
}

static void on_change(void *arg, const char *key, const json_t *old_val, const json_t *new_val)
{
    struct ipam *ip = arg;
    char grid[256];
    const char *prefixes[] = {GRIDS_PREFIX, NODE_STATUS_PREFIX, INSTANCES_PREFIX, IPAM_PREFIX};

    (void)old_val;
    (void)new_val;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (grid_of(key, prefixes[i], grid, sizeof(grid)) == 0) {
            wq_add_after(ip->q, grid, DEBOUNCE_MS);
            return;
        }
}

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

/* --- actions: one compare-and-write unit each ------------------------------------------- */

enum act_kind { ACT_ALLOC, ACT_CLAIM, ACT_RELEASE, ACT_UNSET };

struct act {
    enum act_kind kind;
    char *what; /* for the log */
    struct {
        char *key;
        enum etcd_cmp_target target;
        int64_t n;
    } cmp[2];
    int ncmp;
    struct {
        char *key;
        json_t *val; /* NULL: delete */
        struct informer *inf;
    } w[2];
    int nw;
};

struct acts {
    struct act *v;
    size_t n, cap;
};

static struct act *act_new(struct acts *a, enum act_kind kind)
{
    struct act *x;

    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    x = &a->v[a->n++];
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    return x;
}

static void act_cmp(struct act *x, const char *key, enum etcd_cmp_target t, int64_t n)
{
    BUG_ON(x->ncmp >= 2);
    x->cmp[x->ncmp].key = xstrdup(key);
    x->cmp[x->ncmp].target = t;
    x->cmp[x->ncmp].n = n;
    x->ncmp++;
}

/* val stolen (NULL: delete). */
static void act_write(struct act *x, struct informer *inf, const char *key, json_t *val)
{
    BUG_ON(x->nw >= 2);
    x->w[x->nw].key = xstrdup(key);
    x->w[x->nw].val = val;
    x->w[x->nw].inf = inf;
    x->nw++;
}

static void acts_release(struct acts *a)
{
    for (size_t i = 0; i < a->n; i++) {
        struct act *x = &a->v[i];
        for (int j = 0; j < x->ncmp; j++)
            free(x->cmp[j].key);
        for (int j = 0; j < x->nw; j++) {
            free(x->w[j].key);
            json_decref(x->w[j].val);
        }
        free(x->what);
    }
    free(a->v);
    memset(a, 0, sizeof(*a));
}

static void act_add_to(const struct act *x, struct etcd_txn *t)
{
    for (int j = 0; j < x->ncmp; j++)
        etcd_txn_cmp(t, x->cmp[j].key, x->cmp[j].target, ETCD_CMP_EQUAL, x->cmp[j].n);
    for (int j = 0; j < x->nw; j++) {
        if (x->w[j].val) {
            char *s = dump(x->w[j].val);
            etcd_txn_put(t, ETCD_THEN, x->w[j].key, s, strlen(s), 0);
            free(s);
        } else {
            etcd_txn_delete(t, ETCD_THEN, x->w[j].key, NULL);
        }
    }
}

/* After a committed transaction: the caches learn our writes, metrics and log follow. */
static void act_done(struct ipam *ip, const struct act *x, int64_t rev)
{
    for (int j = 0; j < x->nw; j++) {
        if (x->w[j].val)
            informer_store(x->w[j].inf, x->w[j].key, x->w[j].val, rev);
        else
            informer_forget(x->w[j].inf, x->w[j].key, rev);
    }
    switch (x->kind) {
    case ACT_ALLOC:
        ctl_metric_add(ip->m_alloc, 1);
        break;
    case ACT_RELEASE:
        ctl_metric_add(ip->m_release, 1);
        break;
    case ACT_UNSET:
    case ACT_CLAIM:
        break;
    }
    log_info("rev=%lld msg=\"%s\"", (long long)rev, x->what);
}

/* Commit acts[from, to) in one transaction; 1 committed, 0 a compare was lost, -1 error. */
static int commit_range(struct ipam *ip, struct acts *a, size_t from, size_t to, struct err *e)
{
    struct etcd_txn *t = etcd_txn_new();
    struct etcd_txn_result res;
    int rc;

    ctl_txn_fence(ip->c, t);
    for (size_t i = from; i < to; i++)
        act_add_to(&a->v[i], t);
    if (etcd_txn_commit(ctl_etcd(ip->c), t, &res, e) != ST_OK) {
        etcd_txn_free(t);
        return -1;
    }
    etcd_txn_free(t);
    rc = res.succeeded ? 1 : 0;
    if (rc)
        for (size_t i = from; i < to; i++)
            act_done(ip, &a->v[i], res.revision);
    etcd_txn_result_release(&res);
    return rc;
}

/* Commit every action in batches of at most MAX_TXN_PART compares and writes. A batch that
 * loses a compare is committed again one action at a time, so one stale cache entry does
 * not hold back the rest. ST_CONFLICT when some action lost (the grid is queued again). */
static enum status commit_all(struct ipam *ip, struct acts *a, struct err *e)
{
    size_t i = 0;
    int lost = 0;

    while (i < a->n) {
        size_t j = i, ncmp = 0, nw = 0;
        int rc;

        while (j < a->n && ncmp + (size_t)a->v[j].ncmp <= MAX_TXN_PART &&
               nw + (size_t)a->v[j].nw <= MAX_TXN_PART) {
            ncmp += (size_t)a->v[j].ncmp;
            nw += (size_t)a->v[j].nw;
            j++;
        }
        rc = commit_range(ip, a, i, j, e);
        if (rc < 0)
            return e ? e->st : ST_IO;
        if (rc == 0) {
            if (j - i == 1) {
                lost++;
                log_info("msg=\"lost a compare, will retry: %s\"", a->v[i].what);
            } else {
                for (size_t k = i; k < j; k++) {
                    rc = commit_range(ip, a, k, k + 1, e);
                    if (rc < 0)
                        return e ? e->st : ST_IO;
                    if (rc == 0) {
                        lost++;
                        log_info("msg=\"lost a compare, will retry: %s\"", a->v[k].what);
                    }
                }
            }
        }
        i = j;
    }
    if (lost) {
        ctl_metric_add(ip->m_lost, lost);
        return err_set(e, ST_CONFLICT, "%d write(s) lost a compare against newer values", lost);
    }
    return ST_OK;
}

/* --- the reconcile ---------------------------------------------------------------------- */

struct inst {
    const struct ctl_obj *o;
    const char *node, *name; /* into node_name */
    char node_name[512];
    int online, wants; /* wants: needs an address (not host/container: networking) */
    int has_ip;
    uint32_t ip;
    int64_t since;
    int loser;
};

struct addr {
    const struct ctl_obj *o;
    uint32_t ip;
    int claimed; /* an online instance holds it */
};

static int cmp_claim(const void *a, const void *b)
{
    const struct inst *x = *(const struct inst *const *)a, *y = *(const struct inst *const *)b;
    if (x->ip != y->ip)
        return x->ip < y->ip ? -1 : 1;
    if (x->since != y->since)
        return x->since < y->since ? -1 : 1;
    return strcmp(x->o->key, y->o->key);
}

static int cmp_addr(const void *a, const void *b)
{
    const struct addr *x = a, *y = b;
    return x->ip < y->ip ? -1 : x->ip > y->ip;
}

static struct addr *find_addr(struct addr *v, size_t n, uint32_t ipv)
{
    struct addr k = {.ip = ipv};
    return bsearch(&k, v, n, sizeof(*v), cmp_addr);
}

static int needs_network(const json_t *inst)
{
    const char *net = jstr(json_object_get(inst, "spec"), "net");
    return !(net && (!strcmp(net, "host") || !strncmp(net, "container:", 10)));
}

/* The pool of grid: the cached pool key, or created from the grid's subnet. *out: new
 * reference of the pool value. */
static enum status ensure_pool(struct ipam *ip, const char *grid, const json_t *gv, json_t **out,
                               struct err *e)
{
    char *key = xasprintf(IPAM_PREFIX "%s/pool", grid), range[32], gw[16], *s = NULL;
    const char *subnet = jstr(gv, "subnet");
    struct ipam_pool p;
    struct etcd_txn *t = NULL;
    struct etcd_txn_result res;
    json_t *pv;
    enum status st;

    *out = informer_get(ip->addrs, key, NULL, NULL);
    if (*out) {
        free(key);
        return ST_OK;
    }
    if (!subnet || !*subnet)
        subnet = IPAM_DEFAULT_SUBNET;
    st = ipam_default_range(subnet, (int)ip->range_len, range, sizeof(range), e);
    if (st != ST_OK) {
        err_wrap(e, "grid '%s'", grid);
        goto out;
    }
    st = ipam_pool_parse(subnet, range, &p, e);
    if (st != ST_OK)
        goto out;
    ipam_format_ip(p.net + 1, gw, sizeof(gw));
    pv = json_pack("{s:s, s:s, s:o}", "subnet", subnet, "iprange", range, "gateway",
                   json_sprintf("%s/%d", gw, p.len));
    s = dump(pv);
    t = etcd_txn_new();
    ctl_txn_fence(ip->c, t);
    etcd_txn_cmp(t, key, ETCD_CMP_CREATE, ETCD_CMP_EQUAL, 0);
    etcd_txn_put(t, ETCD_THEN, key, s, strlen(s), 0);
    st = etcd_txn_commit(ctl_etcd(ip->c), t, &res, e);
    if (st != ST_OK) {
        json_decref(pv);
        goto out;
    }
    if (!res.succeeded) {
        etcd_txn_result_release(&res);
        json_decref(pv);
        st = err_set(e, ST_CONFLICT, "pool '%s' was created meanwhile (or leadership lost)", key);
        goto out;
    }
    informer_store(ip->addrs, key, pv, res.revision);
    log_info("key=%s rev=%lld subnet=%s iprange=%s msg=\"pool created (%u addresses)\"", key,
             (long long)res.revision, subnet, range, p.count);
    etcd_txn_result_release(&res);
    *out = pv;
out:
    etcd_txn_free(t);
    free(s);
    free(key);
    return st;
}

static uint32_t cursor_get(struct ipam *ip, const char *grid, const struct addr *addrs, size_t n,
                           const struct ipam_pool *p)
{
    json_t *v;
    uint32_t cur = 0;

    pthread_mutex_lock(&ip->mu);
    v = json_object_get(ip->cursors, grid);
    if (v) {
        cur = (uint32_t)json_integer_value(v);
    } else {
        /* After a restart: go on after the most recently created address. */
        int64_t best = -1;
        for (size_t i = 0; i < n; i++)
            if (addrs[i].o->create_rev > best && addrs[i].ip >= p->lo &&
                addrs[i].ip - p->lo < p->count) {
                best = addrs[i].o->create_rev;
                cur = addrs[i].ip - p->lo + 1;
            }
    }
    pthread_mutex_unlock(&ip->mu);
    return p->count ? cur % p->count : 0;
}

static void cursor_set(struct ipam *ip, const char *grid, uint32_t cur)
{
    pthread_mutex_lock(&ip->mu);
    json_object_set_new(ip->cursors, grid, json_integer(cur));
    pthread_mutex_unlock(&ip->mu);
}

/* Bitmap of the pool's usable addresses. */
static int bit_get(const unsigned char *b, uint32_t i)
{
    return b[i >> 3] >> (i & 7) & 1;
}

static void bit_set(unsigned char *b, uint32_t i)
{
    b[i >> 3] |= (unsigned char)(1u << (i & 7));
}

static void mark(unsigned char *b, const struct ipam_pool *p, uint32_t ipv)
{
    if (ipv >= p->lo && ipv - p->lo < p->count)
        bit_set(b, ipv - p->lo);
}

/* Next free offset from *cur: first skipping addresses held by address keys (hard) and by
 * instances on offline nodes (soft: they want theirs back), then, when that finds nothing,
 * taking soft ones too. -1 when the pool is full. */
static int64_t next_free(const struct ipam_pool *p, const unsigned char *hard,
                         const unsigned char *soft, uint32_t *cur)
{
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t k = 0; k < p->count; k++) {
            uint32_t off = (*cur + k) % p->count;
            if (bit_get(hard, off) || (pass == 0 && bit_get(soft, off)))
                continue;
            *cur = (off + 1) % p->count;
            return off;
        }
    return -1;
}

static json_t *address_value(const struct ipam_pool *p, uint32_t ipv, const struct inst *in,
                             const char *allocated_at)
{
    char ips[16], cidr[24];

    ipam_format_ip(ipv, ips, sizeof(ips));
    snprintf(cidr, sizeof(cidr), "%s/%d", ips, p->len);
    return json_pack("{s:s, s:s, s:s, s:s?, s:s}", "address", cidr, "container", in->name, "node",
                     in->node, "service_id", jstr(in->o->val, "service_id"), "allocated_at",
                     allocated_at);
}

static enum status reconcile(void *arg, const char *grid, struct err *e)
{
    struct ipam *ip = arg;
    char *gkey = xasprintf(GRIDS_PREFIX "%s", grid);
    char *iprefix = xasprintf(INSTANCES_PREFIX "%s/", grid);
    char *sprefix = xasprintf(NODE_STATUS_PREFIX "%s/", grid);
    char *aprefix = xasprintf(IPAM_PREFIX "%s/addresses/", grid);
    json_t *gv = NULL, *pv = NULL;
    struct ctl_obj *iobjs = NULL, *aobjs = NULL;
    size_t ni = 0, na = 0, na_objs = 0, nclaims = 0, full = 0;
    struct inst *insts = NULL, **claims = NULL;
    struct addr *addrs = NULL;
    unsigned char *hard = NULL, *soft = NULL;
    struct ipam_pool p;
    struct acts acts = {0};
    char now[40], pool_text[64], last_node[512] = "";
    int last_online = 0;
    uint32_t cur;
    enum status st = ST_OK;

    gv = informer_get(ip->grids, gkey, NULL, NULL);
    if (!gv) /* grid removed: the apiserver deleted its /kontena/ipam/<grid>/ keys */
        goto out;
    st = ensure_pool(ip, grid, gv, &pv, e);
    if (st != ST_OK)
        goto out;
    st = ipam_pool_parse(jstr(pv, "subnet"), jstr(pv, "iprange"), &p, e);
    if (st != ST_OK) {
        err_wrap(e, "grid '%s'", grid);
        goto out;
    }
    snprintf(pool_text, sizeof(pool_text), "%s", jstr(pv, "iprange"));
    time_iso8601_now(now, sizeof(now));

    /* Addresses, sorted by address. */
    na = na_objs = informer_list(ip->addrs, aprefix, &aobjs);
    addrs = xcalloc(na + 1, sizeof(*addrs));
    {
        size_t k = 0;
        for (size_t i = 0; i < na; i++) {
            uint32_t a;
            if (ipam_parse_ip(aobjs[i].key + strlen(aprefix), &a) != 0) {
                log_warn("key=%s msg=\"not an address key: ignored\"", aobjs[i].key);
                continue;
            }
            addrs[k].o = &aobjs[i];
            addrs[k].ip = a;
            k++;
        }
        qsort(addrs, k, sizeof(*addrs), cmp_addr);
        na = k;
    }

    /* Instances, and the online ones' claims sorted by (address, age). */
    ni = informer_list(ip->insts, iprefix, &iobjs);
    insts = xcalloc(ni + 1, sizeof(*insts));
    claims = xcalloc(ni + 1, sizeof(*claims));
    hard = xcalloc(p.count / 8 + 1, 1);
    soft = xcalloc(p.count / 8 + 1, 1);
    for (size_t i = 0; i < ni; i++) {
        struct inst *in = &insts[i];
        const char *rest = iobjs[i].key + strlen(iprefix), *slash = strchr(rest, '/');
        const char *cidr = jstr(iobjs[i].val, "overlay_cidr");
        json_t *since = json_object_get(iobjs[i].val, "overlay_since");
        uint32_t a;
        int len;

        in->o = &iobjs[i];
        if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/') ||
            (size_t)(slash - rest) >= sizeof(in->node_name) / 2 ||
            strlen(slash + 1) >= sizeof(in->node_name) / 2 || !json_is_object(iobjs[i].val)) {
            in->o = NULL; /* not an instance key */
            continue;
        }
        memcpy(in->node_name, rest, (size_t)(slash - rest));
        in->node_name[slash - rest] = '\0';
        in->node = in->node_name;
        in->name = in->node_name + (slash - rest) + 1;
        memcpy(in->node_name + (slash - rest) + 1, slash + 1, strlen(slash + 1) + 1);
        if (strcmp(in->node, last_node) != 0) {
            char *sk = xasprintf("%s%s", sprefix, in->node);
            json_t *sv = informer_get(ip->status, sk, NULL, NULL);
            last_online = sv != NULL;
            json_decref(sv);
            free(sk);
            snprintf(last_node, sizeof(last_node), "%s", in->node);
        }
        in->online = last_online;
        in->wants = needs_network(iobjs[i].val);
        if (cidr && ipam_parse_cidr(cidr, &a, &len) == 0) {
            in->has_ip = 1;
            in->ip = a;
            in->since = json_is_integer(since) ? json_integer_value(since) : 0;
            if (in->online)
                claims[nclaims++] = in;
            else
                mark(soft, &p, a);
        }
    }
    qsort(claims, nclaims, sizeof(*claims), cmp_claim);
    for (size_t i = 0; i < na; i++)
        mark(hard, &p, addrs[i].ip);

    /* Winners keep (or get back) their address key; later claims of it lose. */
    for (size_t i = 0; i < nclaims; i++) {
        struct inst *in = claims[i];
        struct addr *ad;
        char ips[16];

        ipam_format_ip(in->ip, ips, sizeof(ips));
        if (i > 0 && claims[i - 1]->ip == in->ip) {
            in->loser = 1;
            ctl_metric_add(ip->m_conflict, 1);
            log_warn("key=%s address=%s msg=\"address also claimed by an older instance: "
                     "this one gets a new address\"",
                     in->o->key, ips);
            continue;
        }
        mark(hard, &p, in->ip);
        ad = find_addr(addrs, na, in->ip);
        if (ad) {
            const char *owner = jstr(ad->o->val, "container"), *onode = jstr(ad->o->val, "node");
            ad->claimed = 1;
            if (owner && onode && !strcmp(owner, in->name) && !strcmp(onode, in->node))
                continue;
            {
                struct act *x = act_new(&acts, ACT_CLAIM);
                const char *at =
                    (owner && !strcmp(owner, in->name)) ? jstr(ad->o->val, "allocated_at") : NULL;
                act_cmp(x, ad->o->key, ETCD_CMP_MOD, ad->o->mod_rev);
                act_cmp(x, in->o->key, ETCD_CMP_MOD, in->o->mod_rev);
                act_write(x, ip->addrs, ad->o->key, address_value(&p, in->ip, in, at ? at : now));
                x->what = xasprintf("address %s passes from %s/%s to %s/%s", ips,
                                    onode ? onode : "?", owner ? owner : "?", in->node, in->name);
            }
        } else {
            char *akey = xasprintf("%s%s", aprefix, ips);
            struct act *x = act_new(&acts, ACT_CLAIM);
            act_cmp(x, akey, ETCD_CMP_CREATE, 0);
            act_cmp(x, in->o->key, ETCD_CMP_MOD, in->o->mod_rev);
            act_write(x, ip->addrs, akey, address_value(&p, in->ip, in, now));
            x->what = xasprintf("address %s restored to %s", ips, in->o->key);
            free(akey);
        }
    }

    /* Address keys no online instance claims: released. */
    for (size_t i = 0; i < na; i++) {
        struct act *x;
        if (addrs[i].claimed)
            continue;
        x = act_new(&acts, ACT_RELEASE);
        act_cmp(x, addrs[i].o->key, ETCD_CMP_MOD, addrs[i].o->mod_rev);
        act_write(x, ip->addrs, addrs[i].o->key, NULL);
        x->what = xasprintf("%s released (owner %s/%s gone or offline)", addrs[i].o->key,
                            jstr(addrs[i].o->val, "node") ? jstr(addrs[i].o->val, "node") : "?",
                            jstr(addrs[i].o->val, "container") ? jstr(addrs[i].o->val, "container")
                                                               : "?");
    }

    /* Online instances without an address (or that lost theirs): next fit. */
    cur = cursor_get(ip, grid, addrs, na, &p);
    for (size_t i = 0; i < ni; i++) {
        struct inst *in = &insts[i];
        json_t *nv;
        struct act *x;
        int64_t off;

        if (!in->o || !in->online || !in->wants || (in->has_ip && !in->loser))
            continue;
        off = full ? -1 : next_free(&p, hard, soft, &cur);
        nv = json_copy(in->o->val);
        json_object_del(nv, "overlay_cidr");
        json_object_del(nv, "overlay_since");
        if (off < 0) {
            char msg[160];
            full++;
            snprintf(msg, sizeof(msg), POOL_FULL_ERROR, grid, pool_text);
            if (!in->loser && jstr(in->o->val, "overlay_error") &&
                !strcmp(jstr(in->o->val, "overlay_error"), msg)) {
                json_decref(nv);
                continue;
            }
            json_object_set_new(nv, "overlay_error", json_string(msg));
            x = act_new(&acts, ACT_UNSET);
            act_cmp(x, in->o->key, ETCD_CMP_MOD, in->o->mod_rev);
            act_write(x, ip->insts, in->o->key, nv);
            x->what = xasprintf("%s waits: %s", in->o->key, msg);
            ctl_metric_add(ip->m_full, 1);
        } else {
            uint32_t a = p.lo + (uint32_t)off;
            char ips[16], cidr[24], *akey;
            ipam_format_ip(a, ips, sizeof(ips));
            snprintf(cidr, sizeof(cidr), "%s/%d", ips, p.len);
            bit_set(hard, (uint32_t)off);
            json_object_del(nv, "overlay_error");
            json_object_set_new(nv, "overlay_cidr", json_string(cidr));
            json_object_set_new(nv, "overlay_since", json_integer(time_now_us()));
            akey = xasprintf("%s%s", aprefix, ips);
            x = act_new(&acts, ACT_ALLOC);
            act_cmp(x, akey, ETCD_CMP_CREATE, 0);
            act_cmp(x, in->o->key, ETCD_CMP_MOD, in->o->mod_rev);
            act_write(x, ip->addrs, akey, address_value(&p, a, in, now));
            act_write(x, ip->insts, in->o->key, nv);
            x->what = xasprintf("%s gets %s", in->o->key, cidr);
            free(akey);
        }
    }
    cursor_set(ip, grid, cur);
    if (full)
        log_warn("grid=%s iprange=%s msg=\"address pool full: %zu instance(s) wait for an "
                 "address\"",
                 grid, pool_text, full);

    st = commit_all(ip, &acts, e);
    if (st == ST_OK && full) {
        /* Addresses released in this pass were kept back from it (next fit); with instances
         * waiting for one, take them in a pass of their own now rather than at the resync. */
        for (size_t i = 0; i < acts.n; i++)
            if (acts.v[i].kind == ACT_RELEASE) {
                wq_add(ip->q, grid);
                break;
            }
    }
    {
        char name[512];
        if (strspn(grid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
            strlen(grid)) {
            snprintf(name, sizeof(name), "kontena_ipam_addresses_allocated{grid=\"%s\"}", grid);
            ctl_metric_set(ctl_gauge(ip->c, name, "address keys of the grid's pool"),
                           (double)informer_count(ip->addrs, aprefix));
            snprintf(name, sizeof(name), "kontena_ipam_pool_size{grid=\"%s\"}", grid);
            ctl_metric_set(ctl_gauge(ip->c, name, "usable addresses of the grid's pool"),
                           (double)p.count);
        }
    }
out:
    acts_release(&acts);
    free(hard);
    free(soft);
    free(claims);
    free(insts);
    free(addrs);
    ctl_objs_free(iobjs, ni);
    ctl_objs_free(aobjs, na_objs);
    json_decref(pv);
    json_decref(gv);
    free(gkey);
    free(iprefix);
    free(sprefix);
    free(aprefix);
    return st;
}

/* --- wiring ---------------------------------------------------------------------------- */

static enum status setup(struct ctl *c, void *state, struct err *e)
{
    struct ipam *ip = state;

    (void)e;
    ip->c = c;
    ip->q = ctl_wq(c, "ipam", reconcile, ip, 0);
    ip->grids = ctl_informer(c, GRIDS_PREFIX, on_change, ip);
    ip->status = ctl_informer(c, NODE_STATUS_PREFIX, on_change, ip);
    ip->insts = ctl_informer(c, INSTANCES_PREFIX, on_change, ip);
    ip->addrs = ctl_informer(c, IPAM_PREFIX, on_change, ip);
    ip->m_alloc = ctl_counter(c, "kontena_ipam_allocations_total", "addresses allocated");
    ip->m_release = ctl_counter(c, "kontena_ipam_releases_total",
                                "address keys released (instance removed or node offline)");
    ip->m_full = ctl_counter(c, "kontena_ipam_pool_full_total",
                             "instances refused an address because the pool was full");
    ip->m_conflict = ctl_counter(c, "kontena_ipam_conflicts_total",
                                 "instances that lost their address to an older claim");
    ip->m_lost =
        ctl_counter(c, "kontena_ipam_lost_compares_total", "writes that lost a compare (retried)");
    return ST_OK;
}

static void resync(struct ctl *c, void *state)
{
    struct ipam *ip = state;
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(ip->grids, GRIDS_PREFIX, &objs);

    (void)c;
    for (size_t i = 0; i < n; i++) {
        char grid[256];
        if (grid_of(objs[i].key, GRIDS_PREFIX, grid, sizeof(grid)) == 0)
            wq_add(ip->q, grid);
    }
    ctl_objs_free(objs, n);
}

int main(int argc, char **argv)
{
    static struct ipam ip;
    static const struct ctl_opt opts[] = {
        {"pool-prefix-len", "KONTENA_IPAM_POOL_PREFIX_LEN", CTL_OPT_INT, &ip.range_len, "19",
         IPAM_MIN_RANGE_LEN, IPAM_MAX_RANGE_LEN,
         "container range of a new pool, /N (19: 8,190 addresses)"},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    static const struct ctl_def def = {
        .name = "ipam",
        .summary = "overlay addresses of service containers, one pool per grid",
        .http_port = 9302,
        .opts = opts,
        .setup = setup,
        .resync = resync,
    };
    int rc;

    pthread_mutex_init(&ip.mu, NULL);
    ip.cursors = json_object();
    rc = ctl_main(argc, argv, &def, &ip);
    json_decref(ip.cursors);
    pthread_mutex_destroy(&ip.mu);
    return rc;
}
