/* Every softmax distance (LwF cross-entropy, soft cross-entropy, KL, reverse
 * KL, FACIL's cross-entropy, JSD) against the reference, on every ISA:
 * shapes, tails, strides, temperatures, shifts, masks, peaks, identical
 * inputs, in place, weights and reductions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tester.h"

/* The distance the group runs (main sets it). */
static kd_distance dist;

static const float temperatures[] = {0.05f, 0.5f, 1.0f, 2.0f, 3.5f, 10.0f, 100.0f};
#define NTEMPS TK_COUNT(temperatures)

/* Every width from 1 to past two of the widest vectors (2*16+1), and some. */
static void ce_small_cols(void **state) {
  (void)state;
  for (size_t cols = 1; cols <= 40; cols++) {
    for (size_t rows = 1; rows <= 3; rows += 2) {
      tk_case c = tk_default(dist, rows, cols);
      c.seed = cols * 10 + rows;
      tk_run(&c);
      c.temperature = 0.5f;
      c.inputs = TK_MASKED;
      tk_run(&c);
    }
  }
}

/* Powers of two, neighbours and odd sizes up to a 128256-class vocabulary,
 * across the stack/heap scratch threshold (2048 classes). */
static void ce_large_cols(void **state) {
  (void)state;
  static const size_t cols[] = {63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 1000, 1023,
                                1024, 2047, 2048, 2049, 4095, 4096, 4097, 32000, 32768, 128256};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(dist, cols[k] > 5000 ? 1 : 3, cols[k]);
    c.seed = 100 + k;
    tk_run(&c);
  }
  tk_case c = tk_default(dist, 2, 128256);
  c.temperature = 1.0f;
  c.inputs = TK_NEAR;
  tk_run(&c);
}

static void ce_rows(void **state) {
  (void)state;
  static const size_t rows[] = {1, 2, 7, 64, 255, 512};
  for (size_t k = 0; k < TK_COUNT(rows); k++) {
    tk_case c = tk_default(dist, rows[k], 10);
    c.seed = 200 + k;
    tk_run(&c);
    c.cols = 33;
    tk_run(&c);
  }
}

/* ld > cols (NaN padding must not be read), pointers 1 float off alignment. */
static void ce_strides_unaligned(void **state) {
  (void)state;
  tk_run_strides(tk_default(dist, 4, 1), 300);
}

static void ce_temperatures(void **state) {
  (void)state;
  for (size_t k = 0; k < NTEMPS; k++) {
    for (int scale = 0; scale < 3; scale++) {
      tk_case c = tk_default(dist, 4, 100);
      c.temperature = temperatures[k];
      c.scale = scale == 0 ? 1.0f : scale == 1 ? 5.0f : 30.0f;
      c.seed = 400 + k * 10 + (uint64_t)scale;
      tk_run(&c);
      c.cols = 1000;
      c.rows = 2;
      tk_run(&c);
    }
  }
}

/* Logits around +-1000: exp(x) overflows, exp(x - max) does not. */
static void ce_shifted(void **state) {
  (void)state;
  for (int sign = -1; sign <= 1; sign += 2) {
    for (size_t k = 0; k < NTEMPS; k++) {
      tk_case c = tk_default(dist, 3, 50);
      c.shift = 1000.0f * (float)sign;
      c.temperature = temperatures[k];
      c.seed = 500 + k;
      tk_run(&c);
    }
  }
}

/* Student and teacher at different offsets (softmax ignores them): around
 * -1e4 and -3e4, the float difference t_j - s_j is rounded by 1e-3. */
static void ce_offsets(void **state) {
  (void)state;
  static const float offsets[] = {-2e4f, 2e4f, 90.0f, -1e3f};
  static const tk_inputs kinds[] = {TK_NEAR, TK_IDENTICAL, TK_RANDOM, TK_PEAKED};
  for (size_t o = 0; o < TK_COUNT(offsets); o++)
    for (size_t k = 0; k < TK_COUNT(kinds); k++)
      for (size_t t = 0; t < NTEMPS; t += 3) {
        tk_case c = tk_default(dist, 2, 37);
        c.shift = -1e4f;
        c.t_offset = offsets[o];
        c.inputs = kinds[k];
        c.temperature = temperatures[t];
        c.seed = 1100 + o * 100 + k * 10 + t;
        tk_run(&c);
      }
}

