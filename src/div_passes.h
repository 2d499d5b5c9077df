/*
 * div_passes.h -- the soft cross-entropy, KL, reverse KL and JSD row passes,
 * written once over the operation layer and compiled by each
 * src/<isa>/div_<isa>.c; src/scalar/div_scalar.c is the same pass for pass.
 * Each runs after the cross-entropy passes 1 and 2 (rmax2, expsum2: es, et,
 * zs, zt; see kernels.h), which every softmax distance shares.
 *
 * Soft cross-entropy and KL (klsum): no log per element.
 *   SCE = -sum_j r_j log q_j = (1/zt) sum_j et_j (-y_j) + log zs,
 *         y_j = (s_j - s_max)/T, as log q_j = y_j - log zs and sum r = 1;
 *   KL  = sum_j r_j log(r_j/q_j) = (1/zt) sum_j et_j A_j + log(zs/zt),
 *         A_j = ((t_j - t_max) - (s_j - s_max))/T with t_j - s_j carried as
 *         a TwoSum pair (cestats' d_j without log(zs/zt)).
 * The row loop adds the last term in double. Their gradient is
 * grad_scale * (q_j - r_j), with q_j - r_j = -q_j expm1(d_j) where
 * |d_j| = |log(r_j/q_j)| < KD_EXPM1_BAND, else the plain difference.
 * Outside the band r_j/q_j is beyond e^0.5 or below e^-0.5, so
 * |q_j - r_j| >= 0.39 max(q_j, r_j): the subtraction loses at most 3 bits
 * over q_j's and r_j's own rounding. In the band expm1(d_j) and q_j are
 * relatively accurate, and the element is as accurate as d_j, whose
 * absolute error is ~2^-24 (|A_j| + |log(zs/zt)| + a few): the rounding of
 * A_j and of log(zs/zt), and the float exps' rounding in zs/zt. That is
 * small beside |d_j| unless the row is nearly flat at a high temperature, or
 * its normalisers differ while a class's d_j is tiny. So the pass reports
 * max_j q_j (|A_j| + |log(zs/zt)| + 1) over the band, and the row loop
 * redoes in double the rows where it exceeds the largest |q_j - r_j| by more
 * than KD_COND_LIMIT (kernels.h), as for the cross-entropy.
 *
 * Reverse KL and JSD (divstats) share pass 4 (cegrad) of the cross-entropy:
 * d/dz_k of sum_j q_j f_j(q_j) for these f is q_k (L_k - sum_j q_j L_j)
 * with L = log(q/r) (reverse KL) or L = (1-beta) log(q/M) (JSD: the terms in
 * r/M cancel, as d/dq_j of beta KL(r||M) + (1-beta) KL(q||M) is
 * (1-beta) log(q_j/M_j)). That is cegrad's w-form with v = -L: every class
 * w-form (q stored positive), the dominant class and the conditioning check
 * of the row loop, and the double path as for the cross-entropy.
 *   Reverse KL = -sum_j q_j d_j = -(1/zs) sum_j es_j A_j - log(zs/zt); v = d.
 *   Its gradient's sums are then known from pass 2: sum q = zs/zs and
 *   sum q v = -reverse KL. So the row loop runs expsum2rkl (ce_passes.h:
 *   pass 2 with the numerator sum_j es_j A_j T, storing A_j T in place of
 *   et) and rklgrad (pass 4 forming q_j and v_j = d_j from es_j and A_j T
 *   as it loads them): three passes. Rows with a -inf logit (the numerator
 *   NaN or -inf) rerun pass 2 and take divstats, which applies the masks,
 *   then cegrad.
 *   JSD: lambda_j = log(M_j/q_j), mu_j = log(M_j/r_j), from d_j = log(r_j/q_j),
 *   with x = beta expm1(d) = beta (-expm1(-d)) / exp(-d) for d > 0:
 *     d <= 0:         lambda = log1p(beta expm1(d)),   mu = lambda - d;
 *     d > 0, x < 1:   lambda = log1p(x),               mu = lambda - d;
 *     d > 0, x >= 1:  mu = log1p((1-beta) expm1(-d)), lambda = mu + d.
 *   The gradient needs lambda relatively accurate, and each line gives it
 *   so (the last cancels by at most d/log 2 <= 16x for beta >= 2^-16: the
 *   row loop sends smaller betas to double, KD_JSD_F64_BETA) up to d_j's
 *   own rounding, ~2^-24 (|A_j| + |log(zs/zt)|) absolute. The gradient is
 *   O(beta) where r_j >> q_j, and that error is not: the row loop sends
 *   gradient rows below KD_JSD_F64_GRAD_BETA to double. mu's cancellation costs the
 *   loss only ~2^-24 beta r_j |d_j| absolute. For beta >= 1/8 a cheaper
 *   split (no division for x) holds as well: lambda = log1p(beta expm1(d))
 *   for d < KD_EXPM1_BAND, expm1 of either sign from the band polynomial in
 *   the band, and the last line beyond it, where lambda >= log(1 + (e^0.5 - 1)/8)
 *   makes the cancellation at most 6.4x. One exp (expm1's argument
 *   -|d| <= 0 is in the vector exp's domain) and one log per element:
 *   log1p(x) is Goldberg's log(u) x/(u - 1), u = 1 + x, for x >= -1/2.
 *   Below, 1 + x would cancel x's own rounding (beta near 1 for lambda
 *   where r << q, near 0 for mu where r >> q): there the log takes the same
 *   value as a sum of two positive terms, (1-beta) + beta e^d or
 *   beta + (1-beta) e^-d, in [min(beta, 1-beta), 1], inside the vector
 *   log's domain. The row distance is
 *   sum_j -(beta r_j mu_j + (1-beta) q_j lambda_j), terms of zero mass 0;
 *   v_j = (1-beta) lambda_j.
 * Masks: a class the teacher masks adds 0 (SCE, KL) or makes reverse KL
 * +inf; one the student masks makes SCE and KL +inf where the teacher has
 * mass and adds 0 to reverse KL; JSD takes d = +inf (student masks) or -inf
 * (teacher masks), where the formulas above give its finite terms. Tail
 * lanes load 0 everywhere and are kept out of every sum.
 */
