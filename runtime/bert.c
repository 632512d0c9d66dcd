/* bert.c: BertForSequenceClassification on a backend (kernels/backend.h): parameter layout, the
 * device allocations, weight initialisation, forward, backward, and the optimizer step and clipping
 * over the flat buffers. Checkpoints (HF names on disk, load, save) are in bert_io.c.
 * The shape follows llm.c's train_gpt2.c: one allocation per category, layer pairs, backward
 * accumulating into gradients. The host reads or writes device memory only through the backend's
 * copies (the batch in, the loss out, and whole categories when loading, saving or moving).
 * Legend: B batch, T tokens, C hidden, NH heads, I intermediate, NL layers, L labels, N = B*T. */
#include "bert.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "rng.h"

/* ------------------------------------------------------------------------------------------------
 * parameter layout */

/* Points the 21 fields of `p` into `base` at `off`. */
static void point_params(bert_params_t *p, float *base, const size_t *off) {
    float **pp = (float **)p;
    for (int i = 0; i < 21; i++) pp[i] = base + off[i];
}

/* Field offsets of bert_params_t in the parameter allocation (stacked by kind: wte, wpe, ...,
 * qkvw[NL], ...); returns the total. */
static size_t param_offsets(const bert_config_t *c, size_t off[21]) {
    size_t C = c->hidden_size, V = c->vocab_size, P = c->max_position_embeddings,
           TV = c->type_vocab_size, NL = c->num_hidden_layers, I = c->intermediate_size,
           L = c->num_labels;
    /* sizes of the fields of bert_params_t, in its order */
    size_t sizes[21] = {V * C,      P * C,      TV * C, C,          C,          NL * 3 * C * C,
                        NL * 3 * C, NL * C * C, NL * C, NL * C,     NL * C,     NL * I * C,
                        NL * I,     NL * C * I, NL * C, NL * C,     NL * C,     C * C,
                        C,          L * C,      L};
    size_t total = 0;
    for (int i = 0; i < 21; i++) {
        off[i] = total;
        total += sizes[i];
    }
    return total;
}

/* Allocates parameters (zero) and gradients (zero) on m->be and fills m->info in HF's
 * named_parameters() order. */
