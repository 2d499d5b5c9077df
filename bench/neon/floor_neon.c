/* The floors of floor.h for aarch64 AdvSIMD (floor_body.h), with the inline exp/log of
 * src/neon/math_neon.h and, when KD_BENCH_SLEEF, SLEEF's. Built as its own
 * static library with the ISA's flags, linked only into the benchmarks. */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "floor_neon.c is for aarch64 with AdvSIMD"
#endif
#include "vec_neon.h"
#include "math_neon.h"
#if KD_BENCH_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf4_u10advsimd
#define KD_SLEEF_LOG_U10 Sleef_logf4_u10advsimd
#define KD_SLEEF_LOG_U35 Sleef_logf4_u35advsimd
#endif
#include "floor_body.h"
