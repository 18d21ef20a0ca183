/* sources/heap-uprobes.c -- see heap-uprobes.h.
 *
 * Each probe is a sampler of its own (attach/perf.h): one ring per CPU and probe, so the
 * calls of one thread arrive in several rings. The records of a drain are therefore put
 * in time order before an entry is paired with the return that follows it on the same
 * thread; and only records older than WATERMARK_NS are paired, the rest wait for the next
 * drain, since a ring read early in a drain may lack a record that a ring read later
 * already follows. A drain that lost records drops every open call: a lost return must not
 * pair an entry with the next call's result. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "heap-uprobes.h"
#include "inject.h"
#include "macro.h"
#include "perf.h"
#include "sample-interval.h"
#include "procfs.h"

#define WATERMARK_NS (50 * NSEC_PER_MSEC)
#define ENTRY_STACK_BYTES (4u * 1024u)
#define RING_BYTES (32u << 20)
#define COUNTDOWNS_MAX 65536u

typedef enum ProbeKind {
        PROBE_MALLOC,
        PROBE_MALLOC_RET,
        PROBE_CALLOC,
        PROBE_CALLOC_RET,
        PROBE_REALLOC,
        PROBE_REALLOC_RET,
        PROBE_FREE,
        _PROBE_MAX,
} ProbeKind;

static const struct {
        const char *function;
        bool is_return;
        bool entry_with_stack;
} probes[_PROBE_MAX] = {
        [PROBE_MALLOC] = { "malloc", false, true },
        [PROBE_MALLOC_RET] = { "malloc", true, false },
        [PROBE_CALLOC] = { "calloc", false, true },
        [PROBE_CALLOC_RET] = { "calloc", true, false },
        [PROBE_REALLOC] = { "realloc", false, true },
        [PROBE_REALLOC_RET] = { "realloc", true, false },
        [PROBE_FREE] = { "free", false, false },
};

typedef struct Event {
        uint64_t time_ns;
        pid_t tid;
        ProbeKind kind;
        uint64_t value;                 /* size (entries), result (returns), pointer (free) */
        uint64_t old;                   /* realloc's pointer */
        Stack *stack;                   /* a sampled entry's, else NULL */
} Event;

typedef struct OpenCall {
        uint64_t size;
        Stack *stack;                   /* NULL: not sampled */
} OpenCall;

typedef struct Countdown {
        int64_t left;
        uint64_t rng;
} Countdown;

struct HeapUprobes {
        pid_t pid;
        uint64_t rate;
        char path[128];                 /* the allocator's file, for the kernel */
        PerfSampler *samplers[_PROBE_MAX];
        Event *events;                  /* this drain's and the ones held back */
        size_t n_events, cap_events;
        U64Map open;                    /* tid → OpenCall */
        U64Map countdown;               /* tid → Countdown */
        uint64_t lost_seen;
};

static void free_open(void *p) {
        OpenCall *o = p;
        if (o->stack)
                free(o->stack->frames);
        free(o->stack);
        free(o);
}

HeapUprobes *heap_uprobes_free(HeapUprobes *u) {
        if (!u)
                return NULL;
        for (size_t i = 0; i < _PROBE_MAX; i++)
                perf_sampler_free(u->samplers[i]);
        for (size_t i = 0; i < u->n_events; i++)
                if (u->events[i].stack) {
                        free(u->events[i].stack->frames);
                        free(u->events[i].stack);
                }
        free(u->events);
        u64map_done(&u->open, free_open);
        u64map_done(&u->countdown, free);
        free(u);
        return NULL;
}

/* The module the program's malloc comes from: the executable when it defines one (a
 * statically linked or interposing allocator), else the C library. */
