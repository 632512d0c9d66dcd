/* bert_kernels.cu: the CUDA implementation of kernels/bert_kernels.h, BERT's layer forward/backward
 * pairs, with the CPU functions' signatures and meaning (backward accumulates; dropout masks drawn
 * in the kernel from kernels/philox.h with the CPU's keying, so both devices drop the same
 * elements). Matrix products go through cuBLAS; the attention permutes q, k, v to [B,NH,T,HS] in the
 * backend's work space and runs its per-head products as strided-batched products, as llm.c does.
 * Determinism: no atomics. Every reduction has a fixed shape: warp butterflies per row, one thread
 * per column looping over rows in order (embedding and bias gradients, in the CPU's order), or a
 * fixed block tree; so the same inputs give the same bits on every run.
 * Dimension letters: B batch, T tokens, C channels, NH heads, HS head size, N rows, OC out channels,
 * L labels, P max positions (the dropout keying's padded width). */
#include <cfloat>
#include <cmath>
#include "cuda_common.cuh"
#include "../philox.h"

/* ---- device helpers ------------------------------------------------------------------------------ */

/* Butterfly sums: every lane ends with the same bits (each step adds the same two values). */
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The dropout uniform of stream index idx (bert_kernels.h: keep iff u > p): philox_word_at's word,
 * picked by selects rather than a dynamic index, which would put the block in local memory. */
__device__ __forceinline__ float dropout_u(uint64_t seed, uint64_t idx) {
    uint32_t w[4];
    philox_stream_block(w, seed, RNG_STREAM_DROPOUT, idx >> 2);
    unsigned k = (unsigned)(idx & 3);
    uint32_t x = k == 0 ? w[0] : k == 1 ? w[1] : k == 2 ? w[2] : w[3];
    return philox_uniform(x);
}

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---- kernels: embeddings ---------------------------------------------------------------------- */

__global__ void embeddings_forward_kernel(float *out, const int64_t *ids, const int64_t *types,
                                          const float *wte, const float *wpe, const float *wtt, int T,
                                          int C, size_t total) {
    GRID_STRIDE(i, total) {
        size_t n = i / C;
        int c = (int)(i % C), t = (int)(n % T);
        out[i] = wte[(size_t)ids[n] * C + c] + wpe[(size_t)t * C + c] +
                 wtt[(size_t)(types ? types[n] : 0) * C + c];
    }
}

/* For each row n of a scatter by ids (NULL: all 0): first[n] = 1 when no earlier row has its id,
 * nxt[n] = the next row with its id, or -1. O(N^2) compares, a few million at most. */
__global__ void scatter_chains_kernel(int *first, int *nxt, const int64_t *ids, int N) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    int64_t id = ids ? ids[n] : 0;
    int f = 1, x = -1;
    for (int m = 0; m < n && f; m++) f = (ids ? ids[m] : 0) != id;
    for (int m = n + 1; m < N; m++)
        if ((ids ? ids[m] : 0) == id) { x = m; break; }
    first[n] = f;
    nxt[n] = x;
}

/* dw[id,c] += sum of dout[m,c] over the rows m with that id, added in row order (the CPU's order),
 * by the thread of (the id's first row, c). grid (ceil(C/128), N). */
__global__ void scatter_rows_kernel(float *dw, const float *dout, const int64_t *ids, const int *first,
                                    const int *nxt, int C) {
    int n = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C || !first[n]) return;
    float *g = dw + (size_t)(ids ? ids[n] : 0) * C + c;
    float acc = *g;
    for (int m = n; m >= 0; m = nxt[m]) acc += dout[(size_t)m * C + c];
    *g = acc;
}

/* dwpe[t,c] += sum over b of dout[b,t,c], b in order */
__global__ void position_grad_kernel(float *dwpe, const float *dout, int B, int T, int C) {
    size_t total = (size_t)T * C;
    GRID_STRIDE(i, total) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * T * C + i];
        dwpe[i] = acc;
    }
}

/* ---- kernels: layer normalisation -------------------------------------------------------------- */

/* one warp per row; the CPU's double two-pass mean and variance */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int N, int C,
                                         float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float *o = out + (size_t)row * C;
    double s = 0.0;
    for (int c = lane; c < C; c += 32) s += x[c];
    double md = warp_sum(s) / C;
    double v = 0.0;
    for (int c = lane; c < C; c += 32) {
        double d = x[c] - md;
        v += d * d;
    }
    v = warp_sum(v);
    float m = (float)md;
    float r = (float)(1.0 / sqrt(v / C + (double)eps));
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

