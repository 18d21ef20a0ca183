/* profile/threadcreate.h -- Go's threadcreate profile, with the stacks Go has not recorded
 * since 2013: every thread created since tracking began, counted by the stack of the
 * thread that created it, labelled with the new thread's start routine and name; threads
 * that existed when tracking began under one synthetic root, "[created before tracking]",
 * above their own outermost function. Encodings: pprof (threadcreate/count) and Go's
 * debug=1 text ("threadcreate profile: total N", records as goroutine's). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "pprof.h"
#include "stack-sites.h"

#define CREATIONS_SITES_MAX 65536u
#define CREATED_BEFORE_TRACKING "[created before tracking]"

typedef struct CreationSite {
        StackSite site;                 /* key: a hash of the labels and before_tracking */
        uint64_t count;
        bool before_tracking;
        char *start_routine;            /* NULL: not known */
        char *thread_name;
} CreationSite;

typedef struct Creations {
        StackSites sites;               /* of CreationSite */
        uint64_t total, lost;
} Creations;

void creations_init(Creations *c);
void creations_done(Creations *c);

/* One thread created from STACK (taken; for a thread that existed before tracking, a
 * stack of its own outermost function), with its START_ROUTINE and THREAD_NAME (NULL:
 * unknown). 0, -E2BIG (too many records: counted as lost), -ENOMEM. */
int creations_add(Creations *c, Stack *stack, bool before_tracking, const char *start_routine,
                  const char *thread_name);

/* Adds threadcreate/count (and its period type) and one sample per record, labelled
 * start_routine and thread_name, to P (which holds the target's mappings). */
int creations_add_to_profile(const Creations *c, Profile *p);

/* Go's debug=1 text: the header, COMMENT ("# " lines, may be NULL), then the records, most
 * threads first, each "N @ pcs", a "# labels:" line and its frame lines. */
void creations_write_text(const Creations *c, const char *comment, Buf *out);