static int allocator_file(pid_t pid, char *ret, size_t size) {
        Maps maps;
        int r = procfs_read_maps(pid, &maps);
        if (r < 0)
                return r;
        _cleanup_free_ char *exe = NULL;
        (void) procfs_read_exe(pid, &exe);
        const MapEntry *candidates[2] = {
                exe ? maps_find_module(&maps, module_is_path, exe) : NULL,
                maps_find_module(&maps, module_is_libc, NULL),
        };
        uint64_t off;
        r = -ENOENT;
        for (size_t i = 0; i < 2 && r < 0; i++)
                if (candidates[i]) {
                        procfs_map_files_path(pid, candidates[i], ret, size);
                        if (elf_function_file_offset(ret, "malloc", &off) == 0)
                                r = 0;
                }
        maps_done(&maps);
        return r;
}

int heap_uprobes_start(pid_t pid, uint64_t rate, HeapUprobes **ret, char *err, size_t errlen) {
        HeapUprobes *u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->pid = pid;
        u->rate = rate;
        int r = allocator_file(pid, u->path, sizeof u->path);
        if (r < 0) {
                snprintf(err, errlen, "no allocator with a malloc symbol found in pid %d", (int) pid);
                heap_uprobes_free(u);
                return r;
        }
        for (size_t i = 0; i < _PROBE_MAX; i++) {
                uint64_t offset;
                r = elf_function_file_offset(u->path, probes[i].function, &offset);
                if (r < 0) {
                        snprintf(err, errlen, "the allocator of pid %d has no %s", (int) pid, probes[i].function);
                        break;
                }
                PerfSamplerOptions o = {
                        .stack_bytes = probes[i].entry_with_stack ? ENTRY_STACK_BYTES : 8,
                        .ring_bytes = RING_BYTES,
                        .exclude_kernel_callchain = true,
                        .probe_path = u->path,
                        .probe_offset = offset,
                        .probe_return = probes[i].is_return,
                };
                r = perf_sampler_new(pid, &o, &u->samplers[i]);
                if (r < 0) {
                        snprintf(err, errlen, "cannot place a uprobe on %s in pid %d: %s", probes[i].function,
                                 (int) pid, strerror(-r));
                        break;
                }
        }
        if (r < 0) {
                heap_uprobes_free(u);
                return r;
        }
        *ret = u;
        return 0;
}

/* Whether an allocation of SIZE bytes by TID crosses its countdown, as the agent decides. */
static bool sampled(HeapUprobes *u, pid_t tid, uint64_t size) {
        Countdown *c = u64map_get(&u->countdown, (uint64_t) tid);
        if (!c) {
                c = calloc(1, sizeof *c);
                if (!c)
                        return false;
                c->rng = ((uint64_t) tid << 32) ^ now_monotonic_ns() ^ 0x9E3779B97F4A7C15ull;
                c->left = sample_interval(&c->rng, u->rate);
                u64map_put(&u->countdown, (uint64_t) tid, c);
        }
        c->left -= (int64_t) MIN(size, (uint64_t) INT64_MAX / 2);
        if (c->left >= 0)
                return false;
        c->left = sample_interval(&c->rng, u->rate);
        return true;
}

static int push(HeapUprobes *u, const Event *e) {
        if (u->n_events == u->cap_events) {
                size_t cap = MAX(u->cap_events * 2, (size_t) 1024);
                Event *events = realloc(u->events, cap * sizeof *events);
                if (!events)
                        return -ENOMEM;
                u->events = events;
                u->cap_events = cap;
        }
        u->events[u->n_events++] = *e;
        return 0;
}

typedef struct DrainContext {
        HeapUprobes *u;
        DrainMaps *maps;
        ProbeKind kind;
} DrainContext;

