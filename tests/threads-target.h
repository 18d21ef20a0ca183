/* tests/threads-target.h -- for tests that start tests/targets/threads.c. */
#pragma once

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "procfs.h"
#include "tiny-test.h"

/* The target prints "ready" from its main thread, which then still has to flush and
 * reach pause(): a snapshot taken right away can catch it in write(). Waits until it is
 * parked, so every test sees the same stacks. */
static inline void threads_target_wait_parked(pid_t pid) {
        for (int i = 0; i < 10000; i++) {
                ThreadInfo info;
                if (procfs_read_thread(pid, pid, &info) == 0 && info.state == 'S' && info.syscall == SYS_pause)
                        return;
                usleep(1000);
        }
        TINY_FAIL("the main thread of pid %d never reached pause()", (int) pid);
}

/* Every target started, killed at exit: a test that fails half-way (a target left in
 * SIGSTOP, say) must not leave it behind, holding the test runner's pipe open. */
static pid_t threads_targets_started[256];
static size_t threads_targets_n;

static inline void threads_targets_kill_all(void) {
        /* Only a child not reaped yet: a reaped one's pid may name another process now. */
        for (size_t i = 0; i < threads_targets_n; i++)
                if (waitpid(threads_targets_started[i], NULL, WNOHANG) == 0) {
                        (void) kill(threads_targets_started[i], SIGKILL);
                        (void) waitpid(threads_targets_started[i], NULL, 0);
                }
}

/* Starts the threads test program (THREADS_TARGET), waits for its "ready PID" line and
 * for its main thread to park. The caller kills it (at the latest, exit does). */
static inline pid_t threads_target_start(void) {
        int fds[2];
        if (pipe(fds) < 0)
                TINY_FAIL("pipe: %m");
        pid_t pid = fork();
        if (pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                close(fds[0]);
                close(fds[1]);
                execl(THREADS_TARGET, THREADS_TARGET, (char *) NULL);
                _exit(127);
        }
        close(fds[1]);
        if (threads_targets_n == 0)
                atexit(threads_targets_kill_all);
        if (threads_targets_n < sizeof threads_targets_started / sizeof threads_targets_started[0])
                threads_targets_started[threads_targets_n++] = pid;
        FILE *f = fdopen(fds[0], "r");
        char line[128] = "";
        int ready = 0;
        if (!f || !fgets(line, sizeof line, f) || sscanf(line, "ready %d", &ready) != 1 || ready != pid)
                TINY_FAIL("threads target did not get ready: '%s'", line);
        fclose(f);
        threads_target_wait_parked(pid);
        return pid;
}
