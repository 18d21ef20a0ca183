/* fuzz/fuzz-unwind.c -- libFuzzer target: address_space_unwind() on registers and stack
 * bytes from the input, over the fuzzer's own modules, so that every CFI lookup hits real
 * code (the fuzzer binary, libc, ld.so, the vdso…) the way a real capture's would.
 *
 * Input: one flags byte, 17 register words, then the stack copy (all little-endian):
 *
 *   flags     bit 0: stack_truncated; bit 1: rip as given; bit 2: rsp as given
 *   regs      rax rdx rcx rbx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip
 *   stack     the bytes of ThreadCapture.stack (stack_len = what is left)
 *
 * A short input is padded with zeros. Absolute addresses would mean nothing from one run
 * to the next (ASLR), so every register and every 8-byte word of the stack is relocated
 * by its top byte:
 *
 *   0xaa MM OOOOOOOOOOOO   module MM (modulo their number), at offset O from its load base:
 *                          0 the fuzzer executable, 1 libc, 2 ld.so, 3 [vdso], then the
 *                          other modules with executable code in maps order
 *   0x5a .. ..OOOOOOOO     the stack copy, at offset O from its start
 *   anything else          as is
 *
 * The copy is placed at the top of the fuzzer's real [stack] mapping, so the unwinder sees
 * the stack mapping a live capture would have (and its end). Unless the flags say
 * otherwise, rip is moved into the executable code of a module (module = bits 48-55,
 * offset modulo its size) and rsp into the copy. What is checked: no crash, no leak, an
 * end in bounded time (libFuzzer's -timeout), at least one and at most UNWIND_MAX_DEPTH
 * unwound frames (tail-call frames aside), frame 0 at rip, every frame symbolized.
 *
 * The Symbolizer lives across inputs, as in the daemon (caches keyed by module and pc); it
 * is rebuilt when its caches grow large, which never changes an answer.
 *
 * Seeds: with FUZZ_UNWIND_SEED_DIR set, LLVMFuzzerInitialize() writes captures of the
 * fuzzer's own stack in that input format to that directory: nested calls, calls through
 * code whose CFI is in .debug_frame only (fuzz-unwind-frames.c), inside libc's twalk,
 * inside a signal handler. They are module-relative, so valid for this binary and this
 * libc. With FUZZ_UNWIND_VERBOSE set, every input's frames are printed. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <search.h>
#include <string.h>
#include <sys/user.h>
#include <ucontext.h>
#include <unistd.h>

#include "macro.h"
#include "procfs.h"
#include "symbolizer.h"

#define N_REGS 17
#define HEADER_SIZE (1 + 8 * N_REGS)
#define TAG_TEXT UINT64_C(0xaa)
#define TAG_STACK UINT64_C(0x5a)
#define MODULES_MAX 64
#define LOCATIONS_RESET 200000          /* cached pcs before the symbolizer is rebuilt */
#define SEED_STACK_MAX (48u * 1024u)

typedef struct FuzzModule {
        const char *path;
        uint64_t base, end;             /* load base (file offset 0), end of its last mapping */
        uint64_t text_start, text_end;  /* hull of its executable mappings */
} FuzzModule;

static FuzzModule modules[MODULES_MAX];
static size_t n_modules;
static uint64_t stack_map_end;
static Maps maps;
static Symbolizer *symbolizer;
static AddressSpace *address_space;
static bool verbose;

/* ---- setup ---- */

static int module_rank(const char *path, const char *exe) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strcmp(path, exe) == 0)
                return 0;
        if (strncmp(base, "libc.so", 7) == 0)
                return 1;
        if (strncmp(base, "ld-linux", 8) == 0)
                return 2;
        if (strcmp(path, "[vdso]") == 0)
                return 3;
        return 4;
}

static void build_symbolizer(void) {
        if (symbolizer_new(&symbolizer) < 0 || address_space_new(symbolizer, getpid(), &address_space) < 0 ||
            address_space_update(address_space, &maps) < 0)
                abort();
}

