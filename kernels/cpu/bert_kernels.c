/* bert_kernels.c: the CPU implementation of kernels/bert_kernels.h, BERT's layer forward/backward
 * pairs on raw float32 buffers. Matrix multiplies, the attention's per-head products included, go
 * through k_gemm (cblas_sgemm); the rest are vectorisable loops, OpenMP-parallel only where the work
 * outweighs the fork.
 * Non-goals: argument validation (the model checks shapes and ids), memory allocation (the model
 * passes every buffer, including scratch).
 * Dimension letters: B batch, T tokens, C channels, NH heads, HS head size, N rows, OC out channels,
 * L labels. */
#include "../bert_kernels.h"
#include "../kernels.h"
#include "../philox.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
static inline int omp_nthreads(void) { return omp_get_num_threads(); }
static inline int omp_tid(void) { return omp_get_thread_num(); }
#else
static inline int omp_nthreads(void) { return 1; }
static inline int omp_tid(void) { return 0; }
#endif

/* Floating-point exceptions never trap in bertlab; telling GCC so lets it if-convert the clamps and
 * selects of vexpf/verff and vectorise the GELU and softmax loops (the Makefile's flags do not). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/* Thresholds (in elements) below which a loop stays on one thread.
 * They are set so the training shapes (B=3, T~24: N*C ~ 27k) run single-threaded outside OpenBLAS,
 * whose own threads then have both cores: on a 2-core machine two thread pools that spin-wait
 * (OpenMP's and OpenBLAS's) slow each other down badly, and forking costs more than these loops.
 * Evaluation-sized batches (B=32) cross them. Under load (other processes on the cores) a threaded
 * loop waits for its slowest thread, so these are high on purpose. */
#define PAR_CHEAP (1L << 20)  /* memory-bound loops: copies, sums, tanh backward */
#define PAR_MIN (1L << 14)    /* loops of a few ns per element: layernorm, GELU, embeddings */
#define PAR_DROPOUT (1L << 13) /* Philox draws, ~5 ns per element */

/* ---- dropout masks --------------------------------------------------------------------------- */

#define PHILOX_BATCH 64
/* all[4j + k] = philox_uniform(word k of block blk[j]) for nb <= PHILOX_BATCH blocks blk[0..nb) of
 * subsequence `sub`: their uniforms, in block order. */
#if defined(__AVX512F__)
/* 16 blocks a vector: the 32 x 32 -> 64-bit products of the even and the odd lanes
 * (_mm512_mul_epu32) give each lane's high and low words; then the 4 words of 16 blocks are
 * interleaved in registers. The same words as philox_block (test_kernels checks the masks they
 * give, element by element, against philox_word_at). */
static inline void mulhilo16(__m512i a, __m512i m, __m512i *hi, __m512i *lo) {
    __m512i pe = _mm512_mul_epu32(a, m), po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}
static void philox_uniforms(float *all, uint64_t seed, uint64_t sub, const uint64_t *blk, int nb) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    const __m512 scale = _mm512_set1_ps(2.3283064e-10f), half = _mm512_set1_ps(2.3283064e-10f / 2.0f);
    for (int j0 = 0; j0 < nb; j0 += 16) {
        __mmask8 ma = (__mmask8)(nb - j0 >= 8 ? 0xFF : (1u << (nb - j0)) - 1u);
        __mmask8 mb = (__mmask8)(nb - j0 >= 16 ? 0xFF : nb - j0 <= 8 ? 0 : (1u << (nb - j0 - 8)) - 1u);
        __m512i b0 = _mm512_maskz_loadu_epi64(ma, blk + j0), b1 = _mm512_maskz_loadu_epi64(mb, blk + j0 + 8);
        __m512i c0 = _mm512_permutex2var_epi32(b0, even, b1), c1 = _mm512_permutex2var_epi32(b0, odd, b1);
        __m512i c2 = _mm512_set1_epi32((int)(uint32_t)sub), c3 = _mm512_set1_epi32((int)(uint32_t)(sub >> 32));
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int r = 0; r < 10; r++) {
            __m512i hi0, lo0, hi1, lo1;
            mulhilo16(c0, m0, &hi0, &lo0);
            mulhilo16(c2, m1, &hi1, &lo1);
            c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32((int)k0), 0x96);
            c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32((int)k1), 0x96);
            c1 = lo1;
            c3 = lo0;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        __m512 w0 = _mm512_fmadd_ps(_mm512_cvtepu32_ps(c0), scale, half);
        __m512 w1 = _mm512_fmadd_ps(_mm512_cvtepu32_ps(c1), scale, half);
        __m512 w2 = _mm512_fmadd_ps(_mm512_cvtepu32_ps(c2), scale, half);
        __m512 w3 = _mm512_fmadd_ps(_mm512_cvtepu32_ps(c3), scale, half);
        __m512d a = _mm512_castps_pd(_mm512_unpacklo_ps(w0, w1)), b = _mm512_castps_pd(_mm512_unpackhi_ps(w0, w1));
        __m512d c = _mm512_castps_pd(_mm512_unpacklo_ps(w2, w3)), d = _mm512_castps_pd(_mm512_unpackhi_ps(w2, w3));
        __m512 e = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c)), f = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        __m512 g = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d)), h = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
        /* e: blocks 0,4,8,12 (a 128-bit lane each), f: 1,5,9,13, g: 2,6,10,14, h: 3,7,11,15 */
        __m512 pl = _mm512_shuffle_f32x4(e, f, 0x44), ql = _mm512_shuffle_f32x4(g, h, 0x44);
        __m512 ph = _mm512_shuffle_f32x4(e, f, 0xEE), qh = _mm512_shuffle_f32x4(g, h, 0xEE);
        float *o = all + 4 * j0;
        _mm512_storeu_ps(o, _mm512_shuffle_f32x4(pl, ql, 0x88));
        _mm512_storeu_ps(o + 16, _mm512_shuffle_f32x4(pl, ql, 0xDD));
        _mm512_storeu_ps(o + 32, _mm512_shuffle_f32x4(ph, qh, 0x88));
        _mm512_storeu_ps(o + 48, _mm512_shuffle_f32x4(ph, qh, 0xDD));
    }
}
#else
/* Without AVX-512: philox.h's philox_block laid out as arrays so the compiler vectorises across
 * blocks (the round is written once more here for that reason only); w[k][j] is word k of block
 * blk[j]. */
