/*
 * The aarch64 AdvSIMD operation layer: the names of src/avx2/vec_avx2.h over
 * 4-float vectors. AdvSIMD has no masked loads or stores, so a partial vector
 * (k < 4 elements) goes through a 4-float stack buffer: only k elements are
 * copied in or out, nothing outside them is ever read or written.
 */
#ifndef KD_VEC_NEON_H
#define KD_VEC_NEON_H

#if !defined(__ARM_NEON)
#error "vec_neon.h needs AdvSIMD (__ARM_NEON)"
#endif

#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

#define KD_VEC_ISA neon
#define KD_LANES 4
#include "lanes.h"

typedef float32x4_t kd_vf;
typedef uint32x4_t kd_vm;

static inline kd_vf kd_set1(float x) { return vdupq_n_f32(x); }
static inline kd_vf kd_zero(void) { return vdupq_n_f32(0.0f); }
static inline kd_vf kd_load(const float *p) { return vld1q_f32(p); }
static inline void kd_store(float *p, kd_vf v) { vst1q_f32(p, v); }

/* The first k lanes (all of them when k >= KD_LANES). */
static inline kd_vm kd_tail(size_t k) {
  const uint32x4_t lane = {0, 1, 2, 3};
  return vcltq_u32(lane, vdupq_n_u32(k >= KD_LANES ? KD_LANES : (uint32_t)k));
}
/* Every lane but lane i (every lane when i >= KD_LANES). */
static inline kd_vm kd_all_but(size_t i) {
  const uint32x4_t lane = {0, 1, 2, 3};
  return vmvnq_u32(vceqq_u32(lane, vdupq_n_u32(i < KD_LANES ? (uint32_t)i : KD_LANES)));
}
static inline kd_vm kd_all(void) { return vdupq_n_u32(~0u); }
static inline kd_vm kd_none(void) { return vdupq_n_u32(0); }

/* The first k elements at p (m = kd_tail(k)); the other lanes 0, or fill. */
static inline kd_vf kd_load_part_or(const float *p, size_t k, kd_vm m, kd_vf fill) {
  (void)m;
  if (k >= KD_LANES) return vld1q_f32(p);
  float b[KD_LANES];
  vst1q_f32(b, fill);
  memcpy(b, p, k * sizeof *b);
  return vld1q_f32(b);
}
static inline kd_vf kd_load_part(const float *p, size_t k, kd_vm m) {
  return kd_load_part_or(p, k, m, vdupq_n_f32(0.0f));
}
/* Writes the first k lanes of v to p (m = kd_tail(k)). */
static inline void kd_store_part(float *p, size_t k, kd_vm m, kd_vf v) {
  (void)m;
  if (k >= KD_LANES) {
    vst1q_f32(p, v);
    return;
  }
  float b[KD_LANES];
  vst1q_f32(b, v);
  memcpy(p, b, k * sizeof *b);
}

/* Lane i < k gets p[i * ld], the others 0; lanes of bits get stored to
 * p[i * ld]. Nothing else is read or written. AdvSIMD has no gather or
 * scatter: one lane at a time. */
static inline kd_vf kd_gather(const float *p, size_t ld, size_t k) {
  float b[KD_LANES];
  kd_lanes_from(p, ld, k, b);
  return vld1q_f32(b);
}
static inline void kd_scatter(float *p, size_t ld, unsigned bits, kd_vf v) {
  float b[KD_LANES];
  vst1q_f32(b, v);
  kd_lanes_to(p, ld, bits, b);
}