__global__ void layernorm_backward_dinp_kernel(float *dinp, const float *dout, const float *inp,
                                               const float *mean, const float *rstd,
                                               const float *weight, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sd = 0.0f, sdn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = d[c] * weight[c];
        sd += dn;
        sdn += dn * (x[c] - m) * r;
    }
    sd = warp_sum(sd) / C;
    sdn = warp_sum(sdn) / C;
    float *g = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float norm = (x[c] - m) * r;
        g[c] += (d[c] * weight[c] - sd - norm * sdn) * r;
    }
}

/* Column sums over N rows, a fixed tree: block (32, COLSUM_Y) takes 32 columns; thread (x, y) sums
 * rows y, y+COLSUM_Y, ... in order; row y == 0 then adds the COLSUM_Y partials in order.
 * With inp (LayerNorm) it also sums d * (x - mean) * rstd into dweight. */
#define COLSUM_Y 16
__global__ void column_sums_kernel(float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *mean, const float *rstd, int N, int C) {
    __shared__ float sw[COLSUM_Y][32], sb[COLSUM_Y][32];
    int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
    float aw = 0.0f, ab = 0.0f;
    if (c < C) {
        for (int n = ty; n < N; n += COLSUM_Y) {
            float d = dout[(size_t)n * C + c];
            ab += d;
            if (dweight) aw += d * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
        }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty != 0 || c >= C) return;
    float tw = 0.0f, tb = 0.0f;
    for (int y = 0; y < COLSUM_Y; y++) {
        tw += sw[y][tx];
        tb += sb[y][tx];
    }
    if (dweight) dweight[c] += tw;
    if (dbias) dbias[c] += tb;
}

/* ---- kernels: linear -------------------------------------------------------------------------- */

__global__ void bias_rows_kernel(float *out, const float *bias, int OC, size_t total) {
    GRID_STRIDE(i, total) out[i] = bias[i % OC];
}

/* ---- kernels: attention ----------------------------------------------------------------------- */

/* qkv[B,T,3C] -> q, k, v [B,NH,T,HS] */
__global__ void permute_qkv_kernel(float *q, float *k, float *v, const float *qkv, int T, int NH,
                                   int HS, size_t total) {
    int C = NH * HS;
    GRID_STRIDE(i, total) {
        int d = (int)(i % HS), t = (int)((i / HS) % T), h = (int)((i / ((size_t)HS * T)) % NH);
        size_t b = i / ((size_t)HS * T * NH);
        size_t src = (b * T + t) * 3 * (size_t)C + (size_t)h * HS + d;
        q[i] = qkv[src];
        k[i] = qkv[src + C];
        v[i] = qkv[src + 2 * (size_t)C];
    }
}

/* x[B,T,C] -> y[B,NH,T,HS] */
__global__ void permute_kernel(float *y, const float *x, int T, int NH, int HS, size_t total) {
    int C = NH * HS;
    GRID_STRIDE(i, total) {
        int d = (int)(i % HS), t = (int)((i / HS) % T), h = (int)((i / ((size_t)HS * T)) % NH);
        size_t b = i / ((size_t)HS * T * NH);
        y[i] = x[(b * T + t) * C + (size_t)h * HS + d];
    }
}

/* y[B,NH,T,HS] -> out[B,T,C] (i runs over out) */
__global__ void unpermute_kernel(float *out, const float *y, int T, int NH, int HS, size_t total) {
    int C = NH * HS;
    GRID_STRIDE(i, total) {
        int c = (int)(i % C), t = (int)((i / C) % T), h = c / HS, d = c % HS;
        size_t b = i / ((size_t)C * T);
        out[i] = y[((b * NH + h) * T + t) * HS + d];
    }
}

/* dqkv[B,T,3C] += dq | dk | dv ([B,NH,T,HS] each); i runs over dqkv */
__global__ void unpermute_add_qkv_kernel(float *dqkv, const float *dq, const float *dk, const float *dv,
                                         int T, int NH, int HS, size_t total) {
    int C = NH * HS;
    GRID_STRIDE(i, total) {
        int c3 = (int)(i % (3 * (size_t)C)), t = (int)((i / (3 * (size_t)C)) % T);
        size_t b = i / (3 * (size_t)C * T);
        int part = c3 / C, c = c3 % C, h = c / HS, d = c % HS;
        const float *src = part == 0 ? dq : (part == 1 ? dk : dv);
        dqkv[i] += src[((b * NH + h) * T + t) * HS + d];
    }
}

