/* elementwise.c: CPU elementwise kernels (OpenMP-parallel loops). */
#include "../kernels.h"

#define EW(name, T, op)                                                                     \
    void name(T *out, const T *a, const T *b, size_t n, int b_scalar) {                     \
        if (b_scalar) {                                                                     \
            T s = b[0];                                                                     \
            _Pragma("omp parallel for if (n > 65536)")                                      \
            for (size_t i = 0; i < n; i++) out[i] = a[i] op s;                              \
        } else {                                                                            \
            _Pragma("omp parallel for if (n > 65536)")                                      \
            for (size_t i = 0; i < n; i++) out[i] = a[i] op b[i];                           \
        }                                                                                   \
    }

EW(k_add_f32, float, +)
EW(k_mul_f32, float, *)
EW(k_add_i64, int64_t, +)
EW(k_mul_i64, int64_t, *)

void k_fill_f32(float *out, float value, size_t n) {
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = value;
}
