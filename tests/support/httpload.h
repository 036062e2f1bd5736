/* tests/support/httpload.h -- a bounded, counted HTTP load for load-balancer tests and
 * benchmarks: a few threads each issuing GET requests (libcurl) against one URL in a loop
 * until stopped, until a request budget is spent or until a time limit, and counting every
 * request that failed (a transport error or a status other than 200).
 *
 *     struct httpload_opts o = {.url = "http://127.0.0.1:8080/", .host = "web.test",
 *                               .threads = 4, .rate = 100, .max_ms = 120000};
 *     struct httpload *l = httpload_start(&o);
 *     ... scale, redeploy ...
 *     httpload_stop(l);
 *     cr_assert_eq(httpload_failed(l), 0, ...);
 *     httpload_destroy(l);
 *
 * Half of the threads (the even ones) keep their connection alive between requests, the
 * others open a new connection for every request, so both a reload that drops idle
 * keep-alive connections and one that refuses new connections show as failures.
 *
 * The first line of each 200 response body ("who answered", e.g. the backend instance's
 * name) is remembered with the wall-clock time (µs) of the first and last response that
 * carried it: httpload_first_seen() tells when a new backend received its first request.
 * The first failures are kept with their time and reason (httpload_failures()).
 */
#ifndef TESTS_SUPPORT_HTTPLOAD_H
#define TESTS_SUPPORT_HTTPLOAD_H

#include <stdint.h>
#include <stdio.h>

struct httpload_opts {
    const char *url;      /* borrowed until httpload_destroy() */
    const char *host;     /* Host header, or NULL for the URL's */
    int threads;          /* 1..32 (default 2) */
    int rate;             /* requests per second per thread; 0 = as fast as possible */
    int64_t max_requests; /* stop after this many requests in all (0: 1,000,000) */
    int64_t max_ms;       /* stop after this long (0: 300,000 ms) */
    int timeout_ms;       /* per request (default 5000) */
};

struct httpload;

/* Start the threads; NULL (after saying why on stderr) when the options are bad or a
 * thread cannot start. */
struct httpload *httpload_start(const struct httpload_opts *o);
/* Stop the threads (each finishes its current request) and join them. Idempotent. */
void httpload_stop(struct httpload *l);
void httpload_destroy(struct httpload *l); /* stops first; NULL is fine */

int64_t httpload_ok(struct httpload *l);     /* 200 responses so far */
int64_t httpload_failed(struct httpload *l); /* failed requests so far */
/* Wall-clock µs of the first / last 200 response whose body's first line is `who`; -1 when
 * none was seen. */
int64_t httpload_first_seen(struct httpload *l, const char *who);
int64_t httpload_last_seen(struct httpload *l, const char *who);
/* How many 200 responses carried `who` so far. */
int64_t httpload_count(struct httpload *l, const char *who);
/* Print "who: count" of every body seen, and the first failures with their reasons, on f. */
void httpload_report(struct httpload *l, FILE *f);
/* Wait (polling, bounded by timeout_ms) until `who` has answered at least once: its first
 * time (µs) or -1 on timeout. */
int64_t httpload_wait_seen(struct httpload *l, const char *who, int timeout_ms);
/* Requests per second over the run so far (ok + failed) / elapsed. */
double httpload_rps(struct httpload *l);

#endif
