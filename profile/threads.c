/* profile/threads.c -- the text encoders of a thread dump, in the shapes of Go's
 * goroutine profile (runtime/pprof printCountProfile for debug=1, runtime.Stack for
 * debug=2). See threads.h for the outline; the exact choices for what Go never has to
 * print (unknown symbols, truncated stacks, threads that could not be captured):
 *
 *   debug=1 (through the tab writer, like Go's):
 *     COUNT @ 0xPC 0xPC…                 raw pcs as unwound (return addresses), Go's %#x
 *     # threads: TID "NAME", …           ascending tids; names escaped like C strings;
 *                                        TID (ns NSTID) for a thread of a container
 *     #\t0xLPC\tfunc+0xOFF\tfile:line    LPC = lookup pc (pc − 1 for return addresses),
 *                                        OFF = LPC − entry (module-relative); one line per
 *                                        inline level, innermost first, same LPC
 *     #\t0xLPC\tfunc+0xOFF               file unknown
 *     #\t0xLPC\tMODULE+0xMOFF            nothing known but the mapping (MODULE "?" when
 *                                        the pc is in no mapping), also for a frame whose
 *                                        function is unknown
 *     #\t\t[truncated]                   the unwind stopped early: a pseudo-frame in the
 *                                        function column (the tab writer aligns it there)
 *     COUNT @  +  #\t[not captured: ERR] threads whose stack could not be taken, grouped
 *                                        by error
 *     COUNT @  +  #\t[no stack]          a captured but empty, complete stack
 *   Groups: identical raw pcs and the same truncation; sorted by count descending, then
 *   by the "@ 0x…" key ascending (Go's keysByCount), then untruncated first, then error.
 *
 *   debug=2 (plain text, Go's runtime.Stack shape):
 *     thread TID "NAME" [STATE, WAIT, DURATION]:    "[unknown]" when nothing is known
 *     func(...)\n\tfile:line +0xOFF      OFF = raw pc − entry (module-relative): one more
 *                                        than debug=1 for return addresses; omitted when
 *                                        not positive, as Go does
 *     func(...)\n\tfile:line             inlined frames: no offset
 *     func(...)\n\tMODULE+0xMOFF         file unknown (MOFF of the lookup pc, what
 *                                        `addr2line -e MODULE` takes)
 *     ??(...)\n\tMODULE+0xMOFF           nothing known (gdb's "??" for no symbol)
 *     ...additional frames elided...     after 100 frame entries (inline levels count)
 *     [truncated]\n\t(REASON)            after the frames when the unwind stopped early
 *     [not captured: ERR]  /  [no stack]
 *   One blank line between threads; the text ends with the last frame line's "\n".
 *
 * Strings from the target (names, symbols, paths) are untrusted: control characters,
 * DEL and bytes that are not valid UTF-8 are printed as C escapes, so they can neither
 * forge lines nor cells nor the tab writer's escape byte.
 *
 * The "@ 0x…" key and the "#\t…" frame lines of a record are shared, through
 * threads-internal.h, with the other count-shaped text of profile/ (history.c's growth). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tabwriter.h"
#include "threads-internal.h"
#include "threads.h"
#include "utf8-util.h"

#define DEBUG2_MAX_FRAMES 100   /* Go's _TracebackMaxFrames */

void text_put_escaped(Buf *out, const char *s, bool quoted) {
        const unsigned char *p = (const unsigned char *) (s ? s : "");
        size_t n = strlen((const char *) p);

        for (size_t i = 0; i < n;) {
                unsigned char c = p[i];
                size_t l = utf8_valid_len(p + i, n - i);

                if (l > 1 || (l == 1 && c >= 0x20 && c != 0x7f)) {
                        if (quoted && (c == '"' || c == '\\'))
                                buf_putc(out, '\\');
                        buf_append(out, p + i, l);
                        i += l;
                        continue;
                }
                switch (c) {
                case '\n': buf_puts(out, "\\n"); break;
                case '\t': buf_puts(out, "\\t"); break;
                case '\r': buf_puts(out, "\\r"); break;
                default: buf_printf(out, "\\x%02x", c); break;
                }
                i++;
        }
}

