/*
 * accuracy_report -- kdloss's measured accuracy against the double-precision
 * reference (tests/reference.c), per ISA and per entry point, on a sweep
 * of shapes x temperatures x logit scales with random inputs.
 *
 *   build/tools/accuracy_report            (every ISA this CPU and build support)
 *
 * Prints one markdown table row per ISA: the maximum and the median, over the
 * sweep, of
 *   loss: |loss - ref| / |ref|
 *   grad: max_ij |grad_ij - ref_ij| / max_ij |ref_ij|
 * for the cross-entropy and the MSE, then one row per ISA and distance for the
 * other six (JSD at beta 0.5; BCE, which takes no temperature, on MSE's
 * inputs: shapes x {independent, near} x scales). Every call is
 * kd_loss_ex_f32 (no weights, mean: kd_loss_f32 and kd_loss_grad_f32 bit for
 * bit), the loss without the gradient, then the gradient. tools/accuracy_torch.py
 * prints PyTorch float32's rows for the same sweep: the definition and the
 * input generator below are those of tools/gen_golden.py (SWEEP_*,
 * sweep_seed, sweep_inputs) and accuracy_torch.py (family_inputs); keep them
 * in step.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdloss.h"
#include "reference.h"
#include "rng.h"       /* the generator of tests/ and tools/gen_golden.py */
#include "tolerance.h" /* TK_GRAD_REL, TK_GRAD_ABS_PER_SCALE */

static const size_t shapes[][2] = {{1, 10}, {64, 100}, {16, 1000}, {4, 32000}, {1, 128256}};
static const float temps[] = {0.1f, 0.5f, 1.0f, 2.0f, 4.0f, 10.0f, 100.0f};
static const double scales[] = {1.0, 5.0, 20.0, 50.0};
/* MSE: temperature is ignored; its slot in the seed names the input kind. */
enum { MSE_INDEPENDENT, MSE_NEAR, MSE_KINDS };
#define NSHAPES (sizeof shapes / sizeof shapes[0])
#define NTEMPS (sizeof temps / sizeof temps[0])
#define NSCALES (sizeof scales / sizeof scales[0])
#define MAX_CASES (NSHAPES * NTEMPS * NSCALES)

static uint64_t sweep_seed(kd_distance d, size_t shape_i, size_t temp_i, size_t scale_i) {
  return 1000003u * ((uint64_t)d + 1) + 10007u * shape_i + 101u * temp_i + scale_i;
}

/* student = scale*a, teacher = scale*b (MSE_NEAR: scale*(a + 1e-3 b)). */
static void fill(uint64_t seed, size_t n, double scale, int near, float *s, float *t) {
  for (size_t k = 0; k < n; k++) {
    double a = tk_normal(&seed), b = tk_normal(&seed);
    s[k] = (float)(scale * a);
    t[k] = (float)(near ? scale * (a + 1e-3 * b) : scale * b);
  }
}

typedef struct errors {
  double v[MAX_CASES];
  size_t n, skipped;
  double skipped_abs;
} errors;

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void cell(errors *e) {
  qsort(e->v, e->n, sizeof e->v[0], by_value);
  double median = e->n % 2 ? e->v[e->n / 2] : 0.5 * (e->v[e->n / 2 - 1] + e->v[e->n / 2]);
  printf(" %.2e | %.2e |", e->v[e->n - 1], median);
}

#define JSD_BETA 0.5f
#define N_DISTANCES 8 /* KD_CROSS_ENTROPY .. KD_BCE_SIGMOID */
static const char *const names[N_DISTANCES] = {
    "ce", "mse", "soft_ce", "kl", "kl_reverse", "ce_uniform_eps", "jsd", "bce_sigmoid"};

