/* bench/many-threads.c -- a process with many blocked threads for snapshot benchmarks.
 *
 * N threads (default 1000) park behind a few distinct call chains (read, cond wait,
 * nanosleep, a busy loop for a handful), like a thread-pool server. Prints "ready PID".
 *
 *   many-threads [N [SPINNERS [WAKE_MS [locks]]]]
 *
 * "locks": every parked thread waits for one mutex that the main thread holds, as in a
 * hung server (the case where cprofd decodes every thread's lock).
 *
 * WAKE_MS > 0 makes every parked thread wake that often instead (a nanosleep loop), like a
 * busy server whose threads all run between two snapshots. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))

static volatile int side_effect;
static int never_written[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_signalled = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t held_by_main = PTHREAD_MUTEX_INITIALIZER;
static int all_on_locks;
static pthread_barrier_t started;

_noinline_ static void block_read(void) {
        char c;
        (void) !read(never_written[0], &c, 1);
        side_effect++;
}

_noinline_ static void block_cond(void) {
        pthread_mutex_lock(&lock);
        for (;;)
                pthread_cond_wait(&never_signalled, &lock);
}

static long wake_ms;

_noinline_ static void block_sleep(void) {
        struct timespec ts = { 3600, 0 };
        if (wake_ms > 0)
                ts = (struct timespec) { wake_ms / 1000, (wake_ms % 1000) * 1000000 };
        for (;;)
                nanosleep(&ts, NULL);
}

_noinline_ static void block_lock(void) {
        pthread_mutex_lock(&held_by_main);
        side_effect++;
}

_noinline_ static void spin(void) {
        for (;;)
                side_effect++;
}

_noinline_ static void handle_request(int kind, int depth) {
        if (depth > 0) {
                handle_request(kind, depth - 1);
                side_effect++;
                return;
        }
        switch (kind) {
        case 0: block_read(); break;
        case 1: block_cond(); break;
        case 3: block_lock(); break;
        default: block_sleep(); break;
        }
}

static long n_spinners = 1;

static void *worker(void *arg) {
        long i = (long) arg;
        pthread_barrier_wait(&started);
        if (i < n_spinners)
                spin();
        handle_request(all_on_locks ? 3 : wake_ms > 0 ? 2 : (int) (i % 3), (int) (i % 5) + 3);
        return NULL;
}

int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 1000;
        if (argc > 2)
                n_spinners = atol(argv[2]);
        if (argc > 3)
                wake_ms = atol(argv[3]);
        all_on_locks = argc > 4 && strcmp(argv[4], "locks") == 0;
        pthread_mutex_lock(&held_by_main);
        if (n < 1 || n > 30000) {
                fprintf(stderr, "usage: many-threads [N ≤ 30000 [SPINNERS [WAKE_MS [locks]]]]\n");
                return 2;
        }
        if (pipe(never_written) < 0)
                return 1;
        pthread_barrier_init(&started, NULL, (unsigned) n + 1);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (long i = 0; i < n; i++) {
                pthread_t t;
                if (pthread_create(&t, &attr, worker, (void *) i) != 0) {
                        perror("pthread_create");
                        return 1;
                }
        }
        pthread_barrier_wait(&started);
        usleep(200 * 1000);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        for (;;)
                pause();
}
