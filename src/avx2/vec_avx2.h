/*
 * The AVX2 + FMA operation layer: the vector and mask types and the few
 * operations the pass skeletons (src/ce_passes.h, src/mse_passes.h) are
 * written over. vec_avx512.h and vec_neon.h define the same names.
 *
 * kd_vf holds KD_LANES floats; kd_vm is a lane mask (here a float vector whose
 * lanes are all ones or all zeros). The partial loads and stores touch only
 * the first k elements (maskload, maskstore), so nothing past n is read or
 * written and no pointer needs alignment.
 */
#ifndef KD_VEC_AVX2_H
#define KD_VEC_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "vec_avx2.h needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define KD_VEC_ISA avx2
#define KD_LANES 8
#include "lanes.h"

typedef __m256 kd_vf;
typedef __m256 kd_vm;

static inline kd_vf kd_set1(float x) { return _mm256_set1_ps(x); }
static inline kd_vf kd_zero(void) { return _mm256_setzero_ps(); }
static inline kd_vf kd_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void kd_store(float *p, kd_vf v) { _mm256_storeu_ps(p, v); }

/* The first k lanes (all of them when k >= KD_LANES). */
static inline kd_vm kd_tail(size_t k) {
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(
      _mm256_set1_epi32(k >= KD_LANES ? KD_LANES : (int)k),
      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}
/* Every lane but lane i (every lane when i >= KD_LANES). */
static inline kd_vm kd_all_but(size_t i) {
  __m256i lane = _mm256_set1_epi32(i < KD_LANES ? (int)i : -1);
  __m256i hit = _mm256_cmpeq_epi32(lane, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_castsi256_ps(_mm256_xor_si256(hit, _mm256_set1_epi32(-1)));
}
static inline kd_vm kd_all(void) { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
static inline kd_vm kd_none(void) { return _mm256_setzero_ps(); }

/* The first k elements at p (m = kd_tail(k)); the other lanes 0, or fill. */
static inline kd_vf kd_load_part(const float *p, size_t k, kd_vm m) {
  (void)k;
  return _mm256_maskload_ps(p, _mm256_castps_si256(m));
}
static inline kd_vf kd_load_part_or(const float *p, size_t k, kd_vm m, kd_vf fill) {
  return _mm256_blendv_ps(fill, kd_load_part(p, k, m), m);
}
/* Writes the first k lanes of v to p (m = kd_tail(k)). */
static inline void kd_store_part(float *p, size_t k, kd_vm m, kd_vf v) {
  (void)k;
  _mm256_maskstore_ps(p, _mm256_castps_si256(m), v);
}

/* Lane i < k gets p[i * ld], the others 0; lanes of bits get stored to
 * p[i * ld]. Nothing else is read or written. A hardware gather while the
 * offsets fit its 32-bit indices, one lane at a time beyond; AVX2 has no
 * scatter. */
static inline kd_vf kd_gather(const float *p, size_t ld, size_t k) {
  if (ld <= INT32_MAX / KD_LANES) {
    __m256i off = _mm256_mullo_epi32(_mm256_set1_epi32((int)ld),
                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, off, kd_tail(k), 4);
  }
  float b[KD_LANES];
  kd_lanes_from(p, ld, k, b);
  return _mm256_loadu_ps(b);
}
static inline void kd_scatter(float *p, size_t ld, unsigned bits, kd_vf v) {
  float b[KD_LANES];
  _mm256_storeu_ps(b, v);
  kd_lanes_to(p, ld, bits, b);
}

static inline kd_vf kd_add(kd_vf a, kd_vf b) { return _mm256_add_ps(a, b); }
static inline kd_vf kd_sub(kd_vf a, kd_vf b) { return _mm256_sub_ps(a, b); }
static inline kd_vf kd_mul(kd_vf a, kd_vf b) { return _mm256_mul_ps(a, b); }
static inline kd_vf kd_div(kd_vf a, kd_vf b) { return _mm256_div_ps(a, b); }
/* a * b + c, a * b - c, c - a * b: one rounding each. */
static inline kd_vf kd_fmadd(kd_vf a, kd_vf b, kd_vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline kd_vf kd_fmsub(kd_vf a, kd_vf b, kd_vf c) { return _mm256_fmsub_ps(a, b, c); }
static inline kd_vf kd_fnmadd(kd_vf a, kd_vf b, kd_vf c) { return _mm256_fnmadd_ps(a, b, c); }
static inline kd_vf kd_neg(kd_vf a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline kd_vf kd_abs(kd_vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* max(x, acc) keeps acc where x is NaN, as the scalar "x > acc ? x : acc". */
static inline kd_vf kd_max(kd_vf x, kd_vf acc) { return _mm256_max_ps(x, acc); }

/* Ordered compares (false for NaN), and its complement !(a < b). */
static inline kd_vm kd_lt(kd_vf a, kd_vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline kd_vm kd_gt(kd_vf a, kd_vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline kd_vm kd_eq(kd_vf a, kd_vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline kd_vm kd_not_lt(kd_vf a, kd_vf b) { return _mm256_cmp_ps(a, b, _CMP_NLT_UQ); }
static inline kd_vm kd_mand(kd_vm a, kd_vm b) { return _mm256_and_ps(a, b); }
static inline kd_vm kd_mor(kd_vm a, kd_vm b) { return _mm256_or_ps(a, b); }
static inline kd_vm kd_mnot(kd_vm a) { return _mm256_xor_ps(a, kd_all()); }
/* Bit i set where lane i is in m. */
static inline unsigned kd_mbits(kd_vm m) { return (unsigned)_mm256_movemask_ps(m); }
/* Where m: a, else b. Where the sign of s is set: a, else b. */
static inline kd_vf kd_select(kd_vm m, kd_vf a, kd_vf b) { return _mm256_blendv_ps(b, a, m); }
static inline kd_vf kd_select_sign(kd_vf s, kd_vf a, kd_vf b) { return _mm256_blendv_ps(b, a, s); }
/* v where m, else 0. */
static inline kd_vf kd_maskz(kd_vm m, kd_vf v) { return _mm256_and_ps(m, v); }

/* Accumulators that take lanes of m only. kd_add_m and kd_max_m add a 0
 * (acc never holds -0) or compare with one (acc >= 0) outside m. */
static inline kd_vf kd_add_m(kd_vf acc, kd_vm m, kd_vf x) {
  return _mm256_add_ps(acc, kd_maskz(m, x));
}
static inline kd_vf kd_fmadd_m(kd_vf acc, kd_vm m, kd_vf a, kd_vf b) {
  return _mm256_blendv_ps(acc, _mm256_fmadd_ps(a, b, acc), m);
}
static inline kd_vf kd_max_m(kd_vf acc, kd_vm m, kd_vf x) { return kd_max(kd_maskz(m, x), acc); }

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(kd_vf v) {
  __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}
static inline float kd_hmax(kd_vf v) {
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

/* exp and log of every lane: SLEEF's u10 expf and u35 logf, or the inline
 * functions of math_avx2.h (meson option vecmath). Why u35 log and expf
 * (not exp2f): docs/design.md. */
#if KD_VECMATH_INLINE
#include "math_avx2.h"
#define kd_exp kd_exp_inline
#define kd_log kd_log_inline
#else
#include <sleef.h>
#define kd_exp Sleef_expf8_u10avx2
#define kd_log Sleef_logf8_u35avx2
#endif

#endif /* KD_VEC_AVX2_H */