#ifndef KD_DIV_PASSES_H
#define KD_DIV_PASSES_H

#include <math.h>
#include "passes.h"

#define KD_DIV_U 2
#define KD_DIV_STEP (KD_DIV_U * KD_LANES)

/* The term of one vector, without masks: SCE e_t (s_max - x), KL e_t A T,
 * reverse KL e_s A T; times 1/T when scaled (klsum). */
static inline __attribute__((always_inline)) kd_vf
kd_div_val(kd_vf x, kd_vf y, const kd_ce_row *row, int kind, int scaled) {
  kd_vf val = kind == 0 ? kd_sub(kd_set1(row->s_max), x) : kd_gap_parts(x, y, row);
  return scaled ? kd_mul(val, kd_set1(row->inv_temp)) : val;
}

/* Masks, block [j, end): the passes sum their terms unmasked, where a -inf
 * logit makes the block's sum NaN or +-inf (its term is 0 * +-inf, a
 * difference of infinities or e times +inf); such a block's sum is redone
 * here with the masks of div_passes.h, the exps recomputed as expsum2 does
 * (klsum's et may have been overwritten), and the classes that make the
 * distance infinite flagged in *inf. Rows without -inf never come here. */
static inline __attribute__((always_inline)) double
kd_div_masked(size_t j, size_t end, const float *s, const float *t, const kd_ce_row *row,
              int kind, int scaled, kd_vm *inf) {
  const kd_vf ninf = kd_set1(-INFINITY), it = kd_set1(row->inv_temp);
  kd_vf f = kd_zero();
  for (; j < end; j += KD_LANES) {
    size_t k = end - j;
    kd_vm m = kd_tail(k);
    kd_vf x = kd_load_part(s + j, k, m), y = kd_load_part(t + j, k, m);
    kd_vf e = kind == 2 ? kd_exp(kd_mul(kd_sub(x, kd_set1(row->s_max)), it))
                        : kd_exp(kd_mul(kd_sub(y, kd_set1(row->t_max)), it));
    kd_vm sm = kd_eq(x, ninf), tm = kd_eq(y, ninf);
    /* SCE, KL: a class the teacher masks adds 0, one only the student masks
     * is infinite; reverse KL the other way round. */
    f = kd_fmadd_m(f, kd_mand(m, kd_mnot(kd_mor(sm, tm))), e, kd_div_val(x, y, row, kind, scaled));
    kd_vm only = kind == 2 ? kd_mand(tm, kd_gt(x, ninf)) : kd_mand(sm, kd_gt(y, ninf));
    *inf = kd_mor(*inf, kd_mand(m, only));
  }
  return kd_hsum(f);
}

