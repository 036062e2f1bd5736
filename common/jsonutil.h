/* common/jsonutil.h -- the two jansson accessors every daemon reads its etcd values with. */
#ifndef COMMON_JSONUTIL_H
#define COMMON_JSONUTIL_H

#include <jansson.h>

/* The string member k of o (borrowed), or NULL when o is not an object, k is missing or not
 * a string. */
const char *jstr(const json_t *o, const char *k);
/* The integer member k of o, or def when missing or not an integer. */
json_int_t jint(const json_t *o, const char *k, json_int_t def);

#endif
