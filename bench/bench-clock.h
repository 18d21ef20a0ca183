/* bench/bench-clock.h -- the clocks the benchmark workloads time themselves with. */
#pragma once

#include <sys/resource.h>
#include <time.h>

/* CLOCK_MONOTONIC, in seconds. */
static inline double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* User + system time of the whole process (every thread), in seconds. */
static inline double cpu_seconds(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
