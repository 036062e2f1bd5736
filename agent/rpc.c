/* agent/rpc.c -- the master's container requests, answered by a worker thread (see rpc.h).
 *
 * Errors are answered as [1, id, {code, message}, null] with HTTP-like codes: 400 bad
 * params, 404 unknown container (or not this node's), 409 not running, 413 output too
 * large, 500 Docker trouble, 501 unknown method.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/docker.h"
#include "agent/rpc.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define LOGS_MAX_BYTES (256 * 1024)      /* newest lines kept within this many bytes */
#define EXEC_MAX_OUTPUT (256 * 1024)     /* per stream */
#define REPLY_MAX (1000 * 1000)          /* the master takes 1 MiB messages */
#define EXEC_TIMEOUT_MS 25000            /* below the master's 30 s */

struct rq {
    struct rq *next;
    json_t *msg;
};

struct agent_rpc {
    struct docker *d;
    char *node, *label_node;
    char *prefix; /* of Docker container names (--docker-name-prefix), "" by default */
    void (*send)(void *arg, const json_t *msg);
    void *send_arg;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct rq *q, **qtail;
    int stop;
};

static json_t *rpc_err(json_t *id, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);
static json_t *rpc_err(json_t *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("[i, O, {s:i, s:s}, n]", 1, id, "code", code, "message", msg);
}

static int code_of(enum status st)
{
    switch (st) {
    case ST_NOTFOUND:
        return 404;
    case ST_CONFLICT:
        return 409;
    case ST_INVALID:
        return 413;
    default:
        return 500;
    }
}

static const char *jstr_or(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= 128 && s[0] != '.' && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Inspect name and check it is this node's; NULL after setting *reply. */
static json_t *own_container(struct agent_rpc *r, json_t *id, const char *name, json_t **reply)
{
    struct err e = ERR_INIT;
    json_t *c = NULL;
    const char *lbl;
    enum status st;

    if (!name_ok(name)) {
        *reply = rpc_err(id, 404, "Container %s/%s not found", r->node, name ? name : "");
        return NULL;
    }
    {
        char *dname = xasprintf("%s%s", r->prefix, name);
        st = docker_container_inspect(r->d, dname, &c, &e);
        free(dname);
    }
    if (st == ST_NOTFOUND) {
        *reply = rpc_err(id, 404, "Container %s/%s not found", r->node, name);
        return NULL;
    }
    if (st != ST_OK) {
        *reply = rpc_err(id, 500, "cannot inspect container %s: %s", name, e.msg);
        return NULL;
    }
    lbl = json_string_value(
        json_object_get(json_object_get(json_object_get(c, "Config"), "Labels"), "io.kontena.node"));
    if (!lbl || strcmp(lbl, r->node) != 0) {
        json_decref(c);
        *reply = rpc_err(id, 404, "Container %s/%s not found", r->node, name);
        return NULL;
    }
    return c;
}

static json_t *do_list(struct agent_rpc *r, json_t *id)
{
    const char *labels[] = {r->label_node, NULL};
    struct err e = ERR_INIT;
    json_t *out = NULL;
    enum status st = docker_container_list(r->d, labels, 1, &out, &e);

    if (st != ST_OK)
        return rpc_err(id, 500, "cannot list containers: %s", e.msg);
    return json_pack("[i, O, n, o]", 1, id, out);
}

struct logs_acc {
    json_t *lines;
    size_t bytes;
    int truncated;
};

static int on_log(void *arg, const struct docker_log_line *l)
{
    struct logs_acc *a = arg;
    json_t *x = json_pack("{s:s, s:s, s:s%}", "stream", l->stream == DOCKER_STDERR ? "stderr" : "stdout",
                          "time", l->time ? l->time : "", "line", l->text, l->len);

    if (!x) /* not UTF-8: keep it readable */
        x = json_pack("{s:s, s:s, s:s}", "stream",
                      l->stream == DOCKER_STDERR ? "stderr" : "stdout", "time",
                      l->time ? l->time : "", "line", "(line is not UTF-8)");
    if (!x)
        return 0;
    json_array_append_new(a->lines, x);
    a->bytes += l->len + 64;
    while (a->bytes > LOGS_MAX_BYTES && json_array_size(a->lines) > 1) {
        json_t *first = json_array_get(a->lines, 0);
        a->bytes -= json_string_length(json_object_get(first, "line")) + 64;
        json_array_remove(a->lines, 0);
        a->truncated = 1;
    }
    return 0;
}

static json_t *do_logs(struct agent_rpc *r, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_array_get(params, 0));
    json_t *o = json_array_get(params, 1), *c, *reply = NULL;
    struct docker_logs_opts lo;
    struct logs_acc a = {json_array(), 0, 0};
    struct err e = ERR_INIT;
    enum status st;

    c = own_container(r, id, name, &reply);
    if (!c) {
        json_decref(a.lines);
        return reply;
    }
    memset(&lo, 0, sizeof(lo));
    lo.tail = (long)json_integer_value(json_object_get(o, "tail"));
    if (lo.tail < 0)
        lo.tail = 0;
    lo.since = json_integer_value(json_object_get(o, "since"));
    if (lo.since < 0)
        lo.since = 0;
    lo.tty = json_is_true(json_object_get(json_object_get(c, "Config"), "Tty"));
    st = docker_container_logs(r->d, jstr_or(c, "Id", name), &lo, on_log, &a, &e);
    if (st != ST_OK)
        reply = rpc_err(id, code_of(st), "cannot read the logs of %s: %s", name, e.msg);
    else
        reply = json_pack("[i, O, n, {s:s, s:o, s:b}]", 1, id, "name", name, "lines",
                          json_incref(a.lines), "truncated", a.truncated);
    json_decref(a.lines);
    json_decref(c);
    return reply;
}

