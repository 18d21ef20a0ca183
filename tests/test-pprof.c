/* tests/test-pprof.c -- unit tests of the pprof model, encoder, decoder and delta
 * (profile/pprof.h): every field through protobuf-c, the dedup and grouping rules, the
 * caps, corrupt input, Go 1.19's own captures (tests/data/go-*.pb), and `go tool pprof`
 * itself as the judge of what we write (skipped, not failed, when go is not installed). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "frame.h"
#include "macro.h"
#include "pprof.h"
#include "profile.pb-c.h"
#include "symloc-fixture.h"
#include "tiny-test.h"

/* ---- helpers ---- */

#define MAIN_START UINT64_C(0x400000)
#define MAIN_LIMIT UINT64_C(0x500000)
#define LIB_START UINT64_C(0x7f0000000000)
#define LIB_LIMIT UINT64_C(0x7f0000100000)

/* The locations of the demo process: a leaf in a library, an inlined pair, main(). */
static const SymLoc *loc_read, *loc_inline, *loc_main, *loc_unknown;

static void make_symlocs(void) {
        static const Frame read_f[] = { { "demo_read", NULL, "/src/lib.c", 14, 0x1200, false } };
        static const Frame inline_f[] = {
                { "gamma_inlined", NULL, "/src/main.c", 15, 0xf00, true },
                { "beta", "_Z4betav", "/src/main.c", 22, 0xf00, false },
        };
        static const Frame main_f[] = { { "main", NULL, "/src/main.c", 40, 0x1f00, false } };

        loc_read = symloc("/usr/lib/libdemo.so.1", 0x1234, 1, read_f);
        loc_inline = symloc("/usr/bin/demo", 0x1000, 2, inline_f);
        loc_main = symloc("/usr/bin/demo", 0x2000, 1, main_f);
        loc_unknown = symloc("/usr/bin/demo", 0x3000, 0, NULL);
}

static StackFrame sf(uint64_t pc, bool exact, const SymLoc *loc) {
        return (StackFrame) { .pc = pc, .exact = exact, .loc = loc };
}

static void add_demo_mappings(Profile *p, bool lib_first) {
        ProfileMappingInfo main_m = {
                MAIN_START, MAIN_LIMIT, 0, "/usr/bin/demo", "abcdef0123456789", true, true };
        ProfileMappingInfo lib_m = {
                LIB_START, LIB_LIMIT, 0x1000, "/usr/lib/libdemo.so.1", "1234abcd", false, true };

        if (lib_first)
                ASSERT_EQ(profile_add_mapping(p, &lib_m, NULL), 0);
        ASSERT_EQ(profile_add_mapping(p, &main_m, NULL), 0);
        if (!lib_first)
                ASSERT_EQ(profile_add_mapping(p, &lib_m, NULL), 0);
}

static int64_t one = 1;

/* A goroutine-style thread profile: two mappings, an inlined location, labels. Stacks:
 *   2× read ← beta/gamma ← main     thread_name=worker
 *   1× read ← beta/gamma ← main     thread_name=reader, thread_id=4250 (numeric)
 *   1× unknown ← main               no labels
 *   COUNT_MAIN× main                 (main only: cancels in deltas when equal) */
static Profile *demo_profile(int64_t time_ns, int64_t count_main, bool lib_first) {
        Profile *p = NULL;

        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(profile_add_sample_type(p, "goroutine", "count"), 0);
        ASSERT_EQ(profile_set_period(p, "goroutine", "count", 1), 0);
        p->time_nanos = time_ns;
        add_demo_mappings(p, lib_first);

        StackFrame f1[] = {
                sf(LIB_START + 0x1234, true, loc_read),
                sf(MAIN_START + 0x1001, false, loc_inline),
                sf(MAIN_START + 0x2001, false, loc_main),
        };
        Stack s1 = { f1, 3, STACK_END_COMPLETE };
        ProfileLabelSpec worker[] = { { .key = "thread_name", .str = "worker" } };
        ProfileLabelSpec reader[] = {
                { .key = "thread_name", .str = "reader" },
                { .key = "thread_id", .num = 4250 },
        };
        StackFrame f2[] = { sf(MAIN_START + 0x3001, false, loc_unknown), sf(MAIN_START + 0x2001, false, loc_main) };
        Stack s2 = { f2, 2, STACK_END_COMPLETE };
        StackFrame f3[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack s3 = { f3, 1, STACK_END_COMPLETE };

        ASSERT_EQ(profile_add_stack(p, &s1, &one, worker, 1), 0);
        ASSERT_EQ(profile_add_stack(p, &s1, &one, reader, 2), 0);
        ASSERT_EQ(profile_add_stack(p, &s1, &one, worker, 1), 0);
        ASSERT_EQ(profile_add_stack(p, &s2, &one, NULL, 0), 0);
        if (count_main > 0)
                ASSERT_EQ(profile_add_stack(p, &s3, &count_main, NULL, 0), 0);
        return p;
}

/* Gunzips (when gzipped) and unpacks with protobuf-c alone: the independent reader. */
static Perftools__Profiles__Profile *unpack(const Buf *b) {
        const uint8_t *data = (const uint8_t *) b->data;
        size_t size = b->len;
        _cleanup_buf_ Buf raw = {};

        if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
                z_stream z = {};
                unsigned char chunk[4096];
                int r;

                ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
                z.next_in = (Bytef *) data;
                z.avail_in = (uInt) size;
                do {
                        z.next_out = chunk;
                        z.avail_out = sizeof chunk;
                        r = inflate(&z, Z_NO_FLUSH);
                        ASSERT_TRUE(r == Z_OK || r == Z_STREAM_END);
                        buf_append(&raw, chunk, sizeof chunk - z.avail_out);
                } while (r != Z_STREAM_END);
                ASSERT_EQ(z.avail_in, 0);
                inflateEnd(&z);
                data = (const uint8_t *) raw.data;
                size = raw.len;
        }
        Perftools__Profiles__Profile *m = perftools__profiles__profile__unpack(NULL, size, data);
        ASSERT_TRUE(m);
        return m;
}

/* Every field of the model against what protobuf-c read back. */
static void assert_message_matches(const Profile *p, const Perftools__Profiles__Profile *m) {
        ASSERT_EQ(m->n_string_table, p->n_strings);
        for (size_t i = 0; i < p->n_strings; i++)
                ASSERT_STREQ(m->string_table[i], p->strings[i]);

        ASSERT_EQ(m->n_sample_type, p->n_sample_types);
        for (size_t i = 0; i < p->n_sample_types; i++) {
                ASSERT_EQ(m->sample_type[i]->type, p->sample_types[i].type);
                ASSERT_EQ(m->sample_type[i]->unit, p->sample_types[i].unit);
        }

        ASSERT_EQ(m->n_sample, p->n_samples);
        for (size_t i = 0; i < p->n_samples; i++) {
                const Perftools__Profiles__Sample *ms = m->sample[i];
                const ProfileSample *s = &p->samples[i];

                ASSERT_EQ(ms->n_location_id, s->n_location_ids);
                for (size_t k = 0; k < s->n_location_ids; k++)
                        ASSERT_EQ(ms->location_id[k], s->location_ids[k]);
                ASSERT_EQ(ms->n_value, p->n_sample_types);
                for (size_t k = 0; k < p->n_sample_types; k++)
                        ASSERT_EQ(ms->value[k], s->values[k]);
                /* The model keeps labels sorted; Go writes them in map order. */
                ASSERT_EQ(ms->n_label, s->n_labels);
                for (size_t k = 0; k < s->n_labels; k++) {
                        bool found = false;
                        for (size_t j = 0; j < ms->n_label && !found; j++)
                                found = ms->label[j]->key == s->labels[k].key &&
                                        ms->label[j]->str == s->labels[k].str &&
                                        ms->label[j]->num == s->labels[k].num &&
                                        ms->label[j]->num_unit == s->labels[k].num_unit;
                        ASSERT_TRUE(found);
                        if (k > 0)
                                ASSERT_TRUE(s->labels[k - 1].key <= s->labels[k].key);
                }
        }

        ASSERT_EQ(m->n_mapping, p->n_mappings);
        for (size_t i = 0; i < p->n_mappings; i++) {
                const Perftools__Profiles__Mapping *mm = m->mapping[i];
                const ProfileMapping *pm = &p->mappings[i];

                ASSERT_EQ(mm->id, pm->id);
                ASSERT_EQ(mm->id, i + 1);
                ASSERT_EQ(mm->memory_start, pm->memory_start);
                ASSERT_EQ(mm->memory_limit, pm->memory_limit);
                ASSERT_EQ(mm->file_offset, pm->file_offset);
                ASSERT_EQ(mm->filename, pm->filename);
                ASSERT_EQ(mm->build_id, pm->build_id);
                ASSERT_EQ(mm->has_functions, pm->has_functions);
                ASSERT_EQ(mm->has_filenames, pm->has_filenames);
                ASSERT_EQ(mm->has_line_numbers, pm->has_line_numbers);
                ASSERT_EQ(mm->has_inline_frames, pm->has_inline_frames);
        }

        ASSERT_EQ(m->n_location, p->n_locations);
        for (size_t i = 0; i < p->n_locations; i++) {
                const Perftools__Profiles__Location *ml = m->location[i];
                const ProfileLocation *l = &p->locations[i];

                ASSERT_EQ(ml->id, l->id);
                ASSERT_EQ(ml->id, i + 1);
                ASSERT_EQ(ml->mapping_id, l->mapping_id);
                ASSERT_EQ(ml->address, l->address);
                ASSERT_EQ(ml->is_folded, l->is_folded);
                ASSERT_EQ(ml->n_line, l->n_lines);
                for (size_t k = 0; k < l->n_lines; k++) {
                        ASSERT_EQ(ml->line[k]->function_id, l->lines[k].function_id);
                        ASSERT_EQ(ml->line[k]->line, l->lines[k].line);
                        ASSERT_EQ(ml->line[k]->column, l->lines[k].column);
                }
        }

        ASSERT_EQ(m->n_function, p->n_functions);
        for (size_t i = 0; i < p->n_functions; i++) {
                const Perftools__Profiles__Function *mf = m->function[i];
                const ProfileFunction *f = &p->functions[i];

                ASSERT_EQ(mf->id, f->id);
                ASSERT_EQ(mf->id, i + 1);
                ASSERT_EQ(mf->name, f->name);
                ASSERT_EQ(mf->system_name, f->system_name);
                ASSERT_EQ(mf->filename, f->filename);
                ASSERT_EQ(mf->start_line, f->start_line);
        }

        ASSERT_EQ(m->drop_frames, p->drop_frames);
        ASSERT_EQ(m->keep_frames, p->keep_frames);
        ASSERT_EQ(m->time_nanos, p->time_nanos);
        ASSERT_EQ(m->duration_nanos, p->duration_nanos);
        if (p->period_type.type || p->period_type.unit) {
                ASSERT_TRUE(m->period_type);
                ASSERT_EQ(m->period_type->type, p->period_type.type);
                ASSERT_EQ(m->period_type->unit, p->period_type.unit);
        } else
                ASSERT_TRUE(!m->period_type);
        ASSERT_EQ(m->period, p->period);
        ASSERT_EQ(m->n_comment, p->n_comments);
        for (size_t i = 0; i < p->n_comments; i++)
                ASSERT_EQ(m->comment[i], p->comments[i]);
        ASSERT_EQ(m->default_sample_type, p->default_sample_type);
        ASSERT_EQ(m->doc_url, p->doc_url);
}