static void setup(void) {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0)
                abort();
        exe[n] = 0;

        if (procfs_read_maps(getpid(), &maps) < 0)
                abort();
        FuzzModule found[MODULES_MAX];
        size_t n_found = 0;
        for (size_t i = 0; i < maps.n; i++) {
                const MapEntry *e = &maps.entries[i];
                if (e->path && strcmp(e->path, "[stack]") == 0)
                        stack_map_end = e->end;
                if (!e->path || (e->path[0] != '/' && strcmp(e->path, "[vdso]") != 0))
                        continue;
                FuzzModule *m = n_found > 0 && strcmp(found[n_found - 1].path, e->path) == 0 ?
                        &found[n_found - 1] : NULL;
                if (!m) {
                        if (n_found == MODULES_MAX)
                                break;
                        m = &found[n_found++];
                        *m = (FuzzModule) { .path = e->path, .base = e->start - e->offset };
                }
                m->end = e->end;
                if (e->executable) {
                        if (!m->text_start || e->start < m->text_start)
                                m->text_start = e->start;
                        if (e->end > m->text_end)
                                m->text_end = e->end;
                }
        }
        for (int rank = 0; rank <= 4; rank++)
                for (size_t i = 0; i < n_found; i++)
                        if (found[i].text_end > found[i].text_start &&
                            module_rank(found[i].path, exe) == rank)
                                modules[n_modules++] = found[i];
        if (n_modules == 0 || stack_map_end == 0)
                abort();
        build_symbolizer();
}

/* ---- the input format ---- */

static uint64_t get_word(const uint8_t *p, size_t avail) {
        uint8_t b[8] = {};
        memcpy(b, p, MIN(avail, sizeof b));
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | b[i];
        return v;
}

static uint64_t relocate(uint64_t w, uint64_t stack_start) {
        switch (w >> 56) {
        case TAG_TEXT: {
                const FuzzModule *m = &modules[(w >> 48 & 0xff) % n_modules];
                return m->base + (w & UINT64_C(0xffffffffffff));
        }
        case TAG_STACK:
                return stack_start + (w & UINT64_C(0xffffffff));
        default:
                return w;
        }
}

/* The field of user_regs_struct for input register I (DWARF order). */
static unsigned long long *reg_field(struct user_regs_struct *r, int i) {
        unsigned long long *f[N_REGS] = {
                &r->rax, &r->rdx, &r->rcx, &r->rbx, &r->rsi, &r->rdi, &r->rbp, &r->rsp,
                &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15, &r->rip,
        };
        return f[i];
}

