/* sources/sched-tracker.h -- where threads of one process wait on synchronization, from
 * the kernel's scheduler tracepoints, without touching the process's code.
 *
 * Block: sched:sched_switch, filtered by the kernel to switches into a sleep
 * ("prev_state & 3": preemptions cost nothing), fires in the context of the thread going
 * to sleep with its user registers (as it entered the futex syscall) and a copy of its
 * stack. The copy is kept aside until the thread's next switch onto a CPU
 * (PERF_RECORD_SWITCH), which ends the wait: its delay is known then, and only then is the
 * stack unwound and classified (wait_site_classify_blocked): futex waits of mutexes,
 * rwlocks, condition variables, semaphores, barriers, joins, once and raw futexes count;
 * sleeps and I/O do not.
 *
 * Mutex: sched:sched_waking fires in the waker's context. When the waker's frames say it
 * releases a lock (pthread_mutex_unlock, an rwlock unlock, a libc lock; not a condition
 * variable's signal), its stack is charged with the time the woken thread had been off
 * its CPU (since its last PERF_RECORD_SWITCH out): Go's "holders of contended mutexes".
 *
 * Per thread of the target, new threads included, through attach/perf.h's sampler (one
 * ring per CPU, records merged by time). Events the kernel could not write (a full ring)
 * are counted, never waited for.
 *
 * Sampling keeps the cost bounded and the totals true estimates: block keeps every wait of
 * at least RATE ns and a shorter one of D ns with probability D / RATE, weighted RATE / D
 * (Go's SetBlockProfileRate); mutex keeps one event in FRACTION at random and says so as
 * the profile's sampling period (Go's SetMutexProfileFraction).
 *
 * Threadcreate: task:task_newtask fires in the creating thread's context (filtered by
 * the kernel to CLONE_THREAD: threads, not processes); its stack is the creation site.
 * The new thread's start routine is read from its struct pthread (the TLS block the
 * clone call passes), at the offset where the target's threads that existed at the start
 * keep theirs (or, failing that, where cprofd's own libc does, when the target maps the
 * same file: pthread-layout.h); its name is the one it has a moment later, once it could set it
 * (PERF_RECORD_COMM). Threads that existed when tracking began are added from a
 * snapshot, by their own outermost function.
 *
 * [worker]: one caller at a time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "contention.h"
#include "threadcreate.h"
#include "threads.h"
#include "drain-maps.h"
#include "symbolizer.h"

typedef enum SchedProfile {
        SCHED_BLOCK,
        SCHED_MUTEX,
        SCHED_THREADCREATE,
        SCHED_PROFILES,
} SchedProfile;

#define SCHED_STACK_BYTES_DEFAULT (8u * 1024u)  /* as perf record --call-graph dwarf */
#define SCHED_BLOCK_RATE_DEFAULT 10000u         /* ns: shorter waits are sampled */
#define SCHED_MUTEX_FRACTION_DEFAULT 1u
#define SCHED_RING_BYTES (32u * 1024u * 1024u)  /* all CPUs' buffers of one tracker */

typedef struct SchedOptions {
        uint64_t block_rate_ns;         /* ≤ 1: every wait */
        unsigned mutex_fraction;        /* ≤ 1: every event */
        uint32_t stack_bytes;           /* 0: SCHED_STACK_BYTES_DEFAULT */
} SchedOptions;

typedef struct SchedStats {
        uint64_t events;                /* samples and switch records read */
        uint64_t lost;                  /* records the kernel dropped (full rings) */
        uint64_t recorded;              /* waits (block) or wake-ups (mutex) recorded */
        uint64_t sampled_out;           /* left out by the rate or fraction */
        uint64_t unrelated;             /* not a synchronization wait or lock release */
        uint64_t exits;                 /* threads of the target that exited */
} SchedStats;

/* What a tracker sees, as it sees it, for a timeline (a trace): the block tracker's switches,
 * exits and sleeps (with the sleeping stack, unwound at once), the mutex tracker's
 * wake-ups, the threadcreate tracker's creations. Pointers are valid during the call. */
typedef struct SchedObserver {
        void *userdata;
        void (*on_switch)(void *userdata, pid_t tid, uint64_t time_ns, int cpu, bool in, bool preempted);
        void (*on_sleep)(void *userdata, pid_t tid, uint64_t time_ns, const Stack *stack, const uint64_t args[6]);
        void (*on_wake)(void *userdata, pid_t waker, pid_t wakee, uint64_t time_ns);
        void (*on_create)(void *userdata, pid_t creator, pid_t tid, uint64_t time_ns);
        void (*on_exit)(void *userdata, pid_t tid, uint64_t time_ns);
        /* After each drain of the block tracker: the timeline's own sampling keeps pace. */
        void (*on_drained)(void *userdata);
} SchedObserver;

typedef struct SchedTracker {
        SchedProfile which;
        pid_t pid;
        AddressSpace *as;               /* the target's, borrowed */
        uint64_t started_realtime_ns, started_ns;
        Contention contention;          /* block, mutex */
        Creations creations;            /* threadcreate */
        SchedStats stats;
        const SchedObserver *observer;  /* set: events are handed to it too */
        struct SchedTrackerState *state;
} SchedTracker;

/* Opens WHICH's events on every thread of PID and starts recording into RET's
 * contention. AS (updated with MAPS, which may be NULL) must outlive the tracker. 0, or negative errno with ERR (ERRLEN bytes)
 * saying why and how to fix it: no tracefs, no such tracepoint, not permitted
 * (perf_event_paranoid, CAP_PERFMON, seccomp), -ESRCH when the process is gone. */
int sched_tracker_start(pid_t pid, SchedProfile which, const SchedOptions *opts, AddressSpace *as,
                        const Maps *maps, SchedTracker **ret, char *err, size_t errlen);
/* Reads what the kernel wrote since the last drain; DM gives the target's maps about
 * once a second (modules loaded since). */
void sched_tracker_drain(SchedTracker *t, DrainMaps *dm);
/* Threadcreate: counts the threads of D (a dump taken once the tracker started) as
 * created before tracking. */
void sched_tracker_add_existing(SchedTracker *t, const ThreadDump *d);
/* Threadcreate: records the creations still waiting for their thread's name. */
void sched_tracker_flush(SchedTracker *t);
/* Closes every event. Accepts NULL, returns NULL. */
SchedTracker *sched_tracker_stop(SchedTracker *t);
