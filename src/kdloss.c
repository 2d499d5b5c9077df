/*
 * The API layer: argument checks, the row loops, and the few scalar steps
 * between kernel passes. Everything ISA-specific is behind kd_kernels_current().
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "kernels.h"
#include "parallel.h"

/* Cross-entropy rows up to this many classes use stack scratch (2 floats per
 * class, 16 KiB); wider rows use one heap buffer per task (see parallel.c). */
#define KD_STACK_COLS 2048

#define KD_STR(x) #x
#define KD_XSTR(x) KD_STR(x)

KD_API const char *kd_version_string(void) {
  return KD_XSTR(KDLOSS_VERSION_MAJOR) "." KD_XSTR(KDLOSS_VERSION_MINOR) "." KD_XSTR(
      KDLOSS_VERSION_PATCH);
}

KD_API const char *kd_status_str(kd_status status) {
  switch (status) {
  case KD_OK: return "ok";
  case KD_ERR_NULL: return "a required pointer is NULL";
  case KD_ERR_SHAPE: return "rows or cols is 0, or a size overflows size_t";
  case KD_ERR_STRIDE: return "a leading dimension is smaller than cols";
  case KD_ERR_DISTANCE: return "not a kd_distance value";
  case KD_ERR_TEMPERATURE: return "temperature is NaN, infinite, zero, negative or subnormal";
  case KD_ERR_FACTOR: return "factor is NaN or infinite, or the gradient scale overflows";
  case KD_ERR_NONFINITE: return "an input holds NaN or +inf, or a row is entirely -inf";
  case KD_ERR_ALIAS: return "an output overlaps an input other than exactly in place";
  case KD_ERR_NOMEM: return "a needed allocation failed";
  case KD_ERR_UNSUPPORTED: return "this CPU or build lacks that ISA";
  case KD_ERR_THREADS: return "a negative or too large thread count, or the pool cannot start";
  case KD_ERR_WEIGHT: return "a row weight is negative, NaN or infinite";
  case KD_ERR_BETA: return "beta is outside (0, 1)";
  case KD_ERR_REDUCTION: return "not a kd_reduction value";
  default: return "unknown status";
  }
}

/* The address span [lo, hi) of a rows x cols matrix with leading dimension ld,
 * as integers: comparing pointers into different objects is undefined in C. */
typedef struct span { uintptr_t lo, hi; } span;

static span span_of(const void *p, size_t rows, size_t cols, size_t ld, size_t elem) {
  span s = {(uintptr_t)p, (uintptr_t)p + ((rows - 1) * ld + cols) * elem};
  return s;
}

static int overlap(span a, span b) {
  return a.lo < b.hi && b.lo < a.hi;
}

/* Bytes of a matrix's span, or 0 when it overflows size_t. */
static size_t span_bytes(size_t rows, size_t cols, size_t ld) {
  if (rows - 1 > (SIZE_MAX - cols) / ld) return 0;
  size_t elems = (rows - 1) * ld + cols;
  return elems > SIZE_MAX / sizeof(float) ? 0 : elems * sizeof(float);
}

/* Whether a distance works on softmax(x/T) rows (temperature, -inf masks,
 * the cross-entropy passes), rather than element by element. */
static int is_softmax(kd_distance d) {
  return d != KD_MSE && d != KD_BCE_SIGMOID;
}

typedef struct request {
  kd_params p;
  size_t rows, cols;
  const float *s, *t;
  size_t lds, ldt;
  float *loss;     /* may be NULL when grad or row_loss is given */
  float *row_loss; /* NULL or rows floats */
  float *grad;     /* NULL: no gradient */
  size_t ldg;
  int need_loss;   /* kd_loss_f32: loss required */
  int need_grad;   /* kd_loss_grad_f32: grad required */
  int need_either; /* kd_loss_ex_f32: loss or row_loss required */
  /* Filled by check: the sum of the weights (rows when there are none), and
   * the gradient scale of a row of weight 1, grad_scale_num * w_i / grad_den. */
  double weight_sum, grad_num, grad_den;
} request;

static double weight(const request *r, size_t i) {
  return r->p.row_weight ? (double)r->p.row_weight[i] : 1.0;
}

/* c_i / T (softmax), 2 c_i / C (MSE), c_i / C (BCE) in double. With every
 * weight 1 and MEAN this is factor / (rows * T) or 2 factor / (rows * cols)
 * with the roundings of kd_loss_grad_f32 before the family existed. */
static double grad_scale(const request *r, double w) {
  return r->grad_num * w / r->grad_den;
}

