/* tests/test-symbolize.c -- unit tests of symbolize/: unwinding our own stack from a copy
 * (no frame pointers), libc symbols with file:line from libc6-dbg, truncated copies,
 * corrupt module files, and a saved capture of the threads target unwound after the
 * process is gone. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "macro.h"
#include "demangle.h"
#include "procfs.h"
#include "self-address-space.h"
#include "snapshot.h"
#include "symbolizer.h"
#include "threads-target.h"
#include "tiny-test.h"

#define _test_fn_ __attribute__((noinline, noipa, optimize("omit-frame-pointer")))

static volatile int side_effect;
static volatile uintptr_t middle_local;         /* address of a local of sym_middle() */

DEFINE_POINTER_CLEANUP(Symbolizer, symbolizer_free);
DEFINE_POINTER_CLEANUP(AddressSpace, address_space_free);

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* ---- capturing ourselves ---- */

__attribute__((noinline)) static void regs_from_ucontext(const ucontext_t *uc, struct user_regs_struct *r) {
        const greg_t *g = uc->uc_mcontext.gregs;
        *r = (struct user_regs_struct) {
                .rax = (uint64_t) g[REG_RAX], .rbx = (uint64_t) g[REG_RBX],
                .rcx = (uint64_t) g[REG_RCX], .rdx = (uint64_t) g[REG_RDX],
                .rsi = (uint64_t) g[REG_RSI], .rdi = (uint64_t) g[REG_RDI],
                .rbp = (uint64_t) g[REG_RBP], .rsp = (uint64_t) g[REG_RSP],
                .r8 = (uint64_t) g[REG_R8], .r9 = (uint64_t) g[REG_R9],
                .r10 = (uint64_t) g[REG_R10], .r11 = (uint64_t) g[REG_R11],
                .r12 = (uint64_t) g[REG_R12], .r13 = (uint64_t) g[REG_R13],
                .r14 = (uint64_t) g[REG_R14], .r15 = (uint64_t) g[REG_R15],
                .rip = (uint64_t) g[REG_RIP],
        };
}

/* Registers as getcontext() saw them (rip: just after its call, in this function) and a
 * copy of the stack from there up to the end of the stack mapping (at most 256 KiB). */
_test_fn_ static void capture_self(ThreadCapture *t) {
        static ucontext_t uc;
        Maps maps;

        getcontext(&uc);
        regs_from_ucontext(&uc, &t->regs);
        t->tid = gettid();
        t->stack_start = t->regs.rsp - SNAPSHOT_RED_ZONE;

        ASSERT_EQ(procfs_read_maps(getpid(), &maps), 0);
        const MapEntry *e = maps_find(&maps, t->regs.rsp);
        ASSERT_TRUE(e != NULL);
        size_t len = (size_t) MIN(e->end - t->stack_start, (uint64_t) SNAPSHOT_STACK_MAX_DEFAULT);
        t->stack_truncated = e->end - t->stack_start > len;
        maps_done(&maps);

        /* Copied by the kernel, as attach/ does: a memcpy() of our live stack would read
         * the red zones a sanitizer puts between locals. */
        t->stack = malloc(len);
        ASSERT_TRUE(t->stack != NULL);
        struct iovec local = { .iov_base = t->stack, .iov_len = len };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) t->stack_start, .iov_len = len };
        ASSERT_EQ(process_vm_readv(getpid(), &local, 1, &remote, 1, 0), (ssize_t) len);
        t->stack_len = len;
        side_effect++;
}

_test_fn_ static void sym_leaf(ThreadCapture *t) {
        capture_self(t);
        side_effect++;
}

static inline __attribute__((always_inline)) void sym_inlined(ThreadCapture *t) {
        sym_leaf(t);
        side_effect++;
}

_test_fn_ static void sym_middle(ThreadCapture *t) {
        volatile char here = 0;
        middle_local = (uintptr_t) &here;
        sym_inlined(t);
        side_effect += here;
}

_test_fn_ static void sym_outer(ThreadCapture *t) {
        sym_middle(t);
        side_effect++;
}

/* df_trampoline(t, fn) calls fn(t). Its CFI exists only in .debug_frame (no .eh_frame
 * entry), written by hand: the unwinder must step it with libdw's CFI and restart
 * libunwind from the recovered registers. */
