/* tests/targets/heap-leak.c -- a process with one leaking allocation site and one that
 * only churns, for heap profile tests.
 *
 * Two threads, each paced by the clock (a thread that falls behind, preempted on a busy
 * machine, catches up), so the rates hold over any window of a few seconds:
 *   "leaker":  leaker_main → leaker_loop → leak_site: malloc(1024), 1000 times a second,
 *              every block kept on a list (its first word links it), so it stays live:
 *              a heap profile must show leak_site with ~1 MiB of in-use space per second;
 *   "churner": churner_main → churn_loop → churn_site: malloc(4096), a few bytes written,
 *              free(), 20000 times a second: 80 MiB/s allocated, next to nothing in use.
 * `--spin` adds a "spinner" thread: spinner_main → spin_loop → spin_site, malloc(64) and
 * free() as fast as it can; then main prints `rate N pairs/s` every second, N counted per
 * second of the spinner's own CPU time, so that a busy machine does not make it look slow
 * (what a heap tracker costs each call, and whether that cost goes away when it detaches).
 *
 * main prints `ready PID` once every thread runs, then `progress LEAKED CHURNED` every
 * second (blocks leaked, pairs churned so far). Built like the other targets (-O2
 * -fomit-frame-pointer -fno-optimize-sibling-calls); every named function is noipa, so the
 * names are exact, and each pointer is passed through an empty asm so that no
 * malloc/free pair is optimized away. Options: --spin, --exit-after-ms N. */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "target-clock.h"

#define _noinline_ __attribute__((noinline, noipa))

#define LEAK_SIZE 1024
#define LEAK_PER_MS 1
#define CHURN_SIZE 4096
#define CHURN_PER_MS 20
#define SPIN_SIZE 64

static volatile int side_effect;
static atomic_int running;              /* threads that reached their loop */
static atomic_long leaked, churned, spun;

/* Makes P escape: the compiler must assume it is read, so malloc and free stay. */
static inline void escape(void *p) {
        __asm__ volatile("" : : "r"(p) : "memory");
}

static void die(const char *what, int err) {
        fprintf(stderr, "cprofd-test-heap-leak: %s: %s\n", what, strerror(err));
        exit(EXIT_FAILURE);
}

/* --- leaker */

struct block {
        struct block *next;
        char data[LEAK_SIZE - sizeof(struct block *)];
};

static struct block *leak_list;        /* every leaked block, newest first */

_noinline_ static void leak_site(void) {
        struct block *b = malloc(LEAK_SIZE);

        if (!b)
                die("malloc", ENOMEM);
        b->data[0] = 'L';
        b->data[sizeof b->data - 1] = 'L';
        b->next = leak_list;
        leak_list = b;
        escape(b);
        side_effect++;
}

_noinline_ static void leaker_loop(void) {
        int64_t start = now_us(), done = 0;

        atomic_fetch_add(&running, 1);
        for (;;) {
                for (int64_t n = due(start, LEAK_PER_MS, done); n > 0; n--, done++)
                        leak_site();
                atomic_store(&leaked, done);
        }
}

_noinline_ static void *leaker_main(void *arg) {
        leaker_loop();
        side_effect++;
        return NULL;
}

/* --- churner */

_noinline_ static void churn_site(void) {
        char *p = malloc(CHURN_SIZE);

        if (!p)
                die("malloc", ENOMEM);
        p[0] = 'C';
        p[CHURN_SIZE / 2] = 'C';
        p[CHURN_SIZE - 1] = 'C';
        escape(p);
        free(p);
        side_effect++;
}

_noinline_ static void churn_loop(void) {
        int64_t start = now_us(), done = 0;

        atomic_fetch_add(&running, 1);
        for (;;) {
                for (int64_t n = due(start, CHURN_PER_MS, done); n > 0; n--, done++)
                        churn_site();
                atomic_store(&churned, done);
        }
}

_noinline_ static void *churner_main(void *arg) {
        churn_loop();
        side_effect++;
        return NULL;
}

/* --- spinner */

_noinline_ static void spin_site(void) {
        char *p = malloc(SPIN_SIZE);

        if (!p)
                die("malloc", ENOMEM);
        p[0] = 'S';
        escape(p);
        free(p);
        side_effect++;
}

_noinline_ static void spin_loop(void) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                for (int i = 0; i < 1000; i++)
                        spin_site();
                atomic_fetch_add(&spun, 1000);
        }
}

_noinline_ static void *spinner_main(void *arg) {
        spin_loop();
        side_effect++;
        return NULL;
}

/* --- main */

static pthread_t spawn(void *(*fn)(void *), const char *name) {
        pthread_t t;
        int r = pthread_create(&t, NULL, fn, NULL);

        if (r != 0)
                die("pthread_create", r);
        (void) pthread_setname_np(t, name);
        return t;
}

static int64_t cpu_ns(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return -1;
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The spinner's pairs per second of its own CPU time, between two reports. */
typedef struct SpinRate {
        clockid_t clock;
        int64_t last_cpu;
        long last_spun;
} SpinRate;

/* RATE: NULL without --spin. */
static void report(void *rate) {
        SpinRate *r = rate;

        printf("progress %ld %ld\n", atomic_load(&leaked), atomic_load(&churned));
        if (r) {
                int64_t cpu = cpu_ns(r->clock);
                long n = atomic_load(&spun);
                if (cpu > r->last_cpu)
                        printf("rate %.0f pairs/s\n", (double) (n - r->last_spun) * 1e9 / (double) (cpu - r->last_cpu));
                r->last_cpu = cpu;
                r->last_spun = n;
        }
}

static int usage(FILE *f, int status) {
        fprintf(f, "Usage: cprofd-test-heap-leak [--spin] [--exit-after-ms N]\n");
        return status;
}

int main(int argc, char *argv[]) {
        long exit_after_ms = 0;
        int spin = 0, threads = 2;
        clockid_t spinner_clock = CLOCK_THREAD_CPUTIME_ID;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--spin") == 0)
                        spin = 1;
                else if (strcmp(argv[i], "--exit-after-ms") == 0 && i + 1 < argc) {
                        char *end;
                        exit_after_ms = strtol(argv[++i], &end, 10);
                        if (*end || exit_after_ms <= 0)
                                return usage(stderr, 2);
                } else if (strcmp(argv[i], "--help") == 0)
                        return usage(stdout, 0);
                else
                        return usage(stderr, 2);
        }

        spawn(leaker_main, "leaker");
        spawn(churner_main, "churner");
        if (spin) {
                int r = pthread_getcpuclockid(spawn(spinner_main, "spinner"), &spinner_clock);
                if (r != 0)
                        die("pthread_getcpuclockid", r);
                threads++;
        }
        while (atomic_load(&running) < threads)
                sleep_us(1000);

        printf("ready %d\n", (int) getpid());
        fflush(stdout);

        SpinRate rate = { .clock = spinner_clock };
        if (spin) {
                rate.last_cpu = cpu_ns(spinner_clock);
                rate.last_spun = atomic_load(&spun);
        }
        report_every_second(now_us(), exit_after_ms, report, spin ? &rate : NULL);
        return 0;
}
