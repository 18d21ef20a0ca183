/* sources/periodic-drain.h -- the heartbeat of a source that tracks targets over time
 * (the heap agent, scheduler events): every so often, on the worker, a drain of each
 * target that wants one. A drain already queued is not queued again, so a slow drain
 * delays the next one instead of piling them up; the targets drained are referenced
 * until the job is done. */
#pragma once

#include <stdbool.h>

struct Service;
struct Target;

typedef struct PeriodicDrain {
        struct Service *service;
        unsigned every_ms;
        /* [loop] Whether TARGET needs a drain now. */
        bool (*wants)(struct Service *s, struct Target *target);
        /* [worker] Drains TARGET. */
        void (*drain)(struct Service *s, struct Target *target);

        struct event *timer;            /* [loop] */
        bool busy;                      /* [loop] a drain job is queued */
        struct Target **items;          /* referenced while the job runs */
        size_t n, cap;
} PeriodicDrain;

/* [loop] Starts the timer of D (service, every_ms, wants and drain set). 0 or -ENOMEM. */
int periodic_drain_start(PeriodicDrain *d);
/* [loop] Stops it. */
void periodic_drain_stop(PeriodicDrain *d);
