/*
 * The reference: the contract of kdloss.h computed plainly, in long double
 * (x86: 64-bit significand; aarch64: quad), one loop per step, each
 * distance written as its formula in kdloss.h. Kernels are fast; this is
 * obvious, and right where float is hard.
 *
 * Softmax distances: the pipeline's softmax(x)^(1/T) renormalised is
 * softmax(x/T) exactly, so each row is carried as logs: y_j = (x_j - max)/T,
 * log q_j = y_j - log sum_k exp(y_k), q_j = exp(log q_j). Neither step can
 * overflow: float logits differ by at most 2 * FLT_MAX, far inside long
 * double's range, and the shift makes the largest exp 1, so the sum is in
 * [1, n] for any T. Where the formulas take log q_j it is that log, not the
 * log of an underflowed q_j (which would be -inf at gaps of ~1e4). Masked
 * classes (-inf) get q = 0 and log q = -inf; a class's term is 0 where its
 * weight (r_j or q_j) is 0 by a mask, +inf where the log it multiplies is
 * -inf by a mask (kdloss.h's masking rules).
 * The cross-entropy bracket B_j = sum_k q_k (w_k - w_j) is summed as
 * differences from one w (see ce_grad), so it cancels only to long double
 * rounding of w when the row is nearly uniform or nearly one-hot.
 *
 * Results are returned in double: every loss and gradient of float inputs
 * and finite float factor and weights lies within double's range (up to
 * the documented infinities).
 */
#include <math.h>
#include <stdlib.h>
#include "reference.h"

typedef long double real;

/* log q = log softmax(x/T) into lq, q into q; 0 for a row that is all -inf
 * or holds NaN or +inf. */
static int softmax(size_t n, const float *x, real temperature, real *lq, real *q) {
  real m = -INFINITY;
  for (size_t j = 0; j < n; j++) {
    if (isnan(x[j]) || x[j] == INFINITY) return 0;
    m = x[j] > m ? x[j] : m;
  }
  if (m == -INFINITY) return 0;
  real z = 0;
  for (size_t j = 0; j < n; j++) {
    lq[j] = ((real)x[j] - m) / temperature;
    z += expl(lq[j]);
  }
  real log_z = logl(z);
  for (size_t j = 0; j < n; j++) {
    lq[j] -= log_z;
    q[j] = expl(lq[j]);
  }
  return 1;
}

/* The cross-entropy gradient grad_scale * q_j * B_j, B_j = sum_k q_k (w_k - w_j),
 * w = r / (q + eps), as sum_k q_k (w_k - c) - (w_j - c) sum_k q_k with c the
 * w of the most probable class: each term carries long double rounding of w
 * only (~1e-19 of w). r becomes w. */
static void ce_grad(size_t n, const real *q, real *r, real eps, real grad_scale, double *grad) {
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
  for (size_t j = 0; j < n; j++) grad[j] = (double)(grad_scale * q[j] * (a - (r[j] - c) * q_sum));
}

/* q_k (L_k - sum_j q_j L_j) * grad_scale: reverse KL and JSD. As in
 * ce_grad, L is taken as differences from c, the L of the most probable
 * class: sum_j q_j L_j itself would carry long double rounding of sum q
 * times L, and L reaches ~1e65 (gaps of 2 FLT_MAX over T = FLT_MIN) where
 * the L_k - c are 0. */
static void w_grad(size_t n, const real *q, const real *l, real grad_scale, double *grad) {
  size_t m = 0;
  for (size_t j = 0; j < n; j++)
    if (q[j] > q[m]) m = j;
  real c = l[m], mean = 0, q_sum = 0;
  for (size_t j = 0; j < n; j++)
    if (q[j] > 0) {
      mean += q[j] * (l[j] - c);
      q_sum += q[j];
    }
  for (size_t j = 0; j < n; j++)
    grad[j] = q[j] > 0 ? (double)(grad_scale * q[j] * ((l[j] - c) * q_sum - mean)) : 0.0;
}

typedef struct scratch { real *lq, *q, *lr, *r, *l; } scratch;

/* D_j = log r_j - log q_j for rows where r and q are close, into d: with
 * x_j = ((t_j - max t) - (s_j - max s)) / T, D_j = x_j - log(z_t / z_s) and
 * z_t / z_s = sum_k q_k e^(x_k) = 1 + sum_k q_k expm1(x_k). Each D_j then
 * carries long double rounding of x, not of log z_t and log z_s (~1e-19
 * each): KL and JSD are of second order in D, and at D ~ 1e-11 the
 * difference of the logs alone would not even get their sign right.
 * Returns 0 (d untouched) for a row with an infinite logit or some
 * |x_j| >= 1, where the plain difference lr - lq is already exact enough. */
