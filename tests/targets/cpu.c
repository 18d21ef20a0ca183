/* tests/targets/cpu.c -- a CPU-bound process with known hot paths, for CPU profile tests.
 *
 * Busy threads ("busy-1" … "busy-N", two by default) loop forever over
 *     path_a → work → hot_leaf      twice,
 *     path_b → work → hot_leaf      once,
 * and hot_leaf is where nearly all the time goes (a long dependent arithmetic chain), so
 * a CPU profile must put ~all busy samples in hot_leaf and split them 2:1 between path_a
 * and path_b. A "syscaller" thread runs syscall_loop: read() of 64 KiB from /dev/zero
 * (the kernel clears the buffer), a write() to /dev/null and a getppid(), so most of its
 * time is spent in the kernel and its samples carry kernel frames. Main sleeps.
 *
 * Built like the other targets (-O2 -fomit-frame-pointer -fno-optimize-sibling-calls):
 * stacks unwind only from DWARF CFI. Every named function is noipa and has a side effect
 * after its call, so the names are exact and no call becomes a jump.
 *
 * Options: --busy N (1..64 busy threads), --spawn-after-ms N (main starts one more busy
 * thread, "busy-late", N ms after ready: it inherits the profiler's events from main),
 * --churn N (a "churner" thread keeps N short-lived "short" threads alive, each runs
 * hot_leaf a few times, ~1 ms, and exits), --exit-after-ms N. `ready PID` is printed once
 * every thread runs its loop. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))

#define HOT_ITERATIONS 200000           /* ~0.2-0.5 ms per hot_leaf call */
#define BUSY_MAX 64

static volatile int side_effect;
static volatile uint64_t sink;
static atomic_int running;              /* threads that reached their loop */

