/* agent/agent.c -- libcprofd-agent.so: cprofd's heap sampler, loaded into a running target
 * by cprofd (ptrace + dlopen), never linked or preloaded by the user.
 *
 * The agent has no thread of its own: a second thread would cost a single-threaded target
 * for good (glibc's malloc takes its locks once a process has ever had two threads).
 * cprofd_agent_start() runs on a thread cprofd borrowed for a moment: it creates the shared
 * memory, redirects the allocation functions in the GOT of every loaded module, and
 * returns. The agent's periodic work is done by whichever thread takes a sample, at most
 * every CHECK_NS: it stops when cprofd asked it to or is gone (a pidfd), and hooks the
 * modules loaded since (at the first sample after a dlopen through a hooked GOT, else
 * every RESCAN_NS). cprofd calls cprofd_agent_rescan() the same way when it sees a new
 * module that no sample has hooked (a program whose allocations all go through it would
 * never take one), and cprofd_agent_stop() when it detaches: every GOT entry back, the
 * shared memory unmapped and closed. Its code stays mapped, inert: unloading it could
 * pull code from under a thread still inside a hook.
 *
 * The hooks are what every allocation pays, so their fast paths are a few instructions:
 * malloc counts the bytes down to the next sample (per thread, Poisson with mean `rate`,
 * as Go's runtime does) and jumps on; free tests one byte of a filter of the sampled
 * addresses and jumps on. The byte counts the live samples in the 512-byte piece of
 * memory the address is in (addresses 128 MiB apart share it), so the frees of
 * neighbouring blocks read the same few cache lines, and a free takes the slow path only
 * when a sampled block is that close. Only a sampled allocation, or the free of a
 * possibly sampled address, takes the slow path: the agent's lock, the set of sampled
 * addresses, and a record in the ring for cprofd (the registers and a copy of the stack:
 * cprofd unwinds and symbolizes them with the same code as its thread dumps).
 *
 * The agent must never harm its host: it never allocates on the hooks' paths (its memory
 * is static or mmapped), never waits for a lock a program thread may hold while it holds
 * its own, checks every pointer it is given against its own tables only, and on fork the
 * child puts the GOT back at once. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent-protocol.h"
#include "clock.h"
#include "sample-interval.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define SET_BITS 17                     /* sampled addresses tracked: half of 2^17 */
#define SET_SIZE (1u << SET_BITS)
#define SET_TOMBSTONE UINT64_C(1)
#define FILTER_BITS 18                  /* 512-byte pieces: 128 MiB, then they wrap */
#define SLOTS_MAX 4096                  /* GOT entries redirected at most */
#define CHECK_NS (100 * 1000000ull)      /* how often a sample looks at cprofd */
#define RESCAN_NS (1000 * 1000000ull)    /* how often it looks for modules loaded since */

