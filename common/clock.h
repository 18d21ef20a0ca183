/* common/clock.h -- monotonic and wall-clock time in nanoseconds. */
#pragma once

#include <stdint.h>
#include <time.h>

#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_SEC UINT64_C(1000000000)

static inline uint64_t clock_ns(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}
static inline uint64_t now_monotonic_ns(void) {
        return clock_ns(CLOCK_MONOTONIC);
}
static inline uint64_t now_realtime_ns(void) {
        return clock_ns(CLOCK_REALTIME);
}
/* REALTIME_NS as "2026-12-07T22:49:47Z" (UTC, whole seconds). */
static inline void format_utc_time(uint64_t realtime_ns, char buf[static 32]) {
        time_t t = (time_t) (realtime_ns / NSEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
