/* profile/history.c -- a bounded history of thread dumps: snapshots of compact thread
 * records in a ring, over reference-counted interned stacks and strings. See history.h.
 *
 * Invariants:
 *   - every interned item (a stack or a string) has refs = the number of thread records of
 *     kept snapshots that use it, and is freed when that reaches 0; so dropping the oldest
 *     snapshot frees exactly what nothing newer uses, and memory stays flat;
 *   - records refer to items by 32-bit id (half the size of a pointer; records are most
 *     of the memory), found through an index by id; id 0 means "none" (no stack
 *     captured, no name, no wait);
 *   - the ring holds the snapshots oldest first, monotonic times non-decreasing, and each
 *     snapshot's records are sorted by tid (binary search by tid);
 *   - bytes_items and bytes_snaps are kept as items and snapshots come and go; the rest
 *     (the history, the ring, the indexes) is computed from capacities, so the count
 *     cannot drift. The indexes shrink as items go. A snapshot is only added when it fits
 *     in the budget on its own, so dropping the oldest ones always gets the history back
 *     under max_bytes; a refused one leaves everything as it was, sizes included.
 *
 * Hash tables are keyed with a per-history seed: thread names and stacks come from the
 * target, and a target that could precompute colliding names could make every add
 * quadratic. The seed is no secret (addresses under ASLR), only not known in advance. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "history.h"
#include "tabwriter.h"
#include "threads-internal.h"

const HistoryLimits history_limits_default = {
        .max_snapshots = 360,
        .max_bytes = 32u << 20,
        .max_threads = 65536,
        .max_stack_depth = 1024,
        .max_string_bytes = 256,
};

/* What history_new() clamps to: thread indexes and ids are 32 bits, and a ring or a
 * stack bigger than these would be a configuration error, not a need. */
#define SNAPSHOTS_LIMIT (UINT32_C(1) << 24)
#define THREADS_LIMIT (UINT32_C(1) << 24)
#define DEPTH_LIMIT 65536u
#define STRING_LIMIT 65536u
#define TABLE_MIN 16u

/* ---- memory accounting ---- */

/* What a malloc of N bytes costs with glibc: the request plus an 8-byte size header, in
 * 16-byte steps, at least 32 bytes. */
static size_t alloc_cost(size_t n) {
        size_t c = (n + 8 + 15) & ~(size_t) 15;
        return MAX(c, (size_t) 32);
}

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x) {
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x *= UINT64_C(0xc4ceb9fe1a85ec53);
        x ^= x >> 33;
        return x;
}

/* Cheap per-word step; mix64() at the end spreads the bits for the table. */
static uint64_t hash_step(uint64_t h, uint64_t w) {
        h ^= w;
        h *= UINT64_C(0x9e3779b97f4a7c15);
        return h ^ (h >> 29);
}

/* ---- interned items and their tables ---- */

/* A stack of n frames keeps, in data: n pcs, n SymLoc pointers (as uintptr_t), then n
 * flag bytes and the end byte. A string keeps its bytes and a NUL. */
typedef struct Item {
        uint64_t hash;
        uint32_t refs;                  /* records of kept snapshots that use it */
        uint32_t id;
        uint32_t mark;                  /* the history_add() that last counted it */
        uint32_t len;                   /* stacks: frames; strings: bytes without the NUL */
        uint64_t data[];
} Item;

enum {
        FRAME_EXACT = 1 << 0,
        FRAME_SIGNAL = 1 << 1,
        FRAME_TAIL_CALL = 1 << 2,
        FRAME_POINTER = 1 << 3,
};

static size_t item_size(bool stack, size_t len) {
        return sizeof(Item) + (stack ? len * (2 * sizeof(uint64_t) + 1) + 1 : len + 1);
}

/* An open-addressing index of items (linear probing, at most 70% full, backward-shift
 * deletion: no tombstones, so millions of items coming and going never degrade it). It
 * shrinks as items go, so its memory follows what is kept. */
typedef struct Index {
        Item **slots;                   /* NULL: empty */
        size_t cap;                     /* 0 or a power of two ≥ TABLE_MIN */
        size_t n;
        bool by_id;                     /* keyed by id, else by hash */
} Index;

static uint64_t index_home(const Index *x, const Item *it) {
        return x->by_id ? mix64(it->id) : it->hash;
}

static size_t index_bytes(const Index *x) {
        return x->cap > 0 ? alloc_cost(x->cap * sizeof(Item *)) : 0;
}

static int index_resize(Index *x, size_t cap) {
        Item **slots = calloc(cap, sizeof(Item *));
        if (!slots)
                return -ENOMEM;
        for (size_t j = 0; j < x->cap; j++) {
                Item *it = x->slots[j];
                if (!it)
                        continue;
                size_t i = index_home(x, it) & (cap - 1);
                while (slots[i])
                        i = (i + 1) & (cap - 1);
                slots[i] = it;
        }
        free(x->slots);
        x->slots = slots;
        x->cap = cap;
        return 0;
}

