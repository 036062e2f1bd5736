/* tests/unit/test_probe.c -- agent/probe.c's single checks against a tiny in-process server:
 * status codes, redirects not followed, timeouts, refused connections, cancellation. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/probe.h"
#include "common/timeutil.h"

#include "common/banned.h"

/* One-connection-at-a-time server answering `answer` (NULL: never answers, holds the
 * connection for hold_ms). */
struct server {
    int fd, port, accepted;
    const char *answer;
    int hold_ms;
    char request[2048];
    pthread_t t;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        size_t got = 0;
        if (c == -1)
            return NULL;
        s->accepted++;
        while (got < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
            ssize_t n = recv(c, s->request + got, sizeof(s->request) - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            s->request[got] = '\0';
        }
        if (s->answer) {
            ssize_t n = send(c, s->answer, strlen(s->answer), MSG_NOSIGNAL);
            (void)n;
        } else {
            time_sleep_ms(s->hold_ms);
        }
        close(c);
    }
}

static void server_start(struct server *s, const char *answer)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->hold_ms = 3000;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_neq(s->fd, -1);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(s->fd, 8), 0);
    cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&s->t, NULL, serve, s), 0);
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct server s;
    int port;
    server_start(&s, "");
    port = s.port;
    shutdown(s.fd, SHUT_RDWR);
    close(s.fd);
    pthread_join(s.t, NULL);
    return port;
}

Test(probe, http_200_with_request_line_and_user_agent)
{
    struct server s;
    struct err e = ERR_INIT;
    int code = 0;

    server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/health?x=1", 2000, NULL, &code, &e), ST_OK, "%s",
                 e.msg);
    cr_assert_eq(code, 200);
    cr_assert(!strncmp(s.request, "GET /health?x=1 HTTP/1.0\r\n", 26), "request: %s", s.request);
    cr_assert(strstr(s.request, "\r\nUser-Agent: Kontena-Agent/"), "request: %s", s.request);
}

Test(probe, redirect_is_reported_not_followed)
{
    struct server s;
    int code = 0;

    server_start(&s, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n\r\n");
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/", 2000, NULL, &code, NULL), ST_OK);
    cr_assert_eq(code, 302);
    time_sleep_ms(100);
    cr_assert_eq(s.accepted, 1, "the redirect was followed");
}

Test(probe, server_error_code_is_returned)
{
    struct server s;
    int code = 0;

    server_start(&s, "HTTP/1.0 503 Service Unavailable\r\n\r\n");
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/", 2000, NULL, &code, NULL), ST_OK);
    cr_assert_eq(code, 503);
}

Test(probe, no_answer_times_out_within_the_timeout)
{
    struct server s;
    struct err e = ERR_INIT;
    int code = 0;
    int64_t t0 = time_mono_ms(), took;

    server_start(&s, NULL);
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/", 500, NULL, &code, &e), ST_IO);
    took = time_mono_ms() - t0;
    cr_assert(took >= 450 && took < 1500, "took %lld ms", (long long)took);
    cr_assert(strstr(e.msg, "timed out"), "%s", e.msg);
    cr_assert_eq(code, 0);
}

Test(probe, garbage_answer_is_not_healthy)
{
    struct server s;
    int code = 0;

    server_start(&s, "hello there\r\n");
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/", 1000, NULL, &code, NULL), ST_IO);
    cr_assert_eq(code, 0);
}

Test(probe, refused_connection_fails_fast)
{
    int port = closed_port(), code = 0;
    int64_t t0 = time_mono_ms();
    struct err e = ERR_INIT;

    cr_assert_eq(probe_http("127.0.0.1", port, "/", 5000, NULL, &code, &e), ST_IO);
    cr_assert_lt(time_mono_ms() - t0, 1000);
    cr_assert_eq(probe_tcp("127.0.0.1", port, 5000, NULL, &e), ST_IO);
}

Test(probe, tcp_open)
{
    struct server s;
    server_start(&s, "");
    cr_assert_eq(probe_tcp("127.0.0.1", s.port, 1000, NULL, NULL), ST_OK);
}

Test(probe, stop_flag_abandons_a_check)
{
    struct server s;
    volatile int stop = 1;
    int code = 0;
    int64_t t0 = time_mono_ms();

    server_start(&s, NULL);
    cr_assert_eq(probe_http("127.0.0.1", s.port, "/", 10000, &stop, &code, NULL), ST_RETRY);
    cr_assert_lt(time_mono_ms() - t0, 1000);
}

Test(probe, bad_uri_and_address_are_refused)
{
    int code = 0;
    cr_assert_eq(probe_http("127.0.0.1", 80, "/a b", 1000, NULL, &code, NULL), ST_INVALID);
    cr_assert_eq(probe_http("127.0.0.1", 80, "/a\r\nX: y", 1000, NULL, &code, NULL), ST_INVALID);
    cr_assert_eq(probe_tcp("", 80, 1000, NULL, NULL), ST_INVALID);
    cr_assert_eq(probe_tcp("not-an-ip", 80, 1000, NULL, NULL), ST_INVALID);
}
