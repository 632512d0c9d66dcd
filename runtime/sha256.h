/* sha256.h: SHA-256 (FIPS 180-4) of byte strings and whole files, so a run can record exactly which
 * weights and data produced it. Streaming: init, update any number of times, final. */
#ifndef BL_SHA256_H
#define BL_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];     /* the chaining state */
    uint64_t nbytes;   /* bytes hashed so far */
    uint8_t buf[64];   /* a partial block */
    size_t nbuf;       /* bytes in buf */
} sha256_t;

/* Starts a new hash. */
void sha256_init(sha256_t *s);
/* Hashes n more bytes. */
void sha256_update(sha256_t *s, const void *data, size_t n);
/* Writes the 32-byte digest; the state must be re-initialised before reuse. */
void sha256_final(sha256_t *s, uint8_t digest[32]);
/* The digest as 64 lower-case hex digits and a NUL. */
void sha256_hex(const uint8_t digest[32], char hex[65]);
/* Whether the CPU has the SHA extensions that sha256_update uses when it can (1) or not (0);
 * on >= 0 also chooses: 1 the extensions where the CPU has them, 0 the portable code (for tests:
 * tests/test_sha256.c compares the two); -1 only asks. */
int sha256_hardware(int on);
/* Hex digest of a whole file, read in blocks (bounded memory); -1 after bl_fail naming the file. */
int sha256_file(const char *path, char hex[65]);

#endif
