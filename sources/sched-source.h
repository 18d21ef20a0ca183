/* sources/sched-source.h -- the block, mutex and threadcreate profiles: scheduler-event trackers
 * (sched-tracker.h) per target, started at the first request (or at attach with --block,
 * --mutex), drained every SCHED_DRAIN_MS on the worker, and closed once no request came
 * for SCHED_IDLE_NS (never when tracking began at attach). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "periodic-drain.h"
#include "sched-tracker.h"
#include "source.h"

#define SCHED_DRAIN_MS 50
#define SCHED_IDLE_NS (10 * 60 * NSEC_PER_SEC)

typedef struct SchedService {
        SchedOptions options;
        bool at_attach[SCHED_PROFILES]; /* --block, --mutex, --threadcreate */
        PeriodicDrain drain;
        /* What /metrics counts, per profile, summed over every tracker there was. */
        atomic_uint_least64_t events[SCHED_PROFILES], lost[SCHED_PROFILES], recorded[SCHED_PROFILES],
                exits[SCHED_PROFILES];
} SchedService;

/* Per target: [worker] trackers, and what the loop reads. */
typedef struct SchedTargetState {
        SchedTracker *tracker[SCHED_PROFILES];          /* [worker] */
        SchedStats reported[SCHED_PROFILES];            /* [worker] stats already in metrics */
        uint64_t retry_ns[SCHED_PROFILES];              /* [worker] at attach: next attempt */
        atomic_bool tracking[SCHED_PROFILES];
        atomic_uint_least64_t last_request_ns[SCHED_PROFILES];
        atomic_long records[SCHED_PROFILES];            /* stacks, for the index */
        unsigned timelines[SCHED_PROFILES];             /* [worker] traces using it */
} SchedTargetState;

extern const ProfileSource sched_source;

/* [worker] TARGET's tracker of WHICH for a timeline (a trace), started now if it has none;
 * it stays open until sched_source_release(). NULL with ERR set when it cannot be. */
SchedTracker *sched_source_acquire(struct Service *s, struct Target *target, SchedProfile which, char *err,
                                   size_t errlen);
/* [worker] Reads what its events hold now. */
void sched_source_drain(struct Service *s, struct Target *target, SchedProfile which);
/* [worker] The timeline is done with it: closed unless a profile request uses it. */
void sched_source_release(struct Service *s, struct Target *target, SchedProfile which);

/* [worker] Stops TARGET's trackers (the target is being freed). */
void sched_target_done(SchedTargetState *st);
