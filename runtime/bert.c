/* bert.c: BertForSequenceClassification on the CPU kernels (kernels/bert_kernels.h): parameter
 * layout and HF names, checkpoint load/save, forward, backward. The shape follows llm.c's
 * train_gpt2.c: one allocation per category, layer pairs, backward accumulating into gradients.
 * Legend: B batch, T tokens, C hidden, NH heads, I intermediate, NL layers, L labels, N = B*T. */
#include "bert.h"
#include <float.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../kernels/bert_kernels.h"
#include "error.h"
#include "fileio.h"
#include "rng.h"
#include "safetensors.h"

/* ------------------------------------------------------------------------------------------------
 * parameter layout */

/* Fills m->info in HF's named_parameters() order and points m->params / m->grads into the two
 * allocations. The allocation itself is stacked by kind (wte, wpe, ..., qkvw[NL], ...). */
static int layout_params(bert_t *m) {
    const bert_config_t *c = &m->config;
    size_t C = c->hidden_size, V = c->vocab_size, P = c->max_position_embeddings,
           TV = c->type_vocab_size, NL = c->num_hidden_layers, I = c->intermediate_size,
           L = c->num_labels;
    /* sizes of the fields of bert_params_t, in its order */
    size_t sizes[21] = {V * C,      P * C,      TV * C, C,          C,          NL * 3 * C * C,
                        NL * 3 * C, NL * C * C, NL * C, NL * C,     NL * C,     NL * I * C,
                        NL * I,     NL * C * I, NL * C, NL * C,     NL * C,     C * C,
                        C,          L * C,      L};
    size_t off[21], total = 0;
    for (int i = 0; i < 21; i++) {
        off[i] = total;
        total += sizes[i];
    }
    m->num_parameters = total;
    m->params_memory = malloc(total * sizeof(float));
    m->grads_memory = calloc(total, sizeof(float));
    m->num_tensors = 5 + 16 * (int)NL + 4;
    m->info = calloc(m->num_tensors, sizeof *m->info);
    if (!m->params_memory || !m->grads_memory || !m->info)
        return bl_fail("out of memory allocating %zu parameters", total);
    memset(m->params_memory, 0, total * sizeof(float));
    m->wte_touched = calloc(V, 1); /* NULL only means zero_grad clears the whole [V,C] block */
    float **pp = (float **)&m->params, **gp = (float **)&m->grads;
    for (int i = 0; i < 21; i++) {
        pp[i] = m->params_memory + off[i];
        gp[i] = m->grads_memory + off[i];
    }

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

/* The name without the "bert." prefix (how BertModel checkpoints spell it). */
static const char *short_name(const char *name) {
    return strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
}

/* Initialises one parameter tensor as transformers' BertPreTrainedModel._init_weights does. */
static void init_tensor(bert_t *m, const bert_param_info_t *in) {
    float *p = m->params_memory + in->offset;
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

int bert_init(bert_t *m, bert_config_t *cfg) {
    memset(m, 0, sizeof *m);
    m->config = *cfg;
    memset(cfg, 0, sizeof *cfg);
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
    /* BertForSequenceClassification's dropout before the classifier: classifier_dropout when the
     * config sets it, else hidden_dropout_prob (bert_config_t does not carry the field) */
    m->classifier_dropout = c->hidden_dropout_prob;
    if (c->json) {
        json_t *root = json_loads(c->json, 0, NULL);
        json_t *v = root ? json_object_get(root, "classifier_dropout") : NULL;
        if (v && json_is_number(v)) m->classifier_dropout = (float)json_number_value(v);
        /* only absolute position embeddings are implemented */
        v = root ? json_object_get(root, "position_embedding_type") : NULL;
        if (v && json_is_string(v) && strcmp(json_string_value(v), "absolute") != 0) {
            bl_fail("config.json: position_embedding_type '%s' is not supported (only 'absolute')",
                    json_string_value(v));
            json_decref(root);
            bert_free(m);
            return -1;
        }
        json_decref(root);
    }
    return 0;
}

void bert_init_weights(bert_t *m) {
    for (int i = 0; i < m->num_tensors; i++) init_tensor(m, &m->info[i]);
}

void bert_free(bert_t *m) {
    if (!m) return;
    free(m->params_memory);
    free(m->grads_memory);
    free(m->acts_memory);
    free(m->info);
    free(m->wte_touched);
    free(m->source_dir);
    bert_config_free(&m->config);
    memset(m, 0, sizeof *m);
}

/* Zeroes the gradients. The word-embedding gradient ([V,C], half of MiniLM's) is only ever written
 * by backward at the rows of the batch's token ids, so only the rows marked since the last zeroing
 * are cleared there; everything else is one memset. */
void bert_zero_grad(bert_t *m) {
    if (!m->grads_memory) return;
    size_t C = m->config.hidden_size, V = m->config.vocab_size, wte = V * C;
    memset(m->grads_memory + wte, 0, (m->num_parameters - wte) * sizeof(float));
    if (!m->wte_touched) {
        memset(m->grads_memory, 0, wte * sizeof(float));
        return;
    }
    for (size_t v = 0; v < V; v++)
        if (m->wte_touched[v]) {
            memset(m->grads_memory + v * C, 0, C * sizeof(float));
            m->wte_touched[v] = 0;
        }
}

void bert_set_training(bert_t *m, int training) { m->training = training ? 1 : 0; }

/* ------------------------------------------------------------------------------------------------
 * checkpoints */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] == '/') ? "" : "/", name);
    return s;
}

