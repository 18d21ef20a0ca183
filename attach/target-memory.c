/* attach/target-memory.c -- see target-memory.h. */
#include <errno.h>
#include <sys/uio.h>

#include "target-memory.h"

int target_memory_read(pid_t pid, uint64_t addr, void *buf, size_t len) {
        if (len == 0)
                return 0;
        if (addr == 0 || addr + len < addr)
                return -EFAULT;
        struct iovec local = { .iov_base = buf, .iov_len = len };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) addr, .iov_len = len };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0)
                return -errno;
        return (size_t) n == len ? 0 : -EFAULT;
}
