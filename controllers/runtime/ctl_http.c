/* controllers/runtime/ctl_http.c -- /healthz and /metrics on libmicrohttpd's own thread.
 *
 * libmicrohttpd calls the handler at least twice per request; answering on the first call
 * makes it close the connection (c-libraries.md pitfalls), so the first call only marks
 * the request and the answer comes on the last one (upload_data_size == 0 again). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "common/banned.h"

static int marker;

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body,
                              const char *ctype)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Why this process is not healthy, or NULL when it is (fresh memory). */
static char *unhealthy(struct ctl *c)
{
    char why[600];

    for (size_t i = 0; i < c->ninfs; i++)
        if (!informer__healthy(c->infs[i], why, sizeof(why)))
            return xstrdup(why);
    if (c->leader_elect) {
        pthread_mutex_lock(&c->mu);
        if (c->etcd_err[0])
            snprintf(why, sizeof(why), "etcd unreachable: %s", c->etcd_err);
        else
            why[0] = '\0';
        pthread_mutex_unlock(&c->mu);
        if (why[0])
            return xstrdup(why);
    }
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ctl *c = cls;
    char *why;

    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* bodies are ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, xstrdup("method not allowed\n"),
                      "text/plain");
    if (strcmp(url, "/healthz") == 0) {
        why = unhealthy(c);
        if (!why)
            return answer(conn, MHD_HTTP_OK, xstrdup("ok\n"), "text/plain");
        char *body = xasprintf("%s\n", why);
        free(why);
        return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body, "text/plain");
    }
    if (strcmp(url, "/metrics") == 0)
        return answer(conn, MHD_HTTP_OK, ctl__metrics_render(c),
                      "text/plain; version=0.0.4; charset=utf-8");
    return answer(conn, MHD_HTTP_NOT_FOUND, xstrdup("not found: try /healthz or /metrics\n"),
                  "text/plain");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("msg=\"http: %s\"", msg);
}

enum status ctl__http_start(struct ctl *c, struct err *e)
{
    struct sockaddr_in sin;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

    if (!c->http_addr)
        return ST_OK;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)c->http_port);
    if (inet_pton(AF_INET, c->http_addr, &sin.sin_addr) != 1)
        return err_set(e, ST_INVALID, "cannot listen on '%s': not an IPv4 address",
                       c->http_addr);
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &sin},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 64, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    c->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, c, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!c->mhd)
        return err_set(e, ST_IO, "cannot listen on %s:%d for /healthz and /metrics: address "
                       "in use?", c->http_addr, c->http_port);
    return ST_OK;
}

void ctl__http_stop(struct ctl *c)
{
    if (!c->mhd)
        return;
    MHD_stop_daemon(c->mhd);
    c->mhd = NULL;
}
