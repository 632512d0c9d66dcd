/* backend.h: the one seam between bertlab's runtime and a device. A backend is a table of function
 * pointers: memory (allocate, free, zero, copy host<->device and on the device), a status word, and
 * every math kernel of kernels.h, bert_kernels.h and optim_kernels.h with the same signature and
 * meaning as there. Every pointer handed to a backend's function is memory of that backend's device
 * (allocated by its `alloc`), except the explicit host side of copy_to_device / copy_to_host.
 * The CPU backend (kernels/cpu/backend_cpu.c) wraps the CPU kernels; the CUDA backend
 * (kernels/cuda/backend_cuda.cu) implements the same table with cuBLAS and CUDA kernels on one stream.
 * Errors: functions return nothing; the first failure (a failed allocation, launch or cuBLAS call)
 * is kept with the name of the operation, and `error()` returns it (and clears it), so the runtime
 * checks once per forward, backward or step and turns it into a message ("cuda: linear_forward:
 * ...") instead of aborting. Work may be asynchronous: copy_to_host and synchronize wait for it.
 * Dimension letters as in bert_kernels.h. */
#ifndef BL_BACKEND_H
#define BL_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "optim_kernels.h"

enum { BL_DEVICE_CPU = 0, BL_DEVICE_CUDA = 1 };

