/* sources/snapshots.h -- the profiles of ptrace snapshots: goroutine (every thread's stack
 * now), locks (what the waiting threads wait on), threadgrowth (stack groups growing over
 * the periodic snapshots' history) and the wall-clock window profile (wall.h). */
#pragma once

#include <sys/types.h>

#include "server.h"
#include "source.h"

typedef enum SnapshotProfile {
        SNAPSHOT_GOROUTINE,
        SNAPSHOT_LOCKS,
        SNAPSHOT_GROWTH,
        SNAPSHOT_WALL,
} SnapshotProfile;

extern const ProfileSource snapshot_source;

/* Fills REPLY for a failed target_thread_dump() of PID (R, TRACER as it returned them):
 * 410 when the target exited, 503 naming another tracer, else 503 with the error. */
void reply_thread_dump_error(Reply *reply, pid_t pid, int r, pid_t tracer);
