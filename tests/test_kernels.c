/* test_kernels.c: the BERT layer kernels (kernels/bert_kernels.h) against PyTorch (fixtures written
 * by tests/fixtures/gen_kernels.py: float64 autograd from float32 inputs), against central finite
 * differences of their own forwards, and for the semantics the model relies on: backward accumulates,
 * NULL gradients are skipped, dropout masks come from (seed, offset) and the element's coordinates in
 * the tensor padded to P tokens (not on T), and backward reuses them.
 * Run from the repository root (tests/run.sh does). */
#include "../kernels/bert_kernels.h"
#include "../kernels/optim_kernels.h"
#include "../kernels/kernels.h"
#include "../kernels/cpu/simd16.h" /* BL_TILES: the register tiles are built (AVX-512, or AVX2 with FMA) */
#include "../runtime/rng.h"
#include "ctest.h"
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FIXDIR "tests/fixtures/kernels/"
#define TOL 1e-5 /* forward and gradients vs torch, float32 kernels vs float64 reference */

/* ---- fixtures: index.txt lines `name dtype offset shape`, data.bin raw little-endian ------------ */

typedef struct fixture {
    char name[64], dtype[8];
    long offset, numel;
} fixture_t;

static fixture_t fx_index[256];
static int fx_count = 0;
static unsigned char *fx_data = NULL;
static long fx_size = 0;

static int fx_load(void) {
    FILE *f = fopen(FIXDIR "index.txt", "r");
    if (!f) return -1;
    char shape[128];
    while (fx_count < 256 && fscanf(f, "%63s %7s %ld %127s", fx_index[fx_count].name,
                                    fx_index[fx_count].dtype, &fx_index[fx_count].offset, shape) == 4) {
        long n = 1;
        for (char *s = strtok(shape, ","); s; s = strtok(NULL, ",")) n *= atol(s);
        fx_index[fx_count++].numel = n;
    }
    fclose(f);
    f = fopen(FIXDIR "data.bin", "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    fx_size = ftell(f);
    fseek(f, 0, SEEK_SET);
    fx_data = malloc(fx_size);
    long got = (long)fread(fx_data, 1, fx_size, f);
    fclose(f);
    return got == fx_size ? 0 : -1;
}

static const fixture_t *fx_find(const char *name, const char *dtype) {
    for (int i = 0; i < fx_count; i++)
        if (!strcmp(fx_index[i].name, name)) {
            if (strcmp(fx_index[i].dtype, dtype) || fx_index[i].offset < 0 ||
                fx_index[i].offset + fx_index[i].numel * (dtype[0] == 'f' ? 4 : 8) > fx_size) {
                fprintf(stderr, "fixture %s: bad dtype or range\n", name);
                exit(2);
            }
            return &fx_index[i];
        }
    fprintf(stderr, "fixture %s missing from " FIXDIR "index.txt (rerun gen_kernels.py)\n", name);
    exit(2);
}

/* A fresh copy of fixture `name` (float32); *n gets its element count when n is not NULL. */
static float *fxf(const char *name, long *n) {
    const fixture_t *e = fx_find(name, "f32");
    float *p = malloc(sizeof(float) * e->numel);
    memcpy(p, fx_data + e->offset, sizeof(float) * e->numel);
    if (n) *n = e->numel;
    return p;
}

static int64_t *fxi(const char *name, long *n) {
    const fixture_t *e = fx_find(name, "i64");
    int64_t *p = malloc(sizeof(int64_t) * e->numel);
    memcpy(p, fx_data + e->offset, sizeof(int64_t) * e->numel);
    if (n) *n = e->numel;
    return p;
}

static long fx_numel(const char *name) {
    for (int i = 0; i < fx_count; i++)
        if (!strcmp(fx_index[i].name, name)) return fx_index[i].numel;
    return -1;
}

/* ---- comparisons --------------------------------------------------------------------------------- */

static double max_abs_diff(const float *a, const float *b, long n, double scale_b) {
    double m = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - scale_b * b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* got[n] vs want[n] (times scale) within tol, printing the largest difference */
static void check_close(const char *what, const float *got, const float *want, long n, double scale,
                        double tol) {
    double d = max_abs_diff(got, want, n, scale);
    CHECK(d <= tol, "%s (max |diff| %.3g, tol %.0e)", what, d, tol);
}

static float *zeros(long n) { return calloc(n, sizeof(float)); }
static float *copyf(const float *a, long n) {
    float *p = malloc(sizeof(float) * n);
    memcpy(p, a, sizeof(float) * n);
    return p;
}
static float *randn(long n, float scale) {
    static rng_t r = {7, RNG_STREAM_USER, 0};
    float *p = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) p[i] = scale * rng_normal(&r);
    return p;
}
static double dot(const float *a, const float *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- finite differences -------------------------------------------------------------------------- */

/* loss(ctx) = sum(forward(...) * R) in double; the kernel's backward with dout = R must equal its
 * central difference. Checks every `step`-th element of x[n] and prints the largest error, scaled
 * |fd - g| / max(1, |g|). */
typedef double (*lossfn)(void *ctx);

static void fd_check(const char *what, lossfn f, void *ctx, float *x, long n, const float *grad,
                     long step, float eps, double tol) {
    double worst = 0.0;
    long worst_i = -1;
    for (long i = 0; i < n; i += step) {
        float x0 = x[i];
        float xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double e = fabs(fd - grad[i]) / fmax(1.0, fabs(grad[i]));
        if (!(e <= worst)) { worst = e; worst_i = i; }
    }
    CHECK(worst <= tol, "finite differences: %s (largest scaled error %.3g at %ld, tol %.0e)", what,
          worst, worst_i, tol);
}

/* ---- embeddings ---------------------------------------------------------------------------------- */

typedef struct { float *out, *wte, *wpe, *wtt, *R; int64_t *ids, *types; int B, T, C; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    k_embeddings_forward(c->out, c->ids, c->types, c->wte, c->wpe, c->wtt, c->B, c->T, c->C);
    return dot(c->out, c->R, (long)c->B * c->T * c->C);
}

static void test_embeddings(void) {
    long nte, npe, ntt, n;
    int64_t *ids = fxi("emb.ids", &n), *types = fxi("emb.types", NULL);
    float *wte = fxf("emb.wte", &nte), *wpe = fxf("emb.wpe", &npe), *wtt = fxf("emb.wtt", &ntt);
    float *dout = fxf("emb.dout", NULL), *want = fxf("emb.out", NULL);
    int B = 2, T = 5, C = 8;
    float *out = zeros(n * C);
    k_embeddings_forward(out, ids, types, wte, wpe, wtt, B, T, C);
    check_close("embeddings forward vs torch", out, want, n * C, 1.0, TOL);
    float *gte = zeros(nte), *gpe = zeros(npe), *gtt = zeros(ntt);
    k_embeddings_backward(gte, gpe, gtt, dout, ids, types, B, T, C);
    float *w1 = fxf("emb.dwte", NULL), *w2 = fxf("emb.dwpe", NULL), *w3 = fxf("emb.dwtt", NULL);
    check_close("embeddings backward dwte (repeated ids) vs torch", gte, w1, nte, 1.0, TOL);
    check_close("embeddings backward dwpe vs torch", gpe, w2, npe, 1.0, TOL);
    check_close("embeddings backward dwtt vs torch", gtt, w3, ntt, 1.0, TOL);
    k_embeddings_backward(gte, gpe, gtt, dout, ids, types, B, T, C);
    check_close("embeddings backward accumulates (second call doubles dwte)", gte, w1, nte, 2.0, TOL);
    check_close("embeddings backward accumulates (dwtt)", gtt, w3, ntt, 2.0, TOL);
    memset(gpe, 0, sizeof(float) * npe);
    k_embeddings_backward(NULL, gpe, NULL, dout, ids, types, B, T, C);
    check_close("embeddings backward with NULL dwte/dwtt still fills dwpe", gpe, w2, npe, 1.0, TOL);
    /* types == NULL means all type 0 */
    int64_t *t0 = calloc(n, sizeof(int64_t));
    float *o0 = zeros(n * C);
    k_embeddings_forward(out, ids, NULL, wte, wpe, wtt, B, T, C);
    k_embeddings_forward(o0, ids, t0, wte, wpe, wtt, B, T, C);
    check_close("embeddings forward types=NULL equals all-zero types", out, o0, n * C, 1.0, 0.0);
    /* finite differences through the word table */
    emb_ctx c = {out, wte, wpe, wtt, dout, ids, types, B, T, C};
    fd_check("embeddings dwte", emb_loss, &c, wte, nte, w1, 1, 1e-2f, 1e-3);
    fd_check("embeddings dwpe", emb_loss, &c, wpe, npe, w2, 1, 1e-2f, 1e-3);
    free(ids); free(types); free(t0); free(o0); free(wte); free(wpe); free(wtt); free(dout);
    free(want); free(out); free(gte); free(gpe); free(gtt); free(w1); free(w2); free(w3);
}

/* ---- layernorm ----------------------------------------------------------------------------------- */

typedef struct { float *out, *mean, *rstd, *x, *w, *b, *R; int N, C; } ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    k_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-12f);
    return dot(c->out, c->R, (long)c->N * c->C);
}

static void test_layernorm(const char *tag) {
    char k[64];
    long n, C;
#define FX(s) (snprintf(k, sizeof k, "%s.%s", tag, s), fxf(k, NULL))
    snprintf(k, sizeof k, "%s.w", tag);
    C = fx_numel(k);
    snprintf(k, sizeof k, "%s.x", tag);
    n = fx_numel(k);
    int N = (int)(n / C);
    float *x = FX("x"), *w = FX("w"), *b = FX("b"), *dout = FX("dout"), *want = FX("out");
    float *wm = FX("mean"), *wr = FX("rstd"), *wdx = FX("dx"), *wdw = FX("dw"), *wdb = FX("db");
#undef FX
    float *out = zeros(n), *mean = zeros(N), *rstd = zeros(N);
    char what[128];
    k_layernorm_forward(out, mean, rstd, x, w, b, N, (int)C, 1e-12f);
    { /* the fused residual + layer norm: the bytes of the two calls (res in place and not) */
        float *y = randn(n, 1.0f), *r1 = zeros(n), *o1 = zeros(n), *m1 = zeros(N), *s1 = zeros(N);
        float *r2 = copyf(x, n), *o2 = zeros(n), *m2 = zeros(N), *s2 = zeros(N), *r3 = zeros(n);
        k_residual_forward(r1, x, y, n);
        k_layernorm_forward(o1, m1, s1, r1, w, b, N, (int)C, 1e-12f);
        k_residual_layernorm_forward(r2, o2, m2, s2, r2, y, w, b, N, (int)C, 1e-12f);
        int same = !memcmp(r1, r2, sizeof(float) * n) && !memcmp(o1, o2, sizeof(float) * n) &&
                   !memcmp(m1, m2, sizeof(float) * N) && !memcmp(s1, s2, sizeof(float) * N);
        k_residual_layernorm_forward(r3, o2, NULL, NULL, x, y, w, b, N, (int)C, 1e-12f);
        same &= !memcmp(r1, r3, sizeof(float) * n) && !memcmp(o1, o2, sizeof(float) * n);
        CHECK(same, "k_residual_layernorm_forward: the sum and its layer norm, the bytes of k_residual_forward "
                    "and k_layernorm_forward (in place, and into another buffer without mean and rstd)");
        free(y); free(r1); free(o1); free(m1); free(s1); free(r2); free(o2); free(m2); free(s2); free(r3);
    }
    snprintf(what, sizeof what, "layernorm forward N=%d C=%ld eps=1e-12 vs torch", N, C);
    check_close(what, out, want, n, 1.0, TOL);
    check_close("layernorm cached mean", mean, wm, N, 1.0, TOL);
    /* rstd of the row scaled by 1e-3 is ~1e3: compare relatively */
    double worst = 0.0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(rstd[i] - wr[i]) / wr[i]);
    CHECK(worst <= 1e-5, "layernorm cached rstd (max relative diff %.3g)", worst);
    float *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    k_layernorm_backward(dx, dw, db, dout, x, mean, rstd, w, N, (int)C);
    /* the 1e-3 row's dx scales with its rstd ~1e3: each row is compared relative to max(1, its
     * largest |dx|) */
    double dxmax = 0.0, rel = 0.0;
    for (int r = 0; r < N; r++) {
        double rm = 1.0, e = 0.0;
        for (long c = 0; c < C; c++) rm = fmax(rm, fabs(wdx[r * C + c]));
        for (long c = 0; c < C; c++) e = fmax(e, fabs(dx[r * C + c] - wdx[r * C + c]));
        rel = fmax(rel, e / rm);
        dxmax = fmax(dxmax, rm);
    }
    CHECK(rel <= TOL, "layernorm backward dx vs torch (max |diff| / max(1, row max |dx|) %.3g, tol %.0e)",
          rel, TOL);
    check_close("layernorm backward dweight vs torch", dw, wdw, C, 1.0, TOL);
    check_close("layernorm backward dbias vs torch", db, wdb, C, 1.0, TOL);
    k_layernorm_backward(dx, dw, db, dout, x, mean, rstd, w, N, (int)C);
    check_close("layernorm backward accumulates (dx doubles)", dx, wdx, n, 2.0, 2 * TOL * fmax(1.0, dxmax));
    check_close("layernorm backward accumulates (dweight doubles)", dw, wdw, C, 2.0, 2 * TOL);
    memset(db, 0, sizeof(float) * C);
    k_layernorm_backward(NULL, NULL, db, dout, x, mean, rstd, w, N, (int)C);
    check_close("layernorm backward with NULL dinp/dweight still fills dbias", db, wdb, C, 1.0, TOL);
    { /* the writing variant: dinp over what it held, the bytes of the adding one onto zero */
        float *z = zeros(n), *g = randn(n, 3.0f), *zw = zeros(C), *gw = copyf(dw, C), *zb = zeros(C), *gb = copyf(db, C);
        float *w0 = copyf(dw, C), *b0 = copyf(db, C);
        k_layernorm_backward(z, zw, zb, dout, x, mean, rstd, w, N, (int)C);
        k_layernorm_backward_set(g, gw, gb, dout, x, mean, rstd, w, N, (int)C);
        k_layernorm_backward(NULL, w0, b0, dout, x, mean, rstd, w, N, (int)C);
        CHECK(!memcmp(g, z, sizeof(float) * n) && !memcmp(gw, w0, sizeof(float) * C) && !memcmp(gb, b0, sizeof(float) * C),
              "k_layernorm_backward_set: dinp written (the bytes onto zero), dweight and dbias added to");
        free(z); free(g); free(zw); free(gw); free(zb); free(gb); free(w0); free(b0);
    }
    free(x); free(w); free(b); free(dout); free(want); free(wm); free(wr); free(wdx); free(wdw);
    free(wdb); free(out); free(mean); free(rstd); free(dx); free(dw); free(db);
}

