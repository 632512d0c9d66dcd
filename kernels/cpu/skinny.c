/* skinny.c: a linear layer's three products, y = bias + x W^T, dx += dy W and dW += dy^T x, with
 * W [OC, C] a whole weight matrix, read where it lies: no operand is copied or packed. Written for a
 * handful of token rows (a batch of titles is 3 x ~15), where OpenBLAS packs all of W for every call
 * and the packing costs about as much as the multiply (sgemm_incopy: 35% of an evaluation batch, 9%
 * of a training step at one thread); for more tokens the forward and dx take SKINNY_MAX_N (or half
 * that) at a time, and dW SKW_TOKENS, which keeps them at the small-batch rate: at 4096 tokens, one
 * thread, on an AMD EPYC (Zen 5) where OpenBLAS runs its AVX2 kernels (OPENBLAS_CORETYPE=Haswell in
 * that machine's environment): forward 166-187 against sgemm's 90-99 GFLOP/s, dW 133-149 against
 * 89-96; OpenBLAS's own AVX-512 kernels reach 169-181 there.
 *
 * Computed transposed, so W is read where it lies and never copied: with the tokens along the
 * vector lanes, y^T[o, t] = sum_c W[o, c] * x^T[c, t], x^T [C, Tp] the small operand transposed
 * (Tp = the tokens rounded up to 16, padding zero) and W's elements broadcast, 6 rows of W at a
 * time read along c. A tile is 6 outputs by up to 64 tokens (24 AVX-512 accumulators); every
 * element is one chain of fused multiply-adds over c in order from zero, whatever the tile, the row
 * tail or the thread, so the numbers do not depend on the thread count. Then y = bias + y^T's
 * element (as sgemm with beta 1 over the bias: one rounding). Threads split the outputs (with
 * AVX-512 and 48 tokens or more a thread, the tokens: token_parts below).
 * Both transposes go 16 x 16 in registers, and each tile prefetches W's rows SK_AHEAD elements
 * ahead, on into the next tile's rows (a row of MiniLM's W is 1.5 KB: too short a stream for the
 * hardware prefetcher). Measured at 45 tokens, against sgemm: 1.2-1.5x (MiniLM's and bert-base's
 * shapes, 1 and 2 threads) before those two; they gave 1.05-1.4x more (an A/B of the two objects,
 * 1 thread, 45-50 tokens). The backward's dx = dy W is below, with W's rows as the vectors.
 *
 * AVX-512, or AVX2 with FMA (simd16.h: the same bits on both; other builds keep sgemm,
 * k_skinny_forward returns 0). Scratch: one grow-only
 * buffer, so calls must not overlap (they run from the model's thread, never inside a parallel
 * region). */
#include "../kernels.h"
#include <limits.h>
#include <stdint.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "simd16.h"
#if BL_TILES

#define SK_ROWS 6 /* rows of out^T a tile */
#define SK_VEC (V16_REGS == 1 ? 4 : 1) /* 16-token vectors a tile: 64 tokens (AVX2: 16, 12 registers) */
#ifndef SK_AHEAD
#define SK_AHEAD 256 /* elements of W prefetched ahead */
#endif
#ifndef SK_KB /* the product's K block: AVX-512 none (its tiles read 64 tokens of x^T a row) */
#define SK_KB (V16_REGS == 1 ? (1 << 30) : 256)
#endif

static float *sk_buf;
static size_t sk_cap; /* floats */

static float *scratch(size_t n) {
    if (n <= sk_cap) return sk_buf;
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0) return NULL;
    free(sk_buf);
    sk_buf = p;
    sk_cap = n;
    return p;
}

/* 6 rows x NV vectors: ot[r*ldo + 16j ..] = sum_k p[r*pi + k] * v[k*ldv + 16j ..] */
#define SK_TILE(NV)                                                                                 \
    static void tile6_##NV(float *ot, size_t ldo, const float *p, size_t pi, const float *v,        \
                           size_t ldv, int K, int acc) {                                            \
        v16 a[SK_ROWS][NV];                                                                      \
        for (int r = 0; r < SK_ROWS; r++)                                                           \
            for (int j = 0; j < NV; j++) a[r][j] = acc ? v16_load(ot + r * ldo + 16 * j) : v16_zero(); \
        for (int k = 0; k < K; k++) {                                                               \
            const float *vk = v + (size_t)k * ldv, *pk = p + k;                                     \
            if ((k & 15) == 0) /* W's rows SK_AHEAD elements ahead, into the next tile's rows */      \
                for (int r = 0; r < SK_ROWS; r++) {                                                 \
                    int kd = k + SK_AHEAD;                                                          \
                    const float *pa = kd < K ? p + r * pi + kd : p + (SK_ROWS + r) * pi + (kd - K);   \
                    _mm_prefetch((const char *)pa, _MM_HINT_T0);                                    \
                }                                                                                   \
            v16 x[NV];                                                                           \
            for (int j = 0; j < NV; j++) x[j] = v16_load(vk + 16 * j);                       \
            for (int r = 0; r < SK_ROWS; r++) {                                                     \
                v16 b = v16_set1(pk[r * pi]);                                              \
                for (int j = 0; j < NV; j++) a[r][j] = v16_fmadd(b, x[j], a[r][j]);           \
            }                                                                                       \
        }                                                                                           \
        for (int r = 0; r < SK_ROWS; r++)                                                           \
            for (int j = 0; j < NV; j++) v16_store(ot + r * ldo + 16 * j, a[r][j]);          \
    }
