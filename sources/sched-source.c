/* sources/sched-source.c -- see sched-source.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "macro.h"
#include "profiles.h"
#include "sched-source.h"
#include "service.h"

#define RETRY_NS (10 * NSEC_PER_SEC)    /* --block/--mutex: between attempts that failed */

static const char *const profile_names[SCHED_PROFILES] = { "block", "mutex", "threadcreate" };

static bool at_attach(const Service *s, SchedProfile which) {
        return s->sched.at_attach[which];
}

/* [worker] Publishes what TRACKER counted since the last time. */
static void report(Service *s, SchedTargetState *st, SchedProfile which) {
        const SchedTracker *t = st->tracker[which];
        SchedStats *done = &st->reported[which];
        if (!t)
                return;
        atomic_fetch_add(&s->sched.events[which], t->stats.events - done->events);
        atomic_fetch_add(&s->sched.lost[which], t->stats.lost - done->lost);
        atomic_fetch_add(&s->sched.recorded[which], t->stats.recorded - done->recorded);
        atomic_fetch_add(&s->sched.exits[which], t->stats.exits - done->exits);
        *done = t->stats;
}

static void stop_tracker(Service *s, SchedTargetState *st, SchedProfile which) {
        report(s, st, which);
        st->tracker[which] = sched_tracker_stop(st->tracker[which]);
        st->reported[which] = (SchedStats) {};
        atomic_store(&st->records[which], 0);
        atomic_store(&st->tracking[which], false);
}

/* [worker] The threads TARGET has as the threadcreate tracker starts: one snapshot that
 * stops each (their TLS pointers say where glibc keeps a start routine). */
static void add_existing_threads(Service *s, Target *target, SchedTracker *t) {
        ThreadDump dump = {};
        pid_t tracer = 0;
        int r = target_thread_dump(s->targets, target, SNAPSHOT_STOP_ALL, DUMP_WAITS_NONE, &dump, NULL, &tracer);
        if (r < 0) {
                log_warning_errno(r, "Threads pid %d had before tracking thread creation are not counted: %m",
                                  (int) target->pid);
                return;
        }
        sched_tracker_add_existing(t, &dump);
        thread_dump_done(&dump);
}

/* [worker] TARGET's tracker of WHICH, started now if it has none (with the maps of DM,
 * read once for the start and the drain after it). NULL with ERR set when it cannot be. */
static SchedTracker *tracker(Service *s, Target *target, SchedProfile which, DrainMaps *dm, char *err,
                             size_t errlen) {
        SchedTargetState *st = &target->sched;
        if (st->tracker[which])
                return st->tracker[which];
        int r = sched_tracker_start(target->pid, which, &s->sched.options, target->as, drain_maps_get(dm),
                                    &st->tracker[which], err, errlen);
        if (r < 0) {
                if (r != -ESRCH)
                        log_warning("Tracking %s events of pid %d: %s", profile_names[which], (int) target->pid, err);
                return NULL;
        }
        log_info("Tracking %s events of pid %d.", profile_names[which], (int) target->pid);
        if (which == SCHED_THREADCREATE)
                add_existing_threads(s, target, st->tracker[which]);
        atomic_store(&st->tracking[which], true);
        return st->tracker[which];
}

static void drain_one(Service *s, Target *target, SchedProfile which, DrainMaps *dm) {
        SchedTargetState *st = &target->sched;
        SchedTracker *t = st->tracker[which];
        sched_tracker_drain(t, dm);
        atomic_store(&st->records[which],
                     (long) (which == SCHED_THREADCREATE ? t->creations.sites.n : t->contention.sites.n));
        report(s, st, which);
}

