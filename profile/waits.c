/* profile/waits.c -- see waits.h. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "macro.h"
#include "waits.h"

/* ---- what the frames say ---- */

/* libc names as symbols and DWARF spell them, without the underscores and aliases
 * ("__GI___pthread_mutex_lock", "___pthread_mutex_lock@@GLIBC_2.2.5") and compared by
 * prefix, so the helpers (pthread_mutex_lock_full, pthread_cond_wait_common) match too. */
static const struct {
        const char *prefix;
        WaitKind kind;
} libc_waits[] = {
        { "pthread_mutex_lock", WAIT_KIND_MUTEX },
        { "pthread_mutex_timedlock", WAIT_KIND_MUTEX },
        { "pthread_mutex_clocklock", WAIT_KIND_MUTEX },
        { "pthread_mutex_cond_lock", WAIT_KIND_MUTEX },         /* a condvar waiter relocking */
        { "pthread_rwlock_rdlock", WAIT_KIND_RWLOCK_READ },
        { "pthread_rwlock_timedrdlock", WAIT_KIND_RWLOCK_READ },
        { "pthread_rwlock_clockrdlock", WAIT_KIND_RWLOCK_READ },
        { "pthread_rwlock_wrlock", WAIT_KIND_RWLOCK_WRITE },
        { "pthread_rwlock_timedwrlock", WAIT_KIND_RWLOCK_WRITE },
        { "pthread_rwlock_clockwrlock", WAIT_KIND_RWLOCK_WRITE },
        { "pthread_cond_wait", WAIT_KIND_COND },
        { "pthread_cond_timedwait", WAIT_KIND_COND },
        { "pthread_cond_clockwait", WAIT_KIND_COND },
        { "new_sem_wait", WAIT_KIND_SEM },
        { "sem_wait", WAIT_KIND_SEM },
        { "sem_timedwait", WAIT_KIND_SEM },
        { "sem_clockwait", WAIT_KIND_SEM },
        { "pthread_barrier_wait", WAIT_KIND_BARRIER },
        { "pthread_join", WAIT_KIND_JOIN },
        { "pthread_timedjoin", WAIT_KIND_JOIN },
        { "pthread_clockjoin", WAIT_KIND_JOIN },
        { "pthread_once", WAIT_KIND_ONCE },
        /* Below pthread_mutex_lock on every mutex wait: a lock of its own only when no
         * pthread function is found above it. */
        { "lll_lock_wait", WAIT_KIND_LOCK },
};

/* Frames searched for the waiting libc function: the futex helpers and inlines below it
 * are a handful; past this, the wait is libc-internal or the program's own. */
#define CLASSIFY_DEPTH 12
/* Frames above it searched for the libstdc++ type: inlined std:: wrappers. */
#define CXX_DEPTH 6

static const char *normalized_libc_name(const char *name, char *buf, size_t size) {
        while (*name == '_')
                name++;
        if (strncmp(name, "GI_", 3) == 0)
                for (name += 3; *name == '_'; name++)
                        ;
        size_t n = strcspn(name, "@");
        if (n >= size)
                return NULL;
        memcpy(buf, name, n);
        buf[n] = '\0';
        return buf;
}

static WaitKind libc_wait_kind(const char *function) {
        char buf[128];
        const char *name = function ? normalized_libc_name(function, buf, sizeof buf) : NULL;
        if (!name)
                return WAIT_KIND_NONE;
        for (size_t i = 0; i < ARRAY_SIZE(libc_waits); i++)
                if (startswith(name, libc_waits[i].prefix))
                        return libc_waits[i].kind;
        return WAIT_KIND_NONE;
}

int wait_restarted_syscall(const Stack *stack) {
        static const struct {
                const char *prefix;
                int nr;
        } calls[] = {
                { "clock_nanosleep", SYS_clock_nanosleep }, { "nanosleep", SYS_nanosleep },
                { "ppoll", SYS_ppoll }, { "poll", SYS_poll },
                { "futex", SYS_futex }, { "lll_futex", SYS_futex },     /* futex_wait, futex_abstimed_wait… */
        };
        const SymLoc *loc = stack && stack->n > 0 ? stack->frames[0].loc : NULL;
        for (size_t k = 0; loc && k < loc->n_frames; k++) {
                char buf[128];
                const char *fn = loc->frames[k].function;
                const char *name = fn ? normalized_libc_name(fn, buf, sizeof buf) : NULL;
                for (size_t i = 0; name && i < ARRAY_SIZE(calls); i++)
                        if (startswith(name, calls[i].prefix))
                                return calls[i].nr;
        }
        return -1;
}

/* Where TYPE first appears in FUNCTION as a class of the name ("std::mutex::lock") or a
 * template argument of it ("std::unique_lock<std::mutex>::lock"), not as a prefix of
 * another name ("std::mutex_x"); NULL when it does not. */
