/* symbolize/symbolizer.c -- the module cache (one per daemon) and address spaces (one per
 * target): which file is mapped where, and pc -> cached SymLoc.
 *
 * A module is identified by its build-id when it has one, else by the (device, inode,
 * size, mtime) of the file we opened; both keys point at the same Module, so the second
 * process mapping libc costs one open() and one fstat(), and every SymLoc computed for
 * libc serves every process. Target files are opened through /proc/PID/map_files/START-END
 * (deleted binaries, other mount namespaces), else /proc/PID/root/PATH, else PATH itself
 * when the process is gone (a saved capture) -- the last two only when the inode is the
 * one the maps line names, so a replaced binary is never mistaken for the mapped one.
 *
 * Code a JIT made is named from the target's perf map and jitdump file (jitmap.c) where
 * the pc is in no mapping or in executable memory that is no ELF file we can read. Those
 * names belong to one process and change as it runs: they are cached per address space,
 * and their SymLocs are kept once per (file, name, entry, pc), bounded (JIT_LOCS_MAX).
 *
 * Everything handed out (module names, function names, SymLocs) lives until
 * symbolizer_free(): callers keep pointers without reference counting. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "debug-root.h"
#include "internal.h"
#include "macro.h"

/* ---- string map ---- */

void *strmap_get(const StrMap *m, const char *key) {
        for (StrEntry *e = u64map_get(&m->map, hash_bytes(key, strlen(key))); e; e = e->next)
                if (strcmp(e->key, key) == 0)
                        return e->value;
        return NULL;
}

StrEntry *strmap_add(StrMap *m, const char *key, void *value) {
        size_t len = strlen(key);
        uint64_t h = hash_bytes(key, len);
        StrEntry *e = malloc(sizeof *e + len + 1);
        if (!e)
                abort();
        memcpy(e->key, key, len + 1);
        e->value = value;
        e->next = u64map_get(&m->map, h);
        u64map_put(&m->map, h, e);
        return e;
}

void strmap_done(StrMap *m, void (*free_value)(void *)) {
        uint64_t k;
        void *v;
        for (size_t i = 0; u64map_next(&m->map, &i, &k, &v);)
                for (StrEntry *e = v, *next; e; e = next) {
                        next = e->next;
                        if (free_value && e->value)
                                free_value(e->value);
                        free(e);
                }
        u64map_done(&m->map, NULL);
}

const char *symbolizer_intern(Symbolizer *s, const char *str) {
        if (!str)
                return NULL;
        size_t len = strlen(str);
        uint64_t h = hash_bytes(str, len);
        for (StrEntry *e = u64map_get(&s->strings.map, h); e; e = e->next)
                if (strcmp(e->key, str) == 0)
                        return e->key;
        return strmap_add(&s->strings, str, NULL)->key;
}

/* ---- modules ---- */

static Module *module_free(Module *m) {
        if (!m)
                return NULL;
        u64map_done(&m->locs, free);
        module_symbols_done(m);
        module_unload_image(m);
        closep(&m->fd);
        free(m->debuglink_path);
        free(m->fetched_debuginfo);
        free(m->root);
        debug_root_free(m->debug_root);         /* after module_symbols_done: its Dwfl used it */
        free(m);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Module, module_free);

static Module *module_new(Symbolizer *s, ModuleKind kind, const char *name) {
        Module *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        m->symbolizer = s;
        m->kind = kind;
        m->fd = -EBADF;
        m->name = symbolizer_intern(s, name);
        return m;
}

/* Takes M (also on failure) and files it under KEY. */
static int symbolizer_add_module(Symbolizer *s, Module *m, const char *key) {
        if (s->n_modules == s->cap_modules) {
                size_t cap = s->cap_modules ? s->cap_modules * 2 : 32;
                Module **p = realloc(s->modules, cap * sizeof *p);
                if (!p) {
                        module_free(m);
                        return -ENOMEM;
                }
                s->modules = p;
                s->cap_modules = cap;
        }
        s->modules[s->n_modules++] = m;
        strmap_add(&s->by_key, key, m);
        if (m->kind != MODULE_PSEUDO)
                s->stats.modules++;
        return 0;
}

