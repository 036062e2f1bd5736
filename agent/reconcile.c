/* agent/reconcile.c -- the reconciler's threads and the per-instance sync. The rules are in
 * docs/internals/agent.md ("Reconciliation"); the interface in reconcile.h. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/dns.h"
#include "agent/docker.h"
#include "agent/overlay.h"
#include "agent/probe.h"
#include "agent/reconcile.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"

#include "common/banned.h"

#define DEFAULT_RESYNC_MS 30000
#define DEFAULT_GRACE_S 10
#define MAX_CRASH_BACKOFF_S 30
#define STABLE_AFTER_MS 10000 /* a container up this long resets its crash counter */
#define RETRY_MS 2000         /* after a failed listing */
#define OVERLAY_LABEL "io.kontena.container.overlay_cidr"
#define WAITING_FOR_ADDRESS "waiting for an overlay address"

/* Instances handled at once in a pass: creating, starting and stopping containers
 * (with their grace periods) runs on this many threads, each with its own Docker
 * connection. */
#define SYNC_PARALLEL 4

/* The Docker handle of the thread running a pass task (NULL outside a pass: the worker's). */
static __thread struct docker *tl_docker;
#define DW(r) (tl_docker ? tl_docker : (r)->dw)

struct reconciler {
    char *grid, *node;
    char *inst_prefix; /* /kontena/instances/<grid>/<node>/ */
    char *obs_prefix;  /* /kontena/observed/<grid>/<node>/ */
    char *label_grid;  /* io.kontena.grid=<grid> */
    char *label_node;  /* io.kontena.node=<node> */
    char *name_prefix; /* of Docker container names (--docker-name-prefix), "" by default */
    struct dns *dns;   /* borrowed, --overlay only: containers get its Dns/DnsSearch */
    int resync_ms;
    int lb_drain_ms; /* see reconcile_opts */

    struct etcd *etcd;
    struct docker *dw; /* the worker's handle */
    struct docker *de; /* the events thread's handle */
    struct docker *dpool[SYNC_PARALLEL - 1]; /* the pass helpers' handles */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* worker: dirty or stopping */
    pthread_cond_t nap;  /* watch and events threads: stopping */
    int stopping;
    int listed;            /* the desired map holds a complete listing */
    int dirty;             /* something changed since the worker's last snapshot */
    int probe_dirty;       /* a probe result changed since the worker last looked */
    json_t *desired;       /* name -> instance value (a JSON string when unparsable) */
    struct etcd_watch *ew; /* the watch in progress, for stop */

    /* Worker state: the worker and, during a pass, its helper threads (sync_all). The two
     * maps are guarded by smu; one instance is only ever handled by one thread, so the
     * per-instance object local_of() returns needs no lock. */
    pthread_mutex_t smu;
    json_t *obs;    /* name -> observed value as last written (or read at start) */
    int obs_loaded; /* obs holds the observed prefix's listing */
    json_t *local;  /* name -> {gen, restarts, next_ms, stopped_by_us} */
    int docker_ok;  /* last listing succeeded (log transitions only) */
    struct prober *probes;
    struct overlay *ov; /* --overlay only, else NULL; used by the worker */
    int overlay_ok;     /* last overlay_sync succeeded (log transitions only) */
    /* --overlay: the watches on the grid's node keys [0] and on the grid key [1] (trusted
     * subnets), each on its own thread; pw for stop */
    struct peer_watch {
        struct reconciler *r;
        int grid;
        struct etcd_watch *w;
        pthread_t t;
    } pw[2];

    pthread_t t_watch, t_events, t_worker;
    int started;
};

/* --- small helpers --------------------------------------------------------------------- */