static void philox_blocks(uint32_t w[4][PHILOX_BATCH], uint64_t seed, uint64_t sub,
                          const uint64_t *blk, int nb) {
    uint32_t c0[PHILOX_BATCH], c1[PHILOX_BATCH], c2[PHILOX_BATCH], c3[PHILOX_BATCH];
    for (int j = 0; j < nb; j++) {
        c0[j] = (uint32_t)blk[j];
        c1[j] = (uint32_t)(blk[j] >> 32);
        c2[j] = (uint32_t)sub;
        c3[j] = (uint32_t)(sub >> 32);
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        for (int j = 0; j < nb; j++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0[j];
            uint64_t p1 = (uint64_t)PHILOX_M1 * c2[j];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
            c1[j] = (uint32_t)p1;
            c3[j] = (uint32_t)p0;
            c0[j] = n0;
            c2[j] = n2;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    memcpy(w[0], c0, sizeof(uint32_t) * nb);
    memcpy(w[1], c1, sizeof(uint32_t) * nb);
    memcpy(w[2], c2, sizeof(uint32_t) * nb);
    memcpy(w[3], c3, sizeof(uint32_t) * nb);
}

static void philox_uniforms(float *all, uint64_t seed, uint64_t sub, const uint64_t *blk, int nb) {
    uint32_t w[4][PHILOX_BATCH];
    philox_blocks(w, seed, sub, blk, nb);
    for (int j = 0; j < nb; j++)
        for (int k = 0; k < 4; k++) all[4 * j + k] = philox_uniform(w[k][j]);
}
#endif

/* The dropout stream seen through a strided layout: a tensor of rows of W elements whose row r
 * starts at stream index start + r * stride (stride >= W; W = T*C and stride = P*C for hidden
 * states, W = T and stride = P for attention rows). Fills u[0..n) with the uniforms of its
 * elements e0..e0+n-1: element e is stream index idx = start + (e / W) * stride + e % W, word idx%4
 * of block idx/4 (philox_word_at's layout). Each row's blocks are consecutive; the blocks of several
 * short rows go into one batch of PHILOX_BATCH, so attention rows of ~24 elements still fill the
 * vector lanes. */
static void dropout_uniforms(float *u, uint64_t seed, uint64_t start, uint64_t W, uint64_t stride,
                             uint64_t e0, size_t n) {
    uint64_t blk[PHILOX_BATCH];
    float all[4 * PHILOX_BATCH];
    size_t dst[PHILOX_BATCH], len[PHILOX_BATCH], from[PHILOX_BATCH]; /* pieces of rows in the batch */
    int nb = 0, np = 0;
    uint64_t r = e0 / W, col = e0 % W;
    size_t i = 0;
    while (i < n) {
        uint64_t idx = start + r * stride + col;
        size_t m = W - col < n - i ? (size_t)(W - col) : n - i;
        uint64_t b0 = idx >> 2, nblk = ((idx + m - 1) >> 2) - b0 + 1;
        if (nblk > (uint64_t)(PHILOX_BATCH - nb)) { /* the batch is full: the rest of the row waits */
            nblk = (uint64_t)(PHILOX_BATCH - nb);
            m = (size_t)(4 * nblk - (idx & 3));
        }
        for (int j = 0; j < (int)nblk; j++) blk[nb + j] = b0 + (uint64_t)j;
        dst[np] = i;
        len[np] = m;
        from[np] = 4 * (size_t)nb + (size_t)(idx & 3);
        nb += (int)nblk;
        np++;
        i += m;
        col += m;
        if (col == W) {
            r++;
            col = 0;
        }
        if (nb == PHILOX_BATCH || i == n) {
            philox_uniforms(all, seed, RNG_STREAM_DROPOUT, blk, nb);
            for (int q = 0; q < np; q++) memcpy(u + dst[q], all + from[q], sizeof(float) * len[q]);
            nb = np = 0;
        }
    }
}

/* Multiplies x[0..n), elements e0.. of the layout above, in place by their dropout factor. */
static void dropout_apply(float *x, size_t n, float p, uint64_t seed, uint64_t start, uint64_t W,
                          uint64_t stride, uint64_t e0) {
    float scale = 1.0f / (1.0f - p);
    float u[256];
    for (size_t done = 0; done < n; done += 256) {
        size_t m = n - done < 256 ? n - done : 256;
        dropout_uniforms(u, seed, start, W, stride, e0 + done, m);
        for (size_t i = 0; i < m; i++) x[done + i] = u[i] > p ? x[done + i] * scale : 0.0f;
    }
}

/* w[0..n) = x[0..n) times its dropout factor (elements e0.. of the layout above, as dropout_apply
 * does in place), and each dropped element of x negated: x holds probabilities (+0 or more), so a set
 * sign bit marks a dropped one (-0 for a dropped 0) and |x| stays what it was. The backward reads the
 * mask from those bits instead of drawing the uniforms again. */
static void dropout_mark(float *w, float *x, size_t n, float p, uint64_t seed, uint64_t start, uint64_t W,
                         uint64_t stride, uint64_t e0) {
    float scale = 1.0f / (1.0f - p);
    float u[256];
    for (size_t done = 0; done < n; done += 256) {
        size_t m = n - done < 256 ? n - done : 256;
        dropout_uniforms(u, seed, start, W, stride, e0 + done, m);
        for (size_t i = 0; i < m; i++) {
            float xi = x[done + i];
            int keep = u[i] > p;
            w[done + i] = keep ? xi * scale : 0.0f;
            x[done + i] = keep ? xi : -xi;
        }
    }
}

/* ---- embeddings -------------------------------------------------------------------------------- */

void k_embeddings_forward(float *out, const int64_t *ids, const int64_t *types, const float *wte,
                          const float *wpe, const float *wtt, int B, int T, int C) {
    int N = B * T;
#pragma omp parallel for if ((long)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        int t = n % T;
        const float *e = wte + (size_t)ids[n] * C;
        const float *pe = wpe + (size_t)t * C;
        const float *te = wtt + (size_t)(types ? types[n] : 0) * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + pe[c] + te[c];
    }
}

void k_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                           const int64_t *ids, const int64_t *types, int B, int T, int C) {
    /* Rows may repeat (the same token twice), so threads split the channels, never the rows. */
    int N = B * T;
#pragma omp parallel if ((long)N * C > PAR_MIN)
    {
        int nth = omp_nthreads(), tid = omp_tid();
        int c0 = (int)((long)C * tid / nth), c1 = (int)((long)C * (tid + 1) / nth);
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * C;
            if (dwte) {
                float *g = dwte + (size_t)ids[n] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)(n % T) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwtt) {
                float *g = dwtt + (size_t)(types ? types[n] : 0) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
}

/* ---- layer normalisation ----------------------------------------------------------------------- */

/* sum over c of (x[c] - m)^2 (squares) or of x[c], in double: 8 running sums over c mod 8,
 * added in order, then the tail (the same order on every machine; one chain of C double adds was
 * latency-bound: ~4% of an evaluation). The float mean and rstd made from it are the one chain's
 * but for double rounding ~1e-16 relative, far below a float's ulp. */
static double sum8d(const float *x, int C, int squares, double m) {
    double acc[8] = {0};
    int c = 0;
    if (!squares) {
        for (; c + 8 <= C; c += 8)
            for (int l = 0; l < 8; l++) acc[l] += x[c + l];
    } else {
        for (; c + 8 <= C; c += 8)
            for (int l = 0; l < 8; l++) {
                double d = x[c + l] - m;
                acc[l] += d * d;
            }
    }
    double s = 0.0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; c < C; c++) s += squares ? ((double)x[c] - m) * ((double)x[c] - m) : (double)x[c];
    return s;
}