/* Makes room for one more. 0 or -ENOMEM. */
static int index_reserve(Index *x) {
        if ((x->n + 1) * 10 <= x->cap * 7)
                return 0;
        return index_resize(x, x->cap ? x->cap * 2 : TABLE_MIN);
}

/* After index_reserve(). */
static void index_put(Index *x, Item *it) {
        size_t mask = x->cap - 1, i = index_home(x, it) & mask;

        while (x->slots[i])
                i = (i + 1) & mask;
        x->slots[i] = it;
        x->n++;
}

static void index_remove(Index *x, const Item *it) {
        size_t mask = x->cap - 1, i = index_home(x, it) & mask;

        while (x->slots[i] != it)
                i = (i + 1) & mask;
        /* Pull later entries of the probe run into the hole, unless their home slot lies
         * cyclically in (hole, their slot]. */
        for (size_t j = i;;) {
                j = (j + 1) & mask;
                if (!x->slots[j])
                        break;
                size_t home = index_home(x, x->slots[j]) & mask;
                bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
                if (stays)
                        continue;
                x->slots[i] = x->slots[j];
                i = j;
        }
        x->slots[i] = NULL;
        x->n--;

        /* Below 1/8 full: down to at most 1/4 full, so that growing again is far off. */
        if (x->cap > TABLE_MIN && x->n * 8 < x->cap) {
                size_t cap = TABLE_MIN;
                while (cap < x->n * 4)
                        cap *= 2;
                (void) index_resize(x, cap);    /* on failure it stays bigger */
        }
}

typedef struct Table {
        bool stacks;                    /* items are stacks, else strings */
        Index by_key;
        Index by_id;
        uint32_t next_id;
} Table;

static size_t item_cost(const Table *t, const Item *it) {
        return alloc_cost(item_size(t->stacks, it->len));
}

static size_t table_fixed_bytes(const Table *t) {
        return index_bytes(&t->by_key) + index_bytes(&t->by_id);
}

typedef bool (*ItemEq)(const Item *it, const void *key);

static Item *table_find(const Table *t, uint64_t hash, ItemEq eq, const void *key) {
        const Index *x = &t->by_key;

        if (x->cap == 0)
                return NULL;
        size_t mask = x->cap - 1;
        for (size_t i = hash & mask; x->slots[i]; i = (i + 1) & mask)
                if (x->slots[i]->hash == hash && eq(x->slots[i], key))
                        return x->slots[i];
        return NULL;
}

static Item *table_get(const Table *t, uint32_t id) {
        const Index *x = &t->by_id;

        if (x->cap == 0)
                return NULL;
        size_t mask = x->cap - 1;
        for (size_t i = mix64(id) & mask; x->slots[i]; i = (i + 1) & mask)
                if (x->slots[i]->id == id)
                        return x->slots[i];
        return NULL;
}

/* Gives IT an id and puts it in both indexes. 0 or -ENOMEM; IT unchanged on failure. */
static int table_insert(Table *t, Item *it) {
        int r;

        r = index_reserve(&t->by_key);
        if (r < 0)
                return r;
        r = index_reserve(&t->by_id);
        if (r < 0)
                return r;

        /* Ids count up; after 2^32 items they wrap, skipping 0 ("none") and ids still in
         * use (fewer than 2^32 items ever fit in memory at once). */
        do
                it->id = t->next_id++;
        while (it->id == 0 || table_get(t, it->id));

        index_put(&t->by_key, it);
        index_put(&t->by_id, it);
        return 0;
}

static void table_remove(Table *t, Item *it) {
        index_remove(&t->by_key, it);
        index_remove(&t->by_id, it);
}

/* Brings the indexes back to CAPS (by key, by id) after a failed add released all it
 * interned: the same items fit in the sizes they had before. */
static void table_restore(Table *t, const size_t caps[2]) {
        if (t->by_key.cap != caps[0] && caps[0] > 0)
                (void) index_resize(&t->by_key, caps[0]);
        if (t->by_id.cap != caps[1] && caps[1] > 0)
                (void) index_resize(&t->by_id, caps[1]);
}

static void table_done(Table *t) {
        for (size_t i = 0; i < t->by_key.cap; i++)
                free(t->by_key.slots[i]);
        free(t->by_key.slots);
        free(t->by_id.slots);
        *t = (Table) { .stacks = t->stacks, .by_id.by_id = true };
}

/* ---- the history ---- */

typedef struct Record {
        uint64_t start_time_ticks;
        uint64_t since_ns;              /* monotonic time of the first of the consecutive
                                           snapshots that saw this thread so */
        pid_t tid;
        uint32_t stack;                 /* stack id; 0: not captured */
        uint32_t name;                  /* string ids; 0: none */
        uint32_t wait;
        char state;
        bool captured;
} Record;

typedef struct Snap {
        uint64_t realtime_ns;
        uint64_t monotonic_ns;
        size_t n;
        Record records[];               /* sorted by tid */
} Snap;

struct History {
        HistoryLimits limits;
        uint64_t seed;
        Table stacks;
        Table strings;
        Snap **ring;                    /* oldest at ring_head */
        size_t ring_cap;
        size_t ring_head;
        size_t n_snaps;
        size_t n_records;
        size_t bytes_items;
        size_t bytes_snaps;
        uint32_t epoch;                 /* of the current history_add(); never 0 then */
};

