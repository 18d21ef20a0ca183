/* daemon/worker.h -- one thread for the heavy work, so the event loop never waits on it.
 *
 * Snapshots, unwinding, symbolization and encoding run here, one job at a time, in
 * submission order: the symbolizer is single-threaded by design, and ptrace requires the
 * thread that seized a tracee to be the one that detaches it, so every ptrace call of the
 * daemon happens on this one thread. A finished job's DONE callback runs on the loop. */
#pragma once

#include <stdbool.h>

struct event_base;

typedef struct Worker Worker;

/* 0, or negative errno. Needs evthread_use_pthreads() before BASE was created. */
int worker_new(struct event_base *base, Worker **ret);
/* Runs the queued jobs to completion and stops the thread; from then on worker_submit()
 * fails with -ESHUTDOWN. The DONE callbacks are pending on the loop: run it once more
 * (EVLOOP_NONBLOCK) to deliver them. Accepts NULL. */
void worker_stop(Worker *w);
/* Stops (if not yet) and frees. Accepts NULL, returns NULL. */
Worker *worker_free(Worker *w);

/* Queues RUN(USERDATA) for the worker thread; afterwards DONE(USERDATA) runs on the loop
 * thread (DONE may be NULL). 0, -ENOMEM, or -ESHUTDOWN after worker_stop(). */
int worker_submit(Worker *w, void (*run)(void *userdata), void (*done)(void *userdata), void *userdata);

/* Jobs queued or running. */
unsigned worker_backlog(Worker *w);
