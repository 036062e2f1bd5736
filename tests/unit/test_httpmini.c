/* tests/unit/test_httpmini.c -- common/httpmini.c: "HOST:PORT" parsing (good and bad
 * texts, what the errors say) and a real listener on 127.0.0.1 spoken to with curl (the
 * handler's answers, 405 for other methods, HEAD, bodies ignored, the content types, a
 * second listener on the same port refused). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/httpmini.h"
#include "common/xmalloc.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#include "common/banned.h"

TestSuite(httpmini, .timeout = 60);

static void ok_addr(const char *text, const char *ip, unsigned port)
{
    struct sockaddr_in sin;
    struct err e = ERR_INIT;
    char got[INET_ADDRSTRLEN];

    cr_assert_eq(httpmini_parse_addr(text, &sin, &e), ST_OK, "'%s': %s", text, e.msg);
    cr_assert_eq(sin.sin_family, AF_INET);
    cr_assert_eq(ntohs(sin.sin_port), port, "'%s'", text);
    cr_assert(inet_ntop(AF_INET, &sin.sin_addr, got, sizeof(got)));
    cr_assert_str_eq(got, ip, "'%s'", text);
}

static void bad_addr(const char *text, const char *want)
{
    struct sockaddr_in sin;
    struct err e = ERR_INIT;

    cr_assert_eq(httpmini_parse_addr(text, &sin, &e), ST_INVALID, "'%s' accepted",
                 text ? text : "(null)");
    cr_assert(strstr(e.msg, want), "'%s': error '%s' lacks '%s'", text ? text : "(null)", e.msg,
              want);
}

Test(httpmini, parse_addr_good)
{
    ok_addr("127.0.0.1:9300", "127.0.0.1", 9300);
    ok_addr("0.0.0.0:1", "0.0.0.0", 1);
    ok_addr("10.1.2.3:65535", "10.1.2.3", 65535);
    ok_addr(":8080", "0.0.0.0", 8080); /* empty host: every address */
}

Test(httpmini, parse_addr_bad)
{
    bad_addr(NULL, "want HOST:PORT");
    bad_addr("", "want HOST:PORT");
    bad_addr("127.0.0.1", "bad address '127.0.0.1': want HOST:PORT");
    bad_addr("127.0.0.1:", "port '' is not a number in 1..65535");
    bad_addr("127.0.0.1:0", "port '0'");
    bad_addr("127.0.0.1:65536", "port '65536'");
    bad_addr("127.0.0.1:-5", "port '-5'");
    bad_addr("127.0.0.1:80x", "port '80x'");
    bad_addr("127.0.0.1:99999999999999999999", "1..65535");
    bad_addr("localhost:80", "'localhost' is not an IPv4 address");
    bad_addr("::1:80", "is not an IPv4 address");
    bad_addr("1.2.3.4.5:80", "bad address '1.2.3.4.5:80'");
    bad_addr("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80",
             "host too long");
}

