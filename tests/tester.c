#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pool.h"
#include "reference.h"
#include "tester.h"
#include "tolerance.h"

tk_stats tk_worst;

void *tk_malloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  assert_non_null(p);
  return p;
}

tk_case tk_default(kd_distance distance, size_t rows, size_t cols) {
  tk_case c = {distance, 1.0f, 2.0f, 0.5f, KD_REDUCE_MEAN, TK_W_NONE, rows, cols, 0, 0,
               TK_RANDOM, 3.0f, 0.0f, 0.0f, 0, 1};
  return c;
}

const kd_distance tk_distances[8] = {KD_CROSS_ENTROPY, KD_MSE, KD_SOFT_CROSS_ENTROPY, KD_KL_DIV,
                                     KD_KL_DIV_REVERSE, KD_CROSS_ENTROPY_UNIFORM_EPS, KD_JSD,
                                     KD_BCE_SIGMOID};

const char *tk_distance_name(kd_distance d) {
  static const char *const names[] = {"ce", "mse", "sce", "kl", "rkl", "facil", "jsd", "bce"};
  return (unsigned)d < TK_COUNT(names) ? names[d] : "unknown";
}

static const char *inputs_name(tk_inputs k) {
  static const char *const names[TK_INPUTS_COUNT] = {
      [TK_RANDOM] = "random", [TK_IDENTICAL] = "identical", [TK_SAME_PTR] = "same-ptr",
      [TK_NEAR] = "near",     [TK_GAPS] = "gaps",           [TK_MASKED] = "masked",
      [TK_PEAKED] = "peaked", [TK_ONE_LEFT] = "one-left",   [TK_TIED] = "tied",
      [TK_MASKED_BOTH] = "masked-both", [TK_RAMP] = "ramp"};
  return names[k];
}

static void describe(const tk_case *c, char *buf, size_t size) {
  snprintf(buf, size,
           "isa=%s %s beta=%g %s weights=%d rows=%zu cols=%zu ld=+%zu offset=%zu inputs=%s "
           "scale=%g shift=%g t_offset=%g T=%g factor=%g in_place=%d seed=%llu",
           kd_isa_name(kd_get_isa()), tk_distance_name(c->distance), c->beta,
           c->reduction == KD_REDUCE_SUM ? "sum" : "mean", (int)c->weights, c->rows, c->cols,
           c->ld_pad, c->offset, inputs_name(c->inputs), c->scale, c->shift, c->t_offset,
           c->temperature,
           c->factor, c->in_place, (unsigned long long)c->seed);
}

/* A matrix in an allocation of exactly offset + span floats, padding = NaN. */
typedef struct matrix { float *base, *p; size_t ld, floats; } matrix;

static matrix matrix_new(const tk_case *c) {
  matrix m;
  m.ld = c->cols + c->ld_pad;
  m.floats = c->offset + (c->rows - 1) * m.ld + c->cols;
  m.base = tk_malloc(m.floats * sizeof(float));
  for (size_t i = 0; i < m.floats; i++) m.base[i] = NAN;
  m.p = m.base + c->offset;
  return m;
}

