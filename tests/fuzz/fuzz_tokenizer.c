/* fuzz_tokenizer.c: libFuzzer target for the tokenizer (runtime/wordpiece.c). The first byte picks
 * the options (lower case, accent stripping, CJK spacing, max_length, padding) and whether the input
 * carries its own vocabulary: then the bytes up to the first "\0\0" are vocab.txt and the rest is the
 * text; otherwise a built-in vocabulary tokenizes the rest. Every id produced must be a valid id,
 * batches must pad to rectangular tensors, and decode must take back what encode gave. */
#define _GNU_SOURCE /* memfd_create, memmem */
#include "../../runtime/error.h"
#include "../../runtime/wordpiece.h"
#include "fuzz_util.h"
#include <string.h>

static const char builtin_vocab[] =
    "[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n\"\n#\n,\n.\n?\na\nb\nc\nthe\nquery\n##ing\n##s\n"
    "data\nbase\n##base\ncafe\ncaf\n##e\n\xc3\xa9\n\xe4\xb8\xad\n\xce\xbf\n\xcf\x82\n\xcf\x83\nnet\n##work\n"
    "low\n##er\n-\n'\nn\n##t\nt\n1\n2\n##1\n\xf0\x9f\x98\x80\n";

static int fd_builtin = -1, fd_vocab = -1;
static wordpiece_t *builtin[8]; /* per option combination */

static void run_text(wordpiece_t *wp, const char *text, size_t n, unsigned flags) {
    wp_ids_t ids = {0};
    int rc = wordpiece_encode(wp, text, n, &ids);
    if (rc == 0) {
        for (size_t i = 0; i < ids.n; i++) FUZZ_ASSERT(ids.v[i] >= 0 && ids.v[i] < wordpiece_num_ids(wp));
        int64_t *ids64 = malloc((ids.n + 1) * sizeof *ids64);
        for (size_t i = 0; i < ids.n; i++) ids64[i] = ids.v[i];
        size_t len;
        char *s = wordpiece_decode(wp, ids64, ids.n, (flags >> 3) & 1, (flags >> 4) & 1, &len);
        FUZZ_ASSERT(s != NULL && strlen(s) == len);
        free(s);
        free(ids64);
    } else {
        FUZZ_ASSERT(bl_errmsg()[0] != '\0');
    }
    wp_ids_free(&ids);

    /* the same text as a batch of two: itself and its first half */
    const char *texts[2] = {text, text};
    size_t lens[2] = {n, n / 2};
    wp_batch_opts_t o = {.add_special_tokens = (flags >> 5) & 1, .truncation = (flags >> 6) & 1,
                         .max_length = (flags >> 7) & 1 ? 8 : -1,
                         .padding = (flags >> 7) & 1 ? WP_PAD_MAX_LENGTH : WP_PAD_LONGEST};
    wp_ids_t b = {0};
    int64_t off[3];
    if (wordpiece_encode_batch(wp, 2, texts, lens, &o, &b, off) == 0) {
        FUZZ_ASSERT(off[0] == 0 && off[0] <= off[1] && off[1] <= off[2] && (size_t)off[2] == b.n);
        tensor_t *ti = NULL, *tm = NULL, *tt = NULL;
        if (wordpiece_pad_batch(wp, 2, &b, off, &o, &ti, &tm, &tt) == 0) {
            FUZZ_ASSERT(ti->ndim == 2 && ti->shape[0] == 2 && tm->shape[1] == ti->shape[1]);
            if (o.padding == WP_PAD_MAX_LENGTH) FUZZ_ASSERT(ti->shape[1] == 8);
            const int64_t *v = ti->data;
            for (int64_t i = 0; i < ti->numel; i++) FUZZ_ASSERT(v[i] >= 0 && v[i] < wordpiece_num_ids(wp));
            tensor_free(ti);
            tensor_free(tm);
            tensor_free(tt);
        }
    }
    wp_ids_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned flags = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    wordpiece_opts_t opts = wordpiece_default_opts();
    opts.do_lower_case = flags & 1;
    opts.strip_accents = (flags >> 1) & 1 ? -1 : 0;
    opts.tokenize_chinese_chars = (flags >> 2) & 1;
    char path[64];
    if ((flags >> 7) & 1 && (flags >> 6) & 1) { /* own vocabulary: vocab "\0\0" text */
        const char *sep = memmem(rest, n, "\0\0", 2);
        size_t vn = sep ? (size_t)(sep - rest) : n;
        fuzz_memfile(&fd_vocab, (const uint8_t *)rest, vn, path, sizeof path);
        wordpiece_t *wp = wordpiece_load(path, &opts);
        if (!wp) {
            FUZZ_ASSERT(strstr(bl_errmsg(), path) != NULL);
            return 0;
        }
        FUZZ_ASSERT(wordpiece_vocab_size(wp) >= 1 && wordpiece_vocab_size(wp) <= wordpiece_num_ids(wp));
        FUZZ_ASSERT(wordpiece_special_id(wp, WP_UNK) >= 0);
        for (int64_t i = 0; i < wordpiece_num_ids(wp); i++) {
            size_t tl;
            const char *tok = wordpiece_id_token(wp, i, &tl);
            FUZZ_ASSERT(tok && wordpiece_token_id(wp, tok, tl) >= 0);
        }
        if (sep) run_text(wp, sep + 2, n - vn - 2, flags);
        wordpiece_free(wp);
        return 0;
    }
    int k = flags & 7;
    if (!builtin[k]) {
        fuzz_memfile(&fd_builtin, (const uint8_t *)builtin_vocab, sizeof builtin_vocab - 1, path, sizeof path);
        builtin[k] = wordpiece_load(path, &opts);
        FUZZ_ASSERT(builtin[k] != NULL);
    }
    run_text(builtin[k], rest, n, flags);
    return 0;
}
