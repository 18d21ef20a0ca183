/* profile/locks.c -- see locks.h. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "locks.h"
#include "macro.h"
#include "tabwriter.h"
#include "threads-internal.h"

typedef struct LockEntry {
        uint64_t address;
        size_t *waiters;                /* thread indices, ascending */
        size_t n_waiters;
        const ThreadWait *wait;         /* the first waiter's */
} LockEntry;

typedef struct LockList {
        LockEntry *items;
        size_t n;
        size_t *indices;                /* storage for every entry's waiters */
} LockList;

static int index_by_address_cmp(const void *a, const void *b, void *userdata) {
        const ThreadDump *d = userdata;
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        uint64_t ax = d->threads[x].sync->object.address, ay = d->threads[y].sync->object.address;
        if (ax != ay)
                return ax < ay ? -1 : 1;
        return x < y ? -1 : x > y;
}

static int entry_cmp(const void *a, const void *b) {
        const LockEntry *x = a, *y = b;
        if (x->n_waiters != y->n_waiters)
                return x->n_waiters > y->n_waiters ? -1 : 1;
        return x->address < y->address ? -1 : x->address > y->address;
}

static int lock_list_build(const ThreadDump *d, LockList *ret) {
        *ret = (LockList) {};
        ret->indices = calloc(MAX(d->n_threads, 1u), sizeof *ret->indices);
        ret->items = calloc(MAX(d->n_threads, 1u), sizeof *ret->items);
        if (!ret->indices || !ret->items) {
                free(ret->indices);
                free(ret->items);
                return -ENOMEM;
        }
        size_t n = 0;
        for (size_t i = 0; i < d->n_threads; i++)
                if (d->threads[i].sync)
                        ret->indices[n++] = i;
        qsort_r(ret->indices, n, sizeof *ret->indices, index_by_address_cmp, (void *) d);
        for (size_t i = 0; i < n; i++) {
                const ThreadWait *w = d->threads[ret->indices[i]].sync;
                LockEntry *last = ret->n > 0 ? &ret->items[ret->n - 1] : NULL;
                if (last && last->address == w->object.address) {
                        last->n_waiters++;
                        continue;
                }
                ret->items[ret->n++] = (LockEntry) { .address = w->object.address, .waiters = &ret->indices[i],
                                                     .n_waiters = 1, .wait = w };
        }
        qsort(ret->items, ret->n, sizeof *ret->items, entry_cmp);
        return 0;
}

static void lock_list_done(LockList *l) {
        free(l->items);
        free(l->indices);
}

size_t locks_count(const ThreadDump *d) {
        LockList l;
        if (lock_list_build(d, &l) < 0)
                return 0;
        size_t n = l.n;
        lock_list_done(&l);
        return n;
}

/* ---- debug=1 ---- */

static void put_thread_ref(Buf *out, const ThreadRecord *t) {
        buf_putc(out, ' ');
        thread_write_ref(out, t);
        char dbuf[32];
        const char *duration = format_wait_duration(t->wait_ns, dbuf, sizeof dbuf);
        if (duration[0])
                buf_printf(out, " %s", duration);
}

/* The threads THREADS[0..N) of D as debug=1 records, one per distinct stack (in their
 * order of first appearance). */
static void put_records(Buf *out, const ThreadDump *d, const size_t *threads, size_t n) {
        bool *done = calloc(MAX(n, 1u), sizeof *done);
        if (!done)
                return;
        for (size_t i = 0; i < n; i++) {
                if (done[i])
                        continue;
                const ThreadRecord *t = &d->threads[threads[i]];
                size_t count = 0;
                for (size_t j = i; j < n; j++)
                        count += !done[j] && thread_same_stack(t, &d->threads[threads[j]]);
                buf_printf(out, "%zu ", count);
                stack_write_debug1_key(out, t->error == 0 ? &t->stack : NULL);
                buf_puts(out, "\n# threads:");
                bool first = true;
                for (size_t j = i; j < n; j++) {
                        if (done[j] || !thread_same_stack(t, &d->threads[threads[j]]))
                                continue;
                        done[j] = true;
                        if (!first)
                                buf_putc(out, ',');
                        first = false;
                        put_thread_ref(out, &d->threads[threads[j]]);
                }
                buf_putc(out, '\n');
                if (t->error == 0)
                        stack_write_debug1_frames(out, &t->stack);
                else
                        buf_puts(out, "#\t[not captured]\n");
        }
        free(done);
}

void locks_write_debug1(const ThreadDump *d, Buf *out) {
        LockList l;
        if (lock_list_build(d, &l) < 0)
                return;
        _cleanup_buf_ Buf text = {};
        thread_dump_write_deadlocks(d, "", out);
        buf_printf(&text, "locks profile: total %zu\n", l.n);
        for (size_t i = 0; i < l.n; i++) {
                const LockEntry *e = &l.items[i];
                buf_putc(&text, '\n');
                thread_wait_write_with_holder(&text, d, e->wait);
                buf_printf(&text, "; %zu waiting\n", e->n_waiters);
                if (thread_wait_is_edge(e->wait) && e->wait->object.kind != WAIT_KIND_JOIN) {
                        buf_puts(&text, "# holder:\n");
                        put_records(&text, d, &e->wait->holder_index, 1);
                }
                buf_puts(&text, "# waiting:\n");
                put_records(&text, d, e->waiters, e->n_waiters);
        }
        tabwriter_format(text.data, text.len, out);
        lock_list_done(&l);
}

