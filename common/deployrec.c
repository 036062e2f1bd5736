/* common/deployrec.c -- service deploy records shared by the API server and the
 * rescheduler (common/deployrec.h). */
#include <stdio.h>
#include <stdlib.h>

#include "common/crypto.h"
#include "common/deployrec.h"
#include "common/err.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"

#include "common/banned.h"

char *deploy_new_id(void)
{
    char *rnd = crypto_random_hex(4);
    char *id = xasprintf("%016lld-%s", (long long)time_now_us(), rnd);
    free(rnd);
    return id;
}

json_t *deploy_record_new(const json_t *svc, const char *stack_deploy_id, int force,
                          const char *now)
{
    char *id = deploy_new_id();
    json_t *rec = json_pack(
        "{s:s,s:O,s:O,s:O,s:O,s:s,s:s,s:n,s:n,s:s,s:s,s:O,s:O,s:b,s:[]}", "id", id, "grid",
        json_object_get(svc, "grid"), "stack", json_object_get(svc, "stack"), "service",
        json_object_get(svc, "name"), "service_id", json_object_get(svc, "id"), "created_at", now,
        "queued_at", now, "started_at", "finished_at", "state", "created", "reason",
        DEPLOY_REASON_WAITING, "instance_count", json_object_get(svc, "instances"),
        "service_revision", json_object_get(svc, "revision"), "force", force, "instance_deploys");

    BUG_ON(!rec);
    json_object_set_new(rec, "stack_deploy_id",
                        stack_deploy_id ? json_string(stack_deploy_id) : json_null());
    free(id);
    return rec;
}
