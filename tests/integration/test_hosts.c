/* tests/integration/test_hosts.c -- the multi-host harness (hack/hosts.sh through
 * tests/support/hosts.h): hosts come up with a working dockerd each and the test image,
 * reach each other over the underlay, reach a listener of the test on the master address and
 * nothing else of the machine, and leave nothing behind.
 *
 * Each test has its own prefix and underlay subnet, so Criterion may run them in parallel.
 * Needs root. Like the other Docker tests, it fails (not skips) when the harness cannot run,
 * unless KONTENA_SKIP_DOCKER_TESTS=1.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/hosts.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define IMAGE "kontena-test/busybox:latest"

/* prefix and subnet of each test: different ones, so the tests may run at the same time */
static const char *const prefixes[] = {"kta", "ktb", "ktc", "ktd", "kte", "ktf"};
enum { P_CONTAINERS, P_UNDERLAY, P_MASTER, P_DOWN, P_RELAY, P_ETCD };

static struct hosts hs;
static struct etcd_proc etcd = ETCD_PROC_INIT; /* relay_reaches_a_test_etcd's */

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    size_t i;

    (void)stats;
    /* a test killed by its timeout skips its .fini: remove what it left */
    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        hosts_down_prefix(prefixes[i]);
}

static void need_root(void)
{
    const char *skip = getenv("KONTENA_SKIP_DOCKER_TESTS");

    if (skip && strcmp(skip, "1") == 0)
        cr_skip_test("KONTENA_SKIP_DOCKER_TESTS=1");
    cr_assert_eq(geteuid(), 0, "the multi-host harness needs root (network namespaces, dockerd)");
}

static void fini(void)
{
    etcd_proc_cleanup(&etcd);
    if (hs.prefix[0]) {
        hosts_down(&hs);
        fprintf(stderr, "hosts %s: up %ld ms, down %ld ms\n", hs.prefix, hs.up_ms, hs.down_ms);
    }
}

TestSuite(hosts, .fini = fini, .timeout = 60);

static void up(int which, int n)
{
    need_root();
    hosts_init(&hs, prefixes[which], 200 + which);
    cr_assert_eq(hosts_up(&hs, n), 0, "hosts_up(%d): %s", n, hs.err);
}

/* --- each dockerd runs a container of the test image, which is there already ------------- */

Test(hosts, each_host_runs_the_test_image)
{
    char *ids[3] = {NULL, NULL, NULL};
    int i, j;

    up(P_CONTAINERS, 3);
    for (i = 0; i < 3; i++) {
        const struct hosts_host *h = &hs.host[i];
        char want[64];
        /* --pull never: a missing image must fail here, never go to a registry */
        const char *run[] = {"run", "--rm", "--pull", "never", IMAGE, "echo", want, NULL};
        const char *info[] = {"info", "--format", "{{.Name}} {{.ID}}", NULL};
        char *out = NULL, *err = NULL;
        int rc;

        snprintf(want, sizeof(want), "container-on-%s", h->netns);
        rc = hosts_docker(h, run, &out, &err);
        cr_assert_eq(rc, 0, "docker run on %s: %d %s", h->netns, rc, err);
        cr_assert(strstr(out, want), "%s: container said '%s'", h->netns, out);
        free(out);
        free(err);
        /* own hostname (own UTS ns) and own engine ID (own key.json) */
        rc = hosts_docker(h, info, &out, &err);
        cr_assert_eq(rc, 0, "docker info on %s: %s", h->netns, err);
        cr_assert_eq(strncmp(out, h->netns, strlen(h->netns)), 0, "%s: docker info '%s'", h->netns,
                     out);
        ids[i] = xstrdup(out + strlen(h->netns));
        free(out);
        free(err);
    }
    for (i = 0; i < 3; i++)
        for (j = i + 1; j < 3; j++)
            cr_assert_str_neq(ids[i], ids[j], "hosts %d and %d share engine ID %s", i + 1, j + 1,
                              ids[i]);
    for (i = 0; i < 3; i++)
        free(ids[i]);
}

/* --- underlay ---------------------------------------------------------------------------- */

static int ping_from(const struct hosts_host *h, const char *ip)
{
    const char *argv[] = {"busybox", "ping", "-c1", "-W2", ip, NULL};
    char *out = NULL, *err = NULL;
    int rc = h ? hosts_exec(h, argv, &out, &err) : proc_run(argv, NULL, NULL, &out, &err);

    if (rc != 0)
        fprintf(stderr, "ping %s from %s: %d %s %s\n", ip, h ? h->netns : "root netns", rc, out,
                err);
    free(out);
    free(err);
    return rc;
}

