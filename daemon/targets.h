/* daemon/targets.h -- the processes cprofd serves: each held by a pidfd (so a reused pid
 * is never mistaken for it), with its address space for unwinding, and the thread dump
 * path that ties attach/, symbolize/ and profile/ together. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "clock.h"
#include "discover.h"
#include "hashmap.h"
#include "history.h"
#include "metrics.h"
#include "sched-source.h"
#include "snapshot.h"
#include "symbolizer.h"
#include "thread-cache.h"
#include "threads.h"

/* The states /metrics counts threads in: R S D T Z and everything else. */
#define THREAD_STATES 6
extern const char thread_state_letters[THREAD_STATES];

/* Fields marked [worker] are touched only on the worker thread (see worker.h), [loop] only
 * on the event loop's; the others are set once when the target is added, or are atomic.
 * A Target is reference-counted on the loop: the list holds one reference while it lists
 * the target, and every job or request that uses it holds one, so a target that is
 * dropped from the list lives on until the last job that uses it is done. */
typedef struct Target {
        unsigned refs;                  /* [loop] */
        pid_t pid;
        uint64_t start_time_ticks;      /* with the pidfd, identifies the process */
        ProcessHandle handle;           /* pidfd: a reused pid is never taken for it */
        char comm[64];
        char *exe;                      /* [worker] path of the main executable, NULL
                                           unknown; read again at each snapshot, as an
                                           execve() changes it under the same pid */
        size_t selector;                /* which selector of Targets found it */
        AddressSpace *as;               /* [worker] */
        atomic_bool exited;
        uint64_t exited_ns;             /* [loop] monotonic time we noticed, 0 alive */
        atomic_long last_threads;       /* thread count of the last snapshot, -1 unknown */
        U64Map last_syscall;            /* [worker] tid → syscall nr + 1 at the last snapshot */
        ThreadCache thread_cache;       /* [worker] stacks of threads that have not run since */
        struct HeapTracker *heap;       /* [worker] heap tracking (agent or uprobes), or NULL */
        uint64_t heap_retry_ns;         /* [worker] --heap: when to try loading the agent again */
        atomic_bool heap_tracking;      /* heap tracking was asked for, for the loop */
        atomic_long heap_sites;         /* allocation records, for the index */
        SchedTargetState sched;         /* block and mutex tracking */
        History *history;               /* [worker] periodic and on-demand snapshots */
        /* What the loop shows of the history (index, metrics), published after each
         * snapshot by the worker. */
        atomic_long growth_delta;       /* thread count change over the history */
        atomic_uint_least64_t growth_window_ns;
        atomic_long growing_groups;     /* stack groups that grew */
        atomic_long threads_by_state[THREAD_STATES];
        /* What the last dump's waits showed (thread-waits.h). */
        atomic_long deadlocked_threads; /* threads in confirmed deadlock cycles */
        atomic_long lock_waiters;       /* threads waiting on a mutex, rwlock or libc lock */
        atomic_long waited_objects;     /* synchronization objects some thread waits on */
        uint64_t *logged_cycles;        /* [worker] signatures of the cycles last logged */
        size_t n_logged_cycles;
        atomic_uint_least64_t snapshots, snapshot_ns_total, pause_ns_total, pauses;
} Target;

#define TARGETS_MAX_DEFAULT 64          /* live targets followed at once */
#define TARGET_EXITED_KEEP_NS (10 * 60 * NSEC_PER_SEC)  /* an exited target stays listed */

typedef struct Targets {
        Target **items;                 /* [loop] in the order they were found */
        size_t n;
        size_t max;                     /* live targets at most */
        Symbolizer *symbolizer;
        SnapshotOptions snapshot_options;
        Metrics *metrics;
        TargetSelector *selectors;      /* what to follow: --pid, --exe, --comm, … */
        size_t n_selectors;
        bool follow;                    /* some selector is not a plain --pid */
        unsigned generation;            /* [loop] bumped when a reload replaces the selectors */
        HistoryLimits history_limits;
        bool no_wait_decoding;          /* --no-wait-decoding: bare syscall names */
} Targets;

Target *target_ref(Target *t);
/* Accepts NULL, returns NULL. Frees the target with its last reference. */
Target *target_unref(Target *t);

/* [loop] Adds the process PID started at START_TIME_TICKS (0: whatever has that pid now),
 * found by selector SELECTOR. 0, or -EEXIST when it is listed already; -ESRCH when there
 * is no such process (or the pid names another one now); -E2BIG past Targets.max. */
int targets_add(Targets *t, pid_t pid, uint64_t start_time_ticks, size_t selector);
/* [loop] The live target with PID, else the most recent exited one; NULL when none. */
Target *targets_find(Targets *t, pid_t pid);
/* [loop] Brings the list in line with a discovery scan: adds new processes, marks the
 * exited ones, drops those exited longer than TARGET_EXITED_KEEP_NS ago. Returns how many
 * were added. */
size_t targets_merge(Targets *t, const DiscoveredProcess *found, size_t n, uint64_t now_ns);
void targets_done(Targets *t);
/* True when the process has exited (or its pid now names another process). */
bool target_check_exited(Target *target);

/* How a snapshot treats threads that have not run since they were last stopped. */
typedef enum SnapshotMode {
        SNAPSHOT_STOP_ALL,              /* stop every thread: what a user asked to see now */
        SNAPSHOT_REUSE_UNCHANGED,       /* reuse their stacks (thread-cache.h): periodic and
                                           wall-clock sampling, which must cost the target
                                           and the host little */
} SnapshotMode;

/* What a dump says of blocked threads beyond their syscall (thread-waits.h). */
typedef enum DumpWaits {
        DUMP_WAITS_NONE,                /* bare syscall names: wall-clock sampling */
        DUMP_WAITS_LOCKS,               /* synchronization objects, holders, deadlocks:
                                           periodic snapshots (metrics, the deadlock log) */
        DUMP_WAITS_ALL,                 /* and what other blocking calls wait on (fds,
                                           sockets, sleeps): what a user reads */
} DumpWaits;

/* [worker] Takes a snapshot of TARGET, unwinds and symbolizes every thread into RET (free
 * with thread_dump_done), with the waits WAITS asks for (none under --no-wait-decoding).
 * When RET_MAPS is given it receives the snapshot's maps (free with maps_done). 0;
 * -ESRCH when the target is gone; -EPERM with *ret_tracer set when another tracer holds
 * it; other negative errno. */
int target_thread_dump(Targets *t, Target *target, SnapshotMode mode, DumpWaits waits, ThreadDump *ret,
                       Maps *ret_maps, pid_t *ret_tracer);
void thread_dump_done(ThreadDump *d);
