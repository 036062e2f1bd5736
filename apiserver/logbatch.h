/* apiserver/logbatch.h -- a fast reader of /containers/log_batch requests.
 *
 * The agents' endpoint receives up to 50 such messages a second, each up to 512 KiB of JSON
 * with 1000 small objects; building them as jansson objects took most of the apiserver's
 * CPU. This reader walks the message text once and fills struct log_item (logstore.h) with
 * pointers into one scratch buffer holding the decoded strings. It accepts exactly JSON
 * (RFC 8259): anything else is refused, never guessed.
 */
#ifndef APISERVER_LOGBATCH_H
#define APISERVER_LOGBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "apiserver/logstore.h"

struct logbatch {
    long long msgid;         /* the request's id */
    struct log_item *items;  /* n items; strings point into scratch */
    size_t n;
    char *scratch;
};

/* Parse msg (len bytes): 1 if it is [0, <id>, "/containers/log_batch", [{"items": [...]}]]
 * and filled b (release with logbatch_release); 0 if it is another message (b untouched);
 * -1 if it is a log_batch request that is not valid (b->msgid set when it could be read;
 * *why says what). Items that are not objects are skipped; values of unknown keys are
 * skipped; a string field given as another type is NULL; instance is -1 unless an integer
 * 0..999999. At most max_items items. */
int logbatch_parse(const char *msg, size_t len, size_t max_items, struct logbatch *b,
                   const char **why);
void logbatch_release(struct logbatch *b);

#endif
