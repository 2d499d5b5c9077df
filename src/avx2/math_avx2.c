/*
 * Array forms of the AVX2 inline exp and log, and of SLEEF's, for the tests
 * and benchmarks (vmath.h); not part of libkdloss. The last n % 8 elements go
 * through a stack buffer, so nothing outside x[0..n) and y[0..n) is touched.
 */
#include <string.h>
#include "math_avx2.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#endif

#define W 8

#define KD_VMATH_ARRAY(name, fn)                                                  \
  void name(size_t n, const float *x, float *y) {                                 \
    size_t i = 0;                                                                 \
    for (; i + W <= n; i += W) _mm256_storeu_ps(y + i, fn(_mm256_loadu_ps(x + i))); \
    if (i < n) {                                                                  \
      float b[W] = {0};                                                           \
      memcpy(b, x + i, (n - i) * sizeof *b);                                      \
      _mm256_storeu_ps(b, fn(_mm256_loadu_ps(b)));                                \
      memcpy(y + i, b, (n - i) * sizeof *b);                                      \
    }                                                                             \
  }

KD_VMATH_ARRAY(kd_f32_exp_avx2, kd_exp_avx2)
KD_VMATH_ARRAY(kd_f32_log_avx2, kd_log_avx2)
#if KD_HAVE_SLEEF
KD_VMATH_ARRAY(kd_f32_exp_sleef_u10_avx2, Sleef_expf8_u10avx2)
KD_VMATH_ARRAY(kd_f32_log_sleef_u10_avx2, Sleef_logf8_u10avx2)
KD_VMATH_ARRAY(kd_f32_log_sleef_u35_avx2, Sleef_logf8_u35avx2)
#endif
