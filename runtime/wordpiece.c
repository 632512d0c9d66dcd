/* wordpiece.c: BERT tokenization identical to Hugging Face's slow BertTokenizer (BertTokenizerLegacy in
 * transformers 5): special tokens written in the text are split out first (its added-tokens trie), then
 * BasicTokenizer (clean, CJK split, NFC, whitespace split, lower + final sigma, NFD accent strip,
 * punctuation split) and greedy longest-match-first WordPiece. ASCII text takes a fast path with the
 * same result; everything else goes through utf8proc. The vocabulary is an open-addressing hash table. */
#include "wordpiece.h"
#include "error.h"
#include "fileio.h"
#include "utf8.h"
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define WP_MAX_INPUT_CHARS 100 /* longer words become [UNK], as max_input_chars_per_word */

static const char *const special_str[WP_NSPECIAL] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

/* A growable scratch buffer of elements of size `es`. */
typedef struct {
    void *p;
    size_t cap; /* in elements */
} scratch_t;

static int scratch_reserve(scratch_t *s, size_t n, size_t es) {
    if (n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < n) cap *= 2;
    void *p = realloc(s->p, cap * es);
    if (!p) return bl_fail("tokenizer: out of memory (%zu bytes)", cap * es);
    s->p = p;
    s->cap = cap;
    return 0;
}

struct wordpiece {
    wordpiece_opts_t opts;
    char *pool;         /* every token, NUL-terminated, in file order */
    uint32_t *tok_off;  /* [nids] offset of token id in pool */
    uint32_t *tok_len;  /* [nids] byte length */
    int64_t nids;       /* lines in vocab.txt */
    int64_t ndistinct;  /* distinct tokens (== nids: a repeated token is refused) */
    int32_t *full;      /* [mask+1] hash slots: id of a token, -1 empty */
    int32_t *cont;      /* [mask+1] hash slots for "##x" tokens keyed by "x" */
    size_t mask;
    size_t maxlen_full, maxlen_cont; /* longest key in bytes: longer substrings cannot match */
    int32_t special[WP_NSPECIAL];
    /* scratch (why the tokenizer is not thread-safe) */
    scratch_t word;  /* char: a cleaned ASCII word / a UTF-8 piece */
    scratch_t u8a;   /* char: cleaned text before NFC */
    scratch_t u32a;  /* int32: NFC code points */
    scratch_t u32b;  /* int32: a lower-cased token */
    scratch_t u8b;   /* char: a lower-cased token in UTF-8 */
    scratch_t u32c;  /* int32: its NFD */
};

/* ---- vocabulary ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Slot of key in table (its id) or of the empty slot where it would go. */
static size_t slot_find(const wordpiece_t *wp, const int32_t *tab, int skip, const char *key, size_t n) {
    size_t i = hash_bytes(key, n) & wp->mask;
    for (;;) {
        int32_t id = tab[i];
        if (id < 0) return i;
        if (wp->tok_len[id] - skip == n && !memcmp(wp->pool + wp->tok_off[id] + skip, key, n)) return i;
        i = (i + 1) & wp->mask;
    }
}

static inline int32_t lookup_full(const wordpiece_t *wp, const char *key, size_t n) {
    return wp->full[slot_find(wp, wp->full, 0, key, n)];
}

static inline int32_t lookup_cont(const wordpiece_t *wp, const char *key, size_t n) {
    return wp->cont[slot_find(wp, wp->cont, 2, key, n)];
}

wordpiece_opts_t wordpiece_default_opts(void) {
    wordpiece_opts_t o = {.do_lower_case = -1, .strip_accents = -1, .tokenize_chinese_chars = -1};
    return o;
}

wordpiece_opts_t wordpiece_get_opts(const wordpiece_t *wp) { return wp->opts; }

/* Fills options not given from <dir>/tokenizer_config.json when it exists (as transformers'
 * from_pretrained does); a JSON null leaves the option unset. */
