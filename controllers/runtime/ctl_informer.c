/* controllers/runtime/ctl_informer.c -- informers: a cache of one etcd prefix, kept by
 * list + watch on its own thread (docs/internals/controllers.md, "Informers").
 *
 * The cache is a skip list ordered by key (bytewise, as etcd orders keys), so a prefix
 * listing costs O(log n + k). Every entry carries the mod_revision of what it holds; an
 * entry with val == NULL is a tombstone: informer_forget() recorded a delete of ours that
 * the watch has not delivered yet. A listing or event is applied to a key only when it is
 * newer than what the entry holds, which is what keeps write-through safe from late events.
 * Tombstones are dropped once the informer's revision passes them (the watch has then
 * delivered the delete, or something newer).
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "common/banned.h"

#define MAXLEVEL 24
#define LIST_PAGE 2000

/* --- skip list --- */

struct centry {
    char *key;
    json_t *val; /* NULL: tombstone */
    int64_t mod_rev, create_rev;
    int level;
    struct centry *next[]; /* level pointers */
};

struct tomb {
    char *key;
    int64_t rev;
};

struct cache {
    struct centry *head;
    int level;
    uint32_t rnd;
    size_t live;
    struct tomb *tombs;
    size_t ntombs, tombs_alloc;
};

static struct cache *cache_new(void)
{
    struct cache *ca = xcalloc(1, sizeof(*ca));

    ca->head = xcalloc(1, sizeof(struct centry) + MAXLEVEL * sizeof(struct centry *));
    ca->head->level = MAXLEVEL;
    ca->level = 1;
    ca->rnd = 0x9e3779b9u;
    return ca;
}

static void cache_free(struct cache *ca)
{
    struct centry *e, *next;

    if (!ca)
        return;
    for (e = ca->head->next[0]; e; e = next) {
        next = e->next[0];
        json_decref(e->val);
        free(e->key);
        free(e);
    }
    for (size_t i = 0; i < ca->ntombs; i++)
        free(ca->tombs[i].key);
    free(ca->tombs);
    free(ca->head);
    free(ca);
}

/* The first entry >= key; update[] (may be NULL) gets the predecessors at each level. */
static struct centry *cache_seek(struct cache *ca, const char *key, struct centry **update)
{
    struct centry *x = ca->head;

    for (int i = ca->level - 1; i >= 0; i--) {
        while (x->next[i] && strcmp(x->next[i]->key, key) < 0)
            x = x->next[i];
        if (update)
            update[i] = x;
    }
    return x->next[0];
}

static struct centry *cache_find(struct cache *ca, const char *key)
{
    struct centry *e = cache_seek(ca, key, NULL);

    return e && strcmp(e->key, key) == 0 ? e : NULL;
}

static int random_level(struct cache *ca)
{
    int lvl = 1;

    /* xorshift32; a level per 4 entries (p = 1/4) */
    ca->rnd ^= ca->rnd << 13;
    ca->rnd ^= ca->rnd >> 17;
    ca->rnd ^= ca->rnd << 5;
    for (uint32_t r = ca->rnd; (r & 3) == 0 && lvl < MAXLEVEL; r >>= 2)
        lvl++;
    return lvl;
}

static struct centry *cache_insert(struct cache *ca, const char *key)
{
    struct centry *update[MAXLEVEL], *e;
    int lvl;

    cache_seek(ca, key, update);
    lvl = random_level(ca);
    if (lvl > ca->level) {
        for (int i = ca->level; i < lvl; i++)
            update[i] = ca->head;
        ca->level = lvl;
    }
    e = xcalloc(1, sizeof(*e) + (size_t)lvl * sizeof(struct centry *));
    e->key = xstrdup(key);
    e->level = lvl;
    for (int i = 0; i < lvl; i++) {
        e->next[i] = update[i]->next[i];
        update[i]->next[i] = e;
    }
    return e;
}