static char *dir_name(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

enum { LOAD_STRICT, LOAD_HEAD_OPTIONAL, LOAD_PARTIAL };

/* Reads the tensors of safetensors file `path` into the model's parameters. */
static int load_tensors(bert_t *m, const char *path, int mode, int quiet) {
    safetensors_t st;
    memset(&st, 0, sizeof st);
    if (safetensors_open(&st, path) != 0) return -1;
    char *loaded = calloc(m->num_tensors, 1);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char unexpected[512] = "";
    int n_unexpected = 0, rc = -1;
    if (!loaded) {
        bl_fail("out of memory");
        goto done;
    }
    for (int e = 0; e < st.n; e++) {
        const st_entry_t *en = &st.entries[e];
        const char *sn = short_name(en->name);
        int k = -1;
        for (int i = 0; i < m->num_tensors; i++)
            if (strcmp(short_name(m->info[i].name), sn) == 0) {
                k = i;
                break;
            }
        if (k < 0) {
            /* position_ids is a buffer BertModel saves; it carries nothing we use */
            if (strcmp(sn, "embeddings.position_ids") != 0) {
                if (n_unexpected < 6) {
                    size_t u = strlen(unexpected);
                    snprintf(unexpected + u, sizeof unexpected - u, "%s'%s'", u ? ", " : "",
                             en->name);
                }
                n_unexpected++;
            }
            continue;
        }
        const bert_param_info_t *in = &m->info[k];
        if (loaded[k]) {
            bl_fail("%s: tensor '%s' appears twice (with and without the 'bert.' prefix)", base,
                    en->name);
            goto done;
        }
        if (en->ndim != in->ndim || en->shape[0] != in->shape[0] ||
            (in->ndim == 2 && en->shape[1] != in->shape[1])) {
            char a[64], b[64];
            bl_fail("%s: tensor '%s' has shape %s, config says %s", base, en->name,
                    shape_str(a, sizeof a, en->ndim, en->shape),
                    shape_str(b, sizeof b, in->ndim, in->shape));
            goto done;
        }
        if (en->dtype != ST_F32 && en->dtype != ST_F16 && en->dtype != ST_BF16 &&
            en->dtype != ST_F64) {
            bl_fail("%s: tensor '%s' is not a floating-point tensor", base, en->name);
            goto done;
        }
        if (safetensors_read_f32(&st, en, m->params_memory + in->offset) != 0) goto done;
        loaded[k] = 1;
    }
    char missing[512] = "";
    int n_missing = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        if (loaded[i]) continue;
        const char *nm = m->info[i].name;
        int head = strncmp(nm, "classifier.", 11) == 0 || strncmp(nm, "bert.pooler.", 12) == 0;
        if (mode == LOAD_STRICT || (mode == LOAD_HEAD_OPTIONAL && !head)) {
            bl_fail("%s: tensor '%s' is missing from the checkpoint", base, nm);
            goto done;
        }
        if (mode == LOAD_HEAD_OPTIONAL) init_tensor(m, &m->info[i]);
        size_t u = strlen(missing);
        if (u < sizeof missing - 100)
            snprintf(missing + u, sizeof missing - u, "%s'%s'", u ? ", " : "", nm);
        n_missing++;
    }
    if (!quiet && n_missing && mode == LOAD_HEAD_OPTIONAL)
        fprintf(stderr,
                "Some weights of BertForSequenceClassification were not initialized from the model "
                "checkpoint at %s and are newly initialized: [%s]\nYou should probably TRAIN this "
                "model on a down-stream task to be able to use it for predictions and inference.\n",
                path, missing);
    if (!quiet && n_unexpected)
        fprintf(stderr, "note: %s: ignored %d tensor%s the model does not use: %s%s\n", path,
                n_unexpected, n_unexpected > 1 ? "s" : "", unexpected,
                n_unexpected > 6 ? ", ..." : "");
    rc = 0;
done:
    free(loaded);
    safetensors_close(&st);
    return rc;
}

