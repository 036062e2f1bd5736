/* tests/integration/test_overlay.c -- the agent's overlay across three hosts (issue 6, point 1).
 *
 * Three hosts from tests/support/hosts.h (a netns and a dockerd each), one etcd in the root
 * netns listening on the harness's master address, and one kontena-agent per host, run
 * inside its netns with --overlay and a short --resync-interval, in reconcile-only mode. The
 * test writes the node keys (node_number, private_ip), the node_status keys and the instance
 * keys (with overlay_cidr) itself, as the apiserver and the scheduler would.
 *
 * Checks: containers on different hosts ping and fetch from each other by overlay address;
 * a host reaches a container on another host from its own overlay address; deleting vxlan0,
 * an FDB entry or the Docker network by hand is repaired within a resync; a node going
 * offline loses its FDB entry on the peers; restarting an agent recreates nothing.
 * Bounded by the binary's timeout; the hosts are removed in .fini and in ReportHook(POST_ALL).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/hosts.h"
#include "tests/support/proc.h"

#include "common/banned.h"

#define PREFIX "kov"
#define SUBNET 61
#define NHOSTS 3
#define GRID "ovl"
#define RESYNC_MS "700"

static struct hosts hs;
static pid_t etcd_pid, agents[NHOSTS];
static char *dir, *endpoint, *agent_logs[NHOSTS];
static struct etcd *ec;

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    hosts_down_prefix(PREFIX); /* after a test killed by its timeout */
}

static void stop_agent(int i)
{
    if (agents[i] > 0)
        proc_stop(agents[i], SIGTERM, 10000);
    agents[i] = 0;
}

static void fini(void)
{
    for (int i = 0; i < NHOSTS; i++) {
        if (agents[i] > 0 && agent_logs[i])
            proc_dump_file(agent_logs[i]);
        stop_agent(i);
        free(agent_logs[i]);
        agent_logs[i] = NULL;
    }
    etcd_destroy(ec);
    ec = NULL;
    if (etcd_pid > 0)
        proc_stop(etcd_pid, SIGTERM, 5000);
    etcd_pid = 0;
    hosts_down(&hs);
    proc_rmtree("/run/kontena/dns/" GRID); /* the agents' DNS run directories (agent/dns.h) */
    if (dir)
        proc_rmtree(dir);
    free(dir);
    free(endpoint);
    dir = endpoint = NULL;
}

static void put(const char *key, const char *value)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(ec, key, value, strlen(value), 0, NULL, NULL, &e), ST_OK, "put %s: %s",
                 key, e.msg);
}

static void del(const char *key)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_delete(ec, key, NULL, NULL, &e), ST_OK, "delete %s: %s", key, e.msg);
}

/* An etcd on the master address, reachable from the hosts. */
static void start_etcd(void)
{
    int cport = proc_free_port(), pport = proc_free_port();
    char *curl = xasprintf("http://%s:%d", hs.master, cport);
    char *purl = xasprintf("http://127.0.0.1:%d", pport);
    char *cluster = xasprintf("ovl=%s", purl), *data = xasprintf("%s/etcd", dir);
    char *log = xasprintf("%s/etcd.log", dir), *health = xasprintf("%s/health", curl);
    const char *bin = getenv("ETCD_BIN") ? getenv("ETCD_BIN") : "etcd";
    const char *argv[] = {bin,     "--name",
                          "ovl",   "--data-dir",
                          data,    "--listen-client-urls",
                          curl,    "--advertise-client-urls",
                          curl,    "--listen-peer-urls",
                          purl,    "--initial-advertise-peer-urls",
                          purl,    "--initial-cluster",
                          cluster, NULL};
    struct etcd_opts eo;
    struct err e = ERR_INIT;

    etcd_pid = proc_spawn(argv, NULL, log);
    cr_assert_gt(etcd_pid, 0, "cannot start etcd");
    if (proc_wait_http(health, 200, 15000) != 0) {
        proc_dump_file(log);
        cr_assert_fail("etcd did not come up on %s", curl);
    }
    endpoint = curl;
    memset(&eo, 0, sizeof(eo));
    eo.endpoints = endpoint;
    ec = etcd_create(&eo, &e);
    cr_assert_not_null(ec, "%s", e.msg);
    free(purl);
    free(cluster);
    free(data);
    free(log);
    free(health);
}

