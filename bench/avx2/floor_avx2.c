/* The floors of floor.h for AVX2+FMA (floor_body.h), with the inline exp/log of
 * src/avx2/math_avx2.h and, when KD_BENCH_SLEEF, SLEEF's. Built as its own
 * static library with the ISA's flags, linked only into the benchmarks. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "floor_avx2.c must be compiled with -mavx2 -mfma"
#endif
#include "vec_avx2.h"
#include "math_avx2.h"
#if KD_BENCH_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf8_u10avx2
#define KD_SLEEF_LOG_U10 Sleef_logf8_u10avx2
#define KD_SLEEF_LOG_U35 Sleef_logf8_u35avx2
#endif
#include "floor_body.h"