static int read_tokenizer_config(const char *dir, wordpiece_opts_t *o) {
    char file[4096];
    snprintf(file, sizeof file, "%s%stokenizer_config.json", dir, dir[strlen(dir) - 1] == '/' ? "" : "/");
    if (!path_is_file(file)) return 0;
    json_error_t err;
    json_t *root = json_load_file(file, 0, &err);
    if (!root) return bl_fail("%s:%d: %s", file, err.line, err.text);
    static const char *const keys[] = {"do_lower_case", "strip_accents", "tokenize_chinese_chars"};
    int *fields[] = {&o->do_lower_case, &o->strip_accents, &o->tokenize_chinese_chars};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        json_t *v = json_is_object(root) ? json_object_get(root, keys[i]) : NULL;
        if (!v || json_is_null(v) || *fields[i] != -1) continue;
        if (!json_is_boolean(v)) rc = bl_fail("%s: '%s' must be a boolean or null", file, keys[i]);
        else *fields[i] = json_is_true(v);
    }
    json_decref(root);
    return rc;
}

/* valid UTF-8 (utf8.h), with the first bad byte's offset in *bad otherwise */
static int valid_utf8(const char *s, size_t n, size_t *bad) {
    int64_t at = utf8_invalid_at(s, n);
    if (at >= 0) *bad = (size_t)at;
    return at < 0;
}

