/* fuzz/fuzz-symbolize.c -- libFuzzer target: the ELF/DWARF symbolizer on a corrupt module.
 *
 * The input is a module file. It is written to a temporary file and mapped
 * PROT_READ|PROT_EXEC into this process, so /proc/self/maps lists it as a file mapping like
 * any shared library a target maps. A fresh Symbolizer and AddressSpace for our own pid
 * then identify it from freshly read maps (build-id, PT_LOADs, .eh_frame_hdr), resolve a
 * handful of addresses in it (its entry point, its function symbols, points spread over its
 * executable segments, the edges of the mapping: libdw reads its DWARF, libelf its symbol
 * tables) and unwind a synthetic stack of return addresses into it (libunwind reads its
 * .eh_frame, libdw its .debug_frame). Everything is freed per input, so LeakSanitizer
 * sees any leak of one input.
 *
 * Only the lines of /proc/self/maps that map the input are parsed (procfs_parse_maps) and
 * handed to the symbolizer: the fuzzer's own modules would cost time per input, and a seed
 * carrying the build-id of one of them would be symbolized as that module instead of as
 * itself.
 *
 * The addresses are chosen by reading the input's headers here, bounded by its size: the
 * symbolizer does not get to choose, so a bug in its own reading of those headers cannot
 * hide from the fuzzer. With FUZZ_SYMBOLIZE_VERBOSE set, every resolved address and
 * unwound frame is printed (to see what a seed reaches). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"
#include "procfs-internal.h"
#include "symbolizer.h"

#define ADDRS_MAX 48
#define STACK_WORDS 64

static char module_path[4096];
static bool verbose;

static void cleanup_tmp(void) {
        char dir[sizeof module_path];
        (void) unlink(module_path);
        snprintf(dir, sizeof dir, "%s", module_path);
        char *slash = strrchr(dir, '/');
        if (slash) {
                *slash = 0;
                (void) rmdir(dir);
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        const char *tmp = getenv("TMPDIR");
        char dir[4000];

        snprintf(dir, sizeof dir, "%s/cprofd-fuzz-symbolize-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                abort();
        }
        snprintf(module_path, sizeof module_path, "%s/module.so", dir);
        atexit(cleanup_tmp);
        verbose = getenv("FUZZ_SYMBOLIZE_VERBOSE") != NULL;
        return 0;
}

/* ---- choosing addresses: a bounded reading of the input's ELF headers ---- */

typedef struct Addrs {
        uint64_t off[ADDRS_MAX];        /* offsets from the start of the mapping */
        size_t n;
        uint64_t inside[16];            /* offsets inside functions, past their entry */
        size_t n_inside;
} Addrs;

static void add_addr(Addrs *a, uint64_t off, size_t map_size) {
        if (a->n < ADDRS_MAX && off < map_size)
                a->off[a->n++] = off;
}

static bool in_file(uint64_t off, uint64_t len, size_t size) {
        return off <= size && len <= size - off;
}

/* The vaddr that file offset 0 has, as the symbolizer computes the load bias: the PT_LOAD
 * whose file bytes hold offset 0. */
static uint64_t vaddr_of_offset0(const Elf64_Phdr *ph, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0 && ph[i].p_filesz > 0)
                        return ph[i].p_vaddr;
        return 0;
}

