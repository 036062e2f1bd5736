/* tests/bench/bench_lb_scale.c -- issue 7's scale-cycle figure: failed requests through the
 * load balancer while its web service scales 1 -> 5 -> 1, under a bounded continuous load.
 *
 *   build-x/tests/bench/bench_lb_scale [--cycles N (2)] [--threads N (4)] [--rate R (100)]
 *                                      [--backend-drain]
 *
 * A whole platform (tests/support/platform.h: etcd, apiserver, the four controllers plus
 * kontena-lbconfig, three agents on the machine's dockerd) runs a stack of a kontena/lb
 * service (image from hack/lb-image.sh, host network, ports picked free) and a web service
 * (busybox httpd, http health check every second; on SIGTERM it exits at once, so the figure
 * is what the platform alone gives: the agent waits --lb-drain (1 s) before it stops a
 * container behind a load balancer; with --backend-drain the web service also keeps serving
 * a second after SIGTERM) linked to it. The load
 * (tests/support/ httpload.h: half of the threads on keep-alive connections, half opening one per
 * request, each paced at --rate requests/s) runs through the LB during every cycle: `service scale
 * 5`, until 5 instances run and each has answered through the LB, then `service scale 1` until one
 * container is left. Printed per cycle and in all: requests, failed requests (target 0),
 * requests/s, and for each new instance the delay from its first healthy check to its first
 * answer through the LB (target < 1000 ms).
 *
 * Needs dockerd (hack/dockerd.sh), the test image (hack/test-image.sh), the programs in
 * build-x/bin (kontena, kontena-apiserver, kontena-agent, the controllers, kontena-lb) and
 * haproxy (for the image). Leaves nothing behind: the grid's containers and the image are
 * removed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/httpload.h"
#include "tests/support/platform.h"
#include "tests/support/proc.h"

#include "common/banned.h"

static struct platform pf;
static char *stack_name;
static struct platform_health_log *health;

static char *who_of(const json_t *it)
{
    const char *id =
        json_string_value(json_object_get(json_object_get(it, "observed"), "container_id"));

    if (!id || strlen(id) < 12)
        return NULL;
    return xasprintf("web-%lld %.12s",
                     (long long)json_integer_value(json_object_get(it, "instance_number")), id);
}

/* The first healthy check of the container answering `who` ("web-<n> <id>"): µs or -1. */
static int64_t healthy_at(const char *who)
{
    const char *id = strchr(who, ' ');

    return id ? platform_health_first(health, id + 1, 1, NULL) : -1;
}

static json_t *poll_web(void)
{
    return platform_instances(&pf, stack_name, "web");
}

/* Until `count` instances run (and, with `served`, each has answered through the LB): 0, or
 * -1 after 90 s. */
static int wait_web(struct httpload *load, int count, int served)
{
    int64_t deadline = time_mono_ms() + 90000;

    for (;;) {
        json_t *l = poll_web(), *it;
        size_t i;
        int ok = l && (int)json_array_size(l) == count && platform_count_running(l) == count;

        if (ok && served)
            json_array_foreach(l, i, it)
            {
                char *who = who_of(it);
                ok = ok && who && healthy_at(who) >= 0 && httpload_first_seen(load, who) >= 0;
                free(who);
            }
        json_decref(l);
        if (ok)
            return 0;
        if (time_mono_ms() >= deadline) {
            fprintf(stderr, "bench_lb_scale: web did not reach %d instances%s within 90 s\n", count,
                    served ? " answering through the LB" : "");
            return -1;
        }
        time_sleep_ms(20);
    }
}

