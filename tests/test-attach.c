/* tests/test-attach.c -- /proc parsing and live snapshots of the threads test program:
 * every thread is captured with registers and a stack copy, job-control stops survive,
 * another tracer is reported, and saved captures round-trip (and reject corruption). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"
#include "procfs-internal.h"
#include "procfs.h"
#include "snapshot.h"
#include "thread-cache.h"
#include "threads-target.h"
#include "tiny-test.h"

static pid_t start_target(void) {
        return threads_target_start();
}

static void stop_target(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

static char thread_state(pid_t pid, pid_t tid) {
        ThreadInfo info;
        return procfs_read_thread(pid, tid, &info) == 0 ? info.state : '?';
}

static const ThreadCapture *find_thread(const Snapshot *s, const char *name) {
        for (size_t i = 0; i < s->n_threads; i++)
                if (strcmp(s->threads[i].info.name, name) == 0)
                        return &s->threads[i];
        return NULL;
}

TEST(maps_of_self) {
        Maps m;
        ASSERT_EQ(procfs_read_maps(getpid(), &m), 0);
        ASSERT_GT(m.n, 5);
        int x = 0;
        const MapEntry *stack = maps_find(&m, (uint64_t) (uintptr_t) &x);
        ASSERT_TRUE(stack != NULL);
        ASSERT_STREQ(stack->path, "[stack]");
        const MapEntry *text = maps_find(&m, (uint64_t) (uintptr_t) &maps_find);
        ASSERT_TRUE(text != NULL);
        ASSERT_TRUE(text->executable);
        ASSERT_TRUE(text->path && strstr(text->path, "test-attach"));
        ASSERT_TRUE(maps_find(&m, 0) == NULL);
        for (size_t i = 1; i < m.n; i++)
                ASSERT_TRUE(m.entries[i].start >= m.entries[i - 1].end);
        Maps copy;
        ASSERT_EQ(maps_copy(&m, &copy), 0);
        ASSERT_EQ(copy.n, m.n);
        maps_done(&copy);
        maps_done(&m);
}

TEST(missing_process) {
        Maps m;
        pid_t *tids;
        size_t n;
        Snapshot *s;
        ASSERT_EQ(procfs_read_maps(4194304 + 1, &m), -ESRCH);
        ASSERT_EQ(procfs_list_threads(4194304 + 1, &tids, &n), -ESRCH);
        ASSERT_EQ(snapshot_take(4194304 + 1, NULL, &s), -ESRCH);
}

TEST(thread_info_of_sleeper) {
        pid_t pid = fork();
        if (pid == 0) {
                struct timespec ts = { 3600, 0 };
                nanosleep(&ts, NULL);
                _exit(0);
        }
        char comm[THREAD_NAME_MAX];
        ThreadInfo info;
        for (int i = 0; i < 200; i++) {
                ASSERT_EQ(procfs_read_thread(pid, pid, &info), 0);
                if (info.state == 'S' && info.syscall >= 0)
                        break;
                usleep(5000);
        }
        ASSERT_EQ(info.state, 'S');
        ASSERT_STREQ(syscall_name(info.syscall), "clock_nanosleep");
        ASSERT_STREQ(info.name, "test-attach");
        ASSERT_EQ(procfs_read_comm(pid, comm), 0);
        ASSERT_STREQ(comm, "test-attach");
        ASSERT_STREQ(thread_state_description('S'), "S (sleeping)");
        pid_t tracer = -1;
        ASSERT_EQ(procfs_read_tracer(pid, &tracer), 0);
        ASSERT_EQ(tracer, 0);
        stop_target(pid);
}

TEST(cmdline) {
        char *text;
        size_t len;
        ASSERT_EQ(procfs_read_cmdline(getpid(), &text, &len), 0);
        ASSERT_TRUE(strstr(text, "test-attach") != NULL);
        ASSERT_TRUE(len == 0 || text[len - 1] != 0);
        free(text);
}

TEST(snapshot_of_threads_target) {
        pid_t pid = start_target();
        Snapshot *s;
        ASSERT_EQ(snapshot_take(pid, NULL, &s), 0);
        ASSERT_EQ(s->pid, pid);
        ASSERT_EQ(s->n_threads, 11);
        ASSERT_EQ(s->n_captured, 11);
        ASSERT_FALSE(s->partial);
        ASSERT_FALSE(s->exited);
        for (size_t i = 0; i < s->n_threads; i++) {
                const ThreadCapture *t = &s->threads[i];
                ASSERT_EQ(t->error, 0);
                ASSERT_GT(t->pause_ns, 0);
                ASSERT_GT(t->stack_len, 0);
                ASSERT_TRUE(t->regs.rip != 0);
                /* the copy starts at SP − red zone and holds the live part of the stack */
                ASSERT_LE(t->stack_start, t->regs.rsp);
                ASSERT_GT(t->stack_start + t->stack_len, t->regs.rsp);
                ASSERT_FALSE(t->stack_truncated);
                if (i > 0)
                        ASSERT_GT(t->tid, s->threads[i - 1].tid);
        }
        ASSERT_EQ(s->threads[0].tid, pid);
        const ThreadCapture *reader = find_thread(s, "t-read");
        ASSERT_TRUE(reader != NULL);
        ASSERT_EQ(reader->info.state, 'S');
        ASSERT_STREQ(syscall_name(reader->info.syscall), "read");
        const ThreadCapture *spinner = find_thread(s, "t-spin");
        ASSERT_TRUE(spinner != NULL);
        ASSERT_EQ(spinner->info.state, 'R');

        /* Nobody is left stopped. */
        for (size_t i = 0; i < s->n_threads; i++) {
                char st = thread_state(pid, s->threads[i].tid);
                ASSERT_TRUE(st != 't' && st != 'T');
        }
        snapshot_free(s);
        stop_target(pid);
}

