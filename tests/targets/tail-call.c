/* tests/targets/tail-call.c -- a function in the executable whose last act is a jump into
 * libc: lock_via_tail() ends in `jmp pthread_mutex_lock`, so no frame of its own is on the
 * stack while t-tail waits for the mutex main holds. gdb rebuilds it from DWARF call-site
 * records (a "tailcall frame"), and cprofd must as well, though the jump's target lives
 * in another module. The rest of the tree is built without sibling-call optimization; only
 * lock_via_tail has it. `ready PID` once t-tail sleeps on the mutex. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "target-task.h"

#define _noinline_ __attribute__((noinline, noipa))

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile int side_effect;
static atomic_int tail_tid;

__attribute__((noinline, noipa, optimize("optimize-sibling-calls")))
static int lock_via_tail(pthread_mutex_t *m) {
        side_effect++;
        return pthread_mutex_lock(m);
}

static _noinline_ void cross_module_caller(void) {
        side_effect += lock_via_tail(&held);
        side_effect++;
}

static _noinline_ void *tail_thread_main(void *arg) {
        atomic_store(&tail_tid, gettid());
        cross_module_caller();
        side_effect++;
        return NULL;
}

int main(void) {
        pthread_t t;

        pthread_mutex_lock(&held);
        if (pthread_create(&t, NULL, tail_thread_main, NULL) != 0)
                return 1;
        pthread_setname_np(t, "t-tail");
        while (target_thread_state(atomic_load(&tail_tid)) != 'S')
                usleep(2000);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        for (;;)
                pause();
}
