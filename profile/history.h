/* profile/history.h -- a bounded history of one target's thread dumps, to say how long a
 * thread has been stuck the same way ("[S (sleeping), futex, 5 minutes]", Go's wait
 * duration) and which stack groups are growing (the goroutine-leak hunt, for threads).
 *
 * The daemon adds a snapshot now and then (history_add). Each is kept compactly: per
 * thread its tid, start time, state, wait, name and stack, where stacks, names and waits
 * are interned once and reference-counted, so a thousand threads parked in one place for
 * an hour cost one stack. The history is bounded by a snapshot count and by a memory
 * budget: the oldest snapshots go first, and whatever only they referred to is freed with
 * them, so memory stays flat however long the target runs and however its stacks change.
 * Everything added comes from an untrusted target and is capped (HistoryLimits).
 *
 * A stack is identified by its raw pcs and how its unwind ended (StackFrame.pc,
 * Stack.end), as debug=1 groups them; its frames' flags and SymLoc pointers are compared
 * too, so a stack read back is exactly the one added (a library reloaded at the same
 * address makes a new stack). The SymLocs are kept as pointers: they belong to the
 * daemon's symbolizer, which must outlive the history and every HistoryGrowth made from it.
 *
 * Pure data: no process, no I/O, no logging, not thread-safe (the owner serializes). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "macro.h"
#include "pprof.h"
#include "threads.h"

typedef struct HistoryLimits {
        size_t max_snapshots;           /* ≥ 1; the oldest snapshot beyond it is dropped */
        size_t max_bytes;               /* memory budget, as history_memory_bytes() counts;
                                           the oldest snapshots are dropped to stay under */
        size_t max_threads;             /* per snapshot: a bigger dump is refused (-E2BIG) */
        size_t max_stack_depth;         /* frames kept per stack (≥ 1); a deeper stack is cut
                                           there and ends as STACK_END_DEPTH */
        size_t max_string_bytes;        /* thread names and waits are cut to this many bytes,
                                           at a UTF-8 character boundary */
} HistoryLimits;

/* 360 snapshots (an hour at one per 10 s), 32 MiB, 65536 threads, 1024 frames (the
 * unwinder's own cap), 256-byte strings. history_new() clamps larger limits to 2^24
 * snapshots, 2^24 threads, 65536 frames and 65536 string bytes. */
extern const HistoryLimits history_limits_default;

/* What a ThreadRecord does not carry, from the same read of /proc/PID/task/TID/stat. */
typedef struct HistoryThreadInfo {
        uint64_t start_time_ticks;      /* stat field 22: tells a reused tid apart; 0 when
                                           unknown (then only the tid identifies a thread) */
        char state;                     /* stat field 3: 'S', 'R', 'D', …; 0: the first byte
                                           of ThreadRecord.state (NULL state: unknown, which
                                           equals unknown) */
} HistoryThreadInfo;

typedef struct History History;

/* Creates an empty history bounded by LIMITS (NULL: the defaults). 0, -EINVAL (a limit is
 * 0), -ENOMEM; *ret owns the history. */
int history_new(const HistoryLimits *limits, History **ret);
/* Replaces the snapshot count and memory bounds of H (a 0 keeps that bound): larger ones
 * let it grow, smaller ones drop the oldest snapshots at the next history_add(). */
void history_set_bounds(History *h, size_t max_snapshots, size_t max_bytes);
/* Accepts NULL, returns NULL:  h = history_free(h); */
History *history_free(History *h);
DEFINE_POINTER_CLEANUP(History, history_free);

