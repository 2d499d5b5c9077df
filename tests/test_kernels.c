/*
 * Every pass of every SIMD ISA this CPU and build support (the cross-entropy's,
 * MSE's and the family's: divloss, klsum, divstats, expsum2rkl, rklgrad,
 * jsdfast, BCE), called
 * directly and compared with the same pass of the scalar table on the same
 * inputs, in the manner of XNNPACK's microkernel testers: lengths n = 1 ..
 * 3W + 1 around the vector width W, then a few long rows that cross
 * KD_BLOCK; random, near
 * (teacher ~ student: the u-form and expm1 path), masked (-inf classes) and
 * tied (the student's maximum repeated: the first argmax) rows. Outputs sit
 * between sentinel guards, and every pointer is tried aligned and one float
 * off. A failure names the pass, the ISA, n, the inputs, the seed and the
 * index. The bounds are TK_K_* in tolerance.h.
 *
 * The inputs of a later pass are made as src/kdloss.c makes them, by the
 * scalar table's earlier passes, so each pass is judged on its own.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels.h"
#include "rng.h"
#include "tolerance.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct simd_isa {
  kd_isa isa;
  size_t lanes;
} simd_isas[] = {{KD_ISA_AVX2, 8}, {KD_ISA_AVX512, 16}, {KD_ISA_NEON, 4}};

/* Long rows: either side of one and two blocks, and odd lengths past them. */
static const size_t long_ns[] = {255, 256, 257, 511, 512, 513, 1000, 4097};

typedef enum row_inputs { RANDOM, NEAR, MASKED, TIED, NONFINITE, ROW_INPUTS_COUNT } row_inputs;
static const char *const inputs_names[ROW_INPUTS_COUNT] = {"random", "near", "masked", "tied",
                                                           "nonfinite"};

/* One comparison's identity, for the failure message. */
typedef struct where {
  const char *pass, *isa, *inputs;
  size_t n, misalign;
  uint64_t seed;
} where;

static void fail_at(const where *w, const char *what, size_t j, double got, double want,
                    double tol) {
  fail_msg("pass %s, isa %s, n=%zu, inputs %s, seed %llu, misalign %zu: %s[%zu] = %.9g, "
           "scalar %.9g, error %.3g > tolerance %.3g",
           w->pass, w->isa, w->n, w->inputs, (unsigned long long)w->seed, w->misalign, what, j,
           got, want, fabs(got - want), tol);
}

/* The largest error seen in the current pass, as a fraction of its tolerance. */
static double worst;

/* |got - want| <= tol; equal values (infinities, exact zeros) always pass. */
static void near_enough(const where *w, const char *what, size_t j, double got, double want,
                        double tol) {
  if (got == want) return;
  if (!(fabs(got - want) <= tol)) fail_at(w, what, j, got, want, tol);
  worst = fmax(worst, fabs(got - want) / tol);
}

/* A buffer of n floats between TK_K_GUARD sentinels on either side, starting
 * misalign floats past an aligned address. */
#define TK_K_GUARD 32
static const uint32_t sentinel = 0x7fc0deadu; /* a quiet NaN no kernel computes */

typedef struct guarded {
  float *base, *p;
  size_t n, misalign;
} guarded;

static guarded guarded_new(size_t n, size_t misalign) {
  guarded g = {NULL, NULL, n, misalign};
  size_t floats = n + misalign + 2 * TK_K_GUARD;
  g.base = malloc(floats * sizeof(float));
  assert_non_null(g.base);
  for (size_t k = 0; k < floats; k++) memcpy(g.base + k, &sentinel, sizeof sentinel);
  g.p = g.base + TK_K_GUARD + misalign;
  return g;
}

static guarded guarded_copy(const float *x, size_t n, size_t misalign) {
  guarded g = guarded_new(n, misalign);
  memcpy(g.p, x, n * sizeof(float));
  return g;
}

/* No write outside [0, n). */
static void guards_intact(const where *w, const char *what, const guarded *g) {
  size_t floats = g->n + g->misalign + 2 * TK_K_GUARD;
  for (size_t k = 0; k < floats; k++) {
    if (g->base + k == g->p) k += g->n;
    if (k < floats && memcmp(g->base + k, &sentinel, sizeof sentinel) != 0)
      fail_msg("pass %s, isa %s, n=%zu, inputs %s, seed %llu, misalign %zu: %s written at "
               "index %td, outside [0, n)",
               w->pass, w->isa, w->n, w->inputs, (unsigned long long)w->seed, w->misalign, what,
               (g->base + k) - g->p);
  }
}

/* One row of student and teacher logits, and the constants the row loop of
 * src/kdloss.c derives from them with the scalar table's passes 1 to 3b. */
typedef struct row_case {
  where at;
  float *s, *t;
  float temperature;
  kd_ce_row row;
  size_t argmax;
  double zs, zt;
  float *es, *et;    /* pass 2's exps */
  float *q, *v;      /* pass 3b's signed q and w or u */
  kd_ce_sums sums;
  double sum3b;      /* and its return value */
} row_case;

/* The es and et scratch of a pass that overwrites them with q and v, one
 * copy each for the scalar table ([0]) and the SIMD one ([1]). */
typedef struct qv_copies {
  guarded q[2], v[2];
} qv_copies;

static qv_copies qv_copies_of(const row_case *c) {
  qv_copies b;
  for (int i = 0; i < 2; i++) {
    b.q[i] = guarded_copy(c->es, c->at.n, c->at.misalign);
    b.v[i] = guarded_copy(c->et, c->at.n, c->at.misalign);
  }
  return b;
}

static void qv_copies_free(qv_copies *b) {
  for (int i = 0; i < 2; i++) {
    free(b->q[i].base);
    free(b->v[i].base);
  }
}