/* Unlink and free key's entry; its val is NOT released (the caller took it). */
static void cache_remove(struct cache *ca, const char *key)
{
    struct centry *update[MAXLEVEL], *e = cache_seek(ca, key, update);

    if (!e || strcmp(e->key, key) != 0)
        return;
    for (int i = 0; i < e->level; i++)
        if (update[i]->next[i] == e)
            update[i]->next[i] = e->next[i];
    while (ca->level > 1 && !ca->head->next[ca->level - 1])
        ca->level--;
    free(e->key);
    free(e);
}

static void tomb_add(struct cache *ca, const char *key, int64_t rev)
{
    if (ca->ntombs == ca->tombs_alloc) {
        ca->tombs_alloc = ca->tombs_alloc ? ca->tombs_alloc * 2 : 16;
        ca->tombs = xrealloc(ca->tombs, ca->tombs_alloc * sizeof(*ca->tombs));
    }
    ca->tombs[ca->ntombs].key = xstrdup(key);
    ca->tombs[ca->ntombs].rev = rev;
    ca->ntombs++;
}

/* Drop the tombstones the informer's revision has passed. */
static void tomb_sweep(struct cache *ca, int64_t rev)
{
    size_t j = 0;

    for (size_t i = 0; i < ca->ntombs; i++) {
        struct tomb *t = &ca->tombs[i];
        if (t->rev <= rev) {
            struct centry *e = cache_find(ca, t->key);
            if (e && !e->val && e->mod_rev == t->rev)
                cache_remove(ca, t->key);
            free(t->key);
        } else {
            ca->tombs[j++] = *t;
        }
    }
    ca->ntombs = j;
}

/* --- applying changes --- */

/* Set key to val (a reference the cache takes; NULL = deleted) at mod_rev, unless the
 * cache already holds something as new. Returns 1 if it changed; then *old gets the
 * previous value (a reference for the caller, may be NULL) and *cur a reference to val. */
static int apply(struct informer *inf, const char *key, json_t *val, int64_t mod_rev,
                 int64_t create_rev, int tombstone, json_t **old, json_t **cur)
{
    struct cache *ca;
    struct centry *e;

    *old = *cur = NULL;
    pthread_rwlock_wrlock(&inf->lock);
    ca = inf->cache;
    e = cache_find(ca, key);
    if (e && e->mod_rev >= mod_rev) {
        pthread_rwlock_unlock(&inf->lock);
        json_decref(val);
        return 0;
    }
    if (!e && !val && !tombstone) {
        pthread_rwlock_unlock(&inf->lock);
        return 0; /* delete of a key we never had */
    }
    if (e) {
        *old = e->val;
        if (e->val)
            ca->live--;
    }
    if (!val && !tombstone) {
        cache_remove(ca, key);
    } else {
        if (!e) {
            e = cache_insert(ca, key);
            e->create_rev = create_rev ? create_rev : mod_rev;
        } else if (!*old || create_rev) {
            e->create_rev = create_rev ? create_rev : mod_rev;
        }
        e->val = val;
        e->mod_rev = mod_rev;
        if (val) {
            ca->live++;
            *cur = json_incref(val);
        } else {
            tomb_add(ca, key, mod_rev);
        }
    }
    pthread_rwlock_unlock(&inf->lock);
    return *old || *cur;
}

static void deliver(struct informer *inf, const char *key, json_t *old, json_t *cur)
{
    if (inf->handler)
        inf->handler(inf->arg, key, old, cur);
    ctl_metric_add(inf->m_events, 1);
    json_decref(old);
    json_decref(cur);
}

static json_t *decode(const char *key, const char *value, size_t len)
{
    json_error_t je;
    json_t *v = json_loadb(value ? value : "", len, JSON_DECODE_ANY, &je);

    if (!v)
        log_warn("key=%s msg=\"value is not JSON, left out of the cache: %s\"", key, je.text);
    return v;
}

static void set_revision(struct informer *inf, int64_t rev)
{
    if (rev <= atomic_load(&inf->revision))
        return;
    atomic_store(&inf->revision, rev);
    pthread_rwlock_wrlock(&inf->lock);
    if (inf->cache->ntombs)
        tomb_sweep(inf->cache, rev);
    pthread_rwlock_unlock(&inf->lock);
}

/* 1 when the cache already holds key at mod_rev or later (our own write-through): the
 * event's value need not even be decoded. */