void df_trampoline(ThreadCapture *t, void (*fn)(ThreadCapture *));
__asm__(
        ".text\n"
        ".globl df_trampoline\n"
        ".type df_trampoline, @function\n"
        "df_trampoline:\n"
        "        push %rbx\n"                  /* 1 byte: CFA = rsp+16, rbx at CFA-16 */
        "        sub $16, %rsp\n"              /* 4 bytes: CFA = rsp+32 */
        "        mov $0x1234, %ebx\n"          /* clobber the callee-saved rbx */
        "        call *%rsi\n"
        "        add $16, %rsp\n"
        "        pop %rbx\n"
        "        ret\n"
        ".Ldf_end:\n"
        ".size df_trampoline, .-df_trampoline\n"
        ".section .debug_frame,\"\",@progbits\n"
        ".Ldf_cie:\n"
        "        .long .Ldf_cie_end - .Ldf_cie_id\n"
        ".Ldf_cie_id:\n"
        "        .long 0xffffffff\n"           /* CIE id */
        "        .byte 1\n"                    /* version */
        "        .string \"\"\n"             /* augmentation */
        "        .uleb128 1\n"                 /* code alignment */
        "        .sleb128 -8\n"                /* data alignment */
        "        .byte 16\n"                   /* return address column */
        "        .byte 0x0c, 7, 8\n"           /* DW_CFA_def_cfa rsp+8 */
        "        .byte 0x90, 1\n"              /* DW_CFA_offset r16 at CFA-8 */
        "        .balign 8, 0\n"
        ".Ldf_cie_end:\n"
        "        .long .Ldf_fde_end - .Ldf_fde_cie\n"
        ".Ldf_fde_cie:\n"
        "        .long .Ldf_cie\n"
        "        .quad df_trampoline\n"
        "        .quad .Ldf_end - df_trampoline\n"
        "        .byte 0x41\n"                 /* DW_CFA_advance_loc 1 */
        "        .byte 0x0e, 16\n"             /* DW_CFA_def_cfa_offset 16 */
        "        .byte 0x83, 2\n"              /* DW_CFA_offset rbx at CFA-16 */
        "        .byte 0x44\n"                 /* DW_CFA_advance_loc 4 */
        "        .byte 0x0e, 32\n"             /* DW_CFA_def_cfa_offset 32 */
        "        .balign 8, 0\n"
        ".Ldf_fde_end:\n"
        ".text\n");

static volatile uint64_t df_rbx;

_test_fn_ static void df_caller(ThreadCapture *t) {
        uint64_t saved;
        /* A value in rbx that must survive df_trampoline's clobber, i.e. be recovered
         * from its .debug_frame rule. */
        __asm__ volatile("mov %%rbx, %0" : "=r"(saved));
        df_rbx = saved;
        df_trampoline(t, capture_self);
        side_effect++;
}

static Symbolizer *new_symbolizer(void) {
        Symbolizer *s = NULL;
        ASSERT_EQ(symbolizer_new(&s), 0);
        return s;
}

/* All frames of a stack, inline frames expanded, innermost first. */
static size_t flatten(const Stack *st, const Frame **ret, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < st->n; i++)
                for (size_t j = 0; j < st->frames[i].loc->n_frames && n < max; j++)
                        ret[n++] = &st->frames[i].loc->frames[j];
        return n;
}

static void dump_stack(const char *title, const Stack *st) {
        fprintf(stderr, "%s: %zu frames, end %s\n", title, st->n, stack_end_to_string(st->end));
        for (size_t i = 0; i < st->n; i++) {
                const StackFrame *f = &st->frames[i];
                const SymLoc *l = f->loc;
                if (l->n_frames == 0)
                        fprintf(stderr, "  #%zu %#" PRIx64 "%s%s %s+%#" PRIx64 "\n", i, f->pc,
                                f->exact ? " exact" : "", f->signal_frame ? " signal" : "",
                                l->module ? l->module : "?", l->module_offset);
                for (size_t j = 0; j < l->n_frames; j++)
                        fprintf(stderr, "  #%zu %#" PRIx64 "%s%s %s%s at %s:%u (%s+%#" PRIx64 ")\n",
                                i, f->pc, f->exact ? " exact" : "",
                                f->signal_frame ? " signal" : "",
                                l->frames[j].function ? l->frames[j].function : "??",
                                l->frames[j].inlined ? " [inlined]" : "",
                                l->frames[j].file ? l->frames[j].file : "?", l->frames[j].line,
                                l->module ? l->module : "?", l->module_offset);
        }
}

