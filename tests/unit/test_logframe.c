/* tests/unit/test_logframe.c -- the log stream decoder the agent's log follower uses
 * (docker_demux in agent/docker.c: Docker's 8-byte frame headers, timestamps=1, lines split
 * across frames and reads, cut at max_line) and the JSON text it writes lines into
 * (logs_json_escape in agent/logs.c). No daemon: hand-made byte streams, fed in every
 * possible split.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/docker.h"
#include "agent/logs.h"
#include "common/buf.h"
#include "common/xmalloc.h"

#include "common/banned.h"

#define TS1 "2026-11-23T01:17:36.612324683Z"
#define TS2 "2026-11-23T01:17:36.700000001Z"

struct got {
    int n;
    int stream[64];
    char *text[64];
    size_t len[64];
    char time[64][48];
    int partial[64];
    int stop_after; /* 0: never */
};

static int collect(void *arg, const struct docker_log_line *l)
{
    struct got *g = arg;

    cr_assert(g->n < 64);
    g->stream[g->n] = l->stream;
    g->text[g->n] = xmalloc(l->len + 1);
    memcpy(g->text[g->n], l->text, l->len + 1);
    g->len[g->n] = l->len;
    snprintf(g->time[g->n], sizeof(g->time[0]), "%s", l->time);
    g->partial[g->n] = l->partial;
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void got_free(struct got *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->text[i]);
    memset(g, 0, sizeof(*g));
}

/* Append one frame: header + payload. */
static void frame(struct buf *b, int stream, const char *payload, size_t n)
{
    unsigned char h[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24),
                          (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};

    cr_assert_eq(buf_append(b, h, 8), ST_OK);
    cr_assert_eq(buf_append(b, payload, n), ST_OK);
}

static void framestr(struct buf *b, int stream, const char *s)
{
    frame(b, stream, s, strlen(s));
}

/* Feed s in pieces of `step` bytes (0: the two halves around `cut`). */
static void feed(struct docker_demux *x, const struct buf *s, size_t step, size_t cut)
{
    struct err e = ERR_INIT;

    if (!step) {
        cr_assert_eq(docker_demux_feed(x, s->ptr, cut, &e), ST_OK, "%s", e.msg);
        cr_assert_eq(docker_demux_feed(x, s->ptr + cut, s->len - cut, &e), ST_OK, "%s", e.msg);
        return;
    }
    for (size_t off = 0; off < s->len; off += step)
        cr_assert_eq(docker_demux_feed(x, s->ptr + off, off + step > s->len ? s->len - off : step,
                                       &e),
                     ST_OK, "%s", e.msg);
}

/* The same stream must decode the same way whatever the pieces. */
static void check_every_split(const struct buf *s, void (*check)(struct got *g), size_t max_line)
{
    for (size_t cut = 0; cut <= s->len; cut++) {
        struct docker_demux x;
        struct got g = {0};
        docker_demux_init(&x, 0, 1, max_line, collect, &g);
        feed(&x, s, 0, cut);
        docker_demux_finish(&x);
        docker_demux_release(&x);
        check(&g);
        got_free(&g);
    }
    for (size_t step = 1; step <= 9; step++) {
        struct docker_demux x;
        struct got g = {0};
        docker_demux_init(&x, 0, 1, max_line, collect, &g);
        feed(&x, s, step, 0);
        docker_demux_finish(&x);
        docker_demux_release(&x);
        check(&g);
        got_free(&g);
    }
}

static void check_two_streams(struct got *g)
{
    cr_assert_eq(g->n, 3);
    cr_assert_eq(g->stream[0], DOCKER_STDOUT);
    cr_assert_str_eq(g->text[0], "hello");
    cr_assert_str_eq(g->time[0], TS1);
    cr_assert_eq(g->partial[0], 0);
    cr_assert_eq(g->stream[1], DOCKER_STDERR);
    cr_assert_str_eq(g->text[1], "oops");
    cr_assert_str_eq(g->time[1], TS2);
    cr_assert_eq(g->stream[2], DOCKER_STDOUT);
    cr_assert_str_eq(g->text[2], "");
}

Test(logframe, stdout_and_stderr_split_anywhere)
{
    struct buf s = BUF_INIT;

    framestr(&s, 1, TS1 " hello\n");
    framestr(&s, 2, TS2 " oops\n");
    framestr(&s, 1, TS2 " \n");
    check_every_split(&s, check_two_streams, 0);
    buf_release(&s);
}

