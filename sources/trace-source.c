/* sources/trace-source.c -- see trace-source.h.
 *
 * A request lives through attach_job (worker: the trackers acquired, the observer set)
 * → the end timer (loop) → finish_job (worker: a last drain, the observer gone, the
 * trackers released, the file written) → finished (loop: answered, freed). Trace events
 * come in between, from the scheduler source's periodic drain, on the worker. */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "perf.h"
#include "pprof.h"
#include "service.h"
#include "trace-source.h"
#include "trace.h"

typedef struct TraceRequest TraceRequest;

struct TraceRequest {
        TraceRequest *prev, *next;      /* [loop] the requests running */
        Service *service;
        Request *req;
        Target *target;
        unsigned seconds;
        unsigned hz;                    /* CPU samples per second of each thread's CPU time */
        bool gzip;
        atomic_bool cancelled;
        struct event *end_timer;        /* [loop] */

        TraceBuilder builder;           /* [worker] */
        SchedObserver observer;
        bool acquired[SCHED_PROFILES];  /* [worker] */
        PerfSampler *cpu;               /* [worker] the CPU samples, NULL without */
        Reply reply;
        bool answered;                  /* the reply is made (an error) */
};

static TraceRequest *running;           /* [loop] */

/* ---- [worker] the events ---- */

static void on_switch(void *userdata, pid_t tid, uint64_t time_ns, int cpu, bool in, bool preempted) {
        TraceRequest *r = userdata;
        trace_switch(&r->builder, tid, time_ns, cpu, in, preempted);
}

static void on_sleep(void *userdata, pid_t tid, uint64_t time_ns, const Stack *stack, const uint64_t args[6]) {
        TraceRequest *r = userdata;
        trace_sleep(&r->builder, tid, time_ns, stack, args);
}

static void on_wake(void *userdata, pid_t waker, pid_t wakee, uint64_t time_ns) {
        TraceRequest *r = userdata;
        trace_wake(&r->builder, waker, wakee, time_ns);
}

static void on_create(void *userdata, pid_t creator, pid_t tid, uint64_t time_ns) {
        TraceRequest *r = userdata;
        trace_create(&r->builder, creator, tid, time_ns);
}

static void on_exit_event(void *userdata, pid_t tid, uint64_t time_ns) {
        TraceRequest *r = userdata;
        trace_exit(&r->builder, tid, time_ns);
}

static int on_cpu_sample(const PerfSample *sample, void *userdata) {
        TraceRequest *r = userdata;
        ThreadCapture c;
        Stack stack = {};
        if (perf_sample_as_capture(sample, &c) < 0 || address_space_unwind(r->target->as, &c, &stack) < 0)
                return 0;
        trace_cpu_sample(&r->builder, sample->tid, sample->time_ns, &stack);
        free(stack.frames);
        return 0;
}

static void on_drained(void *userdata) {
        TraceRequest *r = userdata;
        if (r->cpu)
                (void) perf_sampler_drain(r->cpu, on_cpu_sample, r);
}

static void detach(TraceRequest *r) {
        Service *s = r->service;
        for (SchedProfile which = 0; which < SCHED_PROFILES; which++) {
                if (!r->acquired[which])
                        continue;
                SchedTracker *t = r->target->sched.tracker[which];
                if (t && t->observer == &r->observer)
                        t->observer = NULL;
                sched_source_release(s, r->target, which);
                r->acquired[which] = false;
        }
}

static void attach_job(void *userdata) {
        TraceRequest *r = userdata;
        Service *s = r->service;
        char err[768];

        if (atomic_load(&r->cancelled))
                return;
        if (target_check_exited(r->target)) {
                reply_error(&r->reply, 410, "target pid %d has exited", (int) r->target->pid);
                r->answered = true;
                return;
        }
        r->observer = (SchedObserver) { .userdata = r, .on_switch = on_switch, .on_sleep = on_sleep,
                                        .on_wake = on_wake, .on_create = on_create, .on_exit = on_exit_event,
                                        .on_drained = on_drained };
        /* Switches and sleeps are the timeline; wake-ups and creations add to it. */
        static const SchedProfile sources[] = { SCHED_BLOCK, SCHED_MUTEX, SCHED_THREADCREATE };
        for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
                SchedProfile which = sources[i];
                SchedTracker *t = sched_source_acquire(s, r->target, which, err, sizeof err);
                if (t && t->observer) {
                        snprintf(err, sizeof err, "a trace of pid %d is already being recorded", (int) r->target->pid);
                        sched_source_release(s, r->target, which);
                        t = NULL;
                }
                if (!t && which == SCHED_BLOCK) {
                        reply_error(&r->reply, strstr(err, "has exited") ? 410 : 503, "cannot trace pid %d: %s",
                                    (int) r->target->pid, err);
                        r->answered = true;
                        detach(r);
                        return;
                }
                if (!t)
                        continue;
                r->acquired[which] = true;
                t->observer = &r->observer;
        }
        trace_builder_init(&r->builder, r->target->pid, now_monotonic_ns(),
                           s->trace_events_max ? s->trace_events_max : TRACE_EVENTS_MAX);
        /* The running slices' stacks: without them the timeline is still whole. */
        PerfSamplerOptions cpu = { .frequency_hz = r->hz, .exclude_kernel_callchain = true };
        int k = perf_sampler_new(r->target->pid, &cpu, &r->cpu);
        if (k < 0) {
                char why[512];
                log_info("Trace of pid %d without CPU samples: %s", (int) r->target->pid,
                         perf_sampler_explain_error(k, why, sizeof why));
                r->cpu = NULL;
        }
        /* Every thread has a track, the ones that stay asleep too. */
        pid_t *tids;
        size_t n;
        if (procfs_list_threads(r->target->pid, &tids, &n) == 0) {
                for (size_t i = 0; i < n; i++) {
                        ThreadInfo info;
                        if (procfs_read_thread(r->target->pid, tids[i], &info) == 0)
                                trace_thread(&r->builder, tids[i], info.state == 'R');
                }
                free(tids);
        }
}