Test(hosts, underlay_connects_hosts_and_root)
{
    int i, j;

    up(P_UNDERLAY, 3);
    for (i = 0; i < 3; i++) {
        for (j = 0; j < 3; j++)
            if (i != j)
                cr_expect_eq(ping_from(&hs.host[i], hs.host[j].ip), 0, "%s cannot reach %s",
                             hs.host[i].netns, hs.host[j].ip);
        cr_expect_eq(ping_from(NULL, hs.host[i].ip), 0, "root netns cannot reach %s",
                     hs.host[i].ip);
        cr_expect_eq(ping_from(&hs.host[i], hs.master), 0, "%s cannot reach master %s",
                     hs.host[i].netns, hs.master);
    }
}

/* --- a host reaches a listener of the test on the master address, and nothing else ------- */

struct listener {
    int fd;
    int port;
    int served;
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct listener *l = arg;
    struct pollfd p = {l->fd, POLLIN, 0};
    static const char hello[] = "hello-from-master\n";

    /* one connection at most, and never longer than the test */
    while (poll(&p, 1, 30000) == 1) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            break;
        if (write(c, hello, sizeof(hello) - 1) > 0)
            l->served++;
        close(c);
        break;
    }
    return NULL;
}

/* Listen on addr:0 (addr "0.0.0.0" or an IPv4 address); fills l->fd and l->port. */
static void listen_on(struct listener *l, const char *addr)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int one = 1;

    memset(l, 0, sizeof(*l));
    cr_assert_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1, "bad address %s", addr);
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(l->fd >= 0);
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s", addr);
    cr_assert_eq(listen(l->fd, 4), 0);
    cr_assert_eq(getsockname(l->fd, (struct sockaddr *)&sa, &len), 0);
    l->port = ntohs(sa.sin_port);
}

/* An IPv4 address of the root netns that is not loopback and not the harness's own: the
 * hosts must not reach it. Empty when there is none. */
static void other_root_address(char *buf, size_t len)
{
    struct ifaddrs *ifa, *i;

    buf[0] = '\0';
    if (getifaddrs(&ifa) != 0)
        return;
    for (i = ifa; i; i = i->ifa_next) {
        char a[INET_ADDRSTRLEN];
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, a, sizeof(a));
        if (strncmp(a, "127.", 4) == 0 || strcmp(a, hs.master) == 0)
            continue;
        snprintf(buf, len, "%s", a);
        break;
    }
    freeifaddrs(ifa);
}

static int nc_from(const struct hosts_host *h, const char *ip, int port, char **out)
{
    char p[16];
    const char *argv[] = {"busybox", "nc", "-w", "3", ip, p, NULL};

    snprintf(p, sizeof(p), "%d", port);
    return hosts_exec_env(h, argv, NULL, 10, out, NULL);
}

Test(hosts, host_reaches_master_listener_only)
{
    struct listener l;
    char other[INET_ADDRSTRLEN];
    char *out = NULL;
    int rc;

    up(P_MASTER, 1);
    /* what an agent in a host needs: a TCP server of the test bound to the master address */
    listen_on(&l, hs.master);
    cr_assert_eq(pthread_create(&l.thread, NULL, serve, &l), 0);
    rc = nc_from(&hs.host[0], hs.master, l.port, &out);
    pthread_join(l.thread, NULL);
    close(l.fd);
    cr_assert_eq(rc, 0, "nc %s:%d from %s exited with %d", hs.master, l.port, hs.host[0].netns, rc);
    cr_assert_str_eq(out, "hello-from-master\n");
    cr_assert_eq(l.served, 1);
    free(out);

    /* a server on 0.0.0.0 answers on the master address, but not on the machine's other
     * addresses: the switch has no route past the master link */
    other_root_address(other, sizeof(other));
    if (other[0]) {
        listen_on(&l, "0.0.0.0");
        rc = nc_from(&hs.host[0], other, l.port, &out);
        cr_expect_neq(rc, 0, "%s reached the root netns address %s", hs.host[0].netns, other);
        cr_expect_eq(l.served, 0);
        free(out);
        cr_assert_eq(pthread_create(&l.thread, NULL, serve, &l), 0);
        rc = nc_from(&hs.host[0], hs.master, l.port, &out);
        pthread_join(l.thread, NULL);
        close(l.fd);
        cr_expect_eq(rc, 0, "0.0.0.0 listener not reachable on the master address");
        cr_expect_str_eq(out, "hello-from-master\n");
        free(out);
    }
}

