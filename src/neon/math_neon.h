/*
 * Inline vector exp and log, AdvSIMD: the two steps of vmath_inline.h that
 * need intrinsics (the algorithm, its constants and the bounds are
 * vmath.h and vmath_inline.h). Included after vec_neon.h's operations.
 */
#ifndef KD_MATH_NEON_H
#define KD_MATH_NEON_H

#if !defined(__ARM_NEON)
#error "math_neon.h needs AdvSIMD (__ARM_NEON)"
#endif
#include <arm_neon.h>
#include "vmath.h"

/* p 2^n: n (j's low bits) added to p's exponent field, for n >= -126 and p
 * in [0.7, 1.5) a normal result (garbage below, flushed). */
static inline float32x4_t kd_exp_pow2(float32x4_t p, float32x4_t j, float32x4_t n,
                                      float32x4_t x) {
  (void)n;
  int32x4_t e = vshlq_n_s32(vreinterpretq_s32_f32(j), 23);
  float32x4_t y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), e));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y),
                                         vcgeq_f32(x, vdupq_n_f32(KD_EXP_MIN_ARG))));
}

/* k = the exponent of x / 0.75; m = x / 2^k in [0.75, 1.5). */
static inline float32x4_t kd_log_split(float32x4_t x, float32x4_t *k) {
  int32x4_t ix = vreinterpretq_s32_f32(x);
  int32x4_t ki = vshrq_n_s32(vsubq_s32(ix, vdupq_n_s32(KD_LOG_M_LO_BITS)), 23);
  float32x4_t m = vreinterpretq_f32_s32(vsubq_s32(ix, vshlq_n_s32(ki, 23)));
  *k = vcvtq_f32_s32(ki);
  return m;
}

#include "vmath_inline.h"

#endif /* KD_MATH_NEON_H */
