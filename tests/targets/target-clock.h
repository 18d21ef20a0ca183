/* tests/targets/target-clock.h -- the clock the test targets pace themselves with (C and
 * C++). */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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

/* How many of PER_MS-a-millisecond events are due since START_US, after DONE of them; when
 * none is, sleeps a millisecond first (bursts of PER_MS, not PER_MS wake-ups). */
static inline int64_t due(int64_t start_us, int per_ms, int64_t done) {
        int64_t n = (now_us() - start_us) * per_ms / 1000;

        if (n <= done) {
                sleep_us(1000);
                n = (now_us() - start_us) * per_ms / 1000;
        }
        return n - done;
}

/* A target's main loop once it is ready: every second from START_US, REPORT(ARG) prints
 * its `progress …` lines (then they are flushed); returns once EXIT_AFTER_MS have passed,
 * if it is > 0, else never. */
static inline void report_every_second(int64_t start_us, long exit_after_ms, void (*report)(void *), void *arg) {
        for (int64_t tick = 1;; tick++) {
                int64_t wait = start_us + tick * 1000000 - now_us();

                if (wait > 0)
                        sleep_us((long) wait);
                report(arg);
                fflush(stdout);
                if (exit_after_ms > 0 && now_us() - start_us >= exit_after_ms * 1000)
                        return;
        }
}
