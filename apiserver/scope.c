/* apiserver/scope.c -- the grid / stack / service / node of a log or stats route (see
 * scope.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/scope.h"
#include "apiserver/store.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* Key `key` exists: 1; else 0 after answering 404 "<what> not found" or the store's error.
 * Takes key. */
static int must_exist(struct req *r, char *key, const char *what)
{
    json_t *o = NULL;
    struct err e = ERR_INIT;
    enum status st = store_get(r->api->etcd, key, &o, NULL, &e);

    json_decref(o);
    free(key);
    if (st == ST_NOTFOUND) {
        reply_error(r, 404, "%s not found", what);
        return 0;
    }
    if (st != ST_OK) {
        reply_status(r, st, &e);
        return 0;
    }
    return 1;
}

int scope_parse(struct req *r, enum scope_kind kind, char **params, struct scope *s)
{
    json_t *g;
    char what[200];

    memset(s, 0, sizeof(*s));
    s->grid = params[0];
    switch (kind) {
    case SCOPE_GRID:
        break;
    case SCOPE_STACK:
        s->stack = params[1];
        break;
    case SCOPE_SERVICE:
        s->stack = params[1];
        s->service = params[2];
        break;
    case SCOPE_NODE:
        s->node = params[1];
        s->container = params[2];
        break;
    }
    g = grid_load(r, s->grid, NULL);
    if (!g)
        return 0;
    json_decref(g);
    switch (kind) {
    case SCOPE_GRID:
        return 1;
    case SCOPE_STACK:
        return !strcmp(s->stack, "null") ||
               must_exist(r, xasprintf(KEY_STACKS "%s/%s", s->grid, s->stack), "Stack");
    case SCOPE_SERVICE:
        return must_exist(r, xasprintf(KEY_SERVICES "%s/%s/%s", s->grid, s->stack, s->service),
                          "Service");
    case SCOPE_NODE:
        if (!node_name_valid(s->node)) {
            reply_error(r, 404, "Node %s not found", s->node);
            return 0;
        }
        snprintf(what, sizeof(what), "Node %s", s->node);
        return must_exist(r, key_node(s->grid, s->node), what);
    }
    return 0;
}