static Module *pseudo_module(Symbolizer *s, const char *name) {
        char key[512];
        Module *m;

        (void) snprintf(key, sizeof key, "p:%s", name);
        m = strmap_get(&s->by_key, key);
        if (m)
                return m;
        m = module_new(s, MODULE_PSEUDO, name);
        if (!m || symbolizer_add_module(s, m, key) < 0)
                return NULL;
        return m;
}

static Module *unreadable_module(Symbolizer *s, const MapEntry *e, const char *name) {
        char key[4200];
        Module *m;

        (void) snprintf(key, sizeof key, "u:%" PRIu32 ":%" PRIu32 ":%" PRIu64 ":%s",
                        e->dev_major, e->dev_minor, e->inode, name);
        m = strmap_get(&s->by_key, key);
        if (m)
                return m;
        m = module_new(s, MODULE_UNREADABLE, name);
        if (!m || symbolizer_add_module(s, m, key) < 0)
                return NULL;
        return m;
}

/* Takes FD. Identifies the ELF file open at FD: an existing module with the same
 * build-id, file identity (FILE_KEY) or, for a file without either (a vdso without a
 * build-id), the same contents; else a new module. */
static Module *module_from_fd(Symbolizer *s, int fd_in, const char *name, const char *file_key,
                              const char *debuglink_path) {
        _cleanup_close_ int fd = fd_in;
        _cleanup_(module_freep) Module *m = NULL;
        char key[2 * MODULE_BUILD_ID_MAX + 64];
        Module *found;

        if (file_key) {
                found = strmap_get(&s->by_key, file_key);
                if (found)
                        return found;
        }

        m = module_new(s, MODULE_ELF, name);
        if (!m)
                return NULL;
        /* A file we cannot map is a module without frames; not an error. */
        (void) module_load_image(m, fd);

        if (m->build_id)
                (void) snprintf(key, sizeof key, "b:%s", m->build_id);
        else if (file_key)
                (void) snprintf(key, sizeof key, "%s", file_key);
        else if (m->image)
                (void) snprintf(key, sizeof key, "h:%016" PRIx64 ":%zu",
                                hash_bytes(m->image, m->image_size), m->image_size);
        else
                (void) snprintf(key, sizeof key, "a:%p", (void *) m);  /* unique */

        found = strmap_get(&s->by_key, key);
        if (found) {
                if (file_key && strcmp(file_key, key) != 0)
                        strmap_add(&s->by_key, file_key, found);
                return found;
        }

        m->fd = TAKE_FD(fd);
        if (debuglink_path) {
                m->debuglink_path = strdup(debuglink_path);
                if (!m->debuglink_path)
                        return NULL;
        }
        Module *ret = TAKE_PTR(m);
        if (symbolizer_add_module(s, ret, key) < 0)
                return NULL;
        if (file_key && strcmp(file_key, key) != 0)
                strmap_add(&s->by_key, file_key, ret);
        return ret;
}

/* ---- JIT code ---- */

typedef struct JitLoc {
        struct JitLoc *next;            /* same hash */
        SymLoc *loc;
} JitLoc;

static void jit_locs_done(Symbolizer *s) {
        uint64_t k;
        void *v;
        for (size_t i = 0; u64map_next(&s->jit_locs, &i, &k, &v);)
                for (JitLoc *l = v, *next; l; l = next) {
                        next = l->next;
                        free(l->loc);
                        free(l);
                }
        u64map_done(&s->jit_locs, NULL);
}

/* The SymLoc of PC in SYM, a symbol of the JIT file named FILE: made once, kept for
 * every later lookup. Past JIT_PC_LOCS_MAX, one SymLoc serves a whole symbol (its
 * module_offset is then the symbol's start: names stay, offsets go). NULL when
 * JIT_LOCS_MAX are made already or their names are too many bytes (or on OOM). */
