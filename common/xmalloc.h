/* common/xmalloc.h -- allocation that aborts on out-of-memory (redis zmalloc), for the
 * daemons and the CLI: no caller carries an OOM path. */
#ifndef COMMON_XMALLOC_H
#define COMMON_XMALLOC_H

#include <stddef.h>

#include "common/err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted string in fresh memory; caller frees. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Free *pp and set it to NULL, so no reachable pointer dangles. */
#define FREE_AND_NULL(p)                                                                           \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
