/* test_cuda_kernels.c: every entry of the CUDA backend's table (kernels/cuda/) against the CPU
 * kernel of the same name (kernels/cpu/) on random inputs: forward within 1e-5 and gradients within
 * 1e-4 of the CPU's, relative to the CPU tensor's largest magnitude; dropout masks identical (the
 * same elements dropped); run twice, the same bits (no order-dependent atomics); the memory
 * counters and the sticky error. Data moves only through the table's alloc/copy functions.
 * Without a GPU (or in a build without CUDA) every check prints "skip - <name>: no CUDA device".
 * Dimension letters as in kernels/bert_kernels.h. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctest.h"
#include "../kernels/backend.h"
#include "../kernels/bert_kernels.h"
#include "../kernels/kernels.h"
#include "../kernels/optim_kernels.h"

static const char *NAMES[] = {
    "cuda elementwise add/mul (f32, i64, scalar)", "cuda fill_f32", "cuda gemm (4 transposes, strides)",
    "cuda gemm_batched", "cuda embeddings forward/backward", "cuda layernorm forward/backward",
    "cuda linear forward/backward", "cuda attention forward/backward", "cuda gelu/tanh",
    "cuda dropout masks", "cuda residual/accumulate", "cuda cls gather",
    "cuda crossentropy/softmax_rows", "cuda mask_to_additive", "cuda adamw_step",
    "cuda sumsq/scale/clip", "cuda memory and errors", "cuda determinism"};

static const bl_backend_t *cu;

/* ---- helpers ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}
static float *randv(size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = scale * frand();
    return x;
}
static float *copyv(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}
static void *up(const void *h, size_t bytes) {
    void *d = cu->alloc(bytes);
    if (d) cu->copy_to_device(d, h, bytes);
    return d;
}
static float *upf(const float *h, size_t n) { return up(h, sizeof(float) * n); }
static float *down(const float *d, size_t n) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    cu->copy_to_host(h, d, sizeof(float) * n);
    return h;
}

/* Compares a device tensor with the CPU's: max |diff| / max |cpu| (0/0 = 0) within tol, and no
 * error kept by the backend. */
static int cmp(const char *what, const float *dev, const float *cpu, size_t n, double tol) {
    float *g = down(dev, n);
    const char *err = cu->error();
    double d = 0.0, m = 0.0;
    size_t worst = 0, nan = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)g[i] - cpu[i]);
        if (e != e) nan++;
        else if (e > d) { d = e; worst = i; }
        if (fabs(cpu[i]) > m) m = fabs(cpu[i]);
    }
    double rel = m > 0 ? d / m : d;
    printf("# %-40s max|diff| %.3g (at %zu), max|cpu| %.3g, rel %.3g%s\n", what, d, worst, m, rel,
           nan ? " (NaN!)" : "");
    int ok = err == NULL && nan == 0 && rel <= tol;
    CHECK(ok, "%s within %.0e of the CPU%s%s", what, tol, err ? ": " : "", err ? err : "");
    free(g);
    return ok;
}

/* the same bits in two device buffers */
static int same_bits(const char *what, const void *a, const void *b, size_t bytes) {
    void *x = malloc(bytes), *y = malloc(bytes);
    cu->copy_to_host(x, a, bytes);
    cu->copy_to_host(y, b, bytes);
    int same = memcmp(x, y, bytes) == 0;
    CHECK(same, "determinism: %s twice, the same bits", what);
    free(x);
    free(y);
    return same;
}

static void *dalloc(size_t bytes) { return cu->alloc(bytes); }

/* ---- checks ------------------------------------------------------------------------------------ */

static void t_elementwise(void) {
    size_t n = 10007;
    float *a = randv(n, 3), *b = randv(n, 3), *o = malloc(4 * n);
    float *da = upf(a, n), *db = upf(b, n), *dout = dalloc(4 * n);
    for (int scalar = 0; scalar < 2; scalar++) {
        char what[64];
        k_add_f32(o, a, b, n, scalar);
        cu->add_f32(dout, da, db, n, scalar);
        snprintf(what, sizeof what, "add_f32 (b_scalar %d)", scalar);
        cmp(what, dout, o, n, 0);
        k_mul_f32(o, a, b, n, scalar);
        cu->mul_f32(dout, da, db, n, scalar);
        snprintf(what, sizeof what, "mul_f32 (b_scalar %d)", scalar);
        cmp(what, dout, o, n, 0);
    }
    int64_t ia[101], ib[101], io[101], go[101];
    for (int i = 0; i < 101; i++) { ia[i] = (int64_t)(frand() * 1e12); ib[i] = (int64_t)(frand() * 1000); }
    int64_t *dia = up(ia, sizeof ia), *dib = up(ib, sizeof ib), *dio = dalloc(sizeof io);
    int ok = 1;
    for (int scalar = 0; scalar < 2; scalar++) {
        k_add_i64(io, ia, ib, 101, scalar);
        cu->add_i64(dio, dia, dib, 101, scalar);
        cu->copy_to_host(go, dio, sizeof go);
        ok &= memcmp(go, io, sizeof go) == 0;
        k_mul_i64(io, ia, ib, 101, scalar);
        cu->mul_i64(dio, dia, dib, 101, scalar);
        cu->copy_to_host(go, dio, sizeof go);
        ok &= memcmp(go, io, sizeof go) == 0;
    }
    CHECK(ok && !cu->error(), "add_i64/mul_i64 equal the CPU's (b_scalar 0 and 1)");
    cu->free(da); cu->free(db); cu->free(dout); cu->free(dia); cu->free(dib); cu->free(dio);
    free(a); free(b); free(o);
}

