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

/* ---- logentry_parse ---- */

Test(logentry, the_printed_fields_of_a_stored_entry)
{
    static const char obj[] =
        "{\"id\":42,\"created_at\":\"2026-11-23T06:00:00.123456789Z\",\"name\":\"stk.web-2\","
        "\"container_id\":\"abc\",\"node\":{\"name\":\"node-1\"},\"grid\":{\"id\":\"g\",\"name\":"
        "\"g\"},\"stack\":{\"id\":\"g/stk\",\"name\":\"stk\"},\"service\":{\"id\":\"g/stk/web\","
        "\"name\":\"web\"},\"instance\":2,\"type\":\"stderr\",\"data\":\"hello \\\"x\\\" {}\"}";
    struct logentry e;

    logentry_init(&e);
    cr_assert_eq(logentry_parse(&e, obj, strlen(obj)), ST_OK);
    cr_assert_str_eq(e.id, "42");
    cr_assert_str_eq(e.name, "stk.web-2");
    cr_assert_str_eq(e.created_at, "2026-11-23T06:00:00.123456789Z");
    cr_assert_str_eq(e.type, "stderr");
    cr_assert_str_eq(e.data, "hello \"x\" {}");
    cr_assert(e.has_instance);
    cr_assert_eq(e.instance, 2);
    cr_assert(!e.has_dropped);
    cr_assert_null(e.reason);
    logentry_release(&e);
}

Test(logentry, escapes_unicode_and_surrogate_pairs)
{
    static const char obj[] =
        "{\"data\":\"a\\nb\\tc\\\\d\\/e\\u00e9\\u20ac\\ud83d\\ude00\\b\\f\\r\","
        "\"id\":\"7\",\"instance\":null,\"name\":\"\"}";
    struct logentry e;

    logentry_init(&e);
    cr_assert_eq(logentry_parse(&e, obj, strlen(obj)), ST_OK);
    cr_assert_str_eq(e.data, "a\nb\tc\\d/e\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\b\f\r");
    cr_assert_str_eq(e.id, "7");
    cr_assert_str_eq(e.name, "");
    cr_assert(!e.has_instance);
    cr_assert_null(e.type);
    logentry_release(&e);
}

Test(logentry, a_dropped_marker)
{
    static const char obj[] =
        " { \"dropped\" : 1234 , \"reason\" : \"older than the log window\" } ";
    struct logentry e;

    logentry_init(&e);
    cr_assert_eq(logentry_parse(&e, obj, strlen(obj)), ST_OK);
    cr_assert(e.has_dropped);
    cr_assert_eq(e.dropped, 1234);
    cr_assert_str_eq(e.reason, "older than the log window");
    cr_assert_null(e.data);
    cr_assert_null(e.id);
    logentry_release(&e);
}

Test(logentry, nested_values_and_arrays_are_skipped)
{
    static const char obj[] = "{\"x\":[1,{\"data\":\"no\"},\"]}\"],\"y\":{\"a\":{\"b\":[]}},"
                              "\"t\":true,\"f\":false,\"n\":null,\"r\":-1.5e3,\"data\":\"yes\"}";
    struct logentry e;

    logentry_init(&e);
    cr_assert_eq(logentry_parse(&e, obj, strlen(obj)), ST_OK);
    cr_assert_str_eq(e.data, "yes");
    logentry_release(&e);
}

Test(logentry, invalid_objects_are_refused_without_crashing)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"data\"",
        "{\"data\":",
        "{\"data\":\"abc",
        "{\"data\":\"a\\x\"}",
        "{\"data\":\"a\\u12\"}",
        "{\"data\":\"\\ud83d\"}",
        "{\"data\":\"\\ude00\"}",
        "{\"data\":\"a\nb\"}",
        "{\"data\":\"a\"",
        "{\"data\":\"a\" \"b\"}",
        "{\"data\":\"a\",}x",
        "{\"a\":1}}",
        "{data:1}",
        "{\"a\":}",
        "{\"a\":[1,2}",
    };
    struct logentry e;

    logentry_init(&e);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(logentry_parse(&e, bad[i], strlen(bad[i])), ST_INVALID, "accepted: %s",
                     bad[i]);
        cr_assert_null(e.data);
    }
    /* every prefix of a good object is refused, the whole one accepted */
    {
        static const char good[] = "{\"id\":1,\"node\":{\"name\":\"n\"},\"data\":\"x\\u00e9\"}";
        size_t n = strlen(good);
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(logentry_parse(&e, good, k), ST_INVALID, "prefix %zu accepted", k);
        cr_assert_eq(logentry_parse(&e, good, n), ST_OK);
        cr_assert_str_eq(e.data, "x\xc3\xa9");
    }
    logentry_release(&e);
}
