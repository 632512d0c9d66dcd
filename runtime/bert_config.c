/* bert_config.c: config.json of a BERT checkpoint, read with BertConfig's defaults
 * (transformers models/bert/configuration_bert.py) and written back as transformers would read it:
 * the original's other fields kept, our fields, architectures, id2label and label2id set. */
#include "bert_config.h"
#include "error.h"
#include "fileio.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* An integer field in [min, max] (default when absent). */
static int get_int(const char *path, json_t *root, const char *key, int def, int min, int max, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return bl_fail("%s: field '%s' must be an integer, got %s", path, key, json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < min) return bl_fail("%s: field '%s' is %lld, must be >= %d", path, key, (long long)x, min);
    if (x > max) return bl_fail("%s: field '%s' is %lld, too large (at most %d)", path, key, (long long)x, max);
    *out = (int)x;
    return 0;
}

/* A number field in [lo, hi) (hi_incl: [lo, hi]); default when absent. */
static int get_num(const char *path, json_t *root, const char *key, double def, double lo, double hi,
                   int lo_excl, float *out) {
    json_t *v = json_object_get(root, key);
    double x = def;
    if (v) {
        if (!json_is_number(v))
            return bl_fail("%s: field '%s' must be a number, got %s", path, key, json_kind(v));
        x = json_number_value(v);
    }
    if (!(lo_excl ? x > lo : x >= lo) || !(x < hi) || !isfinite(x))
        return bl_fail("%s: field '%s' is %g, must be in %s%g, %g)", path, key, x, lo_excl ? "(" : "[", lo, hi);
    *out = (float)x;
    return 0;
}

static void free_labels(bert_config_t *cfg) {
    if (cfg->id2label)
        for (int i = 0; i < cfg->num_labels; i++) free(cfg->id2label[i]);
    free(cfg->id2label);
    cfg->id2label = NULL;
}

int bert_config_set_labels(bert_config_t *cfg, int num_labels, const char *const *names) {
    if (num_labels < 1 || num_labels > BERT_MAX_LABELS)
        return bl_fail("num_labels is %d, must be in 1..%d", num_labels, BERT_MAX_LABELS);
    if (names)
        for (int i = 0; i < num_labels; i++) {
            if (!names[i]) return bl_fail("label %d has no name", i);
            for (int j = 0; j < i; j++)
                if (strcmp(names[i], names[j]) == 0)
                    return bl_fail("label name '%s' appears twice (ids %d and %d)", names[i], j, i);
        }
    char **labels = calloc((size_t)num_labels, sizeof *labels);
    if (!labels) return bl_fail("out of memory");
    for (int i = 0; i < num_labels; i++) {
        char buf[32];
        if (!names) snprintf(buf, sizeof buf, "LABEL_%d", i);
        labels[i] = strdup(names ? names[i] : buf);
        if (!labels[i]) {
            for (int j = 0; j < i; j++) free(labels[j]);
            free(labels);
            return bl_fail("out of memory");
        }
    }
    free_labels(cfg);
    cfg->id2label = labels;
    cfg->num_labels = num_labels;
    return 0;
}

/* num_labels and id2label as transformers resolves them: num_labels wins when both disagree
 * (labels become LABEL_i), id2label alone sets the count, neither gives 2. */
