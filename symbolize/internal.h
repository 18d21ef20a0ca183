/* symbolize/internal.h -- private structures shared by the files of symbolize/: modules
 * (one per distinct ELF file, shared by every target), regions (where a target maps them)
 * and the string pool that keeps every name handed out alive as long as the Symbolizer.
 *
 * Ownership: the Symbolizer owns every Module, every SymLoc and every interned string.
 * An AddressSpace owns its regions and its libunwind address space; its regions point at
 * modules but never own them. */
#pragma once

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <libunwind.h>
#include <stdbool.h>
#include <stdint.h>

#include "debuginfod.h"
#include "hashmap.h"
#include "jitmap.h"
#include "symbolizer.h"

/* Limits on what an untrusted file can make us allocate or iterate over. */
#define MODULE_LOADS_MAX 64             /* PT_LOAD headers kept per module */
#define MODULE_BUILD_ID_MAX 64          /* bytes of NT_GNU_BUILD_ID accepted */
#define MODULE_FDE_COUNT_MAX (UINT32_C(1) << 26)
#define VDSO_SIZE_MAX (UINT64_C(1) << 20)
#define SYMLOC_FRAMES_MAX 64            /* inline depth kept per pc */
#define UNMAPPED_LOCS_MAX 65536         /* distinct pcs-in-no-mapping remembered */
#define JIT_LOCS_MAX (UINT32_C(1) << 18) /* SymLocs of JIT code made, all processes */
#define JIT_PC_LOCS_MAX 65536           /* of which one per pc; then one per symbol */
#define JIT_NAME_BYTES_KEPT (UINT64_C(64) << 20)       /* bytes of their names, at most */
#define JIT_AS_LOCS_MAX 65536           /* JIT pcs remembered per address space */

/* A string -> value map with exact key comparison on top of U64Map (hash -> chain). */
typedef struct StrEntry {
        struct StrEntry *next;
        void *value;
        char key[];
} StrEntry;

typedef struct StrMap {
        U64Map map;                     /* hash_bytes(key) -> StrEntry chain */
} StrMap;

void *strmap_get(const StrMap *m, const char *key);
/* Adds KEY (which must not be present yet) and returns the entry: its key is a stable
 * copy that lives as long as the map. Aborts on allocation failure, like U64Map. */
StrEntry *strmap_add(StrMap *m, const char *key, void *value);
void strmap_done(StrMap *m, void (*free_value)(void *));

/* A CU's address range, for files without .debug_aranges. */
typedef struct CuRange {
        uint64_t start, end;            /* DWARF addresses */
        Dwarf_Off cu_offset;            /* of the CU DIE */
} CuRange;

#define CU_RANGES_MAX 1000000

typedef struct LoadSegment {
        uint64_t vaddr, memsz;
        uint64_t offset, filesz;
        bool executable, writable;
} LoadSegment;

typedef enum ModuleKind {
        MODULE_ELF,                     /* a file we could open (it may still be garbage) */
        MODULE_UNREADABLE,              /* the file could not be opened: module+0xoff */
        MODULE_PSEUDO,                  /* no file: [anon], [heap], [stack]…, offsets from
                                           the mapping start */
} ModuleKind;