/* The forward's mean and rstd against a long-double reference at widths around its 8-wide sums
 * (1..8 and tails), rows offset far from zero (the case the double sums are for). */
static void test_layernorm_widths(void) {
    int ok = 1;
    double worst = 0.0;
    for (int C = 1; C <= 41; C += (C < 9 ? 1 : 8)) {
        int N = 3;
        float *x = randn(N * C, 1.0f), *w = randn(C, 0.5f), *b = randn(C, 0.5f), *o = zeros(N * C);
        float *mean = zeros(N), *rstd = zeros(N);
        for (int i = 0; i < N * C; i++) x[i] += 50.0f * (float)(i / C);
        k_layernorm_forward(o, mean, rstd, x, w, b, N, C, 1e-5f);
        for (int n = 0; n < N; n++) {
            long double s = 0, v = 0;
            for (int c = 0; c < C; c++) s += x[n * C + c];
            long double m = s / C;
            for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
            long double r = 1.0L / sqrtl(v / C + 1e-5L);
            double dm = fabs((double)(mean[n] - m)) / (fabs((double)m) + 1.0), dr = fabs((double)(rstd[n] - r)) / (double)r;
            if (dm > worst) worst = dm;
            if (dr > worst) worst = dr;
            for (int c = 0; c < C; c++) {
                float want = (x[n * C + c] - mean[n]) * rstd[n] * w[c] + b[c];
                if (o[n * C + c] != want) ok = 0;
            }
        }
        free(x); free(w); free(b); free(o); free(mean); free(rstd);
    }
    CHECK(ok && worst < 2e-7, "layernorm forward, C = 1..8, 9..41 (the 8-wide sums' tails), rows near 0..100: mean and rstd within %.2g of long double", worst);
}

static void test_layernorm_fd(void) {
    int N = 5, C = 24;
    float *x = randn(N * C, 1.0f), *w = randn(C, 0.5f), *b = randn(C, 0.5f), *R = randn(N * C, 1.0f);
    for (int i = 0; i < N * C; i++) x[i] += (float)(i / C); /* rows with different means */
    float *out = zeros(N * C), *mean = zeros(N), *rstd = zeros(N);
    float *dx = zeros(N * C), *dw = zeros(C), *db = zeros(C);
    ln_ctx c = {out, mean, rstd, x, w, b, R, N, C};
    ln_loss(&c);
    k_layernorm_backward(dx, dw, db, R, x, mean, rstd, w, N, C);
    fd_check("layernorm dinp", ln_loss, &c, x, N * C, dx, 1, 1e-2f, 2e-3);
    fd_check("layernorm dweight", ln_loss, &c, w, C, dw, 1, 1e-2f, 2e-3);
    fd_check("layernorm dbias", ln_loss, &c, b, C, db, 1, 1e-2f, 2e-3);
    free(x); free(w); free(b); free(R); free(out); free(mean); free(rstd); free(dx); free(dw); free(db);
}

/* ---- linear -------------------------------------------------------------------------------------- */

typedef struct { float *out, *x, *w, *b, *R; int N, C, OC; } lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    k_linear_forward(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return dot(c->out, c->R, (long)c->N * c->OC);
}

static void test_linear(void) {
    int N = 7, C = 12, OC = 9;
    float *x = fxf("lin.x", NULL), *w = fxf("lin.w", NULL), *b = fxf("lin.b", NULL);
    float *dout = fxf("lin.dout", NULL), *want = fxf("lin.out", NULL), *wdx = fxf("lin.dx", NULL);
    float *wdw = fxf("lin.dw", NULL), *wdb = fxf("lin.db", NULL);
    float *out = zeros(N * OC), *dx = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
    k_linear_forward(out, x, w, b, N, C, OC);
    check_close("linear forward vs torch", out, want, N * OC, 1.0, TOL);
    k_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    check_close("linear backward dinp vs torch", dx, wdx, N * C, 1.0, TOL);
    check_close("linear backward dweight vs torch", dw, wdw, OC * C, 1.0, TOL);
    check_close("linear backward dbias vs torch", db, wdb, OC, 1.0, TOL);
    k_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    check_close("linear backward accumulates (dinp doubles)", dx, wdx, N * C, 2.0, 2 * TOL);
    check_close("linear backward accumulates (dweight doubles)", dw, wdw, OC * C, 2.0, 2 * TOL);
    check_close("linear backward accumulates (dbias doubles)", db, wdb, OC, 2.0, 2 * TOL);
    memset(dw, 0, sizeof(float) * OC * C);
    k_linear_backward(NULL, dw, NULL, dout, x, w, N, C, OC);
    check_close("linear backward with NULL dinp/dbias still fills dweight", dw, wdw, OC * C, 1.0, TOL);
    /* bias NULL: out = x @ W^T; out - that = bias on every row */
    float *o2 = zeros(N * OC);
    k_linear_forward(o2, x, w, NULL, N, C, OC);
    double d = 0.0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) d = fmax(d, fabs(out[n * OC + o] - o2[n * OC + o] - b[o]));
    CHECK(d <= 1e-5, "linear forward with bias NULL (max |diff| %.3g)", d);
    /* finite differences */
    memset(dx, 0, sizeof(float) * N * C);
    memset(dw, 0, sizeof(float) * OC * C);
    memset(db, 0, sizeof(float) * OC);
    k_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    lin_ctx c = {out, x, w, b, dout, N, C, OC};
    fd_check("linear dinp", lin_loss, &c, x, N * C, dx, 1, 1e-2f, 1e-3);
    fd_check("linear dweight", lin_loss, &c, w, OC * C, dw, 1, 1e-2f, 1e-3);
    fd_check("linear dbias", lin_loss, &c, b, OC, db, 1, 1e-2f, 1e-3);
    free(x); free(w); free(b); free(dout); free(want); free(wdx); free(wdw); free(wdb); free(out);
    free(dx); free(dw); free(db); free(o2);
    /* k_linear_backward_set writes dweight whatever it held: the bytes k_linear_backward adds onto
     * a zero one; dinp and dbias still add. On the tiles (45 tokens; 60 with dW's x panel copied,
     * C > OC), on sgemm (300 tokens with AVX-512's limit, C not a multiple of 16), with 1 and 2
     * threads */
    const int shapes[][3] = {{45, 384, 1152}, {300, 384, 384}, {45, 200, 384}, {7, 12, 9}, {60, 1536, 384}};
    int same = 1, adds = 1, to_set = 1, to_dx = 1, threads = omp_get_max_threads();
    for (int si = 0; si < 5; si++) {
        int n = shapes[si][0], c = shapes[si][1], oc = shapes[si][2];
        float *xs = randn((long)n * c, 1.0f), *ws = randn((long)oc * c, 0.1f), *dy = randn((long)n * oc, 1.0f);
        float *dx0 = randn((long)n * c, 1.0f), *db0 = randn(oc, 1.0f);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            float *dwa = zeros((long)oc * c), *dwb = randn((long)oc * c, 5.0f);
            float *dxa = copyf(dx0, (long)n * c), *dxb = copyf(dx0, (long)n * c);
            float *dba = copyf(db0, oc), *dbb = copyf(db0, oc);
            k_linear_backward(dxa, dwa, dba, dy, xs, ws, n, c, oc);
            k_linear_backward_set(dxb, dwb, dbb, dy, xs, ws, n, c, oc);
            same &= !memcmp(dwa, dwb, sizeof(float) * (size_t)oc * c);
            adds &= !memcmp(dxa, dxb, sizeof(float) * (size_t)n * c) && !memcmp(dba, dbb, sizeof(float) * (size_t)oc);
            /* k_linear_backward_to: dinp written too (onto garbage), or dinp alone, dweight added */
            float *dxz = zeros((long)n * c), *dxc = randn((long)n * c, 5.0f), *dwc = randn((long)oc * c, 5.0f);
            float *dbc = copyf(db0, oc), *dxd = randn((long)n * c, 5.0f), *dwd = copyf(dwb, (long)oc * c);
            float *dwe = copyf(dwb, (long)oc * c), *dbd = copyf(db0, oc);
            k_linear_backward(dxz, NULL, NULL, dy, xs, ws, n, c, oc);
            k_linear_backward_to(dxc, dwc, dbc, dy, xs, ws, n, c, oc, 1, 1);
            k_linear_backward_to(dxd, dwd, dbd, dy, xs, ws, n, c, oc, 1, 0);
            k_linear_backward(NULL, dwe, NULL, dy, xs, ws, n, c, oc);
            to_set &= !memcmp(dxc, dxz, sizeof(float) * (size_t)n * c) && !memcmp(dwc, dwa, sizeof(float) * (size_t)oc * c) &&
                      !memcmp(dbc, dba, sizeof(float) * (size_t)oc);
            to_dx &= !memcmp(dxd, dxz, sizeof(float) * (size_t)n * c) && !memcmp(dwd, dwe, sizeof(float) * (size_t)oc * c) &&
                     !memcmp(dbd, dba, sizeof(float) * (size_t)oc);
            free(dwa); free(dwb); free(dxa); free(dxb); free(dba); free(dbb);
            free(dxz); free(dxc); free(dwc); free(dbc); free(dxd); free(dwd); free(dwe); free(dbd);
        }
        free(xs); free(ws); free(dy); free(dx0); free(db0);
    }
    omp_set_num_threads(threads);
    CHECK(same, "k_linear_backward_set: dweight written over what it held, the bytes of k_linear_backward onto zero "
                "(5 shapes: tiles and sgemm, 1 and 2 threads)");
    CHECK(adds, "k_linear_backward_set: dinp and dbias still added to, as k_linear_backward");
    CHECK(to_set, "k_linear_backward_to(set dinp, set dweight): both written over what they held, the bytes of "
                  "k_linear_backward onto zeros; dbias added (5 shapes, 1 and 2 threads)");
    CHECK(to_dx, "k_linear_backward_to(set dinp only): dinp written, dweight and dbias added to");
}

/* ---- attention ------------------------------------------------------------------------------------- */

typedef struct { float *out, *att, *qkv, *mask, *R; int B, T, C, NH, P; float p; uint64_t seed, off; } att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    k_attention_forward(c->out, c->att, c->qkv, c->mask, c->B, c->T, c->C, c->NH, c->P, c->p, c->seed,
                        c->off);
    return dot(c->out, c->R, (long)c->B * c->T * c->C);
}

static void test_attention(const char *tag) {
    char k[64];
#define FX(s) (snprintf(k, sizeof k, "%s.%s", tag, s), fxf(k, NULL))
    snprintf(k, sizeof k, "%s.dims", tag);
    int64_t *dims = fxi(k, NULL);
    float *pp = FX("p");
    int B = (int)dims[0], T = (int)dims[1], C = (int)dims[2], NH = (int)dims[3];
    uint64_t seed = (uint64_t)dims[4], off = (uint64_t)dims[5];
    int P = (int)dims[6];
    float p = pp[0];
    float *qkv = FX("qkv"), *mask = FX("mask"), *dout = FX("dout"), *watt = FX("att");
    float *wout = FX("out"), *wdqkv = FX("dqkv");
#undef FX
    long nqkv = (long)B * T * 3 * C, nout = (long)B * T * C, natt = (long)B * NH * T * T;
    float *out = zeros(nout), *att = zeros(natt), *dqkv = zeros(nqkv), *scratch = zeros(natt);
    char what[160];
    k_attention_forward(out, att, qkv, mask, B, T, C, NH, P, p, seed, off);
    snprintf(what, sizeof what,
             "attention forward B=%d T=%d C=%d NH=%d P=%d p=%g (padding masked) vs torch", B, T, C, NH,
             P, p);
    check_close(what, out, wout, nout, 1.0, TOL);
    { /* |att| is the softmax before dropout; with p > 0 the sign bits mark exactly the dropped
       * elements: those where dropout of ones zeroes the same stream indices, drawn through the
       * hidden-state layout ([B*NH, T, P] rows of P: idx = ((b*NH + h)*P + i)*P + j) */
        float *aabs = zeros(natt), *ones = zeros((long)B * NH * T * P), *f = zeros((long)B * NH * T * P);
        for (long e = 0; e < natt; e++) aabs[e] = fabsf(att[e]);
        check_close("attention cached |att| (the softmax before dropout) vs torch", aabs, watt, natt, 1.0, TOL);
        long signs = 0, marks_ok = 1;
        for (long e = 0; e < (long)B * NH * T * P; e++) ones[e] = 1.0f;
        k_dropout_forward(f, ones, B * NH, T, P, P, p, seed, off);
        for (long r = 0; r < (long)B * NH * T; r++)
            for (int j = 0; j < T; j++) {
                int neg = signbit(att[r * T + j]) != 0;
                signs += neg;
                if (neg != (p > 0.0f && f[r * P + j] == 0.0f)) marks_ok = 0;
            }
        snprintf(what, sizeof what, "attention att (T=%d, p=%g): the sign bits mark the dropped elements (%ld of %ld)",
                 T, p, signs, natt);
        CHECK(marks_ok && (p == 0.0f || signs > 0), "%s", what);
        free(aabs); free(ones); free(f);
    }
    { /* without att (evaluation): the same output, a block of rows at a time */
        float *out_nk = zeros(nout);
        k_attention_forward_nokeep(out_nk, qkv, mask, B, T, C, NH, P, p, seed, off);
        snprintf(what, sizeof what, "attention forward without att (T=%d, p=%g) vs torch", T, p);
        check_close(what, out_nk, wout, nout, 1.0, TOL);
#if BL_TILES
        snprintf(what, sizeof what, "attention forward without att (T=%d, p=%g): the same bits as with it", T, p);
        CHECK(!memcmp(out_nk, out, sizeof(float) * nout), "%s", what);
#endif
        free(out_nk);
    }
    /* padded keys get exactly zero weight */
    int zero_ok = 1;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
            if (mask[b * T + j] != 0.0f)
                for (int h = 0; h < NH; h++)
                    for (int i = 0; i < T; i++)
                        if (att[(((long)b * NH + h) * T + i) * T + j] != 0.0f) zero_ok = 0;
    CHECK(zero_ok, "attention: masked keys (-FLT_MAX) get weight exactly 0");
    k_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, P, p, seed, off);
    check_close("attention backward dqkv vs torch", dqkv, wdqkv, nqkv, 1.0, TOL);
    k_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, P, p, seed, off);
    check_close("attention backward accumulates (dqkv doubles)", dqkv, wdqkv, nqkv, 2.0, 2 * TOL);
    if (C <= 64) { /* finite differences on the small cases (every 37th element from T=80 on) */
        memset(dqkv, 0, sizeof(float) * nqkv);
        k_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, P, p, seed, off);
        att_ctx c = {out, att, qkv, mask, dout, B, T, C, NH, P, p, seed, off};
        snprintf(what, sizeof what, "attention dqkv (T=%d, p=%g)", T, p);
        fd_check(what, att_loss, &c, qkv, nqkv, dqkv, T >= 64 ? 37 : 1, 1e-2f, 2e-3);
    }
    if (p > 0.0f && P > T) { /* the same batch padded to P: its real rows are unchanged */
        int T2 = P;
        long n2qkv = (long)B * T2 * 3 * C, n2out = (long)B * T2 * C, n2att = (long)B * NH * T2 * T2;
        float *qkv2 = randn(n2qkv, 1.0f), *mask2 = zeros((long)B * T2), *dout2 = zeros(n2out);
        float *out2 = zeros(n2out), *att2 = zeros(n2att), *dqkv2 = zeros(n2qkv);
        float *scratch2 = zeros(n2att), *o2 = zeros(nout), *g2 = zeros(nqkv);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T2; t++) {
                mask2[b * T2 + t] = t < T ? mask[b * T + t] : -FLT_MAX;
                if (t < T) {
                    memcpy(qkv2 + ((long)b * T2 + t) * 3 * C, qkv + ((long)b * T + t) * 3 * C,
                           sizeof(float) * 3 * C);
                    memcpy(dout2 + ((long)b * T2 + t) * C, dout + ((long)b * T + t) * C,
                           sizeof(float) * C);
                }
            }
        k_attention_forward(out, att, qkv, mask, B, T, C, NH, P, p, seed, off); /* fd left others */
        k_attention_forward(out2, att2, qkv2, mask2, B, T2, C, NH, P, p, seed, off);
        k_attention_backward(dqkv2, scratch2, dout2, qkv2, att2, B, T2, C, NH, P, p, seed, off);
        memset(dqkv, 0, sizeof(float) * nqkv);
        k_attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH, P, p, seed, off);
        for (int b = 0; b < B; b++) {
            memcpy(o2 + (long)b * T * C, out2 + (long)b * T2 * C, sizeof(float) * T * C);
            memcpy(g2 + (long)b * T * 3 * C, dqkv2 + (long)b * T2 * 3 * C, sizeof(float) * T * 3 * C);
        }
        snprintf(what, sizeof what, "attention with dropout, T=%d padded to %d: same output rows", T, T2);
        check_close(what, o2, out, nout, 1.0, 1e-6);
        snprintf(what, sizeof what, "attention with dropout, T=%d padded to %d: same dqkv rows", T, T2);
        check_close(what, g2, dqkv, nqkv, 1.0, 1e-6);
        free(qkv2); free(mask2); free(dout2); free(out2); free(att2); free(dqkv2); free(scratch2);
        free(o2); free(g2);
    }
    free(dims); free(pp); free(qkv); free(mask); free(dout); free(watt); free(wout); free(wdqkv);
    free(out); free(att); free(dqkv); free(scratch);
}

