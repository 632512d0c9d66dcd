/* split.c: train_test_split as scikit-learn 1.x computes it on NumPy's legacy RandomState, so a Lua
 * experiment gets the very rows the Python tutorial trains and validates on. */
#include "split.h"
#include "error.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MT19937 as numpy/random/src/mt19937 (legacy seeding) --------------------------------------- */

#define MT_N 624
#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void randomstate_seed(randomstate_t *rs, uint32_t seed) {
    for (int i = 0; i < MT_N; i++) {
        rs->key[i] = seed;
        seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1u;
    }
    rs->pos = MT_N;
}

static void mt_refill(randomstate_t *rs) {
    uint32_t *k = rs->key, y;
    int i;
    for (i = 0; i < MT_N - MT_M; i++) {
        y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
        k[i] = k[i + MT_M] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
    }
    for (; i < MT_N - 1; i++) {
        y = (k[i] & MT_UPPER) | (k[i + 1] & MT_LOWER);
        k[i] = k[i + (MT_M - MT_N)] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
    }
    y = (k[MT_N - 1] & MT_UPPER) | (k[0] & MT_LOWER);
    k[MT_N - 1] = k[MT_M - 1] ^ (y >> 1) ^ (-(y & 1u) & MT_MATRIX_A);
    rs->pos = 0;
}

