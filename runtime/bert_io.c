/* bert_io.c: the model's checkpoints: Hugging Face names on disk (with or without the encoder's
 * "bert." prefix), from_pretrained, loading weights into a model, saving a folder (model.safetensors,
 * config.json, vocab.txt) or a single .safetensors file. Tensors pass through host memory on their
 * way to or from the model's device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bert.h"
#include "device.h"
#include "error.h"
#include "fileio.h"
#include "safetensors.h"
#include "tensor.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The name without the "bert." prefix (how BertModel checkpoints spell it). */
static const char *short_name(const char *name) {
    return strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
}

enum { LOAD_STRICT, LOAD_HEAD_OPTIONAL, LOAD_PARTIAL };

/* Reads the tensors of safetensors file `path` into the model's parameters. */
static int load_tensors(bert_t *m, const char *path, int mode, int quiet) {
    safetensors_t st;
    memset(&st, 0, sizeof st);
    if (safetensors_open(&st, path) != 0) return -1;
    char *loaded = calloc(m->num_tensors, 1);
    size_t most = 1; /* the host buffer each tensor is read into, then copied to the device */
    for (int i = 0; i < m->num_tensors; i++)
        if (m->info[i].numel > most) most = m->info[i].numel;
    float *host = malloc(most * sizeof(float));
    const char *base = path_basename(path);
    char unexpected[512] = "";
    int n_unexpected = 0, rc = -1;
    if (!loaded || !host) {
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
                    shape_format(a, sizeof a, en->ndim, en->shape, 1),
                    shape_format(b, sizeof b, in->ndim, in->shape, 1));
            goto done;
        }
        if (en->dtype != ST_F32 && en->dtype != ST_F16 && en->dtype != ST_BF16 &&
            en->dtype != ST_F64) {
            bl_fail("%s: tensor '%s' is not a floating-point tensor", base, en->name);
            goto done;
        }
        if (safetensors_read_f32(&st, en, host) != 0) goto done;
        m->be->copy_to_device(m->params_memory + in->offset, host, in->numel * sizeof(float));
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
        if (mode == LOAD_HEAD_OPTIONAL && bert_init_param(m, i) != 0) goto done;
        size_t u = strlen(missing);
        if (u < sizeof missing - 100)
            snprintf(missing + u, sizeof missing - u, "%s'%s'", u ? ", " : "", nm);
        n_missing++;
    }
    if (mode == LOAD_STRICT && n_unexpected) {
        bl_fail("%s: %d tensor%s not part of this model (a different architecture, or extra layers?): %s%s", base,
                n_unexpected, n_unexpected > 1 ? "s are" : " is", unexpected, n_unexpected > 6 ? ", ..." : "");
        goto done;
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
    rc = bert_check_device(m, "load");
done:
    free(loaded);
    free(host);
    safetensors_close(&st);
    return rc;
}

/* Resolves a checkpoint path: a folder (its model.safetensors) or a .safetensors file. */
static char *weights_path(const char *path) {
    if (path_is_dir(path)) {
        char *w = path_join(path, "model.safetensors");
        if (w && !path_is_file(w)) {
            bl_fail("%s: no model.safetensors in this folder", path);
            free(w);
            return NULL;
        }
        return w;
    }
    if (!path_is_file(path)) {
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
    return bert_from_pretrained_on(m, path, opts, BL_DEVICE_CPU);
}

int bert_from_pretrained_on(bert_t *m, const char *path, const bert_load_opts_t *opts, int device) {
    memset(m, 0, sizeof *m);
    char *wpath = weights_path(path);
    if (!wpath) return -1;
    char *dir = path_is_dir(path) ? strdup(path) : path_dirname(path);
    char *cpath = path_join(dir, "config.json");
    bert_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = -1;
    if (!path_is_file(cpath)) {
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
    const bl_backend_t *be = device_backend(device);
    if (!be) {
        bert_config_free(&cfg);
        goto done;
    }
    if (bert_init(m, &cfg, be) != 0) goto done;
    m->source_dir = dir;
    dir = NULL;
    if (load_tensors(m, wpath, opts && opts->strict ? LOAD_STRICT : LOAD_HEAD_OPTIONAL, opts ? opts->quiet : 0) != 0) {
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
    if (!m->params_memory) return bl_fail("the model was freed");
    /* On the CPU the file is written from the parameters where they lie; a device's are copied to
     * the host first (on the CPU that copy was 90 MB of fresh pages faulted in and written per save
     * of MiniLM, i.e. twice an epoch: the checkpoint and the training state) */
    int on_host = m->be->device == BL_DEVICE_CPU;
    st_write_t *w = calloc(m->num_tensors, sizeof *w);
    float *copy = on_host ? NULL : malloc(m->num_parameters * sizeof(float));
    const float *host = on_host ? m->params_memory : copy;
    if (!w || !host) {
        free(w);
        free(copy);
        return bl_fail("out of memory saving %zu parameters", m->num_parameters);
    }
    if (!on_host) m->be->copy_to_host(copy, m->params_memory, m->num_parameters * sizeof(float));
    if (bert_check_device(m, "save") != 0) {
        free(w);
        free(copy);
        return -1;
    }
    for (int i = 0; i < m->num_tensors; i++) {
        w[i].name = m->info[i].name;
        w[i].dtype = DT_F32;
        w[i].ndim = m->info[i].ndim;
        w[i].shape = m->info[i].shape;
        w[i].data = host + m->info[i].offset;
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
        if (vsrc && vdst && path_is_file(vsrc)) {
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
    free(copy);
    free(wp);
    free(cp);
    free(vsrc);
    free(vdst);
    return rc;
}

