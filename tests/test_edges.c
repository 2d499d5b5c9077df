/* The contract's hard edges, one named test each, on every ISA: where float
 * overflows, underflows or cancels, against the long double reference
 * (which tools/check_reference.py checks against exact arithmetic). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reference.h"
#include "tester.h"
#include "tolerance.h"

#define MAX_N 72

static void expect_within(const char *what, const char *how, float got, double ref, double tol) {
  if (!tk_within(got, ref, tol))
    fail_msg("isa=%s %s: %s %.9g, reference %.17g, tolerance %.3g", kd_isa_name(kd_get_isa()),
             what, how, (double)got, ref, tol);
}

/* One dense rows x cols case: loss only, loss and gradient out of place, and
 * in place; every result KD_OK and within the bound of the reference. */
static void edge(const char *what, kd_distance d, float factor, float temperature, size_t rows,
                 size_t cols, const float *s, const float *t) {
  size_t n = rows * cols;
  assert_true(n <= MAX_N);
  double ref_grad[MAX_N];
  double ref = kd_reference_f64(d, factor, temperature, rows, cols, s, cols, t, cols, ref_grad);
  if (isnan(ref)) fail_msg("%s: the reference is NaN (bad test case)", what);
  double max_ref = 0;
  for (size_t k = 0; k < n; k++) max_ref = fmax(max_ref, fabs(ref_grad[k]));
  double loss_tol = tk_loss_tol(ref, factor);
  double grad_tol = tk_grad_tol(max_ref, tk_grad_scale(d, factor, temperature, rows, cols));

  float loss = -1.0f;
  kd_status st = kd_loss_f32(d, factor, temperature, rows, cols, s, cols, t, cols, &loss);
  if (st != KD_OK) fail_msg("isa=%s %s: kd_loss_f32 %s", kd_isa_name(kd_get_isa()), what,
                            kd_status_str(st));
  expect_within(what, "kd_loss_f32 loss", loss, ref, loss_tol);
  for (int in_place = 0; in_place <= 1; in_place++) {
    float g[MAX_N];
    if (in_place) memcpy(g, s, n * sizeof *g);
    loss = -1.0f;
    st = kd_loss_grad_f32(d, factor, temperature, rows, cols, in_place ? g : s, cols, t, cols,
                          &loss, g, cols);
    const char *how = in_place ? "in place loss" : "loss";
    if (st != KD_OK) fail_msg("isa=%s %s: kd_loss_grad_f32 %s %s", kd_isa_name(kd_get_isa()),
                              what, in_place ? "in place" : "", kd_status_str(st));
    expect_within(what, how, loss, ref, loss_tol);
    for (size_t k = 0; k < n; k++) {
      char buf[64];
      snprintf(buf, sizeof buf, "%sgrad[%zu]", in_place ? "in place " : "", k);
      expect_within(what, buf, g[k], ref_grad[k], grad_tol);
    }
  }
}

/* A random case through the tester, out of place and in place. */
static void random_case(tk_case c) {
  c.in_place = 0;
  tk_run(&c);
  c.in_place = 1;
  tk_run(&c);
}

/* In place, the float sum overflowed after the gradient had replaced the
 * student: the row looked non-finite (false KD_ERR_NONFINITE). */
static void mse_in_place_sum_overflow(void **state) {
  (void)state;
  const float s[] = {3e38f, 1}, t[] = {-3e38f, 1};
  edge("mse s={3e38,1} t={-3e38,1}", KD_MSE, 1.0f, 1.0f, 1, 2, s, t);
  const float s2[] = {2e19f, 0}, t2[] = {0, 0};
  edge("mse factor 1e30 s={2e19,0} t=0", KD_MSE, 1e30f, 1.0f, 1, 2, s2, t2);
}

/* A subnormal gradient scale has few significant bits as a float. */
static void mse_subnormal_grad_scale(void **state) {
  (void)state;
  const float s[] = {1e19f, 0, 0}, t[] = {0, 0, 0};
  edge("mse factor 3e-45 s={1e19,0,0} t=0", KD_MSE, 3e-45f, 1.0f, 1, 3, s, t);
  const float s2[] = {1e30f, 0, 0};
  edge("mse factor 3e-45 s={1e30,0,0} t=0", KD_MSE, 3e-45f, 1.0f, 1, 3, s2, t);
}