/* A block's sum of terms f, or its masked redo. */
static inline __attribute__((always_inline)) double
kd_div_block_sum(const kd_vf *f, size_t j, size_t end, const float *s, const float *t,
                 const kd_ce_row *row, int kind, int scaled, kd_vm *inf) {
  double b = kd_hsum_n(f, KD_DIV_U);
  return isfinite(b) ? b : kd_div_masked(j, end, s, t, row, kind, scaled, inf);
}

/* One vector of klsum: adds the term to *f in lanes m, returns the gradient
 * (store only). */
static inline __attribute__((always_inline)) kd_vf
kd_klsum_vec(kd_vf x, kd_vf y, kd_vf e_s, kd_vf e_t, const kd_ce_row *row, int kl, int store,
             kd_vm m, kd_vf *f, kd_vf *max_abs, kd_vf *max_err) {
  const kd_vf it = kd_set1(row->inv_temp);
  *f = kd_fmadd_m(*f, m, e_t, kd_div_val(x, y, row, kl, 1));
  if (!store) return kd_zero();
  kd_vf a = kd_mul(kd_gap_parts(x, y, row), it);
  kd_vf q = kd_mul(e_s, kd_set1(row->inv_zs)), r = kd_mul(e_t, kd_set1(row->inv_zt));
  kd_vf d = kd_add(a, kd_set1(row->log_zs_zt));
  /* d^2 < band^2 is |d| < band (see cestats in ce_passes.h); the polynomial
   * of NaN or +-inf (masked classes) is never selected. */
  kd_vf d2 = kd_mul(d, d);
  kd_vm band = kd_lt(d2, kd_set1(KD_EXPM1_BAND * KD_EXPM1_BAND));
  kd_vf diff = kd_select(band, kd_fnmadd(q, kd_expm1f_band(d, d2), kd_zero()), kd_sub(q, r));
  kd_vf g = kd_mul(kd_set1(row->grad_scale), diff);
  kd_vf size = kd_add(kd_abs(a), kd_set1(fabsf(row->log_zs_zt) + 1.0f));
  *max_abs = kd_max_m(*max_abs, m, kd_abs(g));
  *max_err = kd_max_m(*max_err, kd_mand(m, band), kd_mul(q, size));
  return g;
}

static inline __attribute__((always_inline)) double
kd_klsum_row(size_t n, const float *s, const float *t, const float *es, const float *et,
             const kd_ce_row *row, int kl, float *grad, int store, kd_grad_stats *stats) {
  double sum = 0.0;
  kd_vm inf = kd_none();
  /* Both maxima start at 0 and take values >= 0, as kd_max_m asks. */
  kd_vf max_abs = kd_zero(), max_err = kd_zero();
  for (size_t j = 0; j < n;) {
    size_t j0 = j, end = kd_lane_block_end(j, n);
    kd_vf f[KD_DIV_U];
    for (int k = 0; k < KD_DIV_U; k++) f[k] = kd_zero();
    for (; j + KD_DIV_STEP <= end; j += KD_DIV_STEP) {
      for (int k = 0; k < KD_DIV_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_vf g = kd_klsum_vec(kd_load(s + i), kd_load(t + i), kd_load(es + i),
                               kd_load(et + i), row, kl, store, kd_all(), &f[k], &max_abs,
                               &max_err);
        if (store) kd_store(grad + i, g); /* grad may be s or et: this vector is read */
      }
    }
    for (; j < end; j += KD_LANES) {
      size_t k = end - j;
      kd_vm m = kd_tail(k);
      kd_vf g = kd_klsum_vec(kd_load_part(s + j, k, m), kd_load_part(t + j, k, m),
                             kd_load_part(es + j, k, m), kd_load_part(et + j, k, m), row, kl,
                             store, m, &f[0], &max_abs, &max_err);
      if (store) kd_store_part(grad + j, k, m, g);
    }
    sum += kd_div_block_sum(f, j0, end, s, t, row, kl, 1, &inf);
  }
  if (store) {
    stats->others = 0.0;
    stats->max_abs = kd_hmax(max_abs);
    stats->max_err = fabsf(row->grad_scale) * kd_hmax(max_err);
  }
  return kd_mbits(inf) ? INFINITY : sum;
}

