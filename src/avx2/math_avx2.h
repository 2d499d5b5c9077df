/*
 * Inline vector exp and log, AVX2 + FMA: the two steps of vmath_inline.h that
 * need intrinsics (the algorithm, its constants and the bounds are
 * vmath.h and vmath_inline.h). Included after vec_avx2.h's operations.
 */
#ifndef KD_MATH_AVX2_H
#define KD_MATH_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "math_avx2.h needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include "vmath.h"

/* p 2^n: n (j's low bits) added to p's exponent field, for n >= -126 and p
 * in [0.7, 1.5) a normal result (garbage below, flushed). */
static inline __m256 kd_exp_pow2(__m256 p, __m256 j, __m256 n, __m256 x) {
  (void)n;
  __m256i e = _mm256_slli_epi32(_mm256_castps_si256(j), 23);
  __m256 y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
  return _mm256_and_ps(y, _mm256_cmp_ps(x, _mm256_set1_ps(KD_EXP_MIN_ARG), _CMP_GE_OQ));
}

/* k = the exponent of x / 0.75; m = x / 2^k in [0.75, 1.5). */
static inline __m256 kd_log_split(__m256 x, __m256 *k) {
  __m256i ix = _mm256_castps_si256(x);
  __m256i ki = _mm256_srai_epi32(_mm256_sub_epi32(ix, _mm256_set1_epi32(KD_LOG_M_LO_BITS)), 23);
  __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(ix, _mm256_slli_epi32(ki, 23)));
  *k = _mm256_cvtepi32_ps(ki);
  return m;
}

#include "vmath_inline.h"

#endif /* KD_MATH_AVX2_H */
