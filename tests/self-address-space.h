/* tests/self-address-space.h -- an AddressSpace of the test process itself, as of its
 * maps now, for unit tests of the symbolizer. */
#pragma once

#include <unistd.h>

#include "procfs.h"
#include "symbolizer.h"
#include "tiny-test.h"

static inline AddressSpace *self_address_space(Symbolizer *s) {
        AddressSpace *as = NULL;
        Maps maps;

        ASSERT_EQ(address_space_new(s, getpid(), &as), 0);
        ASSERT_EQ(procfs_read_maps(getpid(), &maps), 0);
        ASSERT_EQ(address_space_update(as, &maps), 0);
        maps_done(&maps);
        return as;
}
