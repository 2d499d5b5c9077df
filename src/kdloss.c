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

typedef struct request {
  kd_distance distance;
  float factor, temperature;
  size_t rows, cols;
  const float *s, *t;
  size_t lds, ldt;
  float *loss;   /* may be NULL when with_grad */
  float *grad;   /* required when with_grad */
  size_t ldg;
  int with_grad; /* kd_loss_grad_f32 */
} request;

/* Every argument error, in the documented order, before any work. */
static kd_status check(const request *r) {
  if (r->distance != KD_CROSS_ENTROPY && r->distance != KD_MSE) return KD_ERR_DISTANCE;
  if (!r->s || !r->t || (r->with_grad ? !r->grad : !r->loss)) return KD_ERR_NULL;
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
  if (!isfinite(r->factor)) return KD_ERR_FACTOR;
  if (r->distance == KD_CROSS_ENTROPY &&
      !(r->temperature >= FLT_MIN && r->temperature <= FLT_MAX)) /* 1/T must be finite */
    return KD_ERR_TEMPERATURE;
  if (r->grad) {
    double scale = r->distance == KD_MSE
                       ? 2.0 * r->factor / ((double)r->rows * (double)r->cols)
                       : r->factor / ((double)r->rows * r->temperature);
    if (!(fabs(scale) <= FLT_MAX)) return KD_ERR_FACTOR;
  }
  span s = span_of(r->s, r->rows, r->cols, r->lds, sizeof(float));
  span t = span_of(r->t, r->rows, r->cols, r->ldt, sizeof(float));
  if (r->grad) {
    span g = span_of(r->grad, r->rows, r->cols, r->ldg, sizeof(float));
    int in_place = r->grad == r->s && r->ldg == r->lds;
    if ((overlap(g, s) && !in_place) || overlap(g, t)) return KD_ERR_ALIAS;
    if (r->loss && overlap(span_of(r->loss, 1, 1, 1, sizeof(float)), g)) return KD_ERR_ALIAS;
  }
  if (r->loss) {
    span l = span_of(r->loss, 1, 1, 1, sizeof(float));
    if (overlap(l, s) || overlap(l, t)) return KD_ERR_ALIAS;
  }
  return KD_OK;
}

/* A gradient scale below `least` takes the double path. MSE: below FLT_MIN,
 * the float scale itself is subnormal and has few significant bits.
 * Cross-entropy: the kernels form scale * q_j * B_j in float, and a product
 * below FLT_MIN loses up to 2^-150 * |B_j| <= 2^-150 * 2e5 absolute, which the
 * bound's absolute term 1e-12 * scale covers only from 2^-90 (~8e-28) up. */
#define KD_CE_SCALE_LEAST 0x1p-90
static int scale_below(double scale, double least) {
  return scale != 0.0 && fabs(scale) < least;
}

static int row_finite(size_t n, const float *x) {
  for (size_t j = 0; j < n; j++)
    if (!isfinite(x[j])) return 0;
  return 1;
}

/*
 * One cross-entropy row in double: returns sum_j r_j log(q_j + 1e-5) and,
 * when grad is not NULL, writes the gradient. For rows whose float gradient
 * cancels too much (see kernels.h), and for rows whose logit spread exceeds
 * FLT_MAX (see spread_overflows). Slow and plain: the exps are recomputed in
 * each pass rather than stored, since there is no double scratch, and grad
 * may be s itself (each s_j is read before grad_j is written, and the most
 * probable class is written last).
 */
