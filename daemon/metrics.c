/* daemon/metrics.c -- see metrics.h. Histograms use fixed buckets chosen around the goals:
 * a thread pause is meant to stay under 30 µs (p50) and 300 µs (p99). */
#include <stdlib.h>

#include "clock.h"
#include "metrics.h"

static const double pause_bounds[] = {
        5e-6, 10e-6, 20e-6, 30e-6, 50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3,
};
static const double duration_bounds[] = {
        1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5,
};

static void histogram_init(Histogram *h, const double *bounds, size_t n) {
        *h = (Histogram) { .bounds = bounds, .n_bounds = n, .counts = calloc(n + 1, sizeof(uint64_t)) };
        if (!h->counts)
                abort();
}

void metrics_init(Metrics *m) {
        *m = (Metrics) {};
        pthread_mutex_init(&m->lock, NULL);
        histogram_init(&m->thread_pause, pause_bounds, ARRAY_SIZE(pause_bounds));
        histogram_init(&m->snapshot_duration, duration_bounds, ARRAY_SIZE(duration_bounds));
}

void metrics_done(Metrics *m) {
        free(m->thread_pause.counts);
        free(m->snapshot_duration.counts);
        pthread_mutex_destroy(&m->lock);
        *m = (Metrics) {};
}

void histogram_observe(Histogram *h, uint64_t ns) {
        double s = (double) ns / (double) NSEC_PER_SEC;
        size_t i = 0;
        while (i < h->n_bounds && s > h->bounds[i])
                i++;
        h->counts[i]++;
        h->sum += s;
        h->count++;
}

void histogram_write(const Histogram *h, const char *name, const char *help, Buf *out) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        uint64_t cumulative = 0;
        for (size_t i = 0; i < h->n_bounds; i++) {
                cumulative += h->counts[i];
                buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long) cumulative);
        }
        cumulative += h->counts[h->n_bounds];
        buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) cumulative);
        buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", name, h->sum, name, (unsigned long long) h->count);
}

void metrics_write(Metrics *m, Buf *out) {
        metrics_lock(m);
        buf_printf(out,
                   "# HELP cprofd_snapshots_total Thread snapshots taken.\n"
                   "# TYPE cprofd_snapshots_total counter\n"
                   "cprofd_snapshots_total %llu\n"
                   "# HELP cprofd_snapshot_errors_total Snapshots that failed as a whole.\n"
                   "# TYPE cprofd_snapshot_errors_total counter\n"
                   "cprofd_snapshot_errors_total %llu\n"
                   "# HELP cprofd_threads_captured_total Threads stopped and copied.\n"
                   "# TYPE cprofd_threads_captured_total counter\n"
                   "cprofd_threads_captured_total %llu\n"
                   "# HELP cprofd_threads_unchanged_total Threads not stopped: they had not run since their last stop.\n"
                   "# TYPE cprofd_threads_unchanged_total counter\n"
                   "cprofd_threads_unchanged_total %llu\n"
                   "# HELP cprofd_threads_not_captured_total Threads listed but not captured.\n"
                   "# TYPE cprofd_threads_not_captured_total counter\n"
                   "cprofd_threads_not_captured_total %llu\n"
                   "# HELP cprofd_cpu_samples_total CPU profile samples read from the kernel.\n"
                   "# TYPE cprofd_cpu_samples_total counter\n"
                   "cprofd_cpu_samples_total %llu\n"
                   "# HELP cprofd_cpu_samples_lost_total CPU samples the kernel dropped (ring buffer full).\n"
                   "# TYPE cprofd_cpu_samples_lost_total counter\n"
                   "cprofd_cpu_samples_lost_total %llu\n"
                   "# HELP cprofd_symbolizer_modules Distinct modules (by build-id) in the cache.\n"
                   "# TYPE cprofd_symbolizer_modules gauge\n"
                   "cprofd_symbolizer_modules %llu\n"
                   "# HELP cprofd_symbolizer_locations Distinct symbolized locations in the cache.\n"
                   "# TYPE cprofd_symbolizer_locations gauge\n"
                   "cprofd_symbolizer_locations %llu\n"
                   "# HELP cprofd_debuginfod_fetches_started_total Downloads of missing debug files begun.\n"
                   "# TYPE cprofd_debuginfod_fetches_started_total counter\n"
                   "cprofd_debuginfod_fetches_started_total %llu\n"
                   "# HELP cprofd_debuginfod_fetches_succeeded_total Debug files downloaded.\n"
                   "# TYPE cprofd_debuginfod_fetches_succeeded_total counter\n"
                   "cprofd_debuginfod_fetches_succeeded_total %llu\n"
                   "# HELP cprofd_debuginfod_fetches_failed_total Downloads that failed (retried after 10 minutes).\n"
                   "# TYPE cprofd_debuginfod_fetches_failed_total counter\n"
                   "cprofd_debuginfod_fetches_failed_total %llu\n",
                   (unsigned long long) m->snapshots_total, (unsigned long long) m->snapshot_errors_total,
                   (unsigned long long) m->threads_captured_total,
                   (unsigned long long) m->threads_unchanged_total,
                   (unsigned long long) m->threads_not_captured_total,
                   (unsigned long long) m->cpu_samples_total, (unsigned long long) m->cpu_samples_lost_total,
                   (unsigned long long) m->symbolizer_modules, (unsigned long long) m->symbolizer_locations,
                   (unsigned long long) m->debuginfod_started, (unsigned long long) m->debuginfod_succeeded,
                   (unsigned long long) m->debuginfod_failed);
        histogram_write(&m->snapshot_duration, "cprofd_snapshot_duration_seconds",
                        "Time to snapshot every thread of a target (stop, copy, release).", out);
        histogram_write(&m->thread_pause, "cprofd_thread_pause_seconds",
                        "How long each thread was held stopped (interrupt to detach).", out);
        metrics_unlock(m);
}