static void ce_identical(void **state) {
  (void)state;
  static const size_t cols[] = {1, 2, 3, 10, 17, 100, 1000, 32000};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    for (size_t t = 0; t < NTEMPS; t += 2) {
      tk_case c = tk_default(dist, 2, cols[k]);
      c.temperature = temperatures[t];
      c.seed = 600 + k * 10 + t;
      c.inputs = TK_IDENTICAL;
      tk_run(&c);
      c.inputs = TK_SAME_PTR;
      tk_run(&c);
      c.inputs = TK_NEAR;
      tk_run(&c);
    }
  }
}

/* Gaps of several hundred: q underflows to exactly 0 where r does not. The
 * gradient must stay finite (PyTorch's autograd through pow gives NaN here). */
static void ce_gaps(void **state) {
  (void)state;
  static const size_t cols[] = {2, 10, 33, 1000};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    for (size_t t = 0; t < NTEMPS; t++) {
      tk_case c = tk_default(dist, 3, cols[k]);
      c.inputs = TK_GAPS;
      c.scale = 400.0f;
      c.temperature = temperatures[t];
      c.seed = 700 + k * 10 + t;
      tk_run(&c); /* tk_run fails on any non-finite gradient: the reference is finite */
    }
  }
}

static void ce_masked(void **state) {
  (void)state;
  static const size_t cols[] = {1, 2, 3, 8, 15, 16, 17, 33, 100, 4097};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(dist, 5, cols[k]);
    c.seed = 800 + k;
    c.inputs = TK_MASKED;
    tk_run(&c);
    c.inputs = TK_ONE_LEFT;
    tk_run(&c);
    c.in_place = 1;
    tk_run(&c);
  }
}

/* One class holding nearly all the mass: the dominant-class path of the gradient. */
static void ce_peaked(void **state) {
  (void)state;
  static const size_t cols[] = {2, 3, 10, 33, 1000};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    for (size_t t = 0; t < NTEMPS; t++) {
      tk_case c = tk_default(dist, 3, cols[k]);
      c.inputs = TK_PEAKED;
      c.scale = 1.0f;
      c.temperature = temperatures[t];
      c.seed = 900 + k * 10 + t;
      tk_run(&c);
    }
  }
}

/* Rows whose float gradient cancels: student == teacher on nearly flat logits
 * (spread/T down to 1e-3) and two near-tied top classes. The row loop redoes
 * them in double; the contract holds as everywhere. */
static void ce_ill_conditioned(void **state) {
  (void)state;
  static const size_t cols[] = {2, 3, 17, 1000};
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    for (int flat = 0; flat < 3; flat++) {
      tk_case c = tk_default(dist, 2, cols[k]);
      c.inputs = flat == 2 ? TK_NEAR : TK_IDENTICAL;
      c.scale = flat == 0 ? 0.1f : 0.01f;
      c.temperature = 100.0f;
      c.seed = 1200 + k * 10 + (uint64_t)flat;
      tk_run(&c);
      c.in_place = 1;
      tk_run(&c);
    }
  }
  /* Two top classes 1e-3 apart, the rest far below, identical inputs. */
  for (size_t k = 1; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(dist, 3, cols[k]);
    c.inputs = TK_TIED;
    c.temperature = 1.0f;
    c.seed = 1300 + k;
    tk_run(&c);
  }
}

/* Short rows (src/kernels.h: up to KD_SHORT_COLS = 64 classes, one row per
 * lane): 37 rows, a multiple of no lane count, at widths up to past the
 * limit, with every kind of input, temperature, in place and not. Under
 * KDLOSS_TEST_THREADS every row is a chunk, and so a group, of its own. */
