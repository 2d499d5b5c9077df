/* Threads: racing first use; the thread-count and engine-pool API and its
 * errors; the engine pool's contract (every task once, count <= CPUs, small
 * calls not sent); and concurrent calls on the built-in pool, on an engine
 * pool and across pool changes, every result bitwise equal to one thread's;
 * a child of fork. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pool.h"
#include "tester.h"

#define THREADS 8
#define ROWS 64
#define COLS 4096 /* wide enough for heap scratch; 16 rows of cross-entropy and 64 of
                     * MSE are enough work for the pool */

static float S[ROWS * COLS], T[ROWS * COLS];
static float W[ROWS]; /* row weights, some 0 */
static float G[THREADS][ROWS * COLS];

typedef struct result { kd_isa isa; float loss; kd_status st; } result;
static result R[THREADS];

static void fill(void) {
  uint64_t rng = 5;
  for (size_t i = 0; i < ROWS * COLS; i++) {
    S[i] = (float)(3 * tk_normal(&rng));
    T[i] = (float)(3 * tk_normal(&rng));
  }
  for (size_t i = 0; i < ROWS; i++) W[i] = (float)(i % 5) * 0.75f;
}

static int online(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

/* The shapes the concurrent tests use, by thread k: cross-entropy and MSE at
 * 16 x 4096 (cross-entropy 16 chunks, MSE 4), 64 x 4096 (64, 16), 16 x 1000
 * and 64 x 1000 (4 and 13, 1 and 4); of these, cross-entropy at 4096
 * classes and MSE 64 x 4096 are enough work for a pool, the rest stay on
 * their thread. */
static size_t rows_of(size_t k) { return k % 4 < 2 ? 16 : ROWS; }
static size_t cols_of(size_t k) { return k % 8 < 4 ? COLS : 1000; }

/* Threads 3 and 7 call the family's entry point: JSD with weights (some 0)
 * and SUM, BCE with weights and MEAN; the others cross-entropy and MSE. */
static kd_status call(size_t k, float *loss, float *grad) {
  kd_distance d = k % 2 ? KD_MSE : KD_CROSS_ENTROPY;
  size_t rows = rows_of(k), cols = cols_of(k);
  if (k % 4 == 3) {
    kd_params p = {k == 3 ? KD_JSD : KD_BCE_SIGMOID, 1, 2, 0.25f,
                   k == 3 ? KD_REDUCE_SUM : KD_REDUCE_MEAN, W};
    return kd_loss_ex_f32(&p, rows, cols, S, cols, T, cols, loss, NULL, grad, cols);
  }
  return kd_loss_grad_f32(d, 1, 2, rows, cols, S, cols, T, cols, loss, grad, cols);
}

static void *work(void *arg) {
  size_t k = (size_t)arg;
  R[k].isa = kd_get_isa();
  for (int rep = 0; rep < 20; rep++) R[k].st |= call(k, &R[k].loss, G[k]);
  return NULL;
}

static void run_racing(void) {
  memset(R, 0, sizeof R);
  pthread_t th[THREADS];
  for (size_t k = 0; k < THREADS; k++)
    assert_int_equal(pthread_create(&th[k], NULL, work, (void *)k), 0);
  for (size_t k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
}

/* Every R and G equal to the same call on one thread. */
static void check_against_one_thread(const char *what) {
  assert_int_equal(kd_set_parallel(NULL, NULL), KD_OK);
  assert_int_equal(kd_set_num_threads(1), KD_OK);
  static float g[ROWS * COLS];
  for (size_t k = 0; k < THREADS; k++) {
    float loss = NAN;
    assert_int_equal(call(k, &loss, g), KD_OK);
    if (R[k].st != KD_OK) fail_msg("%s: thread %zu: %s", what, k, kd_status_str(R[k].st));
    assert_int_equal(R[k].isa, R[0].isa);
    if (memcmp(&R[k].loss, &loss, sizeof loss) != 0 || memcmp(G[k], g, rows_of(k) * cols_of(k) * sizeof *g) != 0)
      fail_msg("%s: thread %zu differs from one thread", what, k);
  }
}

static void racing_first_use(void **state) {
  (void)state;
  fill();
  run_racing();
  check_against_one_thread("first use");
}

static void thread_count_api(void **state) {
  (void)state;
  assert_int_equal(kd_get_num_threads(), 1); /* the default (KDLOSS_NUM_THREADS unset) */
  assert_int_equal(kd_set_num_threads(-1), KD_ERR_THREADS);
  assert_int_equal(kd_set_num_threads(INT_MIN), KD_ERR_THREADS);
  assert_int_equal(kd_set_num_threads(1025), KD_ERR_THREADS);
  assert_int_equal(kd_set_num_threads(INT_MAX), KD_ERR_THREADS);
  assert_int_equal(kd_get_num_threads(), 1);
  assert_int_equal(kd_set_num_threads(0), KD_OK);
  assert_int_equal(kd_get_num_threads(), online());
  assert_int_equal(kd_set_num_threads(3), KD_OK);
  assert_int_equal(kd_get_num_threads(), 3);
  assert_int_equal(kd_set_num_threads(-5), KD_ERR_THREADS);
  assert_int_equal(kd_get_num_threads(), 3);
  assert_int_equal(kd_set_num_threads(1), KD_OK);
  assert_int_equal(kd_get_num_threads(), 1);
  assert_int_equal(kd_set_parallel(NULL, &state), KD_OK);
}

/* An engine pool that runs the tasks on the calling thread and records them. */
typedef struct counting {
  size_t calls, count, seen[64]; /* the test's calls have at most 64 chunks */
} counting;

static void counting_run(void *pool, kd_task_fn task, void *ctx, size_t count) {
  counting *p = pool;
  p->calls++;
  p->count = count;
  assert_true(count >= 1 && count <= 64);
  for (size_t i = count; i-- > 0;) { /* backwards: any order must do */
    task(ctx, i);
    p->seen[i]++;
  }
}

static void engine_pool_contract(void **state) {
  (void)state;
  counting p;
  memset(&p, 0, sizeof p);
  assert_int_equal(kd_set_parallel(counting_run, &p), KD_OK);
  float loss, ref;
  /* 64 x 4096 is 64 chunks: min(64, CPUs) tasks, each once. */
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, S, COLS, T, COLS, &loss), KD_OK);
  assert_int_equal(p.calls, 1);
  assert_int_equal(p.count, (size_t)(online() < 64 ? online() : 64));
  for (size_t i = 0; i < p.count; i++) assert_int_equal(p.seen[i], 1);
  /* Under 65536 elements (cross-entropy) or 262144 (MSE), or one chunk (one
   * row), the call stays here. */
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, 15, COLS, S, COLS, T, COLS, &loss), KD_OK);
  assert_int_equal(kd_loss_f32(KD_MSE, 1, 2, ROWS - 1, COLS, S, COLS, T, COLS, &loss), KD_OK);
  assert_int_equal(kd_loss_f32(KD_MSE, 1, 2, 1, ROWS * COLS, S, ROWS * COLS, T, ROWS * COLS,
                               &loss), KD_OK);
  assert_int_equal(p.calls, 1);
  assert_int_equal(kd_loss_f32(KD_MSE, 1, 2, ROWS, COLS, S, COLS, T, COLS, &ref), KD_OK);
  assert_int_equal(p.calls, 2);
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, 16, COLS, S, COLS, T, COLS, &loss), KD_OK);
  assert_int_equal(p.calls, 3);
  /* Back to the built-in pool: the engine's is not called again. */
  assert_int_equal(kd_set_parallel(NULL, &p), KD_OK);
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, 16, COLS, S, COLS, T, COLS, &ref), KD_OK);
  assert_int_equal(p.calls, 3);
  assert_memory_equal(&loss, &ref, sizeof loss);
}

