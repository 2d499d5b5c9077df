/*
 * ce_short_passes.h -- cross-entropy over short rows, KD_LANES rows at a
 * time, one row per lane (src/kernels.h, "Short rows"). Compiled by each
 * src/<isa>/ce_<isa>.c after ce_passes.h, whose per-vector formulas of
 * passes 3b and 4 it applies with one row's constants per lane. Step for
 * step kd_f32_ceshort_scalar (src/scalar/ce_scalar.c), which runs the same
 * passes and the same checks one row at a time.
 *
 * The k rows of a group are copied column by column into a stack buffer
 * (column j of the group is one vector), so every pass reads whole vectors
 * and the row's maxima, sums and flags stay in registers. Lanes past k hold
 * zeros, a valid row whose results nobody reads. In place, the whole group
 * is read before any gradient is written, and only rows flagged OK are.
 */
#ifndef KD_CE_SHORT_PASSES_H
#define KD_CE_SHORT_PASSES_H

#ifndef KD_CE_PASSES_H
#error "include ce_passes.h before ce_short_passes.h"
#endif

/* loss[i], flag[i] of the group's rows i < k. */
static inline void kd_ceshort_report(size_t k, kd_vf f, kd_vm bad, kd_vm f64, float *loss,
                                     unsigned char *flag) {
  kd_store_part(loss, k, kd_tail(k), f);
  unsigned b = kd_mbits(bad), d = kd_mbits(f64);
  for (size_t i = 0; i < k; i++)
    flag[i] = b >> i & 1 ? KD_ROW_NONFINITE : d >> i & 1 ? KD_ROW_F64 : KD_ROW_OK;
}

