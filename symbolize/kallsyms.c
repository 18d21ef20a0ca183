/* symbolize/kallsyms.c -- load /proc/kallsyms into a sorted array and resolve kernel pcs by
 * binary search into cached SymLocs.
 *
 * The file is read line by line with hard limits (KALLSYMS_LINES_MAX lines, lines longer
 * than KALLSYMS_LINE_MAX skipped, KALLSYMS_MODULES_MAX module names); a line that does not
 * parse is skipped. Only text symbols are kept (T t W w, what perf keeps): a data symbol
 * between two functions would otherwise cut the earlier one short. Names live in one pool
 * that is never reallocated after loading, so every pointer handed out stays valid until
 * kallsyms_free(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "kallsyms.h"
#include "macro.h"

typedef struct KSym {
        uint64_t addr;
        uint32_t name;                  /* offset in the name pool */
        uint16_t module;                /* index in modules */
        uint8_t rank;                   /* alias preference: 0 global, 1 weak, 2 local */
} KSym;

typedef struct KModule {
        char *name;
        uint64_t start, end;            /* hull of its symbols, end exclusive */
} KModule;

struct Kallsyms {
        KSym *syms;
        size_t n_syms;
        char *names;                    /* pool of NUL-terminated names */
        size_t names_len, names_cap;
        KModule *modules;
        size_t n_modules;
        bool hidden;
        U64Map locs;                    /* lookup pc -> SymLoc* */
        U64Map sym_locs;                /* symbol index -> SymLoc*, once locs is full */
        SymLoc *unknown_overflow;       /* the frameless SymLoc once locs is full */
};

static void free_value(void *p) {
        free(p);
}

Kallsyms *kallsyms_free(Kallsyms *k) {
        if (!k)
                return NULL;
        u64map_done(&k->locs, free_value);
        u64map_done(&k->sym_locs, free_value);
        free(k->unknown_overflow);
        for (size_t i = 0; i < k->n_modules; i++)
                free(k->modules[i].name);
        free(k->modules);
        free(k->syms);
        free(k->names);
        free(k);
        return NULL;
}

DEFINE_POINTER_CLEANUP(Kallsyms, kallsyms_free);

static int module_index(Kallsyms *k, const char *name, size_t len, uint16_t *ret) {
        for (size_t i = 0; i < k->n_modules; i++)
                if (strncmp(k->modules[i].name, name, len) == 0 && k->modules[i].name[len] == 0) {
                        *ret = (uint16_t) i;
                        return 0;
                }
        if (k->n_modules >= KALLSYMS_MODULES_MAX)
                return -E2BIG;
        KModule *m = realloc(k->modules, (k->n_modules + 1) * sizeof *m);
        if (!m)
                return -ENOMEM;
        k->modules = m;
        char *copy = strndup(name, len);
        if (!copy)
                return -ENOMEM;
        k->modules[k->n_modules] = (KModule) { .name = copy, .start = UINT64_MAX };
        *ret = (uint16_t) k->n_modules++;
        return 0;
}

static int names_add(Kallsyms *k, const char *name, size_t len, uint32_t *ret) {
        if (k->names_len + len + 1 > UINT32_MAX)
                return -E2BIG;
        if (k->names_len + len + 1 > k->names_cap) {
                size_t cap = MAX(k->names_cap * 2, k->names_len + len + 1);
                cap = MAX(cap, (size_t) 65536);
                char *p = realloc(k->names, cap);
                if (!p)
                        return -ENOMEM;
                k->names = p;
                k->names_cap = cap;
        }
        memcpy(k->names + k->names_len, name, len);
        k->names[k->names_len + len] = 0;
        *ret = (uint32_t) k->names_len;
        k->names_len += len + 1;
        return 0;
}

/* "ADDR TYPE NAME[\t[MODULE]]". 1 for a text symbol (filled in), 0 for another symbol,
 * negative errno for a line that does not parse (-EBADMSG) or allocation failure. */
