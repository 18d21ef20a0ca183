/* bench/tracepoint-floor.c -- the least a per-thread scheduler tracepoint costs: opens
 * sched:sched_switch on every thread of PID as cprofd's samplers do (one event per thread
 * and CPU, inherited by new threads, the kernel's filter to sleeps), but with no user
 * stack, no switch records and nothing done with the samples, and keeps it open until
 * SIGTERM. bench/offcpu-overhead runs it as the floor any design of that shape pays.
 *
 *   tracepoint-floor PID */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "perf.h"
#include "tracefs.h"

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
        (void) sig;
        stopping = 1;
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: tracepoint-floor PID\n");
                return 2;
        }
        Tracepoint tp;
        int r = tracepoint_read("sched", "sched_switch", &tp);
        if (r < 0) {
                char why[512];
                fprintf(stderr, "tracepoint-floor: %s\n", tracepoint_explain_error(r, "sched", "sched_switch", why,
                                                                                    sizeof why));
                return 1;
        }
        PerfSamplerOptions o = { .tracepoint_id = tp.id, .tracepoint_filter = "prev_state & 3", .stack_bytes = 8 };
        PerfSampler *s;
        r = perf_sampler_new(atoi(argv[1]), &o, &s);
        if (r < 0) {
                char why[512];
                fprintf(stderr, "tracepoint-floor: %s\n", perf_sampler_explain_error(r, why, sizeof why));
                return 1;
        }
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        while (!stopping) {
                usleep(50000);
                (void) perf_sampler_drain(s, NULL, NULL);
        }
        perf_sampler_free(s);
        return 0;
}
