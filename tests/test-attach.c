/* tests/test-attach.c -- /proc parsing and live snapshots of the threads test program:
 * every thread is captured with registers and a stack copy, job-control stops survive,
 * another tracer is reported, and saved captures round-trip (and reject corruption). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "procfs.h"
#include "snapshot.h"
#include "tiny-test.h"

/* Starts the threads test program and waits for its "ready" line. */
static pid_t start_target(void) {
        int fds[2];
        if (pipe(fds) < 0)
                TINY_FAIL("pipe: %m");
        pid_t pid = fork();
        if (pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                close(fds[0]);
                execl(THREADS_TARGET, THREADS_TARGET, (char *) NULL);
                _exit(127);
        }
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        char line[128] = "";
        if (!fgets(line, sizeof line, f) || strncmp(line, "ready", 5) != 0)
                TINY_FAIL("target did not get ready: '%s'", line);
        fclose(f);
        return pid;
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
        for (int i = 0; i < 200 && thread_state(pid, pid) != 'T'; i++)
                usleep(5000);
        ASSERT_EQ(thread_state(pid, pid), 'T');
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

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
