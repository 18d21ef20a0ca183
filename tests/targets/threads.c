/* tests/targets/threads.c -- a process with known stacks, for tests to dump and compare.
 *
 * Eleven threads (main included), each parked in a different kind of blocking point
 * behind a chain of functions with known names, so a test can assert a thread dump
 * frame by frame: a read() behind a function inlined into its caller, a condition
 * variable, a contended mutex, a nanosleep, a 60-deep recursion, a signal handler that
 * never returns (the stack runs through __restore_rt), a busy loop, and three identical
 * pool threads that must group into one debug=1 record of count 3.
 *
 * Built -O2 -fomit-frame-pointer -fno-optimize-sibling-calls: stacks can only be unwound
 * from DWARF CFI, as in a distribution build, but no call becomes a jump. Every named
 * function is noipa (no inlining, cloning or IPA renaming: a `.constprop.0` or `.isra.0`
 * suffix would break the names the tests expect) and has a side effect after its call,
 * so identical code is never merged. Other tests depend on these exact names.
 *
 * `ready PID` is printed only once every thread has reached its blocking point and the
 * kernel reports the blocked ones as sleeping. `--exit-after-ms N` exits cleanly after N
 * ms, for tests of a target that vanishes in the middle of a snapshot. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "target-args.h"
#include "target-task.h"

#define _noinline_ __attribute__((noinline, noipa))
#define _always_inline_ inline __attribute__((always_inline))

#define RECURSE_DEPTH 60

/* Incremented after each call so the compiler keeps a real frame and a distinct return
 * address in every function. */
static volatile int side_effect;

static int read_pipe[2] = { -1, -1 };           /* nobody ever writes */
static int signal_pipe[2] = { -1, -1 };         /* read by the signal handler, forever */

static pthread_mutex_t cond_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;  /* main holds it forever */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

static volatile sig_atomic_t spin_forever = 1;

typedef struct Worker {
        const char *name;
        void *(*main)(void *);
        bool blocks;                            /* false: runs a busy loop (state R) */
        atomic_int tid;                         /* set by the thread itself */
        atomic_bool at_blocking_point;          /* set right before the blocking call */
        atomic_bool spinning;                   /* t-signal: ready to receive SIGUSR1 */
        pthread_t thread;
} Worker;

static _Thread_local Worker *self;

static void mark_blocking(void) {
        atomic_store(&self->at_blocking_point, true);
}

static void worker_start(Worker *w) {
        self = w;
        atomic_store(&w->tid, gettid());
        /* Names are also set by the creator; setting them here too avoids a window in
         * which a fast test could see the inherited name. */
        (void) pthread_setname_np(pthread_self(), w->name);
}

/* --- t-read: read() behind an inlined function and a chain of three calls. */

static _always_inline_ ssize_t inline_read(int fd) {
        char c;

        return read(fd, &c, 1);
}

_noinline_ static ssize_t chain_c(int fd) {
        ssize_t n;

        mark_blocking();
        n = inline_read(fd);
        side_effect++;
        return n;
}

_noinline_ static ssize_t chain_b(int fd) {
        ssize_t n = chain_c(fd);
        side_effect++;
        return n;
}

_noinline_ static ssize_t chain_a(int fd) {
        ssize_t n = chain_b(fd);
        side_effect++;
        return n;
}

_noinline_ static void *thread_read_main(void *arg) {
        worker_start(arg);
        (void) chain_a(read_pipe[0]);
        side_effect++;
        return NULL;
}

/* --- t-cond: a condition variable nobody signals. */

_noinline_ static void cond_wait_leaf(void) {
        pthread_mutex_lock(&cond_lock);
        mark_blocking();
        for (;;)
                pthread_cond_wait(&never_cond, &cond_lock);
}

_noinline_ static void *thread_cond_main(void *arg) {
        worker_start(arg);
        cond_wait_leaf();
        side_effect++;
        return NULL;
}

/* --- t-mutex: a mutex main took before creating the thread and never releases. */

_noinline_ static void mutex_lock_leaf(void) {
        mark_blocking();
        pthread_mutex_lock(&held_lock);
        side_effect++;
}

_noinline_ static void *thread_mutex_main(void *arg) {
        worker_start(arg);
        mutex_lock_leaf();
        side_effect++;
        return NULL;
}

/* --- t-sleep: one hour of nanosleep. */

_noinline_ static void sleep_leaf(void) {
        struct timespec ts = { .tv_sec = 3600 };

        mark_blocking();
        for (;;)
                (void) nanosleep(&ts, NULL);
}

_noinline_ static void *thread_sleep_main(void *arg) {
        worker_start(arg);
        sleep_leaf();
        side_effect++;
        return NULL;
}

/* --- t-recurse: exactly RECURSE_DEPTH frames of recurse(), then a sleep. */

_noinline_ static int recurse_bottom(void) {
        struct timespec ts = { .tv_sec = 3600 };

        mark_blocking();
        for (;;)
                (void) nanosleep(&ts, NULL);
        return 0;
}

/* recurse(n) calls recurse(n-1) down to recurse(1), which calls recurse_bottom(): n frames.
 * The addition after the call keeps it from being a tail call even at -O2. */
_noinline_ static int recurse(int n) {
        int r;

        if (n > 1)
                r = recurse(n - 1);
        else
                r = recurse_bottom();
        side_effect++;
        return r + n;
}

