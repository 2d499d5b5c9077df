/*
 * ce_passes.h -- the cross-entropy row passes (src/kernels.h has the math),
 * written once over the operation layer and compiled by each
 * src/<isa>/ce_<isa>.c. Pass for pass the structure of src/scalar/ce_scalar.c:
 * the same formulas, with a float sum per KD_LANE_BLOCK elements (passes.h) joining a double.
 *
 * Vectors: KD_CE_U independent accumulators per sum, KD_CE_U vectors per step;
 * the last block's remainder goes through partial loads and stores (nothing
 * past n is touched, no pointer needs alignment). Lanes outside the tail mask
 * are kept out of every sum and maximum explicitly.
 */
#ifndef KD_CE_PASSES_H
#define KD_CE_PASSES_H

#include <math.h>
#include "passes.h"

/* Accumulators per sum. The passes wait on exp and log, not on add latency;
 * only rmax2, loads and maxima, gains from more than one chain, and 2 is
 * where it stops gaining (docs/design.md). */
#define KD_CE_U 2
#define KD_CE_STEP (KD_CE_U * KD_LANES)


int KD_FN(rmax2)(size_t n, const float *s, const float *t, float *s_max, float *t_max) {
  const kd_vf ninf = kd_set1(-INFINITY), inf = kd_set1(INFINITY);
  kd_vf ms[KD_CE_U], mt[KD_CE_U];
  kd_vm bad = kd_none();
  for (int k = 0; k < KD_CE_U; k++) ms[k] = mt[k] = ninf;
  size_t j = 0;
  for (; j + KD_CE_STEP <= n; j += KD_CE_STEP) {
    for (int k = 0; k < KD_CE_U; k++) {
      kd_vf x = kd_load(s + j + k * KD_LANES), y = kd_load(t + j + k * KD_LANES);
      /* !(x < inf) is true for NaN and +inf alike. */
      bad = kd_mor(bad, kd_mor(kd_not_lt(x, inf), kd_not_lt(y, inf)));
      ms[k] = kd_max(x, ms[k]);
      mt[k] = kd_max(y, mt[k]);
    }
  }
  for (; j < n; j += KD_LANES) {
    /* Lanes past n load as -inf: neither a maximum nor flagged. */
    kd_vm m = kd_tail(n - j);
    kd_vf x = kd_load_part_or(s + j, n - j, m, ninf), y = kd_load_part_or(t + j, n - j, m, ninf);
    bad = kd_mor(bad, kd_mor(kd_not_lt(x, inf), kd_not_lt(y, inf)));
    ms[0] = kd_max(x, ms[0]);
    mt[0] = kd_max(y, mt[0]);
  }
  for (int k = 1; k < KD_CE_U; k++) {
    ms[0] = kd_max(ms[0], ms[k]);
    mt[0] = kd_max(mt[0], mt[k]);
  }
  *s_max = kd_hmax(ms[0]);
  *t_max = kd_hmax(mt[0]);
  return kd_mbits(bad) != 0;
}

/* Pass 2, and reverse KL's pass 2 with its gradient (rkl, div_passes.h):
 * there et receives the gap parts p_j = A_j T (kd_gap_parts) instead of the
 * teacher's exps, which are only summed, and *num gets sum_j es_j p_j and
 * *p_max max_j |p_j|. */