double KD_FN(klsum)(size_t n, const float *s, const float *t, const float *es,
                    const float *et, const kd_ce_row *row_in, int kl, float *grad,
                    kd_grad_stats *stats) {
  /* A local copy: grad is a float * and could alias *row_in's float fields,
   * so reading them there reloads them after every store (as in cegrad). */
  const kd_ce_row row = *row_in;
  if (grad)
    return kl ? kd_klsum_row(n, s, t, es, et, &row, 1, grad, 1, stats)
              : kd_klsum_row(n, s, t, es, et, &row, 0, grad, 1, stats);
  return kl ? kd_klsum_row(n, s, t, es, et, &row, 1, NULL, 0, NULL)
            : kd_klsum_row(n, s, t, es, et, &row, 0, NULL, 0, NULL);
}

/* One vector of divloss (kind constant): adds es, et and the term (times T) in lanes m. */
static inline __attribute__((always_inline)) void
kd_divloss_vec(kd_vf x, kd_vf y, const kd_ce_row *row, int kind, kd_vm m, kd_vf *fs, kd_vf *ft,
               kd_vf *f) {
  const kd_vf it = kd_set1(row->inv_temp);
  kd_vf e_s = kd_exp(kd_mul(kd_sub(x, kd_set1(row->s_max)), it));
  kd_vf e_t = kd_exp(kd_mul(kd_sub(y, kd_set1(row->t_max)), it));
  *fs = kd_add_m(*fs, m, e_s);
  *ft = kd_add_m(*ft, m, e_t);
  /* 1/T joins the sum in the row loop. */
  *f = kd_fmadd_m(*f, m, kind == 2 ? e_s : e_t, kd_div_val(x, y, row, kind, 0));
}

static inline __attribute__((always_inline)) double
kd_divloss_row(size_t n, const float *s, const float *t, const kd_ce_row *row, int kind,
               double *zs, double *zt) {
  double sum = 0.0, ds = 0.0, dt = 0.0;
  kd_vm inf = kd_none();
  for (size_t j = 0; j < n;) {
    size_t j0 = j, end = kd_lane_block_end(j, n);
    kd_vf f[KD_DIV_U], fs[KD_DIV_U], ft[KD_DIV_U];
    for (int k = 0; k < KD_DIV_U; k++) f[k] = fs[k] = ft[k] = kd_zero();
    for (; j + KD_DIV_STEP <= end; j += KD_DIV_STEP) {
      for (int k = 0; k < KD_DIV_U; k++) {
        size_t i = j + k * KD_LANES;
        if (i % KD_PREFETCH_STRIDE == 0) kd_prefetch_next(row, i);
        kd_divloss_vec(kd_load(s + i), kd_load(t + i), row, kind, kd_all(), &fs[k], &ft[k],
                       &f[k]);
      }
    }
    for (; j < end; j += KD_LANES) {
      size_t k = end - j;
      kd_vm m = kd_tail(k);
      kd_divloss_vec(kd_load_part(s + j, k, m), kd_load_part(t + j, k, m), row, kind, m, &fs[0],
                     &ft[0], &f[0]);
    }
    sum += kd_div_block_sum(f, j0, end, s, t, row, kind, 0, &inf);
    ds += kd_hsum_n(fs, KD_DIV_U);
    dt += kd_hsum_n(ft, KD_DIV_U);
  }
  *zs = ds;
  *zt = dt;
  return kd_mbits(inf) ? (kind == 2 ? -INFINITY : INFINITY) : sum;
}

