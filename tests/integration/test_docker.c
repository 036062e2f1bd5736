/* tests/integration/test_docker.c -- agent/docker.c against the machine's real dockerd
 * (started by hack/dockerd.sh, see tests/support/docker_env.h) with the busybox test image.
 * Suite `demux` checks the frame decoder on hand-made byte streams and needs no daemon. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/docker.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/proc.h"

#include "common/banned.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    docker_env_global_setup();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    docker_env_global_cleanup();
}

static struct docker *d;

static void suite_init(void)
{
    struct err e = ERR_INIT;

    docker_env_require();
    d = docker_create(NULL, &e);
    cr_assert(d, "docker_create: %s", e.msg);
}

static void suite_fini(void)
{
    docker_destroy(d);
    d = NULL;
}

TestSuite(docker, .init = suite_init, .fini = suite_fini, .timeout = 90);

/* --- helpers ------------------------------------------------------------------------------ */

/* A create body for the test image running `sh -c script`, labelled with this run's label
 * plus extra "k=v" labels (NULL-terminated, may be NULL). */
static json_t *config_sh(const char *script, const char *const *labels)
{
    json_t *labels_obj = json_object();
    json_t *c;
    size_t i;

    json_object_set_new(labels_obj, DOCKER_ENV_RUN_LABEL, json_string(docker_env_run_id()));
    for (i = 0; labels && labels[i]; i++) {
        const char *eq = strchr(labels[i], '=');
        char *k = xstrndup(labels[i], (size_t)(eq - labels[i]));
        json_object_set_new(labels_obj, k, json_string(eq + 1));
        free(k);
    }
    c = json_pack("{s:s, s:[s,s,s], s:o, s:{}}", "Image", DOCKER_ENV_IMAGE, "Cmd", "sh", "-c",
                  script, "Labels", labels_obj, "HostConfig");
    cr_assert(c);
    return c;
}

/* Create (and optionally start) a container; returns its id (fresh memory). */
static char *run_sh(const char *name, const char *script, int start)
{
    struct err e = ERR_INIT;
    json_t *c = config_sh(script, NULL);
    char *id = NULL;

    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_OK, "create %s: %s", name, e.msg);
    json_decref(c);
    if (start)
        cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "start %s: %s", name, e.msg);
    return id;
}

static void rm(const char *id)
{
    struct err e = ERR_INIT;

    cr_assert_eq(docker_container_remove(d, id, 1, 1, &e), ST_OK, "remove: %s", e.msg);
}

static json_t *inspect(const char *id)
{
    struct err e = ERR_INIT;
    json_t *j = NULL;

    cr_assert_eq(docker_container_inspect(d, id, &j, &e), ST_OK, "inspect %s: %s", id, e.msg);
    return j;
}

/* State.<field> of a container, as an integer / string / bool. */
static json_int_t state_int(const char *id, const char *field)
{
    json_t *j = inspect(id);
    json_int_t v = json_integer_value(json_object_get(json_object_get(j, "State"), field));

    json_decref(j);
    return v;
}

static int state_running(const char *id)
{
    json_t *j = inspect(id);
    int v = json_is_true(json_object_get(json_object_get(j, "State"), "Running"));

    json_decref(j);
    return v;
}

/* Wait (bounded) until the container has printed `marker` on stdout: it is then past its
 * trap set-up. */
struct grep_ctx {
    const char *marker;
    int found;
};

static int grep_line(void *arg, const struct docker_log_line *l)
{
    struct grep_ctx *g = arg;

    if (strcmp(l->text, g->marker) == 0)
        g->found = 1;
    return 0;
}

static void wait_for_output(const char *id, const char *marker)
{
    int64_t deadline = time_mono_ms() + 10000;
    struct grep_ctx g = {marker, 0};
    struct err e = ERR_INIT;

    while (!g.found) {
        cr_assert(time_mono_ms() < deadline, "container never printed '%s'", marker);
        cr_assert_eq(docker_container_logs(d, id, NULL, grep_line, &g, &e), ST_OK, "logs: %s",
                     e.msg);
        if (!g.found)
            time_sleep_ms(50);
    }
}

/* --- system and images -------------------------------------------------------------------- */

Test(docker, ping_version_info)
{
    struct err e = ERR_INIT;
    struct docker_node_info ni;
    json_t *v = NULL;

    cr_assert_eq(docker_ping(d, &e), ST_OK, "ping: %s", e.msg);
    cr_assert_eq(docker_version(d, &v, &e), ST_OK, "version: %s", e.msg);
    cr_assert(json_string_value(json_object_get(v, "ApiVersion")));
    json_decref(v);
    cr_assert_eq(docker_node_info(d, &ni, &e), ST_OK, "node info: %s", e.msg);
    cr_assert_gt(ni.cpus, 0);
    cr_assert_gt(ni.memory, 1 << 20);
    cr_assert_str_not_empty(ni.server_version);
    cr_assert_str_not_empty(ni.api_version);
    cr_assert_str_not_empty(ni.name);
    cr_assert_str_not_empty(ni.driver);
    cr_assert(json_is_object(ni.labels));
    docker_node_info_release(&ni);
    docker_node_info_release(&ni); /* twice is harmless */
}

