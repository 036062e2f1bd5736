/* agent/overlay.c -- bridge, VXLAN and FDB reconcile (iproute2 child processes), the
 * Docker network, and the gratuitous ARP from a container's netns. See overlay.h and
 * docs/internals/overlay.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/overlay.h"
#include "agent/vxfilter.h"
#include "agent/wg.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

extern char **environ;

#define MAX_TOOL_OUTPUT (4u << 20)

struct overlay {
    char *grid, *node, *private_ip;
    char *nodes_prefix;  /* /kontena/nodes/<grid>/ */
    char *status_prefix; /* /kontena/node_status/<grid>/ */
    char *grid_key;      /* /kontena/grids/<grid>: trusted_subnets */
    char *peers_logged;  /* the peer plan last logged, to log changes only */
    char *filter_err;    /* why the admission chain last failed (logged once), NULL when fine */
    struct wg_key key;   /* this node's WireGuard keys */
    char wg_if[16];      /* its device */
};

/* --- child processes ------------------------------------------------------------------- */

static const char *tool_path(const char *name)
{
    static const char *const dirs[] = {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"};
    static __thread char path[64];

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", dirs[i], name);
        if (access(path, X_OK) == 0)
            return path;
    }
    return name; /* let PATH find it */
}

/* Run argv (argv[0] a tool name) with `in` (NULL: the agent's stdin) on its stdin, capture
 * stdout into *out (may be NULL) and stderr into the error. ST_OK when it exited 0;
 * ST_IO "<what>: <stderr>" otherwise. */
static enum status run_tool_in(const char *const *argv, const char *in, char **out,
                               const char *what, struct err *e)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1}, status = 0;
    posix_spawn_file_actions_t fa;
    struct buf bo, be;
    size_t in_len = in ? strlen(in) : 0, in_off = 0;
    pid_t pid;
    int rc;

    if (out)
        *out = NULL;
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
        (in && pipe2(pi, O_CLOEXEC) != 0)) {
        int saved = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        return err_set(e, ST_IO, "%s: cannot make a pipe: %s", what, strerror(saved));
    }
    /* The agent writes the input while it reads the output: never block on a full pipe. */
    if (in && fcntl(pi[1], F_SETFL, O_NONBLOCK) == -1) {
        int saved = errno;
        for (int i = 0; i < 2; i++) {
            close(po[i]);
            close(pe[i]);
            close(pi[i]);
        }
        return err_set(e, ST_IO, "%s: cannot set up its input: %s", what, strerror(saved));
    }
    posix_spawn_file_actions_init(&fa);
    if (in)
        posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    /* Nothing else of the agent's leaks into the tool (or into a daemon it leaves, such as
     * wireguard-go), and it starts with no blocked signals and SIGPIPE at its default: the
     * agent blocks SIGTERM (it sigwaits) and ignores SIGPIPE. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    {
        posix_spawnattr_t at;
        sigset_t none, def;
        sigemptyset(&none);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        posix_spawnattr_init(&at);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &def);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        rc = posix_spawnp(&pid, tool_path(argv[0]), &fa, &at, (char *const *)argv, environ);
        posix_spawnattr_destroy(&at);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (in)
        close(pi[0]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        if (in)
            close(pi[1]);
        return err_set(e, ST_IO, "%s: cannot run %s: %s", what, argv[0], strerror(rc));
    }
    buf_init(&bo, MAX_TOOL_OUTPUT);
    buf_init(&be, 64u << 10);
    {
        struct pollfd pf[3] = {{.fd = po[0], .events = POLLIN},
                               {.fd = pe[0], .events = POLLIN},
                               {.fd = in ? pi[1] : -1, .events = POLLOUT}};
        int open_fds = 2;
        if (in && in_len == 0) {
            close(pi[1]);
            pf[2].fd = -1;
        }
        while (open_fds > 0) {
            if (poll(pf, 3, -1) < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (pf[2].fd >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t n = write(pf[2].fd, in + in_off, in_len - in_off);
                if (n > 0)
                    in_off += (size_t)n;
                /* done, or the tool closed its stdin (EPIPE: SIGPIPE is ignored) */
                if (in_off == in_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    close(pf[2].fd);
                    pf[2].fd = -1;
                }
            }
            for (int i = 0; i < 2; i++) {
                char chunk[4096];
                ssize_t n;
                if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                n = read(pf[i].fd, chunk, sizeof(chunk));
                if (n > 0) {
                    struct buf *b = i == 0 ? &bo : &be;
                    (void)!buf_append(b, chunk, (size_t)n); /* over the cap: cut, read on */
                } else if (n == 0 || errno != EINTR) {
                    close(pf[i].fd);
                    pf[i].fd = -1;
                    open_fds--;
                }
            }
        }
        for (int i = 0; i < 3; i++)
            if (pf[i].fd >= 0)
                close(pf[i].fd);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (out)
            *out = buf_take(&bo);
        buf_release(&be);
        buf_release(&bo);
        return ST_OK;
    }
    {
        char *msg = buf_take(&be);
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        if (WIFEXITED(status))
            err_set(e, ST_IO, "%s: %s exited %d: %s", what, argv[0], WEXITSTATUS(status),
                    *msg ? msg : "(no message)");
        else
            err_set(e, ST_IO, "%s: %s killed by signal %d", what, argv[0],
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        free(msg);
    }
    buf_release(&be);
    buf_release(&bo);
    return e ? e->st : ST_IO;
}