/* --- the relay makes a loopback-only server reachable from the hosts --------------------- */

/* Accept one connection: greet, read one line, answer "echo:<line>", close. */
static void *serve_echo(void *arg)
{
    struct listener *l = arg;
    struct pollfd p = {l->fd, POLLIN, 0};
    static const char hello[] = "hello-from-loopback\n";
    char line[256];
    size_t n = 0;
    int c;

    if (poll(&p, 1, 30000) != 1 || (c = accept(l->fd, NULL, NULL)) < 0)
        return NULL;
    if (write(c, hello, sizeof(hello) - 1) > 0) {
        struct pollfd q = {c, POLLIN, 0};
        while (n < sizeof(line) - 1 && poll(&q, 1, 10000) == 1) {
            ssize_t r = read(c, line + n, 1);
            if (r <= 0 || line[n] == '\n')
                break;
            n++;
        }
        line[n] = '\0';
        char *ans = xasprintf("echo:%s\n", line);
        if (write(c, ans, strlen(ans)) > 0)
            l->served++;
        free(ans);
    }
    close(c);
    return NULL;
}

Test(hosts, relay_reaches_loopback_server)
{
    struct listener l;
    struct hosts_relay *r;
    char port[16], *out = NULL, *script;
    int rc;

    up(P_RELAY, 1);
    listen_on(&l, "127.0.0.1");
    r = hosts_relay_start(&hs, 0, l.port);
    cr_assert(r, "hosts_relay_start: %s", hs.err);
    cr_assert_gt(hosts_relay_port(r), 0);
    cr_assert_eq(pthread_create(&l.thread, NULL, serve_echo, &l), 0);
    snprintf(port, sizeof(port), "%d", hosts_relay_port(r));
    script = xasprintf("echo from-host | busybox nc -w 3 %s %s", hs.master, port);
    {
        const char *argv[] = {"sh", "-c", script, NULL};
        rc = hosts_exec_env(&hs.host[0], argv, NULL, 10, &out, NULL);
    }
    pthread_join(l.thread, NULL);
    close(l.fd);
    hosts_relay_stop(r);
    free(script);
    cr_assert_eq(rc, 0, "nc through the relay exited with %d (output '%s')", rc, out);
    cr_assert_str_eq(out, "hello-from-loopback\necho:from-host\n");
    cr_assert_eq(l.served, 1);
    free(out);
}

Test(hosts, relay_reaches_a_test_etcd)
{
    struct hosts_relay *r;
    char *url, *out = NULL, *err = NULL;
    int rc;

    up(P_ETCD, 1);
    cr_assert_eq(etcd_proc_start(&etcd), 0, "cannot start etcd");
    r = hosts_relay_start(&hs, 0, etcd.client_port);
    cr_assert(r, "hosts_relay_start: %s", hs.err);
    /* what an agent in a host does: etcd's HTTP API (v3 JSON gateway) on the master address */
    url = xasprintf("http://%s:%d/v3/kv/range", hs.master, hosts_relay_port(r));
    {
        const char *argv[] = {"curl", "-s", "--max-time",         "5", "-X",
                              "POST", "-d", "{\"key\":\"AA==\"}", url, NULL};
        rc = hosts_exec(&hs.host[0], argv, &out, &err);
    }
    hosts_relay_stop(r);
    free(url);
    cr_assert_eq(rc, 0, "curl to etcd through the relay: %d %s", rc, err);
    cr_assert(strstr(out, "\"header\""), "etcd answered '%s'", out);
    free(out);
    free(err);
}

/* --- after down, nothing with the prefix remains, even what a crash would leave ---------- */

static int contains_prefix(const char *text, const char *needle)
{
    return text && strstr(text, needle) != NULL;
}

static char *run_text(const char *const argv[])
{
    char *out = NULL;

    proc_run(argv, NULL, NULL, &out, NULL);
    return out ? out : xstrdup("");
}

static int cgroup_dirs_left(const char *name)
{
    DIR *d = opendir("/sys/fs/cgroup");
    struct dirent *e;
    struct stat st;
    int left = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char *p = xasprintf("/sys/fs/cgroup/%s/%s", e->d_name, name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0)
            left++;
        free(p);
    }
    closedir(d);
    return left;
}

