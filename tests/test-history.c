/* tests/test-history.c -- unit tests of profile/history.c on hand-built thread dumps: wait
 * times (grow while nothing changes, reset when the stack, state or wait changes or a tid
 * is reused), growth (ranking, deltas, windows, exact text, the pprof profile through the
 * encoder and decoder), the bounds (snapshot count, memory budget, memory flat over 10,000
 * changing snapshots) and the caps on hostile input. No process and no I/O, except that
 * `go tool pprof`, when installed, judges the growth text and profile. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "buf.h"
#include "clock.h"
#include "frame.h"
#include "history.h"
#include "macro.h"
#include "pprof.h"
#include "threads.h"
#include "symloc-fixture.h"
#include "tiny-test.h"

/* ---- helpers ---- */

#define APP "/usr/bin/app"
#define LIBC "/lib/libc.so.6"
#define BASE UINT64_C(0x555555554000)
#define SEC NSEC_PER_SEC

#define ASSERT_TEXT(got, want)                                                  \
        do {                                                                    \
                const char *_g = (got), *_w = (want);                           \
                if (strcmp(_g, _w) != 0)                                        \
                        TINY_FAIL("text differs.\n--- want\n%s--- got\n%s---", _w, _g); \
        } while (0)

/* Three stacks of a small program: blocked in write() (under send_result, producer), in
 * nanosleep (under worker), and in pause (under main). */
typedef struct Fix {
        const SymLoc *write, *send, *producer, *sleep, *worker, *pause, *main, *nosym;
        StackFrame leak[3], sleeper[3], idle[2];
        Stack s_leak, s_sleeper, s_idle;
} Fix;

static void fix_init(Fix *x) {
        const Frame write_f[] = { { .function = "__libc_write", .file = "write.c", .line = 26, .entry = 0xf9340 } };
        const Frame send_f[] = {
                { .function = "send_inlined", .file = "/src/leak.c", .line = 44, .entry = 0x1500, .inlined = true },
                { .function = "send_result", .file = "/src/leak.c", .line = 45, .entry = 0x1500 },
        };
        const Frame producer_f[] = { { .function = "producer", .file = "/src/leak.c", .line = 51, .entry = 0x1560 } };
        const Frame sleep_f[] = { { .function = "__nanosleep", .entry = 0xe4e40 } };
        const Frame worker_f[] = { { .function = "worker", .file = "/src/leak.c", .line = 87, .entry = 0x1640 } };
        const Frame pause_f[] = { { .function = "pause", .file = "pause.c", .line = 29, .entry = 0xe4dc0 } };
        const Frame main_f[] = { { .function = "main", .file = "/src/leak.c", .line = 167, .entry = 0x11a0 } };

        *x = (Fix) {};
        x->write = symloc(LIBC, 0xf938f, 1, write_f);
        x->send = symloc(APP, 0x151f, 2, send_f);
        x->producer = symloc(APP, 0x1568, 1, producer_f);
        x->sleep = symloc(LIBC, 0xe4e52, 1, sleep_f);
        x->worker = symloc(APP, 0x1708, 1, worker_f);
        x->pause = symloc(LIBC, 0xe4df2, 1, pause_f);
        x->main = symloc(APP, 0x1384, 1, main_f);
        x->nosym = symloc(APP, 0x9000, 0, NULL);

        x->leak[0] = (StackFrame) { .pc = 0x7ffff7cf938f, .exact = true, .loc = x->write };
        x->leak[1] = (StackFrame) { .pc = BASE + 0x1520, .loc = x->send };
        x->leak[2] = (StackFrame) { .pc = BASE + 0x1569, .loc = x->producer };
        x->sleeper[0] = (StackFrame) { .pc = 0x7ffff7ce4e52, .exact = true, .loc = x->sleep };
        x->sleeper[1] = (StackFrame) { .pc = BASE + 0x1709, .loc = x->worker };
        x->sleeper[2] = (StackFrame) { .pc = BASE + 0x9001, .loc = x->nosym };
        x->idle[0] = (StackFrame) { .pc = 0x7ffff7ce4df2, .exact = true, .loc = x->pause };
        x->idle[1] = (StackFrame) { .pc = BASE + 0x1385, .loc = x->main };
        x->s_leak = (Stack) { x->leak, 3, STACK_END_COMPLETE };
        x->s_sleeper = (Stack) { x->sleeper, 3, STACK_END_ZERO_PC };
        x->s_idle = (Stack) { x->idle, 2, STACK_END_COMPLETE };
}

static History *new_history(const HistoryLimits *l) {
        History *h = NULL;
        ASSERT_EQ(history_new(l, &h), 0);
        ASSERT_TRUE(h);
        return h;
}

static ThreadRecord rec(pid_t tid, const char *name, const char *state, const char *wait, Stack s) {
        return (ThreadRecord) { .tid = tid, .name = name, .state = state, .wait = wait, .stack = s };
}

static ThreadDump dump_of(ThreadRecord *t, size_t n, uint64_t time_ns) {
        return (ThreadDump) { .pid = t[0].tid, .time_ns = time_ns, .threads = t, .n_threads = n };
}

/* A dump of COUNT threads on STACK from tid FIRST, in a caller's array. */
static void fill(ThreadRecord *t, size_t count, pid_t first, const char *name, Stack s) {
        for (size_t i = 0; i < count; i++)
                t[i] = rec(first + (pid_t) i, name, "S (sleeping)", "futex", s);
}

static HistoryStats stats(const History *h) {
        HistoryStats st;
        history_get_stats(h, &st);
        return st;
}

/* ---- waits ---- */

