/* attach/inject.h -- load cprofd's heap agent into a running process and start it, by
 * borrowing one of its threads for two function calls.
 *
 * An agent already loaded (the function is a stop or a rescan) is called without dlopen.
 * The thread borrowed is one that /proc shows blocked in a syscall that waits (futex,
 * read, poll, nanosleep, …): it holds none of the locks dlopen needs in any sane program,
 * and its registers are exactly what a syscall restart needs. It is seized, its registers
 * and FPU/vector state saved, then made to call dlopen(AGENT, RTLD_NOW) and
 * cprofd_agent_start(…) on its own stack below the red zone, each returning to address 0,
 * where the SIGSEGV stop hands control back. Its state is restored exactly and it is
 * detached; its syscall restarts as after any signal. Signals that arrive meanwhile are
 * passed on at the end. The pause is measured.
 *
 * A target whose root does not show cprofd's agent file (a container: another mount
 * namespace, chroot or pivot_root) loads a copy from a memfd it creates, opened as
 * /proc/self/fd/N; nothing is written into its filesystem (see load_agent in inject.c). */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define INJECT_CALL_TIMEOUT_NS (5ull * 1000000000ull)

typedef struct InjectRequest {
        const char *agent_path;         /* absolute, as cprofd sees it */
        const char *start_symbol;       /* the agent's function to call (start, stop, rescan):
                                           exported, returns an int */
        uint64_t args[4];               /* passed to it */
        bool hangup_pipe;               /* args[3] becomes 1 + the target's read end of a pipe
                                           whose only write end is cprofd's (ret->hangup_fd):
                                           it hangs up when cprofd is gone, which a pid
                                           cannot tell in another pid namespace */
} InjectRequest;

typedef struct InjectResult {
        int64_t start_result;           /* what that function returned */
        pid_t tid;                      /* the thread borrowed */
        uint64_t pause_ns;              /* how long it was held */
        int hangup_fd;                  /* the pipe's write end (O_CLOEXEC), the caller's to
                                           close; -1 without hangup_pipe */
        char agent_module[PATH_MAX];    /* the agent's path in the target's maps: its file's,
                                           or "/memfd:libcprofd-agent.so" for a copy */
} InjectResult;

/* The file offset of function NAME (a dynamic symbol) in the ELF file at PATH: where a
 * uprobe goes. 0, -ENOENT (no such function), -EIO (unreadable, not ELF). */
int elf_function_file_offset(const char *path, const char *name, uint64_t *ret);

/* 0 with RET filled, or a negative errno with a one-line reason in ERR: -EAGAIN (no
 * thread is blocked where it can be borrowed: retry later), -EPERM (another tracer),
 * -ESRCH (gone), -ENOENT (no dlopen in the target, or the agent is not where it can load
 * it), -EIO (dlopen failed in the target, or a call did not come back). */
int inject_agent(pid_t pid, const InjectRequest *req, InjectResult *ret, char *err, size_t errlen);
