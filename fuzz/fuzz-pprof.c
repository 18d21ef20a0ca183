/* fuzz/fuzz-pprof.c -- libFuzzer target: profile_decode() on the input, gzipped or bare
 * protobuf, and what must hold of any profile it accepts:
 *
 *   - it encodes (gzipped, or bare when the input's first byte is odd) and the encoding
 *     decodes again, to the same profile: every table entry for entry, strings by
 *     contents (decoding already merged what it merges, so a second pass changes nothing);
 *   - its delta with itself (Go's seconds=N between two identical profiles) succeeds with
 *     no sample left, unless the sums overflow (-ERANGE).
 *
 * Limits are the defaults except max_input_bytes, lowered so that a gzip bomb costs
 * milliseconds rather than seconds per input (the cap is what is tested, not its size). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pprof.h"

static bool same_string(const Profile *a, uint32_t x, const Profile *b, uint32_t y) {
        return strcmp(profile_string(a, x), profile_string(b, y)) == 0;
}

static bool same_value_type(const Profile *a, ProfileValueType x, const Profile *b, ProfileValueType y) {
        return same_string(a, x.type, b, y.type) && same_string(a, x.unit, b, y.unit);
}

/* A and B hold the same profile: same entries in the same order, strings compared by
 * contents (their indices may differ). */
static bool same_profile(const Profile *a, const Profile *b) {
        if (a->n_sample_types != b->n_sample_types || a->n_samples != b->n_samples ||
            a->n_mappings != b->n_mappings || a->n_locations != b->n_locations ||
            a->n_functions != b->n_functions || a->n_comments != b->n_comments ||
            a->time_nanos != b->time_nanos || a->duration_nanos != b->duration_nanos ||
            a->period != b->period || !same_value_type(a, a->period_type, b, b->period_type) ||
            !same_string(a, a->drop_frames, b, b->drop_frames) ||
            !same_string(a, a->keep_frames, b, b->keep_frames) ||
            !same_string(a, a->default_sample_type, b, b->default_sample_type) ||
            !same_string(a, a->doc_url, b, b->doc_url))
                return false;
        for (size_t i = 0; i < a->n_sample_types; i++)
                if (!same_value_type(a, a->sample_types[i], b, b->sample_types[i]))
                        return false;
        for (size_t i = 0; i < a->n_comments; i++)
                if (!same_string(a, a->comments[i], b, b->comments[i]))
                        return false;
        for (size_t i = 0; i < a->n_mappings; i++) {
                const ProfileMapping *x = &a->mappings[i], *y = &b->mappings[i];
                if (x->id != y->id || x->memory_start != y->memory_start ||
                    x->memory_limit != y->memory_limit || x->file_offset != y->file_offset ||
                    !same_string(a, x->filename, b, y->filename) ||
                    !same_string(a, x->build_id, b, y->build_id) ||
                    x->has_functions != y->has_functions || x->has_filenames != y->has_filenames ||
                    x->has_line_numbers != y->has_line_numbers ||
                    x->has_inline_frames != y->has_inline_frames)
                        return false;
        }
        for (size_t i = 0; i < a->n_functions; i++) {
                const ProfileFunction *x = &a->functions[i], *y = &b->functions[i];
                if (x->id != y->id || x->start_line != y->start_line ||
                    !same_string(a, x->name, b, y->name) ||
                    !same_string(a, x->system_name, b, y->system_name) ||
                    !same_string(a, x->filename, b, y->filename))
                        return false;
        }
        for (size_t i = 0; i < a->n_locations; i++) {
                const ProfileLocation *x = &a->locations[i], *y = &b->locations[i];
                if (x->id != y->id || x->mapping_id != y->mapping_id || x->address != y->address ||
                    x->is_folded != y->is_folded || x->n_lines != y->n_lines)
                        return false;
                for (size_t k = 0; k < x->n_lines; k++)
                        if (x->lines[k].function_id != y->lines[k].function_id ||
                            x->lines[k].line != y->lines[k].line ||
                            x->lines[k].column != y->lines[k].column)
                                return false;
        }
        for (size_t i = 0; i < a->n_samples; i++) {
                const ProfileSample *x = &a->samples[i], *y = &b->samples[i];
                if (x->n_location_ids != y->n_location_ids || x->n_labels != y->n_labels ||
                    (x->n_location_ids && memcmp(x->location_ids, y->location_ids,
                                                 x->n_location_ids * sizeof(uint64_t)) != 0) ||
                    (a->n_sample_types && memcmp(x->values, y->values,
                                                 a->n_sample_types * sizeof(int64_t)) != 0))
                        return false;
                for (size_t k = 0; k < x->n_labels; k++)
                        if (!same_string(a, x->labels[k].key, b, y->labels[k].key) ||
                            !same_string(a, x->labels[k].str, b, y->labels[k].str) ||
                            x->labels[k].num != y->labels[k].num ||
                            !same_string(a, x->labels[k].num_unit, b, y->labels[k].num_unit))
                                return false;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ProfileLimits limits = profile_limits_default;
        Profile *p = NULL, *q = NULL, *d = NULL;
        Buf out = {};
        int r;

        limits.max_input_bytes = 4u << 20;
        r = profile_decode(data, size, &limits, &p);
        if (r < 0) {
                if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                        abort();
                return 0;
        }

        r = profile_encode(p, size > 0 && data[0] & 1 ? PROFILE_ENCODE_UNCOMPRESSED : 0, &out);
        if (r < 0)
                abort();
        r = profile_decode(out.data, out.len, &limits, &q);
        if (r < 0)
                abort();
        if (!same_profile(p, q))
                abort();

        r = profile_delta(p, p, &d);
        if (r == 0) {
                if (d->n_samples != 0)
                        abort();
        } else if (r != -ERANGE)
                abort();

        profile_free(d);
        profile_free(q);
        profile_free(p);
        buf_done(&out);
        return 0;
}