static const SymLoc *jit_loc(Symbolizer *s, const char *file, const JitSymbol *sym, uint64_t pc) {
        if (s->n_jit_locs >= JIT_PC_LOCS_MAX)
                pc = sym->start;
        const char *module = symbolizer_intern(s, file);
        const char *name = symbolizer_intern(s, sym->name);
        uint64_t key[4] = { (uintptr_t) module, (uintptr_t) name, sym->start, pc };
        uint64_t h = hash_bytes(key, sizeof key);
        JitLoc *first = u64map_get(&s->jit_locs, h);

        for (JitLoc *l = first; l; l = l->next)
                if (l->loc->module == module && l->loc->frames[0].function == name &&
                    l->loc->frames[0].entry == sym->start && l->loc->module_offset == pc) {
                        s->stats.lookup_hits++;
                        return l->loc;
                }
        if (s->n_jit_locs >= JIT_LOCS_MAX || s->jit_name_bytes >= JIT_NAME_BYTES_KEPT)
                return NULL;
        JitLoc *l = malloc(sizeof *l);
        SymLoc *loc = calloc(1, sizeof *loc + sizeof(Frame));
        if (!l || !loc) {
                free(l);
                free(loc);
                return NULL;
        }
        /* module_offset is the pc itself: a perf map's addresses are absolute. */
        *loc = (SymLoc) { .module = module, .module_offset = pc, .n_frames = 1 };
        loc->frames[0] = (Frame) { .function = name, .entry = sym->start };
        l->loc = loc;
        l->next = first;
        u64map_put(&s->jit_locs, h, l);
        s->n_jit_locs++;
        s->jit_name_bytes += strlen(name) + 1;  /* counts a name reused, too: a bound */
        s->stats.locations++;
        return loc;
}

/* Whether a pc in R (NULL: in no mapping) may be JIT code: executable memory no ELF file
 * we read describes. */
static bool region_may_be_jit(const Region *r) {
        return !r || (r->executable && !(r->module->kind == MODULE_ELF && r->module->elf));
}

/* "jit-N.dump": how runtimes name jitdump files (N their pid as they see it). */
static bool is_jitdump_name(const char *path) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strncmp(base, "jit-", 4) != 0)
                return false;
        const char *p = base + 4, *digits = p;
        while (*p >= '0' && *p <= '9')
                p++;
        return p > digits && strcmp(p, ".dump") == 0;
}

/* Reads once who the target is: its pid in its namespace (the number in its JIT files'
 * names) and its owner (who may own them). false when the process cannot be read. */
static bool jit_identify(AddressSpace *as) {
        char proc[32];
        struct stat st;
        pid_t nspid;

        if (as->nspid != 0)
                return true;
        (void) snprintf(proc, sizeof proc, "/proc/%d", (int) as->pid);
        if (stat(proc, &st) < 0 || procfs_read_nspid(as->pid, &nspid) < 0)
                return false;
        as->uid = st.st_uid;
        as->nspid = nspid;
        return true;
}

/* Follows the jitdump file the target maps (runtimes map it so perf sees where it is),
 * else /tmp/jit-NSPID.dump. */
static void jit_find_jitdump(AddressSpace *as, const Maps *maps) {
        char open_path[PATH_MAX + 64], name[64];
        const char *path = NULL;

        if (!jit_identify(as))
                return;
        for (size_t i = 0; i < maps->n && !path; i++) {
                const MapEntry *e = &maps->entries[i];
                if (e->path && e->path[0] == '/' && !e->deleted && is_jitdump_name(e->path))
                        path = e->path;
        }
        if (!path) {
                if (as->jitdump)
                        return;         /* keep following the one we found */
                (void) snprintf(name, sizeof name, "/tmp/jit-%d.dump", (int) as->nspid);
                path = name;
        }
        if (as->jitdump && strcmp(jit_file_name(as->jitdump), path) == 0)
                return;
        (void) snprintf(open_path, sizeof open_path, "/proc/%d/root%s", (int) as->pid, path);
        JitFile *f;
        if (jit_file_new(JIT_FORMAT_JITDUMP, open_path, path, as->uid, &f) < 0)
                return;
        jit_file_free(as->jitdump);
        as->jitdump = f;
        as->jitdump_generation = UINT64_MAX;    /* drops what jit_locs holds */
}

