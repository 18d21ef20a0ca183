/* tests/targets/locks-cpp.cc -- threads blocked on the C++ standard library's
 * synchronisation types, whose holders are known, for tests of cprofd's lock decoding.
 *
 * The C++ sibling of locks.c, with the same protocol: one scenario per run, named by
 * argv[1] (`--list` names them all); `ROLE TID` per thread, `object NAME 0xADDR` per
 * object, then `ready PID` once every thread that should block sleeps inside futex()
 * (the waiters) or clock_nanosleep() (the holders); then it stays so until killed.
 *
 * libstdc++ builds these types on pthreads: std::mutex and std::recursive_mutex on a
 * pthread_mutex_t (_M_mutex), std::shared_mutex on a pthread_rwlock_t
 * (_M_impl._M_rwlock), std::condition_variable on a pthread_cond_t, std::call_once on
 * pthread_once. Each object is a global with a distinctive name and external linkage, so
 * its symbol is its plain name. The threads are
 * std::threads, so they start in libstdc++'s execute_native_thread_routine. */

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "target-clock.h"
#include "target-task.h"

#define NOINLINE __attribute__((noinline, noipa))

static std::atomic<int> side_effect{0};

[[noreturn]] static void die(const std::string &what) {
        fprintf(stderr, "cprofd-test-locks-cpp: %s\n", what.c_str());
        exit(EXIT_FAILURE);
}

/* --- the threads of a scenario --------------------------------------------------------- */

enum class Park {
        futex,          /* blocked in futex(): every wait of these types */
        sleep,          /* a holder, sleeping in nanosleep */
};

struct Party {
        const char *role = nullptr;
        const char *name = nullptr;
        Park park = Park::futex;
        std::atomic<int> tid{0};
        std::thread thread;
};

static std::array<Party, 8> parties;
static int n_parties;

struct Object {
        const char *name;
        const void *address;
};

static std::array<Object, 4> objects;
static int n_objects;

static void spawn(const char *role, const char *name, std::function<void()> body, Park park) {
        if (n_parties == (int) parties.size())
                die("too many threads");
        Party &p = parties[n_parties++];
        p.role = role;
        p.name = name;
        p.park = park;
        p.thread = std::thread([&p, body] {
                pthread_setname_np(pthread_self(), p.name);
                p.tid = (int) gettid();
                body();
        });
}

static void note_object(const char *name, const void *address) {
        if (n_objects == (int) objects.size())
                die("too many objects");
        objects[n_objects++] = Object{name, address};
}

/* The number of the system call thread TID of this process is in; -1: none, -2: unknown. */
static long current_syscall(int tid) {
        char path[64], buf[256];
        long nr = -2;

        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -2;
        if (fgets(buf, sizeof buf, f))
                nr = strncmp(buf, "running", 7) == 0 ? -1 : strtol(buf, nullptr, 10);
        fclose(f);
        return nr;
}

static bool parked(const Party &p) {
        int tid = p.tid.load();

        if (tid == 0 || target_thread_state(tid) != 'S')
                return false;
        long nr = current_syscall(tid);
        if (p.park == Park::futex)
                return nr == SYS_futex;
        return nr == SYS_clock_nanosleep || nr == SYS_nanosleep;
}

/* Waits until every party is where its scenario puts it. */
static void wait_parked() {
        int64_t deadline = now_us() + 10 * 1000000;

        for (int i = 0; i < n_parties; i++)
                while (!parked(parties[i])) {
                        if (now_us() > deadline)
                                die(std::string(parties[i].role) + " " + parties[i].name
                                    + " never got to its blocking point");
                        sleep_us(1000);
                }
}

static void report_ready() {
        for (int i = 0; i < n_parties; i++)
                printf("%s %d\n", parties[i].role, parties[i].tid.load());
        for (int i = 0; i < n_objects; i++)
                printf("object %s %p\n", objects[i].name, objects[i].address);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
}

/* Counts the caller in COUNT, then waits until WANT threads are (std-abba: both hold
 * their first mutex before either reaches for the other). */
static void wait_count(std::atomic<int> &count, int want) {
        count++;
        while (count.load() < want)
                sleep_us(1000);
}

/* Where a holder sleeps, its lock held. */
NOINLINE static void cx_holder_idle() {
        struct timespec ts = {3600, 0};

        for (;;)
                (void) nanosleep(&ts, nullptr);
        side_effect++;
}

/* --- std-mutex ------------------------------------------------------------------------- */

std::mutex cx_registry_mu;

NOINLINE static void cx_register() {
        std::lock_guard<std::mutex> guard(cx_registry_mu);
        side_effect++;
        cx_holder_idle();
}

NOINLINE static void cx_lookup() {
        std::lock_guard<std::mutex> guard(cx_registry_mu);
        side_effect++;
}

static void scenario_std_mutex() {
        note_object("cx_registry_mu", &cx_registry_mu);
        spawn("holder", "cx-holder", cx_register, Park::sleep);
        wait_parked();
        spawn("waiter", "cx-waiter", cx_lookup, Park::futex);
}

/* --- std-recursive-mutex: the holder locked it twice. ---------------------------------- */

std::recursive_mutex cx_tree_rmu;

NOINLINE static void cx_tree_insert() {
        std::lock_guard<std::recursive_mutex> outer(cx_tree_rmu);
        std::lock_guard<std::recursive_mutex> inner(cx_tree_rmu);
        side_effect++;
        cx_holder_idle();
}

NOINLINE static void cx_tree_find() {
        std::lock_guard<std::recursive_mutex> guard(cx_tree_rmu);
        side_effect++;
}