/* Index in F[0..N) where NAMES[0..K) appear consecutively (by function), or -1. A name
 * starting with '+' must be an inlined frame. */
static long find_sequence(const Frame **f, size_t n, const char *const *names, size_t k) {
        for (size_t i = 0; i + k <= n; i++) {
                size_t j;
                for (j = 0; j < k; j++) {
                        const char *want = names[j];
                        bool inl = want[0] == '+';
                        if (inl)
                                want++;
                        if (!f[i + j]->function || strcmp(f[i + j]->function, want) != 0 ||
                            f[i + j]->inlined != inl)
                                break;
                }
                if (j == k)
                        return (long) i;
        }
        return -1;
}

static void assert_sequence(const char *title, const Stack *st, const char *const *names, size_t k) {
        const Frame *f[UNWIND_MAX_DEPTH * 4];
        size_t n = flatten(st, f, ARRAY_SIZE(f));
        if (find_sequence(f, n, names, k) < 0) {
                dump_stack(title, st);
                TINY_FAIL("%s: sequence starting with %s not found", title, names[0]);
        }
}

TEST(unwinds_own_stack_without_frame_pointers) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);
        ThreadCapture t = {};
        Stack st = {};

        sym_outer(&t);
        ASSERT_EQ(address_space_unwind(as, &t, &st), 0);

        const Frame *f[256];
        size_t n = flatten(&st, f, ARRAY_SIZE(f));
        static const char *const want[] = {
                "capture_self", "sym_leaf", "+sym_inlined", "sym_middle", "sym_outer",
                "test_unwinds_own_stack_without_frame_pointers",
        };
        if (n < ARRAY_SIZE(want) || find_sequence(f, n, want, ARRAY_SIZE(want)) != 0) {
                dump_stack("self", &st);
                TINY_FAIL("unexpected stack");
        }
        ASSERT_TRUE(st.frames[0].exact);
        ASSERT_FALSE(st.frames[1].exact);
        ASSERT_EQ(st.frames[0].loc->n_frames, 1);
        /* sym_inlined and sym_middle share one physical frame and its entry. */
        ASSERT_EQ(st.frames[2].loc->n_frames, 2);
        ASSERT_TRUE(st.frames[2].loc->frames[0].inlined);
        ASSERT_EQ(st.frames[2].loc->frames[0].entry, st.frames[2].loc->frames[1].entry);
        ASSERT_CONTAINS(st.frames[2].loc->frames[1].file, "test-symbolize.c");
        ASSERT_GT(st.frames[2].loc->frames[1].line, 0);
        /* The main thread's stack is complete down to _start. */
        ASSERT_EQ(st.end, STACK_END_COMPLETE);
        ASSERT_STREQ(f[n - 1]->function, "_start");

        /* Warm: the same capture again, timed. */
        uint64_t t0 = now_ns();
        const int rounds = 1000;
        for (int i = 0; i < rounds; i++) {
                Stack again = {};
                ASSERT_EQ(address_space_unwind(as, &t, &again), 0);
                ASSERT_EQ(again.n, st.n);
                free(again.frames);
        }
        uint64_t dt = now_ns() - t0;
        fprintf(stderr, "warm unwind+symbolize of a %zu-frame stack: %.1f us\n", st.n,
                (double) dt / rounds / 1000.0);

        SymbolizerStats stats;
        symbolizer_get_stats(s, &stats);
        ASSERT_GE(stats.modules, 2);
        ASSERT_GT(stats.lookup_hits, 0);

        free(st.frames);
        free(t.stack);
}

TEST(unwinds_through_debug_frame_only_code) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);
        ThreadCapture t = {};
        Stack st = {};

        df_caller(&t);
        ASSERT_EQ(address_space_unwind(as, &t, &st), 0);
        const Frame *f[256];
        size_t n = flatten(&st, f, ARRAY_SIZE(f));
        static const char *const want[] = {
                "capture_self", "df_trampoline", "df_caller",
                "test_unwinds_through_debug_frame_only_code",
        };
        if (find_sequence(f, n, want, ARRAY_SIZE(want)) != 0 || st.end != STACK_END_COMPLETE) {
                dump_stack("debug_frame", &st);
                TINY_FAIL("unexpected stack");
        }
        free(st.frames);
        free(t.stack);
}