/* Docker's json-file driver cuts lines at 16 KiB: the pieces come as frames without a
 * newline, each with its own timestamp; they make one line with the first one's time. */
static void check_reassembled(struct got *g)
{
    cr_assert_eq(g->n, 2);
    cr_assert_str_eq(g->text[0], "part one, part two, end");
    cr_assert_str_eq(g->time[0], TS1);
    cr_assert_eq(g->partial[0], 0);
    cr_assert_str_eq(g->text[1], "next");
}

Test(logframe, line_split_across_frames)
{
    struct buf s = BUF_INIT;

    framestr(&s, 1, TS1 " part one, ");
    framestr(&s, 1, TS2 " part two, ");
    framestr(&s, 1, TS2 " end\n");
    framestr(&s, 1, TS2 " next\n");
    check_every_split(&s, check_reassembled, 0);
    buf_release(&s);
}

/* Interleaved partial lines of the two streams do not mix. */
static void check_interleaved(struct got *g)
{
    cr_assert_eq(g->n, 2);
    cr_assert_eq(g->stream[0], DOCKER_STDERR);
    cr_assert_str_eq(g->text[0], "e1e2");
    cr_assert_eq(g->stream[1], DOCKER_STDOUT);
    cr_assert_str_eq(g->text[1], "o1o2");
}

Test(logframe, partial_lines_of_two_streams_interleaved)
{
    struct buf s = BUF_INIT;

    framestr(&s, 1, TS1 " o1");
    framestr(&s, 2, TS1 " e1");
    framestr(&s, 2, TS2 " e2\n");
    framestr(&s, 1, TS2 " o2\n");
    check_every_split(&s, check_interleaved, 0);
    buf_release(&s);
}

/* A line longer than max_line is delivered in max_line pieces flagged partial, all bytes
 * kept; the stream's end delivers a last line without its newline, flagged partial. */
static void check_long(struct got *g)
{
    size_t total = 0;

    cr_assert_eq(g->n, 5, "%d lines", g->n);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(g->len[i], 10, "piece %d: %zu bytes", i, g->len[i]);
        cr_assert_eq(g->partial[i], 1);
        cr_assert_str_eq(g->time[i], TS1);
        total += g->len[i];
    }
    cr_assert_str_eq(g->text[3], "xx");
    cr_assert_eq(g->partial[3], 0);
    total += g->len[3];
    cr_assert_eq(total, 32);
    cr_assert_str_eq(g->text[4], "tail");
    cr_assert_eq(g->partial[4], 1);
}

Test(logframe, long_lines_cut_and_unterminated_tail)
{
    struct buf s = BUF_INIT;
    char line[64];

    memset(line, 'x', 32);
    line[32] = '\0';
    framestr(&s, 1, TS1 " ");
    cr_assert_eq(buf_append(&s, "", 0), ST_OK);
    buf_reset(&s);
    char payload[128];
    snprintf(payload, sizeof(payload), TS1 " %s\n", line);
    framestr(&s, 1, payload);
    framestr(&s, 1, TS2 " tail");
    check_every_split(&s, check_long, 10);
    buf_release(&s);
}

/* NULs and other bytes inside a line are data. */
Test(logframe, binary_payload)
{
    struct buf s = BUF_INIT;
    struct docker_demux x;
    struct got g = {0};
    struct err e = ERR_INIT;
    static const char p[] = TS1 " a\0b\377\n";

    frame(&s, 1, p, sizeof(p) - 1);
    docker_demux_init(&x, 0, 1, 0, collect, &g);
    cr_assert_eq(docker_demux_feed(&x, s.ptr, s.len, &e), ST_OK);
    docker_demux_finish(&x);
    docker_demux_release(&x);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.len[0], 4);
    cr_assert_eq(memcmp(g.text[0], "a\0b\377", 4), 0);
    got_free(&g);
    buf_release(&s);
}

/* Headers that are not Docker's (stream > 2, reserved bytes set) are refused, never
 * crash; an empty frame is fine. */
