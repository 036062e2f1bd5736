/* common/cmdline.c -- see cmdline.h. */
#include "common/cmdline.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/banned.h"

int cmdline_usage(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nSee '%s --help'.\n", prog);
    return 2;
}

long cmdline_long(const char *s, long min, long max)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    v = strtol(s, &end, 10);
    return (*end == '\0' && v >= min && v <= max) ? v : -1;
}
