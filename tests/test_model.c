/* test_model.c: the C model (runtime/bert.c) checked against itself: central finite differences of
 * the whole model's loss for every parameter tensor (eval mode, and train mode with the dropout
 * masks held fixed), activation reuse/growth, padding invariance, and runtime error paths.
 * The transformers comparison lives in tests/test_model.lua. Run from the repo root. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/bert.h"
#include "../runtime/error.h"
#include "../runtime/rng.h"
#include "ctest.h"

#define TINY "tests/fixtures/model/tiny"

static int64_t IDS[3][7] = {{1, 75, 97, 76, 51, 88, 27}, {1, 52, 64, 13, 0, 0, 0}, {1, 31, 43, 76, 48, 52, 0}};
static int64_t MASK[3][7] = {{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 0}};
static int64_t TYPES[3][7] = {{0, 0, 0, 1, 1, 1, 1}, {0, 0, 1, 1, 0, 0, 0}, {0, 0, 0, 1, 1, 1, 0}};
static int64_t LABELS[3] = {2, 0, 1};

static tensor_t *i64(int ndim, int64_t d0, int64_t d1, const int64_t *data) {
    int64_t shape[2] = {d0, d1};
    tensor_t *t = tensor_new(DT_I64, ndim, shape);
    memcpy(t->data, data, sizeof(int64_t) * (size_t)t->numel);
    return t;
}

/* loss of one forward with the dropout stream rewound to `offset` (same masks every time) */
static float loss_at(bert_t *m, const bert_inputs_t *in, uint64_t offset) {
    rng_stream(RNG_STREAM_DROPOUT)->offset = offset;
    float loss = NAN;
    if (bert_forward(m, in, &loss) != 0) printf("# forward failed: %s\n", bl_errmsg());
    return loss;
}

/* For every parameter tensor: the element with the largest gradient and one pseudo-random element;
 * returns the number of elements whose central difference disagrees with the gradient. */
static int finite_differences(bert_t *m, const bert_inputs_t *in, const char *mode, double *worst) {
    uint64_t off = rng_stream(RNG_STREAM_DROPOUT)->offset;
    bert_zero_grad(m);
    loss_at(m, in, off);
    bert_backward(m, 1.0f);
    int bad = 0, checked = 0;
    *worst = 0;
    uint32_t lcg = 12345;
    for (int k = 0; k < m->num_tensors; k++) {
        const bert_param_info_t *pi = &m->info[k];
        float *p = m->params_memory + pi->offset, *g = m->grads_memory + pi->offset;
        size_t imax = 0;
        for (size_t i = 1; i < pi->numel; i++)
            if (fabsf(g[i]) > fabsf(g[imax])) imax = i;
        lcg = lcg * 1664525u + 1013904223u;
        size_t pick[2] = {imax, (size_t)(lcg >> 8) % pi->numel};
        for (int s = 0; s < 2; s++) {
            size_t i = pick[s];
            float saved = p[i];
            float eps = 1e-2f * fmaxf(1.0f, fabsf(saved));
            p[i] = saved + eps;
            double lp = loss_at(m, in, off);
            p[i] = saved - eps;
            double lm = loss_at(m, in, off);
            p[i] = saved;
            double fd = (lp - lm) / (2.0 * eps), an = g[i];
            double err = fabs(fd - an), tol = 5e-4 + 2e-2 * fabs(an);
            if (err / tol > *worst) *worst = err / tol;
            if (err > tol) {
                bad++;
                printf("# %s: %s[%zu]: finite difference %.6g, backward %.6g\n", mode, pi->name, i,
                       fd, an);
            }
            checked++;
        }
    }
    printf("# %s: %d elements of %d tensors checked, worst |fd - grad| / tol = %.3g\n", mode,
           checked, m->num_tensors, *worst);
    return bad;
}

/* One training step's loss, logits and gradients with m->full_last = full (the dropout stream
 * rewound to `offset`): into loss, logits[3*L] and grads[num_parameters]. */
static void step_with(bert_t *m, const bert_inputs_t *in, int full, uint64_t offset, float *loss,
                      float *logits, float *grads) {
    m->full_last = full;
    bert_zero_grad(m);
    *loss = loss_at(m, in, offset);
    memcpy(logits, m->acts.logits, sizeof(float) * (size_t)in->input_ids->shape[0] * m->config.num_labels);
    bert_backward(m, 1.0f);
    memcpy(grads, m->grads_memory, sizeof(float) * m->num_parameters);
    m->full_last = 0;
}

/* The last layer past its attention on the [CLS] rows only (the default) against every token
 * (full_last, transformers' order of work): the same loss, logits and gradients, in train mode
 * (dropout masks drawn at the same stream indices) and eval mode, packed and padded batches. */