double KD_FN(divloss)(size_t n, const float *s, const float *t, const kd_ce_row *row, int kind,
                      double *zs, double *zt) {
  return kind == 0   ? kd_divloss_row(n, s, t, row, 0, zs, zt)
         : kind == 1 ? kd_divloss_row(n, s, t, row, 1, zs, zt)
                     : kd_divloss_row(n, s, t, row, 2, zs, zt);
}

/* log1p(x) for x in [-1, 1): Goldberg's log(u) x / (u - 1), u = 1 + x,
 * whose second factor corrects u's rounding (x where u rounds to 1). Below
 * x = -1/2, u would cancel the rounding of x itself: there log(sum), with
 * sum = 1 + x formed by the caller as a sum of two positive terms. The log
 * sees u in [1/2, 2) or sum in [2^-24, 1]. */
static inline kd_vf kd_log1p_neg(kd_vf x, kd_vf sum) {
  const kd_vf one = kd_set1(1.0f);
  kd_vf u = kd_add(one, x);
  kd_vm low = kd_lt(x, kd_set1(-0.5f));
  kd_vf c = kd_select(low, one, kd_div(x, kd_sub(u, one)));
  kd_vf l = kd_mul(kd_log(kd_select(low, sum, u)), c);
  return kd_select(kd_eq(u, one), x, l);
}

/* One vector of divstats: q and v into *q_out, *v_out; the sums in lanes m. */
static inline __attribute__((always_inline)) void
kd_divstats_vec(kd_vf x, kd_vf y, kd_vf e_s, kd_vf e_t, const kd_ce_row *row, int jsd, kd_vm m,
                kd_vf *q_out, kd_vf *v_out, kd_vf *f, kd_vf *fq, kd_vf *fqv, kd_vf *v_max) {
  const kd_vf ninf = kd_set1(-INFINITY), zero = kd_zero(), it = kd_set1(row->inv_temp);
  kd_vf q = kd_mul(e_s, kd_set1(row->inv_zs));
  kd_vf parts = kd_gap_parts(x, y, row);
  kd_vf d = kd_fmadd(parts, it, kd_set1(row->log_zs_zt));
  kd_vm sm = kd_eq(x, ninf), tm = kd_eq(y, ninf);
  kd_vf v, term;
  if (!jsd) {
    v = kd_select(kd_mor(sm, tm), zero, d);
    term = kd_select(tm, ninf, kd_mul(e_s, kd_mul(parts, it)));
    term = kd_select(sm, zero, term);
  } else {
    const kd_vf beta = kd_set1(row->beta), beta1 = kd_set1(1.0f - row->beta);
    kd_vf r = kd_mul(e_t, kd_set1(row->inv_zt));
    d = kd_select(tm, ninf, kd_select(sm, kd_set1(INFINITY), d));
    kd_vf nd = kd_neg(kd_abs(d)); /* <= 0 */
    kd_vm band = kd_lt(kd_abs(d), kd_set1(KD_EXPM1_BAND)), pos = kd_gt(d, zero), big;
    kd_vf l1;
    kd_vf ex = kd_exp(nd);
    if (jsd == 2) {
      /* beta >= 1/8: expm1(d) of either sign from the band polynomial in
       * the band; big: d beyond the band, where mu goes through log1p. */
      kd_vf e_out = kd_sub(ex, kd_set1(1.0f));
      big = kd_mand(pos, kd_not_lt(kd_abs(d), kd_set1(KD_EXPM1_BAND)));
      kd_vf e_in = kd_select(band, kd_expm1f_band(d, kd_mul(d, d)), e_out);
      l1 = kd_select(big, kd_mul(beta1, e_out), kd_mul(beta, e_in));
    } else {
      kd_vf e = kd_select(band, kd_expm1f_band(nd, kd_mul(nd, nd)), kd_sub(ex, kd_set1(1.0f)));
      /* big: d > 0 and beta expm1(d) >= 1, where mu goes through log1p. */
      kd_vf x = kd_div(kd_mul(beta, kd_neg(e)), kd_add(e, kd_set1(1.0f)));
      big = kd_mand(pos, kd_not_lt(x, kd_set1(1.0f)));
      l1 = kd_select(big, kd_mul(beta1, e), kd_select(pos, x, kd_mul(beta, e)));
    }
    /* 1 + l1 below 1/2 happens only beyond the band (e there is ex - 1): as
     * M/r = beta + (1-beta) e^-d (big) or M/q = (1-beta) + beta e^d. */
    l1 = kd_log1p_neg(l1, kd_select(big, kd_fmadd(beta1, ex, beta), kd_fmadd(beta, ex, beta1)));
    kd_vf lambda = kd_select(big, kd_add(l1, d), l1);
    kd_vf mu = kd_select(big, l1, kd_sub(l1, d));
    kd_vm q0 = kd_eq(q, zero);
    kd_vf r_mu = kd_select(kd_eq(r, zero), zero, kd_mul(r, mu));
    kd_vf q_lambda = kd_select(q0, zero, kd_mul(q, lambda));
    term = kd_neg(kd_fmadd(beta, r_mu, kd_mul(beta1, q_lambda)));
    v = kd_select(q0, zero, kd_mul(beta1, lambda));
  }
  *f = kd_add_m(*f, m, term);
  *fq = kd_add_m(*fq, m, q);
  *fqv = kd_fmadd_m(*fqv, m, q, v);
  *v_max = kd_max_m(*v_max, m, kd_abs(v));
  *q_out = q;
  *v_out = v;
}