/* one row of k_layernorm_forward: o[C] from x[C], its mean and rstd to *mean, *rstd (if not NULL) */
static inline void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *weight,
                                 const float *bias, int C, float eps) {
    /* double sums, two passes: exact enough when |mean| >> std (a float sum of 384 values near 50 is
     * off by ~1e-5) */
    double md = sum8d(x, C, 0, 0.0) / C, v = sum8d(x, C, 1, md);
    float m = (float)md;
    float r = (float)(1.0 / sqrt(v / C + (double)eps));
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}

void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                         const float *bias, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > PAR_MIN)
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, inp + (size_t)n * C,
                      weight, bias, C, eps);
}

/* a row's sum, then its layer norm while the row is in the cache: one pass over res instead of two
 * (k_residual_forward wrote it out, k_layernorm_forward read it back) */
void k_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                  const float *weight, const float *bias, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *r = res + (size_t)n * C;
        const float *x = a + (size_t)n * C, *y = b + (size_t)n * C;
        for (int c = 0; c < C; c++) r[c] = x[c] + y[c];
        layernorm_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, r, weight, bias, C, eps);
    }
}

/* set: dinp written instead of added to */
static void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *mean, const float *rstd, const float *weight, int N, int C, int set) {
    int par = (long)N * C > PAR_MIN;
    if (dinp) {
#pragma omp parallel for if (par)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            float sd = 0.0f, sdn = 0.0f; /* mean of dnorm and of dnorm * norm */
            for (int c = 0; c < C; c++) {
                float dn = d[c] * weight[c];
                sd += dn;
                sdn += dn * (x[c] - m) * r;
            }
            sd /= C;
            sdn /= C;
            float *g = dinp + (size_t)n * C;
            /* (two loops: the adding one's add may fuse into its multiply, the written one has none) */
            if (set)
                for (int c = 0; c < C; c++) {
                    float norm = (x[c] - m) * r;
                    g[c] = (d[c] * weight[c] - sd - norm * sdn) * r;
                }
            else
                for (int c = 0; c < C; c++) {
                    float norm = (x[c] - m) * r;
                    g[c] += (d[c] * weight[c] - sd - norm * sdn) * r;
                }
        }
    }
    if (dweight || dbias) {
        /* column sums over rows: threads split the channels so no reduction is needed */
#pragma omp parallel if (par)
        {
            int nth = omp_nthreads(), tid = omp_tid();
            int c0 = (int)((long)C * tid / nth), c1 = (int)((long)C * (tid + 1) / nth);
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
                float m = mean[n], r = rstd[n];
                if (dweight)
                    for (int c = c0; c < c1; c++) dweight[c] += d[c] * (x[c] - m) * r;
                if (dbias)
                    for (int c = c0; c < c1; c++) dbias[c] += d[c];
            }
        }
    }
}

void k_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd, const float *weight,
                          int N, int C) {
    layernorm_backward(dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, C, 0);
}

void k_layernorm_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *mean, const float *rstd, const float *weight,
                              int N, int C) {
    layernorm_backward(dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, C, 1);
}

/* ---- linear ------------------------------------------------------------------------------------ */

/* The last layer's QKV for an evaluation whose attention reads only the [CLS] queries: K and V of
 * every token (W's rows C..3C, written into qkv's columns C..3C, rows 3C floats apart) and Q of the
 * n [CLS] tokens alone, from their inputs gathered in x_cls [n, C], through q_cls [n, C] into their
 * rows of qkv. Only where k_linear_forward would run the whole [N, 3C] call on the tiles: their
 * elements are one chain of multiply-adds over c whatever the call's rows, so these are its bits
 * (the other tokens' Q is left as it was: nothing reads it). Returns 0 otherwise (the caller makes
 * the whole call). */
int k_qkv_forward_cls(float *qkv, float *q_cls, const float *x, const float *x_cls, const size_t *rows, int n,
                      int T, const float *weight, const float *bias, int N, int C) {
    size_t C3 = 3 * (size_t)C;
    if (!k_skinny_forward_takes(N, C, 3 * C)) return 0;
    if (!k_skinny_forward_ld(qkv + C, C3, x, weight + (size_t)C * C, bias ? bias + C : NULL, N, C, 2 * C) ||
        !k_skinny_forward_ld(q_cls, (size_t)C, x_cls, weight, bias, n, C, C))
        return 0;
    for (int s = 0; s < n; s++)
        memcpy(qkv + (rows ? rows[s] : (size_t)s * T) * C3, q_cls + (size_t)s * C, sizeof(float) * C);
    return 1;
}

void k_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                      int C, int OC) {
    if (k_skinny_forward(out, inp, weight, bias, N, C, OC)) return;
    float beta = 0.0f;
    if (bias) { /* seed the output with the bias, then one sgemm adds inp @ W^T */
#pragma omp parallel for if ((long)N * OC > PAR_CHEAP)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, sizeof(float) * OC);
        beta = 1.0f;
    }
    k_gemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void k_linear_backward_to(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int set_dinp, int set_dweight) {
    if (dinp && !k_skinny_backward_dx_to(dinp, dout, weight, N, C, OC, set_dinp)) /* beta 0: written */
        k_gemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, set_dinp ? 0.0f : 1.0f, dinp, C);
    if (dweight && !k_skinny_backward_dw_to(dweight, dout, inp, N, C, OC, set_dweight))
        k_gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, set_dweight ? 0.0f : 1.0f, dweight, C);
    if (dbias) { /* column sums: threads split the columns, each summed over the rows in order */
#pragma omp parallel if ((long)N * OC > PAR_MIN)
        {
            int nth = omp_nthreads(), tid = omp_tid();
            int o0 = (int)((long)OC * tid / nth), o1 = (int)((long)OC * (tid + 1) / nth);
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) dbias[o] += d[o];
            }
        }
    }
}

void k_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                       const float *weight, int N, int C, int OC) {
    k_linear_backward_to(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0, 0);
}

void k_linear_backward_set(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, int N, int C, int OC) {
    k_linear_backward_to(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0, 1);
}

/* ---- vectorisable exp and erf ------------------------------------------------------------------ */

/* exp and erf as straight-line float arithmetic, so the loops below vectorise (glibc's expf/erff
 * are scalar calls without -ffast-math). exp: Cephes' expf (range reduction by ln 2 split in two,
 * degree-6 polynomial, 2^n through the exponent bits), relative error ~1e-7; exactly 0 below -86
 * (where e^x < 4.5e-38), so masked attention logits (-FLT_MAX) get weight 0, and no step, not even
 * the discarded lane of a select, makes a subnormal number (~100 cycles each on x86).
 * erf: Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7, the formula of PyTorch's vectorised
 * CPU erf. */
static inline float fminf_(float a, float b) { return a < b ? a : b; }

/* e^x for x in [-86, 88] (not NaN): vexpf's arithmetic without its clamps and selects */
static inline float vexpf_in(float xc) {
    /* round to nearest by adding and subtracting 1.5 * 2^23 (no libm call, so it vectorises) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    union { int32_t i; float f; } sc;
    sc.i = ((int32_t)n + 127) << 23;
    return y * sc.f;
}

static inline float vexpf(float x) {
    float xc = x < -86.0f ? -86.0f : (x > 88.0f ? 88.0f : x);
    xc = xc == xc ? xc : 0.0f; /* NaN: keeps (int32_t)n defined; x itself is returned below */
    return x < -86.0f ? 0.0f : (x == x ? vexpf_in(xc) : x);
}

