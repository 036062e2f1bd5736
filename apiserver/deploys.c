/* apiserver/deploys.c -- service and stack deploy records.
 *
 * The API server only creates records (state `created`, reason "waiting for the scheduler");
 * the scheduler (issue 5) moves them on. A stack deploy record only lists its service
 * deploys: its state is derived from theirs whenever it is read, so nothing has to keep it
 * up to date.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "apiserver/validate.h"
#include "apiserver/workload.h"
#include "common/xmalloc.h"
#include "common/banned.h"

json_t *deploy_view(const json_t *rec)
{
    static const char *const fields[] = {
        "id",         "created_at", "queued_at",      "started_at",       "finished_at",
        "service_id", "state",      "reason",         "instance_count",   "instance_deploys",
        "stack_deploy_id", "service_revision",
    };
    json_t *v = json_object();

    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *x = json_object_get(rec, fields[i]);
        json_object_set_new(v, fields[i], x ? json_deep_copy(x) : json_null());
    }
    return v;
}

const char *stack_deploy_state(const json_t *recs)
{
    size_t i, n = json_array_size(recs), created = 0, success = 0, error = 0;
    json_t *x;

    json_array_foreach(recs, i, x)
    {
        const char *st = jstr(x, "state");
        if (!st || strcmp(st, "created") == 0)
            created++;
        else if (strcmp(st, "success") == 0)
            success++;
        else if (strcmp(st, "error") == 0)
            error++;
    }
    if (created == n && n > 0)
        return "created";
    if (success == n)
        return "success";
    if (error > 0 && error + success == n)
        return "error";
    return "ongoing";
}

enum status services_deploying(struct api *a, const char *grid, const json_t *svcs,
                               int *deploying, struct err *e)
{
    size_t i;
    json_t *s;

    *deploying = 0;
    json_array_foreach(svcs, i, s)
    {
        const char *id = jstr(s, "deploy_id"), *st;
        json_t *rec = NULL;
        char *key;
        enum status rc;

        if (!id)
            continue;
        key = key_deploy(grid, id);
        rc = store_get(a->etcd, key, &rec, NULL, e);
        free(key);
        if (rc == ST_NOTFOUND)
            continue;
        if (rc != ST_OK)
            return rc;
        st = jstr(rec, "state");
        if (st && (strcmp(st, "created") == 0 || strcmp(st, "ongoing") == 0))
            *deploying = 1;
        json_decref(rec);
        if (*deploying)
            break;
    }
    return ST_OK;
}

/* --- handlers ---------------------------------------------------------------------------- */

static void h_service_deploy_show(struct req *r, char **params)
{
    const char *grid = params[0], *stack = params[1], *svc = params[2], *id = params[3];
    json_t *g = grid_load(r, grid, NULL), *rec = NULL;
    char *key;
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    json_decref(g);
    key = key_deploy(grid, id);
    st = store_get(r->api->etcd, key, &rec, NULL, &e);
    free(key);
    if (st == ST_OK && (!jstr(rec, "stack") || strcmp(jstr(rec, "stack"), stack) != 0 ||
                        !jstr(rec, "service") || strcmp(jstr(rec, "service"), svc) != 0))
        st = ST_NOTFOUND;
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Deploy not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, deploy_view(rec));
    json_decref(rec);
}

/* The stack deploy JSON of a stored stack deploy record: reads its service deploys. */
static enum status stack_deploy_view(struct api *a, const json_t *sd, json_t **out,
                                     struct err *e)
{
    json_t *recs = json_array(), *views = json_array(), *x;
    const char *grid = jstr(sd, "grid");
    size_t i;

    json_array_foreach(json_object_get(sd, "service_deploys"), i, x)
    {
        json_t *rec = NULL;
        char *key;
        enum status st;
        if (!json_is_string(x) || !grid)
            continue;
        key = key_deploy(grid, json_string_value(x));
        st = store_get(a->etcd, key, &rec, NULL, e);
        free(key);
        if (st == ST_NOTFOUND)
            continue; /* removed with its service */
        if (st != ST_OK) {
            json_decref(recs);
            json_decref(views);
            return st;
        }
        json_array_append_new(views, deploy_view(rec));
        json_array_append_new(recs, rec);
    }
    *out = json_pack("{s:O?,s:O?,s:O?,s:O?,s:s,s:o}", "id", json_object_get(sd, "id"),
                     "stack_id", json_object_get(sd, "stack_id"), "created_at",
                     json_object_get(sd, "created_at"), "stack_revision",
                     json_object_get(sd, "stack_revision"), "state", stack_deploy_state(recs),
                     "service_deploys", views);
    json_decref(recs);
    return ST_OK;
}

enum status stack_deploy_reply(struct req *r, const json_t *sd)
{
    json_t *v = NULL;
    struct err e = ERR_INIT;
    enum status st = stack_deploy_view(r->api, sd, &v, &e);

    if (st != ST_OK)
        reply_status(r, st, &e);
    else
        reply_json(r, 200, v);
    return st;
}

static void h_stack_deploy_show(struct req *r, char **params)
{
    const char *grid = params[0], *stack = params[1], *id = params[2];
    json_t *g = grid_load(r, grid, NULL), *sd = NULL;
    char *key;
    struct err e = ERR_INIT;
    enum status st;

    if (!g)
        return;
    json_decref(g);
    key = key_stack_deploy(grid, id);
    st = store_get(r->api->etcd, key, &sd, NULL, &e);
    free(key);
    if (st == ST_OK && (!jstr(sd, "stack") || strcmp(jstr(sd, "stack"), stack) != 0))
        st = ST_NOTFOUND;
    if (st == ST_NOTFOUND)
        reply_error(r, 404, "Deploy not found");
    else if (st != ST_OK)
        reply_status(r, st, &e);
    else
        (void)stack_deploy_reply(r, sd);
    json_decref(sd);
}

const struct route deploy_routes[] = {
    {"GET", "/v1/stacks/:grid/:stack/deploys/:id", AUTH_TOKEN, h_stack_deploy_show, NULL, NULL},
    {"GET", "/v1/services/:grid/:stack/:service/deploys/:id", AUTH_TOKEN, h_service_deploy_show,
     NULL, NULL},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};
