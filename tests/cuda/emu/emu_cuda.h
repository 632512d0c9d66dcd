// emu_cuda.h: a CPU stand-in for the CUDA runtime, cuBLAS and the kernel language, enough to run
// bertlab's kernels/cuda/*.cu on a machine without a GPU (a checking tool, not a simulator of
// timing or of memory spaces). Blocks run one after another; a kernel that synchronises (warp
// shuffles, __syncthreads) runs its block's threads as OS threads, others run them in a loop.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

struct emu_barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n = 0, waiting = 0, gen = 0;
    void wait() {
        std::unique_lock<std::mutex> l(m);
        unsigned g = gen;
        if (++waiting == n) { waiting = 0; gen++; cv.notify_all(); }
        else cv.wait(l, [&] { return gen != g; });
    }
};
struct emu_block_state {
    emu_barrier block;
    emu_barrier warp[32];
    uint64_t slot[32][32];
};
extern emu_block_state *emu_block;

inline void __syncthreads() { emu_block->block.wait(); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int o) {
    unsigned t = threadIdx.x, w = t / 32, lane = t % 32;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    emu_block->slot[w][lane] = bits;
    emu_block->warp[w].wait();
    uint64_t got = emu_block->slot[w][lane ^ o];
    emu_block->warp[w].wait();
    T r;
    std::memcpy(&r, &got, sizeof r);
    return r;
}
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

void emu_launch(dim3 grid, dim3 block, bool coop, std::function<void()> body);

// ---- runtime API ----
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
typedef void *cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp { char name[256]; int major, minor; size_t totalGlobalMem; };
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned);
cudaError_t cudaStreamSynchronize(cudaStream_t);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int);
const char *cudaGetErrorString(cudaError_t e);

// ---- cuBLAS ----
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0 };
typedef void *cublasHandle_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
enum { CUBLAS_PEDANTIC_MATH = 2, CUBLAS_ATOMICS_NOT_ALLOWED = 0 };
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t);
cublasStatus_t cublasSetMathMode(cublasHandle_t, int);
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, int);
cublasStatus_t cublasGetVersion(cublasHandle_t, int *v);
const char *cublasGetStatusString(cublasStatus_t);
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb, long long sb,
                                         const float *beta, float *C, int ldc, long long sc, int batch);
// ---- cuRAND (device.cu) ----
typedef int curandStatus_t;
inline curandStatus_t curandGetVersion(int *v) { *v = 0; return 0; }
