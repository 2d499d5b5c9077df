/*
 * The floors of floor.h for aarch64 AdvSIMD, with the inline exp/log of
 * src/neon/math_neon.h and (when KD_BENCH_SLEEF) SLEEF's advsimd functions.
 * Built as its own static library (AdvSIMD is baseline on aarch64, so the
 * guard only refuses other targets); follows floor_avx2.c line for line.
 */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "floor_neon.c is for aarch64 with AdvSIMD"
#endif

#include <arm_neon.h>
#include "floor.h"
#include "math_neon.h"
#include "vec_neon.h" /* KD_LANES, kd_tail, kd_load_part, kd_maskz, kd_hsum */

#define LANES KD_LANES
#define hsum(v) ((float)kd_hsum(v))

/* exp or log of every lane, inline or SLEEF. */
typedef float32x4_t (*vfn)(float32x4_t);

/* -|x|: exp's arguments must be <= 0 (floor.h). */
static inline float32x4_t nabs(float32x4_t x) {
  return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u)));
}

/* One vector of the exp2log floor: exp(-|t|) * log(exp(-|s|) + 1e-5). */
static inline __attribute__((always_inline)) float32x4_t exp2log(float32x4_t s, float32x4_t t,
                                                                 vfn exp4, vfn log4) {
  float32x4_t es = exp4(nabs(s)), et = exp4(nabs(t));
  return vmulq_f32(et, log4(vaddq_f32(es, vdupq_n_f32(1e-5f))));
}

static inline __attribute__((always_inline)) float exp2log_sum(size_t n, const float *s,
                                                               const float *t, vfn exp4,
                                                               vfn log4) {
  float32x4_t acc = vdupq_n_f32(0.0f);
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    acc = vaddq_f32(acc, exp2log(vld1q_f32(s + j), vld1q_f32(t + j), exp4, log4));
  if (j < n) {
    kd_vm m = kd_tail(n - j);
    float32x4_t v =
        exp2log(kd_load_part(s + j, n - j, m), kd_load_part(t + j, n - j, m), exp4, log4);
    acc = vaddq_f32(acc, kd_maskz(m, v));
  }
  return hsum(acc);
}

float kd_floor_exp2log_inline_neon(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, kd_exp_neon, kd_log_neon);
}

#if KD_BENCH_SLEEF
#include <sleef.h>

float kd_floor_exp2log_u10_neon(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf4_u10advsimd, Sleef_logf4_u10advsimd);
}

float kd_floor_exp2log_u35_neon(size_t n, const float *s, const float *t) {
  return exp2log_sum(n, s, t, Sleef_expf4_u10advsimd, Sleef_logf4_u35advsimd);
}
#endif

/* Four accumulators: one add chain would bound an in-cache read by latency. */
float kd_floor_read2_neon(size_t n, const float *s, const float *t) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  size_t j = 0;
  for (; j + 4 * LANES <= n; j += 4 * LANES) {
    a0 = vaddq_f32(a0, vaddq_f32(vld1q_f32(s + j), vld1q_f32(t + j)));
    a1 = vaddq_f32(a1, vaddq_f32(vld1q_f32(s + j + LANES), vld1q_f32(t + j + LANES)));
    a2 = vaddq_f32(a2, vaddq_f32(vld1q_f32(s + j + 2 * LANES), vld1q_f32(t + j + 2 * LANES)));
    a3 = vaddq_f32(a3, vaddq_f32(vld1q_f32(s + j + 3 * LANES), vld1q_f32(t + j + 3 * LANES)));
  }
  float sum = hsum(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; j < n; j++) sum += s[j] + t[j];
  return sum;
}

float kd_floor_rw_neon(size_t n, const float *s, const float *t, float *g) {
  size_t j = 0;
  for (; j + 2 * LANES <= n; j += 2 * LANES) {
    vst1q_f32(g + j, vsubq_f32(vld1q_f32(s + j), vld1q_f32(t + j)));
    vst1q_f32(g + j + LANES, vsubq_f32(vld1q_f32(s + j + LANES), vld1q_f32(t + j + LANES)));
  }
  for (; j < n; j++) g[j] = s[j] - t[j];
  return g[0];
}
