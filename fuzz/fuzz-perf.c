/* fuzz/fuzz-perf.c -- libFuzzer target: the perf ring buffer reader and the sample parser
 * of attach/perf.c (perf_ring_read, perf_sample_parse_type for the CPU samplers' layout and
 * the tracepoint samplers' (raw fields, no call chain), perf_sample_as_capture: the low
 * level its header exposes for tests and replay).
 *
 * Input: u64 data_tail, u64 head offset, then the bytes of the data area (little-endian).
 *   - The bytes after the first 16 are parsed as one PERF_RECORD_SAMPLE (type forced,
 *     size = what the buffer holds), in an 8-aligned buffer of that exact size.
 *   - They are also laid into a ring of 4 KiB (8 KiB when the tail's top bit is set) as the
 *     kernel would, from data_tail on, wrapping; data_head = data_tail + the head offset
 *     (modulo twice the ring size, so past-the-ring heads happen too). Every record handed
 *     out must be 8-aligned, inside the ring or the bounce buffer, with a size that checks
 *     out; samples among them are parsed.
 * What a parsed sample points to (kernel frames, user callchain, stack copy, raw data) must lie
 * inside its record, and a capture made from it must describe the same bytes. */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "perf.h"

#define META_SIZE 4096u

static bool inside(const void *p, size_t len, const void *base, size_t size) {
        const uint8_t *q = p, *b = base;
        return q >= b && q <= b + size && len <= (size_t) (b + size - q);
}

/* The layout of the tracepoint samplers: no call chain, the raw fields instead. */
#define TRACEPOINT_SAMPLE_TYPE ((PERF_SAMPLER_SAMPLE_TYPE & ~(uint64_t) PERF_SAMPLE_CALLCHAIN) | PERF_SAMPLE_RAW)

static void check_sample_of(const struct perf_event_header *h, uint64_t sample_type) {
        PerfSample s;
        if (perf_sample_parse_type(h, sample_type, &s) < 0)
                return;
        if ((s.n_kernel_frames && !inside(s.kernel_frames, s.n_kernel_frames * 8, h, h->size)) ||
            (s.n_user_callchain && !inside(s.user_callchain, s.n_user_callchain * 8, h, h->size)) ||
            (s.stack_len && !inside(s.stack, s.stack_len, h, h->size)) ||
            (s.raw_size && !inside(s.raw, s.raw_size, h, h->size)))
                abort();
        volatile uint64_t sink = 0;
        for (size_t i = 0; i < s.n_kernel_frames; i++)
                sink += s.kernel_frames[i];
        for (size_t i = 0; i < s.n_user_callchain; i++)
                sink += s.user_callchain[i];
        (void) sink;

        ThreadCapture t;
        if (perf_sample_as_capture(&s, &t) == 0 &&
            (t.stack != s.stack || t.stack_len != s.stack_len || t.stack_start != s.regs.rsp ||
             t.regs.rip != s.regs.rip))
                abort();
}

static void check_sample(const struct perf_event_header *h) {
        check_sample_of(h, PERF_SAMPLER_SAMPLE_TYPE);
        check_sample_of(h, TRACEPOINT_SAMPLE_TYPE);
}

typedef struct Ring {
        const uint8_t *data, *bounce;
        size_t size;
        size_t records;
} Ring;

static int on_record(const struct perf_event_header *rec, void *userdata) {
        Ring *r = userdata;
        if (((uintptr_t) rec & 7) || rec->size < sizeof *rec || rec->size % 8 != 0 ||
            (!inside(rec, rec->size, r->data, r->size) &&
             !inside(rec, rec->size, r->bounce, PERF_RECORD_MAX)))
                abort();
        r->records++;
        if (rec->type == PERF_RECORD_SAMPLE)
                check_sample(rec);
        return 0;
}

static uint64_t get_u64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 16)
                return 0;
        const uint64_t tail = get_u64(data) & ~(UINT64_C(1) << 63);
        const uint64_t head_off = get_u64(data + 8);
        const uint8_t *bytes = data + 16;
        const size_t len = size - 16;

        /* One record, as the ring would hand it out. */
        size_t rec_size = MIN(len, (size_t) UINT16_MAX) & ~(size_t) 7;
        if (rec_size >= sizeof(struct perf_event_header)) {
                struct perf_event_header *h = aligned_alloc(8, rec_size);
                if (!h)
                        abort();
                memcpy(h, bytes, rec_size);
                h->type = PERF_RECORD_SAMPLE;
                h->size = (uint16_t) rec_size;
                check_sample(h);
                free(h);
        }

        /* The ring. */
        const size_t ring_size = data[7] & 0x80 ? 8192 : 4096;
        uint8_t *page = aligned_alloc(4096, META_SIZE + ring_size);
        uint8_t *bounce = aligned_alloc(8, PERF_RECORD_MAX);
        if (!page || !bounce)
                abort();
        memset(page, 0, META_SIZE + ring_size);
        struct perf_event_mmap_page *meta = (struct perf_event_mmap_page *) page;
        uint8_t *ring = page + META_SIZE;
        for (size_t i = 0; i < len && i < ring_size; i++)
                ring[(tail + i) & (ring_size - 1)] = bytes[i];
        meta->data_offset = META_SIZE;
        meta->data_size = ring_size;
        meta->data_tail = tail;
        meta->data_head = tail + head_off % (2 * ring_size);

        Ring r = { .data = ring, .bounce = bounce, .size = ring_size };
        uint64_t malformed = 0;
        if (perf_ring_read(meta, bounce, on_record, &r, &malformed) < 0)
                abort();
        if (meta->data_tail != meta->data_head || malformed > 1)
                abort();        /* everything consumed, or dropped as one malformed run */

        free(bounce);
        free(page);
        return 0;
}
