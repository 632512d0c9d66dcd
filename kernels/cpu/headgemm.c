/* headgemm.c: the attention's per-head products (T x T x HS: a few thousand to a few million
 * multiply-adds each) on register tiles (AVX-512, or AVX2 with FMA: simd16.h), on the calling thread (the attention's threads take
 * whole heads). sgemm spent more on its fixed cost and its packing than on the arithmetic at these
 * sizes (35-64 GFLOP/s for a whole attention at 128 tokens, one thread), and its bits depended on
 * the kernels OpenBLAS picked for the CPU; here every element is one chain of fused multiply-adds in
 * a fixed order. */
#include "../kernels.h"

#include "simd16.h"
#if BL_TILES

/* 16-float vectors of C a tile row at most: 4 (64 columns, 24 AVX-512 accumulators in the 6-row
 * tiles), 1 with AVX2 (6 x 16: 12 of its 16 registers) */
#define HG_VEC (V16_REGS == 1 ? 4 : 1)

/* ROWS rows of C, NV vectors of columns (the last one masked by ml on the store):
 * c[r*ldc + j] = sum_k a[r*ar + k*ak] * b[k*ldb + j], one fmaf chain over k from zero; with ACC,
 * added to c after the product (one more rounding). B's rows are read in whole vectors.
 * (ROWS, NV and ACC are constants, the sums are not scaled and the k loop has no masked load: each
 * of those at run time made GCC 12 -O3 keep the sums in memory, storing them every k.) */
#define HG_TILE(ROWS, NV, ACC)                                                                      \
    static void hg_##ROWS##_##NV##_##ACC(float *c, size_t ldc, const float *a, size_t ar,          \
                                         size_t ak, const float *b, size_t ldb, int K,             \
                                         m16 ml) {                                           \
        v16 s[ROWS][NV];                                                                         \
        for (int r = 0; r < ROWS; r++)                                                              \
            for (int j = 0; j < NV; j++) s[r][j] = v16_zero();                             \
        for (int k = 0; k < K; k++) {                                                               \
            const float *bk = b + (size_t)k * ldb, *ak_ = a + (size_t)k * ak;                       \
            v16 x[NV];                                                                           \
            for (int j = 0; j < NV; j++) x[j] = v16_load(bk + 16 * j);                       \
            for (int r = 0; r < ROWS; r++) {                                                        \
                v16 w = v16_set1(ak_[r * ar]);                                             \
                for (int j = 0; j < NV; j++) s[r][j] = v16_fmadd(w, x[j], s[r][j]);           \
            }                                                                                       \
        }                                                                                           \
        if (ACC)                                                                                    \
            for (int r = 0; r < ROWS; r++)                                                          \
                for (int j = 0; j < NV; j++) {                                                      \
                    m16 m = j == NV - 1 ? ml : (m16)0xFFFF;                             \
                    s[r][j] = v16_add(v16_loadz(m, c + r * ldc + 16 * j), s[r][j]); \
                }                                                                                   \
        for (int r = 0; r < ROWS; r++)                                                              \
            for (int j = 0; j < NV; j++)                                                            \
                v16_storem(c + r * ldc + 16 * j, j == NV - 1 ? ml : (m16)0xFFFF, s[r][j]); \
    }
/* 6 rows x 1-4 vectors, every row count below 6 for the tails (a tail row at a time waited on each
 * fmaf's latency), and 12 rows for 1-2 vectors (a head of 32 or 16 columns: 24 sums, as 6 x 4 has) */
#define HG_NVS(ROWS, ACC) HG_TILE(ROWS, 1, ACC) HG_TILE(ROWS, 2, ACC) HG_TILE(ROWS, 3, ACC) HG_TILE(ROWS, 4, ACC)
#define HG_ALL(ACC)                                                                                 \
    HG_NVS(1, ACC) HG_NVS(2, ACC) HG_NVS(3, ACC) HG_NVS(4, ACC) HG_NVS(5, ACC) HG_NVS(6, ACC)      \
    HG_TILE(12, 1, ACC) HG_TILE(12, 2, ACC)
HG_ALL(0)
HG_ALL(1)

typedef void hg_tile_fn(float *c, size_t ldc, const float *a, size_t ar, size_t ak, const float *b,
                        size_t ldb, int K, m16 ml);
#define HG_ROW(ROWS, ACC) {hg_##ROWS##_1_##ACC, hg_##ROWS##_2_##ACC, hg_##ROWS##_3_##ACC, hg_##ROWS##_4_##ACC}
#define HG_TABLE(ACC) {HG_ROW(1, ACC), HG_ROW(2, ACC), HG_ROW(3, ACC), HG_ROW(4, ACC), HG_ROW(5, ACC), HG_ROW(6, ACC)}
static hg_tile_fn *const hg_tiles[2][6][4] = {HG_TABLE(0), HG_TABLE(1)}; /* [acc][rows - 1][nv - 1] */
static hg_tile_fn *const hg_tiles12[2][2] = {{hg_12_1_0, hg_12_2_0}, {hg_12_1_1, hg_12_2_1}};

