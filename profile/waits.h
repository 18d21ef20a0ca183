/* profile/waits.h -- why a thread waits: which synchronization object a thread blocked in
 * a futex wants, what glibc's bytes of that object say about its holder, and which waits
 * form deadlock cycles.
 *
 * Pure code, as the rest of profile/: the frames and the futex syscall's arguments say
 * what kind of object it is (the libc function waiting, the C++ type above it); the
 * object's bytes, read from the target by the caller after the thread was released, say
 * who holds it. Those bytes are untrusted and may be torn by the target's own writes, so
 * every field is checked against the others and against the wait before an owner is
 * believed: a doubt yields "owner unknown", never a wrong name.
 *
 * Layouts are glibc's on x86-64 since 2.34 (pthread_mutex_t, pthread_rwlock_t,
 * pthread_cond_t, sem_t, pthread_barrier_t, struct pthread's tid for joins); libstdc++'s
 * std::mutex, std::recursive_mutex, std::shared_mutex, std::condition_variable and
 * std::call_once are these objects at offset 0. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"

typedef enum WaitKind {
        WAIT_KIND_NONE,                 /* not a futex wait */
        WAIT_KIND_FUTEX,                /* a futex no known libc function waits on */
        WAIT_KIND_LOCK,                 /* a libc-internal low-level lock (malloc, stdio) */
        WAIT_KIND_MUTEX,
        WAIT_KIND_RWLOCK_READ,          /* wants the read side */
        WAIT_KIND_RWLOCK_WRITE,
        WAIT_KIND_COND,
        WAIT_KIND_SEM,
        WAIT_KIND_BARRIER,
        WAIT_KIND_JOIN,
        WAIT_KIND_ONCE,
} WaitKind;

/* The C++ standard type a libstdc++ frame above the libc one says the object is. */
typedef enum CxxSync {
        CXX_SYNC_NONE,
        CXX_SYNC_MUTEX,
        CXX_SYNC_RECURSIVE_MUTEX,
        CXX_SYNC_TIMED_MUTEX,
        CXX_SYNC_RECURSIVE_TIMED_MUTEX,
        CXX_SYNC_SHARED_MUTEX,
        CXX_SYNC_SHARED_TIMED_MUTEX,
        CXX_SYNC_CONDITION_VARIABLE,
        CXX_SYNC_CONDITION_VARIABLE_ANY,
        CXX_SYNC_CALL_ONCE,
} CxxSync;

/* What the stack and the syscall say, before any object byte is read. */
typedef struct WaitSite {
        WaitKind kind;
        CxxSync cxx;
        uint64_t futex;                 /* the futex word's address (syscall argument 1) */
        unsigned futex_cmd;             /* FUTEX_WAIT, FUTEX_LOCK_PI, … (op without flags) */
        uint32_t futex_val;             /* the value it expects (argument 3) */
        bool shared;                    /* no FUTEX_PRIVATE_FLAG: the object may be shared
                                           with other processes, and so its holder */
} WaitSite;

/* The window of target memory wait_object_decode() wants for SITE: every candidate
 * position of the object around the futex word. Zero length when there is nothing to
 * read. */
typedef struct MemoryWindow {
        uint64_t addr;
        size_t len;
} MemoryWindow;

#define WAIT_WINDOW_MAX 128

typedef enum WaitHolder {
        WAIT_HOLDER_NONE,               /* the object has no owner (condvar, semaphore, barrier) */
        WAIT_HOLDER_NOT_RECORDED,       /* an owner exists but is not recorded (futex, once, lock) */
        WAIT_HOLDER_UNKNOWN,            /* the bytes did not prove an owner */
        WAIT_HOLDER_THREAD,             /* owner (below) holds it */
        WAIT_HOLDER_READERS,            /* read-locked by `readers` threads */
} WaitHolder;

/* What the object's bytes say. */
typedef struct WaitObject {
        WaitKind kind;
        CxxSync cxx;
        uint64_t address;               /* the object's first byte; the futex word when the
                                           object could not be placed */
        int mutex_type;                 /* PTHREAD_MUTEX_{NORMAL,RECURSIVE,ERRORCHECK,ADAPTIVE}_NP */
        bool robust, pi, pp;            /* pp: priority-protect (a priority ceiling) */
        WaitHolder holder;
        pid_t owner;                    /* WAIT_HOLDER_THREAD, or the joined thread: a tid in
                                           the target's own pid namespace */
        bool owner_died;                /* robust: the kernel saw the holder die */
        uint32_t readers;               /* WAIT_HOLDER_READERS */
        uint32_t value;                 /* semaphore value */
        uint32_t arrived, count;        /* barrier: arrived this round, of count */
        uint32_t recursion;             /* recursive mutex: lock count of the holder */
} WaitObject;