/* Re-reads the target's JIT files when due. */
static void jit_refresh(AddressSpace *as) {
        uint64_t now = now_monotonic_ns();

        if (as->jit_checked_ns != 0 && !as->jit_check_due && now - as->jit_checked_ns < NSEC_PER_SEC)
                return;
        as->jit_check_due = false;
        as->jit_checked_ns = now;
        if (!jit_identify(as))
                return;
        if (!as->perf_map) {
                char open_path[128], name[64];
                (void) snprintf(name, sizeof name, "/tmp/perf-%d.map", (int) as->nspid);
                (void) snprintf(open_path, sizeof open_path, "/proc/%d/root%s", (int) as->pid, name);
                if (jit_file_new(JIT_FORMAT_PERF_MAP, open_path, name, as->uid, &as->perf_map) < 0)
                        return;
        }
        (void) jit_file_refresh(as->perf_map);
        if (!as->jitdump) {
                Maps none = {};
                jit_find_jitdump(as, &none);
        }
        if (as->jitdump)
                (void) jit_file_refresh(as->jitdump);
}

static bool jit_known(const AddressSpace *as) {
        return (as->perf_map && jit_file_seen(as->perf_map)) ||
                (as->jitdump && jit_file_seen(as->jitdump));
}

/* The SymLoc of a JIT symbol at PC, or NULL when no JIT file of the target names it. */
static const SymLoc *jit_resolve(AddressSpace *as, uint64_t pc) {
        jit_refresh(as);
        if (!jit_known(as))
                return NULL;

        uint64_t pm = as->perf_map ? jit_file_generation(as->perf_map) : 0;
        uint64_t jd = as->jitdump ? jit_file_generation(as->jitdump) : 0;
        if (pm != as->perf_map_generation || jd != as->jitdump_generation) {
                u64map_done(&as->jit_locs, NULL);
                as->perf_map_generation = pm;
                as->jitdump_generation = jd;
        }
        const SymLoc *loc = u64map_get(&as->jit_locs, pc);
        if (loc) {
                as->symbolizer->stats.lookup_hits++;
                return loc;
        }

        JitSymbol sym;
        JitFile *f = NULL;
        if (as->perf_map && jit_file_lookup(as->perf_map, pc, &sym))
                f = as->perf_map;
        else if (as->jitdump && jit_file_lookup(as->jitdump, pc, &sym))
                f = as->jitdump;
        if (!f)
                return NULL;
        loc = jit_loc(as->symbolizer, jit_file_name(f), &sym, pc);
        if (!loc)
                return NULL;
        if (as->jit_locs.n >= JIT_AS_LOCS_MAX)
                u64map_done(&as->jit_locs, NULL);
        u64map_put(&as->jit_locs, pc, (void *) loc);
        return loc;
}