static int load_labels(bert_config_t *cfg, const char *path, json_t *root) {
    json_t *jn = json_object_get(root, "num_labels"), *jm = json_object_get(root, "id2label");
    int n = -1;
    if (jn && !json_is_null(jn)) {
        if (!json_is_integer(jn))
            return bl_fail("%s: field 'num_labels' must be an integer, got %s", path, json_kind(jn));
        json_int_t x = json_integer_value(jn);
        if (x < 1 || x > BERT_MAX_LABELS)
            return bl_fail("%s: field 'num_labels' is %lld, must be in 1..%d", path, (long long)x, BERT_MAX_LABELS);
        n = (int)x;
    }
    if (jm && !json_is_null(jm)) {
        if (!json_is_object(jm))
            return bl_fail("%s: field 'id2label' must be an object {\"0\": name, ...}, got %s", path, json_kind(jm));
        int m = (int)json_object_size(jm);
        if (m < 1 || m > BERT_MAX_LABELS)
            return bl_fail("%s: field 'id2label' has %d entries, must have 1..%d", path, m, BERT_MAX_LABELS);
        if (n < 0 || n == m) {
            const char **names = calloc((size_t)m, sizeof *names);
            if (!names) return bl_fail("out of memory");
            const char *k;
            json_t *v;
            json_object_foreach(jm, k, v) {
                char *endp;
                long id = strtol(k, &endp, 10);
                if (!*k || *endp || id < 0 || id >= m || names[id]) {
                    free(names);
                    return bl_fail("%s: field 'id2label' has key '%s'; keys must be the ids \"0\"..\"%d\", "
                                   "each once", path, k, m - 1);
                }
                if (!json_is_string(v)) {
                    free(names);
                    return bl_fail("%s: field 'id2label' entry \"%s\" must be a string, got %s", path, k,
                                   json_kind(v));
                }
                names[id] = json_string_value(v);
            }
            int rc = bert_config_set_labels(cfg, m, names);
            free(names);
            if (rc != 0) return bl_fail_prefix("%s: field 'id2label': ", path);
            return 0;
        }
    }
    return bert_config_set_labels(cfg, n < 0 ? 2 : n, NULL);
}

