/* fuzz_csv.c: libFuzzer target for the CSV reader (runtime/csv.c): any bytes either parse into a table
 * whose every field is valid UTF-8 without NUL bytes and lies inside the buffer, or fail with a message
 * naming the input. */
#define _GNU_SOURCE /* memfd_create, memmem */
#include "../../runtime/csv.h"
#include "../../runtime/error.h"
#include "../../runtime/utf8.h"
#include "fuzz_util.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    csv_table_t *t = csv_table_parse("fuzz.csv", (const char *)data, size);
    if (!t) {
        FUZZ_ASSERT(strncmp(bl_errmsg(), "fuzz.csv", 8) == 0);
        return 0;
    }
    FUZZ_ASSERT(t->ncols >= 1 && t->nrows >= 0);
    for (int64_t r = -1; r < t->nrows; r++) {
        if (r >= 0) FUZZ_ASSERT(t->line[r] >= 2);
        for (int c = 0; c < t->ncols; c++) {
            size_t len;
            const char *f = csv_table_field(t, r, c, &len);
            FUZZ_ASSERT(f >= t->buf && f + len < t->buf + t->buflen && f[len] == '\0');
            FUZZ_ASSERT(memchr(f, '\0', len) == NULL);
            FUZZ_ASSERT(utf8_invalid_at(f, len) < 0);
        }
    }
    for (int c = 0; c < t->ncols; c++)
        FUZZ_ASSERT(csv_table_find(t, csv_table_field(t, -1, c, NULL)) == c);
    csv_table_free(t);
    return 0;
}
