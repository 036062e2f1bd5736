/* Unit tests for apiserver/logstore (the master's log window) and the syslog formatting of
 * apiserver/logfwd: ids, cursors and dedup, filters, tail, window eviction, restarts. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiserver/logbatch.h"
#include "apiserver/logfwd.h"
#include "apiserver/logstore.h"
#include "common/xmalloc.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_logstore.XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
}

TestSuite(logstore, .init = setup, .fini = teardown, .timeout = 60);

static struct logstore *open_store(uint64_t window)
{
    struct logstore *s = NULL;
    struct err e = ERR_INIT;
    cr_assert_eq(logstore_open(dir, window, "ep1", &s, &e), ST_OK, "%s", e.msg);
    return s;
}

/* n lines "line <i>" of container cid at second base + i (ns offsets), service web of stack stk. */
static size_t put(struct logstore *s, const char *cid, const char *name, const char *svc,
                  long inst, const char *type, int from, int n, int64_t base)
{
    struct log_item *it = xcalloc((size_t)n, sizeof(*it));
    char **times = xcalloc((size_t)n, sizeof(*times)), **data = xcalloc((size_t)n, sizeof(*data));
    size_t stored = 0, dropped = 0;
    struct err e = ERR_INIT;

    for (int i = 0; i < n; i++) {
        char t[LOGSTORE_TIME_LEN + 1];
        logstore_time_format(base + (int64_t)(from + i) * 1000, t);
        times[i] = xstrdup(t);
        data[i] = xasprintf("line %d", from + i);
        it[i] = (struct log_item){.container_id = cid, .name = name, .node = "n1",
                                  .stack = svc ? "stk" : NULL, .service = svc, .type = type,
                                  .time = times[i], .data = data[i], .instance = inst};
    }
    cr_assert_eq(logstore_append(s, "grd", it, (size_t)n, &stored, &dropped, NULL, NULL, &e),
                 ST_OK, "%s", e.msg);
    for (int i = 0; i < n; i++) {
        free(times[i]);
        free(data[i]);
    }
    free(times);
    free(data);
    free(it);
    return stored;
}

#define T0 1795000000000000000LL /* 2026-11-17 */

/* Read everything from id `from` (no filter), parsed. */
static json_t *read_all(struct logstore *s, int64_t from, const struct log_filter *f,
                        int64_t *dropped)
{
    struct buf b = BUF_INIT;
    int64_t next, d;
    json_t *arr = json_array();

    buf_init(&b, 0);
    logstore_read(s, "grd", from, f, 1000000, 1u << 30, 0, &b, "\n", &next, &d);
    if (dropped)
        *dropped = d;
    for (char *p = b.ptr, *nl; p && (nl = memchr(p, '\n', b.len - (size_t)(p - b.ptr)));
         p = nl + 1) {
        json_error_t je;
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, &je);
        cr_assert(o, "unparsable stored line: %.*s (%s)", (int)(nl - p), p, je.text);
        json_array_append_new(arr, o);
    }
    buf_release(&b);
    return arr;
}

Test(logstore, time_parse_and_format)
{
    char t[LOGSTORE_TIME_LEN + 1];

    cr_assert_eq(logstore_time_parse("1970-01-01T00:00:01Z"), 1000000000LL);
    cr_assert_eq(logstore_time_parse("2026-11-23T06:12:28.1234567Z"),
                 logstore_time_parse("2026-11-23T06:12:28.123456700Z"));
    cr_assert_eq(logstore_time_parse("2026-11-23T08:12:28.5+02:00"),
                 logstore_time_parse("2026-11-23T06:12:28.5Z"));
    cr_assert_eq(logstore_time_parse("1700000000"), 1700000000LL * 1000000000LL);
    cr_assert_eq(logstore_time_parse("1700000000.25"), 1700000000250000000LL);
    cr_assert_eq(logstore_time_parse("yesterday"), -1);
    cr_assert_eq(logstore_time_parse("2026-13-01T00:00:00Z"), -1);
    cr_assert_eq(logstore_time_parse("2026-11-23T06:12:28"), -1);
    cr_assert_eq(logstore_time_parse(""), -1);
    cr_assert_eq(logstore_time_parse("8661-01-01T00:00:00Z"), -1); /* ns overflow int64 */
    cr_assert_eq(logstore_time_parse("211144255200"), -1);
    logstore_time_format(logstore_time_parse("2026-11-23T06:12:28.1234567Z"), t);
    cr_assert_str_eq(t, "2026-11-23T06:12:28.123456700Z");
}

