/*
 * kdloss benchmarks (Google Benchmark through gbench_c.h).
 *
 * For every ISA this CPU and build support: the four entry points
 * (cross-entropy loss, cross-entropy loss+gradient, MSE loss, MSE
 * loss+gradient) at the shapes below, the loss and loss+gradient of every
 * other distance through kd_loss_ex_f32 (fewer shapes: family_shapes), and
 * the floors of floor.h over the same element counts, all in one binary so
 * every ratio comes from one run. On
 * AVX-512 also floor.h's design sketches: the cross-entropy loss computed with
 * the pass structures kdloss did not take (recomputing the exps instead of
 * caching them; an online normaliser), to show the choice with numbers. An ISA
 * of this architecture that the CPU or the build lacks is reported as a
 * benchmark "<isa>/skipped" carrying the reason.
 *
 *   meson test -C build --benchmark
 *   build/bench/bench_kdloss --benchmark_filter='avx512/ce_' (any Google Benchmark flag)
 *
 * Names are <isa>/<operation>/<rows>/<cols>; the floors are
 * <isa>/floor_<kind>/<rows>/<cols>, the sketches <isa>/design_ce_<kind>/<rows>/<cols>.
 * Rates: items are elements (rows*cols per call); bytes are the least traffic
 * the call implies: student and teacher read once (8 B/element), plus the
 * gradient written once (4 B/element).
 * Google Benchmark prints bytes_per_second in binary units (G = 2^30); the
 * summary's GB/s are decimal (10^9).
 * Defaults (overridable on the command line): 5 repetitions of at least 0.1 s
 * each, in random order across all benchmarks (so a noisy stretch of a
 * shared machine lands on many benchmarks a little rather than on one ISA's
 * block), aggregates only (the median is the number to quote). After the report
 * comes a Markdown summary of the medians (CPU time): throughput per ISA and
 * shape, ratios to the floors (the inline exp2log floor and SLEEF's), and the
 * head shapes' per-element rates as fractions of 256x1000's.
 *
 * Threads: threads/<operation>/<rows>/<cols>/<threads>/real_time runs the
 * automatic ISA's four entry points on the built-in pool with 1, 2 and all
 * online threads, timed by the wall clock (the other benchmarks use CPU time
 * and one thread), next to two floors run in kdloss's own chunks on the same
 * pool: floor_exp2log_inline at the cross-entropy shapes, floor_read2 and
 * floor_rw (MSE loss's and loss+gradient's) at the out-of-cache MSE shape. A floor's speed-up is what the machine and the pool
 * give (the ceiling for the call's). threads/pool_empty/256/1000 times a pool
 * call whose chunks do nothing: with more than one thread, what each call
 * pays to start the pool's threads and wait for them. The threads table alone:
 *   build/bench/bench_kdloss --benchmark_filter='^threads/' --benchmark_repetitions=9 threshold/<operation>/<rows>/1000/<threads> times
 * calls below the size where kdloss starts using the pool, with that limit
 * lifted, to show where the pool starts to pay. The summary ends with the
 * speed-ups.
 *
 * Inputs: student and teacher logits independently N(0, 1) from a fixed seed
 * (the same on every run and ISA), temperature 2, factor 1, JSD's beta 0.5,
 * no row weights, mean, dense rows (ld == cols), gradient into a separate
 * buffer. The exp2log floors take the
 * same arrays and use -|x| of them (floor.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "floor.h"
#include "gbench_c.h"
#include "kdloss.h"
#include "kernels.h" /* kd_cpu_has: tells "the CPU lacks it" from "the build lacks it" */
#include "parallel.h" /* kd_serial_work, lifted by the threshold benchmarks */
#include "rng.h"     /* the tests' generator */

#define TEMPERATURE 2.0f
#define FACTOR 1.0f
#define SEED 0x6b646c6f7373ull /* "kdloss" */
/* Distinct normals per input; longer arrays repeat them (the widest
 * cross-entropy shape, 8 x 128256, fits, so no cross-entropy row repeats). */
#define POOL ((size_t)1 << 20)

typedef struct shape {
  int64_t rows, cols;
  int head; /* run only the kernels and the inline floor (keeps the run short) */
} shape;

/* Continual-learning heads (a batch of 256 on task heads of 2 to 100 classes),
 * ImageNet, and language-model vocabularies. */
static const shape shapes[] = {{128, 10, 0},   {128, 100, 0},  {256, 2, 1},
                               {256, 10, 1},   {256, 20, 1},   {256, 100, 1},
                               {256, 1000, 0}, {64, 32000, 0}, {8, 128256, 0}};
/* The other distances: two head shapes, ImageNet and a vocabulary. */
static const shape family_shapes[] = {{256, 10, 1}, {256, 100, 1}, {256, 1000, 0},
                                      {64, 32000, 0}};
#define N_FAMILY_SHAPES (sizeof family_shapes / sizeof family_shapes[0])
/* The head shapes' per-element rates are reported against this one's. */
static const shape head_ref = {256, 1000, 0};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])
/* MSE far out of cache: 1 GiB per array, larger than any last-level cache,
 * 3 GiB with the gradient. */
