/* kontena-agent: flags and environment, the node's facts, signal handling. The connection
 * to the master is agent/ws.c; docs/internals/agent.md describes the agent. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <net/if.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/dns.h"
#include "agent/docker.h"
#include "agent/imagegc.h"
#include "agent/logs.h"
#include "agent/metrics.h"
#include "agent/reconcile.h"
#include "agent/rpc.h"
#include "agent/stats.h"
#include "agent/wg.h"
#include "agent/ws.h"
#include "common/cmdline.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

static void usage(FILE *f)
{
    fputs(
        "Usage:\n"
        "    kontena-agent [OPTIONS]\n"
        "\n"
        "  Connects this host to the Kontena master as a node of a grid.\n"
        "\n"
        "Options:\n"
        "    --uri URL              the master's agents' endpoint, wss://HOST:9293 (env\n"
        "                           KONTENA_URI; http(s):// is rewritten to ws(s)://)\n"
        "    --token TOKEN          the grid token (env KONTENA_TOKEN)\n"
        "    --node-id ID           node id (env KONTENA_NODE_ID; default: Docker's engine id,\n"
        "                           or one derived from /etc/machine-id and the node name)\n"
        "    --node-name NAME       node name (env KONTENA_NODE_NAME; default: the hostname)\n"
        "    --labels LIST          node labels, space or comma separated, e.g. 'region=eu az=a'\n"
        "                           (env KONTENA_NODE_LABELS)\n"
        "    --public-ip IP         (env KONTENA_PUBLIC_IP; default: the address the master sees)\n"
        "    --private-ip IP        (env KONTENA_PRIVATE_IP; default: the first non-loopback "
        "IPv4)\n"
        "    --ca-cert FILE         verify the master's certificate against this PEM\n"
        "                           (env KONTENA_CA_CERT)\n"
        "    --pin-sha256 HEX       or accept only the certificate with this SHA-256\n"
        "                           fingerprint (env KONTENA_PIN_SHA256)\n"
        "    --insecure             do not verify the master's certificate (development only)\n"
        "    --docker-socket PATH   Docker Engine socket (default /var/run/docker.sock)\n"
        "    --no-docker            run without Docker (registration and liveness only)\n"
        "    --etcd-endpoints LIST  etcd to reconcile containers from, comma-separated\n"
        "                           http(s)://HOST:PORT (env KONTENA_ETCD_ENDPOINTS; without\n"
        "                           it no containers are managed)\n"
        "    --grid NAME            the node's grid (env KONTENA_GRID; default: what the\n"
        "                           master says after registration). With --etcd-endpoints\n"
        "                           and without --uri the agent only reconciles (tests, local\n"
        "                           platforms)\n"
        "    --resync-interval MS   compare every container with etcd this often (default\n"
        "                           30000)\n"
        "    --lb-drain MS          before stopping a container behind a load balancer\n"
        "                           (label io.kontena.load_balancer.name), wait this long so\n"
        "                           the LB takes it out first (default 1000; 0: no wait)\n"
        "                           [KONTENA_LB_DRAIN]\n"
        "    --docker-name-prefix P put P before every Docker container name, for several\n"
        "                           agents sharing one dockerd, e.g. 'node-1.'\n"
        "                           [KONTENA_DOCKER_NAME_PREFIX]\n"
        "    --overlay              keep the grid's overlay network on this host (bridge\n"
        "                           kontena0, vxlan0, Docker network kontena) and run\n"
        "                           containers on it with their overlay address; serve the\n"
        "                           grid's names with dnsmasq on 10.81.0.<node_number> (env\n"
        "                           KONTENA_OVERLAY=1; needs --etcd-endpoints)\n"
        "    --stats-interval S     send container and node statistics every S seconds\n"
        "                           (default 60; env KONTENA_STATS_INTERVAL)\n"
        "    --metrics-listen A:P   serve Prometheus /metrics on this IPv4 address and port,\n"
        "                           e.g. 127.0.0.1:9310 (env KONTENA_AGENT_METRICS; default\n"
        "                           off)\n"
        "    --no-logs              do not stream the containers' logs to the master\n"
        "    --image-gc-interval S  look for images no container uses every S seconds (default\n"
        "                           60; 0: never remove images; env KONTENA_IMAGE_GC_INTERVAL)\n"
        "    --image-gc-grace S     remove such an image once unused this long, if it can be\n"
        "                           pulled again (default 3600; env KONTENA_IMAGE_GC_GRACE)\n"
        "    --ping-interval MS     ping the master this often (default 30000)\n"
        "    --ping-timeout MS      reconnect when a pong is this late (default 5000)\n"
        "    --backoff-max MS       longest wait between reconnects (default 90000)\n"
        "    --log-level LEVEL      debug, info, warn or error (default info)\n"
        "    -h, --help             print this help\n"
        "    --version              print the version\n",
        f);
}

enum {
    OPT_URI = 256,
    OPT_TOKEN,
    OPT_NODE_ID,
    OPT_NODE_NAME,
    OPT_LABELS,
    OPT_PUBLIC_IP,
    OPT_PRIVATE_IP,
    OPT_CA,
    OPT_PIN,
    OPT_INSECURE,
    OPT_DOCKER,
    OPT_NO_DOCKER,
    OPT_PING,
    OPT_PING_TO,
    OPT_BACKOFF,
    OPT_LOG_LEVEL,
    OPT_VERSION,
    OPT_ETCD,
    OPT_GRID,
    OPT_RESYNC,
    OPT_LB_DRAIN,
    OPT_NAME_PREFIX,
    OPT_OVERLAY,
    OPT_STATS_INTERVAL,
    OPT_METRICS,
    OPT_NO_LOGS,
    OPT_IMAGE_GC_INTERVAL,
    OPT_IMAGE_GC_GRACE,
};

static const struct option long_opts[] = {
    {"uri", required_argument, NULL, OPT_URI},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"node-name", required_argument, NULL, OPT_NODE_NAME},
    {"labels", required_argument, NULL, OPT_LABELS},
    {"public-ip", required_argument, NULL, OPT_PUBLIC_IP},
    {"private-ip", required_argument, NULL, OPT_PRIVATE_IP},
    {"ca-cert", required_argument, NULL, OPT_CA},
    {"pin-sha256", required_argument, NULL, OPT_PIN},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"docker-socket", required_argument, NULL, OPT_DOCKER},
    {"no-docker", no_argument, NULL, OPT_NO_DOCKER},
    {"ping-interval", required_argument, NULL, OPT_PING},
    {"ping-timeout", required_argument, NULL, OPT_PING_TO},
    {"backoff-max", required_argument, NULL, OPT_BACKOFF},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"etcd-endpoints", required_argument, NULL, OPT_ETCD},
    {"grid", required_argument, NULL, OPT_GRID},
    {"resync-interval", required_argument, NULL, OPT_RESYNC},
    {"lb-drain", required_argument, NULL, OPT_LB_DRAIN},
    {"docker-name-prefix", required_argument, NULL, OPT_NAME_PREFIX},
    {"overlay", no_argument, NULL, OPT_OVERLAY},
    {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
    {"metrics-listen", required_argument, NULL, OPT_METRICS},
    {"no-logs", no_argument, NULL, OPT_NO_LOGS},
    {"image-gc-interval", required_argument, NULL, OPT_IMAGE_GC_INTERVAL},
    {"image-gc-grace", required_argument, NULL, OPT_IMAGE_GC_GRACE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* 0 when path is a readable file holding a PEM certificate; else -1 and why. Checked at start
 * so a typo in --ca-cert is not a reconnect loop of TLS errors. */
