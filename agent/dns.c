/* agent/dns.c -- the node's dnsmasq and the hosts files it serves (interface and threads:
 * agent/dns.h; docs/internals/dns.md). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/dns.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"

#include "common/banned.h"

extern char **environ;

#define STABLE_MS 10000 /* a dnsmasq up this long resets the restart backoff */
#define MAX_BACKOFF_MS 30000
#define TICK_MS 200 /* the writer looks at dnsmasq this often */

enum { W_INSTANCES, W_OBSERVED, W_STACKS, W_COUNT };

struct dns;

/* One watched prefix and its map (relative key -> parsed value). */
struct mirror {
    struct dns *d;
    char *prefix;
    int depth;   /* '/'-separated parts of a relative key: 2 (node/name) or 1 (stack) */
    json_t *map; /* guarded by d->mu */
    int listed;
    struct etcd_watch *ew;
    pthread_t t;
};

struct dns {
    char *grid, *node, *listen, *run_dir, *hosts_dir, *pid_file, *dnsmasq, *resolv;
    int port;
    struct etcd *etcd;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* writer: dirty or stopping; mirrors: stopping */
    int stopping, dirty;
    struct mirror m[W_COUNT];
    char addr[16]; /* the node's overlay address once known ("" before) */

    /* writer state */
    json_t *written; /* file name -> content last written */
    pid_t child;
    int64_t child_started, next_start, backoff;
    pthread_t t_writer;
    int started;
};

/* --- the hosts files ------------------------------------------------------------------- */

/* A DNS label we are willing to write: 1..63 of [A-Za-z0-9_-], not starting with '-'. */
static int label_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 63 && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int stackless(const char *stack)
{
    return !stack || !*stack || strcmp(stack, "null") == 0;
}

char *dns_search_domain(const char *grid, const char *stack)
{
    if (stackless(stack))
        return xasprintf("%s." DNS_DOMAIN, grid);
    return xasprintf("%s.%s." DNS_DOMAIN, stack, grid);
}

