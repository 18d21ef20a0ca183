/* bench/cpu-work.c -- a fixed amount of CPU work on two threads, timed, for bench/cpu-overhead.
 *
 *   cpu-work [ITERATIONS]      (per thread; default 48000: about 4 s here)
 *
 * Starts its two worker threads, prints `ready PID` and waits for SIGUSR1, so a profiler
 * can attach to every thread first; then both threads do ITERATIONS calls of a 10- to
 * 13-deep call chain ending in a dependent arithmetic loop (stacks worth unwinding), and
 * main prints `elapsed SECONDS cpu SECONDS`: from SIGUSR1 to both threads done, the wall
 * time (CLOCK_MONOTONIC) and the process's user + system time, which includes what the
 * kernel spends taking samples in its threads. Then it waits to be killed, its threads
 * idle but alive, so a profile running over it ends normally. Built like the test
 * targets: -O2 -fomit-frame-pointer -g, stacks unwind from DWARF CFI only. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench-clock.h"

#define _noinline_ __attribute__((noinline, noipa))
#define THREADS 2
#define LEAF_ITERATIONS 50000

static volatile uint64_t sink;
static volatile int side_effect;
static long iterations = 48000;
static pthread_barrier_t start, done;

_noinline_ static uint64_t leaf(uint64_t x) {
        for (int i = 0; i < LEAF_ITERATIONS; i++) {
                x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                x ^= x >> 29;
        }
        return x;
}

_noinline_ static uint64_t level(int depth, uint64_t x) {
        uint64_t r = depth == 0 ? leaf(x) : level(depth - 1, x + (uint64_t) depth);
        side_effect++;
        return r;
}

_noinline_ static void *worker(void *arg) {
        uint64_t x = (uint64_t) (uintptr_t) arg;

        pthread_barrier_wait(&start);
        for (long i = 0; i < iterations; i++)
                x = level(8 + (int) (i & 3), x);
        sink = x;
        /* Done, but not gone: perf record -p spins on the events of threads that exited. */
        pthread_barrier_wait(&done);
        for (;;)
                pause();
        return NULL;
}

int main(int argc, char *argv[]) {
        pthread_t threads[THREADS];
        sigset_t set;
        int sig;

        if (argc > 2 || (argc == 2 && (iterations = strtol(argv[1], NULL, 10)) <= 0)) {
                fprintf(stderr, "Usage: cpu-work [ITERATIONS]\n");
                return 2;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
            pthread_barrier_init(&start, NULL, THREADS + 1) != 0 ||
            pthread_barrier_init(&done, NULL, THREADS + 1) != 0)
                return 1;
        for (int i = 0; i < THREADS; i++) {
                int r = pthread_create(&threads[i], NULL, worker, (void *) (uintptr_t) (i + 1));
                if (r != 0) {
                        fprintf(stderr, "cpu-work: pthread_create: %s\n", strerror(r));
                        return 1;
                }
        }

        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        while (sigwait(&set, &sig) != 0)
                ;

        double t0 = now(), c0 = cpu_seconds();
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&done);
        printf("elapsed %.6f cpu %.6f\n", now() - t0, cpu_seconds() - c0);
        fflush(stdout);
        for (;;)
                pause();
}