static size_t snap_size(size_t n) {
        return sizeof(Snap) + n * sizeof(Record);
}

static Snap *snap_at(const History *h, size_t i) {      /* 0: the oldest */
        return h->ring[(h->ring_head + i) % h->ring_cap];
}

static Snap *newest(const History *h) {
        return h->n_snaps > 0 ? snap_at(h, h->n_snaps - 1) : NULL;
}

static size_t fixed_bytes(const History *h) {
        return alloc_cost(sizeof(History)) +
                (h->ring_cap > 0 ? alloc_cost(h->ring_cap * sizeof(Snap *)) : 0) +
                table_fixed_bytes(&h->stacks) + table_fixed_bytes(&h->strings);
}

size_t history_memory_bytes(const History *h) {
        if (!h)
                return 0;
        return fixed_bytes(h) + h->bytes_items + h->bytes_snaps;
}

int history_new(const HistoryLimits *limits, History **ret) {
        const HistoryLimits *l = limits ? limits : &history_limits_default;

        if (!ret)
                return -EINVAL;
        if (l->max_snapshots == 0 || l->max_bytes == 0 || l->max_threads == 0 ||
            l->max_stack_depth == 0 || l->max_string_bytes == 0)
                return -EINVAL;

        History *h = calloc(1, sizeof(History));
        if (!h)
                return -ENOMEM;
        h->limits = (HistoryLimits) {
                .max_snapshots = MIN(l->max_snapshots, (size_t) SNAPSHOTS_LIMIT),
                .max_bytes = l->max_bytes,
                .max_threads = MIN(l->max_threads, (size_t) THREADS_LIMIT),
                .max_stack_depth = MIN(l->max_stack_depth, (size_t) DEPTH_LIMIT),
                .max_string_bytes = MIN(l->max_string_bytes, (size_t) STRING_LIMIT),
        };
        h->seed = mix64((uint64_t) (uintptr_t) h ^ ((uint64_t) (uintptr_t) &history_limits_default << 17));
        h->stacks = (Table) { .stacks = true, .by_id.by_id = true };
        h->strings = (Table) { .by_id.by_id = true };
        *ret = h;
        return 0;
}

static void release(History *h, Table *t, uint32_t id) {
        if (id == 0)
                return;
        Item *it = table_get(t, id);
        if (--it->refs > 0)
                return;
        h->bytes_items -= item_cost(t, it);
        table_remove(t, it);
        free(it);
}

/* Releases what the records use and frees S; no accounting of S itself. */
static void snap_free(History *h, Snap *s) {
        for (size_t i = 0; i < s->n; i++) {
                release(h, &h->stacks, s->records[i].stack);
                release(h, &h->strings, s->records[i].name);
                release(h, &h->strings, s->records[i].wait);
        }
        free(s);
}

static void drop_oldest(History *h) {
        Snap *s = h->ring[h->ring_head];

        h->ring[h->ring_head] = NULL;
        h->ring_head = (h->ring_head + 1) % h->ring_cap;
        h->n_snaps--;
        h->n_records -= s->n;
        h->bytes_snaps -= alloc_cost(snap_size(s->n));
        snap_free(h, s);
}

History *history_free(History *h) {
        if (!h)
                return NULL;
        while (h->n_snaps > 0)
                drop_oldest(h);
        table_done(&h->stacks);
        table_done(&h->strings);
        free(h->ring);
        free(h);
        return NULL;
}

void history_set_bounds(History *h, size_t max_snapshots, size_t max_bytes) {
        if (max_snapshots > 0)
                h->limits.max_snapshots = MIN(max_snapshots, (size_t) SNAPSHOTS_LIMIT);
        if (max_bytes > 0)
                h->limits.max_bytes = max_bytes;
}

/* Room for one more snapshot without dropping one, unless max_snapshots are kept. */
static int ring_reserve(History *h) {
        if (h->n_snaps < h->ring_cap || h->ring_cap >= h->limits.max_snapshots)
                return 0;

        size_t cap = MIN(MAX(h->ring_cap * 2, (size_t) 8), h->limits.max_snapshots);
        Snap **ring = calloc(cap, sizeof(Snap *));
        if (!ring)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_snaps; i++)
                ring[i] = snap_at(h, i);
        free(h->ring);
        h->ring = ring;
        h->ring_cap = cap;
        h->ring_head = 0;
        return 0;
}

static void ring_push(History *h, Snap *s) {
        if (h->n_snaps == h->ring_cap)         /* max_snapshots: ring_reserve() did not grow */
                drop_oldest(h);
        h->ring[(h->ring_head + h->n_snaps) % h->ring_cap] = s;
        h->n_snaps++;
        h->n_records += s->n;
        h->bytes_snaps += alloc_cost(snap_size(s->n));
}

/* Counts IT into *own once per history_add(): what the new snapshot needs on its own. */
static void count_once(History *h, const Table *t, Item *it, size_t *own) {
        if (it->mark == h->epoch)
                return;
        it->mark = h->epoch;
        *own += item_cost(t, it);
}

