/*
 * tolerance.h -- every accuracy bound the tests hold kdloss to, in one place.
 * These are the contract of include/kdloss.h, not loosened for any ISA.
 */
#ifndef KD_TOLERANCE_H
#define KD_TOLERANCE_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include "kdloss.h"

/* |loss - ref| <= max(TK_LOSS_REL * |ref| + TK_LOSS_ABS_PER_FACTOR * |factor|,
 *                     one float ulp at |ref|), with sum_i |c_i| for |factor| when
 * rows are weighted (|factor| for MEAN, |factor| sum w for SUM), and
 * |factor| w_i for row_loss[i]. */
#define TK_LOSS_REL 1e-5
#define TK_LOSS_ABS_PER_FACTOR 1e-6

/* max_ij |grad_ij - ref_ij| <= max(TK_GRAD_REL * max_ij |ref_ij| + TK_GRAD_ABS_PER_SCALE *
 *   |factor| / (rows * T) (cross-entropy) or / (rows * cols) (MSE),
 *   one float ulp at max_ij |ref_ij|) */
#define TK_GRAD_REL 1e-5
#define TK_GRAD_ABS_PER_SCALE 1e-12

/* The spacing of float at |x|: 2^-149 below FLT_MIN. */
static inline double tk_float_ulp(double x) {
  x = fabs(x);
  if (x < FLT_MIN) return 0x1p-149;
  int e;
  frexp(x, &e);
  return ldexp(1.0, e - 24);
}

static inline double tk_loss_tol(double ref, double factor) {
  return fmax(TK_LOSS_REL * fabs(ref) + TK_LOSS_ABS_PER_FACTOR * fabs(factor), tk_float_ulp(ref));
}

/* The gradient's scale, unsigned: max_i |c_i| / T for the softmax distances,
 * max_i |c_i| / cols for KD_MSE and KD_BCE_SIGMOID, with c_i the row's share
 * of factor (kdloss.h): |factor| w_max / sum w (MEAN) or |factor| w_max (SUM). */
static inline double tk_grad_scale_ex(const kd_params *p, size_t cols, double w_max,
                                      double w_sum) {
  double c = fabs(p->factor) * w_max / (p->reduction == KD_REDUCE_MEAN ? w_sum : 1.0);
  int elem = p->distance == KD_MSE || p->distance == KD_BCE_SIGMOID;
  return w_sum > 0 ? c / (elem ? (double)cols : (double)p->temperature) : 0.0;
}

/* The same with every weight 1 and MEAN: factor/(rows*T) or factor/(rows*cols). */
static inline double tk_grad_scale(kd_distance d, double factor, double temperature, size_t rows,
                                   size_t cols) {
  int elem = d == KD_MSE || d == KD_BCE_SIGMOID;
  return fabs(factor) / ((double)rows * (elem ? (double)cols : temperature));
}

static inline double tk_grad_tol(double max_ref, double grad_scale) {
  return fmax(TK_GRAD_REL * max_ref + TK_GRAD_ABS_PER_SCALE * grad_scale, tk_float_ulp(max_ref));
}

/* Whether a float result meets its bound tol around ref. Results beyond
 * float's range are +-inf (kdloss.h): inf of ref's sign is required when
 * the whole interval ref +- tol rounds to it, and allowed when part of it does. */
static inline int tk_within(float got, double ref, double tol) {
  const double overflow = 0x1p128 - 0x1p103; /* FLT_MAX + half an ulp: rounds to inf */
  if (isinf(got)) return (got > 0) == (ref > 0) && fabs(ref) + tol >= overflow;
  return fabs(ref) - tol < overflow && fabs((double)got - ref) <= tol;
}

/* The inline vector math (src/vmath_inline.h) on its domains, in ulp
 * of the exact result (tests/test_vecmath.c). */
#define TK_EXP_ULP 1.1
#define TK_LOG_ULP 1.1

/*
 * One kernel pass of a SIMD ISA against the same pass of the scalar table
 * (test_kernels.c). Both round in float, differently: the vector exp/log (inline or SLEEF's,
 * within a few ulp) against libm's, FMA against separate rounding, float
 * block sums against the scalar file's double sums.
 *   TK_K_ELEM_REL: a stored value (exp, q, w, a gradient): a few ulp of its
 *     own size, or for values that cancel (u_j, grad_j) of the size of the
 *     terms they cancel from; TK_K_ELEM_ABS: exps below FLT_MIN may flush to 0.
 *   TK_K_SUM_REL: a returned sum, relative to the sum of its terms' sizes:
 *     each lane adds up to KD_BLOCK / 4 floats (NEON's 4 lanes) before the
 *     block joins a double, (256 / 4) * 2^-24 = 3.8e-6, plus the terms' ulps.
 */
#define TK_K_ELEM_REL 1e-6
#define TK_K_ELEM_ABS 1.2e-38 /* FLT_MIN */
#define TK_K_SUM_REL 1e-5

#endif