SK_TILE(1)
SK_TILE(2)
SK_TILE(3)
SK_TILE(4)

/* the same sums for R < 6 rows (the last rows of out^T), one row at a time */
static void tile_rows(float *ot, size_t ldo, const float *p, size_t pi, const float *v, size_t ldv,
                      int K, int R, int nv, int acc) {
    for (int r = 0; r < R; r++) {
        v16 a[SK_VEC];
        for (int j = 0; j < nv; j++) a[j] = acc ? v16_load(ot + r * ldo + 16 * j) : v16_zero();
        for (int k = 0; k < K; k++) {
            v16 b = v16_set1(p[r * pi + k]);
            for (int j = 0; j < nv; j++) a[j] = v16_fmadd(b, v16_load(v + (size_t)k * ldv + 16 * j), a[j]);
        }
        for (int j = 0; j < nv; j++) v16_store(ot + r * ldo + 16 * j, a[j]);
    }
}

/* ot [I, Tp] = P (I x K, element (i, k) at p[i*pi + k]) times v [K, Tp]; K in blocks of SK_KB,
 * each tile's sums carried from one block to the next through ot (a float stored and loaded is
 * the same float: still one chain over k from zero). Called inside a parallel region: the threads
 * split the row blocks, the same ones in every K block (static), and meet at the end. */
static void product(float *ot, const float *p, size_t pi, int I, const float *v, int Tp, int K) {
    int blocks = (I + SK_ROWS - 1) / SK_ROWS;
    for (int k0 = 0; k0 < K; k0 += SK_KB) {
        int kb = K - k0 < SK_KB ? K - k0 : SK_KB, acc = k0 > 0;
#pragma omp for schedule(static) nowait
        for (int ib = 0; ib < blocks; ib++) {
            int i0 = ib * SK_ROWS, R = I - i0 < SK_ROWS ? I - i0 : SK_ROWS;
            for (int t0 = 0; t0 < Tp; t0 += 16 * SK_VEC) {
                int nv = (Tp - t0) / 16 < SK_VEC ? (Tp - t0) / 16 : SK_VEC;
                float *o = ot + (size_t)i0 * Tp + t0;
                const float *pp = p + (size_t)i0 * pi + k0, *vv = v + (size_t)k0 * Tp + t0;
                if (R < SK_ROWS) tile_rows(o, (size_t)Tp, pp, pi, vv, (size_t)Tp, kb, R, nv, acc);
                else if (nv == 4) tile6_4(o, (size_t)Tp, pp, pi, vv, (size_t)Tp, kb, acc);
                else if (nv == 3) tile6_3(o, (size_t)Tp, pp, pi, vv, (size_t)Tp, kb, acc);
                else if (nv == 2) tile6_2(o, (size_t)Tp, pp, pi, vv, (size_t)Tp, kb, acc);
                else tile6_1(o, (size_t)Tp, pp, pi, vv, (size_t)Tp, kb, acc);
            }
        }
    }
#pragma omp barrier
}

/* Whether a call's output of n floats goes out with non-temporal stores (transpose_out): from
 * STREAM_MIN floats (1 MB) on. A forward call then a pass reading its y (as the next layer does),
 * both ways alternated in one process, 1 thread, median of 60-200 pairs' ratios (AVX-512 Xeon,
 * L2 2 MB a core): 384 x 1152 at 8192 / 4096 / 1024 / 512 / 256 tokens 1.11 / 1.12 / 1.08 / 1.05 /
 * 1.03x, 384 x 384 at 8192 / 4096 1.10x, at 512 1.00x, at 256 0.97x (98 K floats: below the
 * threshold); 2 threads at 8192 tokens 1.07x. */
#ifndef STREAM_MIN
#define STREAM_MIN (1L << 18)
#endif
#define STREAM_OUT(n) ((n) >= (size_t)STREAM_MIN)

/* vt [K, Tp] = a [N, K] transposed, zero past row N: 16 x 16 blocks in registers */
static void transpose_in(float *vt, const float *a, int N, int K, int Tp) {
    int kblocks = (K + 15) / 16;
#pragma omp for schedule(static)
    for (int kb = 0; kb < kblocks; kb++) {
        int k0 = kb * 16;
        m16 mk = lanes(K - k0);
        for (int t0 = 0; t0 < Tp; t0 += 16) {
            v16 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = t0 + i < N ? v16_loadz(mk, a + (size_t)(t0 + i) * K + k0) : v16_zero();
            v16_transpose(r);
            for (int j = 0; j < 16 && k0 + j < K; j++) v16_store(vt + (size_t)(k0 + j) * Tp + t0, r[j]);
        }
    }
}