#if defined(__AVX512F__)
/* vexpf on 16 lanes: the operations GCC makes of the C above (each a * b + c one fused multiply-add,
 * r's two as xc - n * a, then + n * b), written out. GCC's own vector code for vexpf's clamps and
 * selects is ~20 mask operations a vector, some through general registers, on the ports the
 * multiply-adds need: half of the softmax's exp pass. The same bits as vexpf for every float
 * (all 2^32 compared once on this build; test_kernels compares the softmax's rows with the C's).
 * softmax_rows with it (and its scale, mask and maximum in one pass), 64 rows, 1 thread, against
 * the C loops, median of 41 alternated runs: 1.34x at T = 256, 1.39x at 128, 1.12x at 24 and 37. */
static inline __m512 vexpf16(__m512 x) {
    /* max(x, -86) is -86 for a NaN x (the second operand), as vexpf's clamp keeps a NaN's n defined */
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-86.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f)),
                             _mm512_set1_ps(12582912.0f));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f),
                               _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc));
    __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(y, r), r, r), _mm512_set1_ps(1.0f));
    __m512i sc = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(sc));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), low = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-86.0f), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~low, _mm512_mask_blend_ps(nan, y, x));
}
#endif

static inline float verff(float x) {
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly = t * (0.254829592f +
                      t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    /* beyond |x| = 5.5 the exp term is below float's resolution of 1: clamping keeps it normal. Its
     * argument is in [-30, 0] whatever x (a NaN compares false: -30), where vexpf's clamps and
     * selects change nothing: vexpf_in gives the same bits for every float x (checked over all
     * 2^32) with 5 operations fewer; GELU's forward 1.2x faster on 12.6M floats (1 thread, AVX-512) */
    float e = 1.0f - poly * vexpf_in(-fminf_(ax * ax, 30.0f));
    return copysignf(e, x);
}

/* ---- self-attention core ----------------------------------------------------------------------- */

/* sum_j x[j] y[j], j < T: 16 running fmaf chains over j mod 16, added in order, then the tail (as
 * softmax_rows sums, for the softmax backward's row dot products) */
static float dot16f(const float *x, const float *y, int T) {
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= T; j += 16)
#pragma omp simd /* (without it GCC 12 keeps the 16 lanes in 16 scalar registers: see softmax_rows) */
        for (int l = 0; l < 16; l++) acc[l] = fmaf(x[j + l], y[j + l], acc[l]);
    float sum = 0.0f;
    for (int l = 0; l < 16; l++) sum += acc[l];
    for (; j < T; j++) sum = fmaf(x[j], y[j], sum);
    return sum;
}

/* Rows a[r*T .. r*T + T) of scores, r < R: each times scale, plus the mask, then softmax in place.
 * A row's largest score and its sum run in 16 lanes over j mod 16 (the compiler keeps them in one
 * vector; one chain of T compares or adds waited on each one's latency: ~40% of the softmax and ~6%
 * of an evaluation at 128 tokens), the sum's lanes then added in order, then the tail: the order is
 * the C code's, so every machine gets the same bits (a maximum is exact in any order). The rows go
 * 16 at a time, phase by phase, so the rows' reductions (16 lanes added in order: 16 add latencies)
 * are independent chains the core overlaps, where row after row each waited on the one before. */
static void softmax_rows(float *a, int R, float scale, const float *ma, int T) {
    int T16 = T / 16 * 16;
    for (int r0 = 0; r0 < R; r0 += 16) {
        int n = R - r0 < 16 ? R - r0 : 16;
        float lane[16][16], mx[16], sum[16];
        for (int r = 0; r < n; r++) { /* scaled and masked; the largest, 16 lanes over j mod 16 */
            float *x = a + (size_t)(r0 + r) * T, *m = lane[r];
#if defined(__AVX512F__)
            if (T16) { /* the same, in one pass: max_ps(v, m) is v > m ? v : m, NaN included */
                __m512 vs = _mm512_set1_ps(scale), v = _mm512_loadu_ps(x), vm;
                v = ma ? _mm512_fmadd_ps(v, vs, _mm512_loadu_ps(ma)) : _mm512_mul_ps(v, vs);
                _mm512_storeu_ps(x, v);
                vm = _mm512_max_ps(v, _mm512_broadcastss_ps(_mm512_castps512_ps128(v)));
                for (int j = 16; j < T16; j += 16) {
                    v = _mm512_loadu_ps(x + j);
                    v = ma ? _mm512_fmadd_ps(v, vs, _mm512_loadu_ps(ma + j)) : _mm512_mul_ps(v, vs);
                    _mm512_storeu_ps(x + j, v);
                    vm = _mm512_max_ps(v, vm);
                }
                _mm512_storeu_ps(m, vm);
                for (int j = T16; j < T; j++) x[j] = ma ? fmaf(x[j], scale, ma[j]) : x[j] * scale;
                continue;
            }
#endif
            if (ma)
                for (int j = 0; j < T; j++) x[j] = fmaf(x[j], scale, ma[j]); /* (one rounding) */
            else
                for (int j = 0; j < T; j++) x[j] *= scale;
            for (int l = 0; l < 16; l++) m[l] = x[0];
            for (int j = 0; j < T16; j += 16)
#pragma omp simd /* one vmaxps (x > m ? x : m, NaN included); without it GCC 12 kept the lanes in 16
                  * scalar registers, 16 vmaxss a step: ~30% of the softmax */
                for (int l = 0; l < 16; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
        }
        for (int r = 0; r < n; r++) { /* a maximum is exact whatever the order */
            const float *x = a + (size_t)(r0 + r) * T;
            float v = lane[r][0];
            for (int l = 1; l < 16; l++) v = lane[r][l] > v ? lane[r][l] : v;
            for (int j = T16; j < T; j++) v = x[j] > v ? x[j] : v;
            mx[r] = v;
        }
        for (int r = 0; r < n; r++) { /* the exponentials, summed in 16 lanes as they are made */
            float *x = a + (size_t)(r0 + r) * T, *acc = lane[r], m = mx[r];
#if defined(__AVX512F__)
            __m512 vm = _mm512_set1_ps(m), va = _mm512_setzero_ps();
            for (int j = 0; j < T16; j += 16) {
                __m512 e = vexpf16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
                _mm512_storeu_ps(x + j, e);
                va = _mm512_add_ps(va, e);
            }
            _mm512_storeu_ps(acc, va);
#else
            for (int l = 0; l < 16; l++) acc[l] = 0.0f;
            for (int j = 0; j < T16; j += 16)
                for (int l = 0; l < 16; l++) {
                    float e = vexpf(x[j + l] - m);
                    x[j + l] = e;
                    acc[l] += e;
                }
#endif
            for (int j = T16; j < T; j++) x[j] = vexpf(x[j] - m);
        }
        for (int r = 0; r < n; r++) { /* the lanes in order, then the tail */
            const float *x = a + (size_t)(r0 + r) * T;
            float v = 0.0f;
            for (int l = 0; l < 16; l++) v += lane[r][l];
            for (int j = T16; j < T; j++) v += x[j];
            sum[r] = v;
        }
        for (int r = 0; r < n; r++) {
            float *x = a + (size_t)(r0 + r) * T, inv = 1.0f / sum[r];
            for (int j = 0; j < T; j++) x[j] *= inv;
        }
    }
}

void k_scores_softmax(float *a, int R, float scale, const float *ma, int T) { softmax_rows(a, R, scale, ma, T); }
float k_expf(float x) { return vexpf(x); }

/* Per (b, h), the T x T x HS products run on kernels/cpu/headgemm.c's register tiles where the CPU
 * has AVX-512 (one thread a head; each element one fixed chain of fused multiply-adds, so the same
 * bits on every such machine and for any thread count), else as sgemm calls on strided views of qkv
 * (row stride 3C). Against those sgemm calls (OpenBLAS's Haswell kernels), with the row maximum and
 * the softmax backward's dot products in 16 lanes, 32 x 128 tokens, dropout 0.1, one thread, best of
 * 4: MiniLM's heads 20.9 -> 15.6 ms forward, 30.6 -> 20.6 backward; bert-base's 30.2 -> 20.2 and
 * 47.4 -> 30.6; at 32 x 15 tokens 0.72 -> 0.49 and 0.82 -> 0.45. The heads are independent (each
 * writes its own att block and its own columns of the output), so the threads take whole heads when
 * there is enough work (PAR_HEADS multiply-adds). Titles are a few dozen tokens, so one head's
 * product is far too small to thread. */
#define PAR_HEADS (1L << 16)

#include "simd16.h"
#define HEAD_TILES BL_TILES /* headgemm's tiles: AVX-512, or AVX2 with FMA */

/* A thread's room to lay out a head's K or V transposed (HS x T, T rounded up to 16), or one of
 * its T x HS operands padded to 16 columns when HS is not a multiple of 16; NULL without the tiles
 * (or without memory: sgemm then takes the products that need it). */
static float *head_room(int T, int HS) {
    size_t t16 = ((size_t)T + 15) / 16 * 16, h16 = ((size_t)HS + 15) / 16 * 16;
    size_t n = (size_t)HS * t16 > (size_t)T * h16 ? (size_t)HS * t16 : (size_t)T * h16;
    return HEAD_TILES ? malloc(sizeof(float) * n) : NULL;
}

/* C [M, N] = op(A) op(B), plus C when acc (op(X) = X^T when tX; lda, ldb, ldc row strides):
 * headgemm's tiles, else (no AVX-512 or AVX2, no room) sgemm */
static void head_mm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                    int ldb, int acc, float *C, int ldc, float *room) {
    if (k_head_gemm(M, N, K, A, ta ? 1 : (size_t)lda, ta ? (size_t)lda : 1, B, (size_t)ldb, tb, room,
                    acc, C, (size_t)ldc))
        return;
    /* one call: k_gemm would cut a head's product into pieces where the heads' region runs on one
     * thread (not an active region), and OpenBLAS rounds a piece's edges otherwise than the whole:
     * without the tiles, 1 and 2 threads gave other bits at 130 tokens */
    k_gemm_one(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, ldc);
}

