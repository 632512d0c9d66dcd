/* nccl.cu: the data-parallel gradient sum on the GPU (kernels/collective.h). Built with NCCL
 * where the Makefile found nccl.h and libnccl (BL_WITH_NCCL); otherwise every call reports that. */
#include "../collective.h"
#include "cuda_common.cuh"
#include <stdio.h>
#include <string.h>
#ifdef BL_WITH_NCCL
#include <nccl.h>
#endif

static char g_err[256] = "";

extern "C" const char *bl_nccl_error(void) { return g_err; }

#ifdef BL_WITH_NCCL
static ncclComm_t g_comm;
static int g_ready;

extern "C" int bl_nccl_available(void) { return 1; }

extern "C" int bl_nccl_get_id(unsigned char id[BL_NCCL_ID_BYTES]) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) { snprintf(g_err, sizeof g_err, "ncclGetUniqueId: %s", ncclGetErrorString(r)); return -1; }
    memcpy(id, u.internal, BL_NCCL_ID_BYTES);
    return 0;
}

extern "C" int bl_nccl_init(const unsigned char id[BL_NCCL_ID_BYTES], int rank, int size) {
    if (g_ready) return 0;
    if (!cuda_ready("nccl_init")) { snprintf(g_err, sizeof g_err, "nccl_init: the CUDA backend is not usable"); return -1; }
    ncclUniqueId u;
    memcpy(u.internal, id, BL_NCCL_ID_BYTES);
    ncclResult_t r = ncclCommInitRank(&g_comm, size, u, rank);
    if (r != ncclSuccess) { snprintf(g_err, sizeof g_err, "ncclCommInitRank: %s", ncclGetErrorString(r)); return -1; }
    g_ready = 1;
    return 0;
}

extern "C" int bl_nccl_allreduce_sum_f32(float *dev, size_t n) {
    if (!g_ready) { snprintf(g_err, sizeof g_err, "nccl_allreduce: no communicator (bl_nccl_init first)"); return -1; }
    ncclResult_t r = ncclAllReduce(dev, dev, n, ncclFloat32, ncclSum, g_comm, cuda_stream());
    if (r != ncclSuccess) { snprintf(g_err, sizeof g_err, "ncclAllReduce: %s", ncclGetErrorString(r)); return -1; }
    cudaError_t e = cudaStreamSynchronize(cuda_stream());
    if (e != cudaSuccess) { snprintf(g_err, sizeof g_err, "ncclAllReduce: %s", cudaGetErrorString(e)); return -1; }
    return 0;
}
#else
extern "C" int bl_nccl_available(void) { return 0; }
static int no_nccl(void) {
    snprintf(g_err, sizeof g_err, "this bertlab was built without NCCL (nccl.h and libnccl were not found with nvcc)");
    return -1;
}
extern "C" int bl_nccl_get_id(unsigned char id[BL_NCCL_ID_BYTES]) { (void)id; return no_nccl(); }
extern "C" int bl_nccl_init(const unsigned char id[BL_NCCL_ID_BYTES], int rank, int size) {
    (void)id; (void)rank; (void)size;
    return no_nccl();
}
extern "C" int bl_nccl_allreduce_sum_f32(float *dev, size_t n) { (void)dev; (void)n; return no_nccl(); }
#endif
