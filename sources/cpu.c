/* sources/cpu.c -- see cpu.h.
 *
 * Ownership and threads: a CpuSampler and a CpuRequest are created and freed on the loop;
 * everything marked [worker] is touched only by jobs on the worker thread (the perf
 * sampler, the subscriber list, the profiles), so no lock is needed. A request lives
 * through attach_job → (end timer) → finish_job; a sampler lives while requests use it
 * and no drain job is queued for it. The perf events are closed as soon as the last
 * request's profile is done, so the target pays for sampling only while someone asks. */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hashmap.h"
#include "kallsyms.h"
#include "log.h"
#include "perf.h"
#include "pprof.h"
#include "profiles.h"
#include "service.h"

#define DRAIN_INTERVAL_MS 100
#define REFRESH_EVERY_DRAINS 10         /* look for threads the events missed, every second */
#define CPU_STACK_FRAMES_MAX 2048       /* kernel + user frames of one sample */
#define KERNEL_SPACE_START UINT64_C(0xffff800000000000)        /* x86-64, 4- and 5-level */

typedef struct CpuRequest CpuRequest;

struct CpuSampler {
        CpuSampler *next;               /* [loop] in service->cpu.samplers */
        Service *service;
        Target *target;
        unsigned hz;
        CpuProfileMode mode;
        unsigned users;                 /* [loop] requests using it */
        bool draining;                  /* [loop] a drain job is queued */
        struct event *drain_timer;      /* [loop] */

        PerfSampler *perf;              /* [worker] open while it has subscribers */
        CpuRequest *subscribers;        /* [worker] */
        unsigned drains;                /* [worker] */
        bool monotonic;                 /* [worker] sample times are CLOCK_MONOTONIC */
        U64Map names;                   /* [worker] tid → thread name, when perf has none */
        int other_pid_namespace;        /* [worker] the target is in a container's: 1, 0;
                                           -1 not known yet */
        U64Map ns_tids;                 /* [worker] tid → its id there + 1 (1: none) */
        StackFrame *frames;             /* [worker] scratch: one sample's stack */
};

struct CpuRequest {
        CpuRequest *next;               /* [worker] in sampler->subscribers */
        CpuRequest *prev_pending, *next_pending;        /* [loop] while the end timer runs */
        CpuSampler *sampler;
        Request *req;
        unsigned seconds;
        atomic_bool cancelled;
        struct event *end_timer;        /* [loop] */

        Profile *profile;               /* [worker] */
        uint64_t start_ns;              /* [worker] monotonic: earlier samples are not ours */
        uint64_t start_realtime_ns;
        uint64_t samples, truncated;
        PerfSamplerStats stats_at_start;
        Reply reply;
        char error[640];
        bool answered;                  /* the reply is made (an error, or the profile) */
};

static CpuRequest *pending_cpu;         /* [loop] requests whose end timer runs */

/* ---- [loop] lifetimes ---- */

static void sampler_free(CpuSampler *sp) {
        target_unref(sp->target);
        if (sp->drain_timer)
                event_free(sp->drain_timer);
        u64map_done(&sp->names, free);
        u64map_done(&sp->ns_tids, NULL);
        free(sp->frames);
        free(sp);
}

static void sampler_release(CpuSampler *sp) {
        Service *s = sp->service;
        if (--sp->users > 0)
                return;
        for (CpuSampler **p = &s->cpu.samplers; *p; p = &(*p)->next)
                if (*p == sp) {
                        *p = sp->next;
                        break;
                }
        if (sp->drain_timer)
                evtimer_del(sp->drain_timer);
        if (!sp->draining)              /* else drained() frees it */
                sampler_free(sp);
}

static void request_done(CpuRequest *r) {
        request_finish(r->req, &r->reply);
        buf_done(&r->reply.body);
        if (r->end_timer)
                event_free(r->end_timer);
        CpuSampler *sp = r->sampler;
        free(r);
        sampler_release(sp);
}

/* ---- [worker] sampling ---- */

