/* sources/heap-tracker.h -- heap tracking of one target through cprofd's agent: loading and
 * starting it (attach/inject), reading its ring of samples, unwinding and symbolizing each
 * sample's stack with the target's address space, and keeping the sampled heap
 * (profile/heap). All [worker]. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-protocol.h"
#include "drain-maps.h"
#include "heap-uprobes.h"
#include "heap.h"
#include "symbolizer.h"

#define HEAP_RATE_DEFAULT (512u * 1024u)        /* as Go's runtime.MemProfileRate */

typedef struct HeapTracker {
        pid_t pid;
        char agent_path[PATH_MAX];      /* the agent file, as cprofd sees it; "" with uprobes */
        char agent_module[PATH_MAX];    /* the agent as the target maps it (a copy's memfd in
                                           a container) */
        int hangup_fd;                  /* the write end of the agent's pipe to see cprofd
                                           go (a target in another pid namespace), or -1 */
        HeapUprobes *uprobes;           /* the fallback, when chosen: then no agent */
        AgentHeader *shm;               /* the agent's memfd, mapped; the target can write it */
        size_t shm_size;
        uint64_t tail;                  /* our copy: the shared one is only written */
        Heap heap;
        uint64_t started_ns;            /* CLOCK_REALTIME when tracking began */
        int agent_fd;                   /* the memfd's number in the target */
        uint64_t agent_ino;             /* and its inode: gone once the target exec'd */
        uint64_t samples;
        bool gone;                      /* the agent stopped (target exec'd, exited) */
        uint64_t last_check_ns;
        uint64_t modules_signature;     /* of the target's executable mappings; 0: not yet */
        uint64_t modules_changed_ns;    /* CLOCK_REALTIME they changed; 0: none pending */
        uint64_t rescan_called_ns;      /* CLOCK_MONOTONIC cprofd last had the agent rescan */
} HeapTracker;

/* Loads and starts the agent in PID. 0, or a negative errno with a one-line reason in ERR
 * (-EAGAIN: no thread can be borrowed right now; retry). */
int heap_tracker_start(pid_t pid, const char *agent_path, uint64_t rate, HeapTracker **ret, char *err,
                       size_t errlen);
/* The same through uprobes instead of the agent (heap-uprobes.h). */
int heap_tracker_start_uprobes(pid_t pid, uint64_t rate, HeapTracker **ret, char *err, size_t errlen);
/* Reads every sample the agent has handed over into the heap, unwinding with MAPS->as
 * (the maps read once, when a sample or the once-a-second check of the modules needs
 * them). */
void heap_tracker_drain(HeapTracker *t, DrainMaps *maps);
/* Tells the agent to put everything back, has a borrowed thread of the target do it at
 * once (else the agent's next sample does), and lets go. Accepts NULL; returns NULL. */
HeapTracker *heap_tracker_stop(HeapTracker *t);

/* The agent library: --heap-agent, else the one next to a cprofd run from its build tree,
 * else the installed one. */
const char *heap_agent_default_path(void);
