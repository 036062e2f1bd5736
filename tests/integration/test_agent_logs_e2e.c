/* tests/integration/test_agent_logs_e2e.c -- the agent's logs and stats end to end: a whole
 * platform (tests/support/platform.h: real etcd, kontena-apiserver, controllers, one real
 * kontena-agent on the machine's dockerd) and the real CLI. A service prints numbered lines
 * on stdout and stderr while its agent is stopped (SIGTERM) and started, killed (SIGKILL) and
 * started, and the apiserver restarted: the master stores every line of each stream exactly
 * once and in order; its container and node stats keys appear in etcd and the container's
 * vanish when the stack is removed.
 *
 * A binary of its own, not a suite of test_agent_logs: with two suites running in parallel
 * (-j2) Criterion's runner leaves a 48-byte allocation that LeakSanitizer reports.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/docker_env.h"
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
static char *e2e_logdir;

static void e2e_init(void)
{
    docker_env_require();
}

static void e2e_fini(void)
{
    platform_cleanup(&pf);
    if (e2e_logdir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(e2e_logdir);
    FREE_AND_NULL(e2e_logdir);
}

TestSuite(e2e, .init = e2e_init, .fini = e2e_fini, .timeout = 240);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            platform_dump_logs(&pf);                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

#define E2E_N 3000

static size_t count_keys(const char *prefix)
{
    struct etcd_range_result r;
    struct etcd_range_opts o = {.range_end = ETCD_PREFIX, .count_only = 1};
    struct err e = ERR_INIT;
    size_t n;

    memset(&r, 0, sizeof(r));
    if (etcd_range(pf.ec, prefix, &o, &r, &e) != ST_OK)
        return (size_t)-1;
    n = (size_t)r.count;
    etcd_range_result_release(&r);
    return n;
}

/* A service printing "out i" / "err i": its agent is stopped (SIGTERM) and started, killed
 * (SIGKILL) and started, and the apiserver restarted while it prints; the master stores every
 * line of each stream exactly once, in order, stderr typed. Its stats keys appear while it
 * runs (with the node's) and vanish when it is removed. */
Test(e2e, agent_and_master_restarts_lose_and_duplicate_nothing)
{
    static const char *const agent_args[] = {"--stats-interval", "1", NULL};
    struct platform_opts o = {.agents = 1, .agent_args = agent_args};
    char suffix[32], *stack, *file, *text, *svc, *cprefix, *nkey;
    json_t *a, *e;
    long next[2] = {1, 1};
    size_t i, got;

    snprintf(suffix, sizeof(suffix), "al-%x", (unsigned)getpid());
    o.grid_suffix = suffix;
    e2e_logdir = proc_tempdir("kontena-agentlogs");
    cr_assert_not_null(e2e_logdir);
    setenv("KONTENA_LOG_DIR", e2e_logdir, 1);
    setenv("KONTENA_METRICS_LISTEN", "off", 1);
    CHECK(platform_start(&pf, &o) == 0, "cannot start the platform");
    stack = platform_name("al");
    text = xasprintf("stack: test/al\nversion: 1.0.0\nservices:\n  seq:\n    image: %s\n"
                     "    stop_grace_period: 1s\n"
                     "    command: sh -c 'i=1; while [ $$i -le %d ]; do echo \"out $$i\"; "
                     "echo \"err $$i\" >&2; [ $$((i %% 100)) = 0 ] && sleep 0.3; i=$$((i+1)); "
                     "done; exec sleep 3600'\n",
                     DOCKER_ENV_IMAGE, E2E_N);
    file = platform_write_file(&pf, "al.yml", text);
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack, file, NULL) == 0,
          "stack install: %s%s", pf.out, pf.err);
    svc = xasprintf("%s/seq", stack);

    got = platform_wait_service_logs(&pf, svc, 600, 60000);
    CHECK(got >= 600, "%zu lines stored", got);
    fprintf(stderr, "e2e: agent SIGTERM after %zu lines\n", got);
    CHECK(platform_agent_stop(&pf, 0, SIGTERM) == 0, "agent stop");
    time_sleep_ms(1000);
    CHECK(platform_agent_start(&pf, 0) == 0, "agent start");
    got = platform_wait_service_logs(&pf, svc, got + 600, 60000);
    fprintf(stderr, "e2e: agent SIGKILL after %zu lines\n", got);
    CHECK(platform_agent_stop(&pf, 0, SIGKILL) == 0, "agent kill");
    time_sleep_ms(1000);
    CHECK(platform_agent_start(&pf, 0) == 0, "agent start");
    got = platform_wait_service_logs(&pf, svc, got + 600, 60000);
    fprintf(stderr, "e2e: apiserver restart after %zu lines\n", got);
    CHECK(api_proc_stop(&pf.api) == 0, "apiserver stop");
    time_sleep_ms(1000);
    CHECK(api_proc_restart(&pf.api) == 0, "apiserver restart");
    got = platform_wait_service_logs(&pf, svc, 2 * E2E_N, 90000);
    CHECK(got == 2 * E2E_N, "%zu lines stored, want %d", got, 2 * E2E_N);
    time_sleep_ms(1000);
    a = platform_service_logs(&pf, svc);
    cr_assert_eq(json_array_size(a), 2 * E2E_N);
    json_array_foreach(a, i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *data = json_string_value(json_object_get(e, "data"));
        int err = type && !strcmp(type, "stderr");
        char want[32];
        snprintf(want, sizeof(want), "%s %ld", err ? "err" : "out", next[err]);
        cr_assert_str_eq(data, want, "entry %zu (%s) is '%s' where '%s' was due", i, type, data,
                         want);
        next[err]++;
    }
    json_decref(a);

    /* stats: the container's key and the node's, then none for the container once removed */
    cprefix = xasprintf("/kontena/stats/%s/containers/", pf.grid);
    nkey = xasprintf("/kontena/stats/%s/nodes/", pf.grid);
    for (int k = 0; k < 50 && count_keys(cprefix) != 1; k++)
        time_sleep_ms(200);
    CHECK(count_keys(cprefix) == 1, "%zu container stats keys", count_keys(cprefix));
    CHECK(count_keys(nkey) == 1, "%zu node stats keys", count_keys(nkey));
    CHECK(platform_cli(&pf, "stack", "rm", "--force", stack, NULL) == 0, "stack rm: %s%s",
          pf.out, pf.err);
    for (int k = 0; k < 100 && count_keys(cprefix) != 0; k++)
        time_sleep_ms(200);
    CHECK(count_keys(cprefix) == 0, "%zu container stats keys after the stack is gone",
          count_keys(cprefix));
    CHECK(platform_stop(&pf) == 0, "a process did not exit cleanly");
    free(cprefix);
    free(nkey);
    free(svc);
    free(file);
    free(text);
    free(stack);
}
