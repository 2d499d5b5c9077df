/*
 * jsd_passes.h -- the direct JSD row pass (jsdfast), written once over the
 * operation layer and compiled by each src/<isa>/div_<isa>.c;
 * src/scalar/div_scalar.c is the same pass. It runs after passes 1 and 2
 * (rmax2, expsum2) in place of divstats (div_passes.h) for the rows it can
 * do accurately, and tells the row loop which those are.
 *
 * With y_j = (s_j - s_max)/T, z_j = (t_j - t_max)/T, lz = log(zs/zt),
 * c1 = beta zs/zt, c2 = 1 - beta and M'_j = zs M_j = c1 et_j + c2 es_j:
 *   lambda_j = log(M_j/q_j) = L_j - y_j,  L_j = log M'_j,
 *   mu_j = log(M_j/r_j) = L_j - zl_j,     zl_j = z_j + lz,
 *   zs term_j = zs (beta r_j mu_j + (1-beta) q_j lambda_j)
 *             = M'_j L_j - (c1 et_j zl_j + c2 es_j y_j)   (the latter: bc_j),
 * and the row distance is -sum_j term_j. One log per element, no exp, no
 * division. Each term is <= 0 (log x <= x - 1), so the float sum loses only
 * rounding of its own size, at most 2^-24 per addition a lane makes in a
 * block (KD_BLOCK / 4 / KD_JSD_U = 32: 1.9e-6 relative).
 * Loss error. To first order, in units of 2^-24 and of zs: the log's ulp,
 * 2.02 M'_j |L_j|; the products' and the sum's rounding in M'_j, 1.5 M'_j
 * (they move the loss by -sum dM'_j); the exps' errors and c1's rounding,
 * 1.5 in all (the loss's derivative in q_j is -(1-beta) lambda_j: a relative
 * error of the exps moves it only by their q-weighted mean); the rounding
 * of y, zl (with lz's) and bc, 2.5 (c1 et_j |zl_j| + c2 es_j |y_j|)
 * + 1.5 c1 et_j |lz|. With sum_j M'_j |L_j| <= -sum bc + zs (H_beta
 * + beta max(lz, 0) + max(log(c1 + c2), 0)) (L_j >= log(c1 et_j) and
 * log(c2 es_j), <= log(c1 + c2); H_beta the binary entropy of beta) and
 * sum_j (c1 et_j |zl_j| + c2 es_j |y_j|) <= -sum bc + 2 beta zs max(lz, 0)
 * (y, z <= 0), the loss errs by at most 2^-24 times
 *   E = 5 P + 3 H_beta + 12 beta max(lz, 0) + 3 max(log(c1 + c2), 0)
 *       + 2 beta |lz| + 4,   P = -sum_j bc_j / zs.
 * Unlike divstats' this does not shrink with the distance: the row loop
 * keeps the row when E is within the contract (1e-6 absolute, 6e-6
 * relative, leaving room for the sum), else reruns it through divstats.
 * Gradient error (w-form of cegrad, v_j = (1-beta) lambda_j): lambda_j errs
 * by at most 3.6 (w_j + 1) 2^-24, w_j = |lambda_j| - y_j (the log's ulp of
 * L_j <= |lambda_j| + |y_j|, y's and lambda's rounding, ~2.5 from M'_j);
 * the part common to all classes cancels in grad_j = scale q_j (sum_k q_k
 * v_k - v_j sum q), the rest moves it by at most |scale| (1-beta) 3.6
 * 2^-24 q_j (w_j + 1 + e), e = sum_k q_k (w_k + 1). The row loop takes the
 * largest over j (when the most probable class is minus the sum of the
 * others, q_j <= 1 - q_max for every other j) against the largest gradient,
 * as it does cegrad's own rounding, and reruns a row that needs more
 * through divstats: nearly identical rows, whose gradient is ~d while
 * lambda's error is not; rows whose supports barely meet, whose gradient
 * vanishes; and, since the gradient is ~beta (1-beta) d, small betas (the
 * row loop does not try the gradient below KD_JSD_FAST_BETA).
 * Masks and underflow: y and zl are clamped at KD_JSD_FLOOR (a class whose
 * exp is 0, so the products are 0 and lambda stays finite); M' below
 * FLT_MIN (both exps 0, or c1 et_j under FLT_MIN) is raised to FLT_MIN for
 * the log, whose product with M' then stays ~0. v_j of a class with q_j = 0
 * is finite and never used (cegrad multiplies by q_j). Tail lanes are kept
 * out of every sum and maximum.
 */
#ifndef KD_JSD_PASSES_H
#define KD_JSD_PASSES_H

#include <float.h>
#include <math.h>
#include "passes.h"

#define KD_JSD_U 2
#define KD_JSD_STEP (KD_JSD_U * KD_LANES)

/* The per-row constants as vectors. */
typedef struct kd_jsd_lanes {
  kd_vf c1, c2, lz, s_max, t_max, inv_temp, inv_zs, floor, least, one;
} kd_jsd_lanes;

/* Accumulators of one block: u vectors each. */
typedef struct kd_jsd_acc {
  kd_vf f[KD_JSD_U], bc[KD_JSD_U], q[KD_JSD_U], qv[KD_JSD_U], qw[KD_JSD_U];
} kd_jsd_acc;

/* One vector of jsdfast: the sums of acc slot k in lanes m; with the
 * gradient q and v into *q_out, *v_out and the maxima of q |lambda| and q w. */