int symbolizer_new(Symbolizer **ret) {
        if (elf_version(EV_CURRENT) == EV_NONE)
                return -ENOTSUP;
        Symbolizer *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int symbolizer_enable_debuginfod(Symbolizer *s) {
        if (s->fetcher)
                return 1;
        if (!debug_fetcher_configured())
                return 0;
        int r = debug_fetcher_new(&s->fetcher);
        return r < 0 ? r : 1;
}

/* A module whose debug file arrived: its SymLocs so far (made without DWARF) leave the
 * lookup cache but stay alive, and its Dwfl is reopened on next use. */
static void module_debuginfo_arrived(Symbolizer *s, Module *m, char *path) {
        RetiredLocs *old = malloc(sizeof *old);
        if (!old) {
                free(path);
                return;
        }
        *old = (RetiredLocs) { .next = s->retired, .locs = m->locs };
        s->retired = old;
        m->locs = (U64Map) {};
        m->fetched_debuginfo = path;
        module_symbols_reset(m);
        /* Tail-call chains were searched without this module's call sites. */
        symbols_tail_chains_done(s);
}

static void symbolizer_collect_fetched(Symbolizer *s) {
        char key[2 * MODULE_BUILD_ID_MAX + 8];
        char *build_id, *path;

        while (debug_fetcher_take(s->fetcher, &build_id, &path)) {
                (void) snprintf(key, sizeof key, "b:%s", build_id);
                Module *m = strmap_get(&s->by_key, key);
                free(build_id);
                if (m && m->kind == MODULE_ELF && !m->fetched_debuginfo)
                        module_debuginfo_arrived(s, m, path);
                else
                        free(path);
        }
}

Symbolizer *symbolizer_free(Symbolizer *s) {
        if (!s)
                return NULL;
        debug_fetcher_free(s->fetcher);
        for (RetiredLocs *r = s->retired, *next; r; r = next) {
                next = r->next;
                u64map_done(&r->locs, free);
                free(r);
        }
        for (size_t i = 0; i < s->n_modules; i++)
                module_free(s->modules[i]);
        free(s->modules);
        symbols_tail_chains_done(s);
        u64map_done(&s->demangled, NULL);       /* names are interned */
        jit_locs_done(s);
        strmap_done(&s->by_key, NULL);
        u64map_done(&s->unmapped, free);
        free(s->unmapped_overflow);
        strmap_done(&s->strings, NULL);
        free(s);
        return NULL;
}

void symbolizer_get_stats(const Symbolizer *s, SymbolizerStats *ret) {
        DebugFetcherStats f;
        debug_fetcher_get_stats(s->fetcher, &f);
        *ret = s->stats;
        ret->debuginfod_started = f.started;
        ret->debuginfod_succeeded = f.succeeded;
        ret->debuginfod_failed = f.failed;
}

/* ---- address spaces ---- */

int address_space_new(Symbolizer *s, pid_t pid, AddressSpace **ret) {
        AddressSpace *as = calloc(1, sizeof *as);
        int r;

        if (!as)
                return -ENOMEM;
        as->symbolizer = s;
        as->pid = pid;
        as->scratch = malloc(UNWIND_MAX_DEPTH * sizeof *as->scratch);
        as->scratch_sp = malloc(UNWIND_MAX_DEPTH * sizeof *as->scratch_sp);
        r = as->scratch && as->scratch_sp ? unwind_addr_space_new(&as->unw) : -ENOMEM;
        if (r < 0) {
                free(as->scratch);
                free(as->scratch_sp);
                free(as);
                return r;
        }
        *ret = as;
        return 0;
}

static void regions_free(Region *regions, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(regions[i].path);
        free(regions);
}

AddressSpace *address_space_free(AddressSpace *as) {
        if (!as)
                return NULL;
        regions_free(as->regions, as->n_regions);
        jit_file_free(as->perf_map);
        jit_file_free(as->jitdump);
        u64map_done(&as->jit_locs, NULL);
        if (as->unw)
                unw_destroy_addr_space(as->unw);
        free(as->scratch);
        free(as->scratch_sp);
        free(as);
        return NULL;
}

const Region *address_space_find_region(const AddressSpace *as, uint64_t addr) {
        size_t lo = 0, hi = as->n_regions;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (as->regions[mid].start <= addr)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0)
                return NULL;
        const Region *r = &as->regions[lo - 1];
        return addr < r->end ? r : NULL;
}

int address_space_module_info(AddressSpace *as, uint64_t addr, ModuleInfo *ret) {
        const Region *r = address_space_find_region(as, addr);
        if (!r)
                return -ENOENT;
        *ret = (ModuleInfo) {
                .path = r->module->kind == MODULE_PSEUDO && !r->path ? NULL : r->module->name,
                .build_id = r->module->build_id,
                .symbolized = r->module->kind == MODULE_ELF && r->module->elf,
        };
        if (!r->path && r->executable) {
                jit_refresh(as);
                const JitFile *f = as->perf_map && jit_file_seen(as->perf_map) ? as->perf_map :
                        as->jitdump && jit_file_seen(as->jitdump) ? as->jitdump : NULL;
                if (f) {
                        ret->path = symbolizer_intern(as->symbolizer, jit_file_name(f));
                        ret->jit = ret->symbolized = true;
                }
        }
        return 0;
}

