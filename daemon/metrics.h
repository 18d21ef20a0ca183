/* daemon/metrics.h -- the daemon's own numbers, exported as Prometheus text: snapshots,
 * their durations, the per-thread pause histogram, threads per target, caches. */
#pragma once

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

typedef struct Metrics {
        uint64_t snapshots_total;
        uint64_t snapshot_errors_total;
        uint64_t threads_captured_total;
        uint64_t threads_not_captured_total;
        uint64_t http_requests_total;
        Histogram snapshot_duration;
        Histogram thread_pause;
} Metrics;

void metrics_init(Metrics *m);
void metrics_done(Metrics *m);
void histogram_observe(Histogram *h, uint64_t ns);
/* Appends NAME's histogram in the exposition format. */
void histogram_write(const Histogram *h, const char *name, const char *help, Buf *out);
