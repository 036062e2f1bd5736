#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

enum log_level log_min_level = LOG_INFO;
static const char *log_component = "kontena";

void log_init(const char *component, enum log_level min)
{
    log_component = component;
    log_min_level = min;
}

int log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    static const char letters[] = "DIWE";
    char line[4096], ts[40];
    va_list ap;
    int n;

    time_iso8601_now(ts, sizeof(ts));
    n = snprintf(line, sizeof(line), "%s %c %s ", ts, letters[lvl < 4 ? lvl : 3], log_component);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    /* One write so that lines of several threads never interleave. */
    if (write(STDERR_FILENO, line, (size_t)n) == -1)
        return;
}
