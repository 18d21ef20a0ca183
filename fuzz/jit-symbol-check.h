/* fuzz/jit-symbol-check.h -- what fuzz-perf-map and fuzz-jitdump require of every symbol a
 * lookup at ADDR returns: it covers ADDR, and its name is non-empty, bounded and printable. */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jitmap.h"

static inline void check_symbol(uint64_t addr, const JitSymbol *s) {
        if (addr < s->start || addr - s->start >= s->size || !s->name)
                abort();
        size_t n = strlen(s->name);
        if (n == 0 || n > JIT_NAME_MAX)
                abort();
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s->name[i] < 0x20 || s->name[i] == 0x7f)
                        abort();
}
