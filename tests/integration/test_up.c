/* tests/integration/test_up.c -- hack/up.sh --hosts and hack/down.sh --purge, as a user runs
 * them (docs/internals/multihost.md, "hack/up.sh --hosts").
 *
 * One test: `hack/up.sh --hosts` with its own ports, grid, data directory, CLI configuration and
 * hosts (prefix kut, subnet 101: 10.250.101.0/24, apart from the other tests' hosts), three
 * nodes, the binaries of this build. Then:
 *   - the discovery example: `kontena service logs discovery/client` shows the client reaching
 *     `web` by its bare name, answered by an instance on another node (across hosts, over the
 *     overlay);
 *   - the load balancer URL up.sh printed (a host's underlay address) answers from the root netns;
 *   - `hack/down.sh --purge` exits 0 and nothing is left: no netns, link, state or data
 *     directory, cgroup or mount of the hosts, no process of the pid files, no container of the
 *     grid on the machine's dockerd, no DNS run directory, no data directory.
 * After a failure (or a killed worker) the suite's fini and ReportHook(POST_ALL) run down.sh
 * --purge and hosts.sh down for the prefix. Running time: about 20-30 s when kontena-ipam
 * allocates at once, up to 90 s when it waits for its 30 s resync (fresh etcd).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "tests/support/docker_env.h"
#include "tests/support/hosts.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define PREFIX "kut"
#define SUBNET "101"
#define DATA "/tmp/kontena-test-up"
#define GRID "up-test"
#define NPIDS 16

static char *env_ports[6];
static int64_t t_start;

static void step(const char *what)
{
    fprintf(stderr, "test_up: %6lld ms %s\n", (long long)(time_mono_ms() - t_start), what);
}

/* The environment up.sh and down.sh run with (static strings and env_ports). */
static void up_env(const char **env, size_t n)
{
    const char *fixed[] = {"KONTENA_DATA_DIR=" DATA,
                           "KONTENA_CONFIG=" DATA "/cli.json",
                           "KONTENA_GRID=" GRID,
                           "KONTENA_NODES=3",
                           "KONTENA_HOSTS_PREFIX=" PREFIX,
                           "KONTENA_HOSTS_SUBNET=" SUBNET,
                           "KONTENA_BIN_DIR=" KONTENA_BIN_DIR,
                           "KONTENA_LB_PORT=18080",
                           "KONTENA_LB_TCP_PORT=18070"};
    size_t k = 0;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && k + 1 < n; i++)
        env[k++] = fixed[i];
    for (size_t i = 0; i < sizeof(env_ports) / sizeof(env_ports[0]) && k + 1 < n; i++)
        if (env_ports[i])
            env[k++] = env_ports[i];
    env[k] = NULL;
}

static int run_script(const char *script, const char *arg, char **out, char **err)
{
    char *path = xasprintf("%s/hack/%s", docker_env_source_dir(), script);
    const char *argv[] = {path, arg, NULL};
    const char *env[24];
    int rc;

    up_env(env, sizeof(env) / sizeof(env[0]));
    rc = proc_run(argv, env, NULL, out, err);
    free(path);
    return rc;
}

static void down_all(void)
{
    char *out = NULL, *err = NULL;

    (void)run_script("down.sh", "--purge", &out, &err);
    free(out);
    free(err);
    (void)hosts_down_prefix(PREFIX);
    proc_rmtree(DATA);
    proc_rmtree("/run/kontena/dns/" GRID);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (geteuid() == 0)
        down_all(); /* after a worker killed by its timeout */
}

static void fini(void)
{
    down_all();
    for (size_t i = 0; i < sizeof(env_ports) / sizeof(env_ports[0]); i++)
        FREE_AND_NULL(env_ports[i]);
}

TestSuite(up, .fini = fini, .timeout = 240);

