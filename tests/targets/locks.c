/* tests/targets/locks.c -- threads blocked on synchronisation objects whose holders are
 * known, for tests of cprofd's lock decoding.
 *
 * One scenario per run, named by argv[1] (`--list` names them all): a mutex a thread
 * forgot to unlock, deadlocks of two and three threads, both sides of an rwlock, every
 * kind of pthread mutex, a mutex whose holder exited, the other pthread waits (condvar,
 * semaphore, barrier, join, once), a raw futex, a mutex under heavy contention, and
 * mutexes in malloc'ed memory and on a thread's stack.
 *
 * Each scenario prints one `ROLE TID` line per thread it started (`holder 1232`, `waiter
 * 1235`, a role once per thread), `object NAME 0xADDR` for the objects it waits on, then
 * `ready PID`, and stays so until killed. `ready` comes only once every thread that
 * should block is inside its blocking system call (futex, or clock_nanosleep for the
 * holders), as /proc/self/task/TID/syscall says, and sleeps.
 *
 * Every lock is a global with a distinctive name, so that cprofd can name it by its data
 * symbol (&ho_state_mu), except in heap-mutex and stack-mutex, which are about objects
 * without one. Built like the other targets (-O2 -g -fomit-frame-pointer
 * -fno-optimize-sibling-calls); the functions a test names are noipa, so they keep their
 * names and their frames. */

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "target-clock.h"
#include "target-task.h"

#define _noinline_ __attribute__((noinline, noipa))

/* Incremented after calls so that they are not tail calls and code is not merged. */
static volatile int side_effect;

static void die(const char *what, int err) {
        fprintf(stderr, "cprofd-test-locks: %s: %s\n", what, strerror(err));
        exit(EXIT_FAILURE);
}

static void check_pthread(const char *what, int r) {
        if (r != 0)
                die(what, r);
}

/* --- the threads of a scenario --------------------------------------------------------- */

/* Where a thread is once its scenario is set up. */
typedef enum Park {
        PARK_FUTEX,             /* blocked in futex(): every pthread wait */
        PARK_SLEEP,             /* a holder, sleeping in nanosleep */
        PARK_RUNNING,           /* never blocks for long (contention) */
        PARK_GONE,              /* exited */
} Park;

typedef struct Party {
        const char *role;
        const char *name;
        void (*body)(long arg);
        long arg;
        Park park;
        atomic_int tid;         /* set by the thread itself, once named */
        pthread_t thread;
} Party;

#define MAX_PARTIES 8
static Party parties[MAX_PARTIES];
static int n_parties;

typedef struct Object {
        const char *name;
        const void *address;
} Object;

#define MAX_OBJECTS 4
static Object objects[MAX_OBJECTS];
static int n_objects;

static void *party_main(void *arg) {
        Party *p = arg;

        (void) pthread_setname_np(pthread_self(), p->name);
        atomic_store(&p->tid, (int) gettid());
        p->body(p->arg);
        side_effect++;
        return NULL;
}

static Party *spawn(const char *role, const char *name, void (*body)(long), long arg, Park park) {
        Party *p;

        if (n_parties == MAX_PARTIES)
                die("spawn", ENOSPC);
        p = &parties[n_parties++];
        *p = (Party) { .role = role, .name = name, .body = body, .arg = arg, .park = park };
        check_pthread("pthread_create", pthread_create(&p->thread, NULL, party_main, p));
        return p;
}

/* The calling thread (main, in join) as a party of its own. */
static void adopt_self(const char *role, Park park) {
        Party *p;

        if (n_parties == MAX_PARTIES)
                die("adopt_self", ENOSPC);
        p = &parties[n_parties++];
        *p = (Party) { .role = role, .park = park, .thread = pthread_self() };
        atomic_store(&p->tid, (int) gettid());
}

static void note_object(const char *name, const void *address) {
        if (n_objects == MAX_OBJECTS)
                die("note_object", ENOSPC);
        objects[n_objects++] = (Object) { name, address };
}

/* The number of the system call thread TID of this process is in, -1 when it is in none,
 * -2 when unknown. */
