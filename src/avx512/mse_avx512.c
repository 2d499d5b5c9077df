/*
 * MSE row passes, AVX-512 (F+BW+DQ+VL). The structure of
 * src/scalar/mse_scalar.c: a float sum per KD_BLOCK elements joining a double.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__) || !defined(__AVX2__) || !defined(__FMA__)
#error "mse_avx512.c needs -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>
#include "kernels.h"
#include "vec_avx512.h"

/* Accumulators: one FMA chain (4 cycles per vector) would cap an in-cache row
 * well below two loads per cycle. Measured (mse alone, 8000 columns, in L2,
 * CPU time per element, AVX2 / AVX-512): U=1 0.12-0.18 / 0.13-0.15 ns,
 * U=2 0.11 / 0.12-0.15, U=4 0.10-0.12 / 0.12-0.14, U=8 0.11-0.13 / 0.11-0.14:
 * from 2 on the cache's bandwidth decides; out of cache, memory does. */
#define KD_U 4
#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

double kd_f32_mse_avx512(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(s + j + k * W), _mm512_loadu_ps(t + j + k * W));
        f[k] = _mm512_fmadd_ps(d, d, f[k]);
      }
    }
    for (; j < end; j += W) {
      /* Lanes past end load as 0 on both sides: d = 0 adds nothing. */
      __mmask16 m = kd_mask(end - j);
      __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), _mm512_maskz_loadu_ps(m, t + j));
      f[0] = _mm512_fmadd_ps(d, d, f[0]);
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

double kd_f32_msegrad_avx512(size_t n, const float *s, const float *t,
                             float scale, float *grad) {
  const __m512 sc = _mm512_set1_ps(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(s + i), _mm512_loadu_ps(t + i));
        f[k] = _mm512_fmadd_ps(d, d, f[k]);
        _mm512_storeu_ps(grad + i, _mm512_mul_ps(sc, d));
      }
    }
    for (; j < end; j += W) {
      __mmask16 m = kd_mask(end - j);
      __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), _mm512_maskz_loadu_ps(m, t + j));
      f[0] = _mm512_fmadd_ps(d, d, f[0]);
      _mm512_mask_storeu_ps(grad + j, m, _mm512_mul_ps(sc, d));
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}