wordpiece_t *wordpiece_load(const char *path, const wordpiece_opts_t *opts) {
    char file[4096];
    if (!path || !*path) {
        bl_fail("vocabulary path is empty");
        return NULL;
    }
    wordpiece_opts_t o = opts ? *opts : wordpiece_default_opts();
    if (path_is_dir(path)) {
        snprintf(file, sizeof file, "%s%svocab.txt", path, path[strlen(path) - 1] == '/' ? "" : "/");
        if (read_tokenizer_config(path, &o)) return NULL;
    } else
        snprintf(file, sizeof file, "%s", path);
    if (o.do_lower_case < 0) o.do_lower_case = 1;
    if (o.tokenize_chinese_chars < 0) o.tokenize_chinese_chars = 1;
    size_t len;
    char *text = file_read_all_as(file, "vocabulary", &len);
    if (!text) return NULL;
    wordpiece_t *wp = calloc(1, sizeof *wp);
    if (!wp) { free(text); bl_fail("out of memory"); return NULL; }
    wp->opts = o;
    wp->pool = text;
    /* Lines end at \n, \r\n or \r (Python's universal newlines); the terminator becomes the NUL. */
    size_t nlines = 0;
    for (size_t i = 0; i < len;) {
        nlines++;
        while (i < len && text[i] != '\n' && text[i] != '\r') i++;
        if (i < len) i += (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') ? 2 : 1;
    }
    if (nlines == 0) {
        bl_fail("%s: empty vocabulary", file);
        goto fail;
    }
    if (nlines > INT32_MAX / 4 || len > UINT32_MAX) {
        bl_fail("%s: vocabulary too large", file);
        goto fail;
    }
    wp->nids = (int64_t)nlines;
    wp->tok_off = malloc(nlines * sizeof *wp->tok_off);
    wp->tok_len = malloc(nlines * sizeof *wp->tok_len);
    size_t cap = 16;
    while (cap < 2 * nlines) cap *= 2;
    wp->mask = cap - 1;
    wp->full = malloc(cap * sizeof *wp->full);
    wp->cont = malloc(cap * sizeof *wp->cont);
    if (!wp->tok_off || !wp->tok_len || !wp->full || !wp->cont) {
        bl_fail("%s: out of memory", file);
        goto fail;
    }
    memset(wp->full, 0xff, cap * sizeof *wp->full);
    memset(wp->cont, 0xff, cap * sizeof *wp->cont);
    size_t id = 0;
    for (size_t i = 0; i < len; id++) {
        size_t s = i;
        while (i < len && text[i] != '\n' && text[i] != '\r') i++;
        size_t e = i;
        if (i < len) i += (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') ? 2 : 1;
        text[e] = 0;
        size_t bad;
        if (!valid_utf8(text + s, e - s, &bad)) {
            bl_fail("%s:%zu: invalid UTF-8 at byte %zu of the line", file, id + 1, bad + 1);
            goto fail;
        }
        if (memchr(text + s, '\0', e - s)) {
            bl_fail("%s:%zu: NUL byte in the token (not a text file?)", file, id + 1);
            goto fail;
        }
        wp->tok_off[id] = (uint32_t)s;
        wp->tok_len[id] = (uint32_t)(e - s);
        size_t k = slot_find(wp, wp->full, 0, text + s, e - s);
        if (wp->full[k] >= 0) { /* transformers keeps the last id silently; a repeat is a broken file */
            bl_fail("%s:%zu: token '%.*s' appears twice (first on line %d)", file, id + 1, (int)(e - s > 64 ? 64 : e - s),
                    text + s, wp->full[k] + 1);
            goto fail;
        }
        wp->ndistinct++;
        wp->full[k] = (int32_t)id;
        if (e - s > wp->maxlen_full) wp->maxlen_full = e - s;
        if (e - s >= 2 && text[s] == '#' && text[s + 1] == '#') {
            k = slot_find(wp, wp->cont, 2, text + s + 2, e - s - 2);
            wp->cont[k] = (int32_t)id;
            if (e - s - 2 > wp->maxlen_cont) wp->maxlen_cont = e - s - 2;
        }
    }
    for (int i = 0; i < WP_NSPECIAL; i++) wp->special[i] = lookup_full(wp, special_str[i], strlen(special_str[i]));
    if (wp->special[WP_UNK] < 0) {
        bl_fail("%s: no '[UNK]' token in the vocabulary", file);
        goto fail;
    }
    return wp;
fail:
    wordpiece_free(wp);
    return NULL;
}

void wordpiece_free(wordpiece_t *wp) {
    if (!wp) return;
    free(wp->pool);
    free(wp->tok_off);
    free(wp->tok_len);
    free(wp->full);
    free(wp->cont);
    free(wp->word.p);
    free(wp->u8a.p);
    free(wp->u32a.p);
    free(wp->u32b.p);
    free(wp->u8b.p);
    free(wp->u32c.p);
    free(wp);
}

int64_t wordpiece_vocab_size(const wordpiece_t *wp) { return wp->ndistinct; }
int64_t wordpiece_num_ids(const wordpiece_t *wp) { return wp->nids; }

int32_t wordpiece_token_id(const wordpiece_t *wp, const char *tok, size_t len) { return lookup_full(wp, tok, len); }

const char *wordpiece_id_token(const wordpiece_t *wp, int64_t id, size_t *len) {
    if (id < 0 || id >= wp->nids) return NULL;
    if (len) *len = wp->tok_len[id];
    return wp->pool + wp->tok_off[id];
}

int32_t wordpiece_special_id(const wordpiece_t *wp, wp_special_t which) { return wp->special[which]; }

int wordpiece_is_special_id(const wordpiece_t *wp, int64_t id) {
    /* transformers' all_special_ids: a special token absent from the vocabulary maps to [UNK]'s id */
    for (int i = 0; i < WP_NSPECIAL; i++)
        if (id == (wp->special[i] >= 0 ? wp->special[i] : wp->special[WP_UNK])) return 1;
    return 0;
}

/* ---- id lists -------------------------------------------------------------------------------- */

int wp_ids_push(wp_ids_t *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 256;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return bl_fail("tokenizer: out of memory");
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

void wp_ids_free(wp_ids_t *ids) {
    if (!ids) return;
    free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

/* ---- WordPiece ------------------------------------------------------------------------------- */

/* Greedy longest-match-first split of one word (UTF-8, nchars code points) into vocabulary pieces;
 * the whole word becomes [UNK] when a part matches nothing or it is over 100 characters. */
static int wp_word(const wordpiece_t *wp, const char *s, size_t len, size_t nchars, wp_ids_t *out) {
    if (len == 0) return 0;
    if (nchars > WP_MAX_INPUT_CHARS) return wp_ids_push(out, wp->special[WP_UNK]);
    size_t mark = out->n, start = 0;
    while (start < len) {
        size_t maxl = start == 0 ? wp->maxlen_full : wp->maxlen_cont;
        size_t end = len - start > maxl ? start + maxl : len;
        int32_t id = -1;
        for (; end > start; end--) {
            if (end < len && ((unsigned char)s[end] & 0xC0) == 0x80) continue; /* not a char boundary */
            id = start == 0 ? lookup_full(wp, s, end) : lookup_cont(wp, s + start, end - start);
            if (id >= 0) break;
        }
        if (id < 0) {
            out->n = mark;
            return wp_ids_push(out, wp->special[WP_UNK]);
        }
        if (wp_ids_push(out, id)) return -1;
        start = end;
    }
    return 0;
}

/* A whitespace-delimited token equal to a special token is kept whole (BasicTokenizer's never_split). */
static int is_special_str(const char *s, size_t n) {
    if (n < 5 || n > 6 || s[0] != '[') return 0;
    for (int i = 0; i < WP_NSPECIAL; i++)
        if (strlen(special_str[i]) == n && !memcmp(special_str[i], s, n)) return 1;
    return 0;
}

/* ---- character classes (transformers' _is_control, _is_whitespace, _is_punctuation) ---------- */

/* Code points assigned in Unicode 15.0 (utf8proc's tables) but unassigned (Cn) in Unicode 14.0, the
 * database of Python 3.11 that produced the reference: transformers drops them as control characters.
 * Generated by comparing unicodedata.category with utf8proc_category over all code points. */
static const int32_t u15_new[][2] = {
    {0xCF3, 0xCF3}, {0xECE, 0xECE}, {0x10EFD, 0x10EFF}, {0x1123F, 0x11241}, {0x11B00, 0x11B09},
    {0x11F00, 0x11F10}, {0x11F12, 0x11F3A}, {0x11F3E, 0x11F59}, {0x1342F, 0x1342F}, {0x13439, 0x13455},
    {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D},
    {0x1E08F, 0x1E08F}, {0x1E4D0, 0x1E4F9}, {0x1F6DC, 0x1F6DC}, {0x1F774, 0x1F776}, {0x1F77B, 0x1F77F},
    {0x1F7D9, 0x1F7D9}, {0x1FA75, 0x1FA77}, {0x1FA87, 0x1FA88}, {0x1FAAD, 0x1FAAF}, {0x1FABB, 0x1FABD},
    {0x1FABF, 0x1FABF}, {0x1FACE, 0x1FACF}, {0x1FADA, 0x1FADB}, {0x1FAE8, 0x1FAE8}, {0x1FAF7, 0x1FAF8},
    {0x2B739, 0x2B739}, {0x31350, 0x323AF}};

static int in_ranges(int32_t c, const int32_t (*r)[2], size_t n) {
    for (size_t i = 0; i < n; i++)
        if (c >= r[i][0] && c <= r[i][1]) return 1;
    return 0;
}

static int is_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: return 1;
    default: break;
    }
    return c >= 0xCF3 && in_ranges(c, u15_new, sizeof u15_new / sizeof *u15_new);
}

static int is_whitespace(int32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static inline int is_ascii_punct(int c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static int is_punct(int32_t c) {
    if (c < 128) return is_ascii_punct(c);
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Python's str.isspace (what str.split() splits on). */
static int is_pyspace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Unicode's Cased and Case_Ignorable properties, for str.lower()'s final-sigma rule. */
static const int32_t other_cased[][2] = {
    {0xAA, 0xAA}, {0xBA, 0xBA}, {0x2B0, 0x2B8}, {0x2C0, 0x2C1}, {0x2E0, 0x2E4}, {0x345, 0x345},
    {0x37A, 0x37A}, {0x10FC, 0x10FC}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DBF},
    {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2160, 0x217F}, {0x24B6, 0x24E9},
    {0x2C7C, 0x2C7D}, {0xA69C, 0xA69D}, {0xA770, 0xA770}, {0xA7F8, 0xA7F9}, {0xAB5C, 0xAB5F},
    {0x10780, 0x10780}, {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
    {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};

static int is_cased(int32_t c) {
    utf8proc_category_t k = utf8proc_category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    if (utf8proc_tolower(c) != c || utf8proc_toupper(c) != c) return 1;
    return in_ranges(c, other_cased, sizeof other_cased / sizeof *other_cased);
}

static int is_case_ignorable(int32_t c) {
    switch (c) { /* Word_Break MidLetter, MidNumLet, Single_Quote */
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A: return 1;
    default: break;
    }
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK: return 1;
    default: return 0;
    }
}

/* Python's rule: capital sigma at i is final when a cased letter precedes it (skipping case-ignorable
 * ones) and none follows. */
static int final_sigma(const int32_t *s, size_t start, size_t i, size_t end) {
    size_t j = i;
    int32_t c = 0;
    int found = 0;
    while (j > start) {
        c = s[--j];
        if (!is_case_ignorable(c)) { found = 1; break; }
    }
    if (!found || !is_cased(c)) return 0;
    for (j = i + 1; j < end; j++) {
        c = s[j];
        if (!is_case_ignorable(c)) return !is_cased(c);
    }
    return 1;
}

/* ---- the basic tokenizer --------------------------------------------------------------------- */

/* ASCII fast path: one whitespace token (control bytes already dropped), lower-cased unless it is a
 * special token, split at punctuation, each piece through WordPiece. */
static int ascii_word(wordpiece_t *wp, char *w, size_t n, wp_ids_t *out) {
    if (is_special_str(w, n)) return wp_word(wp, w, n, n, out);
    if (wp->opts.do_lower_case)
        for (size_t i = 0; i < n; i++)
            if (w[i] >= 'A' && w[i] <= 'Z') w[i] += 'a' - 'A';
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_ascii_punct((unsigned char)w[i])) continue;
        if (i > s && wp_word(wp, w + s, i - s, i - s, out)) return -1;
        if (wp_word(wp, w + i, 1, 1, out)) return -1;
        s = i + 1;
    }
    return n > s ? wp_word(wp, w + s, n - s, n - s, out) : 0;
}

static int ascii_segment(wordpiece_t *wp, const char *s, size_t n, wp_ids_t *out) {
    if (scratch_reserve(&wp->word, n + 1, 1)) return -1;
    char *w = wp->word.p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (k && ascii_word(wp, w, k, out)) return -1;
            k = 0;
        } else if (c >= 0x20 && c != 0x7F) {
            w[k++] = (char)c;
        } /* other control characters are dropped, joining their neighbours */
    }
    return k ? ascii_word(wp, w, k, out) : 0;
}

/* UTF-8 of cps[0..n) into scratch `dst` (NUL-terminated); returns the byte length or -1. */
static ssize_t encode_u8(scratch_t *dst, const int32_t *cps, size_t n) {
    if (scratch_reserve(dst, 4 * n + 1, 1)) return -1;
    unsigned char *p = dst->p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)utf8proc_encode_char(cps[i], p + k);
    p[k] = 0;
    return (ssize_t)k;
}

