/* attach/capture-file.c -- write a snapshot to a file and read it back.
 *
 * A saved capture lets the unwinder run (and be tested, and bugs be reported) without the
 * live process. The format is native-endian and versioned; the reader trusts nothing:
 * every count and length is checked against the same limits as a live snapshot. */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "snapshot.h"

static const char capture_magic[8] = "CPRCAP1\n";
#define PATH_LEN_MAX 4096u

static int put(FILE *f, const void *p, size_t n) {
        return n == 0 || fwrite(p, n, 1, f) == 1 ? 0 : -EIO;
}

static int get(FILE *f, void *p, size_t n) {
        return n == 0 || fread(p, n, 1, f) == 1 ? 0 : -EBADMSG;
}

#define PUT(f, v) put(f, &(v), sizeof(v))
#define GET(f, v) get(f, &(v), sizeof(v))

int snapshot_write(const Snapshot *s, FILE *f) {
        int r = put(f, capture_magic, sizeof capture_magic);
        int32_t pid = s->pid;
        uint64_t n_maps = s->maps.n, n_threads = s->n_threads;
        uint8_t flags = (uint8_t) (s->partial | s->exited << 1);
        r = r ?: PUT(f, pid);
        r = r ?: PUT(f, s->time_ns);
        r = r ?: PUT(f, s->duration_ns);
        r = r ?: PUT(f, flags);
        r = r ?: PUT(f, n_maps);
        for (size_t i = 0; r == 0 && i < s->maps.n; i++) {
                const MapEntry *e = &s->maps.entries[i];
                uint8_t perms = (uint8_t) (e->readable | e->writable << 1 | e->executable << 2 | e->shared << 3 |
                                           e->deleted << 4);
                uint32_t path_len = e->path ? (uint32_t) strlen(e->path) : UINT32_MAX;
                r = r ?: PUT(f, e->start);
                r = r ?: PUT(f, e->end);
                r = r ?: PUT(f, e->offset);
                r = r ?: PUT(f, e->inode);
                r = r ?: PUT(f, e->dev_major);
                r = r ?: PUT(f, e->dev_minor);
                r = r ?: PUT(f, perms);
                r = r ?: PUT(f, path_len);
                if (e->path)
                        r = r ?: put(f, e->path, path_len);
        }
        r = r ?: PUT(f, n_threads);
        for (size_t i = 0; r == 0 && i < s->n_threads; i++) {
                const ThreadCapture *t = &s->threads[i];
                int32_t tid = t->tid, error = t->error;
                uint64_t stack_len = t->stack_len;
                uint8_t truncated = t->stack_truncated;
                r = r ?: PUT(f, tid);
                r = r ?: PUT(f, error);
                r = r ?: PUT(f, t->info);
                r = r ?: PUT(f, t->regs);
                r = r ?: PUT(f, t->stack_start);
                r = r ?: PUT(f, stack_len);
                r = r ?: PUT(f, truncated);
                r = r ?: PUT(f, t->pause_ns);
                r = r ?: put(f, t->stack, t->stack_len);
        }
        if (r == 0 && fflush(f) != 0)
                r = -EIO;
        return r;
}

int snapshot_read(FILE *f, Snapshot **ret) {
        char magic[sizeof capture_magic];
        int r = get(f, magic, sizeof magic);
        if (r < 0 || memcmp(magic, capture_magic, sizeof magic) != 0)
                return -EBADMSG;

        Snapshot *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        int32_t pid;
        uint8_t flags;
        uint64_t n_maps, n_threads;
        r = GET(f, pid);
        r = r ?: GET(f, s->time_ns);
        r = r ?: GET(f, s->duration_ns);
        r = r ?: GET(f, flags);
        r = r ?: GET(f, n_maps);
        if (r == 0 && (pid <= 0 || n_maps > MAPS_MAX_ENTRIES))
                r = -EBADMSG;
        if (r == 0) {
                s->pid = pid;
                s->partial = flags & 1;
                s->exited = flags & 2;
                s->maps.entries = calloc(MAX(n_maps, 1u), sizeof(MapEntry));
                if (!s->maps.entries)
                        r = -ENOMEM;
        }
        for (uint64_t i = 0; r == 0 && i < n_maps; i++) {
                MapEntry *e = &s->maps.entries[i];
                uint8_t perms;
                uint32_t path_len;
                r = r ?: GET(f, e->start);
                r = r ?: GET(f, e->end);
                r = r ?: GET(f, e->offset);
                r = r ?: GET(f, e->inode);
                r = r ?: GET(f, e->dev_major);
                r = r ?: GET(f, e->dev_minor);
                r = r ?: GET(f, perms);
                r = r ?: GET(f, path_len);
                if (r < 0)
                        break;
                s->maps.n++;
                if (e->end <= e->start || (i > 0 && e->start < e[-1].end)) {
                        r = -EBADMSG;
                        break;
                }
                e->readable = perms & 1;
                e->writable = perms & 2;
                e->executable = perms & 4;
                e->shared = perms & 8;
                e->deleted = perms & 16;
                if (path_len == UINT32_MAX)
                        continue;
                if (path_len > PATH_LEN_MAX) {
                        r = -EBADMSG;
                        break;
                }
                e->path = calloc(1, path_len + 1);
                if (!e->path) {
                        r = -ENOMEM;
                        break;
                }
                r = get(f, e->path, path_len);
                if (r == 0 && strlen(e->path) != path_len)
                        r = -EBADMSG;
        }
        r = r ?: GET(f, n_threads);
        if (r == 0 && n_threads > THREADS_MAX)
                r = -EBADMSG;
        if (r == 0 && !(s->threads = calloc(MAX(n_threads, 1u), sizeof *s->threads)))
                r = -ENOMEM;
        for (uint64_t i = 0; r == 0 && i < n_threads; i++) {
                ThreadCapture *t = &s->threads[i];
                int32_t tid, error;
                uint64_t stack_len;
                uint8_t truncated;
                r = r ?: GET(f, tid);
                r = r ?: GET(f, error);
                r = r ?: GET(f, t->info);
                r = r ?: GET(f, t->regs);
                r = r ?: GET(f, t->stack_start);
                r = r ?: GET(f, stack_len);
                r = r ?: GET(f, truncated);
                r = r ?: GET(f, t->pause_ns);
                if (r < 0)
                        break;
                if (tid <= 0 || error > 0 || error < -4095 || stack_len > SNAPSHOT_STACK_MAX_LIMIT ||
                    t->stack_start + stack_len < t->stack_start) {
                        r = -EBADMSG;
                        break;
                }
                t->info.name[sizeof t->info.name - 1] = 0;
                t->info.wchan[sizeof t->info.wchan - 1] = 0;
                t->tid = tid;
                t->error = error;
                t->stack_truncated = truncated;
                t->stack = malloc(MAX(stack_len, 1u));
                if (!t->stack) {
                        r = -ENOMEM;
                        break;
                }
                s->n_threads++;
                t->stack_len = stack_len;
                r = get(f, t->stack, stack_len);
                if (error == 0)
                        s->n_captured++;
        }
        if (r < 0) {
                snapshot_free(s);
                return r;
        }
        *ret = s;
        return 0;
}