static const char *thread_name(CpuSampler *sp, pid_t tid) {
        const char *name = perf_sampler_thread_name(sp->perf, tid);
        if (name)
                return name;
        name = u64map_get(&sp->names, (uint64_t) tid);
        if (name)
                return name;
        /* Once the target has exited its pid, and its thread ids, may be another
         * process's: a name read now would be a stranger's. */
        ThreadInfo info;
        bool known = !target_check_exited(sp->target) && procfs_read_thread(sp->target->pid, tid, &info) == 0;
        char *copy = strdup(known ? info.name : "");
        if (!copy)
                return "";
        u64map_put(&sp->names, (uint64_t) tid, copy);
        return copy;
}

/* TID's id in the target's pid namespace when that is a container's, else 0; read once
 * per thread. */
static pid_t ns_tid(CpuSampler *sp, pid_t tid) {
        if (sp->other_pid_namespace < 0)
                sp->other_pid_namespace = procfs_same_namespace(sp->target->pid, "pid") == 0;
        if (!sp->other_pid_namespace || tid <= 0)
                return 0;
        uintptr_t known = (uintptr_t) u64map_get(&sp->ns_tids, (uint64_t) tid);
        if (known)
                return (pid_t) (known - 1);
        pid_t ns = 0;
        if (procfs_read_ns_tid(sp->target->pid, tid, &ns) < 0 || ns == tid)
                ns = 0;
        u64map_put(&sp->ns_tids, (uint64_t) tid, (void *) (uintptr_t) (ns + 1));
        return ns;
}

static int on_sample(const PerfSample *sample, void *userdata) {
        CpuSampler *sp = userdata;
        Service *s = sp->service;
        Stack user = {};
        size_t n = 0;

        /* Kernel frames first: [0] is the interrupted pc, the rest return addresses. */
        if (s->cpu.kallsyms)
                for (size_t i = 0; i < sample->n_kernel_frames && n < CPU_STACK_FRAMES_MAX; i++) {
                        StackFrame *f = &sp->frames[n++];
                        *f = (StackFrame) { .pc = sample->kernel_frames[i], .exact = i == 0 };
                        f->loc = kallsyms_resolve(s->cpu.kallsyms, stack_frame_lookup_pc(f));
                }

        StackEnd end = STACK_END_COMPLETE;
        if (sp->mode == CPU_PROFILE_FP) {
                for (size_t i = 0; i < sample->n_user_callchain && n < CPU_STACK_FRAMES_MAX; i++) {
                        StackFrame *f = &sp->frames[n++];
                        *f = (StackFrame) { .pc = sample->user_callchain[i], .exact = i == 0 };
                        f->loc = address_space_resolve(sp->target->as, stack_frame_lookup_pc(f));
                }
        } else if (sample->has_regs) {
                ThreadCapture c;
                if (perf_sample_as_capture(sample, &c) == 0 &&
                    address_space_unwind(sp->target->as, &c, &user) == 0) {
                        size_t k = MIN(user.n, (size_t) CPU_STACK_FRAMES_MAX - n);
                        memcpy(sp->frames + n, user.frames, k * sizeof *user.frames);
                        n += k;
                        end = k < user.n ? STACK_END_DEPTH : user.end;
                        free(user.frames);
                } else
                        end = STACK_END_ERROR;
        }
        Stack stack = { .frames = sp->frames, .n = n, .end = end };

        pid_t ns = ns_tid(sp, sample->tid);
        const ProfileLabelSpec labels[] = {
                { .key = "thread_id", .num = sample->tid },
                { .key = "thread_name", .str = thread_name(sp, sample->tid) },
                { .key = "ns_tid", .num = ns },         /* last: left out when 0 */
        };
        size_t n_labels = ARRAY_SIZE(labels) - (ns == 0);
        const int64_t values[] = { 1, (int64_t) (NSEC_PER_SEC / sp->hz) };
        for (CpuRequest *r = sp->subscribers; r; r = r->next) {
                if ((sp->monotonic && sample->time_ns < r->start_ns) || atomic_load(&r->cancelled))
                        continue;
                if (profile_add_stack(r->profile, &stack, values, labels, n_labels) == 0) {
                        r->samples++;
                        r->truncated += stack_is_truncated(&stack);
                }
        }
        return 0;
}