uint32_t randomstate_u32(randomstate_t *rs) {
    if (rs->pos >= MT_N) mt_refill(rs);
    uint32_t y = rs->key[rs->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t randomstate_u64(randomstate_t *rs) {
    uint64_t hi = randomstate_u32(rs);
    uint64_t lo = randomstate_u32(rs);
    return hi << 32 | lo;
}

double randomstate_double(randomstate_t *rs) {
    uint32_t a = randomstate_u32(rs) >> 5, b = randomstate_u32(rs) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

/* Smallest all-ones mask covering max. */
static uint64_t mask_for(uint64_t max) {
    uint64_t m = max;
    m |= m >> 1; m |= m >> 2; m |= m >> 4; m |= m >> 8; m |= m >> 16; m |= m >> 32;
    return m;
}

uint64_t randomstate_interval(randomstate_t *rs, uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = mask_for(max), v;
    if (max <= 0xffffffffu) {
        while ((v = (randomstate_u32(rs) & mask)) > max) {}
    } else {
        while ((v = (randomstate_u64(rs) & mask)) > max) {}
    }
    return v;
}

/* numpy's random_bounded_uint64_fill with use_masked=1, for one value of the inclusive range rng. */
static uint64_t bounded_masked(randomstate_t *rs, uint64_t rng) {
    if (rng == 0) return 0;
    if (rng == 0xffffffffu) return randomstate_u32(rs);
    if (rng == UINT64_MAX) return randomstate_u64(rs);
    uint64_t mask = mask_for(rng), v;
    if (rng < 0xffffffffu) {
        while ((v = (randomstate_u32(rs) & (uint32_t)mask)) > rng) {}
    } else {
        while ((v = (randomstate_u64(rs) & mask)) > rng) {}
    }
    return v;
}

int64_t randomstate_randint(randomstate_t *rs, int64_t low, int64_t high) {
    uint64_t rng = (uint64_t)high - 1u - (uint64_t)low;
    return (int64_t)((uint64_t)low + bounded_masked(rs, rng));
}

void randomstate_shuffle(randomstate_t *rs, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)randomstate_interval(rs, (uint64_t)i);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void randomstate_permutation(randomstate_t *rs, int64_t n, int64_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = i;
    randomstate_shuffle(rs, out, n);
}

int randomstate_choice(randomstate_t *rs, int64_t pop, int64_t size, int replace, int64_t *out) {
    if (pop <= 0) return bl_fail("choice: a must be a positive integer unless no samples are taken");
    if (size < 0) return bl_fail("choice: negative dimensions are not allowed");
    if (replace) {
        for (int64_t i = 0; i < size; i++) out[i] = randomstate_randint(rs, 0, pop);
        return 0;
    }
    if (size > pop) return bl_fail("choice: cannot take a larger sample than population when replace=false");
    int64_t *perm = malloc((size_t)pop * sizeof *perm);
    if (!perm) return bl_fail("choice: out of memory");
    randomstate_permutation(rs, pop, perm);
    memcpy(out, perm, (size_t)size * sizeof *out);
    free(perm);
    return 0;
}

/* ---- sizes --------------------------------------------------------------------------------------- */

/* Python's repr of a float (shortest round-trip, always with a '.' or exponent). */
static const char *pyfloat(double v, char *buf, size_t n) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eninf")) strncat(buf, ".0", n - strlen(buf) - 1);
    return buf;
}

static const char *size_repr(split_size_kind_t kind, double v, char *buf, size_t n) {
    if (kind == SPLIT_SIZE_NONE) snprintf(buf, n, "None");
    else if (kind == SPLIT_SIZE_COUNT) snprintf(buf, n, "%lld", (long long)v);
    else pyfloat(v, buf, n);
    return buf;
}

int split_sizes(int64_t n, const split_opts_t *o, int64_t *n_train, int64_t *n_test) {
    split_size_kind_t tk = o->test_kind, rk = o->train_kind;
    double ts = o->test_size, rs = o->train_size;
    char a[64], b[64];
    /* train_test_split's parameter validation, before _validate_shuffle_split */
    if ((tk == SPLIT_SIZE_FRACTION && !(ts > 0 && ts < 1)) || (tk == SPLIT_SIZE_COUNT && ts < 1))
        return bl_fail("The 'test_size' parameter of train_test_split must be a float in the range (0.0, 1.0), "
                       "an int in the range [1, inf) or None. Got %s instead.", size_repr(tk, ts, a, sizeof a));
    if ((rk == SPLIT_SIZE_FRACTION && !(rs > 0 && rs < 1)) || (rk == SPLIT_SIZE_COUNT && rs < 1))
        return bl_fail("The 'train_size' parameter of train_test_split must be a float in the range (0.0, 1.0), "
                       "an int in the range [1, inf) or None. Got %s instead.", size_repr(rk, rs, a, sizeof a));
    if (tk == SPLIT_SIZE_NONE && rk == SPLIT_SIZE_NONE) {
        tk = SPLIT_SIZE_FRACTION;
        ts = 0.25;
    }
    if ((tk == SPLIT_SIZE_COUNT && (ts >= (double)n || ts <= 0)) ||
        (tk == SPLIT_SIZE_FRACTION && (ts <= 0 || ts >= 1)))
        return bl_fail("test_size=%s should be either positive and smaller than the number of samples %lld "
                       "or a float in the (0, 1) range", size_repr(tk, ts, a, sizeof a), (long long)n);
    if ((rk == SPLIT_SIZE_COUNT && (rs >= (double)n || rs <= 0)) ||
        (rk == SPLIT_SIZE_FRACTION && (rs <= 0 || rs >= 1)))
        return bl_fail("train_size=%s should be either positive and smaller than the number of samples %lld "
                       "or a float in the (0, 1) range", size_repr(rk, rs, a, sizeof a), (long long)n);
    if (tk == SPLIT_SIZE_FRACTION && rk == SPLIT_SIZE_FRACTION && rs + ts > 1)
        return bl_fail("The sum of test_size and train_size = %s, should be in the (0, 1) range. "
                       "Reduce test_size and/or train_size.", pyfloat(rs + ts, a, sizeof a));
    double nte = 0, ntr = 0;
    if (tk == SPLIT_SIZE_FRACTION) nte = ceil(ts * (double)n);
    else if (tk == SPLIT_SIZE_COUNT) nte = ts;
    if (rk == SPLIT_SIZE_FRACTION) ntr = floor(rs * (double)n);
    else if (rk == SPLIT_SIZE_COUNT) ntr = rs;
    if (rk == SPLIT_SIZE_NONE) ntr = (double)n - nte;
    else if (tk == SPLIT_SIZE_NONE) nte = (double)n - ntr;
    if (ntr + nte > (double)n)
        return bl_fail("The sum of train_size and test_size = %lld, should be smaller than the number of "
                       "samples %lld. Reduce test_size and/or train_size.", (long long)(ntr + nte), (long long)n);
    *n_train = (int64_t)ntr;
    *n_test = (int64_t)nte;
    if (*n_train == 0)
        return bl_fail("With n_samples=%lld, test_size=%s and train_size=%s, the resulting train set will be "
                       "empty. Adjust any of the aforementioned parameters.", (long long)n,
                       size_repr(o->test_kind, o->test_size, a, sizeof a),
                       size_repr(o->train_kind, o->train_size, b, sizeof b));
    return 0;
}

/* ---- _approximate_mode ----------------------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

int split_approximate_mode(const int64_t *counts, int k, int64_t n_draws, randomstate_t *rs, int64_t *out) {
    double *cont = malloc((size_t)k * 3 * sizeof(double));
    int64_t *inds = malloc((size_t)k * 2 * sizeof(int64_t));
    if (!cont || !inds) {
        free(cont); free(inds);
        return bl_fail("train_test_split: out of memory");
    }
    double *floored = cont + k, *values = cont + 2 * k;
    int64_t *pick = inds + k;
    int64_t total = 0;
    for (int i = 0; i < k; i++) total += counts[i];
    double fsum = 0;
    for (int i = 0; i < k; i++) {
        /* numpy: class_counts / class_counts.sum() * n_draws, in float64, left to right */
        cont[i] = (double)counts[i] / (double)total * (double)n_draws;
        floored[i] = floor(cont[i]);
        fsum += floored[i]; /* integers: exact in any order */
    }
    int64_t need = (int64_t)((double)n_draws - fsum);
    if (need > 0) {
        for (int i = 0; i < k; i++) values[i] = cont[i] - floored[i];
        qsort(values, (size_t)k, sizeof *values, cmp_desc);
        for (int v = 0; v < k && need > 0; v++) {
            if (v > 0 && values[v] == values[v - 1]) continue; /* np.unique */
            int64_t m = 0;
            for (int i = 0; i < k; i++)
                if (cont[i] - floored[i] == values[v]) inds[m++] = i;
            int64_t add = m < need ? m : need;
            /* rng.choice(inds, add, replace=False) = inds[permutation(len(inds))[:add]] */
            if (randomstate_choice(rs, m, add, 0, pick)) { free(cont); free(inds); return -1; }
            for (int64_t j = 0; j < add; j++) floored[inds[pick[j]]] += 1;
            need -= add;
        }
    }
    for (int i = 0; i < k; i++) out[i] = (int64_t)floored[i];
    free(cont);
    free(inds);
    return 0;
}