static bool streq_ptr(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static bool region_same_mapping(const Region *r, const MapEntry *e) {
        return r->start == e->start && r->end == e->end && r->offset == e->offset &&
                r->inode == e->inode && r->dev_major == e->dev_major &&
                r->dev_minor == e->dev_minor && r->deleted == e->deleted &&
                streq_ptr(r->path, e->path);
}

static const Region *old_region(const AddressSpace *as, const MapEntry *e) {
        const Region *r = address_space_find_region(as, e->start);
        return r && region_same_mapping(r, e) ? r : NULL;
}

static bool fd_has_inode(int fd, uint64_t inode) {
        struct stat st;
        return fstat(fd, &st) == 0 && (inode == 0 || (uint64_t) st.st_ino == inode);
}

typedef enum OpenedVia {
        OPENED_VIA_MAP_FILES,
        OPENED_VIA_ROOT,
        OPENED_VIA_PATH,
} OpenedVia;

/* Opens the file of mapping E as the target sees it. Returns the fd, or negative errno. */
static int open_target_file(pid_t pid, const MapEntry *e, OpenedVia *ret_via) {
        char path[PATH_MAX + 64];
        int fd;

        (void) snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
                        (int) pid, e->start, e->end);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                *ret_via = OPENED_VIA_MAP_FILES;
                return fd;
        }

        if (!e->deleted) {
                (void) snprintf(path, sizeof path, "/proc/%d/root%s", (int) pid, e->path);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        if (fd_has_inode(fd, e->inode)) {
                                *ret_via = OPENED_VIA_ROOT;
                                return fd;
                        }
                        (void) close(fd);
                }
        }

        /* The process is gone (a saved capture) or its /proc is closed to us: the plain
         * path, if it still is the very file that was mapped. */
        fd = open(e->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (!fd_has_inode(fd, e->inode)) {
                (void) close(fd);
                return -ESTALE;
        }
        *ret_via = OPENED_VIA_PATH;
        return fd;
}

/* The file name libdwfl looks for .gnu_debuglink files next to (and under
 * /usr/lib/debug/DIR): the path as the target names it, or, when that path means another
 * file in our mount namespace (a container), the same path under /proc/PID/root. */
static void debuglink_path(pid_t pid, const MapEntry *e, int fd, OpenedVia via,
                           char *ret, size_t size) {
        struct stat ours, mapped;
        char root_path[PATH_MAX + 64];

        (void) snprintf(ret, size, "%s", e->path);
        if (via == OPENED_VIA_PATH)
                return;
        if (stat(e->path, &ours) == 0 && fstat(fd, &mapped) == 0 &&
            ours.st_dev == mapped.st_dev && ours.st_ino == mapped.st_ino)
                return;
        (void) snprintf(root_path, sizeof root_path, "/proc/%d/root%s", (int) pid, e->path);
        if (access(root_path, F_OK) == 0)
                (void) snprintf(ret, size, "%s", root_path);
}

/* PID's root directory when it is not ours (a container: chroot, pivot_root), as
 * "/proc/PID/root" in ROOT; false when it is ours or unknown. */
static bool other_root(pid_t pid, char *root, size_t size) {
        struct stat theirs, ours;
        (void) snprintf(root, size, "/proc/%d/root", (int) pid);
        return stat(root, &theirs) == 0 && stat("/", &ours) == 0 &&
               (theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino);
}