Test(logstore, ids_are_consecutive_and_survive_a_reopen)
{
    struct logstore *s = open_store(1 << 20);
    int64_t first, next;
    json_t *all;
    char cur[LOGSTORE_TIME_LEN + 1];

    cr_assert_eq(put(s, "aa11", "stk.web-1", "web", 1, "stdout", 0, 10, T0), 10);
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(first, 1);
    cr_assert_eq(next, 11);
    logstore_close(s);

    s = open_store(1 << 20);
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(next, 11, "next id after reopen: %lld", (long long)next);
    cr_assert(logstore_cursor(s, "grd", "aa11", cur));
    cr_assert_eq(logstore_time_parse(cur), T0 + 9 * 1000);
    cr_assert_eq(put(s, "aa11", "stk.web-1", "web", 1, "stdout", 10, 5, T0), 5);
    all = read_all(s, 1, NULL, NULL);
    cr_assert_eq(json_array_size(all), 15);
    for (size_t i = 0; i < 15; i++) {
        json_t *o = json_array_get(all, i);
        char want[32];
        snprintf(want, sizeof(want), "line %zu", i);
        cr_assert_eq(json_integer_value(json_object_get(o, "id")), (json_int_t)i + 1);
        cr_assert_str_eq(json_string_value(json_object_get(o, "data")), want);
        cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "stk.web-1");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "service"), "id")),
                         "grd/stk/web");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "grid"), "name")),
                         "grd");
        cr_assert_eq(json_integer_value(json_object_get(o, "instance")), 1);
    }
    json_decref(all);
    logstore_close(s);
}

Test(logstore, lines_sent_twice_are_dropped_equal_times_in_one_batch_kept)
{
    struct logstore *s = open_store(1 << 20);
    struct log_item it[3];
    size_t stored, dropped;
    struct err e = ERR_INIT;
    const char *t = "2026-11-23T06:00:00.000000001Z";

    cr_assert_eq(put(s, "bb22", "a-1", NULL, -1, "stdout", 0, 5, T0), 5);
    /* the same five again (an agent resending after a reconnect) */
    cr_assert_eq(put(s, "bb22", "a-1", NULL, -1, "stdout", 0, 5, T0), 0);
    /* overlapping: 3 old, 2 new */
    cr_assert_eq(put(s, "bb22", "a-1", NULL, -1, "stdout", 2, 5, T0), 2);
    /* two lines with the same time in one batch are two lines */
    for (int i = 0; i < 3; i++)
        it[i] = (struct log_item){.container_id = "cc33", .name = "b-1", .node = "n1",
                                  .type = "stderr", .time = t, .data = "x", .instance = -1};
    cr_assert_eq(logstore_append(s, "grd", it, 2, &stored, &dropped, NULL, NULL, &e), ST_OK);
    cr_assert_eq(stored, 2);
    cr_assert_eq(logstore_append(s, "grd", it + 2, 1, &stored, &dropped, NULL, NULL, &e), ST_OK);
    cr_assert_eq(stored, 0);
    cr_assert_eq(dropped, 1);
    logstore_close(s);
}

