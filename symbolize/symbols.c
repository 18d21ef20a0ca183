/* symbolize/symbols.c -- turn a module-relative address into frames: the physical
 * function, the inline chain inside it, and file:line for each, through libdw/libdwfl.
 *
 * Each module gets its own Dwfl with that single module reported at bias 0
 * (dwfl_report_elf with add_p_vaddr=true and base 0: libdwfl's bias is 0 for ET_DYN and
 * ET_EXEC alike, so module addresses are the ELF virtual addresses that addr2line takes).
 * libdwfl's standard callbacks find separate debug info by build-id under
 * /usr/lib/debug/.build-id/xx/yyyy.debug and by .gnu_debuglink next to the file name we
 * give it; with $DEBUGINFOD_URLS set, a file debuginfod.c downloaded in the background
 * once it has arrived. Results are cached per (module, address) by the caller; nothing
 * here is on the hot path of a warm dump.
 *
 * Naming follows gdb, our oracle. gdb names a C function by its DW_AT_linkage_name when
 * there is one (for C it keeps symbol names "in linkage form": dwarf2_physname does not
 * demangle them), which is why glibc's read shows up as __GI___libc_read: glibc declares
 * its internal aliases with hidden_proto, i.e. asm("__GI___libc_read"), and GCC records
 * that label as DW_AT_linkage_name. It is not a minimal-symbol preference: the ELF symbol
 * table is only consulted when there is no DWARF for the pc. We mirror that, so a stack
 * reads the same in cprofd and in gdb, and DW_AT_name (__libc_read) is not shown. For C++
 * and other languages with mangling, function is the name qualified by its enclosing
 * namespaces and classes, as gdb prints it (without parameters), and system_name keeps the
 * mangled linkage name. A name only reached through the ELF symbol table (.symtab, or
 * .dynsym of a stripped file) is what gdb calls a minimal symbol: gdb demangles it with
 * parameters, "node::SpinEventLoopInternal(node::Environment*)", and so do we (demangle.c,
 * libiberty's demangler, C++ and Rust); system_name keeps the mangled name. A name that
 * does not demangle is shown as it is. */
#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "debug-root.h"
#include "internal.h"
#include "macro.h"

static char *debuginfo_path = NULL;     /* NULL: libdwfl's default, ":.debug:/usr/lib/debug" */

/* libdwfl's standard search, with two changes for debuginfod: a debug file fetched for
 * the module (debuginfod.c) comes first, and with $DEBUGINFOD_URLS set the search stays
 * local, because dwfl_standard_find_debuginfo would then end in a synchronous download:
 * a dump must never wait for a server. USERDATA is the Module. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
                          char **ret_name) {
        const Module *m = *userdata;

        /* Not when libdwfl asks for the .gnu_debugaltlink file of the fetched file itself. */
        if (m && m->fetched_debuginfo && (!file_name || strcmp(file_name, m->fetched_debuginfo) != 0)) {
                int fd = open(m->fetched_debuginfo, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        *ret_name = strdup(m->fetched_debuginfo);
                        return fd;
                }
        }
        if (m && m->build_id && debug_fetcher_configured())
                return debug_find_local(mod, file_name, debuglink_file, ret_name);
        return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                            debuglink_crc, ret_name);
}

static const Dwfl_Callbacks module_callbacks = {
        .find_elf = dwfl_build_id_find_elf,
        .find_debuginfo = find_debuginfo,
        .section_address = dwfl_offline_section_address,
        .debuginfo_path = &debuginfo_path,
};

static Dwfl_Module *module_dwfl(Module *m) {
        if (m->dwfl_tried)
                return m->dwfl_module;
        m->dwfl_tried = true;

        if (m->kind != MODULE_ELF || !m->elf || m->fd < 0)
                return NULL;

        /* A container's file: its debug files are in its root too. */
        if (m->root && !m->debug_root)
                m->debug_root = debug_root_new(&module_callbacks, m->root);
        Dwfl *dwfl = dwfl_begin(m->debug_root ? debug_root_callbacks(m->debug_root) : &module_callbacks);
        if (!dwfl)
                return NULL;

        /* libdwfl consumes the fd on success only. */
        int fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                dwfl_end(dwfl);
                return NULL;
        }
        dwfl_report_begin(dwfl);
        Dwfl_Module *mod = dwfl_report_elf(dwfl, m->name,
                                           m->debuglink_path ? m->debuglink_path : m->name,
                                           fd, 0, true);
        if (!mod)
                (void) close(fd);
        if (dwfl_report_end(dwfl, NULL, NULL) != 0 || !mod) {
                dwfl_end(dwfl);
                return NULL;
        }
        void **userdata;
        (void) dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
        *userdata = m;
        m->dwfl = dwfl;
        m->dwfl_module = mod;

        /* What a debuginfod server could supply. */
        Dwarf_Addr bias;
        if (m->symbolizer->fetcher && m->build_id && !m->fetched_debuginfo)
                m->dwarf_missing = !dwfl_module_getdwarf(mod, &bias);
        return mod;
}

Dwarf_CFI *module_debug_cfi(Module *m, Dwarf_Addr *ret_bias) {
        if (!m->cfi_tried) {
                m->cfi_tried = true;
                Dwfl_Module *mod = module_dwfl(m);
                if (mod)
                        m->debug_cfi = dwfl_module_dwarf_cfi(mod, &m->debug_cfi_bias);
        }
        if (m->debug_cfi)
                *ret_bias = m->debug_cfi_bias;
        return m->debug_cfi;
}

void module_symbols_done(Module *m) {
        u64map_done(&m->sym_names, NULL);       /* names are interned */
        u64map_done(&m->name_addrs, NULL);
        u64map_done(&m->call_sites, free);
        u64map_done(&m->tail_edges, free);
        u64map_done(&m->var_dies, NULL);
        u64map_done(&m->data_names, NULL);      /* interned */
        m->var_index_built = false;
        free(m->cu_ranges);
        m->cu_ranges = NULL;
        m->n_cu_ranges = 0;
        m->cu_ranges_built = false;
        if (m->dwfl)
                dwfl_end(m->dwfl);      /* also frees the CFI it handed out */
        m->dwfl = NULL;
        m->dwfl_module = NULL;
        m->debug_cfi = NULL;
}