static int already_have(struct informer *inf, const char *key, int64_t mod_rev)
{
    struct centry *e;
    int have;

    pthread_rwlock_rdlock(&inf->lock);
    e = cache_find(inf->cache, key);
    have = e && e->mod_rev >= mod_rev;
    pthread_rwlock_unlock(&inf->lock);
    return have;
}

static void apply_event(struct informer *inf, const struct etcd_event *ev)
{
    json_t *val = NULL, *old, *cur;

    if (ev->type == ETCD_EVENT_PUT) {
        /* A controller decoding every key it wrote itself spent a third of its CPU here. */
        if (already_have(inf, ev->kv.key, ev->kv.mod_revision))
            return;
        val = decode(ev->kv.key, ev->kv.value, ev->kv.value_len);
    }
    /* an undecodable value counts as a delete: the key leaves the cache */
    if (apply(inf, ev->kv.key, val, ev->kv.mod_revision, ev->kv.create_revision, 0, &old,
              &cur))
        deliver(inf, ev->kv.key, old, cur);
}

/* --- list --- */

struct cached_key {
    char *key;
    int64_t mod_rev;
};

/* List the prefix (in pages, all at one revision) and make the cache match it, calling the
 * handler for every difference. *rev gets the listing's revision. */
static enum status relist(struct informer *inf, int64_t *rev, struct err *e)
{
    struct etcd *etcd = inf->c->etcd;
    char *end = etcd_prefix_end(inf->prefix), *from = xstrdup(inf->prefix);
    struct etcd_kv *kvs = NULL;
    size_t n = 0, alloc = 0, ncached = 0, i, j;
    struct cached_key *cached = NULL;
    int64_t at = 0;
    enum status st = ST_OK;

    for (;;) {
        struct etcd_range_opts o = {0};
        struct etcd_range_result r = {0};
        size_t skip = n ? 1 : 0; /* each page after the first starts with the last key */

        o.range_end = end;
        o.limit = LIST_PAGE;
        o.revision = at;
        st = etcd_range(etcd, from, &o, &r, e);
        if (st != ST_OK)
            goto out;
        if (!at)
            at = r.revision;
        if (n + r.n > alloc) {
            alloc = (n + r.n) * 2;
            kvs = xrealloc(kvs, alloc * sizeof(*kvs));
        }
        for (i = skip; i < r.n; i++) {
            kvs[n++] = r.kvs[i];
            memset(&r.kvs[i], 0, sizeof(r.kvs[i]));
        }
        if (r.more && r.n > skip) {
            free(from);
            from = xstrdup(kvs[n - 1].key);
        }
        int more = r.more && r.n > skip;
        etcd_range_result_release(&r);
        if (!more)
            break;
    }

    /* What the cache holds now (sorted): keys missing from the listing were deleted. */
    pthread_rwlock_rdlock(&inf->lock);
    cached = xcalloc(inf->cache->live + 1, sizeof(*cached));
    for (struct centry *c = cache_seek(inf->cache, inf->prefix, NULL);
         c && strncmp(c->key, inf->prefix, strlen(inf->prefix)) == 0; c = c->next[0])
        if (c->val && ncached <= inf->cache->live) {
            cached[ncached].key = xstrdup(c->key);
            cached[ncached++].mod_rev = c->mod_rev;
        }
    pthread_rwlock_unlock(&inf->lock);

    for (i = 0, j = 0; i < n || j < ncached;) {
        int cmp = i >= n ? 1 : j >= ncached ? -1 : strcmp(kvs[i].key, cached[j].key);
        json_t *old, *cur;
        if (cmp <= 0) {
            json_t *val = decode(kvs[i].key, kvs[i].value, kvs[i].value_len);
            if (apply(inf, kvs[i].key, val, val ? kvs[i].mod_revision : at,
                      kvs[i].create_revision, 0, &old, &cur))
                deliver(inf, kvs[i].key, old, cur);
            i++;
            if (cmp == 0)
                j++;
        } else {
            if (apply(inf, cached[j].key, NULL, at, 0, 0, &old, &cur))
                deliver(inf, cached[j].key, old, cur);
            j++;
        }
    }
    *rev = at;
    set_revision(inf, at);
out:
    for (i = 0; i < n; i++)
        etcd_kv_release(&kvs[i]);
    free(kvs);
    for (j = 0; j < ncached; j++)
        free(cached[j].key);
    free(cached);
    free(from);
    free(end);
    return st;
}

