/* profile/delta.c -- merging profiles, and Go's seconds=N delta (p1 − p0).
 *
 * Two profiles number their strings, mappings, functions and locations independently, so
 * a merge re-interns SRC into DST by contents: mappings by (start, limit, offset, file,
 * build id), functions by (name, system name, file, start line), locations by (mapping,
 * address, lines, folding). After that two stacks are the same sequence of DST location
 * ids exactly when their locations have the same contents, and the builder's grouping of
 * samples by (locations, labels) does the netting.
 *
 * The delta follows net/http/pprof's serveDeltaProfile: p0 scaled by −1 merged with p1,
 * samples whose values all net to zero dropped, negative values kept, p1's time and
 * duration = p1 − p0. It merges into a scratch profile first and copies only the
 * surviving samples into the result, so locations and functions that only the cancelled
 * samples used do not linger in it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pprof-internal.h"

typedef struct Merger {
        Profile *dst;
        const Profile *src;
        uint32_t *strings;              /* src index → dst index + 1; 0: not yet */
        uint64_t *mappings;             /* src index → dst id; 0: not yet */
        uint64_t *functions;
        uint64_t *locations;
} Merger;

static void merger_done(Merger *mg) {
        free(mg->strings);
        free(mg->mappings);
        free(mg->functions);
        free(mg->locations);
}

static int merge_string(Merger *mg, uint32_t i, uint32_t *ret) {
        int r;

        if (i >= mg->src->n_strings)
                return -EINVAL;
        if (mg->strings[i] == 0) {
                uint32_t k;

                r = profile_intern(mg->dst, mg->src->strings[i], &k);
                if (r < 0)
                        return r;
                mg->strings[i] = k + 1;
        }
        *ret = mg->strings[i] - 1;
        return 0;
}

static int merge_mapping(Merger *mg, uint64_t id, uint64_t *ret) {
        int r;

        if (id == 0) {
                *ret = 0;
                return 0;
        }
        if (id > mg->src->n_mappings)
                return -EINVAL;
        if (mg->mappings[id - 1] == 0) {
                ProfileMapping m = mg->src->mappings[id - 1];

                if ((r = merge_string(mg, m.filename, &m.filename)) < 0 ||
                    (r = merge_string(mg, m.build_id, &m.build_id)) < 0)
                        return r;
                r = profile_mapping_add_raw(mg->dst, &m, false, true, &mg->mappings[id - 1]);
                if (r < 0)
                        return r;
        }
        *ret = mg->mappings[id - 1];
        return 0;
}

static int merge_function(Merger *mg, uint64_t id, uint64_t *ret) {
        int r;

        if (id == 0) {
                *ret = 0;
                return 0;
        }
        if (id > mg->src->n_functions)
                return -EINVAL;
        if (mg->functions[id - 1] == 0) {
                ProfileFunction f = mg->src->functions[id - 1];

                if ((r = merge_string(mg, f.name, &f.name)) < 0 ||
                    (r = merge_string(mg, f.system_name, &f.system_name)) < 0 ||
                    (r = merge_string(mg, f.filename, &f.filename)) < 0)
                        return r;
                r = profile_function_add_raw(mg->dst, f.name, f.system_name, f.filename,
                                             f.start_line, &mg->functions[id - 1]);
                if (r < 0)
                        return r;
        }
        *ret = mg->functions[id - 1];
        return 0;
}

static int merge_location(Merger *mg, uint64_t id, uint64_t *ret) {
        int r;

        if (id == 0 || id > mg->src->n_locations)
                return -EINVAL;
        if (mg->locations[id - 1] == 0) {
                const ProfileLocation *l = &mg->src->locations[id - 1];
                uint64_t mapping_id;

                r = merge_mapping(mg, l->mapping_id, &mapping_id);
                if (r < 0)
                        return r;
                _cleanup_free_ ProfileLine *lines =
                        calloc(MAX(l->n_lines, (size_t) 1), sizeof *lines);
                if (!lines)
                        return -ENOMEM;
                for (size_t k = 0; k < l->n_lines; k++) {
                        lines[k] = l->lines[k];
                        r = merge_function(mg, l->lines[k].function_id, &lines[k].function_id);
                        if (r < 0)
                                return r;
                }
                r = profile_location_add_raw(mg->dst, mapping_id, l->address, lines, l->n_lines,
                                             l->is_folded, &mg->locations[id - 1]);
                if (r < 0)
                        return r;
        }
        *ret = mg->locations[id - 1];
        return 0;
}