static json_t *do_exec(struct agent_rpc *r, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_array_get(params, 0));
    json_t *cmd = json_array_get(params, 1), *o = json_array_get(params, 2), *c, *x,
           *reply = NULL;
    size_t i, n = json_array_size(cmd);
    const char **argv;
    char *joined = NULL, *cid = NULL;
    struct docker_exec_opts eo;
    struct docker_exec_result res = {0};
    struct err e = ERR_INIT;
    enum status st;

    if (!json_is_array(cmd) || n == 0 || n > 1000)
        return rpc_err(id, 400, "cmd must be a non-empty array of strings");
    json_array_foreach(cmd, i, x) if (!json_is_string(x)) return rpc_err(
        id, 400, "cmd must be a non-empty array of strings");
    c = own_container(r, id, name, &reply);
    if (!c)
        return reply;
    cid = xstrdup(jstr_or(c, "Id", name));
    json_decref(c);
    argv = xcalloc(n + 4, sizeof(*argv));
    if (json_is_true(json_object_get(o, "shell"))) {
        struct buf b;
        buf_init(&b, 1 << 20);
        json_array_foreach(cmd, i, x)
        {
            if ((i && buf_append(&b, " ", 1) != ST_OK) ||
                buf_append(&b, json_string_value(x), json_string_length(x)) != ST_OK)
                break;
        }
        joined = buf_take(&b);
        buf_release(&b);
        argv[0] = "/bin/sh";
        argv[1] = "-c";
        argv[2] = joined ? joined : "";
    } else {
        json_array_foreach(cmd, i, x) argv[i] = json_string_value(x);
    }
    memset(&eo, 0, sizeof(eo));
    eo.cmd = argv;
    eo.timeout_ms = EXEC_TIMEOUT_MS;
    eo.max_output = EXEC_MAX_OUTPUT;
    st = docker_exec(r->d, cid, &eo, &res, &e);
    if (st == ST_CONFLICT)
        reply = rpc_err(id, 409, "Container %s/%s is not running", r->node, name);
    else if (st == ST_INVALID)
        reply = rpc_err(id, 413, "output of the command is over %d bytes", EXEC_MAX_OUTPUT);
    else if (st == ST_RETRY)
        reply = rpc_err(id, 503, "the command did not finish within %d s", EXEC_TIMEOUT_MS / 1000);
    else if (st != ST_OK)
        reply = rpc_err(id, 500, "cannot exec in %s: %s", name, e.msg);
    else {
        /* Not UTF-8 would make an invalid message: say so instead. */
        json_t *so = json_stringn(res.out ? res.out : "", res.out_len);
        json_t *se = json_stringn(res.err ? res.err : "", res.err_len);
        if (!so)
            so = json_string("(stdout is not UTF-8)\n");
        if (!se)
            se = json_string("(stderr is not UTF-8)\n");
        reply = json_pack("[i, O, n, {s:i, s:o, s:o}]", 1, id, "exit_code", res.exit_code,
                          "stdout", so, "stderr", se);
    }
    docker_exec_result_release(&res);
    free(joined);
    free(cid);
    free(argv);
    return reply;
}