static const shape big = {64, (int64_t)1 << 22, 0};
/* The threads dimension: these, and the out-of-cache MSE shape. */
static const shape thread_shapes[] = {{256, 1000, 0}, {64, 32000, 0}, {8, 128256, 0},
                                      {2048, 1000, 0}};
#define N_THREAD_SHAPES (sizeof thread_shapes / sizeof thread_shapes[0])
/* Calls of these many rows of 1000 (2, 4, 8 chunks) around the serial threshold. */
static const int64_t threshold_rows[] = {32, 64, 128};
#define N_THRESHOLD (sizeof threshold_rows / sizeof threshold_rows[0])

/* The other distances come in (loss, loss+grad) pairs from FAMILY_FIRST, in
 * kd_distance order from KD_SOFT_CROSS_ENTROPY. */
typedef enum op {
  CE_LOSS,
  CE_GRAD,
  MSE_LOSS,
  MSE_GRAD,
  FAMILY_FIRST,
  FAMILY_END = FAMILY_FIRST + 2 * (KD_BCE_SIGMOID - KD_SOFT_CROSS_ENTROPY + 1),
  FLOOR_EXP2LOG_INLINE = FAMILY_END,
  FLOOR_EXP2LOG_U10,
  FLOOR_EXP2LOG_U35,
  FLOOR_EXP2_INLINE,
  FLOOR_EXP2_U10,
  FLOOR_READ2,
  FLOOR_RW,
  DESIGN_CE_RECOMPUTE,
  DESIGN_CE_ONLINE,
  POOL_EMPTY, /* threads/ only: a pool call whose chunks do nothing */
  N_OPS
} op;

static const char *const op_names[N_OPS] = {
    "ce_loss", "ce_loss_grad", "mse_loss", "mse_loss_grad",
    "soft_ce_loss", "soft_ce_loss_grad", "kl_loss", "kl_loss_grad",
    "kl_reverse_loss", "kl_reverse_loss_grad", "ce_uniform_eps_loss", "ce_uniform_eps_loss_grad",
    "jsd_loss", "jsd_loss_grad", "bce_sigmoid_loss", "bce_sigmoid_loss_grad",
    "floor_exp2log_inline", "floor_exp2log_u10", "floor_exp2log_u35", "floor_exp2_inline",
    "floor_exp2_u10", "floor_read2", "floor_rw", "design_ce_recompute", "design_ce_online",
    "pool_empty"};

static int op_is_family(op o) {
  return o >= FAMILY_FIRST && o < FAMILY_END;
}

static kd_distance family_distance(op o) {
  return (kd_distance)(KD_SOFT_CROSS_ENTROPY + (o - FAMILY_FIRST) / 2);
}

static int op_writes(op o) {
  return o == CE_GRAD || o == MSE_GRAD || o == FLOOR_RW ||
         (op_is_family(o) && (o - FAMILY_FIRST) % 2 == 1);
}

/* The transcendental floor (inline functions) a distance's row is judged
 * against: two exps per element, or two exps and a log (floor.h). */
static op family_floor(kd_distance d) {
  return d == KD_SOFT_CROSS_ENTROPY || d == KD_KL_DIV || d == KD_KL_DIV_REVERSE
             ? FLOOR_EXP2_INLINE
             : FLOOR_EXP2LOG_INLINE;
}

/* Floors and design sketches: code of the benchmark's own, not kdloss's. */
static int op_is_floor(op o) {
  return o >= FLOOR_EXP2LOG_INLINE;
}

typedef struct floor_set {
  kd_isa isa;
  kd_floor_read_fn exp2log_inline, exp2log_u10, exp2log_u35; /* SLEEF's: NULL without it */
  kd_floor_read_fn exp2_inline, exp2_u10, read2;
  kd_floor_rw_fn rw;
  kd_design_fn ce_recompute, ce_online; /* NULL but on AVX-512 with SLEEF */
} floor_set;

/* The floors and sketches that call SLEEF, when the build found it. */
#if KD_BENCH_SLEEF
#define SLEEF_FLOORS(isa) kd_floor_exp2log_u10_##isa, kd_floor_exp2log_u35_##isa
#define SLEEF_EXP2(isa) kd_floor_exp2_u10_##isa
#define SLEEF_DESIGNS(isa) kd_design_ce_recompute_##isa, kd_design_ce_online_##isa
#else
#define SLEEF_FLOORS(isa) NULL, NULL
#define SLEEF_EXP2(isa) NULL
#define SLEEF_DESIGNS(isa) NULL, NULL
#endif

