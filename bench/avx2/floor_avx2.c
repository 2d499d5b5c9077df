/*
 * The floors of floor.h for AVX2+FMA, with the inline exp/log of
 * src/avx2/math_avx2.h and (when KD_BENCH_SLEEF) SLEEF's AVX2 functions. Built
 * with -mavx2 -mfma as its own static library, linked only into the
 * benchmarks. floor_avx512.c and floor_neon.c follow this file line for line.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "floor_avx2.c must be compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>
#include "floor.h"
#include "math_avx2.h"
#include "vec_avx2.h" /* KD_LANES, kd_tail, kd_load_part, kd_maskz, kd_hsum */

#define LANES KD_LANES
#define hsum(v) ((float)kd_hsum(v))

/* exp or log of every lane, inline or SLEEF. */
typedef __m256 (*vfn)(__m256);

/* -|x|: exp's arguments must be <= 0 (floor.h). */
static inline __m256 nabs(__m256 x) { return _mm256_or_ps(x, _mm256_set1_ps(-0.0f)); }

/* One vector of the exp2log floor: exp(-|t|) * log(exp(-|s|) + 1e-5). */
static inline __attribute__((always_inline)) __m256 exp2log(__m256 s, __m256 t,
                                                            vfn exp8, vfn log8) {
  __m256 es = exp8(nabs(s)), et = exp8(nabs(t));
  return _mm256_mul_ps(et, log8(_mm256_add_ps(es, _mm256_set1_ps(1e-5f))));
}

static inline __attribute__((always_inline)) float exp2log_sum(size_t n, const float *s,
                                                               const float *t, vfn exp8,
                                                               vfn log8) {
  __m256 acc = _mm256_setzero_ps();
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    acc = _mm256_add_ps(acc, exp2log(_mm256_loadu_ps(s + j), _mm256_loadu_ps(t + j), exp8, log8));
  if (j < n) {
    kd_vm m = kd_tail(n - j);
    __m256 v = exp2log(kd_load_part(s + j, n - j, m), kd_load_part(t + j, n - j, m), exp8, log8);
    acc = _mm256_add_ps(acc, kd_maskz(m, v));
  }
  return hsum(acc);
}

float kd_floor_exp2log_inline_avx2(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, kd_exp_avx2, kd_log_avx2);
}

#if KD_BENCH_SLEEF
#include <sleef.h>

float kd_floor_exp2log_u10_avx2(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf8_u10avx2, Sleef_logf8_u10avx2);
}

float kd_floor_exp2log_u35_avx2(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf8_u10avx2, Sleef_logf8_u35avx2);
}
#endif

/* Four accumulators: one add chain would bound an in-cache read by latency. */
float kd_floor_read2_avx2(size_t n, const float *s, const float *t) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t j = 0;
  for (; j + 4 * LANES <= n; j += 4 * LANES) {
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_loadu_ps(s + j), _mm256_loadu_ps(t + j)));
    a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_loadu_ps(s + j + LANES),
                                         _mm256_loadu_ps(t + j + LANES)));
    a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_loadu_ps(s + j + 2 * LANES),
                                         _mm256_loadu_ps(t + j + 2 * LANES)));
    a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_loadu_ps(s + j + 3 * LANES),
                                         _mm256_loadu_ps(t + j + 3 * LANES)));
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; j < n; j++) sum += s[j] + t[j];
  return sum;
}

float kd_floor_rw_avx2(size_t n, const float *s, const float *t, float *g) {
  size_t j = 0;
  for (; j + 2 * LANES <= n; j += 2 * LANES) {
    _mm256_storeu_ps(g + j, _mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_loadu_ps(t + j)));
    _mm256_storeu_ps(g + j + LANES, _mm256_sub_ps(_mm256_loadu_ps(s + j + LANES),
                                                  _mm256_loadu_ps(t + j + LANES)));
  }
  for (; j < n; j++) g[j] = s[j] - t[j];
  return g[0];
}