static void wake_worker(struct reconciler *r)
{
    pthread_mutex_lock(&r->mu);
    r->dirty = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

static void wake_for_probe(void *arg)
{
    struct reconciler *r = arg;
    pthread_mutex_lock(&r->mu);
    r->probe_dirty = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

static int is_stopping(struct reconciler *r)
{
    int s;
    pthread_mutex_lock(&r->mu);
    s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* Sleep ms unless stopped first; 1 when stopping. */
static int nap(struct reconciler *r, int64_t ms)
{
    struct timespec ts = time_deadline(CLOCK_MONOTONIC, ms);
    int s;

    pthread_mutex_lock(&r->mu);
    while (!r->stopping && pthread_cond_timedwait(&r->nap, &r->mu, &ts) != ETIMEDOUT)
        ;
    s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static const char *jstr(const json_t *o, const char *k, const char *def)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : def;
}

static json_int_t jint(const json_t *o, const char *k, json_int_t def)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (json_int_t)json_real_value(v);
    if (json_is_string(v)) { /* labels hold numbers as strings */
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*json_string_value(v) && *end == '\0')
            return (json_int_t)n;
    }
    return def;
}

/* Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (n < 2 || n > 200 || !strchr(alnum, s[0]))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Whether the instance's container gets an overlay address: not with spec.net "host" or
 * "container:<other>" (it shares that network stack). */
static int needs_overlay(const json_t *spec)
{
    const char *net = jstr(spec, "net", "bridge");
    return strcmp(net, "host") != 0 && strncmp(net, "container:", 10) != 0;
}

/* The per-instance worker memory (borrowed from r->local, created on first use). */
static json_t *local_of(struct reconciler *r, const char *name)
{
    json_t *l;

    pthread_mutex_lock(&r->smu);
    l = json_object_get(r->local, name);
    if (!l) {
        l = json_object();
        json_object_set_new(r->local, name, l);
    }
    pthread_mutex_unlock(&r->smu);
    return l;
}

/* --- the create body ------------------------------------------------------------------- */

static void copy_string_array(json_t *dst, const char *dk, const json_t *v)
{
    json_t *a;
    size_t i;
    json_t *x;

    if (json_is_string(v)) {
        json_object_set_new(dst, dk, json_pack("[s]", json_string_value(v)));
        return;
    }
    if (!json_is_array(v))
        return;
    a = json_array();
    json_array_foreach(v, i, x) if (json_is_string(x)) json_array_append(a, x);
    json_object_set_new(dst, dk, a);
}

static int env_has(const json_t *env, const char *key)
{
    size_t i, n = strlen(key);
    json_t *x;
    json_array_foreach(env, i, x)
    {
        const char *s = json_string_value(x);
        if (s && !strncmp(s, key, n) && s[n] == '=')
            return 1;
    }
    return 0;
}

static void env_default(json_t *env, const char *key, const char *val)
{
    if (!env_has(env, key))
        json_array_append_new(env, json_sprintf("%s=%s", key, val));
}

/* The Docker create body for instance `name` (spec validated by the caller). */
static json_t *build_config(struct reconciler *r, const char *name, const json_t *inst,
                            const json_t *spec)
{
    json_t *cfg = json_object(), *host = json_object(), *labels = json_object();
    json_t *env = json_array(), *v, *x;
    const char *stack = jstr(inst, "stack", ""), *service = jstr(inst, "service", "");
    const char *k;
    char num[32];
    size_t i;

    json_object_set_new(cfg, "Image", json_string(jstr(spec, "image", "")));
    copy_string_array(cfg, "Cmd", json_object_get(spec, "cmd"));
    copy_string_array(cfg, "Entrypoint", json_object_get(spec, "entrypoint"));

    v = json_object_get(spec, "env");
    json_array_foreach(v, i, x) if (json_is_string(x)) json_array_append(env, x);
    env_default(env, "KONTENA_SERVICE_ID", jstr(inst, "service_id", ""));
    env_default(env, "KONTENA_SERVICE_NAME", service);
    env_default(env, "KONTENA_GRID_NAME", r->grid);
    env_default(env, "KONTENA_PLATFORM_NAME", r->grid);
    env_default(env, "KONTENA_STACK_NAME", stack);
    env_default(env, "KONTENA_NODE_NAME", r->node);
    snprintf(num, sizeof(num), "%lld", (long long)jint(inst, "instance_number", 0));
    env_default(env, "KONTENA_SERVICE_INSTANCE_NUMBER", num);
    json_object_set_new(cfg, "Env", env);

    v = json_object_get(spec, "labels");
    json_object_foreach(v, k, x)
    {
        if (json_is_string(x)) /* ours, set below, win over the spec's */
            json_object_set(labels, k, x);
    }
    json_object_set_new(labels, "io.kontena.grid", json_string(r->grid));
    json_object_set_new(labels, "io.kontena.node", json_string(r->node));
    json_object_set_new(labels, "io.kontena.stack", json_string(stack));
    json_object_set_new(labels, "io.kontena.service", json_string(service));
    json_object_set_new(labels, "io.kontena.instance", json_string(num));
    json_object_set_new(labels, "io.kontena.container.name", json_string(name));
    snprintf(num, sizeof(num), "%lld", (long long)jint(inst, "revision", 0));
    json_object_set_new(labels, "io.kontena.revision", json_string(num));
    snprintf(num, sizeof(num), "%lld", (long long)jint(spec, "stop_grace_period", DEFAULT_GRACE_S));
    json_object_set_new(labels, "io.kontena.stop_grace_period", json_string(num));
    if (needs_overlay(spec) && jstr(inst, "overlay_cidr", NULL))
        json_object_set_new(labels, OVERLAY_LABEL, json_string(jstr(inst, "overlay_cidr", "")));
    json_object_set_new(cfg, "Labels", labels);

    if (json_is_string(json_object_get(spec, "hostname")))
        json_object_set(cfg, "Hostname", json_object_get(spec, "hostname"));
    if (json_is_string(json_object_get(spec, "user")))
        json_object_set(cfg, "User", json_object_get(spec, "user"));
    if (json_is_string(json_object_get(spec, "stop_signal")))
        json_object_set(cfg, "StopSignal", json_object_get(spec, "stop_signal"));
    json_object_set_new(cfg, "StopTimeout",
                        json_integer(jint(spec, "stop_grace_period", DEFAULT_GRACE_S)));
    if (r->dns && !strcmp(jstr(spec, "net", "bridge"), "bridge") &&
        jstr(inst, "overlay_cidr", NULL)) { /* --overlay: the node's dnsmasq (agent/dns.h) */
        char dns_ip[16], *search = dns_search_domain(r->grid, jstr(inst, "stack", NULL));
        if (dns_server_address(r->dns, dns_ip) == 0)
            json_object_set_new(host, "Dns", json_pack("[s]", dns_ip));
        else
            log_warn("container=%s msg=\"the node's DNS address is not known yet\"", name);
        json_object_set_new(host, "DnsSearch", json_pack("[s]", search));
        free(search);
    }

    v = json_object_get(spec, "ports");
    if (json_array_size(v)) {
        json_t *exposed = json_object(), *bindings = json_object();
        json_array_foreach(v, i, x)
        {
            json_int_t cp = jint(x, "container_port", 0), np = jint(x, "node_port", 0);
            char key[64], hp[16];
            json_t *list;
            if (cp <= 0 || cp > 65535)
                continue;
            snprintf(key, sizeof(key), "%lld/%s", (long long)cp, jstr(x, "protocol", "tcp"));
            json_object_set_new(exposed, key, json_object());
            if (np <= 0 || np > 65535)
                continue;
            snprintf(hp, sizeof(hp), "%lld", (long long)np);
            list = json_object_get(bindings, key);
            if (!list) {
                list = json_array();
                json_object_set_new(bindings, key, list);
            }
            json_array_append_new(
                list, json_pack("{s:s,s:s}", "HostIp", jstr(x, "ip", ""), "HostPort", hp));
        }
        json_object_set_new(cfg, "ExposedPorts", exposed);
        json_object_set_new(host, "PortBindings", bindings);
    }

    v = json_object_get(spec, "volumes");
    if (json_array_size(v)) {
        json_t *binds = json_array(), *anon = json_object();
        json_array_foreach(v, i, x)
        {
            const char *s = json_string_value(x);
            if (!s || !*s)
                continue;
            if (strchr(s, ':'))
                json_array_append(binds, x); /* host path or named local volume */
            else
                json_object_set_new(anon, s, json_object());
        }
        json_object_set_new(host, "Binds", binds);
        json_object_set_new(cfg, "Volumes", anon);
    }

    if (jint(spec, "memory", 0) > 0)
        json_object_set_new(host, "Memory", json_integer(jint(spec, "memory", 0)));
    if (jint(spec, "memory_swap", 0) != 0)
        json_object_set_new(host, "MemorySwap", json_integer(jint(spec, "memory_swap", 0)));
    v = json_object_get(spec, "cpus");
    if (json_is_number(v) && json_number_value(v) > 0)
        json_object_set_new(host, "NanoCpus",
                            json_integer((json_int_t)(json_number_value(v) * 1e9)));
    if (jint(spec, "cpu_shares", 0) > 0)
        json_object_set_new(host, "CpuShares", json_integer(jint(spec, "cpu_shares", 0)));
    copy_string_array(host, "CapAdd", json_object_get(spec, "cap_add"));
    copy_string_array(host, "CapDrop", json_object_get(spec, "cap_drop"));
    json_object_set_new(host, "Privileged",
                        json_boolean(json_is_true(json_object_get(spec, "privileged"))));
    json_object_set_new(host, "ReadonlyRootfs",
                        json_boolean(json_is_true(json_object_get(spec, "read_only"))));
    json_object_set_new(host, "NetworkMode", json_string(jstr(spec, "net", "bridge")));
    json_object_set_new(cfg, "HostConfig", host);
    if (r->ov && !strcmp(jstr(spec, "net", "bridge"), "bridge") &&
        jstr(inst, "overlay_cidr", NULL)) { /* --overlay: network kontena, its IPAM address */
        char *ip = xstrdup(jstr(inst, "overlay_cidr", ""));
        ip[strcspn(ip, "/")] = '\0';
        docker_config_set_network(cfg, OVERLAY_NETWORK, ip);
        free(ip);
    }
    /* The agent restarts crashed containers itself (spec.restart), as the original did. */
    json_object_set_new(host, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
    return cfg;
}

/* --- observed state -------------------------------------------------------------------- */

/* c: the container's inspect (may be NULL); error: NULL or the text. */
static json_t *observed(const json_t *c, const char *state_override, const char *error,
                        json_int_t gen)
{
    const json_t *st = json_object_get(c, "State");
    const json_t *labels = json_object_get(json_object_get(c, "Config"), "Labels");
    const char *state;
    json_t *o;

    if (error)
        state = "error";
    else if (state_override)
        state = state_override;
    else if (!c)
        state = "missing";
    else if (json_is_true(json_object_get(st, "Running")))
        state = "running";
    else
        state = "stopped";
    o = json_pack("{s:s}", "state", state);
    json_object_set_new(o, "exit_code", c ? json_integer(jint(st, "ExitCode", 0)) : json_null());
    json_object_set_new(o, "container_id", c ? json_string(jstr(c, "Id", "")) : json_null());
    json_object_set_new(o, "error", error ? json_string(error) : json_null());
    json_object_set_new(o, "revision",
                        c ? json_integer(jint(labels, "io.kontena.revision", 0)) : json_null());
    json_object_set_new(
        o, "image", c ? json_string(jstr(json_object_get(c, "Config"), "Image", "")) : json_null());
    json_object_set_new(o, "created_at", c ? json_string(jstr(c, "Created", "")) : json_null());
    json_object_set_new(o, "started_at", c ? json_string(jstr(st, "StartedAt", "")) : json_null());
    json_object_set_new(o, "finished_at",
                        c ? json_string(jstr(st, "FinishedAt", "")) : json_null());
    json_object_set_new(o, "restart_generation", json_integer(gen));
    json_object_set_new(o, "reason", json_null());
    json_object_set_new(o, "ip", json_null());
    if (c) { /* the address probes and load balancers use (overlay first, see below) */
        const json_t *ns = json_object_get(c, "NetworkSettings"), *nets, *n;
        const char *ip = jstr(ns, "IPAddress", ""), *k;
        nets = json_object_get(ns, "Networks");
        json_object_foreach((json_t *)nets, k, n) if (!*ip) ip = jstr(n, "IPAddress", "");
        if (overlay_container_ip(c)) /* with --overlay: probes go to the overlay address */
            ip = overlay_container_ip(c);
        if (!strcmp(jstr(json_object_get(c, "HostConfig"), "NetworkMode", ""), "host"))
            ip = "127.0.0.1";
        json_object_set_new(o, "ip", *ip ? json_string(ip) : json_null());
    }
    return o;
}

/* Write name's observed value unless it equals the last one written (updated_at aside).
 * Steals o. */
static void write_observed(struct reconciler *r, const char *name, json_t *o)
{
    json_t *prev;
    char ts[40], *key, *text;
    struct err e = ERR_INIT;

    pthread_mutex_lock(&r->smu);
    prev = json_object_get(r->obs, name);
    if (prev) {
        json_t *p = json_copy(prev);
        int same;
        json_object_del(p, "updated_at");
        same = json_equal(p, o);
        json_decref(p);
        if (same) {
            pthread_mutex_unlock(&r->smu);
            json_decref(o);
            return;
        }
    }
    pthread_mutex_unlock(&r->smu);
    time_iso8601_now(ts, sizeof(ts));
    json_object_set_new(o, "updated_at", json_string(ts));
    key = xasprintf("%s%s", r->obs_prefix, name);
    text = json_dumps(o, JSON_COMPACT);
    if (etcd_put(r->etcd, key, text, strlen(text), 0, NULL, NULL, &e) == ST_OK) {
        log_info("key=%s state=%s msg=\"observed\"", key, jstr(o, "state", "?"));
        pthread_mutex_lock(&r->smu);
        json_object_set(r->obs, name, o);
        pthread_mutex_unlock(&r->smu);
    } else {
        log_warn("key=%s msg=\"cannot write the observed state: %s\"", key, e.msg);
    }
    free(text);
    free(key);
    json_decref(o);
}

static void delete_observed(struct reconciler *r, const char *name)
{
    char *key = xasprintf("%s%s", r->obs_prefix, name);
    struct err e = ERR_INIT;

    if (etcd_delete(r->etcd, key, NULL, NULL, &e) == ST_OK) {
        log_info("key=%s msg=\"observed key removed\"", key);
        json_object_del(r->obs, name);
    } else {
        log_warn("key=%s msg=\"cannot delete the observed key: %s\"", key, e.msg);
    }
    free(key);
}

static void load_observed(struct reconciler *r)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result res;
    struct err e = ERR_INIT;
    size_t plen = strlen(r->obs_prefix);

    if (etcd_range(r->etcd, r->obs_prefix, &ro, &res, &e) != ST_OK) {
        log_warn("key=%s msg=\"cannot list the observed keys: %s\"", r->obs_prefix, e.msg);
        return;
    }
    for (size_t i = 0; i < res.n; i++) {
        json_t *v = json_loadb(res.kvs[i].value, res.kvs[i].value_len, 0, NULL);
        json_object_set_new(r->obs, res.kvs[i].key + plen, v ? v : json_object());
    }
    etcd_range_result_release(&res);
    r->obs_loaded = 1;
}

/* An integer of name's last observed value (under smu: helpers write the map meanwhile). */
static json_int_t obs_int(struct reconciler *r, const char *name, const char *k, json_int_t def)
{
    json_int_t v;

    pthread_mutex_lock(&r->smu);
    v = jint(json_object_get(r->obs, name), k, def);
    pthread_mutex_unlock(&r->smu);
    return v;
}

/* --- Docker actions ------------------------------------------------------------------- */

/* Stop a running container. labels (the container's or its spec's) with
 * io.kontena.load_balancer.name: first wait --lb-drain, so kontena-lbconfig (which sees the
 * instance leave as soon as we do) and the load balancer take it out of the upstreams while
 * it still answers; then the stop signal. */
static enum status stop_container(struct reconciler *r, const char *id, const char *name, int grace,
                                  const json_t *labels, struct err *e)
{
    const char *lb = jstr(labels, "io.kontena.load_balancer.name", NULL);

    if (lb && r->lb_drain_ms > 0) {
        log_info("container=%s lb=%s msg=\"draining %d ms before the stop\"", name, lb,
                 r->lb_drain_ms);
        if (nap(r, r->lb_drain_ms))
            log_info("container=%s msg=\"drain cut short: the agent is stopping\"", name);
    }
    log_info("container=%s msg=\"stopping (grace %d s)\"", name, grace);
    return docker_container_stop(DW(r), id, grace, e);
}

/* Stop with the grace period its label carries, then remove with its anonymous volumes. */
static enum status remove_container(struct reconciler *r, const json_t *c, const char *name,
                                    struct err *e)
{
    const json_t *labels = json_object_get(json_object_get(c, "Config"), "Labels");
    const char *id = jstr(c, "Id", "");
    enum status st;

    if (!labels) /* a list summary */
        labels = json_object_get(c, "Labels");
    if (json_is_true(json_object_get(json_object_get(c, "State"), "Running")) ||
        !strcmp(jstr(c, "State", ""), "running")) {
        st = stop_container(r, id, name,
                            (int)jint(labels, "io.kontena.stop_grace_period", DEFAULT_GRACE_S),
                            labels, e);
        if (st != ST_OK && st != ST_NOTFOUND)
            return st;
    }
    st = docker_container_remove(DW(r), id, 1, 1, e);
    if (st == ST_NOTFOUND)
        st = ST_OK;
    if (st == ST_OK)
        log_info("container=%s id=%.12s msg=\"removed\"", name, id);
    return st;
}

static int64_t iso_ms(const char *s)
{
    int64_t us = s ? time_iso8601_parse(s) : -1;
    return us > 0 ? us / 1000 : -1;
}

/* --- one instance ---------------------------------------------------------------------- */

/* --overlay: after a start, one gratuitous ARP from the container's netns, so peers that
 * learned its address (and MAC, derived from it) at another node re-learn it at once. */
static void announce(const char *name, const json_t *c)
{
    const char *ip = overlay_container_ip(c);
    json_int_t pid = jint(json_object_get(c, "State"), "Pid", 0);
    struct err e = ERR_INIT;

    if (!ip || pid <= 0 || !json_is_true(json_object_get(json_object_get(c, "State"), "Running")))
        return;
    if (overlay_announce((pid_t)pid, "eth0", ip, &e) != ST_OK)
        log_warn("container=%s ip=%s msg=\"cannot send the gratuitous ARP: %s\"", name, ip, e.msg);
    else
        log_debug("container=%s ip=%s msg=\"gratuitous ARP sent\"", name, ip);
}

/* Make Docker match instance `name`; returns its observed value (new reference). summary:
 * the container list entry of that name carrying our labels, or NULL. *wake_ms is lowered
 * when a crash restart is due later. */
static json_t *sync_one(struct reconciler *r, const char *name, const json_t *inst,
                        const json_t *summary, int64_t *wake_ms)
{
    const json_t *spec = json_object_get(inst, "spec");
    const char *image = jstr(spec, "image", NULL), *dstate = jstr(inst, "desired_state", "running");
    json_t *local = local_of(r, name), *c = NULL, *o;
    json_int_t rev = jint(inst, "revision", 0), gen = jint(inst, "restart_generation", 0);
    json_int_t hr = jint(inst, "health_restarts", 0);
    const char *want_cidr = NULL;
    char revs[32], msg[ERR_MSG_LEN + 128];
    const char *override = NULL;
    struct err e = ERR_INIT;
    int running_wanted, created = 0, restarted = 0;
    int64_t now = time_mono_ms();

    if (!valid_name(name))
        return observed(NULL, NULL, "invalid container name in the instance key", gen);
    if (!json_is_object(inst) || !json_is_object(spec) || !image || !*image)
        return observed(NULL, NULL, "invalid instance value: want an object with spec.image", gen);
    if (strcmp(dstate, "running") != 0 && strcmp(dstate, "stopped") != 0)
        return observed(NULL, NULL, "invalid desired_state: want running or stopped", gen);
    running_wanted = !strcmp(dstate, "running");
    snprintf(revs, sizeof(revs), "%lld", (long long)rev);
    if (needs_overlay(spec))
        want_cidr = jstr(inst, "overlay_cidr", "");

    if (summary && docker_container_inspect(DW(r), jstr(summary, "Id", ""), &c, &e) != ST_OK) {
        if (e.st != ST_NOTFOUND) {
            snprintf(msg, sizeof(msg), "cannot inspect container '%s': %s", name, e.msg);
            return observed(NULL, NULL, msg, gen);
        }
        c = NULL;
    }

    if (c) {
        const json_t *labels = json_object_get(json_object_get(c, "Config"), "Labels");
        const char *crev = jstr(labels, "io.kontena.revision", "");
        const char *cimg = jstr(json_object_get(c, "Config"), "Image", "");
        const char *ccidr = jstr(labels, OVERLAY_LABEL, "");
        if (r->ov && want_cidr && *want_cidr && !strcmp(jstr(spec, "net", "bridge"), "bridge") &&
            strcmp(jstr(json_object_get(c, "HostConfig"), "NetworkMode", ""), OVERLAY_NETWORK))
            ccidr = ""; /* --overlay, but made without it: not on the overlay yet */
        if (want_cidr && strcmp(ccidr, want_cidr) != 0) {
            /* The address moved (another container is older on it, or this one had none
             * yet): the container goes; a new one is made once there is an address. */
            log_info("container=%s overlay_cidr=%s->%s msg=\"overlay address changed: "
                     "recreating\"",
                     name, *ccidr ? ccidr : "(none)", *want_cidr ? want_cidr : "(none)");
            if (remove_container(r, c, name, &e) != ST_OK) {
                snprintf(msg, sizeof(msg), "cannot remove the old container: %s", e.msg);
                o = observed(c, NULL, msg, gen);
                json_decref(c);
                return o;
            }
            json_decref(c);
            c = NULL;
        } else if (strcmp(crev, revs) != 0 || strcmp(cimg, image) != 0) {
            json_t *img = NULL;
            if (docker_image_inspect(DW(r), image, &img, &e) != ST_OK) {
                /* Keep the old container: better than nothing while the image is missing. */
                snprintf(msg, sizeof(msg), "image '%s' not found on node %s", image, r->node);
                if (e.st != ST_NOTFOUND)
                    snprintf(msg, sizeof(msg), "cannot inspect image '%s': %s", image, e.msg);
                o = observed(c, NULL, msg, gen);
                json_decref(c);
                return o;
            }
            json_decref(img);
            log_info("container=%s revision=%s->%s image=%s->%s msg=\"recreating\"", name, crev,
                     revs, cimg, image);
            if (remove_container(r, c, name, &e) != ST_OK) {
                snprintf(msg, sizeof(msg), "cannot remove the old container: %s", e.msg);
                o = observed(c, NULL, msg, gen);
                json_decref(c);
                return o;
            }
            json_decref(c);
            c = NULL;
        }
    }

    if (!c && want_cidr && !*want_cidr) {
        const char *why = jstr(inst, "overlay_error", NULL);
        o = observed(NULL, "pending", NULL, gen);
        if (why)
            json_object_set_new(o, "reason", json_sprintf(WAITING_FOR_ADDRESS ": %s", why));
        else
            json_object_set_new(o, "reason", json_string(WAITING_FOR_ADDRESS));
        return o;
    }

    if (!c) {
        json_t *img = NULL, *cfg;
        char *id = NULL, *dname;
        enum status st;
        if (docker_image_inspect(DW(r), image, &img, &e) != ST_OK) {
            if (e.st == ST_NOTFOUND)
                snprintf(msg, sizeof(msg), "image '%s' not found on node %s", image, r->node);
            else
                snprintf(msg, sizeof(msg), "cannot inspect image '%s': %s", image, e.msg);
            return observed(NULL, NULL, msg, gen);
        }
        json_decref(img);
        cfg = build_config(r, name, inst, spec);
        dname = xasprintf("%s%s", r->name_prefix, name);
        st = docker_container_create(DW(r), dname, cfg, &id, &e);
        free(dname);
        if (st != ST_OK) {
            json_decref(cfg);
            snprintf(msg, sizeof(msg), "cannot create container '%s': %s", name, e.msg);
            return observed(NULL, NULL, msg, gen);
        }
        json_decref(cfg);
        log_info("container=%s id=%.12s revision=%s msg=\"created\"", name, id, revs);
        created = 1;
        json_object_set_new(local, "gen", json_integer(gen));
        json_object_set_new(local, "hr", json_integer(hr));
        json_object_set_new(local, "restarts", json_integer(0));
        json_object_del(local, "next_ms");
        json_object_del(local, "stopped_by_us");
        if (running_wanted && docker_container_start(DW(r), id, &e) != ST_OK) {
            snprintf(msg, sizeof(msg), "cannot start container '%s': %s", name, e.msg);
            if (docker_container_inspect(DW(r), id, &c, NULL) != ST_OK)
                c = NULL;
            free(id);
            o = observed(c, NULL, msg, gen);
            json_decref(c);
            return o;
        }
        if (docker_container_inspect(DW(r), id, &c, &e) != ST_OK) {
            snprintf(msg, sizeof(msg), "cannot inspect container '%s': %s", name, e.msg);
            free(id);
            return observed(NULL, NULL, msg, gen);
        }
        free(id);
    }

    if (!created) {
        const json_t *st = json_object_get(c, "State");
        const char *id = jstr(c, "Id", "");
        int running = json_is_true(json_object_get(st, "Running"));
        json_int_t known, hr_known;
        int changed = 0;
        enum status rs = ST_OK;

        if (!json_object_get(local, "gen")) /* first sight since the agent started */
            json_object_set_new(
                local, "gen",
                json_integer(obs_int(r, name, "restart_generation", gen)));
        known = jint(local, "gen", gen);
        if (!json_object_get(local, "hr"))
            json_object_set_new(
                local, "hr",
                json_integer(obs_int(r, name, "health_restarts", hr)));
        hr_known = jint(local, "hr", hr);
        if (!running_wanted) {
            if (running) {
                rs = stop_container(r, id, name,
                                    (int)jint(spec, "stop_grace_period", DEFAULT_GRACE_S),
                                    json_object_get(spec, "labels"), &e);
                changed = 1;
            }
            json_object_set_new(local, "stopped_by_us", json_true());
            json_object_set_new(local, "gen", json_integer(gen));
            json_object_set_new(local, "hr", json_integer(hr));
        } else if (gen > known || hr != hr_known) {
            if (hr != hr_known)
                log_info("container=%s health_restarts=%lld msg=\"restart requested by the "
                         "health controller\"",
                         name, (long long)hr);
            else
                log_info("container=%s generation=%lld msg=\"restart requested\"", name,
                         (long long)gen);
            if (running)
                rs = stop_container(r, id, name,
                                    (int)jint(spec, "stop_grace_period", DEFAULT_GRACE_S),
                                    json_object_get(spec, "labels"), &e);
            if (rs == ST_OK || rs == ST_NOTFOUND)
                rs = docker_container_start(DW(r), id, &e);
            json_object_set_new(local, "gen", json_integer(gen));
            json_object_set_new(local, "hr", json_integer(hr));
            json_object_set_new(local, "restarts", json_integer(0));
            json_object_del(local, "next_ms");
            json_object_del(local, "stopped_by_us");
            changed = 1;
        } else if (running) {
            int64_t started = iso_ms(jstr(st, "StartedAt", NULL));
            json_object_del(local, "next_ms");
            json_object_del(local, "stopped_by_us");
            if (jint(local, "restarts", 0) > 0 && started > 0 &&
                time_now_us() / 1000 - started > STABLE_AFTER_MS)
                json_object_set_new(local, "restarts", json_integer(0));
        } else if (json_is_true(json_object_get(local, "stopped_by_us")) ||
                   !strcmp(jstr(st, "Status", ""), "created")) {
            rs = docker_container_start(DW(r), id, &e);
            json_object_del(local, "stopped_by_us");
            changed = 1;
        } else {
            /* It died. spec.restart decides, with the original's backoff restarts² s. */
            const char *policy = jstr(spec, "restart", "always");
            json_int_t exit_code = jint(st, "ExitCode", 0);
            if (!strcmp(policy, "no") || (!strcmp(policy, "on-failure") && exit_code == 0)) {
                /* stays stopped */
            } else {
                json_int_t n = jint(local, "restarts", 0), next = jint(local, "next_ms", 0);
                json_int_t backoff = n * n > MAX_CRASH_BACKOFF_S ? MAX_CRASH_BACKOFF_S : n * n;
                if (!next) {
                    next = now + backoff * 1000;
                    json_object_set_new(local, "next_ms", json_integer(next));
                    if (n == 0 || backoff)
                        log_warn("container=%s exit_code=%lld msg=\"crashed; restart in %lld s\"",
                                 name, (long long)exit_code, (long long)backoff);
                }
                if (now >= next) {
                    rs = docker_container_start(DW(r), id, &e);
                    json_object_set_new(local, "restarts", json_integer(n + 1));
                    json_object_del(local, "next_ms");
                    changed = 1;
                } else {
                    override = "restarting";
                    if (next - now < *wake_ms)
                        *wake_ms = next - now;
                }
            }
        }
        if (rs != ST_OK && rs != ST_NOTFOUND) {
            snprintf(msg, sizeof(msg), "container '%s': %s", name, e.msg);
            o = observed(c, NULL, msg, gen);
            json_decref(c);
            return o;
        }
        restarted = changed && running_wanted;
        if (changed) {
            json_t *c2 = NULL;
            if (docker_container_inspect(DW(r), id, &c2, NULL) == ST_OK) {
                json_decref(c);
                c = c2;
            }
        }
    }
    if (r->ov && (created || restarted))
        announce(name, c);
    o = observed(c, override, NULL, gen);
    json_decref(c);
    return o;
}

/* --- the worker ------------------------------------------------------------------------ */

/* The parts of an instance's observed value that are not about its container's state: the
 * health_restarts applied, the probes (started, kept or stopped here) and their results. */
static void finish_observed(struct reconciler *r, const char *name, const json_t *inst, json_t *o)
{
    const json_t *spec = json_object_get(inst, "spec");
    json_t *local = local_of(r, name);
    char *ip = xstrdup(jstr(o, "ip", ""));

    json_object_set_new(o, "health_restarts",
                        json_integer(jint(local, "hr", jint(inst, "health_restarts", 0))));
    if (!strcmp(jstr(o, "state", ""), "running") && jstr(o, "container_id", NULL))
        probe_update(r->probes, name, jstr(o, "container_id", ""), jstr(o, "started_at", ""), ip,
                     json_object_get(spec, "health_check"), (int)jint(spec, "wait_for_port", 0));
    else
        probe_remove(r->probes, name);
    probe_fill(r->probes, name, o);
    free(ip);
}

/* A probe result changed: rewrite the observed values of those instances only, without a
 * pass over Docker. */
static void write_probe_results(struct reconciler *r)
{
    json_t *names = probe_take_changed(r->probes), *n;
    size_t i;

    json_array_foreach(names, i, n)
    {
        const char *name = json_string_value(n);
        json_t *prev = json_object_get(r->obs, name), *o;
        if (!prev || strcmp(jstr(prev, "state", ""), "running") != 0)
            continue;
        o = json_deep_copy(prev);
        json_object_del(o, "updated_at");
        json_object_del(o, "health");
        json_object_del(o, "ready");
        probe_fill(r->probes, name, o);
        write_observed(r, name, o);
    }
    json_decref(names);
}

/* One pass over every instance; returns the ms until the next pass is needed (at most the
 * resync interval). */
/* One unit of a pass: sync an instance (inst set) or remove a container without one. */
struct task {
    const char *name;
    const json_t *inst; /* NULL: remove c */
    json_t *c;          /* the container's list entry, NULL when there is none */
    int removed;
};

struct pass {
    struct reconciler *r;
    struct task *tasks;
    size_t n;
    size_t next; /* under mu */
    int64_t wake;
    pthread_mutex_t mu;
};

struct pass_thread {
    struct pass *p;
    struct docker *d;
    pthread_t t;
};

static void run_task(struct reconciler *r, struct task *t, int64_t *wake)
{
    struct err e = ERR_INIT;

    if (t->inst) {
        json_t *o = sync_one(r, t->name, t->inst, t->c, wake);
        finish_observed(r, t->name, t->inst, o);
        write_observed(r, t->name, o);
        return;
    }
    log_info("container=%s msg=\"no instance key: removing\"", t->name);
    if (remove_container(r, t->c, t->name, &e) != ST_OK)
        log_warn("container=%s msg=\"cannot remove: %s\"", t->name, e.msg);
    else
        t->removed = 1;
}

static void *pass_main(void *arg)
{
    struct pass_thread *pt = arg;
    struct pass *p = pt->p;

    tl_docker = pt->d;
    for (;;) {
        int64_t w = INT64_MAX;
        size_t i;

        pthread_mutex_lock(&p->mu);
        i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n || is_stopping(p->r))
            break;
        run_task(p->r, &p->tasks[i], &w);
        pthread_mutex_lock(&p->mu);
        if (w < p->wake)
            p->wake = w;
        pthread_mutex_unlock(&p->mu);
    }
    tl_docker = NULL;
    return NULL;
}

