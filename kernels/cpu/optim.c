/* optim.c: CPU optimizer kernels (OpenMP): the fused AdamW update, the squared norm used by
 * gradient clipping, and in-place scaling. Rounding follows PyTorch's CPU kernels (float math,
 * addcdiv as p + (s*m)/denom) so the fixture comparisons stay at the float32 ulp level.
 * AdamW touches every parameter each step (22.7M for MiniLM), so its loop must vectorize. GCC
 * will not vectorize sqrtf while errno handling is on (the default), so on x86-64 the body is
 * written with SSE intrinsics, 4 floats at a time (same operations, same order, no FMA), with the
 * scalar loop for the tail and for other CPUs. Each OpenMP thread takes one contiguous slice. */
#include "../optim_kernels.h"
#include <math.h>
#include <omp.h>
#if defined(__SSE2__)
#include <immintrin.h>
#define OPTIM_SSE 1
#endif


/* Skipping rows that cannot change (k_adamw_step_rows): inside the 4-wide loop, groups lying wholly
 * in a row r < rows with live[r] == 0 are jumped over, never past the loop's last group. Every other
 * element goes through the same code (vector or scalar tail, from the same thread slice) as without
 * skipping, so the results are the same bit for bit; a skipped element's update would be the
 * identity anyway (zero moments, zero gradient, no decay). */
#define SKIP_DEAD_GROUPS()                                                                          \
    if (live && lo / C < rows && !live[lo / C]) {                                                  \
        size_t end_ = (lo / C + 1) * C, k_ = (end_ - lo) / 4, kmax_ = (hi - lo) / 4;                \
        if (k_ > kmax_) k_ = kmax_;                                                                 \
        if (k_ > 0) {                                                                               \
            lo += 4 * (k_ - 1); /* the loop adds the last 4 */                                      \
            continue;                                                                               \
        }                                                                                           \
    }

/* transformers v4: Adam step with denom sqrt(v)+eps, then p += -decay*p (neg_decay 0: no-op). */
static void adamw_transformers(float *restrict param, const float *restrict grad, float *restrict m,
                                        float *restrict v, size_t lo, size_t hi, k_adamw_hparams_t hp,
                               const unsigned char *live, size_t rows, size_t C) {
    const float b1 = hp.beta1, b2 = hp.beta2, c1 = hp.one_minus_beta1, c2 = hp.one_minus_beta2;
    const float eps = hp.eps, neg_step = -hp.step_size;
    const float neg_decay = hp.decay != 0.0f ? -hp.decay : 0.0f;
#ifdef OPTIM_SSE
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2);
    const __m128 veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(neg_step), vdec = _mm_set1_ps(neg_decay);
    for (; lo + 4 <= hi; lo += 4) {
        SKIP_DEAD_GROUPS();
        __m128 g = _mm_loadu_ps(grad + lo);
        __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + lo), vb1), _mm_mul_ps(vc1, g));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + lo), vb2), _mm_mul_ps(vc2, _mm_mul_ps(g, g)));
        __m128 denom = _mm_add_ps(_mm_sqrt_ps(vi), veps);
        __m128 p = _mm_add_ps(_mm_loadu_ps(param + lo), _mm_div_ps(_mm_mul_ps(vstep, mi), denom));
        _mm_storeu_ps(m + lo, mi);
        _mm_storeu_ps(v + lo, vi);
        _mm_storeu_ps(param + lo, _mm_add_ps(p, _mm_mul_ps(vdec, p)));
    }