static void start_agent(int i)
{
    const struct hosts_host *h = &hs.host[i];
    char *name = xasprintf("n%d", i + 1);
    const char *argv[] = {"ip",
                          "netns",
                          "exec",
                          h->netns,
                          KONTENA_BIN_DIR "/kontena-agent",
                          "--etcd-endpoints",
                          endpoint,
                          "--grid",
                          GRID,
                          "--node-name",
                          name,
                          "--docker-socket",
                          h->sock,
                          "--private-ip",
                          h->ip,
                          "--overlay",
                          "--resync-interval",
                          RESYNC_MS,
                          "--log-level",
                          "debug",
                          NULL};

    if (!agent_logs[i])
        agent_logs[i] = xasprintf("%s/agent-%d.log", dir, i + 1);
    agents[i] = proc_spawn(argv, NULL, agent_logs[i]);
    cr_assert_gt(agents[i], 0, "cannot start the agent of host %d", i + 1);
    free(name);
}

static void node_keys(int i)
{
    char *key = xasprintf("/kontena/nodes/" GRID "/n%d", i + 1);
    char *val = xasprintf("{\"name\":\"n%d\",\"grid\":\"" GRID "\",\"node_number\":%d,"
                          "\"private_ip\":\"%s\",\"public_ip\":\"%s\",\"labels\":[]}",
                          i + 1, i + 1, hs.host[i].ip, hs.host[i].ip);
    put(key, val);
    free(key);
    free(val);
    key = xasprintf("/kontena/node_status/" GRID "/n%d", i + 1);
    val = xasprintf("{\"node\":\"n%d\"}", i + 1);
    put(key, val);
    free(key);
    free(val);
}

/* web-<n> on host i + 1 at 10.81.128.<last>, serving "hello-<n>". */
static void instance_key_at(int i, int n, int last)
{
    char *key = xasprintf("/kontena/instances/" GRID "/n%d/web-%d", i + 1, n);
    char *val = xasprintf(
        "{\"stack\":\"null\",\"service\":\"web\",\"instance_number\":%d,\"revision\":1,"
        "\"desired_state\":\"running\",\"overlay_cidr\":\"10.81.128.%d/16\",\"spec\":{"
        "\"image\":\"kontena-test/busybox:latest\",\"stop_grace_period\":1,"
        "\"cmd\":[\"sh\",\"-c\",\"mkdir -p /w && echo hello-%d > /w/index.html && exec httpd "
        "-f -p 80 -h /w\"]}}",
        n, last, n);
    put(key, val);
    free(key);
    free(val);
}

/* web-<i+1> on host i + 1 at 10.81.128.<11+i>. */
static void instance_key(int i)
{
    instance_key_at(i, i + 1, 11 + i);
}

/* Run argv in host i until its stdout contains want (or, want NULL, it exits 0), up to ms. */
static int host_until(int i, const char *const argv[], const char *want, int ms, char **last)
{
    int64_t end = time_mono_ms() + ms;
    for (;;) {
        char *out = NULL, *err = NULL;
        int rc = hosts_exec_env(&hs.host[i], argv, NULL, 10, &out, &err);
        int ok = want ? (out && strstr(out, want) != NULL) : rc == 0;
        if (ok || time_mono_ms() > end) {
            if (last) {
                *last = xasprintf("rc=%d out=%s err=%s", rc, out ? out : "", err ? err : "");
            }
            free(out);
            free(err);
            return ok ? 0 : -1;
        }
        free(out);
        free(err);
        usleep(200 * 1000);
    }
}

static int docker_until(int i, const char *const args[], const char *want, int ms, char **last)
{
    int64_t end = time_mono_ms() + ms;
    for (;;) {
        char *out = NULL, *err = NULL;
        int rc = hosts_docker(&hs.host[i], args, &out, &err);
        int ok = want ? (out && strstr(out, want) != NULL) : rc == 0;
        if (ok || time_mono_ms() > end) {
            if (last)
                *last = xasprintf("rc=%d out=%s err=%s", rc, out ? out : "", err ? err : "");
            free(out);
            free(err);
            return ok ? 0 : -1;
        }
        free(out);
        free(err);
        usleep(200 * 1000);
    }
}

