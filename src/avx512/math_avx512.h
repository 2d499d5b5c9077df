/*
 * Inline vector exp and log, AVX-512F. The algorithm and its constants are
 * src/vmath.h; math_avx2.h and math_neon.h have this structure line for line.
 */
#ifndef KD_MATH_AVX512_H
#define KD_MATH_AVX512_H

#if !defined(__AVX512F__)
#error "math_avx512.h needs -mavx512f"
#endif
#include <immintrin.h>
#include "vmath.h"

/* c[0] + c[1] x + ... + c[4] x^4 and c[0] + ... + c[8] x^8, x2 = x * x, by
 * Estrin's scheme. */
static inline __m512 kd_poly4_avx512(__m512 x, __m512 x2, const float *c) {
  __m512 lo = _mm512_fmadd_ps(_mm512_set1_ps(c[1]), x, _mm512_set1_ps(c[0]));
  __m512 hi = _mm512_fmadd_ps(_mm512_set1_ps(c[3]), x, _mm512_set1_ps(c[2]));
  hi = _mm512_fmadd_ps(_mm512_set1_ps(c[4]), x2, hi);
  return _mm512_fmadd_ps(hi, x2, lo);
}
static inline __m512 kd_poly8_avx512(__m512 x, __m512 x2, const float *c) {
  __m512 x4 = _mm512_mul_ps(x2, x2);
  __m512 lo = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(c[3]), x, _mm512_set1_ps(c[2])), x2,
                              _mm512_fmadd_ps(_mm512_set1_ps(c[1]), x, _mm512_set1_ps(c[0])));
  __m512 hi = _mm512_fmadd_ps(_mm512_set1_ps(c[8]), x, _mm512_set1_ps(c[7]));
  hi = _mm512_fmadd_ps(hi, x, _mm512_set1_ps(c[6]));
  hi = _mm512_fmadd_ps(hi, x2, _mm512_fmadd_ps(_mm512_set1_ps(c[5]), x, _mm512_set1_ps(c[4])));
  return _mm512_fmadd_ps(hi, x4, lo);
}

/*
 * exp, 16 x f32. Domain x <= 0; -inf gives 0; results under FLT_MIN (x below
 * KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.02 ulp over
 * every float of [KD_EXP_MIN_ARG, 0] against libm in double; tests/test_vecmath.c
 * asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is outside the domain
 * (no overflow handling); NaN lanes give 0. Garbage lanes do not fault.
 * The kernels pass (x - max) / T, <= 0 because max is the row's maximum
 * (or -inf for masked classes); lanes past n are zeroed after the call.
 */
static inline __m512 kd_exp_avx512(__m512 x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4};
  const __m512 shift = _mm512_set1_ps(KD_EXP_SHIFT);
  __m512 j = _mm512_fmadd_ps(x, _mm512_set1_ps(KD_LOG2E), shift);
  __m512 n = _mm512_sub_ps(j, shift);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KD_LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KD_LN2_LO), r);
  __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_add_ps(_mm512_fmadd_ps(kd_poly4_avx512(r, r2, c), r2, r), _mm512_set1_ps(1.0f));
  /* p 2^n by vscalefps (n >= -126: a normal result); below, flushed. */
  __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(KD_EXP_MIN_ARG), _CMP_GE_OQ);
  return _mm512_maskz_scalef_ps(keep, p, n);
}

/*
 * log, 16 x f32. Domain: every positive normal float. Max error 1.01 ulp over
 * every float of [FLT_MIN, 2], 0.95 over every 31st of [FLT_MIN, FLT_MAX],
 * against libm in double; log(1) = 0 exactly; tests/test_vecmath.c asserts
 * TK_LOG_ULP. Zero, negatives, inf and NaN give garbage (no fault). The
 * kernels pass q + eps with q a probability in [0, 1] (up to rounding) and eps
 * = 1e-5 or 1e-5/cols (>= 5e-24 for any cols that fits in memory), 1 + x for
 * log1p with x in [-1 + FLT_MIN, 1), and ratios of sums in [1/n, 1]: always in
 * [FLT_MIN, 2]; lanes past n are kept out of every sum after the call.
 */
static inline __m512 kd_log_avx512(__m512 x) {
  static const float c[] = {KD_LOG_Q0, KD_LOG_Q1, KD_LOG_Q2, KD_LOG_Q3, KD_LOG_Q4,
                            KD_LOG_Q5, KD_LOG_Q6, KD_LOG_Q7, KD_LOG_Q8};
  /* m = x / 2^k in [0.75, 1.5); k = exponent(x) - exponent(m), as a float. */
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src);
  __m512 k = _mm512_sub_ps(_mm512_getexp_ps(x), _mm512_getexp_ps(m));
  __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), f2 = _mm512_mul_ps(f, f);
  __m512 y = _mm512_fmadd_ps(kd_poly8_avx512(f, f2, c), f2, f);
  return _mm512_fmadd_ps(k, _mm512_set1_ps(KD_LN2), y);
}

#endif /* KD_MATH_AVX512_H */
