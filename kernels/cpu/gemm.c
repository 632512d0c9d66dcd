/* gemm.c: matrix multiply on the CPU through OpenBLAS's cblas_sgemm (no hand-written GEMM), the
 * thread count of OpenBLAS and OpenMP, and the choice of OpenBLAS's kernels on CPUs it does not know. */
#include "../kernels.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int k_blas_avx512(void) {
    static int avx512 = -1; /* (read once, after gemm_pick_core) */
    if (avx512 < 0) {
        const char *core = openblas_get_corename();
        avx512 = core && (!strcasecmp(core, "SkylakeX") || !strcasecmp(core, "Cooperlake") ||
                          !strcasecmp(core, "SapphireRapids"));
    }
    return avx512;
}

void k_set_num_threads(int n) {
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int k_get_num_threads(void) { return omp_get_max_threads(); }

static void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A skinny product (a batch of a few dozen tokens against a weight matrix: one of M, N, K is small)
 * threads poorly inside OpenBLAS: measured at 45 x 1536 x 384 on 2 cores, its own split ran the
 * forward and both backward products at ~90 GFLOP/s, one thread at ~56. When OpenBLAS runs on
 * OpenMP's threads (its OpenMP build: openblas_get_parallel() == 2, so a call inside a parallel
 * region runs on the calling thread), such a product is cut along C's larger side (rows when
 * M >= N, else columns) into 2, 4, 6 or 8 pieces of whole 16-wide panels, from the shape alone,
 * and each thread takes its share of the pieces, each one single-threaded sgemm: ~110 GFLOP/s at
 * that shape. The pieces do not depend on the thread count (one thread runs them all, in turn), so
 * neither do the numbers, whatever OpenBLAS's kernels do at a piece's edges: its AVX2 ("Haswell")
 * kernels give other bits for a column when the columns are cut elsewhere (tests/test_kernels.c
 * checks 1 against 2 threads). */
#define GEMM_SPLIT_WORK (1L << 18) /* M*N*K below this: one call (too little to share) */
#define GEMM_SPLIT_SKINNY 256      /* split when min(M, N, K) is at most this */
extern int openblas_get_parallel(void);

void k_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *C, int ldc) {
    static int blas_omp = -1;
    if (blas_omp < 0) blas_omp = openblas_get_parallel() == 2;
    int big = M >= N ? M : N, small = M < N ? M : N;
    if (small > K) small = K;
    if (!blas_omp || omp_in_parallel() || (long)M * N * K < GEMM_SPLIT_WORK || small > GEMM_SPLIT_SKINNY ||
        big < 64) {
        sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int rows = M >= N, panels = (big + 15) / 16;
    int pieces = 2 * (big / 256 < 1 ? 1 : big / 256 > 4 ? 4 : big / 256);
    if (pieces > panels) pieces = panels & ~1;
#pragma omp parallel num_threads(omp_get_max_threads() < pieces ? omp_get_max_threads() : pieces)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        for (int p = pieces * t / n; p < pieces * (t + 1) / n; p++) {
            int lo = 16 * (int)((long)panels * p / pieces), hi = 16 * (int)((long)panels * (p + 1) / pieces);
            if (hi > big) hi = big;
            if (lo >= hi) continue;
            if (rows) /* rows lo..hi of C: of op(A), rows of A or (transposed) its columns */
                sgemm(trans_a, trans_b, hi - lo, N, K, alpha, A + (trans_a ? (size_t)lo : (size_t)lo * lda), lda,
                      B, ldb, beta, C + (size_t)lo * ldc, ldc);
            else /* columns lo..hi of C: of op(B), columns of B or (transposed) its rows */
                sgemm(trans_a, trans_b, M, hi - lo, K, alpha, A, lda,
                      B + (trans_b ? (size_t)lo * ldb : (size_t)lo), ldb, beta, C + lo, ldc);
        }
    }
}

void k_gemm_one(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void k_gemm_batched(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, long stride_a, const float *B, int ldb, long stride_b, float beta,
                    float *C, int ldc, long stride_c, int batch) {
    for (int i = 0; i < batch; i++)
        k_gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
               C + i * stride_c, ldc);
}