/* Every argument error, in the documented order, before any work. */
static kd_status check(request *r) {
  kd_distance d = r->p.distance;
  if (d < KD_CROSS_ENTROPY || d > KD_BCE_SIGMOID) return KD_ERR_DISTANCE;
  if (r->p.reduction != KD_REDUCE_MEAN && r->p.reduction != KD_REDUCE_SUM)
    return KD_ERR_REDUCTION;
  if (!r->s || !r->t || (r->need_loss && !r->loss) || (r->need_grad && !r->grad) ||
      (r->need_either && !r->loss && !r->row_loss))
    return KD_ERR_NULL;
  if (r->rows == 0 || r->cols == 0) return KD_ERR_SHAPE;
  /* rows*cols and the scratch (2*cols floats) must be countable in bytes. */
  if (r->rows > SIZE_MAX / r->cols || r->rows * r->cols > SIZE_MAX / sizeof(float) ||
      r->cols > SIZE_MAX / (2 * sizeof(float)))
    return KD_ERR_SHAPE;
  if (r->lds < r->cols || r->ldt < r->cols || (r->grad && r->ldg < r->cols))
    return KD_ERR_STRIDE;
  if (!span_bytes(r->rows, r->cols, r->lds) || !span_bytes(r->rows, r->cols, r->ldt) ||
      (r->grad && !span_bytes(r->rows, r->cols, r->ldg)))
    return KD_ERR_SHAPE;
  if (!isfinite(r->p.factor)) return KD_ERR_FACTOR;
  if (is_softmax(d) &&
      !(r->p.temperature >= FLT_MIN && r->p.temperature <= FLT_MAX)) /* 1/T must be finite */
    return KD_ERR_TEMPERATURE;
  if (d == KD_JSD && !(r->p.beta > 0.0f && r->p.beta < 1.0f)) return KD_ERR_BETA;
  /* The weights' sum in index order: the same bits for every thread count. */
  double w_sum = (double)r->rows, w_max = 1.0;
  if (r->p.row_weight) {
    w_sum = w_max = 0.0;
    for (size_t i = 0; i < r->rows; i++) {
      float w = r->p.row_weight[i];
      if (!(w >= 0.0f && w <= FLT_MAX)) return KD_ERR_WEIGHT;
      w_sum += w;
      w_max = w > w_max ? w : w_max;
    }
  }
  r->weight_sum = w_sum;
  r->grad_num = (d == KD_MSE ? 2.0 : 1.0) * r->p.factor;
  r->grad_den = (r->p.reduction == KD_REDUCE_MEAN ? w_sum : 1.0) *
                (is_softmax(d) ? (double)r->p.temperature : (double)r->cols);
  if (r->grad && w_sum > 0.0 && !(fabs(grad_scale(r, w_max)) <= FLT_MAX)) return KD_ERR_FACTOR;
  span s = span_of(r->s, r->rows, r->cols, r->lds, sizeof(float));
  span t = span_of(r->t, r->rows, r->cols, r->ldt, sizeof(float));
  span none = {0, 0};
  span w = r->p.row_weight ? span_of(r->p.row_weight, 1, r->rows, r->rows, sizeof(float)) : none;
  span g = r->grad ? span_of(r->grad, r->rows, r->cols, r->ldg, sizeof(float)) : none;
  span l = r->loss ? span_of(r->loss, 1, 1, 1, sizeof(float)) : none;
  span rl = r->row_loss ? span_of(r->row_loss, 1, r->rows, r->rows, sizeof(float)) : none;
  int in_place = r->grad == r->s && r->ldg == r->lds;
  if ((overlap(g, s) && !in_place) || overlap(g, t) || overlap(g, w)) return KD_ERR_ALIAS;
  if (overlap(l, g) || overlap(l, s) || overlap(l, t) || overlap(l, w) || overlap(l, rl))
    return KD_ERR_ALIAS;
  if (overlap(rl, g) || overlap(rl, s) || overlap(rl, t) || overlap(rl, w)) return KD_ERR_ALIAS;
  return KD_OK;
}

/* A gradient scale below `least` takes the double path. MSE: below FLT_MIN,
 * the float scale itself is subnormal and has few significant bits.
 * Cross-entropy: the kernels form scale * q_j * B_j in float, and a product
 * below FLT_MIN loses up to 2^-150 * |B_j| absolute. |B_j| <= 2 max w <= 2/eps:
 * 2e5 for LwF's eps = 1e-5, which the bound's absolute term 1e-12 * scale
 * covers only from 2^-90 (~8e-28) up; FACIL's eps = 1e-5/C multiplies the
 * bound by C (least = 2^-90 C). Reverse KL and JSD: |B_j| <= 2 max|v_j|,
 * known after their stats pass, or bounded after reverse KL's pass 2
 * (least = 2^-90 max(1, max|v|/1e5)). Soft
 * cross-entropy, KL and BCE form scale * x with |x| <= 1: 2^-90 is ample. */
#define KD_CE_SCALE_LEAST 0x1p-90
static int scale_below(double scale, double least) {
  return scale != 0.0 && fabs(scale) < least;
}

static int row_finite(size_t n, const float *x) {
  for (size_t j = 0; j < n; j++)
    if (!isfinite(x[j])) return 0;
  return 1;
}

/* A row's maxima and softmax sums in double: ms, mt the largest student and
 * teacher logits, m the (first) index of ms, zs and zt the sums of
 * exp((x_j - max)/T). The first step of ce_row_f64 and div_row_f64. */
typedef struct row_f64 { double ms, mt, zs, zt; size_t m; } row_f64;

static row_f64 row_sums_f64(size_t n, const float *s, const float *t, double temperature) {
  row_f64 r = {-INFINITY, -INFINITY, 0.0, 0.0, 0};
  for (size_t j = 0; j < n; j++) {
    if (s[j] > r.ms) { r.ms = s[j]; r.m = j; }
    r.mt = t[j] > r.mt ? t[j] : r.mt;
  }
  for (size_t j = 0; j < n; j++) {
    r.zs += exp(((double)s[j] - r.ms) / temperature);
    r.zt += exp(((double)t[j] - r.mt) / temperature);
  }
  return r;
}

/*
 * One cross-entropy row in double: returns sum_j r_j log(q_j + eps) and,
 * when grad is not NULL, writes the gradient. For rows whose float gradient
 * cancels too much (see kernels.h), and for rows whose logit spread exceeds
 * FLT_MAX (see spread_overflows). Slow and plain: the exps are recomputed in
 * each pass rather than stored, since there is no double scratch, and grad
 * may be s itself (each s_j is read before grad_j is written, and the most
 * probable class is written last).
 */