Test(logframe, garbage_refused)
{
    static const unsigned char bad1[] = {7, 0, 0, 0, 0, 0, 0, 1, 'x'};
    static const unsigned char bad2[] = {1, 1, 0, 0, 0, 0, 0, 1, 'x'};
    static const unsigned char empty[] = {1, 0, 0, 0, 0, 0, 0, 0};
    struct docker_demux x;
    struct got g = {0};
    struct err e = ERR_INIT;

    docker_demux_init(&x, 0, 1, 0, collect, &g);
    cr_assert_eq(docker_demux_feed(&x, bad1, sizeof(bad1), &e), ST_INVALID);
    cr_assert(strstr(e.msg, "malformed"), "%s", e.msg);
    docker_demux_release(&x);
    docker_demux_init(&x, 0, 1, 0, collect, &g);
    cr_assert_eq(docker_demux_feed(&x, bad2, sizeof(bad2), &e), ST_INVALID);
    docker_demux_release(&x);
    docker_demux_init(&x, 0, 1, 0, collect, &g);
    cr_assert_eq(docker_demux_feed(&x, empty, sizeof(empty), &e), ST_OK);
    docker_demux_finish(&x);
    docker_demux_release(&x);
    cr_assert_eq(g.n, 0);
    /* random bytes: an error or lines, never a crash */
    srand(8);
    for (int round = 0; round < 200; round++) {
        unsigned char junk[300];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (unsigned char)(rand() % 4 == 0 ? rand() % 3 : rand());
        docker_demux_init(&x, 0, 1, 16, collect, &g);
        if (docker_demux_feed(&x, junk, sizeof(junk), &e) != ST_OK)
            cr_assert_eq(e.st, ST_INVALID);
        docker_demux_finish(&x);
        docker_demux_release(&x);
        got_free(&g);
    }
}

/* A Tty container's stream has no headers: everything is stdout, a timestamp per line. */
Test(logframe, tty_stream_without_headers)
{
    static const char s[] = TS1 " one\r\n" TS2 " two\r\n";
    struct docker_demux x;
    struct got g = {0};
    struct err e = ERR_INIT;

    for (size_t cut = 0; cut < sizeof(s) - 1; cut++) {
        docker_demux_init(&x, 1, 1, 0, collect, &g);
        cr_assert_eq(docker_demux_feed(&x, s, cut, &e), ST_OK);
        cr_assert_eq(docker_demux_feed(&x, s + cut, sizeof(s) - 1 - cut, &e), ST_OK);
        docker_demux_finish(&x);
        docker_demux_release(&x);
        cr_assert_eq(g.n, 2);
        cr_assert_str_eq(g.text[0], "one\r");
        cr_assert_str_eq(g.time[1], TS2);
        cr_assert_str_eq(g.text[1], "two\r");
        got_free(&g);
    }
}

/* The callback can stop the stream. */
Test(logframe, callback_stops)
{
    struct buf s = BUF_INIT;
    struct docker_demux x;
    struct got g = {.stop_after = 1};
    struct err e = ERR_INIT;

    framestr(&s, 1, TS1 " a\n" TS1 " b\n");
    docker_demux_init(&x, 0, 1, 0, collect, &g);
    cr_assert_eq(docker_demux_feed(&x, s.ptr, s.len, &e), ST_OK);
    cr_assert(docker_demux_stopped(&x));
    docker_demux_release(&x);
    cr_assert_eq(g.n, 1);
    got_free(&g);
    buf_release(&s);
}

/* --- logs_json_escape ----------------------------------------------------------------------- */

static char *escaped(const char *s, size_t n)
{
    struct buf b = BUF_INIT;

    logs_json_escape(&b, s, n);
    return buf_take(&b);
}

Test(logframe, json_escape_is_valid_json_utf8)
{
    static const char in[] = "q\"b\\n\n\t\x01\x7f\0é€😀\xff\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80z";
    char *e = escaped(in, sizeof(in) - 1), *doc = xasprintf("[\"%s\"]", e);
    json_error_t jerr;
    json_t *j = json_loads(doc, 0, &jerr);

    cr_assert(j, "not JSON: %s: %s", jerr.text, doc);
    cr_assert_str_eq(json_string_value(json_array_get(j, 0)),
                     "q\"b\\n\n\t\x01\x7f\xef\xbf\xbd" "é€😀\xef\xbf\xbd\xef\xbf\xbd("
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                     "\xef\xbf\xbdz");
    json_decref(j);
    free(doc);
    free(e);
}

Test(logframe, json_escape_random_bytes_always_parse)
{
    srand(42);
    for (int round = 0; round < 500; round++) {
        char in[64];
        for (size_t i = 0; i < sizeof(in); i++)
            in[i] = (char)rand();
        char *e = escaped(in, sizeof(in)), *doc = xasprintf("[\"%s\"]", e);
        json_t *j = json_loads(doc, 0, NULL);
        cr_assert(j, "round %d: not JSON", round);
        json_decref(j);
        free(doc);
        free(e);
    }
}