/* Only the floor libraries built for this host's cpu family are linked. */
static const floor_set floor_sets[] = {
#ifdef KD_BENCH_FLOOR_AVX2
    {KD_ISA_AVX2, kd_floor_exp2log_inline_avx2, SLEEF_FLOORS(avx2),
     kd_floor_exp2_inline_avx2, SLEEF_EXP2(avx2), kd_floor_read2_avx2,
     kd_floor_rw_avx2, NULL, NULL},
#endif
#ifdef KD_BENCH_FLOOR_AVX512
    {KD_ISA_AVX512, kd_floor_exp2log_inline_avx512, SLEEF_FLOORS(avx512),
     kd_floor_exp2_inline_avx512, SLEEF_EXP2(avx512),
     kd_floor_read2_avx512, kd_floor_rw_avx512, SLEEF_DESIGNS(avx512)},
#endif
#ifdef KD_BENCH_FLOOR_NEON
    {KD_ISA_NEON, kd_floor_exp2log_inline_neon, SLEEF_FLOORS(neon),
     kd_floor_exp2_inline_neon, SLEEF_EXP2(neon), kd_floor_read2_neon,
     kd_floor_rw_neon, NULL, NULL},
#endif
    {KD_ISA_SCALAR, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL} /* keeps the array non-empty */
};

static const floor_set *floors_for(kd_isa isa) {
  for (size_t i = 0; i < sizeof floor_sets / sizeof floor_sets[0]; i++)
    if (floor_sets[i].isa == isa && floor_sets[i].read2) return &floor_sets[i];
  return NULL;
}

/* The ISAs worth reporting on this architecture, scalar first. */
static const kd_isa host_isas[] = {
    KD_ISA_SCALAR,
#if defined(__x86_64__) || defined(_M_X64)
    KD_ISA_AVX2,  KD_ISA_AVX512,
#elif defined(__aarch64__)
    KD_ISA_NEON,
#endif
};
#define N_HOST_ISAS (sizeof host_isas / sizeof host_isas[0])

/* ---- inputs ---- */

/* n standard normals, from the generator the tests use. */
static void fill_normal(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = (float)tk_normal(&seed);
}

/* The largest inputs asked for so far; smaller shapes use their beginning. */
static struct {
  float *pool_s, *pool_t; /* POOL normals each */
  float *s, *t, *g;
  size_t cap, gcap; /* elements in s and t, in g */
} in;

