/* test_backend.c: the device seam (kernels/backend.h). A counting backend (a test double that wraps
 * the CPU table and counts the calls of every entry) is installed on a model and runs whole training
 * steps (zero_grad, forward, backward, clip, AdamW) and an evaluation forward: the only host<->device
 * copies are the batch in and the loss out, with no allocation per step. The model's flat-buffer
 * optimizer and clipping are compared bit for bit with runtime/optim.c over the parameter list (the
 * path of plain tensors, as before the seam), and no object of runtime/ or lua/ calls a k_* kernel.
 * Run from the repo root (after make). */
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include "../kernels/backend.h"
#include "../kernels/kernels.h"      /* k_skinny_forward_takes: whether the tiles take a call */
#include "../kernels/cpu/simd16.h" /* BL_TILES */
#include "../runtime/bert.h"
#include "../runtime/device.h"
#include "../runtime/error.h"
#include "../runtime/optim.h"
#include "../runtime/rng.h"
#include "ctest.h"

#define TINY "tests/fixtures/model/tiny"

/* ---- the counting backend ---------------------------------------------------------------------- */

enum {
    C_ERROR, C_SYNCHRONIZE, C_MEMORY, C_ALLOC, C_FREE, C_MEMZERO, C_TO_DEVICE, C_TO_HOST, C_ON_DEVICE,
    C_KERNEL, /* every math entry, counted together and by name below */
    C_N
};
static long counts[C_N];
static long kernel_calls[64];
static const char *kernel_names[64];
static int n_kernels;
static const bl_backend_t *cpu;
static size_t bytes_to_device, bytes_to_host;

static void count_kernel(int id, const char *name) {
    counts[C_KERNEL]++;
    kernel_calls[id]++;
    kernel_names[id] = name;
    if (id + 1 > n_kernels) n_kernels = id + 1;
}

static const char *w_error(void) { counts[C_ERROR]++; return cpu->error(); }
static void w_synchronize(void) { counts[C_SYNCHRONIZE]++; cpu->synchronize(); }
static void w_memory(size_t *c, size_t *p) { counts[C_MEMORY]++; cpu->memory(c, p); }
static void *w_alloc(size_t n) { counts[C_ALLOC]++; return cpu->alloc(n); }
static void w_free(void *p) { counts[C_FREE]++; cpu->free(p); }
static void w_memzero(void *p, size_t n) { counts[C_MEMZERO]++; cpu->memzero(p, n); }
static void w_to_device(void *d, const void *s, size_t n) {
    counts[C_TO_DEVICE]++;
    bytes_to_device += n;
    cpu->copy_to_device(d, s, n);
}
static void w_to_host(void *d, const void *s, size_t n) {
    counts[C_TO_HOST]++;
    bytes_to_host += n;
    cpu->copy_to_host(d, s, n);
}
static void w_on_device(void *d, const void *s, size_t n) { counts[C_ON_DEVICE]++; cpu->copy_on_device(d, s, n); }

/* One wrapper per math entry: counts it, then calls the CPU table's. */
#define WRAP(id, name, params, args)                                                               \
    static void w_##name params {                                                                  \
        count_kernel(id, #name);                                                                   \
        cpu->name args;                                                                            \
    }
WRAP(0, add_f32, (float *o, const float *a, const float *b, size_t n, int s), (o, a, b, n, s))
WRAP(1, mul_f32, (float *o, const float *a, const float *b, size_t n, int s), (o, a, b, n, s))
WRAP(2, add_i64, (int64_t *o, const int64_t *a, const int64_t *b, size_t n, int s), (o, a, b, n, s))
WRAP(3, mul_i64, (int64_t *o, const int64_t *a, const int64_t *b, size_t n, int s), (o, a, b, n, s))
WRAP(4, fill_f32, (float *o, float v, size_t n), (o, v, n))
WRAP(5, gemm, (int ta, int tb, int M, int N, int K, float al, const float *A, int lda, const float *B, int ldb, float be, float *C, int ldc),
     (ta, tb, M, N, K, al, A, lda, B, ldb, be, C, ldc))
WRAP(6, gemm_batched, (int ta, int tb, int M, int N, int K, float al, const float *A, int lda, long sa, const float *B, int ldb, long sb, float be, float *C, int ldc, long sc, int bt),
     (ta, tb, M, N, K, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, bt))
WRAP(7, embeddings_forward, (float *o, const int64_t *i, const int64_t *t, const float *a, const float *b, const float *c, int B, int T, int C),
     (o, i, t, a, b, c, B, T, C))
WRAP(8, embeddings_backward, (float *a, float *b, float *c, const float *d, const int64_t *i, const int64_t *t, int B, int T, int C),
     (a, b, c, d, i, t, B, T, C))
WRAP(9, layernorm_forward, (float *o, float *m, float *r, const float *x, const float *w, const float *b, int N, int C, float e),
     (o, m, r, x, w, b, N, C, e))
WRAP(10, layernorm_backward, (float *di, float *dw, float *db, const float *d, const float *x, const float *m, const float *r, const float *w, int N, int C),
     (di, dw, db, d, x, m, r, w, N, C))
