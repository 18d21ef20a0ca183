/* fuzz/fuzz-waits.c -- libFuzzer target: profile/waits.c on object bytes a target could
 * hold anywhere (a program's own futex words, torn or foreign memory) and on wait-for
 * graphs of any shape.
 *
 * Input: byte 0 the wait kind, byte 1 the futex command, bytes 2..5 the expected value,
 * bytes 6..7 the futex word's offset into the window, the rest the window's bytes (at a
 * fixed fake address). Checks: the window asked for is bounded and holds the futex word;
 * a decoded owner is a tid the kernel could have made (1..FUTEX_TID_MASK), never from
 * bytes that were not read; a rwlock read-locked has readers; every text is one line.
 * Then the same bytes as a wait-for graph (each byte a thread's holder index): every
 * cycle found is a cycle, and no thread is in two. */
#include <linux/futex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waits.h"

#define FAKE_BASE UINT64_C(0x7f0000001000)

static void check_text(const ThreadWait *w) {
        Buf b = {};
        thread_wait_write(w, &b);
        if (memchr(buf_str(&b), '\n', b.len))
                abort();
        buf_done(&b);
}

static void fuzz_decode(const uint8_t *data, size_t size) {
        if (size < 8)
                return;
        WaitSite site = { .kind = (WaitKind) (data[0] % (WAIT_KIND_ONCE + 1)), .futex_cmd = data[1] & 15u };
        memcpy(&site.futex_val, data + 2, 4);
        uint16_t off;
        memcpy(&off, data + 6, 2);
        const uint8_t *bytes = data + 8;
        size_t len = size - 8;
        site.futex = FAKE_BASE + (off % 256u) * 4u;
        MemoryWindow w = wait_site_window(&site);
        if (w.len > WAIT_WINDOW_MAX || (w.len > 0 && (site.futex < w.addr || site.futex + 4 > w.addr + w.len)))
                abort();
        /* The bytes lie at FAKE_BASE: the window may be inside, across an edge or outside. */
        WaitObject o;
        wait_object_decode(&site, bytes, FAKE_BASE, len, &o);
        if (o.holder == WAIT_HOLDER_THREAD && (o.owner <= 0 || o.owner > (pid_t) FUTEX_TID_MASK))
                abort();
        if (o.holder == WAIT_HOLDER_READERS && o.readers == 0)
                abort();
        wait_object_decode(&site, NULL, FAKE_BASE, 0, &o);
        if (o.holder == WAIT_HOLDER_THREAD && site.kind != WAIT_KIND_NONE)
                abort();        /* an owner out of nothing */
        ThreadWait tw = { .object = o, .name = "&x", .holder_index = SIZE_MAX };
        check_text(&tw);
}

static void fuzz_graph(const uint8_t *data, size_t size) {
        size_t n = size < 64 ? size : 64;
        ThreadWait waits[64];
        const ThreadWait *p[64];
        for (size_t i = 0; i < n; i++) {
                waits[i] = (ThreadWait) { .object = { .kind = WAIT_KIND_MUTEX,
                                                      .holder = data[i] & 0x80 ? WAIT_HOLDER_UNKNOWN : WAIT_HOLDER_THREAD },
                                          .holder_index = data[i] % 64u < n ? data[i] % 64u : SIZE_MAX };
                p[i] = data[i] == 0xff ? NULL : &waits[i];
        }
        WaitCycle *c;
        size_t nc;
        if (wait_cycles_find(p, n, &c, &nc) < 0)
                return;
        uint8_t seen[64] = {};
        for (size_t k = 0; k < nc; k++) {
                if (c[k].n == 0 || c[k].n > n)
                        abort();
                for (size_t j = 0; j < c[k].n; j++) {
                        size_t t = c[k].threads[j], next = c[k].threads[(j + 1) % c[k].n];
                        if (t >= n || seen[t]++ || !thread_wait_is_edge(p[t]) || p[t]->holder_index != next)
                                abort();
                }
        }
        wait_cycles_free(c, nc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_decode(data, size);
        fuzz_graph(data, size);
        return 0;
}
