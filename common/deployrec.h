/* common/deployrec.h -- service deploy records (/kontena/deploys/<grid>/<id>), built the same
 * way by the API server (deploy, scale, stack deploy routes) and by kontena-rescheduler.
 *
 * A record starts in state `created`; kontena-scheduler moves it to ongoing, then success or
 * error (docs/architecture.md §2, docs/internals/rescheduler.md).
 */
#ifndef COMMON_DEPLOYREC_H
#define COMMON_DEPLOYREC_H

#include <jansson.h>

/* The reason of a record nobody has picked up yet. */
#define DEPLOY_REASON_WAITING "waiting for the scheduler"

/* A fresh id "<16-digit µs since the epoch>-<8 hex>": ids sort by creation time. */
char *deploy_new_id(void);

/* A service deploy record in state created for svc (borrowed, stored form: grid, stack,
 * name, id, instances, revision) at svc's current revision, created and queued at now
 * (ISO-8601); stack_deploy_id may be NULL. Fresh object; its reason is
 * DEPLOY_REASON_WAITING (callers may replace it). */
json_t *deploy_record_new(const json_t *svc, const char *stack_deploy_id, int force,
                          const char *now);

#endif
