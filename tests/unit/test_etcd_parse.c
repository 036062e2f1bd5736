/* Unit tests for the socket-free parts of etcdclient/: prefix ends, the watch stream's
 * line splitter and the watch message parser, fed with canned gateway lines (captured from
 * etcd 3.4.23). No etcd needed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "etcdclient/etcd.h"
#include "etcdclient/etcd_internal.h"

Test(prefix_end, increments_last_byte)
{
    char *s = etcd_prefix_end("/reg/");
    cr_assert_str_eq(s, "/reg0");
    free(s);
    s = etcd_prefix_end("a\xff");
    cr_assert_str_eq(s, "b", "trailing 0xff bytes are dropped, then the last byte + 1");
    free(s);
    s = etcd_prefix_end("\xff\xff");
    cr_assert_str_eq(s, "", "no end: every key from the prefix on");
    free(s);
    s = etcd_prefix_end("");
    cr_assert_str_eq(s, "");
    free(s);
}

Test(prefix_end, request_json)
{
    json_t *req = json_object();
    etcd__set_key_range(req, "/a/", ETCD_PREFIX);
    cr_assert_str_eq(json_string_value(json_object_get(req, "key")), "L2Ev");       /* /a/ */
    cr_assert_str_eq(json_string_value(json_object_get(req, "range_end")), "L2Ew"); /* /a0 */
    json_decref(req);

    req = json_object();
    etcd__set_key_range(req, "", ETCD_PREFIX);
    cr_assert_str_eq(json_string_value(json_object_get(req, "key")), "AA==", "all keys: \\0");
    cr_assert_str_eq(json_string_value(json_object_get(req, "range_end")), "AA==");
    json_decref(req);

    req = json_object();
    etcd__set_key_range(req, "k", NULL);
    cr_assert_null(json_object_get(req, "range_end"));
    json_decref(req);
}

/* --- splitter ---------------------------------------------------------------------------- */

struct lines_seen {
    char lines[8][64];
    size_t n;
    size_t stop_at; /* return ST_CONFLICT for this line number (1-based), 0 = never */
};

static enum status collect(void *arg, const char *line, size_t len)
{
    struct lines_seen *s = arg;
    cr_assert_lt(s->n, 8);
    cr_assert_lt(len, sizeof(s->lines[0]));
    memcpy(s->lines[s->n], line, len);
    s->lines[s->n][len] = '\0';
    s->n++;
    return s->n == s->stop_at ? ST_CONFLICT : ST_OK;
}

Test(lines, partial_line_across_feeds)
{
    struct etcd__lines l;
    struct lines_seen s = {.n = 0};

    etcd__lines_init(&l, 64);
    const char *first = "{\"a\":1}\n{\"b\"";
    cr_assert_eq(etcd__lines_feed(&l, first, strlen(first), collect, &s), ST_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.lines[0], "{\"a\":1}");
    cr_assert_eq(etcd__lines_feed(&l, ":2", 2, collect, &s), ST_OK);
    cr_assert_eq(s.n, 1, "no newline yet: the tail is kept");
    const char *rest = "}\r\n\n  \n{\"c\":3}\n";
    cr_assert_eq(etcd__lines_feed(&l, rest, strlen(rest), collect, &s), ST_OK);
    cr_assert_eq(s.n, 3, "blank lines are skipped");
    cr_assert_str_eq(s.lines[1], "{\"b\":2}", "tail joined, \\r dropped");
    cr_assert_str_eq(s.lines[2], "{\"c\":3}");
    etcd__lines_release(&l);
}

Test(lines, cap_and_reset)
{
    struct etcd__lines l;
    struct lines_seen s = {.n = 0};
    char big[40];

    memset(big, 'x', sizeof(big));
    etcd__lines_init(&l, 16);
    cr_assert_eq(etcd__lines_feed(&l, "0123456789", 10, collect, &s), ST_OK);
    cr_assert_eq(etcd__lines_feed(&l, "0123456789", 10, collect, &s), ST_INVALID,
                 "a split line over the cap");
    etcd__lines_reset(&l);
    cr_assert_eq(etcd__lines_feed(&l, big, sizeof(big), collect, &s), ST_INVALID,
                 "a chunk without newline over the cap");
    etcd__lines_reset(&l);
    cr_assert_eq(etcd__lines_feed(&l, "xxxxxxxxxxxxxxxxxxxxxxxx\nok\n", 28, collect, &s),
                 ST_INVALID, "a whole line over the cap");
    etcd__lines_reset(&l);
    cr_assert_eq(etcd__lines_feed(&l, "0123456789abcdef\n", 17, collect, &s), ST_OK,
                 "exactly at the cap is fine");
    cr_assert_eq(s.n, 1);
    s.stop_at = 2;
    cr_assert_eq(etcd__lines_feed(&l, "a\nb\nc\n", 6, collect, &s), ST_CONFLICT,
                 "the callback's status stops the feed");
    cr_assert_eq(s.n, 2);
    etcd__lines_release(&l);
}

