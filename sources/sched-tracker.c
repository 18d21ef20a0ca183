/* sources/sched-tracker.c -- see sched-tracker.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hashmap.h"
#include "macro.h"
#include "perf.h"
#include "procfs.h"
#include "pthread-layout.h"
#include "target-memory.h"
#include "tracefs.h"
#include "waits.h"

#include "sched-tracker.h"

#define REFRESH_EVERY_DRAINS 20         /* new threads the events missed, maps: every ~1 s */
#define PRUNE_EVERY_DRAINS 200          /* waits of threads that exited: every ~10 s */
#define TASK_SLEEPING 3                 /* TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE */
#define NAME_WAIT_NS (100 * NSEC_PER_MSEC)      /* a new thread's time to name itself */
#define PENDING_CREATIONS_MAX 65536u
#define CLONE_ARGS_TLS 56               /* offsetof(struct clone_args, tls) */
#define PTHREAD_SEARCH_BYTES 2048       /* of a struct pthread, for its start routine */

/* A thread creation whose new thread may still set its name. */
typedef struct PendingCreation {
        uint64_t time_ns;
        pid_t tid;
        uint64_t pthread;               /* its struct pthread (the TLS clone gave it), or 0 */
        char comm[16 + 1];              /* its name when created (its creator's) */
        Stack stack;
} PendingCreation;

/* A block wait under way: the sleeping thread's registers and stack, copied from the
 * ring (which is given back to the kernel) until the wait ends. */
typedef struct PendingWait {
        uint64_t out_ns;                /* 0: no wait under way */
        struct user_regs_struct regs;
        uint64_t stack_start;
        size_t stack_len;
        bool stack_truncated;
        uint8_t stack[];                /* stack_bytes */
} PendingWait;

typedef struct SchedTrackerState {
        PerfSampler *perf;
        Tracepoint tp;
        const TracepointField *field;   /* block: prev_state; mutex: the woken pid */
        uint64_t rate_ns;
        unsigned fraction;
        uint32_t stack_bytes;
        uint64_t rng;
        unsigned drains;
        U64Map pending;                 /* block: tid → PendingWait */
        U64Map off_since;               /* mutex: tid → when it left its CPU (ns) */
        const TracepointField *comm;    /* threadcreate: the new task's comm */
        PendingCreation *creations;     /* threadcreate, oldest first */
        size_t n_creations, cap_creations;
        bool layout_known;              /* start_routine_offset holds for the target */
        size_t start_routine_offset;
} SchedTrackerState;