static void fill(const tk_case *c, matrix *s, matrix *t) {
  uint64_t rng = c->seed;
  for (size_t i = 0; i < c->rows; i++) {
    float *sr = s->p + i * s->ld, *tr = t->p + i * t->ld;
    for (size_t j = 0; j < c->cols; j++) {
      double a = tk_normal(&rng), b = tk_normal(&rng);
      switch (c->inputs) {
      case TK_GAPS:
        sr[j] = (float)(c->scale * (2.0 * tk_uniform(&rng) - 1.0) + c->shift);
        tr[j] = (float)(c->scale * (2.0 * tk_uniform(&rng) - 1.0) + c->shift);
        break;
      case TK_IDENTICAL:
      case TK_SAME_PTR:
      case TK_TIED:
        sr[j] = tr[j] = (float)(c->scale * a + c->shift);
        break;
      case TK_RAMP:
        sr[j] = (float)(c->scale * 0.125 * (double)j + c->shift);
        tr[j] = (float)(c->scale * 0.1 * (double)j + c->shift);
        break;
      case TK_NEAR:
        sr[j] = (float)(c->scale * a + c->shift);
        tr[j] = (float)(c->scale * (a + 1e-3 * b) + c->shift);
        break;
      default:
        sr[j] = (float)(c->scale * a + c->shift);
        tr[j] = (float)(c->scale * b + c->shift);
        break;
      }
    }
    size_t keep = (size_t)(tk_uniform(&rng) * (double)c->cols);
    if (c->inputs == TK_MASKED || c->inputs == TK_ONE_LEFT) {
      for (size_t j = 0; j < c->cols; j++) {
        if (j == keep) continue;
        if (c->inputs == TK_ONE_LEFT || tk_uniform(&rng) < 0.33) sr[j] = -INFINITY;
        if (c->inputs == TK_ONE_LEFT || tk_uniform(&rng) < 0.33) tr[j] = -INFINITY;
      }
    }
    if (c->inputs == TK_MASKED_BOTH)
      for (size_t j = 0; j < c->cols; j++)
        if (j != keep && tk_uniform(&rng) < 0.33) sr[j] = tr[j] = -INFINITY;
    if (c->inputs != TK_SAME_PTR)
      for (size_t j = 0; j < c->cols; j++) tr[j] += c->t_offset;
    if (c->inputs == TK_TIED) {
      size_t other = (keep + 1) % c->cols;
      for (size_t j = 0; j < c->cols; j++) sr[j] = tr[j] = sr[j] - 30.0f - c->scale * 3.0f;
      sr[keep] = tr[keep] = c->shift + 10.0f;
      sr[other] = tr[other] = c->shift + 10.001f;
    }
    if (c->inputs == TK_PEAKED) {
      sr[keep] += 25.0f;
      tr[keep] += 25.0f;
    }
  }
}

static void note(double *worst, double value) {
  if (value > *worst || isnan(value)) *worst = value;
}

/* Whether got meets ref within tol; an infinite reference (a documented
 * infinite distance or gradient) wants exactly that infinity. */
static int within(float got, double ref, double tol) {
  if (isinf(ref)) return got == ref;
  return tk_within(got, ref, tol);
}

static void check_loss(const tk_case *c, const char *what, kd_status st, float loss, double ref,
                       double factor_sum) {
  char buf[400];
  describe(c, buf, sizeof buf);
  if (st != KD_OK) fail_msg("%s: %s returned %s", buf, what, kd_status_str(st));
  if (isinf(ref)) {
    if (loss != ref) fail_msg("%s: %s loss %.9g, reference %g", buf, what, (double)loss, ref);
    return;
  }
  double err = fabs((double)loss - ref);
  double tol = tk_loss_tol(ref, factor_sum);
  note(&tk_worst.loss_tol_frac, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0));
  if (getenv("KDLOSS_TEST_VERBOSE") && err > 0.5 * tol)
    printf("[ CLOSE    ] %s: %s loss %.9g, reference %.17g: %.2f of tolerance\n", buf, what,
           (double)loss, ref, err / tol);
  if (ref != 0) note(&tk_worst.loss_rel, err / fabs(ref));
  if (!within(loss, ref, tol))
    fail_msg("%s: %s loss %.9g, reference %.17g, error %.3g > tolerance %.3g", buf, what,
             (double)loss, ref, err, tol);
}

/* row_loss[i] against its reference, within the loss bound with factor * w_i. */
static void check_row_loss(const tk_case *c, const char *what, const float *got,
                           const double *ref, const float *w) {
  char buf[400];
  describe(c, buf, sizeof buf);
  for (size_t i = 0; i < c->rows; i++) {
    double tol = tk_loss_tol(ref[i], (double)c->factor * (w ? w[i] : 1.0));
    if (!within(got[i], ref[i], tol))
      fail_msg("%s: %s row_loss[%zu] = %.9g, reference %.17g, tolerance %.3g", buf, what, i,
               (double)got[i], ref[i], tol);
  }
}

