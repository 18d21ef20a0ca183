/* profile/heap.c -- see heap.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "macro.h"
#include "tabwriter.h"
#include "threads-internal.h"

void heap_init(Heap *h, uint64_t rate) {
        *h = (Heap) { .rate = rate };
}

void heap_done(Heap *h) {
        for (size_t i = 0; i < h->n_sites; i++) {
                free(h->sites[i]->stack.frames);
                free(h->sites[i]);
        }
        free(h->sites);
        u64map_done(&h->by_hash, NULL);
        u64map_done(&h->live, NULL);
        *h = (Heap) { .rate = h->rate };
}

static uint64_t site_hash(const Stack *s, uint64_t size) {
        uint64_t pcs[64];
        size_t n = 0;
        for (size_t i = 0; i < s->n && n < ARRAY_SIZE(pcs) - 1; i++)
                pcs[n++] = s->frames[i].pc;
        pcs[n++] = size ^ ((uint64_t) s->n << 48);
        return hash_bytes(pcs, n * sizeof *pcs);
}

static bool same_stack(const Stack *a, const Stack *b) {
        if (a->n != b->n || a->end != b->end)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (a->frames[i].pc != b->frames[i].pc)
                        return false;
        return true;
}

/* The site of (STACK, SIZE), made when new (taking STACK); its index, or negative errno. */
static long find_site(Heap *h, Stack *stack, uint64_t size) {
        uint64_t hash = site_hash(stack, size);
        /* Open addressing over the hash: a collision steps to the next key. */
        for (uint64_t k = hash;; k++) {
                uintptr_t v = (uintptr_t) u64map_get(&h->by_hash, k);
                if (v == 0)
                        break;
                HeapSite *s = h->sites[v - 1];
                if (s->size == size && same_stack(&s->stack, stack)) {
                        free(stack->frames);
                        *stack = (Stack) {};
                        return (long) (v - 1);
                }
                hash = k + 1;
        }
        if (h->n_sites >= HEAP_SITES_MAX)
                return -E2BIG;
        if (h->n_sites == h->cap_sites) {
                size_t cap = MAX(h->cap_sites * 2, (size_t) 64);
                HeapSite **sites = realloc(h->sites, cap * sizeof *sites);
                if (!sites)
                        return -ENOMEM;
                h->sites = sites;
                h->cap_sites = cap;
        }
        HeapSite *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (HeapSite) { .stack = *stack, .size = size, .hash = hash };
        u64map_put(&h->by_hash, hash, (void *) (uintptr_t) (h->n_sites + 1));
        *stack = (Stack) {};
        h->sites[h->n_sites] = s;
        return (long) h->n_sites++;
}

int heap_alloc(Heap *h, uint64_t address, uint64_t bytes, Stack *stack) {
        heap_free(h, address);
        long i = find_site(h, stack, bytes);
        if (i < 0) {
                free(stack->frames);
                *stack = (Stack) {};
                if (i == -E2BIG)
                        h->lost++;
                return (int) i;
        }
        u64map_put(&h->live, address, (void *) (uintptr_t) (i + 1));
        h->sites[i]->allocs++;
        return 0;
}

void heap_free(Heap *h, uint64_t address) {
        uintptr_t v = (uintptr_t) u64map_remove(&h->live, address);
        if (v != 0)
                h->sites[v - 1]->frees++;
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
        for (size_t i = 0; i < h->n_sites && r == 0; i++) {
                const HeapSite *s = h->sites[i];
                int64_t v[4];
                heap_scale(s->allocs, s->allocs * s->size, h->rate, &v[0], &v[1]);
                heap_scale(s->allocs - s->frees, (s->allocs - s->frees) * s->size, h->rate, &v[2], &v[3]);
                ProfileLabelSpec label = { .key = "bytes", .num = (int64_t) MIN(s->size, (uint64_t) INT64_MAX) };
                r = profile_add_stack(p, &s->stack, v, &label, 1);
        }
        return r;
}

static int by_inuse_bytes(const void *a, const void *b) {
        const HeapSite *x = *(HeapSite *const *) a, *y = *(HeapSite *const *) b;
        uint64_t bx = (x->allocs - x->frees) * x->size, by = (y->allocs - y->frees) * y->size;
        if (bx != by)
                return bx > by ? -1 : 1;
        return x->hash < y->hash ? -1 : x->hash > y->hash;
}

void heap_write_text(const Heap *h, const char *comment, Buf *out) {
        uint64_t in_objs = 0, in_bytes = 0, al_objs = 0, al_bytes = 0;
        HeapSite **sorted = h->n_sites ? malloc(h->n_sites * sizeof *sorted) : NULL;
        Buf text = {};

        for (size_t i = 0; i < h->n_sites; i++) {
                const HeapSite *s = h->sites[i];
                in_objs += s->allocs - s->frees;
                in_bytes += (s->allocs - s->frees) * s->size;
                al_objs += s->allocs;
                al_bytes += s->allocs * s->size;
        }
        /* Go prints the raw sampled counts here, and the rate doubled: heap/2*MemProfileRate. */
        buf_printf(&text, "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @ heap/%" PRIu64 "\n",
                   in_objs, in_bytes, al_objs, al_bytes, 2 * h->rate);
        if (comment)
                buf_puts(&text, comment);
        if (sorted) {
                memcpy(sorted, h->sites, h->n_sites * sizeof *sorted);
                qsort(sorted, h->n_sites, sizeof *sorted, by_inuse_bytes);
        }
        for (size_t i = 0; sorted && i < h->n_sites; i++) {
                const HeapSite *s = sorted[i];
                buf_printf(&text, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] ", s->allocs - s->frees,
                           (s->allocs - s->frees) * s->size, s->allocs, s->allocs * s->size);
                stack_write_debug1_key(&text, &s->stack);
                buf_puts(&text, "\n");
                stack_write_debug1_frames(&text, &s->stack);
                buf_puts(&text, "\n");
        }
        tabwriter_format(text.data, text.len, out);
        buf_done(&text);
        free(sorted);
}