static const char *type_in_name(const char *function, const char *type) {
        size_t n = strlen(type);
        for (const char *p = strstr(function, type); p; p = strstr(p + 1, type)) {
                bool starts = p == function || p[-1] == '<' || p[-1] == ' ' || p[-1] == ',' || p[-1] == '(';
                bool ends = p[n] == ':' || p[n] == '>' || p[n] == ',' || p[n] == ' ' || p[n] == '\0' ||
                        p[n] == '<' || p[n] == '(';
                if (starts && ends)
                        return p;
        }
        return NULL;
}

static CxxSync cxx_sync_of(const char *function) {
        /* Longest names first: std::recursive_timed_mutex before std::timed_mutex. */
        static const struct {
                const char *type;
                CxxSync sync;
        } types[] = {
                { "std::recursive_timed_mutex", CXX_SYNC_RECURSIVE_TIMED_MUTEX },
                { "std::recursive_mutex", CXX_SYNC_RECURSIVE_MUTEX },
                { "std::shared_timed_mutex", CXX_SYNC_SHARED_TIMED_MUTEX },
                { "std::__shared_mutex_pthread", CXX_SYNC_SHARED_MUTEX },
                { "std::shared_mutex", CXX_SYNC_SHARED_MUTEX },
                { "std::timed_mutex", CXX_SYNC_TIMED_MUTEX },
                { "std::mutex", CXX_SYNC_MUTEX },
                { "std::_V2::condition_variable_any", CXX_SYNC_CONDITION_VARIABLE_ANY },
                { "std::condition_variable_any", CXX_SYNC_CONDITION_VARIABLE_ANY },
                { "std::condition_variable", CXX_SYNC_CONDITION_VARIABLE },
                { "std::call_once", CXX_SYNC_CALL_ONCE },
        };
        /* The type named first is the method's class: condition_variable::wait(
         * std::unique_lock<std::mutex>&) is the condvar's. */
        const char *first = NULL;
        CxxSync sync = CXX_SYNC_NONE;
        for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
                const char *p = type_in_name(function, types[i].type);
                if (p && (!first || p < first)) {
                        first = p;
                        sync = types[i].sync;
                }
        }
        return sync;
}

/* Whether the C++ type can be the object of a wait of KIND: a std::mutex found above a
 * condvar wait is the condvar's mutex, not the object waited on. */
static bool cxx_fits(CxxSync cxx, WaitKind kind) {
        switch (cxx) {
        case CXX_SYNC_MUTEX:
        case CXX_SYNC_RECURSIVE_MUTEX:
        case CXX_SYNC_TIMED_MUTEX:
        case CXX_SYNC_RECURSIVE_TIMED_MUTEX:
                return kind == WAIT_KIND_MUTEX;
        case CXX_SYNC_SHARED_MUTEX:
        case CXX_SYNC_SHARED_TIMED_MUTEX:
                return kind == WAIT_KIND_RWLOCK_READ || kind == WAIT_KIND_RWLOCK_WRITE;
        case CXX_SYNC_CONDITION_VARIABLE:
        case CXX_SYNC_CONDITION_VARIABLE_ANY:
                return kind == WAIT_KIND_COND;
        case CXX_SYNC_CALL_ONCE:
                return kind == WAIT_KIND_ONCE;
        case CXX_SYNC_NONE:
                break;
        }
        return false;
}

/* Each inline level of each pc, leaf first. */
static const Frame *stack_frame_at(const Stack *stack, size_t i, size_t level) {
        const SymLoc *loc = stack->frames[i].loc;
        return loc && level < loc->n_frames ? &loc->frames[level] : NULL;
}

/* Calls VISIT on each inline level of each pc of STACK, leaf first, for CLASSIFY_DEPTH
 * levels at most (a level without a name as NULL), until it returns true: the frame's
 * index then, else SIZE_MAX. */
static size_t walk_levels(const Stack *stack, bool (*visit)(const char *function, void *userdata), void *userdata) {
        size_t depth = 0;
        for (size_t i = 0; stack && i < stack->n && depth < CLASSIFY_DEPTH; i++) {
                const SymLoc *loc = stack->frames[i].loc;
                size_t levels = loc ? MAX(loc->n_frames, (size_t) 1) : 1;
                for (size_t level = 0; level < levels && depth < CLASSIFY_DEPTH; level++, depth++) {
                        const Frame *f = stack_frame_at(stack, i, level);
                        if (visit(f ? f->function : NULL, userdata))
                                return i;
                }
        }
        return SIZE_MAX;
}

/* Remembers the libc waiter's kind; done at the first that is not a libc lock. */
static bool visit_wait_kind(const char *function, void *userdata) {
        WaitKind *kind = userdata;
        WaitKind k = libc_wait_kind(function);
        if (k != WAIT_KIND_NONE)
                *kind = k;
        return k != WAIT_KIND_NONE && k != WAIT_KIND_LOCK;
}