static double ce_row_f64(size_t n, const float *s, const float *t, double temperature,
                         double eps, double scale, float *grad) {
  const row_f64 rs = row_sums_f64(n, s, t, temperature);
  const double ms = rs.ms, mt = rs.mt, zs = rs.zs, zt = rs.zt;
  const size_t m = rs.m;
  double q_sum = 0.0, qw_sum = 0.0, qu_sum = 0.0, loss = 0.0;
  for (size_t j = 0; j < n; j++) {
    double q = exp(((double)s[j] - ms) / temperature) / zs;
    double r = exp(((double)t[j] - mt) / temperature) / zt;
    loss += r * log(q + eps);
    q_sum += q;
    qw_sum += q * (r / (q + eps));
    qu_sum += q * ((q - r + eps) / (q + eps));
  }
  if (!grad) return loss;
  int dominant = zs < 2.0;
  double others = 0.0;
  for (size_t j = 0; j < n; j++) {
    double q = exp(((double)s[j] - ms) / temperature) / zs;
    double r = exp(((double)t[j] - mt) / temperature) / zt;
    double w = r / (q + eps);
    double b = w > KD_U_FORM_W ? (q - r + eps) / (q + eps) * q_sum - qu_sum : qw_sum - w * q_sum;
    double g = scale * q * b;
    if (dominant && j == m) continue;
    others += g;
    grad[j] = (float)g;
  }
  if (dominant) grad[m] = (float)-others;
  return loss;
}

/* The reverse KL gradient of a row the teacher masks where the student has
 * mass (kdloss.h): +-inf, or 0 where the student masks the class. */
static void rkl_inf_grad(size_t n, const float *s, const float *t, double scale, float *grad) {
  float inf = scale > 0.0 ? INFINITY : -INFINITY;
  for (size_t j = 0; j < n; j++)
    grad[j] = s[j] == -INFINITY || scale == 0.0 ? 0.0f : t[j] == -INFINITY ? inf : -inf;
}

/*
 * One row of soft cross-entropy, KL, reverse KL or JSD in double, from the
 * logs (log q_j = (s_j - s_max)/T - log zs: finite wherever s_j is). Returns
 * the row distance and writes the gradient when grad is not NULL (grad may
 * be s: the sums come first, then each grad_j from s_j). The rows the float
 * passes cannot do: spreads beyond FLT_MAX, tiny scales, cancelling
 * gradients of the w-form distances.
 */
static double div_row_f64(kd_distance dist, size_t n, const float *s, const float *t,
                          double temperature, double beta, double scale, float *grad) {
  const row_f64 rs = row_sums_f64(n, s, t, temperature);
  const double ms = rs.ms, mt = rs.mt, zs = rs.zs, zt = rs.zt;
  const size_t m = rs.m;
  double lzs = log(zs), lzt = log(zt);
  /* The w-form gradient q_j (sum_k q_k v_k - v_j sum_k q_k) takes v as
   * differences from c, the v of the most probable class (pass -1): v
   * reaches ~1e65 (gaps of 2 FLT_MAX over a tiny T) where its differences
   * are 0, and the double rounding of the sums times v would swamp them. */
  double loss = 0.0, q_sum = 0.0, qv_sum = 0.0, c = 0.0;
  int inf = 0, w_form = dist == KD_KL_DIV_REVERSE || dist == KD_JSD;
  for (int pass = grad && w_form ? -1 : 0; pass < (grad ? 2 : 1); pass++) {
    for (size_t j = pass < 0 ? m : 0; j < (pass < 0 ? m + 1 : n); j++) {
      int sm = s[j] == -INFINITY, tm = t[j] == -INFINITY;
      double lq = ((double)s[j] - ms) / temperature - lzs, q = exp(lq);
      double lr = ((double)t[j] - mt) / temperature - lzt, r = exp(lr);
      double term = 0.0, v = 0.0;
      switch (dist) {
      case KD_SOFT_CROSS_ENTROPY: term = tm ? 0.0 : sm ? INFINITY : -r * lq; break;
      case KD_KL_DIV: term = tm ? 0.0 : sm ? INFINITY : r * (lr - lq); break;
      case KD_KL_DIV_REVERSE:
        term = sm ? 0.0 : tm ? INFINITY : q * (lq - lr);
        v = sm || tm ? 0.0 : lr - lq;
        break;
      default: { /* KD_JSD */
        /* Terms of zero mass are 0 (their logs may be -inf). log M from the
         * logs, as M itself may underflow where r or q does not. */
        double a = lr + log(beta), b = lq + log1p(-beta), hi = fmax(a, b);
        double lm = hi == -INFINITY ? hi : hi + log1p(exp(-fabs(a - b)));
        term = (r > 0.0 ? beta * r * (lr - lm) : 0.0) + (q > 0.0 ? (1.0 - beta) * q * (lq - lm) : 0.0);
        v = q > 0.0 ? -(1.0 - beta) * (lq - lm) : 0.0;
      }
      }
      if (pass < 0) {
        c = v;
      } else if (pass == 0) {
        inf |= isinf(term);
        loss += isinf(term) ? 0.0 : term;
        q_sum += q;
        qv_sum += q * (v - c);
      } else if (!w_form) {
        grad[j] = (float)(scale * (q - r));
      } else {
        grad[j] = (float)(scale * q * (qv_sum - (v - c) * q_sum));
      }
    }
    if (inf && dist == KD_KL_DIV_REVERSE && grad) {
      rkl_inf_grad(n, s, t, scale, grad);
      break;
    }
  }
  return inf ? INFINITY : loss;
}

