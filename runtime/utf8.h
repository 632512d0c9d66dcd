/* utf8.h: the one UTF-8 validator of the runtime (CSV files, safetensors headers, vocabularies,
 * tokenizer input): strict UTF-8, no overlong forms, no UTF-16 surrogates, nothing past U+10FFFF. */
#ifndef BL_UTF8_H
#define BL_UTF8_H
#include <stddef.h>
#include <stdint.h>

/* The offset of the first byte of s[0..n) that starts an invalid (or truncated) sequence, or -1
 * when all of it is valid UTF-8. */
int64_t utf8_invalid_at(const char *s, size_t n);

#endif