/* The object kind the libc waiter nearest the leaf says (WAIT_KIND_FUTEX when none does),
 * and in *FOUND_AT its frame (SIZE_MAX when only a libc lock or nothing was found). */
static WaitKind frames_wait_kind(const Stack *stack, size_t *found_at) {
        WaitKind kind = WAIT_KIND_FUTEX;
        *found_at = walk_levels(stack, visit_wait_kind, &kind);
        return kind;
}

bool wait_site_classify(const Stack *stack, int nr, const uint64_t args[6], WaitSite *site) {
        *site = (WaitSite) {};
        if (nr != SYS_futex)
                return false;
        unsigned cmd = (unsigned) args[1] & FUTEX_CMD_MASK;
        if (cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_LOCK_PI && cmd != FUTEX_LOCK_PI2 &&
            cmd != FUTEX_WAIT_REQUEUE_PI)
                return false;
        *site = (WaitSite) { .kind = WAIT_KIND_FUTEX, .futex = args[0], .futex_cmd = cmd,
                             .futex_val = (uint32_t) args[2], .shared = !(args[1] & FUTEX_PRIVATE_FLAG) };

        size_t found_at;
        site->kind = frames_wait_kind(stack, &found_at);
        if (found_at == SIZE_MAX)
                return true;

        /* libstdc++ wraps these objects in inlined methods right above the libc call (or
         * calls them from its own condition_variable::wait). */
        size_t depth = 0;
        for (size_t i = found_at + 1; i < stack->n && depth < CXX_DEPTH; i++) {
                const SymLoc *loc = stack->frames[i].loc;
                for (size_t level = 0; loc && level < loc->n_frames && depth < CXX_DEPTH; level++, depth++) {
                        const char *fn = loc->frames[level].function;
                        if (!fn || libc_wait_kind(fn) != WAIT_KIND_NONE)
                                continue;
                        CxxSync cxx = cxx_sync_of(fn);
                        if (cxx != CXX_SYNC_NONE) {
                                if (cxx_fits(cxx, site->kind))
                                        site->cxx = cxx;
                                return true;
                        }
                        /* The first frame that is neither the standard library's nor a gthread
                         * inline is the program's own: no type above that. */
                        if (strncmp(fn, "std::", 5) != 0 && strncmp(fn, "__gthread", 9) != 0 &&
                            strncmp(fn, "__gthrw", 7) != 0)
                                return true;
                }
        }
        return true;
}

typedef struct PrefixMatch {
        const char *const *prefixes;
        size_t n;
        int found;
} PrefixMatch;

static bool visit_prefix(const char *function, void *userdata) {
        PrefixMatch *m = userdata;
        char buf[128];
        const char *name = function ? normalized_libc_name(function, buf, sizeof buf) : NULL;
        for (size_t k = 0; name && k < m->n; k++)
                if (startswith(name, m->prefixes[k])) {
                        m->found = (int) k;
                        return true;
                }
        return false;
}

/* The leaf-most libc function of STACK whose name starts with one of PREFIXES (normalized
 * as libc_wait_kind does), within CLASSIFY_DEPTH inline levels: its index in PREFIXES, or
 * -1. */
static int innermost_libc_match(const Stack *stack, const char *const *prefixes, size_t n) {
        PrefixMatch m = { .prefixes = prefixes, .n = n, .found = -1 };
        (void) walk_levels(stack, visit_prefix, &m);
        return m.found;
}

static bool leaf_is_syscall_wrapper(const SymLoc *leaf) {
        char buf[128];
        const char *fn = leaf->frames[leaf->n_frames - 1].function;
        const char *name = fn ? normalized_libc_name(fn, buf, sizeof buf) : NULL;
        return name && strcmp(name, "syscall") == 0;
}

/* Whether the leaf alone says the thread is in a futex syscall: a futex wrapper, or a
 * libc waiter that issues the futex itself (__lll_lock_wait). */
static bool leaf_is_futex_wait(const StackFrame *leaf) {
        Stack one = { .frames = (StackFrame *) leaf, .n = 1 };
        if (wait_restarted_syscall(&one) == SYS_futex)
                return true;
        for (size_t k = 0; leaf->loc && k < leaf->loc->n_frames; k++)
                if (libc_wait_kind(leaf->loc->frames[k].function) != WAIT_KIND_NONE)
                        return true;
        return false;
}

bool wait_leaf_may_be_futex_wait(const StackFrame *leaf) {
        return leaf->loc && leaf->loc->n_frames > 0 &&
               (leaf_is_futex_wait(leaf) || leaf_is_syscall_wrapper(leaf->loc));
}