static void t_fill(void) {
    size_t n = 4099;
    float *d = dalloc(4 * n), *h, *ref = malloc(4 * n);
    for (size_t i = 0; i < n; i++) ref[i] = -2.5f;
    cu->fill_f32(d, -2.5f, n);
    h = down(d, n);
    CHECK(memcmp(h, ref, 4 * n) == 0 && !cu->error(), "fill_f32 writes every element");
    cu->free(d); free(h); free(ref);
}

static void t_gemm(void) {
    int M = 37, N = 29, K = 45, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
            int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
            float *A = randv((size_t)ar * lda, 1), *Bm = randv((size_t)br * ldb, 1);
            float *Cm = randv((size_t)M * ldc, 1);
            float *dA = upf(A, (size_t)ar * lda), *dB = upf(Bm, (size_t)br * ldb), *dC = upf(Cm, (size_t)M * ldc);
            k_gemm(ta, tb, M, N, K, 0.7f, A, lda, Bm, ldb, 0.3f, Cm, ldc);
            cu->gemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, ldc);
            char what[64];
            snprintf(what, sizeof what, "gemm trans_a %d trans_b %d", ta, tb);
            cmp(what, dC, Cm, (size_t)M * ldc, 1e-5);
            cu->free(dA); cu->free(dB); cu->free(dC);
            free(A); free(Bm); free(Cm);
        }
}

static void t_gemm_batched(void) {
    int M = 19, N = 23, K = 17, batch = 5;
    long sa = (long)K * M + 7, sb = (long)N * K + 5, sc = (long)M * N + 3; /* trans_a: A is [K,M] */
    size_t na = (size_t)sa * batch, nb = (size_t)sb * batch, nc = (size_t)sc * batch;
    float *A = randv(na, 1), *Bm = randv(nb, 1), *Cm = randv(nc, 1);
    float *dA = upf(A, na), *dB = upf(Bm, nb), *dC = upf(Cm, nc);
    k_gemm_batched(1, 0, M, N, K, 1.3f, A, M, sa, Bm, N, sb, 1.0f, Cm, N, sc, batch);
    cu->gemm_batched(1, 0, M, N, K, 1.3f, dA, M, sa, dB, N, sb, 1.0f, dC, N, sc, batch);
    cmp("gemm_batched (trans_a, beta 1, strides)", dC, Cm, nc, 1e-5);
    cu->free(dA); cu->free(dB); cu->free(dC);
    free(A); free(Bm); free(Cm);
}

