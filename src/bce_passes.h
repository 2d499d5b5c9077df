/*
 * bce_passes.h -- the BCE-with-logits row passes, written once over the
 * operation layer and compiled by each src/<isa>/bce_<isa>.c: the element of
 * kd_elem_row (passes.h), with a float sum per KD_LANE_BLOCK elements joining
 * a double; the structure of src/scalar/bce_scalar.c.
 *
 * Element: softplus(s) - sigmoid(t) s = |s| sigmoid(-sign(s) t) + log1p(e^-|s|),
 * two terms >= 0 (no cancellation). exp takes -|s|, -|t| <= 0 (its domain);
 * log1p(e) for e in [0, 1] is log(1 + e), 1 + e in [1, 2] (the log's
 * domain): its rounding costs at most 2^-24 absolute per element, far
 * inside the contract's absolute term (1e-6 |factor| on a mean of elements,
 * 1e-6 |factor w_i| on a row's); everything else is relative. 0 * t is added
 * so that an infinity or NaN in t makes the sum non-finite (the vector exp
 * maps NaN to 0); one in s reaches it through |s| sigmoid(..) (inf or NaN).
 * Gradient sigmoid(s) - sigmoid(t), from the identities
 *   sigmoid(s) - sigmoid(t) = -sigmoid(s) sigmoid(-t) expm1(t - s)
 *                           = sigmoid(s) sigmoid(-t) - sigmoid(t) sigmoid(-s),
 * each sigmoid relatively accurate (1/(1+e) or e/(1+e), e = exp(-|z|)): the
 * first where |s - t| < KD_EXPM1_BAND (products of relatively accurate
 * factors), the second elsewhere, where its terms differ by a factor
 * e^|s - t| >= e^0.5 and so cancel by at most 2.6x. Tail lanes load 0 and
 * are kept out of the sum.
 */
#ifndef KD_BCE_PASSES_H
#define KD_BCE_PASSES_H

#include "passes.h"

#define KD_BCE_U 2

/* kd_elem_row's element (passes.h): the term into acc, the gradient into *g. */
static inline __attribute__((always_inline)) kd_vf kd_bce_vec(kd_vf x, kd_vf y, kd_vf acc,
                                                              kd_vm m, int full, int store,
                                                              kd_vf *g) {
  const kd_vf one = kd_set1(1.0f), zero = kd_zero();
  kd_vf ex = kd_exp(kd_neg(kd_abs(x))), ey = kd_exp(kd_neg(kd_abs(y)));
  kd_vf ry = kd_div(one, kd_add(one, ey)), cy = kd_mul(ey, ry);
  kd_vm xp = kd_not_lt(x, zero), yp = kd_not_lt(y, zero);
  kd_vf sig_y = kd_select(yp, ry, cy), sig_ny = kd_select(yp, cy, ry);
  kd_vf u = kd_add(one, ex);
  /* |s| sigmoid(-sign(s) t) + log1p(e^-|s|) */
  kd_vf term = kd_fmadd(y, zero, kd_fmadd(kd_abs(x), kd_select(xp, sig_ny, sig_y), kd_log(u)));
  if (store) {
    kd_vf rx = kd_div(one, u), cx = kd_mul(ex, rx);
    kd_vf sig_x = kd_select(xp, rx, cx), sig_nx = kd_select(xp, cx, rx);
    /* d^2 < band^2 is |d| < band (see cestats in ce_passes.h); the
     * polynomial outside the band is never selected. */
    kd_vf d = kd_sub(y, x), d2 = kd_mul(d, d);
    kd_vf gb = kd_fnmadd(kd_mul(sig_x, sig_ny), kd_expm1f_band(d, d2), zero);
    kd_vf go = kd_fmsub(sig_x, sig_ny, kd_mul(sig_y, sig_nx));
    *g = kd_select(kd_lt(d2, kd_set1(KD_EXPM1_BAND * KD_EXPM1_BAND)), gb, go);
  }
  return full ? kd_add(acc, term) : kd_add_m(acc, m, term);
}

double KD_FN(bce)(size_t n, const float *s, const float *t) {
  return kd_elem_row(n, s, t, 0.0f, NULL, 0, kd_bce_vec, KD_BCE_U, KD_LANE_BLOCK);
}

double KD_FN(bcegrad)(size_t n, const float *s, const float *t, float scale, float *grad) {
  return kd_elem_row(n, s, t, scale, grad, 1, kd_bce_vec, KD_BCE_U, KD_LANE_BLOCK);
}

#endif /* KD_BCE_PASSES_H */
