/* Integration tests of the agent's DNS (agent/dns.h): the real dns module, a real etcd and a
 * real dnsmasq, listening on 127.0.0.1 and a free port instead of the node's overlay
 * address (the only difference from --overlay: dns_opts.listen_address/port), except for
 * listens_on_the_node_overlay_address_once_it_appears, which runs exactly as --overlay does
 * in a network namespace of its own. The test
 * writes instance, observed and stack keys the way the scheduler, ipam and agents do and
 * asks dnsmasq with a small UDP DNS client of its own. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/dns.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "tests/support/etcd_proc.h"
#include "tests/support/proc.h"

#include "common/banned.h"

TestSuite(dns_agent, .timeout = 120);

struct fx {
    struct etcd_proc ep;
    struct etcd *etcd;
    struct dns *dns;
    char *dir;     /* run_dir */
    char addr[16]; /* where dnsmasq listens */
    int port;
};

/* listen NULL: the node's overlay address from its node key, on port 53 (in a network
 * namespace of the test's own); else listen and a free port. */
static void fx_start_at(struct fx *f, const char *listen)
{
    struct etcd_opts eo;
    struct dns_opts o;
    struct err e = ERR_INIT;
    char *resolv;
    FILE *rf;

    memset(f, 0, sizeof(*f));
    snprintf(f->addr, sizeof(f->addr), "%s", listen ? listen : "");
    if (access("/usr/sbin/dnsmasq", X_OK) != 0 && system("command -v dnsmasq >/dev/null") != 0)
        cr_skip_test("dnsmasq is not installed (hack/install-deps.sh installs dnsmasq-base)");
    cr_assert_eq(etcd_proc_start(&f->ep), 0, "cannot start etcd");
    memset(&eo, 0, sizeof(eo));
    eo.endpoints = f->ep.endpoint;
    f->etcd = etcd_create(&eo, &e);
    cr_assert_not_null(f->etcd, "%s", e.msg);
    f->dir = proc_tempdir("dnstest");
    chmod(f->dir, 0755); /* dnsmasq drops its privileges and must read the hosts files */
    resolv = xasprintf("%s/resolv.conf", f->dir);
    rf = fopen(resolv, "w");
    cr_assert_not_null(rf);
    fclose(rf);
    f->port = listen ? proc_free_port() : 53;
    memset(&o, 0, sizeof(o));
    o.etcd_endpoints = f->ep.endpoint;
    o.grid = "g";
    o.node = "n1";
    o.listen_address = listen;
    o.port = listen ? f->port : 0;
    o.run_dir = f->dir;
    o.resolv_file = resolv;
    f->dns = dns_start(&o, &e);
    free(resolv);
    cr_assert_not_null(f->dns, "%s", e.msg);
}

static void fx_start(struct fx *f)
{
    fx_start_at(f, "127.0.0.1");
}

static void fx_stop(struct fx *f)
{
    dns_stop(f->dns);
    etcd_destroy(f->etcd);
    etcd_proc_cleanup(&f->ep);
    if (f->dir)
        proc_rmtree(f->dir);
    free(f->dir);
}

static void put(struct fx *f, const char *key, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_put(f->etcd, key, s, strlen(s), 0, NULL, NULL, &e), ST_OK, "%s", e.msg);
    free(s);
    json_decref(v);
}

static void del(struct fx *f, const char *key)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd_delete(f->etcd, key, NULL, NULL, &e), ST_OK, "%s", e.msg);
}

/* An instance of stack (NULL: stack-less) on node, running, at ip. */
static void run_instance(struct fx *f, const char *node, const char *stack, const char *service,
                         int n, const char *ip)
{
    char name[128], cidr[32], *k;

    if (stack)
        snprintf(name, sizeof(name), "%s.%s-%d", stack, service, n);
    else
        snprintf(name, sizeof(name), "%s-%d", service, n);
    snprintf(cidr, sizeof(cidr), "%s/16", ip);
    k = xasprintf("/kontena/instances/g/%s/%s", node, name);
    put(f, k,
        json_pack("{s:s,s:s?,s:s,s:i,s:s,s:s}", "grid", "g", "stack", stack, "service", service,
                  "instance_number", n, "desired_state", "running", "overlay_cidr", cidr));
    free(k);
    k = xasprintf("/kontena/observed/g/%s/%s", node, name);
    put(f, k, json_pack("{s:s}", "state", "running"));
    free(k);
}