typedef struct Module {
        Symbolizer *symbolizer;
        ModuleKind kind;
        const char *name;               /* interned: path as first mapped, "[vdso]", "[anon]" */
        const char *build_id;           /* interned lowercase hex, or NULL */
        char *debuglink_path;           /* file name libdwfl uses for .gnu_debuglink */
        char *root;                     /* "/proc/PID/root" when first mapped by a target of
                                           another root (a container), whose debug files
                                           are searched too; else NULL */
        struct DebugRoot *debug_root;   /* the callbacks that do it, made by symbols.c */

        int fd;                         /* read-only, O_CLOEXEC; -EBADF when none */
        const uint8_t *image;           /* the whole file, mmapped read-only */
        size_t image_size;
        Elf *elf;                       /* NULL when the file is no usable x86-64 ELF */
        bool exec_type;                 /* ET_EXEC: addresses are absolute */

        LoadSegment loads[MODULE_LOADS_MAX];
        size_t n_loads;
        uint64_t relro_start, relro_end;        /* vaddr range rewritten by ld.so */
        uint64_t text_start, text_end;          /* vaddr hull of executable PT_LOADs */

        bool has_eh_table;              /* .eh_frame_hdr with a usable search table */
        uint64_t eh_hdr_vaddr;
        uint64_t eh_table_vaddr;
        uint64_t eh_fde_count;

        /* Created on first use by symbols.c. */
        bool dwfl_tried;
        bool dwarf_missing;             /* neither the file nor a local debug file has DWARF */
        char *fetched_debuginfo;        /* debug file downloaded for its build-id, or NULL */
        Dwfl *dwfl;
        Dwfl_Module *dwfl_module;
        bool cfi_tried;
        Dwarf_CFI *debug_cfi;           /* .debug_frame (of the file or its debug file) */
        Dwarf_Addr debug_cfi_bias;

        bool sym_names_built;
        U64Map sym_names;               /* symbol address -> interned name gdb would pick */
        U64Map name_addrs;              /* hash of symbol name -> address + 1 */

        /* Tail-call synthesis (symbols.c), all lazily filled: */
        U64Map call_sites;              /* return address -> CallSite* */
        U64Map tail_edges;              /* function entry -> TailEdges* */

        U64Map locs;                    /* module-relative address -> SymLoc* */

        U64Map data_names;              /* module-relative address -> interned data name, or
                                           NO_DATA_NAME (symbols.c) */
        bool var_index_built;           /* symbols.c, at the first data name inside a variable */
        U64Map var_dies;                /* DWARF address of a global variable -> its DIE
                                           offset + 1 */

        bool cu_ranges_built;           /* symbols.c, when .debug_aranges finds no CU */
        CuRange *cu_ranges;
        size_t n_cu_ranges;
} Module;

typedef struct Region {
        uint64_t start, end, offset;
        uint64_t inode;
        uint32_t dev_major, dev_minor;
        bool readable, writable, executable, deleted;
        char *path;                     /* owned copy of the maps path; NULL = anonymous */
        Module *module;                 /* never NULL */
        uint64_t bias;                  /* runtime address - module vaddr (mod 2^64) */
} Region;

/* The target of a DW_TAG_call_site, found in the module of the caller: its definition
 * when that module has one, else its name (to be looked up in the callee's module). */
typedef struct CallSite {
        bool valid;                     /* a direct call site was found there */
        bool has_entry;                 /* defined in the caller's module at ENTRY */
        uint64_t entry;
        const char *name;               /* interned linkage name or name, or NULL */
} CallSite;

typedef struct TailEdge {
        uint64_t ret_pc;                /* DW_AT_call_return_pc of a tail call site */
        CallSite target;
} TailEdge;

typedef struct TailEdges {
        size_t n;
        TailEdge edges[];
} TailEdges;

/* Functions entered by tail calls between a callee and its caller, callee side first:
 * for each, the return pc of its tail call site (what gdb shows as the frame's pc). */
typedef struct TailFrame {
        Module *module;
        uint64_t ret_pc;                /* module-relative */
} TailFrame;

typedef struct TailChain {
        Module *callee_module, *target_module;
        uint64_t callee_entry, target_entry;
        struct TailChain *next;         /* same hash */
        size_t n;
        TailFrame frames[];
} TailChain;

#define TAIL_CHAIN_MAX 16               /* frames synthesized between two real frames */

/* The lookup cache of a module from before its debug file arrived. */
typedef struct RetiredLocs {
        struct RetiredLocs *next;
        U64Map locs;
} RetiredLocs;

struct Symbolizer {
        Module **modules;
        size_t n_modules, cap_modules;
        StrMap by_key;                  /* "b:<build-id>", "f:<dev>:<ino>:<size>:<mtime>",
                                           "u:<dev>:<ino>:<path>", "p:<name>" -> Module* */
        StrMap strings;                 /* interned strings */
        U64Map unmapped;                /* lookup pc -> SymLoc* for pcs in no mapping */
        SymLoc *unmapped_overflow;      /* shared once UNMAPPED_LOCS_MAX is reached */
        U64Map tail_chains;             /* hash of (target, callee) -> TailChain list */
        U64Map demangled;               /* interned name -> its interned demangled form,
                                           or itself (demangle.c) */
        DebugFetcher *fetcher;          /* NULL unless $DEBUGINFOD_URLS names a server */
        RetiredLocs *retired;           /* SymLocs replaced since: snapshots still hold them */
        U64Map jit_locs;                /* hash of (file, name, entry, pc) -> JitLoc list */
        size_t n_jit_locs;
        uint64_t jit_name_bytes;
        SymbolizerStats stats;
};

