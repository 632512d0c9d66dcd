/* rng.c: the global seed and the stateful streams over kernels/philox.h's Philox4x32-10. */
#include "rng.h"
#include <math.h>

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    philox_block(out, ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
}

static uint64_t global_seed = 0;
static uint64_t generation = 0;
#define NSTREAMS 64
static rng_t streams[NSTREAMS];
static uint64_t stream_gen[NSTREAMS];

void rng_set_seed(uint64_t seed) { global_seed = seed; generation++; }
uint64_t rng_global_seed(void) { return global_seed; }
uint64_t rng_generation(void) { return generation; }

void rng_init(rng_t *r, uint64_t subsequence) {
    r->seed = global_seed;
    r->subsequence = subsequence;
    r->offset = 0;
}

uint32_t rng_word_at(uint64_t seed, uint64_t subsequence, uint64_t index) {
    return philox_word_at(seed, subsequence, index);
}

uint32_t rng_u32(rng_t *r) { return rng_word_at(r->seed, r->subsequence, r->offset++); }

float rng_uniform(rng_t *r) { return philox_uniform(rng_u32(r)); }

float rng_normal(rng_t *r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

uint32_t rng_below(rng_t *r, uint32_t n) {
    if (n <= 1) return 0;
    uint32_t limit = UINT32_MAX - (UINT32_MAX % n);
    uint32_t x;
    do { x = rng_u32(r); } while (x >= limit);
    return x % n;
}

rng_t *rng_stream(uint64_t subsequence) {
    uint64_t i = subsequence % NSTREAMS;
    if (stream_gen[i] != generation + 1 || streams[i].subsequence != subsequence) {
        rng_init(&streams[i], subsequence);
        stream_gen[i] = generation + 1;
    }
    return &streams[i];
}

uint64_t rng_stream_offset(uint64_t subsequence) { return rng_stream(subsequence)->offset; }

void rng_stream_set_offset(uint64_t subsequence, uint64_t offset) { rng_stream(subsequence)->offset = offset; }
