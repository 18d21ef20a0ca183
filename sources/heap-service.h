/* daemon/heap-service.h -- /debug/pprof/heap and /debug/pprof/allocs: heap tracking of
 * each target (heap-tracker.h: the agent, or uprobes with --heap-uprobes), started at the first request (or at
 * attach with --heap), drained every HEAP_DRAIN_MS on the worker. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pprof.h"
#include "server.h"

struct Service;
struct Target;

#define HEAP_DRAIN_MS 100

typedef struct HeapOptions {
        const char *agent_path;
        uint64_t rate;                  /* mean bytes between samples */
        bool at_attach;                 /* --heap: start tracking every target at once */
        bool uprobes;                   /* --heap-uprobes: no agent, uprobes on every call */
} HeapOptions;

/* [loop] Starts the periodic drain (and, with at_attach, tracking). 0 or -ENOMEM. */
int heap_service_start(struct Service *s);
/* [loop] Stops the drain timer. */
void heap_service_stop(struct Service *s);

/* [worker] The heap of TARGET now, tracking started if need be: a pprof profile in
 * *RET (when DEBUG is 0) or Go's text in REPLY; or an error in REPLY (*RET NULL). */
void heap_collect(struct Service *s, struct Target *target, bool allocs, int debug, Reply *reply, Profile **ret);