static int measure(kd_distance d, float T, size_t rows, size_t cols, uint64_t seed, double scale,
                   int near, float *s, float *t, float *g, double *ref_grad, errors *loss_err,
                   errors *grad_err) {
  size_t n = rows * cols;
  fill(seed, n, scale, near, s, t);
  kd_params p = {d, 1.0f, T, JSD_BETA, KD_REDUCE_MEAN, NULL};
  double ref = kd_reference_ex_f64(&p, rows, cols, s, cols, t, cols, NULL, ref_grad);
  float loss, again;
  kd_status st = kd_loss_ex_f32(&p, rows, cols, s, cols, t, cols, &loss, NULL, NULL, cols);
  if (st == KD_OK) st = kd_loss_ex_f32(&p, rows, cols, s, cols, t, cols, &again, NULL, g, cols);
  if (st != KD_OK || isnan(ref)) {
    fprintf(stderr, "accuracy_report: %s, T %g, %zux%zu: %s\n", names[d], (double)T, rows, cols,
            kd_status_str(st));
    return 0;
  }
  double max_ref = 0, max_err = 0;
  /* Ternaries, not fmax: aarch64-linux-gnu-gcc 12.2 at -O3 has an internal
   * compiler error (vect_transform_reduction) on a double fmax reduction. */
  for (size_t k = 0; k < n; k++) {
    double r = fabs(ref_grad[k]), e = fabs((double)g[k] - ref_grad[k]);
    max_ref = r > max_ref ? r : max_ref;
    max_err = e > max_err ? e : max_err;
  }
  /* Likewise the loss: relative errors where 1e-5 |ref| >= 1e-6 |factor|
   * (a KL or FACIL loss of 1e-5 between near-equal rows is bound absolutely). */
  double loss_abs = fabs((double)loss - ref);
  if (TK_LOSS_REL * fabs(ref) >= TK_LOSS_ABS_PER_FACTOR) {
    loss_err->v[loss_err->n++] = loss_abs / fabs(ref);
  } else {
    loss_err->skipped++;
    loss_err->skipped_abs = fmax(loss_err->skipped_abs, loss_abs);
  }
  /* At low T a gradient can be entirely tiny (1e-35, 1e-60: every
   * q_j (S - w_j) near or below float's range), where no float32 result has
   * relative accuracy and kdloss.h's bound is its absolute term,
   * 1e-12 x the gradient's scale. Relative errors are ranked only where the
   * relative part of the bound binds; the other cases are counted, with their
   * worst absolute error. */
  if (TK_GRAD_REL * max_ref >= TK_GRAD_ABS_PER_SCALE * tk_grad_scale(d, 1.0, T, rows, cols)) {
    grad_err->v[grad_err->n++] = max_err / max_ref;
  } else {
    grad_err->skipped++;
    grad_err->skipped_abs = fmax(grad_err->skipped_abs, max_err);
  }
  return 1;
}

/* The six other distances, one row per ISA and distance (see the top). */
static int family(float *s, float *t, float *g, double *ref_grad) {
  static errors loss, grad;
  int ok = 1;
  double loss_abs = 0, grad_abs = 0;
  printf("\nThe other distances against the double reference (the same sweep; BCE on MSE's "
         "inputs)\n\n| distance | implementation | cases | loss max | loss median | grad max | "
         "grad median |\n|---|---|---|---|---|---|---|\n");
  for (kd_distance d = KD_SOFT_CROSS_ENTROPY; d < N_DISTANCES; d++)
    for (kd_isa isa = KD_ISA_SCALAR; isa <= KD_ISA_NEON; isa++) {
      if (!kd_isa_supported(isa)) continue;
      if (kd_set_isa(isa) != KD_OK || kd_get_isa() != isa) return 0;
      memset(&loss, 0, sizeof loss);
      memset(&grad, 0, sizeof grad);
      int bce = d == KD_BCE_SIGMOID;
      for (size_t i = 0; i < NSHAPES; i++)
        for (size_t k = 0; k < NSCALES; k++)
          for (size_t j = 0; j < (bce ? (size_t)MSE_KINDS : NTEMPS); j++)
            ok &= measure(d, bce ? 1.0f : temps[j], shapes[i][0], shapes[i][1],
                          sweep_seed(d, i, j, k), scales[k], bce && j == MSE_NEAR, s, t, g,
                          ref_grad, &loss, &grad);
      printf("| %s | kdloss %s | %zu |", names[d], kd_isa_name(isa), loss.n + loss.skipped);
      cell(&loss);
      cell(&grad);
      printf("\n");
      loss_abs = fmax(loss_abs, loss.skipped_abs);
      grad_abs = fmax(grad_abs, grad.skipped_abs);
    }
  printf("\nAs above, relative errors are ranked only where the bound's relative term binds "
         "(the loss: |ref| >= 0.1 at factor 1); the largest absolute errors of the cases left "
         "out, any distance and ISA: loss %.2e (bound 1e-6), gradient %.2e.\n", loss_abs,
         grad_abs);
  return ok;
}

