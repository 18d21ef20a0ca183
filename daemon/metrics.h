/* daemon/metrics.h -- the daemon's own numbers, exported as Prometheus text: snapshots,
 * their durations, the per-thread pause histogram, threads per target, caches. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

typedef struct Histogram {
        const double *bounds;           /* upper bounds in seconds, ascending */
        size_t n_bounds;
        uint64_t *counts;               /* n_bounds + 1 (the last is +Inf) */
        double sum;
        uint64_t count;
} Histogram;

/* Updated on the worker thread, read on the loop: hold the lock around both. */
typedef struct Metrics {
        pthread_mutex_t lock;
        uint64_t snapshots_total;
        uint64_t snapshot_errors_total;
        uint64_t threads_captured_total;
        uint64_t threads_unchanged_total;
        uint64_t threads_not_captured_total;
        Histogram snapshot_duration;
        Histogram thread_pause;
        uint64_t cpu_samples_total;
        uint64_t cpu_samples_lost_total;
        uint64_t symbolizer_modules;    /* copied from the worker's symbolizer */
        uint64_t symbolizer_locations;
        uint64_t debuginfod_started;    /* copied from the symbolizer's fetcher */
        uint64_t debuginfod_succeeded;
        uint64_t debuginfod_failed;
} Metrics;

void metrics_init(Metrics *m);
static inline void metrics_lock(Metrics *m) {
        pthread_mutex_lock(&m->lock);
}
static inline void metrics_unlock(Metrics *m) {
        pthread_mutex_unlock(&m->lock);
}
void metrics_done(Metrics *m);
void histogram_observe(Histogram *h, uint64_t ns);
/* Appends every metric of M (taking its lock) in the exposition format. */
void metrics_write(Metrics *m, Buf *out);
/* Appends NAME's histogram in the exposition format. */
void histogram_write(const Histogram *h, const char *name, const char *help, Buf *out);