static void next_epoch(History *h) {
        if (++h->epoch != 0)
                return;
        /* Wrapped (after 2^32 adds): forget every mark, so none equals the new epoch. */
        const Table *tables[] = { &h->stacks, &h->strings };
        for (size_t k = 0; k < ARRAY_SIZE(tables); k++)
                for (size_t i = 0; i < tables[k]->by_key.cap; i++)
                        if (tables[k]->by_key.slots[i])
                                tables[k]->by_key.slots[i]->mark = 0;
        h->epoch = 1;
}

/* Adds a reference to IT, or -E2BIG when its count is full. */
static int item_ref(Item *it) {
        if (it->refs == UINT32_MAX)
                return -E2BIG;
        it->refs++;
        return 0;
}

/* ---- strings ---- */

typedef struct StringKey {
        const char *s;
        size_t len;
} StringKey;

/* Length of S cut to MAX bytes, without splitting a UTF-8 sequence (so a cut name still
 * prints as the characters it had). Reads at most MAX + 1 bytes of S. */
static size_t string_cut_len(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);

        if (n <= max)
                return n;
        n = max;
        /* s[n] is the first byte left out: if it continues a sequence, leave that
         * sequence's start out too (at most 3 bytes back: invalid UTF-8 stays invalid). */
        for (int k = 0; k < 3 && n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80; k++)
                n--;
        return n;
}

static uint64_t string_hash(uint64_t seed, const char *s, size_t len) {
        uint64_t x = seed ^ len;
        uint64_t w;

        for (; len >= 8; s += 8, len -= 8) {
                memcpy(&w, s, 8);
                x = hash_step(x, w);
        }
        w = 0;
        memcpy(&w, s, len);
        return mix64(hash_step(x, w));
}

static bool string_eq(const Item *it, const void *key) {
        const StringKey *k = key;
        return it->len == k->len && memcmp(it->data, k->s, k->len) == 0;
}

static Item *string_find(const History *h, const char *s, StringKey *ret_key, uint64_t *ret_hash) {
        *ret_key = (StringKey) { s, string_cut_len(s, h->limits.max_string_bytes) };
        *ret_hash = string_hash(h->seed, s, ret_key->len);
        return table_find(&h->strings, *ret_hash, string_eq, ret_key);
}

/* *ret_id: the id of S (cut), 0 for NULL; a reference is taken. */
static int string_intern(History *h, const char *s, uint32_t *ret_id, size_t *own) {
        StringKey k;
        uint64_t hash;
        int r;

        if (!s) {
                *ret_id = 0;
                return 0;
        }
        Item *it = string_find(h, s, &k, &hash);
        if (!it) {
                it = malloc(item_size(false, k.len));
                if (!it)
                        return -ENOMEM;
                *it = (Item) { .hash = hash, .len = (uint32_t) k.len };
                memcpy(it->data, k.s, k.len);
                ((char *) it->data)[k.len] = 0;
                r = table_insert(&h->strings, it);
                if (r < 0) {
                        free(it);
                        return r;
                }
                h->bytes_items += item_cost(&h->strings, it);
        }
        r = item_ref(it);
        if (r < 0)
                return r;
        count_once(h, &h->strings, it, own);
        *ret_id = it->id;
        return 0;
}

/* ---- stacks ---- */

typedef struct StackKey {
        const StackFrame *frames;
        size_t n;
        uint8_t end;
} StackKey;

static uint8_t frame_flags(const StackFrame *f) {
        return (f->exact ? FRAME_EXACT : 0) | (f->signal_frame ? FRAME_SIGNAL : 0) |
                (f->tail_call ? FRAME_TAIL_CALL : 0) | (f->frame_pointer ? FRAME_POINTER : 0);
}

static const uint8_t *stack_bytes(const Item *it) {
        return (const uint8_t *) (it->data + 2 * (size_t) it->len);
}

/* The stack as kept: cut at max_stack_depth, which then ends as STACK_END_DEPTH. */
static StackKey stack_key(const History *h, const Stack *s) {
        StackKey k = { .frames = s->frames, .n = s->frames ? s->n : 0, .end = (uint8_t) s->end };

        if (k.n > h->limits.max_stack_depth) {
                k.n = h->limits.max_stack_depth;
                k.end = STACK_END_DEPTH;
        }
        return k;
}

static uint64_t stack_hash(uint64_t seed, const StackKey *k) {
        uint64_t x = seed ^ k->n ^ ((uint64_t) k->end << 56);

        for (size_t i = 0; i < k->n; i++) {
                x = hash_step(x, k->frames[i].pc);
                x = hash_step(x, (uint64_t) (uintptr_t) k->frames[i].loc ^
                                 ((uint64_t) frame_flags(&k->frames[i]) << 58));
        }
        return mix64(x);
}