static int check_ca_file(const char *path, char *why, size_t n)
{
    FILE *f = fopen(path, "r");
    char *head;
    size_t got;
    int found;

    if (!f) {
        snprintf(why, n, "%s", strerror(errno));
        return -1;
    }
    head = xmalloc(65537);
    got = fread(head, 1, 65536, f);
    head[got] = '\0';
    found = ferror(f) == 0 && strstr(head, "-----BEGIN CERTIFICATE-----") != NULL;
    if (ferror(f))
        snprintf(why, n, "cannot read it");
    else if (!found)
        snprintf(why, n, "no PEM certificate in it (want '-----BEGIN CERTIFICATE-----')");
    free(head);
    fclose(f);
    return found ? 0 : -1;
}

#define die_usage(...) cmdline_usage("kontena-agent", __VA_ARGS__)

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* The reconciler starts once the grid is known: from --grid at once, else from the first
 * /agent/node_info (on the WebSocket thread). */
struct recon_starter {
    pthread_mutex_t mu;
    struct reconcile_opts opts;
    struct reconciler *r;
    struct dns *dns; /* --overlay: the node's DNS server, started with the reconciler */
    int failed;
};

static void start_reconciler(struct recon_starter *s, const char *grid)
{
    struct err e = ERR_INIT;

    pthread_mutex_lock(&s->mu);
    if (!s->r && !s->failed) {
        s->opts.grid = grid;
        if (s->opts.overlay && !s->dns) {
            struct dns_opts d = {.etcd_endpoints = s->opts.etcd_endpoints, .grid = grid,
                                 .node = s->opts.node};
            s->dns = dns_start(&d, &e);
            if (!s->dns)
                log_error("msg=\"cannot serve the grid's names: %s\"", e.msg);
            s->opts.dns = s->dns;
        }
        s->r = reconcile_start(&s->opts, &e);
        if (!s->r) {
            s->failed = 1;
            log_error("msg=\"cannot start reconciling containers: %s\"", e.msg);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* What learns the grid from /agent/node_info (WebSocket thread). */
struct node_hooks {
    struct recon_starter *rs; /* NULL: no reconciler to start */
    struct logs *logs;
    struct stats *stats;
    struct imagegc *gc;
};

static void on_node_info(void *arg, const json_t *node)
{
    struct node_hooks *h = arg;
    const char *grid = json_string_value(json_object_get(json_object_get(node, "grid"), "name"));

    if (!grid)
        return;
    if (h->rs)
        start_reconciler(h->rs, grid);
    logs_set_grid(h->logs, grid);
    stats_set_grid(h->stats, grid);
    imagegc_set_grid(h->gc, grid);
}

/* The master's requests go to the request worker; its answers back to the socket. */
static void on_request(void *arg, const json_t *msg)
{
    agent_rpc_submit(arg, msg);
}

static void send_to_master(void *arg, const json_t *msg)
{
    struct agent_ws **ws = arg;
    if (*ws)
        agent_ws_send(*ws, msg);
}

/* agent/logs.c's transport: requests with answers over the WebSocket. */
static void call_master(void *arg, const char *method, const char *params, size_t len,
                        logs_reply_fn reply, void *cbarg)
{
    struct agent_ws **ws = arg;

    if (*ws) {
        agent_ws_call_text(*ws, method, params, len, reply, cbarg);
    } else {
        json_t *err = json_pack("{s:i, s:s}", "code", 503, "message", "not connected yet");
        reply(cbarg, err, NULL);
        json_decref(err);
    }
}

static void on_link(void *arg, int up)
{
    logs_link(arg, up);
}

/* ws://host:port/path (http(s) rewritten). 0, or -1 when unusable. */
static int parse_uri(const char *uri, struct agent_config *c)
{
    const char *p, *hostend, *colon;
    size_t n;

    if (!strncmp(uri, "wss://", 6) || !strncmp(uri, "https://", 8))
        c->tls = 1;
    else if (strncmp(uri, "ws://", 5) != 0 && strncmp(uri, "http://", 7) != 0)
        return -1;
    p = strstr(uri, "://") + 3;
    hostend = p + strcspn(p, "/");
    colon = memchr(p, ':', (size_t)(hostend - p));
    n = (size_t)((colon ? colon : hostend) - p);
    if (n == 0 || n > 253)
        return -1;
    c->host = xstrndup(p, n);
    if (colon) {
        char port[8];
        size_t pl = (size_t)(hostend - colon - 1);
        long v;
        if (pl == 0 || pl >= sizeof(port))
            return -1;
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
        if ((v = cmdline_long(port, 1, 65535)) == -1)
            return -1;
        c->port = (int)v;
    } else {
        c->port = 9293;
    }
    c->path = xstrdup(*hostend ? hostend : "/");
    return 0;
}

/* "A=1 b=2,c" → "A=1,b=2,c" */
static char *join_labels(const char *s)
{
    char *out = xcalloc(1, strlen(s) + 1), *o = out;

    while (*s) {
        size_t n;
        s += strspn(s, ", \t\n");
        n = strcspn(s, ", \t\n");
        if (n) {
            if (o != out)
                *o++ = ',';
            memcpy(o, s, n);
            o += n;
        }
        s += n;
    }
    *o = '\0';
    return out;
}

/* A stable id in Docker's engine id format (12 groups of 4 of [A-Z0-9]), from the machine id
 * and the node name, so several agents on one host (tests, local platforms) differ. */
static char *derive_node_id(const char *name)
{
    char machine[128] = "", hex[65], *seed, *out = xmalloc(60);
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    FILE *f = fopen("/etc/machine-id", "r");
    size_t o = 0;

    if (f) {
        if (!fgets(machine, sizeof(machine), f))
            machine[0] = '\0';
        fclose(f);
    }
    seed = xasprintf("%s/%s", machine, name);
    crypto_sha256_hex(seed, strlen(seed), hex);
    free(seed);
    for (int i = 0; i < 48; i++) {
        unsigned v = (unsigned)strtoul((char[]){hex[i], '\0'}, NULL, 16);
        if (i && i % 4 == 0)
            out[o++] = ':';
        out[o++] = alphabet[(v * 2 + (unsigned)(hex[63 - i] & 1)) % 32];
    }
    out[o] = '\0';
    return out;
}

static char *first_private_ipv4(void)
{
    struct ifaddrs *ifa = NULL;
    char buf[INET_ADDRSTRLEN], *out = NULL;

    if (getifaddrs(&ifa) == -1)
        return NULL;
    for (struct ifaddrs *p = ifa; p && !out; p = p->ifa_next) {
        if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET || (p->ifa_flags & IFF_LOOPBACK))
            continue;
        if (inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr, buf,
                      sizeof(buf)))
            out = xstrdup(buf);
    }
    freeifaddrs(ifa);
    return out;
}

/* --overlay: this node's WireGuard keys. A device left by an earlier run of the agent keeps
 * its key (read back over UAPI), so the public key the peers know stays valid; else a fresh
 * pair (the private key is never written anywhere but into the device). */
static int overlay_keys(const char *node, const char *private_ip, struct wg_key *k,
                        char ifname[16])
{
    struct err e = ERR_INIT;
    char *reply = NULL;

    wg_ifname(node, private_ip, ifname);
    if (wg_uapi(ifname, "get=1\n\n", &reply, &e) == ST_OK) {
        json_t *cur = wg_parse_get(reply);
        int ok = wg_key_from_hex(json_string_value(json_object_get(cur, "private_key")),
                                 k->priv) == 0 &&
                 wg_key_derive(k, &e) == ST_OK;
        json_decref(cur);
        free(reply);
        if (ok) {
            log_info("dev=%s msg=\"WireGuard device found: keeping its key\"", ifname);
            return 0;
        }
    }
    if (wg_key_generate(k, &e) != ST_OK) {
        log_error("msg=\"cannot make a WireGuard key: %s\"", e.msg);
        return -1;
    }
    return 0;
}

static char *os_pretty_name(void)
{
    FILE *f = fopen("/etc/os-release", "r");
    char line[256], *out = NULL;

    while (f && !out && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) != 0)
            continue;
        char *v = line + 12;
        v[strcspn(v, "\n")] = '\0';
        if (*v == '"') {
            v++;
            v[strcspn(v, "\"")] = '\0';
        }
        out = xstrdup(v);
    }
    if (f)
        fclose(f);
    return out;
}