bool wait_site_classify_blocked(const Stack *stack, const uint64_t args[6], WaitSite *site) {
        *site = (WaitSite) {};
        const SymLoc *leaf = stack && stack->n > 0 ? stack->frames[0].loc : NULL;
        if (!leaf || leaf->n_frames == 0)
                return false;
        /* The leaf says which syscall, or it is syscall(2) called by a futex helper
         * (libstdc++'s atomic waits, a program's own futex lock). */
        bool futex = leaf_is_futex_wait(&stack->frames[0]);
        if (!futex && leaf_is_syscall_wrapper(leaf))
                for (size_t i = 1; i < stack->n && i <= 3 && !futex; i++) {
                        const SymLoc *loc = stack->frames[i].loc;
                        for (size_t k = 0; loc && k < loc->n_frames && !futex; k++) {
                                const char *fn = loc->frames[k].function;
                                futex = fn && (strstr(fn, "futex") || strstr(fn, "platform_wait"));
                        }
                }
        if (!futex)
                return false;
        if (wait_site_classify(stack, SYS_futex, args, site))
                return true;
        /* The arguments were not a futex wait's: the frames still say which object. */
        size_t found_at;
        *site = (WaitSite) { .kind = frames_wait_kind(stack, &found_at) };
        return true;
}

WaitKind wake_site_classify(const Stack *stack) {
        /* Leaf first: the lock-word wake under pthread_mutex_unlock is a libc lock only
         * when no pthread function is found above it. */
        static const char *const prefixes[] = {
                "pthread_mutex_unlock", "pthread_rwlock_unlock", "pthread_cond_signal", "pthread_cond_broadcast",
                "new_sem_post", "sem_post", "pthread_barrier_wait", "lll_lock_wake",
        };
        static const WaitKind kinds[] = {
                WAIT_KIND_MUTEX, WAIT_KIND_RWLOCK_WRITE, WAIT_KIND_COND, WAIT_KIND_COND,
                WAIT_KIND_SEM, WAIT_KIND_SEM, WAIT_KIND_BARRIER, WAIT_KIND_LOCK,
        };
        int k = innermost_libc_match(stack, prefixes, ARRAY_SIZE(prefixes));
        if (k < 0)
                return WAIT_KIND_NONE;
        if (kinds[k] != WAIT_KIND_LOCK)
                return kinds[k];
        /* Above the lock wake: the pthread function that released it, if any. */
        int above = innermost_libc_match(stack, prefixes, ARRAY_SIZE(prefixes) - 1);
        return above >= 0 ? kinds[above] : WAIT_KIND_LOCK;
}

/* ---- what the bytes say ---- */

/* glibc's layouts (x86-64). */
#define MUTEX_SIZE 40
#define MUTEX_LOCK 0
#define MUTEX_COUNT 4
#define MUTEX_OWNER 8
#define MUTEX_KIND 16
#define MUTEX_KIND_MASK 3               /* PTHREAD_MUTEX_KIND_MASK_NP */
#define MUTEX_ROBUST 16                 /* PTHREAD_MUTEX_ROBUST_NORMAL_NP */
#define MUTEX_PRIO_INHERIT 32
#define MUTEX_PRIO_PROTECT 64
#define MUTEX_PSHARED 128
#define MUTEX_ELISION 256
#define MUTEX_NO_ELISION 512
#define MUTEX_CEILING_MASK 0xfff80000u  /* a priority-protect mutex's ceiling, in its lock word */
#define MUTEX_INCONSISTENT INT_MAX      /* __owner of a robust mutex whose holder died */
#define MUTEX_NOTRECOVERABLE (INT_MAX - 1)

#define RWLOCK_SIZE 56
#define RWLOCK_READERS 0
#define RWLOCK_WRPHASE_FUTEX 8
#define RWLOCK_WRITERS_FUTEX 12
#define RWLOCK_CUR_WRITER 24
#define RWLOCK_SHARED 28
#define RWLOCK_FLAGS 48
#define RWLOCK_READER_SHIFT 3
#define RWLOCK_WRPHASE 1u
#define RWLOCK_WRLOCKED 2u
#define RWLOCK_RWAITING 4u

#define COND_SIZE 48
#define COND_WREFS 36
#define COND_G_SIGNALS 40

#define SEM_SIZE 16                     /* 64-bit data word (value, waiters), private, pad */
#define BARRIER_SIZE 20                 /* in, current_round, count, shared, out */
#define BARRIER_CURRENT_ROUND 4

#define TID_MAX_VALID 0x3fffffff        /* FUTEX_TID_MASK: the kernel's tids fit below */

static uint32_t u32_at(const uint8_t *p, size_t off) {
        uint32_t v;
        memcpy(&v, p + off, sizeof v);
        return v;
}

MemoryWindow wait_site_window(const WaitSite *site) {
        uint64_t f = site->futex;
        uint64_t before = 0, after = 4;
        if (f % 4 != 0 || f < 64)
                return (MemoryWindow) {};
        switch (site->kind) {
        case WAIT_KIND_MUTEX:
                after = MUTEX_SIZE;
                break;
        case WAIT_KIND_RWLOCK_READ:
        case WAIT_KIND_RWLOCK_WRITE:
                before = RWLOCK_WRITERS_FUTEX;
                after = RWLOCK_SIZE;
                break;
        case WAIT_KIND_COND:
                before = COND_G_SIGNALS + 4;
                after = 8;
                break;
        case WAIT_KIND_SEM:
                after = SEM_SIZE;
                break;
        case WAIT_KIND_BARRIER:
                before = BARRIER_CURRENT_ROUND;
                after = BARRIER_SIZE - BARRIER_CURRENT_ROUND;
                break;
        default:
                break;
        }
        return (MemoryWindow) { .addr = f - before, .len = before + after };
}