/* The floats of a block of attention rows on a thread's stack (64 KB): all T rows up to T = 128,
 * 64 at a time at 256. */
#define ATT_ROWS (1 << 14)

/* att non-NULL (a backward follows): each head's scores and softmax go to its slot of att, which keeps
 * the probabilities for the backward with the dropped ones marked by their sign (dropout_mark: the
 * backward then draws no uniforms; at 32 x 256 tokens of MiniLM, one thread, drawing them twice more
 * there was ~5% of a training step), and the output comes from a dropped copy of a block of rows at
 * a time (at 32 x 256 tokens one row at a time, as before, was 2.4% of a training step). att NULL
 * (evaluation): the probabilities are never kept, so the scores themselves are computed a block of
 * rows at a time on the stack, instead of through att[B,NH,T,T], whose 100 MB a layer at 32 x 256
 * tokens of MiniLM went out to memory and back. Dropout takes the same stream indices either way (the
 * head's mask starts at offset + (b*NH + h)*P*P, row i at + i*P) and, with headgemm's tiles
 * (AVX-512), each element is the same chain of fused multiply-adds whatever the rows of a call, so
 * both give the same bits; sgemm (without AVX-512) may round differently where the rows come in
 * blocks (T > 128). */
/* One head of one row: o [Tq, HS] (row stride C) from its q, k, v (row stride 3C; k = q + C, v = q +
 * 2C) for the first Tq of its T queries (T: all; 1: [CLS]), mask ma (NULL: none); a: its Tq x T
 * slot of att, or NULL; w: ATT_ROWS floats; head: the stream index of its mask's first element. */
static void head_forward(float *o, float *a, const float *q, const float *ma, int T, int Tq, int C, int HS,
                         int P, float p, uint64_t seed, uint64_t head, float *w, float *room) {
    int C3 = 3 * C, RB = T <= ATT_ROWS / T ? T : ATT_ROWS / T;
    if (RB < 1) RB = 1;
    float scale = 1.0f / sqrtf((float)HS);
    const float *k = q + C, *v = q + 2 * C;
    if (a) {
        head_mm(0, 1, Tq, T, HS, q, C3, k, C3, 0, a, T, room);
        softmax_rows(a, Tq, scale, ma, T);
        if (p <= 0.0f) {
            head_mm(0, 0, Tq, HS, T, a, T, v, C3, 0, o, C, room);
            return;
        }
    }
    /* evaluation with more than one block of rows: K^T laid out once for all of them (at 256
     * tokens it was laid out four times a head), where V needs no room of its own (HS a multiple
     * of 16: the products' V is read where it lies); the same tiles, so the same bits */
    size_t ldk = 0;
    const float *kt = !a && RB < Tq && HS % 16 == 0 ? k_head_lay_b(k, C3, T, HS, 1, room, &ldk) : NULL;
    for (int i0 = 0; i0 < Tq; i0 += RB) {
        int R = Tq - i0 < RB ? Tq - i0 : RB;
        if (a) /* p > 0 here: the dropped copy in w, the dropped elements of a marked */
            dropout_mark(w, a + (size_t)i0 * T, (size_t)R * T, p, seed, head, T, P, (uint64_t)i0 * T);
        else {
            if (kt) k_head_gemm_laid(R, T, HS, q + (size_t)i0 * C3, C3, 1, kt, ldk, 0, w, T);
            else head_mm(0, 1, R, T, HS, q + (size_t)i0 * C3, C3, k, C3, 0, w, T, room);
            softmax_rows(w, R, scale, ma, T);
            if (p > 0.0f) dropout_apply(w, (size_t)R * T, p, seed, head, T, P, (uint64_t)i0 * T);
        }
        head_mm(0, 0, R, HS, T, w, T, v, C3, 0, o + (size_t)i0 * C, C, room);
    }
}

