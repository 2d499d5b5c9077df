/*
 * MSE row passes, aarch64 AdvSIMD. The structure of src/scalar/mse_scalar.c and
 * src/avx2/mse_avx2.c: a float sum per KD_BLOCK elements joining a double. The
 * last partial vector goes through a zero-padded stack buffer (vec_neon.h).
 */
#if !defined(__ARM_NEON)
#error "mse_neon.c needs AdvSIMD (__ARM_NEON; baseline on aarch64)"
#endif
#include <arm_neon.h>
#include "kernels.h"
#include "vec_neon.h"

/* Accumulators: one fma per vector, so the loop is bound by fma latency
 * unless several chains run side by side (as on x86, see mse_avx512.c). */
#define KD_U 4

#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

double kd_f32_mse_neon(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        float32x4_t d = vsubq_f32(vld1q_f32(s + j + k * W), vld1q_f32(t + j + k * W));
        f[k] = vfmaq_f32(f[k], d, d);
      }
    }
    for (; j + W <= end; j += W) {
      float32x4_t d = vsubq_f32(vld1q_f32(s + j), vld1q_f32(t + j));
      f[0] = vfmaq_f32(f[0], d, d);
    }
    if (j < end) {
      /* Lanes past end are 0 on both sides: d = 0 adds nothing. */
      float32x4_t d = vsubq_f32(kd_neon_load_tail(s + j, end - j, 0.0f),
                                kd_neon_load_tail(t + j, end - j, 0.0f));
      f[0] = vfmaq_f32(f[0], d, d);
      j = end;
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

double kd_f32_msegrad_neon(size_t n, const float *s, const float *t,
                           float scale, float *grad) {
  const float32x4_t sc = vdupq_n_f32(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        float32x4_t d = vsubq_f32(vld1q_f32(s + i), vld1q_f32(t + i));
        f[k] = vfmaq_f32(f[k], d, d);
        vst1q_f32(grad + i, vmulq_f32(sc, d)); /* grad may be s: this vector is read */
      }
    }
    for (; j + W <= end; j += W) {
      float32x4_t d = vsubq_f32(vld1q_f32(s + j), vld1q_f32(t + j));
      f[0] = vfmaq_f32(f[0], d, d);
      vst1q_f32(grad + j, vmulq_f32(sc, d));
    }
    if (j < end) {
      size_t k = end - j;
      float32x4_t d = vsubq_f32(kd_neon_load_tail(s + j, k, 0.0f),
                                kd_neon_load_tail(t + j, k, 0.0f));
      f[0] = vfmaq_f32(f[0], d, d);
      kd_neon_store_tail(grad + j, k, vmulq_f32(sc, d));
      j = end;
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}