TEST(wait_grows_while_stack_state_and_wait_stay) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[3] = {
                rec(10, "main", "S (sleeping)", "pause", x.s_idle),
                rec(11, "worker", "S (sleeping)", "clock_nanosleep", x.s_sleeper),
                rec(12, "producer", "S (sleeping)", "write", x.s_leak),
        };
        ThreadDump d = dump_of(t, 3, 1700000000 * SEC);
        HistoryThreadInfo info[3] = { { 100, 'S' }, { 101, 'S' }, { 102, 0 } };
        uint64_t w[3] = { 7, 7, 7 };

        ASSERT_EQ(history_add(h, &d, info, 5 * SEC, w), 0);
        ASSERT_EQ(w[0], 0);
        ASSERT_EQ(w[1], 0);
        ASSERT_EQ(w[2], 0);

        ASSERT_EQ(history_add(h, &d, info, 15 * SEC, w), 0);
        ASSERT_EQ(w[0], 10 * SEC);
        ASSERT_EQ(w[1], 10 * SEC);
        ASSERT_EQ(w[2], 10 * SEC);

        /* Same time again is allowed (two dumps in one tick). */
        ASSERT_EQ(history_add(h, &d, info, 15 * SEC, w), 0);
        ASSERT_EQ(w[2], 10 * SEC);

        ASSERT_EQ(history_add(h, &d, info, 305 * SEC + 7, w), 0);
        ASSERT_EQ(w[0], 300 * SEC + 7);

        /* The debug=2 header prints it, Go's way. */
        history_fill_wait_ns(h, &d, info, 305 * SEC + 7);
        ASSERT_EQ(t[0].wait_ns, 300 * SEC + 7);
        _cleanup_buf_ Buf out = {};
        thread_dump_write_debug2(&d, &out);
        ASSERT_CONTAINS(out.data, "thread 10 \"main\" [S (sleeping), pause, 5 minutes]:\npause(...)\n");
        ASSERT_CONTAINS(out.data, "thread 12 \"producer\" [S (sleeping), write, 5 minutes]:\n");

        ASSERT_EQ(stats(h).snapshots, 4);
        ASSERT_EQ(stats(h).stacks, 3);
        ASSERT_EQ(stats(h).threads, 12);
        ASSERT_EQ(stats(h).span_ns, 300 * SEC + 7);
        free_symlocs();
}

