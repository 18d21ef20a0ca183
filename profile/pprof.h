/* profile/pprof.h -- the pprof data model shared by every profile type (thread counts, CPU
 * samples, heap, block), its builder, the gzip+protobuf encoder, a validating decoder, and
 * the delta of two profiles (Go's seconds=N).
 *
 * The model mirrors profile.proto (PPROF.md): a Profile owns a string table, sample types,
 * mappings, functions, locations and samples. Strings are referred to by index into
 * p->strings; every entity by its id, which is always its index + 1 (so p->locations[id - 1]
 * is location ID). Read the fields directly; change them only through the functions below,
 * except the plain values time_nanos, duration_nanos and period, and the string-index fields
 * drop_frames, keep_frames and doc_url, which may be set from profile_intern().
 *
 * What the builder guarantees:
 *   - strings[0] is "" and every string occurs once;
 *   - functions are unique by (name, system_name, filename, start_line), locations by their
 *     contents (mapping, address, lines, is_folded) and, for stacks, by address: one
 *     location per physical pc, lines innermost inline first;
 *   - samples with the same locations and the same labels are one sample whose values are
 *     the sums (goroutine-style counting); labels are kept sorted;
 *   - main-executable mappings come first (pprof names the report after mapping[0]);
 *   - every table is capped by ProfileLimits: the contents come from an untrusted target,
 *     and a cap that would be exceeded fails the call with -E2BIG.
 * On failure a call leaves the profile valid (it may hold entries no sample refers to,
 * which pprof accepts). Pure data: no I/O, no logging, not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"
#include "macro.h"

typedef struct ProfileLimits {
        size_t max_sample_types;
        size_t max_samples;
        size_t max_stack_depth;         /* locations per sample */
        size_t max_labels;              /* labels per sample */
        size_t max_mappings;
        size_t max_locations;
        size_t max_lines;               /* lines (inline levels) per location */
        size_t max_functions;
        size_t max_strings;
        size_t max_string_bytes;        /* all strings together, NULs included */
        size_t max_comments;
        size_t max_input_bytes;         /* decoder: encoded size, and size once gunzipped;
                                           protobuf-c may allocate 4× this while parsing */
} ProfileLimits;

/* Generous for any real process, small enough to bound the daemon's memory (a few hundred
 * MiB at worst). Counts are clamped to INT32_MAX by profile_new(). */
extern const ProfileLimits profile_limits_default;

typedef struct ProfileValueType {
        uint32_t type;                  /* string index, e.g. "goroutine" */
        uint32_t unit;                  /* string index, e.g. "count" */
} ProfileValueType;

typedef struct ProfileLabel {
        uint32_t key;                   /* string index */
        uint32_t str;                   /* string index; 0 ("") for a numeric label */
        int64_t num;
        uint32_t num_unit;              /* string index; 0 when none */
} ProfileLabel;

typedef struct ProfileSample {
        uint64_t *location_ids;         /* leaf first */
        size_t n_location_ids;
        int64_t *values;                /* one per sample type */
        ProfileLabel *labels;           /* sorted by (key, str, num, num_unit) indices */
        size_t n_labels;
} ProfileSample;

typedef struct ProfileMapping {
        uint64_t id;
        uint64_t memory_start;
        uint64_t memory_limit;          /* exclusive, as in /proc/PID/maps */
        uint64_t file_offset;
        uint32_t filename;              /* string index */
        uint32_t build_id;              /* string index: lowercase hex */
        bool has_functions;
        bool has_filenames;
        bool has_line_numbers;
        bool has_inline_frames;
} ProfileMapping;

typedef struct ProfileLine {
        uint64_t function_id;           /* 0 only in decoded profiles: no function */
        int64_t line;
        int64_t column;
} ProfileLine;

typedef struct ProfileLocation {
        uint64_t id;
        uint64_t mapping_id;            /* 0: in no mapping */
        uint64_t address;
        ProfileLine *lines;             /* innermost inline first, physical function last */
        size_t n_lines;
        bool is_folded;
} ProfileLocation;

typedef struct ProfileFunction {
        uint64_t id;
        uint32_t name;                  /* string indices */
        uint32_t system_name;
        uint32_t filename;
        int64_t start_line;
} ProfileFunction;

typedef struct ProfileIndex ProfileIndex;

