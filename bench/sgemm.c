/* sgemm.c: the machine's matrix-multiply rate at a BERT layer's shapes, for `make bench`: OpenBLAS
 * cblas_sgemm on the 18 GEMMs of one encoder layer's training step (forward Y = X W^T, backward
 * dX = dY W and dW += dY^T X for Q, K, V, O [C,C], FF1 [I,C] and FF2 [C,I]) at N tokens.
 * N tokens (B*T), C hidden, I intermediate. After one warm-up GEMM, WINDOWS windows each run the layer
 * set until ~SECS seconds have passed (at least once); a window's rate is its FLOPs over its wall time.
 * It prints the best window (gflops: what the machine can reach at these shapes, the bench's
 * denominator) and the worst (min), so a drifting machine shows as a spread between them.
 * Linked with libbertlab.a, so OpenBLAS runs the kernels bertlab picks (kernels/cpu/gemm.c).
 * Usage: build/bench/sgemm C I N THREADS [SECS=1 [WINDOWS=1]]
 *   prints "sgemm: gflops=... min=... windows=... reps=... core=..." */
#include "../kernels/kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *buf(size_t n) {
    float *p = malloc(sizeof(float) * n);
    if (!p) {
        fprintf(stderr, "sgemm: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* one linear layer's training GEMMs: x [N,in], w [out,in], y/dy [N,out], dx [N,in], dw [out,in] */
static double linear(int N, int in, int out, const float *x, const float *w, float *y,
                     const float *dy, float *dx, float *dw) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
    return 3.0 * 2.0 * N * in * out;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s C I N THREADS [SECS]\n", argv[0]);
        return 2;
    }
    int C = atoi(argv[1]), FF = atoi(argv[2]), N = atoi(argv[3]), threads = atoi(argv[4]);
    double secs = argc > 5 ? atof(argv[5]) : 1.0;
    int windows = argc > 6 ? atoi(argv[6]) : 1;
    if (C <= 0 || FF <= 0 || N <= 0 || threads <= 0 || windows <= 0 || !(secs >= 0)) {
        fprintf(stderr, "sgemm: C, I, N, THREADS and WINDOWS must be positive, SECS not negative\n");
        return 2;
    }
    k_set_num_threads(threads); /* OpenBLAS and OpenMP, as bl.set_num_threads */
    size_t big = (size_t)N * (C > FF ? C : FF);
    float *x = buf(big), *y = buf(big), *dy = buf(big), *dx = buf(big);
    float *w = buf((size_t)C * FF), *dw = buf((size_t)C * FF);
    linear(N, C, FF, x, w, y, dy, dx, dw); /* warm-up: OpenBLAS's buffers and threads */
    double best = 0, worst = 0;
    int reps = 0;
    for (int win = 0; win < windows; win++) {
        double flops = 0, t0 = now();
        do {
            for (int k = 0; k < 4; k++) flops += linear(N, C, C, x, w, y, dy, dx, dw);
            flops += linear(N, C, FF, x, w, y, dy, dx, dw);
            flops += linear(N, FF, C, x, w, y, dy, dx, dw);
            reps++;
        } while (now() - t0 < secs);
        double rate = flops / (now() - t0) * 1e-9;
        if (win == 0 || rate > best) best = rate;
        if (win == 0 || rate < worst) worst = rate;
    }
    printf("sgemm: gflops=%.2f min=%.2f windows=%d reps=%d C=%d I=%d N=%d threads=%d core=%s\n", best, worst,
           windows, reps, C, FF, N, threads, openblas_get_corename());
    return 0;
}
