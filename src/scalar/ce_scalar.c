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

/* Pass 2, or reverse KL's (rkl): p_j in place of et_j (kernels.h). */
static inline size_t expsum2_row(size_t n, const float *s, const float *t, const kd_ce_row *row,
                                 float *es, float *et, double *zs, double *zt, int rkl,
                                 double *num, float *p_max) {
  double ds = 0.0, dt = 0.0, dn = 0.0;
  float pm = 0.0f;
  size_t first = n;
  for (size_t j = 0; j < n; j++) {
    if (j % KD_PREFETCH_STRIDE == 0) kd_prefetch_next(row, j);
    if (first == n && s[j] == row->s_max) first = j;
    float a = expf((s[j] - row->s_max) * row->inv_temp);
    float b = expf((t[j] - row->t_max) * row->inv_temp);
    es[j] = a;
    if (rkl) {
      float p = kd_gap_parts_f32(s[j], t[j], row);
      et[j] = p;
      dn += a * p;
      pm = fabsf(p) > pm ? fabsf(p) : pm;
    } else {
      et[j] = b;
    }
    ds += a;
    dt += b;
  }
  *zs = ds;
  *zt = dt;
  if (rkl) {
    *num = dn;
    *p_max = pm;
  }
  return first;
}

size_t kd_f32_expsum2_scalar(size_t n, const float *s, const float *t,
                             const kd_ce_row *row, float *es, float *et,
                             double *zs, double *zt) {
  return expsum2_row(n, s, t, row, es, et, zs, zt, 0, NULL, NULL);
}

size_t kd_f32_expsum2rkl_scalar(size_t n, const float *s, const float *t, const kd_ce_row *row,
                                float *es, float *p, double *zs, double *zt, double *num,
                                float *p_max) {
  return expsum2_row(n, s, t, row, es, p, zs, zt, 1, num, p_max);
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
  double sum = 0.0, dqw = 0.0, dqu = 0.0;
  float u_size = 0.0f;
  for (size_t j = 0; j < n; j++) {
    if (j % KD_PREFETCH_STRIDE == 0) __builtin_prefetch(row->grad_out + j, 1);
    float q = es_q[j] * row->inv_zs, r = et_v[j] * row->inv_zt;
    float d = kd_gap_parts_f32(s[j], t[j], row) * row->inv_temp + row->log_zs_zt;
    float diff = fabsf(d) < KD_EXPM1_BAND ? -q * expm1f(d) : q - r;
    float rcp = 1.0f / (q + row->eps);
    float w = r * rcp, u = (diff + row->eps) * rcp;
    sum += r * logf(q + row->eps);
    dqw += q * w;
    dqu += q * u;
    int u_form = w > KD_U_FORM_W;
    float size = q * (fabsf(diff) + row->eps) * rcp;
    u_size = u_form && size > u_size ? size : u_size;
    es_q[j] = u_form ? -q : q;
    et_v[j] = u_form ? u : w;
  }
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = u_size;
  return sum;
}

/* Pass 4 over stored q_signed and v, or reverse KL's pass 3 (rkl) over es and
 * p: q_j = es_j/zs, v_j = p_j/T + log(zs/zt), every class w-form (kernels.h). */
static inline void cegrad_row(size_t n, const float *q_signed, const float *v, float *grad,
                              const kd_ce_row *row, size_t skip, kd_grad_stats *stats,
                              int rkl) {
  double others = 0.0;
  float max_abs = 0.0f, max_err = 0.0f;
  for (size_t j = 0; j < n; j++) {
    float q = rkl ? q_signed[j] * row->inv_zs : fabsf(q_signed[j]);
    float vj = rkl ? v[j] * row->inv_temp + row->log_zs_zt : v[j];
    int u_form = !rkl && signbit(q_signed[j]);
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

void kd_f32_cegrad_scalar(size_t n, const float *q_signed, const float *v, float *grad,
                          const kd_ce_row *row, size_t skip, kd_grad_stats *stats) {
  cegrad_row(n, q_signed, v, grad, row, skip, stats, 0);
}

void kd_f32_rklgrad_scalar(size_t n, const float *es, const float *p, float *grad,
                           const kd_ce_row *row, size_t skip, kd_grad_stats *stats) {
  cegrad_row(n, es, p, grad, row, skip, stats, 1);
}

/* Short rows (kernels.h), one row per lane with one lane: the steps of
 * src/ce_short_passes.h over the passes above, the row's exps in a stack
 * scratch. Sums stay in double, as in every scalar pass. */
void kd_f32_ceshort_scalar(const kd_ce_short *a, size_t m, float *loss, unsigned char *flag) {
  const size_t n = a->n;
  float es[KD_SHORT_COLS], et[KD_SHORT_COLS], g[KD_SHORT_COLS];
  for (size_t i = 0; i < m; i++) {
    const float *s = a->s + i * a->lds, *t = a->t + i * a->ldt;
    kd_ce_row row;
    flag[i] = KD_ROW_NONFINITE;
    if (kd_f32_rmax2_scalar(n, s, t, &row.s_max, &row.t_max) || row.s_max == -INFINITY ||
        row.t_max == -INFINITY)
      continue;
    row.max_gap = row.t_max - row.s_max;
    flag[i] = KD_ROW_F64;
    if (isinf(row.max_gap) || (a->hot && (row.s_max > 1e31f || row.t_max > 1e31f))) continue;
    row.inv_temp = a->inv_temp;
    row.eps = KD_EPS; /* short rows are LwF's cross-entropy only */
    row.grad_scale = a->grad_scale;
    row.next_s = s;
    row.next_t = t;
    row.grad_out = g;
    double zs, zt;
    size_t argmax = kd_f32_expsum2_scalar(n, s, t, &row, es, et, &zs, &zt);
    row.inv_zs = (float)(1.0 / zs);
    row.inv_zt = (float)(1.0 / zt);
    flag[i] = KD_ROW_OK;
    if (!a->grad) {
      loss[i] = (float)kd_f32_celoss_scalar(n, es, et, &row);
      continue;
    }
    row.log_zs_zt = (float)log(zs / zt);
    float bb = row.max_gap - row.t_max;
    row.max_gap_lo = (row.t_max - (row.max_gap - bb)) + (-row.s_max - bb);
    kd_ce_sums sums;
    loss[i] = (float)kd_f32_cestats_scalar(n, s, t, es, et, &row, &sums);
    row.q_sum = (float)(zs * row.inv_zs); /* sum q (kdloss.c) */
    row.qw_sum = (float)sums.qw;
    row.qu_sum = (float)sums.qu;
    kd_grad_stats st;
    kd_f32_cegrad_scalar(n, es, et, g, &row, zs < 2.0 ? argmax : n, &st);
    if (kd_ce_grad_redo(g, zs < 2.0, argmax, &st, &sums, &row)) {
      flag[i] = KD_ROW_F64;
      continue;
    }
    float *out = a->grad + i * a->ldg;
    for (size_t j = 0; j < n; j++) out[j] = g[j];
  }
}
