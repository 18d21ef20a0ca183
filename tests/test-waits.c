/* tests/test-waits.c -- profile/waits.c: the wait kind from frames, the holder from real
 * glibc objects (locked by real threads of this process, bytes copied as cprofd reads
 * them), torn and foreign bytes, the texts, and the wait-for cycles. */
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "symloc-fixture.h"
#include "tiny-test.h"
#include "waits.h"

#define LIBC "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define APP "/srv/app"

/* ---- kinds from frames ---- */

static Stack stack_of(StackFrame *frames, const char *const *functions, const char *const *modules, size_t n) {
        for (size_t i = 0; i < n; i++) {
                Frame f = { .function = functions[i] };
                frames[i] = (StackFrame) { .pc = 0x1000 + i, .loc = symloc(modules[i], 0x100 + i, 1, &f) };
        }
        return (Stack) { .frames = frames, .n = n };
}

static WaitSite classify(const char *const *functions, const char *const *modules, size_t n, unsigned op) {
        StackFrame frames[16];
        Stack s = stack_of(frames, functions, modules, n);
        uint64_t args[6] = { 0x5000, op, 2 };
        WaitSite site;
        ASSERT_TRUE(wait_site_classify(&s, SYS_futex, args, &site));
        return site;
}

TEST(classify_libc_and_cxx) {
        const char *mutex[] = { "futex_wait", "__GI___lll_lock_wait", "___pthread_mutex_lock", "work" };
        const char *mods[] = { LIBC, LIBC, LIBC, APP, APP, APP };
        WaitSite s = classify(mutex, mods, 4, FUTEX_WAIT_PRIVATE);
        ASSERT_EQ(s.kind, WAIT_KIND_MUTEX);
        ASSERT_EQ(s.cxx, CXX_SYNC_NONE);
        ASSERT_EQ(s.futex, 0x5000);

        /* Symbol-table names with versions, as a libc without debug info gives them. */
        const char *dynsym[] = { "__lll_lock_wait", "pthread_mutex_lock@@GLIBC_2.2.5", "work" };
        ASSERT_EQ(classify(dynsym, mods, 3, FUTEX_WAIT).kind, WAIT_KIND_MUTEX);

        /* Alone, the low-level lock is libc's own (malloc, stdio). */
        const char *internal[] = { "__lll_lock_wait_private", "_IO_flockfile", "puts", "work" };
        ASSERT_EQ(classify(internal, mods, 4, FUTEX_WAIT_PRIVATE).kind, WAIT_KIND_LOCK);

        const char *stdmutex[] = { "__GI___lll_lock_wait", "___pthread_mutex_lock", "__gthread_mutex_lock",
                                   "std::mutex::lock", "std::lock_guard<std::mutex>::lock_guard", "work" };
        const char *cxxmods[] = { LIBC, LIBC, APP, APP, APP, APP };
        s = classify(stdmutex, cxxmods, 6, FUTEX_WAIT_PRIVATE);
        ASSERT_EQ(s.kind, WAIT_KIND_MUTEX);
        ASSERT_EQ(s.cxx, CXX_SYNC_MUTEX);

        const char *recursive[] = { "__GI___lll_lock_wait", "___pthread_mutex_lock", "std::recursive_mutex::lock",
                                    "work" };
        ASSERT_EQ(classify(recursive, cxxmods, 4, FUTEX_WAIT_PRIVATE).cxx, CXX_SYNC_RECURSIVE_MUTEX);

        const char *shared[] = { "__futex_abstimed_wait_common", "__pthread_rwlock_rdlock_full64",
                                 "___pthread_rwlock_rdlock", "std::__shared_mutex_pthread::lock_shared",
                                 "std::shared_mutex::lock_shared", "work" };
        s = classify(shared, cxxmods, 6, FUTEX_WAIT_PRIVATE);
        ASSERT_EQ(s.kind, WAIT_KIND_RWLOCK_READ);
        ASSERT_EQ(s.cxx, CXX_SYNC_SHARED_MUTEX);

        /* condition_variable::wait is libstdc++'s own function above pthread_cond_wait. */
        const char *cv[] = { "__futex_abstimed_wait_common", "__pthread_cond_wait_common", "___pthread_cond_wait",
                             "std::condition_variable::wait(std::unique_lock<std::mutex>&)", "work" };
        const char *cvmods[] = { LIBC, LIBC, LIBC, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", APP };
        s = classify(cv, cvmods, 5, FUTEX_WAIT_PRIVATE);
        ASSERT_EQ(s.kind, WAIT_KIND_COND);
        ASSERT_EQ(s.cxx, CXX_SYNC_CONDITION_VARIABLE);

        /* A condvar waiter relocking its mutex waits on the mutex: a std::mutex above the
         * condvar wait is not the object. */
        const char *relock[] = { "__GI___lll_lock_wait", "__pthread_mutex_cond_lock", "__pthread_cond_wait_common",
                                 "___pthread_cond_wait", "std::mutex::lock", "work" };
        s = classify(relock, mods, 6, FUTEX_WAIT_PRIVATE);
        ASSERT_EQ(s.kind, WAIT_KIND_MUTEX);

        /* The program's own frame ends the search for a C++ type. */
        const char *mine[] = { "__GI___lll_lock_wait", "___pthread_mutex_lock", "my_lock", "std::mutex::lock" };
        ASSERT_EQ(classify(mine, mods, 4, FUTEX_WAIT_PRIVATE).cxx, CXX_SYNC_NONE);

        const char *raw[] = { "syscall", "app_wait" };
        ASSERT_EQ(classify(raw, mods, 2, FUTEX_WAIT_PRIVATE).kind, WAIT_KIND_FUTEX);

        const char *join[] = { "__futex_abstimed_wait_common", "__pthread_clockjoin_ex", "___pthread_join", "main" };
        ASSERT_EQ(classify(join, mods, 4, FUTEX_WAIT).kind, WAIT_KIND_JOIN);

        /* Not a wait: another syscall, a futex wake. */
        StackFrame frames[4];
        Stack st = stack_of(frames, mutex, mods, 4);
        uint64_t args[6] = { 0x5000, FUTEX_WAKE_PRIVATE, 1 };
        WaitSite site;
        ASSERT_FALSE(wait_site_classify(&st, SYS_futex, args, &site));
        ASSERT_FALSE(wait_site_classify(&st, SYS_read, args, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_NONE);
        free_symlocs();
}

/* ---- holders from real objects ---- */

typedef struct Locker {
        void (*lock)(void *object);
        void (*unlock)(void *object);   /* before the thread ends; NULL: it ends holding */
        void *object;
        pid_t tid;
        sem_t locked, release;
} Locker;

static void *locker_main(void *arg) {
        Locker *l = arg;
        l->tid = gettid();
        l->lock(l->object);
        sem_post(&l->locked);
        while (sem_wait(&l->release) < 0)
                ;
        if (l->unlock)
                l->unlock(l->object);
        return NULL;
}

/* Runs LOCK(OBJECT) on a new thread and keeps that thread holding it. */
static void locker_start(Locker *l, pthread_t *thread, void (*lock)(void *), void *object) {
        *l = (Locker) { .lock = lock, .object = object };
        sem_init(&l->locked, 0, 0);
        sem_init(&l->release, 0, 0);
        ASSERT_EQ(pthread_create(thread, NULL, locker_main, l), 0);
        while (sem_wait(&l->locked) < 0)
                ;
}

static void locker_stop(Locker *l, pthread_t thread) {
        sem_post(&l->release);
        pthread_join(thread, NULL);
}

static void unlock_mutex(void *m) {
        ASSERT_EQ(pthread_mutex_unlock(m), 0);
}

static void unlock_mutex_twice(void *m) {
        ASSERT_EQ(pthread_mutex_unlock(m), 0);
        ASSERT_EQ(pthread_mutex_unlock(m), 0);
}

static void lock_mutex(void *m) {
        ASSERT_EQ(pthread_mutex_lock(m), 0);
}

static void lock_mutex_twice(void *m) {
        ASSERT_EQ(pthread_mutex_lock(m), 0);
        ASSERT_EQ(pthread_mutex_lock(m), 0);
}

static void wrlock(void *rw) {
        ASSERT_EQ(pthread_rwlock_wrlock(rw), 0);
}

static void rwunlock(void *rw) {
        ASSERT_EQ(pthread_rwlock_unlock(rw), 0);
}

static void rdlock(void *rw) {
        ASSERT_EQ(pthread_rwlock_rdlock(rw), 0);
}

static WaitObject decode_at(WaitKind kind, unsigned cmd, uint32_t val, const void *futex) {
        WaitSite site = { .kind = kind, .futex = (uint64_t) (uintptr_t) futex, .futex_cmd = cmd, .futex_val = val };
        MemoryWindow w = wait_site_window(&site);
        ASSERT_TRUE(w.len > 0 && w.len <= WAIT_WINDOW_MAX);
        WaitObject o;
        wait_object_decode(&site, (const uint8_t *) (uintptr_t) w.addr, w.addr, w.len, &o);
        return o;
}

static void check_mutex(int type, int protocol, int robust, WaitHolder want, bool twice) {
        /* Inside a larger object, so the window's bytes before and after are ours. */
        struct {
                char before[64];
                pthread_mutex_t m;
                char after[64];
        } obj = {};
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, type);
        pthread_mutexattr_setprotocol(&a, protocol);
        pthread_mutexattr_setrobust(&a, robust);
        ASSERT_EQ(pthread_mutex_init(&obj.m, &a), 0);
        Locker l;
        pthread_t t;
        locker_start(&l, &t, twice ? lock_mutex_twice : lock_mutex, &obj.m);
        l.unlock = twice ? unlock_mutex_twice : unlock_mutex;
        unsigned cmd = protocol == PTHREAD_PRIO_INHERIT ? FUTEX_LOCK_PI : FUTEX_WAIT;
        WaitObject o = decode_at(WAIT_KIND_MUTEX, cmd, 2, &obj.m);
        ASSERT_EQ(o.holder, want);
        if (want == WAIT_HOLDER_THREAD) {
                ASSERT_EQ(o.owner, l.tid);
                ASSERT_EQ(o.mutex_type, type);
                ASSERT_EQ(o.pi, protocol == PTHREAD_PRIO_INHERIT);
                ASSERT_EQ(o.robust, robust == PTHREAD_MUTEX_ROBUST);
                ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &obj.m);
                if (twice)
                        ASSERT_EQ(o.recursion, 2);
        }
        /* A PI mutex waited on with FUTEX_WAIT (or the reverse) is not what the bytes say. */
        o = decode_at(WAIT_KIND_MUTEX, cmd == FUTEX_WAIT ? FUTEX_LOCK_PI : FUTEX_WAIT, 2, &obj.m);
        ASSERT_EQ(o.holder, WAIT_HOLDER_UNKNOWN);
        locker_stop(&l, t);
        /* Released: no owner to believe. */
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, cmd, 2, &obj.m).holder, WAIT_HOLDER_UNKNOWN);
        pthread_mutex_destroy(&obj.m);
}