static void test_cls_last_layer(bert_t *m, const bert_inputs_t *in, const char *what) {
    size_t np = m->num_parameters;
    int L = m->config.num_labels, B = (int)in->input_ids->shape[0];
    float *g0 = malloc(np * sizeof(float)), *g1 = malloc(np * sizeof(float));
    float lg0[16 * 8], lg1[16 * 8], l0, l1;
    for (int train = 0; train < 2; train++) {
        bert_set_training(m, train);
        uint64_t off = rng_stream(RNG_STREAM_DROPOUT)->offset;
        step_with(m, in, 1, off, &l1, lg1, g1);
        step_with(m, in, 0, off, &l0, lg0, g0);
        double dl = 0, dg = 0, gmax = 0;
        for (int j = 0; j < B * L; j++) dl = fmax(dl, fabs((double)lg0[j] - lg1[j]));
        size_t nz = 0;
        for (size_t i = 0; i < np; i++) {
            dg = fmax(dg, fabs((double)g0[i] - g1[i]));
            gmax = fmax(gmax, fabs((double)g1[i]));
            nz += g1[i] != 0.0f;
        }
        CHECK(fabs((double)l0 - l1) <= 1e-6 * fabs(l1) && dl <= 1e-6 && dg <= 1e-6 * gmax && nz > np / 4,
              "%s, %s: the last layer on the [CLS] rows gives the full layer's loss (%.9g vs %.9g), "
              "logits (within %.2g) and gradients (within %.2g of the largest, %.3g; %zu non-zero)",
              what, train ? "train" : "eval", l0, l1, dl, dg, gmax, nz);
    }
    /* a grad-free forward (evaluation: one layer's slots for all) gives the same logits too */
    bert_set_training(m, 0);
    bert_inputs_t ev = *in;
    ev.labels = NULL;
    ev.no_grad = 1;
    m->full_last = 1;
    bert_forward(m, &ev, NULL);
    memcpy(lg1, m->acts.logits, sizeof(float) * (size_t)(B * L));
    m->full_last = 0;
    bert_forward(m, &ev, NULL);
    double dl = 0;
    for (int j = 0; j < B * L; j++) dl = fmax(dl, fabs((double)m->acts.logits[j] - lg1[j]));
    CHECK(dl <= 1e-6, "%s, a grad-free forward: the same logits on the [CLS] rows (within %.2g)", what, dl);
    free(g0);
    free(g1);
}