static void update_maps(CpuSampler *sp, Maps *ret_maps) {
        Maps maps;
        if (procfs_read_maps(sp->target->pid, &maps) < 0)
                return;
        (void) address_space_update(sp->target->as, &maps);
        if (ret_maps)
                *ret_maps = maps;
        else
                maps_done(&maps);
}

static void drain(CpuSampler *sp) {
        if (!sp->perf || !sp->subscribers)
                return;
        Service *s = sp->service;
        /* Not once the target has exited: its pid may name another process by now. */
        if (++sp->drains % REFRESH_EVERY_DRAINS == 0 && !target_check_exited(sp->target)) {
                (void) perf_sampler_refresh(sp->perf);
                update_maps(sp, NULL);  /* code loaded since: dlopen, JIT */
        }
        PerfSamplerStats before, after;
        perf_sampler_get_stats(sp->perf, &before);
        int r = perf_sampler_drain(sp->perf, on_sample, sp);
        if (r < 0)
                log_warning_errno(r, "Failed to read CPU samples of pid %d: %m", (int) sp->target->pid);
        perf_sampler_get_stats(sp->perf, &after);
        metrics_lock(s->metrics);
        s->metrics->cpu_samples_total += after.samples - before.samples;
        s->metrics->cpu_samples_lost_total += after.lost_samples + after.lost - before.lost_samples - before.lost;
        metrics_unlock(s->metrics);
}

/* Loads what the first samples need, so the first drain does not spend its time in libdw
 * while the ring buffers fill: every module's debug info and the kernel's symbols. */
static void warm_up(CpuSampler *sp, const Maps *maps) {
        Service *s = sp->service;
        address_space_warm_up(sp->target->as, maps);
        if (!s->cpu.kallsyms && !s->cpu.kallsyms_failed) {
                int r = kallsyms_load(NULL, &s->cpu.kallsyms);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read kernel symbols, kernel frames are left out: %m");
                        s->cpu.kallsyms_failed = true;
                } else if (kallsyms_hidden(s->cpu.kallsyms))
                        log_warning("Kernel symbols are hidden (kernel.kptr_restrict, CAP_SYSLOG): kernel frames "
                                    "show as addresses.");
        }
}

static int new_profile(CpuRequest *r, const Maps *maps) {
        CpuSampler *sp = r->sampler;
        int k = sampled_profile_new("cpu", sp->hz, maps, sp->target->as, sp->target->exe, &r->profile);
        /* One mapping for the kernel half of the address space, as perf's [kernel.kallsyms]:
         * pprof then groups kernel frames apart and keeps our names for them. Loadable
         * modules fall in it too; their frames name the module ("[ext4]"). */
        if (k == 0 && sp->service->cpu.kallsyms)
                k = profile_add_mapping(r->profile, &(ProfileMappingInfo) {
                                                .start = KERNEL_SPACE_START,
                                                .limit = UINT64_MAX,
                                                .path = KALLSYMS_MODULE_KERNEL,
                                                .symbolized = !kallsyms_hidden(sp->service->cpu.kallsyms),
                                        }, NULL);
        return k;
}

/* [worker] Opens the sampler if it is not open yet and subscribes R. */
static void attach_job(void *userdata) {
        CpuRequest *r = userdata;
        CpuSampler *sp = r->sampler;
        Maps maps = {};
        int k;

        if (atomic_load(&r->cancelled))
                return;
        update_maps(sp, &maps);
        if (!sp->frames && !(sp->frames = calloc(CPU_STACK_FRAMES_MAX, sizeof *sp->frames))) {
                snprintf(r->error, sizeof r->error, "out of memory");
                goto fail;
        }
        if (!sp->perf) {
                warm_up(sp, &maps);
                PerfSamplerOptions opts = { .frequency_hz = sp->hz, .stack_bytes = sp->service->cpu.stack_bytes };
                k = perf_sampler_new(sp->target->pid, &opts, &sp->perf);
                if (k == -ESRCH) {
                        snprintf(r->error, sizeof r->error, "target pid %d has exited", (int) sp->target->pid);
                        goto fail;
                }
                if (k < 0) {
                        char why[512];
                        snprintf(r->error, sizeof r->error, "cannot sample pid %d: %s", (int) sp->target->pid,
                                 perf_sampler_explain_error(k, why, sizeof why));
                        log_warning("%s", r->error);
                        goto fail;
                }
        }
        k = new_profile(r, &maps);
        if (k < 0) {
                snprintf(r->error, sizeof r->error, "cannot build the profile: %s", strerror(-k));
                goto fail;
        }
        r->start_ns = now_monotonic_ns();
        r->start_realtime_ns = now_realtime_ns();
        perf_sampler_get_stats(sp->perf, &r->stats_at_start);
        sp->monotonic = r->stats_at_start.monotonic_time;
        r->next = sp->subscribers;
        sp->subscribers = r;
        maps_done(&maps);
        return;
fail:
        r->answered = true;
        maps_done(&maps);
}

