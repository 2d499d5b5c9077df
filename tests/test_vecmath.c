/*
 * The inline vector exp and log (src/vmath_inline.h, through the array
 * forms of vmath.h) against libm in double, on every ISA this CPU runs: every
 * k-th float of each function's domain, asserting the bound of tolerance.h,
 * then the edge values and the tails. SLEEF's exp u10, log u10 and log u35 go
 * through the same sweeps and are printed beside them (not asserted).
 *
 *   test_vecmath [K_EXP [K_LOG]]   strides over the float bit patterns
 *                                  (default 1: every float)
 * ISAs the CPU or build lacks are not registered; KDLOSS_ISA naming one of
 * the others narrows the run to it, as in the other suites (tester.c).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bits.h"
#include "kernels.h" /* kd_cpu_has */
#include "tolerance.h"
#include "vmath.h"

typedef void (*vm_fn)(size_t n, const float *x, float *y);

typedef struct vm_isa {
  const char *name;
  kd_isa isa;
  vm_fn exp, log;
  vm_fn sleef_exp_u10, sleef_log_u10, sleef_log_u35; /* NULL without SLEEF */
} vm_isa;

#if KD_HAVE_SLEEF
#define VM_SLEEF(isa) kd_f32_exp_sleef_u10_##isa, kd_f32_log_sleef_u10_##isa, kd_f32_log_sleef_u35_##isa
#else
#define VM_SLEEF(isa) NULL, NULL, NULL
#endif

static const vm_isa vm_isas[] = {
#if KD_MATH_AVX2
    {"avx2", KD_ISA_AVX2, kd_f32_exp_avx2, kd_f32_log_avx2, VM_SLEEF(avx2)},
#endif
#if KD_MATH_AVX512
    {"avx512", KD_ISA_AVX512, kd_f32_exp_avx512, kd_f32_log_avx512, VM_SLEEF(avx512)},
#endif
#if KD_MATH_NEON
    {"neon", KD_ISA_NEON, kd_f32_exp_neon, kd_f32_log_neon, VM_SLEEF(neon)},
#endif
};

static uint32_t k_exp = 1, k_log = 1;

/* |y - ref| in units of the float ulp at ref (2^-149 below FLT_MIN): the
 * ulp is 2^(e - 23) for ref's binary exponent e, taken from its bits. */
static double ulp_error(float y, double ref) {
  double a = fabs(ref), ulp = 0x1p-149;
  if (a >= FLT_MIN) {
    uint64_t b;
    memcpy(&b, &a, sizeof b);
    b = ((b >> 52) - 23) << 52; /* a normal double: the exponent field minus 23 */
    memcpy(&ulp, &b, sizeof ulp);
  }
  if (isnan(y)) return INFINITY;
  return fabs((double)y - ref) / ulp;
}

typedef struct vm_worst {
  double ulp;
  float at;
} vm_worst;

#define VM_CHUNK 4096
#define VM_FNS 3

/* Every k-th float bit pattern from lo to hi, and hi itself (floats of one
 * sign); each of fns[0..nfns) against ref in double, computed once per value:
 * the worst error of each and its argument into worst[]. */
static void sweep(const vm_fn *fns, int nfns, double (*ref)(double), uint32_t lo,
                  uint32_t hi, uint32_t k, vm_worst *worst) {
  static float x[VM_CHUNK], y[VM_CHUNK];
  static double r[VM_CHUNK];
  for (int f = 0; f < nfns; f++) worst[f] = (vm_worst){0.0, 0.0f};
  uint64_t b = lo;
  int last = 0;
  while (!last) {
    size_t n = 0;
    for (; n < VM_CHUNK && b <= hi; n++, b += k) x[n] = tk_f32_from_bits((uint32_t)b);
    if (n < VM_CHUNK) {
      x[n++] = tk_f32_from_bits(hi);
      last = 1;
    }
    for (size_t i = 0; i < n; i++) r[i] = ref((double)x[i]);
    for (int f = 0; f < nfns; f++) {
      fns[f](n, x, y);
      for (size_t i = 0; i < n; i++) {
        double e = ulp_error(y[i], r[i]);
        if (e > worst[f].ulp) worst[f] = (vm_worst){e, x[i]};
      }
    }
  }
}