/* y [N, OC] (rows ldy floats apart) = bias + ot [OC, Tp] transposed (the first N columns), 16 x 16
 * blocks in registers; each element bias[o] + ot[o, t], one rounding, as before. stream (AVX-512;
 * STREAM_OUT): whole lines of y go out with non-temporal stores, which skip reading each line in
 * before writing it; the call's y is then 1 MB or more, and the rest of the call (W, the other
 * chunks) has gone through L2 by the time the next layer reads it. */
static void transpose_out(float *y, size_t ldy, const float *ot, const float *bias, int N, int OC, int Tp,
                          int stream) {
    int oblocks = (OC + 15) / 16, tblocks = (N + 15) / 16;
#if V16_REGS == 1
    stream = stream && OC % 16 == 0 && ldy % 16 == 0 && ((uintptr_t)y & 63) == 0;
#else
    stream = 0;
#endif
#pragma omp for collapse(2) schedule(static) nowait
    for (int tb = 0; tb < tblocks; tb++) /* along y's rows: 16 of them written a line at a time */
        for (int ob = 0; ob < oblocks; ob++) {
            int o0 = ob * 16, t0 = tb * 16;
            m16 mo = lanes(OC - o0);
            v16 b = bias ? v16_loadz(mo, bias + o0) : v16_zero();
            v16 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = o0 + i < OC ? v16_load(ot + (size_t)(o0 + i) * Tp + t0) : v16_zero();
            v16_transpose(r);
#if V16_REGS == 1
            if (stream) {
                for (int j = 0; j < 16 && t0 + j < N; j++)
                    _mm512_stream_ps(y + (size_t)(t0 + j) * ldy + o0, bias ? v16_add(b, r[j]) : r[j]);
                continue;
            }
#endif
            for (int j = 0; j < 16 && t0 + j < N; j++)
                v16_storem(y + (size_t)(t0 + j) * ldy + o0, mo, bias ? v16_add(b, r[j]) : r[j]);
        }
#if V16_REGS == 1
    if (stream) _mm_sfence(); /* this thread's streamed lines ordered before the barrier's release */
#endif
#pragma omp barrier
}

/* ---- dx = dy W ---------------------------------------------------------------------------------
 * The backward's dx [N, C] += dy [N, OC] W [OC, C] for the same few tokens, W read where it lies:
 * lanes along c (W's rows are the vectors) and dy's elements broadcast, 6 tokens by 64 columns a
 * tile, over all OC rows of W. Each c-block of W (OC rows x 256 bytes, strided by a whole row) is
 * read from memory by the first token block and from L2 by the rest; rows that far apart are a new
 * page each, which the hardware prefetcher does not follow, so the first pass prefetches SKD_AHEAD
 * rows ahead; W is taken SKD_ROWS rows at a time (a contiguous block whose pages stay in the TLB:
 * bert-base's 3 KB rows ran at 40% of the rate without it). Every element is dx plus, chunk by
 * chunk, one chain of fused multiply-adds over the chunk's rows from zero, whatever the thread count
 * (threads split the c-blocks). Against OpenBLAS's SkylakeX sgemm, W cold, 1 thread: 1.4-1.6x at
 * 45-50 tokens (MiniLM's and bert-base's shapes), 1.2x at 128, slower from 256 tokens on. */
#ifndef SKD_AHEAD
#define SKD_AHEAD 16 /* rows of W */
#endif
#ifndef SKD_ROWS
#define SKD_ROWS 128 /* rows of W a chunk (384 KB of bert-base's): its pages stay in the TLB */
#endif
/* A dW written whole (set: the first backward after zero_grad) goes around the caches: nothing
 * reads it before clipping and AdamW, after the whole backward, and a plain store first reads each
 * line in (44 MB a step for MiniLM) and pushes the activations and weights the backward still
 * needs out of L2. Batches of 3 titles, training, against plain stores after a cleared dW (the
 * Intel Xeon above, peer alternated with the previous build): 2 threads 33.6-35.5 -> 38.4-39.5
 * steps/s, 1 thread 19.6-20.5 -> 22.2-22.8; with plain stores the clear's saving was 0.3-2%.
 * The same values, so the same bits. Aligned addresses only (dW's rows of C floats, C a multiple
 * of 16, in a 64-byte-aligned block); the writer's sfence orders them before the threads meet. */
#if V16_REGS == 1
static inline __attribute__((always_inline)) void v16_stream(float *p, v16 v) {
    if (((uintptr_t)p & 63) == 0) _mm512_stream_ps(p, v);
    else v16_store(p, v);
}
#else
static inline __attribute__((always_inline)) void v16_stream(float *p, v16 v) { v16_store(p, v); }
#endif
/* 6 rows x NV vectors, added to o (set DT_ADD), or written to o (DT_STREAM: streamed around the
 * caches, DT_STORE: stored): o[r*ldo + 16j ..] (+)= sum_k p[r*pr + k*pk] * v[k*ldv + 16j ..], for
 * the first R rows; pf prefetches v SKD_AHEAD rows ahead. dx passes dy's rows (pr = OC, pk = 1),
 * dW dy's columns (pr = 1, pk = OC). */
