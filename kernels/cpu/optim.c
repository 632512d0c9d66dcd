/* optim.c: CPU optimizer kernels (OpenMP): the fused AdamW update, the squared norm used by
 * gradient clipping, and in-place scaling. Rounding follows PyTorch's CPU kernels (float math,
 * addcdiv as p + (s*m)/denom) so the fixture comparisons stay at the float32 ulp level.
 * AdamW touches every parameter each step (22.7M for MiniLM), so its loop must vectorize. GCC
 * will not vectorize sqrtf while errno handling is on (the default), so on x86-64 the body is
 * written with AVX-512, AVX2+FMA or SSE intrinsics (16, 8 or 4 floats a group; a span's tail goes
 * through the same vector code, padded), with a scalar loop for other CPUs. Each element goes
 * through the same instructions wherever a span starts or ends, so skipping rows or splitting the
 * work between threads cannot change a bit. Each OpenMP thread takes one contiguous slice. */
#include "../optim_kernels.h"
#include <math.h>
#include <omp.h>
#if defined(__SSE2__)
#include <immintrin.h>
#define OPTIM_SSE 1
#endif


/* The vector loops below, written once on a few macros: AVX-512 (16 floats a group), AVX2 with FMA
 * (8) or SSE (4). With FMA the fused multiply-adds are written out, in the places GCC contracts the
 * plain formula (-march=native), so every CPU with FMA gives the same bits whatever its width;
 * tests/test_kernels.c checks every element against the formula in scalar code. */
#if defined(__AVX512F__)
#define ADAMW_GROUP 16
typedef __m512 adamw_vec;
#define AV_SET1 _mm512_set1_ps
#define AV_LOAD _mm512_loadu_ps
#define AV_STORE _mm512_storeu_ps
#define AV_MUL _mm512_mul_ps
#define AV_ADD _mm512_add_ps
#define AV_SUB _mm512_sub_ps
#define AV_DIV _mm512_div_ps
#define AV_SQRT _mm512_sqrt_ps
#define AV_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#elif defined(__AVX2__) && defined(__FMA__)
/* (Zen 3 and other CPUs without AVX-512: at SSE's 4 floats a group AdamW was 15% of a batch-3
 * training step there, 11.5% at 8) */
#define ADAMW_GROUP 8
typedef __m256 adamw_vec;
#define AV_SET1 _mm256_set1_ps
#define AV_LOAD _mm256_loadu_ps
#define AV_STORE _mm256_storeu_ps
#define AV_MUL _mm256_mul_ps
#define AV_ADD _mm256_add_ps
#define AV_SUB _mm256_sub_ps
#define AV_DIV _mm256_div_ps
#define AV_SQRT _mm256_sqrt_ps
#define AV_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#elif defined(OPTIM_SSE)
/* (without FMA, as the portable build: separate multiplies and adds, other bits than with FMA) */
#define ADAMW_GROUP 4
typedef __m128 adamw_vec;
#define AV_SET1 _mm_set1_ps
#define AV_LOAD _mm_loadu_ps
#define AV_STORE _mm_storeu_ps
#define AV_MUL _mm_mul_ps
#define AV_ADD _mm_add_ps
#define AV_SUB _mm_sub_ps
#define AV_DIV _mm_div_ps
#define AV_SQRT _mm_sqrt_ps
#define AV_FMA(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#endif

#ifdef ADAMW_GROUP
/* A span's last elements (fewer than a group) go through the same loop, in a group padded on the
 * stack (the padding's lanes compute harmlessly and are dropped), not through a scalar loop: with
 * -march=native GCC contracts multiply-adds into FMAs differently in a vector and a scalar loop, so
 * an element's bits would depend on where a span, a row or a thread slice ends (it did, on a Zen 3
 * without AVX-512: adamw_step_rows and 1- vs 2-thread training differed in the last bit). The
 * loops are kept out of line so the tail runs the very same code. */
typedef void (*adamw_loop_fn)(float *restrict, const float *restrict, float *restrict,
                              float *restrict, size_t, const k_adamw_hparams_t *);

