/* bench/pause-bench.c -- how long each thread of a process is held stopped by a snapshot.
 *
 * Takes ROUNDS snapshots of PID with attach/ (the same code the daemon uses) and prints
 * the distribution of per-thread pauses and of whole-snapshot durations as key=value
 * lines for bench/snapshot to read. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "snapshot.h"

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return (x > y) - (x < y);
}

static uint64_t percentile(const uint64_t *v, size_t n, double p) {
        size_t i = (size_t) (p * (double) (n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: pause-bench PID [ROUNDS]\n");
                return 2;
        }
        pid_t pid = (pid_t) atoi(argv[1]);
        int rounds = argc > 2 ? atoi(argv[2]) : 20;
        uint64_t *pauses = NULL, *durations = calloc((size_t) rounds, sizeof *durations);
        size_t n = 0, cap = 0, threads = 0;
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        for (int i = 0; i < rounds; i++) {
                Snapshot *s;
                int r = snapshot_take(pid, NULL, &s);
                if (r < 0) {
                        fprintf(stderr, "snapshot of %d failed: %d\n", (int) pid, r);
                        return 1;
                }
                durations[i] = s->duration_ns;
                threads = s->n_captured;
                for (size_t j = 0; j < s->n_threads; j++) {
                        if (s->threads[j].error)
                                continue;
                        if (n == cap) {
                                cap = cap ? cap * 2 : 4096;
                                pauses = realloc(pauses, cap * sizeof *pauses);
                                if (!pauses)
                                        return 1;
                        }
                        pauses[n++] = s->threads[j].pause_ns;
                }
                snapshot_free(s);
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        if (n == 0)
                return 1;
        double cpu_ns = (double) (c1.tv_sec - c0.tv_sec) * 1e9 + (double) (c1.tv_nsec - c0.tv_nsec);
        qsort(pauses, n, sizeof *pauses, cmp_u64);
        qsort(durations, (size_t) rounds, sizeof *durations, cmp_u64);
        printf("threads=%zu\nsamples=%zu\n", threads, n);
        printf("pause_p50_us=%.1f\npause_p90_us=%.1f\npause_p99_us=%.1f\npause_max_us=%.1f\n",
               percentile(pauses, n, 0.50) / 1e3, percentile(pauses, n, 0.90) / 1e3,
               percentile(pauses, n, 0.99) / 1e3, pauses[n - 1] / 1e3);
        printf("snapshot_p50_ms=%.2f\n", percentile(durations, (size_t) rounds, 0.5) / 1e6);
        printf("cpu_per_thread_us=%.1f\n", cpu_ns / (double) n / 1e3);
        free(pauses);
        free(durations);
        return 0;
}