static inline __attribute__((always_inline)) size_t
kd_expsum2_row(size_t n, const float *s, const float *t, const kd_ce_row *row, float *es,
               float *et, double *zs, double *zt, int rkl, double *num, float *p_max) {
  const kd_vf smax = kd_set1(row->s_max), tmax = kd_set1(row->t_max);
  const kd_vf it = kd_set1(row->inv_temp);
  double ds = 0.0, dt = 0.0, dn = 0.0;
  /* Starts at 0 and takes values >= 0, as kd_max_m asks. */
  kd_vf pm = kd_zero();
  size_t first = n;
  for (size_t j = 0; j < n;) {
    size_t end = kd_lane_block_end(j, n);
    /* One chain for num: a pass bound by exp leaves its adds time enough,
     * and a second would spill on AVX-512. */
    kd_vf fs[KD_CE_U], ft[KD_CE_U], fn = kd_zero();
    for (int k = 0; k < KD_CE_U; k++) fs[k] = ft[k] = kd_zero();
    for (; j + KD_CE_STEP <= end; j += KD_CE_STEP) {
      for (int k = 0; k < KD_CE_U; k++) {
        size_t i = j + k * KD_LANES;
        if (i % KD_PREFETCH_STRIDE == 0) kd_prefetch_next(row, i);
        kd_vf x = kd_load(s + i), y = kd_load(t + i);
        if (first == n) {
          unsigned e = kd_mbits(kd_eq(x, smax));
          if (e) first = i + (size_t)__builtin_ctz(e);
        }
        kd_vf a = kd_exp(kd_mul(kd_sub(x, smax), it));
        kd_vf b = kd_exp(kd_mul(kd_sub(y, tmax), it));
        kd_store(es + i, a);
        if (rkl) {
          kd_vf p = kd_gap_parts(x, y, row);
          kd_store(et + i, p);
          fn = kd_fmadd(a, p, fn);
          pm = kd_max(kd_abs(p), pm);
        } else {
          kd_store(et + i, b);
        }
        fs[k] = kd_add(fs[k], a);
        ft[k] = kd_add(ft[k], b);
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_vf x = kd_load_part(s + j, end - j, m), y = kd_load_part(t + j, end - j, m);
      if (first == n) {
        unsigned e = kd_mbits(kd_mand(kd_eq(x, smax), m));
        if (e) first = j + (size_t)__builtin_ctz(e);
      }
      /* Lanes past end hold exp(-s_max/T), maybe inf: zeroed. */
      kd_vf a = kd_maskz(m, kd_exp(kd_mul(kd_sub(x, smax), it)));
      kd_vf b = kd_maskz(m, kd_exp(kd_mul(kd_sub(y, tmax), it)));
      kd_store_part(es + j, end - j, m, a);
      if (rkl) {
        kd_vf p = kd_gap_parts(x, y, row);
        kd_store_part(et + j, end - j, m, p);
        fn = kd_fmadd_m(fn, m, a, p);
        pm = kd_max_m(pm, m, kd_abs(p));
      } else {
        kd_store_part(et + j, end - j, m, b);
      }
      fs[0] = kd_add(fs[0], a);
      ft[0] = kd_add(ft[0], b);
    }
    ds += kd_hsum_n(fs, KD_CE_U);
    dt += kd_hsum_n(ft, KD_CE_U);
    if (rkl) dn += kd_hsum(fn);
  }
  *zs = ds;
  *zt = dt;
  if (rkl) {
    *num = dn;
    *p_max = kd_hmax(pm);
  }
  return first;
}

size_t KD_FN(expsum2)(size_t n, const float *s, const float *t, const kd_ce_row *row,
                      float *es, float *et, double *zs, double *zt) {
  return kd_expsum2_row(n, s, t, row, es, et, zs, zt, 0, NULL, NULL);
}

size_t KD_FN(expsum2rkl)(size_t n, const float *s, const float *t, const kd_ce_row *row_in,
                         float *es, float *p, double *zs, double *zt, double *num,
                         float *p_max) {
  /* A local copy: es and p are float * and could alias *row_in's float
   * fields, so reading them there reloads them after every store. */
  const kd_ce_row row = *row_in;
  return kd_expsum2_row(n, s, t, &row, es, p, zs, zt, 1, num, p_max);
}

/* sum_j r_j log(q_j + 1e-5) as 1/zt * sum_j et_j log(es_j/zs + 1e-5): r's
 * constant factor joins once, in double, and q_j + 1e-5 is one FMA. */
double KD_FN(celoss)(size_t n, const float *es, const float *et, const kd_ce_row *row) {
  const kd_vf izs = kd_set1(row->inv_zs);
  const kd_vf eps = kd_set1(row->eps);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_lane_block_end(j, n);
    kd_vf f[KD_CE_U];
    for (int k = 0; k < KD_CE_U; k++) f[k] = kd_zero();
    for (; j + KD_CE_STEP <= end; j += KD_CE_STEP) {
      for (int k = 0; k < KD_CE_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_vf qe = kd_fmadd(kd_load(es + i), izs, eps);
        f[k] = kd_fmadd(kd_load(et + i), kd_log(qe), f[k]);
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_vf qe = kd_fmadd(kd_load_part(es + j, end - j, m), izs, eps);
      f[0] = kd_fmadd_m(f[0], m, kd_load_part(et + j, end - j, m), kd_log(qe));
    }
    sum += kd_hsum_n(f, KD_CE_U);
  }
  return sum * row->inv_zt;
}

/* The per-row constants of passes 3b and 4 as vectors: the same value in
 * every lane (one row across the lanes, here), or one row per lane
 * (src/ce_short_passes.h). */
typedef struct kd_ce_stats_lanes {
  kd_vf inv_zs, inv_zt, max_gap, max_gap_lo, inv_temp, log_zs_zt, eps;
} kd_ce_stats_lanes;
typedef struct kd_ce_grad_lanes {
  kd_vf q_sum, qw_sum, qu_sum, grad_scale;
} kd_ce_grad_lanes;

static inline kd_ce_stats_lanes kd_ce_stats_lanes_of(const kd_ce_row *row) {
  kd_ce_stats_lanes c = {kd_set1(row->inv_zs),     kd_set1(row->inv_zt),
                         kd_set1(row->max_gap),    kd_set1(row->max_gap_lo),
                         kd_set1(row->inv_temp),   kd_set1(row->log_zs_zt),
                         kd_set1(row->eps)};
  return c;
}
static inline kd_ce_grad_lanes kd_ce_grad_lanes_of(const kd_ce_row *row) {
  kd_ce_grad_lanes c = {kd_set1(row->q_sum), kd_set1(row->qw_sum), kd_set1(row->qu_sum),
                        kd_set1(row->grad_scale)};
  return c;
}

/* One vector of pass 3b: the signed q and w-or-u into *q_out, *v_out; adds
 * to the three sums and to the u_size maximum in lanes m. */
static inline void kd_cestats_vec(kd_vf x, kd_vf y, kd_vf e_s, kd_vf e_t,
                                  const kd_ce_stats_lanes *c, kd_vm m, kd_vf *q_out,
                                  kd_vf *v_out, kd_vf *f, kd_vf *fqw, kd_vf *fqu,
                                  kd_vf *u_size) {
  const kd_vf eps = c->eps;
  kd_vf q = kd_mul(e_s, c->inv_zs);
  kd_vf r = kd_mul(e_t, c->inv_zt);
  kd_vf d = kd_fmadd(kd_gap_parts_lanes(x, y, c->max_gap, c->max_gap_lo), c->inv_temp,
                     c->log_zs_zt);
  /* The scalar ternary as a select: the polynomial of NaN or +-inf (masked
   * classes, lanes past n) is computed but never chosen. d^2 < band^2 is
   * |d| < band for every float d, NaN included (rounding is monotone, and
   * with a band of 1/2 the float below it squares to below 1/4), and d^2
   * serves the polynomial too. */
  kd_vf d2 = kd_mul(d, d);
  kd_vm band = kd_lt(d2, kd_set1(KD_EXPM1_BAND * KD_EXPM1_BAND));
  /* r_j - q_j = q_j expm1(d_j): the scalar file's diff negated, so that
   * the band's product and the select are one masked multiply on AVX-512. */
  kd_vf r_q = kd_select(band, kd_mul(q, kd_expm1f_band(d, d2)), kd_sub(r, q));
  /* A true division: a reciprocal estimate needs Newton steps to match it
   * and was no faster (docs/design.md). */
  kd_vf rcp = kd_div(kd_set1(1.0f), kd_add(q, eps));
  kd_vf w = kd_mul(r, rcp), u = kd_mul(kd_sub(eps, r_q), rcp);
  *f = kd_fmadd_m(*f, m, r, kd_log(kd_add(q, eps)));
  *fqw = kd_fmadd_m(*fqw, m, q, w);
  *fqu = kd_fmadd_m(*fqu, m, q, u);
  kd_vm u_form = kd_gt(w, kd_set1(KD_U_FORM_W));
  kd_vf size = kd_mul(kd_mul(q, kd_add(kd_abs(r_q), eps)), rcp);
  *u_size = kd_max_m(*u_size, kd_mand(u_form, m), size);
  /* -q by the sign bit, so a q of +0 becomes -0 and still marks the u-form. */
  *q_out = kd_select(u_form, kd_neg(q), q);
  *v_out = kd_select(u_form, u, w);
}

double KD_FN(cestats)(size_t n, const float *s, const float *t, float *es_q, float *et_v,
                      const kd_ce_row *row, kd_ce_sums *sums) {
  const kd_ce_stats_lanes c = kd_ce_stats_lanes_of(row);
  const float *out = row->grad_out;
  double sum = 0.0, dqw = 0.0, dqu = 0.0;
  kd_vf u_size = kd_zero();
  for (size_t j = 0; j < n;) {
    size_t end = kd_lane_block_end(j, n);
    kd_vf f[KD_CE_U], fqw[KD_CE_U], fqu[KD_CE_U], q, v;
    for (int k = 0; k < KD_CE_U; k++) f[k] = fqw[k] = fqu[k] = kd_zero();
    for (; j + KD_CE_STEP <= end; j += KD_CE_STEP) {
      for (int k = 0; k < KD_CE_U; k++) {
        size_t i = j + k * KD_LANES;
        if (i % KD_PREFETCH_STRIDE == 0) __builtin_prefetch(out + i, 1);
        kd_cestats_vec(kd_load(s + i), kd_load(t + i), kd_load(es_q + i), kd_load(et_v + i),
                       &c, kd_all(), &q, &v, &f[k], &fqw[k], &fqu[k], &u_size);
        kd_store(es_q + i, q);
        kd_store(et_v + i, v);
      }
    }
    for (; j < end; j += KD_LANES) {
      size_t k = end - j;
      kd_vm m = kd_tail(k);
      kd_cestats_vec(kd_load_part(s + j, k, m), kd_load_part(t + j, k, m),
                     kd_load_part(es_q + j, k, m), kd_load_part(et_v + j, k, m), &c, m, &q,
                     &v, &f[0], &fqw[0], &fqu[0], &u_size);
      kd_store_part(es_q + j, k, m, q);
      kd_store_part(et_v + j, k, m, v);
    }
    sum += kd_hsum_n(f, KD_CE_U);
    dqw += kd_hsum_n(fqw, KD_CE_U);
    dqu += kd_hsum_n(fqu, KD_CE_U);
  }
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = kd_hmax(u_size);
  return sum;
}

/* One vector of pass 4: the sign of q_signed picks the form; *e gets the size
 * of the terms the bracket cancels from, scaled like the gradient. With the
 * form's sum S (sum q*u or sum q*w), the bracket is S - v_j * sum q up to
 * the sign, which q_signed carries: in the u-form, -q_j * (S - u_j sum q)
 * = q_j * (u_j sum q - S). Every value rounds as in the two-formula form.
 * w_only: every class w-form (q >= 0), no select. */
static inline __attribute__((always_inline)) kd_vf
kd_cegrad_vec(kd_vf q_signed, kd_vf v, const kd_ce_grad_lanes *c, int w_only, kd_vf *e) {
  kd_vf sum = w_only ? c->qw_sum : kd_select_sign(q_signed, c->qu_sum, c->qw_sum);
  kd_vf sum_abs = w_only ? kd_abs(c->qw_sum)
                         : kd_select_sign(q_signed, kd_abs(c->qu_sum), kd_abs(c->qw_sum));
  kd_vf sq = kd_mul(c->grad_scale, q_signed);
  *e = kd_mul(kd_abs(sq), kd_fmadd(kd_abs(v), c->q_sum, sum_abs));
  return kd_mul(sq, kd_fnmadd(v, c->q_sum, sum));
}

/* Pass 4 over stored q_signed and v (cestats, divstats; src 0), or reverse
 * KL's pass 3 over es and the gap parts p of expsum2rkl (src 1): every class
 * w-form, q_j = es_j/zs and v_j = d_j = p_j/T + log(zs/zt) (div_passes.h). */
static inline __attribute__((always_inline)) void
kd_cegrad_src(kd_vf a, kd_vf b, int rkl, const kd_ce_stats_lanes *c, kd_vf *q, kd_vf *v) {
  *q = rkl ? kd_mul(a, c->inv_zs) : a;
  *v = rkl ? kd_fmadd(b, c->inv_temp, c->log_zs_zt) : b;
}

static inline __attribute__((always_inline)) void
kd_cegrad_row(size_t n, const float *q_signed, const float *v, float *grad, const kd_ce_row *row,
              size_t skip, kd_grad_stats *stats, int rkl) {
  /* The row's constants as local vectors: grad is a float * and could alias
   * *row's float fields, so reading them there reloads them after every store. */
  const kd_ce_grad_lanes c = kd_ce_grad_lanes_of(row);
  const kd_ce_stats_lanes cs = kd_ce_stats_lanes_of(row);
  double others = 0.0;
  /* Both maxima start at 0 and take values >= 0, as kd_max_m asks. */
  kd_vf max_abs = kd_zero(), max_err = kd_zero();
  for (size_t j = 0; j < n;) {
    size_t end = kd_lane_block_end(j, n);
    kd_vf f[KD_CE_U], e, q, vj;
    for (int k = 0; k < KD_CE_U; k++) f[k] = kd_zero();
    for (; j + KD_CE_STEP <= end; j += KD_CE_STEP) {
      for (int k = 0; k < KD_CE_U; k++) {
        size_t i = j + k * KD_LANES;
        kd_cegrad_src(kd_load(q_signed + i), kd_load(v + i), rkl, &cs, &q, &vj);
        kd_vf g = kd_cegrad_vec(q, vj, &c, rkl, &e);
        kd_store(grad + i, g);
        /* Only one vector holds the skipped class: the others need no mask
         * (skip < i wraps to a large skip - i). */
        if (skip - i >= KD_LANES) {
          f[k] = kd_add(f[k], g);
          max_abs = kd_max(kd_abs(g), max_abs);
          max_err = kd_max(e, max_err);
        } else {
          kd_vm keep = kd_all_but(skip - i);
          f[k] = kd_add_m(f[k], keep, g);
          max_abs = kd_max_m(max_abs, keep, kd_abs(g));
          max_err = kd_max_m(max_err, keep, e);
        }
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_cegrad_src(kd_load_part(q_signed + j, end - j, m), kd_load_part(v + j, end - j, m), rkl,
                    &cs, &q, &vj);
      kd_vf g = kd_cegrad_vec(q, vj, &c, rkl, &e);
      kd_store_part(grad + j, end - j, m, g);
      kd_vm keep = kd_mand(m, kd_all_but(skip - j));
      f[0] = kd_add_m(f[0], keep, g);
      max_abs = kd_max_m(max_abs, keep, kd_abs(g));
      max_err = kd_max_m(max_err, keep, e);
    }
    others += kd_hsum_n(f, KD_CE_U);
  }
  stats->others = others;
  stats->max_abs = kd_hmax(max_abs);
  stats->max_err = kd_hmax(max_err);
}

void KD_FN(cegrad)(size_t n, const float *q_signed, const float *v, float *grad,
                   const kd_ce_row *row, size_t skip, kd_grad_stats *stats) {
  kd_cegrad_row(n, q_signed, v, grad, row, skip, stats, 0);
}

void KD_FN(rklgrad)(size_t n, const float *es, const float *p, float *grad, const kd_ce_row *row,
                    size_t skip, kd_grad_stats *stats) {
  kd_cegrad_row(n, es, p, grad, row, skip, stats, 1);
}

#endif /* KD_CE_PASSES_H */
