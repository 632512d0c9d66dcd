/* safetensors.c: Hugging Face's safetensors checkpoint format, read and written without trusting a
 * byte before the header has been validated the way the reference crate (safetensors/src/tensor.rs)
 * does. Layout: u64 little-endian header length N, N bytes of JSON, then the data section. */
#include "safetensors.h"
#include "error.h"
#include "fileio.h"
#include "tensor.h"
#include "utf8.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER 100000000ULL /* the reference's MAX_HEADER_SIZE */

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static int st_dtype_parse(const char *s, st_dtype_t *out) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = (st_dtype_t)i;
            return 0;
        }
    return -1;
}

static int st_is_float(st_dtype_t d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }

/* IEEE half -> float, exact for every value (subnormals, infinities, NaN payloads). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* ---------------------------------------------------------------- reading */



static int cmp_entry_offsets(const void *a, const void *b) {
    const st_entry_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON integer that fits a non-negative size (JSON reals, negatives, strings are refused). */
static int json_size(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

/* Parses one tensor's entry {"dtype", "shape", "data_offsets"} into e (name already set). */
static int parse_entry(const char *path, const char *name, json_t *obj, st_entry_t *e) {
    if (!json_is_object(obj))
        return bl_fail("%s: tensor '%s': entry is not a JSON object", path, name);
    json_t *jd = json_object_get(obj, "dtype"), *js = json_object_get(obj, "shape"),
           *jo = json_object_get(obj, "data_offsets");
    if (!jd) return bl_fail("%s: tensor '%s': missing \"dtype\"", path, name);
    if (!js) return bl_fail("%s: tensor '%s': missing \"shape\"", path, name);
    if (!jo) return bl_fail("%s: tensor '%s': missing \"data_offsets\"", path, name);
    if (!json_is_string(jd)) return bl_fail("%s: tensor '%s': \"dtype\" is not a string", path, name);
    if (st_dtype_parse(json_string_value(jd), &e->dtype) != 0)
        return bl_fail("%s: tensor '%s' has unknown dtype '%s' (supported: F32 F16 BF16 F64 I64 I32 I16 I8 "
                       "U8 BOOL)", path, name, json_string_value(jd));
    if (!json_is_array(js)) return bl_fail("%s: tensor '%s': \"shape\" is not an array", path, name);
    size_t nd = json_array_size(js);
    if (nd > TENSOR_MAXDIM)
        return bl_fail("%s: tensor '%s' has %zu dimensions (at most %d supported)", path, name, nd,
                       TENSOR_MAXDIM);
    e->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        json_t *v = json_array_get(js, i);
        if (json_size(v, &d) != 0 || d > (uint64_t)INT64_MAX)
            return bl_fail("%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        e->shape[i] = (int64_t)d;
    }
    uint64_t b, en;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_size(json_array_get(jo, 0), &b) != 0 ||
        json_size(json_array_get(jo, 1), &en) != 0)
        return bl_fail("%s: tensor '%s': \"data_offsets\" must be [begin, end] of non-negative integers",
                       path, name);
    e->begin = (size_t)b;
    e->end = (size_t)en;
    return 0;
}

/* The header checks that need every entry: sizes, contiguous ranges from 0, end of file. */
static int validate_layout(const char *path, st_entry_t *es, int n, size_t data_size) {
    qsort(es, (size_t)n, sizeof *es, cmp_entry_offsets);
    size_t start = 0;
    for (int i = 0; i < n; i++) {
        st_entry_t *e = &es[i];
        if (e->end < e->begin)
            return bl_fail("%s: tensor '%s' has data_offsets [%zu,%zu] that end before they begin", path,
                           e->name, e->begin, e->end);
        if (e->begin != start) {
            if (i == 0)
                return bl_fail("%s: tensor '%s' starts at byte %zu; the data must start at 0", path, e->name,
                               e->begin);
            if (e->begin > start)
                return bl_fail("%s: gap in the data: tensor '%s' starts at byte %zu, the previous ('%s') "
                               "ends at %zu", path, e->name, e->begin, es[i - 1].name, start);
            return bl_fail("%s: tensors '%s' and '%s' overlap (byte %zu, previous ends at %zu)", path,
                           es[i - 1].name, e->name, e->begin, start);
        }
        uint64_t numel = 1;
        int overflow = 0;
        for (int d = 0; d < e->ndim; d++) {
            uint64_t s = (uint64_t)e->shape[d];
            if (s && numel > UINT64_MAX / s) overflow = 1;
            numel *= s;
        }
        uint64_t esz = st_dtypes[e->dtype].size;
        if (overflow || (numel && numel > UINT64_MAX / esz))
            return bl_fail("%s: tensor '%s': shape too large", path, e->name);
        uint64_t need = numel * esz;
        if (need != (uint64_t)(e->end - e->begin)) {
            char sh[256];
            shape_format(sh, sizeof sh, e->ndim, e->shape, 1);
            return bl_fail("%s: tensor '%s' has %zu bytes, shape %s of %s needs %llu", path, e->name,
                           e->end - e->begin, sh, st_dtypes[e->dtype].name, (unsigned long long)need);
        }
        start = e->end;
    }
    if (start != data_size) {
        if (start > data_size)
            return bl_fail("%s: the header describes %zu bytes of data but the file has %zu (truncated?)",
                           path, start, data_size);
        return bl_fail("%s: %zu trailing bytes after the last tensor (data ends at %zu, file has %zu)",
                       path, data_size - start, start, data_size);
    }
    return 0;
}

/* Parses and validates the header text (n bytes) into st; data_size is what the file holds after it. */
static int parse_header(safetensors_t *st, const char *path, const char *text, size_t n, size_t data_size) {
    long bad = (long)utf8_invalid_at(text, n);
    if (bad >= 0) return bl_fail("%s: header is not valid UTF-8 (byte %ld of the header)", path, bad);
    json_error_t jerr;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (strstr(jerr.text, "duplicate object key")) /* "duplicate object key near '"name"'" */
            return bl_fail("%s: a tensor name appears twice in the header (%s)", path, jerr.text);
        return bl_fail("%s: header is not valid JSON: %s (header column %d)", path, jerr.text, jerr.column);
    }
    int rc = -1;
    if (!json_is_object(root)) {
        bl_fail("%s: header is not a JSON object", path);
        goto done;
    }
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta)) {
            bl_fail("%s: \"__metadata__\" is not an object of strings", path);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v) if (!json_is_string(v)) {
            bl_fail("%s: \"__metadata__\" value for '%s' is not a string", path, k);
            goto done;
        }
        st->metadata_json = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!st->metadata_json) {
            bl_fail("%s: out of memory", path);
            goto done;
        }
    }
    size_t count = json_object_size(root) - (meta ? 1 : 0);
    st->entries = calloc(count ? count : 1, sizeof *st->entries);
    if (!st->entries) {
        bl_fail("%s: out of memory", path);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        st_entry_t *e = &st->entries[st->n];
        e->name = strdup(key);
        if (!e->name) {
            bl_fail("%s: out of memory", path);
            goto done;
        }
        st->n++;
        if (parse_entry(path, key, val, e) != 0) goto done;
    }
    rc = validate_layout(path, st->entries, st->n, data_size);