/* "# " lines: since when, what is counted and how it is sampled. */
static void tracking_note(const Service *s, const SchedTracker *t, Buf *out) {
        char when[32];
        format_utc_time(t->started_realtime_ns, when);
        uint64_t age = (now_monotonic_ns() - t->started_ns) / NSEC_PER_SEC;
        if (t->which == SCHED_BLOCK) {
                buf_printf(out, "# tracking since %s (%" PRIu64 " s): waits on mutexes, rwlocks, condition "
                           "variables, semaphores, barriers, joins and futexes, by the waiting stack; not "
                           "sleeps or I/O\n", when, age);
                buf_printf(out, "# sampling: every wait of %" PRIu64 " ns or more, shorter ones in proportion "
                           "(values are estimates)\n", s->sched.options.block_rate_ns);
        } else if (t->which == SCHED_THREADCREATE) {
                buf_printf(out, "# tracking since %s (%" PRIu64 " s): threads created since, by the stack "
                           "that created them; those there before under [created before tracking]; %" PRIu64
                           " threads exited since\n", when, age, t->stats.exits);
        } else {
                buf_printf(out, "# tracking since %s (%" PRIu64 " s): wake-ups of threads waiting on a lock, "
                           "by the stack that released it, with the time the woken thread had waited\n", when,
                           age);
                buf_printf(out, "# sampling: one event in %u\n", MAX(s->sched.options.mutex_fraction, 1u));
        }
        buf_printf(out, "# events: %" PRIu64 " read, %" PRIu64 " recorded, %" PRIu64 " lost (ring buffer full)\n",
                   t->stats.events, t->stats.recorded, t->stats.lost);
}

/* [worker] The profile now, tracking started if need be. */
static void collect(Service *s, Target *target, const Collection *c, Reply *reply, Profile **ret) {
        SchedProfile which = c->info->variant;
        SchedTargetState *st = &target->sched;
        char err[768] = "";

        *ret = NULL;
        if (target_check_exited(target)) {
                reply_error(reply, 410, "target pid %d has exited", (int) target->pid);
                return;
        }
        atomic_store(&st->last_request_ns[which], now_monotonic_ns());
        DrainMaps dm = { .pid = target->pid, .as = target->as };
        SchedTracker *t = tracker(s, target, which, &dm, err, sizeof err);
        if (!t) {
                drain_maps_done(&dm);
                reply_error(reply, strstr(err, "has exited") ? 410 : 503, "cannot track %s events of pid %d: %s",
                            profile_names[which], (int) target->pid, err);
                return;
        }
        drain_one(s, target, which, &dm);
        sched_tracker_flush(t);
        const Maps *maps = drain_maps_get(&dm);

        Buf note = {};
        tracking_note(s, t, &note);
        if (c->debug > 0) {
                if (which == SCHED_THREADCREATE)
                        creations_write_text(&t->creations, note.data, &reply->body);
                else
                        contention_write_text(&t->contention, which == SCHED_BLOCK ? "contention" : "mutex",
                                              note.data, &reply->body);
                buf_done(&note);
                drain_maps_done(&dm);
                return;
        }
        _cleanup_(profile_freep) Profile *p = NULL;
        int r = profile_new(NULL, &p);
        if (r == 0) {
                p->time_nanos = (int64_t) now_realtime_ns();    /* a delta's duration comes from it */
                r = maps ? profile_add_target_mappings(p, maps, target->as, target->exe) : 0;
        }
        if (r == 0)
                r = which == SCHED_THREADCREATE ? creations_add_to_profile(&t->creations, p)
                                                : contention_add_to_profile(&t->contention, p);
        if (r == 0)
                r = profile_add_comment_lines(p, note.data);
        buf_done(&note);
        drain_maps_done(&dm);
        if (r < 0) {
                reply_error(reply, 500, "cannot build the %s profile of pid %d: %s", profile_names[which],
                            (int) target->pid, strerror(-r));
                return;
        }
        *ret = TAKE_PTR(p);
}

/* [worker] */
static void drain_target(Service *s, Target *target) {
        SchedTargetState *st = &target->sched;
        uint64_t now = now_monotonic_ns();
        DrainMaps dm = { .pid = target->pid, .as = target->as };
        for (SchedProfile which = 0; which < SCHED_PROFILES; which++) {
                if (st->tracker[which] && target_check_exited(target)) {
                        stop_tracker(s, st, which);
                        continue;
                }
                if (st->tracker[which] && !at_attach(s, which) && st->timelines[which] == 0 &&
                    now - atomic_load(&st->last_request_ns[which]) > SCHED_IDLE_NS) {
                        log_info("No %s request for pid %d in %llu s: its events are closed.", profile_names[which],
                                 (int) target->pid, (unsigned long long) (SCHED_IDLE_NS / NSEC_PER_SEC));
                        stop_tracker(s, st, which);
                        continue;
                }
                if (st->tracker[which]) {
                        drain_one(s, target, which, &dm);
                        continue;
                }
                if (!at_attach(s, which) || target_check_exited(target) || now < st->retry_ns[which])
                        continue;
                char err[768];
                if (!tracker(s, target, which, &dm, err, sizeof err))
                        st->retry_ns[which] = now + RETRY_NS;
        }
        drain_maps_done(&dm);
}