/* Whether x_max - x_j overflows float for some finite x_j. The kernels then
 * get (x_j - x_max)/T = -inf, wrong when T > 1 brings the true value back
 * into range. Only possible when x_max > 2^103 (~1e31), as x_j >= -FLT_MAX:
 * the pass over the row is taken only then. */
static int spread_overflows(size_t n, const float *x, float x_max) {
  if (!(x_max > 1e31f)) return 0;
  for (size_t j = 0; j < n; j++)
    if (isfinite(x[j]) && isinf(x_max - x[j])) return 1;
  return 0;
}

/* FACIL's -sum r_j log((q_j + eps)/(1 + 1e-5)) is LwF's sum with eps = 1e-5/C
 * plus log(1 + 1e-5) per unit of teacher mass (sum r = 1). */
static double ce_eps(const request *r) {
  return r->p.distance == KD_CROSS_ENTROPY_UNIFORM_EPS ? (double)KD_EPS / (double)r->cols
                                                        : (double)KD_EPS;
}
static double ce_offset(const request *r) {
  return r->p.distance == KD_CROSS_ENTROPY_UNIFORM_EPS ? log1p((double)KD_EPS) : 0.0;
}

/* Any softmax row in double: the row distance, and the gradient. */
static double softmax_row_f64(const request *r, const float *s, const float *t, double scale,
                              float *grad) {
  kd_distance d = r->p.distance;
  if (d == KD_CROSS_ENTROPY || d == KD_CROSS_ENTROPY_UNIFORM_EPS)
    return -ce_row_f64(r->cols, s, t, r->p.temperature, (float)ce_eps(r), scale, grad) +
           ce_offset(r);
  return div_row_f64(d, r->cols, s, t, r->p.temperature, r->p.beta, scale, grad);
}

/* The end of a w-form gradient row (cross-entropy, reverse KL, JSD) after
 * pass 4 wrote out (g itself, or scratch when g is the student in place):
 * the dominant class and the conditioning check (kd_ce_grad_redo), the copy.
 * Returns 0, or 1 when the row must be redone in double. */
static int grad_finish(kd_cegrad_fn pass4, const kd_ce_row *row, size_t n, const float *es,
                       const float *et, float *g, float *out, size_t argmax, double zs,
                       const kd_ce_sums *sums) {
  /* zs = 1/q_max: below 2 the most probable class holds over half the mass,
   * and its bracket cancels in either form. The gradient sums to zero over
   * the row, so that class gets minus the sum of the others instead. */
  int dominant = zs < 2.0;
  kd_grad_stats st;
  pass4(n, es, et, out, row, dominant ? argmax : n, &st);
  /* An infinite or NaN element (a product that overflowed in float, the
   * true value maybe finite) is redone too: double rounds it right. */
  if (!(st.max_abs < INFINITY) || isnan(st.max_err)) return 1;
  if (kd_ce_grad_redo(out, dominant, argmax, &st, sums, row)) return 1;
  if (out != g) memcpy(g, out, n * sizeof *g);
  return 0;
}

/* What jsd_fast did: nothing that stands (es and et are q and v by then
 * when g is not NULL), the row, or its distance only (es and et are q and v). */
enum { KD_JSD_NONE, KD_JSD_DONE, KD_JSD_LOSS };

/* JSD by the direct pass (jsd_passes.h has the math and both bounds) after
 * pass 2: the row distance into *d, and the gradient into g (out as for
 * grad_finish) when g is not NULL, as far as the row's bounds meet the
 * contract. */
static int jsd_fast(const kd_kernels *k, kd_ce_row *row, size_t n, const float *s,
                    const float *t, float *es, float *et, float *g, float *out, size_t argmax,
                    double zs, double zt, double scale, double *d) {
  const double u = 0x1p-24, beta = row->beta, lz = row->log_zs_zt;
  kd_jsd_sums js;
  double sum = k->jsdfast(n, s, t, es, et, row, (float)(beta * zs / zt), g != NULL, &js);
  /* jsd_passes.h's E with H_beta <= log 2 and log(c1 + c2) <= max(lz, 0):
   * no log per row. */
  double dist = -sum / zs;
  double err = u * (-5.0 * js.bc / zs + (12.0 * beta + 3.0) * fmax(lz, 0.0) +
                    2.0 * beta * fabs(lz) + 6.1);
  /* !(a <= b) is true for NaN too: an overflow on the way goes to divstats. */
  if (!isfinite(dist) || !(err <= 6e-6 * dist + 1e-6)) return KD_JSD_NONE;
  *d = dist;
  if (!g) return KD_JSD_DONE;
  if (!isfinite(js.qv)) return KD_JSD_LOSS;
  row->q_sum = (float)js.q;
  row->qw_sum = (float)js.qv;
  row->qu_sum = 0.0f;
  /* |v_j| < 400 (y >= KD_JSD_FLOOR, log M' in [log FLT_MIN, log(n + 1)]). */
  if (scale_below(scale, KD_CE_SCALE_LEAST)) return KD_JSD_LOSS;
  /* lambda's error in the gradient (jsd_passes.h), to be within 5e-6 of the
   * largest: as kd_ce_grad_redo's u_size, which it tests against
   * KD_COND_LIMIT times that. When dominant (as grad_finish decides), the
   * most probable class is minus the sum of the others, and every other
   * class has q_j <= 1 - q_max. */
  double q_max = 1.0 / zs, e_bar = js.qw + js.q;
  double size = zs < 2.0 ? fmax(js.qw_max, js.qw) + (1.0 - q_max) * (1.0 + e_bar)
                         : fmax(js.qw_max, js.qw_top) + q_max * (1.0 + e_bar);
  double v_err = (1.0 - beta) * 3.6 * u * size;
  /* A row that must fail the test (grad_j <= scale q_j (|sum q v| + |v_j| sum q),
   * the dominant class <= the sum of the others) skips cegrad. */
  double most = js.q * (1.0 - beta) * js.ql_max + q_max * fabs(js.qv);
  if (zs < 2.0) most = fmax(most, js.q * (1.0 - beta) * js.qw + fabs(js.qv));
  if (v_err > 5e-6 * 1.001 * most) return KD_JSD_LOSS;
  kd_ce_sums w_form = {js.q, js.qv, 0.0, (float)(v_err * (KD_COND_LIMIT / 5e-6) / js.q)};
  return grad_finish(k->cegrad, row, n, es, et, g, out, argmax, zs, &w_form) ? KD_JSD_LOSS
                                                                               : KD_JSD_DONE;
}

