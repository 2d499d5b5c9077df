/*
 * Inline vector exp and log, aarch64 AdvSIMD. The algorithm and its constants
 * are src/vmath.h; math_avx2.h and math_avx512.h have this structure line for line.
 */
#ifndef KD_MATH_NEON_H
#define KD_MATH_NEON_H

#if !defined(__ARM_NEON)
#error "math_neon.h needs AdvSIMD (__ARM_NEON)"
#endif
#include <arm_neon.h>
#include "vmath.h"

/* c[0] + c[1] x + ... + c[4] x^4 and c[0] + ... + c[8] x^8, x2 = x * x, by
 * Estrin's scheme. */
static inline float32x4_t kd_poly4_neon(float32x4_t x, float32x4_t x2, const float *c) {
  float32x4_t lo = vfmaq_f32(vdupq_n_f32(c[0]), vdupq_n_f32(c[1]), x);
  float32x4_t hi = vfmaq_f32(vdupq_n_f32(c[2]), vdupq_n_f32(c[3]), x);
  hi = vfmaq_f32(hi, vdupq_n_f32(c[4]), x2);
  return vfmaq_f32(lo, hi, x2);
}
static inline float32x4_t kd_poly8_neon(float32x4_t x, float32x4_t x2, const float *c) {
  float32x4_t x4 = vmulq_f32(x2, x2);
  float32x4_t lo = vfmaq_f32(vfmaq_f32(vdupq_n_f32(c[0]), vdupq_n_f32(c[1]), x), x2,
                             vfmaq_f32(vdupq_n_f32(c[2]), vdupq_n_f32(c[3]), x));
  float32x4_t hi = vfmaq_f32(vdupq_n_f32(c[7]), vdupq_n_f32(c[8]), x);
  hi = vfmaq_f32(vdupq_n_f32(c[6]), hi, x);
  hi = vfmaq_f32(vfmaq_f32(vdupq_n_f32(c[4]), vdupq_n_f32(c[5]), x), hi, x2);
  return vfmaq_f32(lo, hi, x4);
}

/*
 * exp, 4 x f32. Domain x <= 0; -inf gives 0; results under FLT_MIN (x below
 * KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.02 ulp over
 * every float of [KD_EXP_MIN_ARG, 0] against libm in double; tests/test_vecmath.c
 * asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is outside the domain
 * (no overflow handling); NaN lanes give 0. Garbage lanes do not fault.
 * The kernels pass (x - max) / T, <= 0 because max is the row's maximum
 * (or -inf for masked classes); lanes past n are zeroed after the call.
 */
static inline float32x4_t kd_exp_neon(float32x4_t x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4};
  const float32x4_t shift = vdupq_n_f32(KD_EXP_SHIFT);
  float32x4_t j = vfmaq_f32(shift, x, vdupq_n_f32(KD_LOG2E));
  float32x4_t n = vsubq_f32(j, shift);
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(KD_LN2_HI));
  r = vfmsq_f32(r, n, vdupq_n_f32(KD_LN2_LO));
  float32x4_t r2 = vmulq_f32(r, r);
  float32x4_t p = vaddq_f32(vfmaq_f32(r, kd_poly4_neon(r, r2, c), r2), vdupq_n_f32(1.0f));
  /* p 2^n: n (j's low bits) added to p's exponent field, for n >= -126 and
   * p in [0.7, 1.5) a normal result (garbage below, flushed). */
  int32x4_t e = vshlq_n_s32(vreinterpretq_s32_f32(j), 23);
  float32x4_t y = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), e));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y),
                                         vcgeq_f32(x, vdupq_n_f32(KD_EXP_MIN_ARG))));
}

/*
 * log, 4 x f32. Domain: every positive normal float. Max error 1.01 ulp over
 * every float of [FLT_MIN, 2], 0.95 over every 31st of [FLT_MIN, FLT_MAX],
 * against libm in double; log(1) = 0 exactly; tests/test_vecmath.c asserts
 * TK_LOG_ULP. Zero, subnormals, negatives, inf and NaN give garbage (no
 * fault). The kernels pass q + eps with q a probability in [0, 1] (up to
 * rounding) and eps = 1e-5 or 1e-5/cols (>= 5e-24 for any cols that fits in
 * memory), 1 + x for log1p with x in [-1 + FLT_MIN, 1), and ratios of sums in
 * [1/n, 1]: always in [FLT_MIN, 2]; lanes past n are kept out of every sum
 * after the call.
 */
static inline float32x4_t kd_log_neon(float32x4_t x) {
  static const float c[] = {KD_LOG_Q0, KD_LOG_Q1, KD_LOG_Q2, KD_LOG_Q3, KD_LOG_Q4,
                            KD_LOG_Q5, KD_LOG_Q6, KD_LOG_Q7, KD_LOG_Q8};
  /* k = the exponent of x / 0.75; m = x / 2^k in [0.75, 1.5). */
  int32x4_t ix = vreinterpretq_s32_f32(x);
  int32x4_t ki = vshrq_n_s32(vsubq_s32(ix, vdupq_n_s32(KD_LOG_M_LO_BITS)), 23);
  float32x4_t m = vreinterpretq_f32_s32(vsubq_s32(ix, vshlq_n_s32(ki, 23)));
  float32x4_t k = vcvtq_f32_s32(ki);
  float32x4_t f = vsubq_f32(m, vdupq_n_f32(1.0f)), f2 = vmulq_f32(f, f);
  float32x4_t y = vfmaq_f32(f, kd_poly8_neon(f, f2, c), f2);
  return vfmaq_f32(y, k, vdupq_n_f32(KD_LN2));
}

#endif /* KD_MATH_NEON_H */