/* ---- the splits ------------------------------------------------------------------------------------ */

static int stratified(int64_t n, const split_opts_t *o, int64_t n_train, int64_t n_test, int64_t *train,
                      int64_t *test) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (o->stratify[i] < 0) return bl_fail("train_test_split: stratify class %lld is negative", (long long)o->stratify[i]);
        if (o->stratify[i] + 1 > k) k = o->stratify[i] + 1;
    }
    if (k > 0x7fffffff) return bl_fail("train_test_split: too many classes");
    int64_t *counts = calloc((size_t)k * 5 + 1, sizeof(int64_t));
    int64_t *order = malloc(((size_t)n + 1) * sizeof(int64_t));
    int64_t *perm = malloc(((size_t)n + 1) * sizeof(int64_t));
    if (!counts || !order || !perm) {
        free(counts); free(order); free(perm);
        return bl_fail("train_test_split: out of memory");
    }
    int64_t *start = counts + k, *n_i = counts + 2 * k, *rem = counts + 3 * k, *t_i = counts + 4 * k;
    int rc = 0;
    for (int64_t i = 0; i < n; i++) counts[o->stratify[i]]++;
    for (int64_t c = 0; c < k; c++) {
        if (counts[c] < 2) {
            rc = bl_fail("The least populated classes in y have only 1 member, which is too few. The minimum "
                         "number of groups for any class cannot be less than 2. (class number %lld of %lld "
                         "has %lld members)", (long long)c, (long long)k, (long long)counts[c]);
            goto done;
        }
    }
    if (n_train < k) {
        rc = bl_fail("The train_size = %lld should be greater or equal to the number of classes = %lld",
                     (long long)n_train, (long long)k);
        goto done;
    }
    if (n_test < k) {
        rc = bl_fail("The test_size = %lld should be greater or equal to the number of classes = %lld",
                     (long long)n_test, (long long)k);
        goto done;
    }
    /* class_indices: a stable argsort of the class ids, cut per class */
    for (int64_t c = 1; c < k; c++) start[c] = start[c - 1] + counts[c - 1];
    for (int64_t c = 0; c < k; c++) rem[c] = start[c];
    for (int64_t i = 0; i < n; i++) order[rem[o->stratify[i]]++] = i;

    randomstate_t rs;
    randomstate_seed(&rs, o->random_state);
    if (split_approximate_mode(counts, (int)k, n_train, &rs, n_i)) { rc = -1; goto done; }
    for (int64_t c = 0; c < k; c++) rem[c] = counts[c] - n_i[c];
    if (split_approximate_mode(rem, (int)k, n_test, &rs, t_i)) { rc = -1; goto done; }
    int64_t ntr = 0, nte = 0;
    for (int64_t c = 0; c < k; c++) {
        randomstate_permutation(&rs, counts[c], perm);
        const int64_t *cls = order + start[c];
        for (int64_t j = 0; j < n_i[c]; j++) train[ntr++] = cls[perm[j]];
        for (int64_t j = n_i[c]; j < n_i[c] + t_i[c]; j++) test[nte++] = cls[perm[j]];
    }
    if (ntr != n_train || nte != n_test) {
        rc = bl_fail("train_test_split: internal error (stratified sizes %lld/%lld, expected %lld/%lld)",
                     (long long)ntr, (long long)nte, (long long)n_train, (long long)n_test);
        goto done;
    }
    randomstate_shuffle(&rs, train, n_train);
    randomstate_shuffle(&rs, test, n_test);