void module_symbols_reset(Module *m) {
        module_symbols_done(m);
        m->dwfl_tried = false;
        m->dwarf_missing = false;
        m->cfi_tried = false;
        m->sym_names_built = false;
}

static const char *attr_string(Dwarf_Die *die, unsigned name) {
        Dwarf_Attribute attr;
        return dwarf_formstring(dwarf_attr_integrate(die, name, &attr));
}

static const char *linkage_name(Dwarf_Die *die) {
        const char *s = attr_string(die, DW_AT_linkage_name);
        return s ? s : attr_string(die, DW_AT_MIPS_linkage_name);
}

static bool lang_is_c(int lang) {
        switch (lang) {
        case DW_LANG_C89:
        case DW_LANG_C:
        case DW_LANG_C99:
        case DW_LANG_C11:
        case DW_LANG_Mips_Assembler:
                return true;
        default:
                return lang == 0x2c;            /* DW_LANG_C17 */
        }
}

/* The DIE that carries the declaration: through DW_AT_abstract_origin (inline instances,
 * out-of-line copies) and DW_AT_specification (C++ member definitions). */
static Dwarf_Die *declaration_die(Dwarf_Die *die, Dwarf_Die *ret) {
        *ret = *die;
        for (int i = 0; i < 8; i++) {
                Dwarf_Attribute attr;
                Dwarf_Die next;
                if ((dwarf_attr(ret, DW_AT_abstract_origin, &attr) ||
                     dwarf_attr(ret, DW_AT_specification, &attr)) &&
                    dwarf_formref_die(&attr, &next))
                        *ret = next;
                else
                        break;
        }
        return ret;
}

/* "ns::Class::name" from the scopes enclosing the declaration, as gdb shows C++ names. */
static const char *qualified_name(Symbolizer *s, Dwarf_Die *die, const char *name) {
        Dwarf_Die decl, *scopes = NULL;
        char buf[1024];
        int n;

        n = dwarf_getscopes_die(declaration_die(die, &decl), &scopes);
        if (n <= 1) {
                free(scopes);
                return symbolizer_intern(s, name);
        }

        /* scopes[0] is the declaration itself; prefixes come from the outside in. */
        size_t len = 0;
        buf[0] = 0;
        for (int i = n - 1; i >= 1; i--) {
                const char *part;
                switch (dwarf_tag(&scopes[i])) {
                case DW_TAG_namespace:
                        part = dwarf_diename(&scopes[i]);
                        if (!part)
                                part = "(anonymous namespace)";
                        break;
                case DW_TAG_class_type:
                case DW_TAG_structure_type:
                case DW_TAG_union_type:
                        part = dwarf_diename(&scopes[i]);
                        if (!part)
                                continue;
                        break;
                default:
                        continue;
                }
                int k = snprintf(buf + len, sizeof buf - len, "%s::", part);
                if (k < 0 || (size_t) k >= sizeof buf - len) {
                        free(scopes);
                        return symbolizer_intern(s, name);
                }
                len += (size_t) k;
        }
        free(scopes);
        if (len == 0)
                return symbolizer_intern(s, name);
        int k = snprintf(buf + len, sizeof buf - len, "%s", name);
        if (k < 0 || (size_t) k >= sizeof buf - len)
                return symbolizer_intern(s, name);
        return symbolizer_intern(s, buf);
}

static void die_names(Symbolizer *s, Dwarf_Die *die, int lang, Frame *f) {
        const char *name = attr_string(die, DW_AT_name);
        const char *linkage = linkage_name(die);

        if (lang_is_c(lang) || !name) {
                /* gdb's print name for C; and the only name there is otherwise. */
                f->function = symbolizer_intern(s, linkage ? linkage : name);
                f->system_name = NULL;
                return;
        }
        f->function = qualified_name(s, die, name);
        f->system_name = linkage && (!f->function || strcmp(linkage, f->function) != 0) ?
                symbolizer_intern(s, linkage) : NULL;
}

static bool die_entry(Dwarf_Die *die, Dwarf_Addr *ret) {
        Dwarf_Addr base, start, end;
        if (dwarf_entrypc(die, ret) == 0)
                return true;
        if (dwarf_lowpc(die, ret) == 0)
                return true;
        if (dwarf_ranges(die, 0, &base, &start, &end) > 0) {
                *ret = start;
                return true;
        }
        return false;
}

/* The call site of an inlined instance: where, in its caller, the inlined body sits. */
static void call_site(Symbolizer *s, Dwarf_Die *cudie, Dwarf_Die *inlined,
                      const char **ret_file, uint32_t *ret_line) {
        Dwarf_Attribute attr;
        Dwarf_Word file_idx, line;
        Dwarf_Files *files;
        size_t n_files;

        *ret_file = NULL;
        *ret_line = 0;
        if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &line) == 0 &&
            line <= UINT32_MAX)
                *ret_line = (uint32_t) line;
        if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &file_idx) == 0 &&
            dwarf_getsrcfiles(cudie, &files, &n_files) == 0 && file_idx < n_files)
                *ret_file = symbolizer_intern(s, dwarf_filesrc(files, file_idx, NULL, NULL));
}

/* The line of ADDR in CUDIE (at BIAS), the CU cu_at() found for it. */
static void line_at(Symbolizer *s, Dwfl_Module *mod, Dwarf_Die *cudie, Dwarf_Addr bias,
                    uint64_t addr, const char **ret_file, uint32_t *ret_line) {
        Dwfl_Line *l = dwfl_module_getsrc(mod, addr);
        int line = 0;
        const char *file = l ? dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL) : NULL;

        if (!l) {
                /* libdwfl looks the CU up through .debug_aranges, which Go does not write:
                 * the line table of the CU found by its ranges instead. */
                Dwarf_Line *dl = dwarf_getsrc_die(cudie, addr - bias);
                if (dl) {
                        file = dwarf_linesrc(dl, NULL, NULL);
                        if (dwarf_lineno(dl, &line) != 0)
                                line = 0;
                }
        }
        *ret_file = file ? symbolizer_intern(s, file) : NULL;
        *ret_line = line > 0 ? (uint32_t) line : 0;
}

