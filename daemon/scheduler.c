/* daemon/scheduler.c -- see scheduler.h. One tick at a time: a tick that comes while the
 * previous one still runs is skipped (a slow host cannot pile up work). */
#include <ctype.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"

struct Scheduler {
        struct event_base *base;
        Worker *worker;
        Targets *targets;
        Schedule schedule;
        struct event *timer;
        bool busy;                      /* a tick job is queued or running */
        uint64_t ticks, skipped;
};

typedef struct Tick {
        Scheduler *scheduler;
        Target **targets;               /* referenced for the job */
        size_t n;
        bool snapshot, discover;
        unsigned generation;            /* of the selectors it scanned for */
        DiscoveredProcess *found;       /* [worker] discovery result */
        size_t n_found;
        int discover_error;
} Tick;

/* [worker] */
static void tick_job(void *userdata) {
        Tick *t = userdata;
        Targets *targets = t->scheduler->targets;
        if (t->discover)
                t->discover_error = discover_scan(targets->selectors, targets->n_selectors, &t->found, &t->n_found);
        if (t->discover_error < 0)
                t->found = NULL, t->n_found = 0;
        for (size_t i = 0; t->snapshot && i < t->n; i++) {
                ThreadDump dump;
                if (target_thread_dump(targets, t->targets[i], SNAPSHOT_REUSE_UNCHANGED, DUMP_WAITS_LOCKS, &dump,
                                       NULL, NULL) == 0)
                        thread_dump_done(&dump);
        }
}

/* [loop] */
static void tick_done(void *userdata) {
        Tick *t = userdata;
        Scheduler *s = t->scheduler;
        if (t->discover_error < 0)
                log_warning_errno(t->discover_error, "Failed to look for processes to follow: %m");
        /* Found by selectors that a reload replaced since: their indexes mean nothing now. */
        if (t->discover && t->generation == s->targets->generation) {
                size_t added = targets_merge(s->targets, t->found, t->n_found, now_monotonic_ns());
                if (added > 0)
                        log_info("Now following %zu new process(es).", added);
        }
        discovered_free(t->found, t->n_found);
        for (size_t i = 0; i < t->n; i++)
                target_unref(t->targets[i]);
        free(t->targets);
        free(t);
        s->busy = false;
}

static void on_tick(evutil_socket_t fd, short events, void *userdata) {
        Scheduler *s = userdata;
        s->ticks++;
        if (s->busy) {
                s->skipped++;
                return;
        }
        Tick *t = calloc(1, sizeof *t);
        if (!t)
                return;
        t->scheduler = s;
        t->snapshot = s->schedule.interval_ns > 0;
        t->discover = s->targets->follow;
        t->generation = s->targets->generation;
        t->targets = calloc(MAX(s->targets->n, 1u), sizeof *t->targets);
        if (!t->targets) {
                free(t);
                return;
        }
        for (size_t i = 0; i < s->targets->n; i++)
                if (!target_check_exited(s->targets->items[i]))
                        t->targets[t->n++] = target_ref(s->targets->items[i]);
        if (worker_submit(s->worker, tick_job, tick_done, t) < 0) {
                tick_done(t);
                return;
        }
        s->busy = true;
}

static int scheduler_arm(Scheduler *s) {
        uint64_t every = s->schedule.interval_ns;
        if (every == 0 && s->targets->follow)
                every = DISCOVERY_INTERVAL_NS;
        if (every == 0) {
                if (s->timer)
                        (void) event_del(s->timer);
                return 0;
        }
        if (!s->timer) {
                s->timer = event_new(s->base, -1, EV_PERSIST, on_tick, s);
                if (!s->timer)
                        return -ENOMEM;
        }
        struct timeval tv = { .tv_sec = (time_t) (every / NSEC_PER_SEC),
                              .tv_usec = (suseconds_t) (every % NSEC_PER_SEC / NSEC_PER_USEC) };
        return event_add(s->timer, &tv) < 0 ? -ENOMEM : 0;
}

int scheduler_new(struct event_base *base, Worker *worker, Targets *targets, const Schedule *schedule,
                  Scheduler **ret) {
        Scheduler *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (Scheduler) { .base = base, .worker = worker, .targets = targets, .schedule = *schedule };
        if (scheduler_arm(s) < 0) {
                scheduler_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

int scheduler_set_schedule(Scheduler *s, const Schedule *schedule) {
        Schedule old = s->schedule;
        s->schedule = *schedule;
        /* An unchanged interval keeps its phase: a reload does not postpone the tick. */
        if (old.interval_ns == schedule->interval_ns && s->timer && event_pending(s->timer, EV_TIMEOUT, NULL))
                return 0;
        int r = scheduler_arm(s);
        if (r < 0)
                s->schedule = old;
        return r;
}

void scheduler_stop(Scheduler *s) {
        if (s && s->timer)
                (void) event_del(s->timer);
}

Scheduler *scheduler_free(Scheduler *s) {
        if (!s)
                return NULL;
        if (s->timer)
                event_free(s->timer);
        free(s);
        return NULL;
}
