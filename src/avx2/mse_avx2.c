/*
 * MSE row passes, AVX2 + FMA. The structure of src/scalar/mse_scalar.c and
 * src/avx512/mse_avx512.c: a float sum per KD_BLOCK elements joining a double.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "mse_avx2.c needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>
#include "kernels.h"

#define W 8 /* floats per vector */
/* Accumulators: see mse_avx512.c. */
#define KD_U 4

static inline __m256i kd_mask(size_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k >= W ? W : (int)k),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline double kd_hsum_acc(const __m256 *acc) {
  __m256 v = acc[0];
  for (int k = 1; k < KD_U; k++) v = _mm256_add_ps(v, acc[k]);
  __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

double kd_f32_mse_avx2(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(s + j + k * W), _mm256_loadu_ps(t + j + k * W));
        f[k] = _mm256_fmadd_ps(d, d, f[k]);
      }
    }
    for (; j < end; j += W) {
      /* Lanes past end load as 0 on both sides: d = 0 adds nothing. */
      __m256i m = kd_mask(end - j);
      __m256 d = _mm256_sub_ps(_mm256_maskload_ps(s + j, m), _mm256_maskload_ps(t + j, m));
      f[0] = _mm256_fmadd_ps(d, d, f[0]);
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

double kd_f32_msegrad_avx2(size_t n, const float *s, const float *t,
                           float scale, float *grad) {
  const __m256 sc = _mm256_set1_ps(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(s + i), _mm256_loadu_ps(t + i));
        f[k] = _mm256_fmadd_ps(d, d, f[k]);
        _mm256_storeu_ps(grad + i, _mm256_mul_ps(sc, d));
      }
    }
    for (; j < end; j += W) {
      __m256i m = kd_mask(end - j);
      __m256 d = _mm256_sub_ps(_mm256_maskload_ps(s + j, m), _mm256_maskload_ps(t + j, m));
      f[0] = _mm256_fmadd_ps(d, d, f[0]);
      _mm256_maskstore_ps(grad + j, m, _mm256_mul_ps(sc, d));
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}
