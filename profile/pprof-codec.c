/* profile/pprof-codec.c -- the pprof wire format: Profile → profile.proto (protobuf-c) →
 * gzip, and back with full validation.
 *
 * Encoding builds a protobuf-c message that borrows the model's arrays (strings, location
 * ids, values) and streams protobuf_c_message_pack_to_buffer() straight into deflate, so
 * the bare protobuf never exists in memory. gzip as Go writes it: a gzip header
 * (windowBits 15 + 16), best speed.
 *
 * Decoding is for our own tests and deltas, but treats its input as hostile anyway: sizes
 * are capped before and after gunzip (a gzip bomb stops at max_input_bytes), protobuf-c
 * checks the wire format on an allocation budget, and every index and id is checked here
 * before the model is built through the builder's own (capped) adds. What pprof rejects
 * we reject — except a scalar field given twice (two time_nanos), of which protobuf-c
 * silently keeps the last; what it accepts (fields in any order, packed or not, missing
 * period type, locations without a mapping, lines without a function) we accept. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hashmap.h"
#include "pprof-internal.h"
#include "profile.pb-c.h"

/* ---- encoding ---- */

/* One allocation for every protobuf-c struct the message needs, sized up front by
 * arena_need() over the same counts; every piece 8-byte aligned. */
typedef struct Arena {
        char *base;
        size_t used;
} Arena;

static void *arena_take(Arena *a, size_t n, size_t size) {
        size_t bytes = (n * size + 7) & ~(size_t) 7;
        void *p = a->base + a->used;
        a->used += bytes;
        return p;
}

static size_t arena_need(size_t n, size_t size) {
        return (n * size + 7) & ~(size_t) 7;
}

