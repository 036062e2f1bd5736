/* tests/integration/test_images.c -- hack/images.sh (issue 5, point 1): the controllers'
 * container images, built without a registry, run.
 *
 * The images are built under a repository unique to the test ("kontena-test-<run hex>-<pid>")
 * so the developer's own kontena/<name> images are never touched, and removed at the end
 * with every container the test started (named "<run id>-...", labelled with the run). */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/etcd_proc.h"
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

static struct etcd_proc etcd;
static char *repo, *out, *err;

static void remove_images(void)
{
    for (int i = 0; repo && i < PLATFORM_NCTL; i++) {
        char *latest = xasprintf("%s/%s:latest", repo, platform_ctl_names[i]);
        char *ver = xasprintf("%s/%s:%s", repo, platform_ctl_names[i], KONTENA_VERSION);
        const char *argv[] = {"docker", "rmi", "-f", latest, ver, NULL};
        (void)proc_run(argv, NULL, NULL, NULL, NULL);
        free(latest);
        free(ver);
    }
}

static void init(void)
{
    docker_env_require();
    {
        char *base = platform_name("kontena-test");
        repo = xasprintf("%s-%d", base, (int)getpid()); /* one per test process */
        free(base);
    }
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
}

static void fini(void)
{
    docker_env_cleanup();
    remove_images();
    etcd_proc_cleanup(&etcd);
    FREE_AND_NULL(repo);
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
}

TestSuite(images, .init = init, .fini = fini, .timeout = 120);

static int images_sh(const char *name)
{
    char *script = xasprintf("%s/hack/images.sh", docker_env_source_dir());
    char *e_repo = xasprintf("KONTENA_IMAGE_REPO=%s", repo);
    char *e_bin = xasprintf("KONTENA_BIN_DIR=%s", KONTENA_BIN_DIR);
    const char *env[] = {e_repo, e_bin, NULL};
    const char *argv[] = {script, name, NULL};
    int rc;

    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    rc = proc_run(argv, env, NULL, &out, &err);
    free(script);
    free(e_repo);
    free(e_bin);
    return rc;
}

static int docker(const char *const argv[])
{
    FREE_AND_NULL(out);
    FREE_AND_NULL(err);
    return proc_run(argv, NULL, NULL, &out, &err);
}

Test(images, scheduler_image_runs_with_host_network_and_answers_healthz)
{
    char *image = NULL, *name = docker_env_name("sched-image"), *listen, *url, *label;
    int port = proc_free_port();

    cr_assert_eq(images_sh("scheduler"), 0, "images.sh scheduler failed: %s%s", out, err);
    image = xasprintf("%s/scheduler:%s", repo, KONTENA_VERSION);
    cr_assert(strstr(out, image) && strstr(out, "built"), "images.sh did not say it built %s: %s",
              image, out);
    /* again: nothing to do */
    cr_assert_eq(images_sh("scheduler"), 0, "second images.sh failed: %s%s", out, err);
    cr_assert(strstr(out, "up to date"), "the second run rebuilt the image: %s", out);

    /* the entrypoint is the binary */
    cr_assert_eq(docker((const char *[]){"docker", "run", "--rm", "--label",
                                         docker_env_run_filter(), image, "--version", NULL}),
                 0, "docker run --version: %s%s", out, err);
    cr_assert(strstr(out, "kontena-scheduler " KONTENA_VERSION), "--version printed: %s", out);

    listen = xasprintf("127.0.0.1:%d", port);
    label = xstrdup(docker_env_run_filter());
    cr_assert_eq(
        docker((const char *[]){"docker", "run", "-d", "--name", name, "--label", label,
                                "--network", "host", image, "--etcd-endpoints", etcd.endpoint,
                                "--http-listen", listen, "--id", "image-test-1", NULL}),
        0, "docker run: %s%s", out, err);
    url = xasprintf("http://%s/healthz", listen);
    if (proc_wait_http(url, 200, 20000) != 0) {
        docker((const char *[]){"docker", "logs", name, NULL});
        cr_assert_fail("%s did not answer 200 within 20 s; its logs:\n%s%s", url, out, err);
    }
    /* SIGTERM: a clean shutdown, exit status 0 */
    cr_assert_eq(docker((const char *[]){"docker", "stop", "-t", "10", name, NULL}), 0,
                 "docker stop: %s", err);
    cr_assert_eq(
        docker((const char *[]){"docker", "inspect", "-f", "{{.State.ExitCode}}", name, NULL}), 0,
        "docker inspect: %s", err);
    cr_assert_str_eq(out, "0\n", "the scheduler in the container exited with status %s", out);
    cr_assert_eq(docker((const char *[]){"docker", "rm", "-f", name, NULL}), 0, "docker rm: %s",
                 err);
    free(url);
    free(listen);
    free(label);
    free(image);
    free(name);
}

Test(images, every_controller_image_builds_and_holds_only_its_binary_and_libraries)
{
    cr_assert_eq(images_sh("scheduler"), 0, "%s%s", out, err);
    for (int i = 0; i < PLATFORM_NCTL; i++) {
        char *image, *ep;

        cr_assert_eq(images_sh(platform_ctl_names[i]), 0, "images.sh %s failed: %s%s",
                     platform_ctl_names[i], out, err);
        image = xasprintf("%s/%s:latest", repo, platform_ctl_names[i]);
        cr_assert_eq(docker((const char *[]){"docker", "image", "inspect", "-f",
                                             "{{json .Config.Entrypoint}}", image, NULL}),
                     0, "%s", err);
        ep = xasprintf("[\"/kontena-%s\"]\n", platform_ctl_names[i]);
        cr_assert_str_eq(out, ep);
        /* no shell, no package manager: a rootfs of the binary and its libraries */
        cr_assert_neq(
            docker((const char *[]){"docker", "run", "--rm", "--label", docker_env_run_filter(),
                                    "--entrypoint", "/bin/sh", image, "-c", "true", NULL}),
            0, "the %s image has a shell", platform_ctl_names[i]);
        free(ep);
        free(image);
    }
}

Test(images, missing_binary_is_a_clear_error)
{
    char *script = xasprintf("%s/hack/images.sh", docker_env_source_dir());
    char *e_repo = xasprintf("KONTENA_IMAGE_REPO=%s", repo);
    const char *env[] = {e_repo, "KONTENA_BIN_DIR=/nonexistent", NULL};
    const char *argv[] = {script, "scheduler", NULL};

    cr_assert_eq(proc_run(argv, env, NULL, &out, &err), 1);
    cr_assert(strstr(err, "kontena-scheduler is not built in /nonexistent"), "%s", err);
    free(script);
    free(e_repo);
}