static float *alloc_floats(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

static void tile(float *dst, size_t n, const float *pool) {
  for (size_t i = 0; i < n; i += POOL) memcpy(dst + i, pool, (n - i < POOL ? n - i : POOL) * sizeof *dst);
}

/* Points s, t (and g when grad) at n elements each. Filling and faulting in
 * the pages happen here, before any timing. Returns 0 when memory runs out. */
static int get_inputs(size_t n, int grad, const float **s, const float **t, float **g) {
  if (!in.pool_s) {
    in.pool_s = alloc_floats(POOL);
    in.pool_t = alloc_floats(POOL);
    if (!in.pool_s || !in.pool_t) return 0;
    fill_normal(in.pool_s, POOL, SEED);
    fill_normal(in.pool_t, POOL, SEED + 1);
  }
  if (n > in.cap) {
    free(in.s);
    free(in.t);
    in.s = alloc_floats(n);
    in.t = alloc_floats(n);
    in.cap = 0;
    if (!in.s || !in.t) return 0;
    tile(in.s, n, in.pool_s);
    tile(in.t, n, in.pool_t);
    in.cap = n;
  }
  if (grad && n > in.gcap) {
    free(in.g);
    in.gcap = 0;
    in.g = alloc_floats(n);
    if (!in.g) return 0;
    memset(in.g, 0, n * sizeof *in.g);
    in.gcap = n;
  }
  *s = in.s;
  *t = in.t;
  *g = grad ? in.g : NULL;
  return 1;
}

static void free_inputs(void) {
  free(in.pool_s);
  free(in.pool_t);
  free(in.s);
  free(in.t);
  free(in.g);
}

/* ---- benchmarks ---- */

typedef struct bench_case {
  kd_isa isa;
  op op;
  const floor_set *floors; /* for the floor operations */
} bench_case;

static bench_case cases[N_HOST_ISAS * N_OPS + 2 * N_OPS];
static size_t n_cases;
static char skip_reasons[N_HOST_ISAS][200];
/* Runs where kdloss itself failed (not skips): they make the exit status 1,
 * so a smoke run in CI catches them. */
static int n_failures;

static kd_status call(const bench_case *c, size_t rows, size_t cols, const float *s,
                      const float *t, float *g, float *out) {
  size_t n = rows * cols;
  if (op_is_family(c->op)) {
    kd_params p = {family_distance(c->op), FACTOR, TEMPERATURE, 0.5f, KD_REDUCE_MEAN, NULL};
    return kd_loss_ex_f32(&p, rows, cols, s, cols, t, cols, out, NULL, op_writes(c->op) ? g : NULL,
                          cols);
  }
  switch (c->op) {
  case CE_LOSS:
    return kd_loss_f32(KD_CROSS_ENTROPY, FACTOR, TEMPERATURE, rows, cols, s, cols, t, cols, out);
  case CE_GRAD:
    return kd_loss_grad_f32(KD_CROSS_ENTROPY, FACTOR, TEMPERATURE, rows, cols, s, cols, t, cols,
                            out, g, cols);
  case MSE_LOSS:
    return kd_loss_f32(KD_MSE, FACTOR, 1.0f, rows, cols, s, cols, t, cols, out);
  case MSE_GRAD:
    return kd_loss_grad_f32(KD_MSE, FACTOR, 1.0f, rows, cols, s, cols, t, cols, out, g, cols);
  case FLOOR_EXP2LOG_INLINE: *out = c->floors->exp2log_inline(n, s, t); return KD_OK;
  case FLOOR_EXP2LOG_U10: *out = c->floors->exp2log_u10(n, s, t); return KD_OK;
  case FLOOR_EXP2LOG_U35: *out = c->floors->exp2log_u35(n, s, t); return KD_OK;
  case FLOOR_EXP2_INLINE: *out = c->floors->exp2_inline(n, s, t); return KD_OK;
  case FLOOR_EXP2_U10: *out = c->floors->exp2_u10(n, s, t); return KD_OK;
  case FLOOR_READ2: *out = c->floors->read2(n, s, t); return KD_OK;
  case FLOOR_RW: *out = c->floors->rw(n, s, t, g); return KD_OK;
  case DESIGN_CE_RECOMPUTE:
    *out = (float)c->floors->ce_recompute(rows, cols, s, t, 1.0f / TEMPERATURE);
    return KD_OK;
  case DESIGN_CE_ONLINE:
    *out = (float)c->floors->ce_online(rows, cols, s, t, 1.0f / TEMPERATURE);
    return KD_OK;
  default: return KD_ERR_DISTANCE;
  }
}

static void bm_case(gb_state *st, void *ctx) {
  const bench_case *c = ctx;
  size_t rows = (size_t)gb_range(st, 0), cols = (size_t)gb_range(st, 1), n = rows * cols;
  char msg[256];
  const float *s, *t;
  float *g, out = 0.0f;
  if (!get_inputs(n, op_writes(c->op), &s, &t, &g)) {
    snprintf(msg, sizeof msg, "out of memory for %zu x %zu inputs", rows, cols);
    gb_skip_with_error(st, msg);
    return;
  }
  /* kd_set_isa is process-wide; kd_get_isa says what is really in use. */
  if (!op_is_floor(c->op) && (kd_set_isa(c->isa) != KD_OK || kd_get_isa() != c->isa)) {
    snprintf(msg, sizeof msg, "kd_set_isa(%s) failed: in use is %s", kd_isa_name(c->isa),
             kd_isa_name(kd_get_isa()));
    n_failures++;
    gb_skip_with_error(st, msg);
    return;
  }
  kd_status status = call(c, rows, cols, s, t, g, &out); /* untimed: warms and checks */
  while (status == KD_OK && gb_keep_running(st)) {
    status = call(c, rows, cols, s, t, g, &out);
    gb_do_not_optimize(&out);
  }
  if (status != KD_OK) {
    snprintf(msg, sizeof msg, "%s/%s failed: %s", kd_isa_name(c->isa), op_names[c->op],
             kd_status_str(status));
    n_failures++;
    gb_skip_with_error(st, msg);
    return;
  }
  int64_t elems = gb_iterations(st) * (int64_t)n;
  gb_set_items_processed(st, elems);
  gb_set_bytes_processed(st, elems * (op_writes(c->op) ? 12 : 8));
}

/* A floor on kdloss's own pool: its chunks of rows, handed out the same way
 * (kd_run_chunks), each chunk a floor call over those rows. Against one
 * thread it shows what the machine and the pool give a loop that needs no
 * more than its own inputs, the most the call next to it can expect. */
typedef struct floor_rows {
  const bench_case *c;
  size_t cols;
  const float *s, *t;
  float *g;
} floor_rows;

static kd_status floor_chunk(void *ctx, size_t i0, size_t i1, float *scratch, double *sum) {
  (void)scratch;
  const floor_rows *f = ctx;
  size_t at = i0 * f->cols;
  float out = 0.0f;
  kd_status status = KD_OK;
  if (f->c->op != POOL_EMPTY)
    status = call(f->c, i1 - i0, f->cols, f->s + at, f->t + at, f->g ? f->g + at : NULL, &out);
  *sum = out;
  return status;
}

static kd_status floor_pooled(const bench_case *c, size_t rows, size_t cols, const float *s,
                              const float *t, float *g, float *out) {
  floor_rows f = {c, cols, s, t, g};
  double sum = 0.0;
  /* The cost kdloss gives the calls these floors stand under: 1 MSE, 4 cross-entropy. */
  size_t cost = c->op == FLOOR_READ2 || c->op == FLOOR_RW ? 1 : 4;
  kd_status status = kd_run_chunks(rows, cols, cost, 0, floor_chunk, &f, &sum);
  *out = (float)sum;
  return status;
}

/* Arguments rows, cols, threads: the call, or a floor, on the built-in pool of
 * that many threads (the automatic ISA). */
static void bm_threads(gb_state *st, void *ctx) {
  const bench_case *c = ctx;
  size_t rows = (size_t)gb_range(st, 0), cols = (size_t)gb_range(st, 1), n = rows * cols;
  int threads = (int)gb_range(st, 2);
  const float *s, *t;
  float *g, out = 0.0f;
  char msg[256];
  if (!get_inputs(n, op_writes(c->op), &s, &t, &g)) {
    snprintf(msg, sizeof msg, "out of memory for %zu x %zu inputs", rows, cols);
    gb_skip_with_error(st, msg);
    return;
  }
  kd_status status = kd_set_isa(KD_ISA_AUTO);
  if (status == KD_OK) status = kd_set_num_threads(threads);
  size_t serial = kd_serial_work;
  if (c->isa == KD_ISA_AUTO) kd_serial_work = 0; /* threshold/: lifted */
  while (status == KD_OK && gb_keep_running(st)) {
    if (op_is_floor(c->op))
      status = floor_pooled(c, rows, cols, s, t, g, &out);
    else
      status = call(c, rows, cols, s, t, g, &out);
    gb_do_not_optimize(&out);
  }
  kd_serial_work = serial;
  kd_set_num_threads(1);
  if (status != KD_OK) {
    snprintf(msg, sizeof msg, "%s on %d threads failed: %s", op_names[c->op], threads,
             kd_status_str(status));
    n_failures++;
    gb_skip_with_error(st, msg);
    return;
  }
  gb_set_items_processed(st, gb_iterations(st) * (int64_t)n);
}

static int n_thread_counts;
static int64_t thread_counts[3];
/* The automatic ISA, noted before the run: the other benchmarks change the
 * ISA in use, so kd_get_isa() after the run names whichever ran last. */
static kd_isa threads_isa;

static void threads_name(char *buf, size_t size, const char *family, op o, shape sh, int64_t k) {
  snprintf(buf, size, "%s/%s/%lld/%lld/%lld/real_time", family, op_names[o], (long long)sh.rows,
           (long long)sh.cols, (long long)k);
}

/* threads/ and threshold/ for the automatic ISA, and its floors on the pool:
 * exp2log at the cross-entropy shapes, read2 and rw at the out-of-cache MSE
 * shape, and the empty pool call at the first shape. */
static void register_threads(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int64_t all = cpus < 1 ? 1 : cpus > 8 ? 8 : cpus;
  thread_counts[n_thread_counts++] = 1;
  if (all >= 2) thread_counts[n_thread_counts++] = 2;
  if (all > 2) thread_counts[n_thread_counts++] = all;
  threads_isa = kd_get_isa();
  const floor_set *floors = floors_for(threads_isa);
  for (op o = CE_LOSS; o < N_OPS; o++) {
    if (o > MSE_GRAD && o != POOL_EMPTY &&
        (!floors || (o != FLOOR_EXP2LOG_INLINE && o != FLOOR_READ2 && o != FLOOR_RW)))
      continue;
    for (int family = 0; family < 2; family++) {
      if (family == 1 && o != CE_LOSS && o != MSE_GRAD) continue;
      bench_case *c = &cases[n_cases++];
      c->isa = family ? KD_ISA_AUTO : threads_isa; /* KD_ISA_AUTO marks threshold/ */
      c->op = o;
      c->floors = floors;
      char name[64];
      snprintf(name, sizeof name, "%s/%s", family ? "threshold" : "threads", op_names[o]);
      gb_bench *b = gb_register(name, bm_threads, c);
      for (int i = 0; i < n_thread_counts; i++) {
        size_t n_shapes = o == FLOOR_EXP2LOG_INLINE || o <= MSE_GRAD ? N_THREAD_SHAPES
                          : o == POOL_EMPTY ? 1 : 0;
        for (size_t k = 0; family == 0 && k < n_shapes; k++)
          gb_add_args(b, (const int64_t[]){thread_shapes[k].rows, thread_shapes[k].cols,
                                           thread_counts[i]}, 3);
        for (size_t k = 0; family == 1 && k < N_THRESHOLD; k++)
          gb_add_args(b, (const int64_t[]){threshold_rows[k], 1000, thread_counts[i]}, 3);
        if (family == 0 && (o == MSE_LOSS || o == MSE_GRAD || o == FLOOR_READ2 || o == FLOOR_RW))
          gb_add_args(b, (const int64_t[]){big.rows, big.cols, thread_counts[i]}, 3);
      }
      gb_use_real_time(b);
      gb_set_unit(b, GB_MICROSECOND);
    }
  }
}

static void bm_skipped(gb_state *st, void *ctx) {
  gb_skip_with_error(st, (const char *)ctx);
}

static void full_name(char *buf, size_t size, kd_isa isa, op o, shape sh) {
  snprintf(buf, size, "%s/%s/%lld/%lld", kd_isa_name(isa), op_names[o], (long long)sh.rows,
           (long long)sh.cols);
}

static void add_case(kd_isa isa, op o, const floor_set *floors, int with_big) {
  bench_case *c = &cases[n_cases++];
  c->isa = isa;
  c->op = o;
  c->floors = floors;
  char name[64];
  snprintf(name, sizeof name, "%s/%s", kd_isa_name(isa), op_names[o]);
  gb_bench *b = gb_register(name, bm_case, c);
  for (size_t i = 0; i < N_SHAPES && !op_is_family(o); i++)
    if (!shapes[i].head || !op_is_floor(o) || o == FLOOR_EXP2LOG_INLINE ||
        o == FLOOR_EXP2_INLINE)
      gb_add_args(b, (const int64_t[]){shapes[i].rows, shapes[i].cols}, 2);
  for (size_t i = 0; i < N_FAMILY_SHAPES && op_is_family(o); i++)
    gb_add_args(b, (const int64_t[]){family_shapes[i].rows, family_shapes[i].cols}, 2);
  if (with_big) gb_add_args(b, (const int64_t[]){big.rows, big.cols}, 2);
  gb_set_unit(b, GB_MICROSECOND);
}

/* Whether this build has floor (or sketch) o: SLEEF's are absent without SLEEF. */
static int floor_built(const floor_set *f, op o) {
  switch (o) {
  case FLOOR_EXP2LOG_U10: return f->exp2log_u10 != NULL;
  case FLOOR_EXP2LOG_U35: return f->exp2log_u35 != NULL;
  case FLOOR_EXP2_U10: return f->exp2_u10 != NULL;
  case DESIGN_CE_RECOMPUTE: return f->ce_recompute != NULL;
  case DESIGN_CE_ONLINE: return f->ce_online != NULL;
  case POOL_EMPTY: return 0;
  default: return 1;
  }
}

/* Registers what can run; says on stderr and in the report what cannot. */
static void register_all(void) {
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    kd_isa isa = host_isas[i];
    const floor_set *floors = kd_cpu_has(isa) ? floors_for(isa) : NULL;
    if (kd_isa_supported(isa)) {
      for (op o = CE_LOSS; o < FAMILY_END; o++)
        add_case(isa, o, NULL, o == MSE_LOSS || o == MSE_GRAD);
    } else {
      const char *name = kd_isa_name(isa);
      if (kd_cpu_has(isa))
        snprintf(skip_reasons[i], sizeof skip_reasons[i],
                 "%s skipped: this build lacks its kernels (src/%s not built: no SLEEF, "
                 "-Dsimd=disabled, or not written yet)", name, name);
      else
        snprintf(skip_reasons[i], sizeof skip_reasons[i],
                 "%s skipped: this CPU (or its OS) lacks it", name);
      fprintf(stderr, "bench_kdloss: %s\n", skip_reasons[i]);
      char bname[64];
      snprintf(bname, sizeof bname, "%s/skipped", name);
      gb_bench *b = gb_register(bname, bm_skipped, skip_reasons[i]);
      gb_set_iterations(b, 1);
      gb_set_repetitions(b, 1);
    }
    /* The floors need only the CPU: they run even before an ISA's kernels exist. */
    for (op o = FLOOR_EXP2LOG_INLINE; floors && o < N_OPS; o++)
      if (floor_built(floors, o)) add_case(isa, o, floors, o == FLOOR_READ2 || o == FLOOR_RW);
  }
}