static enum status run_tool(const char *const *argv, char **out, const char *what, struct err *e)
{
    return run_tool_in(argv, NULL, out, what, e);
}

/* `ip -j -d link show dev <dev>` as JSON (the link object, new reference), or NULL when the
 * device does not exist (ST_NOTFOUND) or ip failed. */
static enum status link_show(const char *dev, json_t **link, struct err *e)
{
    const char *argv[] = {"ip", "-j", "-d", "link", "show", "dev", dev, NULL};
    struct err e2 = ERR_INIT;
    char *out = NULL;
    json_t *arr;

    *link = NULL;
    if (run_tool(argv, &out, "ip link show", &e2) != ST_OK) {
        if (strstr(e2.msg, "does not exist") || strstr(e2.msg, "Cannot find device"))
            return err_set(e, ST_NOTFOUND, "no device %s", dev);
        return err_set(e, e2.st, "%s", e2.msg);
    }
    arr = json_loads(out, 0, NULL);
    free(out);
    if (!json_is_object(json_array_get(arr, 0))) {
        json_decref(arr);
        return err_set(e, ST_INVALID, "ip link show dev %s: unexpected output", dev);
    }
    *link = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return ST_OK;
}

static int link_has_flag(const json_t *link, const char *flag)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(link, "flags"), i,
                       f) if (json_is_string(f) && !strcmp(json_string_value(f), flag)) return 1;
    return 0;
}

/* --- peers ----------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

/* The node's region label ("region=eu" in labels[]), "default" without one (borrowed). */
static const char *node_region(const json_t *node, char *tmp, size_t n)
{
    size_t i;
    json_t *l;

    json_array_foreach(json_object_get(node, "labels"), i, l)
    {
        const char *s = json_string_value(l);
        if (s && !strncmp(s, "region=", 7) && s[7]) {
            snprintf(tmp, n, "%s", s + 7);
            return tmp;
        }
    }
    return "default";
}

static int valid_ipv4(const char *s)
{
    struct in_addr a;
    return s && inet_pton(AF_INET, s, &a) == 1;
}

/* Whether ipv4 lies in one of the CIDR strings of subnets ("10.0.0.0/8"; a bare address is a
 * /32). Entries that do not parse are ignored. */
int overlay_in_subnets(const char *ipv4, const json_t *subnets)
{
    struct in_addr a;
    size_t i;
    json_t *x;

    if (!ipv4 || inet_pton(AF_INET, ipv4, &a) != 1)
        return 0;
    json_array_foreach(subnets, i, x)
    {
        const char *s = json_string_value(x), *slash;
        char net[INET_ADDRSTRLEN];
        struct in_addr n;
        long len = 32;
        uint32_t mask;

        if (!s)
            continue;
        slash = strchr(s, '/');
        if ((size_t)(slash ? slash - s : (long)strlen(s)) >= sizeof(net))
            continue;
        snprintf(net, sizeof(net), "%.*s", (int)(slash ? slash - s : (long)strlen(s)), s);
        if (slash) {
            char *end;
            len = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end || len < 0 || len > 32)
                continue;
        }
        if (inet_pton(AF_INET, net, &n) != 1)
            continue;
        mask = len == 0 ? 0 : htonl(0xffffffffu << (32 - len));
        if ((a.s_addr & mask) == (n.s_addr & mask))
            return 1;
    }
    return 0;
}

/* The underlay address a node uses towards a peer: its private one within a region, its
 * public one across regions (each falling back to the other); NULL when it has none. */
static const char *pair_address(const json_t *node, int same_region)
{
    const char *priv = jstr(node, "private_ip"), *pub = jstr(node, "public_ip");
    if (same_region)
        return valid_ipv4(priv) ? priv : valid_ipv4(pub) ? pub : NULL;
    return valid_ipv4(pub) ? pub : valid_ipv4(priv) ? priv : NULL;
}

