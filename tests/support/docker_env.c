/* tests/support/docker_env.c -- the real Docker Engine for tests (see docker_env.h). */
#include "tests/support/docker_env.h"
#include "tests/support/proc.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define ENV_RUN "KONTENA_TEST_DOCKER_RUN"
#define ENV_ERROR "KONTENA_TEST_DOCKER_ERROR"
#define ENV_SKIP "KONTENA_SKIP_DOCKER_TESTS"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *docker_env_source_dir(void)
{
    static char dir[1024];
    const char *env = getenv("KONTENA_SRC_DIR");
    const char *me = __FILE__; /* CMake compiles with the absolute path */
    const char *tail = strstr(me, "tests/support/docker_env.c");

    if (env && *env)
        return env;
    if (!dir[0]) {
        if (tail && me[0] == '/')
            snprintf(dir, sizeof(dir), "%.*s", (int)(tail - me - 1), me);
        else
            snprintf(dir, sizeof(dir), ".");
    }
    return dir;
}

const char *docker_env_socket(void)
{
    const char *h = getenv("DOCKER_HOST");

    if (h && strncmp(h, "unix://", 7) == 0 && h[7])
        return h + 7;
    return "/var/run/docker.sock";
}

const char *docker_env_run_id(void)
{
    const char *id = getenv(ENV_RUN);

    if (!id || !*id) {
        /* not set up through docker_env_global_setup() (e.g. one test run by hand with
         * --filter in a fresh process tree): make one for this process */
        char *hex = crypto_random_hex(4), *v = xasprintf("kt-%s", hex);
        setenv(ENV_RUN, v, 1);
        free(hex);
        free(v);
        id = getenv(ENV_RUN);
    }
    return id;
}

const char *docker_env_run_filter(void)
{
    static char f[128];

    snprintf(f, sizeof(f), "%s=%s", DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    return f;
}

char *docker_env_name(const char *what)
{
    return xasprintf("%s-%s", docker_env_run_id(), what);
}

/* Run a hack/ script; on failure record "<what>: <its stderr>" in the environment. */
static int run_script(const char *script, const char *arg, const char *what)
{
    char *path = xasprintf("%s/hack/%s", docker_env_source_dir(), script);
    const char *argv[] = {path, arg, NULL};
    char *sock = xasprintf("DOCKER_SOCK=%s", docker_env_socket()), *out = NULL, *err = NULL;
    const char *env[] = {sock, NULL};
    char *msg;
    int rc = proc_run(argv, env, NULL, &out, &err);

    if (rc != 0) {
        size_t n = err ? strlen(err) : 0;
        while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        msg = xasprintf("%s: %s exited with %d: %s", what, path, rc, err && *err ? err : "");
        setenv(ENV_ERROR, msg, 1);
        free(msg);
    }
    free(out);
    free(err);
    free(sock);
    free(path);
    return rc == 0 ? 0 : -1;
}

void docker_env_global_setup(void)
{
    if (getenv(ENV_SKIP) && strcmp(getenv(ENV_SKIP), "1") == 0)
        return;
    unsetenv(ENV_ERROR);
    docker_env_run_id();
    if (run_script("dockerd.sh", "start", "docker is not reachable after hack/dockerd.sh start") !=
        0)
        return;
    run_script("test-image.sh", DOCKER_ENV_IMAGE, "cannot build the test image");
}

const char *docker_env_require(void)
{
    const char *err = getenv(ENV_ERROR);

    if (getenv(ENV_SKIP) && strcmp(getenv(ENV_SKIP), "1") == 0)
        cr_skip_test("%s=1: Docker tests skipped on request", ENV_SKIP);
    if (err && *err)
        cr_assert_fail("%s", err);
    if (!getenv(ENV_RUN))
        cr_assert_fail("docker_env_global_setup() did not run (ReportHook(PRE_ALL) missing)");
    return docker_env_socket();
}

/* --- cleanup over the Engine API ----------------------------------------------------------- */

static size_t collect(char *p, size_t sz, size_t n, void *u)
{
    return buf_append(u, p, sz * n) == ST_OK ? sz * n : 0;
}

/* See docker_env.h. */
long docker_env_call(CURL *h, const char *method, const char *path, json_t **out)
{
    struct buf b;
    char *url = xasprintf("http://localhost/v1.41%s", path);
    long status = 0;

    buf_init(&b, 64 << 20);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, docker_env_socket());
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (out)
        *out = json_loadb(b.ptr ? b.ptr : "", b.len, 0, NULL);
    buf_release(&b);
    free(url);
    return status;
}