/* room [K, ldr] = b [N, K] (row stride ldb) transposed, ldr = N rounded up to 16, zeros past N */
static void transpose_b(float *room, const float *b, size_t ldb, int N, int K, size_t ldr) {
    for (int k0 = 0; k0 < K; k0 += 16) {
        int kn = K - k0 < 16 ? K - k0 : 16;
        m16 mk = lanes(kn);
        for (int n0 = 0; n0 < N; n0 += 16) {
            v16 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = n0 + i < N ? v16_loadz(mk, b + (size_t)(n0 + i) * ldb + k0) : v16_zero();
            v16_transpose(r);
            for (int j = 0; j < kn; j++) v16_store(room + (size_t)(k0 + j) * ldr + n0, r[j]);
        }
    }
}

/* room [K, ldr] = b [K, N] (row stride ldb), zeros past N */
static void pad_b(float *room, const float *b, size_t ldb, int N, int K, size_t ldr) {
    for (int k = 0; k < K; k++)
        for (int n0 = 0; n0 < (int)ldr; n0 += 16) {
            m16 m = N > n0 ? lanes(N - n0) : 0;
            v16_store(room + (size_t)k * ldr + n0, v16_loadz(m, b + (size_t)k * ldb + n0));
        }
}

const float *k_head_lay_b(const float *b, size_t ldb, int N, int K, int tb, float *room, size_t *ldr) {
    /* the tiles read B's rows in whole vectors: B^T is laid out in room, and so is a B whose rows
     * end inside a vector */
    size_t ld = ((size_t)N + 15) / 16 * 16;
    *ldr = ldb;
    if (!tb && ld == (size_t)N) return b;
    if (!room) return NULL;
    if (tb) transpose_b(room, b, ldb, N, K, ld);
    else pad_b(room, b, ldb, N, K, ld);
    *ldr = ld;
    return room;
}

void k_head_gemm_laid(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b, size_t ldb,
                      int acc, float *c, size_t ldc) {
    /* a panel of B (K rows x 64 columns: 32 KB at K = 128) stays in L1 while the row tiles pass */
    for (int j0 = 0; j0 < N; j0 += 16 * HG_VEC) {
        int n = N - j0 < 16 * HG_VEC ? N - j0 : 16 * HG_VEC, nv = (n + 15) / 16;
        m16 ml = lanes(n - 16 * (nv - 1));
        int i0 = 0;
        if (V16_REGS == 1 && nv <= 2) /* 12 x 32 is 48 AVX2 registers: not there */
            for (; i0 + 12 <= M; i0 += 12)
                hg_tiles12[acc != 0][nv - 1](c + (size_t)i0 * ldc + j0, ldc, a + (size_t)i0 * ar, ar, ak,
                                             b + j0, ldb, K, ml);
        for (; i0 < M; i0 += 6) {
            int R = M - i0 < 6 ? M - i0 : 6;
            hg_tiles[acc != 0][R - 1][nv - 1](c + (size_t)i0 * ldc + j0, ldc, a + (size_t)i0 * ar, ar, ak,
                                              b + j0, ldb, K, ml);
        }
    }
}

int k_head_gemm(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b,
                size_t ldb, int tb, float *room, int acc, float *c, size_t ldc) {
    if (M <= 0 || N <= 0) return 1;
    size_t ldr;
    const float *bl = k_head_lay_b(b, ldb, N, K, tb, room, &ldr);
    if (!bl) return 0;
    k_head_gemm_laid(M, N, K, a, ar, ak, bl, ldr, acc, c, ldc);
    return 1;
}

#else
const float *k_head_lay_b(const float *b, size_t ldb, int N, int K, int tb, float *room, size_t *ldr) {
    (void)b, (void)ldb, (void)N, (void)K, (void)tb, (void)room, (void)ldr;
    return NULL;
}
void k_head_gemm_laid(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b, size_t ldb,
                      int acc, float *c, size_t ldc) {
    (void)M, (void)N, (void)K, (void)a, (void)ar, (void)ak, (void)b, (void)ldb, (void)acc, (void)c, (void)ldc;
}
int k_head_gemm(int M, int N, int K, const float *a, size_t ar, size_t ak, const float *b,
                size_t ldb, int tb, float *room, int acc, float *c, size_t ldc) {
    (void)M, (void)N, (void)K, (void)a, (void)ar, (void)ak, (void)b, (void)ldb, (void)tb, (void)room, (void)acc;
    (void)c, (void)ldc;
    return 0;
}
#endif
