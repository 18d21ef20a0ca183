/* fuzz/fuzz-text.c -- libFuzzer target: the text profiles. tabwriter_format(), the port of
 * Go's text/tabwriter that lays them out, on arbitrary bytes (invalid UTF-8 and the 0xff
 * escape included); then the goroutine-style encoders (debug=1, debug=2) on a thread dump
 * whose strings -- thread names, states, waits, function, file and module names, which a
 * target chooses -- are pieces of the input.
 *
 * What is checked besides "no crash, no leak":
 *   - tabwriter: the output is the input with cell terminators replaced by padding, so it
 *     is never shorter than the input minus its terminators; text without a cell
 *     terminator ('\t', '\v'), a form feed or the escape byte passes through unchanged;
 *   - debug=1 and debug=2: whatever the strings, the output is valid UTF-8 without control
 *     bytes other than '\t' and '\n' (names are escaped, so they can forge neither lines,
 *     nor cells, nor the tab writer's escape byte), and debug=2 has exactly the lines its
 *     format gives the dump.
 *
 * The input goes in as a buffer of its exact size without a NUL. The recursion of the
 * layout is as deep as the widest line has cells (the header says so: callers format their
 * own text), so run this with a -max_len that bounds it, as run-smoke does. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tabwriter.h"
#include "threads.h"

#define FIELDS_MAX 32
#define FIELD_LEN_MAX 64
#define THREADS_MAX_FUZZ 6
#define FRAMES_MAX_FUZZ 102             /* beyond debug=2's 100, to reach its elision */

static void fuzz_tabwriter(const uint8_t *data, size_t size) {
        char *text = malloc(size ? size : 1);
        Buf out = {};

        if (!text)
                abort();
        memcpy(text, data, size);
        tabwriter_format(text, size, &out);

        size_t terminators = 0;
        bool plain = true;
        for (size_t i = 0; i < size; i++) {
                if (text[i] == '\t' || text[i] == '\v')
                        terminators++;
                if (text[i] == '\t' || text[i] == '\v' || text[i] == '\f' || text[i] == '\xff')
                        plain = false;  /* '\f' comes out as '\n', as in Go */
        }
        if (out.len + terminators < size)
                abort();
        if (plain && (out.len != size || (size > 0 && memcmp(out.data, text, size) != 0)))
                abort();

        buf_done(&out);
        free(text);
}

/* ---- thread dumps ---- */

/* Valid UTF-8 (Go's rules: no surrogates, no overlong forms), no control byte but '\t'
 * and '\n', no DEL. */