Test(docker, unreachable_socket_is_retry)
{
    struct docker_opts o = {.socket_path = "/nonexistent/docker.sock"};
    struct err e = ERR_INIT;
    struct docker *x = docker_create(&o, &e);

    cr_assert(x);
    cr_assert_eq(docker_ping(x, &e), ST_RETRY);
    cr_assert(strstr(e.msg, "cannot ping docker") && strstr(e.msg, "/nonexistent/docker.sock"),
              "%s", e.msg);
    docker_destroy(x);
}

Test(docker, image_inspect)
{
    struct err e = ERR_INIT;
    json_t *img = NULL;

    cr_assert_eq(docker_image_inspect(d, DOCKER_ENV_IMAGE, &img, &e), ST_OK, "%s", e.msg);
    cr_assert(json_string_value(json_object_get(img, "Id")));
    json_decref(img);
    cr_assert_eq(docker_image_inspect(d, "kontena-test/missing:nope", &img, &e), ST_NOTFOUND);
    cr_assert_null(img);
    cr_assert_str_eq(e.msg, "image 'kontena-test/missing:nope' not found");
}

Test(docker, create_with_missing_image_is_notfound)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("noimage");
    json_t *c = config_sh("true", NULL);
    char *id = NULL;

    json_object_set_new(c, "Image", json_string("kontena-test/missing:nope"));
    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_NOTFOUND);
    cr_assert_null(id);
    cr_assert(strstr(e.msg, "cannot create container '") && strstr(e.msg, "No such image"), "%s",
              e.msg);
    json_decref(c);
    free(name);
}

/* --- container life cycle ------------------------------------------------------------------ */

Test(docker, create_start_inspect_stop_with_grace_period)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("grace");
    /* sh as PID 1 ignores SIGTERM: stop has to wait out the grace period, then SIGKILL */
    char *id = run_sh(name, "echo ready; while true; do sleep 0.1; done", 1);
    json_t *j = inspect(name);
    int64_t t0;

    cr_assert_str_eq(json_string_value(json_object_get(j, "Id")), id);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"),
                                          DOCKER_ENV_RUN_LABEL)),
        docker_env_run_id());
    json_decref(j);
    cr_assert(state_running(id));
    /* starting a running container again is fine (HTTP 304) */
    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "%s", e.msg);
    wait_for_output(id, "ready");

    t0 = time_mono_ms();
    cr_assert_eq(docker_container_stop(d, id, 1, &e), ST_OK, "stop: %s", e.msg);
    cr_assert_geq(time_mono_ms() - t0, 900, "stop returned before the grace period");
    cr_assert_lt(time_mono_ms() - t0, 8000);
    cr_assert_not(state_running(id));
    cr_assert_eq(state_int(id, "ExitCode"), 137);
    /* stopping a stopped container is fine (HTTP 304) */
    cr_assert_eq(docker_container_stop(d, id, 1, &e), ST_OK, "%s", e.msg);
    rm(id);
    free(id);
    free(name);
}

