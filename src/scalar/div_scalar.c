/*
 * Soft cross-entropy, KL, reverse KL and JSD row passes, portable C (libm):
 * the template of src/div_passes.h and src/jsd_passes.h, which have the
 * math. One lane, so sums are double.
 */
#include <float.h>
#include <math.h>
#include "kernels.h"

/* The gap parts (kernels.h) over T. */
static inline float gap_over_t(float x, float y, const kd_ce_row *row) {
  return kd_gap_parts_f32(x, y, row) * row->inv_temp;
}

/* q_j - r_j, relatively accurate: -q_j expm1(d_j) where r_j/q_j = exp(d_j)
 * is near 1, else the difference itself (see div_passes.h). */
static inline float q_minus_r(float q, float r, float d) {
  return fabsf(d) < KD_EXPM1_BAND ? -q * expm1f(d) : q - r;
}

double kd_f32_klsum_scalar(size_t n, const float *s, const float *t, const float *es,
                           const float *et, const kd_ce_row *row, int kl, float *grad,
                           kd_grad_stats *stats) {
  double sum = 0.0;
  float max_abs = 0.0f, max_err = 0.0f, abs_l = fabsf(row->log_zs_zt);
  int inf = 0;
  for (size_t j = 0; j < n; j++) {
    float x = s[j], y = t[j];
    float a = gap_over_t(x, y, row);
    float term = et[j] * (kl ? a : (row->s_max - x) * row->inv_temp);
    if (y == -INFINITY) term = 0.0f;      /* the teacher masks j: 0 log 0 = 0 */
    else if (x == -INFINITY) inf = 1;     /* the student masks it: +inf */
    else sum += term;
    if (grad) {
      float q = es[j] * row->inv_zs, r = et[j] * row->inv_zt, d = a + row->log_zs_zt;
      float g = row->grad_scale * q_minus_r(q, r, d);
      float e = fabsf(d) < KD_EXPM1_BAND ? q * (fabsf(a) + abs_l + 1.0f) : 0.0f;
      grad[j] = g; /* after et[j] was read: grad may be et */
      max_abs = fabsf(g) > max_abs ? fabsf(g) : max_abs;
      max_err = e > max_err ? e : max_err;
    }
  }
  if (grad) {
    stats->others = 0.0;
    stats->max_abs = max_abs;
    stats->max_err = fabsf(row->grad_scale) * max_err;
  }
  return inf ? INFINITY : sum;
}

double kd_f32_divloss_scalar(size_t n, const float *s, const float *t, const kd_ce_row *row,
                             int kind, double *zs, double *zt) {
  double sum = 0.0, ds = 0.0, dt = 0.0;
  int inf = 0;
  for (size_t j = 0; j < n; j++) {
    float x = s[j], y = t[j];
    float es = expf((x - row->s_max) * row->inv_temp), et = expf((y - row->t_max) * row->inv_temp);
    ds += es;
    dt += et;
    /* 1/T joins the sum in the row loop. */
    float a = kind == 0 ? row->s_max - x : kd_gap_parts_f32(x, y, row);
    float term = (kind == 2 ? es : et) * a;
    /* SCE, KL: a class the teacher masks adds 0, one only the student masks
     * is +inf; reverse KL the other way round. */
    int zero = kind == 2 ? x == -INFINITY : y == -INFINITY;
    int infinite = kind == 2 ? y == -INFINITY : x == -INFINITY;
    if (zero) continue;
    if (infinite) inf = 1;
    else sum += term;
  }
  *zs = ds;
  *zt = dt;
  return inf ? (kind == 2 ? -INFINITY : INFINITY) : sum;
}

