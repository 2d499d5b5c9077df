/*
 * Cross-entropy row passes, portable C (libm). The fallback dispatch target and
 * the template the SIMD skeletons (src/ce_passes.h) follow pass for pass;
 * see src/kernels.h.
 *
 * One lane, so sums go straight into double: the SIMD files' float blocks
 * exist to keep many lanes busy, and a single float accumulator over a block
 * of 256 would round at ulp(sum) on every add (~5e-7 of zs, seen in tests).
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
  for (size_t j = 0; j < n; j++) {
    if (j % KD_PREFETCH_STRIDE == 0) kd_prefetch_next(row, j);
    if (first == n && s[j] == row->s_max) first = j;
    es[j] = expf((s[j] - row->s_max) * row->inv_temp);
    et[j] = expf((t[j] - row->t_max) * row->inv_temp);
    ds += es[j];
    dt += et[j];
  }
  *zs = ds;
  *zt = dt;
  return first;
}

double kd_f32_celoss_scalar(size_t n, const float *es, const float *et,
                            const kd_ce_row *row) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    float q = es[j] * row->inv_zs, r = et[j] * row->inv_zt;
    sum += r * logf(q + row->eps);
  }
  return sum;
}

double kd_f32_cestats_scalar(size_t n, const float *s, const float *t, float *es_q,
                             float *et_v, const kd_ce_row *row, kd_ce_sums *sums) {
  double sum = 0.0, dq = 0.0, dqw = 0.0, dqu = 0.0;
  float u_size = 0.0f;
  for (size_t j = 0; j < n; j++) {
    float q = es_q[j] * row->inv_zs, r = et_v[j] * row->inv_zt;
    /* t_j - s_j as a TwoSum pair: exact at any offset between the two. */
    float a = t[j] - s[j], bb = a - t[j];
    float a_lo = (t[j] - (a - bb)) + (-s[j] - bb);
    float d = ((a - row->max_gap) + (a_lo - row->max_gap_lo)) * row->inv_temp + row->log_zs_zt;
    float diff = fabsf(d) < KD_EXPM1_BAND ? -q * expm1f(d) : q - r;
    float rcp = 1.0f / (q + row->eps);
    float w = r * rcp, u = (diff + row->eps) * rcp;
    sum += r * logf(q + row->eps);
    dq += q;
    dqw += q * w;
    dqu += q * u;
    int u_form = w > KD_U_FORM_W;
    float size = q * (fabsf(diff) + row->eps) * rcp;
    u_size = u_form && size > u_size ? size : u_size;
    es_q[j] = u_form ? -q : q;
    et_v[j] = u_form ? u : w;
  }
  sums->q = dq;
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = u_size;
  return sum;
}

void kd_f32_cegrad_scalar(size_t n, const float *q_signed, const float *v, float *grad,
                          const kd_ce_row *row, size_t skip, kd_grad_stats *stats) {
  double others = 0.0;
  float max_abs = 0.0f, max_err = 0.0f;
  for (size_t j = 0; j < n; j++) {
    float q = fabsf(q_signed[j]), vj = v[j];
    int u_form = signbit(q_signed[j]);
    float b = u_form ? vj * row->q_sum - row->qu_sum : row->qw_sum - vj * row->q_sum;
    float size = fabsf(vj) * row->q_sum + (u_form ? fabsf(row->qu_sum) : fabsf(row->qw_sum));
    float g = row->grad_scale * q * b;
    float e = fabsf(row->grad_scale) * q * size;
    grad[j] = g;
    if (j == skip) continue;
    others += g;
    max_abs = fabsf(g) > max_abs ? fabsf(g) : max_abs;
    max_err = e > max_err ? e : max_err;
  }
  stats->others = others;
  stats->max_abs = max_abs;
  stats->max_err = max_err;
}
