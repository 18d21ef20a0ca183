/* daemon/service.h -- the Backend that http/ calls: every profile request becomes work for
 * the worker thread (snapshot, unwind, symbolize, encode) and is answered from the loop
 * when that work is done; seconds=N deltas wait on a loop timer between their two
 * collections. A client that disconnects cancels its timer and its queued work. */
#pragma once

#include "cpu.h"
#include "heap-service.h"
#include "metrics.h"
#include "periodic-drain.h"
#include "server.h"
#include "targets.h"
#include "worker.h"

#define PROFILE_TABLE_MAX 32            /* rows of sources/table.c at most */

typedef struct PendingProfile PendingProfile;

typedef struct Service {
        struct event_base *base;
        Worker *worker;
        Targets *targets;
        Metrics *metrics;
        HttpServer *server;             /* set once listening; for metrics */
        PendingProfile *pending;        /* requests between their two collections */
        CpuProfiles cpu;
        HeapOptions heap;
        PeriodicDrain heap_drain;
        SchedService sched;
        size_t trace_events_max;        /* --trace-events-max; 0: TRACE_EVENTS_MAX */
        uint64_t profile_requests[PROFILE_TABLE_MAX];   /* [loop] by table row */
} Service;

/* The Backend for http_server_new(); S must outlive the server. */
void service_backend(Service *s, Backend *ret);
/* [loop] A zeroed request object of SIZE bytes for target PID of REQ, with *RET_TARGET
 * the target (not referenced); NULL when there is no such target (404) or no memory
 * (503): REQ is answered then. */
void *service_request_new(Service *s, Request *req, pid_t pid, size_t size, Target **ret_target);
/* [loop] Starts every source (timers, tracking at attach). 0 or negative errno. */
int service_start(Service *s);
/* Answers every request still waiting for a timer with 503 (shutting down). Call after
 * the loop stopped and the worker was freed and its results delivered. */
void service_shutdown(Service *s);
