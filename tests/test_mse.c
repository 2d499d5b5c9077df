/* The element-wise distances (DER's MSE, iCaRL's BCE with logits) against
 * the reference, on every ISA: shapes, strides, values, near-identical
 * inputs, weights and reductions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tester.h"

/* The distance the group runs (main sets it). */
static kd_distance dist;

static void mse_shapes(void **state) {
  (void)state;
  for (size_t cols = 1; cols <= 40; cols++) {
    tk_case c = tk_default(dist, 3, cols);
    c.seed = cols;
    tk_run(&c);
  }
  static const size_t cols[] = {64, 100, 255, 256, 257, 1000, 1023, 4097, 32000, 128256};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(dist, cols[k] > 5000 ? 2 : 5, cols[k]);
    c.seed = 50 + k;
    tk_run(&c);
  }
  static const size_t rows[] = {1, 2, 7, 64, 255, 512};
  for (size_t k = 0; k < TK_COUNT(rows); k++) {
    tk_case c = tk_default(dist, rows[k], 10);
    c.seed = 70 + k;
    tk_run(&c);
  }
}

static void mse_strides_unaligned(void **state) {
  (void)state;
  tk_run_strides(tk_default(dist, 4, 1), 100);
}

static void mse_values(void **state) {
  (void)state;
  static const float factors[] = {0.0f, 1.0f, -2.0f, 1e-3f, 1e4f};
  for (size_t k = 0; k < TK_COUNT(factors); k++) {
    tk_case c = tk_default(dist, 3, 77);
    c.factor = factors[k];
    c.seed = 600 + k;
    tk_run(&c);
  }
  tk_case c = tk_default(dist, 3, 77);
  c.inputs = TK_IDENTICAL; /* loss exactly 0, gradient exactly 0 */
  tk_run(&c);
  c.inputs = TK_NEAR;
  c.shift = 1000.0f;
  tk_run(&c);
  /* Logits around +-1e4 (BCE: sigmoids of 0 or 1, softplus exactly |s|),
   * student and teacher near each other (BCE's gradient through expm1). */
  for (int sign = -1; sign <= 1; sign += 2) {
    c = tk_default(dist, 3, 40);
    c.shift = 1e4f * (float)sign;
    c.inputs = TK_NEAR;
    tk_run(&c);
    c.shift = 10.0f * (float)sign;
    tk_run(&c);
    c.inputs = TK_RANDOM;
    c.scale = 30.0f;
    tk_run(&c);
  }
  /* Differences beyond 1.8e19 overflow a float square (MSE), logits near
   * FLT_MAX a block's float sum (BCE): the sum becomes inf although the
   * inputs are finite, and the row is redone in double. */
  c = tk_default(dist, 2, dist == KD_MSE ? 19 : 300);
  c.scale = dist == KD_MSE ? 3e19f : 1e37f;
  c.factor = 1e-30f;
  tk_run(&c);
  c.in_place = 1;
  tk_run(&c);
}

/* Row weights (mixed, all zero: NaN rows never read) and both reductions. */
static void mse_weights(void **state) {
  (void)state;
  tk_run_weights(tk_default(dist, 1, 33), 700);
}

/* Random shapes, scales, shifts, weights and reductions; KDLOSS_TEST_SEED
 * changes the sweep. */
static void mse_random_sweep(void **state) {
  (void)state;
  const char *env = getenv("KDLOSS_TEST_SEED");
  uint64_t rng = env ? strtoull(env, NULL, 10) : 2025;
  static const float scales[] = {0.01f, 1.0f, 3.0f, 30.0f, 1e3f};
  for (int k = 0; k < 200; k++) {
    size_t cols = (size_t)exp(tk_uniform(&rng) * log(5000.0));
    tk_case c = tk_default(dist, 1 + tk_next(&rng) % 4, cols < 1 ? 1 : cols);
    c.inputs = tk_next(&rng) % 2 ? TK_NEAR : TK_RANDOM;
    c.scale = scales[tk_next(&rng) % TK_COUNT(scales)];
    c.shift = (float)(tk_next(&rng) % 3) * 10.0f - 10.0f;
    c.in_place = (int)(tk_next(&rng) % 2);
    c.weights = (tk_weights)(tk_next(&rng) % 2);
    c.reduction = (kd_reduction)(tk_next(&rng) % 2);
    c.seed = tk_next(&rng);
    tk_run(&c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mse_shapes),
      cmocka_unit_test(mse_strides_unaligned),
      cmocka_unit_test(mse_values),
      cmocka_unit_test(mse_weights),
      cmocka_unit_test(mse_random_sweep),
  };
  tk_isa_runs r = tk_isa_runs_start("elementwise");
  while (tk_isa_next(&r)) {
    static const kd_distance dists[] = {KD_MSE, KD_BCE_SIGMOID};
    for (size_t k = 0; k < TK_COUNT(dists); k++) {
      dist = dists[k];
      char name[80];
      snprintf(name, sizeof name, "%s/%s", tk_distance_name(dist), kd_isa_name(r.isa));
      r.failures += cmocka_run_group_tests_name(name, tests, NULL, NULL);
      tk_print_worst(name);
    }
  }
  return r.failures;
}