static const char *thread_name(void *userdata, pid_t tid) {
        static __thread char name[THREAD_NAME_MAX];
        TraceRequest *r = userdata;
        ThreadInfo info;
        if (procfs_read_thread(r->target->pid, tid, &info) < 0)
                return NULL;
        snprintf(name, sizeof name, "%s", info.name);
        return name;
}

static void finish_job(void *userdata) {
        TraceRequest *r = userdata;
        Service *s = r->service;

        if (r->answered)
                return;
        /* The events up to now, then no more. */
        for (SchedProfile which = 0; which < SCHED_PROFILES; which++)
                if (r->acquired[which])
                        sched_source_drain(s, r->target, which);
        detach(r);
        r->cpu = perf_sampler_free(r->cpu);
        if (atomic_load(&r->cancelled)) {
                trace_builder_done(&r->builder);
                return;
        }
        char comm[THREAD_NAME_MAX] = "";
        snprintf(comm, sizeof comm, "%s", r->target->comm);
        (void) procfs_read_comm(r->target->pid, comm);
        Buf json = {};
        trace_builder_finish(&r->builder, now_monotonic_ns(), comm, thread_name, r, &json);
        r->reply.truncated = r->builder.truncated;
        trace_builder_done(&r->builder);
        r->reply.content_type = "application/json";
        r->reply.filename = "trace";
        if (r->gzip && gzip_append(json.data, json.len, &r->reply.body) == 0) {
                r->reply.gzip = true;
                buf_done(&json);
        } else {
                buf_done(&r->reply.body);
                r->reply.body = json;
        }
}

/* ---- [loop] ---- */

static void unlink_request(TraceRequest *r) {
        if (r->prev)
                r->prev->next = r->next;
        else if (running == r)
                running = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
}

static void request_done(TraceRequest *r) {
        unlink_request(r);
        request_finish(r->req, &r->reply);
        buf_done(&r->reply.body);
        if (r->end_timer)
                event_free(r->end_timer);
        target_unref(r->target);
        free(r);
}

static void finished(void *userdata) {
        request_done(userdata);
}

static void end_request(TraceRequest *r) {
        if (worker_submit(r->service->worker, finish_job, finished, r) < 0) {
                reply_error(&r->reply, 503, "out of memory");
                request_done(r);
        }
}

static void on_end(evutil_socket_t fd, short events, void *userdata) {
        end_request(userdata);
}

static void on_cancel(void *userdata) {
        TraceRequest *r = userdata;
        atomic_store(&r->cancelled, true);
        if (r->end_timer && evtimer_pending(r->end_timer, NULL)) {
                evtimer_del(r->end_timer);
                end_request(r);
        }
}

static void attached(void *userdata) {
        TraceRequest *r = userdata;
        if (r->answered || atomic_load(&r->cancelled)) {
                end_request(r);         /* finish_job lets go of what attach_job took */
                return;
        }
        struct timeval tv = { .tv_sec = r->seconds };
        r->end_timer = evtimer_new(r->service->base, on_end, r);
        if (!r->end_timer || evtimer_add(r->end_timer, &tv) < 0) {
                atomic_store(&r->cancelled, true);
                end_request(r);
        }
}

static void trace_start(Service *s, Request *req, const WindowProfileRequest *p) {
        Target *target;
        TraceRequest *r = service_request_new(s, req, p->pid, sizeof *r, &target);
        if (!r)
                return;
        *r = (TraceRequest) { .service = s, .req = req, .target = target_ref(target), .seconds = p->seconds,
                              .hz = p->hz, .gzip = p->accept_gzip };
        r->next = running;
        if (running)
                running->prev = r;
        running = r;
        request_set_cancel_callback(req, on_cancel, r);
        if (worker_submit(s->worker, attach_job, attached, r) < 0) {
                request_set_cancel_callback(req, NULL, NULL);
                reply_error(&r->reply, 503, "out of memory");
                request_done(r);
        }
}

static void trace_shutdown(Service *s) {
        /* The worker is gone: its [worker] state is ours now. */
        while (running) {
                TraceRequest *r = running;
                if (r->end_timer)
                        evtimer_del(r->end_timer);
                detach(r);
                r->cpu = perf_sampler_free(r->cpu);
                trace_builder_done(&r->builder);
                buf_reset(&r->reply.body);
                reply_error(&r->reply, 503, "cprofd is shutting down");
                request_done(r);
        }
}

const ProfileSource trace_source = {
        .name = "scheduler tracepoints (timeline)",
        .start_window = trace_start,
        .shutdown = trace_shutdown,
};