static int on_sample(const PerfSample *s, void *userdata) {
        DrainContext *ctx = userdata;
        HeapUprobes *u = ctx->u;
        if (!s->has_regs)
                return 0;
        Event e = { .time_ns = s->time_ns, .tid = s->tid, .kind = ctx->kind };
        switch (ctx->kind) {
        case PROBE_MALLOC: e.value = s->regs.rdi; break;
        case PROBE_CALLOC: e.value = s->regs.rdi * s->regs.rsi; break;
        case PROBE_REALLOC: e.value = s->regs.rsi; e.old = s->regs.rdi; break;
        case PROBE_FREE: e.value = s->regs.rdi; break;
        default: e.value = s->regs.rax; break;
        }
        if (probes[ctx->kind].entry_with_stack && e.value > 0 && sampled(u, s->tid, e.value)) {
                ThreadCapture c;
                Stack *stack = calloc(1, sizeof *stack);
                (void) drain_maps_get(ctx->maps);
                if (stack && perf_sample_as_capture(s, &c) == 0 &&
                    address_space_unwind(ctx->maps->as, &c, stack) == 0) {
                        /* The probe fires on the allocator's first instruction: its caller
                         * is where the allocation happens, as in the agent's samples. */
                        stack_drop_leaf_frames(stack, 1);
                        e.stack = stack;
                } else
                        free(stack);
        }
        if (push(u, &e) < 0) {
                if (e.stack) {
                        free(e.stack->frames);
                        free(e.stack);
                }
                return -ENOMEM;
        }
        return 0;
}

static int by_time(const void *a, const void *b) {
        const Event *x = a, *y = b;
        return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

static void clear_open(HeapUprobes *u) {
        u64map_done(&u->open, free_open);
        u->open = (U64Map) {};
}

uint64_t heap_uprobes_drain(HeapUprobes *u, DrainMaps *maps, Heap *heap) {
        uint64_t samples = 0;
        uint64_t lost = 0;
        for (size_t i = 0; i < _PROBE_MAX; i++) {
                DrainContext ctx = { .u = u, .maps = maps, .kind = (ProbeKind) i };
                (void) perf_sampler_drain(u->samplers[i], on_sample, &ctx);
                (void) perf_sampler_refresh(u->samplers[i]);
                PerfSamplerStats st;
                perf_sampler_get_stats(u->samplers[i], &st);
                lost += st.lost + st.lost_samples;
        }
        if (lost != u->lost_seen) {
                heap->lost += lost - u->lost_seen;
                u->lost_seen = lost;
                clear_open(u);
        }
        /* Countdowns of threads long gone would pile up in a program that churns threads:
         * past a bound, every thread starts a fresh one (fair: the exponential has no
         * memory). */
        if (u->countdown.n > COUNTDOWNS_MAX) {
                u64map_done(&u->countdown, free);
                u->countdown = (U64Map) {};
        }
        qsort(u->events, u->n_events, sizeof *u->events, by_time);
        uint64_t watermark = now_monotonic_ns() - WATERMARK_NS;
        size_t done = 0;
        for (; done < u->n_events && u->events[done].time_ns <= watermark; done++) {
                Event *e = &u->events[done];
                OpenCall *o;
                switch (e->kind) {
                case PROBE_MALLOC:
                case PROBE_CALLOC:
                case PROBE_REALLOC:
                        if (e->kind == PROBE_REALLOC && e->old)
                                heap_free(heap, e->old);
                        o = calloc(1, sizeof *o);
                        if (!o)
                                break;
                        *o = (OpenCall) { .size = e->value, .stack = e->stack };
                        e->stack = NULL;
                        o = u64map_put(&u->open, (uint64_t) e->tid, o);
                        if (o)
                                free_open(o);   /* a call whose return we did not see */
                        break;
                case PROBE_FREE:
                        if (e->value)
                                heap_free(heap, e->value);
                        break;
                default:
                        o = u64map_remove(&u->open, (uint64_t) e->tid);
                        if (o && o->stack && e->value && heap_alloc(heap, e->value, o->size, o->stack) == 0)
                                samples++;
                        if (o)
                                free_open(o);
                        break;
                }
        }
        memmove(u->events, u->events + done, (u->n_events - done) * sizeof *u->events);
        u->n_events -= done;
        return samples;
}