#define SCOPE_WALK_DIES_MAX 2000000       /* DIEs visited looking for a nested function */
#define SCOPE_WALK_DEPTH_MAX 64

static bool is_code_scope(int tag) {
        return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
                tag == DW_TAG_lexical_block;
}

/* From SCOPE (which covers PC) down to the innermost code scope covering PC, appended to
 * CHAIN outermost first. */
static void descend_code_scopes(Dwarf_Die *scope, Dwarf_Addr pc, Dwarf_Die *chain, int *n) {
        Dwarf_Die child, next;

        chain[(*n)++] = *scope;
        if (*n >= SCOPE_WALK_DEPTH_MAX || dwarf_child(scope, &child) != 0)
                return;
        for (int budget = 100000; budget > 0; budget--) {
                if (is_code_scope(dwarf_tag(&child)) && dwarf_haspc(&child, pc) > 0) {
                        descend_code_scopes(&child, pc, chain, n);
                        return;
                }
                if (dwarf_siblingof(&child, &next) != 0)
                        return;
                child = next;
        }
}

/* dwarf_getscopes() only descends into DIEs that can hold code, so it misses a function
 * defined inside a class, itself inside a function: a C++ lambda's static invoker
 * (`{lambda()#1}::_FUN`) in a function template, a local class's members. This walks the
 * whole CU, classes included, to the subprogram covering PC, then down its inline tree.
 * Innermost first, like concrete_scopes(); 0 when none covers PC. */
static int walked_scopes(Dwarf_Die *cudie, Dwarf_Addr pc, Dwarf_Die **ret) {
        Dwarf_Die stack[SCOPE_WALK_DEPTH_MAX], die, next;
        int depth = 0;

        *ret = NULL;
        if (dwarf_child(cudie, &die) != 0)
                return 0;
        for (int budget = SCOPE_WALK_DIES_MAX; budget > 0; budget--) {
                int tag = dwarf_tag(&die);
                int has = dwarf_haspc(&die, pc);
                if (tag == DW_TAG_subprogram && has > 0) {
                        Dwarf_Die chain[SCOPE_WALK_DEPTH_MAX];
                        int n = 0;
                        descend_code_scopes(&die, pc, chain, &n);
                        *ret = malloc(n * sizeof **ret);
                        if (!*ret)
                                return 0;
                        for (int i = 0; i < n; i++)
                                (*ret)[i] = chain[n - 1 - i];
                        return n;
                }
                /* Into anything that may nest a function, unless its own ranges exclude
                 * PC. */
                if (has == 0 && depth < SCOPE_WALK_DEPTH_MAX && dwarf_haschildren(&die) > 0 &&
                    !(is_code_scope(tag) && (dwarf_hasattr(&die, DW_AT_low_pc) ||
                                             dwarf_hasattr(&die, DW_AT_ranges))) &&
                    dwarf_child(&die, &next) == 0) {
                        stack[depth++] = die;
                        die = next;
                        continue;
                }
                while (dwarf_siblingof(&die, &next) != 0) {
                        if (depth == 0)
                                return 0;
                        die = stack[--depth];
                }
                die = next;
        }
        return 0;
}

/* The scopes containing PC (a CU-relative DWARF address), innermost first, as nested in
 * the code: dwarf_getscopes() follows an inlined instance to the scopes of its *abstract*
 * definition, which skips the function it was inlined into; dwarf_getscopes_die() on the
 * innermost scope gives the concrete nesting instead. */
static int concrete_scopes(Dwarf_Die *cudie, Dwarf_Addr pc, Dwarf_Die **ret) {
        Dwarf_Die *scopes = NULL;
        int n = dwarf_getscopes(cudie, pc, &scopes);

        *ret = NULL;
        if (n <= 0) {
                free(scopes);
                return walked_scopes(cudie, pc, ret);
        }
        n = dwarf_getscopes_die(&scopes[0], ret);
        free(scopes);
        if (n <= 0) {
                free(*ret);
                *ret = NULL;
                return 0;
        }
        return n;
}

static int cu_range_cmp(const void *a, const void *b) {
        const CuRange *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start;
}

/* Every CU's address ranges, sorted: for files without .debug_aranges (Go's linker writes
 * none), where libdw's address lookups find no CU at all. */
static void build_cu_ranges(Module *m, Dwfl_Module *mod) {
        Dwarf_Addr bias;
        Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
        Dwarf_Off off = 0, next;
        size_t hsize, cap = 0;

        m->cu_ranges_built = true;
        if (!dw)
                return;
        for (int cus = 0; cus < CU_RANGES_MAX && dwarf_nextcu(dw, off, &next, &hsize, NULL,
                                                              NULL, NULL) == 0; cus++, off = next) {
                Dwarf_Die cudie;
                Dwarf_Addr base, start, end;
                ptrdiff_t it = 0;
                if (!dwarf_offdie(dw, off + hsize, &cudie))
                        continue;
                while ((it = dwarf_ranges(&cudie, it, &base, &start, &end)) > 0 &&
                       m->n_cu_ranges < CU_RANGES_MAX) {
                        if (end <= start)
                                continue;
                        if (m->n_cu_ranges == cap) {
                                size_t c = cap ? 2 * cap : 64;
                                CuRange *r = reallocarray(m->cu_ranges, c, sizeof *r);
                                if (!r)
                                        return;
                                m->cu_ranges = r;
                                cap = c;
                        }
                        m->cu_ranges[m->n_cu_ranges++] = (CuRange) {
                                .start = start, .end = end, .cu_offset = off + hsize,
                        };
                }
        }
        if (m->n_cu_ranges > 0)
                qsort(m->cu_ranges, m->n_cu_ranges, sizeof *m->cu_ranges, cu_range_cmp);
}