/* [worker] Takes in the samples up to now, unsubscribes R, and makes its reply. */
static void finish_job(void *userdata) {
        CpuRequest *r = userdata;
        CpuSampler *sp = r->sampler;

        if (!atomic_load(&r->cancelled))
                drain(sp);
        for (CpuRequest **p = &sp->subscribers; *p; p = &(*p)->next)
                if (*p == r) {
                        *p = r->next;
                        break;
                }

        if (!atomic_load(&r->cancelled) && r->profile) {
                PerfSamplerStats now;
                perf_sampler_get_stats(sp->perf, &now);
                uint64_t lost = now.lost_samples + now.lost - r->stats_at_start.lost_samples - r->stats_at_start.lost;
                Profile *p = r->profile;
                p->time_nanos = (int64_t) r->start_realtime_ns;
                p->duration_nanos = (int64_t) (now_monotonic_ns() - r->start_ns);
                char comment[160];
                if (lost > 0) {
                        snprintf(comment, sizeof comment, "cprofd: %llu samples lost (ring buffer full)",
                                 (unsigned long long) lost);
                        (void) profile_add_comment(p, comment);
                }
                if (now.kernel_excluded)
                        (void) profile_add_comment(p, "cprofd: kernel samples and frames not permitted "
                                                      "(perf_event_paranoid); user time only");
                snprintf(comment, sizeof comment, "cprofd: %llu samples at %u Hz, %llu truncated stacks, mode %s",
                         (unsigned long long) r->samples, sp->hz, (unsigned long long) r->truncated,
                         sp->mode == CPU_PROFILE_FP ? "fp" : "dwarf");
                (void) profile_add_comment(p, comment);
                int k = profile_encode(p, 0, &r->reply.body);
                if (k < 0) {
                        buf_reset(&r->reply.body);
                        reply_error(&r->reply, 500, "cannot encode the profile: %s", strerror(-k));
                } else
                        r->reply.filename = "profile";
        }
        r->answered = true;
        r->profile = profile_free(r->profile);
        if (!sp->subscribers)
                sp->perf = perf_sampler_free(sp->perf);
}

static void drain_job(void *userdata) {
        drain(userdata);
}

/* ---- [loop] timers and callbacks ---- */

static void pending_unlink(CpuRequest *r) {
        if (r->prev_pending)
                r->prev_pending->next_pending = r->next_pending;
        else if (pending_cpu == r)
                pending_cpu = r->next_pending;
        if (r->next_pending)
                r->next_pending->prev_pending = r->prev_pending;
        r->prev_pending = r->next_pending = NULL;
}

static void finished(void *userdata) {
        request_done(userdata);
}

static void end_request(CpuRequest *r) {
        /* Without the worker (shutting down) the request stays pending, and
         * cpu_profiles_shutdown() answers it. */
        if (worker_submit(r->sampler->service->worker, finish_job, finished, r) == 0)
                pending_unlink(r);
}

static void on_end_timer(evutil_socket_t fd, short events, void *userdata) {
        end_request(userdata);
}

static void drained(void *userdata) {
        CpuSampler *sp = userdata;
        sp->draining = false;
        if (sp->users == 0)
                sampler_free(sp);
}

static void on_drain_timer(evutil_socket_t fd, short events, void *userdata) {
        CpuSampler *sp = userdata;
        if (!sp->draining && worker_submit(sp->service->worker, drain_job, drained, sp) == 0)
                sp->draining = true;
}

