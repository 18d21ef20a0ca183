/* symbolize/symbolizer.h -- map addresses of a process to functions, inlines and lines.
 *
 * A Symbolizer is one per daemon: it owns the module cache, keyed by build-id (or, for a
 * file without one, by device, inode, size and mtime), so one libc is opened, indexed and
 * symbolized once for every target and every snapshot. An AddressSpace is one per target:
 * which module is mapped where, as of the last snapshot, plus libunwind's per-process
 * state.
 *
 * Target files are opened through /proc/PID/map_files/START-END (deleted binaries, files
 * of other mount namespaces) and else /proc/PID/root/PATH. Everything read from them is
 * untrusted: a corrupt or unreadable file yields frames shown as module+0xoff, never a
 * crash. Not thread-safe: one caller at a time per Symbolizer. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "procfs.h"
#include "snapshot.h"

typedef struct Symbolizer Symbolizer;
typedef struct AddressSpace AddressSpace;

#define UNWIND_MAX_DEPTH 1024

typedef struct SymbolizerStats {
        uint64_t modules;               /* distinct modules cached */
        uint64_t locations;             /* distinct (module, offset) locations cached */
        uint64_t lookups, lookup_hits;
        uint64_t debuginfod_started;    /* downloads of missing debug files begun */
        uint64_t debuginfod_succeeded;
        uint64_t debuginfod_failed;
} SymbolizerStats;

/* 0, or negative errno. On success *ret owns the new symbolizer. */
int symbolizer_new(Symbolizer **ret);
/* Accepts NULL, returns NULL. Every SymLoc it handed out dies with it. */
Symbolizer *symbolizer_free(Symbolizer *s);
void symbolizer_get_stats(const Symbolizer *s, SymbolizerStats *ret);

/* When $DEBUGINFOD_URLS names a server, fetches the debug files of modules that have none
 * locally, by build-id, on a thread of its own: no lookup waits for it. A module's frames
 * are symbolized without DWARF until its file arrives, then afresh from the next
 * address_space_update() on (SymLocs handed out before stay valid). 1 when enabled, 0
 * when no server is configured, or negative errno. */
int symbolizer_enable_debuginfod(Symbolizer *s);

/* 0, or negative errno. The address space starts empty; call address_space_update(). */
int address_space_new(Symbolizer *s, pid_t pid, AddressSpace **ret);
/* Accepts NULL, returns NULL. */
AddressSpace *address_space_free(AddressSpace *as);

/* Brings the address space in line with MAPS (usually a snapshot's). Modules already known
 * are kept; new file mappings are opened and identified. A module that cannot be opened is
 * recorded as unreadable (its frames become module+0xoff). 0, or negative errno for
 * allocation failure only. */
int address_space_update(AddressSpace *as, const Maps *maps);

typedef struct ModuleInfo {
        const char *path;               /* as the target maps it, "[vdso]"; NULL: anonymous */
        const char *build_id;           /* lowercase hex of NT_GNU_BUILD_ID, or NULL */
        bool symbolized;                /* an ELF file we can read: cprofd resolved its pcs
                                           as well as it can, so a consumer should not try */
        bool jit;                       /* anonymous executable memory of a process with a
                                           perf map or jitdump: path names that file */
} ModuleInfo;

/* Describes what is mapped at ADDR as of the last address_space_update(). Strings live
 * as long as the symbolizer. 0, or -ENOENT when ADDR is in no known mapping. */
int address_space_module_info(AddressSpace *as, uint64_t addr, ModuleInfo *ret);

/* Names the variable at data address ADDR as C would take its address: "&ho_state_mu",
 * "&cache.lock", "&ring[1]", "&table+0x8" (the symbol tables of the module mapping it,
 * its debug file's included; members and elements from its DWARF). 0, or -ENOENT when no
 * variable of a known module spans ADDR. */
int address_space_data_name(AddressSpace *as, uint64_t addr, char *buf, size_t size);

/* Resolves LOOKUP_PC (already pc − 1 for return addresses) to a cached SymLoc. Never
 * NULL: a pc in no mapping gets a SymLoc with module NULL and no frames. A pc in no
 * mapping or in executable memory that is no readable ELF file is looked up in the
 * target's perf map (/tmp/perf-PID.map, PID as the target's namespace sees it, under
 * /proc/PID/root) and jitdump file (the jit-PID.dump it maps, else /tmp/jit-PID.dump),
 * re-read when they changed: a symbol found there gives one frame named as the file
 * names it, module the file's path, module_offset the pc. */
const SymLoc *address_space_resolve(AddressSpace *as, uint64_t lookup_pc);
/* Loads every executable module of MAPS now (its symbols and debug info), so that the
 * first samples of a profiler do not wait for libdw while its buffers fill. */
void address_space_warm_up(AddressSpace *as, const Maps *maps);

/* Unwinds the thread from its captured registers and stack copy (never touching the live
 * process), with DWARF CFI from .eh_frame (and .debug_frame where present), through signal
 * frames, and symbolizes every frame. Stops at the outermost frame, a zero pc, a repeated
 * (pc, sp), UNWIND_MAX_DEPTH frames, or the end of the copy; ret->end says which.
 * The signal trampoline's frame and the interrupted frame above it are exact. Like gdb,
 * frames of functions that left the stack by a tail call are rebuilt from DWARF call-site
 * records and inserted (pc = return address of the tail call site, not exact), so
 * ret->n may exceed UNWIND_MAX_DEPTH.
 * 0 with *ret filled (caller frees ret->frames), or negative errno (-EINVAL when the
 * capture holds no registers). */
int address_space_unwind(AddressSpace *as, const ThreadCapture *t, Stack *ret);
