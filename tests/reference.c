/*
 * The reference: the cross-entropy pipeline exactly as the original code
 * states it (softmax, pow(1/T), renormalise, + 1e-5, log), and the MSE, in
 * double, one plain loop per step. Kernels are fast; this is obvious.
 *
 * One liberty: step 1's probabilities are carried as logs (log-softmax), and
 * pow(p, 1/T) is evaluated as exp(log(p)/T). In double, exp(x - max)
 * underflows to 0 for gaps beyond ~745, after which pow(0, 1/T) = 0 even
 * when T is large enough that the class still has mass; in log form the same
 * steps stay exact for any gap. Masked classes (-inf) give log p = -inf and
 * p^(1/T) = 0, as they should.
 */
#include <math.h>
#include <stdlib.h>
#include "reference.h"

/* Steps 1-3 for one row: p = renormalise(softmax(x)^(1/T)), into out. */
static int tempered_softmax(size_t n, const float *x, double temperature, double *out) {
  double m = -INFINITY;
  for (size_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  if (!(m > -INFINITY) || !isfinite(m)) return 0; /* all -inf, or +inf/NaN */
  double z = 0.0;
  for (size_t j = 0; j < n; j++) {
    if (isnan(x[j])) return 0;
    z += exp((double)x[j] - m);
  }
  double log_z = log(z);
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    double log_p = ((double)x[j] - m) - log_z; /* step 1 */
    out[j] = exp(log_p / temperature);          /* step 2: p^(1/T) */
    sum += out[j];
  }
  for (size_t j = 0; j < n; j++) out[j] /= sum; /* step 3 */
  return 1;
}

static double ce_row(size_t n, const float *s, const float *t, double temperature,
                     double grad_scale, double *grad, double *q, double *r) {
  if (!tempered_softmax(n, s, temperature, q) || !tempered_softmax(n, t, temperature, r))
    return NAN;
  double loss = 0.0;
  for (size_t j = 0; j < n; j++) loss -= r[j] * log(q[j] + 1e-5); /* steps 4-5 */
  if (grad) {
    /* d/dz_j with z = s/T: q_j * (S - w_j), w = r/(q + 1e-5), S = sum_k w_k q_k.
     * For the most probable class m, S - w_m is written as
     * sum_{k != m} q_k (w_k - w_m) (using sum_k q_k = 1): when q_m is near 1
     * both S and w_m are near w_m and their difference would cancel. */
    size_t m = 0;
    double S = 0.0;
    for (size_t j = 0; j < n; j++) {
      S += r[j] / (q[j] + 1e-5) * q[j];
      if (q[j] > q[m]) m = j;
    }
    double w_m = r[m] / (q[m] + 1e-5), b_m = 0.0;
    for (size_t j = 0; j < n; j++)
      if (j != m) b_m += q[j] * (r[j] / (q[j] + 1e-5) - w_m);
    for (size_t j = 0; j < n; j++) {
      double b = j == m ? b_m : S - r[j] / (q[j] + 1e-5);
      grad[j] = grad_scale * q[j] * b;
    }
  }
  return loss;
}

double kd_reference_f64(kd_distance distance, double factor, double temperature,
                        size_t rows, size_t cols,
                        const float *student, size_t ld_student,
                        const float *teacher, size_t ld_teacher,
                        double *grad) {
  double total = 0.0;
  if (distance == KD_MSE) {
    double n = (double)rows * (double)cols;
    for (size_t i = 0; i < rows; i++) {
      for (size_t j = 0; j < cols; j++) {
        double d = (double)student[i * ld_student + j] - (double)teacher[i * ld_teacher + j];
        total += d * d;
        if (grad) grad[i * cols + j] = 2.0 * factor * d / n;
      }
    }
    return isfinite(total) ? factor * total / n : NAN;
  }
  double *q = malloc(2 * cols * sizeof *q);
  if (!q) return NAN;
  double *r = q + cols;
  for (size_t i = 0; i < rows && !isnan(total); i++)
    total += ce_row(cols, student + i * ld_student, teacher + i * ld_teacher, temperature,
                    factor / ((double)rows * temperature), grad ? grad + i * cols : NULL, q, r);
  free(q);
  return factor * total / (double)rows;
}