static Module *identify_file(AddressSpace *as, const MapEntry *e) {
        Symbolizer *s = as->symbolizer;
        char debuglink[PATH_MAX + 64], file_key[256];
        struct stat st;
        OpenedVia via = OPENED_VIA_PATH;
        Module *found;
        int fd;

        fd = open_target_file(as->pid, e, &via);
        if (fd < 0)
                return unreadable_module(s, e, e->path);
        if (fstat(fd, &st) < 0) {
                (void) close(fd);
                return unreadable_module(s, e, e->path);
        }
        (void) snprintf(file_key, sizeof file_key,
                        "f:%" PRIu64 ":%" PRIu64 ":%" PRIu64 ":%" PRIi64 ".%09ld",
                        (uint64_t) st.st_dev, (uint64_t) st.st_ino, (uint64_t) st.st_size,
                        (int64_t) st.st_mtim.tv_sec, (long) st.st_mtim.tv_nsec);
        found = strmap_get(&s->by_key, file_key);
        if (found) {
                (void) close(fd);
                return found;
        }
        debuglink_path(as->pid, e, fd, via, debuglink, sizeof debuglink);
        Module *m = module_from_fd(s, fd, e->path, file_key, debuglink);
        char root[64];
        if (m && !m->root && !m->dwfl_tried && other_root(as->pid, root, sizeof root))
                m->root = strdup(root);         /* NULL: the host's debug files only */
        return m;
}

static Module *identify_vdso(AddressSpace *as, const MapEntry *e) {
        Symbolizer *s = as->symbolizer;
        int fd = vdso_open_memfd(as->pid, e->start, e->end - e->start);
        if (fd < 0)
                return pseudo_module(s, "[vdso]");
        /* Keyed by build-id (every process of this kernel shares it). */
        return module_from_fd(s, fd, "[vdso]", NULL, NULL);
}

static Module *identify(AddressSpace *as, const MapEntry *e) {
        Symbolizer *s = as->symbolizer;

        if (!e->path || !e->path[0])
                return pseudo_module(s, "[anon]");
        if (strcmp(e->path, "[vdso]") == 0)
                return identify_vdso(as, e);
        if (e->path[0] != '/')
                return pseudo_module(s, e->path);       /* [heap], [stack], [anon:…] */
        if (e->inode == 0)
                return pseudo_module(s, e->path);       /* /dev/zero (deleted), shm … */
        return identify_file(as, e);
}

static uint64_t region_bias(const Module *m, const MapEntry *e) {
        uint64_t vaddr;
        if (m->kind == MODULE_PSEUDO)
                return e->start;
        /* ld.so maps each PT_LOAD from its page-rounded file offset. lld packs segments
         * without padding, so one file page can hold the end of a segment and the start
         * of the next (r-- then r-x): a mapping starting at such a page belongs to the
         * segment that starts in it with the mapping's permissions, not to the one whose
         * bytes merely contain the offset. */
        if (m->kind == MODULE_ELF)
                for (size_t i = 0; i < m->n_loads; i++) {
                        const LoadSegment *l = &m->loads[i];
                        if ((l->offset & ~UINT64_C(0xfff)) == e->offset &&
                            l->executable == e->executable)
                                return e->start - (l->vaddr - (l->offset & 0xfff));
                }
        if (m->kind == MODULE_ELF && module_offset_to_vaddr(m, e->offset, &vaddr))
                return e->start - vaddr;
        return e->start - e->offset;    /* module offsets are then file offsets */
}

int address_space_update(AddressSpace *as, const Maps *maps) {
        Region *regions;
        size_t n = 0;
        bool changed = false;

        symbolizer_collect_fetched(as->symbolizer);

        regions = calloc(maps->n ? maps->n : 1, sizeof *regions);
        if (!regions)
                return -ENOMEM;

        for (size_t i = 0; i < maps->n; i++) {
                const MapEntry *e = &maps->entries[i];
                if (e->end <= e->start)
                        continue;
                if (n > 0 && e->start < regions[n - 1].end)
                        continue;       /* unsorted or overlapping: keep the first */

                Region *r = &regions[n];
                *r = (Region) {
                        .start = e->start, .end = e->end, .offset = e->offset,
                        .inode = e->inode, .dev_major = e->dev_major, .dev_minor = e->dev_minor,
                        .readable = e->readable, .writable = e->writable,
                        .executable = e->executable, .deleted = e->deleted,
                };
                if (e->path) {
                        r->path = strdup(e->path);
                        if (!r->path) {
                                regions_free(regions, n);
                                return -ENOMEM;
                        }
                }

                const Region *old = old_region(as, e);
                if (old) {
                        r->module = old->module;
                        r->bias = old->bias;
                        n++;
                        continue;
                }
                changed = true;

                /* Consecutive mappings of one file share the module found for the first. */
                const Region *prev = n > 0 ? &regions[n - 1] : NULL;
                if (prev && e->path && e->inode != 0 && prev->inode == e->inode &&
                    prev->dev_major == e->dev_major && prev->dev_minor == e->dev_minor &&
                    streq_ptr(prev->path, e->path) && prev->module->kind != MODULE_PSEUDO)
                        r->module = prev->module;
                else
                        r->module = identify(as, e);
                if (!r->module) {
                        free(r->path);
                        regions_free(regions, n);
                        return -ENOMEM;
                }
                r->bias = region_bias(r->module, e);
                n++;
        }

        if (n != as->n_regions)
                changed = true;
        regions_free(as->regions, as->n_regions);
        as->regions = regions;
        as->n_regions = n;

        /* libunwind caches register rules by ip: stale once code moves. */
        if (changed)
                unw_flush_cache(as->unw, 0, 0);
        as->jit_check_due = true;
        jit_find_jitdump(as, maps);
        return 0;
}

