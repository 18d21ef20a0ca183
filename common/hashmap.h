/* common/hashmap.h -- an open-addressing map from 64-bit keys to pointers.
 *
 * Keys are arbitrary (0 included); values must be non-NULL. Grows by doubling; never
 * shrinks. Not thread-safe: the owner serializes access. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct U64Map {
        uint64_t *keys;
        void **values;          /* NULL marks an empty slot */
        size_t n;
        size_t cap;             /* 0 or a power of two */
} U64Map;

void *u64map_get(const U64Map *m, uint64_t key);
/* Inserts or replaces. Returns the previous value or NULL. Aborts on allocation failure. */
void *u64map_put(U64Map *m, uint64_t key, void *value);
/* Removes KEY; returns its value, or NULL when it was not there. */
void *u64map_remove(U64Map *m, uint64_t key);
/* Calls FREE_VALUE (may be NULL) on every value, then releases the table. */
void u64map_done(U64Map *m, void (*free_value)(void *));

/* Iteration: for (size_t i = 0; u64map_next(m, &i, &k, &v); ) */
bool u64map_next(const U64Map *m, size_t *iter, uint64_t *ret_key, void **ret_value);

/* A well-mixed 64-bit hash of bytes (FNV-1a, then a finalizer). */
uint64_t hash_bytes(const void *data, size_t len);