/* ---- pointwise ------------------------------------------------------------------------------------- */

typedef struct { float *out, *x, *R; long n; int which; float p; uint64_t seed, off; } pw_ctx;
static double pw_loss(void *q) {
    pw_ctx *c = q;
    if (c->which == 0) k_gelu_forward(c->out, c->x, c->n);
    else if (c->which == 1) k_tanh_forward(c->out, c->x, c->n);
    else k_dropout_forward(c->out, c->x, 1, 1, (int)c->n, 1, c->p, c->seed, c->off);
    return dot(c->out, c->R, c->n);
}

static void test_pointwise(void) {
    long n;
    for (int which = 0; which < 2; which++) {
        const char *tag = which ? "tanh" : "gelu";
        char k[64], what[128];
        snprintf(k, sizeof k, "%s.x", tag);
        float *x = fxf(k, &n);
        snprintf(k, sizeof k, "%s.dout", tag);
        float *dout = fxf(k, NULL);
        snprintf(k, sizeof k, "%s.out", tag);
        float *want = fxf(k, NULL);
        snprintf(k, sizeof k, "%s.dx", tag);
        float *wdx = fxf(k, NULL);
        float *out = zeros(n), *dx = zeros(n);
        if (which) k_tanh_forward(out, x, n); else k_gelu_forward(out, x, n);
        snprintf(what, sizeof what, "%s forward on [-6, 6] vs torch%s", tag, which ? "" : " (erf form)");
        check_close(what, out, want, n, 1.0, TOL);
        if (which) k_tanh_backward(dx, out, dout, n); else k_gelu_backward(dx, x, dout, n);
        snprintf(what, sizeof what, "%s backward vs torch", tag);
        check_close(what, dx, wdx, n, 1.0, TOL);
        if (which) k_tanh_backward(dx, out, dout, n); else k_gelu_backward(dx, x, dout, n);
        snprintf(what, sizeof what, "%s backward accumulates", tag);
        check_close(what, dx, wdx, n, 2.0, 2 * TOL);
        pw_ctx c = {out, x, dout, n, which, 0, 0, 0};
        fd_check(tag, pw_loss, &c, x, n, wdx, 1, 1e-3f, 2e-3);
        free(x); free(dout); free(want); free(wdx); free(out); free(dx);
    }
    /* GELU densely on [-10, 10] against libm's double erf/exp (the kernel uses polynomial erf/exp) */
    {
        long m = 20001;
        float *gx = malloc(sizeof(float) * m), *go = zeros(m), *gd = zeros(m), *ones = malloc(sizeof(float) * m);
        for (long i = 0; i < m; i++) { gx[i] = -10.0f + 20.0f * i / (m - 1); ones[i] = 1.0f; }
        k_gelu_forward(go, gx, m);
        k_gelu_backward(gd, gx, ones, m);
        double ef = 0.0, eb = 0.0;
        for (long i = 0; i < m; i++) {
            double x = gx[i], cdf = 0.5 * (1.0 + erf(x / sqrt(2.0)));
            ef = fmax(ef, fabs(go[i] - x * cdf));
            eb = fmax(eb, fabs(gd[i] - (cdf + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI))));
        }
        CHECK(ef <= 2e-6 && eb <= 2e-6,
              "gelu on 20001 points of [-10, 10] vs double erf: forward max |diff| %.3g, backward %.3g", ef, eb);
        /* k_gelu_backward_set: gd's bytes written over what the destination held, and in place
         * (the gradient in, the gradient through GELU out), with 1 and 2 threads (m > PAR_MIN?) */
        float *dy = randn(m, 1.0f), *want = zeros(m);
        k_gelu_backward(want, gx, dy, m);
        int same = 1, threads = omp_get_max_threads();
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            float *d1 = randn(m, 3.0f), *d2 = copyf(dy, m);
            k_gelu_backward_set(d1, gx, dy, m);
            k_gelu_backward_set(d2, gx, d2, m);
            same &= !memcmp(d1, want, sizeof(float) * m) && !memcmp(d2, want, sizeof(float) * m);
            free(d1); free(d2);
        }
        omp_set_num_threads(threads);
        CHECK(same, "k_gelu_backward_set: the bytes of k_gelu_backward onto zero, over what dinp held and in place "
                    "(dinp = dout), 1 and 2 threads");
        free(gx); free(go); free(gd); free(ones); free(dy); free(want);
    }
    /* residual and accumulate */
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0.5f, -2, 1e-3f, 7, -5}, o[5], want[5];
    for (int i = 0; i < 5; i++) want[i] = a[i] + b[i];
    k_residual_forward(o, a, b, 5);
    check_close("residual forward", o, want, 5, 1.0, 0.0);
    k_accumulate(o, b, 5);
    for (int i = 0; i < 5; i++) want[i] += b[i];
    check_close("accumulate adds", o, want, 5, 1.0, 0.0);
    /* in place, as runtime/bert.c calls it: res = dropout(res) + x */
    float r[5] = {1, 2, 3, 4, 5};
    k_residual_forward(r, r, b, 5);
    for (int i = 0; i < 5; i++) want[i] = a[i] + b[i];
    check_close("residual forward in place (out == a)", r, want, 5, 1.0, 0.0);
}

/* ---- dropout --------------------------------------------------------------------------------------- */

/* The header's definition: the dropout uniform of stream index idx */
static float drop_u(uint64_t seed, uint64_t idx) {
    return (float)rng_word_at(seed, RNG_STREAM_DROPOUT, idx) * 2.3283064e-10f + 2.3283064e-10f / 2.0f;
}

/* 1 iff out [B,T,C] is non-zero exactly where uniform(offset + (b*P + t)*C + c) > p */
static int mask_by_definition(const float *out, int B, int T, int C, int P, float p, uint64_t seed,
                              uint64_t off) {
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                if ((drop_u(seed, off + ((uint64_t)b * P + t) * C + c) > p) !=
                    (out[((long)b * T + t) * C + c] != 0.0f))
                    ok = 0;
    return ok;
}

static void test_dropout(void) {
    int n;
    long nl;
    int64_t *dims = fxi("drop.dims", NULL);
    float *pp = fxf("drop.p", NULL), *x = fxf("drop.x", &nl), *dout = fxf("drop.dout", NULL);
    float *want = fxf("drop.out", NULL), *wdx = fxf("drop.dx", NULL), *wu = fxf("drop.u", NULL);
    n = (int)nl;
    float p = pp[0];
    uint64_t seed = (uint64_t)dims[1], off = (uint64_t)dims[2];
    /* the stream layout itself: uniforms from rng_word_at vs an independent Philox in numpy */
    float u[16];
    for (int i = 0; i < 16; i++) u[i] = drop_u(seed, (uint64_t)i);
    check_close("dropout stream: rng_word_at uniforms vs numpy Philox4x32-10", u, wu, 16, 1.0, 0.0);
    float *out = zeros(n), *dx = zeros(n);
    k_dropout_forward(out, x, 1, 1, n, 1, p, seed, off);
    check_close("dropout forward p=0.1 (offset 7) vs numpy Philox mask", out, want, n, 1.0, TOL);
    k_dropout_backward(dx, dout, 1, 1, n, 1, p, seed, off);
    check_close("dropout backward uses the same mask", dx, wdx, n, 1.0, TOL);
    k_dropout_backward(dx, dout, 1, 1, n, 1, p, seed, off);
    check_close("dropout backward accumulates", dx, wdx, n, 2.0, 2 * TOL);
    { /* the writing variant, p = 0.1 and 0: the bytes of the adding one onto zero, over what dinp held */
        int same = 1;
        for (int k = 0; k < 2; k++) {
            float pk = k ? 0.0f : p, *z = zeros(n), *g = randn(n, 3.0f);
            k_dropout_backward(z, dout, 1, 1, n, 1, pk, seed, off);
            k_dropout_backward_set(g, dout, 1, 1, n, 1, pk, seed, off);
            same &= !memcmp(g, z, sizeof(float) * n);
            free(z); free(g);
        }
        CHECK(same, "k_dropout_backward_set: dinp written, the bytes of k_dropout_backward onto zero (p = 0.1 and 0)");
    }
    /* the header's definition, element by element through rng_word_at */
    CHECK(mask_by_definition(out, 1, 1, n, 1, p, seed, off),
          "dropout keeps element i iff uniform(seed, DROPOUT, offset + i) > p");
    /* the same through the padded layout (b, t, c) -> (b*P + t)*C + c, at shapes whose rows start
     * mid-block and fill the 64-block batches partly (1..7 channels, T < P), at p = 0.5 */
    int layout = 1, shapes_done = 0;
    for (int Cc = 1; Cc <= 7; Cc += 3)
        for (int Tt = 1; Tt <= 61; Tt += 12) {
            int Bb = 3, Pp = Tt + 5;
            long m = (long)Bb * Tt * Cc;
            float *xi = zeros(m), *yo = zeros(m);
            for (long i = 0; i < m; i++) xi[i] = 1.0f;
            k_dropout_forward(yo, xi, Bb, Tt, Cc, Pp, 0.5f, seed, off);
            layout &= mask_by_definition(yo, Bb, Tt, Cc, Pp, 0.5f, seed, off);
            for (long i = 0; i < m; i++) layout &= yo[i] == 0.0f || yo[i] == 2.0f; /* kept: 1/(1-p) */
            shapes_done++;
            free(xi); free(yo);
        }
    CHECK(layout && shapes_done == 18, "dropout through the padded layout keeps (b,t,c) iff uniform(offset + (b*P+t)*C + c) > p (18 shapes)");
    /* in place, and a sub-range at offset + k reproduces elements k.. of the whole */
    float *y = copyf(x, n);
    k_dropout_forward(y, y, 1, 1, n, 1, p, seed, off);
    check_close("dropout forward in place (out == inp)", y, out, n, 1.0, 0.0);
    k_dropout_forward(y, x + 333, 1, 1, n - 333, 1, p, seed, off + 333);
    check_close("dropout mask is a function of (seed, offset + i)", y, out + 333, n - 333, 1.0, 0.0);
    k_dropout_forward(y, x, 1, 1, n, 1, p, seed + 1, off);
    CHECK(max_abs_diff(y, out, n, 1.0) > 0, "dropout: another seed gives another mask");
    /* p = 0: identity forward, plain accumulation backward */
    k_dropout_forward(y, x, 1, 1, n, 1, 0.0f, seed, off);
    check_close("dropout p=0 forward is the identity", y, x, n, 1.0, 0.0);
    memset(dx, 0, sizeof(float) * n);
    k_dropout_backward(dx, dout, 1, 1, n, 1, 0.0f, seed, off);
    check_close("dropout p=0 backward passes dout", dx, dout, n, 1.0, 0.0);
    /* finite differences (the mask does not depend on the values) */
    memset(dx, 0, sizeof(float) * n);
    k_dropout_backward(dx, dout, 1, 1, n, 1, p, seed, off);
    pw_ctx c = {out, x, dout, n, 2, p, seed, off};
    fd_check("dropout", pw_loss, &c, x, n, dx, 7, 1e-2f, 1e-3);
    /* kept fraction over a million elements, p = 0.1 and 0.5, scaled by 1/(1-p) */
    int big = 1000000;
    float *ones = malloc(sizeof(float) * big), *ob = zeros(big);
    for (long i = 0; i < big; i++) ones[i] = 1.0f;
    float ps[2] = {0.1f, 0.5f};
    for (int k = 0; k < 2; k++) {
        k_dropout_forward(ob, ones, 1, 1, big, 1, ps[k], 99, 12345);
        long kept = 0;
        int scaled = 1;
        for (long i = 0; i < big; i++) {
            if (ob[i] != 0.0f) {
                kept++;
                if (fabsf(ob[i] - 1.0f / (1.0f - ps[k])) > 1e-6f) scaled = 0;
            }
        }
        double frac = (double)kept / big;
        CHECK(fabs(frac - (1.0 - ps[k])) < 3e-3 && scaled,
              "dropout p=%g keeps %.4f of 1e6 elements (expect %.2f), kept values scaled by 1/(1-p)",
              ps[k], frac, 1.0 - ps[k]);
    }
    free(ones); free(ob); free(dims); free(pp); free(x); free(dout); free(want); free(wdx); free(wu);
    free(out); free(dx); free(y);
}

