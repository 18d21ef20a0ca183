/* tests/symloc-fixture.h -- hand-made symbolized locations for encoder tests. SymLoc ends
 * in a flexible array, so each is built on the heap; free_symlocs() releases them all. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "macro.h"

static SymLoc *allocated[64];
static size_t n_allocated;

static inline void free_symlocs(void) {
        for (size_t i = 0; i < n_allocated; i++)
                free(allocated[i]);
        n_allocated = 0;
}

static inline const SymLoc *symloc(const char *module, uint64_t module_offset, size_t n, const Frame *frames) {
        SymLoc *l = calloc(1, sizeof(SymLoc) + n * sizeof(Frame));
        if (!l || n_allocated >= ARRAY_SIZE(allocated))
                abort();
        l->module = module;
        l->module_offset = module_offset;
        l->n_frames = n;
        if (n > 0)
                memcpy(l->frames, frames, n * sizeof(Frame));
        allocated[n_allocated++] = l;
        return l;
}
