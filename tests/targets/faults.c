/* tests/targets/faults.c -- a process that does what makes a profiler's life hard, and
 * shows it keeps making progress while it is being looked at.
 *
 * A "ticker" thread counts forever and writes the count to a file (--progress PATH), so a
 * test can see the process run on after a profiler was killed, stopped or attached:
 * a thread left stopped by the profiler stops the count. Around it, as asked:
 *
 *   --threads N        N idle threads ("idle"), each blocked in a read of a pipe nobody
 *                      writes, on a small stack: 10000 of them fit in a few hundred MB
 *   --spawn N          a "spawner" thread creates N threads ("spawned") at a time and joins
 *                      them, forever: threads appear and exit during every snapshot
 *   --fork             a "forker" thread forks children that exit at once and reaps them,
 *                      forever (the children run a few microseconds of the parent's image)
 *   --exec MS          every MS ms the process execs itself again, alternately from main
 *                      and from another thread (the kernel then kills every other thread
 *                      and the execing one takes over the pid); the generation is counted
 *                      in the progress file as "COUNT GENERATION"
 *   --exec-into PATH   with --exec: the 4th exec runs PATH instead (no arguments), so the
 *                      same pid becomes another program
 *
 * `ready PID` is printed once every thread runs, only by the first image. Built like the
 * other targets; never sanitized. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))

#define IDLE_STACK_SIZE (64 * 1024)
#define EXEC_INTO_GENERATION 4

static volatile int side_effect;
static int never_written[2] = { -1, -1 };
static int progress_fd = -1;
static long generation;
static atomic_long started;

static void die(const char *what, int err) {
        fprintf(stderr, "cprofd-test-faults: %s: %s\n", what, strerror(err));
        exit(EXIT_FAILURE);
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void start_thread(void *(*fn)(void *), void *arg, const char *name, size_t stack_size) {
        pthread_attr_t attr;
        pthread_t t;
        int r;

        r = pthread_attr_init(&attr);
        if (r == 0)
                r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0 && stack_size > 0)
                r = pthread_attr_setstacksize(&attr, stack_size);
        if (r != 0)
                die("pthread_attr", r);
        /* EAGAIN: a moment over a limit (threads still exiting); retry. */
        for (int attempt = 0; (r = pthread_create(&t, &attr, fn, arg)) == EAGAIN && attempt < 1000; attempt++)
                sleep_ms(10);
        if (r != 0)
                die("pthread_create", r);
        (void) pthread_setname_np(t, name);
        pthread_attr_destroy(&attr);
}

/* --- ticker: the progress a test watches */

_noinline_ static void write_progress(uint64_t count) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "%llu %ld\n", (unsigned long long) count, generation);

        if (pwrite(progress_fd, buf, (size_t) n, 0) != n)
                die("pwrite progress", errno);
        side_effect++;
}

static void *ticker_main(void *arg) {
        atomic_fetch_add(&started, 1);
        for (uint64_t count = 1;; count++) {
                if (progress_fd >= 0)
                        write_progress(count);
                sleep_ms(5);
        }
        return NULL;
}

/* --- idle threads */

_noinline_ static void idle_block(void) {
        char c;

        (void) !read(never_written[0], &c, 1);
        side_effect++;
}

static void *idle_main(void *arg) {
        atomic_fetch_add(&started, 1);
        for (;;)
                idle_block();
        return NULL;
}

/* --- spawner: create and join, forever */

_noinline_ static void spawned_work(void) {
        sleep_ms(1);
        side_effect++;
}

static void *spawned_main(void *arg) {
        spawned_work();
        return NULL;
}

static void *spawner_main(void *arg) {
        long n = (long) (intptr_t) arg;
        pthread_t *t = calloc((size_t) n, sizeof *t);

        if (!t)
                die("calloc", ENOMEM);
        atomic_fetch_add(&started, 1);
        for (;;) {
                long k = 0;
                for (; k < n; k++)
                        if (pthread_create(&t[k], NULL, spawned_main, NULL) != 0)
                                break;
                for (long i = 0; i < k; i++) {
                        (void) pthread_setname_np(t[i], "spawned");
                        pthread_join(t[i], NULL);
                }
        }
        return NULL;
}

/* --- forker: fork and reap, forever */