/* The domains swept: exp on [KD_EXP_MIN_ARG, -0] (bit patterns of negative
 * floats grow with magnitude); log on [FLT_MIN, 2], the kernels' arguments, and
 * more thinly on every positive normal float, its whole domain (a stride of
 * LOG_ALL_STRIDE times K_LOG, made odd so that every mantissa bit varies). */
static const float exp_lo = -0.0f, exp_hi = KD_EXP_MIN_ARG;
static const float log_lo = FLT_MIN, log_hi = 2.0f;
#define LOG_ALL_STRIDE 31

static void report(const char *isa, const char *fn, vm_worst w, uint32_t k) {
  printf("[ ulp      ] %s %-14s max %.3f ulp at %.9g (every %u-th float)\n", isa, fn, w.ulp,
         (double)w.at, k);
}

static void exp_domain(void **state) {
  const vm_isa *v = *state;
  const vm_fn fns[VM_FNS] = {v->exp, v->sleef_exp_u10};
  vm_worst w[VM_FNS];
  sweep(fns, v->sleef_exp_u10 ? 2 : 1, exp, tk_f32_bits(exp_lo), tk_f32_bits(exp_hi), k_exp, w);
  report(v->name, "exp inline", w[0], k_exp);
  if (v->sleef_exp_u10) report(v->name, "exp sleef u10", w[1], k_exp);
  if (w[0].ulp > TK_EXP_ULP)
    fail_msg("%s exp: %.3f ulp at %.9g, bound %g", v->name, w[0].ulp, (double)w[0].at,
             TK_EXP_ULP);
}

static void log_sweep(const vm_isa *v, float lo, float hi, uint32_t k) {
  const vm_fn fns[VM_FNS] = {v->log, v->sleef_log_u10, v->sleef_log_u35};
  vm_worst w[VM_FNS];
  sweep(fns, v->sleef_log_u10 ? 3 : 1, log, tk_f32_bits(lo), tk_f32_bits(hi), k, w);
  printf("[ ulp      ] %s log on [%g, %g]:\n", v->name, (double)lo, (double)hi);
  report(v->name, "log inline", w[0], k);
  if (v->sleef_log_u10) {
    report(v->name, "log sleef u10", w[1], k);
    report(v->name, "log sleef u35", w[2], k);
  }
  if (w[0].ulp > TK_LOG_ULP)
    fail_msg("%s log: %.3f ulp at %.9g, bound %g", v->name, w[0].ulp, (double)w[0].at,
             TK_LOG_ULP);
}

static void log_domain(void **state) {
  const vm_isa *v = *state;
  log_sweep(v, log_lo, log_hi, k_log);
  log_sweep(v, FLT_MIN, FLT_MAX, (LOG_ALL_STRIDE * k_log) | 1u);
}

/* One value through the array form. */
static float at(vm_fn fn, float x) {
  float y;
  fn(1, &x, &y);
  return y;
}

static void exp_edges(void **state) {
  const vm_isa *v = *state;
  assert_true(at(v->exp, 0.0f) == 1.0f);
  assert_true(at(v->exp, -0.0f) == 1.0f);
  assert_true(at(v->exp, -FLT_TRUE_MIN) == 1.0f);
  assert_true(at(v->exp, -INFINITY) == 0.0f);
  /* The smallest argument: a normal result within the bound. */
  float y = at(v->exp, KD_EXP_MIN_ARG);
  assert_true(y >= FLT_MIN);
  assert_true(ulp_error(y, exp((double)KD_EXP_MIN_ARG)) <= TK_EXP_ULP);
  /* Below it the result would be subnormal: flushed to 0. */
  const float flushed[] = {nextafterf(KD_EXP_MIN_ARG, -INFINITY), -90.0f, -103.0f, -104.0f,
                           -1e4f, -FLT_MAX};
  for (size_t i = 0; i < sizeof flushed / sizeof *flushed; i++)
    assert_true(at(v->exp, flushed[i]) == 0.0f);
  assert_true(at(v->exp, NAN) == 0.0f); /* outside the domain; documented as 0 */
}

