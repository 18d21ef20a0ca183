/* symbolize/jitmap.c -- perf maps and jitdump files of JIT runtimes: parsed, indexed,
 * followed as they grow. See jitmap.h.
 *
 * A table keeps its symbols in the order they came (later wins) and, for lookups, a
 * sorted list of disjoint segments, each naming the latest symbol covering it. The
 * segments are rebuilt lazily at the first lookup after symbols were added, from the old
 * segments plus the new symbols only (the old ones are all older), by a sweep over their
 * starts with a max-heap of the ranges open there: O(n log n) per rebuild, at most one
 * per refresh. */
#include <byteswap.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jitmap.h"
#include "macro.h"

typedef struct JitEntry {
        uint64_t start, end;
        const char *name;
} JitEntry;

typedef struct JitSegment {
        uint64_t start, end;
        uint32_t entry;                 /* index into entries: its age */
} JitSegment;

/* Names live in chunks that never move, so a name handed out stays where it is. */
typedef struct NameChunk {
        struct NameChunk *next;
        size_t used, cap;
        char data[];
} NameChunk;

#define NAME_CHUNK_SIZE (UINT64_C(64) << 10)

struct JitTable {
        JitEntry *entries;
        size_t n, cap;
        size_t n_indexed;               /* entries[0, n_indexed) are in segs */
        JitSegment *segs;
        size_t n_segs;
        NameChunk *chunks;
        uint64_t name_bytes;
        uint64_t generation;
};

/* ---- tables ---- */

int jit_table_new(JitTable **ret) {
        JitTable *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

void jit_table_reset(JitTable *t) {
        for (NameChunk *c = t->chunks, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        free(t->entries);
        free(t->segs);
        uint64_t generation = t->generation + 1;
        *t = (JitTable) { .generation = generation };
}

JitTable *jit_table_free(JitTable *t) {
        if (!t)
                return NULL;
        jit_table_reset(t);
        free(t);
        return NULL;
}

size_t jit_table_count(const JitTable *t) {
        return t->n;
}

uint64_t jit_table_generation(const JitTable *t) {
        return t->generation;
}

static const char *name_store(JitTable *t, const char *name, size_t len) {
        NameChunk *c = t->chunks;
        if (!c || c->cap - c->used < len + 1) {
                c = malloc(sizeof *c + NAME_CHUNK_SIZE);
                if (!c)
                        return NULL;
                c->next = t->chunks;
                c->used = 0;
                c->cap = NAME_CHUNK_SIZE;
                t->chunks = c;
        }
        char *s = c->data + c->used;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) name[i];
                s[i] = ch < 0x20 || ch == 0x7f ? '?' : (char) ch;
        }
        s[len] = 0;
        c->used += len + 1;
        t->name_bytes += len + 1;
        return s;
}

/* As jit_table_add(); *RET_NAME gets the stored name when added. */
static int table_add(JitTable *t, uint64_t start, uint64_t size, const char *name, size_t name_len,
                     const char **ret_name) {
        uint64_t end;

        if (size == 0 || __builtin_add_overflow(start, size, &end) || name_len == 0)
                return 0;
        if (name_len > JIT_NAME_MAX)
                name_len = JIT_NAME_MAX;
        if (t->n >= JIT_SYMBOLS_MAX || t->name_bytes + name_len + 1 > JIT_NAME_BYTES_MAX)
                return 0;
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 256;
                JitEntry *e = reallocarray(t->entries, cap, sizeof *e);
                if (!e)
                        return -ENOMEM;
                t->entries = e;
                t->cap = cap;
        }
        const char *stored = name_store(t, name, name_len);
        if (!stored)
                return -ENOMEM;
        t->entries[t->n++] = (JitEntry) { start, end, stored };
        t->generation++;
        if (ret_name)
                *ret_name = stored;
        return 1;
}

int jit_table_add(JitTable *t, uint64_t start, uint64_t size, const char *name, size_t name_len) {
        return table_add(t, start, size, name, name_len, NULL);
}

