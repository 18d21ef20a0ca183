/* fuzz/fuzz-jitdump.c -- libFuzzer target: the jitdump parser of symbolize/jitmap.c.
 *
 * Input: a jitdump file (either byte order). It is parsed as the file reader does, from
 * where each call stopped, twice: with all of the rest of the file at hand each time, and
 * as a file still being written, each call seeing at most a piece more than the last
 * (piece size from the input's length). Both must end in the same state with the same
 * symbols: every 8 bytes of the input taken as an address must get the same answer from
 * both, a symbol found covers its address, and its name is at most JIT_NAME_MAX bytes
 * without control bytes. Offsets only move forward; a parse that returns 0 with the whole
 * rest at hand ends the reading. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jit-symbol-check.h"
#include "jitmap.h"

/* Returns the state the parser ended in. */
static JitdumpState parse(JitTable *t, const uint8_t *data, size_t size, size_t piece) {
        JitdumpParser p;
        uint64_t offset = 0;
        size_t written = 0;            /* how much of the file "exists" yet */

        jitdump_parser_init(&p);
        while (offset < size) {
                written = written + piece < size ? written + piece : size;
                if (offset >= written)
                        continue;
                int64_t n = jitdump_parse(&p, t, data + offset, written - offset);
                if (n < 0)
                        abort();
                offset += (uint64_t) n;
                if (n == 0 && (written == size || p.state >= JITDUMP_DONE))
                        break;
        }
        JitdumpState state = p.state;
        if (p.loads > p.records || p.moves > p.records)
                abort();
        jitdump_parser_done(&p);
        return state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        JitTable *whole, *pieces;

        if (jit_table_new(&whole) < 0 || jit_table_new(&pieces) < 0)
                abort();
        JitdumpState a = parse(whole, data, size, size ? size : 1);
        JitdumpState b = parse(pieces, data, size, 1 + size % 97);
        if (a != b || jit_table_count(whole) != jit_table_count(pieces))
                abort();
        for (size_t i = 0; i + 8 <= size; i += 8) {
                uint64_t addr;
                memcpy(&addr, data + i, 8);
                JitSymbol x, y;
                bool fx = jit_table_lookup(whole, addr, &x), fy = jit_table_lookup(pieces, addr, &y);
                if (fx != fy)
                        abort();
                if (!fx)
                        continue;
                check_symbol(addr, &x);
                if (x.start != y.start || x.size != y.size || strcmp(x.name, y.name) != 0)
                        abort();
        }
        jit_table_free(whole);
        jit_table_free(pieces);
        return 0;
}
