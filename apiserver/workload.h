/* apiserver/workload.h -- what stacks.c, services.c and deploys.c share: link resolution,
 * deploy records, derived states and the transaction plumbing.
 *
 * Keys and values are described in docs/architecture.md §2. Every write below goes into an
 * etcd transaction built by the caller, which compares the mod_revision of every key it
 * read and decided on (or create_revision == 0 for a key it creates) and starts over when
 * the compare is lost (WL_TXN_ATTEMPTS times, then 409).
 */
#ifndef APISERVER_WORKLOAD_H
#define APISERVER_WORKLOAD_H

#include <jansson.h>
#include <stdint.h>

#include "apiserver/api.h"
#include "common/deployrec.h"
#include "common/err.h"

struct etcd_txn;

#define WL_TXN_ATTEMPTS 8
/* etcd refuses transactions of more than 128 operations per branch (--max-txn-ops): a stack
 * deploy writes 2 per service plus 2. */
#define WL_MAX_STACK_SERVICES 50
#define WL_DEPLOY_WAITING DEPLOY_REASON_WAITING

/* --- links (services.c) ----------------------------------------------------------------- */

/* Resolve the links of spec (borrowed, edited in place) from [{name, alias}] to
 * [{id: "grid/stack/svc", alias, name: svc}]. stack is the service's own stack ("null" for
 * stack-less). stack_names (may be NULL): the names of the services being written together
 * with this one (a stack install/upgrade); a link to the own stack must name one of them.
 * Without it, every target must exist as a service key. Targets in other stacks (or read
 * from etcd) are appended to cmps as {key, rev}, to compare in the transaction.
 * A bad link is a user error: ST_OK with *msg set (fresh); store errors are returned. */
enum status links_resolve(struct api *a, const char *grid, const char *stack, json_t *spec,
                          const json_t *stack_names, json_t *cmps, char **msg,
                          struct err *e) WARN_UNUSED_RESULT;
/* Links that point at service id (e.g. "g/s/redis") from services of the grid, other than
 * those of the stack `except_stack` (may be NULL): "stack/svc, ..." (fresh) or NULL. */
char *links_from_others(const json_t *grid_services, const char *id, const char *except_stack);

/* Add a "mod_revision(key) == rev" compare for each {key, rev} of cmps. */
void txn_add_cmps(struct etcd_txn *t, const json_t *cmps);
/* Put obj at key in the THEN branch. */
void txn_put_json(struct etcd_txn *t, const char *key, const json_t *obj);

/* {"stack/svc": {total, running, healthy, unhealthy}} (fresh): total counts the service's
 * instance keys (/kontena/instances/<grid>/<node>/<container>), the others the observed keys
 * of those instances (/kontena/observed/<grid>/<node>/<container>) by state and health
 * status. Two range reads per grid, whatever the number of services. */
enum status instance_counts(struct api *a, const char *grid, json_t **out,
                            struct err *e) WARN_UNUSED_RESULT;
/* Service JSON views of svcs (array of stored services) with counts and the grid's
 * default affinity; fresh array. */
json_t *service_views(const json_t *svcs, const json_t *grid, const json_t *counts);

/* Service state changes shared with the stack routes. */
void service_touch(json_t *svc, const char *now); /* updated_at = now */

/* --- deploys (deploys.c) ---------------------------------------------------------------- */

/* deploy_new_id() and deploy_record_new() are in common/deployrec.h (the rescheduler
 * builds the same records). */
/* The deploy JSON of master-api §4.5 (fresh). */
json_t *deploy_view(const json_t *rec);
/* State of a stack deploy from its service deploy records (array). */
const char *stack_deploy_state(const json_t *recs);
/* Read the latest deploy record of each service of svcs (by their deploy_id) and tell
 * whether one of them is created or ongoing. */
/* Reply 200 with the stack deploy JSON of a stored stack deploy record (reads its service
 * deploys), or the store error. */
enum status stack_deploy_reply(struct req *r, const json_t *sd);
enum status services_deploying(struct api *a, const char *grid, const json_t *svcs,
                               int *deploying, struct err *e) WARN_UNUSED_RESULT;

#endif
