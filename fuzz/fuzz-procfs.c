/* fuzz/fuzz-procfs.c -- libFuzzer target: the /proc parsers of attach/procfs.c (through
 * procfs-internal.h) and the saved-capture reader of attach/capture-file.c.
 *
 * Every input goes to every parser, each reading it as the file it parses: maps (then
 * maps_find and maps_copy on the result, which must keep the entries sorted and disjoint),
 * stat, syscall, wchan, comm (at most the THREAD_NAME_MAX bytes procfs_read_comm reads),
 * status; and snapshot_read() through fmemopen(). A capture that reads must write back
 * and read again to the same snapshot. Output buffers are heap blocks of their exact
 * size, so a one-byte overflow is ASan's to see. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procfs-internal.h"
#include "snapshot.h"

static char *nul_terminated(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}

static void fuzz_maps(const uint8_t *data, size_t size) {
        char *text = nul_terminated(data, size);
        Maps m, copy;

        if (procfs_parse_maps(text, &m) == 0) {
                if (m.n == 0 || m.n > MAPS_MAX_ENTRIES)
                        abort();
                for (size_t i = 0; i < m.n; i++) {
                        const MapEntry *e = &m.entries[i];
                        if (e->end <= e->start || (i > 0 && e->start < m.entries[i - 1].end))
                                abort();
                        if (maps_find(&m, e->start) != e || maps_find(&m, e->end - 1) != e)
                                abort();
                        if (e->path)
                                (void) strlen(e->path);
                }
                (void) maps_find(&m, 0);
                (void) maps_find(&m, UINT64_MAX);
                if (maps_copy(&m, &copy) < 0)
                        abort();
                if (copy.n != m.n)
                        abort();
                for (size_t i = 0; i < m.n; i++)
                        if (!!copy.entries[i].path != !!m.entries[i].path ||
                            (m.entries[i].path && strcmp(copy.entries[i].path, m.entries[i].path) != 0))
                                abort();
                maps_done(&copy);
                maps_done(&m);
        }
        free(text);
}

static void fuzz_thread_files(const uint8_t *data, size_t size) {
        char *text = nul_terminated(data, size);
        ThreadInfo info = { .syscall = -1 };

        if (procfs_parse_stat(text, &info) == 0) {
                if (strnlen(info.name, sizeof info.name) == sizeof info.name)
                        abort();
                (void) strlen(thread_state_description(info.state));
        }
        int nr = procfs_parse_syscall(text);
        if (nr < -1 || nr >= 4096)
                abort();
        const char *name = syscall_name(nr);
        if (name)
                (void) strlen(name);
        SyscallPlace place;
        procfs_parse_syscall_place(text, &place);
        if (place.known && place.nr != nr)
                abort();
        uint64_t run_ns;
        (void) procfs_parse_schedstat(text, &run_ns);

        char *wchan = malloc(64);
        if (!wchan)
                abort();
        procfs_parse_wchan(text, wchan);
        if (strnlen(wchan, 64) == 64)
                abort();
        free(wchan);

        pid_t tracer;
        if (procfs_parse_tracer(text, &tracer) == 0 && tracer < 0)
                abort();
        pid_t nspid;
        if (procfs_parse_nspid(text, &nspid) == 0 && nspid <= 0)
                abort();
        free(text);

        /* comm: what procfs_read_comm() reads is at most THREAD_NAME_MAX bytes. */
        size_t len = size < THREAD_NAME_MAX ? size : THREAD_NAME_MAX;
        char *comm = nul_terminated(data, len);
        char *ret = malloc(THREAD_NAME_MAX);
        if (!ret)
                abort();
        procfs_parse_comm(comm, len, ret);
        if (strnlen(ret, THREAD_NAME_MAX) == THREAD_NAME_MAX)
                abort();
        free(ret);
        free(comm);
}

static bool same_snapshot(const Snapshot *a, const Snapshot *b) {
        if (a->pid != b->pid || a->time_ns != b->time_ns || a->duration_ns != b->duration_ns ||
            a->partial != b->partial || a->exited != b->exited || a->maps.n != b->maps.n ||
            a->n_threads != b->n_threads || a->n_captured != b->n_captured)
                return false;
        for (size_t i = 0; i < a->maps.n; i++) {
                const MapEntry *x = &a->maps.entries[i], *y = &b->maps.entries[i];
                if (x->start != y->start || x->end != y->end || x->offset != y->offset ||
                    x->inode != y->inode || !!x->path != !!y->path ||
                    (x->path && strcmp(x->path, y->path) != 0))
                        return false;
        }
        for (size_t i = 0; i < a->n_threads; i++) {
                const ThreadCapture *x = &a->threads[i], *y = &b->threads[i];
                if (x->tid != y->tid || x->error != y->error || x->stack_start != y->stack_start ||
                    x->stack_len != y->stack_len || memcmp(&x->regs, &y->regs, sizeof x->regs) != 0 ||
                    (x->stack_len && memcmp(x->stack, y->stack, x->stack_len) != 0))
                        return false;
        }
        return true;
}

static void fuzz_capture(const uint8_t *data, size_t size) {
        Snapshot *s = NULL, *again = NULL;
        char *buf = NULL;
        size_t buf_size = 0;

        if (size == 0)
                return;         /* fmemopen() wants a size */
        FILE *f = fmemopen((void *) data, size, "r");
        if (!f)
                abort();
        int r = snapshot_read(f, &s);
        fclose(f);
        if (r < 0)
                return;

        for (size_t i = 0; i < s->n_threads; i++) {
                const ThreadCapture *t = &s->threads[i];
                if (strnlen(t->info.name, sizeof t->info.name) == sizeof t->info.name ||
                    strnlen(t->info.wchan, sizeof t->info.wchan) == sizeof t->info.wchan)
                        abort();
                (void) thread_state_description(t->info.state);
                (void) syscall_name(t->info.syscall);
        }

        f = open_memstream(&buf, &buf_size);
        if (!f || snapshot_write(s, f) < 0)
                abort();
        fclose(f);
        f = fmemopen(buf, buf_size, "r");
        if (!f || snapshot_read(f, &again) < 0)
                abort();
        fclose(f);
        if (!same_snapshot(s, again))
                abort();
        free(buf);
        snapshot_free(again);
        snapshot_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_maps(data, size);
        fuzz_thread_files(data, size);
        fuzz_capture(data, size);
        return 0;
}
