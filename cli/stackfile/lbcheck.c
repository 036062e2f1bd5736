/* cli/stackfile/lbcheck.c -- load balancer settings of a stack file (lbcheck.h). */
#include "cli/stackfile/lbcheck.h"

#include <string.h>

#include "cli/stackfile/stackfile.h"
#include "common/lbenv.h"

#include "common/banned.h"

void sf__lb_check(const json_t *payload, json_t *errors, const char *file)
{
    json_t *set = json_array(), *s, *l;
    const char *who = NULL;
    struct err e = ERR_INIT;
    size_t i, k;

    json_array_foreach(json_object_get(payload, "services"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        json_t *links = json_array();
        if (!name)
            continue;
        /* In-file links only ("svc"): a load balancer of another stack is not in the file. */
        json_array_foreach(json_object_get(s, "links"), k, l)
        {
            const char *target = json_string_value(json_object_get(l, "name"));
            if (target && !strchr(target, '/'))
                json_array_append_new(links, json_string(target));
        }
        json_array_append_new(set,
                              json_pack("{s:s,s:O?,s:O?,s:o,s:b}", "id", name, "image",
                                        json_object_get(s, "image"), "env",
                                        json_object_get(s, "env"), "links", links, "changed", 1));
    }
    if (lbenv_check_set(set, &who, &e) != ST_OK)
        sf_finding(errors, file, 0, e.msg, "services", who ? who : "?", "environment", NULL);
    json_decref(set);
}
