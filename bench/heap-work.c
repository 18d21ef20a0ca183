/* bench/heap-work.c -- a fixed number of malloc/free pairs, timed, for bench/heap-overhead.
 *
 *   heap-work [PAIRS]          (default 20000000: a second or two here)
 *
 * A window of WINDOW live blocks: each pair frees the block in a pseudo-random slot and
 * puts a new one there, of a pseudo-random size from 16 bytes to 4 KiB (a power-of-two
 * class, then uniform within it, so small blocks are the most frequent, as in most
 * programs), and writes a few bytes into it. A warm-up of WARMUP pairs runs first, so the
 * allocator's arena and caches are in their steady state; then it prints `ready PID` and
 * waits for SIGUSR1, for a heap tracker or a probe to be in place before the timed part.
 * Then it prints `elapsed SECONDS cpu SECONDS pairs N ns_per_pair NS`: wall time
 * (CLOCK_MONOTONIC) from SIGUSR1 to the last pair, the process's user + system time over
 * the same span (every thread's: a tracker's own thread counts, and so does the kernel's
 * work for a uprobe), and the wall time per pair. Then it waits to be killed, so that the
 * tracker can be asked for its profile. Built -O2 like the test targets. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench-clock.h"
#include "target-signal.h"

#define _noinline_ __attribute__((noinline, noipa))
#define WINDOW 512
#define WARMUP 1000000L

static unsigned char *slots[WINDOW];
static volatile unsigned sink;
static volatile sig_atomic_t started;

static void on_usr1(int sig) {
        started = 1;
}

static inline uint64_t next_random(uint64_t *x) {
        /* xorshift64*: a few cycles, no calls. */
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        return *x * UINT64_C(2685821657736338717);
}

_noinline_ static void pairs(long n, uint64_t *x) {
        for (long i = 0; i < n; i++) {
                uint64_t r = next_random(x);
                unsigned slot = (unsigned) (r % WINDOW);
                unsigned class = (unsigned) ((r >> 16) % 8);          /* 16 << 0 … 16 << 7 */
                size_t size = ((size_t) 16 << class) + (size_t) ((r >> 24) % ((uint64_t) 16 << class));
                unsigned char *p;

                sink += slots[slot][0];
                free(slots[slot]);
                p = malloc(size);
                if (!p) {
                        fprintf(stderr, "heap-work: malloc(%zu) failed\n", size);
                        exit(1);
                }
                p[0] = (unsigned char) r;
                p[size / 2] = (unsigned char) i;
                p[size - 1] = (unsigned char) (r >> 8);
                slots[slot] = p;
        }
}

int main(int argc, char *argv[]) {
        long n = 20000000;
        uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
        sigset_t waiting;

        if (argc > 2 || (argc == 2 && (n = strtol(argv[1], NULL, 10)) <= 0)) {
                fprintf(stderr, "Usage: heap-work [PAIRS]\n");
                return 2;
        }
        if (usr1_prepare(on_usr1, &waiting) != 0)
                return 1;
        for (int i = 0; i < WINDOW; i++)
                if (!(slots[i] = calloc(1, 16)))
                        return 1;
        pairs(WARMUP, &x);

        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        /* The only thread: cprofd borrows it to load its agent. */
        while (!started)
                sigsuspend(&waiting);

        double t0 = now(), c0 = cpu_seconds();
        pairs(n, &x);
        double elapsed = now() - t0, cpu = cpu_seconds() - c0;
        printf("elapsed %.6f cpu %.6f pairs %ld ns_per_pair %.2f\n", elapsed, cpu, n, elapsed * 1e9 / (double) n);
        fflush(stdout);
        for (;;)
                pause();
}
