/* profile/trace.c -- see trace.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "macro.h"
#include "trace.h"
#include "waits.h"

typedef struct TraceThread {
        pid_t tid;
        bool known;                     /* a state since the slice start below */
        bool running;
        uint64_t since_ns;
        int cpu;
        const char *reason;             /* of the off-CPU slice under way (static text) */
        char *stack;                    /* JSON array of its frames, or NULL */
        const char *next_reason;        /* from the sleep event before a switch out */
        char *next_stack;
        uint64_t *ins;                  /* its switches in, in time order */
        size_t n_ins, cap_ins;
} TraceThread;

typedef struct TraceWake {
        pid_t waker, wakee;
        uint64_t time_ns;
} TraceWake;

void trace_builder_init(TraceBuilder *b, pid_t pid, uint64_t start_ns, size_t max_events) {
        *b = (TraceBuilder) { .pid = pid, .start_ns = start_ns, .max_events = max_events ? max_events : TRACE_EVENTS_MAX };
}

static void free_thread(void *p) {
        TraceThread *t = p;
        free(t->stack);
        free(t->next_stack);
        free(t->ins);
        free(t);
}

void trace_builder_done(TraceBuilder *b) {
        u64map_done(&b->threads, free_thread);
        buf_done(&b->events);
        free(b->wakes);
}

static TraceThread *thread_of(TraceBuilder *b, pid_t tid) {
        TraceThread *t = u64map_get(&b->threads, (uint64_t) tid);
        if (t || b->threads.n >= 65536)
                return t;
        t = calloc(1, sizeof *t);
        if (!t)
                return NULL;
        t->tid = tid;
        u64map_put(&b->threads, (uint64_t) tid, t);
        return t;
}

/* Microseconds since the window's start, as the format wants them. */
static void put_ts(TraceBuilder *b, const char *key, uint64_t time_ns) {
        uint64_t rel = time_ns > b->start_ns ? time_ns - b->start_ns : 0;
        buf_printf(&b->events, "\"%s\":%" PRIu64 ".%03" PRIu64, key, rel / 1000, rel % 1000);
}

/* Starts an event object; false when the cap is reached (the trace is truncated). */
static bool begin_event(TraceBuilder *b, const char *ph, pid_t tid, uint64_t time_ns) {
        if (b->n_events >= b->max_events) {
                b->truncated = true;
                return false;
        }
        if (b->n_events++ > 0)
                buf_puts(&b->events, ",\n");
        buf_printf(&b->events, "{\"ph\":\"%s\",\"pid\":%d,\"tid\":%d,", ph, (int) b->pid, (int) tid);
        put_ts(b, "ts", time_ns);
        return true;
}

static void slice(TraceBuilder *b, TraceThread *t, uint64_t end_ns) {
        if (!t->known || end_ns < t->since_ns)
                return;
        if (!begin_event(b, "X", t->tid, t->since_ns))
                return;
        buf_putc(&b->events, ',');
        uint64_t dur = end_ns - t->since_ns;
        buf_printf(&b->events, "\"dur\":%" PRIu64 ".%03" PRIu64 ",\"name\":", dur / 1000, dur % 1000);
        if (t->running) {
                json_put_string(&b->events, "running");
                if (t->cpu >= 0)
                        buf_printf(&b->events, ",\"cat\":\"cpu\",\"args\":{\"cpu\":%d}}", t->cpu);
                else
                        buf_puts(&b->events, ",\"cat\":\"cpu\",\"args\":{}}");
                return;
        }
        json_put_string(&b->events, t->reason ? t->reason : "off CPU");
        buf_puts(&b->events, ",\"cat\":\"off-cpu\",\"args\":{");
        if (t->stack)
                buf_printf(&b->events, "\"stack\":%s", t->stack);
        buf_puts(&b->events, "}}");
}

void trace_thread(TraceBuilder *b, pid_t tid, bool running) {
        TraceThread *t = thread_of(b, tid);
        if (!t || t->known)
                return;
        t->known = true;
        t->running = running;
        t->since_ns = b->start_ns;
        t->cpu = -1;
}

void trace_switch(TraceBuilder *b, pid_t tid, uint64_t time_ns, int cpu, bool in, bool preempted) {
        TraceThread *t = thread_of(b, tid);
        if (!t)
                return;
        /* Drained late from a tracker shared with the profiles: from before the window. */
        time_ns = MAX(time_ns, b->start_ns);
        if (!t->known) {
                /* Its state before its first event in the window: the opposite. */
                t->known = true;
                t->running = !in;
                t->since_ns = b->start_ns;
                t->cpu = cpu;
        }
        if (in && !t->running) {
                slice(b, t, time_ns);
                t->running = true;
                t->cpu = cpu;
                t->since_ns = time_ns;
                if (t->n_ins == t->cap_ins && t->n_ins < b->max_events) {
                        size_t cap = MAX(t->cap_ins * 2, (size_t) 64);
                        uint64_t *ins = realloc(t->ins, cap * sizeof *ins);
                        if (ins) {
                                t->ins = ins;
                                t->cap_ins = cap;
                        }
                }
                if (t->n_ins < t->cap_ins)
                        t->ins[t->n_ins++] = time_ns;
        } else if (!in && t->running) {
                slice(b, t, time_ns);
                t->running = false;
                t->since_ns = time_ns;
                free(t->stack);
                t->stack = NULL;
                t->reason = preempted ? "preempted" : t->next_reason;
                if (!preempted)
                        t->stack = TAKE_PTR(t->next_stack);
                free(t->next_stack);
                t->next_stack = NULL;
                t->next_reason = NULL;
        }
}

