/*
 * pool.h -- the thread configurations the accuracy suites run under.
 *
 * KDLOSS_TEST_THREADS=N runs every kdloss call of the suites on the built-in
 * pool with N threads; KDLOSS_TEST_THREADS=pool on tk_shuffled_pool (three
 * threads of its own that take the tasks in a shuffled order). Either way the
 * chunks are single rows and no call is too small for the pool, so every case
 * of two rows or more is split, and the suites compare each result bitwise
 * with the same call made on the calling thread (tk_threads_serial).
 */
#ifndef KD_TEST_POOL_H
#define KD_TEST_POOL_H

#include <stddef.h>
#include "kdloss.h"

/* Applies KDLOSS_TEST_THREADS (once; later calls do nothing). Returns the
 * mode's name ("" when unset); fails the test if the library refuses it. */
const char *tk_threads_init(void);

/* on: later calls run on the calling thread (the reference for the bits);
 * off: on the mode's pool again. */
void tk_threads_serial(int on);

/* A kd_parallel_fn: the tasks in a shuffled order on three threads it starts
 * and joins (pool is unused). Safe to call from several threads at once. */
void tk_shuffled_pool(void *pool, kd_task_fn task, void *ctx, size_t count);

#endif