/* Adds DUMP as the newest snapshot, taken at MONOTONIC_NS (CLOCK_MONOTONIC; not before the
 * newest snapshot's) and at DUMP->time_ns (CLOCK_REALTIME). INFO is NULL or holds
 * DUMP->n_threads entries parallel to DUMP->threads. Only the contents are kept: DUMP
 * itself may be freed afterwards, except for the SymLocs its stacks point to.
 *
 * A thread's wait is how long it has been seen with the same stack, the same state and the
 * same wait (syscall or wchan): MONOTONIC_NS minus the time of the first of the consecutive
 * snapshots, this one included, that saw this thread (same tid and start time) so. It is
 * 0 when this snapshot is the first to see it so, and for a thread whose stack was not
 * captured (error != 0), which also restarts the count. A thread that renames itself keeps
 * its wait. When RET_WAIT_NS is non-NULL it receives DUMP->n_threads waits, parallel to
 * DUMP->threads.
 *
 * Then the oldest snapshots are dropped while there are more than max_snapshots or the
 * history uses more than max_bytes; the new one is never dropped, so after success
 * history_memory_bytes() ≤ max_bytes. Names and waits longer than max_string_bytes and
 * stacks deeper than max_stack_depth are cut (see HistoryLimits).
 *
 * 0; -EINVAL (NULL H or DUMP, threads NULL with n_threads > 0, MONOTONIC_NS before the
 * newest snapshot's); -E2BIG (more than max_threads threads, the snapshot alone would not
 * fit in max_bytes, or one stack or string would be used by 2^32 kept threads); -ENOMEM.
 * On failure the history is as it was (its memory too, unless an allocation fails on the
 * way back) and RET_WAIT_NS is untouched. */
int history_add(History *h, const ThreadDump *dump, const HistoryThreadInfo *info,
                uint64_t monotonic_ns, uint64_t *ret_wait_ns);

/* Sets DUMP->threads[i].wait_ns to the wait history_add() computes (so the debug=2 header
 * prints it), without adding anything: against the newest snapshot, as if DUMP were added
 * at MONOTONIC_NS. Right after history_add() of the same DUMP, INFO and MONOTONIC_NS it
 * gives the same waits (the newest snapshot is then DUMP itself). Threads not seen so in
 * the newest snapshot, and every thread of an empty history, get 0 (unknown: not printed).
 * Arguments as for history_add(); nothing happens when H or DUMP is NULL. */
void history_fill_wait_ns(const History *h, ThreadDump *dump, const HistoryThreadInfo *info,
                          uint64_t monotonic_ns);

/* The change in the number of threads (captured or not) between the newest snapshot and
 * the base of WINDOW_NS: the oldest snapshot taken at most WINDOW_NS before the newest
 * (UINT64_MAX: the oldest kept; 0 or a window shorter than the snapshot interval: the
 * newest itself, so 0 over 0 ns). *ret_covered_ns gets the time actually covered, newest
 * minus base (monotonic). "+214 in 5m" is
 *   printf("%+" PRId64 " in %s", delta, format_short_duration(covered, buf, sizeof buf)).
 * 0, or -ENODATA when the history is empty (or NULL); outputs untouched on failure;
 * either may be NULL. */
int history_thread_count_change(const History *h, uint64_t window_ns, int64_t *ret_delta,
                                uint64_t *ret_covered_ns);

typedef struct HistoryGrowthGroup {
        uint32_t stack_id;              /* the interned stack; ids are handed out in
                                           order and come round again only after 2^32
                                           stacks */
        int64_t delta;                  /* threads gained over the window; > 0 */
        size_t count;                   /* threads with this stack in the newest snapshot */
        Stack stack;                    /* a copy: frames owned by the HistoryGrowth, their
                                           SymLocs by the symbolizer */
} HistoryGrowthGroup;

typedef struct HistoryGrowth {
        uint64_t time_ns;               /* CLOCK_REALTIME of the newest snapshot */
        uint64_t window_ns;             /* covered: newest − base, monotonic */
        size_t threads_before;          /* every thread of the base snapshot */
        size_t threads_after;           /* every thread of the newest */
        int64_t total;                  /* the sum of the groups' deltas */
        HistoryGrowthGroup *groups;     /* by delta descending, then by pcs ascending (as
                                           numbers, frame by frame; a prefix first), then
                                           end, then stack id */
        size_t n_groups;
} HistoryGrowth;

