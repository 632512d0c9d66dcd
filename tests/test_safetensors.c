/* test_safetensors.c: reading (every dtype, unaligned offsets, all F16/BF16 bit patterns) against
 * numpy/torch values from gen_io.py, the validation errors on malformed files, and writing: round
 * trips and byte-for-byte equality with files the Python safetensors library wrote. */
#define _GNU_SOURCE /* memfd_create */
#include "../runtime/error.h"
#include "../runtime/safetensors.h"
#include "ctest.h"
#include <dirent.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/io/"

static char tmpdir[256];

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* ---------------------------------------------------------------- reading valid files */

static void test_valid(void) {
    safetensors_t st;
    int rc = safetensors_open(&st, FIX "valid.safetensors");
    CHECK(rc == 0, "valid.safetensors opens (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    CHECK(st.n == 12, "valid.safetensors has 12 tensors (got %d)", st.n);
    CHECK(st.metadata_json && strcmp(st.metadata_json, "{\"format\":\"pt\",\"note\":\"caf\xc3\xa9 \xe2\x9c\x93\"}") == 0,
          "metadata read with its UTF-8 text (%s)", st.metadata_json ? st.metadata_json : "NULL");
    for (int i = 1; i < st.n; i++)
        CHECK(st.entries[i].begin >= st.entries[i - 1].end, "entries in data order: '%s' after '%s'",
              st.entries[i].name, st.entries[i - 1].name);
    FILE *f = fopen(FIX "valid.expect", "r");
    CHECK(f != NULL, "valid.expect present");
    if (!f) {
        safetensors_close(&st);
        return;
    }
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *name = strtok_r(line, " \n", &save), *kind = strtok_r(NULL, " \n", &save);
        int ndim = atoi(strtok_r(NULL, " \n", &save));
        int64_t shape[TENSOR_MAXDIM], numel = 1;
        for (int d = 0; d < ndim; d++) numel *= shape[d] = atoll(strtok_r(NULL, " \n", &save));
        strtok_r(NULL, " \n", &save); /* ":" */
        lines++;
        const st_entry_t *e = safetensors_find(&st, name);
        CHECK(e != NULL, "tensor '%s' found", name);
        if (!e) continue;
        tensor_t *t = safetensors_read_tensor(&st, e);
        CHECK(t != NULL, "tensor '%s' read", name);
        if (!t) continue;
        int shape_ok = t->ndim == ndim && t->numel == numel;
        for (int d = 0; shape_ok && d < ndim; d++) shape_ok = t->shape[d] == shape[d];
        CHECK(shape_ok, "tensor '%s' shape", name);
        int want_f32 = strcmp(kind, "f32") == 0;
        CHECK(t->dtype == (want_f32 ? DT_F32 : DT_I64), "tensor '%s' is %s", name, kind);
        int64_t bad = 0, i = 0;
        double maxdiff = 0;
        for (char *tok; shape_ok && (tok = strtok_r(NULL, " \n", &save)) && i < numel; i++) {
            if (want_f32) {
                uint32_t want = (uint32_t)strtoul(tok, NULL, 16), got;
                memcpy(&got, (float *)t->data + i, 4);
                float wf;
                memcpy(&wf, &want, 4);
                if (got != want) bad++;
                double diff = fabs((double)((float *)t->data)[i] - wf);
                if (diff > maxdiff && isfinite(diff)) maxdiff = diff;
            } else {
                if (((int64_t *)t->data)[i] != strtoll(tok, NULL, 10)) bad++;
            }
        }
        CHECK(shape_ok && i == numel && bad == 0, "tensor '%s' values equal numpy's bit for bit "
              "(%lld of %lld differ, largest difference %g)", name, (long long)bad, (long long)numel, maxdiff);
        tensor_free(t);
    }
    fclose(f);
    CHECK(lines == 12, "valid.expect has 12 tensors (%d)", lines);
    /* read_f32 refuses integer dtypes */
    float dummy[4];
    CHECK(safetensors_read_f32(&st, safetensors_find(&st, "ids"), dummy) == -1 &&
          strstr(bl_errmsg(), "'ids' is I64"), "read_f32 on I64 fails: %s", bl_errmsg());
    CHECK(safetensors_find(&st, "nope") == NULL, "find of a missing name is NULL");
    safetensors_close(&st);
    safetensors_close(&st); /* twice is fine */
}