typedef struct Profile {
        ProfileValueType *sample_types;
        size_t n_sample_types;
        ProfileSample *samples;
        size_t n_samples;
        ProfileMapping *mappings;
        size_t n_mappings;
        ProfileLocation *locations;
        size_t n_locations;
        ProfileFunction *functions;
        size_t n_functions;
        char **strings;                 /* strings[0] == "" */
        size_t n_strings;
        uint32_t drop_frames;           /* string indices; 0 when unset */
        uint32_t keep_frames;
        int64_t time_nanos;             /* CLOCK_REALTIME of the profile */
        int64_t duration_nanos;
        ProfileValueType period_type;   /* {0, 0} when unset */
        int64_t period;
        uint32_t *comments;             /* string indices */
        size_t n_comments;
        uint32_t default_sample_type;   /* string index of a sample type's type; 0: the last */
        uint32_t doc_url;               /* string index; 0 when unset */
        ProfileLimits limits;
        ProfileIndex *index;            /* private: the dedup tables */
} Profile;

/* Creates an empty profile (string table [""]) capped by LIMITS (NULL: the defaults).
 * 0 or -ENOMEM; *ret owns the profile. */
int profile_new(const ProfileLimits *limits, Profile **ret);
/* Accepts NULL, returns NULL:  p = profile_free(p); */
Profile *profile_free(Profile *p);
DEFINE_POINTER_CLEANUP(Profile, profile_free);

/* The string at INDEX, "" when INDEX is out of range. */
static inline const char *profile_string(const Profile *p, uint32_t index) {
        return index < p->n_strings ? p->strings[index] : "";
}

/* Interns S (NULL counts as "") and stores its index in *ret_index. 0, -E2BIG (max_strings
 * or max_string_bytes) or -ENOMEM; *ret_index untouched on failure. */
int profile_intern(Profile *p, const char *s, uint32_t *ret_index);

/* Appends a sample type ("goroutine", "count"). Every sample carries one value per type, so
 * types can only be added while the profile has no samples: -EBUSY afterwards. 0, -E2BIG
 * (max_sample_types), -ENOMEM. */
int profile_add_sample_type(Profile *p, const char *type, const char *unit);
/* Sets period_type and period. 0, -E2BIG, -ENOMEM. */
int profile_set_period(Profile *p, const char *type, const char *unit, int64_t period);
/* Sets default_sample_type to TYPE, which must be the type of a sample type already added:
 * -ENOENT otherwise. 0, -ENOMEM. */
int profile_set_default_sample_type(Profile *p, const char *type);
/* Appends a comment. 0, -E2BIG (max_comments, strings), -ENOMEM. */
int profile_add_comment(Profile *p, const char *comment);
/* One comment per line of TEXT ("# " at the start of a line left out): pprof shows them
 * one by one. 0 or negative errno. */
int profile_add_comment_lines(Profile *p, const char *text);

/* One executable mapping of the target, as /proc/PID/maps shows it. */
typedef struct ProfileMappingInfo {
        uint64_t start;
        uint64_t limit;                 /* exclusive end */
        uint64_t offset;                /* file offset */
        const char *path;               /* " (deleted)" already stripped; "[vdso]"; NULL: "" */
        const char *build_id;           /* lowercase hex of NT_GNU_BUILD_ID; NULL: none */
        bool main;                      /* the main executable: placed before all others */
        bool symbolized;                /* sets all four has_* flags, so pprof keeps our
                                           symbols instead of looking for the binary */
} ProfileMappingInfo;

/* Adds a mapping; main mappings are kept before all others, in the order they were added.
 * Add every mapping before the stacks that fall into it: locations take their mapping when
 * they are created. The new id goes to *ret_id (may be NULL). Adding a main mapping after
 * non-main ones shifts the ids of those (locations are updated), so add main first if the
 * ids matter. 0, -EINVAL (limit < start), -E2BIG (max_mappings, strings), -ENOMEM. */
int profile_add_mapping(Profile *p, const ProfileMappingInfo *info, uint64_t *ret_id);

/* Interns a function, deduplicated by (name, system_name, filename, start_line); NULL
 * strings count as "". The id goes to *ret_id (may be NULL). 0, -E2BIG, -ENOMEM. */
int profile_add_function(Profile *p, const char *name, const char *system_name,
                         const char *filename, int64_t start_line, uint64_t *ret_id);

/* Interns a location, deduplicated by its contents. MAPPING_ID is 0 or an existing mapping;
 * LINES (innermost inline first) refer to existing functions, N_LINES may be 0. The id goes
 * to *ret_id (may be NULL). 0, -EINVAL (unknown id), -E2BIG (max_locations, max_lines),
 * -ENOMEM. */
int profile_add_location(Profile *p, uint64_t mapping_id, uint64_t address,
                         const ProfileLine *lines, size_t n_lines, bool is_folded,
                         uint64_t *ret_id);

/* A label as the caller has it: a string label when STR is non-NULL, else numeric. */
/* The sample label of stacks with frames found through the frame-pointer chain. */
#define PROFILE_LABEL_UNWIND "unwind"
#define PROFILE_UNWIND_FRAME_POINTER "frame pointer"

