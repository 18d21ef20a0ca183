/* profile/pprof.c -- the pprof data model and its builder: interning of strings,
 * functions, locations and samples, the order of mappings, and the caps.
 *
 * Invariants the codec and the delta rely on:
 *   - strings[0] == "" and each string occurs once;
 *   - every entity's id == its index + 1, so a reference is resolved by indexing;
 *   - a hash index per table finds an entry by contents: strings, functions (name,
 *     system_name, filename, start_line), locations (mapping, address, lines, is_folded),
 *     mappings (start, limit, offset, filename, build_id), samples (locations, sorted
 *     labels). Only the first of equal entries is indexed, so entries the decoder appends
 *     as they are stay reachable by id;
 *   - profile_add_stack() also finds locations by address (one location per physical pc,
 *     the symbolizer's answer for an address does not change within one profile).
 * Every table is capped (ProfileLimits): the contents come from an untrusted target and
 * the daemon's memory must stay bounded. Checks happen before anything is changed, so a
 * failing call leaves the profile valid. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "pprof-internal.h"

const ProfileLimits profile_limits_default = {
        .max_sample_types = 64,
        .max_samples = 1u << 20,
        .max_stack_depth = 4096,        /* the unwinder stops at 1024 */
        .max_labels = 64,
        .max_mappings = 1u << 16,
        .max_locations = 1u << 21,
        .max_lines = 256,
        .max_functions = 1u << 21,
        .max_strings = 1u << 22,
        .max_string_bytes = 256u << 20,
        .max_comments = 1024,
        .max_input_bytes = 64u << 20,   /* the decoder may use 4× as much for protobuf-c */
};

/* ---- a hash index of entry numbers; equality is asked of the caller ---- */

typedef struct Index {
        uint64_t *hashes;
        uint32_t *slots;                /* entry index + 1; 0: empty */
        size_t n;
        size_t cap;                     /* 0 or a power of two */
} Index;

typedef bool (*IndexEq)(const Profile *p, uint32_t entry, const void *key);

static int index_reserve(Index *ix, size_t n) {
        if (n * 4 <= ix->cap * 3)
                return 0;

        size_t cap = ix->cap ? ix->cap : 64;
        while (n * 4 > cap * 3)
                cap *= 2;
        uint64_t *hashes = calloc(cap, sizeof *hashes);
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!hashes || !slots) {
                free(hashes);
                free(slots);
                return -ENOMEM;
        }
        for (size_t j = 0; j < ix->cap; j++) {
                if (!ix->slots[j])
                        continue;
                size_t i = ix->hashes[j] & (cap - 1);
                while (slots[i])
                        i = (i + 1) & (cap - 1);
                hashes[i] = ix->hashes[j];
                slots[i] = ix->slots[j];
        }
        free(ix->hashes);
        free(ix->slots);
        ix->hashes = hashes;
        ix->slots = slots;
        ix->cap = cap;
        return 0;
}

/* The first entry with hash H that EQ accepts, or -1. */
static int64_t index_find(const Index *ix, uint64_t h, IndexEq eq, const Profile *p,
                          const void *key) {
        if (ix->cap == 0)
                return -1;
        for (size_t i = h & (ix->cap - 1); ix->slots[i]; i = (i + 1) & (ix->cap - 1))
                if (ix->hashes[i] == h && eq(p, ix->slots[i] - 1, key))
                        return ix->slots[i] - 1;
        return -1;
}

/* Room must have been made with index_reserve(ix, ix->n + 1). */
static void index_insert(Index *ix, uint64_t h, uint32_t entry) {
        size_t i = h & (ix->cap - 1);
        while (ix->slots[i])
                i = (i + 1) & (ix->cap - 1);
        ix->hashes[i] = h;
        ix->slots[i] = entry + 1;
        ix->n++;
}

static void index_clear(Index *ix) {
        if (ix->cap > 0)
                memset(ix->slots, 0, ix->cap * sizeof *ix->slots);
        ix->n = 0;
}

static void index_done(Index *ix) {
        free(ix->hashes);
        free(ix->slots);
        *ix = (Index) {};
}

static uint64_t hmix(uint64_t h, uint64_t v) {
        return h ^ (v + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2));
}

