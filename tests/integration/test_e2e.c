/* tests/integration/test_e2e.c -- the whole platform end to end (issue 5, point 6): a real
 * etcd, kontena-apiserver, the four controllers and three kontena-agent processes (node-1..3)
 * on the machine's one dockerd, driven through the `kontena` CLI.
 *
 * Every test gets its own platform (tests/support/platform.h) with its own grid, and installs
 * a stack whose name is unique to the test and the run (the agents name containers
 * "<stack>.<service>-<n>" on the shared dockerd). The controllers run with short graces
 * (--grace-* 3s, --online-grace 1s). platform_cleanup() removes the grid's containers even
 * when a test fails.
 *
 * All three nodes are one dockerd, so a lost host is simulated by SIGKILLing its agent AND
 * removing its containers (a dead host's containers are gone too; left running, they would
 * hold the container names the surviving nodes need). */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static char *stack_name, *stack_file;

static const char *const *short_graces(const char *name, void *arg)
{
    static const char *const resched[] = {
        "--grace-ha", "3s", "--grace-random", "3s", "--grace-daemon", "3s", "--online-grace",
        "1s",         NULL};

    (void)arg;
    if (!strcmp(name, "rescheduler"))
        return resched;
    return NULL;
}

static void e2e_init(void)
{
    struct platform_opts o = {.agents = 3, .ctl_args = short_graces};
    const struct criterion_test *t = criterion_current_test;
    char suffix[64];

    docker_env_require();
    /* Short, as "web-<n>.<stack>.<grid>.kontena.local" must stay within 64 characters, and
     * different for every test: tests run in parallel, and two platforms with one grid name
     * would have agents removing each other's containers (same grid and node labels). */
    {
        const char *name = t ? t->name : "x";
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const char *c = name; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        snprintf(suffix, sizeof(suffix), "e-%06x", (unsigned)(h & 0xffffff));
    }
    o.grid_suffix = suffix;
    if (platform_start(&pf, &o) != 0) {
        platform_dump_logs(&pf);
        cr_assert_fail("cannot start the platform (logs above)");
    }
}

static void e2e_fini(void)
{
    platform_cleanup(&pf);
    FREE_AND_NULL(stack_name);
    FREE_AND_NULL(stack_file);
}

TestSuite(e2e, .init = e2e_init, .fini = e2e_fini, .timeout = 150);

/* A test, then every process of the platform must exit with status 0 on SIGTERM (so a
 * sanitizer report or a crash at shutdown in a controller, an agent or the apiserver fails
 * the test). */
#define E2E_TEST(name)                                                                             \
    static void name##_body(void);                                                                 \
    Test(e2e, name)                                                                                \
    {                                                                                              \
        name##_body();                                                                             \
        cr_assert_eq(platform_stop(&pf), 0, "a process did not exit cleanly (logs above)");        \
    }                                                                                              \
    static void name##_body(void)

/* An assertion that prints every process log of the platform first (the temp dir with the
 * logs is removed by the suite's .fini). */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            platform_dump_logs(&pf);                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* Write a one-service stack file: service `web` running cmd with the given instances,
 * strategy and extra YAML lines (indented by four, may be ""). Sets stack_name
 * ("<what>-<run>") the first time. */
static void write_stack_cmd(const char *what, const char *cmd, int instances, const char *strategy,
                            const char *extra)
{
    char *text;

    if (!stack_name)
        stack_name = platform_name(what);
    text = xasprintf("stack: e2e/%s\n"
                     "version: 1.0.0\n"
                     "services:\n"
                     "  web:\n"
                     "    image: %s\n"
                     "    command: %s\n"
                     "    instances: %d\n"
                     "    stop_grace_period: 1s\n"
                     "    deploy:\n"
                     "      strategy: %s\n"
                     "%s",
                     what, DOCKER_ENV_IMAGE, cmd, instances, strategy, extra);
    free(stack_file);
    stack_file = platform_write_file(&pf, "stack.yml", text);
    cr_assert_not_null(stack_file);
    free(text);
}