static int build_message(const Profile *p, Perftools__Profiles__Profile *m, char **ret_arena) {
        size_t n_labels = 0, n_lines = 0;

        for (size_t i = 0; i < p->n_samples; i++)
                n_labels += p->samples[i].n_labels;
        for (size_t i = 0; i < p->n_locations; i++)
                n_lines += p->locations[i].n_lines;

        /* Counts are capped far below anything that could overflow these sums. */
        size_t need =
                arena_need(p->n_sample_types + 1, sizeof(Perftools__Profiles__ValueType)) +
                arena_need(p->n_sample_types, sizeof(void *)) +
                arena_need(p->n_samples, sizeof(Perftools__Profiles__Sample)) +
                arena_need(p->n_samples, sizeof(void *)) +
                arena_need(n_labels, sizeof(Perftools__Profiles__Label)) +
                arena_need(n_labels, sizeof(void *)) +
                arena_need(p->n_mappings, sizeof(Perftools__Profiles__Mapping)) +
                arena_need(p->n_mappings, sizeof(void *)) +
                arena_need(p->n_locations, sizeof(Perftools__Profiles__Location)) +
                arena_need(p->n_locations, sizeof(void *)) +
                arena_need(n_lines, sizeof(Perftools__Profiles__Line)) +
                arena_need(n_lines, sizeof(void *)) +
                arena_need(p->n_functions, sizeof(Perftools__Profiles__Function)) +
                arena_need(p->n_functions, sizeof(void *)) +
                arena_need(p->n_comments, sizeof(int64_t));
        Arena a = { .base = malloc(MAX(need, (size_t) 8)) };
        if (!a.base)
                return -ENOMEM;

        perftools__profiles__profile__init(m);

        m->n_sample_type = p->n_sample_types;
        m->sample_type = arena_take(&a, p->n_sample_types, sizeof(void *));
        for (size_t i = 0; i < p->n_sample_types; i++) {
                Perftools__Profiles__ValueType *vt = arena_take(&a, 1, sizeof *vt);
                perftools__profiles__value_type__init(vt);
                vt->type = p->sample_types[i].type;
                vt->unit = p->sample_types[i].unit;
                m->sample_type[i] = vt;
        }

        m->n_sample = p->n_samples;
        m->sample = arena_take(&a, p->n_samples, sizeof(void *));
        for (size_t i = 0; i < p->n_samples; i++) {
                const ProfileSample *s = &p->samples[i];
                Perftools__Profiles__Sample *ps = arena_take(&a, 1, sizeof *ps);

                perftools__profiles__sample__init(ps);
                ps->n_location_id = s->n_location_ids;
                ps->location_id = s->location_ids;
                ps->n_value = p->n_sample_types;
                ps->value = s->values;
                ps->n_label = s->n_labels;
                ps->label = arena_take(&a, s->n_labels, sizeof(void *));
                for (size_t k = 0; k < s->n_labels; k++) {
                        Perftools__Profiles__Label *pl = arena_take(&a, 1, sizeof *pl);
                        perftools__profiles__label__init(pl);
                        pl->key = s->labels[k].key;
                        pl->str = s->labels[k].str;
                        pl->num = s->labels[k].num;
                        pl->num_unit = s->labels[k].num_unit;
                        ps->label[k] = pl;
                }
                m->sample[i] = ps;
        }

        m->n_mapping = p->n_mappings;
        m->mapping = arena_take(&a, p->n_mappings, sizeof(void *));
        for (size_t i = 0; i < p->n_mappings; i++) {
                const ProfileMapping *pm = &p->mappings[i];
                Perftools__Profiles__Mapping *mm = arena_take(&a, 1, sizeof *mm);

                perftools__profiles__mapping__init(mm);
                mm->id = pm->id;
                mm->memory_start = pm->memory_start;
                mm->memory_limit = pm->memory_limit;
                mm->file_offset = pm->file_offset;
                mm->filename = pm->filename;
                mm->build_id = pm->build_id;
                mm->has_functions = pm->has_functions;
                mm->has_filenames = pm->has_filenames;
                mm->has_line_numbers = pm->has_line_numbers;
                mm->has_inline_frames = pm->has_inline_frames;
                m->mapping[i] = mm;
        }

        m->n_location = p->n_locations;
        m->location = arena_take(&a, p->n_locations, sizeof(void *));
        for (size_t i = 0; i < p->n_locations; i++) {
                const ProfileLocation *l = &p->locations[i];
                Perftools__Profiles__Location *ml = arena_take(&a, 1, sizeof *ml);

                perftools__profiles__location__init(ml);
                ml->id = l->id;
                ml->mapping_id = l->mapping_id;
                ml->address = l->address;
                ml->is_folded = l->is_folded;
                ml->n_line = l->n_lines;
                ml->line = arena_take(&a, l->n_lines, sizeof(void *));
                for (size_t k = 0; k < l->n_lines; k++) {
                        Perftools__Profiles__Line *ln = arena_take(&a, 1, sizeof *ln);
                        perftools__profiles__line__init(ln);
                        ln->function_id = l->lines[k].function_id;
                        ln->line = l->lines[k].line;
                        ln->column = l->lines[k].column;
                        ml->line[k] = ln;
                }
                m->location[i] = ml;
        }

        m->n_function = p->n_functions;
        m->function = arena_take(&a, p->n_functions, sizeof(void *));
        for (size_t i = 0; i < p->n_functions; i++) {
                const ProfileFunction *f = &p->functions[i];
                Perftools__Profiles__Function *mf = arena_take(&a, 1, sizeof *mf);

                perftools__profiles__function__init(mf);
                mf->id = f->id;
                mf->name = f->name;
                mf->system_name = f->system_name;
                mf->filename = f->filename;
                mf->start_line = f->start_line;
                m->function[i] = mf;
        }

        m->n_string_table = p->n_strings;
        m->string_table = p->strings;
        m->drop_frames = p->drop_frames;
        m->keep_frames = p->keep_frames;
        m->time_nanos = p->time_nanos;
        m->duration_nanos = p->duration_nanos;
        m->period = p->period;
        if (p->period_type.type != 0 || p->period_type.unit != 0) {
                Perftools__Profiles__ValueType *vt = arena_take(&a, 1, sizeof *vt);
                perftools__profiles__value_type__init(vt);
                vt->type = p->period_type.type;
                vt->unit = p->period_type.unit;
                m->period_type = vt;
        }
        m->n_comment = p->n_comments;
        m->comment = arena_take(&a, p->n_comments, sizeof(int64_t));
        for (size_t i = 0; i < p->n_comments; i++)
                m->comment[i] = p->comments[i];
        m->default_sample_type = p->default_sample_type;
        m->doc_url = p->doc_url;

        *ret_arena = a.base;
        return 0;
}