/* As gdb 13 names these symbols without DWARF (`info symbol` on binaries holding them). */
static void assert_demangles(const char *mangled, const char *want) {
        char *got = demangle(mangled);
        if (!want && got)
                TINY_FAIL("%s demangled to %s", mangled, got);
        if (want && (!got || strcmp(got, want) != 0))
                TINY_FAIL("%s: want %s, got %s", mangled, want, got ? got : "(null)");
        free(got);
}

TEST(demangles_cpp_and_rust_names_as_gdb) {
        assert_demangles("_ZN4node21SpinEventLoopInternalEPNS_11EnvironmentE",
                         "node::SpinEventLoopInternal(node::Environment*)");
        assert_demangles("_ZN2hoL16throw_with_guardEv.cold", "ho::throw_with_guard() [clone .cold]");
        assert_demangles("_ZN1q1fESs",
                         "q::f(std::basic_string<char, std::char_traits<char>, std::allocator<char> >)");
        assert_demangles("_ZN7mangled12park_forever17ha6d047061bef5c27E",
                         "mangled::park_forever::ha6d047061bef5c27");
        assert_demangles("_RNvCslCsyN4QNIJ2_7mangled12park_forever",
                         "mangled[fbd34d07559ed312]::park_forever");
        assert_demangles("main", NULL);
        assert_demangles("__GI___libc_read", NULL);
        assert_demangles("_Z", NULL);
        assert_demangles("_RNvC", NULL);
}

TEST(resolves_libc_function_with_file_and_line) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);

        /* libc's own read (not a sanitizer's interceptor of it). */
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        ASSERT_TRUE(libc != NULL);
        void *read_addr = dlsym(libc, "read");
        ASSERT_TRUE(read_addr != NULL);
        dlclose(libc);
        const SymLoc *l = address_space_resolve(as, (uint64_t) (uintptr_t) read_addr + 4);
        ASSERT_CONTAINS(l->module, "libc.so");
        ASSERT_TRUE(l->build_id != NULL);
        ASSERT_GE(l->n_frames, 1);
        const Frame *phys = &l->frames[l->n_frames - 1];
        /* As gdb prints it: glibc's internal alias is its DWARF linkage name. */
        ASSERT_STREQ(phys->function, "__GI___libc_read");
        ASSERT_FALSE(phys->inlined);
        ASSERT_CONTAINS(l->frames[0].file, "sysdeps/unix/sysv/linux/read.c");
        ASSERT_GT(l->frames[0].line, 0);
        ASSERT_EQ(phys->entry, l->module_offset - 4);

        /* Cached: the same pointer again. */
        ASSERT_TRUE(address_space_resolve(as, (uint64_t) (uintptr_t) read_addr + 4) == l);

        /* A pc in no mapping. */
        const SymLoc *none = address_space_resolve(as, 8);
        ASSERT_TRUE(none->module == NULL);
        ASSERT_EQ(none->n_frames, 0);
}

TEST(truncated_copy_ends_with_copy) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);
        ThreadCapture t = {};
        Stack st = {};

        sym_outer(&t);
        /* Cut the copy inside sym_middle's frame: its return address is beyond. */
        ASSERT_GT(middle_local, t.stack_start);
        t.stack_len = middle_local - t.stack_start;
        t.stack_truncated = true;

        ASSERT_EQ(address_space_unwind(as, &t, &st), 0);
        if (st.end != STACK_END_COPY || st.n != 3)
                dump_stack("truncated", &st);
        ASSERT_EQ(st.end, STACK_END_COPY);
        ASSERT_TRUE(stack_is_truncated(&st));
        ASSERT_EQ(st.n, 3);
        ASSERT_STREQ(st.frames[0].loc->frames[0].function, "capture_self");
        ASSERT_STREQ(st.frames[1].loc->frames[0].function, "sym_leaf");
        ASSERT_STREQ(st.frames[2].loc->frames[1].function, "sym_middle");
        free(st.frames);

        /* No stack at all: the leaf only. */
        t.stack_len = 0;
        ASSERT_EQ(address_space_unwind(as, &t, &st), 0);
        ASSERT_EQ(st.n, 1);
        ASSERT_EQ(st.end, STACK_END_COPY);
        free(st.frames);

        /* No registers. */
        t.error = -ESRCH;
        ASSERT_EQ(address_space_unwind(as, &t, &st), -EINVAL);
        free(t.stack);
}

/* ---- corrupt modules ---- */

