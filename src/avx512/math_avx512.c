/*
 * Array forms of the AVX-512 inline exp and log, and of SLEEF's, for the tests
 * and benchmarks (vmath.h); not part of libkdloss. The last n % 16 elements go
 * through a stack buffer, so nothing outside x[0..n) and y[0..n) is touched.
 */
#include <string.h>
#include "math_avx512.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#endif

#define W 16

#define KD_VMATH_ARRAY(name, fn)                                                  \
  void name(size_t n, const float *x, float *y) {                                 \
    size_t i = 0;                                                                 \
    for (; i + W <= n; i += W) _mm512_storeu_ps(y + i, fn(_mm512_loadu_ps(x + i))); \
    if (i < n) {                                                                  \
      float b[W] = {0};                                                           \
      memcpy(b, x + i, (n - i) * sizeof *b);                                      \
      _mm512_storeu_ps(b, fn(_mm512_loadu_ps(b)));                                \
      memcpy(y + i, b, (n - i) * sizeof *b);                                      \
    }                                                                             \
  }

KD_VMATH_ARRAY(kd_f32_exp_avx512, kd_exp_avx512)
KD_VMATH_ARRAY(kd_f32_log_avx512, kd_log_avx512)
#if KD_HAVE_SLEEF
KD_VMATH_ARRAY(kd_f32_exp_sleef_u10_avx512, Sleef_expf16_u10avx512f)
KD_VMATH_ARRAY(kd_f32_log_sleef_u10_avx512, Sleef_logf16_u10avx512f)
KD_VMATH_ARRAY(kd_f32_log_sleef_u35_avx512, Sleef_logf16_u35avx512f)
#endif
