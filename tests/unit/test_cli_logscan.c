/* tests/unit/test_cli_logscan.c -- cli/logscan: the objects of a log follow stream, whatever
 * way the bytes are split (every split point, byte by byte), with keep-alives, braces and
 * escaped quotes inside strings, garbage between objects, an object over the size cap. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli/logscan.h"
#include "common/xmalloc.h"

#include "common/banned.h"

struct seen {
    char *objs[16];
    size_t n;
};

static void collect(void *arg, const char *obj, size_t len)
{
    struct seen *s = arg;

    cr_assert_lt(s->n, 16);
    s->objs[s->n++] = xstrndup(obj, len);
}

static void seen_release(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->objs[i]);
    s->n = 0;
}

static const char stream[] = "{\"id\":1,\"data\":\"a {brace\"} "
                             "{\"id\":2,\"data\":\"quote \\\" and } and \\\\\"}"
                             "   "
                             "{\"id\":3,\"node\":{\"name\":\"n1\"},\"data\":\"\"}\n "
                             "{\"dropped\":5,\"reason\":\"older than the log window\"}";

static const char *const want[] = {
    "{\"id\":1,\"data\":\"a {brace\"}",
    "{\"id\":2,\"data\":\"quote \\\" and } and \\\\\"}",
    "{\"id\":3,\"node\":{\"name\":\"n1\"},\"data\":\"\"}",
    "{\"dropped\":5,\"reason\":\"older than the log window\"}",
};

static void check(struct seen *s)
{
    cr_assert_eq(s->n, 4, "%zu objects", s->n);
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(s->objs[i], want[i]);
}

Test(logscan, whole_stream_at_once)
{
    struct logscan ls;
    struct seen s = {0};

    logscan_init(&ls, 1 << 20);
    cr_assert_eq(logscan_feed(&ls, stream, strlen(stream), collect, &s), ST_OK);
    check(&s);
    cr_assert_eq(ls.garbage, 0);
    cr_assert_eq(ls.pending.len, 0);
    seen_release(&s);
    logscan_release(&ls);
}

Test(logscan, every_split_point_and_byte_by_byte)
{
    size_t len = strlen(stream);

    for (size_t cut = 0; cut <= len; cut++) {
        struct logscan ls;
        struct seen s = {0};

        logscan_init(&ls, 1 << 20);
        cr_assert_eq(logscan_feed(&ls, stream, cut, collect, &s), ST_OK);
        cr_assert_eq(logscan_feed(&ls, stream + cut, len - cut, collect, &s), ST_OK);
        check(&s);
        seen_release(&s);
        logscan_release(&ls);
    }
    {
        struct logscan ls;
        struct seen s = {0};

        logscan_init(&ls, 1 << 20);
        for (size_t i = 0; i < len; i++)
            cr_assert_eq(logscan_feed(&ls, stream + i, 1, collect, &s), ST_OK);
        check(&s);
        seen_release(&s);
        logscan_release(&ls);
    }
}

Test(logscan, keepalives_only_and_garbage_between_objects)
{
    struct logscan ls;
    struct seen s = {0};

    logscan_init(&ls, 1 << 20);
    cr_assert_eq(logscan_feed(&ls, "   \n ", 5, collect, &s), ST_OK);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(logscan_feed(&ls, "xx{\"a\":1}]", 10, collect, &s), ST_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.objs[0], "{\"a\":1}");
    cr_assert_eq(ls.garbage, 3);
    seen_release(&s);
    logscan_release(&ls);
}

Test(logscan, reset_drops_a_partial_object)
{
    struct logscan ls;
    struct seen s = {0};

    logscan_init(&ls, 1 << 20);
    cr_assert_eq(logscan_feed(&ls, "{\"id\":7,\"data\":\"cut {", 21, collect, &s), ST_OK);
    cr_assert_eq(s.n, 0);
    logscan_reset(&ls);
    cr_assert_eq(logscan_feed(&ls, "{\"id\":8}", 8, collect, &s), ST_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.objs[0], "{\"id\":8}");
    seen_release(&s);
    logscan_release(&ls);
}

Test(logscan, an_object_over_the_cap_is_refused_and_the_scanner_goes_on)
{
    struct logscan ls;
    struct seen s = {0};
    char big[300];

    memset(big, 'x', sizeof(big));
    big[0] = '{';
    big[1] = '"';
    logscan_init(&ls, 128);
    cr_assert_eq(logscan_feed(&ls, big, 100, collect, &s), ST_OK);
    cr_assert_eq(logscan_feed(&ls, big + 100, 200, collect, &s), ST_INVALID);
    cr_assert_eq(ls.pending.len, 0);
    cr_assert_eq(logscan_feed(&ls, "{}", 2, collect, &s), ST_OK);
    cr_assert_eq(s.n, 1);
    seen_release(&s);
    logscan_release(&ls);
}