json_t *overlay_plan(const char *self, const json_t *nodes, const json_t *online,
                     const json_t *trusted)
{
    const json_t *me = json_object_get(nodes, self), *n;
    char rself[128], rpeer[128];
    const char *my_region = node_region(me, rself, sizeof(rself)), *name;
    json_t *out = json_array();

    json_object_foreach((json_t *)nodes, name, n)
    {
        int same, enc;
        const char *ip, *mine, *key;
        json_int_t number = json_integer_value(json_object_get(n, "node_number"));
        unsigned char raw[WG_KEY_LEN];
        json_t *p;

        if (!strcmp(name, self) || !json_object_get(online, name) || !json_is_object(n))
            continue;
        same = !strcmp(node_region(n, rpeer, sizeof(rpeer)), my_region);
        ip = pair_address(n, same);
        if (!ip)
            continue;
        mine = pair_address(me, same);
        enc = !(overlay_in_subnets(mine, trusted) && overlay_in_subnets(ip, trusted));
        key = jstr(n, "wireguard_public_key");
        if (key && wg_key_from_b64(key, raw) != 0)
            key = NULL;
        p = json_pack("{s:s, s:s, s:b}", "node", name, "ip", ip, "encrypted", enc);
        json_object_set_new(p, "key", key ? json_string(key) : json_null());
        json_object_set_new(p, "number",
                            number >= 1 && number <= 254 ? json_integer(number) : json_null());
        if (!enc)
            json_object_set_new(p, "dst", json_string(ip));
        else if (key && number >= 1 && number <= 254)
            json_object_set_new(p, "dst",
                                json_sprintf(OVERLAY_WG_PREFIX "%lld", (long long)number));
        else
            json_object_set_new(p, "dst", json_null()); /* no plain fallback: fail closed */
        json_array_append_new(out, p);
    }
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *overlay_peers(const char *self, const json_t *nodes, const json_t *online)
{
    json_t *plan = overlay_plan(self, nodes, online, NULL), *p, *out = json_array();
    const char **ips = xcalloc(json_array_size(plan) + 1, sizeof(*ips));
    size_t k = 0, i;

    json_array_foreach(plan, i, p) ips[k++] = jstr(p, "ip");
    qsort(ips, k, sizeof(*ips), cmp_str);
    for (i = 0; i < k; i++)
        if (i == 0 || strcmp(ips[i], ips[i - 1]) != 0)
            json_array_append_new(out, json_string(ips[i]));
    free(ips);
    json_decref(plan);
    return out;
}

/* name -> parsed value of every key under prefix (values that do not parse: {}). */
static enum status list_prefix(struct etcd *etcd, const char *prefix, json_t **out, struct err *e)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res;
    size_t plen = strlen(prefix);

    *out = NULL;
    if (etcd_range(etcd, prefix, &ro, &res, e) != ST_OK)
        return e ? e->st : ST_IO;
    *out = json_object();
    for (size_t i = 0; i < res.n; i++) {
        const char *name = res.kvs[i].key + plen;
        json_t *v;
        if (!*name || strchr(name, '/'))
            continue;
        v = json_loadb(res.kvs[i].value ? res.kvs[i].value : "", res.kvs[i].value_len, 0, NULL);
        json_object_set_new(*out, name, v ? v : json_object());
    }
    etcd_range_result_release(&res);
    return ST_OK;
}