static void ce_short_rows(void **state) {
  (void)state;
  static const size_t cols[] = {1,  2,  3,  4,  5,  7,  8,  9,  10, 15,
                                16, 17, 20, 31, 32, 33, 47, 63, 64, 65};
  for (size_t k = 0; k < TK_COUNT(cols); k++)
    for (int in = 0; in < TK_INPUTS_COUNT; in++) {
      tk_case c = tk_default(KD_CROSS_ENTROPY, 37, cols[k]);
      c.inputs = (tk_inputs)in;
      c.temperature = temperatures[(k + (size_t)in) % NTEMPS];
      c.in_place = (int)((k + (size_t)in) % 2);
      c.seed = 1400 + k * 16 + (uint64_t)in;
      tk_run(&c);
    }
  /* Ill-conditioned rows among well-conditioned ones: the double path per row. */
  for (size_t k = 0; k < TK_COUNT(cols); k++) {
    tk_case c = tk_default(KD_CROSS_ENTROPY, 37, cols[k]);
    c.inputs = k % 2 ? TK_TIED : TK_IDENTICAL;
    c.scale = 0.01f;
    c.temperature = k % 2 ? 1.0f : 100.0f;
    c.in_place = (int)(k / 2 % 2);
    c.seed = 1700 + k;
    tk_run(&c);
  }
}

/* A short row's gradient is the same bits whichever rows share its vector:
 * the rows rotated by one (each row in another lane, among other rows, the
 * last one moved from a partial group to a full one) give every row's
 * gradient unchanged. */
static void ce_short_rows_independent(void **state) {
  (void)state;
  enum { ROWS = 37, MAXC = 65 };
  static float s[2][ROWS * MAXC], t[2][ROWS * MAXC], g[2][ROWS * MAXC];
  for (size_t cols = 1; cols <= MAXC; cols += 4) {
    uint64_t rng = 1800 + cols;
    for (size_t i = 0; i < ROWS * cols; i++) {
      s[0][i] = (float)(3.0 * tk_normal(&rng));
      t[0][i] = (float)(3.0 * tk_normal(&rng));
    }
    for (size_t i = 0; i < ROWS; i++) {
      size_t to = (i + 1) % ROWS;
      memcpy(s[1] + to * cols, s[0] + i * cols, cols * sizeof(float));
      memcpy(t[1] + to * cols, t[0] + i * cols, cols * sizeof(float));
    }
    float loss[2];
    for (int k = 0; k < 2; k++)
      assert_int_equal(kd_loss_grad_f32(KD_CROSS_ENTROPY, 1.0f, 2.0f, ROWS, cols, s[k], cols,
                                        t[k], cols, &loss[k], g[k], cols),
                       KD_OK);
    for (size_t i = 0; i < ROWS; i++)
      if (memcmp(g[0] + i * cols, g[1] + (i + 1) % ROWS * cols, cols * sizeof(float)) != 0)
        fail_msg("isa %s, cols %zu: row %zu's gradient changed when moved to row %zu",
                 kd_isa_name(kd_get_isa()), cols, i, (i + 1) % ROWS);
  }
}

static void ce_factors(void **state) {
  (void)state;
  static const float factors[] = {0.0f, 1.0f, -1.0f, 2.5f, 1e-3f, 1e4f};
  for (size_t k = 0; k < TK_COUNT(factors); k++) {
    tk_case c = tk_default(dist, 3, 37);
    c.factor = factors[k];
    c.seed = 1000 + k;
    tk_run(&c);
    /* Masks: infinite distances (SCE, KL, reverse KL) times each factor,
     * 0 included (a row of factor 0 contributes 0, kdloss.h). */
    c.inputs = TK_MASKED;
    tk_run(&c);
    c.weights = TK_W_MIXED;
    c.reduction = KD_REDUCE_SUM;
    tk_run(&c);
  }
}

/* Row weights (mixed, all zero: NaN rows never read) and both reductions. */
static void ce_weights(void **state) {
  (void)state;
  tk_run_weights(tk_default(dist, 1, 33), 1400);
}