/* utf8proc_decompose of UTF-8 `s` into scratch `dst` (int32) with `opt`; returns the count or -1. */
static ssize_t decompose(scratch_t *dst, const char *s, size_t n, utf8proc_option_t opt) {
    for (;;) {
        utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, dst->p,
                                                (utf8proc_ssize_t)dst->cap, opt);
        if (r < 0) return bl_fail("tokenizer: unicode normalization failed: %s", utf8proc_errmsg(r));
        if ((size_t)r <= dst->cap) return r;
        if (scratch_reserve(dst, (size_t)r, sizeof(int32_t))) return -1;
    }
}

/* Splits code points at punctuation and runs WordPiece on each piece. */
static int punct_split(wordpiece_t *wp, const int32_t *c, size_t n, wp_ids_t *out) {
    size_t s = 0;
    for (size_t i = 0; i <= n; i++) {
        int p = i < n && is_punct(c[i]);
        if (i < n && !p) continue;
        if (i > s) {
            ssize_t k = encode_u8(&wp->word, c + s, i - s);
            if (k < 0 || wp_word(wp, wp->word.p, (size_t)k, i - s, out)) return -1;
        }
        if (p) {
            ssize_t k = encode_u8(&wp->word, c + i, 1);
            if (k < 0 || wp_word(wp, wp->word.p, (size_t)k, 1, out)) return -1;
        }
        s = i + 1;
    }
    return 0;
}

