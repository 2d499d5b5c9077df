/*
 * floor_body.h -- the floors of floor.h written once over the operation layer
 * (src/<isa>/vec_<isa>.h), instantiated by bench/<isa>/floor_<isa>.c after its
 * vec_<isa>.h and math_<isa>.h (the inline functions, vmath_inline.h), with,
 * when KD_BENCH_SLEEF, KD_SLEEF_EXP_U10, KD_SLEEF_LOG_U10 and
 * KD_SLEEF_LOG_U35 naming SLEEF's.
 */
#ifndef KD_FLOOR_BODY_H
#define KD_FLOOR_BODY_H

#ifndef KD_VEC_ISA
#error "include the ISA's vec_<isa>.h before floor_body.h"
#endif
#include "floor.h"
#include "passes.h" /* KD_PASTE */

#define KD_FLOOR(name) KD_PASTE(kd_floor_##name, KD_VEC_ISA)

/* exp or log of every lane, inline or SLEEF. */
typedef kd_vf (*kd_vfn)(kd_vf);

/* One vector of a floor from s and t with the given exp and log. */
typedef kd_vf (*kd_floor_elem)(kd_vf s, kd_vf t, kd_vfn exp, kd_vfn log);

/* The exp2log floor: exp(-|t|) * log(exp(-|s|) + 1e-5); -|x| because exp's
 * arguments must be <= 0 (floor.h). */
static inline __attribute__((always_inline)) kd_vf kd_exp2log(kd_vf s, kd_vf t, kd_vfn exp,
                                                              kd_vfn log) {
  kd_vf es = exp(kd_neg(kd_abs(s))), et = exp(kd_neg(kd_abs(t)));
  return kd_mul(et, log(kd_add(es, kd_set1(1e-5f))));
}

/* The exp2 floor: exp(-|s|) * exp(-|t|). */
static inline __attribute__((always_inline)) kd_vf kd_exp2(kd_vf s, kd_vf t, kd_vfn exp,
                                                           kd_vfn log) {
  (void)log;
  return kd_mul(exp(kd_neg(kd_abs(s))), exp(kd_neg(kd_abs(t))));
}

/* sum_j elem(s_j, t_j): one loop for every transcendental floor (elem, exp
 * and log are constants after inlining). */
static inline __attribute__((always_inline)) float kd_floor_sum(size_t n, const float *s,
                                                                const float *t,
                                                                kd_floor_elem elem, kd_vfn exp,
                                                                kd_vfn log) {
  kd_vf acc = kd_zero();
  size_t j = 0;
  for (; j + KD_LANES <= n; j += KD_LANES)
    acc = kd_add(acc, elem(kd_load(s + j), kd_load(t + j), exp, log));
  if (j < n) {
    kd_vm m = kd_tail(n - j);
    kd_vf v = elem(kd_load_part(s + j, n - j, m), kd_load_part(t + j, n - j, m), exp, log);
    acc = kd_add(acc, kd_maskz(m, v));
  }
  return (float)kd_hsum(acc);
}

float KD_FLOOR(exp2log_inline)(size_t n, const float *s, const float *t) {
  return kd_floor_sum(n, s, t, kd_exp2log, kd_exp_inline, kd_log_inline);
}

float KD_FLOOR(exp2_inline)(size_t n, const float *s, const float *t) {
  return kd_floor_sum(n, s, t, kd_exp2, kd_exp_inline, kd_log_inline);
}

#if KD_BENCH_SLEEF
float KD_FLOOR(exp2log_u10)(size_t n, const float *s, const float *t) {
  return kd_floor_sum(n, s, t, kd_exp2log, KD_SLEEF_EXP_U10, KD_SLEEF_LOG_U10);
}

float KD_FLOOR(exp2log_u35)(size_t n, const float *s, const float *t) {
  return kd_floor_sum(n, s, t, kd_exp2log, KD_SLEEF_EXP_U10, KD_SLEEF_LOG_U35);
}

float KD_FLOOR(exp2_u10)(size_t n, const float *s, const float *t) {
  return kd_floor_sum(n, s, t, kd_exp2, KD_SLEEF_EXP_U10, KD_SLEEF_LOG_U10);
}
#endif

/* Four accumulators: one add chain would bound an in-cache read by latency. */
float KD_FLOOR(read2)(size_t n, const float *s, const float *t) {
  kd_vf a[4] = {kd_zero(), kd_zero(), kd_zero(), kd_zero()};
  size_t j = 0;
  for (; j + 4 * KD_LANES <= n; j += 4 * KD_LANES)
    for (int k = 0; k < 4; k++)
      a[k] = kd_add(a[k], kd_add(kd_load(s + j + k * KD_LANES), kd_load(t + j + k * KD_LANES)));
  float sum = (float)kd_hsum(kd_add(kd_add(a[0], a[1]), kd_add(a[2], a[3])));
  for (; j < n; j++) sum += s[j] + t[j];
  return sum;
}

float KD_FLOOR(rw)(size_t n, const float *s, const float *t, float *g) {
  size_t j = 0;
  for (; j + 2 * KD_LANES <= n; j += 2 * KD_LANES)
    for (int k = 0; k < 2; k++)
      kd_store(g + j + k * KD_LANES, kd_sub(kd_load(s + j + k * KD_LANES),
                                            kd_load(t + j + k * KD_LANES)));
  for (; j < n; j++) g[j] = s[j] - t[j];
  return g[0];
}

#endif /* KD_FLOOR_BODY_H */