/* A batch's rows for the attention: n rows of T tokens (rows NULL: the padded [n, T] batch, its mask
 * at mask_add + the row's first token) or a packed batch's (rows as in bert_kernels.h; no mask). */
typedef struct {
    size_t tok, T, att; /* first token, length, offset of its heads' probabilities */
} att_row_t;

static inline att_row_t att_row(const size_t *rows, int n, int T, int NH, int s) {
    if (!rows) return (att_row_t){(size_t)s * T, (size_t)T, (size_t)s * NH * T * T};
    return (att_row_t){rows[s], rows[n + s], rows[2 * (size_t)n + s]};
}

/* the longest row and the multiply-adds of the rows' attention (of one product: cls, of the [CLS]
 * queries alone) */
static int rows_longest(const size_t *rows, int n, int T, int NH, int HS, int cls, long *work) {
    int longest = 0;
    *work = 0;
    for (int s = 0; s < n; s++) {
        int l = (int)att_row(rows, n, T, NH, s).T;
        if (l > longest) longest = l;
        *work += (long)NH * l * (cls ? 1 : l) * HS;
    }
    return longest;
}

/* Where row s's head h of the attention on every query (cls 0) or on [CLS] alone (cls 1) finds its
 * queries' output rows (out, dout: r.tok, or s for [CLS]: its row of [n, C]) and its probabilities
 * (Tq x T from att + first; [CLS]'s at NH * r.tok + h * T) */
typedef struct {
    size_t orow, first;
    int Tq;
} att_head_t;

static inline att_head_t att_head(att_row_t r, int s, int h, int NH, int cls) {
    if (cls) return (att_head_t){(size_t)s, r.tok * NH + (size_t)h * r.T, 1};
    return (att_head_t){r.tok, r.att + (size_t)h * r.T * r.T, (int)r.T};
}

/* The heads of the rows, shared by the threads (dynamic: a packed batch's heads differ in cost as
 * their rows' lengths squared); row s's heads at stream offset + s*NH*P*P. cls: the [CLS] queries
 * alone (k_attention_forward_cls). */
static void attention_forward_run(float *out, float *att, const float *qkv, const float *mask_add,
                                  const size_t *rows, int n, int T, int C, int NH, int P, float p,
                                  uint64_t seed, uint64_t offset, int cls) {
    int HS = C / NH;
    long work;
    int longest = rows_longest(rows, n, T, NH, HS, cls, &work);
    assert(longest <= P);
#pragma omp parallel if (work > PAR_HEADS)
    {
        float *room = head_room(longest, HS);
        float w[ATT_ROWS];
#pragma omp for schedule(dynamic)
        for (int sh = 0; sh < n * NH; sh++) {
            int s = sh / NH, h = sh % NH;
            att_row_t r = att_row(rows, n, T, NH, s);
            att_head_t a = att_head(r, s, h, NH, cls);
            head_forward(out + a.orow * C + h * HS, att ? att + a.first : NULL, qkv + r.tok * 3 * C + h * HS,
                         mask_add ? mask_add + r.tok : NULL, (int)r.T, a.Tq, C, HS, P, p, seed,
                         offset + ((uint64_t)s * NH + h) * P * P, w, room);
        }
        free(room);
    }
}

/* One head of one row's backward: dq (row stride 3C; dk = dq + C, dv = dq + 2C) += the gradient
 * from go [Tq, HS] (row stride C), the gradient of its first Tq queries' outputs (T: all; 1: [CLS],
 * the others' taken as zero), its Tq x T probabilities a (with p > 0, the forward's dropout marks
 * in their sign bits: dropout_mark); s: Tq x T floats of scratch, u: T. acc 0: dq, dk, dv written
 * instead (each product's chain, without the + 0 of a cleared one; dq's rows past Tq zero). With
 * Tq = 1 each product's chain is the first term of the whole one, whose other terms are the
 * zero gradients' exact zeros: the same values. */
static void head_backward(float *dq, float *s, float *u, const float *go, const float *q, const float *a,
                          int T, int Tq, int C, int HS, float p, float *room, int acc) {
    int C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS), keep = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    const float *k = q + C, *v = q + 2 * C;
    float *dk = dq + C, *dv = dq + 2 * C;
    size_t TT = (size_t)Tq * T;
    /* dV += dropout(att)^T @ dout */
    if (p > 0.0f)
        for (size_t e = 0; e < TT; e++) s[e] = signbit(a[e]) ? 0.0f : a[e] * keep;
    else
        memcpy(s, a, sizeof(float) * TT);
    head_mm(1, 0, T, HS, Tq, s, T, go, C, acc, dv, C3, room);
    /* datt = (dout @ V^T) * dropout factor; softmax backward row by row (u: the row's probabilities) */
    head_mm(0, 1, Tq, T, HS, go, C, v, C3, 0, s, T, room);
    for (int i = 0; i < Tq; i++) {
        float *si = s + (size_t)i * T;
        const float *ai = a + (size_t)i * T;
        if (p > 0.0f)
            for (int j = 0; j < T; j++) {
                si[j] *= signbit(ai[j]) ? 0.0f : keep;
                u[j] = fabsf(ai[j]);
            }
        else
            memcpy(u, ai, sizeof(float) * T);
        float dot = dot16f(si, u, T);
        for (int j = 0; j < T; j++) si[j] = u[j] * (si[j] - dot) * scale;
    }
    /* dQ += dpre @ K ; dK += dpre^T @ Q */
    head_mm(0, 0, Tq, HS, T, s, T, k, C3, acc, dq, C3, room);
    head_mm(1, 0, T, HS, Tq, s, T, q, C3, acc, dk, C3, room);
    if (!acc)
        for (int i = Tq; i < T; i++) memset(dq + (size_t)i * C3, 0, sizeof(float) * HS);
}

static void attention_backward_run(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                   const float *att, const size_t *rows, int n, int T, int C, int NH, int P,
                                   float p, int acc, int cls) {
    int HS = C / NH;
    long work;
    int longest = rows_longest(rows, n, T, NH, HS, cls, &work);
    assert(longest <= P);
#pragma omp parallel if (work > PAR_HEADS)
    {
        float *room = head_room(longest, HS);
        /* a head's Tq x T scratch of its own, reused by each head the thread takes, so it stays in
         * the cache (a slot of scratch a head was written to memory and read back: at 32 x 256
         * tokens of MiniLM, 100 MB a layer); the scratch slot without the memory ([CLS] alone: no
         * slot, a row on the stack) */
        float *own = cls ? NULL : malloc(sizeof(float) * (size_t)longest * longest), u[longest], row[longest];
#pragma omp for schedule(dynamic)
        for (int sh = 0; sh < n * NH; sh++) {
            int s = sh / NH, h = sh % NH;
            att_row_t r = att_row(rows, n, T, NH, s);
            att_head_t a = att_head(r, s, h, NH, cls); /* a.first: this head's att[0][0] (and its scratch) */
            head_backward(dqkv + r.tok * 3 * C + h * HS, cls ? row : own ? own : scratch + a.first, u,
                          dout + a.orow * C + h * HS, qkv + r.tok * 3 * C + h * HS, att + a.first, (int)r.T, a.Tq, C,
                          HS, p, room, acc);
        }
        free(own);
        free(room);
    }
}