/* Resolves a checkpoint path: a folder (its model.safetensors) or a .safetensors file. */
static char *weights_path(const char *path) {
    if (is_dir(path)) {
        char *w = path_join(path, "model.safetensors");
        if (w && !file_exists(w)) {
            bl_fail("%s: no model.safetensors in this folder", path);
            free(w);
            return NULL;
        }
        return w;
    }
    if (!file_exists(path)) {
        bl_fail("%s: no such file or folder", path);
        return NULL;
    }
    if (!ends_with(path, ".safetensors")) {
        bl_fail("%s: expected a model folder or a .safetensors file", path);
        return NULL;
    }
    return strdup(path);
}

int bert_from_pretrained(bert_t *m, const char *path, const bert_load_opts_t *opts) {
    memset(m, 0, sizeof *m);
    char *wpath = weights_path(path);
    if (!wpath) return -1;
    char *dir = is_dir(path) ? strdup(path) : dir_name(path);
    char *cpath = path_join(dir, "config.json");
    bert_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = -1;
    if (!file_exists(cpath)) {
        bl_fail("%s: no config.json beside the weights", dir);
        goto done;
    }
    if (bert_config_load(&cfg, cpath) != 0) goto done;
    /* num_labels alone, equal to the config's, keeps the config's label names (as transformers) */
    if (opts && opts->num_labels > 0 &&
        (opts->id2label || opts->num_labels != cfg.num_labels) &&
        bert_config_set_labels(&cfg, opts->num_labels, opts->id2label) != 0) {
        bert_config_free(&cfg);
        goto done;
    }
    if (bert_init(m, &cfg) != 0) goto done;
    m->source_dir = dir;
    dir = NULL;
    if (load_tensors(m, wpath, LOAD_HEAD_OPTIONAL, opts ? opts->quiet : 0) != 0) {
        bert_free(m);
        goto done;
    }
    rc = 0;
done:
    free(wpath);
    free(dir);
    free(cpath);
    return rc;
}

int bert_load_weights(bert_t *m, const char *path, int strict) {
    char *w = weights_path(path);
    if (!w) return -1;
    int rc = load_tensors(m, w, strict ? LOAD_STRICT : LOAD_PARTIAL, 1);
    free(w);
    return rc;
}

/* Copies a small file atomically (vocab.txt beside a saved model). */
static int copy_file(const char *src, const char *dst) {
    size_t n;
    char *buf = file_read_all(src, &n);
    if (!buf) return -1;
    atomic_file_t af;
    memset(&af, 0, sizeof af);
    if (atomic_open(&af, dst) != 0) {
        free(buf);
        return -1;
    }
    if (fwrite(buf, 1, n, af.f) != n) {
        atomic_abort(&af);
        free(buf);
        return bl_fail("%s: write failed", dst);
    }
    free(buf);
    return atomic_commit(&af);
}