/* A thread seen going to sleep by a scheduler event: no syscall number, only its frames
 * and the argument registers. */
static bool classify_blocked(const char *const *functions, const char *const *modules, size_t n, unsigned op,
                             WaitSite *site) {
        StackFrame frames[16];
        Stack s = stack_of(frames, functions, modules, n);
        uint64_t args[6] = { 0x5000, op, 2 };
        return wait_site_classify_blocked(&s, args, site);
}

static WaitKind classify_wake(const char *const *functions, const char *const *modules, size_t n) {
        StackFrame frames[16];
        Stack s = stack_of(frames, functions, modules, n);
        return wake_site_classify(&s);
}

TEST(classify_from_scheduler_events) {
        const char *mods[] = { LIBC, LIBC, LIBC, APP, APP, APP };
        WaitSite site;

        const char *mutex[] = { "futex_wait", "__GI___lll_lock_wait", "___pthread_mutex_lock", "work" };
        ASSERT_TRUE(classify_blocked(mutex, mods, 4, FUTEX_WAIT_PRIVATE, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_MUTEX);
        ASSERT_EQ(site.futex, 0x5000);
        /* Without debug info the leaf is the waiter itself. */
        const char *dynsym[] = { "__lll_lock_wait", "pthread_mutex_lock@@GLIBC_2.2.5", "work" };
        ASSERT_TRUE(classify_blocked(dynsym, mods, 3, FUTEX_WAIT_PRIVATE, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_MUTEX);
        const char *cond[] = { "__futex_abstimed_wait_common64", "__pthread_cond_wait_common", "___pthread_cond_wait",
                               "work" };
        ASSERT_TRUE(classify_blocked(cond, mods, 4, FUTEX_WAIT_BITSET_PRIVATE, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_COND);
        /* Registers that are no futex wait's: the frames still name the object. */
        ASSERT_TRUE(classify_blocked(cond, mods, 4, 0x7777, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_COND);
        ASSERT_EQ(site.futex, 0);

        /* A raw futex through syscall(2): its caller says so; another syscall(2) does not. */
        const char *raw[] = { "syscall", "my_futex_wait", "work" };
        const char *rawmods[] = { LIBC, APP, APP };
        ASSERT_TRUE(classify_blocked(raw, rawmods, 3, FUTEX_WAIT, &site));
        ASSERT_EQ(site.kind, WAIT_KIND_FUTEX);
        const char *other[] = { "syscall", "my_getrandom", "work" };
        ASSERT_FALSE(classify_blocked(other, rawmods, 3, FUTEX_WAIT, &site));

        /* Sleeps and I/O are not waits on synchronization. */
        const char *sleep[] = { "__GI___clock_nanosleep", "__GI___nanosleep", "usleep", "work" };
        ASSERT_FALSE(classify_blocked(sleep, mods, 4, 0, &site));
        const char *io[] = { "__GI___libc_read", "read_request", "work" };
        ASSERT_FALSE(classify_blocked(io, mods, 3, 0, &site));
        const char *poll[] = { "epoll_wait", "event_loop", "work" };
        ASSERT_FALSE(classify_blocked(poll, mods, 3, 0, &site));

        /* The cheap test on the leaf alone agrees. */
        StackFrame frames[16];
        Stack st = stack_of(frames, mutex, mods, 1);
        ASSERT_TRUE(wait_leaf_may_be_futex_wait(&st.frames[0]));
        st = stack_of(frames, raw, rawmods, 1);
        ASSERT_TRUE(wait_leaf_may_be_futex_wait(&st.frames[0]));
        st = stack_of(frames, io, mods, 1);
        ASSERT_FALSE(wait_leaf_may_be_futex_wait(&st.frames[0]));
}

TEST(classify_wakers) {
        const char *mods[] = { LIBC, LIBC, LIBC, LIBC, APP, APP };
        const char *unlock[] = { "__GI___lll_lock_wake", "lll_mutex_unlock_optimized",
                                 "__GI___pthread_mutex_unlock_usercnt", "___pthread_mutex_unlock", "release" };
        ASSERT_EQ(classify_wake(unlock, mods, 5), WAIT_KIND_MUTEX);
        /* The condvar waiter's own unlock of its mutex is a mutex release too. */
        const char *in_wait[] = { "__GI___lll_lock_wake", "__GI___pthread_mutex_unlock_usercnt",
                                  "__pthread_cond_wait_common", "___pthread_cond_wait", "work" };
        ASSERT_EQ(classify_wake(in_wait, mods, 5), WAIT_KIND_MUTEX);
        const char *rw[] = { "futex_wake", "__pthread_rwlock_unlock", "work" };
        ASSERT_EQ(classify_wake(rw, mods, 3), WAIT_KIND_RWLOCK_WRITE);
        const char *internal[] = { "__GI___lll_lock_wake_private", "_IO_funlockfile", "puts", "work" };
        ASSERT_EQ(classify_wake(internal, mods, 4), WAIT_KIND_LOCK);
        const char *signal[] = { "futex_wake", "___pthread_cond_signal", "notify", "work" };
        ASSERT_EQ(classify_wake(signal, mods, 4), WAIT_KIND_COND);
        const char *post[] = { "__new_sem_post", "produce", "work" };
        ASSERT_EQ(classify_wake(post, mods, 3), WAIT_KIND_SEM);
        const char *write[] = { "__GI___libc_write", "notify_pipe", "work" };
        ASSERT_EQ(classify_wake(write, mods, 3), WAIT_KIND_NONE);
}

TEST(mutex_owners) {
        check_mutex(PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_STALLED, WAIT_HOLDER_THREAD, false);
        check_mutex(PTHREAD_MUTEX_RECURSIVE, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_STALLED, WAIT_HOLDER_THREAD, true);
        check_mutex(PTHREAD_MUTEX_ERRORCHECK, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_STALLED, WAIT_HOLDER_THREAD, false);
        check_mutex(PTHREAD_MUTEX_ADAPTIVE_NP, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_STALLED, WAIT_HOLDER_THREAD, false);
        check_mutex(PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_ROBUST, WAIT_HOLDER_THREAD, false);
        check_mutex(PTHREAD_MUTEX_NORMAL, PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_STALLED, WAIT_HOLDER_THREAD, false);
        check_mutex(PTHREAD_MUTEX_RECURSIVE, PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_ROBUST, WAIT_HOLDER_THREAD, true);
}

TEST(rwlock_writer_and_readers) {
        struct {
                char before[64];
                pthread_rwlock_t rw;
                char after[64];
        } obj = {};
        pthread_rwlock_init(&obj.rw, NULL);
        Locker w;
        pthread_t t;
        locker_start(&w, &t, wrlock, &obj.rw);
        w.unlock = rwunlock;
        /* A reader waits on __wrphase_futex (+8) expecting 1 | FUTEX_USED. */
        WaitObject o = decode_at(WAIT_KIND_RWLOCK_READ, FUTEX_WAIT, 3, (char *) &obj.rw + 8);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_EQ(o.owner, w.tid);
        ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &obj.rw);
        /* A writer waits on __writers_futex (+12). */
        o = decode_at(WAIT_KIND_RWLOCK_WRITE, FUTEX_WAIT, 3, (char *) &obj.rw + 12);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_EQ(o.owner, w.tid);
        locker_stop(&w, t);

        Locker r1, r2;
        pthread_t t1, t2;
        locker_start(&r1, &t1, rdlock, &obj.rw);
        locker_start(&r2, &t2, rdlock, &obj.rw);
        r1.unlock = r2.unlock = rwunlock;
        o = decode_at(WAIT_KIND_RWLOCK_WRITE, FUTEX_WAIT, 2, (char *) &obj.rw + 8);
        ASSERT_EQ(o.holder, WAIT_HOLDER_READERS);
        ASSERT_EQ(o.readers, 2);
        locker_stop(&r1, t1);
        locker_stop(&r2, t2);
}

TEST(sem_barrier_cond_join) {
        sem_t sem;
        sem_init(&sem, 0, 0);
        WaitObject o = decode_at(WAIT_KIND_SEM, FUTEX_WAIT, 0, &sem);
        ASSERT_EQ(o.holder, WAIT_HOLDER_NONE);
        ASSERT_EQ(o.value, 0);

        struct {
                char before[16];
                pthread_barrier_t b;
                char after[32];
        } bar = {};
        pthread_barrier_init(&bar.b, NULL, 3);
        o = decode_at(WAIT_KIND_BARRIER, FUTEX_WAIT, 0, (char *) &bar.b + 4);
        ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &bar.b);
        ASSERT_EQ(o.count, 3);
        ASSERT_EQ(o.arrived, 0);

        /* pthread_join: the word holds the joined thread's tid, and the wait expects it. */
        uint32_t tid_word = 4242;
        o = decode_at(WAIT_KIND_JOIN, FUTEX_WAIT, 4242, &tid_word);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_EQ(o.owner, 4242);
        tid_word = 0;   /* exited meanwhile */
        ASSERT_EQ(decode_at(WAIT_KIND_JOIN, FUTEX_WAIT, 4242, &tid_word).holder, WAIT_HOLDER_UNKNOWN);

        /* Only a wait on __g_signals (expecting 0) places a condvar; a barrier's reset
         * wait on its first word is not on current_round. */
        struct {
                char before[64];
                pthread_cond_t c;
                char after[16];
        } cv = {};
        uint32_t wrefs = 8;
        memcpy((char *) &cv.c + 36, &wrefs, sizeof wrefs);
        o = decode_at(WAIT_KIND_COND, FUTEX_WAIT, 0, (char *) &cv.c + 40);
        ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &cv.c);
        o = decode_at(WAIT_KIND_COND, FUTEX_WAIT, 6, (char *) &cv.c + 32);
        ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &cv.c + 32);       /* unplaced: the word */
        o = decode_at(WAIT_KIND_BARRIER, FUTEX_WAIT, 0, &bar.b);
        ASSERT_EQ(o.count, 0);
        ASSERT_EQ(o.address, (uint64_t) (uintptr_t) &bar.b);

        uint32_t app_word = 0x12345678;
        o = decode_at(WAIT_KIND_FUTEX, FUTEX_WAIT, 0x12345678, &app_word);
        ASSERT_EQ(o.holder, WAIT_HOLDER_NOT_RECORDED);
        /* A program's own PI futex names its owner in the word. */
        app_word = 777 | FUTEX_WAITERS;
        o = decode_at(WAIT_KIND_FUTEX, FUTEX_LOCK_PI, 0, &app_word);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_EQ(o.owner, 777);
}

