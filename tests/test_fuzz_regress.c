/* test_fuzz_regress.c: the fuzz targets (tests/fuzz/fuzz_*.c) replayed on every committed input: each
 * target's seed corpus (tests/fuzz/corpus/<target>/) and each input a fuzzing run found to crash
 * (tests/fixtures/badinput/fuzz_<target>_*), so a crash fixed once stays fixed. A target checks its own
 * invariants and aborts on a violation; `make test-asan` replays them under ASan and UBSan, where
 * the crashes were seen. The found inputs are also checked for the error they must give now. */
#define _GNU_SOURCE
#define LLVMFuzzerTestOneInput fuzz_csv_one
#include "fuzz/fuzz_csv.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config_one
#include "fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#include "ctest.h"
#include <dirent.h>

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0, got;
    unsigned char *b = malloc(cap);
    while ((got = fread(b + len, 1, cap - len, f)) > 0)
        if ((len += got) == cap) b = realloc(b, cap *= 2);
    fclose(f);
    *n = len;
    return b;
}

static const struct {
    const char *name;
    int (*one)(const uint8_t *, size_t);
} targets[] = {{"csv", fuzz_csv_one}, {"tokenizer", fuzz_tokenizer_one}, {"safetensors", fuzz_safetensors_one},
               {"config", fuzz_config_one}};

/* Replays every file of `dir` whose name starts with `prefix` through `one`; returns how many. */
static int replay(const char *dir, const char *prefix, const char *target, int (*one)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    char path[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        unsigned char *b = slurp(path, &len);
        if (!b) continue;
        one(b, len); /* aborts (and fails the test) on a broken invariant */
        free(b);
        CHECK(1, "fuzz_%s replays %s", target, path);
        n++;
    }
    closedir(d);
    return n;
}

int main(void) {
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char dir[256], prefix[64];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", targets[i].name);
        int seeds = replay(dir, "", targets[i].name, targets[i].one);
        CHECK(seeds >= 3, "fuzz_%s: seed corpus has %d inputs (at least 3)", targets[i].name, seeds);
        snprintf(prefix, sizeof prefix, "fuzz_%s_", targets[i].name);
        replay("tests/fixtures/badinput", prefix, targets[i].name, targets[i].one);
    }

    /* found by fuzz_csv: a NUL byte in a cell was accepted (the cell cut short for every C caller) */
    size_t n;
    unsigned char *b = slurp("tests/fixtures/badinput/fuzz_csv_nul.csv", &n);
    CHECK(b != NULL, "fuzz_csv_nul.csv present");
    if (b) {
        csv_table_t *t = csv_table_parse("fuzz_csv_nul.csv", (const char *)b, n);
        CHECK(t == NULL && strstr(bl_errmsg(), "fuzz_csv_nul.csv:1: NUL byte at column 8"),
              "a NUL byte in a CSV cell is refused with its line and column (%s)", t ? "accepted!" : bl_errmsg());
        csv_table_free(t);
        free(b);
    }
    /* found by fuzz_tokenizer: padding a batch of empty rows did pointer arithmetic on a NULL id list */
    wordpiece_t *wp = NULL;
    {
        char path[64];
        int fd = -1;
        fuzz_memfile(&fd, (const uint8_t *)builtin_vocab, sizeof builtin_vocab - 1, path, sizeof path);
        wp = wordpiece_load(path, NULL);
        CHECK(wp != NULL, "built-in fuzz vocabulary loads");
        close(fd);
    }
    if (wp) {
        const char *texts[2] = {"", ""};
        size_t lens[2] = {0, 0};
        wp_batch_opts_t o = {.add_special_tokens = 0, .truncation = 0, .max_length = -1, .padding = WP_PAD_LONGEST};
        wp_ids_t ids = {0};
        int64_t off[3];
        tensor_t *ti = NULL, *tm = NULL, *tt = NULL;
        int rc = wordpiece_encode_batch(wp, 2, texts, lens, &o, &ids, off);
        rc = rc ? rc : wordpiece_pad_batch(wp, 2, &ids, off, &o, &ti, &tm, &tt);
        CHECK(rc == 0 && ti && ti->shape[0] == 2 && ti->shape[1] == 0 && tm->shape[1] == 0,
              "a batch of two empty texts without special tokens pads to [2,0] (%s)", rc ? bl_errmsg() : "ok");
        tensor_free(ti);
        tensor_free(tm);
        tensor_free(tt);
        wp_ids_free(&ids);
        wordpiece_free(wp);
    }
    for (int k = 0; k < 8; k++) wordpiece_free(builtin[k]);
    CT_DONE();
}
