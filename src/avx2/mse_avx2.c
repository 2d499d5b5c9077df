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
#include "vec_avx2.h"

/* Accumulators: see mse_avx512.c. */
#define KD_U 4
#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

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