TEST(garbage_is_never_an_owner) {
        /* Random-looking and hand-made words in a mutex's place: nothing is believed
         * unless kind, lock word and owner agree. */
        struct {
                char before[64];
                uint32_t w[10];
                char after[64];
        } obj = {};
        obj.w[0] = 1;
        obj.w[2] = 1234;
        obj.w[4] = 0x7fff0000;                  /* a kind glibc never writes */
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        obj.w[4] = 0;
        obj.w[0] = 7;                           /* lock words of a normal mutex are 0..2 */
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        obj.w[0] = 2;
        obj.w[2] = (uint32_t) -5;               /* no tid */
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        obj.w[2] = 0;                           /* locked, owner not yet written */
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        obj.w[2] = 1234;
        WaitObject o = decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_EQ(o.owner, 1234);
        /* PI: the word's owner and __owner disagree. */
        obj.w[4] = 32;
        obj.w[0] = 99 | FUTEX_WAITERS;
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_LOCK_PI, 0, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        /* Priority-protect: glibc keeps the ceiling in the lock word's high bits. */
        obj.w[4] = 64;
        obj.w[0] = (5u << 19) | 2;
        obj.w[2] = 1234;
        o = decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w);
        ASSERT_EQ(o.holder, WAIT_HOLDER_THREAD);
        ASSERT_TRUE(o.pp);
        ASSERT_EQ(o.owner, 1234);
        /* Robust and priority-protect together is a kind glibc refuses to make: the lock
         * word (here 2) is no owner. */
        obj.w[4] = 16 | 64;
        obj.w[0] = 2;
        ASSERT_EQ(decode_at(WAIT_KIND_MUTEX, FUTEX_WAIT, 2, obj.w).holder, WAIT_HOLDER_UNKNOWN);
        /* Nothing read at all. */
        WaitSite site = { .kind = WAIT_KIND_MUTEX, .futex = 0x1000, .futex_cmd = FUTEX_WAIT };
        wait_object_decode(&site, NULL, 0x1000, 0, &o);
        ASSERT_EQ(o.holder, WAIT_HOLDER_UNKNOWN);
        /* Misaligned futex words are no glibc object. */
        site.futex = 0x1002;
        ASSERT_EQ(wait_site_window(&site).len, 0);
}

