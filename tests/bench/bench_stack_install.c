/* tests/bench/bench_stack_install.c -- issue 5's second benchmark: `kontena stack install` of
 * N containers (default 50) across 3 agents until every one is running, against raw Docker
 * creating and starting the same N containers in parallel (N threads on the Engine API
 * socket), in the same run, on the same dockerd.
 *
 *   build-x/tests/bench/bench_stack_install [--containers N] [--agents N] [--runs N (3)]
 *
 * Each run: raw Docker first (create+start N containers of the test image with `sleep 3600`,
 * all threads released at once; the time is until the last start returned), the containers
 * removed; then a fresh stack (one service, N instances, strategy ha) installed with the CLI
 * (--no-wait) and timed until the agents report N instances running in etcd (observed
 * state running, polled every 20 ms), then removed with `stack rm` and its containers
 * waited for. Prints every run, then the medians and their ratio (target <= 1.15).
 *
 * Needs dockerd (started with hack/dockerd.sh if it is not running), the test image
 * (hack/test-image.sh) and the programs in build-x/bin (kontena, kontena-apiserver,
 * kontena-agent and the four controllers). Leaves nothing behind: every container carries
 * the run's label or the platform's grid label and is removed at the end. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/docker_env.h"
#include "tests/support/platform.h"

#include "common/banned.h"

#define MAX_CONTAINERS 500
#define MAX_RUNS 20

static size_t sink(char *p, size_t sz, size_t n, void *u)
{
    (void)p;
    (void)u;
    return sz * n;
}

static long docker_post(CURL *h, const char *path, const char *body)
{
    char *url = xasprintf("http://localhost/v1.41%s", path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, docker_env_socket());
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    free(url);
    return status;
}

struct raw_job {
    int index;
    pthread_barrier_t *go;
    long create_status, start_status;
    int64_t done_us;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *raw_one(void *arg)
{
    struct raw_job *j = arg;
    CURL *h = curl_easy_init();
    char *name = docker_env_name("raw"), *path, *body;

    body = xasprintf("{\"Image\":\"%s\",\"Cmd\":[\"sleep\",\"3600\"],\"Labels\":{\"%s\":\"%s\"},"
                     "\"HostConfig\":{}}",
                     DOCKER_ENV_IMAGE, DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    path = xasprintf("/containers/create?name=%s-%d", name, j->index);
    pthread_barrier_wait(j->go);
    j->create_status = h ? docker_post(h, path, body) : 0;
    free(path);
    path = xasprintf("/containers/%s-%d/start", name, j->index);
    if (j->create_status == 201)
        j->start_status = docker_post(h, path, NULL);
    j->done_us = now_us();
    free(path);
    free(body);
    free(name);
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

/* Seconds for n parallel create+start, or -1. */
static double raw_docker(int n)
{
    pthread_t th[MAX_CONTAINERS];
    struct raw_job jobs[MAX_CONTAINERS];
    pthread_barrier_t go;
    int64_t t0, last = 0;
    int ok = 1;

    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct raw_job){.index = i, .go = &go};
        if (pthread_create(&th[i], NULL, raw_one, &jobs[i]) != 0) {
            fprintf(stderr, "cannot start thread %d\n", i);
            exit(1);
        }
    }
    t0 = now_us();
    pthread_barrier_wait(&go);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].create_status != 201 || jobs[i].start_status != 204) {
            fprintf(stderr, "raw container %d: create HTTP %ld, start HTTP %ld\n", i,
                    jobs[i].create_status, jobs[i].start_status);
            ok = 0;
        }
        if (jobs[i].done_us > last)
            last = jobs[i].done_us;
    }
    pthread_barrier_destroy(&go);
    if (docker_env_cleanup() < 0)
        fprintf(stderr, "cannot remove the raw containers\n");
    return ok ? (double)(last - t0) / 1e6 : -1;
}

/* Keys under /kontena/<what>/<grid>/ whose container ("<stack>.<service>-<n>", the key's
 * last segment) belongs to stack and whose value has field == want (want NULL: field
 * present and not null). -1 when etcd could not be read. */
static int count_keys(struct platform *p, const char *what, const char *stack, const char *field,
                      const char *want)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r;
    struct err e = ERR_INIT;
    char *prefix = xasprintf("/kontena/%s/%s/", what, p->grid);
    size_t sl = strlen(stack);
    int n = 0;

    if (etcd_range(p->ec, prefix, &ro, &r, &e) != ST_OK) {
        free(prefix);
        return -1;
    }
    for (size_t i = 0; i < r.n; i++) {
        const char *slash = strrchr(r.kvs[i].key, '/');
        json_t *v, *f;

        if (!slash || strncmp(slash + 1, stack, sl) != 0 || slash[1 + sl] != '.')
            continue;
        v = json_loadb(r.kvs[i].value, r.kvs[i].value_len, 0, NULL);
        f = json_object_get(v, field);
        if (want ? json_is_string(f) && !strcmp(json_string_value(f), want) : f && !json_is_null(f))
            n++;
        json_decref(v);
    }
    etcd_range_result_release(&r);
    free(prefix);
    return n;
}