static char *stack_json(const Stack *s) {
        Buf b = {};
        buf_putc(&b, '[');
        size_t n = 0;
        for (size_t i = 0; i < s->n && n < TRACE_STACK_FRAMES_MAX; i++) {
                const SymLoc *loc = s->frames[i].loc;
                size_t levels = loc ? MAX(loc->n_frames, (size_t) 1) : 1;
                for (size_t k = 0; k < levels && n < TRACE_STACK_FRAMES_MAX; k++, n++) {
                        Buf f = {};
                        const Frame *fr = loc && k < loc->n_frames ? &loc->frames[k] : NULL;
                        if (fr && fr->function) {
                                buf_puts(&f, fr->function);
                                if (fr->file)
                                        buf_printf(&f, " %s:%u", fr->file, (unsigned) fr->line);
                        } else
                                buf_printf(&f, "0x%" PRIx64, s->frames[i].pc);
                        if (n > 0)
                                buf_putc(&b, ',');
                        json_put_string(&b, f.data);
                        buf_done(&f);
                }
        }
        buf_putc(&b, ']');
        return buf_steal(&b, NULL);
}

const char *trace_sleep_reason(const Stack *stack, const uint64_t args[6]) {
        WaitSite site;
        if (wait_site_classify_blocked(stack, args, &site)) {
                switch (site.kind) {
                case WAIT_KIND_MUTEX:
                        return "blocked: mutex";
                case WAIT_KIND_RWLOCK_READ:
                case WAIT_KIND_RWLOCK_WRITE:
                        return "blocked: rwlock";
                case WAIT_KIND_LOCK:
                        return "blocked: libc lock";
                case WAIT_KIND_COND:
                        return "blocked: condition variable";
                case WAIT_KIND_SEM:
                        return "blocked: semaphore";
                case WAIT_KIND_BARRIER:
                        return "blocked: barrier";
                case WAIT_KIND_JOIN:
                        return "blocked: join";
                case WAIT_KIND_ONCE:
                        return "blocked: once";
                case WAIT_KIND_FUTEX:
                case WAIT_KIND_NONE:
                        return "blocked: futex";
                }
        }
        static const struct {
                const char *part, *reason;
        } calls[] = {
                { "nanosleep", "sleep" }, { "sleep", "sleep" }, { "epoll", "I/O" }, { "poll", "I/O" },
                { "select", "I/O" }, { "read", "I/O" }, { "recv", "I/O" }, { "write", "I/O" }, { "send", "I/O" },
                { "accept", "I/O" }, { "connect", "I/O" }, { "wait4", "child wait" }, { "waitpid", "child wait" },
                { "pause", "sleep" }, { "sigtimedwait", "signal wait" }, { "sigwait", "signal wait" },
        };
        const SymLoc *leaf = stack && stack->n > 0 ? stack->frames[0].loc : NULL;
        for (size_t k = 0; leaf && k < leaf->n_frames; k++) {
                const char *fn = leaf->frames[k].function;
                for (size_t i = 0; fn && i < ARRAY_SIZE(calls); i++)
                        if (strstr(fn, calls[i].part))
                                return calls[i].reason;
        }
        return "off CPU";
}

void trace_sleep(TraceBuilder *b, pid_t tid, uint64_t time_ns, const Stack *stack, const uint64_t args[6]) {
        TraceThread *t = thread_of(b, tid);
        if (!t)
                return;
        t->next_reason = trace_sleep_reason(stack, args);
        free(t->next_stack);
        t->next_stack = stack_json(stack);
}

void trace_wake(TraceBuilder *b, pid_t waker, pid_t wakee, uint64_t time_ns) {
        /* Kept until the end: wake-ups and switches come from different buffers, so the
         * wakee's switch in may be seen before its wake-up. */
        if (time_ns < b->start_ns || b->n_wakes >= b->max_events)
                return;
        if (b->n_wakes == b->cap_wakes) {
                size_t cap = MAX(b->cap_wakes * 2, (size_t) 256);
                TraceWake *w = realloc(b->wakes, cap * sizeof *w);
                if (!w)
                        return;
                b->wakes = w;
                b->cap_wakes = cap;
        }
        b->wakes[b->n_wakes++] = (TraceWake) { .waker = waker, .wakee = wakee, .time_ns = time_ns };
}

