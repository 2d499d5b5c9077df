/*
 * vmath_inline.h -- the inline vector exp and log (vmath.h has the algorithm
 * and its constants), written once over the operation layer. Included by
 * src/<isa>/math_<isa>.h after vec_<isa>.h's operations and the two steps
 * that intrinsics force, which math_<isa>.h defines first:
 *   kd_exp_pow2(p, j, n, x): p 2^n for p in [0.7, 1.5), with n = j - shift
 *     (on AVX2 and NEON the low bits of j are n as an integer); 0 where
 *     x < KD_EXP_MIN_ARG.
 *   kd_log_split(x, &k): m = x / 2^k in [0.75, 1.5), and k as a float.
 */
#ifndef KD_VMATH_INLINE_H
#define KD_VMATH_INLINE_H

#ifndef KD_VEC_ISA
#error "include the ISA's vec_<isa>.h before vmath_inline.h"
#endif
#include "vmath.h"

/* c[0] + c[1] x + ... + c[4] x^4 and c[0] + ... + c[8] x^8, x2 = x * x, by
 * Estrin's scheme. */
static inline kd_vf kd_poly4(kd_vf x, kd_vf x2, const float *c) {
  kd_vf lo = kd_fmadd(kd_set1(c[1]), x, kd_set1(c[0]));
  kd_vf hi = kd_fmadd(kd_set1(c[3]), x, kd_set1(c[2]));
  hi = kd_fmadd(kd_set1(c[4]), x2, hi);
  return kd_fmadd(hi, x2, lo);
}
static inline kd_vf kd_poly8(kd_vf x, kd_vf x2, const float *c) {
  kd_vf x4 = kd_mul(x2, x2);
  kd_vf lo = kd_fmadd(kd_fmadd(kd_set1(c[3]), x, kd_set1(c[2])), x2,
                      kd_fmadd(kd_set1(c[1]), x, kd_set1(c[0])));
  kd_vf hi = kd_fmadd(kd_set1(c[8]), x, kd_set1(c[7]));
  hi = kd_fmadd(hi, x, kd_set1(c[6]));
  hi = kd_fmadd(hi, x2, kd_fmadd(kd_set1(c[5]), x, kd_set1(c[4])));
  return kd_fmadd(hi, x4, lo);
}

/*
 * exp of every lane. Domain x <= 0; -inf gives 0; results under FLT_MIN (x
 * below KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.02
 * ulp over every float of [KD_EXP_MIN_ARG, 0] against libm in double;
 * tests/test_vecmath.c asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is
 * outside the domain (no overflow handling); NaN lanes give 0. Garbage
 * lanes do not fault. The kernels pass (x - max) / T, <= 0 because max is
 * the row's maximum (or -inf for masked classes); lanes past n are zeroed
 * after the call.
 */
static inline kd_vf kd_exp_inline(kd_vf x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4};
  const kd_vf shift = kd_set1(KD_EXP_SHIFT);
  kd_vf j = kd_fmadd(x, kd_set1(KD_LOG2E), shift);
  kd_vf n = kd_sub(j, shift);
  kd_vf r = kd_fnmadd(n, kd_set1(KD_LN2_HI), x);
  r = kd_fnmadd(n, kd_set1(KD_LN2_LO), r);
  kd_vf r2 = kd_mul(r, r);
  kd_vf p = kd_add(kd_fmadd(kd_poly4(r, r2, c), r2, r), kd_set1(1.0f));
  return kd_exp_pow2(p, j, n, x);
}

/*
 * log of every lane. Domain: every positive normal float. Max error 1.01 ulp
 * over every float of [FLT_MIN, 2], 0.95 over every 31st of [FLT_MIN,
 * FLT_MAX], against libm in double; log(1) = 0 exactly; tests/test_vecmath.c
 * asserts TK_LOG_ULP. Zero, negatives, inf and NaN give garbage (no fault),
 * and so do subnormals on AVX2 and NEON. The kernels pass q + eps with q a
 * probability in [0, 1] (up to rounding) and eps = 1e-5 or 1e-5/cols
 * (>= 5e-24 for any cols that fits in memory), 1 + x for log1p with x in
 * [-1 + FLT_MIN, 1), and ratios of sums in [1/n, 1]: always in [FLT_MIN, 2];
 * lanes past n are kept out of every sum after the call.
 */
static inline kd_vf kd_log_inline(kd_vf x) {
  static const float c[] = {KD_LOG_Q0, KD_LOG_Q1, KD_LOG_Q2, KD_LOG_Q3, KD_LOG_Q4,
                            KD_LOG_Q5, KD_LOG_Q6, KD_LOG_Q7, KD_LOG_Q8};
  kd_vf k;
  kd_vf m = kd_log_split(x, &k);
  kd_vf f = kd_sub(m, kd_set1(1.0f)), f2 = kd_mul(f, f);
  kd_vf y = kd_fmadd(kd_poly8(f, f2, c), f2, f);
  return kd_fmadd(k, kd_set1(KD_LN2), y);
}

#endif /* KD_VMATH_INLINE_H */
