/* profile/trace.h -- a scheduling timeline in the Trace Event Format (the JSON that
 * Perfetto UI, chrome://tracing and Catapult's trace viewer open): for every thread of a
 * process, when it ran and on which CPU, when it was off CPU and why (blocked on a lock
 * or condition variable, I/O, sleep, preempted) with its stack, who woke it (a flow from
 * waker to wakee), thread creation and exit, and the names of threads and process.
 *
 * Fed in time order by the scheduler events of one window; bounded by an event cap,
 * past which events are dropped and the file says so (an instant event and
 * otherData.truncated). Pure: no process is touched. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"
#include "hashmap.h"

#define TRACE_EVENTS_MAX 1000000u       /* events written at most */
#define TRACE_STACK_FRAMES_MAX 32u      /* frames of a stack in a slice's args */

typedef struct TraceBuilder {
        pid_t pid;
        uint64_t start_ns;              /* the window's start */
        U64Map threads;                 /* tid → TraceThread */
        Buf events;                     /* JSON objects, comma-separated */
        size_t n_events, max_events;
        bool truncated;
        uint64_t next_flow;
        struct TraceWake *wakes;        /* written as flows at the end */
        size_t n_wakes, cap_wakes;
} TraceBuilder;

void trace_builder_init(TraceBuilder *b, pid_t pid, uint64_t start_ns, size_t max_events);
void trace_builder_done(TraceBuilder *b);

/* TID is a thread of the process at the window's start, RUNNING or not (as /proc says):
 * its track starts there, whether or not it has an event in the window. */
void trace_thread(TraceBuilder *b, pid_t tid, bool running);
void trace_switch(TraceBuilder *b, pid_t tid, uint64_t time_ns, int cpu, bool in, bool preempted);
/* TID goes to sleep at TIME_NS with STACK (leaf first, symbolized) and the syscall
 * arguments ARGS: the reason of its next off-CPU slice. */
void trace_sleep(TraceBuilder *b, pid_t tid, uint64_t time_ns, const Stack *stack, const uint64_t args[6]);
void trace_wake(TraceBuilder *b, pid_t waker, pid_t wakee, uint64_t time_ns);
void trace_create(TraceBuilder *b, pid_t creator, pid_t tid, uint64_t time_ns);
void trace_exit(TraceBuilder *b, pid_t tid, uint64_t time_ns);
/* A CPU sample of TID at TIME_NS with its user STACK: an instant event on its track,
 * inside the running slice it falls in. */
void trace_cpu_sample(TraceBuilder *b, pid_t tid, uint64_t time_ns, const Stack *stack);

/* Closes the open slices at END_NS and writes the whole file: {"traceEvents": [...],
 * "displayTimeUnit": "ns", "otherData": {...}}, with PROCESS_NAME and each thread's
 * name from NAME_OF (NULL: its tid). */
void trace_builder_finish(TraceBuilder *b, uint64_t end_ns, const char *process_name,
                          const char *(*name_of)(void *userdata, pid_t tid), void *userdata, Buf *out);

/* "mutex", "condition variable", "I/O", "sleep", … : why a thread that went to sleep
 * in STACK with ARGS waits. */
const char *trace_sleep_reason(const Stack *stack, const uint64_t args[6]);