/* [B,T,C] hidden-state dropout with the index padded to P: element (b,t,c) at offset + (b*P+t)*C+c */
static void test_dropout_hidden(void) {
    int64_t *dims = fxi("droph.dims", NULL);
    int B = (int)dims[0], T = (int)dims[1], C = (int)dims[2], P = (int)dims[3];
    uint64_t seed = (uint64_t)dims[4], off = (uint64_t)dims[5];
    float *pp = fxf("droph.p", NULL), *x = fxf("droph.x", NULL), *dout = fxf("droph.dout", NULL);
    float *want = fxf("droph.out", NULL), *wdx = fxf("droph.dx", NULL);
    float p = pp[0];
    long n = (long)B * T * C;
    float *out = zeros(n), *dx = zeros(n);
    char what[160];
    k_dropout_forward(out, x, B, T, C, P, p, seed, off);
    snprintf(what, sizeof what, "dropout [B=%d,T=%d,C=%d] P=%d p=%g vs numpy Philox at (b*P+t)*C+c", B, T,
             C, P, p);
    check_close(what, out, want, n, 1.0, TOL);
    k_dropout_backward(dx, dout, B, T, C, P, p, seed, off);
    check_close("dropout [B,T,C] backward uses the same mask", dx, wdx, n, 1.0, TOL);
    k_dropout_backward(dx, dout, B, T, C, P, p, seed, off);
    check_close("dropout [B,T,C] backward accumulates", dx, wdx, n, 2.0, 2 * TOL);
    CHECK(mask_by_definition(out, B, T, C, P, p, seed, off), "dropout [B,T,C] keeps (b,t,c) iff uniform(seed, DROPOUT, offset + (b*P + t)*C + c) > p");
    /* the point of the layout: the same (b,t,c) gets the same mask at any padded width T2 <= P */
    int T2 = P;
    long n2 = (long)B * T2 * C;
    float *x2 = randn(n2, 1.0f), *out2 = zeros(n2), *sub = zeros(n);
    for (int b = 0; b < B; b++)
        memcpy(x2 + (long)b * T2 * C, x + (long)b * T * C, sizeof(float) * T * C);
    k_dropout_forward(out2, x2, B, T2, C, P, p, seed, off);
    for (int b = 0; b < B; b++)
        memcpy(sub + (long)b * T * C, out2 + (long)b * T2 * C, sizeof(float) * T * C);
    snprintf(what, sizeof what, "dropout: T=%d and T=%d (padded) give (b,t,c) the same mask", T, T2);
    check_close(what, sub, out, n, 1.0, 0.0);
    float *d2 = zeros(n2), *dout2 = zeros(n2);
    for (int b = 0; b < B; b++)
        memcpy(dout2 + (long)b * T2 * C, dout + (long)b * T * C, sizeof(float) * T * C);
    k_dropout_backward(d2, dout2, B, T2, C, P, p, seed, off);
    for (int b = 0; b < B; b++)
        memcpy(sub + (long)b * T * C, d2 + (long)b * T2 * C, sizeof(float) * T * C);
    check_close("dropout backward: the padded batch's real rows get the same gradient", sub, wdx, n, 1.0, TOL);
    /* P = 1, T = 1 is the flat layout: [B,C] at offset + b*C + c */
    k_dropout_forward(out, x, B * T, 1, C, 1, p, seed, off);
    k_dropout_forward(sub, x, 1, 1, (int)n, 1, p, seed, off);
    check_close("dropout [B,C] (T = P = 1) is the flat run offset + i", out, sub, n, 1.0, 0.0);
    free(dims); free(pp); free(x); free(dout); free(want); free(wdx); free(out); free(dx); free(x2);
    free(out2); free(sub); free(d2); free(dout2);
}

/* ---- [CLS] gather ------------------------------------------------------------------------------------ */

static void test_cls(void) {
    int B = 3, T = 4, C = 5;
    float *x = randn(B * T * C, 1.0f), *out = zeros(B * C), *dx = zeros(B * T * C);
    float *dout = randn(B * C, 1.0f);
    k_cls_forward(out, x, B, T, C);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) ok &= out[b * C + c] == x[(b * T) * C + c];
    CHECK(ok, "cls forward takes token 0 of each sequence");
    k_cls_backward(dx, dout, B, T, C);
    k_cls_backward(dx, dout, B, T, C);
    ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                ok &= dx[(b * T + t) * C + c] == (t == 0 ? 2 * dout[b * C + c] : 0.0f);
    CHECK(ok, "cls backward accumulates into token 0 only");
    free(x); free(out); free(dx); free(dout);
}

/* ---- cross-entropy ----------------------------------------------------------------------------------- */

typedef struct { float *loss, *probs, *z; int64_t *y; int B, L; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    k_crossentropy_forward(c->loss, c->probs, c->z, c->y, NULL, c->B, c->L);
    return c->loss[0];
}

static void test_crossentropy(void) {
    int B = 4, L = 5;
    float *z = fxf("ce.z", NULL), *wl = fxf("ce.loss", NULL), *wp = fxf("ce.probs", NULL);
    float *wdz = fxf("ce.dz", NULL);
    int64_t *y = fxi("ce.y", NULL);
    float loss, *probs = zeros(B * L), *dz = zeros(B * L);
    k_crossentropy_forward(&loss, probs, z, y, NULL, B, L);
    check_close("cross-entropy loss (mean) vs torch, with a confident wrong row", &loss, wl, 1, 1.0, TOL);
    check_close("cross-entropy probs vs torch", probs, wp, B * L, 1.0, TOL);
    k_crossentropy_backward(dz, probs, y, NULL, B, L, 1.0f);
    check_close("cross-entropy backward vs torch", dz, wdz, B * L, 1.0, TOL);
    k_crossentropy_backward(dz, probs, y, NULL, B, L, 0.5f);
    check_close("cross-entropy backward accumulates, scaled by dloss", dz, wdz, B * L, 1.5, TOL);
    float *z2 = randn(B * L, 1.5f);
    memset(dz, 0, sizeof(float) * B * L);
    ce_ctx c = {&loss, probs, z2, y, B, L};
    ce_loss(&c);
    k_crossentropy_backward(dz, probs, y, NULL, B, L, 1.0f);
    fd_check("cross-entropy dlogits", ce_loss, &c, z2, B * L, dz, 1, 1e-2f, 1e-3);
    free(z); free(wl); free(wp); free(wdz); free(y); free(probs); free(dz); free(z2);
}

/* ---- threaded paths ------------------------------------------------------------------------------ */

/* Sizes above the kernels' threading thresholds against the same work done in pieces below them (the
 * pieces take the single-threaded paths checked against torch above): results must be identical. */
static void test_threaded_paths(void) {
#ifdef _OPENMP
    printf("# threaded paths with up to %d OpenMP threads\n", omp_get_max_threads());
#endif
    int N = 400, C = 384, F = 4 * C, V = 50; /* N*C = 153600 and N*F = 614400: both threaded */
    long nc = (long)N * C, nf = (long)N * F;
    float *x = randn(nc, 1.0f), *w = randn(C, 0.3f), *b = randn(C, 0.3f), *d = randn(nc, 1.0f);
    float *o1 = zeros(nc), *o2 = zeros(nc), *m1 = zeros(N), *m2 = zeros(N), *r1 = zeros(N), *r2 = zeros(N);
    k_layernorm_forward(o1, m1, r1, x, w, b, N, C, 1e-12f);
    for (int n = 0; n < N; n++)
        k_layernorm_forward(o2 + (long)n * C, m2 + n, r2 + n, x + (long)n * C, w, b, 1, C, 1e-12f);
    check_close("layernorm forward N=400 C=384 (threaded) equals row-by-row", o1, o2, nc, 1.0, 0.0);
    float *dx1 = zeros(nc), *dx2 = zeros(nc), *dw1 = zeros(C), *dw2 = zeros(C), *db1 = zeros(C), *db2 = zeros(C);
    k_layernorm_backward(dx1, dw1, db1, d, x, m1, r1, w, N, C);
    for (int n = 0; n < N; n++)
        k_layernorm_backward(dx2 + (long)n * C, dw2, db2, d + (long)n * C, x + (long)n * C, m2 + n, r2 + n,
                             w, 1, C);
    check_close("layernorm backward dinp (threaded) equals row-by-row", dx1, dx2, nc, 1.0, 0.0);
    check_close("layernorm backward dweight (threaded, split by channel) equals row-by-row", dw1, dw2, C, 1.0, 0.0);
    check_close("layernorm backward dbias (threaded) equals row-by-row", db1, db2, C, 1.0, 0.0);
    /* GELU */
    float *h = randn(nf, 2.0f), *g = randn(nf, 1.0f), *h1 = zeros(nf), *h2 = zeros(nf);
    float *gh1 = zeros(nf), *gh2 = zeros(nf);
    k_gelu_forward(h1, h, nf);
    k_gelu_backward(gh1, h, g, nf);
    for (long i = 0; i < nf; i += 1000) {
        long m = nf - i < 1000 ? nf - i : 1000;
        k_gelu_forward(h2 + i, h + i, m);
        k_gelu_backward(gh2 + i, h + i, g + i, m);
    }
    check_close("gelu forward on 614400 (threaded) equals pieces of 1000", h1, h2, nf, 1.0, 0.0);
    check_close("gelu backward (threaded) equals pieces of 1000", gh1, gh2, nf, 1.0, 0.0);
    /* dropout: the mask depends on (seed, offset + i) only, however the work is split */
    float *y1 = zeros(nf), *y2 = zeros(nf), *gy1 = zeros(nf), *gy2 = zeros(nf);
    k_dropout_forward(y1, h, 1, 1, (int)nf, 1, 0.1f, 5, 3);
    k_dropout_backward(gy1, g, 1, 1, (int)nf, 1, 0.1f, 5, 3);
    for (long i = 0; i < nf; i += 999) {
        int m = nf - i < 999 ? (int)(nf - i) : 999;
        k_dropout_forward(y2 + i, h + i, 1, 1, m, 1, 0.1f, 5, 3 + i);
        k_dropout_backward(gy2 + i, g + i, 1, 1, m, 1, 0.1f, 5, 3 + i);
    }
    check_close("dropout forward on 614400 (threaded) equals pieces of 999 at offset + i", y1, y2, nf, 1.0, 0.0);
    check_close("dropout backward (threaded) equals pieces of 999", gy1, gy2, nf, 1.0, 0.0);
    /* strided [B,T,C] = [32,50,384] with P = 67 (threaded) against one row of C at a time, each at
     * offset + (b*P + t)*C */
    {
        int B = 32, T = 50, P = 67;
        memset(y2, 0, sizeof(float) * nf);
        memset(gy1, 0, sizeof(float) * nf);
        memset(gy2, 0, sizeof(float) * nf);
        k_dropout_forward(y1, h, B, T, C, P, 0.1f, 5, 3);
        k_dropout_backward(gy1, g, B, T, C, P, 0.1f, 5, 3);
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++) {
                long e = ((long)bb * T + t) * C;
                uint64_t o = 3 + ((uint64_t)bb * P + t) * C;
                k_dropout_forward(y2 + e, h + e, 1, 1, C, 1, 0.1f, 5, o);
                k_dropout_backward(gy2 + e, g + e, 1, 1, C, 1, 0.1f, 5, o);
            }
        check_close("dropout [32,50,384] P=67 (threaded) equals rows of C at offset + (b*P + t)*C", y1, y2,
                    nf, 1.0, 0.0);
        check_close("dropout backward [32,50,384] P=67 (threaded) equals rows of C", gy1, gy2, nf, 1.0, 0.0);
    }
    /* embeddings: rows repeat, the threaded backward splits channels */
    int B = 8, T = 50;
    int64_t *ids = malloc(sizeof(int64_t) * B * T), *types = malloc(sizeof(int64_t) * B * T);
    for (int i = 0; i < B * T; i++) { ids[i] = (i * 7) % V; types[i] = i % 2; }
    float *wte = randn((long)V * C, 1.0f), *wpe = randn((long)T * C, 1.0f), *wtt = randn(2L * C, 1.0f);
    float *e1 = zeros(nc), *e2 = zeros(nc);
    k_embeddings_forward(e1, ids, types, wte, wpe, wtt, B, T, C);
    for (int bb = 0; bb < B; bb++)
        k_embeddings_forward(e2 + (long)bb * T * C, ids + bb * T, types + bb * T, wte, wpe, wtt, 1, T, C);
    check_close("embeddings forward B=8 T=50 (threaded) equals one sequence at a time", e1, e2, nc, 1.0, 0.0);
    float *gte1 = zeros((long)V * C), *gte2 = zeros((long)V * C), *gpe1 = zeros((long)T * C);
    float *gpe2 = zeros((long)T * C), *gtt1 = zeros(2L * C), *gtt2 = zeros(2L * C);
    k_embeddings_backward(gte1, gpe1, gtt1, d, ids, types, B, T, C);
    for (int bb = 0; bb < B; bb++)
        k_embeddings_backward(gte2, gpe2, gtt2, d + (long)bb * T * C, ids + bb * T, types + bb * T, 1, T, C);
    check_close("embeddings backward dwte (threaded, repeated ids) equals one sequence at a time", gte1, gte2,
                (long)V * C, 1.0, 0.0);
    check_close("embeddings backward dwpe (threaded) equals one sequence at a time", gpe1, gpe2, (long)T * C, 1.0, 0.0);
    check_close("embeddings backward dwtt (threaded) equals one sequence at a time", gtt1, gtt2, 2L * C, 1.0, 0.0);
    /* residual / accumulate above 1M elements */
    long big = 1100000;
    float *p1 = randn(big, 1.0f), *p2 = randn(big, 1.0f), *s1 = zeros(big), *s2 = zeros(big);
    k_residual_forward(s1, p1, p2, big);
    k_accumulate(s1, p2, big);
    for (long i = 0; i < big; i++) s2[i] = (p1[i] + p2[i]) + p2[i];
    check_close("residual + accumulate on 1.1M elements (threaded)", s1, s2, big, 1.0, 0.0);
    free(x); free(w); free(b); free(d); free(o1); free(o2); free(m1); free(m2); free(r1); free(r2);
    free(dx1); free(dx2); free(dw1); free(dw2); free(db1); free(db2); free(h); free(g); free(h1); free(h2);
    free(gh1); free(gh2); free(y1); free(y2); free(gy1); free(gy2); free(ids); free(types); free(wte);
    free(wpe); free(wtt); free(e1); free(e2); free(gte1); free(gte2); free(gpe1); free(gpe2); free(gtt1);
    free(gtt2); free(p1); free(p2); free(s1); free(s2);
}