double kd_f32_divstats_scalar(size_t n, const float *s, const float *t, float *es_q,
                              float *et_v, const kd_ce_row *row, int jsd, kd_ce_sums *sums) {
  double sum = 0.0, dq = 0.0, dqv = 0.0;
  float v_max = 0.0f, beta = row->beta;
  for (size_t j = 0; j < n; j++) {
    float x = s[j], y = t[j];
    float q = es_q[j] * row->inv_zs, r = et_v[j] * row->inv_zt;
    float a = gap_over_t(x, y, row), d = a + row->log_zs_zt; /* d = log(r/q) */
    float v, term;
    if (!jsd) {
      /* Reverse KL: v = d (pass 4's w-form then gives q (L - sum q L), L = -d). */
      v = d;
      term = es_q[j] * a;
      if (x == -INFINITY) v = term = 0.0f;
      else if (y == -INFINITY) { v = 0.0f; term = -INFINITY; }
    } else {
      /* lambda = log(M/q), mu = log(M/r), from d through log1p of a value in
       * [-1, 0] (see div_passes.h); a masked side has d = +-inf. */
      if (x == -INFINITY) d = INFINITY;
      if (y == -INFINITY) d = -INFINITY;
      float e = expm1f(-fabsf(d)), lambda, mu;
      float x = beta * -e / (e + 1.0f); /* d > 0: beta expm1(d) */
      if (beta >= 0.125f) { /* the cheaper split of div_passes.h */
        int big = d > 0.0f && !(fabsf(d) < KD_EXPM1_BAND);
        x = big ? 1.0f : beta * expm1f(d);
      }
      /* 1 + x below 1/2 would cancel x's rounding: there the same value
       * as a sum of two positive terms with e^-|d| (div_passes.h). */
      if (d <= 0.0f || x < 1.0f) {
        float xl = d <= 0.0f ? beta * e : x;
        lambda = xl < -0.5f ? logf((1.0f - beta) + beta * expf(-fabsf(d))) : log1pf(xl);
        mu = lambda - d;
      } else {
        float xm = (1.0f - beta) * e;
        mu = xm < -0.5f ? logf(beta + (1.0f - beta) * expf(-fabsf(d))) : log1pf(xm);
        lambda = mu + d;
      }
      float r_mu = r == 0.0f ? 0.0f : r * mu, q_lambda = q == 0.0f ? 0.0f : q * lambda;
      term = -(beta * r_mu + (1.0f - beta) * q_lambda);
      v = q == 0.0f ? 0.0f : (1.0f - beta) * lambda;
    }
    sum += term;
    dq += q;
    dqv += q * v;
    v_max = fabsf(v) > v_max ? fabsf(v) : v_max;
    es_q[j] = q;
    et_v[j] = v;
  }
  sums->q = dq;
  sums->qw = dqv;
  sums->qu = 0.0;
  sums->u_size = v_max;
  return sum;
}

/* The direct JSD pass (see jsd_passes.h): lambda_j = log M'_j - y_j,
 * mu_j = log M'_j - zl_j, M'_j = c1 et_j + c2 es_j = zs M_j. */
double kd_f32_jsdfast_scalar(size_t n, const float *s, const float *t, float *es_q, float *et_v,
                             const kd_ce_row *row, float c1, int grad, kd_jsd_sums *sums) {
  double sum = 0.0, dbc = 0.0, dq = 0.0, dqv = 0.0, dqw = 0.0;
  float c2 = 1.0f - row->beta, ql_max = 0.0f, qw_max = 0.0f, qw_top = 0.0f;
  for (size_t j = 0; j < n; j++) {
    float a = c1 * et_v[j], b = c2 * es_q[j], mm = a + b;
    float lm = logf(fmaxf(mm, FLT_MIN));
    float ys = fmaxf((s[j] - row->s_max) * row->inv_temp, KD_JSD_FLOOR);
    float zl = fmaxf(fmaf(t[j] - row->t_max, row->inv_temp, row->log_zs_zt), KD_JSD_FLOOR);
    float bc = fmaf(a, zl, b * ys);
    sum += fmaf(mm, lm, -bc);
    dbc += bc;
    if (!grad) continue;
    float q = es_q[j] * row->inv_zs, lambda = lm - ys, ql = q * fabsf(lambda);
    float qw = fmaf(-q, ys, ql);
    float v = c2 * lambda;
    dq += q;
    dqv += q * v;
    dqw += qw;
    ql_max = ql > ql_max ? ql : ql_max;
    if (es_q[j] < 1.0f) qw_max = qw > qw_max ? qw : qw_max;
    else qw_top = qw > qw_top ? qw : qw_top;
    es_q[j] = q;
    et_v[j] = v;
  }
  sums->bc = dbc;
  sums->q = dq;
  sums->qv = dqv;
  sums->qw = dqw;
  sums->ql_max = ql_max;
  sums->qw_max = qw_max;
  sums->qw_top = qw_top;
  return sum;
}
