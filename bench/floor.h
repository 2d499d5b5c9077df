/*
 * floor.h -- the floors kdloss's kernels are measured against, one set per
 * ISA, each in its own file built with that ISA's flags
 * (bench/<isa>/floor_<isa>.c). They are not part of the library: each folder
 * is a static library of its own that only the benchmarks link.
 *
 * exp2log: the transcendental work of a cross-entropy row and nothing else:
 *   per element two exps and one log, sum_j exp(-|t_j|) * log(exp(-|s_j|) + 1e-5),
 *   over a flat array of n floats. -|x| keeps exp's arguments <= 0 and log's in
 *   [1e-5, 1 + 1e-5], the domains of the inline functions and the ranges the
 *   kernels pass ((x - max) / T, q + 1e-5); every variant takes it, so they
 *   compare like for like. inline: kd_exp_inline and kd_log_inline
 *   (src/vmath_inline.h; no SLEEF needed). u10 and u35: SLEEF's u10 exp and
 *   its u10 or u35 log, so the ratio can be taken against whichever log the
 *   kernel uses; built only when SLEEF is found (KD_BENCH_SLEEF).
 * exp2: the transcendental work of the distances whose row needs two exps per
 *   element and logs only per row (soft cross-entropy, KL, reverse KL):
 *   sum_j exp(-|s_j|) * exp(-|t_j|), inline or SLEEF's u10 exp. exp2log is
 *   also the floor of FACIL's eps cross-entropy, JSD (q, r and log M) and
 *   BCE sigmoid (softplus(s): one exp and one log; sigmoid(t): one exp).
 * read2: sum_j (s_j + t_j), the least work that reads both inputs once (the
 *   memory floor of MSE loss).
 * rw: g_j = s_j - t_j, reads both inputs and writes one output (the memory
 *   floor of MSE loss+gradient), with ordinary stores as the kernels use.
 *
 * No alignment is required; n >= 1 may be any size (tails are masked or scalar).
 */
#ifndef KD_BENCH_FLOOR_H
#define KD_BENCH_FLOOR_H

#include <stddef.h>

typedef float (*kd_floor_read_fn)(size_t n, const float *s, const float *t);
typedef float (*kd_floor_rw_fn)(size_t n, const float *s, const float *t, float *g);

#define KD_DECLARE_FLOORS(isa)                                                   \
  float kd_floor_exp2log_inline_##isa(size_t n, const float *s, const float *t); \
  float kd_floor_exp2log_u10_##isa(size_t n, const float *s, const float *t);    \
  float kd_floor_exp2log_u35_##isa(size_t n, const float *s, const float *t);    \
  float kd_floor_exp2_inline_##isa(size_t n, const float *s, const float *t);    \
  float kd_floor_exp2_u10_##isa(size_t n, const float *s, const float *t);       \
  float kd_floor_read2_##isa(size_t n, const float *s, const float *t);          \
  float kd_floor_rw_##isa(size_t n, const float *s, const float *t, float *g);

KD_DECLARE_FLOORS(avx2)
KD_DECLARE_FLOORS(avx512)
KD_DECLARE_FLOORS(neon)

/*
 * designs: the cross-entropy loss (factor 1) over dense rows x cols computed
 * with pass structures kdloss did not take, so the benchmark can show why
 * (bench/avx512/designs_avx512.c says what each does). AVX-512 only: the
 * difference is in the number of SLEEF calls, not in the ISA.
 */
typedef double (*kd_design_fn)(size_t rows, size_t cols, const float *s, const float *t,
                               float inv_temp);
double kd_design_ce_recompute_avx512(size_t rows, size_t cols, const float *s, const float *t,
                                     float inv_temp);
double kd_design_ce_online_avx512(size_t rows, size_t cols, const float *s, const float *t,
                                  float inv_temp);

#endif /* KD_BENCH_FLOOR_H */