static void check_grad(const tk_case *c, const matrix *g, const double *ref, double scale) {
  char buf[400];
  describe(c, buf, sizeof buf);
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < c->rows; i++)
    for (size_t j = 0; j < c->cols; j++)
      if (isfinite(ref[i * c->cols + j])) max_ref = fmax(max_ref, fabs(ref[i * c->cols + j]));
  double tol = tk_grad_tol(max_ref, scale);
  for (size_t i = 0; i < c->rows; i++) {
    for (size_t j = 0; j < c->cols; j++) {
      float v = g->p[i * g->ld + j];
      double r = ref[i * c->cols + j], err = isinf(r) ? 0 : fabs((double)v - r);
      if (!within(v, r, tol))
        fail_msg("%s: grad[%zu][%zu] = %.9g, reference %.17g, error %.3g > tolerance %.3g "
                 "(max |ref| %.3g)",
                 buf, i, j, (double)v, r, err, tol, max_ref);
      max_err = fmax(max_err, err);
    }
  }
  note(&tk_worst.grad_tol_frac, max_err / tol);
  if (getenv("KDLOSS_TEST_VERBOSE") && max_err > 0.5 * tol)
    printf("[ CLOSE    ] %s: grad error %.3g, %.2f of tolerance (max |ref| %.3g)\n", buf, max_err,
           max_err / tol, max_ref);
  /* Relative error only where it means something: below 1e-25 the
   * contract's absolute term governs. */
  if (max_ref > 1e-25) note(&tk_worst.grad_rel, max_err / max_ref);
  /* The padding between rows and around the matrix is never written. */
  for (size_t k = 0; k < g->floats; k++) {
    size_t off = k - (size_t)(g->p - g->base), i = off / g->ld, j = off % g->ld;
    int inside = k >= (size_t)(g->p - g->base) && i < c->rows && j < c->cols;
    if (!inside && !isnan(g->base[k]))
      fail_msg("%s: grad allocation written outside the matrix at float %zu", buf, k);
  }
}

/* The case's weights (NULL for TK_W_NONE); the rows of weight 0 are
 * overwritten with NaN in s and t: they must not be read. */
static float *weights_new(const tk_case *c, matrix *s, matrix *t) {
  if (c->weights == TK_W_NONE) return NULL;
  float *w = tk_malloc(c->rows * sizeof *w);
  uint64_t rng = c->seed ^ 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < c->rows; i++) {
    w[i] = c->weights == TK_W_ZERO || tk_uniform(&rng) < 0.25 ? 0.0f
                                                               : (float)(3.0 * tk_uniform(&rng));
    if (w[i] == 0.0f)
      for (size_t j = 0; j < c->cols; j++) s->p[i * s->ld + j] = t->p[i * t->ld + j] = NAN;
  }
  return w;
}

static void same_bits(const tk_case *c, const char *what, const void *a, const void *b,
                      size_t bytes) {
  char buf[400];
  describe(c, buf, sizeof buf);
  if (memcmp(a, b, bytes) != 0) fail_msg("%s: %s", buf, what);
}