static int layout_params(bert_t *m) {
    const bert_config_t *c = &m->config;
    const bl_backend_t *be = m->be;
    size_t C = c->hidden_size, V = c->vocab_size, P = c->max_position_embeddings,
           TV = c->type_vocab_size, NL = c->num_hidden_layers, I = c->intermediate_size,
           L = c->num_labels;
    size_t off[21], total = param_offsets(c, off);
    m->num_parameters = total;
    m->params_memory = be->alloc(total * sizeof(float));
    m->grads_memory = be->alloc(total * sizeof(float));
    m->num_tensors = 5 + 16 * (int)NL + 4;
    m->info = calloc(m->num_tensors, sizeof *m->info);
    if (!m->params_memory || !m->grads_memory || !m->info) {
        const char *e = be->error();
        return bl_fail("out of memory allocating %zu parameters on %s%s%s", total, be->name,
                       e ? ": " : "", e ? e : "");
    }
    be->memzero(m->params_memory, total * sizeof(float));
    be->memzero(m->grads_memory, total * sizeof(float));
    m->wte_touched = calloc(V, 1); /* NULL only means zero_grad clears the whole [V,C] block */
    m->wte_live = calloc(V, 1);    /* NULL only means AdamW updates every row */
    point_params(&m->params, m->params_memory, off);
    point_params(&m->grads, m->grads_memory, off);

    int k = 0;
#define ADD(nm, o, d0, d1)                                                                         \
    do {                                                                                           \
        bert_param_info_t *in_ = &m->info[k++];                                                    \
        snprintf(in_->name, sizeof in_->name, "%s", nm);                                           \
        in_->offset = (o);                                                                         \
        in_->shape[0] = (int64_t)(d0);                                                             \
        in_->shape[1] = (int64_t)(d1);                                                             \
        in_->ndim = (d1) ? 2 : 1;                                                                  \
        if (!(d1)) in_->shape[1] = 0;                                                              \
        in_->numel = (size_t)(d0) * ((d1) ? (size_t)(d1) : 1);                                     \
    } while (0)
    ADD("bert.embeddings.word_embeddings.weight", off[0], V, C);
    ADD("bert.embeddings.position_embeddings.weight", off[1], P, C);
    ADD("bert.embeddings.token_type_embeddings.weight", off[2], TV, C);
    ADD("bert.embeddings.LayerNorm.weight", off[3], C, 0);
    ADD("bert.embeddings.LayerNorm.bias", off[4], C, 0);
    char nm[96];
    static const char *qkv[3] = {"query", "key", "value"};
    for (size_t l = 0; l < NL; l++) {
        for (int j = 0; j < 3; j++) {
            snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.self.%s.weight", l, qkv[j]);
            ADD(nm, off[5] + l * 3 * C * C + j * C * C, C, C);
            snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.self.%s.bias", l, qkv[j]);
            ADD(nm, off[6] + l * 3 * C + j * C, C, 0);
        }
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.output.dense.weight", l);
        ADD(nm, off[7] + l * C * C, C, C);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.output.dense.bias", l);
        ADD(nm, off[8] + l * C, C, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.output.LayerNorm.weight", l);
        ADD(nm, off[9] + l * C, C, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.attention.output.LayerNorm.bias", l);
        ADD(nm, off[10] + l * C, C, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.intermediate.dense.weight", l);
        ADD(nm, off[11] + l * I * C, I, C);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.intermediate.dense.bias", l);
        ADD(nm, off[12] + l * I, I, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.output.dense.weight", l);
        ADD(nm, off[13] + l * C * I, C, I);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.output.dense.bias", l);
        ADD(nm, off[14] + l * C, C, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.output.LayerNorm.weight", l);
        ADD(nm, off[15] + l * C, C, 0);
        snprintf(nm, sizeof nm, "bert.encoder.layer.%zu.output.LayerNorm.bias", l);
        ADD(nm, off[16] + l * C, C, 0);
    }
    ADD("bert.pooler.dense.weight", off[17], C, C);
    ADD("bert.pooler.dense.bias", off[18], C, 0);
    ADD("classifier.weight", off[19], L, C);
    ADD("classifier.bias", off[20], L, 0);
#undef ADD
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Fills host memory p with parameter tensor `in` initialised as transformers'
 * BertPreTrainedModel._init_weights does. */
static void init_values(const bert_t *m, const bert_param_info_t *in, float *p) {
    if (ends_with(in->name, "LayerNorm.weight")) {
        for (size_t i = 0; i < in->numel; i++) p[i] = 1.0f;
    } else if (ends_with(in->name, ".bias")) {
        memset(p, 0, in->numel * sizeof(float));
    } else {
        rng_t *r = rng_stream(RNG_STREAM_INIT);
        float sd = m->config.initializer_range;
        for (size_t i = 0; i < in->numel; i++) p[i] = sd * rng_normal(r);
    }
}

int bert_init_param(bert_t *m, int k) {
    const bert_param_info_t *in = &m->info[k];
    float *h = malloc((in->numel ? in->numel : 1) * sizeof(float));
    if (!h) return bl_fail("out of memory initialising '%s'", in->name);
    init_values(m, in, h);
    m->be->copy_to_device(m->params_memory + in->offset, h, in->numel * sizeof(float));
    free(h);
    return bert_check_device(m, "init");
}

int bert_init_weights(bert_t *m) {
    float *h = malloc(m->num_parameters * sizeof(float));
    if (!h) return bl_fail("out of memory initialising %zu parameters", m->num_parameters);
    for (int k = 0; k < m->num_tensors; k++) init_values(m, &m->info[k], h + m->info[k].offset);
    m->be->copy_to_device(m->params_memory, h, m->num_parameters * sizeof(float));
    free(h);
    return bert_check_device(m, "init");
}

int bert_check_device(const bert_t *m, const char *what) {
    const char *e = m->be ? m->be->error() : NULL;
    if (!e) return 0;
    return what ? bl_fail("%s: %s", what, e) : bl_fail("%s", e);
}

int bert_init(bert_t *m, bert_config_t *cfg, const bl_backend_t *be) {
    memset(m, 0, sizeof *m);
    m->config = *cfg;
    memset(cfg, 0, sizeof *cfg);
    m->be = be ? be : bl_backend_cpu();
    const bert_config_t *c = &m->config;
    if (c->hidden_size <= 0 || c->num_attention_heads <= 0 ||
        c->hidden_size % c->num_attention_heads != 0) {
        bl_fail("config: hidden_size %d is not a multiple of num_attention_heads %d", c->hidden_size,
                c->num_attention_heads);
        bert_free(m);
        return -1;
    }
    if (c->num_labels < 2) {
        bl_fail("config: num_labels %d is not supported (single-label classification needs >= 2)",
                c->num_labels);
        bert_free(m);
        return -1;
    }
    if (layout_params(m) != 0) {
        bert_free(m);
        return -1;
    }
    /* BertForSequenceClassification's dropout before the classifier (bert_config.c reads it) */
    m->classifier_dropout = c->classifier_dropout;
    return 0;
}

/* Frees the activations and the scratch (they are remade by the next forward). */
static void free_acts(bert_t *m) {
    if (m->be) {
        m->be->free(m->acts_memory);
        m->be->free(m->scratch_memory);
    }
    m->acts_memory = NULL;
    m->scratch_memory = NULL;
    m->acts_floats = 0;
    m->act_B = m->act_T = m->act_layers = 0;
    memset(&m->acts, 0, sizeof m->acts);
    memset(&m->scratch, 0, sizeof m->scratch);
}

void bert_free(bert_t *m) {
    if (!m) return;
    free_acts(m);
    if (m->be) {
        m->be->free(m->params_memory);
        m->be->free(m->grads_memory);
        m->be->free(m->moments_memory);
    }
    free(m->info);
    free(m->wte_touched);
    free(m->wte_live);
    free(m->stage);
    free(m->class_weights);
    free(m->seq);
    free(m->source_dir);
    bert_config_free(&m->config);
    memset(m, 0, sizeof *m);
}

/* Zeroes the gradients. The word-embedding gradient ([V,C], half of MiniLM's) is only ever written
 * by backward at the rows of the batch's token ids, so only the rows marked since the last zeroing
 * are cleared there (runs of adjacent rows in one call); everything else is one memzero. */
/* Scales the gradients now by a coefficient bert_clip_grad_norm_deferred left pending (what the
 * eager clipping would have stored), before anything but the optimizer's step reads or adds to
 * them: a backward that accumulates, another clipping, the all-reduce. */
void bert_flush_grad_scale(bert_t *m) {
    if (!m->grad_scale_pending) return;
    m->grad_scale_pending = 0;
    m->be->scale_f32(m->grads_memory, m->num_parameters, m->grad_scale);
}

/* The linear layers' weight gradients, qkvw, attprojw, fcw and fcprojw (bert_params_t's fields 5,
 * 7, 11 and 13, each a block over the layers), as [start, end) offsets into the gradient block */
static void linear_weight_spans(const bert_t *m, size_t span[4][2]) {
    static const int fields[4] = {5, 7, 11, 13};
    size_t off[21];
    param_offsets(&m->config, off);
    for (int i = 0; i < 4; i++) {
        span[i][0] = off[fields[i]];
        span[i][1] = off[fields[i] + 1];
    }
}

void bert_grads_ready(bert_t *m) {
    if (!m->dw_unset) return;
    m->dw_unset = 0;
    if (!m->grads_memory) return;
    size_t span[4][2];
    linear_weight_spans(m, span);
    for (int i = 0; i < 4; i++)
        m->be->memzero(m->grads_memory + span[i][0], (span[i][1] - span[i][0]) * sizeof(float));
}

/* Every gradient to zero. Where the backend can write a linear layer's weight gradient instead of
 * adding to it (linear_backward_to), those of the four big kinds are left as they are and marked
 * (dw_unset): the next backward writes them, and any other reader clears them first
 * (bert_grads_ready); the 44 MB clear of MiniLM's a step was 6.5% of a step at batch 3 on titles. */
void bert_zero_grad(bert_t *m) {
    m->grad_scale_pending = 0;
    if (!m->grads_memory) return;
    const bl_backend_t *be = m->be;
    size_t C = m->config.hidden_size, V = m->config.vocab_size, wte = V * C;
    if (be->linear_backward_to) {
        size_t span[4][2], from = wte;
        linear_weight_spans(m, span);
        for (int i = 0; i < 4; i++) { /* the others between and after them */
            be->memzero(m->grads_memory + from, (span[i][0] - from) * sizeof(float));
            from = span[i][1];
        }
        be->memzero(m->grads_memory + from, (m->num_parameters - from) * sizeof(float));
        m->dw_unset = 1;
    } else {
        be->memzero(m->grads_memory + wte, (m->num_parameters - wte) * sizeof(float));
    }
    if (!m->wte_touched) {
        be->memzero(m->grads_memory, wte * sizeof(float));
        return;
    }
    for (size_t v = 0; v < V; v++) {
        if (!m->wte_touched[v]) continue;
        size_t e = v;
        while (e < V && m->wte_touched[e]) m->wte_touched[e++] = 0;
        be->memzero(m->grads_memory + v * C, (e - v) * C * sizeof(float));
        v = e;
    }
}

void bert_set_training(bert_t *m, int training) { m->training = training ? 1 : 0; }

/* Copies `bytes` of device memory `src` on `from` to `dst` on `to` (through the host when neither
 * is the CPU). */
static int copy_across(const bl_backend_t *to, void *dst, const bl_backend_t *from, const void *src,
                       size_t bytes) {
    if (from->device == BL_DEVICE_CPU) {
        to->copy_to_device(dst, src, bytes);
    } else if (to->device == BL_DEVICE_CPU) {
        from->copy_to_host(dst, src, bytes);
    } else {
        void *h = malloc(bytes ? bytes : 1);
        if (!h) return bl_fail("out of memory moving %zu bytes", bytes);
        from->copy_to_host(h, src, bytes);
        to->copy_to_device(dst, h, bytes);
        free(h);
    }
    return 0;
}

int bert_to(bert_t *m, const bl_backend_t *be) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (be == m->be) return 0;
    bert_grads_ready(m); /* the gradients as they are, and another backend may not write them */
    size_t n = m->num_parameters * sizeof(float);
    float *p = be->alloc(n), *g = be->alloc(n);
    float *mo = m->moments_memory ? be->alloc(2 * n) : NULL;
    int rc = -1;
    if (!p || !g || (m->moments_memory && !mo)) {
        const char *e = be->error();
        bl_fail("to(%s): out of memory for %zu parameters%s%s", be->name, m->num_parameters,
                e ? ": " : "", e ? e : "");
        goto fail;
    }
    if (copy_across(be, p, m->be, m->params_memory, n) || copy_across(be, g, m->be, m->grads_memory, n) ||
        (mo && copy_across(be, mo, m->be, m->moments_memory, 2 * n)))
        goto fail;
    const char *e = be->error();
    if (!e) e = m->be->error();
    if (e) {
        bl_fail("to(%s): %s", be->name, e);
        goto fail;
    }
    free_acts(m);
    m->be->free(m->params_memory);
    m->be->free(m->grads_memory);
    m->be->free(m->moments_memory);
    m->be = be;
    m->params_memory = p;
    m->grads_memory = g;
    m->moments_memory = mo;
    /* another device's AdamW does not keep wte_live: from now on every row may have moments */
    if (m->wte_live) memset(m->wte_live, 1, (size_t)m->config.vocab_size);
    size_t off[21];
    param_offsets(&m->config, off);
    point_params(&m->params, p, off);
    point_params(&m->grads, g, off);
    return 0;
fail:
    be->free(p);
    be->free(g);
    be->free(mo);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * activations and scratch */

/* Number of floats of the activation allocation for (B,T) and `layers` layers (all of them, or 1
 * for a grad-free forward, which also needs none of backward's buffers, nor the attention
 * probabilities where the backend has attention_forward_nokeep); with `a` non-NULL, also points
 * a's fields into `base`. */
static size_t layout_acts(const bert_t *m, int B_, int T_, int layers, bert_acts_t *a, float *base) {
    size_t B = B_, T = T_, N = B * T, C = m->config.hidden_size, NH = m->config.num_attention_heads,
           I = m->config.intermediate_size, NL = (size_t)layers, L = m->config.num_labels;
    size_t att = B * NH * T * T, g = layers == m->config.num_hidden_layers; /* backward's */
    struct {
        void *field;
        size_t n;
    } f[] = {
        {a ? &a->mask_add : NULL, N},
        {a ? &a->emb : NULL, N * C},        {a ? &a->emb_ln : NULL, N * C},
        {a ? &a->emb_mean : NULL, N},       {a ? &a->emb_rstd : NULL, N},
        {a ? &a->x0 : NULL, N * C},         {a ? &a->qkv : NULL, NL * N * 3 * C},
        {a ? &a->att : NULL, g || !m->be->attention_forward_nokeep ? NL * att : 0},
        {a ? &a->atty : NULL, NL * N * C},
        {a ? &a->res1 : NULL, NL * N * C},
        {a ? &a->ln1 : NULL, NL * N * C},   {a ? &a->ln1_mean : NULL, NL * N},
        {a ? &a->ln1_rstd : NULL, NL * N},  {a ? &a->fch : NULL, NL * N * I},
        {a ? &a->fch_gelu : NULL, NL * N * I},
        {a ? &a->res2 : NULL, NL * N * C},  {a ? &a->ln2 : NULL, NL * N * C},
        {a ? &a->ln2_mean : NULL, NL * N},  {a ? &a->ln2_rstd : NULL, NL * N},
        {a ? &a->cls : NULL, B * C},        {a ? &a->last_att : NULL, B * C},
        {a ? &a->last_x : NULL, B * C},     {a ? &a->pool_pre : NULL, B * C},
        {a ? &a->pooled : NULL, B * C},     {a ? &a->pooled_d : NULL, B * C},
        {a ? &a->logits : NULL, B * L},     {a ? &a->probs : NULL, B * L},
        {a ? &a->d_res : NULL, g * N * C},
        {a ? &a->d_a : NULL, g * N * C},        {a ? &a->d_b : NULL, g * N * C},
        {a ? &a->d_qkv : NULL, g * N * 3 * C},  {a ? &a->d_i1 : NULL, g * N * I},
        {a ? &a->d_i2 : NULL, m->be->gelu_backward_set ? 0 : g * N * I}, /* (GELU's backward in place) */
        {a ? &a->d_att : NULL, g * att},
        {a ? &a->d_bc1 : NULL, g * B * C},      {a ? &a->d_bc2 : NULL, g * B * C},
        {a ? &a->d_logits : NULL, g * B * L},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (a) *(float **)f[i].field = base + total;
        total += (f[i].n + 1) & ~(size_t)1; /* keep every field 8-byte aligned */
    }
    return total;
}

/* int64 slots of the staged class weights (L floats, padded to 8 bytes) */
static size_t weight_slots(const bert_t *m) { return ((size_t)m->config.num_labels + 1) / 2; }

/* Bytes of the scratch for (B,T): sumsq (8), loss (4, padded to 8), then 3N + B int64 of staging
 * and the class weights (L floats, staged with the batch when the model has them). */
static size_t scratch_bytes(const bert_t *m, int B, int T) {
    return 16 + (3 * (size_t)B * T + (size_t)B + weight_slots(m)) * 8;
}

/* Points m->scratch into the scratch allocation for a batch of B rows and N tokens (fields packed
 * for that batch). */
static void layout_scratch(bert_t *m, int B, size_t N) {
    char *s = m->scratch_memory;
    m->scratch.sumsq = (double *)s;
    m->scratch.loss = (float *)(s + 8);
    m->scratch.ids = (int64_t *)(s + 16);
    m->scratch.types = m->scratch.ids + N;
    m->scratch.labels = m->scratch.types + N;
    m->scratch.mask = m->scratch.labels + B;
    m->scratch.class_weights = (float *)(m->scratch.mask + N);
}

/* Makes the activation and scratch allocations (and the host stage) hold (B,T), growing them only
 * when they are too small, T then to a multiple of ACT_T_STEP (at most max_position_embeddings):
 * under dynamic padding the longest batch so far grows a token at a time, and every regrowth
 * touched all of the new allocation's pages again (page faults were 2-3% of a batch-32 run of 20
 * steps). A batch touches only its own (B,T)'s pages, so the unused rest costs address space. */
#define ACT_T_STEP 32
static int ensure_acts(bert_t *m, int B, int T, int layers) {
    if (m->acts_memory && B <= m->act_B && T <= m->act_T && layers <= m->act_layers) return 0;
    int nb = B > m->act_B ? B : m->act_B, nt = T > m->act_T ? T : m->act_T;
    int nl = layers > m->act_layers ? layers : m->act_layers;
    nt = (nt + ACT_T_STEP - 1) / ACT_T_STEP * ACT_T_STEP;
    if (nt > m->config.max_position_embeddings && T <= m->config.max_position_embeddings)
        nt = m->config.max_position_embeddings; /* (validate() has refused T beyond it) */
    const bl_backend_t *be = m->be;
    size_t n = layout_acts(m, nb, nt, nl, NULL, NULL), sb = scratch_bytes(m, nb, nt);
    free_acts(m);
    free(m->stage);
    free(m->seq);
    m->acts_memory = be->alloc(n * sizeof(float));
    m->scratch_memory = be->alloc(sb);
    m->stage = malloc(sb);
    m->seq = malloc(3 * (size_t)nb * sizeof(size_t));
    if (!m->acts_memory || !m->scratch_memory || !m->stage || !m->seq) {
        const char *e = be->error();
        free_acts(m);
        free(m->stage);
        free(m->seq);
        m->stage = NULL;
        m->seq = NULL;
        return bl_fail("out of memory allocating activations for batch %d x %d (%zu MB) on %s%s%s", nb,
                       nt, n * sizeof(float) >> 20, be->name, e ? ": " : "", e ? e : "");
    }
    m->acts_floats = n;
    m->act_B = nb;
    m->act_T = nt;
    m->act_layers = nl;
    return 0;
}

/* The scratch alone (clipping before any forward). */
static int ensure_scratch(bert_t *m) {
    if (m->scratch_memory) return 0;
    return ensure_acts(m, 1, 1, 1);
}

/* Dropout offsets of one forward, in call order: embeddings, then per layer (attention probs,
 * attention output, feed-forward output), then the pooled output. Each starts on a Philox block.
 * The kernels index masks as if the batch were padded to P = max_position_embeddings tokens
 * (kernels/bert_kernels.h), so the spans, and every mask of a real token, do not depend on the
 * batch's T: dynamic padding trains exactly as fixed padding. */
static uint64_t drop_offsets(const bert_t *m, int B, uint64_t start, uint64_t *off) {
    uint64_t C = m->config.hidden_size, NH = m->config.num_attention_heads,
             P = m->config.max_position_embeddings;
    int NL = m->config.num_hidden_layers, k = 0;
    uint64_t o = start;
    /* data parallel: the spans are the global batch's, and this process's rows start at drop_first */
    uint64_t Bt = m->drop_total > B ? (uint64_t)m->drop_total : (uint64_t)B, f = (uint64_t)m->drop_first;
#define NEXT(n) (off[k++] = o + f * (uint64_t)(n), o += (Bt * (uint64_t)(n) + 3) & ~(uint64_t)3)
    NEXT(P * C);
    for (int l = 0; l < NL; l++) {
        NEXT(NH * P * P);
        NEXT(P * C);
        NEXT(P * C);
    }
    NEXT(C);
#undef NEXT
    return o;
}

/* ------------------------------------------------------------------------------------------------
 * forward / backward */

static int check_like(const tensor_t *t, const char *name, const tensor_t *ids) {
    char a[64], b[64];
    if (t->dtype != DT_I64 || !tensor_same_shape(t, ids))
        return bl_fail("%s must be int64 %s like input_ids, got %s %s", name,
                       tensor_shape_str(ids, b, sizeof b), dtype_name(t->dtype),
                       tensor_shape_str(t, a, sizeof a));
    return 0;
}

static int validate(const bert_t *m, const bert_inputs_t *in) {
    const bert_config_t *c = &m->config;
    const tensor_t *ids = in->input_ids;
    char a[64];
    if (!ids) return bl_fail("input_ids is required");
    const tensor_t *all[4] = {in->input_ids, in->attention_mask, in->token_type_ids, in->labels};
    static const char *nm[4] = {"input_ids", "attention_mask", "token_type_ids", "labels"};
    for (int i = 0; i < 4; i++)
        if (all[i] && all[i]->device != DEV_CPU)
            return bl_fail("%s is on %s: the model takes batches from the host (copy it with "
                           "t:to(\"cpu\"))", nm[i], device_name(all[i]->device));
    if (ids->dtype != DT_I64 || ids->ndim != 2 || ids->shape[0] < 1 || ids->shape[1] < 1)
        return bl_fail("input_ids must be int64 [B,T], got %s %s", dtype_name(ids->dtype),
                       tensor_shape_str(ids, a, sizeof a));
    int64_t B = ids->shape[0], T = ids->shape[1];
    if (T > c->max_position_embeddings)
        return bl_fail("input_ids has %lld tokens per sequence, more than max_position_embeddings "
                       "%d (truncate when tokenizing)",
                       (long long)T, c->max_position_embeddings);
    const int64_t *p = ids->data;
    for (int64_t i = 0; i < B * T; i++)
        if (p[i] < 0 || p[i] >= c->vocab_size)
            return bl_fail("input_ids: token id %lld at row %lld, column %lld is out of range for "
                           "vocab_size %d",
                           (long long)p[i], (long long)(i / T + 1), (long long)(i % T + 1),
                           c->vocab_size);
    if (in->attention_mask) {
        if (check_like(in->attention_mask, "attention_mask", ids) != 0) return -1;
        const int64_t *q = in->attention_mask->data;
        for (int64_t i = 0; i < B * T; i++)
            if (q[i] != 0 && q[i] != 1)
                return bl_fail("attention_mask: value %lld at row %lld, column %lld is not 0 or 1",
                               (long long)q[i], (long long)(i / T + 1), (long long)(i % T + 1));
    }
    if (in->token_type_ids) {
        if (check_like(in->token_type_ids, "token_type_ids", ids) != 0) return -1;
        const int64_t *q = in->token_type_ids->data;
        for (int64_t i = 0; i < B * T; i++)
            if (q[i] < 0 || q[i] >= c->type_vocab_size)
                return bl_fail("token_type_ids: type id %lld at row %lld, column %lld is out of "
                               "range for type_vocab_size %d",
                               (long long)q[i], (long long)(i / T + 1), (long long)(i % T + 1),
                               c->type_vocab_size);
    }
    if (in->labels) {
        const tensor_t *y = in->labels;
        if (y->dtype != DT_I64 || y->ndim != 1 || y->shape[0] != B)
            return bl_fail("labels must be int64 [%lld] (one per row of input_ids), got %s %s",
                           (long long)B, dtype_name(y->dtype), tensor_shape_str(y, a, sizeof a));
        const int64_t *q = y->data;
        for (int64_t i = 0; i < B; i++)
            if (q[i] < 0 || q[i] >= c->num_labels)
                return bl_fail("labels: label %lld at row %lld is out of range for num_labels %d",
                               (long long)q[i], (long long)(i + 1), c->num_labels);
    }
    if ((double)B * T * c->num_attention_heads * T > 2e9)
        return bl_fail("input_ids: batch %lld x %lld is too large", (long long)B, (long long)T);
    return 0;
}

/* The batch's width once the columns that are padding in every row (mask 0 to the end) are
 * dropped. Nothing of theirs reaches an output: attention gives a padded key weight exactly 0
 * (exp of -FLT_MAX), every other layer works per token, and the head reads the [CLS] rows; dropout
 * masks depend on a token's position, not on the width. So the model computes on the first T'
 * columns only, and the tutorial's padding to 256 costs what the batch's longest title costs.
 * A row that is all padding attends uniformly over every column (as in Hugging Face): then the
 * full width is kept. */
static int real_width(const bert_inputs_t *in, int B, int T) {
    if (!in->attention_mask) return T;
    const int64_t *mk = in->attention_mask->data;
    int w = 0;
    for (int b = 0; b < B; b++) {
        const int64_t *r = mk + (size_t)b * T;
        int t = T;
        while (t > 0 && r[t - 1] == 0) t--;
        if (t == 0) return T;
        if (t > w) w = t;
    }
    return w;
}

/* Packing: when every row's mask is ones then zeros (each row a prefix of real tokens), the real
 * tokens of the rows are laid one after another, token (b,t) at seq_start[b] + t, and every
 * per-token layer (linear, LayerNorm, GELU, residual) works on those only: a batch of titles of
 * unequal length costs its real tokens, not B x its longest (45% less work at batch 32 on the
 * tutorial's titles). The layers that need a row's structure (embedding positions, dropout masks,
 * attention, [CLS]) are called once per row, as batches of one: their masks are drawn at the same
 * (b,t) stream indices as in the padded layout, attention runs over the row's real keys only (the
 * padded keys had weight exactly 0), so the results are those of the padded batch (up to the order of
 * the sums in the weight-gradient GEMMs, which no longer see the padding's zeros). CPU only (a GPU
 * prefers one launch per layer). Returns the number of real tokens, or 0: no packing. */
static size_t pack_rows(const bert_t *m, const bert_inputs_t *in, int B, int T, int T_in) {
    if (!in->attention_mask || m->be->device != BL_DEVICE_CPU) return 0;
    const int64_t *mk = in->attention_mask->data;
    size_t n = 0, att = 0, NH = (size_t)m->config.num_attention_heads;
    size_t *start = m->seq, *len = m->seq + B, *aoff = m->seq + 2 * (size_t)B;
    for (int b = 0; b < B; b++) {
        const int64_t *r = mk + (size_t)b * T_in;
        int l = 0;
        while (l < T && r[l]) l++;
        for (int t = l; t < T; t++)
            if (r[t]) return 0; /* padding inside the row */
        if (l == 0) return 0;
        start[b] = n;
        len[b] = (size_t)l;
        aoff[b] = att;
        n += (size_t)l;
        att += NH * (size_t)l * (size_t)l;
    }
    return n < (size_t)B * T ? n : 0;
}

/* One call's share of the last forward's batch for the row-structured layers: the whole padded
 * batch (one call), or row s of the packed one (a batch of one row). */
typedef struct {
    size_t tok; /* first token (row of the [tokens, C] activations) */
    int B, T;   /* the call's batch and width */
    uint64_t b; /* the call's first row in the batch: dropout offsets advance by b x a row's span */
    size_t att; /* its offset in a layer's attention probabilities */
} seq_t;

static int seq_count(const bert_t *m) { return m->packed ? m->B : 1; }

static seq_t seq_at(const bert_t *m, int s) {
    if (!m->packed) return (seq_t){0, m->B, m->T, 0, 0};
    size_t B = (size_t)m->B;
    return (seq_t){m->seq[s], 1, (int)m->seq[B + s], (uint64_t)s, m->seq[2 * B + s]};
}

int bert_forward(bert_t *m, const bert_inputs_t *in, float *loss) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (validate(m, in) != 0) return -1;
    const bert_config_t *c = &m->config;
    const bl_backend_t *be = m->be;
    int B = (int)in->input_ids->shape[0], T_in = (int)in->input_ids->shape[1];
    int T = real_width(in, B, T_in);
    int C = c->hidden_size, NH = c->num_attention_heads, I = c->intermediate_size,
        NL = c->num_hidden_layers, L = c->num_labels, P = c->max_position_embeddings;
    /* kept: every layer's activations in its own slots (for backward); else all in one layer's */
    int kept = in->labels != NULL && !in->no_grad;
    if (ensure_acts(m, B, T, kept ? NL : 1) != 0) return -1;
    size_t np = pack_rows(m, in, B, T, T_in);
    size_t N = np ? np : (size_t)B * T; /* tokens of the per-token layers */
    bert_acts_t *a = &m->acts;
    layout_acts(m, B, T, m->act_layers, a, m->acts_memory);
    layout_scratch(m, B, N);
    const bert_scratch_t *sc = &m->scratch;
    bert_params_t *p = &m->params;

    m->forward_count++;
    m->B = B;
    m->T = T;
    m->packed = np > 0;
    m->ntok = N;
    m->has_labels = in->labels != NULL;
    m->kept = kept;
    m->weighted_forward = in->labels != NULL && m->class_weights != NULL;
    m->cls_last = !m->full_last && NL > 0;
    /* the last layer's attention on the [CLS] queries alone: the rest of that layer reads only
     * their outputs (the entries take a padded or a packed batch in one call) */
    m->cls_att = m->cls_last && be->attention_forward_cls && be->attention_backward_cls;
    int nseq = seq_count(m);
    /* the batch in (its first T columns): staged on the host as the scratch lays it out, then one
     * copy */
    int64_t *st = m->stage;
#define STAGE(dst, t)                                                                              \
    do {                                                                                           \
        for (int b_ = 0; b_ < B; b_++) {                                                           \
            seq_t q_ = m->packed ? seq_at(m, b_) : (seq_t){(size_t)b_ * T, 1, T, 0, 0};            \
            memcpy((dst) + q_.tok, (const int64_t *)(t)->data + (size_t)b_ * T_in,                 \
                   (size_t)q_.T * sizeof(int64_t));                                                \
        }                                                                                          \
    } while (0)
    STAGE(st, in->input_ids);
    if (in->token_type_ids) STAGE(st + N, in->token_type_ids);
    else memset(st + N, 0, N * sizeof(int64_t));
    if (in->labels) memcpy(st + 2 * N, in->labels->data, (size_t)B * sizeof(int64_t));
    else memset(st + 2 * N, 0, (size_t)B * sizeof(int64_t));
    size_t staged = 2 * N + (size_t)B;
    if (in->attention_mask && !m->packed) { /* packed rows have no padding left to mask */
        STAGE(st + staged, in->attention_mask);
        staged += N;
    }
    if (in->labels && m->class_weights) { /* after the mask's slot, in the same copy */
        memcpy(st + 2 * N + (size_t)B + N, m->class_weights, sizeof(float) * (size_t)L);
        staged = 3 * N + (size_t)B + weight_slots(m);
    }
#undef STAGE
    be->copy_to_device(sc->ids, st, staged * sizeof(int64_t));
    if (!m->packed) be->mask_to_additive(a->mask_add, in->attention_mask ? sc->mask : NULL, N);

    /* dropout: masks drawn from (global seed, DROPOUT stream, running offset); the offset advances
     * by spans that depend on B only (drop_offsets) */
    m->p_hidden = m->training ? c->hidden_dropout_prob : 0.0f;
    m->p_attn = m->training ? c->attention_probs_dropout_prob : 0.0f;
    m->p_cls = m->training ? m->classifier_dropout : 0.0f;
    uint64_t off[3 * NL + 2];
    m->drop_seed = rng_global_seed();
    rng_t *ds = rng_stream(RNG_STREAM_DROPOUT);
    m->drop_offset = ds->offset;
    if (in->batch_total < 0 || in->batch_first < 0 || (in->batch_total > 0 && in->batch_first + B > in->batch_total))
        return bl_fail("forward: rows %d..%d of a global batch of %d (batch_first, batch_total) do not fit",
                       in->batch_first, in->batch_first + B - 1, in->batch_total);
    m->drop_first = in->batch_total > 0 ? in->batch_first : 0;
    m->drop_total = in->batch_total > 0 ? in->batch_total : B;
    uint64_t end = drop_offsets(m, B, m->drop_offset, off);
    if (m->training) ds->offset = end;
    float ph = m->p_hidden, pa = m->p_attn;
    uint64_t seed = m->drop_seed;

    /* the row-structured layers: once for the padded batch, once per row for a packed one */
#define EACH_SEQ for (int s_ = 0; s_ < nseq; s_++) for (seq_t q = seq_at(m, s_), *once_ = &q; once_; once_ = NULL)
    /* a packed batch's rows in one call each where the backend can */
    int rows_calls = m->packed && be->attention_forward_rows && be->dropout_forward_rows;
#define DROP_HIDDEN(out, inp, o)                                                                   \
    do {                                                                                           \
        if (rows_calls) be->dropout_forward_rows((out), (inp), m->seq, B, C, P, ph, seed, (o));   \
        else                                                                                       \
            EACH_SEQ be->dropout_forward((out) + q.tok * C, (inp) + q.tok * C, q.B, q.T, C, P, ph,  \
                                         seed, (o) + q.b * P * C);                                 \
    } while (0)
    EACH_SEQ be->embeddings_forward(a->emb + q.tok * C, sc->ids + q.tok, sc->types + q.tok, p->wte,
                                    p->wpe, p->wtt, q.B, q.T, C);
    be->layernorm_forward(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb, p->emb_lnw, p->emb_lnb, (int)N,
                        C, c->layer_norm_eps);
    DROP_HIDDEN(a->x0, a->emb_ln, off[0]);
    const float *x = a->x0;
    for (int l = 0; l < NL; l++) {
        size_t nc = N * C, ni = N * I, att = (size_t)B * NH * T * T;
        size_t cc = (size_t)C * C, ic = (size_t)I * C;
        /* one layer's slots for all (!kept): x, the last layer's ln2, is last read by the first
         * residual, before this layer's layernorm writes ln2 */
        size_t k = kept ? (size_t)l : 0; /* the layer's slots */
        float *qkv = a->qkv + k * 3 * nc, *atty = a->atty + k * nc;
        float *res1 = a->res1 + k * nc, *ln1 = a->ln1 + k * nc, *fch = a->fch + k * ni;
        float *fchg = a->fch_gelu + k * ni, *res2 = a->res2 + k * nc;
        float *ln2 = a->ln2 + k * nc;
        int cls_att = l == NL - 1 && m->cls_att;
        /* The last layer past its attention (below) reads x at its [CLS] rows only: gathered here,
         * where a forward that keeps nothing, its attention on the [CLS] queries, also computes Q for
         * those alone (K and V for every token; ~1.4% of an evaluation's multiply-adds at 32 x 256) */
        int last = l == NL - 1 && m->cls_last;
        if (last) EACH_SEQ be->cls_forward(a->last_x + q.b * C, x + q.tok * C, q.B, q.T, C);
        int q_cls = cls_att && !kept && be->qkv_forward_cls;
        if (!q_cls || !be->qkv_forward_cls(qkv, a->last_att, x, a->last_x, m->packed ? m->seq : NULL, B, T,
                                           p->qkvw + l * 3 * cc, p->qkvb + l * 3 * C, (int)N, C))
            be->linear_forward(qkv, x, p->qkvw + l * 3 * cc, p->qkvb + l * 3 * C, (int)N, C, 3 * C);
        /* the one-call entries' att: NULL, no slot (as _nokeep), where nothing differentiates it */
        float *att_slot = kept || !be->attention_forward_nokeep ? a->att + k * att : NULL;
        if (cls_att) /* the [CLS] rows' outputs straight into last_att (probabilities: B x NH x T at most) */
            be->attention_forward_cls(a->last_att, att_slot, qkv, m->packed ? NULL : a->mask_add,
                                      m->packed ? m->seq : NULL, B, T, C, NH, P, pa, seed, off[1 + 3 * l]);
        else if (rows_calls)
            be->attention_forward_rows(atty, att_slot, qkv, m->seq, B, C, NH, P, pa, seed, off[1 + 3 * l]);
        else if (!kept && be->attention_forward_nokeep) /* no att slot: nothing differentiates it */
            EACH_SEQ be->attention_forward_nokeep(atty + q.tok * C, qkv + q.tok * 3 * C,
                                                  m->packed ? NULL : a->mask_add, q.B, q.T, C, NH, P,
                                                  pa, seed, off[1 + 3 * l] + q.b * NH * P * P);
        else
            EACH_SEQ be->attention_forward(atty + q.tok * C, a->att + k * att + q.att,
                                           qkv + q.tok * 3 * C, m->packed ? NULL : a->mask_add, q.B,
                                           q.T, C, NH, P, pa, seed, off[1 + 3 * l] + q.b * NH * P * P);
        /* The last layer past its attention: only the [CLS] rows reach the classifier, so (unless
         * full_last) its dense, LayerNorms and feed-forward run on those B rows, gathered from the
         * attention output and the layer input (~12% of a MiniLM step's FLOPs on titles). Their
         * dropout masks are the padded layout's at t = 0: B rows of width 1 spaced P x C apart in
         * the stream. Everything else is per row, so the rows' values are the same. */
        size_t R = last ? (size_t)B : N, rc = R * C; /* rows past the attention */
        const float *ain = atty, *xin = x;
        if (last) { /* (last_x gathered above) */
            if (!cls_att) EACH_SEQ be->cls_forward(a->last_att + q.b * C, atty + q.tok * C, q.B, q.T, C);
            ain = a->last_att;
            xin = a->last_x;
        }
#define DROP_PAST(t, o)                                                                            \
    do {                                                                                           \
        if (last) be->dropout_forward((t), (t), B, 1, C, P, ph, seed, (o));                        \
        else DROP_HIDDEN(t, t, o);                                                                 \
    } while (0)
        /* dense, dropout and residual in place in res1: backward needs only the sum. RES_LN: the
         * residual add and the layer norm of its sum, in one pass where the backend can */
#define RES_LN(res, b, out, mean, rstd, w, bias)                                                   \
    do {                                                                                           \
        if (be->residual_layernorm_forward)                                                        \
            be->residual_layernorm_forward((res), (out), (mean), (rstd), (res), (b), (w), (bias), (int)R, C, \
                                           c->layer_norm_eps);                                     \
        else {                                                                                     \
            be->residual_forward((res), (res), (b), rc);                                           \
            be->layernorm_forward((out), (mean), (rstd), (res), (w), (bias), (int)R, C, c->layer_norm_eps); \
        }                                                                                          \
    } while (0)
        be->linear_forward(res1, ain, p->attprojw + l * cc, p->attprojb + l * C, (int)R, C, C);
        DROP_PAST(res1, off[2 + 3 * l]);
        RES_LN(res1, xin, ln1, a->ln1_mean + k * N, a->ln1_rstd + k * N, p->ln1w + l * C, p->ln1b + l * C);
        if (kept || !be->ffn_forward_nokeep ||
            !be->ffn_forward_nokeep(res2, ln1, p->fcw + l * ic, p->fcb + l * I, p->fcprojw + l * ic,
                                    p->fcprojb + l * C, (int)R, C, I)) {
            be->linear_forward(fch, ln1, p->fcw + l * ic, p->fcb + l * I, (int)R, C, I);
            be->gelu_forward(fchg, fch, R * I);
            be->linear_forward(res2, fchg, p->fcprojw + l * ic, p->fcprojb + l * C, (int)R, I, C);
        }
        DROP_PAST(res2, off[3 + 3 * l]);
#undef DROP_PAST
        float *out = last ? a->cls : ln2;
        RES_LN(res2, ln1, out, a->ln2_mean + k * N, a->ln2_rstd + k * N, p->ln2w + l * C, p->ln2b + l * C);
#undef RES_LN
        x = out;
    }
    if (!m->cls_last) EACH_SEQ be->cls_forward(a->cls + q.b * C, x + q.tok * C, q.B, q.T, C);
#undef DROP_HIDDEN
    be->linear_forward(a->pool_pre, a->cls, p->poolw, p->poolb, B, C, C);
    be->tanh_forward(a->pooled, a->pool_pre, (size_t)B * C);
    be->dropout_forward(a->pooled_d, a->pooled, B, 1, C, 1, m->p_cls, seed, off[1 + 3 * NL]);
    be->linear_forward(a->logits, a->pooled_d, p->clsw, p->clsb, B, C, L);
    if (in->labels) {
        be->crossentropy_forward(sc->loss, a->probs, a->logits, sc->labels,
                                 m->class_weights ? sc->class_weights : NULL, B, L);
        if (loss) be->copy_to_host(loss, sc->loss, sizeof(float)); /* the loss out */
    }
    return bert_check_device(m, "forward");
}

int bert_backward(bert_t *m, float dloss) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (!m->forward_count || !m->acts_memory) return bl_fail("backward: no forward has run");
    if (!m->has_labels) return bl_fail("backward: the last forward had no labels, so no loss");
    if (!m->kept)
        return bl_fail("backward: the last forward ran with grad = false (evaluation), which keeps no "
                       "activations to differentiate; run the forward without grad = false");
    bert_flush_grad_scale(m); /* accumulating onto clipped gradients, as after an eager clipping */
    const bert_config_t *c = &m->config;
    const bl_backend_t *be = m->be;
    int B = m->B, T = m->T, nseq = seq_count(m);
    int C = c->hidden_size, NH = c->num_attention_heads, I = c->intermediate_size,
        NL = c->num_hidden_layers, L = c->num_labels, P = c->max_position_embeddings;
    size_t N = m->ntok, nc = N * C, ni = N * I, bc = (size_t)B * C;
    size_t cc = (size_t)C * C, ic = (size_t)I * C, att = (size_t)B * NH * T * T;
    bert_acts_t *a = &m->acts;
    const bert_scratch_t *sc = &m->scratch;
    const bert_params_t *p = &m->params;
    bert_params_t *g = &m->grads;
    uint64_t off[3 * NL + 2];
    drop_offsets(m, B, m->drop_offset, off);
    float ph = m->p_hidden, pa = m->p_attn;
    uint64_t seed = m->drop_seed;
    /* the kernels accumulate (+=), so each scratch gradient is zeroed on the device before the
     * kernel that first writes it, unless the backend has a writing variant of that kernel (every
     * N x C gradient of the layers and the embeddings: 16 N x C floats a layer at MiniLM's I = 4C;
     * 32 x 128 tokens, one thread, the Xeon of docs/speed.md's fifteenth round: memset 2.5% -> 1.0%
     * of a training step's samples, the rest OpenBLAS's own clearing for dx past 256 tokens; 24 MB
     * less resident; the same bits) */
#define ZERO(ptr, n) be->memzero((ptr), (n) * sizeof(float))

    /* head: loss -> logits -> classifier -> dropout -> tanh -> pooler -> [CLS] */
    ZERO(a->d_logits, (size_t)B * L);
    be->crossentropy_backward(a->d_logits, a->probs, sc->labels,
                              m->weighted_forward ? sc->class_weights : NULL, B, L, dloss);
    ZERO(a->d_bc1, bc);
    be->linear_backward(a->d_bc1, g->clsw, g->clsb, a->d_logits, a->pooled_d, p->clsw, B, C, L);
    ZERO(a->d_bc2, bc);
    be->dropout_backward(a->d_bc2, a->d_bc1, B, 1, C, 1, m->p_cls, seed, off[1 + 3 * NL]);
    ZERO(a->d_bc1, bc);
    be->tanh_backward(a->d_bc1, a->pooled, a->d_bc2, bc);
    ZERO(a->d_bc2, bc);
    be->linear_backward(a->d_bc2, g->poolw, g->poolb, a->d_bc1, a->cls, p->poolw, B, C, C);
    float *dres = a->d_res, *da = a->d_a, *db = a->d_b;
    if (!m->cls_last) { /* else the last layer starts from d_bc2, its [CLS] rows' */
        ZERO(dres, nc);
        EACH_SEQ be->cls_backward(dres + q.tok * C, a->d_bc2 + q.b * C, q.B, q.T, C);
    }
    int rows_calls = m->packed && be->attention_backward_rows && be->dropout_backward_rows;
    /* the hidden dropouts' and the layer norms' backwards write their dinp (n floats), or clear it
     * and add where the backend has no writing variant */
    int drop_set = rows_calls ? be->dropout_backward_rows_set != NULL : be->dropout_backward_set != NULL;
#define DROP_BACK(dinp, dout, o, n)                                                                \
    do {                                                                                           \
        if (!drop_set) ZERO((dinp), (n));                                                          \
        if (rows_calls)                                                                            \
            (drop_set ? be->dropout_backward_rows_set : be->dropout_backward_rows)(                \
                (dinp), (dout), m->seq, B, C, P, ph, seed, (o));                                   \
        else                                                                                       \
            EACH_SEQ (drop_set ? be->dropout_backward_set : be->dropout_backward)(                 \
                (dinp) + q.tok * C, (dout) + q.tok * C, q.B, q.T, C, P, ph, seed, (o) + q.b * P * C); \
    } while (0)
#define LN_BACK(dinp, n, ...)                                                                      \
    do {                                                                                           \
        if (be->layernorm_backward_set) be->layernorm_backward_set((dinp), __VA_ARGS__);           \
        else {                                                                                     \
            ZERO((dinp), (n));                                                                     \
            be->layernorm_backward((dinp), __VA_ARGS__);                                           \
        }                                                                                          \
    } while (0)

    /* the four linear weights' gradients: written, where bert_zero_grad left them (every layer
     * writes all four below), else added to. LINEAR_W(dinp_set, dinp, n, ...): dinp (n floats)
     * written where dinp_set (cleared first without linear_backward_to), else added to */
    int dw_set = m->dw_unset;
    m->dw_unset = 0;
#define LINEAR_W(dinp_set, dinp, n, dw, db, dout, inp, w, N_, C_, OC_)                                \
    do {                                                                                           \
        if (be->linear_backward_to)                                                                \
            be->linear_backward_to((dinp), (dw), (db), (dout), (inp), (w), (N_), (C_), (OC_),       \
                                   (dinp_set), dw_set);                                            \
        else {                                                                                     \
            if (dinp_set) ZERO((dinp), (n));                                                       \
            be->linear_backward((dinp), (dw), (db), (dout), (inp), (w), (N_), (C_), (OC_));        \
        }                                                                                          \
    } while (0)
    /* layers, last to first; dres holds the gradient of the layer's output (the last layer's
     * [CLS] rows: d_bc2, unless full_last) */
    for (int l = NL - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->ln2 + (l - 1) * nc;
        const float *qkv = a->qkv + l * 3 * nc, *atty = a->atty + l * nc;
        const float *res1 = a->res1 + l * nc, *ln1 = a->ln1 + l * nc, *fch = a->fch + l * ni;
        const float *fchg = a->fch_gelu + l * ni, *res2 = a->res2 + l * nc;
        int last = l == NL - 1 && m->cls_last; /* past the attention on the B [CLS] rows */
        size_t R = last ? (size_t)B : N, rc = R * C, ri = R * I;
#define DROP_PAST(dinp, dout, o)                                                                   \
    do {                                                                                           \
        if (!last) DROP_BACK(dinp, dout, o, rc);                                                   \
        else if (be->dropout_backward_set) be->dropout_backward_set((dinp), (dout), B, 1, C, P, ph, seed, (o)); \
        else {                                                                                     \
            ZERO((dinp), rc);                                                                      \
            be->dropout_backward((dinp), (dout), B, 1, C, P, ph, seed, (o));                       \
        }                                                                                          \
    } while (0)
        /* d res2 */
        LN_BACK(da, rc, g->ln2w + l * C, g->ln2b + l * C, last ? a->d_bc2 : dres, res2, a->ln2_mean + l * N,
                a->ln2_rstd + l * N, p->ln2w + l * C, (int)R, C);
        DROP_PAST(db, da, off[3 + 3 * l]); /* d fcproj (before dropout) */
        LINEAR_W(1, a->d_i1, ri, g->fcprojw + l * ic, g->fcprojb + l * C, db, fchg, p->fcprojw + l * ic,
                 (int)R, I, C);
        float *d_fch = a->d_i1; /* through GELU: in place where the backend can */
        if (be->gelu_backward_set) be->gelu_backward_set(d_fch, fch, a->d_i1, ri);
        else {
            d_fch = a->d_i2;
            ZERO(d_fch, ri);
            be->gelu_backward(d_fch, fch, a->d_i1, ri);
        }
        /* d ln1 = residual (already in da) + through the intermediate dense */
        LINEAR_W(0, da, rc, g->fcw + l * ic, g->fcb + l * I, d_fch, ln1, p->fcw + l * ic, (int)R, C, I);
        /* d res1 */
        LN_BACK(db, rc, g->ln1w + l * C, g->ln1b + l * C, da, res1, a->ln1_mean + l * N, a->ln1_rstd + l * N,
                p->ln1w + l * C, (int)R, C);
        DROP_PAST(da, db, off[2 + 3 * l]); /* d attproj (before dropout) */
#undef DROP_PAST
        if (!last) { /* d atty */
            LINEAR_W(1, dres, nc, g->attprojw + l * cc, g->attprojb + l * C, da, atty, p->attprojw + l * cc,
                     (int)N, C, C);
        } else {
            /* d atty at the [CLS] rows (in d_qkv, not yet in use; in d_bc1, free since the head, for
             * the attention on [CLS] alone, which reads it as it is), then both gradients spread
             * over the tokens' rows, zero elsewhere: d atty into dres (unless the attention was on
             * [CLS] alone), d x's residual part (db) into da */
            float *d_cls = m->cls_att ? a->d_bc1 : a->d_qkv;
            LINEAR_W(1, d_cls, rc, g->attprojw + l * cc, g->attprojb + l * C, da, a->last_att,
                     p->attprojw + l * cc, B, C, C);
            if (!m->cls_att) {
                ZERO(dres, nc);
                EACH_SEQ be->cls_backward(dres + q.tok * C, a->d_qkv + q.b * C, q.B, q.T, C);
            }
            ZERO(da, nc);
            EACH_SEQ be->cls_backward(da + q.tok * C, db + q.b * C, q.B, q.T, C);
            float *t = da;
            da = db;
            db = t;
        }
        /* d_qkv: written by the attention's backward where the backend can (every token's); the
         * attention on [CLS] alone writes it from the [CLS] rows' gradient in d_bc1 */
        int att_set = rows_calls ? be->attention_backward_rows_set != NULL : be->attention_backward_set != NULL;
        if (last && m->cls_att)
            be->attention_backward_cls(a->d_qkv, a->d_bc1, qkv, a->att + l * att, m->packed ? m->seq : NULL, B, T, C,
                                       NH, P, pa, seed, off[1 + 3 * l]);
        else {
            if (!att_set) ZERO(a->d_qkv, 3 * nc);
            if (rows_calls)
                (att_set ? be->attention_backward_rows_set : be->attention_backward_rows)(
                    a->d_qkv, a->d_att, dres, qkv, a->att + l * att, m->seq, B, C, NH, P, pa, seed, off[1 + 3 * l]);
            else
                EACH_SEQ (att_set ? be->attention_backward_set : be->attention_backward)(
                    a->d_qkv + q.tok * 3 * C, a->d_att, dres + q.tok * C, qkv + q.tok * 3 * C,
                    a->att + l * att + q.att, q.B, q.T, C, NH, P, pa, seed, off[1 + 3 * l] + q.b * NH * P * P);
        }
        /* d x = residual (db) + through the qkv projection */
        LINEAR_W(0, db, nc, g->qkvw + l * 3 * cc, g->qkvb + l * 3 * C, a->d_qkv, x, p->qkvw + l * 3 * cc,
                 (int)N, C, 3 * C);
        float *t = dres;
        dres = db;
        db = t;
    }

    /* embeddings: dropout -> LayerNorm -> lookups */
    DROP_BACK(da, dres, off[0], nc);
#undef DROP_BACK
    LN_BACK(db, nc, g->emb_lnw, g->emb_lnb, da, a->emb, a->emb_mean, a->emb_rstd, p->emb_lnw, (int)N, C);
#undef LN_BACK
    EACH_SEQ be->embeddings_backward(g->wte, g->wpe, g->wtt, db + q.tok * C, sc->ids + q.tok,
                                     sc->types + q.tok, q.B, q.T, C);
#undef EACH_SEQ
#undef LINEAR_W
    if (m->wte_touched) /* from the host stage's ids: no copy back */
        for (size_t i = 0; i < N; i++) m->wte_touched[m->stage[i]] = 1;
#undef ZERO
    return bert_check_device(m, "backward");
}

/* ------------------------------------------------------------------------------------------------
 * optimizer over the flat buffers */

int bert_moments_reset(bert_t *m) {
    if (!m->params_memory) return bl_fail("the model was freed");
    size_t bytes = 2 * m->num_parameters * sizeof(float);
    if (!m->moments_memory) {
        m->moments_memory = m->be->alloc(bytes);
        if (!m->moments_memory) {
            const char *e = m->be->error();
            return bl_fail("AdamW: out of memory for the optimizer state (%zu MB) on %s%s%s",
                           bytes >> 20, m->be->name, e ? ": " : "", e ? e : "");
        }
    }
    m->be->memzero(m->moments_memory, bytes);
    if (m->wte_live) memset(m->wte_live, 0, (size_t)m->config.vocab_size);
    return bert_check_device(m, "AdamW");
}

int bert_adamw_step(bert_t *m, const adamw_config_t *cfg, int64_t t) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (!m->moments_memory && bert_moments_reset(m) != 0) return -1;
    bert_grads_ready(m); /* a step right after zero_grad reads zeros */
    size_t n = m->num_parameters;
    float *mm = m->moments_memory, *vv = mm + n;
    k_adamw_hparams_t hp = adamw_hparams(cfg, t);
    if (m->grad_scale_pending) { /* only ever set on the CPU backend */
        hp.grad_scaled = 1;
        hp.grad_scale = m->grad_scale;
        m->grad_scale_pending = 0;
    }
    /* the word embeddings come first in the layout (param_offsets), so their rows are rows 0..V-1 */
    if (m->be->adamw_step_rows && m->wte_live)
        m->be->adamw_step_rows(m->params_memory, m->grads_memory, mm, vv, n, hp,
                               m->wte_live, m->wte_touched, (size_t)m->config.vocab_size,
                               (size_t)m->config.hidden_size);
    else
        m->be->adamw_step(m->params_memory, m->grads_memory, mm, vv, n, hp);
    return bert_check_device(m, "AdamW:step");
}

int bert_moments_get(const bert_t *m, int k, float *m_out, float *v_out) {
    const bert_param_info_t *in = &m->info[k];
    size_t bytes = in->numel * sizeof(float);
    if (!m->moments_memory) {
        memset(m_out, 0, bytes);
        memset(v_out, 0, bytes);
        return 0;
    }
    m->be->copy_to_host(m_out, m->moments_memory + in->offset, bytes);
    m->be->copy_to_host(v_out, m->moments_memory + m->num_parameters + in->offset, bytes);
    return bert_check_device(m, "state_dict");
}

int bert_moments_set(bert_t *m, int k, const float *m_in, const float *v_in) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (k < 0 || k >= m->num_tensors) return bl_fail("load_state_dict: no parameter tensor %d", k);
    if (!m->moments_memory && bert_moments_reset(m) != 0) return -1;
    const bert_param_info_t *in = &m->info[k];
    size_t bytes = in->numel * sizeof(float);
    m->be->copy_to_device(m->moments_memory + in->offset, m_in, bytes);
    m->be->copy_to_device(m->moments_memory + m->num_parameters + in->offset, v_in, bytes);
    if (m->wte_live && in->offset == 0) /* the word embeddings: any row may now have moments */
        memset(m->wte_live, 1, (size_t)m->config.vocab_size);
    return bert_check_device(m, "load_state_dict");
}

int bert_params_sumsq(bert_t *m, double *out) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (ensure_scratch(m) != 0) return -1;
    double *sumsq = (double *)m->scratch_memory;
    m->be->sumsq_f32(sumsq, m->params_memory, m->num_parameters);
    m->be->copy_to_host(out, sumsq, sizeof *out);
    return bert_check_device(m, "params_sumsq");
}

static int clip_model_grads(bert_t *m, double max_norm, int defer, double *norm_out) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (ensure_scratch(m) != 0) return -1;
    bert_grads_ready(m);
    bert_flush_grad_scale(m); /* clipping twice: the second sees the first's result, as eagerly */
    const bl_backend_t *be = m->be;
    double *sumsq = (double *)m->scratch_memory; /* first in every scratch layout */
    if (m->wte_touched && be->sumsq_rows_f32) /* the same sum without reading the zero rows */
        be->sumsq_rows_f32(sumsq, m->grads_memory, m->num_parameters, m->wte_touched,
                           (size_t)m->config.vocab_size, (size_t)m->config.hidden_size);
    else
        be->sumsq_f32(sumsq, m->grads_memory, m->num_parameters);
    if (defer && be->device == BL_DEVICE_CPU) {
        /* the coefficient exactly as the CPU's clip_scale_f32 forms it (a NaN norm scales nothing) */
        float coef = (float)max_norm / ((float)sqrt(sumsq[0]) + 1e-6f);
        if (coef < 1.0f) {
            m->grad_scale_pending = 1;
            m->grad_scale = coef;
        }
    } else if (!m->wte_touched) {
        be->clip_scale_f32(m->grads_memory, m->num_parameters, sumsq, max_norm);
    } else {
        /* the word-embedding rows not written since zero_grad hold zeros (bert_zero_grad), which
         * scaling leaves as they are (a NaN norm scales nothing): only the written rows, in runs,
         * and everything after the embeddings in one call */
        size_t C = m->config.hidden_size, V = m->config.vocab_size, wte = V * C;
        be->clip_scale_f32(m->grads_memory + wte, m->num_parameters - wte, sumsq, max_norm);
        for (size_t v = 0; v < V; v++) {
            if (!m->wte_touched[v]) continue;
            size_t e = v;
            while (e < V && m->wte_touched[e]) e++;
            be->clip_scale_f32(m->grads_memory + v * C, (e - v) * C, sumsq, max_norm);
            v = e;
        }
    }
    if (norm_out) {
        double ss = 0;
        be->copy_to_host(&ss, sumsq, sizeof ss);
        *norm_out = sqrt(ss);
    }
    return bert_check_device(m, "clip_grad_norm");
}

