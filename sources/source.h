/* sources/source.h -- what every source of profiles offers the daemon. A source is where
 * samples come from (ptrace snapshots, perf samples, the heap agent, scheduler events);
 * each profile of the table (table.h) names its source and the variant it is of it.
 *
 * Every hook is optional. The daemon calls start() once the loop runs, collect() on the
 * worker for a NAMED profile (once, or twice for a seconds=N delta), start_window() on
 * the loop for a WINDOW profile, count() on the loop for the index, write_metrics() on
 * the loop for /metrics, and shutdown() once the worker is gone. */
#pragma once

#include <stdbool.h>

#include "buf.h"
#include "pprof.h"
#include "server.h"

struct Service;
struct Target;

/* One collection of a NAMED profile. */
typedef struct Collection {
        const ProfileInfo *info;
        int debug;                      /* 1, 2: text into the reply; 0: a pprof profile */
        bool json;                      /* format=json into the reply */
} Collection;

typedef struct ProfileSource {
        const char *name;               /* how its profiles are collected, for people */
        /* [loop] Timers and tracking at attach. 0 or negative errno (logged). */
        int (*start)(struct Service *s);
        /* [worker] TARGET's profile C now: text, JSON or an error into REPLY (*RET left
         * NULL), or a pprof profile into *RET for the daemon to encode or subtract. */
        void (*collect)(struct Service *s, struct Target *target, const Collection *c, Reply *reply, Profile **ret);
        /* [loop] Starts answering REQ with the WINDOW profile P. */
        void (*start_window)(struct Service *s, Request *req, const WindowProfileRequest *p);
        /* [loop] The index count of INFO for TARGET (INFO->counts says what it is); -1
         * when unknown. Quick. */
        long (*count)(struct Service *s, struct Target *target, const ProfileInfo *info);
        /* [loop] Its lines of the Prometheus exposition. */
        void (*write_metrics)(struct Service *s, Buf *out);
        /* [loop] After the worker stopped: answers what still runs (503) and lets go of
         * everything. */
        void (*shutdown)(struct Service *s);
} ProfileSource;

static inline const ProfileSource *profile_source(const ProfileInfo *info) {
        return info->source;
}
