/* common/cmdline.h -- what every daemon's option parsing needs (kontena-apiserver,
 * kontena-agent, and the controllers after them). */
#ifndef COMMON_CMDLINE_H
#define COMMON_CMDLINE_H

#include "common/err.h"

/* Print "<prog>: <message>" and "See '<prog> --help'." on stderr; returns 2, the exit
 * status of a usage error. */
int cmdline_usage(const char *prog, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* s as a decimal integer within [min, max], else -1 (NULL, empty, trailing text, out of
 * range). */
long cmdline_long(const char *s, long min, long max);

#endif