/* --- the thread --- */

/* Remember why the informer is not healthy: "<prefix><what>" ("" clears it). */
static void set_lasterr(struct informer *inf, const char *prefix, const char *what)
{
    pthread_mutex_lock(&inf->mu);
    snprintf(inf->lasterr, sizeof(inf->lasterr), "%s%s", prefix, what);
    pthread_mutex_unlock(&inf->mu);
}

static int watch_cb(void *arg, const struct etcd_watch_msg *m)
{
    struct informer *inf = arg;

    switch (m->kind) {
    case ETCD_WATCH_EVENTS:
        for (size_t i = 0; i < m->n_events; i++)
            apply_event(inf, &m->events[i]);
        if (m->n_events)
            set_revision(inf, m->events[m->n_events - 1].kv.mod_revision);
        break;
    case ETCD_WATCH_PROGRESS:
        set_revision(inf, m->revision);
        break;
    case ETCD_WATCH_CONNECTED:
        atomic_store(&inf->connected, 1);
        set_lasterr(inf, "", "");
        break;
    case ETCD_WATCH_DISCONNECTED:
        atomic_store(&inf->connected, 0);
        set_lasterr(inf, "etcd unreachable: ", m->error ? m->error : "stream dropped");
        ctl__etcd_error(inf->c, m->error ? m->error : "watch stream dropped");
        log_warn("prefix=%s msg=\"watch dropped, reconnecting: %s\"", inf->prefix,
                 m->error ? m->error : "no reason given");
        break;
    case ETCD_WATCH_COMPACTED:
        atomic_store(&inf->connected, 0);
        log_info("prefix=%s msg=\"watch revision compacted (oldest %lld): listing again\"",
                 inf->prefix, (long long)m->compact_revision);
        break;
    }
    return atomic_load(&inf->c->stopping) ? 1 : 0;
}