static void assert_encoding_matches(const Profile *p, ProfileEncodeFlags flags) {
        _cleanup_buf_ Buf b = {};

        ASSERT_EQ(profile_encode(p, flags, &b), 0);
        Perftools__Profiles__Profile *m = unpack(&b);
        assert_message_matches(p, m);
        perftools__profiles__profile__free_unpacked(m, NULL);
}

/* Two models alike field by field (both numbered the same way). */
static void assert_profiles_equal(const Profile *a, const Profile *b) {
        _cleanup_buf_ Buf eb = {};

        /* The encoding is a function of every field; compare it through protobuf-c. */
        ASSERT_EQ(profile_encode(b, PROFILE_ENCODE_UNCOMPRESSED, &eb), 0);
        Perftools__Profiles__Profile *m = unpack(&eb);
        assert_message_matches(a, m);
        perftools__profiles__profile__free_unpacked(m, NULL);
}

static Profile *decode_buf(const Buf *b) {
        Profile *p = NULL;
        ASSERT_EQ(profile_decode(b->data, b->len, NULL, &p), 0);
        return p;
}

static Profile *roundtrip(const Profile *p, ProfileEncodeFlags flags) {
        _cleanup_buf_ Buf b = {};
        ASSERT_EQ(profile_encode(p, flags, &b), 0);
        return decode_buf(&b);
}

static void read_file(const char *path, Buf *out) {
        FILE *f = fopen(path, "re");
        char chunk[4096];
        size_t n;

        if (!f)
                TINY_FAIL("open %s: %s", path, strerror(errno));
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                buf_append(out, chunk, n);
        fclose(f);
}

static void write_file(const char *path, const Buf *b) {
        FILE *f = fopen(path, "we");
        if (!f)
                TINY_FAIL("create %s: %s", path, strerror(errno));
        ASSERT_EQ(fwrite(b->data, 1, b->len, f), b->len);
        ASSERT_EQ(fclose(f), 0);
}

static const char *fn_name(const Profile *p, uint64_t function_id) {
        ASSERT_TRUE(function_id >= 1 && function_id <= p->n_functions);
        return profile_string(p, p->functions[function_id - 1].name);
}

static const ProfileLocation *loc_of(const Profile *p, uint64_t id) {
        ASSERT_TRUE(id >= 1 && id <= p->n_locations);
        return &p->locations[id - 1];
}

/* The leaf function names of a sample, joined by ';' (innermost inline first), leaf first. */
static void sample_names(const Profile *p, const ProfileSample *s, Buf *out) {
        buf_reset(out);
        for (size_t i = 0; i < s->n_location_ids; i++) {
                const ProfileLocation *l = loc_of(p, s->location_ids[i]);
                if (l->n_lines == 0)
                        buf_printf(out, "%s0x%" PRIx64, out->len ? ";" : "", l->address);
                for (size_t k = 0; k < l->n_lines; k++)
                        buf_printf(out, "%s%s", out->len ? ";" : "", fn_name(p, l->lines[k].function_id));
        }
}

/* The sample whose names are NAMES and whose string label KEY is VALUE (NULL: no labels). */
static const ProfileSample *find_sample(const Profile *p, const char *names, const char *key, const char *value) {
        _cleanup_buf_ Buf b = {};

        for (size_t i = 0; i < p->n_samples; i++) {
                const ProfileSample *s = &p->samples[i];
                sample_names(p, s, &b);
                if (strcmp(b.data ? b.data : "", names) != 0)
                        continue;
                if (!key) {
                        if (s->n_labels == 0)
                                return s;
                        continue;
                }
                for (size_t k = 0; k < s->n_labels; k++)
                        if (strcmp(profile_string(p, s->labels[k].key), key) == 0 &&
                            strcmp(profile_string(p, s->labels[k].str), value) == 0)
                                return s;
        }
        return NULL;
}

static const char *label_str(const Profile *p, const ProfileSample *s, const char *key) {
        for (size_t k = 0; k < s->n_labels; k++)
                if (strcmp(profile_string(p, s->labels[k].key), key) == 0)
                        return profile_string(p, s->labels[k].str);
        return NULL;
}

/* ---- the model ---- */

TEST(string_table_starts_empty_and_dedups) {
        _cleanup_(profile_freep) Profile *p = NULL;
        uint32_t a, b, c, e;

        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(p->n_strings, 1);
        ASSERT_STREQ(p->strings[0], "");
        ASSERT_EQ(profile_intern(p, "alpha", &a), 0);
        ASSERT_EQ(profile_intern(p, "beta", &b), 0);
        ASSERT_EQ(profile_intern(p, "alpha", &c), 0);
        ASSERT_EQ(a, c);
        ASSERT_NE(a, b);
        ASSERT_EQ(profile_intern(p, NULL, &e), 0);
        ASSERT_EQ(e, 0);
        ASSERT_EQ(profile_intern(p, "", &e), 0);
        ASSERT_EQ(e, 0);
        ASSERT_EQ(p->n_strings, 3);
        ASSERT_STREQ(profile_string(p, 9999), "");

        /* Even an empty profile writes string_table[0] = "" (pprof insists). */
        _cleanup_buf_ Buf enc = {};
        ASSERT_EQ(profile_encode(p, 0, &enc), 0);
        Perftools__Profiles__Profile *m = unpack(&enc);
        ASSERT_GE(m->n_string_table, 1);
        ASSERT_STREQ(m->string_table[0], "");
        perftools__profiles__profile__free_unpacked(m, NULL);
}

TEST(functions_and_locations_dedup) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(1000, 3, false);

        /* demo_read, gamma_inlined, beta, main: one function each, though used by many
         * frames; locations: one per physical pc. */
        ASSERT_EQ(p->n_functions, 4);
        ASSERT_EQ(p->n_locations, 4);
        uint64_t id1, id2;
        ASSERT_EQ(profile_add_function(p, "beta", "_Z4betav", "/src/main.c", 0, &id1), 0);
        ASSERT_STREQ(fn_name(p, id1), "beta");
        ASSERT_EQ(p->n_functions, 4);
        /* A different start line or system name is another function. */
        ASSERT_EQ(profile_add_function(p, "beta", "_Z4betav", "/src/main.c", 7, &id2), 0);
        ASSERT_NE(id1, id2);
        ASSERT_EQ(profile_add_function(p, "beta", NULL, "/src/main.c", 0, &id2), 0);
        ASSERT_NE(id1, id2);
        ASSERT_EQ(p->n_functions, 6);

        /* Same contents, same location; a different line, another. */
        ProfileLine ln = { id1, 22, 0 };
        uint64_t l1, l2, l3;
        ASSERT_EQ(profile_add_location(p, 1, 0x400500, &ln, 1, false, &l1), 0);
        ASSERT_EQ(profile_add_location(p, 1, 0x400500, &ln, 1, false, &l2), 0);
        ASSERT_EQ(l1, l2);
        ln.line = 23;
        ASSERT_EQ(profile_add_location(p, 1, 0x400500, &ln, 1, false, &l3), 0);
        ASSERT_NE(l1, l3);
        ASSERT_EQ(profile_add_location(p, 9, 0x400500, &ln, 1, false, &l3), -EINVAL);
        ln.function_id = 999;
        ASSERT_EQ(profile_add_location(p, 1, 0x400500, &ln, 1, false, &l3), -EINVAL);
        ln.function_id = 0;
        ASSERT_EQ(profile_add_location(p, 1, 0x400500, &ln, 1, false, &l3), -EINVAL);
        free_symlocs();
}

