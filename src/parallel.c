/*
 * The pools and the chunked row loop (see parallel.h).
 *
 * A parallel call hands the pool min(chunks, workers) tasks; each task takes
 * the next unstarted chunk until none is left, so a busy or slow thread
 * delays no fixed share of the rows, and the scratch is one buffer per task,
 * allocated before any work.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sched_yield under -std=c11 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "parallel.h"

/* More threads than this is KD_ERR_THREADS: no machine kdloss targets has them. */
#define KD_MAX_THREADS 1024

size_t kd_chunk_work = KD_CHUNK_WORK;
size_t kd_serial_work = KD_SERIAL_WORK;

/* How long a thread of the built-in pool watches for what it waits for (a
 * worker, the next call; the caller, the workers' last tasks) before it
 * sleeps. Waking a sleeping thread can cost tens of microseconds (on a virtual
 * machine the idle vCPU halts), a large part of a call the pool just pays
 * for; back-to-back calls find the workers awake. Bounded, so that idle
 * workers soon give the cores back to other processes (docs/design.md). */
#define KD_SPIN_NS 100000

/*
 * The built-in pool: the calling thread and threads - 1 workers. A call is one
 * word, claim: the call's number (32 bits, wrapping), its task count and the
 * next task not yet taken (16 bits each: at most KD_MAX_THREADS tasks). Every thread takes tasks by compare-and-swap while the word still
 * holds its call; the caller publishes the word, takes tasks like the others,
 * then waits until `finished` reaches the count. A worker that wakes late
 * finds the tasks taken and costs the call nothing; fn and ctx are read only
 * by the holder of a task, so never after the call has returned.
 */
#define CLAIM_CALL(w) ((w) >> 32)
#define CLAIM_COUNT(w) ((size_t)((w) >> 16) & 0xffff)
#define CLAIM_NEXT(w) ((size_t)(w) & 0xffff)
_Static_assert(KD_MAX_THREADS <= 0xffff, "a call's tasks fit in 16 bits");

typedef struct builtin_pool {
  size_t threads, started; /* threads in all, the caller included; workers started */
  int spin;                /* 0 with more threads than CPUs: a spinning worker would
                            * take a core from a working one */
  int inited;              /* lock, wake, done initialized, in that order */
  pthread_t *workers;
  kd_task_fn fn;
  void *ctx;
  _Atomic uint64_t claim;
  atomic_size_t finished;
  /* Sleeping: a thread counts itself in (sleepers, caller_sleeps) under lock,
   * then checks its condition again; the other side changes the condition,
   * then reads the count (all sequentially consistent), so one of the two
   * sees the other. */
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  atomic_int sleepers, caller_sleeps, stop;
} builtin_pool;

/* The built-in pool (NULL for one thread), and its size; pool_lock is held
 * while it runs a call or is replaced. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int num_threads = 1;
static builtin_pool *builtin;

/* The engine's pool (kd_set_parallel). */
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
static kd_parallel_fn engine_run;
static void *engine_pool;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The fork handlers are in place (first use); without them no pool starts. */
static int fork_handled;

/* The online CPUs, counted once at first use (sysconf reads /sys: a few
 * microseconds, too much for every call). */
static size_t cpus = 1;

static size_t count_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > KD_MAX_THREADS ? KD_MAX_THREADS : (size_t)n;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Spins up to KD_SPIN_NS (pauses, and a sched_yield every few microseconds
 * for a thread waiting for this core) until ready(p, arg); returns ready's
 * last answer. */
static int spin_until(builtin_pool *p, int (*ready)(builtin_pool *, uint64_t), uint64_t arg) {
  if (!p->spin) return ready(p, arg);
  uint64_t start = now_ns();
  for (unsigned round = 1;; round++) {
    if (ready(p, arg)) return 1;
    for (int k = 0; k < 4; k++) cpu_relax();
    if (round % 16 == 0) {
      if (now_ns() - start > KD_SPIN_NS) return ready(p, arg);
      sched_yield();
    }
  }
}

/* A call other than `seen` is published, or the pool is stopping. */
static int new_call(builtin_pool *p, uint64_t seen) {
  return CLAIM_CALL(atomic_load(&p->claim)) != seen || atomic_load(&p->stop);
}

static int all_finished(builtin_pool *p, uint64_t count) {
  return atomic_load(&p->finished) == count;
}

/* Runs tasks of call number `call` while it has some left. */
static void take_tasks(builtin_pool *p, uint64_t call) {
  uint64_t w = atomic_load(&p->claim);
  while (CLAIM_CALL(w) == call && CLAIM_NEXT(w) < CLAIM_COUNT(w)) {
    if (!atomic_compare_exchange_weak(&p->claim, &w, w + 1)) continue;
    p->fn(p->ctx, CLAIM_NEXT(w));
    if (atomic_fetch_add(&p->finished, 1) + 1 == CLAIM_COUNT(w) &&
        atomic_load(&p->caller_sleeps)) {
      pthread_mutex_lock(&p->lock);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->lock);
    }
    w = atomic_load(&p->claim);
  }
}