static long current_syscall(int tid) {
        char path[64], buf[256];
        FILE *f;
        long nr = -2;

        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
        f = fopen(path, "re");
        if (!f)
                return -2;
        if (fgets(buf, sizeof buf, f))
                nr = strncmp(buf, "running", 7) == 0 ? -1 : strtol(buf, NULL, 10);
        fclose(f);
        return nr;
}

static bool task_exists(int tid) {
        char path[64];

        snprintf(path, sizeof path, "/proc/self/task/%d", tid);
        return access(path, F_OK) == 0;
}

static bool parked(const Party *p) {
        int tid = atomic_load(&p->tid);
        long nr;

        if (tid == 0)
                return false;
        switch (p->park) {
        case PARK_RUNNING:
                return true;
        case PARK_GONE:
                return !task_exists(tid);
        case PARK_FUTEX:
                return current_syscall(tid) == SYS_futex && target_thread_state(tid) == 'S';
        case PARK_SLEEP:
                nr = current_syscall(tid);
                return (nr == SYS_clock_nanosleep || nr == SYS_nanosleep)
                       && target_thread_state(tid) == 'S';
        }
        return false;
}

/* Waits until every party but the caller is where its scenario puts it. */
static void wait_parked(void) {
        int64_t deadline = now_us() + 10 * 1000000;
        int self = (int) gettid();

        for (int i = 0; i < n_parties; i++) {
                Party *p = &parties[i];

                while (atomic_load(&p->tid) != self && !parked(p)) {
                        if (now_us() > deadline) {
                                fprintf(stderr, "cprofd-test-locks: %s %s (%d) never got to its "
                                        "blocking point\n", p->role, p->name ? p->name : "",
                                        atomic_load(&p->tid));
                                exit(EXIT_FAILURE);
                        }
                        sleep_us(1000);
                }
        }
}

static void report_ready(void) {
        for (int i = 0; i < n_parties; i++)
                printf("%s %d\n", parties[i].role, atomic_load(&parties[i].tid));
        for (int i = 0; i < n_objects; i++)
                printf("object %s %p\n", objects[i].name, objects[i].address);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
}

/* Main's own wait, once the scenario is set up. */
_noinline_ static void main_park(void) {
        for (;;)
                pause();
        side_effect++;
}

/* Counts the caller in COUNT, then waits until WANT threads are (the deadlock scenarios:
 * every thread holds its first lock before it reaches for the next). */
static void wait_count(atomic_int *count, int want) {
        atomic_fetch_add(count, 1);
        while (atomic_load(count) < want)
                sleep_us(1000);
}

/* --- forgotten-unlock: a holder that went to sleep with the lock held. ----------------- */

static pthread_mutex_t ho_state_mu = PTHREAD_MUTEX_INITIALIZER;

_noinline_ static void ho_idle_after(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void ho_update_state(long arg) {
        (void) arg;
        pthread_mutex_lock(&ho_state_mu);
        side_effect++;
        ho_idle_after();                /* the pthread_mutex_unlock that is missing */
        side_effect++;
}

_noinline_ static void ho_read_state(long arg) {
        (void) arg;
        pthread_mutex_lock(&ho_state_mu);
        side_effect++;
        pthread_mutex_unlock(&ho_state_mu);
}

static void scenario_forgotten_unlock(void) {
        note_object("ho_state_mu", &ho_state_mu);
        spawn("holder", "ho-holder", ho_update_state, 0, PARK_SLEEP);
        wait_parked();
        for (int i = 0; i < 3; i++)
                spawn("waiter", "ho-waiter", ho_read_state, 0, PARK_FUTEX);
}

/* --- abba: two threads take two mutexes in opposite orders. ---------------------------- */

static pthread_mutex_t ab_first_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ab_second_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int ab_holding;

_noinline_ static void ab_left_take_second(void) {
        pthread_mutex_lock(&ab_second_mu);
        side_effect++;
}

_noinline_ static void ab_left(long arg) {
        (void) arg;
        pthread_mutex_lock(&ab_first_mu);
        wait_count(&ab_holding, 2);
        ab_left_take_second();
        side_effect++;
}

_noinline_ static void ab_right_take_first(void) {
        pthread_mutex_lock(&ab_first_mu);
        side_effect++;
}

_noinline_ static void ab_right(long arg) {
        (void) arg;
        pthread_mutex_lock(&ab_second_mu);
        wait_count(&ab_holding, 2);
        ab_right_take_first();
        side_effect++;
}

static void scenario_abba(void) {
        note_object("ab_first_mu", &ab_first_mu);
        note_object("ab_second_mu", &ab_second_mu);
        spawn("left", "ab-left", ab_left, 0, PARK_FUTEX);
        spawn("right", "ab-right", ab_right, 0, PARK_FUTEX);
}

/* --- cycle3: thread i holds cy_ring_mu[i] and wants cy_ring_mu[i + 1 mod 3], so two of
 * the three mutexes are named &cy_ring_mu+0xOFF. --------------------------------------- */

static pthread_mutex_t cy_ring_mu[3] = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
};
static atomic_int cy_holding;

