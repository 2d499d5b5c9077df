/*
 * The AVX-512 (F+BW+DQ+VL) operation layer: the names of src/avx2/vec_avx2.h
 * over 16-float vectors and mask registers. The partial loads and stores
 * touch only the first k elements (masked moves), so nothing past n is read
 * or written and no pointer needs alignment.
 */
#ifndef KD_VEC_AVX512_H
#define KD_VEC_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__)
#error "vec_avx512.h needs -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define KD_VEC_ISA avx512
#define KD_LANES 16
#include "lanes.h"

typedef __m512 kd_vf;
typedef __mmask16 kd_vm;

static inline kd_vf kd_set1(float x) { return _mm512_set1_ps(x); }
static inline kd_vf kd_zero(void) { return _mm512_setzero_ps(); }
static inline kd_vf kd_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void kd_store(float *p, kd_vf v) { _mm512_storeu_ps(p, v); }

/* The first k lanes (all of them when k >= KD_LANES). */
static inline kd_vm kd_tail(size_t k) {
  return k >= KD_LANES ? (kd_vm)0xffff : (kd_vm)((1u << k) - 1u);
}
/* Every lane but lane i (every lane when i >= KD_LANES). */
static inline kd_vm kd_all_but(size_t i) {
  return i < KD_LANES ? (kd_vm) ~(1u << i) : (kd_vm)0xffff;
}
static inline kd_vm kd_all(void) { return (kd_vm)0xffff; }
static inline kd_vm kd_none(void) { return 0; }

/* The first k elements at p (m = kd_tail(k)); the other lanes 0, or fill. */
static inline kd_vf kd_load_part(const float *p, size_t k, kd_vm m) {
  (void)k;
  return _mm512_maskz_loadu_ps(m, p);
}
static inline kd_vf kd_load_part_or(const float *p, size_t k, kd_vm m, kd_vf fill) {
  (void)k;
  return _mm512_mask_loadu_ps(fill, m, p);
}
/* Writes the first k lanes of v to p (m = kd_tail(k)). */
static inline void kd_store_part(float *p, size_t k, kd_vm m, kd_vf v) {
  (void)k;
  _mm512_mask_storeu_ps(p, m, v);
}

/* Lane i < k gets p[i * ld], the others 0; lanes of bits get stored to
 * p[i * ld]. Nothing else is read or written. Hardware gathers and scatters
 * while the offsets fit their 32-bit indices, one lane at a time beyond. */
static inline __m512i kd_lane_offsets(size_t ld) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mullo_epi32(_mm512_set1_epi32((int)ld), lane);
}
static inline kd_vf kd_gather(const float *p, size_t ld, size_t k) {
  if (ld <= INT32_MAX / KD_LANES)
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kd_tail(k), kd_lane_offsets(ld), p, 4);
  float b[KD_LANES];
  kd_lanes_from(p, ld, k, b);
  return _mm512_loadu_ps(b);
}
static inline void kd_scatter(float *p, size_t ld, unsigned bits, kd_vf v) {
  if (ld <= INT32_MAX / KD_LANES) {
    _mm512_mask_i32scatter_ps(p, (kd_vm)bits, kd_lane_offsets(ld), v, 4);
    return;
  }
  float b[KD_LANES];
  _mm512_storeu_ps(b, v);
  kd_lanes_to(p, ld, bits, b);
}

static inline kd_vf kd_add(kd_vf a, kd_vf b) { return _mm512_add_ps(a, b); }
static inline kd_vf kd_sub(kd_vf a, kd_vf b) { return _mm512_sub_ps(a, b); }
static inline kd_vf kd_mul(kd_vf a, kd_vf b) { return _mm512_mul_ps(a, b); }
static inline kd_vf kd_div(kd_vf a, kd_vf b) { return _mm512_div_ps(a, b); }
/* a * b + c, a * b - c, c - a * b: one rounding each. */
static inline kd_vf kd_fmadd(kd_vf a, kd_vf b, kd_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline kd_vf kd_fmsub(kd_vf a, kd_vf b, kd_vf c) { return _mm512_fmsub_ps(a, b, c); }
static inline kd_vf kd_fnmadd(kd_vf a, kd_vf b, kd_vf c) { return _mm512_fnmadd_ps(a, b, c); }
static inline kd_vf kd_neg(kd_vf a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
static inline kd_vf kd_abs(kd_vf a) { return _mm512_abs_ps(a); }
/* max(x, acc) keeps acc where x is NaN, as the scalar "x > acc ? x : acc". */
static inline kd_vf kd_max(kd_vf x, kd_vf acc) { return _mm512_max_ps(x, acc); }

/* Ordered compares (false for NaN), and its complement !(a < b). */
static inline kd_vm kd_lt(kd_vf a, kd_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline kd_vm kd_gt(kd_vf a, kd_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline kd_vm kd_eq(kd_vf a, kd_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline kd_vm kd_not_lt(kd_vf a, kd_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ); }
static inline kd_vm kd_mand(kd_vm a, kd_vm b) { return a & b; }
static inline kd_vm kd_mor(kd_vm a, kd_vm b) { return a | b; }
static inline kd_vm kd_mnot(kd_vm a) { return (kd_vm)~a; }
/* Bit i set where lane i is in m. */
static inline unsigned kd_mbits(kd_vm m) { return m; }
/* Where m: a, else b. Where the sign of s is set: a, else b. */
static inline kd_vf kd_select(kd_vm m, kd_vf a, kd_vf b) { return _mm512_mask_mov_ps(b, m, a); }
static inline kd_vf kd_select_sign(kd_vf s, kd_vf a, kd_vf b) {
  return _mm512_mask_mov_ps(b, _mm512_movepi32_mask(_mm512_castps_si512(s)), a);
}
/* v where m, else 0. */
static inline kd_vf kd_maskz(kd_vm m, kd_vf v) { return _mm512_maskz_mov_ps(m, v); }

/* Accumulators that take lanes of m only. */
static inline kd_vf kd_add_m(kd_vf acc, kd_vm m, kd_vf x) {
  return _mm512_mask_add_ps(acc, m, acc, x);
}
static inline kd_vf kd_fmadd_m(kd_vf acc, kd_vm m, kd_vf a, kd_vf b) {
  return _mm512_mask3_fmadd_ps(a, b, acc, m);
}
static inline kd_vf kd_max_m(kd_vf acc, kd_vm m, kd_vf x) {
  return _mm512_mask_max_ps(acc, m, x, acc);
}

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(kd_vf v) {
  __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}
static inline float kd_hmax(kd_vf v) { return _mm512_reduce_max_ps(v); }

/* exp and log of every lane: SLEEF's u10 expf and u35 logf, or the inline
 * functions of math_avx512.h (meson option vecmath). Why u35 log and expf
 * (not exp2f): docs/design.md. */
#if KD_VECMATH_INLINE
#include "math_avx512.h"
#define kd_exp kd_exp_inline
#define kd_log kd_log_inline
#else
#include <sleef.h>
#define kd_exp Sleef_expf16_u10avx512f
#define kd_log Sleef_logf16_u35avx512f
#endif

#endif /* KD_VEC_AVX512_H */
