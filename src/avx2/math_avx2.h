/*
 * Inline vector exp and log, AVX2 + FMA. The algorithm and its constants are
 * src/vmath.h; math_avx512.h and math_neon.h have this structure line for line.
 */
#ifndef KD_MATH_AVX2_H
#define KD_MATH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "math_avx2.h needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include "vmath.h"

/* c[0] x^(n-1) + ... + c[n-1], Horner with FMA. */
static inline __m256 kd_horner_avx2(__m256 x, const float *c, int n) {
  __m256 p = _mm256_set1_ps(c[0]);
  for (int i = 1; i < n; i++) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(c[i]));
  return p;
}

/*
 * exp, 8 x f32. Domain x <= 0; -inf gives 0; results under FLT_MIN (x below
 * KD_EXP_MIN_ARG) are flushed to 0, never subnormal. Max error 1.26 ulp over
 * every float of [KD_EXP_MIN_ARG, 0] against libm in double; tests/test_vecmath.c
 * asserts TK_EXP_ULP (tests/tolerance.h). x > 0 is outside the domain
 * (no overflow handling); NaN lanes give 0. Garbage lanes do not fault.
 * The kernels pass (x - max) / T, <= 0 because max is the row's maximum
 * (or -inf for masked classes); lanes past n are zeroed after the call.
 */
static inline __m256 kd_exp_avx2(__m256 x) {
  static const float c[] = {KD_EXP_P0, KD_EXP_P1, KD_EXP_P2, KD_EXP_P3, KD_EXP_P4, KD_EXP_P5};
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(KD_LOG2E)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(KD_LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(KD_LN2_LO), r);
  __m256 p = _mm256_fmadd_ps(kd_horner_avx2(r, c, 6), _mm256_mul_ps(r, r),
                             _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n for n >= -126: the exponent field n + 127 (garbage below, flushed). */
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_and_ps(y, _mm256_cmp_ps(x, _mm256_set1_ps(KD_EXP_MIN_ARG), _CMP_GE_OQ));
}

/*
 * log, 8 x f32. Domain [FLT_MIN, 2] (by construction any positive
 * normal float, measured on [FLT_MIN, 2] only). Max error 0.83 ulp over every
 * float of it against libm in double, log(1) = 0 exactly; tests/test_vecmath.c
 * asserts TK_LOG_ULP. Zero, subnormals, negatives, inf and NaN give garbage
 * (no fault). The kernels pass q + eps with q a probability in [0, 1] (up
 * to rounding) and eps = 1e-5 or 1e-5/cols (>= 5e-24 for any cols that fits
 * in memory), and 1 + x for log1p with x in [-1 + FLT_MIN, 1): always in
 * [FLT_MIN, 2]; lanes past n are kept out of every sum after the call.
 */
static inline __m256 kd_log_avx2(__m256 x) {
  static const float c[] = {KD_LOG_P0, KD_LOG_P1, KD_LOG_P2, KD_LOG_P3, KD_LOG_P4,
                            KD_LOG_P5, KD_LOG_P6, KD_LOG_P7, KD_LOG_P8};
  /* k = the exponent of x / sqrt(1/2); m = x / 2^k in [sqrt(1/2), sqrt(2)). */
  __m256i ix = _mm256_castps_si256(x);
  __m256i k = _mm256_srai_epi32(_mm256_sub_epi32(ix, _mm256_set1_epi32(KD_LOG_SQRTHF_BITS)), 23);
  __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(ix, _mm256_slli_epi32(k, 23)));
  __m256 f = _mm256_sub_ps(m, _mm256_set1_ps(1.0f)), kf = _mm256_cvtepi32_ps(k);
  __m256 z = _mm256_mul_ps(f, f);
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(kd_horner_avx2(f, c, 9), f), z);
  y = _mm256_fmadd_ps(kf, _mm256_set1_ps(KD_LN2_LO), y);
  y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
  return _mm256_fmadd_ps(kf, _mm256_set1_ps(KD_LN2_HI), _mm256_add_ps(f, y));
}

#endif /* KD_MATH_AVX2_H */
