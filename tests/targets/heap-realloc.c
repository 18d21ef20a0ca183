/* tests/targets/heap-realloc.c -- realloc-heavy growth and every other allocation call,
 * for heap profile tests: blocks that move, grow in place, get freed through another
 * name than the one that allocated them, and must keep their contents throughout.
 *
 * One thread ("grower"), paced by the clock (it catches up when preempted):
 *   grow_site, every 5 ms: a buffer grown by realloc from 256 bytes to 16 KiB, 256 bytes
 *     at a time, with a small spacer malloc after each step so that most steps cannot
 *     grow in place and the block moves (~100 MiB/s through realloc); one grown buffer in
 *     two (every 10 ms) is kept on a list, the other freed: ~1.6 MiB/s in use at grow_site;
 *   every millisecond, each of calloc_site, reallocarray_site, posix_memalign_site,
 *     aligned_alloc_site, memalign_site and valloc_site allocates 4 KiB with its function
 *     and frees it: alloc space at each, nothing in use.
 * Every block is checked: calloc's is zeroed, aligned ones are aligned, and the bytes
 * written into a buffer survive every realloc (each step checks the whole buffer). A
 * failed check prints `corrupt: WHAT` and exits 3: a heap tracker that hands out or
 * moves blocks wrongly makes this process die, not just a profile look odd.
 *
 * main prints `ready PID`, then `progress GROWN KEPT` every second. Built like the other
 * targets; named functions are noipa, pointers escape through an empty asm.
 * Options: --exit-after-ms N. */

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "target-args.h"
#include "target-clock.h"

#define _noinline_ __attribute__((noinline, noipa))

#define GROW_STEP 256
#define GROW_MAX (16 * 1024)
#define GROW_EVERY_MS 5
#define KEEP_ONE_IN 2
#define SPACER_SIZE 48
#define OTHER_SIZE 4096
#define OTHER_PER_MS 1
#define ALIGNMENT 256

static volatile int side_effect;
static atomic_int running;
static atomic_long grown, kept;
static long page_size;

struct kept_buffer {
        struct kept_buffer *next;
};

static struct kept_buffer *kept_list;

static inline void escape(void *p) {
        __asm__ volatile("" : : "r"(p) : "memory");
}

static void corrupt(const char *what) {
        printf("corrupt: %s\n", what);
        fflush(stdout);
        exit(3);
}

static void *check_alloc(void *p, const char *what) {
        if (!p)
                corrupt(what);
        return p;
}

/* What a buffer holds: pattern + SEED % 256, compared with memcmp (fast enough to check
 * the whole buffer at every step). */
static unsigned char pattern[GROW_MAX + 256];

/* --- grow_site: realloc step by step */

_noinline_ static void *grow_site(unsigned seed) {
        void *spacers[GROW_MAX / GROW_STEP];
        unsigned char *buf = NULL;
        size_t size = 0, n = 0;

        while (size < GROW_MAX) {
                buf = check_alloc(realloc(buf, size + GROW_STEP), "realloc returned NULL");
                if (memcmp(buf, pattern + seed % 256, size) != 0)
                        corrupt("realloc lost the buffer's contents");
                memcpy(buf + size, pattern + seed % 256 + size, GROW_STEP);
                size += GROW_STEP;
                spacers[n++] = check_alloc(malloc(SPACER_SIZE), "malloc returned NULL");
                escape(buf);
        }
        for (size_t i = 0; i < n; i++)
                free(spacers[i]);
        side_effect++;
        return buf;
}

/* --- the other allocation calls */

static void check_zero(const unsigned char *p, size_t n, const char *what) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        corrupt(what);
}

static void check_aligned(const void *p, size_t alignment, const char *what) {
        if ((uintptr_t) p % alignment)
                corrupt(what);
}

static void use(void *p) {
        unsigned char *c = p;

        c[0] = 1;
        c[OTHER_SIZE - 1] = 1;
        escape(p);
}