static void print_stack(const Stack *st) {
        fprintf(stderr, "unwound %zu frames, end %s\n", st->n, stack_end_to_string(st->end));
        for (size_t i = 0; i < st->n; i++) {
                const SymLoc *l = st->frames[i].loc;
                fprintf(stderr, "  #%zu 0x%llx %s %s+0x%llx%s\n", i,
                        (unsigned long long) st->frames[i].pc,
                        l->n_frames ? l->frames[l->n_frames - 1].function ?: "??" : "??",
                        l->module ?: "?", (unsigned long long) l->module_offset,
                        st->frames[i].tail_call ? " (tail call)" : "");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t header[HEADER_SIZE] = {};
        memcpy(header, data, MIN(size, sizeof header));
        const uint8_t flags = header[0];
        const size_t len = size > HEADER_SIZE ? size - HEADER_SIZE : 0;

        /* The copy in a buffer of its exact size: an overread is ASan's to see. */
        uint8_t *stack = malloc(MAX(len, (size_t) 1));
        if (!stack)
                abort();
        if (len > 0)
                memcpy(stack, data + HEADER_SIZE, len);
        const uint64_t stack_start = (stack_map_end - len) & ~UINT64_C(15);
        for (size_t off = 0; off + 8 <= len; off += 8) {
                uint64_t w = relocate(get_word(stack + off, 8), stack_start);
                memcpy(stack + off, &w, 8);
        }

        ThreadCapture t = {
                .tid = 1,
                .stack_start = stack_start,
                .stack = stack,
                .stack_len = len,
                .stack_truncated = flags & 1,
        };
        for (int i = 0; i < N_REGS; i++)
                *reg_field(&t.regs, i) = relocate(get_word(header + 1 + 8 * i, 8), stack_start);

        const uint64_t raw_rip = get_word(header + 1 + 8 * 16, 8);
        const uint64_t raw_rsp = get_word(header + 1 + 8 * 7, 8);
        if (!(flags & 2) && raw_rip >> 56 != TAG_TEXT) {
                const FuzzModule *m = &modules[(raw_rip >> 48 & 0xff) % n_modules];
                t.regs.rip = m->text_start +
                        (raw_rip & UINT64_C(0xffffffffffff)) % (m->text_end - m->text_start);
        }
        if (!(flags & 4) && raw_rsp >> 56 != TAG_STACK)
                t.regs.rsp = stack_start + raw_rsp % (len + 1);

        Stack st = {};
        if (address_space_unwind(address_space, &t, &st) < 0)
                abort();
        if (verbose)
                print_stack(&st);

        size_t physical = 0;
        if (st.n < 1 || st.frames[0].pc != t.regs.rip || st.end > STACK_END_ERROR)
                abort();
        for (size_t i = 0; i < st.n; i++) {
                if (!st.frames[i].loc)
                        abort();
                physical += !st.frames[i].tail_call;
        }
        if (physical > UNWIND_MAX_DEPTH)
                abort();
        free(st.frames);
        free(stack);

        SymbolizerStats stats;
        symbolizer_get_stats(symbolizer, &stats);
        if (stats.locations > LOCATIONS_RESET) {
                address_space = address_space_free(address_space);
                symbolizer = symbolizer_free(symbolizer);
                build_symbolizer();
        }
        return 0;
}

/* ---- seeds: captures of our own stack, written in the input format ---- */

static const char *seed_dir;

/* W as the input encodes it: module- or stack-relative when it points into one. */
static uint64_t encode_word(uint64_t w, uint64_t cap_start, uint64_t cap_end) {
        if (w >= cap_start && w < cap_end)
                return TAG_STACK << 56 | (w - cap_start);
        for (size_t i = 0; i < n_modules; i++)
                if (w >= modules[i].base && w < modules[i].end)
                        return TAG_TEXT << 56 | (uint64_t) i << 48 | (w - modules[i].base);
        return w;
}

static void put_word(FILE *f, uint64_t v) {
        for (int i = 0; i < 8; i++)
                fputc((int) (v >> (8 * i) & 0xff), f);
}

/* Not instrumented: it reads the live stack, ASan's redzones between locals included. */
__attribute__((no_sanitize_address)) static _noinline_ void capture(const char *name) {
        static const int greg[N_REGS] = {
                REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
                REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
        };
        ucontext_t uc;
        char path[4200];

        if (getcontext(&uc) < 0)
                abort();
        const uint64_t rsp = (uint64_t) uc.uc_mcontext.gregs[REG_RSP];
        const uint64_t cap_start = rsp - 128;   /* the red zone, as snapshots copy it */
        const uint64_t cap_end = MIN(stack_map_end, cap_start + SEED_STACK_MAX);
        const size_t len = (size_t) (cap_end - cap_start);
        uint8_t *copy = malloc(len);
        if (!copy)
                abort();
        for (size_t off = 0; off + 8 <= len; off += 8) {
                volatile const uint64_t *p = (const uint64_t *) (uintptr_t) (cap_start + off);
                uint64_t w = *p;
                memcpy(copy + off, &w, 8);
        }

        snprintf(path, sizeof path, "%s/seed-%s", seed_dir, name);
        FILE *f = fopen(path, "we");
        if (!f) {
                perror(path);
                abort();
        }
        fputc(0, f);
        for (int i = 0; i < N_REGS; i++)
                put_word(f, encode_word((uint64_t) uc.uc_mcontext.gregs[greg[i]], cap_start, cap_end));
        for (size_t off = 0; off + 8 <= len; off += 8) {
                uint64_t w;
                memcpy(&w, copy + off, 8);
                put_word(f, encode_word(w, cap_start, cap_end));
        }
        if (fclose(f) != 0)
                abort();
        free(copy);
        fprintf(stderr, "fuzz-unwind: wrote %s\n", path);
}

static _noinline_ void nested(int depth) {
        if (depth == 0)
                capture("nested");
        else
                nested(depth - 1);
        __asm__ volatile("" ::: "memory");      /* not a tail call */
}

static int compare_ints(const void *a, const void *b) {
        return *(const int *) a - *(const int *) b;
}

/* Called from inside libc (ASan intercepts qsort, not twalk). */
static void visit_and_capture(const void *node, VISIT which, int depth) {
        static bool done;
        if (!done && depth > 0) {
                done = true;
                capture("twalk");
        }
}

/* fuzz-unwind-frames.c: calls FN from DEPTH + 1 frames described by .debug_frame only. */
void fuzz_unwind_debug_frame_call(int depth, void (*fn)(void));

static void capture_debug_frame(void) {
        capture("debug-frame");
}

static void free_nothing(void *p) {
}

static void on_signal(int sig) {
        capture("signal");
}

static _noinline_ void write_seeds(void) {
        static int v[4] = { 2, 1, 3, 4 };
        struct sigaction sa = { .sa_handler = on_signal }, old;
        void *root = NULL;

        nested(5);
        fuzz_unwind_debug_frame_call(2, capture_debug_frame);
        for (size_t i = 0; i < ARRAY_SIZE(v); i++)
                if (!tsearch(&v[i], &root, compare_ints))
                        abort();
        twalk(root, visit_and_capture);
        tdestroy(root, free_nothing);
        if (sigaction(SIGUSR1, &sa, &old) < 0)
                abort();
        raise(SIGUSR1);
        (void) sigaction(SIGUSR1, &old, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        setup();
        verbose = getenv("FUZZ_UNWIND_VERBOSE") != NULL;
        seed_dir = getenv("FUZZ_UNWIND_SEED_DIR");
        if (seed_dir && *seed_dir)
                write_seeds();
        return 0;
}