/* One warp per attention row r = (b*NH + h)*T + i: att row (scaled scores) += mask, softmax in
 * place; with w, w = the row with dropout (the CPU's keying: offset + ((b*NH + h)*P + i)*P + j). */
__global__ void attention_softmax_kernel(float *att, float *w, const float *mask_add, int NH, int T,
                                         int P, float p, uint64_t seed, uint64_t offset, int rows) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows) return;
    int i = r % T, bh = r / T, b = bh / NH;
    float *a = att + (size_t)r * T;
    const float *ma = mask_add ? mask_add + (size_t)b * T : NULL;
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32) {
        float x = a[j];
        if (ma) x += ma[j];
        a[j] = x;
        mx = fmaxf(mx, x);
    }
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j < T; j += 32) {
        float e = expf(a[j] - mx);
        a[j] = e;
        s += e;
    }
    float inv = 1.0f / warp_sum(s);
    float keep_scale = 1.0f / (1.0f - p);
    uint64_t row0 = offset + ((uint64_t)bh * P + i) * P;
    for (int j = lane; j < T; j += 32) {
        float y = a[j] * inv;
        a[j] = y;
        if (w) w[(size_t)r * T + j] = dropout_u(seed, row0 + j) > p ? y * keep_scale : 0.0f;
    }
}

/* w = att with the forward's dropout (the keying of attention_softmax_kernel), elementwise */
__global__ void dropped_att_kernel(float *w, const float *att, int NH, int T, int P, float p,
                                   uint64_t seed, uint64_t offset, size_t total) {
    float keep_scale = 1.0f / (1.0f - p);
    GRID_STRIDE(e, total) {
        size_t r = e / T, bh = r / T;
        int j = (int)(e % T), i = (int)(r % T);
        uint64_t idx = offset + ((uint64_t)bh * P + i) * P + j;
        w[e] = dropout_u(seed, idx) > p ? att[e] * keep_scale : 0.0f;
    }
}

/* One warp per row: s = datt (dout @ V^T) times the forward's dropout factor, then the softmax
 * backward s = att * (s - sum_j s_j att_j) * scale (scale = 1/sqrt(HS)), in place. */
__global__ void attention_softmax_backward_kernel(float *s, const float *att, int T, int P, float p,
                                                  uint64_t seed, uint64_t offset, float scale,
                                                  int rows) {
    int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows) return;
    int i = r % T, bh = r / T;
    float *si = s + (size_t)r * T;
    const float *ai = att + (size_t)r * T;
    float keep_scale = 1.0f / (1.0f - p);
    uint64_t row0 = offset + ((uint64_t)bh * P + i) * P;
    float dot = 0.0f;
    for (int j = lane; j < T; j += 32) {
        float x = si[j];
        if (p > 0.0f) x = dropout_u(seed, row0 + j) > p ? x * keep_scale : 0.0f;
        si[j] = x;
        dot += x * ai[j];
    }
    dot = warp_sum(dot);
    for (int j = lane; j < T; j += 32) si[j] = ai[j] * (si[j] - dot) * scale;
}

/* ---- kernels: pointwise ----------------------------------------------------------------------- */

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    }
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

__global__ void tanh_forward_kernel(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = tanhf(inp[i]);
}

