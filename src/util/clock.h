/* clock: the wall clock behind the queue's decisions (arrival times,
 * retry backoff, expiry, delay notices, delivery delays in the log), and
 * the monotonic clock that deadlines and ages are measured with.
 *
 * Everything in the queue process that decides by the time of day asks
 * here instead of calling time() or gettimeofday(), so unit tests can move
 * the clock forward by days without sleeping. Queue IDs and the store's
 * sync bookkeeping keep the system clock: they order real events. */
#ifndef TERN_UTIL_CLOCK_H
#define TERN_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds since the epoch. */
int64_t clock_now_us(void);
/* Seconds since the epoch. */
time_t clock_now(void);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines and ages, which must not
 * jump with the time of day (never frozen by tests). */
int64_t clock_monotonic_ms(void);

#ifdef TERN_TEST_BUILD
/* Freezes the clock at us microseconds since the epoch; 0 lets it run again. */
void clock_test_set_us(int64_t us);
#endif

#endif
