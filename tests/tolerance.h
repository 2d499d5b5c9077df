/*
 * tolerance.h -- every accuracy bound the tests hold kdloss to, in one place.
 * These are the contract of include/kdloss.h, not loosened for any ISA.
 */
#ifndef KD_TOLERANCE_H
#define KD_TOLERANCE_H

/* |loss - ref| <= TK_LOSS_REL * |ref| + TK_LOSS_ABS_PER_FACTOR * |factor| */
#define TK_LOSS_REL 1e-5
#define TK_LOSS_ABS_PER_FACTOR 1e-6

/* max_ij |grad_ij - ref_ij| <= TK_GRAD_REL * max_ij |ref_ij| + TK_GRAD_ABS */
#define TK_GRAD_REL 1e-5
#define TK_GRAD_ABS 1e-30

/* The inline vector math (src/<isa>/math_<isa>.h) on its domains, in ulp
 * of the exact result (tests/test_vecmath.c). */
#define TK_EXP_ULP 1.5
#define TK_LOG_ULP 1.0

/*
 * One kernel pass of a SIMD ISA against the same pass of the scalar table
 * (test_kernels.c). Both round in float, differently: the vector exp/log (inline or SLEEF's,
 * within a few ulp) against libm's, FMA against separate rounding, float
 * block sums against the scalar file's double sums.
 *   TK_K_ELEM_REL: a stored value (exp, q, w, a gradient): a few ulp of its
 *     own size, or for values that cancel (u_j, grad_j) of the size of the
 *     terms they cancel from; TK_K_ELEM_ABS: exps below FLT_MIN may flush to 0.
 *   TK_K_SUM_REL: a returned sum, relative to the sum of its terms' sizes:
 *     each lane adds up to KD_BLOCK / 4 floats (NEON's 4 lanes) before the
 *     block joins a double, (256 / 4) * 2^-24 = 3.8e-6, plus the terms' ulps.
 */
#define TK_K_ELEM_REL 1e-6
#define TK_K_ELEM_ABS 1.2e-38 /* FLT_MIN */
#define TK_K_SUM_REL 1e-5

#endif