/* The last `kontena service logs` output, for a failure message. */
static char *client_logs(void)
{
    const char *argv[] = {KONTENA_BIN_DIR "/kontena", "service", "logs", "--tail", "30",
                          "discovery/client",         NULL};
    const char *env[] = {"KONTENA_CONFIG=" DATA "/cli.json", "KONTENA_GRID=" GRID, NULL};
    char *out = NULL, *err = NULL;

    if (proc_run(argv, env, NULL, &out, &err) != 0) {
        char *s = xasprintf("kontena service logs failed: %s%s", out ? out : "", err ? err : "");
        free(out);
        free(err);
        return s;
    }
    free(err);
    return out ? out : xstrdup("");
}

/* A log line "client on node-X got web-N on node-Y" with X != Y. */
static int crossed_hosts(const char *logs)
{
    for (const char *p = strstr(logs, "client on node-"); p; p = strstr(p + 1, "client on node-")) {
        int x, n, y;
        if (sscanf(p, "client on node-%d got web-%d on node-%d", &x, &n, &y) == 3 && x != y)
            return 1;
    }
    return 0;
}

/* "the load balancer answers at <url>: ..." in up.sh's output: the URL, fresh memory. */
static char *lb_url_of(const char *out)
{
    const char *p = strstr(out, "the load balancer answers at ");
    size_t n;

    if (!p)
        return NULL;
    p += strlen("the load balancer answers at ");
    n = strcspn(p, " \n");
    if (n > 0 && p[n - 1] == ':')
        n--;
    return xasprintf("%.*s", (int)n, p);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static size_t glob_count(const char *pattern)
{
    glob_t g;
    size_t n = 0;

    if (glob(pattern, 0, NULL, &g) == 0)
        n = g.gl_pathc;
    globfree(&g);
    return n;
}

/* The pids in DATA/<*>.pid before down.sh, to check they are gone after it. */
static size_t read_pids(pid_t *pids, size_t max)
{
    DIR *d = opendir(DATA);
    struct dirent *de;
    size_t n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)) && n < max) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".pid")) {
            char *path = xasprintf("%s/%s", DATA, de->d_name), *s = proc_read_file(path);
            if (s && atoi(s) > 0)
                pids[n++] = (pid_t)atoi(s);
            free(s);
            free(path);
        }
    }
    closedir(d);
    return n;
}

#define UP_PORT_BLOCK 16

