/* simd16.h: a vector of 16 floats for bertlab's register-tile kernels (kernels/cpu/skinny.c,
 * headgemm.c, the attention's dropped rows): one AVX-512 register, or a pair of AVX2 registers
 * with FMA. Each lane gets the same IEEE operation either way (a fused multiply-add, an add, a load
 * or a store), so a tile's sums, one chain of fused multiply-adds over k from zero, come out the
 * same bits on both: a machine without AVX-512 trains to the same numbers. BL_TILES is 1 where one
 * of the two is there, and the kernels' tiles exist; 0 otherwise (the callers then keep sgemm).
 * V16_REGS: the machine registers a v16 takes (the tiles size their accumulators by it: AVX2 has 16
 * registers of 8 floats, AVX-512 32 of 16). */
#ifndef BL_SIMD16_H
#define BL_SIMD16_H

#if defined(__AVX512F__)
#include <immintrin.h>
#define BL_TILES 1
#define V16_REGS 1
typedef __m512 v16;
typedef __mmask16 m16;

static inline __attribute__((always_inline)) v16 v16_zero(void) { return _mm512_setzero_ps(); }
static inline __attribute__((always_inline)) v16 v16_load(const float *p) { return _mm512_loadu_ps(p); }
/* the lanes of k from p, zeros elsewhere (the others are not read) */
static inline __attribute__((always_inline)) v16 v16_loadz(m16 k, const float *p) {
    return _mm512_maskz_loadu_ps(k, p);
}
static inline __attribute__((always_inline)) void v16_store(float *p, v16 v) { _mm512_storeu_ps(p, v); }
/* the lanes of k to p (the others are not written) */
static inline __attribute__((always_inline)) void v16_storem(float *p, m16 k, v16 v) {
    _mm512_mask_storeu_ps(p, k, v);
}
static inline __attribute__((always_inline)) v16 v16_set1(float x) { return _mm512_set1_ps(x); }
/* a * b + c, one rounding */
static inline __attribute__((always_inline)) v16 v16_fmadd(v16 a, v16 b, v16 c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline __attribute__((always_inline)) v16 v16_add(v16 a, v16 b) { return _mm512_add_ps(a, b); }

/* r[0..16) transposed in place: afterwards r[j]'s lane i is what r[i]'s lane j was (32-bit, then
 * 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane shuffles). */
static inline void v16_transpose(v16 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i+j], 128-bit lane q: element 4q+j of rows 4i..4i+3 */
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        t[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define BL_TILES 1
#define V16_REGS 2
typedef struct {
    __m256 lo, hi; /* lanes 0-7, 8-15 */
} v16;
typedef unsigned m16;

static inline __attribute__((always_inline)) v16 v16_zero(void) {
    return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
static inline __attribute__((always_inline)) v16 v16_load(const float *p) {
    return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
/* the 8 lanes of k's low byte, as maskload/maskstore want them (a lane's sign bit) */
static inline __attribute__((always_inline)) __m256i v16_bits8(unsigned k) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)k), bit), bit);
}
static inline __attribute__((always_inline)) __m256 v16_load8z(unsigned k, const float *p) {
    k &= 0xFFu;
    if (k == 0xFFu) return _mm256_loadu_ps(p);
    if (k == 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(p, v16_bits8(k));
}
static inline __attribute__((always_inline)) void v16_store8m(float *p, unsigned k, __m256 v) {
    k &= 0xFFu;
    if (k == 0xFFu) _mm256_storeu_ps(p, v);
    else if (k) _mm256_maskstore_ps(p, v16_bits8(k), v);
}
static inline __attribute__((always_inline)) v16 v16_loadz(m16 k, const float *p) {
    return (v16){v16_load8z(k, p), v16_load8z(k >> 8, p + 8)};
}
static inline __attribute__((always_inline)) void v16_store(float *p, v16 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
static inline __attribute__((always_inline)) void v16_storem(float *p, m16 k, v16 v) {
    v16_store8m(p, k, v.lo);
    v16_store8m(p + 8, k >> 8, v.hi);
}
static inline __attribute__((always_inline)) v16 v16_set1(float x) {
    __m256 b = _mm256_set1_ps(x);
    return (v16){b, b};
}
static inline __attribute__((always_inline)) v16 v16_fmadd(v16 a, v16 b, v16 c) {
    return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline __attribute__((always_inline)) v16 v16_add(v16 a, v16 b) {
    return (v16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}

/* r[0..8) transposed in place (8 x 8 floats) */
static inline __attribute__((always_inline)) void v16_transpose8(__m256 *r0, __m256 *r1, __m256 *r2,
                                                                  __m256 *r3, __m256 *r4, __m256 *r5,
                                                                  __m256 *r6, __m256 *r7) {
    __m256 t0 = _mm256_unpacklo_ps(*r0, *r1), t1 = _mm256_unpackhi_ps(*r0, *r1);
    __m256 t2 = _mm256_unpacklo_ps(*r2, *r3), t3 = _mm256_unpackhi_ps(*r2, *r3);
    __m256 t4 = _mm256_unpacklo_ps(*r4, *r5), t5 = _mm256_unpackhi_ps(*r4, *r5);
    __m256 t6 = _mm256_unpacklo_ps(*r6, *r7), t7 = _mm256_unpackhi_ps(*r6, *r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    *r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
    *r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
    *r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
    *r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
    *r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
    *r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
    *r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
    *r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* r[0..16) transposed in place, as the AVX-512 one: four 8 x 8 blocks, the off-diagonal two
 * swapped */
static inline void v16_transpose(v16 r[16]) {
    for (int h = 0; h < 2; h++) { /* rows 8h..8h+7: their lanes 0-7 and 8-15 */
        v16 *q = r + 8 * h;
        v16_transpose8(&q[0].lo, &q[1].lo, &q[2].lo, &q[3].lo, &q[4].lo, &q[5].lo, &q[6].lo, &q[7].lo);
        v16_transpose8(&q[0].hi, &q[1].hi, &q[2].hi, &q[3].hi, &q[4].hi, &q[5].hi, &q[6].hi, &q[7].hi);
    }
    for (int i = 0; i < 8; i++) { /* block (rows 0-7, lanes 8-15) <-> (rows 8-15, lanes 0-7) */
        __m256 t = r[i].hi;
        r[i].hi = r[8 + i].lo;
        r[8 + i].lo = t;
    }
}

#else
#define BL_TILES 0
#endif

#if BL_TILES
/* the first n lanes (all 16 from n = 16 on) */
static inline m16 lanes(int n) { return n >= 16 ? (m16)0xFFFF : (m16)((1u << n) - 1u); }
#endif

#endif