/* ---- the real functions, and ours ---- */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_reallocarray)(void *, size_t, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
/* dlopen's hooks are written in assembly (below), hence these names. */
__attribute__((visibility("hidden"))) void *(*cprofd_real_dlopen)(const char *, int);
__attribute__((visibility("hidden"))) void *(*cprofd_real_dlmopen)(long, const char *, int);
__attribute__((visibility("hidden"))) atomic_bool cprofd_rescan_wanted;

static void *hook_malloc(size_t n);
static void *hook_calloc(size_t n, size_t size);
static void *hook_realloc(void *p, size_t n);
static void *hook_reallocarray(void *p, size_t n, size_t size);
static void hook_free(void *p);
static int hook_posix_memalign(void **ret, size_t align, size_t n);
static void *hook_aligned_alloc(size_t align, size_t n);
static void *hook_memalign(size_t align, size_t n);
static void *hook_valloc(size_t n);
__attribute__((visibility("hidden"))) void *cprofd_hook_dlopen(const char *file, int mode);
__attribute__((visibility("hidden"))) void *cprofd_hook_dlmopen(long ns, const char *file, int mode);

static const struct {
        const char *name;
        void *hook;
        void **real;
} hooks[] = {
        { "malloc", (void *) hook_malloc, (void **) &real_malloc },
        { "calloc", (void *) hook_calloc, (void **) &real_calloc },
        { "realloc", (void *) hook_realloc, (void **) &real_realloc },
        { "reallocarray", (void *) hook_reallocarray, (void **) &real_reallocarray },
        { "free", (void *) hook_free, (void **) &real_free },
        { "posix_memalign", (void *) hook_posix_memalign, (void **) &real_posix_memalign },
        { "aligned_alloc", (void *) hook_aligned_alloc, (void **) &real_aligned_alloc },
        { "memalign", (void *) hook_memalign, (void **) &real_memalign },
        { "valloc", (void *) hook_valloc, (void **) &real_valloc },
        { "dlopen", (void *) cprofd_hook_dlopen, (void **) &cprofd_real_dlopen },
        { "dlmopen", (void *) cprofd_hook_dlmopen, (void **) &cprofd_real_dlmopen },
};
#define N_HOOKS (sizeof hooks / sizeof hooks[0])

/* ---- state ---- */

static atomic_flag lock = ATOMIC_FLAG_INIT;     /* ring, set, filter writes */
static AgentHeader *shm;                /* NULL once stopped */
static uint8_t *ring;
static uint64_t ring_size;
static uint64_t rate = 512 * 1024;
static int memfd = -1;
static pid_t host_pid;
static uintptr_t main_stack_end;        /* __libc_stack_end: _start's sp */
static int daemon_pidfd = -1;
static atomic_bool running;             /* from start until stopped: hooks may sample */
/* Start, stop and the periodic work, one at a time. Never waited for by a hook: a thread
 * that finds it taken leaves the work to its holder. */
static atomic_flag busy = ATOMIC_FLAG_INIT;
static _Atomic uint64_t next_check_ns;  /* when a sample looks at cprofd again */
static uint64_t next_rescan_ns;         /* under busy */

static _Atomic uint64_t set[SET_SIZE];  /* sampled addresses; 0 empty, 1 tombstone */
static size_t set_used;                 /* live + tombstones, under lock */
static size_t set_live;                 /* under lock */
/* How many live samples are in each 512-byte piece of memory, byte (address >> 9) %
 * 2^FILTER_BITS (saturating: a count at its maximum stays there). Written under lock,
 * read by every free without it. */
static _Atomic uint8_t filter[1u << FILTER_BITS];

typedef struct Slot {
        uintptr_t module_base;          /* restored only while that module is loaded */
        void **address;
        void *original;
        void *hook;
        bool read_only;                 /* in RELRO */
} Slot;
static Slot *slots;                     /* mmapped, SLOTS_MAX */
static size_t n_slots;
static uintptr_t hooked_bases[1024];    /* modules already scanned, by load base */
static size_t n_hooked_bases;

static TLS uint64_t bytes_left;         /* until the next sample; 0 before a thread's first */
static TLS uint64_t rng;                /* 0: this thread has not drawn yet */
static TLS bool in_agent;               /* the agent's own allocations are not sampled */
static TLS uint32_t own_tid;            /* 0 until the thread's first sample */
static TLS uintptr_t stack_lo, stack_hi;        /* its stack, as pthread knows it; hi 1:
                                                   unknown */

/* ---- helpers ---- */

static void lock_take(void) {
        while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
                sched_yield();
}

static void lock_release(void) {
        atomic_flag_clear_explicit(&lock, memory_order_release);
}


static uint32_t filter_index(uintptr_t p) {
        return (uint32_t) (p >> 9) & ((1u << FILTER_BITS) - 1);
}

static uint32_t set_index(uint64_t key) {
        return (uint32_t) (((key >> 4) * UINT64_C(0xC2B2AE3D27D4EB4F)) >> (64 - SET_BITS));
}

/* Bytes until this thread's next sample (rng: per thread, seeded from the tid and the
 * clock). */
static int64_t draw_interval(void) {
        return sample_interval(&rng, rate);
}

static void tend(void);

/* The slow path of every allocation hook: true when an allocation of N bytes is sampled
 * (it crossed the countdown, which restarts). */
static bool crossed(size_t n) {
        tend();
        if (unlikely(rng == 0)) {
                /* A thread's first allocation: its countdown starts now, and the
                 * exponential has no memory, so this one may already cross it (a thread
                 * that allocates once, then blocks, must be sampled like any other). */
                rng = ((uint64_t) syscall(SYS_gettid) << 32) ^ now_realtime_ns() ^ (uintptr_t) &rng;
                if (rng == 0)
                        rng = 1;
                uint64_t first = (uint64_t) draw_interval();
                if (n <= first) {
                        bytes_left = first - n;
                        return false;
                }
        }
        bytes_left = (uint64_t) draw_interval();
        return atomic_load_explicit(&running, memory_order_relaxed);
}

/* True when N bytes cross this thread's countdown (then crossed() restarts it). Two
 * instructions on the way through: a subtraction from the thread's counter and a branch
 * on its borrow. */
static bool count_down(size_t n) {
        uint64_t left;
        if (unlikely(__builtin_sub_overflow(bytes_left, (uint64_t) n, &left)))
                return true;
        bytes_left = left;
        return false;
}

/* ---- the ring ---- */

static uint64_t record_start;           /* where the reserved record starts; under lock */

/* Reserves SIZE bytes (8-aligned) in the ring, padding to its end when needed. NULL when
 * full. Nothing is visible to cprofd until ring_commit(). Under lock. */
static void *ring_reserve(uint32_t size) {
        uint64_t head = shm->head, tail = __atomic_load_n(&shm->tail, __ATOMIC_ACQUIRE);
        uint64_t off = head % ring_size, room_to_end = ring_size - off;
        uint64_t need = size + (room_to_end < size ? room_to_end : 0);

        if (tail > head || head - tail + need > ring_size)
                return NULL;
        if (room_to_end < size) {
                AgentRecordHeader *pad = (AgentRecordHeader *) (ring + off);
                pad->type = AGENT_RECORD_PAD;
                pad->size = (uint32_t) room_to_end;
                head += room_to_end;
                off = 0;
        }
        record_start = head;
        return ring + off;
}

/* Publishes the reserved record, USED bytes of it (8-aligned, ≤ what was reserved). */
static void ring_commit(uint32_t used) {
        __atomic_store_n(&shm->head, record_start + used, __ATOMIC_RELEASE);
}

/* ---- the set of sampled addresses ---- */

static void filter_add(uint64_t key, int delta) {
        _Atomic uint8_t *c = &filter[filter_index(key)];
        uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
        if (v == UINT8_MAX || (delta < 0 && v == 0))
                return;
        atomic_store_explicit(c, (uint8_t) (v + delta), memory_order_release);
}

/* Inserts KEY into the set alone. Under lock. */
static bool set_put(uint64_t key) {
        if (set_used >= SET_SIZE / 2)
                return false;
        for (uint32_t i = set_index(key);; i = (i + 1) & (SET_SIZE - 1)) {
                uint64_t k = atomic_load_explicit(&set[i], memory_order_relaxed);
                if (k == 0 || k == SET_TOMBSTONE) {
                        if (k == 0)
                                set_used++;
                        set_live++;
                        atomic_store_explicit(&set[i], key, memory_order_release);
                        return true;
                }
        }
}

static bool set_insert(uint64_t key) {
        if (!set_put(key))
                return false;
        filter_add(key, +1);
        return true;
}

/* Whether KEY is in the set: a probe without the lock, so that a free the filter let
 * through by a collision costs no lock. A racing insert or removal of KEY cannot happen:
 * KEY is the block being freed, which nobody else holds. */
static bool set_contains(uint64_t key) {
        for (uint32_t i = set_index(key), n = 0; n < SET_SIZE; i = (i + 1) & (SET_SIZE - 1), n++) {
                uint64_t k = atomic_load_explicit(&set[i], memory_order_acquire);
                if (k == 0)
                        return false;
                if (k == key)
                        return true;
        }
        return false;
}

/* Removes KEY; true when it was there. Under lock. */
static bool set_remove(uint64_t key) {
        for (uint32_t i = set_index(key);; i = (i + 1) & (SET_SIZE - 1)) {
                uint64_t k = atomic_load_explicit(&set[i], memory_order_relaxed);
                if (k == 0)
                        return false;
                if (k == key) {
                        atomic_store_explicit(&set[i], SET_TOMBSTONE, memory_order_release);
                        set_live--;
                        filter_add(key, -1);
                        return true;
                }
        }
}

/* Zeroes [P, P + N): whole pages by handing them back (they read as zeros), the ragged
 * ends by hand. */
static void zero_and_release(void *p, size_t n) {
        uintptr_t start = (uintptr_t) p, end = start + n;
        uintptr_t a = (start + 4095) & ~(uintptr_t) 4095, b = end & ~(uintptr_t) 4095;
        if (a >= b || madvise((void *) a, b - a, MADV_DONTNEED) < 0) {
                memset(p, 0, n);
                return;
        }
        memset(p, 0, a - start);
        memset((void *) b, 0, end - b);
}

/* Drops the tombstones, which would otherwise fill the set for good: every live key is
 * put again into an emptied set (the filter's counts stay as they are). Under lock. A
 * free probing without the lock meanwhile may miss its key and leave a sample counted
 * live: a rare, harmless error, where a crash would not be. */
static void compact_set(void) {
        size_t n = set_live, k = 0;
        uint64_t *keys = n ? mmap(NULL, n * sizeof *keys, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                           : NULL;
        if (keys == MAP_FAILED)
                return;
        for (uint32_t i = 0; i < SET_SIZE && k < n; i++) {
                uint64_t key = atomic_load_explicit(&set[i], memory_order_relaxed);
                if (key > SET_TOMBSTONE)
                        keys[k++] = key;
        }
        zero_and_release((void *) set, sizeof set);
        set_used = set_live = 0;
        for (size_t i = 0; i < k; i++)
                (void) set_put(keys[i]);
        if (keys)
                munmap(keys, n * sizeof *keys);
}

/* Keeps the set from filling with tombstones. Under busy. */
static void tidy_set(void) {
        lock_take();
        if (set_used - set_live > SET_SIZE / 8)
                compact_set();
        lock_release();
}

static void write_free(uint64_t address) {
        AgentFree *f = ring_reserve(sizeof *f);
        if (!f)
                return;                 /* cprofd sees it as still live: counted as lost */
        *f = (AgentFree) { .h = { AGENT_RECORD_FREE, sizeof *f }, .address = address };
        ring_commit(sizeof *f);
}

static bool maybe_sampled(const void *p) {
        return atomic_load_explicit(&filter[filter_index((uintptr_t) p)], memory_order_relaxed) != 0;
}

/* ---- sampling ---- */

/* This thread's id and the bounds of its stack worth copying, once. pthread knows the
 * stack (for the main thread it reads /proc/self/maps, and it may allocate: we are inside
 * the agent, so that is not sampled), but its top holds what no frame needs: the main
 * thread's argv, environment and auxv strings above __libc_stack_end, another thread's
 * descriptor and static TLS (ours among it) above its first frame. */
static void learn_thread(void) {
        pthread_attr_t attr;
        void *addr;
        size_t size;

        own_tid = (uint32_t) syscall(SYS_gettid);
        stack_lo = 0;
        stack_hi = 1;                   /* unknown: nothing is inside */
        if (pthread_getattr_np(pthread_self(), &attr) != 0)
                return;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0 && size > 0) {
                stack_lo = (uintptr_t) addr;
                stack_hi = (uintptr_t) addr + size;
        }
        pthread_attr_destroy(&attr);
        uintptr_t top = own_tid == (uint32_t) host_pid ? main_stack_end + 64 : (uintptr_t) &bytes_left;
        if (top > stack_lo && top < stack_hi)
                stack_hi = top;
}

/* Records the allocation P of N bytes with the registers and stack of this call. noinline:
 * the registers it reads are its own, with unwind info cprofd can follow up to the hook. */
__attribute__((noinline)) static void record_alloc(void *p, size_t n) {
        AgentRegs regs;
        __asm__ volatile("leaq 0(%%rip), %%rax\n\t"
                         "movq %%rax, 0(%0)\n\t"
                         "movq %%rsp, 8(%0)\n\t"
                         "movq %%rbp, 16(%0)\n\t"
                         "movq %%rbx, 24(%0)\n\t"
                         "movq %%r12, 32(%0)\n\t"
                         "movq %%r13, 40(%0)\n\t"
                         "movq %%r14, 48(%0)\n\t"
                         "movq %%r15, 56(%0)"
                         :
                         : "r"(&regs)
                         : "rax", "memory");
        uint64_t address = (uintptr_t) p;
        if (own_tid == 0)
                learn_thread();
        /* The live part of the stack, from sp to its top: often a few KiB. A sp outside the
         * known stack (a signal stack, a coroutine's) is copied through the kernel, which
         * stops at the end of a mapping instead of faulting. */
        size_t want = AGENT_STACK_COPY_MAX;
        bool known = regs.rsp >= stack_lo && regs.rsp < stack_hi;
        if (known && stack_hi - regs.rsp < want)
                want = stack_hi - regs.rsp;

        lock_take();
        if (!shm || !atomic_load(&running)) {
                lock_release();
                return;
        }
        /* A sampled address freed where no hook saw it, now handed out again. The filter
         * spares the probe of the set for nearly every sample. */
        if (maybe_sampled(p) && set_remove(address))
                write_free(address);
        uint32_t size = (uint32_t) ((sizeof(AgentAlloc) + want + 7) & ~(size_t) 7);
        AgentAlloc *a = ring_reserve(size);
        if (!a) {
                __atomic_fetch_add(&shm->lost, 1, __ATOMIC_RELAXED);
                lock_release();
                return;
        }
        if (!set_insert(address)) {
                __atomic_fetch_add(&shm->untracked, 1, __ATOMIC_RELAXED);
                lock_release();         /* nothing committed: the reservation is reused */
                return;
        }
        ssize_t copied = (ssize_t) want;
        if (known)
                memcpy((uint8_t *) a + sizeof *a, (const void *) (uintptr_t) regs.rsp, want);
        else {
                struct iovec local = { .iov_base = (uint8_t *) a + sizeof *a, .iov_len = want };
                struct iovec remote = { .iov_base = (void *) (uintptr_t) regs.rsp, .iov_len = want };
                copied = process_vm_readv(host_pid, &local, 1, &remote, 1, 0);
                if (copied < 0)
                        copied = 0;
        }
        uint32_t used = (uint32_t) ((sizeof *a + (size_t) copied + 7) & ~(size_t) 7);
        *a = (AgentAlloc) {
                .h = { AGENT_RECORD_ALLOC, used },
                .address = address,
                .bytes = n,
                .tid = own_tid,
                .stack_len = (uint32_t) copied,
                .stack_start = regs.rsp,
                .regs = regs,
        };
        ring_commit(used);
        lock_release();
}

static void *sample_alloc(void *p, size_t n) {
        if (p && !in_agent) {
                in_agent = true;
                record_alloc(p, n);
                in_agent = false;
        }
        return p;
}

/* The slow half of free: P may be sampled. */
static void forget(void *p) {
        /* in_agent: a signal handler's free while this thread holds the lock would wait
         * for itself; the sample stays counted live instead. */
        if (in_agent || !set_contains((uintptr_t) p))
                return;
        in_agent = true;
        lock_take();
        if (shm && set_remove((uintptr_t) p))
                write_free((uintptr_t) p);
        lock_release();
        in_agent = false;
}

/* ---- hooks ---- */

static void *hook_malloc(size_t n) {
        if (likely(!count_down(n)))
                return real_malloc(n);
        bool s = crossed(n);
        void *p = real_malloc(n);
        return s ? sample_alloc(p, n) : p;
}

static void *hook_calloc(size_t n, size_t size) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total) || likely(!count_down(total)))
                return real_calloc(n, size);
        bool s = crossed(total);
        void *p = real_calloc(n, size);
        return s ? sample_alloc(p, total) : p;
}

