/* backend_cuda.cu: the CUDA backend's table (kernels/backend.h): device state made on first use (one
 * stream, one cuBLAS handle in pedantic float32 math with atomics off, so products are plain FP32,
 * never TF32, and the same inputs give the same bits), the sticky error, device memory through
 * cudaMalloc with byte counters, and the table pointing at the launchers of elementwise.cu,
 * bert_kernels.cu and optim.cu.
 * Non-goals: several devices or streams (device 0, one stream), managed or pinned memory. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include "cuda_common.cuh"

extern "C" {
#include "../backend.h"
}

/* ---- state ----------------------------------------------------------------------------------- */

static struct {
    int state;               /* 0 not tried, 1 ready, -1 unusable (why says so) */
    char why[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    double *partials;        /* SUMSQ_BLOCKS doubles */
    void *ws;                /* grow-only work space */
    size_t ws_bytes;
    int has_err;
    char err[512];           /* the sticky error */
    char err_out[512];       /* what error() last returned */
    size_t current, peak;    /* bytes held through alloc and the backend's own buffers */
} g;

/* sizes of live allocations, for the byte counters (a handful: the runtime allocates per category) */
static std::unordered_map<void *, size_t> *g_sizes;
static std::mutex g_mu;

void cuda_fail(const char *op, const char *reason) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g.has_err) return;
    snprintf(g.err, sizeof g.err, "%s: %s", op, reason);
    g.has_err = 1;
}

int cuda_check(const char *op, cudaError_t e) {
    if (e == cudaSuccess) return 1;
    cuda_fail(op, cudaGetErrorString(e));
    return 0;
}

int cuda_launched(const char *op) { return cuda_check(op, cudaGetLastError()); }

int cublas_check(const char *op, cublasStatus_t s) {
    if (s == CUBLAS_STATUS_SUCCESS) return 1;
    char buf[128];
    snprintf(buf, sizeof buf, "cuBLAS %s", cublasGetStatusString(s));
    cuda_fail(op, buf);
    return 0;
}

static void count(size_t add, size_t sub) {
    g.current = g.current + add - sub;
    if (g.current > g.peak) g.peak = g.current;
}

/* Makes the stream, the cuBLAS handle and the partial-sum buffer on device 0 (or the local rank's,
 * modulo the device count, under mpirun/srun); remembers why not. */
static int setup(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(g.why, sizeof g.why, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError();
        return 0;
    }
    /* one device per process of a data-parallel run: the launcher's local rank picks it */
    int dev = 0;
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = getenv("SLURM_LOCALID");
    if (local && atoi(local) > 0) dev = atoi(local) % n;
    const char *step = "cudaSetDevice";
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (step = "cudaStreamCreate",
        e = cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (step = "cudaMalloc", e = cudaMalloc((void **)&g.partials, sizeof(double) * SUMSQ_BLOCKS)) != cudaSuccess) {
        snprintf(g.why, sizeof g.why, "%s: %s", step, cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    count(sizeof(double) * SUMSQ_BLOCKS, 0);
    cublasStatus_t s = cublasCreate(&g.blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(g.blas, g.stream);
    /* pedantic: float32 products in float32 (no TF32, no reduced-precision reductions) */
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(g.blas, CUBLAS_PEDANTIC_MATH);
    /* no atomics: cuBLAS's results then depend only on the inputs (same GPU, same library) */
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetAtomicsMode(g.blas, CUBLAS_ATOMICS_NOT_ALLOWED);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(g.why, sizeof g.why, "cuBLAS setup: %s", cublasGetStatusString(s));
        return 0;
    }
    g_sizes = new std::unordered_map<void *, size_t>();
    return 1;
}

int cuda_ready(const char *op) {
    if (g.state == 0) g.state = setup() ? 1 : -1;
    if (g.state == 1) return 1;
    cuda_fail(op, g.why);
    return 0;
}

cudaStream_t cuda_stream(void) { return g.stream; }
cublasHandle_t cuda_blas(void) { return g.blas; }
double *cuda_partials(void) { return g.partials; }

void *cuda_workspace(const char *op, size_t bytes) {
    if (bytes <= g.ws_bytes) return g.ws;
    /* queued work may still read the old buffer */
    if (g.ws) {
        if (!cuda_check(op, cudaStreamSynchronize(g.stream))) return NULL;
        cudaError_t e = cudaFree(g.ws);
        count(0, g.ws_bytes);
        g.ws = NULL;
        g.ws_bytes = 0;
        if (!cuda_check(op, e)) return NULL;
    }
    bytes = (bytes + 0xFFFFF) & ~(size_t)0xFFFFF; /* whole MiB: fewer regrowths */
    if (!cuda_check(op, cudaMalloc(&g.ws, bytes))) {
        g.ws = NULL;
        return NULL;
    }
    g.ws_bytes = bytes;
    count(bytes, 0);
    return g.ws;
}

/* ---- status ----------------------------------------------------------------------------------- */

static const char *cuda_error(void) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g.has_err) return NULL;
    memcpy(g.err_out, g.err, sizeof g.err_out);
    g.has_err = 0;
    return g.err_out;
}

