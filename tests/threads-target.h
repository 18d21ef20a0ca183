/* tests/threads-target.h -- for tests that start tests/targets/threads.c. */
#pragma once

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