static void remove_instance(struct fx *f, const char *node, const char *name)
{
    char *k = xasprintf("/kontena/instances/g/%s/%s", node, name);
    del(f, k);
    free(k);
    k = xasprintf("/kontena/observed/g/%s/%s", node, name);
    del(f, k);
    free(k);
}

/* --- a small DNS client ------------------------------------------------------------- */

/* Ask addr:port for name's A records. Returns the rcode (0 NOERROR, 3 NXDOMAIN) and the
 * addresses sorted and comma-joined in out, or -1 when nothing answered within 300 ms. */
static int query_a(const char *addr, int port, const char *name, char *out, size_t outlen)
{
    unsigned char q[512], r[1500];
    size_t n = 12;
    struct sockaddr_in sa;
    struct pollfd pfd;
    int fd, rc = -1;
    unsigned short id = (unsigned short)(rand() & 0xffff);
    char ips[32][16];
    int nips = 0;

    memset(q, 0, sizeof(q));
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = 0x01; /* RD */
    q[5] = 1;    /* QDCOUNT */
    for (const char *p = name; *p;) {
        size_t l = strcspn(p, ".");
        q[n++] = (unsigned char)l;
        memcpy(q + n, p, l);
        n += l;
        p += l;
        if (*p == '.')
            p++;
    }
    q[n++] = 0;
    q[n++] = 0;
    q[n++] = 1; /* A */
    q[n++] = 0;
    q[n++] = 1; /* IN */
    out[0] = '\0';
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (sendto(fd, q, n, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)n)
        goto done;
    pfd.fd = fd;
    pfd.events = POLLIN;
    while (poll(&pfd, 1, 300) == 1) {
        ssize_t got = recv(fd, r, sizeof(r), 0);
        size_t off = n, an;
        if (got < 12 || r[0] != q[0] || r[1] != q[1])
            continue;
        rc = r[3] & 0x0f;
        an = (size_t)(r[6] << 8 | r[7]);
        for (size_t i = 0; i < an && off < (size_t)got; i++) {
            unsigned type, rdlen;
            /* owner name: a pointer, or labels */
            while (off < (size_t)got && r[off] && (r[off] & 0xc0) != 0xc0)
                off += (size_t)r[off] + 1;
            off += off < (size_t)got && r[off] ? 2 : 1;
            if (off + 10 > (size_t)got)
                break;
            type = (unsigned)(r[off] << 8 | r[off + 1]);
            rdlen = (unsigned)(r[off + 8] << 8 | r[off + 9]);
            off += 10;
            if (type == 1 && rdlen == 4 && off + 4 <= (size_t)got && nips < 32)
                inet_ntop(AF_INET, r + off, ips[nips++], 16);
            off += rdlen;
        }
        break;
    }
    qsort(ips, (size_t)nips, 16, (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < nips; i++) {
        size_t l = strlen(out);
        snprintf(out + l, outlen - l, "%s%s", i ? "," : "", ips[i]);
    }
done:
    close(fd);
    return rc;
}

/* Poll until name resolves to want ("" with rcode 3 for NXDOMAIN), up to timeout_ms.
 * Returns the ms it took, or -1 (last answer in last). */
static int64_t wait_answer(struct fx *f, const char *name, const char *want, int timeout_ms,
                           char *last, size_t lastlen)
{
    int64_t t0 = time_mono_ms();
    do {
        int rc = query_a(f->addr, f->port, name, last, lastlen);
        if (rc >= 0 && ((!*want && rc == 3) || (*want && rc == 0 && !strcmp(last, want))))
            return time_mono_ms() - t0;
        if (rc == 3)
            snprintf(last, lastlen, "NXDOMAIN");
        time_sleep_ms(10);
    } while (time_mono_ms() - t0 < timeout_ms);
    return -1;
}

#define ASSERT_ANSWER(f, name, want, ms)                                                           \
    do {                                                                                           \
        char last_[512] = "";                                                                      \
        int64_t took_ = wait_answer(f, name, want, ms, last_, sizeof(last_));                      \
        cr_assert(took_ >= 0, "%s: want '%s' within %d ms, last answer '%s'", name,                \
                  *(want) ? (want) : "NXDOMAIN", ms, last_);                                       \
    } while (0)

static void shop_keys(struct fx *f)
{
    put(f, "/kontena/stacks/g/shop",
        json_pack("{s:s,s:s,s:s}", "name", "shop", "grid", "g", "expose", "web"));
    run_instance(f, "n1", "shop", "web", 1, "10.81.128.1");
    run_instance(f, "n2", "shop", "web", 2, "10.81.128.2");
    run_instance(f, "n2", "shop", "db", 1, "10.81.128.3");
    run_instance(f, "n3", NULL, "redis", 1, "10.81.128.4");
}

static void shop(struct fx *f)
{
    shop_keys(f);
    /* the first answer includes dnsmasq's start */
    ASSERT_ANSWER(f, "web.shop.g.kontena.local", "10.81.128.1,10.81.128.2", 10000);
}

Test(dns_agent, names_of_services_instances_stacks_and_nxdomain)
{
    struct fx f;
    char *stale;

    fx_start(&f);
    /* a leftover .hosts file of a stack that is gone is removed */
    stale = xasprintf("%s/hosts/gone.hosts", f.dir);
    FILE *sf = fopen(stale, "w");
    cr_assert_not_null(sf);
    fputs("10.9.9.9 old.gone.g.kontena.local\n", sf);
    fclose(sf);
    shop(&f);
    ASSERT_ANSWER(&f, "web-1.shop.g.kontena.local", "10.81.128.1", 1000);
    ASSERT_ANSWER(&f, "web-2.shop.g.kontena.local", "10.81.128.2", 1000);
    ASSERT_ANSWER(&f, "db.shop.g.kontena.local", "10.81.128.3", 1000);
    ASSERT_ANSWER(&f, "db-1.shop.g.kontena.local", "10.81.128.3", 1000);
    ASSERT_ANSWER(&f, "shop.g.kontena.local", "10.81.128.1,10.81.128.2", 1000);
    ASSERT_ANSWER(&f, "shop-2.g.kontena.local", "10.81.128.2", 1000);
    ASSERT_ANSWER(&f, "redis.g.kontena.local", "10.81.128.4", 1000);
    ASSERT_ANSWER(&f, "redis-1.g.kontena.local", "10.81.128.4", 1000);
    ASSERT_ANSWER(&f, "nope.shop.g.kontena.local", "", 1000);
    ASSERT_ANSWER(&f, "web-3.shop.g.kontena.local", "", 1000);
    ASSERT_ANSWER(&f, "old.gone.g.kontena.local", "", 1000);
    cr_assert_neq(access(stale, F_OK), 0, "the stale hosts file is still there");
    free(stale);
    fx_stop(&f);
}

Test(dns_agent, scale_up_down_move_stop_and_expose_within_a_second)
{
    struct fx f;
    struct json_t *v;
    int64_t t0;

    fx_start(&f);
    shop(&f);

    t0 = time_mono_ms();
    run_instance(&f, "n3", "shop", "web", 3, "10.81.128.5"); /* scale up */
    ASSERT_ANSWER(&f, "web.shop.g.kontena.local", "10.81.128.1,10.81.128.2,10.81.128.5", 1000);
    ASSERT_ANSWER(&f, "web-3.shop.g.kontena.local", "10.81.128.5", 1000);
    cr_log_info("scale up visible after %lld ms", (long long)(time_mono_ms() - t0));

    t0 = time_mono_ms();
    remove_instance(&f, "n2", "shop.web-2"); /* scale down */
    ASSERT_ANSWER(&f, "web.shop.g.kontena.local", "10.81.128.1,10.81.128.5", 1000);
    ASSERT_ANSWER(&f, "web-2.shop.g.kontena.local", "", 1000);
    cr_log_info("scale down visible after %lld ms", (long long)(time_mono_ms() - t0));

    /* a move: the old node's keys go, the new node's come (here with a new address) */
    t0 = time_mono_ms();
    remove_instance(&f, "n1", "shop.web-1");
    run_instance(&f, "n2", "shop", "web", 1, "10.81.128.9");
    ASSERT_ANSWER(&f, "web-1.shop.g.kontena.local", "10.81.128.9", 1000);
    ASSERT_ANSWER(&f, "web.shop.g.kontena.local", "10.81.128.5,10.81.128.9", 1000);
    cr_log_info("move visible after %lld ms", (long long)(time_mono_ms() - t0));

    /* an instance that stops is no longer served */
    put(&f, "/kontena/observed/g/n3/shop.web-3", json_pack("{s:s}", "state", "stopped"));
    ASSERT_ANSWER(&f, "web-3.shop.g.kontena.local", "", 1000);

    /* the stack exposes another service */
    v = json_pack("{s:s,s:s,s:s}", "name", "shop", "grid", "g", "expose", "db");
    put(&f, "/kontena/stacks/g/shop", v);
    ASSERT_ANSWER(&f, "shop.g.kontena.local", "10.81.128.3", 1000);

    /* the last instance of a stack goes: its file goes */
    remove_instance(&f, "n3", "redis-1");
    ASSERT_ANSWER(&f, "redis.g.kontena.local", "", 1000);
    fx_stop(&f);
}

Test(dns_agent, hosts_files_are_written_atomically)
{
    struct fx f;
    char buf[4096] __attribute__((aligned(8))), *hosts;
    int in, partial = 0, renamed = 0;
    DIR *d;
    struct dirent *de;

    fx_start(&f);
    hosts = xasprintf("%s/hosts", f.dir);
    in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert(in >= 0);
    cr_assert(inotify_add_watch(in, hosts, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) >=
              0);
    shop(&f);
    for (int i = 4; i < 30; i++) {
        char ip[16];
        snprintf(ip, sizeof(ip), "10.81.129.%d", i);
        run_instance(&f, "n1", "shop", "web", i, ip);
    }
    ASSERT_ANSWER(&f, "web-29.shop.g.kontena.local", "10.81.129.29", 1000);
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)(void *)p;
            size_t l = ev->len ? strlen(ev->name) : 0;
            int is_hosts = l > 6 && !strcmp(ev->name + l - 6, ".hosts");
            if (is_hosts && (ev->mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE)))
                partial++; /* written in place: dnsmasq could read half a file */
            if (is_hosts && (ev->mask & IN_MOVED_TO))
                renamed++;
            p += sizeof(*ev) + ev->len;
        }
    }
    close(in);
    cr_assert_eq(partial, 0, "%d writes to a .hosts file in place", partial);
    cr_assert(renamed >= 1, "no hosts file was renamed into place");
    d = opendir(hosts);
    cr_assert_not_null(d);
    while ((de = readdir(d)))
        cr_assert_null(strstr(de->d_name, ".tmp"), "left behind: %s", de->d_name);
    closedir(d);
    free(hosts);
    fx_stop(&f);
}