/* s - s_max overflowed float before the division by a large T. */
static void ce_spread_beyond_flt_max(void **state) {
  (void)state;
  const float s[] = {3e38f, -3e38f}, t[] = {-3e38f, 3e38f};
  edge("ce T 3e38 s={3e38,-3e38} t={-3e38,3e38}", KD_CROSS_ENTROPY, 1.0f, 3e38f, 1, 2, s, t);
  const float s2[] = {3e38f, -3e38f, 0}, t2[] = {-3e38f, 3e38f, 0};
  edge("ce T 1e38 s={3e38,-3e38,0} t={-3e38,3e38,0}", KD_CROSS_ENTROPY, 1.0f, 1e38f, 1, 3, s2,
       t2);
  /* Maxima more than FLT_MAX apart, any T. */
  const float s3[] = {3e38f, 3e38f}, t3[] = {-3e38f, -3e38f};
  edge("ce T 0.5 s={3e38,3e38} t={-3e38,-3e38}", KD_CROSS_ENTROPY, 1.0f, 0.5f, 1, 2, s3, t3);
}

/* Results beyond float's range are +-inf with KD_OK, out of place and in place. */
static void overflow_is_inf(void **state) {
  (void)state;
  const float s[] = {1e10f, 0}, t[] = {0, 0};
  edge("mse factor 1e30 s={1e10,0} t=0", KD_MSE, 1e30f, 1.0f, 1, 2, s, t);
  const float s2[] = {1e10f, 0};
  float loss, g[2];
  assert_int_equal(kd_loss_grad_f32(KD_MSE, -1e30f, 1.0f, 1, 2, s2, 2, t, 2, &loss, g, 2), KD_OK);
  assert_true(loss == -INFINITY && g[0] == -INFINITY && g[1] == 0.0f);
  memcpy(g, s2, sizeof g);
  assert_int_equal(kd_loss_grad_f32(KD_MSE, 1e30f, 1.0f, 1, 2, g, 2, t, 2, &loss, g, 2), KD_OK);
  assert_true(loss == INFINITY && g[0] == INFINITY && g[1] == 0.0f);
  const float s3[] = {0, -80}, t3[] = {-80, 0}; /* row loss ~ 80/T * ... >> 1 */
  edge("ce factor 3e38 loss beyond FLT_MAX", KD_CROSS_ENTROPY, 3e38f, 1.0f, 1, 2, s3, t3);
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 3e38f, 1.0f, 1, 2, s3, 2, t3, 2, &loss), KD_OK);
  assert_true(loss == INFINITY);
}

/* A true gradient of exactly 0 (student == teacher on the unmasked classes):
 * float leaves rounding of the scale's size, inside the absolute term. */
static void ce_zero_gradient(void **state) {
  (void)state;
  const float s[] = {-INFINITY, 0, 0, 0, 0, -INFINITY, 0, 0}, t[8] = {0};
  edge("ce factor 0.5 T 2 masked s, t=0", KD_CROSS_ENTROPY, 0.5f, 2.0f, 1, 8, s, t);
  tk_case c = tk_default(KD_CROSS_ENTROPY, 3, 40);
  c.temperature = 1e30f;
  c.factor = 1e30f;
  c.seed = 1501;
  random_case(c);
}

/* A normal gradient scale whose products with q_j fall below FLT_MIN: float
 * keeps too few bits of them (found by the fuzzer: avx2, 2^-123/3). */
static void ce_tiny_grad_scale(void **state) {
  (void)state;
  tk_case c = tk_default(KD_CROSS_ENTROPY, 3, 40);
  c.factor = 0x1p-123f;
  c.temperature = 1.0f;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    c.seed = 1510 + seed;
    random_case(c);
  }
}

