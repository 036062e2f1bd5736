/* common/rpcmsg.h -- the agent protocol's messages, JSON text frames shaped like
 * MessagePack-RPC (docs/internals/agent.md), read and built in one place for both ends
 * (agent/ws.c and apiserver/agentws.c):
 *
 *     request       [0, id, method, params]
 *     response      [1, id, error, result]     error null on success
 *     notification  [2, method, params]
 */
#ifndef COMMON_RPCMSG_H
#define COMMON_RPCMSG_H

#include <jansson.h>
#include <stddef.h>

enum rpcmsg_type { RPCMSG_REQUEST = 0, RPCMSG_RESPONSE = 1, RPCMSG_NOTIFICATION = 2 };

/* A message read by rpcmsg_parse(): every pointer borrowed from the message. */
struct rpcmsg {
    json_int_t type;      /* m[0]: RPCMSG_*, or any other integer (the caller ignores it) */
    size_t size;          /* elements in the message */
    json_t *id;           /* request, response: m[1] as sent, NULL when absent */
    json_int_t idval;     /* its integer value, 0 when not an integer */
    const char *method;   /* request m[2], notification m[1]: NULL unless a string */
    json_t *params;       /* request m[3], notification m[2]: NULL when absent */
    json_t *error;        /* response m[2]: NULL when absent or null */
    json_t *result;       /* response m[3]: NULL when absent */
};

/* Read m: 0, or -1 when m is not an array whose first element is an integer. */
int rpcmsg_parse(const json_t *m, struct rpcmsg *r);

/* New references (NULL only when an argument cannot be packed, e.g. method not UTF-8). */
json_t *rpcmsg_request(json_int_t id, const char *method, const json_t *params);
json_t *rpcmsg_notification(const char *method, const json_t *params);
/* [1, id, error, result]: takes error and result (NULL: null); id is copied, and a request
 * without one (id NULL) gets no answer: NULL. */
json_t *rpcmsg_response(const json_t *id, json_t *error, json_t *result);
/* [1, id, null, result], taking result (NULL: null). */
json_t *rpcmsg_ok(json_int_t id, json_t *result);
/* [1, id, {"code": code, "message": message}, null]. */
json_t *rpcmsg_error(json_int_t id, int code, const char *message);
/* The error object {"code": code, "message": message} (new reference). */
json_t *rpcmsg_error_obj(int code, const char *message);

/* Frames for a WebSocket write: `headroom` bytes (LWS_PRE), then the compact JSON text of
 * msg, then a NUL not counted in *len. NULL when msg cannot be dumped. */
unsigned char *rpcmsg_frame(const json_t *msg, size_t headroom, size_t *len);
/* The same for a request whose params are already JSON text (params, plen bytes, taken as
 * is): [0,id,"method",params]. method must need no JSON escaping (the caller's constant). */
unsigned char *rpcmsg_frame_request_text(json_int_t id, const char *method, const char *params,
                                         size_t plen, size_t headroom, size_t *len);

#endif
