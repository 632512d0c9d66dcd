/* gemm.c: matrix multiply on the CPU through OpenBLAS's cblas_sgemm (no hand-written GEMM). */
#include "../kernels.h"
#include <cblas.h>
#include <omp.h>

void k_set_num_threads(int n) {
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int k_get_num_threads(void) { return omp_get_max_threads(); }

void k_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void k_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                    float *C, int ldc, long stride_c, int batch) {
    for (int i = 0; i < batch; i++)
        k_gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
               C + i * stride_c, ldc);
}
