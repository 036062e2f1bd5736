/* apiserver/validate.h -- input checks shared by the handlers. Each returns 1 when valid. */
#ifndef APISERVER_VALIDATE_H
#define APISERVER_VALIDATE_H

#include <jansson.h>

#include "common/jsonutil.h"

/* Word characters or dashes, min..max long, not starting with '-'. */
int valid_name(const char *s, size_t min, size_t max);
/* IPv4 CIDR "a.b.c.d/n" with the host bits zero. */
int valid_cidr4(const char *s);
/* User identifier: "admin" or an e-mail-ish string of [A-Za-z0-9._%+@-], 1..254 chars. */
int valid_email(const char *s);
/* Every element of a JSON array is a string (NULL array counts as valid). */
int json_all_strings(const json_t *arr);
/* arr (may be NULL or not an array) holds the string s. */
int json_array_has_string(const json_t *arr, const char *s);
/* jstr(): common/jsonutil.h. */

#endif
