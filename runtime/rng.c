/* rng.c: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11). */
#include "rng.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    uint32_t n3 = lo0;
    c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
}

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int i = 0; i < 10; i++) {
        philox_round(c, k);
        if (i < 9) { k[0] += PHILOX_W0; k[1] += PHILOX_W1; }
    }
    out[0] = c[0]; out[1] = c[1]; out[2] = c[2]; out[3] = c[3];
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
    uint64_t blk = index >> 2;
    uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)subsequence,
                       (uint32_t)(subsequence >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    return out[index & 3];
}

uint32_t rng_u32(rng_t *r) { return rng_word_at(r->seed, r->subsequence, r->offset++); }

float rng_uniform(rng_t *r) {
    /* curand_uniform: x * 2^-32 + 2^-32/2, never 0 */
    return (float)rng_u32(r) * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
}

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
