/* profile/stack-sites.h -- a table of distinct (stack, key) records, the shape every
 * cumulative profile keeps (heap sites by stack and size, contention sites by stack):
 * each record is found again by its pcs and key, and holds the caller's counts beside
 * them. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "hashmap.h"

/* The head of every record; the caller's struct embeds it first. */
typedef struct StackSite {
        Stack stack;                    /* symbolized, leaf first; owned by the table */
        uint64_t key;                   /* what else tells two records of one stack apart */
        uint64_t hash;
} StackSite;

typedef struct StackSites {
        StackSite **sites;
        size_t n, cap;
        size_t site_size;               /* bytes of the caller's record, ≥ sizeof(StackSite) */
        size_t max;                     /* records kept at most */
        U64Map by_hash;                 /* hash (probed linearly) → index + 1 */
} StackSites;

void stack_sites_init(StackSites *t, size_t site_size, size_t max);
void stack_sites_done(StackSites *t);

/* The record of (STACK, KEY), made zeroed when new. STACK is taken either way (its frames
 * freed, or kept by the new record; *STACK is emptied). Its index, or -E2BIG (the table
 * is full) or -ENOMEM. */
long stack_sites_find(StackSites *t, Stack *stack, uint64_t key);

static inline void *stack_sites_get(const StackSites *t, size_t i) {
        return t->sites[i];
}

/* The records in the order of COMPARE (on pointers to records), malloc'ed; NULL when
 * there are none or no memory. */
void *stack_sites_sorted(const StackSites *t, int (*compare)(const void *, const void *));

/* Go's debug=1 record after its values: "@ pcs", its frame lines and a blank line. */
void stack_site_write_debug1(Buf *out, const StackSite *s);
