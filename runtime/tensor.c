/* tensor.c: allocation (through the device's backend), copies between devices, element access, a
 * few whole-tensor operations and PyTorch-style printing. The math goes through the backend's
 * table; this file decides shapes and owns memory. */
#include "tensor.h"
#include "device.h"
#include "error.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dtype_size(dtype_t dt) {
    switch (dt) {
    case DT_F32: return 4;
    case DT_I64: return 8;
    case DT_BF16: return 2;
    }
    return 0;
}

const char *dtype_name(dtype_t dt) {
    switch (dt) {
    case DT_F32: return "float32";
    case DT_I64: return "int64";
    case DT_BF16: return "bfloat16";
    }
    return "?";
}

int dtype_from_name(const char *name, dtype_t *out) {
    if (!strcmp(name, "float32") || !strcmp(name, "float")) { *out = DT_F32; return 0; }
    if (!strcmp(name, "int64") || !strcmp(name, "long")) { *out = DT_I64; return 0; }
    if (!strcmp(name, "bfloat16")) { *out = DT_BF16; return 0; }
    return bl_fail("unknown dtype '%s' (expected float32 or int64)", name);
}

const char *device_name(device_t d) { return d == DEV_CUDA ? "cuda" : "cpu"; }

static int check_shape(int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > TENSOR_MAXDIM)
        return bl_fail("tensor rank %d out of range 0..%d", ndim, TENSOR_MAXDIM);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return bl_fail("negative size %lld in dimension %d", (long long)shape[i], i + 1);
        if (shape[i] > 0 && n > INT64_MAX / 16 / shape[i]) return bl_fail("tensor too large");
        n *= shape[i];
    }
    *numel = n;
    return 0;
}

static tensor_t *tensor_header(dtype_t dt, int ndim, const int64_t *shape) {
    int64_t n = 0;
    if (check_shape(ndim, shape, &n)) return NULL;
    tensor_t *t = calloc(1, sizeof *t);
    if (!t) { bl_fail("out of memory"); return NULL; }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = n;
    t->dtype = dt;
    t->device = DEV_CPU;
    return t;
}

tensor_t *tensor_new_on(device_t device, dtype_t dt, int ndim, const int64_t *shape) {
    const bl_backend_t *be = device_backend(device);
    if (!be) return NULL;
    tensor_t *t = tensor_header(dt, ndim, shape);
    if (!t) return NULL;
    t->device = device;
    size_t bytes = (size_t)t->numel * dtype_size(dt);
    t->data = be->alloc(bytes ? bytes : 1);
    if (!t->data) {
        const char *e = be->error();
        free(t);
        bl_fail("out of memory allocating %zu bytes on %s%s%s", bytes, be->name, e ? ": " : "", e ? e : "");
        return NULL;
    }
    be->memzero(t->data, bytes);
    t->owns_data = 1;
    return t;
}

tensor_t *tensor_new(dtype_t dt, int ndim, const int64_t *shape) { return tensor_new_on(DEV_CPU, dt, ndim, shape); }

tensor_t *tensor_view_on(device_t device, dtype_t dt, int ndim, const int64_t *shape, void *data) {
    tensor_t *t = tensor_header(dt, ndim, shape);
    if (!t) return NULL;
    t->device = device;
    t->data = data;
    t->owns_data = 0;
    return t;
}

tensor_t *tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data) {
    return tensor_view_on(DEV_CPU, dt, ndim, shape, data);
}

tensor_t *tensor_clone(const tensor_t *src) {
    tensor_t *t = tensor_new_on(src->device, src->dtype, src->ndim, src->shape);
    if (t) device_backend(src->device)->copy_on_device(t->data, src->data, (size_t)src->numel * dtype_size(src->dtype));
    return t;
}

