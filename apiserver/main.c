/* kontena-apiserver: flags, start-up order, signal handling. The server itself is in
 * server.c; docs/architecture.md describes the process. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apiserver/agentws.h"
#include "apiserver/api.h"
#include "apiserver/logfwd.h"
#include "apiserver/logstore.h"
#include "apiserver/store.h"
#include "common/cmdline.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "common/banned.h"

#define KEY_LOG_EPOCH "/kontena/master/log_epoch"
#define LOG_DIR_DEFAULT "/var/lib/kontena/logs"

static void usage(FILE *f)
{
    fputs("Usage:\n"
          "    kontena-apiserver [OPTIONS]\n"
          "\n"
          "  The Kontena master API server: users, tokens, grids and the audit trail, with all\n"
          "  state kept in etcd. Serves HTTPS with a self-signed certificate (generated on first\n"
          "  start and kept in etcd) unless --tls-cert/--tls-key are given.\n"
          "\n"
          "Options:\n"
          "    --listen ADDR:PORT            address to serve on (default 0.0.0.0:9292)\n"
          "    --insecure-http               serve plain HTTP instead of HTTPS (development only)\n"
          "    --tls-cert FILE               certificate PEM to serve (with --tls-key)\n"
          "    --tls-key FILE                private key PEM of --tls-cert\n"
          "    --tls-san LIST                extra subjectAltNames for the generated certificate,\n"
          "                                  e.g. DNS:master.example,IP:10.0.0.5\n"
          "    --cert-out FILE               write the served certificate PEM to FILE\n"
          "    --agent-listen ADDR:PORT      where agents connect (WebSocket, TLS like the API;\n"
          "                                  env KONTENA_AGENT_LISTEN, default 0.0.0.0:9293;\n"
          "                                  'off' disables it)\n"
          "    --agent-ping-interval MS      ping every agent this often (default 30000;\n"
          "                                  env KONTENA_AGENT_PING_INTERVAL)\n"
          "    --agent-ping-timeout MS       close an agent whose pong is this late (default 5000;\n"
          "                                  env KONTENA_AGENT_PING_TIMEOUT)\n"
          "    --agent-lease-ttl SECONDS     TTL of the nodes' liveness lease (default 10;\n"
          "                                  env KONTENA_AGENT_LEASE_TTL)\n"
          "    --log-dir DIR                 where the grids' log windows are kept (env\n"
          "                                  KONTENA_LOG_DIR; default /var/lib/kontena/logs,\n"
          "                                  /var/lib/kontena/logs-<port> when --listen has\n"
          "                                  another port than 9292)\n"
          "    --log-window-mb N             log window per grid in MiB (default 256; env\n"
          "                                  KONTENA_LOG_WINDOW_MB)\n"
          "    --metrics-listen ADDR:PORT    Prometheus /metrics listener (env\n"
          "                                  KONTENA_METRICS_LISTEN, default 127.0.0.1:9300;\n"
          "                                  '' or 'off' disables it)\n"
          "    --name NAME                   master name shown to clients (default kontena-master)\n"
          "    --initial-admin-password PW   create user 'admin' with PW if it does not exist\n"
          "                                  (env KONTENA_INITIAL_ADMIN_PASSWORD)\n"
          "    --etcd-endpoints URLS         comma-separated etcd URLs (env KONTENA_ETCD_ENDPOINTS,\n"
          "                                  default http://127.0.0.1:2379)\n"
          "    --etcd-username USER          etcd auth user (env KONTENA_ETCD_USERNAME)\n"
          "    --etcd-password PW            etcd auth password (env KONTENA_ETCD_PASSWORD)\n"
          "    --etcd-cacert FILE            CA to verify etcd's certificate\n"
          "    --etcd-cert FILE              client certificate for etcd\n"
          "    --etcd-key FILE               key of --etcd-cert\n"
          "    --etcd-insecure-skip-verify   do not verify etcd's certificate\n"
          "    --etcd-wait SECONDS           how long to wait for etcd at start (default 60)\n"
          "    --threads N                   HTTP worker threads (default 4)\n"
          "    --max-body BYTES              request body limit (default 1048576)\n"
          "    --log-level LEVEL             debug, info, warn or error (default info)\n"
          "    -h, --help                    print this help\n"
          "    --version                     print the version\n",
          f);
}

enum {
    OPT_LISTEN = 256, OPT_INSECURE, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_SAN, OPT_CERT_OUT,
    OPT_NAME, OPT_ADMIN_PW, OPT_ETCD_EP, OPT_ETCD_USER, OPT_ETCD_PW, OPT_ETCD_CA,
    OPT_ETCD_CERT, OPT_ETCD_KEY, OPT_ETCD_INSECURE, OPT_ETCD_WAIT, OPT_THREADS, OPT_MAX_BODY,
    OPT_LOG_LEVEL, OPT_VERSION, OPT_AGENT_LISTEN, OPT_AGENT_PING, OPT_AGENT_PING_TO,
    OPT_AGENT_TTL, OPT_LOG_DIR, OPT_LOG_WINDOW, OPT_METRICS_LISTEN,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"insecure-http", no_argument, NULL, OPT_INSECURE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-san", required_argument, NULL, OPT_TLS_SAN},
    {"cert-out", required_argument, NULL, OPT_CERT_OUT},
    {"name", required_argument, NULL, OPT_NAME},
    {"initial-admin-password", required_argument, NULL, OPT_ADMIN_PW},
    {"etcd-endpoints", required_argument, NULL, OPT_ETCD_EP},
    {"etcd-username", required_argument, NULL, OPT_ETCD_USER},
    {"etcd-password", required_argument, NULL, OPT_ETCD_PW},
    {"etcd-cacert", required_argument, NULL, OPT_ETCD_CA},
    {"etcd-cert", required_argument, NULL, OPT_ETCD_CERT},
    {"etcd-key", required_argument, NULL, OPT_ETCD_KEY},
    {"etcd-insecure-skip-verify", no_argument, NULL, OPT_ETCD_INSECURE},
    {"etcd-wait", required_argument, NULL, OPT_ETCD_WAIT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"agent-listen", required_argument, NULL, OPT_AGENT_LISTEN},
    {"agent-ping-interval", required_argument, NULL, OPT_AGENT_PING},
    {"agent-ping-timeout", required_argument, NULL, OPT_AGENT_PING_TO},
    {"agent-lease-ttl", required_argument, NULL, OPT_AGENT_TTL},
    {"log-dir", required_argument, NULL, OPT_LOG_DIR},
    {"log-window-mb", required_argument, NULL, OPT_LOG_WINDOW},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

#define die_usage(...) cmdline_usage("kontena-apiserver", __VA_ARGS__)

/* Wait until etcd answers, or the deadline passes. */
static enum status wait_for_etcd(struct etcd *c, long seconds, struct err *e)
{
    int64_t deadline = time_mono_ms() + seconds * 1000, next_log = 0;
    int64_t n;

