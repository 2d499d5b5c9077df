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

/* q = softmax(x/T) into out, through its logs (see above); 0 for a row that
 * is all -inf or holds NaN or +inf. */
static int softmax(size_t n, const float *x, real temperature, real *out) {
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
  for (size_t j = 0; j < n; j++) out[j] = expl(out[j] - log_z);
  return 1;
}

/* One row: returns sum_j r_j log(q_j + 1e-5); grad (when not NULL) gets
 * grad_scale * q_j * B_j. q, r: scratch of n each. */
static real ce_row(size_t n, const float *s, const float *t, real temperature, real grad_scale,
                   double *grad, real *q, real *r) {
  if (!softmax(n, s, temperature, q) || !softmax(n, t, temperature, r)) return NAN;
  const real eps = 1e-5L;
  real sum = 0;
  for (size_t j = 0; j < n; j++) sum += r[j] * logl(q[j] + eps);
  if (grad) {
    /* B_j = sum_k q_k (w_k - c) - (w_j - c) sum_k q_k, with c the w of the
     * most probable class: the terms are differences from the start, each
     * carrying long double rounding of w only (~1e-19 of w). r becomes w. */
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
      r[j] /= q[j] + eps;
      if (q[j] > q[m]) m = j;
    }
    real c = r[m], a = 0, q_sum = 0;
    for (size_t j = 0; j < n; j++) {
      a += q[j] * (r[j] - c);
      q_sum += q[j];
    }
    for (size_t j = 0; j < n; j++)
      grad[j] = (double)(grad_scale * q[j] * (a - (r[j] - c) * q_sum));
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
  real *q = malloc(2 * cols * sizeof *q);
  if (!q) return NAN;
  real *r = q + cols;
  real grad_scale = (real)factor / ((real)rows * (real)temperature);
  for (size_t i = 0; i < rows && !isnan(total); i++)
    total += ce_row(cols, student + i * ld_student, teacher + i * ld_teacher, temperature,
                    grad_scale, grad ? grad + i * cols : NULL, q, r);
  free(q);
  return (double)(-(real)factor * (total / (real)rows));
}
