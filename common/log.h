/* common/log.h -- one-line logs to stderr, level checked before formatting (redis serverLog).
 *
 *   2026-05-01T10:00:00.123Z W apiserver msg="cannot reach etcd: ..."
 *
 * Thread-safe (one write(2) per line). The component name is set once with log_init().
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include "common/err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

extern enum log_level log_min_level;

void log_init(const char *component, enum log_level min);
/* Parse "debug", "info", "warn", "error", "off"; -1 when unknown. */
int log_level_parse(const char *s);
void log_write(enum log_level lvl, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif
