/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (runtime/safetensors.c): a file that
 * opens has every tensor's byte range inside the data section and readable as a tensor; one that does
 * not fails with a message naming the file. */
#define _GNU_SOURCE /* memfd_create, memmem */
#include "../../runtime/error.h"
#include "../../runtime/safetensors.h"
#include "fuzz_util.h"
#include <string.h>

static int fd_st = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    fuzz_memfile(&fd_st, data, size, path, sizeof path);
    safetensors_t st;
    if (safetensors_open(&st, path) != 0) {
        FUZZ_ASSERT(strstr(bl_errmsg(), path) != NULL);
        return 0;
    }
    for (int i = 0; i < st.n; i++) {
        const st_entry_t *e = &st.entries[i];
        FUZZ_ASSERT(e->begin <= e->end && e->end <= st.data_size);
        FUZZ_ASSERT(safetensors_find(&st, e->name) != NULL);
        /* reading a tensor whose element count is huge but byte size 0 cannot happen: shape says 0 */
        tensor_t *t = safetensors_read_tensor(&st, e);
        if (t) tensor_free(t);
    }
    safetensors_close(&st);
    return 0;
}
