/* test_rng.c: Philox4x32-10 against Random123's known-answer vectors, cuRAND's stream layout,
 * and the distributions drawn from it. */
#include "ctest.h"
#include "../runtime/rng.h"
#include <stdint.h>

static int kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
               const uint32_t want[4]) {
    uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1}, out[4];
    philox4x32_10(ctr, key, out);
    return out[0] == want[0] && out[1] == want[1] && out[2] == want[2] && out[3] == want[3];
}

int main(void) {
    /* Random123 kat_vectors, philox4x32 10 rounds */
    const uint32_t z[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    const uint32_t f[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
    const uint32_t pi[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
    CHECK(kat(0, 0, 0, 0, 0, 0, z), "philox4x32-10 KAT: zero counter and key");
    CHECK(kat(~0u, ~0u, ~0u, ~0u, ~0u, ~0u, f), "philox4x32-10 KAT: all-ones counter and key");
    CHECK(kat(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, pi),
          "philox4x32-10 KAT: pi digits");

    /* cuRAND layout: word i of (seed, subsequence) is output word i%4 of counter (i/4, subsequence) */
    uint32_t ctr[4] = {5, 0, 7, 0}, key[2] = {1234, 0}, out[4];
    philox4x32_10(ctr, key, out);
    int ok = 1;
    for (int j = 0; j < 4; j++) ok &= rng_word_at(1234, 7, 20 + j) == out[j];
    CHECK(ok, "stream word i comes from block i/4 of the stream's subsequence");
    uint32_t ctr2[4] = {0, 1, 3, 0};
    philox4x32_10(ctr2, key, out);
    CHECK(rng_word_at(1234, 3, 4ull * 0x100000000ull + 2) == out[2],
          "offsets beyond 2^32 blocks carry into the counter's second word");
    uint32_t key64[2] = {0x89abcdef, 0x01234567};
    uint32_t ctr3[4] = {0, 0, 0, 0};
    philox4x32_10(ctr3, key64, out);
    CHECK(rng_word_at(0x0123456789abcdefull, 0, 1) == out[1], "64-bit seed splits into key words lo, hi");

    /* seeding: same seed, same stream; different subsequences differ */
    rng_set_seed(17);
    rng_t a, b, c;
    rng_init(&a, RNG_STREAM_DROPOUT);
    rng_init(&b, RNG_STREAM_DROPOUT);
    rng_init(&c, RNG_STREAM_SAMPLER);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), w = rng_u32(&c);
        same &= x == y;
        diff += x != w;
    }
    CHECK(same, "two streams with the same seed and subsequence agree");
    CHECK(diff > 95, "different subsequences give different words (%d of 100 differ)", diff);
    rng_t *s1 = rng_stream(RNG_STREAM_SAMPLER);
    uint32_t first = rng_u32(s1);
    rng_u32(s1);
    rng_set_seed(17);
    CHECK(rng_u32(rng_stream(RNG_STREAM_SAMPLER)) == first, "rng_set_seed restarts the shared streams");

    /* distributions */
    rng_init(&a, 99);
    double sum = 0, sumsq = 0, umin = 1, umax = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&a);
        if (u < umin) umin = u;
        if (u > umax) umax = u;
    }
    CHECK(umin > 0 && umax <= 1, "uniform draws lie in (0, 1] (min %.3g, max %.9g)", umin, umax);
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&a);
        sum += x;
        sumsq += x * x;
    }
    double mean = sum / n, var = sumsq / n - mean * mean;
    CHECK_NEAR(mean, 0.0, 0.01, "normal draws have mean 0 (%.4f)", mean);
    CHECK_NEAR(var, 1.0, 0.02, "normal draws have variance 1 (%.4f)", var);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[rng_below(&a, 7)]++;
    int lo = counts[0], hi = counts[0];
    for (int i = 1; i < 7; i++) {
        if (counts[i] < lo) lo = counts[i];
        if (counts[i] > hi) hi = counts[i];
    }
    CHECK(lo > 9500 && hi < 10500, "rng_below(7) is uniform (counts %d..%d of 10000 expected)", lo, hi);
    CHECK(rng_below(&a, 1) == 0, "rng_below(1) is 0");
    CT_DONE();
}