static void log_edges(void **state) {
  const vm_isa *v = *state;
  assert_true(at(v->log, 1.0f) == 0.0f);
  static const float xs[] = {1e-5f, 1.00001f, 0.99999994f, 1.0000001f, 2.0f, 0.5f,
                             FLT_MIN, FLT_MAX};
  for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
    double e = ulp_error(at(v->log, xs[i]), log((double)xs[i]));
    if (e > TK_LOG_ULP) fail_msg("%s log(%.9g): %.3f ulp", v->name, (double)xs[i], e);
  }
  (void)at(v->log, 0.0f); /* outside the domain: any value, no fault */
  (void)at(v->log, NAN);
}

/* Lengths around the vector width: the first n values equal those of a
 * long call, nothing past n written. */
static void tails(void **state) {
  const vm_isa *v = *state;
  enum { N = 40 };
  float x[N], full_e[N], full_l[N], y[N + 1];
  for (int i = 0; i < N; i++) x[i] = -0.37f * (float)i - 0.01f;
  v->exp(N, x, full_e);
  for (int i = 0; i < N; i++) x[i] = -x[i];
  v->log(N, x, full_l);
  for (size_t n = 0; n <= 33; n++) {
    for (size_t i = 0; i <= n; i++) y[i] = -1.0f; /* sentinel at n */
    v->log(n, x, y);
    for (size_t i = 0; i < n; i++) assert_true(tk_f32_bits(y[i]) == tk_f32_bits(full_l[i]));
    assert_true(y[n] == -1.0f);
    for (size_t i = 0; i < N; i++) x[i] = -x[i];
    v->exp(n, x, y);
    for (size_t i = 0; i < N; i++) x[i] = -x[i];
    for (size_t i = 0; i < n; i++) assert_true(tk_f32_bits(y[i]) == tk_f32_bits(full_e[i]));
    assert_true(y[n] == -1.0f);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) k_exp = (uint32_t)strtoul(argv[1], NULL, 10);
  if (argc > 2) k_log = (uint32_t)strtoul(argv[2], NULL, 10);
  if (k_exp == 0) k_exp = 1;
  if (k_log == 0) k_log = 1;
  const char *only = getenv("KDLOSS_ISA");
  int narrow = 0;
  for (kd_isa isa = KD_ISA_SCALAR; only && isa <= KD_ISA_NEON; isa++)
    narrow |= kd_isa_supported(isa) && strcmp(only, kd_isa_name(isa)) == 0;
  int failures = 0;
  for (size_t i = 0; i < sizeof vm_isas / sizeof *vm_isas; i++) {
    const vm_isa *v = &vm_isas[i];
    char name[64];
    snprintf(name, sizeof name, "vecmath/%s", v->name);
    if (!kd_cpu_has(v->isa)) {
      printf("[ SKIPPED  ] %s: this CPU lacks it\n", name);
      continue;
    }
    if (narrow && strcmp(only, v->name) != 0) {
      printf("[ SKIPPED  ] %s: KDLOSS_ISA=%s\n", name, only);
      continue;
    }
    void *s = (void *)v;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(exp_domain, s), cmocka_unit_test_prestate(log_domain, s),
        cmocka_unit_test_prestate(exp_edges, s), cmocka_unit_test_prestate(log_edges, s),
        cmocka_unit_test_prestate(tails, s),
    };
    failures += _cmocka_run_group_tests(name, tests, sizeof tests / sizeof *tests, NULL, NULL);
  }
  return failures;
}
