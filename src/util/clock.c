/* clock: the wall clock behind the queue's decisions (see clock.h). */
#include "util/clock.h"

#include <sys/time.h>
#include <time.h>

#ifdef TERN_TEST_BUILD
static int64_t frozen_us;

void clock_test_set_us(int64_t us)
{
    frozen_us = us;
}
#endif

int64_t clock_now_us(void)
{
#ifdef TERN_TEST_BUILD
    if (frozen_us)
        return frozen_us;
#endif
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

time_t clock_now(void)
{
    return (time_t)(clock_now_us() / 1000000);
}

int64_t clock_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
