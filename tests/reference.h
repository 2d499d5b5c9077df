/*
 * reference.h -- the high-precision judge of every kernel (long double inside).
 *
 * Internal (tests, the accuracy report, the benchmarks' checks). Computes the
 * contract of kdloss.h literally, in long double, for valid arguments only: it
 * checks nothing but what it needs to stay defined.
 */
#ifndef KD_REFERENCE_H
#define KD_REFERENCE_H

#include <stddef.h>
#include "kdloss.h"

/*
 * Returns the loss. grad, when not NULL, receives d loss / d student as a
 * dense rows x cols array of doubles. Returns NaN for a row the contract calls
 * non-finite, or when its 2*cols long doubles of scratch cannot be allocated.
 */
double kd_reference_f64(kd_distance distance, double factor, double temperature,
                        size_t rows, size_t cols,
                        const float *student, size_t ld_student,
                        const float *teacher, size_t ld_teacher,
                        double *grad);

/*
 * Every distance, with weights, reduction and per-row losses, as
 * kd_loss_ex_f32 documents them. row_loss (rows doubles) and grad (dense
 * rows x cols) may be NULL. Infinite distances (kdloss.h) come back as
 * +-inf, with the documented gradient. NaN as above.
 */
double kd_reference_ex_f64(const kd_params *p, size_t rows, size_t cols,
                           const float *student, size_t ld_student,
                           const float *teacher, size_t ld_teacher,
                           double *row_loss, double *grad);

#endif