static void write_stack(const char *what, int instances, const char *strategy, const char *extra)
{
    write_stack_cmd(what, "sleep 3600", instances, strategy, extra);
}

static int install(int wait)
{
    return platform_cli(&pf, "stack", "install", "--name", stack_name, "--timeout", "90",
                        wait ? "--wait" : "--no-wait", stack_file, NULL);
}

/* node name -> instance count of the list */
static int on_node(const json_t *list, const char *node)
{
    size_t i;
    json_t *it;
    int n = 0;

    json_array_foreach(list, i, it)
    {
        if (!strcmp(json_string_value(json_object_get(it, "node")), node))
            n++;
    }
    return n;
}

/* Instance numbers 1..n each exactly once. */
static void check_numbers(const json_t *list, int n)
{
    int seen[64] = {0};
    size_t i;
    json_t *it;

    cr_assert_leq(n, 63);
    json_array_foreach(list, i, it)
    {
        json_int_t k = json_integer_value(json_object_get(it, "instance_number"));
        cr_assert(k >= 1 && k <= n, "instance number %lld out of 1..%d", (long long)k, n);
        cr_assert_eq(seen[k], 0, "instance number %lld twice", (long long)k);
        seen[k] = 1;
    }
}

/* Wait until the grid's dockerd holds exactly n containers of the stack's web (old ones of
 * a move or a scale-down are removed by their agents). */
static int wait_docker(int n, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    int have;

    for (;;) {
        have = platform_docker_count(&pf, stack_name, "web", 0);
        if (have == n)
            return 0;
        if (time_mono_ms() >= deadline) {
            fprintf(stderr, "e2e: %d containers of %s/web on Docker, want %d\n", have, stack_name,
                    n);
            return -1;
        }
        time_sleep_ms(200);
    }
}

static char *svc_path(void)
{
    return xasprintf("%s/web", stack_name);
}

/* ---------------------------------------------------------------------------------------- */

E2E_TEST(stack_install_runs_every_instance_where_the_strategy_says)
{
    json_t *l;
    int64_t t0 = time_mono_ms();

    write_stack("inst", 3, "ha", "");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 3, 30000);
    CHECK(l, "not 3 instances running");
    fprintf(stderr, "e2e: 3 instances running %lld ms after the install began\n",
            (long long)(time_mono_ms() - t0));
    check_numbers(l, 3);
    /* ha over three nodes: one each */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(on_node(l, pf.agents[i].name), 1, "ha: node %s has %d instances",
                     pf.agents[i].name, on_node(l, pf.agents[i].name));
    json_decref(l);
    CHECK(wait_docker(3, 10000) == 0, "Docker does not hold exactly 3 containers");
    cr_assert_eq(platform_docker_count(&pf, stack_name, "web", 1), 3, "not 3 running containers");
}

E2E_TEST(daemon_strategy_runs_instances_on_every_node)
{
    json_t *l;

    write_stack("daemon", 2, "daemon", "");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 6, 30000);
    CHECK(l, "not 6 instances running (2 per node on 3 nodes)");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(on_node(l, pf.agents[i].name), 2, "daemon: node %s has %d instances",
                     pf.agents[i].name, on_node(l, pf.agents[i].name));
    check_numbers(l, 6);
    json_decref(l);
}

