/* controllers/health.c -- kontena-health: restarts instances their agent reports unhealthy.
 *
 * Agents run the health checks (agent/probe.c) and write the result into the observed key
 * (/kontena/observed/<grid>/<node>/<container>: health {status, failures, checked_at},
 * started_at, health_restarts applied). This controller reconciles the matching instance key
 * (/kontena/instances/<grid>/<node>/<container>): when the current container's consecutive
 * failures reach --threshold it bumps `health_restarts` (the agent restarts the container
 * when that number differs from the one it applied) and stamps `health_restarted_at`.
 *
 * One restart per failure run: a restart is asked for only when the observed container was
 * started after the last request (started_at > health_restarted_at) and the agent has
 * applied every earlier request (observed health_restarts == instance health_restarts).
 * docs/internals/health.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl.h"
#include "etcdclient/etcd.h"

#include "common/banned.h"

#define P_INSTANCES "/kontena/instances/"
#define P_OBSERVED "/kontena/observed/"

struct health {
    struct ctl *ctl;
    struct wq *wq;
    struct informer *instances, *observed;
    struct ctl_metric *restarts;
    int64_t threshold;
};

static struct health the_health;

/* Both prefixes are followed by "<grid>/<node>/<container>": the queue holds that part. */
static void on_change(void *arg, const char *key, const json_t *o, const json_t *n)
{
    struct health *h = arg;
    const char *rest = NULL;

    (void)o;
    (void)n;
    if (strncmp(key, P_INSTANCES, strlen(P_INSTANCES)) == 0)
        rest = key + strlen(P_INSTANCES);
    else if (strncmp(key, P_OBSERVED, strlen(P_OBSERVED)) == 0)
        rest = key + strlen(P_OBSERVED);
    if (rest && *rest)
        wq_add(h->wq, rest);
}

/* Why obs/inst need no restart now, or NULL when they do. */
static const char *no_restart(const struct health *h, const json_t *inst, const json_t *obs)
{
    const json_t *hl = json_object_get(obs, "health");
    const char *status = jstr(hl, "status"), *state = jstr(obs, "state");
    json_int_t wanted = json_integer_value(json_object_get(inst, "health_restarts"));
    const json_t *applied = json_object_get(obs, "health_restarts");
    int64_t started, asked;

    if (!status || strcmp(status, "unhealthy") != 0)
        return "healthy or not checked";
    if (json_integer_value(json_object_get(hl, "failures")) < h->threshold)
        return "below the failure threshold";
    if (!state || strcmp(state, "running") != 0)
        return "container not running";
    if (json_is_integer(applied) && json_integer_value(applied) < wanted)
        return "earlier restart not applied yet";
    asked = jstr(inst, "health_restarted_at")
                ? time_iso8601_parse(jstr(inst, "health_restarted_at"))
                : -1;
    started = jstr(obs, "started_at") ? time_iso8601_parse(jstr(obs, "started_at")) : -1;
    if (asked >= 0 && started <= asked)
        return "this container run was restarted already";
    return NULL;
}

static enum status reconcile(void *arg, const char *rest, struct err *e)
{
    struct health *h = arg;
    char *ikey = xasprintf(P_INSTANCES "%s", rest), *okey = xasprintf(P_OBSERVED "%s", rest);
    int64_t mod_rev = 0;
    json_t *inst = informer_get(h->instances, ikey, &mod_rev, NULL);
    json_t *obs = informer_get(h->observed, okey, NULL, NULL), *next = NULL;
    struct etcd_txn *t = NULL;
    struct etcd_txn_result res = {0};
    enum status st = ST_OK;
    char now[40], *val = NULL;
    json_int_t count;

    if (!json_is_object(inst) || !json_is_object(obs) || no_restart(h, inst, obs))
        goto out;
    time_iso8601_now(now, sizeof(now));
    next = json_deep_copy(inst);
    count = json_integer_value(json_object_get(inst, "health_restarts")) + 1;
    json_object_set_new(next, "health_restarts", json_integer(count));
    json_object_set_new(next, "health_restarted_at", json_string(now));
    val = json_dumps(next, JSON_COMPACT);
    BUG_ON(!val);
    t = etcd_txn_new();
    etcd_txn_cmp(t, ikey, ETCD_CMP_MOD, ETCD_CMP_EQUAL, mod_rev);
    ctl_txn_fence(h->ctl, t);
    etcd_txn_put(t, ETCD_THEN, ikey, val, strlen(val), 0);
    st = etcd_txn_commit(ctl_etcd(h->ctl), t, &res, e);
    if (st == ST_OK && !res.succeeded) {
        st = err_set(e, ST_CONFLICT,
                     "instance '%s' changed (or leadership lost) before its "
                     "restart could be written",
                     ikey);
    } else if (st == ST_OK) {
        informer_store(h->instances, ikey, next, res.revision);
        ctl_metric_add(h->restarts, 1);
        log_warn("key=%s rev=%lld msg=\"restarting %s because it's reported as unhealthy "
                 "(%lld consecutive failures), restart %lld\"",
                 ikey, (long long)res.revision, rest,
                 (long long)json_integer_value(
                     json_object_get(json_object_get(obs, "health"), "failures")),
                 (long long)count);
    }
out:
    etcd_txn_result_release(&res);
    etcd_txn_free(t);
    free(val);
    json_decref(next);
    json_decref(inst);
    json_decref(obs);
    free(ikey);
    free(okey);
    return st;
}

static enum status setup(struct ctl *c, void *arg, struct err *e)
{
    struct health *h = arg;

    (void)e;
    h->ctl = c;
    h->wq = ctl_wq(c, "health", reconcile, h, 0);
    h->instances = ctl_informer(c, P_INSTANCES, on_change, h);
    h->observed = ctl_informer(c, P_OBSERVED, on_change, h);
    h->restarts = ctl_counter(c, "kontena_health_restarts_total",
                              "container restarts asked for because of failed health checks");
    return ST_OK;
}

static void resync(struct ctl *c, void *arg)
{
    struct health *h = arg;
    struct ctl_obj *objs = NULL;
    size_t n = informer_list(h->observed, P_OBSERVED, &objs);

    (void)c;
    for (size_t i = 0; i < n; i++)
        wq_add(h->wq, objs[i].key + strlen(P_OBSERVED));
    ctl_objs_free(objs, n);
}

static const struct ctl_opt opts[] = {
    {"threshold", "KONTENA_HEALTH_THRESHOLD", CTL_OPT_INT, &the_health.threshold, "1", 1, 1000,
     "consecutive failed health checks before a container is restarted"},
    {NULL, NULL, CTL_OPT_FLAG, NULL, NULL, 0, 0, NULL},
};

static const struct ctl_def def = {
    .name = "health",
    .summary = "restarts containers whose health checks fail",
    .http_port = 9304,
    .opts = opts,
    .setup = setup,
    .resync = resync,
};

int main(int argc, char **argv)
{
    return ctl_main(argc, argv, &def, &the_health);
}
