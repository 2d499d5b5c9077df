/* KDLOSS_ISA at start-up. Run by meson once per value, with the value as
 * argv[1] and in the environment: a supported ISA must be in force on first
 * use; an unknown or unsupported one must leave the automatic choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kdloss.h"

static const char *value;

static void env_forcing(void **state) {
  (void)state;
  const char *env = getenv("KDLOSS_ISA");
  assert_non_null(env);
  assert_string_equal(env, value);
  kd_isa first = kd_get_isa(); /* first use: the environment is read now */
  assert_int_equal(kd_set_isa(KD_ISA_AUTO), KD_OK);
  kd_isa automatic = kd_get_isa();
  kd_isa named = KD_ISA_AUTO;
  for (kd_isa isa = KD_ISA_AUTO; isa <= KD_ISA_NEON; isa++)
    if (strcmp(value, kd_isa_name(isa)) == 0) named = isa;
  kd_isa want = named != KD_ISA_AUTO && kd_isa_supported(named) ? named : automatic;
  printf("[ INFO     ] KDLOSS_ISA=%s: in force %s (automatic %s)\n", value, kd_isa_name(first),
         kd_isa_name(automatic));
  assert_int_equal(first, want);
  /* kd_set_isa overrides the environment from then on. */
  assert_int_equal(kd_set_isa(KD_ISA_SCALAR), KD_OK);
  assert_int_equal(kd_get_isa(), KD_ISA_SCALAR);
  float s[3] = {1, 2, 3}, t[3] = {3, 2, 1}, loss = 0;
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 1, 1, 3, s, 3, t, 3, &loss), KD_OK);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  value = argv[1];
  const struct CMUnitTest tests[] = {cmocka_unit_test(env_forcing)};
  return cmocka_run_group_tests_name("env", tests, NULL, NULL);
}