/* Seconds from `stack install` until n instances run, or -1. Prints when every instance
 * was placed (instance keys), addressed (overlay_cidr) and running. */
static double kontena_install(struct platform *p, int n, int run)
{
    double placed = -1, addressed = -1;
    char what[32], *stack, *text, *file;
    int left;
    int64_t t0, deadline;
    double secs = -1;

    snprintf(what, sizeof(what), "bench%d", run);
    stack = platform_name(what);
    text = xasprintf("stack: bench/%s\nversion: 1.0.0\nservices:\n  app:\n    image: %s\n"
                     "    command: sleep 3600\n    instances: %d\n    stop_grace_period: 1s\n"
                     "    deploy:\n      strategy: ha\n",
                     what, DOCKER_ENV_IMAGE, n);
    file = platform_write_file(p, "bench.yml", text);
    free(text);
    if (!file)
        goto out;
    t0 = now_us();
    if (platform_cli(p, "stack", "install", "--name", stack, "--no-wait", file, NULL) != 0) {
        fprintf(stderr, "stack install failed: %s%s\n", p->out, p->err);
        goto out;
    }
    deadline = time_mono_ms() + 300000;
    for (;;) {
        int have = count_keys(p, "observed", stack, "state", "running");
        double at = (double)(now_us() - t0) / 1e6;
        if (placed < 0 && count_keys(p, "instances", stack, "desired_state", "running") == n)
            placed = at;
        if (addressed < 0 && count_keys(p, "instances", stack, "overlay_cidr", NULL) == n)
            addressed = at;
        if (have == n) {
            secs = at;
            printf("  kontena: all %d placed at %.3f s, addressed at %.3f s, running at %.3f s\n",
                   n, placed, addressed, secs);
            break;
        }
        if (time_mono_ms() >= deadline) {
            fprintf(stderr, "only %d of %d instances running after 300 s\n", have, n);
            break;
        }
        time_sleep_ms(20);
    }
    if (platform_cli(p, "stack", "rm", "--force", stack, NULL) != 0)
        fprintf(stderr, "stack rm failed: %s%s\n", p->out, p->err);
    deadline = time_mono_ms() + 120000;
    while (platform_docker_count(p, stack, NULL, 0) > 0 && time_mono_ms() < deadline)
        time_sleep_ms(200);
    left = platform_docker_count(p, stack, NULL, 0);
    if (left != 0)
        fprintf(stderr, "%d containers of %s left after stack rm\n", left, stack);
out:
    free(file);
    free(stack);
    return secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int int_arg(const char *s, int lo, int hi, const char *what)
{
    char *end;
    long v = strtol(s ? s : "", &end, 10);

    if (!s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_stack_install: %s must be %d..%d\n", what, lo, hi);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int n = 50, agents = 3, runs = 3, nr = 0;
    double raw[MAX_RUNS], kon[MAX_RUNS];
    struct platform pf;
    struct platform_opts o = {0};
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--containers") && i + 1 < argc)
            n = int_arg(argv[++i], 1, MAX_CONTAINERS, "--containers");
        else if (!strcmp(argv[i], "--agents") && i + 1 < argc)
            agents = int_arg(argv[++i], 1, PLATFORM_MAX_AGENTS, "--agents");
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = int_arg(argv[++i], 1, MAX_RUNS, "--runs");
        else {
            fprintf(stderr, "usage: %s [--containers N] [--agents N] [--runs N]\n", argv[0]);
            return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    docker_env_global_setup();
    if (getenv("KONTENA_TEST_DOCKER_ERROR") && *getenv("KONTENA_TEST_DOCKER_ERROR")) {
        fprintf(stderr, "bench_stack_install: Docker is not usable: %s\n",
                getenv("KONTENA_TEST_DOCKER_ERROR"));
        return 1;
    }
    o.agents = agents;
    o.grid_suffix = "bench";
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        platform_cleanup(&pf);
        docker_env_global_cleanup();
        fprintf(stderr, "bench_stack_install: cannot start the platform\n");
        return 1;
    }
    printf("bench_stack_install: %d containers (%s, sleep 3600), %d agents on one dockerd, "
           "%d run(s)\n",
           n, DOCKER_ENV_IMAGE, agents, runs);
    fflush(stdout);
    for (int r = 0; r < runs; r++) {
        double d = raw_docker(n), k;
        if (d < 0) {
            rc = 1;
            break;
        }
        k = kontena_install(&pf, n, r + 1);
        if (k < 0) {
            platform_dump_logs(&pf);
            rc = 1;
            break;
        }
        raw[nr] = d;
        kon[nr] = k;
        nr++;
        printf("run %d: raw Docker %.3f s   kontena stack install %.3f s   ratio %.2f\n", r + 1, d,
               k, k / d);
        fflush(stdout);
    }
    if (nr > 0) {
        double md = median(raw, nr), mk = median(kon, nr);
        printf("median of %d: raw Docker %.3f s (%.1f containers/s)   kontena %.3f s "
               "(%.1f containers/s)   ratio %.2f (target <= 1.15)\n",
               nr, md, n / md, mk, n / mk, mk / md);
    }
    platform_cleanup(&pf);
    docker_env_global_cleanup();
    curl_global_cleanup();
    return rc;
}
