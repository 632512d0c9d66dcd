/* philox.h: Philox4x32-10 (Salmon et al., SC'11), the counter-based generator cuRAND implements, in
 * one place for the CPU and for CUDA device code (header-only; BL_HOSTDEV marks the functions
 * __host__ __device__ under nvcc). A stream is (seed, subsequence); word i of a stream is word i%4
 * of the block at counter (lo64 = i/4, hi64 = subsequence) under key = seed, as
 * curand_init(seed, subsequence, offset) lays it out. The stream ids bertlab's consumers own are
 * here too, so kernels/ never reaches up into runtime/. */
#ifndef BL_PHILOX_H
#define BL_PHILOX_H
#include <stdint.h>

#if defined(__CUDACC__)
#define BL_HOSTDEV __host__ __device__ __forceinline__
#else
#define BL_HOSTDEV static inline
#endif

/* Subsequences owned by bertlab's consumers; new consumers take new numbers. */
enum { RNG_STREAM_INIT = 1, RNG_STREAM_DROPOUT = 2, RNG_STREAM_SAMPLER = 3, RNG_STREAM_RANDN = 4,
       RNG_STREAM_USER = 16, RNG_STREAM_SPLIT = 17 /* train_test_split without random_state */ };

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* The block function: 4 words of output for a 128-bit counter (c0 lowest) and a 64-bit key. */
BL_HOSTDEV void philox_block(uint32_t out[4], uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                             uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Block `blk` (the counter's low 64 bits) of stream (seed, subsequence). */
BL_HOSTDEV void philox_stream_block(uint32_t out[4], uint64_t seed, uint64_t subsequence,
                                    uint64_t blk) {
    philox_block(out, (uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)subsequence,
                 (uint32_t)(subsequence >> 32), (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* Word `index` of stream (seed, subsequence). */
BL_HOSTDEV uint32_t philox_word_at(uint64_t seed, uint64_t subsequence, uint64_t index) {
    uint32_t w[4];
    philox_stream_block(w, seed, subsequence, index >> 2);
    return w[index & 3];
}

/* curand_uniform's mapping of a word to (0, 1]: w * 2^-32 + 2^-33. */
BL_HOSTDEV float philox_uniform(uint32_t w) {
    return (float)w * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
}

#endif