static void hook_free(void *p) {
        /* NULL needs no test of its own: the set never holds 0. */
        if (unlikely(maybe_sampled(p)))
                forget(p);
        real_free(p);
}

static void *hook_realloc(void *p, size_t n) {
        /* The old block is gone whether realloc moves it or not: forget it first, so its
         * address cannot be handed out again and sampled before we do. */
        if (p && maybe_sampled(p))
                forget(p);
        if (n == 0 || likely(!count_down(n)))
                return real_realloc(p, n);
        bool s = crossed(n);
        void *q = real_realloc(p, n);
        return s ? sample_alloc(q, n) : q;
}

/* reallocarray is realloc once the product is checked; glibc's own reallocarray calls
 * realloc through its PLT, which is hooked too, so going through real_reallocarray would
 * count the call twice. */
static void *hook_reallocarray(void *p, size_t n, size_t size) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total))
                return real_reallocarray(p, n, size);   /* fails with ENOMEM, p untouched */
        return hook_realloc(p, total);
}

static int hook_posix_memalign(void **ret, size_t align, size_t n) {
        if (likely(!count_down(n)))
                return real_posix_memalign(ret, align, n);
        bool s = crossed(n);
        int r = real_posix_memalign(ret, align, n);
        if (r == 0 && s)
                sample_alloc(*ret, n);
        return r;
}