__attribute__((no_sanitize("coverage")))        /* the checker's branches are no news */
static bool clean_text(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        for (size_t i = 0; i < n;) {
                unsigned char c = p[i];
                if (c < 0x80) {
                        if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                                return false;
                        i++;
                        continue;
                }
                size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 :
                        c >= 0xf0 && c <= 0xf4 ? 4 : 0;
                if (len == 0 || i + len > n)
                        return false;
                for (size_t k = 1; k < len; k++)
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
                    (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
                        return false;
                i += len;
        }
        return true;
}

__attribute__((no_sanitize("coverage")))
static size_t count_lines(const Buf *b) {
        size_t n = 0;
        for (size_t i = 0; i < b->len; i++)
                n += b->data[i] == '\n';
        return n;
}

typedef struct Fields {
        char *s[FIELDS_MAX];            /* NUL-terminated pieces of the input */
        size_t n;
} Fields;

/* The input split at its NUL bytes, each piece cut to FIELD_LEN_MAX bytes. */
static void split_fields(const uint8_t *data, size_t size, Fields *f) {
        size_t start = 0;
        f->n = 0;
        for (size_t i = 0; i <= size && f->n < FIELDS_MAX; i++)
                if (i == size || data[i] == 0) {
                        /* Long strings only make the output long: a name is escaped
                         * byte by byte, whatever its length. */
                        f->s[f->n] = strndup((const char *) data + start,
                                             MIN(i - start, (size_t) FIELD_LEN_MAX));
                        if (!f->s[f->n])
                                abort();
                        f->n++;
                        start = i + 1;
                }
}

static const char *field(const Fields *f, size_t i) {
        return f->s[i % f->n];
}

/* The lines debug=2 gives thread T: the header, then two per frame entry up to Go's 100
 * (and one to say the rest was elided), then the end of the stack. */
static size_t debug2_lines(const ThreadRecord *t) {
        size_t lines = 1, entries = 0;
        bool elided = false;

        if (t->error != 0)
                return lines + 1;
        for (size_t i = 0; i < t->stack.n && !elided; i++) {
                size_t k = t->stack.frames[i].loc->n_frames ? t->stack.frames[i].loc->n_frames : 1;
                if (entries + k > 100) {
                        lines += 2 * (100 - entries) + 1;
                        elided = true;
                } else {
                        entries += k;
                        lines += 2 * k;
                }
        }
        if (stack_is_truncated(&t->stack))
                lines += 2;
        else if (t->stack.n == 0)
                lines += 1;
        return lines;
}

static void fuzz_thread_dump(const uint8_t *data, size_t size) {
        Fields f;
        split_fields(data, size, &f);

        const size_t n_threads = 1 + f.n % THREADS_MAX_FUZZ;
        ThreadRecord threads[THREADS_MAX_FUZZ] = {};
        SymLoc *locs[THREADS_MAX_FUZZ][FRAMES_MAX_FUZZ] = {};

        for (size_t i = 0; i < n_threads; i++) {
                ThreadRecord *t = &threads[i];
                const size_t len = strlen(field(&f, i + 3));
                *t = (ThreadRecord) {
                        .tid = (pid_t) (100 + i),
                        .name = field(&f, i),
                        .state = i % 3 ? field(&f, i + 1) : NULL,
                        .wait = i % 2 ? NULL : field(&f, i + 2),
                        .wait_ns = (uint64_t) len * UINT64_C(7000000000),
                        .error = len % 7 == 3 ? -ESRCH : 0,
                };
                if (t->error)
                        continue;
                /* Even threads share their pcs, so debug=1 groups them. */
                size_t n = i == 0 && len > 40 ? FRAMES_MAX_FUZZ : len % 5;
                t->stack = (Stack) {
                        .frames = calloc(n ? n : 1, sizeof(StackFrame)),
                        .n = n,
                        .end = (StackEnd) (len / 5 % 7),
                };
                if (!t->stack.frames)
                        abort();
                for (size_t j = 0; j < n; j++) {
                        size_t n_frames = (i + j) % 3;
                        SymLoc *loc = calloc(1, sizeof *loc + n_frames * sizeof(Frame));
                        if (!loc)
                                abort();
                        loc->module = (i + j) % 4 ? field(&f, i + j) : NULL;
                        loc->build_id = NULL;
                        loc->module_offset = 0x100 + 16 * j;
                        loc->n_frames = n_frames;
                        for (size_t k = 0; k < n_frames; k++) {
                                const char *file = field(&f, j + k + 2);
                                loc->frames[k] = (Frame) {
                                        .function = k == 1 ? NULL : field(&f, i + j + k),
                                        .file = strlen(file) % 2 ? file : NULL,
                                        .line = (uint32_t) (10 * k),
                                        .entry = k % 2 ? UINT64_C(0x10000000) : 0x10,
                                        .inlined = k + 1 < n_frames,
                                };
                        }
                        locs[i][j] = loc;
                        t->stack.frames[j] = (StackFrame) {
                                .pc = 0x400100 + 16 * j + (i % 2) * 8,
                                .exact = j == 0,
                                .loc = loc,
                        };
                }
        }
        ThreadDump d = { .pid = 100, .threads = threads, .n_threads = n_threads };

        Buf out = {};
        thread_dump_write_debug1(&d, &out);
        if (!clean_text(out.data, out.len))
                abort();
        buf_done(&out);

        thread_dump_write_debug2(&d, &out);
        size_t expected = n_threads - 1;        /* blank lines between threads */
        for (size_t i = 0; i < n_threads; i++)
                expected += debug2_lines(&threads[i]);
        if (!clean_text(out.data, out.len) || count_lines(&out) != expected)
                abort();
        buf_done(&out);

        for (size_t i = 0; i < n_threads; i++) {
                for (size_t j = 0; j < FRAMES_MAX_FUZZ; j++)
                        free(locs[i][j]);
                free(threads[i].stack.frames);
        }
        for (size_t i = 0; i < f.n; i++)
                free(f.s[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_tabwriter(data, size);
        fuzz_thread_dump(data, size);
        return 0;
}