TEST(inline_lines_innermost_first) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(1000, 0, false);

        const ProfileSample *s = find_sample(p, "demo_read;gamma_inlined;beta;main", "thread_name", "worker");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->n_location_ids, 3);
        const ProfileLocation *l = loc_of(p, s->location_ids[1]);
        ASSERT_EQ(l->address, MAIN_START + 0x1000);    /* return address − 1 */
        ASSERT_EQ(l->n_lines, 2);
        ASSERT_STREQ(fn_name(p, l->lines[0].function_id), "gamma_inlined");
        ASSERT_EQ(l->lines[0].line, 15);
        ASSERT_STREQ(fn_name(p, l->lines[1].function_id), "beta");
        ASSERT_EQ(l->lines[1].line, 22);
        const ProfileFunction *beta = &p->functions[l->lines[1].function_id - 1];
        ASSERT_STREQ(profile_string(p, beta->system_name), "_Z4betav");
        ASSERT_STREQ(profile_string(p, beta->filename), "/src/main.c");
        const ProfileFunction *gamma = &p->functions[l->lines[0].function_id - 1];
        ASSERT_STREQ(profile_string(p, gamma->system_name), "gamma_inlined");

        /* The leaf is the exact pc, in the library mapping. */
        const ProfileLocation *leaf = loc_of(p, s->location_ids[0]);
        ASSERT_EQ(leaf->address, LIB_START + 0x1234);
        ASSERT_STREQ(profile_string(p, p->mappings[leaf->mapping_id - 1].filename), "/usr/lib/libdemo.so.1");
        ASSERT_EQ(l->mapping_id, 1);
        free_symlocs();
}

TEST(identical_samples_group) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(1000, 3, false);

        /* worker twice → one sample of 2; reader separate; unknown; main alone. */
        ASSERT_EQ(p->n_samples, 4);
        const ProfileSample *w = find_sample(p, "demo_read;gamma_inlined;beta;main", "thread_name", "worker");
        const ProfileSample *r = find_sample(p, "demo_read;gamma_inlined;beta;main", "thread_name", "reader");
        ASSERT_TRUE(w && r && w != r);
        ASSERT_EQ(w->values[0], 2);
        ASSERT_EQ(r->values[0], 1);
        ASSERT_EQ(r->n_labels, 2);

        /* The same label set in another order is the same sample. */
        ProfileLabelSpec reader_swapped[] = {
                { .key = "thread_id", .num = 4250 },
                { .key = "thread_name", .str = "reader" },
        };
        ASSERT_EQ(profile_add_sample(p, r->location_ids, r->n_location_ids, &one, reader_swapped, 2), 0);
        ASSERT_EQ(p->n_samples, 4);
        ASSERT_EQ(r->values[0], 2);

        /* A numeric label with a unit differs from one without. */
        ProfileLabelSpec with_unit[] = {
                { .key = "thread_id", .num = 4250, .num_unit = "id" },
                { .key = "thread_name", .str = "reader" },
        };
        ASSERT_EQ(profile_add_sample(p, r->location_ids, r->n_location_ids, &one, with_unit, 2), 0);
        ASSERT_EQ(p->n_samples, 5);

        /* Same locations in another order: another sample. */
        uint64_t rev[] = { w->location_ids[2], w->location_ids[1], w->location_ids[0] };
        ASSERT_EQ(profile_add_sample(p, rev, 3, &one, NULL, 0), 0);
        ASSERT_EQ(p->n_samples, 6);
        ASSERT_EQ(profile_add_sample(p, rev, 3, &one, NULL, 0), 0);
        ASSERT_EQ(p->n_samples, 6);
        ASSERT_EQ(p->samples[5].values[0], 2);

        /* Bad input. */
        uint64_t bad = 77;
        ASSERT_EQ(profile_add_sample(p, &bad, 1, &one, NULL, 0), -EINVAL);
        ProfileLabelSpec nokey = { .str = "x" };
        ASSERT_EQ(profile_add_sample(p, rev, 3, &one, &nokey, 1), -EINVAL);
        assert_encoding_matches(p, 0);
        free_symlocs();
}

TEST(synthetic_frames_and_unsymbolized) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(1000, 0, false);

        /* nothing known at 0x3000: a location with a mapping but no lines */
        const ProfileSample *s = find_sample(p, "0x403000;main", NULL, NULL);
        ASSERT_TRUE(s);
        const ProfileLocation *l = loc_of(p, s->location_ids[0]);
        ASSERT_EQ(l->n_lines, 0);
        ASSERT_EQ(l->mapping_id, 1);

        /* truncated: an extra outermost "[truncated]" */
        StackFrame f[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack trunc = { f, 1, STACK_END_DEPTH };
        ASSERT_EQ(profile_add_stack(p, &trunc, &one, NULL, 0), 0);
        s = find_sample(p, "main;[truncated]", NULL, NULL);
        ASSERT_TRUE(s);
        l = loc_of(p, s->location_ids[1]);
        ASSERT_EQ(l->mapping_id, 0);
        ASSERT_EQ(l->n_lines, 1);

        /* complete empty stack: "[no stack]"; empty and stopped early: "[truncated]" */
        Stack empty = { NULL, 0, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &empty, &one, NULL, 0), 0);
        ASSERT_TRUE(find_sample(p, "[no stack]", NULL, NULL));
        Stack empty_err = { NULL, 0, STACK_END_ERROR };
        ASSERT_EQ(profile_add_stack(p, &empty_err, &one, NULL, 0), 0);
        ASSERT_TRUE(find_sample(p, "[truncated]", NULL, NULL));
        Stack zero_end = { f, 1, STACK_END_ZERO_PC };
        ASSERT_EQ(profile_add_stack(p, &zero_end, &one, NULL, 0), 0);
        s = find_sample(p, "main", NULL, NULL);
        ASSERT_TRUE(s);
        ASSERT_EQ(s->values[0], 1);

        /* outside every mapping, unknown function names, NULL loc */
        static const Frame anon_f[] = { { NULL, NULL, "/src/x.c", 3, 0, false },
                                        { "outer", NULL, NULL, 0, 0, false } };
        const SymLoc *anon = symloc(NULL, 0, 2, anon_f);
        StackFrame g[] = { sf(0x10, true, anon), sf(0x21, false, NULL) };
        Stack odd = { g, 2, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &odd, &one, NULL, 0), 0);
        s = find_sample(p, "??;outer;0x20", NULL, NULL);
        ASSERT_TRUE(s);
        ASSERT_EQ(loc_of(p, s->location_ids[0])->mapping_id, 0);
        ASSERT_EQ(loc_of(p, s->location_ids[1])->mapping_id, 0);
        assert_encoding_matches(p, 0);
        free_symlocs();
}

TEST(main_mapping_first) {
        make_symlocs();
        /* The library is added first, and a stack in it before the main executable. */
        _cleanup_(profile_freep) Profile *p = NULL;
        ProfileMappingInfo lib_m = { LIB_START, LIB_LIMIT, 0x1000, "/usr/lib/libdemo.so.1", NULL, false, false };
        ProfileMappingInfo vdso = { 0x7fff0000, 0x7fff2000, 0, "[vdso]", NULL, false, false };
        ProfileMappingInfo main_m = { MAIN_START, MAIN_LIMIT, 0, "/usr/bin/demo", "abcdef", true, true };
        uint64_t lib_id, main_id, vdso_id;

        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(profile_add_sample_type(p, "goroutine", "count"), 0);
        ASSERT_EQ(profile_add_mapping(p, &lib_m, &lib_id), 0);
        ASSERT_EQ(lib_id, 1);
        StackFrame f[] = { sf(LIB_START + 0x1234, true, loc_read) };
        Stack s = { f, 1, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &s, &one, NULL, 0), 0);
        ASSERT_EQ(p->locations[0].mapping_id, 1);

        ASSERT_EQ(profile_add_mapping(p, &main_m, &main_id), 0);
        ASSERT_EQ(main_id, 1);
        ASSERT_EQ(profile_add_mapping(p, &vdso, &vdso_id), 0);
        ASSERT_EQ(vdso_id, 3);
        ASSERT_STREQ(profile_string(p, p->mappings[0].filename), "/usr/bin/demo");
        ASSERT_STREQ(profile_string(p, p->mappings[0].build_id), "abcdef");
        ASSERT_TRUE(p->mappings[0].has_functions && p->mappings[0].has_filenames &&
                    p->mappings[0].has_line_numbers && p->mappings[0].has_inline_frames);
        ASSERT_FALSE(p->mappings[1].has_functions);
        for (size_t i = 0; i < p->n_mappings; i++)
                ASSERT_EQ(p->mappings[i].id, i + 1);
        /* the library's location followed its mapping */
        ASSERT_EQ(p->locations[0].mapping_id, 2);
        ASSERT_STREQ(profile_string(p, p->mappings[1].filename), "/usr/lib/libdemo.so.1");

        /* lookups by address and by contents still work after the shift */
        ASSERT_EQ(profile_add_stack(p, &s, &one, NULL, 0), 0);
        ASSERT_EQ(p->n_locations, 1);
        ASSERT_EQ(p->n_samples, 1);
        ASSERT_EQ(p->samples[0].values[0], 2);
        StackFrame fm[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack sm = { fm, 1, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &sm, &one, NULL, 0), 0);
        ASSERT_EQ(p->locations[1].mapping_id, 1);
        uint64_t again;
        ASSERT_EQ(profile_add_location(p, 2, LIB_START + 0x1234, p->locations[0].lines, 1, false, &again), 0);
        ASSERT_EQ(again, 1);

        ProfileMappingInfo backwards = { 0x2000, 0x1000, 0, "x", NULL, false, false };
        ASSERT_EQ(profile_add_mapping(p, &backwards, NULL), -EINVAL);
        assert_encoding_matches(p, 0);
        free_symlocs();
}