/* The interface holding ipv4, into ifname; -1 when none does. */
static int device_of(const char *ipv4, char *ifname, size_t n)
{
    struct ifaddrs *ifa = NULL;
    struct in_addr want;
    int found = -1;

    if (inet_pton(AF_INET, ipv4, &want) != 1 || getifaddrs(&ifa) == -1)
        return -1;
    for (struct ifaddrs *p = ifa; p && found; p = p->ifa_next) {
        if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET)
            continue;
        if (((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr.s_addr == want.s_addr) {
            snprintf(ifname, n, "%s", p->ifa_name);
            found = 0;
        }
    }
    freeifaddrs(ifa);
    return found;
}

/* --- the steps ------------------------------------------------------------------------- */

static enum status ensure_network(struct overlay *ov, struct docker *d, const char *gateway,
                                  int mtu, struct err *e)
{
    char mtus[16];
    json_t *net = NULL, *cfg;
    struct err e2 = ERR_INIT;
    enum status st;

    st = docker_network_inspect(d, OVERLAY_NETWORK, &net, &e2);
    if (st == ST_OK) {
        const json_t *c0 =
            json_array_get(json_object_get(json_object_get(net, "IPAM"), "Config"), 0);
        const char *gw = json_string_value(json_object_get(c0, "Gateway"));
        const char *m = json_string_value(
            json_object_get(json_object_get(net, "Options"), "com.docker.network.driver.mtu"));
        if (!gw || strcmp(gw, gateway) != 0)
            log_warn("network=%s gateway=%s want=%s msg=\"the Docker network has another "
                     "gateway than this node's overlay address; remove it to have it re-made\"",
                     OVERLAY_NETWORK, gw ? gw : "(none)", gateway);
        if (!m || atoi(m) != mtu)
            log_warn("network=%s mtu=%s want=%d msg=\"the Docker network has another MTU than "
                     "this node's overlay mode wants (the trusted subnets changed?); remove it "
                     "with its containers to have it re-made\"",
                     OVERLAY_NETWORK, m ? m : "(default)", mtu);
        json_decref(net);
        return ST_OK;
    }
    if (st != ST_NOTFOUND)
        return err_set(e, st, "cannot inspect Docker network '%s': %s", OVERLAY_NETWORK, e2.msg);
    snprintf(mtus, sizeof(mtus), "%d", mtu);
    cfg =
        json_pack("{s:s, s:s, s:b, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:s}]}, s:{s:s}}", "Name",
                  OVERLAY_NETWORK, "Driver", "bridge", "CheckDuplicate", 1, "Options",
                  "com.docker.network.bridge.name", OVERLAY_BRIDGE, "com.docker.network.driver.mtu",
                  mtus, "IPAM", "Driver", "default", "Config", "Subnet", OVERLAY_SUBNET, "Gateway",
                  gateway, "Labels", "io.kontena.grid", ov->grid);
    st = docker_network_create(d, cfg, NULL, &e2);
    json_decref(cfg);
    if (st == ST_CONFLICT)
        return ST_OK; /* made meanwhile */
    if (st != ST_OK)
        return err_set(e, st, "cannot create Docker network '%s' (bridge %s, gateway %s): %s",
                       OVERLAY_NETWORK, OVERLAY_BRIDGE, gateway, e2.msg);
    log_info("network=%s bridge=%s subnet=%s gateway=%s mtu=%d msg=\"Docker network created\"",
             OVERLAY_NETWORK, OVERLAY_BRIDGE, OVERLAY_SUBNET, gateway, mtu);
    return ST_OK;
}

/* vxlan0 has no `local` and no `dev`: the kernel picks the source address and the way out
 * by route for each FDB destination, so frames to a plain peer leave from the underlay
 * address and frames to an encrypted peer's WireGuard address leave through the WireGuard
 * device, from this node's WireGuard address. That is also the address peers learn MACs at,
 * so learned unicast never goes around the tunnel (multihost README §3.3, pitfall a). */
static enum status ensure_vxlan(struct overlay *ov, int mtu, struct err *e)
{
    json_t *link = NULL;
    struct err e2 = ERR_INIT;
    enum status st = link_show(OVERLAY_VXLAN, &link, &e2);
    char vni[16], port[16], mtus[16];

    (void)ov;
    snprintf(vni, sizeof(vni), "%d", OVERLAY_VNI);
    snprintf(port, sizeof(port), "%d", OVERLAY_PORT);
    snprintf(mtus, sizeof(mtus), "%d", mtu);
    if (st != ST_OK && st != ST_NOTFOUND)
        return err_set(e, st, "%s", e2.msg);
    if (link) {
        const json_t *info = json_object_get(json_object_get(link, "linkinfo"), "info_data");
        const char *kind =
            json_string_value(json_object_get(json_object_get(link, "linkinfo"), "info_kind"));
        const char *l = json_string_value(json_object_get(info, "local"));
        const char *lk = json_string_value(json_object_get(info, "link"));
        if (!kind || strcmp(kind, "vxlan") != 0 ||
            json_integer_value(json_object_get(info, "id")) != OVERLAY_VNI ||
            json_integer_value(json_object_get(info, "port")) != OVERLAY_PORT || l || lk) {
            const char *del[] = {"ip", "link", "del", OVERLAY_VXLAN, NULL};
            log_warn("dev=%s local=%s link=%s msg=\"not the VXLAN device wanted (vni %d, port "
                     "%d, no fixed local address or device): re-making it\"",
                     OVERLAY_VXLAN, l ? l : "-", lk ? lk : "-", OVERLAY_VNI, OVERLAY_PORT);
            json_decref(link);
            link = NULL;
            if (run_tool(del, NULL, "ip link del " OVERLAY_VXLAN, e) != ST_OK)
                return e ? e->st : ST_IO;
        }
    }
    if (!link) {
        const char *add[] = {"ip", "link", "add",     OVERLAY_VXLAN, "type",     "vxlan",
                             "id", vni,    "dstport", port,          "learning", NULL};
        if (run_tool(add, NULL, "ip link add " OVERLAY_VXLAN, e) != ST_OK)
            return e ? e->st : ST_IO;
        log_info("dev=%s vni=%d msg=\"VXLAN device created\"", OVERLAY_VXLAN, OVERLAY_VNI);
    }
    if (!link || json_integer_value(json_object_get(link, "mtu")) != mtu || !jstr(link, "master") ||
        strcmp(jstr(link, "master"), OVERLAY_BRIDGE) != 0 || !link_has_flag(link, "UP")) {
        const char *set[] = {"ip", "link",   "set",          OVERLAY_VXLAN, "mtu",
                             mtus, "master", OVERLAY_BRIDGE, "up",          NULL};
        if (link)
            log_info("dev=%s master=%s mtu=%d msg=\"attaching the VXLAN device to %s\"",
                     OVERLAY_VXLAN, jstr(link, "master") ? jstr(link, "master") : "(none)", mtu,
                     OVERLAY_BRIDGE);
        json_decref(link);
        if (run_tool(set, NULL, "ip link set " OVERLAY_VXLAN " master " OVERLAY_BRIDGE, e) != ST_OK)
            return e ? e->st : ST_IO;
    } else {
        json_decref(link);
    }
    /* The bridge Docker made is down until it has a port up; make sure it is up. */
    if (link_show(OVERLAY_BRIDGE, &link, &e2) == ST_OK) {
        int up = link_has_flag(link, "UP");
        json_decref(link);
        if (!up) {
            const char *set[] = {"ip", "link", "set", OVERLAY_BRIDGE, "up", NULL};
            if (run_tool(set, NULL, "ip link set " OVERLAY_BRIDGE " up", e) != ST_OK)
                return e ? e->st : ST_IO;
        }
    }
    return ST_OK;
}

/* The WireGuard device: wireguard-go running (it daemonizes and outlives the agent), the
 * node's WireGuard address on it, up, this node's key and port, and exactly the encrypted
 * peers of the plan that have published a key (endpoint = their underlay address). Changes
 * only what differs, so established sessions are kept. */
static enum status ensure_wg(struct overlay *ov, json_int_t number, const json_t *plan,
                             struct err *e)
{
    json_t *link = NULL, *cur = NULL, *want = json_object(), *p, *have;
    struct err e2 = ERR_INIT;
    char addr[32], hex[2 * WG_KEY_LEN + 1], *reply = NULL, mtus[16];
    const char *k;
    struct buf req = BUF_INIT;
    enum status st;
    size_t i;
    int changed = 0;

    snprintf(addr, sizeof(addr), OVERLAY_WG_PREFIX "%lld/24", (long long)number);
    snprintf(mtus, sizeof(mtus), "%d", OVERLAY_WG_MTU);
    st = link_show(ov->wg_if, &link, &e2);
    if (st == ST_NOTFOUND) {
        const char *start[] = {"wireguard-go", ov->wg_if, NULL};
        if (run_tool(start, NULL, "wireguard-go", e) != ST_OK)
            goto fail;
        log_info("dev=%s msg=\"WireGuard device started (wireguard-go)\"", ov->wg_if);
        st = link_show(ov->wg_if, &link, &e2);
    }
    if (st != ST_OK) {
        err_set(e, st, "WireGuard device %s: %s", ov->wg_if, e2.msg);
        goto fail;
    }
    if (json_integer_value(json_object_get(link, "mtu")) != OVERLAY_WG_MTU ||
        !link_has_flag(link, "UP")) {
        const char *set[] = {"ip", "link", "set", ov->wg_if, "mtu", mtus, "up", NULL};
        if (run_tool(set, NULL, "ip link set (WireGuard device) up", e) != ST_OK)
            goto fail;
    }
    {
        const char *show[] = {"ip", "-j", "-4", "addr", "show", "dev", ov->wg_if, NULL};
        char *out = NULL;
        json_t *arr, *ai;
        int found = 0;
        char mine[32];
        snprintf(mine, sizeof(mine), OVERLAY_WG_PREFIX "%lld", (long long)number);
        if (run_tool(show, &out, "ip addr show (WireGuard device)", e) != ST_OK)
            goto fail;
        arr = json_loads(out, 0, NULL);
        free(out);
        json_array_foreach(json_object_get(json_array_get(arr, 0), "addr_info"), i, ai)
        {
            const char *l = jstr(ai, "local");
            if (l && !strcmp(l, mine) && json_integer_value(json_object_get(ai, "prefixlen")) == 24)
                found = 1;
        }
        json_decref(arr);
        if (!found) {
            const char *flush[] = {"ip", "-4", "addr", "flush", "dev", ov->wg_if, NULL};
            const char *add[] = {"ip", "addr", "add", addr, "dev", ov->wg_if, NULL};
            if (run_tool(flush, NULL, "ip addr flush (WireGuard device)", e) != ST_OK ||
                run_tool(add, NULL, "ip addr add (WireGuard device)", e) != ST_OK)
                goto fail;
            log_info("dev=%s address=%s msg=\"WireGuard address set\"", ov->wg_if, addr);
        }
    }
    if (wg_uapi(ov->wg_if, "get=1\n\n", &reply, e) != ST_OK)
        goto fail;
    cur = wg_parse_get(reply);
    free(reply);
    reply = NULL;

    /* wanted peers: public key (hex) -> {endpoint, allowed_ip} */
    json_array_foreach(plan, i, p)
    {
        unsigned char raw[WG_KEY_LEN];
        if (!json_is_true(json_object_get(p, "encrypted")) || !jstr(p, "dst") ||
            wg_key_from_b64(jstr(p, "key"), raw) != 0)
            continue;
        wg_key_to_hex(raw, hex);
        json_object_set_new(want, hex,
                            json_pack("{s:o, s:o}", "endpoint",
                                      json_sprintf("%s:%d", jstr(p, "ip"), WG_PORT), "allowed_ip",
                                      json_sprintf("%s/32", jstr(p, "dst"))));
    }
    wg_key_to_hex(ov->key.priv, hex);
    if (buf_puts(&req, "set=1\n") != ST_OK)
        goto oom;
    if (!jstr(cur, "private_key") || strcmp(jstr(cur, "private_key"), hex) != 0 ||
        json_integer_value(json_object_get(cur, "listen_port")) != WG_PORT) {
        if (buf_printf(&req, "private_key=%s\nlisten_port=%d\n", hex, WG_PORT) != ST_OK)
            goto oom;
        changed = 1;
        log_info("dev=%s port=%d msg=\"WireGuard key and port set\"", ov->wg_if, WG_PORT);
    }
    have = json_object_get(cur, "peers");
    json_object_foreach(want, k, p)
    {
        const json_t *h = json_object_get(have, k);
        const json_t *ips = json_object_get(h, "allowed_ips");
        if (h && jstr(h, "endpoint") && !strcmp(jstr(h, "endpoint"), jstr(p, "endpoint")) &&
            json_array_size(ips) == 1 &&
            !strcmp(json_string_value(json_array_get(ips, 0)) ?: "", jstr(p, "allowed_ip")))
            continue;
        if (buf_printf(&req,
                       "public_key=%s\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=%s\n", k,
                       jstr(p, "endpoint"), jstr(p, "allowed_ip")) != ST_OK)
            goto oom;
        changed = 1;
        log_info("dev=%s endpoint=%s allowed_ip=%s msg=\"WireGuard peer set\"", ov->wg_if,
                 jstr(p, "endpoint"), jstr(p, "allowed_ip"));
    }
    json_object_foreach((json_t *)have, k, p)
    {
        if (json_object_get(want, k))
            continue;
        if (buf_printf(&req, "public_key=%s\nremove=true\n", k) != ST_OK)
            goto oom;
        changed = 1;
        log_info("dev=%s msg=\"WireGuard peer removed (gone, trusted now, or a new key)\"",
                 ov->wg_if);
    }
    if (changed) {
        if (buf_puts(&req, "\n") != ST_OK)
            goto oom;
        if (wg_uapi(ov->wg_if, req.ptr, NULL, e) != ST_OK)
            goto fail;
    }
    buf_release(&req);
    json_decref(cur);
    json_decref(want);
    json_decref(link);
    return ST_OK;
oom:
    err_set(e, ST_IO, "WireGuard request too long");
fail:
    buf_release(&req);
    json_decref(cur);
    json_decref(want);
    json_decref(link);
    return e ? e->st : ST_IO;
}

static enum status ensure_fdb(struct overlay *ov, const json_t *peers, struct err *e)
{
    const char *show[] = {"bridge", "-j", "fdb", "show", "dev", OVERLAY_VXLAN, NULL};
    json_t *entries, *have = json_object(), *x;
    char *out = NULL;
    const char *ip;
    size_t i;

    (void)ov;
    if (run_tool(show, &out, "bridge fdb show dev " OVERLAY_VXLAN, e) != ST_OK) {
        json_decref(have);
        return e ? e->st : ST_IO;
    }
    entries = json_loads(out, 0, NULL);
    free(out);
    json_array_foreach(entries, i, x)
    {
        const char *mac = jstr(x, "mac"), *dst = jstr(x, "dst");
        if (mac && dst && !strcmp(mac, "00:00:00:00:00:00"))
            json_object_set_new(have, dst, json_true());
    }
    json_decref(entries);
    json_array_foreach(peers, i, x)
    {
        const char *add[] = {"bridge", "fdb",         "append", "00:00:00:00:00:00",
                             "dev",    OVERLAY_VXLAN, "dst",    json_string_value(x),
                             NULL};
        if (json_object_get(have, json_string_value(x))) {
            json_object_del(have, json_string_value(x));
            continue;
        }
        if (run_tool(add, NULL, "bridge fdb append", e) != ST_OK) {
            json_decref(have);
            return e ? e->st : ST_IO;
        }
        log_info("dev=%s dst=%s msg=\"peer forwarding entry added\"", OVERLAY_VXLAN,
                 json_string_value(x));
    }
    json_object_foreach(have, ip, x)
    {
        const char *del[] = {"bridge", "fdb", "del", "00:00:00:00:00:00", "dev", OVERLAY_VXLAN,
                             "dst",    ip,    NULL};
        if (run_tool(del, NULL, "bridge fdb del", e) != ST_OK) {
            json_decref(have);
            return e ? e->st : ST_IO;
        }
        log_info("dev=%s dst=%s msg=\"departed peer's forwarding entry deleted\"", OVERLAY_VXLAN,
                 ip);
    }
    json_decref(have);
    return ST_OK;
}

/* The VXLAN admission chain (agent/vxfilter.h) for this plan: read the filter table, and
 * only when the chain or its jump differ from what the plan wants, rewrite them in one
 * iptables-restore transaction. A failure is logged (once per distinct message) and does
 * not stop the pass: the overlay then runs without admission (docs/internals/overlay.md). */
static void ensure_filter(struct overlay *ov, const json_t *plan)
{
    const char *save[] = {"iptables-save", "-t", "filter", NULL};
    const char *restore[] = {"iptables-restore", "-w", "--noflush", NULL};
    struct err e = ERR_INIT;
    char *rules = vxfilter_rules(plan, ov->wg_if), *have = NULL, *text = NULL;

    if (run_tool(save, &have, "iptables-save -t filter", &e) != ST_OK)
        goto out;
    text = vxfilter_restore(have, rules);
    if (text) {
        if (run_tool_in(restore, text, NULL, "iptables-restore -w --noflush", &e) != ST_OK)
            goto out;
        /* count the ACCEPTs: every line but the final DROP */
        {
            int accepts = -1;
            for (const char *c = rules; *c; c++)
                accepts += *c == '\n';
            log_info("chain=%s accept=%d msg=\"VXLAN admission rules written: udp/%d only from "
                     "the peers' forwarding addresses, the rest dropped\"",
                     VXFILTER_CHAIN, accepts, OVERLAY_PORT);
        }
    }
out:
    if (e.st != ST_OK) {
        if (!ov->filter_err || strcmp(ov->filter_err, e.msg) != 0)
            log_error("chain=%s msg=\"cannot keep the VXLAN admission rules, the overlay runs "
                      "without them: %s\"",
                      VXFILTER_CHAIN, e.msg);
        free(ov->filter_err);
        ov->filter_err = xstrdup(e.msg);
    } else if (ov->filter_err) {
        log_info("chain=%s msg=\"VXLAN admission rules in place again\"", VXFILTER_CHAIN);
        FREE_AND_NULL(ov->filter_err);
    }
    free(text);
    free(have);
    free(rules);
}

/* The parsed value of one key: {} when it is missing or is not a JSON object. */
static enum status get_json(struct etcd *etcd, const char *key, json_t **out, struct err *e)
{
    struct etcd_kv kv;
    struct err e2 = ERR_INIT;
    enum status st = etcd_get(etcd, key, &kv, NULL, &e2);

    *out = NULL;
    if (st == ST_NOTFOUND) {
        *out = json_object();
        return ST_OK;
    }
    if (st != ST_OK)
        return err_set(e, st, "cannot read %s: %s", key, e2.msg);
    *out = json_loadb(kv.value ? kv.value : "", kv.value_len, 0, NULL);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = json_object();
    }
    etcd_kv_release(&kv);
    return ST_OK;
}