tensor_t *tensor_to(const tensor_t *src, device_t device) {
    if (src->device == device) return tensor_clone(src);
    tensor_t *t = tensor_new_on(device, src->dtype, src->ndim, src->shape);
    if (!t) return NULL;
    size_t bytes = (size_t)src->numel * dtype_size(src->dtype);
    if (src->device == DEV_CPU) {
        device_backend(device)->copy_to_device(t->data, src->data, bytes);
    } else if (device == DEV_CPU) {
        device_backend(src->device)->copy_to_host(t->data, src->data, bytes);
    } else {
        tensor_t *h = tensor_to(src, DEV_CPU);
        if (!h) { tensor_free(t); return NULL; }
        device_backend(device)->copy_to_device(t->data, h->data, bytes);
        tensor_free(h);
    }
    const char *e = device_backend(src->device)->error();
    if (!e) e = device_backend(device)->error();
    if (e) {
        tensor_free(t);
        bl_fail("to(%s): %s", device_label(device), e);
        return NULL;
    }
    return t;
}

tensor_t *tensor_on_host(const tensor_t *t) {
    return t->device == DEV_CPU ? (tensor_t *)t : tensor_to(t, DEV_CPU);
}

void tensor_release(tensor_t *t) {
    if (!t) return;
    if (t->owns_data && t->data) {
        const bl_backend_t *be = bl_backend_for(t->device);
        if (be) be->free(t->data);
    }
    t->data = NULL;
    t->owns_data = 0;
    t->numel = 0;
    t->ndim = 1;
    t->shape[0] = 0;
}

void tensor_free(tensor_t *t) {
    if (!t) return;
    tensor_release(t);
    free(t);
}

char *shape_format(char *buf, size_t n, int ndim, const int64_t *shape, int compact) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%lld", i ? (compact ? "," : ", ") : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

char *tensor_shape_str(const tensor_t *t, char *buf, size_t n) { return shape_format(buf, n, t->ndim, t->shape, 0); }

int tensor_same_shape(const tensor_t *a, const tensor_t *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

double tensor_get(const tensor_t *t, int64_t i) {
    switch (t->dtype) {
    case DT_F32: return ((const float *)t->data)[i];
    case DT_I64: return (double)((const int64_t *)t->data)[i];
    case DT_BF16: return bf16_to_f32(((const uint16_t *)t->data)[i]);
    }
    return 0;
}

void tensor_set(tensor_t *t, int64_t i, double v) {
    switch (t->dtype) {
    case DT_F32: ((float *)t->data)[i] = (float)v; break;
    case DT_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case DT_BF16: {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, 4);
        u += 0x7FFF + ((u >> 16) & 1); /* round to nearest even */
        ((uint16_t *)t->data)[i] = (uint16_t)(u >> 16);
        break;
    }
    }
}

static tensor_t *binary_op(const tensor_t *a, const tensor_t *b, int mul) {
    char sa[128], sb[128];
    if (a->dtype != b->dtype)
        return bl_fail("dtype mismatch: %s and %s", dtype_name(a->dtype), dtype_name(b->dtype)), NULL;
    int scalar = b->numel == 1 && !tensor_same_shape(a, b);
    if (!scalar && !tensor_same_shape(a, b))
        return bl_fail("shape mismatch: %s and %s", tensor_shape_str(a, sa, sizeof sa),
                       tensor_shape_str(b, sb, sizeof sb)), NULL;
    if (a->dtype == DT_BF16) return bl_fail("bfloat16 arithmetic is only available on the GPU"), NULL;
    if (a->device != b->device)
        return bl_fail("device mismatch: %s and %s (copy one with t:to())", device_label(a->device),
                       device_label(b->device)), NULL;
    tensor_t *out = tensor_new_on(a->device, a->dtype, a->ndim, a->shape);
    if (!out) return NULL;
    const bl_backend_t *be = device_backend(a->device);
    if (a->dtype == DT_F32)
        (mul ? be->mul_f32 : be->add_f32)(out->data, a->data, b->data, (size_t)a->numel, scalar);
    else
        (mul ? be->mul_i64 : be->add_i64)(out->data, a->data, b->data, (size_t)a->numel, scalar);
    return out;
}

tensor_t *tensor_add(const tensor_t *a, const tensor_t *b) { return binary_op(a, b, 0); }
tensor_t *tensor_mul(const tensor_t *a, const tensor_t *b) { return binary_op(a, b, 1); }