static void *hook_aligned_alloc(size_t align, size_t n) {
        if (likely(!count_down(n)))
                return real_aligned_alloc(align, n);
        bool s = crossed(n);
        void *p = real_aligned_alloc(align, n);
        return s ? sample_alloc(p, n) : p;
}

static void *hook_memalign(size_t align, size_t n) {
        if (likely(!count_down(n)))
                return real_memalign(align, n);
        bool s = crossed(n);
        void *p = real_memalign(align, n);
        return s ? sample_alloc(p, n) : p;
}

static void *hook_valloc(size_t n) {
        if (likely(!count_down(n)))
                return real_valloc(n);
        bool s = crossed(n);
        void *p = real_valloc(n);
        return s ? sample_alloc(p, n) : p;
}

/* ---- GOT redirection ---- */

static uintptr_t own_base(void) {
        Dl_info info;
        return dladdr((void *) own_base, &info) ? (uintptr_t) info.dli_fbase : 0;
}

static int hook_index(const char *name) {
        for (size_t i = 0; i < N_HOOKS; i++)
                if (strcmp(name, hooks[i].name) == 0)
                        return (int) i;
        return -1;
}

/* Writes VALUE to the GOT entry at SLOT, lifting RELRO's read-only for the moment. */
static void write_slot(void **slot, void *value, bool read_only) {
        long page = sysconf(_SC_PAGESIZE);
        void *start = (void *) ((uintptr_t) slot & ~(uintptr_t) (page - 1));
        if (read_only && mprotect(start, (size_t) page, PROT_READ | PROT_WRITE) < 0)
                return;
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
        if (read_only)
                (void) mprotect(start, (size_t) page, PROT_READ);
}

