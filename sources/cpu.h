/* daemon/cpu.h -- CPU profiles: perf_event_open samplers shared by every request that
 * profiles the same target at the same rate and mode, drained every 100 ms on the worker
 * thread, each sample unwound once (kernel frames from kallsyms, user frames by the same
 * unwinder as thread dumps) and added to the profile of every request whose window it
 * falls in. */
#pragma once

#include <stdint.h>

#include "server.h"

struct Service;
typedef struct CpuSampler CpuSampler;
typedef struct CpuProfiles {
        CpuSampler *samplers;           /* [loop] the samplers with requests */
        struct Kallsyms *kallsyms;      /* [worker] loaded on first use */
        bool kallsyms_failed;           /* [worker] */
        uint32_t stack_bytes;           /* user stack copied per sample; 0: the default */
} CpuProfiles;

/* [loop] Starts answering REQ with a CPU profile of P. */
void cpu_profile_start(struct Service *s, Request *req, const CpuProfileRequest *p);
/* [loop] After the worker stopped: answers every CPU request still running with 503 and
 * closes every sampler. */
void cpu_profiles_shutdown(struct Service *s);
