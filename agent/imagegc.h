/* agent/imagegc.h -- removal of pulled images nothing uses (docs/internals/agent.md, "Image
 * cleanup"; reference agent-protocol.md §11).
 *
 * One thread with its own Docker handle (and, with etcd, its own etcd client). Every interval
 * (60 s) it lists the images and every container of the dockerd (all=1, whoever made them)
 * and notes when each image was first seen unused; an image still unused grace (1 h) after
 * that is removed, and the removal logged. Never removed, on purpose unlike the original:
 *   - images without RepoDigests: imported or built here (kontena/lb, the test images) could
 *     not be pulled again;
 *   - images a desired instance of this node names (/kontena/instances/<grid>/<node>/…
 *     spec.image), even while its container is gone (being recreated, failed to start);
 *   - anything, while the desired instances cannot be read (etcd away, grid not known yet).
 * An image used by a container created meanwhile is refused by Docker (no force is used).
 */
#ifndef AGENT_IMAGEGC_H
#define AGENT_IMAGEGC_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"

#define IMAGEGC_DEF_INTERVAL_MS 60000
#define IMAGEGC_DEF_GRACE_MS 3600000

struct imagegc_opts {
    const char *docker_socket;  /* NULL: /var/run/docker.sock */
    const char *etcd_endpoints; /* NULL: the agent manages no containers, nothing to protect */
    const char *grid;           /* NULL: until imagegc_set_grid() (with etcd nothing is
                                   removed before) */
    const char *node;           /* required with etcd_endpoints */
    int64_t interval_ms;        /* 0 = IMAGEGC_DEF_INTERVAL_MS */
    int64_t grace_ms;           /* 0 = IMAGEGC_DEF_GRACE_MS */
};

struct imagegc;

/* Start the thread (its first pass at once). NULL and e set on bad options. Strings are
 * copied. */
struct imagegc *imagegc_start(const struct imagegc_opts *o, struct err *e);
void imagegc_stop(struct imagegc *g); /* stop, join, free; NULL is fine */
/* The node's grid (from /agent/node_info); copied, any thread. */
void imagegc_set_grid(struct imagegc *g, const char *grid);

struct imagegc_counters {
    uint64_t passes, removed, errors;
};
void imagegc_counters(struct imagegc *g, struct imagegc_counters *out);

/* --- exposed for tests ------------------------------------------------------------------ */

/* 1 when the image summary (GET /images/json item) can be pulled again: a RepoDigests entry
 * other than "<none>@<none>". */
int imagegc_pullable(const json_t *image);

/* One pass's decision, pure. images: GET /images/json; containers: GET /containers/json?all=1;
 * keep: image ids that must stay (the desired instances'), may be NULL; all borrowed.
 * unused: {image id: ms when first seen unused}, carried from pass to pass and updated here
 * (ids used again, gone or kept are dropped; newly unused ones get now_ms). Returns a fresh
 * array of the summaries of the images to remove now: pullable, unused by any container
 * (ImageID), not kept, and unused since at least grace_ms. */
json_t *imagegc_select(const json_t *images, const json_t *containers, const json_t *keep,
                       json_t *unused, int64_t now_ms, int64_t grace_ms);

#endif