enum { DT_ADD = 0, DT_STREAM = 1, DT_STORE = 2 };
#define SKD_TILE(NV)                                                                                \
    static inline __attribute__((always_inline)) void dtile_rows_##NV(                              \
        float *o, size_t ldo, const float *p, size_t pr, size_t pk, const float *v, size_t ldv,     \
        int K, int R, int pf, int set) {                                                            \
        v16 a[SK_ROWS][NV];                                                                      \
        for (int r = 0; r < SK_ROWS; r++)                                                           \
            for (int j = 0; j < NV; j++) a[r][j] = v16_zero();                             \
        for (int k = 0; k < K; k++) {                                                               \
            const float *vk = v + (size_t)k * ldv, *pk_ = p + (size_t)k * pk;                       \
            if (pf)                                                                                 \
                for (int j = 0; j < NV; j++)                                                        \
                    _mm_prefetch((const char *)(vk + SKD_AHEAD * ldv + 16 * j), _MM_HINT_T0);       \
            v16 x[NV];                                                                           \
            for (int j = 0; j < NV; j++) x[j] = v16_load(vk + 16 * j);                       \
            for (int r = 0; r < SK_ROWS; r++) {                                                     \
                if (r >= R) break;                                                                  \
                v16 b = v16_set1(pk_[r * pr]);                                             \
                for (int j = 0; j < NV; j++) a[r][j] = v16_fmadd(b, x[j], a[r][j]);           \
            }                                                                                       \
        }                                                                                           \
        for (int r = 0; r < R; r++)                                                                 \
            for (int j = 0; j < NV; j++) {                                                          \
                float *d = o + r * ldo + 16 * j;                                                    \
                if (set == DT_STREAM) v16_stream(d, a[r][j]);                                      \
                else if (set == DT_STORE) v16_store(d, a[r][j]);                                   \
                else v16_store(d, v16_add(v16_load(d), a[r][j]));                                  \
            }                                                                                       \
    }
/* The body twice, inlined: R = 6 a constant for every full tile, so its k loop has no row checks
 * (at run time each k paid six compares and branches and six flag moves beside its 24 fused
 * multiply-adds, some issued on the multiply-adds' port 0: 45 tokens, one thread, MiniLM's shapes,
 * the Xeon of docs/speed.md's fourteenth round: dx 137-151 -> 148-162 GFLOP/s, dW 127-150 ->
 * 136-157), and R at run time for the last rows of dW and the last tokens of dx. The same chains. */
#define SKD_TILE_R(NV)                                                                              \
    static void dtile_##NV(float *o, size_t ldo, const float *p, size_t pr, size_t pk, const float *v, \
                           size_t ldv, int K, int R, int pf, int set) {                             \
        if (R == SK_ROWS) dtile_rows_##NV(o, ldo, p, pr, pk, v, ldv, K, SK_ROWS, pf, set);          \
        else dtile_rows_##NV(o, ldo, p, pr, pk, v, ldv, K, R, pf, set);                             \
    }
#define SKD_TILES(NV) SKD_TILE(NV) SKD_TILE_R(NV)
SKD_TILES(1)
SKD_TILES(2)
SKD_TILES(3)
SKD_TILES(4)

static inline __attribute__((always_inline)) void dtile(int nv, float *o, size_t ldo, const float *p, size_t pr, size_t pk, const float *v,
                  size_t ldv, int K, int R, int pf, int set) {
    if (nv == 4) dtile_4(o, ldo, p, pr, pk, v, ldv, K, R, pf, set);
    else if (nv == 3) dtile_3(o, ldo, p, pr, pk, v, ldv, K, R, pf, set);
    else if (nv == 2) dtile_2(o, ldo, p, pr, pk, v, ldv, K, R, pf, set);
    else dtile_1(o, ldo, p, pr, pk, v, ldv, K, R, pf, set);
}

