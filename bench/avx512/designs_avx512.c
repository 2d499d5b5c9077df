/*
 * The pass structures kdloss's cross-entropy kernels did not take, as sketches
 * for the benchmark (floor.h, "designs"): SLEEF's u10 exp and u35 log, as
 * the kernels call them by default, float sums, no argument checks, no NaN
 * handling. Not part of the library. The choice is about how many exp calls
 * a row needs, which does not depend on the ISA, so one ISA carries the
 * sketches.
 *
 *   recompute: pass 1 maxima; pass 2 sums of the two exps (nothing stored);
 *              pass 3 the loss, computing both exps again.
 *              4 exp + 1 log per element, no scratch.
 *   online:    pass 1 keeps, per lane, a running maximum and a sum rescaled by
 *              exp(old max - new max) whenever the maximum grows (the online
 *              normaliser); pass 2 the loss, computing both exps again.
 *              4 exp + 1 log per element (+ the rescales), two passes.
 * kdloss itself: maxima; both exps stored to a per-row scratch and summed;
 * the loss from the scratch. 2 exp + 1 log per element, three passes.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__)
#error "designs_avx512.c must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif

#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include "floor.h"
#include "vec_avx512.h" /* KD_LANES, kd_tail */

#define EXP Sleef_expf16_u10avx512f
#define LOG Sleef_logf16_u35avx512f

/* exp((x - m) / T), zero in lanes outside mask. */
static inline __m512 exp_rel(__mmask16 mask, __m512 x, __m512 m, __m512 it) {
  return _mm512_maskz_mov_ps(mask, EXP(_mm512_mul_ps(_mm512_sub_ps(x, m), it)));
}

/* The loss pass both sketches share: sum_j r_j log(q_j + 1e-5), both exps
 * computed again. */
static float loss_pass(size_t n, const float *s, const float *t, float s_max, float t_max,
                       float zs, float zt, __m512 it) {
  __m512 sm = _mm512_set1_ps(s_max), tm = _mm512_set1_ps(t_max);
  __m512 izs = _mm512_set1_ps(1.0f / zs), izt = _mm512_set1_ps(1.0f / zt);
  __m512 f = _mm512_setzero_ps();
  for (size_t j = 0; j < n; j += KD_LANES) {
    __mmask16 m = kd_tail(n - j);
    __m512 q = _mm512_mul_ps(exp_rel(m, _mm512_maskz_loadu_ps(m, s + j), sm, it), izs);
    __m512 r = _mm512_mul_ps(exp_rel(m, _mm512_maskz_loadu_ps(m, t + j), tm, it), izt);
    f = _mm512_mask3_fmadd_ps(r, LOG(_mm512_add_ps(q, _mm512_set1_ps(1e-5f))), f, m);
  }
  return _mm512_reduce_add_ps(f);
}

static float row_recompute(size_t n, const float *s, const float *t, __m512 it) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 ms = ninf, mt = ninf;
  for (size_t j = 0; j < n; j += KD_LANES) {
    __mmask16 m = kd_tail(n - j);
    ms = _mm512_max_ps(ms, _mm512_mask_loadu_ps(ninf, m, s + j));
    mt = _mm512_max_ps(mt, _mm512_mask_loadu_ps(ninf, m, t + j));
  }
  float s_max = _mm512_reduce_max_ps(ms), t_max = _mm512_reduce_max_ps(mt);
  __m512 sm = _mm512_set1_ps(s_max), tm = _mm512_set1_ps(t_max);
  __m512 zs = _mm512_setzero_ps(), zt = zs;
  for (size_t j = 0; j < n; j += KD_LANES) {
    __mmask16 m = kd_tail(n - j);
    zs = _mm512_add_ps(zs, exp_rel(m, _mm512_maskz_loadu_ps(m, s + j), sm, it));
    zt = _mm512_add_ps(zt, exp_rel(m, _mm512_maskz_loadu_ps(m, t + j), tm, it));
  }
  return loss_pass(n, s, t, s_max, t_max, _mm512_reduce_add_ps(zs), _mm512_reduce_add_ps(zt), it);
}

/* One lane-wise step of the online normaliser: rescale where x raises the maximum. */
static inline void online_step(__mmask16 m, __m512 x, __m512 *mx, __m512 *z, __m512 it) {
  __m512 nm = _mm512_max_ps(*mx, x);
  __mmask16 grew = _mm512_cmp_ps_mask(nm, *mx, _CMP_NEQ_UQ);
  if (grew) { /* first vector: -inf - x is -inf, exp 0, and z is 0 anyway */
    *z = _mm512_mask_mul_ps(*z, grew, *z, EXP(_mm512_mul_ps(_mm512_sub_ps(*mx, nm), it)));
    *mx = nm;
  }
  *z = _mm512_add_ps(*z, exp_rel(m, x, *mx, it));
}

static float row_online(size_t n, const float *s, const float *t, __m512 it) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 ms = ninf, mt = ninf, zs = _mm512_setzero_ps(), zt = zs;
  for (size_t j = 0; j < n; j += KD_LANES) {
    __mmask16 m = kd_tail(n - j);
    online_step(m, _mm512_mask_loadu_ps(ninf, m, s + j), &ms, &zs, it);
    online_step(m, _mm512_mask_loadu_ps(ninf, m, t + j), &mt, &zt, it);
  }
  float s_max = _mm512_reduce_max_ps(ms), t_max = _mm512_reduce_max_ps(mt);
  /* Lanes that never saw an element keep max -inf and sum 0: masked out. */
  __mmask16 ls = _mm512_cmp_ps_mask(ms, ninf, _CMP_NEQ_UQ);
  __mmask16 lt = _mm512_cmp_ps_mask(mt, ninf, _CMP_NEQ_UQ);
  float zs1 = _mm512_mask_reduce_add_ps(
      ls, _mm512_mul_ps(zs, EXP(_mm512_mul_ps(_mm512_sub_ps(ms, _mm512_set1_ps(s_max)), it))));
  float zt1 = _mm512_mask_reduce_add_ps(
      lt, _mm512_mul_ps(zt, EXP(_mm512_mul_ps(_mm512_sub_ps(mt, _mm512_set1_ps(t_max)), it))));
  return loss_pass(n, s, t, s_max, t_max, zs1, zt1, it);
}

/* -(1/rows) sum over rows of one sketch's row sum. */
static double mean_rows(size_t rows, size_t cols, const float *s, const float *t, float inv_temp,
                        float (*row)(size_t, const float *, const float *, __m512)) {
  double sum = 0.0;
  for (size_t i = 0; i < rows; i++)
    sum += row(cols, s + i * cols, t + i * cols, _mm512_set1_ps(inv_temp));
  return -sum / (double)rows;
}

double kd_design_ce_recompute_avx512(size_t rows, size_t cols, const float *s, const float *t,
                                     float inv_temp) {
  return mean_rows(rows, cols, s, t, inv_temp, row_recompute);
}

double kd_design_ce_online_avx512(size_t rows, size_t cols, const float *s, const float *t,
                                  float inv_temp) {
  return mean_rows(rows, cols, s, t, inv_temp, row_online);
}