TEST(small_stack_cap_is_recorded_as_truncation) {
        pid_t pid = start_target();
        Snapshot *s;
        ASSERT_EQ(snapshot_take(pid, &(SnapshotOptions) { .stack_max = 512 }, &s), 0);
        const ThreadCapture *deep = find_thread(s, "t-recurse");
        ASSERT_TRUE(deep != NULL);
        ASSERT_EQ(deep->stack_len, 512);
        ASSERT_TRUE(deep->stack_truncated);
        snapshot_free(s);
        stop_target(pid);
}

TEST(job_control_stop_is_kept) {
        pid_t pid = start_target();
        kill(pid, SIGSTOP);
        /* Each thread enters the group stop when it next runs: wait for all of them. */
        pid_t *tids = NULL;
        size_t n = 0;
        ASSERT_EQ(procfs_list_threads(pid, &tids, &n), 0);
        for (size_t k = 0; k < n; k++) {
                for (int i = 0; i < 1000 && thread_state(pid, tids[k]) != 'T'; i++)
                        usleep(5000);
                ASSERT_EQ(thread_state(pid, tids[k]), 'T');
        }
        free(tids);
        Snapshot *s;
        ASSERT_EQ(snapshot_take(pid, NULL, &s), 0);
        ASSERT_EQ(s->n_captured, 11);
        /* Our detach re-arms the group stop, and the kernel wakes the thread to enter it
         * again (__ptrace_unlink): it shows R for a moment, then T for good. */
        for (size_t i = 0; i < s->n_threads; i++) {
                char st = 0;
                for (int k = 0; k < 200 && (st = thread_state(pid, s->threads[i].tid)) != 'T'; k++)
                        usleep(5000);
                ASSERT_EQ(st, 'T');
        }
        snapshot_free(s);
        kill(pid, SIGCONT);
        for (int i = 0; i < 200 && thread_state(pid, pid) == 'T'; i++)
                usleep(5000);
        ASSERT_TRUE(thread_state(pid, pid) != 'T');
        stop_target(pid);
}

TEST(another_tracer_is_named) {
        pid_t pid = start_target();
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        pid_t tracer = fork();
        if (tracer == 0) {
                pid_t *tids;
                size_t n;
                if (procfs_list_threads(pid, &tids, &n) < 0)
                        _exit(1);
                for (size_t i = 0; i < n; i++)
                        ptrace(PTRACE_SEIZE, tids[i], NULL, NULL);
                (void) !write(ready[1], "x", 1);
                pause();
                _exit(0);
        }
        char c;
        ASSERT_EQ(read(ready[0], &c, 1), 1);
        Snapshot *s;
        ASSERT_EQ(snapshot_take(pid, NULL, &s), 0);
        ASSERT_EQ(s->n_captured, 0);
        ASSERT_TRUE(s->partial);
        ASSERT_EQ(s->tracer, tracer);
        ASSERT_EQ(s->threads[0].error, -EPERM);
        snapshot_free(s);
        kill(tracer, SIGKILL);
        waitpid(tracer, NULL, 0);
        ASSERT_EQ(snapshot_take(pid, NULL, &s), 0);
        ASSERT_EQ(s->n_captured, 11);
        snapshot_free(s);
        stop_target(pid);
}

