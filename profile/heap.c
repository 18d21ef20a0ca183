/* profile/heap.c -- see heap.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "macro.h"
#include "tabwriter.h"

void heap_init(Heap *h, uint64_t rate) {
        *h = (Heap) { .rate = rate };
        stack_sites_init(&h->sites, sizeof(HeapSite), HEAP_SITES_MAX);
}

void heap_done(Heap *h) {
        stack_sites_done(&h->sites);
        u64map_done(&h->live, NULL);
        h->live = (U64Map) {};
}

static HeapSite *heap_site(const Heap *h, size_t i) {
        return stack_sites_get(&h->sites, i);
}

int heap_alloc(Heap *h, uint64_t address, uint64_t bytes, Stack *stack) {
        heap_free(h, address);
        long i = stack_sites_find(&h->sites, stack, bytes);
        if (i < 0) {
                if (i == -E2BIG)
                        h->lost++;
                return (int) i;
        }
        u64map_put(&h->live, address, (void *) (uintptr_t) (i + 1));
        heap_site(h, (size_t) i)->allocs++;
        return 0;
}

void heap_free(Heap *h, uint64_t address) {
        uintptr_t v = (uintptr_t) u64map_remove(&h->live, address);
        if (v != 0)
                heap_site(h, v - 1)->frees++;
}

void heap_scale(uint64_t count, uint64_t bytes, uint64_t rate, int64_t *ret_count, int64_t *ret_bytes) {
        if (count == 0 || bytes == 0) {
                *ret_count = *ret_bytes = 0;
                return;
        }
        if (rate <= 1) {
                *ret_count = (int64_t) count;
                *ret_bytes = (int64_t) bytes;
                return;
        }
        double avg = (double) bytes / (double) count;
        double scale = 1 / (1 - exp(-avg / (double) rate));
        *ret_count = (int64_t) ((double) count * scale);
        *ret_bytes = (int64_t) ((double) bytes * scale);
}

int heap_add_to_profile(const Heap *h, bool allocs, Profile *p) {
        static const char *const types[] = { "alloc_objects", "alloc_space", "inuse_objects", "inuse_space" };
        int r = 0;
        for (size_t i = 0; i < ARRAY_SIZE(types) && r == 0; i++)
                r = profile_add_sample_type(p, types[i], i % 2 ? "bytes" : "count");
        if (r == 0)
                r = profile_set_period(p, "space", "bytes", (int64_t) MIN(h->rate, (uint64_t) INT64_MAX));
        if (r == 0 && allocs)
                r = profile_set_default_sample_type(p, "alloc_space");
        for (size_t i = 0; i < h->sites.n && r == 0; i++) {
                const HeapSite *s = heap_site(h, i);
                uint64_t size = s->site.key;
                int64_t v[4];
                heap_scale(s->allocs, s->allocs * size, h->rate, &v[0], &v[1]);
                heap_scale(s->allocs - s->frees, (s->allocs - s->frees) * size, h->rate, &v[2], &v[3]);
                ProfileLabelSpec label = { .key = "bytes", .num = (int64_t) MIN(size, (uint64_t) INT64_MAX) };
                r = profile_add_stack(p, &s->site.stack, v, &label, 1);
        }
        return r;
}

static int by_inuse_bytes(const void *a, const void *b) {
        const HeapSite *x = *(HeapSite *const *) a, *y = *(HeapSite *const *) b;
        uint64_t bx = (x->allocs - x->frees) * x->site.key, by = (y->allocs - y->frees) * y->site.key;
        if (bx != by)
                return bx > by ? -1 : 1;
        return x->site.hash < y->site.hash ? -1 : x->site.hash > y->site.hash;
}

void heap_write_text(const Heap *h, const char *comment, Buf *out) {
        uint64_t in_objs = 0, in_bytes = 0, al_objs = 0, al_bytes = 0;
        size_t n = h->sites.n;
        HeapSite **sorted = stack_sites_sorted(&h->sites, by_inuse_bytes);
        Buf text = {};

        for (size_t i = 0; i < n; i++) {
                const HeapSite *s = heap_site(h, i);
                in_objs += s->allocs - s->frees;
                in_bytes += (s->allocs - s->frees) * s->site.key;
                al_objs += s->allocs;
                al_bytes += s->allocs * s->site.key;
        }
        /* Go prints the raw sampled counts here, and the rate doubled: heap/2*MemProfileRate. */
        buf_printf(&text, "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @ heap/%" PRIu64 "\n",
                   in_objs, in_bytes, al_objs, al_bytes, 2 * h->rate);
        if (comment)
                buf_puts(&text, comment);
        for (size_t i = 0; sorted && i < n; i++) {
                const HeapSite *s = sorted[i];
                uint64_t size = s->site.key;
                buf_printf(&text, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] ", s->allocs - s->frees,
                           (s->allocs - s->frees) * size, s->allocs, s->allocs * size);
                stack_site_write_debug1(&text, &s->site);
        }
        tabwriter_format(text.data, text.len, out);
        buf_done(&text);
        free(sorted);
}
