/* apiserver/server.c -- libmicrohttpd front end: body capping, JSON parsing, routing,
 * authentication, audit, replies.
 *
 * Each request is answered on the *last* access-handler call (after the body is read):
 * answering on the first call makes 0.9.75 close the connection (reference/c-libraries.md
 * §3). The only early answer is a Content-Length over the cap, where closing is wanted.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiserver/api.h"
#include "apiserver/store.h"
#include "common/httpmini.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xmalloc.h"
#include "common/banned.h"

#define MAX_SEGMENTS 16

static const struct route misc_routes[];
static const struct route *const route_tables[] = {
    misc_routes,  auth_routes, grid_routes,      stack_routes, service_routes, deploy_routes,
    node_routes,  log_routes,  container_routes, stats_routes, NULL};

void reply_json(struct req *r, unsigned status, json_t *j)
{
    json_decref(r->reply);
    r->status = status;
    r->reply = j ? j : json_object();
}

void reply_error(struct req *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(r, status, json_pack("{s:s}", "error", msg));
}

void reply_invalid(struct req *r, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(r, 422, json_pack("{s:{s:s}}", "error", field, msg));
}

void reply_invalid_obj(struct req *r, json_t *errors)
{
    reply_json(r, 422, json_pack("{s:o}", "error", errors));
}

void reply_status(struct req *r, enum status st, const struct err *e)
{
    const char *msg = e && e->msg[0] ? e->msg : status_name(st);

    switch (st) {
    case ST_OK:
        break;
    case ST_NOTFOUND:
        reply_error(r, 404, "%s", msg);
        break;
    case ST_CONFLICT:
        reply_error(r, 409, "%s", msg);
        break;
    case ST_INVALID:
        reply_error(r, 422, "%s", msg);
        break;
    case ST_DENIED:
        reply_error(r, 403, "%s", msg);
        break;
    case ST_RETRY:
        log_warn("path=%s msg=\"store unavailable: %s\"", r->path, msg);
        reply_error(r, 503, "Service unavailable: the store is not reachable");
        break;
    default:
        log_error("path=%s msg=\"%s\"", r->path, msg);
        reply_json(r, 500, json_pack("{s:s}", "message", "Internal server error"));
        break;
    }
}

const char *req_query(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* --- misc routes ------------------------------------------------------------------------ */

static void h_root(struct req *r, char **params)
{
    (void)params;
    reply_json(r, 200,
               json_pack("{s:s,s:s,s:s,s:s}", "name", "Kontena Master", "tagline",
                         "The Container Platform", "version", KONTENA_VERSION, "server_name",
                         r->api->cfg.server_name));
}

static void h_ping(struct req *r, char **params)
{
    int64_t n = 0;
    struct err e = ERR_INIT;
    enum status st;

    (void)params;
    st = store_count(r->api->etcd, KEY_USERS, &n, &e);
    if (st != ST_OK) {
        /* Unauthenticated route: the cause goes to the log, not to the caller. */
        log_warn("path=/v1/ping msg=\"store check failed: %s\"", e.msg);
        reply_json(r, 500, json_pack("{s:s}", "error", "Internal server error"));
        return;
    }
    reply_json(r, 200, json_pack("{s:s}", "message", "pong"));
}

static const struct route misc_routes[] = {
    {"GET", "/", AUTH_NONE, h_root, NULL, NULL},
    {"GET", "/v1/ping", AUTH_NONE, h_ping, NULL, NULL},
    {NULL, NULL, AUTH_NONE, NULL, NULL, NULL},
};

/* --- routing ----------------------------------------------------------------------------- */

/* Split "/a/b/c" into segments (in place). Returns the count or -1 when too many or when a
 * segment is empty (e.g. "//"). "/" has zero segments. */
static int split_path(char *path, char **seg)
{
    int n = 0;
    char *p = path;

    if (*p == '/')
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        char *slash = strchr(p, '/');
        if (n == MAX_SEGMENTS)
            return -1;
        seg[n++] = p;
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0') /* trailing slash: tolerated */
            break;
    }
    for (int i = 0; i < n; i++)
        if (seg[i][0] == '\0')
            return -1;
    return n;
}

/* Does pattern match segs? On success params[] point into segs. */
static int match(const char *pattern, char **segs, int nseg, char **params)
{
    char pat[256], *pseg[MAX_SEGMENTS];
    int np, k = 0;

    snprintf(pat, sizeof(pat), "%s", pattern);
    np = split_path(pat, pseg);
    if (np != nseg)
        return 0;
    for (int i = 0; i < np; i++) {
        if (pseg[i][0] == ':')
            params[k++] = segs[i];
        else if (strcmp(pseg[i], segs[i]) != 0)
            return 0;
    }
    return 1;
}

static const struct route *find_route(struct req *r, char **segs, int nseg, char **params,
                                      int *path_matched)
{
    *path_matched = 0;
    for (int t = 0; route_tables[t]; t++)
        for (const struct route *rt = route_tables[t]; rt->method; rt++) {
            if (!match(rt->pattern, segs, nseg, params))
                continue;
            *path_matched = 1;
            if (strcmp(rt->method, r->method) == 0)
                return rt;
        }
    return NULL;
}