    for (;;) {
        enum status st = store_count(c, KEY_USERS, &n, e);
        if (st == ST_OK || st == ST_DENIED || st == ST_INVALID)
            return st;
        if (time_mono_ms() >= deadline)
            return err_wrap(e, "etcd did not answer within %ld s", seconds);
        if (time_mono_ms() >= next_log) {
            log_warn("msg=\"waiting for etcd: %s\"", e->msg);
            next_log = time_mono_ms() + 5000;
        }
        time_sleep_ms(500);
    }
}

/* The cluster's log epoch (/kontena/master/log_epoch, created once with a random id): a log
 * directory written for another etcd cluster is wiped (logstore_open()). NULL if etcd
 * cannot say (then nothing is wiped). Fresh memory. */
static char *log_epoch(struct etcd *c)
{
    struct err e = ERR_INIT;
    json_t *o = NULL;
    char *out = NULL;

    for (int attempt = 0; attempt < 3 && !out; attempt++) {
        if (store_get(c, KEY_LOG_EPOCH, &o, NULL, &e) == ST_OK) {
            const char *id = json_string_value(json_object_get(o, "id"));
            out = id ? xstrdup(id) : NULL;
        } else if (e.st == ST_NOTFOUND) {
            char *hex = crypto_random_hex(16);
            json_t *n = json_pack("{s:s}", "id", hex);
            err_clear(&e);
            if (store_create(c, KEY_LOG_EPOCH, n, &e) != ST_OK && e.st != ST_CONFLICT)
                log_warn("msg=\"cannot create %s: %s\"", KEY_LOG_EPOCH, e.msg);
            json_decref(n);
            free(hex);
        } else {
            log_warn("msg=\"cannot read %s: %s\"", KEY_LOG_EPOCH, e.msg);
        }
        json_decref(o);
        o = NULL;
        err_clear(&e);
    }
    return out;
}