/* The LEN bytes at ADDR, when the window holds them all. */
static const uint8_t *window_bytes(const uint8_t *bytes, uint64_t win, size_t win_len, uint64_t addr, size_t len) {
        if (!bytes || addr < win || addr - win > win_len || win_len - (addr - win) < len)
                return NULL;
        return bytes + (addr - win);
}

static bool tid_plausible(int64_t tid) {
        return tid > 0 && tid <= TID_MAX_VALID;
}

static void decode_mutex(const WaitSite *site, const uint8_t *m, WaitObject *o) {
        uint32_t lock = u32_at(m, MUTEX_LOCK);
        int32_t owner = (int32_t) u32_at(m, MUTEX_OWNER);
        uint32_t kind = u32_at(m, MUTEX_KIND);
        uint32_t flags = kind & ~(uint32_t) (MUTEX_PSHARED | MUTEX_ELISION | MUTEX_NO_ELISION | MUTEX_KIND_MASK);

        o->holder = WAIT_HOLDER_UNKNOWN;
        /* A kind with bits glibc never sets, or with both protocols, is no mutex. */
        if ((flags & ~(uint32_t) (MUTEX_ROBUST | MUTEX_PRIO_INHERIT | MUTEX_PRIO_PROTECT)) != 0 ||
            ((flags & MUTEX_PRIO_INHERIT) && (flags & MUTEX_PRIO_PROTECT)) ||
            ((flags & MUTEX_ROBUST) && (flags & MUTEX_PRIO_PROTECT)) || o->address % 8 != 0)
                return;
        o->mutex_type = (int) (kind & MUTEX_KIND_MASK);
        o->robust = flags & MUTEX_ROBUST;
        o->pi = flags & MUTEX_PRIO_INHERIT;
        o->pp = flags & MUTEX_PRIO_PROTECT;
        if (o->pp)
                lock &= ~MUTEX_CEILING_MASK;   /* what is left is 0, 1 or 2 as for a normal one */
        bool pi_wait = site->futex_cmd == FUTEX_LOCK_PI || site->futex_cmd == FUTEX_LOCK_PI2;
        if (pi_wait != o->pi || lock == 0)
                return;         /* the wait does not fit the kind, or it was released */
        if (o->pi || o->robust) {
                /* The futex word holds the owner, as the kernel reads it. */
                pid_t word_owner = (pid_t) (lock & FUTEX_TID_MASK);
                o->owner_died = lock & FUTEX_OWNER_DIED;
                if (!tid_plausible(word_owner))
                        return;
                if (owner != word_owner && owner != 0 && owner != MUTEX_INCONSISTENT && owner != MUTEX_NOTRECOVERABLE)
                        return;
                o->owner = word_owner;
        } else {
                if (lock > 2 || !tid_plausible(owner))
                        return;
                o->owner = owner;
        }
        o->recursion = o->mutex_type == 1 ? u32_at(m, MUTEX_COUNT) : 0;
        o->holder = WAIT_HOLDER_THREAD;
}

static bool rwlock_plausible(const uint8_t *r) {
        uint32_t flags = u32_at(r, RWLOCK_FLAGS), shared = u32_at(r, RWLOCK_SHARED);
        /* PTHREAD_RWLOCK_PREFER_{READER,WRITER,WRITER_NONRECURSIVE}_NP; private or shared. */
        return flags <= 2 && shared <= 1;
}

