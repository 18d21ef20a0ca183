/* tests/test-perf.c -- CPU sampling with perf events and kernel symbols: the ring-buffer
 * record parser on synthetic records (wrap-around, truncated and oversized lengths,
 * random corruption), kallsyms on synthetic and real tables, and live profiles of the cpu
 * test program unwound with the real symbolizer: hot leaf, a 2:1 split of two call paths,
 * complete stacks, kernel frames of a syscall-heavy thread, a thread spawned mid-profile,
 * no loss at 1000 Hz, and nothing left behind. Exits 77 when perf events are refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hashmap.h"
#include "kallsyms.h"
#include "macro.h"
#include "perf.h"
#include "procfs.h"
#include "snapshot.h"
#include "symbolizer.h"
#include "tiny-test.h"
#include "tracefs.h"

DEFINE_POINTER_CLEANUP(Symbolizer, symbolizer_free);
DEFINE_POINTER_CLEANUP(AddressSpace, address_space_free);
DEFINE_POINTER_CLEANUP(Kallsyms, kallsyms_free);
DEFINE_POINTER_CLEANUP(PerfSampler, perf_sampler_free);

/* ---- synthetic records ---- */

#define SYN_PAGE 4096u

typedef struct SynRing {
        uint8_t *mem;
        struct perf_event_mmap_page *meta;
        uint8_t *data;
        uint64_t size;
} SynRing;

static void syn_ring_init(SynRing *r, uint64_t data_size) {
        r->mem = aligned_alloc(SYN_PAGE, SYN_PAGE + data_size);
        ASSERT_TRUE(r->mem != NULL);
        memset(r->mem, 0, SYN_PAGE + data_size);
        r->meta = (struct perf_event_mmap_page *) (void *) r->mem;
        r->meta->data_offset = SYN_PAGE;
        r->meta->data_size = data_size;
        r->data = r->mem + SYN_PAGE;
        r->size = data_size;
}

/* Writes LEN bytes at ring position POS (wrapping) and returns POS + LEN. */
static uint64_t syn_write(SynRing *r, uint64_t pos, const void *src, size_t len) {
        for (size_t i = 0; i < len; i++)
                r->data[(pos + i) & (r->size - 1)] = ((const uint8_t *) src)[i];
        return pos + len;
}

typedef struct SynSample {
        uint64_t words[PERF_RECORD_MAX / 8];     /* any header size stays inside */
        size_t n;
} SynSample;

static void put(SynSample *s, uint64_t v) {
        ASSERT_LT(s->n, ARRAY_SIZE(s->words));
        s->words[s->n++] = v;
}

/* A PERF_RECORD_SAMPLE as the kernel writes it for this sampler: two kernel frames, two
 * user frames, 20 registers, STACK bytes of stack of which DYN are valid. Stack byte i is
 * (uint8_t) (i * 7 + SEED). */
static void build_sample(SynSample *s, pid_t pid, pid_t tid, uint64_t stack, uint64_t dyn, uint8_t seed) {
        s->n = 0;
        put(s, 0);                                      /* header, filled below */
        put(s, 0x1234);                                 /* IDENTIFIER */
        put(s, (uint64_t) (uint32_t) pid | (uint64_t) (uint32_t) tid << 32);
        put(s, 987654321);                              /* TIME */
        put(s, 6);                                      /* CALLCHAIN nr */
        put(s, (uint64_t) PERF_CONTEXT_KERNEL);
        put(s, UINT64_C(0xffffffff81001234));
        put(s, UINT64_C(0xffffffff81005678));
        put(s, (uint64_t) PERF_CONTEXT_USER);
        put(s, 0x401000);
        put(s, 0x401100);
        put(s, PERF_SAMPLE_REGS_ABI_64);
        for (uint64_t i = 0; i < PERF_SAMPLER_N_REGS; i++)
                put(s, 0x1000 + i);                     /* AX=0x1000 … R15=0x1013 */
        put(s, stack);
        uint8_t bytes[8];
        for (uint64_t i = 0; i < stack; i += 8) {
                for (int j = 0; j < 8; j++)
                        bytes[j] = (uint8_t) ((i + (uint64_t) j) * 7 + seed);
                uint64_t w;
                memcpy(&w, bytes, 8);
                put(s, w);
        }
        if (stack > 0)
                put(s, dyn);
        struct perf_event_header h = {
                .type = PERF_RECORD_SAMPLE,
                .misc = PERF_RECORD_MISC_KERNEL,
                .size = (uint16_t) (s->n * 8),
        };
        memcpy(&s->words[0], &h, sizeof h);
}

static void set_size(SynSample *s, size_t bytes) {
        struct perf_event_header h;
        memcpy(&h, &s->words[0], sizeof h);
        h.size = (uint16_t) bytes;
        memcpy(&s->words[0], &h, sizeof h);
}

/* Index of the word holding the callchain nr, the regs abi and the stack size. */
#define W_NR 4
#define W_ABI 11
#define W_STACK_SIZE (W_ABI + 1 + PERF_SAMPLER_N_REGS)

static void assert_sample_ok(const PerfSample *p, uint64_t dyn, uint8_t seed) {
        ASSERT_EQ(p->event_id, 0x1234);
        ASSERT_EQ(p->pid, 100);
        ASSERT_EQ(p->tid, 101);
        ASSERT_EQ(p->time_ns, 987654321);
        ASSERT_EQ(p->n_kernel_frames, 2);
        ASSERT_TRUE(p->kernel_frames[0] == UINT64_C(0xffffffff81001234));
        ASSERT_TRUE(p->kernel_frames[1] == UINT64_C(0xffffffff81005678));
        ASSERT_EQ(p->n_user_callchain, 2);
        ASSERT_EQ(p->user_callchain[0], 0x401000);
        ASSERT_EQ(p->user_callchain[1], 0x401100);
        ASSERT_TRUE(p->has_regs);
        ASSERT_TRUE(p->in_kernel);
        ASSERT_EQ(p->regs.rax, 0x1000);
        ASSERT_EQ(p->regs.rsp, 0x1007);
        ASSERT_EQ(p->regs.rip, 0x1008);
        ASSERT_EQ(p->regs.eflags, 0x1009);
        ASSERT_EQ(p->regs.ss, 0x100b);
        ASSERT_EQ(p->regs.r8, 0x100c);
        ASSERT_EQ(p->regs.r15, 0x1013);
        ASSERT_EQ(p->stack_start, 0x1007);
        ASSERT_EQ(p->stack_len, dyn);
        for (uint64_t i = 0; i < dyn; i++)
                if (p->stack[i] != (uint8_t) (i * 7 + seed))
                        TINY_FAIL("stack byte %" PRIu64 " differs", i);

        ThreadCapture t;
        ASSERT_EQ(perf_sample_as_capture(p, &t), 0);
        ASSERT_EQ(t.tid, 101);
        ASSERT_EQ(t.error, 0);
        ASSERT_EQ(t.regs.rip, 0x1008);
        ASSERT_EQ(t.stack_start, 0x1007);
        ASSERT_TRUE(t.stack == p->stack);       /* no copy */
        ASSERT_EQ(t.stack_len, dyn);
}