#ifndef FUZZ_ROUNDS
#define FUZZ_ROUNDS 8
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void *read_file(const char *path, size_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        off_t size = lseek(fd, 0, SEEK_END);
        ASSERT_GT(size, 0);
        void *buf = malloc((size_t) size);
        ASSERT_TRUE(buf != NULL);
        ASSERT_EQ(pread(fd, buf, (size_t) size, 0), size);
        close(fd);
        *ret_size = (size_t) size;
        return buf;
}

/* Writes DATA to a new file in /tmp and maps it executable. */
static void *map_file(const void *data, size_t size, char path[static 64], size_t *ret_map_size) {
        strcpy(path, "/tmp/cprofd-test-module-XXXXXX");
        int fd = mkstemp(path);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, data, size), (ssize_t) size);
        size_t map_size = (size + 4095) & ~(size_t) 4095;
        void *p = mmap(NULL, map_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        ASSERT_TRUE(p != MAP_FAILED);
        close(fd);
        *ret_map_size = map_size;
        return p;
}

static const uint8_t build_id_note[] = { 4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, 'G', 'N', 'U', 0 };

/* Offset of the NT_GNU_BUILD_ID note (20-byte id) in the first page of an ELF file. */
static size_t build_id_offset(const uint8_t *data, size_t size) {
        const uint8_t *p = memmem(data, MIN(size, (size_t) 4096), build_id_note, sizeof build_id_note);
        ASSERT_TRUE(p != NULL);
        return (size_t) (p - data);
}

/* Rewrites that note (whatever fuzzing did to it) with an id of our own. */
static void set_build_id(uint8_t *data, size_t off, uint8_t tag, int round) {
        memcpy(data + off, build_id_note, sizeof build_id_note);
        memset(data + off + sizeof build_id_note, tag, 20);
        memcpy(data + off + sizeof build_id_note + 1, &round, sizeof round);
}

/* Corrupts N random bytes of the ELF file P past its ELF and program headers (so the
 * file still parses and libelf/libdw get to read the damage), sparing the section headers
 * when KEEP_SHDRS. */
static void fuzz_elf(uint8_t *p, size_t size, size_t n, bool keep_shdrs) {
        Elf64_Ehdr eh;
        memcpy(&eh, p, sizeof eh);
        uint64_t lo = eh.e_phoff + (uint64_t) eh.e_phnum * eh.e_phentsize;
        uint64_t sh_lo = eh.e_shoff, sh_hi = eh.e_shoff + (uint64_t) eh.e_shnum * eh.e_shentsize;
        ASSERT_LT(lo, size);
        for (size_t i = 0; i < n; i++) {
                uint64_t off = lo + rng() % (size - lo);
                if (keep_shdrs && off >= sh_lo && off < sh_hi)
                        continue;
                p[off] = (uint8_t) rng();
        }
}

static size_t fuzz_frames;      /* locations that still got frames from fuzzed files */

static void check_garbage_module(Symbolizer *s, const void *data, size_t size, bool expect_no_frames) {
        char path[64];
        size_t map_size;
        uint8_t *p = map_file(data, size, path, &map_size);
        _cleanup_(address_space_freep) AddressSpace *as = self_address_space(s);

        for (uint64_t off = 0; off < map_size; off += 997) {
                const SymLoc *l = address_space_resolve(as, (uint64_t) (uintptr_t) p + off);
                ASSERT_STREQ(l->module, path);
                if (expect_no_frames) {
                        ASSERT_EQ(l->n_frames, 0);
                        ASSERT_EQ(l->module_offset, off);
                }
                fuzz_frames += l->n_frames > 0;
        }

        /* A thread "running" in it, with a stack of garbage: never a crash. */
        uint8_t stack[4096];
        for (size_t i = 0; i < sizeof stack; i++)
                stack[i] = (uint8_t) rng();
        for (int i = 0; i < 16; i++) {
                ThreadCapture t = {
                        .stack_start = (uint64_t) (uintptr_t) stack, .stack = stack,
                        .stack_len = sizeof stack,
                };
                t.regs.rip = (uint64_t) (uintptr_t) p + rng() % map_size;
                t.regs.rsp = t.stack_start + rng() % sizeof stack;
                t.regs.rbp = rng();
                Stack st = {};
                ASSERT_EQ(address_space_unwind(as, &t, &st), 0);
                ASSERT_GE(st.n, 1);
                ASSERT_STREQ(st.frames[0].loc->module, path);
                free(st.frames);
        }

        munmap(p, map_size);
        unlink(path);
}