E2E_TEST(service_scale_5_then_2)
{
    json_t *l;
    char *svc;

    write_stack("scale", 1, "ha", "");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 1, 30000);
    CHECK(l, "the first instance is not running");
    json_decref(l);
    svc = svc_path();
    CHECK(platform_cli(&pf, "service", "scale", "--timeout", "90", svc, "5", NULL) == 0,
          "scale 5 failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 5, 30000);
    CHECK(l, "not 5 instances running after scale 5");
    check_numbers(l, 5);
    for (int i = 0; i < 3; i++) /* ha: 2+2+1 */
        cr_assert(on_node(l, pf.agents[i].name) >= 1 && on_node(l, pf.agents[i].name) <= 2,
                  "ha with 5 instances: node %s has %d", pf.agents[i].name,
                  on_node(l, pf.agents[i].name));
    json_decref(l);
    CHECK(platform_cli(&pf, "service", "scale", "--timeout", "90", svc, "2", NULL) == 0,
          "scale 2 failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 2, 30000);
    CHECK(l, "not 2 instances running after scale 2");
    check_numbers(l, 2);
    json_decref(l);
    CHECK(wait_docker(2, 20000) == 0, "the scaled-down containers were not removed");
    free(svc);
}

E2E_TEST(affinity_nothing_satisfies_says_why)
{
    char *both;

    write_stack("affin", 1, "ha", "    affinity:\n      - node==no-such-node\n");
    cr_assert_neq(install(1), 0, "stack install succeeded with an unsatisfiable affinity: %s",
                  pf.out);
    both = xasprintf("%s\n%s", pf.out, pf.err);
    cr_assert(strstr(both, "Cannot find applicable node"),
              "the CLI does not say why the deploy failed: %s", both);
    cr_assert(strstr(both, "web-1"), "the CLI does not name the instance: %s", both);
    cr_assert(strstr(both, "node==no-such-node"), "the CLI does not name the filter: %s", both);
    fprintf(stderr, "e2e: the CLI said: %s\n", both);
    free(both);
    cr_assert_eq(platform_docker_count(&pf, stack_name, "web", 0), 0,
                 "a container was created for an unplaceable instance");
}

/* The instance list when exactly n instances of web exist, all running, none on agent
 * `away`'s node; else NULL. */
static json_t *running_away_from(int n, int away)
{
    json_t *l = platform_instances(&pf, stack_name, "web");

    if (l && (int)json_array_size(l) == n && platform_count_running(l) == n &&
        on_node(l, pf.agents[away].name) == 0)
        return l;
    json_decref(l);
    return NULL;
}

/* Kill node-X's agent and remove its containers: the host is gone. */
static void lose_node(int i)
{
    int64_t t;

    cr_assert_eq(platform_agent_stop(&pf, i, SIGKILL), 0);
    t = time_mono_ms();
    while (platform_wait_node(&pf, pf.agents[i].name, 0, 1000) != 0)
        cr_assert_lt(time_mono_ms() - t, 15000, "node %s still online 15 s after its agent died",
                     pf.agents[i].name);
    cr_assert_geq(platform_remove_node_containers(&pf, pf.agents[i].name), 0,
                  "cannot remove the lost node's containers");
}

E2E_TEST(lost_agent_instances_run_elsewhere_after_the_grace)
{
    json_t *l;
    int victim = -1;
    int64_t lost, moved;

    write_stack("lost", 2, "ha", "");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 2, 30000);
    CHECK(l, "not 2 instances running");
    for (int i = 0; i < 3 && victim < 0; i++)
        if (on_node(l, pf.agents[i].name) == 1)
            victim = i;
    json_decref(l);
    cr_assert_geq(victim, 0);
    lose_node(victim);
    lost = time_mono_ms();
    while (!(l = running_away_from(2, victim))) {
        CHECK(time_mono_ms() - lost < 30000,
              "the lost node's instance did not move within 30 s (grace 3 s)");
        time_sleep_ms(100);
    }
    moved = time_mono_ms() - lost;
    fprintf(stderr,
            "e2e: lost node's instance running elsewhere %lld ms after the node went "
            "offline (grace 3 s)\n",
            (long long)moved);
    check_numbers(l, 2);
    json_decref(l);
    cr_assert_geq(moved, 2500, "moved before the grace period ended (%lld ms)", (long long)moved);
}