Test(docker, stop_uses_the_stop_signal)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("stopsig");
    json_t *c = config_sh("trap 'echo got-usr1; exit 7' USR1; echo ready; "
                          "while true; do sleep 0.1; done",
                          NULL);
    char *id = NULL;
    int64_t t0;
    int code;

    json_object_set_new(c, "StopSignal", json_string("SIGUSR1"));
    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_OK, "%s", e.msg);
    json_decref(c);
    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "%s", e.msg);
    wait_for_output(id, "ready");
    t0 = time_mono_ms();
    cr_assert_eq(docker_container_stop(d, id, 10, &e), ST_OK, "stop: %s", e.msg);
    cr_assert_lt(time_mono_ms() - t0, 5000, "the stop signal was not delivered");
    cr_assert_eq(docker_container_wait(d, id, 5000, &code, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(code, 7);
    wait_for_output(id, "got-usr1");
    rm(id);
    free(id);
    free(name);
}

Test(docker, kill_gives_exit_code)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("kill");
    char *id = run_sh(name, "trap 'exit 3' HUP; echo ready; while true; do sleep 0.1; done", 1);
    int code;

    wait_for_output(id, "ready");
    cr_assert_eq(docker_container_kill(d, id, "HUP", &e), ST_OK, "kill HUP: %s", e.msg);
    cr_assert_eq(docker_container_wait(d, id, 10000, &code, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(code, 3);
    /* killing a stopped container is refused */
    cr_assert_eq(docker_container_kill(d, id, NULL, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "cannot kill container '") && strstr(e.msg, "is not running"), "%s",
              e.msg);

    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_kill(d, id, NULL, &e), ST_OK, "kill: %s", e.msg);
    cr_assert_eq(docker_container_wait(d, id, 10000, &code, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(code, 137);
    rm(id);
    free(id);
    free(name);
}

Test(docker, remove_rename_and_conflicts)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("rm"), *renamed = docker_env_name("rm-renamed");
    char *id = run_sh(name, "sleep 30", 0), *id2 = NULL;
    json_t *c = config_sh("true", NULL), *j = NULL;

    /* the same name twice */
    cr_assert_eq(docker_container_create(d, name, c, &id2, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "is already in use"), "%s", e.msg);
    json_decref(c);

    cr_assert_eq(docker_container_rename(d, id, renamed, &e), ST_OK, "rename: %s", e.msg);
    j = inspect(renamed);
    cr_assert_str_eq(json_string_value(json_object_get(j, "Name")) + 1, renamed);
    json_decref(j);
    cr_assert_eq(docker_container_inspect(d, name, &j, &e), ST_NOTFOUND);
    cr_assert_null(j);

    cr_assert_eq(docker_container_remove(d, renamed, 0, 1, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_inspect(d, id, &j, &e), ST_NOTFOUND);
    cr_assert_eq(docker_container_remove(d, id, 1, 1, &e), ST_NOTFOUND);
    cr_assert_eq(docker_container_start(d, name, &e), ST_NOTFOUND);
    cr_assert(strstr(e.msg, "cannot start container '") && strstr(e.msg, "No such container"), "%s",
              e.msg);
    free(id);
    free(name);
    free(renamed);
}

Test(docker, remove_running_needs_force)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("rmforce");
    char *id = run_sh(name, "sleep 30", 1);

    cr_assert_eq(docker_container_remove(d, id, 0, 0, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "cannot remove container"), "%s", e.msg);
    cr_assert_eq(docker_container_remove(d, id, 1, 1, &e), ST_OK, "%s", e.msg);
    free(id);
    free(name);
}

struct waiter {
    const char *id;
    enum status st;
    int code;
    int64_t returned_ms;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct err e = ERR_INIT;

    w->st = docker_container_wait(d, w->id, 0, &w->code, &e);
    w->returned_ms = time_mono_ms();
    return NULL;
}

Test(docker, wait_times_out_and_cancels)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("wait");
    char *id = run_sh(name, "sleep 30", 1);
    struct waiter w = {id, ST_IO, 0, 0};
    pthread_t t;
    int64_t t0 = time_mono_ms();
    int code;

    cr_assert_eq(docker_container_wait(d, id, 300, &code, &e), ST_RETRY);
    cr_assert_lt(time_mono_ms() - t0, 3000);
    cr_assert_eq(code, -1);

    pthread_create(&t, NULL, wait_thread, &w);
    time_sleep_ms(300);
    t0 = time_mono_ms();
    docker_cancel(d);
    pthread_join(t, NULL);
    cr_assert_eq(w.st, ST_OK);
    cr_assert_eq(w.code, -1);
    cr_assert_lt(w.returned_ms - t0, 500, "cancel took %lld ms", (long long)(w.returned_ms - t0));
    /* the handle works normally afterwards */
    cr_assert_eq(docker_ping(d, &e), ST_OK, "%s", e.msg);
    rm(id);
    free(id);
    free(name);
}

Test(docker, start_reports_ip_errors)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("badip");
    json_t *c = config_sh("sleep 30", NULL);
    char *id = NULL;

    /* the default bridge takes no static addresses: the refusal comes at start */
    docker_config_set_network(c, "bridge", "172.17.250.250");
    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_OK, "%s", e.msg);
    cr_assert_neq(docker_container_start(d, id, &e), ST_OK);
    cr_assert(strncmp(e.msg, "cannot start container '", 24) == 0, "%s", e.msg);
    cr_assert(strstr(e.msg, id), "%s", e.msg);
    json_decref(c);
    rm(id);
    free(id);
    free(name);
}

/* --- listing -------------------------------------------------------------------------------- */

