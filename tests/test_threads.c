/* Thread safety: threads racing through first use (dispatch initialisation)
 * and computing concurrently get the same ISA and bitwise the same results. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "tester.h"

#define THREADS 8
#define ROWS 16
#define COLS 1000

static float S[ROWS * COLS], T[ROWS * COLS];
static float G[THREADS][ROWS * COLS];

typedef struct result { kd_isa isa; float loss; kd_status st; } result;
static result R[THREADS];

static void *work(void *arg) {
  size_t k = (size_t)arg;
  R[k].isa = kd_get_isa();
  for (int rep = 0; rep < 20; rep++)
    R[k].st |= kd_loss_grad_f32(KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, S, COLS, T, COLS,
                                &R[k].loss, G[k], COLS);
  return NULL;
}

static void racing_first_use(void **state) {
  (void)state;
  uint64_t rng = 5;
  for (size_t i = 0; i < ROWS * COLS; i++) {
    S[i] = (float)(3 * tk_normal(&rng));
    T[i] = (float)(3 * tk_normal(&rng));
  }
  pthread_t th[THREADS];
  for (size_t k = 0; k < THREADS; k++)
    assert_int_equal(pthread_create(&th[k], NULL, work, (void *)k), 0);
  for (size_t k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
  for (size_t k = 0; k < THREADS; k++) {
    assert_int_equal(R[k].st, KD_OK);
    assert_int_equal(R[k].isa, R[0].isa);
    assert_memory_equal(&R[k].loss, &R[0].loss, sizeof(float));
    assert_memory_equal(G[k], G[0], sizeof G[0]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(racing_first_use)};
  return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