/* [loop] */
static bool wants_drain(Service *s, Target *t) {
        for (SchedProfile which = 0; which < SCHED_PROFILES; which++)
                if (atomic_load(&t->sched.tracking[which]) || (at_attach(s, which) && !target_check_exited(t)))
                        return true;
        return false;
}

static int start(Service *s) {
        s->sched.drain = (PeriodicDrain) { .service = s, .every_ms = SCHED_DRAIN_MS, .wants = wants_drain,
                                           .drain = drain_target };
        return periodic_drain_start(&s->sched.drain);
}

static void shutdown(Service *s) {
        periodic_drain_stop(&s->sched.drain);
}

static long count(Service *s, Target *t, const ProfileInfo *info) {
        return atomic_load(&t->sched.records[info->variant]);
}

static void write_metrics(Service *s, Buf *out) {
        static const struct {
                const char *name, *help;
                size_t field;
        } counters[] = {
                { "cprofd_sched_events_total", "Scheduler events read (samples and switch records).",
                  offsetof(SchedService, events) },
                { "cprofd_sched_events_lost_total", "Scheduler events the kernel dropped (ring buffer full).",
                  offsetof(SchedService, lost) },
                { "cprofd_sched_recorded_total", "Waits (block), lock wake-ups (mutex) and thread creations "
                  "(threadcreate) recorded.", offsetof(SchedService, recorded) },
                { "cprofd_sched_thread_exits_total", "Threads of tracked targets that exited.",
                  offsetof(SchedService, exits) },
        };
        for (size_t c = 0; c < ARRAY_SIZE(counters); c++) {
                const atomic_uint_least64_t *v = (const atomic_uint_least64_t *) ((const char *) &s->sched +
                                                                                  counters[c].field);
                buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help,
                           counters[c].name);
                for (SchedProfile which = 0; which < SCHED_PROFILES; which++)
                        buf_printf(out, "%s{profile=\"%s\"} %llu\n", counters[c].name, profile_names[which],
                                   (unsigned long long) atomic_load(&v[which]));
        }
}

SchedTracker *sched_source_acquire(Service *s, Target *target, SchedProfile which, char *err, size_t errlen) {
        DrainMaps dm = { .pid = target->pid, .as = target->as };
        SchedTracker *t = tracker(s, target, which, &dm, err, errlen);
        drain_maps_done(&dm);
        if (t)
                target->sched.timelines[which]++;
        return t;
}

void sched_source_drain(Service *s, Target *target, SchedProfile which) {
        if (!target->sched.tracker[which])
                return;
        DrainMaps dm = { .pid = target->pid, .as = target->as };
        drain_one(s, target, which, &dm);
        drain_maps_done(&dm);
}

void sched_source_release(Service *s, Target *target, SchedProfile which) {
        SchedTargetState *st = &target->sched;
        if (st->timelines[which] == 0 || --st->timelines[which] > 0 || !st->tracker[which])
                return;
        /* Opened for the timeline alone: no profile asked for it, none began at attach. */
        if (!at_attach(s, which) && atomic_load(&st->last_request_ns[which]) == 0)
                stop_tracker(s, st, which);
}

void sched_target_done(SchedTargetState *st) {
        for (SchedProfile which = 0; which < SCHED_PROFILES; which++)
                st->tracker[which] = sched_tracker_stop(st->tracker[which]);
}

const ProfileSource sched_source = {
        .name = "scheduler tracepoints",
        .start = start,
        .collect = collect,
        .count = count,
        .write_metrics = write_metrics,
        .shutdown = shutdown,
};
