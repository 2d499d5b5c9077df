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
  tk_case c = {distance, 1.0f, 2.0f, rows, cols, 0, 0, TK_RANDOM, 3.0f, 0.0f, 0.0f, 0, 1};
  return c;
}

static const char *inputs_name(tk_inputs k) {
  static const char *const names[TK_INPUTS_COUNT] = {
      [TK_RANDOM] = "random", [TK_IDENTICAL] = "identical", [TK_SAME_PTR] = "same-ptr",
      [TK_NEAR] = "near",     [TK_GAPS] = "gaps",           [TK_MASKED] = "masked",
      [TK_PEAKED] = "peaked", [TK_ONE_LEFT] = "one-left",   [TK_TIED] = "tied"};
  return names[k];
}

static void describe(const tk_case *c, char *buf, size_t size) {
  snprintf(buf, size,
           "isa=%s %s rows=%zu cols=%zu ld=+%zu offset=%zu inputs=%s scale=%g shift=%g "
           "t_offset=%g T=%g factor=%g in_place=%d seed=%llu",
           kd_isa_name(kd_get_isa()), c->distance == KD_MSE ? "mse" : "ce", c->rows, c->cols,
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

static void check_loss(const tk_case *c, const char *what, kd_status st, float loss, double ref) {
  char buf[400];
  describe(c, buf, sizeof buf);
  if (st != KD_OK) fail_msg("%s: %s returned %s", buf, what, kd_status_str(st));
  double err = fabs((double)loss - ref);
  double tol = tk_loss_tol(ref, c->factor);
  note(&tk_worst.loss_tol_frac, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0));
  if (getenv("KDLOSS_TEST_VERBOSE") && err > 0.5 * tol)
    printf("[ CLOSE    ] %s: %s loss %.9g, reference %.17g: %.2f of tolerance\n", buf, what,
           (double)loss, ref, err / tol);
  if (ref != 0) note(&tk_worst.loss_rel, err / fabs(ref));
  if (!tk_within(loss, ref, tol))
    fail_msg("%s: %s loss %.9g, reference %.17g, error %.3g > tolerance %.3g", buf, what,
             (double)loss, ref, err, tol);
}

static void check_grad(const tk_case *c, const matrix *g, const double *ref) {
  char buf[400];
  describe(c, buf, sizeof buf);
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < c->rows; i++)
    for (size_t j = 0; j < c->cols; j++) max_ref = fmax(max_ref, fabs(ref[i * c->cols + j]));
  double tol = tk_grad_tol(max_ref, tk_grad_scale(c->distance, c->factor, c->temperature,
                                                  c->rows, c->cols));
  for (size_t i = 0; i < c->rows; i++) {
    for (size_t j = 0; j < c->cols; j++) {
      float v = g->p[i * g->ld + j];
      double err = fabs((double)v - ref[i * c->cols + j]);
      if (!tk_within(v, ref[i * c->cols + j], tol))
        fail_msg("%s: grad[%zu][%zu] = %.9g, reference %.17g, error %.3g > tolerance %.3g "
                 "(max |ref| %.3g)",
                 buf, i, j, (double)v, ref[i * c->cols + j], err, tol, max_ref);
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

void tk_run(const tk_case *c) {
  char buf[400];
  describe(c, buf, sizeof buf);
  matrix s = matrix_new(c), t = matrix_new(c);
  fill(c, &s, &t);
  const float *teacher = c->inputs == TK_SAME_PTR ? s.p : t.p;
  size_t ld_teacher = c->inputs == TK_SAME_PTR ? s.ld : t.ld;

  double *ref_grad = tk_malloc(c->rows * c->cols * sizeof(double));
  double ref = kd_reference_f64(c->distance, c->factor, c->temperature, c->rows, c->cols, s.p,
                                s.ld, teacher, ld_teacher, ref_grad);
  if (isnan(ref)) fail_msg("%s: the reference is NaN (bad test case)", buf);

  /* Loss only, twice: bitwise identical. The second of each pair runs on the
   * calling thread, the first on the pool of KDLOSS_TEST_THREADS if set. */
  const char *threads = tk_threads_init();
  float loss1 = -1.0f, loss2 = -2.0f;
  kd_status st = kd_loss_f32(c->distance, c->factor, c->temperature, c->rows, c->cols, s.p,
                             s.ld, teacher, ld_teacher, &loss1);
  check_loss(c, "kd_loss_f32", st, loss1, ref);
  tk_threads_serial(1);
  kd_loss_f32(c->distance, c->factor, c->temperature, c->rows, c->cols, s.p, s.ld, teacher,
              ld_teacher, &loss2);
  tk_threads_serial(0);
  if (memcmp(&loss1, &loss2, sizeof loss1) != 0)
    fail_msg("%s: kd_loss_f32 not repeatable (threads %s): %.9g then %.9g", buf, threads, loss1,
             loss2);

  /* Loss and gradient, twice (in place: on two fresh copies of the student). */
  matrix g1 = matrix_new(c), g2 = matrix_new(c);
  if (c->in_place) {
    memcpy(g1.base, s.base, s.floats * sizeof(float));
    memcpy(g2.base, s.base, s.floats * sizeof(float));
  }
  float grad_loss[2];
  for (int run = 0; run < 2; run++) {
    matrix *g = run ? &g2 : &g1;
    const float *student = c->in_place ? g->p : s.p;
    const float *tch = c->inputs == TK_SAME_PTR ? student : teacher;
    if (c->in_place && c->inputs == TK_SAME_PTR) tch = s.p; /* grad may not overlap teacher */
    float loss = -1.0f;
    tk_threads_serial(run);
    kd_status st = kd_loss_grad_f32(c->distance, c->factor, c->temperature, c->rows, c->cols,
                                    student, s.ld, tch, ld_teacher, &loss, g->p, g->ld);
    tk_threads_serial(0);
    check_loss(c, "kd_loss_grad_f32", st, loss, ref);
    check_grad(c, g, ref_grad);
    grad_loss[run] = loss;
  }
  if (memcmp(&grad_loss[0], &grad_loss[1], sizeof(float)) != 0)
    fail_msg("%s: kd_loss_grad_f32 loss not repeatable (threads %s): %.9g then %.9g", buf,
             threads, grad_loss[0], grad_loss[1]);
  for (size_t i = 0; i < c->rows; i++)
    if (memcmp(g1.p + i * g1.ld, g2.p + i * g2.ld, c->cols * sizeof(float)) != 0)
      fail_msg("%s: kd_loss_grad_f32 not repeatable (threads %s) in row %zu", buf, threads, i);

  tk_worst.cases++;
  free(g1.base);
  free(g2.base);
  free(ref_grad);
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