TEST(corrupt_modules_never_crash) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        size_t size;

        /* Pure garbage. */
        uint8_t junk[3 * 4096];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t) rng();
        check_garbage_module(s, junk, sizeof junk, true);

        /* An ELF header that points everywhere but at itself. */
        Elf64_Ehdr *eh = (Elf64_Ehdr *) junk;
        memcpy(eh->e_ident, ELFMAG, SELFMAG);
        eh->e_ident[EI_CLASS] = ELFCLASS64;
        eh->e_ident[EI_DATA] = ELFDATA2LSB;
        eh->e_ident[EI_VERSION] = EV_CURRENT;
        eh->e_type = ET_DYN;
        eh->e_machine = EM_X86_64;
        eh->e_version = EV_CURRENT;
        eh->e_phoff = 0xfffffffffff0;
        eh->e_phnum = 0xffff;
        eh->e_shoff = sizeof junk - 8;
        eh->e_shnum = 1000;
        eh->e_phentsize = sizeof(Elf64_Phdr);
        eh->e_shentsize = sizeof(Elf64_Shdr);
        check_garbage_module(s, junk, sizeof junk, true);

        /* A real library, truncated, then fuzzed copies of it. A module is identified
         * by its build-id: give each copy its own, or they would all be libc itself. */
        uint8_t *libc = read_file("/lib/x86_64-linux-gnu/libc.so.6", &size);
        size_t id_off = build_id_offset(libc, size);
        set_build_id(libc, id_off, 0xa0, 0);
        check_garbage_module(s, libc, 12 * 4096, false);
        uint8_t *copy = malloc(size);
        ASSERT_TRUE(copy != NULL);
        for (int round = 0; round < FUZZ_ROUNDS; round++) {
                memcpy(copy, libc, size);
                fuzz_elf(copy, size, 2000, round % 2 == 0);
                set_build_id(copy, id_off, 0xa1, round);
                check_garbage_module(s, copy, size, false);
        }
        free(copy);
        free(libc);

        /* A binary with its DWARF inside (the threads target), fuzzed: libdw parses
         * corrupt .debug_info, .debug_line and .debug_frame. No build-id clash: the
         * symbolizer never saw the original. */
        if (access(THREADS_TARGET, R_OK) == 0) {
                uint8_t *orig = read_file(THREADS_TARGET, &size);
                copy = malloc(size);
                ASSERT_TRUE(copy != NULL);
                size_t off = build_id_offset(orig, size);
                for (int round = 0; round < FUZZ_ROUNDS; round++) {
                        memcpy(copy, orig, size);
                        fuzz_elf(copy, size, size / 256, round % 2 == 0);
                        set_build_id(copy, off, 0xa2, round);
                        check_garbage_module(s, copy, size, false);
                }
                free(copy);
                free(orig);
        }
        fprintf(stderr, "fuzzed files: %zu locations still had frames\n", fuzz_frames);
}

/* ---- a saved capture of the threads target ---- */

static const ThreadCapture *find_thread(const Snapshot *snap, const char *name, size_t nth) {
        for (size_t i = 0; i < snap->n_threads; i++)
                if (strcmp(snap->threads[i].info.name, name) == 0 && nth-- == 0)
                        return &snap->threads[i];
        return NULL;
}

static void unwind_thread(AddressSpace *as, const Snapshot *snap, const char *name, size_t nth,
                          const char *const *seq, size_t k, Stack *ret) {
        const ThreadCapture *t = find_thread(snap, name, nth);
        if (!t)
                TINY_FAIL("no thread %s #%zu in the capture", name, nth);
        ASSERT_EQ(t->error, 0);
        ASSERT_EQ(address_space_unwind(as, t, ret), 0);
        assert_sequence(name, ret, seq, k);
        if (ret->end != STACK_END_COMPLETE) {
                dump_stack(name, ret);
                TINY_FAIL("%s: stack ends with %s", name, stack_end_to_string(ret->end));
        }
}

