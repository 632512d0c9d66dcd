/* backend_cpu.c: the CPU backend of kernels/backend.h: the table wraps the CPU kernels (k_*, the
 * reference every other backend is compared with), memory is 64-byte aligned host memory with a
 * size header so the counters know what each free returns, errors are a sticky string.
 * Also the backend lookup by device (bl_backend_for), the one place that knows every backend. */
#include "../backend.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "../bert_kernels.h"
#include "../kernels.h"
#include "../optim_kernels.h"

/* ---- status ---------------------------------------------------------------------------------- */

static char cpu_err[256];  /* the first failure since the last error() */
static char cpu_last[256]; /* what error() returned last (stays valid until the next call) */

static void cpu_fail(const char *op, size_t bytes) {
    if (cpu_err[0]) return; /* keep the first */
    snprintf(cpu_err, sizeof cpu_err, "cpu: %s: out of memory allocating %zu bytes", op, bytes);
}

static const char *cpu_error(void) {
    if (!cpu_err[0]) return NULL;
    memcpy(cpu_last, cpu_err, sizeof cpu_last);
    cpu_err[0] = 0;
    return cpu_last;
}

static void cpu_synchronize(void) {}

static size_t mem_current, mem_peak;

static void cpu_memory(size_t *current, size_t *peak) {
    if (current) *current = mem_current;
    if (peak) *peak = mem_peak;
}

/* ---- memory ---------------------------------------------------------------------------------- */

#define CPU_ALIGN 64 /* a cache line; also the header's size, so the data stays aligned */
/* From 4 MB on (the parameters, gradients, moments, activations), an allocation starts on a 2 MB
 * boundary and asks the kernel for 2 MB pages (transparent huge pages, where it offers them only on
 * request): the first step touched bert-base's 4.6 GB of activations at 32 x 128 tokens in 4 KB
 * faults, 1.2 million of them. */
#define CPU_HUGE_FROM (4u << 20)
#define CPU_HUGE_PAGE (2u << 20)