TEST(header_fields) {
        _cleanup_(profile_freep) Profile *p = NULL;

        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(profile_add_sample_type(p, "alloc_objects", "count"), 0);
        ASSERT_EQ(profile_add_sample_type(p, "alloc_space", "bytes"), 0);
        ASSERT_EQ(profile_set_default_sample_type(p, "alloc_space"), 0);
        ASSERT_STREQ(profile_string(p, p->default_sample_type), "alloc_space");
        ASSERT_EQ(profile_set_default_sample_type(p, "bytes"), -ENOENT);
        ASSERT_EQ(profile_set_default_sample_type(p, "nope"), -ENOENT);
        ASSERT_EQ(profile_set_period(p, "space", "bytes", 524288), 0);
        ASSERT_EQ(profile_add_comment(p, "first"), 0);
        ASSERT_EQ(profile_add_comment(p, "second"), 0);
        ASSERT_EQ(profile_intern(p, "^runtime\\.", &p->drop_frames), 0);
        ASSERT_EQ(profile_intern(p, "main", &p->keep_frames), 0);
        ASSERT_EQ(profile_intern(p, "https://example.org/doc", &p->doc_url), 0);
        p->time_nanos = INT64_C(1700000000123456789);
        p->duration_nanos = 2000000000;

        ProfileLine ln[2];
        uint64_t loc;
        ASSERT_EQ(profile_add_function(p, "f", "f", "f.c", 10, &ln[0].function_id), 0);
        ASSERT_EQ(profile_add_function(p, "g", "g", "g.c", 20, &ln[1].function_id), 0);
        ln[0].line = 11, ln[0].column = 5;
        ln[1].line = 21, ln[1].column = 0;
        ASSERT_EQ(profile_add_location(p, 0, 0x1234, ln, 2, true, &loc), 0);
        int64_t v[] = { 3, -(INT64_C(1) << 40) };
        ProfileLabelSpec l[] = { { .key = "bytes", .num = 4096, .num_unit = "bytes" },
                                 { .key = "empty", .str = "" } };
        ASSERT_EQ(profile_add_sample(p, &loc, 1, v, l, 2), 0);
        ASSERT_EQ(profile_add_sample_type(p, "late", "count"), -EBUSY);

        /* Symbols from a target need not be UTF-8; protobuf-c must not care either. */
        uint64_t bad_fn;
        ASSERT_EQ(profile_add_function(p, "bad\xff\xfe\xc3(", NULL, "/tmp/\x80.c", 0, &bad_fn), 0);

        assert_encoding_matches(p, 0);
        assert_encoding_matches(p, PROFILE_ENCODE_UNCOMPRESSED);
        _cleanup_(profile_freep) Profile *q = roundtrip(p, 0);
        assert_profiles_equal(p, q);
        ASSERT_STREQ(fn_name(q, bad_fn), "bad\xff\xfe\xc3(");

        /* gzip header as Go writes it: deflate, and XFL "fastest" for best speed */
        _cleanup_buf_ Buf b = {};
        ASSERT_EQ(profile_encode(p, 0, &b), 0);
        ASSERT_GE(b.len, 18);
        ASSERT_EQ((uint8_t) b.data[0], 0x1f);
        ASSERT_EQ((uint8_t) b.data[1], 0x8b);
        ASSERT_EQ((uint8_t) b.data[2], 8);
        ASSERT_EQ((uint8_t) b.data[8], 4);
}

TEST(encode_decode_roundtrip) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(INT64_C(1700000000000000000), 3, true);
        ASSERT_EQ(profile_add_comment(p, "cprofd test"), 0);
        p->duration_nanos = 5;

        /* Appending to a non-empty Buf keeps what was there. */
        _cleanup_buf_ Buf b = {};
        buf_puts(&b, "prefix");
        ASSERT_EQ(profile_encode(p, 0, &b), 0);
        ASSERT_EQ(memcmp(b.data, "prefix", 6), 0);
        _cleanup_(profile_freep) Profile *q = NULL;
        ASSERT_EQ(profile_decode(b.data + 6, b.len - 6, NULL, &q), 0);
        assert_profiles_equal(p, q);

        _cleanup_(profile_freep) Profile *r = roundtrip(p, PROFILE_ENCODE_UNCOMPRESSED);
        assert_profiles_equal(p, r);
        assert_encoding_matches(p, 0);

        /* The decoded profile is a working builder: adding the same stack groups. */
        const ProfileSample *w = find_sample(r, "demo_read;gamma_inlined;beta;main", "thread_name", "worker");
        ASSERT_TRUE(w);
        ProfileLabelSpec worker = { .key = "thread_name", .str = "worker" };
        size_t n = r->n_samples;
        ASSERT_EQ(profile_add_sample(r, w->location_ids, w->n_location_ids, &one, &worker, 1), 0);
        ASSERT_EQ(r->n_samples, n);
        ASSERT_EQ(w->values[0], 3);

        /* Concatenated gzip members read as one stream, as Go's reader does. */
        _cleanup_buf_ Buf two = {};
        _cleanup_buf_ Buf raw = {};
        ASSERT_EQ(profile_encode(p, PROFILE_ENCODE_UNCOMPRESSED, &raw), 0);
        ASSERT_GT(raw.len, 10);
        for (int k = 0; k < 2; k++) {
                const char *part = k == 0 ? raw.data : raw.data + raw.len / 2;
                size_t len = k == 0 ? raw.len / 2 : raw.len - raw.len / 2;
                unsigned char gz[65536];
                z_stream z = {};
                ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
                z.next_in = (Bytef *) part;
                z.avail_in = (uInt) len;
                z.next_out = gz;
                z.avail_out = sizeof gz;
                ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
                buf_append(&two, gz, sizeof gz - z.avail_out);
                deflateEnd(&z);
        }
        _cleanup_(profile_freep) Profile *t = decode_buf(&two);
        assert_profiles_equal(p, t);
        free_symlocs();
}

/* ---- caps ---- */

TEST(caps_return_e2big) {
        make_symlocs();
        ProfileLimits lim = profile_limits_default;
        _cleanup_(profile_freep) Profile *p = NULL;
        uint64_t ids[8], fn;
        uint32_t si;

        lim.max_samples = 2;
        lim.max_locations = 3;
        lim.max_functions = 3;
        lim.max_strings = 12;
        lim.max_labels = 1;
        lim.max_stack_depth = 2;
        lim.max_lines = 1;
        lim.max_mappings = 1;
        lim.max_sample_types = 1;
        lim.max_comments = 1;
        ASSERT_EQ(profile_new(&lim, &p), 0);
        ASSERT_EQ(profile_add_sample_type(p, "n", "count"), 0);
        ASSERT_EQ(profile_add_sample_type(p, "m", "count"), -E2BIG);
        ASSERT_EQ(profile_add_comment(p, "c"), 0);
        ASSERT_EQ(profile_add_comment(p, "d"), -E2BIG);

        ProfileMappingInfo m = { 0x1000, 0x2000, 0, "a.out", NULL, true, true };
        ASSERT_EQ(profile_add_mapping(p, &m, NULL), 0);
        ASSERT_EQ(profile_add_mapping(p, &m, NULL), -E2BIG);

        for (int i = 0; i < 3; i++) {
                char name[16];
                snprintf(name, sizeof name, "f%d", i);
                ASSERT_EQ(profile_add_function(p, name, name, NULL, 0, &fn), 0);
                ProfileLine ln = { fn, 1, 0 };
                ASSERT_EQ(profile_add_location(p, 1, 0x1000 + (uint64_t) i, &ln, 1, false, &ids[i]), 0);
        }
        ASSERT_EQ(profile_add_function(p, "f9", NULL, NULL, 0, &fn), -E2BIG);
        ProfileLine two[2] = { { 1, 1, 0 }, { 2, 1, 0 } };
        ASSERT_EQ(profile_add_location(p, 1, 0x1100, two, 2, false, NULL), -E2BIG);
        ASSERT_EQ(profile_add_location(p, 1, 0x1100, two, 1, false, NULL), -E2BIG);

        /* strings: "", n, count, c, a.out, f0, f1, f2, and f9 (interned before the
         * function cap hit: unreferenced, harmless) → room for 3 more */
        ASSERT_EQ(p->n_strings, 9);
        ASSERT_EQ(profile_intern(p, "s1", &si), 0);
        ASSERT_EQ(profile_intern(p, "s2", &si), 0);
        ASSERT_EQ(profile_intern(p, "s3", &si), 0);
        ASSERT_EQ(profile_intern(p, "s4", &si), -E2BIG);
        ASSERT_EQ(profile_intern(p, "s1", &si), 0);   /* existing: fine */

        ProfileLabelSpec l2[] = { { .key = "s1", .str = "s2" }, { .key = "s3", .str = "s2" } };
        ASSERT_EQ(profile_add_sample(p, ids, 1, &one, l2, 2), -E2BIG);
        ASSERT_EQ(profile_add_sample(p, ids, 3, &one, NULL, 0), -E2BIG);
        ASSERT_EQ(profile_add_sample(p, ids, 1, &one, l2, 1), 0);
        ASSERT_EQ(profile_add_sample(p, ids + 1, 1, &one, NULL, 0), 0);
        ASSERT_EQ(profile_add_sample(p, ids + 2, 1, &one, NULL, 0), -E2BIG);
        /* grouping into an existing sample needs no room */
        ASSERT_EQ(profile_add_sample(p, ids + 1, 1, &one, NULL, 0), 0);
        ASSERT_EQ(p->samples[1].values[0], 2);

        /* stacks: depth, lines per location */
        StackFrame f[] = { sf(0x1001, false, loc_main), sf(0x1002, false, loc_main), sf(0x1003, false, loc_main) };
        Stack deep = { f, 3, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &deep, &one, NULL, 0), -E2BIG);
        Stack trunc = { f, 2, STACK_END_LOOP };        /* 2 + [truncated] */
        ASSERT_EQ(profile_add_stack(p, &trunc, &one, NULL, 0), -E2BIG);
        StackFrame fi[] = { sf(0x1801, false, loc_inline) };
        Stack inl = { fi, 1, STACK_END_COMPLETE };
        ASSERT_EQ(profile_add_stack(p, &inl, &one, NULL, 0), -E2BIG);

        /* Whatever failed, the profile is still valid and encodes. */
        assert_encoding_matches(p, 0);

        /* string bytes */
        _cleanup_(profile_freep) Profile *q = NULL;
        lim = profile_limits_default;
        lim.max_string_bytes = 11;      /* NULs included: 1 + 5 + 5 */
        ASSERT_EQ(profile_new(&lim, &q), 0);
        ASSERT_EQ(profile_intern(q, "abcd", &si), 0);
        ASSERT_EQ(profile_intern(q, "efgh", &si), 0);
        ASSERT_EQ(profile_intern(q, "i", &si), -E2BIG);

        /* the decoder applies the caps of its caller */
        _cleanup_(profile_freep) Profile *d = demo_profile(1, 1, false);
        _cleanup_buf_ Buf b = {};
        ASSERT_EQ(profile_encode(d, 0, &b), 0);
        Profile *x = NULL;
        lim = profile_limits_default;
        lim.max_samples = 2;
        ASSERT_EQ(profile_decode(b.data, b.len, &lim, &x), -E2BIG);
        lim = profile_limits_default;
        lim.max_locations = 2;
        ASSERT_EQ(profile_decode(b.data, b.len, &lim, &x), -E2BIG);
        lim = profile_limits_default;
        lim.max_strings = 5;
        ASSERT_EQ(profile_decode(b.data, b.len, &lim, &x), -E2BIG);
        lim = profile_limits_default;
        lim.max_input_bytes = b.len - 1;
        ASSERT_EQ(profile_decode(b.data, b.len, &lim, &x), -E2BIG);
        lim.max_input_bytes = b.len + 1;        /* inflates to more than that */
        ASSERT_EQ(profile_decode(b.data, b.len, &lim, &x), -E2BIG);

        /* 2-byte empty samples unpack into ~80-byte structs: protobuf-c's memory is
         * budgeted too, not only the input size */
        _cleanup_buf_ Buf empties = {};
        for (int i = 0; i < 500; i++)
                buf_append(&empties, "\x12\x00", 2);
        lim = profile_limits_default;
        lim.max_input_bytes = empties.len;
        ASSERT_EQ(profile_decode(empties.data, empties.len, &lim, &x), -E2BIG);
        ASSERT_EQ(profile_decode(empties.data, empties.len, NULL, &x), -EBADMSG); /* no strings */
        ASSERT_TRUE(!x);
        free_symlocs();
}