/* Whether port is free on every address (bind to INADDR_ANY). */
static int port_free(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    if (fd == -1)
        return 0;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

/* The first port of n consecutive free ones in 20000-30000, from a random start; -1: none. */
static int port_block(int n)
{
    int start = 20000 + (int)(time_mono_ms() % 9000);

    for (int tries = 0; tries < 9000; tries += n) {
        int base = 20000 + (start - 20000 + tries) % (10000 - n), k;
        for (k = 0; k < n && port_free(base + k); k++)
            ;
        if (k == n)
            return base;
    }
    return -1;
}

Test(up, hosts_discovery_lb_and_down)
{
    char *out = NULL, *err = NULL, *url, *logs = NULL, *s;
    const char *names[] = {"KONTENA_PORT",         "KONTENA_AGENT_PORT",
                           "KONTENA_ETCD_PORT",    "KONTENA_CTL_PORT",
                           "KONTENA_METRICS_PORT", "KONTENA_AGENT_METRICS_PORT"};
    pid_t pids[NPIDS];
    size_t npids;
    int rc, ok = 0;

    if (geteuid() != 0)
        cr_skip_test("needs root (network namespaces, dockerd per host)");
    t_start = time_mono_ms();
    down_all(); /* a crashed run's leftovers */
    /* One block of free ports below the ephemeral range (32768-60999), so no outgoing
     * connection takes one meanwhile: up.sh uses etcd's port +1 (peer), the controllers' +0..+4
     * and the agents' metrics +1..+3. Separate proc_free_port() ports plus offsets could
     * overlap each other or a busy port (kontena-ipam once found its port taken, CI, ASan). */
    {
        const int offs[] = {0, 1, 2, 4, 9, 10}; /* etcd 2-3, controllers 4-8, agents 11-13 */
        int base = port_block(UP_PORT_BLOCK);
        cr_assert_gt(base, 0, "no block of %d free ports in 20000-30000", UP_PORT_BLOCK);
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            env_ports[i] = xasprintf("%s=%d", names[i], base + offs[i]);
    }

    step("hack/up.sh --hosts");
    rc = run_script("up.sh", "--hosts", &out, &err);
    if (rc != 0)
        cr_assert_fail("hack/up.sh --hosts exited with %d\n--- stdout\n%s\n--- stderr\n%s", rc,
                       out ? out : "", err ? err : "");
    step("up");
    cr_assert_not_null(strstr(out, "Kontena is up (--hosts: 3 hosts, overlay and DNS)"), "%s", out);

    /* the load balancer, on a host's underlay address, from the root netns */
    url = lb_url_of(out);
    cr_assert_not_null(url, "up.sh printed no load balancer URL:\n%s", out);
    cr_assert(!strncmp(url, "http://10.250." SUBNET ".", strlen("http://10.250." SUBNET ".")),
              "the LB URL %s is not on the hosts' underlay", url);
    cr_assert_eq(proc_wait_http(url, 200, 10000), 0, "%s does not answer 200", url);
    step("the load balancer answers");

    /* discovery: the client reached `web` by its bare name on another host */
    for (int64_t end = time_mono_ms() + 30000; time_mono_ms() < end;) {
        free(logs);
        logs = client_logs();
        if (crossed_hosts(logs)) {
            ok = 1;
            break;
        }
        usleep(500 * 1000);
    }
    cr_assert(ok, "the client never got an answer from web on another node:\n%s", logs);
    step("the client reached web by name across hosts");

    npids = read_pids(pids, NPIDS);
    cr_assert_geq(npids, 10, "expected etcd, apiserver, 5 controllers and 3 agents' pid files");
    free(out);
    free(err);
    out = err = NULL;
    rc = run_script("down.sh", "--purge", &out, &err);
    cr_assert_eq(rc, 0, "hack/down.sh --purge exited with %d\n%s%s", rc, out ? out : "",
                 err ? err : "");
    step("hack/down.sh --purge");

    /* nothing left */
    for (size_t i = 0; i < npids; i++)
        cr_expect(kill(pids[i], 0) != 0, "pid %d (from a pid file) still runs", (int)pids[i]);
    cr_expect(!exists(DATA), DATA " is still there");
    cr_expect(!exists("/var/run/netns/" PREFIX "-h1"), "netns " PREFIX "-h1 is still there");
    cr_expect(!exists("/var/run/netns/" PREFIX "-sw"), "netns " PREFIX "-sw is still there");
    cr_expect(!exists("/sys/class/net/" PREFIX "-up"), "link " PREFIX "-up is still there");
    cr_expect(!exists("/run/kontena-hosts/" PREFIX),
              "/run/kontena-hosts/" PREFIX " is still there");
    cr_expect(!exists("/var/lib/kontena-hosts/" PREFIX),
              "/var/lib/kontena-hosts/" PREFIX " is still there");
    cr_expect(!exists("/run/kontena/dns/" GRID), "/run/kontena/dns/" GRID " is still there");
    cr_expect_eq(glob_count("/sys/fs/cgroup/*/" PREFIX "-h*") +
                     glob_count("/sys/fs/cgroup/" PREFIX "-h*"),
                 0, "cgroups " PREFIX "-h* are still there");
    s = proc_read_file("/proc/self/mountinfo");
    cr_assert_not_null(s);
    cr_expect_null(strstr(s, "kontena-hosts/" PREFIX "/"), "a mount of the hosts is left:\n%s", s);
    free(s);
    {
        const char *argv[] = {"docker", "ps", "-aq", "--filter", "label=io.kontena.grid=" GRID,
                              NULL};
        char *ids = NULL;
        cr_expect_eq(proc_run(argv, NULL, NULL, &ids, NULL), 0, "docker ps failed");
        cr_expect(!ids || !*ids, "containers of grid " GRID " on the machine's dockerd: %s", ids);
        free(ids);
    }
    step("nothing left");
    free(url);
    free(logs);
    free(out);
    free(err);
}