static void *cpu_alloc(size_t bytes) {
    void *base = NULL;
    size_t align = bytes >= CPU_HUGE_FROM ? CPU_HUGE_PAGE : CPU_ALIGN;
    if (bytes > SIZE_MAX - CPU_HUGE_PAGE || posix_memalign(&base, align, bytes + CPU_ALIGN) != 0) {
        cpu_fail("alloc", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == CPU_HUGE_PAGE) /* whole 2 MB pages inside the block; advice only: failure is harmless */
        (void)madvise(base, (bytes + CPU_ALIGN) & ~(size_t)(CPU_HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    *(size_t *)base = bytes;
    mem_current += bytes;
    if (mem_current > mem_peak) mem_peak = mem_current;
    return (char *)base + CPU_ALIGN;
}

static void cpu_free(void *p) {
    if (!p) return;
    char *base = (char *)p - CPU_ALIGN;
    mem_current -= *(size_t *)base;
    free(base);
}

/* A large clear (a model's gradients at zero_grad: 44 MB for MiniLM, every step) is split between
 * the threads, in cache lines: one thread's memset is far from the machine's write bandwidth. From
 * 256 KB: the backward's scratch gradients (1-4 MB at 32 titles of MiniLM) were cleared by one
 * thread while the other waited (memset 3.2% of the main thread's samples at 2 threads, 0.4% of
 * the other's; split: 2.2% and 2.4%, on a Zen 4 EPYC). */
#define MEMZERO_PAR (1u << 18)

static void cpu_memzero(void *p, size_t bytes) {
    if (bytes < MEMZERO_PAR) {
        if (bytes) memset(p, 0, bytes);
        return;
    }
#pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t lo = (bytes * t / nt) & ~(size_t)63, hi = t + 1 == nt ? bytes : (bytes * (t + 1) / nt) & ~(size_t)63;
        if (hi > lo) memset((char *)p + lo, 0, hi - lo);
    }
}

static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

/* ---- kernels without a k_* of their own -------------------------------------------------------- */

static void cpu_sumsq_f32(double *out, const float *x, size_t n) { out[0] = k_sumsq_f32(x, n); }
static void cpu_sumsq_rows_f32(double *out, const float *x, size_t n, const unsigned char *nonzero,
                               size_t rows, size_t C) {
    out[0] = k_sumsq_rows_f32(x, n, nonzero, rows, C);
}

/* The arithmetic of runtime/optim.c's clip_grad_norm: torch computes the coefficient on float32. */
static void cpu_clip_scale_f32(float *x, size_t n, const double *sumsq, double max_norm) {
    float coef = (float)max_norm / ((float)sqrt(sumsq[0]) + 1e-6f);
    if (coef < 1.0f) k_scale_f32(x, n, coef);
}

/* ---- the table ------------------------------------------------------------------------------- */

static const bl_backend_t cpu_backend = {
    .name = "cpu",
    .device = BL_DEVICE_CPU,
    .error = cpu_error,
    .synchronize = cpu_synchronize,
    .memory = cpu_memory,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memzero = cpu_memzero,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy_on_device = cpu_copy,
    .add_f32 = k_add_f32,
    .mul_f32 = k_mul_f32,
    .add_i64 = k_add_i64,
    .mul_i64 = k_mul_i64,
    .fill_f32 = k_fill_f32,
    .gemm = k_gemm,
    .gemm_batched = k_gemm_batched,
    .embeddings_forward = k_embeddings_forward,
    .embeddings_backward = k_embeddings_backward,
    .layernorm_forward = k_layernorm_forward,
    .layernorm_backward = k_layernorm_backward,
    .linear_forward = k_linear_forward,
    .linear_backward = k_linear_backward,
    .attention_forward = k_attention_forward,
    .attention_backward = k_attention_backward,
    .gelu_forward = k_gelu_forward,
    .gelu_backward = k_gelu_backward,
    .tanh_forward = k_tanh_forward,
    .tanh_backward = k_tanh_backward,
    .dropout_forward = k_dropout_forward,
    .dropout_backward = k_dropout_backward,
    .residual_forward = k_residual_forward,
    .accumulate = k_accumulate,
    .cls_forward = k_cls_forward,
    .cls_backward = k_cls_backward,
    .crossentropy_forward = k_crossentropy_forward,
    .crossentropy_backward = k_crossentropy_backward,
    .mask_to_additive = k_mask_to_additive,
    .softmax_rows = k_softmax_rows,
    .adamw_step = k_adamw_step,
    .adamw_step_rows = k_adamw_step_rows,
    .sumsq_rows_f32 = cpu_sumsq_rows_f32,
    .attention_forward_nokeep = k_attention_forward_nokeep,
    .ffn_forward_nokeep = k_ffn_forward_nokeep,
    .attention_forward_rows = k_attention_forward_rows,
    .attention_backward_rows = k_attention_backward_rows,
    .dropout_forward_rows = k_dropout_forward_rows,
    .dropout_backward_rows = k_dropout_backward_rows,
    .linear_backward_to = k_linear_backward_to,
    .gelu_backward_set = k_gelu_backward_set,
    .attention_backward_set = k_attention_backward_set,
    .attention_backward_rows_set = k_attention_backward_rows_set,
    .layernorm_backward_set = k_layernorm_backward_set,
    .dropout_backward_set = k_dropout_backward_set,
    .dropout_backward_rows_set = k_dropout_backward_rows_set,
    .attention_forward_cls = k_attention_forward_cls,
    .qkv_forward_cls = k_qkv_forward_cls,
    .attention_backward_cls = k_attention_backward_cls,
    .residual_layernorm_forward = k_residual_layernorm_forward,
    .sumsq_f32 = cpu_sumsq_f32,
    .scale_f32 = k_scale_f32,
    .clip_scale_f32 = cpu_clip_scale_f32,
};

const bl_backend_t *bl_backend_cpu(void) { return &cpu_backend; }

const bl_backend_t *bl_backend_for(int device) {
    switch (device) {
    case BL_DEVICE_CPU: return &cpu_backend;
    case BL_DEVICE_CUDA: return bl_backend_cuda();
    }
    return NULL;
}