/* One whitespace token of NFC code points: never-split check, lower-case (with final sigma), accent
 * stripping (NFD, drop Mn), punctuation split. */
static int unicode_word(wordpiece_t *wp, const int32_t *t, size_t n, wp_ids_t *out) {
    if (n >= 5 && n <= 6 && t[0] == '[') {
        char w[8];
        size_t i = 0;
        while (i < n && t[i] < 128) { w[i] = (char)t[i]; i++; }
        if (i == n && is_special_str(w, n)) return wp_word(wp, w, n, n, out);
    }
    int lower = wp->opts.do_lower_case;
    int strip = lower ? wp->opts.strip_accents != 0 : wp->opts.strip_accents == 1;
    if (!lower && !strip) return punct_split(wp, t, n, out);
    const int32_t *cur = t;
    size_t m = n;
    if (lower) {
        if (scratch_reserve(&wp->u32b, 2 * n, sizeof(int32_t))) return -1;
        int32_t *l = wp->u32b.p;
        m = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t c = t[i];
            if (c == 0x3A3) l[m++] = final_sigma(t, 0, i, n) ? 0x3C2 : 0x3C3;
            else if (c == 0x130) { l[m++] = 'i'; l[m++] = 0x307; } /* the one multi-char lower case */
            else l[m++] = utf8proc_tolower(c);
        }
        cur = l;
    }
    if (strip) {
        ssize_t k = encode_u8(&wp->u8b, cur, m);
        if (k < 0) return -1;
        ssize_t r = decompose(&wp->u32c, wp->u8b.p, (size_t)k, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        if (r < 0) return -1;
        int32_t *d = wp->u32c.p;
        m = 0;
        for (ssize_t i = 0; i < r; i++)
            if (utf8proc_category(d[i]) != UTF8PROC_CATEGORY_MN) d[m++] = d[i];
        cur = d;
    }
    return punct_split(wp, cur, m, out);
}