/* --- watch messages ------------------------------------------------------------------------ */

#define HDR "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"1\","

static const char created[] = "{\"result\":{" HDR "\"revision\":\"6\",\"raft_term\":\"2\"},"
                              "\"created\":true}}";
static const char events[] =
    "{\"result\":{" HDR "\"revision\":\"6\",\"raft_term\":\"2\"},\"events\":["
    "{\"kv\":{\"key\":\"L3cvYQ==\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
    "\"version\":\"1\",\"value\":\"eA==\"}},"
    "{\"kv\":{\"key\":\"L3cvYQ==\",\"create_revision\":\"3\",\"mod_revision\":\"4\","
    "\"version\":\"2\"},\"prev_kv\":{\"key\":\"L3cvYQ==\",\"create_revision\":\"3\","
    "\"mod_revision\":\"3\",\"version\":\"1\",\"value\":\"eA==\"}},"
    "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3cvYQ==\",\"mod_revision\":\"6\"}}]}}";
static const char progress[] = "{\"result\":{" HDR "\"revision\":\"9\",\"raft_term\":\"2\"}}}";
static const char compacted[] = "{\"result\":{" HDR "\"raft_term\":\"2\"},\"canceled\":true,"
                                "\"compact_revision\":\"4\"}}";
static const char denied[] =
    "{\"result\":{" HDR "\"revision\":\"6\"},\"watch_id\":\"-1\",\"created\":true,"
    "\"canceled\":true,\"cancel_reason\":\"rpc error: code = Unauthenticated desc = "
    "etcdserver: invalid auth token\"}}";
static const char stream_err[] = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
                                 "\"transport is closing\",\"http_status\":\"Service "
                                 "Unavailable\"}}";
static const char http_err[] = "{\"error\":\"etcdserver: invalid auth token\",\"message\":"
                               "\"etcdserver: invalid auth token\",\"code\":16}";

static void parse(const char *line, struct etcd__wmsg *m)
{
    struct err e = ERR_INIT;
    cr_assert_eq(etcd__wmsg_parse(line, strlen(line), m, &e), ST_OK, "%s", e.msg);
}

Test(wmsg, created_progress_compacted)
{
    struct etcd__wmsg m;

    parse(created, &m);
    cr_assert_eq(m.type, ETCD__WMSG_CREATED);
    cr_assert_eq(m.revision, 6);
    etcd__wmsg_release(&m);

    parse(progress, &m);
    cr_assert_eq(m.type, ETCD__WMSG_PROGRESS);
    cr_assert_eq(m.revision, 9);
    etcd__wmsg_release(&m);

    parse(compacted, &m);
    cr_assert_eq(m.type, ETCD__WMSG_COMPACTED);
    cr_assert_eq(m.compact_revision, 4);
    etcd__wmsg_release(&m);
}

Test(wmsg, events_put_without_type_and_delete)
{
    struct etcd__wmsg m;

    parse(events, &m);
    cr_assert_eq(m.type, ETCD__WMSG_EVENTS);
    cr_assert_eq(m.n_events, 3);
    cr_assert_eq(m.events[0].type, ETCD_EVENT_PUT, "no \"type\" means PUT");
    cr_assert_str_eq(m.events[0].kv.key, "/w/a");
    cr_assert_str_eq(m.events[0].kv.value, "x");
    cr_assert_eq(m.events[0].kv.value_len, 1);
    cr_assert_eq(m.events[0].kv.mod_revision, 3);
    cr_assert_null(m.events[0].prev_kv.key);
    cr_assert_str_eq(m.events[1].kv.value, "", "an omitted value is the empty value");
    cr_assert_eq(m.events[1].kv.version, 2);
    cr_assert_str_eq(m.events[1].prev_kv.value, "x");
    cr_assert_eq(m.events[1].prev_kv.mod_revision, 3);
    cr_assert_eq(m.events[2].type, ETCD_EVENT_DELETE);
    cr_assert_eq(m.events[2].kv.mod_revision, 6);
    cr_assert_null(m.events[2].kv.value);
    etcd__wmsg_release(&m);
}