static void put_module(Buf *out, const SymLoc *loc) {
        text_put_escaped(out, loc && loc->module ? loc->module : "?", false);
        buf_printf(out, "+0x%" PRIx64, loc ? loc->module_offset : 0);
}

static const char *errno_text(int error, char *buf, size_t size) {
        return strerror_r(error < 0 ? -error : error, buf, size);     /* GNU variant */
}

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size);
        if (!p)
                abort();        /* as Buf does: the void API has no error path */
        return p;
}

/* ---- debug=1 ---- */

typedef struct Group {
        const ThreadRecord **threads;   /* into the sorted array; ascending tid */
        size_t count;
        char *key;                      /* "@ 0x… 0x…" */
} Group;

static int cmp_u64(uint64_t a, uint64_t b) {
        return a < b ? -1 : a > b;
}

/* A total order that puts threads of one group next to each other, by ascending tid. */
static int thread_group_cmp(const void *pa, const void *pb) {
        const ThreadRecord *a = *(const ThreadRecord * const *) pa, *b = *(const ThreadRecord * const *) pb;
        int r;

        if (a->error != b->error)
                return a->error < b->error ? -1 : 1;
        if (a->error == 0) {
                r = cmp_u64(a->stack.n, b->stack.n);
                if (r != 0)
                        return r;
                for (size_t i = 0; i < a->stack.n; i++) {
                        r = cmp_u64(a->stack.frames[i].pc, b->stack.frames[i].pc);
                        if (r != 0)
                                return r;
                }
                r = (int) stack_is_truncated(&a->stack) - (int) stack_is_truncated(&b->stack);
                if (r != 0)
                        return r;
        }
        return a->tid < b->tid ? -1 : a->tid > b->tid;
}

static bool thread_truncated(const ThreadRecord *t) {
        return t->error == 0 && stack_is_truncated(&t->stack);
}

bool thread_same_stack(const ThreadRecord *a, const ThreadRecord *b) {
        if (a->error != b->error)
                return false;
        if (a->error != 0)
                return true;
        if (a->stack.n != b->stack.n || thread_truncated(a) != thread_truncated(b))
                return false;
        for (size_t i = 0; i < a->stack.n; i++)
                if (a->stack.frames[i].pc != b->stack.frames[i].pc)
                        return false;
        return true;
}

static int group_cmp(const void *pa, const void *pb) {
        const Group *a = pa, *b = pb;
        const ThreadRecord *ta = a->threads[0], *tb = b->threads[0];
        int r;

        if (a->count != b->count)
                return a->count > b->count ? -1 : 1;
        r = strcmp(a->key, b->key);
        if (r != 0)
                return r;
        r = (int) thread_truncated(ta) - (int) thread_truncated(tb);
        if (r != 0)
                return r;
        return ta->error > tb->error ? -1 : ta->error < tb->error;
}

void stack_write_debug1_key(Buf *out, const Stack *s) {
        buf_putc(out, '@');
        for (size_t i = 0; s && i < s->n; i++)
                buf_printf(out, " 0x%" PRIx64, s->frames[i].pc);
}

static char *group_key(const ThreadRecord *t) {
        _cleanup_buf_ Buf b = {};

        stack_write_debug1_key(&b, t->error == 0 ? &t->stack : NULL);
        return buf_steal(&b, NULL);
}

static void debug1_frame_lines(Buf *text, const StackFrame *sf) {
        const SymLoc *loc = sf->loc;
        uint64_t lpc = stack_frame_lookup_pc(sf);

        if (!loc || loc->n_frames == 0) {
                buf_printf(text, "#\t0x%" PRIx64 "\t", lpc);
                put_module(text, loc);
                buf_putc(text, '\n');
                return;
        }

        for (size_t k = 0; k < loc->n_frames; k++) {
                const Frame *f = &loc->frames[k];

                buf_printf(text, "#\t0x%" PRIx64 "\t", lpc);
                if (f->function) {
                        text_put_escaped(text, f->function, false);
                        if (loc->module_offset >= f->entry)     /* else a bogus entry */
                                buf_printf(text, "+0x%" PRIx64, loc->module_offset - f->entry);
                } else
                        put_module(text, loc);
                if (f->file) {
                        buf_putc(text, '\t');
                        text_put_escaped(text, f->file, false);
                        if (f->line > 0)
                                buf_printf(text, ":%" PRIu32, f->line);
                }
                buf_putc(text, '\n');
        }
}

