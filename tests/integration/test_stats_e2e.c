/* tests/integration/test_stats_e2e.c -- container and node statistics end to end (issue 8,
 * points 2 and 4): a whole platform (tests/support/platform.h) whose agent samples every
 * second (--stats-interval 1) and the real `kontena` CLI.
 *
 *   - `service stats` / `stack stats` / `grid stats` show a running service's containers in
 *     the original's columns within a few intervals, and they vanish when it is removed;
 *   - `node show` has the stats block (cpus, load, memory, filesystem);
 *   - the apiserver's and the agent's /metrics pass Debian's `promtool check metrics` and the
 *     apiserver's carries the service's container series and the node's.
 *
 * The apiserver's /metrics listener is put on a free port through KONTENA_METRICS_LISTEN (the
 * platform's processes inherit the environment); the agent's through --metrics-listen.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/http.h"
#include "tests/support/platform.h"
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

static struct platform pf;
static char *stack_name, *stack_file, *log_dir;

static void suite_init(void)
{
    docker_env_require();
}

static void suite_fini(void)
{
    platform_cleanup(&pf);
    if (log_dir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(log_dir);
    FREE_AND_NULL(log_dir);
    FREE_AND_NULL(stack_name);
    FREE_AND_NULL(stack_file);
}

TestSuite(stats, .init = suite_init, .fini = suite_fini, .timeout = 180);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            platform_dump_logs(&pf);                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* GET url; the body (fresh) of a 200 reply, else NULL after saying why. */
static char *get_text(const char *url)
{
    struct http_reply r;
    char *body = NULL;

    if (http_do("GET", url, NULL, NULL, 0, NULL, &r) != 0 || r.status != 200) {
        fprintf(stderr, "stats: GET %s: %ld %s\n", url, r.status, r.body ? r.body : "");
    } else {
        body = r.body;
        r.body = NULL;
    }
    http_reply_release(&r);
    return body;
}

/* `promtool check metrics` on text: its exit status; its output to stderr on failure. */
static int promtool(const char *text, const char *what)
{
    const char *argv[] = {"promtool", "check", "metrics", NULL};
    char *out = NULL, *err = NULL;
    int rc = proc_run(argv, NULL, text, &out, &err);

    if (rc != 0)
        fprintf(stderr, "promtool check metrics (%s): exit %d\n%s%s\n", what, rc, out ? out : "",
                err ? err : "");
    free(out);
    free(err);
    return rc;
}

/* The data rows (lines after the header) of a stats table holding `needle`. */
static int rows_with(const char *table, const char *needle)
{
    const char *p = strchr(table, '\n');
    int n = 0;

    while (p && p[1]) {
        const char *nl = strchr(p + 1, '\n');
        size_t len = nl ? (size_t)(nl - p - 1) : strlen(p + 1);
        char *line = xstrndup(p + 1, len);
        if (strstr(line, needle))
            n++;
        free(line);
        p = nl;
    }
    return n;
}

