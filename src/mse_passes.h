/*
 * mse_passes.h -- the MSE row passes, written once over the operation layer
 * and compiled by each src/<isa>/mse_<isa>.c: the element of kd_elem_row
 * (passes.h), with a float sum per KD_BLOCK elements joining a double; the
 * structure of src/scalar/mse_scalar.c.
 */
#ifndef KD_MSE_PASSES_H
#define KD_MSE_PASSES_H

#include "passes.h"

/* Accumulators: one FMA per vector, so a single chain would bound an
 * in-cache row by FMA latency; from 2 chains on, bandwidth decides
 * (docs/design.md). */
#define KD_MSE_U 4

/* (s_j - t_j)^2 by one FMA into acc, and g = s_j - t_j. Tail lanes load 0
 * on both sides: d = 0 adds nothing, so no lane needs masking. */
static inline __attribute__((always_inline)) kd_vf kd_mse_vec(kd_vf x, kd_vf y, kd_vf acc,
                                                              kd_vm m, int full, int store,
                                                              kd_vf *g) {
  (void)m, (void)full;
  kd_vf d = kd_sub(x, y);
  if (store) *g = d;
  return kd_fmadd(d, d, acc);
}

double KD_FN(mse)(size_t n, const float *s, const float *t) {
  return kd_elem_row(n, s, t, 0.0f, NULL, 0, kd_mse_vec, KD_MSE_U, KD_BLOCK);
}

double KD_FN(msegrad)(size_t n, const float *s, const float *t, float scale, float *grad) {
  return kd_elem_row(n, s, t, scale, grad, 1, kd_mse_vec, KD_MSE_U, KD_BLOCK);
}

#endif /* KD_MSE_PASSES_H */