static void fill(row_case *c, row_inputs inputs) {
  uint64_t rng = c->at.seed;
  size_t n = c->at.n;
  float scale = 3.0f;
  for (size_t j = 0; j < n; j++) {
    double a = tk_normal(&rng), b = tk_normal(&rng);
    c->s[j] = (float)(scale * a);
    c->t[j] = (float)(scale * (inputs == NEAR || inputs == TIED ? a + 1e-3 * b : b));
  }
  size_t keep = (size_t)(tk_uniform(&rng) * (double)n);
  if (inputs == MASKED)
    for (size_t j = 0; j < n; j++) {
      if (j == keep) continue;
      if (tk_uniform(&rng) < 0.33) c->s[j] = -INFINITY;
      if (tk_uniform(&rng) < 0.33) c->t[j] = -INFINITY;
    }
  if (inputs == TIED) /* the maximum at keep and at two later places */
    for (size_t j = keep; j < n; j += 1 + n / 3) c->s[j] = 4.0f * scale;
  if (inputs == NONFINITE) {
    if (tk_next(&rng) % 2) c->s[keep] = NAN;
    else c->t[keep] = INFINITY;
  }
}

static row_case case_new(const kd_kernels *scalar, const char *pass, const char *isa, size_t n,
                         row_inputs inputs, uint64_t seed) {
  row_case c;
  memset(&c, 0, sizeof c);
  c.at = (where){pass, isa, inputs_names[inputs], n, 0, seed};
  c.s = malloc(n * sizeof(float));
  c.t = malloc(n * sizeof(float));
  c.es = malloc(n * sizeof(float));
  c.et = malloc(n * sizeof(float));
  c.q = malloc(n * sizeof(float));
  c.v = malloc(n * sizeof(float));
  assert_true(c.s && c.t && c.es && c.et && c.q && c.v);
  fill(&c, inputs);
  c.temperature = seed % 2 ? 2.0f : 0.7f;
  if (inputs == NONFINITE) return c;

  /* As softmax_rows in src/kdloss.c: factor 1, three rows, this one the last. */
  kd_ce_row *row = &c.row;
  row->inv_temp = 1.0f / c.temperature;
  row->eps = KD_EPS;
  row->grad_scale = (float)(1.0 / (3.0 * c.temperature));
  row->next_s = c.s;
  row->next_t = c.t;
  row->grad_out = c.v;
  assert_int_equal(scalar->rmax2(n, c.s, c.t, &row->s_max, &row->t_max), 0);
  c.argmax = scalar->expsum2(n, c.s, c.t, row, c.es, c.et, &c.zs, &c.zt);
  row->inv_zs = (float)(1.0 / c.zs);
  row->inv_zt = (float)(1.0 / c.zt);
  row->log_zs_zt = (float)log(c.zs / c.zt);
  row->max_gap = row->t_max - row->s_max;
  float bb = row->max_gap - row->t_max;
  row->max_gap_lo = (row->t_max - (row->max_gap - bb)) + (-row->s_max - bb);
  memcpy(c.q, c.es, n * sizeof(float));
  memcpy(c.v, c.et, n * sizeof(float));
  c.sum3b = scalar->cestats(n, c.s, c.t, c.q, c.v, row, &c.sums);
  row->q_sum = (float)(c.zs * row->inv_zs); /* as kdloss.c */
  row->qw_sum = (float)c.sums.qw;
  row->qu_sum = (float)c.sums.qu;
  return c;
}

static void case_free(row_case *c) {
  free(c->s);
  free(c->t);
  free(c->es);
  free(c->et);
  free(c->q);
  free(c->v);
}

/* q_j, r_j of pass 3, from pass 2's exps, in double. */
static double q_of(const row_case *c, size_t j) { return c->es[j] * (double)c->row.inv_zs; }
static double r_of(const row_case *c, size_t j) { return c->et[j] * (double)c->row.inv_zt; }

/* The scale of pass 3b's u_j's rounding: |u_j| + 1 + |d_j|'s terms, where
 * d_j = ((t_j - s_j) - (t_max - s_max))/T + log(zs/zt) is rounded at the size of
 * its terms and u_j carries that error (times q_j/(q_j + eps) <= 1). */
static double u_scale(const row_case *c, size_t j) {
  double q = q_of(c, j), r = r_of(c, j);
  double u = (q - r + KD_EPS) / (q + KD_EPS);
  double gap = ((double)c->t[j] - c->s[j]) - ((double)c->row.t_max - c->row.s_max);
  double terms = fabs(gap) * c->row.inv_temp + fabs(c->row.log_zs_zt);
  return fabs(u) + 1.0 + (isfinite(terms) ? terms : 0.0);
}

/* sum_j |r_j * log(q_j + eps)|: what the sums of passes 3a and 3b are rounded at. */
static double loss_terms(const row_case *c) {
  double sum = 0.0;
  for (size_t j = 0; j < c->at.n; j++) sum += fabs(r_of(c, j) * log(q_of(c, j) + KD_EPS));
  return sum;
}

/* Runs body(simd, scalar, case) for every supported SIMD ISA, every length
 * and every kind of inputs the pass takes (up to last_inputs), aligned and
 * misaligned by one float. */
typedef void (*pass_body)(const kd_kernels *simd, const kd_kernels *scalar, row_case *c);