Test(logstore, invalid_items_dropped_and_data_escaped)
{
    struct logstore *s = open_store(1 << 20);
    char big[LOGSTORE_DATA_MAX + 100];
    struct log_item it[5] = {
        {.container_id = "dd44", .name = "c-1", .node = "n1", .type = "stdout",
         .time = "2026-11-23T06:00:00Z", .data = "quote \" back \\ nl \n tab \t bad \xff\xfe end",
         .instance = -1},
        {.container_id = "not hex", .name = "c-1", .node = "n1", .type = "stdout",
         .time = "2026-11-23T06:00:01Z", .data = "x", .instance = -1},
        {.container_id = "dd44", .name = "c-1", .node = "n1", .type = "stdin",
         .time = "2026-11-23T06:00:02Z", .data = "x", .instance = -1},
        {.container_id = "dd44", .name = "c-1", .node = "n1", .type = "stdout",
         .time = "garbage", .data = "x", .instance = -1},
        {.container_id = "dd44", .name = "c-1", .node = "n1", .type = "stdout",
         .time = "2026-11-23T06:00:03Z", .data = big, .instance = -1},
    };
    size_t stored, dropped;
    struct err e = ERR_INIT;
    json_t *all;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(logstore_append(s, "grd", it, 5, &stored, &dropped, NULL, NULL, &e), ST_OK);
    cr_assert_eq(stored, 2);
    cr_assert_eq(dropped, 3);
    all = read_all(s, 1, NULL, NULL);
    cr_assert_eq(json_array_size(all), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "data")),
                     "quote \" back \\ nl \n tab \t bad ?? end");
    cr_assert(json_is_null(json_object_get(json_array_get(all, 0), "service")));
    cr_assert_eq(json_string_length(json_object_get(json_array_get(all, 1), "data")),
                 LOGSTORE_DATA_MAX);
    json_decref(all);
    /* a bad grid name */
    cr_assert_eq(logstore_append(s, "../x", it, 1, &stored, &dropped, NULL, NULL, &e),
                 ST_INVALID);
    logstore_close(s);
}

Test(logstore, filters_and_tail)
{
    struct logstore *s = open_store(1 << 20);
    const char *svc[] = {"stk/web", NULL}, *cont[] = {"stk.db-1", NULL}, *nodes[] = {"n2", NULL};
    struct log_filter f = {.services = svc, .instance = -1};
    json_t *all;
    int64_t start, first, next;
    char since[LOGSTORE_TIME_LEN + 1];

    /* interleaved: web-1, web-2, db-1 */
    for (int r = 0; r < 20; r++) {
        put(s, "a1", "stk.web-1", "web", 1, "stdout", r, 1, T0);
        put(s, "a2", "stk.web-2", "web", 2, "stderr", r, 1, T0);
        put(s, "a3", "stk.db-1", "db", 1, "stdout", r, 1, T0);
    }
    all = read_all(s, 1, &f, NULL);
    cr_assert_eq(json_array_size(all), 40);
    json_decref(all);
    f.instance = 2;
    all = read_all(s, 1, &f, NULL);
    cr_assert_eq(json_array_size(all), 20);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "type")), "stderr");
    json_decref(all);
    f = (struct log_filter){.containers = cont, .instance = -1, .q = "line 1"};
    all = read_all(s, 1, &f, NULL); /* line 1, line 10..19 */
    cr_assert_eq(json_array_size(all), 11);
    json_decref(all);
    f = (struct log_filter){.nodes = nodes, .instance = -1};
    all = read_all(s, 1, &f, NULL);
    cr_assert_eq(json_array_size(all), 0);
    json_decref(all);
    /* tail: the newest 5 lines of web-2 start at its line 15 */
    f = (struct log_filter){.services = svc, .instance = 2};
    start = logstore_tail_start(s, "grd", &f, 5);
    all = read_all(s, start, &f, NULL);
    cr_assert_eq(json_array_size(all), 5);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "data")), "line 15");
    json_decref(all);
    /* more than there are: from the oldest */
    cr_assert_eq(logstore_tail_start(s, "grd", &f, 1000), 1);
    /* no filter: next - limit */
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(logstore_tail_start(s, "grd", NULL, 7), next - 7);
    /* since: lines after T0 + 17 us */
    logstore_time_format(T0 + 17 * 1000, since);
    f = (struct log_filter){.instance = -1, .since = since};
    start = logstore_tail_start(s, "grd", &f, 100);
    all = read_all(s, start, &f, NULL);
    cr_assert_eq(json_array_size(all), 6, "%zu", json_array_size(all));
    json_decref(all);
    logstore_close(s);
}