enum status overlay_sync(struct overlay *ov, struct etcd *etcd, struct docker *d, struct err *e)
{
    json_t *nodes = NULL, *online = NULL, *grid = NULL, *plan = NULL, *dsts = NULL, *p;
    const json_t *me, *trusted;
    const char *local;
    char gateway[32];
    json_int_t number;
    enum status st;
    int plain_self, mtu, need_wg = 0;
    size_t i;

    if (list_prefix(etcd, ov->nodes_prefix, &nodes, e) != ST_OK ||
        list_prefix(etcd, ov->status_prefix, &online, e) != ST_OK ||
        get_json(etcd, ov->grid_key, &grid, e) != ST_OK) {
        st = e ? e->st : ST_IO;
        goto out;
    }
    me = json_object_get(nodes, ov->node);
    number = json_integer_value(json_object_get(me, "node_number"));
    if (!me || number < 1 || number > 254) {
        st = err_set(e, ST_RETRY, "node '%s' has no node_number in %s%s yet", ov->node,
                     ov->nodes_prefix, ov->node);
        goto out;
    }
    local = ov->private_ip ? ov->private_ip : jstr(me, "private_ip");
    if (!valid_ipv4(local)) {
        st = err_set(e, ST_INVALID, "node '%s' has no private IPv4 address for the overlay",
                     ov->node);
        goto out;
    }
    {
        char dev[IF_NAMESIZE + 1];
        if (device_of(local, dev, sizeof(dev)) != 0) {
            st = err_set(e, ST_INVALID, "no interface holds the private address %s", local);
            goto out;
        }
    }
    trusted = json_object_get(grid, "trusted_subnets");
    plain_self = overlay_in_subnets(local, trusted);
    mtu = plain_self ? OVERLAY_MTU : OVERLAY_MTU_ENCRYPTED;
    snprintf(gateway, sizeof(gateway), OVERLAY_NODE_PREFIX "%lld", (long long)number);
    plan = overlay_plan(ov->node, nodes, online, trusted);
    json_array_foreach(plan, i, p) if (json_is_true(json_object_get(p, "encrypted"))) need_wg = 1;
    /* Admission first: on a new host the chain is there before vxlan0 opens its socket,
     * and a new peer is admitted before it gets its forwarding entry. */
    ensure_filter(ov, plan);
    /* Without an encrypted pair the WireGuard device is not needed (nor wireguard-go) */
    if ((st = ensure_network(ov, d, gateway, mtu, e)) != ST_OK ||
        ((!plain_self || need_wg) && (st = ensure_wg(ov, number, plan, e)) != ST_OK) ||
        (st = ensure_vxlan(ov, mtu, e)) != ST_OK)
        goto out;
    dsts = json_array();
    json_array_foreach(plan, i, p) if (jstr(p, "dst"))
        json_array_append(dsts, json_object_get(p, "dst"));
    if ((st = ensure_fdb(ov, dsts, e)) != ST_OK)
        goto out;
    {
        json_t *brief = json_array();
        char *text;
        json_array_foreach(plan, i, p)
        {
            const char *how = !json_is_true(json_object_get(p, "encrypted")) ? "plain"
                              : jstr(p, "dst")                               ? "wireguard"
                                                                             : "waiting-for-key";
            json_array_append_new(brief,
                                  json_sprintf("%s=%s:%s", jstr(p, "node"), jstr(p, "ip"), how));
        }
        text = json_dumps(brief, JSON_COMPACT);
        json_decref(brief);
        if (!ov->peers_logged || strcmp(ov->peers_logged, text) != 0) {
            log_info("address=%s mode=%s mtu=%d wireguard=%s peers=%s msg=\"overlay in place\"",
                     gateway, plain_self ? "trusted" : "untrusted", mtu, ov->wg_if, text);
            free(ov->peers_logged);
            ov->peers_logged = text;
        } else {
            free(text);
        }
    }
out:
    json_decref(nodes);
    json_decref(online);
    json_decref(grid);
    json_decref(plan);
    json_decref(dsts);
    return st;
}

