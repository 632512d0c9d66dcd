/* bench_kernels.c: per-kernel CPU times of kernels/bert_kernels.h at BERT-small shapes (C=384,
 * NH=12, 4C=1536 as all-MiniLM-L6-v2), for a training batch (B=3, T=24) and an evaluation-sized one
 * (B=32, T=32), plus the sum over one encoder layer forward+backward and a 6-layer step estimate.
 * Build: gcc $(CFLAGS) bench/bench_kernels.c build/libbertlab.a $(LDLIBS) -o build/bench_kernels
 * Usage: build/bench_kernels [B T]... (default: 3 24 32 32) */
#include "../kernels/bert_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *buf(size_t n) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Microseconds per call of `stmt`: the best of 7 batches of ~20 ms each, so that other processes
 * on a shared machine inflate the figure as little as possible. `cpu_us` gets the CPU time (all
 * threads) of the same batch: with one thread it is the work itself, whatever else runs. */
static double cpu_us;
#define TIME(stmt)                                                                  \
    ({                                                                              \
        stmt; /* warm-up, and the batch size */                                     \
        double t0_ = now();                                                         \
        stmt;                                                                       \
        double one_ = now() - t0_;                                                  \
        int reps_ = one_ > 0.02 ? 1 : (int)(0.02 / (one_ + 1e-9)) + 1;              \
        double best_ = 1e30;                                                        \
        for (int k_ = 0; k_ < 7; k_++) {                                            \
            t0_ = now();                                                            \
            double c0_ = cpu();                                                     \
            for (int r_ = 0; r_ < reps_; r_++) { stmt; }                            \
            double t_ = (now() - t0_) / reps_, c_ = (cpu() - c0_) / reps_;          \
            if (t_ < best_) { best_ = t_; cpu_us = 1e6 * c_; }                      \
        }                                                                           \
        1e6 * best_;                                                                \
    })

