/*
 * vmath.h -- the constants of the inline vector exp and log (src/<isa>/math_<isa>.h),
 * written once for every ISA, and the array forms the tests and benchmarks
 * call (src/<isa>/math_<isa>.c, library kdloss_math_<isa>, not in libkdloss).
 * Baseline C: no intrinsics here.
 *
 * exp(x), x <= 0 (Cody-Waite, as Cephes expf): n = round(x log2 e),
 * r = x - n ln2 with ln2 = HI + LO, HI having 9 significant bits so that n HI
 * is exact for |n| < 2^15; |r| <= ln2/2. exp(r) = 1 + r + r^2 P(r), P of
 * degree 5 (Cephes' minimax coefficients). exp(x) = 2^n exp(r).
 *
 * log(x), x a positive normal float (as Cephes logf): x = 2^k m with m in
 * [sqrt(1/2), sqrt(2)), found by integer arithmetic on the bits;
 * f = m - 1 in [-0.293, 0.415]; log(1 + f) = f - f^2/2 + f^3 P(f), P of degree
 * 8; log(x) = k HI + (log(1 + f) + k LO).
 */
#ifndef KD_VMATH_H
#define KD_VMATH_H

#include <stddef.h>

#define KD_LN2_HI 0.693359375f     /* 355/512 */
#define KD_LN2_LO -2.12194440e-4f  /* ln 2 - 355/512 */
#define KD_LOG2E 1.44269504088896341f

/* exp: below KD_EXP_MIN_ARG the result would be under FLT_MIN (2^-126): it is
 * 0 there. The constant is the float just above -126 ln 2, so every argument
 * at or above it has n >= -126 and 2^n is a normal float. */
#define KD_EXP_MIN_ARG -87.3365402f
#define KD_EXP_P0 1.9875691500e-4f
#define KD_EXP_P1 1.3981999507e-3f
#define KD_EXP_P2 8.3334519073e-3f
#define KD_EXP_P3 4.1665795894e-2f
#define KD_EXP_P4 1.6666665459e-1f
#define KD_EXP_P5 5.0000001201e-1f

/* log: the bits of sqrt(1/2) rounded down, where m's interval starts. */
#define KD_LOG_SQRTHF_BITS 0x3f3504f3
#define KD_LOG_P0 7.0376836292e-2f
#define KD_LOG_P1 -1.1514610310e-1f
#define KD_LOG_P2 1.1676998740e-1f
#define KD_LOG_P3 -1.2420140846e-1f
#define KD_LOG_P4 1.4249322787e-1f
#define KD_LOG_P5 -1.6668057665e-1f
#define KD_LOG_P6 2.0000714765e-1f
#define KD_LOG_P7 -2.4999993993e-1f
#define KD_LOG_P8 3.3333331174e-1f

/*
 * Array forms: y[i] = f(x[i]) for i < n, nothing outside x[0..n) read or
 * y[0..n) written; x and y may be the same array. exp and log are the inline
 * functions (their domains and bounds are in math_<isa>.h); the sleef forms
 * call SLEEF's exp u10, log u10 and log u35 and exist only when the build
 * found SLEEF (KD_HAVE_SLEEF).
 */
#define KD_DECLARE_VMATH(isa)                                                \
  void kd_f32_exp_##isa(size_t n, const float *x, float *y);                \
  void kd_f32_log_##isa(size_t n, const float *x, float *y);                \
  void kd_f32_exp_sleef_u10_##isa(size_t n, const float *x, float *y);      \
  void kd_f32_log_sleef_u10_##isa(size_t n, const float *x, float *y);      \
  void kd_f32_log_sleef_u35_##isa(size_t n, const float *x, float *y);

KD_DECLARE_VMATH(avx2)
KD_DECLARE_VMATH(avx512)
KD_DECLARE_VMATH(neon)

#endif /* KD_VMATH_H */