_noinline_ static void cy_take_next(long i) {
        pthread_mutex_lock(&cy_ring_mu[(i + 1) % 3]);
        side_effect++;
}

_noinline_ static void cy_link(long i) {
        pthread_mutex_lock(&cy_ring_mu[i]);
        wait_count(&cy_holding, 3);
        cy_take_next(i);
        side_effect++;
}

static void scenario_cycle3(void) {
        static const char *const names[] = { "cy-0", "cy-1", "cy-2" };
        static const char *const objs[] = { "cy_ring_mu[0]", "cy_ring_mu[1]", "cy_ring_mu[2]" };

        for (long i = 0; i < 3; i++) {
                note_object(objs[i], &cy_ring_mu[i]);
                spawn("link", names[i], cy_link, i, PARK_FUTEX);
        }
}

/* --- rwlock-writer: a writer sleeps holding the write lock; readers wait. -------------- */

static pthread_rwlock_t rw_config_lock = PTHREAD_RWLOCK_INITIALIZER;

_noinline_ static void rw_writer_idle(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void rw_write_config(long arg) {
        (void) arg;
        pthread_rwlock_wrlock(&rw_config_lock);
        side_effect++;
        rw_writer_idle();
        side_effect++;
}

_noinline_ static void rw_read_config(long arg) {
        (void) arg;
        pthread_rwlock_rdlock(&rw_config_lock);
        side_effect++;
        pthread_rwlock_unlock(&rw_config_lock);
}

static void scenario_rwlock_writer(void) {
        note_object("rw_config_lock", &rw_config_lock);
        spawn("writer", "rw-writer", rw_write_config, 0, PARK_SLEEP);
        wait_parked();
        for (int i = 0; i < 2; i++)
                spawn("reader", "rw-reader", rw_read_config, 0, PARK_FUTEX);
}

/* --- rwlock-readers: two readers sleep holding read locks; a writer waits. ------------- */

static pthread_rwlock_t rw_table_lock = PTHREAD_RWLOCK_INITIALIZER;

_noinline_ static void rw_reader_idle(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void rw_read_table(long arg) {
        (void) arg;
        pthread_rwlock_rdlock(&rw_table_lock);
        side_effect++;
        rw_reader_idle();
        side_effect++;
}

_noinline_ static void rw_write_table(long arg) {
        (void) arg;
        pthread_rwlock_wrlock(&rw_table_lock);
        side_effect++;
        pthread_rwlock_unlock(&rw_table_lock);
}

static void scenario_rwlock_readers(void) {
        note_object("rw_table_lock", &rw_table_lock);
        for (int i = 0; i < 2; i++)
                spawn("reader", "rw-reader", rw_read_table, 0, PARK_SLEEP);
        wait_parked();
        spawn("writer", "rw-writer", rw_write_table, 0, PARK_FUTEX);
}

/* --- recursive, errorcheck, robust, pi, adaptive: one holder asleep, one waiter, on a
 * mutex of each kind. ---------------------------------------------------------------- */

static pthread_mutex_t rc_tree_mu;
static pthread_mutex_t ec_queue_mu;
static pthread_mutex_t rb_shared_mu;
static pthread_mutex_t pi_device_mu;
static pthread_mutex_t ad_cache_mu;

static pthread_mutex_t *kind_mu;        /* the one of the running scenario */
static int kind_depth = 1;              /* how often the holder locks it */

_noinline_ static void kind_holder_idle(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void kind_hold(long arg) {
        (void) arg;
        for (int i = 0; i < kind_depth; i++)
                check_pthread("holder's pthread_mutex_lock", pthread_mutex_lock(kind_mu));
        kind_holder_idle();
        side_effect++;
}

_noinline_ static void kind_wait(long arg) {
        (void) arg;
        pthread_mutex_lock(kind_mu);
        side_effect++;
        pthread_mutex_unlock(kind_mu);
}

static void kind_scenario(pthread_mutex_t *mu, const char *name, const char *holder,
                          const char *waiter, int type, int robust, int protocol) {
        pthread_mutexattr_t attr;

        check_pthread("pthread_mutexattr_init", pthread_mutexattr_init(&attr));
        check_pthread("pthread_mutexattr_settype", pthread_mutexattr_settype(&attr, type));
        check_pthread("pthread_mutexattr_setrobust", pthread_mutexattr_setrobust(&attr, robust));
        check_pthread("pthread_mutexattr_setprotocol",
                      pthread_mutexattr_setprotocol(&attr, protocol));
        check_pthread("pthread_mutex_init", pthread_mutex_init(mu, &attr));
        pthread_mutexattr_destroy(&attr);

        kind_mu = mu;
        note_object(name, mu);
        spawn("holder", holder, kind_hold, 0, PARK_SLEEP);
        wait_parked();
        spawn("waiter", waiter, kind_wait, 0, PARK_FUTEX);
}

static void scenario_recursive(void) {
        kind_depth = 2;
        kind_scenario(&rc_tree_mu, "rc_tree_mu", "rc-holder", "rc-waiter",
                      PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
}

static void scenario_errorcheck(void) {
        kind_scenario(&ec_queue_mu, "ec_queue_mu", "ec-holder", "ec-waiter",
                      PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
}

static void scenario_robust(void) {
        kind_scenario(&rb_shared_mu, "rb_shared_mu", "rb-holder", "rb-waiter",
                      PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ROBUST, PTHREAD_PRIO_NONE);
}

static void scenario_pi(void) {
        kind_scenario(&pi_device_mu, "pi_device_mu", "pi-holder", "pi-waiter",
                      PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_INHERIT);
}

static void scenario_adaptive(void) {
        kind_scenario(&ad_cache_mu, "ad_cache_mu", "ad-holder", "ad-waiter",
                      PTHREAD_MUTEX_ADAPTIVE_NP, PTHREAD_MUTEX_STALLED, PTHREAD_PRIO_NONE);
}

/* --- orphaned: the holder of a normal mutex exited without unlocking it. --------------- */

static pthread_mutex_t or_journal_mu = PTHREAD_MUTEX_INITIALIZER;

_noinline_ static void or_lock_and_quit(long arg) {
        (void) arg;
        pthread_mutex_lock(&or_journal_mu);
        side_effect++;
}

_noinline_ static void or_append(long arg) {
        (void) arg;
        pthread_mutex_lock(&or_journal_mu);
        side_effect++;
        pthread_mutex_unlock(&or_journal_mu);
}

static void scenario_orphaned(void) {
        Party *quitter;

        note_object("or_journal_mu", &or_journal_mu);
        quitter = spawn("orphan", "or-quitter", or_lock_and_quit, 0, PARK_GONE);
        check_pthread("pthread_join", pthread_join(quitter->thread, NULL));
        wait_parked();          /* until its /proc/self/task entry is gone too */
        spawn("waiter", "or-waiter", or_append, 0, PARK_FUTEX);
}

/* --- cond: two threads wait on a condition variable nobody signals. -------------------- */

static pthread_mutex_t cv_event_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_event_cond = PTHREAD_COND_INITIALIZER;

_noinline_ static void cv_wait_event(long arg) {
        (void) arg;
        pthread_mutex_lock(&cv_event_mu);
        for (;;)
                pthread_cond_wait(&cv_event_cond, &cv_event_mu);
        side_effect++;
}

static void scenario_cond(void) {
        note_object("cv_event_cond", &cv_event_cond);
        note_object("cv_event_mu", &cv_event_mu);
        for (int i = 0; i < 2; i++)
                spawn("waiter", "cv-waiter", cv_wait_event, 0, PARK_FUTEX);
}

/* --- sem: two threads wait on a semaphore of value 0. ---------------------------------- */

static sem_t sm_slots_sem;

_noinline_ static void sm_take_slot(long arg) {
        (void) arg;
        while (sem_wait(&sm_slots_sem) != 0)
                ;
        side_effect++;
}

static void scenario_sem(void) {
        if (sem_init(&sm_slots_sem, 0, 0) != 0)
                die("sem_init", errno);
        note_object("sm_slots_sem", &sm_slots_sem);
        for (int i = 0; i < 2; i++)
                spawn("waiter", "sm-waiter", sm_take_slot, 0, PARK_FUTEX);
}

/* --- barrier: two of the three threads a barrier waits for have arrived. --------------- */

static pthread_barrier_t br_start_barrier;

_noinline_ static void br_wait_start(long arg) {
        (void) arg;
        pthread_barrier_wait(&br_start_barrier);
        side_effect++;
}

static void scenario_barrier(void) {
        check_pthread("pthread_barrier_init", pthread_barrier_init(&br_start_barrier, NULL, 3));
        note_object("br_start_barrier", &br_start_barrier);
        for (int i = 0; i < 2; i++)
                spawn("waiter", "br-waiter", br_wait_start, 0, PARK_FUTEX);
}

/* --- join: main joins a thread that sleeps forever. The sleeper says `ready`: main is
 * busy joining it. -------------------------------------------------------------------- */

_noinline_ static void jn_sleep_forever(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void jn_sleeper(long arg) {
        (void) arg;
        wait_parked();
        report_ready();
        jn_sleep_forever();
        side_effect++;
}

_noinline_ static void jn_join_sleeper(pthread_t sleeper) {
        check_pthread("pthread_join", pthread_join(sleeper, NULL));
        side_effect++;
}

static void scenario_join(void) {
        Party *sleeper;

        adopt_self("joiner", PARK_FUTEX);
        sleeper = spawn("sleeper", "jn-sleeper", jn_sleeper, 0, PARK_SLEEP);
        jn_join_sleeper(sleeper->thread);
        die("pthread_join returned", 0);
}

/* --- once: one thread sleeps inside a pthread_once routine; another waits for it. ------ */

static pthread_once_t on_setup_once = PTHREAD_ONCE_INIT;

_noinline_ static void on_slow_init(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void on_setup(long arg) {
        (void) arg;
        pthread_once(&on_setup_once, on_slow_init);
        side_effect++;
}

static void scenario_once(void) {
        note_object("on_setup_once", &on_setup_once);
        spawn("initializer", "on-init", on_setup, 0, PARK_SLEEP);
        wait_parked();
        spawn("waiter", "on-waiter", on_setup, 0, PARK_FUTEX);
}

/* --- futex: a raw FUTEX_WAIT on a word no library knows. ------------------------------- */

#define APP_FUTEX_VALUE 0x12345678
int app_futex_word = APP_FUTEX_VALUE;

_noinline_ static void fx_wait_word(long arg) {
        (void) arg;
        for (;;)
                (void) syscall(SYS_futex, &app_futex_word, FUTEX_WAIT_PRIVATE, APP_FUTEX_VALUE,
                               NULL, NULL, 0);
        side_effect++;
}

static void scenario_futex(void) {
        note_object("app_futex_word", &app_futex_word);
        spawn("waiter", "fx-waiter", fx_wait_word, 0, PARK_FUTEX);
}

/* --- contention: four threads take one mutex in a tight loop, forever; every lock is
 * held for a moment only, so no snapshot may find a deadlock. --------------------------- */

static pthread_mutex_t ct_counter_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_long ct_counter;

_noinline_ static void ct_work(long arg) {
        (void) arg;
        for (;;) {
                pthread_mutex_lock(&ct_counter_mu);
                atomic_fetch_add_explicit(&ct_counter, 1, memory_order_relaxed);
                pthread_mutex_unlock(&ct_counter_mu);
        }
        side_effect++;
}

static void scenario_contention(void) {
        note_object("ct_counter_mu", &ct_counter_mu);
        for (int i = 0; i < 4; i++)
                spawn("worker", "ct-worker", ct_work, 0, PARK_RUNNING);
        while (atomic_load(&ct_counter) < 100000)
                sleep_us(1000);
}

/* --- heap-mutex: the mutex is in malloc'ed memory (main's arena: the [heap]). ---------- */

typedef struct HpSession {
        pthread_mutex_t mu;
        long requests;
} HpSession;

static HpSession *hp_session;

_noinline_ static void hp_holder_idle(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void hp_hold(long arg) {
        (void) arg;
        pthread_mutex_lock(&hp_session->mu);
        hp_session->requests++;
        hp_holder_idle();
        side_effect++;
}

_noinline_ static void hp_wait(long arg) {
        (void) arg;
        pthread_mutex_lock(&hp_session->mu);
        hp_session->requests++;
        pthread_mutex_unlock(&hp_session->mu);
}

static void scenario_heap_mutex(void) {
        hp_session = calloc(1, sizeof *hp_session);
        if (!hp_session)
                die("calloc", ENOMEM);
        check_pthread("pthread_mutex_init", pthread_mutex_init(&hp_session->mu, NULL));
        note_object("heap", &hp_session->mu);
        spawn("holder", "hp-holder", hp_hold, 0, PARK_SLEEP);
        wait_parked();
        spawn("waiter", "hp-waiter", hp_wait, 0, PARK_FUTEX);
}

/* --- stack-mutex: the mutex is a local of the holder, handed to the waiter. ------------ */

static pthread_mutex_t *_Atomic st_local_mu;

_noinline_ static void st_holder_idle(void) {
        struct timespec ts = { .tv_sec = 3600 };

        for (;;)
                (void) nanosleep(&ts, NULL);
        side_effect++;
}

_noinline_ static void st_hold(long arg) {
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

        (void) arg;
        pthread_mutex_lock(&mu);
        atomic_store(&st_local_mu, &mu);
        st_holder_idle();
        side_effect++;
}

_noinline_ static void st_wait(long arg) {
        pthread_mutex_t *mu = atomic_load(&st_local_mu);

        (void) arg;
        pthread_mutex_lock(mu);
        side_effect++;
        pthread_mutex_unlock(mu);
}

static void scenario_stack_mutex(void) {
        spawn("holder", "st-holder", st_hold, 0, PARK_SLEEP);
        wait_parked();
        note_object("stack", atomic_load(&st_local_mu));
        spawn("waiter", "st-waiter", st_wait, 0, PARK_FUTEX);
}

/* --- main ------------------------------------------------------------------------------ */

static const struct {
        const char *name;
        void (*setup)(void);
} scenarios[] = {
        { "forgotten-unlock", scenario_forgotten_unlock },
        { "abba", scenario_abba },
        { "cycle3", scenario_cycle3 },
        { "rwlock-writer", scenario_rwlock_writer },
        { "rwlock-readers", scenario_rwlock_readers },
        { "recursive", scenario_recursive },
        { "errorcheck", scenario_errorcheck },
        { "robust", scenario_robust },
        { "pi", scenario_pi },
        { "adaptive", scenario_adaptive },
        { "orphaned", scenario_orphaned },
        { "cond", scenario_cond },
        { "sem", scenario_sem },
        { "barrier", scenario_barrier },
        { "join", scenario_join },
        { "once", scenario_once },
        { "futex", scenario_futex },
        { "contention", scenario_contention },
        { "heap-mutex", scenario_heap_mutex },
        { "stack-mutex", scenario_stack_mutex },
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

int main(int argc, char *argv[]) {
        if (argc == 2 && strcmp(argv[1], "--list") == 0) {
                for (size_t i = 0; i < N_SCENARIOS; i++)
                        printf("%s\n", scenarios[i].name);
                return 0;
        }
        for (size_t i = 0; argc == 2 && i < N_SCENARIOS; i++) {
                if (strcmp(argv[1], scenarios[i].name) != 0)
                        continue;
                scenarios[i].setup();
                wait_parked();
                report_ready();
                main_park();
                return 0;
        }
        fprintf(stderr, "Usage: cprofd-test-locks SCENARIO (--list names them)\n");
        return 2;
}