void tk_run(const tk_case *c) {
  char buf[400];
  describe(c, buf, sizeof buf);
  matrix s = matrix_new(c), t = matrix_new(c);
  fill(c, &s, &t);
  float *w = weights_new(c, &s, &t);
  const float *teacher = c->inputs == TK_SAME_PTR ? s.p : t.p;
  size_t ld_teacher = c->inputs == TK_SAME_PTR ? s.ld : t.ld;
  kd_params p = {c->distance, c->factor, c->temperature, c->beta, c->reduction, w};
  double w_sum = 0, w_max = 0;
  for (size_t i = 0; i < c->rows; i++) {
    w_sum += w ? w[i] : 1.0;
    w_max = fmax(w_max, w ? w[i] : 1.0);
  }
  double factor_sum = fabs(c->factor) * (c->reduction == KD_REDUCE_SUM ? w_sum : 1.0);
  double scale = tk_grad_scale_ex(&p, c->cols, w_max, w_sum);
  int legacy = !w && c->reduction == KD_REDUCE_MEAN && (c->distance != KD_JSD || c->beta == 0.5f);

  double *ref_grad = tk_malloc(c->rows * c->cols * sizeof(double));
  double *ref_rows = tk_malloc(c->rows * sizeof(double));
  double ref = kd_reference_ex_f64(&p, c->rows, c->cols, s.p, s.ld, teacher, ld_teacher,
                                   ref_rows, ref_grad);
  if (isnan(ref)) fail_msg("%s: the reference is NaN (bad test case)", buf);
  float *rows1 = tk_malloc(c->rows * sizeof(float)), *rows2 = tk_malloc(c->rows * sizeof(float));

  /* Loss only, twice: bitwise identical. The second of each pair runs on the
   * calling thread, the first on the pool of KDLOSS_TEST_THREADS if set. */
  const char *threads = tk_threads_init();
  float loss1 = -1.0f, loss2 = -2.0f;
  kd_status st = kd_loss_ex_f32(&p, c->rows, c->cols, s.p, s.ld, teacher, ld_teacher, &loss1,
                                rows1, NULL, 0);
  check_loss(c, "kd_loss_ex_f32", st, loss1, ref, factor_sum);
  check_row_loss(c, "kd_loss_ex_f32", rows1, ref_rows, w);
  tk_threads_serial(1);
  kd_loss_ex_f32(&p, c->rows, c->cols, s.p, s.ld, teacher, ld_teacher, &loss2, rows2, NULL, 0);
  tk_threads_serial(0);
  if (memcmp(&loss1, &loss2, sizeof loss1) != 0 ||
      memcmp(rows1, rows2, c->rows * sizeof *rows1) != 0)
    fail_msg("%s: kd_loss_ex_f32 not repeatable (threads %s): %.9g then %.9g", buf, threads,
             loss1, loss2);
  if (legacy) {
    float legacy_loss = -3.0f;
    st = kd_loss_f32(c->distance, c->factor, c->temperature, c->rows, c->cols, s.p, s.ld,
                     teacher, ld_teacher, &legacy_loss);
    check_loss(c, "kd_loss_f32", st, legacy_loss, ref, factor_sum);
    same_bits(c, "kd_loss_f32 differs from kd_loss_ex_f32", &legacy_loss, &loss1, sizeof loss1);
  }

  /* Loss and gradient, twice (in place: on two fresh copies of the student),
   * and once more through kd_loss_grad_f32 when the case allows. */
  matrix g[3] = {matrix_new(c), matrix_new(c), matrix_new(c)};
  float grad_loss[3];
  for (int run = 0; run < (legacy ? 3 : 2); run++) {
    if (c->in_place) memcpy(g[run].base, s.base, s.floats * sizeof(float));
    const float *student = c->in_place ? g[run].p : s.p;
    const float *tch = c->inputs == TK_SAME_PTR ? student : teacher;
    if (c->in_place && c->inputs == TK_SAME_PTR) tch = s.p; /* grad may not overlap teacher */
    float loss = -1.0f;
    tk_threads_serial(run == 1);
    if (run < 2)
      st = kd_loss_ex_f32(&p, c->rows, c->cols, student, s.ld, tch, ld_teacher, &loss,
                          run ? rows2 : rows1, g[run].p, g[run].ld);
    else
      st = kd_loss_grad_f32(c->distance, c->factor, c->temperature, c->rows, c->cols, student,
                            s.ld, tch, ld_teacher, &loss, g[run].p, g[run].ld);
    tk_threads_serial(0);
    check_loss(c, run < 2 ? "kd_loss_ex_f32 (grad)" : "kd_loss_grad_f32", st, loss, ref,
               factor_sum);
    check_grad(c, &g[run], ref_grad, scale);
    grad_loss[run] = loss;
  }
  check_row_loss(c, "kd_loss_ex_f32 (grad)", rows1, ref_rows, w);
  for (int run = 1; run < (legacy ? 3 : 2); run++) {
    const char *what = run == 1 ? "loss+grad not repeatable" : "kd_loss_grad_f32 differs from kd_loss_ex_f32";
    same_bits(c, what, &grad_loss[0], &grad_loss[run], sizeof(float));
    for (size_t i = 0; i < c->rows; i++)
      same_bits(c, what, g[0].p + i * g[0].ld, g[run].p + i * g[run].ld, c->cols * sizeof(float));
  }
  same_bits(c, "row_loss not repeatable", rows1, rows2,
            c->rows * sizeof *rows1);

  tk_worst.cases++;
  for (int k = 0; k < 3; k++) free(g[k].base);
  free(rows1);
  free(rows2);
  free(ref_rows);
  free(ref_grad);
  free(w);
  free(s.base);
  free(t.base);
}

