/* tests/targets/cpp-server.cc -- a C++ process whose stacks are known, for tests to
 * compare cprofd's frames with gdb's: std::thread workers in a namespace, a class
 * template, lambdas, std::mutex and std::condition_variable waits, a thread blocked in a
 * destructor while an exception is in flight (its landing pad, often in a .cold part),
 * one blocked inside a catch handler, std::async, a small thread pool and, where the
 * compiler has them, a coroutine resumed on a worker thread.
 *
 * Built like the C targets (-O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls):
 * only DWARF CFI unwinds it, and every C++ frame's CIE has a personality routine
 * (__gxx_personality_v0, reached through a pointer in writable relocated data).
 *
 * `ready PID` is printed once every thread is at its blocking point and the kernel
 * reports it sleeping. */

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "target-task.h"

#if defined(__cpp_impl_coroutine) && __has_include(<coroutine>)
#include <coroutine>
#define HAVE_COROUTINES 1
#endif

#define NOINLINE __attribute__((noinline, noipa))

namespace ho {

static std::atomic<int> side_effect{0};
static std::atomic<int> n_ready{0};

/* Every waiting thread ends up here; nobody ever notifies these. */
static std::mutex never_mu;
static std::condition_variable never_cv;

/* main holds it forever, so lockers block in std::mutex::lock. */
static std::mutex held_mu;

NOINLINE static void wait_forever() {
        std::unique_lock<std::mutex> lk(never_mu);
        n_ready++;
        never_cv.wait(lk, [] { return false; });
        side_effect++;
}

template <typename T>
class Channel {
public:
        NOINLINE T receive() {
                std::unique_lock<std::mutex> lk(mu_);
                n_ready++;
                cv_.wait(lk, [this] { return !items_.empty(); });
                T v = items_.front();
                items_.pop();
                side_effect++;
                return v;
        }

private:
        std::mutex mu_;
        std::condition_variable cv_;
        std::queue<T> items_;
};

static Channel<std::string> string_channel;

NOINLINE static void consume_strings() {
        std::string s = string_channel.receive();
        side_effect += (int) s.size();
}

NOINLINE static void lock_held_mutex() {
        n_ready++;
        std::lock_guard<std::mutex> g(held_mu);
        side_effect++;
}

/* Its destructor blocks, so a thread unwinding for an exception stays in the landing
 * pad of the function that threw. */
struct BlocksOnDestruction {
        NOINLINE ~BlocksOnDestruction() {
                wait_forever();
                side_effect++;
        }
};

NOINLINE static void throw_with_guard() {
        BlocksOnDestruction guard;
        side_effect++;
        if (side_effect > 0)
                throw std::runtime_error("in flight");
        side_effect++;
}

NOINLINE static void unwinding_worker() {
        try {
                throw_with_guard();
        } catch (const std::exception &) {
                side_effect++;
        }
}

NOINLINE static void handle_error() {
        try {
                if (side_effect >= 0)
                        throw std::logic_error("caught");
        } catch (const std::logic_error &) {
                wait_forever();
        }
        side_effect++;
}

NOINLINE static int async_task(int x) {
        wait_forever();
        return x + side_effect;
}

class ThreadPool {
public:
        explicit ThreadPool(int n) {
                for (int i = 0; i < n; i++)
                        workers_.emplace_back([this] { worker_loop(); });
        }

        NOINLINE void worker_loop() {
                for (;;) {
                        std::function<void()> job;
                        {
                                std::unique_lock<std::mutex> lk(mu_);
                                n_ready++;
                                cv_.wait(lk, [this] { return !jobs_.empty(); });
                                job = std::move(jobs_.front());
                                jobs_.pop();
                        }
                        job();
                }
        }

private:
        std::mutex mu_;
        std::condition_variable cv_;
        std::queue<std::function<void()>> jobs_;
        std::vector<std::thread> workers_;
};

#ifdef HAVE_COROUTINES
struct Task {
        struct promise_type {
                Task get_return_object() { return {}; }
                std::suspend_never initial_suspend() noexcept { return {}; }
                std::suspend_never final_suspend() noexcept { return {}; }
                void return_void() {}
                void unhandled_exception() { std::terminate(); }
        };
};

/* Hands the coroutine to a thread of its own, which resumes it there. */
struct ResumeOnNewThread {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
                std::thread([h] { h.resume(); }).detach();
        }
        void await_resume() const noexcept {}
};

NOINLINE static Task coroutine_body() {
        co_await ResumeOnNewThread{};
        wait_forever();
        side_effect++;
}
#endif

static int expected_waiters;

}  // namespace ho

static bool all_sleeping(int n_threads) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int) getpid());
        DIR *d = opendir(path);
        if (!d)
                return false;
        int sleeping = 0, total = 0;
        while (struct dirent *e = readdir(d)) {
                if (e->d_name[0] == '.')
                        continue;
                total++;
                if (target_thread_state(atoi(e->d_name)) == 'S')
                        sleeping++;
        }
        closedir(d);
        /* main is running this check; every other thread must sleep. */
        return total == n_threads && sleeping >= n_threads - 1;
}

int main() {
        using namespace ho;
        std::vector<std::thread> threads;

        held_mu.lock();

        auto named = [](const char *name, std::function<void()> fn) {
                return std::thread([name, fn] {
                        pthread_setname_np(pthread_self(), name);
                        fn();
                });
        };
        threads.push_back(named("c-channel", [] { consume_strings(); }));
        threads.push_back(named("c-mutex", [] { lock_held_mutex(); }));
        threads.push_back(named("c-unwinding", [] { unwinding_worker(); }));
        threads.push_back(named("c-catch", [] { handle_error(); }));
        expected_waiters = 4;

        auto fut = std::async(std::launch::async, async_task, 7);
        expected_waiters++;

        ThreadPool pool(2);
        expected_waiters += 2;

#ifdef HAVE_COROUTINES
        coroutine_body();
        expected_waiters++;
#endif

        int n_threads = expected_waiters + 1;
        while (n_ready.load() < expected_waiters || !all_sleeping(n_threads))
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
        printf("ready %d\n", (int) getpid());
        fflush(stdout);

        for (;;)
                pause();
}
