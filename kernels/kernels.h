/* kernels.h: the one interface to bertlab's math. Each function takes raw pointers and dimensions
 * (never tensors or Lua), so a CUDA launcher with the same signature can sit beside the CPU one and
 * a test can run both and compare. CPU implementations live in kernels/cpu/, CUDA in kernels/cuda/.
 * Dimension letters: B batch, T tokens, C channels (hidden), H heads, V vocabulary, OC out channels.
 * Layer pairs follow llm.c: layer_forward(out, cache..., inp, weights..., dims) and
 * layer_backward(dinp, dweights..., dout, inp, cache..., weights..., dims); backward accumulates (+=). */
#ifndef BL_KERNELS_H
#define BL_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* ---- elementwise ------------------------------------------------------------------------------- */
void k_add_f32(float *out, const float *a, const float *b, size_t n, int b_scalar);
void k_mul_f32(float *out, const float *a, const float *b, size_t n, int b_scalar);
void k_add_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
void k_mul_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar);
/* out[n] = value */
void k_fill_f32(float *out, float value, size_t n);

/* ---- matrix multiply (row-major, through BLAS) ------------------------------------------------- */
/* C[M,N] = alpha * op(A) @ op(B) + beta * C, op = transpose when trans_* is set; lda/ldb/ldc row strides. */
void k_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *C, int ldc);
/* k_gemm as one BLAS call, never cut into pieces (k_gemm cuts a skinny product outside a parallel
 * region, and OpenBLAS's bits at a piece's edge differ): for a caller whose threads already take
 * whole products (the attention's heads), so its bits do not depend on the thread count. */
void k_gemm_one(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* `batch` independent gemms with element strides between consecutive A, B and C matrices. */
void k_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                    float *C, int ldc, long stride_c, int batch);

/* A linear layer's three products without copying W or packing either operand (kernels/cpu/skinny.c;
 * AVX-512 or AVX2 with FMA), for any number of tokens N (taken SKINNY_MAX_N, or half that, at a time):
 * out [N, OC] = bias + inp [N, C] W^T, W [OC, C]. Returns 1 when it did the work, 0 when the caller
 * must (too little work, neither AVX-512 nor AVX2, more than k_skinny_max_tokens(0) tokens, inside a
 * parallel region, no scratch). */
#define SKINNY_MAX_N 128
#define SKINNY_MIN_WORK (1L << 18) /* N*C*OC */
/* Above this many tokens a call a product goes to sgemm where that is the faster: with AVX2 the
 * forward's (the backward's are always there), with AVX-512 the backward's dx and dW when OpenBLAS
 * runs its AVX-512 kernels (k_blas_avx512); the reasons and numbers are in kernels/cpu/skinny.c */
#define SKINNY_TILES_MAX_N 256
/* The most tokens a call the tiles take for the forward (backward 0) or for dx and dW (backward
 * 1): INT_MAX for any, 0 for none (neither AVX-512 nor AVX2; dx and dW with AVX2) */
int k_skinny_max_tokens(int backward);
/* Overrides SKINNY_TILES_MAX_N where it applies (tests: INT_MAX runs the tiles on every N); 0
 * restores it */
