/* agent/sample-interval.h -- Go's heap sampling rule (runtime.nextSample), shared by the
 * agent and cprofd's uprobe tracker so both sample alike: the bytes until the next sample
 * are exponential with mean RATE, drawn from a per-thread xorshift64* generator. */
#pragma once

#include <stdint.h>
#include <string.h>

/* STATE must not be 0. */
static inline uint64_t sample_random(uint64_t *state) {
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* ln(U) for U in (0, 1], to double precision, without libm: the agent is loaded into
 * programs that may not have libm mapped, and into containers whose root may not have it
 * at all, so it needs nothing but libc. U = M * 2^E with M in [sqrt(1/2), sqrt(2)), and
 * ln M = 2 atanh(S) = 2 (S + S^3/3 + S^5/5 + ...) with |S| = |M - 1| / (M + 1) < 0.18
 * (M near 1 for U near 1: no cancellation against E ln 2). */
static inline double sample_log(double u) {
        uint64_t bits;
        memcpy(&bits, &u, sizeof bits);
        int e = (int) ((bits >> 52) & 0x7ff) - 1023;    /* u is normal: at least 2^-53 */
        bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
        double m;
        memcpy(&m, &bits, sizeof m);
        if (m > 1.41421356237309504880) {
                m /= 2;
                e++;
        }
        double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
        for (int k = 1; k < 30; k += 2) {
                sum += term / k;
                term *= s2;
        }
        return e * 0.69314718055994530942 + 2 * sum;
}

static inline int64_t sample_interval(uint64_t *state, uint64_t rate) {
        double u = (double) ((sample_random(state) >> 11) + 1) / 9007199254740993.0;      /* (0, 1] */
        double v = -sample_log(u) * (double) rate;
        return v > 1e15 ? INT64_C(1000000000000000) : (int64_t) v;
}
