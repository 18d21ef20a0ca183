/* common/hashmap.c -- see hashmap.h. */
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

static uint64_t mix64(uint64_t x) {
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x *= UINT64_C(0xc4ceb9fe1a85ec53);
        x ^= x >> 33;
        return x;
}

uint64_t hash_bytes(const void *data, size_t len) {
        const unsigned char *p = data;
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return mix64(h);
}

void *u64map_get(const U64Map *m, uint64_t key) {
        if (m->cap == 0)
                return NULL;
        size_t mask = m->cap - 1;
        for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
                if (!m->values[i])
                        return NULL;
                if (m->keys[i] == key)
                        return m->values[i];
        }
}

static void u64map_grow(U64Map *m) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        uint64_t *keys = calloc(cap, sizeof *keys);
        void **values = calloc(cap, sizeof *values);
        if (!keys || !values)
                abort();
        for (size_t j = 0; j < m->cap; j++) {
                if (!m->values[j])
                        continue;
                size_t i = mix64(m->keys[j]) & (cap - 1);
                while (values[i])
                        i = (i + 1) & (cap - 1);
                keys[i] = m->keys[j];
                values[i] = m->values[j];
        }
        free(m->keys);
        free(m->values);
        m->keys = keys;
        m->values = values;
        m->cap = cap;
}

void *u64map_put(U64Map *m, uint64_t key, void *value) {
        if ((m->n + 1) * 4 > m->cap * 3)
                u64map_grow(m);
        size_t mask = m->cap - 1;
        size_t i = mix64(key) & mask;
        for (; m->values[i]; i = (i + 1) & mask)
                if (m->keys[i] == key) {
                        void *old = m->values[i];
                        m->values[i] = value;
                        return old;
                }
        m->keys[i] = key;
        m->values[i] = value;
        m->n++;
        return NULL;
}

void *u64map_remove(U64Map *m, uint64_t key) {
        if (m->cap == 0)
                return NULL;
        size_t mask = m->cap - 1, i = mix64(key) & mask;
        for (; m->values[i]; i = (i + 1) & mask)
                if (m->keys[i] == key)
                        break;
        void *old = m->values[i];
        if (!old)
                return NULL;
        /* Backward shift: later entries of the probe run move up into the hole unless
         * their home slot lies cyclically in (hole, their slot]. */
        for (size_t j = (i + 1) & mask; m->values[j]; j = (j + 1) & mask) {
                size_t home = mix64(m->keys[j]) & mask;
                bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
                if (stays)
                        continue;
                m->keys[i] = m->keys[j];
                m->values[i] = m->values[j];
                i = j;
        }
        m->values[i] = NULL;
        m->n--;
        return old;
}

bool u64map_next(const U64Map *m, size_t *iter, uint64_t *ret_key, void **ret_value) {
        for (; *iter < m->cap; (*iter)++)
                if (m->values[*iter]) {
                        if (ret_key)
                                *ret_key = m->keys[*iter];
                        if (ret_value)
                                *ret_value = m->values[*iter];
                        (*iter)++;
                        return true;
                }
        return false;
}

void u64map_done(U64Map *m, void (*free_value)(void *)) {
        if (free_value)
                for (size_t i = 0; i < m->cap; i++)
                        if (m->values[i])
                                free_value(m->values[i]);
        free(m->keys);
        free(m->values);
        *m = (U64Map) {};
}
