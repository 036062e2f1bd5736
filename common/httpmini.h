/* common/httpmini.h -- the small GET/HEAD-only HTTP listener the agent, the controllers and
 * the apiserver put /metrics and /healthz on, and libmicrohttpd's external logger.
 *
 * Built as its own static library (khttpmini), not in kcommon, so only programs that
 * already link libmicrohttpd get it (the CLI does not).
 *
 * The listener answers every request on libmicrohttpd's own thread:
 *   - a method other than GET or HEAD: 405 "method not allowed\n";
 *   - otherwise the handler is called with the path and fills in the answer.
 * Request bodies are read and ignored.
 */
#ifndef COMMON_HTTPMINI_H
#define COMMON_HTTPMINI_H

#include <netinet/in.h>
#include <stdarg.h>

#include "common/err.h"

/* The answer to a GET or HEAD of path. On entry *status is 200, *body NULL and
 * *content_type the listener's text type; the handler sets *body to a malloc'd string
 * (freed by the listener; NULL answers an empty body) and may change the other two.
 * Called on the listener's thread, possibly from several connections one after another. */
typedef void httpmini_handler(void *arg, const char *path, int *status, char **body,
                              const char **content_type);

struct httpmini_opts {
    const char *log_prefix;   /* for httpmini_log, e.g. "metrics http"; NULL: "http" */
    const char *text_type;    /* Content-Type of 405 and the handler's default;
                               * NULL: "text/plain" */
    unsigned conn_limit;      /* 0: 64 */
    unsigned conn_timeout_s;  /* 0: 30 */
};

struct httpmini;

/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER: logs one warning
 * msg="<prefix>: <message>", without the trailing newline. cls is the prefix (a const
 * char *, NULL for "http"). */
void httpmini_log(void *cls, const char *fmt, va_list ap);

/* sin = host (an IPv4 address; "" means 0.0.0.0) and port (1..65535). */
enum status httpmini_addr(const char *host, long port, struct sockaddr_in *sin, struct err *e);
/* sin = "HOST:PORT" parsed as httpmini_addr wants it (the last colon splits). Errors name
 * the text and what is wrong with it. */
enum status httpmini_parse_addr(const char *host_port, struct sockaddr_in *sin, struct err *e);

/* Listen on sin and serve with h(arg, ...). opts may be NULL. NULL on failure (e says
 * why: usually the address is in use). */
struct httpmini *httpmini_start(const struct sockaddr_in *sin, const struct httpmini_opts *opts,
                                httpmini_handler *h, void *arg, struct err *e);
/* Stop listening and wait for the thread (no handler runs afterwards). NULL is a no-op. */
void httpmini_stop(struct httpmini *m);
#endif
