/* philox_parity.cu: checks on a GPU that bertlab's CPU Philox stream (runtime/rng.c) draws exactly
 * the numbers cuRAND's Philox4_32_10 device API draws for the same (seed, subsequence, offset), as
 * the runtime promises. Needs a GPU: run by `make cuda-check` on a machine with one.
 * Prints "ok - ..." / "not ok - ..." lines like every bertlab test. */
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <curand_kernel.h>

extern "C" {
#include "../../runtime/rng.h"
}

#define N_STREAMS 8
#define N_WORDS 4099

__global__ void draw(uint32_t *words, float *unif, uint64_t seed, const uint64_t *subseq,
                     const uint64_t *offsets) {
    int s = blockIdx.x;
    if (threadIdx.x != 0) return;
    curandStatePhilox4_32_10_t st;
    curand_init(seed, subseq[s], offsets[s], &st);
    for (int i = 0; i < N_WORDS; i++) words[s * N_WORDS + i] = curand(&st);
    curand_init(seed, subseq[s], offsets[s], &st);
    for (int i = 0; i < N_WORDS; i++) unif[s * N_WORDS + i] = curand_uniform(&st);
}

int main() {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("skip - philox parity: no CUDA device\n");
        return 0;
    }
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    printf("# device: %s\n", p.name);
    uint64_t seeds[3] = {17, 0, 0x0123456789abcdefull};
    uint64_t subseq[N_STREAMS] = {0, 1, 2, 3, 4, 16, 12345, 0x100000001ull};
    uint64_t offsets[N_STREAMS] = {0, 0, 4, 8, 1000, 0, 4096, 0}; /* multiples of 4 and 0 */
    uint32_t *dw; float *du; uint64_t *ds, *doff;
    cudaMalloc(&dw, sizeof(uint32_t) * N_STREAMS * N_WORDS);
    cudaMalloc(&du, sizeof(float) * N_STREAMS * N_WORDS);
    cudaMalloc(&ds, sizeof subseq);
    cudaMalloc(&doff, sizeof offsets);
    cudaMemcpy(ds, subseq, sizeof subseq, cudaMemcpyHostToDevice);
    cudaMemcpy(doff, offsets, sizeof offsets, cudaMemcpyHostToDevice);
    static uint32_t hw[N_STREAMS * N_WORDS];
    static float hu[N_STREAMS * N_WORDS];
    int failed = 0;
    for (int k = 0; k < 3; k++) {
        draw<<<N_STREAMS, 32>>>(dw, du, seeds[k], ds, doff);
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) { printf("not ok - kernel failed: %s\n", cudaGetErrorString(e)); return 1; }
        cudaMemcpy(hw, dw, sizeof hw, cudaMemcpyDeviceToHost);
        cudaMemcpy(hu, du, sizeof hu, cudaMemcpyDeviceToHost);
        long wbad = 0, ubad = 0;
        for (int s = 0; s < N_STREAMS; s++) {
            rng_t r = {seeds[k], subseq[s], offsets[s]};
            rng_t r2 = r;
            for (int i = 0; i < N_WORDS; i++) {
                if (rng_u32(&r) != hw[s * N_WORDS + i]) wbad++;
                float u = rng_uniform(&r2);
                if (memcmp(&u, &hu[s * N_WORDS + i], 4)) ubad++;
            }
        }
        printf("%s - seed %llu: %d streams x %d words identical to cuRAND's curand() (%ld differ)\n",
               wbad ? "not ok" : "ok", (unsigned long long)seeds[k], N_STREAMS, N_WORDS, wbad);
        printf("%s - seed %llu: uniform floats bit-identical to curand_uniform() (%ld differ)\n",
               ubad ? "not ok" : "ok", (unsigned long long)seeds[k], ubad);
        failed += wbad != 0 || ubad != 0;
    }
    return failed ? 1 : 0;
}