/* k_adamw_step_rows against k_adamw_step: the same numbers bit for bit, rows of tokens never seen
 * (zero gradient, zero moments) left alone, a row with a gradient made live; with weight decay every
 * row changes, so nothing is skipped then. Odd sizes put rows across the vector groups and the
 * thread slices. With `touched` (the rows backward wrote: the hot rows and one more left at zero),
 * the rows outside it are skipped unread: the same numbers, the zero row not made live. */
static void test_adamw_rows(void) {
    const size_t R = 37, C = 13, extra = 29, n = R * C + extra;
    for (int variant = 0; variant < 2; variant++) {
        for (int decay = 0; decay < 2; decay++) {
            for (int th = 1; th <= 2; th++)
            for (int tu = 0; tu < 2; tu++) {
                omp_set_num_threads(th);
                k_adamw_hparams_t hp = {0.9f, 0.999f, 0.1f, 0.001f, 1e-8f, 1e-3f, 1.0f,
                                        decay ? 1e-4f : 0.0f, decay ? 1.0f - 1e-4f : 1.0f, variant, 0, 1.0f};
                float *p1 = randn((long)n, 1.0f), *p2 = copyf(p1, (long)n), *p0 = copyf(p1, (long)n), *g = zeros((long)n);
                float *m1 = zeros((long)n), *v1 = zeros((long)n), *m2 = zeros((long)n), *v2 = zeros((long)n);
                unsigned char live[37] = {0}, touched[37] = {0};
                int same = 1, untouched = 1, marked = 1;
                for (int step = 0; step < 4; step++) {
                    memset(g, 0, n * sizeof(float));
                    for (size_t i = R * C; i < n; i++) g[i] = 0.01f * (float)(i % 7) - 0.03f;
                    size_t hot[2] = {(size_t)(3 + step), 20}; /* rows with a gradient this step */
                    for (int k = 0; k < 2; k++)
                        for (size_t c = 0; c < C; c++) g[hot[k] * C + c] = 0.02f * (float)c - 0.1f;
                    k_adamw_step(p1, g, m1, v1, n, hp);
                    memset(touched, 0, sizeof touched);
                    touched[hot[0]] = touched[hot[1]] = touched[30] = 1;
                    k_adamw_step_rows(p2, g, m2, v2, n, hp, live, tu ? touched : NULL, R, C);
                    same &= !memcmp(p1, p2, n * sizeof(float)) && !memcmp(m1, m2, n * sizeof(float)) &&
                            !memcmp(v1, v2, n * sizeof(float));
                    marked &= live[hot[0]] && live[hot[1]];
                }
                for (size_t r = 0; r < R; r++) {
                    int seen = (r >= 3 && r <= 6) || r == 20;
                    if (live[r] != seen) marked = 0;
                    if (!seen && !decay) untouched &= !memcmp(p2 + r * C, p0 + r * C, C * sizeof(float));
                }
                CHECK(same, "adamw_step_rows (variant %d, decay %d, %d threads): params and moments equal "
                      "adamw_step's bit for bit over 4 steps (touched %s)", variant, decay, th, tu ? "given" : "NULL");
                CHECK(marked && untouched, "adamw_step_rows (variant %d, decay %d, %d threads): exactly the "
                      "rows with a gradient became live (touched %s)", variant, decay, th, tu ? "given" : "NULL");
                free(p1); free(p2); free(p0); free(g); free(m1); free(v1); free(m2); free(v2);
            }
        }
    }
}

/* AdamW's elements, bit for bit, against the formula written out in scalar code: with FMA (the
 * -march=native build) the fused multiply-adds in the places optim.c's vector loop puts them,
 * without (the portable build) separate multiplies and adds. Whatever the vector width (16, 8 or
 * 4 floats a group, the tail padded), an element's bits are the formula's, so a
 * checkpoint trained on one x86-64 CPU with FMA resumes identically on another. Odd n: every tail. */
#ifdef __FMA__
#define REF_FMA(a, b, c) fmaf(a, b, c)
#else
#define REF_FMA(a, b, c) ((a) * (b) + (c))
#endif
__attribute__((optimize("fp-contract=off"))) static void adamw_reference(float *param, const float *grad,
                                                                         float *m, float *v, size_t n,
                                                                         const k_adamw_hparams_t *hp) {
    for (size_t i = 0; i < n; i++) {
        float g = hp->grad_scaled ? grad[i] * hp->grad_scale : grad[i];
        float vi = REF_FMA(g * g, hp->one_minus_beta2, v[i] * hp->beta2);
        if (hp->decay_first) {
            float mi = REF_FMA(hp->one_minus_beta1, g - m[i], m[i]);
            float denom = sqrtf(vi) / hp->bc2_sqrt + hp->eps;
            float step = (-hp->step_size * mi) / denom;
            param[i] = REF_FMA(param[i], hp->decay != 0.0f ? hp->keep : 1.0f, step);
            m[i] = mi;
        } else {
            float mi = REF_FMA(g, hp->one_minus_beta1, m[i] * hp->beta1);
            float denom = sqrtf(vi) + hp->eps;
            float p = param[i] + (-hp->step_size * mi) / denom;
            param[i] = REF_FMA(p, hp->decay != 0.0f ? -hp->decay : 0.0f, p);
            m[i] = mi;
        }
        v[i] = vi;
    }
}

static void test_adamw_formula(void) {
    const size_t n = 1003;
    int same = 1, moved = 1;
    for (int variant = 0; variant < 2; variant++)
        for (int scaled = 0; scaled < 2; scaled++)
            for (int th = 1; th <= 2; th++) {
                omp_set_num_threads(th);
                k_adamw_hparams_t hp = {0.9f, 0.999f, 0.1f, 0.001f, 1e-8f, 1e-3f, 0.031622775f, 1e-4f,
                                        1.0f - 1e-4f, variant, scaled, 0.37f};
                float *p1 = randn((long)n, 1.0f), *g = randn((long)n, 0.1f), *m1 = randn((long)n, 0.01f);
                float *v1 = randn((long)n, 0.01f);
                for (size_t i = 0; i < n; i++) v1[i] = v1[i] * v1[i];
                float *p2 = copyf(p1, (long)n), *m2 = copyf(m1, (long)n), *v2 = copyf(v1, (long)n);
                float before = p1[7];
                for (int step = 0; step < 3; step++) {
                    k_adamw_step(p1, g, m1, v1, n, hp);
                    adamw_reference(p2, g, m2, v2, n, &hp);
                }
                same &= !memcmp(p1, p2, n * sizeof(float)) && !memcmp(m1, m2, n * sizeof(float)) &&
                        !memcmp(v1, v2, n * sizeof(float));
                moved &= p1[7] != before;
                free(p1); free(p2); free(g); free(m1); free(m2); free(v1); free(v2);
            }
    CHECK(same && moved, "adamw_step: params and moments are the scalar formula's bit for bit (%s; both "
          "variants, clipping scale or not, 1 and 2 threads, 1003 elements, 3 steps)",
#ifdef __FMA__
          "with FMA"
#else
          "without FMA"
#endif
    );
}

/* kernels/cpu/gemm.c: on a CPU with AVX2 OpenBLAS must not run its SSE3 fallback ("Prescott", what
 * 0.3.21 picks for a Xeon it does not know), unless the user chose it with OPENBLAS_CORETYPE. */
extern char *openblas_get_corename(void);
static void test_blas_core(void) {
    const char *core = openblas_get_corename();
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE")) {
        SKIP("OPENBLAS_CORETYPE is set: OpenBLAS runs the kernels asked for (%s)", core);
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        CHECK(core && strcmp(core, "Prescott") != 0, "OpenBLAS runs AVX kernels on this AVX2 CPU (core %s)",
              core ? core : "?");
    } else {
        SKIP("no AVX2 here (OpenBLAS core %s)", core ? core : "?");
    }
#else
    SKIP("not x86-64 (OpenBLAS core %s)", core ? core : "?");
#endif
}

/* kernels/cpu/gemm.c shares a skinny sgemm between the threads by panels of C's rows or columns, and
 * the attention kernels give the threads whole heads: the same bits with 1 and 2 threads, and the
 * products right (against a double-precision loop) at the shapes of a batch of titles. */
static void test_threads_same_bits(void) {
    const int shapes[][3] = {{45, 1536, 384}, {1536, 384, 45}, {45, 384, 1536}, {37, 1001, 129}, {300, 77, 200}};
    int same = 1, right = 1, n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    double worst = 0.0;
    for (int si = 0; si < n_shapes; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                float *A = randn((long)M * K, 1.0f), *B = randn((long)K * N, 1.0f);
                float *C1 = randn((long)M * N, 1.0f), *C2 = copyf(C1, (long)M * N), *C0 = copyf(C1, (long)M * N);
                int lda = ta ? M : K, ldb = tb ? K : N;
                omp_set_num_threads(1);
                k_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, N);
                omp_set_num_threads(2);
                k_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C2, N);
                same &= !memcmp(C1, C2, sizeof(float) * (size_t)M * N);
                for (int i = 0; i < M; i += 7) {
                    for (int j = 0; j < N; j += 5) {
                        double acc = C0[(size_t)i * N + j];
                        for (int k = 0; k < K; k++) {
                            double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                            double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                            acc += 0.5 * a * b;
                        }
                        double d = fabs(acc - C2[(size_t)i * N + j]) / sqrt((double)K);
                        if (d > worst) worst = d;
                    }
                }
                free(A); free(B); free(C0); free(C1); free(C2);
            }
        }
    }
    right = worst < 1e-5;
    CHECK(same, "k_gemm: 1 and 2 threads give the same bits (5 skinny shapes x 4 transposes)");
    CHECK(right, "k_gemm split by panels: the products are right (max |diff| / sqrt(K) %.3g vs a double loop)", worst);
    /* attention over 12 heads of T = 40 (enough work to share): forward and backward */
    int Bt = 2, T = 40, C = 384, NH = 12;
    long nq = (long)Bt * T * 3 * C, na = (long)Bt * NH * T * T, no = (long)Bt * T * C;
    float *qkv = randn(nq, 1.0f), *dout = randn(no, 1.0f);
    float *o1 = zeros(no), *o2 = zeros(no), *a1 = zeros(na), *a2 = zeros(na), *s1 = zeros(na), *s2 = zeros(na);
    float *d1 = zeros(nq), *d2 = zeros(nq);
    omp_set_num_threads(1);
    k_attention_forward(o1, a1, qkv, NULL, Bt, T, C, NH, 64, 0.1f, 9, 4);
    k_attention_backward(d1, s1, dout, qkv, a1, Bt, T, C, NH, 64, 0.1f, 9, 4);
    omp_set_num_threads(2);
    k_attention_forward(o2, a2, qkv, NULL, Bt, T, C, NH, 64, 0.1f, 9, 4);
    k_attention_backward(d2, s2, dout, qkv, a2, Bt, T, C, NH, 64, 0.1f, 9, 4);
    CHECK(!memcmp(o1, o2, sizeof(float) * no) && !memcmp(a1, a2, sizeof(float) * na) &&
              !memcmp(d1, d2, sizeof(float) * nq),
          "attention forward and backward (12 heads, T=40, dropout): 1 and 2 threads give the same bits");
    free(qkv); free(dout); free(o1); free(o2); free(a1); free(a2); free(s1); free(s2); free(d1); free(d2);
}

/* The chain the tile kernels promise (AVX-512 and AVX2 alike): sum_{k = lo..hi-1} a[k*sa] * b[k*sb], one fmaf at a time
 * from zero, in order (unused without the tiles) */
__attribute__((unused)) static float fma_chain(const float *a, size_t sa, const float *b, size_t sb, int lo, int hi) {
    float acc = 0.0f;
    for (int k = lo; k < hi; k++) acc = fmaf(a[(size_t)k * sa], b[(size_t)k * sb], acc);
    return acc;
}

/* kernels/cpu/headgemm.c, the attention's per-head products: every element is one fmaf chain over k
 * from zero (then + c), bit for bit, for A as stored and transposed (by strides), B as stored and
 * given transposed (laid out in room), N and M with tails (N % 16, M % 6), N not a multiple of 16
 * without transposing (padded in room), K of 1; columns past N of c untouched; against sgemm. */