void k_skinny_set_max_tokens(int n);
/* 1 when OpenBLAS runs AVX-512 kernels (its core SkylakeX, Cooperlake or SapphireRapids) */
int k_blas_avx512(void);
int k_skinny_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* 1 where k_skinny_forward takes a call of these sizes (the tiles' bits), 0 where sgemm would */
int k_skinny_forward_takes(int N, int C, int OC);
/* k_skinny_forward's out rows ldo floats apart (ldo >= OC), whatever the sizes (no threshold of work
 * or tokens: the tiles' bits for any call); 0 only without the tiles, inside a parallel region or
 * without memory for the scratch. */
int k_skinny_forward_ld(float *out, size_t ldo, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC);
/* A feed-forward block without storing its intermediate: out [N, C] = b2 + act(b1 + inp W1^T) W2^T,
 * W1 [I, C], W2 [C, I]; act(x, n) works in place on n floats, one thread. The same bits as
 * k_skinny_forward, act and k_skinny_forward; 0 when the caller must (as above). */
int k_skinny_ffn_forward(float *out, const float *inp, const float *w1, const float *b1, const float *w2,
                         const float *b2, int N, int C, int I, void (*act)(float *x, size_t n));
/* The backward's dinp [N, C] += dout [N, OC] W, W [OC, C] not copied; 0 when the caller must (as
 * above, or C not a multiple of 16, or no AVX-512: with AVX2 the backward stays on sgemm). */
int k_skinny_backward_dx(float *dinp, const float *dout, const float *weight, int N, int C, int OC);
/* The same with dinp = dout W written, whatever it held (set 1; set 0: k_skinny_backward_dx): the
 * bits of k_skinny_backward_dx on a zero dinp. */
int k_skinny_backward_dx_to(float *dinp, const float *dout, const float *weight, int N, int C, int OC, int set);
/* The backward's dweight [OC, C] += dout [N, OC]^T inp [N, C]; 0 when the caller must (as above, or C
 * not a multiple of 16, or no AVX-512). */
int k_skinny_backward_dw(float *dweight, const float *dout, const float *inp, int N, int C, int OC);
/* The same with dweight = dout^T inp written, whatever it held (set 1; set 0: k_skinny_backward_dw):
 * the bits of k_skinny_backward_dw on a zero dweight. */
int k_skinny_backward_dw_to(float *dweight, const float *dout, const float *inp, int N, int C, int OC, int set);

/* One attention head's product on the calling thread (kernels/cpu/headgemm.c; AVX-512 or AVX2):
 * c [M, N] = A B, plus c when acc; A's element (i, k) at a[i*ar + k*ak] (ar = lda, ak = 1 for A,
 * ar = 1, ak = lda for a transposed one); B [K, N] row-major (ldb), or, with tb, b holds B^T [N, K]
 * (ldb). B^T, and a B with N not a multiple of 16, are first laid out in room (K x N rounded up to
 * 16 floats). Every element is one chain of fused multiply-adds over k from zero (then + c).
 * Returns 1 when it did the work, 0 when the caller must use k_gemm (neither AVX-512 nor AVX2, or room needed and
 * NULL). */
int k_head_gemm(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b,
                size_t ldb, int tb, float *room, int acc, float *c, size_t ldc);
/* k_head_gemm's two steps, for a B that several products share (the rows of an evaluation's head
 * come in blocks, each against the same K^T): k_head_lay_b returns B as the tiles read it (b
 * itself, or room with B^T or the padded B; NULL without the tiles, or room needed and NULL) and its
 * row stride in *ldr; k_head_gemm_laid runs the tiles on it (only where k_head_lay_b gave non-NULL). */
const float *k_head_lay_b(const float *b, size_t ldb, int N, int K, int tb, float *room, size_t *ldr);
void k_head_gemm_laid(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b, size_t ldb,
                      int acc, float *c, size_t ldc);

/* Layer kernels (embeddings, layernorm, attention, GELU, softmax/cross-entropy, dropout, AdamW)
 * are declared in kernels/bert_kernels.h and kernels/optim_kernels.h by the issues that add them. */

/* ---- threads --------------------------------------------------------------------------------- */
/* Threads used by BLAS and the OpenMP loops (default: BERTLAB_NUM_THREADS, else the core count). */
void k_set_num_threads(int n);
int k_get_num_threads(void);

/* ---- devices ---------------------------------------------------------------------------------- */
/* 1 when this binary was built with CUDA and a GPU is visible; 0 otherwise (never fails). */
int k_cuda_available(void);
/* A one-line description of the CUDA device or why there is none. */
const char *k_cuda_describe(void);

#endif