/* The stack groups (threads with the same interned stack) that have more threads in the
 * newest snapshot than in the base of WINDOW_NS (chosen as for
 * history_thread_count_change()), with their deltas. Groups that shrank or stayed are left
 * out, and so are threads whose stack was not captured (they still count in
 * threads_before/after). The result does not refer to the history: it stays valid after
 * the history changes or is freed (not after the symbolizer is). 0, -EINVAL (RET is NULL),
 * -ENODATA (the history is empty or NULL), -ENOMEM; *ret owns the result. */
int history_growth(const History *h, uint64_t window_ns, HistoryGrowth **ret);
/* Accepts NULL, returns NULL. */
HistoryGrowth *history_growth_free(HistoryGrowth *g);
DEFINE_POINTER_CLEANUP(HistoryGrowth, history_growth_free);

/* Appends G as text in the shape of Go's debug=1 count profile, deltas for counts, so
 * Go's legacy parser (`NAME profile: total N`, then `N @ 0x…` records) reads it:
 *
 *   threadgrowth profile: total 214            N: the sum of the listed deltas
 *   # window: 5m0s, threads 12 -> 226 (+214)   Go duration; every thread, captured or not
 *   214 @ 0x7f… 0x55…                          one record per group, as G orders them
 *   #\t0x7f…\twrite+0x4f\twrite.c:26           frame lines exactly as debug=1 prints them
 *   (blank line)
 *
 * aligned by the same tab writer as debug=1. */
void history_growth_write_text(const HistoryGrowth *g, Buf *out);

/* Fills P with G as a pprof profile: sample type and period type threads/count (period 1),
 * time_nanos = G->time_ns, duration_nanos = G->window_ns, the "window: …" line as a
 * comment, and one sample per group (profile_add_stack(), no labels) whose value is its
 * delta. P must be new but for its mappings, which the caller adds first so that the
 * locations find them (profile_add_mapping()). 0; -EINVAL (P has sample types or samples
 * already); the errors of profile_add_stack() and friends, after which P holds part of G. */
int history_growth_profile(const HistoryGrowth *g, Profile *p);

typedef struct HistoryStats {
        size_t snapshots;
        size_t stacks;                  /* interned stacks, each used by a kept snapshot */
        size_t strings;                 /* interned names and waits */
        size_t threads;                 /* thread records over all kept snapshots */
        size_t memory_bytes;            /* as history_memory_bytes() */
        uint64_t span_ns;               /* newest − oldest snapshot, monotonic; 0 when < 2 */
} HistoryStats;

/* Fills *ret; a NULL H reads as an empty history. */
void history_get_stats(const History *h, HistoryStats *ret);

/* The memory the history holds between calls, counted as glibc's malloc uses it (each
 * block's request plus its 8-byte header, in 16-byte steps, at least 32 bytes): the
 * history itself, the snapshot ring, every snapshot's thread records, every interned
 * stack and string, and the tables that find them. Temporary allocations of a call, and
 * HistoryGrowth results, are not included. 0 for NULL. */
size_t history_memory_bytes(const History *h);

/* Go's time.Duration.String(): "0s", "999ns", "1.5µs", "300ms", "42s", "5m0s",
 * "1h2m3.5s". Writes into BUF (≥ 32 bytes holds any value) and returns it; "" when SIZE is
 * 0 (then BUF may be NULL). */
const char *format_go_duration(uint64_t ns, char *buf, size_t size);

/* Whole seconds, zero units left out: "0s" (under one second), "42s", "5m", "5m30s",
 * "1h", "1h1m", "2h5s" (all read by Go's time.ParseDuration); for "+214 in 5m". Writes
 * into BUF (≥ 32 bytes) and returns it; "" when SIZE is 0. */
const char *format_short_duration(uint64_t ns, char *buf, size_t size);
