/* profile/pprof-internal.h -- private to profile/: what the builder (pprof.c), the codec
 * (pprof-codec.c) and the delta (delta.c) share beyond the public contract: adds that take
 * string indices of the profile itself instead of C strings, and say whether to merge. */
#pragma once

#include "pprof.h"

/* Appends a sample type / a comment given as string indices of P (validated). */
int profile_sample_type_add_raw(Profile *p, ProfileValueType vt);
int profile_comment_add_raw(Profile *p, uint32_t comment);

/* Adds a mapping whose strings are already indices of P. MAIN places it before all
 * non-main mappings (see profile_add_mapping). With DEDUP, an existing mapping with the
 * same start, limit, offset, filename and build id is returned instead. */
int profile_mapping_add_raw(Profile *p, const ProfileMapping *m, bool main, bool dedup,
                            uint64_t *ret_id);

/* profile_add_function with string indices (validated). */
int profile_function_add_raw(Profile *p, uint32_t name, uint32_t system_name,
                             uint32_t filename, int64_t start_line, uint64_t *ret_id);

/* profile_add_location, except that a line's function_id may be 0 (decoded profiles). */
int profile_location_add_raw(Profile *p, uint64_t mapping_id, uint64_t address,
                             const ProfileLine *lines, size_t n_lines, bool is_folded,
                             uint64_t *ret_id);

/* Adds a sample with VALUES × FACTOR and LABELS (indices of P; sorted in place). With
 * MERGE, an identical sample gets the values added; without, the sample is appended as it
 * is (the decoder keeps a profile's samples). -ERANGE when a product or sum overflows. */
int profile_sample_add_raw(Profile *p, const uint64_t *location_ids, size_t n,
                           const int64_t *values, int64_t factor,
                           ProfileLabel *labels, size_t n_labels, bool merge);

/* Whether every value of S is zero. */
bool profile_sample_is_zero(const Profile *p, const ProfileSample *s);
