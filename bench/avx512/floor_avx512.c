/*
 * The floors of floor.h for AVX-512 (F, with the BW/DQ/VL flags the kernels
 * use), with the inline exp/log of src/avx512/math_avx512.h and (when
 * KD_BENCH_SLEEF) SLEEF's avx512f functions. Built with the ISA flags as its
 * own static library; follows floor_avx2.c line for line.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__)
#error "floor_avx512.c must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif

#include <immintrin.h>
#include "floor.h"
#include "math_avx512.h"
#include "vec_avx512.h" /* KD_LANES, kd_tail, kd_hsum */

#define LANES KD_LANES
#define tail_mask kd_tail
#define hsum(v) ((float)kd_hsum(v))

/* exp or log of every lane, inline or SLEEF. */
typedef __m512 (*vfn)(__m512);

/* -|x|: exp's arguments must be <= 0 (floor.h). */
static inline __m512 nabs(__m512 x) { return _mm512_or_ps(x, _mm512_set1_ps(-0.0f)); }

/* One vector of the exp2log floor: exp(-|t|) * log(exp(-|s|) + 1e-5). */
static inline __attribute__((always_inline)) __m512 exp2log(__m512 s, __m512 t,
                                                            vfn exp16, vfn log16) {
  __m512 es = exp16(nabs(s)), et = exp16(nabs(t));
  return _mm512_mul_ps(et, log16(_mm512_add_ps(es, _mm512_set1_ps(1e-5f))));
}

static inline __attribute__((always_inline)) float exp2log_sum(size_t n, const float *s,
                                                               const float *t, vfn exp16,
                                                               vfn log16) {
  __m512 acc = _mm512_setzero_ps();
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    acc = _mm512_add_ps(acc,
                        exp2log(_mm512_loadu_ps(s + j), _mm512_loadu_ps(t + j), exp16, log16));
  if (j < n) {
    __mmask16 m = tail_mask(n - j);
    __m512 v =
        exp2log(_mm512_maskz_loadu_ps(m, s + j), _mm512_maskz_loadu_ps(m, t + j), exp16, log16);
    acc = _mm512_mask_add_ps(acc, m, acc, v);
  }
  return hsum(acc);
}

float kd_floor_exp2log_inline_avx512(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, kd_exp_avx512, kd_log_avx512);
}

#if KD_BENCH_SLEEF
#include <sleef.h>

float kd_floor_exp2log_u10_avx512(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf16_u10avx512f, Sleef_logf16_u10avx512f);
}

float kd_floor_exp2log_u35_avx512(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf16_u10avx512f, Sleef_logf16_u35avx512f);
}
#endif

/* Four accumulators: one add chain would bound an in-cache read by latency. */
float kd_floor_read2_avx512(size_t n, const float *s, const float *t) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t j = 0;
  for (; j + 4 * LANES <= n; j += 4 * LANES) {
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_loadu_ps(s + j), _mm512_loadu_ps(t + j)));
    a1 = _mm512_add_ps(a1, _mm512_add_ps(_mm512_loadu_ps(s + j + LANES),
                                         _mm512_loadu_ps(t + j + LANES)));
    a2 = _mm512_add_ps(a2, _mm512_add_ps(_mm512_loadu_ps(s + j + 2 * LANES),
                                         _mm512_loadu_ps(t + j + 2 * LANES)));
    a3 = _mm512_add_ps(a3, _mm512_add_ps(_mm512_loadu_ps(s + j + 3 * LANES),
                                         _mm512_loadu_ps(t + j + 3 * LANES)));
  }
  float sum = hsum(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; j < n; j++) sum += s[j] + t[j];
  return sum;
}

float kd_floor_rw_avx512(size_t n, const float *s, const float *t, float *g) {
  size_t j = 0;
  for (; j + 2 * LANES <= n; j += 2 * LANES) {
    _mm512_storeu_ps(g + j, _mm512_sub_ps(_mm512_loadu_ps(s + j), _mm512_loadu_ps(t + j)));
    _mm512_storeu_ps(g + j + LANES, _mm512_sub_ps(_mm512_loadu_ps(s + j + LANES),
                                                  _mm512_loadu_ps(t + j + LANES)));
  }
  for (; j < n; j++) g[j] = s[j] - t[j];
  return g[0];
}