TEST(parses_synthetic_sample) {
        static SynSample s;
        PerfSample p;

        build_sample(&s, 100, 101, 256, 200, 3);
        ASSERT_EQ(perf_sample_parse((const struct perf_event_header *) (void *) s.words, &p), 0);
        assert_sample_ok(&p, 200, 3);
        ASSERT_FALSE(p.stack_truncated);

        /* dyn_size == size: the copy may end before the stack does. */
        build_sample(&s, 100, 101, 256, 256, 3);
        ASSERT_EQ(perf_sample_parse((const struct perf_event_header *) (void *) s.words, &p), 0);
        ASSERT_TRUE(p.stack_truncated);

        /* No user registers (ABI_NONE): no regs, no stack, not a capture. */
        s.n = 0;
        put(&s, 0);
        put(&s, 1);
        put(&s, 100 | (uint64_t) 101 << 32);
        put(&s, 5);
        put(&s, 0);                                     /* empty call chain */
        put(&s, PERF_SAMPLE_REGS_ABI_NONE);
        put(&s, 0);                                     /* stack size 0, no dyn_size */
        set_size(&s, s.n * 8);
        struct perf_event_header h;
        memcpy(&h, &s.words[0], sizeof h);
        h.type = PERF_RECORD_SAMPLE;
        memcpy(&s.words[0], &h, sizeof h);
        ASSERT_EQ(perf_sample_parse((const struct perf_event_header *) (void *) s.words, &p), 0);
        ASSERT_FALSE(p.has_regs);
        ASSERT_EQ(p.stack_len, 0);
        ASSERT_EQ(p.n_kernel_frames, 0);
        ThreadCapture t = { .tid = -7 };
        ASSERT_EQ(perf_sample_as_capture(&p, &t), -ENODATA);
        ASSERT_EQ(t.tid, -7);
}

TEST(parses_tracepoint_sample_and_switch_record) {
        /* IDENTIFIER, TID, TIME, RAW (u32 size + 12 bytes, padded to 16), REGS_USER (ABI_NONE),
         * STACK_USER (size 0). */
        uint64_t w[16] = {};
        size_t n = 1;
        w[n++] = 0x77;
        w[n++] = 100 | (uint64_t) 101 << 32;
        w[n++] = 555;
        uint8_t raw[16] = { 12, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xfe, 0xff, 0xff, 0xff };
        memcpy(&w[n], raw, sizeof raw);
        n += 2;
        w[n++] = PERF_SAMPLE_REGS_ABI_NONE;
        w[n++] = 0;
        struct perf_event_header h = { .type = PERF_RECORD_SAMPLE, .size = (uint16_t) (n * 8) };
        memcpy(&w[0], &h, sizeof h);
        uint64_t type = (PERF_SAMPLER_SAMPLE_TYPE & ~(uint64_t) PERF_SAMPLE_CALLCHAIN) | PERF_SAMPLE_RAW;
        PerfSample p;
        ASSERT_EQ(perf_sample_parse_type((const struct perf_event_header *) (void *) w, type, &p), 0);
        ASSERT_EQ(p.kind, PERF_EVENT_SAMPLE);
        ASSERT_EQ(p.tid, 101);
        ASSERT_EQ(p.time_ns, 555);
        ASSERT_EQ(p.raw_size, 12);
        ASSERT_EQ(p.raw[0], 1);
        ASSERT_FALSE(p.has_regs);

        TracepointField f = { .name = "x", .offset = 8, .size = 4, .is_signed = true };
        uint64_t v;
        ASSERT_TRUE(tracepoint_field_value(&f, p.raw, p.raw_size, &v));
        ASSERT_EQ((int64_t) v, -2);                     /* sign-extended */
        f.offset = 10;
        ASSERT_FALSE(tracepoint_field_value(&f, p.raw, p.raw_size, &v));       /* past the data */

        /* A raw size running past the record. */
        uint8_t bad[16] = { 0xf0, 0, 0, 0 };
        memcpy(&w[4], bad, sizeof bad);
        ASSERT_EQ(perf_sample_parse_type((const struct perf_event_header *) (void *) w, type, &p), -EBADMSG);
        /* A sample type the parser does not know. */
        ASSERT_EQ(perf_sample_parse_type((const struct perf_event_header *) (void *) w, type | PERF_SAMPLE_ADDR, &p),
                  -EINVAL);
}

TEST(parses_tracepoint_format) {
        static const char text[] =
                "name: sched_switch\nID: 372\nformat:\n"
                "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
                "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
                "\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n"
                "\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\n"
                "print fmt: \"prev_comm=%s\", REC->prev_comm\n";
        Tracepoint tp = {};
        ASSERT_EQ(tracepoint_parse_format(text, &tp), 0);
        ASSERT_EQ(tp.n_fields, 5);
        const TracepointField *f = tracepoint_field(&tp, "prev_state");
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(f->offset, 32);
        ASSERT_EQ(f->size, 8);
        ASSERT_TRUE(tracepoint_field(&tp, "prev_comm") != NULL);
        ASSERT_EQ(tracepoint_field(&tp, "prev_comm")->size, 16);
        ASSERT_TRUE(tracepoint_field(&tp, "next_pid") == NULL);
        ASSERT_EQ(tracepoint_parse_format("field:int;\toffset:x;", &tp), -EBADMSG);
        ASSERT_EQ(tracepoint_parse_format("no fields here", &tp), -EBADMSG);

        /* Where tracefs is not: a clear error that says how to mount it. */
        setenv("CPROFD_TRACEFS", "/nonexistent", 1);
        ASSERT_EQ(tracepoint_read("sched", "sched_switch", &tp), -ENOENT);
        char why[512];
        tracepoint_explain_error(-ENOENT, "sched", "sched_switch", why, sizeof why);
        ASSERT_TRUE(strstr(why, "mount -t tracefs") != NULL);
        unsetenv("CPROFD_TRACEFS");

        /* This machine's own sched_switch. */
        ASSERT_EQ(tracepoint_read("sched", "sched_switch", &tp), 0);
        ASSERT_TRUE(tp.id > 0);
        ASSERT_TRUE(tracepoint_field(&tp, "prev_state") != NULL);
        ASSERT_EQ(tracepoint_read("sched", "no_such_event", &tp), -ENOENT);
}

TEST(rejects_truncated_and_oversized_lengths) {
        static SynSample s, bad;
        PerfSample p;
        const struct perf_event_header *rec = (const struct perf_event_header *) (void *) bad.words;

        build_sample(&s, 100, 101, 128, 128, 1);
        /* Every proper prefix misses a mandatory field. */
        for (size_t len = 8; len < s.n * 8; len += 8) {
                bad = s;
                set_size(&bad, len);
                if (perf_sample_parse(rec, &p) != -EBADMSG)
                        TINY_FAIL("a %zu-byte prefix of a %zu-byte sample parsed", len, s.n * 8);
        }
        /* Trailing bytes beyond the last field are tolerated. */
        bad = s;
        bad.words[bad.n++] = 0;
        set_size(&bad, bad.n * 8);
        ASSERT_EQ(perf_sample_parse(rec, &p), 0);

        static const uint64_t nrs[] = { 7, 1000, UINT64_C(1) << 61, UINT64_MAX };
        for (size_t i = 0; i < ARRAY_SIZE(nrs); i++) {
                bad = s;
                bad.words[W_NR] = nrs[i];
                ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        }
        static const uint64_t sizes[] = { 136, 4096, UINT64_C(1) << 63, UINT64_MAX };
        for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
                bad = s;
                bad.words[W_STACK_SIZE] = sizes[i];
                ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        }
        bad = s;
        bad.words[bad.n - 1] = 129;                     /* dyn_size > size */
        ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        bad = s;
        bad.words[W_ABI] = 7;                           /* no such ABI */
        ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        bad = s;
        set_size(&bad, 4);                              /* smaller than a header */
        ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        /* Not a sample, and misaligned. */
        bad = s;
        ((struct perf_event_header *) (void *) bad.words)->type = PERF_RECORD_LOST;
        ASSERT_EQ(perf_sample_parse(rec, &p), -EBADMSG);
        ASSERT_EQ(perf_sample_parse((const struct perf_event_header *) (const void *) ((const uint8_t *) s.words + 4), &p),
                  -EBADMSG);
}

