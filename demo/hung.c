/* demo/hung.c -- a small service that hangs the two classic ways, for cprofd's demo:
 *
 *   - a forgotten unlock: cache_refresh() returns early on a failed fetch without
 *     releasing cache.lock, then its thread idles in refresh_idle(); every "cache-reader"
 *     then blocks on the lock for good;
 *   - a lock-order deadlock: "ledger-post" takes accounts_mu then journal_mu,
 *     "ledger-audit" journal_mu then accounts_mu.
 *
 * Prints "ready PID" once all of it is in place, then waits to be killed. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _noinline_ __attribute__((noinline, noipa))
#define READERS 4

struct cache {
        unsigned long hits, misses;
        pthread_mutex_t lock;
        char last_key[32];
};

static struct cache cache = { .lock = PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t accounts_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t journal_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t ledger_both_hold;
static volatile int side_effect;

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0)
                ;
}

_noinline_ static int fetch_from_backend(const char *key) {
        side_effect += (int) strlen(key);
        return -1;      /* the backend is down */
}

_noinline_ static void refresh_idle(void) {
        for (;;)
                sleep_ms(60 * 1000);
}

/* The bug: the error path returns with cache.lock still held. */
_noinline_ static int cache_refresh(const char *key) {
        pthread_mutex_lock(&cache.lock);
        snprintf(cache.last_key, sizeof cache.last_key, "%s", key);
        if (fetch_from_backend(key) < 0)
                return -1;
        cache.misses++;
        pthread_mutex_unlock(&cache.lock);
        return 0;
}

static void *refresher(void *arg) {
        (void) cache_refresh("user:42");
        refresh_idle();
        return arg;
}

_noinline_ static unsigned long cache_lookup(void) {
        pthread_mutex_lock(&cache.lock);
        unsigned long hits = ++cache.hits;
        pthread_mutex_unlock(&cache.lock);
        return hits;
}

static void *reader(void *arg) {
        sleep_ms(100);  /* after the refresh went wrong */
        for (;;)
                side_effect += (int) cache_lookup();
        return arg;
}

_noinline_ static void post_entry(void) {
        pthread_mutex_lock(&accounts_mu);
        pthread_barrier_wait(&ledger_both_hold);
        pthread_mutex_lock(&journal_mu);        /* audit holds it: never */
        side_effect++;
        pthread_mutex_unlock(&journal_mu);
        pthread_mutex_unlock(&accounts_mu);
}

_noinline_ static void audit_entry(void) {
        pthread_mutex_lock(&journal_mu);
        pthread_barrier_wait(&ledger_both_hold);
        pthread_mutex_lock(&accounts_mu);       /* post holds it: never */
        side_effect++;
        pthread_mutex_unlock(&accounts_mu);
        pthread_mutex_unlock(&journal_mu);
}

static void *ledger_post(void *arg) {
        post_entry();
        return arg;
}

static void *ledger_audit(void *arg) {
        audit_entry();
        return arg;
}

static void start(void *(*fn)(void *), const char *name) {
        pthread_t t;
        if (pthread_create(&t, NULL, fn, NULL) != 0) {
                perror("pthread_create");
                _exit(1);
        }
        pthread_setname_np(t, name);
}

int main(void) {
        pthread_barrier_init(&ledger_both_hold, NULL, 2);
        start(refresher, "cache-refresh");
        for (int i = 0; i < READERS; i++)
                start(reader, "cache-reader");
        start(ledger_post, "ledger-post");
        start(ledger_audit, "ledger-audit");
        sleep_ms(300);
        printf("ready %d\n", (int) getpid());
        fflush(stdout);
        for (;;)
                pause();
}