/* ids with repeats (a small vocabulary), so the gradient scatter meets the same row many times */
static void t_embeddings(void) {
    int B = 4, T = 33, C = 72, V = 11, P = 40, TV = 2, N = B * T;
    int64_t *ids = malloc(8 * N), *types = malloc(8 * N);
    for (int n = 0; n < N; n++) {
        ids[n] = (int64_t)((frand() + 1) * 0.5 * V) % V;
        types[n] = n % 3 == 0;
    }
    float *wte = randv((size_t)V * C, 1), *wpe = randv((size_t)P * C, 1), *wtt = randv((size_t)TV * C, 1);
    float *out = malloc(4 * (size_t)N * C), *dout = randv((size_t)N * C, 1);
    int64_t *dids = up(ids, 8 * N), *dtypes = up(types, 8 * N);
    float *dwte_ = upf(wte, (size_t)V * C), *dwpe_ = upf(wpe, (size_t)P * C), *dwtt_ = upf(wtt, (size_t)TV * C);
    float *dev_out = dalloc(4 * (size_t)N * C), *dev_dout = upf(dout, (size_t)N * C);
    for (int with_types = 0; with_types < 2; with_types++) {
        const int64_t *ty = with_types ? types : NULL, *dty = with_types ? dtypes : NULL;
        k_embeddings_forward(out, ids, ty, wte, wpe, wtt, B, T, C);
        cu->embeddings_forward(dev_out, dids, dty, dwte_, dwpe_, dwtt_, B, T, C);
        cmp(with_types ? "embeddings_forward" : "embeddings_forward (types NULL)", dev_out, out, (size_t)N * C, 1e-5);
        /* backward accumulates into non-zero gradients (the weights stand in for them) */
        float *gte = copyv(wte, (size_t)V * C), *gpe = copyv(wpe, (size_t)P * C), *gtt = copyv(wtt, (size_t)TV * C);
        float *dgte = upf(gte, (size_t)V * C), *dgpe = upf(gpe, (size_t)P * C), *dgtt = upf(gtt, (size_t)TV * C);
        k_embeddings_backward(gte, gpe, gtt, dout, ids, ty, B, T, C);
        cu->embeddings_backward(dgte, dgpe, dgtt, dev_dout, dids, dty, B, T, C);
        cmp("embeddings_backward dwte (repeated ids)", dgte, gte, (size_t)V * C, 1e-4);
        cmp("embeddings_backward dwpe", dgpe, gpe, (size_t)P * C, 1e-4);
        cmp(with_types ? "embeddings_backward dwtt" : "embeddings_backward dwtt (types NULL)", dgtt, gtt,
            (size_t)TV * C, 1e-4);
        cu->free(dgte); cu->free(dgpe); cu->free(dgtt);
        free(gte); free(gpe); free(gtt);
    }
    cu->free(dids); cu->free(dtypes); cu->free(dwte_); cu->free(dwpe_); cu->free(dwtt_);
    cu->free(dev_out); cu->free(dev_dout);
    free(ids); free(types); free(wte); free(wpe); free(wtt); free(out); free(dout);
}

static void t_layernorm(void) {
    int N = 150, C = 384;
    size_t NC = (size_t)N * C;
    float *x = randv(NC, 2), *w = randv(C, 1), *b = randv(C, 1), *dout = randv(NC, 1);
    for (size_t i = 0; i < NC; i++) x[i] += 20.0f; /* a large mean, as the CPU's comment warns */
    float *out = malloc(4 * NC), *mean = malloc(4 * N), *rstd = malloc(4 * N);
    float *dx = randv(NC, 1), *dw = randv(C, 1), *db = randv(C, 1);
    float *d_x = upf(x, NC), *d_w = upf(w, C), *d_b = upf(b, C), *d_dout = upf(dout, NC);
    float *d_out = dalloc(4 * NC), *d_mean = dalloc(4 * N), *d_rstd = dalloc(4 * N);
    float *d_dx = upf(dx, NC), *d_dw = upf(dw, C), *d_db = upf(db, C);
    k_layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-12f);
    cu->layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-12f);
    cmp("layernorm_forward out", d_out, out, NC, 1e-5);
    cmp("layernorm_forward mean", d_mean, mean, N, 1e-5);
    cmp("layernorm_forward rstd", d_rstd, rstd, N, 1e-5);
    /* backward from the CPU's cache on both sides, so only the backward is compared */
    cu->copy_to_device(d_mean, mean, 4 * N);
    cu->copy_to_device(d_rstd, rstd, 4 * N);
    k_layernorm_backward(dx, dw, db, dout, x, mean, rstd, w, N, C);
    cu->layernorm_backward(d_dx, d_dw, d_db, d_dout, d_x, d_mean, d_rstd, d_w, N, C);
    cmp("layernorm_backward dinp", d_dx, dx, NC, 1e-4);
    cmp("layernorm_backward dweight", d_dw, dw, C, 1e-4);
    cmp("layernorm_backward dbias", d_db, db, C, 1e-4);
    cu->free(d_x); cu->free(d_w); cu->free(d_b); cu->free(d_dout); cu->free(d_out); cu->free(d_mean);
    cu->free(d_rstd); cu->free(d_dx); cu->free(d_dw); cu->free(d_db);
    free(x); free(w); free(b); free(dout); free(out); free(mean); free(rstd); free(dx); free(dw); free(db);
}