static double ce_row_f64(size_t n, const float *s, const float *t, double temperature,
                         double scale, float *grad) {
  double ms = -INFINITY, mt = -INFINITY;
  size_t m = 0;
  for (size_t j = 0; j < n; j++) {
    if (s[j] > ms) { ms = s[j]; m = j; }
    mt = t[j] > mt ? t[j] : mt;
  }
  double zs = 0.0, zt = 0.0;
  for (size_t j = 0; j < n; j++) {
    zs += exp(((double)s[j] - ms) / temperature);
    zt += exp(((double)t[j] - mt) / temperature);
  }
  double q_sum = 0.0, qw_sum = 0.0, qu_sum = 0.0, loss = 0.0;
  for (size_t j = 0; j < n; j++) {
    double q = exp(((double)s[j] - ms) / temperature) / zs;
    double r = exp(((double)t[j] - mt) / temperature) / zt;
    loss += r * log(q + KD_EPS);
    q_sum += q;
    qw_sum += q * (r / (q + KD_EPS));
    qu_sum += q * ((q - r + KD_EPS) / (q + KD_EPS));
  }
  if (!grad) return loss;
  int dominant = zs < 2.0;
  double others = 0.0;
  for (size_t j = 0; j < n; j++) {
    double q = exp(((double)s[j] - ms) / temperature) / zs;
    double r = exp(((double)t[j] - mt) / temperature) / zt;
    double w = r / (q + KD_EPS);
    double b = w > KD_U_FORM_W ? (q - r + KD_EPS) / (q + KD_EPS) * q_sum - qu_sum : qw_sum - w * q_sum;
    double g = scale * q * b;
    if (dominant && j == m) continue;
    others += g;
    grad[j] = (float)g;
  }
  if (dominant) grad[m] = (float)-others;
  return loss;
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

/* Cross-entropy, rows [i0, i1): sum over rows of sum_j r_j log(q_j + 1e-5),
 * and the gradient. es: scratch of 2*cols floats. */
static kd_status ce_rows(const kd_kernels *k, const request *r, size_t i0, size_t i1, float *es,
                         double *acc) {
  float *et = es + r->cols;
  kd_status status = KD_OK;
  kd_ce_row row;
  row.inv_temp = 1.0f / r->temperature;
  double grad_scale = r->factor / ((double)r->rows * r->temperature);
  row.grad_scale = (float)grad_scale;
  /* Per call, not per row: a gradient scale too small for float products,
   * and a temperature above 1 (only then can an overflowed shift matter). */
  int tiny_scale = r->grad && scale_below(grad_scale, KD_CE_SCALE_LEAST);
  int hot = r->temperature > 1.0f;
  double total = 0.0;
  for (size_t i = i0; i < i1; i++) {
    const float *s = r->s + i * r->lds, *t = r->t + i * r->ldt;
    int last = i + 1 == r->rows;
    row.next_s = last ? s : s + r->lds;
    row.next_t = last ? t : t + r->ldt;
    if (k->rmax2(r->cols, s, t, &row.s_max, &row.t_max) || row.s_max == -INFINITY ||
        row.t_max == -INFINITY) {
      status = KD_ERR_NONFINITE;
      break;
    }
    /* Rows the float kernels cannot shift safely go to double, which holds
     * any difference of two floats: a spread beyond FLT_MAX with T > 1, or a
     * gap between the maxima beyond it (the kernels' max_gap), or a
     * tiny gradient scale. */
    if (isinf(row.t_max - row.s_max) || tiny_scale ||
        (hot && (spread_overflows(r->cols, s, row.s_max) ||
                 spread_overflows(r->cols, t, row.t_max)))) {
      total += ce_row_f64(r->cols, s, t, r->temperature, grad_scale,
                          r->grad ? r->grad + i * r->ldg : NULL);
      continue;
    }
    double zs, zt;
    size_t argmax = k->expsum2(r->cols, s, t, &row, es, et, &zs, &zt);
    row.inv_zs = (float)(1.0 / zs);
    row.inv_zt = (float)(1.0 / zt);
    if (!r->grad) {
      total += k->celoss(r->cols, es, et, &row);
      continue;
    }
    kd_ce_sums sums;
    row.log_zs_zt = (float)log(zs / zt);
    row.max_gap = row.t_max - row.s_max; /* TwoSum: the rounding error too */
    float bb = row.max_gap - row.t_max;
    row.max_gap_lo = (row.t_max - (row.max_gap - bb)) + (-row.s_max - bb);
    total += k->cestats(r->cols, s, t, es, et, &row, &sums);
    row.q_sum = (float)sums.q;
    row.qw_sum = (float)sums.qw;
    row.qu_sum = (float)sums.qu;
    /* zs = 1/q_max: below 2 the most probable class holds over half the mass,
     * and its bracket cancels in either form. The gradient sums to zero over
     * the row, so that class gets minus the sum of the others instead. */
    int dominant = zs < 2.0;
    /* In place, the gradient goes to scratch first: the student row must
     * survive until the row is known not to need the double path. */
    float *g = r->grad + i * r->ldg, *out = g == s ? et : g;
    kd_grad_stats st;
    k->cegrad(r->cols, es, et, out, &row, dominant ? argmax : r->cols, &st);
    float max_abs = st.max_abs;
    if (dominant) {
      out[argmax] = (float)-st.others;
      max_abs = fabsf(out[argmax]) > max_abs ? fabsf(out[argmax]) : max_abs;
    }
    float size = fabsf(row.grad_scale) * sums.u_size * row.q_sum;
    size = st.max_err > size ? st.max_err : size;
    if (size > KD_COND_LIMIT * max_abs)
      ce_row_f64(r->cols, s, t, r->temperature, grad_scale, g);
    else if (out != g)
      memcpy(g, out, r->cols * sizeof *g);
  }
  *acc = total;
  return status;
}

/* The MSE sum of one row in double, and its gradient when grad is not NULL
 * (grad may be s: each s_j is read before grad_j is written). For rows whose
 * float sum overflowed although the inputs are finite (|s - t| beyond
 * ~1.8e19), and for subnormal gradient scales; both are rare. */
static double mse_row_f64(size_t n, const float *s, const float *t, double scale, float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    double d = (double)s[j] - (double)t[j];
    sum += d * d;
    if (grad) grad[j] = (float)(scale * d);
  }
  return sum;
}

