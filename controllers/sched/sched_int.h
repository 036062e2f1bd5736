/* controllers/sched/sched_int.h -- internals shared by the files of the scheduling library:
 * the small hash maps behind the per-node indexes, the random generator, and the grid
 * snapshot's layout. Not part of the interface (sched.h is).
 */
#ifndef CONTROLLERS_SCHED_SCHED_INT_H
#define CONTROLLERS_SCHED_SCHED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "controllers/sched/sched.h"

/* int → int map, open addressing, keys ≥ 0. Zero-initialised is an empty map. */
struct sched__imap {
    int *keys; /* -1 = empty slot */
    int *vals;
    size_t cap; /* power of two or 0 */
    size_t len;
};
int *sched__imap_get(const struct sched__imap *m, int key); /* NULL when absent */
int *sched__imap_put(struct sched__imap *m, int key);       /* slot, 0 when new */
void sched__imap_release(struct sched__imap *m);

/* Interned strings: string → dense id 0, 1, 2 ... (ids never change; names owned). */
struct sched__intern {
    char **names; /* names[id] */
    size_t n, alloc;
    int *slots; /* id + 1, 0 = empty */
    size_t cap;
};
int sched__intern_find(const struct sched__intern *t, const char *s); /* -1 when absent */
int sched__intern_add(struct sched__intern *t, const char *s);        /* existing or new id */
void sched__intern_release(struct sched__intern *t);

uint64_t sched__hash(const char *s);

/* One port a node's instances publish: which services publish it there and how often. */
struct sched__port_use {
    int service; /* interned service id */
    int count;
    int next; /* index into grid->port_uses, -1 = end */
};

struct sched__node {
    char *name;
    int node_number;
    int candidate;
    int drain;
    int ephemeral;
    int zone; /* interned in grid->zones */
    double cpus;
    int64_t mem_total;
    char **labels;
    size_t n_labels;
    char **drivers; /* "name" and, with a version, also "name:version" */
    size_t n_drivers;
    struct sched__imap ports;      /* node_port → head index + 1 in grid->port_uses */
    struct sched__imap services;   /* service id → assigned instances of it here */
    struct sched__imap containers; /* container id → count */
};

/* An assigned instance, kept per service. */
struct sched__inst {
    int number;
    int node; /* node index, -1 when its node is not in the snapshot (orphan) */
};

struct sched__svc_insts {
    struct sched__inst *v;
    size_t n, alloc;
};

struct sched_grid {
    struct sched__node *nodes;
    size_t n_nodes, alloc_nodes;
    struct sched__intern node_names;
    struct sched__intern zones;
    struct sched__intern services;   /* "grid/stack/name" */
    struct sched__intern containers; /* container names */
    struct sched__svc_insts *insts;  /* per service id */
    size_t alloc_insts;
    struct sched__port_use *port_uses;
    size_t n_port_uses, alloc_port_uses;
    /* The random state lives behind a pointer so that planning over a const grid can still
     * draw numbers: one thread at a time uses a snapshot (sched.h). */
    uint64_t *rng;
};

uint64_t sched__rand(const struct sched_grid *g);                   /* xorshift64* */
uint64_t sched__rand_below(const struct sched_grid *g, uint64_t n); /* 0..n-1, n > 0 */

#endif