/* Losses in float's subnormal range: one float ulp is the best there is. */
static void ce_subnormal_loss(void **state) {
  (void)state;
  tk_case c = tk_default(KD_CROSS_ENTROPY, 2, 17);
  c.factor = 1e-44f;
  c.seed = 1502;
  random_case(c);
  c = tk_default(KD_MSE, 2, 17);
  c.factor = 1e-44f;
  c.scale = 0.1f;
  random_case(c);
}

/* Temperatures where a double reference failed: 1e-30 (0/0), 1e10
 * (cancellation), 1e-3 with logits near -3e38. */
static void ce_extreme_temperatures(void **state) {
  (void)state;
  const float s[] = {1, 1, 0};
  edge("ce T 1e-30 s=t={1,1,0}", KD_CROSS_ENTROPY, 1.0f, 1e-30f, 1, 3, s, s);
  tk_case c = tk_default(KD_CROSS_ENTROPY, 3, 40);
  c.temperature = 1e10f;
  c.seed = 1503;
  random_case(c);
  c.temperature = 1e-3f;
  c.shift = -3e38f;
  c.scale = 1e32f;
  c.inputs = TK_GAPS;
  c.seed = 1504;
  random_case(c);
}

/* One dense case through kd_loss_ex_f32 (row_loss too): loss only, loss
 * and gradient out of place, and in place; every result KD_OK and within
 * the bound of the reference. */
static void edge_ex(const char *what, const kd_params *p, size_t rows, size_t cols,
                    const float *s, const float *t) {
  size_t n = rows * cols;
  assert_true(n <= MAX_N);
  double ref_grad[MAX_N], ref_rows[MAX_N], w_sum = 0, w_max = 0;
  double ref = kd_reference_ex_f64(p, rows, cols, s, cols, t, cols, ref_rows, ref_grad);
  if (isnan(ref)) fail_msg("%s: the reference is NaN (bad test case)", what);
  for (size_t i = 0; i < rows; i++) {
    double w = p->row_weight ? p->row_weight[i] : 1.0;
    w_sum += w;
    w_max = fmax(w_max, w);
  }
  double max_ref = 0;
  for (size_t k = 0; k < n; k++) max_ref = fmax(max_ref, fabs(ref_grad[k]));
  double factor = fabs(p->factor);
  double grad_tol = tk_grad_tol(max_ref, tk_grad_scale_ex(p, cols, w_max, w_sum));
  double loss_tol = tk_loss_tol(ref, factor * (p->reduction == KD_REDUCE_SUM ? w_sum : 1.0));
  for (int run = 0; run < 3; run++) { /* loss only, out of place, in place */
    float g[MAX_N], rl[MAX_N], loss = -1.0f;
    if (run == 2) memcpy(g, s, n * sizeof *g);
    kd_status st = kd_loss_ex_f32(p, rows, cols, run == 2 ? g : s, cols, t, cols, &loss, rl,
                                  run ? g : NULL, cols);
    const char *how = run == 0 ? "loss" : run == 1 ? "loss+grad" : "in place";
    if (st != KD_OK) fail_msg("isa=%s %s: %s %s", kd_isa_name(kd_get_isa()), what, how,
                              kd_status_str(st));
    expect_within(what, how, loss, ref, loss_tol);
    for (size_t i = 0; i < rows; i++) {
      double w = p->row_weight ? p->row_weight[i] : 1.0;
      expect_within(what, "row_loss", rl[i], ref_rows[i], tk_loss_tol(ref_rows[i], factor * w));
    }
    for (size_t k = 0; run && k < n; k++) {
      char buf[64];
      snprintf(buf, sizeof buf, "%s grad[%zu]", how, k);
      expect_within(what, buf, g[k], ref_grad[k], grad_tol);
    }
  }
}

static const kd_distance softmax_family[] = {KD_SOFT_CROSS_ENTROPY, KD_KL_DIV,
                                             KD_KL_DIV_REVERSE, KD_JSD};

/* (s_max - s_j)/T and the gaps A_j overflow float at a tiny T (y_j = -1e43):
 * the float terms were inf * 0 = NaN, with KD_OK (found by the fuzzer). */
