/* controllers/sched/sched.h -- where service instances go: candidate nodes, filters,
 * affinity, strategies and the instance count of reference/scheduling.md §3–§7, and the
 * placement-mismatch check of §9.
 *
 * Pure computation: no etcd, no clock, no threads. The caller (kontena-scheduler,
 * kontena-rescheduler) builds a `struct sched_grid` snapshot from its caches, marks which
 * nodes are candidates (online for a real deploy; online or within the grace period for the
 * rescheduler's simulation), and asks for a plan. A grid snapshot is used by one thread at a
 * time; build one per reconcile (building is O(nodes + instances)).
 *
 * Cost: selecting one instance is O(candidates × rules) with no sort (the ha strategy keeps
 * running zone and node counters and picks the minimum with a random tie-break), so a plan
 * of N instances over M nodes is O(N × M). Port, service and container lookups per node go
 * through indexes built once per snapshot.
 */
#ifndef CONTROLLERS_SCHED_SCHED_H
#define CONTROLLERS_SCHED_SCHED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SCHED_REASON_LEN 512

enum sched_strategy { SCHED_HA, SCHED_DAEMON, SCHED_RANDOM };

/* A service as the scheduler sees it, from its stored JSON (architecture.md §2). */
struct sched_service {
    char *id;    /* "grid/stack/name" */
    char *grid;
    char *stack; /* "null" for stack-less services */
    char *name;
    enum sched_strategy strategy;
    int instances; /* container_count (daemon: per node) */
    int stateful;
    char **affinity; /* the service's affinity, or the grid's default_affinity when empty */
    size_t n_affinity;
    int *node_ports; /* published node ports */
    size_t n_node_ports;
    double cpus;       /* 0 = unset */
    int64_t memory;    /* bytes, 0 = unset */
    int64_t memory_swap;
    char **volume_drivers; /* drivers the service's named volumes need (none: filter off) */
    size_t n_volume_drivers;
    char **volumes_from;   /* raw, "%s" formatted with the instance number when used */
    size_t n_volumes_from;
    char *net_container;   /* from net "container:<name>", else NULL */
    double min_health;     /* deploy_opts.min_health, default 0.8 */
};

/* Fill s from a stored service (borrowed); grid (borrowed, may be NULL) gives
 * default_affinity. ST_INVALID with a message for a service that cannot be scheduled as
 * stored (unknown strategy, bad affinity...). Release with sched_service_release. */
enum status sched_service_from_json(struct sched_service *s, const json_t *svc,
                                    const json_t *grid, struct err *e);
void sched_service_release(struct sched_service *s);

/* Check one affinity rule as it reads for instance n (after "%s" → n): ST_OK, or
 * ST_INVALID with the original's words, "Invalid affinity filter: <rule>" (no == or !=),
 * "Unknown affinity filter: <key>", or specparse's reason (empty value, bad regex). */
enum status sched_affinity_check(const char *rule, int instance_number, struct err *e);

/* The container name of instance n: "<stack>.<name>-<n>", "<name>-<n>" for stack "null". */
char *sched_container_name(const char *stack, const char *name, int n); /* fresh */

struct sched_grid;

/* A node as stored (/kontena/nodes/<grid>/<name>, borrowed JSON). candidate: may take
 * instances in this plan. Labels give zone (az=…, default "default"), region and ephemeral.
 * Returns the node's index. */
int sched_grid_add_node(struct sched_grid *g, const json_t *node, int candidate);
/* An assigned instance (any service of the grid): on node `node` (a name that need not be a
 * node of the snapshot: an orphan of a removed node), service id, number, container name
 * and the node ports its service publishes. */
void sched_grid_add_instance(struct sched_grid *g, const char *node, const char *service_id,
                             int instance_number, const char *container, const int *node_ports,
                             size_t n_node_ports);

/* Add nodes before the instances on them: an instance whose node is not (yet) in the
 * snapshot counts as an orphan. A node JSON without a name is skipped (-1); a second node
 * of the same name returns the first one's index. Node JSON read: name, node_number,
 * availability, labels, cpus, mem_total, volume_drivers ([{name, version}] or names;
 * absent = ["local"]). */
struct sched_grid *sched_grid_new(uint64_t seed); /* seed: the random choices (ha ties, random) */
void sched_grid_free(struct sched_grid *g);        /* NULL fine */
size_t sched_grid_node_count(const struct sched_grid *g);
const char *sched_grid_node_name(const struct sched_grid *g, int idx); /* NULL if out of range */
int sched_grid_node_index(const struct sched_grid *g, const char *name); /* -1 when absent */
int sched_grid_node_candidate(const struct sched_grid *g, int idx);      /* 1 when it is */

/* A plan: N and the node chosen for each instance 1..N. */
struct sched_plan {
    int n;              /* instance count (§7) */
    int *node;          /* node[i] = node index for instance i + 1; -1 = could not be placed */
    int failed;         /* first instance number that could not be placed, 0 = none */
    char reason[SCHED_REASON_LEN]; /* why `failed` could not be placed, in the original's
                                    * words: "There are no nodes available", "Did not find any
                                    * nodes for affinity filter: label==az=x", ... */
};
void sched_plan_release(struct sched_plan *p);

/* Plan service s over the candidates of g, instances 1..N in order with one pass of per-pass
 * counters (§6), the current placement of s being the instances of s added to g. Instances
 * that cannot be placed get -1 and the plan goes on with the next one (the caller decides
 * whether that fails the deploy: the scheduler does, as the original). ST_OK unless s is
 * unusable (ST_INVALID: bad affinity, over 1,000,000 instances).
 * Within the pass, instances already placed count where they were placed (port conflicts
 * with siblings, service affinity to itself, daemon ranks) and instances above N count
 * nowhere (they are deleted first).
 * No candidate at all (and instances > 0): every instance -1, failed = 1 and reason "There
 * are no nodes available", even when N is 0 (a daemon), so an empty grid never reads as
 * "scale to 0": check failed before deleting instances above N.
 * A daemon whose filters leave no node has N = 0 and failed = 0 (its instances go, as in
 * the original); reason then says why no node took it. */
enum status sched_plan(const struct sched_grid *g, const struct sched_service *s,
                       struct sched_plan *out, struct err *e);

/* §9: 1 when the current placement of s differs from what a plan over the candidates would
 * do (count differs, or the set of nodes differs); why gets a sentence for the event log.
 * 0 when no node is a candidate (never reschedule into an empty grid). */
int sched_mismatch(const struct sched_grid *g, const struct sched_service *s, char *why,
                   size_t why_len);

#endif
