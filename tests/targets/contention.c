/* tests/targets/contention.c -- lock contention with a known answer, for the block and
 * mutex profiles.
 *
 * - ct_long_holder holds ct_hot_mu about 9 ms of every 10 ms (it sleeps inside the
 *   critical section) and releases it in ct_release_hot;
 * - ct_frequent_taker takes ct_hot_mu every millisecond, so it waits ~9 ms of each 10;
 * - ct_cond_waiter waits on ct_cv in ct_wait_for_signal; ct_signaller signals it every
 *   100 ms;
 * - ct_light_a and ct_light_b share ct_light_mu for a few microseconds every 2 ms: their
 *   waits are rare and short.
 *
 * Every thread measures its own waits: the time spent in pthread_mutex_lock (taker, light
 * pair) or pthread_cond_wait (waiter), and how many of those calls took longer than
 * 50 µs (a wait that slept). SIGUSR1 prints them as `stats ROLE waits N blocked_ns T`
 * lines (since the previous SIGUSR1, or the start), then `stats end`. The start prints
 * `ready PID` once every thread runs; with `--late`, the holder and the taker are started
 * only a second after that (threads a tracker must find by itself). Threads are named
 * ct-holder, ct-taker, ct-waiter, ct-signaller, ct-light-a and ct-light-b. Built like the other targets (-O2 -g
 * -fomit-frame-pointer -fno-optimize-sibling-calls); the functions a test names are
 * noipa, so they keep their names and frames. */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))
#define SLEPT_NS 50000                  /* a lock call this long slept */

pthread_mutex_t ct_hot_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t ct_light_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t ct_cv_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t ct_cv = PTHREAD_COND_INITIALIZER;
static int ct_generation;

enum { TAKER, WAITER, LIGHT_A, LIGHT_B, ROLES };
static const char *const role_names[ROLES] = { "taker", "waiter", "light_a", "light_b" };
static atomic_uint_least64_t waits[ROLES], blocked_ns[ROLES];
static atomic_int running;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void sleep_ns(long ns) {
        struct timespec ts = { ns / 1000000000, ns % 1000000000 };
        while (nanosleep(&ts, &ts) != 0)
                ;
}

static void account(int role, uint64_t t0) {
        uint64_t d = now_ns() - t0;
        if (d >= SLEPT_NS) {
                atomic_fetch_add(&waits[role], 1);
                atomic_fetch_add(&blocked_ns[role], d);
        }
}

static _noinline_ void ct_release_hot(void) {
        pthread_mutex_unlock(&ct_hot_mu);
}

static _noinline_ void *ct_long_holder(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                pthread_mutex_lock(&ct_hot_mu);
                sleep_ns(9000000);
                ct_release_hot();
                sleep_ns(1000000);
        }
        return arg;
}

static _noinline_ void ct_take_hot(void) {
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&ct_hot_mu);
        account(TAKER, t0);
        pthread_mutex_unlock(&ct_hot_mu);
}

static _noinline_ void *ct_frequent_taker(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                ct_take_hot();
                sleep_ns(1000000);
        }
        return arg;
}

static _noinline_ void ct_wait_for_signal(void) {
        pthread_mutex_lock(&ct_cv_mu);
        int seen = ct_generation;
        uint64_t t0 = now_ns();
        while (ct_generation == seen)
                pthread_cond_wait(&ct_cv, &ct_cv_mu);
        account(WAITER, t0);
        pthread_mutex_unlock(&ct_cv_mu);
}

static _noinline_ void *ct_cond_waiter(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;)
                ct_wait_for_signal();
        return arg;
}

static _noinline_ void *ct_signaller(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                sleep_ns(100000000);
                pthread_mutex_lock(&ct_cv_mu);
                ct_generation++;
                pthread_cond_signal(&ct_cv);
                pthread_mutex_unlock(&ct_cv_mu);
        }
        return arg;
}

static _noinline_ void ct_light_section(int role) {
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&ct_light_mu);
        account(role, t0);
        for (volatile int i = 0; i < 2000; i++)
                ;
        pthread_mutex_unlock(&ct_light_mu);
}

static _noinline_ void *ct_light_a(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                ct_light_section(LIGHT_A);
                sleep_ns(2000000);
        }
        return arg;
}

static _noinline_ void *ct_light_b(void *arg) {
        atomic_fetch_add(&running, 1);
        for (;;) {
                ct_light_section(LIGHT_B);
                sleep_ns(1900000);
        }
        return arg;
}

static const struct {
        void *(*fn)(void *);
        const char *name;
} threads[] = {
        { ct_cond_waiter, "ct-waiter" }, { ct_signaller, "ct-signaller" }, { ct_light_a, "ct-light-a" },
        { ct_light_b, "ct-light-b" }, { ct_long_holder, "ct-holder" }, { ct_frequent_taker, "ct-taker" },
};
#define N_THREADS (sizeof threads / sizeof *threads)
#define N_LATE 2                        /* the last two: the hot pair */

static int start_threads(size_t from, size_t to) {
        for (size_t i = from; i < to; i++) {
                pthread_t t;
                if (pthread_create(&t, NULL, threads[i].fn, NULL) != 0)
                        return -1;
                pthread_setname_np(t, threads[i].name);
        }
        while (atomic_load(&running) < (int) to)
                sleep_ns(1000000);
        return 0;
}

int main(int argc, char **argv) {
        bool late = argc > 1 && strcmp(argv[1], "--late") == 0;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);         /* inherited: only main takes it */
        if (start_threads(0, late ? N_THREADS - N_LATE : N_THREADS) < 0)
                return 1;
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        if (late) {
                sleep_ns(1000000000);
                if (start_threads(N_THREADS - N_LATE, N_THREADS) < 0)
                        return 1;
                printf("late threads started\n");
                fflush(stdout);
        }
        for (;;) {
                int sig;
                if (sigwait(&set, &sig) != 0)
                        continue;
                for (int r = 0; r < ROLES; r++)
                        printf("stats %s waits %llu blocked_ns %llu\n", role_names[r],
                               (unsigned long long) atomic_exchange(&waits[r], 0),
                               (unsigned long long) atomic_exchange(&blocked_ns[r], 0));
                printf("stats end\n");
                fflush(stdout);
        }
}