/* Which products go on the tiles, and up to how many tokens a call (more go to sgemm):
 * - The backward's two with AVX-512 only: with AVX2's 6 x 16 tiles dx ran at 0.65-1.0 of OpenBLAS's
 *   Zen kernels and dW at 0.45-0.85 (Zen 3, 1 thread, MiniLM's shapes, 45-4096 tokens), and a
 *   batch-32 training step of 128 tokens a row lost 12% with dW on them.
 * - The forward's with AVX2 up to SKINNY_TILES_MAX_N tokens: at 45 tokens 1.0-1.35x sgemm (1 and
 *   2 threads), at 480 and 4096 tokens 0.8-0.9x at 2 threads (OpenBLAS packs both operands; these
 *   tiles read x^T 16 tokens at a time from L2), and evaluation of 32 x 128 tokens at 2 threads
 *   lost 22% with them; a batch of 3 titles evaluates 1.3x faster on them.
 * - With AVX-512 the backward's up to SKINNY_TILES_MAX_N tokens when OpenBLAS runs its AVX-512
 *   kernels. Against its SkylakeX kernels (an Intel Xeon with AVX-512 and AMX, 2 cores; MiniLM's
 *   four shapes, GFLOP/s, tiles / sgemm at 1 thread): at 64 tokens dx 127-147 / 102-125, dW
 *   116-136 / 138-147 (2 threads: 195-267 / 205-273); at 192 tokens and 2 threads dx 223-267 /
 *   258-295, dW 221-261 / 253-287; at 768 tokens dx 118-141 / 140-154, dW 114-133 / 137-145; at
 *   4096 dx of the 1536-wide input 109 / 156. A batch-32 training step (titles, 1 thread) 3.26 ->
 *   3.53 steps/s, 32 x 128 real tokens 0.39 -> 0.43. The forward stays on the tiles at every N
 *   there (with it on sgemm above 256 tokens, evaluation of 32 titles fell from 13.3 to 12.4
 *   batches/s, of 32 x 128 tokens from 1.42-1.45 to 1.38-1.39: the fused feed-forward keeps its
 *   intermediate out of memory). Earlier machines: Zen 4 with OpenBLAS's Cooperlake kernels, the
 *   tiles at 0.9-1.05x sgemm from 640 tokens on (docs/speed.md, sixth round); with OpenBLAS on its
 *   AVX2 (Haswell) kernels on an AVX-512 CPU, the tiles 1.4-1.9x faster at every N.
 * k_skinny_set_max_tokens overrides SKINNY_TILES_MAX_N where it applies (the tests run the tiles on
 * every shape). */
#define BACKWARD_TILES (V16_REGS == 1)
static int max_tokens_set;

void k_skinny_set_max_tokens(int n) { max_tokens_set = n < 0 ? 0 : n; }

int k_skinny_max_tokens(int backward) {
    if (backward && !BACKWARD_TILES) return 0;                /* AVX2: dx and dW on sgemm */
    int limited = backward ? k_blas_avx512() : V16_REGS == 2; /* sgemm the faster on many tokens */
    if (!limited) return INT_MAX;
    return max_tokens_set ? max_tokens_set : SKINNY_TILES_MAX_N;
}

static int usable(int N, long work) { return N > 0 && work >= SKINNY_MIN_WORK && !omp_in_parallel(); }

/* ---- dW += dy^T x ------------------------------------------------------------------------------
 * The backward's dW [OC, C] += dy [N, OC]^T x [N, C]: lanes along c (x's rows are the vectors) and
 * dy's elements broadcast (6 consecutive outputs of one token: one cache line), 6 outputs by 64
 * columns a tile, over SKW_TOKENS tokens at a time: a chunk's x panel (64 columns) stays in L1 and
 * its dy rows in L2 while the tile sweeps the outputs. Every element is dW plus, chunk by chunk in
 * token order, one chain of fused multiply-adds over the chunk's tokens from zero, whatever the
 * thread count (threads split the tiles, the same ones in every chunk: no barrier needed). The tile
 * is dx's, reading dy by columns. */
#ifndef SKW_TOKENS
#define SKW_TOKENS 256
#endif

int k_skinny_backward_dw(float *dweight, const float *dout, const float *inp, int N, int C, int OC) {
    return k_skinny_backward_dw_to(dweight, dout, inp, N, C, OC, 0);
}

int k_skinny_backward_dw_to(float *dweight, const float *dout, const float *inp, int N, int C, int OC, int set) {
    if (N > k_skinny_max_tokens(1) || !usable(N, (long)N * C * OC) || C % 16 != 0) return 0;
    int cblocks = (C + 16 * SK_VEC - 1) / (16 * SK_VEC), oblocks = (OC + SK_ROWS - 1) / SK_ROWS;
    /* the inner loop sweeps the smaller of a chunk's x [K, C] and dy [K, OC], which stays in L2; the
     * other operand's panel stays in L1 */
    int ob_outer = C <= OC, outer = ob_outer ? oblocks : cblocks, inner = ob_outer ? cblocks : oblocks;
    /* With the c-blocks outer (C > OC: the second feed-forward dense), each thread first copies
     * its block's x panel (K tokens x 64 columns) into a room of its own, which the tiles of every
     * output row it sweeps then read in order: x's rows are C floats apart, 6 KB for MiniLM's
     * 1536-wide input, so each k was a new page. The same products, so the same bits. MiniLM's
     * 1536 x 384 at 45 and 90 tokens, the Xeon of docs/speed.md's fifteenth round, the median of
     * 2000-3000 calls alternated with the previous code in one process: written (set, streamed:
     * the first backward after zero_grad) 1.07-1.12x at one thread, 1.08-1.16x at two; added to
     * 1.0-1.05x; 4096 tokens 1.11x (bert-base's 3072 x 768: 1.13x). */
    int KW = N < SKW_TOKENS ? N : SKW_TOKENS;
    float *panels = ob_outer ? NULL : scratch((size_t)omp_get_max_threads() * KW * 16 * SK_VEC);
#pragma omp parallel
    {
        float *panel = panels ? panels + (size_t)omp_get_thread_num() * KW * 16 * SK_VEC : NULL;
        for (int n0 = 0; n0 < N; n0 += SKW_TOKENS) {
            int K = N - n0 < SKW_TOKENS ? N - n0 : SKW_TOKENS, held = -1;
#pragma omp for collapse(2) schedule(static) nowait
            for (int i = 0; i < outer; i++)
                for (int j = 0; j < inner; j++) {
                    int cb = ob_outer ? j : i, ob = ob_outer ? i : j;
                    int c0 = cb * 16 * SK_VEC, nv = (C - c0) / 16 < SK_VEC ? (C - c0) / 16 : SK_VEC;
                    int o0 = ob * SK_ROWS, R = OC - o0 < SK_ROWS ? OC - o0 : SK_ROWS;
                    float *o = dweight + (size_t)o0 * C + c0;
                    const float *pp = dout + (size_t)n0 * OC + o0, *vv = inp + (size_t)n0 * C + c0;
                    size_t ldv = (size_t)C;
                    if (panel) {
                        if (cb != held)
                            for (int k = 0; k < K; k++)
                                for (int v = 0; v < nv; v++)
                                    v16_store(panel + (size_t)k * 16 * nv + 16 * v, v16_load(vv + (size_t)k * C + 16 * v));
                        held = cb;
                        vv = panel;
                        ldv = (size_t)16 * nv;
                    }
                    dtile(nv, o, (size_t)C, pp, 1, (size_t)OC, vv, ldv, K, R, 0, set && n0 == 0 ? DT_STREAM : DT_ADD);
                }
            if (set && n0 == 0) _mm_sfence(); /* this thread's streamed stores, before anything reads them */
        }
    }
    return 1;
}

