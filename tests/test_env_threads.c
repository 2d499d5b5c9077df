/* KDLOSS_NUM_THREADS at start-up. Run by meson once per value, with the value
 * as argv[1] and in the environment: a count kd_set_num_threads accepts must
 * be in force on first use; anything else must leave one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kdloss.h"

static const char *value;

static void env_threads(void **state) {
  (void)state;
  const char *env = getenv("KDLOSS_NUM_THREADS");
  assert_non_null(env);
  assert_string_equal(env, value);
  int first = kd_get_num_threads(); /* first use: the environment is read now */
  /* Accepted: decimal digits only, at most 1024; 0 is one thread per CPU. */
  int want = 1;
  size_t digits = strspn(value, "0123456789");
  if (digits > 0 && digits == strlen(value) && digits <= 4 && atoi(value) <= 1024) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    want = atoi(value) == 0 ? (int)(cpus < 1 ? 1 : cpus) : atoi(value);
  }
  printf("[ INFO     ] KDLOSS_NUM_THREADS=%s: in force %d\n", value, first);
  assert_int_equal(first, want);
  /* kd_set_num_threads overrides the environment from then on. */
  assert_int_equal(kd_set_num_threads(1), KD_OK);
  assert_int_equal(kd_get_num_threads(), 1);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  value = argv[1];
  const struct CMUnitTest tests[] = {cmocka_unit_test(env_threads)};
  return cmocka_run_group_tests_name("env-threads", tests, NULL, NULL);
}
