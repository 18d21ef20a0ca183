/* sources/cpu.h -- CPU profiles: perf_event_open samplers shared by every request that
 * profiles the same target at the same rate and mode, drained every 100 ms on the worker
 * thread, each sample unwound once (kernel frames from kallsyms, user frames by the same
 * unwinder as thread dumps) and added to the profile of every request whose window it
 * falls in. */
#pragma once

#include <stdint.h>

#include "server.h"
#include "source.h"

struct Service;
typedef struct CpuSampler CpuSampler;
typedef struct CpuProfiles {
        CpuSampler *samplers;           /* [loop] the samplers with requests */
        struct Kallsyms *kallsyms;      /* [worker] loaded on first use */
        bool kallsyms_failed;           /* [worker] */
        uint32_t stack_bytes;           /* user stack copied per sample; 0: the default */
} CpuProfiles;

/* The source of the CPU profile: start_window answers a request with a CPU profile, and
 * shutdown (after the worker stopped) answers every CPU request still running with 503
 * and closes every sampler. */
extern const ProfileSource cpu_source;