static int parse_line(Kallsyms *k, char *line, KSym *ret, bool *ret_zero) {
        const char *p = line;
        uint64_t addr = 0;
        int digits = 0, v;

        while ((v = hex_digit_value(*p)) >= 0) {
                if (++digits > 16)
                        return -EBADMSG;
                addr = addr << 4 | (uint64_t) v;
                p++;
        }
        if (digits == 0 || *p++ != ' ')
                return -EBADMSG;
        char type = *p++;
        if (!type || *p++ != ' ')
                return -EBADMSG;
        const char *name = p;
        size_t name_len = strcspn(name, " \t\n");
        if (name_len == 0)
                return -EBADMSG;
        p = name + name_len;
        *ret_zero = addr == 0;

        uint8_t rank;
        switch (type) {
        case 'T': rank = 0; break;
        case 'W': case 'w': rank = 1; break;
        case 't': rank = 2; break;
        default: return 0;
        }

        const char *mod = KALLSYMS_MODULE_KERNEL;
        size_t mod_len = strlen(mod);
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p == '[') {
                const char *close = strchr(p, ']');
                if (!close || close == p + 1)
                        return -EBADMSG;
                mod = p;
                mod_len = (size_t) (close - p) + 1;
        } else if (*p && *p != '\n')
                return -EBADMSG;

        KSym s = { .addr = addr, .rank = rank };
        int r = module_index(k, mod, mod_len, &s.module);
        if (r < 0)
                return r;
        r = names_add(k, name, name_len, &s.name);
        if (r < 0)
                return r;
        *ret = s;
        return 1;
}

static size_t leading_underscores(const char *s) {
        size_t n = 0;
        while (s[n] == '_')
                n++;
        return n;
}

/* Sorts by address, the preferred alias first. */
static int cmp_ksym(const void *a, const void *b, void *userdata) {
        const Kallsyms *k = userdata;
        const KSym *x = a, *y = b;
        if (x->addr != y->addr)
                return x->addr < y->addr ? -1 : 1;
        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        const char *nx = k->names + x->name, *ny = k->names + y->name;
        size_t ux = leading_underscores(nx), uy = leading_underscores(ny);
        if (ux != uy)
                return ux < uy ? -1 : 1;
        size_t lx = strlen(nx), ly = strlen(ny);
        if (lx != ly)
                return lx < ly ? -1 : 1;
        return strcmp(nx, ny);
}

int kallsyms_load(const char *path, Kallsyms **ret) {
        _cleanup_(kallsyms_freep) Kallsyms *k = NULL;
        char line[KALLSYMS_LINE_MAX];
        size_t cap = 0, lines = 0;
        bool any_nonzero = false, any = false;
        FILE *f;

        if (!ret)
                return -EINVAL;
        f = fopen(path ?: KALLSYMS_PATH, "re");
        if (!f)
                return -errno;
        k = calloc(1, sizeof *k);
        if (!k) {
                fclose(f);
                return -ENOMEM;
        }

        int r = 0;
        while (lines < KALLSYMS_LINES_MAX && fgets(line, sizeof line, f)) {
                lines++;
                size_t len = strlen(line);
                if (len == sizeof line - 1 && line[len - 1] != '\n') {
                        /* Too long: skip to the end of this line. */
                        int c;
                        while ((c = getc(f)) != EOF && c != '\n')
                                ;
                        continue;
                }
                KSym s;
                bool zero = false;
                int q = parse_line(k, line, &s, &zero);
                if (q == -ENOMEM || q == -E2BIG) {
                        r = q;
                        break;
                }
                if (q < 0)
                        continue;
                any = true;
                if (!zero)
                        any_nonzero = true;
                if (q == 0)
                        continue;
                if (k->n_syms == cap) {
                        size_t ncap = cap ? cap * 2 : 4096;
                        KSym *p = realloc(k->syms, ncap * sizeof *p);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        k->syms = p;
                        cap = ncap;
                }
                k->syms[k->n_syms++] = s;
        }
        if (r == 0 && ferror(f))
                r = -EIO;
        fclose(f);
        if (r < 0)
                return r;

        if (any && !any_nonzero) {
                /* kptr_restrict: the names are there, the addresses are not. */
                k->hidden = true;
                k->n_syms = 0;
        }

        qsort_r(k->syms, k->n_syms, sizeof *k->syms, cmp_ksym, k);

        /* One symbol per address (the preferred alias sorts first); address 0 is never
         * a kernel text address. */
        size_t n = 0;
        for (size_t i = 0; i < k->n_syms; i++) {
                if (k->syms[i].addr == 0)
                        continue;
                if (n > 0 && k->syms[n - 1].addr == k->syms[i].addr)
                        continue;
                k->syms[n++] = k->syms[i];
        }
        k->n_syms = n;

        for (size_t i = 0; i < n; i++) {
                KModule *m = &k->modules[k->syms[i].module];
                m->start = MIN(m->start, k->syms[i].addr);
                uint64_t end = i + 1 < n && k->syms[i + 1].module == k->syms[i].module ?
                        k->syms[i + 1].addr : k->syms[i].addr + KALLSYMS_LAST_SYMBOL_SIZE;
                m->end = MAX(m->end, end);
        }

        *ret = TAKE_PTR(k);
        return 0;
}