tensor_t *tensor_index_rows(const tensor_t *t, const int64_t *idx, int64_t n) {
    if (t->ndim < 1) return bl_fail("cannot index rows of a 0-dimensional tensor"), NULL;
    int64_t shape[TENSOR_MAXDIM];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = n;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= t->shape[0])
            return bl_fail("index %lld out of range for dimension 1 of size %lld", (long long)idx[i] + 1,
                           (long long)t->shape[0]), NULL;
    tensor_t *out = tensor_new_on(t->device, t->dtype, t->ndim, shape);
    if (!out) return NULL;
    size_t row = dtype_size(t->dtype);
    for (int d = 1; d < t->ndim; d++) row *= (size_t)t->shape[d];
    const bl_backend_t *be = device_backend(t->device);
    for (int64_t i = 0; i < n; i++)
        be->copy_on_device((char *)out->data + i * row, (const char *)t->data + idx[i] * row, row);
    return out;
}

static tensor_t *argmax_host(const tensor_t *t, int dim);

tensor_t *tensor_argmax(const tensor_t *t, int dim) {
    if (t->device == DEV_CPU) return argmax_host(t, dim);
    tensor_t *h = tensor_on_host(t); /* a device tensor: copied to the host first */
    if (!h) return NULL;
    tensor_t *r = argmax_host(h, dim);
    tensor_free(h);
    return r;
}

static tensor_t *argmax_host(const tensor_t *t, int dim) {
    if (t->ndim == 0) return bl_fail("argmax of a 0-dimensional tensor"), NULL;
    if (dim < 0 || dim >= t->ndim)
        return bl_fail("dimension %d out of range 1..%d", dim + 1, t->ndim), NULL;
    if (t->shape[dim] == 0) return bl_fail("argmax over an empty dimension"), NULL;
    int64_t outer = 1, inner = 1, n = t->shape[dim];
    for (int d = 0; d < dim; d++) outer *= t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) inner *= t->shape[d];
    int64_t shape[TENSOR_MAXDIM] = {0};
    int k = 0;
    for (int d = 0; d < t->ndim; d++)
        if (d != dim) shape[k++] = t->shape[d];
    tensor_t *out = tensor_new(DT_I64, k, shape);
    if (!out) return NULL;
    int64_t *o = out->data;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            int64_t best = 0;
            double bv = tensor_get(t, a * n * inner + b);
            for (int64_t i = 1; i < n; i++) {
                double v = tensor_get(t, (a * n + i) * inner + b);
                if (v > bv || (isnan(v) && !isnan(bv))) { bv = v; best = i; }
            }
            o[a * inner + b] = best;
        }
    return out;
}

tensor_t *tensor_arange(dtype_t dt, double start, double stop, double step) {
    if (step == 0) return bl_fail("arange step must be non-zero"), NULL;
    double span = (stop - start) / step;
    int64_t n = span > 0 ? (int64_t)ceil(span) : 0;
    tensor_t *t = tensor_new(dt, 1, &n);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) tensor_set(t, i, start + step * (double)i);
    return t;
}

tensor_t *tensor_randn(int ndim, const int64_t *shape) {
    tensor_t *t = tensor_new(DT_F32, ndim, shape);
    if (!t) return NULL;
    rng_t *r = rng_stream(RNG_STREAM_RANDN);
    float *d = t->data;
    for (int64_t i = 0; i < t->numel; i++) d[i] = rng_normal(r);
    return t;
}

/* ---- printing -------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void sb_put(sbuf_t *s, const char *str) {
    size_t n = strlen(str);
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->cap ? s->cap * 2 : 256);
        while (cap < s->len + n + 1) cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) return;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, str, n + 1);
    s->len += n;
}

typedef struct {
    int is_int; /* int64 dtype */
    int int_mode; /* all finite floats are whole numbers: "1." */
    int sci;
    int precision;
    int width;
} fmt_t;

static void fmt_value(const fmt_t *f, double v, char *out, size_t n) {
    char tmp[64];
    if (f->is_int) snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    else if (isnan(v)) snprintf(tmp, sizeof tmp, "nan");
    else if (isinf(v)) snprintf(tmp, sizeof tmp, v > 0 ? "inf" : "-inf");
    else if (f->sci) snprintf(tmp, sizeof tmp, "%.*e", f->precision, v);
    else if (f->int_mode) snprintf(tmp, sizeof tmp, "%.0f.", v);
    else snprintf(tmp, sizeof tmp, "%.*f", f->precision, v);
    snprintf(out, n, "%*s", f->width, tmp);
}