static uint64_t hfinal(uint64_t h) {
        return hash_bytes(&h, sizeof h);
}

/* ---- the private part of a Profile ---- */

typedef struct MappingRange {
        uint64_t start;
        uint64_t limit;
        uint64_t id;
} MappingRange;

struct ProfileIndex {
        Index strings, mappings, functions, locations, samples;
        U64Map by_address;              /* stack address → location id (as a pointer) */
        MappingRange *ranges;           /* mappings sorted by start, for address lookups */
        bool ranges_dirty;
        size_t n_main;                  /* main-executable mappings, all at the front */
        size_t string_bytes;
        size_t cap_sample_types, cap_samples, cap_mappings, cap_locations, cap_functions,
               cap_strings, cap_comments;
};

static int grow_array(void **array, size_t *cap, size_t need, size_t size) {
        if (need <= *cap)
                return 0;
        size_t c = *cap ? *cap : 8;
        while (c < need)
                c *= 2;
        void *a = reallocarray(*array, c, size);
        if (!a)
                return -ENOMEM;
        *array = a;
        *cap = c;
        return 0;
}

#define GROW(p, field, capfield, need) \
        grow_array((void **) &(p)->field, &(p)->index->capfield, (need), sizeof(*(p)->field))

static void sample_done(ProfileSample *s) {
        free(s->location_ids);
        free(s->values);
        free(s->labels);
}

Profile *profile_free(Profile *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_samples; i++)
                sample_done(&p->samples[i]);
        for (size_t i = 0; i < p->n_locations; i++)
                free(p->locations[i].lines);
        for (size_t i = 0; i < p->n_strings; i++)
                free(p->strings[i]);
        free(p->sample_types);
        free(p->samples);
        free(p->mappings);
        free(p->locations);
        free(p->functions);
        free(p->strings);
        free(p->comments);
        if (p->index) {
                index_done(&p->index->strings);
                index_done(&p->index->mappings);
                index_done(&p->index->functions);
                index_done(&p->index->locations);
                index_done(&p->index->samples);
                u64map_done(&p->index->by_address, NULL);
                free(p->index->ranges);
                free(p->index);
        }
        free(p);
        return NULL;
}

static size_t clamp_count(size_t n) {
        return MIN(n, (size_t) INT32_MAX);
}