static int near_log_ratio(size_t n, const float *s, const float *t, real temperature,
                          const real *q, real *d) {
  real sm = -INFINITY, tm = -INFINITY;
  for (size_t j = 0; j < n; j++) {
    if (!isfinite(s[j]) || !isfinite(t[j])) return 0;
    sm = s[j] > sm ? s[j] : sm;
    tm = t[j] > tm ? t[j] : tm;
  }
  real z = 0;
  for (size_t j = 0; j < n; j++) {
    d[j] = (((real)t[j] - tm) - ((real)s[j] - sm)) / temperature;
    if (!(fabsl(d[j]) < 1)) return 0;
    z += q[j] * expm1l(d[j]);
  }
  real log_ratio = log1pl(z);
  for (size_t j = 0; j < n; j++) d[j] -= log_ratio;
  return 1;
}

/* One softmax row: returns its distance d_i; grad (when not NULL) gets
 * grad_scale * d d_i / d z (grad_scale = c_i / T). */
static real softmax_row(const kd_params *p, real temperature, size_t n, const float *s,
                        const float *t, real grad_scale, double *grad, scratch *w) {
  real *lq = w->lq, *q = w->q, *lr = w->lr, *r = w->r, *l = w->l;
  if (!softmax(n, s, temperature, lq, q) || !softmax(n, t, temperature, lr, r)) return NAN;
  real d = 0;
  switch (p->distance) {
  case KD_CROSS_ENTROPY:
  case KD_CROSS_ENTROPY_UNIFORM_EPS: {
    int facil = p->distance == KD_CROSS_ENTROPY_UNIFORM_EPS;
    real eps = facil ? 1e-5L / (real)n : 1e-5L, norm = facil ? 1 + 1e-5L : 1;
    for (size_t j = 0; j < n; j++) d -= r[j] * logl((q[j] + eps) / norm);
    if (grad) ce_grad(n, q, r, eps, grad_scale, grad);
    return d;
  }
  case KD_SOFT_CROSS_ENTROPY:
  case KD_KL_DIV: {
    int kl = p->distance == KD_KL_DIV;
    if (kl && near_log_ratio(n, s, t, temperature, q, l)) {
      for (size_t j = 0; j < n; j++) d += r[j] * l[j];
      if (grad)
        for (size_t j = 0; j < n; j++) grad[j] = (double)(grad_scale * (q[j] - r[j]));
      return d;
    }
    for (size_t j = 0; j < n; j++) {
      if (t[j] == -INFINITY) continue;     /* 0 log 0 = 0 */
      if (s[j] == -INFINITY) d = INFINITY; /* r_j > 0, log q_j = -inf */
      else d += kl ? r[j] * (lr[j] - lq[j]) : -r[j] * lq[j];
    }
    if (grad)
      for (size_t j = 0; j < n; j++) grad[j] = (double)(grad_scale * (q[j] - r[j]));
    return d;
  }
  case KD_KL_DIV_REVERSE: {
    if (near_log_ratio(n, s, t, temperature, q, l)) {
      for (size_t j = 0; j < n; j++) {
        l[j] = -l[j];
        d += q[j] * l[j];
      }
      if (grad) w_grad(n, q, l, grad_scale, grad);
      return d;
    }
    int inf = 0;
    for (size_t j = 0; j < n; j++) {
      if (s[j] == -INFINITY) { l[j] = 0; continue; }
      if (t[j] == -INFINITY) { inf = 1; l[j] = 0; continue; }
      l[j] = lq[j] - lr[j];
      d += q[j] * l[j];
    }
    if (!grad) return inf ? INFINITY : d;
    if (!inf) {
      w_grad(n, q, l, grad_scale, grad);
      return d;
    }
    /* No finite limit: kdloss.h's infinite gradient. */
    for (size_t j = 0; j < n; j++)
      grad[j] = s[j] == -INFINITY || grad_scale == 0 ? 0.0
                : (t[j] == -INFINITY) == (grad_scale > 0) ? INFINITY : -INFINITY;
    return INFINITY;
  }
  case KD_JSD: {
    real beta = p->beta;
    if (near_log_ratio(n, s, t, temperature, q, l)) {
      /* With r_j = q_j e^(D_j) and M_j = q_j (1 + beta expm1(D_j)):
       * d = sum_j beta r_j D_j - M_j log1p(beta expm1(D_j)), log q_j - log M_j
       * = -log1p(beta expm1(D_j)). */
      for (size_t j = 0; j < n; j++) {
        real lg = log1pl(beta * expm1l(l[j]));
        d += beta * r[j] * l[j] - (beta * r[j] + (1 - beta) * q[j]) * lg;
        l[j] = -(1 - beta) * lg;
      }
      if (grad) w_grad(n, q, l, grad_scale, grad);
      return d;
    }
    for (size_t j = 0; j < n; j++) {
      /* log M = log(beta r + (1-beta) q) from the logs: M underflows at gaps
       * where r or q alone does not. */
      real a = lr[j] + logl(beta), b = lq[j] + log1pl(-beta), hi = a > b ? a : b;
      real lm = hi == -INFINITY ? hi : hi + log1pl(expl(-fabsl(a - b)));
      if (r[j] > 0) d += beta * r[j] * (lr[j] - lm);
      if (q[j] > 0) d += (1 - beta) * q[j] * (lq[j] - lm);
      l[j] = q[j] > 0 ? (1 - beta) * (lq[j] - lm) : 0;
    }
    if (grad) w_grad(n, q, l, grad_scale, grad);
    return d;
  }
  default: return NAN;
  }
}

