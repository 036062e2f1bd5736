/* common/timeutil.h -- clocks and timestamps. */
#ifndef COMMON_TIMEUTIL_H
#define COMMON_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds, for timeouts and backoff. */
int64_t time_mono_ms(void);
/* Wall clock in microseconds since the epoch. */
int64_t time_now_us(void);
/* UTC ISO-8601 with milliseconds, "2026-05-01T10:00:00.123Z", into out (>= 25 bytes). */
void time_iso8601_now(char *out, size_t len);
void time_iso8601(int64_t us, char *out, size_t len);
/* Parse "2026-05-01T10:00:00Z" / "...00.123Z" back to microseconds; -1 if malformed. */
int64_t time_iso8601_parse(const char *s);
void time_sleep_ms(int64_t ms);
/* The absolute time ms milliseconds from now on clock (CLOCK_MONOTONIC for a condition
 * variable created with pthread_condattr_setclock(CLOCK_MONOTONIC), else CLOCK_REALTIME):
 * the deadline pthread_cond_timedwait() takes. */
struct timespec time_deadline(clockid_t clock, int64_t ms);

#endif