/* transformers v4: Adam step with denom sqrt(v)+eps, then p += -decay*p (neg_decay 0: no-op).
 * n: a multiple of ADAMW_GROUP. */
__attribute__((noinline)) static void adamw_transformers_loop(float *restrict param,
                                                              const float *restrict grad,
                                                              float *restrict m, float *restrict v,
                                                              size_t n, const k_adamw_hparams_t *hp) {
    const adamw_vec vb1 = AV_SET1(hp->beta1), vb2 = AV_SET1(hp->beta2);
    const adamw_vec vc1 = AV_SET1(hp->one_minus_beta1), vc2 = AV_SET1(hp->one_minus_beta2);
    const adamw_vec veps = AV_SET1(hp->eps), vstep = AV_SET1(-hp->step_size);
    const adamw_vec vdec = AV_SET1(hp->decay != 0.0f ? -hp->decay : 0.0f);
    const adamw_vec vscale = AV_SET1(hp->grad_scale);
    for (size_t i = 0; i < n; i += ADAMW_GROUP) {
        adamw_vec g = AV_LOAD(grad + i);
        if (hp->grad_scaled) g = AV_MUL(g, vscale); /* what clipping would have stored */
        /* exp_avg.mul_(b1).add_(g, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2) */
        adamw_vec mi = AV_FMA(g, vc1, AV_MUL(AV_LOAD(m + i), vb1));
        adamw_vec vi = AV_FMA(AV_MUL(g, g), vc2, AV_MUL(AV_LOAD(v + i), vb2));
        adamw_vec denom = AV_ADD(AV_SQRT(vi), veps);
        adamw_vec p = AV_ADD(AV_LOAD(param + i), AV_DIV(AV_MUL(vstep, mi), denom));
        AV_STORE(m + i, mi);
        AV_STORE(v + i, vi);
        AV_STORE(param + i, AV_FMA(p, vdec, p));
    }
}

/* torch.optim.AdamW: p *= 1-lr*wd (keep 1: no-op), then the bias-corrected Adam step. */
__attribute__((noinline)) static void adamw_torch_loop(float *restrict param, const float *restrict grad,
                                                       float *restrict m, float *restrict v, size_t n,
                                                       const k_adamw_hparams_t *hp) {
    const adamw_vec vb2 = AV_SET1(hp->beta2), vc1 = AV_SET1(hp->one_minus_beta1);
    const adamw_vec vc2 = AV_SET1(hp->one_minus_beta2), vbc2 = AV_SET1(hp->bc2_sqrt);
    const adamw_vec veps = AV_SET1(hp->eps), vstep = AV_SET1(-hp->step_size);
    const adamw_vec vkeep = AV_SET1(hp->decay != 0.0f ? hp->keep : 1.0f);
    const adamw_vec vscale = AV_SET1(hp->grad_scale);
    for (size_t i = 0; i < n; i += ADAMW_GROUP) {
        adamw_vec g = AV_LOAD(grad + i), m0 = AV_LOAD(m + i);
        if (hp->grad_scaled) g = AV_MUL(g, vscale);
        /* exp_avg.lerp_(grad, 1-beta1), which for a weight < 0.5 is m + w*(g - m) */
        adamw_vec mi = AV_FMA(vc1, AV_SUB(g, m0), m0);
        adamw_vec vi = AV_FMA(AV_MUL(g, g), vc2, AV_MUL(AV_LOAD(v + i), vb2));
        adamw_vec denom = AV_ADD(AV_DIV(AV_SQRT(vi), vbc2), veps);
        adamw_vec step = AV_DIV(AV_MUL(vstep, mi), denom);
        AV_STORE(m + i, mi);
        AV_STORE(v + i, vi);
        AV_STORE(param + i, AV_FMA(AV_LOAD(param + i), vkeep, step));
    }
}