/* ---- texts and cycles ---- */

static const char *wait_text(const ThreadWait *w) {
        static Buf b;
        buf_reset(&b);
        thread_wait_write(w, &b);
        return buf_str(&b);
}

TEST(texts) {
        ThreadWait w = { .object = { .kind = WAIT_KIND_MUTEX, .holder = WAIT_HOLDER_THREAD, .owner = 12 },
                         .name = "&ho_state_mu", .holder_tid = 1232, .holder_index = 3 };
        ASSERT_STREQ(wait_text(&w), "mutex &ho_state_mu held by thread 1232");
        w.object.robust = w.object.pi = true;
        w.object.mutex_type = PTHREAD_MUTEX_RECURSIVE;
        ASSERT_STREQ(wait_text(&w), "robust PI recursive mutex &ho_state_mu held by thread 1232");
        w.object = (WaitObject) { .kind = WAIT_KIND_MUTEX, .holder = WAIT_HOLDER_THREAD, .owner = 99 };
        w.orphaned = true;
        ASSERT_STREQ(wait_text(&w), "mutex &ho_state_mu orphaned: holder thread 99 exited");
        w.owner_ns = true;              /* a container's own tid */
        ASSERT_STREQ(wait_text(&w), "mutex &ho_state_mu orphaned: holder thread (ns 99) exited");
        w.orphaned = w.owner_ns = false;
        w.holder_pid = 777;             /* a process-shared mutex held by another process */
        ASSERT_STREQ(wait_text(&w), "mutex &ho_state_mu held by thread 1232 of pid 777");
        w.holder_pid = 0;
        w.object = (WaitObject) { .kind = WAIT_KIND_RWLOCK_WRITE, .holder = WAIT_HOLDER_READERS, .readers = 2,
                                  .cxx = CXX_SYNC_SHARED_MUTEX };
        ASSERT_STREQ(wait_text(&w), "std::shared_mutex (write) &ho_state_mu read-locked by 2 readers");
        w.object = (WaitObject) { .kind = WAIT_KIND_SEM, .holder = WAIT_HOLDER_NONE };
        ASSERT_STREQ(wait_text(&w), "semaphore &ho_state_mu value 0, no owner");
        w.object = (WaitObject) { .kind = WAIT_KIND_FUTEX, .holder = WAIT_HOLDER_NOT_RECORDED };
        snprintf(w.name, sizeof w.name, "heap 0x55d0c2a4b2a0");
        ASSERT_STREQ(wait_text(&w), "futex heap 0x55d0c2a4b2a0 (no owner recorded)");
        w.object = (WaitObject) { .kind = WAIT_KIND_MUTEX, .holder = WAIT_HOLDER_UNKNOWN };
        ASSERT_STREQ(wait_text(&w), "mutex heap 0x55d0c2a4b2a0 owner unknown");
}

