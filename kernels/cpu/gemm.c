/* gemm.c: matrix multiply on the CPU through OpenBLAS's cblas_sgemm (no hand-written GEMM), the
 * thread count of OpenBLAS and OpenMP, and the choice of OpenBLAS's kernels on CPUs it does not know. */
#include "../kernels.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS built with DYNAMIC_ARCH (Debian's, Ubuntu's) picks its kernels from the CPU's family and
 * model number when the library loads, and falls back to "Prescott" (SSE3, no AVX) for a model it
 * does not list: 0.3.21 on a recent Xeon (family 6, model 207) runs sgemm 4-7x below the machine.
 * When that happened and the user did not choose (OPENBLAS_CORETYPE unset), this reruns OpenBLAS's
 * own selection with the newest kernel set the CPU's features allow, exactly as OPENBLAS_CORETYPE
 * would have at load time. The two entry points are OpenBLAS's (exported by DYNAMIC_ARCH builds);
 * weak, so a build without them links and keeps its kernels. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static const char *better_core(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

__attribute__((constructor)) static void gemm_pick_core(void) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || getenv("OPENBLAS_CORETYPE")) return;
    const char *now = openblas_get_corename();
    if (!now || strcmp(now, "Prescott") != 0) return; /* OpenBLAS knew the CPU */
    const char *core = better_core();
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1); /* read by gotoblas_dynamic_init, then removed */
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

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