TEST(unwinds_saved_capture_after_the_process_is_gone) {
        _cleanup_(symbolizer_freep) Symbolizer *s = new_symbolizer();
        _cleanup_(address_space_freep) AddressSpace *as = NULL;
        Snapshot *snap = NULL, *back = NULL;
        char *buf = NULL;
        size_t len = 0;
        Stack st;

        if (access(THREADS_TARGET, X_OK) < 0)
                TINY_SKIP("%s not built", THREADS_TARGET);

        pid_t pid = threads_target_start();
        int r = snapshot_take(pid, NULL, &snap);
        if (r == -EPERM) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                TINY_SKIP("no permission to ptrace");
        }
        ASSERT_EQ(r, 0);

        FILE *f = open_memstream(&buf, &len);
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(snapshot_write(snap, f), 0);
        ASSERT_EQ(fclose(f), 0);
        snapshot_free(snap);

        ASSERT_EQ(kill(pid, SIGKILL), 0);
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);

        f = fmemopen(buf, len, "r");
        ASSERT_TRUE(f != NULL);
        ASSERT_EQ(snapshot_read(f, &back), 0);
        fclose(f);
        free(buf);
        ASSERT_EQ(back->pid, pid);

        /* /proc/PID is gone: modules are found by their paths. */
        ASSERT_EQ(address_space_new(s, back->pid, &as), 0);
        ASSERT_EQ(address_space_update(as, &back->maps), 0);

        static const char *const read_seq[] = {
                "+inline_read", "chain_c", "chain_b", "chain_a", "thread_read_main",
        };
        unwind_thread(as, back, "t-read", 0, read_seq, ARRAY_SIZE(read_seq), &st);
        /* read() itself, in libc, is the innermost physical frame. */
        ASSERT_CONTAINS(st.frames[0].loc->module, "libc.so");
        ASSERT_CONTAINS(st.frames[0].loc->frames[st.frames[0].loc->n_frames - 1].function, "read");
        free(st.frames);

        const char *recurse_seq[62];
        recurse_seq[0] = "recurse_bottom";
        for (size_t i = 1; i <= 60; i++)
                recurse_seq[i] = "recurse";
        recurse_seq[61] = "thread_recurse_main";
        unwind_thread(as, back, "t-recurse", 0, recurse_seq, 62, &st);
        free(st.frames);

        static const char *const signal_seq[] = {
                "signal_handler_leaf", "signal_handler", "__restore_rt", "spin_until_signal",
                "thread_signal_main",
        };
        unwind_thread(as, back, "t-signal", 0, signal_seq, ARRAY_SIZE(signal_seq), &st);
        for (size_t i = 0; i < st.n; i++)
                if (st.frames[i].signal_frame) {
                        ASSERT_TRUE(i + 1 < st.n);
                        ASSERT_TRUE(st.frames[i + 1].exact);
                        ASSERT_STREQ(st.frames[i].loc->frames[0].function, "__restore_rt");
                }
        free(st.frames);

        static const char *const pool_seq[] = { "pool_wait_leaf", "thread_pool_main" };
        for (size_t i = 0; i < 3; i++) {
                unwind_thread(as, back, "t-pool", i, pool_seq, ARRAY_SIZE(pool_seq), &st);
                free(st.frames);
        }

        static const char *const main_seq[] = { "main_wait", "main" };
        const char *main_name = NULL;
        for (size_t i = 0; i < back->n_threads; i++)
                if (back->threads[i].tid == pid)
                        main_name = back->threads[i].info.name;
        ASSERT_TRUE(main_name != NULL);
        unwind_thread(as, back, main_name, 0, main_seq, ARRAY_SIZE(main_seq), &st);
        free(st.frames);

        /* Every captured thread unwinds to its outermost frame. */
        for (size_t i = 0; i < back->n_threads; i++) {
                if (back->threads[i].error != 0)
                        continue;
                ASSERT_EQ(address_space_unwind(as, &back->threads[i], &st), 0);
                if (st.end != STACK_END_COMPLETE) {
                        dump_stack(back->threads[i].info.name, &st);
                        TINY_FAIL("thread %d did not unwind completely", back->threads[i].tid);
                }
                free(st.frames);
        }

        /* Warm: everything is cached now. */
        uint64_t t0 = now_ns();
        size_t frames = 0;
        for (size_t i = 0; i < back->n_threads; i++) {
                if (back->threads[i].error != 0)
                        continue;
                ASSERT_EQ(address_space_unwind(as, &back->threads[i], &st), 0);
                frames += st.n;
                free(st.frames);
        }
        fprintf(stderr, "warm unwind+symbolize of %zu threads (%zu frames): %.1f us\n",
                back->n_threads, frames, (double) (now_ns() - t0) / 1000.0);

        snapshot_free(back);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