/* ---- summary ---- */

/* CPU seconds per call (median), or NAN when that benchmark did not run. */
static double seconds(kd_isa isa, op o, shape sh) {
  char name[96];
  double sec;
  full_name(name, sizeof name, isa, o, sh);
  return gb_result_cpu_time(name, &sec) == 0 && sec > 0 ? sec : NAN;
}

static void cell(const char *fmt, double v) {
  if (isnan(v))
    printf(" - |");
  else
    printf(fmt, v);
}

/* Whether any benchmark of isa at sh ran (a --benchmark_filter may leave
 * whole rows out). */
static int row_ran(kd_isa isa, shape sh) {
  for (op o = CE_LOSS; o < N_OPS; o++)
    if (!isnan(seconds(isa, o, sh))) return 1;
  return 0;
}

/* The pass structures kdloss did not take (floor.h, designs), against its own
 * cross-entropy loss in the same run. */
static void print_designs(void) {
  int header = 0;
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    kd_isa isa = host_isas[i];
    for (size_t k = 0; k < N_SHAPES; k++) {
      double ce = seconds(isa, CE_LOSS, shapes[k]);
      double rec = seconds(isa, DESIGN_CE_RECOMPUTE, shapes[k]);
      double onl = seconds(isa, DESIGN_CE_ONLINE, shapes[k]);
      if (isnan(rec) && isnan(onl)) continue;
      if (!header) {
        printf("\nCE loss pass structures (same run): time / kdloss's CE loss (2 exp + 1 log per "
               "element, exps cached per row)\n\n");
        printf("| ISA | shape | recompute: 3 passes, 4 exp + 1 log | online normaliser: 2 passes, "
               "4 exp + 1 log |\n|---|---|---|---|\n");
        header = 1;
      }
      printf("| %s | %lldx%lld |", kd_isa_name(isa), (long long)shapes[k].rows,
             (long long)shapes[k].cols);
      cell(" %.2f |", rec / ce);
      cell(" %.2f |", onl / ce);
      printf("\n");
    }
  }
}