__global__ void tanh_backward_kernel(float *dinp, const float *out, const float *dout, size_t n) {
    GRID_STRIDE(i, n) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* hidden dropout: element (b, rest) of [B, T*C] is stream index offset + b*P*C + rest */
__global__ void dropout_forward_kernel(float *out, const float *inp, size_t TC, size_t PC, float p,
                                       uint64_t seed, uint64_t offset, size_t n) {
    float keep_scale = 1.0f / (1.0f - p);
    GRID_STRIDE(i, n) {
        size_t b = i / TC;
        uint64_t idx = offset + b * PC + (i - b * TC);
        out[i] = dropout_u(seed, idx) > p ? inp[i] * keep_scale : 0.0f;
    }
}

__global__ void dropout_backward_kernel(float *dinp, const float *dout, size_t TC, size_t PC, float p,
                                        uint64_t seed, uint64_t offset, size_t n) {
    float keep_scale = 1.0f / (1.0f - p);
    GRID_STRIDE(i, n) {
        size_t b = i / TC;
        uint64_t idx = offset + b * PC + (i - b * TC);
        if (dropout_u(seed, idx) > p) dinp[i] += dout[i] * keep_scale;
    }
}

__global__ void residual_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void accumulate_kernel(float *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}

/* ---- kernels: [CLS], loss, masks ------------------------------------------------------------- */

__global__ void cls_forward_kernel(float *out, const float *inp, int T, int C, size_t total) {
    GRID_STRIDE(i, total) {
        size_t b = i / C;
        out[i] = inp[b * T * C + i % C];
    }
}

__global__ void cls_backward_kernel(float *dinp, const float *dout, int T, int C, size_t total) {
    GRID_STRIDE(i, total) {
        size_t b = i / C;
        dinp[b * T * C + i % C] += dout[i];
    }
}

/* One thread per row, the CPU's arithmetic: probs, and row_loss[b] = log(sum) - (z_t - max) in
 * double (when targets and row_loss are given). */
__global__ void crossentropy_rows_kernel(double *row_loss, float *probs, const float *logits,
                                         const int64_t *targets, int B, int L) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const float *z = logits + (size_t)b * L;
    float *pr = probs + (size_t)b * L;
    float mx = -INFINITY;
    for (int l = 0; l < L; l++)
        if (z[l] > mx) mx = z[l];
    double sum = 0.0;
    for (int l = 0; l < L; l++) {
        pr[l] = expf(z[l] - mx);
        sum += pr[l];
    }
    for (int l = 0; l < L; l++) pr[l] = (float)(pr[l] / sum);
    if (targets && row_loss) row_loss[b] = log(sum) - (double)(z[targets[b]] - mx);
}

/* loss[0] = mean of the row losses, added in row order (one thread: B is a batch); with class
 * weights[L], the weighted mean sum w[t_b] * row_b / sum w[t_b], as the CPU adds it */
__global__ void mean_rows_kernel(float *loss, const double *row_loss, const int64_t *targets,
                                 const float *weights, int B) {
    double total = 0.0, wsum = 0.0;
    for (int b = 0; b < B; b++) {
        if (weights) {
            total += (double)weights[targets[b]] * row_loss[b];
            wsum += weights[targets[b]];
        } else {
            total += row_loss[b];
        }
    }
    loss[0] = (float)(weights ? total / wsum : total / B);
}

/* with class weights[L], each thread adds the batch's sum of target weights itself (B is a batch:
 * small), in row order and in double as the CPU does */
__global__ void crossentropy_backward_kernel(float *dlogits, const float *probs, const int64_t *targets,
                                             const float *weights, int B, int L, float dloss, size_t total) {
    GRID_STRIDE(i, total) {
        int l = (int)(i % L);
        size_t b = i / L;
        float s;
        if (weights) {
            double wsum = 0.0;
            for (int k = 0; k < B; k++) wsum += weights[targets[k]];
            s = (float)(dloss / wsum) * weights[targets[b]];
        } else {
            s = dloss / B;
        }
        dlogits[i] += s * (probs[i] - (l == targets[b] ? 1.0f : 0.0f));
    }
}

__global__ void mask_to_additive_kernel(float *mask_add, const int64_t *mask, size_t n) {
    GRID_STRIDE(i, n) mask_add[i] = mask[i] != 0 ? 0.0f : -FLT_MAX;
}

/* ---- launchers --------------------------------------------------------------------------------- */

#define THREADS 256
#define LAUNCH(op, kernel, n, ...)                                                                   \
    do {                                                                                            \
        kernel<<<cuda_blocks((n), THREADS), THREADS, 0, cuda_stream()>>>(__VA_ARGS__);             \
        cuda_launched(op);                                                                          \
    } while (0)

/* blocks of 128 threads, one warp per row */
static inline unsigned warp_rows_blocks(long rows) { return (unsigned)((rows + 3) / 4); }

void cuda_embeddings_forward(float *out, const int64_t *ids, const int64_t *types, const float *wte,
                             const float *wpe, const float *wtt, int B, int T, int C) {
    size_t total = (size_t)B * T * C;
    if (!total || !cuda_ready("embeddings_forward")) return;
    LAUNCH("embeddings_forward", embeddings_forward_kernel, total, out, ids, types, wte, wpe, wtt, T, C,
           total);
}