TEST(random_corruption_never_escapes_the_record) {
        static SynSample s, bad;
        PerfSample p;
        const struct perf_event_header *rec = (const struct perf_event_header *) (void *) bad.words;
        uint64_t seed = 0x9e3779b97f4a7c15, ok = 0;

        build_sample(&s, 100, 101, 512, 300, 9);
        for (int round = 0; round < 20000; round++) {
                bad = s;
                int flips = 1 + (int) (seed % 4);
                for (int i = 0; i < flips; i++) {
                        seed = seed * 6364136223846793005u + 1442695040888963407u;
                        size_t byte = (size_t) (seed >> 33) % (s.n * 8);
                        ((uint8_t *) bad.words)[byte] ^= (uint8_t) (1u << ((seed >> 20) % 8));
                }
                if (perf_sample_parse(rec, &p) < 0)
                        continue;
                ok++;
                const uint8_t *lo = (const uint8_t *) bad.words, *hi = lo + rec->size;
                ASSERT_TRUE(rec->size <= sizeof bad.words);
                if (p.n_kernel_frames) {
                        ASSERT_TRUE((const uint8_t *) p.kernel_frames >= lo);
                        ASSERT_TRUE((const uint8_t *) (p.kernel_frames + p.n_kernel_frames) <= hi);
                }
                if (p.n_user_callchain) {
                        ASSERT_TRUE((const uint8_t *) p.user_callchain >= lo);
                        ASSERT_TRUE((const uint8_t *) (p.user_callchain + p.n_user_callchain) <= hi);
                }
                if (p.stack_len) {
                        ASSERT_TRUE(p.stack >= lo);
                        ASSERT_TRUE(p.stack + p.stack_len <= hi);
                }
        }
        fprintf(stderr, "%" PRIu64 " of 20000 corrupted samples still parsed, all in bounds\n", ok);
}

typedef struct Seen {
        int n;
        int samples;
        int lost_records;
        int stop_after;                 /* return -EINTR after this many records; 0 never */
        uint8_t seeds[8];
} Seen;

static int on_syn_record(const struct perf_event_header *h, void *userdata) {
        Seen *seen = userdata;
        PerfSample p;

        ASSERT_EQ((uintptr_t) h % 8, 0);
        seen->n++;
        if (h->type == PERF_RECORD_SAMPLE) {
                ASSERT_EQ(perf_sample_parse(h, &p), 0);
                ASSERT_LT(seen->samples, (int) ARRAY_SIZE(seen->seeds));
                assert_sample_ok(&p, 200, seen->seeds[seen->samples]);
                seen->samples++;
        } else if (h->type == PERF_RECORD_LOST)
                seen->lost_records++;
        if (seen->stop_after && seen->n == seen->stop_after)
                return -EINTR;
        return 0;
}

TEST(ring_reads_records_straddling_the_end) {
        static SynSample s;
        static uint8_t bounce[PERF_RECORD_MAX] __attribute__((aligned(8)));
        SynRing r;
        uint64_t malformed = 0;

        syn_ring_init(&r, 2 * SYN_PAGE);
        /* Start 40 bytes before the end: the first sample straddles it, its header too
         * does not (5 words fit), then a LOST record, then a second sample. */
        uint64_t start = 3 * r.size - 40, pos = start;
        r.meta->data_tail = start;
        build_sample(&s, 100, 101, 256, 200, 11);
        pos = syn_write(&r, pos, s.words, s.n * 8);
        struct { struct perf_event_header h; uint64_t id, lost; } lost = {
                .h = { .type = PERF_RECORD_LOST, .size = sizeof lost }, .id = 1, .lost = 5,
        };
        pos = syn_write(&r, pos, &lost, sizeof lost);
        build_sample(&s, 100, 101, 256, 200, 12);
        pos = syn_write(&r, pos, s.words, s.n * 8);
        r.meta->data_head = pos;

        Seen seen = { .seeds = { 11, 12 } };
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), 0);
        ASSERT_EQ(seen.n, 3);
        ASSERT_EQ(seen.samples, 2);
        ASSERT_EQ(seen.lost_records, 1);
        ASSERT_EQ(malformed, 0);
        ASSERT_EQ(r.meta->data_tail, pos);

        /* Nothing new: nothing read. */
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), 0);
        ASSERT_EQ(seen.n, 3);

        /* A header straddling the end (4 bytes before it), and a callback that stops. */
        start = pos + (r.size - (pos & (r.size - 1))) - 8;
        r.meta->data_tail = start;
        build_sample(&s, 100, 101, 256, 200, 13);
        pos = syn_write(&r, start, s.words, s.n * 8);
        pos = syn_write(&r, pos, &lost, sizeof lost);
        r.meta->data_head = pos;
        seen = (Seen) { .seeds = { 13 }, .stop_after = 1 };
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), -EINTR);
        ASSERT_EQ(seen.n, 1);
        ASSERT_EQ(r.meta->data_tail, start + s.n * 8);  /* the record it saw is consumed */
        seen.stop_after = 0;
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), 0);
        ASSERT_EQ(seen.lost_records, 1);
        ASSERT_EQ(r.meta->data_tail, pos);
        free(r.mem);
}

TEST(ring_rejects_impossible_headers) {
        static uint8_t bounce[PERF_RECORD_MAX] __attribute__((aligned(8)));
        SynRing r;
        Seen seen = {};
        uint64_t malformed = 0;
        struct perf_event_header h;

        syn_ring_init(&r, 2 * SYN_PAGE);
        static const uint16_t sizes[] = { 0, 4, 12, 64 };       /* 64: past data_head */
        for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
                h = (struct perf_event_header) { .type = PERF_RECORD_SAMPLE, .size = sizes[i] };
                uint64_t pos = syn_write(&r, r.meta->data_tail, &h, sizeof h);
                r.meta->data_head = pos + 8;
                ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), 0);
                ASSERT_EQ(malformed, i + 1);
                ASSERT_EQ(r.meta->data_tail, r.meta->data_head);       /* skipped to head */
        }
        ASSERT_EQ(seen.n, 0);

        /* A head more than a buffer ahead of the tail. */
        r.meta->data_head = r.meta->data_tail + r.size + 8;
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), 0);
        ASSERT_EQ(malformed, ARRAY_SIZE(sizes) + 1);
        ASSERT_EQ(r.meta->data_tail, r.meta->data_head);

        /* A bad layout is refused before anything is read. */
        r.meta->data_size = 3 * SYN_PAGE;
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), -EINVAL);
        r.meta->data_size = 2 * SYN_PAGE;
        r.meta->data_offset = 8;
        ASSERT_EQ(perf_ring_read(r.meta, bounce, on_syn_record, &seen, &malformed), -EINVAL);
        r.meta->data_offset = SYN_PAGE;
        ASSERT_EQ(perf_ring_read(r.meta, bounce + 1, on_syn_record, &seen, &malformed), -EINVAL);
        free(r.mem);
}

/* ---- kallsyms ---- */

static char *write_temp(const char *text) {
        static char path[64];
        snprintf(path, sizeof path, "/tmp/cprofd-test-kallsyms-XXXXXX");
        int fd = mkstemp(path);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        return path;
}