/* log sigmoid(x), without overflow or cancellation. */
static real log_sigmoid(real x) {
  return x > 0 ? -log1pl(expl(-x)) : x - log1pl(expl(x));
}
static real sigmoid(real x) {
  return x > 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
}

/* One MSE or BCE row: returns its distance d_i (the mean over the row). */
static real elem_row(kd_distance dist, size_t n, const float *s, const float *t,
                     real grad_scale, double *grad) {
  real sum = 0;
  for (size_t j = 0; j < n; j++) {
    if (!isfinite(s[j]) || !isfinite(t[j])) return NAN;
    real x = s[j], y = t[j];
    if (dist == KD_MSE) {
      sum += (x - y) * (x - y);
      if (grad) grad[j] = (double)(grad_scale * 2 * (x - y));
    } else {
      /* BCE(sigmoid(x), sigmoid(y)) = -(sigmoid(y) log sigmoid(x) + sigmoid(-y) log sigmoid(-x)) */
      sum -= sigmoid(y) * log_sigmoid(x) + sigmoid(-y) * log_sigmoid(-x);
      if (grad) grad[j] = (double)(grad_scale * (sigmoid(x) - sigmoid(y)));
    }
  }
  return sum / (real)n;
}

/* kd_reference_ex_f64 with factor and temperature in long double (those of
 * p ignored): kd_reference_f64 takes them in double. */
static double reference(const kd_params *p, real factor, real temperature, size_t rows,
                        size_t cols, const float *student, size_t ld_student,
                        const float *teacher, size_t ld_teacher, double *row_loss,
                        double *grad) {
  int softmax_dist = p->distance != KD_MSE && p->distance != KD_BCE_SIGMOID;
  real w_sum = 0;
  for (size_t i = 0; i < rows; i++) w_sum += p->row_weight ? (real)p->row_weight[i] : 1;
  real den = p->reduction == KD_REDUCE_MEAN ? w_sum : 1;
  scratch w = {NULL, NULL, NULL, NULL, NULL};
  if (softmax_dist) {
    w.lq = malloc(5 * cols * sizeof *w.lq);
    if (!w.lq) return NAN;
    w.q = w.lq + cols;
    w.lr = w.q + cols;
    w.r = w.lr + cols;
    w.l = w.r + cols;
  }
  real total = 0;
  int bad = 0;
  for (size_t i = 0; i < rows && !bad; i++) {
    real wi = p->row_weight ? (real)p->row_weight[i] : 1;
    real c = den > 0 ? factor * wi / den : 0; /* this row's share of factor */
    double *g = grad ? grad + i * cols : NULL;
    if (wi == 0) { /* never read */
      if (row_loss) row_loss[i] = 0.0;
      for (size_t j = 0; g && j < cols; j++) g[j] = 0.0;
      continue;
    }
    const float *s = student + i * ld_student, *t = teacher + i * ld_teacher;
    real d = softmax_dist ? softmax_row(p, temperature, cols, s, t, c / temperature, g, &w)
                          : elem_row(p->distance, cols, s, t, c / (real)cols, g);
    if (isnan(d)) bad = 1;
    /* factor 0 times an infinite distance: 0, as for a weight of 0. */
    real fw = factor * wi;
    if (row_loss) row_loss[i] = fw == 0 ? 0.0 : (double)(fw * d);
    if (c != 0) total += c * d;
  }
  free(w.lq);
  return bad ? NAN : (double)total;
}

double kd_reference_f64(kd_distance distance, double factor, double temperature,
                        size_t rows, size_t cols,
                        const float *student, size_t ld_student,
                        const float *teacher, size_t ld_teacher,
                        double *grad) {
  kd_params p = {distance, (float)factor, (float)temperature, 0.5f, KD_REDUCE_MEAN, NULL};
  return reference(&p, factor, temperature, rows, cols, student, ld_student, teacher,
                   ld_teacher, NULL, grad);
}

double kd_reference_ex_f64(const kd_params *p, size_t rows, size_t cols,
                           const float *student, size_t ld_student,
                           const float *teacher, size_t ld_teacher,
                           double *row_loss, double *grad) {
  return reference(p, p->factor, p->temperature, rows, cols, student, ld_student, teacher,
                   ld_teacher, row_loss, grad);
}
