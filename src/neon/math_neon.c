/*
 * Array forms of the NEON inline exp and log, and of SLEEF's, for the tests
 * and benchmarks (vmath.h); not part of libkdloss. The last n % 4 elements go
 * through a stack buffer, so nothing outside x[0..n) and y[0..n) is touched.
 */
#include <string.h>
#include "math_neon.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#endif

#define W 4

#define KD_VMATH_ARRAY(name, fn)                                                  \
  void name(size_t n, const float *x, float *y) {                                 \
    size_t i = 0;                                                                 \
    for (; i + W <= n; i += W) vst1q_f32(y + i, fn(vld1q_f32(x + i)));            \
    if (i < n) {                                                                  \
      float b[W] = {0};                                                           \
      memcpy(b, x + i, (n - i) * sizeof *b);                                      \
      vst1q_f32(b, fn(vld1q_f32(b)));                                             \
      memcpy(y + i, b, (n - i) * sizeof *b);                                      \
    }                                                                             \
  }

KD_VMATH_ARRAY(kd_f32_exp_neon, kd_exp_neon)
KD_VMATH_ARRAY(kd_f32_log_neon, kd_log_neon)
#if KD_HAVE_SLEEF
KD_VMATH_ARRAY(kd_f32_exp_sleef_u10_neon, Sleef_expf4_u10advsimd)
KD_VMATH_ARRAY(kd_f32_log_sleef_u10_neon, Sleef_logf4_u10advsimd)
KD_VMATH_ARRAY(kd_f32_log_sleef_u35_neon, Sleef_logf4_u35advsimd)
#endif