static void scenario_std_recursive_mutex() {
        note_object("cx_tree_rmu", &cx_tree_rmu);
        spawn("holder", "cx-holder", cx_tree_insert, Park::sleep);
        wait_parked();
        spawn("waiter", "cx-waiter", cx_tree_find, Park::futex);
}

/* --- std-shared-mutex-writer: a writer holds it; two readers wait. --------------------- */

std::shared_mutex cx_config_smu;

NOINLINE static void cx_write_config() {
        std::unique_lock<std::shared_mutex> guard(cx_config_smu);
        side_effect++;
        cx_holder_idle();
}

NOINLINE static void cx_read_config() {
        std::shared_lock<std::shared_mutex> guard(cx_config_smu);
        side_effect++;
}

static void scenario_std_shared_mutex_writer() {
        note_object("cx_config_smu", &cx_config_smu);
        spawn("writer", "cx-writer", cx_write_config, Park::sleep);
        wait_parked();
        for (int i = 0; i < 2; i++)
                spawn("reader", "cx-reader", cx_read_config, Park::futex);
}

/* --- std-shared-mutex-readers: two readers hold it; a writer waits. -------------------- */

std::shared_mutex cx_table_smu;

NOINLINE static void cx_read_table() {
        std::shared_lock<std::shared_mutex> guard(cx_table_smu);
        side_effect++;
        cx_holder_idle();
}

NOINLINE static void cx_write_table() {
        std::unique_lock<std::shared_mutex> guard(cx_table_smu);
        side_effect++;
}

static void scenario_std_shared_mutex_readers() {
        note_object("cx_table_smu", &cx_table_smu);
        for (int i = 0; i < 2; i++)
                spawn("reader", "cx-reader", cx_read_table, Park::sleep);
        wait_parked();
        spawn("writer", "cx-writer", cx_write_table, Park::futex);
}

/* --- std-condition-variable: two waiters, nobody notifies. ----------------------------- */

std::mutex cx_event_mu;
std::condition_variable cx_event_cv;

NOINLINE static void cx_wait_event() {
        std::unique_lock<std::mutex> lock(cx_event_mu);
        cx_event_cv.wait(lock, [] { return side_effect < 0; });
        side_effect++;
}

static void scenario_std_condition_variable() {
        note_object("cx_event_cv", &cx_event_cv);
        note_object("cx_event_mu", &cx_event_mu);
        for (int i = 0; i < 2; i++)
                spawn("waiter", "cx-waiter", cx_wait_event, Park::futex);
}

/* --- std-call-once: one thread is inside a slow call_once callable; another waits. ----- */

std::once_flag cx_init_flag;

NOINLINE static void cx_slow_init() {
        struct timespec ts = {3600, 0};

        for (;;)
                (void) nanosleep(&ts, nullptr);
        side_effect++;
}

NOINLINE static void cx_ensure_init() {
        std::call_once(cx_init_flag, cx_slow_init);
        side_effect++;
}

static void scenario_std_call_once() {
        note_object("cx_init_flag", &cx_init_flag);
        spawn("initializer", "cx-init", cx_ensure_init, Park::sleep);
        wait_parked();
        spawn("waiter", "cx-waiter", cx_ensure_init, Park::futex);
}

/* --- std-abba: two std::mutexes taken in opposite orders. ------------------------------ */

std::mutex cx_first_mu;
std::mutex cx_second_mu;
static std::atomic<int> cx_holding{0};

NOINLINE static void cx_left_take_second() {
        std::lock_guard<std::mutex> guard(cx_second_mu);
        side_effect++;
}

NOINLINE static void cx_left() {
        std::lock_guard<std::mutex> guard(cx_first_mu);
        wait_count(cx_holding, 2);
        cx_left_take_second();
        side_effect++;
}

NOINLINE static void cx_right_take_first() {
        std::lock_guard<std::mutex> guard(cx_first_mu);
        side_effect++;
}

NOINLINE static void cx_right() {
        std::lock_guard<std::mutex> guard(cx_second_mu);
        wait_count(cx_holding, 2);
        cx_right_take_first();
        side_effect++;
}

static void scenario_std_abba() {
        note_object("cx_first_mu", &cx_first_mu);
        note_object("cx_second_mu", &cx_second_mu);
        spawn("left", "cx-left", cx_left, Park::futex);
        spawn("right", "cx-right", cx_right, Park::futex);
}

struct Scenario {
        const char *name;
        void (*setup)();
};

static const Scenario scenarios[] = {
        {"std-mutex", scenario_std_mutex},
        {"std-recursive-mutex", scenario_std_recursive_mutex},
        {"std-shared-mutex-writer", scenario_std_shared_mutex_writer},
        {"std-shared-mutex-readers", scenario_std_shared_mutex_readers},
        {"std-condition-variable", scenario_std_condition_variable},
        {"std-call-once", scenario_std_call_once},
        {"std-abba", scenario_std_abba},
};

NOINLINE static void main_park() {
        for (;;)
                pause();
}

int main(int argc, char *argv[]) {
        if (argc == 2 && strcmp(argv[1], "--list") == 0) {
                for (const Scenario &s : scenarios)
                        printf("%s\n", s.name);
                return 0;
        }
        for (const Scenario &s : scenarios) {
                if (argc != 2 || strcmp(argv[1], s.name) != 0)
                        continue;
                s.setup();
                wait_parked();
                report_ready();
                main_park();
        }
        fprintf(stderr, "Usage: cprofd-test-locks-cpp SCENARIO (--list names them)\n");
        return 2;
}
