/*
 * The pools and the chunked row loop (see parallel.h).
 *
 * A parallel call hands the pool min(chunks, workers) tasks; each task takes
 * the next unstarted chunk until none is left, so a busy or slow thread
 * delays no fixed share of the rows, and the scratch is one buffer per task,
 * allocated before any work.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "parallel.h"
#ifdef KD_HAVE_PTHREADPOOL
#include <pthreadpool.h>
#endif

/* More threads than this is KD_ERR_THREADS: no machine kdloss targets has them. */
#define KD_MAX_THREADS 1024

size_t kd_chunk_work = KD_CHUNK_WORK;
size_t kd_serial_work = KD_SERIAL_WORK;

/* The built-in pool, and its size; pool_lock is held while it runs a call or
 * is replaced. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int num_threads = 1;
#ifdef KD_HAVE_PTHREADPOOL
static pthreadpool_t builtin;
#endif

/* The engine's pool (kd_set_parallel). */
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
static kd_parallel_fn engine_run;
static void *engine_pool;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The online CPUs, counted once at first use (sysconf reads /sys: a few
 * microseconds, too much for every call). */
static size_t cpus = 1;

static size_t count_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > KD_MAX_THREADS ? KD_MAX_THREADS : (size_t)n;
}

static kd_status set_threads(int n) {
  if (n < 0 || n > KD_MAX_THREADS) return KD_ERR_THREADS;
  int want = n == 0 ? (int)cpus : n;
  kd_status status = KD_OK;
  pthread_mutex_lock(&pool_lock);
  if (want != atomic_load(&num_threads)) {
#ifdef KD_HAVE_PTHREADPOOL
    pthreadpool_t pool = want > 1 ? pthreadpool_create((size_t)want) : NULL;
    if (want > 1 && !pool) {
      status = KD_ERR_THREADS;
    } else {
      pthreadpool_destroy(builtin); /* NULL is fine */
      builtin = pool;
      atomic_store(&num_threads, want);
    }
#else
    status = want > 1 ? KD_ERR_THREADS : KD_OK; /* built without a pool */
#endif
  }
  pthread_mutex_unlock(&pool_lock);
  return status;
}

/* The CPU count, then KDLOSS_NUM_THREADS: a decimal integer, as a
 * kd_set_num_threads call; any other value, or one that call refuses, leaves
 * one thread. */
static void first_use(void) {
  cpus = count_cpus();
  const char *v = getenv("KDLOSS_NUM_THREADS");
  if (!v || *v < '0' || *v > '9') return;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end == '\0' && n <= INT_MAX) set_threads((int)n);
}

KD_API kd_status kd_set_num_threads(int n) {
  pthread_once(&once, first_use);
  return set_threads(n);
}

KD_API int kd_get_num_threads(void) {
  pthread_once(&once, first_use);
  return atomic_load(&num_threads);
}

KD_API kd_status kd_set_parallel(kd_parallel_fn run, void *pool) {
  pthread_mutex_lock(&engine_lock);
  engine_run = run;
  engine_pool = run ? pool : NULL;
  pthread_mutex_unlock(&engine_lock);
  return KD_OK;
}

typedef struct job {
  kd_chunk_fn fn;
  void *ctx;
  size_t chunks, rows_per, longer; /* the first `longer` chunks have rows_per + 1 rows */
  size_t scratch_floats;
  float *scratch;     /* scratch_floats per task, or NULL */
  double *sums;       /* one per chunk */
  atomic_size_t next; /* the next chunk not yet taken */
  atomic_int status;  /* KD_OK, or the first failure seen */
  atomic_size_t done; /* tasks finished */
} job;

/* A call's writes before run, and its tasks' writes before run returns, are
 * ordered by the pool; these atomics order them again where ThreadSanitizer
 * sees it (not inside pthreadpool). handed_out is only ever touched
 * atomically: the job, on the caller's stack, is not. */
static atomic_size_t handed_out;

