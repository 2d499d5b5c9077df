/*
 * Vector helpers shared by the AVX-512 kernel files: the width, tail masks,
 * and the reduction of float partial sums into double.
 */
#ifndef KD_VEC_AVX512_H
#define KD_VEC_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__)
#error "vec_avx512.h needs -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif
#include <immintrin.h>
#include <stddef.h>

#define W 16 /* floats per vector */

/* The first k lanes (all of them when k >= W). */
static inline __mmask16 kd_mask(size_t k) {
  return k >= W ? (__mmask16)0xffff : (__mmask16)((1u << k) - 1u);
}

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(__m512 v) {
  __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

/* The u accumulators of one sum, added, then reduced. */
static inline double kd_hsum_n(const __m512 *acc, int u) {
  __m512 v = acc[0];
  for (int k = 1; k < u; k++) v = _mm512_add_ps(v, acc[k]);
  return kd_hsum(v);
}

#endif /* KD_VEC_AVX512_H */
