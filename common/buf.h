/* common/buf.h -- growable byte buffer with a size cap (curl dynbuf).
 *
 * A buf is a value embedded in other structs: BUF_INIT or buf_init(), then buf_release().
 * ptr is always NUL-terminated after a successful append (len does not count the NUL).
 * Everything read from the network goes through a buf with a cap; an append that would
 * pass the cap fails with ST_INVALID and leaves the buffer as it was.
 */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <stddef.h>

#include "common/err.h"

struct buf {
    char *ptr;
    size_t len;
    size_t alloc;
    size_t cap; /* 0 = no cap */
};

#define BUF_INIT {NULL, 0, 0, 0}

void buf_init(struct buf *b, size_t cap);
void buf_release(struct buf *b); /* frees memory; b is BUF_INIT-like again (keeps cap) */
void buf_reset(struct buf *b);   /* len = 0, keeps memory */
enum status buf_append(struct buf *b, const void *data, size_t n) WARN_UNUSED_RESULT;
enum status buf_puts(struct buf *b, const char *s) WARN_UNUSED_RESULT;
enum status buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3) WARN_UNUSED_RESULT;
/* Hand the memory to the caller (never NULL: "" when empty); b becomes empty. */
char *buf_take(struct buf *b);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