static inline kd_vf kd_add(kd_vf a, kd_vf b) { return vaddq_f32(a, b); }
static inline kd_vf kd_sub(kd_vf a, kd_vf b) { return vsubq_f32(a, b); }
static inline kd_vf kd_mul(kd_vf a, kd_vf b) { return vmulq_f32(a, b); }
static inline kd_vf kd_div(kd_vf a, kd_vf b) { return vdivq_f32(a, b); }
/* a * b + c, a * b - c, c - a * b: one rounding each. */
static inline kd_vf kd_fmadd(kd_vf a, kd_vf b, kd_vf c) { return vfmaq_f32(c, a, b); }
static inline kd_vf kd_fmsub(kd_vf a, kd_vf b, kd_vf c) { return vfmaq_f32(vnegq_f32(c), a, b); }
static inline kd_vf kd_fnmadd(kd_vf a, kd_vf b, kd_vf c) { return vfmsq_f32(c, a, b); }
static inline kd_vf kd_neg(kd_vf a) { return vnegq_f32(a); }
static inline kd_vf kd_abs(kd_vf a) { return vabsq_f32(a); }
/* max(x, acc) keeps acc where x is NaN (maxnm), as the scalar "x > acc ? x : acc". */
static inline kd_vf kd_max(kd_vf x, kd_vf acc) { return vmaxnmq_f32(acc, x); }

/* Ordered compares (false for NaN), and its complement !(a < b). */
static inline kd_vm kd_lt(kd_vf a, kd_vf b) { return vcltq_f32(a, b); }
static inline kd_vm kd_gt(kd_vf a, kd_vf b) { return vcgtq_f32(a, b); }
static inline kd_vm kd_eq(kd_vf a, kd_vf b) { return vceqq_f32(a, b); }
static inline kd_vm kd_not_lt(kd_vf a, kd_vf b) { return vmvnq_u32(vcltq_f32(a, b)); }
static inline kd_vm kd_mand(kd_vm a, kd_vm b) { return vandq_u32(a, b); }
static inline kd_vm kd_mor(kd_vm a, kd_vm b) { return vorrq_u32(a, b); }
static inline kd_vm kd_mnot(kd_vm a) { return vmvnq_u32(a); }
/* Bit i set where lane i is in m. */
static inline unsigned kd_mbits(kd_vm m) {
  const uint32x4_t bit = {1, 2, 4, 8};
  return vaddvq_u32(vandq_u32(m, bit));
}
/* Where m: a, else b. Where the sign of s is set: a, else b. */
static inline kd_vf kd_select(kd_vm m, kd_vf a, kd_vf b) { return vbslq_f32(m, a, b); }
static inline kd_vf kd_select_sign(kd_vf s, kd_vf a, kd_vf b) {
  return vbslq_f32(vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_f32(s), 31)), a, b);
}
/* v where m, else 0. */
static inline kd_vf kd_maskz(kd_vm m, kd_vf v) {
  return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v)));
}

/* Accumulators that take lanes of m only. kd_add_m and kd_max_m add a 0
 * (acc never holds -0) or compare with one (acc >= 0) outside m. */
static inline kd_vf kd_add_m(kd_vf acc, kd_vm m, kd_vf x) { return vaddq_f32(acc, kd_maskz(m, x)); }
static inline kd_vf kd_fmadd_m(kd_vf acc, kd_vm m, kd_vf a, kd_vf b) {
  return vbslq_f32(m, vfmaq_f32(acc, a, b), acc);
}
static inline kd_vf kd_max_m(kd_vf acc, kd_vm m, kd_vf x) { return kd_max(kd_maskz(m, x), acc); }

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(kd_vf v) {
  return vaddvq_f64(vaddq_f64(vcvt_f64_f32(vget_low_f32(v)), vcvt_high_f64_f32(v)));
}
static inline float kd_hmax(kd_vf v) { return vmaxnmvq_f32(v); }

/* exp and log of every lane: SLEEF's u10 expf and u35 logf, or the inline
 * functions of math_neon.h (meson option vecmath). Why u35 log and expf
 * (not exp2f): docs/design.md. */
#if KD_VECMATH_INLINE
#include "math_neon.h"
#define kd_exp kd_exp_inline
#define kd_log kd_log_inline
#else
#include <sleef.h>
#define kd_exp Sleef_expf4_u10advsimd
#define kd_log Sleef_logf4_u35advsimd
#endif

#endif /* KD_VEC_NEON_H */