/* With several threads and at least SPLIT_MIN tokens a thread, each thread takes its own share of
 * the tokens (whole 16-token groups) through all the phases, in its own part of the scratch, inside
 * a team of one (the phases' loops, orphaned worksharing, bind to it): the threads meet once, at the
 * end, instead of at every phase of every chunk, and each reads all of W (as each chunk does).
 * Every element is one chain over c whichever tokens share its chunk, so the bits are the same.
 * Measured with AVX-512 (the Intel Xeon above, 2 threads, MiniLM's four shapes, W warm, GFLOP/s,
 * split / not): 48 tokens 174-186 / 209-254, 64 240-259 / 227-269, 96 281-292 / 232-263, 128
 * 284-293 / 247-269, 768 276-278 / 233-264, 4096 260-268 / 229-245; evaluation of 32 titles
 * 23.8-24.3 against 22.2-23.3 batches/s, of 32 x 128 tokens 2.75-2.81 against 2.62-2.64; batches
 * of 3 titles the same within the noise. Not measured with AVX2 (its 6 x 16 tiles and K blocks
 * read W differently), where the threads keep splitting the outputs.
 * The threads take the tokens a piece (one chunk or less) at a time, in turn, rather than half each:
 * on a VM whose two cores' rates move independently (a 100 ms FMA loop on each, side by side: one
 * core's rate 0.85-1.34x the other's in most windows, 0.4-2.2x at the extremes) a fixed half waits
 * for the slower core. One process alternating two pieces and the pieces below, 2 threads, MiniLM:
 * evaluation of 32 x 256 tokens 1.04-1.16x faster (median of 16 pairs; 1.17-1.31x in total time),
 * 32 x 128 1.01-1.04x (1.08-1.24x in total), 32 titles 1.01x; training steps at 32 x 128 0.96-1.01x.
 * The bits are the same (every element is still one chain over c). The number of parts (1: the
 * threads split each chunk's outputs). */
#define SPLIT_MIN (V16_REGS == 1 ? 48 : 0)
static int token_parts(int N) {
    int nth = omp_get_max_threads();
    return nth > 1 && SPLIT_MIN > 0 && N >= SPLIT_MIN * nth ? nth : 1;
}

/* tokens [lo, hi) of N: part t of parts, in whole 16-token groups */
static void part_range(int N, int t, int parts, int *lo, int *hi) {
    long g = (N + 15) / 16;
    *lo = 16 * (int)(g * t / parts);
    *hi = 16 * (int)(g * (t + 1) / parts);
    if (*hi > N) *hi = N;
}

/* Runs fn over the N tokens: with parts 1 by all the threads together (fn's phases share each
 * chunk's work), else each thread in a team of one, in its own part of the scratch (`per` floats
 * each), taking pieces of the tokens (whole 16-token groups, at most `chunk` tokens: one of fn's
 * chunks) in turn until none is left. fn(lo, hi, scratch, ctx) does tokens [lo, hi). */