static void collect_addrs(const uint8_t *data, size_t size, size_t map_size, Addrs *a) {
        Elf64_Ehdr eh;
        Elf64_Phdr ph[16];
        size_t n_ph = 0;

        /* Always: the edges of the mapping and its middle. */
        add_addr(a, 0, map_size);
        add_addr(a, map_size / 2, map_size);
        add_addr(a, map_size - 1, map_size);

        if (size < sizeof eh)
                return;
        memcpy(&eh, data, sizeof eh);
        if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phentsize != sizeof(Elf64_Phdr))
                return;
        for (size_t i = 0; i < eh.e_phnum && n_ph < ARRAY_SIZE(ph); i++) {
                uint64_t off = eh.e_phoff + i * sizeof(Elf64_Phdr);
                if (eh.e_phoff > size || !in_file(off, sizeof(Elf64_Phdr), size))
                        break;
                memcpy(&ph[n_ph++], data + off, sizeof(Elf64_Phdr));
        }
        uint64_t base = vaddr_of_offset0(ph, n_ph);

        add_addr(a, eh.e_entry - base, map_size);

        /* Function symbols of .symtab and .dynsym. */
        if (eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shoff <= size)
                for (size_t i = 0; i < eh.e_shnum && i < 64; i++) {
                        Elf64_Shdr sh;
                        uint64_t off = eh.e_shoff + i * sizeof sh;
                        if (!in_file(off, sizeof sh, size))
                                break;
                        memcpy(&sh, data + off, sizeof sh);
                        if ((sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) ||
                            !in_file(sh.sh_offset, sh.sh_size, size))
                                continue;
                        for (uint64_t k = 0; k + 1 <= sh.sh_size / sizeof(Elf64_Sym) && k < 64; k++) {
                                Elf64_Sym sym;
                                memcpy(&sym, data + sh.sh_offset + k * sizeof sym, sizeof sym);
                                if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0)
                                        continue;
                                add_addr(a, sym.st_value - base, map_size);
                                uint64_t mid = sym.st_value + sym.st_size / 2 - base;
                                if (sym.st_size > 1 && mid < map_size) {   /* past the prologue */
                                        add_addr(a, mid, map_size);
                                        if (a->n_inside < ARRAY_SIZE(a->inside))
                                                a->inside[a->n_inside++] = mid;
                                }
                        }
                }

        /* Points spread over the executable segments. */
        for (size_t i = 0; i < n_ph; i++) {
                if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
                        continue;
                for (uint64_t k = 0; k < 8; k++)
                        add_addr(a, ph[i].p_vaddr + k * (ph[i].p_memsz / 8) - base, map_size);
        }
}

/* ---- the target ---- */

static int write_module(const uint8_t *data, size_t size) {
        int fd = open(module_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                perror(module_path);
                abort();
        }
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, data + done, size - done);
                if (n < 0) {
                        perror("write");
                        abort();
                }
                done += (size_t) n;
        }
        return fd;
}

/* Whether LINE (N bytes, with its newline) ends in the module's path. Compared by hand and
 * without coverage: strstr() and friends are libFuzzer's hooks, which would fill its
 * dictionary with maps lines. */
__attribute__((no_sanitize("coverage")))
static bool maps_line_is_module(const char *line, size_t n) {
        static size_t path_len;
        if (!path_len)
                path_len = strlen(module_path);
        if (n > 0 && line[n - 1] == '\n')
                n--;
        if (n < path_len + 1 || line[n - path_len - 1] != ' ')
                return false;
        for (size_t i = 0; i < path_len; i++)
                if (line[n - path_len + i] != module_path[i])
                        return false;
        return true;
}

/* The lines of /proc/self/maps that map our module file, read fresh. Only those: with
 * ASan's shadow the whole file is long, and parsing all of it took most of the time of
 * an input. */
static char *read_module_maps_lines(void) {
        FILE *f = fopen("/proc/self/maps", "re");
        char *line = NULL, *text = NULL;
        size_t line_size = 0, text_size = 0;
        FILE *out = open_memstream(&text, &text_size);

        if (!f || !out)
                abort();
        ssize_t n;
        while ((n = getline(&line, &line_size, f)) > 0)
                if (maps_line_is_module(line, (size_t) n))
                        fputs(line, out);
        free(line);
        fclose(f);
        if (fclose(out) != 0)
                abort();
        return text;
}

static void check_loc(const SymLoc *loc) {
        if (!loc)
                abort();
        for (size_t i = 0; i < loc->n_frames; i++) {
                /* Touch every string: a dangling or unterminated one shows up here. */
                const Frame *f = &loc->frames[i];
                volatile size_t sink = 0;
                if (f->function)
                        sink += strlen(f->function);
                if (f->system_name)
                        sink += strlen(f->system_name);
                if (f->file)
                        sink += strlen(f->file);
                (void) sink;
        }
        /* Only the last frame is the physical function. */
        if (loc->n_frames > 0 && loc->frames[loc->n_frames - 1].inlined)
                abort();
}

