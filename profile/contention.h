/* profile/contention.h -- Go's block and mutex profiles: per stack, how many waits there
 * were and how long they lasted, and Go's two encodings of that (pprof with
 * contentions/count and delay/nanoseconds; debug=1 text, "--- contention:" or
 * "--- mutex:" with cycles/second and, for mutex, the sampling period).
 *
 * Values are estimates of the true totals: a caller that records one event in N adds
 * it with weight N (block's rate sampling), or records every event it picks with weight 1
 * and sets PERIOD to N, which pprof output multiplies in and the text states as Go's
 * "sampling period" (mutex, as Go's runtime keeps its MutexProfileFraction). */
#pragma once

#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "pprof.h"
#include "stack-sites.h"

#define CONTENTION_SITES_MAX 65536u     /* distinct stacks kept */

typedef struct ContentionSite {
        StackSite site;
        double count;                   /* waits (weighted) */
        double delay_ns;                /* their total delay (weighted) */
} ContentionSite;

typedef struct Contention {
        StackSites sites;               /* of ContentionSite */
        uint64_t period;                /* ≥ 1: each recorded event stands for PERIOD */
        uint64_t lost;                  /* events dropped: the table was full */
        double count, delay_ns;         /* sums over the sites */
} Contention;

void contention_init(Contention *c, uint64_t period);
void contention_done(Contention *c);

/* One event of STACK (taken) with weight WEIGHT (≥ 1 when sampled) that waited
 * DELAY_NS. 0, -E2BIG (too many stacks: counted as lost), -ENOMEM. */
int contention_add(Contention *c, Stack *stack, double weight, uint64_t delay_ns);

/* Adds Go's sample types (contentions/count, delay/nanoseconds), its period type
 * (contentions/count, period 1) and one sample per stack, scaled by PERIOD, to P (which
 * holds the target's mappings). 0 or negative errno. */
int contention_add_to_profile(const Contention *c, Profile *p);

/* Go's debug=1 text: "--- NAME:" ("contention" or "mutex"), cycles/second (cprofd's
 * cycles are nanoseconds), for mutex the sampling period, COMMENT ("# " lines of its own,
 * may be NULL), then "DELAY COUNT @ pcs" and frame lines per stack, largest delay first,
 * through the tab writer. Values as recorded (unscaled by PERIOD, as Go prints them). */
void contention_write_text(const Contention *c, const char *name, const char *comment, Buf *out);