/* Masks on both sides at once: every distance finite. */
static void ce_masked_both(void **state) {
  (void)state;
  static const size_t cols[] = {1, 2, 17, 100, 4097};
  for (size_t k = 0; k < TK_COUNT(cols); k++)
    for (size_t t = 0; t < NTEMPS; t += 2) {
      tk_case c = tk_default(dist, 3, cols[k]);
      c.inputs = TK_MASKED_BOTH;
      c.temperature = temperatures[t];
      c.seed = 1500 + k * 10 + t;
      tk_run(&c);
    }
}

/* JSD's beta across (0, 1), a subnormal one included (the double path).
 * T 1/4 peaks the rows: a class that holds most of one side's mass and
 * almost none of the other's makes M/q (beta near 1) or M/r (beta near 0)
 * nearly 1 - beta or beta, which 1 + x would cancel. */
static void ce_betas(void **state) {
  (void)state;
  static const float betas[] = {1e-40f, 1e-7f, 1e-4f, 0.01f, 0.1f, 0.5f, 0.9f, 0.999f,
                                0.99999f, 0.99999994f};
  for (size_t k = 0; k < TK_COUNT(betas); k++)
    for (int kind = 0; kind < 4; kind++) {
      tk_case c = tk_default(dist, 3, kind == 3 ? 200 : 40);
      c.beta = betas[k];
      c.inputs = kind == 0 || kind == 3 ? TK_RANDOM : kind == 1 ? TK_NEAR : TK_MASKED;
      if (kind == 3) c.temperature = 0.25f;
      c.seed = 1600 + k * 10 + (uint64_t)kind;
      tk_run(&c);
    }
}

/* Many random cases mixing every kind of input, shape and temperature; the
 * sweep's seed can be changed with KDLOSS_TEST_SEED to hunt for rare failures. */
/* JSD's two routes (src/jsd_passes.h): the direct pass, and divstats for
 * the rows whose error bounds it cannot meet, each against the reference,
 * in place and not. By those bounds, at 1000 classes: independent rows at
 * T 2 keep the direct pass for the loss and (beta 1/4 and up, most rows at
 * 1/4) the gradient; nearly identical rows (teacher = student + 1e-3
 * N(0, 1)) keep its loss at T 2 but mostly not at T 1/2 (their distance is
 * ~0 while the pass's error grows with the spread of log q), and never its
 * gradient (~d); rows whose supports barely meet (scale 10) lose its
 * gradient; beta under KD_JSD_FAST_BETA never tries it. The rows of one
 * call take different routes. */
static void ce_jsd_routes(void **state) {
  (void)state;
  static const float betas[] = {0.1f, 0.25f, 0.5f, 0.95f};
  static const struct { tk_inputs inputs; float scale, temperature; } kinds[] = {
      {TK_RANDOM, 1.0f, 2.0f}, {TK_NEAR, 1.0f, 2.0f},   {TK_NEAR, 1.0f, 0.5f},
      {TK_RANDOM, 10.0f, 2.0f}, {TK_MASKED, 1.0f, 2.0f}, {TK_MASKED_BOTH, 3.0f, 1.0f},
      {TK_PEAKED, 1.0f, 2.0f}};
  for (size_t b = 0; b < TK_COUNT(betas); b++)
    for (size_t k = 0; k < TK_COUNT(kinds); k++)
      for (int in_place = 0; in_place < 2; in_place++) {
        tk_case c = tk_default(KD_JSD, 5, 1000);
        c.beta = betas[b];
        c.inputs = kinds[k].inputs;
        c.scale = kinds[k].scale;
        c.temperature = kinds[k].temperature;
        c.in_place = in_place;
        c.seed = 2400 + b * 100 + k * 10 + (uint64_t)in_place;
        tk_run(&c);
      }
}

/* Strictly increasing rows (the maximum last, every class a record), at
 * low temperatures and a teacher offset: the shift by the maxima and the
 * TwoSum gap at their widest. */