typedef struct ProfileLabelSpec {
        const char *key;                /* required */
        const char *str;                /* NULL: a numeric label */
        int64_t num;
        const char *num_unit;           /* NULL: none */
} ProfileLabelSpec;

/* Adds a sample: LOCATION_IDS (leaf first, N may be 0) refer to existing locations, VALUES
 * holds one value per sample type. A sample with the same locations and the same set of
 * labels (in any order) already present gets VALUES added instead. 0, -EINVAL (no sample
 * types, an unknown location id, a label without key), -E2BIG (max_samples,
 * max_stack_depth, max_labels, strings), -ERANGE (a sum overflows; nothing added), -ENOMEM. */
int profile_add_sample(Profile *p, const uint64_t *location_ids, size_t n,
                       const int64_t *values, const ProfileLabelSpec *labels, size_t n_labels);

/* Adds a sample from a symbolized stack: one location per StackFrame at address
 * stack_frame_lookup_pc(f) (created once per address), in the mapping that contains that
 * address (none when no mapping does), with one line per f->loc->frames entry, innermost
 * first (function name "??" where unknown; no lines at all when no frame has a function or
 * n_frames is 0). A truncated stack (stack_is_truncated) gets an extra outermost location
 * whose function is "[truncated]"; a complete empty stack a single "[no stack]" location,
 * so the sample is not dropped from reports. Then as profile_add_sample(). Same errors;
 * -E2BIG also when a SymLoc has more than max_lines frames. */
int profile_add_stack(Profile *p, const Stack *stack, const int64_t *values,
                      const ProfileLabelSpec *labels, size_t n_labels);
/* The same with a synthetic root frame ROOT ("[created before tracking]") below the
 * outermost one; ROOT NULL: none. */
int profile_add_stack_rooted(Profile *p, const Stack *stack, const char *root, const int64_t *values,
                             const ProfileLabelSpec *labels, size_t n_labels);

typedef enum ProfileEncodeFlags {
        PROFILE_ENCODE_UNCOMPRESSED = 1 << 0,   /* bare protobuf, no gzip */
} ProfileEncodeFlags;

/* Appends P to OUT as profile.proto, gzipped (best speed, gzip header) unless
 * PROFILE_ENCODE_UNCOMPRESSED: what /debug/pprof/NAME serves. 0, -ENOMEM or -EIO (zlib);
 * on failure OUT is as it was. */
int profile_encode(const Profile *p, ProfileEncodeFlags flags, Buf *out);
/* DATA gzipped (one member, as the profiles are) appended to OUT. 0 or negative errno
 * (OUT unchanged then). */
int gzip_append(const void *data, size_t len, Buf *out);

/* Parses a profile (gzipped — magic 1f 8b — or bare protobuf) into a new Profile capped
 * by LIMITS (NULL: defaults), validating everything: string_table[0] == "", every string
 * index in range, ids non-zero and unique, every mapping/location/function reference
 * resolves, one value per sample type, sample types present when samples are. Ids are
 * renumbered to index + 1 and identical strings, functions and locations are merged, which
 * pprof treats alike; samples are kept as they are and in order (not merged), their labels
 * sorted. 0, -EBADMSG (malformed or invalid), -E2BIG (a cap, or protobuf-c's allocation
 * budget), -ENOMEM; *ret untouched on failure. */
int profile_decode(const void *data, size_t size, const ProfileLimits *limits, Profile **ret);

/* Adds every sample of SRC into DST with its values multiplied by FACTOR, re-interning its
 * mappings (matched by start, limit, offset, filename and build id; unmatched ones
 * appended in SRC's order), functions, locations (matched by contents) and strings; samples
 * then group as in profile_add_sample(). DST's header (types, period, times, comments) is
 * not changed. 0, -EINVAL (sample types differ in count, type or unit), -ERANGE (a value
 * overflows), -E2BIG, -ENOMEM; on failure DST holds part of SRC. */
int profile_merge(Profile *dst, const Profile *src, int64_t factor);

/* Go's seconds=N delta: *ret = P1 − P0, i.e. P1 merged with P0 scaled by −1. Samples are
 * keyed by their stack as a sequence of location contents (address, mapping, lines — ids
 * differ between two profiles) and their labels; samples whose values all net to zero are
 * dropped, negative values are kept. The header is P1's, time_nanos = P1's and
 * duration_nanos = P1.time_nanos − P0.time_nanos; mappings are P1's in order (main first)
 * then those only P0 has. Caps are P1's. 0, -EINVAL (sample types differ), -ERANGE,
 * -E2BIG, -ENOMEM; *ret untouched on failure. */
int profile_delta(const Profile *p0, const Profile *p1, Profile **ret);
