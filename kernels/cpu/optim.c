/* optim.c: CPU optimizer kernels (OpenMP loops): the fused AdamW update, the squared norm used by
 * gradient clipping, and in-place scaling. Rounding follows PyTorch's CPU kernels (float math,
 * addcdiv as p + (s*m)/denom) so the fixture comparisons stay at the float32 ulp level. */
#include "../optim_kernels.h"
#include <math.h>

void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp) {
    const float neg_step = -hp.step_size;
    if (hp.decay_first) {
        #pragma omp parallel for if (n > 32768)
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            float p = hp.decay != 0.0f ? param[i] * hp.keep : param[i];
            /* torch: exp_avg.lerp_(grad, 1-beta1), which for weight < 0.5 is m + w*(g - m) */
            float mi = m[i] + hp.one_minus_beta1 * (g - m[i]);
            float vi = v[i] * hp.beta2 + hp.one_minus_beta2 * (g * g);
            float denom = sqrtf(vi) / hp.bc2_sqrt + hp.eps;
            m[i] = mi;
            v[i] = vi;
            param[i] = p + (neg_step * mi) / denom;
        }
    } else {
        const float neg_decay = -hp.decay;
        #pragma omp parallel for if (n > 32768)
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            /* transformers: exp_avg.mul_(b1).add_(g, alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2) */
            float mi = m[i] * hp.beta1 + hp.one_minus_beta1 * g;
            float vi = v[i] * hp.beta2 + hp.one_minus_beta2 * (g * g);
            float denom = sqrtf(vi) + hp.eps;
            float p = param[i] + (neg_step * mi) / denom;
            if (hp.decay != 0.0f) p = p + neg_decay * p;
            m[i] = mi;
            v[i] = vi;
            param[i] = p;
        }
    }
}

double k_sumsq_f32(const float *x, size_t n) {
    double s = 0.0;
    #pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

void k_scale_f32(float *x, size_t n, float s) {
    #pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