typedef void (*tokens_fn)(int lo, int hi, float *scratch, const void *ctx);
static void over_tokens(int N, int parts, int chunk, size_t per, float *buf, tokens_fn fn, const void *ctx) {
    if (parts == 1) {
#pragma omp parallel
        fn(0, N, buf, ctx);
        return;
    }
    int pieces = (N + chunk - 1) / chunk;
    pieces = (pieces + parts - 1) / parts * parts;
    int next = 0;
#pragma omp parallel num_threads(parts)
    {
        float *mine = buf + per * (size_t)omp_get_thread_num();
#pragma omp parallel num_threads(1)
        for (;;) {
            int i, lo, hi;
#pragma omp atomic capture
            i = next++;
            if (i >= pieces) break;
            part_range(N, i, pieces, &lo, &hi);
            fn(lo, hi, mine, ctx);
        }
    }
}

typedef struct {
    float *out;
    const float *inp, *weight, *bias;
    size_t ldo;
    int C, OC, chunk, Tp, stream;
} forward_args;

/* scratch: x^T [C, Tp], then out^T [OC, Tp] */
static void forward_tokens(int lo, int hi, float *xt, const void *ctx) {
    const forward_args *f = ctx;
    float *ot = xt + (size_t)f->Tp * f->C;
    for (int t0 = lo; t0 < hi; t0 += f->chunk) { /* a chunk of tokens at a time, W read once a chunk */
        int n = hi - t0 < f->chunk ? hi - t0 : f->chunk, tp = (n + 15) / 16 * 16;
        transpose_in(xt, f->inp + (size_t)t0 * f->C, n, f->C, tp);
        product(ot, f->weight, (size_t)f->C, f->OC, xt, tp, f->C); /* (the loops' barriers order the phases) */
        transpose_out(f->out + (size_t)t0 * f->ldo, f->ldo, ot, f->bias, n, f->OC, tp, f->stream);
    }
}

int k_skinny_forward_takes(int N, int C, int OC) {
    return N <= k_skinny_max_tokens(0) && usable(N, (long)N * C * OC);
}

int k_skinny_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                     int C, int OC) {
    if (!k_skinny_forward_takes(N, C, OC)) return 0;
    return k_skinny_forward_ld(out, (size_t)OC, inp, weight, bias, N, C, OC);
}

int k_skinny_forward_ld(float *out, size_t ldo, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC) {
    if (N <= 0 || omp_in_parallel()) return 0;
    /* x^T's block (C x chunk) stays in L2: 128 tokens up to C = 768, then 64 (at 4096 tokens, one
     * thread: 180 against 148 GFLOP/s with 128 at C = 3072, 166 against 160 at 1536) */
    int chunk = C <= 768 ? SKINNY_MAX_N : SKINNY_MAX_N / 2;
    int Tp = ((N < chunk ? N : chunk) + 15) / 16 * 16, parts = token_parts(N);
    size_t per = (size_t)Tp * ((size_t)C + OC);
    float *buf = scratch(per * (size_t)parts);
    if (!buf) return 0;
    forward_args f = {out, inp, weight, bias, ldo, C, OC, chunk, Tp, STREAM_OUT((size_t)N * OC)};
    over_tokens(N, parts, chunk, per, buf, forward_tokens, &f);
    return 1;
}

/* ---- the feed-forward block, its intermediate never stored (evaluation) ------------------------
 * out [N, C] = b2 + act(b1 + x W1^T) W2^T, W1 [I, C], W2 [C, I], FFN_TOKENS tokens at a time: the
 * intermediate stays as the first product leaves it (transposed, I x 64 tokens: 384 KB of MiniLM's)
 * and is the second product's operand as it lies, so it never goes through memory; at 32 x 256
 * tokens of MiniLM the three calls made four passes over 50 MB a layer (the first product's output,
 * act's input and output, the second's transpose). The elements are those of k_skinny_forward, act
 * and k_skinny_forward again (the same chains, bias and act on the same values), so the same bits;
 * act is applied to whole rows of the chunk, padding tokens included (which only padding outputs
 * read). */
#define FFN_TOKENS 64
typedef struct {
    float *out;
    const float *inp, *w1, *b1, *w2, *b2;
    int C, I, Tp;
    void (*act)(float *x, size_t n);
    int stream;
} ffn_args;

/* scratch: x^T [C, Tp], the intermediate [I, Tp], out^T [C, Tp] */
static void ffn_tokens(int lo, int hi, float *xt, const void *ctx) {
    const ffn_args *f = ctx;
    int C = f->C, I = f->I;
    float *ht = xt + (size_t)f->Tp * C, *ot = ht + (size_t)f->Tp * I;
    for (int t0 = lo; t0 < hi; t0 += FFN_TOKENS) {
        int n = hi - t0 < FFN_TOKENS ? hi - t0 : FFN_TOKENS, tp = (n + 15) / 16 * 16;
        transpose_in(xt, f->inp + (size_t)t0 * C, n, C, tp);
        product(ht, f->w1, (size_t)C, I, xt, tp, C);
#pragma omp for schedule(static)
        for (int o = 0; o < I; o++) { /* b1 + the product (as transpose_out adds it), then act */
            float *h = ht + (size_t)o * tp;
            if (f->b1)
                for (int t = 0; t < tp; t++) h[t] = f->b1[o] + h[t];
            f->act(h, (size_t)tp);
        }
        product(ot, f->w2, (size_t)I, C, ht, tp, I);
        transpose_out(f->out + (size_t)t0 * C, (size_t)C, ot, f->b2, n, C, tp, f->stream);
    }
}

