/* optim_kernels.h: the optimizer's math on raw pointers (AdamW update, squared-norm reduction,
 * gradient scaling). The CPU versions live in kernels/cpu/optim.c; a CUDA launcher keeps the same
 * signatures so a test can run both and compare. n: number of float32 elements. */
#ifndef BL_OPTIM_KERNELS_H
#define BL_OPTIM_KERNELS_H
#include <stddef.h>

/* Per-step scalars of an AdamW update, computed once per step (in double, then rounded) by the
 * runtime. Two variants share one kernel:
 *   transformers v4 AdamW: denom = sqrt(v) + eps;            p += -step_size * m / denom;
 *                          then p += -decay * p               (decay_first = 0, bc2_sqrt = 1)
 *   torch.optim.AdamW:     p *= 1 - decay;  denom = sqrt(v) / bc2_sqrt + eps;
 *                          p += -step_size * m / denom        (decay_first = 1)  */
typedef struct {
    float beta1, beta2;  /* moment decay rates */
    float one_minus_beta1, one_minus_beta2;
    float eps;
    float step_size;     /* transformers: lr*sqrt(1-b2^t)/(1-b1^t) (or lr); torch: lr/(1-b1^t) */
    float bc2_sqrt;      /* torch: sqrt(1-b2^t); transformers: 1 (unused) */
    float decay;         /* lr * weight_decay (0: no decay) */
    float keep;          /* torch: 1 - lr*weight_decay, rounded from double as torch does */
    int decay_first;     /* 1: torch variant; 0: transformers variant */
} k_adamw_hparams_t;

/* One AdamW step over n elements: updates param, m (first moment) and v (second moment) in place
 * from grad. param, grad, m, v: [n]. */
void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp);

/* Sum of squares of x[n], accumulated in double (for the global gradient norm). */
double k_sumsq_f32(const float *x, size_t n);

/* x[n] *= s. */
void k_scale_f32(float *x, size_t n, float s);

#endif