static int is_mutating(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static void dispatch(struct req *r)
{
    char *segs[MAX_SEGMENTS], *params[MAX_SEGMENTS];
    char *path_copy = xstrdup(r->path);
    const struct route *rt;
    int nseg, path_matched;

    nseg = split_path(path_copy, segs);
    if (nseg == -1) {
        reply_error(r, 404, "Not found");
        goto out;
    }
    rt = find_route(r, segs, nseg, params, &path_matched);
    if (!rt) {
        if (path_matched)
            reply_error(r, 405, "Method %s not allowed on %s", r->method, r->path);
        else
            reply_error(r, 404, "Not found");
        goto out;
    }
    if (r->body.len == 0) {
        r->json = json_object();
    } else {
        json_error_t je;
        r->json = json_loadb(r->body.ptr, r->body.len, 0, &je);
        if (!r->json || !json_is_object(r->json)) {
            reply_error(r, 400, "Invalid json");
            goto out;
        }
    }
    r->audit_event = rt->audit_event;
    r->audit_type = rt->audit_type;
    if (rt->auth == AUTH_TOKEN && !auth_authenticate(r))
        goto audit;
    rt->fn(r, params);
audit:
    if (r->audit_event && is_mutating(r->method))
        audit_record(r);
out:
    free(path_copy);
}

/* --- libmicrohttpd callbacks ------------------------------------------------------------- */

static enum MHD_Result send_reply(struct req *r)
{
    char *s = json_dumps(r->reply ? r->reply : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (r->status >= 100 && r->status < 600)
        __atomic_add_fetch(&r->api->ctr.http_by_code[r->status], 1, __ATOMIC_RELAXED);
    if (r->response) { /* a stream or a raw body made by the handler */
        MHD_add_response_header(r->response, "X-Kontena-Version", KONTENA_VERSION);
        ret = MHD_queue_response(r->conn, r->status, r->response);
        MHD_destroy_response(r->response);
        r->response = NULL;
        free(s);
        return ret;
    }
    BUG_ON(!s);
    resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "X-Kontena-Version", KONTENA_VERSION);
    if (r->status == 403 && json_is_object(r->reply) &&
        json_object_get(r->reply, "error_description")) {
        char hdr[256];
        snprintf(hdr, sizeof(hdr),
                 "Bearer realm=\"kontena_master\", error=\"invalid_token\", "
                 "error_description=\"%s\"",
                 json_string_value(json_object_get(r->reply, "error_description")));
        MHD_add_response_header(resp, "WWW-Authenticate", hdr);
    }
    ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void source_ip(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(out, len, "unknown");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api *a = cls;
    struct req *r = *con_cls;
    enum MHD_Result ret;

    (void)version;
    if (!r) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        r = xcalloc(1, sizeof(*r));
        r->api = a;
        r->conn = conn;
        r->method = method;
        r->path = xstrdup(url);
        buf_init(&r->body, a->cfg.max_body);
        source_ip(conn, r->source_ip, sizeof(r->source_ip));
        *con_cls = r;
        if (cl && strtoull(cl, NULL, 10) > a->cfg.max_body) {
            /* Early refusal: no 100-continue, the connection closes. */
            reply_error(r, 413, "Request body too large: the limit is %zu bytes",
                        a->cfg.max_body);
            return send_reply(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large && buf_append(&r->body, upload_data, *upload_data_size) != ST_OK) {
            r->too_large = 1;
            buf_release(&r->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->status) /* already answered (early 413) */
        return MHD_YES;
    if (r->too_large)
        reply_error(r, 413, "Request body too large: the limit is %zu bytes", a->cfg.max_body);
    else
        dispatch(r);
    if (!r->status)
        reply_status(r, ST_IO, NULL);
    log_debug("method=%s path=%s status=%u", r->method, r->path, r->status);
    ret = send_reply(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    buf_release(&r->body);
    json_decref(r->json);
    json_decref(r->reply);
    principal_free(r->who);
    free(r->path);
    free(r);
    *con_cls = NULL;
}

enum status api_start(struct api *a, struct err *e)
{
    struct sockaddr_in sin;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)a->cfg.port);
    if (inet_pton(AF_INET, a->cfg.listen_addr, &sin.sin_addr) != 1)
        return err_set(e, ST_INVALID, "cannot listen on '%s': not an IPv4 address",
                       a->cfg.listen_addr);
    if (!a->cfg.insecure_http)
        flags |= MHD_USE_TLS;

    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpmini_log, NULL}, /* first: MHD docs; "http: " */
        {MHD_OPTION_SOCK_ADDR, 0, &sin},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)a->cfg.threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)a->cfg.conn_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 4000, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {a->cfg.insecure_http ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_KEY, 0, a->tls_key_pem},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, a->tls_cert_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!a->mhd)
        return err_set(e, ST_IO, "cannot listen on %s:%d: address in use or TLS setup failed",
                       a->cfg.listen_addr, a->cfg.port);
    return ST_OK;
}

void api_stop(struct api *a)
{
    if (!a->mhd)
        return;
    /* Every log follower ends its stream first: MHD cannot stop with parked connections.
     * No MHD_quiesce_daemon() here: with a thread pool and epoll it races the workers, which
     * take the listen socket out of their epoll sets themselves once they see the daemon
     * quiesced, and libmicrohttpd 0.9.75 then panics ("Failed to remove listen FD from epoll
     * set", seen in CI). The streams get 200 ms to finish; then everything stops. */
    logs_hub_shutdown(a);
    time_sleep_ms(200);
    MHD_stop_daemon(a->mhd);
    a->mhd = NULL;
}