Test(docker, list_filters_by_label)
{
    struct err e = ERR_INIT;
    char *na = docker_env_name("list-a"), *nb = docker_env_name("list-b");
    char *tag = docker_env_name("list"), *la = xasprintf("io.kontena.test.role=%s-a", tag);
    char *lb = xasprintf("io.kontena.test.role=%s-b", tag);
    const char *labels_a[] = {la, NULL}, *labels_b[] = {lb, NULL};
    const char *filter_a[] = {docker_env_run_filter(), la, NULL};
    const char *filter_run[] = {docker_env_run_filter(), NULL};
    json_t *ca = config_sh("sleep 30", labels_a), *cb = config_sh("sleep 30", labels_b);
    json_t *list = NULL;
    char *ida = NULL, *idb = NULL;
    size_t i, seen = 0;

    cr_assert_eq(docker_container_create(d, na, ca, &ida, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_create(d, nb, cb, &idb, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_start(d, ida, &e), ST_OK, "%s", e.msg);

    cr_assert_eq(docker_container_list(d, filter_a, 1, &list, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(json_array_size(list), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "Id")), ida);
    json_decref(list);

    /* not running, so only listed with all=1 */
    const char *filter_b[] = {lb, NULL};
    cr_assert_eq(docker_container_list(d, filter_b, 0, &list, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(json_array_size(list), 0);
    json_decref(list);
    cr_assert_eq(docker_container_list(d, filter_b, 1, &list, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(json_array_size(list), 1);
    json_decref(list);

    /* the run label finds both (and maybe other tests' containers) */
    cr_assert_eq(docker_container_list(d, filter_run, 1, &list, &e), ST_OK, "%s", e.msg);
    for (i = 0; i < json_array_size(list); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(list, i), "Id"));
        seen += strcmp(id, ida) == 0 || strcmp(id, idb) == 0;
    }
    cr_assert_eq(seen, 2);
    json_decref(list);

    rm(ida);
    rm(idb);
    json_decref(ca);
    json_decref(cb);
    free(ida);
    free(idb);
    free(na);
    free(nb);
    free(la);
    free(lb);
    free(tag);
}

/* --- logs ------------------------------------------------------------------------------------ */

struct collected {
    char **lines[3];
    size_t n[3];
    int partials;
    int64_t first_ns;
    size_t stop_after; /* 0: never */
    size_t total;
};

static int collect_line(void *arg, const struct docker_log_line *l)
{
    struct collected *c = arg;
    int s = l->stream;

    cr_assert(s == DOCKER_STDOUT || s == DOCKER_STDERR);
    cr_assert_eq(strlen(l->text), l->len);
    c->lines[s] = xrealloc(c->lines[s], (c->n[s] + 1) * sizeof(char *));
    c->lines[s][c->n[s]++] = xstrdup(l->text);
    c->partials += l->partial;
    if (!c->first_ns)
        c->first_ns = l->time_ns;
    c->total++;
    return c->stop_after && c->total >= c->stop_after;
}

static void collected_release(struct collected *c)
{
    size_t s, i;

    for (s = 0; s < 3; s++) {
        for (i = 0; i < c->n[s]; i++)
            free(c->lines[s][i]);
        free(c->lines[s]);
    }
    memset(c, 0, sizeof(*c));
}

#define LONG_LINE 40000 /* > 16 KiB: the json-file driver stores it as three pieces */

static const char *LOG_SCRIPT =
    "i=1; while [ $i -le 50 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; "
    "head -c 40000 /dev/zero | tr '\\0' x; echo; echo out-end";

static void check_log_lines(struct collected *c)
{
    char want[32];
    size_t i;

    cr_assert_eq(c->n[DOCKER_STDOUT], 52, "stdout lines: %zu", c->n[DOCKER_STDOUT]);
    cr_assert_eq(c->n[DOCKER_STDERR], 50, "stderr lines: %zu", c->n[DOCKER_STDERR]);
    for (i = 0; i < 50; i++) {
        snprintf(want, sizeof(want), "out-%zu", i + 1);
        cr_assert_str_eq(c->lines[DOCKER_STDOUT][i], want);
        snprintf(want, sizeof(want), "err-%zu", i + 1);
        cr_assert_str_eq(c->lines[DOCKER_STDERR][i], want);
    }
    cr_assert_eq(strlen(c->lines[DOCKER_STDOUT][50]), LONG_LINE);
    cr_assert_eq(strspn(c->lines[DOCKER_STDOUT][50], "x"), LONG_LINE);
    cr_assert_str_eq(c->lines[DOCKER_STDOUT][51], "out-end");
    cr_assert_eq(c->partials, 0);
}

Test(docker, logs_all_lines_in_order_with_streams)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("logs"), *name2 = docker_env_name("logs-tail");
    char *id = run_sh(name, LOG_SCRIPT, 1), *id2;
    struct collected c;
    struct docker_logs_opts o = {0};
    int code;
    int64_t now_ns = time_now_us() * 1000;

    cr_assert_eq(docker_container_wait(d, id, 20000, &code, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(code, 0);

    memset(&c, 0, sizeof(c));
    cr_assert_eq(docker_container_logs(d, id, &o, collect_line, &c, &e), ST_OK, "%s", e.msg);
    check_log_lines(&c);
    /* Docker's timestamps are parsed: within a minute of now */
    cr_assert_gt(c.first_ns, now_ns - 60000000000LL);
    cr_assert_lt(c.first_ns, now_ns + 60000000000LL);
    collected_release(&c);

    /* one stream only */
    o.stderr_ = 1;
    memset(&c, 0, sizeof(c));
    cr_assert_eq(docker_container_logs(d, id, &o, collect_line, &c, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(c.n[DOCKER_STDOUT], 0);
    cr_assert_eq(c.n[DOCKER_STDERR], 50);
    collected_release(&c);
    /* tail: on a container that writes one stream only, since the two streams are
     * copied to the log by separate goroutines and interleave unpredictably at the end */
    o.stderr_ = 0;
    o.tail = 3;
    id2 = run_sh(name2, "i=1; while [ $i -le 10 ]; do echo line-$i; i=$((i+1)); done", 1);
    cr_assert_eq(docker_container_wait(d, id2, 20000, &code, &e), ST_OK, "%s", e.msg);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(docker_container_logs(d, id2, &o, collect_line, &c, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(c.n[DOCKER_STDOUT], 3);
    cr_assert_str_eq(c.lines[DOCKER_STDOUT][0], "line-8");
    cr_assert_str_eq(c.lines[DOCKER_STDOUT][2], "line-10");
    collected_release(&c);
    rm(id2);
    free(id2);
    free(name2);

    /* the callback stops the stream early */
    memset(&o, 0, sizeof(o));
    memset(&c, 0, sizeof(c));
    c.stop_after = 3;
    cr_assert_eq(docker_container_logs(d, id, &o, collect_line, &c, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(c.total, 3);
    collected_release(&c);
    /* and the handle is still good */
    cr_assert_eq(docker_ping(d, &e), ST_OK, "%s", e.msg);

    rm(id);
    free(id);
    free(name);
}

Test(docker, logs_follow_until_exit)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("logsf");
    char *script = xasprintf("sleep 0.5; %s", LOG_SCRIPT);
    char *id = run_sh(name, script, 1);
    struct collected c;
    struct docker_logs_opts o = {.follow = 1};

    memset(&c, 0, sizeof(c));
    /* returns by itself when the container exits */
    cr_assert_eq(docker_container_logs(d, id, &o, collect_line, &c, &e), ST_OK, "%s", e.msg);
    check_log_lines(&c);
    collected_release(&c);
    rm(id);
    free(id);
    free(script);
    free(name);
}

Test(docker, logs_long_line_cut_at_cap)
{
    struct err e = ERR_INIT;
    struct docker_opts opts = {.max_line_bytes = 10000};
    struct docker *small = docker_create(&opts, &e);
    char *name = docker_env_name("logscap");
    char *id = run_sh(name, LOG_SCRIPT, 1);
    struct collected c;
    int code;
    size_t i, sum = 0;

    cr_assert_eq(docker_container_wait(d, id, 20000, &code, &e), ST_OK, "%s", e.msg);
    memset(&c, 0, sizeof(c));
    cr_assert_eq(docker_container_logs(small, id, NULL, collect_line, &c, &e), ST_OK, "%s", e.msg);
    /* 40000 bytes in 4 pieces of 10000: the first 3 flagged partial, the last ends the line */
    cr_assert_eq(c.n[DOCKER_STDOUT], 50 + 4 + 1);
    for (i = 50; i < 54; i++) {
        cr_assert_eq(strlen(c.lines[DOCKER_STDOUT][i]), 10000);
        sum += strlen(c.lines[DOCKER_STDOUT][i]);
    }
    cr_assert_eq(sum, LONG_LINE);
    cr_assert_eq(c.partials, 3);
    collected_release(&c);
    docker_destroy(small);
    rm(id);
    free(id);
    free(name);
}

/* --- events ---------------------------------------------------------------------------------- */

struct ev_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connected;
    const char *id;
    int64_t kill_seen_ms;
    int64_t die_seen_ms;
    char die_exit[16];
    enum status st;
    struct err e;
    json_t *filters;
    int64_t since;
};

static void ev_connected(void *arg)
{
    struct ev_ctx *c = arg;

    pthread_mutex_lock(&c->mu);
    c->connected = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int ev_cb(void *arg, const struct docker_event *ev)
{
    struct ev_ctx *c = arg;

    cr_assert_str_eq(ev->type, "container");
    if (!c->id || strcmp(ev->id, c->id) != 0)
        return 0;
    if (strcmp(ev->action, "kill") == 0 && !c->kill_seen_ms)
        c->kill_seen_ms = time_mono_ms();
    if (strcmp(ev->action, "die") == 0) {
        const char *x = json_string_value(json_object_get(ev->attributes, "exitCode"));
        c->die_seen_ms = time_mono_ms();
        snprintf(c->die_exit, sizeof(c->die_exit), "%s", x ? x : "");
        return 1; /* done */
    }
    return 0;
}

static void *events_thread(void *arg)
{
    struct ev_ctx *c = arg;

    c->st = docker_events(d, c->filters, c->since, 0, ev_connected, ev_cb, c, &c->e);
    ev_connected(c); /* wake the test if the stream failed before connecting */
    return NULL;
}

Test(docker, events_see_a_docker_kill_within_a_second)
{
    char *name = docker_env_name("events");
    char *id = run_sh(name, "sleep 30", 1);
    struct ev_ctx c;
    pthread_t t;
    struct timespec until;
    const char *argv[] = {"docker", "kill", id, NULL};
    int64_t t0;
    char *err = NULL;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.id = id;
    c.filters = json_pack("{s:[s], s:[s]}", "type", "container", "label", docker_env_run_filter());
    pthread_create(&t, NULL, events_thread, &c);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&c.mu);
    while (!c.connected)
        cr_assert_eq(pthread_cond_timedwait(&c.cv, &c.mu, &until), 0, "events never connected");
    pthread_mutex_unlock(&c.mu);

    t0 = time_mono_ms();
    cr_assert_eq(proc_run(argv, NULL, NULL, NULL, &err), 0, "docker kill: %s", err);
    free(err);
    pthread_join(t, NULL); /* the callback ends the stream at "die" */
    cr_assert_eq(c.st, ST_OK, "%s", c.e.msg);
    cr_assert(c.kill_seen_ms, "no kill event");
    cr_assert_lt(c.kill_seen_ms - t0, 1000, "kill seen after %lld ms",
                 (long long)(c.kill_seen_ms - t0));
    cr_assert_str_eq(c.die_exit, "137");
    json_decref(c.filters);
    rm(id);
    free(id);
    free(name);
}

Test(docker, events_cancel_from_another_thread)
{
    struct ev_ctx c;
    pthread_t t;
    int64_t t0;

    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    /* a filter nothing matches: the stream stays idle */
    c.filters = json_pack("{s:[s]}", "label", "io.kontena.test.nothing=here");
    pthread_create(&t, NULL, events_thread, &c);
    time_sleep_ms(300);
    t0 = time_mono_ms();
    docker_cancel(d);
    pthread_join(t, NULL);
    cr_assert_eq(c.st, ST_OK, "%s", c.e.msg);
    cr_assert_lt(time_mono_ms() - t0, 500);
    cr_assert(c.connected);
    json_decref(c.filters);
}

Test(docker, events_since_replays_and_until_ends)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("evsince");
    int64_t since = time_now_us() / 1000000 - 1;
    char *id = run_sh(name, "exit 4", 1);
    struct ev_ctx c;
    int code;

    cr_assert_eq(docker_container_wait(d, id, 10000, &code, &e), ST_OK, "%s", e.msg);
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.id = id;
    c.filters = json_pack("{s:[s]}", "container", id);
    /* the die happened before we subscribed: `since` replays it; `until` ends the stream
     * even if the callback did not */
    c.st = docker_events(d, c.filters, since, time_now_us() / 1000000 + 2, NULL, ev_cb, &c, &c.e);
    cr_assert_eq(c.st, ST_OK, "%s", c.e.msg);
    cr_assert_str_eq(c.die_exit, "4");
    json_decref(c.filters);
    rm(id);
    free(id);
    free(name);
}

/* --- exec ------------------------------------------------------------------------------------ */

Test(docker, exec_exit_codes_and_output)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("exec");
    char *id = run_sh(name, "sleep 60", 1);
    const char *ok[] = {"sh", "-c", "echo hello; echo \"$FOO\"", NULL};
    const char *env[] = {"FOO=bar", NULL};
    const char *fail[] = {"sh", "-c", "echo to-out; echo to-err >&2; exit 32", NULL};
    const char *missing[] = {"/no/such/binary", NULL};
    const char *big[] = {"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y", NULL};
    struct docker_exec_opts o = {.cmd = ok, .env = env};
    struct docker_exec_result r;

    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.exit_code, 0);
    cr_assert_str_eq(r.out, "hello\nbar\n");
    cr_assert_str_eq(r.err, "");
    docker_exec_result_release(&r);

    o.cmd = fail;
    o.env = NULL;
    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.exit_code, 32);
    cr_assert_str_eq(r.out, "to-out\n");
    cr_assert_str_eq(r.err, "to-err\n");
    docker_exec_result_release(&r);

    o.cmd = missing;
    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.exit_code, 126);
    cr_assert(strstr(r.out, "/no/such/binary"), "%s", r.out); /* Docker's error, on stdout */
    docker_exec_result_release(&r);

    /* output larger than one frame and one read, then over the cap */
    o.cmd = big;
    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(r.out_len, 300000);
    cr_assert_eq(strspn(r.out, "y"), 300000);
    docker_exec_result_release(&r);
    o.max_output = 100000;
    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "stdout over 100000 bytes"), "%s", e.msg);
    cr_assert_null(r.out);
    /* the handle recovers from the aborted stream */
    cr_assert_eq(docker_ping(d, &e), ST_OK, "%s", e.msg);

    /* not running */
    cr_assert_eq(docker_container_kill(d, id, NULL, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_wait(d, id, 10000, &r.exit_code, &e), ST_OK, "%s", e.msg);
    o.cmd = ok;
    o.max_output = 0;
    cr_assert_eq(docker_exec(d, id, &o, &r, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "is not running"), "%s", e.msg);
    rm(id);
    free(id);
    free(name);
}

/* --- stats ----------------------------------------------------------------------------------- */

Test(docker, stats_one_sample)
{
    struct err e = ERR_INIT;
    char *name = docker_env_name("stats");
    char *id = run_sh(name, "sleep 60", 1);
    json_t *s = NULL;
    int64_t t0 = time_mono_ms();

    cr_assert_eq(docker_container_stats(d, id, &s, &e), ST_OK, "%s", e.msg);
    cr_assert_lt(time_mono_ms() - t0, 5000);
    cr_assert(json_is_object(json_object_get(s, "cpu_stats")));
    cr_assert(json_is_object(json_object_get(s, "precpu_stats")));
    cr_assert_gt(json_integer_value(json_object_get(json_object_get(s, "memory_stats"), "usage")),
                 0);
    json_decref(s);
    cr_assert_eq(docker_container_stats(d, "kontena-test-no-such", &s, &e), ST_NOTFOUND);
    rm(id);
    free(id);
    free(name);
}

/* --- networks and volumes ------------------------------------------------------------------- */

Test(docker, network_round_trip)
{
    struct err e = ERR_INIT;
    char *net = docker_env_name("net"), *n1 = docker_env_name("net-c1");
    char *n2 = docker_env_name("net-c2"), *n3 = docker_env_name("net-c3");
    /* a /24 of its own per run, so parallel runs do not collide */
    unsigned octet = 10 + (unsigned)(getpid() % 200);
    char *subnet = xasprintf("10.213.%u.0/24", octet), *gw = xasprintf("10.213.%u.1", octet);
    char *ip1 = xasprintf("10.213.%u.10", octet), *ip2 = xasprintf("10.213.%u.11", octet);
    json_t *cfg, *j = NULL, *c;
    char *netid = NULL, *id1 = NULL, *id2, *id3 = NULL;
    const char *got;

    cfg = json_pack("{s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}}", "Name", net, "Driver", "bridge",
                    "IPAM", "Config", "Subnet", subnet, "Gateway", gw, "Labels",
                    DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    cr_assert_eq(docker_network_create(d, cfg, &netid, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_network_create(d, cfg, NULL, &e), ST_CONFLICT);
    json_decref(cfg);

    cr_assert_eq(docker_network_inspect(d, net, &j, &e), ST_OK, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(j, "Id")), netid);
    got = json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(j, "IPAM"), "Config"), 0), "Subnet"));
    cr_assert_str_eq(got, subnet);
    json_decref(j);

    /* a static address at create */
    c = config_sh("sleep 60", NULL);
    docker_config_set_network(c, net, ip1);
    cr_assert_eq(docker_container_create(d, n1, c, &id1, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_start(d, id1, &e), ST_OK, "%s", e.msg);
    j = inspect(id1);
    got = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(j, "NetworkSettings"), "Networks"), net),
        "IPAddress"));
    cr_assert_str_eq(got, ip1);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "HostConfig"), "NetworkMode")), net);
    json_decref(j);

    /* the same address again: created fine, refused at start */
    cr_assert_eq(docker_container_create(d, n3, c, &id3, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_start(d, id3, &e), ST_CONFLICT, "%s", e.msg);
    cr_assert(strstr(e.msg, "cannot start container '") && strstr(e.msg, "Address already in use"),
              "%s", e.msg);
    rm(id3);
    json_decref(c);

    /* connect a container from the default bridge with an address */
    id2 = run_sh(n2, "sleep 60", 1);
    cr_assert_eq(docker_network_connect(d, net, id2, ip2, &e), ST_OK, "%s", e.msg);
    j = inspect(id2);
    got = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(j, "NetworkSettings"), "Networks"), net),
        "IPAddress"));
    cr_assert_str_eq(got, ip2);
    json_decref(j);
    cr_assert_eq(docker_network_disconnect(d, net, id2, 0, &e), ST_OK, "%s", e.msg);

    /* in use */
    cr_assert_eq(docker_network_remove(d, net, &e), ST_CONFLICT, "%s", e.msg);
    cr_assert(strstr(e.msg, "cannot remove network '"), "%s", e.msg);
    rm(id1);
    rm(id2);
    cr_assert_eq(docker_network_remove(d, net, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_network_inspect(d, net, &j, &e), ST_NOTFOUND);
    cr_assert_eq(docker_network_remove(d, net, &e), ST_NOTFOUND);

    free(id1);
    free(id2);
    free(id3);
    free(netid);
    free(net);
    free(n1);
    free(n2);
    free(n3);
    free(subnet);
    free(gw);
    free(ip1);
    free(ip2);
}