/* dw rows += dout rows by ids (NULL: row 0), deterministic, in the CPU's order */
static void scatter_rows(const char *op, float *dw, const float *dout, const int64_t *ids, int N, int C) {
    int *chains = (int *)cuda_workspace(op, sizeof(int) * 2 * (size_t)N);
    if (!chains) return;
    scatter_chains_kernel<<<(N + 127) / 128, 128, 0, cuda_stream()>>>(chains, chains + N, ids, N);
    if (!cuda_launched(op)) return;
    dim3 grid((C + 127) / 128, N);
    scatter_rows_kernel<<<grid, 128, 0, cuda_stream()>>>(dw, dout, ids, chains, chains + N, C);
    cuda_launched(op);
}

void cuda_embeddings_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                              const int64_t *ids, const int64_t *types, int B, int T, int C) {
    const char *op = "embeddings_backward";
    int N = B * T;
    if (N <= 0 || C <= 0 || !cuda_ready(op)) return;
    if (dwte) scatter_rows(op, dwte, dout, ids, N, C);
    if (dwpe) LAUNCH(op, position_grad_kernel, (size_t)T * C, dwpe, dout, B, T, C);
    if (dwtt) scatter_rows(op, dwtt, dout, types, N, C);
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C, float eps) {
    if (N <= 0 || !cuda_ready("layernorm_forward")) return;
    layernorm_forward_kernel<<<warp_rows_blocks(N), 128, 0, cuda_stream()>>>(out, mean, rstd, inp,
                                                                            weight, bias, N, C, eps);
    cuda_launched("layernorm_forward");
}

void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *mean, const float *rstd,
                             const float *weight, int N, int C) {
    const char *op = "layernorm_backward";
    if (N <= 0 || C <= 0 || !cuda_ready(op)) return;
    if (dinp) {
        layernorm_backward_dinp_kernel<<<warp_rows_blocks(N), 128, 0, cuda_stream()>>>(
            dinp, dout, inp, mean, rstd, weight, N, C);
        if (!cuda_launched(op)) return;
    }
    if (dweight || dbias) {
        column_sums_kernel<<<(C + 31) / 32, dim3(32, COLSUM_Y), 0, cuda_stream()>>>(
            dweight, dbias, dout, inp, mean, rstd, N, C);
        cuda_launched(op);
    }
}

void cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                         int C, int OC) {
    if (N <= 0 || OC <= 0 || !cuda_ready("linear_forward")) return;
    float beta = 0.0f;
    if (bias) { /* seed the output with the bias; the product adds to it (the CPU's order) */
        size_t total = (size_t)N * OC;
        LAUNCH("linear_forward", bias_rows_kernel, total, out, bias, OC, total);
        beta = 1.0f;
    }
    cuda_gemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
    if (N <= 0 || !cuda_ready("linear_backward")) return;
    if (dinp) cuda_gemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight) cuda_gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        column_sums_kernel<<<(OC + 31) / 32, dim3(32, COLSUM_Y), 0, cuda_stream()>>>(
            NULL, dbias, dout, NULL, NULL, NULL, N, OC);
        cuda_launched("linear_backward");
    }
}

void cuda_attention_forward(float *out, float *att, const float *qkv, const float *mask_add, int B,
                            int T, int C, int NH, int P, float p, uint64_t seed, uint64_t offset) {
    const char *op = "attention_forward";
    if (B <= 0 || T <= 0 || !cuda_ready(op)) return;
    if (T > P) return cuda_fail(op, "T exceeds P (max_position_embeddings)");
    int HS = C / NH;
    size_t BTC = (size_t)B * T * C, TT = (size_t)T * T, BH = (size_t)B * NH;
    int drop = p > 0.0f;
    float *ws = (float *)cuda_workspace(op, sizeof(float) * (4 * BTC + (drop ? BH * TT : 0)));
    if (!ws) return;
    float *q = ws, *k = q + BTC, *v = k + BTC, *y = v + BTC, *w = drop ? y + BTC : NULL;
    LAUNCH(op, permute_qkv_kernel, BTC, q, k, v, qkv, T, NH, HS, BTC);
    /* att = q @ k^T / sqrt(HS), every (b, h) at once */
    cuda_gemm_batched(0, 1, T, T, HS, 1.0f / sqrtf((float)HS), q, HS, (long)T * HS, k, HS,
                      (long)T * HS, 0.0f, att, T, (long)TT, (int)BH);
    int rows = (int)(BH * T);
    attention_softmax_kernel<<<warp_rows_blocks(rows), 128, 0, cuda_stream()>>>(
        att, w, mask_add, NH, T, P, p, seed, offset, rows);
    if (!cuda_launched(op)) return;
    /* y = dropout(att) @ v */
    cuda_gemm_batched(0, 0, T, HS, T, 1.0f, drop ? w : att, T, (long)TT, v, HS, (long)T * HS, 0.0f, y,
                      HS, (long)T * HS, (int)BH);
    LAUNCH(op, unpermute_kernel, BTC, out, y, T, NH, HS, BTC);
}