static void decode_rwlock(const WaitSite *site, const uint8_t *bytes, uint64_t win, size_t win_len, WaitObject *o) {
        /* Readers wait on __readers or __wrphase_futex, writers on __writers_futex or
         * __wrphase_futex: the object starts at one of two places, and only one that is
         * plausible while the other is not is believed. */
        static const size_t writer_offsets[] = { RWLOCK_WRITERS_FUTEX, RWLOCK_WRPHASE_FUTEX };
        /* Both reader positions are 8-aligned: the expected value tells them apart, as a
         * wait on __readers expects its RWAITING bit set and one on __wrphase_futex never. */
        const size_t reader_offset[] = { site->futex_val & RWLOCK_RWAITING ? RWLOCK_READERS : RWLOCK_WRPHASE_FUTEX };
        const size_t *offsets = site->kind == WAIT_KIND_RWLOCK_READ ? reader_offset : writer_offsets;
        size_t n_offsets = site->kind == WAIT_KIND_RWLOCK_READ ? 1 : 2;
        const uint8_t *found = NULL;
        uint64_t base = 0;
        size_t n_found = 0;
        for (size_t i = 0; i < n_offsets; i++) {
                if (site->futex < offsets[i])
                        continue;
                uint64_t b = site->futex - offsets[i];
                const uint8_t *r = window_bytes(bytes, win, win_len, b, RWLOCK_SIZE);
                if (r && b % 8 == 0 && rwlock_plausible(r)) {
                        found = r;
                        base = b;
                        n_found++;
                }
        }
        o->holder = WAIT_HOLDER_UNKNOWN;
        if (n_found != 1)
                return;
        o->address = base;
        uint32_t readers = u32_at(found, RWLOCK_READERS);
        int32_t writer = (int32_t) u32_at(found, RWLOCK_CUR_WRITER);
        if ((readers & RWLOCK_WRPHASE) && (readers & RWLOCK_WRLOCKED)) {
                if (tid_plausible(writer)) {
                        o->holder = WAIT_HOLDER_THREAD;
                        o->owner = writer;
                }
        } else if (!(readers & RWLOCK_WRPHASE) && (readers >> RWLOCK_READER_SHIFT) > 0) {
                o->holder = WAIT_HOLDER_READERS;
                o->readers = readers >> RWLOCK_READER_SHIFT;
        }
}

static void decode_cond(const WaitSite *site, const uint8_t *bytes, uint64_t win, size_t win_len, WaitObject *o) {
        /* Waiters sleep on __g_signals[0] or [1]; the object has waiters (__wrefs counts
         * them in steps of 8), which places it when only one position says so. */
        uint64_t base = 0;
        size_t n_found = 0;
        /* A waiter on __g_signals expects 0; other words of the condvar (__g1_orig_size's
         * lock, taken on a timeout) would place it wrongly. */
        for (size_t g = 0; g < 2 && site->futex_val == 0; g++) {
                uint64_t off = COND_G_SIGNALS + 4 * g;
                if (site->futex < off)
                        continue;
                uint64_t b = site->futex - off;
                const uint8_t *c = window_bytes(bytes, win, win_len, b, COND_SIZE);
                if (c && b % 8 == 0 && (u32_at(c, COND_WREFS) >> 3) > 0) {
                        base = b;
                        n_found++;
                }
        }
        if (n_found == 1)
                o->address = base;
        o->holder = WAIT_HOLDER_NONE;
}

void wait_object_decode(const WaitSite *site, const uint8_t *bytes, uint64_t addr, size_t len, WaitObject *ret) {
        *ret = (WaitObject) { .kind = site->kind, .cxx = site->cxx, .address = site->futex,
                              .holder = WAIT_HOLDER_UNKNOWN };
        if (len == 0)
                bytes = NULL;
        const uint8_t *p;
        switch (site->kind) {
        case WAIT_KIND_MUTEX:
                p = window_bytes(bytes, addr, len, site->futex, MUTEX_SIZE);
                if (p)
                        decode_mutex(site, p, ret);
                break;
        case WAIT_KIND_RWLOCK_READ:
        case WAIT_KIND_RWLOCK_WRITE:
                decode_rwlock(site, bytes, addr, len, ret);
                break;
        case WAIT_KIND_COND:
                decode_cond(site, bytes, addr, len, ret);
                break;
        case WAIT_KIND_SEM:
                ret->holder = WAIT_HOLDER_NONE;
                p = window_bytes(bytes, addr, len, site->futex, 4);
                if (p)
                        ret->value = u32_at(p, 0);
                break;
        case WAIT_KIND_BARRIER:
                ret->holder = WAIT_HOLDER_NONE;
                /* pthread_barrier_t is 8-aligned: a wait on its `in` word (a reset) is not
                         * on current_round. */
                if (site->futex >= BARRIER_CURRENT_ROUND && (site->futex - BARRIER_CURRENT_ROUND) % 8 == 0) {
                        ret->address = site->futex - BARRIER_CURRENT_ROUND;
                        p = window_bytes(bytes, addr, len, ret->address, BARRIER_SIZE);
                        if (p) {
                                uint32_t in = u32_at(p, 0), round = u32_at(p, 4), count = u32_at(p, 8);
                                /* in counts arrivals, round the arrivals at the last release. */
                                if (count > 0 && in - round < count) {
                                        ret->arrived = in - round;
                                        ret->count = count;
                                }
                        }
                }
                break;
        case WAIT_KIND_JOIN:
                /* pthread_join sleeps on the joined thread's tid field, expecting its tid,
                 * which the kernel clears when the thread exits. */
                ret->holder = WAIT_HOLDER_UNKNOWN;
                p = window_bytes(bytes, addr, len, site->futex, 4);
                if (p && u32_at(p, 0) == site->futex_val && tid_plausible((int32_t) site->futex_val)) {
                        ret->owner = (pid_t) site->futex_val;
                        ret->holder = WAIT_HOLDER_THREAD;
                }
                break;
        case WAIT_KIND_ONCE:
        case WAIT_KIND_LOCK:
        case WAIT_KIND_FUTEX:
                ret->holder = WAIT_HOLDER_NOT_RECORDED;
                /* A PI futex names its owner in the word, whatever program made it. */
                p = window_bytes(bytes, addr, len, site->futex, 4);
                if (p && site->kind == WAIT_KIND_FUTEX &&
                    (site->futex_cmd == FUTEX_LOCK_PI || site->futex_cmd == FUTEX_LOCK_PI2) &&
                    tid_plausible((pid_t) (u32_at(p, 0) & FUTEX_TID_MASK))) {
                        ret->owner = (pid_t) (u32_at(p, 0) & FUTEX_TID_MASK);
                        ret->owner_died = u32_at(p, 0) & FUTEX_OWNER_DIED;
                        ret->pi = true;
                        ret->holder = WAIT_HOLDER_THREAD;
                }
                break;
        case WAIT_KIND_NONE:
                break;
        }
}