static void t_linear(void) {
    int N = 111, C = 96, OC = 288;
    float *x = randv((size_t)N * C, 1), *w = randv((size_t)OC * C, 0.2f), *b = randv(OC, 1);
    float *dout = randv((size_t)N * OC, 1), *out = malloc(4 * (size_t)N * OC);
    float *dx = randv((size_t)N * C, 1), *dw = randv((size_t)OC * C, 1), *db = randv(OC, 1);
    float *d_x = upf(x, (size_t)N * C), *d_w = upf(w, (size_t)OC * C), *d_b = upf(b, OC);
    float *d_dout = upf(dout, (size_t)N * OC), *d_out = dalloc(4 * (size_t)N * OC);
    float *d_dx = upf(dx, (size_t)N * C), *d_dw = upf(dw, (size_t)OC * C), *d_db = upf(db, OC);
    k_linear_forward(out, x, w, b, N, C, OC);
    cu->linear_forward(d_out, d_x, d_w, d_b, N, C, OC);
    cmp("linear_forward", d_out, out, (size_t)N * OC, 1e-5);
    k_linear_forward(out, x, w, NULL, N, C, OC);
    cu->linear_forward(d_out, d_x, d_w, NULL, N, C, OC);
    cmp("linear_forward (bias NULL)", d_out, out, (size_t)N * OC, 1e-5);
    k_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    cu->linear_backward(d_dx, d_dw, d_db, d_dout, d_x, d_w, N, C, OC);
    cmp("linear_backward dinp", d_dx, dx, (size_t)N * C, 1e-4);
    cmp("linear_backward dweight", d_dw, dw, (size_t)OC * C, 1e-4);
    cmp("linear_backward dbias", d_db, db, OC, 1e-4);
    cu->free(d_x); cu->free(d_w); cu->free(d_b); cu->free(d_dout); cu->free(d_out); cu->free(d_dx);
    cu->free(d_dw); cu->free(d_db);
    free(x); free(w); free(b); free(dout); free(out); free(dx); free(dw); free(db);
}

/* one attention shape, with padding in the mask; p = 0 and p = 0.1 */
static void attention_case(int B, int T, int C, int NH, int P) {
    size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_att = (size_t)B * NH * T * T;
    float *qkv = randv(n_qkv, 1.5f), *dout = randv(n_out, 1), *out = malloc(4 * n_out);
    float *att = malloc(4 * n_att), *scratch = malloc(4 * n_att), *mask_add = malloc(4 * (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask_add[b * T + t] = t < T - 3 * b ? 0.0f : -FLT_MAX;
    float *d_qkv = upf(qkv, n_qkv), *d_dout = upf(dout, n_out), *d_out = dalloc(4 * n_out);
    float *d_att = dalloc(4 * n_att), *d_scr = dalloc(4 * n_att), *d_mask = upf(mask_add, (size_t)B * T);
    float ps[2] = {0.0f, 0.1f};
    for (int k = 0; k < 2; k++) {
        float p = ps[k];
        uint64_t seed = 1234, offset = 4096 * 3;
        char what[96];
        k_attention_forward(out, att, qkv, mask_add, B, T, C, NH, P, p, seed, offset);
        cu->attention_forward(d_out, d_att, d_qkv, d_mask, B, T, C, NH, P, p, seed, offset);
        snprintf(what, sizeof what, "attention_forward out (T=%d C=%d p=%.1f)", T, C, p);
        cmp(what, d_out, out, n_out, 1e-5);
        /* the CPU's att carries its dropout marks in the sign bits (|att| is the softmax) and its
         * backward reads them; the GPU's holds the softmax and its backward draws the mask again */
        float *att_abs = malloc(4 * n_att);
        for (size_t e = 0; e < n_att; e++) att_abs[e] = fabsf(att[e]);
        snprintf(what, sizeof what, "attention_forward att (T=%d C=%d p=%.1f)", T, C, p);
        cmp(what, d_att, att_abs, n_att, 1e-5);
        /* backward from the CPU's probabilities, so only the backward is compared */
        float *dqkv = randv(n_qkv, 1), *d_dqkv;
        d_dqkv = upf(dqkv, n_qkv);
        cu->copy_to_device(d_att, att_abs, 4 * n_att);
        free(att_abs);
        k_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, P, p, seed, offset);
        cu->attention_backward(d_dqkv, d_scr, d_dout, d_qkv, d_att, B, T, C, NH, P, p, seed, offset);
        snprintf(what, sizeof what, "attention_backward dqkv (T=%d C=%d p=%.1f)", T, C, p);
        cmp(what, d_dqkv, dqkv, n_qkv, 1e-4);
        cu->free(d_dqkv);
        free(dqkv);
    }
    cu->free(d_qkv); cu->free(d_dout); cu->free(d_out); cu->free(d_att); cu->free(d_scr); cu->free(d_mask);
    free(qkv); free(dout); free(out); free(att); free(scratch); free(mask_add);
}

static void t_attention(void) {
    attention_case(3, 37, 64, 4, 48);    /* rows longer than a warp */
    attention_case(2, 24, 384, 12, 512); /* MiniLM's heads */
    attention_case(2, 5, 32, 2, 64);     /* the tiny fixture's shape */
}

static void t_pointwise(void) {
    size_t n = 20011;
    float *x = randv(n, 4), *dout = randv(n, 1), *out = malloc(4 * n), *dx = randv(n, 1);
    float *d_x = upf(x, n), *d_dout = upf(dout, n), *d_out = dalloc(4 * n), *d_dx = upf(dx, n);
    k_gelu_forward(out, x, n);
    cu->gelu_forward(d_out, d_x, n);
    cmp("gelu_forward", d_out, out, n, 1e-5);
    k_gelu_backward(dx, x, dout, n);
    cu->gelu_backward(d_dx, d_x, d_dout, n);
    cmp("gelu_backward", d_dx, dx, n, 1e-4);
    k_tanh_forward(out, x, n);
    cu->tanh_forward(d_out, d_x, n);
    cmp("tanh_forward", d_out, out, n, 1e-5);
    cu->copy_to_device(d_out, out, 4 * n);
    k_tanh_backward(dx, out, dout, n);
    cu->tanh_backward(d_dx, d_out, d_dout, n);
    cmp("tanh_backward", d_dx, dx, n, 1e-4);
    cu->free(d_x); cu->free(d_dout); cu->free(d_out); cu->free(d_dx);
    free(x); free(dout); free(out); free(dx);
}

static void t_dropout(void) {
    int B = 3, T = 29, C = 70, P = 64;
    size_t n = (size_t)B * T * C;
    float *x = randv(n, 1), *out = malloc(4 * n), *dout = randv(n, 1), *dx = randv(n, 1);
    float *d_x = upf(x, n), *d_out = dalloc(4 * n), *d_dout = upf(dout, n), *d_dx = upf(dx, n);
    uint64_t seed = 42, offset = 1000003; /* an offset that is not a multiple of 4 */
    k_dropout_forward(out, x, B, T, C, P, 0.1f, seed, offset);
    cu->dropout_forward(d_out, d_x, B, T, C, P, 0.1f, seed, offset);
    float *g = down(d_out, n);
    size_t differ = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        differ += (g[i] == 0.0f) != (out[i] == 0.0f);
        dropped += out[i] == 0.0f;
    }
    printf("# dropout p=0.1: %zu of %zu dropped on the CPU, %zu masks differ\n", dropped, n, differ);
    CHECK(differ == 0 && dropped > n / 20 && dropped < n / 5, "dropout_forward: the same mask as the CPU");
    cmp("dropout_forward values", d_out, out, n, 1e-6);
    free(g);
    /* in place, as the model calls it */
    cu->copy_to_device(d_out, x, 4 * n);
    cu->dropout_forward(d_out, d_out, B, T, C, P, 0.1f, seed, offset);
    cmp("dropout_forward in place", d_out, out, n, 1e-6);
    k_dropout_backward(dx, dout, B, T, C, P, 0.1f, seed, offset);
    cu->dropout_backward(d_dx, d_dout, B, T, C, P, 0.1f, seed, offset);
    cmp("dropout_backward", d_dx, dx, n, 1e-6);
    k_dropout_forward(out, x, B, T, C, P, 0.0f, seed, offset);
    cu->dropout_forward(d_out, d_x, B, T, C, P, 0.0f, seed, offset);
    cmp("dropout_forward p=0 copies", d_out, out, n, 0);
    k_dropout_backward(dx, dout, B, T, C, P, 0.0f, seed, offset);
    cu->dropout_backward(d_dx, d_dout, B, T, C, P, 0.0f, seed, offset);
    cmp("dropout_backward p=0 accumulates", d_dx, dx, n, 1e-6);
    cu->free(d_x); cu->free(d_out); cu->free(d_dout); cu->free(d_dx);
    free(x); free(out); free(dout); free(dx);
}