void k_attention_forward(float *out, float *att, const float *qkv, const float *mask_add, int B, int T,
                         int C, int NH, int P, float p, uint64_t seed, uint64_t offset) {
    attention_forward_run(out, att, qkv, mask_add, NULL, B, T, C, NH, P, p, seed, offset, 0);
}

void k_attention_forward_nokeep(float *out, const float *qkv, const float *mask_add, int B, int T,
                                int C, int NH, int P, float p, uint64_t seed, uint64_t offset) {
    attention_forward_run(out, NULL, qkv, mask_add, NULL, B, T, C, NH, P, p, seed, offset, 0);
}

void k_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                          const float *att, int B, int T, int C, int NH, int P, float p,
                          uint64_t seed, uint64_t offset) {
    (void)seed, (void)offset; /* the mask is in att's signs */
    attention_backward_run(dqkv, scratch, dout, qkv, att, NULL, B, T, C, NH, P, p, 1, 0);
}

void k_attention_backward_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                              const float *att, int B, int T, int C, int NH, int P, float p,
                              uint64_t seed, uint64_t offset) {
    (void)seed, (void)offset;
    attention_backward_run(dqkv, scratch, dout, qkv, att, NULL, B, T, C, NH, P, p, 0, 0);
}

void k_attention_forward_rows(float *out, float *att, const float *qkv, const size_t *rows, int n, int C,
                              int NH, int P, float p, uint64_t seed, uint64_t offset) {
    attention_forward_run(out, att, qkv, NULL, rows, n, 0, C, NH, P, p, seed, offset, 0);
}

void k_attention_backward_rows(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, const size_t *rows, int n, int C, int NH, int P, float p,
                               uint64_t seed, uint64_t offset) {
    (void)seed, (void)offset;
    attention_backward_run(dqkv, scratch, dout, qkv, att, rows, n, 0, C, NH, P, p, 1, 0);
}

void k_attention_backward_rows_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                   const float *att, const size_t *rows, int n, int C, int NH, int P, float p,
                                   uint64_t seed, uint64_t offset) {
    (void)seed, (void)offset;
    attention_backward_run(dqkv, scratch, dout, qkv, att, rows, n, 0, C, NH, P, p, 0, 0);
}

void k_attention_forward_cls(float *out, float *att, const float *qkv, const float *mask_add, const size_t *rows,
                             int n, int T, int C, int NH, int P, float p, uint64_t seed, uint64_t offset) {
    attention_forward_run(out, att, qkv, mask_add, rows, n, T, C, NH, P, p, seed, offset, 1);
}

void k_attention_backward_cls(float *dqkv, const float *dout, const float *qkv, const float *att,
                              const size_t *rows, int n, int T, int C, int NH, int P, float p, uint64_t seed,
                              uint64_t offset) {
    (void)seed, (void)offset; /* the mask is in att's signs */
    attention_backward_run(dqkv, NULL, dout, qkv, att, rows, n, T, C, NH, P, p, 0, 1);
}

/* ---- pointwise ----------------------------------------------------------------------------------- */

static inline float gelu(float x) { return 0.5f * x * (1.0f + verff(x * (float)M_SQRT1_2)); }

void k_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd if (parallel: n > PAR_MIN) /* a bare if() would also turn simd off */
    for (size_t i = 0; i < n; i++) out[i] = gelu(inp[i]);
}

/* k_gelu_forward in place on the calling thread (the fused feed-forward's act) */
static void gelu_inplace(float *x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = gelu(x[i]);
}

int k_ffn_forward_nokeep(float *out, const float *inp, const float *w1, const float *b1, const float *w2,
                         const float *b2, int N, int C, int I) {
    return k_skinny_ffn_forward(out, inp, w1, b1, w2, b2, N, C, I, gelu_inplace);
}

/* GELU's derivative at x */
static inline float gelu_grad(float x) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    float cdf = 0.5f * (1.0f + verff(x * (float)M_SQRT1_2));
    float pdf = inv_sqrt_2pi * vexpf(-0.5f * x * x);
    return cdf + x * pdf;
}

void k_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd if (parallel: n > PAR_MIN) /* a bare if() would also turn simd off */
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_grad(inp[i]);
}

