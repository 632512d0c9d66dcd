/* test_nccl.c: the GPU all-reduce of data-parallel runs (kernels/cuda/nccl.cu) on one GPU: a unique
 * id, a one-rank communicator, and an in-place sum of a device buffer (one rank: the values come
 * back unchanged, through NCCL's kernels and the backend's stream; 2x after adding the buffer to
 * itself first, so the check can fail). Without a GPU, without CUDA or without NCCL every check
 * prints "skip - ...: <why>". Several GPUs need a machine that has them: not tried here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctest.h"
#include "../kernels/backend.h"
#ifdef BL_WITH_CUDA
#include "../kernels/collective.h"
#endif

int main(void) {
#ifndef BL_WITH_CUDA
    SKIP("nccl one-rank all-reduce: built without CUDA");
    CT_DONE();
#else
    if (!bl_nccl_available()) {
        SKIP("nccl one-rank all-reduce: %s", "built without NCCL (nccl.h and libnccl were not found beside nvcc)");
        CT_DONE();
    }
    const bl_backend_t *cu = bl_backend_cuda_usable() ? bl_backend_cuda() : NULL;
    if (!cu) {
        SKIP("nccl one-rank all-reduce: no CUDA device");
        CT_DONE();
    }
    unsigned char id[BL_NCCL_ID_BYTES];
    CHECK(bl_nccl_get_id(id) == 0, "ncclGetUniqueId (%s)", bl_nccl_error());
    CHECK(bl_nccl_init(id, 0, 1) == 0, "ncclCommInitRank with 1 rank (%s)", bl_nccl_error());
    size_t n = 1000003; /* not a multiple of anything NCCL chunks by */
    float *h = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 977) * 0.25f - 3.0f;
    float *d = cu->alloc(sizeof(float) * n);
    CHECK(d != NULL, "device buffer of %zu floats", n);
    cu->copy_to_device(d, h, sizeof(float) * n);
    CHECK(bl_nccl_allreduce_sum_f32(d, n) == 0, "ncclAllReduce (%s)", bl_nccl_error());
    cu->copy_to_host(back, d, sizeof(float) * n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != h[i];
    CHECK(bad == 0, "one rank: the sum is the buffer itself (%zu of %zu differ)", bad, n);
    cu->add_f32(d, d, d, n, 0);
    CHECK(bl_nccl_allreduce_sum_f32(d, n) == 0, "second ncclAllReduce (%s)", bl_nccl_error());
    cu->copy_to_host(back, d, sizeof(float) * n);
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != 2.0f * h[i];
    CHECK(bad == 0, "after doubling on the device: 2x (%zu of %zu differ)", bad, n);
    cu->free(d);
    free(h);
    free(back);
    CT_DONE();
#endif
}