static Dwarf_Die *cu_by_ranges(Module *m, Dwfl_Module *mod, uint64_t addr,
                                Dwarf_Addr *ret_bias, Dwarf_Die *mem) {
        Dwarf *dw = dwfl_module_getdwarf(mod, ret_bias);

        if (!dw)
                return NULL;
        if (!m->cu_ranges_built)
                build_cu_ranges(m, mod);
        uint64_t a = addr - *ret_bias;
        size_t lo = 0, hi = m->n_cu_ranges;
        while (lo < hi) {                       /* first range starting above A */
                size_t mid = lo + (hi - lo) / 2;
                if (m->cu_ranges[mid].start <= a)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        /* Ranges of different CUs do not overlap in sane DWARF; look back a little for
         * one that still covers A in case they do. */
        for (size_t i = lo, k = 0; i-- > 0 && k < 8; k++)
                if (a < m->cu_ranges[i].end)
                        return dwarf_offdie(dw, m->cu_ranges[i].cu_offset, mem);
        return NULL;
}

/* The CU whose code covers ADDR (module-relative), or NULL. MEM holds it when libdw's own
 * lookup (through .debug_aranges) finds none. */
static Dwarf_Die *cu_at(Module *m, Dwfl_Module *mod, uint64_t addr, Dwarf_Addr *ret_bias,
                        Dwarf_Die *mem) {
        /* libdwfl hands out the nearest CU below ADDR (and a line of it) even when the CU
         * does not cover ADDR, e.g. for _start of crt1.o without DWARF. */
        Dwarf_Die *cudie = dwfl_module_addrdie(mod, addr, ret_bias);
        if (cudie)
                return dwarf_haspc(cudie, addr - *ret_bias) > 0 ? cudie : NULL;
        return cu_by_ranges(m, mod, addr, ret_bias, mem);
}

/* GNU as (2.40) emits one DW_TAG_subprogram per alias of an assembler function, with the
 * same range (glibc's clone3.S: __clone3, __GI___clone3, clone3). gdb's block lookup takes
 * the last block starting at or below the pc, i.e. the last of them: so do we. */
static void last_alias(Dwarf_Die *die) {
        Dwarf_Addr lo, hi, lo2, hi2;
        Dwarf_Die next, cur = *die;

        if (dwarf_lowpc(die, &lo) != 0 || dwarf_highpc(die, &hi) != 0)
                return;
        for (int i = 0; i < 64 && dwarf_siblingof(&cur, &next) == 0; i++) {
                if (dwarf_tag(&next) != DW_TAG_subprogram || dwarf_lowpc(&next, &lo2) != 0 ||
                    dwarf_highpc(&next, &hi2) != 0 || lo2 != lo || hi2 != hi)
                        break;
                *die = cur = next;
        }
}

/* Frames from the DWARF scopes at ADDR; 0 when DWARF knows no function there. */
static size_t resolve_dwarf(Module *m, Dwfl_Module *mod, Dwarf_Die *cudie, Dwarf_Addr bias,
                            uint64_t addr, Frame *frames, size_t max) {
        Symbolizer *s = m->symbolizer;
        Dwarf_Die *chain = NULL;
        size_t n = 0;
        int n_chain;

        n_chain = concrete_scopes(cudie, addr - bias, &chain);
        if (n_chain <= 0)
                return 0;

        int lang = dwarf_srclang(cudie);
        const char *file;
        uint32_t line;
        line_at(s, mod, cudie, bias, addr, &file, &line);

        for (int i = 0; i < n_chain && n < max; i++) {
                Dwarf_Die *die = &chain[i];
                int tag = dwarf_tag(die);
                if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
                        continue;

                if (tag == DW_TAG_subprogram)
                        last_alias(die);
                Frame *f = &frames[n++];
                *f = (Frame) { .file = file, .line = line,
                               .inlined = tag == DW_TAG_inlined_subroutine };
                die_names(s, die, lang, f);

                if (tag == DW_TAG_subprogram) {
                        Dwarf_Addr entry;
                        if (die_entry(die, &entry))
                                for (size_t j = 0; j < n; j++)
                                        frames[j].entry = entry + bias;
                        break;
                }
                /* The caller of an inlined body is "at" the call site. */
                call_site(s, cudie, die, &file, &line);
        }
        free(chain);

        /* Inline scopes without their physical function (corrupt or truncated DWARF):
         * better nothing than a chain whose last frame is not physical. */
        if (n > 0 && frames[n - 1].inlined)
                return 0;
        return n;
}

/* gdb's choice among ELF symbols at one address (minsyms.c: sorted by address, then by
 * name; the last one with a non-zero size wins, else the last one): glibc's clone3.S
 * defines both __clone3 and clone3 and gdb shows "clone3". Built on first use from the
 * symbol tables of the file and of its debug file. */
static void build_sym_names(Module *m, Dwfl_Module *mod) {
        Symbolizer *s = m->symbolizer;
        U64Map sizeless = {};
        int n = dwfl_module_getsymtab(mod);

        m->sym_names_built = true;
        for (int i = 1; i < n; i++) {
                GElf_Sym sym;
                GElf_Addr addr;
                GElf_Word shndx;
                const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, NULL, NULL);
                if (!name || !*name || shndx == SHN_UNDEF || shndx == SHN_ABS)
                        continue;
                int type = GELF_ST_TYPE(sym.st_info);
                if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
                        continue;
                /* A linker-written .symtab spells versioned globals "name@@VERSION"
                 * (default) and "name@VERSION": a call site names them without it. */
                const char *at = strchr(name, '@');
                uint64_t h = hash_bytes(name, at ? (size_t) (at - name) : strlen(name));
                if (!u64map_get(&m->name_addrs, h) || (at && at[1] == '@'))
                        u64map_put(&m->name_addrs, h, (void *) (uintptr_t) (addr + 1));
                U64Map *map = sym.st_size > 0 ? &m->sym_names : &sizeless;
                const char *old = u64map_get(map, addr);
                if (old && strcmp(old, name) >= 0)
                        continue;
                const char *interned = symbolizer_intern(s, name);
                if (interned)
                        u64map_put(map, addr, (void *) interned);
        }

        uint64_t addr;
        void *name;
        for (size_t i = 0; u64map_next(&sizeless, &i, &addr, &name);)
                if (!u64map_get(&m->sym_names, addr))
                        u64map_put(&m->sym_names, addr, name);
        u64map_done(&sizeless, NULL);
}