Test(logstore, window_is_bounded_and_evicted_readers_are_told)
{
    struct logstore *s = open_store(64 * 1024); /* segments of 16 KiB */
    int64_t first, next, dropped;
    json_t *all;
    DIR *d;
    struct dirent *de;
    off_t total = 0;
    char *gd = xasprintf("%s/grd", dir);

    for (int i = 0; i < 100; i++)
        put(s, "e5", "x-1", NULL, -1, "stdout", i * 50, 50, T0);
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(next, 5001);
    cr_assert_gt(first, 1);
    d = opendir(gd);
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char *p = xasprintf("%s/%s", gd, de->d_name);
        if (strstr(de->d_name, ".seg") && stat(p, &st) == 0)
            total += st.st_size;
        free(p);
    }
    closedir(d);
    cr_assert_leq(total, 64 * 1024 + 1024, "segments hold %lld bytes", (long long)total);
    all = read_all(s, 1, NULL, &dropped);
    cr_assert_eq(dropped, first - 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(all, 0), "id")), first);
    cr_assert_eq((int64_t)json_array_size(all), next - first);
    json_decref(all);
    logstore_close(s);
    free(gd);
}

Test(logstore, partial_last_line_cut_and_cursors_rebuilt_without_their_file)
{
    struct logstore *s = open_store(1 << 20);
    char *p, cur[LOGSTORE_TIME_LEN + 1];
    FILE *f;
    int64_t first, next;

    put(s, "f6", "y-1", NULL, -1, "stdout", 0, 10, T0);
    logstore_close(s);
    p = xasprintf("%s/grd/%020d.seg", dir, 1);
    f = fopen(p, "a");
    cr_assert(f);
    fputs("{\"id\":11,\"created_at\":\"20", f); /* a crash mid-write */
    fclose(f);
    free(p);
    p = xasprintf("%s/grd/cursors.json", dir);
    unlink(p);
    free(p);
    s = open_store(1 << 20);
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(next, 11);
    cr_assert(logstore_cursor(s, "grd", "f6", cur));
    cr_assert_eq(logstore_time_parse(cur), T0 + 9 * 1000);
    cr_assert_eq(put(s, "f6", "y-1", NULL, -1, "stdout", 5, 10, T0), 5);
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(next, 16);
    logstore_close(s);
}

Test(logstore, read_stops_at_the_byte_cap_and_resumes_there)
{
    struct logstore *s = open_store(1 << 20);
    struct buf b = BUF_INIT;
    int64_t next, dropped, from = 1;
    size_t total = 0, n;

    put(s, "a7", "z-1", NULL, -1, "stdout", 0, 1000, T0);
    buf_init(&b, 0);
    do {
        buf_reset(&b);
        n = logstore_read(s, "grd", from, NULL, 300, 4096, 0, &b, "\n", &next, &dropped);
        cr_assert_leq(b.len, 4096);
        total += n;
        cr_assert_eq(next, from + (int64_t)n);
        from = next;
    } while (n);
    cr_assert_eq(total, 1000);
    buf_release(&b);
    logstore_close(s);
}