typedef struct Module {
        uintptr_t base;
        const ElfW(Phdr) *phdr;
        size_t phnum;
} Module;

/* d_ptr values are relocated in place by glibc where .dynamic is writable, and not where
 * it is read-only: an unrelocated one lies below the load base. */
static uintptr_t dyn_ptr(const Module *m, ElfW(Addr) v) {
        return v < m->base ? m->base + v : v;
}

static bool in_relro(const Module *m, uintptr_t addr) {
        for (size_t i = 0; i < m->phnum; i++)
                if (m->phdr[i].p_type == PT_GNU_RELRO) {
                        uintptr_t start = m->base + m->phdr[i].p_vaddr;
                        if (addr >= start && addr < start + m->phdr[i].p_memsz)
                                return true;
                }
        return false;
}

static void hook_relocations(const Module *m, const ElfW(Rela) *rel, size_t n, const ElfW(Sym) *symtab,
                             const char *strtab, size_t strsz) {
        for (size_t i = 0; i < n && n_slots < SLOTS_MAX; i++) {
                unsigned type = ELF64_R_TYPE(rel[i].r_info);
                if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
                        continue;
                size_t sym = ELF64_R_SYM(rel[i].r_info);
                if (sym == 0 || symtab[sym].st_name >= strsz)
                        continue;
                int h = hook_index(strtab + symtab[sym].st_name);
                if (h < 0)
                        continue;
                void **slot = (void **) (m->base + rel[i].r_offset);
                void *original = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
                if (original == hooks[h].hook)
                        continue;
                bool ro = in_relro(m, (uintptr_t) slot);
                slots[n_slots++] = (Slot) { .module_base = m->base, .address = slot, .original = original,
                                            .hook = hooks[h].hook, .read_only = ro };
                write_slot(slot, hooks[h].hook, ro);
                if (shm)
                        shm->hooked_slots++;
        }
}