/* One softmax row after pass 1, in float: the row distance, and the
 * gradient into g when g is not NULL. es: scratch of 2*cols floats. */
static double softmax_row(const kd_kernels *k, const request *r, const float *s,
                          const float *t, kd_ce_row *row, float *es, float *g, double scale) {
  size_t n = r->cols;
  float *et = es + n;
  kd_distance dist = r->p.distance;
  double zs, zt;
  row->max_gap = row->t_max - row->s_max; /* TwoSum: the rounding error too */
  float bb = row->max_gap - row->t_max;
  row->max_gap_lo = (row->t_max - (row->max_gap - bb)) + (-row->s_max - bb);
  /* The loss alone of SCE, KL and reverse KL needs no scratch and no third
   * pass (div_passes.h): two exps per element. */
  if (!g && (dist == KD_SOFT_CROSS_ENTROPY || dist == KD_KL_DIV || dist == KD_KL_DIV_REVERSE)) {
    int kind = dist == KD_SOFT_CROSS_ENTROPY ? 0 : dist == KD_KL_DIV ? 1 : 2;
    double sum = k->divloss(n, s, t, row, kind, &zs, &zt) * row->inv_temp;
    double d = kind == 0 ? sum / zt + log(zs) : kind == 1 ? sum / zt + log(zs / zt)
                                                         : -sum / zs - log(zs / zt);
    /* Non-finite: a masked class's infinite distance, or float overflowing
     * on the way (a gap over T, or a partial sum, beyond FLT_MAX) where the
     * result may be finite. The double path tells them apart. */
    return isfinite(d) ? d : softmax_row_f64(r, s, t, scale, NULL);
  }
  /* Reverse KL with its gradient: three passes where the row allows
   * (div_passes.h); et gets the gap parts. */
  int rkl3 = g && dist == KD_KL_DIV_REVERSE;
  double num = 0.0;
  float p_max = 0.0f;
  size_t argmax = rkl3 ? k->expsum2rkl(n, s, t, row, es, et, &zs, &zt, &num, &p_max)
                       : k->expsum2(n, s, t, row, es, et, &zs, &zt);
  row->inv_zs = (float)(1.0 / zs);
  row->inv_zt = (float)(1.0 / zt);
  /* The cross-entropies' loss alone needs neither log(zs/zt) nor pass 3b. */
  double offset = ce_offset(r);
  int ce = dist == KD_CROSS_ENTROPY || dist == KD_CROSS_ENTROPY_UNIFORM_EPS;
  if (ce && !g) return -k->celoss(n, es, et, row) + offset;
  double log_zs_zt = log(zs / zt);
  row->log_zs_zt = (float)log_zs_zt;
  /* In place, a w-form gradient goes to scratch first: the student row must
   * survive until the row is known not to need the double path. */
  float *out = g == s ? et : g;
  if (dist == KD_SOFT_CROSS_ENTROPY || dist == KD_KL_DIV) {
    int kl = dist == KD_KL_DIV;
    kd_grad_stats st;
    double d = k->klsum(n, s, t, es, et, row, kl, g ? out : NULL, &st) / zt +
               (kl ? log_zs_zt : log(zs));
    /* As above for d; !(a <= b) is true for NaN too. */
    if (!isfinite(d) || (g && !(st.max_err <= KD_COND_LIMIT * st.max_abs)))
      return softmax_row_f64(r, s, t, scale, g);
    if (g && out != g) memcpy(g, out, n * sizeof *g);
    return d;
  }
  if (dist == KD_KL_DIV_REVERSE || dist == KD_JSD) {
    kd_ce_sums sums;
    int jsd = dist == KD_JSD;
    double d;
    /* The direct pass's gradient error is ~1/beta of the gradient's size
     * where divstats' is not: below KD_JSD_FAST_BETA its gradient would
     * rarely stand, and divstats does the row alone. */
    int tried = jsd && (!g || row->beta >= KD_JSD_FAST_BETA);
    int fast = tried ? jsd_fast(k, row, n, s, t, es, et, g, out, argmax, zs, zt, scale, &d)
                     : KD_JSD_NONE;
    if (fast == KD_JSD_DONE) return d;
    kd_cegrad_fn pass4 = k->cegrad;
    /* A -inf logit leaves num NaN or -inf: the masked passes below. */
    if (rkl3 && isfinite(num)) {
      d = -row->inv_temp * num / zs - log_zs_zt;
      /* The sums of q_j = es_j/zs and q_j v_j, v_j = p_j/T + log(zs/zt),
       * as the float q and v of pass 3 make them; max |v| bounded by the
       * largest gap. */
      sums.q = zs * row->inv_zs;
      sums.qw = kd_rkl_qv_sum(row, zs, num);
      sums.u_size = (float)(p_max * (double)row->inv_temp + fabsf(row->log_zs_zt));
      pass4 = k->rklgrad;
    } else if (fast == KD_JSD_LOSS) {
      /* The distance stands; the gradient from divstats, which reads q from
       * es with 1/zs = 1 (the q and v it computes are those it would from
       * the exps; its sum, from et = v, is not used). */
      kd_ce_row row_q = *row;
      row_q.inv_zs = 1.0f;
      k->divstats(n, s, t, es, et, &row_q, 1, &sums);
    } else {
      if ((tried || rkl3) && g) k->expsum2(n, s, t, row, es, et, &zs, &zt); /* es, et again */
      double sum = k->divstats(n, s, t, es, et, row, jsd, &sums);
      d = jsd ? sum : -sum / zs - log_zs_zt;
      if (!isfinite(d)) return softmax_row_f64(r, s, t, scale, g);
    }
    if (!g) return d;
    row->q_sum = (float)sums.q;
    row->qw_sum = (float)sums.qw;
    row->qu_sum = 0.0f;
    /* v_j = log(r_j/q_j) beyond float (an overflowed (t_j - s_j)/T) breaks
     * the w-form sums: double. */
    if (!isfinite(sums.qw) || !(sums.u_size < INFINITY))
      return softmax_row_f64(r, s, t, scale, g);
    double least = KD_CE_SCALE_LEAST * fmax(1.0, sums.u_size / 1e5);
    /* All classes w-form: no u-form term in the conditioning check. */
    kd_ce_sums w_form = sums;
    w_form.u_size = 0.0f;
    if (scale_below(scale, least) ||
        grad_finish(pass4, row, n, es, et, g, out, argmax, zs, &w_form))
      return softmax_row_f64(r, s, t, scale, g);
    return d;
  }
  /* The cross-entropies (LwF, FACIL), loss and gradient. */
  kd_ce_sums sums;
  row->grad_out = out;
  double d = -k->cestats(n, s, t, es, et, row, &sums) + offset;
  /* sum q = sum es_j/zs: zs times the 1/zs the q_j were formed with, as close
   * to the sum of the rounded q_j as their own float sum would be. */
  row->q_sum = (float)(zs * row->inv_zs);
  row->qw_sum = (float)sums.qw;
  row->qu_sum = (float)sums.qu;
  if (grad_finish(k->cegrad, row, n, es, et, g, out, argmax, zs, &sums))
    softmax_row_f64(r, s, t, scale, g);
  return d;
}