/* protobuf-c's output sink: appends to a Buf, through deflate when gzipping. The append
 * callback cannot fail, so the first error is kept and the rest is skipped. */
typedef struct Sink {
        ProtobufCBuffer base;
        Buf *out;
        z_stream z;
        bool gzip;
        int error;
} Sink;

static int sink_deflate(Sink *s, const uint8_t *data, size_t len, int flush) {
        unsigned char chunk[16384];

        s->z.next_in = (Bytef *) data;
        do {
                /* avail_in is 32 bits: feed in slices (strings are capped far below). */
                size_t slice = MIN(len, (size_t) UINT32_MAX);
                int f, r;

                s->z.avail_in = (uInt) slice;
                len -= slice;
                f = len == 0 ? flush : Z_NO_FLUSH;
                do {
                        s->z.next_out = chunk;
                        s->z.avail_out = sizeof chunk;
                        r = deflate(&s->z, f);
                        if (r == Z_STREAM_ERROR)
                                return -EIO;
                        buf_append(s->out, chunk, sizeof chunk - s->z.avail_out);
                } while (s->z.avail_out == 0);
                if (f == Z_FINISH && r != Z_STREAM_END)
                        return -EIO;
        } while (len > 0);
        return 0;
}

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
        Sink *s = (Sink *) b;

        if (s->error < 0 || len == 0)
                return;
        if (!s->gzip)
                buf_append(s->out, data, len);
        else
                s->error = sink_deflate(s, data, len, Z_NO_FLUSH);
}

int profile_encode(const Profile *p, ProfileEncodeFlags flags, Buf *out) {
        Perftools__Profiles__Profile m;
        _cleanup_free_ char *arena = NULL;
        size_t saved_len = out->len;
        int r;

        r = build_message(p, &m, &arena);
        if (r < 0)
                return r;

        Sink s = {
                .base.append = sink_append,
                .out = out,
                .gzip = !(flags & PROFILE_ENCODE_UNCOMPRESSED),
        };
        if (s.gzip) {
                r = deflateInit2(&s.z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
                if (r != Z_OK)
                        return r == Z_MEM_ERROR ? -ENOMEM : -EIO;
        }

        protobuf_c_message_pack_to_buffer(&m.base, &s.base);
        if (s.gzip) {
                if (s.error == 0)
                        s.error = sink_deflate(&s, NULL, 0, Z_FINISH);
                (void) deflateEnd(&s.z);
        }
        if (s.error < 0) {
                out->len = saved_len;
                if (out->data)
                        out->data[saved_len] = 0;
                return s.error;
        }
        return 0;
}

int gzip_append(const void *data, size_t len, Buf *out) {
        Sink s = { .out = out, .gzip = true };
        size_t saved_len = out->len;
        int r = deflateInit2(&s.z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (r != Z_OK)
                return r == Z_MEM_ERROR ? -ENOMEM : -EIO;
        r = sink_deflate(&s, data, len, Z_FINISH);
        (void) deflateEnd(&s.z);
        if (r < 0)
                out->len = saved_len;
        return r;
}

/* ---- decoding ---- */

/* Gunzips DATA into OUT, at most MAX bytes. Concatenated gzip members are read as one
 * stream, as Go's gzip reader does; anything else after a member is an error. */
static int gunzip(const uint8_t *data, size_t size, size_t max, Buf *out) {
        unsigned char chunk[16384];
        z_stream z = {};
        int r;

        if (size > UINT32_MAX)
                return -E2BIG;
        r = inflateInit2(&z, 15 + 16);
        if (r != Z_OK)
                return r == Z_MEM_ERROR ? -ENOMEM : -EIO;

        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) size;
        for (;;) {
                z.next_out = chunk;
                z.avail_out = sizeof chunk;
                r = inflate(&z, Z_NO_FLUSH);
                if (r == Z_MEM_ERROR) {
                        r = -ENOMEM;
                        break;
                }
                if (r != Z_OK && r != Z_STREAM_END) {
                        /* Z_DATA_ERROR, Z_NEED_DICT, or Z_BUF_ERROR: no progress with room
                         * to write, so the input ended inside the stream. */
                        r = -EBADMSG;
                        break;
                }
                size_t got = sizeof chunk - z.avail_out;
                if (got > max - MIN(out->len, max)) {
                        r = -E2BIG;
                        break;
                }
                buf_append(out, chunk, got);

                if (r == Z_STREAM_END) {
                        if (z.avail_in == 0) {
                                r = 0;
                                break;
                        }
                        if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
                                r = -EBADMSG;
                                break;
                        }
                        if (inflateReset(&z) != Z_OK) {
                                r = -EIO;
                                break;
                        }
                }
        }
        (void) inflateEnd(&z);
        return r;
}