/* [lo, hi) through `loop`: the whole groups in place, the last elements padded to a group */
static void adamw_groups(adamw_loop_fn loop, float *param, const float *grad, float *m, float *v,
                         size_t lo, size_t hi, const k_adamw_hparams_t *hp) {
    size_t whole = (hi - lo) / ADAMW_GROUP * ADAMW_GROUP, left = hi - lo - whole;
    if (whole) loop(param + lo, grad + lo, m + lo, v + lo, whole, hp);
    if (!left) return;
    size_t at = lo + whole;
    float p4[ADAMW_GROUP] = {0}, g4[ADAMW_GROUP] = {0}, m4[ADAMW_GROUP] = {0}, v4[ADAMW_GROUP] = {0};
    for (size_t j = 0; j < left; j++) {
        p4[j] = param[at + j];
        g4[j] = grad[at + j];
        m4[j] = m[at + j];
        v4[j] = v[at + j];
    }
    loop(p4, g4, m4, v4, ADAMW_GROUP, hp);
    for (size_t j = 0; j < left; j++) {
        param[at + j] = p4[j];
        m[at + j] = m4[j];
        v[at + j] = v4[j];
    }
}

static void adamw_transformers(float *param, const float *grad, float *m, float *v, size_t lo,
                               size_t hi, const k_adamw_hparams_t *hp) {
    adamw_groups(adamw_transformers_loop, param, grad, m, v, lo, hi, hp);
}

static void adamw_torch(float *param, const float *grad, float *m, float *v, size_t lo, size_t hi,
                        const k_adamw_hparams_t *hp) {
    adamw_groups(adamw_torch_loop, param, grad, m, v, lo, hi, hp);
}
#else
/* Other CPUs: scalar loops (the same code for every element, so spans cannot change a bit). */
static void adamw_transformers(float *restrict param, const float *restrict grad, float *restrict m,
                               float *restrict v, size_t lo, size_t hi, const k_adamw_hparams_t *hp) {
    const float b1 = hp->beta1, b2 = hp->beta2, c1 = hp->one_minus_beta1, c2 = hp->one_minus_beta2;
    const float eps = hp->eps, neg_step = -hp->step_size;
    const float neg_decay = hp->decay != 0.0f ? -hp->decay : 0.0f;
    for (size_t i = lo; i < hi; i++) {
        float g = hp->grad_scaled ? grad[i] * hp->grad_scale : grad[i];
        /* exp_avg.mul_(b1).add_(g, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2) */
        float mi = m[i] * b1 + c1 * g;
        float vi = v[i] * b2 + c2 * (g * g);
        float denom = sqrtf(vi) + eps;
        float p = param[i] + (neg_step * mi) / denom;
        m[i] = mi;
        v[i] = vi;
        param[i] = p + neg_decay * p;
    }
}

/* torch.optim.AdamW: p *= 1-lr*wd (keep 1: no-op), then the bias-corrected Adam step. */
static void adamw_torch(float *restrict param, const float *restrict grad, float *restrict m,
                        float *restrict v, size_t lo, size_t hi, const k_adamw_hparams_t *hp) {
    const float b2 = hp->beta2, c1 = hp->one_minus_beta1, c2 = hp->one_minus_beta2;
    const float eps = hp->eps, neg_step = -hp->step_size, bc2_sqrt = hp->bc2_sqrt;
    const float keep = hp->decay != 0.0f ? hp->keep : 1.0f;
    for (size_t i = lo; i < hi; i++) {
        float g = hp->grad_scaled ? grad[i] * hp->grad_scale : grad[i];
        float p = param[i] * keep;
        /* exp_avg.lerp_(grad, 1-beta1), which for a weight < 0.5 is m + w*(g - m) */
        float mi = m[i] + c1 * (g - m[i]);
        float vi = v[i] * b2 + c2 * (g * g);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        param[i] = p + (neg_step * mi) / denom;
    }
}
#endif

static void adamw_span(float *param, const float *grad, float *m, float *v, size_t lo, size_t hi,
                       const k_adamw_hparams_t *hp) {
    if (lo >= hi) return;
    if (hp->decay_first) adamw_torch(param, grad, m, v, lo, hi, hp);
    else adamw_transformers(param, grad, m, v, lo, hi, hp);
}

/* live == NULL: every element, each thread one contiguous slice. Otherwise the first rows*C elements
 * are rows of C: a row not live whose gradient is all zero (known zero when `touched` says the
 * gradient never wrote it; read otherwise) keeps zero moments and its values when hp.decay == 0, so
 * it is skipped; a row with a non-zero gradient becomes live first, and stays live (updated every
 * step from then on, as without skipping). The threads then split the work that is left (the live
 * rows and everything after the table) evenly, not the elements: most rows are skipped. */
