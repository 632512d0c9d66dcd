/* nocuda.c: the device queries of a binary built without nvcc. */
#ifndef BL_WITH_CUDA
#include "../kernels.h"
int k_cuda_available(void) { return 0; }
const char *k_cuda_describe(void) { return "built without CUDA (nvcc was not found at build time)"; }
#endif