int bert_config_load(bert_config_t *cfg, const char *path) {
    memset(cfg, 0, sizeof *cfg);
    size_t size;
    char *text = file_read_all(path, &size);
    if (!text) return -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bl_fail("%s:%d: not valid JSON: %s", path, jerr.line, jerr.text);
        free(text);
        return -1;
    }
    cfg->json = text;
    int rc = -1;
    if (!json_is_object(root)) {
        bl_fail("%s: not a JSON object", path);
        goto done;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "bert") != 0)) {
        bl_fail("%s: model_type %s%s%s is not supported (only \"bert\")", path, json_is_string(mt) ? "'" : "",
                json_is_string(mt) ? json_string_value(mt) : json_kind(mt), json_is_string(mt) ? "'" : "");
        goto done;
    }
    /* architectures names the checkpoint's head; ours reads the encoder of any Bert* class */
    json_t *ar = json_object_get(root, "architectures");
    if (ar && !json_is_null(ar)) {
        size_t i;
        json_t *v;
        if (!json_is_array(ar)) {
            bl_fail("%s: field 'architectures' must be an array of strings, got %s", path, json_kind(ar));
            goto done;
        }
        json_array_foreach(ar, i, v) if (!json_is_string(v) || strncmp(json_string_value(v), "Bert", 4) != 0) {
            bl_fail("%s: architecture %s%s%s is not supported (only Bert* models)", path, json_is_string(v) ? "'" : "",
                    json_is_string(v) ? json_string_value(v) : json_kind(v), json_is_string(v) ? "'" : "");
            goto done;
        }
    }
    json_t *pe = json_object_get(root, "position_embedding_type");
    if (pe && !json_is_null(pe) && (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute") != 0)) {
        bl_fail("%s: position_embedding_type %s is not supported (only \"absolute\")", path,
                json_is_string(pe) ? json_string_value(pe) : json_kind(pe));
        goto done;
    }
    /* upper bounds far above any BERT (bert-large: 1024 wide, 24 layers), so that an absurd size is
     * refused here, before the model allocates anything */
    if (get_int(path, root, "vocab_size", 30522, 1, 1 << 22, &cfg->vocab_size) ||
        get_int(path, root, "hidden_size", 768, 1, 1 << 16, &cfg->hidden_size) ||
        get_int(path, root, "num_hidden_layers", 12, 1, 1024, &cfg->num_hidden_layers) ||
        get_int(path, root, "num_attention_heads", 12, 1, 1024, &cfg->num_attention_heads) ||
        get_int(path, root, "intermediate_size", 3072, 1, 1 << 18, &cfg->intermediate_size) ||
        get_int(path, root, "max_position_embeddings", 512, 1, 1 << 20, &cfg->max_position_embeddings) ||
        get_int(path, root, "type_vocab_size", 2, 1, 1 << 16, &cfg->type_vocab_size) ||
        get_num(path, root, "hidden_dropout_prob", 0.1, 0, 1, 0, &cfg->hidden_dropout_prob) ||
        get_num(path, root, "attention_probs_dropout_prob", 0.1, 0, 1, 0, &cfg->attention_probs_dropout_prob) ||
        get_num(path, root, "initializer_range", 0.02, 0, INFINITY, 0, &cfg->initializer_range) ||
        get_num(path, root, "layer_norm_eps", 1e-12, 0, 1, 1, &cfg->layer_norm_eps))
        goto done;
    if (cfg->hidden_size % cfg->num_attention_heads != 0) {
        bl_fail("%s: hidden_size (%d) is not a multiple of num_attention_heads (%d)", path, cfg->hidden_size,
                cfg->num_attention_heads);
        goto done;
    }
    /* each size may be sane and their product not: count the parameters before anyone allocates them */
    double H = cfg->hidden_size, I = cfg->intermediate_size;
    double nparams = (double)(cfg->vocab_size + cfg->max_position_embeddings + cfg->type_vocab_size) * H + 2 * H +
                     cfg->num_hidden_layers * (4 * H * H + 2 * H * I + 9 * H + I) + H * H + H;
    if (nparams > BERT_MAX_PARAMS) {
        bl_fail("%s: the model is too large: %.3g parameters (%.3g GB of float32), at most %.3g", path, nparams,
                nparams * 4 / 1e9, (double)BERT_MAX_PARAMS);
        goto done;
    }
    json_t *act = json_object_get(root, "hidden_act");
    const char *a = "gelu";
    if (act) {
        if (!json_is_string(act)) {
            bl_fail("%s: field 'hidden_act' must be a string, got %s", path, json_kind(act));
            goto done;
        }
        a = json_string_value(act);
    }
    if (strcmp(a, "gelu") != 0) {
        bl_fail("%s: hidden_act '%s' is not supported (only \"gelu\", the erf form)", path, a);
        goto done;
    }
    snprintf(cfg->hidden_act, sizeof cfg->hidden_act, "%s", a);
    json_t *cd = json_object_get(root, "classifier_dropout");
    cfg->classifier_dropout = cd && json_is_number(cd) ? (float)json_number_value(cd) : cfg->hidden_dropout_prob;
    json_t *pt = json_object_get(root, "problem_type");
    if (pt && !json_is_null(pt)) {
        if (!json_is_string(pt)) {
            bl_fail("%s: field 'problem_type' must be a string, got %s", path, json_kind(pt));
            goto done;
        }
        const char *p = json_string_value(pt);
        if (strcmp(p, "single_label_classification") != 0 && strcmp(p, "multi_label_classification") != 0 &&
            strcmp(p, "regression") != 0) {
            bl_fail("%s: problem_type '%s' is not one of single_label_classification, "
                    "multi_label_classification, regression", path, p);
            goto done;
        }
        cfg->problem_type = strdup(p);
    }
    rc = load_labels(cfg, path, root);
done:
    json_decref(root);
    if (rc != 0) bert_config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- saving */

/* The shortest decimal that reads back as the float v, as a JSON real ("0.1", not 0.100000001). */
static json_t *float_real(float v) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return json_real(strtod(buf, NULL));
}

/* Keeps the original value when it already reads as the same float, so unchanged fields stay as written. */
static void set_float(json_t *root, const char *key, float v) {
    json_t *old = json_object_get(root, key);
    if (old && json_is_number(old) && (float)json_number_value(old) == v) return;
    json_object_set_new(root, key, float_real(v));
}

