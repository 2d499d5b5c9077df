/* The floors of floor.h for AVX-512 (floor_body.h), with the inline exp/log of
 * src/avx512/math_avx512.h and, when KD_BENCH_SLEEF, SLEEF's. Built as its own
 * static library with the ISA's flags, linked only into the benchmarks. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || !defined(__AVX512VL__)
#error "floor_avx512.c must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl"
#endif
#include "vec_avx512.h"
#include "math_avx512.h"
#if KD_BENCH_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf16_u10avx512f
#define KD_SLEEF_LOG_U10 Sleef_logf16_u10avx512f
#define KD_SLEEF_LOG_U35 Sleef_logf16_u35avx512f
#endif
#include "floor_body.h"