/* xorshift64*: fast, and good enough for deciding which events to keep. */
static double random_unit(SchedTrackerState *st) {
        st->rng ^= st->rng >> 12;
        st->rng ^= st->rng << 25;
        st->rng ^= st->rng >> 27;
        return (double) ((st->rng * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

static int unwind(SchedTracker *t, const struct user_regs_struct *regs, uint64_t stack_start, const uint8_t *stack,
                  size_t stack_len, bool truncated, Stack *ret) {
        ThreadCapture c = {
                .info = { .syscall = -1 },
                .regs = *regs,
                .stack_start = stack_start,
                .stack = (uint8_t *) (uintptr_t) stack,
                .stack_len = stack_len,
                .stack_truncated = truncated,
        };
        return address_space_unwind(t->as, &c, ret);
}

/* The sample's own registers and stack copy, unwound in place. */
static int unwind_sample(SchedTracker *t, const PerfSample *s, Stack *ret) {
        ThreadCapture c;
        int r = perf_sample_as_capture(s, &c);
        return r < 0 ? r : address_space_unwind(t->as, &c, ret);
}

static StackFrame leaf_frame(SchedTracker *t, uint64_t pc) {
        StackFrame f = { .pc = pc, .exact = true };
        f.loc = address_space_resolve(t->as, pc);
        return f;
}

/* ---- block ---- */

static void free_pending(void *p) {
        free(p);
}

static void block_went_to_sleep(SchedTracker *t, const PerfSample *s) {
        SchedTrackerState *st = t->state;
        uint64_t state;
        if (!s->has_regs || !tracepoint_field_value(st->field, s->raw, s->raw_size, &state) ||
            !(state & TASK_SLEEPING))
                return;
        /* A sleep or I/O is told apart by its leaf now, cheaply; the rest waits until the
         * delay says whether the event is kept. */
        StackFrame leaf = leaf_frame(t, s->regs.rip);
        if (!wait_leaf_may_be_futex_wait(&leaf)) {
                t->stats.unrelated++;
                return;
        }
        PendingWait *w = u64map_get(&st->pending, (uint64_t) s->tid);
        if (!w) {
                if (st->pending.n >= THREADS_MAX)
                        return;
                w = malloc(sizeof *w + st->stack_bytes);
                if (!w)
                        return;
                u64map_put(&st->pending, (uint64_t) s->tid, w);
        }
        size_t len = MIN(s->stack_len, (size_t) st->stack_bytes);
        w->out_ns = s->time_ns;
        w->regs = s->regs;
        w->stack_start = s->stack_start;
        w->stack_len = len;
        w->stack_truncated = s->stack_truncated || len < s->stack_len;
        memcpy(w->stack, s->stack, len);
}

static void block_woke_up(SchedTracker *t, const PerfSample *s) {
        SchedTrackerState *st = t->state;
        PendingWait *w = u64map_get(&st->pending, (uint64_t) s->tid);
        if (!w || w->out_ns == 0)
                return;
        uint64_t out = w->out_ns;
        w->out_ns = 0;
        if (s->time_ns <= out)
                return;
        uint64_t delay = s->time_ns - out;
        double weight = 1;
        if (st->rate_ns > 1 && delay < st->rate_ns) {
                if (random_unit(st) * (double) st->rate_ns >= (double) delay) {
                        t->stats.sampled_out++;
                        return;
                }
                weight = (double) st->rate_ns / (double) delay;
        }
        Stack stack = {};
        if (unwind(t, &w->regs, w->stack_start, w->stack, w->stack_len, w->stack_truncated, &stack) < 0)
                return;
        const uint64_t args[6] = { w->regs.rdi, w->regs.rsi, w->regs.rdx, w->regs.r10, w->regs.r8, w->regs.r9 };
        WaitSite site;
        if (!wait_site_classify_blocked(&stack, args, &site)) {
                free(stack.frames);
                t->stats.unrelated++;
                return;
        }
        if (contention_add(&t->contention, &stack, weight, delay) == 0)
                t->stats.recorded++;
}

/* ---- mutex ---- */

static bool releases_lock(WaitKind k) {
        return k == WAIT_KIND_MUTEX || k == WAIT_KIND_RWLOCK_WRITE || k == WAIT_KIND_RWLOCK_READ ||
               k == WAIT_KIND_LOCK;
}

static void mutex_waking(SchedTracker *t, const PerfSample *s) {
        SchedTrackerState *st = t->state;
        uint64_t wakee;
        if (!s->has_regs || !tracepoint_field_value(st->field, s->raw, s->raw_size, &wakee) || (pid_t) wakee <= 0)
                return;
        /* Only a thread of the target that was seen leaving its CPU: the wait began then. */
        uintptr_t since = (uintptr_t) u64map_remove(&st->off_since, wakee);
        if (since == 0 || s->time_ns <= since)
                return;
        StackFrame leaf = leaf_frame(t, s->regs.rip);
        Stack one = { .frames = &leaf, .n = 1 };
        if (!releases_lock(wake_site_classify(&one))) {
                t->stats.unrelated++;
                return;
        }
        if (st->fraction > 1 && random_unit(st) * st->fraction >= 1) {
                t->stats.sampled_out++;
                return;
        }
        Stack stack = {};
        if (unwind_sample(t, s, &stack) < 0)
                return;
        /* The whole stack decides: a libc lock released inside pthread_cond_wait is the
         * condvar's mutex (a mutex event); one inside pthread_cond_signal is not. */
        if (!releases_lock(wake_site_classify(&stack))) {
                free(stack.frames);
                t->stats.unrelated++;
                return;
        }
        if (contention_add(&t->contention, &stack, 1, s->time_ns - since) == 0)
                t->stats.recorded++;
}

/* ---- threadcreate ---- */

static const char *function_of(const StackFrame *f) {
        return f->loc && f->loc->n_frames > 0 ? f->loc->frames[f->loc->n_frames - 1].function : NULL;
}

/* The TLS the creating thread's clone call passes: clone3's struct clone_args (at rdi,
 * in the copied stack: glibc keeps it on the creator's stack) or clone's fifth argument. */
static uint64_t new_thread_tls(const StackFrame *leaf, const PerfSample *s) {
        const char *fn = function_of(leaf);
        if (fn && strstr(fn, "clone3")) {
                uint64_t at = s->regs.rdi, tls;
                if (at < s->stack_start || at - s->stack_start > s->stack_len ||
                    s->stack_len - (at - s->stack_start) < CLONE_ARGS_TLS + sizeof tls)
                        return 0;
                memcpy(&tls, s->stack + (at - s->stack_start) + CLONE_ARGS_TLS, sizeof tls);
                return tls;
        }
        if (fn && strstr(fn, "clone"))
                return s->regs.r8;
        return 0;
}

/* glibc's clone and clone3 end their CFI before the syscall (the child's would be wrong):
 * the creator is in a leaf function with nothing pushed, its return address at sp. The
 * unwind starts from that caller, below the clone frame. */
static int unwind_creator(SchedTracker *t, const StackFrame *leaf, const PerfSample *s, Stack *ret) {
        const char *fn = function_of(leaf);
        uint64_t return_address;
        if (!fn || !strstr(fn, "clone") || s->stack_len < 8 + sizeof return_address)
                return unwind_sample(t, s, ret);
        memcpy(&return_address, s->stack, sizeof return_address);
        struct user_regs_struct caller = s->regs;
        caller.rip = return_address;
        caller.rsp += sizeof return_address;
        Stack above = {};
        int r = unwind(t, &caller, s->stack_start + sizeof return_address, s->stack + sizeof return_address,
                       s->stack_len - sizeof return_address, s->stack_truncated, &above);
        if (r < 0)
                return r;
        StackFrame *frames = malloc((above.n + 1) * sizeof *frames);
        if (!frames) {
                free(above.frames);
                return -ENOMEM;
        }
        frames[0] = *leaf;
        if (above.n > 0) {
                memcpy(frames + 1, above.frames, above.n * sizeof *frames);
                /* A return address, not an interrupted pc: looked up one byte back. */
                frames[1].exact = false;
                frames[1].loc = address_space_resolve(t->as, stack_frame_lookup_pc(&frames[1]));
        }
        *ret = (Stack) { .frames = frames, .n = above.n + 1, .end = above.end };
        free(above.frames);
        return 0;
}

static void creation_sample(SchedTracker *t, const PerfSample *s) {
        SchedTrackerState *st = t->state;
        uint64_t tid;
        if (!s->has_regs || !tracepoint_field_value(st->field, s->raw, s->raw_size, &tid) || (pid_t) tid <= 0)
                return;
        if (st->n_creations >= PENDING_CREATIONS_MAX)
                return;
        if (st->n_creations == st->cap_creations) {
                size_t cap = MAX(st->cap_creations * 2, (size_t) 16);
                PendingCreation *c = realloc(st->creations, cap * sizeof *c);
                if (!c)
                        return;
                st->creations = c;
                st->cap_creations = cap;
        }
        PendingCreation *c = &st->creations[st->n_creations];
        StackFrame leaf = leaf_frame(t, s->regs.rip);
        *c = (PendingCreation) { .time_ns = s->time_ns, .tid = (pid_t) tid, .pthread = new_thread_tls(&leaf, s) };
        if (st->comm && st->comm->offset < s->raw_size)
                memcpy(c->comm, s->raw + st->comm->offset,
                       MIN((size_t) st->comm->size, MIN(sizeof c->comm - 1, s->raw_size - st->comm->offset)));
        if (unwind_creator(t, &leaf, s, &c->stack) < 0)
                return;
        st->n_creations++;
}

/* The function the new thread runs, from its struct pthread, by name. */
static char *start_routine_of(SchedTracker *t, uint64_t pthread) {
        SchedTrackerState *st = t->state;
        uint64_t fn;
        if (!st->layout_known || pthread == 0 ||
            target_memory_read(t->pid, pthread + st->start_routine_offset, &fn, sizeof fn) < 0 || fn == 0)
                return NULL;
        const SymLoc *loc = address_space_resolve(t->as, fn);
        if (!loc || loc->n_frames == 0)
                return NULL;
        const Frame *f = &loc->frames[loc->n_frames - 1];
        /* Only a function's own entry: anything else is not a start routine. */
        if (!f->function || f->entry != loc->module_offset)
                return NULL;
        return strdup(f->function);
}

static void finish_creation(SchedTracker *t, PendingCreation *c) {
        SchedTrackerState *st = t->state;
        char name[THREAD_NAME_MAX];
        ThreadInfo info;
        const char *seen = perf_sampler_thread_name(st->perf, c->tid);
        if (seen)
                snprintf(name, sizeof name, "%s", seen);
        else if (procfs_read_thread(t->pid, c->tid, &info) == 0)
                snprintf(name, sizeof name, "%s", info.name);
        else
                snprintf(name, sizeof name, "%s", c->comm);
        char *start = start_routine_of(t, c->pthread);
        if (creations_add(&t->creations, &c->stack, false, start, name) == 0)
                t->stats.recorded++;
        free(start);
}

/* The creations whose threads had time to name themselves (all with ALL). */
static void finish_creations(SchedTracker *t, bool all) {
        SchedTrackerState *st = t->state;
        uint64_t now = now_monotonic_ns();
        size_t done = 0;
        while (done < st->n_creations && (all || st->creations[done].time_ns + NAME_WAIT_NS <= now))
                finish_creation(t, &st->creations[done++]);
        if (done == 0)
                return;
        memmove(st->creations, st->creations + done, (st->n_creations - done) * sizeof *st->creations);
        st->n_creations -= done;
}

void sched_tracker_flush(SchedTracker *t) {
        if (t->which == SCHED_THREADCREATE)
                finish_creations(t, true);
}

/* The outermost frame of the program's own (not libc's start_thread, nor _start). */
static const StackFrame *outermost_own_frame(const Stack *s, const char **ret_function) {
        for (size_t i = s->n; i-- > 0;) {
                const SymLoc *loc = s->frames[i].loc;
                if (!loc || loc->n_frames == 0)
                        continue;
                const Frame *f = &loc->frames[loc->n_frames - 1];
                if (!stack_frame_is_user(loc, f) || (f->function && strcmp(f->function, "_start") == 0))
                        continue;
                *ret_function = f->function;
                return &s->frames[i];
        }
        return NULL;
}

/* Where the target's glibc keeps a thread's start routine: a thread started by
 * start_thread runs its start routine as the frame right above it, and its struct
 * pthread (its TLS pointer) holds that function's address. Two threads agreeing make it
 * sure. */
static void learn_start_routine_offset(SchedTracker *t, const ThreadDump *d) {
        SchedTrackerState *st = t->state;
        size_t found = SIZE_MAX;
        unsigned agree = 0;
        for (size_t i = 0; i < d->n_threads && agree < 2; i++) {
                const ThreadRecord *r = &d->threads[i];
                const Stack *s = &r->stack;
                if (r->error != 0 || r->tls == 0 || s->n < 2)
                        continue;
                /* The frame below libc's start_thread. */
                size_t k = s->n;
                for (size_t j = 0; j < s->n; j++) {
                        const char *fn = function_of(&s->frames[j]);
                        if (fn && strcmp(fn, "start_thread") == 0) {
                                k = j;
                                break;
                        }
                }
                if (k == 0 || k == s->n)
                        continue;
                const StackFrame *sf = &s->frames[k - 1];
                const SymLoc *loc = sf->loc;
                if (!loc || loc->n_frames == 0 || loc->module_offset < loc->frames[loc->n_frames - 1].entry)
                        continue;
                uint64_t entry = stack_frame_lookup_pc(sf) - (loc->module_offset - loc->frames[loc->n_frames - 1].entry);
                uint64_t words[PTHREAD_SEARCH_BYTES / 8];
                if (target_memory_read(t->pid, r->tls, words, sizeof words) < 0)
                        continue;
                for (size_t w = 0; w < ARRAY_SIZE(words); w++)
                        if (words[w] == entry) {
                                if (found == SIZE_MAX || found == w * 8) {
                                        found = w * 8;
                                        agree++;
                                }
                                break;
                        }
        }
        if (found != SIZE_MAX) {
                st->start_routine_offset = found;
                st->layout_known = true;
        }
}

void sched_tracker_add_existing(SchedTracker *t, const ThreadDump *d) {
        learn_start_routine_offset(t, d);
        for (size_t i = 0; i < d->n_threads; i++) {
                const ThreadRecord *r = &d->threads[i];
                const char *function = NULL;
                const StackFrame *f = r->error == 0 ? outermost_own_frame(&r->stack, &function) : NULL;
                Stack one = {};
                if (f) {
                        one.frames = malloc(sizeof *one.frames);
                        if (!one.frames)
                                continue;
                        one.frames[0] = *f;
                        one.n = 1;
                }
                (void) creations_add(&t->creations, &one, true, function, r->name);
        }
}

/* The events a timeline wants, before the profiles take theirs. */
static void observe(SchedTracker *t, const PerfSample *s) {
        const SchedObserver *o = t->observer;
        switch (s->kind) {
        case PERF_EVENT_SWITCH_IN:
        case PERF_EVENT_SWITCH_OUT:
                if (t->which == SCHED_BLOCK && o->on_switch)
                        o->on_switch(o->userdata, s->tid, s->time_ns, s->cpu, s->kind == PERF_EVENT_SWITCH_IN,
                                     s->preempted);
                return;
        case PERF_EVENT_EXIT:
                if (t->which == SCHED_BLOCK && o->on_exit)
                        o->on_exit(o->userdata, s->tid, s->time_ns);
                return;
        case PERF_EVENT_SAMPLE:
                break;
        }
        uint64_t v = 0;
        if (t->which == SCHED_BLOCK && o->on_sleep && s->has_regs &&
            tracepoint_field_value(t->state->field, s->raw, s->raw_size, &v) && (v & TASK_SLEEPING)) {
                Stack stack = {};
                if (unwind_sample(t, s, &stack) == 0) {
                        const uint64_t args[6] = { s->regs.rdi, s->regs.rsi, s->regs.rdx, s->regs.r10, s->regs.r8,
                                                   s->regs.r9 };
                        o->on_sleep(o->userdata, s->tid, s->time_ns, &stack, args);
                        free(stack.frames);
                }
        } else if (t->which == SCHED_MUTEX && o->on_wake &&
                   tracepoint_field_value(t->state->field, s->raw, s->raw_size, &v) && (pid_t) v > 0)
                o->on_wake(o->userdata, s->tid, (pid_t) v, s->time_ns);
        else if (t->which == SCHED_THREADCREATE && o->on_create &&
                 tracepoint_field_value(t->state->field, s->raw, s->raw_size, &v) && (pid_t) v > 0)
                o->on_create(o->userdata, s->tid, (pid_t) v, s->time_ns);
}

static int on_event(const PerfSample *s, void *userdata) {
        SchedTracker *t = userdata;
        SchedTrackerState *st = t->state;
        t->stats.events++;
        if (t->observer)
                observe(t, s);
        switch (s->kind) {
        case PERF_EVENT_SAMPLE:
                if (t->which == SCHED_BLOCK)
                        block_went_to_sleep(t, s);
                else if (t->which == SCHED_MUTEX)
                        mutex_waking(t, s);
                else
                        creation_sample(t, s);
                break;
        case PERF_EVENT_SWITCH_IN:
                if (t->which == SCHED_BLOCK)
                        block_woke_up(t, s);
                else
                        (void) u64map_remove(&st->off_since, (uint64_t) s->tid);
                break;
        case PERF_EVENT_SWITCH_OUT:
                /* A preempted thread is runnable: nobody wakes it, so it is no wait. */
                if (t->which == SCHED_MUTEX && !s->preempted && s->time_ns > 0 && st->off_since.n < THREADS_MAX)
                        u64map_put(&st->off_since, (uint64_t) s->tid, (void *) (uintptr_t) s->time_ns);
                break;
        case PERF_EVENT_EXIT:
                break;
        }
        return 0;
}

static int compare_tids(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
        return (x > y) - (x < y);
}

/* Forgets the waits of threads that are gone (a tid is recycled only much later). */
static void prune(SchedTracker *t) {
        SchedTrackerState *st = t->state;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n;
        if (procfs_list_threads(t->pid, &tids, &n) < 0)
                return;
        U64Map *maps[] = { &st->pending, &st->off_since };
        for (size_t m = 0; m < ARRAY_SIZE(maps); m++) {
                uint64_t *gone = NULL;
                size_t n_gone = 0;
                uint64_t key;
                void *value;
                for (size_t it = 0; u64map_next(maps[m], &it, &key, &value);) {
                        pid_t tid = (pid_t) key;
                        if (bsearch(&tid, tids, n, sizeof *tids, compare_tids))
                                continue;
                        uint64_t *g = realloc(gone, (n_gone + 1) * sizeof *g);
                        if (!g)
                                break;
                        gone = g;
                        gone[n_gone++] = key;
                }
                for (size_t i = 0; i < n_gone; i++) {
                        void *v = u64map_remove(maps[m], gone[i]);
                        if (maps[m] == &st->pending)
                                free(v);
                }
                free(gone);
        }
}

void sched_tracker_drain(SchedTracker *t, DrainMaps *dm) {
        SchedTrackerState *st = t->state;
        if (++st->drains % REFRESH_EVERY_DRAINS == 0) {
                (void) perf_sampler_refresh(st->perf);
                (void) drain_maps_get(dm);      /* code loaded since: dlopen, JIT */
        }
        if (st->drains % PRUNE_EVERY_DRAINS == 0)
                prune(t);
        (void) perf_sampler_drain(st->perf, on_event, t);
        if (t->observer && t->which == SCHED_BLOCK && t->observer->on_drained)
                t->observer->on_drained(t->observer->userdata);
        if (t->which == SCHED_THREADCREATE)
                finish_creations(t, false);
        PerfSamplerStats stats;
        perf_sampler_get_stats(st->perf, &stats);
        t->stats.lost = MAX(stats.lost + stats.lost_samples, stats.lost_counted);
        t->stats.exits = stats.exits;
}

SchedTracker *sched_tracker_stop(SchedTracker *t) {
        if (!t)
                return NULL;
        if (t->state) {
                perf_sampler_free(t->state->perf);
                u64map_done(&t->state->pending, free_pending);
                u64map_done(&t->state->off_since, NULL);
                for (size_t i = 0; i < t->state->n_creations; i++)
                        free(t->state->creations[i].stack.frames);
                free(t->state->creations);
                free(t->state);
        }
        contention_done(&t->contention);
        creations_done(&t->creations);
        free(t);
        return NULL;
}

DEFINE_POINTER_CLEANUP(SchedTracker, sched_tracker_stop)

static const char *explain_open_error(int r, const char *system, const char *event, char *buf, size_t size) {
        char why[512];
        if (r == -EACCES || r == -EPERM)
                snprintf(buf, size, "the kernel refused the %s:%s tracepoint: tracepoint events need "
                         "CAP_PERFMON (or CAP_SYS_ADMIN) unless kernel.perf_event_paranoid is -1; %s", system, event,
                         perf_sampler_explain_error(r, why, sizeof why));
        else if (r == -ENOENT || r == -ENODEV || r == -EOPNOTSUPP || r == -ENOSYS)
                snprintf(buf, size, "this kernel cannot give tracepoint events to perf (%s): "
                         "CONFIG_PERF_EVENTS and CONFIG_TRACEPOINTS are needed", strerror(-r));
        else
                snprintf(buf, size, "cannot open the %s:%s tracepoint: %s", system, event,
                         perf_sampler_explain_error(r, why, sizeof why));
        return buf;
}

int sched_tracker_start(pid_t pid, SchedProfile which, const SchedOptions *opts, AddressSpace *as,
                        const Maps *maps, SchedTracker **ret, char *err, size_t errlen) {
        static const struct {
                const char *system, *event, *field, *filter;
                bool switches;
        } events[SCHED_PROFILES] = {
                /* Waits start with a sleep: the kernel drops preemptions and yields itself. */
                [SCHED_BLOCK] = { "sched", "sched_switch", "prev_state", "prev_state & 3", true },
                [SCHED_MUTEX] = { "sched", "sched_waking", "pid", NULL, true },
                /* CLONE_THREAD: threads, not child processes. */
                [SCHED_THREADCREATE] = { "task", "task_newtask", "pid", "clone_flags & 65536", false },
        };
        const char *event = events[which].event;
        const char *field = events[which].field;
        _cleanup_(sched_tracker_stopp) SchedTracker *t = calloc(1, sizeof *t);
        SchedTrackerState *st = calloc(1, sizeof *st);
        if (!t || !st) {
                free(st);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        t->state = st;
        t->which = which;
        t->pid = pid;
        t->as = as;
        st->rate_ns = opts->block_rate_ns;
        st->fraction = MAX(opts->mutex_fraction, 1u);
        st->stack_bytes = opts->stack_bytes ? opts->stack_bytes : SCHED_STACK_BYTES_DEFAULT;
        st->rng = now_monotonic_ns() | 1;
        contention_init(&t->contention, which == SCHED_MUTEX ? st->fraction : 1);
        creations_init(&t->creations);

        int r = tracepoint_read(events[which].system, event, &st->tp);
        if (r < 0) {
                tracepoint_explain_error(r, events[which].system, event, err, errlen);
                return r;
        }
        st->field = tracepoint_field(&st->tp, field);
        if (!st->field || st->field->size > 8) {
                snprintf(err, errlen, "the %s:%s tracepoint of this kernel has no %s field", events[which].system,
                         event, field);
                return -EBADMSG;
        }
        st->comm = tracepoint_field(&st->tp, "comm");
        if (which == SCHED_THREADCREATE && maps && pthread_layout_is_ours(maps) &&
            pthread_start_routine_offset(&st->start_routine_offset) == 0)
                st->layout_known = true;
        /* Before the events: their first drain must not wait for libdw while the rings
         * fill. */
        if (maps)
                address_space_warm_up(as, maps);
        PerfSamplerOptions po = {
                .tracepoint_id = st->tp.id,
                .tracepoint_filter = events[which].filter,
                .context_switches = events[which].switches,
                .time_ordered = true,
                .stack_bytes = st->stack_bytes,
                .ring_bytes = SCHED_RING_BYTES,
                .ring_may_shrink = true,
                .exclude_kernel_callchain = true,
        };
        r = perf_sampler_new(pid, &po, &st->perf);
        if (r == -ESRCH) {
                snprintf(err, errlen, "target pid %d has exited", (int) pid);
                return r;
        }
        if (r < 0) {
                explain_open_error(r, events[which].system, event, err, errlen);
                return r;
        }
        t->started_ns = now_monotonic_ns();
        t->started_realtime_ns = now_realtime_ns();
        *ret = TAKE_PTR(t);
        return 0;
}