/* Per-element rate at each head shape as a fraction of head_ref's (same ISA,
 * same run): what the per-row overhead of short rows costs. */
static void print_heads(void) {
  static const op ops[] = {CE_GRAD, CE_LOSS, MSE_GRAD, MSE_LOSS};
  printf("\nHead shapes: per-element rate / %lldx%lld's (same ISA, same run)\n\n| ISA | "
         "operation |", (long long)head_ref.rows, (long long)head_ref.cols);
  for (size_t k = 0; k < N_SHAPES; k++)
    if (shapes[k].head) printf(" %lldx%lld |", (long long)shapes[k].rows, (long long)shapes[k].cols);
  printf("\n|---|---|");
  for (size_t k = 0; k < N_SHAPES; k++)
    if (shapes[k].head) printf("---|");
  printf("\n");
  for (size_t i = 0; i < N_HOST_ISAS; i++)
    for (size_t j = 0; j < sizeof ops / sizeof ops[0]; j++) {
      kd_isa isa = host_isas[i];
      double ref = seconds(isa, ops[j], head_ref) / ((double)head_ref.rows * (double)head_ref.cols);
      if (isnan(ref)) continue;
      printf("| %s | %s |", kd_isa_name(isa), op_names[ops[j]]);
      for (size_t k = 0; k < N_SHAPES; k++)
        if (shapes[k].head)
          cell(" %.2f |", ref / (seconds(isa, ops[j], shapes[k]) /
                                 ((double)shapes[k].rows * (double)shapes[k].cols)));
      printf("\n");
    }
}