int bert_save(const bert_t *m, const char *path) {
    st_write_t *w = calloc(m->num_tensors, sizeof *w);
    if (!w) return bl_fail("out of memory");
    for (int i = 0; i < m->num_tensors; i++) {
        w[i].name = m->info[i].name;
        w[i].dtype = DT_F32;
        w[i].ndim = m->info[i].ndim;
        w[i].shape = m->info[i].shape;
        w[i].data = m->params_memory + m->info[i].offset;
    }
    const char *meta = "{\"format\":\"pt\"}";
    int rc = -1;
    char *wp = NULL, *cp = NULL, *vsrc = NULL, *vdst = NULL;
    if (ends_with(path, ".safetensors")) {
        rc = safetensors_save(path, w, m->num_tensors, meta);
        goto done;
    }
    if (mkdir_p(path) != 0) goto done;
    wp = path_join(path, "model.safetensors");
    cp = path_join(path, "config.json");
    if (!wp || !cp) {
        bl_fail("out of memory");
        goto done;
    }
    if (safetensors_save(wp, w, m->num_tensors, meta) != 0) goto done;
    if (bert_config_save(&m->config, cp) != 0) goto done;
    if (m->source_dir) {
        vsrc = path_join(m->source_dir, "vocab.txt");
        vdst = path_join(path, "vocab.txt");
        if (vsrc && vdst && file_exists(vsrc)) {
            char *a = realpath(vsrc, NULL), *b = realpath(vdst, NULL);
            int same = a && b && strcmp(a, b) == 0;
            free(a);
            free(b);
            if (!same && copy_file(vsrc, vdst) != 0) goto done;
        }
    }
    rc = 0;
done:
    free(w);
    free(wp);
    free(cp);
    free(vsrc);
    free(vdst);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * activations */

/* Number of floats of the activation allocation for (B,T); with `a` non-NULL, also points a's
 * fields into `base`. The int64 arrays come first (2 floats each), so they stay 8-byte aligned. */
static size_t layout_acts(const bert_t *m, int B_, int T_, bert_acts_t *a, float *base) {
    size_t B = B_, T = T_, N = B * T, C = m->config.hidden_size, NH = m->config.num_attention_heads,
           I = m->config.intermediate_size, NL = m->config.num_hidden_layers,
           L = m->config.num_labels;
    size_t att = B * NH * T * T;
    struct {
        void *field;
        size_t n;
    } f[] = {
        {a ? &a->ids : NULL, 2 * N},        {a ? &a->types : NULL, 2 * N},
        {a ? &a->labels : NULL, 2 * B},     {a ? &a->mask_add : NULL, N},
        {a ? &a->emb : NULL, N * C},        {a ? &a->emb_ln : NULL, N * C},
        {a ? &a->emb_mean : NULL, N},       {a ? &a->emb_rstd : NULL, N},
        {a ? &a->x0 : NULL, N * C},         {a ? &a->qkv : NULL, NL * N * 3 * C},
        {a ? &a->att : NULL, NL * att},     {a ? &a->atty : NULL, NL * N * C},
        {a ? &a->res1 : NULL, NL * N * C},
        {a ? &a->ln1 : NULL, NL * N * C},   {a ? &a->ln1_mean : NULL, NL * N},
        {a ? &a->ln1_rstd : NULL, NL * N},  {a ? &a->fch : NULL, NL * N * I},
        {a ? &a->fch_gelu : NULL, NL * N * I},
        {a ? &a->res2 : NULL, NL * N * C},  {a ? &a->ln2 : NULL, NL * N * C},
        {a ? &a->ln2_mean : NULL, NL * N},  {a ? &a->ln2_rstd : NULL, NL * N},
        {a ? &a->cls : NULL, B * C},        {a ? &a->pool_pre : NULL, B * C},
        {a ? &a->pooled : NULL, B * C},     {a ? &a->pooled_d : NULL, B * C},
        {a ? &a->logits : NULL, B * L},     {a ? &a->probs : NULL, B * L},
        {a ? &a->loss : NULL, 2},           {a ? &a->d_res : NULL, N * C},
        {a ? &a->d_a : NULL, N * C},        {a ? &a->d_b : NULL, N * C},
        {a ? &a->d_qkv : NULL, N * 3 * C},  {a ? &a->d_i1 : NULL, N * I},
        {a ? &a->d_i2 : NULL, N * I},       {a ? &a->d_att : NULL, att},
        {a ? &a->d_bc1 : NULL, B * C},      {a ? &a->d_bc2 : NULL, B * C},
        {a ? &a->d_logits : NULL, B * L},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (a) *(float **)f[i].field = base + total;
        total += (f[i].n + 1) & ~(size_t)1; /* keep every field 8-byte aligned */
    }
    return total;
}

/* Makes the activation allocation hold (B,T), growing it only when it is too small. */
static int ensure_acts(bert_t *m, int B, int T) {
    if (m->acts_memory && B <= m->act_B && T <= m->act_T) return 0;
    int nb = B > m->act_B ? B : m->act_B, nt = T > m->act_T ? T : m->act_T;
    size_t n = layout_acts(m, nb, nt, NULL, NULL);
    free(m->acts_memory);
    m->acts_memory = malloc(n * sizeof(float));
    if (!m->acts_memory) {
        m->act_B = m->act_T = 0;
        return bl_fail("out of memory allocating activations for batch %d x %d (%zu MB)", nb, nt,
                       n * sizeof(float) >> 20);
    }
    m->acts_floats = n;
    m->act_B = nb;
    m->act_T = nt;
    return 0;
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
#define NEXT(n) (off[k++] = o, o += ((uint64_t)(n) + 3) & ~(uint64_t)3)
    NEXT((uint64_t)B * P * C);
    for (int l = 0; l < NL; l++) {
        NEXT((uint64_t)B * NH * P * P);
        NEXT((uint64_t)B * P * C);
        NEXT((uint64_t)B * P * C);
    }
    NEXT((uint64_t)B * C);
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

int bert_forward(bert_t *m, const bert_inputs_t *in, float *loss) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (validate(m, in) != 0) return -1;
    const bert_config_t *c = &m->config;
    int B = (int)in->input_ids->shape[0], T = (int)in->input_ids->shape[1];
    int C = c->hidden_size, NH = c->num_attention_heads, I = c->intermediate_size,
        NL = c->num_hidden_layers, L = c->num_labels, P = c->max_position_embeddings;
    size_t N = (size_t)B * T;
    if (ensure_acts(m, B, T) != 0) return -1;
    bert_acts_t *a = &m->acts;
    layout_acts(m, B, T, a, m->acts_memory);
    bert_params_t *p = &m->params;

    m->forward_count++;
    m->B = B;
    m->T = T;
    m->has_labels = in->labels != NULL;
    memcpy(a->ids, in->input_ids->data, N * sizeof(int64_t));
    if (in->token_type_ids) memcpy(a->types, in->token_type_ids->data, N * sizeof(int64_t));
    else memset(a->types, 0, N * sizeof(int64_t));
    if (in->labels) memcpy(a->labels, in->labels->data, (size_t)B * sizeof(int64_t));
    for (size_t i = 0; i < N; i++)
        a->mask_add[i] = (in->attention_mask && ((int64_t *)in->attention_mask->data)[i] == 0)
                             ? -FLT_MAX
                             : 0.0f;

    /* dropout: masks drawn from (global seed, DROPOUT stream, running offset); the offset advances
     * by spans that depend on B only (drop_offsets) */
    m->p_hidden = m->training ? c->hidden_dropout_prob : 0.0f;
    m->p_attn = m->training ? c->attention_probs_dropout_prob : 0.0f;
    m->p_cls = m->training ? m->classifier_dropout : 0.0f;
    uint64_t off[3 * NL + 2];
    m->drop_seed = rng_global_seed();
    rng_t *ds = rng_stream(RNG_STREAM_DROPOUT);
    m->drop_offset = ds->offset;
    uint64_t end = drop_offsets(m, B, m->drop_offset, off);
    if (m->training) ds->offset = end;
    float ph = m->p_hidden, pa = m->p_attn;
    uint64_t seed = m->drop_seed;

    k_embeddings_forward(a->emb, a->ids, a->types, p->wte, p->wpe, p->wtt, B, T, C);
    k_layernorm_forward(a->emb_ln, a->emb_mean, a->emb_rstd, a->emb, p->emb_lnw, p->emb_lnb, (int)N,
                        C, c->layer_norm_eps);
    k_dropout_forward(a->x0, a->emb_ln, B, T, C, P, ph, seed, off[0]);
    const float *x = a->x0;
    for (int l = 0; l < NL; l++) {
        size_t nc = N * C, ni = N * I, att = (size_t)B * NH * T * T;
        size_t cc = (size_t)C * C, ic = (size_t)I * C;
        float *qkv = a->qkv + l * 3 * nc, *atty = a->atty + l * nc;
        float *res1 = a->res1 + l * nc, *ln1 = a->ln1 + l * nc, *fch = a->fch + l * ni;
        float *fchg = a->fch_gelu + l * ni, *res2 = a->res2 + l * nc;
        float *ln2 = a->ln2 + l * nc;
        k_linear_forward(qkv, x, p->qkvw + l * 3 * cc, p->qkvb + l * 3 * C, (int)N, C, 3 * C);
        k_attention_forward(atty, a->att + l * att, qkv, a->mask_add, B, T, C, NH, P, pa, seed,
                            off[1 + 3 * l]);
        /* dense, dropout and residual in place in res1: backward needs only the sum */
        k_linear_forward(res1, atty, p->attprojw + l * cc, p->attprojb + l * C, (int)N, C, C);
        k_dropout_forward(res1, res1, B, T, C, P, ph, seed, off[2 + 3 * l]);
        k_residual_forward(res1, res1, x, nc);
        k_layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, res1, p->ln1w + l * C,
                            p->ln1b + l * C, (int)N, C, c->layer_norm_eps);
        k_linear_forward(fch, ln1, p->fcw + l * ic, p->fcb + l * I, (int)N, C, I);
        k_gelu_forward(fchg, fch, ni);
        k_linear_forward(res2, fchg, p->fcprojw + l * ic, p->fcprojb + l * C, (int)N, I, C);
        k_dropout_forward(res2, res2, B, T, C, P, ph, seed, off[3 + 3 * l]);
        k_residual_forward(res2, res2, ln1, nc);
        k_layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, res2, p->ln2w + l * C,
                            p->ln2b + l * C, (int)N, C, c->layer_norm_eps);
        x = ln2;
    }
    k_cls_forward(a->cls, x, B, T, C);
    k_linear_forward(a->pool_pre, a->cls, p->poolw, p->poolb, B, C, C);
    k_tanh_forward(a->pooled, a->pool_pre, (size_t)B * C);
    k_dropout_forward(a->pooled_d, a->pooled, B, 1, C, 1, m->p_cls, seed, off[1 + 3 * NL]);
    k_linear_forward(a->logits, a->pooled_d, p->clsw, p->clsb, B, C, L);
    if (in->labels) {
        k_crossentropy_forward(a->loss, a->probs, a->logits, a->labels, B, L);
        if (loss) *loss = a->loss[0];
    }
    return 0;
}