static inline __attribute__((always_inline)) void
kd_jsdfast_vec(kd_vf x, kd_vf y, kd_vf e_s, kd_vf e_t, const kd_jsd_lanes *c, int grad, kd_vm m,
               kd_jsd_acc *acc, int k, kd_vf *q_out, kd_vf *v_out, kd_vf *ql_max,
               kd_vf *qw_max, kd_vf *qw_top) {
  kd_vf a = kd_mul(c->c1, e_t), b = kd_mul(c->c2, e_s), mm = kd_add(a, b);
  kd_vf lm = kd_log(kd_max(mm, c->least));
  kd_vf ys = kd_max(kd_mul(kd_sub(x, c->s_max), c->inv_temp), c->floor);
  kd_vf zl = kd_max(kd_fmadd(kd_sub(y, c->t_max), c->inv_temp, c->lz), c->floor);
  kd_vf bc = kd_fmadd(a, zl, kd_mul(b, ys));
  acc->f[k] = kd_add_m(acc->f[k], m, kd_fmsub(mm, lm, bc));
  acc->bc[k] = kd_add_m(acc->bc[k], m, bc);
  if (!grad) return;
  kd_vf q = kd_mul(e_s, c->inv_zs), lambda = kd_sub(lm, ys);
  kd_vf ql = kd_mul(q, kd_abs(lambda)), qw = kd_fnmadd(q, ys, ql);
  kd_vf v = kd_mul(c->c2, lambda);
  acc->q[k] = kd_add_m(acc->q[k], m, q);
  acc->qv[k] = kd_fmadd_m(acc->qv[k], m, q, v);
  acc->qw[k] = kd_add_m(acc->qw[k], m, qw);
  *ql_max = kd_max_m(*ql_max, m, ql);
  /* Apart: the classes with es = 1 (the most probable). */
  kd_vm top = kd_eq(e_s, c->one);
  *qw_max = kd_max_m(*qw_max, kd_mand(m, kd_mnot(top)), qw);
  *qw_top = kd_max_m(*qw_top, kd_mand(m, top), qw);
  *q_out = q;
  *v_out = v;
}

static inline __attribute__((always_inline)) double
kd_jsdfast_row(size_t n, const float *s, const float *t, float *es_q, float *et_v,
               const kd_ce_row *row, float c1, int grad, kd_jsd_sums *sums) {
  const kd_jsd_lanes c = {kd_set1(c1),           kd_set1(1.0f - row->beta),
                          kd_set1(row->log_zs_zt), kd_set1(row->s_max),
                          kd_set1(row->t_max),   kd_set1(row->inv_temp),
                          kd_set1(row->inv_zs),  kd_set1(KD_JSD_FLOOR),
                          kd_set1(FLT_MIN),      kd_set1(1.0f)};
  double sum = 0.0, dbc = 0.0, dq = 0.0, dqv = 0.0, dqw = 0.0;
  /* Both maxima start at 0 and take values >= 0, as kd_max_m asks. */
  kd_vf ql_max = kd_zero(), qw_max = kd_zero(), qw_top = kd_zero(), q, v;
  for (size_t j = 0; j < n;) {
    size_t end = kd_lane_block_end(j, n);
    kd_jsd_acc acc;
    for (int k = 0; k < KD_JSD_U; k++)
      acc.f[k] = acc.bc[k] = acc.q[k] = acc.qv[k] = acc.qw[k] = kd_zero();
    for (; j + KD_JSD_STEP <= end; j += KD_JSD_STEP) {
      for (int k = 0; k < KD_JSD_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_jsdfast_vec(kd_load(s + i), kd_load(t + i), kd_load(es_q + i), kd_load(et_v + i), &c,
                       grad, kd_all(), &acc, k, &q, &v, &ql_max, &qw_max, &qw_top);
        if (!grad) continue;
        kd_store(es_q + i, q);
        kd_store(et_v + i, v);
      }
    }
    for (; j < end; j += KD_LANES) {
      size_t k = end - j;
      kd_vm m = kd_tail(k);
      kd_jsdfast_vec(kd_load_part(s + j, k, m), kd_load_part(t + j, k, m),
                     kd_load_part(es_q + j, k, m), kd_load_part(et_v + j, k, m), &c, grad, m,
                     &acc, 0, &q, &v, &ql_max, &qw_max, &qw_top);
      if (!grad) continue;
      kd_store_part(es_q + j, k, m, q);
      kd_store_part(et_v + j, k, m, v);
    }
    sum += kd_hsum_n(acc.f, KD_JSD_U);
    dbc += kd_hsum_n(acc.bc, KD_JSD_U);
    if (!grad) continue;
    dq += kd_hsum_n(acc.q, KD_JSD_U);
    dqv += kd_hsum_n(acc.qv, KD_JSD_U);
    dqw += kd_hsum_n(acc.qw, KD_JSD_U);
  }
  sums->bc = dbc;
  sums->q = dq;
  sums->qv = dqv;
  sums->qw = dqw;
  sums->ql_max = grad ? kd_hmax(ql_max) : 0.0f;
  sums->qw_max = grad ? kd_hmax(qw_max) : 0.0f;
  sums->qw_top = grad ? kd_hmax(qw_top) : 0.0f;
  return sum;
}

double KD_FN(jsdfast)(size_t n, const float *s, const float *t, float *es_q, float *et_v,
                      const kd_ce_row *row, float c1, int grad, kd_jsd_sums *sums) {
  return grad ? kd_jsdfast_row(n, s, t, es_q, et_v, row, c1, 1, sums)
              : kd_jsdfast_row(n, s, t, es_q, et_v, row, c1, 0, sums);
}

#endif /* KD_JSD_PASSES_H */
