/* attach/snapshot.h -- stop each thread of a process for a moment, copy its registers and
 * live stack, and let it go. No unwinding here: that happens later, from the copy.
 *
 * Per thread: PTRACE_SEIZE, PTRACE_INTERRUPT, waitpid, PTRACE_GETREGSET, process_vm_readv
 * of the stack (from SP − red zone to the end of the stack mapping, capped), PTRACE_DETACH.
 * The pause (interrupt → detach) is measured per thread. A thread is never left stopped;
 * a job-control stop that was there before is kept; a signal that arrives while we hold
 * a thread is re-injected at detach. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/user.h>

#include "procfs.h"

#define SNAPSHOT_STACK_MAX_DEFAULT (256u * 1024u)
#define SNAPSHOT_STACK_MAX_LIMIT (8u * 1024u * 1024u)
#define SNAPSHOT_RED_ZONE 128u          /* x86-64 ABI: leaf functions may use it below SP */

typedef struct ThreadCapture {
        pid_t tid;
        ThreadInfo info;                /* read from /proc before the thread was stopped */
        int error;                      /* 0 when captured; else negative errno: -ESRCH
                                           (vanished), -EPERM (traced by someone else), … */
        struct user_regs_struct regs;   /* valid when error == 0 */
        uint64_t stack_start;           /* address of stack[0] (SP − red zone) */
        uint8_t *stack;                 /* copy of [stack_start, stack_start + stack_len) */
        size_t stack_len;
        bool stack_truncated;           /* the copy ends before the end of the stack mapping */
        uint64_t pause_ns;              /* interrupt → detach */
        int reinjected_signal;          /* signal that arrived while held and was passed on */
        bool unchanged;                 /* not stopped: SnapshotOptions.unchanged said the
                                           caller holds what a stop would show (error is 0;
                                           regs and stack are empty) */
} ThreadCapture;

typedef struct Snapshot {
        pid_t pid;
        uint64_t time_ns;               /* CLOCK_REALTIME when the snapshot started */
        uint64_t duration_ns;           /* whole snapshot, monotonic */
        Maps maps;                      /* read before any thread was stopped */
        ThreadCapture *threads;         /* sorted by tid */
        size_t n_threads;
        size_t n_captured;              /* threads with error == 0, unchanged ones included */
        size_t n_unchanged;
        bool partial;                   /* some threads could not be captured */
        bool exited;                    /* the process exited during the snapshot */
        pid_t tracer;                   /* when nothing could be captured because another
                                           tracer holds the process: its pid */
} Snapshot;

typedef struct SnapshotOptions {
        size_t stack_max;               /* bytes copied per thread at most; 0 = default */
        /* Optional. Asked for each thread that /proc shows blocked, before it is stopped:
         * first with INFO->run_ns filled, then (if that said false) with the syscall place
         * read as well. True: the thread has not run since the caller last saw it, so a
         * stop would show the same registers and stack; it is not stopped. */
        bool (*unchanged)(void *userdata, pid_t tid, const ThreadInfo *info);
        /* Optional, with unchanged: false when unchanged() cannot say true for TID (the
         * caller has no fresh record of it), which spares reading its run time. */
        bool (*known)(void *userdata, pid_t tid);
        void *userdata;
} SnapshotOptions;

/* Captures every thread of PID. Returns 0 with *ret set even when only some threads could
 * be captured (see partial / per-thread error); negative errno when the process cannot be
 * read at all (-ESRCH gone, -EPERM no permission). */
int snapshot_take(pid_t pid, const SnapshotOptions *opts, Snapshot **ret);
/* Accepts NULL, returns NULL. */
struct Snapshot *snapshot_free(struct Snapshot *s);

/* Waits up to TIMEOUT_NS for a seized thread's next stop, with SIGCHLD blocked by the
 * caller: 0 and its wait status, -ESRCH when the thread is gone, or -ETIMEDOUT. */
int tracee_wait_stop(pid_t tid, uint64_t timeout_ns, int *ret_status);
/* For a thread stopped by us inside a blocking syscall: the syscall /proc shows it in once
 * let go, as the kernel restarts it (NR itself, or restart_syscall for a restart block);
 * -1 when REGS show no syscall the stop interrupted for a restart. */
int tracee_restarted_syscall(const struct user_regs_struct *regs);
/* Records a thread that did not stop in time, or died while traced: it is detached or
 * reaped by snapshot_reap_stragglers(). */
void tracee_add_straggler(pid_t tid);

/* Detaches threads that did not stop within the wait bound of an earlier snapshot, as soon
 * as they have stopped. Returns how many are still pending. Call it periodically. */
size_t snapshot_reap_stragglers(void);

/* A saved capture: a snapshot written to a file and read back later, so the unwinder can
 * be tested (and bugs reported) without a live process. 0, or negative errno; reading
 * checks every length against the file. */
int snapshot_write(const Snapshot *s, FILE *f);
int snapshot_read(FILE *f, Snapshot **ret);