/* In place, the gradient goes to stack scratch a chunk at a time, so that s
 * is still there if the chunk must be redone in double (out of place, the
 * row is one chunk). The chunk is a multiple of KD_BLOCK, the kernels' float
 * summation block. */
#define KD_MSE_CHUNK (4 * KD_BLOCK)

/* One row's sum and gradient (grad NULL: the sum only); -1 for a non-finite input. */
static double mse_row(const kd_kernels *k, size_t n, const float *s, const float *t,
                      double scale, float *grad) {
  float buf[KD_MSE_CHUNK];
  size_t chunk = grad == s ? KD_MSE_CHUNK : n;
  double total = 0.0;
  for (size_t j = 0; j < n; j += chunk) {
    size_t len = n - j < chunk ? n - j : chunk;
    float *g = grad == s ? buf : grad ? grad + j : NULL;
    double sum = g ? k->msegrad(len, s + j, t + j, (float)scale, g) : k->mse(len, s + j, t + j);
    if (!isfinite(sum)) {
      if (!row_finite(len, s + j) || !row_finite(len, t + j)) return -1.0;
      sum = mse_row_f64(len, s + j, t + j, scale, grad ? grad + j : NULL);
    } else if (g == buf) {
      memcpy(grad + j, buf, len * sizeof *buf);
    }
    total += sum;
  }
  return total;
}

/* MSE, rows [i0, i1). */
static kd_status mse_rows(const kd_kernels *k, const request *r, size_t i0, size_t i1,
                          double *acc) {
  double scale = 2.0 * r->factor / ((double)r->rows * (double)r->cols);
  int f64 = r->grad && scale_below(scale, FLT_MIN);
  double total = 0.0;
  for (size_t i = i0; i < i1; i++) {
    const float *s = r->s + i * r->lds, *t = r->t + i * r->ldt;
    float *g = r->grad ? r->grad + i * r->ldg : NULL;
    double sum;
    if (f64)
      sum = row_finite(r->cols, s) && row_finite(r->cols, t)
                ? mse_row_f64(r->cols, s, t, scale, g)
                : -1.0;
    else
      sum = mse_row(k, r->cols, s, t, scale, g);
    if (sum < 0.0) return KD_ERR_NONFINITE;
    total += sum;
  }
  *acc = total;
  return KD_OK;
}

typedef struct rows_job { const kd_kernels *k; const request *r; } rows_job;

/* One chunk of rows (a kd_chunk_fn): the unit of work and of summation. */
static kd_status rows_chunk(void *ctx, size_t i0, size_t i1, float *scratch, double *sum) {
  const rows_job *j = ctx;
  if (j->r->distance == KD_MSE) return mse_rows(j->k, j->r, i0, i1, sum);
  float stack[2 * KD_STACK_COLS];
  return ce_rows(j->k, j->r, i0, i1, scratch ? scratch : stack, sum);
}

static kd_status run(const request *r) {
  kd_status status = check(r);
  if (status != KD_OK) return status;
  rows_job j = {kd_kernels_current(), r};
  size_t scratch = r->distance == KD_CROSS_ENTROPY && r->cols > KD_STACK_COLS ? 2 * r->cols : 0;
  double acc = 0.0, loss;
  size_t cost = r->distance == KD_MSE ? 1 : 4; /* a CE element: 2 exp, 1 log; MSE: 2 loads */
  status = kd_run_chunks(r->rows, r->cols, cost, scratch, rows_chunk, &j, &acc);
  if (r->distance == KD_MSE)
    loss = r->factor * (acc / ((double)r->rows * (double)r->cols));
  else
    loss = -(double)r->factor * (acc / (double)r->rows);
  if (status == KD_ERR_NOMEM) return status;
  if (r->loss) *r->loss = status == KD_OK ? (float)loss : NAN;
  return status;
}

KD_API kd_status kd_loss_f32(kd_distance distance, float factor, float temperature,
                             size_t rows, size_t cols,
                             const float *student, size_t ld_student,
                             const float *teacher, size_t ld_teacher,
                             float *loss) {
  request r = {distance, factor, temperature, rows, cols, student, teacher,
               ld_student, ld_teacher, loss, NULL, 0, 0};
  return run(&r);
}

KD_API kd_status kd_loss_grad_f32(kd_distance distance, float factor, float temperature,
                                  size_t rows, size_t cols,
                                  const float *student, size_t ld_student,
                                  const float *teacher, size_t ld_teacher,
                                  float *loss,
                                  float *grad, size_t ld_grad) {
  request r = {distance, factor, temperature, rows, cols, student, teacher,
               ld_student, ld_teacher, loss, grad, ld_grad, 1};
  return run(&r);
}
