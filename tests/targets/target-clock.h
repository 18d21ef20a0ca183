/* tests/targets/target-clock.h -- the clock the test targets pace themselves with (C and
 * C++). */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline int64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps US microseconds, through signals. */
static inline void sleep_us(long us) {
        struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}