static size_t resolve_symtab(Module *m, Dwfl_Module *mod, Dwarf_Die *cudie, Dwarf_Addr bias,
                             uint64_t addr, Frame *f) {
        Symbolizer *s = m->symbolizer;
        GElf_Off off = 0;
        GElf_Sym sym;

        const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
        if (!name || !*name)
                return 0;
        if (!m->sym_names_built)
                build_sym_names(m, mod);
        const char *preferred = u64map_get(&m->sym_names, addr - off);
        const char *mangled = preferred ? preferred : symbolizer_intern(s, name);
        const char *function = symbolizer_demangle(s, mangled);
        *f = (Frame) { .function = function, .system_name = function != mangled ? mangled : NULL,
                       .entry = addr - off };
        /* Line tables can exist without a DWARF function (assembler sources). */
        if (cudie)
                line_at(s, mod, cudie, bias, addr, &f->file, &f->line);
        return f->function ? 1 : 0;
}

SymLoc *symbols_resolve(Module *m, uint64_t addr) {
        Frame frames[SYMLOC_FRAMES_MAX];
        size_t n = 0;

        Dwfl_Module *mod = module_dwfl(m);
        if (m->dwarf_missing)
                debug_fetcher_request(m->symbolizer->fetcher, m->build_id);
        if (mod) {
                Dwarf_Addr bias = 0;
                Dwarf_Die mem, *cudie = cu_at(m, mod, addr, &bias, &mem);
                if (cudie)
                        n = resolve_dwarf(m, mod, cudie, bias, addr, frames, ARRAY_SIZE(frames));
                if (n == 0)
                        n = resolve_symtab(m, mod, cudie, bias, addr, frames);
        }

        SymLoc *loc = calloc(1, sizeof *loc + n * sizeof(Frame));
        if (!loc)
                return NULL;
        loc->module = m->name;
        loc->build_id = m->build_id;
        loc->module_offset = addr;
        loc->n_frames = n;
        memcpy(loc->frames, frames, n * sizeof(Frame));
        return loc;
}

/* ---- data objects ---- */

#define VAR_INDEX_CUS_MAX 100000        /* CUs walked for global variables */
#define THREAD_DATA_NAME_MAX 512        /* "&name.member[3]+0x10" */
#define MEMBER_DEPTH_MAX 8              /* ".a.b[3].c" levels named */

/* The DW_OP_addr a variable lives at, when that is all its location says. */
static bool variable_addr(Dwarf_Die *die, Dwarf_Addr *ret) {
        Dwarf_Attribute attr;
        Dwarf_Op *expr;
        size_t len;
        if (!dwarf_attr(die, DW_AT_location, &attr) || dwarf_getlocation(&attr, &expr, &len) != 0 || len != 1 ||
            expr[0].atom != DW_OP_addr)
                return false;
        *ret = expr[0].number;
        return true;
}

static void index_variables(Module *m, Dwarf_Die *parent, int depth) {
        Dwarf_Die die;
        if (dwarf_child(parent, &die) != 0)
                return;
        do {
                int tag = dwarf_tag(&die);
                Dwarf_Addr addr;
                if (tag == DW_TAG_variable && variable_addr(&die, &addr))
                        u64map_put(&m->var_dies, addr, (void *) (uintptr_t) (dwarf_dieoffset(&die) + 1));
                else if (tag == DW_TAG_namespace && depth < MEMBER_DEPTH_MAX)
                        index_variables(m, &die, depth + 1);
        } while (dwarf_siblingof(&die, &die) == 0);
}

static Dwarf_Die *peeled_type(Dwarf_Die *die, Dwarf_Die *ret) {
        Dwarf_Attribute attr;
        Dwarf_Die *t = dwarf_formref_die(dwarf_attr_integrate(die, DW_AT_type, &attr), ret);
        for (int i = 0; t && i < 16; i++) {
                int tag = dwarf_tag(t);
                if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
                    tag != DW_TAG_restrict_type && tag != DW_TAG_atomic_type)
                        return t;
                t = dwarf_formref_die(dwarf_attr_integrate(t, DW_AT_type, &attr), ret);
        }
        return NULL;
}

/* One step into TYPE towards *OFF: the member or array element holding it, appended to
 * OUT (".lock", "[3]"), *OFF made relative to it, *TYPE its type. False when there is
 * none (padding, a type without layout). */
static bool member_step(Dwarf_Die *type, uint64_t *off, char *out, size_t size) {
        int tag = dwarf_tag(type);
        Dwarf_Word total;
        if (tag == DW_TAG_array_type) {
                Dwarf_Die elem;
                Dwarf_Word es;
                if (!peeled_type(type, &elem) || dwarf_aggregate_size(&elem, &es) != 0 || es == 0)
                        return false;
                if (dwarf_aggregate_size(type, &total) == 0 && *off >= total)
                        return false;
                uint64_t i = *off / es;
                snprintf(out, size, "[%llu]", (unsigned long long) i);
                *off -= i * es;
                *type = elem;
                return true;
        }
        if (tag != DW_TAG_structure_type && tag != DW_TAG_class_type && tag != DW_TAG_union_type)
                return false;
        Dwarf_Die member;
        if (dwarf_child(type, &member) != 0)
                return false;
        do {
                Dwarf_Attribute attr;
                Dwarf_Word where = 0, msize;
                Dwarf_Die mtype;
                if (dwarf_tag(&member) != DW_TAG_member)
                        continue;
                if (tag != DW_TAG_union_type &&
                    dwarf_formudata(dwarf_attr(&member, DW_AT_data_member_location, &attr), &where) != 0)
                        continue;       /* a bit field or a location expression */
                if (!peeled_type(&member, &mtype) || dwarf_aggregate_size(&mtype, &msize) != 0)
                        continue;
                const char *name = dwarf_diename(&member);
                if (*off < where || *off - where >= msize || !name)
                        continue;
                snprintf(out, size, ".%s", name);
                *off -= where;
                *type = mtype;
                return true;
        } while (dwarf_siblingof(&member, &member) == 0);
        return false;
}