static void print_loc(uint64_t off, const SymLoc *loc) {
        fprintf(stderr, "  +0x%llx:", (unsigned long long) off);
        for (size_t i = 0; i < loc->n_frames; i++)
                fprintf(stderr, " %s%s (%s:%u)", loc->frames[i].function ?: "??",
                        loc->frames[i].inlined ? " [inlined]" : "",
                        loc->frames[i].file ?: "?", loc->frames[i].line);
        fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Symbolizer *s = NULL;
        AddressSpace *as = NULL;
        Maps maps = {};
        Addrs addrs = {};

        if (size == 0)
                return 0;
        int fd = write_module(data, size);
        size_t map_size = (size + 4095) & ~(size_t) 4095;
        uint8_t *map = mmap(NULL, map_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)  /* a noexec TMPDIR: readable is all the symbolizer needs */
                map = mmap(NULL, map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
                perror("mmap");
                abort();
        }
        close(fd);
        uint64_t base = (uint64_t) (uintptr_t) map;

        if (symbolizer_new(&s) < 0 || address_space_new(s, getpid(), &as) < 0)
                abort();
        char *maps_text = read_module_maps_lines();
        if (procfs_parse_maps(maps_text, &maps) < 0 || maps.n == 0)
                abort();        /* our mapping must be listed */
        free(maps_text);
        if (address_space_update(as, &maps) < 0)
                abort();

        ModuleInfo info;
        if (address_space_module_info(as, base, &info) < 0 || !info.path ||
            strcmp(info.path, module_path) != 0)
                abort();
        if (info.build_id)
                (void) strlen(info.build_id);

        collect_addrs(data, size, map_size, &addrs);
        for (size_t i = 0; i < addrs.n; i++) {
                const SymLoc *loc = address_space_resolve(as, base + addrs.off[i]);
                check_loc(loc);
                if (verbose)
                        print_loc(addrs.off[i], loc);
                if (!loc->module || strcmp(loc->module, module_path) != 0)
                        abort();
        }
        /* Twice the same pc: the cached answer; and again after an update with the same
         * maps, which keeps the module. */
        const uint64_t pc = base + (addrs.n > 3 ? addrs.off[3] : 0);
        const SymLoc *first = address_space_resolve(as, pc);
        if (address_space_resolve(as, pc) != first)
                abort();
        if (address_space_update(as, &maps) < 0 || address_space_resolve(as, pc) != first)
                abort();

        /* A thread interrupted inside a function, with a stack of return addresses into
         * the module's functions (whatever a frame's size, its return address slot holds
         * one), so that libunwind and libdw interpret the module's CFI step after step. */
        const uint64_t *ret = addrs.n_inside ? addrs.inside : addrs.off;
        const size_t n_ret = addrs.n_inside ? addrs.n_inside : addrs.n;
        uint64_t stack[STACK_WORDS] = {};
        uint64_t stack_start = (uint64_t) (uintptr_t) stack;
        for (size_t i = 0; i < STACK_WORDS; i++)
                stack[i] = base + ret[(1 + i) % n_ret] + 1;
        ThreadCapture t = {
                .stack_start = stack_start,
                .stack = (uint8_t *) stack,
                .stack_len = sizeof stack,
        };
        t.regs.rip = base + ret[0];
        t.regs.rsp = stack_start;
        t.regs.rbp = stack_start + 8 * 8;
        Stack st = {};
        if (address_space_unwind(as, &t, &st) < 0)
                abort();
        if (st.n < 1 || st.frames[0].pc != t.regs.rip)
                abort();
        for (size_t i = 0; i < st.n; i++) {
                check_loc(st.frames[i].loc);
                if (verbose)
                        print_loc(st.frames[i].pc - base, st.frames[i].loc);
        }
        if (verbose)
                fprintf(stderr, "unwound %zu frames: %s\n", st.n, stack_end_to_string(st.end));
        free(st.frames);

        /* The module unmapped: its addresses are in no mapping any more. */
        Maps none = {};
        if (address_space_update(as, &none) < 0 || address_space_resolve(as, base)->module != NULL)
                abort();

        maps_done(&maps);
        address_space_free(as);
        symbolizer_free(s);
        munmap(map, map_size);
        return 0;
}
