/* controllers/sched/sched_map.c -- the hash maps behind the snapshot's indexes (open
 * addressing, linear probing, load ≤ 1/2) and the random generator. */
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "controllers/sched/sched_int.h"

#include "common/banned.h"

uint64_t sched__hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t int_slot(int key, size_t cap)
{
    uint64_t h = (uint64_t)(unsigned)key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 32) & (cap - 1);
}

int *sched__imap_get(const struct sched__imap *m, int key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = int_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return &m->vals[i];
        if (m->keys[i] < 0)
            return NULL;
    }
}

static void imap_grow(struct sched__imap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 8;
    int *keys = xmalloc(cap * sizeof(*keys)), *vals = xcalloc(cap, sizeof(*vals));

    memset(keys, 0xff, cap * sizeof(*keys)); /* -1 */
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] < 0)
            continue;
        size_t j = int_slot(m->keys[i], cap);
        while (keys[j] >= 0)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
}

int *sched__imap_put(struct sched__imap *m, int key)
{
    int *v = sched__imap_get(m, key);
    size_t i;

    if (v)
        return v;
    if ((m->len + 1) * 2 > m->cap)
        imap_grow(m);
    for (i = int_slot(key, m->cap); m->keys[i] >= 0; i = (i + 1) & (m->cap - 1))
        ;
    m->keys[i] = key;
    m->vals[i] = 0;
    m->len++;
    return &m->vals[i];
}

void sched__imap_release(struct sched__imap *m)
{
    FREE_AND_NULL(m->keys);
    FREE_AND_NULL(m->vals);
    m->cap = m->len = 0;
}

int sched__intern_find(const struct sched__intern *t, const char *s)
{
    if (!t->cap)
        return -1;
    for (size_t i = sched__hash(s) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        int id = t->slots[i] - 1;
        if (id < 0)
            return -1;
        if (strcmp(t->names[id], s) == 0)
            return id;
    }
}

static void intern_grow(struct sched__intern *t)
{
    size_t cap = t->cap ? t->cap * 2 : 16;
    int *slots = xcalloc(cap, sizeof(*slots));

    for (size_t id = 0; id < t->n; id++) {
        size_t i = sched__hash(t->names[id]) & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = (int)id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

int sched__intern_add(struct sched__intern *t, const char *s)
{
    int id = sched__intern_find(t, s);
    size_t i;

    if (id >= 0)
        return id;
    if ((t->n + 1) * 2 > t->cap)
        intern_grow(t);
    if (t->n == t->alloc) {
        t->alloc = t->alloc ? t->alloc * 2 : 16;
        t->names = xrealloc(t->names, t->alloc * sizeof(*t->names));
    }
    t->names[t->n] = xstrdup(s);
    for (i = sched__hash(s) & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1))
        ;
    t->slots[i] = (int)t->n + 1;
    return (int)t->n++;
}

void sched__intern_release(struct sched__intern *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    FREE_AND_NULL(t->names);
    FREE_AND_NULL(t->slots);
    t->n = t->alloc = t->cap = 0;
}

uint64_t sched__rand(const struct sched_grid *g)
{
    uint64_t x = *g->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *g->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t sched__rand_below(const struct sched_grid *g, uint64_t n)
{
    /* The modulo bias over 2^64 is far below anything a placement could notice. */
    return sched__rand(g) % n;
}