static void adamw_run(float *param, const float *grad, float *m, float *v, size_t n,
                      k_adamw_hparams_t hp, unsigned char *live, const unsigned char *touched,
                      size_t rows, size_t C) {
    const unsigned char *skip = hp.decay == 0.0f ? live : NULL;
    #pragma omp parallel if (n > 32768)
    {
        if (live) {
            #pragma omp for schedule(static)
            for (size_t r = 0; r < rows; r++) {
                if (live[r] || (touched && !touched[r])) continue;
                const float *g = grad + r * C;
                int nz = 0;
                for (size_t c = 0; c < C; c++) nz |= g[c] != 0.0f; /* NaN counts as non-zero */
                if (nz) live[r] = 1;
            } /* (a barrier: every row's flag is set before any row is updated) */
        }
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        if (!skip) {
            adamw_span(param, grad, m, v, n * t / nt, n * (t + 1) / nt, &hp);
        } else {
            /* the work in order: the live rows, then [rows*C, n); this thread takes [w0, w1) of it */
            size_t table = rows * C, nlive = 0;
            for (size_t r = 0; r < rows; r++) nlive += skip[r] != 0;
            size_t work = nlive * C + (n - table), w0 = work * t / nt, w1 = work * (t + 1) / nt, at = 0;
            for (size_t r = 0; r < rows && at < w1; r++) {
                if (!skip[r]) continue;
                if (at + C > w0) {
                    size_t a = at > w0 ? 0 : w0 - at, b = at + C < w1 ? C : w1 - at;
                    adamw_span(param, grad, m, v, r * C + a, r * C + b, &hp);
                }
                at += C;
            }
            if (w1 > at) adamw_span(param, grad, m, v, table + (w0 > at ? w0 - at : 0), table + (w1 - at), &hp);
        }
    }
}

void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp) {
    adamw_run(param, grad, m, v, n, hp, NULL, NULL, 0, 1);
}

void k_adamw_step_rows(float *param, const float *grad, float *m, float *v, size_t n,
                       k_adamw_hparams_t hp, unsigned char *live, const unsigned char *touched,
                       size_t rows, size_t C) {
    if (rows * C > n || C == 0) live = NULL; /* not a row layout of these buffers: every element */
    adamw_run(param, grad, m, v, n, hp, live, touched, rows, C);
}

/* Sum of squares in a fixed order, whatever the thread count: blocks of SUMSQ_BLOCK elements, each
 * summed in 8 double accumulators (element i of the block into i % 8; a float squared is exact in
 * double, so FMA or not gives the same sums) combined pairwise; block sums added in order within
 * SUMSQ_CHUNKS fixed chunks of blocks, the chunk sums in order. A block of zeros sums to exactly +0,
 * which leaves a running sum unchanged: so skipping such blocks (sumsq_run's `skip`) changes nothing. */
#define SUMSQ_BLOCK 1024
#define SUMSQ_CHUNKS 64

