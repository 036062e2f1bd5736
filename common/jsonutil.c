#include "common/jsonutil.h"

#include "common/banned.h"

const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

json_int_t jint(const json_t *o, const char *k, json_int_t def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}
