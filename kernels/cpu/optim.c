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


/* transformers v4: Adam step with denom sqrt(v)+eps, then p += -decay*p (neg_decay 0: no-op). */
static void adamw_transformers(float *restrict param, const float *restrict grad, float *restrict m,
                                        float *restrict v, size_t lo, size_t hi, k_adamw_hparams_t hp) {
    const float b1 = hp.beta1, b2 = hp.beta2, c1 = hp.one_minus_beta1, c2 = hp.one_minus_beta2;
    const float eps = hp.eps, neg_step = -hp.step_size;
    const float neg_decay = hp.decay != 0.0f ? -hp.decay : 0.0f;
#ifdef OPTIM_SSE
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2);
    const __m128 veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(neg_step), vdec = _mm_set1_ps(neg_decay);
    for (; lo + 4 <= hi; lo += 4) {
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
                                 float *restrict v, size_t lo, size_t hi, k_adamw_hparams_t hp) {
    const float b2 = hp.beta2, c1 = hp.one_minus_beta1, c2 = hp.one_minus_beta2;
    const float eps = hp.eps, neg_step = -hp.step_size, bc2_sqrt = hp.bc2_sqrt;
    const float keep = hp.decay != 0.0f ? hp.keep : 1.0f;
#ifdef OPTIM_SSE
    const __m128 vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2), vbc2 = _mm_set1_ps(bc2_sqrt);
    const __m128 veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(neg_step), vkeep = _mm_set1_ps(keep);
    for (; lo + 4 <= hi; lo += 4) {
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

void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp) {
    #pragma omp parallel if (n > 32768)
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (hp.decay_first) adamw_torch(param, grad, m, v, lo, hi, hp);
        else adamw_transformers(param, grad, m, v, lo, hi, hp);
    }
}

double k_sumsq_f32(const float *x, size_t n) {
    double s = 0.0;
    #pragma omp parallel for simd reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

void k_scale_f32(float *x, size_t n, float s) {
    #pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
