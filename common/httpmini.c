/* common/httpmini.c -- the small /metrics + /healthz listener and the MHD logger
 * (httpmini.h).
 *
 * libmicrohttpd calls the request handler at least twice per request; answering on the
 * first call makes it close the connection (reference/c-libraries.md pitfalls), so the first
 * call only marks the request and the answer comes on the last one (upload_data_size == 0
 * again). */
#include "common/httpmini.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct httpmini {
    struct MHD_Daemon *mhd;
    httpmini_handler *h;
    void *arg;
    const char *text_type;
};

static int marker;

void httpmini_log(void *cls, const char *fmt, va_list ap)
{
    const char *prefix = cls ? (const char *)cls : "http";
    char msg[512];
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++) /* one logfmt line: no newline or quote inside */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
        else if (*p == '"')
            *p = '\'';
    log_warn("msg=\"%s: %s\"", prefix, msg);
}

enum status httpmini_addr(const char *host, long port, struct sockaddr_in *sin, struct err *e)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    if (port < 1 || port > 65535)
        return err_set(e, ST_INVALID, "port %ld out of range 1..65535", port);
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host && *host ? host : "0.0.0.0", &sin->sin_addr) != 1)
        return err_set(e, ST_INVALID, "'%s' is not an IPv4 address", host);
    return ST_OK;
}

enum status httpmini_parse_addr(const char *host_port, struct sockaddr_in *sin, struct err *e)
{
    const char *colon = host_port ? strrchr(host_port, ':') : NULL;
    char host[64];
    char *end;
    long port;

    memset(sin, 0, sizeof(*sin));
    if (!colon)
        return err_set(e, ST_INVALID, "bad address '%s': want HOST:PORT",
                       host_port ? host_port : "");
    if ((size_t)(colon - host_port) >= sizeof(host))
        return err_set(e, ST_INVALID, "bad address '%.40s...': host too long", host_port);
    memcpy(host, host_port, (size_t)(colon - host_port));
    host[colon - host_port] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return err_set(e, ST_INVALID, "bad address '%s': port '%s' is not a number in 1..65535",
                       host_port, colon + 1);
    if (httpmini_addr(host, port, sin, e) != ST_OK)
        return err_wrap(e, "bad address '%s'", host_port);
    return ST_OK;
}

static enum MHD_Result answer(struct MHD_Connection *conn, int status, char *body,
                              const char *ctype)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (!body)
        body = xstrdup("");
    r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct httpmini *m = cls;
    int status = MHD_HTTP_OK;
    char *body = NULL;
    const char *ctype = m->text_type;

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
                      m->text_type);
    m->h(m->arg, url, &status, &body, &ctype);
    return answer(conn, status, body, ctype ? ctype : m->text_type);
}

struct httpmini *httpmini_start(const struct sockaddr_in *sin, const struct httpmini_opts *opts,
                                httpmini_handler *h, void *arg, struct err *e)
{
    static const struct httpmini_opts none;
    struct httpmini *m;
    char ip[INET_ADDRSTRLEN] = "?";

    if (!opts)
        opts = &none;
    m = xcalloc(1, sizeof(*m));
    m->h = h;
    m->arg = arg;
    m->text_type = opts->text_type ? opts->text_type : "text/plain";
    struct MHD_OptionItem items[] = {
        /* the logger first, so errors of the other options are logged through it */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpmini_log, (void *)(uintptr_t)opts->log_prefix},
        {MHD_OPTION_SOCK_ADDR, 0, (void *)(uintptr_t)sin},
        {MHD_OPTION_CONNECTION_TIMEOUT, opts->conn_timeout_s ? opts->conn_timeout_s : 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, opts->conn_limit ? opts->conn_limit : 64, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, on_request, m, MHD_OPTION_ARRAY, items,
                              MHD_OPTION_END);
    if (!m->mhd) {
        free(m);
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        err_set(e, ST_IO, "cannot listen on %s:%u: address in use?", ip,
                (unsigned)ntohs(sin->sin_port));
        return NULL;
    }
    return m;
}

void httpmini_stop(struct httpmini *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->mhd);
    free(m);
}