static bool stack_eq(const Item *it, const void *key) {
        const StackKey *k = key;
        const uint8_t *bytes = stack_bytes(it);

        if (it->len != k->n || bytes[k->n] != k->end)
                return false;
        for (size_t i = 0; i < k->n; i++)
                if (it->data[i] != k->frames[i].pc ||
                    it->data[k->n + i] != (uint64_t) (uintptr_t) k->frames[i].loc ||
                    bytes[i] != frame_flags(&k->frames[i]))
                        return false;
        return true;
}

static Item *stack_find(const History *h, const Stack *s, StackKey *ret_key, uint64_t *ret_hash) {
        *ret_key = stack_key(h, s);
        *ret_hash = stack_hash(h->seed, ret_key);
        return table_find(&h->stacks, *ret_hash, stack_eq, ret_key);
}

static int stack_intern(History *h, const Stack *s, uint32_t *ret_id, size_t *own) {
        StackKey k;
        uint64_t hash;
        int r;

        Item *it = stack_find(h, s, &k, &hash);
        if (!it) {
                it = malloc(item_size(true, k.n));
                if (!it)
                        return -ENOMEM;
                *it = (Item) { .hash = hash, .len = (uint32_t) k.n };
                uint8_t *bytes = (uint8_t *) (it->data + 2 * k.n);
                for (size_t i = 0; i < k.n; i++) {
                        it->data[i] = k.frames[i].pc;
                        it->data[k.n + i] = (uint64_t) (uintptr_t) k.frames[i].loc;
                        bytes[i] = frame_flags(&k.frames[i]);
                }
                bytes[k.n] = k.end;
                r = table_insert(&h->stacks, it);
                if (r < 0) {
                        free(it);
                        return r;
                }
                h->bytes_items += item_cost(&h->stacks, it);
        }
        r = item_ref(it);
        if (r < 0)
                return r;
        count_once(h, &h->stacks, it, own);
        *ret_id = it->id;
        return 0;
}

/* A Stack with its own copy of the frames. 0 or -ENOMEM. */
static int stack_copy(const Item *it, Stack *ret) {
        size_t n = it->len;
        const uint8_t *bytes = stack_bytes(it);
        StackFrame *f = NULL;

        if (n > 0) {
                f = calloc(n, sizeof(StackFrame));
                if (!f)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                f[i] = (StackFrame) {
                        .pc = it->data[i],
                        .exact = bytes[i] & FRAME_EXACT,
                        .signal_frame = bytes[i] & FRAME_SIGNAL,
                        .tail_call = bytes[i] & FRAME_TAIL_CALL,
                        .frame_pointer = bytes[i] & FRAME_POINTER,
                        .loc = (const SymLoc *) (uintptr_t) it->data[n + i],
                };
        *ret = (Stack) { .frames = f, .n = n, .end = (StackEnd) bytes[n] };
        return 0;
}

/* ---- waits ---- */

static char thread_state(const ThreadRecord *t, const HistoryThreadInfo *info) {
        if (info && info->state)
                return info->state;
        return t->state ? t->state[0] : 0;
}

/* The first record of S for TID with START, or NULL. */
static const Record *find_record(const Snap *s, pid_t tid, uint64_t start) {
        size_t lo = 0, hi = s->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->records[mid].tid < tid)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (; lo < s->n && s->records[lo].tid == tid; lo++)
                if (s->records[lo].start_time_ticks == start)
                        return &s->records[lo];
        return NULL;
}

/* Since when R has been seen so: PREV's time for it when PREV saw the same thread the
 * same way, else NOW. */
static uint64_t since_for(const Snap *prev, const Record *r, uint64_t now) {
        if (!prev || !r->captured)
                return now;
        const Record *p = find_record(prev, r->tid, r->start_time_ticks);
        if (!p || !p->captured || p->stack != r->stack || p->state != r->state || p->wait != r->wait)
                return now;
        return MIN(p->since_ns, now);
}

typedef struct TidIndex {
        pid_t tid;
        uint32_t index;
} TidIndex;