#endif
    for (size_t i = lo; i < hi; i++) {
        float g = grad[i];
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
                                 float *restrict v, size_t lo, size_t hi, k_adamw_hparams_t hp,
                               const unsigned char *live, size_t rows, size_t C) {
    const float b2 = hp.beta2, c1 = hp.one_minus_beta1, c2 = hp.one_minus_beta2;
    const float eps = hp.eps, neg_step = -hp.step_size, bc2_sqrt = hp.bc2_sqrt;
    const float keep = hp.decay != 0.0f ? hp.keep : 1.0f;
#ifdef OPTIM_SSE
    const __m128 vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2), vbc2 = _mm_set1_ps(bc2_sqrt);
    const __m128 veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(neg_step), vkeep = _mm_set1_ps(keep);
    for (; lo + 4 <= hi; lo += 4) {
        SKIP_DEAD_GROUPS();
        __m128 g = _mm_loadu_ps(grad + lo), m0 = _mm_loadu_ps(m + lo);
        __m128 p = _mm_mul_ps(_mm_loadu_ps(param + lo), vkeep);
        __m128 mi = _mm_add_ps(m0, _mm_mul_ps(vc1, _mm_sub_ps(g, m0)));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + lo), vb2), _mm_mul_ps(vc2, _mm_mul_ps(g, g)));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
        _mm_storeu_ps(m + lo, mi);
        _mm_storeu_ps(v + lo, vi);
        _mm_storeu_ps(param + lo, _mm_add_ps(p, _mm_div_ps(_mm_mul_ps(vstep, mi), denom)));
    }
#endif
    for (size_t i = lo; i < hi; i++) {
        float g = grad[i];
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

/* live == NULL: every element. Otherwise the first rows*C elements are rows of C; a row not yet
 * live whose gradient is all zero keeps zero moments and its values (when hp.decay == 0), so it is
 * skipped; a row with a non-zero gradient becomes live first, and stays live (updated every step
 * from then on, as without skipping). The thread slices are k_adamw_step's, so both give the same
 * numbers. */
static void adamw_run(float *param, const float *grad, float *m, float *v, size_t n,
                      k_adamw_hparams_t hp, unsigned char *live, size_t rows, size_t C) {
    #pragma omp parallel if (n > 32768)
    {
        if (live) {
            #pragma omp for schedule(static)
            for (size_t r = 0; r < rows; r++) {
                if (live[r]) continue;
                const float *g = grad + r * C;
                int nz = 0;
                for (size_t c = 0; c < C; c++) nz |= g[c] != 0.0f; /* NaN counts as non-zero */
                if (nz) live[r] = 1;
            } /* (a barrier: every row's flag is set before any slice is updated) */
        }
        const unsigned char *skip = hp.decay == 0.0f ? live : NULL;
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (hp.decay_first) adamw_torch(param, grad, m, v, lo, hi, hp, skip, rows, C);
        else adamw_transformers(param, grad, m, v, lo, hi, hp, skip, rows, C);
    }
}

void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp) {
    adamw_run(param, grad, m, v, n, hp, NULL, 0, 1);
}

void k_adamw_step_rows(float *param, const float *grad, float *m, float *v, size_t n,
                       k_adamw_hparams_t hp, unsigned char *live, size_t rows, size_t C) {
    if (rows * C > n || C == 0) live = NULL; /* not a row layout of these buffers: every element */
    adamw_run(param, grad, m, v, n, hp, live, rows, C);
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
    for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* skip: NULL, or rows x C leading elements in rows, of which rows with skip[r] == 0 are all zero */
static double sumsq_run(const float *x, size_t n, const unsigned char *nonzero, size_t rows, size_t C) {
    size_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    double part[SUMSQ_CHUNKS];
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        double s = 0.0;
        for (size_t b = nb * c / SUMSQ_CHUNKS; b < nb * (c + 1) / SUMSQ_CHUNKS; b++) {
            size_t lo = b * SUMSQ_BLOCK, hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
            if (nonzero && hi <= rows * C) { /* a block of zero rows only: its sum is +0 */
                int any = 0;
                for (size_t r = lo / C; r <= (hi - 1) / C && !any; r++) any = nonzero[r];
                if (!any) continue;
            }
            s += sumsq_block(x + lo, hi - lo);
        }
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