/* The IPv4 of an overlay_cidr "10.81.128.7/16" into ip; 0, or -1 when malformed. */
static int cidr_ip(const char *cidr, char ip[16])
{
    struct in_addr a;
    size_t n = cidr ? strcspn(cidr, "/") : 0;

    if (n == 0 || n > 15)
        return -1;
    memcpy(ip, cidr, n);
    ip[n] = '\0';
    return inet_pton(AF_INET, ip, &a) == 1 ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *dns_hosts_files(const char *grid, const json_t *instances, const json_t *observed,
                        const json_t *stacks)
{
    json_t *lines, *files = json_object(), *v;
    const char *key, **keys;
    size_t n = 0, i;

    if (!label_ok(grid))
        return files;
    lines = json_object();
    keys = xcalloc(json_object_size(instances) + 1, sizeof(*keys));
    json_object_foreach((json_t *)instances, key, v) keys[n++] = key;
    qsort(keys, n, sizeof(*keys), cmp_str); /* the same content for the same state */
    for (i = 0; i < n; i++) {
        const json_t *inst = json_object_get(instances, keys[i]);
        const json_t *obs = json_object_get(observed, keys[i]), *num;
        const char *stack = jstr(inst, "stack"), *service = jstr(inst, "service");
        const char *state = jstr(obs, "state"), *expose;
        const char *file_stack = stackless(stack) ? "null" : stack;
        char ip[16], *line;
        json_t *arr;

        num = json_object_get(inst, "instance_number");
        if (!state || strcmp(state, "running") != 0 || !label_ok(service) ||
            !json_is_integer(num) || json_integer_value(num) < 1 ||
            json_integer_value(num) > 1000000 || cidr_ip(jstr(inst, "overlay_cidr"), ip) != 0 ||
            (!stackless(stack) && !label_ok(stack)))
            continue;
        if (stackless(stack)) {
            line = xasprintf("%s %s-%lld.%s.%s %s.%s.%s\n", ip, service,
                             (long long)json_integer_value(num), grid, DNS_DOMAIN, service, grid,
                             DNS_DOMAIN);
        } else {
            expose = jstr(json_object_get(stacks, stack), "expose");
            if (expose && strcmp(expose, service) == 0)
                line = xasprintf("%s %s-%lld.%s.%s.%s %s.%s.%s.%s %s-%lld.%s.%s %s.%s.%s\n", ip,
                                 service, (long long)json_integer_value(num), stack, grid,
                                 DNS_DOMAIN, service, stack, grid, DNS_DOMAIN, stack,
                                 (long long)json_integer_value(num), grid, DNS_DOMAIN, stack, grid,
                                 DNS_DOMAIN);
            else
                line = xasprintf("%s %s-%lld.%s.%s.%s %s.%s.%s.%s\n", ip, service,
                                 (long long)json_integer_value(num), stack, grid, DNS_DOMAIN,
                                 service, stack, grid, DNS_DOMAIN);
        }
        arr = json_object_get(lines, file_stack);
        if (!arr) {
            arr = json_array();
            json_object_set_new(lines, file_stack, arr);
        }
        json_array_append_new(arr, json_string(line));
        free(line);
    }
    free(keys);
    json_object_foreach(lines, key, v)
    {
        size_t len = 0, j;
        json_t *l;
        char *text, *p, *name;
        json_array_foreach(v, j, l) len += strlen(json_string_value(l));
        p = text = xmalloc(len + 1);
        json_array_foreach(v, j, l)
        {
            size_t k = strlen(json_string_value(l));
            memcpy(p, json_string_value(l), k);
            p += k;
        }
        *p = '\0';
        name = xasprintf("%s.hosts", key);
        json_object_set_new(files, name, json_string(text));
        free(name);
        free(text);
    }
    json_decref(lines);
    return files;
}

/* --- writing them ---------------------------------------------------------------------- */

static int write_atomic(const char *dir, const char *name, const char *text)
{
    char *tmp = xasprintf("%s/.%s.tmp", dir, name), *dst = xasprintf("%s/%s", dir, name);
    size_t len = strlen(text);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = -1;

    /* 0644 whatever the umask: dnsmasq reads it as another user */
    if (fd >= 0) {
        int ok = fchmod(fd, 0644) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
        if (close(fd) == 0 && ok)
            rc = rename(tmp, dst);
    }
    if (rc != 0) {
        log_warn("file=%s msg=\"cannot write the hosts file: %s\"", dst, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(dst);
    return rc;
}

/* Make the hosts directory hold exactly files. */
static void write_files(struct dns *d, json_t *files)
{
    const char *name;
    json_t *v;
    DIR *dir;
    struct dirent *de;

    json_object_foreach(files, name, v)
    {
        const char *old = json_string_value(json_object_get(d->written, name));
        if (old && strcmp(old, json_string_value(v)) == 0)
            continue;
        if (write_atomic(d->hosts_dir, name, json_string_value(v)) == 0) {
            json_object_set(d->written, name, v);
            log_debug("file=%s/%s msg=\"hosts file written\"", d->hosts_dir, name);
        }
    }
    dir = opendir(d->hosts_dir);
    while (dir && (de = readdir(dir))) {
        size_t n = strlen(de->d_name);
        char *path;
        if (n < 7 || strcmp(de->d_name + n - 6, ".hosts") != 0 ||
            json_object_get(files, de->d_name))
            continue;
        path = xasprintf("%s/%s", d->hosts_dir, de->d_name);
        if (unlink(path) == 0)
            log_debug("file=%s msg=\"hosts file removed\"", path);
        free(path);
        json_object_del(d->written, de->d_name);
    }
    if (dir)
        closedir(dir);
}

/* --- the watches ----------------------------------------------------------------------- */

static int is_stopping(struct dns *d)
{
    int s;
    pthread_mutex_lock(&d->mu);
    s = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* Sleep ms unless stopped first; 1 when stopping. */
static int nap(struct dns *d, int64_t ms)
{
    struct timespec ts = time_deadline(CLOCK_MONOTONIC, ms);
    int s;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping && pthread_cond_timedwait(&d->cond, &d->mu, &ts) != ETIMEDOUT)
        ;
    s = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* The relative key of kv in m, or NULL when it is not one of m's keys. */
static const char *rel_key(const struct mirror *m, const char *key)
{
    const char *rel = key + strlen(m->prefix), *slash;

    if (strncmp(key, m->prefix, strlen(m->prefix)) != 0 || !*rel)
        return NULL;
    slash = strchr(rel, '/');
    if (m->depth == 1)
        return slash ? NULL : rel;
    return slash && slash != rel && slash[1] && !strchr(slash + 1, '/') ? rel : NULL;
}

static void mirror_put(struct mirror *m, json_t *map, const struct etcd_kv *kv)
{
    const char *rel = rel_key(m, kv->key);
    json_t *v;

    if (!rel)
        return;
    v = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, NULL);
    if (json_is_object(v))
        json_object_set_new(map, rel, v);
    else {
        json_decref(v);
        json_object_del(map, rel);
    }
}

static int on_watch(void *arg, const struct etcd_watch_msg *msg)
{
    struct mirror *m = arg;
    struct dns *d = m->d;
    int stop;

    pthread_mutex_lock(&d->mu);
    if (msg->kind == ETCD_WATCH_EVENTS) {
        for (size_t i = 0; i < msg->n_events; i++) {
            const struct etcd_event *ev = &msg->events[i];
            if (ev->type == ETCD_EVENT_PUT) {
                mirror_put(m, m->map, &ev->kv);
            } else {
                const char *rel = rel_key(m, ev->kv.key);
                if (rel)
                    json_object_del(m->map, rel);
            }
        }
        d->dirty = 1;
        pthread_cond_broadcast(&d->cond);
    } else if (msg->kind == ETCD_WATCH_DISCONNECTED) {
        log_warn("key=%s msg=\"watch dropped: %s; resuming\"", m->prefix,
                 msg->error ? msg->error : "?");
    }
    stop = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

static void *mirror_main(void *arg)
{
    struct mirror *m = arg;
    struct dns *d = m->d;
    int64_t backoff = 200;
    int warned = 0;

    while (!is_stopping(d)) {
        struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
        struct etcd_range_result res;
        struct etcd_watch_opts wo;
        struct etcd_watch *w;
        struct err e = ERR_INIT;
        json_t *map;
        enum status st;

        if (etcd_range(d->etcd, m->prefix, &ro, &res, &e) != ST_OK) {
            if (!warned++)
                log_warn("key=%s msg=\"cannot list for DNS: %s; retrying\"", m->prefix, e.msg);
            if (nap(d, backoff))
                break;
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        warned = 0;
        backoff = 200;
        map = json_object();
        for (size_t i = 0; i < res.n; i++)
            mirror_put(m, map, &res.kvs[i]);
        memset(&wo, 0, sizeof(wo));
        wo.key = m->prefix;
        wo.range_end = ETCD_PREFIX;
        wo.start_revision = res.revision + 1;
        wo.progress_notify = 1;
        etcd_range_result_release(&res);
        w = etcd_watch_create(d->etcd, &wo, on_watch, m);

        pthread_mutex_lock(&d->mu);
        json_decref(m->map);
        m->map = map;
        m->listed = 1;
        d->dirty = 1;
        m->ew = w;
        pthread_cond_broadcast(&d->cond);
        if (d->stopping)
            etcd_watch_stop(w);
        pthread_mutex_unlock(&d->mu);

        st = etcd_watch_run(w, &e);

        pthread_mutex_lock(&d->mu);
        m->ew = NULL;
        pthread_mutex_unlock(&d->mu);
        etcd_watch_destroy(w);
        if (st == ST_COMPACTED)
            continue;
        if (st != ST_OK) {
            log_warn("key=%s msg=\"watch ended: %s; listing again\"", m->prefix, e.msg);
            if (nap(d, 1000))
                break;
        }
    }
    return NULL;
}

/* --- the node's address ---------------------------------------------------------------- */

/* Read the node key's node_number (once known, kept: a node's number never changes). */
static int learn_address(struct dns *d)
{
    char *key = xasprintf("/kontena/nodes/%s/%s", d->grid, d->node);
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    json_t *v;
    json_int_t n = 0;

    memset(&kv, 0, sizeof(kv));
    if (etcd_get(d->etcd, key, &kv, NULL, &e) == ST_OK) {
        v = json_loadb(kv.value ? kv.value : "", kv.value_len, 0, NULL);
        n = json_integer_value(json_object_get(v, "node_number"));
        json_decref(v);
        etcd_kv_release(&kv);
    }
    free(key);
    if (n < 1 || n > 254)
        return -1;
    pthread_mutex_lock(&d->mu);
    snprintf(d->addr, sizeof(d->addr), DNS_NODE_PREFIX "%d", (int)n);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

int dns_server_address(struct dns *d, char out[16])
{
    int known;

    pthread_mutex_lock(&d->mu);
    known = d->addr[0] != '\0';
    pthread_mutex_unlock(&d->mu);
    if (!known && learn_address(d) != 0)
        return -1;
    pthread_mutex_lock(&d->mu);
    snprintf(out, 16, "%s", d->addr);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

/* --- dnsmasq --------------------------------------------------------------------------- */

/* A dnsmasq left by an agent that died: its pid file names it and its command line carries
 * our hosts directory. Ended, so ours can bind. */
static void kill_leftover(struct dns *d)
{
    FILE *f = fopen(d->pid_file, "r");
    char path[64], cmd[4096], *want;
    long pid = 0;
    size_t n = 0;

    if (!f)
        return;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1)
        return;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    if ((f = fopen(path, "r"))) {
        n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    want = xasprintf("--hostsdir=%s ", d->hosts_dir);
    if (n && strstr(cmd, want)) {
        log_warn("pid=%ld msg=\"stopping a dnsmasq left by an earlier agent\"", pid);
        kill((pid_t)pid, SIGTERM);
        for (int i = 0; i < 50 && kill((pid_t)pid, 0) == 0; i++)
            time_sleep_ms(20);
    }
    free(want);
}

/* The executable of cmd: itself when it has a '/', else the first in PATH. Fresh or NULL. */
static char *find_exe(const char *cmd)
{
    const char *path = getenv("PATH");

    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 ? xstrdup(cmd) : NULL;
    for (const char *p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        char *f = xasprintf("%.*s/%s", (int)n, p, cmd);
        if (n && access(f, X_OK) == 0)
            return f;
        free(f);
        p += n + (p[n] == ':');
    }
    return NULL;
}

/* fork + exec with PR_SET_PDEATHSIG: dnsmasq ends with the thread that started it (the
 * writer, which lives as long as the module), so an agent that crashes or is killed does not
 * leave it behind. 0, or an errno. */
static int spawn(const char *cmd, char *const args[], pid_t *pid)
{
    char *exe = find_exe(cmd);
    pid_t parent = getpid(), p;

    if (!exe)
        return ENOENT;
    p = fork();
    if (p == 0) {
        /* only async-signal-safe calls here: other threads may hold locks. The agent
         * blocks SIGTERM/SIGINT (it sigwaits) and ignores SIGPIPE: dnsmasq must not
         * inherit that, or neither our SIGTERM nor the parent-death signal would end it. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        execve(exe, args, environ);
        _exit(127);
    }
    free(exe);
    if (p < 0)
        return errno;
    *pid = p;
    return 0;
}

static void start_dnsmasq(struct dns *d)
{
    char *args[16], addr[16];
    int n = 0;
    pid_t pid = -1;
    int rc;

    pthread_mutex_lock(&d->mu);
    snprintf(addr, sizeof(addr), "%s", d->listen ? d->listen : d->addr);
    pthread_mutex_unlock(&d->mu);
    args[n++] = xstrdup(d->dnsmasq);
    args[n++] = xstrdup("--keep-in-foreground");
    args[n++] = xstrdup("--conf-file=/dev/null");
    args[n++] = xstrdup("--no-hosts");
    args[n++] = xasprintf("--hostsdir=%s", d->hosts_dir);
    args[n++] = xasprintf("--listen-address=%s", addr);
    args[n++] = xstrdup("--bind-dynamic");
    args[n++] = xasprintf("--port=%d", d->port);
    args[n++] = xasprintf("--local=/%s." DNS_DOMAIN "/", d->grid);
    args[n++] = xstrdup("--domain-needed");
    args[n++] = xasprintf("--resolv-file=%s", d->resolv);
    args[n++] = xasprintf("--pid-file=%s", d->pid_file);
    args[n++] = xstrdup("--log-facility=-");
    args[n] = NULL;
    rc = spawn(d->dnsmasq, args, &pid);
    if (rc != 0) {
        log_error("cmd=%s msg=\"cannot start dnsmasq: %s\"", d->dnsmasq, strerror(rc));
        d->child = 0;
    } else {
        log_info("pid=%d address=%s port=%d dir=%s msg=\"dnsmasq started\"", (int)pid, addr,
                 d->port, d->hosts_dir);
        d->child = pid;
    }
    d->child_started = time_mono_ms();
    for (int i = 0; i < n; i++)
        free(args[i]);
}

static void supervise(struct dns *d)
{
    int64_t now = time_mono_ms();
    int status;

    if (d->child > 0) {
        pid_t r = waitpid(d->child, &status, WNOHANG);
        if (r == 0)
            return;
        if (r == d->child)
            log_warn("pid=%d msg=\"dnsmasq %s %d; restarting\"", (int)d->child,
                     WIFEXITED(status) ? "exited with" : "killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        if (now - d->child_started >= STABLE_MS)
            d->backoff = 0;
        d->backoff =
            d->backoff ? (d->backoff * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : d->backoff * 2) : 500;
        d->next_start = now + d->backoff;
        d->child = 0;
    }
    if (d->child == 0 && now >= d->next_start) {
        char addr[16];
        if (!d->listen && dns_server_address(d, addr) != 0) {
            d->next_start = now + 1000; /* the node key is not there yet */
            return;
        }
        start_dnsmasq(d);
        if (d->child == 0)
            d->next_start = now + 5000;
    }
}

static void stop_dnsmasq(struct dns *d)
{
    int status;

    if (d->child <= 0)
        return;
    kill(d->child, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(d->child, &status, WNOHANG) == d->child) {
            d->child = 0;
            break;
        }
        time_sleep_ms(20);
    }
    if (d->child > 0) {
        kill(d->child, SIGKILL);
        waitpid(d->child, &status, 0);
        d->child = 0;
    }
    log_info("msg=\"dnsmasq stopped\"");
}

static void *writer_main(void *arg)
{
    struct dns *d = arg;

    kill_leftover(d);
    for (;;) {
        struct timespec ts = time_deadline(CLOCK_MONOTONIC, TICK_MS);
        json_t *snap[W_COUNT] = {NULL, NULL, NULL};
        int stopping, ready = 1;

        pthread_mutex_lock(&d->mu);
        while (!d->stopping && !d->dirty &&
               pthread_cond_timedwait(&d->cond, &d->mu, &ts) != ETIMEDOUT)
            ;
        stopping = d->stopping;
        for (int i = 0; i < W_COUNT; i++)
            ready = ready && d->m[i].listed;
        if (!stopping && d->dirty && ready) {
            d->dirty = 0;
            for (int i = 0; i < W_COUNT; i++)
                snap[i] = json_deep_copy(d->m[i].map);
        }
        pthread_mutex_unlock(&d->mu);
        if (stopping)
            break;
        if (snap[0]) {
            json_t *files =
                dns_hosts_files(d->grid, snap[W_INSTANCES], snap[W_OBSERVED], snap[W_STACKS]);
            write_files(d, files);
            json_decref(files);
            for (int i = 0; i < W_COUNT; i++)
                json_decref(snap[i]);
        }
        supervise(d);
    }
    stop_dnsmasq(d);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char *p = xstrdup(path);
    int rc = 0;

    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = -1;
    if (rc == 0 && chmod(p, 0755) != 0) /* dnsmasq, run as another user, lists it */
        rc = -1;
    free(p);
    return rc;
}

struct dns *dns_start(const struct dns_opts *o, struct err *e)
{
    static const char *const kinds[W_COUNT] = {"instances", "observed", "stacks"};
    struct etcd_opts eo;
    pthread_condattr_t ca;
    struct dns *d;
    struct in_addr a;

    if (!o->etcd_endpoints || !*o->etcd_endpoints) {
        err_set(e, ST_INVALID, "DNS needs etcd endpoints");
        return NULL;
    }
    if (!label_ok(o->grid) || !o->node || !*o->node || strchr(o->node, '/')) {
        err_set(e, ST_INVALID, "DNS needs a grid name usable in a DNS name and a node name");
        return NULL;
    }
    if (o->listen_address && inet_pton(AF_INET, o->listen_address, &a) != 1) {
        err_set(e, ST_INVALID, "bad DNS listen address '%s': want an IPv4 address",
                o->listen_address);
        return NULL;
    }
    if (o->port < 0 || o->port > 65535) {
        err_set(e, ST_INVALID, "bad DNS port %d", o->port);
        return NULL;
    }
    d = xcalloc(1, sizeof(*d));
    d->grid = xstrdup(o->grid);
    d->node = xstrdup(o->node);
    d->listen = o->listen_address ? xstrdup(o->listen_address) : NULL;
    d->port = o->port ? o->port : 53;
    d->run_dir =
        o->run_dir ? xstrdup(o->run_dir) : xasprintf("/run/kontena/dns/%s/%s", o->grid, o->node);
    d->hosts_dir = xasprintf("%s/hosts", d->run_dir);
    d->pid_file = xasprintf("%s/dnsmasq.pid", d->run_dir);
    d->dnsmasq = xstrdup(o->dnsmasq ? o->dnsmasq : "dnsmasq");
    d->resolv = xstrdup(o->resolv_file ? o->resolv_file : "/etc/resolv.conf");
    d->written = json_object();
    if (mkdirs(d->hosts_dir) != 0) {
        err_set(e, ST_IO, "cannot make the DNS hosts directory %s: %s", d->hosts_dir,
                strerror(errno));
        dns_stop(d);
        return NULL;
    }
    memset(&eo, 0, sizeof(eo));
    eo.endpoints = o->etcd_endpoints;
    d->etcd = etcd_create(&eo, e);
    if (!d->etcd) {
        dns_stop(d);
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < W_COUNT; i++) {
        d->m[i].d = d;
        d->m[i].prefix = xasprintf("/kontena/%s/%s/", kinds[i], o->grid);
        d->m[i].depth = i == W_STACKS ? 1 : 2;
        d->m[i].map = json_object();
    }
    d->started = 1;
    for (int i = 0; i < W_COUNT; i++)
        if (pthread_create(&d->m[i].t, NULL, mirror_main, &d->m[i]) != 0)
            BUG_ON(1);
    if (pthread_create(&d->t_writer, NULL, writer_main, d) != 0)
        BUG_ON(1);
    log_info("grid=%s node=%s dir=%s msg=\"serving the grid's names with dnsmasq\"", d->grid,
             d->node, d->hosts_dir);
    return d;
}

void dns_stop(struct dns *d)
{
    if (!d)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stopping = 1;
        for (int i = 0; i < W_COUNT; i++)
            if (d->m[i].ew)
                etcd_watch_stop(d->m[i].ew);
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->mu);
        for (int i = 0; i < W_COUNT; i++)
            pthread_join(d->m[i].t, NULL);
        pthread_join(d->t_writer, NULL);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->mu);
    }
    for (int i = 0; i < W_COUNT; i++) {
        json_decref(d->m[i].map);
        free(d->m[i].prefix);
    }
    etcd_destroy(d->etcd);
    json_decref(d->written);
    free(d->grid);
    free(d->node);
    free(d->listen);
    free(d->run_dir);
    free(d->hosts_dir);
    free(d->pid_file);
    free(d->dnsmasq);
    free(d->resolv);
    free(d);
}