static void set_int(json_t *root, const char *key, int v) {
    json_t *old = json_object_get(root, key);
    if (old && json_is_integer(old) && json_integer_value(old) == v) return;
    json_object_set_new(root, key, json_integer(v));
}

/* 1 when every real in the tree prints back exactly with `prec` significant digits. */
static int reals_roundtrip(const json_t *v, int prec) {
    char buf[40];
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_REAL:
        snprintf(buf, sizeof buf, "%.*g", prec, json_real_value(v));
        return strtod(buf, NULL) == json_real_value(v);
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (!reals_roundtrip(x, prec)) return 0;
        return 1;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) if (!reals_roundtrip(x, prec)) return 0;
        return 1;
    default: return 1;
    }
}

int bert_config_save(const bert_config_t *cfg, const char *path) {
    json_t *root = NULL;
    if (cfg->json) {
        json_error_t jerr;
        root = json_loads(cfg->json, 0, &jerr);
        if (root && !json_is_object(root)) {
            json_decref(root);
            root = NULL;
        }
    }
    if (!root) root = json_object();
    if (!root) return bl_fail("%s: out of memory", path);
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("BertForSequenceClassification"));
    json_object_set_new(root, "architectures", arch);
    json_object_set_new(root, "model_type", json_string("bert"));
    set_int(root, "vocab_size", cfg->vocab_size);
    set_int(root, "hidden_size", cfg->hidden_size);
    set_int(root, "num_hidden_layers", cfg->num_hidden_layers);
    set_int(root, "num_attention_heads", cfg->num_attention_heads);
    set_int(root, "intermediate_size", cfg->intermediate_size);
    set_int(root, "max_position_embeddings", cfg->max_position_embeddings);
    set_int(root, "type_vocab_size", cfg->type_vocab_size);
    set_float(root, "hidden_dropout_prob", cfg->hidden_dropout_prob);
    set_float(root, "attention_probs_dropout_prob", cfg->attention_probs_dropout_prob);
    set_float(root, "initializer_range", cfg->initializer_range);
    set_float(root, "layer_norm_eps", cfg->layer_norm_eps);
    json_object_set_new(root, "hidden_act", json_string(cfg->hidden_act[0] ? cfg->hidden_act : "gelu"));
    if (cfg->problem_type) json_object_set_new(root, "problem_type", json_string(cfg->problem_type));
    /* transformers writes id2label/label2id and derives num_labels from them */
    json_object_del(root, "num_labels");
    json_t *i2l = json_object(), *l2i = json_object();
    for (int i = 0; i < cfg->num_labels; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        const char *name = cfg->id2label ? cfg->id2label[i] : NULL;
        char def[32];
        if (!name) {
            snprintf(def, sizeof def, "LABEL_%d", i);
            name = def;
        }
        json_object_set_new(i2l, key, json_string(name));
        json_object_set_new(l2i, name, json_integer(i));
    }
    json_object_set_new(root, "id2label", i2l);
    json_object_set_new(root, "label2id", l2i);
    int prec = 15;
    while (prec < 17 && !reals_roundtrip(root, prec)) prec++;
    /* indent 2, sorted keys: the layout of transformers' save_pretrained */
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(prec));
    json_decref(root);
    if (!text) return bl_fail("%s: cannot encode the config", path);
    atomic_file_t af;
    if (atomic_open(&af, path) != 0) {
        free(text);
        return -1;
    }
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, af.f) == n && fputc('\n', af.f) != EOF;
    free(text);
    if (!ok) {
        atomic_abort(&af);
        return bl_fail("%s: write failed", path);
    }
    return atomic_commit(&af);
}

void bert_config_free(bert_config_t *cfg) {
    if (!cfg) return;
    free_labels(cfg);
    free(cfg->problem_type);
    free(cfg->json);
    memset(cfg, 0, sizeof *cfg);
}
