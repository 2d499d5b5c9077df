/*
 * The last partial vector of a row, for the NEON kernels. AdvSIMD has no masked
 * loads or stores, so the k < 4 remaining elements go through a 4-float stack
 * buffer: the lanes past k hold a fill value chosen by the caller so that they
 * add nothing to any sum, and only k lanes are written back. Nothing outside
 * the n elements is ever read or written.
 */
#ifndef KD_TAIL_NEON_H
#define KD_TAIL_NEON_H

#if !defined(__ARM_NEON)
#error "tail_neon.h needs AdvSIMD (__ARM_NEON)"
#endif

#include <arm_neon.h>
#include <stddef.h>
#include <string.h>

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

#endif /* KD_TAIL_NEON_H */