static void test_head_gemm(void) {
#if BL_TILES
    const int shapes[][3] = {{128, 128, 32}, {128, 32, 128}, {24, 24, 32}, {7, 37, 5}, {13, 130, 64},
                             {6, 16, 1}, {40, 4, 40}, {1, 70, 19}};
    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]), chain = 1, edges = 1, done = 1, laid = 1, cases = 0;
    double worst = 0.0;
    for (int si = 0; si < n_shapes; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        for (int mode = 0; mode < 8; mode++) {
            int ta = mode & 1, tb = (mode >> 1) & 1, acc = (mode >> 2) & 1;
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7; /* strided views */
            float *a = randn((long)(ta ? K : M) * lda, 1.0f), *b = randn((long)(tb ? N : K) * ldb, 1.0f);
            float *c0 = randn((long)M * ldc, 1.0f), *c1 = copyf(c0, (long)M * ldc), *c2 = copyf(c0, (long)M * ldc);
            float *room = zeros((long)K * ((N + 15) / 16 * 16));
            done &= k_head_gemm(M, N, K, a, ta ? 1 : (size_t)lda, ta ? (size_t)lda : 1, b, (size_t)ldb, tb, room,
                                acc, c1, (size_t)ldc);
            { /* its two steps, B laid out once and the rows in two blocks against it: the same bits */
                float *c3 = copyf(c0, (long)M * ldc), *room2 = zeros((long)K * ((N + 15) / 16 * 16));
                size_t ldl = 0;
                const float *bl = k_head_lay_b(b, (size_t)ldb, N, K, tb, room2, &ldl);
                int m1 = M / 2;
                if (bl) {
                    k_head_gemm_laid(m1, N, K, a, ta ? 1 : (size_t)lda, ta ? (size_t)lda : 1, bl, ldl, acc, c3,
                                     (size_t)ldc);
                    k_head_gemm_laid(M - m1, N, K, ta ? a + m1 : a + (size_t)m1 * lda, ta ? 1 : (size_t)lda,
                                     ta ? (size_t)lda : 1, bl, ldl, acc, c3 + (size_t)m1 * ldc, (size_t)ldc);
                }
                laid &= bl != NULL && !memcmp(c3, c1, sizeof(float) * (size_t)M * ldc);
                free(c3); free(room2);
            }
            k_gemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, acc ? 1.0f : 0.0f, c2, ldc);
            for (int i = 0; i < M; i++) {
                for (int j = 0; j < N; j++) {
                    float s = fma_chain(ta ? a + i : a + (size_t)i * lda, ta ? (size_t)lda : 1,
                                        tb ? b + (size_t)j * ldb : b + j, tb ? 1 : (size_t)ldb, 0, K);
                    float want = acc ? c0[(size_t)i * ldc + j] + s : s;
                    chain &= !memcmp(&want, &c1[(size_t)i * ldc + j], sizeof want);
                    double d = fabs((double)c1[(size_t)i * ldc + j] - c2[(size_t)i * ldc + j]) / sqrt((double)K);
                    if (d > worst) worst = d;
                }
                edges &= !memcmp(c0 + (size_t)i * ldc + N, c1 + (size_t)i * ldc + N, sizeof(float) * (ldc - N));
            }
            cases++;
            free(a); free(b); free(c0); free(c1); free(c2); free(room);
        }
    }
    CHECK(done, "head gemm took all %d cases (8 shapes x A, B as stored or transposed x accumulate or not)", cases);
    CHECK(chain, "head gemm: every element is one chain of fmaf over k from zero (+ c), bit for bit (%d cases)", cases);
    CHECK(edges, "head gemm: the columns of c past N are left as they were");
    CHECK(laid, "head gemm in two steps (k_head_lay_b once, k_head_gemm_laid on two blocks of rows): the same bits (%d cases)",
          cases);
    CHECK(worst < 2e-6, "head gemm agrees with sgemm (max |diff| / sqrt(K) %.3g)", worst);
    float a[4] = {1, 2, 3, 4}, c[4] = {0};
    CHECK(!k_head_gemm(2, 2, 2, a, 2, 1, a, 2, 1, NULL, 0, c, 2) && !k_head_gemm(2, 3, 1, a, 1, 1, a, 3, 0, NULL, 0, c, 3),
          "head gemm hands back to sgemm what needs room when it has none (B transposed; N %% 16 != 0)");
#else
    SKIP("head gemm: this build has neither AVX-512 nor AVX2 with FMA (the attention uses sgemm)");
#endif
}

/* kernels/cpu/skinny.c against sgemm (k_gemm): the linear layer's forward (with and without bias),
 * dx and dW, at shapes with row tails (OC % 6), two token blocks (N > 64), 16-token padding, several
 * token chunks with a tail (N > 128; the forward takes 64 at a time when C > 768); the same bits on 1
 * and 2 threads (with AVX-512, 2 threads take the tokens of N >= 96 a piece at a time, whichever
 * thread is free: 100, 128, 150 and 300 here, 2 or 4 pieces with partial chunks); and the cases it
 * hands back (too little work, C not a multiple of 16). */
static void test_skinny(void) {
#if BL_TILES
    /* the limits (skinny.c): the forward's with AVX2, dx and dW's with AVX-512 where OpenBLAS runs
     * its AVX-512 kernels; 300 tokens are taken or handed back by them, and the override lifts them */
    k_skinny_set_max_tokens(0);
    int fmax = k_skinny_max_tokens(0), bmax = k_skinny_max_tokens(1), lim = SKINNY_TILES_MAX_N;
    const char *core = openblas_get_corename();
    char fs[16], bs[16];
    snprintf(fs, sizeof fs, fmax == INT_MAX ? "any" : "%d", fmax);
    snprintf(bs, sizeof bs, bmax == INT_MAX ? "any" : "%d", bmax);
    CHECK(fmax == (V16_REGS == 2 ? lim : INT_MAX) && bmax == (V16_REGS == 1 ? (k_blas_avx512() ? lim : INT_MAX) : 0),
          "skinny: the forward's tiles take %s tokens a call, dx's and dW's %s (OpenBLAS core %s)", fs, bs,
          core ? core : "?");
    {
        int N = 300, C = 384, OC = 384, taken[2][3];
        float *x = randn((long)N * C, 1.0f), *w = randn((long)OC * C, 0.1f), *y = zeros((long)N * OC);
        for (int o = 0; o < 2; o++) {
            k_skinny_set_max_tokens(o ? INT_MAX : 0);
            taken[o][0] = k_skinny_forward(y, x, w, NULL, N, C, OC);
            taken[o][1] = k_skinny_backward_dx(x, y, w, N, C, OC);
            taken[o][2] = k_skinny_backward_dw(w, y, x, N, C, OC);
        }
        CHECK(taken[0][0] == (N <= fmax) && taken[0][1] == (N <= bmax) && taken[0][2] == (N <= bmax),
              "skinny: %d tokens taken or handed back as those limits say (forward %d, dx %d, dW %d)", N,
              taken[0][0], taken[0][1], taken[0][2]);
        CHECK(taken[1][0] && taken[1][1] == (bmax > 0) && taken[1][2] == (bmax > 0),
              "skinny: k_skinny_set_max_tokens(INT_MAX) puts %d tokens on the tiles (forward %d, dx %d, dW %d)", N,
              taken[1][0], taken[1][1], taken[1][2]);
        free(x); free(w); free(y);
    }
    k_skinny_set_max_tokens(INT_MAX); /* the tiles on every shape below */
    const int shapes[][3] = {{45, 384, 1536}, {45, 1536, 384}, {7, 384, 1152}, {100, 128, 1003}, {128, 64, 4100},
                             {300, 384, 200}, {150, 1040, 64}};
    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]), same = 1, done = 1, chain = 1;
    double worst = 0.0;
    for (int si = 0; si < n_shapes; si++) {
        int N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
        float *x = randn((long)N * C, 1.0f), *w = randn((long)OC * C, 0.1f), *b = randn(OC, 1.0f);
        for (int bias = 0; bias < 2; bias++) {
            float *y1 = zeros((long)N * OC), *y2 = zeros((long)N * OC), *y3 = zeros((long)N * OC);
            omp_set_num_threads(1);
            done &= k_skinny_forward(y1, x, w, bias ? b : NULL, N, C, OC);
            omp_set_num_threads(2);
            done &= k_skinny_forward(y2, x, w, bias ? b : NULL, N, C, OC);
            if (bias)
                for (int t = 0; t < N; t++) memcpy(y3 + (size_t)t * OC, b, sizeof(float) * OC);
            k_gemm(0, 1, N, OC, C, 1.0f, x, C, w, C, bias ? 1.0f : 0.0f, y3, OC);
            same &= !memcmp(y1, y2, sizeof(float) * (size_t)N * OC);
            for (int t = 0; t < N; t++) /* the contract: one chain of FMAs over c from zero, then + bias */
                for (int o = 0; o < OC; o++) {
                    float acc = fma_chain(w + (size_t)o * C, 1, x + (size_t)t * C, 1, 0, C);
                    float want = bias ? b[o] + acc : acc;
                    chain &= !memcmp(&want, &y1[(size_t)t * OC + o], sizeof want);
                }
            double d = max_abs_diff(y2, y3, (long)N * OC, 1.0) / sqrt((double)C);
            if (d > worst) worst = d;
            free(y1); free(y2); free(y3);
        }
        free(x); free(w); free(b);
    }
    CHECK(done, "skinny forward took the 7 shapes (with and without bias)");
    CHECK(same, "skinny forward: 1 and 2 threads give the same bits");
    CHECK(chain, "skinny forward: every element is bias + one chain of fmaf over c, bit for bit (7 shapes)");
    CHECK(worst < 2e-6, "skinny forward (bias and none) agrees with sgemm (max |diff| / sqrt(K) %.3g)", worst);
    {
        /* outputs from 2^18 floats on go out with non-temporal stores where y is 64-byte aligned and
         * OC a multiple of 16 (skinny.c, STREAM_MIN): y aligned and 4 floats off (plain stores),
         * 1 and 2 threads, the feed-forward block's too: the same bits, and the chain contract */
        int N = 300, C = 384, OC = 1152, I = 1536, ok = 1, nt_same = 1, stream_chain = 1;
        float *sx = randn((long)N * C, 1.0f), *sw = randn((long)OC * C, 0.1f), *sb = randn(OC, 1.0f);
        float *w1 = randn((long)I * C, 0.1f), *b1 = randn(I, 1.0f), *w2 = randn((long)C * I, 0.1f);
        size_t ny = ((size_t)N * OC + 16) * sizeof(float);
        float *ya = aligned_alloc(64, (ny + 63) / 64 * 64), *yb = aligned_alloc(64, (ny + 63) / 64 * 64);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            memset(ya, 0xff, ny), memset(yb, 0xff, ny);
            ok &= k_skinny_forward(ya, sx, sw, sb, N, C, OC) && k_skinny_forward(yb + 4, sx, sw, sb, N, C, OC);
            nt_same &= !memcmp(ya, yb + 4, sizeof(float) * (size_t)N * OC);
            for (int t = 0; t < N; t += 7)
                for (int o = 0; o < OC; o += 5) {
                    float want = sb[o] + fma_chain(sw + (size_t)o * C, 1, sx + (size_t)t * C, 1, 0, C);
                    stream_chain &= !memcmp(&want, &ya[(size_t)t * OC + o], sizeof want);
                }
            /* the feed-forward block: N x C = 115200 floats out, under the threshold; 800 tokens: over */
            int NF = 800;
            float *fx = randn((long)NF * C, 1.0f);
            float *fa = aligned_alloc(64, sizeof(float) * (size_t)NF * C + 64), *fb = aligned_alloc(64, sizeof(float) * (size_t)NF * C + 64);
            ok &= k_ffn_forward_nokeep(fa, fx, w1, b1, w2, sb, NF, C, I) && k_ffn_forward_nokeep(fb + 4, fx, w1, b1, w2, sb, NF, C, I);
            nt_same &= !memcmp(fa, fb + 4, sizeof(float) * (size_t)NF * C);
            free(fx), free(fa), free(fb);
        }
        omp_set_num_threads(1);
        CHECK(ok, "skinny forward and the feed-forward block took the streamed shapes (300 x 384 x 1152, 800 x 384 x 1536)");
        CHECK(nt_same, "skinny forward: non-temporal stores (y aligned) and plain ones (y 16 bytes off) give the same bits, "
                    "1 and 2 threads, the feed-forward block's too");
        CHECK(stream_chain, "skinny forward, streamed: every element is bias + one chain of fmaf over c, bit for bit");
        free(sx), free(sw), free(sb), free(w1), free(b1), free(w2), free(ya), free(yb);
    }
    float *x = zeros(129 * 384), *w = zeros(384 * 384), *y = zeros(129 * 384);
    CHECK(!k_skinny_forward(y, x, w, NULL, 2, 64, 64) && !k_skinny_backward_dx(y, x, w, 2, 64, 64) &&
              !k_skinny_backward_dw(w, x, y, 2, 64, 64),
          "skinny hands back products below its work threshold to sgemm");
    CHECK(!k_skinny_backward_dx(y, x, w, 45, 200, 384) && !k_skinny_backward_dw(w, y, x, 45, 200, 384),
          "skinny dx and dW hand back C not a multiple of 16 to sgemm");
    free(x); free(w); free(y);
#if V16_REGS == 1 /* AVX-512: the backward's products on the tiles too */
    /* dx += dy W: row tails (N % 6), column blocks of 16..64 (C % 64), several 128-row chunks of W
     * (OC > 128, OC % 128), accumulating into a non-zero dx */
    const int dshapes[][3] = {{45, 384, 1152}, {50, 1536, 384}, {7, 768, 3072}, {100, 80, 1003}, {128, 112, 300},
                              {300, 64, 400}};
    int dsame = 1, ddone = 1, dchain = 1;
    double dworst = 0.0;
    for (int si = 0; si < 6; si++) {
        int N = dshapes[si][0], C = dshapes[si][1], OC = dshapes[si][2];
        float *dy = randn((long)N * OC, 1.0f), *wt = randn((long)OC * C, 0.1f), *d0 = randn((long)N * C, 1.0f);
        float *d1 = copyf(d0, (long)N * C), *d2 = copyf(d0, (long)N * C), *d3 = copyf(d0, (long)N * C);
        omp_set_num_threads(1);
        ddone &= k_skinny_backward_dx(d1, dy, wt, N, C, OC);
        omp_set_num_threads(2);
        ddone &= k_skinny_backward_dx(d2, dy, wt, N, C, OC);
        k_gemm(0, 0, N, C, OC, 1.0f, dy, OC, wt, C, 1.0f, d3, C);
        dsame &= !memcmp(d1, d2, sizeof(float) * (size_t)N * C);
        for (int t = 0; t < N; t++) /* dx + one fmaf chain over each 128-row chunk of W, in order */
            for (int c = 0; c < C; c++) {
                float want = d0[(size_t)t * C + c];
                for (int k0 = 0; k0 < OC; k0 += 128)
                    want += fma_chain(dy + (size_t)t * OC, 1, wt + c, (size_t)C, k0, k0 + 128 < OC ? k0 + 128 : OC);
                dchain &= !memcmp(&want, &d1[(size_t)t * C + c], sizeof want);
            }
        double d = max_abs_diff(d2, d3, (long)N * C, 1.0) / sqrt((double)OC);
        if (d > dworst) dworst = d;
        free(dy); free(wt); free(d0); free(d1); free(d2); free(d3);
    }
    CHECK(ddone, "skinny dx took the 6 shapes");
    CHECK(dsame, "skinny dx: 1 and 2 threads give the same bits");
    CHECK(dchain, "skinny dx: dx + one fmaf chain per 128 rows of W, chunk by chunk, bit for bit (6 shapes)");
    CHECK(dworst < 2e-6, "skinny dx agrees with sgemm (max |diff| / sqrt(K) %.3g)", dworst);
    /* dW += dy^T x: output row tails (OC % 6), column blocks of 16..64 (C % 64), token chunks of
     * SKW_TOKENS (256) with a tail, a non-zero dW, both loop orders (C <= OC and C > OC) */
    const int wshapes[][3] = {{45, 384, 1536}, {60, 1536, 384}, {7, 768, 3072}, {600, 80, 1003}, {300, 112, 64}};
    int wsame = 1, wdone = 1, wchain = 1;
    double wworst = 0.0;
    for (int si = 0; si < 5; si++) {
        int N = wshapes[si][0], C = wshapes[si][1], OC = wshapes[si][2];
        float *dy = randn((long)N * OC, 0.1f), *xi = randn((long)N * C, 1.0f), *w0 = randn((long)OC * C, 1.0f);
        float *w1 = copyf(w0, (long)OC * C), *w2 = copyf(w0, (long)OC * C), *w3 = copyf(w0, (long)OC * C);
        omp_set_num_threads(1);
        wdone &= k_skinny_backward_dw(w1, dy, xi, N, C, OC);
        omp_set_num_threads(2);
        wdone &= k_skinny_backward_dw(w2, dy, xi, N, C, OC);
        k_gemm(1, 0, OC, C, N, 1.0f, dy, OC, xi, C, 1.0f, w3, C);
        wsame &= !memcmp(w1, w2, sizeof(float) * (size_t)OC * C);
        for (int o = 0; o < OC; o++) /* dW + one fmaf chain over each 256-token chunk, in order */
            for (int c = 0; c < C; c++) {
                float want = w0[(size_t)o * C + c];
                for (int n0 = 0; n0 < N; n0 += 256)
                    want += fma_chain(dy + o, (size_t)OC, xi + c, (size_t)C, n0, n0 + 256 < N ? n0 + 256 : N);
                wchain &= !memcmp(&want, &w1[(size_t)o * C + c], sizeof want);
            }
        double d = max_abs_diff(w2, w3, (long)OC * C, 1.0) / sqrt((double)N);
        if (d > wworst) wworst = d;
        free(dy); free(xi); free(w0); free(w1); free(w2); free(w3);
    }
    CHECK(wdone, "skinny dW took the 5 shapes");
    CHECK(wsame, "skinny dW: 1 and 2 threads give the same bits");
    CHECK(wchain, "skinny dW: dW + one fmaf chain per 256 tokens, chunk by chunk, bit for bit (5 shapes)");
    CHECK(wworst < 2e-6, "skinny dW agrees with sgemm (max |diff| / sqrt(K) %.3g)", wworst);