struct AddressSpace {
        Symbolizer *symbolizer;
        pid_t pid;
        Region *regions;                /* sorted by start, non-overlapping */
        size_t n_regions;
        unw_addr_space_t unw;
        StackFrame *scratch;            /* UNWIND_MAX_DEPTH frames, reused per unwind */
        uint64_t *scratch_sp;           /* and their stack pointers (loop detection) */

        /* JIT code: the target's perf map and jitdump file (jitmap.c), checked for
         * changes at the first lookup after each address_space_update() or a second
         * after the last check. Their names change with time and are the process's own,
         * so their SymLocs are looked up here, not in the modules' caches. */
        JitFile *perf_map, *jitdump;
        pid_t nspid;                    /* the pid in the target's namespace; 0: unknown */
        uid_t uid;                      /* owner of /proc/PID: who may own its JIT files */
        bool jit_check_due;
        uint64_t jit_checked_ns;
        uint64_t perf_map_generation, jitdump_generation;      /* jit_locs made for them */
        U64Map jit_locs;                /* lookup pc -> SymLoc* (the symbolizer's) */
};

/* symbolizer.c */
const char *symbolizer_intern(Symbolizer *s, const char *str);
const Region *address_space_find_region(const AddressSpace *as, uint64_t addr);

/* demangle.c */
/* NAME (interned) as gdb prints a symbol without DWARF: demangled and interned, or NAME
 * itself when it is not mangled. Cached. */
const char *symbolizer_demangle(Symbolizer *s, const char *name);

/* elf-file.c */
/* Maps the file open at FD (not taken) and parses what the unwinder and the symbolizer
 * need: build-id, PT_LOADs, PT_GNU_RELRO, .eh_frame_hdr. A file that is not a usable
 * x86-64 ELF leaves m->elf NULL and is still a valid (frameless) module. 0, or negative
 * errno when the file cannot be mapped. */
int module_load_image(Module *m, int fd);
void module_unload_image(Module *m);
/* File offset -> module vaddr through the PT_LOAD holding it. false when none does. */
bool module_offset_to_vaddr(const Module *m, uint64_t offset, uint64_t *ret);
/* Reads LEN bytes at file OFFSET (module vaddr VADDR) as a read-only private mapping of
 * the file shows them: past the end of the file, zeros. false when there is no image or
 * the bytes were rewritten by ld.so (PT_GNU_RELRO), so the file does not show them. */
bool module_read_file(const Module *m, uint64_t offset, uint64_t vaddr, void *buf, size_t len);
/* Copies the [vdso] image of PID (process_vm_readv), falling back to our own vdso when
 * PID is gone (same kernel, same image). Returns a memfd holding it, or negative errno. */
int vdso_open_memfd(pid_t pid, uint64_t start, uint64_t size);

/* symbols.c */
/* Builds the frames for module vaddr ADDR (innermost inline first). Never fails: an
 * address nothing is known about gets a SymLoc without frames. NULL on OOM only. */
SymLoc *symbols_resolve(Module *m, uint64_t addr);
/* Names the variable (STT_OBJECT symbol, demangled) of M whose extent holds the
 * module-relative ADDR as C takes addresses: "&cache.lock", "&ring[1]", "&table+0x8"
 * (members and elements from DWARF where the module has it). */
bool symbols_data_object(Module *m, uint64_t addr, char *buf, size_t size);
/* The tail-call frames gdb would synthesize between a callee (physical function at
 * module-relative CALLEE_ENTRY in CALLEE) and its caller, which returns to RET in CALLER:
 * where the caller's DW_TAG_call_site at RET names another function than the callee, the
 * chain of DW_AT_call_tail_call sites from that function to the callee (gdb's
 * call_site_find_chain: a unique chain, else the part common to all). Frames are in
 * CALLER or CALLEE only. NULL when there is none. Cached; lives with the Symbolizer. */
const TailChain *symbols_tail_chain(Module *caller, uint64_t ret, Module *callee,
                                    uint64_t callee_entry);
void symbols_tail_chains_done(Symbolizer *s);
/* Forgets everything derived from the module's Dwfl (names, call sites, the Dwfl itself),
 * so that the next use reopens it: after its debug file arrived. Not its locs. */
void module_symbols_reset(Module *m);
/* The module's .debug_frame CFI (lazily loaded), or NULL. */
Dwarf_CFI *module_debug_cfi(Module *m, Dwarf_Addr *ret_bias);
void module_symbols_done(Module *m);

/* unwind.c */
int unwind_addr_space_new(unw_addr_space_t *ret);