/* What a chunk reports per row: the row's contribution to the reduced sum
 * (w_i times its distance, un-normalised by C for the element-wise ones) and
 * row_loss. */
static void put_row_loss(const request *r, size_t i, double w, double d) {
  if (!r->row_loss) return;
  double c = (double)r->p.factor * w;
  r->row_loss[i] = c == 0.0 ? 0.0f : (float)(c * d);
}

static void zero_row(const request *r, size_t i) {
  if (r->grad) memset(r->grad + i * r->ldg, 0, r->cols * sizeof(float));
  put_row_loss(r, i, 0.0, 0.0);
}

/* Cross-entropy (LwF) over short rows (kernels.h), rows [i0, i1), with no
 * row weights (one gradient scale for every row): the kernel takes
 * KD_SHORT_ROWS rows a call; the rows it leaves to double are redone here,
 * and the rows are summed in order, as softmax_rows does. */
static kd_status ce_rows_short(const kd_kernels *k, const request *r, size_t i0, size_t i1,
                               double scale, double *acc) {
  kd_ce_short a = {r->cols, NULL, NULL, r->lds, r->ldt, NULL, r->ldg,
                   1.0f / r->p.temperature, (float)scale, r->p.temperature > 1.0f};
  double total = 0.0;
  for (size_t i = i0; i < i1; i += KD_SHORT_ROWS) {
    size_t m = i1 - i < KD_SHORT_ROWS ? i1 - i : KD_SHORT_ROWS;
    float loss[KD_SHORT_ROWS];
    unsigned char flag[KD_SHORT_ROWS];
    a.s = r->s + i * r->lds;
    a.t = r->t + i * r->ldt;
    a.grad = r->grad ? r->grad + i * r->ldg : NULL;
    k->ceshort(&a, m, loss, flag);
    for (size_t h = 0; h < m; h++) {
      if (flag[h] == KD_ROW_NONFINITE) return KD_ERR_NONFINITE;
      double d = flag[h] == KD_ROW_OK
                     ? -(double)loss[h]
                     : softmax_row_f64(r, a.s + h * r->lds, a.t + h * r->ldt, scale,
                                       a.grad ? a.grad + h * r->ldg : NULL);
      total += d;
      put_row_loss(r, i + h, 1.0, d);
    }
  }
  *acc = total;
  return KD_OK;
}

/* Softmax distances, rows [i0, i1): sum_i w_i d_i, the gradient and row_loss.
 * es: scratch of 2*cols floats. */
