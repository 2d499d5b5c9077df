/* Non-finite inputs on every ISA, for every distance: the per-ISA kernels do
 * the NaN/+inf detection, so every tail position is tried on each. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tester.h"

static void fill_random(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(3.0 * tk_normal(&seed));
}

/* One bad value at (row, col) of the student or the teacher. */
static void expect_nonfinite(kd_distance d, size_t rows, size_t cols, size_t row, size_t col,
                             int in_teacher, float bad) {
  size_t n = rows * cols;
  float *s = tk_malloc(n * sizeof(float)), *t = tk_malloc(n * sizeof(float));
  float *g = tk_malloc(n * sizeof(float));
  fill_random(s, n, cols * 7 + row);
  fill_random(t, n, cols * 11 + row);
  (in_teacher ? t : s)[row * cols + col] = bad;
  float loss = 1.0f;
  kd_status st = kd_loss_f32(d, 1.0f, 2.0f, rows, cols, s, cols, t, cols, &loss);
  if (st != KD_ERR_NONFINITE || !isnan(loss))
    fail_msg("isa=%s %s rows=%zu cols=%zu bad %g at [%zu][%zu] of %s: loss %s (%g)",
             kd_isa_name(kd_get_isa()), tk_distance_name(d), rows, cols, bad, row, col,
             in_teacher ? "teacher" : "student", kd_status_str(st), loss);
  loss = 1.0f;
  st = kd_loss_grad_f32(d, 1.0f, 2.0f, rows, cols, s, cols, t, cols, &loss, g, cols);
  if (st != KD_ERR_NONFINITE || !isnan(loss))
    fail_msg("isa=%s %s rows=%zu cols=%zu bad %g at [%zu][%zu] of %s: loss+grad %s (%g)",
             kd_isa_name(kd_get_isa()), tk_distance_name(d), rows, cols, bad, row, col,
             in_teacher ? "teacher" : "student", kd_status_str(st), loss);
  /* Through kd_loss_ex_f32 with row losses and weights, SUM: the same. */
  float w[3] = {1.0f, 0.5f, 2.0f}, *row_loss = tk_malloc(rows * sizeof(float));
  kd_params p = {d, 1.0f, 2.0f, 0.5f, KD_REDUCE_SUM, rows <= 3 ? w : NULL};
  loss = 1.0f;
  st = kd_loss_ex_f32(&p, rows, cols, s, cols, t, cols, &loss, row_loss, g, cols);
  free(row_loss);
  if (st != KD_ERR_NONFINITE || !isnan(loss))
    fail_msg("isa=%s %s rows=%zu cols=%zu bad %g at [%zu][%zu]: kd_loss_ex_f32 %s (%g)",
             kd_isa_name(kd_get_isa()), tk_distance_name(d), rows, cols, bad, row, col,
             kd_status_str(st), loss);
  /* Gradient only (loss NULL) reports it too. */
  st = kd_loss_grad_f32(d, 1.0f, 2.0f, rows, cols, s, cols, t, cols, NULL, g, cols);
  assert_int_equal(st, KD_ERR_NONFINITE);
  free(s);
  free(t);
  free(g);
}

static void nonfinite_every_position(void **state) {
  (void)state;
  const float bads[] = {NAN, INFINITY};
  for (size_t cols = 1; cols <= 40; cols++)
    for (size_t col = 0; col < cols; col++)
      for (int b = 0; b < 2; b++)
        for (size_t d = 0; d < TK_COUNT(tk_distances); d++)
          expect_nonfinite(tk_distances[d], 2, cols, 1, col, (int)(col & 1), bads[b]);
  static const size_t big[] = {100, 257, 1000, 4097};
  for (size_t k = 0; k < TK_COUNT(big); k++)
    for (size_t d = 0; d < TK_COUNT(tk_distances); d++) {
      expect_nonfinite(tk_distances[d], 3, big[k], 2, big[k] - 1, 0, NAN);
      expect_nonfinite(tk_distances[d], 3, big[k], 0, big[k] / 2, 1, INFINITY);
      expect_nonfinite(tk_distances[d], 3, big[k], 1, 0, 0, -NAN);
    }
  /* MSE and BCE have no masking: -inf is an error. */
  for (size_t cols = 1; cols <= 20; cols++)
    for (int in_teacher = 0; in_teacher < 2; in_teacher++) {
      expect_nonfinite(KD_MSE, 2, cols, 0, cols - 1, in_teacher, -INFINITY);
      expect_nonfinite(KD_BCE_SIGMOID, 2, cols, 0, cols - 1, in_teacher, -INFINITY);
    }
}

/* Short cross-entropy rows share vectors (src/kernels.h): one bad row among
 * 37, first, last or inside a group of any lane count, at every width up to
 * past the short-row limit. */
static void nonfinite_one_row_of_many(void **state) {
  (void)state;
  static const size_t cols[] = {1, 2, 3, 10, 17, 33, 64, 65};
  static const size_t rows[] = {0, 3, 15, 16, 20, 36};
  for (size_t k = 0; k < TK_COUNT(cols); k++)
    for (size_t r = 0; r < TK_COUNT(rows); r++) {
      expect_nonfinite(KD_CROSS_ENTROPY, 37, cols[k], rows[r], cols[k] - 1, (int)(r & 1), NAN);
      expect_nonfinite(KD_CROSS_ENTROPY, 37, cols[k], rows[r], 0, (int)(~r & 1), INFINITY);
    }
}

/* A softmax row entirely -inf has no distribution. */
static void ce_all_masked_row(void **state) {
  (void)state;
  for (size_t d = 0; d < TK_COUNT(tk_distances); d++) {
  kd_distance dist = tk_distances[d];
  if (dist == KD_MSE || dist == KD_BCE_SIGMOID) continue;
  for (size_t cols = 1; cols <= 70; cols += 3) {
    for (int in_teacher = 0; in_teacher < 2; in_teacher++) {
      /* 3 rows, or 37 (rows sharing vectors: kernels.h, short rows) */
      size_t rows = cols % 2 ? 3 : 37, n = rows * cols;
      float *s = tk_malloc(n * sizeof(float)), *t = tk_malloc(n * sizeof(float));
      fill_random(s, n, cols);
      fill_random(t, n, cols + 1);
      for (size_t j = 0; j < cols; j++) (in_teacher ? t : s)[1 * cols + j] = -INFINITY;
      float loss = 1.0f;
      assert_int_equal(kd_loss_f32(dist, 1, 1, rows, cols, s, cols, t, cols, &loss),
                       KD_ERR_NONFINITE);
      assert_true(isnan(loss));
      /* The same row with one class left is fine (for SCE, KL and reverse KL
       * it may be +inf: a class one side masks and the other does not). */
      (in_teacher ? t : s)[1 * cols + cols / 2] = 0.5f;
      assert_int_equal(kd_loss_f32(dist, 1, 1, rows, cols, s, cols, t, cols, &loss), KD_OK);
      assert_true(!isnan(loss));
      free(s);
      free(t);
    }
  }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nonfinite_every_position),
      cmocka_unit_test(nonfinite_one_row_of_many),
      cmocka_unit_test(ce_all_masked_row),
  };
  tk_isa_runs r = tk_isa_runs_start("errors");
  while (tk_isa_next(&r))
    r.failures += cmocka_run_group_tests_name(r.name, tests, NULL, NULL);
  return r.failures;
}