Test(docker, volume_round_trip)
{
    struct err e = ERR_INIT;
    char *vol = docker_env_name("vol"), *name = docker_env_name("vol-c");
    char *bind = xasprintf("%s:/data", vol);
    json_t *cfg, *v = NULL, *c;
    char *id = NULL;
    int code;
    struct docker_logs_opts lo = {0};
    struct collected col;

    cfg = json_pack("{s:s, s:s, s:{s:s}}", "Name", vol, "Driver", "local", "Labels",
                    DOCKER_ENV_RUN_LABEL, docker_env_run_id());
    cr_assert_eq(docker_volume_create(d, cfg, &v, &e), ST_OK, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(v, "Name")), vol);
    json_decref(v);
    /* again: Docker answers with the existing volume */
    cr_assert_eq(docker_volume_create(d, cfg, NULL, &e), ST_OK, "%s", e.msg);
    json_decref(cfg);
    cr_assert_eq(docker_volume_inspect(d, vol, &v, &e), ST_OK, "%s", e.msg);
    cr_assert(json_string_value(json_object_get(v, "Mountpoint")));
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(v, "Labels"), DOCKER_ENV_RUN_LABEL)),
        docker_env_run_id());
    json_decref(v);

    /* used by a container: data written there outlives it */
    c = config_sh("echo kept > /data/f; cat /data/f", NULL);
    json_object_set_new(json_object_get(c, "HostConfig"), "Binds", json_pack("[s]", bind));
    cr_assert_eq(docker_container_create(d, name, c, &id, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_start(d, id, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_container_wait(d, id, 10000, &code, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(code, 0);
    memset(&col, 0, sizeof(col));
    cr_assert_eq(docker_container_logs(d, id, &lo, collect_line, &col, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(col.n[DOCKER_STDOUT], 1);
    cr_assert_str_eq(col.lines[DOCKER_STDOUT][0], "kept");
    collected_release(&col);
    cr_assert_eq(docker_volume_remove(d, vol, 0, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "cannot remove volume '") && strstr(e.msg, "in use"), "%s", e.msg);
    rm(id);
    cr_assert_eq(docker_volume_remove(d, vol, 0, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(docker_volume_inspect(d, vol, &v, &e), ST_NOTFOUND);
    cr_assert_eq(docker_volume_remove(d, vol, 0, &e), ST_NOTFOUND);
    json_decref(c);
    free(id);
    free(bind);
    free(vol);
    free(name);
}

/* --- the frame decoder on hand-made streams ------------------------------------------------- */

struct dm {
    char out[8][64];
    int stream[8];
    int partial[8];
    int64_t ns[8];
    int n;
};

static int dm_cb(void *arg, const struct docker_log_line *l)
{
    struct dm *m = arg;

    cr_assert_lt(m->n, 8);
    snprintf(m->out[m->n], sizeof(m->out[0]), "%.*s", (int)l->len, l->text);
    m->stream[m->n] = l->stream;
    m->partial[m->n] = l->partial;
    m->ns[m->n] = l->time_ns;
    m->n++;
    return 0;
}

static size_t frame(unsigned char *p, int stream, const char *payload)
{
    size_t n = strlen(payload);

    p[0] = (unsigned char)stream;
    p[1] = p[2] = p[3] = 0;
    p[4] = (unsigned char)(n >> 24);
    p[5] = (unsigned char)(n >> 16);
    p[6] = (unsigned char)(n >> 8);
    p[7] = (unsigned char)n;
    memcpy(p + 8, payload, n);
    return 8 + n;
}

Test(demux, frames_split_anywhere)
{
    unsigned char s[512];
    size_t len = 0, step;
    struct err e = ERR_INIT;

    len += frame(s + len, 1, "2026-11-23T01:17:36.000000001Z out-1\n");
    len += frame(s + len, 2, "2026-11-23T01:17:36.5Z err-");
    len += frame(s + len, 2, "2026-11-23T01:17:37Z 1\n");
    len += frame(s + len, 1, "2026-11-23T01:17:38Z tail-without-newline");
    /* every way of cutting the stream gives the same lines */
    for (step = 1; step <= len; step++) {
        struct docker_demux x;
        struct dm m;
        size_t off;

        memset(&m, 0, sizeof(m));
        docker_demux_init(&x, 0, 1, 0, dm_cb, &m);
        for (off = 0; off < len; off += step)
            cr_assert_eq(docker_demux_feed(&x, s + off, off + step > len ? len - off : step, &e),
                         ST_OK);
        docker_demux_finish(&x);
        docker_demux_release(&x);
        cr_assert_eq(m.n, 3, "step %zu: %d lines", step, m.n);
        cr_assert_str_eq(m.out[0], "out-1");
        cr_assert_eq(m.stream[0], DOCKER_STDOUT);
        cr_assert_eq(m.ns[0], 1795396656000000001LL);
        cr_assert_str_eq(m.out[1], "err-1");
        cr_assert_eq(m.stream[1], DOCKER_STDERR);
        cr_assert_eq(m.ns[1], 1795396656500000000LL, "the first piece's time");
        cr_assert_str_eq(m.out[2], "tail-without-newline");
        cr_assert_eq(m.partial[2], 1);
        cr_assert_eq(m.partial[0] + m.partial[1], 0);
    }
}

Test(demux, raw_and_malformed)
{
    struct docker_demux x;
    struct dm m;
    struct err e = ERR_INIT;
    static const unsigned char bad[8] = {7, 0, 0, 0, 0, 0, 0, 1};

    memset(&m, 0, sizeof(m));
    docker_demux_init(&x, 1, 0, 0, dm_cb, &m);
    cr_assert_eq(docker_demux_feed(&x, "a\nb", 3, &e), ST_OK);
    cr_assert_eq(docker_demux_feed(&x, "c\n", 2, &e), ST_OK);
    docker_demux_release(&x);
    cr_assert_eq(m.n, 2);
    cr_assert_str_eq(m.out[1], "bc");

    docker_demux_init(&x, 0, 0, 0, dm_cb, &m);
    cr_assert_eq(docker_demux_feed(&x, bad, sizeof(bad), &e), ST_INVALID);
    cr_assert(strstr(e.msg, "malformed"), "%s", e.msg);
    docker_demux_release(&x);
}

Test(demux, parse_time)
{
    cr_assert_eq(docker_parse_time_ns("1970-01-01T00:00:01Z", 20), 1000000000LL);
    cr_assert_eq(docker_parse_time_ns("1970-01-01T01:00:01.25+01:00", 28), 1250000000LL);
    cr_assert_eq(docker_parse_time_ns("1970-01-01T00:00:01", 19), -1);
    cr_assert_eq(docker_parse_time_ns("garbage-garbage-garbage", 23), -1);
    cr_assert_eq(docker_parse_time_ns("1970-13-01T00:00:01Z", 20), -1);
}