static char *container_id(int i)
{
    char *name = xasprintf("web-%d", i + 1), *out = NULL;
    const char *args[] = {"inspect", "-f", "{{.Id}}", name, NULL};
    int rc = hosts_docker(&hs.host[i], args, &out, NULL);
    free(name);
    if (rc != 0) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            for (int k_ = 0; k_ < NHOSTS; k_++)                                                    \
                if (agent_logs[k_])                                                                \
                    proc_dump_file(agent_logs[k_]);                                                \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

Test(overlay, three_hosts, .fini = fini, .timeout = 240)
{
    char *last = NULL, *id1, *id1b;

    if (geteuid() != 0)
        cr_skip_test("needs root (network namespaces, dockerd per host)");
    dir = proc_tempdir("overlay");
    hosts_init(&hs, PREFIX, SUBNET);
    cr_assert_eq(hosts_up(&hs, NHOSTS), 0, "%s", hs.err);
    start_etcd();
    {
        /* Every host's underlay is trusted: plain VXLAN (encryption is test_multihost's). */
        char *grid =
            xasprintf("{\"name\":\"" GRID "\",\"trusted_subnets\":[\"10.250.%d.0/24\"]}", SUBNET);
        put("/kontena/grids/" GRID, grid);
        free(grid);
    }
    for (int i = 0; i < NHOSTS; i++)
        node_keys(i);
    for (int i = 0; i < NHOSTS; i++)
        start_agent(i);
    /* Containers on hosts 1 and 2; host 3 has none (its network can be removed by hand). */
    instance_key(0);
    instance_key(1);

    /* The overlay is in place on every host: its own address on kontena0. */
    for (int i = 0; i < NHOSTS; i++) {
        char want[32];
        const char *show[] = {"ip", "-4", "addr", "show", "dev", "kontena0", NULL};
        snprintf(want, sizeof(want), "10.81.0.%d/16", i + 1);
        EXPECT(host_until(i, show, want, 30000, &last) == 0, "host %d has no %s: %s", i + 1, want,
               last);
        free(last);
    }

    /* Containers on different hosts reach each other by overlay address. */
    {
        const char *wget12[] = {
            "exec", "web-1", "sh", "-c", "timeout 5 wget -qO- http://10.81.128.12/", NULL};
        const char *wget21[] = {
            "exec", "web-2", "sh", "-c", "timeout 5 wget -qO- http://10.81.128.11/", NULL};
        const char *ping[] = {"exec", "web-1", "ping", "-c1", "-W2", "10.81.128.12", NULL};
        EXPECT(docker_until(0, wget12, "hello-2", 60000, &last) == 0,
               "web-1 cannot fetch from web-2: %s", last);
        free(last);
        EXPECT(docker_until(1, wget21, "hello-1", 20000, &last) == 0,
               "web-2 cannot fetch from web-1: %s", last);
        free(last);
        EXPECT(docker_until(0, ping, NULL, 20000, &last) == 0, "web-1 cannot ping web-2: %s", last);
        free(last);
    }

    /* A host reaches a container on another host from its overlay address. */
    {
        const char *get[] = {"curl",        "-s",        "--max-time",           "3",
                             "--interface", "10.81.0.3", "http://10.81.128.11/", NULL};
        EXPECT(host_until(2, get, "hello-1", 20000, &last) == 0,
               "host 3 cannot reach web-1 from 10.81.0.3: %s", last);
        free(last);
    }

    /* vxlan0 deleted by hand on host 1: re-made, traffic flows again. */
    {
        const char *rm[] = {"ip", "link", "del", "vxlan0", NULL};
        const char *wget[] = {
            "exec", "web-1", "sh", "-c", "timeout 3 wget -qO- http://10.81.128.12/", NULL};
        cr_assert_eq(hosts_exec(&hs.host[0], rm, NULL, NULL), 0);
        EXPECT(docker_until(0, wget, "hello-2", 10000, &last) == 0,
               "not repaired after vxlan0 was deleted: %s", last);
        free(last);
    }

    /* An FDB entry deleted by hand on host 2: back within a resync. */
    {
        const char *rm[] = {"bridge", "fdb",         "del", "00:00:00:00:00:00", "dev", "vxlan0",
                            "dst",    hs.host[0].ip, NULL};
        const char *show[] = {"bridge", "fdb", "show", "dev", "vxlan0", NULL};
        char want[64];
        snprintf(want, sizeof(want), "00:00:00:00:00:00 dst %s ", hs.host[0].ip);
        cr_assert_eq(hosts_exec(&hs.host[1], rm, NULL, NULL), 0);
        EXPECT(host_until(1, show, want, 10000, &last) == 0, "FDB entry not repaired: %s", last);
        free(last);
    }

    /* The Docker network removed by hand on host 3 (no containers there): re-made, and
     * vxlan0 attached to the new bridge again. */
    {
        const char *rm[] = {"network", "rm", "kontena", NULL};
        const char *get[] = {"curl", "-s", "--max-time", "3", "http://10.81.128.12/", NULL};
        char *out = NULL, *err = NULL;
        int rc = hosts_docker(&hs.host[2], rm, &out, &err);
        cr_assert_eq(rc, 0, "docker network rm: %s %s", out, err);
        free(out);
        free(err);
        EXPECT(host_until(2, get, "hello-2", 15000, &last) == 0,
               "host 3 not repaired after its network was removed: %s", last);
        free(last);
    }

    /* Node 3 goes offline: its FDB entry leaves hosts 1 and 2. */
    {
        const char *show[] = {"sh", "-c", NULL, NULL};
        char *script = xasprintf(
            "! bridge fdb show dev vxlan0 | grep -q '^00:00:00:00:00:00 dst %s '", hs.host[2].ip);
        show[2] = script;
        del("/kontena/node_status/" GRID "/n3");
        EXPECT(host_until(0, show, NULL, 10000, &last) == 0,
               "host 1 kept the departed node's entry: %s", last);
        free(last);
        EXPECT(host_until(1, show, NULL, 10000, &last) == 0,
               "host 2 kept the departed node's entry: %s", last);
        free(last);
        free(script);
    }

    /* Restarting the agent of host 1 recreates nothing. */
    id1 = container_id(0);
    cr_assert_not_null(id1);
    stop_agent(0);
    start_agent(0);
    usleep(3000 * 1000); /* a few resyncs */
    id1b = container_id(0);
    cr_assert_not_null(id1b);
    EXPECT(strcmp(id1, id1b) == 0, "the agent's restart re-made web-1 (%s -> %s)", id1, id1b);
    free(id1);
    free(id1b);

    /* An address moves from host 2 to host 3: web-1 reaches the new owner at once (the
     * gratuitous ARP re-points host 1's learned entry; without it ~30 s of loss). */
    {
        const char *wget[] = {
            "exec", "web-1", "sh", "-c", "timeout 2 wget -qO- http://10.81.128.12/", NULL};
        int64_t t0;
        node_keys(2); /* node 3 online again */
        del("/kontena/instances/" GRID "/n2/web-2");
        {
            const char *gone[] = {"inspect", "web-2", NULL};
            int64_t end = time_mono_ms() + 20000;
            while (hosts_docker(&hs.host[1], gone, NULL, NULL) == 0 && time_mono_ms() < end)
                usleep(200 * 1000);
        }
        t0 = time_mono_ms();
        instance_key_at(2, 3, 12);
        EXPECT(docker_until(0, wget, "hello-3", 12000, &last) == 0,
               "web-1 does not reach the moved address: %s", last);
        free(last);
        fprintf(stderr, "moved address reachable after %lld ms\n",
                (long long)(time_mono_ms() - t0));
    }

    /* Every agent exits 0 on SIGTERM (sanitizer reports make it fail). */
    for (int i = 0; i < NHOSTS; i++) {
        int st = proc_stop(agents[i], SIGTERM, 10000);
        agents[i] = 0;
        EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent %d ended with status 0x%x", i + 1,
               (unsigned)st);
    }
}
