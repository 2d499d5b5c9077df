/*
 * bce_passes.h -- the BCE-with-logits row passes, written once over the
 * operation layer and compiled by each src/<isa>/bce_<isa>.c; the structure
 * of src/scalar/bce_scalar.c, with a float sum per KD_BLOCK elements joining
 * a double.
 *
 * Element: softplus(s) - sigmoid(t) s = |s| sigmoid(-sign(s) t) + log1p(e^-|s|),
 * two terms >= 0 (no cancellation). exp takes -|s|, -|t| <= 0 (its domain);
 * log1p(e) for e in [0, 1] is log(1 + e), 1 + e in [1, 2] (the log's
 * domain): its rounding costs at most 2^-24 absolute per element, far
 * inside the contract's absolute term (1e-6 |factor| on a mean of elements,
 * 1e-6 |factor w_i| on a row's); everything else is relative. 0 * (s - t) is added so that an infinity or NaN
 * in either input makes the sum non-finite (the vector exp maps NaN to 0).
 * Gradient sigmoid(s) - sigmoid(t): where |s - t| < KD_EXPM1_BAND, the
 * identity sign(s-t) sigmoid(hi) sigmoid(-lo) (-expm1(-|s-t|)), each factor
 * relatively accurate; elsewhere the difference of the sigmoids written as
 * [s >= 0] - [t >= 0] + (c'(s) - c'(t)), c'(z) = -+sigmoid(-|z|), which
 * cancels by at most 8x there. Tail lanes load 0: s - t = 0, and they are
 * kept out of the sum.
 */
#ifndef KD_BCE_PASSES_H
#define KD_BCE_PASSES_H

#include "passes.h"

#define KD_BCE_U 2
#define KD_BCE_STEP (KD_BCE_U * KD_LANES)

static inline __attribute__((always_inline)) kd_vf kd_bce_vec(kd_vf x, kd_vf y, int store,
                                                              kd_vf *g) {
  const kd_vf one = kd_set1(1.0f), zero = kd_zero();
  kd_vf ex = kd_exp(kd_neg(kd_abs(x))), ey = kd_exp(kd_neg(kd_abs(y)));
  kd_vf ry = kd_div(one, kd_add(one, ey)), cy = kd_mul(ey, ry);
  kd_vm xp = kd_not_lt(x, zero), yp = kd_not_lt(y, zero);
  kd_vf sig = kd_select(xp, kd_select(yp, cy, ry), kd_select(yp, ry, cy));
  kd_vf u = kd_add(one, ex);
  kd_vf d = kd_sub(x, y);
  kd_vf term = kd_fmadd(d, zero, kd_fmadd(kd_abs(x), sig, kd_log(u)));
  if (store) {
    kd_vf rx = kd_div(one, u), cx = kd_mul(ex, rx);
    kd_vf sig_x = kd_select(xp, rx, cx), sig_nx = kd_select(xp, cx, rx);
    kd_vf sig_y = kd_select(yp, ry, cy), sig_ny = kd_select(yp, cy, ry);
    kd_vm x_hi = kd_gt(x, y);
    kd_vf gb = kd_mul(kd_mul(kd_select(x_hi, sig_x, sig_y), kd_select(x_hi, sig_ny, sig_nx)),
                      kd_neg(kd_expm1f_band(kd_neg(kd_abs(d)), kd_mul(d, d))));
    gb = kd_select(x_hi, gb, kd_neg(gb));
    kd_vf ones = kd_sub(kd_select(xp, one, zero), kd_select(yp, one, zero));
    kd_vf go = kd_add(kd_sub(kd_select(xp, kd_neg(cx), cx), kd_select(yp, kd_neg(cy), cy)), ones);
    *g = kd_select(kd_lt(kd_abs(d), kd_set1(KD_EXPM1_BAND)), gb, go);
  }
  return term;
}

static inline __attribute__((always_inline)) double kd_bce_row(size_t n, const float *s,
                                                               const float *t, float scale,
                                                               float *grad, int store) {
  const kd_vf sc = kd_set1(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    kd_vf f[KD_BCE_U], g;
    for (int k = 0; k < KD_BCE_U; k++) f[k] = kd_zero();
    for (; j + KD_BCE_STEP <= end; j += KD_BCE_STEP) {
      for (int k = 0; k < KD_BCE_U; k++) {
        size_t i = j + k * KD_LANES;
        f[k] = kd_add(f[k], kd_bce_vec(kd_load(s + i), kd_load(t + i), store, &g));
        if (store) kd_store(grad + i, kd_mul(sc, g)); /* grad may be s: this vector is read */
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_vf x = kd_load_part(s + j, end - j, m), y = kd_load_part(t + j, end - j, m);
      f[0] = kd_add_m(f[0], m, kd_bce_vec(x, y, store, &g));
      if (store) kd_store_part(grad + j, end - j, m, kd_mul(sc, g));
    }
    sum += kd_hsum_n(f, KD_BCE_U);
  }
  return sum;
}

double KD_FN(bce)(size_t n, const float *s, const float *t) {
  return kd_bce_row(n, s, t, 0.0f, NULL, 0);
}

double KD_FN(bcegrad)(size_t n, const float *s, const float *t, float scale, float *grad) {
  return kd_bce_row(n, s, t, scale, grad, 1);
}

#endif /* KD_BCE_PASSES_H */
