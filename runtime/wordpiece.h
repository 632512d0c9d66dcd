/* wordpiece.h: BERT's tokenizer (Hugging Face's slow BertTokenizer: basic tokenizer + greedy WordPiece)
 * in pure C: vocab.txt loading, text → token ids, ids → tokens, truncation and padding of batches.
 * Non-goals: pair inputs (text_pair), offsets, added tokens beyond the five BERT special tokens.
 * Legend: N texts in a batch, L padded sequence length. Not thread-safe: a tokenizer owns scratch
 * buffers, so use one tokenizer per thread. */
#ifndef BL_WORDPIECE_H
#define BL_WORDPIECE_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

typedef struct wordpiece wordpiece_t;

/* Tokenizer options; -1 means "not given": taken from the folder's tokenizer_config.json when there
 * is one, else the default of bert-base-uncased. */
typedef struct {
    int do_lower_case;          /* default 1: lower-case, and strip accents unless strip_accents == 0 */
    int strip_accents;          /* default -1: follow do_lower_case; 0: never; 1: always */
    int tokenize_chinese_chars; /* default 1: put spaces around CJK ideographs */
} wordpiece_opts_t;

/* A growable list of token ids (append-only; reset by setting n = 0). */
typedef struct {
    int32_t *v;
    size_t n, cap;
} wp_ids_t;

/* Options with every field "not given" (-1). */
wordpiece_opts_t wordpiece_default_opts(void);

/* Loads a vocabulary: `path` is a vocab.txt file or a folder holding one (one token per line, id =
 * line number - 1) and maybe a tokenizer_config.json (do_lower_case, strip_accents,
 * tokenize_chinese_chars, used for options not given). NULL with bl_errmsg() set ("x/vocab.txt: cannot
 * open vocabulary: ...", "...: empty vocabulary", "vocab.txt:12: invalid UTF-8 ...", "vocab.txt:9: token
 * 'a' appears twice (first on line 3)", "vocab.txt: no '[UNK]' token", "x/tokenizer_config.json:
 * 'do_lower_case' must be a boolean"). */
wordpiece_t *wordpiece_load(const char *path, const wordpiece_opts_t *opts);
/* The options in effect (resolved: do_lower_case and tokenize_chinese_chars are 0 or 1). */
wordpiece_opts_t wordpiece_get_opts(const wordpiece_t *wp);
/* Frees the tokenizer; accepts NULL. */
void wordpiece_free(wordpiece_t *wp);

/* Number of distinct tokens (as len(tokenizer.vocab) in transformers). */
int64_t wordpiece_vocab_size(const wordpiece_t *wp);
/* Number of lines (ids 0..n-1 are valid for wordpiece_id_token). */
int64_t wordpiece_num_ids(const wordpiece_t *wp);
/* Id of a token string, or -1 when it is not in the vocabulary. */
int32_t wordpiece_token_id(const wordpiece_t *wp, const char *tok, size_t len);
/* The token of id (NUL-terminated, owned by wp; *len set when non-NULL), or NULL when out of range. */
const char *wordpiece_id_token(const wordpiece_t *wp, int64_t id, size_t *len);
/* Ids of the special tokens ([UNK] always exists; the others are -1 when absent). */
typedef enum { WP_UNK = 0, WP_SEP, WP_PAD, WP_CLS, WP_MASK, WP_NSPECIAL } wp_special_t;
int32_t wordpiece_special_id(const wordpiece_t *wp, wp_special_t which);
/* 1 when id is one of the special tokens' ids (skipped by decode(skip_special_tokens=true)). */
int wordpiece_is_special_id(const wordpiece_t *wp, int64_t id);

/* Appends the ids of `text` (UTF-8, len bytes; no [CLS]/[SEP]) to `out`. -1 with bl_errmsg() set on
 * invalid UTF-8 ("invalid UTF-8 at byte 17") or out of memory. */
int wordpiece_encode(wordpiece_t *wp, const char *text, size_t len, wp_ids_t *out);

/* Options of a batch encode (as transformers' batch_encode_plus for single sequences). */
typedef enum { WP_PAD_NONE = 0, WP_PAD_LONGEST, WP_PAD_MAX_LENGTH } wp_padding_t;
typedef struct {
    int add_special_tokens; /* [CLS] ... [SEP] */
    int truncation;         /* cut tokens on the right (before [SEP]) to fit max_length */
    int64_t max_length;     /* -1: none (only allowed without truncation and without max_length padding) */
    wp_padding_t padding;
} wp_batch_opts_t;

/* Encodes n texts into one flat id list: row i is ids->v[offsets[i] .. offsets[i+1]) (offsets has n+1
 * entries), with special tokens added and truncation applied. Errors name the 1-based text number:
 * "text 3: invalid UTF-8 at byte 5", "text 7: 300 tokens is more than max_length 256 (truncation is off)"
 * (the latter only with max_length padding). */
int wordpiece_encode_batch(wordpiece_t *wp, int64_t n, const char *const *texts, const size_t *lens,
                           const wp_batch_opts_t *o, wp_ids_t *ids, int64_t *offsets);

/* Pads an encoded batch to L = max_length (WP_PAD_MAX_LENGTH) or the longest row (otherwise) into
 * int64 tensors input_ids [N,L] (padded with [PAD]), attention_mask [N,L] (1 real, 0 pad) and
 * token_type_ids [N,L] (zeros); mask/types may be NULL when not wanted. -1 with bl_errmsg() set. */
int wordpiece_pad_batch(const wordpiece_t *wp, int64_t n, const wp_ids_t *ids, const int64_t *offsets,
                        const wp_batch_opts_t *o, tensor_t **input_ids, tensor_t **attention_mask,
                        tensor_t **token_type_ids);

/* Decodes ids as transformers' decode: tokens joined by spaces, " ##" glued, trimmed, and with
 * clean_up (clean_up_tokenization_spaces) " ." → ".", " n't" → "n't", etc. Returns a malloc'd
 * NUL-terminated string (*len bytes), or NULL with bl_errmsg() set ("id 40000 at position 3 is out of
 * range [0, 30522)"). */
char *wordpiece_decode(const wordpiece_t *wp, const int64_t *ids, size_t n, int skip_special_tokens,
                       int clean_up, size_t *len);

/* Appends id to the list; -1 on out of memory. */
int wp_ids_push(wp_ids_t *ids, int32_t id);
/* Frees the list's buffer and resets it; accepts NULL. */
void wp_ids_free(wp_ids_t *ids);

#endif