int main(int argc, char **argv)
{
    struct wg_key wgk;
    char wg_if[16] = "";
    struct agent_config c;
    struct err e = ERR_INIT;
    const char *uri = env_or("KONTENA_URI", NULL), *labels = env_or("KONTENA_NODE_LABELS", "");
    const char *public_ip = env_or("KONTENA_PUBLIC_IP", NULL);
    const char *private_ip = env_or("KONTENA_PRIVATE_IP", NULL);
    const char *pin = env_or("KONTENA_PIN_SHA256", NULL);
    const char *docker_socket = "/var/run/docker.sock";
    char *node_id = NULL, *node_name = NULL, *priv = NULL, *os = NULL, hostname[256];
    struct docker_node_info dni;
    struct agent_ws *ws = NULL;
    struct agent_rpc *rpc = NULL;
    struct logs *logs = NULL;
    struct stats *stats = NULL;
    struct agent_metrics *metrics = NULL;
    struct node_hooks hooks = {NULL, NULL, NULL, NULL};
    struct imagegc *gc = NULL;
    long gc_interval_s = 60, gc_grace_s = 3600;
    const char *metrics_listen = env_or("KONTENA_AGENT_METRICS", NULL);
    int stats_interval_s = 60, no_logs = 0;
    struct utsname un;
    sigset_t sigs;
    const char *etcd_endpoints = env_or("KONTENA_ETCD_ENDPOINTS", NULL);
    const char *grid = env_or("KONTENA_GRID", NULL);
    const char *name_prefix = env_or("KONTENA_DOCKER_NAME_PREFIX", "");
    struct recon_starter rs;
    int opt, sig, no_docker = 0, rc = 1, resync_ms = 30000, lb_drain_ms = 1000;
    int overlay = !strcmp(env_or("KONTENA_OVERLAY", "0"), "1");
    const char *drain_env = env_or("KONTENA_LB_DRAIN", NULL);
    long v;

    memset(&c, 0, sizeof(c));
    memset(&dni, 0, sizeof(dni));
    memset(&rs, 0, sizeof(rs));
    pthread_mutex_init(&rs.mu, NULL);
    c.grid_token = env_or("KONTENA_TOKEN", NULL);
    c.node_id = env_or("KONTENA_NODE_ID", NULL);
    c.node_name = env_or("KONTENA_NODE_NAME", NULL);
    c.ca_file = env_or("KONTENA_CA_CERT", NULL);
    c.ping_interval_ms = 30000;
    c.ping_timeout_ms = 5000;
    c.backoff_max_ms = 90000;
    log_init("agent", LOG_INFO);
    /* Memory (the agent's target is <= 8 MB RSS): at most two malloc arenas for our eight
     * threads, and buffers from 64 KiB up (log batches) in their own mappings, handed back to
     * the kernel when freed instead of staying in an arena at the peak's size. */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024);
    if (env_or("KONTENA_STATS_INTERVAL", NULL)) {
        if ((v = cmdline_long(env_or("KONTENA_STATS_INTERVAL", NULL), 1, 86400)) == -1)
            return die_usage("bad KONTENA_STATS_INTERVAL '%s': seconds from 1 to 86400",
                             env_or("KONTENA_STATS_INTERVAL", NULL));
        stats_interval_s = (int)v;
    }

    if (env_or("KONTENA_IMAGE_GC_INTERVAL", NULL) &&
        (gc_interval_s = cmdline_long(env_or("KONTENA_IMAGE_GC_INTERVAL", NULL), 0, 86400)) == -1)
        return die_usage("bad KONTENA_IMAGE_GC_INTERVAL: seconds from 0 to 86400");
    if (env_or("KONTENA_IMAGE_GC_GRACE", NULL) &&
        (gc_grace_s = cmdline_long(env_or("KONTENA_IMAGE_GC_GRACE", NULL), 1, 31536000)) == -1)
        return die_usage("bad KONTENA_IMAGE_GC_GRACE: seconds from 1 to 31536000");
    if (drain_env && (lb_drain_ms = (int)cmdline_long(drain_env, 0, 60000)) == -1)
        return die_usage("bad KONTENA_LB_DRAIN '%s': ms from 0 to 60000", drain_env);
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_URI:
            uri = optarg;
            break;
        case OPT_TOKEN:
            c.grid_token = optarg;
            break;
        case OPT_NODE_ID:
            c.node_id = optarg;
            break;
        case OPT_NODE_NAME:
            c.node_name = optarg;
            break;
        case OPT_LABELS:
            labels = optarg;
            break;
        case OPT_PUBLIC_IP:
            public_ip = optarg;
            break;
        case OPT_PRIVATE_IP:
            private_ip = optarg;
            break;
        case OPT_CA:
            c.ca_file = optarg;
            break;
        case OPT_PIN:
            pin = optarg;
            break;
        case OPT_INSECURE:
            c.insecure = 1;
            break;
        case OPT_DOCKER:
            docker_socket = optarg;
            break;
        case OPT_NO_DOCKER:
            no_docker = 1;
            break;
        case OPT_PING:
            if ((v = cmdline_long(optarg, 100, 3600000)) == -1)
                return die_usage("bad --ping-interval '%s': ms from 100 to 3600000", optarg);
            c.ping_interval_ms = (int)v;
            break;
        case OPT_PING_TO:
            if ((v = cmdline_long(optarg, 100, 600000)) == -1)
                return die_usage("bad --ping-timeout '%s': ms from 100 to 600000", optarg);
            c.ping_timeout_ms = (int)v;
            break;
        case OPT_BACKOFF:
            if ((v = cmdline_long(optarg, 100, 3600000)) == -1)
                return die_usage("bad --backoff-max '%s': ms from 100 to 3600000", optarg);
            c.backoff_max_ms = (int)v;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg) == -1)
                return die_usage("bad --log-level '%s': debug, info, warn or error", optarg);
            log_min_level = (enum log_level)log_level_parse(optarg);
            break;
        case OPT_ETCD:
            etcd_endpoints = optarg;
            break;
        case OPT_GRID:
            grid = optarg;
            break;
        case OPT_NAME_PREFIX:
            name_prefix = optarg;
            break;
        case OPT_OVERLAY:
            overlay = 1;
            break;
        case OPT_STATS_INTERVAL:
            if ((v = cmdline_long(optarg, 1, 86400)) == -1)
                return die_usage("bad --stats-interval '%s': seconds from 1 to 86400", optarg);
            stats_interval_s = (int)v;
            break;
        case OPT_METRICS:
            metrics_listen = optarg;
            break;
        case OPT_NO_LOGS:
            no_logs = 1;
            break;
        case OPT_IMAGE_GC_INTERVAL:
            if ((gc_interval_s = cmdline_long(optarg, 0, 86400)) == -1)
                return die_usage("bad --image-gc-interval '%s': seconds from 0 to 86400", optarg);
            break;
        case OPT_IMAGE_GC_GRACE:
            if ((gc_grace_s = cmdline_long(optarg, 1, 31536000)) == -1)
                return die_usage("bad --image-gc-grace '%s': seconds from 1 to 31536000", optarg);
            break;
        case OPT_RESYNC:
            if ((v = cmdline_long(optarg, 100, 86400000)) == -1)
                return die_usage("bad --resync-interval '%s': ms from 100 to 86400000", optarg);
            resync_ms = (int)v;
            break;
        case OPT_LB_DRAIN:
            if ((v = cmdline_long(optarg, 0, 60000)) == -1)
                return die_usage("bad --lb-drain '%s': ms from 0 to 60000", optarg);
            lb_drain_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("kontena-agent %s\n", KONTENA_VERSION);
            return 0;
        default:
            fprintf(stderr, "See 'kontena-agent --help'.\n");
            return 2;
        }
    }
    if (optind < argc)
        return die_usage("unexpected argument '%s'", argv[optind]);
    if (!uri && !(etcd_endpoints && grid))
        return die_usage("the master's URI is required: --uri or KONTENA_URI (or run only "
                         "the reconciler with --etcd-endpoints and --grid)");
    if (uri && !c.grid_token)
        return die_usage("the grid token is required: --token or KONTENA_TOKEN");
    if (etcd_endpoints && no_docker)
        return die_usage("--etcd-endpoints needs Docker: drop --no-docker");
    if (overlay && !etcd_endpoints)
        return die_usage("--overlay needs --etcd-endpoints (the peers come from etcd)");
    if (uri && parse_uri(uri, &c) != 0) {
        rc = die_usage("bad master URI '%s': use wss://HOST[:PORT][/PATH]", uri);
        goto out;
    }
    if (pin) {
        size_t n = 0;
        c.pin_sha256 = xcalloc(1, strlen(pin) + 1);
        for (const char *p = pin; *p; p++)
            if (*p != ':')
                c.pin_sha256[n++] = (char)tolower((unsigned char)*p);
        if (n != 64 || strspn(c.pin_sha256, "0123456789abcdef") != 64) {
            rc = die_usage("bad --pin-sha256 '%s': 64 hex digits (colons allowed)", pin);
            goto out;
        }
    }
    if (c.ca_file && c.tls && !c.insecure) {
        char why[256];
        if (check_ca_file(c.ca_file, why, sizeof(why)) != 0) {
            rc = die_usage("cannot use --ca-cert '%s': %s", c.ca_file, why);
            goto out;
        }
    }
    if (!c.tls && (c.ca_file || c.pin_sha256))
        log_warn("msg=\"--ca-cert and --pin-sha256 are ignored for a ws:// URI\"");
    if (c.tls && c.insecure)
        log_warn("msg=\"not verifying the master's certificate (--insecure)\"");

    c.node_info = json_object();
    if (!no_docker) {
        struct docker_opts dopts;
        struct docker *d;
        memset(&dopts, 0, sizeof(dopts));
        dopts.socket_path = docker_socket;
        d = docker_create(&dopts, &e);
        if (!d || docker_node_info(d, &dni, &e) != ST_OK) {
            log_error("msg=\"cannot talk to Docker at %s: %s (or run with --no-docker)\"",
                      docker_socket, e.msg);
            docker_destroy(d);
            goto out;
        }
        docker_destroy(d);
        json_object_set_new(c.node_info, "ServerVersion", json_string(dni.server_version));
        json_object_set_new(c.node_info, "Driver", json_string(dni.driver));
        if (dni.labels) {
            json_t *arr = json_array(), *val;
            const char *k;
            json_object_foreach(dni.labels, k, val) json_array_append_new(
                arr,
                json_sprintf("%s=%s", k, json_string_value(val) ? json_string_value(val) : ""));
            json_object_set_new(c.node_info, "Labels", arr);
        }
    }
    if (!c.node_name) {
        if (dni.name) {
            c.node_name = dni.name;
        } else if (gethostname(hostname, sizeof(hostname)) == 0) {
            hostname[sizeof(hostname) - 1] = '\0';
            hostname[strcspn(hostname, ".")] = '\0';
            c.node_name = hostname;
        }
    }
    if (!c.node_name || !*c.node_name) {
        rc = die_usage("cannot tell the node name: use --node-name or KONTENA_NODE_NAME");
        goto out;
    }
    if (!c.node_id)
        c.node_id = node_id = derive_node_id(c.node_name);
    c.labels = join_labels(labels);
    if (!private_ip)
        private_ip = priv = first_private_ipv4();
    os = dni.os ? xstrdup(dni.os) : os_pretty_name();
    json_object_set_new(c.node_info, "Name", json_string(c.node_name));
    json_object_set_new(c.node_info, "AgentVersion", json_string(KONTENA_VERSION));
    if (public_ip)
        json_object_set_new(c.node_info, "PublicIp", json_string(public_ip));
    if (private_ip)
        json_object_set_new(c.node_info, "PrivateIp", json_string(private_ip));
    if (overlay) {
        char b64[WG_KEY_B64_LEN + 1];
        if (overlay_keys(c.node_name, private_ip, &wgk, wg_if) != 0) {
            rc = 1;
            goto out;
        }
        wg_key_to_b64(wgk.pub, b64);
        json_object_set_new(c.node_info, "WireguardPublicKey", json_string(b64));
    }
    json_object_set_new(c.node_info, "NCPU",
                        json_integer(dni.cpus ? dni.cpus : sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(
        c.node_info, "MemTotal",
        json_integer(dni.memory ? dni.memory
                                : (json_int_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE)));
    if (os)
        json_object_set_new(c.node_info, "OperatingSystem", json_string(os));
    if (dni.kernel)
        json_object_set_new(c.node_info, "KernelVersion", json_string(dni.kernel));
    else if (uname(&un) == 0)
        json_object_set_new(c.node_info, "KernelVersion", json_string(un.release));

    /* The lws thread inherits the blocked set; main sigwaits. SIGUSR1: the connection ended
     * for good (ws.c). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (etcd_endpoints) {
        rs.opts.etcd_endpoints = etcd_endpoints;
        rs.opts.docker_socket = docker_socket;
        rs.opts.node = c.node_name;
        rs.opts.resync_interval_ms = resync_ms;
        rs.opts.lb_drain_ms = lb_drain_ms;
        rs.opts.docker_name_prefix = name_prefix;
        rs.opts.overlay = overlay;
        rs.opts.private_ip = private_ip;
        rs.opts.wg_key = &wgk;
        rs.opts.wg_ifname = wg_if;
        if (grid) {
            start_reconciler(&rs, grid);
            if (!rs.r)
                goto out;
        } else {
            hooks.rs = &rs;
        }
    }
    if (!no_docker && gc_interval_s > 0) {
        struct imagegc_opts go = {.docker_socket = docker_socket,
                                  .etcd_endpoints = etcd_endpoints,
                                  .grid = grid,
                                  .node = c.node_name,
                                  .interval_ms = gc_interval_s * 1000,
                                  .grace_ms = gc_grace_s * 1000};
        gc = imagegc_start(&go, &e);
        if (!gc)
            log_error("msg=\"cannot clean up unused images: %s\"", e.msg);
        hooks.gc = gc;
    }
    if (uri) {
        log_info("msg=\"node '%s' (id %s) connecting to %s\"", c.node_name, c.node_id, uri);
        if (!no_docker) {
            /* ws is set below, before any request can arrive (requests come through it). */
            rpc = agent_rpc_start(docker_socket, name_prefix, c.node_name, send_to_master, &ws, &e);
            if (!rpc) {
                log_error("msg=\"%s\"", e.msg);
                goto out;
            }
            c.on_request = on_request;
            c.on_request_arg = rpc;
            if (!no_logs) {
                struct logs_opts lo = {.docker_socket = docker_socket,
                                       .node = c.node_name,
                                       .grid = grid,
                                       .transport = {.call = call_master, .arg = &ws}};
                logs = logs_start(&lo, &e);
                if (!logs) {
                    log_error("msg=\"cannot follow the containers' logs: %s\"", e.msg);
                    goto out;
                }
                c.on_link = on_link;
                c.on_link_arg = logs;
            }
        }
        if (!no_docker) {
            struct stats_opts so = {.docker_socket = docker_socket,
                                    .node = c.node_name,
                                    .grid = grid,
                                    .interval_ms = stats_interval_s * 1000,
                                    .fs_path = access("/var/lib/docker", R_OK) == 0
                                                   ? "/var/lib/docker"
                                                   : "/",
                                    .send = send_to_master,
                                    .send_arg = &ws};
            stats = stats_start(&so, &e);
            if (!stats)
                log_error("msg=\"cannot sample statistics: %s\"", e.msg);
        }
        hooks.logs = logs;
        hooks.stats = stats;
        c.on_node_info = on_node_info;
        c.on_node_info_arg = &hooks;
        if (agent_ws_start(&c, &ws, &e) != ST_OK) {
            log_error("msg=\"%s\"", e.msg);
            goto out;
        }
    } else {
        log_info("msg=\"node '%s' of grid '%s': reconciling only (no --uri)\"", c.node_name,
                 grid);
    }
    if (metrics_listen && *metrics_listen && strcmp(metrics_listen, "off") != 0) {
        metrics = agent_metrics_start(metrics_listen, logs, stats, &e);
        if (!metrics) {
            log_error("msg=\"%s\"", e.msg);
            no_logs = -1; /* exit status 1 below */
            goto stop;
        }
        log_info("msg=\"serving /metrics on %s\"", metrics_listen);
    }
    if (sigwait(&sigs, &sig) == 0 && sig != SIGUSR1)
        log_info("msg=\"signal %d: shutting down\"", sig);
stop:
    agent_metrics_stop(metrics);
    metrics = NULL;
    imagegc_stop(gc);
    gc = NULL;
    stats_stop(stats);
    stats = NULL;
    agent_rpc_stop(rpc); /* before the socket it answers through */
    logs_stop(logs);     /* threads only: late answers from the socket are still taken */
    rc = agent_ws_stop(ws);
    if (no_logs == -1)
        rc = 1;
    logs_free(logs);
    logs = NULL;
    /* after the WebSocket thread: it may start the reconciler */
    reconcile_stop(rs.r);
    rs.r = NULL;
    dns_stop(rs.dns);
    rs.dns = NULL;
out:
    agent_metrics_stop(metrics);
    imagegc_stop(gc);
    stats_stop(stats);
    logs_stop(logs);
    logs_free(logs);
    agent_rpc_free(rpc);
    reconcile_stop(rs.r);
    dns_stop(rs.dns);
    pthread_mutex_destroy(&rs.mu);
    docker_node_info_release(&dni);
    json_decref(c.node_info);
    free(c.host);
    free(c.path);
    free(c.labels);
    free(c.pin_sha256);
    free(node_id);
    free(node_name);
    free(priv);
    free(os);
    return rc;
}
