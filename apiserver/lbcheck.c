/* apiserver/lbcheck.c -- load balancer settings checked at install time (lbcheck.h). */
#include "apiserver/lbcheck.h"

#include <stdlib.h>
#include <string.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/jsonutil.h"
#include "common/lbenv.h"
#include "common/xmalloc.h"

#include "common/banned.h"

/* "<stack>/<svc>", or "<svc>" in the null stack: how lbenv names services. */
static char *pretty(const char *stack, const char *name)
{
    if (!stack || strcmp(stack, "null") == 0)
        return xstrdup(name);
    return xasprintf("%s/%s", stack, name);
}

/* The lbenv_check_set entry of a stored service or a spec. */
static json_t *entry(const char *grid, const char *stack, const json_t *s, int changed)
{
    json_t *links = json_array(), *l;
    size_t i, gl = strlen(grid);
    char *id = pretty(stack, jstr(s, "name"));
    json_t *out;

    json_array_foreach(json_object_get(s, "links"), i, l)
    {
        const char *lid = jstr(l, "id"), *rest, *slash;
        if (!lid || strncmp(lid, grid, gl) != 0 || lid[gl] != '/')
            continue;
        rest = lid + gl + 1; /* <stack>/<svc> */
        slash = strchr(rest, '/');
        if (!slash)
            continue;
        if ((size_t)(slash - rest) == 4 && strncmp(rest, "null", 4) == 0)
            json_array_append_new(links, json_string(slash + 1));
        else
            json_array_append_new(links, json_string(rest));
    }
    out = json_pack("{s:s,s:s?,s:O?,s:o,s:b}", "id", id, "image", jstr(s, "image"), "env",
                    json_object_get(s, "env"), "links", links, "changed", changed);
    free(id);
    return out;
}

static int in_specs(const json_t *specs, const char *name)
{
    size_t i;
    const json_t *s;

    json_array_foreach(specs, i, s) if (name && jstr(s, "name") &&
                                        strcmp(jstr(s, "name"), name) == 0) return 1;
    return 0;
}

enum status lbcheck_specs(struct api *a, const char *grid, const char *stack, const json_t *specs,
                          int whole_stack, char **msg, size_t *which, struct err *e)
{
    char *prefix = key_grid_child_prefix(KEY_SERVICES, grid);
    json_t *stored = NULL, *set = json_array();
    const json_t *s;
    const char *who = NULL;
    struct err ce = ERR_INIT;
    enum status st;
    size_t i;

    *msg = NULL;
    *which = 0;
    st = store_list(a->etcd, prefix, 0, &stored, e);
    free(prefix);
    if (st != ST_OK)
        goto out;
    json_array_foreach(stored, i, s)
    {
        const char *sst = jstr(s, "stack"), *name = jstr(s, "name");
        if (!sst || !name)
            continue;
        if (strcmp(sst, stack) == 0 && (whole_stack || in_specs(specs, name)))
            continue; /* replaced by the request */
        json_array_append_new(set, entry(grid, sst, s, 0));
    }
    json_array_foreach(specs, i, s) if (jstr(s, "name"))
        json_array_append_new(set, entry(grid, stack, s, 1));
    if (lbenv_check_set(set, &who, &ce) != ST_OK) {
        *msg = xstrdup(ce.msg);
        json_array_foreach(specs, i, s)
        {
            char *id = jstr(s, "name") ? pretty(stack, jstr(s, "name")) : NULL;
            int hit = id && who && strcmp(id, who) == 0;
            free(id);
            if (hit) {
                *which = i;
                break;
            }
        }
    }
out:
    json_decref(stored);
    json_decref(set);
    return st;
}
