/*
 * mse_passes.h -- the MSE row passes, written once over the operation layer
 * and compiled by each src/<isa>/mse_<isa>.c. The structure of
 * src/scalar/mse_scalar.c, with a float sum per KD_BLOCK elements joining a
 * double. Tail lanes load as 0 on both sides: d = 0 adds nothing.
 */
#ifndef KD_MSE_PASSES_H
#define KD_MSE_PASSES_H

#include "passes.h"

/* Accumulators: one FMA per vector, so a single chain would bound an
 * in-cache row by FMA latency; from 2 chains on, bandwidth decides
 * (docs/design.md). */
#define KD_MSE_U 4
#define KD_MSE_STEP (KD_MSE_U * KD_LANES)

/* sum_j (s_j - t_j)^2, and grad_j = scale * (s_j - t_j) when store is set.
 * Always inlined with a constant store, so its test folds away. */
static inline __attribute__((always_inline)) double kd_mse_row(size_t n, const float *s,
                                                               const float *t, float scale,
                                                               float *grad, int store) {
  const kd_vf sc = kd_set1(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    kd_vf f[KD_MSE_U];
    for (int k = 0; k < KD_MSE_U; k++) f[k] = kd_zero();
    for (; j + KD_MSE_STEP <= end; j += KD_MSE_STEP) {
      for (int k = 0; k < KD_MSE_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_vf d = kd_sub(kd_load(s + i), kd_load(t + i));
        f[k] = kd_fmadd(d, d, f[k]);
        if (store) kd_store(grad + i, kd_mul(sc, d)); /* grad may be s: this vector is read */
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_vf d = kd_sub(kd_load_part(s + j, end - j, m), kd_load_part(t + j, end - j, m));
      f[0] = kd_fmadd(d, d, f[0]);
      if (store) kd_store_part(grad + j, end - j, m, kd_mul(sc, d));
    }
    sum += kd_hsum_n(f, KD_MSE_U);
  }
  return sum;
}

double KD_FN(mse)(size_t n, const float *s, const float *t) {
  return kd_mse_row(n, s, t, 0.0f, NULL, 0);
}

double KD_FN(msegrad)(size_t n, const float *s, const float *t, float scale, float *grad) {
  return kd_mse_row(n, s, t, scale, grad, 1);
}

#endif /* KD_MSE_PASSES_H */
