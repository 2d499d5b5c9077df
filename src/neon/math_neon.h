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

/* c[0] x^(n-1) + ... + c[n-1], Horner with FMA. */
static inline float32x4_t kd_horner_neon(float32x4_t x, const float *c, int n) {
  float32x4_t p = vdupq_n_f32(c[0]);
  for (int i = 1; i < n; i++) p = vfmaq_f32(vdupq_n_f32(c[i]), p, x);
  return p;
}

/*
 * exp, 4 x f32. Domain x <= 0; -inf gives 0; results under FLT_MIN (x below
 * KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.26 ulp over
 * every float of [KD_EXP_MIN_ARG, 0] against libm in double; tests/test_vecmath.c
 * asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is outside the domain
 * (no overflow handling); NaN lanes give 0. Garbage lanes do not fault.
 * The kernels pass (x - max) / T, <= 0 because max is the row's maximum
 * (or -inf for masked classes); lanes past n are zeroed after the call.
 */
static inline float32x4_t kd_exp_neon(float32x4_t x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4, KD_EXP_P5};
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(KD_LOG2E)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(KD_LN2_HI));
  r = vfmsq_f32(r, n, vdupq_n_f32(KD_LN2_LO));
  float32x4_t p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), kd_horner_neon(r, c, 6),
                            vmulq_f32(r, r));
  /* 2^n for n >= -126: the exponent field n + 127 (garbage below, flushed). */
  int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y),
                                         vcgeq_f32(x, vdupq_n_f32(KD_EXP_MIN_ARG))));
}

/*
 * log, 4 x f32. Domain [FLT_MIN, 2] (by construction any positive
 * normal float, measured on [FLT_MIN, 2] only). Max error 0.83 ulp over every
 * float of it against libm in double, log(1) = 0 exactly; tests/test_vecmath.c
 * asserts TK_LOG_ULP. Zero, subnormals, negatives, inf and NaN give garbage
 * (no fault). The kernels pass q + eps with q a probability in [0, 1] (up
 * to rounding) and eps = 1e-5 or 1e-5/cols (>= 5e-24 for any cols that fits
 * in memory), and 1 + x for log1p with x in [-1 + FLT_MIN, 1): always in
 * [FLT_MIN, 2]; lanes past n are kept out of every sum after the call.
 */
static inline float32x4_t kd_log_neon(float32x4_t x) {
  static const float c[] = {KD_LOG_P0, KD_LOG_P1, KD_LOG_P2, KD_LOG_P3, KD_LOG_P4,
                            KD_LOG_P5, KD_LOG_P6, KD_LOG_P7, KD_LOG_P8};
  /* k = the exponent of x / sqrt(1/2); m = x / 2^k in [sqrt(1/2), sqrt(2)). */
  int32x4_t ix = vreinterpretq_s32_f32(x);
  int32x4_t k = vshrq_n_s32(vsubq_s32(ix, vdupq_n_s32(KD_LOG_SQRTHF_BITS)), 23);
  float32x4_t m = vreinterpretq_f32_s32(vsubq_s32(ix, vshlq_n_s32(k, 23)));
  float32x4_t f = vsubq_f32(m, vdupq_n_f32(1.0f)), kf = vcvtq_f32_s32(k);
  float32x4_t z = vmulq_f32(f, f);
  float32x4_t y = vmulq_f32(vmulq_f32(kd_horner_neon(f, c, 9), f), z);
  y = vfmaq_f32(y, kf, vdupq_n_f32(KD_LN2_LO));
  y = vfmsq_f32(y, z, vdupq_n_f32(0.5f));
  return vfmaq_f32(vaddq_f32(f, y), kf, vdupq_n_f32(KD_LN2_HI));
}

#endif /* KD_MATH_NEON_H */