static void bench(int B, int T) {
    const int C = 384, NH = 12, F = 4 * C, V = 30522, L = 5, P = 512; /* P: max_position_embeddings */
    int N = B * T;
    float p = 0.1f;
    float *x = buf((size_t)N * C), *y = buf((size_t)N * C), *dx = buf((size_t)N * C);
    float *qkv = buf((size_t)N * 3 * C), *dqkv = buf((size_t)N * 3 * C);
    float *h = buf((size_t)N * F), *dh = buf((size_t)N * F), *h2 = buf((size_t)N * F);
    float *att = buf((size_t)B * NH * T * T), *scr = buf((size_t)B * NH * T * T);
    float *wqkv = buf((size_t)3 * C * C), *dwqkv = buf((size_t)3 * C * C), *bqkv = buf(3 * C);
    float *dbqkv = buf(3 * C);
    float *wp = buf((size_t)C * C), *dwp = buf((size_t)C * C), *bp = buf(C), *dbp = buf(C);
    float *w1 = buf((size_t)F * C), *dw1 = buf((size_t)F * C), *b1 = buf(F), *db1 = buf(F);
    float *w2 = buf((size_t)C * F), *dw2 = buf((size_t)C * F), *b2 = buf(C), *db2 = buf(C);
    float *g = buf(C), *be = buf(C), *dg = buf(C), *dbe = buf(C), *mean = buf(N), *rstd = buf(N);
    float *mask = calloc(N, sizeof(float));
    float *wte = buf((size_t)V * C), *wpe = buf((size_t)512 * C), *wtt = buf(2 * C);
    float *logits = buf(B * L), *probs = buf(B * L), *dlog = buf(B * L), loss;
    int64_t *ids = malloc(sizeof(int64_t) * N), *tgt = malloc(sizeof(int64_t) * B);
    for (int i = 0; i < N; i++) ids[i] = (i * 7919) % V;
    for (int b = 0; b < B; b++) tgt[b] = b % L;
    for (int b = 0; b < B; b++) /* pad the last quarter of odd sequences */
        for (int t = 3 * T / 4; t < T; t++) mask[b * T + t] = (b & 1) ? -3.4028235e38f : 0.0f;

    printf("\nB=%d T=%d C=%d NH=%d (N=%d rows), microseconds per call\n", B, T, C, NH, N);
    printf("%-34s %9s %9s %9s %9s\n", "kernel", "fwd wall", "bwd wall", "fwd cpu", "bwd cpu");
    double layer = 0.0, layer_cpu = 0.0, f, bk, fc, bc;
#define ROW(name, fw, bw, times)                                                      \
    f = TIME(fw);                                                                     \
    fc = cpu_us;                                                                      \
    bk = TIME(bw);                                                                    \
    bc = cpu_us;                                                                      \
    layer += (times) * (f + bk);                                                      \
    layer_cpu += (times) * (fc + bc);                                                 \
    printf("%-34s %9.1f %9.1f %9.1f %9.1f %s\n", name, f, bk, fc, bc,               \
           (times) == 2 ? "x2" : (times) ? "" : "(not per layer)");
    ROW("layernorm [N,384]", k_layernorm_forward(y, mean, rstd, x, g, be, N, C, 1e-12f),
        k_layernorm_backward(dx, dg, dbe, y, x, mean, rstd, g, N, C), 2);
    ROW("linear qkv 384->1152", k_linear_forward(qkv, x, wqkv, bqkv, N, C, 3 * C),
        k_linear_backward(dx, dwqkv, dbqkv, qkv, x, wqkv, N, C, 3 * C), 1);
    ROW("attention (p=0.1, masked)", k_attention_forward(y, att, qkv, mask, B, T, C, NH, P, p, 1, 0),
        k_attention_backward(dqkv, scr, x, qkv, att, B, T, C, NH, P, p, 1, 0), 1);
    ROW("attention (p=0)", k_attention_forward(y, att, qkv, mask, B, T, C, NH, P, 0, 1, 0),
        k_attention_backward(dqkv, scr, x, qkv, att, B, T, C, NH, P, 0, 1, 0), 0);
    ROW("linear proj 384->384", k_linear_forward(y, x, wp, bp, N, C, C),
        k_linear_backward(dx, dwp, dbp, y, x, wp, N, C, C), 1);
    ROW("linear fc1 384->1536", k_linear_forward(h, x, w1, b1, N, C, F),
        k_linear_backward(dx, dw1, db1, h, x, w1, N, C, F), 1);
    ROW("gelu [N,1536]", k_gelu_forward(h2, h, (size_t)N * F),
        k_gelu_backward(dh, h, h2, (size_t)N * F), 1);
    ROW("linear fc2 1536->384", k_linear_forward(y, h, w2, b2, N, F, C),
        k_linear_backward(dh, dw2, db2, y, h, w2, N, F, C), 1);
    ROW("dropout [N,384] p=0.1", k_dropout_forward(y, x, B, T, C, P, p, 1, 0),
        k_dropout_backward(dx, y, B, T, C, P, p, 1, 0), 2);
    ROW("residual / accumulate [N,384]", k_residual_forward(y, x, dx, (size_t)N * C),
        k_accumulate(dx, y, (size_t)N * C), 2);
    double per_layer = layer, per_layer_cpu = layer_cpu;
    layer = layer_cpu = 0.0;
    ROW("embeddings (V=30522)", k_embeddings_forward(y, ids, NULL, wte, wpe, wtt, B, T, C),
        k_embeddings_backward(wte, wpe, wtt, y, ids, NULL, B, T, C), 1);
    ROW("cross-entropy L=5", k_crossentropy_forward(&loss, probs, logits, tgt, NULL, B, L),
        k_crossentropy_backward(dlog, probs, tgt, NULL, B, L, 1.0f), 1);
    printf("one encoder layer fwd+bwd: %.0f us wall, %.0f us cpu; 6 layers + embeddings/loss: "
           "%.1f ms wall, %.1f ms cpu per step\n", per_layer, per_layer_cpu,
           (6 * per_layer + layer) / 1000.0, (6 * per_layer_cpu + layer_cpu) / 1000.0);
    free(x); free(y); free(dx); free(qkv); free(dqkv); free(h); free(dh); free(h2); free(att);
    free(scr); free(wqkv); free(dwqkv); free(bqkv); free(dbqkv); free(wp); free(dwp); free(bp);
    free(dbp); free(w1); free(dw1); free(b1); free(db1); free(w2); free(dw2); free(b2); free(db2);
    free(g); free(be); free(dg); free(dbe); free(mean); free(rstd); free(mask); free(wte); free(wpe);
    free(wtt); free(logits); free(probs); free(dlog); free(ids); free(tgt);
}

int main(int argc, char **argv) {
    if (argc >= 3) {
        for (int i = 1; i + 1 < argc; i += 2) bench(atoi(argv[i]), atoi(argv[i + 1]));
    } else {
        bench(3, 24);
        bench(32, 32);
    }
    return 0;
}