static void for_each_case(const char *pass, row_inputs last_inputs, pass_body body) {
  const kd_kernels *scalar = kd_kernels_for(KD_ISA_SCALAR);
  assert_non_null(scalar);
  for (size_t i = 0; i < COUNT(simd_isas); i++) {
    const kd_kernels *simd = kd_kernels_for(simd_isas[i].isa);
    if (!simd) continue; /* this CPU or build lacks it */
    const char *isa = kd_isa_name(simd_isas[i].isa);
    worst = 0.0;
    size_t short_ns = 3 * simd_isas[i].lanes + 1;
    for (size_t k = 0; k < short_ns + COUNT(long_ns); k++) {
      size_t n = k < short_ns ? k + 1 : long_ns[k - short_ns];
      for (row_inputs in = RANDOM; in <= last_inputs; in++)
        for (size_t misalign = 0; misalign <= 1; misalign++) {
          row_case c = case_new(scalar, pass, isa, n, in, 1000 * n + 10 * in + misalign);
          c.at.misalign = misalign;
          body(simd, scalar, &c);
          case_free(&c);
        }
    }
    printf("[ worst    ] %s/%s: error %.3g of tolerance\n", pass, isa, worst);
  }
}

static void rmax2_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  guarded s = guarded_copy(c->s, n, c->at.misalign), t = guarded_copy(c->t, n, c->at.misalign);
  float s_max[2], t_max[2];
  int bad_scalar = scalar->rmax2(n, s.p, t.p, &s_max[0], &t_max[0]) != 0;
  int bad_simd = simd->rmax2(n, s.p, t.p, &s_max[1], &t_max[1]) != 0;
  near_enough(&c->at, "nonfinite flag", 0, bad_simd, bad_scalar, 0.0);
  if (!bad_scalar) { /* a maximum is exact */
    near_enough(&c->at, "s_max", 0, s_max[1], s_max[0], 0.0);
    near_enough(&c->at, "t_max", 0, t_max[1], t_max[0], 0.0);
  }
  free(s.base);
  free(t.base);
}

static void expsum2_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  (void)scalar; /* the case holds the scalar pass's results */
  size_t n = c->at.n;
  guarded es = guarded_new(n, c->at.misalign), et = guarded_new(n, c->at.misalign);
  double zs, zt;
  size_t first = simd->expsum2(n, c->s, c->t, &c->row, es.p, et.p, &zs, &zt);
  guards_intact(&c->at, "es", &es);
  guards_intact(&c->at, "et", &et);
  near_enough(&c->at, "first argmax", 0, (double)first, (double)c->argmax, 0.0);
  for (size_t j = 0; j < n; j++) {
    near_enough(&c->at, "es", j, es.p[j], c->es[j], TK_K_ELEM_REL * c->es[j] + TK_K_ELEM_ABS);
    near_enough(&c->at, "et", j, et.p[j], c->et[j], TK_K_ELEM_REL * c->et[j] + TK_K_ELEM_ABS);
  }
  near_enough(&c->at, "zs", 0, zs, c->zs, TK_K_SUM_REL * c->zs);
  near_enough(&c->at, "zt", 0, zt, c->zt, TK_K_SUM_REL * c->zt);
  free(es.base);
  free(et.base);
}

static void celoss_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  guarded es = guarded_copy(c->es, n, c->at.misalign), et = guarded_copy(c->et, n, c->at.misalign);
  double want = scalar->celoss(n, es.p, et.p, &c->row);
  double got = simd->celoss(n, es.p, et.p, &c->row);
  near_enough(&c->at, "sum", 0, got, want, TK_K_SUM_REL * loss_terms(c));
  free(es.base);
  free(et.base);
}

static void cestats_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  (void)scalar; /* the case holds the scalar pass's results */
  size_t n = c->at.n;
  guarded q = guarded_copy(c->es, n, c->at.misalign), v = guarded_copy(c->et, n, c->at.misalign);
  kd_ce_sums sums;
  double got = simd->cestats(n, c->s, c->t, q.p, v.p, &c->row, &sums);
  guards_intact(&c->at, "es_q", &q);
  guards_intact(&c->at, "et_v", &v);
  double qu_terms = 0.0, u_size_scale = 0.0;
  for (size_t j = 0; j < n; j++) {
    double qj = q_of(c, j), us = u_scale(c, j), w = r_of(c, j) / (qj + KD_EPS);
    qu_terms += qj * us;
    u_size_scale = fmax(u_size_scale, qj * us);
    int u_form = signbit(c->q[j]) != 0;
    if (u_form != (signbit(q.p[j]) != 0)) {
      /* The forms may differ only where w_j rounds either side of 1/2. */
      near_enough(&c->at, "w at the form boundary", j, w, 0.5, TK_K_ELEM_REL);
      continue;
    }
    near_enough(&c->at, "es_q", j, q.p[j], c->q[j], TK_K_ELEM_REL * fabsf(c->q[j]) + TK_K_ELEM_ABS);
    double tol = u_form ? TK_K_ELEM_REL * us : TK_K_ELEM_REL * fabsf(c->v[j]) + TK_K_ELEM_ABS;
    near_enough(&c->at, u_form ? "et_v (u)" : "et_v (w)", j, v.p[j], c->v[j], tol);
  }
  near_enough(&c->at, "sum", 0, got, c->sum3b, TK_K_SUM_REL * loss_terms(c));
  near_enough(&c->at, "sum q*w", 0, sums.qw, c->sums.qw, TK_K_SUM_REL * c->sums.qw);
  near_enough(&c->at, "sum q*u", 0, sums.qu, c->sums.qu, TK_K_SUM_REL * qu_terms);
  near_enough(&c->at, "u_size", 0, sums.u_size, c->sums.u_size, TK_K_ELEM_REL * u_size_scale);
  free(q.base);
  free(v.base);
}

/* |A_j| + |log(zs/zt)| + 1, A_j = ((t_j - t_max) - (s_j - s_max))/T: the scale
 * of d_j's rounding (div_passes.h); 0 where a logit is masked. */
static double d_scale(const row_case *c, size_t j) {
  double gap = ((double)c->t[j] - c->s[j]) - ((double)c->row.t_max - c->row.s_max);
  double terms = fabs(gap) * c->row.inv_temp + fabs(c->row.log_zs_zt) + 1.0;
  return isfinite(terms) ? terms : 0.0;
}