TEST(value_overflow_is_erange) {
        _cleanup_(profile_freep) Profile *p = NULL;
        uint64_t loc;
        int64_t big[] = { INT64_MAX, 1 };
        int64_t ones[] = { 1, 1 };

        ASSERT_EQ(profile_new(NULL, &p), 0);
        ASSERT_EQ(profile_add_sample_type(p, "a", "count"), 0);
        ASSERT_EQ(profile_add_sample_type(p, "b", "count"), 0);
        ASSERT_EQ(profile_add_location(p, 0, 0x10, NULL, 0, false, &loc), 0);
        ASSERT_EQ(profile_add_sample(p, &loc, 1, big, NULL, 0), 0);
        ASSERT_EQ(profile_add_sample(p, &loc, 1, ones, NULL, 0), -ERANGE);
        /* all or nothing: the second value did not change either */
        ASSERT_EQ(p->samples[0].values[0], INT64_MAX);
        ASSERT_EQ(p->samples[0].values[1], 1);

        _cleanup_(profile_freep) Profile *q = NULL;
        ASSERT_EQ(profile_new(NULL, &q), 0);
        ASSERT_EQ(profile_add_sample_type(q, "a", "count"), 0);
        ASSERT_EQ(profile_add_sample_type(q, "b", "count"), 0);
        int64_t min[] = { INT64_MIN, 0 };
        ASSERT_EQ(profile_add_location(q, 0, 0x10, NULL, 0, false, &loc), 0);
        ASSERT_EQ(profile_add_sample(q, &loc, 1, min, NULL, 0), 0);
        Profile *d = NULL;
        ASSERT_EQ(profile_delta(q, p, &d), -ERANGE);   /* −INT64_MIN */
        ASSERT_TRUE(!d);
}

/* ---- delta ---- */

TEST(delta_nets_counts) {
        make_symlocs();
        /* p0 and p1 intern in different orders (the library first in p1), so their ids
         * differ; the delta must match locations by contents. */
        _cleanup_(profile_freep) Profile *p0 = demo_profile(INT64_C(1000000000), 3, false);
        _cleanup_(profile_freep) Profile *p1 = NULL;
        ASSERT_EQ(profile_new(NULL, &p1), 0);
        ASSERT_EQ(profile_add_sample_type(p1, "goroutine", "count"), 0);
        ASSERT_EQ(profile_set_period(p1, "goroutine", "count", 1), 0);
        p1->time_nanos = INT64_C(3500000000);
        add_demo_mappings(p1, true);

        StackFrame fm[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack sm = { fm, 1, STACK_END_COMPLETE };
        StackFrame f1[] = {
                sf(LIB_START + 0x1234, true, loc_read),
                sf(MAIN_START + 0x1001, false, loc_inline),
                sf(MAIN_START + 0x2001, false, loc_main),
        };
        Stack s1 = { f1, 3, STACK_END_COMPLETE };
        StackFrame fn[] = { sf(MAIN_START + 0x1001, false, loc_inline), sf(MAIN_START + 0x2001, false, loc_main) };
        Stack snew = { fn, 2, STACK_END_COMPLETE };
        ProfileLabelSpec worker[] = { { .key = "thread_name", .str = "worker" } };
        ProfileLabelSpec reader[] = {           /* other order than p0's */
                { .key = "thread_id", .num = 4250 },
                { .key = "thread_name", .str = "reader" },
        };
        int64_t three = 3, five = 5;

        ASSERT_EQ(profile_add_stack(p1, &sm, &three, NULL, 0), 0);          /* main: 3 − 3 = 0 */
        ASSERT_EQ(profile_add_stack(p1, &snew, &one, NULL, 0), 0);          /* new: +1 */
        ASSERT_EQ(profile_add_stack(p1, &s1, &five, worker, 1), 0);         /* worker: 5 − 2 = 3 */
        ASSERT_EQ(profile_add_stack(p1, &s1, &one, reader, 2), 0);          /* reader: 1 − 1 = 0 */
        /* p0's "unknown ← main" is gone in p1: −1 */
        ASSERT_NE(p0->locations[0].address, p1->locations[0].address);

        _cleanup_(profile_freep) Profile *d = NULL;
        ASSERT_EQ(profile_delta(p0, p1, &d), 0);
        ASSERT_EQ(d->time_nanos, INT64_C(3500000000));
        ASSERT_EQ(d->duration_nanos, INT64_C(2500000000));
        ASSERT_EQ(d->period, 1);
        ASSERT_STREQ(profile_string(d, d->period_type.type), "goroutine");
        ASSERT_EQ(d->n_sample_types, 1);
        ASSERT_STREQ(profile_string(d, d->sample_types[0].type), "goroutine");
        ASSERT_STREQ(profile_string(d, d->sample_types[0].unit), "count");

        ASSERT_EQ(d->n_samples, 3);
        const ProfileSample *s;
        s = find_sample(d, "gamma_inlined;beta;main", NULL, NULL);
        ASSERT_TRUE(s);
        ASSERT_EQ(s->values[0], 1);
        s = find_sample(d, "demo_read;gamma_inlined;beta;main", "thread_name", "worker");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->values[0], 3);
        s = find_sample(d, "0x403000;main", NULL, NULL);
        ASSERT_TRUE(s);
        ASSERT_EQ(s->values[0], -1);
        ASSERT_TRUE(!find_sample(d, "main", NULL, NULL));
        ASSERT_TRUE(!find_sample(d, "demo_read;gamma_inlined;beta;main", "thread_name", "reader"));

        /* p1's mappings in p1's order (library first there), main kept first by p1 */
        ASSERT_EQ(d->n_mappings, 2);
        ASSERT_STREQ(profile_string(d, d->mappings[0].filename), "/usr/bin/demo");
        ASSERT_TRUE(d->mappings[0].has_functions);
        ASSERT_STREQ(profile_string(d, d->mappings[0].build_id), "abcdef0123456789");
        /* locations: read, inline, main, unknown — each once, all still used */
        ASSERT_EQ(d->n_locations, 4);
        ASSERT_EQ(d->n_functions, 4);
        assert_encoding_matches(d, 0);

        /* Through the encoder and decoder (ids renumbered) the answer is the same. */
        _cleanup_(profile_freep) Profile *q0 = roundtrip(p0, 0);
        _cleanup_(profile_freep) Profile *q1 = roundtrip(p1, 0);
        _cleanup_(profile_freep) Profile *dq = NULL;
        ASSERT_EQ(profile_delta(q0, q1, &dq), 0);
        assert_profiles_equal(d, dq);

        /* p − p is empty and its unused locations are gone */
        _cleanup_(profile_freep) Profile *z = NULL;
        ASSERT_EQ(profile_delta(p1, p1, &z), 0);
        ASSERT_EQ(z->n_samples, 0);
        ASSERT_EQ(z->n_locations, 0);
        ASSERT_EQ(z->n_mappings, 2);
        ASSERT_EQ(z->duration_nanos, 0);

        /* p0 − p1: the mirror image, negative duration as given */
        _cleanup_(profile_freep) Profile *m = NULL;
        ASSERT_EQ(profile_delta(p1, p0, &m), 0);
        ASSERT_EQ(m->n_samples, 3);
        ASSERT_EQ(m->duration_nanos, -INT64_C(2500000000));
        s = find_sample(m, "0x403000;main", NULL, NULL);
        ASSERT_TRUE(s);
        ASSERT_EQ(s->values[0], 1);
        free_symlocs();
}

