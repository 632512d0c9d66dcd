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
    int grad_scaled;     /* 1: the gradient is used as grad * grad_scale (a clipping coefficient
                            left to the step, bert_clip_grad_norm_deferred); 0: as it is */
    float grad_scale;
} k_adamw_hparams_t;

/* One AdamW step over n elements: updates param, m (first moment) and v (second moment) in place
 * from grad. param, grad, m, v: [n]. */
void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, k_adamw_hparams_t hp);

/* k_adamw_step, the same numbers bit for bit, for buffers whose first rows x C elements are the
 * rows of a large, sparsely used table (the word embeddings): live[rows] (host memory, zero after the
 * moments are reset) marks the rows whose moments may be non-zero; a row not live whose gradient is
 * all zero is skipped when hp.decay == 0 (its update is the identity), and a row with a non-zero
 * gradient is marked live and updated. touched[rows] (host memory, or NULL) marks the rows the
 * gradient may hold non-zeros in (the rows backward wrote); a row not live and not touched is
 * skipped unread, the others not live are read to see. So AdamW keeps its exact semantics (every
 * live row's moments decay every step) and costs nothing for the rows of tokens never seen. */
void k_adamw_step_rows(float *param, const float *grad, float *m, float *v, size_t n,
                       k_adamw_hparams_t hp, unsigned char *live, const unsigned char *touched,
                       size_t rows, size_t C);

/* Sum of squares of x[n], accumulated in double (for the global gradient norm), in a fixed order
 * that does not depend on the thread count. */
double k_sumsq_f32(const float *x, size_t n);
/* k_sumsq_f32, the same number bit for bit, for x whose first rows x C elements are rows of which
 * those with nonzero[r] == 0 (host memory) are known to be all zero: their blocks are not read. */
double k_sumsq_rows_f32(const float *x, size_t n, const unsigned char *nonzero, size_t rows, size_t C);

/* x[n] *= s. */
void k_scale_f32(float *x, size_t n, float s);

#endif