/* Remove each object of a listing with DELETE <prefix><id><suffix>; `key` names the id
 * field. */
static int remove_all(CURL *h, json_t *list, const char *key, const char *prefix,
                      const char *suffix)
{
    size_t i;
    int n = 0;

    for (i = 0; i < json_array_size(list); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(list, i), key));
        char *esc, *path;
        long st;

        if (!id)
            continue;
        esc = curl_easy_escape(h, id, 0);
        path = xasprintf("%s%s%s", prefix, esc, suffix);
        st = docker_env_call(h, "DELETE", path, NULL);
        if (st / 100 == 2)
            n++;
        curl_free(esc);
        free(path);
    }
    return n;
}

int docker_env_cleanup(void)
{
    CURL *h;
    char *filter, *q, *path;
    json_t *list = NULL;
    int n = 0;

    if (!getenv(ENV_RUN))
        return 0; /* nothing was ever labelled in this run */
    pthread_once(&curl_once, curl_init_once);
    h = curl_easy_init();
    if (!h)
        return -1;
    filter = xasprintf("{\"label\":[\"%s\"]}", docker_env_run_filter());
    q = curl_easy_escape(h, filter, 0);

    path = xasprintf("/containers/json?all=1&filters=%s", q);
    if (docker_env_call(h, "GET", path, &list) != 200) {
        n = -1;
        goto out;
    }
    n += remove_all(h, list, "Id", "/containers/", "?force=1&v=1");
    json_decref(list);
    list = NULL;
    free(path);

    path = xasprintf("/networks?filters=%s", q);
    if (docker_env_call(h, "GET", path, &list) == 200)
        n += remove_all(h, list, "Id", "/networks/", "");
    json_decref(list);
    list = NULL;
    free(path);

    path = xasprintf("/volumes?filters=%s", q);
    if (docker_env_call(h, "GET", path, &list) == 200)
        n += remove_all(h, json_object_get(list, "Volumes"), "Name", "/volumes/", "?force=1");
out:
    json_decref(list);
    free(path);
    curl_free(q);
    free(filter);
    curl_easy_cleanup(h);
    return n;
}

int docker_env_remove_containers(const char *label)
{
    CURL *h;
    char *filter, *q, *path;
    json_t *list = NULL;
    int n = -1;

    pthread_once(&curl_once, curl_init_once);
    h = curl_easy_init();
    if (!h)
        return -1;
    filter = xasprintf("{\"label\":[\"%s\"]}", label);
    q = curl_easy_escape(h, filter, 0);
    path = xasprintf("/containers/json?all=1&filters=%s", q);
    if (docker_env_call(h, "GET", path, &list) == 200)
        n = remove_all(h, list, "Id", "/containers/", "?force=1&v=1");
    json_decref(list);
    free(path);
    curl_free(q);
    free(filter);
    curl_easy_cleanup(h);
    return n;
}

void docker_env_global_cleanup(void)
{
    const char *err = getenv(ENV_ERROR);
    int n;

    if (err && *err)
        return; /* Docker was never usable */
    n = docker_env_cleanup();
    if (n < 0)
        fprintf(stderr, "docker_env: cannot clean up run %s: docker does not answer\n",
                docker_env_run_id());
}