int profile_new(const ProfileLimits *limits, Profile **ret) {
        _cleanup_(profile_freep) Profile *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->index = calloc(1, sizeof *p->index);
        if (!p->index)
                return -ENOMEM;

        /* Entry numbers are kept in 32 bits. */
        ProfileLimits l = limits ? *limits : profile_limits_default;
        l.max_sample_types = clamp_count(l.max_sample_types);
        l.max_samples = clamp_count(l.max_samples);
        l.max_stack_depth = clamp_count(l.max_stack_depth);
        l.max_labels = clamp_count(l.max_labels);
        l.max_mappings = clamp_count(l.max_mappings);
        l.max_locations = clamp_count(l.max_locations);
        l.max_lines = clamp_count(l.max_lines);
        l.max_functions = clamp_count(l.max_functions);
        l.max_strings = clamp_count(MAX(l.max_strings, (size_t) 1));   /* room for "" */
        l.max_comments = clamp_count(l.max_comments);
        p->limits = l;

        if (GROW(p, strings, cap_strings, 1) < 0 ||
            index_reserve(&p->index->strings, 1) < 0)
                return -ENOMEM;
        p->strings[0] = strdup("");
        if (!p->strings[0])
                return -ENOMEM;
        p->n_strings = 1;
        p->index->string_bytes = 1;
        index_insert(&p->index->strings, hfinal(hash_bytes("", 0)), 0);

        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- strings ---- */

static bool string_eq(const Profile *p, uint32_t entry, const void *key) {
        return strcmp(p->strings[entry], key) == 0;
}

static uint64_t string_hash(const char *s) {
        return hfinal(hash_bytes(s, strlen(s)));
}

static int64_t string_lookup(const Profile *p, const char *s) {
        return index_find(&p->index->strings, string_hash(s), string_eq, p, s);
}

int profile_intern(Profile *p, const char *s, uint32_t *ret_index) {
        if (!s)
                s = "";

        uint64_t h = string_hash(s);
        int64_t i = index_find(&p->index->strings, h, string_eq, p, s);
        if (i >= 0) {
                *ret_index = (uint32_t) i;
                return 0;
        }

        size_t len = strlen(s);
        size_t room = p->limits.max_string_bytes - MIN(p->index->string_bytes, p->limits.max_string_bytes);
        if (p->n_strings >= p->limits.max_strings || len >= room)       /* len + NUL > room */
                return -E2BIG;
        if (GROW(p, strings, cap_strings, p->n_strings + 1) < 0 ||
            index_reserve(&p->index->strings, p->index->strings.n + 1) < 0)
                return -ENOMEM;
        char *copy = strdup(s);
        if (!copy)
                return -ENOMEM;

        p->strings[p->n_strings] = copy;
        index_insert(&p->index->strings, h, (uint32_t) p->n_strings);
        p->index->string_bytes += len + 1;
        *ret_index = (uint32_t) p->n_strings++;
        return 0;
}

/* ---- header ---- */

int profile_sample_type_add_raw(Profile *p, ProfileValueType vt) {
        if (p->n_samples > 0)
                return -EBUSY;
        if (vt.type >= p->n_strings || vt.unit >= p->n_strings)
                return -EINVAL;
        if (p->n_sample_types >= p->limits.max_sample_types)
                return -E2BIG;
        if (GROW(p, sample_types, cap_sample_types, p->n_sample_types + 1) < 0)
                return -ENOMEM;
        p->sample_types[p->n_sample_types++] = vt;
        return 0;
}

int profile_add_sample_type(Profile *p, const char *type, const char *unit) {
        ProfileValueType vt;
        int r;

        if (p->n_samples > 0)
                return -EBUSY;
        if (p->n_sample_types >= p->limits.max_sample_types)
                return -E2BIG;
        r = profile_intern(p, type, &vt.type);
        if (r < 0)
                return r;
        r = profile_intern(p, unit, &vt.unit);
        if (r < 0)
                return r;
        return profile_sample_type_add_raw(p, vt);
}

int profile_set_period(Profile *p, const char *type, const char *unit, int64_t period) {
        uint32_t t, u;
        int r;

        r = profile_intern(p, type, &t);
        if (r < 0)
                return r;
        r = profile_intern(p, unit, &u);
        if (r < 0)
                return r;
        p->period_type = (ProfileValueType) { t, u };
        p->period = period;
        return 0;
}

int profile_set_default_sample_type(Profile *p, const char *type) {
        int64_t i = string_lookup(p, type ? type : "");
        if (i <= 0)
                return -ENOENT;
        for (size_t k = 0; k < p->n_sample_types; k++)
                if (p->sample_types[k].type == (uint32_t) i) {
                        p->default_sample_type = (uint32_t) i;
                        return 0;
                }
        return -ENOENT;
}

int profile_comment_add_raw(Profile *p, uint32_t comment) {
        if (comment >= p->n_strings)
                return -EINVAL;
        if (p->n_comments >= p->limits.max_comments)
                return -E2BIG;
        if (GROW(p, comments, cap_comments, p->n_comments + 1) < 0)
                return -ENOMEM;
        p->comments[p->n_comments++] = comment;
        return 0;
}

int profile_add_comment(Profile *p, const char *comment) {
        uint32_t c;
        int r;

        if (p->n_comments >= p->limits.max_comments)
                return -E2BIG;
        r = profile_intern(p, comment, &c);
        if (r < 0)
                return r;
        return profile_comment_add_raw(p, c);
}

int profile_add_comment_lines(Profile *p, const char *text) {
        for (const char *line = text; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                if (len >= 2 && line[0] == '#' && line[1] == ' ') {
                        line += 2;
                        len -= 2;
                }
                char *comment = strndup(line, len);
                if (!comment)
                        return -ENOMEM;
                int r = profile_add_comment(p, comment);
                free(comment);
                if (r < 0)
                        return r;
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

/* ---- mappings ---- */

static uint64_t mapping_hash(const ProfileMapping *m) {
        uint64_t h = 0;
        h = hmix(h, m->memory_start);
        h = hmix(h, m->memory_limit);
        h = hmix(h, m->file_offset);
        h = hmix(h, m->filename);
        h = hmix(h, m->build_id);
        return hfinal(h);
}

static bool mapping_eq(const Profile *p, uint32_t entry, const void *key) {
        const ProfileMapping *a = &p->mappings[entry], *b = key;
        return a->memory_start == b->memory_start && a->memory_limit == b->memory_limit &&
                a->file_offset == b->file_offset && a->filename == b->filename &&
                a->build_id == b->build_id;
}

static uint64_t location_hash(uint64_t mapping_id, uint64_t address, const ProfileLine *lines,
                              size_t n_lines, bool is_folded) {
        uint64_t h = 0;
        h = hmix(h, mapping_id);
        h = hmix(h, address);
        h = hmix(h, is_folded);
        h = hmix(h, n_lines);
        for (size_t i = 0; i < n_lines; i++) {
                h = hmix(h, lines[i].function_id);
                h = hmix(h, (uint64_t) lines[i].line);
                h = hmix(h, (uint64_t) lines[i].column);
        }
        return hfinal(h);
}

/* Mapping ids shifted: the content indexes hold stale hashes and entry numbers. Both were
 * sized for the same number of entries, so re-inserting cannot fail. */
static void reindex_after_mapping_shift(Profile *p) {
        index_clear(&p->index->mappings);
        for (size_t i = 0; i < p->n_mappings; i++) {
                const ProfileMapping *m = &p->mappings[i];
                uint64_t h = mapping_hash(m);

                if (index_find(&p->index->mappings, h, mapping_eq, p, m) < 0)
                        index_insert(&p->index->mappings, h, (uint32_t) i);
        }

        index_clear(&p->index->locations);
        for (size_t i = 0; i < p->n_locations; i++) {
                const ProfileLocation *l = &p->locations[i];
                uint64_t h = location_hash(l->mapping_id, l->address, l->lines, l->n_lines,
                                           l->is_folded);

                index_insert(&p->index->locations, h, (uint32_t) i);
        }
}

int profile_mapping_add_raw(Profile *p, const ProfileMapping *m, bool main, bool dedup,
                            uint64_t *ret_id) {
        if (m->filename >= p->n_strings || m->build_id >= p->n_strings ||
            m->memory_limit < m->memory_start)
                return -EINVAL;

        uint64_t h = mapping_hash(m);
        int64_t found = index_find(&p->index->mappings, h, mapping_eq, p, m);
        if (dedup && found >= 0) {
                if (ret_id)
                        *ret_id = (uint64_t) found + 1;
                return 0;
        }

        if (p->n_mappings >= p->limits.max_mappings)
                return -E2BIG;
        if (GROW(p, mappings, cap_mappings, p->n_mappings + 1) < 0 ||
            index_reserve(&p->index->mappings, p->n_mappings + 1) < 0)
                return -ENOMEM;
        MappingRange *ranges = reallocarray(p->index->ranges, p->n_mappings + 1, sizeof *ranges);
        if (!ranges)
                return -ENOMEM;
        p->index->ranges = ranges;
        p->index->ranges_dirty = true;

        size_t pos = main ? p->index->n_main : p->n_mappings;
        memmove(p->mappings + pos + 1, p->mappings + pos,
                (p->n_mappings - pos) * sizeof *p->mappings);
        p->mappings[pos] = *m;
        p->n_mappings++;
        for (size_t i = pos; i < p->n_mappings; i++)
                p->mappings[i].id = i + 1;
        if (main)
                p->index->n_main++;

        if (pos + 1 < p->n_mappings) {
                for (size_t i = 0; i < p->n_locations; i++)
                        if (p->locations[i].mapping_id > pos)
                                p->locations[i].mapping_id++;
                reindex_after_mapping_shift(p);
        } else if (found < 0)
                index_insert(&p->index->mappings, h, (uint32_t) pos);

        if (ret_id)
                *ret_id = pos + 1;
        return 0;
}

int profile_add_mapping(Profile *p, const ProfileMappingInfo *info, uint64_t *ret_id) {
        ProfileMapping m = {
                .memory_start = info->start,
                .memory_limit = info->limit,
                .file_offset = info->offset,
                .has_functions = info->symbolized,
                .has_filenames = info->symbolized,
                .has_line_numbers = info->symbolized,
                .has_inline_frames = info->symbolized,
        };
        int r;

        if (info->limit < info->start)
                return -EINVAL;
        r = profile_intern(p, info->path, &m.filename);
        if (r < 0)
                return r;
        r = profile_intern(p, info->build_id, &m.build_id);
        if (r < 0)
                return r;
        return profile_mapping_add_raw(p, &m, info->main, false, ret_id);
}

static int range_cmp(const void *a, const void *b) {
        const MappingRange *x = a, *y = b;
        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

/* The id of the mapping with the greatest start ≤ ADDRESS if it contains ADDRESS, else 0.
 * /proc/PID/maps lines never overlap, so that is the one. */
static uint64_t mapping_for_address(Profile *p, uint64_t address) {
        ProfileIndex *ix = p->index;

        if (ix->ranges_dirty) {
                for (size_t i = 0; i < p->n_mappings; i++)
                        ix->ranges[i] = (MappingRange) {
                                p->mappings[i].memory_start, p->mappings[i].memory_limit, i + 1 };
                if (p->n_mappings > 1)
                        qsort(ix->ranges, p->n_mappings, sizeof *ix->ranges, range_cmp);
                ix->ranges_dirty = false;
        }

        size_t lo = 0, hi = p->n_mappings;      /* first range with start > address */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (ix->ranges[mid].start <= address)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0 || address >= ix->ranges[lo - 1].limit)
                return 0;
        return ix->ranges[lo - 1].id;
}

/* ---- functions ---- */

static uint64_t function_hash(const ProfileFunction *f) {
        uint64_t h = 0;
        h = hmix(h, f->name);
        h = hmix(h, f->system_name);
        h = hmix(h, f->filename);
        h = hmix(h, (uint64_t) f->start_line);
        return hfinal(h);
}

static bool function_eq(const Profile *p, uint32_t entry, const void *key) {
        const ProfileFunction *a = &p->functions[entry], *b = key;
        return a->name == b->name && a->system_name == b->system_name &&
                a->filename == b->filename && a->start_line == b->start_line;
}

int profile_function_add_raw(Profile *p, uint32_t name, uint32_t system_name,
                             uint32_t filename, int64_t start_line, uint64_t *ret_id) {
        ProfileFunction f = { 0, name, system_name, filename, start_line };

        if (name >= p->n_strings || system_name >= p->n_strings || filename >= p->n_strings)
                return -EINVAL;

        uint64_t h = function_hash(&f);
        int64_t found = index_find(&p->index->functions, h, function_eq, p, &f);
        if (found >= 0) {
                if (ret_id)
                        *ret_id = (uint64_t) found + 1;
                return 0;
        }

        if (p->n_functions >= p->limits.max_functions)
                return -E2BIG;
        if (GROW(p, functions, cap_functions, p->n_functions + 1) < 0 ||
            index_reserve(&p->index->functions, p->n_functions + 1) < 0)
                return -ENOMEM;
        f.id = p->n_functions + 1;
        p->functions[p->n_functions] = f;
        index_insert(&p->index->functions, h, (uint32_t) p->n_functions);
        p->n_functions++;
        if (ret_id)
                *ret_id = f.id;
        return 0;
}

int profile_add_function(Profile *p, const char *name, const char *system_name,
                         const char *filename, int64_t start_line, uint64_t *ret_id) {
        uint32_t n, s, f;
        int r;

        r = profile_intern(p, name, &n);
        if (r < 0)
                return r;
        r = profile_intern(p, system_name, &s);
        if (r < 0)
                return r;
        r = profile_intern(p, filename, &f);
        if (r < 0)
                return r;
        return profile_function_add_raw(p, n, s, f, start_line, ret_id);
}

/* ---- locations ---- */

typedef struct LocationKey {
        uint64_t mapping_id;
        uint64_t address;
        const ProfileLine *lines;
        size_t n_lines;
        bool is_folded;
} LocationKey;

static bool location_eq(const Profile *p, uint32_t entry, const void *key) {
        const ProfileLocation *a = &p->locations[entry];
        const LocationKey *b = key;

        if (a->mapping_id != b->mapping_id || a->address != b->address ||
            a->is_folded != b->is_folded || a->n_lines != b->n_lines)
                return false;
        for (size_t i = 0; i < a->n_lines; i++)
                if (a->lines[i].function_id != b->lines[i].function_id ||
                    a->lines[i].line != b->lines[i].line ||
                    a->lines[i].column != b->lines[i].column)
                        return false;
        return true;
}

int profile_location_add_raw(Profile *p, uint64_t mapping_id, uint64_t address,
                             const ProfileLine *lines, size_t n_lines, bool is_folded,
                             uint64_t *ret_id) {
        LocationKey key = { mapping_id, address, lines, n_lines, is_folded };

        if (n_lines > p->limits.max_lines)
                return -E2BIG;
        if (mapping_id > p->n_mappings)
                return -EINVAL;
        for (size_t i = 0; i < n_lines; i++)
                if (lines[i].function_id > p->n_functions)
                        return -EINVAL;

        uint64_t h = location_hash(mapping_id, address, lines, n_lines, is_folded);
        int64_t found = index_find(&p->index->locations, h, location_eq, p, &key);
        if (found >= 0) {
                if (ret_id)
                        *ret_id = (uint64_t) found + 1;
                return 0;
        }

        if (p->n_locations >= p->limits.max_locations)
                return -E2BIG;
        if (GROW(p, locations, cap_locations, p->n_locations + 1) < 0 ||
            index_reserve(&p->index->locations, p->n_locations + 1) < 0)
                return -ENOMEM;
        ProfileLine *copy = NULL;
        if (n_lines > 0) {
                copy = reallocarray(NULL, n_lines, sizeof *copy);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, lines, n_lines * sizeof *copy);
        }

        p->locations[p->n_locations] = (ProfileLocation) {
                .id = p->n_locations + 1,
                .mapping_id = mapping_id,
                .address = address,
                .lines = copy,
                .n_lines = n_lines,
                .is_folded = is_folded,
        };
        index_insert(&p->index->locations, h, (uint32_t) p->n_locations);
        p->n_locations++;
        if (ret_id)
                *ret_id = p->n_locations;
        return 0;
}

int profile_add_location(Profile *p, uint64_t mapping_id, uint64_t address,
                         const ProfileLine *lines, size_t n_lines, bool is_folded,
                         uint64_t *ret_id) {
        for (size_t i = 0; i < n_lines; i++)
                if (lines[i].function_id == 0)
                        return -EINVAL;
        return profile_location_add_raw(p, mapping_id, address, lines, n_lines, is_folded, ret_id);
}

/* ---- samples ---- */

static int label_cmp(const void *a, const void *b) {
        const ProfileLabel *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        if (x->str != y->str)
                return x->str < y->str ? -1 : 1;
        if (x->num != y->num)
                return x->num < y->num ? -1 : 1;
        return x->num_unit < y->num_unit ? -1 : x->num_unit > y->num_unit;
}

typedef struct SampleKey {
        const uint64_t *ids;
        size_t n;
        const ProfileLabel *labels;
        size_t n_labels;
} SampleKey;

static uint64_t sample_hash(const SampleKey *k) {
        uint64_t h = 0;
        h = hmix(h, k->n);
        for (size_t i = 0; i < k->n; i++)
                h = hmix(h, k->ids[i]);
        h = hmix(h, k->n_labels);
        for (size_t i = 0; i < k->n_labels; i++) {
                h = hmix(h, k->labels[i].key);
                h = hmix(h, k->labels[i].str);
                h = hmix(h, (uint64_t) k->labels[i].num);
                h = hmix(h, k->labels[i].num_unit);
        }
        return hfinal(h);
}

static bool sample_eq(const Profile *p, uint32_t entry, const void *key) {
        const ProfileSample *a = &p->samples[entry];
        const SampleKey *b = key;

        if (a->n_location_ids != b->n || a->n_labels != b->n_labels)
                return false;
        if (b->n > 0 && memcmp(a->location_ids, b->ids, b->n * sizeof *b->ids) != 0)
                return false;
        for (size_t i = 0; i < b->n_labels; i++)
                if (label_cmp(&a->labels[i], &b->labels[i]) != 0)
                        return false;
        return true;
}

bool profile_sample_is_zero(const Profile *p, const ProfileSample *s) {
        for (size_t i = 0; i < p->n_sample_types; i++)
                if (s->values[i] != 0)
                        return false;
        return true;
}

int profile_sample_add_raw(Profile *p, const uint64_t *location_ids, size_t n,
                           const int64_t *values, int64_t factor,
                           ProfileLabel *labels, size_t n_labels, bool merge) {
        size_t nv = p->n_sample_types;

        if (n > p->limits.max_stack_depth || n_labels > p->limits.max_labels)
                return -E2BIG;
        if (nv == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (location_ids[i] == 0 || location_ids[i] > p->n_locations)
                        return -EINVAL;
        for (size_t i = 0; i < n_labels; i++)
                if (labels[i].key >= p->n_strings || labels[i].str >= p->n_strings ||
                    labels[i].num_unit >= p->n_strings)
                        return -EINVAL;
        if (n_labels > 1)
                qsort(labels, n_labels, sizeof *labels, label_cmp);

        _cleanup_free_ int64_t *scaled = reallocarray(NULL, nv, sizeof *scaled);
        if (!scaled)
                return -ENOMEM;
        for (size_t i = 0; i < nv; i++)
                if (__builtin_mul_overflow(values[i], factor, &scaled[i]))
                        return -ERANGE;

        SampleKey key = { location_ids, n, labels, n_labels };
        uint64_t h = sample_hash(&key);
        int64_t found = index_find(&p->index->samples, h, sample_eq, p, &key);
        if (merge && found >= 0) {
                int64_t *v = p->samples[found].values;
                for (size_t i = 0; i < nv; i++)         /* all or nothing */
                        if (__builtin_add_overflow(v[i], scaled[i], &scaled[i]))
                                return -ERANGE;
                memcpy(v, scaled, nv * sizeof *v);
                return 0;
        }

        if (p->n_samples >= p->limits.max_samples)
                return -E2BIG;
        if (GROW(p, samples, cap_samples, p->n_samples + 1) < 0 ||
            index_reserve(&p->index->samples, p->n_samples + 1) < 0)
                return -ENOMEM;

        ProfileSample s = { .n_location_ids = n, .n_labels = n_labels };
        if (n > 0) {
                s.location_ids = reallocarray(NULL, n, sizeof *s.location_ids);
                if (!s.location_ids)
                        return -ENOMEM;
                memcpy(s.location_ids, location_ids, n * sizeof *s.location_ids);
        }
        if (n_labels > 0) {
                s.labels = reallocarray(NULL, n_labels, sizeof *s.labels);
                if (!s.labels) {
                        sample_done(&s);
                        return -ENOMEM;
                }
                memcpy(s.labels, labels, n_labels * sizeof *s.labels);
        }
        s.values = TAKE_PTR(scaled);

        p->samples[p->n_samples] = s;
        if (found < 0)
                index_insert(&p->index->samples, h, (uint32_t) p->n_samples);
        p->n_samples++;
        return 0;
}

int profile_add_sample(Profile *p, const uint64_t *location_ids, size_t n,
                       const int64_t *values, const ProfileLabelSpec *labels, size_t n_labels) {
        int r;

        if (n_labels > p->limits.max_labels || n > p->limits.max_stack_depth)
                return -E2BIG;
        if (p->n_sample_types == 0)
                return -EINVAL;

        _cleanup_free_ ProfileLabel *l = NULL;
        if (n_labels > 0) {
                l = calloc(n_labels, sizeof *l);
                if (!l)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n_labels; i++) {
                if (!labels[i].key)
                        return -EINVAL;
                r = profile_intern(p, labels[i].key, &l[i].key);
                if (r < 0)
                        return r;
                r = profile_intern(p, labels[i].str, &l[i].str);
                if (r < 0)
                        return r;
                r = profile_intern(p, labels[i].num_unit, &l[i].num_unit);
                if (r < 0)
                        return r;
                l[i].num = labels[i].num;
        }
        return profile_sample_add_raw(p, location_ids, n, values, 1, l, n_labels, true);
}

/* ---- stacks ---- */

/* A location of our own making, outside any mapping: "[truncated]", "[no stack]". */
static int synthetic_location(Profile *p, const char *name, uint64_t *ret_id) {
        ProfileLine line = {};
        int r;

        r = profile_add_function(p, name, name, NULL, 0, &line.function_id);
        if (r < 0)
                return r;
        return profile_location_add_raw(p, 0, 0, &line, 1, false, ret_id);
}

static int frame_location(Profile *p, const StackFrame *f, uint64_t *ret_id) {
        uint64_t address = stack_frame_lookup_pc(f);
        const SymLoc *loc = f->loc;
        int r;

        void *v = u64map_get(&p->index->by_address, address);
        if (v) {
                *ret_id = (uintptr_t) v;
                return 0;
        }

        size_t n_lines = 0;
        if (loc)
                for (size_t k = 0; k < loc->n_frames; k++)
                        if (loc->frames[k].function) {
                                n_lines = loc->n_frames;
                                break;
                        }
        if (n_lines > p->limits.max_lines)
                return -E2BIG;

        _cleanup_free_ ProfileLine *lines = NULL;
        if (n_lines > 0) {
                lines = calloc(n_lines, sizeof *lines);
                if (!lines)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < n_lines; k++) {
                const Frame *fr = &loc->frames[k];
                const char *name = fr->function ? fr->function : "??";

                /* Go sets system_name to the name when there is no other. */
                r = profile_add_function(p, name, fr->system_name ? fr->system_name : name,
                                         fr->file, 0, &lines[k].function_id);
                if (r < 0)
                        return r;
                lines[k].line = fr->line;
        }

        uint64_t id;
        r = profile_location_add_raw(p, mapping_for_address(p, address), address, lines, n_lines,
                                     false, &id);
        if (r < 0)
                return r;
        (void) u64map_put(&p->index->by_address, address, (void *) (uintptr_t) id);
        *ret_id = id;
        return 0;
}

int profile_add_stack(Profile *p, const Stack *stack, const int64_t *values,
                      const ProfileLabelSpec *labels, size_t n_labels) {
        return profile_add_stack_rooted(p, stack, NULL, values, labels, n_labels);
}

int profile_add_stack_rooted(Profile *p, const Stack *stack, const char *root, const int64_t *values,
                             const ProfileLabelSpec *labels, size_t n_labels) {
        bool truncated = stack_is_truncated(stack);
        size_t n = stack->n + (truncated || stack->n == 0) + (root != NULL);
        int r;

        if (n > p->limits.max_stack_depth || n_labels > p->limits.max_labels)
                return -E2BIG;
        if (p->n_sample_types == 0)
                return -EINVAL;

        _cleanup_free_ uint64_t *ids = reallocarray(NULL, n, sizeof *ids);
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < stack->n; i++) {
                r = frame_location(p, &stack->frames[i], &ids[i]);
                if (r < 0)
                        return r;
        }
        /* An empty stack that stopped early says more as "[truncated]" than as "[no stack]",
         * as the debug=1 text shows it. */
        if (truncated)
                r = synthetic_location(p, "[truncated]", &ids[stack->n]);
        else if (stack->n == 0)
                r = synthetic_location(p, "[no stack]", &ids[0]);
        else
                r = 0;
        if (r == 0 && root)
                r = synthetic_location(p, root, &ids[n - 1]);
        if (r < 0)
                return r;

        /* Frames that only the frame-pointer chain found (no CFI below them) are less
         * certain than DWARF's: the sample says so. */
        bool by_frame_pointer = false;
        for (size_t i = 0; i < stack->n && !by_frame_pointer; i++)
                by_frame_pointer = stack->frames[i].frame_pointer;
        if (!by_frame_pointer)
                return profile_add_sample(p, ids, n, values, labels, n_labels);
        if (n_labels + 1 > p->limits.max_labels)
                return -E2BIG;
        _cleanup_free_ ProfileLabelSpec *all = reallocarray(NULL, n_labels + 1, sizeof *all);
        if (!all)
                return -ENOMEM;
        if (n_labels > 0)
                memcpy(all, labels, n_labels * sizeof *all);
        all[n_labels] = (ProfileLabelSpec) { .key = PROFILE_LABEL_UNWIND,
                                             .str = PROFILE_UNWIND_FRAME_POINTER };
        return profile_add_sample(p, ids, n, values, all, n_labels + 1);
}
