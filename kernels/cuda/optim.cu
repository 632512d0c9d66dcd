/* optim.cu: the CUDA optimizer kernels of optim_kernels.h and backend.h: the fused AdamW update
 * (the CPU's operations in the CPU's order, each rounded on its own: __f*_rn never fuse into an
 * FMA), the squared norm as a fixed-shape double reduction (SUMSQ_BLOCKS blocks whatever the GPU,
 * so the same gradients give the same bits), scaling, and clipping that reads the norm on the
 * device. n: number of float32 elements. */
#include "cuda_common.cuh"

/* ---- kernels ----------------------------------------------------------------------------------- */

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                             k_adamw_hparams_t hp) {
    const float b1 = hp.beta1, b2 = hp.beta2, c1 = hp.one_minus_beta1, c2 = hp.one_minus_beta2;
    const float eps = hp.eps, neg_step = -hp.step_size;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i];
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(c2, __fmul_rn(g, g)));
        if (hp.decay_first) { /* torch.optim.AdamW */
            float keep = hp.decay != 0.0f ? hp.keep : 1.0f;
            float p = __fmul_rn(param[i], keep);
            float mi = __fadd_rn(m[i], __fmul_rn(c1, __fsub_rn(g, m[i])));
            float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), hp.bc2_sqrt), eps);
            m[i] = mi;
            v[i] = vi;
            param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(neg_step, mi), denom));
        } else { /* transformers v4 */
            float neg_decay = hp.decay != 0.0f ? -hp.decay : 0.0f;
            float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(c1, g));
            float denom = __fadd_rn(__fsqrt_rn(vi), eps);
            float p = __fadd_rn(param[i], __fdiv_rn(__fmul_rn(neg_step, mi), denom));
            m[i] = mi;
            v[i] = vi;
            param[i] = __fadd_rn(p, __fmul_rn(neg_decay, p));
        }
    }
}

/* block tree over SUMSQ_THREADS values in shared memory (fixed pairs, so fixed bits) */
__device__ double block_sum(double s, double *sh) {
    int t = threadIdx.x;
    sh[t] = s;
    __syncthreads();
    for (int o = SUMSQ_THREADS / 2; o > 0; o >>= 1) {
        if (t < o) sh[t] += sh[t + o];
        __syncthreads();
    }
    return sh[0];
}

/* part[block] = sum over the block's fixed slice pattern of x^2, in double */
__global__ void sumsq_partial_kernel(double *part, const float *x, size_t n) {
    __shared__ double sh[SUMSQ_THREADS];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)SUMSQ_THREADS + threadIdx.x; i < n; i += (size_t)SUMSQ_BLOCKS * SUMSQ_THREADS) {
        double y = (double)x[i];
        s += y * y;
    }
    double t = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

__global__ void sumsq_final_kernel(double *out, const double *part) {
    __shared__ double sh[SUMSQ_THREADS];
    double s = 0.0;
    for (int i = threadIdx.x; i < SUMSQ_BLOCKS; i += SUMSQ_THREADS) s += part[i];
    double t = block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = t;
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], s);
}

/* clip_grad_norm's float arithmetic: coef = (float)max_norm / ((float)sqrt(ss) + 1e-6f) */
__global__ void clip_scale_kernel(float *x, size_t n, const double *sumsq, double max_norm) {
    float coef = __fdiv_rn((float)max_norm, __fadd_rn((float)sqrt(sumsq[0]), 1e-6f));
    if (!(coef < 1.0f)) return;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], coef);
}

/* ---- launchers --------------------------------------------------------------------------------- */

void cuda_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                     k_adamw_hparams_t hp) {
    if (!n || !cuda_ready("adamw_step")) return;
    adamw_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(param, grad, m, v, n, hp);
    cuda_launched("adamw_step");
}

void cuda_sumsq_f32(double *out, const float *x, size_t n) {
    if (!cuda_ready("sumsq_f32")) return;
    if (!n) {
        cuda_check("sumsq_f32", cudaMemsetAsync(out, 0, sizeof(double), cuda_stream()));
        return;
    }
    sumsq_partial_kernel<<<SUMSQ_BLOCKS, SUMSQ_THREADS, 0, cuda_stream()>>>(cuda_partials(), x, n);
    if (!cuda_launched("sumsq_f32")) return;
    sumsq_final_kernel<<<1, SUMSQ_THREADS, 0, cuda_stream()>>>(out, cuda_partials());
    cuda_launched("sumsq_f32");
}

void cuda_scale_f32(float *x, size_t n, float s) {
    if (!n || !cuda_ready("scale_f32")) return;
    scale_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(x, n, s);
    cuda_launched("scale_f32");
}

void cuda_clip_scale_f32(float *x, size_t n, const double *sumsq, double max_norm) {
    if (!n || !cuda_ready("clip_scale_f32")) return;
    clip_scale_kernel<<<cuda_blocks(n, 256), 256, 0, cuda_stream()>>>(x, n, sumsq, max_norm);
    cuda_launched("clip_scale_f32");
}