E2E_TEST(drain_moves_instances_away)
{
    json_t *l;

    write_stack("drain", 3, "ha", "");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 3, 30000);
    CHECK(l, "not 3 instances running");
    json_decref(l);
    CHECK(platform_cli(&pf, "node", "update", "--availability", "drain", pf.agents[0].name, NULL) ==
              0,
          "node update failed: %s%s", pf.out, pf.err);
    {
        int64_t t = time_mono_ms();
        while (!(l = running_away_from(3, 0))) {
            CHECK(time_mono_ms() - t < 40000, "instances still on the drained node after 40 s");
            time_sleep_ms(100);
        }
    }
    check_numbers(l, 3);
    json_decref(l);
    CHECK(wait_docker(3, 20000) == 0, "the drained node's container was not removed");
    /* active again: schedulable (nothing has to move back) */
    CHECK(platform_cli(&pf, "node", "update", "--availability", "active", pf.agents[0].name,
                       NULL) == 0,
          "node update failed: %s%s", pf.out, pf.err);
}

/* 1 when every deploy record of the grid has finished (success or error); *errors gets how
 * many ended in error. */
static int deploys_done(int *errors)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r;
    struct err e = ERR_INIT;
    char *prefix = xasprintf("/kontena/deploys/%s/", pf.grid);
    int done = 1;

    *errors = 0;
    if (etcd_range(pf.ec, prefix, &ro, &r, &e) != ST_OK) {
        free(prefix);
        return 0;
    }
    for (size_t i = 0; i < r.n; i++) {
        json_t *v = json_loadb(r.kvs[i].value, r.kvs[i].value_len, 0, NULL);
        const char *st = json_string_value(json_object_get(v, "state"));
        if (!st || (strcmp(st, "success") && strcmp(st, "error")))
            done = 0;
        else if (!strcmp(st, "error")) {
            fprintf(stderr, "e2e: deploy %s ended in error: %s\n",
                    json_string_value(json_object_get(v, "id")),
                    json_string_value(json_object_get(v, "reason")));
            (*errors)++;
        }
        json_decref(v);
    }
    etcd_range_result_release(&r);
    free(prefix);
    return done;
}

E2E_TEST(controllers_killed_mid_deploy_the_deploy_completes)
{
    json_t *l;
    int errors = 0;
    int64_t t;

    write_stack("ctlkill", 6, "ha", "");
    CHECK(install(0) == 0, "stack install --no-wait failed: %s%s", pf.out, pf.err);
    /* kill every controller hard as soon as the scheduler has begun placing */
    t = time_mono_ms();
    for (;;) {
        l = platform_instances(&pf, stack_name, "web");
        if (l && json_array_size(l) > 0)
            break;
        json_decref(l);
        CHECK(time_mono_ms() - t < 20000, "no instance placed within 20 s");
        time_sleep_ms(10);
    }
    json_decref(l);
    for (int i = 0; i < PLATFORM_NCTL; i++)
        platform_ctl_stop(&pf, platform_ctl_names[i], SIGKILL);
    fprintf(stderr, "e2e: %d of 6 instance keys existed when the controllers were killed\n",
            (int)json_array_size(l = platform_instances(&pf, stack_name, "web")));
    json_decref(l);
    time_sleep_ms(1000);
    for (int i = 0; i < PLATFORM_NCTL; i++)
        CHECK(platform_ctl_start(&pf, platform_ctl_names[i]) == 0, "cannot restart kontena-%s",
              platform_ctl_names[i]);
    l = platform_wait_running(&pf, stack_name, "web", 6, 60000);
    CHECK(l, "not 6 instances running after the controllers' restart");
    check_numbers(l, 6);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(on_node(l, pf.agents[i].name), 2, "ha: node %s has %d of 6", pf.agents[i].name,
                     on_node(l, pf.agents[i].name));
    json_decref(l);
    t = time_mono_ms();
    while (!deploys_done(&errors)) {
        CHECK(time_mono_ms() - t < 30000, "a deploy record did not finish within 30 s");
        time_sleep_ms(200);
    }
    cr_assert_eq(errors, 0, "a deploy ended in error");
    CHECK(wait_docker(6, 10000) == 0, "duplicate or missing containers");
    cr_assert_eq(platform_docker_count(&pf, stack_name, "web", 1), 6, "not 6 running containers");
}