static void concurrent_builtin(void **state) {
  (void)state;
  assert_int_equal(kd_set_num_threads(2), KD_OK);
  run_racing();
  check_against_one_thread("built-in pool, 2 threads");
}

static void concurrent_engine(void **state) {
  (void)state;
  assert_int_equal(kd_set_parallel(tk_shuffled_pool, NULL), KD_OK);
  run_racing();
  check_against_one_thread("shuffled engine pool");
}

/* Pools replaced while calls run: each call uses one of them, or none. */
static atomic_int stop;
static void *switcher(void *arg) {
  (void)arg;
  for (int i = 0; !atomic_load(&stop); i++) {
    kd_set_num_threads(1 + i % 3);
    kd_set_parallel(i % 4 == 3 ? tk_shuffled_pool : NULL, NULL);
  }
  return NULL;
}

static void pools_changing_under_calls(void **state) {
  (void)state;
  pthread_t sw;
  atomic_store(&stop, 0);
  assert_int_equal(pthread_create(&sw, NULL, switcher, NULL), 0);
  run_racing();
  atomic_store(&stop, 1);
  pthread_join(sw, NULL);
  check_against_one_thread("pools changing");
}

/* NaN in one row: KD_ERR_NONFINITE and a NaN loss on every pool. */
static void nonfinite_on_pools(void **state) {
  (void)state;
  static float s[ROWS * COLS], g[ROWS * COLS];
  memcpy(s, S, sizeof s);
  s[41 * COLS + 7] = NAN;
  for (int mode = 0; mode < 3; mode++) {
    assert_int_equal(kd_set_parallel(mode == 2 ? tk_shuffled_pool : NULL, NULL), KD_OK);
    assert_int_equal(kd_set_num_threads(mode == 1 ? 2 : 1), KD_OK);
    for (int d = 0; d < 2; d++) {
      float loss = 0;
      assert_int_equal(kd_loss_grad_f32(d ? KD_MSE : KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, s, COLS,
                                        T, COLS, &loss, g, COLS), KD_ERR_NONFINITE);
      assert_true(isnan(loss));
      loss = 0;
      assert_int_equal(kd_loss_f32(d ? KD_MSE : KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, s, COLS, T,
                                   COLS, &loss), KD_ERR_NONFINITE);
      assert_true(isnan(loss));
    }
  }
  assert_int_equal(kd_set_parallel(NULL, NULL), KD_OK);
  assert_int_equal(kd_set_num_threads(1), KD_OK);
}

