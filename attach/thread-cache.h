/* attach/thread-cache.h -- what the last stop of each thread of one process showed, so a
 * thread that has not run since need not be stopped again.
 *
 * A blocked thread that has not run has the registers and stack it had when last stopped.
 * The scheduler's exact run time (/proc/…/schedstat) tells whether it ran. Our own stop
 * makes it run, though: it leaves its syscall for the stop and restarts it afterwards, so
 * the run time read before a stop is no baseline. The baseline is taken at a later
 * snapshot instead, once /proc shows the thread blocked in the very syscall the stop found
 * it in (number, arguments, sp and pc: where the restart puts it back). From then on, an
 * unchanged run time means an unchanged thread, and the snapshot reuses the unwound stack.
 *
 * The one case this cannot see: a thread that returned from its syscall and re-entered it
 * with the same arguments from the same sp and pc through other callers, between our
 * detach and the snapshot that took the baseline. So every entry also expires
 * (THREAD_CACHE_REFRESH_NS after its stop): no thread is shown from a cache for longer.
 *
 * Not thread-safe: one snapshotting thread owns a cache. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "frame.h"
#include "procfs.h"
#include "snapshot.h"

#define THREAD_CACHE_REFRESH_NS (60 * NSEC_PER_SEC)

typedef struct ThreadCacheEntry {
        pid_t tid;
        uint64_t start_time_ticks;      /* with tid, identifies the thread */
        uint64_t stopped_ns;            /* monotonic time of the stop that filled it */
        uint64_t run_ns;                /* the baseline: RUN_NS_UNKNOWN until /proc showed
                                           the thread back at `place` */
        SyscallPlace place;             /* where /proc should show it once restarted */
        int syscall;                    /* what it waits in, as the dump shows it */
        Stack stack;                    /* unwound and symbolized */
} ThreadCacheEntry;

typedef struct ThreadCache {
        ThreadCacheEntry *entries;      /* sorted by tid */
        size_t n;
        uint64_t now_ns;                /* monotonic; set before each snapshot */
} ThreadCache;

void thread_cache_done(ThreadCache *c);

/* SnapshotOptions.unchanged, USERDATA being the ThreadCache: true when the entry of TID
 * is fresh and the thread has not run since (see above). Takes the baseline. */
bool thread_cache_unchanged(void *userdata, pid_t tid, const ThreadInfo *info);
/* SnapshotOptions.known: whether TID has a fresh entry. */
bool thread_cache_known(void *userdata, pid_t tid);

/* The entry of TID, or NULL. */
const ThreadCacheEntry *thread_cache_find(const ThreadCache *c, pid_t tid);

/* Where /proc/…/syscall shows a thread, once it runs on, that a stop found with REGS; false
 * when the stop did not interrupt a blocking syscall (nothing to wait for then). */
bool thread_cache_place_from_regs(const struct user_regs_struct *regs, SyscallPlace *ret);

/* Replaces the entries with the threads of S: an unchanged thread keeps its entry; a
 * stopped one gets a new entry (STACKS[i] is the unwound stack of S->threads[i], NULL or
 * an empty stack when there is none) if the stop found it in a blocking syscall and no
 * signal arrived meanwhile; any other thread gets none. 0, or -ENOMEM (the cache is then
 * empty, which is always correct). */
int thread_cache_update(ThreadCache *c, const Snapshot *s, const Stack *const *stacks);

/* A deep copy of SRC (frames malloc'ed; SymLocs shared). 0 or -ENOMEM. */
int stack_copy(const Stack *src, Stack *ret);
