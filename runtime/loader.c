/* loader.c: batch order and collation for bl.DataLoader. One memcpy per row and tensor: the batch
 * is assembled here rather than element by element in Lua. */
#include "loader.h"
#include "error.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t loader_num_batches(int64_t n, int64_t batch_size, int drop_last) {
    if (batch_size <= 0 || n <= 0) return 0;
    return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

void loader_order(int64_t *order, int64_t n, int shuffle) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    rng_t *r = rng_stream(RNG_STREAM_SAMPLER);
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j;
        if (i < (int64_t)UINT32_MAX) j = (int64_t)rng_below(r, (uint32_t)(i + 1));
        else j = (int64_t)((((uint64_t)rng_u32(r) << 32) | rng_u32(r)) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

int loader_weighted_order(int64_t *order, int64_t m, const double *weights, int64_t n) {
    if (n < 1) return bl_fail("weighted sampling needs at least one row");
    double *cum = malloc(sizeof(double) * (size_t)n);
    if (!cum) return bl_fail("out of memory");
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(weights[i]) || weights[i] < 0) {
            free(cum);
            return bl_fail("weight %lld is %g; sampling weights must be finite and >= 0", (long long)(i + 1),
                           weights[i]);
        }
        total += weights[i];
        cum[i] = total;
    }
    if (!(total > 0)) {
        free(cum);
        return bl_fail("every sampling weight is 0");
    }
    rng_t *r = rng_stream(RNG_STREAM_SAMPLER);
    for (int64_t k = 0; k < m; k++) {
        uint32_t a = rng_u32(r), b = rng_u32(r);
        double u = ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) / 9007199254740992.0; /* [0,1) */
        double t = u * total;
        int64_t lo = 0, hi = n - 1; /* the first row whose cumulative sum exceeds t */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cum[mid] > t) hi = mid;
            else lo = mid + 1;
        }
        order[k] = lo;
    }
    free(cum);
    return 0;
}

static const char *label(const char *const *names, int i, char *buf, size_t n) {
    if (names && names[i] && names[i][0]) snprintf(buf, n, "tensor %d ('%s')", i + 1, names[i]);
    else snprintf(buf, n, "tensor %d", i + 1);
    return buf;
}

int64_t loader_check_dataset(const tensor_t *const *ts, int nt, const char *const *names) {
    char a[160], b[160], sa[96], sb[96];
    if (nt < 1) return bl_fail("a dataset needs at least one tensor");
    for (int i = 0; i < nt; i++) {
        if (ts[i]->ndim < 1)
            return bl_fail("%s is a scalar; dataset tensors need a first dimension of rows",
                           label(names, i, a, sizeof a));
        if (ts[i]->device != DEV_CPU)
            return bl_fail("%s is on %s; datasets live on the CPU (move batches with :to)",
                           label(names, i, a, sizeof a), device_name(ts[i]->device));
        if (ts[i]->shape[0] != ts[0]->shape[0])
            return bl_fail("size mismatch between tensors: %s has %lld rows (shape %s) but %s has %lld (shape %s)",
                           label(names, i, a, sizeof a), (long long)ts[i]->shape[0],
                           tensor_shape_str(ts[i], sa, sizeof sa), label(names, 0, b, sizeof b),
                           (long long)ts[0]->shape[0], tensor_shape_str(ts[0], sb, sizeof sb));
    }
    return ts[0]->shape[0];
}

int64_t loader_longest(const tensor_t *mask, const int64_t *idx, int64_t B) {
    int64_t L = mask->shape[1], T = 1;
    for (int64_t b = 0; b < B; b++) {
        int64_t j = L - 1;
        if (mask->dtype == DT_I64) {
            const int64_t *row = (const int64_t *)mask->data + idx[b] * L;
            while (j >= T && row[j] == 0) j--;
        } else if (mask->dtype == DT_F32) {
            const float *row = (const float *)mask->data + idx[b] * L;
            while (j >= T && row[j] == 0) j--;
        } else {
            while (j >= T && tensor_get(mask, idx[b] * L + j) == 0) j--;
        }
        if (j + 1 > T) T = j + 1;
    }
    return T;
}

int loader_collate(const tensor_t *const *ts, int nt, const int64_t *idx, int64_t B, int mask, tensor_t **out) {
    for (int i = 0; i < nt; i++) out[i] = NULL;
    int64_t N = ts[0]->shape[0];
    for (int64_t b = 0; b < B; b++)
        if (idx[b] < 0 || idx[b] >= N) return bl_fail("batch row %lld out of range [0, %lld)", (long long)idx[b], (long long)N);
    int64_t L = -1, T = -1;
    if (mask >= 0) {
        if (mask >= nt || ts[mask]->ndim != 2) return bl_fail("mask tensor %d must be 2-D [N, L]", mask + 1);
        L = ts[mask]->shape[1];
        T = loader_longest(ts[mask], idx, B);
    }
    for (int i = 0; i < nt; i++) {
        const tensor_t *t = ts[i];
        int64_t shape[TENSOR_MAXDIM];
        memcpy(shape, t->shape, sizeof shape);
        int64_t row = t->shape[0] ? t->numel / t->shape[0] : 0; /* elements per row */
        int64_t keep = row;                                    /* elements copied per row */
        shape[0] = B;
        if (mask >= 0 && t->ndim == 2 && t->shape[1] == L) {
            shape[1] = T;
            keep = T;
        }
        out[i] = tensor_new(t->dtype, t->ndim, shape);
        if (!out[i]) {
            for (int k = 0; k < i; k++) { tensor_free(out[k]); out[k] = NULL; }
            return -1;
        }
        size_t es = dtype_size(t->dtype);
        const char *src = t->data;
        char *dst = out[i]->data;
        for (int64_t b = 0; b < B; b++)
            memcpy(dst + (size_t)(b * keep) * es, src + (size_t)(idx[b] * row) * es, (size_t)keep * es);
    }
    return 0;
}