done:
    json_decref(root);
    return rc;
}

int safetensors_open(safetensors_t *st, const char *path) {
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f) return bl_fail("%s: cannot open (%s)", path, strerror(errno));
    char *hdr = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        bl_fail("%s: not a regular file", path);
        goto fail;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char lenb[8];
    if (fsize < 8 || fread(lenb, 1, 8, f) != 8) {
        bl_fail("%s: file too small for a safetensors header (%llu bytes, need at least 8)", path,
                (unsigned long long)fsize);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
    if (n > ST_MAX_HEADER) {
        bl_fail("%s: header length %llu is larger than the limit of %llu bytes", path, (unsigned long long)n,
                ST_MAX_HEADER);
        goto fail;
    }
    if (8 + n > fsize) {
        bl_fail("%s: header length %llu goes beyond the end of the file (%llu bytes)", path,
                (unsigned long long)n, (unsigned long long)fsize);
        goto fail;
    }
    hdr = malloc(n + 1);
    if (!hdr || fread(hdr, 1, n, f) != n) {
        bl_fail("%s: cannot read the %llu-byte header", path, (unsigned long long)n);
        goto fail;
    }
    hdr[n] = '\0';
    st->data_size = (size_t)(fsize - 8 - n);
    if (parse_header(st, path, hdr, (size_t)n, st->data_size) != 0) goto fail;
    free(hdr);
    hdr = NULL;
    st->path = strdup(path);
    st->data = malloc(st->data_size ? st->data_size : 1);
    if (!st->path || !st->data) {
        bl_fail("%s: out of memory for %zu bytes of data", path, st->data_size);
        goto fail;
    }
    if (st->data_size && fread(st->data, 1, st->data_size, f) != st->data_size) {
        bl_fail("%s: read error in the data section", path);
        goto fail;
    }
    fclose(f);
    return 0;
fail:
    free(hdr);
    fclose(f);
    safetensors_close(st);
    return -1;
}

