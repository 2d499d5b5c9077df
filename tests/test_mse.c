/* MSE against the reference, on every ISA. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tester.h"

static void mse_shapes(void **state) {
  (void)state;
  for (size_t cols = 1; cols <= 40; cols++) {
    tk_case c = tk_default(KD_MSE, 3, cols);
    c.seed = cols;
    tk_run(&c);
  }
  static const size_t cols[] = {64, 100, 255, 256, 257, 1000, 1023, 4097, 32000, 128256};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(KD_MSE, cols[k] > 5000 ? 2 : 5, cols[k]);
    c.seed = 50 + k;
    tk_run(&c);
  }
  static const size_t rows[] = {1, 2, 7, 64, 255, 512};
  for (size_t k = 0; k < TK_COUNT(rows); k++) {
    tk_case c = tk_default(KD_MSE, rows[k], 10);
    c.seed = 70 + k;
    tk_run(&c);
  }
}

static void mse_strides_unaligned(void **state) {
  (void)state;
  tk_run_strides(tk_default(KD_MSE, 4, 1), 100);
}

static void mse_values(void **state) {
  (void)state;
  static const float factors[] = {0.0f, 1.0f, -2.0f, 1e-3f, 1e4f};
  for (size_t k = 0; k < TK_COUNT(factors); k++) {
    tk_case c = tk_default(KD_MSE, 3, 77);
    c.factor = factors[k];
    c.seed = 600 + k;
    tk_run(&c);
  }
  tk_case c = tk_default(KD_MSE, 3, 77);
  c.inputs = TK_IDENTICAL; /* loss exactly 0, gradient exactly 0 */
  tk_run(&c);
  c.inputs = TK_NEAR;
  c.shift = 1000.0f;
  tk_run(&c);
  /* Differences beyond 1.8e19 overflow a float square: the float sum becomes
   * inf although the inputs are finite, and the row is redone in double. */
  c = tk_default(KD_MSE, 2, 19);
  c.scale = 3e19f;
  c.factor = 1e-30f;
  tk_run(&c);
  c.in_place = 1;
  tk_run(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mse_shapes),
      cmocka_unit_test(mse_strides_unaligned),
      cmocka_unit_test(mse_values),
  };
  tk_isa_runs r = tk_isa_runs_start("mse");
  while (tk_isa_next(&r))
    r.failures += cmocka_run_group_tests_name(r.name, tests, NULL, NULL);
  return r.failures;
}
