/* controllers/runtime/ctl_http.c -- /healthz and /metrics on the shared small listener
 * (common/httpmini.h: libmicrohttpd's own thread, GET and HEAD only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpmini.h"
#include "common/xmalloc.h"
#include "controllers/runtime/ctl_int.h"
#include "common/banned.h"

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

static void on_get(void *arg, const char *path, int *status, char **body,
                   const char **content_type)
{
    struct ctl *c = arg;
    char *why;

    if (strcmp(path, "/healthz") == 0) {
        why = unhealthy(c);
        if (!why) {
            *body = xstrdup("ok\n");
            return;
        }
        *status = 503;
        *body = xasprintf("%s\n", why);
        free(why);
    } else if (strcmp(path, "/metrics") == 0) {
        *body = ctl__metrics_render(c);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
        *status = 404;
        *body = xstrdup("not found: try /healthz or /metrics\n");
    }
}

enum status ctl__http_start(struct ctl *c, struct err *e)
{
    static const struct httpmini_opts opts = {.log_prefix = "http", .conn_limit = 64};
    struct sockaddr_in sin;

    if (!c->http_addr)
        return ST_OK;
    if (httpmini_addr(c->http_addr, c->http_port, &sin, e) != ST_OK)
        return err_wrap(e, "cannot listen on '%s:%d'", c->http_addr, c->http_port);
    c->http = httpmini_start(&sin, &opts, on_get, c, NULL);
    if (!c->http)
        return err_set(e, ST_IO, "cannot listen on %s:%d for /healthz and /metrics: address "
                       "in use?", c->http_addr, c->http_port);
    return ST_OK;
}

void ctl__http_stop(struct ctl *c)
{
    httpmini_stop(c->http);
    c->http = NULL;
}