/* Run the tasks on the worker and up to SYNC_PARALLEL - 1 helper threads, each with its
 * own Docker connection; returns the smallest wake-up any task asked for (or wake). */
static int64_t run_tasks(struct reconciler *r, struct task *tasks, size_t n, int64_t wake)
{
    struct pass p = {.r = r, .tasks = tasks, .n = n, .wake = wake};
    struct pass_thread pt[SYNC_PARALLEL];
    size_t helpers = 0;

    pthread_mutex_init(&p.mu, NULL);
    for (size_t i = 0; i + 1 < SYNC_PARALLEL && i + 1 < n; i++) {
        pt[helpers].p = &p;
        pt[helpers].d = r->dpool[i];
        if (!pt[helpers].d || pthread_create(&pt[helpers].t, NULL, pass_main, &pt[helpers]) != 0)
            break;
        helpers++;
    }
    pt[SYNC_PARALLEL - 1].p = &p;
    pt[SYNC_PARALLEL - 1].d = r->dw;
    pass_main(&pt[SYNC_PARALLEL - 1]);
    for (size_t i = 0; i < helpers; i++)
        pthread_join(pt[i].t, NULL);
    pthread_mutex_destroy(&p.mu);
    return p.wake;
}

static int64_t sync_all(struct reconciler *r, const json_t *desired)
{
    const char *filters[] = {r->label_grid, r->label_node, NULL};
    json_t *list = NULL, *byname = json_object(), *c, *v, *tmp;
    struct err e = ERR_INIT;
    int64_t wake = r->resync_ms;
    const char *name;
    struct task *tasks;
    size_t i, nt = 0;

    if (docker_container_list(r->dw, filters, 1, &list, &e) != ST_OK) {
        if (r->docker_ok)
            log_warn("msg=\"cannot list containers: %s; retrying\"", e.msg);
        r->docker_ok = 0;
        json_decref(byname);
        return RETRY_MS;
    }
    if (!r->docker_ok)
        log_info("socket=%s msg=\"Docker reachable; syncing\"", docker_socket_path(r->dw));
    r->docker_ok = 1;
    if (!r->obs_loaded)
        load_observed(r);
    if (r->ov) {
        if (overlay_sync(r->ov, r->etcd, r->dw, &e) != ST_OK) {
            if (r->overlay_ok)
                log_warn("msg=\"overlay: %s; retrying\"", e.msg);
            r->overlay_ok = 0;
            if (wake > RETRY_MS)
                wake = RETRY_MS;
        } else {
            r->overlay_ok = 1;
        }
    }

    /* Instances are known by their io.kontena.container.name label; the Docker name
     * (prefix + name) only matters when several agents share one dockerd. */
    json_array_foreach(list, i, c)
    {
        const char *n = json_string_value(
            json_object_get(json_object_get(c, "Labels"), "io.kontena.container.name"));
        if (!n) {
            size_t pl = strlen(r->name_prefix);
            n = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
            if (n && *n == '/')
                n++;
            if (n && pl && strncmp(n, r->name_prefix, pl) == 0)
                n += pl;
        }
        if (n)
            json_object_set(byname, n, c);
    }

    /* Every instance, then every container of this node without an instance key. */
    tasks = xcalloc(json_object_size(desired) + json_object_size(byname) + 1, sizeof(*tasks));
    json_object_foreach((json_t *)desired, name, v)
    {
        tasks[nt].name = name;
        tasks[nt].inst = v;
        tasks[nt++].c = json_object_get(byname, name);
    }
    json_object_foreach(byname, name, c)
    {
        if (json_object_get(desired, name))
            continue;
        tasks[nt].name = name;
        tasks[nt++].c = c;
    }
    wake = run_tasks(r, tasks, nt, wake);
    for (i = 0; i < nt; i++)
        if (tasks[i].removed)
            json_object_del(byname, tasks[i].name);
    free(tasks);
    if (is_stopping(r))
        goto out;
    /* Observed keys and memory of instances that are gone. */
    if (r->obs_loaded) {
        json_object_foreach_safe(r->obs, tmp, name, v)
        {
            if (!json_object_get(desired, name) && !json_object_get(byname, name))
                delete_observed(r, name);
        }
    }
    json_object_foreach_safe(r->local, tmp, name, v)
    {
        if (!json_object_get(desired, name)) {
            probe_remove(r->probes, name);
            json_object_del(r->local, name);
        }
    }
out:
    json_decref(list);
    json_decref(byname);
    return wake;
}

