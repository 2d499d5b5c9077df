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

/* An element-wise pass (MSE, BCE) over one row: elem(x, y, acc, m, full,
 * store, &g) returns acc with the element's term added in the lanes of m
 * (every lane when full is set) and, when store is set, puts the element's
 * gradient in g. The row sums those terms with u accumulators, in float
 * blocks of `block` elements joining a double, and stores
 * grad_j = scale * g_j when store is set. Always inlined with constant
 * elem, u, block and store. */
#define KD_ELEM_U_MAX 4
typedef kd_vf (*kd_elem_fn)(kd_vf x, kd_vf y, kd_vf acc, kd_vm m, int full, int store,
                            kd_vf *g);
static inline __attribute__((always_inline)) double
kd_elem_row(size_t n, const float *s, const float *t, float scale, float *grad, int store,
            kd_elem_fn elem, int u, size_t block) {
  const kd_vf sc = kd_set1(scale);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = n - j < block ? n : j + block;
    kd_vf f[KD_ELEM_U_MAX], g;
    for (int k = 0; k < u; k++) f[k] = kd_zero();
    for (; j + (size_t)u * KD_LANES <= end; j += (size_t)u * KD_LANES) {
      for (int k = 0; k < u; k++) {
        size_t i = j + k * KD_LANES;
        f[k] = elem(kd_load(s + i), kd_load(t + i), f[k], kd_all(), 1, store, &g);
        if (store) kd_store(grad + i, kd_mul(sc, g)); /* grad may be s: this vector is read */
      }
    }
    for (; j < end; j += KD_LANES) {
      kd_vm m = kd_tail(end - j);
      kd_vf x = kd_load_part(s + j, end - j, m), y = kd_load_part(t + j, end - j, m);
      f[0] = elem(x, y, f[0], m, 0, store, &g);
      if (store) kd_store_part(grad + j, end - j, m, kd_mul(sc, g));
    }
    sum += kd_hsum_n(f, u);
  }
  return sum;
}

/* ((a - gap) + (a_lo - gap_lo)), a + a_lo = t_j - s_j exactly (TwoSum):
 * (t_j - t_max) - (s_j - s_max) at any offset between student and teacher,
 * with gap + gap_lo = t_max - s_max per lane. */
static inline kd_vf kd_gap_parts_lanes(kd_vf x, kd_vf y, kd_vf gap, kd_vf gap_lo) {
  kd_vf a = kd_sub(y, x), bb = kd_sub(a, y);
  kd_vf a_lo = kd_sub(kd_sub(y, kd_sub(a, bb)), kd_add(x, bb)); /* -x - bb, negated exactly */
  return kd_add(kd_sub(a, gap), kd_sub(a_lo, gap_lo));
}
/* The same with one row across the lanes. */
static inline kd_vf kd_gap_parts(kd_vf x, kd_vf y, const kd_ce_row *row) {
  return kd_gap_parts_lanes(x, y, kd_set1(row->max_gap), kd_set1(row->max_gap_lo));
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