const st_entry_t *safetensors_find(const safetensors_t *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

static int64_t entry_numel(const st_entry_t *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

int safetensors_read_f32(const safetensors_t *st, const st_entry_t *e, float *dst) {
    const unsigned char *src = st->data + e->begin;
    int64_t n = entry_numel(e);
    switch (e->dtype) {
    case ST_F32:
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = e->dtype == ST_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return bl_fail("%s: tensor '%s' is %s, not a floating-point dtype", st->path ? st->path : "safetensors",
                       e->name, st_dtypes[e->dtype].name);
    }
}

tensor_t *safetensors_read_tensor(const safetensors_t *st, const st_entry_t *e) {
    tensor_t *t = tensor_new(st_is_float(e->dtype) ? DT_F32 : DT_I64, e->ndim, e->shape);
    if (!t) {
        bl_fail_prefix("%s: tensor '%s': ", st->path ? st->path : "safetensors", e->name);
        return NULL;
    }
    if (st_is_float(e->dtype)) {
        if (safetensors_read_f32(st, e, t->data) != 0) {
            tensor_free(t);
            return NULL;
        }
        return t;
    }
    const unsigned char *src = st->data + e->begin;
    int64_t *dst = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        switch (e->dtype) {
        case ST_I64: memcpy(&dst[i], src + 8 * i, 8); break;
        case ST_I32: { int32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = v; break; }
        case ST_I16: { int16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = v; break; }
        case ST_I8: dst[i] = (int8_t)src[i]; break;
        case ST_U8: dst[i] = src[i]; break;
        case ST_BOOL: dst[i] = src[i] != 0; break;
        default: break;
        }
    }
    return t;
}

void safetensors_close(safetensors_t *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->entries[i].name);
    free(st->entries);
    free(st->metadata_json);
    free(st->data);
    free(st->path);
    memset(st, 0, sizeof *st);
}

/* ---------------------------------------------------------------- writing */

/* The reference orders tensors by dtype, larger alignment first (I64 before F32), then by name. */
static int cmp_write(const void *a, const void *b) {
    const st_write_t *x = *(const st_write_t *const *)a, *y = *(const st_write_t *const *)b;
    if (x->dtype != y->dtype) return x->dtype == DT_I64 ? -1 : 1;
    return strcmp(x->name, y->name);
}

static size_t write_nbytes(const st_write_t *w) {
    size_t n = dtype_size(w->dtype);
    for (int d = 0; d < w->ndim; d++) n *= (size_t)w->shape[d];
    return n;
}

