/* daemon/scheduler.h -- the daemon's clock: every interval, snapshot every live target
 * (feeding its history: wait times, thread growth) and look for processes to follow, all
 * as one job on the worker thread, so the loop never waits on it. */
#pragma once

#include <stdint.h>

#include "durations.h"
#include "targets.h"
#include "worker.h"

struct event_base;

#define INTERVAL_DEFAULT_NS (10 * NSEC_PER_SEC)
#define DISCOVERY_INTERVAL_NS (10 * NSEC_PER_SEC)  /* when periodic snapshots are off */
#define HISTORY_SNAPSHOTS_DEFAULT 360u             /* an hour at the default interval */
#define HISTORY_BYTES_DEFAULT (64u * 1024u * 1024u)

typedef struct Schedule {
        uint64_t interval_ns;           /* 0: no periodic snapshots */
        unsigned history_snapshots;     /* snapshots kept per target at most */
        uint64_t history_bytes;         /* memory for history per target at most */
} Schedule;

typedef struct Scheduler Scheduler;

/* Starts the timers. 0, or negative errno. */
int scheduler_new(struct event_base *base, Worker *worker, Targets *targets, const Schedule *schedule,
                  Scheduler **ret);
/* [loop] Replaces the schedule: the timer restarts at the new interval (or stops when
 * there is nothing to do). 0, or -ENOMEM (the old timer then stays). */
int scheduler_set_schedule(Scheduler *s, const Schedule *schedule);
/* [loop] No tick after this; a tick job in flight still completes. Accepts NULL. */
void scheduler_stop(Scheduler *s);
/* [loop] Accepts NULL, returns NULL. Call after worker_stop() and its results delivered. */
Scheduler *scheduler_free(Scheduler *s);