/* protobuf-c's allocations while unpacking, on a budget: a 2-byte empty Sample on the
 * wire becomes a struct of ~80 bytes, so input size alone does not bound memory. Frees
 * are not credited back (protobuf-c does not pass sizes); unpacking rarely frees. */
typedef struct Budget {
        ProtobufCAllocator allocator;
        size_t left;
        bool exceeded;
} Budget;

#define DECODE_MEMORY_FACTOR 4          /* budget = 4 × max_input_bytes */

static void *budget_alloc(void *data, size_t size) {
        Budget *b = data;

        if (size > b->left) {
                b->exceeded = true;
                return NULL;
        }
        void *p = malloc(size);
        if (p)
                b->left -= size;
        return p;
}

static void budget_free(void *data, void *ptr) {
        free(ptr);
}

/* Translation tables from the message's numbering to the new profile's. */
typedef struct Decoder {
        const Perftools__Profiles__Profile *m;
        Profile *p;
        uint32_t *strings;              /* message string index → profile string index */
        U64Map mappings, functions, locations;  /* message id → new id (as a pointer) */
} Decoder;

static void decoder_done(Decoder *d) {
        free(d->strings);
        u64map_done(&d->mappings, NULL);
        u64map_done(&d->functions, NULL);
        u64map_done(&d->locations, NULL);
}

static int str_ref(const Decoder *d, int64_t i, uint32_t *ret) {
        if (i < 0 || (uint64_t) i >= d->m->n_string_table)
                return -EBADMSG;
        *ret = d->strings[i];
        return 0;
}

/* Records OLD_ID → NEW_ID; the message's ids must be non-zero and unique. */
static int id_record(U64Map *map, uint64_t old_id, uint64_t new_id) {
        if (old_id == 0 || u64map_get(map, old_id))
                return -EBADMSG;
        (void) u64map_put(map, old_id, (void *) (uintptr_t) new_id);
        return 0;
}

/* The new id of OLD_ID, 0 when OLD_ID is 0 and ZERO_OK; else -EBADMSG if unknown. */
static int id_ref(const U64Map *map, uint64_t old_id, bool zero_ok, uint64_t *ret) {
        if (old_id == 0) {
                *ret = 0;
                return zero_ok ? 0 : -EBADMSG;
        }
        void *v = u64map_get(map, old_id);
        if (!v)
                return -EBADMSG;
        *ret = (uintptr_t) v;
        return 0;
}