/* ---- resolving ---- */

static const SymLoc oom_loc = {};

static const SymLoc *unmapped_loc(Symbolizer *s, uint64_t pc) {
        SymLoc *loc = u64map_get(&s->unmapped, pc);
        if (loc) {
                s->stats.lookup_hits++;
                return loc;
        }
        if (s->unmapped.n >= UNMAPPED_LOCS_MAX) {
                if (!s->unmapped_overflow)
                        s->unmapped_overflow = calloc(1, sizeof(SymLoc));
                return s->unmapped_overflow ? s->unmapped_overflow : &oom_loc;
        }
        loc = calloc(1, sizeof *loc);
        if (!loc)
                return &oom_loc;
        loc->module_offset = pc;
        u64map_put(&s->unmapped, pc, loc);
        s->stats.locations++;
        return loc;
}

static const SymLoc *module_resolve(Module *m, uint64_t addr) {
        Symbolizer *s = m->symbolizer;
        SymLoc *loc = u64map_get(&m->locs, addr);

        if (loc) {
                s->stats.lookup_hits++;
                return loc;
        }
        /* Offsets into anonymous memory are as many as a JIT makes: bounded. */
        if (m->kind == MODULE_PSEUDO && m->locs.n >= UNMAPPED_LOCS_MAX)
                return unmapped_loc(s, addr);

        loc = symbols_resolve(m, addr);
        if (!loc)
                return &oom_loc;
        u64map_put(&m->locs, addr, loc);
        s->stats.locations++;
        return loc;
}

const SymLoc *address_space_resolve(AddressSpace *as, uint64_t lookup_pc) {
        Symbolizer *s = as->symbolizer;
        const Region *r = address_space_find_region(as, lookup_pc);

        s->stats.lookups++;
        if (region_may_be_jit(r)) {
                const SymLoc *loc = jit_resolve(as, lookup_pc);
                if (loc)
                        return loc;
        }
        if (!r)
                return unmapped_loc(s, lookup_pc);
        return module_resolve(r->module, lookup_pc - r->bias);
}

void address_space_warm_up(AddressSpace *as, const Maps *maps) {
        for (size_t i = 0; i < maps->n; i++)
                if (maps->entries[i].executable && maps->entries[i].path)
                        (void) address_space_resolve(as, maps->entries[i].start);
}

int address_space_data_name(AddressSpace *as, uint64_t addr, char *buf, size_t size) {
        const Region *r = address_space_find_region(as, addr);
        if (!r)
                return -ENOENT;
        /* .bss beyond the file's last page is an anonymous mapping right after the module's
         * writable segment: it belongs to that module. */
        if (!r->path && r > as->regions && r[-1].end == r->start && r[-1].path && r[-1].writable)
                r--;
        if (r->module->kind != MODULE_ELF)
                return -ENOENT;
        return symbols_data_object(r->module, addr - r->bias, buf, size) ? 0 : -ENOENT;
}
