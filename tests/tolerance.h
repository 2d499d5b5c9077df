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

#endif