/* Pass 4 (cegrad over cestats' q and v) or reverse KL's pass 3 (rklgrad over
 * es and p, with q_j = es_j/zs and v_j = p_j/T + log(zs/zt)), at skip = n
 * (no class left out) and at the argmax, out of place and in place over v
 * (as the row loop does for an in-place gradient). */
static void grad_pass_check(const kd_kernels *simd, const kd_kernels *scalar, const row_case *c,
                            const kd_ce_row *row, const float *q_in, const float *v_in, int rkl) {
  size_t n = c->at.n;
  for (int variant = 0; variant < 4; variant++) {
    size_t skip = variant % 2 ? c->argmax : n;
    int in_place = variant / 2;
    guarded g[2], v[2];
    kd_grad_stats st[2];
    const kd_kernels *k[2] = {scalar, simd};
    for (int i = 0; i < 2; i++) {
      v[i] = guarded_copy(v_in, n, c->at.misalign);
      g[i] = in_place ? v[i] : guarded_new(n, c->at.misalign);
      (rkl ? k[i]->rklgrad : k[i]->cegrad)(n, q_in, v[i].p, g[i].p, row, skip, &st[i]);
    }
    where at = c->at;
    at.pass = rkl ? (in_place ? "rklgrad (in place)" : "rklgrad")
                  : (in_place ? "cegrad (in place)" : "cegrad");
    guards_intact(&at, "grad", &g[1]);
    /* Each g_j = scale * q_j * B_j cancels from scale * q_j * size_j, the
     * size the kernel reports in max_err; its error scales with that, and
     * with v_j's own rounding where the pass forms v_j (d_scale). */
    double others_tol = 0.0, max_tol = 0.0; /* others: per-element errors plus the sum's */
    for (size_t j = 0; j < n; j++) {
      double q = rkl ? q_in[j] * (double)row->inv_zs : fabsf(q_in[j]);
      double vj = rkl ? v_in[j] * (double)row->inv_temp + row->log_zs_zt : v_in[j];
      double form_sum = !rkl && signbit(q_in[j]) ? row->qu_sum : row->qw_sum;
      double size = (fabs(vj) + (rkl ? d_scale(c, j) : 0.0)) * row->q_sum + fabs(form_sum);
      double tol = TK_K_ELEM_REL * fabs(row->grad_scale) * q * size + TK_K_ELEM_ABS;
      near_enough(&at, "grad", j, g[1].p[j], g[0].p[j], tol);
      if (j != skip) {
        others_tol += tol + TK_K_SUM_REL * fabsf(g[0].p[j]);
        max_tol = fmax(max_tol, tol);
      }
    }
    near_enough(&at, "others", 0, st[1].others, st[0].others, others_tol);
    near_enough(&at, "max_abs", 0, st[1].max_abs, st[0].max_abs, max_tol);
    near_enough(&at, "max_err", 0, st[1].max_err, st[0].max_err,
                TK_K_ELEM_REL * st[0].max_err + (rkl ? max_tol : TK_K_ELEM_ABS));
    for (int i = 0; i < 2; i++) {
      free(v[i].base);
      if (!in_place) free(g[i].base);
    }
  }
}

static void cegrad_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  grad_pass_check(simd, scalar, c, &c->row, c->q, c->v, 0);
}

static double squares(const row_case *c) {
  double sum = 0.0;
  for (size_t j = 0; j < c->at.n; j++) sum += ((double)c->s[j] - c->t[j]) * ((double)c->s[j] - c->t[j]);
  return sum;
}

static void mse_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  guarded s = guarded_copy(c->s, n, c->at.misalign), t = guarded_copy(c->t, n, c->at.misalign);
  double want = scalar->mse(n, s.p, t.p), got = simd->mse(n, s.p, t.p);
  near_enough(&c->at, "sum", 0, got, want, TK_K_SUM_REL * squares(c));
  free(s.base);
  free(t.base);
}

/* An element-wise gradient pass (msegrad or bcegrad, by name), out of place
 * and in place over the student (grad == s): the sums within sum_tol, each
 * element within elem_rel of itself. */
static void elemgrad_check(const kd_kernels *simd, const kd_kernels *scalar, row_case *c,
                           int bce, double sum_tol, double elem_rel) {
  size_t n = c->at.n;
  const float scale = -0.37f;
  for (int in_place = 0; in_place <= 1; in_place++) {
    guarded s[2], g[2];
    double sum[2];
    const kd_kernels *k[2] = {scalar, simd};
    guarded t = guarded_copy(c->t, n, c->at.misalign);
    for (int i = 0; i < 2; i++) {
      s[i] = guarded_copy(c->s, n, c->at.misalign);
      g[i] = in_place ? s[i] : guarded_new(n, c->at.misalign);
      sum[i] = (bce ? k[i]->bcegrad : k[i]->msegrad)(n, s[i].p, t.p, scale, g[i].p);
    }
    where at = c->at;
    at.pass = bce ? (in_place ? "bcegrad (in place)" : "bcegrad")
                  : (in_place ? "msegrad (in place)" : "msegrad");
    guards_intact(&at, "grad", &g[1]);
    near_enough(&at, "sum", 0, sum[1], sum[0], sum_tol);
    for (size_t j = 0; j < n; j++)
      near_enough(&at, "grad", j, g[1].p[j], g[0].p[j],
                  elem_rel * fabsf(g[0].p[j]) + (bce ? TK_K_ELEM_ABS : 0.0));
    free(t.base);
    for (int i = 0; i < 2; i++) {
      free(s[i].base);
      if (!in_place) free(g[i].base);
    }
  }
}

