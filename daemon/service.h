/* daemon/service.h -- the Backend that http/ calls: every profile request becomes work for
 * the worker thread (snapshot, unwind, symbolize, encode) and is answered from the loop
 * when that work is done; seconds=N deltas wait on a loop timer between their two
 * collections. A client that disconnects cancels its timer and its queued work. */
#pragma once

#include "cpu.h"
#include "heap-service.h"
#include "metrics.h"
#include "server.h"
#include "targets.h"
#include "worker.h"

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
        struct event *heap_timer;       /* [loop] the periodic drain */
        bool heap_draining;             /* [loop] a drain job is queued */
        struct {
                struct Target **items;  /* referenced while the drain job runs */
                size_t n, cap;
        } heap_targets;
} Service;

/* Fills REPLY for a failed target_thread_dump() of PID (R, TRACER as it returned them):
 * 410 when the target exited, 503 naming another tracer, else 503 with the error. */
void reply_thread_dump_error(Reply *reply, pid_t pid, int r, pid_t tracer);

/* The Backend for http_server_new(); S must outlive the server. */
void service_backend(Service *s, Backend *ret);
/* Answers every request still waiting for a timer with 503 (shutting down). Call after
 * the loop stopped and the worker was freed and its results delivered. */
void service_shutdown(Service *s);
