/* fuzz/fuzz-perf-map.c -- libFuzzer target: perf map parsing and the symbol table behind
 * it (symbolize/jitmap.c).
 *
 * Input: one byte of mode, one byte of piece size, then the rest.
 *   - mode even: the rest is perf map text. It is parsed whole, and again in pieces of
 *     (piece size + 1) bytes, each call given what the last left plus one more piece, as
 *     the file reader does. Both tables must answer every probe the same way (the probes:
 *     each 8 bytes of the input as an address, and the first, last and one-past-the-end
 *     address of every symbol found). A symbol found covers its address; names are at most
 *     JIT_NAME_MAX bytes without control bytes; parse never consumes more than it got.
 *   - mode odd: the rest is a list of symbols, 3 bytes each (u8 start, u8 size & 31, u8
 *     name), added in order to a table and to a plain list. After those whose name byte
 *     is a multiple of 8 (at most CHECKS_MAX times) and after the last, the table must
 *     name, at every address of the small space they share, what the list's latest
 *     covering symbol names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit-symbol-check.h"
#include "jitmap.h"

static void parse_all(JitTable *t, const char *text, size_t len, size_t piece) {
        PerfMapParser p = {};
        size_t done = 0, avail = 0;

        while (done < len) {
                avail = avail + piece < len - done ? avail + piece : len - done;
                ssize_t n = perf_map_parse(&p, t, text + done, avail);
                if (n < 0 || (size_t) n > avail)
                        abort();
                done += (size_t) n;
                avail -= (size_t) n;
                if (n == 0 && done + avail == len)
                        break;          /* an unfinished last line stays unparsed */
        }
}

static void same_answer(JitTable *a, JitTable *b, uint64_t addr) {
        JitSymbol x, y;
        bool fx = jit_table_lookup(a, addr, &x), fy = jit_table_lookup(b, addr, &y);
        if (fx != fy)
                abort();
        if (!fx)
                return;
        check_symbol(addr, &x);
        check_symbol(addr, &y);
        if (x.start != y.start || x.size != y.size || strcmp(x.name, y.name) != 0)
                abort();
}

static void fuzz_text(const uint8_t *data, size_t size, size_t piece) {
        JitTable *whole, *pieces;
        if (jit_table_new(&whole) < 0 || jit_table_new(&pieces) < 0)
                abort();
        parse_all(whole, (const char *) data, size, size ? size : 1);
        parse_all(pieces, (const char *) data, size, piece);
        if (jit_table_count(whole) != jit_table_count(pieces))
                abort();

        for (size_t i = 0; i + 8 <= size; i += 8) {
                uint64_t addr;
                memcpy(&addr, data + i, 8);
                same_answer(whole, pieces, addr);
                JitSymbol s;
                if (jit_table_lookup(whole, addr, &s)) {
                        same_answer(whole, pieces, s.start);
                        same_answer(whole, pieces, s.start + s.size - 1);
                        same_answer(whole, pieces, s.start + s.size);
                }
        }
        jit_table_free(whole);
        jit_table_free(pieces);
}

#define SPACE 0x120u            /* u8 starts + sizes below 32 */
#define LIST_MAX 512
#define CHECKS_MAX 16

typedef struct Sym {
        uint32_t start, end;
        char name[4];
} Sym;

static void check_table(JitTable *t, const Sym *list, size_t n) {
        for (uint32_t addr = 0; addr < SPACE; addr++) {
                const Sym *want = NULL;
                for (size_t k = n; k-- > 0;)
                        if (list[k].start <= addr && addr < list[k].end) {
                                want = &list[k];
                                break;
                        }
                JitSymbol got;
                bool found = jit_table_lookup(t, addr, &got);
                if (found != (want != NULL))
                        abort();
                if (found && (got.start != want->start || got.size != want->end - want->start ||
                              strcmp(got.name, want->name) != 0))
                        abort();
        }
}

static void fuzz_table(const uint8_t *data, size_t size) {
        static Sym list[LIST_MAX];
        size_t n = 0, checks = 0;
        JitTable *t;

        if (jit_table_new(&t) < 0)
                abort();
        for (size_t i = 0; i + 3 <= size && n < LIST_MAX; i += 3) {
                uint32_t start = data[i], len = data[i + 1] & 31;
                Sym *s = &list[n];
                (void) snprintf(s->name, sizeof s->name, "%02x", data[i + 2]);
                int r = jit_table_add(t, start, len, s->name, strlen(s->name));
                if (r < 0 || r != (len > 0))
                        abort();
                if (r == 1) {
                        s->start = start;
                        s->end = start + len;
                        n++;
                }
                if ((data[i + 2] & 7) == 0 && checks++ < CHECKS_MAX)
                        check_table(t, list, n);
        }
        check_table(t, list, n);
        jit_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        if (data[0] & 1)
                fuzz_table(data + 2, size - 2);
        else
                fuzz_text(data + 2, size - 2, (size_t) data[1] + 1);
        return 0;
}