/* sum_j |r_j log(q_j + eps)| of one row in double: what a row's loss sum is
 * rounded at. 0 for a row with no finite distribution. */
static double row_terms(size_t n, const float *s, const float *t, float temperature) {
  double ms = -INFINITY, mt = -INFINITY, zs = 0.0, zt = 0.0, sum = 0.0;
  for (size_t j = 0; j < n; j++) { /* ternaries: aarch64 gcc 12 -O3 ICEs on fmax here */
    ms = s[j] > ms ? s[j] : ms;
    mt = t[j] > mt ? t[j] : mt;
  }
  for (size_t j = 0; j < n; j++) {
    zs += exp((s[j] - ms) / temperature);
    zt += exp((t[j] - mt) / temperature);
  }
  for (size_t j = 0; j < n; j++) {
    double q = exp((s[j] - ms) / temperature) / zs, r = exp((t[j] - mt) / temperature) / zt;
    sum += fabs(r * log(q + KD_EPS));
  }
  return isfinite(sum) ? sum : 0.0;
}

/* The short-row kernel (kernels.h): m rows of n classes, one row per lane,
 * each row of its own kind of inputs (a group mixes them, NONFINITE rows
 * among them), leading dimension n + pad, out of place and in place. The
 * flags must agree with the scalar kernel's; an OK row's loss and gradient
 * must be within the passes' bounds of it; the rows not OK, the padding
 * and everything around the matrix must be left as they were. */
static void ceshort_case(const kd_kernels *simd, const kd_kernels *scalar, where at, size_t m,
                         size_t pad, int in_place) {
  size_t n = at.n, ld = n + pad, floats = (m - 1) * ld + n;
  float *s = malloc(floats * sizeof(float)), *t = malloc(floats * sizeof(float));
  assert_true(s && t);
  float temperature = at.seed % 2 ? 2.0f : 0.7f;
  for (size_t h = 0; h < m; h++) {
    row_case r;
    memset(&r, 0, sizeof r);
    r.at = at;
    r.at.seed = at.seed + 7919 * h;
    r.s = s + h * ld;
    r.t = t + h * ld;
    fill(&r, (row_inputs)((h + n) % ROW_INPUTS_COUNT));
  }
  const kd_kernels *k[2] = {scalar, simd};
  guarded g[2], sv[2];
  float loss[2][KD_SHORT_ROWS];
  unsigned char flag[2][KD_SHORT_ROWS];
  for (int i = 0; i < 2; i++) {
    sv[i] = guarded_copy(s, floats, at.misalign);
    g[i] = in_place ? sv[i] : guarded_new(floats, at.misalign);
    kd_ce_short a = {n, sv[i].p, t, ld, ld, g[i].p, ld, 1.0f / temperature,
                     (float)(1.0 / ((double)m * temperature)), temperature > 1.0f};
    k[i]->ceshort(&a, m, loss[i], flag[i]);
  }
  at.pass = in_place ? "ceshort (in place)" : "ceshort";
  guards_intact(&at, "grad", &g[1]);
  for (size_t h = 0; h < m; h++) {
    near_enough(&at, "flag", h, flag[1][h], flag[0][h], 0.0);
    float *got = g[1].p + h * ld, *want = g[0].p + h * ld;
    const float *before = in_place ? s + h * ld : NULL;
    if (flag[0][h] == KD_ROW_OK) {
      double terms = row_terms(n, s + h * ld, t + h * ld, temperature);
      /* q_j itself may differ by a few ulp (the SIMD kernel sums zs in float):
       * the loss moves by sum_j r_j dq_j / (q_j + eps) <= TK_K_ELEM_REL. */
      near_enough(&at, "loss", h, loss[1][h], loss[0][h], TK_K_SUM_REL * terms + TK_K_ELEM_REL);
      float max_abs = 0.0f;
      for (size_t j = 0; j < n; j++) max_abs = fabsf(want[j]) > max_abs ? fabsf(want[j]) : max_abs;
      for (size_t j = 0; j < n; j++)
        near_enough(&at, "grad", h * ld + j, got[j], want[j],
                    TK_K_SUM_REL * max_abs + TK_K_ELEM_ABS);
    } else {
      for (size_t j = 0; j < n; j++)
        if (before ? memcmp(got + j, before + j, sizeof(float)) != 0
                   : memcmp(got + j, &sentinel, sizeof sentinel) != 0)
          fail_at(&at, "grad of a row not OK written", h * ld + j, got[j], 0.0, 0.0);
    }
    for (size_t j = n; j < ld && h + 1 < m; j++)
      if (before ? memcmp(got + j, before + j, sizeof(float)) != 0
                 : memcmp(got + j, &sentinel, sizeof sentinel) != 0)
        fail_at(&at, "padding written", h * ld + j, got[j], 0.0, 0.0);
  }
  for (int i = 0; i < 2; i++) {
    free(sv[i].base);
    if (!in_place) free(g[i].base);
  }
  free(s);
  free(t);
}

static void test_ceshort(void **state) {
  (void)state;
  const kd_kernels *scalar = kd_kernels_for(KD_ISA_SCALAR);
  assert_non_null(scalar);
  for (size_t i = 0; i < COUNT(simd_isas); i++) {
    const kd_kernels *simd = kd_kernels_for(simd_isas[i].isa);
    if (!simd) continue;
    size_t w = simd_isas[i].lanes;
    const size_t ms[] = {1, w - 1, w, w + 1, 2 * w + 3, KD_SHORT_ROWS};
    worst = 0.0;
    for (size_t n = 1; n <= KD_SHORT_COLS; n++)
      for (size_t k = 0; k < COUNT(ms); k++)
        for (int variant = 0; variant < 4; variant++) {
          where at = {"ceshort", kd_isa_name(simd_isas[i].isa), "mixed", n,
                      (size_t)variant % 2, 5000 * n + 10 * k + (uint64_t)variant};
          ceshort_case(simd, scalar, at, ms[k], variant % 2 ? 3 : 0, variant / 2);
        }
    printf("[ worst    ] ceshort/%s: error %.3g of tolerance\n", kd_isa_name(simd_isas[i].isa),
           worst);
  }
}

