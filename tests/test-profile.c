/* tests/test-profile.c -- unit tests of profile/: the tab writer against Go's own output
 * (reference/go-pprof-observed/g1.txt, byte for byte), and the thread dump encoders on
 * hand-built dumps with exact expected text. No process, no I/O but the reference file. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "macro.h"
#include "tabwriter.h"
#include "threads.h"
#include "trace.h"
#include "symloc-fixture.h"
#include "tiny-test.h"

/* ---- helpers ---- */

static char *format_text(const char *in) {
        _cleanup_buf_ Buf out = {};
        tabwriter_format(in, strlen(in), &out);
        return buf_steal(&out, NULL);
}

#define ASSERT_TEXT(got, want)                                                  \
        do {                                                                    \
                const char *_g = (got), *_w = (want);                           \
                if (strcmp(_g, _w) != 0)                                        \
                        TINY_FAIL("text differs.\n--- want\n%s--- got\n%s---", _w, _g); \
        } while (0)

static void fclosep_(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

static bool read_file(const char *path, Buf *ret) {
        _cleanup_(fclosep_) FILE *f = NULL;
        char b[4096];
        size_t n;

        f = fopen(path, "re");
        if (!f)
                return false;
        while ((n = fread(b, 1, sizeof b, f)) > 0)
                buf_append(ret, b, n);
        return !ferror(f);
}

/* ---- tab writer ---- */

TEST(tabwriter_simple) {
        _cleanup_free_ char *a = format_text("a\tb\nccc\td\n");
        ASSERT_TEXT(a, "a\tb\nccc\td\n");

        /* 8 runes + padding 1 = 9 → two tab stops; the short cell needs two tabs. */
        _cleanup_free_ char *b = format_text("aaaaaaaa\tb\nc\td\n");
        ASSERT_TEXT(b, "aaaaaaaa\tb\nc\t\td\n");

        /* The last cell of a line is not aligned and not tab-terminated. */
        _cleanup_free_ char *c = format_text("x\tyyyyyyyyyyyyyyyy\nx\tz");
        ASSERT_TEXT(c, "x\tyyyyyyyyyyyyyyyy\nx\tz");
}

TEST(tabwriter_blocks) {
        /* An empty line and a one-cell line both end the column block. */
        _cleanup_free_ char *a = format_text("aaaaaaaaaa\tx\n\nb\ty\n");
        ASSERT_TEXT(a, "aaaaaaaaaa\tx\n\nb\ty\n");
        _cleanup_free_ char *b = format_text("aaaaaaaaaa\tx\nsingle\nb\ty\n");
        ASSERT_TEXT(b, "aaaaaaaaaa\tx\nsingle\nb\ty\n");

        /* Column 1 is a block of lines 1-2 only; column 0 spans all three. */
        _cleanup_free_ char *c = format_text("#\t0x1\tlong_function_name_x\tf.c:1\n"
                                             "#\t0x2\tf\tf.c:2\n"
                                             "#\t0x3\tg\n");
        ASSERT_TEXT(c, "#\t0x1\tlong_function_name_x\tf.c:1\n"
                       "#\t0x2\tf\t\t\tf.c:2\n"
                       "#\t0x3\tg\n");

        /* An empty cell is padded to the column like any other. */
        _cleanup_free_ char *d = format_text("#\t0x0123456789ab\tf\n#\t\t[x]\n");
        ASSERT_TEXT(d, "#\t0x0123456789ab\tf\n#\t\t\t[x]\n");
}

TEST(tabwriter_width_in_code_points) {
        /* 7 code points (14 bytes) + 1 fits one tab stop. */
        _cleanup_free_ char *a = format_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\tx\nb\ty\n");
        ASSERT_TEXT(a, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\tx\nb\ty\n");

        /* Go's escape byte: the tab inside is text, the escape bytes are not counted. */
        _cleanup_free_ char *b = format_text("\xff" "a\tb\xff\tc\nxxxxxxxxxx\td\n");
        ASSERT_TEXT(b, "\xff" "a\tb\xff\t\tc\nxxxxxxxxxx\td\n");
}

/* What runtime/pprof wrote into its tab writer: frame lines carry single tabs. */
static void untab(const char *s, size_t len, Buf *ret) {
        bool frame_line = false, at_start = true;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (at_start)
                        frame_line = len - i >= 2 && s[i] == '#' && s[i + 1] == '\t';
                at_start = c == '\n';
                if (frame_line && c == '\t' && i > 0 && s[i - 1] == '\t')
                        continue;
                buf_putc(ret, c);
        }
}

TEST(tabwriter_matches_go_g1) {
        _cleanup_buf_ Buf ref = {}, in = {}, out = {};

        /* A goroutine?debug=1 reply of a real Go 1.19 server, kept in tests/data/. */
        if (!read_file(GO_GOROUTINE_DEBUG1, &ref))
                TINY_FAIL("cannot read %s", GO_GOROUTINE_DEBUG1);
        ASSERT_GT(ref.len, 1000);

        untab(ref.data, ref.len, &in);
        ASSERT_LT(in.len, ref.len);             /* there was alignment to redo */
        tabwriter_format(in.data, in.len, &out);
        ASSERT_EQ(out.len, ref.len);
        ASSERT_TEXT(out.data, ref.data);
}

/* ---- thread dumps ---- */

#define APP "/usr/bin/app"
#define LIBC "/lib/libc.so.6"
#define BASE UINT64_C(0x555555554000)

typedef struct Fixture {
        const SymLoc *read, *main, *libc, *helper;
        StackFrame s1[2], s2[3];
        ThreadRecord t[7];
        ThreadDump d;
} Fixture;

static void fixture_init(Fixture *x) {
        const Frame read_frames[] = {
                { .function = "inlined_reader_helper", .file = "/src/io.c", .line = 10, .entry = 0x1200, .inlined = true },
                { .function = "do_read", .file = "/src/io.c", .line = 20, .entry = 0x1200 },
        };
        const Frame main_frame = { .function = "main", .file = "/src/main.c", .line = 5, .entry = 0x2000 };
        const Frame helper_frame = { .function = "helper", .entry = 0x3000 };

        *x = (Fixture) {};
        x->read = symloc(APP, 0x1234, 2, read_frames);
        x->main = symloc(APP, 0x2010, 1, &main_frame);
        x->libc = symloc(LIBC, 0x9abc0, 0, NULL);
        x->helper = symloc(APP, 0x3004, 1, &helper_frame);

        /* S1: leaf interrupted inside do_read (exact), called from main. */
        x->s1[0] = (StackFrame) { .pc = BASE + 0x1234, .exact = true, .loc = x->read };
        x->s1[1] = (StackFrame) { .pc = BASE + 0x2011, .loc = x->main };
        /* S2: leaf in libc (no symbols), helper without file, main. */
        x->s2[0] = (StackFrame) { .pc = 0x7ffff7e9abc0, .exact = true, .loc = x->libc };
        x->s2[1] = (StackFrame) { .pc = BASE + 0x3005, .loc = x->helper };
        x->s2[2] = (StackFrame) { .pc = BASE + 0x2011, .loc = x->main };

        Stack s1 = { .frames = x->s1, .n = 2, .end = STACK_END_COMPLETE };
        Stack s2 = { .frames = x->s2, .n = 3, .end = STACK_END_ZERO_PC };
        Stack s2t = { .frames = x->s2, .n = 3, .end = STACK_END_DEPTH };

        x->t[0] = (ThreadRecord) { .tid = 10, .name = "main", .state = "S (sleeping)", .wait = "read",
                                   .wait_ns = UINT64_C(200) * 1000000000, .stack = s1 };
        x->t[1] = (ThreadRecord) { .tid = 11, .name = "w1", .state = "R (running)", .stack = s2 };
        x->t[2] = (ThreadRecord) { .tid = 12, .name = "w2", .wait = "futex", .wait_ns = 999999999, .stack = s2 };
        x->t[3] = (ThreadRecord) { .tid = 13, .name = "w3", .stack = s2t };
        x->t[4] = (ThreadRecord) { .tid = 14, .name = "bad\ttab\"q\"", .wait_ns = UINT64_C(42) * 1000000000,
                                   .error = -ESRCH };
        x->t[5] = (ThreadRecord) { .tid = 15, .name = "x", .error = -ESRCH };
        x->t[6] = (ThreadRecord) { .tid = 16, .name = "y", .state = "S (sleeping)", .stack = s1 };

        x->d = (ThreadDump) { .pid = 10, .threads = x->t, .n_threads = 7, .partial = true };
}

TEST(debug1_groups_sorted_and_aligned) {
        Fixture x;
        _cleanup_buf_ Buf out = {};

        fixture_init(&x);
        thread_dump_write_debug1(&x.d, &out);
        ASSERT_TEXT(out.data,
                "threads profile: total 7\n"
                /* count 2 ties: keys ascending, "@" first */
                "2 @\n"
                "# threads: 14 \"bad\\ttab\\\"q\\\"\", 15 \"x\"\n"
                "#\t[not captured: No such process]\n"
                "\n"
                "2 @ 0x555555555234 0x555555556011\n"
                "# threads: 10 \"main\", 16 \"y\"\n"
                "#\t0x555555555234\tinlined_reader_helper+0x34\t/src/io.c:10\n"
                "#\t0x555555555234\tdo_read+0x34\t\t\t/src/io.c:20\n"
                "#\t0x555555556010\tmain+0x10\t\t\t/src/main.c:5\n"
                "\n"
                "2 @ 0x7ffff7e9abc0 0x555555557005 0x555555556011\n"
                "# threads: 11 \"w1\", 12 \"w2\"\n"
                "#\t0x7ffff7e9abc0\t/lib/libc.so.6+0x9abc0\n"
                "#\t0x555555557004\thelper+0x4\n"
                "#\t0x555555556010\tmain+0x10\t/src/main.c:5\n"
                "\n"
                /* same pcs, truncated: its own group */
                "1 @ 0x7ffff7e9abc0 0x555555557005 0x555555556011\n"
                "# threads: 13 \"w3\"\n"
                "#\t0x7ffff7e9abc0\t/lib/libc.so.6+0x9abc0\n"
                "#\t0x555555557004\thelper+0x4\n"
                "#\t0x555555556010\tmain+0x10\t/src/main.c:5\n"
                "#\t\t\t[truncated]\n"
                "\n");
        free_symlocs();
}

TEST(debug1_count_beats_key) {
        Fixture x;
        _cleanup_buf_ Buf out = {};

        fixture_init(&x);
        /* Three threads on S2 (w1, w2 and y): that group now comes first. */
        x.t[6].stack = x.t[1].stack;
        thread_dump_write_debug1(&x.d, &out);
        ASSERT_CONTAINS(out.data, "threads profile: total 7\n"
                                  "3 @ 0x7ffff7e9abc0 0x555555557005 0x555555556011\n"
                                  "# threads: 11 \"w1\", 12 \"w2\", 16 \"y\"\n");
        ASSERT_CONTAINS(out.data, "\n\n2 @\n# threads: 14 ");
        ASSERT_CONTAINS(out.data, "\n\n1 @ 0x555555555234 0x555555556011\n# threads: 10 \"main\"\n");
        free_symlocs();
}

TEST(debug1_empty_and_unknown) {
        _cleanup_buf_ Buf out = {}, out2 = {};
        ThreadDump empty = {};

        thread_dump_write_debug1(&empty, &out);
        ASSERT_TEXT(out.data, "threads profile: total 0\n");
        thread_dump_write_debug2(&empty, &out2);
        ASSERT_EQ(out2.len, 0);

        /* A pc in no mapping, and a complete but empty stack. */
        const SymLoc *nowhere = symloc(NULL, 0x1000, 0, NULL);
        StackFrame f = { .pc = 0x1000, .exact = true, .loc = nowhere };
        ThreadRecord t[2] = {
                { .tid = 1, .name = "a", .stack = { .frames = &f, .n = 1 } },
                { .tid = 2, .name = "b", .stack = { .n = 0, .end = STACK_END_COMPLETE } },
        };
        ThreadDump d = { .threads = t, .n_threads = 2 };
        buf_reset(&out);
        thread_dump_write_debug1(&d, &out);
        ASSERT_TEXT(out.data,
                "threads profile: total 2\n"
                "1 @\n"
                "# threads: 2 \"b\"\n"
                "#\t[no stack]\n"
                "\n"
                "1 @ 0x1000\n"
                "# threads: 1 \"a\"\n"
                "#\t0x1000\t?+0x1000\n"
                "\n");
        free_symlocs();
}

TEST(debug2_threads) {
        Fixture x;
        _cleanup_buf_ Buf out = {};

        fixture_init(&x);
        thread_dump_write_debug2(&x.d, &out);
        ASSERT_TEXT(out.data,
                "thread 10 \"main\" [S (sleeping), read, 3 minutes]:\n"
                "inlined_reader_helper(...)\n"
                "\t/src/io.c:10\n"
                "do_read(...)\n"
                "\t/src/io.c:20 +0x34\n"
                "main(...)\n"
                "\t/src/main.c:5 +0x11\n"
                "\n"
                "thread 11 \"w1\" [R (running)]:\n"
                "?\?(...)\n"
                "\t/lib/libc.so.6+0x9abc0\n"
                "helper(...)\n"
                "\t/usr/bin/app+0x3004\n"
                "main(...)\n"
                "\t/src/main.c:5 +0x11\n"
                "\n"
                "thread 12 \"w2\" [futex]:\n"
                "?\?(...)\n"
                "\t/lib/libc.so.6+0x9abc0\n"
                "helper(...)\n"
                "\t/usr/bin/app+0x3004\n"
                "main(...)\n"
                "\t/src/main.c:5 +0x11\n"
                "\n"
                "thread 13 \"w3\" [unknown]:\n"
                "?\?(...)\n"
                "\t/lib/libc.so.6+0x9abc0\n"
                "helper(...)\n"
                "\t/usr/bin/app+0x3004\n"
                "main(...)\n"
                "\t/src/main.c:5 +0x11\n"
                "[truncated]\n"
                "\t(depth limit)\n"
                "\n"
                "thread 14 \"bad\\ttab\\\"q\\\"\" [42 seconds]:\n"
                "[not captured: No such process]\n"
                "\n"
                "thread 15 \"x\" [unknown]:\n"
                "[not captured: No such process]\n"
                "\n"
                "thread 16 \"y\" [S (sleeping)]:\n"
                "inlined_reader_helper(...)\n"
                "\t/src/io.c:10\n"
                "do_read(...)\n"
                "\t/src/io.c:20 +0x34\n"
                "main(...)\n"
                "\t/src/main.c:5 +0x11\n");
        free_symlocs();
}

static size_t count_substr(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void deep_stack_text(size_t physical, StackEnd end, Buf *out) {
        const Frame frames[] = {
                { .function = "inner", .file = "/src/r.c", .line = 1, .entry = 0x100, .inlined = true },
                { .function = "recurse", .file = "/src/r.c", .line = 2, .entry = 0x100 },
        };
        const SymLoc *loc = symloc(APP, 0x120, 2, frames);
        _cleanup_free_ StackFrame *sf = calloc(physical, sizeof(StackFrame));
        ASSERT_TRUE(sf);
        for (size_t i = 0; i < physical; i++)
                sf[i] = (StackFrame) { .pc = BASE + 0x121, .loc = loc };
        ThreadRecord t = { .tid = 7, .name = "deep", .stack = { .frames = sf, .n = physical, .end = end } };
        ThreadDump d = { .threads = &t, .n_threads = 1 };
        thread_dump_write_debug2(&d, out);
}

TEST(debug2_elides_after_100_frames) {
        _cleanup_buf_ Buf exact = {}, over = {}, trunc = {};

        /* 50 physical frames of two inline levels: exactly 100 entries, nothing elided. */
        deep_stack_text(50, STACK_END_COMPLETE, &exact);
        ASSERT_EQ(count_substr(exact.data, "(...)\n"), 100);
        ASSERT_EQ(count_substr(exact.data, "elided"), 0);
        ASSERT_EQ(count_substr(exact.data, "recurse(...)\n\t/src/r.c:2 +0x21\n"), 50);

        /* 51: the 100 first entries, then Go's marker and the end of the text. */
        deep_stack_text(51, STACK_END_COMPLETE, &over);
        ASSERT_EQ(count_substr(over.data, "(...)\n"), 100);
        ASSERT_EQ(count_substr(over.data, "...additional frames elided...\n"), 1);
        ASSERT_TRUE(over.len > 31);
        ASSERT_STREQ(over.data + over.len - 31, "...additional frames elided...\n");

        /* Truncated as well: the marker comes after the elision. */
        deep_stack_text(80, STACK_END_COPY, &trunc);
        ASSERT_CONTAINS(trunc.data, "\t/src/r.c:2 +0x21\n"
                                    "...additional frames elided...\n"
                                    "[truncated]\n"
                                    "\t(end of stack copy)\n");
        ASSERT_EQ(trunc.data[trunc.len - 2], ')');
        free_symlocs();
}

TEST(debug_text_escapes_hostile_strings) {
        const Frame frames[] = {
                { .function = "evil\n#\tfake\xff", .file = "/src/a\tb.c", .line = 3, .entry = 0x10 },
        };
        const SymLoc *loc = symloc(APP, 0x14, 1, frames);
        StackFrame f = { .pc = BASE + 0x14, .exact = true, .loc = loc };
        ThreadRecord t = { .tid = 5, .name = "n\x01\xc3\xa9", .stack = { .frames = &f, .n = 1 } };
        ThreadDump d = { .threads = &t, .n_threads = 1 };
        _cleanup_buf_ Buf one = {}, two = {};

        thread_dump_write_debug1(&d, &one);
        ASSERT_TEXT(one.data,
                "threads profile: total 1\n"
                "1 @ 0x555555554014\n"
                "# threads: 5 \"n\\x01\xc3\xa9\"\n"
                "#\t0x555555554014\tevil\\n#\\tfake\\xff+0x4\t/src/a\\tb.c:3\n"
                "\n");
        thread_dump_write_debug2(&d, &two);
        ASSERT_TEXT(two.data,
                "thread 5 \"n\\x01\xc3\xa9\" [unknown]:\n"
                "evil\\n#\\tfake\\xff(...)\n"
                "\t/src/a\\tb.c:3 +0x4\n");
        free_symlocs();
}

TEST(wait_durations) {
        char b[32];

        ASSERT_STREQ(format_wait_duration(0, b, sizeof b), "");
        ASSERT_STREQ(format_wait_duration(999999999, b, sizeof b), "");
        ASSERT_STREQ(format_wait_duration(UINT64_C(1000000000), b, sizeof b), "1 seconds");
        ASSERT_STREQ(format_wait_duration(UINT64_C(42) * 1000000000, b, sizeof b), "42 seconds");
        ASSERT_STREQ(format_wait_duration(UINT64_C(59999999999), b, sizeof b), "59 seconds");
        ASSERT_STREQ(format_wait_duration(UINT64_C(60) * 1000000000, b, sizeof b), "1 minutes");
        ASSERT_STREQ(format_wait_duration(UINT64_C(3) * 60 * 1000000000 + 5, b, sizeof b), "3 minutes");
        ASSERT_STREQ(format_wait_duration(UINT64_MAX, b, sizeof b), "307445734 minutes");
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}

/* A timeline fed as the scheduler source feeds it: switches and sleeps of one buffer in
 * order, a wake-up seen only after the wakee's switch in (another buffer). */
TEST(trace_builder_slices_flows_and_cap) {
        TraceBuilder b;
        const uint64_t t0 = 1000000000, args[6] = {};
        Frame f = { .function = "nanosleep" };
        StackFrame sf = { .pc = 0x1000, .exact = true, .loc = symloc("/lib/libc.so.6", 0x100, 1, &f) };
        Stack sleep_stack = { .frames = &sf, .n = 1 };

        trace_builder_init(&b, 100, t0, 0);
        trace_thread(&b, 101, true);
        trace_thread(&b, 102, false);
        trace_sleep(&b, 101, t0 + 1000, &sleep_stack, args);
        trace_switch(&b, 101, t0 + 1000, 0, false, false);       /* 101 ran 1 µs, then sleeps */
        trace_switch(&b, 102, t0 + 2000, 0, true, false);        /* 102 gets the CPU */
        trace_switch(&b, 102, t0 + 5000, 0, false, true);        /* and is preempted */
        trace_switch(&b, 101, t0 + 6000, 1, true, false);
        trace_wake(&b, 102, 101, t0 + 4000);                     /* seen late: the flow still ends at 6 µs */
        trace_create(&b, 101, 103, t0 + 7000);
        Buf out = {};
        trace_builder_finish(&b, t0 + 10000, "proc", NULL, NULL, &out);
        trace_builder_done(&b);

        ASSERT_TRUE(strncmp(out.data, "{\"traceEvents\":[\n", 17) == 0);
        ASSERT_TRUE(strstr(out.data, "\"name\":\"process_name\",\"args\":{\"name\":\"proc\"}") != NULL);
        ASSERT_TRUE(strstr(out.data, "{\"ph\":\"X\",\"pid\":100,\"tid\":101,\"ts\":0.000,\"dur\":1.000,\"name\":\"running\"") != NULL);
        ASSERT_TRUE(strstr(out.data, "\"tid\":101,\"ts\":1.000,\"dur\":5.000,\"name\":\"sleep\",\"cat\":\"off-cpu\","
                                     "\"args\":{\"stack\":[\"nanosleep\"]}") != NULL);
        ASSERT_TRUE(strstr(out.data, "\"tid\":102,\"ts\":5.000,\"dur\":5.000,\"name\":\"preempted\"") != NULL);
        ASSERT_TRUE(strstr(out.data, "{\"ph\":\"s\",\"pid\":100,\"tid\":102,\"ts\":4.000,\"id\":1") != NULL);
        ASSERT_TRUE(strstr(out.data, "{\"ph\":\"f\",\"pid\":100,\"tid\":101,\"ts\":6.000,\"bp\":\"e\",\"id\":1") != NULL);
        ASSERT_TRUE(strstr(out.data, "\"name\":\"thread created\"") != NULL);
        ASSERT_TRUE(strstr(out.data, "\"truncated\":false") != NULL);
        buf_done(&out);

        /* Past the cap: cut, and said so. */
        trace_builder_init(&b, 100, t0, 3);
        for (int i = 0; i < 10; i++) {
                trace_switch(&b, 101, t0 + 2000 * (uint64_t) i, 0, true, false);
                trace_switch(&b, 101, t0 + 2000 * (uint64_t) i + 1000, 0, false, false);
        }
        trace_builder_finish(&b, t0 + 100000, "proc", NULL, NULL, &out);
        ASSERT_TRUE(b.truncated);
        trace_builder_done(&b);
        ASSERT_TRUE(strstr(out.data, "cprofd: trace truncated at 3 events") != NULL);
        ASSERT_TRUE(strstr(out.data, "\"truncated\":true") != NULL);
        buf_done(&out);
}