void cuda_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int NH, int P, float p,
                             uint64_t seed, uint64_t offset) {
    const char *op = "attention_backward";
    if (B <= 0 || T <= 0 || !cuda_ready(op)) return;
    if (T > P) return cuda_fail(op, "T exceeds P (max_position_embeddings)");
    int HS = C / NH;
    size_t BTC = (size_t)B * T * C, TT = (size_t)T * T, BH = (size_t)B * NH;
    long sh = (long)T * HS;
    int drop = p > 0.0f;
    float *ws = (float *)cuda_workspace(op, sizeof(float) * (7 * BTC + (drop ? BH * TT : 0)));
    if (!ws) return;
    float *q = ws, *k = q + BTC, *v = k + BTC, *go = v + BTC, *dq = go + BTC, *dk = dq + BTC,
          *dv = dk + BTC, *w = drop ? dv + BTC : NULL;
    LAUNCH(op, permute_qkv_kernel, BTC, q, k, v, qkv, T, NH, HS, BTC);
    LAUNCH(op, permute_kernel, BTC, go, dout, T, NH, HS, BTC);
    int rows = (int)(BH * T);
    if (drop) /* the forward's dropped probabilities, regenerated from (seed, offset) */
        LAUNCH(op, dropped_att_kernel, BH * TT, w, att, NH, T, P, p, seed, offset, BH * TT);
    /* dv = dropout(att)^T @ dout */
    cuda_gemm_batched(1, 0, T, HS, T, 1.0f, drop ? w : att, T, (long)TT, go, HS, sh, 0.0f, dv, HS, sh,
                      (int)BH);
    /* datt = dout @ v^T, then dropout and softmax backward in place */
    cuda_gemm_batched(0, 1, T, T, HS, 1.0f, go, HS, sh, v, HS, sh, 0.0f, scratch, T, (long)TT, (int)BH);
    attention_softmax_backward_kernel<<<warp_rows_blocks(rows), 128, 0, cuda_stream()>>>(
        scratch, att, T, P, p, seed, offset, 1.0f / sqrtf((float)HS), rows);
    if (!cuda_launched(op)) return;
    /* dq = dpre @ k ; dk = dpre^T @ q */
    cuda_gemm_batched(0, 0, T, HS, T, 1.0f, scratch, T, (long)TT, k, HS, sh, 0.0f, dq, HS, sh, (int)BH);
    cuda_gemm_batched(1, 0, T, HS, T, 1.0f, scratch, T, (long)TT, q, HS, sh, 0.0f, dk, HS, sh, (int)BH);
    size_t n3 = 3 * BTC;
    LAUNCH(op, unpermute_add_qkv_kernel, n3, dqkv, dq, dk, dv, T, NH, HS, n3);
}

void cuda_gelu_forward(float *out, const float *inp, size_t n) {
    if (!n || !cuda_ready("gelu_forward")) return;
    LAUNCH("gelu_forward", gelu_forward_kernel, n, out, inp, n);
}

void cuda_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    if (!n || !cuda_ready("gelu_backward")) return;
    LAUNCH("gelu_backward", gelu_backward_kernel, n, dinp, inp, dout, n);
}

void cuda_tanh_forward(float *out, const float *inp, size_t n) {
    if (!n || !cuda_ready("tanh_forward")) return;
    LAUNCH("tanh_forward", tanh_forward_kernel, n, out, inp, n);
}

void cuda_tanh_backward(float *dinp, const float *out, const float *dout, size_t n) {
    if (!n || !cuda_ready("tanh_backward")) return;
    LAUNCH("tanh_backward", tanh_backward_kernel, n, dinp, out, dout, n);
}