void stack_write_debug1_frames(Buf *out, const Stack *s) {
        for (size_t i = 0; i < s->n; i++)
                debug1_frame_lines(out, &s->frames[i]);
        if (stack_is_truncated(s))
                buf_puts(out, "#\t\t[truncated]\n");
        else if (s->n == 0)
                buf_puts(out, "#\t[no stack]\n");
}

/* " (ns 7)": the thread's id in its container's pid namespace, when it has another. */
static void put_ns_tid(Buf *out, const ThreadRecord *t) {
        if (t->ns_tid > 0 && t->ns_tid != t->tid)
                buf_printf(out, " (ns %d)", (int) t->ns_tid);
}

void thread_write_ref(Buf *out, const ThreadRecord *t) {
        buf_printf(out, "%d", (int) t->tid);
        put_ns_tid(out, t);
        buf_puts(out, " \"");
        text_put_escaped(out, t->name, true);
        buf_putc(out, '"');
}

/* ---- waits ---- */

/* An object some threads wait on, with its holder: "holds" lines are made from these. */
typedef struct Held {
        size_t holder;                  /* index into the dump's threads */
        uint64_t object;
        size_t waiters;
        const ThreadWait *wait;         /* one waiter's, for the object's kind and name */
} Held;

typedef struct HeldIndex {
        Held *items;                    /* sorted by holder, then object */
        size_t n;
} HeldIndex;

static int held_cmp(const void *pa, const void *pb) {
        const Held *a = pa, *b = pb;
        if (a->holder != b->holder)
                return a->holder < b->holder ? -1 : 1;
        return cmp_u64(a->object, b->object);
}

static bool wait_has_holder(const ThreadWait *w) {
        return w && w->object.kind != WAIT_KIND_JOIN && thread_wait_is_edge(w);
}

static void held_index_build(const ThreadDump *d, HeldIndex *ret) {
        *ret = (HeldIndex) {};
        if (!d->waits)
                return;
        ret->items = xcalloc(d->n_threads, sizeof *ret->items);
        for (size_t i = 0; i < d->n_threads; i++) {
                const ThreadWait *w = d->threads[i].sync;
                if (wait_has_holder(w))
                        ret->items[ret->n++] = (Held) { .holder = w->holder_index, .object = w->object.address,
                                                        .waiters = 1, .wait = w };
        }
        qsort(ret->items, ret->n, sizeof *ret->items, held_cmp);
        size_t k = 0;
        for (size_t i = 0; i < ret->n; i++) {
                if (k > 0 && held_cmp(&ret->items[k - 1], &ret->items[i]) == 0)
                        ret->items[k - 1].waiters++;
                else
                        ret->items[k++] = ret->items[i];
        }
        ret->n = k;
}

/* Appends "PREFIXholds mutex &m, 3 threads waiting\n" for each object THREAD holds. */
static void put_holds(Buf *out, const HeldIndex *h, size_t thread, const char *prefix) {
        size_t lo = 0, hi = h->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h->items[mid].holder < thread)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t i = lo; i < h->n && h->items[i].holder == thread; i++) {
                _cleanup_buf_ Buf obj = {};
                ThreadWait held = *h->items[i].wait;
                /* A waiter may want the read side; a recorded holder has the write side. */
                if (held.object.kind == WAIT_KIND_RWLOCK_READ)
                        held.object.kind = WAIT_KIND_RWLOCK_WRITE;
                thread_wait_write_object(&held, &obj);
                buf_printf(out, "%sholds ", prefix);
                text_put_escaped(out, buf_str(&obj), false);
                buf_printf(out, ", %zu thread%s waiting\n", h->items[i].waiters, h->items[i].waiters == 1 ? "" : "s");
        }
}