bool kallsyms_hidden(const Kallsyms *k) {
        return k->hidden;
}

size_t kallsyms_count(const Kallsyms *k) {
        return k->n_syms;
}

/* The index of the symbol covering PC, or -1. */
static ssize_t find_symbol(const Kallsyms *k, uint64_t pc) {
        size_t lo = 0, hi = k->n_syms;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (k->syms[mid].addr <= pc)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0)
                return -1;
        size_t i = lo - 1;
        /* The symbol ends where the next one of its module starts; a module's last
         * symbol, or one followed by another module, gets a bounded size. */
        bool next_same = i + 1 < k->n_syms && k->syms[i + 1].module == k->syms[i].module;
        if (!next_same && pc - k->syms[i].addr >= KALLSYMS_LAST_SYMBOL_SIZE)
                return -1;
        return (ssize_t) i;
}

static SymLoc *loc_new(const Kallsyms *k, ssize_t sym, uint64_t offset) {
        SymLoc *l = calloc(1, sizeof *l + sizeof(Frame));
        if (!l)
                abort();                /* like U64Map: the cache is bounded */
        l->module = KALLSYMS_MODULE_KERNEL;
        l->module_offset = offset;
        if (sym >= 0) {
                const KSym *s = &k->syms[sym];
                l->module = k->modules[s->module].name;
                l->n_frames = 1;
                l->frames[0] = (Frame) { .function = k->names + s->name, .entry = s->addr };
        }
        return l;
}

const SymLoc *kallsyms_resolve(Kallsyms *k, uint64_t lookup_pc) {
        SymLoc *l = u64map_get(&k->locs, lookup_pc);
        if (l)
                return l;

        ssize_t sym = find_symbol(k, lookup_pc);
        if (k->locs.n < KALLSYMS_LOCS_MAX) {
                l = loc_new(k, sym, lookup_pc);
                (void) u64map_put(&k->locs, lookup_pc, l);
                return l;
        }
        /* Full: one SymLoc per symbol, and one for everything unknown. */
        if (sym < 0) {
                if (!k->unknown_overflow)
                        k->unknown_overflow = loc_new(k, -1, 0);
                return k->unknown_overflow;
        }
        l = u64map_get(&k->sym_locs, (uint64_t) sym);
        if (!l) {
                l = loc_new(k, sym, k->syms[sym].addr);
                (void) u64map_put(&k->sym_locs, (uint64_t) sym, l);
        }
        return l;
}

int kallsyms_module_range(const Kallsyms *k, uint64_t lookup_pc, const char **ret_name,
                          uint64_t *ret_start, uint64_t *ret_end) {
        ssize_t sym = find_symbol(k, lookup_pc);
        if (sym < 0)
                return -ENOENT;
        const KModule *m = &k->modules[k->syms[sym].module];
        if (ret_name)
                *ret_name = m->name;
        if (ret_start)
                *ret_start = m->start;
        if (ret_end)
                *ret_end = m->end;
        return 0;
}