Test(httpmini, addr)
{
    struct sockaddr_in sin;
    struct err e = ERR_INIT;

    cr_assert_eq(httpmini_addr("127.0.0.1", 80, &sin, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(ntohs(sin.sin_port), 80);
    cr_assert_eq(httpmini_addr("127.0.0.1", 0, &sin, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "port 0 out of range"), "%s", e.msg);
    cr_assert_eq(httpmini_addr("nope", 80, &sin, &e), ST_INVALID);
    cr_assert(strstr(e.msg, "'nope' is not an IPv4 address"), "%s", e.msg);
}

struct seen {
    int calls;
    char path[64];
};

static void handler(void *arg, const char *path, int *status, char **body,
                    const char **content_type)
{
    struct seen *s = arg;

    s->calls++;
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (!strcmp(path, "/metrics")) {
        *body = xstrdup("m 1\n");
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (!strcmp(path, "/healthz")) {
        *status = 503;
        *body = xstrdup("sick\n");
    } else if (!strcmp(path, "/empty")) {
        /* no body: an empty answer */
    } else {
        *status = 404;
        *body = xstrdup("not found\n");
    }
}

static void get(const char *method, int port, const char *path, const char *body, long want,
                const char *want_body, const char *want_ctype)
{
    char url[128];
    struct http_reply r;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    cr_assert_eq(http_do(method, url, NULL, body, body ? (size_t)-1 : 0, NULL, &r), 0,
                 "%s %s failed", method, url);
    cr_assert_eq(r.status, want, "%s %s: %ld", method, url, r.status);
    if (want_body)
        cr_assert_str_eq(r.body, want_body, "%s %s", method, url);
    if (want_ctype) {
        char line[200];
        snprintf(line, sizeof(line), "Content-Type: %s\r\n", want_ctype);
        cr_assert(r.headers && strcasestr(r.headers, line), "%s %s: headers %s", method, url,
                  r.headers ? r.headers : "(none)");
    }
    http_reply_release(&r);
}

/* HEAD over a plain socket (curl's custom "HEAD" would wait for the body): 200, headers,
 * no body. */
static void head(int port, const char *path)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[128], rep[2048];
    size_t n = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    snprintf(req, sizeof(req), "HEAD %s HTTP/1.0\r\n\r\n", path);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n < sizeof(rep) - 1 && (r = read(fd, rep + n, sizeof(rep) - 1 - n)) > 0)
        n += (size_t)r;
    rep[n] = '\0';
    close(fd);
    cr_assert(!strncmp(rep, "HTTP/1.0 200", 12) || !strncmp(rep, "HTTP/1.1 200", 12), "%s", rep);
    const char *end = strstr(rep, "\r\n\r\n");
    cr_assert(end && !end[4], "HEAD answered a body: %s", rep);
}

Test(httpmini, round_trip)
{
    static const struct httpmini_opts opts = {.log_prefix = "test http",
                                              .text_type = "text/plain; charset=utf-8"};
    struct seen s = {0};
    struct sockaddr_in sin;
    struct err e = ERR_INIT;
    char addr[64];
    int port = proc_free_port();
    struct httpmini *m, *m2;

    cr_assert(port > 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    cr_assert_eq(httpmini_parse_addr(addr, &sin, &e), ST_OK, "%s", e.msg);
    m = httpmini_start(&sin, &opts, handler, &s, &e);
    cr_assert(m, "%s", e.msg);

    get("GET", port, "/metrics", NULL, 200, "m 1\n", "text/plain; version=0.0.4; charset=utf-8");
    cr_assert_str_eq(s.path, "/metrics");
    get("GET", port, "/healthz", NULL, 503, "sick\n", "text/plain; charset=utf-8");
    get("GET", port, "/empty", NULL, 200, "", "text/plain; charset=utf-8");
    get("GET", port, "/other", NULL, 404, "not found\n", NULL);
    head(port, "/metrics");
    int calls = s.calls;
    get("POST", port, "/metrics", "x=1", 405, "method not allowed\n", "text/plain; charset=utf-8");
    get("PUT", port, "/healthz", NULL, 405, "method not allowed\n", NULL);
    cr_assert_eq(s.calls, calls, "the handler saw a POST or PUT");
    get("GET", port, "/metrics", "ignored body", 200, "m 1\n", NULL);

    /* the same port again: refused, and the error says where */
    m2 = httpmini_start(&sin, NULL, handler, &s, &e);
    cr_assert_null(m2);
    cr_assert_eq(e.st, ST_IO);
    cr_assert(strstr(e.msg, addr), "%s", e.msg);

    httpmini_stop(m);
    httpmini_stop(NULL);

    /* defaults (no opts): text/plain */
    port = proc_free_port();
    cr_assert_eq(httpmini_addr("127.0.0.1", port, &sin, &e), ST_OK, "%s", e.msg);
    m = httpmini_start(&sin, NULL, handler, &s, &e);
    cr_assert(m, "%s", e.msg);
    get("GET", port, "/healthz", NULL, 503, "sick\n", "text/plain");
    get("DELETE", port, "/x", NULL, 405, "method not allowed\n", "text/plain");
    httpmini_stop(m);
}

static void log_it(const char *prefix, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void log_it(const char *prefix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    httpmini_log((void *)(uintptr_t)prefix, fmt, ap);
    va_end(ap);
}

Test(httpmini, log_never_overruns)
{
    char big[2000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_it("p", "%s\n", big);
    log_it(NULL, "two\nlines \"quoted\"\r\n\n");
    log_it("p", "%s", "");
}