static double sumsq_block(const float *x, size_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; j < 8 && i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#if defined(__AVX512F__)
/* Four whole blocks at once, each exactly as sumsq_block sums it: lane j of a block's accumulator is
 * its acc[j] (the same additions in the same order), four independent chains instead of one, so
 * the adds' latency no longer bounds the loop. */
static void sumsq_blocks4(const float *const x[4], double out[4]) {
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < SUMSQ_BLOCK; i += 8) {
        __m512d d0 = _mm512_cvtps_pd(_mm256_loadu_ps(x[0] + i)), d1 = _mm512_cvtps_pd(_mm256_loadu_ps(x[1] + i));
        __m512d d2 = _mm512_cvtps_pd(_mm256_loadu_ps(x[2] + i)), d3 = _mm512_cvtps_pd(_mm256_loadu_ps(x[3] + i));
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
        a2 = _mm512_fmadd_pd(d2, d2, a2);
        a3 = _mm512_fmadd_pd(d3, d3, a3);
    }
    double acc[4][8];
    _mm512_storeu_pd(acc[0], a0);
    _mm512_storeu_pd(acc[1], a1);
    _mm512_storeu_pd(acc[2], a2);
    _mm512_storeu_pd(acc[3], a3);
    for (int b = 0; b < 4; b++) {
        const double *c = acc[b];
        out[b] = ((c[0] + c[4]) + (c[1] + c[5])) + ((c[2] + c[6]) + (c[3] + c[7]));
    }
}
#define SUMSQ_GROUP 4
#elif defined(__AVX2__)
/* The same with AVX2: a block's acc[0..3] and acc[4..7] in two registers, eight chains. */
static void sumsq_blocks4(const float *const x[4], double out[4]) {
    __m256d a[4][2];
    for (int b = 0; b < 4; b++) a[b][0] = a[b][1] = _mm256_setzero_pd();
    for (size_t i = 0; i < SUMSQ_BLOCK; i += 8)
        for (int b = 0; b < 4; b++) {
            __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x[b] + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x[b] + i + 4));
            a[b][0] = _mm256_add_pd(_mm256_mul_pd(lo, lo), a[b][0]);
            a[b][1] = _mm256_add_pd(_mm256_mul_pd(hi, hi), a[b][1]);
        }
    for (int b = 0; b < 4; b++) {
        double c[8];
        _mm256_storeu_pd(c, a[b][0]);
        _mm256_storeu_pd(c + 4, a[b][1]);
        out[b] = ((c[0] + c[4]) + (c[1] + c[5])) + ((c[2] + c[6]) + (c[3] + c[7]));
    }
}
#define SUMSQ_GROUP 4
#else
#define SUMSQ_GROUP 1
#endif

/* skip: NULL, or rows x C leading elements in rows, of which rows with skip[r] == 0 are all zero */
static double sumsq_run(const float *x, size_t n, const unsigned char *nonzero, size_t rows, size_t C) {
    size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    double part[SUMSQ_CHUNKS];
    /* dynamic: the chunks over the word-embedding table are mostly skipped rows, so a static split
     * gave one thread all the work (0.0% and 1.1% of the two threads' samples; now 0.57% each);
     * each chunk's sum, and their order, do not depend on which thread ran it */
    #pragma omp parallel for schedule(dynamic, 1) if (n > 65536)
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        double s = 0.0;
        const float *pend[SUMSQ_GROUP]; /* whole blocks read, not yet summed (in order) */
        int np = 0;
        for (size_t b = nb * c / SUMSQ_CHUNKS; b < nb * (c + 1) / SUMSQ_CHUNKS; b++) {
            size_t lo = b * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
            if (nonzero && hi <= rows * C) { /* a block of zero rows only: its sum is +0 */
                int any = 0;
                for (size_t r = lo / C; r <= (hi - 1) / C && !any; r++) any = nonzero[r];
                if (!any) continue;
            }
#if SUMSQ_GROUP > 1
            if (hi - lo == SUMSQ_BLOCK) {
                pend[np++] = x + lo;
                if (np == SUMSQ_GROUP) {
                    double sums[SUMSQ_GROUP];
                    sumsq_blocks4(pend, sums);
                    for (int k = 0; k < SUMSQ_GROUP; k++) s += sums[k];
                    np = 0;
                }
                continue;
            }
#endif
            for (int k = 0; k < np; k++) s += sumsq_block(pend[k], SUMSQ_BLOCK);
            np = 0;
            s += sumsq_block(x + lo, hi - lo);
        }
        for (int k = 0; k < np; k++) s += sumsq_block(pend[k], SUMSQ_BLOCK);
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < SUMSQ_CHUNKS; c++) s += part[c];
    return s;
}

double k_sumsq_f32(const float *x, size_t n) { return sumsq_run(x, n, NULL, 0, 1); }

double k_sumsq_rows_f32(const float *x, size_t n, const unsigned char *nonzero, size_t rows, size_t C) {
    if (rows * C > n || C == 0) nonzero = NULL;
    return sumsq_run(x, n, nonzero, rows, C);
}

void k_scale_f32(float *x, size_t n, float s) {
    #pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