_noinline_ static void *thread_recurse_main(void *arg) {
        worker_start(arg);
        side_effect += recurse(RECURSE_DEPTH);
        return NULL;
}

/* --- t-signal: SIGUSR1 interrupts a busy loop; the handler never returns. */

_noinline_ static void signal_handler_leaf(void) {
        char c;

        /* Only async-signal-safe calls here: a lock-free atomic store and read(). */
        mark_blocking();
        for (;;)
                if (read(signal_pipe[0], &c, 1) < 0 && errno != EINTR)
                        break;
        side_effect++;
}

_noinline_ static void signal_handler(int sig) {
        signal_handler_leaf();
        side_effect++;
}

_noinline_ static void spin_until_signal(void) {
        atomic_store(&self->spinning, true);
        while (spin_forever)
                __asm__ volatile("" ::: "memory");
        side_effect++;
}

_noinline_ static void *thread_signal_main(void *arg) {
        worker_start(arg);
        spin_until_signal();
        side_effect++;
        return NULL;
}

/* --- t-spin: always running. */

_noinline_ static void spin_leaf(void) {
        mark_blocking();
        while (spin_forever)
                __asm__ volatile("" ::: "memory");
        side_effect++;
}

_noinline_ static void *thread_spin_main(void *arg) {
        worker_start(arg);
        spin_leaf();
        side_effect++;
        return NULL;
}

/* --- t-pool ×3: identical stacks, one debug=1 group of count 3. */

_noinline_ static void pool_wait_leaf(void) {
        pthread_mutex_lock(&pool_lock);
        mark_blocking();
        for (;;)
                pthread_cond_wait(&pool_cond, &pool_lock);
}

_noinline_ static void *thread_pool_main(void *arg) {
        worker_start(arg);
        pool_wait_leaf();
        side_effect++;
        return NULL;
}

/* --- main */

static Worker workers[] = {
        { .name = "t-read",    .main = thread_read_main,    .blocks = true  },
        { .name = "t-cond",    .main = thread_cond_main,    .blocks = true  },
        { .name = "t-mutex",   .main = thread_mutex_main,   .blocks = true  },
        { .name = "t-sleep",   .main = thread_sleep_main,   .blocks = true  },
        { .name = "t-recurse", .main = thread_recurse_main, .blocks = true  },
        { .name = "t-signal",  .main = thread_signal_main,  .blocks = true  },
        { .name = "t-spin",    .main = thread_spin_main,    .blocks = false },
        { .name = "t-pool",    .main = thread_pool_main,    .blocks = true  },
        { .name = "t-pool",    .main = thread_pool_main,    .blocks = true  },
        { .name = "t-pool",    .main = thread_pool_main,    .blocks = true  },
};
#define N_WORKERS (sizeof(workers) / sizeof(workers[0]))

static void die(const char *what) {
        fprintf(stderr, "cprofd-test-threads: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool all_parked(void) {
        for (size_t i = 0; i < N_WORKERS; i++) {
                Worker *w = &workers[i];

                if (!atomic_load(&w->at_blocking_point))
                        return false;
                if (w->blocks && target_thread_state(atomic_load(&w->tid)) != 'S')
                        return false;
        }
        return true;
}

static void wait_until(bool (*cond)(void), const char *what) {
        int64_t deadline = now_ms() + 10000;

        while (!cond()) {
                if (now_ms() > deadline) {
                        fprintf(stderr, "cprofd-test-threads: timed out waiting for %s\n", what);
                        exit(EXIT_FAILURE);
                }
                sleep_ms(1);
        }
}

static Worker *signal_worker;

static bool signal_worker_spinning(void) {
        return atomic_load(&signal_worker->spinning);
}

/* Where main parks: pause() forever, or a sleep of exit_after_ms. */
_noinline_ static void main_wait(long exit_after_ms) {
        if (exit_after_ms > 0)
                sleep_ms(exit_after_ms);
        else
                for (;;)
                        pause();
        side_effect++;
}

int main(int argc, char *argv[]) {
        struct sigaction sa = { .sa_handler = signal_handler };
        long exit_after_ms;
        int r;

        r = target_parse_args(argc, argv, "cprofd-test-threads", &exit_after_ms);
        if (r >= 0)
                return r;

        if (pipe2(read_pipe, O_CLOEXEC) < 0 || pipe2(signal_pipe, O_CLOEXEC) < 0)
                die("pipe2");
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) < 0)
                die("sigaction");
        pthread_mutex_lock(&held_lock);

        for (size_t i = 0; i < N_WORKERS; i++) {
                Worker *w = &workers[i];

                r = pthread_create(&w->thread, NULL, w->main, w);
                if (r != 0) {
                        errno = r;
                        die("pthread_create");
                }
                (void) pthread_setname_np(w->thread, w->name);
                if (w->main == thread_signal_main)
                        signal_worker = w;
        }

        /* The signal must land while t-signal is inside its busy loop, so that the
         * handler's frame sits on top of spin_until_signal. */
        wait_until(signal_worker_spinning, "t-signal to spin");
        pthread_kill(signal_worker->thread, SIGUSR1);

        wait_until(all_parked, "every thread to block");
        sleep_ms(50);           /* let the sleepers settle deep in their syscalls */

        printf("ready %d\n", (int) getpid());
        fflush(stdout);

        main_wait(exit_after_ms);
        return 0;
}