done:
    free(counts);
    free(order);
    free(perm);
    return rc;
}

int split_train_test(int64_t n, const split_opts_t *o, int64_t *train, int64_t *test) {
    int64_t n_train, n_test;
    if (split_sizes(n, o, &n_train, &n_test)) return -1;
    if (!o->shuffle) {
        if (o->stratify) return bl_fail("Stratified train/test split is not implemented for shuffle=False");
        for (int64_t i = 0; i < n_train; i++) train[i] = i;
        for (int64_t i = 0; i < n_test; i++) test[i] = n_train + i;
        return 0;
    }
    if (o->stratify) return stratified(n, o, n_train, n_test, train, test);
    int64_t *perm = malloc(((size_t)n + 1) * sizeof *perm);
    if (!perm) return bl_fail("train_test_split: out of memory");
    randomstate_t rs;
    randomstate_seed(&rs, o->random_state);
    randomstate_permutation(&rs, n, perm);
    memcpy(test, perm, (size_t)n_test * sizeof *test);
    memcpy(train, perm + n_test, (size_t)n_train * sizeof *train);
    free(perm);
    return 0;
}

/* ---- StratifiedKFold ------------------------------------------------------------------------------ */

int split_stratified_kfold(int64_t n, const int64_t *y, int n_splits, int shuffle, uint32_t random_state,
                           int64_t *fold, int64_t *min_members) {
    if (n_splits < 2)
        return bl_fail("k-fold cross-validation requires at least one train/test split by setting n_splits=2 or "
                       "more, got n_splits=%d.", n_splits);
    if (n_splits > n)
        return bl_fail("Cannot have number of splits n_splits=%d greater than the number of samples: n_samples=%lld.",
                       n_splits, (long long)n);
    /* classes by first appearance: enc[i] in 0..k-1 */
    int64_t *enc = malloc(sizeof(int64_t) * (size_t)n), *first = malloc(sizeof(int64_t) * (size_t)n);
    int64_t *count = calloc((size_t)n, sizeof(int64_t));
    int64_t *alloc = NULL, *blk = NULL;
    int rc = -1;
    if (!enc || !first || !count) {
        bl_fail("StratifiedKFold: out of memory");
        goto done;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) { /* n is a dataset: a quadratic scan of the classes is fine */
        int64_t c = -1;
        for (int64_t j = 0; j < k; j++)
            if (y[first[j]] == y[i]) {
                c = j;
                break;
            }
        if (c < 0) {
            first[k] = i;
            c = k++;
        }
        enc[i] = c;
        count[c]++;
    }
    int64_t mn = n, all_small = 1;
    for (int64_t c = 0; c < k; c++) {
        if (count[c] < mn) mn = count[c];
        if (count[c] >= n_splits) all_small = 0;
    }
    if (min_members) *min_members = mn;
    if (all_small) {
        bl_fail("n_splits=%d cannot be greater than the number of members in each class.", n_splits);
        goto done;
    }
    /* allocation[f][c]: members of class c in fold f, bincount(sort(enc)[f::n_splits]) */
    alloc = calloc((size_t)n_splits * (size_t)k, sizeof(int64_t));
    blk = malloc(sizeof(int64_t) * (size_t)n);
    if (!alloc || !blk) {
        bl_fail("StratifiedKFold: out of memory");
        goto done;
    }
    int64_t pos = 0; /* position in the sorted labels */
    for (int64_t c = 0; c < k; c++)
        for (int64_t m = 0; m < count[c]; m++, pos++) alloc[(pos % n_splits) * k + c]++;
    randomstate_t rs;
    if (shuffle) randomstate_seed(&rs, random_state);
    for (int64_t c = 0; c < k; c++) {
        int64_t len = 0;
        for (int f = 0; f < n_splits; f++)
            for (int64_t m = 0; m < alloc[f * k + c]; m++) blk[len++] = f; /* arange(n_splits).repeat */
        if (shuffle) randomstate_shuffle(&rs, blk, len);
        int64_t j = 0;
        for (int64_t i = 0; i < n; i++)
            if (enc[i] == c) fold[i] = blk[j++];
    }
    rc = 0;
done:
    free(enc);
    free(first);
    free(count);
    free(alloc);
    free(blk);
    return rc;
}
