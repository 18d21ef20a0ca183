/* tests/targets/spawner.c -- thread creation with a known answer, for the threadcreate
 * profile: a pool of four "pool-worker" threads started at once by tc_start_pool (start
 * routine tc_pool_worker, blocked for good), then one short-lived thread every 100 ms from
 * tc_spawn_one (start routine tc_short_lived, which names itself "short-lived", sleeps
 * 20 ms and exits). Prints `ready PID` once the pool runs, and `spawned N` on SIGUSR1 (the
 * short-lived threads created so far). Built like the other targets; the functions a test
 * names are noipa, so they keep their names and frames. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))

static atomic_uint spawned;
static pthread_mutex_t never_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cv = PTHREAD_COND_INITIALIZER;

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) != 0)
                ;
}

static _noinline_ void *tc_pool_worker(void *arg) {
        pthread_mutex_lock(&never_mu);
        for (;;)
                pthread_cond_wait(&never_cv, &never_mu);
        return arg;
}

static _noinline_ int tc_start_pool(void) {
        for (int i = 0; i < 4; i++) {
                pthread_t t;
                if (pthread_create(&t, NULL, tc_pool_worker, NULL) != 0)
                        return -1;
                pthread_setname_np(t, "pool-worker");
        }
        return 0;
}

static _noinline_ void *tc_short_lived(void *arg) {
        pthread_setname_np(pthread_self(), "short-lived");
        sleep_ms(20);
        return arg;
}

static _noinline_ void tc_spawn_one(void) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, tc_short_lived, NULL) == 0)
                atomic_fetch_add(&spawned, 1);
        pthread_attr_destroy(&attr);
}

static void on_usr1(int sig) {
        char line[64];
        int n = snprintf(line, sizeof line, "spawned %u\n", atomic_load(&spawned));
        (void) sig;
        if (write(STDOUT_FILENO, line, (size_t) n) < 0)
                return;
}

int main(void) {
        signal(SIGUSR1, on_usr1);
        if (tc_start_pool() < 0)
                return 1;
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        for (;;) {
                tc_spawn_one();
                sleep_ms(100);
        }
}