static void t_residual(void) {
    size_t n = 5003;
    float *a = randv(n, 1), *b = randv(n, 1), *out = malloc(4 * n);
    float *d_a = upf(a, n), *d_b = upf(b, n), *d_out = dalloc(4 * n);
    k_residual_forward(out, a, b, n);
    cu->residual_forward(d_out, d_a, d_b, n);
    cmp("residual_forward", d_out, out, n, 0);
    cu->residual_forward(d_a, d_a, d_b, n); /* in place: out == a */
    cmp("residual_forward in place", d_a, out, n, 0);
    cu->copy_to_device(d_a, a, 4 * n);
    k_accumulate(a, b, n);
    cu->accumulate(d_a, d_b, n);
    cmp("accumulate", d_a, a, n, 0);
    cu->free(d_a); cu->free(d_b); cu->free(d_out);
    free(a); free(b); free(out);
}

static void t_cls(void) {
    int B = 4, T = 9, C = 33;
    size_t n = (size_t)B * T * C;
    float *x = randv(n, 1), *out = malloc(4 * (size_t)B * C), *dout = randv((size_t)B * C, 1), *dx = randv(n, 1);
    float *d_x = upf(x, n), *d_out = dalloc(4 * (size_t)B * C), *d_dout = upf(dout, (size_t)B * C), *d_dx = upf(dx, n);
    k_cls_forward(out, x, B, T, C);
    cu->cls_forward(d_out, d_x, B, T, C);
    cmp("cls_forward", d_out, out, (size_t)B * C, 0);
    k_cls_backward(dx, dout, B, T, C);
    cu->cls_backward(d_dx, d_dout, B, T, C);
    cmp("cls_backward", d_dx, dx, n, 0);
    cu->free(d_x); cu->free(d_out); cu->free(d_dout); cu->free(d_dx);
    free(x); free(out); free(dout); free(dx);
}