int main(void) {
    bert_t m;
    bert_load_opts_t lo = {0, NULL, 1, 0};
    if (bert_from_pretrained(&m, TINY, &lo) != 0) {
        CHECK(0, "load %s: %s", TINY, bl_errmsg());
        CT_DONE();
    }
    tensor_t *ids = i64(2, 3, 7, &IDS[0][0]), *mask = i64(2, 3, 7, &MASK[0][0]),
             *types = i64(2, 3, 7, &TYPES[0][0]), *labels = i64(1, 3, 0, LABELS);
    bert_inputs_t in = {ids, mask, types, labels, 0, 0, 0};
    double worst;

    /* ---- finite differences, eval and train (fixed masks) ---- */
    bert_set_training(&m, 0);
    CHECK(finite_differences(&m, &in, "eval", &worst) == 0,
          "eval: central differences agree with backward for all %d parameter tensors (worst %.2g of tol)",
          m.num_tensors, worst);
    rng_set_seed(99);
    bert_set_training(&m, 1);
    CHECK(finite_differences(&m, &in, "train", &worst) == 0,
          "train: central differences agree with backward with dropout masks reused (worst %.2g of tol)",
          worst);
    bert_set_training(&m, 0);

    /* ---- the last layer on the [CLS] rows: packed rows, then padding inside a row (no packing) ---- */
    rng_set_seed(7);
    test_cls_last_layer(&m, &in, "packed rows");
    int64_t hole[3][7] = {{1, 1, 0, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 0}};
    tensor_t *holes = i64(2, 3, 7, &hole[0][0]);
    bert_inputs_t inh = {ids, holes, types, labels, 0, 0, 0};
    test_cls_last_layer(&m, &inh, "padded batch");
    tensor_free(holes);
    /* a one-layer model (the tiny config with 1 layer, random weights): the last layer is also the
     * first, its input the embeddings' output */
    {
        bert_config_t c1;
        bert_t m1;
        if (bert_config_load(&c1, TINY "/config.json") == 0) {
            c1.num_hidden_layers = 1;
            rng_set_seed(5);
            if (bert_init(&m1, &c1, NULL) == 0 && bert_init_weights(&m1) == 0)
                test_cls_last_layer(&m1, &in, "one layer");
            else
                CHECK(0, "a one-layer model: %s", bl_errmsg());
            bert_free(&m1);
            bert_config_free(&c1);
        } else {
            CHECK(0, "%s/config.json: %s", TINY, bl_errmsg());
        }
    }

    /* ---- zero_grad clears everything backward wrote (word-embedding rows included) ---- */
    bert_set_training(&m, 0);
    bert_forward(&m, &in, NULL);
    bert_backward(&m, 1.0f);
    int64_t other_ids[3][7] = {{2, 3, 4, 5, 6, 7, 8}, {9, 10, 11, 12, 0, 0, 0}, {13, 14, 15, 16, 17, 18, 0}};
    tensor_t *oid = i64(2, 3, 7, &other_ids[0][0]);
    bert_inputs_t ino = {oid, mask, types, labels, 0, 0, 0};
    bert_forward(&m, &ino, NULL);
    bert_backward(&m, 1.0f); /* two batches accumulated: rows of both are non-zero */
    size_t nz = 0;
    for (size_t i = 0; i < m.num_parameters; i++) nz += m.grads_memory[i] != 0.0f;
    bert_zero_grad(&m);
    int unset = m.dw_unset;
    bert_grads_ready(&m);
    size_t left = 0;
    for (size_t i = 0; i < m.num_parameters; i++) left += m.grads_memory[i] != 0.0f;
    CHECK(nz > 1000 && left == 0 && unset,
          "zero_grad clears all %zu non-zero gradients (%zu left; the linear layers' weight gradients left to "
          "the next backward, then cleared by bert_grads_ready)", nz, left);
    /* the backward after zero_grad writes those it left: the bits of one backward onto cleared
     * gradients, whatever they held (here that backward's own result: added to, it would double) */
    bert_forward(&m, &in, NULL);
    bert_backward(&m, 1.0f); /* onto the cleared gradients */
    float *eager = malloc(sizeof(float) * m.num_parameters);
    memcpy(eager, m.grads_memory, sizeof(float) * m.num_parameters);
    bert_zero_grad(&m); /* leaves eager's values in the four linear weights' gradients */
    bert_forward(&m, &in, NULL);
    bert_backward(&m, 1.0f);
    CHECK(unset && !memcmp(eager, m.grads_memory, sizeof(float) * m.num_parameters) && !m.dw_unset,
          "the backward after zero_grad writes the linear layers' weight gradients: the same bytes as one "
          "backward onto cleared ones");
    free(eager);
    tensor_free(oid);

    /* ---- activations: reused for smaller batches, grown for larger ---- */
    float full[3][3];
    CHECK(bert_forward(&m, &in, NULL) == 0, "forward B=3 T=7");
    memcpy(full, m.acts.logits, sizeof full);
    float *acts = m.acts_memory;
    tensor_t *ids2 = i64(2, 1, 4, &IDS[1][0]);
    bert_inputs_t in2 = {ids2, NULL, NULL, NULL, 0, 0, 0};
    int64_t types2[4] = {0, 0, 1, 1};
    tensor_t *t2 = i64(2, 1, 4, types2);
    in2.token_type_ids = t2;
    CHECK(bert_forward(&m, &in2, NULL) == 0, "forward B=1 T=4 (row 2 without its padding)");
    CHECK(m.acts_memory == acts, "a smaller batch reuses the activation allocation");
    double dpad = 0;
    for (int j = 0; j < 3; j++) dpad = fmax(dpad, fabs(m.acts.logits[j] - full[1][j]));
    CHECK(dpad < 1e-5, "padding does not change a row's logits (max diff %.3g)", dpad);
    int64_t big[5 * 9];
    for (int i = 0; i < 45; i++) big[i] = (i * 7) % 100;
    tensor_t *ids3 = i64(2, 5, 9, big);
    bert_inputs_t in3 = {ids3, NULL, NULL, NULL, 0, 0, 0};
    int want_T = 32 < m.config.max_position_embeddings ? 32 : m.config.max_position_embeddings;
    CHECK(bert_forward(&m, &in3, NULL) == 0 && m.act_B == 5 && m.act_T == want_T,
          "a larger batch grows the activations to B=%d T=%d (T in steps of 32, at most max_position %d)",
          m.act_B, m.act_T, m.config.max_position_embeddings);

    /* ---- runtime errors ---- */
    CHECK(bert_forward(&m, &in2, NULL) == 0 && bert_backward(&m, 1.0f) != 0 &&
              strstr(bl_errmsg(), "the last forward had no labels"),
          "backward after a forward without labels: %s", bl_errmsg());
    bert_inputs_t none = {NULL, NULL, NULL, NULL, 0, 0, 0};
    CHECK(bert_forward(&m, &none, NULL) != 0 && strstr(bl_errmsg(), "input_ids is required"),
          "forward without input_ids: %s", bl_errmsg());
    bert_t m2;
    CHECK(bert_from_pretrained(&m2, TINY "/config.json", &lo) != 0 &&
              strstr(bl_errmsg(), "expected a model folder or a .safetensors file"),
          "from_pretrained(config.json): %s", bl_errmsg());
    bert_free(&m);
    bert_free(&m); /* twice-safe */
    CHECK(bert_forward(&m, &in, NULL) != 0 && strstr(bl_errmsg(), "freed"), "forward after free: %s",
          bl_errmsg());
    tensor_free(ids); tensor_free(mask); tensor_free(types); tensor_free(labels);
    tensor_free(ids2); tensor_free(t2); tensor_free(ids3);
    CT_DONE();
}