TEST(delta_any_sample_types) {
        /* heap-like: four values; a sample is dropped only when all four net to zero */
        Profile *p[2] = {};
        int64_t v0[][4] = { { 10, 1000, 5, 500 }, { 1, 64, 1, 64 }, { 7, 70, 0, 0 } };
        int64_t v1[][4] = { { 12, 1200, 5, 500 }, { 1, 64, 1, 64 }, { 7, 70, 0, 0 } };
        ProfileLabelSpec bytes = { .key = "bytes", .num = 64, .num_unit = "bytes" };

        for (int k = 0; k < 2; k++) {
                uint64_t fn, loc[3];
                ASSERT_EQ(profile_new(NULL, &p[k]), 0);
                ASSERT_EQ(profile_add_sample_type(p[k], "alloc_objects", "count"), 0);
                ASSERT_EQ(profile_add_sample_type(p[k], "alloc_space", "bytes"), 0);
                ASSERT_EQ(profile_add_sample_type(p[k], "inuse_objects", "count"), 0);
                ASSERT_EQ(profile_add_sample_type(p[k], "inuse_space", "bytes"), 0);
                ASSERT_EQ(profile_set_period(p[k], "space", "bytes", 524288), 0);
                ASSERT_EQ(profile_set_default_sample_type(p[k], "alloc_space"), 0);
                p[k]->time_nanos = k == 0 ? 100 : 350;
                for (int i = 0; i < 3; i++) {
                        char name[8];
                        snprintf(name, sizeof name, "a%d", k == 0 ? i : 2 - i);
                        ASSERT_EQ(profile_add_function(p[k], name, name, "m.c", 1, &fn), 0);
                        ProfileLine ln = { fn, 5, 0 };
                        ASSERT_EQ(profile_add_location(p[k], 0, 0x100 + (uint64_t) (k == 0 ? i : 2 - i),
                                                       &ln, 1, false, &loc[k == 0 ? i : 2 - i]), 0);
                }
                for (int i = 0; i < 3; i++)
                        ASSERT_EQ(profile_add_sample(p[k], &loc[i], 1, k == 0 ? v0[i] : v1[i], &bytes, 1), 0);
        }

        _cleanup_(profile_freep) Profile *d = NULL;
        ASSERT_EQ(profile_delta(p[0], p[1], &d), 0);
        ASSERT_EQ(d->n_samples, 1);
        ASSERT_EQ(d->samples[0].values[0], 2);
        ASSERT_EQ(d->samples[0].values[1], 200);
        ASSERT_EQ(d->samples[0].values[2], 0);
        ASSERT_EQ(d->samples[0].values[3], 0);
        ASSERT_EQ(d->samples[0].n_labels, 1);
        ASSERT_STREQ(profile_string(d, d->samples[0].labels[0].num_unit), "bytes");
        ASSERT_EQ(d->duration_nanos, 250);
        ASSERT_EQ(d->period, 524288);
        ASSERT_STREQ(profile_string(d, d->default_sample_type), "alloc_space");
        ASSERT_EQ(d->n_sample_types, 4);

        /* different sample types */
        _cleanup_(profile_freep) Profile *g = NULL;
        Profile *x = NULL;
        ASSERT_EQ(profile_new(NULL, &g), 0);
        ASSERT_EQ(profile_add_sample_type(g, "goroutine", "count"), 0);
        ASSERT_EQ(profile_delta(g, p[1], &x), -EINVAL);
        ASSERT_EQ(profile_delta(p[1], g, &x), -EINVAL);
        ASSERT_EQ(profile_merge(g, p[1], 1), -EINVAL);
        ASSERT_TRUE(!x);

        /* merge scales */
        _cleanup_(profile_freep) Profile *acc = NULL;
        ASSERT_EQ(profile_new(NULL, &acc), 0);
        for (int i = 0; i < 4; i++)
                ASSERT_EQ(profile_add_sample_type(acc, profile_string(p[0], p[0]->sample_types[i].type),
                                                  profile_string(p[0], p[0]->sample_types[i].unit)), 0);
        ASSERT_EQ(profile_merge(acc, p[0], 2), 0);
        ASSERT_EQ(profile_merge(acc, p[1], 1), 0);
        ASSERT_EQ(acc->n_samples, 3);
        ASSERT_EQ(acc->n_locations, 3);
        int64_t total = 0;
        for (size_t i = 0; i < acc->n_samples; i++)
                total += acc->samples[i].values[0];
        ASSERT_EQ(total, 3 * (10 + 1 + 7) + 2);
        profile_free(p[0]);
        profile_free(p[1]);
}

/* ---- Go's captures ---- */

static const char *const go_captures[] = {
        "go-g0.pb", "go-gdelta.pb", "go-heap.pb", "go-allocs.pb", "go-cpu.pb",
        "go-block.pb", "go-mutex.pb", "go-tc.pb", "go-hdelta.pb", "go-bdelta.pb",
};

static Profile *load_capture(const char *name) {
        char path[PATH_MAX];
        _cleanup_buf_ Buf b = {};

        snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, name);
        read_file(path, &b);
        ASSERT_GT(b.len, 2);
        ASSERT_EQ((uint8_t) b.data[0], 0x1f);
        Profile *p = NULL;
        int r = profile_decode(b.data, b.len, NULL, &p);
        if (r < 0)
                TINY_FAIL("decoding %s: %s", name, strerror(-r));

        /* Our model of Go's profile is exactly what protobuf-c reads from Go's bytes,
         * up to the renumbering (Go's ids are already index + 1, its strings unique). */
        Perftools__Profiles__Profile *m = unpack(&b);
        assert_message_matches(p, m);
        perftools__profiles__profile__free_unpacked(m, NULL);
        return p;
}

static const char *type_of(const Profile *p, size_t i) {
        return profile_string(p, p->sample_types[i].type);
}

TEST(decode_go_captures) {
        for (size_t i = 0; i < ARRAY_SIZE(go_captures); i++) {
                _cleanup_(profile_freep) Profile *p = load_capture(go_captures[i]);
                ASSERT_GT(p->n_samples, 0);
                ASSERT_GE(p->n_mappings, 1);
                ASSERT_GT(p->time_nanos, 0);
                ASSERT_TRUE(p->mappings[0].has_functions);

                /* and ours encodes it back to the same thing */
                _cleanup_(profile_freep) Profile *q = roundtrip(p, 0);
                assert_profiles_equal(p, q);
        }

        _cleanup_(profile_freep) Profile *g = load_capture("go-g0.pb");
        ASSERT_EQ(g->n_sample_types, 1);
        ASSERT_STREQ(type_of(g, 0), "goroutine");
        ASSERT_STREQ(profile_string(g, g->period_type.type), "goroutine");
        ASSERT_EQ(g->period, 1);
        ASSERT_EQ(g->n_samples, 9);
        ASSERT_EQ(g->samples[0].values[0], 3);
        ASSERT_EQ(g->samples[0].n_labels, 2);
        ASSERT_STREQ(label_str(g, &g->samples[0], "id"), "7");
        ASSERT_STREQ(label_str(g, &g->samples[0], "worker"), "spin");
        /* location 19 of Go's: waitRead inlined into (*FD).Read, innermost first */
        const ProfileLocation *l = &g->locations[18];
        ASSERT_EQ(l->address, 0x4b1079);
        ASSERT_EQ(l->n_lines, 2);
        ASSERT_STREQ(fn_name(g, l->lines[0].function_id), "internal/poll.(*pollDesc).waitRead");
        ASSERT_STREQ(fn_name(g, l->lines[1].function_id), "internal/poll.(*FD).Read");

        _cleanup_(profile_freep) Profile *h = load_capture("go-heap.pb");
        ASSERT_EQ(h->n_sample_types, 4);
        ASSERT_STREQ(type_of(h, 0), "alloc_objects");
        ASSERT_STREQ(type_of(h, 3), "inuse_space");
        ASSERT_EQ(h->period, 524288);
        bool big = false;
        for (size_t i = 0; i < h->n_samples; i++)
                for (size_t k = 0; k < h->samples[i].n_labels; k++)
                        big = big || (strcmp(profile_string(h, h->samples[i].labels[k].key), "bytes") == 0 &&
                                      h->samples[i].labels[k].num == 663552);
        ASSERT_TRUE(big);

        _cleanup_(profile_freep) Profile *a = load_capture("go-allocs.pb");
        ASSERT_STREQ(profile_string(a, a->default_sample_type), "alloc_space");

        _cleanup_(profile_freep) Profile *c = load_capture("go-cpu.pb");
        ASSERT_EQ(c->n_sample_types, 2);
        ASSERT_STREQ(type_of(c, 1), "cpu");
        ASSERT_STREQ(profile_string(c, c->sample_types[1].unit), "nanoseconds");
        ASSERT_EQ(c->period, 10000000);
        ASSERT_GT(c->duration_nanos, 0);

        _cleanup_(profile_freep) Profile *gd = load_capture("go-gdelta.pb");
        ASSERT_GT(gd->duration_nanos, 0);
        bool negative = false;
        for (size_t i = 0; i < gd->n_samples; i++)
                negative = negative || gd->samples[i].values[0] < 0;
        ASSERT_TRUE(negative);

        /* Deltas of Go's own profiles: p − p is empty; g0 → gdelta has the types to agree */
        _cleanup_(profile_freep) Profile *z = NULL;
        ASSERT_EQ(profile_delta(h, h, &z), 0);
        ASSERT_EQ(z->n_samples, 0);
        _cleanup_(profile_freep) Profile *d = NULL;
        ASSERT_EQ(profile_delta(g, gd, &d), 0);
        ASSERT_EQ(d->duration_nanos, gd->time_nanos - g->time_nanos);
        ASSERT_EQ(d->time_nanos, gd->time_nanos);
        Profile *x = NULL;
        ASSERT_EQ(profile_delta(g, h, &x), -EINVAL);
}