/* ".lock", "[1].mu": where OFF lies inside the variable of M at DWARF address VAR. */
static void member_path(Module *m, Dwfl_Module *mod, uint64_t var, uint64_t *off, char *out, size_t size) {
        Dwarf_Addr bias;
        Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
        out[0] = '\0';
        if (!dw)
                return;
        if (!m->var_index_built) {
                m->var_index_built = true;
                Dwarf_Off o = 0, next;
                size_t hsize;
                for (int cus = 0; cus < VAR_INDEX_CUS_MAX &&
                     dwarf_nextcu(dw, o, &next, &hsize, NULL, NULL, NULL) == 0; cus++, o = next) {
                        Dwarf_Die cudie;
                        if (dwarf_offdie(dw, o + hsize, &cudie))
                                index_variables(m, &cudie, 0);
                }
        }
        uintptr_t die_off = (uintptr_t) u64map_get(&m->var_dies, var - bias);
        Dwarf_Die die, type;
        if (die_off == 0 || !dwarf_offdie(dw, die_off - 1, &die) || !peeled_type(&die, &type))
                return;
        size_t len = 0;
        for (int depth = 0; *off > 0 && depth < MEMBER_DEPTH_MAX && len < size; depth++) {
                char step[128];
                if (!member_step(&type, off, step, sizeof step))
                        break;
                len += (size_t) snprintf(out + len, size - len, "%s", step);
        }
}

#define NO_DATA_NAME ((void *) 1)
#define DATA_NAMES_MAX 65536            /* addresses remembered per module */

static const char *data_name(Module *m, uint64_t addr) {
        Dwfl_Module *mod = module_dwfl(m);
        GElf_Off off = 0;
        GElf_Sym sym;
        char buf[THREAD_DATA_NAME_MAX];

        if (!mod)
                return NULL;
        const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
        if (!name || !*name)
                return NULL;
        int type = GELF_ST_TYPE(sym.st_info);
        /* Only a variable that really spans ADDR names it: the nearest symbol below an
         * address in padding or in a sizeless symbol's shadow would be a wrong name. */
        if ((type != STT_OBJECT && type != STT_COMMON) || off >= MAX(sym.st_size, (GElf_Xword) 1))
                return NULL;
        const char *shown = symbolizer_demangle(m->symbolizer, symbolizer_intern(m->symbolizer, name));
        if (!shown)
                return NULL;
        char members[256] = "";
        uint64_t rest = off;
        if (off > 0)
                member_path(m, mod, addr - off, &rest, members, sizeof members);
        if (rest == 0)
                snprintf(buf, sizeof buf, "&%s%s", shown, members);
        else
                snprintf(buf, sizeof buf, "&%s%s+%#llx", shown, members, (unsigned long long) rest);
        return symbolizer_intern(m->symbolizer, buf);
}

bool symbols_data_object(Module *m, uint64_t addr, char *buf, size_t size) {
        /* Every dump asks again for the locks its threads wait on: remembered. */
        const char *name = u64map_get(&m->data_names, addr);
        if (!name) {
                name = data_name(m, addr);
                if (m->data_names.n < DATA_NAMES_MAX)
                        u64map_put(&m->data_names, addr, name ? (void *) name : NO_DATA_NAME);
        }
        if (!name || name == NO_DATA_NAME)
                return false;
        snprintf(buf, size, "%s", name);
        return true;
}

/* ---- tail calls ----
 *
 * A function that ends in a jump to another leaves no frame: the callee returns straight
 * to the caller's caller. gdb rebuilds such frames ("tailcall frames",
 * gdb/dwarf2/frame-tailcall.c) from the DW_TAG_call_site entries GCC emits at -O2: the
 * call site at the caller's return address names the function it called; when that is
 * not the function found below it on the stack, the DW_AT_call_tail_call sites reachable
 * from it are searched for chains ending at that function. gdb keeps a unique chain, or
 * the callers and callees common to all chains (call_site_find_chain). Each synthesized
 * frame's pc is its tail call site's DW_AT_call_return_pc, looked up as pc - 1 like any
 * return address, which gives the file:line of the jump. Only direct calls are followed
 * (gdb also evaluates DW_AT_call_target expressions of indirect calls; we do not). */

static bool module_symbol_addr(Module *m, const char *name, uint64_t *ret) {
        Dwfl_Module *mod = module_dwfl(m);

        if (!mod || !name)
                return false;
        if (!m->sym_names_built)
                build_sym_names(m, mod);
        uintptr_t v = (uintptr_t) u64map_get(&m->name_addrs, hash_bytes(name, strlen(name)));
        if (v == 0)
                return false;
        *ret = v - 1;
        return true;
}

static Dwarf_Off decl_root(Dwarf_Die *die) {
        Dwarf_Die decl;
        return dwarf_dieoffset(declaration_die(die, &decl));
}

static bool is_call_site(Dwarf_Die *die) {
        int tag = dwarf_tag(die);
        return tag == DW_TAG_call_site || tag == DW_TAG_GNU_call_site;
}

static bool call_site_return_pc(Dwarf_Die *site, Dwarf_Addr *ret) {
        Dwarf_Attribute attr;
        if (dwarf_formaddr(dwarf_attr(site, DW_AT_call_return_pc, &attr), ret) == 0)
                return true;
        /* DWARF 4 GNU extension: low_pc is the return address. */
        return dwarf_tag(site) == DW_TAG_GNU_call_site && dwarf_lowpc(site, ret) == 0;
}

static bool call_site_is_tail(Dwarf_Die *site) {
        return dwarf_hasattr(site, DW_AT_call_tail_call) || dwarf_hasattr(site, DW_AT_GNU_tail_call);
}

/* The entry of the code of TARGET (a definition, a declaration or an abstract instance):
 * itself, or an out-of-line concrete instance in its CU. */
