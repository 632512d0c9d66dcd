/* rng.h: streams of Philox4x32-10 (kernels/philox.h), the counter-based generator cuRAND implements,
 * so CPU and GPU draw the same numbers. A stream is (seed, subsequence); element i of a stream is word i%4 of the block at counter
 * (lo64 = i/4, hi64 = subsequence) under key = seed, as curand_init(seed, subsequence, offset) does.
 * bl.seed(n) sets one global seed; each consumer (initialiser, dropout, sampler) owns a subsequence. */
#ifndef BL_RNG_H
#define BL_RNG_H
#include <stdint.h>
#include "../kernels/philox.h" /* the generator itself and the RNG_STREAM_* subsequence ids */

typedef struct rng {
    uint64_t seed;        /* the key */
    uint64_t subsequence; /* the high 64 bits of the counter */
    uint64_t offset;      /* index of the next 32-bit word in the stream */
} rng_t;

/* The Philox4x32-10 block function: 4 words of output for a 128-bit counter and a 64-bit key. */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Sets the global seed (bl.seed) and resets every stream derived from it. */
void rng_set_seed(uint64_t seed);
/* The global seed and a generation counter that changes whenever rng_set_seed is called. */
uint64_t rng_global_seed(void);
uint64_t rng_generation(void);

/* Starts stream `subsequence` at offset 0 under the global seed. */
void rng_init(rng_t *r, uint64_t subsequence);
/* Returns the word at `index` of stream (seed, subsequence), without any state. */
uint32_t rng_word_at(uint64_t seed, uint64_t subsequence, uint64_t index);
/* Next 32-bit word / uniform float in (0, 1] (cuRAND's curand_uniform) / standard normal. */
uint32_t rng_u32(rng_t *r);
float rng_uniform(rng_t *r);
/* Box-Muller on two uniforms, as curand_normal does (one value per call; the pair's sine is dropped). */
float rng_normal(rng_t *r);
/* Uniform integer in [0, n) without modulo bias. */
uint32_t rng_below(rng_t *r, uint32_t n);

/* Global shared streams, re-initialised by rng_set_seed. */
rng_t *rng_stream(uint64_t subsequence);
/* The position (offset) of global stream `subsequence` under the current seed, and setting it: what
 * a training state saves and restores (dropout, sampler) so a resumed run draws the same numbers. */
uint64_t rng_stream_offset(uint64_t subsequence);
void rng_stream_set_offset(uint64_t subsequence, uint64_t offset);

#endif
