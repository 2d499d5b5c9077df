/*
 * parallel.h -- rows in chunks, on the caller's thread or on a pool.
 *
 * Internal. The chunk layout depends only on the shape, never on the number of
 * threads or on the pool: a call is split into chunks of whole consecutive rows,
 * each chunk's sum is computed by one kd_chunk_fn call in its own fixed order,
 * and the chunk sums are added in chunk order, in double, starting from 0.
 * Every way of running the chunks therefore gives the same bits.
 */
#ifndef KD_PARALLEL_H
#define KD_PARALLEL_H

#include <stddef.h>
#include "kdloss.h"

/* Sums rows [i0, i1) into *sum. scratch: the scratch_floats given to
 * kd_run_chunks, owned by this call alone, or NULL when scratch_floats is 0.
 * Returns KD_OK or KD_ERR_NONFINITE (then *sum is unused). */
typedef kd_status (*kd_chunk_fn)(void *ctx, size_t i0, size_t i1, float *scratch,
                                 double *sum);

/* Runs fn over every chunk of rows x cols and sets *total to the sum of the
 * chunk sums. cost: the work of one element, 1 (MSE) to 4 (cross-entropy),
 * for the chunk size and the serial threshold below. KD_ERR_NOMEM before any
 * fn call if the scratch cannot be had; otherwise the first failing chunk's
 * status, after which chunks not yet started are skipped (which ones ran may
 * depend on timing). */
kd_status kd_run_chunks(size_t rows, size_t cols, size_t cost, size_t scratch_floats,
                        kd_chunk_fn fn, void *ctx, double *total);

/* The rows go into as many chunks as chunks of ceil(KD_CHUNK_WORK / (cols *
 * cost)) rows would need (at most KD_MAX_CHUNKS; one row each when a row is
 * that much work or more), and the chunks' row counts differ by at most one,
 * the longer first: 4096 cross-entropy elements, 16384 MSE elements. Equal
 * chunks end together on threads that start together; small ones bound how
 * far apart two threads end when they do not (a pool's sleeping thread starts
 * late), and cost a thread next to nothing each. */
#define KD_CHUNK_WORK 16384
#define KD_MAX_CHUNKS 1024
/* Calls of less work (rows * cols * cost) stay on the caller's thread: waking
 * a pool costs more. 65536 cross-entropy elements, 262144 MSE elements. */
#define KD_SERIAL_WORK 262144

/* The two sizes above as used; tests lower them to put small shapes on the
 * pool (results then differ from the defaults' only in the chunk layout). */
extern size_t kd_chunk_work, kd_serial_work;

#endif
