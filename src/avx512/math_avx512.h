/*
 * Inline vector exp and log, AVX-512F. The algorithm and its constants are
 * src/vmath.h; math_avx512.h and math_neon.h have this structure line for line.
 */
#ifndef KD_MATH_AVX512_H
#define KD_MATH_AVX512_H

#if !defined(__AVX512F__)
#error "math_avx512.h needs -mavx512f"
#endif
#include <immintrin.h>
#include "vmath.h"

/* c[0] x^(n-1) + ... + c[n-1], Horner with FMA. */
static inline __m512 kd_horner_avx512(__m512 x, const float *c, int n) {
  __m512 p = _mm512_set1_ps(c[0]);
  for (int i = 1; i < n; i++) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(c[i]));
  return p;
}

/*
 * exp, 16 x f32. Domain x <= 0; -inf gives 0; results under FLT_MIN (x below
 * KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.26 ulp over
 * every float of [KD_EXP_MIN_ARG, 0] against libm in double; tests/test_vecmath.c
 * asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is outside the domain
 * (no overflow handling); NaN lanes give 0. Garbage lanes do not fault.
 * The kernels pass (x - max) / T, <= 0 because max is the row's maximum
 * (or -inf for masked classes); lanes past n are zeroed after the call.
 */
static inline __m512 kd_exp_avx512(__m512 x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4, KD_EXP_P5};
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(KD_LOG2E)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KD_LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(KD_LN2_LO), r);
  __m512 p = _mm512_fmadd_ps(kd_horner_avx512(r, c, 6), _mm512_mul_ps(r, r),
                             _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  /* p 2^n by vscalefps (n >= -126: a normal result); below, flushed. */
  __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(KD_EXP_MIN_ARG), _CMP_GE_OQ);
  return _mm512_maskz_scalef_ps(keep, p, n);
}

/*
 * log, 16 x f32. Domain [FLT_MIN, 2] (by construction any positive
 * normal float, measured on [FLT_MIN, 2] only). Max error 0.83 ulp over every
 * float of it against libm in double, log(1) = 0 exactly; tests/test_vecmath.c
 * asserts TK_LOG_ULP. Zero, subnormals, negatives, inf and NaN give garbage
 * (no fault). The kernels pass q + eps with q a probability in [0, 1] (up
 * to rounding) and eps = 1e-5 or 1e-5/cols (>= 5e-24 for any cols that fits
 * in memory), and 1 + x for log1p with x in [-1 + FLT_MIN, 1): always in
 * [FLT_MIN, 2]; lanes past n are kept out of every sum after the call.
 */
static inline __m512 kd_log_avx512(__m512 x) {
  static const float c[] = {KD_LOG_P0, KD_LOG_P1, KD_LOG_P2, KD_LOG_P3, KD_LOG_P4,
                            KD_LOG_P5, KD_LOG_P6, KD_LOG_P7, KD_LOG_P8};
  /* k = the exponent of x / sqrt(1/2); m = x / 2^k in [sqrt(1/2), sqrt(2)). */
  __m512i ix = _mm512_castps_si512(x);
  __m512i k = _mm512_srai_epi32(_mm512_sub_epi32(ix, _mm512_set1_epi32(KD_LOG_SQRTHF_BITS)), 23);
  __m512 m = _mm512_castsi512_ps(_mm512_sub_epi32(ix, _mm512_slli_epi32(k, 23)));
  __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), kf = _mm512_cvtepi32_ps(k);
  __m512 z = _mm512_mul_ps(f, f);
  __m512 y = _mm512_mul_ps(_mm512_mul_ps(kd_horner_avx512(f, c, 9), f), z);
  y = _mm512_fmadd_ps(kf, _mm512_set1_ps(KD_LN2_LO), y);
  y = _mm512_fnmadd_ps(z, _mm512_set1_ps(0.5f), y);
  return _mm512_fmadd_ps(kf, _mm512_set1_ps(KD_LN2_HI), _mm512_add_ps(f, y));
}

#endif /* KD_MATH_AVX512_H */