static void *informer_main(void *arg)
{
    struct informer *inf = arg;
    struct ctl *c = inf->c;
    int need_list = 1;
    int64_t next_rev = 0, backoff = 200;

    while (!atomic_load(&c->stopping)) {
        struct err e = ERR_INIT;
        struct etcd_watch_opts wo = {0};
        struct etcd_watch *w;
        enum status st;

        if (need_list) {
            int64_t rev = 0;
            if (relist(inf, &rev, &e) != ST_OK) {
                set_lasterr(inf, "etcd unreachable: ", e.msg);
                ctl__etcd_error(c, e.msg);
                log_warn("prefix=%s msg=\"cannot list: %s\"", inf->prefix, e.msg);
                if (ctl__sleep(c, backoff))
                    break;
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 200;
            need_list = 0;
            next_rev = rev + 1;
            if (!atomic_exchange(&inf->synced, 1)) {
                log_info("prefix=%s rev=%lld msg=\"synced\"", inf->prefix, (long long)rev);
                ctl__wake_queues(c);
            }
        }

        wo.key = inf->prefix;
        wo.range_end = ETCD_PREFIX;
        wo.start_revision = next_rev;
        wo.progress_notify = 1;
        w = etcd_watch_create(c->etcd, &wo, watch_cb, inf);
        pthread_mutex_lock(&inf->mu);
        if (inf->hold || atomic_load(&c->stopping)) {
            pthread_mutex_unlock(&inf->mu);
            st = ST_OK;
        } else {
            inf->watch = w;
            pthread_mutex_unlock(&inf->mu);
            st = etcd_watch_run(w, &e);
            pthread_mutex_lock(&inf->mu);
            inf->watch = NULL;
            pthread_mutex_unlock(&inf->mu);
            next_rev = etcd_watch_next_revision(w);
        }
        etcd_watch_destroy(w);
        atomic_store(&inf->connected, 0);

        if (st == ST_COMPACTED) {
            ctl_metric_add(inf->m_relists, 1);
            need_list = 1;
            continue;
        }
        if (atomic_load(&c->stopping))
            break;
        if (st == ST_OK) {
            /* stopped for the test hook: wait for the release */
            pthread_mutex_lock(&inf->mu);
            inf->holding = 1;
            pthread_cond_broadcast(&inf->hold_cond);
            while (inf->hold && !atomic_load(&c->stopping))
                pthread_cond_wait(&inf->hold_cond, &inf->mu);
            inf->holding = 0;
            pthread_mutex_unlock(&inf->mu);
            continue;
        }
        set_lasterr(inf, "etcd watch failed: ", e.msg);
        ctl__etcd_error(c, e.msg);
        log_warn("prefix=%s msg=\"watch failed, listing again: %s\"", inf->prefix, e.msg);
        need_list = 1;
        if (ctl__sleep(c, 1000))
            break;
    }
    return NULL;
}

/* --- runtime side --- */

struct informer *ctl_informer(struct ctl *c, const char *prefix, informer_handler h, void *arg)
{
    struct informer *inf = xcalloc(1, sizeof(*inf));
    char *s;

    BUG_ON(atomic_load(&c->setup_done));
    BUG_ON(!prefix || !*prefix || prefix[strlen(prefix) - 1] != '/');
    inf->c = c;
    inf->prefix = xstrdup(prefix);
    inf->handler = h;
    inf->arg = arg;
    pthread_rwlock_init(&inf->lock, NULL);
    pthread_mutex_init(&inf->mu, NULL);
    pthread_cond_init(&inf->hold_cond, NULL);
    inf->cache = cache_new();
    snprintf(inf->lasterr, sizeof(inf->lasterr), "informer %s not synced", prefix);
    s = xasprintf("kontena_informer_events_total{prefix=\"%s\"}", prefix);
    inf->m_events = ctl__metric(c, s, NULL, "cache changes delivered to handlers",
                                CTL_METRIC_COUNTER);
    free(s);
    s = xasprintf("kontena_informer_relists_total{prefix=\"%s\"}", prefix);
    inf->m_relists = ctl__metric(c, s, NULL, "listings again after a compacted watch",
                                 CTL_METRIC_COUNTER);
    free(s);
    c->infs = xrealloc(c->infs, (c->ninfs + 1) * sizeof(*c->infs));
    c->infs[c->ninfs++] = inf;
    return inf;
}

void informer__start(struct informer *inf)
{
    if (pthread_create(&inf->thread, NULL, informer_main, inf) != 0)
        BUG_ON("cannot create an informer thread");
    inf->started = 1;
}

void informer__stop(struct informer *inf)
{
    pthread_mutex_lock(&inf->mu);
    if (inf->watch)
        etcd_watch_stop(inf->watch);
    pthread_cond_broadcast(&inf->hold_cond);
    pthread_mutex_unlock(&inf->mu);
}

void informer__join(struct informer *inf)
{
    if (!inf->started)
        return;
    pthread_join(inf->thread, NULL);
    inf->started = 0;
}

void informer__free(struct informer *inf)
{
    if (!inf)
        return;
    cache_free(inf->cache);
    pthread_rwlock_destroy(&inf->lock);
    pthread_mutex_destroy(&inf->mu);
    pthread_cond_destroy(&inf->hold_cond);
    free(inf->prefix);
    free(inf);
}

int informer__healthy(struct informer *inf, char *why, size_t len)
{
    int ok;

    if (!atomic_load(&inf->synced)) {
        pthread_mutex_lock(&inf->mu);
        if (inf->lasterr[0] && strncmp(inf->lasterr, "informer", 8) != 0)
            snprintf(why, len, "informer %s not synced: %s", inf->prefix, inf->lasterr);
        else
            snprintf(why, len, "informer %s not synced", inf->prefix);
        pthread_mutex_unlock(&inf->mu);
        return 0;
    }
    ok = atomic_load(&inf->connected);
    if (!ok) {
        pthread_mutex_lock(&inf->mu);
        snprintf(why, len, "informer %s watch not connected%s%s", inf->prefix,
                 inf->lasterr[0] ? ": " : "", inf->lasterr);
        pthread_mutex_unlock(&inf->mu);
    }
    return ok;
}

void informer_hold_for_test(struct informer *inf, int hold)
{
    pthread_mutex_lock(&inf->mu);
    inf->hold = hold;
    if (hold) {
        if (inf->watch)
            etcd_watch_stop(inf->watch);
        while (!inf->holding && inf->started && !atomic_load(&inf->c->stopping))
            pthread_cond_wait(&inf->hold_cond, &inf->mu);
    } else {
        pthread_cond_broadcast(&inf->hold_cond);
    }
    pthread_mutex_unlock(&inf->mu);
}

/* --- public reads and write-through --- */

int informer_synced(struct informer *inf)
{
    return atomic_load(&inf->synced);
}

int64_t informer_revision(struct informer *inf)
{
    return atomic_load(&inf->revision);
}

json_t *informer_get(struct informer *inf, const char *key, int64_t *mod_rev,
                     int64_t *create_rev)
{
    struct centry *e;
    json_t *v = NULL;

    pthread_rwlock_rdlock(&inf->lock);
    e = cache_find(inf->cache, key);
    if (e && e->val) {
        v = json_incref(e->val);
        if (mod_rev)
            *mod_rev = e->mod_rev;
        if (create_rev)
            *create_rev = e->create_rev;
    }
    pthread_rwlock_unlock(&inf->lock);
    return v;
}

size_t informer_list(struct informer *inf, const char *prefix, struct ctl_obj **out)
{
    size_t n = 0, alloc = 16, plen = strlen(prefix);
    struct ctl_obj *objs = xmalloc(alloc * sizeof(*objs));

    pthread_rwlock_rdlock(&inf->lock);
    for (struct centry *e = cache_seek(inf->cache, prefix, NULL);
         e && strncmp(e->key, prefix, plen) == 0; e = e->next[0]) {
        if (!e->val)
            continue;
        if (n == alloc) {
            alloc *= 2;
            objs = xrealloc(objs, alloc * sizeof(*objs));
        }
        objs[n].key = xstrdup(e->key);
        objs[n].val = json_incref(e->val);
        objs[n].mod_rev = e->mod_rev;
        objs[n].create_rev = e->create_rev;
        n++;
    }
    pthread_rwlock_unlock(&inf->lock);
    *out = objs;
    return n;
}

size_t informer_count(struct informer *inf, const char *prefix)
{
    size_t n = 0, plen = strlen(prefix);

    pthread_rwlock_rdlock(&inf->lock);
    if (plen == 0) {
        n = inf->cache->live;
    } else {
        for (struct centry *e = cache_seek(inf->cache, prefix, NULL);
             e && strncmp(e->key, prefix, plen) == 0; e = e->next[0])
            n += e->val != NULL;
    }
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

void ctl_objs_free(struct ctl_obj *objs, size_t n)
{
    if (!objs)
        return;
    for (size_t i = 0; i < n; i++) {
        free(objs[i].key);
        json_decref(objs[i].val);
    }
    free(objs);
}

void informer_store(struct informer *inf, const char *key, const json_t *val, int64_t mod_rev)
{
    json_t *old, *cur;

    if (!val)
        return;
    apply(inf, key, json_incref((json_t *)val), mod_rev, 0, 0, &old, &cur);
    json_decref(old);
    json_decref(cur);
}

void informer_forget(struct informer *inf, const char *key, int64_t rev)
{
    json_t *old, *cur;
    /* A delete the watch has already passed needs no tombstone: nothing older can come. */
    int tomb = rev > atomic_load(&inf->revision);

    if (!tomb) {
        pthread_rwlock_rdlock(&inf->lock);
        struct centry *e = cache_find(inf->cache, key);
        int stale = e && e->mod_rev >= rev;
        pthread_rwlock_unlock(&inf->lock);
        if (stale || !e)
            return;
    }
    apply(inf, key, NULL, rev, 0, tomb, &old, &cur);
    json_decref(old);
    json_decref(cur);
}
