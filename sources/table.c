/* sources/table.c -- see table.h. */
#include <string.h>

#include "cpu.h"
#include "heap-service.h"
#include "macro.h"
#include "sched-source.h"
#include "snapshots.h"
#include "table.h"
#include "trace-source.h"

const ProfileInfo profile_table[] = {
        {
                .name = "allocs",
                .description = "A sampling of every allocation since heap tracking began (at the first heap or "
                               "allocs request, or at attach with --heap), by call stack; alloc_space by "
                               "default.",
                .counts = "allocation records (stack and size), not objects or bytes.",
                .supports_delta = true,
                .source = &heap_source,
                .variant = HEAP_ALLOCS,
        },
        {
                .name = "block",
                .description = "Time threads spent blocked on synchronization (mutexes, rwlocks, condition "
                               "variables, semaphores, barriers, joins, futexes; not sleeps or I/O) since "
                               "tracking began (at the first block request, or at attach with --block), by "
                               "the waiting stack, from the scheduler's tracepoints.",
                .counts = "stack records, not waits or time.",
                .supports_delta = true,
                .source = &sched_source,
                .variant = SCHED_BLOCK,
        },
        {
                .name = "goroutine",
                .description = "Stack traces of all current threads of the target.",
                .counts = "the threads it has right now.",
                .supports_delta = true,
                .source = &snapshot_source,
                .variant = SNAPSHOT_GOROUTINE,
        },
        {
                .name = "heap",
                .description = "A sampling of the memory still allocated (inuse_space by default) and of every "
                               "allocation since heap tracking began, by call stack, through an agent cprofd "
                               "loads into the target.",
                .counts = "allocation records (stack and size), not objects or bytes.",
                .supports_delta = true,
                .source = &heap_source,
                .variant = HEAP_INUSE,
        },
        {
                .name = "locks",
                .description = "Every synchronization object some thread waits on, most waiters first: its "
                               "kind, name and holder, with the stacks of holder and waiters; deadlocks first. "
                               "debug=1 text, format=json for scripts, debug=0 the waiters' stacks as pprof.",
                .counts = "objects waited on at the last snapshot.",
                .supports_json = true,
                .source = &snapshot_source,
                .variant = SNAPSHOT_LOCKS,
        },
        {
                .name = "mutex",
                .description = "Stack traces of holders of contended locks: each wake-up of a thread waiting "
                               "on a mutex, rwlock or libc lock, by the stack that released it, with the time "
                               "the woken thread had waited; since tracking began (at the first mutex request, "
                               "or at attach with --mutex).",
                .counts = "stack records, not wake-ups or time.",
                .supports_delta = true,
                .source = &sched_source,
                .variant = SCHED_MUTEX,
        },
        {
                .name = "profile",
                .description = "CPU profile of the target, sampled with perf_event_open. seconds=N sets the "
                               "duration (default 30), hz=H the rate (default 100, at most 1000), mode=fp "
                               "uses the kernel's frame-pointer walk instead of DWARF unwinding.",
                .counts = "0.",
                .kind = PROFILE_WINDOW,
                .hz_default = 100,
                .hz_max = 1000,
                .supports_mode = true,
                .source = &cpu_source,
        },
        {
                .name = "threadcreate",
                .description = "Every thread created since tracking began (at the first threadcreate request, or "
                               "at attach with --threadcreate), by the stack of the thread that created it, "
                               "labelled with its start routine and name; the threads there before under "
                               "[created before tracking].",
                .counts = "stack records, not threads.",
                .supports_delta = true,
                .source = &sched_source,
                .variant = SCHED_THREADCREATE,
        },
        {
                .name = "threadgrowth",
                .description = "Stack groups whose thread count grew over the snapshot history "
                               "(--interval), largest growth first; counts are the growth.",
                .counts = "the groups that grew.",
                .source = &snapshot_source,
                .variant = SNAPSHOT_GROWTH,
        },
        {
                .name = "trace",
                .description = "A timeline of every thread of the target over seconds=N (default 1): when it "
                               "ran and on which CPU (with CPU samples at hz=H, default 100), when it was off "
                               "CPU and why, with its stack, who woke it, thread creation and exit; the Trace "
                               "Event Format (JSON) that Perfetto UI and chrome://tracing open, gzipped when "
                               "the client accepts it.",
                .counts = "0.",
                .kind = PROFILE_WINDOW,
                .seconds_default = 1,
                .hz_default = 100,
                .hz_max = 1000,
                .source = &trace_source,
        },
        {
                .name = "wall",
                .description = "Wall-clock profile: every thread of the target, running or blocked, sampled by "
                               "snapshots. seconds=N sets the duration (default 30), hz=H the rate (default 10, "
                               "at most 100); samples are labelled by thread and state.",
                .counts = "0.",
                .kind = PROFILE_WINDOW,
                .hz_default = 10,
                .hz_max = 100,
                .source = &snapshot_source,
                .variant = SNAPSHOT_WALL,
        },
};

const size_t profile_table_size = ARRAY_SIZE(profile_table);

const ProfileSource *const profile_sources[] = {
        &heap_source,
        &snapshot_source,
        &cpu_source,
        &sched_source,
        &trace_source,
};

const size_t profile_sources_size = ARRAY_SIZE(profile_sources);

size_t profile_table_index(const ProfileInfo *info) {
        return (size_t) (info - profile_table);
}

void profile_table_write(Buf *out) {
        for (size_t i = 0; i < profile_table_size; i++) {
                const ProfileInfo *p = &profile_table[i];
                buf_printf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p->name, p->kind == PROFILE_WINDOW ? "window" : "named",
                           p->supports_delta ? "delta" : "-", p->supports_json ? "json" : "-",
                           profile_source(p)->name, p->description, p->counts);
        }
}