/* ---- text ---- */

static const char *cxx_sync_name(CxxSync c) {
        switch (c) {
        case CXX_SYNC_MUTEX: return "std::mutex";
        case CXX_SYNC_RECURSIVE_MUTEX: return "std::recursive_mutex";
        case CXX_SYNC_TIMED_MUTEX: return "std::timed_mutex";
        case CXX_SYNC_RECURSIVE_TIMED_MUTEX: return "std::recursive_timed_mutex";
        case CXX_SYNC_SHARED_MUTEX: return "std::shared_mutex";
        case CXX_SYNC_SHARED_TIMED_MUTEX: return "std::shared_timed_mutex";
        case CXX_SYNC_CONDITION_VARIABLE: return "std::condition_variable";
        case CXX_SYNC_CONDITION_VARIABLE_ANY: return "std::condition_variable_any";
        case CXX_SYNC_CALL_ONCE: return "std::call_once";
        case CXX_SYNC_NONE: break;
        }
        return NULL;
}

void wait_object_write_kind(const WaitObject *o, Buf *out) {
        const char *cxx = cxx_sync_name(o->cxx);
        bool rwlock = o->kind == WAIT_KIND_RWLOCK_READ || o->kind == WAIT_KIND_RWLOCK_WRITE;
        if (cxx) {
                buf_puts(out, cxx);
                if (rwlock)
                        buf_puts(out, o->kind == WAIT_KIND_RWLOCK_READ ? " (read)" : " (write)");
                return;
        }
        static const char *const mutex_types[] = { "mutex", "recursive mutex", "error-checking mutex",
                                                   "adaptive mutex" };
        switch (o->kind) {
        case WAIT_KIND_MUTEX:
                buf_printf(out, "%s%s%s%s", o->robust ? "robust " : "", o->pi ? "PI " : "", o->pp ? "PP " : "",
                           mutex_types[o->mutex_type & MUTEX_KIND_MASK]);
                return;
        case WAIT_KIND_RWLOCK_READ: buf_puts(out, "rwlock (read)"); return;
        case WAIT_KIND_RWLOCK_WRITE: buf_puts(out, "rwlock (write)"); return;
        case WAIT_KIND_COND: buf_puts(out, "condvar"); return;
        case WAIT_KIND_SEM: buf_puts(out, "semaphore"); return;
        case WAIT_KIND_BARRIER: buf_puts(out, "barrier"); return;
        case WAIT_KIND_JOIN: buf_puts(out, "pthread_join"); return;
        case WAIT_KIND_ONCE: buf_puts(out, "pthread_once"); return;
        case WAIT_KIND_LOCK: buf_puts(out, "lock"); return;
        case WAIT_KIND_FUTEX: buf_puts(out, o->pi ? "PI futex" : "futex"); return;
        case WAIT_KIND_NONE: break;
        }
        buf_puts(out, "wait");
}

void thread_wait_write_object(const ThreadWait *w, Buf *out) {
        wait_object_write_kind(&w->object, out);
        if (w->object.kind == WAIT_KIND_JOIN) {
                /* The object is a thread: name it, not its descriptor's address. */
                if (w->holder_tid > 0)
                        buf_printf(out, " thread %d", (int) w->holder_tid);
                else if (w->object.holder == WAIT_HOLDER_THREAD)
                        buf_printf(out, w->owner_ns ? " thread (ns %d)" : " thread %d", (int) w->object.owner);
                else
                        buf_printf(out, " %s", w->name);
                return;
        }
        if (w->name[0])
                buf_printf(out, " %s", w->name);
}

