/* symbolize/debug-root.c -- see debug-root.h.
 *
 * A containerized target maps files of its own root, and an image that ships their debug
 * files has them at its /usr/lib/debug/.build-id/xx/yyyy.debug, which cprofd reaches as
 * /proc/PID/root/usr/lib/debug/... . libdwfl's standard find_debuginfo searches by
 * build-id in every absolute directory of the callbacks' debuginfo_path (then by
 * .gnu_debuglink), and checks that a file it finds carries the module's build-id, so a
 * pid reused meanwhile cannot pair a module with another file's DWARF. The root's
 * directory goes first: the image's own file is the one built with the binary; the
 * host's directories follow, so a debug file installed on the host is found too. */
#include <stdio.h>
#include <stdlib.h>

#include "debug-root.h"

#define DEFAULT_DEBUGINFO_PATH ":.debug:/usr/lib/debug"        /* libdwfl's, for a NULL path */

struct DebugRoot {
        Dwfl_Callbacks callbacks;
        char *debuginfo_path;           /* what callbacks.debuginfo_path points at */
};

DebugRoot *debug_root_new(const Dwfl_Callbacks *base, const char *root) {
        DebugRoot *d = calloc(1, sizeof *d);
        if (!d)
                return NULL;
        const char *host = base->debuginfo_path && *base->debuginfo_path ? *base->debuginfo_path
                                                                           : DEFAULT_DEBUGINFO_PATH;
        if (asprintf(&d->debuginfo_path, "%s/usr/lib/debug:%s", root, host) < 0) {
                free(d);
                return NULL;
        }
        d->callbacks = *base;
        d->callbacks.debuginfo_path = &d->debuginfo_path;
        return d;
}

const Dwfl_Callbacks *debug_root_callbacks(const DebugRoot *d) {
        return &d->callbacks;
}

DebugRoot *debug_root_free(DebugRoot *d) {
        if (!d)
                return NULL;
        free(d->debuginfo_path);
        free(d);
        return NULL;
}