/* ---- hostile input ---- */

/* A hand-made message through protobuf-c, then a poke at one field. */
typedef enum Poke {
        POKE_NONE,
        POKE_STRING0,
        POKE_NO_STRINGS,
        POKE_STRING_INDEX,
        POKE_NEGATIVE_STRING_INDEX,
        POKE_LABEL_INDEX,
        POKE_MAPPING_ID_ZERO,
        POKE_DUP_LOCATION_ID,
        POKE_DUP_FUNCTION_ID,
        POKE_UNKNOWN_LOCATION,
        POKE_UNKNOWN_FUNCTION,
        POKE_UNKNOWN_MAPPING,
        POKE_VALUE_COUNT,
        POKE_NO_SAMPLE_TYPES,
        POKE_SAMPLE_LOCATION_ZERO,
        POKE_COMMENT_INDEX,
        POKE_FUNCTION_ID_ZERO_IN_LINE, /* accepted: pprof reads it as no function */
} Poke;

static int decode_poked(Poke poke) {
        char *strings[] = { poke == POKE_STRING0 ? "x" : "", "goroutine", "count", "f", "k", "v" };
        Perftools__Profiles__ValueType st = PERFTOOLS__PROFILES__VALUE_TYPE__INIT, *stp = &st;
        Perftools__Profiles__Function fn = PERFTOOLS__PROFILES__FUNCTION__INIT, *fnp[2] = { &fn };
        Perftools__Profiles__Function fn2 = PERFTOOLS__PROFILES__FUNCTION__INIT;
        Perftools__Profiles__Line ln = PERFTOOLS__PROFILES__LINE__INIT, *lnp = &ln;
        Perftools__Profiles__Location lo = PERFTOOLS__PROFILES__LOCATION__INIT, *lop[2] = { &lo };
        Perftools__Profiles__Location lo2 = PERFTOOLS__PROFILES__LOCATION__INIT;
        Perftools__Profiles__Mapping ma = PERFTOOLS__PROFILES__MAPPING__INIT, *map = &ma;
        Perftools__Profiles__Label la = PERFTOOLS__PROFILES__LABEL__INIT, *lap = &la;
        Perftools__Profiles__Sample sa = PERFTOOLS__PROFILES__SAMPLE__INIT, *sap = &sa;
        Perftools__Profiles__Profile m = PERFTOOLS__PROFILES__PROFILE__INIT;
        uint64_t locids[] = { 7 };
        int64_t values[] = { 4, 5 };
        int64_t comments[] = { 1 };

        m.n_string_table = poke == POKE_NO_STRINGS ? 0 : ARRAY_SIZE(strings);
        m.string_table = strings;
        st.type = 1, st.unit = 2;
        m.n_sample_type = poke == POKE_NO_SAMPLE_TYPES ? 0 : 1;
        m.sample_type = &stp;
        fn.id = 3, fn.name = poke == POKE_STRING_INDEX ? 6 : 3;
        fn.name = poke == POKE_NEGATIVE_STRING_INDEX ? -1 : fn.name;
        fn2.id = poke == POKE_DUP_FUNCTION_ID ? 3 : 4;
        fnp[1] = &fn2;
        m.n_function = 2;
        m.function = fnp;
        ln.function_id = poke == POKE_UNKNOWN_FUNCTION ? 5 : poke == POKE_FUNCTION_ID_ZERO_IN_LINE ? 0 : 3;
        ln.line = 12;
        ma.id = poke == POKE_MAPPING_ID_ZERO ? 0 : 9;
        ma.memory_start = 0x1000, ma.memory_limit = 0x2000, ma.filename = 3;
        m.n_mapping = 1;
        m.mapping = &map;
        lo.id = 7, lo.mapping_id = poke == POKE_UNKNOWN_MAPPING ? 8 : 9, lo.address = 0x1010;
        lo.n_line = 1, lo.line = &lnp;
        lo2.id = poke == POKE_DUP_LOCATION_ID ? 7 : 2, lo2.address = 0x1020;
        lop[1] = &lo2;
        m.n_location = 2;
        m.location = lop;
        locids[0] = poke == POKE_UNKNOWN_LOCATION ? 6 : poke == POKE_SAMPLE_LOCATION_ZERO ? 0 : 7;
        sa.n_location_id = 1, sa.location_id = locids;
        sa.n_value = poke == POKE_VALUE_COUNT ? 2 : 1, sa.value = values;
        la.key = 4, la.str = poke == POKE_LABEL_INDEX ? 99 : 5;
        sa.n_label = 1, sa.label = &lap;
        m.n_sample = 1;
        m.sample = &sap;
        comments[0] = poke == POKE_COMMENT_INDEX ? 6 : 1;
        m.n_comment = 1, m.comment = comments;
        m.time_nanos = 42;

        size_t len = protobuf_c_message_get_packed_size(&m.base);
        _cleanup_free_ uint8_t *data = malloc(len + 1);
        ASSERT_TRUE(data);
        ASSERT_EQ(protobuf_c_message_pack(&m.base, data), len);

        Profile *p = NULL;
        int r = profile_decode(data, len, NULL, &p);
        if (r == 0) {
                ASSERT_EQ(p->n_samples, 1);
                ASSERT_EQ(p->samples[0].values[0], 4);
                ASSERT_EQ(p->n_locations, 2);
                ASSERT_EQ(p->locations[0].mapping_id, 1);
                ASSERT_EQ(p->mappings[0].id, 1);
                ASSERT_EQ(p->n_comments, 1);
                ASSERT_EQ(p->time_nanos, 42);
                if (poke == POKE_NONE)
                        ASSERT_STREQ(fn_name(p, p->locations[0].lines[0].function_id), "f");
                else
                        ASSERT_EQ(p->locations[0].lines[0].function_id, 0);
                assert_encoding_matches(p, 0);
                profile_free(p);
        } else
                ASSERT_TRUE(!p);
        return r;
}

TEST(decode_rejects_invalid) {
        ASSERT_EQ(decode_poked(POKE_NONE), 0);
        ASSERT_EQ(decode_poked(POKE_FUNCTION_ID_ZERO_IN_LINE), 0);
        for (Poke k = POKE_STRING0; k < POKE_FUNCTION_ID_ZERO_IN_LINE; k++) {
                int r = decode_poked(k);
                if (r != -EBADMSG)
                        TINY_FAIL("poke %d: %d, expected -EBADMSG", (int) k, r);
        }

        Profile *p = NULL;
        ASSERT_EQ(profile_decode("", 0, NULL, &p), -EBADMSG);
        ASSERT_EQ(profile_decode("\x1f\x8b", 2, NULL, &p), -EBADMSG);
        ASSERT_EQ(profile_decode("garbage!", 8, NULL, &p), -EBADMSG);
        ASSERT_TRUE(!p);

        /* trailing garbage after a gzip member */
        make_symlocs();
        _cleanup_(profile_freep) Profile *d = demo_profile(1, 1, false);
        _cleanup_buf_ Buf b = {};
        ASSERT_EQ(profile_encode(d, 0, &b), 0);
        buf_puts(&b, "xyz");
        ASSERT_EQ(profile_decode(b.data, b.len, NULL, &p), -EBADMSG);
        free_symlocs();
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* Either an error or a profile that encodes and decodes again. */
static void decode_hostile(const void *data, size_t len) {
        Profile *p = NULL;
        int r = profile_decode(data, len, NULL, &p);
        if (r < 0) {
                ASSERT_TRUE(r == -EBADMSG || r == -E2BIG);
                ASSERT_TRUE(!p);
                return;
        }
        _cleanup_(profile_freep) Profile *q = roundtrip(p, 0);
        assert_profiles_equal(p, q);
        profile_free(p);
}

TEST(corrupt_input_never_crashes) {
        make_symlocs();
        _cleanup_(profile_freep) Profile *p = demo_profile(1, 2, false);
        ASSERT_EQ(profile_add_comment(p, "a comment"), 0);
        _cleanup_buf_ Buf gz = {}, raw = {};
        ASSERT_EQ(profile_encode(p, 0, &gz), 0);
        ASSERT_EQ(profile_encode(p, PROFILE_ENCODE_UNCOMPRESSED, &raw), 0);

        /* every truncation */
        for (size_t n = 0; n < raw.len; n++)
                decode_hostile(raw.data, n);
        for (size_t n = 0; n < gz.len; n++) {
                Profile *x = NULL;
                /* a gzip stream cut anywhere misses its end (or its CRC) */
                ASSERT_EQ(profile_decode(gz.data, n, NULL, &x), -EBADMSG);
        }

        /* random byte flips, 1–4 per try, in both encodings */
        _cleanup_free_ char *copy = malloc(MAX(raw.len, gz.len));
        ASSERT_TRUE(copy);
        for (int t = 0; t < 20000; t++) {
                const Buf *src = t % 4 == 0 ? &gz : &raw;
                memcpy(copy, src->data, src->len);
                int flips = 1 + (int) (rng() % 4);
                for (int k = 0; k < flips; k++)
                        copy[rng() % src->len] = (char) rng();
                decode_hostile(copy, src->len);
        }

        /* Go's captures, flipped */
        for (size_t i = 0; i < ARRAY_SIZE(go_captures); i++) {
                char path[PATH_MAX];
                _cleanup_buf_ Buf b = {};
                snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, go_captures[i]);
                read_file(path, &b);
                Profile *g = NULL;
                ASSERT_EQ(profile_decode(b.data, b.len, NULL, &g), 0);
                _cleanup_buf_ Buf gr = {};
                ASSERT_EQ(profile_encode(g, PROFILE_ENCODE_UNCOMPRESSED, &gr), 0);
                profile_free(g);
                for (size_t n = 0; n < gr.len; n += 7)
                        decode_hostile(gr.data, n);
                for (int t = 0; t < 2000; t++) {
                        _cleanup_free_ char *c = malloc(gr.len);
                        memcpy(c, gr.data, gr.len);
                        c[rng() % gr.len] = (char) rng();
                        decode_hostile(c, gr.len);
                }
        }
        free_symlocs();
}