static void msegrad_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  elemgrad_check(simd, scalar, c, 0, TK_K_SUM_REL * squares(c), TK_K_ELEM_REL);
}

/* The size of divloss's and klsum's sums: sum_j e_j |val_j| (T times, for divloss). */
static double div_terms(const row_case *c, int kind, int times_t) {
  double sum = 0.0;
  for (size_t j = 0; j < c->at.n; j++) {
    if (c->s[j] == -INFINITY || c->t[j] == -INFINITY) continue;
    double e = kind == 2 ? c->es[j] : c->et[j];
    double val = kind == 0 ? ((double)c->row.s_max - c->s[j]) * c->row.inv_temp : d_scale(c, j);
    sum += e * fabs(val) * (times_t ? c->temperature : 1.0);
  }
  return sum;
}

static void divloss_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  for (int kind = 0; kind <= 2; kind++) {
    double zs[2], zt[2], sum[2];
    sum[0] = scalar->divloss(n, c->s, c->t, &c->row, kind, &zs[0], &zt[0]);
    sum[1] = simd->divloss(n, c->s, c->t, &c->row, kind, &zs[1], &zt[1]);
    near_enough(&c->at, "zs", 0, zs[1], zs[0], TK_K_SUM_REL * zs[0]);
    near_enough(&c->at, "zt", 0, zt[1], zt[0], TK_K_SUM_REL * zt[0]);
    near_enough(&c->at, kind == 0 ? "sce sum" : kind == 1 ? "kl sum" : "rkl sum", 0, sum[1],
                sum[0], TK_K_SUM_REL * div_terms(c, kind, 1));
  }
}

/* Out of place and into et (the row loop's scratch when grad is the student). */
static void klsum_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  for (int kl = 0; kl <= 1; kl++) {
    guarded g[2];
    kd_grad_stats st[2];
    double sum[2];
    const kd_kernels *k[2] = {scalar, simd};
    for (int i = 0; i < 2; i++) {
      g[i] = guarded_new(n, c->at.misalign);
      sum[i] = k[i]->klsum(n, c->s, c->t, c->es, c->et, &c->row, kl, g[i].p, &st[i]);
    }
    guards_intact(&c->at, "grad", &g[1]);
    near_enough(&c->at, kl ? "kl sum" : "sce sum", 0, sum[1], sum[0],
                TK_K_SUM_REL * div_terms(c, kl, 0));
    for (size_t j = 0; j < n; j++) {
      double size = fabs(c->row.grad_scale) * (q_of(c, j) + r_of(c, j)) * d_scale(c, j);
      near_enough(&c->at, "grad", j, g[1].p[j], g[0].p[j],
                  TK_K_ELEM_REL * (fabsf(g[0].p[j]) + size) + TK_K_ELEM_ABS);
    }
    near_enough(&c->at, "max_abs", 0, st[1].max_abs, st[0].max_abs,
                TK_K_ELEM_REL * st[0].max_abs + TK_K_ELEM_ABS);
    near_enough(&c->at, "max_err", 0, st[1].max_err, st[0].max_err,
                TK_K_ELEM_REL * st[0].max_err + TK_K_ELEM_ABS);
    /* grad == et, as the row loop passes it in place. */
    guarded et = guarded_copy(c->et, n, c->at.misalign);
    kd_grad_stats st2;
    double sum2 = simd->klsum(n, c->s, c->t, c->es, et.p, &c->row, kl, et.p, &st2);
    near_enough(&c->at, "sum (grad over et)", 0, sum2, sum[1], 0.0);
    for (size_t j = 0; j < n; j++)
      near_enough(&c->at, "grad over et", j, et.p[j], g[1].p[j], 0.0);
    free(et.base);
    for (int i = 0; i < 2; i++) free(g[i].base);
  }
}

/* Reverse KL, JSD with beta 0.05 and 0.3 (either side of div_passes.h's
 * 1/8): q and v, their sums, the returned sum. */
static void divstats_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  for (int jsd = 0; jsd <= 2; jsd++) {
    c->row.beta = jsd == 1 ? 0.05f : 0.3f;
    qv_copies b = qv_copies_of(c);
    guarded *q = b.q, *v = b.v;
    kd_ce_sums sums[2];
    double sum[2];
    const kd_kernels *k[2] = {scalar, simd};
    for (int i = 0; i < 2; i++)
      sum[i] = k[i]->divstats(n, c->s, c->t, q[i].p, v[i].p, &c->row, jsd > 0, &sums[i]);
    where at = c->at;
    at.pass = jsd == 2 ? "divstats (jsd, beta 0.3)" : jsd ? "divstats (jsd, beta 0.05)"
                                                          : "divstats (rkl)";
    guards_intact(&at, "es_q", &q[1]);
    guards_intact(&at, "et_v", &v[1]);
    double q_terms = 0.0, v_terms = 0.0;
    for (size_t j = 0; j < n; j++) {
      double scale = fabs(v[0].p[j]) + d_scale(c, j);
      near_enough(&at, "q", j, q[1].p[j], q[0].p[j], TK_K_ELEM_REL * q[0].p[j] + TK_K_ELEM_ABS);
      near_enough(&at, "v", j, v[1].p[j], v[0].p[j], TK_K_ELEM_REL * scale);
      q_terms += q[0].p[j];
      v_terms += (q[0].p[j] + r_of(c, j)) * scale;
    }
    near_enough(&at, "sum q", 0, sums[1].q, sums[0].q, TK_K_SUM_REL * q_terms);
    near_enough(&at, "sum q v", 0, sums[1].qw, sums[0].qw, TK_K_SUM_REL * v_terms);
    near_enough(&at, "max |v|", 0, sums[1].u_size, sums[0].u_size,
                TK_K_ELEM_REL * sums[0].u_size + TK_K_ELEM_ABS);
    near_enough(&at, "sum", 0, sum[1], sum[0],
                TK_K_SUM_REL * (jsd ? v_terms : div_terms(c, 2, 0)));
    qv_copies_free(&b);
  }
}

