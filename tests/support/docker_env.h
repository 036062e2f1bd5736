/* tests/support/docker_env.h -- the real Docker Engine for integration tests.
 *
 * Policy: tests that need Docker FAIL (not skip) when dockerd cannot be reached after
 * `hack/dockerd.sh start`, with the reason in the failure message. The only way to skip
 * them is to ask: KONTENA_SKIP_DOCKER_TESTS=1.
 *
 * Use (one test file):
 *
 *     ReportHook(PRE_ALL)(struct criterion_test_set *s) { (void)s; docker_env_global_setup(); }
 *     ReportHook(POST_ALL)(struct criterion_global_stats *s) { (void)s;
 * docker_env_global_cleanup(); } static void init(void) { docker_env_require(); } TestSuite(docker,
 * .init = init, .timeout = 60);
 *
 * Criterion runs every test in a fresh process; the hooks run once in the runner, which
 * passes what it learned to the test processes through the environment
 * (KONTENA_TEST_DOCKER_RUN, KONTENA_TEST_DOCKER_ERROR).
 *
 * Everything a test creates carries the label DOCKER_ENV_RUN_LABEL=<run id> and a name
 * starting with "<run id>-"; the cleanup removes only what carries this run's label, so
 * parallel runs (and the developer's own containers) are left alone.
 *
 * Nothing here runs at load time, and nothing depends on agent/ (this file is linked into
 * every test binary): the cleanup talks to the Engine API with plain libcurl.
 */
#ifndef TESTS_SUPPORT_DOCKER_ENV_H
#define TESTS_SUPPORT_DOCKER_ENV_H

#include <curl/curl.h>
#include <jansson.h>

#define DOCKER_ENV_IMAGE "kontena-test/busybox:latest"
#define DOCKER_ENV_RUN_LABEL "io.kontena.test.run"

/* Runner process, once: `hack/dockerd.sh start`, `hack/test-image.sh`, pick a run id.
 * Never fails the run itself: a failure is recorded for docker_env_require(). */
void docker_env_global_setup(void);
/* Runner process, once: remove this run's containers, networks and volumes. */
void docker_env_global_cleanup(void);

/* In each test process (a suite .init): cr_skip_test when KONTENA_SKIP_DOCKER_TESTS=1;
 * cr_assert_fail with the recorded reason when Docker is not usable. Returns the socket
 * path (borrowed). */
const char *docker_env_require(void);
/* The socket: $DOCKER_HOST (unix://) or /var/run/docker.sock (borrowed). */
const char *docker_env_socket(void);
/* This run's id, e.g. "kt-3f2a9c01" (borrowed); works in the runner and in tests. */
const char *docker_env_run_id(void);
/* "<run label>=<run id>", for labels and label filters (borrowed). */
const char *docker_env_run_filter(void);
/* "<run id>-<what>", fresh memory: names unique to this run. */
char *docker_env_name(const char *what);
/* The repository's root (for hack/ scripts), borrowed. */
const char *docker_env_source_dir(void);

/* Remove every container (force, with anonymous volumes), then every network and volume
 * carrying this run's label. Returns how many objects were removed, or -1 when Docker
 * could not be asked. */
int docker_env_cleanup(void);
/* Remove every container (force, with anonymous volumes) carrying label ("k=v"), e.g. the
 * containers an agent made for a test's grid, which carry io.kontena.* labels rather than
 * the run's. Returns how many were removed, or -1 when Docker could not be asked. */
int docker_env_remove_containers(const char *label);
/* One Engine API request on the test socket (path after "/v1.41", e.g. "/containers/json"):
 * the HTTP status (0 on a transport error), and the parsed JSON body in *out (may be NULL;
 * also set for error statuses, NULL when the body is not JSON; caller decrefs). */
long docker_env_call(CURL *h, const char *method, const char *path, json_t **out);

#endif
