/* sources/profiles.h -- pprof profiles of what the daemon collects: the executable mappings
 * of a target (with build-ids and whether cprofd symbolized them) and the goroutine
 * (thread) profile of a thread dump. */
#pragma once

#include "pprof.h"
#include "procfs.h"
#include "symbolizer.h"
#include "threads.h"

/* Adds every executable mapping of MAPS to P, the one of EXE (the main executable) first,
 * each with its build-id and has_* flags from AS. 0, or negative errno. */
int profile_add_target_mappings(Profile *p, const Maps *maps, AddressSpace *as, const char *exe);

/* A new profile for samples taken at HZ: sample types samples/count and TYPE/nanoseconds,
 * period TYPE/nanoseconds of 1e9/HZ (what pprof expects of "cpu" and "wall"), and the
 * target's mappings. 0, or negative errno. */
int sampled_profile_new(const char *type, unsigned hz, const Maps *maps, AddressSpace *as, const char *exe,
                        Profile **ret);

/* The goroutine profile of D: sample type goroutine/count, one sample per thread, merged
 * where stack and labels agree, as Go's goroutine profile groups goroutines. Labels:
 * thread_name, and wait ("mutex &m held by thread 1232") for a thread waiting on a
 * synchronization object. WAITERS_ONLY: only those threads (the locks profile).
 * 0, or negative errno. */
int goroutine_profile_build(const ThreadDump *d, const Maps *maps, AddressSpace *as, const char *exe,
                            bool waiters_only, Profile **ret);