/* Each wake-up as a flow from the waker, at the wake-up, to the wakee's next switch in. */
static void write_flows(TraceBuilder *b) {
        for (size_t i = 0; i < b->n_wakes; i++) {
                const TraceWake *w = &b->wakes[i];
                const TraceThread *t = u64map_get(&b->threads, (uint64_t) w->wakee);
                if (!t || t->n_ins == 0)
                        continue;
                size_t lo = 0, hi = t->n_ins;
                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;
                        if (t->ins[mid] < w->time_ns)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                if (lo == t->n_ins)
                        continue;
                uint64_t id = ++b->next_flow;
                if (!begin_event(b, "s", w->waker, w->time_ns))
                        return;
                buf_printf(&b->events, ",\"id\":%" PRIu64 ",\"name\":\"wakeup\",\"cat\":\"wakeup\","
                           "\"args\":{\"wakee\":%d}}", id, (int) w->wakee);
                if (!begin_event(b, "f", w->wakee, t->ins[lo]))
                        return;
                buf_printf(&b->events, ",\"bp\":\"e\",\"id\":%" PRIu64 ",\"name\":\"wakeup\",\"cat\":\"wakeup\"}", id);
        }
}

void trace_create(TraceBuilder *b, pid_t creator, pid_t tid, uint64_t time_ns) {
        if (time_ns >= b->start_ns && begin_event(b, "i", creator, time_ns))
                buf_printf(&b->events, ",\"s\":\"t\",\"name\":\"thread created\",\"cat\":\"thread\",\"args\":{\"tid\":%d}}",
                           (int) tid);
}

void trace_cpu_sample(TraceBuilder *b, pid_t tid, uint64_t time_ns, const Stack *stack) {
        if (time_ns < b->start_ns || !begin_event(b, "i", tid, time_ns))
                return;
        char *frames = stack_json(stack);
        buf_printf(&b->events, ",\"s\":\"t\",\"name\":\"cpu sample\",\"cat\":\"cpu\",\"args\":{\"stack\":%s}}",
                   frames ? frames : "[]");
        free(frames);
}

void trace_exit(TraceBuilder *b, pid_t tid, uint64_t time_ns) {
        TraceThread *t = u64map_get(&b->threads, (uint64_t) tid);
        if (t) {
                slice(b, t, time_ns);
                t->known = false;
        }
        if (begin_event(b, "i", tid, time_ns))
                buf_puts(&b->events, ",\"s\":\"t\",\"name\":\"thread exit\",\"cat\":\"thread\"}");
}

static void metadata(Buf *out, bool *first, pid_t pid, pid_t tid, const char *what, const char *name) {
        buf_puts(out, *first ? "" : ",\n");
        *first = false;
        buf_printf(out, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"%s\",\"args\":{\"name\":", (int) pid, (int) tid,
                   what);
        json_put_string(out, name);
        buf_puts(out, "}}");
}

void trace_builder_finish(TraceBuilder *b, uint64_t end_ns, const char *process_name,
                          const char *(*name_of)(void *userdata, pid_t tid), void *userdata, Buf *out) {
        uint64_t key;
        void *value;
        for (size_t it = 0; u64map_next(&b->threads, &it, &key, &value);)
                slice(b, value, end_ns);
        write_flows(b);
        if (b->truncated) {
                size_t cap = b->max_events;
                b->max_events = SIZE_MAX;       /* room for the marker */
                if (begin_event(b, "i", b->pid, end_ns))
                        buf_printf(&b->events, ",\"s\":\"g\",\"name\":\"cprofd: trace truncated at %zu events\"}", cap);
                b->max_events = cap;
        }
        bool first = true;
        buf_puts(out, "{\"traceEvents\":[\n");
        metadata(out, &first, b->pid, b->pid, "process_name", process_name ? process_name : "");
        for (size_t it = 0; u64map_next(&b->threads, &it, &key, &value);) {
                const TraceThread *t = value;
                const char *name = name_of ? name_of(userdata, t->tid) : NULL;
                char fallback[32];
                snprintf(fallback, sizeof fallback, "%d", (int) t->tid);
                metadata(out, &first, b->pid, t->tid, "thread_name", name ? name : fallback);
        }
        if (b->n_events > 0) {
                buf_puts(out, ",\n");
                buf_append(out, b->events.data, b->events.len);
        }
        uint64_t dur = end_ns > b->start_ns ? end_ns - b->start_ns : 0;
        buf_printf(out, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"cprofd\",\"pid\":%d,"
                        "\"duration_ns\":%" PRIu64 ",\"events\":%zu,\"truncated\":%s}}\n",
                   (int) b->pid, dur, b->n_events, b->truncated ? "true" : "false");
}