static void task(void *arg, size_t t) {
  (void)atomic_load_explicit(&handed_out, memory_order_acquire);
  job *j = arg;
  for (size_t c; (c = atomic_fetch_add(&j->next, 1)) < j->chunks;) {
    if (atomic_load_explicit(&j->status, memory_order_relaxed) != KD_OK) continue;
    size_t i0 = c * j->rows_per + (c < j->longer ? c : j->longer);
    size_t n = j->rows_per + (c < j->longer);
    float *scratch = j->scratch ? j->scratch + t * j->scratch_floats : NULL;
    kd_status st = j->fn(j->ctx, i0, i0 + n, scratch, &j->sums[c]);
    int ok = KD_OK;
    if (st != KD_OK) atomic_compare_exchange_strong(&j->status, &ok, (int)st);
  }
  atomic_fetch_add_explicit(&j->done, 1, memory_order_release);
}

/* The caller's thread as a pool of one. */
static void run_here(void *pool, kd_task_fn fn, void *ctx, size_t count) {
  (void)pool;
  for (size_t i = 0; i < count; i++) fn(ctx, i);
}

#ifdef KD_HAVE_PTHREADPOOL
/* After a call the workers sleep at once (PTHREADPOOL_FLAG_YIELD_WORKERS), so
 * a later call pays their wake-up. Left spinning, as pthreadpool does by
 * default, they wait out a fixed count of pause instructions (milliseconds)
 * even when other processes need the CPUs, and a worker the scheduler then
 * holds back stalls every call of the pool until it runs again. */
static void run_builtin(void *pool, kd_task_fn fn, void *ctx, size_t count) {
  pthreadpool_parallelize_1d(pool, fn, ctx, count, PTHREADPOOL_FLAG_YIELD_WORKERS);
}
#endif

static kd_status run_job(kd_parallel_fn run, void *pool, size_t workers, job *j,
                         double *total) {
  size_t tasks = j->chunks < workers ? j->chunks : workers;
  if (j->scratch_floats) {
    if (j->scratch_floats > SIZE_MAX / sizeof(float) / tasks) return KD_ERR_NOMEM;
    j->scratch = malloc(tasks * j->scratch_floats * sizeof(float));
    if (!j->scratch) return KD_ERR_NOMEM;
  }
  double sums[KD_MAX_CHUNKS];
  j->sums = sums;
  atomic_fetch_add_explicit(&handed_out, 1, memory_order_release);
  run(pool, task, j, tasks);
  (void)atomic_load_explicit(&j->done, memory_order_acquire);
  free(j->scratch);
  kd_status status = (kd_status)atomic_load(&j->status);
  if (status != KD_OK) return status;
  double sum = 0.0;
  for (size_t c = 0; c < j->chunks; c++) sum += sums[c];
  *total = sum;
  return KD_OK;
}

kd_status kd_run_chunks(size_t rows, size_t cols, size_t cost, size_t scratch_floats,
                        kd_chunk_fn fn, void *ctx, double *total) {
  /* rows * cols * cost fits (cost <= 4): the caller checked rows * cols * sizeof(float). */
  size_t row_work = cols * cost, per = kd_chunk_work / row_work + (kd_chunk_work % row_work != 0);
  size_t least = rows / KD_MAX_CHUNKS + (rows % KD_MAX_CHUNKS != 0);
  size_t most = per > least ? per : least > 0 ? least : 1;
  size_t chunks = rows / most + (rows % most != 0);
  job j = {fn, ctx, chunks, rows / chunks, rows % chunks, scratch_floats, NULL, NULL, 0, KD_OK, 0};
  if (j.chunks == 1 || rows * row_work < kd_serial_work)
    return run_job(run_here, NULL, 1, &j, total);

  pthread_once(&once, first_use);
  pthread_mutex_lock(&engine_lock);
  kd_parallel_fn run = engine_run;
  void *pool = engine_pool;
  pthread_mutex_unlock(&engine_lock);
  if (run) return run_job(run, pool, cpus, &j, total);
#ifdef KD_HAVE_PTHREADPOOL
  /* A pool busy with another call is not waited for: this call runs here. */
  if (atomic_load(&num_threads) > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
    int ran = builtin != NULL;
    kd_status status = KD_OK;
    if (ran) status = run_job(run_builtin, builtin, pthreadpool_get_threads_count(builtin), &j, total);
    pthread_mutex_unlock(&pool_lock);
    if (ran) return status;
  }
#endif
  return run_job(run_here, NULL, 1, &j, total);
}