static void die(const char *what) {
        fprintf(stderr, "cprofd-test-cpu: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

/* --- the busy threads */

_noinline_ static uint64_t hot_leaf(uint64_t x) {
        /* 0.5 to 1.5 × HOT_ITERATIONS, so that no sampling period stays in phase with the
         * a, a, b pattern of calls. */
        int n = HOT_ITERATIONS / 2 + (int) ((x >> 40) % HOT_ITERATIONS);
        for (int i = 0; i < n; i++) {
                x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
                x ^= x >> 29;
        }
        return x;
}

_noinline_ static uint64_t work(uint64_t x) {
        uint64_t r = hot_leaf(x);
        side_effect++;
        return r;
}

_noinline_ static uint64_t path_a(uint64_t x) {
        uint64_t r = work(x);
        side_effect++;
        return r;
}

_noinline_ static uint64_t path_b(uint64_t x) {
        uint64_t r = work(x ^ 1);
        side_effect++;
        return r;
}

_noinline_ static void busy_loop(void) {
        uint64_t x = 1;

        atomic_fetch_add(&running, 1);
        for (;;) {
                x = path_a(x);
                x = path_a(x);
                x = path_b(x);
                sink = x;
        }
}

_noinline_ static void *busy_main(void *arg) {
        (void) pthread_setname_np(pthread_self(), arg);
        busy_loop();
        side_effect++;
        return NULL;
}

/* --- churn: short-lived threads, created all the time by a thread that is not main */

static sem_t churn_slots;

_noinline_ static void *short_main(void *arg) {
        uint64_t x = (uint64_t) (uintptr_t) arg;

        (void) pthread_setname_np(pthread_self(), "short");
        for (int i = 0; i < 3; i++)
                x = path_a(x);
        sink = x;
        sem_post(&churn_slots);
        return NULL;
}

_noinline_ static void *churn_main(void *arg) {
        pthread_attr_t attr;
        uintptr_t n = 0;

        (void) pthread_setname_np(pthread_self(), "churner");
        if (pthread_attr_init(&attr) != 0 ||
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0)
                die("pthread_attr");
        atomic_fetch_add(&running, 1);
        for (;;) {
                pthread_t t;
                int r;

                while (sem_wait(&churn_slots) < 0 && errno == EINTR)
                        ;
                r = pthread_create(&t, &attr, short_main, (void *) ++n);
                if (r != 0) {
                        errno = r;
                        die("pthread_create");
                }
        }
        return NULL;
}

/* --- the syscall thread */

_noinline_ static void syscall_loop(int zero_fd, int null_fd) {
        static char buf[64 * 1024];

        atomic_fetch_add(&running, 1);
        for (;;) {
                if (read(zero_fd, buf, sizeof buf) < 0 && errno != EINTR)
                        die("read /dev/zero");
                if (write(null_fd, buf, 1) < 0 && errno != EINTR)
                        die("write /dev/null");
                (void) getppid();
                side_effect++;
        }
}

_noinline_ static void *syscall_main(void *arg) {
        int zero_fd, null_fd;

        (void) pthread_setname_np(pthread_self(), "syscaller");
        zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (zero_fd < 0 || null_fd < 0)
                die("open /dev/zero or /dev/null");
        syscall_loop(zero_fd, null_fd);
        side_effect++;
        return NULL;
}

/* --- main */

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* --- the duty-cycle thread: half its wall time on the CPU, half asleep */

static uint64_t monotonic_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

_noinline_ static void duty_spin(long ms) {
        for (uint64_t end = monotonic_ms() + (uint64_t) ms; monotonic_ms() < end;)
                side_effect++;
}

_noinline_ static void duty_sleep(long ms) {
        sleep_ms(ms);
        side_effect++;
}

_noinline_ static void *duty_main(void *arg) {
        (void) pthread_setname_np(pthread_self(), "duty");
        atomic_fetch_add(&running, 1);
        for (;;) {
                duty_spin(10);
                duty_sleep(10);
        }
        return NULL;
}

static void spawn(void *(*fn)(void *), const char *name) {
        pthread_t t;
        int r = pthread_create(&t, NULL, fn, (void *) name);

        if (r != 0) {
                errno = r;
                die("pthread_create");
        }
        (void) pthread_detach(t);
}

static long parse_positive(const char *s) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        return errno || *end || v <= 0 ? -1 : v;
}

static int usage(FILE *f, int status) {
        fprintf(f, "Usage: cprofd-test-cpu [--busy N] [--spawn-after-ms N] [--churn N] [--duty 1] [--exit-after-ms N]\n");
        return status;
}

int main(int argc, char *argv[]) {
        static char names[BUSY_MAX][16];
        long busy = 2, spawn_after_ms = 0, exit_after_ms = 0, churn = 0, duty = 0;

        for (int i = 1; i < argc; i++) {
                long *dst = strcmp(argv[i], "--busy") == 0 ? &busy :
                        strcmp(argv[i], "--spawn-after-ms") == 0 ? &spawn_after_ms :
                        strcmp(argv[i], "--exit-after-ms") == 0 ? &exit_after_ms :
                        strcmp(argv[i], "--churn") == 0 ? &churn :
                        strcmp(argv[i], "--duty") == 0 ? &duty : NULL;
                if (strcmp(argv[i], "--help") == 0)
                        return usage(stdout, 0);
                if (!dst || i + 1 >= argc || (*dst = parse_positive(argv[++i])) < 0)
                        return usage(stderr, 2);
        }
        if (busy > BUSY_MAX || churn > BUSY_MAX)
                return usage(stderr, 2);

        for (long i = 0; i < busy; i++) {
                snprintf(names[i], sizeof names[i], "busy-%ld", i + 1);
                spawn(busy_main, names[i]);
        }
        spawn(syscall_main, "syscaller");
        if (churn > 0) {
                if (sem_init(&churn_slots, 0, (unsigned) churn) < 0)
                        die("sem_init");
                spawn(churn_main, "churner");
        }
        if (duty > 0)
                spawn(duty_main, "duty");
        while (atomic_load(&running) < busy + 1 + (churn > 0) + (duty > 0))
                sleep_ms(1);

        printf("ready %d\n", (int) getpid());
        fflush(stdout);

        if (spawn_after_ms > 0) {
                sleep_ms(spawn_after_ms);
                spawn(busy_main, "busy-late");
        }
        if (exit_after_ms > 0) {
                sleep_ms(exit_after_ms);
                return 0;
        }
        for (;;)
                pause();
}
