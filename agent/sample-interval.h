/* agent/sample-interval.h -- Go's heap sampling rule (runtime.nextSample), shared by the
 * agent and cprofd's uprobe tracker so both sample alike: the bytes until the next sample
 * are exponential with mean RATE, drawn from a per-thread xorshift64* generator. */
#pragma once

#include <math.h>
#include <stdint.h>

/* STATE must not be 0. */
static inline uint64_t sample_random(uint64_t *state) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(0x2545F4914F6CDD1D);
}

static inline int64_t sample_interval(uint64_t *state, uint64_t rate) {
        double u = (double) ((sample_random(state) >> 11) + 1) / 9007199254740993.0;      /* (0, 1] */
        double v = -log(u) * (double) rate;
        return v > 1e15 ? INT64_C(1000000000000000) : (int64_t) v;
}
