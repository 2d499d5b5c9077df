/*
 * Inline vector exp and log, AVX-512F: the two steps of vmath_inline.h that
 * need intrinsics (the algorithm, its constants and the bounds are
 * vmath.h and vmath_inline.h). Included after vec_avx512.h's operations.
 */
#ifndef KD_MATH_AVX512_H
#define KD_MATH_AVX512_H

#if !defined(__AVX512F__)
#error "math_avx512.h needs -mavx512f"
#endif
#include <immintrin.h>
#include "vmath.h"

/* p 2^n by vscalefps (n >= -126: a normal result); below, flushed. */
static inline __m512 kd_exp_pow2(__m512 p, __m512 j, __m512 n, __m512 x) {
  (void)j;
  __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(KD_EXP_MIN_ARG), _CMP_GE_OQ);
  return _mm512_maskz_scalef_ps(keep, p, n);
}

/* m = x / 2^k in [0.75, 1.5); k = exponent(x) - exponent(m), as a float. */
static inline __m512 kd_log_split(__m512 x, __m512 *k) {
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src);
  *k = _mm512_sub_ps(_mm512_getexp_ps(x), _mm512_getexp_ps(m));
  return m;
}

#include "vmath_inline.h"

#endif /* KD_MATH_AVX512_H */