static void family_scaled_spread_overflows(void **state) {
  (void)state;
  const float s[] = {0, -1e35f, 0}, t[] = {1, 0, 0};
  for (size_t d = 0; d < TK_COUNT(softmax_family); d++) {
    kd_params p = {softmax_family[d], 1.0f, 1e-8f, 0.5f, KD_REDUCE_MEAN, NULL};
    edge_ex("s={0,-1e35,0} t={1,0,0} T 1e-8", &p, 1, 3, s, t);
  }
}

/* Row distances the float passes overflow on the way although the result
 * is in range: s_max - s_j beyond FLT_MAX at T = 1 (SCE ~1.8e34; the loss
 * was +inf), and 64 terms of 3e38 in the SIMD passes' float partial sums
 * (SCE 2.95e38; +inf, and -inf with a subnormal factor where the loss is
 * -4e-7) (found by the fuzzer). */
static void family_sum_near_flt_max(void **state) {
  (void)state;
  const float s[] = {1e38f, -3e38f, 0}, t[] = {0, -10, 0};
  float s2[65], t2[65] = {0};
  s2[0] = 0;
  for (size_t j = 1; j < 65; j++) s2[j] = -3e38f;
  const float factors[] = {1.0f, -0x1p-149f};
  for (size_t d = 0; d < 2; d++)
    for (size_t f = 0; f < TK_COUNT(factors); f++) {
      kd_params p = {softmax_family[d], factors[f], 1.0f, 0.5f, KD_REDUCE_MEAN, NULL};
      edge_ex("s={1e38,-3e38,0} t={0,-10,0} T 1", &p, 1, 3, s, t);
      edge_ex("s={0,-3e38 x 64} t=0 T 1", &p, 1, 65, s2, t2);
    }
}

/* t_j - s_j overflows float although T = 1 keeps every shifted logit in
 * range (the teacher's FLT_MAX where the student has -3e38): JSD's d_j was
 * NaN, its loss NaN with KD_OK (found by the fuzzer). Both of JSD's splits
 * (beta above and below 1/8); reverse KL on the same row. */
static void family_gap_overflows(void **state) {
  (void)state;
  const float s[] = {1, -3e38f, -INFINITY}, t[] = {-3e38f, FLT_MAX, -3e38f};
  const float betas[] = {0.3f, 0.05f};
  for (size_t b = 0; b < TK_COUNT(betas); b++) {
    kd_params p = {KD_JSD, 1.0f, 1.0f, betas[b], KD_REDUCE_MEAN, NULL};
    edge_ex("jsd s={1,-3e38,-inf} t={-3e38,FLT_MAX,-3e38}", &p, 1, 3, s, t);
  }
  const float s2[] = {1, -3e38f, 0}, t2[] = {-3e38f, FLT_MAX, -3e38f};
  kd_params p = {KD_KL_DIV_REVERSE, 1.0f, 1.0f, 0.5f, KD_REDUCE_MEAN, NULL};
  edge_ex("rkl s={1,-3e38,0} t={-3e38,FLT_MAX,-3e38}", &p, 1, 3, s2, t2);
}

/* Reverse KL and JSD at T = 2^-111 on logits one ulp apart near -3.75e38:
 * log(q_j/r_j) ~ 1e65, equal on every class the student keeps, so the
 * gradient is exactly 0; the w-form sums times 1e65 must not leave their
 * rounding behind (in the double path and in the reference). Two, three
 * and nine most probable classes (found by the fuzzer, avx512, with three;
 * nine is where the double path's unshifted sums left 2.6e37). */