static void *worker_main(void *arg)
{
    struct reconciler *r = arg;
    int64_t next_pass = time_mono_ms() + r->resync_ms;

    for (;;) {
        struct timespec ts = time_deadline(CLOCK_MONOTONIC, next_pass - time_mono_ms());
        json_t *snap, *discard;
        int timed_out = 0, wait_ms;

        pthread_mutex_lock(&r->mu);
        while (!r->stopping && !(r->listed && (r->dirty || r->probe_dirty)) && !timed_out)
            timed_out = pthread_cond_timedwait(&r->wake, &r->mu, &ts) == ETIMEDOUT;
        if (r->stopping) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        if (!r->listed) {
            pthread_mutex_unlock(&r->mu);
            next_pass = time_mono_ms() + r->resync_ms;
            continue;
        }
        if (!r->dirty && !timed_out) { /* only probe results changed */
            r->probe_dirty = 0;
            pthread_mutex_unlock(&r->mu);
            write_probe_results(r);
            continue;
        }
        r->dirty = 0;
        r->probe_dirty = 0;
        snap = json_deep_copy(r->desired);
        pthread_mutex_unlock(&r->mu);
        discard = probe_take_changed(r->probes); /* the full pass writes every result */
        json_decref(discard);
        wait_ms = (int)sync_all(r, snap);
        if (wait_ms < 10)
            wait_ms = 10;
        next_pass = time_mono_ms() + wait_ms;
        json_decref(snap);
    }
    return NULL;
}