static int merge_sample(Merger *mg, const ProfileSample *s, int64_t factor) {
        int r;

        _cleanup_free_ uint64_t *ids = calloc(MAX(s->n_location_ids, (size_t) 1), sizeof *ids);
        _cleanup_free_ ProfileLabel *labels = calloc(MAX(s->n_labels, (size_t) 1), sizeof *labels);
        if (!ids || !labels)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_location_ids; i++) {
                r = merge_location(mg, s->location_ids[i], &ids[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < s->n_labels; i++) {
                labels[i].num = s->labels[i].num;
                if ((r = merge_string(mg, s->labels[i].key, &labels[i].key)) < 0 ||
                    (r = merge_string(mg, s->labels[i].str, &labels[i].str)) < 0 ||
                    (r = merge_string(mg, s->labels[i].num_unit, &labels[i].num_unit)) < 0)
                        return r;
        }
        return profile_sample_add_raw(mg->dst, ids, s->n_location_ids, s->values, factor,
                                      labels, s->n_labels, true);
}

static bool sample_types_equal(const Profile *a, const Profile *b) {
        if (a->n_sample_types != b->n_sample_types)
                return false;
        for (size_t i = 0; i < a->n_sample_types; i++)
                if (strcmp(profile_string(a, a->sample_types[i].type),
                           profile_string(b, b->sample_types[i].type)) != 0 ||
                    strcmp(profile_string(a, a->sample_types[i].unit),
                           profile_string(b, b->sample_types[i].unit)) != 0)
                        return false;
        return true;
}

static int merge(Profile *dst, const Profile *src, int64_t factor, bool skip_zero) {
        Merger mg = { .dst = dst, .src = src };
        int r = 0;

        if (!sample_types_equal(dst, src))
                return -EINVAL;

        mg.strings = calloc(MAX(src->n_strings, (size_t) 1), sizeof *mg.strings);
        mg.mappings = calloc(MAX(src->n_mappings, (size_t) 1), sizeof *mg.mappings);
        mg.functions = calloc(MAX(src->n_functions, (size_t) 1), sizeof *mg.functions);
        mg.locations = calloc(MAX(src->n_locations, (size_t) 1), sizeof *mg.locations);
        if (!mg.strings || !mg.mappings || !mg.functions || !mg.locations) {
                r = -ENOMEM;
                goto finish;
        }

        /* Every mapping, in SRC's order, whether samples use it or not: mapping[0] names
         * the report, and the caller passed all of them on purpose. */
        for (size_t i = 0; i < src->n_mappings; i++) {
                uint64_t id;

                r = merge_mapping(&mg, i + 1, &id);
                if (r < 0)
                        goto finish;
        }
        for (size_t i = 0; i < src->n_samples; i++) {
                if (skip_zero && profile_sample_is_zero(src, &src->samples[i]))
                        continue;
                r = merge_sample(&mg, &src->samples[i], factor);
                if (r < 0)
                        goto finish;
        }

finish:
        merger_done(&mg);
        return r;
}

int profile_merge(Profile *dst, const Profile *src, int64_t factor) {
        return merge(dst, src, factor, false);
}

/* Sample types, period, comments and the string fields of SRC's header into DST. */
static int copy_header(Profile *dst, const Profile *src) {
        int r;

        for (size_t i = 0; i < src->n_sample_types; i++) {
                r = profile_add_sample_type(dst, profile_string(src, src->sample_types[i].type),
                                            profile_string(src, src->sample_types[i].unit));
                if (r < 0)
                        return r;
        }
        if (src->period_type.type != 0 || src->period_type.unit != 0) {
                r = profile_set_period(dst, profile_string(src, src->period_type.type),
                                       profile_string(src, src->period_type.unit), src->period);
                if (r < 0)
                        return r;
        }
        dst->period = src->period;
        for (size_t i = 0; i < src->n_comments; i++) {
                r = profile_add_comment(dst, profile_string(src, src->comments[i]));
                if (r < 0)
                        return r;
        }
        const uint32_t *from[] = {
                &src->default_sample_type, &src->drop_frames, &src->keep_frames, &src->doc_url };
        uint32_t *to[] = {
                &dst->default_sample_type, &dst->drop_frames, &dst->keep_frames, &dst->doc_url };
        for (size_t i = 0; i < ARRAY_SIZE(from); i++) {
                r = profile_intern(dst, profile_string(src, *from[i]), to[i]);
                if (r < 0)
                        return r;
        }
        dst->time_nanos = src->time_nanos;
        dst->duration_nanos = src->duration_nanos;
        return 0;
}

int profile_delta(const Profile *p0, const Profile *p1, Profile **ret) {
        _cleanup_(profile_freep) Profile *scratch = NULL, *result = NULL;
        int r;

        if (!sample_types_equal(p0, p1))
                return -EINVAL;

        r = profile_new(&p1->limits, &scratch);
        if (r < 0)
                return r;
        if ((r = copy_header(scratch, p1)) < 0 ||
            (r = merge(scratch, p1, 1, false)) < 0 ||
            (r = merge(scratch, p0, -1, false)) < 0)
                return r;

        r = profile_new(&p1->limits, &result);
        if (r < 0)
                return r;
        r = copy_header(result, p1);
        if (r < 0)
                return r;
        if (__builtin_sub_overflow(p1->time_nanos, p0->time_nanos, &result->duration_nanos))
                return -ERANGE;
        r = merge(result, scratch, 1, true);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(result);
        return 0;
}
