/* sources/heap-service.h -- /debug/pprof/heap and /debug/pprof/allocs: heap tracking of
 * each target (heap-tracker.h: the agent, or uprobes with --heap-uprobes), started at the first request (or at
 * attach with --heap), drained every HEAP_DRAIN_MS on the worker. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pprof.h"
#include "server.h"
#include "source.h"

struct Service;
struct Target;

#define HEAP_DRAIN_MS 100

typedef struct HeapOptions {
        const char *agent_path;
        uint64_t rate;                  /* mean bytes between samples */
        bool at_attach;                 /* --heap: start tracking every target at once */
        bool uprobes;                   /* --heap-uprobes: no agent, uprobes on every call */
} HeapOptions;

typedef enum HeapProfile {
        HEAP_INUSE,                     /* heap: inuse_space by default */
        HEAP_ALLOCS,                    /* allocs: alloc_space by default */
} HeapProfile;

/* The source of heap and allocs: start runs the periodic drain (and, with at_attach,
 * tracking); collect gives the heap of a target now, tracking started if need be; count
 * the allocation records; shutdown stops the drain timer. */
extern const ProfileSource heap_source;