Test(logstore, syslog_format_and_addresses)
{
    char out[LOGFWD_MSG_MAX], why[200];
    struct log_item it = {.container_id = "ab", .name = "stk.web-1", .node = "node 1",
                          .stack = "stk", .service = "web", .type = "stderr",
                          .data = "hello world", .instance = 3};
    size_t n = logfwd_format(out, sizeof(out), &it, "2026-11-23T06:12:28.123456789Z");

    cr_assert_str_eq(out, "<11>1 2026-11-23T06:12:28.123456Z node_1 stk.web 3 stderr - hello world");
    cr_assert_eq(n, strlen(out));
    it.type = "stdout";
    it.service = NULL;
    it.instance = -1;
    logfwd_format(out, sizeof(out), &it, "2026-11-23T06:12:28.123456789Z");
    cr_assert_str_eq(out, "<14>1 2026-11-23T06:12:28.123456Z node_1 stk.web-1 - stdout - hello world");
    cr_assert(logfwd_address_ok("udp://127.0.0.1:514", why, sizeof(why)));
    cr_assert(logfwd_address_ok("tcp://logs.example.com:6514", why, sizeof(why)));
    cr_assert(logfwd_address_ok("tcp://[::1]:6514", why, sizeof(why)));
    cr_assert_not(logfwd_address_ok("http://x:1", why, sizeof(why)));
    cr_assert_not(logfwd_address_ok("udp://x", why, sizeof(why)));
    cr_assert_not(logfwd_address_ok("udp://x:0", why, sizeof(why)));
    cr_assert_not(logfwd_address_ok("udp://x y:10", why, sizeof(why)));
    cr_assert_not(logfwd_address_ok("udp://:10", why, sizeof(why)));
}

Test(logstore, one_apiserver_per_directory)
{
    struct logstore *s = open_store(1 << 20), *t = NULL;
    struct err e = ERR_INIT;

    /* flock is per open file description: a second open in the same process conflicts too */
    cr_assert_eq(logstore_open(dir, 1 << 20, "ep1", &t, &e), ST_CONFLICT);
    cr_assert(strstr(e.msg, "in use by another apiserver"), "%s", e.msg);
    cr_assert_null(t);
    logstore_close(s);
    t = open_store(1 << 20);
    logstore_close(t);
}

Test(logstore, a_read_examines_at_most_max_scan_lines)
{
    struct logstore *s = open_store(1 << 20);
    const char *cont[] = {"nobody", NULL};
    struct log_filter f = {.containers = cont, .instance = -1};
    struct buf b = BUF_INIT;
    int64_t next, dropped;

    put(s, "a8", "w-1", NULL, -1, "stdout", 0, 500, T0);
    buf_init(&b, 0);
    cr_assert_eq(logstore_read(s, "grd", 1, &f, 300, 65536, 100, &b, "\n", &next, &dropped), 0);
    cr_assert_eq(next, 101);
    cr_assert_eq(logstore_read(s, "grd", next, &f, 300, 65536, 1000, &b, "\n", &next, &dropped),
                 0);
    cr_assert_eq(next, 501);
    buf_release(&b);
    logstore_close(s);
}

/* --- logbatch: the fast reader of /containers/log_batch ----------------------------------- */

Test(logbatch, reads_items_like_a_json_parser)
{
    const char *msg =
        " [0, 42 ,\"/containers/log_batch\",[{\"other\": {\"a\": [1, 2.5e3, true, false, null]},"
        "\"items\":[{\"id\":\"ab12\",\"name\":\"stk.web-1\",\"node\":\"x\",\"stack\":\"stk\","
        "\"service\":\"web\",\"instance\":3,\"time\":\"2026-11-23T06:00:00.5Z\",\"type\":\"stdout\","
        "\"data\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\ud800 end\"},"
        "7, {\"id\":\"cd34\",\"name\":\"loner\",\"stack\":null,\"service\":null,\"instance\":null,"
        "\"time\":\"t\",\"type\":\"stderr\",\"data\":\"\",\"extra\":[[[]]]},"
        "{\"instance\":-1,\"data\":5}]}] ] ";
    struct logbatch b;
    const char *why;

    cr_assert_eq(logbatch_parse(msg, strlen(msg), 100, &b, &why), 1, "%s", why ? why : "");
    cr_assert_eq(b.msgid, 42);
    cr_assert_eq(b.n, 3);
    cr_assert_str_eq(b.items[0].container_id, "ab12");
    cr_assert_str_eq(b.items[0].stack, "stk");
    cr_assert_eq(b.items[0].instance, 3);
    cr_assert_str_eq(b.items[0].time, "2026-11-23T06:00:00.5Z");
    cr_assert_str_eq(b.items[0].data,
                     "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80 ? end");
    cr_assert_null(b.items[1].stack);
    cr_assert_null(b.items[1].service);
    cr_assert_eq(b.items[1].instance, -1);
    cr_assert_str_eq(b.items[1].data, "");
    cr_assert_eq(b.items[2].instance, -1);
    cr_assert_null(b.items[2].data);
    cr_assert_null(b.items[2].container_id);
    logbatch_release(&b);
}

