/* test_class_weights.c: the weighted cross-entropy (k_crossentropy_forward/backward with class
 * weights) against PyTorch's CrossEntropyLoss(weight=w) (tests/fixtures/gen_class_weights.py,
 * float64 autograd from float32 inputs) and against central finite differences of the C loss;
 * also that NULL weights and all-ones weights give bit-identical results (the default path).
 * Dimension letters: B batch rows, L labels. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/bert_kernels.h"
#include "ctest.h"

#define FIX "tests/fixtures/class_weights/ce.txt"

/* Reads the line "<key> v1 v2 ..." into out (n values); -1 when the key or a value is missing. */
static int read_row(FILE *f, const char *key, double *out, long n) {
    char k[32];
    if (fscanf(f, "%31s", k) != 1 || strcmp(k, key)) return -1;
    for (long i = 0; i < n; i++)
        if (fscanf(f, "%lf", &out[i]) != 1) return -1;
    return 0;
}

typedef struct { float *loss, *probs, *z, *w; int64_t *y; int B, L; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    k_crossentropy_forward(c->loss, c->probs, c->z, c->y, c->w, c->B, c->L);
    return c->loss[0];
}

/* central differences of the weighted loss vs the kernel's backward, largest scaled error */
static double fd_error(ce_ctx *c, const float *grad) {
    double worst = 0.0;
    long n = (long)c->B * c->L;
    for (long i = 0; i < n; i++) {
        float x0 = c->z[i], eps = 1e-2f, xp = x0 + eps, xm = x0 - eps;
        c->z[i] = xp;
        double lp = ce_loss(c);
        c->z[i] = xm;
        double lm = ce_loss(c);
        c->z[i] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double e = fabs(fd - grad[i]) / fmax(1.0, fabs(grad[i]));
        if (e > worst) worst = e;
    }
    return worst;
}

static void test_fixture_case(FILE *f, const char *name, int B, int L) {
    long n = (long)B * L;
    double *zd = malloc(sizeof(double) * n), *yd = malloc(sizeof(double) * B),
           *wd = malloc(sizeof(double) * L), dloss, want_loss, *dzd = malloc(sizeof(double) * n);
    int bad = read_row(f, "z", zd, n) || read_row(f, "y", yd, B) || read_row(f, "w", wd, L) ||
              read_row(f, "dloss", &dloss, 1) || read_row(f, "loss", &want_loss, 1) ||
              read_row(f, "dz", dzd, n);
    CHECK(!bad, "%s: fixture case parsed (" FIX ")", name);
    if (bad) exit(1);
    float *z = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * L), *probs = malloc(sizeof(float) * n),
          *dz = calloc((size_t)n, sizeof(float)), loss = 0;
    int64_t *y = malloc(sizeof(int64_t) * B);
    for (long i = 0; i < n; i++) z[i] = (float)zd[i];
    for (int i = 0; i < B; i++) y[i] = (int64_t)yd[i];
    for (int i = 0; i < L; i++) w[i] = (float)wd[i];
    k_crossentropy_forward(&loss, probs, z, y, w, B, L);
    CHECK_NEAR(loss, want_loss, 1e-5 * fmax(1.0, fabs(want_loss)), "%s: weighted loss vs torch CrossEntropyLoss(weight=) (%.9g vs %.9g)",
               name, (double)loss, want_loss);
    k_crossentropy_backward(dz, probs, y, w, B, L, (float)dloss);
    double worst = 0.0;
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(dz[i] - dzd[i]));
    CHECK(worst <= 1e-6, "%s: weighted dlogits vs torch autograd (largest difference %.3g)", name, worst);
    /* backward accumulates: a second call doubles the gradient */
    k_crossentropy_backward(dz, probs, y, w, B, L, (float)dloss);
    worst = 0.0;
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(dz[i] - 2 * dzd[i]));
    CHECK(worst <= 2e-6, "%s: weighted backward accumulates (largest difference %.3g)", name, worst);
    memset(dz, 0, sizeof(float) * n);
    k_crossentropy_forward(&loss, probs, z, y, w, B, L);
    k_crossentropy_backward(dz, probs, y, w, B, L, 1.0f);
    ce_ctx c = {&loss, probs, z, w, y, B, L};
    double e = fd_error(&c, dz);
    CHECK(e <= 2e-3, "%s: finite differences of the weighted loss (largest scaled error %.3g)", name, e);
    free(zd); free(yd); free(wd); free(dzd); free(z); free(w); free(probs); free(dz); free(y);
}

/* all-ones weights are the plain mean bit for bit (sum w = B exactly), and NULL is the default */
static void test_ones_identical(void) {
    int B = 7, L = 5;
    long n = (long)B * L;
    float z[35], w[5] = {1, 1, 1, 1, 1}, p1[35], p2[35], d1[35] = {0}, d2[35] = {0}, l1, l2;
    int64_t y[7] = {0, 4, 2, 2, 1, 3, 0};
    unsigned s = 12345;
    for (long i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        z[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 8.0f;
    }
    k_crossentropy_forward(&l1, p1, z, y, NULL, B, L);
    k_crossentropy_forward(&l2, p2, z, y, w, B, L);
    k_crossentropy_backward(d1, p1, y, NULL, B, L, 0.75f);
    k_crossentropy_backward(d2, p2, y, w, B, L, 0.75f);
    CHECK(l1 == l2 && !memcmp(p1, p2, sizeof p1) && !memcmp(d1, d2, sizeof d1),
          "all-ones class weights give the unweighted loss and gradient bit for bit (%.9g, %.9g)",
          (double)l1, (double)l2);
    /* scaling every weight by a constant leaves the weighted mean unchanged */
    float w3[5] = {3, 3, 3, 3, 3};
    k_crossentropy_forward(&l2, p2, z, y, w3, B, L);
    CHECK_NEAR(l2, l1, 1e-6, "weights scaled by 3 give the same mean loss");
    /* a class with weight 0 drops out: the gradient of its rows is 0 */
    float w0[5] = {0, 1, 1, 1, 1}, d0[35] = {0};
    k_crossentropy_forward(&l2, p2, z, y, w0, B, L);
    k_crossentropy_backward(d0, p2, y, w0, B, L, 1.0f);
    int zero = 1;
    for (int l = 0; l < L; l++) zero &= d0[0 * L + l] == 0.0f && d0[6 * L + l] == 0.0f;
    CHECK(zero, "rows of a class with weight 0 get no gradient");
}

int main(void) {
    FILE *f = fopen(FIX, "r");
    CHECK(f != NULL, "open " FIX " (run from the repository root)");
    if (!f) CT_DONE();
    char name[64];
    int B, L, cases = 0;
    while (fscanf(f, "%63s %d %d", name, &B, &L) == 3) {
        test_fixture_case(f, name, B, L);
        cases++;
    }
    fclose(f);
    CHECK(cases == 5, "every fixture case ran (%d of 5)", cases);
    test_ones_identical();
    CT_DONE();
}