/* The holder as debug=1 and the deadlock report name it: ` "NAME" in FUNC (S, 3 minutes)`. */
static void put_holder_where(Buf *out, const ThreadDump *d, const ThreadWait *w) {
        if (w->holder_index >= d->n_threads)
                return;
        const ThreadRecord *h = &d->threads[w->holder_index];
        char dbuf[32];
        buf_puts(out, " \"");
        text_put_escaped(out, h->name, true);
        buf_putc(out, '"');
        const Frame *top = h->error == 0 ? stack_top_user_frame(&h->stack) : NULL;
        if (top && top->function) {
                buf_puts(out, " in ");
                text_put_escaped(out, top->function, false);
        }
        const char *duration = format_wait_duration(h->wait_ns, dbuf, sizeof dbuf);
        if (h->state && h->state[0])
                buf_printf(out, " (%c%s%s)", h->state[0], duration[0] ? ", " : "", duration);
}

/* "mutex &m held by thread 1232" with the holder's whereabouts. */
void thread_wait_write_with_holder(Buf *out, const ThreadDump *d, const ThreadWait *w) {
        _cleanup_buf_ Buf text = {};
        thread_wait_write(w, &text);
        text_put_escaped(out, buf_str(&text), false);
        if (thread_wait_is_edge(w))
                put_holder_where(out, d, w);
}

static void debug1_waits(Buf *text, const ThreadDump *d, const Group *g, const HeldIndex *held) {
        /* Threads of one stack usually wait on one object: each distinct text once. */
        _cleanup_buf_ Buf seen = {};
        for (size_t i = 0; i < g->count; i++) {
                const ThreadWait *w = g->threads[i]->sync;
                if (!w)
                        continue;
                _cleanup_buf_ Buf line = {};
                buf_puts(&line, "# waiting for ");
                thread_wait_write_with_holder(&line, d, w);
                buf_putc(&line, '\n');
                if (seen.len > 0 && memmem(seen.data, seen.len, line.data, line.len))
                        continue;
                buf_append(&seen, line.data, line.len);
        }
        for (size_t i = 0; i < g->count; i++)
                put_holds(&seen, held, (size_t) (g->threads[i] - d->threads), "# ");
        buf_append(text, seen.data, seen.len);
}

static void put_user_frames(Buf *out, const Stack *s, size_t max, const char *prefix) {
        const Frame *top = stack_top_user_frame(s);
        bool printing = false;
        for (size_t i = 0; top && i < s->n && max > 0; i++) {
                const SymLoc *loc = s->frames[i].loc;
                for (size_t k = 0; loc && k < loc->n_frames && max > 0; k++) {
                        const Frame *f = &loc->frames[k];
                        printing = printing || f == top;
                        if (!printing || !stack_frame_is_user(loc, f))
                                continue;
                        buf_printf(out, "%s\tat ", prefix);
                        text_put_escaped(out, f->function ? f->function : "??", false);
                        if (f->file) {
                                buf_puts(out, " (");
                                text_put_escaped(out, f->file, false);
                                if (f->line > 0)
                                        buf_printf(out, ":%" PRIu32, f->line);
                                buf_putc(out, ')');
                        }
                        buf_putc(out, '\n');
                        max--;
                }
        }
}

#define DEADLOCK_USER_FRAMES 3