static int hook_module(struct dl_phdr_info *info, size_t size, void *data) {
        uintptr_t self = *(uintptr_t *) data;
        (void) size;
        if (info->dlpi_addr == self && self != 0)
                return 0;
        for (size_t i = 0; i < n_hooked_bases; i++)
                if (hooked_bases[i] == info->dlpi_addr)
                        return 0;
        /* The vdso has no relocations worth a look; the agent's own calls must stay real. */
        if (info->dlpi_name && strncmp(info->dlpi_name, "linux-vdso", 10) == 0)
                return 0;
        Module m = { .base = info->dlpi_addr, .phdr = info->dlpi_phdr, .phnum = info->dlpi_phnum };
        const ElfW(Dyn) *dyn = NULL;
        for (size_t i = 0; i < m.phnum; i++)
                if (m.phdr[i].p_type == PT_DYNAMIC)
                        dyn = (const ElfW(Dyn) *) (m.base + m.phdr[i].p_vaddr);
        if (!dyn)
                return 0;
        const ElfW(Sym) *symtab = NULL;
        const char *strtab = NULL;
        size_t strsz = 0, relasz = 0, pltrelsz = 0;
        const ElfW(Rela) *rela = NULL, *jmprel = NULL;
        long pltrel = DT_RELA;
        for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
                switch (d->d_tag) {
                case DT_SYMTAB: symtab = (const ElfW(Sym) *) dyn_ptr(&m, d->d_un.d_ptr); break;
                case DT_STRTAB: strtab = (const char *) dyn_ptr(&m, d->d_un.d_ptr); break;
                case DT_STRSZ: strsz = d->d_un.d_val; break;
                case DT_RELA: rela = (const ElfW(Rela) *) dyn_ptr(&m, d->d_un.d_ptr); break;
                case DT_RELASZ: relasz = d->d_un.d_val; break;
                case DT_JMPREL: jmprel = (const ElfW(Rela) *) dyn_ptr(&m, d->d_un.d_ptr); break;
                case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
                case DT_PLTREL: pltrel = (long) d->d_un.d_val; break;
                }
        if (n_hooked_bases < sizeof hooked_bases / sizeof hooked_bases[0])
                hooked_bases[n_hooked_bases++] = m.base;
        if (!symtab || !strtab)
                return 0;
        if (shm)
                shm->hooked_modules++;
        if (rela)
                hook_relocations(&m, rela, relasz / sizeof *rela, symtab, strtab, strsz);
        if (jmprel && pltrel == DT_RELA)
                hook_relocations(&m, jmprel, pltrelsz / sizeof *jmprel, symtab, strtab, strsz);
        return 0;
}

static void hook_all_modules(void) {
        uintptr_t self = own_base();
        dl_iterate_phdr(hook_module, &self);
        if (shm)
                __atomic_store_n(&shm->scanned_ns, now_realtime_ns(), __ATOMIC_RELEASE);
}

/* Puts back the entries of one loaded module that still point at a hook (one that someone
 * changed since is left to them). Runs inside dl_iterate_phdr, which holds the loader's
 * lock: the module cannot be unloaded under us. A module unloaded since took its GOT
 * with it, and must not be written to. */
static int unhook_module(struct dl_phdr_info *info, size_t size, void *data) {
        (void) size;
        (void) data;
        for (size_t i = 0; i < n_slots; i++) {
                Slot *s = &slots[i];
                if (s->module_base != info->dlpi_addr || !s->address)
                        continue;
                if (__atomic_load_n(s->address, __ATOMIC_ACQUIRE) == s->hook)
                        write_slot(s->address, s->original, s->read_only);
                s->address = NULL;
        }
        return 0;
}

static void unhook_all(void) {
        dl_iterate_phdr(unhook_module, NULL);
        n_slots = 0;
        n_hooked_bases = 0;
}

/* ---- dlopen ---- */

/* dlopen finds its caller's module from the return address (whose RPATH it searches, in
 * whose namespace it loads): its hooks must leave that in place, so they only ask for a
 * rescan and jump on. The next sample hooks what the call loaded. */
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl cprofd_hook_dlopen\n"
        ".hidden cprofd_hook_dlopen\n"
        ".type cprofd_hook_dlopen, @function\n"
        "cprofd_hook_dlopen:\n"
        "\t.cfi_startproc\n"
        "\tmovb $1, cprofd_rescan_wanted(%rip)\n"
        "\tjmp *cprofd_real_dlopen(%rip)\n"
        "\t.cfi_endproc\n"
        ".size cprofd_hook_dlopen, .-cprofd_hook_dlopen\n"
        ".p2align 4\n"
        ".globl cprofd_hook_dlmopen\n"
        ".hidden cprofd_hook_dlmopen\n"
        ".type cprofd_hook_dlmopen, @function\n"
        "cprofd_hook_dlmopen:\n"
        "\t.cfi_startproc\n"
        "\tmovb $1, cprofd_rescan_wanted(%rip)\n"
        "\tjmp *cprofd_real_dlmopen(%rip)\n"
        "\t.cfi_endproc\n"
        ".size cprofd_hook_dlmopen, .-cprofd_hook_dlmopen\n"
        ".popsection\n");