static void test_halfs(void) {
    safetensors_t st;
    int rc = safetensors_open(&st, FIX "halfs.safetensors");
    CHECK(rc == 0, "halfs.safetensors opens (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    const char *pairs[2][2] = {{"f16", "f16_as_f32"}, {"bf16", "bf16_as_f32"}};
    for (int p = 0; p < 2; p++) {
        float *got = malloc(65536 * 4), *want = malloc(65536 * 4);
        int ok = safetensors_read_f32(&st, safetensors_find(&st, pairs[p][0]), got) == 0 &&
                 safetensors_read_f32(&st, safetensors_find(&st, pairs[p][1]), want) == 0;
        int bad = 0;
        double maxdiff = 0;
        for (int i = 0; ok && i < 65536; i++) {
            if (memcmp(&got[i], &want[i], 4) != 0) bad++;
            double d = fabs((double)got[i] - want[i]);
            if (isfinite(d) && d > maxdiff) maxdiff = d;
        }
        CHECK(ok && bad == 0, "all 65536 %s bit patterns convert exactly as %s (%d differ, largest difference %g)",
              pairs[p][0], p ? "torch" : "numpy", bad, maxdiff);
        free(got);
        free(want);
    }
    safetensors_close(&st);
    rc = safetensors_open(&st, FIX "leading_space.safetensors");
    CHECK(rc == 0, "a header with leading whitespace is accepted, as the reference does (%s)", rc ? bl_errmsg() : "ok");
    if (!rc) {
        tensor_t *t = safetensors_read_tensor(&st, &st.entries[0]);
        CHECK(t && ((int64_t *)t->data)[2] == -1, "I8 0xff reads as -1");
        tensor_free(t);
    }
    safetensors_close(&st);
}

/* ---------------------------------------------------------------- malformed files */

static void test_malformed(void) {
    static const struct {
        const char *file, *pattern;
    } cases[] = {
        {"too_small", "too_small.safetensors: file too small for a safetensors header (3 bytes"},
        {"header_beyond_file", "header_beyond_file.safetensors: header length 1000 goes beyond the end of the file (15 bytes)"},
        {"header_too_large", "header length 200000000 is larger than the limit of 100000000"},
        {"header_huge_u64", "header length 18446744073709551615 is larger than the limit"},
        {"bad_json", "bad_json.safetensors: header is not valid JSON"},
        {"bad_utf8", "bad_utf8.safetensors: header is not valid UTF-8 (byte 3 of the header)"},
        {"not_object", "not_object.safetensors: header is not a JSON object"},
        {"unknown_dtype", "tensor 'a' has unknown dtype 'F8X'"},
        {"size_mismatch", "size_mismatch.safetensors: tensor 'x' has 20 bytes, shape [2,3] of F32 needs 24"},
        {"gap", "gap in the data: tensor 'b' starts at byte 12, the previous ('a') ends at 8"},
        {"overlap", "tensors 'a' and 'b' overlap (byte 4, previous ends at 8)"},
        {"trailing_bytes", "4 trailing bytes after the last tensor (data ends at 24, file has 28)"},
        {"truncated_data", "the header describes 24 bytes of data but the file has 16 (truncated?)"},
        {"duplicate_name", "duplicate_name.safetensors: a tensor name appears twice in the header (duplicate object key near '\"a\"')"},
        {"not_from_zero", "tensor 'a' starts at byte 4; the data must start at 0"},
        {"negative_shape", "tensor 'a': shape[0] is not a non-negative integer"},
        {"float_shape", "tensor 'a': shape[0] is not a non-negative integer"},
        {"missing_offsets", "tensor 'a': missing \"data_offsets\""},
        {"end_before_begin", "tensor 'a' has data_offsets [8,0] that end before they begin"},
        {"metadata_not_string", "\"__metadata__\" value for 'epoch' is not a string"},
        {"shape_overflow", "tensor 'a': shape too large"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "malformed/%s.safetensors", cases[i].file);
        safetensors_t st;
        int rc = safetensors_open(&st, path);
        CHECK(rc == -1 && strstr(bl_errmsg(), cases[i].pattern) != NULL, "malformed %s refused: %s",
              cases[i].file, rc ? bl_errmsg() : "(accepted!)");
        CHECK(st.entries == NULL && st.data == NULL && st.n == 0, "malformed %s leaves a closed struct", cases[i].file);
        safetensors_close(&st);
    }
    safetensors_t st;
    CHECK(safetensors_open(&st, FIX "missing.safetensors") == -1 &&
          strstr(bl_errmsg(), "missing.safetensors: cannot open (No such file"), "missing file: %s", bl_errmsg());
    CHECK(safetensors_open(&st, FIX) == -1 && strstr(bl_errmsg(), "not a regular file"), "a folder: %s", bl_errmsg());
}

/* ---------------------------------------------------------------- writing */

static void test_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    float w[6] = {1.5f, -2.0f, 0.0f, -0.0f, 3.14159274f, 1e-40f};
    int64_t ids[3] = {INT64_MIN, 0, INT64_MAX};
    float s = 42.0f;
    int64_t sw[2] = {2, 3}, sid[1] = {3}, se[2] = {0, 5};
    st_write_t t[4] = {
        {"w", DT_F32, 2, sw, w, NULL, 0}, {"ids", DT_I64, 1, sid, ids, NULL, 0}, {"scalar", DT_F32, 0, NULL, &s, NULL, 0}, {"empty", DT_F32, 2, se, NULL, NULL, 0}};
    int rc = safetensors_save(path, t, 4, "{\"epoch\":\"3\",\"name\":\"r\\u00e9sum\\u00e9\"}");
    CHECK(rc == 0, "save 4 tensors with metadata (%s)", rc ? bl_errmsg() : "ok");
    safetensors_t st;
    rc = safetensors_open(&st, path);
    CHECK(rc == 0, "reopen the saved file (%s)", rc ? bl_errmsg() : "ok");
    if (rc) return;
    CHECK(st.n == 4, "4 tensors back");
    const st_entry_t *e = safetensors_find(&st, "w");
    tensor_t *tw = e ? safetensors_read_tensor(&st, e) : NULL;
    CHECK(tw && tw->ndim == 2 && tw->shape[0] == 2 && tw->shape[1] == 3 && memcmp(tw->data, w, sizeof w) == 0,
          "F32 [2,3] round trip bit for bit");
    e = safetensors_find(&st, "ids");
    tensor_t *ti = e ? safetensors_read_tensor(&st, e) : NULL;
    CHECK(ti && ti->dtype == DT_I64 && memcmp(ti->data, ids, sizeof ids) == 0, "I64 extremes round trip");
    e = safetensors_find(&st, "scalar");
    tensor_t *ts = e ? safetensors_read_tensor(&st, e) : NULL;
    CHECK(ts && ts->ndim == 0 && ts->numel == 1 && ((float *)ts->data)[0] == 42.0f, "0-dim tensor round trip");
    e = safetensors_find(&st, "empty");
    tensor_t *te = e ? safetensors_read_tensor(&st, e) : NULL;
    CHECK(te && te->ndim == 2 && te->shape[0] == 0 && te->shape[1] == 5 && te->numel == 0, "empty [0,5] round trip");
    CHECK(st.metadata_json && strstr(st.metadata_json, "\"epoch\":\"3\"") && strstr(st.metadata_json, "r\xc3\xa9sum"),
          "metadata round trip: %s", st.metadata_json ? st.metadata_json : "NULL");
    CHECK(safetensors_find(&st, "ids")->begin == 0, "I64 stored first (larger alignment), as the reference orders");
    tensor_free(tw);
    tensor_free(ti);
    tensor_free(ts);
    tensor_free(te);
    safetensors_close(&st);
    size_t n;
    unsigned char *b = slurp(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    CHECK(hl % 8 == 0, "header padded to a multiple of 8 (%llu)", (unsigned long long)hl);
    free(b);
    CHECK(count_files(tmpdir) == 1, "no temporary file left beside the checkpoint (%d files)", count_files(tmpdir));
    /* an empty file: no tensors, no metadata, like the reference's test_empty */
    snprintf(path, sizeof path, "%s/empty.safetensors", tmpdir);
    CHECK(safetensors_save(path, NULL, 0, NULL) == 0, "save of zero tensors");
    b = slurp(path, &n);
    CHECK(n == 16 && memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0, "zero tensors: the reference's 16 bytes");
    free(b);
    unlink(path);
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    unlink(path);
}

/* Python's save_file output vs ours for the same tensors given in a different order. */
static void test_python_bytes(const char *fixture, int with_meta) {
    safetensors_t st;
    char path[512];
    if (safetensors_open(&st, fixture) != 0) {
        CHECK(0, "open %s: %s", fixture, bl_errmsg());
        return;
    }
    st_write_t w[16];
    tensor_t *ts[16];
    int n = st.n;
    for (int i = 0; i < n; i++) { /* reversed data order, so our sort has work to do */
        const st_entry_t *e = &st.entries[n - 1 - i];
        ts[i] = safetensors_read_tensor(&st, e);
        w[i] = (st_write_t){e->name, ts[i]->dtype, ts[i]->ndim, ts[i]->shape, ts[i]->data, NULL, 0};
    }
    snprintf(path, sizeof path, "%s/ours.safetensors", tmpdir);
    int rc = safetensors_save(path, w, n, with_meta ? st.metadata_json : NULL);
    CHECK(rc == 0, "save the tensors of %s (%s)", fixture, rc ? bl_errmsg() : "ok");
    size_t na, nb;
    unsigned char *a = slurp(fixture, &na), *b = slurp(path, &nb);
    size_t first = 0;
    while (first < na && first < nb && a[first] == b[first]) first++;
    CHECK(a && b && na == nb && first == na, "bytes identical to Python's safetensors.save_file output for %s "
          "(%zu vs %zu bytes, %zu leading bytes equal)", fixture, na, nb, first);
    free(a);
    free(b);
    for (int i = 0; i < n; i++) tensor_free(ts[i]);
    safetensors_close(&st);
    unlink(path);
}

static void test_save_errors(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    float v[2] = {1, 2};
    int64_t sh[1] = {2}, neg[1] = {-1};
    st_write_t dup[2] = {{"a", DT_F32, 1, sh, v, NULL, 0}, {"a", DT_F32, 1, sh, v, NULL, 0}};
    CHECK(safetensors_save(path, dup, 2, NULL) == -1 && strstr(bl_errmsg(), "bad.safetensors: tensor name 'a' appears twice"),
          "duplicate names refused: %s", bl_errmsg());
    st_write_t reserved[1] = {{"__metadata__", DT_F32, 1, sh, v, NULL, 0}};
    CHECK(safetensors_save(path, reserved, 1, NULL) == -1 && strstr(bl_errmsg(), "invalid name '__metadata__'"),
          "the name __metadata__ refused: %s", bl_errmsg());
    st_write_t negs[1] = {{"n", DT_F32, 1, neg, v, NULL, 0}};
    CHECK(safetensors_save(path, negs, 1, NULL) == -1 && strstr(bl_errmsg(), "tensor 'n': negative dimension -1"),
          "negative dimension refused: %s", bl_errmsg());
    st_write_t bf[1] = {{"h", DT_BF16, 1, sh, v, NULL, 0}};
    CHECK(safetensors_save(path, bf, 1, NULL) == -1 && strstr(bl_errmsg(), "only float32 and int64"),
          "bfloat16 tensors refused: %s", bl_errmsg());
    st_write_t nodata[1] = {{"nd", DT_F32, 1, sh, NULL, NULL, 0}};
    CHECK(safetensors_save(path, nodata, 1, NULL) == -1 && strstr(bl_errmsg(), "tensor 'nd' has no data"),
          "a tensor without data refused: %s", bl_errmsg());
    st_write_t ok[1] = {{"a", DT_F32, 1, sh, v, NULL, 0}};
    CHECK(safetensors_save(path, ok, 1, "{\"a\":1}") == -1 && strstr(bl_errmsg(), "metadata value for 'a' is not a string"),
          "non-string metadata refused: %s", bl_errmsg());
    CHECK(safetensors_save(path, ok, 1, "[1]") == -1 && strstr(bl_errmsg(), "metadata must be a JSON object"),
          "non-object metadata refused: %s", bl_errmsg());
    CHECK(count_files(tmpdir) == 0, "failed saves leave no file (%d)", count_files(tmpdir));
    st_span_t short_[2] = {{v, 4}, {v, 2}}, hole[2] = {{v, 4}, {NULL, 4}};
    st_write_t shortw[1] = {{"s", DT_F32, 1, sh, NULL, short_, 2}}, holew[1] = {{"p", DT_F32, 1, sh, NULL, hole, 2}};
    CHECK(safetensors_save(path, shortw, 1, NULL) == -1 && strstr(bl_errmsg(), "tensor 's': its pieces hold 6 bytes, its shape 8"),
          "pieces that do not add up to the shape refused: %s", bl_errmsg());
    CHECK(safetensors_save(path, holew, 1, NULL) == -1 && strstr(bl_errmsg(), "tensor 'p' has no data (piece 2)"),
          "a piece without data refused: %s", bl_errmsg());
    CHECK(count_files(tmpdir) == 0, "failed saves leave no file (%d)", count_files(tmpdir));
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", tmpdir);
    CHECK(safetensors_save(path, ok, 1, NULL) == -1 && strstr(bl_errmsg(), "x.safetensors: cannot create a temporary file"),
          "missing folder: %s", bl_errmsg());
}

/* A tensor written from pieces (st_write_t.spans) is the file written from one buffer holding
 * the pieces one after another, byte for byte, beside a tensor written from one buffer. */
static void test_spans(void) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/one.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/pieces.safetensors", tmpdir);
    float x[7] = {1.5f, -2.0f, 3.0f, 0.25f, -0.0f, 7.0f, 1e-30f}, p1[3] = {1.5f, -2.0f, 3.0f}, p2[1] = {0.25f},
          p3[3] = {-0.0f, 7.0f, 1e-30f}, y[2] = {9.0f, -9.0f};
    int64_t sx[1] = {7}, sy[1] = {2};
    st_span_t pieces[4] = {{p1, sizeof p1}, {NULL, 0}, {p2, sizeof p2}, {p3, sizeof p3}};
    st_write_t one[2] = {{"x", DT_F32, 1, sx, x, NULL, 0}, {"y", DT_F32, 1, sy, y, NULL, 0}};
    st_write_t split[2] = {{"x", DT_F32, 1, sx, NULL, pieces, 4}, {"y", DT_F32, 1, sy, y, NULL, 0}};
    int ra = safetensors_save(a, one, 2, "{\"k\":\"v\"}"), rb = safetensors_save(b, split, 2, "{\"k\":\"v\"}");
    CHECK(ra == 0 && rb == 0, "save from one buffer and from pieces (%s)", ra || rb ? bl_errmsg() : "ok");
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    unsigned char ba[4096], bb[4096];
    size_t na = fa ? fread(ba, 1, sizeof ba, fa) : 0, nb = fb ? fread(bb, 1, sizeof bb, fb) : 0;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    CHECK(na > 8 + 7 * 4 && na == nb && memcmp(ba, bb, na) == 0, "pieces give the same bytes (%zu, %zu)", na, nb);
    float other[3] = {-0.0f, 7.0f, 2e-30f};
    pieces[3].data = other; /* other bytes in a piece (its size kept): the comparison can fail */
    rb = safetensors_save(b, split, 2, "{\"k\":\"v\"}");
    fb = fopen(b, "rb");
    nb = fb ? fread(bb, 1, sizeof bb, fb) : 0;
    if (fb) fclose(fb);
    CHECK(rb == 0 && nb == na && memcmp(ba, bb, na) != 0, "a changed piece changes the file");
    remove(a);
    remove(b);
}