TEST(wait_resets_when_stack_state_or_wait_changes) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[1] = { rec(10, "a", "S (sleeping)", "futex", x.s_idle) };
        ThreadDump d = dump_of(t, 1, 0);
        uint64_t w;

        ASSERT_EQ(history_add(h, &d, NULL, 0, &w), 0);
        ASSERT_EQ(history_add(h, &d, NULL, 10 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);

        /* A rename keeps the wait: only stack, state and wait count. */
        t[0].name = "renamed";
        ASSERT_EQ(history_add(h, &d, NULL, 20 * SEC, &w), 0);
        ASSERT_EQ(w, 20 * SEC);

        /* Another stack: from now. */
        t[0].stack = x.s_leak;
        ASSERT_EQ(history_add(h, &d, NULL, 30 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        ASSERT_EQ(history_add(h, &d, NULL, 40 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);

        /* The same pcs, truncated: another stack. */
        t[0].stack.end = STACK_END_COPY;
        ASSERT_EQ(history_add(h, &d, NULL, 50 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        t[0].stack.end = STACK_END_COMPLETE;
        ASSERT_EQ(history_add(h, &d, NULL, 60 * SEC, &w), 0);
        ASSERT_EQ(w, 0);

        /* Another state (from the state string when no info says). */
        t[0].state = "R (running)";
        ASSERT_EQ(history_add(h, &d, NULL, 70 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        ASSERT_EQ(history_add(h, &d, NULL, 80 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);
        HistoryThreadInfo info = { .state = 'D' };
        ASSERT_EQ(history_add(h, &d, &info, 90 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        t[0].state = "D (disk sleep)";
        ASSERT_EQ(history_add(h, &d, NULL, 100 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);

        /* Another wait, and no wait at all. */
        t[0].wait = "read";
        ASSERT_EQ(history_add(h, &d, NULL, 110 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        t[0].wait = NULL;
        ASSERT_EQ(history_add(h, &d, NULL, 120 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        ASSERT_EQ(history_add(h, &d, NULL, 130 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);

        /* Not captured: unknown, and the count starts over. */
        t[0].error = -ESRCH;
        ASSERT_EQ(history_add(h, &d, NULL, 140 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        t[0].error = 0;
        ASSERT_EQ(history_add(h, &d, NULL, 150 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        ASSERT_EQ(history_add(h, &d, NULL, 160 * SEC, &w), 0);
        ASSERT_EQ(w, 10 * SEC);

        /* A frame flag is part of the stack too (it changes what debug=1 prints). */
        StackFrame f[2] = { x.idle[0], x.idle[1] };
        f[0].exact = false;
        t[0].stack = (Stack) { f, 2, STACK_END_COMPLETE };
        ASSERT_EQ(history_add(h, &d, NULL, 170 * SEC, &w), 0);
        ASSERT_EQ(w, 0);
        free_symlocs();
}

TEST(wait_resets_for_a_reused_tid) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[2] = {
                rec(10, "a", "S (sleeping)", "futex", x.s_idle),
                rec(11, "b", "S (sleeping)", "futex", x.s_idle),
        };
        ThreadDump d = dump_of(t, 2, 0);
        HistoryThreadInfo info[2] = { { 500, 'S' }, { 501, 'S' } };
        uint64_t w[2];

        ASSERT_EQ(history_add(h, &d, info, 0, w), 0);
        ASSERT_EQ(history_add(h, &d, info, 60 * SEC, w), 0);
        ASSERT_EQ(w[0], 60 * SEC);
        ASSERT_EQ(w[1], 60 * SEC);

        /* Thread 11 exited and its tid went to a new thread, same place, same state. */
        info[1].start_time_ticks = 9000;
        ASSERT_EQ(history_add(h, &d, info, 120 * SEC, w), 0);
        ASSERT_EQ(w[0], 120 * SEC);
        ASSERT_EQ(w[1], 0);
        ASSERT_EQ(history_add(h, &d, info, 130 * SEC, w), 0);
        ASSERT_EQ(w[1], 10 * SEC);

        /* A thread missing from one snapshot starts over when it reappears. */
        ASSERT_EQ(history_add(h, &d, info, 140 * SEC, NULL), 0);
        d.n_threads = 1;
        ASSERT_EQ(history_add(h, &d, info, 150 * SEC, w), 0);
        d.n_threads = 2;
        ASSERT_EQ(history_add(h, &d, info, 160 * SEC, w), 0);
        ASSERT_EQ(w[0], 160 * SEC);
        ASSERT_EQ(w[1], 0);
        free_symlocs();
}

TEST(wait_of_an_unsorted_dump_is_parallel_to_it) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[3] = {
                rec(30, "c", "S (sleeping)", "futex", x.s_leak),
                rec(10, "a", "S (sleeping)", "futex", x.s_idle),
                rec(20, "b", "S (sleeping)", "futex", x.s_sleeper),
        };
        ThreadDump d = dump_of(t, 3, 0);
        uint64_t w[3];

        ASSERT_EQ(history_add(h, &d, NULL, 0, w), 0);
        t[1].stack = x.s_leak;          /* tid 10 moves */
        ASSERT_EQ(history_add(h, &d, NULL, 10 * SEC, w), 0);
        ASSERT_EQ(w[0], 10 * SEC);
        ASSERT_EQ(w[1], 0);
        ASSERT_EQ(w[2], 10 * SEC);

        /* A sorted dump of the same threads sees the same. */
        ThreadRecord s[3] = { t[1], t[2], t[0] };
        ThreadDump ds = dump_of(s, 3, 0);
        ASSERT_EQ(history_add(h, &ds, NULL, 20 * SEC, w), 0);
        ASSERT_EQ(w[0], 10 * SEC);
        ASSERT_EQ(w[1], 20 * SEC);
        ASSERT_EQ(w[2], 20 * SEC);
        free_symlocs();
}

TEST(fill_wait_ns_peeks_without_adding) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[3] = {
                rec(10, "a", "S (sleeping)", "futex", x.s_idle),
                rec(11, "b", "S (sleeping)", "futex", x.s_leak),
                rec(12, "c", "S (sleeping)", "futex", x.s_sleeper),
        };
        ThreadDump d = dump_of(t, 3, 0);

        /* Nothing known yet: every wait is unknown. */
        t[0].wait_ns = 5;
        history_fill_wait_ns(h, &d, NULL, 0);
        ASSERT_EQ(t[0].wait_ns, 0);

        ASSERT_EQ(history_add(h, &d, NULL, 0, NULL), 0);
        ASSERT_EQ(history_add(h, &d, NULL, 30 * SEC, NULL), 0);

        /* A request's own dump, 5 s after the last periodic one: 11 moved, 12 has a new
         * wait, 10 is still there. */
        t[1].stack = x.s_idle;
        t[2].wait = "poll";
        history_fill_wait_ns(h, &d, NULL, 35 * SEC);
        ASSERT_EQ(t[0].wait_ns, 35 * SEC);
        ASSERT_EQ(t[1].wait_ns, 0);
        ASSERT_EQ(t[2].wait_ns, 0);
        ASSERT_EQ(stats(h).snapshots, 2);

        /* After adding it, the same answers (it is now the newest). */
        uint64_t w[3];
        ASSERT_EQ(history_add(h, &d, NULL, 35 * SEC, w), 0);
        history_fill_wait_ns(h, &d, NULL, 35 * SEC);
        for (size_t i = 0; i < 3; i++)
                ASSERT_EQ(t[i].wait_ns, w[i]);

        /* A stack never seen matches nothing. */
        StackFrame f = { .pc = 0x1234, .exact = true, .loc = x.nosym };
        t[0].stack = (Stack) { &f, 1, STACK_END_COMPLETE };
        history_fill_wait_ns(h, &d, NULL, 40 * SEC);
        ASSERT_EQ(t[0].wait_ns, 0);
        ASSERT_EQ(t[1].wait_ns, 5 * SEC);
        free_symlocs();
}

TEST(bad_arguments) {
        Fix x;
        fix_init(&x);
        History *bad = NULL;
        HistoryLimits l = history_limits_default;
        l.max_snapshots = 0;
        ASSERT_EQ(history_new(&l, &bad), -EINVAL);
        ASSERT_TRUE(!bad);
        ASSERT_TRUE(!history_free(NULL));

        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[1] = { rec(10, "a", "S (sleeping)", "futex", x.s_idle) };
        ThreadDump d = dump_of(t, 1, 0);
        ThreadDump broken = { .n_threads = 3 };

        ASSERT_EQ(history_add(NULL, &d, NULL, 0, NULL), -EINVAL);
        ASSERT_EQ(history_add(h, NULL, NULL, 0, NULL), -EINVAL);
        ASSERT_EQ(history_add(h, &broken, NULL, 0, NULL), -EINVAL);

        /* An empty history has nothing to compare. */
        int64_t delta = 99;
        HistoryGrowth *g = NULL;
        ASSERT_EQ(history_thread_count_change(h, UINT64_MAX, &delta, NULL), -ENODATA);
        ASSERT_EQ(delta, 99);
        ASSERT_EQ(history_growth(h, UINT64_MAX, &g), -ENODATA);
        ASSERT_TRUE(!g);

        /* Time does not go back. */
        ASSERT_EQ(history_add(h, &d, NULL, 10 * SEC, NULL), 0);
        uint64_t w = 99;
        ASSERT_EQ(history_add(h, &d, NULL, 9 * SEC, &w), -EINVAL);
        ASSERT_EQ(w, 99);
        ASSERT_EQ(stats(h).snapshots, 1);

        /* An empty dump is a snapshot with no threads. */
        ThreadDump empty = {};
        ASSERT_EQ(history_add(h, &empty, NULL, 11 * SEC, NULL), 0);
        ASSERT_EQ(history_thread_count_change(h, UINT64_MAX, &delta, NULL), 0);
        ASSERT_EQ(delta, -1);

        HistoryStats st;
        history_get_stats(NULL, &st);
        ASSERT_EQ(st.snapshots, 0);
        ASSERT_EQ(history_memory_bytes(NULL), 0);
        free_symlocs();
}

/* ---- growth ---- */

/* Base: 2 leak, 5 sleeper, 1 idle, 1 not captured. Newest (60 s later): 10 leak, 5
 * sleeper, 4 idle, 3 on the leak stack truncated, 2 not captured. */
static History *growth_history(Fix *x) {
        History *h = new_history(NULL);
        ThreadRecord t[32];
        size_t n = 0;

        fill(t + n, 2, 100, "producer", x->s_leak), n += 2;
        fill(t + n, 5, 200, "worker", x->s_sleeper), n += 5;
        fill(t + n, 1, 300, "main", x->s_idle), n += 1;
        t[n] = rec(400, "gone", NULL, NULL, (Stack) {}), t[n++].error = -ESRCH;
        ThreadDump d = dump_of(t, n, 1700000000 * SEC);
        ASSERT_EQ(history_add(h, &d, NULL, 1000 * SEC, NULL), 0);

        n = 0;
        fill(t + n, 10, 100, "producer", x->s_leak), n += 10;
        fill(t + n, 5, 200, "worker", x->s_sleeper), n += 5;
        fill(t + n, 4, 300, "main", x->s_idle), n += 4;
        fill(t + n, 3, 310, "producer", x->s_leak), n += 3;
        for (size_t i = n - 3; i < n; i++)
                t[i].stack.end = STACK_END_DEPTH;
        t[n] = rec(400, "gone", NULL, NULL, (Stack) {}), t[n++].error = -ESRCH;
        t[n] = rec(401, "gone", NULL, NULL, (Stack) {}), t[n++].error = -EPERM;
        d = dump_of(t, n, 1700000060 * SEC);
        ASSERT_EQ(history_add(h, &d, NULL, 1060 * SEC, NULL), 0);
        return h;
}

TEST(growth_ranks_groups_that_grew) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = growth_history(&x);
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;

        ASSERT_EQ(history_growth(h, UINT64_MAX, &g), 0);
        ASSERT_EQ(g->time_ns, 1700000060 * SEC);
        ASSERT_EQ(g->window_ns, 60 * SEC);
        ASSERT_EQ(g->threads_before, 9);
        ASSERT_EQ(g->threads_after, 24);
        ASSERT_EQ(g->n_groups, 3);
        ASSERT_EQ(g->total, 8 + 3 + 3);

        ASSERT_EQ(g->groups[0].delta, 8);
        ASSERT_EQ(g->groups[0].count, 10);
        ASSERT_EQ(g->groups[0].stack.n, 3);
        ASSERT_EQ(g->groups[0].stack.end, STACK_END_COMPLETE);
        /* The copy is the stack as added: pcs, flags, SymLocs. */
        for (size_t i = 0; i < 3; i++) {
                ASSERT_EQ(g->groups[0].stack.frames[i].pc, x.leak[i].pc);
                ASSERT_EQ(g->groups[0].stack.frames[i].exact, x.leak[i].exact);
                ASSERT_TRUE(g->groups[0].stack.frames[i].loc == x.leak[i].loc);
        }
        /* A tie at 3, broken by the pcs: pause's leaf (0x7ffff7ce4df2) before write's
         * (0x7ffff7cf938f), whose truncated stack is a group of its own. */
        ASSERT_EQ(g->groups[1].delta, 3);
        ASSERT_EQ(g->groups[1].count, 4);
        ASSERT_EQ(g->groups[1].stack.frames[0].pc, x.idle[0].pc);
        ASSERT_TRUE(g->groups[1].stack.frames[1].loc == x.main);
        ASSERT_EQ(g->groups[2].delta, 3);
        ASSERT_EQ(g->groups[2].count, 3);
        ASSERT_EQ(g->groups[2].stack.frames[0].pc, x.leak[0].pc);
        ASSERT_EQ(g->groups[2].stack.end, STACK_END_DEPTH);
        ASSERT_NE(g->groups[2].stack_id, g->groups[0].stack_id);

        /* The result outlives the history. */
        h = history_free(h);
        ASSERT_EQ(g->groups[1].stack.frames[1].pc, BASE + 0x1385);

        /* The other way round, nothing grew. */
        _cleanup_(history_freep) History *h2 = new_history(NULL);
        ThreadRecord t[4];
        fill(t, 4, 1, "x", x.s_idle);
        ThreadDump d = dump_of(t, 4, 0);
        ASSERT_EQ(history_add(h2, &d, NULL, 0, NULL), 0);
        d.n_threads = 2;
        ASSERT_EQ(history_add(h2, &d, NULL, SEC, NULL), 0);
        _cleanup_(history_growth_freep) HistoryGrowth *g2 = NULL;
        ASSERT_EQ(history_growth(h2, UINT64_MAX, &g2), 0);
        ASSERT_EQ(g2->n_groups, 0);
        ASSERT_EQ(g2->total, 0);
        _cleanup_buf_ Buf out = {};
        history_growth_write_text(g2, &out);
        ASSERT_TEXT(out.data, "threadgrowth profile: total 0\n# window: 1s, threads 4 -> 2 (-2)\n");
        free_symlocs();
}

TEST(growth_and_count_change_over_windows) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = new_history(NULL);
        ThreadRecord t[20];
        const size_t counts[] = { 1, 5, 10, 20 };

        for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
                fill(t, counts[k], 1, "producer", x.s_leak);
                ThreadDump d = dump_of(t, counts[k], 0);
                ASSERT_EQ(history_add(h, &d, NULL, (100 + 60 * k) * SEC, NULL), 0);
        }

        const struct {
                uint64_t window;
                int64_t delta;
                uint64_t covered;
        } cases[] = {
                { UINT64_MAX, 19, 180 * SEC },
                { 180 * SEC, 19, 180 * SEC },
                { 180 * SEC - 1, 15, 120 * SEC },
                { 120 * SEC, 15, 120 * SEC },
                { 100 * SEC, 10, 60 * SEC },
                { 60 * SEC, 10, 60 * SEC },
                { 59 * SEC, 0, 0 },
                { 0, 0, 0 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int64_t delta;
                uint64_t covered;
                ASSERT_EQ(history_thread_count_change(h, cases[i].window, &delta, &covered), 0);
                ASSERT_EQ(delta, cases[i].delta);
                ASSERT_EQ(covered, cases[i].covered);

                _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
                ASSERT_EQ(history_growth(h, cases[i].window, &g), 0);
                ASSERT_EQ(g->window_ns, cases[i].covered);
                ASSERT_EQ(g->total, cases[i].delta);
                ASSERT_EQ(g->n_groups, cases[i].delta > 0);
        }

        /* "+19 in 3m", as the index says it. */
        int64_t delta;
        uint64_t covered;
        char b[32], line[64];
        ASSERT_EQ(history_thread_count_change(h, UINT64_MAX, &delta, &covered), 0);
        snprintf(line, sizeof line, "%+" PRId64 " in %s", delta, format_short_duration(covered, b, sizeof b));
        ASSERT_STREQ(line, "+19 in 3m");
        free_symlocs();
}

TEST(growth_text_is_debug1_shaped) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = growth_history(&x);
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        _cleanup_buf_ Buf out = {};

        ASSERT_EQ(history_growth(h, UINT64_MAX, &g), 0);
        buf_puts(&out, "kept:");
        history_growth_write_text(g, &out);
        ASSERT_TEXT(out.data,
                "kept:threadgrowth profile: total 14\n"
                "# window: 1m0s, threads 9 -> 24 (+15)\n"
                "8 @ 0x7ffff7cf938f 0x555555555520 0x555555555569\n"
                "#\t0x7ffff7cf938f\t__libc_write+0x4f\twrite.c:26\n"
                "#\t0x55555555551f\tsend_inlined+0x1f\t/src/leak.c:44\n"
                "#\t0x55555555551f\tsend_result+0x1f\t/src/leak.c:45\n"
                "#\t0x555555555568\tproducer+0x8\t\t/src/leak.c:51\n"
                "\n"
                "3 @ 0x7ffff7ce4df2 0x555555555385\n"
                "#\t0x7ffff7ce4df2\tpause+0x32\tpause.c:29\n"
                "#\t0x555555555384\tmain+0x1e4\t/src/leak.c:167\n"
                "\n"
                "3 @ 0x7ffff7cf938f 0x555555555520 0x555555555569\n"
                "#\t0x7ffff7cf938f\t__libc_write+0x4f\twrite.c:26\n"
                "#\t0x55555555551f\tsend_inlined+0x1f\t/src/leak.c:44\n"
                "#\t0x55555555551f\tsend_result+0x1f\t/src/leak.c:45\n"
                "#\t0x555555555568\tproducer+0x8\t\t/src/leak.c:51\n"
                "#\t\t\t[truncated]\n"
                "\n");

        /* Each record is debug=1's record of the same threads, less its "# threads:" line:
         * the frame lines come from the same code. */
        ThreadRecord t[8];
        fill(t, 8, 100, "producer", x.s_leak);
        ThreadDump d = dump_of(t, 8, 0);
        _cleanup_buf_ Buf d1 = {};
        thread_dump_write_debug1(&d, &d1);
        const char *rec1 = strstr(d1.data, "#\t0x");
        const char *ours = strstr(out.data, "#\t0x");
        ASSERT_TRUE(rec1 && ours);
        const char *rec1_end = strstr(rec1, "\n\n"), *ours_end = strstr(ours, "\n\n");
        ASSERT_EQ(rec1_end - rec1, ours_end - ours);
        ASSERT_EQ(memcmp(rec1, ours, (size_t) (rec1_end - rec1)), 0);
        ASSERT_CONTAINS(d1.data, "8 @ 0x7ffff7cf938f 0x555555555520 0x555555555569\n# threads: 100 ");
        free_symlocs();
}

static const char *fn_name(const Profile *p, uint64_t function_id) {
        ASSERT_TRUE(function_id >= 1 && function_id <= p->n_functions);
        return profile_string(p, p->functions[function_id - 1].name);
}

/* The innermost function of sample S's leaf location. */
static const char *leaf_name(const Profile *p, const ProfileSample *s) {
        ASSERT_TRUE(s->n_location_ids > 0);
        const ProfileLocation *l = &p->locations[s->location_ids[0] - 1];
        ASSERT_TRUE(l->n_lines > 0);
        return fn_name(p, l->lines[0].function_id);
}

TEST(growth_profile_round_trips) {
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = growth_history(&x);
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        _cleanup_(profile_freep) Profile *p = NULL, *q = NULL;
        _cleanup_buf_ Buf enc = {};

        ASSERT_EQ(history_growth(h, UINT64_MAX, &g), 0);
        ASSERT_EQ(profile_new(NULL, &p), 0);
        ProfileMappingInfo app = { BASE, BASE + 0x10000, 0, APP, "aabbcc", true, true };
        ASSERT_EQ(profile_add_mapping(p, &app, NULL), 0);
        ASSERT_EQ(history_growth_profile(g, p), 0);
        ASSERT_EQ(history_growth_profile(g, p), -EINVAL);       /* not a new profile */

        ASSERT_EQ(profile_encode(p, 0, &enc), 0);
        ASSERT_EQ(profile_decode(enc.data, enc.len, NULL, &q), 0);

        ASSERT_EQ(q->n_sample_types, 1);
        ASSERT_STREQ(profile_string(q, q->sample_types[0].type), "threads");
        ASSERT_STREQ(profile_string(q, q->sample_types[0].unit), "count");
        ASSERT_STREQ(profile_string(q, q->period_type.type), "threads");
        ASSERT_EQ(q->period, 1);
        ASSERT_EQ(q->time_nanos, (int64_t) (1700000060 * SEC));
        ASSERT_EQ(q->duration_nanos, (int64_t) (60 * SEC));
        ASSERT_EQ(q->n_comments, 1);
        ASSERT_STREQ(profile_string(q, q->comments[0]), "window: 1m0s, threads 9 -> 24 (+15)");

        /* One sample per group, in the growth's order, values = deltas. */
        ASSERT_EQ(q->n_samples, 3);
        ASSERT_EQ(q->samples[0].values[0], 8);
        ASSERT_EQ(q->samples[0].n_location_ids, 3);
        ASSERT_STREQ(leaf_name(q, &q->samples[0]), "__libc_write");
        ASSERT_EQ(q->samples[1].values[0], 3);
        ASSERT_STREQ(leaf_name(q, &q->samples[1]), "pause");
        ASSERT_EQ(q->samples[2].values[0], 3);
        ASSERT_EQ(q->samples[2].n_location_ids, 4);    /* + "[truncated]" */
        const ProfileLocation *last = &q->locations[q->samples[2].location_ids[3] - 1];
        ASSERT_STREQ(fn_name(q, last->lines[0].function_id), "[truncated]");
        /* main() is in the mapping added first. */
        const ProfileLocation *m = &q->locations[q->samples[1].location_ids[1] - 1];
        ASSERT_EQ(m->mapping_id, 1);
        ASSERT_EQ(m->address, BASE + 0x1384);
        free_symlocs();
}

static void write_file(const char *path, const Buf *b) {
        FILE *f = fopen(path, "we");
        ASSERT_TRUE(f);
        ASSERT_EQ(fwrite(b->data, 1, b->len, f), b->len);
        ASSERT_EQ(fclose(f), 0);
}

/* `go tool pprof -raw PATH`, with its caches in DIR; the run must succeed. */
static void pprof_raw(const char *dir, const char *path, Buf *out) {
        char cmd[3 * PATH_MAX], chunk[4096];
        size_t n;

        snprintf(cmd, sizeof cmd, "HOME='%s' GOCACHE='%s/gocache' GOPATH='%s/gopath' PPROF_TMPDIR='%s' "
                 "GOFLAGS= GOTOOLCHAIN=local go tool pprof -raw '%s' 2>/dev/null", dir, dir, dir, dir, path);
        FILE *f = popen(cmd, "re");
        ASSERT_TRUE(f);
        buf_reset(out);
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                buf_append(out, chunk, n);
        int status = pclose(f);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                TINY_FAIL("go tool pprof -raw %s: status %d", path, status);
        ASSERT_TRUE(out->data);
}

TEST(go_tool_pprof_reads_growth) {
        if (system("command -v go >/dev/null 2>&1") != 0) {
                fprintf(stderr, "go not installed: the go tool pprof check is skipped\n");
                return;
        }
        Fix x;
        fix_init(&x);
        _cleanup_(history_freep) History *h = growth_history(&x);
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        _cleanup_(profile_freep) Profile *p = NULL;
        _cleanup_buf_ Buf text = {}, pb = {}, out = {};
        char dir[] = "/tmp/test-history.XXXXXX", path[PATH_MAX + 32], cmd[PATH_MAX + 16];

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(history_growth(h, UINT64_MAX, &g), 0);

        /* The text through Go's legacy count-profile parser. */
        history_growth_write_text(g, &text);
        snprintf(path, sizeof path, "%s/growth.txt", dir);
        write_file(path, &text);
        pprof_raw(dir, path, &out);
        ASSERT_CONTAINS(out.data, "PeriodType: threadgrowth count\n");
        /* The legacy format knows no truncation: the two write() records, the same pcs,
         * are one sample to Go (as debug=1's would be). */
        ASSERT_CONTAINS(out.data, "threadgrowth/count\n         11: 1 2 3 \n          3: 4 5 \n");
        ASSERT_CONTAINS(out.data, "     1: 0x7ffff7cf938e ");      /* Go looks up pc − 1 too */

        /* The profile. */
        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(history_growth_profile(g, p), 0);
        ASSERT_EQ(profile_encode(p, 0, &pb), 0);
        snprintf(path, sizeof path, "%s/growth.pb.gz", dir);
        write_file(path, &pb);
        pprof_raw(dir, path, &out);
        ASSERT_CONTAINS(out.data, "PeriodType: threads count\n");
        ASSERT_CONTAINS(out.data, "threads/count\n          8: 1 2 3 \n          3: 4 5 \n          3: 1 2 3 6 \n");
        ASSERT_CONTAINS(out.data, "send_inlined /src/leak.c:44 s=0\n             send_result /src/leak.c:45 s=0\n");
        ASSERT_CONTAINS(out.data, "[truncated] :0 s=0\n");

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        (void) system(cmd);
        free_symlocs();
}

/* ---- bounds ---- */

TEST(max_snapshots_drops_the_oldest) {
        Fix x;
        fix_init(&x);
        HistoryLimits l = history_limits_default;
        l.max_snapshots = 3;
        _cleanup_(history_freep) History *h = new_history(&l);
        ThreadRecord t[8];

        for (size_t k = 0; k < 8; k++) {
                fill(t, k + 1, 1, "w", k % 2 ? x.s_leak : x.s_idle);
                ThreadDump d = dump_of(t, k + 1, 0);
                ASSERT_EQ(history_add(h, &d, NULL, k * 10 * SEC, NULL), 0);
                ASSERT_EQ(stats(h).snapshots, MIN(k + 1, (size_t) 3));
        }
        /* Kept: 6, 7, 8 threads at 50, 60, 70 s. */
        int64_t delta;
        uint64_t covered;
        ASSERT_EQ(history_thread_count_change(h, UINT64_MAX, &delta, &covered), 0);
        ASSERT_EQ(delta, 2);
        ASSERT_EQ(covered, 20 * SEC);
        ASSERT_EQ(stats(h).threads, 6 + 7 + 8);
        ASSERT_EQ(stats(h).stacks, 2);

        /* One snapshot is a history too: the wait still carries over. */
        l.max_snapshots = 1;
        _cleanup_(history_freep) History *one = new_history(&l);
        ThreadDump d = dump_of(t, 2, 0);
        uint64_t w[2];
        ASSERT_EQ(history_add(one, &d, NULL, 0, w), 0);
        ASSERT_EQ(history_add(one, &d, NULL, 10 * SEC, w), 0);
        ASSERT_EQ(history_add(one, &d, NULL, 20 * SEC, w), 0);
        ASSERT_EQ(w[1], 20 * SEC);
        ASSERT_EQ(stats(one).snapshots, 1);
        free_symlocs();
}

TEST(max_bytes_drops_the_oldest_and_refuses_what_cannot_fit) {
        Fix x;
        fix_init(&x);
        ThreadRecord t[100];
        fill(t, 100, 1, "w", x.s_leak);
        ThreadDump d = dump_of(t, 100, 0);

        /* Measure one snapshot, then allow about three. */
        _cleanup_(history_freep) History *probe = new_history(NULL);
        ASSERT_EQ(history_add(probe, &d, NULL, 0, NULL), 0);
        size_t one = history_memory_bytes(probe);
        ASSERT_EQ(history_add(probe, &d, NULL, 0, NULL), 0);
        size_t each = history_memory_bytes(probe) - one;
        ASSERT_GE(each, 100 * 24);

        HistoryLimits l = history_limits_default;
        l.max_bytes = one + 2 * each + each / 2;
        _cleanup_(history_freep) History *h = new_history(&l);
        for (size_t k = 0; k < 10; k++) {
                ASSERT_EQ(history_add(h, &d, NULL, k * SEC, NULL), 0);
                ASSERT_LE(history_memory_bytes(h), l.max_bytes);
        }
        ASSERT_EQ(stats(h).snapshots, 3);

        /* A snapshot that alone is over budget: refused, and the history as it was. */
        ThreadRecord big[400];
        fill(big, 400, 1, "w", x.s_idle);
        ThreadDump db = dump_of(big, 400, 0);
        HistoryStats before = stats(h);
        uint64_t w = 42;
        ASSERT_EQ(history_add(h, &db, NULL, 20 * SEC, &w), -E2BIG);
        ASSERT_EQ(w, 42);
        HistoryStats after = stats(h);
        ASSERT_EQ(after.snapshots, before.snapshots);
        ASSERT_EQ(after.stacks, before.stacks);
        ASSERT_EQ(after.strings, before.strings);
        ASSERT_EQ(after.memory_bytes, before.memory_bytes);

        /* Records that fit, but with stacks that do not: refused after interning, and
         * the stacks it interned are gone again. */
        static StackFrame many[300][2];
        for (size_t i = 0; i < 300; i++) {
                many[i][0] = (StackFrame) { .pc = 0x9000 + i, .exact = true, .loc = x.nosym };
                many[i][1] = x.idle[1];
                big[i].stack = (Stack) { many[i], 2, STACK_END_COMPLETE };
        }
        db.n_threads = 300;
        ASSERT_LE(300 * 40 + 64, l.max_bytes);
        ASSERT_EQ(history_add(h, &db, NULL, 20 * SEC, &w), -E2BIG);
        after = stats(h);
        ASSERT_EQ(after.snapshots, before.snapshots);
        ASSERT_EQ(after.stacks, before.stacks);
        ASSERT_EQ(after.memory_bytes, before.memory_bytes);

        /* Snapshots of 100 distinct stacks each: the dropped ones take theirs along. */
        StackFrame f[100][2];
        for (size_t i = 0; i < 100; i++) {
                f[i][0] = (StackFrame) { .pc = 0x1000 + i, .exact = true, .loc = x.nosym };
                f[i][1] = x.idle[1];
                t[i].stack = (Stack) { f[i], 2, STACK_END_COMPLETE };
        }
        l.max_bytes = 64 * 1024;
        _cleanup_(history_freep) History *h2 = new_history(&l);
        for (size_t k = 0; k < 50; k++) {
                for (size_t i = 0; i < 100; i++)
                        f[i][0].pc = 0x1000 + k * 100 + i;
                ASSERT_EQ(history_add(h2, &d, NULL, k * SEC, NULL), 0);
                ASSERT_LE(history_memory_bytes(h2), l.max_bytes);
                ASSERT_EQ(stats(h2).stacks, 100 * stats(h2).snapshots);
        }
        ASSERT_LT(stats(h2).snapshots, 50);
        free_symlocs();
}

TEST(memory_stays_flat_over_10000_changing_snapshots) {
        Fix x;
        fix_init(&x);
        HistoryLimits l = history_limits_default;
        l.max_snapshots = 50;
        _cleanup_(history_freep) History *h = new_history(&l);
        enum { THREADS = 100, SNAPSHOTS = 10000 };
        ThreadRecord t[THREADS];
        StackFrame f[THREADS][4];
        char names[THREADS][16];
        size_t peak_early = 0, peak_late = 0, max_stacks = 0, max_strings = 0;

        for (size_t k = 0; k < SNAPSHOTS; k++) {
                for (size_t i = 0; i < THREADS; i++) {
                        /* Most threads move every snapshot, some stay; names change too. */
                        size_t where = i < 30 ? i : (k * 7 + i) % 997;
                        f[i][0] = (StackFrame) { .pc = 0x7f0000001000 + where * 16, .exact = true, .loc = x.nosym };
                        f[i][1] = (StackFrame) { .pc = BASE + 0x100 + (where % 13), .loc = x.worker };
                        f[i][2] = x.idle[1];
                        f[i][3] = (StackFrame) { .pc = BASE + 0x10, .loc = x.main };
                        snprintf(names[i], sizeof names[i], "w%zu-%zu", i, i < 50 ? (size_t) 0 : k % 500);
                        t[i] = rec((pid_t) (1000 + i), names[i], "S (sleeping)", i % 3 ? "futex" : "read",
                                   (Stack) { f[i], 2 + (where % 3), where % 5 ? STACK_END_COMPLETE : STACK_END_COPY });
                }
                ThreadDump d = dump_of(t, THREADS, k * SEC);
                ASSERT_EQ(history_add(h, &d, NULL, k * 10 * SEC, NULL), 0);

                HistoryStats st = stats(h);
                if (k >= 1000 && k < 2000)
                        peak_early = MAX(peak_early, st.memory_bytes);
                if (k >= 2000)
                        peak_late = MAX(peak_late, st.memory_bytes);
                max_stacks = MAX(max_stacks, st.stacks);
                max_strings = MAX(max_strings, st.strings);
        }

        HistoryStats st = stats(h);
        fprintf(stderr, "  10000 snapshots of 100 changing threads, 50 kept: %zu bytes (peak %zu after "
                "warm-up, %zu later), %zu stacks (at most %zu), %zu strings (at most %zu)\n",
                st.memory_bytes, peak_early, peak_late, st.stacks, max_stacks, st.strings, max_strings);
        ASSERT_EQ(st.snapshots, 50);
        ASSERT_EQ(st.threads, 50 * THREADS);
        /* Refcounts free what only dropped snapshots used: bounded by what 50 snapshots
         * can use, and no growth after warm-up. */
        ASSERT_LE(max_stacks, 30 + 50 * 70);
        ASSERT_LE(max_strings, 2 + 50 + 50 * 50);
        ASSERT_LE(peak_late, peak_early);
        ASSERT_LE(st.memory_bytes, 2 * 1024 * 1024);
        free_symlocs();
}

TEST(memory_cost_per_snapshot) {
        Fix x;
        fix_init(&x);
        enum { THREADS = 1000 };
        static ThreadRecord t[THREADS];
        static StackFrame f[20][30];

        /* 1000 threads in 20 places, 30 frames deep. */
        for (size_t s = 0; s < 20; s++)
                for (size_t j = 0; j < 30; j++)
                        f[s][j] = (StackFrame) { .pc = BASE + s * 0x1000 + j, .exact = j == 0, .loc = x.nosym };
        for (size_t i = 0; i < THREADS; i++)
                t[i] = rec((pid_t) (100 + i), "worker", "S (sleeping)", "futex",
                           (Stack) { f[i % 20], 30, STACK_END_COMPLETE });
        ThreadDump d = dump_of(t, THREADS, 0);

        _cleanup_(history_freep) History *h = new_history(NULL);
        ASSERT_EQ(history_add(h, &d, NULL, 0, NULL), 0);
        size_t first = history_memory_bytes(h);
        for (size_t k = 1; k <= 100; k++)
                ASSERT_EQ(history_add(h, &d, NULL, k * SEC, NULL), 0);
        size_t each = (history_memory_bytes(h) - first) / 100;
        fprintf(stderr, "  1000 threads on 20 stacks of 30 frames: first snapshot %zu bytes, "
                "each further one %zu bytes (%.1f per thread)\n", first, each, (double) each / THREADS);
        /* A record is 40 bytes; the snapshot's header and malloc's rounding add little. */
        ASSERT_LE(each, THREADS * 40 + 128);
        ASSERT_LE(first, each + 20 * 600 + 2 * 1024 + 32 * 1024);
        free_symlocs();
}

/* ---- hostile input ---- */

TEST(caps_on_hostile_input) {
        Fix x;
        fix_init(&x);
        HistoryLimits l = history_limits_default;
        l.max_threads = 1000;
        l.max_stack_depth = 64;
        l.max_string_bytes = 16;
        _cleanup_(history_freep) History *h = new_history(&l);
        ThreadRecord t[2];

        /* Too many threads: refused before anything is read or allocated. */
        fill(t, 1, 1, "w", x.s_idle);
        ThreadDump huge = { .threads = t, .n_threads = SIZE_MAX / 2 };
        ASSERT_EQ(history_add(h, &huge, NULL, 0, NULL), -E2BIG);
        huge.n_threads = 1001;
        ASSERT_EQ(history_add(h, &huge, NULL, 0, NULL), -E2BIG);
        ASSERT_EQ(stats(h).snapshots, 0);
        ASSERT_EQ(stats(h).strings, 0);

        /* A giant name and wait: cut, so two that differ only past the cut are one. */
        size_t big = 1 << 20;
        _cleanup_free_ char *n1 = malloc(big + 1), *n2 = malloc(big + 1);
        ASSERT_TRUE(n1 && n2);
        memset(n1, 'a', big), n1[big] = 0;
        memset(n2, 'a', big), n2[big] = 0;
        n2[big - 1] = 'b';
        t[0] = rec(1, n1, "S (sleeping)", n1, x.s_idle);
        t[1] = rec(2, n2, "S (sleeping)", n2, x.s_idle);
        ThreadDump d = dump_of(t, 2, 0);
        ASSERT_EQ(history_add(h, &d, NULL, 0, NULL), 0);
        ASSERT_EQ(stats(h).strings, 1);
        ASSERT_LE(history_memory_bytes(h), 4096);

        /* The cut never splits a UTF-8 character: "0123456789abcd€" (14 + 3 bytes) is
         * kept as its first 14 bytes, the same string as "0123456789abcd". */
        t[0].name = "0123456789abcd\xe2\x82\xac";
        t[1].name = "0123456789abcd";
        t[0].wait = t[1].wait = NULL;
        ASSERT_EQ(history_add(h, &d, NULL, SEC, NULL), 0);
        ASSERT_EQ(stats(h).strings, 1 + 1);

        /* A waits as a name would: cut, and equal after the cut means the same wait. */
        t[0].wait = n1;
        t[1].wait = "aaaaaaaaaaaaaaaa";
        uint64_t w[2];
        ASSERT_EQ(history_add(h, &d, NULL, 2 * SEC, w), 0);
        ASSERT_EQ(history_add(h, &d, NULL, 3 * SEC, w), 0);
        ASSERT_EQ(w[0], SEC);

        /* A stack deeper than the cap: cut there, and marked as cut by depth. */
        static StackFrame deep[5000];
        for (size_t i = 0; i < ARRAY_SIZE(deep); i++)
                deep[i] = (StackFrame) { .pc = 0x400000 + i, .loc = x.nosym };
        t[0] = rec(1, "deep", "R (running)", NULL, (Stack) { deep, ARRAY_SIZE(deep), STACK_END_COMPLETE });
        d.n_threads = 1;
        ASSERT_EQ(history_add(h, &d, NULL, 4 * SEC, NULL), 0);
        _cleanup_(history_growth_freep) HistoryGrowth *g = NULL;
        ASSERT_EQ(history_growth(h, SEC, &g), 0);
        ASSERT_EQ(g->n_groups, 1);
        ASSERT_EQ(g->groups[0].stack.n, 64);
        ASSERT_EQ(g->groups[0].stack.end, STACK_END_DEPTH);
        /* The cut stack is one stack, however deep the input beyond the cut. */
        t[0].stack.n = 4000;
        uint64_t w1;
        ASSERT_EQ(history_add(h, &d, NULL, 5 * SEC, &w1), 0);
        ASSERT_EQ(w1, SEC);
        /* …and it prints as truncated. */
        _cleanup_buf_ Buf out = {};
        history_growth_write_text(g, &out);
        ASSERT_CONTAINS(out.data, "\t0x40003e\t/usr/bin/app+0x9000\n#\t\t\t[truncated]\n\n");

        /* Frames without a frame array (a broken dump) read as an empty stack. */
        t[0].stack = (Stack) { NULL, 7, STACK_END_COMPLETE };
        ASSERT_EQ(history_add(h, &d, NULL, 6 * SEC, NULL), 0);

        /* Limits beyond what ids can count are clamped, not trusted. */
        HistoryLimits wild = { SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX };
        _cleanup_(history_freep) History *hw = new_history(&wild);
        huge.n_threads = (1 << 24) + 1;
        ASSERT_EQ(history_add(hw, &huge, NULL, 0, NULL), -E2BIG);
        ASSERT_EQ(history_add(hw, &d, NULL, 0, NULL), 0);
        free_symlocs();
}

/* ---- durations ---- */

TEST(go_durations) {
        const struct {
                uint64_t ns;
                const char *go, *brief;
        } cases[] = {
                { 0, "0s", "0s" },
                { 1, "1ns", "0s" },
                { 999, "999ns", "0s" },
                { 1000, "1µs", "0s" },
                { 1500, "1.5µs", "0s" },
                { 1000000, "1ms", "0s" },
                { 300 * NSEC_PER_MSEC, "300ms", "0s" },
                { 1234567, "1.234567ms", "0s" },
                { SEC, "1s", "1s" },
                { 42 * SEC + 500 * NSEC_PER_MSEC, "42.5s", "42s" },
                { 60 * SEC, "1m0s", "1m" },
                { 300 * SEC, "5m0s", "5m" },
                { 330 * SEC, "5m30s", "5m30s" },
                { 3600 * SEC, "1h0m0s", "1h" },
                { 3660 * SEC, "1h1m0s", "1h1m" },
                { 7205 * SEC, "2h0m5s", "2h5s" },
                { 3723 * SEC + 1, "1h2m3.000000001s", "1h2m3s" },
                { (uint64_t) INT64_MAX, "2562047h47m16.854775807s", "2562047h47m16s" },
                { UINT64_MAX, "5124095h34m33.709551615s", "5124095h34m33s" },
        };
        char b[32];

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                ASSERT_STREQ(format_go_duration(cases[i].ns, b, sizeof b), cases[i].go);
                ASSERT_STREQ(format_short_duration(cases[i].ns, b, sizeof b), cases[i].brief);
        }
        ASSERT_STREQ(format_go_duration(1, NULL, 0), "");
        ASSERT_STREQ(format_short_duration(1, NULL, 0), "");
        char small[4];
        ASSERT_STREQ(format_go_duration(300 * SEC, small, sizeof small), "5m0");
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