Test(stats, stats_appear_for_a_running_service_and_vanish_when_it_is_removed)
{
    int api_mport = proc_free_port(), agent_mport = proc_free_port();
    char api_listen[64], agent_listen[64], *svc, *text, *url, *prefix, *series;
    const char *agent_args[] = {"--stats-interval", "1", "--metrics-listen", agent_listen, NULL};
    struct platform_opts o = {.agents = 1, .grid_suffix = "stats", .agent_args = agent_args};
    int64_t deadline;
    int rows = 0;

    snprintf(api_listen, sizeof(api_listen), "127.0.0.1:%d", api_mport);
    snprintf(agent_listen, sizeof(agent_listen), "127.0.0.1:%d", agent_mport);
    setenv("KONTENA_METRICS_LISTEN", api_listen, 1);
    log_dir = proc_tempdir("kontena-logstore");
    setenv("KONTENA_LOG_DIR", log_dir, 1);
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        cr_assert_fail("cannot start the platform (logs above)");
    }
    stack_name = platform_name("st");
    text = xasprintf("stack: stats/st\nversion: 1.0.0\nservices:\n"
                     "  idle:\n"
                     "    image: " DOCKER_ENV_IMAGE "\n"
                     "    instances: 2\n"
                     "    mem_limit: 64m\n"
                     "    stop_grace_period: 1s\n"
                     "    command: sleep 3600\n");
    stack_file = platform_write_file(&pf, "stack.yml", text);
    free(text);
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "90",
                       "--no-wait", stack_file, NULL) == 0,
          "stack install: %s%s", pf.out, pf.err);
    {
        json_t *running = platform_wait_running(&pf, stack_name, "idle", 2, 60000);
        CHECK(running, "idle not running");
        json_decref(running);
    }
    svc = xasprintf("%s/idle", stack_name);
    prefix = xasprintf("%s.idle-", stack_name);

    /* service stats: both containers within a few intervals */
    deadline = time_mono_ms() + 30000;
    for (;;) {
        CHECK(platform_cli(&pf, "service", "stats", svc, NULL) == 0, "service stats: %s%s", pf.out,
              pf.err);
        rows = rows_with(pf.out, prefix);
        if (rows == 2 && !strstr(pf.out, "N/A"))
            break;
        CHECK(time_mono_ms() < deadline, "service stats after 30 s:\n%s", pf.out);
        time_sleep_ms(500);
    }
    fprintf(stderr, "stats: service stats:\n%s", pf.out);
    cr_assert(!strncmp(pf.out, "CONTAINER", 9), "header: %s", pf.out);
    {
        const char *cols[] = {"CPU %", "MEM USAGE/LIMIT", "MEM %", "NET I/O"};
        char *hdr = xstrndup(pf.out, strcspn(pf.out, "\n"));
        const char *at = hdr;
        for (size_t i = 0; i < 4; i++) {
            const char *q = strstr(at, cols[i]);
            cr_assert(q, "header lacks '%s' (in order): %s", cols[i], hdr);
            at = q + strlen(cols[i]);
        }
        free(hdr);
    }
    /* 64 MiB limit = 67.11M in the original's units; a percentage next to it */
    cr_assert(strstr(pf.out, " / 67.11M"), "no 64m limit shown: %s", pf.out);
    cr_assert(strstr(pf.out, "%"), "%s", pf.out);

    /* stack stats and grid stats show the same containers; -o json has the numbers */
    CHECK(platform_cli(&pf, "stack", "stats", stack_name, NULL) == 0, "%s%s", pf.out, pf.err);
    cr_assert_eq(rows_with(pf.out, prefix), 2, "stack stats:\n%s", pf.out);
    CHECK(platform_cli(&pf, "grid", "stats", NULL) == 0, "%s%s", pf.out, pf.err);
    cr_assert_eq(rows_with(pf.out, prefix), 2, "grid stats:\n%s", pf.out);
    CHECK(platform_cli(&pf, "service", "stats", "-o", "json", svc, NULL) == 0, "%s%s", pf.out,
          pf.err);
    {
        json_t *j = json_loads(pf.out, 0, NULL), *s;
        size_t i;
        cr_assert(j, "not JSON: %s", pf.out);
        cr_assert_eq(json_array_size(json_object_get(j, "stats")), 2, "%s", pf.out);
        json_array_foreach(json_object_get(j, "stats"), i, s)
        {
            json_t *cpu = json_object_get(json_object_get(s, "cpu"), "usage_pct");
            json_t *mem = json_object_get(s, "memory");
            cr_assert(json_is_number(cpu) && json_number_value(cpu) >= 0, "%s", pf.out);
            cr_assert_eq(json_integer_value(json_object_get(mem, "limit")), 64 << 20, "%s", pf.out);
            cr_assert_gt(json_number_value(json_object_get(mem, "usage")), 0, "%s", pf.out);
        }
        json_decref(j);
    }

    /* node show: the stats block from the latest node sample */
    CHECK(platform_cli(&pf, "node", "show", "node-1", NULL) == 0, "%s%s", pf.out, pf.err);
    fprintf(stderr, "stats: node show:\n%s", pf.out);
    cr_assert(strstr(pf.out, "\n  stats:\n    cpus: "), "%s", pf.out);
    cr_assert(strstr(pf.out, "\n    load: "), "%s", pf.out);
    cr_assert(strstr(pf.out, "\n    memory: ") && strstr(pf.out, " GB\n"), "%s", pf.out);
    cr_assert(strstr(pf.out, "\n    filesystem:\n      - "), "%s", pf.out);

    /* /metrics: valid exposition format, the service's series and the node's */
    url = xasprintf("http://%s/metrics", api_listen);
    text = get_text(url);
    CHECK(text, "no /metrics on the apiserver (%s)", url);
    cr_assert_eq(promtool(text, "apiserver"), 0, "the apiserver's /metrics fails promtool");
    series = xasprintf("container=\"%s1\"", prefix);
    cr_assert(strstr(text, "kontena_container_cpu_usage_percent{") && strstr(text, series),
              "no cpu series of %s1 in the apiserver's /metrics", prefix);
    cr_assert(strstr(text, "kontena_container_memory_usage_bytes{"), "no memory series");
    cr_assert(strstr(text, "kontena_node_load1{"), "no node load series");
    free(text);
    free(url);
    url = xasprintf("http://%s/metrics", agent_listen);
    text = get_text(url);
    CHECK(text, "no /metrics on the agent (%s)", url);
    cr_assert_eq(promtool(text, "agent"), 0, "the agent's /metrics fails promtool");
    free(text);
    free(url);

    /* remove the stack: its containers' stats vanish */
    CHECK(platform_cli(&pf, "stack", "rm", "--force", stack_name, NULL) == 0, "stack rm: %s%s",
          pf.out, pf.err);
    deadline = time_mono_ms() + 30000;
    for (;;) {
        CHECK(platform_cli(&pf, "grid", "stats", NULL) == 0, "%s%s", pf.out, pf.err);
        rows = rows_with(pf.out, prefix);
        if (rows == 0)
            break;
        CHECK(time_mono_ms() < deadline, "stats still there 30 s after the removal:\n%s", pf.out);
        time_sleep_ms(500);
    }
    url = xasprintf("http://%s/metrics", api_listen);
    text = get_text(url);
    CHECK(text, "no /metrics on the apiserver");
    cr_assert(!strstr(text, series), "the removed containers' series are still exported");
    free(text);
    free(url);

    free(series);
    free(prefix);
    free(svc);
    cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly");
}