static double wall(const char *family, op o, shape sh, int64_t k) {
  char name[128];
  double sec;
  threads_name(name, sizeof name, family, o, sh, k);
  return gb_result_real_time(name, &sec) == 0 && sec > 0 ? sec : NAN;
}

/* Wall-clock medians per thread count, and speed-ups over one thread, by
 * shape: each shape's floor rows under its calls. */
static void print_threads(void) {
  shape all[N_THREAD_SHAPES + 1 + N_THRESHOLD];
  for (size_t k = 0; k < N_THREAD_SHAPES; k++) all[k] = thread_shapes[k];
  all[N_THREAD_SHAPES] = big;
  for (size_t k = 0; k < N_THRESHOLD; k++) all[N_THREAD_SHAPES + 1 + k] = (shape){threshold_rows[k], 1000, 0};
  printf("\nThreads (%s, built-in pool; wall clock, us per call, and speed-up over 1 thread; "
         "floor_*: the floor in the same chunks on the same pool; pool_empty: a pool call "
         "of empty chunks; "
         "threshold/: the serial limit lifted)\n\n| benchmark | shape |", kd_isa_name(threads_isa));
  for (int i = 0; i < n_thread_counts; i++)
    printf(i ? " %lld threads | speed-up |" : " 1 thread |", (long long)thread_counts[i]);
  printf("\n|---|---|");
  for (int i = 0; i < n_thread_counts; i++) printf(i ? "---|---|" : "---|");
  printf("\n");
  for (int family = 0; family < 2; family++)
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
      for (op o = CE_LOSS; o < N_OPS; o++) {
        const char *fam = family ? "threshold" : "threads";
        double one = wall(fam, o, all[k], 1);
        if (isnan(one)) continue;
        printf("| %s/%s | %lldx%lld |", fam, op_names[o], (long long)all[k].rows,
               (long long)all[k].cols);
        cell(" %.1f |", one * 1e6);
        for (int i = 1; i < n_thread_counts; i++) {
          double t = wall(fam, o, all[k], thread_counts[i]);
          cell(" %.1f |", t * 1e6);
          cell(" %.2f |", one / t);
        }
        printf("\n");
      }
}

/* The other distances against their transcendental floor (family_floor, the
 * inline functions, same run): the contract's targets are 1.3x for the loss
 * and 2x for loss+grad. */
static void print_family(void) {
  printf("\nThe other distances (kd_loss_ex_f32) against the time of their transcendentals "
         "alone (inline exp/log, same run): exp2 = 2 exp per element, exp2log = 2 exp + 1 log\n\n");
  printf("| ISA | shape | distance | floor | floor ns/elem | loss ns/elem | loss+grad ns/elem | "
         "loss / floor | loss+grad / floor |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    kd_isa isa = host_isas[i];
    if (!kd_isa_supported(isa)) continue;
    for (size_t k = 0; k < N_FAMILY_SHAPES; k++) {
      shape sh = family_shapes[k];
      double n = (double)sh.rows * (double)sh.cols;
      for (op o = FAMILY_FIRST; o < FAMILY_END; o += 2) {
        double loss = seconds(isa, o, sh), grad = seconds(isa, o + 1, sh);
        if (isnan(loss) && isnan(grad)) continue;
        op f = family_floor(family_distance(o));
        double floor = seconds(isa, f, sh);
        printf("| %s | %lldx%lld | %.*s | %s |", kd_isa_name(isa), (long long)sh.rows,
               (long long)sh.cols, (int)(strlen(op_names[o]) - 5), op_names[o],
               f == FLOOR_EXP2_INLINE ? "exp2" : "exp2log");
        cell(" %.3f |", floor / n * 1e9);
        cell(" %.3f |", loss / n * 1e9);
        cell(" %.3f |", grad / n * 1e9);
        cell(" %.2f |", loss / floor);
        cell(" %.2f |", grad / floor);
        printf("\n");
      }
    }
  }
}