TEST(kallsyms_synthetic) {
        _cleanup_(kallsyms_freep) Kallsyms *k = NULL;
        char *path = write_temp(
                "ffffffff81000000 T _text\n"
                "ffffffff81000000 T srso_alias\n"
                "ffffffff81000000 t __local_alias\n"
                "ffffffff81000100 T do_work\n"
                "ffffffff81000200 D some_data\n"
                "ffffffff81000300 t helper\n"
                "ffffffff81000300 W helper_weak\n"
                "this line is garbage\n"
                "ffffffff81000400 T _etext\n"
                "ffffffffc0000000 t mod_fn\t[ext4]\n"
                "ffffffffc0000080 t mod_fn2\t[ext4]\n");
        ASSERT_EQ(kallsyms_load(path, &k), 0);
        unlink(path);
        ASSERT_FALSE(kallsyms_hidden(k));
        ASSERT_EQ(kallsyms_count(k), 6);

        const SymLoc *l = kallsyms_resolve(k, UINT64_C(0xffffffff81000010));
        ASSERT_STREQ(l->module, KALLSYMS_MODULE_KERNEL);
        ASSERT_EQ(l->n_frames, 1);
        ASSERT_STREQ(l->frames[0].function, "srso_alias");     /* global, no underscore */
        ASSERT_TRUE(l->frames[0].entry == UINT64_C(0xffffffff81000000));
        ASSERT_TRUE(l->module_offset == UINT64_C(0xffffffff81000010));
        ASSERT_TRUE(l->frames[0].file == NULL);
        ASSERT_TRUE(kallsyms_resolve(k, UINT64_C(0xffffffff81000010)) == l);    /* cached */

        ASSERT_STREQ(kallsyms_resolve(k, UINT64_C(0xffffffff81000250))->frames[0].function, "do_work");
        ASSERT_STREQ(kallsyms_resolve(k, UINT64_C(0xffffffff81000310))->frames[0].function, "helper_weak");
        l = kallsyms_resolve(k, UINT64_C(0xffffffffc0000090));
        ASSERT_STREQ(l->module, "[ext4]");
        ASSERT_STREQ(l->frames[0].function, "mod_fn2");
        /* Before the first symbol, and far past a module's last one: no frames. */
        ASSERT_EQ(kallsyms_resolve(k, 0x1000)->n_frames, 0);
        ASSERT_EQ(kallsyms_resolve(k, UINT64_C(0xffffffffc0000080) + KALLSYMS_LAST_SYMBOL_SIZE)->n_frames, 0);
        ASSERT_STREQ(kallsyms_resolve(k, 0x1000)->module, KALLSYMS_MODULE_KERNEL);

        const char *name;
        uint64_t start, end;
        ASSERT_EQ(kallsyms_module_range(k, UINT64_C(0xffffffffc0000004), &name, &start, &end), 0);
        ASSERT_STREQ(name, "[ext4]");
        ASSERT_TRUE(start == UINT64_C(0xffffffffc0000000));
        ASSERT_TRUE(end == UINT64_C(0xffffffffc0000080) + KALLSYMS_LAST_SYMBOL_SIZE);
        ASSERT_EQ(kallsyms_module_range(k, 0x1000, &name, &start, &end), -ENOENT);
}

TEST(kallsyms_hidden_by_kptr_restrict) {
        _cleanup_(kallsyms_freep) Kallsyms *k = NULL;
        char *path = write_temp(
                "0000000000000000 T _text\n"
                "0000000000000000 T do_work\n"
                "0000000000000000 t helper\t[ext4]\n");
        ASSERT_EQ(kallsyms_load(path, &k), 0);
        unlink(path);
        ASSERT_TRUE(kallsyms_hidden(k));
        ASSERT_EQ(kallsyms_count(k), 0);
        const SymLoc *l = kallsyms_resolve(k, UINT64_C(0xffffffff81000010));
        ASSERT_EQ(l->n_frames, 0);
        ASSERT_STREQ(l->module, KALLSYMS_MODULE_KERNEL);
        ASSERT_TRUE(l->module_offset == UINT64_C(0xffffffff81000010));
        Kallsyms *none = NULL;
        ASSERT_EQ(kallsyms_load("/nonexistent/kallsyms", &none), -ENOENT);
        ASSERT_TRUE(none == NULL);
}

TEST(kallsyms_of_this_kernel) {
        _cleanup_(kallsyms_freep) Kallsyms *k = NULL;
        uint64_t t0 = now_monotonic_ns();
        int r = kallsyms_load(NULL, &k);
        if (r < 0)
                TINY_SKIP("cannot read /proc/kallsyms: %s", strerror(-r));
        uint64_t dt = now_monotonic_ns() - t0;
        fprintf(stderr, "/proc/kallsyms: %zu text symbols in %.1f ms%s\n", kallsyms_count(k),
                dt / 1e6, kallsyms_hidden(k) ? " (hidden by kptr_restrict)" : "");
        if (kallsyms_hidden(k))
                return;
        ASSERT_GT(kallsyms_count(k), 1000);

        /* Find a well-known function the slow way and resolve inside it. */
        FILE *f = fopen("/proc/kallsyms", "re");
        ASSERT_TRUE(f != NULL);
        char line[1024];
        uint64_t addr = 0;
        while (fgets(line, sizeof line, f)) {
                char name[512], type;
                unsigned long long a;
                if (sscanf(line, "%llx %c %511s", &a, &type, name) == 3 &&
                    strcmp(name, "do_syscall_64") == 0) {
                        addr = a;
                        break;
                }
        }
        fclose(f);
        ASSERT_NE(addr, 0);
        const SymLoc *l = kallsyms_resolve(k, addr + 1);
        ASSERT_EQ(l->n_frames, 1);
        ASSERT_STREQ(l->frames[0].function, "do_syscall_64");
        ASSERT_STREQ(l->module, KALLSYMS_MODULE_KERNEL);
}

/* ---- options and errors ---- */

TEST(rejects_bad_options) {
        PerfSampler *s = NULL;
        PerfSamplerOptions o = { .frequency_hz = PERF_FREQUENCY_MAX + 1 };
        ASSERT_EQ(perf_sampler_new(getpid(), &o, &s), -EINVAL);
        o = (PerfSamplerOptions) { .stack_bytes = 12 };
        ASSERT_EQ(perf_sampler_new(getpid(), &o, &s), -EINVAL);
        o = (PerfSamplerOptions) { .stack_bytes = 64 * 1024 };
        ASSERT_EQ(perf_sampler_new(getpid(), &o, &s), -EINVAL);
        o = (PerfSamplerOptions) { .ring_bytes = (size_t) PERF_RING_BYTES_MAX + 1 };
        ASSERT_EQ(perf_sampler_new(getpid(), &o, &s), -EINVAL);
        ASSERT_EQ(perf_sampler_new(0, NULL, &s), -EINVAL);
        ASSERT_EQ(perf_sampler_new(4194304 + 1, NULL, &s), -ESRCH);
        ASSERT_TRUE(s == NULL);
}

TEST(explains_refusals) {
        char buf[2048];
        const char *t = perf_sampler_explain_error(-EACCES, buf, sizeof buf);
        fprintf(stderr, "%s\n", t);
        ASSERT_TRUE(t == buf);
        /* One line naming the likeliest cause for this process and its fix: as root
         * without seccomp that is the mlock limit; the seccomp case is checked end to end
         * by test_cpu.py under tests/tools/no-perf. */
        ASSERT_CONTAINS(t, "perf_event_open was refused");
        ASSERT_TRUE(strchr(t, '\n') == NULL);
        ASSERT_TRUE(strstr(t, "perf_event_paranoid") || strstr(t, "seccomp") || strstr(t, "perf_event_mlock_kb"));
        ASSERT_TRUE(strstr(t, "CAP_PERFMON") || strstr(t, "SystemCallFilter") || strstr(t, "LimitMEMLOCK"));
        char small[16];
        perf_sampler_explain_error(-EPERM, small, sizeof small);
        ASSERT_EQ(strlen(small), sizeof small - 1);
        ASSERT_CONTAINS(perf_sampler_explain_error(-EMFILE, buf, sizeof buf), "RLIMIT_NOFILE");
}