/* General path for text with non-ASCII characters (valid UTF-8). */
static int unicode_segment(wordpiece_t *wp, const char *s, size_t n, wp_ids_t *out) {
    /* clean text (drop NUL, U+FFFD, controls; whitespace → space) and space out CJK ideographs */
    if (scratch_reserve(&wp->u8a, 3 * n + 1, 1)) return -1;
    unsigned char *a = wp->u8a.p;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        i += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_whitespace(c)) a[k++] = ' ';
        else if (wp->opts.tokenize_chinese_chars && is_cjk(c)) {
            a[k++] = ' ';
            k += (size_t)utf8proc_encode_char(c, a + k);
            a[k++] = ' ';
        } else k += (size_t)utf8proc_encode_char(c, a + k);
    }
    /* NFC, then split on whitespace */
    ssize_t r = decompose(&wp->u32a, (const char *)a, k, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return -1;
    int32_t *c = wp->u32a.p;
    r = utf8proc_normalize_utf32(c, r, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return bl_fail("tokenizer: unicode normalization failed: %s", utf8proc_errmsg(r));
    size_t st = 0;
    for (size_t i = 0; i <= (size_t)r; i++) {
        if (i < (size_t)r && !is_pyspace(c[i])) continue;
        if (i > st && unicode_word(wp, c + st, i - st, out)) return -1;
        st = i + 1;
    }
    return 0;
}

/* Text between special tokens. ASCII whitespace is a boundary for every step (NFC never composes
 * across a space), so each chunk between ASCII spaces takes the fast path unless it has non-ASCII bytes. */
static int basic_segment(wordpiece_t *wp, const char *s, size_t n, int ascii, wp_ids_t *out) {
    if (n == 0) return 0;
    if (ascii) return ascii_segment(wp, s, n, out);
    size_t st = 0;
    int chunk_ascii = 1;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : ' ';
        if (c >= 0x80) chunk_ascii = 0;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') continue;
        if (i > st) {
            int rc = chunk_ascii ? ascii_segment(wp, s + st, i - st, out) : unicode_segment(wp, s + st, i - st, out);
            if (rc) return -1;
        }
        st = i + 1;
        chunk_ascii = 1;
    }
    return 0;
}