static void *worker(void *arg) {
  builtin_pool *p = arg;
  uint64_t seen = 0; /* call 0: the pool's first word, no tasks */
  for (;;) {
    if (!spin_until(p, new_call, seen)) {
      pthread_mutex_lock(&p->lock);
      atomic_fetch_add(&p->sleepers, 1);
      while (!new_call(p, seen)) pthread_cond_wait(&p->wake, &p->lock);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->lock);
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = CLAIM_CALL(atomic_load(&p->claim));
    take_tasks(p, seen);
  }
}

/* A kd_parallel_fn for the built-in pool; one caller at a time (pool_lock). */
static void run_builtin(void *pool, kd_task_fn fn, void *ctx, size_t count) {
  builtin_pool *p = pool;
  p->fn = fn;
  p->ctx = ctx;
  atomic_store(&p->finished, 0);
  uint64_t call = (CLAIM_CALL(atomic_load(&p->claim)) + 1) & 0xffffffff;
  atomic_store(&p->claim, call << 32 | (uint64_t)count << 16);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
  }
  take_tasks(p, call);
  if (!spin_until(p, all_finished, count)) {
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->caller_sleeps, 1);
    while (!all_finished(p, count)) pthread_cond_wait(&p->done, &p->lock);
    atomic_store(&p->caller_sleeps, 0);
    pthread_mutex_unlock(&p->lock);
  }
}

/* Stops and joins the workers, then frees p (NULL is fine). */
static void pool_destroy(builtin_pool *p) {
  if (!p) return;
  if (p->inited == 3) {
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
  }
  if (p->inited >= 3) pthread_cond_destroy(&p->done);
  if (p->inited >= 2) pthread_cond_destroy(&p->wake);
  if (p->inited >= 1) pthread_mutex_destroy(&p->lock);
  free(p->workers);
  free(p);
}

/* A pool of `threads` (2 or more) threads in all, or NULL if it cannot start. */
static builtin_pool *pool_create(size_t threads) {
  builtin_pool *p = fork_handled ? calloc(1, sizeof *p) : NULL;
  if (!p) return NULL;
  p->threads = threads;
  p->spin = threads <= cpus;
  p->workers = malloc((threads - 1) * sizeof *p->workers);
  if (p->workers && pthread_mutex_init(&p->lock, NULL) == 0 && ++p->inited &&
      pthread_cond_init(&p->wake, NULL) == 0 && ++p->inited &&
      pthread_cond_init(&p->done, NULL) == 0 && ++p->inited) {
    while (p->started < threads - 1 &&
           pthread_create(&p->workers[p->started], NULL, worker, p) == 0)
      p->started++;
    if (p->started == threads - 1) return p;
  }
  pool_destroy(p);
  return NULL;
}

static kd_status set_threads(int n) {
  if (n < 0 || n > KD_MAX_THREADS) return KD_ERR_THREADS;
  int want = n == 0 ? (int)cpus : n;
  kd_status status = KD_OK;
  pthread_mutex_lock(&pool_lock);
  if (want != atomic_load(&num_threads)) {
    builtin_pool *pool = want > 1 ? pool_create((size_t)want) : NULL;
    if (want > 1 && !pool) {
      status = KD_ERR_THREADS;
    } else {
      pool_destroy(builtin);
      builtin = pool;
      atomic_store(&num_threads, want);
    }
  }
  pthread_mutex_unlock(&pool_lock);
  return status;
}

/* Workers run this library's code: they are joined before it is unloaded
 * (or the process exits), unless a call is running on them then. */
__attribute__((destructor)) static void stop_builtin(void) {
  if (pthread_mutex_trylock(&pool_lock) != 0) return;
  pool_destroy(builtin);
  builtin = NULL;
  atomic_store(&num_threads, 1);
  pthread_mutex_unlock(&pool_lock);
}

/* A child of fork has none of its parent's workers, and their pool's lock may
 * be held: it starts on one thread and leaves that pool alone (kept reachable
 * in forked_off, never freed). fork waits for a call running on the pool. */
static builtin_pool *forked_off;

static void before_fork(void) { pthread_mutex_lock(&pool_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&pool_lock); }
static void after_fork_child(void) {
  if (builtin) forked_off = builtin;
  builtin = NULL;
  atomic_store(&num_threads, 1);
  pthread_mutex_unlock(&pool_lock);
}

/* The CPU count, then KDLOSS_NUM_THREADS: a decimal integer, as a
 * kd_set_num_threads call; any other value, or one that call refuses, leaves
 * one thread. */
static void first_use(void) {
  cpus = count_cpus();
  fork_handled = pthread_atfork(before_fork, after_fork_parent, after_fork_child) == 0;
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
 * sees it (not inside an engine's pool built without it). handed_out is only ever touched
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
  /* A pool busy with another call is not waited for: this call runs here. */
  if (atomic_load(&num_threads) > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
    int ran = builtin != NULL;
    kd_status status = KD_OK;
    if (ran) status = run_job(run_builtin, builtin, builtin->threads, &j, total);
    pthread_mutex_unlock(&pool_lock);
    if (ran) return status;
  }
  return run_job(run_here, NULL, 1, &j, total);
}