static int segment_start_cmp(const void *a, const void *b) {
        const JitSegment *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start;
}

static void heap_push(JitSegment *h, size_t *n, JitSegment s) {
        size_t i = (*n)++;
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (h[parent].entry >= s.entry)
                        break;
                h[i] = h[parent];
                i = parent;
        }
        h[i] = s;
}

static void heap_pop(JitSegment *h, size_t *n) {
        JitSegment last = h[--*n];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= *n)
                        break;
                if (c + 1 < *n && h[c + 1].entry > h[c].entry)
                        c++;
                if (h[c].entry <= last.entry)
                        break;
                h[i] = h[c];
                i = c;
        }
        if (*n > 0)
                h[i] = last;
}

static int index_build(JitTable *t) {
        size_t m = t->n_segs + (t->n - t->n_indexed);
        _cleanup_free_ JitSegment *items = reallocarray(NULL, m, sizeof *items);
        _cleanup_free_ JitSegment *heap = reallocarray(NULL, m, sizeof *heap);
        JitSegment *out = reallocarray(NULL, 2 * m, sizeof *out);
        if (!items || !heap || !out) {
                free(out);
                return -ENOMEM;
        }
        if (t->n_segs > 0)
                memcpy(items, t->segs, t->n_segs * sizeof *items);
        for (size_t i = t->n_indexed, k = t->n_segs; i < t->n; i++, k++)
                items[k] = (JitSegment) { t->entries[i].start, t->entries[i].end, (uint32_t) i };
        qsort(items, m, sizeof *items, segment_start_cmp);

        /* At each boundary the open range that came last names the segment up to the next
         * boundary: its end, or the next start. Ranges that ended are dropped once on top. */
        size_t i = 0, nh = 0, no = 0;
        uint64_t pos = 0;
        while (i < m || nh > 0) {
                if (nh == 0)
                        pos = items[i].start;
                while (i < m && items[i].start <= pos)
                        heap_push(heap, &nh, items[i++]);
                while (nh > 0 && heap[0].end <= pos)
                        heap_pop(heap, &nh);
                if (nh == 0)
                        continue;
                uint64_t next = heap[0].end;
                if (i < m && items[i].start < next)
                        next = items[i].start;
                if (no > 0 && out[no - 1].end == pos && out[no - 1].entry == heap[0].entry)
                        out[no - 1].end = next;
                else
                        out[no++] = (JitSegment) { pos, next, heap[0].entry };
                pos = next;
        }

        free(t->segs);
        t->segs = out;
        t->n_segs = no;
        t->n_indexed = t->n;
        return 0;
}

bool jit_table_lookup(JitTable *t, uint64_t addr, JitSymbol *ret) {
        if (t->n_indexed != t->n && index_build(t) < 0)
                return false;
        size_t lo = 0, hi = t->n_segs;          /* first segment starting after ADDR */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (t->segs[mid].start <= addr)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0 || addr >= t->segs[lo - 1].end)
                return false;
        const JitEntry *e = &t->entries[t->segs[lo - 1].entry];
        *ret = (JitSymbol) { e->start, e->end - e->start, e->name };
        return true;
}