WRAP(11, linear_forward, (float *o, const float *x, const float *w, const float *b, int N, int C, int OC), (o, x, w, b, N, C, OC))
WRAP(12, linear_backward, (float *di, float *dw, float *db, const float *d, const float *x, const float *w, int N, int C, int OC),
     (di, dw, db, d, x, w, N, C, OC))
WRAP(13, attention_forward, (float *o, float *a, const float *q, const float *m, int B, int T, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (o, a, q, m, B, T, C, NH, P, p, s, f))
WRAP(14, attention_backward, (float *dq, float *sc, const float *d, const float *q, const float *a, int B, int T, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (dq, sc, d, q, a, B, T, C, NH, P, p, s, f))
WRAP(15, gelu_forward, (float *o, const float *x, size_t n), (o, x, n))
WRAP(16, gelu_backward, (float *di, const float *x, const float *d, size_t n), (di, x, d, n))
WRAP(17, tanh_forward, (float *o, const float *x, size_t n), (o, x, n))
WRAP(18, tanh_backward, (float *di, const float *o, const float *d, size_t n), (di, o, d, n))
WRAP(19, dropout_forward, (float *o, const float *x, int B, int T, int C, int P, float p, uint64_t s, uint64_t f), (o, x, B, T, C, P, p, s, f))
WRAP(20, dropout_backward, (float *di, const float *d, int B, int T, int C, int P, float p, uint64_t s, uint64_t f), (di, d, B, T, C, P, p, s, f))
WRAP(21, residual_forward, (float *o, const float *a, const float *b, size_t n), (o, a, b, n))
WRAP(22, accumulate, (float *d, const float *s, size_t n), (d, s, n))
WRAP(23, cls_forward, (float *o, const float *x, int B, int T, int C), (o, x, B, T, C))
WRAP(24, cls_backward, (float *di, const float *d, int B, int T, int C), (di, d, B, T, C))
WRAP(25, crossentropy_forward, (float *l, float *p, const float *z, const int64_t *t, const float *w, int B, int L), (l, p, z, t, w, B, L))
WRAP(26, crossentropy_backward, (float *dz, const float *p, const int64_t *t, const float *w, int B, int L, float d), (dz, p, t, w, B, L, d))
WRAP(27, mask_to_additive, (float *ma, const int64_t *m, size_t n), (ma, m, n))
WRAP(28, softmax_rows, (float *p, const float *z, int B, int L), (p, z, B, L))
WRAP(29, adamw_step, (float *p, const float *g, float *m, float *v, size_t n, k_adamw_hparams_t hp), (p, g, m, v, n, hp))
WRAP(30, sumsq_f32, (double *o, const float *x, size_t n), (o, x, n))
WRAP(31, scale_f32, (float *x, size_t n, float s), (x, n, s))
WRAP(32, clip_scale_f32, (float *x, size_t n, const double *s, double mx), (x, n, s, mx))
WRAP(34, sumsq_rows_f32, (double *o, const float *x, size_t n, const unsigned char *nz, size_t rows, size_t C), (o, x, n, nz, rows, C))
WRAP(35, attention_forward_nokeep, (float *o, const float *q, const float *m, int B, int T, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (o, q, m, B, T, C, NH, P, p, s, f))
WRAP(38, attention_backward_rows, (float *dq, float *sc, const float *d, const float *q, const float *a, const size_t *r, int n, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (dq, sc, d, q, a, r, n, C, NH, P, p, s, f))
WRAP(39, dropout_forward_rows, (float *o, const float *x, const size_t *r, int n, int C, int P, float p, uint64_t s, uint64_t f), (o, x, r, n, C, P, p, s, f))
WRAP(40, dropout_backward_rows, (float *di, const float *d, const size_t *r, int n, int C, int P, float p, uint64_t s, uint64_t f), (di, d, r, n, C, P, p, s, f))
WRAP(41, linear_backward_to, (float *di, float *dw, float *db, const float *d, const float *x, const float *w, int N, int C, int OC, int sx, int sw),
     (di, dw, db, d, x, w, N, C, OC, sx, sw))
WRAP(42, gelu_backward_set, (float *di, const float *x, const float *d, size_t n), (di, x, d, n))
WRAP(43, attention_backward_set, (float *dq, float *sc, const float *d, const float *q, const float *a, int B, int T, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (dq, sc, d, q, a, B, T, C, NH, P, p, s, f))
WRAP(44, attention_backward_rows_set, (float *dq, float *sc, const float *d, const float *q, const float *a, const size_t *r, int n, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (dq, sc, d, q, a, r, n, C, NH, P, p, s, f))
WRAP(45, layernorm_backward_set, (float *di, float *dw, float *db, const float *d, const float *x, const float *m, const float *r, const float *w, int N, int C),
     (di, dw, db, d, x, m, r, w, N, C))
WRAP(46, dropout_backward_set, (float *di, const float *d, int B, int T, int C, int P, float p, uint64_t s, uint64_t f), (di, d, B, T, C, P, p, s, f))
WRAP(47, dropout_backward_rows_set, (float *di, const float *d, const size_t *r, int n, int C, int P, float p, uint64_t s, uint64_t f), (di, d, r, n, C, P, p, s, f))
WRAP(50, residual_layernorm_forward, (float *r, float *o, float *m, float *s, const float *a, const float *b, const float *w, const float *bi, int N, int C, float e),
     (r, o, m, s, a, b, w, bi, N, C, e))
WRAP(49, attention_backward_cls, (float *dq, const float *d, const float *q, const float *a, const size_t *r, int n, int T, int C, int NH, int P, float p, uint64_t s, uint64_t f),
     (dq, d, q, a, r, n, T, C, NH, P, p, s, f))
WRAP(33, adamw_step_rows, (float *p, const float *g, float *m, float *v, size_t n, k_adamw_hparams_t hp, unsigned char *live, const unsigned char *touched, size_t rows, size_t C), (p, g, m, v, n, hp, live, touched, rows, C))
#undef WRAP
static long ffn_declined; /* calls it left to the model (too little work, no AVX-512) */
static int w_ffn_forward_nokeep(float *o, const float *x, const float *w1, const float *b1, const float *w2,
                                const float *b2, int N, int C, int I) {
    count_kernel(36, "ffn_forward_nokeep");
    int done = cpu->ffn_forward_nokeep(o, x, w1, b1, w2, b2, N, C, I);
    ffn_declined += !done;
    return done;
}

static long rows_att_null; /* attention_forward_rows calls that kept no probabilities */
static void w_attention_forward_rows(float *o, float *a, const float *q, const size_t *r, int n, int C, int NH,
                                     int P, float p, uint64_t s, uint64_t f) {
    count_kernel(37, "attention_forward_rows");
    rows_att_null += a == NULL;
    cpu->attention_forward_rows(o, a, q, r, n, C, NH, P, p, s, f);
}

static long cls_att_null; /* attention_forward_cls calls that kept no probabilities */
static void w_attention_forward_cls(float *o, float *a, const float *q, const float *m, const size_t *r, int n, int T,
                                    int C, int NH, int P, float p, uint64_t s, uint64_t f) {
    count_kernel(48, "attention_forward_cls");
    cls_att_null += a == NULL;
    cpu->attention_forward_cls(o, a, q, m, r, n, T, C, NH, P, p, s, f);
}

static long qkv_cls_done; /* qkv_forward_cls calls that computed (else the model made the whole call) */
static int w_qkv_forward_cls(float *qkv, float *qc, const float *x, const float *xc, const size_t *r, int n, int T,
                             const float *w, const float *b, int N, int C) {
    count_kernel(51, "qkv_forward_cls");
    int done = cpu->qkv_forward_cls(qkv, qc, x, xc, r, n, T, w, b, N, C);
    qkv_cls_done += done;
    return done;
}

static bl_backend_t counting;

static void counting_init(void) {
    cpu = bl_backend_cpu();
    counting = *cpu; /* start from the CPU table so a new entry without a wrapper still works... */
    counting.name = "counting";
    counting.error = w_error;
    counting.synchronize = w_synchronize;
    counting.memory = w_memory;
    counting.alloc = w_alloc;
    counting.free = w_free;
    counting.memzero = w_memzero;
    counting.copy_to_device = w_to_device;
    counting.copy_to_host = w_to_host;
    counting.copy_on_device = w_on_device;
#define SET(name) counting.name = w_##name
    SET(add_f32); SET(mul_f32); SET(add_i64); SET(mul_i64); SET(fill_f32); SET(gemm); SET(gemm_batched);
    SET(embeddings_forward); SET(embeddings_backward); SET(layernorm_forward); SET(layernorm_backward);
    SET(linear_forward); SET(linear_backward); SET(attention_forward); SET(attention_backward);
    SET(gelu_forward); SET(gelu_backward); SET(tanh_forward); SET(tanh_backward);
    SET(dropout_forward); SET(dropout_backward); SET(residual_forward); SET(accumulate);
    SET(cls_forward); SET(cls_backward); SET(crossentropy_forward); SET(crossentropy_backward);
    SET(mask_to_additive); SET(softmax_rows); SET(adamw_step); SET(sumsq_f32); SET(scale_f32);
    SET(clip_scale_f32); SET(adamw_step_rows); SET(sumsq_rows_f32); SET(attention_forward_nokeep);
    SET(ffn_forward_nokeep); SET(attention_forward_rows); SET(attention_backward_rows);
    SET(dropout_forward_rows); SET(dropout_backward_rows); SET(linear_backward_to);
    SET(gelu_backward_set); SET(attention_backward_set); SET(attention_backward_rows_set);
    SET(layernorm_backward_set); SET(dropout_backward_set); SET(dropout_backward_rows_set);
    SET(attention_forward_cls); SET(attention_backward_cls); SET(residual_layernorm_forward);
    SET(qkv_forward_cls);
#undef SET
}

/* ...and this checks there is none: every pointer of the table differs from the CPU table's. */
static int unwrapped_entries(void) {
    const void *const *a = (const void *const *)((const char *)&counting + offsetof(bl_backend_t, error));
    const void *const *b = (const void *const *)((const char *)cpu + offsetof(bl_backend_t, error));
    int n = (int)((sizeof(bl_backend_t) - offsetof(bl_backend_t, error)) / sizeof(void *)), bad = 0;
    for (int i = 0; i < n; i++)
        if (a[i] == b[i]) {
            printf("# entry %d of bl_backend_t has no counting wrapper\n", i);
            bad++;
        }
    return bad;
}

static void reset_counts(void) {
    memset(counts, 0, sizeof counts);
    memset(kernel_calls, 0, sizeof kernel_calls);
    bytes_to_device = bytes_to_host = 0;
    ffn_declined = rows_att_null = cls_att_null = qkv_cls_done = 0;
}

static long kernel(const char *name) {
    for (int i = 0; i < n_kernels; i++)
        if (kernel_names[i] && !strcmp(kernel_names[i], name)) return kernel_calls[i];
    return 0;
}

/* ---- batches ----------------------------------------------------------------------------------- */

static int64_t IDS[3][7] = {{1, 75, 97, 76, 51, 88, 27}, {1, 52, 64, 13, 0, 0, 0}, {1, 31, 43, 76, 48, 52, 0}};
static int64_t MASK[3][7] = {{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 0}};
static int64_t LABELS[3] = {2, 0, 1};

static tensor_t *i64(int ndim, int64_t d0, int64_t d1, const int64_t *data) {
    int64_t shape[2] = {d0, d1};
    tensor_t *t = tensor_new(DT_I64, ndim, shape);
    memcpy(t->data, data, sizeof(int64_t) * (size_t)t->numel);
    return t;
}

/* One training step through the model's flat buffers; returns the loss. */
static float step_flat(bert_t *m, const bert_inputs_t *in, const adamw_config_t *cfg, int64_t t) {
    float loss = -1;
    bert_zero_grad(m);
    if (bert_forward(m, in, &loss) != 0 || bert_backward(m, 1.0f) != 0 ||
        bert_clip_grad_norm(m, 1.0, NULL) != 0 || bert_adamw_step(m, cfg, t) != 0)
        printf("# step failed: %s\n", bl_errmsg());
    return loss;
}

/* The same step through runtime/optim.c over the parameter list (the path of plain tensors). */
static float step_list(bert_t *m, const bert_inputs_t *in, adamw_t *opt, float **p, float **g, int64_t *numel) {
    float loss = -1;
    bert_zero_grad(m);
    if (bert_forward(m, in, &loss) != 0 || bert_backward(m, 1.0f) != 0) printf("# step failed: %s\n", bl_errmsg());
    clip_grad_norm(g, numel, m->num_tensors, 1.0);
    adamw_step(opt, p, (const float *const *)g);
    return loss;
}

/* Two copies of the tiny model with the same weights, b on table `be` (sharing the CPU's memory);
 * 0, or -1 (a failed check) when they cannot be loaded. */
static int load_twins(bert_t *a, bert_t *b, const bl_backend_t *be, const bert_load_opts_t *lo) {
    if (bert_from_pretrained(a, TINY, lo) != 0 || bert_from_pretrained(b, TINY, lo) != 0) {
        CHECK(0, "load %s: %s", TINY, bl_errmsg());
        return -1;
    }
    memcpy(b->params_memory, a->params_memory, a->num_parameters * sizeof(float));
    b->be = be;
    return 0;
}

/* ---- k_* symbols outside kernels/ -------------------------------------------------------------- */

/* Undefined k_* symbols of the objects of runtime/ and lua/ (nm -u), except the device queries that
 * runtime/device.o is the one place to call. Returns the count of offending references, -1 when
 * nm cannot run. */
static int kernel_references(void) {
    FILE *f = popen("nm -u -A build/runtime/*.o build/lua/*.o 2>/dev/null", "r");
    if (!f) return -1;
    char line[512];
    int bad = 0, lines = 0;
    static const char *allowed[] = {"k_cuda_available", "k_cuda_describe", "k_set_num_threads",
                                    "k_get_num_threads", NULL};
    while (fgets(line, sizeof line, f)) {
        lines++;
        char *sym = strstr(line, " U ");
        if (!sym) continue;
        sym += 3;
        sym[strcspn(sym, "\r\n")] = 0;
        if (strncmp(sym, "k_", 2) != 0) continue;
        int ok = 0;
        if (strstr(line, "build/runtime/device.o:"))
            for (const char *const *a = allowed; *a; a++) ok |= !strcmp(sym, *a);
        if (!ok) {
            printf("# %s references %s\n", strtok(line, ":"), sym);
            bad++;
        }
    }
    if (pclose(f) != 0 || lines == 0) return -1;
    return bad;
}

int main(void) {
    counting_init();
    CHECK(unwrapped_entries() == 0, "the counting backend wraps every entry of bl_backend_t");

    bert_t m, ref;
    bert_load_opts_t lo = {0, NULL, 1, 0};
    rng_set_seed(5);
    if (bert_from_pretrained(&m, TINY, &lo) != 0 || bert_from_pretrained(&ref, TINY, &lo) != 0) {
        CHECK(0, "load %s: %s", TINY, bl_errmsg());
        CT_DONE();
    }
    /* the counting table shares the CPU's memory, so it can replace the model's backend in place */
    m.be = &counting;
    tensor_t *ids = i64(2, 3, 7, &IDS[0][0]), *mask = i64(2, 3, 7, &MASK[0][0]), *labels = i64(1, 3, 0, LABELS);
    bert_inputs_t in = {ids, mask, NULL, labels, 0, 0, 0};
    adamw_config_t cfg = {1e-3, 0.9, 0.999, 1e-8, 0.01, 1, ADAMW_TRANSFORMERS};

    /* the reference: the same model stepped through the parameter list (sorted runs, own state) */
    float **p = calloc((size_t)ref.num_tensors, sizeof *p), **g = calloc((size_t)ref.num_tensors, sizeof *g);
    int64_t *numel = calloc((size_t)ref.num_tensors, sizeof *numel);
    for (int k = 0; k < ref.num_tensors; k++) {
        p[k] = ref.params_memory + ref.info[k].offset;
        g[k] = ref.grads_memory + ref.info[k].offset;
        numel[k] = (int64_t)ref.info[k].numel;
    }
    adamw_t *opt = adamw_new(&cfg, ref.num_tensors, numel, p);
    bert_set_training(&m, 1);
    bert_set_training(&ref, 1);

    /* step 1 allocates (activations, scratch, moments); step 2 is the steady state */
    reset_counts();
    CHECK(bert_moments_reset(&m) == 0 && counts[C_ALLOC] == 1, "the moments are one allocation of the model");
    uint64_t off0 = rng_stream(RNG_STREAM_DROPOUT)->offset;
    float l1 = step_flat(&m, &in, &cfg, 1);
    rng_stream(RNG_STREAM_DROPOUT)->offset = off0; /* the reference draws the same dropout masks */
    float r1 = step_list(&ref, &in, opt, p, g, numel);
    uint64_t off1 = rng_stream(RNG_STREAM_DROPOUT)->offset;

    reset_counts();
    float l2 = step_flat(&m, &in, &cfg, 2);
    long to_dev = counts[C_TO_DEVICE], to_host = counts[C_TO_HOST];
    printf("# one training step: %ld copies to the device (%zu bytes), %ld to the host (%zu bytes), "
           "%ld on the device, %ld allocations, %ld frees, %ld memzero, %ld kernel calls\n",
           to_dev, bytes_to_device, to_host, bytes_to_host, counts[C_ON_DEVICE], counts[C_ALLOC],
           counts[C_FREE], counts[C_MEMZERO], counts[C_KERNEL]);
    /* the batch's rows are prefixes of 7, 4 and 6 real tokens: packed (runtime/bert.c), 17 tokens */
    CHECK(to_dev == 1 && bytes_to_device == (2 * 17 + 3) * sizeof(int64_t),
          "training step: one copy in, the batch packed (ids, types of 17 real tokens, labels; no mask "
          "left: %zu bytes)", bytes_to_device);
    CHECK(to_host == 1 && bytes_to_host == sizeof(float), "training step: one copy out, the loss (%zu bytes)",
          bytes_to_host);
    CHECK(counts[C_ON_DEVICE] == 0 && counts[C_ALLOC] == 0 && counts[C_FREE] == 0 && counts[C_SYNCHRONIZE] == 0,
          "training step: no other copy, no allocation, no free, no synchronize");
    /* adamw_step_rows: adamw_step skipping the word-embedding rows that cannot change (the CPU's) */
    /* clip_scale: once after the embeddings, once per run of word-embedding rows the batch wrote */
    long runs = 0;
    for (int v = 0; v < m.config.vocab_size; v++) runs += m.wte_touched[v] && (v == 0 || !m.wte_touched[v - 1]);
    CHECK(kernel("adamw_step") + kernel("adamw_step_rows") == 1 &&
              kernel("sumsq_f32") + kernel("sumsq_rows_f32") == 1 &&
              kernel("clip_scale_f32") == 1 + runs && runs > 1 && kernel("scale_f32") == 0,
          "AdamW is one kernel call over the flat buffers; clipping one sumsq + one clip_scale after "
          "the embeddings and one per run of written embedding rows (%ld runs)", runs);
    CHECK(kernel("mask_to_additive") == 0 && kernel("crossentropy_forward") == 1 &&
              kernel("embeddings_backward") == 3 && kernel("linear_backward") == 2 &&
              kernel("linear_backward_to") == 4 * m.config.num_hidden_layers &&
              kernel("gelu_backward_set") == m.config.num_hidden_layers && kernel("gelu_backward") == 0,
          "packed rows: no mask to make; one loss; the per-row layers once per row (3 embedding "
          "backwards), the per-token ones once (%ld linear backwards adding: the pooler's and the "
          "classifier's; %ld writing the layers' weight gradients left by zero_grad, and the first "
          "writers of two scratch gradients; GELU's backward written in place, %ld)",
          kernel("linear_backward"), kernel("linear_backward_to"), kernel("gelu_backward_set"));
    {
        int nl = m.config.num_hidden_layers;
        CHECK(kernel("attention_forward_rows") == nl - 1 && kernel("attention_backward_rows_set") == nl - 1 &&
                  kernel("attention_forward_cls") == 1 && kernel("attention_backward_cls") == 1 && cls_att_null == 0 &&
                  kernel("attention_backward_rows") == 0 && kernel("attention_backward_set") == 0 &&
                  kernel("attention_forward") == 0 && kernel("attention_backward") == 0 && rows_att_null == 0 &&
                  kernel("dropout_forward_rows") == 1 + 2 * (nl - 1) &&
                  kernel("dropout_backward_rows_set") == 1 + 2 * (nl - 1) && kernel("dropout_backward_rows") == 0 &&
                  kernel("dropout_forward") == 3 && kernel("dropout_backward_set") == 2 &&
                  kernel("dropout_backward") == 1 &&
                  kernel("layernorm_backward_set") == 1 + 2 * nl && kernel("layernorm_backward") == 0 &&
                  kernel("cls_forward") == 3 && kernel("cls_backward") == 3,
              "packed rows: the attention and the hidden dropouts one call a layer for all rows (forward "
              "keeping the probabilities, backward writing their gradients), the last layer's attention on "
              "the [CLS] queries alone, its two dropouts past the attention and the pooled output's one call "
              "each on the [CLS] rows (the pooled one adding); "
              "the layer norms' backwards writing theirs; the last layer's [CLS] gather of its input and "
              "spread of its gradient (per row; its attention writes its [CLS] outputs itself)");
        CHECK(kernel("residual_layernorm_forward") == 2 * nl && kernel("residual_forward") == 0 &&
                  kernel("layernorm_forward") == 1,
              "each layer's two residual adds and layer norms one call each (%ld), the embeddings' layer norm "
              "alone", kernel("residual_layernorm_forward"));
    }
    CHECK(counts[C_ERROR] >= 3, "the runtime checks the backend's error after forward, backward and step (%ld)",
          counts[C_ERROR]);

    rng_stream(RNG_STREAM_DROPOUT)->offset = off1;
    float r2 = step_list(&ref, &in, opt, p, g, numel);
    CHECK(l1 == r1 && l2 == r2, "losses equal to the list path bit for bit (%.9g %.9g / %.9g %.9g)", l1, l2, r1, r2);
    CHECK(memcmp(m.params_memory, ref.params_memory, m.num_parameters * sizeof(float)) == 0,
          "after two steps, parameters equal the list path's bit for bit (flat AdamW, flat clipping)");
    float *mv = malloc(2 * ref.info[5].numel * sizeof(float));
    bert_moments_get(&m, 5, mv, mv + ref.info[5].numel);
    float *rm = malloc(2 * ref.info[5].numel * sizeof(float));
    adamw_get_state(opt, 5, rm, rm + ref.info[5].numel);
    CHECK(memcmp(mv, rm, 2 * ref.info[5].numel * sizeof(float)) == 0, "the model's moments of '%s' equal the list path's",
          ref.info[5].name);
    free(mv);
    free(rm);

    /* the norm, when asked for, is one copy of the sum of squares (8 bytes) */
    reset_counts();
    double norm = -1;
    CHECK(bert_clip_grad_norm(&m, 1e9, &norm) == 0 && counts[C_TO_HOST] == 1 && bytes_to_host == sizeof(double),
          "clip_grad_norm with the norm: one copy out of %zu bytes", bytes_to_host);
    double ref_norm = clip_grad_norm(g, numel, ref.num_tensors, 1e9);
    CHECK(norm == ref_norm && norm > 0, "the norm equals the list path's (%.17g vs %.17g)", norm, ref_norm);

    /* evaluation: the batch in, nothing out (the bindings copy the logits when they are read) */
    bert_set_training(&m, 0);
    bert_inputs_t ev = {ids, mask, NULL, NULL, 0, 0, 0};
    reset_counts();
    CHECK(bert_forward(&m, &ev, NULL) == 0 && counts[C_TO_DEVICE] == 1 && counts[C_TO_HOST] == 0 &&
              counts[C_ALLOC] == 0,
          "eval forward without labels: one copy in (%zu bytes), none out", bytes_to_device);
    int NL = m.config.num_hidden_layers, L = m.config.num_labels;
    CHECK(kernel("attention_forward_rows") == NL - 1 && rows_att_null == NL - 1 && kernel("attention_forward_cls") == 1 &&
              cls_att_null == 1 && kernel("attention_forward_nokeep") == 0 && kernel("attention_forward") == 0,
          "eval forward: the attention without its probabilities, one call a layer for the packed rows, the last "
          "on their [CLS] queries (%ld, %ld kept none; %ld)", kernel("attention_forward_rows"), rows_att_null,
          kernel("attention_forward_cls"));
    CHECK(kernel("ffn_forward_nokeep") == NL && kernel("gelu_forward") == ffn_declined &&
              kernel("qkv_forward_cls") == 1 && kernel("linear_forward") == 2 * NL + 2 * ffn_declined + 2 - qkv_cls_done,
          "eval forward: the fused feed-forward tried once a layer, linear-GELU-linear where it declined "
          "(%ld declined of %ld; %ld GELU); the last layer's QKV tried once for the [CLS] queries (%ld done)",
          ffn_declined, kernel("ffn_forward_nokeep"), kernel("gelu_forward"), qkv_cls_done);
    float ev_logits[3 * 8];
    memcpy(ev_logits, m.acts.logits, sizeof(float) * 3 * (size_t)L);
    bert_inputs_t ev_kept = {ids, mask, NULL, labels, 0, 0, 0};
    float ev_loss;
    reset_counts();
    CHECK(L <= 8 && bert_forward(&m, &ev_kept, &ev_loss) == 0 && kernel("attention_forward_rows") == NL - 1 &&
              rows_att_null == 0 && kernel("attention_forward_cls") == 1 && cls_att_null == 0 &&
              !memcmp(ev_logits, m.acts.logits, sizeof(float) * 3 * (size_t)L),
          "eval forward with labels (activations kept for a backward): attention_forward_rows keeping the probabilities, the same "
          "logits bit for bit");
    bert_inputs_t nomask = {ids, NULL, NULL, NULL, 0, 0, 0};
    reset_counts();
    CHECK(bert_forward(&m, &nomask, NULL) == 0 && bytes_to_device == (2 * 21 + 3) * sizeof(int64_t),
          "without attention_mask the mask is not copied (%zu bytes in)", bytes_to_device);
    { /* rows long enough for the tiles (>= 86 tokens of this width): the last layer's QKV for the
       * [CLS] queries alone where the tiles vouch for its bits, the logits of the forward that keeps
       * everything, bit for bit, padded rows and packed ones */
        enum { BR = 3, BT = 48 };
        int64_t bid[BR * BT], bmask[BR * BT], blab[BR] = {1, 2, 0};
        for (int pk = 0; pk < 2; pk++) {
            for (int i = 0; i < BR * BT; i++) {
                int r = i / BT, t = i % BT, len = pk ? BT - 9 * r : BT;
                bid[i] = t == 0 ? 2 : t < len ? 5 + (i * 7) % 90 : 0;
                bmask[i] = t < len;
            }
            tensor_t *bi = i64(2, BR, BT, bid), *bm = i64(2, BR, BT, bmask), *bl = i64(1, BR, 0, blab);
            bert_inputs_t bev = {bi, bm, NULL, NULL, 0, 0, 0}, bkept = {bi, bm, NULL, bl, 0, 0, 0};
            float blog[BR * 8], bloss;
            reset_counts();
            int ok = L <= 8 && bert_forward(&m, &bev, NULL) == 0;
            long done = qkv_cls_done;
            if (ok) memcpy(blog, m.acts.logits, sizeof(float) * BR * (size_t)L);
            ok = ok && bert_forward(&m, &bkept, &bloss) == 0 && !memcmp(blog, m.acts.logits, sizeof(float) * BR * (size_t)L);
            CHECK(ok && kernel("qkv_forward_cls") == 1 && done == k_skinny_forward_takes(BR * BT - (pk ? 27 : 0), 32, 96),
                  "eval forward of %s rows of %d tokens: the last layer's Q for the [CLS] queries alone (%ld done), the "
                  "logits of the forward that keeps its activations bit for bit", pk ? "packed" : "full", BT, done);
            tensor_free(bi); tensor_free(bm); tensor_free(bl);
        }
#if BL_TILES
        CHECK(k_skinny_forward_takes(BR * BT - 27, 32, 96), "the tiles take the batch above (so its Q ran for [CLS] alone)");
#endif
    }

    /* moving to a backend and back keeps every value */
    float *before = malloc(m.num_parameters * sizeof(float));
    memcpy(before, m.params_memory, m.num_parameters * sizeof(float));
    CHECK(bert_to(&m, bl_backend_cpu()) == 0 && m.be == bl_backend_cpu() &&
              memcmp(before, m.params_memory, m.num_parameters * sizeof(float)) == 0 && m.acts_memory == NULL,
          "bert_to moves parameters (same values), activations are remade by the next forward");
    free(before);
    const bl_backend_t *cu = device_backend(BL_DEVICE_CUDA);
    if (!cu)
        CHECK(strstr(bl_errmsg(), "CUDA is not available: ") == bl_errmsg(), "no usable CUDA: %s", bl_errmsg());
    else
        SKIP("CUDA is usable here: tests/cuda covers it");

    /* no k_* kernel is called from runtime/ or lua/ */
    int refs = kernel_references();
    if (refs < 0) SKIP("nm -u build/runtime/*.o build/lua/*.o did not run");
    else CHECK(refs == 0, "no object of runtime/ or lua/ references a k_* kernel (%d references)", refs);

    /* packing against the padded layout: the same weights on a copy of the CPU table that says it
     * is another device (the model packs only for the CPU); a training step with dropout, so the
     * masks of the packed rows must be drawn at the padded batch's stream indices */
    {
        bl_backend_t nopack = *cpu;
        nopack.device = BL_DEVICE_CUDA;
        bert_t pk = {0}, pd = {0};
        if (load_twins(&pk, &pd, &nopack, &lo) == 0) {
            size_t n = pk.num_parameters;
            float lk = 0, ld = 0;
            int ok = 1;
            bert_t *both[2] = {&pk, &pd};
            float *lp[2] = {&lk, &ld};
            for (int i = 0; i < 2; i++) {
                bert_set_training(both[i], 1);
                bert_zero_grad(both[i]);
                rng_stream(RNG_STREAM_DROPOUT)->offset = 4096;
                ok &= bert_forward(both[i], &in, lp[i]) == 0 && bert_backward(both[i], 1.0f) == 0;
            }
            double dl = 0, dg = 0, gmax = 0;
            for (int j = 0; j < 3 * pk.config.num_labels; j++)
                dl = fmax(dl, fabs((double)pk.acts.logits[j] - pd.acts.logits[j]));
            for (size_t j = 0; j < n; j++) {
                dg = fmax(dg, fabs((double)pk.grads_memory[j] - pd.grads_memory[j]));
                gmax = fmax(gmax, fabs((double)pd.grads_memory[j]));
            }
            CHECK(ok && pk.packed && !pd.packed && fabs((double)lk - ld) <= 1e-6 && dl <= 1e-5 &&
                      dg <= 1e-5 * gmax && gmax > 0,
                  "packed rows train as the padded batch: loss %.9g vs %.9g, logits within %.2g, "
                  "gradients within %.2g (largest %.3g)", lk, ld, dl, dg, gmax);
        }
        bert_free(&pk);
        bert_free(&pd);
    }

    /* the entries a backend may leave NULL (as the CUDA table does), all NULL on a copy of the CPU
     * table: the model's fallbacks (a call per packed row, the scratch gradients cleared and added
     * to, the weight gradients cleared by zero_grad, the kept-probability attention and the three
     * feed-forward calls in evaluation, AdamW and the norm over every row) give the CPU table's
     * bits: two training steps, the second a backward onto the first's gradients (no zero_grad),
     * then an evaluation */
    {
        bl_backend_t bare = *cpu;
        bare.adamw_step_rows = NULL;
        bare.sumsq_rows_f32 = NULL;
        bare.attention_forward_nokeep = NULL;
        bare.ffn_forward_nokeep = NULL;
        bare.attention_forward_rows = NULL;
        bare.attention_backward_rows = NULL;
        bare.dropout_forward_rows = NULL;
        bare.dropout_backward_rows = NULL;
        bare.linear_backward_to = NULL;
        bare.gelu_backward_set = NULL;
        bare.attention_backward_set = NULL;
        bare.attention_backward_rows_set = NULL;
        bare.layernorm_backward_set = NULL;
        bare.dropout_backward_set = NULL;
        bare.dropout_backward_rows_set = NULL;
        bare.attention_forward_cls = NULL;
        bare.attention_backward_cls = NULL;
        bare.residual_layernorm_forward = NULL;
        bare.qkv_forward_cls = NULL;
        bert_t fa = {0}, fb = {0};
        if (load_twins(&fa, &fb, &bare, &lo) == 0) {
            size_t n = fa.num_parameters;
            bert_t *both[2] = {&fa, &fb};
            float loss[2][3] = {{0}};
            int ok = 1;
            for (int i = 0; i < 2; i++) {
                bert_set_training(both[i], 1);
                ok &= bert_moments_reset(both[i]) == 0;
                rng_stream(RNG_STREAM_DROPOUT)->offset = 512;
                loss[i][0] = step_flat(both[i], &in, &cfg, 1);
                ok &= bert_forward(both[i], &in, &loss[i][1]) == 0 && bert_backward(both[i], 1.0f) == 0;
                ok &= bert_forward(both[i], &in, &loss[i][2]) == 0 && bert_backward(both[i], 1.0f) == 0;
                bert_grads_ready(both[i]);
            }
            int same_grads = !memcmp(fa.grads_memory, fb.grads_memory, n * sizeof(float));
            int same_params = !memcmp(fa.params_memory, fb.params_memory, n * sizeof(float));
            float la[3 * 8], lb[3 * 8];
            int L = fa.config.num_labels;
            bert_set_training(&fa, 0);
            bert_set_training(&fb, 0);
            ok &= L <= 8 && bert_forward(&fa, &ev, NULL) == 0;
            memcpy(la, fa.acts.logits, sizeof(float) * 3 * (size_t)L);
            ok &= bert_forward(&fb, &ev, NULL) == 0;
            memcpy(lb, fb.acts.logits, sizeof(float) * 3 * (size_t)L);
            CHECK(ok && fa.packed && fb.packed && !memcmp(loss[0], loss[1], sizeof loss[0]) && same_grads &&
                      same_params && !memcmp(la, lb, sizeof(float) * 3 * (size_t)L),
                  "the CPU table without its optional entries (the model's fallbacks) gives its bits: losses "
                  "(%.9g %.9g %.9g), parameters after a step, gradients of two backwards added, evaluation "
                  "logits (%s)", loss[1][0], loss[1][1], loss[1][2], ok ? "ran" : bl_errmsg());
        }
        bert_free(&fa);
        bert_free(&fb);
    }

    adamw_free(opt);
    free(p);
    free(g);
    free(numel);
    bert_free(&m);
    bert_free(&ref);
    tensor_free(ids);
    tensor_free(mask);
    tensor_free(labels);
    CT_DONE();
}
