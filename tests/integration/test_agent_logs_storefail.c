/* tests/integration/test_agent_logs_storefail.c -- the master's log store fails while an
 * agent ships lines, then works again: a whole platform (tests/support/platform.h: real
 * etcd, kontena-apiserver, controllers, one real kontena-agent on the machine's dockerd)
 * whose apiserver keeps its log window (KONTENA_LOG_DIR) on a small tmpfs this test mounts. The tmpfs is
 * filled (the store's writes fail with ENOSPC) while a service prints numbered lines, then
 * emptied: the master closes the agent's connection at the failed batch ("cannot store
 * logs: ..."), the agent reconnects and resumes from the master's cursors, and every line of
 * each stream is stored exactly once and in order.
 *
 * Needs root (mount); skipped otherwise. A binary of its own, like test_agent_logs_e2e.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
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
static char *sf_logdir; /* the apiserver's log window: a 16 MiB tmpfs */
static int sf_mounted;

static void sf_init(void)
{
    docker_env_require();
}

static void sf_fini(void)
{
    platform_cleanup(&pf); /* the apiserver first: it writes in the tmpfs */
    if (sf_mounted && umount2(sf_logdir, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", sf_logdir, strerror(errno));
    sf_mounted = 0;
    if (sf_logdir && !getenv("KEEP_TEST_DIRS"))
        proc_rmtree(sf_logdir);
    FREE_AND_NULL(sf_logdir);
}

TestSuite(storefail, .init = sf_init, .fini = sf_fini, .timeout = 240);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            platform_dump_logs(&pf);                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

#define SF_N 1500

/* Whether file `path` contains `what` within timeout_ms. */
static int wait_in_file(const char *path, const char *what, int timeout_ms)
{
    int64_t end = time_mono_ms() + timeout_ms;

    do {
        char *t = proc_read_file(path);
        int found = t && strstr(t, what);
        free(t);
        if (found)
            return 1;
        time_sleep_ms(200);
    } while (time_mono_ms() < end);
    return 0;
}

/* Fill the file system of `path` with it: 0 once a write fails with ENOSPC. */
static int fill(const char *path)
{
    static const char chunk[16384];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;

    if (fd == -1)
        return -1;
    for (int i = 0; i < 100000; i++) { /* 1.6 GB at the most: the tmpfs is 16 MiB */
        ssize_t w = write(fd, chunk, sizeof(chunk));
        if (w < 0 && errno == ENOSPC) {
            rc = 0;
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
    }
    close(fd);
    return rc;
}

Test(storefail, full_log_store_closes_the_agent_which_resumes_from_the_cursors)
{
    static const char *const agent_args[] = {"--stats-interval", "60", NULL};
    struct platform_opts o = {.agents = 1, .agent_args = agent_args};
    char suffix[32], *stack, *file, *text, *svc, *filler, *apilog;
    json_t *a, *e;
    long next[2] = {1, 1};
    size_t i, got;

    if (geteuid() != 0)
        cr_skip_test("mounting a tmpfs needs root");
    snprintf(suffix, sizeof(suffix), "sf-%x", (unsigned)getpid());
    o.grid_suffix = suffix;
    sf_logdir = proc_tempdir("kontena-storefail");
    cr_assert_not_null(sf_logdir);
    cr_assert_eq(mount("tmpfs", sf_logdir, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0700"),
                 0, "mount tmpfs on %s: %s", sf_logdir, strerror(errno));
    sf_mounted = 1;
    setenv("KONTENA_LOG_DIR", sf_logdir, 1); /* the apiserver's log window */
    setenv("KONTENA_METRICS_LISTEN", "off", 1);
    CHECK(platform_start(&pf, &o) == 0, "cannot start the platform");

    stack = platform_name("sf");
    text = xasprintf("stack: test/sf\nversion: 1.0.0\nservices:\n  seq:\n    image: %s\n"
                     "    stop_grace_period: 1s\n"
                     "    command: sh -c 'i=1; while [ $$i -le %d ]; do echo \"out $$i\"; "
                     "echo \"err $$i\" >&2; [ $$((i %% 50)) = 0 ] && sleep 0.3; i=$$((i+1)); "
                     "done; exec sleep 3600'\n",
                     DOCKER_ENV_IMAGE, SF_N);
    file = platform_write_file(&pf, "sf.yml", text);
    CHECK(platform_cli(&pf, "stack", "install", "--name", stack, file, NULL) == 0,
          "stack install: %s%s", pf.out, pf.err);
    svc = xasprintf("%s/seq", stack);

    got = platform_wait_service_logs(&pf, svc, 300, 60000);
    CHECK(got >= 300, "%zu lines stored", got);
    fprintf(stderr, "storefail: log store full after %zu lines\n", got);
    filler = xasprintf("%s/filler", sf_logdir);
    CHECK(fill(filler) == 0, "cannot fill %s: %s", sf_logdir, strerror(errno));

    /* The master closes the session at the failed batch; the agent logs why and reconnects
     * (and is closed again while the store stays full). */
    apilog = xasprintf("%s/apiserver.log", pf.api.dir);
    CHECK(wait_in_file(apilog, "cannot store logs of node 'node-1'", 30000),
          "the apiserver never failed to store a batch");
    CHECK(wait_in_file(pf.agents[0].log, "cannot store logs: ", 10000),
          "the agent never logged the master's close reason");
    got = json_array_size(a = platform_service_logs(&pf, svc));
    json_decref(a);
    fprintf(stderr, "storefail: %zu lines stored while full\n", got);
    time_sleep_ms(3000);
    CHECK(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
    fprintf(stderr, "storefail: log store writable again\n");

    got = platform_wait_service_logs(&pf, svc, 2 * SF_N, 90000);
    CHECK(got == 2 * SF_N, "%zu lines stored, want %d", got, 2 * SF_N);
    time_sleep_ms(1000);
    a = platform_service_logs(&pf, svc);
    cr_assert_eq(json_array_size(a), 2 * SF_N);
    json_array_foreach(a, i, e) {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *data = json_string_value(json_object_get(e, "data"));
        int err = type && !strcmp(type, "stderr");
        char want[32];
        snprintf(want, sizeof(want), "%s %ld", err ? "err" : "out", next[err]);
        CHECK(data && !strcmp(data, want), "entry %zu (%s) is '%s' where '%s' was due", i, type,
              data ? data : "(none)", want);
        next[err]++;
    }
    json_decref(a);
    CHECK(platform_cli(&pf, "stack", "rm", "--force", stack, NULL) == 0, "stack rm: %s%s",
          pf.out, pf.err);
    CHECK(platform_stop(&pf) == 0, "a process did not exit cleanly");
    free(apilog);
    free(filler);
    free(svc);
    free(file);
    free(text);
    free(stack);
}