/* ---- lifecycle ---- */


/* For cprofd's calls, on a borrowed thread: that thread may be the one holding busy (it
 * was borrowed in the middle of the periodic work, waiting for the loader's lock), so the
 * wait is bounded and the call can fail with -EAGAIN. */
static bool busy_take(void) {
        for (int i = 0; i < 10000; i++) {
                if (!atomic_flag_test_and_set_explicit(&busy, memory_order_acquire))
                        return true;
                sched_yield();
        }
        return false;
}

static void busy_release(void) {
        atomic_flag_clear_explicit(&busy, memory_order_release);
}

static void release_shared_memory(void) {
        lock_take();
        AgentHeader *h = shm;
        shm = NULL;
        ring = NULL;
        lock_release();
        if (h)
                munmap(h, AGENT_HEADER_SIZE + ring_size);     /* not h's sizes: cprofd can write them */
        if (memfd >= 0)
                close(memfd);
        memfd = -1;
        /* Forget every sampled address, giving the pages back to the kernel. */
        zero_and_release((void *) set, sizeof set);
        zero_and_release((void *) filter, sizeof filter);
        set_used = set_live = 0;
}

/* cprofd asked the agent to stop, or is gone (exited, killed). Under busy. */
static bool stop_wanted(void) {
        if (!shm)
                return true;
        if (__atomic_load_n(&shm->command, __ATOMIC_ACQUIRE) == AGENT_COMMAND_STOP)
                return true;
        if (daemon_pidfd < 0)
                return kill(shm->daemon_pid, 0) < 0 && errno == ESRCH;
        struct pollfd p = { .fd = daemon_pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

/* Hooks back, shared memory gone. Under busy. Threads still inside a hook finish with the
 * real functions. TELL: say so in the shared memory (not from a forked child: the memory
 * is its parent's agent's too). */
static void stop_now(bool tell) {
        atomic_store(&running, false);
        unhook_all();
        if (daemon_pidfd >= 0)
                close(daemon_pidfd);
        daemon_pidfd = -1;
        if (shm && tell)
                __atomic_store_n(&shm->state, AGENT_STATE_STOPPED, __ATOMIC_RELEASE);
        release_shared_memory();
}

static void stop_and_tell(void) {
        stop_now(true);
}

/* The agent's periodic work, done on the thread of a sample (or of a thread's first
 * allocation) when it is due: stop if cprofd wants it or is gone, hook modules loaded
 * since, keep the set tidy. Never on the agent's lock: it may take the loader's. */
static void tend(void) {
        bool rescan = atomic_load_explicit(&cprofd_rescan_wanted, memory_order_relaxed);
        uint64_t now = clock_ns(CLOCK_MONOTONIC_COARSE);
        if (!rescan && now < atomic_load_explicit(&next_check_ns, memory_order_relaxed))
                return;
        if (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire))
                return;
        if (atomic_load(&running)) {
                atomic_store_explicit(&next_check_ns, now + CHECK_NS, memory_order_relaxed);
                if (stop_wanted())
                        stop_and_tell();
                else if (rescan || now >= next_rescan_ns) {
                        atomic_store_explicit(&cprofd_rescan_wanted, false, memory_order_relaxed);
                        hook_all_modules();
                        tidy_set();
                        next_rescan_ns = now + RESCAN_NS;
                }
        }
        busy_release();
}

/* In a child after fork: cprofd does not follow it. Put the GOT back. Only this thread
 * exists: locks held by others at the fork are theirs no more. */
static void after_fork_in_child(void) {
        atomic_flag_clear(&busy);
        atomic_flag_clear(&lock);
        if (atomic_load(&running))
                stop_now(false);
}

/* Under busy: the shared memory and the hooks. Returns the memfd or a negative errno.
 * Takes DAEMON_FD (closed on failure). */
static int start_now(int daemon_pid, uint64_t sample_rate, uint64_t ring_bytes, int daemon_fd) {
        static bool atfork_registered;

        for (size_t i = 0; i < N_HOOKS; i++)
                if (!(*hooks[i].real = dlsym(RTLD_DEFAULT, hooks[i].name))) {
                        if (daemon_fd >= 0)
                                close(daemon_fd);
                        return -ENOSYS;         /* an allocator without all of them */
                }
        if (ring_bytes < AGENT_RING_SIZE_MIN || ring_bytes > AGENT_RING_SIZE_MAX)
                ring_bytes = AGENT_RING_SIZE_DEFAULT;
        ring_bytes &= ~(uint64_t) 4095;
        rate = sample_rate > 0 ? sample_rate : 512 * 1024;
        host_pid = getpid();
        void **stack_end = dlsym(RTLD_DEFAULT, "__libc_stack_end");
        main_stack_end = stack_end ? (uintptr_t) *stack_end : 0;

        size_t header = AGENT_HEADER_SIZE, total = header + ring_bytes;
        int fd = (int) syscall(SYS_memfd_create, AGENT_SHM_NAME, MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t) total) < 0) {
                int r = -errno;
                if (fd >= 0)
                        close(fd);
                if (daemon_fd >= 0)
                        close(daemon_fd);
                return r;
        }
        void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (!slots)
                slots = mmap(NULL, SLOTS_MAX * sizeof *slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0);
        if (mem == MAP_FAILED || slots == MAP_FAILED) {
                if (mem != MAP_FAILED)
                        munmap(mem, total);
                if (slots == MAP_FAILED)
                        slots = NULL;
                close(fd);
                if (daemon_fd >= 0)
                        close(daemon_fd);
                return -ENOMEM;
        }
        AgentHeader *h = mem;
        *h = (AgentHeader) {
                .magic = AGENT_MAGIC,
                .version = AGENT_VERSION,
                .header_size = (uint32_t) header,
                .ring_size = ring_bytes,
                .rate = rate,
                .daemon_pid = daemon_pid,
                .state = AGENT_STATE_STARTING,
        };
        shm = h;
        ring = (uint8_t *) mem + header;
        ring_size = ring_bytes;
        memfd = fd;
        /* Either fd polls readable once cprofd is gone: a pidfd when it exits, the pipe
         * when its write end, which cprofd alone holds, is closed. */
        daemon_pidfd = daemon_fd >= 0 ? daemon_fd : (int) syscall(SYS_pidfd_open, daemon_pid, 0);
        if (!atfork_registered && pthread_atfork(NULL, NULL, after_fork_in_child) == 0)
                atfork_registered = true;

        atomic_store(&cprofd_rescan_wanted, false);
        hook_all_modules();
        uint64_t now = clock_ns(CLOCK_MONOTONIC_COARSE);
        next_rescan_ns = now + RESCAN_NS;
        atomic_store(&next_check_ns, now + CHECK_NS);
        atomic_store(&running, true);
        __atomic_store_n(&shm->state, AGENT_STATE_ACTIVE, __ATOMIC_RELEASE);
        return fd;
}