int bert_backward(bert_t *m, float dloss) {
    if (!m->params_memory) return bl_fail("the model was freed");
    if (!m->forward_count) return bl_fail("backward: no forward has run");
    if (!m->has_labels) return bl_fail("backward: the last forward had no labels, so no loss");
    const bert_config_t *c = &m->config;
    int B = m->B, T = m->T;
    int C = c->hidden_size, NH = c->num_attention_heads, I = c->intermediate_size,
        NL = c->num_hidden_layers, L = c->num_labels, P = c->max_position_embeddings;
    size_t N = (size_t)B * T, nc = N * C, ni = N * I, bc = (size_t)B * C;
    size_t cc = (size_t)C * C, ic = (size_t)I * C, att = (size_t)B * NH * T * T;
    bert_acts_t *a = &m->acts;
    const bert_params_t *p = &m->params;
    bert_params_t *g = &m->grads;
    uint64_t off[3 * NL + 2];
    drop_offsets(m, B, m->drop_offset, off);
    float ph = m->p_hidden, pa = m->p_attn;
    uint64_t seed = m->drop_seed;
#define ZERO(ptr, n) memset((ptr), 0, (n) * sizeof(float))

    /* head: loss -> logits -> classifier -> dropout -> tanh -> pooler -> [CLS] */
    ZERO(a->d_logits, (size_t)B * L);
    k_crossentropy_backward(a->d_logits, a->probs, a->labels, B, L, dloss);
    ZERO(a->d_bc1, bc);
    k_linear_backward(a->d_bc1, g->clsw, g->clsb, a->d_logits, a->pooled_d, p->clsw, B, C, L);
    ZERO(a->d_bc2, bc);
    k_dropout_backward(a->d_bc2, a->d_bc1, B, 1, C, 1, m->p_cls, seed, off[1 + 3 * NL]);
    ZERO(a->d_bc1, bc);
    k_tanh_backward(a->d_bc1, a->pooled, a->d_bc2, bc);
    ZERO(a->d_bc2, bc);
    k_linear_backward(a->d_bc2, g->poolw, g->poolb, a->d_bc1, a->cls, p->poolw, B, C, C);
    float *dres = a->d_res, *da = a->d_a, *db = a->d_b;
    ZERO(dres, nc);
    k_cls_backward(dres, a->d_bc2, B, T, C);

    /* layers, last to first; dres holds the gradient of the layer's output */
    for (int l = NL - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->ln2 + (l - 1) * nc;
        const float *qkv = a->qkv + l * 3 * nc, *atty = a->atty + l * nc;
        const float *res1 = a->res1 + l * nc, *ln1 = a->ln1 + l * nc, *fch = a->fch + l * ni;
        const float *fchg = a->fch_gelu + l * ni, *res2 = a->res2 + l * nc;
        ZERO(da, nc); /* d res2 */
        k_layernorm_backward(da, g->ln2w + l * C, g->ln2b + l * C, dres, res2, a->ln2_mean + l * N,
                             a->ln2_rstd + l * N, p->ln2w + l * C, (int)N, C);
        ZERO(db, nc); /* d fcproj (before dropout) */
        k_dropout_backward(db, da, B, T, C, P, ph, seed, off[3 + 3 * l]);
        ZERO(a->d_i1, ni);
        k_linear_backward(a->d_i1, g->fcprojw + l * ic, g->fcprojb + l * C, db, fchg,
                          p->fcprojw + l * ic, (int)N, I, C);
        ZERO(a->d_i2, ni);
        k_gelu_backward(a->d_i2, fch, a->d_i1, ni);
        /* d ln1 = residual (already in da) + through the intermediate dense */
        k_linear_backward(da, g->fcw + l * ic, g->fcb + l * I, a->d_i2, ln1, p->fcw + l * ic,
                          (int)N, C, I);
        ZERO(db, nc); /* d res1 */
        k_layernorm_backward(db, g->ln1w + l * C, g->ln1b + l * C, da, res1, a->ln1_mean + l * N,
                             a->ln1_rstd + l * N, p->ln1w + l * C, (int)N, C);
        ZERO(da, nc); /* d attproj (before dropout) */
        k_dropout_backward(da, db, B, T, C, P, ph, seed, off[2 + 3 * l]);
        ZERO(dres, nc); /* d atty */
        k_linear_backward(dres, g->attprojw + l * cc, g->attprojb + l * C, da, atty,
                          p->attprojw + l * cc, (int)N, C, C);
        ZERO(a->d_qkv, 3 * nc);
        k_attention_backward(a->d_qkv, a->d_att, dres, qkv, a->att + l * att, B, T, C, NH, P, pa,
                             seed, off[1 + 3 * l]);
        /* d x = residual (db) + through the qkv projection */
        k_linear_backward(db, g->qkvw + l * 3 * cc, g->qkvb + l * 3 * C, a->d_qkv, x,
                          p->qkvw + l * 3 * cc, (int)N, C, 3 * C);
        float *t = dres;
        dres = db;
        db = t;
    }

    /* embeddings: dropout -> LayerNorm -> lookups */
    ZERO(da, nc);
    k_dropout_backward(da, dres, B, T, C, P, ph, seed, off[0]);
    ZERO(db, nc);
    k_layernorm_backward(db, g->emb_lnw, g->emb_lnb, da, a->emb, a->emb_mean, a->emb_rstd,
                         p->emb_lnw, (int)N, C);
    k_embeddings_backward(g->wte, g->wpe, g->wtt, db, a->ids, a->types, B, T, C);
    if (m->wte_touched)
        for (size_t i = 0; i < N; i++) m->wte_touched[a->ids[i]] = 1;
#undef ZERO
    return 0;
}