_noinline_ static void calloc_site(void) {
        unsigned char *p = check_alloc(calloc(OTHER_SIZE / 16, 16), "calloc returned NULL");

        check_zero(p, OTHER_SIZE, "calloc's block is not zeroed");
        use(p);
        free(p);
        side_effect++;
}

_noinline_ static void reallocarray_site(void) {
        void *p = check_alloc(reallocarray(NULL, OTHER_SIZE / 32, 16), "reallocarray returned NULL");

        ((unsigned char *) p)[0] = 0x5a;
        p = check_alloc(reallocarray(p, OTHER_SIZE / 16, 16), "reallocarray returned NULL");
        if (((unsigned char *) p)[0] != 0x5a)
                corrupt("reallocarray lost the block's contents");
        use(p);
        free(p);
        side_effect++;
}

_noinline_ static void posix_memalign_site(void) {
        void *p = NULL;
        int r = posix_memalign(&p, ALIGNMENT, OTHER_SIZE);

        if (r != 0 || !p)
                corrupt("posix_memalign failed");
        check_aligned(p, ALIGNMENT, "posix_memalign's block is misaligned");
        use(p);
        free(p);
        side_effect++;
}

_noinline_ static void aligned_alloc_site(void) {
        void *p = check_alloc(aligned_alloc(ALIGNMENT, OTHER_SIZE), "aligned_alloc returned NULL");

        check_aligned(p, ALIGNMENT, "aligned_alloc's block is misaligned");
        use(p);
        free(p);
        side_effect++;
}

_noinline_ static void memalign_site(void) {
        void *p = check_alloc(memalign(ALIGNMENT, OTHER_SIZE), "memalign returned NULL");

        check_aligned(p, ALIGNMENT, "memalign's block is misaligned");
        use(p);
        free(p);
        side_effect++;
}

_noinline_ static void valloc_site(void) {
        void *p = check_alloc(valloc(OTHER_SIZE), "valloc returned NULL");

        check_aligned(p, (size_t) page_size, "valloc's block is not page-aligned");
        use(p);
        free(p);
        side_effect++;
}

/* --- the thread */

_noinline_ static void grower_loop(void) {
        int64_t start = now_us(), done = 0;

        atomic_fetch_add(&running, 1);
        for (;;) {
                for (int64_t due_ms = due(start, 1, done); due_ms > 0; due_ms--, done++) {
                        for (int i = 0; i < OTHER_PER_MS; i++) {
                                calloc_site();
                                reallocarray_site();
                                posix_memalign_site();
                                aligned_alloc_site();
                                memalign_site();
                                valloc_site();
                        }
                        if (done % GROW_EVERY_MS)
                                continue;
                        long n = atomic_fetch_add(&grown, 1) + 1;
                        void *buf = grow_site((unsigned) n);
                        if (n % KEEP_ONE_IN == 0) {
                                struct kept_buffer *k = buf;
                                k->next = kept_list;
                                kept_list = k;
                                atomic_fetch_add(&kept, 1);
                        } else
                                free(buf);
                }
        }
}

_noinline_ static void *grower_main(void *arg) {
        grower_loop();
        side_effect++;
        return NULL;
}

static void report(void *unused) {
        (void) unused;
        printf("progress %ld %ld\n", atomic_load(&grown), atomic_load(&kept));
}

int main(int argc, char *argv[]) {
        long exit_after_ms;
        int r = target_parse_args(argc, argv, "cprofd-test-heap-realloc", &exit_after_ms);
        pthread_t t;

        if (r >= 0)
                return r;
        page_size = sysconf(_SC_PAGESIZE);
        for (size_t i = 0; i < sizeof pattern; i++)
                pattern[i] = (unsigned char) (i * 31 + i / 251);
        if ((r = pthread_create(&t, NULL, grower_main, NULL)) != 0) {
                fprintf(stderr, "cprofd-test-heap-realloc: pthread_create: %s\n", strerror(r));
                return 1;
        }
        (void) pthread_setname_np(t, "grower");
        while (atomic_load(&running) < 1)
                sleep_us(1000);

        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        report_every_second(now_us(), exit_after_ms, report, NULL);
        return 0;
}
