/* sources/wall.c -- see wall.h.
 *
 * A loop timer ticks at the requested rate and queues one snapshot job at a time on the
 * worker; a tick that comes while the previous snapshot still runs is skipped and counted
 * (a slow target cannot pile up work), and the profile says how many. Each captured
 * thread adds one sample worth 1/hz seconds of wall time, labelled with its thread and
 * its state, so `pprof -tagfocus state=R` separates on-CPU from off-CPU time. */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pprof.h"
#include "profiles.h"
#include "service.h"
#include "snapshots.h"
#include "wall.h"

typedef struct WallRequest WallRequest;
struct WallRequest {
        WallRequest *prev, *next;       /* [loop] running requests */
        Service *service;
        Request *req;
        Target *target;
        unsigned hz;
        unsigned seconds;
        atomic_bool cancelled;
        bool ending;                    /* [loop] the end timer fired (or the client left) */
        bool busy;                      /* [loop] a job is queued or running */
        struct event *tick, *end;       /* [loop] */
        uint64_t ticks_skipped;         /* [loop] */

        Profile *profile;               /* [worker] */
        uint64_t start_ns, start_realtime_ns;
        uint64_t snapshots, samples;
        Reply reply;
        bool answered;
};

static WallRequest *running;

static void wall_unlink(WallRequest *w) {
        if (w->prev)
                w->prev->next = w->next;
        else if (running == w)
                running = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
}

static void wall_done(WallRequest *w) {
        wall_unlink(w);
        if (w->tick)
                event_free(w->tick);
        if (w->end)
                event_free(w->end);
        request_finish(w->req, &w->reply);
        buf_done(&w->reply.body);
        profile_free(w->profile);
        target_unref(w->target);
        free(w);
}

/* [worker] One snapshot: every thread becomes a sample. */
static void tick_job(void *userdata) {
        WallRequest *w = userdata;
        Service *s = w->service;
        ThreadDump dump = {};
        Maps maps = {};
        pid_t tracer = 0;

        if (atomic_load(&w->cancelled) || w->answered)
                return;
        int r = target_thread_dump(s->targets, w->target, SNAPSHOT_REUSE_UNCHANGED, DUMP_WAITS_NONE, &dump, &maps,
                                   &tracer);
        if (r < 0) {
                /* The first snapshot decides whether there is a profile at all; later, a
                 * target that exits simply ends the sampling with what we have. */
                if (!w->profile) {
                        reply_thread_dump_error(&w->reply, w->target->pid, r, tracer);
                        w->answered = true;
                }
                return;
        }
        if (!w->profile) {
                r = sampled_profile_new("wall", w->hz, &maps, w->target->as, w->target->exe, &w->profile);
                if (r < 0) {
                        reply_error(&w->reply, 500, "cannot build the profile: %s", strerror(-r));
                        w->answered = true;
                        goto finish;
                }
                w->start_realtime_ns = dump.time_ns;
                w->start_ns = now_monotonic_ns();
        }
        w->snapshots++;
        const int64_t values[] = { 1, (int64_t) (NSEC_PER_SEC / w->hz) };
        for (size_t i = 0; i < dump.n_threads; i++) {
                const ThreadRecord *t = &dump.threads[i];
                const ProfileLabelSpec labels[] = {
                        { .key = "thread_id", .num = t->tid },
                        { .key = "thread_name", .str = t->name ? t->name : "" },
                        { .key = "state", .str = t->state ? t->state : "" },
                        { .key = "ns_tid", .num = t->ns_tid },  /* last: left out when 0 */
                };
                size_t n_labels = ARRAY_SIZE(labels) - (t->ns_tid == 0);
                if (profile_add_stack(w->profile, &t->stack, values, labels, n_labels) == 0)
                        w->samples++;
        }
finish:
        maps_done(&maps);
        thread_dump_done(&dump);
}

