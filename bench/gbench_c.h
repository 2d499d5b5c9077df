/*
 * gbench_c.h -- a small C interface to Google Benchmark (C++, tested with the
 * Debian libbenchmark-dev 1.7.1), implemented in gbench_c.cc.
 *
 * A benchmark is a C function called with an opaque state and the context
 * pointer given at registration. Untimed setup goes before the loop:
 *
 *   static void bm_sum(gb_state *st, void *ctx) {
 *     size_t n = (size_t)gb_range(st, 0);
 *     float *x = prepare(ctx, n);                 // not timed
 *     while (gb_keep_running(st)) {
 *       float s = sum(x, n);
 *       gb_do_not_optimize(&s);
 *     }
 *     gb_set_items_processed(st, gb_iterations(st) * (int64_t)n);
 *   }
 *   ...
 *   gb_bench *b = gb_register("sum", bm_sum, NULL);
 *   gb_add_args(b, (int64_t[]){1024}, 1);
 *   return gb_main(argc, argv, NULL, 0);
 *
 * Names: a benchmark registered as "a/b" with argument tuple (3, 4) is
 * reported as "a/b/3/4"; that full name is what --benchmark_filter matches
 * and what gb_result_cpu_time looks up.
 *
 * Threads: register and configure from the main thread before gb_main (or
 * gb_run). The gb_state functions are called only from inside a benchmark
 * function, on the state it was given. Nothing here is reentrant.
 *
 * Errors: the shim never throws into C. A registration that fails (out of
 * memory) returns NULL, and every configuration function accepts NULL and does
 * nothing, so a chain of calls needs one check at most.
 */
#ifndef GBENCH_C_H
#define GBENCH_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* benchmark::State, seen from C. */
typedef struct gb_state gb_state;
/* benchmark::internal::Benchmark (a registered family), seen from C. */
typedef struct gb_bench gb_bench;

/* A benchmark body: runs the keep-running loop on state; ctx is the pointer
 * given to gb_register. Called several times per benchmark (to find an
 * iteration count, then once per repetition). */
typedef void (*gb_fn)(gb_state *state, void *ctx);

/* ---- registration (before gb_run) ---- */

/* Registers fn under name (copied). ctx must outlive gb_run. NULL on failure. */
gb_bench *gb_register(const char *name, gb_fn fn, void *ctx);

/* Adds one argument tuple of n values (n >= 1): the benchmark runs once per
 * tuple added, reading the values with gb_range. */
void gb_add_args(gb_bench *b, const int64_t *args, size_t n);

/* Runs this benchmark for exactly n iterations per repetition (n >= 1),
 * regardless of --benchmark_min_time. */
void gb_set_iterations(gb_bench *b, int64_t n);

/* Repetitions for this benchmark only (n >= 1); beats --benchmark_repetitions. */
void gb_set_repetitions(gb_bench *b, int n);

/* Times this benchmark by the wall clock rather than by the CPU time of the
 * calling thread (for work on other threads); the full name gains
 * "/real_time". */
void gb_use_real_time(gb_bench *b);

/* Time units used when printing this benchmark. */
typedef enum gb_unit { GB_NANOSECOND, GB_MICROSECOND, GB_MILLISECOND, GB_SECOND } gb_unit;
void gb_set_unit(gb_bench *b, gb_unit unit);

/* ---- inside a benchmark function ---- */

/* Nonzero while another timed iteration is wanted: while (gb_keep_running(st)). */
int gb_keep_running(gb_state *st);

/* The i-th value of the current argument tuple. */
int64_t gb_range(const gb_state *st, size_t i);

/* Iterations run so far (after the loop: all of them). */
int64_t gb_iterations(const gb_state *st);

/* Stop and restart the clock inside the loop (each pair costs about a
 * microsecond: prefer untimed setup before the loop). */
void gb_pause_timing(gb_state *st);
void gb_resume_timing(gb_state *st);

/* Totals over all iterations, reported as rates (items/s, bytes/s). Call after
 * the loop with gb_iterations(st) * per-iteration amount. */
void gb_set_items_processed(gb_state *st, int64_t items);
void gb_set_bytes_processed(gb_state *st, int64_t bytes);

/* A user counter (name copied). Flags combine: */
enum {
  GB_COUNTER_PLAIN = 0,
  GB_COUNTER_RATE = 1,          /* value / seconds */
  GB_COUNTER_PER_ITERATION = 2, /* value / iterations */
  GB_COUNTER_INVARIANT = 4,     /* value * iterations (value is per iteration) */
  GB_COUNTER_BASE_1024 = 8      /* print with Ki/Mi/Gi instead of k/M/G */
};
void gb_set_counter(gb_state *st, const char *name, double value, unsigned flags);

/* A free-text label printed after the counters (copied). */
void gb_set_label(gb_state *st, const char *label);

/* Marks this run as failed with msg (copied) and ends the loop: call it before
 * the loop (which then runs no iteration) or inside it and then break out.
 * The report shows "ERROR OCCURRED: 'msg'" for the benchmark. */
void gb_skip_with_error(gb_state *st, const char *msg);
int gb_error_occurred(const gb_state *st);

/* Keep the compiler from discarding the computation behind p, or from keeping
 * memory in registers across the call. */
void gb_do_not_optimize(const void *p);
void gb_clobber_memory(void);

/* ---- running ---- */

/* Adds a key: value line to the context printed before the results. */
void gb_add_context(const char *key, const char *value);

/* Parses Google Benchmark's --benchmark_* flags, with defaults[0..ndefaults)
 * ("--benchmark_min_time=0.05", ...) treated as if they came first on the
 * command line, so the real command line overrides them. Removes recognised
 * flags from argc/argv. Returns 0, or -1 (after printing them) if arguments
 * are left that are not benchmark flags. */
int gb_initialize(int *argc, char **argv, const char *const *defaults, size_t ndefaults);

/* Runs the benchmarks selected by --benchmark_filter, reporting as the flags
 * say, and records each benchmark's CPU time per iteration for
 * gb_result_cpu_time. Returns the number of benchmarks run. */
size_t gb_run(void);

/* After gb_run: CPU seconds per iteration of the benchmark with this full
 * name ("a/b/3/4"): the median over repetitions when there were several, else
 * the one run. Returns 0 and sets *seconds, or -1 if no such benchmark ran
 * without error. */
int gb_result_cpu_time(const char *full_name, double *seconds);

/* The same for wall-clock seconds per iteration. */
int gb_result_real_time(const char *full_name, double *seconds);

/* Releases Google Benchmark's global state. */
void gb_shutdown(void);

/* gb_initialize, gb_run, gb_shutdown: the usual main. Returns the exit code
 * (2 on bad arguments). */
int gb_main(int argc, char **argv, const char *const *defaults, size_t ndefaults);

#ifdef __cplusplus
}
#endif

#endif /* GBENCH_C_H */