/* Every truncation of a valid file and a byte change at every header position: each either opens
 * with a consistent layout or fails with a message naming the file; nothing crashes. */
static void test_mutations(void) {
    size_t n;
    unsigned char *orig = slurp(FIX "valid.safetensors", &n), *buf = malloc(n + 1);
    char path[512];
    /* an in-memory file: thousands of rewrites without touching the (shared, slow) disk */
    int mfd = memfd_create("mut.safetensors", 0);
    snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
    int tried = 0, refused = 0, accepted = 0, unnamed = 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | orig[i];
    static const unsigned char subst[] = {'9', '"', '}', 0xff, 0, '-'};
    for (size_t len = 0; len <= n + (size_t)(sizeof subst) * (8 + hl); len++) {
        size_t cut = len <= n ? len : n;
        memcpy(buf, orig, n);
        if (len > n) { /* a substitution at header byte k */
            size_t j = len - n - 1, k = j / sizeof subst;
            if (k >= 8 + hl) break;
            buf[k] = subst[j % sizeof subst];
            cut = n;
        }
        if (ftruncate(mfd, 0) != 0 || pwrite(mfd, buf, cut, 0) != (ssize_t)cut) break;
        safetensors_t st;
        tried++;
        if (safetensors_open(&st, path) == 0) {
            accepted++;
            size_t end = 0;
            for (int i = 0; i < st.n; i++) {
                tensor_t *t = safetensors_read_tensor(&st, &st.entries[i]);
                tensor_free(t);
                if (st.entries[i].end > end) end = st.entries[i].end;
            }
            if (end != st.data_size) unnamed++;
        } else {
            refused++;
            if (strncmp(bl_errmsg(), path, strlen(path)) != 0) unnamed++;
        }
        safetensors_close(&st);
    }
    CHECK(unnamed == 0 && tried > 1000, "%d mutated files: %d refused with the file named, %d accepted consistently "
          "(%d bad)", tried, refused, accepted, unnamed);
    close(mfd);
    free(orig);
    free(buf);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bl_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_valid();
    test_halfs();
    test_malformed();
    test_roundtrip();
    test_python_bytes(FIX "pysaved_nometa.safetensors", 0);
    test_python_bytes(FIX "pysaved.safetensors", 1);
    test_save_errors();
    test_spans();
    test_mutations();
    rmdir(tmpdir);
    CT_DONE();
}