/* ---- go tool pprof as the judge ---- */

static char go_tmp[] = "/tmp/test-pprof.XXXXXX";

static bool have_go(void) {
        return system("command -v go >/dev/null 2>&1") == 0;
}

static void go_env(void) {
        char path[PATH_MAX];

        if (!mkdtemp(go_tmp))
                TINY_FAIL("mkdtemp: %s", strerror(errno));
        ASSERT_EQ(setenv("HOME", go_tmp, 1), 0);
        snprintf(path, sizeof path, "%s/gocache", go_tmp);
        ASSERT_EQ(setenv("GOCACHE", path, 1), 0);
        snprintf(path, sizeof path, "%s/gopath", go_tmp);
        ASSERT_EQ(setenv("GOPATH", path, 1), 0);
        ASSERT_EQ(setenv("PPROF_TMPDIR", go_tmp, 1), 0);
        ASSERT_EQ(setenv("GOFLAGS", "", 1), 0);
        ASSERT_EQ(setenv("GOTOOLCHAIN", "local", 1), 0);
        ASSERT_EQ(unsetenv("PPROF_BINARY_PATH"), 0);
}

static void go_cleanup(void) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", go_tmp);
        (void) system(cmd);
}

/* Runs `go tool pprof ARGS` and returns its stdout; the run must succeed. */
static void pprof_run(const char *args, Buf *out) {
        char cmd[PATH_MAX * 3];
        char chunk[4096];
        size_t n;

        snprintf(cmd, sizeof cmd, "go tool pprof %s 2>'%s/stderr'", args, go_tmp);
        FILE *f = popen(cmd, "re");
        ASSERT_TRUE(f);
        buf_reset(out);
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                buf_append(out, chunk, n);
        int status = pclose(f);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                _cleanup_buf_ Buf err = {};
                snprintf(cmd, sizeof cmd, "%s/stderr", go_tmp);
                read_file(cmd, &err);
                TINY_FAIL("go tool pprof %s: status %d\n%s", args, status, err.data ? err.data : "");
        }
        ASSERT_TRUE(out->data);
}

static void write_profile(const Profile *p, const char *name, char *ret_path, size_t size) {
        _cleanup_buf_ Buf b = {};
        ASSERT_EQ(profile_encode(p, 0, &b), 0);
        snprintf(ret_path, size, "%s/%s", go_tmp, name);
        write_file(ret_path, &b);
}

TEST(go_tool_pprof_accepts) {
        if (!have_go()) {
                fprintf(stderr, "go not installed: the go tool pprof checks are skipped\n");
                return;
        }
        go_env();
        make_symlocs();

        _cleanup_(profile_freep) Profile *p0 = demo_profile(INT64_C(1700000000000000000), 3, true);
        _cleanup_(profile_freep) Profile *p1 = demo_profile(INT64_C(1700000002000000000), 3, false);
        /* p0: a thread that is gone in p1 (−1 in a delta); p1: one more worker (+1) and
         * a truncated stack (+1); the rest cancels */
        StackFrame fg[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack gone = { fg, 1, STACK_END_COMPLETE };
        ProfileLabelSpec gone_l[] = { { .key = "thread_name", .str = "gone" } };
        ASSERT_EQ(profile_add_stack(p0, &gone, &one, gone_l, 1), 0);
        StackFrame f1[] = {
                sf(LIB_START + 0x1234, true, loc_read),
                sf(MAIN_START + 0x1001, false, loc_inline),
                sf(MAIN_START + 0x2001, false, loc_main),
        };
        Stack s1 = { f1, 3, STACK_END_COMPLETE };
        ProfileLabelSpec worker[] = { { .key = "thread_name", .str = "worker" } };
        ASSERT_EQ(profile_add_stack(p1, &s1, &one, worker, 1), 0);
        StackFrame ft[] = { sf(MAIN_START + 0x2001, false, loc_main) };
        Stack trunc = { ft, 1, STACK_END_COPY };
        ASSERT_EQ(profile_add_stack(p1, &trunc, &one, NULL, 0), 0);

        char path0[PATH_MAX], path1[PATH_MAX], args[PATH_MAX * 2 + 64];
        write_profile(p0, "p0.pb.gz", path0, sizeof path0);
        write_profile(p1, "p1.pb.gz", path1, sizeof path1);
        _cleanup_buf_ Buf out = {};

        snprintf(args, sizeof args, "-raw '%s'", path1);
        pprof_run(args, &out);
        ASSERT_CONTAINS(out.data, "PeriodType: goroutine count\nPeriod: 1\n");
        ASSERT_CONTAINS(out.data, "goroutine/count\n");
        /* the grouped worker sample: 3, with its label */
        ASSERT_CONTAINS(out.data, "          3: 1 2 3 \n                thread_name:[worker]\n");
        ASSERT_CONTAINS(out.data, "thread_id:[4250]");
        ASSERT_CONTAINS(out.data, "thread_name:[reader]");
        /* locations: the leaf in the library (M=2), the inline pair innermost first */
        ASSERT_CONTAINS(out.data, "     1: 0x7f0000001234 M=2 demo_read /src/lib.c:14 s=0\n");
        ASSERT_CONTAINS(out.data, "     2: 0x401000 M=1 gamma_inlined /src/main.c:15 s=0\n"
                                  "             beta /src/main.c:22 s=0(_Z4betav)\n");
        ASSERT_CONTAINS(out.data, "main /src/main.c:40 s=0\n");
        ASSERT_CONTAINS(out.data, ": 0x403000 M=1 \n");
        ASSERT_CONTAINS(out.data, ": 0x0 [truncated] :0 s=0\n");
        /* mappings: main first, build ids, symbolized */
        ASSERT_CONTAINS(out.data, "Mappings\n1: 0x400000/0x500000/0x0 /usr/bin/demo abcdef0123456789 [FN][FL][LN][IN]\n"
                                  "2: 0x7f0000000000/0x7f0000100000/0x1000 /usr/lib/libdemo.so.1 1234abcd [FN][FL][LN][IN]\n");

        snprintf(args, sizeof args, "-traces '%s'", path1);
        pprof_run(args, &out);
        ASSERT_CONTAINS(out.data, "File: demo\nBuild ID: abcdef0123456789\nType: goroutine\n");
        ASSERT_CONTAINS(out.data, "thread_name:  worker\n"
                                  "         3   demo_read\n"
                                  "             gamma_inlined (inline)\n"
                                  "             beta\n"
                                  "             main\n");
        ASSERT_CONTAINS(out.data, "thread_name:  reader\n");
        ASSERT_CONTAINS(out.data, "thread_id:  4250");
        ASSERT_CONTAINS(out.data, "         1   [demo]\n             main\n");      /* nothing known */
        ASSERT_CONTAINS(out.data, "         1   main\n             [truncated]\n");

        /* -base: p1 − p0 as pprof computes it, which our delta must agree with */
        snprintf(args, sizeof args, "-raw -base '%s' '%s'", path0, path1);
        pprof_run(args, &out);
        ASSERT_CONTAINS(out.data, "          1: 1 2 3 \n                thread_name:[worker]\n");
        ASSERT_CONTAINS(out.data, "         -1: 3 \n                thread_name:[gone]\n");
        _cleanup_(profile_freep) Profile *d = NULL;
        ASSERT_EQ(profile_delta(p0, p1, &d), 0);
        ASSERT_EQ(d->n_samples, 3);
        ASSERT_EQ(d->duration_nanos, 2000000000);
        char path_d[PATH_MAX];
        write_profile(d, "delta.pb.gz", path_d, sizeof path_d);
        _cleanup_buf_ Buf outd = {};
        snprintf(args, sizeof args, "-traces '%s'", path_d);
        pprof_run(args, &outd);
        ASSERT_CONTAINS(outd.data, "thread_name:  worker\n         1   demo_read\n");
        ASSERT_CONTAINS(outd.data, "Duration: 2s");
        ASSERT_CONTAINS(outd.data, "thread_name:  gone\n        -1   main\n");
        ASSERT_CONTAINS(outd.data, "         1   main\n             [truncated]\n");
        /* pprof's own -base gives the same traces */
        snprintf(args, sizeof args, "-traces -base '%s' '%s'", path0, path1);
        pprof_run(args, &out);
        ASSERT_CONTAINS(out.data, "thread_name:  worker\n         1   demo_read\n");
        ASSERT_CONTAINS(out.data, "thread_name:  gone\n        -1   main\n");
        ASSERT_CONTAINS(out.data, "         1   main\n             [truncated]\n");

        /* Go's capture re-encoded by us reads exactly like the original. */
        for (size_t i = 0; i < ARRAY_SIZE(go_captures); i++) {
                char orig[PATH_MAX], ours[PATH_MAX];
                _cleanup_buf_ Buf a = {}, b = {};
                _cleanup_(profile_freep) Profile *g = load_capture(go_captures[i]);

                snprintf(orig, sizeof orig, "%s/%s", TEST_DATA_DIR, go_captures[i]);
                write_profile(g, "ours.pb.gz", ours, sizeof ours);
                snprintf(args, sizeof args, "-raw '%s'", orig);
                pprof_run(args, &a);
                snprintf(args, sizeof args, "-raw '%s'", ours);
                pprof_run(args, &b);
                if (strcmp(a.data, b.data) != 0)
                        TINY_FAIL("%s: -raw differs:\n%s\n---- ours:\n%s", go_captures[i], a.data, b.data);
        }

        go_cleanup();
        free_symlocs();
}

int main(int argc, char **argv) { return tiny_main(argc, argv); }