/* --- create / destroy ------------------------------------------------------------------ */

struct overlay *overlay_create(const struct overlay_opts *o, struct err *e)
{
    struct overlay *ov;

    if (!o->grid || !*o->grid || strchr(o->grid, '/') || !o->node || !*o->node ||
        strchr(o->node, '/')) {
        err_set(e, ST_INVALID, "the overlay needs a grid and a node name without '/'");
        return NULL;
    }
    if (!o->wg_key || !o->wg_ifname || !*o->wg_ifname || strlen(o->wg_ifname) >= IF_NAMESIZE) {
        err_set(e, ST_INVALID, "the overlay needs this node's WireGuard key and device name");
        return NULL;
    }
    if (o->private_ip && !valid_ipv4(o->private_ip)) {
        err_set(e, ST_INVALID, "bad private address '%s' for the overlay: want IPv4",
                o->private_ip);
        return NULL;
    }
    ov = xcalloc(1, sizeof(*ov));
    ov->grid = xstrdup(o->grid);
    ov->node = xstrdup(o->node);
    ov->private_ip = o->private_ip ? xstrdup(o->private_ip) : NULL;
    ov->nodes_prefix = xasprintf("/kontena/nodes/%s/", o->grid);
    ov->status_prefix = xasprintf("/kontena/node_status/%s/", o->grid);
    ov->grid_key = xasprintf("/kontena/grids/%s", o->grid);
    ov->key = *o->wg_key;
    snprintf(ov->wg_if, sizeof(ov->wg_if), "%s", o->wg_ifname);
    return ov;
}

