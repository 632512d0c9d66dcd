/* elementwise.cu: the CUDA elementwise kernels of kernels.h (add, mul, fill) and the row-major
 * matrix products through cuBLAS. cuBLAS is column-major: a row-major C[M,N] is its C^T, so
 * C = op(A) op(B) runs as C^T = op(B)^T op(A)^T, the operands swapped (M and N too).
 * Dimension letters: M, N, K the product's sizes; n element counts. */
#include "cuda_common.cuh"

/* ---- kernels ----------------------------------------------------------------------------------- */

template <typename T, int MUL>
__global__ void binary_kernel(T *out, const T *a, const T *b, size_t n, int b_scalar) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        T y = b_scalar ? b[0] : b[i];
        out[i] = MUL ? a[i] * y : a[i] + y;
    }
}

__global__ void fill_kernel(float *out, float value, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = value;
}

/* ---- launchers --------------------------------------------------------------------------------- */

template <typename T, int MUL>
static void binary(const char *op, T *out, const T *a, const T *b, size_t n, int b_scalar) {
    if (!n || !cuda_ready(op)) return;
    binary_kernel<T, MUL><<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(out, a, b, n, b_scalar);
    cuda_launched(op);
}

void cuda_add_f32(float *out, const float *a, const float *b, size_t n, int b_scalar) {
    binary<float, 0>("add_f32", out, a, b, n, b_scalar);
}
void cuda_mul_f32(float *out, const float *a, const float *b, size_t n, int b_scalar) {
    binary<float, 1>("mul_f32", out, a, b, n, b_scalar);
}
void cuda_add_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar) {
    binary<int64_t, 0>("add_i64", out, a, b, n, b_scalar);
}
void cuda_mul_i64(int64_t *out, const int64_t *a, const int64_t *b, size_t n, int b_scalar) {
    binary<int64_t, 1>("mul_i64", out, a, b, n, b_scalar);
}

void cuda_fill_f32(float *out, float value, size_t n) {
    if (!n || !cuda_ready("fill_f32")) return;
    fill_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(out, value, n);
    cuda_launched("fill_f32");
}

void cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0 || !cuda_ready("gemm")) return;
    cublas_check("gemm", cublasSgemm(cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A,
                                     lda, &beta, C, ldc));
}

void cuda_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                       int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                       float *C, int ldc, long stride_c, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0 || !cuda_ready("gemm_batched")) return;
    cublas_check("gemm_batched",
                 cublasSgemmStridedBatched(cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                                           ldb, stride_b, A, lda, stride_a, &beta, C, ldc, stride_c,
                                           batch));
}
