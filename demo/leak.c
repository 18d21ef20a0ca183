/* demo/leak.c -- Go's classic goroutine leak, as threads: the bug cprofd makes obvious.
 *
 * In Go the leak is a goroutine sending on a channel nobody receives from. Here a
 * "worker" thread starts a "producer" thread every 200 ms; each producer writes a
 * result into a pipe that nobody ever reads. The pipe is shrunk to one page and filled
 * first, so every producer blocks in write() forever. The thread count grows steadily
 * and in `goroutine?debug=1` the producer's stack becomes the top group, its count
 * rising with every fetch.
 *
 * Each producer also holds the 32 KiB buffer it built its result in, and since it never
 * returns, never frees it: the memory leaks with the threads, and `heap?seconds=N` shows
 * it at build_result.
 *
 * The leak is bounded (--max-threads, 5000 by default) and producers run on small stacks,
 * so the demo cannot exhaust the host however long it is left running. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PRODUCER_STACK_SIZE (128 * 1024)

static int results[2] = { -1, -1 };     /* [1] written by producers, [0] never read */
static atomic_long leaked;
static volatile int side_effect;

typedef struct Config {
        long interval_ms;
        long max_threads;
} Config;

static void die(const char *what, int err) {
        fprintf(stderr, "cprofd-demo-leak: %s: %s\n", what, strerror(err));
        exit(EXIT_FAILURE);
}

#define RESULT_BUFFER_SIZE (32 * 1024)

__attribute__((noinline)) static char *build_result(long id, int *ret_len) {
        char *buf = malloc(RESULT_BUFFER_SIZE);
        if (!buf)
                die("malloc", ENOMEM);
        memset(buf, ' ', RESULT_BUFFER_SIZE);
        *ret_len = snprintf(buf, RESULT_BUFFER_SIZE, "result %ld\n", id);
        return buf;
}

/* The bug: nobody reads the results, so this blocks forever once the pipe is full. */
__attribute__((noinline)) static void send_result(const char *result, int len) {
        if (write(results[1], result, (size_t) len) < 0)
                side_effect++;
        side_effect++;
}

__attribute__((noinline)) static void *producer(void *arg) {
        int len;
        char *result = build_result((long) arg, &len);
        send_result(result, len);
        free(result);           /* never reached */
        side_effect++;
        return NULL;
}

__attribute__((noinline)) static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

__attribute__((noinline)) static void *worker(void *arg) {
        const Config *c = arg;
        pthread_attr_t attr;
        int r;

        r = pthread_attr_init(&attr);
        if (r == 0)
                r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0)
                r = pthread_attr_setstacksize(&attr, PRODUCER_STACK_SIZE);
        if (r != 0)
                die("pthread_attr", r);

        for (long id = 0;; id++) {
                pthread_t t;

                /* Threads of the process: main, worker and the producers. */
                if (atomic_load(&leaked) + 2 < c->max_threads) {
                        r = pthread_create(&t, &attr, producer, (void *) id);
                        if (r == 0) {
                                (void) pthread_setname_np(t, "producer");
                                atomic_fetch_add(&leaked, 1);
                        }
                }
                sleep_ms(c->interval_ms);
        }
        return NULL;
}

/* Shrinks the pipe to one page and fills it, so the next write blocks. */
static void fill_pipe(int fd) {
        char page[4096];
        int flags;

        (void) fcntl(fd, F_SETPIPE_SZ, (int) sizeof page);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                die("fcntl", errno);
        memset(page, 'x', sizeof page);
        while (write(fd, page, sizeof page) > 0)
                ;
        while (write(fd, page, 1) > 0)
                ;
        if (errno != EAGAIN)
                die("write", errno);
        if (fcntl(fd, F_SETFL, flags) < 0)
                die("fcntl", errno);
}

static long parse_positive(const char *s) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || end == s || v <= 0)
                return -1;
        return v;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: cprofd-demo-leak [--interval-ms N] [--max-threads N]\n"
                "Leaks one blocked \"producer\" thread every N ms (default 200), up to\n"
                "--max-threads threads in all (default 5000).\n");
}

int main(int argc, char *argv[]) {
        static Config config = { .interval_ms = 200, .max_threads = 5000 };
        pthread_t t;
        int r;

        for (int i = 1; i < argc; i++) {
                long *dest = NULL;

                if (strcmp(argv[i], "--interval-ms") == 0)
                        dest = &config.interval_ms;
                else if (strcmp(argv[i], "--max-threads") == 0)
                        dest = &config.max_threads;
                else if (strcmp(argv[i], "--help") == 0) {
                        usage(stdout);
                        return 0;
                }
                if (!dest || i + 1 >= argc || (*dest = parse_positive(argv[++i])) < 0) {
                        usage(stderr);
                        return 2;
                }
        }

        if (pipe2(results, O_CLOEXEC) < 0)
                die("pipe2", errno);
        fill_pipe(results[1]);

        r = pthread_create(&t, NULL, worker, &config);
        if (r != 0)
                die("pthread_create", r);
        (void) pthread_setname_np(t, "worker");

        printf("ready %d\n", (int) getpid());
        printf("leaking one blocked \"producer\" thread every %ld ms (up to %ld threads): "
               "each writes to a pipe nobody reads\n", config.interval_ms, config.max_threads);
        fflush(stdout);

        for (;;)
                pause();
}