static inline __attribute__((always_inline)) double
kd_divstats_row(size_t n, const float *s, const float *t, float *es_q, float *et_v,
                const kd_ce_row *row, int jsd, kd_ce_sums *sums) {
  double sum = 0.0, dq = 0.0, dqv = 0.0;
  kd_vf v_max = kd_zero();
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    kd_vf f[KD_DIV_U], fq[KD_DIV_U], fqv[KD_DIV_U], q, v;
    for (int k = 0; k < KD_DIV_U; k++) f[k] = fq[k] = fqv[k] = kd_zero();
    for (; j + KD_DIV_STEP <= end; j += KD_DIV_STEP) {
      for (int k = 0; k < KD_DIV_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_divstats_vec(kd_load(s + i), kd_load(t + i), kd_load(es_q + i), kd_load(et_v + i),
                        row, jsd, kd_all(), &q, &v, &f[k], &fq[k], &fqv[k], &v_max);
        kd_store(es_q + i, q);
        kd_store(et_v + i, v);
      }
    }
    for (; j < end; j += KD_LANES) {
      size_t k = end - j;
      kd_vm m = kd_tail(k);
      kd_divstats_vec(kd_load_part(s + j, k, m), kd_load_part(t + j, k, m),
                      kd_load_part(es_q + j, k, m), kd_load_part(et_v + j, k, m), row, jsd, m,
                      &q, &v, &f[0], &fq[0], &fqv[0], &v_max);
      kd_store_part(es_q + j, k, m, q);
      kd_store_part(et_v + j, k, m, v);
    }
    sum += kd_hsum_n(f, KD_DIV_U);
    dq += kd_hsum_n(fq, KD_DIV_U);
    dqv += kd_hsum_n(fqv, KD_DIV_U);
  }
  sums->q = dq;
  sums->qw = dqv;
  sums->qu = 0.0;
  sums->u_size = kd_hmax(v_max);
  return sum;
}

double KD_FN(divstats)(size_t n, const float *s, const float *t, float *es_q, float *et_v,
                       const kd_ce_row *row, int jsd, kd_ce_sums *sums) {
  if (!jsd) return kd_divstats_row(n, s, t, es_q, et_v, row, 0, sums);
  return row->beta >= 0.125f ? kd_divstats_row(n, s, t, es_q, et_v, row, 2, sums)
                             : kd_divstats_row(n, s, t, es_q, et_v, row, 1, sums);
}

#endif /* KD_DIV_PASSES_H */
