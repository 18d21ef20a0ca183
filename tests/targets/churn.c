/* tests/targets/churn.c -- a process whose threads appear and vanish all the time.
 *
 * A snapshot of this process always races with thread creation and exit: the task list
 * read from /proc is stale by the time each thread is stopped, threads exit between
 * seize and interrupt, and new ones are born mid-snapshot. The profiler must answer
 * every request anyway, never hang and never leave a thread stopped.
 *
 * main keeps about CHURN_ALIVE short-lived threads ("churn-short", each sleeps 0-2 ms and
 * exits) alive at any moment, next to a few long-lived named threads that sleep. It
 * prints `ready PID` once the long-lived threads run and the churn has started.
 * `--exit-after-ms N` exits cleanly after N ms. */

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "target-args.h"

#define CHURN_ALIVE 20
#define N_LONG 3
/* Small stacks stay in glibc's stack cache, so the churn costs clone() and little mmap. */
#define SHORT_STACK_SIZE (256 * 1024)

static sem_t slots;                     /* free places for short-lived threads */
static atomic_int long_started;
static volatile int side_effect;

static void die(const char *what, int err) {
        fprintf(stderr, "cprofd-test-churn: %s: %s\n", what, strerror(err));
        exit(EXIT_FAILURE);
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((noinline)) static void short_lived_sleep(long ns) {
        struct timespec ts = { .tv_nsec = ns };

        (void) nanosleep(&ts, NULL);
        side_effect++;
}

static void *short_lived_main(void *arg) {
        /* A cheap per-thread pseudo-random duration in [0, 2] ms. */
        long ns = (long) ((uintptr_t) arg % 2000001);

        (void) pthread_setname_np(pthread_self(), "churn-short");
        short_lived_sleep(ns);
        sem_post(&slots);
        return NULL;
}

__attribute__((noinline)) static void long_lived_sleep(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
}

static void *long_lived_main(void *arg) {
        atomic_fetch_add(&long_started, 1);
        long_lived_sleep();
        side_effect++;
        return NULL;
}

int main(int argc, char *argv[]) {
        pthread_attr_t attr;
        long exit_after_ms;
        int64_t deadline = 0;
        uint64_t seed = 88172645463325252ull;
        unsigned long created = 0;
        int r;

        r = target_parse_args(argc, argv, "cprofd-test-churn", &exit_after_ms);
        if (r >= 0)
                return r;

        if (sem_init(&slots, 0, CHURN_ALIVE) < 0)
                die("sem_init", errno);

        for (int i = 0; i < N_LONG; i++) {
                pthread_t t;
                char name[16];

                r = pthread_create(&t, NULL, long_lived_main, NULL);
                if (r != 0)
                        die("pthread_create", r);
                snprintf(name, sizeof name, "churn-long-%d", i);
                (void) pthread_setname_np(t, name);
        }
        while (atomic_load(&long_started) < N_LONG)
                usleep(1000);

        r = pthread_attr_init(&attr);
        if (r == 0)
                r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0)
                r = pthread_attr_setstacksize(&attr, SHORT_STACK_SIZE);
        if (r != 0)
                die("pthread_attr", r);

        if (exit_after_ms > 0)
                deadline = now_ms() + exit_after_ms;

        for (;;) {
                pthread_t t;

                while (sem_wait(&slots) < 0)
                        if (errno != EINTR)
                                die("sem_wait", errno);

                seed ^= seed << 13;     /* xorshift64 */
                seed ^= seed >> 7;
                seed ^= seed << 17;
                r = pthread_create(&t, &attr, short_lived_main, (void *) (uintptr_t) seed);
                if (r == EAGAIN) {
                        /* Out of threads for a moment (a limit, or exits lagging behind):
                         * give the slot back and retry shortly. */
                        sem_post(&slots);
                        usleep(1000);
                } else if (r != 0)
                        die("pthread_create", r);

                if (++created == CHURN_ALIVE) {
                        printf("ready %d\n", (int) getpid());
                        fflush(stdout);
                }
                if (deadline > 0 && now_ms() >= deadline)
                        exit(EXIT_SUCCESS);
        }
}