static int scale(const char *svc, const char *n)
{
    if (platform_cli(&pf, "service", "scale", "--no-wait", svc, n, NULL) != 0) {
        fprintf(stderr, "bench_lb_scale: service scale %s %s: %s%s\n", svc, n, pf.out, pf.err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct platform_opts o = {.agents = 3, .grid_suffix = "lbbench", .lbconfig = 1};
    int cycles = 2, threads = 4, rate = 100, drain = 0, rc = 1;
    int http_port, https_port, stats_port;
    char *image = NULL, *text = NULL, *file = NULL, *url = NULL, *svc = NULL;
    int64_t total_ok = 0, total_failed = 0, worst = INT64_MIN;
    double total_s = 0;

    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--cycles"))
            cycles = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--rate"))
            rate = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend-drain"))
            drain = 1;
        else {
            fprintf(stderr, "usage: %s [--cycles N] [--threads N] [--rate R] [--backend-drain]\n",
                    argv[0]);
            return 2;
        }
    }
    if (cycles < 1 || cycles > 20 || threads < 1 || threads > 32 || rate < 0 || rate > 10000) {
        fprintf(stderr, "bench_lb_scale: --cycles 1..20, --threads 1..32, --rate 0..10000\n");
        return 2;
    }
    docker_env_global_setup();
    if (getenv("KONTENA_TEST_DOCKER_ERROR") && *getenv("KONTENA_TEST_DOCKER_ERROR")) {
        fprintf(stderr, "bench_lb_scale: Docker is not usable: %s\n",
                getenv("KONTENA_TEST_DOCKER_ERROR"));
        return 1;
    }
    image = platform_lb_image();
    if (!image || platform_start(&pf, &o) != 0) {
        fprintf(stderr, "bench_lb_scale: cannot start the platform or build the LB image\n");
        platform_dump_logs(&pf);
        goto out;
    }
    http_port = proc_free_port();
    https_port = proc_free_port();
    stats_port = proc_free_port();
    stack_name = platform_name("lbbench");
    text = xasprintf("stack: bench/lb\n"
                     "version: 1.0.0\n"
                     "services:\n"
                     "  lb:\n"
                     "    image: %s\n"
                     "    network_mode: host\n"
                     "    stop_grace_period: 5s\n"
                     "    environment:\n"
                     "      - ETCD_ENDPOINTS=%s\n"
                     "      - KONTENA_LB_HTTP_PORT=%d\n"
                     "      - KONTENA_LB_HTTPS_PORT=%d\n"
                     "      - KONTENA_LB_STATS_PORT=%d\n"
                     "  web:\n"
                     "    image: %s\n"
                     /* "web-<n> <first 12 of the container id>", exiting at once on
                      * SIGTERM unless --backend-drain (see test_lb_e2e.c) */
                     "    command: sh -c 'id=$$(grep -o \"containers/[0-9a-f]*\" "
                     "/proc/self/mountinfo | head -1 | cut -c12-23) && mkdir -p /www && echo "
                     "web-$$KONTENA_SERVICE_INSTANCE_NUMBER $$id > /www/index.html || exit 1; "
                     "httpd -f -p 8080 -h /www & pid=$$!; "
                     "trap \"%skill $$pid; exit 0\" TERM; wait'\n"
                     "    stop_grace_period: 2s\n"
                     "    links:\n"
                     "      - lb\n"
                     "    environment:\n"
                     "      - KONTENA_LB_INTERNAL_PORT=8080\n"
                     "    health_check:\n"
                     "      protocol: http\n"
                     "      port: 8080\n"
                     "      uri: /\n"
                     "      interval: 1\n"
                     "      timeout: 1\n"
                     "      initial_delay: 1\n"
                     "    deploy:\n"
                     "      strategy: ha\n",
                     image, pf.etcd.endpoint, http_port, https_port, stats_port, DOCKER_ENV_IMAGE,
                     drain ? "sleep 1; " : "");
    file = platform_write_file(&pf, "lb.yml", text);
    if (!file || platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "120",
                              file, NULL) != 0) {
        fprintf(stderr, "bench_lb_scale: stack install failed: %s%s\n", pf.out, pf.err);
        goto out;
    }
    health = platform_health_watch(&pf);
    if (!health)
        goto out;
    url = xasprintf("http://127.0.0.1:%d/", http_port);
    if (platform_wait_http(url, NULL, 200, "web-", 60000) != 0)
        goto out;
    svc = xasprintf("%s/web", stack_name);
    printf("bench_lb_scale: %d cycles of web 1 -> 5 -> 1 behind kontena/lb, load %d threads x "
           "%d requests/s (half keep-alive, half a connection per request); web %s\n",
           cycles, threads, rate,
           drain ? "drains 1 s on SIGTERM" : "exits at once on SIGTERM (--no-drain)");
    for (int c = 1; c <= cycles; c++) {
        struct httpload_opts lo = {
            .url = url, .threads = threads, .rate = rate, .max_ms = 240000, .timeout_ms = 5000};
        struct httpload *load = httpload_start(&lo);
        int64_t t0 = time_mono_ms(), cycle_worst = INT64_MIN;
        json_t *l, *it;
        size_t i;
        int bad = !load;

        int64_t scaled_us;

        if (!bad)
            time_sleep_ms(500);
        scaled_us = time_now_us();
        bad = bad || scale(svc, "5") != 0 || wait_web(load, 5, 1) != 0;
        if (!bad) {
            l = poll_web();
            json_array_foreach(l, i, it)
            {
                char *who = who_of(it);
                int64_t d = (httpload_first_seen(load, who) - healthy_at(who)) / 1000;
                if (healthy_at(who) >= scaled_us && d > cycle_worst) /* new ones only */
                    cycle_worst = d;
                free(who);
            }
            json_decref(l);
        }
        bad = bad || scale(svc, "1") != 0 || wait_web(load, 1, 0) != 0;
        while (!bad && platform_docker_count(&pf, stack_name, "web", 0) != 1) {
            if (time_mono_ms() - t0 > 200000) {
                bad = 1;
                break;
            }
            time_sleep_ms(100);
        }
        if (!bad)
            time_sleep_ms(500);
        httpload_stop(load);
        if (bad) {
            if (load)
                httpload_report(load, stderr);
            httpload_destroy(load);
            platform_dump_logs(&pf);
            goto out;
        }
        printf("cycle %d: %lld requests, %lld failed, %.0f requests/s, %.1f s; slowest new "
               "instance answered %lld ms after its first healthy check\n",
               c, (long long)(httpload_ok(load) + httpload_failed(load)),
               (long long)httpload_failed(load), httpload_rps(load),
               (double)(time_mono_ms() - t0) / 1000.0, (long long)cycle_worst);
        if (httpload_failed(load))
            httpload_report(load, stdout);
        total_ok += httpload_ok(load);
        total_failed += httpload_failed(load);
        total_s += (double)(time_mono_ms() - t0) / 1000.0;
        if (cycle_worst > worst)
            worst = cycle_worst;
        httpload_destroy(load);
    }
    printf("bench_lb_scale: %lld requests in %.1f s over %d scale cycles 1 -> 5 -> 1: %lld failed "
           "(target 0); new instances answered through the LB at most %lld ms after their first "
           "healthy check (target < 1000 ms)\n",
           (long long)(total_ok + total_failed), total_s, cycles, (long long)total_failed,
           (long long)worst);
    rc = 0;
out:
    platform_health_unwatch(health);
    platform_cleanup(&pf);
    platform_lb_image_remove(image);
    docker_env_global_cleanup();
    free(image);
    free(text);
    free(file);
    free(url);
    free(svc);
    free(stack_name);
    return rc;
}
