#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

void buf_init(struct buf *b, size_t cap)
{
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void buf_release(struct buf *b)
{
    FREE_AND_NULL(b->ptr);
    b->len = 0;
    b->alloc = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

static enum status grow(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1, n;

    if (extra > (size_t)-1 / 2 - b->len || (b->cap && b->len + extra > b->cap))
        return ST_INVALID;
    if (need <= b->alloc)
        return ST_OK;
    n = b->alloc ? b->alloc : 64;
    while (n < need)
        n *= 2;
    b->ptr = xrealloc(b->ptr, n);
    b->alloc = n;
    return ST_OK;
}

enum status buf_append(struct buf *b, const void *data, size_t n)
{
    if (grow(b, n) != ST_OK)
        return ST_INVALID;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return ST_OK;
}

enum status buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum status buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n) != ST_OK)
        return ST_INVALID;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ST_OK;
}

char *buf_take(struct buf *b)
{
    char *p = b->ptr ? b->ptr : xstrdup("");
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
    b->ptr[b->len] = '\0';
}