/* Rows [0, k) of the call, k <= KD_LANES. */
static void kd_ceshort_group(const kd_ce_short *a, size_t k, float *loss, unsigned char *flag) {
  enum { L = KD_LANES };
  const size_t n = a->n;
  /* Column j at [j * L]. xs, xt: the logits, then xs the gradient; es, et:
   * the exps, then the signed q and w-or-u (as pass 3b leaves them). */
  float xs[KD_SHORT_COLS * L], xt[KD_SHORT_COLS * L];
  float es[KD_SHORT_COLS * L], et[KD_SHORT_COLS * L];
  const kd_vf ninf = kd_set1(-INFINITY), inf = kd_set1(INFINITY);

  /* Pass 1: the copy, the maxima, NaN and +inf. */
  kd_vf s_max = ninf, t_max = ninf;
  kd_vm bad = kd_none();
  for (size_t j = 0; j < n; j++) {
    kd_vf x = kd_gather(a->s + j, a->lds, k), y = kd_gather(a->t + j, a->ldt, k);
    kd_store(xs + j * L, x);
    kd_store(xt + j * L, y);
    bad = kd_mor(bad, kd_mor(kd_not_lt(x, inf), kd_not_lt(y, inf)));
    s_max = kd_max(x, s_max);
    t_max = kd_max(y, t_max);
  }
  bad = kd_mor(bad, kd_mor(kd_eq(s_max, ninf), kd_eq(t_max, ninf)));
  /* The double path's rows of kdloss.c, decided from the maxima alone: a gap
   * beyond FLT_MAX, or above T = 1 a maximum past 1e31, the only rows whose
   * spread can overflow (kdloss.c checks the spread itself; here the row
   * just goes to double). */
  kd_vf gap = kd_sub(t_max, s_max);
  kd_vm f64 = kd_not_lt(kd_abs(gap), inf);
  if (a->hot) {
    const kd_vf big = kd_set1(1e31f);
    f64 = kd_mor(f64, kd_mor(kd_gt(s_max, big), kd_gt(t_max, big)));
  }

  /* Pass 2: the exps, their sums, and the first j with s_j == s_max. */
  const kd_vf it = kd_set1(a->inv_temp), none = kd_set1((float)n);
  kd_vf zs = kd_zero(), zt = kd_zero(), argmax = none;
  for (size_t j = 0; j < n; j++) {
    kd_vf x = kd_load(xs + j * L), y = kd_load(xt + j * L);
    kd_vm first = kd_mand(kd_eq(x, s_max), kd_eq(argmax, none));
    argmax = kd_select(first, kd_set1((float)j), argmax);
    kd_vf p = kd_exp(kd_mul(kd_sub(x, s_max), it));
    kd_vf q = kd_exp(kd_mul(kd_sub(y, t_max), it));
    kd_store(es + j * L, p);
    kd_store(et + j * L, q);
    zs = kd_add(zs, p);
    zt = kd_add(zt, q);
  }
  const kd_vf one = kd_set1(1.0f), eps = kd_set1(KD_EPS);
  const kd_vf inv_zs = kd_div(one, zs), inv_zt = kd_div(one, zt);
  kd_vf f = kd_zero();

  if (!a->grad) { /* pass 3a */
    for (size_t j = 0; j < n; j++) {
      kd_vf q = kd_mul(kd_load(es + j * L), inv_zs), r = kd_mul(kd_load(et + j * L), inv_zt);
      f = kd_fmadd(r, kd_log(kd_add(q, eps)), f);
    }
    kd_ceshort_report(k, f, bad, f64, loss, flag);
    return;
  }

  /* Pass 3b. log(zs/zt) as the log of the ratio at most 1, in [1/n, 1]:
   * inside kd_log's domain. The gap as a TwoSum pair, as kdloss.c forms it. */
  kd_vm s_less = kd_lt(zs, zt);
  kd_vf log_ratio = kd_log(kd_div(kd_select(s_less, zs, zt), kd_select(s_less, zt, zs)));
  kd_vf bb = kd_sub(gap, t_max);
  kd_vf gap_lo = kd_add(kd_sub(t_max, kd_sub(gap, bb)), kd_sub(kd_neg(s_max), bb));
  const kd_ce_stats_lanes c = {inv_zs, inv_zt, gap, gap_lo, it,
                               kd_select(s_less, log_ratio, kd_neg(log_ratio)), eps};
  kd_vf fqw = kd_zero(), fqu = kd_zero(), u_size = kd_zero();
  for (size_t j = 0; j < n; j++) {
    kd_vf q, v;
    kd_cestats_vec(kd_load(xs + j * L), kd_load(xt + j * L), kd_load(es + j * L),
                   kd_load(et + j * L), &c, kd_all(), &q, &v, &f, &fqw, &fqu, &u_size);
    kd_store(es + j * L, q);
    kd_store(et + j * L, v);
  }

  /* Pass 4. Where q_max > 1/2 (zs < 2), the most probable class gets minus
   * the sum of the others (kernels.h). */
  /* sum q as zs / zs (kdloss.c). */
  const kd_ce_grad_lanes g = {kd_mul(zs, inv_zs), fqw, fqu, kd_set1(a->grad_scale)};
  const kd_vm dominant = kd_lt(zs, kd_set1(2.0f));
  kd_vf others = kd_zero(), max_abs = kd_zero(), max_err = kd_zero();
  for (size_t j = 0; j < n; j++) {
    kd_vf e, gj = kd_cegrad_vec(kd_load(es + j * L), kd_load(et + j * L), &g, 0, &e);
    kd_store(xs + j * L, gj);
    kd_vm keep = kd_mnot(kd_mand(dominant, kd_eq(argmax, kd_set1((float)j))));
    others = kd_add_m(others, keep, gj);
    max_abs = kd_max_m(max_abs, keep, kd_abs(gj));
    max_err = kd_max_m(max_err, keep, e);
  }
  const kd_vf top = kd_neg(others);
  max_abs = kd_max_m(max_abs, dominant, kd_abs(top));
  /* The conditioning check of kdloss.c, per lane. */
  kd_vf size = kd_mul(kd_mul(kd_abs(g.grad_scale), u_size), g.q_sum);
  size = kd_max(max_err, size);
  f64 = kd_mor(f64, kd_gt(size, kd_mul(kd_set1(KD_COND_LIMIT), max_abs)));

  unsigned ok = kd_mbits(kd_tail(k)) & ~kd_mbits(kd_mor(bad, f64));
  if (ok) {
    for (size_t j = 0; j < n; j++) {
      kd_vm is_top = kd_mand(dominant, kd_eq(argmax, kd_set1((float)j)));
      kd_scatter(a->grad + j, a->ldg, ok, kd_select(is_top, top, kd_load(xs + j * L)));
    }
  }
  kd_ceshort_report(k, f, bad, f64, loss, flag);
}

void KD_FN(ceshort)(const kd_ce_short *a, size_t m, float *loss, unsigned char *flag) {
  for (size_t i = 0; i < m; i += KD_LANES) {
    kd_ce_short group = *a;
    group.s = a->s + i * a->lds;
    group.t = a->t + i * a->ldt;
    group.grad = a->grad ? a->grad + i * a->ldg : NULL;
    kd_ceshort_group(&group, m - i < KD_LANES ? m - i : KD_LANES, loss + i, flag + i);
  }
}

#endif /* KD_CE_SHORT_PASSES_H */
