/*
 * The reference: the contract of kdloss.h computed plainly, in long double
 * (x86: 64-bit significand; aarch64: quad), one loop per step. Kernels are
 * fast; this is obvious, and right where float is hard.
 *
 * Cross-entropy: the pipeline's softmax(x)^(1/T) renormalised is softmax(x/T)
 * exactly, so each row is carried as logs: y_j = (x_j - max)/T, log q_j =
 * y_j - log sum_k exp(y_k). Neither step can overflow: float logits differ by
 * at most 2 * FLT_MAX, far inside long double's range, and the shift makes
 * the largest exp 1, so the sum is in [1, n] for any T (no 0/0 when T is
 * tiny, no lost mass when the spread is huge and T too). Masked classes
 * (-inf) get q = 0 exactly.
 * The gradient's bracket B_j = sum_k q_k (w_k - w_j) is summed as
 * differences from one w (see ce_row), so it cancels only to long double
 * rounding of w when the row is nearly uniform or nearly one-hot.
 *
 * Results are returned in double: every loss and gradient of float inputs
 * and a finite float factor lies within double's range.
 */
#include <math.h>
#include <stdlib.h>
#include "reference.h"

typedef long double real;

/* log q_j = log softmax(x/T)_j into out; 0 for a row that is all -inf or
 * holds NaN or +inf. */
static int log_softmax(size_t n, const float *x, real temperature, real *out) {
  real m = -INFINITY;
  for (size_t j = 0; j < n; j++) {
    if (isnan(x[j]) || x[j] == INFINITY) return 0;
    m = x[j] > m ? x[j] : m;
  }
  if (m == -INFINITY) return 0;
  real z = 0;
  for (size_t j = 0; j < n; j++) {
    out[j] = ((real)x[j] - m) / temperature;
    z += expl(out[j]);
  }
  real log_z = logl(z);
  for (size_t j = 0; j < n; j++) out[j] -= log_z;
  return 1;
}

/* One row: returns sum_j r_j log(q_j + 1e-5); grad (when not NULL) gets
 * grad_scale * q_j * B_j. lq, lr: scratch of n each. */
static real ce_row(size_t n, const float *s, const float *t, real temperature, real grad_scale,
                   double *grad, real *lq, real *lr) {
  if (!log_softmax(n, s, temperature, lq) || !log_softmax(n, t, temperature, lr)) return NAN;
  const real eps = 1e-5L;
  real sum = 0;
  for (size_t j = 0; j < n; j++) sum += expl(lr[j]) * logl(expl(lq[j]) + eps);
  if (grad) {
    /* B_j = sum_k q_k (w_k - c) - (w_j - c) sum_k q_k, with c the w of the
     * most probable class: the terms are differences from the start, each
     * carrying long double rounding of w only (~1e-19 of w). */
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
      lr[j] = expl(lr[j]) / (expl(lq[j]) + eps); /* w_j */
      lq[j] = expl(lq[j]);                       /* q_j */
      if (lq[j] > lq[m]) m = j;
    }
    real c = lr[m], a = 0, q_sum = 0;
    for (size_t j = 0; j < n; j++) {
      a += lq[j] * (lr[j] - c);
      q_sum += lq[j];
    }
    for (size_t j = 0; j < n; j++)
      grad[j] = (double)(grad_scale * lq[j] * (a - (lr[j] - c) * q_sum));
  }
  return sum;
}

double kd_reference_f64(kd_distance distance, double factor, double temperature,
                        size_t rows, size_t cols,
                        const float *student, size_t ld_student,
                        const float *teacher, size_t ld_teacher,
                        double *grad) {
  real total = 0;
  if (distance == KD_MSE) {
    real n = (real)rows * (real)cols, scale = 2 * (real)factor / n;
    for (size_t i = 0; i < rows; i++) {
      for (size_t j = 0; j < cols; j++) {
        float a = student[i * ld_student + j], b = teacher[i * ld_teacher + j];
        if (!isfinite(a) || !isfinite(b)) return NAN;
        real d = (real)a - (real)b;
        total += d * d;
        if (grad) grad[i * cols + j] = (double)(scale * d);
      }
    }
    return (double)((real)factor * (total / n));
  }
  real *lq = malloc(2 * cols * sizeof *lq);
  if (!lq) return NAN;
  real *lr = lq + cols;
  real grad_scale = (real)factor / ((real)rows * (real)temperature);
  for (size_t i = 0; i < rows && !isnan(total); i++)
    total += ce_row(cols, student + i * ld_student, teacher + i * ld_teacher, temperature,
                    grad_scale, grad ? grad + i * cols : NULL, lq, lr);
  free(lq);
  return (double)(-(real)factor * (total / (real)rows));
}