static void cuda_synchronize(void) {
    if (!cuda_ready("synchronize")) return;
    cuda_check("synchronize", cudaStreamSynchronize(g.stream));
}

static void cuda_memory(size_t *current, size_t *peak) {
    if (current) *current = g.current;
    if (peak) *peak = g.peak;
}

/* ---- memory ----------------------------------------------------------------------------------- */

static void *cuda_alloc(size_t bytes) {
    if (!cuda_ready("alloc")) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char buf[192];
        snprintf(buf, sizeof buf, "%zu bytes: %s", bytes, cudaGetErrorString(e));
        cudaGetLastError();
        cuda_fail("alloc", buf);
        return NULL;
    }
    {
        std::lock_guard<std::mutex> lock(g_mu);
        (*g_sizes)[p] = bytes;
        count(bytes, 0);
    }
    return p;
}

static void cuda_free(void *p) {
    if (!p || g.state != 1) return;
    int ours = 0;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        auto it = g_sizes->find(p);
        if (it != g_sizes->end()) {
            count(0, it->second);
            g_sizes->erase(it);
            ours = 1;
        }
    }
    /* a pointer not from alloc: freeing it would corrupt CUDA's allocator */
    if (!ours) {
        cuda_fail("free", "pointer not allocated by the CUDA backend");
        return;
    }
    /* queued work may still use it */
    if (cuda_check("free", cudaStreamSynchronize(g.stream))) cuda_check("free", cudaFree(p));
}

static void cuda_memzero(void *p, size_t bytes) {
    if (!bytes || !cuda_ready("memzero")) return;
    cuda_check("memzero", cudaMemsetAsync(p, 0, bytes, g.stream));
}

static void cuda_copy_to_device(void *dst, const void *host_src, size_t bytes) {
    if (!bytes || !cuda_ready("copy_to_device")) return;
    cuda_check("copy_to_device", cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, g.stream));
}

static void cuda_copy_to_host(void *host_dst, const void *src, size_t bytes) {
    if (!bytes || !cuda_ready("copy_to_host")) return;
    if (cuda_check("copy_to_host", cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, g.stream)))
        cuda_check("copy_to_host", cudaStreamSynchronize(g.stream));
}

static void cuda_copy_on_device(void *dst, const void *src, size_t bytes) {
    if (!bytes || !cuda_ready("copy_on_device")) return;
    cuda_check("copy_on_device", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g.stream));
}

/* ---- the table ----------------------------------------------------------------------------------- */

static const bl_backend_t cuda_backend = {
    "cuda",
    BL_DEVICE_CUDA,
    cuda_error,
    cuda_synchronize,
    cuda_memory,
    cuda_alloc,
    cuda_free,
    cuda_memzero,
    cuda_copy_to_device,
    cuda_copy_to_host,
    cuda_copy_on_device,
    cuda_add_f32,
    cuda_mul_f32,
    cuda_add_i64,
    cuda_mul_i64,
    cuda_fill_f32,
    cuda_gemm,
    cuda_gemm_batched,
    cuda_embeddings_forward,
    cuda_embeddings_backward,
    cuda_layernorm_forward,
    cuda_layernorm_backward,
    cuda_linear_forward,
    cuda_linear_backward,
    cuda_attention_forward,
    cuda_attention_backward,
    cuda_gelu_forward,
    cuda_gelu_backward,
    cuda_tanh_forward,
    cuda_tanh_backward,
    cuda_dropout_forward,
    cuda_dropout_backward,
    cuda_residual_forward,
    cuda_accumulate,
    cuda_cls_forward,
    cuda_cls_backward,
    cuda_crossentropy_forward,
    cuda_crossentropy_backward,
    cuda_mask_to_additive,
    cuda_softmax_rows,
    cuda_adamw_step,
    cuda_sumsq_f32,
    cuda_scale_f32,
    cuda_clip_scale_f32,
};

extern "C" const bl_backend_t *bl_backend_cuda(void) { return &cuda_backend; }

extern "C" int bl_backend_cuda_usable(void) {
    if (g.state == 0) g.state = setup() ? 1 : -1;
    return g.state == 1;
}
