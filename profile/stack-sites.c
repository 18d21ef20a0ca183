/* profile/stack-sites.c -- see stack-sites.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "stack-sites.h"
#include "threads-internal.h"

void stack_sites_init(StackSites *t, size_t site_size, size_t max) {
        *t = (StackSites) { .site_size = MAX(site_size, sizeof(StackSite)), .max = max };
}

void stack_sites_done(StackSites *t) {
        for (size_t i = 0; i < t->n; i++) {
                free(t->sites[i]->stack.frames);
                free(t->sites[i]);
        }
        free(t->sites);
        u64map_done(&t->by_hash, NULL);
        stack_sites_init(t, t->site_size, t->max);
}

void *stack_sites_sorted(const StackSites *t, int (*compare)(const void *, const void *)) {
        StackSite **sorted = t->n ? malloc(t->n * sizeof *sorted) : NULL;
        if (!sorted)
                return NULL;
        memcpy(sorted, t->sites, t->n * sizeof *sorted);
        qsort(sorted, t->n, sizeof *sorted, compare);
        return sorted;
}

void stack_site_write_debug1(Buf *out, const StackSite *s) {
        stack_write_debug1_key(out, &s->stack);
        buf_puts(out, "\n");
        stack_write_debug1_frames(out, &s->stack);
        buf_puts(out, "\n");
}

static uint64_t site_hash(const Stack *s, uint64_t key) {
        uint64_t pcs[64];
        size_t n = 0;
        for (size_t i = 0; i < s->n && n < ARRAY_SIZE(pcs) - 1; i++)
                pcs[n++] = s->frames[i].pc;
        pcs[n++] = key ^ ((uint64_t) s->n << 48);
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

long stack_sites_find(StackSites *t, Stack *stack, uint64_t key) {
        uint64_t hash = site_hash(stack, key);
        /* Open addressing over the hash: a collision steps to the next key. */
        for (uint64_t k = hash;; k++) {
                uintptr_t v = (uintptr_t) u64map_get(&t->by_hash, k);
                if (v == 0) {
                        hash = k;
                        break;
                }
                StackSite *s = t->sites[v - 1];
                if (s->key == key && same_stack(&s->stack, stack)) {
                        free(stack->frames);
                        *stack = (Stack) {};
                        return (long) (v - 1);
                }
        }
        long r = -E2BIG;
        if (t->n >= t->max)
                goto fail;
        r = -ENOMEM;
        if (t->n == t->cap) {
                size_t cap = MAX(t->cap * 2, (size_t) 64);
                StackSite **sites = realloc(t->sites, cap * sizeof *sites);
                if (!sites)
                        goto fail;
                t->sites = sites;
                t->cap = cap;
        }
        StackSite *s = calloc(1, t->site_size);
        if (!s)
                goto fail;
        u64map_put(&t->by_hash, hash, (void *) (uintptr_t) (t->n + 1));
        *s = (StackSite) { .stack = *stack, .key = key, .hash = hash };
        *stack = (Stack) {};
        t->sites[t->n] = s;
        return (long) t->n++;
fail:
        free(stack->frames);
        *stack = (Stack) {};
        return r;
}
