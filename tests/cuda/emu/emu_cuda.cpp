// emu_cuda.cpp: the CPU emulator's side of emu_cuda.h: launches (blocks in turn; a cooperative
// block's threads on a pool of OS threads), the runtime API on host memory (cudaMalloc poisons with
// NaN bytes, so unwritten outputs show), and cuBLAS's products through OpenBLAS in column-major order.
#include "emu_cuda.h"
#include <cblas.h>
#include <cstdio>
thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
emu_block_state *emu_block;

/* the OS threads of a cooperative block, kept between blocks and launches (made again when the
 * block size changes): each waits at `start`, runs the body as its thread, and meets at `end` */
struct emu_pool {
    unsigned nt = 0;
    std::vector<std::thread> th;
    emu_barrier start, end;
    const std::function<void()> *body = nullptr;
    dim3 grid, block, b;
    bool quit = false;
};
/* never destroyed: at exit the workers still wait on its barrier */
static emu_pool &pool = *new emu_pool;

static void pool_worker(unsigned t) {
    for (;;) {
        pool.start.wait();
        if (pool.quit) { pool.end.wait(); return; }
        blockIdx = pool.b; blockDim = pool.block; gridDim = pool.grid;
        threadIdx = dim3(t % pool.block.x, t / pool.block.x, 0);
        (*pool.body)();
        pool.end.wait();
    }
}

static void pool_resize(unsigned nt) {
    if (pool.nt == nt) return;
    if (pool.nt) {
        pool.quit = true;
        pool.start.wait();
        pool.end.wait();
        pool.th.clear(); /* detached, and past their last barrier */
        pool.quit = false;
    }
    pool.nt = nt;
    pool.start.n = pool.end.n = nt + 1;
    for (unsigned t = 0; t < nt; t++) pool.th.emplace_back(pool_worker, t);
    for (auto &x : pool.th) x.detach();
}

void emu_launch(dim3 grid, dim3 block, bool coop, std::function<void()> body) {
    unsigned nt = block.x * block.y * block.z;
    static emu_block_state st;
    for (unsigned by = 0; by < grid.y; by++)
        for (unsigned bx = 0; bx < grid.x; bx++) {
            dim3 b(bx, by, 0);
            if (!coop) {
                blockIdx = b; blockDim = block; gridDim = grid;
                for (unsigned ty = 0; ty < block.y; ty++)
                    for (unsigned tx = 0; tx < block.x; tx++) { threadIdx = dim3(tx, ty, 0); body(); }
                continue;
            }
            emu_block = &st;
            st.block.n = nt;
            for (unsigned w = 0; w < 32; w++) st.warp[w].n = (w * 32 < nt) ? std::min(32u, nt - w * 32) : 0;
            pool_resize(nt);
            pool.body = &body; pool.grid = grid; pool.block = block; pool.b = b;
            pool.start.wait();
            pool.end.wait();
        }
}

cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return 0; }
cudaError_t cudaSetDevice(int) { return 0; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (void *)1; return 0; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }
cudaError_t cudaMalloc(void **p, size_t bytes) {
    if (bytes > ((size_t)1 << 40)) { *p = nullptr; return cudaErrorMemoryAllocation; }
    *p = std::malloc(bytes);
    // poison: unwritten outputs show up as NaN
    std::memset(*p, 0xFF, bytes);
    return *p ? 0 : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) { std::free(p); return 0; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) { std::memmove(d, s, n); return 0; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { std::memset(d, v, n); return 0; }
cudaError_t cudaGetLastError(void) { return 0; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    std::snprintf(p->name, sizeof p->name, "emulated CUDA device (CPU)"); p->major = 9; p->minor = 0;
    p->totalGlobalMem = (size_t)1 << 30; return 0;
}
const char *cudaGetErrorString(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "out of memory" : "emulated error"; }
cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (void *)1; return 0; }
cublasStatus_t cublasDestroy(cublasHandle_t) { return 0; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return 0; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, int) { return 0; }
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, int) { return 0; }
cublasStatus_t cublasGetVersion(cublasHandle_t, int *v) { *v = 0; return 0; }
const char *cublasGetStatusString(cublasStatus_t s) { return s == 7 ? "CUBLAS_STATUS_INVALID_VALUE" : "emulated"; }
// products: argument checks as cuBLAS, then OpenBLAS column-major
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc) {
    /* cuBLAS's argument checks: leading dimensions at least the stored rows */
    if (m < 0 || n < 0 || k < 0 || lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) ||
        ldc < std::max(1, m))
        return 7; /* CUBLAS_STATUS_INVALID_VALUE */
    if (m == 0 || n == 0) return 0;
    /* OpenBLAS in column-major order: the same contract as cuBLAS's, so the launchers' operand swap
     * is what is checked (the CPU kernels call it row-major) */
    cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
                *alpha, A, lda, B, ldb, *beta, C, ldc);
    return 0;
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb, long long sb,
                                         const float *beta, float *C, int ldc, long long sc, int batch) {
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = cublasSgemm(h, ta, tb, m, n, k, alpha, A + i * sa, lda, B + i * sb, ldb, beta,
                                       C + i * sc, ldc);
        if (s) return s;
    }
    return 0;
}