static void ce_ramps(void **state) {
  (void)state;
  static const size_t cols[] = {5, 17, 40, 1000, 4097};
  static const float scales[] = {3.0f, 0.3f};
  for (size_t k = 0; k < TK_COUNT(cols); k++)
    for (size_t t = 0; t < 3; t++)
      for (size_t sc = 0; sc < TK_COUNT(scales); sc++) {
        tk_case c = tk_default(dist, 2, cols[k]);
        c.inputs = TK_RAMP;
        c.temperature = temperatures[t];
        c.scale = scales[sc];
        c.shift = -50.0f;
        c.t_offset = t == 1 ? 7.0f : 0.0f;
        c.seed = 2600 + k * 10 + t * 2 + sc;
        tk_run(&c);
      }
}

static void ce_random_sweep(void **state) {
  (void)state;
  const char *env = getenv("KDLOSS_TEST_SEED");
  uint64_t rng = env ? strtoull(env, NULL, 10) : 2024;
  static const float scales[] = {0.1f, 1.0f, 3.0f, 10.0f, 50.0f, 400.0f};
  for (int k = 0; k < 300; k++) {
    size_t cols = (size_t)exp(tk_uniform(&rng) * log(5000.0)) ;
    tk_case c = tk_default(dist, 1 + tk_next(&rng) % 3, cols < 1 ? 1 : cols);
    c.inputs = (tk_inputs)(tk_next(&rng) % TK_INPUTS_COUNT);
    c.temperature = temperatures[tk_next(&rng) % NTEMPS];
    c.scale = scales[tk_next(&rng) % TK_COUNT(scales)];
    c.shift = (float)(tk_next(&rng) % 3) * 100.0f - 100.0f;
    c.t_offset = tk_next(&rng) % 4 == 0 ? -2e4f : 0.0f;
    c.factor = tk_next(&rng) % 4 == 0 ? -0.5f : 1.0f;
    c.in_place = (int)(tk_next(&rng) % 2);
    c.weights = (tk_weights)(tk_next(&rng) % 2);
    c.reduction = (kd_reduction)(tk_next(&rng) % 2);
    c.seed = tk_next(&rng);
    tk_run(&c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ce_small_cols),  cmocka_unit_test(ce_large_cols),
      cmocka_unit_test(ce_rows),        cmocka_unit_test(ce_strides_unaligned),
      cmocka_unit_test(ce_temperatures), cmocka_unit_test(ce_shifted),
      cmocka_unit_test(ce_offsets),     cmocka_unit_test(ce_identical),   cmocka_unit_test(ce_gaps),
      cmocka_unit_test(ce_masked),      cmocka_unit_test(ce_peaked),
      cmocka_unit_test(ce_ill_conditioned), cmocka_unit_test(ce_factors),
      cmocka_unit_test(ce_short_rows),  cmocka_unit_test(ce_short_rows_independent),
      cmocka_unit_test(ce_weights),     cmocka_unit_test(ce_masked_both),
      cmocka_unit_test(ce_ramps),
      cmocka_unit_test(ce_random_sweep),
  };
  const struct CMUnitTest jsd_tests[] = {cmocka_unit_test(ce_betas),
                                         cmocka_unit_test(ce_jsd_routes)};
  /* KDLOSS_TEST_DISTANCE=name narrows the run to one distance. */
  const char *only = getenv("KDLOSS_TEST_DISTANCE");
  tk_isa_runs r = tk_isa_runs_start("softmax");
  while (tk_isa_next(&r)) {
    for (size_t k = 0; k < TK_COUNT(tk_distances); k++) {
      dist = tk_distances[k];
      if (dist == KD_MSE || dist == KD_BCE_SIGMOID) continue;
      if (only && strcmp(only, tk_distance_name(dist)) != 0) continue;
      char name[80];
      snprintf(name, sizeof name, "%s/%s", tk_distance_name(dist), kd_isa_name(r.isa));
      r.failures += cmocka_run_group_tests_name(name, tests, NULL, NULL);
      if (dist == KD_JSD) r.failures += cmocka_run_group_tests_name(name, jsd_tests, NULL, NULL);
      tk_print_worst(name);
    }
  }
  return r.failures;
}