/* ---- perf maps ---- */

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool parse_hex(const char **p, const char *end, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        size_t digits = 0;

        if (end - s >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                s += 2;
        for (; s < end; s++, digits++) {
                char c = *s;
                unsigned d;
                if (c >= '0' && c <= '9')
                        d = (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        d = (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        d = (unsigned) (c - 'A' + 10);
                else
                        break;
                if (v >> 60)
                        return false;           /* more than 64 bits */
                v = v << 4 | d;
        }
        if (digits == 0)
                return false;
        *p = s;
        *ret = v;
        return true;
}

/* 1 added, 0 malformed or ignored, -ENOMEM. */
static int perf_map_line(JitTable *t, const char *s, const char *end) {
        uint64_t start, size;

        while (end > s && (end[-1] == '\r' || is_blank(end[-1])))
                end--;
        while (s < end && is_blank(*s))
                s++;
        if (!parse_hex(&s, end, &start) || s == end || !is_blank(*s))
                return 0;
        while (s < end && is_blank(*s))
                s++;
        if (!parse_hex(&s, end, &size) || s == end || !is_blank(*s))
                return 0;
        while (s < end && is_blank(*s))
                s++;
        return jit_table_add(t, start, size, s, (size_t) (end - s));
}

ssize_t perf_map_parse(PerfMapParser *p, JitTable *t, const char *data, size_t len) {
        size_t pos = 0;

        while (pos < len) {
                const char *line = data + pos;
                const char *nl = memchr(line, '\n', len - pos);
                if (!nl) {
                        if (len - pos < PERF_MAP_LINE_MAX && !p->skipping)
                                break;          /* the rest of the line is still to come */
                        if (!p->skipping)
                                p->bad_lines++;
                        p->skipping = true;
                        pos = len;
                        break;
                }
                size_t n = (size_t) (nl - line);
                pos += n + 1;
                if (p->skipping) {
                        p->skipping = false;
                        continue;
                }
                p->lines++;
                if (n >= PERF_MAP_LINE_MAX) {
                        p->bad_lines++;
                        continue;
                }
                int r = perf_map_line(t, line, nl);
                if (r < 0)
                        return r;
                if (r == 0)
                        p->bad_lines++;
        }
        return (ssize_t) pos;
}

/* ---- jitdump ---- */

#define JITDUMP_MAGIC UINT32_C(0x4A695444)     /* "JiTD" */
#define JITDUMP_HEADER_SIZE 40
#define JITDUMP_HEADER_MAX 4096                 /* a header claiming more is not one */
#define JITDUMP_RECORD_HEAD 16                  /* id, total_size, timestamp */

enum {
        JIT_CODE_LOAD = 0,
        JIT_CODE_MOVE = 1,
        JIT_CODE_DEBUG_INFO = 2,
        JIT_CODE_CLOSE = 3,
        JIT_CODE_UNWINDING_INFO = 4,
};

#define CODE_LOAD_FIXED (JITDUMP_RECORD_HEAD + 40)     /* pid tid vma code_addr size index */
#define CODE_MOVE_FIXED (JITDUMP_RECORD_HEAD + 48)     /* pid tid vma old new size index */

static uint32_t rd32(const JitdumpParser *p, const uint8_t *b) {
        uint32_t v;
        memcpy(&v, b, sizeof v);
        return p->swapped ? bswap_32(v) : v;
}

static uint64_t rd64(const JitdumpParser *p, const uint8_t *b) {
        uint64_t v;
        memcpy(&v, b, sizeof v);
        return p->swapped ? bswap_64(v) : v;
}

void jitdump_parser_init(JitdumpParser *p) {
        *p = (JitdumpParser) {};
}

void jitdump_parser_done(JitdumpParser *p) {
        u64map_done(&p->code_names, NULL);
        jitdump_parser_init(p);
}

static int64_t jitdump_header(JitdumpParser *p, const uint8_t *data, size_t len) {
        uint32_t magic;

        if (len < JITDUMP_HEADER_SIZE)
                return 0;
        memcpy(&magic, data, sizeof magic);
        if (magic == JITDUMP_MAGIC)
                p->swapped = false;
        else if (bswap_32(magic) == JITDUMP_MAGIC)
                p->swapped = true;
        else {
                p->state = JITDUMP_BAD;
                return 0;
        }
        p->version = rd32(p, data + 4);
        uint32_t size = rd32(p, data + 8);
        if (size < JITDUMP_HEADER_SIZE || size > JITDUMP_HEADER_MAX) {
                p->state = JITDUMP_BAD;
                return 0;
        }
        p->state = JITDUMP_RECORDS;
        return size;
}

/* One record at DATA (AVAIL bytes of it there, TOTAL its size): 1 parsed, 0 its head is
 * not all there yet, -EBADMSG it cannot be right, -ENOMEM. */
static int jitdump_record(JitdumpParser *p, JitTable *t, uint32_t id, const uint8_t *data,
                          size_t avail, uint32_t total) {
        const char *name;
        int r;

        switch (id) {
        case JIT_CODE_LOAD: {
                if (total <= CODE_LOAD_FIXED)
                        return -EBADMSG;
                if (avail < CODE_LOAD_FIXED)
                        return 0;
                uint64_t code_addr = rd64(p, data + 32);
                uint64_t code_size = rd64(p, data + 40);
                uint64_t code_index = rd64(p, data + 48);
                if (code_size >= total - CODE_LOAD_FIXED)
                        return -EBADMSG;        /* no room left for a name */
                size_t name_room = (size_t) (total - CODE_LOAD_FIXED - code_size);
                size_t keep = name_room < JIT_NAME_MAX ? name_room : JIT_NAME_MAX;
                if (avail < CODE_LOAD_FIXED + keep)
                        return 0;
                const uint8_t *s = data + CODE_LOAD_FIXED;
                const uint8_t *nul = memchr(s, 0, keep);
                name = NULL;
                r = table_add(t, code_addr, code_size, (const char *) s,
                              nul ? (size_t) (nul - s) : keep, &name);
                if (r < 0)
                        return r;
                p->loads++;
                if (r > 0)
                        (void) u64map_put(&p->code_names, code_index, (void *) name);
                return 1;
        }
        case JIT_CODE_MOVE: {
                if (total < CODE_MOVE_FIXED)
                        return -EBADMSG;
                if (avail < CODE_MOVE_FIXED)
                        return 0;
                uint64_t new_addr = rd64(p, data + 40);
                uint64_t code_size = rd64(p, data + 48);
                uint64_t code_index = rd64(p, data + 56);
                p->moves++;
                name = u64map_get(&p->code_names, code_index);
                if (!name)
                        return 1;               /* moves code we never saw loaded */
                r = table_add(t, new_addr, code_size, name, strlen(name), &name);
                if (r < 0)
                        return r;
                if (r > 0)
                        (void) u64map_put(&p->code_names, code_index, (void *) name);
                return 1;
        }
        case JIT_CODE_CLOSE:
                p->state = JITDUMP_DONE;
                return 1;
        default:                                /* debug and unwinding info, newer kinds */
                return 1;
        }
}

int64_t jitdump_parse(JitdumpParser *p, JitTable *t, const uint8_t *data, size_t len) {
        uint64_t pos = 0;

        if (p->state == JITDUMP_HEADER) {
                int64_t n = jitdump_header(p, data, len);
                if (n <= 0)
                        return 0;
                pos = (uint64_t) n;
        }
        while (p->state == JITDUMP_RECORDS && pos < len && len - pos >= JITDUMP_RECORD_HEAD) {
                const uint8_t *rec = data + pos;
                uint32_t id = rd32(p, rec);
                uint32_t total = rd32(p, rec + 4);
                if (total < JITDUMP_RECORD_HEAD || total > JITDUMP_RECORD_MAX) {
                        p->state = JITDUMP_BAD;
                        break;
                }
                int r = jitdump_record(p, t, id, rec, len - pos, total);
                if (r == -EBADMSG) {
                        p->state = JITDUMP_BAD;
                        break;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                p->records++;
                pos += total;
        }
        return (int64_t) pos;
}

/* ---- files ---- */

#define JIT_READ_BUFFER (256 * 1024)    /* > PERF_MAP_LINE_MAX and any record head */

struct JitFile {
        JitFormat format;
        char *open_path, *name;
        uid_t owner;
        JitTable *table;
        PerfMapParser perf_map;
        JitdumpParser jitdump;
        bool seen;
        dev_t dev;
        ino_t ino;
        off_t size;                     /* as of the last read to the end; -1: read on */
        off_t seen_size;                /* at the last refresh: less now means truncated */
        struct timespec mtime;
        uint64_t offset;                /* where parsing goes on */
        uint8_t *buffer;
};

int jit_file_new(JitFormat format, const char *open_path, const char *name, uid_t owner,
                 JitFile **ret) {
        JitFile *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->format = format;
        f->owner = owner;
        f->open_path = strdup(open_path);
        f->name = strdup(name);
        if (!f->open_path || !f->name || jit_table_new(&f->table) < 0) {
                jit_file_free(f);
                return -ENOMEM;
        }
        jitdump_parser_init(&f->jitdump);
        f->size = -1;
        *ret = f;
        return 0;
}

JitFile *jit_file_free(JitFile *f) {
        if (!f)
                return NULL;
        jitdump_parser_done(&f->jitdump);
        jit_table_free(f->table);
        free(f->buffer);
        free(f->open_path);
        free(f->name);
        free(f);
        return NULL;
}

static void jit_file_restart(JitFile *f) {
        jit_table_reset(f->table);
        jitdump_parser_done(&f->jitdump);
        f->perf_map = (PerfMapParser) {};
        f->offset = 0;
        f->size = -1;
        f->seen_size = 0;
}

int jit_file_refresh(JitFile *f) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t generation = jit_table_generation(f->table);
        struct stat st;

        /* O_NONBLOCK: a target may put a FIFO there. */
        fd = open(f->open_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if (st.st_uid != f->owner && st.st_uid != 0)
                return -EPERM;
        if (f->seen && (st.st_dev != f->dev || st.st_ino != f->ino ||
                        st.st_size < f->seen_size))
                jit_file_restart(f);            /* replaced or truncated */
        f->seen = true;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->seen_size = st.st_size;
        if (st.st_size == f->size && st.st_mtim.tv_sec == f->mtime.tv_sec &&
            st.st_mtim.tv_nsec == f->mtime.tv_nsec)
                return 0;

        if (!f->buffer && !(f->buffer = malloc(JIT_READ_BUFFER)))
                return -ENOMEM;
        uint64_t end = (uint64_t) st.st_size, budget = JIT_FILE_READ_MAX;
        bool stalled = false;
        while (f->offset < end && budget > 0) {
                if (f->format == JIT_FORMAT_JITDUMP && f->jitdump.state >= JITDUMP_DONE)
                        break;
                size_t want = end - f->offset < JIT_READ_BUFFER ? (size_t) (end - f->offset) : JIT_READ_BUFFER;
                ssize_t n = pread(fd, f->buffer, want, (off_t) f->offset);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                int64_t used;
                if (f->format == JIT_FORMAT_PERF_MAP)
                        used = perf_map_parse(&f->perf_map, f->table, (const char *) f->buffer, (size_t) n);
                else
                        used = jitdump_parse(&f->jitdump, f->table, f->buffer, (size_t) n);
                if (used < 0)
                        return (int) used;
                if (used == 0) {
                        stalled = true;         /* a line or record still being written */
                        break;
                }
                f->offset += (uint64_t) used;
                budget -= (uint64_t) n < budget ? (uint64_t) n : budget;
        }
        /* Read through (or stopped at a part still being written): nothing more until the
         * file changes. Else the next refresh reads on. */
        if (stalled || f->offset >= end ||
            (f->format == JIT_FORMAT_JITDUMP && f->jitdump.state >= JITDUMP_DONE)) {
                f->size = st.st_size;
                f->mtime = st.st_mtim;
        } else
                f->size = -1;
        return jit_table_generation(f->table) != generation;
}

bool jit_file_lookup(JitFile *f, uint64_t addr, JitSymbol *ret) {
        return jit_table_lookup(f->table, addr, ret);
}

const char *jit_file_name(const JitFile *f) {
        return f->name;
}

bool jit_file_seen(const JitFile *f) {
        return f->seen;
}

uint64_t jit_file_generation(const JitFile *f) {
        return jit_table_generation(f->table);
}
