/* tests/targets/target-signal.h -- waiting for SIGUSR1, the go-ahead a test or a benchmark
 * gives a target once it has set up what it measures. */
#pragma once

#include <signal.h>

/* Blocks SIGUSR1 with HANDLER installed; *WAITING is then the mask to sigsuspend() with
 * until the handler has run. sigsuspend, not sigwait: interrupted, it restarts, so cprofd
 * can borrow the thread waiting in it (sigwait would return EINTR). 0, or -1. */
static inline int usr1_prepare(void (*handler)(int), sigset_t *waiting) {
        struct sigaction sa = { .sa_handler = handler };
        sigset_t usr1;

        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &usr1, waiting) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
                return -1;
        sigdelset(waiting, SIGUSR1);
        return 0;
}
