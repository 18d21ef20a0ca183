/* sources/heap-uprobes.h -- the fallback heap tracker: uprobes on the allocator's malloc,
 * calloc, realloc (entries and returns) and free, no code in the target at all. Every call
 * traps into the kernel (about 1 µs for malloc, more for free on this machine), so this is
 * for programs that allocate little, or for when the agent cannot be loaded; --heap-uprobes
 * chooses it. Sampling by bytes happens here, in the daemon, with the same Poisson rule as
 * the agent's; only sampled calls are unwound. [worker] */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "drain-maps.h"
#include "heap.h"

typedef struct HeapUprobes HeapUprobes;

/* Places the probes on the allocator PID uses. 0, or negative errno with ERR set. */
int heap_uprobes_start(pid_t pid, uint64_t rate, HeapUprobes **ret, char *err, size_t errlen);
/* Reads what the probes saw into HEAP, unwinding sampled calls with MAPS->as (the maps
 * read on the first one). Returns the samples added. */
uint64_t heap_uprobes_drain(HeapUprobes *u, DrainMaps *maps, Heap *heap);
/* Removes every probe. Accepts NULL, returns NULL. */
HeapUprobes *heap_uprobes_free(HeapUprobes *u);
