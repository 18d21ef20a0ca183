/* tests/targets/target-task.h -- what the kernel says of one of the target's own threads,
 * for targets that print `ready` only once their threads really sleep. C and C++. */
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The state letter of /proc/self/task/TID/stat ('S' once the thread sleeps in its
 * blocking call), '?' when unknown. */
static inline char target_thread_state(int tid) {
        char path[64], buf[512], *p;
        ssize_t n;
        int fd;

        snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return '?';
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return '?';
        buf[n] = 0;
        p = strrchr(buf, ')');          /* comm may contain spaces and parentheses */
        return p && p[1] == ' ' ? p[2] : '?';
}