TEST(capture_file_round_trip_and_corruption) {
        pid_t pid = start_target();
        Snapshot *s;
        ASSERT_EQ(snapshot_take(pid, NULL, &s), 0);
        stop_target(pid);

        char *data = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&data, &size);
        ASSERT_EQ(snapshot_write(s, f), 0);
        fclose(f);

        Snapshot *back;
        f = fmemopen(data, size, "r");
        ASSERT_EQ(snapshot_read(f, &back), 0);
        fclose(f);
        ASSERT_EQ(back->pid, s->pid);
        ASSERT_EQ(back->n_threads, s->n_threads);
        ASSERT_EQ(back->maps.n, s->maps.n);
        for (size_t i = 0; i < s->n_threads; i++) {
                ASSERT_EQ(back->threads[i].tid, s->threads[i].tid);
                ASSERT_EQ(back->threads[i].regs.rip, s->threads[i].regs.rip);
                ASSERT_EQ(back->threads[i].stack_len, s->threads[i].stack_len);
                ASSERT_EQ(memcmp(back->threads[i].stack, s->threads[i].stack, s->threads[i].stack_len), 0);
                ASSERT_STREQ(back->threads[i].info.name, s->threads[i].info.name);
        }
        for (size_t i = 0; i < s->maps.n; i++)
                ASSERT_TRUE((!back->maps.entries[i].path && !s->maps.entries[i].path) ||
                            strcmp(back->maps.entries[i].path, s->maps.entries[i].path) == 0);
        snapshot_free(back);

        /* Every truncation point is rejected cleanly. */
        for (size_t cut = 0; cut < size; cut += 1 + cut / 8) {
                f = fmemopen(data, cut ? cut : 1, "r");
                Snapshot *x = NULL;
                ASSERT_TRUE(snapshot_read(f, &x) < 0);
                fclose(f);
        }
        /* A flipped byte in a count or length never crashes (it may still parse). */
        for (size_t pos = 8; pos < MIN(size, (size_t) 4096); pos += 7) {
                char saved = data[pos];
                data[pos] = (char) ~saved;
                f = fmemopen(data, size, "r");
                Snapshot *x = NULL;
                if (snapshot_read(f, &x) == 0)
                        snapshot_free(x);
                fclose(f);
                data[pos] = saved;
        }
        free(data);
        snapshot_free(s);
}

/* One snapshot through the cache, as the daemon's periodic ones go: every thread stopped
 * gets a one-frame stack at its pc, so the cache has something to hand back. */
static Snapshot *cached_snapshot(pid_t pid, ThreadCache *cache, uint64_t now_ns) {
        SnapshotOptions opts = { .unchanged = thread_cache_unchanged, .known = thread_cache_known,
                                 .userdata = cache };
        Snapshot *s;
        cache->now_ns = now_ns;
        if (snapshot_take(pid, &opts, &s) < 0)
                TINY_FAIL("snapshot_take failed");
        StackFrame *frames = calloc(s->n_threads, sizeof *frames);
        Stack *stacks = calloc(s->n_threads, sizeof *stacks);
        const Stack **ptrs = calloc(s->n_threads, sizeof *ptrs);
        for (size_t i = 0; i < s->n_threads; i++) {
                frames[i] = (StackFrame) { .pc = s->threads[i].regs.rip, .exact = true };
                stacks[i] = (Stack) { .frames = &frames[i], .n = 1 };
                ptrs[i] = &stacks[i];
        }
        ASSERT_EQ(thread_cache_update(cache, s, ptrs), 0);
        free(ptrs);
        free(stacks);
        free(frames);
        /* A thread we stopped restarts its syscall once it runs again, which on a busy
         * machine takes a while: until then the next snapshot would see it running. */
        for (size_t i = 0; i < cache->n; i++)
                for (int k = 0; k < 2000 && thread_state(pid, cache->entries[i].tid) == 'R'; k++)
                        usleep(1000);
        return s;
}

static size_t count_unchanged(const Snapshot *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_threads; i++)
                n += s->threads[i].unchanged;
        return n;
}

TEST(unchanged_threads_are_not_stopped_again) {
        pid_t pid = start_target();
        ThreadCache cache = {};
        uint64_t now = now_monotonic_ns();

        /* First: everything is stopped; the blocked threads enter the cache. */
        Snapshot *s = cached_snapshot(pid, &cache, now);
        ASSERT_EQ(s->n_threads, 11);
        ASSERT_EQ(count_unchanged(s), 0);
        ASSERT_EQ(cache.n, 10);         /* all but t-spin, which is not in a syscall */
        const ThreadCapture *sleeper = find_thread(s, "t-sleep");
        ASSERT_TRUE(sleeper != NULL);
        ASSERT_EQ(thread_cache_find(&cache, sleeper->tid)->place.nr, SYS_restart_syscall);
        snapshot_free(s);

        /* Second: /proc shows each blocked thread back at the place its stop found it
         * (restarted, nanosleep through restart_syscall): reused, and the baseline taken. */
        s = cached_snapshot(pid, &cache, now + 1);
        ASSERT_EQ(s->n_unchanged, 10);
        ASSERT_EQ(s->n_captured, 11);
        ASSERT_FALSE(s->partial);
        const ThreadCapture *spinner = find_thread(s, "t-spin");
        ASSERT_FALSE(spinner->unchanged);
        ASSERT_GT(spinner->pause_ns, 0);
        for (size_t i = 0; i < s->n_threads; i++)
                if (s->threads[i].unchanged) {
                        ASSERT_EQ(s->threads[i].pause_ns, 0);
                        ASSERT_EQ(s->threads[i].stack_len, 0);
                        ASSERT_TRUE(thread_cache_find(&cache, s->threads[i].tid)->run_ns != RUN_NS_UNKNOWN);
                }
        snapshot_free(s);

        /* Third: the run time alone says nothing ran. */
        s = cached_snapshot(pid, &cache, now + 2);
        ASSERT_EQ(s->n_unchanged, 10);
        snapshot_free(s);

        /* Entries expire: every thread is stopped again at least that often. */
        s = cached_snapshot(pid, &cache, now + THREAD_CACHE_REFRESH_NS);
        ASSERT_EQ(s->n_unchanged, 0);
        ASSERT_EQ(cache.n, 10);
        snapshot_free(s);

        thread_cache_done(&cache);
        stop_target(pid);
}