static int decode_strings(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        int r;

        /* An empty table or a non-empty first string: "unrecognized profile format". */
        if (m->n_string_table == 0 || !m->string_table[0] || m->string_table[0][0] != 0)
                return -EBADMSG;
        if (m->n_string_table > d->p->limits.max_strings)
                return -E2BIG;
        d->strings = calloc(m->n_string_table, sizeof *d->strings);
        if (!d->strings)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_string_table; i++) {
                if (!m->string_table[i])
                        return -EBADMSG;
                r = profile_intern(d->p, m->string_table[i], &d->strings[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_value_type(const Decoder *d, const Perftools__Profiles__ValueType *vt,
                             ProfileValueType *ret) {
        int r;

        r = str_ref(d, vt->type, &ret->type);
        if (r < 0)
                return r;
        return str_ref(d, vt->unit, &ret->unit);
}

static int decode_header(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        Profile *p = d->p;
        int r;

        /* Not through profile_add_sample_type(): types are index pairs here already. */
        for (size_t i = 0; i < m->n_sample_type; i++) {
                ProfileValueType vt;

                r = decode_value_type(d, m->sample_type[i], &vt);
                if (r < 0)
                        return r;
                r = profile_sample_type_add_raw(p, vt);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_comment; i++) {
                uint32_t c;

                r = str_ref(d, m->comment[i], &c);
                if (r < 0)
                        return r;
                r = profile_comment_add_raw(p, c);
                if (r < 0)
                        return r;
        }
        if (m->period_type) {
                r = decode_value_type(d, m->period_type, &p->period_type);
                if (r < 0)
                        return r;
        }
        if ((r = str_ref(d, m->drop_frames, &p->drop_frames)) < 0 ||
            (r = str_ref(d, m->keep_frames, &p->keep_frames)) < 0 ||
            (r = str_ref(d, m->default_sample_type, &p->default_sample_type)) < 0 ||
            (r = str_ref(d, m->doc_url, &p->doc_url)) < 0)
                return r;
        p->time_nanos = m->time_nanos;
        p->duration_nanos = m->duration_nanos;
        p->period = m->period;
        return 0;
}

static int decode_mappings(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        int r;

        if (m->n_mapping > d->p->limits.max_mappings)
                return -E2BIG;
        for (size_t i = 0; i < m->n_mapping; i++) {
                const Perftools__Profiles__Mapping *mm = m->mapping[i];
                ProfileMapping pm = {
                        .memory_start = mm->memory_start,
                        .memory_limit = mm->memory_limit,
                        .file_offset = mm->file_offset,
                        .has_functions = mm->has_functions,
                        .has_filenames = mm->has_filenames,
                        .has_line_numbers = mm->has_line_numbers,
                        .has_inline_frames = mm->has_inline_frames,
                };
                uint64_t id;

                if ((r = str_ref(d, mm->filename, &pm.filename)) < 0 ||
                    (r = str_ref(d, mm->build_id, &pm.build_id)) < 0)
                        return r;
                /* pprof does not care about the order of start and limit; neither do we. */
                if (pm.memory_limit < pm.memory_start)
                        pm.memory_limit = pm.memory_start;
                r = profile_mapping_add_raw(d->p, &pm, false, false, &id);
                if (r < 0)
                        return r;
                r = id_record(&d->mappings, mm->id, id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_functions(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        int r;

        if (m->n_function > d->p->limits.max_functions)
                return -E2BIG;
        for (size_t i = 0; i < m->n_function; i++) {
                const Perftools__Profiles__Function *f = m->function[i];
                uint32_t name, system_name, filename;
                uint64_t id;

                if ((r = str_ref(d, f->name, &name)) < 0 ||
                    (r = str_ref(d, f->system_name, &system_name)) < 0 ||
                    (r = str_ref(d, f->filename, &filename)) < 0)
                        return r;
                r = profile_function_add_raw(d->p, name, system_name, filename, f->start_line, &id);
                if (r < 0)
                        return r;
                r = id_record(&d->functions, f->id, id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_locations(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        _cleanup_free_ ProfileLine *lines = NULL;
        size_t max_lines = 0;
        int r;

        if (m->n_location > d->p->limits.max_locations)
                return -E2BIG;
        for (size_t i = 0; i < m->n_location; i++)
                max_lines = MAX(max_lines, m->location[i]->n_line);
        if (max_lines > d->p->limits.max_lines)
                return -E2BIG;
        lines = calloc(MAX(max_lines, (size_t) 1), sizeof *lines);
        if (!lines)
                return -ENOMEM;

        for (size_t i = 0; i < m->n_location; i++) {
                const Perftools__Profiles__Location *l = m->location[i];
                uint64_t mapping_id, id;

                r = id_ref(&d->mappings, l->mapping_id, true, &mapping_id);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < l->n_line; k++) {
                        /* pprof reads function id 0 as "no function". */
                        r = id_ref(&d->functions, l->line[k]->function_id, true, &lines[k].function_id);
                        if (r < 0)
                                return r;
                        lines[k].line = l->line[k]->line;
                        lines[k].column = l->line[k]->column;
                }
                r = profile_location_add_raw(d->p, mapping_id, l->address, lines, l->n_line,
                                             l->is_folded, &id);
                if (r < 0)
                        return r;
                r = id_record(&d->locations, l->id, id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int decode_samples(Decoder *d) {
        const Perftools__Profiles__Profile *m = d->m;
        Profile *p = d->p;
        int r;

        /* pprof: "missing sample type information". */
        if (m->n_sample > 0 && p->n_sample_types == 0)
                return -EBADMSG;
        if (m->n_sample > p->limits.max_samples)
                return -E2BIG;

        for (size_t i = 0; i < m->n_sample; i++) {
                const Perftools__Profiles__Sample *s = m->sample[i];

                if (s->n_value != p->n_sample_types)
                        return -EBADMSG;
                if (s->n_location_id > p->limits.max_stack_depth || s->n_label > p->limits.max_labels)
                        return -E2BIG;

                _cleanup_free_ uint64_t *ids = calloc(MAX(s->n_location_id, (size_t) 1), sizeof *ids);
                _cleanup_free_ ProfileLabel *labels = calloc(MAX(s->n_label, (size_t) 1), sizeof *labels);
                if (!ids || !labels)
                        return -ENOMEM;
                for (size_t k = 0; k < s->n_location_id; k++) {
                        r = id_ref(&d->locations, s->location_id[k], false, &ids[k]);
                        if (r < 0)
                                return r;
                }
                for (size_t k = 0; k < s->n_label; k++) {
                        const Perftools__Profiles__Label *l = s->label[k];
                        if ((r = str_ref(d, l->key, &labels[k].key)) < 0 ||
                            (r = str_ref(d, l->str, &labels[k].str)) < 0 ||
                            (r = str_ref(d, l->num_unit, &labels[k].num_unit)) < 0)
                                return r;
                        labels[k].num = l->num;
                }
                r = profile_sample_add_raw(p, ids, s->n_location_id, s->value, 1, labels,
                                           s->n_label, false);
                if (r < 0)
                        return r;
        }
        return 0;
}

int profile_decode(const void *data, size_t size, const ProfileLimits *limits, Profile **ret) {
        const ProfileLimits *l = limits ? limits : &profile_limits_default;
        _cleanup_(profile_freep) Profile *p = NULL;
        _cleanup_buf_ Buf raw = {};
        const uint8_t *bytes = data;
        int r;

        if (size > l->max_input_bytes)
                return -E2BIG;
        if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
                r = gunzip(bytes, size, l->max_input_bytes, &raw);
                if (r < 0)
                        return r;
                bytes = (const uint8_t *) raw.data;
                size = raw.len;
        }

        Budget budget = {
                .allocator = { budget_alloc, budget_free, NULL },
                .left = l->max_input_bytes > SIZE_MAX / DECODE_MEMORY_FACTOR ?
                        SIZE_MAX : l->max_input_bytes * DECODE_MEMORY_FACTOR,
        };
        budget.allocator.allocator_data = &budget;
        Perftools__Profiles__Profile *m = perftools__profiles__profile__unpack(
                        &budget.allocator, size, size > 0 ? bytes : (const uint8_t *) "");
        if (!m)
                /* malformed, or over budget (or out of memory: protobuf-c does not say) */
                return budget.exceeded ? -E2BIG : -EBADMSG;
        buf_done(&raw);

        r = profile_new(limits, &p);
        if (r >= 0) {
                Decoder d = { .m = m, .p = p };
                if ((r = decode_strings(&d)) >= 0 &&
                    (r = decode_header(&d)) >= 0 &&
                    (r = decode_mappings(&d)) >= 0 &&
                    (r = decode_functions(&d)) >= 0 &&
                    (r = decode_locations(&d)) >= 0)
                        r = decode_samples(&d);
                decoder_done(&d);
        }
        perftools__profiles__profile__free_unpacked(m, &budget.allocator);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}