void thread_wait_write(const ThreadWait *w, Buf *out) {
        const WaitObject *o = &w->object;
        thread_wait_write_object(w, out);
        switch (o->holder) {
        case WAIT_HOLDER_THREAD:
                if (o->kind == WAIT_KIND_JOIN) {
                        if (w->orphaned)
                                buf_puts(out, " (exited)");
                        return;
                }
                if (w->orphaned)
                        buf_printf(out, w->owner_ns ? " orphaned: holder thread (ns %d) exited" :
                                   " orphaned: holder thread %d exited", (int) o->owner);
                else if (w->holder_tid > 0 && w->holder_pid > 0)
                        buf_printf(out, " held by thread %d of pid %d", (int) w->holder_tid, (int) w->holder_pid);
                else if (w->holder_tid > 0)
                        buf_printf(out, " held by thread %d", (int) w->holder_tid);
                else
                        buf_puts(out, " owner unknown");
                if (o->owner_died && !w->orphaned)
                        buf_puts(out, " (owner died)");
                return;
        case WAIT_HOLDER_READERS:
                buf_printf(out, " read-locked by %u reader%s", o->readers, o->readers == 1 ? "" : "s");
                return;
        case WAIT_HOLDER_NONE:
                if (o->kind == WAIT_KIND_SEM)
                        buf_printf(out, " value %u", o->value);
                else if (o->kind == WAIT_KIND_BARRIER && o->count > 0)
                        buf_printf(out, " %u of %u arrived", o->arrived, o->count);
                buf_puts(out, o->kind == WAIT_KIND_COND || o->kind == WAIT_KIND_BARRIER || o->kind == WAIT_KIND_SEM ?
                         ", no owner" : " (no owner)");
                return;
        case WAIT_HOLDER_NOT_RECORDED:
                buf_puts(out, " (no owner recorded)");
                return;
        case WAIT_HOLDER_UNKNOWN:
                buf_puts(out, " owner unknown");
                return;
        }
}

bool thread_wait_is_edge(const ThreadWait *w) {
        return w && w->object.holder == WAIT_HOLDER_THREAD && !w->orphaned && w->holder_index != SIZE_MAX;
}

static bool system_module(const char *path) {
        static const char *const prefixes[] = { "libc.so", "libc-", "ld-linux", "libpthread", "libstdc++",
                                                "libgcc_s", "[vdso]" };
        if (!path)
                return false;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
                if (startswith(base, prefixes[i]))
                        return true;
        return false;
}

bool stack_frame_is_user(const SymLoc *loc, const Frame *f) {
        const char *fn = f->function;
        return loc && !system_module(loc->module) && fn && strncmp(fn, "std::", 5) != 0 &&
                strncmp(fn, "__gthread", 9) != 0;
}

const Frame *stack_top_user_frame(const Stack *s) {
        for (size_t i = 0; s && i < s->n; i++) {
                const SymLoc *loc = s->frames[i].loc;
                for (size_t k = 0; loc && k < loc->n_frames; k++)
                        if (stack_frame_is_user(loc, &loc->frames[k]))
                                return &loc->frames[k];
        }
        return NULL;
}

/* ---- deadlocks ---- */

void wait_cycles_free(WaitCycle *c, size_t n) {
        for (size_t i = 0; c && i < n; i++)
                free(c[i].threads);
        free(c);
}

int wait_cycles_find(const ThreadWait *const *waits, size_t n, WaitCycle **ret, size_t *ret_n) {
        /* Each thread has at most one outgoing edge: walk from every unvisited thread,
         * marking the walk; meeting a thread of the same walk closes a cycle. */
        size_t *walk = calloc(MAX(n, 1u), sizeof *walk);       /* 0 unvisited, else walk + 1 */
        WaitCycle *cycles = NULL;
        size_t n_cycles = 0;
        if (!walk)
                return -ENOMEM;
        for (size_t start = 0; start < n; start++) {
                if (walk[start])
                        continue;
                size_t i = start;
                while (i < n && walk[i] == 0) {
                        walk[i] = start + 1;
                        i = thread_wait_is_edge(waits[i]) ? waits[i]->holder_index : SIZE_MAX;
                }
                if (i >= n || walk[i] != start + 1)
                        continue;
                size_t len = 1;
                for (size_t j = waits[i]->holder_index; j != i; j = waits[j]->holder_index)
                        len++;
                WaitCycle *grown = realloc(cycles, (n_cycles + 1) * sizeof *cycles);
                size_t *members = malloc(len * sizeof *members);
                if (!grown || !members) {
                        free(members);
                        if (grown)
                                cycles = grown;
                        wait_cycles_free(cycles, n_cycles);
                        free(walk);
                        return -ENOMEM;
                }
                cycles = grown;
                /* Start at the lowest index, so a cycle reads the same in every dump. */
                size_t low = i;
                for (size_t j = waits[i]->holder_index; j != i; j = waits[j]->holder_index)
                        low = MIN(low, j);
                size_t k = 0;
                members[k++] = low;
                for (size_t j = waits[low]->holder_index; j != low; j = waits[j]->holder_index)
                        members[k++] = j;
                cycles[n_cycles++] = (WaitCycle) { .threads = members, .n = len };
        }
        free(walk);
        *ret = cycles;
        *ret_n = n_cycles;
        return 0;
}