json_t *agent_rpc_handle(struct agent_rpc *r, const json_t *msg)
{
    json_t *id = json_array_get(msg, 1), *params = json_array_get(msg, 3), *reply;
    const char *method = json_string_value(json_array_get(msg, 2));

    if (!json_is_integer(id))
        return NULL;
    if (!method)
        reply = rpc_err(id, 400, "method must be a string");
    else if (!strcmp(method, "/containers/list"))
        reply = do_list(r, id);
    else if (!strcmp(method, "/containers/inspect")) {
        reply = NULL;
        json_t *c = own_container(r, id, json_string_value(json_array_get(params, 0)), &reply);
        if (c)
            reply = json_pack("[i, O, n, o]", 1, id, c);
    } else if (!strcmp(method, "/containers/logs"))
        reply = do_logs(r, id, params);
    else if (!strcmp(method, "/containers/exec"))
        reply = do_exec(r, id, params);
    else
        reply = rpc_err(id, 501, "service not implemented");
    if (reply) {
        char *s = json_dumps(reply, JSON_COMPACT);
        size_t len = s ? strlen(s) : 0;
        free(s);
        if (len > REPLY_MAX) {
            json_decref(reply);
            reply = rpc_err(id, 413, "the answer is over %d bytes", REPLY_MAX);
        }
    }
    return reply;
}

static void *rpc_main(void *arg)
{
    struct agent_rpc *r = arg;

    for (;;) {
        struct rq *q;
        json_t *reply;
        pthread_mutex_lock(&r->mu);
        while (!r->q && !r->stop)
            pthread_cond_wait(&r->cond, &r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        q = r->q;
        r->q = q->next;
        if (!r->q)
            r->qtail = &r->q;
        pthread_mutex_unlock(&r->mu);
        reply = agent_rpc_handle(r, q->msg);
        if (reply)
            r->send(r->send_arg, reply);
        json_decref(reply);
        json_decref(q->msg);
        free(q);
    }
    return NULL;
}

struct agent_rpc *agent_rpc_start(const char *docker_socket, const char *docker_name_prefix,
                                  const char *node, void (*send)(void *arg, const json_t *msg), void *send_arg,
                                  struct err *e)
{
    struct agent_rpc *r = xcalloc(1, sizeof(*r));
    struct docker_opts o;

    memset(&o, 0, sizeof(o));
    o.socket_path = docker_socket;
    r->d = docker_create(&o, e);
    if (!r->d) {
        free(r);
        return NULL;
    }
    r->node = xstrdup(node);
    r->prefix = xstrdup(docker_name_prefix ? docker_name_prefix : "");
    r->label_node = xasprintf("io.kontena.node=%s", node);
    r->send = send;
    r->send_arg = send_arg;
    r->qtail = &r->q;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, rpc_main, r) != 0) {
        err_set(e, ST_IO, "cannot start the agent's request thread");
        agent_rpc_free(r);
        return NULL;
    }
    r->started = 1;
    return r;
}

void agent_rpc_submit(struct agent_rpc *r, const json_t *msg)
{
    struct rq *q;

    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (!r->stop) {
        q = xcalloc(1, sizeof(*q));
        q->msg = json_incref((json_t *)msg);
        *r->qtail = q;
        r->qtail = &q->next;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->mu);
}

void agent_rpc_stop(struct agent_rpc *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    docker_cancel(r->d);
    if (r->started)
        pthread_join(r->thread, NULL);
    r->started = 0;
}

void agent_rpc_free(struct agent_rpc *r)
{
    if (!r)
        return;
    agent_rpc_stop(r);
    for (struct rq *q = r->q, *n; q; q = n) {
        n = q->next;
        json_decref(q->msg);
        free(q);
    }
    docker_destroy(r->d);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r->node);
    free(r->label_node);
    free(r->prefix);
    free(r);
}