TEST(cycles) {
        /* 0 → 1 → 0 (AB-BA), 2 → 3 → 4 → 2, 5 → 0 (waits on the deadlock, not in it), 6
         * waits for an object with no holder. */
        ThreadWait w[7];
        size_t to[7] = { 1, 0, 3, 4, 2, 0, SIZE_MAX };
        const ThreadWait *p[7];
        for (size_t i = 0; i < 7; i++) {
                w[i] = (ThreadWait) { .object = { .kind = WAIT_KIND_MUTEX,
                                                  .holder = to[i] == SIZE_MAX ? WAIT_HOLDER_NONE : WAIT_HOLDER_THREAD },
                                      .holder_index = to[i], .holder_tid = (pid_t) (100 + to[i]) };
                p[i] = &w[i];
        }
        WaitCycle *c;
        size_t n;
        ASSERT_EQ(wait_cycles_find(p, 7, &c, &n), 0);
        ASSERT_EQ(n, 2);
        ASSERT_EQ(c[0].n, 2);
        ASSERT_EQ(c[0].threads[0], 0);
        ASSERT_EQ(c[0].threads[1], 1);
        ASSERT_EQ(c[1].n, 3);
        ASSERT_EQ(c[1].threads[0], 2);
        ASSERT_EQ(c[1].threads[2], 4);
        wait_cycles_free(c, n);

        /* An orphaned lock is no edge: no cycle through its dead owner. */
        w[1].orphaned = true;
        ASSERT_EQ(wait_cycles_find(p, 7, &c, &n), 0);
        ASSERT_EQ(n, 1);
        wait_cycles_free(c, n);
        /* Nobody waiting. */
        const ThreadWait *none[3] = {};
        ASSERT_EQ(wait_cycles_find(none, 3, &c, &n), 0);
        ASSERT_EQ(n, 0);
        wait_cycles_free(c, n);
}

int main(int argc, char **argv) {
        return tiny_main(argc, argv);
}
