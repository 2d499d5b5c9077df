/*
 * Vector helpers shared by the NEON kernel files: the width, the reduction of
 * float partial sums into double, and the last partial vector of a row.
 * AdvSIMD has no masked
 * loads or stores, so the k < 4 remaining elements go through a 4-float stack
 * buffer: the lanes past k hold a fill value chosen by the caller so that they
 * add nothing to any sum, and only k lanes are written back. Nothing outside
 * the n elements is ever read or written.
 */
#ifndef KD_VEC_NEON_H
#define KD_VEC_NEON_H

#if !defined(__ARM_NEON)
#error "vec_neon.h needs AdvSIMD (__ARM_NEON)"
#endif

#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

#define W 4 /* floats per vector */

/* A block's float partial sums, added lane-wise in double. */
static inline double kd_hsum(float32x4_t v) {
  return vaddvq_f64(vaddq_f64(vcvt_f64_f32(vget_low_f32(v)), vcvt_high_f64_f32(v)));
}

/* The u accumulators of one sum, added, then reduced. */
static inline double kd_hsum_n(const float32x4_t *acc, int u) {
  float32x4_t v = acc[0];
  for (int k = 1; k < u; k++) v = vaddq_f32(v, acc[k]);
  return kd_hsum(v);
}

static inline float32x4_t kd_neon_load_tail(const float *p, size_t k, float fill) {
  float b[4] = {fill, fill, fill, fill};
  memcpy(b, p, k * sizeof *b);
  return vld1q_f32(b);
}

static inline void kd_neon_store_tail(float *p, size_t k, float32x4_t v) {
  float b[4];
  vst1q_f32(b, v);
  memcpy(p, b, k * sizeof *b);
}

#endif /* KD_VEC_NEON_H */
