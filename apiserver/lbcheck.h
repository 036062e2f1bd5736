/* apiserver/lbcheck.h -- load balancer settings checked at install time (issue 7, point 4).
 *
 * Service create/update, env add and stack create/update call lbcheck_specs() once the
 * links of the new specs are resolved: the KONTENA_LB_* env of every written service and
 * the tcp port clashes on each load balancer are checked against the grid as it would be
 * after the request (common/lbenv.h, lbenv_check_set). The caller answers 422 with the
 * message on the service's "env" field.
 */
#ifndef APISERVER_LBCHECK_H
#define APISERVER_LBCHECK_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

struct api;

/* specs (array, borrowed): the specs about to be written in stack `stack` ("null" for none)
 * of grid, each with "name", "image", "env" and resolved "links" [{id}]. whole_stack: 1 when
 * the stored services of the stack that are not in specs go away (stack create/update), 0
 * when they stay (one service). ST_OK and *msg NULL when fine; ST_OK with *msg (fresh) and
 * *which (index into specs) when a setting is bad; another status when etcd could not be
 * read. */
enum status lbcheck_specs(struct api *a, const char *grid, const char *stack, const json_t *specs,
                          int whole_stack, char **msg, size_t *which,
                          struct err *e) WARN_UNUSED_RESULT;

#endif