static int wake_pipe[2];

static void *read_forever(void *arg) {
        (void) arg;
        char c;
        for (;;)
                if (read(wake_pipe[0], &c, 1) == 0)
                        return NULL;
}

TEST(a_thread_that_ran_is_stopped_again) {
        ASSERT_EQ(pipe(wake_pipe), 0);
        pid_t pid = fork();
        if (pid == 0) {
                pthread_t t;
                close(wake_pipe[1]);
                if (pthread_create(&t, NULL, read_forever, NULL) != 0)
                        _exit(1);
                pthread_join(t, NULL);
                _exit(0);
        }
        close(wake_pipe[0]);
        /* Wait until both threads of the child block. */
        pid_t *tids = NULL;
        size_t n = 0;
        for (int i = 0; i < 2000; i++) {
                free(tids);
                tids = NULL;
                ASSERT_EQ(procfs_list_threads(pid, &tids, &n), 0);
                if (n == 2 && thread_state(pid, tids[0]) == 'S' && thread_state(pid, tids[1]) == 'S')
                        break;
                usleep(1000);
        }
        ASSERT_EQ(n, 2);
        pid_t reader = tids[1];
        free(tids);

        ThreadCache cache = {};
        uint64_t now = now_monotonic_ns();
        snapshot_free(cached_snapshot(pid, &cache, now));
        Snapshot *s = cached_snapshot(pid, &cache, now + 1);
        ASSERT_EQ(s->n_unchanged, 2);
        snapshot_free(s);

        /* The reader wakes, reads and blocks again at the very same place: its run time
         * moved, so it is stopped again; the main thread is still reused. */
        ASSERT_EQ(write(wake_pipe[1], "x", 1), 1);
        for (int i = 0; i < 2000 && thread_state(pid, reader) != 'S'; i++)
                usleep(1000);
        usleep(20 * 1000);
        s = cached_snapshot(pid, &cache, now + 2);
        ASSERT_EQ(s->n_threads, 2);
        ASSERT_EQ(s->n_unchanged, 1);
        ASSERT_EQ(s->threads[1].tid, reader);
        ASSERT_FALSE(s->threads[1].unchanged);
        ASSERT_EQ(s->threads[1].error, 0);
        snapshot_free(s);

        thread_cache_done(&cache);
        close(wake_pipe[1]);
        waitpid(pid, NULL, 0);
}

TEST(syscall_place_parsing) {
        SyscallPlace p;
        procfs_parse_syscall_place("0 0x3 0x7ffd1234 0x1 0x0 0x0 0x0 0x7ffd1000 0x7f0011223344\n", &p);
        ASSERT_TRUE(p.known);
        ASSERT_EQ(p.nr, 0);
        ASSERT_EQ(p.args[0], 3);
        ASSERT_EQ(p.args[1], 0x7ffd1234);
        ASSERT_EQ(p.sp, 0x7ffd1000);
        ASSERT_EQ(p.pc, 0x7f0011223344);
        procfs_parse_syscall_place("-1 0x7ffd1000 0x7f0011223344\n", &p);
        ASSERT_FALSE(p.known);
        procfs_parse_syscall_place("running\n", &p);
        ASSERT_FALSE(p.known);
        procfs_parse_syscall_place("0 0x3 0x1 0x1 0x0 0x0 0x0 0x7ffd1000\n", &p);
        ASSERT_FALSE(p.known);
        procfs_parse_syscall_place("202 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 junk", &p);
        ASSERT_FALSE(p.known);
        uint64_t ns;
        ASSERT_EQ(procfs_parse_schedstat("123456789 42 7\n", &ns), 0);
        ASSERT_EQ(ns, 123456789);
        ASSERT_EQ(procfs_parse_schedstat("x 1 2\n", &ns), -EINVAL);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