int main(void) {
  size_t max_n = 0;
  for (size_t i = 0; i < NSHAPES; i++)
    max_n = shapes[i][0] * shapes[i][1] > max_n ? shapes[i][0] * shapes[i][1] : max_n;
  float *s = malloc(max_n * sizeof *s), *t = malloc(max_n * sizeof *t);
  float *g = malloc(max_n * sizeof *g);
  double *ref_grad = malloc(max_n * sizeof *ref_grad);
  static errors ce_loss, ce_grad, mse_loss, mse_grad;
  if (!s || !t || !g || !ref_grad) return 1;

  printf("kdloss %s against the double reference: %zu cross-entropy cases (shapes x T x "
         "scales), %zu MSE cases (shapes x {independent, near} x scales)\n\n",
         kd_version_string(), NSHAPES * NTEMPS * NSCALES, NSHAPES * MSE_KINDS * NSCALES);
  printf("| implementation | CE loss max | CE loss median | CE grad max | CE grad median "
         "| MSE loss max | MSE loss median | MSE grad max | MSE grad median |\n");
  printf("|---|---|---|---|---|---|---|---|---|\n");
  int ok = 1;
  size_t skipped = 0, loss_skipped = 0;
  double skipped_abs = 0, loss_skipped_abs = 0;
  for (kd_isa isa = KD_ISA_SCALAR; isa <= KD_ISA_NEON; isa++) {
    if (!kd_isa_supported(isa)) continue;
    if (kd_set_isa(isa) != KD_OK || kd_get_isa() != isa) {
      fprintf(stderr, "accuracy_report: kd_set_isa(%s) did not take\n", kd_isa_name(isa));
      return 1;
    }
    memset(&ce_loss, 0, sizeof ce_loss);
    memset(&ce_grad, 0, sizeof ce_grad);
    memset(&mse_loss, 0, sizeof mse_loss);
    memset(&mse_grad, 0, sizeof mse_grad);
    for (size_t i = 0; i < NSHAPES; i++)
      for (size_t k = 0; k < NSCALES; k++) {
        for (size_t j = 0; j < NTEMPS; j++)
          ok &= measure(KD_CROSS_ENTROPY, temps[j], shapes[i][0], shapes[i][1],
                        sweep_seed(KD_CROSS_ENTROPY, i, j, k), scales[k], 0, s, t, g, ref_grad,
                        &ce_loss, &ce_grad);
        for (int kind = 0; kind < MSE_KINDS; kind++)
          ok &= measure(KD_MSE, 1.0f, shapes[i][0], shapes[i][1],
                        sweep_seed(KD_MSE, i, (size_t)kind, k), scales[k], kind == MSE_NEAR, s,
                        t, g, ref_grad, &mse_loss, &mse_grad);
      }
    printf("| kdloss %s |", kd_isa_name(isa));
    cell(&ce_loss);
    cell(&ce_grad);
    cell(&mse_loss);
    cell(&mse_grad);
    printf("\n");
    skipped = ce_grad.skipped + mse_grad.skipped;
    skipped_abs = fmax(skipped_abs, fmax(ce_grad.skipped_abs, mse_grad.skipped_abs));
    loss_skipped = ce_loss.skipped + mse_loss.skipped;
    loss_skipped_abs = fmax(loss_skipped_abs, fmax(ce_loss.skipped_abs, mse_loss.skipped_abs));
  }
  if (skipped)
    printf("\nGradient columns leave out the %zu cases per ISA whose reference gradient is "
           "below the bound's absolute term everywhere (1e-12 x the gradient's scale); their largest "
           "absolute error, any ISA: %.2e.\n",
           skipped, skipped_abs);
  if (loss_skipped)
    printf("Loss columns leave out the %zu cases per ISA whose loss is below 0.1, where the "
           "bound's absolute term 1e-6 binds; their largest absolute error, any ISA: %.2e.\n",
           loss_skipped, loss_skipped_abs);
  ok &= family(s, t, g, ref_grad);
  kd_set_isa(KD_ISA_AUTO);
  free(s);
  free(t);
  free(g);
  free(ref_grad);
  return ok ? 0 : 1;
}