Test(wmsg, errors)
{
    static const char bad_b64[] = "{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!\"}}]}}";
    struct etcd__wmsg m;
    struct err e = ERR_INIT;

    parse(denied, &m);
    cr_assert_eq(m.type, ETCD__WMSG_CANCELED, "canceled wins over created");
    cr_assert(etcd__is_token_error(0, m.reason));
    etcd__wmsg_release(&m);

    parse(stream_err, &m);
    cr_assert_eq(m.type, ETCD__WMSG_ERROR);
    cr_assert_eq(m.grpc_code, 14);
    cr_assert_str_eq(m.reason, "transport is closing");
    cr_assert_eq(etcd__grpc_status(m.grpc_code, m.reason), ST_RETRY);
    etcd__wmsg_release(&m);

    parse(http_err, &m);
    cr_assert_eq(m.type, ETCD__WMSG_ERROR);
    cr_assert_eq(m.grpc_code, 16);
    cr_assert_eq(etcd__grpc_status(m.grpc_code, m.reason), ST_DENIED);
    etcd__wmsg_release(&m);

    cr_assert_eq(etcd__wmsg_parse("{\"result\":", 10, &m, &e), ST_INVALID);
    etcd__wmsg_release(&m);
    cr_assert_eq(etcd__wmsg_parse("[1]", 3, &m, &e), ST_INVALID);
    etcd__wmsg_release(&m);
    cr_assert_eq(etcd__wmsg_parse(bad_b64, strlen(bad_b64), &m, &e), ST_INVALID, "bad base64");
    etcd__wmsg_release(&m);
}

/* A canned line fed in two pieces, split inside a base64 value, parses like the whole. */
struct one {
    struct etcd__wmsg m;
    int n;
};

static enum status parse_line(void *arg, const char *line, size_t len)
{
    struct one *o = arg;
    o->n++;
    return etcd__wmsg_parse(line, len, &o->m, NULL);
}

Test(wmsg, line_split_across_two_feeds)
{
    struct etcd__lines l;
    struct one o = {.n = 0};
    size_t half = strlen(events) / 2;
    struct buf stream = BUF_INIT;

    cr_assert_eq(buf_printf(&stream, "%s\n%s\n", events, progress), ST_OK);
    etcd__lines_init(&l, 4096);
    cr_assert_eq(etcd__lines_feed(&l, stream.ptr, half, parse_line, &o), ST_OK);
    cr_assert_eq(o.n, 0);
    cr_assert_eq(etcd__lines_feed(&l, stream.ptr + half, strlen(events) + 1 - half, parse_line, &o),
                 ST_OK);
    cr_assert_eq(o.n, 1);
    cr_assert_eq(o.m.type, ETCD__WMSG_EVENTS);
    cr_assert_eq(o.m.n_events, 3);
    cr_assert_eq(o.m.events[2].kv.mod_revision, 6);
    etcd__wmsg_release(&o.m);
    cr_assert_eq(etcd__lines_feed(&l, stream.ptr + strlen(events) + 1,
                                  stream.len - strlen(events) - 1, parse_line, &o),
                 ST_OK);
    cr_assert_eq(o.n, 2);
    cr_assert_eq(o.m.type, ETCD__WMSG_PROGRESS);
    etcd__wmsg_release(&o.m);
    etcd__lines_release(&l);
    buf_release(&stream);
}

Test(grpc, status_mapping)
{
    cr_assert_eq(etcd__grpc_status(14, "etcdserver: request timed out"), ST_RETRY);
    cr_assert_eq(etcd__grpc_status(7, "etcdserver: permission denied"), ST_DENIED);
    cr_assert_eq(etcd__grpc_status(16, "etcdserver: invalid auth token"), ST_DENIED);
    cr_assert_eq(etcd__grpc_status(3, "etcdserver: authentication failed, invalid user ID or "
                                      "password"),
                 ST_DENIED);
    cr_assert_eq(etcd__grpc_status(3, "etcdserver: key is not provided"), ST_INVALID);
    cr_assert_eq(etcd__grpc_status(11, "etcdserver: mvcc: required revision has been compacted"),
                 ST_COMPACTED);
    cr_assert_eq(etcd__grpc_status(11, "etcdserver: mvcc: required revision is a future "
                                       "revision"),
                 ST_INVALID);
    cr_assert_eq(etcd__grpc_status(5, "etcdserver: requested lease not found"), ST_NOTFOUND);
    cr_assert_eq(etcd__grpc_status(13, "boom"), ST_IO);
}