/* Called by cprofd on a borrowed thread of the target: returns the memfd of the shared
 * memory (cprofd opens it through /proc), or a negative errno: -EBUSY when another
 * cprofd, still running, tracks this process. An agent whose cprofd is gone without its
 * next sample having noticed is stopped and started anew. The fourth argument, when
 * given, is the read end of a pipe whose write end cprofd alone holds: how the agent sees cprofd go
 * when DAEMON_PID means nothing in the target's pid namespace (a container). It comes as
 * DAEMON_FD_PLUS_1, so that 0 (what a caller that knows nothing of it leaves there) means
 * none. The agent owns it from this call on, and closes it on every path where it does
 * not keep it. */
EXPORT int cprofd_agent_start(int daemon_pid, uint64_t sample_rate, uint64_t ring_bytes, uint64_t daemon_fd_plus_1);
EXPORT int cprofd_agent_start(int daemon_pid, uint64_t sample_rate, uint64_t ring_bytes, uint64_t daemon_fd_plus_1) {
        int daemon_fd = daemon_fd_plus_1 > 0 && daemon_fd_plus_1 <= INT32_MAX ? (int) (daemon_fd_plus_1 - 1) : -1;
        if (!busy_take()) {
                if (daemon_fd >= 0)
                        close(daemon_fd);
                return -EAGAIN;
        }
        if (atomic_load(&running)) {
                if (!stop_wanted()) {
                        busy_release();
                        if (daemon_fd >= 0)
                                close(daemon_fd);
                        return -EBUSY;
                }
                stop_and_tell();
        }
        bool saved_in_agent = in_agent;
        in_agent = true;                /* dlsym may allocate: not a sample */
        int r = start_now(daemon_pid, sample_rate, ring_bytes, daemon_fd);
        in_agent = saved_in_agent;
        busy_release();
        return r;
}

/* WORK under busy, if the agent runs: 0, -ESRCH when it does not, -EAGAIN when busy
 * stayed taken (try again). */
static int if_running(void (*work)(void)) {
        if (!busy_take())
                return -EAGAIN;
        bool was = atomic_load(&running);
        if (was)
                work();
        busy_release();
        return was ? 0 : -ESRCH;
}

/* Called by cprofd the same way when it detaches (on -EAGAIN the next sample stops it). */
EXPORT int cprofd_agent_stop(void);
EXPORT int cprofd_agent_stop(void) {
        return if_running(stop_and_tell);
}

/* Called by cprofd the same way when the target has loaded modules that no sample has
 * hooked yet. */
EXPORT int cprofd_agent_rescan(void);
EXPORT int cprofd_agent_rescan(void) {
        return if_running(hook_all_modules);
}
