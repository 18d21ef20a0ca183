/* attach/target-memory.h -- read a few bytes of a running target's memory without stopping
 * it (process_vm_readv): lock objects, timespecs of a sleep. What comes back is untrusted
 * and may be torn by the target's own writes: callers validate it. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Copies LEN bytes at ADDR of PID into BUF. 0 when all LEN bytes were read, else negative
 * errno (-EFAULT for an unmapped or partly mapped range, -ESRCH when PID is gone). */
int target_memory_read(pid_t pid, uint64_t addr, void *buf, size_t len);