Test(hosts, down_leaves_nothing)
{
    const char *pfx = prefixes[P_DOWN];
    char needle[16], run[64], lib[64], pid_path[96], cg[16];
    const char *detached[] = {"run", "-d", "--pull", "never", IMAGE, "sleep", "300", NULL};
    const char *sleeper[] = {"sh", "-c", "busybox sleep 300 >/dev/null 2>&1 & echo $!", NULL};
    const char *netns_list[] = {"ip", "netns", "list", NULL};
    const char *links[] = {"ip", "-o", "link", NULL};
    const char *routes[] = {"ip", "route", NULL};
    char *out = NULL, *err = NULL, *text;
    FILE *f;
    long dockerd_pid = 0, sleeper_pid, host_pids[64];
    int npids = 0;
    int rc;

    up(P_DOWN, 2);
    /* leave work behind as a crashed test would: a container, a stray process in the host
     * netns, and a dockerd killed hard */
    rc = hosts_docker(&hs.host[0], detached, &out, &err);
    cr_assert_eq(rc, 0, "docker run -d: %s", err);
    free(out);
    free(err);
    rc = hosts_exec(&hs.host[1], sleeper, &out, NULL);
    cr_assert_eq(rc, 0);
    sleeper_pid = strtol(out, NULL, 10);
    free(out);
    cr_assert_gt(sleeper_pid, 1);
    snprintf(pid_path, sizeof(pid_path), "/run/kontena-hosts/%s/h1/docker.pid", pfx);
    f = fopen(pid_path, "r");
    cr_assert(f, "no %s", pid_path);
    cr_assert_eq(fscanf(f, "%ld", &dockerd_pid), 1);
    fclose(f);
    /* every process of both hosts (dockerd, containerd, shims, the sleeper), before the crash */
    for (int i = 0; i < 2; i++) {
        const char *pids[] = {"ip", "netns", "pids", hs.host[i].netns, NULL};
        char *t = run_text(pids), *save = NULL;
        for (char *tok = strtok_r(t, "\n", &save); tok && npids < 64;
             tok = strtok_r(NULL, "\n", &save))
            host_pids[npids++] = strtol(tok, NULL, 10);
        free(t);
    }
    cr_assert_geq(npids, 5, "only %d processes in the hosts' netns", npids);
    kill((pid_t)dockerd_pid, SIGKILL);

    cr_assert_eq(hosts_down(&hs), 0, "hosts_down: %s", hs.err);
    cr_expect_lt(hs.down_ms, 30000, "down took %ld ms", hs.down_ms);

    snprintf(needle, sizeof(needle), "%s-", pfx);
    text = run_text(netns_list);
    cr_expect(!contains_prefix(text, needle), "netns left: %s", text);
    free(text);
    text = run_text(links);
    cr_expect(!contains_prefix(text, needle), "links left: %s", text);
    free(text);
    text = run_text(routes);
    cr_expect(!contains_prefix(text, "10.250.203."), "route left: %s", text);
    free(text);
    snprintf(run, sizeof(run), "/run/kontena-hosts/%s", pfx);
    snprintf(lib, sizeof(lib), "/var/lib/kontena-hosts/%s", pfx);
    cr_expect_neq(access(run, F_OK), 0, "%s left", run);
    cr_expect_neq(access(lib, F_OK), 0, "%s left", lib);
    f = fopen("/proc/self/mountinfo", "r");
    cr_assert(f);
    {
        char line[4096];
        while (fgets(line, sizeof(line), f)) {
            cr_expect(!strstr(line, run) && !strstr(line, lib), "mount left: %s", line);
        }
    }
    fclose(f);
    snprintf(cg, sizeof(cg), "%s-h1", pfx);
    cr_expect_eq(cgroup_dirs_left(cg), 0, "cgroup dirs %s left", cg);
    snprintf(cg, sizeof(cg), "%s-h2", pfx);
    cr_expect_eq(cgroup_dirs_left(cg), 0, "cgroup dirs %s left", cg);
    cr_expect(kill((pid_t)sleeper_pid, 0) != 0, "process %ld in the host netns left", sleeper_pid);
    cr_expect(kill((pid_t)dockerd_pid, 0) != 0, "dockerd %ld left", dockerd_pid);
    for (int i = 0; i < npids; i++)
        cr_expect(kill((pid_t)host_pids[i], 0) != 0, "process %ld of a host left", host_pids[i]);

    /* a second down finds nothing and succeeds */
    cr_expect_eq(hosts_down(&hs), 0, "second hosts_down: %s", hs.err);
}
