/*
 * vmath.h -- the constants of the inline vector exp and log (src/vmath_inline.h),
 * written once for every ISA, and the array forms the tests and benchmarks
 * call (src/<isa>/math_<isa>.c, library kdloss_math_<isa>, not in libkdloss).
 * Baseline C: no intrinsics here.
 *
 * exp(x), x <= 0 (Cody-Waite): n = round(x log2 e), by adding and removing
 * 1.5 * 2^23 (the sum has no fraction bits, and on AVX2 and NEON its low
 * bits are n as an integer); r = x - n ln2 with ln2 = HI + LO, HI having 9
 * significant bits so that n HI is exact for |n| < 2^15; |r| <= ln2/2.
 * exp(r) = 1 + (r + r^2 P(r)), P of degree 4; exp(x) = 2^n exp(r).
 *
 * log(x), x a positive normal float: x = 2^k m with m in [0.75, 1.5) (on
 * AVX-512 by vgetmantps/vgetexpps, elsewhere by integer arithmetic on the
 * bits); f = m - 1 in [-0.25, 0.5), exact; log(1 + f) = f + f^2 Q(f), Q of
 * degree 8; log(x) = k ln2 + log(1 + f), ln2 rounded to float (k times its
 * error is under 0.07 ulp of the result).
 *
 * P and Q: minimax for the relative error of exp(r) on |r| <= ln2/2 and of
 * log(1 + f) on [-0.25, 0.5], fitted with mpmath and scipy's linprog on 4000
 * Chebyshev points, each coefficient rounded to float in order of degree with
 * the rest refitted; their own error is 0.05 (P) and 0.08 (Q) units of 2^-24.
 * Both polynomials are evaluated by Estrin's scheme (pairs c_i + c_(i+1) x
 * joined by powers of x^2): half the dependency chain of Horner's, for the
 * same FMA count plus one multiply.
 */
#ifndef KD_VMATH_H
#define KD_VMATH_H

#include <stddef.h>

#define KD_LN2 0.693147182f        /* ln 2 rounded to float */
#define KD_LN2_HI 0.693359375f     /* 355/512 */
#define KD_LN2_LO -2.12194440e-4f  /* ln 2 - 355/512 */
#define KD_LOG2E 1.44269504088896341f

/* exp: below KD_EXP_MIN_ARG the result would be under FLT_MIN (2^-126): it is
 * 0 there. The constant is the float just above -126 ln 2, so every argument
 * at or above it has n >= -126 and 2^n is a normal float. */
#define KD_EXP_MIN_ARG -87.3365402f
#define KD_EXP_SHIFT 12582912.0f /* 1.5 * 2^23 */
#define KD_EXP_P0 4.999999404e-01f
#define KD_EXP_P1 1.666652113e-01f
#define KD_EXP_P2 4.166825488e-02f
#define KD_EXP_P3 8.368662558e-03f
#define KD_EXP_P4 1.382146846e-03f

/* log: the bits of 0.75, where m's interval starts (AVX2, NEON). */
#define KD_LOG_M_LO_BITS 0x3f400000
#define KD_LOG_Q0 -5.000000000e-01f
#define KD_LOG_Q1 3.333345056e-01f
#define KD_LOG_Q2 -2.500011027e-01f
#define KD_LOG_Q3 1.999084800e-01f
#define KD_LOG_Q4 -1.664687842e-01f
#define KD_LOG_Q5 1.447762996e-01f
#define KD_LOG_Q6 -1.316393614e-01f
#define KD_LOG_Q7 1.047255173e-01f
#define KD_LOG_Q8 -4.515228420e-02f

/*
 * Array forms: y[i] = f(x[i]) for i < n, nothing outside x[0..n) read or
 * y[0..n) written; x and y may be the same array. exp and log are the inline
 * functions (their domains and bounds are in vmath_inline.h); the sleef forms
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
