/* tests/support/http.h -- one-shot HTTP requests for tests (TLS verification off). */
#ifndef TESTS_SUPPORT_HTTP_H
#define TESTS_SUPPORT_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct http_reply {
    long status;  /* 0 when the request failed at the transport level */
    char *body;   /* fresh memory, NUL-terminated */
    size_t len;
    json_t *json; /* parsed body or NULL */
    char *headers;
};

/* body may be NULL; body_len (size_t)-1 means strlen(body). token NULL = no auth header.
 * extra_header may be NULL ("Name: value"). */
int http_do(const char *method, const char *url, const char *token, const char *body,
            size_t body_len, const char *extra_header, struct http_reply *out);
void http_reply_release(struct http_reply *r);

#endif
