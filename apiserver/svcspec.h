/* apiserver/svcspec.h -- a service's stored spec: normalising and validating the create and
 * update bodies of reference/master-api.md §4.4, the "real change" comparison that decides
 * revision bumps, and the service JSON the API shows.
 *
 * A stored spec always holds every field of svcspec_fields (null where unset), so two specs
 * compare field by field and `etcdctl get` shows the defaults that apply. Nothing here talks
 * to etcd: link targets, stacks and external volumes are checked by the callers
 * (services.c, stacks.c), which also turn link names into ids.
 */
#ifndef APISERVER_SVCSPEC_H
#define APISERVER_SVCSPEC_H

#include <jansson.h>
#include <stdint.h>

/* The spec fields (NULL-terminated): what a revision is made of. `links` holds
 * [{id, alias, name}] once resolved. */
extern const char *const svcspec_fields[];

#define SVCSPEC_FQDN_MAX 64
#define SVCSPEC_ENV_MAX 131072 /* bytes per env entry */

struct svcspec_ctx {
    const char *grid;
    const char *stack;           /* "null" for stack-less services */
    const json_t *stack_volumes; /* the stack's [{name, external}], NULL for stack-less */
};

/* Build a spec from a request body. old == NULL: create (name and image required, defaults
 * for everything else). old != NULL: update of that spec (borrowed): fields absent from body
 * keep their old value; name and stateful never change; env items "KEY=" keep the old value
 * of KEY; health_check and deploy_opts are merged field by field.
 * Per-field messages go into errs (an object, borrowed: "field": "message"); the returned
 * spec (fresh) is only meaningful when errs stayed empty. `links` of the result is the
 * old list when body has none; otherwise [{name, alias}] as given (name "svc", "stack/svc"
 * or "grid/stack/svc"), for the caller to resolve. */
json_t *svcspec_build(const json_t *body, const json_t *old, const struct svcspec_ctx *ctx,
                      json_t *errs);

/* 1 when some spec field differs between a and b. */
int svcspec_changed(const json_t *a, const json_t *b);

/* Copy the spec fields of src into dst (both borrowed). */
void svcspec_copy_fields(json_t *dst, const json_t *src);

/* "1m30s", "23s", "1m12.3s", "0s" -> whole seconds. -1 when malformed. */
int64_t svcspec_duration(const char *s);

/* Link target "svc" / "stack/svc" / "grid/stack/svc" split into stack and service names
 * (own_stack for a bare name). Fills stack[] and svc[]; 0 on success, -1 when malformed. */
int svcspec_link_target(const char *name, const char *grid, const char *own_stack, char *stack,
                        size_t stack_len, char *svc, size_t svc_len);

/* The service JSON of §4.4 (fresh) from a stored service. grid_default_affinity (may be
 * NULL) replaces an empty affinity; counts (may be NULL) is the service's entry of
 * instance_counts() {total, running, healthy, unhealthy}: the view gets instance_counts
 * {total, running} and health_status {healthy, unhealthy, total} (null when the service has
 * no health check). */
json_t *svcspec_view(const json_t *svc, const json_t *grid_default_affinity,
                     const json_t *counts);

#endif
