#include "tests/support/platform.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_watch.h"
#include "tests/support/agent_proc.h"
#include "tests/support/docker_env.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

const char *const platform_ctl_names[PLATFORM_CTL_MAX] = {"scheduler", "ipam", "rescheduler",
                                                          "health", "lbconfig"};

#define MAX_CLI_ARGS 48

char *platform_name(const char *what)
{
    const char *id = docker_env_run_id();
    size_t n = strlen(id);

    return xasprintf("%s-%s", what, n > 8 ? id + n - 8 : id);
}

char *platform_write_file(struct platform *p, const char *file, const char *text)
{
    char *path = xasprintf("%s/%s", p->api.dir, file);
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
        fprintf(stderr, "platform: cannot write %s: %s\n", path, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

static int cli_argv(struct platform *p, const char *const args[])
{
    FREE_AND_NULL(p->out);
    FREE_AND_NULL(p->err);
    return api_cli_env(&p->api, NULL, NULL, &p->out, &p->err, args);
}

int platform_cli(struct platform *p, ...)
{
    const char *args[MAX_CLI_ARGS];
    size_t n = 0;
    va_list ap;
    const char *a;

    va_start(ap, p);
    while ((a = va_arg(ap, const char *)) && n < MAX_CLI_ARGS - 1)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return cli_argv(p, args);
}

/* --- etcd reads ----------------------------------------------------------------------- */

static json_t *get_json(struct platform *p, const char *key, int *missing)
{
    struct etcd_kv kv;
    struct err e = ERR_INIT;
    enum status st = etcd_get(p->ec, key, &kv, NULL, &e);
    json_t *v;

    *missing = st == ST_NOTFOUND;
    if (st != ST_OK) {
        if (st != ST_NOTFOUND)
            fprintf(stderr, "platform: etcd get %s: %s\n", key, e.msg);
        return NULL;
    }
    v = json_loadb(kv.value, kv.value_len, 0, NULL);
    etcd_kv_release(&kv);
    return v;
}

int platform_node_online(struct platform *p, const char *name)
{
    char *key = xasprintf("/kontena/node_status/%s/%s", p->grid, name);
    int missing;
    json_t *v = get_json(p, key, &missing);

    free(key);
    if (v) {
        json_decref(v);
        return 1;
    }
    return missing ? 0 : -1;
}

int platform_wait_node(struct platform *p, const char *name, int want, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;

    for (;;) {
        if (platform_node_online(p, name) == want)
            return 0;
        if (time_mono_ms() >= deadline) {
            fprintf(stderr, "platform: node %s did not go %s within %d ms\n", name,
                    want ? "online" : "offline", timeout_ms);
            return -1;
        }
        time_sleep_ms(100);
    }
}

static int stack_matches(const json_t *v, const char *stack)
{
    const json_t *s = json_object_get(v, "stack");
    const char *have = json_string_value(s);

    if (!stack || !strcmp(stack, "null"))
        return !have || !strcmp(have, "null");
    return have && !strcmp(have, stack);
}

json_t *platform_instances(struct platform *p, const char *stack, const char *service)
{
    struct etcd_range_opts ro = {.range_end = ETCD_PREFIX};
    struct etcd_range_result r;
    struct err e = ERR_INIT;
    char *prefix = xasprintf("/kontena/instances/%s/", p->grid);
    size_t plen = strlen(prefix);
    json_t *out;

    if (etcd_range(p->ec, prefix, &ro, &r, &e) != ST_OK) {
        fprintf(stderr, "platform: etcd range %s: %s\n", prefix, e.msg);
        free(prefix);
        return NULL;
    }
    out = json_array();
    for (size_t i = 0; i < r.n; i++) {
        const char *rest = r.kvs[i].key + plen, *slash = strchr(rest, '/');
        json_t *v = json_loadb(r.kvs[i].value, r.kvs[i].value_len, 0, NULL), *obs, *o;
        char *node, *okey;
        int missing;

        if (!v || !slash || !stack_matches(v, stack) ||
            strcmp(json_string_value(json_object_get(v, "service")) ?: "", service) != 0) {
            json_decref(v);
            continue;
        }
        node = xasprintf("%.*s", (int)(slash - rest), rest);
        okey = xasprintf("/kontena/observed/%s/%s/%s", p->grid, node, slash + 1);
        obs = get_json(p, okey, &missing);
        o = json_pack("{s:s, s:s, s:O*, s:O*, s:O*, s:O*, s:o}", "node", node, "container",
                      slash + 1, "instance_number", json_object_get(v, "instance_number"),
                      "revision", json_object_get(v, "revision"), "desired_state",
                      json_object_get(v, "desired_state"), "overlay_cidr",
                      json_object_get(v, "overlay_cidr"), "observed", obs ? obs : json_null());
        if (o)
            json_array_append_new(out, o);
        json_decref(v);
        free(node);
        free(okey);
    }
    etcd_range_result_release(&r);
    free(prefix);
    return out;
}

int platform_count_running(const json_t *list)
{
    size_t i;
    json_t *it;
    int n = 0;

    json_array_foreach(list, i, it)
    {
        const json_t *obs = json_object_get(it, "observed");
        const char *want = json_string_value(json_object_get(it, "desired_state"));
        const char *state = json_string_value(json_object_get(obs, "state"));

        if (want && !strcmp(want, "running") && state && !strcmp(state, "running") &&
            json_integer_value(json_object_get(obs, "revision")) ==
                json_integer_value(json_object_get(it, "revision")))
            n++;
    }
    return n;
}

int platform_running(struct platform *p, const char *stack, const char *service)
{
    json_t *l = platform_instances(p, stack, service);
    int n;

    if (!l)
        return -1;
    n = platform_count_running(l);
    json_decref(l);
    return n;
}

json_t *platform_wait_running(struct platform *p, const char *stack, const char *service, int count,
                              int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;

    for (;;) {
        json_t *l = platform_instances(p, stack, service);

        if (l && (int)json_array_size(l) == count && platform_count_running(l) == count)
            return l;
        if (time_mono_ms() >= deadline) {
            char *s = l ? json_dumps(l, JSON_INDENT(1)) : NULL;
            fprintf(stderr, "platform: %s/%s: not %d instances running within %d ms; have: %s\n",
                    stack ? stack : "null", service, count, timeout_ms, s ? s : "(unreadable)");
            free(s);
            json_decref(l);
            return NULL;
        }
        json_decref(l);
        time_sleep_ms(200);
    }
}

/* --- Docker --------------------------------------------------------------------------- */

/* The containers carrying every label of the grid plus (k, v) pairs (NULL-valued pairs are
 * skipped): a JSON array, or NULL after saying why. */
static json_t *docker_list(CURL *h, struct platform *p, int all, const char *k1, const char *v1,
                           const char *k2, const char *v2)
{
    json_t *labels = json_array(), *f, *list = NULL;
    char *fs, *q, *path;
    long status;

    json_array_append_new(labels, json_sprintf("io.kontena.grid=%s", p->grid));
    if (v1)
        json_array_append_new(labels, json_sprintf("%s=%s", k1, v1));
    if (v2)
        json_array_append_new(labels, json_sprintf("%s=%s", k2, v2));
    f = json_pack("{s:o}", "label", labels);
    fs = json_dumps(f, JSON_COMPACT);
    q = curl_easy_escape(h, fs, 0);
    path = xasprintf("/containers/json?all=%d&filters=%s", all, q);
    status = docker_env_call(h, "GET", path, &list);
    if (status != 200 || !json_is_array(list)) {
        fprintf(stderr, "platform: Docker container list failed (HTTP %ld)\n", status);
        json_decref(list);
        list = NULL;
    }
    free(path);
    curl_free(q);
    free(fs);
    json_decref(f);
    return list;
}

int platform_docker_count(struct platform *p, const char *stack, const char *service,
                          int running_only)
{
    CURL *h = curl_easy_init();
    json_t *list;
    int n = -1;

    if (!h)
        return -1;
    list =
        docker_list(h, p, !running_only, "io.kontena.service", service, "io.kontena.stack", stack);
    if (list)
        n = (int)json_array_size(list);
    json_decref(list);
    curl_easy_cleanup(h);
    return n;
}

int platform_remove_node_containers(struct platform *p, const char *name)
{
    CURL *h = curl_easy_init();
    json_t *list, *c;
    size_t i;
    int n = -1;

    if (!h)
        return -1;
    list = docker_list(h, p, 1, "io.kontena.node", name, NULL, NULL);
    if (list) {
        n = 0;
        json_array_foreach(list, i, c)
        {
            const char *id = json_string_value(json_object_get(c, "Id"));
            char *path;
            if (!id)
                continue;
            path = xasprintf("/containers/%s?force=1&v=1", id);
            if (docker_env_call(h, "DELETE", path, NULL) / 100 == 2)
                n++;
            free(path);
        }
    }
    json_decref(list);
    curl_easy_cleanup(h);
    return n;
}

/* --- processes ------------------------------------------------------------------------ */

int platform_agent_start(struct platform *p, int i)
{
    struct platform_agent *a = &p->agents[i];
    char *bin = xasprintf("%s/kontena-agent", KONTENA_BIN_DIR);
    const char *argv[64];
    char *prefix = NULL;
    int n = 0;

    if (a->pid > 0) {
        free(bin);
        return 0;
    }
    argv[n++] = bin;
    argv[n++] = "--uri";
    argv[n++] = p->agents_uri;
    argv[n++] = "--token";
    argv[n++] = p->grid_token;
    argv[n++] = "--ca-cert";
    argv[n++] = p->pem;
    argv[n++] = "--node-name";
    argv[n++] = a->name;
    argv[n++] = "--etcd-endpoints";
    argv[n++] = p->etcd.endpoint;
    argv[n++] = "--docker-socket";
    argv[n++] = docker_env_socket();
    argv[n++] = "--backoff-max";
    argv[n++] = "1000";
    argv[n++] = "--resync-interval";
    argv[n++] = "5000";
    /* All agents share the machine's dockerd: a moved instance keeps its name. */
    argv[n++] = "--docker-name-prefix";
    argv[n++] = prefix = xasprintf("%s.", a->name);
    for (size_t k = 0; p->opts.agent_args && p->opts.agent_args[k] && n < 63; k++)
        argv[n++] = p->opts.agent_args[k];
    argv[n] = NULL;
    a->pid = proc_spawn(argv, NULL, a->log);
    free(bin);
    free(prefix);
    if (a->pid <= 0) {
        a->pid = 0;
        fprintf(stderr, "platform: cannot start kontena-agent %s\n", a->name);
        return -1;
    }
    return 0;
}

int platform_agent_stop(struct platform *p, int i, int sig)
{
    struct platform_agent *a = &p->agents[i];

    if (a->pid <= 0)
        return -1;
    proc_stop(a->pid, sig, 5000);
    a->pid = 0;
    return 0;
}

static int ctl_index(const char *name)
{
    for (int i = 0; i < PLATFORM_CTL_MAX; i++)
        if (!strcmp(platform_ctl_names[i], name))
            return i;
    return -1;
}

int platform_ctl_start(struct platform *p, const char *name)
{
    int i = ctl_index(name);
    const char *const *extra;

    if (i < 0) {
        fprintf(stderr, "platform: no controller '%s'\n", name);
        return -1;
    }
    if (p->ctl[i].pid > 0)
        return 0;
    ctl_proc_cleanup(&p->ctl[i]);
    extra = p->opts.ctl_args ? p->opts.ctl_args(name, p->opts.ctl_arg) : NULL;
    if (ctl_proc_start(&p->ctl[i], p->api.dir, name, 1, p->etcd.endpoint, extra) != 0) {
        fprintf(stderr, "platform: kontena-%s did not become healthy (is it built in %s?)\n", name,
                KONTENA_BIN_DIR);
        return -1;
    }
    return 0;
}

int platform_ctl_stop(struct platform *p, const char *name, int sig)
{
    int i = ctl_index(name);

    if (i < 0 || p->ctl[i].pid <= 0)
        return -1;
    ctl_proc_stop(&p->ctl[i], sig);
    return 0;
}

/* --- load balancers -------------------------------------------------------------------- */

char *platform_lb_image(void)
{
    const char *given = getenv("KONTENA_TEST_LB_IMAGE");

    if (given && *given)
        return xstrdup(given);
    char *script = xasprintf("%s/hack/lb-image.sh", docker_env_source_dir());
    char *tag = xasprintf("%s-%d", docker_env_run_id(), (int)getpid());
    char *image = xasprintf("kontena/lb:%s", tag);
    char *e_bin = xasprintf("KONTENA_BIN_DIR=%s", KONTENA_BIN_DIR);
    char *e_tag = xasprintf("KONTENA_LB_IMAGE=%s", image);
    const char *env[] = {e_bin, e_tag, NULL};
    const char *argv[] = {script, NULL};
    char *out = NULL, *err = NULL;
    int rc = proc_run(argv, env, NULL, &out, &err);

    if (rc != 0) {
        fprintf(stderr, "platform: %s failed (exit %d): %s%s\n", script, rc, out ? out : "",
                err ? err : "");
        FREE_AND_NULL(image);
    }
    free(out);
    free(err);
    free(script);
    free(tag);
    free(e_bin);
    free(e_tag);
    return image;
}

void platform_lb_image_remove(const char *image)
{
    const char *argv[] = {"docker", "rmi", "-f", image, NULL};
    const char *given = getenv("KONTENA_TEST_LB_IMAGE");

    if (image && !(given && !strcmp(given, image)))
        (void)proc_run(argv, NULL, NULL, NULL, NULL);
}

int platform_wait_http(const char *url, const char *host, long want, const char *prefix,
                       int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    char *hdr = host ? xasprintf("Host: %s", host) : NULL;

    for (;;) {
        struct http_reply r = {0};
        int done;

        http_do("GET", url, NULL, NULL, 0, hdr, &r);
        done =
            r.status == want && (!prefix || (r.body && !strncmp(r.body, prefix, strlen(prefix))));
        if (done || time_mono_ms() >= deadline) {
            if (!done)
                fprintf(stderr,
                        "platform: GET %s%s%s: not %ld%s%s within %d ms; last: HTTP %ld %.300s\n",
                        url, host ? " Host " : "", host ? host : "", want,
                        prefix ? " starting with " : "", prefix ? prefix : "", timeout_ms, r.status,
                        r.body ? r.body : "");
            http_reply_release(&r);
            free(hdr);
            return done ? 0 : -1;
        }
        http_reply_release(&r);
        time_sleep_ms(100);
    }
}

char *platform_tcp_read(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct buf b;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int64_t deadline = time_mono_ms() + 2000;

    buf_init(&b, 64 * 1024);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        buf_release(&b);
        return NULL;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - time_mono_ms();
        char chunk[512];
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        n = read(fd, chunk, sizeof(chunk));
        if (n <= 0 || buf_append(&b, chunk, (size_t)n) != ST_OK)
            break;
    }
    close(fd);
    return buf_take(&b);
}

struct platform_health_log {
    struct etcd *ec;
    struct etcd_watch *w;
    pthread_t th;
    pthread_mutex_t mu;
    json_t *first; /* container id -> {"healthy": [checked µs, seen µs], "unhealthy": ...} */
};

static int on_observed(void *arg, const struct etcd_watch_msg *m)
{
    struct platform_health_log *h = arg;

    if (m->kind != ETCD_WATCH_EVENTS)
        return 0;
    for (size_t i = 0; i < m->n_events; i++) {
        const struct etcd_event *ev = &m->events[i];
        json_t *v, *row;
        const char *id, *st, *at;

        if (ev->type != ETCD_EVENT_PUT)
            continue;
        v = json_loadb(ev->kv.value, ev->kv.value_len, 0, NULL);
        id = json_string_value(json_object_get(v, "container_id"));
        st = json_string_value(json_object_get(json_object_get(v, "health"), "status"));
        at = json_string_value(json_object_get(json_object_get(v, "health"), "checked_at"));
        if (id && st && at && (!strcmp(st, "healthy") || !strcmp(st, "unhealthy"))) {
            pthread_mutex_lock(&h->mu);
            row = json_object_get(h->first, id);
            if (!row) {
                row = json_object();
                json_object_set_new(h->first, id, row);
            }
            if (!json_object_get(row, st))
                json_object_set_new(row, st,
                                    json_pack("[I,I]", (json_int_t)time_iso8601_parse(at),
                                              (json_int_t)time_now_us()));
            pthread_mutex_unlock(&h->mu);
        }
        json_decref(v);
    }
    return 0;
}

static void *health_main(void *arg)
{
    struct platform_health_log *h = arg;
    struct err e = ERR_INIT;

    if (etcd_watch_run(h->w, &e) != ST_OK)
        fprintf(stderr, "platform: the health watch ended: %s\n", e.msg);
    return NULL;
}

struct platform_health_log *platform_health_watch(struct platform *p)
{
    struct platform_health_log *h = xmalloc(sizeof(*h));
    struct etcd_opts eo = {.endpoints = p->etcd.endpoint};
    char *prefix = xasprintf("/kontena/observed/%s/", p->grid);
    struct etcd_watch_opts wo = {.key = prefix, .range_end = ETCD_PREFIX};
    struct err e = ERR_INIT;

    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->first = json_object();
    h->ec = etcd_create(&eo, &e);
    if (h->ec)
        h->w = etcd_watch_create(h->ec, &wo, on_observed, h);
    free(prefix);
    if (!h->w || pthread_create(&h->th, NULL, health_main, h) != 0) {
        fprintf(stderr, "platform: cannot watch the observed keys: %s\n",
                e.msg[0] ? e.msg : "no watch or thread");
        etcd_watch_destroy(h->w);
        etcd_destroy(h->ec);
        json_decref(h->first);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

int64_t platform_health_first(struct platform_health_log *h, const char *id_prefix, int healthy,
                              int64_t *seen_us)
{
    const char *id;
    json_t *row;
    int64_t v = -1;
    size_t n = strlen(id_prefix);

    pthread_mutex_lock(&h->mu);
    json_object_foreach(h->first, id, row)
    {
        if (n && !strncmp(id, id_prefix, n)) {
            json_t *t = json_object_get(row, healthy ? "healthy" : "unhealthy");
            if (t) {
                v = json_integer_value(json_array_get(t, 0));
                if (seen_us)
                    *seen_us = json_integer_value(json_array_get(t, 1));
            }
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return v;
}

void platform_health_unwatch(struct platform_health_log *h)
{
    if (!h)
        return;
    etcd_watch_stop(h->w);
    pthread_join(h->th, NULL);
    etcd_watch_destroy(h->w);
    etcd_destroy(h->ec);
    json_decref(h->first);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

json_t *platform_service_logs(struct platform *p, const char *svc)
{
    json_t *arr = json_array();
    const char *s;

    if (platform_cli(p, "service", "logs", "--tail", "10000", "-o", "json", svc, NULL) != 0)
        return arr;
    for (s = p->out; s && *s;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        json_t *e = len && *s == '{' ? json_loadb(s, len, 0, NULL) : NULL;
        if (e)
            json_array_append_new(arr, e);
        s = nl ? nl + 1 : NULL;
    }
    return arr;
}

size_t platform_wait_service_logs(struct platform *p, const char *svc, size_t n, int timeout_ms)
{
    int64_t end = time_mono_ms() + timeout_ms;
    size_t got = 0;

    while (time_mono_ms() < end) {
        json_t *a = platform_service_logs(p, svc);
        got = json_array_size(a);
        json_decref(a);
        if (got >= n)
            break;
        time_sleep_ms(300);
    }
    return got;
}

void platform_dump_logs(struct platform *p)
{
    char *path;

    if (!p->api.dir)
        return;
    path = xasprintf("%s/etcd.log", p->etcd.dir);
    proc_dump_file(path);
    free(path);
    path = xasprintf("%s/apiserver.log", p->api.dir);
    proc_dump_file(path);
    free(path);
    for (int i = 0; i < PLATFORM_CTL_MAX; i++)
        if (p->ctl[i].log)
            proc_dump_file(p->ctl[i].log);
    for (int i = 0; i < p->n_agents; i++)
        if (p->agents[i].log)
            proc_dump_file(p->agents[i].log);
}

int platform_start(struct platform *p, const struct platform_opts *o)
{
    struct etcd_opts eo = {0};
    struct err e = ERR_INIT;
    char *t;

    memset(p, 0, sizeof(*p));
    p->opts = *o;
    p->started = 1;
    if (o->agents < 0 || o->agents > PLATFORM_MAX_AGENTS) {
        fprintf(stderr, "platform: %d agents (0..%d)\n", o->agents, PLATFORM_MAX_AGENTS);
        return -1;
    }
    p->grid = docker_env_name(o->grid_suffix ? o->grid_suffix : "e2e");
    if (etcd_proc_start(&p->etcd) != 0)
        return -1;
    eo.endpoints = p->etcd.endpoint;
    p->ec = etcd_create(&eo, &e);
    if (!p->ec) {
        fprintf(stderr, "platform: etcd client: %s\n", e.msg);
        return -1;
    }
    /* ping every 500 ms, a node is lost after 1 s without a pong, status lease 3 s */
    p->agents_uri = agent_proc_env(1, 500, 1000, 3);
    if (api_proc_start(&p->api, p->etcd.endpoint, 0) != 0)
        return -1;
    p->pem = xasprintf("%s/master.pem", p->api.dir);
    if (platform_cli(p, "master", "login", "--ca-cert", p->pem, "-u", "admin", "-p",
                     p->api.admin_password, "--name", "e2e-master", p->api.url, NULL) != 0 ||
        platform_cli(p, "grid", "create", "--initial-size", "1", p->grid, NULL) != 0 ||
        platform_cli(p, "grid", "show", "--token", p->grid, NULL) != 0) {
        fprintf(stderr, "platform: CLI login/grid create failed: %s%s\n", p->out, p->err);
        return -1;
    }
    t = p->out;
    t[strcspn(t, "\r\n")] = '\0';
    p->grid_token = xstrdup(t);
    if (!o->no_controllers)
        for (int i = 0; i < PLATFORM_NCTL; i++)
            if (platform_ctl_start(p, platform_ctl_names[i]) != 0)
                return -1;
    if (o->lbconfig && platform_ctl_start(p, platform_ctl_names[PLATFORM_CTL_LBCONFIG]) != 0)
        return -1;
    p->n_agents = o->agents;
    for (int i = 0; i < o->agents; i++) {
        p->agents[i].name = xasprintf("node-%d", i + 1);
        p->agents[i].log = xasprintf("%s/agent-%s.log", p->api.dir, p->agents[i].name);
        if (platform_agent_start(p, i) != 0)
            return -1;
    }
    for (int i = 0; i < o->agents; i++)
        if (platform_wait_node(p, p->agents[i].name, 1, 20000) != 0) {
            proc_dump_file(p->agents[i].log);
            return -1;
        }
    return 0;
}

static int clean_exit(int ws, const char *what, const char *log)
{
    if (ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
        return 0;
    fprintf(stderr, "platform: %s did not exit cleanly (wait status %d)\n", what, ws);
    if (log)
        proc_dump_file(log);
    return 1;
}

int platform_stop(struct platform *p)
{
    int bad = 0;

    if (!p->started)
        return 0;
    for (int i = 0; i < PLATFORM_CTL_MAX; i++)
        if (p->ctl[i].pid > 0) {
            char *what = xasprintf("kontena-%s", platform_ctl_names[i]);
            bad += clean_exit(ctl_proc_stop(&p->ctl[i], SIGTERM), what, p->ctl[i].log);
            free(what);
        }
    for (int i = 0; i < p->n_agents; i++)
        if (p->agents[i].pid > 0) {
            int ws = proc_stop(p->agents[i].pid, SIGTERM, 10000);
            p->agents[i].pid = 0;
            bad += clean_exit(ws, p->agents[i].name, p->agents[i].log);
        }
    if (p->api.pid > 0 && api_proc_stop(&p->api) != 0) {
        fprintf(stderr, "platform: kontena-apiserver did not exit cleanly\n");
        bad++;
    }
    return bad;
}

void platform_cleanup(struct platform *p)
{
    char *label;

    if (!p->started)
        return;
    for (int i = 0; i < PLATFORM_CTL_MAX; i++)
        ctl_proc_cleanup(&p->ctl[i]);
    for (int i = 0; i < p->n_agents; i++) {
        if (p->agents[i].pid > 0)
            platform_agent_stop(p, i, SIGTERM);
        FREE_AND_NULL(p->agents[i].name);
        FREE_AND_NULL(p->agents[i].log);
    }
    if (p->grid) {
        label = xasprintf("io.kontena.grid=%s", p->grid);
        if (docker_env_remove_containers(label) < 0)
            fprintf(stderr, "platform: cannot remove the containers of grid %s\n", p->grid);
        free(label);
    }
    if (p->api.dir || p->api.pid > 0)
        (void)api_proc_cleanup(&p->api);
    etcd_destroy(p->ec);
    etcd_proc_cleanup(&p->etcd);
    FREE_AND_NULL(p->grid);
    FREE_AND_NULL(p->grid_token);
    FREE_AND_NULL(p->agents_uri);
    FREE_AND_NULL(p->pem);
    FREE_AND_NULL(p->out);
    FREE_AND_NULL(p->err);
    memset(p, 0, sizeof(*p));
}