/* Reverse KL's pass 2 with its gradient (both tables): es as expsum2's, the
 * gap parts p exactly (the same float operations on either side, NaN where
 * both sides mask a class), num at the size of its terms (non-finite on
 * both sides where a logit is -inf), max |p| exactly. */
typedef struct rkl_pass2 {
  guarded es, p;
  double zs, zt, num;
  float p_max;
  size_t first;
} rkl_pass2;

static rkl_pass2 rkl_pass2_of(const kd_kernels *k, const row_case *c) {
  rkl_pass2 r;
  r.es = guarded_new(c->at.n, c->at.misalign);
  r.p = guarded_new(c->at.n, c->at.misalign);
  r.first = k->expsum2rkl(c->at.n, c->s, c->t, &c->row, r.es.p, r.p.p, &r.zs, &r.zt, &r.num,
                          &r.p_max);
  return r;
}

static void rkl_pass2_free(rkl_pass2 *r) {
  free(r->es.base);
  free(r->p.base);
}

static void expsum2rkl_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  rkl_pass2 want = rkl_pass2_of(scalar, c), got = rkl_pass2_of(simd, c);
  guards_intact(&c->at, "es", &got.es);
  guards_intact(&c->at, "p", &got.p);
  near_enough(&c->at, "first argmax", 0, (double)got.first, (double)c->argmax, 0.0);
  double terms = 0.0;
  for (size_t j = 0; j < n; j++) {
    near_enough(&c->at, "es", j, got.es.p[j], c->es[j], TK_K_ELEM_REL * c->es[j] + TK_K_ELEM_ABS);
    float pw = want.p.p[j], pg = got.p.p[j];
    if (isnan(pw) && isnan(pg)) continue;
    near_enough(&c->at, "p", j, pg, pw, 0.0);
    terms += c->es[j] * fabs(pw);
  }
  near_enough(&c->at, "zs", 0, got.zs, c->zs, TK_K_SUM_REL * c->zs);
  near_enough(&c->at, "zt", 0, got.zt, c->zt, TK_K_SUM_REL * c->zt);
  near_enough(&c->at, "num finite", 0, isfinite(got.num), isfinite(want.num), 0.0);
  if (isfinite(want.num)) near_enough(&c->at, "num", 0, got.num, want.num, TK_K_SUM_REL * terms);
  near_enough(&c->at, "max |p|", 0, got.p_max, want.p_max, 0.0);
  rkl_pass2_free(&want);
  rkl_pass2_free(&got);
}

/* Reverse KL's pass 3 on the scalar pass 2's es and p of rows without -inf,
 * with sum q and sum q v as src/kdloss.c forms them. */
static void rklgrad_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  rkl_pass2 in = rkl_pass2_of(scalar, c);
  if (isfinite(in.num)) {
    kd_ce_row row = c->row;
    row.q_sum = (float)(in.zs * row.inv_zs);
    row.qw_sum = (float)kd_rkl_qv_sum(&row, in.zs, in.num);
    grad_pass_check(simd, scalar, c, &row, in.es.p, in.p.p, 1);
  }
  rkl_pass2_free(&in);
}

/* The direct JSD pass (src/jsd_passes.h), loss only and with the gradient,
 * at betas either side of KD_JSD_FAST_BETA. Each element's values round at
 * the size of the logs they are differences of: |lambda_j| + 2 |y_j| + 1
 * (y_j clamped as the pass clamps it); the sums at the sizes of their terms. */
