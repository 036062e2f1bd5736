/* cli/stackfile/lbcheck.h -- the load balancer settings of a stack file, checked before it
 * is installed (issue 7, point 4): the KONTENA_LB_* environment of every service and the
 * tcp port clashes on the load balancers of the same file (common/lbenv.h). Load balancers
 * in other stacks are the API server's to check (apiserver/lbcheck.h).
 */
#ifndef CLI_STACKFILE_LBCHECK_H
#define CLI_STACKFILE_LBCHECK_H

#include <jansson.h>

/* payload: the converted install body ("services": [{name, image, env, links}]); a problem
 * is appended to errors as a finding of file under services.<name>.environment. */
void sf__lb_check(const json_t *payload, json_t *errors, const char *file);

#endif
