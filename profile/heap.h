/* profile/heap.h -- a sampled heap: allocation sites by stack and size, the sampled objects
 * still live, and Go's two encodings of it (heap/allocs pprof, heap debug=1 text).
 *
 * Counts are kept raw (sampled objects and bytes) and scaled when encoded, as Go's runtime
 * keeps its MemProfile records and pprof scales them: each record by
 * 1 / (1 − e^(−average size / rate)), so that the values estimate the true totals. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "hashmap.h"
#include "pprof.h"
#include "stack-sites.h"

typedef struct HeapSite {
        StackSite site;                 /* key: bytes of each object (Go keys records by
                                           it too) */
        uint64_t allocs, frees;         /* sampled objects */
} HeapSite;

typedef struct Heap {
        uint64_t rate;                  /* mean bytes between samples */
        StackSites sites;               /* of HeapSite */
        U64Map live;                    /* sampled address → site index + 1 */
        uint64_t lost;                  /* samples the target could not hand over */
} Heap;

#define HEAP_SITES_MAX 65536u           /* distinct (stack, size) records kept */

void heap_init(Heap *h, uint64_t rate);
void heap_done(Heap *h);

/* A sampled allocation of BYTES at ADDRESS from STACK (taken: freed by the heap). An
 * address already live is first freed (its free was not seen). 0, -E2BIG (too many sites:
 * counted as lost), -ENOMEM. */
int heap_alloc(Heap *h, uint64_t address, uint64_t bytes, Stack *stack);
/* The free of ADDRESS: ignored unless it is a live sampled object. */
void heap_free(Heap *h, uint64_t address);

/* Go's scaleHeapSample: COUNT objects of BYTES in all, sampled at RATE. */
void heap_scale(uint64_t count, uint64_t bytes, uint64_t rate, int64_t *ret_count, int64_t *ret_bytes);

/* Adds the four sample types, the period, and one sample per site (with Go's "bytes"
 * label) to P, which holds the target's mappings. ALLOCS makes alloc_space the default
 * sample type. 0 or negative errno. */
int heap_add_to_profile(const Heap *h, bool allocs, Profile *p);

/* Go's heap?debug=1 records: the "heap profile: …" header line, COMMENT (lines of its
 * own, may be NULL) right after it, then one record per site, largest in-use bytes first,
 * formatted by the tab writer. */
void heap_write_text(const Heap *h, const char *comment, Buf *out);
