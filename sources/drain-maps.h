/* sources/drain-maps.h -- a target's maps, read at most once per drain of heap samples, and
 * only when a sample needs them: samples may come from modules loaded since the address
 * space last saw the maps. [worker] */
#pragma once

#include <stdbool.h>

#include "procfs.h"
#include "symbolizer.h"

typedef struct DrainMaps {
        pid_t pid;
        AddressSpace *as;
        Maps maps;
        bool read, ok;
} DrainMaps;

/* The maps (AS updated with them) or NULL when they cannot be read; read on first use. */
static inline const Maps *drain_maps_get(DrainMaps *m) {
        if (!m->read) {
                m->read = true;
                m->ok = procfs_read_maps(m->pid, &m->maps) == 0;
                if (m->ok)
                        (void) address_space_update(m->as, &m->maps);
        }
        return m->ok ? &m->maps : NULL;
}

static inline void drain_maps_done(DrainMaps *m) {
        if (m->ok)
                maps_done(&m->maps);
        m->read = m->ok = false;
}
