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
        histogram_init(&m->thread_pause, pause_bounds, ARRAY_SIZE(pause_bounds));
        histogram_init(&m->snapshot_duration, duration_bounds, ARRAY_SIZE(duration_bounds));
}

void metrics_done(Metrics *m) {
        free(m->thread_pause.counts);
        free(m->snapshot_duration.counts);
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