static long dnsmasq_pid(struct fx *f)
{
    char *path = xasprintf("%s/dnsmasq.pid", f->dir);
    FILE *pf = fopen(path, "r");
    long pid = 0;
    free(path);
    if (!pf)
        return 0;
    if (fscanf(pf, "%ld", &pid) != 1)
        pid = 0;
    fclose(pf);
    return pid;
}

Test(dns_agent, dnsmasq_is_restarted_when_it_dies_and_stopped_with_the_module)
{
    struct fx f;
    long pid, pid2;
    sigset_t agent_mask, old_mask;

    /* as kontena-agent does (it sigwaits): dnsmasq must not inherit the blocked signals */
    sigemptyset(&agent_mask);
    sigaddset(&agent_mask, SIGTERM);
    sigaddset(&agent_mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &agent_mask, &old_mask);
    fx_start(&f);
    shop(&f);
    pid = dnsmasq_pid(&f);
    cr_assert(pid > 1, "no dnsmasq pid file");
    cr_assert_eq(kill((pid_t)pid, SIGKILL), 0);
    ASSERT_ANSWER(&f, "web-1.shop.g.kontena.local", "10.81.128.1", 5000);
    pid2 = dnsmasq_pid(&f);
    cr_assert(pid2 > 1 && pid2 != pid, "dnsmasq was not restarted (pid %ld, was %ld)", pid2, pid);
    {
        char path[64], line[256];
        int unblocked = -1;
        FILE *st;
        snprintf(path, sizeof(path), "/proc/%ld/status", pid2);
        st = fopen(path, "r");
        while (st && fgets(line, sizeof(line), st))
            if (strncmp(line, "SigBlk:", 7) == 0)
                unblocked = strspn(line + 7, " \t0") == strcspn(line + 7, "\n");
        if (st)
            fclose(st);
        cr_assert_eq(unblocked, 1, "dnsmasq inherited blocked signals (%s)", path);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    dns_stop(f.dns);
    f.dns = NULL;
    cr_assert(kill((pid_t)pid2, 0) != 0 && errno == ESRCH, "dnsmasq %ld still runs", pid2);
    fx_stop(&f);
}

/* As with --overlay: no listen address given, so dnsmasq listens on 10.81.0.<node_number>
 * (from the node key) port 53, and only there; it starts before the address exists
 * (--bind-dynamic) and answers once it appears. In a network namespace of this test's own
 * (etcd and dnsmasq are started inside it), with the address on a bridge. */
Test(dns_agent, listens_on_the_node_overlay_address_once_it_appears)
{
    struct fx f;
    char got[256], addr[16];
    const char *const lo_up[] = {"ip", "link", "set", "lo", "up", NULL};
    /* a bridge, as kontena0 is (no dummy interfaces in this kernel) */
    const char *const add[] = {"ip", "link", "add", "kontena0", "type", "bridge", NULL};
    const char *const addr_add[] = {"ip", "addr", "add", "10.81.0.7/16", "dev", "kontena0", NULL};
    const char *const up[] = {"ip", "link", "set", "kontena0", "up", NULL};

    if (unshare(CLONE_NEWNET) != 0)
        cr_skip_test("cannot make a network namespace: %s", strerror(errno));
    cr_assert_eq(proc_run(lo_up, NULL, NULL, NULL, NULL), 0);
    /* etcd first (the dns module needs it), then the node key, then the module */
    fx_start_at(&f, NULL);
    put(&f, "/kontena/nodes/g/n1", json_pack("{s:s,s:i}", "name", "n1", "node_number", 7));
    shop_keys(&f);
    time_sleep_ms(1500); /* dnsmasq is started meanwhile, with nowhere to listen */
    cr_assert_eq(dns_server_address(f.dns, addr), 0);
    cr_assert_str_eq(addr, "10.81.0.7");
    snprintf(f.addr, sizeof(f.addr), "%s", addr);
    cr_assert_eq(proc_run(add, NULL, NULL, NULL, NULL), 0);
    cr_assert_eq(proc_run(addr_add, NULL, NULL, NULL, NULL), 0);
    cr_assert_eq(proc_run(up, NULL, NULL, NULL, NULL), 0);
    ASSERT_ANSWER(&f, "web.shop.g.kontena.local", "10.81.128.1,10.81.128.2", 5000);
    ASSERT_ANSWER(&f, "nope.g.kontena.local", "", 1000);
    /* only the overlay address: nothing answers on loopback */
    cr_assert_eq(query_a("127.0.0.1", 53, "web.shop.g.kontena.local", got, sizeof(got)), -1,
                 "answered on 127.0.0.1: %s", got);
    fx_stop(&f);
}