static kd_status softmax_rows(const kd_kernels *k, const request *r, size_t i0, size_t i1,
                              float *es, double *acc) {
  kd_status status = KD_OK;
  kd_ce_row row;
  row.inv_temp = 1.0f / r->p.temperature;
  row.eps = (float)ce_eps(r);
  row.beta = r->p.beta;
  kd_distance dist = r->p.distance;
  double least = KD_CE_SCALE_LEAST;
  if (dist == KD_CROSS_ENTROPY_UNIFORM_EPS) least *= (double)r->cols;
  /* Per call, not per row: a temperature above 1 (only then can an
   * overflowed shift matter). JSD with beta below KD_JSD_F64_BETA would
   * cancel in float (div_passes.h), and its gradient below
   * KD_JSD_F64_GRAD_BETA: double. */
  int hot = r->p.temperature > 1.0f;
  int f64 = dist == KD_JSD &&
            r->p.beta < (r->grad ? KD_JSD_F64_GRAD_BETA : KD_JSD_F64_BETA);
  double unit_scale = grad_scale(r, 1.0);
  if (dist == KD_CROSS_ENTROPY && r->cols <= KD_SHORT_COLS && !r->p.row_weight &&
      !(r->grad && scale_below(unit_scale, least)))
    return ce_rows_short(k, r, i0, i1, unit_scale, acc);
  double total = 0.0;
  for (size_t i = i0; i < i1; i++) {
    double w = weight(r, i);
    if (w == 0.0) { /* never read */
      zero_row(r, i);
      continue;
    }
    const float *s = r->s + i * r->lds, *t = r->t + i * r->ldt;
    float *g = r->grad ? r->grad + i * r->ldg : NULL;
    int last = i + 1 == r->rows;
    row.next_s = last ? s : s + r->lds;
    row.next_t = last ? t : t + r->ldt;
    double scale = grad_scale(r, w);
    row.grad_scale = (float)scale;
    if (k->rmax2(r->cols, s, t, &row.s_max, &row.t_max) || row.s_max == -INFINITY ||
        row.t_max == -INFINITY) {
      status = KD_ERR_NONFINITE;
      break;
    }
    /* Rows the float kernels cannot shift safely go to double, which holds
     * any difference of two floats: a spread beyond FLT_MAX with T > 1, or a
     * gap between the maxima beyond it (the kernels' max_gap), or a
     * tiny gradient scale. */
    double d;
    if (f64 || isinf(row.t_max - row.s_max) || (g && scale_below(scale, least)) ||
        (hot && (spread_overflows(r->cols, s, row.s_max) ||
                 spread_overflows(r->cols, t, row.t_max))))
      d = softmax_row_f64(r, s, t, scale, g);
    else
      d = softmax_row(k, r, s, t, &row, es, g, scale);
    /* Every distance here but LwF's is >= 0 (a divergence, or -sum r log p
     * with p <= 1): a near-0 one rounded below 0 is 0, the nearer value, and
     * one that factor * w_i takes beyond float is then +-inf with the sign
     * of factor, not the rounding's. */
    if (d < 0.0 && dist != KD_CROSS_ENTROPY) d = 0.0;
    total += w * d;
    put_row_loss(r, i, w, d);
  }
  *acc = total;
  return status;
}

/* The MSE or BCE sum of one row in double, and its gradient when grad is not
 * NULL (grad may be s: each s_j is read before grad_j is written). For rows
 * whose float sum overflowed although the inputs are finite (MSE: |s - t|
 * beyond ~1.8e19; BCE: |s| near FLT_MAX), and for tiny gradient scales; both
 * are rare. */
static double elem_row_f64(kd_distance dist, size_t n, const float *s, const float *t,
                           double scale, float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    double x = s[j], y = t[j], d = x - y;
    if (dist == KD_MSE) {
      sum += d * d;
      if (grad) grad[j] = (float)(scale * d);
      continue;
    }
    /* BCE as the float passes write it (bce_scalar.c), in double. */
    double ex = exp(-fabs(x)), ey = exp(-fabs(y)), ry = 1.0 / (1.0 + ey);
    sum += fabs(x) * ((x >= 0.0) == (y >= 0.0) ? ey * ry : ry) + log1p(ex);
    if (grad) {
      double hi = fmax(x, y), lo = fmin(x, y);
      double sig_hi = 1.0 / (1.0 + exp(-hi)), sig_neg_lo = 1.0 / (1.0 + exp(lo));
      double g = sig_hi * sig_neg_lo * -expm1(-fabs(d));
      grad[j] = (float)(scale * (x > y ? g : -g));
    }
  }
  return sum;
}

/* In place, the gradient goes to stack scratch a chunk at a time, so that s
 * is still there if the chunk must be redone in double (out of place, the
 * row is one chunk). The chunk is a multiple of KD_BLOCK, the kernels' float
 * summation block. */
#define KD_ELEM_CHUNK (4 * KD_BLOCK)

/* One row's sum and gradient (grad NULL: the sum only); -1 for a non-finite input. */
static double elem_row(const kd_kernels *k, kd_distance dist, size_t n, const float *s,
                       const float *t, double scale, float *grad) {
  float buf[KD_ELEM_CHUNK];
  size_t chunk = grad == s ? KD_ELEM_CHUNK : n;
  int mse = dist == KD_MSE;
  double total = 0.0;
  for (size_t j = 0; j < n; j += chunk) {
    size_t len = n - j < chunk ? n - j : chunk;
    float *g = grad == s ? buf : grad ? grad + j : NULL;
    double sum = g ? (mse ? k->msegrad : k->bcegrad)(len, s + j, t + j, (float)scale, g)
                   : (mse ? k->mse : k->bce)(len, s + j, t + j);
    if (!isfinite(sum)) {
      if (!row_finite(len, s + j) || !row_finite(len, t + j)) return -1.0;
      sum = elem_row_f64(dist, len, s + j, t + j, scale, grad ? grad + j : NULL);
    } else if (g == buf) {
      memcpy(grad + j, buf, len * sizeof *buf);
    }
    total += sum;
  }
  return total;
}

