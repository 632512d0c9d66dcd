/* test_sha256.c: runtime/sha256.c's two compressions, the portable code and the SHA extensions
 * (sha256_hardware chooses), each on FIPS 180-4's vectors, then against each other on messages of
 * every length around the block and padding boundaries, fed in uneven pieces. (tests/test_sha256.lua
 * checks the path a run takes against hashlib's digests.) */
#include "../runtime/sha256.h"
#include "ctest.h"
#include <stdlib.h>
#include <string.h>

static void digest(const uint8_t *m, size_t n, size_t piece, char hex[65]) {
    sha256_t s;
    uint8_t d[32];
    sha256_init(&s);
    for (size_t at = 0; at < n; at += piece) sha256_update(&s, m + at, n - at < piece ? n - at : piece);
    sha256_final(&s, d);
    sha256_hex(d, hex);
}

static int vectors(const char *what) {
    static uint8_t million[1000000];
    memset(million, 'a', sizeof million);
    const char *msg448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char a[65], e[65], l[65], mil[65];
    digest((const uint8_t *)"abc", 3, 3, a);
    digest((const uint8_t *)"", 0, 1, e);
    digest((const uint8_t *)msg448, strlen(msg448), 5, l);
    digest(million, sizeof million, 4099, mil);
    int ok = !strcmp(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") &&
             !strcmp(e, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") &&
             !strcmp(l, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") &&
             !strcmp(mil, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(ok, "%s: the FIPS 180-4 vectors (abc, empty, 448 bits, a million 'a' in 4099-byte pieces)", what);
    return ok;
}

int main(void) {
    int hw = sha256_hardware(0);
    vectors("portable");
    if (!hw) {
        SKIP("the SHA extensions: this CPU has none (cpuid leaf 7, EBX bit 29), only the portable code runs");
        CT_DONE();
    }
    sha256_hardware(1);
    vectors("SHA extensions");
    enum { MAX = 1200 };
    uint8_t *m = malloc(MAX + 70000);
    unsigned x = 12345;
    for (size_t i = 0; i < MAX + 70000; i++) m[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    int bad = 0;
    size_t first = 0;
    for (size_t n = 0; n <= MAX; n++) {
        char p[65], h[65];
        size_t piece = 1 + n % 97; /* pieces that start and end anywhere in a block */
        sha256_hardware(0);
        digest(m, n, piece, p);
        sha256_hardware(1);
        digest(m, n, n % 3 ? piece : n + 1, h);
        if (strcmp(p, h) && !bad++) first = n;
    }
    CHECK(bad == 0, "SHA extensions = portable on every length 0..%d, in pieces (%d differ, the first at %zu)", MAX, bad, first);
    char p[65], h[65];
    sha256_hardware(0);
    digest(m, MAX + 70000, 65536, p);
    sha256_hardware(1);
    digest(m, MAX + 70000, 65536, h);
    CHECK(!strcmp(p, h), "SHA extensions = portable on %d bytes in 64 KiB pieces", MAX + 70000);
    m[MAX + 1234] ^= 1; /* one bit: the comparison can fail */
    char h2[65];
    digest(m, MAX + 70000, 65536, h2);
    CHECK(strcmp(h, h2) != 0, "one flipped bit changes the digest");
    free(m);
    CT_DONE();
}