static bool concrete_entry(Dwarf_Die *target, Dwarf_Addr bias, uint64_t *ret) {
        Dwarf_Die cu, child, next;
        Dwarf_Addr e;

        if (die_entry(target, &e)) {
                *ret = e + bias;
                return true;
        }
        if (!dwarf_diecu(target, &cu, NULL, NULL) || dwarf_child(&cu, &child) != 0)
                return false;
        Dwarf_Off root = decl_root(target);
        for (int budget = 200000; budget > 0; budget--) {
                if (dwarf_tag(&child) == DW_TAG_subprogram && decl_root(&child) == root &&
                    die_entry(&child, &e)) {
                        *ret = e + bias;
                        return true;
                }
                if (dwarf_siblingof(&child, &next) != 0)
                        break;
                child = next;
        }
        return false;
}

static void call_site_target(Module *m, Dwarf_Die *site, Dwarf_Addr bias, CallSite *ret) {
        Dwarf_Attribute attr;
        Dwarf_Die target;

        *ret = (CallSite) {};
        if (!(dwarf_attr(site, DW_AT_call_origin, &attr) ||
              dwarf_attr(site, DW_AT_abstract_origin, &attr)) ||
            !dwarf_formref_die(&attr, &target))
                return;         /* indirect */

        const char *name = linkage_name(&target);
        ret->valid = true;
        ret->name = symbolizer_intern(m->symbolizer, name ? name : attr_string(&target, DW_AT_name));
        ret->has_entry = concrete_entry(&target, bias, &ret->entry);
        if (!ret->has_entry)
                ret->has_entry = module_symbol_addr(m, ret->name, &ret->entry);
}

/* The call site whose return address is RET (module-relative), from the scopes holding
 * the call instruction. */
static const CallSite *call_site_at(Module *m, uint64_t ret) {
        static const CallSite none = {};
        Dwarf_Die *chain = NULL, *cudie, cu_mem;
        Dwarf_Addr bias = 0;
        int n = 0;

        CallSite *cs = u64map_get(&m->call_sites, ret);
        if (cs)
                return cs;
        cs = calloc(1, sizeof *cs);
        if (!cs)
                return &none;

        Dwfl_Module *mod = module_dwfl(m);
        if (mod && ret > 0 && (cudie = cu_at(m, mod, ret - 1, &bias, &cu_mem)))
                n = concrete_scopes(cudie, ret - 1 - bias, &chain);
        bool found = false;
        for (int i = 0; i < n && !found; i++) {
                Dwarf_Die child, next;
                int tag = dwarf_tag(&chain[i]);
                if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine &&
                    tag != DW_TAG_lexical_block)
                        break;
                if (dwarf_child(&chain[i], &child) == 0)
                        for (int budget = 200000; budget > 0; budget--) {
                                Dwarf_Addr rp;
                                if (is_call_site(&child) && call_site_return_pc(&child, &rp) &&
                                    rp + bias == ret) {
                                        call_site_target(m, &child, bias, cs);
                                        found = true;
                                        break;
                                }
                                if (dwarf_siblingof(&child, &next) != 0)
                                        break;
                                child = next;
                        }
                if (tag == DW_TAG_subprogram)
                        break;
        }
        free(chain);
        u64map_put(&m->call_sites, ret, cs);
        return cs;
}

/* The tail call sites anywhere in the function whose code starts at ENTRY. */
static const TailEdges *tail_edges(Module *m, uint64_t entry) {
        static const TailEdges none = {};
        TailEdge edges[256];
        size_t n_edges = 0;
        Dwarf_Die *chain = NULL, *cudie, *sub = NULL, cu_mem;
        Dwarf_Addr bias = 0, e;
        int n = 0;

        TailEdges *te = u64map_get(&m->tail_edges, entry);
        if (te)
                return te;

        Dwfl_Module *mod = module_dwfl(m);
        if (mod && (cudie = cu_at(m, mod, entry, &bias, &cu_mem)))
                n = concrete_scopes(cudie, entry - bias, &chain);
        for (int i = 0; i < n; i++)
                if (dwarf_tag(&chain[i]) == DW_TAG_subprogram) {
                        sub = &chain[i];
                        break;
                }

        /* Depth-first walk of the function's DIEs (not into nested functions). */
        Dwarf_Die stack[64], cur, next;
        size_t sp = 0;
        if (sub && die_entry(sub, &e) && e + bias == entry && dwarf_child(sub, &cur) == 0)
                for (int budget = 200000; budget > 0; budget--) {
                        Dwarf_Addr rp;
                        bool site = is_call_site(&cur);
                        if (site && call_site_is_tail(&cur) && call_site_return_pc(&cur, &rp) &&
                            n_edges < ARRAY_SIZE(edges)) {
                                edges[n_edges].ret_pc = rp + bias;
                                call_site_target(m, &cur, bias, &edges[n_edges].target);
                                if (edges[n_edges].target.valid)
                                        n_edges++;
                        }
                        if (!site && dwarf_tag(&cur) != DW_TAG_subprogram &&
                            dwarf_haschildren(&cur) > 0 && sp < ARRAY_SIZE(stack) &&
                            dwarf_child(&cur, &next) == 0) {
                                stack[sp++] = cur;
                                cur = next;
                                continue;
                        }
                        while (dwarf_siblingof(&cur, &next) != 0) {
                                if (sp == 0)
                                        goto walked;
                                cur = stack[--sp];
                        }
                        cur = next;
                }
walked:
        free(chain);

        te = malloc(sizeof *te + n_edges * sizeof(TailEdge));
        if (!te)
                return &none;
        te->n = n_edges;
        memcpy(te->edges, edges, n_edges * sizeof(TailEdge));
        u64map_put(&m->tail_edges, entry, te);
        return te;
}

/* Where CS, found in HOME, leads: its definition there, else its name in CALLEE. */
static bool resolve_target(const CallSite *cs, Module *home, Module *callee,
                           Module **ret_module, uint64_t *ret_entry) {
        if (!cs->valid)
                return false;
        if (cs->has_entry) {
                *ret_module = home;
                *ret_entry = cs->entry;
                return true;
        }
        if (callee != home && module_symbol_addr(callee, cs->name, ret_entry)) {
                *ret_module = callee;
                return true;
        }
        return false;
}

