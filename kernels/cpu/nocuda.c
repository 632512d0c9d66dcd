/* nocuda.c: what a binary without the CUDA backend links: the device queries of a build without
 * nvcc, and weak stand-ins for the CUDA backend's entry points (kernels/backend.h), which
 * kernels/cuda/backend_cuda.cu overrides with its strong definitions.
 * A static library resolves a symbol from the first member that defines it, weak or not, and this
 * object comes before kernels/cuda/ in build/libbertlab.a: so the stand-ins are compiled only while
 * backend_cuda.cu is absent from the tree (rebuild this file when it lands: `make clean` or touch). */
#include "../backend.h"
#include "../kernels.h"

#ifndef BL_WITH_CUDA
int k_cuda_available(void) { return 0; }
const char *k_cuda_describe(void) { return "built without CUDA (nvcc was not found at build time)"; }
#endif

#if !defined(BL_WITH_CUDA) || !__has_include("../cuda/backend_cuda.cu")
__attribute__((weak)) const bl_backend_t *bl_backend_cuda(void) { return NULL; }
__attribute__((weak)) int bl_backend_cuda_usable(void) { return 0; }
#endif