#else /* AVX2: dx and dW stay on sgemm (skinny.c, BACKWARD_TILES) */
    float *dy = zeros(45 * 1152), *wt = zeros(1152 * 384), *dx = zeros(45 * 384);
    CHECK(!k_skinny_backward_dx(dx, dy, wt, 45, 384, 1152) && !k_skinny_backward_dw(wt, dy, dx, 45, 384, 1152),
          "skinny: with AVX2 (no AVX-512) dx and dW hand back to sgemm");
    free(dy); free(wt); free(dx);
    SKIP("skinny dx and dW tiles: AVX-512 only (this build has AVX2)");
#endif
    k_skinny_set_max_tokens(0);
#else
    SKIP("neither AVX-512 nor AVX2 with FMA in this build: the linear layers use sgemm only");
#endif
}

/* The Makefile links OpenBLAS's OpenMP build where it is installed (one thread pool: see BLAS there).
 * openblas_get_parallel(): 0 sequential, 1 its own pthreads, 2 OpenMP. */
extern int openblas_get_parallel(void);
#ifndef BL_BLAS_OPENMP
#define BL_BLAS_OPENMP 1
#endif
static void test_blas_threads(void) {
    int installed = !system("ls /usr/lib/*/openblas-openmp/libopenblas.so.0 >/dev/null 2>&1");
    if (!installed) {
        SKIP("OpenBLAS's OpenMP build is not installed (libopenblas-openmp-dev): OpenBLAS runs %s",
             openblas_get_parallel() == 1 ? "its own threads" : "sequentially");
    } else if (!BL_BLAS_OPENMP) {
        SKIP("built with BLAS=system: OpenBLAS runs as `pkg-config openblas` names it");
    } else {
        CHECK(openblas_get_parallel() == 2, "OpenBLAS runs on OpenMP's threads (openblas_get_parallel %d, "
              "2 expected)", openblas_get_parallel());
    }
}

/* k_sumsq_f32: the same bits for 1 and 2 threads; k_sumsq_rows_f32 the same bits without reading the
 * blocks that lie in rows flagged zero */
static void test_sumsq(void) {
    const size_t R = 300, C = 37, n = R * C + 5000;
    float *x = randn((long)n, 1.0f);
    unsigned char nz[300];
    for (size_t r = 0; r < R; r++) {
        nz[r] = (r % 29 == 3 && (r < 150 || r > 250)) || (r >= 100 && r < 104);
        if (!nz[r]) memset(x + r * C, 0, C * sizeof(float));
    }
    omp_set_num_threads(1);
    double s1 = k_sumsq_f32(x, n);
    omp_set_num_threads(2);
    double s2 = k_sumsq_f32(x, n);
    double want = 0;
    for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
    CHECK(s1 == s2 && fabs(s1 - want) <= 1e-12 * want, "sumsq: 1 and 2 threads give the same bits "
          "(%.17g, %.17g; plain sum %.17g)", s1, s2, want);
    /* rows 150..250 are zero and hold the block [6144, 7168): a NaN there, a lie the skipping
     * version must not see (blocks that also hold a non-zero row are read) */
    x[180 * C + 1] = NAN;
    int same = 1;
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        same &= k_sumsq_rows_f32(x, n, nz, R, C) == s1;
    }
    CHECK(same, "sumsq_rows: the same bits as sumsq, the rows flagged zero unread (1 and 2 threads)");
    free(x);
}

/* k_qkv_forward_cls: K and V of every token and Q of the [CLS] tokens, the bits of the whole
 * k_linear_forward (padded rows and packed ones, 1 and 2 threads); the other tokens' Q untouched;
 * declines where the whole call would not run on the tiles. */
static void test_qkv_cls(void) {
    const int shapes[][3] = {{4, 64, 384}, {3, 37, 384}, {2, 130, 48}, {5, 17, 64}, {2, 5, 16}}; /* n, T, C */
    int same = 1, untouched = 1, done = 1, declined = 1, ran = 0, refused = 0;
    for (int si = 0; si < 5; si++)
        for (int packed = 0; packed < 2; packed++) {
            int n = shapes[si][0], T = shapes[si][1], C = shapes[si][2], C3 = 3 * C, N = 0;
            size_t rows[3 * 8];
            for (int s = 0; s < n; s++) { /* packed: rows of T, T - 2s tokens, one after another */
                rows[s] = (size_t)N;
                N += packed ? T - 2 * s : T;
            }
            float *x = randn((long)N * C, 1.0f), *w = randn((long)C3 * C, 0.1f), *b = randn(C3, 0.5f);
            float *want = zeros((long)N * C3), *got = malloc(sizeof(float) * (size_t)N * C3);
            float *xc = zeros((long)n * C), *qc = zeros((long)n * C);
            for (int s = 0; s < n; s++) memcpy(xc + (size_t)s * C, x + (packed ? rows[s] : (size_t)s * T) * C, sizeof(float) * C);
            k_linear_forward(want, x, w, b, N, C, C3);
            for (int th = 1; th <= 2; th++) {
                for (long i = 0; i < (long)N * C3; i++) got[i] = -7.0f;
                omp_set_num_threads(th);
                int ok = k_qkv_forward_cls(got, qc, x, xc, packed ? rows : NULL, n, T, w, b, N, C);
                if (!k_skinny_forward_takes(N, C, C3)) {
                    declined &= !ok;
                    refused++;
                    continue;
                }
                done &= ok;
                ran++;
                for (int t = 0; t < N; t++) {
                    int cls = 0;
                    for (int s = 0; s < n; s++) cls |= (size_t)t == (packed ? rows[s] : (size_t)s * T);
                    const float *g = got + (size_t)t * C3, *e = want + (size_t)t * C3;
                    same &= !memcmp(g + C, e + C, sizeof(float) * 2 * C) && (!cls || !memcmp(g, e, sizeof(float) * C));
                    if (!cls) for (int c = 0; c < C; c++) untouched &= g[c] == -7.0f;
                }
            }
            omp_set_num_threads(2);
            free(x); free(w); free(b); free(want); free(got); free(xc); free(qc);
        }
    CHECK(done && same, "k_qkv_forward_cls: K and V of every token and the [CLS] tokens' Q, the bits of the whole "
                        "linear forward (padded and packed rows, 1 and 2 threads; %d calls)", ran);
    CHECK(untouched, "k_qkv_forward_cls: the other tokens' Q left as it was");
    CHECK(declined && refused >= 4, "k_qkv_forward_cls: declines where the whole call would not run on the tiles (%d calls)",
          refused);
#if BL_TILES
    CHECK(ran >= (k_skinny_max_tokens(0) == INT_MAX ? 16 : 12), /* AVX2: 260 tokens go to sgemm */
          "k_qkv_forward_cls computed at MiniLM's width and others (%d calls of 20)", ran);
#endif
}

/* The fused feed-forward of evaluation (k_ffn_forward_nokeep: the intermediate never stored) gives
 * the bits of linear_forward, gelu_forward and linear_forward, with 1 and 2 threads, at a batch of
 * titles, across chunk edges (64 tokens), with shapes that are not multiples of 16 or of 6 */
static void test_ffn_nokeep(void) {
#if BL_TILES
    const int shapes[][3] = {{45, 384, 1536}, {1, 384, 1536}, {64, 384, 1536}, {200, 384, 1536},
                             {130, 48, 100}, {640, 32, 64}};
    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]), same = 1, done = 1;
    double worst = 0.0;
    for (int si = 0; si < n_shapes; si++) {
        int N = shapes[si][0], C = shapes[si][1], I = shapes[si][2];
        float *x = randn((long)N * C, 1.0f), *w1 = randn((long)I * C, 0.1f), *b1 = randn(I, 0.5f);
        float *w2 = randn((long)C * I, 0.1f), *b2 = randn(C, 0.5f);
        if (N > k_skinny_max_tokens(0)) { /* AVX2 hands this many tokens back */
            float *y = zeros((long)N * C);
            done &= !k_ffn_forward_nokeep(y, x, w1, b1, w2, b2, N, C, I);
            free(y); free(x); free(w1); free(b1); free(w2); free(b2);
            continue;
        }
        float *h = zeros((long)N * I), *g = zeros((long)N * I), *y = zeros((long)N * C);
        float *y1 = zeros((long)N * C), *y2 = zeros((long)N * C);
        k_linear_forward(h, x, w1, b1, N, C, I);
        k_gelu_forward(g, h, (size_t)N * I);
        k_linear_forward(y, g, w2, b2, N, I, C);
        omp_set_num_threads(1);
        done &= k_ffn_forward_nokeep(y1, x, w1, b1, w2, b2, N, C, I);
        omp_set_num_threads(2);
        done &= k_ffn_forward_nokeep(y2, x, w1, b1, w2, b2, N, C, I);
        same &= !memcmp(y, y1, sizeof(float) * (size_t)N * C) && !memcmp(y, y2, sizeof(float) * (size_t)N * C);
        for (int t = 0; t < N; t += 7) /* and against a double-precision loop */
            for (int o = 0; o < C; o += 5) {
                double acc = b2[o];
                for (int i = 0; i < I; i++) {
                    double a = b1[i];
                    for (int c = 0; c < C; c++) a += (double)x[(size_t)t * C + c] * w1[(size_t)i * C + c];
                    acc += 0.5 * a * (1.0 + erf(a / sqrt(2.0))) * w2[(size_t)o * I + i];
                }
                double d = fabs(acc - y1[(size_t)t * C + o]) / sqrt((double)I);
                if (d > worst) worst = d;
            }
        free(x); free(w1); free(b1); free(w2); free(b2); free(h); free(g); free(y); free(y1); free(y2);
    }
    CHECK(done, "fused feed-forward: done by the tile kernels at every shape (with AVX2, up to %d tokens; "
                "handed back above)", SKINNY_TILES_MAX_N);
    CHECK(same, "fused feed-forward: the bits of linear, GELU, linear (6 shapes, 1 and 2 threads)");
    CHECK(worst < 1e-5, "fused feed-forward: right against a double loop (max |diff| / sqrt(I) %.3g)", worst);
#else
    int N = 45, C = 384, I = 1536;
    float *x = zeros((long)N * C), *w = zeros((long)I * C), *y = zeros((long)N * C);
    CHECK(!k_ffn_forward_nokeep(y, x, w, NULL, w, NULL, N, C, I),
          "fused feed-forward: without the tiles it declines (the model runs linear, GELU, linear)");
    free(x); free(w); free(y);
#endif
}

/* k_*_rows (a packed batch's rows in one call each): the same bits as a call per row of the padded
 * kernels (a batch of one at the row's stream offset), with 1 and 2 threads, for rows of 1 to 130
 * tokens (past 128 the forward goes in row blocks and the backward draws the mask twice): the
 * attention forward keeping its probabilities and not, its backward, the hidden dropout forward (in
 * place and not) and backward. */