void k_gelu_backward_set(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd if (parallel: n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_grad(inp[i]);
}

void k_tanh_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void k_tanh_backward(float *dinp, const float *out, const float *dout, size_t n) {
#pragma omp parallel for if (n > PAR_CHEAP)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* Hidden-state dropout: the [B,T,C] tensor is B rows of T*C elements whose row b starts at stream
 * index offset + b*P*C. Threads take chunks of 1024 elements; a chunk's mask depends only on the
 * elements' indices, so the split does not change it. */
#define DROP_CHUNK 1024

/* dinp[0..m) += dout[0..m) * the factor of elements e0.. of dropout_uniforms's layout (set: dinp
 * written, 0 where dropped) */
static void dropout_accumulate(float *dinp, const float *dout, size_t m, float p, uint64_t seed,
                               uint64_t start, uint64_t W, uint64_t stride, uint64_t e0, int set) {
    float scale = 1.0f / (1.0f - p);
    float u[256];
    for (size_t done = 0; done < m; done += 256) {
        size_t mm = m - done < 256 ? m - done : 256;
        dropout_uniforms(u, seed, start, W, stride, e0 + done, mm);
        if (set)
            for (size_t i = 0; i < mm; i++) dinp[done + i] = u[i] > p ? dout[done + i] * scale : 0.0f;
        else
            for (size_t i = 0; i < mm; i++)
                if (u[i] > p) dinp[done + i] += dout[done + i] * scale;
    }
}

/* dst += src (set: dst = src) */
static void add_or_copy(float *dst, const float *src, size_t n, int set) {
    if (set) memcpy(dst, src, sizeof(float) * n);
    else k_accumulate(dst, src, n);
}

void k_dropout_forward(float *out, const float *inp, int B, int T, int C, int P, float p,
                       uint64_t seed, uint64_t offset) {
    assert(T <= P);
    size_t n = (size_t)B * T * C;
    if (out != inp) memcpy(out, inp, sizeof(float) * n);
    if (p <= 0.0f) return;
    uint64_t W = (uint64_t)T * C, stride = (uint64_t)P * C;
    long nchunks = (long)((n + DROP_CHUNK - 1) / DROP_CHUNK);
#pragma omp parallel for if (n > PAR_DROPOUT)
    for (long k = 0; k < nchunks; k++) {
        size_t s = (size_t)k * DROP_CHUNK, m = n - s < DROP_CHUNK ? n - s : DROP_CHUNK;
        dropout_apply(out + s, m, p, seed, offset, W, stride, s);
    }
}

static void dropout_backward(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                             uint64_t seed, uint64_t offset, int set) {
    assert(T <= P);
    size_t n = (size_t)B * T * C;
    if (p <= 0.0f) {
        add_or_copy(dinp, dout, n, set);
        return;
    }
    uint64_t W = (uint64_t)T * C, stride = (uint64_t)P * C;
    long nchunks = (long)((n + DROP_CHUNK - 1) / DROP_CHUNK);
#pragma omp parallel for if (n > PAR_DROPOUT)
    for (long k = 0; k < nchunks; k++) {
        size_t s = (size_t)k * DROP_CHUNK, m = n - s < DROP_CHUNK ? n - s : DROP_CHUNK;
        dropout_accumulate(dinp + s, dout + s, m, p, seed, offset, W, stride, s, set);
    }
}

void k_dropout_backward(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                        uint64_t seed, uint64_t offset) {
    dropout_backward(dinp, dout, B, T, C, P, p, seed, offset, 0);
}

void k_dropout_backward_set(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                            uint64_t seed, uint64_t offset) {
    dropout_backward(dinp, dout, B, T, C, P, p, seed, offset, 1);
}

/* The chunks of a packed batch's rows (bert_kernels.h), each row's from its start as
 * k_dropout_forward cuts a batch of one: first[s] is row s's first chunk, first[n] the count */
static long rows_chunks(long *first, const size_t *len, int n, int C) {
    first[0] = 0;
    for (int s = 0; s < n; s++)
        first[s + 1] = first[s] + (long)((len[s] * (size_t)C + DROP_CHUNK - 1) / DROP_CHUNK);
    return first[n];
}

/* the row of chunk k: the last s with first[s] <= k */
static int rows_chunk_row(const long *first, int n, long k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (first[mid] <= k) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* The rows' chunks, shared by the threads: dst = dropout(dst) in place (src NULL), or dst += the
 * factor times src (the backward; set: dst written) */
static void dropout_rows_run(float *dst, const float *src, const size_t *rows, int n, int C, int P, float p,
                             uint64_t seed, uint64_t offset, int set) {
    const size_t *start = rows, *len = rows + n;
    long first[n + 1], nchunks = rows_chunks(first, len, n, C);
#pragma omp parallel for if (nchunks * DROP_CHUNK > PAR_DROPOUT)
    for (long k = 0; k < nchunks; k++) {
        int s = rows_chunk_row(first, n, k);
        size_t W = len[s] * C, e = (size_t)(k - first[s]) * DROP_CHUNK, m = W - e < DROP_CHUNK ? W - e : DROP_CHUNK;
        size_t at = start[s] * C + e;
        uint64_t o = offset + (uint64_t)s * P * C;
        if (src) dropout_accumulate(dst + at, src + at, m, p, seed, o, W, (uint64_t)P * C, e, set);
        else dropout_apply(dst + at, m, p, seed, o, W, (uint64_t)P * C, e);
    }
}

void k_dropout_forward_rows(float *out, const float *inp, const size_t *rows, int n, int C, int P, float p,
                            uint64_t seed, uint64_t offset) {
    if (out != inp)
        for (int s = 0; s < n; s++)
            memcpy(out + rows[s] * C, inp + rows[s] * C, sizeof(float) * rows[n + s] * C);
    if (p > 0.0f && n > 0) dropout_rows_run(out, NULL, rows, n, C, P, p, seed, offset, 0);
}

static void dropout_backward_rows(float *dinp, const float *dout, const size_t *rows, int n, int C, int P,
                                  float p, uint64_t seed, uint64_t offset, int set) {
    if (p <= 0.0f)
        for (int s = 0; s < n; s++) add_or_copy(dinp + rows[s] * C, dout + rows[s] * C, rows[n + s] * C, set);
    else if (n > 0)
        dropout_rows_run(dinp, dout, rows, n, C, P, p, seed, offset, set);
}

void k_dropout_backward_rows(float *dinp, const float *dout, const size_t *rows, int n, int C, int P, float p,
                             uint64_t seed, uint64_t offset) {
    dropout_backward_rows(dinp, dout, rows, n, C, P, p, seed, offset, 0);
}

void k_dropout_backward_rows_set(float *dinp, const float *dout, const size_t *rows, int n, int C, int P,
                                 float p, uint64_t seed, uint64_t offset) {
    dropout_backward_rows(dinp, dout, rows, n, C, P, p, seed, offset, 1);
}

void k_residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for if (n > PAR_CHEAP)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void k_accumulate(float *dst, const float *src, size_t n) {
#pragma omp parallel for if (n > PAR_CHEAP)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ---- [CLS] gather ------------------------------------------------------------------------------ */

void k_cls_forward(float *out, const float *inp, int B, int T, int C) {
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * C, inp + (size_t)b * T * C, sizeof(float) * C);
}

void k_cls_backward(float *dinp, const float *dout, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        float *g = dinp + (size_t)b * T * C;
        const float *d = dout + (size_t)b * C;
        for (int c = 0; c < C; c++) g[c] += d[c];
    }
}

/* ---- classification loss ----------------------------------------------------------------------- */

void k_crossentropy_forward(float *loss, float *probs, const float *logits, const int64_t *targets,
                            const float *weights, int B, int L) {
    double total = 0.0, wsum = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * L;
        float *pr = probs + (size_t)b * L;
        float mx = -INFINITY;
        for (int l = 0; l < L; l++)
            if (z[l] > mx) mx = z[l];
        double sum = 0.0;
        for (int l = 0; l < L; l++) {
            pr[l] = expf(z[l] - mx);
            sum += pr[l];
        }
        for (int l = 0; l < L; l++) pr[l] = (float)(pr[l] / sum);
        /* -log p_t from the log-sum-exp, exact even when p_t underflows */
        if (!targets) continue;
        double row = log(sum) - (double)(z[targets[b]] - mx);
        if (weights) {
            total += (double)weights[targets[b]] * row;
            wsum += weights[targets[b]];
        } else {
            total += row;
        }
    }
    if (loss) loss[0] = (float)(weights ? total / wsum : total / B);
}

void k_softmax_rows(float *probs, const float *logits, int B, int L) {
    k_crossentropy_forward(NULL, probs, logits, NULL, NULL, B, L); /* one softmax: the loss's */
}

void k_mask_to_additive(float *mask_add, const int64_t *mask, size_t n) {
    for (size_t i = 0; i < n; i++) mask_add[i] = (mask && mask[i] == 0) ? -FLT_MAX : 0.0f;
}

void k_crossentropy_backward(float *dlogits, const float *probs, const int64_t *targets,
                             const float *weights, int B, int L, float dloss) {
    float s = dloss / B;
    if (weights) { /* the weighted mean's denominator: sum of the batch's target weights */
        double wsum = 0.0;
        for (int b = 0; b < B; b++) wsum += weights[targets[b]];
        s = (float)(dloss / wsum);
    }
    for (int b = 0; b < B; b++) {
        const float *pr = probs + (size_t)b * L;
        float *g = dlogits + (size_t)b * L;
        float sb = weights ? s * weights[targets[b]] : s;
        for (int l = 0; l < L; l++) g[l] += sb * (pr[l] - (l == targets[b] ? 1.0f : 0.0f));
    }
}
