/*
 * math_arrays.h -- array forms of the inline exp and log (vmath_inline.h) and
 * of SLEEF's, declared in vmath.h, for the tests and benchmarks; never part of
 * libkdloss. Written once, instantiated by src/<isa>/math_<isa>.c after its
 * vec_<isa>.h and math_<isa>.h, with KD_SLEEF_EXP_U10, KD_SLEEF_LOG_U10 and
 * KD_SLEEF_LOG_U35 naming that ISA's SLEEF functions when KD_HAVE_SLEEF.
 * The last n % KD_LANES elements go through a stack buffer, so nothing
 * outside x[0..n) and y[0..n) is touched.
 */
#ifndef KD_MATH_ARRAYS_H
#define KD_MATH_ARRAYS_H

#ifndef KD_VEC_ISA
#error "include the ISA's vec_<isa>.h before math_arrays.h"
#endif
#include <string.h>
#include "passes.h" /* KD_PASTE */

#define KD_VMATH_ARRAY(name, fn)                                  \
  void KD_PASTE(name, KD_VEC_ISA)(size_t n, const float *x, float *y) { \
    size_t i = 0;                                                 \
    for (; i + KD_LANES <= n; i += KD_LANES) kd_store(y + i, fn(kd_load(x + i))); \
    if (i < n) {                                                  \
      float b[KD_LANES] = {0};                                    \
      memcpy(b, x + i, (n - i) * sizeof *b);                      \
      kd_store(b, fn(kd_load(b)));                                \
      memcpy(y + i, b, (n - i) * sizeof *b);                      \
    }                                                             \
  }

KD_VMATH_ARRAY(kd_f32_exp, kd_exp_inline)
KD_VMATH_ARRAY(kd_f32_log, kd_log_inline)
#if KD_HAVE_SLEEF
KD_VMATH_ARRAY(kd_f32_exp_sleef_u10, KD_SLEEF_EXP_U10)
KD_VMATH_ARRAY(kd_f32_log_sleef_u10, KD_SLEEF_LOG_U10)
KD_VMATH_ARRAY(kd_f32_log_sleef_u35, KD_SLEEF_LOG_U35)
#endif

#endif /* KD_MATH_ARRAYS_H */