/* [worker] Makes the reply from what was sampled. */
static void finish_job(void *userdata) {
        WallRequest *w = userdata;
        if (atomic_load(&w->cancelled) || w->answered)
                return;
        if (!w->profile) {
                reply_error(&w->reply, 503, "no snapshot of pid %d could be taken in time", (int) w->target->pid);
                w->answered = true;
                return;
        }
        Profile *p = w->profile;
        p->time_nanos = (int64_t) w->start_realtime_ns;
        p->duration_nanos = (int64_t) (now_monotonic_ns() - w->start_ns);
        char comment[200];
        snprintf(comment, sizeof comment, "cprofd: %llu snapshots at %u Hz, %llu ticks skipped (a snapshot took "
                 "longer than 1/hz)", (unsigned long long) w->snapshots, w->hz, (unsigned long long) w->ticks_skipped);
        (void) profile_add_comment(p, comment);
        int k = profile_encode(p, 0, &w->reply.body);
        if (k < 0) {
                buf_reset(&w->reply.body);
                reply_error(&w->reply, 500, "cannot encode the profile: %s", strerror(-k));
        } else
                w->reply.filename = "wall";
        w->answered = true;
}

static void job_done(void *userdata);

static void submit(WallRequest *w, void (*job)(void *)) {
        if (worker_submit(w->service->worker, job, job_done, w) == 0)
                w->busy = true;
        else if (job == finish_job) {
                reply_error(&w->reply, 503, "out of memory");
                wall_done(w);
        }
}

/* [loop] After any job: end when ending (a finish job ran, or must run now). */
static void job_done(void *userdata) {
        WallRequest *w = userdata;
        w->busy = false;
        if (atomic_load(&w->cancelled) || w->answered) {
                if (!w->ending)
                        evtimer_del(w->end);
                wall_done(w);
                return;
        }
        if (w->ending)
                submit(w, finish_job);
}

static void on_tick(evutil_socket_t fd, short events, void *userdata) {
        WallRequest *w = userdata;
        if (w->busy)
                w->ticks_skipped++;
        else
                submit(w, tick_job);
}

static void on_end(evutil_socket_t fd, short events, void *userdata) {
        WallRequest *w = userdata;
        w->ending = true;
        event_del(w->tick);
        if (!w->busy)
                submit(w, finish_job);
}

static void on_wall_cancel(void *userdata) {
        WallRequest *w = userdata;
        atomic_store(&w->cancelled, true);
        event_del(w->tick);
        if (!w->busy) {
                evtimer_del(w->end);
                wall_done(w);
        }
}

void wall_profile_start(Service *s, Request *req, const WindowProfileRequest *p) {
        Target *target;
        WallRequest *w = service_request_new(s, req, p->pid, sizeof *w, &target);
        if (!w)
                return;
        *w = (WallRequest) { .service = s, .req = req, .target = target_ref(target), .hz = p->hz,
                             .seconds = p->seconds };
        w->tick = event_new(s->base, -1, EV_PERSIST, on_tick, w);
        w->end = evtimer_new(s->base, on_end, w);
        struct timeval every = { .tv_sec = 0, .tv_usec = (long) (1000000 / p->hz) };
        if (p->hz == 1)
                every = (struct timeval) { .tv_sec = 1 };
        struct timeval duration = { .tv_sec = p->seconds };
        w->next = running;
        if (running)
                running->prev = w;
        running = w;
        if (!w->tick || !w->end || event_add(w->tick, &every) < 0 || evtimer_add(w->end, &duration) < 0) {
                reply_error(&w->reply, 503, "out of memory");
                wall_done(w);
                return;
        }
        request_set_cancel_callback(req, on_wall_cancel, w);
        submit(w, tick_job);            /* the first snapshot right away */
}

void wall_profiles_shutdown(Service *s) {
        while (running) {
                WallRequest *w = running;
                buf_reset(&w->reply.body);
                reply_error(&w->reply, 503, "cprofd is shutting down");
                wall_done(w);
        }
}