/* How many of the list's instance keys have revision rev. */
static int at_revision(const json_t *l, json_int_t rev)
{
    size_t i;
    json_t *it;
    int n = 0;

    json_array_foreach(l, i, it)
    {
        if (json_integer_value(json_object_get(it, "revision")) == rev)
            n++;
    }
    return n;
}

E2E_TEST(controllers_killed_mid_rolling_update_the_update_completes)
{
    json_t *l;
    int errors = 0, moved;
    int64_t t;

    /* min_health 0.8 of 6: one replacement at a time, so the update takes a while */
    write_stack_cmd("roll", "sleep 3600", 6, "ha", "      min_health: 0.8\n");
    CHECK(install(1) == 0, "stack install failed: %s%s", pf.out, pf.err);
    l = platform_wait_running(&pf, stack_name, "web", 6, 30000);
    CHECK(l, "not 6 instances running");
    json_decref(l);
    write_stack_cmd("roll", "sleep 3601", 6, "ha", "      min_health: 0.8\n");
    CHECK(platform_cli(&pf, "stack", "upgrade", "--no-wait", "--force", stack_name, stack_file,
                       NULL) == 0,
          "stack upgrade failed: %s%s", pf.out, pf.err);
    /* kill every controller once the rollout has begun and before it is done */
    t = time_mono_ms();
    for (;;) {
        l = platform_instances(&pf, stack_name, "web");
        moved = l ? at_revision(l, 2) : 0;
        json_decref(l);
        if (moved >= 1)
            break;
        CHECK(time_mono_ms() - t < 20000, "the rollout did not begin within 20 s");
        time_sleep_ms(10);
    }
    for (int i = 0; i < PLATFORM_NCTL; i++)
        platform_ctl_stop(&pf, platform_ctl_names[i], SIGKILL);
    l = platform_instances(&pf, stack_name, "web");
    fprintf(stderr,
            "e2e: rolling update: %d of 6 instance keys at revision 2, %d running, when "
            "the controllers were killed\n",
            at_revision(l, 2), platform_count_running(l));
    cr_assert(at_revision(l, 2) < 6 || platform_count_running(l) < 6,
              "the rollout had already finished: the test proves nothing");
    json_decref(l);
    time_sleep_ms(1000);
    for (int i = 0; i < PLATFORM_NCTL; i++)
        CHECK(platform_ctl_start(&pf, platform_ctl_names[i]) == 0, "cannot restart kontena-%s",
              platform_ctl_names[i]);
    t = time_mono_ms();
    for (;;) {
        l = platform_instances(&pf, stack_name, "web");
        if (l && json_array_size(l) == 6 && at_revision(l, 2) == 6 &&
            platform_count_running(l) == 6)
            break;
        json_decref(l);
        CHECK(time_mono_ms() - t < 90000, "the rolling update did not complete within 90 s");
        time_sleep_ms(200);
    }
    check_numbers(l, 6);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(on_node(l, pf.agents[i].name), 2, "ha: node %s has %d of 6", pf.agents[i].name,
                     on_node(l, pf.agents[i].name));
    json_decref(l);
    t = time_mono_ms();
    while (!deploys_done(&errors)) {
        CHECK(time_mono_ms() - t < 30000, "a deploy record did not finish within 30 s");
        time_sleep_ms(200);
    }
    cr_assert_eq(errors, 0, "a deploy ended in error");
    CHECK(wait_docker(6, 20000) == 0, "duplicate or missing containers");
}