/* Reads what the frames of STACK (leaf first, symbolized) and the futex syscall (NR and
 * ARGS) say about a wait: false when the thread is not in a futex wait (SITE->kind is then
 * WAIT_KIND_NONE). */
bool wait_site_classify(const Stack *stack, int nr, const uint64_t args[6], WaitSite *site);

/* The same for a thread seen going to sleep by a scheduler event, whose syscall number
 * is not known (perf's user registers have no orig_rax): the leaf's libc function says
 * whether it is a futex wait, ARGS are its syscall arguments as the kernel's entry saved
 * them (rdi, rsi, rdx, r10, r8, r9). False when the frames name no futex wait (a sleep,
 * I/O, or frames that cannot tell). */
bool wait_site_classify_blocked(const Stack *stack, const uint64_t args[6], WaitSite *site);

/* The quick test before unwinding, on the leaf frame alone (symbolized): whether a thread
 * that went to sleep there may be in a futex wait. syscall(2) passes: its callers decide. */
bool wait_leaf_may_be_futex_wait(const StackFrame *leaf);

/* What a thread waking another releases, from its frames (leaf first, symbolized):
 * WAIT_KIND_MUTEX (pthread_mutex_unlock, also inside pthread_cond_wait), _RWLOCK_WRITE
 * (any rwlock unlock), _LOCK (a libc-internal lock), _COND (signal or broadcast), _SEM,
 * _BARRIER; WAIT_KIND_NONE when the frames name none of these. */
WaitKind wake_site_classify(const Stack *stack);

/* The syscall a thread in restart_syscall (a sleep, poll or timed futex wait that a stop
 * interrupted) goes on with, named by the libc wrapper at the leaf of STACK; -1 when the
 * leaf names none. */
int wait_restarted_syscall(const Stack *stack);

/* The target memory to read for SITE. */
MemoryWindow wait_site_window(const WaitSite *site);

/* Decodes the LEN bytes BYTES read at ADDR (LEN 0: nothing could be read) into RET. Never
 * fails: what cannot be proven stays unknown. */
void wait_object_decode(const WaitSite *site, const uint8_t *bytes, uint64_t addr, size_t len, WaitObject *ret);

/* "mutex", "robust PI recursive mutex", "PP mutex", "rwlock (read)", "std::shared_mutex
 * (write)", … */
void wait_object_write_kind(const WaitObject *o, Buf *out);

/* The innermost frame of S (an inline level's) that is the program's own: not libc's, the
 * dynamic loader's, libstdc++'s, libgcc's or the vdso's, nor a std:: inline. NULL when
 * there is none. "Where the holder is" in a wait's text. */
const Frame *stack_top_user_frame(const Stack *s);
/* Whether F, an inline level of LOC, is such a frame of the program's own. */
bool stack_frame_is_user(const SymLoc *loc, const Frame *f);

/* ---- a dump's waits ---- */

#define THREAD_WAIT_NAME_MAX 160

/* One thread's wait, resolved against the other threads of the dump. */
typedef struct ThreadWait {
        WaitObject object;
        char name[THREAD_WAIT_NAME_MAX];        /* "&ho_state_mu", "heap 0x…", "stack of thread
                                                   1234 0x…" */
        pid_t holder_tid;               /* the holder (or joined thread) as the dump shows it
                                           (host tid); 0 when none */
        size_t holder_index;            /* its index among the dump's threads, or SIZE_MAX */
        pid_t holder_pid;               /* a shared object's holder in another process: its
                                           pid; else 0 */
        bool orphaned;                  /* the recorded owner is no thread of the process */
        bool owner_ns;                  /* object.owner is a tid of the target's own (other)
                                           pid namespace: shown as "(ns N)" */
} ThreadWait;

/* Appends the wait's text as thread headers show it: "mutex &ho_state_mu held by thread
 * 1232", "condvar &cv, no owner", "futex heap 0x55d0… (no owner recorded)". */
void thread_wait_write(const ThreadWait *w, Buf *out);
/* Appends "mutex &ho_state_mu": kind and name. */
void thread_wait_write_object(const ThreadWait *w, Buf *out);

/* Whether W's holder makes the waiter wait on it alone: an edge of the wait-for graph
 * (mutexes, write-locked rwlocks, PI futexes, joins of live threads). */
bool thread_wait_is_edge(const ThreadWait *w);

/* A cycle of the wait-for graph: thread indices, each waiting for the next's object, the
 * last for the first's. */
typedef struct WaitCycle {
        size_t *threads;
        size_t n;
} WaitCycle;

/* The cycles among N threads whose waits are WAITS[i] (NULL: not waiting). Each thread
 * waits for one object, so each is in at most one cycle; cycles start at their lowest
 * index, in index order. 0, or -ENOMEM. */
int wait_cycles_find(const ThreadWait *const *waits, size_t n, WaitCycle **ret, size_t *ret_n);
void wait_cycles_free(WaitCycle *c, size_t n);