static void w_form_huge_equal_logs(void **state) {
  (void)state;
  const float hi = -0x1.c363cap+127f, lo = -0x1.c363ccp+127f;
  const float s2[] = {hi, hi, lo, lo}, t2[] = {lo, lo, hi, hi};
  const float s3[] = {hi, hi, hi, lo, lo}, t3[] = {lo, lo, lo, hi, hi};
  float s9[12], t9[12];
  for (size_t j = 0; j < 12; j++) {
    s9[j] = j < 9 ? hi : lo;
    t9[j] = j < 9 ? lo : hi;
  }
  for (int jsd = 0; jsd <= 1; jsd++) {
    kd_params p = {jsd ? KD_JSD : KD_KL_DIV_REVERSE, 0x1.8p-147f, 0x1.12f632p-111f, 0.3f,
                   KD_REDUCE_SUM, NULL};
    edge_ex("2 of 4 classes, log(q/r) ~ 1e65", &p, 1, 4, s2, t2);
    edge_ex("3 of 5 classes, log(q/r) ~ 1e65", &p, 1, 5, s3, t3);
    edge_ex("9 of 12 classes, log(q/r) ~ 1e65", &p, 1, 12, s9, t9);
  }
}

/* Nearly equal distributions (s = 0, t ~ 1e21 at T = 4e31): the distance,
 * ~1e-21, is below the float passes' rounding (and the long double
 * reference's), and factor * w_i = 1.3e69 takes the loss beyond float. The
 * sign of that inf is not decidable at this precision, but every distance
 * here is >= 0: the loss and row_loss have the sign of factor or are 0, never
 * the opposite inf (found by the fuzzer, scalar, JSD: -inf for a factor > 0). */
static void family_near_zero_huge_factor(void **state) {
  (void)state;
  const float s[7] = {0};
  const float t[7] = {-0x1.1f004ep+71f, 0x1.5a3972p+71f, -0x1.db2ab2p+72f, -0x1.9a33f4p+70f,
                      0x1.438364p+71f,  -0x1.177eeap+71f, -0x1.a5cb2ep+72f};
  const float w[1] = {FLT_MAX}, betas[] = {0x1.6p-6f, 0.5f}, signs[] = {1.0f, -1.0f};
  const kd_distance dists[] = {KD_SOFT_CROSS_ENTROPY, KD_KL_DIV, KD_KL_DIV_REVERSE, KD_JSD,
                               KD_CROSS_ENTROPY_UNIFORM_EPS};
  for (size_t d = 0; d < TK_COUNT(dists); d++)
    for (size_t b = 0; b < TK_COUNT(betas); b++)
      for (size_t k = 0; k < TK_COUNT(signs); k++) {
        kd_params p = {dists[d], signs[k] * 0x1.d8ba28p+101f, 0x1.36c184p+104f, betas[b],
                       KD_REDUCE_SUM, w};
        float loss = NAN, row_loss = NAN, g[7];
        for (int grad = 0; grad <= 1; grad++) {
          assert_int_equal(kd_loss_ex_f32(&p, 1, 7, s, 7, t, 7, &loss, &row_loss,
                                          grad ? g : NULL, 7), KD_OK);
          if (!(loss * signs[k] >= 0) || !(row_loss * signs[k] >= 0))
            fail_msg("isa=%s %s beta %g factor %g: loss %g, row_loss %g", kd_isa_name(kd_get_isa()),
                     tk_distance_name(dists[d]), (double)betas[b], (double)p.factor,
                     (double)loss, (double)row_loss);
        }
      }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mse_in_place_sum_overflow), cmocka_unit_test(mse_subnormal_grad_scale),
      cmocka_unit_test(ce_spread_beyond_flt_max),  cmocka_unit_test(overflow_is_inf),
      cmocka_unit_test(ce_zero_gradient),          cmocka_unit_test(ce_subnormal_loss),
      cmocka_unit_test(ce_extreme_temperatures), cmocka_unit_test(ce_tiny_grad_scale),
      cmocka_unit_test(family_scaled_spread_overflows),
      cmocka_unit_test(family_sum_near_flt_max),
      cmocka_unit_test(family_gap_overflows),
      cmocka_unit_test(w_form_huge_equal_logs),
      cmocka_unit_test(family_near_zero_huge_factor),
  };
  tk_isa_runs r = tk_isa_runs_start("edges");
  while (tk_isa_next(&r))
    r.failures += cmocka_run_group_tests_name(r.name, tests, NULL, NULL);
  return r.failures;
}
