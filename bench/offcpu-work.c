/* bench/offcpu-work.c -- a fixed number of hand-offs between blocking threads, timed, for
 * bench/offcpu-overhead.
 *
 *   offcpu-work [ROUNDS [SPIN]]   (ROUNDS hand-offs, default 60000; SPIN iterations of
 *                                  work per hand-off, default 2000)
 *
 * Four threads pass one turn round a ring, ping → pong → contender → ping …, under one
 * mutex, each waiting for its turn on its own condition variable: the thread whose turn it
 * is does SPIN iterations of work, gives the turn to the next, signals it and waits for its
 * own next turn. The contender's turn is taken by whichever of "contend-1" and "contend-2"
 * holds a second, plain mutex: it takes that mutex before waiting for the turn and releases
 * it after passing the turn on, which wakes the other one, blocked in pthread_mutex_lock.
 * glibc's mutexes are not fair: going round for its next turn, the releaser may take it
 * back before the one it woke runs, which then blocks again; either way, at each release
 * the other one is blocked in pthread_mutex_lock. Each three hand-offs are thus three waits
 * on a condition variable (woken by pthread_cond_signal) and one contended lock (woken by
 * pthread_mutex_unlock): four voluntary context switches. (Exactly four when no woken
 * thread runs before its waker has blocked, as when they are SCHED_BATCH on one CPU, as
 * bench/offcpu-overhead runs them; otherwise a woken thread may preempt its waker, which
 * then often finds its turn back when it runs again, without waiting.) Only one thread
 * works at a time, so the workload needs one CPU and leaves the others to a profiler. The
 * blocking calls are a few frames down, as in a program, so their stacks are worth
 * unwinding. SPIN sets the switch rate (bench/offcpu-overhead calibrates it).
 *
 * Starts its threads, prints `ready PID` and waits for SIGUSR1, so a profiler can attach to
 * every thread first (they wait at a barrier, blocked, meanwhile); then the ring does its
 * ROUNDS hand-offs and main prints `elapsed SECONDS cpu SECONDS switches N involuntary N`:
 * from SIGUSR1 to every thread done, the wall time (CLOCK_MONOTONIC), the process's user +
 * system time (which includes what the kernel spends on a tracepoint's samples in its
 * threads) and its voluntary and involuntary context switches (getrusage: every thread's).
 * Then it waits to be killed, its threads blocked but alive, so a profile of it can still
 * be read. Built like the test targets: -O2 -fomit-frame-pointer -g, stacks unwind from
 * DWARF CFI only. */
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
#define THREADS 4
enum { PING, PONG, CONTENDER, TURNS };

static volatile uint64_t sink;
static long rounds = 60000, spin_iterations = 2000;
static pthread_barrier_t start, done;

static pthread_mutex_t turn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed[TURNS] = {
        PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER
};
static int turn = PING;                 /* guarded by turn_mu, as are the next two */
static long handoffs;
static int finished;

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

_noinline_ static uint64_t spin(uint64_t x, long n) {
        for (long i = 0; i < n; i++) {
                x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                x ^= x >> 29;
        }
        return x;
}

/* Returns 0 once the ring has done its ROUNDS hand-offs. */
_noinline_ static int wait_turn(int me) {
        int mine;

        pthread_mutex_lock(&turn_mu);
        while (turn != me && !finished)
                pthread_cond_wait(&turn_changed[me], &turn_mu);
        mine = !finished;
        pthread_mutex_unlock(&turn_mu);
        return mine;
}

/* Signals after unlocking: a thread woken on its waker's CPU may run at once, and would then
 * only block again on turn_mu if its waker still held it. */
_noinline_ static void pass_turn(int me) {
        int next = (me + 1) % TURNS, last;

        pthread_mutex_lock(&turn_mu);
        turn = next;
        last = ++handoffs >= rounds;
        if (last)
                finished = 1;
        pthread_mutex_unlock(&turn_mu);
        if (!last)
                pthread_cond_signal(&turn_changed[next]);
        else
                for (int i = 0; i < TURNS; i++)
                        pthread_cond_broadcast(&turn_changed[i]);
}

_noinline_ static int take_turn(int me, uint64_t *x) {
        if (!wait_turn(me))
                return 0;
        *x = spin(*x, spin_iterations);
        pass_turn(me);
        return 1;
}

_noinline_ static int take_shared_turn(uint64_t *x) {
        int more;

        pthread_mutex_lock(&shared_mu);
        more = take_turn(CONTENDER, x);
        pthread_mutex_unlock(&shared_mu);
        return more;
}

_noinline_ static void *ping_pong(void *arg) {
        int me = (int) (uintptr_t) arg;
        uint64_t x = (uint64_t) me + 1;

        pthread_setname_np(pthread_self(), me == PING ? "ping" : "pong");
        pthread_barrier_wait(&start);
        while (take_turn(me, &x))
                ;
        sink = x;
        /* Done, but not gone: perf record -p spins on the events of threads that exited. */
        pthread_barrier_wait(&done);
        for (;;)
                pause();
        return NULL;
}

_noinline_ static void *contend(void *arg) {
        uint64_t x = (uint64_t) (uintptr_t) arg;

        pthread_setname_np(pthread_self(), x == 1 ? "contend-1" : "contend-2");
        pthread_barrier_wait(&start);
        while (take_shared_turn(&x))
                ;
        sink = x;
        pthread_barrier_wait(&done);
        for (;;)
                pause();
        return NULL;
}

static void switches(long *voluntary, long *involuntary) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        *voluntary = ru.ru_nvcsw;
        *involuntary = ru.ru_nivcsw;
}

int main(int argc, char *argv[]) {
        void *(*const body[THREADS])(void *) = { ping_pong, ping_pong, contend, contend };
        const uintptr_t arg[THREADS] = { PING, PONG, 1, 2 };
        pthread_t threads[THREADS];
        long v0, i0, v1, i1;
        sigset_t set;
        int sig;

        if (argc > 3 || (argc >= 2 && (rounds = strtol(argv[1], NULL, 10)) <= 0) ||
            (argc == 3 && (spin_iterations = strtol(argv[2], NULL, 10)) < 0)) {
                fprintf(stderr, "Usage: offcpu-work [ROUNDS [SPIN]]\n");
                return 2;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
            pthread_barrier_init(&start, NULL, THREADS + 1) != 0 ||
            pthread_barrier_init(&done, NULL, THREADS + 1) != 0)
                return 1;
        for (int i = 0; i < THREADS; i++) {
                int r = pthread_create(&threads[i], NULL, body[i], (void *) arg[i]);
                if (r != 0) {
                        fprintf(stderr, "offcpu-work: pthread_create: %s\n", strerror(r));
                        return 1;
                }
        }

        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        while (sigwait(&set, &sig) != 0)
                ;

        double t0 = now(), c0 = cpu_seconds();
        switches(&v0, &i0);
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&done);
        double t1 = now(), c1 = cpu_seconds();
        switches(&v1, &i1);
        printf("elapsed %.6f cpu %.6f switches %ld involuntary %ld\n", t1 - t0, c1 - c0,
               v1 - v0, i1 - i0);
        fflush(stdout);
        for (;;)
                pause();
}