typedef struct bl_backend {
    const char *name; /* "cpu", "cuda" */
    int device;       /* BL_DEVICE_* */

    /* ---- status ---- */
    /* The first error since the last call, as "operation: reason", or NULL; clears it. */
    const char *(*error)(void);
    /* Waits for all queued work. */
    void (*synchronize)(void);
    /* Bytes allocated now and at most since the start (or the last reset_peak). */
    void (*memory)(size_t *current, size_t *peak);

    /* ---- memory ---- */
    void *(*alloc)(size_t bytes); /* NULL (and error set) on failure; contents undefined */
    void (*free)(void *p);        /* accepts NULL */
    void (*memzero)(void *p, size_t bytes);
    void (*copy_to_device)(void *dst, const void *host_src, size_t bytes);
    void (*copy_to_host)(void *host_dst, const void *src, size_t bytes); /* waits */
    void (*copy_on_device)(void *dst, const void *src, size_t bytes);    /* may overlap: no */

    /* ---- elementwise (kernels.h) ---- */
    void (*add_f32)(float *out, const float *a, const float *b, size_t n, int b_scalar);
    void (*mul_f32)(float *out, const float *a, const float *b, size_t n, int b_scalar);
    void (*add_i64)(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
    void (*mul_i64)(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
    void (*fill_f32)(float *out, float value, size_t n);

    /* ---- matrix multiply (kernels.h; row-major) ---- */
    void (*gemm)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
    void (*gemm_batched)(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                         float *C, int ldc, long stride_c, int batch);

    /* ---- BERT layers (bert_kernels.h) ---- */
    void (*embeddings_forward)(float *out, const int64_t *ids, const int64_t *types, const float *wte,
                               const float *wpe, const float *wtt, int B, int T, int C);
    void (*embeddings_backward)(float *dwte, float *dwpe, float *dwtt, const float *dout,
                                const int64_t *ids, const int64_t *types, int B, int T, int C);
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, float eps);
    void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *mean, const float *rstd,
                               const float *weight, int N, int C);
    void (*linear_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    void (*linear_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
    /* att: what this backend's forward keeps for its own backward (the CPU's marks the dropped
     * probabilities in their sign bits; the GPU's holds the plain softmax and draws again) */
    void (*attention_forward)(float *out, float *att, const float *qkv, const float *mask_add, int B,
                              int T, int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
    void (*attention_backward)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, int P, float p,
                               uint64_t seed, uint64_t offset);
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*tanh_forward)(float *out, const float *inp, size_t n);
    void (*tanh_backward)(float *dinp, const float *out, const float *dout, size_t n);
    void (*dropout_forward)(float *out, const float *inp, int B, int T, int C, int P, float p,
                            uint64_t seed, uint64_t offset);
    void (*dropout_backward)(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                             uint64_t seed, uint64_t offset);
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
    void (*accumulate)(float *dst, const float *src, size_t n);
    void (*cls_forward)(float *out, const float *inp, int B, int T, int C);
    void (*cls_backward)(float *dinp, const float *dout, int B, int T, int C);
    void (*crossentropy_forward)(float *loss, float *probs, const float *logits,
                                 const int64_t *targets, const float *weights, int B, int L);
    void (*crossentropy_backward)(float *dlogits, const float *probs, const int64_t *targets,
                                  const float *weights, int B, int L, float dloss);
    /* mask_add[n] = 0 where mask[n] != 0, -FLT_MAX where mask[n] == 0 (all 0 when mask is NULL). */
    void (*mask_to_additive)(float *mask_add, const int64_t *mask, size_t n);
    /* probs[B,L] = softmax over the last dimension of logits (evaluation without labels). */
    void (*softmax_rows)(float *probs, const float *logits, int B, int L);

    /* ---- optimizer (optim_kernels.h) ---- */
    void (*adamw_step)(float *param, const float *grad, float *m, float *v, size_t n,
                       k_adamw_hparams_t hp);
    /* out[0] (device memory, one double) = sum of squares of x[n], accumulated in double in a
     * fixed order (deterministic for a given n and thread count). */
    void (*sumsq_f32)(double *out, const float *x, size_t n);
    /* x[n] *= s */
    void (*scale_f32)(float *x, size_t n, float s);
    /* Gradient clipping without a host round trip: norm = sqrt(sumsq[0]); coef = max_norm /
     * (norm + 1e-6); when coef < 1, x[n] *= (float)coef. Same arithmetic as clip_grad_norm, which
     * (as torch) forms the coefficient in float32: coef = (float)max_norm / ((float)norm + 1e-6f). */
    void (*clip_scale_f32)(float *x, size_t n, const double *sumsq, double max_norm);
    /* k_adamw_step_rows (optim_kernels.h): AdamW skipping the word-embedding rows that cannot
     * change; `live` and `touched` are host memory. NULL in a backend without it (the model then calls adamw_step). */
    void (*adamw_step_rows)(float *param, const float *grad, float *m, float *v, size_t n,
                            k_adamw_hparams_t hp, unsigned char *live, const unsigned char *touched,
                            size_t rows, size_t C);
    /* sumsq_f32 without reading the leading rows flagged all zero (k_sumsq_rows_f32; `nonzero` is
     * host memory); NULL in a backend without it. */
    void (*sumsq_rows_f32)(double *out, const float *x, size_t n, const unsigned char *nonzero,
                           size_t rows, size_t C);
    /* attention_forward's out without writing att (a forward that keeps no activations, as in
     * evaluation); NULL in a backend without it (the model then gives attention_forward an att
     * slot). */
    void (*attention_forward_nokeep)(float *out, const float *qkv, const float *mask_add, int B,
                                     int T, int C, int NH, int P, float p, uint64_t seed,
                                     uint64_t offset);
    /* out [N, C] = b2 + gelu(b1 + inp W1^T) W2^T (linear_forward, gelu_forward, linear_forward)
     * without storing the intermediate, for a forward that keeps no activations; returns 0 when it
     * cannot (the model then makes the three calls); NULL in a backend without it. */
    int (*ffn_forward_nokeep)(float *out, const float *inp, const float *w1, const float *b1,
                              const float *w2, const float *b2, int N, int C, int I);
    /* A packed batch's row-structured layers in one call each (bert_kernels.h, k_*_rows: `rows` is
     * host memory, the rows' starts, lengths and probability offsets; the same bits as a call per
     * row): the model packs rows on the CPU only. NULL in a backend without them (the model then
     * calls attention_forward / _nokeep / _backward and dropout_forward / _backward once a row).
     * attention_forward_rows with att NULL keeps no probabilities. */
    void (*attention_forward_rows)(float *out, float *att, const float *qkv, const size_t *rows, int n,
                                   int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
    void (*attention_backward_rows)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                    const float *att, const size_t *rows, int n, int C, int NH, int P,
                                    float p, uint64_t seed, uint64_t offset);
    void (*dropout_forward_rows)(float *out, const float *inp, const size_t *rows, int n, int C, int P,
                                 float p, uint64_t seed, uint64_t offset);
    void (*dropout_backward_rows)(float *dinp, const float *dout, const size_t *rows, int n, int C, int P,
                                  float p, uint64_t seed, uint64_t offset);
    /* The backward's first writers (the bits of the adding kernel on zero; NULL in a backend without
     * them: the model then clears the destination and adds, and zero_grad clears the weight
     * gradients itself):
     * linear_backward with dinp = dout weight written where set_dinp (a scratch gradient's first
     * writer), dweight = dout^T inp written where set_dweight (the first backward after zero_grad,
     * which then leaves the linear layers' weight gradients unwritten), dbias added
     * (k_linear_backward_to); */
    void (*linear_backward_to)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC, int set_dinp,
                               int set_dweight);
    /* gelu_backward with dinp written (it may be dout: in place); attention_backward(_rows) with dqkv
     * written; layernorm_backward and dropout_backward(_rows) with dinp written. */
    void (*gelu_backward_set)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*attention_backward_set)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                   const float *att, int B, int T, int C, int NH, int P, float p,
                                   uint64_t seed, uint64_t offset);
    void (*attention_backward_rows_set)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                        const float *att, const size_t *rows, int n, int C, int NH, int P,
                                        float p, uint64_t seed, uint64_t offset);
    void (*layernorm_backward_set)(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *mean, const float *rstd,
                                   const float *weight, int N, int C);
    void (*dropout_backward_set)(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                                 uint64_t seed, uint64_t offset);
    void (*dropout_backward_rows_set)(float *dinp, const float *dout, const size_t *rows, int n, int C,
                                      int P, float p, uint64_t seed, uint64_t offset);
    /* The last layer's attention on each row's [CLS] query alone (k_attention_forward_cls,
     * k_attention_backward_cls: rows NULL for the padded batch, else packed; host memory), for a
     * model whose later work reads only the [CLS] rows; NULL in a backend without them (the model
     * then runs the whole attention and gathers its [CLS] rows). */
    void (*attention_forward_cls)(float *out, float *att, const float *qkv, const float *mask_add,
                                  const size_t *rows, int n, int T, int C, int NH, int P, float p,
                                  uint64_t seed, uint64_t offset);
    void (*attention_backward_cls)(float *dqkv, const float *dout, const float *qkv, const float *att,
                                   const size_t *rows, int n, int T, int C, int NH, int P, float p,
                                   uint64_t seed, uint64_t offset);
    /* The last layer's QKV for attention_forward_cls in a forward that keeps nothing: K and V of every
     * token, Q of the [CLS] tokens only (k_qkv_forward_cls; rows as attention_forward_cls's, x_cls the
     * [CLS] tokens' inputs, q_cls n x C of scratch), the bits linear_forward gives; returns 0 when it
     * cannot (the model then makes the whole linear_forward); NULL in a backend without it. */
    int (*qkv_forward_cls)(float *qkv, float *q_cls, const float *x, const float *x_cls, const size_t *rows,
                           int n, int T, const float *weight, const float *bias, int N, int C);
    /* residual_forward (res = a + b) and layernorm_forward of res in one pass
     * (k_residual_layernorm_forward); NULL in a backend without it (the model makes the two calls). */
    void (*residual_layernorm_forward)(float *res, float *out, float *mean, float *rstd, const float *a,
                                       const float *b, const float *weight, const float *bias, int N, int C,
                                       float eps);
} bl_backend_t;

/* The CPU backend (always present). */
const bl_backend_t *bl_backend_cpu(void);
/* The CUDA backend, or NULL when this binary was built without CUDA. Its functions fail softly
 * (error() says why) when no GPU is visible; check bl_backend_cuda_usable() first. */
const bl_backend_t *bl_backend_cuda(void);
/* 1 when built with CUDA and a device can be used; 0 otherwise (never fails). */
int bl_backend_cuda_usable(void);
/* The backend of device BL_DEVICE_*, or NULL (not built, or unknown). */
const bl_backend_t *bl_backend_for(int device);

#endif
