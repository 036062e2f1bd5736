/* Unit tests for common/rpcmsg.c: the agent protocol's messages, read and built. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpcmsg.h"

#include "common/banned.h"

TestSuite(rpcmsg, .timeout = 10);

static json_t *load(const char *s)
{
    json_t *m = json_loads(s, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(m, "test input '%s' is not JSON", s);
    return m;
}

static void assert_json(json_t *got, const char *want)
{
    char *t;

    cr_assert_not_null(got, "NULL where %s was due", want);
    t = json_dumps(got, JSON_COMPACT);
    cr_assert_str_eq(t, want);
    free(t);
    json_decref(got);
}

Test(rpcmsg, parses_requests_responses_and_notifications)
{
    struct rpcmsg r;
    json_t *m = load("[0, 7, \"/nodes/update\", [\"id\", {}]]");

    cr_assert_eq(rpcmsg_parse(m, &r), 0);
    cr_assert_eq(r.type, RPCMSG_REQUEST);
    cr_assert_eq(r.size, 4);
    cr_assert_eq(r.idval, 7);
    cr_assert_str_eq(r.method, "/nodes/update");
    cr_assert(json_is_array(r.params) && json_array_size(r.params) == 2);
    cr_assert_null(r.error);
    json_decref(m);

    m = load("[1, 9, null, {\"acked\": {}}]");
    cr_assert_eq(rpcmsg_parse(m, &r), 0);
    cr_assert_eq(r.type, RPCMSG_RESPONSE);
    cr_assert_eq(r.idval, 9);
    cr_assert_null(r.error, "a null error is no error");
    cr_assert(json_is_object(r.result));
    cr_assert_null(r.method);
    json_decref(m);

    m = load("[1, 3, {\"code\": 500, \"message\": \"x\"}, null]");
    cr_assert_eq(rpcmsg_parse(m, &r), 0);
    cr_assert_eq(json_integer_value(json_object_get(r.error, "code")), 500);
    json_decref(m);

    m = load("[2, \"/containers/stats\", [{}]]");
    cr_assert_eq(rpcmsg_parse(m, &r), 0);
    cr_assert_eq(r.type, RPCMSG_NOTIFICATION);
    cr_assert_str_eq(r.method, "/containers/stats");
    cr_assert(json_is_array(r.params));
    cr_assert_null(r.id);
    json_decref(m);
}

Test(rpcmsg, odd_messages_parse_to_nothing_without_crashing)
{
    static const char *const ok[] = {"[5, 1, 2]", "[0]", "[1]", "[2]", "[0, \"x\", 3, 4]",
                                     "[1, 2.5, 7]", "[2, 1, 2, 3, 4]"};
    static const char *const bad[] = {"{}", "[]", "[\"0\", 1]", "[null]", "3", "\"x\"",
                                      "[0.0, 1, \"m\", []]"};
    struct rpcmsg r;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        json_t *m = load(ok[i]);
        cr_assert_eq(rpcmsg_parse(m, &r), 0, "%s", ok[i]);
        json_decref(m);
    }
    /* a non-integer id reads as 0, a non-string method as NULL, absent parts as NULL */
    {
        json_t *m = load("[0, \"x\", 3]");
        cr_assert_eq(rpcmsg_parse(m, &r), 0);
        cr_assert_eq(r.idval, 0);
        cr_assert(json_is_string(r.id));
        cr_assert_null(r.method);
        cr_assert_null(r.params);
        json_decref(m);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *m = load(bad[i]);
        r.size = 99;
        cr_assert_eq(rpcmsg_parse(m, &r), -1, "%s", bad[i]);
        cr_assert_eq(r.size, 0, "a refused message leaves nothing behind");
        json_decref(m);
    }
    cr_assert_eq(rpcmsg_parse(NULL, &r), -1);
}

Test(rpcmsg, builds_every_shape)
{
    json_t *p = load("[\"a\", 1]"), *id = json_integer(4), *sid = json_string("s");

    assert_json(rpcmsg_request(12, "/nodes/update", p), "[0,12,\"/nodes/update\",[\"a\",1]]");
    assert_json(rpcmsg_notification("/agent/node_info", p), "[2,\"/agent/node_info\",[\"a\",1]]");
    assert_json(rpcmsg_ok(5, json_object()), "[1,5,null,{}]");
    assert_json(rpcmsg_ok(5, NULL), "[1,5,null,null]");
    assert_json(rpcmsg_error(6, 422, "bad"), "[1,6,{\"code\":422,\"message\":\"bad\"},null]");
    assert_json(rpcmsg_error_obj(503, "gone"), "{\"code\":503,\"message\":\"gone\"}");
    assert_json(rpcmsg_response(id, NULL, json_true()), "[1,4,null,true]");
    assert_json(rpcmsg_response(sid, rpcmsg_error_obj(501, "no"), NULL),
                "[1,\"s\",{\"code\":501,\"message\":\"no\"},null]");
    cr_assert_null(rpcmsg_response(NULL, rpcmsg_error_obj(501, "no"), NULL),
                   "a request without an id gets no answer");
    cr_assert_null(rpcmsg_request(1, "m", NULL), "no params: nothing to send");
    json_decref(p);
    json_decref(id);
    json_decref(sid);
}

Test(rpcmsg, frames_have_headroom_and_a_nul)
{
    json_t *m = rpcmsg_ok(1, json_object());
    size_t len = 99;
    unsigned char *b = rpcmsg_frame(m, 16, &len);

    cr_assert_not_null(b);
    cr_assert_eq(len, strlen("[1,1,null,{}]"));
    cr_assert_eq(memcmp(b + 16, "[1,1,null,{}]", len + 1), 0);
    free(b);
    json_decref(m);
    cr_assert_null(rpcmsg_frame(NULL, 16, &len));
    cr_assert_eq(len, 0);

    b = rpcmsg_frame_request_text(42, "/containers/log_batch", "[{\"items\":[]}]", 14, 8, &len);
    cr_assert_str_eq((char *)b + 8, "[0,42,\"/containers/log_batch\",[{\"items\":[]}]]");
    cr_assert_eq(len, strlen((char *)b + 8));
    /* the text form reads back as the same request */
    {
        json_t *back = json_loadb((char *)b + 8, len, 0, NULL);
        struct rpcmsg r;
        cr_assert_eq(rpcmsg_parse(back, &r), 0);
        cr_assert_eq(r.type, RPCMSG_REQUEST);
        cr_assert_eq(r.idval, 42);
        cr_assert_str_eq(r.method, "/containers/log_batch");
        json_decref(back);
    }
    free(b);
}