static void format_rec(sbuf_t *s, const tensor_t *t, const fmt_t *f, int dim, int64_t off, int indent,
                       int summarize) {
    char v[80];
    int64_t n = t->shape[dim], stride = 1;
    for (int d = dim + 1; d < t->ndim; d++) stride *= t->shape[d];
    sb_put(s, "[");
    for (int64_t i = 0; i < n; i++) {
        if (summarize && n > 6 && i == 3) {
            /* PyTorch shows 3 elements at each end of a dimension when the tensor is large */
            sb_put(s, "...");
            i = n - 3;
            if (dim == t->ndim - 1) sb_put(s, ", ");
            else {
                sb_put(s, ",\n");
                for (int k = 0; k < t->ndim - 1 - dim; k++) sb_put(s, "\n");
                for (int k = 0; k < indent + 1; k++) sb_put(s, " ");
            }
        }
        if (dim == t->ndim - 1) {
            fmt_value(f, tensor_get(t, off + i), v, sizeof v);
            sb_put(s, v);
        } else {
            format_rec(s, t, f, dim + 1, off + i * stride, indent + 1, summarize);
        }
        if (i < n - 1) {
            if (dim == t->ndim - 1) sb_put(s, ", ");
            else {
                sb_put(s, ",");
                for (int k = 0; k < t->ndim - 1 - dim; k++) sb_put(s, "\n");
                for (int k = 0; k < indent + 1; k++) sb_put(s, " ");
            }
        }
    }
    sb_put(s, "]");
}

static char *format_host(const tensor_t *t, device_t device);

char *tensor_format(const tensor_t *t) {
    if (t->device == DEV_CPU) return format_host(t, DEV_CPU);
    tensor_t *h = tensor_on_host(t); /* a device tensor: copied to the host first */
    if (!h) return NULL;
    char *s = format_host(h, t->device);
    tensor_free(h);
    return s;
}

static char *format_host(const tensor_t *t, device_t device) {
    sbuf_t s = {0};
    fmt_t f = {.is_int = t->dtype == DT_I64, .precision = 4};
    int summarize = t->numel > 1000;
    double maxabs = 0, minabs = INFINITY;
    int all_int = 1, any_finite = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tensor_get(t, i);
        if (!isfinite(v)) continue;
        any_finite = 1;
        double a = fabs(v);
        if (a > maxabs) maxabs = a;
        if (a != 0 && a < minabs) minabs = a;
        if (v != floor(v)) all_int = 0;
    }
    if (!f.is_int && any_finite) {
        if (all_int) {
            f.int_mode = 1;
            if (maxabs > 1e8) { f.int_mode = 0; f.sci = 1; }
        } else if (maxabs > 1e8 || (minabs < 1e-4) || (minabs != INFINITY && maxabs / minabs > 1000)) {
            f.sci = 1;
        }
    }
    char v[80];
    int width = 1;
    for (int64_t i = 0; i < t->numel; i++) {
        f.width = 0;
        fmt_value(&f, tensor_get(t, i), v, sizeof v);
        int w = (int)strlen(v);
        if (w > width) width = w;
    }
    f.width = width;
    sb_put(&s, "tensor(");
    if (t->ndim == 0) {
        f.width = 0;
        fmt_value(&f, tensor_get(t, 0), v, sizeof v);
        sb_put(&s, v);
    } else if (t->numel == 0) {
        sb_put(&s, "[]");
    } else {
        format_rec(&s, t, &f, 0, 0, 7, summarize);
    }
    if (t->dtype == DT_BF16) sb_put(&s, ", dtype=torch.bfloat16");
    if (t->numel == 0 && t->dtype == DT_I64) sb_put(&s, ", dtype=torch.int64");
    if (t->numel == 0 && t->ndim > 1) {
        char sh[128];
        tensor_shape_str(t, sh, sizeof sh);
        sb_put(&s, ", size=(");
        /* PyTorch prints size=(0, 3) */
        for (char *p = sh + 1; *p && *p != ']'; p++) {
            char c[2] = {*p, 0};
            sb_put(&s, c);
        }
        sb_put(&s, ")");
    }
    if (device == DEV_CUDA) sb_put(&s, ", device='cuda:0'");
    sb_put(&s, ")");
    return s.buf;
}