static void test_rows(void) {
    enum { n = 5 };
    const int lens[n] = {7, 1, 40, 130, 17}, C = 64, NH = 4, P = 160;
    const float p = 0.1f;
    const uint64_t seed = 5, off = 1000;
    size_t rows[3 * n], N = 0, A = 0;
    for (int s = 0; s < n; s++) {
        rows[s] = N;
        rows[n + s] = (size_t)lens[s];
        rows[2 * n + s] = A;
        N += (size_t)lens[s];
        A += (size_t)NH * lens[s] * lens[s];
    }
    long nq = (long)N * 3 * C, nc = (long)N * C;
    float *qkv = randn(nq, 1.0f), *dout = randn(nc, 1.0f), *x = randn(nc, 1.0f), *d0 = randn(nc, 1.0f);
    float *out_r = zeros(nc), *att_r = zeros((long)A), *dq_r = zeros(nq), *scr = zeros((long)A);
    float *y_r = zeros(nc), *dx_r = copyf(d0, nc);
    omp_set_num_threads(2);
    for (int s = 0; s < n; s++) {
        int T = lens[s];
        k_attention_forward(out_r + rows[s] * C, att_r + rows[2 * n + s], qkv + rows[s] * 3 * C, NULL, 1, T, C, NH, P,
                            p, seed, off + (uint64_t)s * NH * P * P);
        k_attention_backward(dq_r + rows[s] * 3 * C, scr, dout + rows[s] * C, qkv + rows[s] * 3 * C,
                             att_r + rows[2 * n + s], 1, T, C, NH, P, p, seed, off + (uint64_t)s * NH * P * P);
        k_dropout_forward(y_r + rows[s] * C, x + rows[s] * C, 1, T, C, P, p, seed, off + (uint64_t)s * P * C);
        k_dropout_backward(dx_r + rows[s] * C, dout + rows[s] * C, 1, T, C, P, p, seed, off + (uint64_t)s * P * C);
    }
    long dropped = 0;
    for (long i = 0; i < nc; i++) dropped += y_r[i] == 0.0f;
    int att_same = 1, nokeep_same = 1, back_same = 1, drop_same = 1, set_same = 1;
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        float *out = zeros(nc), *att = zeros((long)A), *out_nk = zeros(nc), *dq = zeros(nq), *scr2 = zeros((long)A);
        float *y = zeros(nc), *yi = copyf(x, nc), *dx = copyf(d0, nc);
        k_attention_forward_rows(out, att, qkv, rows, n, C, NH, P, p, seed, off);
        k_attention_forward_rows(out_nk, NULL, qkv, rows, n, C, NH, P, p, seed, off);
        k_attention_backward_rows(dq, scr2, dout, qkv, att, rows, n, C, NH, P, p, seed, off);
        /* the writing variants over what dqkv held: the same bytes as adding onto zero */
        float *dqs = randn(nq, 3.0f), *dqp = randn(nq, 3.0f);
        k_attention_backward_rows_set(dqs, scr2, dout, qkv, att, rows, n, C, NH, P, p, seed, off);
        for (int s = 0; s < n; s++)
            k_attention_backward_set(dqp + rows[s] * 3 * C, scr2, dout + rows[s] * C, qkv + rows[s] * 3 * C,
                                     att + rows[2 * n + s], 1, lens[s], C, NH, P, p, seed, off + (uint64_t)s * NH * P * P);
        set_same &= !memcmp(dqs, dq_r, sizeof(float) * nq) && !memcmp(dqp, dq_r, sizeof(float) * nq);
        free(dqs); free(dqp);
        k_dropout_forward_rows(y, x, rows, n, C, P, p, seed, off);
        k_dropout_forward_rows(yi, yi, rows, n, C, P, p, seed, off);
        k_dropout_backward_rows(dx, dout, rows, n, C, P, p, seed, off);
        { /* written over what it held: dx_r less what it started from */
            float *dz = zeros(nc), *dg = randn(nc, 3.0f);
            k_dropout_backward_rows(dz, dout, rows, n, C, P, p, seed, off);
            k_dropout_backward_rows_set(dg, dout, rows, n, C, P, p, seed, off);
            set_same &= !memcmp(dg, dz, sizeof(float) * nc);
            free(dz); free(dg);
        }
        att_same &= !memcmp(out, out_r, sizeof(float) * nc) && !memcmp(att, att_r, sizeof(float) * A);
#if BL_TILES /* (sgemm may round the row blocks past 128 tokens differently) */
        nokeep_same &= !memcmp(out_nk, out_r, sizeof(float) * nc);
#endif
        back_same &= !memcmp(dq, dq_r, sizeof(float) * nq);
        drop_same &= !memcmp(y, y_r, sizeof(float) * nc) && !memcmp(yi, y_r, sizeof(float) * nc) &&
                     !memcmp(dx, dx_r, sizeof(float) * nc);
        free(out); free(att); free(out_nk); free(dq); free(scr2); free(y); free(yi); free(dx);
    }
    CHECK(att_same, "attention_forward_rows: out and att equal a call per row bit for bit (rows of 1-130 tokens, 1 and 2 threads)");
    CHECK(nokeep_same, "attention_forward_rows without att: the same out");
    CHECK(back_same, "attention_backward_rows: dqkv equals a call per row bit for bit");
    CHECK(set_same, "attention_backward_rows_set and attention_backward_set (a call per row), "
                    "dropout_backward_rows_set: the gradient written over what it held, the bytes of the adding "
                    "kernels onto zero (1 and 2 threads)");
    CHECK(drop_same && dropped > nc / 20 && dropped < nc / 5,
          "dropout_forward_rows (in place and not) and _backward_rows equal a call per row bit for bit "
          "(%ld of %ld dropped)", dropped, nc);
    /* the [CLS] queries alone: k_attention_forward_cls gives each row's token-0 output and
     * probabilities of the whole attention, and k_attention_backward_cls, from those rows' gradient,
     * the whole backward's dqkv for a gradient zero on every other token, written over garbage:
     * packed (rows above) and padded with a mask, 1 and 2 threads */
    int cls_out = 1, cls_att = 1, cls_back = 1;
    float *dz = zeros(nc), *dcls = zeros((long)n * C), *dq_z = zeros(nq), *scr3 = zeros((long)A);
    for (int s = 0; s < n; s++) {
        memcpy(dz + rows[s] * C, dout + rows[s] * C, sizeof(float) * C);
        memcpy(dcls + (size_t)s * C, dout + rows[s] * C, sizeof(float) * C);
    }
    k_attention_backward_rows(dq_z, scr3, dz, qkv, att_r, rows, n, C, NH, P, p, seed, off);
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        float *oc = randn((long)n * C, 3.0f), *on = randn((long)n * C, 3.0f), *ac = randn((long)NH * N, 3.0f);
        float *dqc = randn(nq, 3.0f);
        k_attention_forward_cls(oc, ac, qkv, NULL, rows, n, 0, C, NH, P, p, seed, off);
        k_attention_forward_cls(on, NULL, qkv, NULL, rows, n, 0, C, NH, P, p, seed, off);
        k_attention_backward_cls(dqc, dcls, qkv, ac, rows, n, 0, C, NH, P, p, seed, off);
        for (int s = 0; s < n; s++) {
            cls_out &= !memcmp(oc + (size_t)s * C, out_r + rows[s] * C, sizeof(float) * C) &&
                       !memcmp(on + (size_t)s * C, out_r + rows[s] * C, sizeof(float) * C);
            for (int h = 0; h < NH; h++)
                cls_att &= !memcmp(ac + rows[s] * NH + (size_t)h * lens[s], att_r + rows[2 * n + s] + (size_t)h * lens[s] * lens[s],
                                   sizeof(float) * lens[s]);
        }
        cls_back &= !memcmp(dqc, dq_z, sizeof(float) * nq);
        free(oc); free(on); free(ac); free(dqc);
    }
    { /* padded: 3 rows of 9 with padding masked, p = 0.1 */
        enum { Bp = 3, Tp = 9, Cp = 32, NHp = 2, Pp = 12 };
        long q3 = (long)Bp * Tp * 3 * Cp, c1 = (long)Bp * Tp * Cp;
        float *qk = randn(q3, 1.0f), *ma = zeros(Bp * Tp), *o = zeros(c1), *at = zeros((long)Bp * NHp * Tp * Tp);
        float *g = zeros(c1), *gc = zeros(Bp * Cp), *dq = zeros(q3), *sc = zeros((long)Bp * NHp * Tp * Tp);
        float *oc = randn(Bp * Cp, 3.0f), *ac = randn((long)NHp * Bp * Tp, 3.0f), *dqc = randn(q3, 3.0f);
        float *gd = randn(c1, 1.0f);
        for (int b = 0; b < Bp; b++)
            for (int t = 0; t < Tp; t++) ma[b * Tp + t] = t < 9 - 3 * b ? 0.0f : -FLT_MAX;
        for (int b = 0; b < Bp; b++) {
            memcpy(g + (size_t)b * Tp * Cp, gd + (size_t)b * Tp * Cp, sizeof(float) * Cp);
            memcpy(gc + (size_t)b * Cp, gd + (size_t)b * Tp * Cp, sizeof(float) * Cp);
        }
        k_attention_forward(o, at, qk, ma, Bp, Tp, Cp, NHp, Pp, 0.1f, seed, off);
        k_attention_backward(dq, sc, g, qk, at, Bp, Tp, Cp, NHp, Pp, 0.1f, seed, off);
        k_attention_forward_cls(oc, ac, qk, ma, NULL, Bp, Tp, Cp, NHp, Pp, 0.1f, seed, off);
        k_attention_backward_cls(dqc, gc, qk, ac, NULL, Bp, Tp, Cp, NHp, Pp, 0.1f, seed, off);
        for (int b = 0; b < Bp; b++) {
            cls_out &= !memcmp(oc + (size_t)b * Cp, o + (size_t)b * Tp * Cp, sizeof(float) * Cp);
            for (int h = 0; h < NHp; h++)
                cls_att &= !memcmp(ac + ((size_t)b * NHp + h) * Tp, at + ((size_t)b * NHp + h) * Tp * Tp, sizeof(float) * Tp);
        }
        cls_back &= !memcmp(dqc, dq, sizeof(float) * q3);
        free(qk); free(ma); free(o); free(at); free(g); free(gc); free(dq); free(sc); free(oc); free(ac); free(dqc); free(gd);
    }
    CHECK(cls_out, "attention_forward_cls: each row's [CLS] output of the whole attention, bit for bit (packed rows "
                   "of 1-130 tokens and a padded batch with a mask; keeping att and not; 1 and 2 threads)");
    CHECK(cls_att, "attention_forward_cls keeps the [CLS] rows of the whole attention's probabilities (with the "
                   "dropout marks)");
    CHECK(cls_back, "attention_backward_cls: dqkv written, the whole backward's bits for a gradient zero past [CLS]");
    free(dz); free(dcls); free(dq_z); free(scr3);
    free(qkv); free(dout); free(x); free(d0); free(out_r); free(att_r); free(dq_r); free(scr); free(y_r); free(dx_r);
}

/* The attention's softmax (k_scores_softmax: AVX-512 code where built so) against its definition in
 * scalar C on k_expf, bit for bit: rows of 5-256 scores spanning exp's whole range and its clamps
 * (-86, and scores that scale past 88), masked entries (-FLT_MAX), a row with a NaN, one with +inf,
 * one all masked, R = 37 rows (the blocks of 16 and their tail). And k_expf against libm's exp. */
static void softmax_def(float *a, int R, float scale, const float *ma, int T) {
    int T16 = T / 16 * 16;
    for (int r = 0; r < R; r++) {
        float *x = a + (size_t)r * T, lane[16], m, sum = 0.0f;
        for (int j = 0; j < T; j++) x[j] = ma ? fmaf(x[j], scale, ma[j]) : x[j] * scale;
        for (int l = 0; l < 16; l++) lane[l] = x[0];
        for (int j = 0; j < T16; j++) lane[j % 16] = x[j] > lane[j % 16] ? x[j] : lane[j % 16];
        m = lane[0];
        for (int l = 1; l < 16; l++) m = lane[l] > m ? lane[l] : m;
        for (int j = T16; j < T; j++) m = x[j] > m ? x[j] : m;
        for (int l = 0; l < 16; l++) lane[l] = 0.0f;
        for (int j = 0; j < T; j++) x[j] = k_expf(x[j] - m);
        for (int j = 0; j < T16; j++) lane[j % 16] += x[j];
        for (int l = 0; l < 16; l++) sum += lane[l];
        for (int j = T16; j < T; j++) sum += x[j];
        float inv = 1.0f / sum;
        for (int j = 0; j < T; j++) x[j] *= inv;
    }
}

static void test_scores_softmax(void) {
    const int Ts[] = {5, 16, 37, 130, 256}, R = 37;
    for (int ti = 0; ti < 5; ti++)
        for (int masked = 0; masked < 2; masked++) {
            int T = Ts[ti];
            float *a = randn((long)R * T, 40.0f), *ma = zeros(T);
            for (int j = 0; j < T; j++) ma[j] = j % 7 == 3 ? -FLT_MAX : 0.0f;
            for (int j = 0; j < T; j++) {
                a[3 * T + j] *= 0.05f;                  /* a row of small scores */
                a[5 * T + j] = -85.0f - 0.01f * (float)j; /* x - max around exp's -86 clamp */
                a[7 * T + j] = 1e30f * (float)(j % 3);  /* scores * scale past 88 and to +inf */
                if (masked) a[9 * T + j] = 0.0f;
            }
            a[11 * T + T / 2] = NAN;
            a[13 * T] = INFINITY;
            if (masked) for (int j = 0; j < T; j++) if (j % 7 != 3) ma[j] = j < 2 ? 0.0f : -FLT_MAX;
            float *want = copyf(a, (long)R * T);
            k_scores_softmax(a, R, 0.125f, masked ? ma : NULL, T);
            softmax_def(want, R, 0.125f, masked ? ma : NULL, T);
            long bad = 0;
            for (long i = 0; i < (long)R * T; i++)
                if (memcmp(&a[i], &want[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(want[i]))) bad++;
            CHECK(bad == 0, "k_scores_softmax, T = %d%s: the bits of its scalar definition (%ld of %ld differ)", T,
                  masked ? ", masked" : "", bad, (long)R * T);
            free(a); free(ma); free(want);
        }
    double worst = 0.0;
    for (int i = -8600; i <= 8800; i++) {
        double x = i * 0.01, e = k_expf((float)x), t = exp((float)x);
        worst = fmax(worst, fabs(e - t) / t);
    }
    CHECK(worst < 3e-7, "k_expf on [-86, 88] against libm's exp: relative error %.3g < 3e-7", worst);
    CHECK(k_expf(-86.5f) == 0.0f && k_expf(-FLT_MAX) == 0.0f && isnan(k_expf(NAN)),
          "k_expf: 0 below -86 and for -FLT_MAX; NaN for NaN");
}

int main(void) {
    if (fx_load() != 0) {
        CHECK(0, "fixtures " FIXDIR "{index.txt,data.bin} readable (run tests/fixtures/gen_kernels.py)");
        CT_DONE();
    }
    test_embeddings();
    test_layernorm("ln");
    test_layernorm("ln384");
    test_layernorm_fd();
    test_layernorm_widths();
    test_linear();
    test_attention("att");
    test_attention("attd");
    test_attention("att384");
    test_attention("att80");  /* T >= 64: the sgemm path */
    test_attention("att80d");
    test_attention("att130d"); /* T > 128: the rows in blocks (126, then 4) */
    test_scores_softmax();
    test_pointwise();
    test_dropout();
    test_dropout_hidden();
    test_cls();
    test_crossentropy();
    test_threaded_paths();
    test_adamw_rows();
    test_adamw_formula();
    test_blas_core();
    test_blas_threads();
    test_threads_same_bits();
    test_skinny();
    test_ffn_nokeep();
    test_qkv_cls();
    test_rows();
    test_head_gemm();
    test_sumsq();
    free(fx_data);
    CT_DONE();
}
