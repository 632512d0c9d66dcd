/* cuda_common.cuh: what the CUDA backend's files share (private to kernels/cuda/): the sticky error,
 * the one stream and cuBLAS handle (created lazily by cuda_ready), a grow-only work space, the
 * launch-size helper, and the launchers' declarations (cuda_<name> implements k_<name> of
 * kernels.h, bert_kernels.h and optim_kernels.h with the same signature and meaning).
 * Dimension letters as in bert_kernels.h. */
#ifndef BL_CUDA_COMMON_CUH
#define BL_CUDA_COMMON_CUH
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>
#include <cublas_v2.h>

extern "C" {
#include "../optim_kernels.h"
}

/* ---- state (backend_cuda.cu) ------------------------------------------------------------------ */
/* 1 when the device, the stream and the cuBLAS handle are ready (made on the first call); else 0
 * with the sticky error set to "op: why". */
int cuda_ready(const char *op);
/* Keeps "op: reason" as the sticky error unless one is kept already. */
void cuda_fail(const char *op, const char *reason);
/* 1 on cudaSuccess; else records "op: <CUDA's message>" and returns 0. */
int cuda_check(const char *op, cudaError_t e);
/* Records a failed launch of `op` (cudaGetLastError) and returns 0; 1 when the launch went. */
int cuda_launched(const char *op);
/* 1 on CUBLAS_STATUS_SUCCESS; else records "op: cuBLAS <status>" and returns 0. */
int cublas_check(const char *op, cublasStatus_t s);
cudaStream_t cuda_stream(void);
cublasHandle_t cuda_blas(void);
/* A device buffer of at least `bytes`, owned by the backend and reused by every call (stream order
 * keeps uses apart); grows (never shrinks) when a call needs more. NULL (error set) on failure. */
void *cuda_workspace(const char *op, size_t bytes);
/* Partial sums of the fixed-shape reduction (SUMSQ_BLOCKS doubles), made with the stream. */
double *cuda_partials(void);

#define SUMSQ_BLOCKS 256
#define SUMSQ_THREADS 256

/* Blocks of `threads` for a grid-stride loop over n elements (capped: the loop covers the rest). */
static inline unsigned cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > (1u << 20) ? (1u << 20) : (b ? b : 1));
}

/* ---- launchers ----------------------------------------------------------------------------------- */
/* elementwise.cu */
void cuda_add_f32(float *out, const float *a, const float *b, size_t n, int b_scalar);
void cuda_mul_f32(float *out, const float *a, const float *b, size_t n, int b_scalar);
void cuda_add_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
void cuda_mul_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
void cuda_fill_f32(float *out, float value, size_t n);
void cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
void cuda_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                       int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                       float *C, int ldc, long stride_c, int batch);
/* bert_kernels.cu */
void cuda_embeddings_forward(float *out, const int64_t *ids, const int64_t *types, const float *wte,
                             const float *wpe, const float *wtt, int B, int T, int C);
void cuda_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                              const int64_t *ids, const int64_t *types, int B, int T, int C);
void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C, float eps);
void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *mean, const float *rstd,
                             const float *weight, int N, int C);
void cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                         int C, int OC);
void cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);
void cuda_attention_forward(float *out, float *att, const float *qkv, const float *mask_add, int B,
                            int T, int C, int NH, int P, float p, uint64_t seed, uint64_t offset);
void cuda_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int NH, int P, float p,
                             uint64_t seed, uint64_t offset);
void cuda_gelu_forward(float *out, const float *inp, size_t n);
void cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cuda_tanh_forward(float *out, const float *inp, size_t n);
void cuda_tanh_backward(float *dinp, const float *out, const float *dout, size_t n);
void cuda_dropout_forward(float *out, const float *inp, int B, int T, int C, int P, float p,
                          uint64_t seed, uint64_t offset);
void cuda_dropout_backward(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                           uint64_t seed, uint64_t offset);
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void cuda_accumulate(float *dst, const float *src, size_t n);
void cuda_cls_forward(float *out, const float *inp, int B, int T, int C);
void cuda_cls_backward(float *dinp, const float *dout, int B, int T, int C);
void cuda_crossentropy_forward(float *loss, float *probs, const float *logits,
                               const int64_t *targets, const float *weights, int B, int L);
void cuda_crossentropy_backward(float *dlogits, const float *probs, const int64_t *targets,
                                const float *weights, int B, int L, float dloss);
void cuda_mask_to_additive(float *mask_add, const int64_t *mask, size_t n);
void cuda_softmax_rows(float *probs, const float *logits, int B, int L);
/* optim.cu */
void cuda_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                     k_adamw_hparams_t hp);
void cuda_sumsq_f32(double *out, const float *x, size_t n);
void cuda_scale_f32(float *x, size_t n, float s);
void cuda_clip_scale_f32(float *x, size_t n, const double *sumsq, double max_norm);

#endif