void overlay_destroy(struct overlay *ov)
{
    if (!ov)
        return;
    free(ov->grid);
    free(ov->node);
    free(ov->private_ip);
    free(ov->nodes_prefix);
    free(ov->status_prefix);
    free(ov->grid_key);
    free(ov->peers_logged);
    free(ov->filter_err);
    memset(&ov->key, 0, sizeof(ov->key));
    free(ov);
}

const char *overlay_container_ip(const json_t *c)
{
    const json_t *n = json_object_get(
        json_object_get(json_object_get(c, "NetworkSettings"), "Networks"), OVERLAY_NETWORK);
    return jstr(n, "IPAddress");
}

/* --- gratuitous ARP -------------------------------------------------------------------- */

struct announce {
    pid_t pid;
    const char *ifname;
    struct in_addr ip;
    struct err e;
};

/* On its own thread: setns() changes only the calling thread's namespace, and the thread
 * ends right after, so no other thread ever runs in the container's netns. */
static void *announce_main(void *arg)
{
    struct announce *a = arg;
    char path[64];
    int nsfd, s;
    struct ifreq ifr;
    struct sockaddr_ll to;
    unsigned char frame[42];
    struct ether_header *eh = (struct ether_header *)(void *)frame;
    struct ether_arp *arp = (struct ether_arp *)(void *)(frame + sizeof(*eh));

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)a->pid);
    nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        err_set(&a->e, ST_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (setns(nsfd, CLONE_NEWNET) != 0) {
        err_set(&a->e, ST_IO, "cannot enter %s: %s", path, strerror(errno));
        close(nsfd);
        return NULL;
    }
    close(nsfd);
    s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (s < 0) {
        err_set(&a->e, ST_IO, "cannot open a packet socket: %s", strerror(errno));
        return NULL;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a->ifname);
    if (ioctl(s, SIOCGIFINDEX, &ifr) != 0) {
        err_set(&a->e, ST_IO, "no interface %s in the container: %s", a->ifname, strerror(errno));
        close(s);
        return NULL;
    }
    memset(&to, 0, sizeof(to));
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifr.ifr_ifindex;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_halen = ETH_ALEN;
    memset(to.sll_addr, 0xff, ETH_ALEN);
    if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0) {
        err_set(&a->e, ST_IO, "cannot read the MAC of %s: %s", a->ifname, strerror(errno));
        close(s);
        return NULL;
    }
    memset(frame, 0, sizeof(frame));
    memset(eh->ether_dhost, 0xff, ETH_ALEN);
    memcpy(eh->ether_shost, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
    eh->ether_type = htons(ETHERTYPE_ARP);
    arp->ea_hdr.ar_hrd = htons(ARPHRD_ETHER);
    arp->ea_hdr.ar_pro = htons(ETHERTYPE_IP);
    arp->ea_hdr.ar_hln = ETH_ALEN;
    arp->ea_hdr.ar_pln = 4;
    arp->ea_hdr.ar_op = htons(ARPOP_REQUEST); /* a gratuitous request: sender = target */
    memcpy(arp->arp_sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
    memcpy(arp->arp_spa, &a->ip, 4);
    memcpy(arp->arp_tpa, &a->ip, 4);
    if (sendto(s, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        err_set(&a->e, ST_IO, "cannot send the ARP on %s: %s", a->ifname, strerror(errno));
    close(s);
    return NULL;
}

enum status overlay_announce(pid_t pid, const char *ifname, const char *ipv4, struct err *e)
{
    struct announce a;
    pthread_t t;
    int rc;

    memset(&a, 0, sizeof(a));
    a.pid = pid;
    a.ifname = ifname ? ifname : "eth0";
    if (pid <= 0)
        return err_set(e, ST_INVALID, "no process to announce %s from", ipv4 ? ipv4 : "?");
    if (!ipv4 || inet_pton(AF_INET, ipv4, &a.ip) != 1)
        return err_set(e, ST_INVALID, "bad address '%s' to announce", ipv4 ? ipv4 : "");
    if (strlen(a.ifname) >= IF_NAMESIZE)
        return err_set(e, ST_INVALID, "bad interface name '%s'", a.ifname);
    rc = pthread_create(&t, NULL, announce_main, &a);
    if (rc != 0)
        return err_set(e, ST_IO, "cannot start the ARP thread: %s", strerror(rc));
    pthread_join(t, NULL);
    if (a.e.st != ST_OK)
        return err_set(e, a.e.st, "%s", a.e.msg);
    return ST_OK;
}