/* ---- json ---- */

static void json_thread(Buf *out, const ThreadRecord *t) {
        buf_printf(out, "{\"tid\":%d,\"ns_tid\":%d,\"name\":", (int) t->tid, (int) (t->ns_tid > 0 ? t->ns_tid : t->tid));
        json_put_string(out, t->name);
        buf_puts(out, ",\"state\":");
        json_put_string(out, t->state);
        buf_printf(out, ",\"wait_seconds\":%.3f,\"top_function\":", (double) t->wait_ns / 1e9);
        const Frame *top = t->error == 0 ? stack_top_user_frame(&t->stack) : NULL;
        json_put_string(out, top ? top->function : NULL);
        buf_puts(out, ",\"stack\":[");
        bool first = true;
        for (size_t i = 0; t->error == 0 && i < t->stack.n; i++) {
                const SymLoc *loc = t->stack.frames[i].loc;
                size_t levels = loc ? MAX(loc->n_frames, (size_t) 1) : 1;
                for (size_t k = 0; k < levels; k++) {
                        const Frame *f = loc && k < loc->n_frames ? &loc->frames[k] : NULL;
                        buf_puts(out, first ? "{" : ",{");
                        first = false;
                        buf_printf(out, "\"pc\":\"%#" PRIx64 "\",\"function\":", stack_frame_lookup_pc(&t->stack.frames[i]));
                        json_put_string(out, f ? f->function : NULL);
                        buf_puts(out, ",\"file\":");
                        json_put_string(out, f ? f->file : NULL);
                        buf_printf(out, ",\"line\":%" PRIu32 ",\"module\":", f ? f->line : 0);
                        json_put_string(out, loc ? loc->module : NULL);
                        buf_printf(out, ",\"inlined\":%s}", f && f->inlined ? "true" : "false");
                }
        }
        buf_printf(out, "],\"truncated\":%s}", t->error == 0 && stack_is_truncated(&t->stack) ? "true" : "false");
}

static const char *holder_status(const ThreadWait *w) {
        switch (w->object.holder) {
        case WAIT_HOLDER_NONE: return "none";
        case WAIT_HOLDER_NOT_RECORDED: return "not recorded";
        case WAIT_HOLDER_READERS: return "readers";
        case WAIT_HOLDER_THREAD:
                return w->orphaned ? "orphaned" : w->holder_tid > 0 ? "thread" : "unknown";
        case WAIT_HOLDER_UNKNOWN: break;
        }
        return "unknown";
}

void locks_write_json(const ThreadDump *d, Buf *out) {
        LockList l;
        if (lock_list_build(d, &l) < 0)
                return;
        char when[64] = "";
        time_t sec = (time_t) (d->time_ns / 1000000000u);
        struct tm tm;
        if (gmtime_r(&sec, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        buf_printf(out, "{\"pid\":%d,\"time\":\"%s\",\"partial\":%s,\"deadlocks\":[", (int) d->pid, when,
                   d->partial ? "true" : "false");
        for (size_t c = 0; c < d->n_deadlocks; c++) {
                buf_puts(out, c > 0 ? ",[" : "[");
                for (size_t k = 0; k < d->deadlocks[c].n; k++) {
                        if (k > 0)
                                buf_putc(out, ',');
                        json_thread(out, &d->threads[d->deadlocks[c].threads[k]]);
                }
                buf_putc(out, ']');
        }
        buf_puts(out, "],\"locks\":[");
        for (size_t i = 0; i < l.n; i++) {
                const LockEntry *e = &l.items[i];
                const ThreadWait *w = e->wait;
                _cleanup_buf_ Buf kind = {}, text = {};
                wait_object_write_kind(&w->object, &kind);
                thread_wait_write(w, &text);
                buf_puts(out, i > 0 ? ",{\"kind\":" : "{\"kind\":");
                json_put_string(out, buf_str(&kind));
                buf_puts(out, ",\"name\":");
                json_put_string(out, w->name);
                buf_printf(out, ",\"address\":\"%#" PRIx64 "\",\"text\":", e->address);
                json_put_string(out, buf_str(&text));
                buf_puts(out, ",\"holder_status\":");
                json_put_string(out, holder_status(w));
                buf_puts(out, ",\"holder\":");
                if (thread_wait_is_edge(w))
                        json_thread(out, &d->threads[w->holder_index]);
                else if (w->object.holder == WAIT_HOLDER_THREAD && w->holder_tid > 0 && !w->orphaned)
                        buf_printf(out, "{\"tid\":%d,\"pid\":%d}", (int) w->holder_tid,
                                   (int) (w->holder_pid > 0 ? w->holder_pid : d->pid));
                else
                        buf_puts(out, "null");
                if (w->object.holder == WAIT_HOLDER_THREAD && w->orphaned)
                        buf_printf(out, ",\"orphaned_owner\":%d", (int) w->object.owner);
                buf_printf(out, ",\"readers\":%u,\"waiters\":[", w->object.holder == WAIT_HOLDER_READERS ?
                           w->object.readers : 0);
                for (size_t k = 0; k < e->n_waiters; k++) {
                        if (k > 0)
                                buf_putc(out, ',');
                        json_thread(out, &d->threads[e->waiters[k]]);
                }
                buf_puts(out, "]}");
        }
        buf_puts(out, "]}\n");
        lock_list_done(&l);
}