static void on_cpu_cancel(void *userdata) {
        CpuRequest *r = userdata;
        atomic_store(&r->cancelled, true);
        if (r->end_timer && evtimer_pending(r->end_timer, NULL)) {
                evtimer_del(r->end_timer);
                end_request(r);
        }
}

static void attached(void *userdata) {
        CpuRequest *r = userdata;
        CpuSampler *sp = r->sampler;
        Service *s = sp->service;

        if (r->answered) {
                if (r->error[0])
                        reply_error(&r->reply, strstr(r->error, "has exited") ? 410 : 503, "%s", r->error);
                request_done(r);
                return;
        }
        /* Pending from here until finish_job is queued: shutdown finds it on this list. */
        r->next_pending = pending_cpu;
        if (pending_cpu)
                pending_cpu->prev_pending = r;
        pending_cpu = r;
        if (atomic_load(&r->cancelled)) {
                end_request(r);
                return;
        }
        struct timeval tv = { .tv_sec = r->seconds };
        r->end_timer = evtimer_new(s->base, on_end_timer, r);
        if (!sp->drain_timer)
                sp->drain_timer = event_new(s->base, -1, EV_PERSIST, on_drain_timer, sp);
        struct timeval every = { 0, DRAIN_INTERVAL_MS * 1000 };
        if (!r->end_timer || !sp->drain_timer || evtimer_add(r->end_timer, &tv) < 0 ||
            (!evtimer_pending(sp->drain_timer, NULL) && event_add(sp->drain_timer, &every) < 0)) {
                atomic_store(&r->cancelled, true);
                reply_error(&r->reply, 503, "out of memory");
                end_request(r);
        }
}

static void cpu_profile_start(Service *s, Request *req, const WindowProfileRequest *p) {
        Reply reply = {};
        Target *target = targets_find(s->targets, p->pid);
        if (!target) {
                reply_error(&reply, 404, "unknown target pid %d", (int) p->pid);
                request_finish(req, &reply);
                return;
        }
        CpuSampler *sp = s->cpu.samplers;
        while (sp && !(sp->target == target && sp->hz == p->hz && sp->mode == p->mode))
                sp = sp->next;
        if (!sp) {
                sp = calloc(1, sizeof *sp);
                if (!sp) {
                        reply_error(&reply, 503, "out of memory");
                        request_finish(req, &reply);
                        return;
                }
                *sp = (CpuSampler) { .service = s, .target = target_ref(target), .hz = p->hz, .mode = p->mode,
                                     .other_pid_namespace = -1 };
                sp->next = s->cpu.samplers;
                s->cpu.samplers = sp;
        }
        sp->users++;
        CpuRequest *r = calloc(1, sizeof *r);
        if (!r) {
                reply_error(&reply, 503, "out of memory");
                request_finish(req, &reply);
                sampler_release(sp);
                return;
        }
        r->sampler = sp;
        r->req = req;
        r->seconds = p->seconds;
        request_set_cancel_callback(req, on_cpu_cancel, r);
        if (worker_submit(s->worker, attach_job, attached, r) < 0) {
                request_set_cancel_callback(req, NULL, NULL);
                reply_error(&r->reply, 503, "out of memory");
                request_done(r);
        }
}

static void cpu_profiles_shutdown(Service *s) {
        /* The worker is gone: its [worker] state is ours now. */
        while (pending_cpu) {
                CpuRequest *r = pending_cpu;
                pending_unlink(r);
                if (r->end_timer)
                        evtimer_del(r->end_timer);
                for (CpuRequest **p = &r->sampler->subscribers; *p; p = &(*p)->next)
                        if (*p == r) {
                                *p = r->next;
                                break;
                        }
                if (!r->sampler->subscribers)
                        r->sampler->perf = perf_sampler_free(r->sampler->perf);
                r->profile = profile_free(r->profile);
                reply_error(&r->reply, 503, "cprofd is shutting down");
                request_done(r);
        }
        s->cpu.kallsyms = kallsyms_free(s->cpu.kallsyms);
}

const ProfileSource cpu_source = {
        .name = "perf samples (cpu-clock)",
        .start_window = cpu_profile_start,
        .shutdown = cpu_profiles_shutdown,
};