void thread_dump_write_deadlocks(const ThreadDump *d, const char *prefix, Buf *out) {
        size_t threads = 0;
        if (d->n_deadlocks == 0)
                return;
        for (size_t c = 0; c < d->n_deadlocks; c++)
                threads += d->deadlocks[c].n;
        buf_printf(out, "%sFound %zu deadlock%s (%zu thread%s):\n", prefix, d->n_deadlocks, d->n_deadlocks == 1 ? "" : "s",
                   threads, threads == 1 ? "" : "s");
        for (size_t c = 0; c < d->n_deadlocks; c++) {
                if (d->n_deadlocks > 1)
                        buf_printf(out, "%sdeadlock %zu (%zu thread%s):\n", prefix, c + 1, d->deadlocks[c].n,
                                   d->deadlocks[c].n == 1 ? "" : "s");
                for (size_t k = 0; k < d->deadlocks[c].n; k++) {
                        const ThreadRecord *t = &d->threads[d->deadlocks[c].threads[k]];
                        const ThreadWait *w = t->sync;
                        if (!w || w->holder_index >= d->n_threads)
                                continue;
                        const ThreadRecord *h = &d->threads[w->holder_index];
                        _cleanup_buf_ Buf obj = {};
                        thread_wait_write_object(w, &obj);
                        buf_printf(out, "%sthread ", prefix);
                        thread_write_ref(out, t);
                        buf_puts(out, " waits for ");
                        text_put_escaped(out, buf_str(&obj), false);
                        if (w->object.kind != WAIT_KIND_JOIN)
                                buf_printf(out, " held by thread %d", (int) h->tid);
                        buf_puts(out, " \"");
                        text_put_escaped(out, h->name, true);
                        buf_puts(out, "\"\n");
                        put_user_frames(out, &t->stack, DEADLOCK_USER_FRAMES, prefix);
                }
        }
        buf_putc(out, '\n');
}

static void debug1_record(Buf *text, const ThreadDump *d, const Group *g, const HeldIndex *held) {
        const ThreadRecord *t = g->threads[0];
        char ebuf[128];

        buf_printf(text, "%zu %s\n", g->count, g->key);

        buf_puts(text, "# threads:");
        for (size_t i = 0; i < g->count; i++) {
                buf_puts(text, i > 0 ? ", " : " ");
                thread_write_ref(text, g->threads[i]);
        }
        buf_putc(text, '\n');
        debug1_waits(text, d, g, held);

        if (t->error != 0)
                buf_printf(text, "#\t[not captured: %s]\n", errno_text(t->error, ebuf, sizeof ebuf));
        else
                stack_write_debug1_frames(text, &t->stack);

        buf_putc(text, '\n');
}

void thread_dump_write_debug1(const ThreadDump *d, Buf *out) {
        _cleanup_buf_ Buf text = {};
        _cleanup_free_ const ThreadRecord **sorted = xcalloc(d->n_threads, sizeof(*sorted));
        _cleanup_free_ Group *groups = xcalloc(d->n_threads, sizeof(*groups));
        size_t n_groups = 0;

        for (size_t i = 0; i < d->n_threads; i++)
                sorted[i] = &d->threads[i];
        qsort(sorted, d->n_threads, sizeof(*sorted), thread_group_cmp);

        for (size_t i = 0; i < d->n_threads; i++) {
                if (n_groups > 0 && thread_same_stack(groups[n_groups - 1].threads[0], sorted[i])) {
                        groups[n_groups - 1].count++;
                        continue;
                }
                groups[n_groups++] = (Group) {
                        .threads = &sorted[i],
                        .count = 1,
                        .key = group_key(sorted[i]),
                };
        }
        qsort(groups, n_groups, sizeof(*groups), group_cmp);

        /* The whole text goes through the tab writer at once, as Go's does: the "@" and
         * "# threads:" lines have no tab, so they end every column block, which makes the
         * alignment per record. */
        HeldIndex held;
        held_index_build(d, &held);
        /* As comments: Go's text parsers (pprof's) skip those before the header. */
        thread_dump_write_deadlocks(d, "# ", out);
        buf_printf(&text, "threads profile: total %zu\n", d->n_threads);
        for (size_t i = 0; i < n_groups; i++)
                debug1_record(&text, d, &groups[i], &held);
        tabwriter_format(text.data, text.len, out);
        free(held.items);

        for (size_t i = 0; i < n_groups; i++)
                free(groups[i].key);
}

/* ---- debug=2 ---- */