int k_skinny_ffn_forward(float *out, const float *inp, const float *w1, const float *b1, const float *w2,
                         const float *b2, int N, int C, int I, void (*act)(float *x, size_t n)) {
    if (N > k_skinny_max_tokens(0) || !usable(N, (long)N * C * I)) return 0;
    int Tp = ((N < FFN_TOKENS ? N : FFN_TOKENS) + 15) / 16 * 16, parts = token_parts(N);
    size_t per = (size_t)Tp * (2 * (size_t)C + I);
    float *buf = scratch(per * (size_t)parts);
    if (!buf) return 0;
    ffn_args f = {out, inp, w1, b1, w2, b2, C, I, Tp, act, STREAM_OUT((size_t)N * C)};
    over_tokens(N, parts, FFN_TOKENS, per, buf, ffn_tokens, &f);
    return 1;
}

int k_skinny_backward_dx(float *dinp, const float *dout, const float *weight, int N, int C, int OC) {
    return k_skinny_backward_dx_to(dinp, dout, weight, N, C, OC, 0);
}

/* set: each tile's first chunk of W's rows stored, not added (dx is read next, so not streamed) */
int k_skinny_backward_dx_to(float *dinp, const float *dout, const float *weight, int N, int C, int OC, int set) {
    if (N > k_skinny_max_tokens(1) || !usable(N, (long)N * C * OC) || C % 16 != 0) return 0;
    int cblocks = (C + 16 * SK_VEC - 1) / (16 * SK_VEC);
#pragma omp parallel
    for (int tc = 0; tc < N; tc += SKINNY_MAX_N) /* tokens SKINNY_MAX_N at a time, as measured above */
    for (int k0 = 0; k0 < OC; k0 += SKD_ROWS) { /* W's rows a chunk at a time: a contiguous block */
        int tn = N - tc < SKINNY_MAX_N ? N - tc : SKINNY_MAX_N;
        int K = OC - k0 < SKD_ROWS ? OC - k0 : SKD_ROWS;
        /* (static: each c-block on the same thread in every chunk, so no barrier is needed) */
#pragma omp for schedule(static) nowait
        for (int cb = 0; cb < cblocks; cb++) {
            int c0 = cb * 16 * SK_VEC, nv = (C - c0) / 16 < SK_VEC ? (C - c0) / 16 : SK_VEC;
            for (int t0 = tc; t0 < tc + tn; t0 += SK_ROWS) {
                int R = tc + tn - t0 < SK_ROWS ? tc + tn - t0 : SK_ROWS, pf = t0 == tc;
                float *o = dinp + (size_t)t0 * C + c0;
                const float *pp = dout + (size_t)t0 * OC + k0, *vv = weight + (size_t)k0 * C + c0;
                dtile(nv, o, (size_t)C, pp, (size_t)OC, 1, vv, (size_t)C, K, R, pf, set && k0 == 0 ? DT_STORE : DT_ADD);
            }
        }
    }
    return 1;
}

#else
void k_skinny_set_max_tokens(int n) { (void)n; }
int k_skinny_max_tokens(int backward) { (void)backward; return 0; }
int k_skinny_ffn_forward(float *out, const float *inp, const float *w1, const float *b1, const float *w2,
                         const float *b2, int N, int C, int I, void (*act)(float *x, size_t n)) {
    (void)out, (void)inp, (void)w1, (void)b1, (void)w2, (void)b2, (void)N, (void)C, (void)I, (void)act;
    return 0;
}
int k_skinny_backward_dw(float *dweight, const float *dout, const float *inp, int N, int C, int OC) {
    (void)dweight, (void)dout, (void)inp, (void)N, (void)C, (void)OC;
    return 0;
}
int k_skinny_backward_dw_to(float *dweight, const float *dout, const float *inp, int N, int C, int OC, int set) {
    (void)dweight, (void)dout, (void)inp, (void)N, (void)C, (void)OC, (void)set;
    return 0;
}
int k_skinny_backward_dx(float *dinp, const float *dout, const float *weight, int N, int C, int OC) {
    (void)dinp, (void)dout, (void)weight, (void)N, (void)C, (void)OC;
    return 0;
}
int k_skinny_backward_dx_to(float *dinp, const float *dout, const float *weight, int N, int C, int OC, int set) {
    (void)dinp, (void)dout, (void)weight, (void)N, (void)C, (void)OC, (void)set;
    return 0;
}
int k_skinny_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                     int C, int OC) {
    (void)out, (void)inp, (void)weight, (void)bias, (void)N, (void)C, (void)OC;
    return 0;
}
int k_skinny_forward_takes(int N, int C, int OC) {
    (void)N, (void)C, (void)OC;
    return 0;
}
int k_skinny_forward_ld(float *out, size_t ldo, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC) {
    (void)out, (void)ldo, (void)inp, (void)weight, (void)bias, (void)N, (void)C, (void)OC;
    return 0;
}
#endif