static void t_crossentropy(void) {
    int B = 37, L = 5;
    size_t n = (size_t)B * L;
    float *z = randv(n, 6), *probs = malloc(4 * n), loss = 0, *dz = randv(n, 1);
    int64_t *tg = malloc(8 * B);
    for (int b = 0; b < B; b++) tg[b] = b % L;
    float *d_z = upf(z, n), *d_probs = dalloc(4 * n), *d_loss = dalloc(4), *d_dz = upf(dz, n);
    int64_t *d_tg = up(tg, 8 * B);
    k_crossentropy_forward(&loss, probs, z, tg, NULL, B, L);
    cu->crossentropy_forward(d_loss, d_probs, d_z, d_tg, NULL, B, L);
    cmp("crossentropy_forward loss", d_loss, &loss, 1, 1e-5);
    cmp("crossentropy_forward probs", d_probs, probs, n, 1e-5);
    cu->copy_to_device(d_probs, probs, 4 * n);
    k_crossentropy_backward(dz, probs, tg, NULL, B, L, 0.75f);
    cu->crossentropy_backward(d_dz, d_probs, d_tg, NULL, B, L, 0.75f);
    cmp("crossentropy_backward", d_dz, dz, n, 1e-4);
    /* class weights: the weighted mean, forward and backward */
    float w[5] = {0.5f, 2.0f, 1.25f, 0.0f, 3.0f};
    float *d_w = upf(w, 5);
    k_crossentropy_forward(&loss, probs, z, tg, w, B, L);
    cu->crossentropy_forward(d_loss, d_probs, d_z, d_tg, d_w, B, L);
    cmp("crossentropy_forward weighted loss", d_loss, &loss, 1, 1e-5);
    cu->copy_to_device(d_probs, probs, 4 * n);
    k_crossentropy_backward(dz, probs, tg, w, B, L, 0.75f);
    cu->crossentropy_backward(d_dz, d_probs, d_tg, d_w, B, L, 0.75f);
    cmp("crossentropy_backward weighted", d_dz, dz, n, 1e-4);
    cu->free(d_w);
    k_crossentropy_forward(NULL, probs, z, NULL, NULL, B, L);
    cu->fill_f32(d_probs, -1.0f, n);
    cu->softmax_rows(d_probs, d_z, B, L);
    cmp("softmax_rows", d_probs, probs, n, 1e-5);
    cu->free(d_z); cu->free(d_probs); cu->free(d_loss); cu->free(d_dz); cu->free(d_tg);
    free(z); free(probs); free(dz); free(tg);
}

static void t_mask(void) {
    size_t n = 300;
    int64_t *m = malloc(8 * n);
    float *ref = malloc(4 * n);
    for (size_t i = 0; i < n; i++) {
        m[i] = i % 7 != 3;
        ref[i] = m[i] ? 0.0f : -FLT_MAX;
    }
    int64_t *d_m = up(m, 8 * n);
    float *d_a = dalloc(4 * n), *g;
    cu->mask_to_additive(d_a, d_m, n);
    g = down(d_a, n);
    CHECK(memcmp(g, ref, 4 * n) == 0 && !cu->error(), "mask_to_additive: 0 for tokens, -FLT_MAX for padding");
    free(g);
    for (size_t i = 0; i < n; i++) ref[i] = 0.0f;
    cu->fill_f32(d_a, 5.0f, n);
    cu->mask_to_additive(d_a, NULL, n);
    g = down(d_a, n);
    CHECK(memcmp(g, ref, 4 * n) == 0 && !cu->error(), "mask_to_additive: NULL mask gives all 0");
    free(g);
    cu->free(d_m); cu->free(d_a);
    free(m); free(ref);
}