/* MSE and BCE, rows [i0, i1): sum_i w_i sum_j (element). */
static kd_status elem_rows(const kd_kernels *k, const request *r, size_t i0, size_t i1,
                           double *acc) {
  kd_distance dist = r->p.distance;
  double least = dist == KD_MSE ? FLT_MIN : KD_CE_SCALE_LEAST;
  double total = 0.0;
  for (size_t i = i0; i < i1; i++) {
    double w = weight(r, i);
    if (w == 0.0) { /* never read */
      zero_row(r, i);
      continue;
    }
    const float *s = r->s + i * r->lds, *t = r->t + i * r->ldt;
    float *g = r->grad ? r->grad + i * r->ldg : NULL;
    double scale = grad_scale(r, w), sum;
    if (g && scale_below(scale, least))
      sum = row_finite(r->cols, s) && row_finite(r->cols, t)
                ? elem_row_f64(dist, r->cols, s, t, scale, g)
                : -1.0;
    else
      sum = elem_row(k, dist, r->cols, s, t, scale, g);
    if (sum < 0.0) return KD_ERR_NONFINITE;
    total += w * sum;
    put_row_loss(r, i, w, sum / (double)r->cols);
  }
  *acc = total;
  return KD_OK;
}

typedef struct rows_job { const kd_kernels *k; const request *r; } rows_job;

/* One chunk of rows (a kd_chunk_fn): the unit of work and of summation. */
static kd_status rows_chunk(void *ctx, size_t i0, size_t i1, float *scratch, double *sum) {
  const rows_job *j = ctx;
  if (!is_softmax(j->r->p.distance)) return elem_rows(j->k, j->r, i0, i1, sum);
  float stack[2 * KD_STACK_COLS];
  return softmax_rows(j->k, j->r, i0, i1, scratch ? scratch : stack, sum);
}

static kd_status run(request *r) {
  kd_status status = check(r);
  if (status != KD_OK) return status;
  rows_job j = {kd_kernels_current(), r};
  int softmax = is_softmax(r->p.distance);
  kd_distance d = r->p.distance;
  int no_scratch = !r->grad && (d == KD_SOFT_CROSS_ENTROPY || d == KD_KL_DIV ||
                                d == KD_KL_DIV_REVERSE); /* divloss */
  size_t scratch = softmax && !no_scratch && r->cols > KD_STACK_COLS ? 2 * r->cols : 0;
  double acc = 0.0;
  /* An element's work: CE 2 exp + 1 log; MSE 2 loads; BCE 2 exp + 1 log. */
  size_t cost = r->p.distance == KD_MSE ? 1 : 4;
  status = kd_run_chunks(r->rows, r->cols, cost, scratch, rows_chunk, &j, &acc);
  if (status == KD_ERR_NOMEM) return status;
  /* loss = factor * sum_i w_i d_i / (sum_i w_i) (MEAN), the element-wise
   * distances' 1/C joining the divisor. With factor 0, infinite distances
   * contribute 0 as they do to row_loss. */
  double den = r->p.reduction == KD_REDUCE_MEAN ? r->weight_sum : 1.0;
  if (!softmax) den *= (double)r->cols;
  double mean = den > 0.0 ? acc / den : 0.0;
  if (r->p.factor == 0.0f && isinf(mean)) mean = 0.0;
  if (r->loss) *r->loss = status == KD_OK ? (float)(r->p.factor * mean) : NAN;
  return status;
}

/* The older entry points: kd_loss_ex_f32 with no weights, MEAN, no row_loss;
 * KD_JSD takes beta = 1/2 there. */
static kd_params legacy_params(kd_distance distance, float factor, float temperature) {
  kd_params p = {distance, factor, temperature, 0.5f, KD_REDUCE_MEAN, NULL};
  return p;
}

KD_API kd_status kd_loss_f32(kd_distance distance, float factor, float temperature,
                             size_t rows, size_t cols,
                             const float *student, size_t ld_student,
                             const float *teacher, size_t ld_teacher,
                             float *loss) {
  request r = {legacy_params(distance, factor, temperature), rows, cols, student, teacher,
               ld_student, ld_teacher, loss, NULL, NULL, 0, 1, 0, 0, 0, 0, 0};
  return run(&r);
}

KD_API kd_status kd_loss_grad_f32(kd_distance distance, float factor, float temperature,
                                  size_t rows, size_t cols,
                                  const float *student, size_t ld_student,
                                  const float *teacher, size_t ld_teacher,
                                  float *loss,
                                  float *grad, size_t ld_grad) {
  request r = {legacy_params(distance, factor, temperature), rows, cols, student, teacher,
               ld_student, ld_teacher, loss, NULL, grad, ld_grad, 0, 1, 0, 0, 0, 0};
  return run(&r);
}

KD_API kd_status kd_loss_ex_f32(const kd_params *p, size_t rows, size_t cols,
                                const float *student, size_t ld_student,
                                const float *teacher, size_t ld_teacher,
                                float *loss, float *row_loss,
                                float *grad, size_t ld_grad) {
  if (!p) return KD_ERR_NULL;
  request r = {*p, rows, cols, student, teacher, ld_student, ld_teacher, loss, row_loss,
               grad, ld_grad, 0, 0, 1, 0, 0, 0};
  return run(&r);
}
