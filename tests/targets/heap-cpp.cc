/* tests/targets/heap-cpp.cc -- C++ allocations through operator new, for heap profile
 * tests: libstdc++'s operator new calls malloc from libstdc++, not from this executable,
 * so a tracker that redirects only the executable's calls misses all of them.
 *
 * One thread, paced by the clock (it catches up when preempted), every millisecond:
 *   newdel_site: 8 × (new Node, new Node[16], delete, delete[]): ~9 MiB/s allocated and
 *                freed at once, next to nothing in use;
 *   new_leak_site: one new Leaked (512 bytes), linked into a list and never deleted:
 *                ~0.5 MiB/s in use.
 * The chain is worker_main → worker_loop → newdel_site | new_leak_site → operator new.
 * main prints `ready PID`, then `progress LEAKED PAIRS` every second. Built -O2
 * -fomit-frame-pointer like the other targets; the named functions are noipa and every
 * pointer escapes through an empty asm, so no new/delete pair is optimized away.
 * Options: --exit-after-ms N. */

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "target-args.h"
#include "target-clock.h"

#define _noinline_ __attribute__((noinline, noipa))

namespace {

const int NEWDEL_PER_MS = 8;
const int LEAK_PER_MS = 1;

volatile int side_effect;
std::atomic<int> running;
std::atomic<long> leaked, pairs;

inline void escape(void *p) {
        __asm__ volatile("" : : "r"(p) : "memory");
}

struct Node {
        Node() : value(side_effect) {}
        ~Node() { side_effect++; }      /* non-trivial: new[] stores a count */
        uint64_t value;
        char pad[56];
};

struct Leaked {
        Leaked *next;
        char data[512 - sizeof(Leaked *)];
};

Leaked *leak_list;

_noinline_ void newdel_site() {
        Node *one = new Node;
        Node *many = new Node[16];

        many[15].value = one->value + 1;
        escape(one);
        escape(many);
        delete one;
        delete[] many;
        side_effect++;
}

_noinline_ void new_leak_site() {
        Leaked *l = new Leaked;

        l->data[0] = 'L';
        l->next = leak_list;
        leak_list = l;
        escape(l);
        side_effect++;
}

_noinline_ void worker_loop() {
        int64_t start = now_us(), done = 0;

        running++;
        for (;;) {
                for (int64_t due_ms = due(start, 1, done); due_ms > 0; due_ms--, done++) {
                        for (int i = 0; i < NEWDEL_PER_MS; i++)
                                newdel_site();
                        for (int i = 0; i < LEAK_PER_MS; i++)
                                new_leak_site();
                }
                leaked.store(done * LEAK_PER_MS);
                pairs.store(done * NEWDEL_PER_MS);
        }
}

_noinline_ void *worker_main(void *) {
        worker_loop();
        side_effect++;
        return nullptr;
}

}  // namespace

static void report(void *) {
        printf("progress %ld %ld\n", leaked.load(), pairs.load());
}

int main(int argc, char *argv[]) {
        long exit_after_ms;
        int r = target_parse_args(argc, argv, "cprofd-test-heap-cpp", &exit_after_ms);
        pthread_t t;

        if (r >= 0)
                return r;
        if ((r = pthread_create(&t, nullptr, worker_main, nullptr)) != 0) {
                fprintf(stderr, "cprofd-test-heap-cpp: pthread_create: %s\n", strerror(r));
                return 1;
        }
        (void) pthread_setname_np(t, "worker");
        while (running.load() < 1)
                sleep_us(1000);

        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        report_every_second(now_us(), exit_after_ms, report, nullptr);
        return 0;
}