int wordpiece_encode(wordpiece_t *wp, const char *text, size_t len, wp_ids_t *out) {
    int ascii = 1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0x80) { ascii = 0; break; }
    size_t bad;
    if (!ascii && !valid_utf8(text, len, &bad)) return bl_fail("invalid UTF-8 at byte %zu", bad + 1);
    /* special tokens anywhere in the raw text are cut out first and kept whole */
    size_t seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '[') continue;
        for (int k = 0; k < WP_NSPECIAL; k++) {
            size_t sl = strlen(special_str[k]);
            if (sl > len - i || memcmp(text + i, special_str[k], sl)) continue;
            if (basic_segment(wp, text + seg, i - seg, ascii, out)) return -1;
            int32_t id = wp->special[k] >= 0 ? wp->special[k] : wp->special[WP_UNK];
            if (wp_ids_push(out, id)) return -1;
            i += sl - 1;
            seg = i + 1;
            break;
        }
    }
    return basic_segment(wp, text + seg, len - seg, ascii, out);
}

/* ---- batches --------------------------------------------------------------------------------- */

int wordpiece_encode_batch(wordpiece_t *wp, int64_t n, const char *const *texts, const size_t *lens,
                           const wp_batch_opts_t *o, wp_ids_t *ids, int64_t *offsets) {
    int spec = o->add_special_tokens ? 2 : 0;
    int limited = o->max_length >= 0 && (o->truncation || o->padding == WP_PAD_MAX_LENGTH);
    if (o->padding == WP_PAD_MAX_LENGTH && o->max_length < 0)
        return bl_fail("padding='max_length' needs max_length");
    if (limited && o->max_length < spec)
        return bl_fail("max_length must be at least 2 with add_special_tokens (got %lld)", (long long)o->max_length);
    if (spec) {
        if (wp->special[WP_CLS] < 0) return bl_fail("the vocabulary has no '[CLS]' token (add_special_tokens)");
        if (wp->special[WP_SEP] < 0) return bl_fail("the vocabulary has no '[SEP]' token (add_special_tokens)");
    }
    for (int64_t i = 0; i < n; i++) {
        offsets[i] = (int64_t)ids->n;
        if (spec && wp_ids_push(ids, wp->special[WP_CLS])) return -1;
        size_t mark = ids->n;
        if (wordpiece_encode(wp, texts[i], lens[i], ids)) return bl_fail_prefix("text %lld: ", (long long)i + 1);
        size_t ntok = ids->n - mark;
        if (o->max_length >= 0 && ntok + spec > (size_t)o->max_length) {
            if (o->truncation) ids->n = mark + (size_t)o->max_length - spec;
            else if (o->padding == WP_PAD_MAX_LENGTH)
                return bl_fail("text %lld: %zu tokens is more than max_length %lld (truncation is off)",
                               (long long)i + 1, ntok + spec, (long long)o->max_length);
        }
        if (spec && wp_ids_push(ids, wp->special[WP_SEP])) return -1;
    }
    offsets[n] = (int64_t)ids->n;
    return 0;
}