static void t_adamw(void) {
    size_t n = 70001;
    for (int variant = 0; variant < 2; variant++) {
        float *p = randv(n, 1), *m = randv(n, 0.01f), *v = randv(n, 0.001f);
        for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
        float *d_p = upf(p, n), *d_m = upf(m, n), *d_v = upf(v, n), *d_g = dalloc(4 * n);
        for (int step = 1; step <= 3; step++) {
            float *g = randv(n, 0.1f);
            cu->copy_to_device(d_g, g, 4 * n);
            k_adamw_hparams_t hp = {0.9f, 0.999f, 0.1f, 0.001f, 1e-8f, 2e-5f * step, 1.0f, 0.0f, 1.0f, variant, 0, 1.0f};
            if (variant) {
                hp.bc2_sqrt = (float)sqrt(1.0 - pow(0.999, step));
                hp.decay = 2e-5f * 0.01f;
                hp.keep = (float)(1.0 - 2e-5 * 0.01);
            } else {
                hp.decay = 2e-5f * 0.01f;
            }
            k_adamw_step(p, g, m, v, n, hp);
            cu->adamw_step(d_p, d_g, d_m, d_v, n, hp);
            free(g);
        }
        cmp(variant ? "adamw_step (torch), 3 steps: param" : "adamw_step (transformers), 3 steps: param", d_p, p, n, 1e-5);
        cmp(variant ? "adamw_step (torch), 3 steps: m" : "adamw_step (transformers), 3 steps: m", d_m, m, n, 1e-5);
        cmp(variant ? "adamw_step (torch), 3 steps: v" : "adamw_step (transformers), 3 steps: v", d_v, v, n, 1e-5);
        cu->free(d_p); cu->free(d_m); cu->free(d_v); cu->free(d_g);
        free(p); free(m); free(v);
    }
}

static void t_norm(void) {
    size_t n = 1000003;
    float *x = randv(n, 0.05f);
    float *d_x = upf(x, n);
    double *d_s = dalloc(sizeof(double)), s = 0;
    cu->sumsq_f32(d_s, d_x, n);
    cu->copy_to_host(&s, d_s, sizeof s);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    printf("# sumsq: gpu %.17g cpu-serial %.17g k_sumsq_f32 %.17g\n", s, ref, k_sumsq_f32(x, n));
    CHECK(fabs(s - ref) <= 1e-10 * ref && !cu->error(), "sumsq_f32 in double (within 1e-10 of a serial sum)");
    cu->scale_f32(d_x, n, 0.5f);
    k_scale_f32(x, n, 0.5f);
    cmp("scale_f32", d_x, x, n, 0);
    /* clip: the norm is sqrt(ref/4) ~ 14.4; max_norm 1 scales, max_norm 100 does not */
    double ss = ref / 4;
    cu->copy_to_device(d_s, &ss, sizeof ss);
    float *x2 = copyv(x, n);
    cu->clip_scale_f32(d_x, n, d_s, 100.0);
    cmp("clip_scale_f32 (norm < max_norm: unchanged)", d_x, x2, n, 0);
    float coef = (float)1.0 / ((float)sqrt(ss) + 1e-6f);
    k_scale_f32(x2, n, coef);
    cu->clip_scale_f32(d_x, n, d_s, 1.0);
    cmp("clip_scale_f32 (norm > max_norm: scaled)", d_x, x2, n, 0);
    cu->free(d_x); cu->free(d_s);
    free(x); free(x2);
}

static void t_memory(void) {
    size_t c0, p0, c1, p1, c2, p2;
    cu->memory(&c0, &p0);
    void *a = cu->alloc(1 << 20);
    cu->memory(&c1, &p1);
    CHECK(a && c1 == c0 + (1 << 20) && p1 >= c1, "memory: alloc of 1 MiB counts (current %zu -> %zu, peak %zu)", c0, c1, p1);
    /* memzero, copy_on_device */
    float *h = randv(1 << 18, 1), *z = calloc(1 << 18, 4);
    void *b = cu->alloc(1 << 20);
    cu->copy_to_device(b, h, 1 << 20);
    cu->copy_on_device(a, b, 1 << 20);
    cmp("copy_on_device", a, h, 1 << 18, 0);
    cu->memzero(a, 1 << 20);
    cmp("memzero", a, z, 1 << 18, 0);
    cu->free(a);
    cu->free(b);
    cu->memory(&c2, &p2);
    CHECK(c2 == c0 && p2 >= c0 + (2 << 20), "memory: free returns it (current %zu, peak %zu)", c2, p2);
    cu->free(NULL);
    CHECK(cu->error() == NULL, "free(NULL) is no error");
    void *huge = cu->alloc((size_t)1 << 52);
    const char *e = cu->error();
    printf("# huge alloc: %s\n", e ? e : "(no error)");
    CHECK(huge == NULL && e && strncmp(e, "alloc: ", 7) == 0, "a failed alloc returns NULL and error() names the operation");
    CHECK(cu->error() == NULL, "error() clears the error");
    cu->synchronize();
    CHECK(cu->error() == NULL, "synchronize after a handled failure: no error");
    free(h); free(z);
}