/* --- the etcd watch -------------------------------------------------------------------- */

static void apply_put(struct reconciler *r, const struct etcd_kv *kv, json_t *map)
{
    const char *name = kv->key + strlen(r->inst_prefix);
    json_t *v;

    if (!*name || strchr(name, '/'))
        return; /* not an instance key */
    v = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, NULL);
    json_object_set_new(map, name, v ? v : json_string("unparsable"));
}

static int on_watch(void *arg, const struct etcd_watch_msg *m)
{
    struct reconciler *r = arg;
    int stop;

    pthread_mutex_lock(&r->mu);
    if (m->kind == ETCD_WATCH_EVENTS) {
        for (size_t i = 0; i < m->n_events; i++) {
            const struct etcd_event *ev = &m->events[i];
            if (ev->type == ETCD_EVENT_PUT)
                apply_put(r, &ev->kv, r->desired);
            else if (strlen(ev->kv.key) > strlen(r->inst_prefix))
                json_object_del(r->desired, ev->kv.key + strlen(r->inst_prefix));
            log_debug("key=%s rev=%lld msg=\"instance %s\"", ev->kv.key,
                      (long long)ev->kv.mod_revision,
                      ev->type == ETCD_EVENT_PUT ? "written" : "deleted");
        }
        r->dirty = 1;
        pthread_cond_signal(&r->wake);
    } else if (m->kind == ETCD_WATCH_DISCONNECTED) {
        log_warn("key=%s msg=\"watch dropped: %s; resuming\"", r->inst_prefix,
                 m->error ? m->error : "?");
    }
    stop = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void *watch_main(void *arg)
{
    struct reconciler *r = arg;
    int64_t backoff = 200;
    int warned = 0;

    while (!is_stopping(r)) {
        struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
        struct etcd_range_result res;
        struct etcd_watch_opts wo;
        struct etcd_watch *w;
        struct err e = ERR_INIT;
        json_t *map;
        enum status st;

        if (etcd_range(r->etcd, r->inst_prefix, &ro, &res, &e) != ST_OK) {
            if (!warned++)
                log_warn("key=%s msg=\"cannot list instances: %s; retrying\"", r->inst_prefix,
                         e.msg);
            if (nap(r, backoff))
                break;
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        warned = 0;
        backoff = 200;
        map = json_object();
        for (size_t i = 0; i < res.n; i++)
            apply_put(r, &res.kvs[i], map);
        log_info("key=%s rev=%lld instances=%zu msg=\"listed\"", r->inst_prefix,
                 (long long)res.revision, json_object_size(map));

        memset(&wo, 0, sizeof(wo));
        wo.key = r->inst_prefix;
        wo.range_end = ETCD_PREFIX;
        wo.start_revision = res.revision + 1;
        wo.progress_notify = 1;
        etcd_range_result_release(&res);
        w = etcd_watch_create(r->etcd, &wo, on_watch, r);

        pthread_mutex_lock(&r->mu);
        json_decref(r->desired);
        r->desired = map;
        r->listed = 1;
        r->dirty = 1;
        pthread_cond_signal(&r->wake);
        r->ew = w;
        if (r->stopping)
            etcd_watch_stop(w);
        pthread_mutex_unlock(&r->mu);

        st = etcd_watch_run(w, &e);

        pthread_mutex_lock(&r->mu);
        r->ew = NULL;
        pthread_mutex_unlock(&r->mu);
        etcd_watch_destroy(w);
        if (st == ST_COMPACTED) {
            log_warn("key=%s msg=\"watch compacted away: listing again\"", r->inst_prefix);
            continue;
        }
        if (st != ST_OK) {
            log_warn("key=%s msg=\"watch ended: %s; listing again\"", r->inst_prefix, e.msg);
            if (nap(r, 1000))
                break;
        }
    }
    return NULL;
}

/* --- the grid's nodes (--overlay) ------------------------------------------------------ */

/* Whether a node key's change can change a peer list: created, deleted, or another
 * node_number, address or label (the apiserver rewrites last_seen_at on every pong). */
static int node_change_matters(const struct etcd_event *ev)
{
    static const char *const fields[] = {"node_number", "private_ip", "public_ip", "labels"};
    json_t *a, *b;
    int differ = 0;

    if (ev->type != ETCD_EVENT_PUT || !ev->prev_kv.key)
        return 1;
    a = json_loadb(ev->kv.value ? ev->kv.value : "", ev->kv.value_len, 0, NULL);
    b = json_loadb(ev->prev_kv.value ? ev->prev_kv.value : "", ev->prev_kv.value_len, 0, NULL);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && !differ; i++) {
        json_t *x = json_object_get(a, fields[i]), *y = json_object_get(b, fields[i]);
        differ = (x || y) && !(x && y && json_equal(x, y));
    }
    if (!a || !b)
        differ = 1;
    json_decref(a);
    json_decref(b);
    return differ;
}

/* Whether the grid key's trusted_subnets changed (created or deleted counts). */
static int grid_change_matters(const struct etcd_event *ev)
{
    json_t *a, *b;
    int differ;

    if (ev->type != ETCD_EVENT_PUT || !ev->prev_kv.key)
        return 1;
    a = json_loadb(ev->kv.value ? ev->kv.value : "", ev->kv.value_len, 0, NULL);
    b = json_loadb(ev->prev_kv.value ? ev->prev_kv.value : "", ev->prev_kv.value_len, 0, NULL);
    {
        json_t *x = json_object_get(a, "trusted_subnets"), *y = json_object_get(b, "trusted_subnets");
        differ = !a || !b || ((x || y) && !(x && y && json_equal(x, y)));
    }
    json_decref(a);
    json_decref(b);
    return differ;
}

/* A node or node_status key of this grid, or its trusted subnets, changed: the peer plan
 * may have, so a pass (which runs overlay_sync first) is due. One watch over /kontena/node
 * covers both node prefixes; another the grid key. */
static int on_peer_watch(void *arg, const struct etcd_watch_msg *m)
{
    struct peer_watch *pw = arg;
    struct reconciler *r = pw->r;
    char *a = xasprintf("/kontena/nodes/%s/", r->grid);
    char *b = xasprintf("/kontena/node_status/%s/", r->grid);
    int hit = 0;

    for (size_t i = 0; m->kind == ETCD_WATCH_EVENTS && i < m->n_events; i++) {
        const char *k = m->events[i].kv.key;
        if (pw->grid)
            hit |= grid_change_matters(&m->events[i]);
        else if (k && ((!strncmp(k, a, strlen(a)) && node_change_matters(&m->events[i])) ||
                       !strncmp(k, b, strlen(b))))
            hit = 1;
    }
    if (m->kind == ETCD_WATCH_CONNECTED)
        hit = 1; /* changes may have been missed while away */
    free(a);
    free(b);
    if (hit)
        wake_worker(r);
    return is_stopping(r);
}

static void *peers_main(void *arg)
{
    struct peer_watch *pw = arg;
    struct reconciler *r = pw->r;
    char *grid_key = xasprintf("/kontena/grids/%s", r->grid);

    while (!is_stopping(r)) {
        struct etcd_watch_opts wo;
        struct etcd_watch *w;
        struct err e = ERR_INIT;
        enum status st;

        memset(&wo, 0, sizeof(wo));
        wo.key = pw->grid ? grid_key : "/kontena/node";
        wo.range_end = pw->grid ? NULL : ETCD_PREFIX;
        wo.prev_kv = 1;
        w = etcd_watch_create(r->etcd, &wo, on_peer_watch, pw);
        pthread_mutex_lock(&r->mu);
        pw->w = w;
        if (r->stopping)
            etcd_watch_stop(w);
        pthread_mutex_unlock(&r->mu);
        st = etcd_watch_run(w, &e);
        pthread_mutex_lock(&r->mu);
        pw->w = NULL;
        pthread_mutex_unlock(&r->mu);
        etcd_watch_destroy(w);
        if (st != ST_OK && st != ST_COMPACTED)
            log_warn("msg=\"watch on the grid's %s ended: %s; again\"",
                     pw->grid ? "key" : "nodes", e.msg);
        wake_worker(r);
        if (nap(r, 1000))
            break;
    }
    free(grid_key);
    return NULL;
}

/* --- Docker events --------------------------------------------------------------------- */

static void on_events_connected(void *arg)
{
    struct reconciler *r = arg;
    log_debug("msg=\"subscribed to Docker events\"");
    wake_worker(r); /* anything may have happened while we were not listening */
}

static int on_event(void *arg, const struct docker_event *ev)
{
    struct reconciler *r = arg;
    if (ev->type && !strcmp(ev->type, "container")) {
        log_debug("id=%.12s action=%s msg=\"docker event\"", ev->id ? ev->id : "",
                  ev->action ? ev->action : "");
        wake_worker(r);
    }
    return is_stopping(r);
}

static void *events_main(void *arg)
{
    struct reconciler *r = arg;
    json_t *filters = json_pack("{s:[s], s:[s,s], s:[s,s,s,s,s,s,s,s]}", "type", "container",
                                "label", r->label_grid, r->label_node, "event", "create", "start",
                                "die", "destroy", "stop", "pause", "unpause", "rename");
    int warned = 0;

    while (!is_stopping(r)) {
        struct err e = ERR_INIT;
        enum status st = docker_events(r->de, filters, 0, 0, on_events_connected, on_event, r, &e);
        if (is_stopping(r))
            break;
        if (st != ST_OK && !warned++)
            log_warn("msg=\"Docker events: %s; reconnecting\"", e.msg);
        else if (st == ST_OK)
            warned = 0;
        wake_worker(r);
        if (nap(r, 1000))
            break;
    }
    json_decref(filters);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------------------- */

struct reconciler *reconcile_start(const struct reconcile_opts *o, struct err *e)
{
    struct reconciler *r;
    struct etcd_opts eo;
    struct docker_opts dopts;
    pthread_condattr_t ca;

    if (!o->etcd_endpoints || !*o->etcd_endpoints) {
        err_set(e, ST_INVALID, "the reconciler needs etcd endpoints");
        return NULL;
    }
    if (!o->grid || !*o->grid || strchr(o->grid, '/') || !o->node || !*o->node ||
        strchr(o->node, '/')) {
        err_set(e, ST_INVALID, "the reconciler needs a grid and a node name without '/'");
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    r->grid = xstrdup(o->grid);
    r->node = xstrdup(o->node);
    r->inst_prefix = xasprintf(RECONCILE_INSTANCES_PREFIX "%s/%s/", o->grid, o->node);
    r->obs_prefix = xasprintf(RECONCILE_OBSERVED_PREFIX "%s/%s/", o->grid, o->node);
    r->label_grid = xasprintf("io.kontena.grid=%s", o->grid);
    r->label_node = xasprintf("io.kontena.node=%s", o->node);
    r->name_prefix = xstrdup(o->docker_name_prefix ? o->docker_name_prefix : "");
    r->resync_ms = o->resync_interval_ms > 0 ? o->resync_interval_ms : DEFAULT_RESYNC_MS;
    r->lb_drain_ms = o->lb_drain_ms > 0 ? o->lb_drain_ms : 0;
    r->dns = o->dns;
    r->desired = json_object();
    r->obs = json_object();
    r->local = json_object();
    r->docker_ok = 1;
    r->overlay_ok = 1;
    if (o->overlay) {
        struct overlay_opts oo = {.grid = o->grid, .node = o->node, .private_ip = o->private_ip,
                                  .wg_key = o->wg_key, .wg_ifname = o->wg_ifname};
        r->ov = overlay_create(&oo, e);
        if (!r->ov) {
            reconcile_stop(r);
            return NULL;
        }
    }

    memset(&eo, 0, sizeof(eo));
    eo.endpoints = o->etcd_endpoints;
    r->etcd = etcd_create(&eo, e);
    memset(&dopts, 0, sizeof(dopts));
    dopts.socket_path = o->docker_socket ? o->docker_socket : DOCKER_DEFAULT_SOCKET;
    if (r->etcd)
        r->dw = docker_create(&dopts, e);
    for (size_t i = 0; r->dw && i < SYNC_PARALLEL - 1; i++)
        r->dpool[i] = docker_create(&dopts, NULL); /* NULL: that helper is simply not run */
    if (r->dw)
        r->de = docker_create(&dopts, e);
    if (!r->de) {
        reconcile_stop(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->smu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &ca);
    pthread_cond_init(&r->nap, &ca);
    pthread_condattr_destroy(&ca);
    r->probes = probe_create(wake_for_probe, r);
    for (int i = 0; i < 2; i++) {
        r->pw[i].r = r;
        r->pw[i].grid = i;
    }
    r->started = 1;
    if (pthread_create(&r->t_watch, NULL, watch_main, r) != 0 ||
        pthread_create(&r->t_events, NULL, events_main, r) != 0 ||
        pthread_create(&r->t_worker, NULL, worker_main, r) != 0 ||
        (r->ov && pthread_create(&r->pw[0].t, NULL, peers_main, &r->pw[0]) != 0) ||
        (r->ov && pthread_create(&r->pw[1].t, NULL, peers_main, &r->pw[1]) != 0))
        BUG_ON(1); /* only fails on resource exhaustion */
    log_info("grid=%s node=%s msg=\"reconciling %s\"", r->grid, r->node, r->inst_prefix);
    return r;
}

void reconcile_stop(struct reconciler *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = 1;
        if (r->ew)
            etcd_watch_stop(r->ew);
        for (int i = 0; i < 2; i++)
            if (r->pw[i].w)
                etcd_watch_stop(r->pw[i].w);
        pthread_cond_broadcast(&r->wake);
        pthread_cond_broadcast(&r->nap);
        pthread_mutex_unlock(&r->mu);
        docker_cancel(r->de);
        docker_cancel(r->dw);
        for (size_t i = 0; i < SYNC_PARALLEL - 1; i++)
            if (r->dpool[i])
                docker_cancel(r->dpool[i]);
        pthread_join(r->t_watch, NULL);
        pthread_join(r->t_events, NULL);
        pthread_join(r->t_worker, NULL);
        if (r->ov) {
            pthread_join(r->pw[0].t, NULL);
            pthread_join(r->pw[1].t, NULL);
        }
        probe_destroy(r->probes); /* its threads may wake the worker: after the worker */
        r->probes = NULL;
        pthread_cond_destroy(&r->wake);
        pthread_cond_destroy(&r->nap);
        pthread_mutex_destroy(&r->mu);
        pthread_mutex_destroy(&r->smu);
    }
    docker_destroy(r->de);
    docker_destroy(r->dw);
    for (size_t i = 0; i < SYNC_PARALLEL - 1; i++)
        docker_destroy(r->dpool[i]);
    etcd_destroy(r->etcd);
    overlay_destroy(r->ov);
    json_decref(r->desired);
    json_decref(r->obs);
    json_decref(r->local);
    free(r->grid);
    free(r->node);
    free(r->inst_prefix);
    free(r->obs_prefix);
    free(r->label_grid);
    free(r->label_node);
    free(r->name_prefix);
    free(r);
}