void cuda_dropout_forward(float *out, const float *inp, int B, int T, int C, int P, float p,
                          uint64_t seed, uint64_t offset) {
    const char *op = "dropout_forward";
    size_t n = (size_t)B * T * C;
    if (!n || !cuda_ready(op)) return;
    if (T > P) return cuda_fail(op, "T exceeds P (max_position_embeddings)");
    if (p <= 0.0f) {
        if (out != inp)
            cuda_check(op, cudaMemcpyAsync(out, inp, sizeof(float) * n, cudaMemcpyDeviceToDevice,
                                           cuda_stream()));
        return;
    }
    LAUNCH(op, dropout_forward_kernel, n, out, inp, (size_t)T * C, (size_t)P * C, p, seed, offset, n);
}

void cuda_dropout_backward(float *dinp, const float *dout, int B, int T, int C, int P, float p,
                           uint64_t seed, uint64_t offset) {
    const char *op = "dropout_backward";
    size_t n = (size_t)B * T * C;
    if (!n || !cuda_ready(op)) return;
    if (T > P) return cuda_fail(op, "T exceeds P (max_position_embeddings)");
    if (p <= 0.0f) {
        LAUNCH(op, accumulate_kernel, n, dinp, dout, n);
        return;
    }
    LAUNCH(op, dropout_backward_kernel, n, dinp, dout, (size_t)T * C, (size_t)P * C, p, seed, offset, n);
}

void cuda_residual_forward(float *out, const float *a, const float *b, size_t n) {
    if (!n || !cuda_ready("residual_forward")) return;
    LAUNCH("residual_forward", residual_kernel, n, out, a, b, n);
}

void cuda_accumulate(float *dst, const float *src, size_t n) {
    if (!n || !cuda_ready("accumulate")) return;
    LAUNCH("accumulate", accumulate_kernel, n, dst, src, n);
}

void cuda_cls_forward(float *out, const float *inp, int B, int T, int C) {
    size_t total = (size_t)B * C;
    if (!total || !cuda_ready("cls_forward")) return;
    LAUNCH("cls_forward", cls_forward_kernel, total, out, inp, T, C, total);
}

void cuda_cls_backward(float *dinp, const float *dout, int B, int T, int C) {
    size_t total = (size_t)B * C;
    if (!total || !cuda_ready("cls_backward")) return;
    LAUNCH("cls_backward", cls_backward_kernel, total, dinp, dout, T, C, total);
}

void cuda_crossentropy_forward(float *loss, float *probs, const float *logits,
                               const int64_t *targets, const float *weights, int B, int L) {
    const char *op = "crossentropy_forward";
    if (B <= 0 || !cuda_ready(op)) return;
    double *rows = NULL;
    if (targets && loss) {
        rows = (double *)cuda_workspace(op, sizeof(double) * (size_t)B);
        if (!rows) return;
    }
    crossentropy_rows_kernel<<<(B + 127) / 128, 128, 0, cuda_stream()>>>(rows, probs, logits, targets,
                                                                        B, L);
    if (!cuda_launched(op) || !rows) return;
    mean_rows_kernel<<<1, 1, 0, cuda_stream()>>>(loss, rows, targets, weights, B);
    cuda_launched(op);
}

void cuda_crossentropy_backward(float *dlogits, const float *probs, const int64_t *targets,
                                const float *weights, int B, int L, float dloss) {
    size_t total = (size_t)B * L;
    if (!total || !cuda_ready("crossentropy_backward")) return;
    LAUNCH("crossentropy_backward", crossentropy_backward_kernel, total, dlogits, probs, targets, weights,
           B, L, dloss, total);
}

void cuda_mask_to_additive(float *mask_add, const int64_t *mask, size_t n) {
    if (!n || !cuda_ready("mask_to_additive")) return;
    if (!mask) {
        cuda_check("mask_to_additive", cudaMemsetAsync(mask_add, 0, sizeof(float) * n, cuda_stream()));
        return;
    }
    LAUNCH("mask_to_additive", mask_to_additive_kernel, n, mask_add, mask, n);
}

void cuda_softmax_rows(float *probs, const float *logits, int B, int L) {
    cuda_crossentropy_forward(NULL, probs, logits, NULL, NULL, B, L);
}
