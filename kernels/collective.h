/* collective.h: the GPU all-reduce of a data-parallel run (kernels/cuda/nccl.cu, NCCL on the CUDA
 * backend's stream), llm.c's arrangement: rank 0 makes the unique id, MPI passes it (runtime/dist.c),
 * every rank joins the communicator, and gradients are summed on the device in place. Compiled
 * where nvcc is (BL_WITH_CUDA); the calls fail with a message when NCCL was not found at build time. */
#ifndef BL_COLLECTIVE_H
#define BL_COLLECTIVE_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

#define BL_NCCL_ID_BYTES 128
int bl_nccl_available(void);                          /* 1: built with NCCL */
int bl_nccl_get_id(unsigned char id[BL_NCCL_ID_BYTES]); /* rank 0: a new unique id; -1 on failure */
int bl_nccl_init(const unsigned char id[BL_NCCL_ID_BYTES], int rank, int size);
int bl_nccl_allreduce_sum_f32(float *dev, size_t n);  /* in place on the device; synchronizes */
const char *bl_nccl_error(void);                      /* the last failure's message */

#ifdef __cplusplus
}
#endif
#endif