static void jsdfast_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  static const float betas[] = {0.1f, 0.5f, 0.9f};
  size_t n = c->at.n;
  for (size_t b = 0; b < COUNT(betas); b++)
    for (int grad = 0; grad <= 1; grad++) {
      float beta = c->row.beta = betas[b];
      float c1 = (float)(beta * c->zs / c->zt), c2 = 1.0f - beta;
      qv_copies b = qv_copies_of(c);
      guarded *q = b.q, *v = b.v;
      kd_jsd_sums sums[2];
      double sum[2];
      const kd_kernels *k[2] = {scalar, simd};
      for (int i = 0; i < 2; i++)
        sum[i] = k[i]->jsdfast(n, c->s, c->t, q[i].p, v[i].p, &c->row, c1, grad, &sums[i]);
      where at = c->at;
      at.pass = grad ? "jsdfast (grad)" : "jsdfast (loss)";
      guards_intact(&at, "es_q", &q[1]);
      guards_intact(&at, "et_v", &v[1]);
      double terms = 0.0, bc_terms = 0.0, q_terms = 0.0, v_terms = 0.0, v_max = 0.0;
      for (size_t j = 0; j < n; j++) {
        double y = fmax((c->s[j] - (double)c->row.s_max) * c->row.inv_temp, KD_JSD_FLOOR);
        double zl = fmax((c->t[j] - (double)c->row.t_max) * c->row.inv_temp +
                             c->row.log_zs_zt, KD_JSD_FLOOR);
        double a = c1 * (double)c->et[j], bq = c2 * (double)c->es[j], m = a + bq;
        double l = log(fmax(m, FLT_MIN)), scale = fabs(l - y) + 2.0 * fabs(y) + 1.0;
        terms += m * (fabs(l) + 1.0) + fabs(a * zl) + fabs(bq * y);
        bc_terms += fabs(a * zl) + fabs(bq * y);
        q_terms += q_of(c, j);
        v_terms += q_of(c, j) * scale;
        v_max = fmax(v_max, scale);
        if (!grad) continue;
        near_enough(&at, "q", j, q[1].p[j], q[0].p[j], TK_K_ELEM_REL * q[0].p[j] + TK_K_ELEM_ABS);
        near_enough(&at, "v", j, v[1].p[j], v[0].p[j], TK_K_ELEM_REL * scale);
      }
      near_enough(&at, "sum", 0, sum[1], sum[0], TK_K_SUM_REL * terms);
      near_enough(&at, "sum bc", 0, sums[1].bc, sums[0].bc, TK_K_SUM_REL * bc_terms);
      if (grad) {
        near_enough(&at, "sum q", 0, sums[1].q, sums[0].q, TK_K_SUM_REL * q_terms);
        near_enough(&at, "sum q v", 0, sums[1].qv, sums[0].qv, TK_K_SUM_REL * v_terms);
        near_enough(&at, "sum q w", 0, sums[1].qw, sums[0].qw, TK_K_SUM_REL * v_terms);
        near_enough(&at, "max q |lambda|", 0, sums[1].ql_max, sums[0].ql_max,
                    TK_K_ELEM_REL * v_max + TK_K_ELEM_ABS);
        near_enough(&at, "max q w", 0, sums[1].qw_max, sums[0].qw_max,
                    TK_K_ELEM_REL * v_max + TK_K_ELEM_ABS);
        near_enough(&at, "max q w (top)", 0, sums[1].qw_top, sums[0].qw_top,
                    TK_K_ELEM_REL * v_max + TK_K_ELEM_ABS);
      }
      qv_copies_free(&b);
    }
}

/* BCE: sums of terms >= 0; the SIMD loss rounds log1p(e) as log(1 + e)
 * (bce_passes.h), up to 2^-24 absolute per element. */
static double bce_sum_tol(const row_case *c, double sum) {
  return TK_K_SUM_REL * sum + (double)c->at.n * 0x1p-24;
}

static void bce_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  size_t n = c->at.n;
  guarded s = guarded_copy(c->s, n, c->at.misalign), t = guarded_copy(c->t, n, c->at.misalign);
  double want = scalar->bce(n, s.p, t.p), got = simd->bce(n, s.p, t.p);
  near_enough(&c->at, "sum", 0, got, want, bce_sum_tol(c, want));
  free(s.base);
  free(t.base);
}

/* Each gradient element is within a few ulp of itself on both sides, times
 * the up-to-8x cancellation of the sigmoids' difference outside the expm1
 * band (bce_passes.h): 8 TK_K_ELEM_REL of itself. */
static void bcegrad_body(const kd_kernels *simd, const kd_kernels *scalar, row_case *c) {
  double want = scalar->bce(c->at.n, c->s, c->t);
  elemgrad_check(simd, scalar, c, 1, bce_sum_tol(c, want), 8 * TK_K_ELEM_REL);
}

static void test_rmax2(void **state) { (void)state; for_each_case("rmax2", NONFINITE, rmax2_body); }
static void test_expsum2(void **state) { (void)state; for_each_case("expsum2", TIED, expsum2_body); }
static void test_celoss(void **state) { (void)state; for_each_case("celoss", TIED, celoss_body); }
static void test_cestats(void **state) { (void)state; for_each_case("cestats", TIED, cestats_body); }
static void test_cegrad(void **state) { (void)state; for_each_case("cegrad", TIED, cegrad_body); }
/* MSE takes no infinities: random and near rows. */
static void test_mse(void **state) { (void)state; for_each_case("mse", NEAR, mse_body); }
static void test_msegrad(void **state) { (void)state; for_each_case("msegrad", NEAR, msegrad_body); }
static void test_divloss(void **state) { (void)state; for_each_case("divloss", TIED, divloss_body); }
static void test_klsum(void **state) { (void)state; for_each_case("klsum", TIED, klsum_body); }
static void test_divstats(void **state) { (void)state; for_each_case("divstats", TIED, divstats_body); }
static void test_expsum2rkl(void **state) {
  (void)state;
  for_each_case("expsum2rkl", TIED, expsum2rkl_body);
}
static void test_rklgrad(void **state) { (void)state; for_each_case("rklgrad", TIED, rklgrad_body); }
static void test_jsdfast(void **state) { (void)state; for_each_case("jsdfast", TIED, jsdfast_body); }
/* BCE takes no infinities either. */
static void test_bce(void **state) { (void)state; for_each_case("bce", NEAR, bce_body); }
static void test_bcegrad(void **state) { (void)state; for_each_case("bcegrad", NEAR, bcegrad_body); }

int main(void) {
  for (size_t i = 0; i < COUNT(simd_isas); i++)
    printf("[ ISA      ] %s: %s\n", kd_isa_name(simd_isas[i].isa),
           kd_kernels_for(simd_isas[i].isa) ? "compared with scalar"
                                            : "not tested: this CPU or build lacks it");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rmax2),   cmocka_unit_test(test_expsum2), cmocka_unit_test(test_celoss),
      cmocka_unit_test(test_cestats), cmocka_unit_test(test_cegrad),  cmocka_unit_test(test_mse),
      cmocka_unit_test(test_msegrad), cmocka_unit_test(test_ceshort),
      cmocka_unit_test(test_divloss), cmocka_unit_test(test_klsum),
      cmocka_unit_test(test_divstats), cmocka_unit_test(test_expsum2rkl),
      cmocka_unit_test(test_rklgrad), cmocka_unit_test(test_jsdfast), cmocka_unit_test(test_bce),
      cmocka_unit_test(test_bcegrad),
  };
  return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