/* ---- live profiles of the cpu target ---- */

static pid_t target_pid;

static void kill_target(void) {
        if (target_pid > 0) {
                kill(target_pid, SIGKILL);
                waitpid(target_pid, NULL, 0);
                target_pid = 0;
        }
}

/* fork(), with a child that dies with us (PR_SET_PDEATHSIG): 0 in the child. */
static pid_t fork_dying_with_us(void) {
        pid_t parent = getpid();
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
        }
        return pid;
}

/* Starts the cpu test program with ARGS and waits for its "ready" line. It dies with us
 * (PR_SET_PDEATHSIG) and at exit, whichever way the test ends. */
static pid_t start_target(const char *const *args) {
        static bool registered;
        const char *argv[16] = { CPU_TARGET };
        size_t n = 1;
        int fds[2];

        for (; args && args[n - 1] && n < ARRAY_SIZE(argv) - 1; n++)
                argv[n] = args[n - 1];
        argv[n] = NULL;
        if (!registered) {
                atexit(kill_target);
                registered = true;
        }
        ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
        pid_t pid = fork_dying_with_us();
        if (pid == 0) {
                dup2(fds[1], STDOUT_FILENO);
                execv(CPU_TARGET, (char *const *) argv);
                _exit(127);
        }
        target_pid = pid;
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        char line[128] = "";
        if (!fgets(line, sizeof line, f) || strncmp(line, "ready", 5) != 0)
                TINY_FAIL("target did not get ready: '%s'", line);
        fclose(f);
        return pid;
}

static size_t count_perf_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        size_t n = 0;

        ASSERT_TRUE(d != NULL);
        while ((de = readdir(d))) {
                char path[300], link[256];
                snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
                ssize_t len = readlink(path, link, sizeof link - 1);
                if (len <= 0)
                        continue;
                link[len] = 0;
                if (strcmp(link, "anon_inode:[perf_event]") == 0)
                        n++;
        }
        closedir(d);
        return n;
}

static void assert_not_stopped(pid_t pid) {
        pid_t *tids;
        size_t n;
        ASSERT_EQ(procfs_list_threads(pid, &tids, &n), 0);
        for (size_t i = 0; i < n; i++) {
                ThreadInfo info;
                if (procfs_read_thread(pid, tids[i], &info) < 0)
                        continue;
                if (info.state == 'T' || info.state == 't')
                        TINY_FAIL("thread %d of the target is stopped (%c)", tids[i], info.state);
        }
        free(tids);
}