int bert_clip_grad_norm(bert_t *m, double max_norm, double *norm_out) {
    return clip_model_grads(m, max_norm, 0, norm_out);
}

int bert_clip_grad_norm_deferred(bert_t *m, double max_norm, double *norm_out) {
    return clip_model_grads(m, max_norm, 1, norm_out);
}

/* ---- class weights of the loss --------------------------------------------------------------- */

int bert_set_class_weights(bert_t *m, const float *w, int n) {
    if (!m->params_memory) return bl_fail("the model was freed");
    int L = m->config.num_labels;
    if (!w) {
        free(m->class_weights);
        m->class_weights = NULL;
        return 0;
    }
    if (n != L) return bl_fail("class_weights has %d entries, the model has %d labels", n, L);
    int positive = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(w[i]) || w[i] < 0)
            return bl_fail("class_weights: weight %d (label %d) is %g; weights must be finite and >= 0",
                           i + 1, i, (double)w[i]);
        positive |= w[i] > 0;
    }
    if (!positive) return bl_fail("class_weights: every weight is 0 (the loss would be 0/0)");
    float *c = m->class_weights ? m->class_weights : malloc(sizeof(float) * (size_t)L);
    if (!c) return bl_fail("out of memory");
    memcpy(c, w, sizeof(float) * (size_t)L);
    m->class_weights = c;
    return 0;
}
