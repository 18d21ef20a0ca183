/* daemon/scheduler.h -- the daemon's clock: every interval, snapshot every live target
 * (feeding its history: wait times, thread growth) and look for processes to follow, all
 * as one job on the worker thread, so the loop never waits on it. */
#pragma once

#include <stdint.h>

#include "targets.h"
#include "worker.h"

struct event_base;

#define INTERVAL_DEFAULT_NS (10 * NSEC_PER_SEC)
#define INTERVAL_MIN_NS (100 * NSEC_PER_MSEC)
#define DISCOVERY_INTERVAL_NS (10 * NSEC_PER_SEC)  /* when periodic snapshots are off */
#define HISTORY_SNAPSHOTS_DEFAULT 360u             /* an hour at the default interval */
#define HISTORY_SNAPSHOTS_MAX 100000u
#define HISTORY_BYTES_DEFAULT (64u * 1024u * 1024u)

typedef struct Schedule {
        uint64_t interval_ns;           /* 0: no periodic snapshots */
        unsigned history_snapshots;     /* snapshots kept per target at most */
        uint64_t history_bytes;         /* memory for history per target at most */
} Schedule;

typedef struct Scheduler Scheduler;

/* Parses a Go-style duration: "10s", "500ms", "2m", "1h", "1m30s"; a bare number means
 * seconds; "0" is zero. 0, or -EINVAL. */
int parse_duration(const char *s, uint64_t *ret_ns);
/* --history: a number of snapshots ("360") or a memory budget ("64M", "512K", "1G"); the
 * other bound keeps its value. 0, or -EINVAL. */
int parse_history(const char *s, unsigned *snapshots, uint64_t *bytes);

/* Starts the timers. 0, or negative errno. */
int scheduler_new(struct event_base *base, Worker *worker, Targets *targets, const Schedule *schedule,
                  Scheduler **ret);
/* [loop] Accepts NULL, returns NULL. Call after worker_free() and its results delivered. */
Scheduler *scheduler_free(Scheduler *s);