static PerfSampler *new_sampler_or_skip(pid_t pid, const PerfSamplerOptions *o) {
        PerfSampler *s = NULL;
        int r = perf_sampler_new(pid, o, &s);
        if (r == -EACCES || r == -EPERM || r == -ENOSYS || r == -ENOENT || r == -EOPNOTSUPP) {
                char why[2048];
                TINY_SKIP("perf events unavailable: %s", perf_sampler_explain_error(r, why, sizeof why));
        }
        if (r < 0)
                TINY_FAIL("perf_sampler_new: %s", strerror(-r));
        return s;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

typedef struct ThreadTally {
        pid_t tid;
        char name[THREAD_NAME_MAX];
        uint64_t samples, stacks, hot_leaf, path_a, path_b, kernel_stacks, kernel_named;
} ThreadTally;

typedef struct Tally {
        pid_t pid;
        PerfSampler *sampler;
        AddressSpace *as;
        Kallsyms *ks;
        ThreadTally threads[128];
        size_t n_threads;
        uint64_t samples, stacks, complete, truncated, odd_end, no_regs;
        uint64_t min_time_ns, max_time_ns;      /* of the samples */
        uint64_t unwind_ns, unwound, user_callchain_frames;
        uint64_t unwind_cpu_ns;                 /* thread CPU time: we share 2 CPUs with
                                                   the busy target, so wall time lies */
        uint64_t warm_unwind_cpu_ns, warm_unwound;
        bool warm;                              /* past the first drain */
        char kernel_example[512];
        bool verbose;
} Tally;

static ThreadTally *tally_thread(Tally *t, pid_t tid) {
        for (size_t i = 0; i < t->n_threads; i++)
                if (t->threads[i].tid == tid)
                        return &t->threads[i];
        ASSERT_LT(t->n_threads, ARRAY_SIZE(t->threads));
        ThreadTally *th = &t->threads[t->n_threads++];
        *th = (ThreadTally) { .tid = tid };
        const char *name = perf_sampler_thread_name(t->sampler, tid);
        if (name)
                snprintf(th->name, sizeof th->name, "%s", name);
        else {
                ThreadInfo info;
                if (procfs_read_thread(t->pid, tid, &info) == 0)
                        snprintf(th->name, sizeof th->name, "%s", info.name);
                else
                        snprintf(th->name, sizeof th->name, "?");
        }
        return th;
}

static const char *physical_function(const StackFrame *f) {
        const SymLoc *l = f->loc;
        return l && l->n_frames > 0 ? l->frames[l->n_frames - 1].function : NULL;
}

static bool streq_ptr(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

static bool is_thread_root(const char *fn) {
        return streq_ptr(fn, "clone3") || streq_ptr(fn, "clone") || streq_ptr(fn, "start_thread") ||
                streq_ptr(fn, "_start");
}

static void dump_stack(const char *title, const Stack *st) {
        fprintf(stderr, "%s: %zu frames, end %s\n", title, st->n, stack_end_to_string(st->end));
        for (size_t i = 0; i < st->n; i++) {
                const SymLoc *l = st->frames[i].loc;
                fprintf(stderr, "  #%zu %#" PRIx64 " %s (%s+%#" PRIx64 ")\n", i, st->frames[i].pc,
                        physical_function(&st->frames[i]) ?: "??", l->module ?: "?", l->module_offset);
        }
}

static int on_sample(const PerfSample *p, void *userdata) {
        Tally *t = userdata;
        ThreadTally *th = tally_thread(t, p->tid);
        ThreadCapture cap;
        Stack st = {};

        t->samples++;
        th->samples++;
        if (!t->min_time_ns || p->time_ns < t->min_time_ns)
                t->min_time_ns = p->time_ns;
        t->max_time_ns = MAX(t->max_time_ns, p->time_ns);
        t->user_callchain_frames += p->n_user_callchain;

        if (p->n_kernel_frames > 0 && t->ks) {
                th->kernel_stacks++;
                const SymLoc *leaf = kallsyms_resolve(t->ks, p->kernel_frames[0]);
                if (leaf->n_frames > 0) {
                        th->kernel_named++;
                        if (!t->kernel_example[0] && p->n_kernel_frames >= 3) {
                                size_t len = 0;
                                for (size_t i = 0; i < p->n_kernel_frames && i < 8; i++) {
                                        const SymLoc *l = kallsyms_resolve(t->ks, i == 0 ?
                                                p->kernel_frames[i] : p->kernel_frames[i] - 1);
                                        len += (size_t) snprintf(t->kernel_example + len,
                                                sizeof t->kernel_example - len, "%s%s+%#" PRIx64,
                                                i ? " <- " : "",
                                                l->n_frames ? l->frames[0].function : "?",
                                                l->n_frames ? l->module_offset - l->frames[0].entry : 0);
                                        if (len >= sizeof t->kernel_example)
                                                break;
                                }
                        }
                }
        }

        if (perf_sample_as_capture(p, &cap) < 0) {
                t->no_regs++;
                return 0;
        }
        uint64_t t0 = now_monotonic_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        ASSERT_EQ(address_space_unwind(t->as, &cap, &st), 0);
        uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
        t->unwind_ns += now_monotonic_ns() - t0;
        t->unwind_cpu_ns += cpu;
        t->unwound++;
        if (t->warm) {
                t->warm_unwind_cpu_ns += cpu;
                t->warm_unwound++;
        }
        t->stacks++;
        th->stacks++;

        if (st.n > 0 && streq_ptr(physical_function(&st.frames[0]), "hot_leaf"))
                th->hot_leaf++;
        for (size_t i = 0; i < st.n; i++) {
                const char *fn = physical_function(&st.frames[i]);
                if (streq_ptr(fn, "path_a")) {
                        th->path_a++;
                        break;
                }
                if (streq_ptr(fn, "path_b")) {
                        th->path_b++;
                        break;
                }
        }
        if (stack_is_truncated(&st))
                t->truncated++;
        else if (st.n > 0 && is_thread_root(physical_function(&st.frames[st.n - 1])))
                t->complete++;
        else {
                t->odd_end++;
                if (t->verbose)
                        dump_stack("complete but odd end", &st);
        }
        if (t->verbose && stack_is_truncated(&st) && t->truncated <= 3)
                dump_stack(th->name, &st);
        free(st.frames);
        return 0;
}

static void update_maps(Tally *t) {
        Maps maps;
        if (procfs_read_maps(t->pid, &maps) == 0) {
                ASSERT_EQ(address_space_update(t->as, &maps), 0);
                maps_done(&maps);
        }
}

static bool busy_name(const char *name) {
        return strncmp(name, "busy-", 5) == 0;
}

static uint64_t busy_stacks(const Tally *t) {
        uint64_t n = 0;
        for (size_t i = 0; i < t->n_threads; i++)
                if (busy_name(t->threads[i].name))
                        n += t->threads[i].stacks;
        return n;
}

static void *sleeper_thread(void *arg) {
        for (;;)
                sleep_ms(1);
        return arg;
}

/* A child of two threads that sleep 1 ms at a time: what the sleeping tracepoint sees. */
static pid_t start_sleeper(void) {
        pid_t pid = fork_dying_with_us();
        if (pid == 0) {
                pthread_t t;
                pthread_create(&t, NULL, sleeper_thread, NULL);
                sleeper_thread(NULL);
        }
        target_pid = pid;
        sleep_ms(50);
        return pid;
}

typedef struct SwitchLog {
        size_t samples, ins, outs, preempted_samples, regs;
        uint64_t last_time;
        size_t out_of_order;
        const TracepointField *state;
} SwitchLog;

static int on_switch_event(const PerfSample *p, void *userdata) {
        SwitchLog *log = userdata;
        if (p->time_ns < log->last_time)
                log->out_of_order++;
        log->last_time = p->time_ns;
        switch (p->kind) {
        case PERF_EVENT_SAMPLE: {
                log->samples++;
                uint64_t state = 0;
                if (!tracepoint_field_value(log->state, p->raw, p->raw_size, &state) || !(state & 3))
                        log->preempted_samples++;
                log->regs += p->has_regs && p->stack_len > 0;
                break;
        }
        case PERF_EVENT_SWITCH_IN:
                log->ins++;
                break;
        case PERF_EVENT_SWITCH_OUT:
                log->outs++;
                break;
        case PERF_EVENT_EXIT:
                break;
        }
        return 0;
}

TEST(tracepoint_sampler_sees_sleeps_in_time_order) {
        Tracepoint tp;
        ASSERT_EQ(tracepoint_read("sched", "sched_switch", &tp), 0);
        pid_t pid = start_sleeper();
        PerfSamplerOptions o = {
                .tracepoint_id = tp.id,
                .tracepoint_filter = "prev_state & 3",
                .context_switches = true,
                .time_ordered = true,
                .stack_bytes = 4096,
        };
        PerfSampler *s = new_sampler_or_skip(pid, &o);
        SwitchLog log = { .state = tracepoint_field(&tp, "prev_state") };
        ASSERT_TRUE(log.state != NULL);
        for (int i = 0; i < 5; i++) {
                sleep_ms(60);
                ASSERT_TRUE(perf_sampler_drain(s, on_switch_event, &log) >= 0);
        }
        /* Two threads sleeping 1 ms at a time for 300 ms: hundreds of sleeps. */
        ASSERT_GE(log.samples, 100);
        ASSERT_GE(log.ins, log.samples / 2);
        ASSERT_GE(log.outs, log.samples / 2);
        ASSERT_EQ(log.preempted_samples, 0);            /* the kernel's filter */
        ASSERT_EQ(log.regs, log.samples);               /* user registers and stack of each */
        ASSERT_EQ(log.out_of_order, 0);
        PerfSamplerStats st;
        perf_sampler_get_stats(s, &st);
        ASSERT_EQ(st.switches, log.ins + log.outs);
        perf_sampler_free(s);
        ASSERT_EQ(count_perf_fds(), 0);
        kill_target();
}

TEST(profiles_cpu_target) {
        static const char *const args[] = { "--spawn-after-ms", "700", NULL };
        _cleanup_(symbolizer_freep) Symbolizer *sym = NULL;
        _cleanup_(address_space_freep) AddressSpace *as = NULL;
        _cleanup_(kallsyms_freep) Kallsyms *ks = NULL;
        static Tally t;
        PerfSamplerStats stats;

        /* Slow setup first: busy-late must start after the sampler does. */
        size_t perf_fds_before = count_perf_fds();
        ASSERT_EQ(symbolizer_new(&sym), 0);
        if (kallsyms_load(NULL, &ks) < 0)
                ks = NULL;
        pid_t pid = start_target(args);
        ASSERT_EQ(address_space_new(sym, pid, &as), 0);

        PerfSamplerOptions o = { .frequency_hz = 200 };
        PerfSampler *s = new_sampler_or_skip(pid, &o);
        _cleanup_free_ pid_t *initial = NULL;
        size_t n_initial;
        ASSERT_EQ(procfs_list_threads(pid, &initial, &n_initial), 0);
        t = (Tally) { .pid = pid, .sampler = s, .as = as, .ks = ks, .verbose = getenv("VERBOSE") != NULL };
        update_maps(&t);
        ASSERT_GT(count_perf_fds(), perf_fds_before);

        /* ~2 s; longer (up to 10 s) on a busy machine until the busy threads have enough
         * samples for the 2:1 check to mean something: path_b is a 1/3 draw per sample,
         * and ±25% on the ratio is 3.5 standard deviations at 1200 samples. */
        uint64_t start = now_monotonic_ns(), drain_ns = 0;
        int drains = 0, refreshed = 0;
        while (now_monotonic_ns() - start < 2 * NSEC_PER_SEC ||
               (busy_stacks(&t) < 1200 && now_monotonic_ns() - start < 10 * NSEC_PER_SEC)) {
                sleep_ms(100);
                update_maps(&t);
                uint64_t t0 = now_monotonic_ns();
                ASSERT_GE(perf_sampler_drain(s, on_sample, &t), 0);
                drain_ns += now_monotonic_ns() - t0;
                drains++;
                t.warm = true;
                int r = perf_sampler_refresh(s);
                ASSERT_GE(r, 0);
                refreshed += r;
        }
        uint64_t elapsed = now_monotonic_ns() - start;
        ASSERT_GE(perf_sampler_drain(s, on_sample, &t), 0);
        uint64_t end = now_monotonic_ns();
        perf_sampler_get_stats(s, &stats);
        if (stats.monotonic_time) {
                /* Sample times are CLOCK_MONOTONIC, inside the profile. */
                ASSERT_GE(t.min_time_ns, start - NSEC_PER_SEC);
                ASSERT_LE(t.max_time_ns, end);
        }
        s = perf_sampler_free(s);

        /* Nothing of ours is left: no perf fd, no stopped thread. */
        ASSERT_EQ(count_perf_fds(), perf_fds_before);
        assert_not_stopped(pid);

        uint64_t busy_samples = 0, busy_hot = 0, a = 0, b = 0;
        bool late = false, late_inherited = true;
        for (size_t i = 0; i < t.n_threads; i++) {
                const ThreadTally *th = &t.threads[i];
                fprintf(stderr, "  %-16s tid %-7d samples %-5" PRIu64 " hot_leaf %-5" PRIu64
                        " path_a %-5" PRIu64 " path_b %-5" PRIu64 " kernel stacks %" PRIu64
                        " (%" PRIu64 " named)\n", th->name, th->tid, th->samples, th->hot_leaf,
                        th->path_a, th->path_b, th->kernel_stacks, th->kernel_named);
                if (busy_name(th->name)) {
                        ASSERT_GT(th->samples, 0);
                        busy_samples += th->stacks;
                        busy_hot += th->hot_leaf;
                        a += th->path_a;
                        b += th->path_b;
                }
                if (strcmp(th->name, "busy-late") == 0) {
                        late = true;
                        for (size_t j = 0; j < n_initial; j++)
                                if (initial[j] == th->tid)
                                        late_inherited = false; /* a slow start */
                }
        }
        fprintf(stderr, "samples %" PRIu64 " in %.2f s (%.0f/s), %d drains, %.2f ms per drain "
                "including unwinding (wall)\n", t.samples, elapsed / 1e9, t.samples / (elapsed / 1e9),
                drains, drain_ns / 1e6 / drains);
        fprintf(stderr, "unwind+symbolize per sample: %.1f us wall, %.1f us CPU over all %" PRIu64
                ", %.1f us CPU warm (after the first drain, %" PRIu64 ")\n",
                t.unwound ? t.unwind_ns / 1e3 / t.unwound : 0.0,
                t.unwound ? t.unwind_cpu_ns / 1e3 / t.unwound : 0.0, t.unwound,
                t.warm_unwound ? t.warm_unwind_cpu_ns / 1e3 / t.warm_unwound : 0.0, t.warm_unwound);
        fprintf(stderr, "stacks %" PRIu64 ": complete %" PRIu64 ", truncated %" PRIu64 ", other end %"
                PRIu64 ", no regs %" PRIu64 "; kernel's fp user chain %.1f frames/sample\n",
                t.stacks, t.complete, t.truncated, t.odd_end, t.no_regs,
                t.samples ? (double) t.user_callchain_frames / t.samples : 0.0);
        fprintf(stderr, "lost %" PRIu64 " (records) %" PRIu64 " (counted) %" PRIu64 " (lost_samples),"
                " malformed %" PRIu64 ", throttled %" PRIu64 ", duplicates %" PRIu64 ", forks %" PRIu64
                ", refresh opened %d, events %zu, rings %zu x %zu KiB, cpu time %.2f s, kernel %s\n",
                stats.lost, stats.lost_counted, stats.lost_samples, stats.malformed, stats.throttled,
                stats.duplicates, stats.forks, refreshed, stats.events, stats.rings,
                stats.rings ? stats.ring_bytes_total / stats.rings / 1024 : 0,
                stats.cpu_time_ns / 1e9, stats.kernel_excluded ? "excluded" : "included");
        if (t.kernel_example[0])
                fprintf(stderr, "a kernel stack of syscaller: %s\n", t.kernel_example);

        ASSERT_TRUE(late);                              /* a thread made mid-profile */
        if (late_inherited) {
                ASSERT_GE(stats.forks, 1);              /* it was announced… */
                ASSERT_EQ(refreshed, 0);                /* …so refresh did not open it */
        } else
                fprintf(stderr, "busy-late started before the sampler: inheritance not checked\n");
        ASSERT_EQ(stats.duplicates, 0);
        ASSERT_EQ(stats.malformed, 0);
        ASSERT_EQ(stats.period_ns, 5000000);
        ASSERT_GT(busy_samples, 200);
        ASSERT_GE(busy_hot * 100, busy_samples * 80);
        ASSERT_GT(b, 0);
        double ratio = (double) a / (double) b;
        fprintf(stderr, "path_a:path_b = %" PRIu64 ":%" PRIu64 " = %.2f\n", a, b, ratio);
        ASSERT_TRUE(ratio >= 1.5 && ratio <= 2.5);
        ASSERT_GE(t.complete * 100, t.stacks * 99);
        ASSERT_EQ(t.complete + t.truncated + t.odd_end, t.stacks);
        ASSERT_EQ(t.odd_end, 0);

        const ThreadTally *sc = NULL;
        for (size_t i = 0; i < t.n_threads; i++)
                if (strcmp(t.threads[i].name, "syscaller") == 0)
                        sc = &t.threads[i];
        ASSERT_TRUE(sc != NULL);
        if (stats.kernel_excluded)
                fprintf(stderr, "kernel frames unavailable here: not checked\n");
        else if (!ks || kallsyms_hidden(ks))
                fprintf(stderr, "kernel symbols hidden: kernel frames not named\n");
        else {
                ASSERT_GT(sc->kernel_stacks, 0);
                ASSERT_GT(sc->kernel_named, 0);
                /* Most of its time is in the kernel. */
                ASSERT_GE(sc->kernel_stacks * 2, sc->samples);
        }
        kill_target();
}

typedef struct KeepUp {
        AddressSpace *as;                       /* NULL: parse only */
        uint64_t samples, unwound, complete;
        uint64_t max_gap_ns;                    /* longest time between two drains */
} KeepUp;

/* What the default buffers hold between drains at 1000 Hz on every CPU, with room to
 * spare: a drain later than this (the test's thread starved by a loaded machine) may
 * lose samples without the sampler being at fault. */
#define KEEP_UP_GAP_MAX_NS (200 * NSEC_PER_MSEC)

/* Loss is the sampler's fault only when every drain came in time. */
static void assert_no_loss(const PerfSamplerStats *stats, const KeepUp *k) {
        if (k->max_gap_ns > KEEP_UP_GAP_MAX_NS) {
                fprintf(stderr, "a drain came %.0f ms after the previous one (the machine is loaded): loss not "
                        "checked\n", k->max_gap_ns / 1e6);
                return;
        }
        ASSERT_EQ(stats->lost, 0);
        ASSERT_EQ(stats->lost_counted, 0);
}

static int keep_up_sample(const PerfSample *p, void *userdata) {
        KeepUp *k = userdata;
        ThreadCapture cap;
        Stack st = {};

        k->samples++;
        if (!k->as || perf_sample_as_capture(p, &cap) < 0)
                return 0;
        ASSERT_EQ(address_space_unwind(k->as, &cap, &st), 0);
        k->unwound++;
        if (!stack_is_truncated(&st))
                k->complete++;
        free(st.frames);
        return 0;
}

/* Samples PID at 1000 Hz for 3 s, drained every 100 ms (the slow end of the 50-100 ms
 * range) with the default 8 MiB, and prints what it took. */
static void run_1000hz(pid_t pid, AddressSpace *as, const char *what, PerfSamplerStats *ret_stats,
                       KeepUp *k) {
        uint64_t drain_ns = 0, max_drain_ns = 0, cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        int drains = 0;

        PerfSamplerOptions o = { .frequency_hz = 1000 };
        PerfSampler *s = new_sampler_or_skip(pid, &o);
        *k = (KeepUp) { .as = as };
        uint64_t start = now_monotonic_ns(), last = start;
        while (now_monotonic_ns() - start < 3 * NSEC_PER_SEC) {
                sleep_ms(100);
                uint64_t t0 = now_monotonic_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), n0 = k->samples;
                k->max_gap_ns = MAX(k->max_gap_ns, t0 - last);
                last = t0;
                ASSERT_GE(perf_sampler_drain(s, keep_up_sample, k), 0);
                uint64_t dt = now_monotonic_ns() - t0;
                if (getenv("VERBOSE"))
                        fprintf(stderr, "  drain %d: %" PRIu64 " samples, %.2f ms wall, %.2f ms CPU\n", drains,
                                k->samples - n0, dt / 1e6, (clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / 1e6);
                drain_ns += dt;
                max_drain_ns = MAX(max_drain_ns, dt);
                drains++;
        }
        uint64_t elapsed = now_monotonic_ns() - start;
        ASSERT_GE(perf_sampler_drain(s, keep_up_sample, k), 0);
        uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        perf_sampler_get_stats(s, ret_stats);
        s = perf_sampler_free(s);

        fprintf(stderr, "1000 Hz x 8 busy, %s: %" PRIu64 " samples in %.2f s = %.0f/s, %.1f MB/s of "
                "records; drain %.2f ms avg, %.2f ms max (wall), our CPU %.1f%%; lost %" PRIu64
                " (records) %" PRIu64 " (counted); throttled %" PRIu64 "; rings %zu x %zu KiB\n",
                what,
                k->samples, elapsed / 1e9, k->samples / (elapsed / 1e9),
                ret_stats->bytes / (elapsed / 1e9) / 1e6, drain_ns / 1e6 / drains,
                max_drain_ns / 1e6, 100.0 * cpu / elapsed, ret_stats->lost,
                ret_stats->lost_counted, ret_stats->throttled, ret_stats->rings,
                ret_stats->rings ? ret_stats->ring_bytes_total / ret_stats->rings / 1024 : 0);
}

TEST(keeps_up_at_1000hz_with_8_busy_threads) {
        static const char *const args[] = { "--busy", "8", NULL };
        _cleanup_(symbolizer_freep) Symbolizer *sym = NULL;
        _cleanup_(address_space_freep) AddressSpace *as = NULL;
        PerfSamplerStats stats;
        KeepUp k;
        Maps maps;

        pid_t pid = start_target(args);

        run_1000hz(pid, NULL, "parse only", &stats, &k);
        ASSERT_EQ(stats.malformed, 0);
        if (stats.ring_bytes_total < PERF_RING_BYTES_DEFAULT) {
                /* Unprivileged, the mlock limit (perf_event_mlock_kb × CPUs + RLIMIT_MEMLOCK)
                 * shrank the buffers: at 16 KiB per sample they hold less than 100 ms. */
                fprintf(stderr, "buffers limited to %zu KiB by the mlock limit: loss not checked\n",
                        stats.ring_bytes_total / 1024);
                kill_target();
                return;
        }
        ASSERT_GT(k.samples, 1000);
        assert_no_loss(&stats, &k);

        /* The same with the real work done in the callback. The first drain of a cold
         * symbolizer (reading libc's DWARF: ~50 ms of CPU) can stretch to hundreds of ms
         * when the busy target leaves us 1/5 of a CPU: that loss is reported, not
         * asserted. Once warm, a drain is ~3 us per sample and must lose nothing. */
        ASSERT_EQ(symbolizer_new(&sym), 0);
        ASSERT_EQ(address_space_new(sym, pid, &as), 0);
        ASSERT_EQ(procfs_read_maps(pid, &maps), 0);
        ASSERT_EQ(address_space_update(as, &maps), 0);
        maps_done(&maps);
        run_1000hz(pid, as, "unwinding, cold symbolizer", &stats, &k);
        ASSERT_GE(k.complete * 100, k.unwound * 99);
        run_1000hz(pid, as, "unwinding, warm symbolizer", &stats, &k);
        fprintf(stderr, "  %" PRIu64 " of %" PRIu64 " unwound stacks complete\n", k.complete, k.unwound);
        ASSERT_GT(k.samples, 1000);
        assert_no_loss(&stats, &k);
        ASSERT_GE(k.complete * 100, k.unwound * 99);
        kill_target();
}

static int count_samples(const PerfSample *p, void *userdata) {
        (*(uint64_t *) userdata)++;
        return 0;
}

typedef struct Churn {
        PerfSampler *sampler;
        pid_t pid;
        uint64_t samples, short_samples;
        U64Map short_tids;
} Churn;

static int churn_sample(const PerfSample *p, void *userdata) {
        Churn *c = userdata;
        const char *name = perf_sampler_thread_name(c->sampler, p->tid);

        c->samples++;
        if (name && strcmp(name, "short") == 0) {
                c->short_samples++;
                (void) u64map_put(&c->short_tids, (uint64_t) p->tid, (void *) 1);
        }
        return 0;
}

/* Threads created and gone all the time, by a thread that is not main: they are followed
 * through inheritance (named by their COMM records), announced by FORK records, and
 * refresh() opens (almost) none of them itself. */
TEST(target_exits_mid_profile) {
        static const char *const args[] = { "--exit-after-ms", "300", NULL };
        uint64_t n = 0;

        size_t perf_fds_before = count_perf_fds();
        pid_t pid = start_target(args);
        PerfSampler *s = new_sampler_or_skip(pid, NULL);
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);          /* gone, and reaped */
        target_pid = 0;
        ASSERT_GE(perf_sampler_drain(s, count_samples, &n), 0);
        ASSERT_EQ(perf_sampler_refresh(s), -ESRCH);
        PerfSamplerStats stats;
        perf_sampler_get_stats(s, &stats);
        fprintf(stderr, "%" PRIu64 " samples, %" PRIu64 " exits before the target was gone\n", n, stats.exits);
        ASSERT_GT(n, 0);
        ASSERT_GE(stats.exits, 4);
        s = perf_sampler_free(s);
        ASSERT_EQ(count_perf_fds(), perf_fds_before);
}

TEST(follows_thread_churn) {
        static const char *const args[] = { "--busy", "1", "--churn", "4", NULL };
        PerfSamplerStats stats;
        int refreshed = 0, rounds = 0;

        size_t perf_fds_before = count_perf_fds();
        pid_t pid = start_target(args);
        PerfSamplerOptions o = { .frequency_hz = 1000 };
        PerfSampler *s = new_sampler_or_skip(pid, &o);
        Churn c = { .sampler = s, .pid = pid };

        uint64_t start = now_monotonic_ns();
        while (now_monotonic_ns() - start < 2 * NSEC_PER_SEC) {
                sleep_ms(20);
                ASSERT_GE(perf_sampler_drain(s, churn_sample, &c), 0);
                int r = perf_sampler_refresh(s);
                ASSERT_GE(r, 0);
                refreshed += r;
                rounds++;
        }
        ASSERT_GE(perf_sampler_drain(s, churn_sample, &c), 0);
        perf_sampler_get_stats(s, &stats);
        s = perf_sampler_free(s);
        ASSERT_EQ(count_perf_fds(), perf_fds_before);
        assert_not_stopped(pid);
        kill_target();

        fprintf(stderr, "churn: %" PRIu64 " samples, %" PRIu64 " of short threads (%zu threads), forks %"
                PRIu64 ", exits %" PRIu64 ", refresh opened %d in %d rounds, duplicates %" PRIu64
                ", events %zu, lost %" PRIu64 "\n", c.samples, c.short_samples, c.short_tids.n,
                stats.forks, stats.exits, refreshed, rounds, stats.duplicates, stats.events, stats.lost);
        ASSERT_EQ(stats.malformed, 0);
        ASSERT_GT(stats.forks, 100);
        ASSERT_GT(c.short_tids.n, 50);
        /* Opened by refresh only in the moment between a thread appearing in /proc and the
         * kernel announcing it. */
        ASSERT_LE(refreshed * 20, (int) stats.forks);
        u64map_done(&c.short_tids, NULL);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