int main(int argc, char **argv)
{
    struct api a;
    struct etcd_opts eo;
    struct err e = ERR_INIT;
    const char *listen = "0.0.0.0:9292", *colon;
    char *host = NULL;
    long etcd_wait = 60, v;
    sigset_t sigs;
    int opt, sig, rc = 1;
    struct rlimit rl;
    struct agentws_config ac = {NULL, 9293, 0, 30000, 5000, 10};
    struct agentws *aws = NULL;
    const char *agent_listen = getenv("KONTENA_AGENT_LISTEN");
    char *agent_host = NULL;
    const char *log_dir = getenv("KONTENA_LOG_DIR"), *win = getenv("KONTENA_LOG_WINDOW_MB");
    int log_dir_given = log_dir != NULL;
    long window_mb = 256;
    char *alt_dir = NULL, *epoch = NULL;

    memset(&a, 0, sizeof(a));
    a.cfg.metrics_listen = getenv("KONTENA_METRICS_LISTEN");
    a.cfg.metrics_required = a.cfg.metrics_listen != NULL;
    if (!a.cfg.metrics_listen)
        a.cfg.metrics_listen = "127.0.0.1:9300";
    if (win && (window_mb = cmdline_long(win, 1, 1L << 20)) == -1)
        return die_usage("bad KONTENA_LOG_WINDOW_MB '%s': MiB from 1 to 1048576", win);
    memset(&eo, 0, sizeof(eo));
    a.cfg.server_name = "kontena-master";
    a.cfg.threads = 4;
    a.cfg.max_body = 1 << 20;
    a.cfg.conn_timeout_s = 120;
    a.cfg.initial_admin_password = getenv("KONTENA_INITIAL_ADMIN_PASSWORD");
    eo.endpoints = getenv("KONTENA_ETCD_ENDPOINTS") ? getenv("KONTENA_ETCD_ENDPOINTS")
                                                    : "http://127.0.0.1:2379";
    eo.username = getenv("KONTENA_ETCD_USERNAME");
    eo.password = getenv("KONTENA_ETCD_PASSWORD");
    log_init("apiserver", LOG_INFO);

    /* The agents' settings may come from the environment too (tests, containers); flags
     * given below override them. */
    {
        const struct {
            const char *env;
            long min, max;
            int *to;
        } envs[] = {
            {"KONTENA_AGENT_PING_INTERVAL", 100, 3600000, &ac.ping_interval_ms},
            {"KONTENA_AGENT_PING_TIMEOUT", 100, 600000, &ac.ping_timeout_ms},
            {"KONTENA_AGENT_LEASE_TTL", 2, 3600, &ac.lease_ttl_s},
        };
        for (size_t i = 0; i < ARRAY_SIZE(envs); i++) {
            const char *val = getenv(envs[i].env);
            if (!val)
                continue;
            if ((v = cmdline_long(val, envs[i].min, envs[i].max)) == -1)
                return die_usage("bad %s '%s': from %ld to %ld", envs[i].env, val, envs[i].min,
                                 envs[i].max);
            *envs[i].to = (int)v;
        }
    }
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN: listen = optarg; break;
        case OPT_INSECURE: a.cfg.insecure_http = 1; break;
        case OPT_TLS_CERT: a.cfg.tls_cert_file = optarg; break;
        case OPT_TLS_KEY: a.cfg.tls_key_file = optarg; break;
        case OPT_TLS_SAN: a.cfg.tls_san = optarg; break;
        case OPT_CERT_OUT: a.cfg.cert_out = optarg; break;
        case OPT_NAME: a.cfg.server_name = optarg; break;
        case OPT_ADMIN_PW: a.cfg.initial_admin_password = optarg; break;
        case OPT_ETCD_EP: eo.endpoints = optarg; break;
        case OPT_ETCD_USER: eo.username = optarg; break;
        case OPT_ETCD_PW: eo.password = optarg; break;
        case OPT_ETCD_CA: eo.cacert = optarg; break;
        case OPT_ETCD_CERT: eo.cert = optarg; break;
        case OPT_ETCD_KEY: eo.key = optarg; break;
        case OPT_ETCD_INSECURE: eo.insecure_skip_verify = 1; break;
        case OPT_ETCD_WAIT:
            if ((etcd_wait = cmdline_long(optarg, 0, 86400)) == -1)
                return die_usage("bad --etcd-wait '%s': seconds from 0 to 86400", optarg);
            break;
        case OPT_THREADS:
            if ((v = cmdline_long(optarg, 1, 256)) == -1)
                return die_usage("bad --threads '%s': a number from 1 to 256", optarg);
            a.cfg.threads = (unsigned)v;
            break;
        case OPT_MAX_BODY:
            if ((v = cmdline_long(optarg, 1024, 1L << 30)) == -1)
                return die_usage("bad --max-body '%s': bytes from 1024 to 1 GiB", optarg);
            a.cfg.max_body = (size_t)v;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg) == -1)
                return die_usage("bad --log-level '%s': debug, info, warn or error", optarg);
            log_min_level = (enum log_level)log_level_parse(optarg);
            break;
        case OPT_AGENT_LISTEN: agent_listen = optarg; break;
        case OPT_AGENT_PING:
            if ((v = cmdline_long(optarg, 100, 3600000)) == -1)
                return die_usage("bad --agent-ping-interval '%s': ms from 100 to 3600000", optarg);
            ac.ping_interval_ms = (int)v;
            break;
        case OPT_AGENT_PING_TO:
            if ((v = cmdline_long(optarg, 100, 600000)) == -1)
                return die_usage("bad --agent-ping-timeout '%s': ms from 100 to 600000", optarg);
            ac.ping_timeout_ms = (int)v;
            break;
        case OPT_AGENT_TTL:
            if ((v = cmdline_long(optarg, 2, 3600)) == -1)
                return die_usage("bad --agent-lease-ttl '%s': seconds from 2 to 3600", optarg);
            ac.lease_ttl_s = (int)v;
            break;
        case OPT_LOG_DIR:
            log_dir = optarg;
            log_dir_given = 1;
            break;
        case OPT_LOG_WINDOW:
            if ((window_mb = cmdline_long(optarg, 1, 1L << 20)) == -1)
                return die_usage("bad --log-window-mb '%s': MiB from 1 to 1048576", optarg);
            break;
        case OPT_METRICS_LISTEN:
            a.cfg.metrics_listen = optarg;
            a.cfg.metrics_required = 1;
            break;
        case 'h': usage(stdout); return 0;
        case OPT_VERSION: printf("kontena-apiserver %s\n", KONTENA_VERSION); return 0;
        default: fprintf(stderr, "See 'kontena-apiserver --help'.\n"); return 2;
        }
    }
    if (optind < argc)
        return die_usage("unexpected argument '%s'", argv[optind]);
    colon = strrchr(listen, ':');
    if (!colon || (v = cmdline_long(colon + 1, 0, 65535)) == -1)
        return die_usage("bad --listen '%s': use ADDR:PORT", listen);
    host = xstrndup(listen, (size_t)(colon - listen));
    a.cfg.log_window_bytes = (uint64_t)window_mb << 20;
    if (!*a.cfg.metrics_listen || !strcmp(a.cfg.metrics_listen, "off"))
        a.cfg.metrics_listen = NULL;
    a.cfg.listen_addr = host;
    a.cfg.port = (int)v;
    if (!log_dir || !*log_dir) {
        /* One directory per API port but the standard one: several apiservers of one host
         * (tests) never share one, and a restarted server finds its own again. */
        if (a.cfg.port == 9292)
            log_dir = LOG_DIR_DEFAULT;
        else
            log_dir = alt_dir = xasprintf(LOG_DIR_DEFAULT "-%d", a.cfg.port);
    }
    a.cfg.log_dir = log_dir;
    if (agent_listen && strcmp(agent_listen, "off") != 0) {
        colon = strrchr(agent_listen, ':');
        if (!colon || (v = cmdline_long(colon + 1, 1, 65535)) == -1) {
            free(host);
            return die_usage("bad --agent-listen '%s': use ADDR:PORT or off", agent_listen);
        }
        agent_host = xstrndup(agent_listen, (size_t)(colon - agent_listen));
        ac.port = (int)v;
        ac.required = 1; /* given explicitly: not being able to listen is fatal */
    }
    ac.listen_addr = agent_host ? agent_host : "0.0.0.0";

    /* Both libmicrohttpd and libcurl start threads: block the signals first, then sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* one fd per client connection */
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    a.etcd = etcd_create(&eo, &e);
    if (!a.etcd) {
        log_error("msg=\"cannot use etcd: %s\"", e.msg);
        goto out;
    }
    if (wait_for_etcd(a.etcd, etcd_wait, &e) != ST_OK) {
        log_error("msg=\"cannot reach etcd at %s: %s\"", eo.endpoints, e.msg);
        goto out;
    }
    if (a.cfg.initial_admin_password &&
        auth_bootstrap_admin(&a, a.cfg.initial_admin_password, &e) != ST_OK) {
        log_error("msg=\"cannot create the admin user: %s\"", e.msg);
        goto out;
    }
    if (!a.cfg.insecure_http && tls_bootstrap(&a, &e) != ST_OK) {
        log_error("msg=\"cannot set up TLS: %s\"", e.msg);
        goto out;
    }
    epoch = log_epoch(a.etcd);
    if (logstore_open(a.cfg.log_dir, a.cfg.log_window_bytes, epoch, &a.logs, &e) != ST_OK) {
        if (log_dir_given) {
            log_error("msg=\"%s\"", e.msg);
            goto out;
        }
        log_warn("msg=\"no log window: %s (pass --log-dir)\"", e.msg);
        err_clear(&e);
    }
    if (a.logs)
        log_info("msg=\"log window: %s, %ld MiB per grid\"", a.cfg.log_dir, window_mb);
    a.logfwd = logfwd_start(&a);
    logs_hub_start(&a);
    if (metrics_start(&a, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        goto out;
    }
    if (api_start(&a, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        goto out;
    }
    log_info("msg=\"listening on %s://%s:%d\" etcd=%s%s%s", a.cfg.insecure_http ? "http" : "https",
             host, a.cfg.port, eo.endpoints, a.tls_fingerprint ? " cert_sha256=" : "",
             a.tls_fingerprint ? a.tls_fingerprint : "");
    if ((!agent_listen || strcmp(agent_listen, "off") != 0) &&
        agentws_start(&a, &ac, &aws, &e) != ST_OK) {
        log_error("msg=\"%s\"", e.msg);
        goto out;
    }
    if (aws)
        log_info("msg=\"agents connect to %s://%s:%d/\"", a.cfg.insecure_http ? "ws" : "wss",
                 ac.listen_addr, ac.port);
    if (sigwait(&sigs, &sig) == 0)
        log_info("msg=\"signal %d: shutting down\"", sig);
    rc = 0;
out:
    api_stop(&a);
    metrics_stop(&a);
    agentws_stop(aws);
    logfwd_stop(a.logfwd);
    logs_hub_free(&a);
    logstore_close(a.logs);
    etcd_destroy(a.etcd);
    free(a.tls_cert_pem);
    free(a.tls_key_pem);
    free(a.tls_fingerprint);
    free(host);
    free(agent_host);
    free(alt_dir);
    free(epoch);
    return rc;
}
