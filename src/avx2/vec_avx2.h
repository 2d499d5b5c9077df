/*
 * Vector helpers shared by the AVX2 kernel files: the width, tail masks, and
 * the reduction of float partial sums into double.
 */
#ifndef KD_VEC_AVX2_H
#define KD_VEC_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "vec_avx2.h needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <stddef.h>

#define W 8 /* floats per vector */

/* The first k lanes (all of them when k >= W), as a maskload mask. */
static inline __m256i kd_mask(size_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k >= W ? W : (int)k),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(__m256 v) {
  __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* The u accumulators of one sum, added, then reduced. */
static inline double kd_hsum_n(const __m256 *acc, int u) {
  __m256 v = acc[0];
  for (int k = 1; k < u; k++) v = _mm256_add_ps(v, acc[k]);
  return kd_hsum(v);
}

#endif /* KD_VEC_AVX2_H */