Test(logbatch, other_messages_pass_and_bad_batches_are_refused)
{
    static const char *other[] = {
        "[0, 1, \"/nodes/update\", []]", "[2, \"/containers/stats\", [{}]]",
        "[1, 3, null, {}]", "", "garbage", "[0, 1, \"/containers/log_cursor\", [[]]]",
    };
    static const char *bad[] = {
        "[0, 1, \"/containers/log_batch\"]",
        "[0, 1, \"/containers/log_batch\", [{}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": 5}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": \"a}]}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": \"\\x\"}]}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": \"\\u12\"}]}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": 01}]}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": \"a\"}]}]] x",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{\"id\": \"a\n\"}]}]]",
        "[0, 1, \"/containers/log_batch\", [{\"items\": [{}, {}, {}]}]]", /* over max_items 2 */
        "[0, 1, \"/containers/log_batch\", [{\"items\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    };
    struct logbatch b;
    const char *why;

    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        cr_assert_eq(logbatch_parse(other[i], strlen(other[i]), 2, &b, &why), 0, "%s", other[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(logbatch_parse(bad[i], strlen(bad[i]), 2, &b, &why), -1, "%s", bad[i]);
        cr_assert_eq(b.msgid, 1);
        cr_assert(why && *why);
        cr_assert_null(b.items);
    }
    /* every prefix of a good message is refused or passed on, never read past its end */
    {
        const char *good = "[0,9,\"/containers/log_batch\",[{\"items\":[{\"id\":\"ab\","
                           "\"data\":\"x\\u00e9\\ud83d\\ude00\",\"instance\":1}]}]]";
        char *cut;
        for (size_t n = 0; n < strlen(good); n++) {
            int rc;
            cut = xmalloc(n ? n : 1);
            memcpy(cut, good, n);
            rc = logbatch_parse(cut, n, 10, &b, &why);
            cr_assert_neq(rc, 1, "prefix of %zu accepted", n);
            free(cut);
        }
        cr_assert_eq(logbatch_parse(good, strlen(good), 10, &b, &why), 1);
        logbatch_release(&b);
    }
}

Test(logstore, a_window_of_another_cluster_is_wiped)
{
    struct logstore *s = open_store(1 << 20), *t = NULL;
    struct err e = ERR_INIT;
    int64_t first, next;

    put(s, "a9", "v-1", NULL, -1, "stdout", 0, 10, T0);
    logstore_close(s);
    s = open_store(1 << 20); /* same epoch: kept */
    logstore_bounds(s, "grd", &first, &next);
    cr_assert_eq(next, 11);
    logstore_close(s);
    cr_assert_eq(logstore_open(dir, 1 << 20, "ep2", &t, &e), ST_OK, "%s", e.msg);
    logstore_bounds(t, "grd", &first, &next);
    cr_assert_eq(next, 1, "the old cluster's lines are gone");
    cr_assert_not(logstore_cursor(t, "grd", "a9", (char[LOGSTORE_TIME_LEN + 1]){0}));
    cr_assert_eq(put(t, "a9", "v-1", NULL, -1, "stdout", 0, 3, T0), 3);
    logstore_close(t);
}
