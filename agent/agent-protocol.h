/* agent/agent-protocol.h -- what the heap agent (inside the target) and cprofd share: one
 * memfd the agent creates and cprofd maps, a header and a ring of records.
 *
 * The target's threads produce (under a lock of the agent's own), cprofd consumes. Both
 * sides treat the other as untrusted: cprofd bounds-checks every record it reads (the
 * target can scribble on the ring), the agent never trusts what cprofd wrote beyond the
 * few words it reads (command, tail).
 *
 * Records are 8-byte aligned and never straddle the end of the ring: a record that would
 * is preceded by a PAD record filling the rest. head and tail are byte counts that only
 * grow; the ring offset is count % ring_size. */
#pragma once

#include <stdint.h>

#define AGENT_MAGIC UINT64_C(0x31706165646f7270)    /* "prodeap1" */
#define AGENT_VERSION 3u
#define AGENT_SHM_NAME "cprofd-agent"                /* memfd name: /memfd:cprofd-agent */
#define AGENT_START_SYMBOL "cprofd_agent_start"      /* int (int daemon_pid, u64 rate, u64 ring,
                                                        u64 daemon_fd + 1, 0 for none) */
#define AGENT_STOP_SYMBOL "cprofd_agent_stop"        /* int (void) */
#define AGENT_RESCAN_SYMBOL "cprofd_agent_rescan"    /* int (void) */

#define AGENT_HEADER_SIZE 4096u                     /* the ring follows the header's page */
#define AGENT_RING_SIZE_MIN (1u << 20)
#define AGENT_RING_SIZE_MAX (1u << 30)
#define AGENT_RING_SIZE_DEFAULT (8u << 20)
#define AGENT_STACK_COPY_MAX (16u * 1024u)          /* bytes of stack copied per sample */

/* AgentHeader.state, written by the agent. */
enum {
        AGENT_STATE_STARTING = 1,               /* hooks being installed (inside the start call) */
        AGENT_STATE_ACTIVE = 2,                 /* sampling */
        AGENT_STATE_STOPPED = 3,                /* hooks restored, shared memory let go */
};

/* AgentHeader.command, written by cprofd. */
enum {
        AGENT_COMMAND_RUN = 0,
        AGENT_COMMAND_STOP = 1,                 /* restore every hook and unmap, at the next sample */
};

/* Record types. */
enum {
        AGENT_RECORD_PAD = 0,
        AGENT_RECORD_ALLOC = 1,                 /* AgentAlloc + stack bytes */
        AGENT_RECORD_FREE = 2,                  /* AgentFree */
};

typedef struct AgentRegs {
        uint64_t rip, rsp, rbp, rbx, r12, r13, r14, r15;
} AgentRegs;

typedef struct AgentRecordHeader {
        uint32_t type;
        uint32_t size;                          /* whole record, header included, 8-aligned */
} AgentRecordHeader;

typedef struct AgentAlloc {
        AgentRecordHeader h;
        uint64_t address;
        uint64_t bytes;                         /* as requested */
        uint32_t tid;
        uint32_t stack_len;                     /* bytes of stack that follow */
        uint64_t stack_start;                   /* address of the first byte copied (rsp) */
        AgentRegs regs;                         /* in the agent's sampling function */
        /* uint8_t stack[stack_len], padded to 8 */
} AgentAlloc;

typedef struct AgentFree {
        AgentRecordHeader h;
        uint64_t address;
} AgentFree;

typedef struct AgentHeader {
        uint64_t magic;
        uint32_t version;
        uint32_t header_size;                   /* the ring starts here */
        uint64_t ring_size;
        uint64_t rate;                          /* mean bytes between samples */
        int32_t daemon_pid;                     /* the agent stops when it exits (as cprofd
                                                   sees it; in a container, when the pipe
                                                   passed as daemon_fd hangs up) */
        uint32_t state;                         /* AGENT_STATE_*, agent → cprofd */
        uint32_t command;                       /* AGENT_COMMAND_*, cprofd → agent */
        uint32_t hooked_modules;                /* modules whose GOT is redirected */
        uint64_t hooked_slots;                  /* GOT entries redirected */
        uint64_t scanned_ns;                    /* CLOCK_REALTIME of the last look for modules */
        uint64_t head;                          /* bytes written, agent */
        uint64_t tail;                          /* bytes consumed, cprofd */
        uint64_t lost;                          /* samples dropped: ring full */
        uint64_t untracked;                     /* sampled objects not tracked: set full */
} AgentHeader;
