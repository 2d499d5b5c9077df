/*
 * passes.h -- what the pass skeletons (ce_passes.h, mse_passes.h) share.
 *
 * Included by src/<isa>/ files after their operation layer vec_<isa>.h, which
 * defines KD_VEC_ISA, KD_LANES, kd_vf, kd_vm and the kd_* operations. No
 * intrinsics here: each skeleton is written once and compiled per ISA.
 */
#ifndef KD_PASSES_H
#define KD_PASSES_H

#ifndef KD_VEC_ISA
#error "include the ISA's vec_<isa>.h before passes.h"
#endif
#include "kernels.h"

/* kd_f32_<op>_<isa>, the names kernels.h declares. */
#define KD_PASTE_(a, b) a##_##b
#define KD_PASTE(a, b) KD_PASTE_(a, b)
#define KD_FN(op) KD_PASTE(kd_f32_##op, KD_VEC_ISA)

/* Elements per float partial sum of the softmax and BCE passes: KD_BLOCK
 * per 4 lanes, so that each lane adds as many floats before the double as
 * NEON's 4 lanes do in KD_BLOCK (the bound of tests/tolerance.h), and wider
 * vectors pay the horizontal reduction into double proportionally less
 * often. A multiple of 2 * KD_LANES, the passes' step. */
#define KD_LANE_BLOCK (KD_BLOCK / 4 * KD_LANES)
static inline size_t kd_lane_block_end(size_t j, size_t n) {
  return n - j < KD_LANE_BLOCK ? n : j + KD_LANE_BLOCK;
}

/* The u accumulators of one sum, added, then reduced into double. */
static inline double kd_hsum_n(const kd_vf *acc, int u) {
  kd_vf v = acc[0];
  for (int k = 1; k < u; k++) v = kd_add(v, acc[k]);
  return kd_hsum(v);
}

/* expm1 on |d| < KD_EXPM1_BAND only (kernels.h), given d2 = d * d: d + d^2 P(d)
 * with P by Estrin's scheme: three dependent FMAs where Horner's takes five.
 * Outside the band (NaN and +-inf included) the result is garbage that the
 * caller never selects. */
static inline kd_vf kd_expm1f_band(kd_vf d, kd_vf d2) {
  kd_vf p01 = kd_fmadd(kd_set1(KD_EXPM1_C3), d, kd_set1(KD_EXPM1_C2));
  kd_vf p23 = kd_fmadd(kd_set1(KD_EXPM1_C5), d, kd_set1(KD_EXPM1_C4));
  kd_vf p45 = kd_fmadd(kd_set1(KD_EXPM1_C7), d, kd_set1(KD_EXPM1_C6));
  kd_vf p = kd_fmadd(kd_fmadd(p45, d2, p23), d2, p01);
  return kd_fmadd(p, d2, d);
}

#endif /* KD_PASSES_H */