#define TAIL_CHAINS_MAX 8
#define TAIL_SEARCH_BUDGET 512

typedef struct ChainSearch {
        Module *callee, *caller;
        uint64_t callee_entry;
        TailFrame path[TAIL_CHAIN_MAX];
        uint64_t path_entries[TAIL_CHAIN_MAX];
        TailFrame chains[TAIL_CHAINS_MAX][TAIL_CHAIN_MAX];
        size_t lens[TAIL_CHAINS_MAX];
        size_t n_chains;
        bool too_many;
        int budget;
} ChainSearch;

static void chain_search(ChainSearch *cs, Module *m, uint64_t entry, size_t depth) {
        if (--cs->budget < 0 || cs->too_many)
                return;
        /* Synthesized frames live in the caller's or the callee's module: those are the
         * ones whose load address the unwinder knows. */
        if (m != cs->callee && m != cs->caller)
                return;
        for (size_t i = 0; i < depth; i++)
                if (cs->path[i].module == m && cs->path_entries[i] == entry)
                        return;         /* a cycle */

        const TailEdges *te = tail_edges(m, entry);
        for (size_t i = 0; i < te->n; i++) {
                Module *tm;
                uint64_t t;
                if (!resolve_target(&te->edges[i].target, m, cs->callee, &tm, &t))
                        continue;
                cs->path[depth] = (TailFrame) { .module = m, .ret_pc = te->edges[i].ret_pc };
                cs->path_entries[depth] = entry;
                if (tm == cs->callee && t == cs->callee_entry) {
                        if (cs->n_chains == TAIL_CHAINS_MAX) {
                                cs->too_many = true;
                                return;
                        }
                        memcpy(cs->chains[cs->n_chains], cs->path, (depth + 1) * sizeof(TailFrame));
                        cs->lens[cs->n_chains++] = depth + 1;
                        continue;
                }
                if (depth + 1 < TAIL_CHAIN_MAX)
                        chain_search(cs, tm, t, depth + 1);
        }
}

static bool tail_frame_eq(const TailFrame *a, const TailFrame *b) {
        return a->module == b->module && a->ret_pc == b->ret_pc;
}

static TailChain *compute_chain(Module *caller, Module *tm, uint64_t t, Module *callee,
                                uint64_t callee_entry) {
        ChainSearch *cs = calloc(1, sizeof *cs);
        TailFrame out[TAIL_CHAIN_MAX];
        size_t n_out = 0;

        if (!cs)
                return NULL;
        cs->callee = callee;
        cs->caller = caller;
        cs->callee_entry = callee_entry;
        cs->budget = TAIL_SEARCH_BUDGET;
        chain_search(cs, tm, t, 0);

        if (cs->n_chains > 0 && !cs->too_many) {
                /* Callers common to all chains (from the called function on), and callees
                 * common to all (ending at the frame below), as gdb intersects them. */
                size_t min = SIZE_MAX, p = 0, q = 0;
                for (size_t i = 0; i < cs->n_chains; i++)
                        min = MIN(min, cs->lens[i]);
                while (p < min) {
                        size_t i;
                        for (i = 1; i < cs->n_chains; i++)
                                if (!tail_frame_eq(&cs->chains[i][p], &cs->chains[0][p]))
                                        break;
                        if (i < cs->n_chains)
                                break;
                        p++;
                }
                while (q < min - p) {
                        size_t i;
                        const TailFrame *f0 = &cs->chains[0][cs->lens[0] - 1 - q];
                        for (i = 1; i < cs->n_chains; i++)
                                if (!tail_frame_eq(&cs->chains[i][cs->lens[i] - 1 - q], f0))
                                        break;
                        if (i < cs->n_chains)
                                break;
                        q++;
                }
                /* Callee side first. */
                for (size_t i = 0; i < q; i++)
                        out[n_out++] = cs->chains[0][cs->lens[0] - 1 - i];
                for (size_t i = p; i-- > 0;)
                        out[n_out++] = cs->chains[0][i];
        }
        free(cs);

        TailChain *c = calloc(1, sizeof *c + n_out * sizeof(TailFrame));
        if (!c)
                return NULL;
        *c = (TailChain) { .callee_module = callee, .target_module = tm,
                           .callee_entry = callee_entry, .target_entry = t, .n = n_out };
        memcpy(c->frames, out, n_out * sizeof(TailFrame));
        return c;
}

const TailChain *symbols_tail_chain(Module *caller, uint64_t ret, Module *callee,
                                    uint64_t callee_entry) {
        Symbolizer *s = caller->symbolizer;
        Module *tm;
        uint64_t t;

        if (caller->kind != MODULE_ELF || callee->kind != MODULE_ELF)
                return NULL;
        const CallSite *site = call_site_at(caller, ret);
        if (!resolve_target(site, caller, callee, &tm, &t))
                return NULL;
        if (tm == callee && t == callee_entry)
                return NULL;            /* a plain call: the common case */

        uint64_t key[4] = { (uintptr_t) tm, t, (uintptr_t) callee, callee_entry };
        uint64_t h = hash_bytes(key, sizeof key);
        TailChain *head = u64map_get(&s->tail_chains, h), *c;
        for (c = head; c; c = c->next)
                if (c->target_module == tm && c->target_entry == t &&
                    c->callee_module == callee && c->callee_entry == callee_entry)
                        return c->n > 0 ? c : NULL;

        c = compute_chain(caller, tm, t, callee, callee_entry);
        if (!c)
                return NULL;
        c->next = head;
        u64map_put(&s->tail_chains, h, c);
        return c->n > 0 ? c : NULL;
}

void symbols_tail_chains_done(Symbolizer *s) {
        uint64_t k;
        void *v;
        for (size_t i = 0; u64map_next(&s->tail_chains, &i, &k, &v);)
                for (TailChain *c = v, *next; c; c = next) {
                        next = c->next;
                        free(c);
                }
        u64map_done(&s->tail_chains, NULL);
}