const char *format_wait_duration(uint64_t ns, char *buf, size_t size) {
        uint64_t s = ns / UINT64_C(1000000000);

        if (!buf || size == 0)
                return "";
        if (s >= 60)
                snprintf(buf, size, "%" PRIu64 " minutes", s / 60);   /* Go: always plural */
        else if (s >= 1)
                snprintf(buf, size, "%" PRIu64 " seconds", s);
        else
                buf[0] = 0;
        return buf;
}

static void debug2_header(Buf *out, const ThreadRecord *t) {
        char dbuf[32];
        _cleanup_buf_ Buf sync = {};
        const char *duration = format_wait_duration(t->wait_ns, dbuf, sizeof dbuf);
        if (t->sync)
                thread_wait_write(t->sync, &sync);
        const char *parts[] = { t->state, t->sync ? buf_str(&sync) : t->wait, duration[0] ? duration : NULL };
        bool any = false;

        buf_puts(out, "thread ");
        thread_write_ref(out, t);
        buf_puts(out, " [");
        for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
                if (!parts[i])
                        continue;
                if (any)
                        buf_puts(out, ", ");
                text_put_escaped(out, parts[i], false);
                any = true;
        }
        if (!any)
                buf_puts(out, "unknown");
        buf_puts(out, "]:\n");
}

/* Prints the entries of one physical frame, stopping at *budget; false when it ran out. */
static bool debug2_frame(Buf *out, const StackFrame *sf, size_t *budget) {
        const SymLoc *loc = sf->loc;
        uint64_t lpc = stack_frame_lookup_pc(sf);

        if (!loc || loc->n_frames == 0) {
                if (*budget == 0)
                        return false;
                (*budget)--;
                buf_puts(out, "?\?(...)\n\t");     /* "\?": not a trigraph */
                put_module(out, loc);
                buf_putc(out, '\n');
                return true;
        }

        /* The module-relative raw pc: Go's offsets count from the return address. */
        uint64_t raw = loc->module_offset + (sf->pc - lpc);

        for (size_t k = 0; k < loc->n_frames; k++) {
                const Frame *f = &loc->frames[k];

                if (*budget == 0)
                        return false;
                (*budget)--;

                text_put_escaped(out, f->function ? f->function : "??", false);
                buf_puts(out, "(...)\n\t");
                if (f->file) {
                        text_put_escaped(out, f->file, false);
                        if (f->line > 0)
                                buf_printf(out, ":%" PRIu32, f->line);
                        if (!f->inlined && raw > f->entry)
                                buf_printf(out, " +0x%" PRIx64, raw - f->entry);
                } else
                        put_module(out, loc);
                buf_putc(out, '\n');
        }
        return true;
}

static void debug2_thread(Buf *out, const ThreadDump *d, size_t index, const HeldIndex *held) {
        const ThreadRecord *t = &d->threads[index];
        char ebuf[128];

        debug2_header(out, t);
        put_holds(out, held, index, "");

        if (t->error != 0) {
                buf_printf(out, "[not captured: %s]\n", errno_text(t->error, ebuf, sizeof ebuf));
                return;
        }

        size_t budget = DEBUG2_MAX_FRAMES;
        for (size_t i = 0; i < t->stack.n; i++)
                if (!debug2_frame(out, &t->stack.frames[i], &budget)) {
                        buf_puts(out, "...additional frames elided...\n");
                        break;
                }

        if (stack_is_truncated(&t->stack))
                buf_printf(out, "[truncated]\n\t(%s)\n", stack_end_to_string(t->stack.end));
        else if (t->stack.n == 0)
                buf_puts(out, "[no stack]\n");
}

void thread_dump_write_debug2(const ThreadDump *d, Buf *out) {
        HeldIndex held;
        held_index_build(d, &held);
        thread_dump_write_deadlocks(d, "", out);
        for (size_t i = 0; i < d->n_threads; i++) {
                if (i > 0)
                        buf_putc(out, '\n');
                debug2_thread(out, d, i, &held);
        }
        free(held.items);
}
