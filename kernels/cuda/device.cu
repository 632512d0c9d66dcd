/* device.cu: CUDA device discovery, and the seam where the CUDA kernels of a later issue attach.
 * A binary built with CUDA still runs on a machine without a GPU: every query here fails softly. */
#include <cstdio>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <curand.h>

extern "C" {
#include "../kernels.h"
}

static char describe_buf[1024];

extern "C" int k_cuda_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n > 0;
}

extern "C" const char *k_cuda_describe(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(describe_buf, sizeof describe_buf, "no CUDA device (%s)", cudaGetErrorString(e));
        cudaGetLastError();
        return describe_buf;
    }
    if (n == 0) return "no CUDA device";
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    int cublas_ver = 0;
    cublasHandle_t h;
    if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) { cublasGetVersion(h, &cublas_ver); cublasDestroy(h); }
    int curand_ver = 0;
    curandGetVersion(&curand_ver);
    snprintf(describe_buf, sizeof describe_buf, "%.256s (sm_%d%d, %.1f GiB), cuBLAS %d, cuRAND %d", p.name,
             p.major, p.minor, p.totalGlobalMem / 1073741824.0, cublas_ver, curand_ver);
    return describe_buf;
}
