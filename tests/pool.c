#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "parallel.h"
#include "pool.h"
#include "rng.h"
#include "tester.h" /* tk_malloc */

typedef struct shuffled {
  kd_task_fn task;
  void *ctx;
  size_t count, *order;
  atomic_size_t next;
} shuffled;

static void *shuffled_worker(void *arg) {
  shuffled *p = arg;
  for (size_t k; (k = atomic_fetch_add(&p->next, 1)) < p->count;) p->task(p->ctx, p->order[k]);
  return NULL;
}

void tk_shuffled_pool(void *pool, kd_task_fn task, void *ctx, size_t count) {
  (void)pool;
  static atomic_uint_fast64_t calls;
  uint64_t rng = 1 + atomic_fetch_add(&calls, 1);
  size_t *order = tk_malloc(count * sizeof *order);
  for (size_t i = 0; i < count; i++) order[i] = i;
  for (size_t i = count; i > 1; i--) { /* Fisher-Yates */
    size_t k = (size_t)(tk_uniform(&rng) * (double)i), tmp = order[i - 1];
    order[i - 1] = order[k];
    order[k] = tmp;
  }
  shuffled p = {task, ctx, count, order, 0};
  pthread_t th[3];
  for (int i = 0; i < 3; i++)
    if (pthread_create(&th[i], NULL, shuffled_worker, &p) != 0) fail_msg("pthread_create failed");
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  free(order);
}

static const char *mode;

const char *tk_threads_init(void) {
  if (mode) return mode;
  const char *v = getenv("KDLOSS_TEST_THREADS");
  mode = v ? v : "";
  if (!*mode) return mode;
  kd_chunk_work = 1;
  kd_serial_work = 0;
  if (strcmp(mode, "pool") == 0) {
    assert_int_equal(kd_set_parallel(tk_shuffled_pool, NULL), KD_OK);
  } else {
    char *end;
    long n = strtol(mode, &end, 10);
    if (*end || n < 1) fail_msg("KDLOSS_TEST_THREADS=%s: want a count >= 1 or pool", mode);
    assert_int_equal(kd_set_num_threads((int)n), KD_OK);
    assert_int_equal(kd_get_num_threads(), (int)n);
  }
  return mode;
}

void tk_threads_serial(int on) {
  if (*tk_threads_init()) kd_serial_work = on ? SIZE_MAX : 0;
}