_noinline_ static void fork_once(void) {
        pid_t child = fork();

        if (child == 0)
                _exit(0);
        if (child > 0)
                (void) waitpid(child, NULL, 0);
        else
                sleep_ms(1);
        side_effect++;
}

static void *forker_main(void *arg) {
        atomic_fetch_add(&started, 1);
        for (;;)
                fork_once();
        return NULL;
}

/* --- exec */

static char **exec_argv;
static const char *exec_into;

_noinline_ static void exec_next(void) {
        char gen[32];

        if (exec_into && generation + 1 == EXEC_INTO_GENERATION) {
                char *argv[] = { (char *) exec_into, NULL };
                execv(exec_into, argv);
                die("execv", errno);
        }
        /* argv ends with "--generation", "N": rewrite N. */
        size_t n = 0;
        while (exec_argv[n])
                n++;
        snprintf(gen, sizeof gen, "%ld", generation + 1);
        exec_argv[n - 1] = gen;
        execv("/proc/self/exe", exec_argv);
        die("execv", errno);
}

static void *execer_main(void *arg) {
        long ms = (long) (intptr_t) arg;

        atomic_fetch_add(&started, 1);
        sleep_ms(ms);
        exec_next();
        return NULL;
}

int main(int argc, char *argv[]) {
        long n_threads = 0, n_spawn = 0, exec_ms = 0, expected = 1;
        const char *progress = NULL;
        bool forker = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--fork") == 0) {
                        forker = true;
                        continue;
                }
                if (i + 1 >= argc)
                        goto usage;
                const char *v = argv[++i];
                if (strcmp(a, "--progress") == 0)
                        progress = v;
                else if (strcmp(a, "--exec-into") == 0)
                        exec_into = v;
                else {
                        char *end;
                        long x = strtol(v, &end, 10);
                        if (*end || x < 0)
                                goto usage;
                        if (strcmp(a, "--threads") == 0)
                                n_threads = x;
                        else if (strcmp(a, "--spawn") == 0)
                                n_spawn = x;
                        else if (strcmp(a, "--exec") == 0)
                                exec_ms = x;
                        else if (strcmp(a, "--generation") == 0)
                                generation = x;
                        else
                                goto usage;
                }
        }

        if (progress) {
                /* Each image opens it anew: the fd is close-on-exec. */
                progress_fd = open(progress, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (progress_fd < 0)
                        die(progress, errno);
        }
        if (pipe2(never_written, O_CLOEXEC) < 0)
                die("pipe", errno);

        start_thread(ticker_main, NULL, "ticker", 0);
        for (long i = 0; i < n_threads; i++)
                start_thread(idle_main, NULL, "idle", IDLE_STACK_SIZE);
        expected += n_threads;
        if (n_spawn > 0) {
                start_thread(spawner_main, (void *) (intptr_t) n_spawn, "spawner", 0);
                expected++;
        }
        if (forker) {
                start_thread(forker_main, NULL, "forker", 0);
                expected++;
        }
        if (exec_ms > 0) {
                /* The next image must find its generation at the end of argv. */
                if (argc < 2 || strcmp(argv[argc - 2], "--generation") != 0) {
                        exec_argv = calloc((size_t) argc + 3, sizeof *exec_argv);
                        if (!exec_argv)
                                die("calloc", ENOMEM);
                        memcpy(exec_argv, argv, (size_t) argc * sizeof *argv);
                        exec_argv[argc] = (char *) "--generation";
                        exec_argv[argc + 1] = (char *) "0";
                } else
                        exec_argv = argv;
                if (generation % 2 == 1) {
                        start_thread(execer_main, (void *) (intptr_t) exec_ms, "execer", 0);
                        expected++;
                }
        }
        while (atomic_load(&started) < expected)
                sleep_ms(1);

        if (generation == 0) {
                printf("ready %d\n", (int) getpid());
                fflush(stdout);
        }
        if (exec_ms > 0 && generation % 2 == 0) {
                sleep_ms(exec_ms);
                exec_next();
        }
        for (;;)
                pause();
usage:
        fprintf(stderr, "Usage: cprofd-test-faults [--progress PATH] [--threads N] [--spawn N] [--fork] "
                        "[--exec MS [--exec-into PATH]]\n");
        return 2;
}