int safetensors_save(const char *path, const st_write_t *tensors, int n, const char *metadata_json) {
    const st_write_t **order = calloc(n > 0 ? (size_t)n : 1, sizeof *order);
    json_t *root = json_object(), *meta = NULL;
    char *hdr = NULL;
    int rc = -1;
    if (!order || !root) {
        bl_fail("%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const st_write_t *w = &tensors[i];
        if (!w->name || !*w->name || strcmp(w->name, "__metadata__") == 0) {
            bl_fail("%s: tensor %d has an invalid name '%s'", path, i + 1, w->name ? w->name : "(null)");
            goto done;
        }
        if (w->dtype != DT_F32 && w->dtype != DT_I64) {
            bl_fail("%s: tensor '%s': only float32 and int64 tensors can be saved", path, w->name);
            goto done;
        }
        if (w->ndim < 0 || w->ndim > TENSOR_MAXDIM) {
            bl_fail("%s: tensor '%s': bad number of dimensions %d", path, w->name, w->ndim);
            goto done;
        }
        for (int d = 0; d < w->ndim; d++)
            if (w->shape[d] < 0) {
                bl_fail("%s: tensor '%s': negative dimension %lld", path, w->name, (long long)w->shape[d]);
                goto done;
            }
        if (w->nspans > 0) {
            size_t sum = 0;
            for (int j = 0; j < w->nspans; j++) {
                if (!w->spans[j].data && w->spans[j].bytes > 0) {
                    bl_fail("%s: tensor '%s' has no data (piece %d)", path, w->name, j + 1);
                    goto done;
                }
                sum += w->spans[j].bytes;
            }
            if (sum != write_nbytes(w)) {
                bl_fail("%s: tensor '%s': its pieces hold %zu bytes, its shape %zu", path, w->name, sum,
                        write_nbytes(w));
                goto done;
            }
        } else if (!w->data && write_nbytes(w) > 0) {
            bl_fail("%s: tensor '%s' has no data", path, w->name);
            goto done;
        }
        order[i] = w;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_write);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            bl_fail("%s: tensor name '%s' appears twice", path, order[i]->name);
            goto done;
        }
    if (metadata_json) {
        json_error_t jerr;
        meta = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &jerr);
        const char *k;
        json_t *v;
        if (!meta || !json_is_object(meta)) {
            bl_fail("%s: metadata must be a JSON object of strings", path);
            goto done;
        }
        json_object_foreach(meta, k, v) if (!json_is_string(v)) {
            bl_fail("%s: metadata value for '%s' is not a string", path, k);
            goto done;
        }
        json_object_set(root, "__metadata__", meta);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_write_t *w = order[i];
        json_t *shape = json_array(), *ent = json_object();
        for (int d = 0; d < w->ndim; d++) json_array_append_new(shape, json_integer(w->shape[d]));
        size_t nb = write_nbytes(w);
        json_object_set_new(ent, "dtype", json_string(w->dtype == DT_I64 ? "I64" : "F32"));
        json_object_set_new(ent, "shape", shape);
        json_object_set_new(ent, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + nb)));
        if (json_object_set_new(root, w->name, ent) != 0) {
            bl_fail("%s: tensor name '%s' is not valid UTF-8", path, w->name);
            goto done;
        }
        off += nb;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        bl_fail("%s: cannot encode the header", path);
        goto done;
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    atomic_file_t af;
    if (atomic_open(&af, path) != 0) goto done;
    int ok = fwrite(lenb, 1, 8, af.f) == 8 && fwrite(hdr, 1, hlen, af.f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', af.f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        const st_write_t *w = order[i];
        if (w->nspans > 0) {
            for (int j = 0; ok && j < w->nspans; j++)
                ok = w->spans[j].bytes == 0 || fwrite(w->spans[j].data, 1, w->spans[j].bytes, af.f) == w->spans[j].bytes;
        } else {
            size_t nb = write_nbytes(w);
            ok = nb == 0 || fwrite(w->data, 1, nb, af.f) == nb;
        }
    }
    if (!ok) {
        bl_fail("%s: write failed (%s)", path, strerror(errno));
        atomic_abort(&af);
        goto done;
    }
    rc = atomic_commit(&af);
done:
    free(hdr);
    json_decref(meta);
    json_decref(root);
    free(order);
    return rc;
}