static void print_summary(void) {
  printf("\n## kdloss summary (medians of CPU time; %s)\n\n", kd_version_string());
  printf("Throughput, G elements/s (MSE out of cache: GB/s read+written in brackets)\n\n");
  printf("| ISA | shape | CE loss | CE loss+grad | MSE loss | MSE loss+grad |\n");
  printf("|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    kd_isa isa = host_isas[i];
    if (!kd_isa_supported(isa)) continue;
    for (size_t k = 0; k <= N_SHAPES; k++) {
      shape sh = k < N_SHAPES ? shapes[k] : big;
      double n = (double)sh.rows * (double)sh.cols;
      if (!row_ran(isa, sh)) continue;
      printf("| %s | %lldx%lld |", kd_isa_name(isa), (long long)sh.rows, (long long)sh.cols);
      for (op o = CE_LOSS; o <= MSE_GRAD; o++) {
        double sec = seconds(isa, o, sh);
        if (k == N_SHAPES && !isnan(sec))
          printf(" %.3f (%.1f GB/s) |", n / sec * 1e-9, n * (op_writes(o) ? 12 : 8) / sec * 1e-9);
        else
          cell(" %.3f |", n / sec * 1e-9);
      }
      printf("\n");
    }
  }
  printf("\nAgainst the floors (same run). CE: kernel time / time of 2 exp + 1 log alone, "
         "with the inline functions or SLEEF's (u10 or u35 log); MSE: floor time / kernel time\n\n");
  printf("| ISA | shape | exp2log inline ns/elem | exp2log u10 ns/elem | exp2log u35 ns/elem | "
         "CE loss / inline | CE loss+grad / inline | CE loss / u10 | CE loss / u35 | "
         "CE loss+grad / u35 | read2 GB/s | MSE loss %% of read2 | rw GB/s | "
         "MSE loss+grad %% of rw |\n");
  printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    kd_isa isa = host_isas[i];
    if (!floors_for(isa) || !kd_cpu_has(isa)) continue;
    for (size_t k = 0; k <= N_SHAPES; k++) {
      shape sh = k < N_SHAPES ? shapes[k] : big;
      double n = (double)sh.rows * (double)sh.cols;
      if (!row_ran(isa, sh)) continue;
      double inl = seconds(isa, FLOOR_EXP2LOG_INLINE, sh);
      double u10 = seconds(isa, FLOOR_EXP2LOG_U10, sh), u35 = seconds(isa, FLOOR_EXP2LOG_U35, sh);
      double ce = seconds(isa, CE_LOSS, sh), ce_grad = seconds(isa, CE_GRAD, sh);
      double rd = seconds(isa, FLOOR_READ2, sh), rw = seconds(isa, FLOOR_RW, sh);
      printf("| %s | %lldx%lld |", kd_isa_name(isa), (long long)sh.rows, (long long)sh.cols);
      cell(" %.3f |", inl / n * 1e9);
      cell(" %.3f |", u10 / n * 1e9);
      cell(" %.3f |", u35 / n * 1e9);
      cell(" %.2f |", ce / inl);
      cell(" %.2f |", ce_grad / inl);
      cell(" %.2f |", ce / u10);
      cell(" %.2f |", ce / u35);
      cell(" %.2f |", ce_grad / u35);
      cell(" %.1f |", 8 * n / rd * 1e-9);
      cell(" %.0f%% |", 100 * rd / seconds(isa, MSE_LOSS, sh));
      cell(" %.1f |", 12 * n / rw * 1e-9);
      cell(" %.0f%% |", 100 * rw / seconds(isa, MSE_GRAD, sh));
      printf("\n");
    }
  }
  print_family();
  print_heads();
  print_designs();
  print_threads();
  fflush(stdout);
}

int main(int argc, char **argv) {
  static const char *const defaults[] = {
      "--benchmark_min_time=0.1",
      "--benchmark_repetitions=5",
      "--benchmark_display_aggregates_only=true",
      "--benchmark_enable_random_interleaving=true",
  };
  if (gb_initialize(&argc, argv, defaults, sizeof defaults / sizeof defaults[0]) != 0) {
    fprintf(stderr, "usage: %s [--benchmark_* flags of Google Benchmark]\n", argv[0]);
    return 2;
  }
  char isas[64] = "";
  for (size_t i = 0; i < N_HOST_ISAS; i++) {
    if (!kd_isa_supported(host_isas[i])) continue;
    if (isas[0]) strcat(isas, " ");
    strcat(isas, kd_isa_name(host_isas[i]));
  }
  gb_add_context("kdloss", kd_version_string());
  gb_add_context("kdloss_isas", isas);
  gb_add_context("kdloss_inputs", "student, teacher ~ N(0,1) fixed seed; T=2, factor=1; dense");
  register_all();
  register_threads();
  gb_run();
  print_summary();
  gb_shutdown();
  free_inputs();
  if (n_failures) fprintf(stderr, "bench_kdloss: %d benchmark runs failed\n", n_failures);
  return n_failures ? 1 : 0;
}
