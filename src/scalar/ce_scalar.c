/*
 * Cross-entropy row passes, portable C (libm). The fallback dispatch target and
 * the template the SIMD files follow pass for pass; see src/kernels.h.
 */
#include <math.h>
#include "kernels.h"

int kd_f32_rmax2_scalar(size_t n, const float *s, const float *t,
                        float *s_max, float *t_max) {
  float ms = -INFINITY, mt = -INFINITY;
  int bad = 0;
  for (size_t j = 0; j < n; j++) {
    /* !(x < inf) is true for NaN and +inf alike. */
    bad |= !(s[j] < INFINITY) | !(t[j] < INFINITY);
    ms = s[j] > ms ? s[j] : ms;
    mt = t[j] > mt ? t[j] : mt;
  }
  *s_max = ms;
  *t_max = mt;
  return bad;
}

size_t kd_f32_expsum2_scalar(size_t n, const float *s, const float *t,
                             const kd_ce_row *row, float *es, float *et,
                             double *zs, double *zt) {
  double ds = 0.0, dt = 0.0;
  size_t first = n;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float fs = 0.0f, ft = 0.0f;
    for (; j < end; j++) {
      if (first == n && s[j] == row->s_max) first = j;
      es[j] = expf((s[j] - row->s_max) * row->inv_temp);
      et[j] = expf((t[j] - row->t_max) * row->inv_temp);
      fs += es[j];
      ft += et[j];
    }
    ds += fs;
    dt += ft;
  }
  *zs = ds;
  *zt = dt;
  return first;
}

double kd_f32_celoss_scalar(size_t n, const float *es, const float *et,
                            const kd_ce_row *row) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float f = 0.0f;
    for (; j < end; j++) {
      float q = es[j] * row->inv_zs, r = et[j] * row->inv_zt;
      f += r * logf(q + KD_EPS);
    }
    sum += f;
  }
  return sum;
}

double kd_f32_cestats_scalar(size_t n, const float *s, const float *t, float *es_q,
                             float *et_v, const kd_ce_row *row, double sums[3]) {
  double sum = 0.0, dq = 0.0, dqw = 0.0, dqu = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float f = 0.0f, fq = 0.0f, fqw = 0.0f, fqu = 0.0f;
    for (; j < end; j++) {
      float q = es_q[j] * row->inv_zs, r = et_v[j] * row->inv_zt;
      float d = ((t[j] - s[j]) - row->max_gap) * row->inv_temp + row->log_zs_zt;
      float diff = fabsf(d) < KD_EXPM1_BAND ? -q * expm1f(d) : q - r;
      float rcp = 1.0f / (q + KD_EPS);
      float w = r * rcp, u = (diff + KD_EPS) * rcp;
      f += r * logf(q + KD_EPS);
      fq += q;
      fqw += q * w;
      fqu += q * u;
      int u_form = w > 0.5f;
      es_q[j] = u_form ? -q : q;
      et_v[j] = u_form ? u : w;
    }
    sum += f;
    dq += fq;
    dqw += fqw;
    dqu += fqu;
  }
  sums[0] = dq;
  sums[1] = dqw;
  sums[2] = dqu;
  return sum;
}

double kd_f32_cegrad_scalar(size_t n, const float *q_signed, const float *v,
                            const kd_ce_row *row, size_t skip, float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float f = 0.0f;
    for (; j < end; j++) {
      float q = fabsf(q_signed[j]);
      float b = signbit(q_signed[j]) ? v[j] * row->q_sum - row->qu_sum
                                     : row->qw_sum - v[j] * row->q_sum;
      float g = row->grad_scale * q * b;
      grad[j] = g;
      f += j == skip ? 0.0f : g;
    }
    sum += f;
  }
  return sum;
}
