/* optim.c: AdamW state and per-step scalars, and gradient clipping. The elementwise work is in
 * kernels (through the CPU backend for these host arrays; a model's flat buffers go through
 * bert_adamw_step on the model's device); here the step's scalars are computed in double as Python
 * computes them in transformers and torch, then rounded to float for the kernel. */
#include "optim.h"
#include "error.h"
#include "../kernels/backend.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int adamw_config_check(const adamw_config_t *c) {
    if (!(c->lr >= 0.0) || isinf(c->lr)) return bl_fail("Invalid learning rate: %g (must be finite and >= 0)", c->lr);
    if (!(c->eps >= 0.0) || isinf(c->eps)) return bl_fail("Invalid epsilon value: %g", c->eps);
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0)) return bl_fail("Invalid beta parameter at index 0: %g (must be in [0, 1))", c->beta1);
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0)) return bl_fail("Invalid beta parameter at index 1: %g (must be in [0, 1))", c->beta2);
    if (!(c->weight_decay >= 0.0) || isinf(c->weight_decay)) return bl_fail("Invalid weight_decay value: %g", c->weight_decay);
    return 0;
}

/* Sorting indices by address (qsort has no context argument: sort (address, index) pairs). */
typedef struct {
    uintptr_t addr;
    int idx;
} addr_idx_t;

static int cmp_addr(const void *a, const void *b) {
    const addr_idx_t *x = a, *y = b;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    return x->idx - y->idx;
}

/* order[k] = the index of the k-th lowest address (stable); identity when ptrs is NULL. */
static int address_order(int n, const void *const *ptrs, int *order) {
    if (!ptrs) {
        for (int i = 0; i < n; i++) order[i] = i;
        return 0;
    }
    addr_idx_t *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    if (!a) return bl_fail("out of memory");
    for (int i = 0; i < n; i++) {
        a[i].addr = (uintptr_t)ptrs[i];
        a[i].idx = i;
    }
    qsort(a, (size_t)n, sizeof *a, cmp_addr);
    for (int i = 0; i < n; i++) order[i] = a[i].idx;
    free(a);
    return 0;
}

adamw_t *adamw_new(const adamw_config_t *cfg, int nparams, const int64_t *numel, float *const *params) {
    if (adamw_config_check(cfg)) return NULL;
    if (nparams < 0) { bl_fail("AdamW: negative parameter count"); return NULL; }
    adamw_t *o = calloc(1, sizeof *o);
    if (!o) { bl_fail("AdamW: out of memory"); return NULL; }
    o->cfg = *cfg;
    o->nparams = nparams;
    o->numel = calloc((size_t)(nparams ? nparams : 1), sizeof *o->numel);
    o->offset = calloc((size_t)(nparams ? nparams : 1), sizeof *o->offset);
    o->order = calloc((size_t)(nparams ? nparams : 1), sizeof *o->order);
    if (!o->numel || !o->offset || !o->order) goto oom;
    if (address_order(nparams, (const void *const *)params, o->order)) goto oom;
    for (int k = 0; k < nparams; k++) {
        int i = o->order[k];
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

adamw_t *adamw_new_external(const adamw_config_t *cfg, int nparams, const int64_t *numel) {
    if (adamw_config_check(cfg)) return NULL;
    adamw_t *o = calloc(1, sizeof *o);
    if (o) {
        o->numel = calloc((size_t)(nparams ? nparams : 1), sizeof *o->numel);
        o->offset = calloc((size_t)(nparams ? nparams : 1), sizeof *o->offset);
        o->order = calloc((size_t)(nparams ? nparams : 1), sizeof *o->order);
    }
    if (!o || !o->numel || !o->offset || !o->order) {
        adamw_free(o);
        bl_fail("AdamW: out of memory");
        return NULL;
    }
    o->cfg = *cfg;
    o->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        o->numel[i] = numel[i];
        o->order[i] = i;
        o->offset[i] = o->total;
        o->total += numel[i];
    }
    return o;
}

void adamw_free(adamw_t *o) {
    if (!o) return;
    free(o->state);
    free(o->numel);
    free(o->offset);
    free(o->order);
    free(o);
}

k_adamw_hparams_t adamw_hparams(const adamw_config_t *c, int64_t t) {
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
    hp.grad_scaled = 0;
    hp.grad_scale = 1.0f;
    return hp;
}

int adamw_step(adamw_t *o, float *const *params, const float *const *grads) {
    const bl_backend_t *be = bl_backend_cpu(); /* plain parameter lists live on the host */
    o->t++;
    k_adamw_hparams_t hp = adamw_hparams(&o->cfg, o->t);
    int k = 0;
    while (k < o->nparams) {
        /* extend the run while the next parameter, its gradient and its state follow in memory */
        int i = o->order[k], last = i, j = k;
        int64_t n = o->numel[i];
        while (j + 1 < o->nparams) {
            int nx = o->order[j + 1];
            if (params[nx] != params[last] + o->numel[last] || grads[nx] != grads[last] + o->numel[last] ||
                o->offset[nx] != o->offset[last] + o->numel[last])
                break;
            n += o->numel[nx];
            last = nx;
            j++;
        }
        if (n > 0)
            be->adamw_step(params[i], grads[i], o->m + o->offset[i], o->v + o->offset[i], (size_t)n, hp);
        k = j + 1;
    }
    return 0;
}

void adamw_set_state(adamw_t *o, int i, const float *m_in, const float *v_in) {
    for (int64_t e = 0; e < o->numel[i]; e++) {
        o->m[o->offset[i] + e] = m_in[e];
        o->v[o->offset[i] + e] = v_in[e];
    }
}

void adamw_get_state(const adamw_t *o, int i, float *m_out, float *v_out) {
    for (int64_t e = 0; e < o->numel[i]; e++) {
        m_out[e] = o->m[o->offset[i] + e];
        v_out[e] = o->v[o->offset[i] + e];
    }
}

double clip_grad_norm(float *const *grads, const int64_t *numel, int n, double max_norm) {
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    float **run_ptr = malloc((size_t)(n ? n : 1) * sizeof *run_ptr);
    int64_t *run_len = malloc((size_t)(n ? n : 1) * sizeof *run_len);
    if (!order || !run_ptr || !run_len || address_order(n, (const void *const *)grads, order)) {
        free(order);
        free(run_ptr);
        free(run_len);
        return bl_fail("clip_grad_norm: out of memory");
    }
    /* runs of gradients adjacent in memory (a model's one gradient allocation is a single run) */
    int nruns = 0;
    for (int k = 0; k < n;) {
        int last = order[k], j = k;
        int64_t len = numel[last];
        while (j + 1 < n && grads[order[j + 1]] == grads[last] + numel[last]) {
            last = order[++j];
            len += numel[last];
        }
        run_ptr[nruns] = grads[order[k]];
        run_len[nruns++] = len;
        k = j + 1;
    }
    const bl_backend_t *be = bl_backend_cpu(); /* plain parameter lists live on the host */
    double ss = 0.0;
    for (int r = 0; r < nruns; r++) {
        double s;
        be->sumsq_f32(&s, run_ptr[r], (size_t)run_len[r]);
        ss += s;
    }
    double norm = sqrt(ss);
    /* torch computes the coefficient on float32 tensors */
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef < 1.0f)
        for (int r = 0; r < nruns; r++) be->scale_f32(run_ptr[r], (size_t)run_len[r], coef);
    free(order);
    free(run_ptr);
    free(run_len);
    return norm;
}
