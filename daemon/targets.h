/* daemon/targets.h -- the processes cprofd serves: each held by a pidfd (so a reused pid
 * is never mistaken for it), with its address space for unwinding, and the thread dump
 * path that ties attach/, symbolize/ and profile/ together. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hashmap.h"
#include "metrics.h"
#include "snapshot.h"
#include "symbolizer.h"
#include "threads.h"

/* Fields marked [worker] are touched only on the worker thread (see worker.h); the others
 * are set once at startup or are atomic, so the loop may read them at any time. */
typedef struct Target {
        pid_t pid;
        int pidfd;                      /* -1 when pidfd_open is unavailable */
        uint64_t start_time_ticks;      /* with the pidfd, identifies the process */
        char comm[64];
        char *exe;                      /* path of the main executable, NULL unknown */
        AddressSpace *as;               /* [worker] */
        atomic_bool exited;
        atomic_long last_threads;       /* thread count of the last snapshot, -1 unknown */
        U64Map last_syscall;            /* [worker] tid → syscall nr + 1 at the last snapshot */
} Target;

typedef struct Targets {
        Target *items;
        size_t n;
        Symbolizer *symbolizer;
        SnapshotOptions snapshot_options;
        Metrics *metrics;
} Targets;

/* Adds PID. 0; -ESRCH when there is no such process; other negative errno. */
int targets_add(Targets *t, pid_t pid);
Target *targets_find(Targets *t, pid_t pid);
void targets_done(Targets *t);
/* True when the process has exited (or its pid now names another process). */
bool target_check_exited(Target *target);

/* [worker] Takes a snapshot of TARGET, unwinds and symbolizes every thread into RET (free
 * with thread_dump_done). When RET_MAPS is given it receives the snapshot's maps (free
 * with maps_done). 0; -ESRCH when the target is gone; -EPERM with *ret_tracer set when
 * another tracer holds it; other negative errno. */
int target_thread_dump(Targets *t, Target *target, ThreadDump *ret, Maps *ret_maps, pid_t *ret_tracer);
void thread_dump_done(ThreadDump *d);
