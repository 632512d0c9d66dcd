/* optim.c: AdamW state and per-step scalars, and gradient clipping. The elementwise work is in
 * kernels/cpu/optim.c (k_adamw_step); here the step's scalars are computed in double as Python
 * computes them in transformers and torch, then rounded to float for the kernel. */
#include "optim.h"
#include "error.h"
#include "../kernels/optim_kernels.h"
#include <math.h>
#include <stdlib.h>

int adamw_config_check(const adamw_config_t *c) {
    if (!(c->lr >= 0.0)) return bl_fail("Invalid learning rate: %g", c->lr);
    if (!(c->eps >= 0.0)) return bl_fail("Invalid epsilon value: %g", c->eps);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0)) return bl_fail("Invalid beta parameter at index 0: %g (must be in [0, 1))", c->beta1);
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0)) return bl_fail("Invalid beta parameter at index 1: %g (must be in [0, 1))", c->beta2);
    if (!(c->weight_decay >= 0.0)) return bl_fail("Invalid weight_decay value: %g", c->weight_decay);
    return 0;
}

adamw_t *adamw_new(const adamw_config_t *cfg, int nparams, const int64_t *numel) {
    if (adamw_config_check(cfg)) return NULL;
    if (nparams < 0) { bl_fail("AdamW: negative parameter count"); return NULL; }
    adamw_t *o = calloc(1, sizeof *o);
    if (!o) { bl_fail("AdamW: out of memory"); return NULL; }
    o->cfg = *cfg;
    o->nparams = nparams;
    o->numel = calloc((size_t)(nparams ? nparams : 1), sizeof *o->numel);
    o->offset = calloc((size_t)(nparams ? nparams : 1), sizeof *o->offset);
    if (!o->numel || !o->offset) goto oom;
    for (int i = 0; i < nparams; i++) {
        if (numel[i] < 0) { bl_fail("AdamW: parameter %d has a negative size", i + 1); adamw_free(o); return NULL; }
        o->numel[i] = numel[i];
        o->offset[i] = o->total;
        o->total += numel[i];
    }
    o->state = calloc((size_t)(o->total ? 2 * o->total : 1), sizeof(float));
    if (!o->state) goto oom;
    o->m = o->state;
    o->v = o->state + o->total;
    return o;
oom:
    adamw_free(o);
    bl_fail("AdamW: out of memory for the optimizer state");
    return NULL;
}

void adamw_free(adamw_t *o) {
    if (!o) return;
    free(o->state);
    free(o->numel);
    free(o->offset);
    free(o);
}

static k_adamw_hparams_t step_hparams(const adamw_config_t *c, int64_t t) {
    k_adamw_hparams_t hp;
    hp.beta1 = (float)c->beta1;
    hp.beta2 = (float)c->beta2;
    hp.one_minus_beta1 = (float)(1.0 - c->beta1);
    hp.one_minus_beta2 = (float)(1.0 - c->beta2);
    hp.eps = (float)c->eps;
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    if (c->variant == ADAMW_TORCH) {
        hp.step_size = (float)(c->lr / bc1);
        hp.bc2_sqrt = (float)sqrt(bc2);
        hp.decay_first = 1;
    } else {
        hp.step_size = (float)(c->correct_bias ? c->lr * sqrt(bc2) / bc1 : c->lr);
        hp.bc2_sqrt = 1.0f;
        hp.decay_first = 0;
    }
    hp.decay = (float)(c->lr * c->weight_decay);
    hp.keep = (float)(1.0 - c->lr * c->weight_decay);
    return hp;
}

int adamw_step(adamw_t *o, float *const *params, const float *const *grads) {
    o->t++;
    k_adamw_hparams_t hp = step_hparams(&o->cfg, o->t);
    int i = 0;
    while (i < o->nparams) {
        /* extend the run while the next parameter and its gradient follow in memory */
        int j = i;
        int64_t n = o->numel[i];
        while (j + 1 < o->nparams && params[j + 1] == params[j] + o->numel[j] &&
               grads[j + 1] == grads[j] + o->numel[j]) {
            j++;
            n += o->numel[j];
        }
        if (n > 0)
            k_adamw_step(params[i], grads[i], o->m + o->offset[i], o->v + o->offset[i], (size_t)n, hp);
        i = j + 1;
    }
    return 0;
}

double clip_grad_norm(float *const *grads, const int64_t *numel, int n, double max_norm) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += k_sumsq_f32(grads[i], (size_t)numel[i]);
    double norm = sqrt(ss);
    /* torch computes the coefficient on float32 tensors */
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef < 1.0f)
        for (int i = 0; i < n; i++) k_scale_f32(grads[i], (size_t)numel[i], coef);
    return norm;
}