static int tid_index_cmp(const void *a, const void *b) {
        const TidIndex *x = a, *y = b;
        if (x->tid != y->tid)
                return x->tid < y->tid ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* NULL when D is sorted by tid (the usual case), else D's indices in tid order. */
static int tid_order(const ThreadDump *d, uint32_t **ret) {
        bool sorted = true;

        for (size_t i = 1; i < d->n_threads && sorted; i++)
                sorted = d->threads[i - 1].tid <= d->threads[i].tid;
        *ret = NULL;
        if (sorted)
                return 0;

        _cleanup_free_ TidIndex *ti = calloc(d->n_threads, sizeof(TidIndex));
        uint32_t *order = calloc(d->n_threads, sizeof(uint32_t));
        if (!ti || !order) {
                free(order);
                return -ENOMEM;
        }
        for (size_t i = 0; i < d->n_threads; i++)
                ti[i] = (TidIndex) { d->threads[i].tid, (uint32_t) i };
        qsort(ti, d->n_threads, sizeof(TidIndex), tid_index_cmp);
        for (size_t i = 0; i < d->n_threads; i++)
                order[i] = ti[i].index;
        *ret = order;
        return 0;
}

/* The ring's cost once it has room for one more snapshot (see ring_reserve()). */
static size_t ring_bytes_after_reserve(const History *h) {
        size_t cap = h->ring_cap;
        if (h->n_snaps == cap && cap < h->limits.max_snapshots)
                cap = MIN(MAX(cap * 2, (size_t) 8), h->limits.max_snapshots);
        return alloc_cost(cap * sizeof(Snap *));
}

int history_add(History *h, const ThreadDump *d, const HistoryThreadInfo *info,
                uint64_t monotonic_ns, uint64_t *ret_wait_ns) {
        int r;

        if (!h || !d || (d->n_threads > 0 && !d->threads))
                return -EINVAL;
        const Snap *prev = newest(h);
        if (prev && monotonic_ns < prev->monotonic_ns)
                return -EINVAL;

        /* Refuse what cannot fit before allocating anything for it. */
        size_t n = d->n_threads;
        if (n > h->limits.max_threads)
                return -E2BIG;
        size_t own = alloc_cost(snap_size(n));
        if (own > h->limits.max_bytes)
                return -E2BIG;

        _cleanup_free_ uint32_t *order = NULL;
        r = tid_order(d, &order);
        if (r < 0)
                return r;
        Snap *s = calloc(1, snap_size(n));     /* zero ids: releasable at any point */
        if (!s)
                return -ENOMEM;
        s->realtime_ns = d->time_ns;
        s->monotonic_ns = monotonic_ns;
        s->n = n;

        /* On failure everything goes back as it was, the indexes' sizes included. */
        const size_t caps[2][2] = {
                { h->stacks.by_key.cap, h->stacks.by_id.cap },
                { h->strings.by_key.cap, h->strings.by_id.cap },
        };

        next_epoch(h);
        for (size_t k = 0; k < n; k++) {
                size_t i = order ? order[k] : k;
                const ThreadRecord *t = &d->threads[i];
                Record *rec = &s->records[k];

                rec->tid = t->tid;
                rec->start_time_ticks = info ? info[i].start_time_ticks : 0;
                rec->state = thread_state(t, info ? &info[i] : NULL);
                rec->captured = t->error == 0;
                r = string_intern(h, t->name, &rec->name, &own);
                if (r >= 0)
                        r = string_intern(h, t->wait, &rec->wait, &own);
                if (r >= 0 && rec->captured)
                        r = stack_intern(h, &t->stack, &rec->stack, &own);
                if (r < 0)
                        goto fail;
                rec->since_ns = since_for(prev, rec, monotonic_ns);
        }

        /* The snapshot, everything it uses, the indexes as they are now and the ring with
         * room for it: if that alone exceeds the budget, no number of dropped snapshots
         * would make room. */
        size_t ring_now = h->ring_cap > 0 ? alloc_cost(h->ring_cap * sizeof(Snap *)) : 0;
        if (fixed_bytes(h) - ring_now + ring_bytes_after_reserve(h) + own > h->limits.max_bytes) {
                r = -E2BIG;
                goto fail;
        }
        r = ring_reserve(h);
        if (r < 0)
                goto fail;

        ring_push(h, s);
        while (h->n_snaps > 1 && (h->n_snaps > h->limits.max_snapshots ||
                                  history_memory_bytes(h) > h->limits.max_bytes))
                drop_oldest(h);

        if (ret_wait_ns)
                for (size_t k = 0; k < n; k++)
                        ret_wait_ns[order ? order[k] : k] = monotonic_ns - s->records[k].since_ns;
        return 0;

fail:
        snap_free(h, s);
        table_restore(&h->stacks, caps[0]);
        table_restore(&h->strings, caps[1]);
        return r;
}

void history_fill_wait_ns(const History *h, ThreadDump *d, const HistoryThreadInfo *info,
                          uint64_t monotonic_ns) {
        if (!h || !d || (d->n_threads > 0 && !d->threads))
                return;
        const Snap *prev = newest(h);

        for (size_t i = 0; i < d->n_threads; i++) {
                ThreadRecord *t = &d->threads[i];

                t->wait_ns = 0;
                if (!prev || t->error != 0 || monotonic_ns < prev->monotonic_ns)
                        continue;

                /* The record history_add() would make. A stack or wait never interned is
                 * in no kept snapshot: new now. */
                StackKey sk;
                StringKey wk;
                uint64_t hash;
                const Item *stack = stack_find(h, &t->stack, &sk, &hash);
                const Item *wait = t->wait ? string_find(h, t->wait, &wk, &hash) : NULL;
                if (!stack || (t->wait && !wait))
                        continue;
                Record rec = {
                        .tid = t->tid,
                        .start_time_ticks = info ? info[i].start_time_ticks : 0,
                        .stack = stack->id,
                        .wait = wait ? wait->id : 0,
                        .state = thread_state(t, info ? &info[i] : NULL),
                        .captured = true,
                };
                t->wait_ns = monotonic_ns - since_for(prev, &rec, monotonic_ns);
        }
}

/* ---- counts and growth ---- */

/* The index of the oldest snapshot at most WINDOW_NS older than the newest. */
static size_t base_index(const History *h, uint64_t window_ns) {
        uint64_t now = newest(h)->monotonic_ns;
        size_t lo = 0, hi = h->n_snaps - 1;     /* the newest always qualifies */

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (now - snap_at(h, mid)->monotonic_ns <= window_ns)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

int history_thread_count_change(const History *h, uint64_t window_ns, int64_t *ret_delta,
                                uint64_t *ret_covered_ns) {
        if (!h || h->n_snaps == 0)
                return -ENODATA;
        const Snap *last = newest(h), *base = snap_at(h, base_index(h, window_ns));

        if (ret_delta)
                *ret_delta = (int64_t) last->n - (int64_t) base->n;
        if (ret_covered_ns)
                *ret_covered_ns = last->monotonic_ns - base->monotonic_ns;
        return 0;
}

static int u32_cmp(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* The stack ids of the captured threads of S, sorted. */
static int sorted_stack_ids(const Snap *s, uint32_t **ret, size_t *ret_n) {
        uint32_t *ids = calloc(MAX(s->n, (size_t) 1), sizeof(uint32_t));
        size_t n = 0;

        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                if (s->records[i].captured)
                        ids[n++] = s->records[i].stack;
        qsort(ids, n, sizeof(uint32_t), u32_cmp);
        *ret = ids;
        *ret_n = n;
        return 0;
}

static int growth_group_cmp(const void *pa, const void *pb) {
        const HistoryGrowthGroup *a = pa, *b = pb;

        if (a->delta != b->delta)
                return a->delta > b->delta ? -1 : 1;
        for (size_t i = 0; i < MIN(a->stack.n, b->stack.n); i++)
                if (a->stack.frames[i].pc != b->stack.frames[i].pc)
                        return a->stack.frames[i].pc < b->stack.frames[i].pc ? -1 : 1;
        if (a->stack.n != b->stack.n)
                return a->stack.n < b->stack.n ? -1 : 1;
        if (a->stack.end != b->stack.end)
                return a->stack.end < b->stack.end ? -1 : 1;
        return a->stack_id < b->stack_id ? -1 : a->stack_id > b->stack_id;
}

HistoryGrowth *history_growth_free(HistoryGrowth *g) {
        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_groups; i++)
                free(g->groups[i].stack.frames);
        free(g->groups);
        free(g);
        return NULL;
}

int history_growth(const History *h, uint64_t window_ns, HistoryGrowth **ret) {
        _cleanup_free_ uint32_t *now_ids = NULL, *base_ids = NULL;
        size_t n_now, n_base;
        int r;

        if (!ret)
                return -EINVAL;
        if (!h || h->n_snaps == 0)
                return -ENODATA;
        const Snap *last = newest(h), *base = snap_at(h, base_index(h, window_ns));

        r = sorted_stack_ids(last, &now_ids, &n_now);
        if (r < 0)
                return r;
        r = sorted_stack_ids(base, &base_ids, &n_base);
        if (r < 0)
                return r;

        _cleanup_(history_growth_freep) HistoryGrowth *g = calloc(1, sizeof(HistoryGrowth));
        if (!g)
                return -ENOMEM;
        g->time_ns = last->realtime_ns;
        g->window_ns = last->monotonic_ns - base->monotonic_ns;
        g->threads_before = base->n;
        g->threads_after = last->n;
        g->groups = calloc(MAX(n_now, (size_t) 1), sizeof(HistoryGrowthGroup));  /* ≥ groups */
        if (!g->groups)
                return -ENOMEM;

        /* Both id lists sorted: one merge pass counts every stack in both snapshots. */
        for (size_t i = 0, j = 0; i < n_now;) {
                uint32_t id = now_ids[i];
                size_t count = 0, before = 0;

                for (; i < n_now && now_ids[i] == id; i++)
                        count++;
                for (; j < n_base && base_ids[j] < id; j++)
                        ;
                for (; j < n_base && base_ids[j] == id; j++)
                        before++;
                if (count <= before)
                        continue;

                HistoryGrowthGroup *gg = &g->groups[g->n_groups];
                r = stack_copy(table_get(&h->stacks, id), &gg->stack);
                if (r < 0)
                        return r;
                gg->stack_id = id;
                gg->delta = (int64_t) (count - before);
                gg->count = count;
                g->n_groups++;
                g->total += gg->delta;
        }
        qsort(g->groups, g->n_groups, sizeof(HistoryGrowthGroup), growth_group_cmp);

        *ret = TAKE_PTR(g);
        return 0;
}

/* "window: 5m0s, threads 12 -> 226 (+214)" */
static void growth_window_line(const HistoryGrowth *g, Buf *out) {
        char dbuf[32];

        buf_printf(out, "window: %s, threads %zu -> %zu (%+" PRId64 ")",
                   format_go_duration(g->window_ns, dbuf, sizeof dbuf),
                   g->threads_before, g->threads_after,
                   (int64_t) g->threads_after - (int64_t) g->threads_before);
}

void history_growth_write_text(const HistoryGrowth *g, Buf *out) {
        _cleanup_buf_ Buf text = {};

        /* As debug=1: the whole text through the tab writer at once; the lines without a
         * tab end the column blocks, so alignment is per record. */
        buf_printf(&text, "threadgrowth profile: total %" PRId64 "\n# ", g->total);
        growth_window_line(g, &text);
        buf_putc(&text, '\n');
        for (size_t i = 0; i < g->n_groups; i++) {
                const HistoryGrowthGroup *gg = &g->groups[i];

                buf_printf(&text, "%" PRId64 " ", gg->delta);
                stack_write_debug1_key(&text, &gg->stack);
                buf_putc(&text, '\n');
                stack_write_debug1_frames(&text, &gg->stack);
                buf_putc(&text, '\n');
        }
        tabwriter_format(text.data, text.len, out);
}

static int64_t clamp_i64(uint64_t v) {
        return v > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) v;
}

int history_growth_profile(const HistoryGrowth *g, Profile *p) {
        _cleanup_buf_ Buf comment = {};
        int r;

        if (!g || !p || p->n_sample_types > 0 || p->n_samples > 0)
                return -EINVAL;

        r = profile_add_sample_type(p, "threads", "count");
        if (r < 0)
                return r;
        r = profile_set_period(p, "threads", "count", 1);
        if (r < 0)
                return r;
        p->time_nanos = clamp_i64(g->time_ns);
        p->duration_nanos = clamp_i64(g->window_ns);
        growth_window_line(g, &comment);
        r = profile_add_comment(p, comment.data);
        if (r < 0)
                return r;

        for (size_t i = 0; i < g->n_groups; i++) {
                r = profile_add_stack(p, &g->groups[i].stack, &g->groups[i].delta, NULL, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- statistics ---- */

void history_get_stats(const History *h, HistoryStats *ret) {
        if (!ret)
                return;
        *ret = (HistoryStats) {};
        if (!h)
                return;
        *ret = (HistoryStats) {
                .snapshots = h->n_snaps,
                .stacks = h->stacks.by_key.n,
                .strings = h->strings.by_key.n,
                .threads = h->n_records,
                .memory_bytes = history_memory_bytes(h),
                .span_ns = h->n_snaps > 0 ? newest(h)->monotonic_ns - snap_at(h, 0)->monotonic_ns : 0,
        };
}

/* ---- durations ---- */

/* Go's fmtFrac: writes V's last PREC digits as a fraction before W (trailing zeros and a
 * bare point left out); returns the new start, V / 10^PREC in *v. */
static char *frac_before(char *w, uint64_t *v, int prec) {
        bool print = false;

        for (int i = 0; i < prec; i++) {
                char digit = (char) (*v % 10);
                print = print || digit != 0;
                if (print)
                        *--w = (char) ('0' + digit);
                *v /= 10;
        }
        if (print)
                *--w = '.';
        return w;
}

/* Go's fmtInt. */
static char *int_before(char *w, uint64_t v) {
        do {
                *--w = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        return w;
}

const char *format_go_duration(uint64_t ns, char *buf, size_t size) {
        char a[40], *end = a + sizeof a, *w = end;
        uint64_t u = ns;

        if (!buf || size == 0)
                return "";

        /* A port of time.Duration.format, right to left (Go's Duration is signed; ours
         * never is). */
        if (u < NSEC_PER_SEC) {
                int prec;
                *--w = 's';
                if (u == 0)
                        *--w = '0';
                else {
                        if (u < 1000) {
                                prec = 0;
                                *--w = 'n';
                        } else if (u < 1000000) {
                                prec = 3;
                                *--w = (char) 0xb5;     /* U+00B5 µ, as Go writes it */
                                *--w = (char) 0xc2;
                        } else {
                                prec = 6;
                                *--w = 'm';
                        }
                        w = frac_before(w, &u, prec);
                        w = int_before(w, u);
                }
        } else {
                *--w = 's';
                w = frac_before(w, &u, 9);
                w = int_before(w, u % 60);      /* u: whole seconds */
                u /= 60;
                if (u > 0) {
                        *--w = 'm';
                        w = int_before(w, u % 60);
                        u /= 60;
                        if (u > 0) {            /* hours: days differ in length */
                                *--w = 'h';
                                w = int_before(w, u);
                        }
                }
        }
        snprintf(buf, size, "%.*s", (int) (end - w), w);
        return buf;
}

const char *format_short_duration(uint64_t ns, char *buf, size_t size) {
        uint64_t s = ns / NSEC_PER_SEC;
        uint64_t parts[] = { s / 3600, s / 60 % 60, s % 60 };
        const char units[] = { 'h', 'm', 's' };
        size_t len = 0;

        if (!buf || size == 0)
                return "";
        buf[0] = 0;
        if (s == 0) {
                snprintf(buf, size, "0s");
                return buf;
        }
        for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
                if (parts[i] == 0)
                        continue;
                int k = snprintf(buf + len, size - len, "%" PRIu64 "%c", parts[i], units[i]);
                if (k < 0 || (size_t) k >= size - len)
                        break;          /* cut: BUF smaller than documented */
                len += (size_t) k;
        }
        return buf;
}