void tk_run_strides(tk_case c, uint64_t seed0) {
  static const size_t pads[] = {0, 1, 7, 16};
  static const size_t cols[] = {1, 5, 16, 17, 31, 100};
  for (size_t p = 0; p < TK_COUNT(pads); p++)
    for (size_t k = 0; k < TK_COUNT(cols); k++)
      for (size_t off = 0; off <= 1; off++) {
        c.cols = cols[k];
        c.ld_pad = pads[p];
        c.offset = off;
        c.seed = seed0 + p * 100 + k * 10 + off;
        c.in_place = 0;
        tk_run(&c);
        c.in_place = 1;
        tk_run(&c);
      }
}

void tk_run_weights(tk_case c, uint64_t seed0) {
  static const size_t rows[] = {1, 3, 17, 64};
  int softmax = c.distance != KD_MSE && c.distance != KD_BCE_SIGMOID;
  for (size_t k = 0; k < TK_COUNT(rows); k++)
    for (int wk = TK_W_NONE; wk <= TK_W_ZERO; wk++)
      for (int red = KD_REDUCE_MEAN; red <= KD_REDUCE_SUM; red++) {
        tk_case d = c;
        d.rows = rows[k];
        d.weights = (tk_weights)wk;
        d.reduction = (kd_reduction)red;
        d.seed = seed0 + k * 10 + (uint64_t)(wk * 2 + red);
        tk_run(&d);
        if (softmax) d.inputs = TK_MASKED_BOTH;
        d.in_place = 1;
        d.factor = -2.0f;
        tk_run(&d);
      }
}

void tk_print_worst(const char *isa) {
  if (tk_worst.cases == 0) return; /* a group without accuracy cases */
  printf("[ worst    ] %s: %zu cases; loss error %.3g of tolerance (max relative %.3g); "
         "grad error %.3g of tolerance (max relative to max|ref| %.3g)\n",
         isa, tk_worst.cases, tk_worst.loss_tol_frac, tk_worst.loss_rel, tk_worst.grad_tol_frac,
         tk_worst.grad_rel);
  memset(&tk_worst, 0, sizeof tk_worst);
}

tk_isa_runs tk_isa_runs_start(const char *suite) {
  tk_isa_runs r = {suite, KD_ISA_AUTO, "", 0};
  return r;
}

int tk_isa_next(tk_isa_runs *r) {
  if (r->isa != KD_ISA_AUTO) tk_print_worst(r->name);
  /* KDLOSS_ISA narrows the runs only when it names a supported ISA; any
   * other value (auto, unknown, empty) leaves every ISA to run, as the
   * library ignores it. */
  const char *only = getenv("KDLOSS_ISA");
  int narrowed = 0;
  for (kd_isa isa = KD_ISA_SCALAR; only && isa <= KD_ISA_NEON; isa++)
    narrowed |= kd_isa_supported(isa) && strcmp(only, kd_isa_name(isa)) == 0;
  if (!narrowed) only = NULL;
  /* KD_ISA_AUTO precedes KD_ISA_SCALAR, the first real ISA. */
  for (r->isa++; r->isa <= KD_ISA_NEON; r->isa++) {
    snprintf(r->name, sizeof r->name, "%s/%s", r->suite, kd_isa_name(r->isa));
    if (only && kd_isa_supported(r->isa) && strcmp(only, kd_isa_name(r->isa)) != 0) continue;
    if (!kd_isa_supported(r->isa)) {
      printf("[ SKIPPED  ] %s: this CPU or build lacks it\n", r->name);
      continue;
    }
    if (kd_set_isa(r->isa) != KD_OK || kd_get_isa() != r->isa) {
      printf("[  FAILED  ] %s: kd_set_isa did not take\n", r->name);
      r->failures++;
      continue;
    }
    memset(&tk_worst, 0, sizeof tk_worst);
    return 1;
  }
  kd_set_isa(KD_ISA_AUTO);
  return 0;
}
