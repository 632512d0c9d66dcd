/* test_tokenizer.c: the runtime API of runtime/wordpiece.c without Lua: encode, batch offsets, padding
 * errors unreachable from Lua, decode, and the time of the tokenizer alone. The few expected ids here
 * are HF's (BertTokenizerLegacy outputs, also in tests/fixtures/tokenizer/batch.lua); the full
 * comparison with HF is tests/test_tokenizer.lua. */
#include "ctest.h"
#include "../runtime/error.h"
#include "../runtime/wordpiece.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *vocab_path(void) {
    if (access("data/vocab.txt", R_OK) == 0) return "data/vocab.txt";
    return "../shared/data/bert-base-uncased-vocab.txt";
}

static int same_ids(const wp_ids_t *ids, size_t from, const int32_t *want, size_t n) {
    if (ids->n - from != n) return 0;
    return memcmp(ids->v + from, want, n * sizeof *want) == 0;
}

int main(void) {
    if (access(vocab_path(), R_OK) != 0) {
        SKIP("tokenizer C API: no vocabulary (make data)");
        return 0;
    }
    wordpiece_t *wp = wordpiece_load(vocab_path(), NULL);
    CHECK(wp != NULL, "wordpiece_load(%s)", vocab_path());
    if (!wp) CT_DONE();
    CHECK(wordpiece_vocab_size(wp) == 30522, "vocab size 30522");
    wordpiece_opts_t o = wordpiece_get_opts(wp);
    CHECK(o.do_lower_case == 1 && o.strip_accents == -1 && o.tokenize_chinese_chars == 1, "default options resolved");
    CHECK(wordpiece_special_id(wp, WP_CLS) == 101 && wordpiece_special_id(wp, WP_SEP) == 102 &&
              wordpiece_special_id(wp, WP_PAD) == 0 && wordpiece_special_id(wp, WP_UNK) == 100,
          "special token ids");

    /* "hello world" → HF ids {7592, 2088}; "a b c d e f g" (max_length 5) → {101, 1037, 1038, 1039, 102} */
    wp_ids_t ids = {0};
    CHECK(wordpiece_encode(wp, "Hello WORLD", 11, &ids) == 0, "encode returns 0");
    CHECK(same_ids(&ids, 0, (int32_t[]){7592, 2088}, 2), "encode 'Hello WORLD' appends {7592, 2088}");
    size_t mark = ids.n;
    CHECK(wordpiece_encode(wp, "x\xe2\x82", 3, &ids) == -1 && strstr(bl_errmsg(), "invalid UTF-8 at byte 2"),
          "truncated UTF-8 is an error: %s", bl_errmsg());
    CHECK(ids.n == mark, "a failed encode appends nothing");

    const char *texts[] = {"a b c d e f g", "", "hello world"};
    size_t lens[] = {13, 0, 11};
    int64_t off[4];
    wp_batch_opts_t bo = {.add_special_tokens = 1, .truncation = 1, .max_length = 5, .padding = WP_PAD_MAX_LENGTH};
    ids.n = 0;
    CHECK(wordpiece_encode_batch(wp, 3, texts, lens, &bo, &ids, off) == 0, "encode_batch");
    CHECK(off[0] == 0 && off[1] == 5 && off[2] == 7 && off[3] == 11, "offsets {0,5,7,11}: got {%lld,%lld,%lld,%lld}",
          (long long)off[0], (long long)off[1], (long long)off[2], (long long)off[3]);
    CHECK(same_ids(&ids, 0, (int32_t[]){101, 1037, 1038, 1039, 102, 101, 102, 101, 7592, 2088, 102}, 11),
          "batch ids with truncation to 5");
    tensor_t *ti = NULL, *tm = NULL, *tt = NULL;
    CHECK(wordpiece_pad_batch(wp, 3, &ids, off, &bo, &ti, &tm, &tt) == 0, "pad_batch");
    if (ti) {
        int64_t *v = ti->data, *m = tm->data;
        CHECK(ti->shape[0] == 3 && ti->shape[1] == 5 && ti->dtype == DT_I64, "input_ids int64 [3,5]");
        CHECK(v[5] == 101 && v[6] == 102 && v[7] == 0 && m[6] == 1 && m[7] == 0 && tensor_get(tt, 14) == 0,
              "row 2 is [CLS] [SEP] [PAD]..., mask 1 1 0...");
    }
    tensor_free(ti);
    tensor_free(tm);
    tensor_free(tt);
    wp_batch_opts_t shortb = bo;
    shortb.max_length = 3;
    ti = NULL;
    CHECK(wordpiece_pad_batch(wp, 3, &ids, off, &shortb, &ti, NULL, NULL) == -1 &&
              strstr(bl_errmsg(), "longer than max_length 3"),
          "padding rows longer than max_length is an error: %s", bl_errmsg());
    CHECK(ti == NULL, "no tensor on error");
    bo.max_length = 1;
    CHECK(wordpiece_encode_batch(wp, 3, texts, lens, &bo, &ids, off) == -1 &&
              strstr(bl_errmsg(), "max_length must be at least 2"),
          "max_length 1 with special tokens: %s", bl_errmsg());

    int64_t dids[] = {101, 2123, 1005, 1056, 2175, 1010, 7592, 999, 102};
    size_t dl;
    char *s = wordpiece_decode(wp, dids, 9, 1, 1, &dl);
    CHECK(s && !strcmp(s, "don't go, hello!"), "decode with clean-up: '%s'", s ? s : bl_errmsg());
    free(s);
    int64_t bad[] = {5, -1};
    s = wordpiece_decode(wp, bad, 2, 0, 1, &dl);
    CHECK(!s && strstr(bl_errmsg(), "id -1 at position 2 is out of range"), "decode of id -1: %s", bl_errmsg());

    /* the tokenizer alone: a mixed ASCII / non-ASCII sentence many times */
    const char *sent = "Efficient Transformers for Naïve Bayes-like Classification of 中文 text (2023).";
    size_t sl = strlen(sent);
    clock_t t0 = clock();
    int reps = 20000;
    for (int i = 0; i < reps; i++) {
        ids.n = 0;
        wordpiece_encode(wp, sent, sl, &ids);
    }
    double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("# tokenizer alone: %.2f us per %zu-byte sentence (%zu ids), %.0f sentences/s\n", dt / reps * 1e6, sl,
           ids.n, reps / dt);
    CHECK(ids.n > 10, "timed sentence tokenized");

    wp_ids_free(&ids);
    wordpiece_free(wp);
    wordpiece_free(NULL);
    CHECK(wordpiece_load("no/such/vocab.txt", NULL) == NULL && strstr(bl_errmsg(), "no/such/vocab.txt: cannot open"),
          "missing vocab: %s", bl_errmsg());
    CT_DONE();
}