int wordpiece_pad_batch(const wordpiece_t *wp, int64_t n, const wp_ids_t *ids, const int64_t *offsets,
                        const wp_batch_opts_t *o, tensor_t **input_ids, tensor_t **attention_mask,
                        tensor_t **token_type_ids) {
    int64_t L = 0;
    for (int64_t i = 0; i < n; i++)
        if (offsets[i + 1] - offsets[i] > L) L = offsets[i + 1] - offsets[i];
    if (o->padding == WP_PAD_MAX_LENGTH) {
        if (L > o->max_length)
            return bl_fail("a row of %lld tokens is longer than max_length %lld", (long long)L,
                           (long long)o->max_length);
        L = o->max_length;
    }
    int32_t pad = wp->special[WP_PAD];
    if (pad < 0) {
        for (int64_t i = 0; i < n; i++)
            if (offsets[i + 1] - offsets[i] < L) return bl_fail("the vocabulary has no '[PAD]' token (padding)");
        pad = 0;
    }
    int64_t shape[2] = {n, L};
    tensor_t *t_ids = tensor_new(DT_I64, 2, shape);
    tensor_t *t_mask = attention_mask ? tensor_new(DT_I64, 2, shape) : NULL;
    tensor_t *t_type = token_type_ids ? tensor_new(DT_I64, 2, shape) : NULL;
    if (!t_ids || (attention_mask && !t_mask) || (token_type_ids && !t_type)) {
        tensor_free(t_ids);
        tensor_free(t_mask);
        tensor_free(t_type);
        return -1;
    }
    int64_t *pi = t_ids->data, *pm = t_mask ? t_mask->data : NULL;
    for (int64_t i = 0; i < n && L > 0; i++) { /* L == 0: every row empty, ids->v may be NULL */
        int64_t len = offsets[i + 1] - offsets[i];
        const int32_t *src = len ? ids->v + offsets[i] : NULL;
        int64_t *row = pi + i * L;
        for (int64_t j = 0; j < len; j++) row[j] = src[j];
        for (int64_t j = len; j < L; j++) row[j] = pad;
        if (pm)
            for (int64_t j = 0; j < L; j++) pm[i * L + j] = j < len;
    }
    *input_ids = t_ids;
    if (attention_mask) *attention_mask = t_mask;
    if (token_type_ids) *token_type_ids = t_type; /* zero-filled by tensor_new */
    return 0;
}

/* ---- decoding -------------------------------------------------------------------------------- */

/* Replaces every `from` by `to` (to no longer than from) in place, left to right as str.replace. */
static size_t replace_all(char *s, size_t n, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;
    while (r < n) {
        if (r + fl <= n && !memcmp(s + r, from, fl)) {
            memcpy(s + w, to, tl);
            w += tl;
            r += fl;
        } else s[w++] = s[r++];
    }
    s[w] = 0;
    return w;
}

char *wordpiece_decode(const wordpiece_t *wp, const int64_t *ids, size_t n, int skip_special_tokens,
                       int clean_up, size_t *len) {
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        if (!wordpiece_id_token(wp, ids[i], &tl)) {
            bl_fail("id %lld at position %zu is out of range [0, %lld)", (long long)ids[i], i + 1,
                    (long long)wp->nids);
            return NULL;
        }
        total += tl + 1;
    }
    char *s = malloc(total);
    if (!s) {
        bl_fail("decode: out of memory");
        return NULL;
    }
    size_t k = 0;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip_special_tokens && wordpiece_is_special_id(wp, ids[i])) continue;
        size_t tl = 0;
        const char *t = wordpiece_id_token(wp, ids[i], &tl);
        if (!first) s[k++] = ' ';
        memcpy(s + k, t, tl);
        k += tl;
        first = 0;
    }
    s[k] = 0;
    k = replace_all(s, k, " ##", "");
    /* str.strip() (ASCII whitespace: vocabulary tokens hold no other) */
    size_t a = 0;
    while (a < k && (unsigned char)s[a] < 0x80 && is_pyspace((unsigned char)s[a])) a++;
    while (k > a && (unsigned char)s[k - 1] < 0x80 && is_pyspace((unsigned char)s[k - 1])) k--;
    memmove(s, s + a, k - a);
    k -= a;
    s[k] = 0;
    if (clean_up) {
        static const char *const rep[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
                                             {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},
                                             {" 've", "'ve"}, {" 're", "'re"}};
        for (size_t i = 0; i < sizeof rep / sizeof *rep; i++) k = replace_all(s, k, rep[i][0], rep[i][1]);
    }
    if (len) *len = k;
    return s;
}
