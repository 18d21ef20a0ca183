/* profile/threads.h -- a thread dump (every thread's stack and state at one moment) and
 * its text encoders, in the exact shapes of Go's goroutine profile:
 *
 *   debug=1   "threads profile: total N", then per group of identical stacks
 *             "COUNT @ 0xPC 0xPC…", a "# threads:" line, and one
 *             "#\t0xPC\tfunc+0xoff\tfile:line" line per frame (inlined frames included),
 *             tab-aligned per record as Go's tabwriter does; groups sorted by count.
 *   debug=2   per thread: thread TID "NAME" [STATE, WAIT, DURATION]: then "func(...)" and
 *             "\tfile:line +0xOFF" per frame; blank line between threads.
 *
 * A thread of a container's pid namespace shows its id there after the host's, in both:
 * `thread 4250 (ns 7) "NAME" [...]:` and `# threads: 4250 (ns 7) "NAME"`.
 *
 * Pure data: no process, no I/O. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"
#include "waits.h"

typedef struct ThreadRecord {
        pid_t tid;                      /* as cprofd (the host) sees it */
        pid_t ns_tid;                   /* its id in its own pid namespace (a container's),
                                           when that differs from tid; else 0 */
        const char *name;               /* thread name (comm) */
        const char *state;              /* "S (sleeping)"; NULL when unknown */
        const char *wait;               /* syscall or wait channel ("read", "futex"); NULL */
        uint64_t wait_ns;               /* how long seen with this stack and state; 0 unknown */
        int error;                      /* 0, or negative errno: stack not captured */
        Stack stack;                    /* symbolized; empty when error != 0 */
        uint64_t tls;                   /* its fs_base (glibc's struct pthread) when it
                                           was stopped for this dump, else 0 */
        const ThreadWait *sync;         /* the synchronization object it waits on (into
                                           ThreadDump.waits), or NULL */
} ThreadRecord;

typedef struct ThreadDump {
        pid_t pid;
        uint64_t time_ns;               /* CLOCK_REALTIME of the snapshot */
        bool partial;                   /* some threads could not be captured */
        bool exited;                    /* the target exited during the snapshot */
        bool other_pid_namespace;       /* the target has a pid namespace of its own: the
                                           tids its memory records are ns_tids */
        ThreadRecord *threads;          /* sorted by tid */
        size_t n_threads;
        ThreadWait *waits;              /* n_threads entries when waits were decoded */
        WaitCycle *deadlocks;           /* confirmed cycles of the wait-for graph */
        size_t n_deadlocks;
} ThreadDump;

/* With waits decoded, a thread waiting on a synchronization object shows it (debug=2:
 * in the header, `[S (sleeping), mutex &m held by thread 1232, 3 minutes]`; debug=1: a
 * `# waiting for …` line per record), a holder shows `holds mutex &m, 3 threads waiting`,
 * and confirmed deadlocks open both texts: `Found 1 deadlock (2 threads):` (debug=1: as
 * `# ` comment lines).
 *
 * debug=1. Appends to OUT. */
void thread_dump_write_debug1(const ThreadDump *d, Buf *out);
/* debug=2. Appends to OUT. */
void thread_dump_write_debug2(const ThreadDump *d, Buf *out);

/* The deadlock report that opens both texts (nothing when there is none), each line
 * starting with PREFIX (debug=1's "# ": comments to Go's text parsers). */
void thread_dump_write_deadlocks(const ThreadDump *d, const char *prefix, Buf *out);

/* "3 minutes", "42 seconds", as Go prints wait durations ("1 minutes" stays plural, as
 * Go's does). Empty string under one second. Writes into BUF (≥ 32 bytes). */
const char *format_wait_duration(uint64_t ns, char *buf, size_t size);
