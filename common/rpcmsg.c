/* common/rpcmsg.c -- the agent protocol's message framing (see rpcmsg.h). */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/rpcmsg.h"
#include "common/xmalloc.h"

#include "common/banned.h"

int rpcmsg_parse(const json_t *m, struct rpcmsg *r)
{
    const json_t *t = json_array_get(m, 0);

    memset(r, 0, sizeof(*r));
    if (!json_is_array(m) || !json_is_integer(t))
        return -1;
    r->type = json_integer_value(t);
    r->size = json_array_size(m);
    switch (r->type) {
    case RPCMSG_REQUEST:
        r->id = json_array_get(m, 1);
        r->method = json_string_value(json_array_get(m, 2));
        r->params = json_array_get(m, 3);
        break;
    case RPCMSG_RESPONSE:
        r->id = json_array_get(m, 1);
        r->error = json_array_get(m, 2);
        if (json_is_null(r->error))
            r->error = NULL;
        r->result = json_array_get(m, 3);
        break;
    case RPCMSG_NOTIFICATION:
        r->method = json_string_value(json_array_get(m, 1));
        r->params = json_array_get(m, 2);
        break;
    default:
        break;
    }
    r->idval = json_integer_value(r->id);
    return 0;
}

json_t *rpcmsg_request(json_int_t id, const char *method, const json_t *params)
{
    return json_pack("[i, I, s, O]", RPCMSG_REQUEST, id, method, params);
}

json_t *rpcmsg_notification(const char *method, const json_t *params)
{
    return json_pack("[i, s, O]", RPCMSG_NOTIFICATION, method, params);
}

json_t *rpcmsg_response(const json_t *id, json_t *error, json_t *result)
{
    if (!id) {
        json_decref(error);
        json_decref(result);
        return NULL;
    }
    return json_pack("[i, O, o, o]", RPCMSG_RESPONSE, id, error ? error : json_null(),
                     result ? result : json_null());
}

json_t *rpcmsg_ok(json_int_t id, json_t *result)
{
    return json_pack("[i, I, n, o]", RPCMSG_RESPONSE, id, result ? result : json_null());
}

json_t *rpcmsg_error_obj(int code, const char *message)
{
    return json_pack("{s:i, s:s}", "code", code, "message", message);
}

json_t *rpcmsg_error(json_int_t id, int code, const char *message)
{
    return json_pack("[i, I, o, n]", RPCMSG_RESPONSE, id, rpcmsg_error_obj(code, message));
}

unsigned char *rpcmsg_frame(const json_t *msg, size_t headroom, size_t *len)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    unsigned char *b;

    *len = 0;
    if (!s)
        return NULL;
    *len = strlen(s);
    b = xmalloc(headroom + *len + 1);
    memcpy(b + headroom, s, *len + 1);
    free(s);
    return b;
}

unsigned char *rpcmsg_frame_request_text(json_int_t id, const char *method, const char *params,
                                         size_t plen, size_t headroom, size_t *len)
{
    char head[160];
    int hn = snprintf(head, sizeof(head), "[%d,%lld,\"%s\",", RPCMSG_REQUEST, (long long)id,
                      method);
    unsigned char *b;

    BUG_ON(hn < 0 || (size_t)hn >= sizeof(head));
    *len = (size_t)hn + plen + 1;
    b = xmalloc(headroom + *len + 1);
    memcpy(b + headroom, head, (size_t)hn);
    memcpy(b + headroom + hn, params, plen);
    b[headroom + *len - 1] = ']';
    b[headroom + *len] = '\0';
    return b;
}
