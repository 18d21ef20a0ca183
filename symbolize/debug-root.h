/* symbolize/debug-root.h -- separate debug info that a container's root ships. */
#pragma once

#include <elfutils/libdwfl.h>

typedef struct DebugRoot DebugRoot;     /* opaque; one per module opened in another root */

/* Callbacks like BASE whose separate-debug-info search by build-id looks under
 * ROOT/usr/lib/debug/.build-id/xx/yyyy.debug before BASE's directories (the host's).
 * ROOT is the target's root as cprofd reaches it, "/proc/PID/root". NULL on OOM.
 * The callbacks live as long as the DebugRoot: past the Dwfl that uses them. */
DebugRoot *debug_root_new(const Dwfl_Callbacks *base, const char *root);
const Dwfl_Callbacks *debug_root_callbacks(const DebugRoot *d);
/* Accepts NULL, returns NULL. */
DebugRoot *debug_root_free(DebugRoot *d);
