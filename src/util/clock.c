/* clock: the wall clock behind the queue's decisions (see clock.h). */
#include "util/clock.h"

#include <sys/time.h>

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