/* the ops with reductions, run twice on the same inputs */
static void t_determinism(void) {
    int B = 8, T = 64, C = 384, NH = 12, P = 512, V = 30, N = B * T;
    size_t n_qkv = (size_t)N * 3 * C, n_out = (size_t)N * C, n_att = (size_t)B * NH * T * T;
    float *h_qkv = randv(n_qkv, 1), *h_dout = randv(n_out, 1);
    float *qkv = upf(h_qkv, n_qkv), *dout = upf(h_dout, n_out), *mask = dalloc(4 * (size_t)B * T);
    cu->mask_to_additive(mask, NULL, (size_t)B * T);
    float *out[2], *att[2], *dqkv[2], *scr = dalloc(4 * n_att);
    for (int r = 0; r < 2; r++) {
        out[r] = dalloc(4 * n_out); att[r] = dalloc(4 * n_att); dqkv[r] = dalloc(4 * n_qkv);
        cu->memzero(dqkv[r], 4 * n_qkv);
        cu->attention_forward(out[r], att[r], qkv, mask, B, T, C, NH, P, 0.1f, 7, 0);
        cu->attention_backward(dqkv[r], scr, dout, qkv, att[r], B, T, C, NH, P, 0.1f, 7, 0);
    }
    same_bits("attention_forward", out[0], out[1], 4 * n_out);
    same_bits("attention_backward", dqkv[0], dqkv[1], 4 * n_qkv);
    /* embeddings, layernorm, linear gradients and sumsq */
    int64_t *h_ids = malloc(8 * N);
    for (int n = 0; n < N; n++) h_ids[n] = n % V;
    int64_t *ids = up(h_ids, 8 * N);
    float *h_x = randv(n_out, 1), *h_w = randv((size_t)C * C, 0.1f);
    float *x = upf(h_x, n_out), *w = upf(h_w, (size_t)C * C), *mean = dalloc(4 * N), *rstd = dalloc(4 * N);
    float *ln = dalloc(4 * n_out);
    cu->layernorm_forward(ln, mean, rstd, x, w, w, N, C, 1e-12f);
    float *gte[2], *gw[2], *gb[2], *lw[2], *lb[2];
    double *ss[2];
    for (int r = 0; r < 2; r++) {
        gte[r] = dalloc(4 * (size_t)V * C); gw[r] = dalloc(4 * (size_t)C * C); gb[r] = dalloc(4 * C);
        lw[r] = dalloc(4 * C); lb[r] = dalloc(4 * C); ss[r] = dalloc(8);
        cu->memzero(gte[r], 4 * (size_t)V * C); cu->memzero(gw[r], 4 * (size_t)C * C); cu->memzero(gb[r], 4 * C);
        cu->memzero(lw[r], 4 * C); cu->memzero(lb[r], 4 * C);
        cu->embeddings_backward(gte[r], NULL, NULL, dout, ids, NULL, B, T, C);
        cu->linear_backward(NULL, gw[r], gb[r], dout, x, w, N, C, C);
        cu->layernorm_backward(NULL, lw[r], lb[r], dout, x, mean, rstd, w, N, C);
        cu->sumsq_f32(ss[r], qkv, n_qkv);
    }
    same_bits("embeddings_backward dwte", gte[0], gte[1], 4 * (size_t)V * C);
    same_bits("linear_backward dweight", gw[0], gw[1], 4 * (size_t)C * C);
    same_bits("linear_backward dbias", gb[0], gb[1], 4 * C);
    same_bits("layernorm_backward dweight", lw[0], lw[1], 4 * C);
    same_bits("layernorm_backward dbias", lb[0], lb[1], 4 * C);
    same_bits("sumsq_f32", ss[0], ss[1], 8);
    CHECK(cu->error() == NULL, "determinism runs: no error kept");
    free(h_qkv); free(h_dout); free(h_ids); free(h_x); free(h_w);
}

int main(void) {
    int n = (int)(sizeof NAMES / sizeof NAMES[0]);
    int usable = 0;
#ifdef BL_WITH_CUDA
    cu = bl_backend_cuda();
    usable = cu && bl_backend_cuda_usable();
#endif
    if (!usable) {
        const char *why = cu ? k_cuda_describe() : "built without CUDA";
        int said = strncmp(why, "no CUDA device", 14) == 0; /* k_cuda_describe's own words */
        for (int i = 0; i < n; i++) SKIP("%s: %s%s%s", NAMES[i], said ? "" : "no CUDA device (", why, said ? "" : ")");
        return 0;
    }
    printf("# %s\n", k_cuda_describe());
    k_set_num_threads(1); /* the CPU side in a fixed order */
    void (*checks[])(void) = {t_elementwise, t_fill,     t_gemm,   t_gemm_batched, t_embeddings, t_layernorm,
                              t_linear,      t_attention, t_pointwise, t_dropout,  t_residual,   t_cls,
                              t_crossentropy, t_mask,    t_adamw,  t_norm,         t_memory,     t_determinism};
    for (int i = 0; i < n; i++) {
        printf("# -- %s\n", NAMES[i]);
        checks[i]();
    }
    CT_DONE();
}