/* A child of fork has none of the pool's workers: it runs on one thread, gets
 * the same bits, can take the pool's lock, and exits (joining no worker)
 * without hanging. (It starts no thread: ThreadSanitizer does not allow
 * that after fork.) */
static void fork_child(void **state) {
  (void)state;
  assert_int_equal(kd_set_num_threads(2), KD_OK);
  float loss, ref;
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, S, COLS, T, COLS, &ref), KD_OK);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(60);
    int ok = kd_get_num_threads() == 1 &&
             kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, S, COLS, T, COLS, &loss) == KD_OK &&
             memcmp(&loss, &ref, sizeof loss) == 0 && kd_set_num_threads(1) == KD_OK;
    exit(ok ? 0 : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("child after fork: %s %d", WIFEXITED(status) ? "exit" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  assert_int_equal(kd_loss_f32(KD_CROSS_ENTROPY, 1, 2, ROWS, COLS, S, COLS, T, COLS, &loss), KD_OK);
  assert_memory_equal(&loss, &ref, sizeof loss);
  assert_int_equal(kd_set_num_threads(1), KD_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(racing_first_use),     cmocka_unit_test(thread_count_api),
      cmocka_unit_test(engine_pool_contract), cmocka_unit_test(concurrent_builtin),
      cmocka_unit_test(concurrent_engine),    cmocka_unit_test(pools_changing_under_calls),
      cmocka_unit_test(nonfinite_on_pools),   cmocka_unit_test(fork_child),
  };
  return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
