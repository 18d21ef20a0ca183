/* symbolize/kallsyms.h -- kernel pcs to function names, from /proc/kallsyms, handed out as
 * SymLocs so that a profile encoder treats a kernel frame like a user frame.
 *
 * The table is read once, kept sorted by address, and searched by binary search; each
 * resolved pc gets one cached SymLoc that lives as long as the Kallsyms. A kernel SymLoc
 * has module "[kernel.kallsyms]" (KALLSYMS_MODULE_KERNEL) or, for a loadable module, the
 * 4th column of kallsyms as is ("[ext4]", "[bpf]"); one Frame with the function name and
 * entry; no file, no line, no build-id. Kernel addresses are absolute: module_offset is
 * the lookup pc itself and Frame.entry the symbol's address, so `function+0xoff` is
 * lookup_pc − entry. Frames come from PerfSample.kernel_frames, which is how a caller
 * knows they are kernel frames.
 *
 * When kernel.kptr_restrict hides addresses from us (every address reads as 0: no
 * CAP_SYSLOG, or kptr_restrict = 2) the table is empty, kallsyms_hidden() says so, and
 * every pc resolves to a SymLoc without frames (shown as [kernel.kallsyms]+0xADDR).
 *
 * Not thread-safe: one caller at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define KALLSYMS_PATH "/proc/kallsyms"
#define KALLSYMS_MODULE_KERNEL "[kernel.kallsyms]"
#define KALLSYMS_LINES_MAX (1u << 23)           /* lines read at most */
#define KALLSYMS_LINE_MAX 1024u                 /* longer lines are skipped */
#define KALLSYMS_MODULES_MAX 8192u              /* distinct modules kept */
#define KALLSYMS_LOCS_MAX (1u << 20)            /* distinct pcs cached; see resolve */
/* The last symbol of a module covers at most this much: nothing says where it ends. */
#define KALLSYMS_LAST_SYMBOL_SIZE (64u * 1024u)

typedef struct Kallsyms Kallsyms;

/* Reads PATH (NULL: KALLSYMS_PATH) and keeps the text symbols (types T t W w). A hidden
 * table (all addresses 0) is not an error. 0 with *ret set, or negative errno (-ENOENT no
 * such file, -EACCES, -ENOMEM); *ret untouched on failure. */
int kallsyms_load(const char *path, Kallsyms **ret);

/* Accepts NULL, returns NULL. Every SymLoc it handed out dies with it. */
Kallsyms *kallsyms_free(Kallsyms *k);

/* True when kptr_restrict hid the addresses: no kernel symbols. */
bool kallsyms_hidden(const Kallsyms *k);

/* Text symbols kept (after aliases at one address were merged into one). */
size_t kallsyms_count(const Kallsyms *k);

/* Resolves LOOKUP_PC (pc − 1 for a return address, as for user frames) to a cached SymLoc.
 * Never NULL. At one address with several names, the global one wins over a weak or local
 * one, then the one with fewer leading underscores, then the shorter. A pc before the first
 * symbol, in a gap between modules or beyond KALLSYMS_LAST_SYMBOL_SIZE after a module's last
 * symbol gets a SymLoc without frames. Once KALLSYMS_LOCS_MAX pcs are cached, further pcs
 * resolve to one SymLoc per symbol (module_offset = the symbol's address). */
const SymLoc *kallsyms_resolve(Kallsyms *k, uint64_t lookup_pc);

/* The module holding the symbol LOOKUP_PC resolves to, as a range for a profile mapping:
 * [start, end) spans that module's text symbols. 0, or -ENOENT when no symbol covers
 * LOOKUP_PC. Strings live as long as K. */
int kallsyms_module_range(const Kallsyms *k, uint64_t lookup_pc, const char **ret_name,
                          uint64_t *ret_start, uint64_t *ret_end);
