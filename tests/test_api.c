/* Argument errors (checked before any kernel runs, so once), ISA selection,
 * names, version. Every error must leave the outputs untouched. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tester.h"

#define ROWS 3
#define COLS 5
#define N (ROWS * COLS)
#define SENTINEL 777.0f

static float S[N], T[N];

static void setup_inputs(void) {
  uint64_t rng = 42;
  for (size_t i = 0; i < N; i++) {
    S[i] = (float)tk_normal(&rng);
    T[i] = (float)tk_normal(&rng);
  }
}

typedef struct call {
  kd_distance d;
  float factor, temp;
  size_t rows, cols;
  const float *s;
  size_t lds;
  const float *t;
  size_t ldt;
  int want_loss; /* 0: NULL loss pointer */
  int grad;      /* 0: kd_loss_f32; 1: kd_loss_grad_f32; 2: kd_loss_grad_f32 with NULL grad */
  size_t ldg;
} call;

static call valid(kd_distance d, int grad) {
  call c = {d, 1.0f, 2.0f, ROWS, COLS, S, COLS, T, COLS, 1, grad, COLS};
  return c;
}

/* Runs the call; checks the status and that loss and grad are untouched. */
static void expect(call c, kd_status want, int line) {
  float loss = SENTINEL;
  float grad[N];
  for (size_t i = 0; i < N; i++) grad[i] = SENTINEL;
  kd_status st;
  if (c.grad == 0)
    st = kd_loss_f32(c.d, c.factor, c.temp, c.rows, c.cols, c.s, c.lds, c.t, c.ldt,
                     c.want_loss ? &loss : NULL);
  else
    st = kd_loss_grad_f32(c.d, c.factor, c.temp, c.rows, c.cols, c.s, c.lds, c.t, c.ldt,
                          c.want_loss ? &loss : NULL, c.grad == 2 ? NULL : grad, c.ldg);
  if (st != want)
    fail_msg("line %d: got %s, want %s", line, kd_status_str(st), kd_status_str(want));
  if (want != KD_OK) {
    if (loss != SENTINEL) fail_msg("line %d: loss written on error", line);
    for (size_t i = 0; i < N; i++)
      if (grad[i] != SENTINEL) fail_msg("line %d: grad[%zu] written on error", line, i);
  }
}
#define EXPECT(c, want) expect((c), (want), __LINE__)

static void argument_errors(void **state) {
  (void)state;
  setup_inputs();
  for (int g = 0; g <= 1; g++) {
    for (int d = 0; d <= 1; d++) {
      kd_distance dist = d ? KD_MSE : KD_CROSS_ENTROPY;
      call c = valid(dist, g);
      EXPECT(c, KD_OK);
      c.d = (kd_distance)8;                         EXPECT(c, KD_ERR_DISTANCE);
      c.d = (kd_distance)-1;                        EXPECT(c, KD_ERR_DISTANCE);
      c = valid(dist, g); c.s = NULL;               EXPECT(c, KD_ERR_NULL);
      c = valid(dist, g); c.t = NULL;               EXPECT(c, KD_ERR_NULL);
      c = valid(dist, g); c.s = NULL; c.d = (kd_distance)99; EXPECT(c, KD_ERR_DISTANCE);
      c = valid(dist, g); c.rows = 0;               EXPECT(c, KD_ERR_SHAPE);
      c = valid(dist, g); c.cols = 0;               EXPECT(c, KD_ERR_SHAPE);
      c = valid(dist, g); c.rows = SIZE_MAX / 2; c.cols = 3; EXPECT(c, KD_ERR_SHAPE);
      c = valid(dist, g); c.rows = 1; c.cols = SIZE_MAX / 4; c.lds = c.ldt = c.ldg = c.cols;
      EXPECT(c, KD_ERR_SHAPE); /* rows*cols floats overflow in bytes */
      c = valid(dist, g); c.lds = SIZE_MAX;         EXPECT(c, KD_ERR_SHAPE); /* span */
      c = valid(dist, g); c.ldt = SIZE_MAX / 2;     EXPECT(c, KD_ERR_SHAPE);
      c = valid(dist, g); c.lds = COLS - 1;         EXPECT(c, KD_ERR_STRIDE);
      c = valid(dist, g); c.ldt = 0;                EXPECT(c, KD_ERR_STRIDE);
      c = valid(dist, g); c.rows = 0; c.lds = 0;    EXPECT(c, KD_ERR_SHAPE); /* shape first */
      c = valid(dist, g); c.factor = NAN;           EXPECT(c, KD_ERR_FACTOR);
      c = valid(dist, g); c.factor = INFINITY;      EXPECT(c, KD_ERR_FACTOR);
      c = valid(dist, g); c.factor = -INFINITY;     EXPECT(c, KD_ERR_FACTOR);
      c = valid(dist, g); c.factor = -3.0f;         EXPECT(c, KD_OK);
      c = valid(dist, g); c.factor = 0.0f;          EXPECT(c, KD_OK);
      const float bad_t[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY, 1e-40f};
      for (size_t k = 0; k < TK_COUNT(bad_t); k++) {
        c = valid(dist, g);
        c.temp = bad_t[k];
        EXPECT(c, dist == KD_MSE ? KD_OK : KD_ERR_TEMPERATURE); /* MSE ignores T */
      }
      c = valid(dist, g); c.temp = FLT_MIN;         EXPECT(c, KD_OK);
      c = valid(dist, g); c.temp = FLT_MAX;         EXPECT(c, KD_OK);
      c = valid(dist, g); c.temp = NAN; c.factor = NAN; EXPECT(c, KD_ERR_FACTOR); /* order */
    }
    call c = valid(KD_CROSS_ENTROPY, 0);
    c.want_loss = 0;
    EXPECT(c, KD_ERR_NULL); /* kd_loss_f32 needs loss */
  }
  call c = valid(KD_CROSS_ENTROPY, 2);
  EXPECT(c, KD_ERR_NULL); /* kd_loss_grad_f32 needs grad */
  c = valid(KD_MSE, 1);
  c.want_loss = 0;
  EXPECT(c, KD_OK); /* ...but not loss */
  c = valid(KD_CROSS_ENTROPY, 1);
  c.ldg = COLS - 1;
  EXPECT(c, KD_ERR_STRIDE);
  /* The gradient's scale factor/(rows*T) must be a float. */
  c = valid(KD_CROSS_ENTROPY, 1);
  c.factor = 3e38f;
  c.temp = 1e-3f;
  EXPECT(c, KD_ERR_FACTOR);
  c.grad = 0;
  EXPECT(c, KD_OK);
}

static void aliasing(void **state) {
  (void)state;
  setup_inputs();
  size_t n = 2 * N + 8;
  float *buf = tk_malloc(n * sizeof(float));
  for (int d = 0; d <= 1; d++) {
    kd_distance dist = d ? KD_MSE : KD_CROSS_ENTROPY;
    for (size_t i = 0; i < n; i++) buf[i] = (float)i * 0.01f;
    float *s = buf, *t = buf + N + 4, loss = SENTINEL;
    /* In place is fine. */
    assert_int_equal(kd_loss_grad_f32(dist, 1, 2, ROWS, COLS, s, COLS, t, COLS, &loss, s, COLS),
                     KD_OK);
    /* Student and teacher may be the same buffer. */
    assert_int_equal(kd_loss_f32(dist, 1, 2, ROWS, COLS, s, COLS, s, COLS, &loss), KD_OK);
    for (size_t i = 0; i < n; i++) buf[i] = (float)i * 0.01f;
    float before[2 * N + 8];
    memcpy(before, buf, sizeof before);
    struct { float *g; size_t ldg; float *l; } bad[] = {
        {t, COLS, &loss},            /* grad is the teacher */
        {t + 2, COLS, &loss},        /* grad inside the teacher */
        {t - 3, COLS, &loss},        /* grad runs into the teacher */
        {s + 1, COLS, &loss},        /* grad shifted against the student */
        {s, COLS + 1, &loss},        /* same start, other leading dimension */
        {buf + 2 * N + 4, 1, &loss}, /* ld 1 < cols: stride error first */
        {s, COLS, s + 3},            /* loss inside the grad/student span */
        {s, COLS, t + 1},            /* loss inside the teacher */
    };
    kd_status want[] = {KD_ERR_ALIAS, KD_ERR_ALIAS, KD_ERR_ALIAS, KD_ERR_ALIAS,
                        KD_ERR_ALIAS, KD_ERR_STRIDE, KD_ERR_ALIAS, KD_ERR_ALIAS};
    for (size_t k = 0; k < TK_COUNT(want); k++) {
      loss = SENTINEL;
      kd_status st = kd_loss_grad_f32(dist, 1, 2, ROWS, COLS, s, COLS, t, COLS, bad[k].l,
                                      bad[k].g, bad[k].ldg);
      if (st != want[k]) fail_msg("alias case %zu: got %s", k, kd_status_str(st));
      if (memcmp(before, buf, sizeof before) != 0 || loss != SENTINEL)
        fail_msg("alias case %zu: an output was written", k);
    }
    /* loss-only: the loss pointer may not point into an input either. */
    assert_int_equal(kd_loss_f32(dist, 1, 2, ROWS, COLS, s, COLS, t, COLS, t + 4), KD_ERR_ALIAS);
    assert_memory_equal(before, buf, sizeof before);
  }
  free(buf);
}

/* kd_loss_ex_f32's own checks: every new status, in the documented order,
 * every output (loss, row_loss, grad) untouched. */
typedef struct ex_call {
  kd_params p;
  const kd_params *pp; /* &p, or NULL */
  size_t rows, cols;
  const float *s, *t;
  int loss, row_loss, grad; /* 0: NULL */
} ex_call;

static ex_call ex_valid(kd_distance d) {
  static float w[ROWS] = {1.0f, 0.0f, 2.5f};
  ex_call c = {{d, 1.0f, 2.0f, 0.5f, KD_REDUCE_MEAN, w}, NULL, ROWS, COLS, S, T, 1, 1, 1};
  return c;
}

static void ex_expect(ex_call c, kd_status want, int line) {
  float loss = SENTINEL, rows[ROWS], grad[N];
  for (size_t i = 0; i < ROWS; i++) rows[i] = SENTINEL;
  for (size_t i = 0; i < N; i++) grad[i] = SENTINEL;
  kd_status st = kd_loss_ex_f32(c.pp ? c.pp : &c.p, c.rows, c.cols, c.s, COLS, c.t, COLS,
                                c.loss ? &loss : NULL, c.row_loss ? rows : NULL,
                                c.grad ? grad : NULL, COLS);
  if (st != want)
    fail_msg("line %d (%s): got %s, want %s", line, tk_distance_name(c.p.distance),
             kd_status_str(st), kd_status_str(want));
  if (want == KD_OK) return;
  if (loss != SENTINEL) fail_msg("line %d: loss written on error", line);
  for (size_t i = 0; i < ROWS; i++)
    if (rows[i] != SENTINEL) fail_msg("line %d: row_loss[%zu] written on error", line, i);
  for (size_t i = 0; i < N; i++)
    if (grad[i] != SENTINEL) fail_msg("line %d: grad[%zu] written on error", line, i);
}
#define EX_EXPECT(c, want) ex_expect((c), (want), __LINE__)

static void ex_argument_errors(void **state) {
  (void)state;
  setup_inputs();
  for (size_t k = 0; k < TK_COUNT(tk_distances); k++) {
    kd_distance d = tk_distances[k];
    int softmax = d != KD_MSE && d != KD_BCE_SIGMOID;
    ex_call c = ex_valid(d);
    EX_EXPECT(c, KD_OK);
    c.loss = 0;                                   EX_EXPECT(c, KD_OK); /* row_loss alone */
    c = ex_valid(d); c.row_loss = 0;              EX_EXPECT(c, KD_OK); /* loss alone */
    c.grad = 0;                                   EX_EXPECT(c, KD_OK);
    c = ex_valid(d); c.loss = c.row_loss = 0;     EX_EXPECT(c, KD_ERR_NULL); /* grad alone */
    c.grad = 0;                                   EX_EXPECT(c, KD_ERR_NULL);
    c = ex_valid(d); c.s = NULL;                  EX_EXPECT(c, KD_ERR_NULL);
    c = ex_valid(d); c.t = NULL;                  EX_EXPECT(c, KD_ERR_NULL);
    c = ex_valid(d); c.p.distance = (kd_distance)8; EX_EXPECT(c, KD_ERR_DISTANCE);
    c = ex_valid(d); c.p.reduction = (kd_reduction)2; EX_EXPECT(c, KD_ERR_REDUCTION);
    c = ex_valid(d); c.p.reduction = (kd_reduction)-1; EX_EXPECT(c, KD_ERR_REDUCTION);
    c.s = NULL;                                   EX_EXPECT(c, KD_ERR_REDUCTION); /* order */
    c.p.distance = (kd_distance)99;               EX_EXPECT(c, KD_ERR_DISTANCE);
    c = ex_valid(d); c.p.reduction = KD_REDUCE_SUM; EX_EXPECT(c, KD_OK);
    c = ex_valid(d); c.rows = 0;                  EX_EXPECT(c, KD_ERR_SHAPE);
    c = ex_valid(d); c.p.factor = NAN;            EX_EXPECT(c, KD_ERR_FACTOR);
    c.p.beta = 2.0f; c.p.temperature = -1.0f;     EX_EXPECT(c, KD_ERR_FACTOR); /* order */
    c = ex_valid(d); c.p.temperature = 0.0f;
    EX_EXPECT(c, softmax ? KD_ERR_TEMPERATURE : KD_OK); /* MSE and BCE ignore T */
    const float bad_beta[] = {0.0f, -0.0f, 1.0f, -0.5f, 1.5f, NAN, INFINITY};
    for (size_t b = 0; b < TK_COUNT(bad_beta); b++) {
      c = ex_valid(d); c.p.beta = bad_beta[b];
      EX_EXPECT(c, d == KD_JSD ? KD_ERR_BETA : KD_OK); /* beta is JSD's only */
    }
    c = ex_valid(d); c.p.beta = 1e-45f;           EX_EXPECT(c, KD_OK);
    c = ex_valid(d); c.p.beta = 0.99999994f;      EX_EXPECT(c, KD_OK);
    if (d == KD_JSD) { c.p.beta = 0.0f; c.p.temperature = NAN; EX_EXPECT(c, KD_ERR_TEMPERATURE); }
    const float bad_w[] = {-1.0f, -0.0f, NAN, INFINITY, -INFINITY, -1e-45f};
    for (size_t b = 0; b < TK_COUNT(bad_w); b++) {
      float w[ROWS] = {1.0f, 1.0f, 1.0f};
      w[b % ROWS] = bad_w[b];
      c = ex_valid(d); c.p.row_weight = w;
      /* -0 is not negative: a weight of zero. */
      EX_EXPECT(c, bad_w[b] == 0.0f ? KD_OK : KD_ERR_WEIGHT);
      if (bad_w[b] == 0.0f) continue;
      c.p.factor = INFINITY;                      EX_EXPECT(c, KD_ERR_FACTOR); /* order */
      c.p.factor = 1.0f; c.s = NULL;              EX_EXPECT(c, KD_ERR_NULL);
    }
    /* Weights near FLT_MAX: the sum, in double, is fine; a gradient scale
     * c_i / T beyond float is KD_ERR_FACTOR, as for the unweighted calls. */
    float big[ROWS] = {FLT_MAX, FLT_MAX, FLT_MAX};
    c = ex_valid(d); c.p.row_weight = big; c.p.factor = 8.0f; EX_EXPECT(c, KD_OK);
    c.p.reduction = KD_REDUCE_SUM;                EX_EXPECT(c, KD_ERR_FACTOR);
    c.grad = 0;                                   EX_EXPECT(c, KD_OK);
    c.p.row_weight = NULL; c.grad = 1;            EX_EXPECT(c, KD_OK);
  }
  assert_int_equal(kd_loss_ex_f32(NULL, ROWS, COLS, S, COLS, T, COLS, NULL, NULL, NULL, 0),
                   KD_ERR_NULL);
  /* The legacy calls take the family's distances (KD_JSD with beta 1/2). */
  float loss, ex_loss;
  for (size_t k = 0; k < TK_COUNT(tk_distances); k++) {
    kd_params p = {tk_distances[k], 1.5f, 2.0f, 0.5f, KD_REDUCE_MEAN, NULL};
    assert_int_equal(kd_loss_f32(p.distance, 1.5f, 2.0f, ROWS, COLS, S, COLS, T, COLS, &loss),
                     KD_OK);
    assert_int_equal(kd_loss_ex_f32(&p, ROWS, COLS, S, COLS, T, COLS, &ex_loss, NULL, NULL, 0),
                     KD_OK);
    assert_memory_equal(&loss, &ex_loss, sizeof loss);
  }
}

/* row_loss and row_weight in the aliasing rules. */
static void ex_aliasing(void **state) {
  (void)state;
  size_t n = 3 * N + 8;
  float *buf = tk_malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) buf[i] = 1.0f + (float)(i % 7) * 0.1f;
  float *s = buf, *t = buf + N, *g = buf + 2 * N, *w = buf + 3 * N; /* w: ROWS floats */
  float before[3 * N + 8], loss = SENTINEL, rows[ROWS];
  memcpy(before, buf, sizeof before);
  for (size_t k = 0; k < TK_COUNT(tk_distances); k++) {
    kd_params p = {tk_distances[k], 1.0f, 2.0f, 0.5f, KD_REDUCE_MEAN, w};
    struct { float *l, *rl, *g; kd_status want; } cases[] = {
        {&loss, s + 2, g, KD_ERR_ALIAS},     /* row_loss in the student */
        {&loss, t + N - 1, g, KD_ERR_ALIAS}, /* row_loss runs into the teacher's end */
        {&loss, g + 4, g, KD_ERR_ALIAS},     /* row_loss in grad */
        {&loss, w + 1, g, KD_ERR_ALIAS},     /* row_loss over the weights */
        {rows + 1, rows, g, KD_ERR_ALIAS},   /* loss inside row_loss */
        {w, rows, g, KD_ERR_ALIAS},          /* loss over a weight */
        {&loss, rows, w - 5, KD_ERR_ALIAS},  /* grad over the weights */
        {&loss, rows, s, KD_OK},             /* in place */
    };
    for (size_t c = 0; c < TK_COUNT(cases); c++) {
      kd_status st = kd_loss_ex_f32(&p, ROWS, COLS, s, COLS, t, COLS, cases[c].l, cases[c].rl,
                                    cases[c].g, COLS);
      if (st != cases[c].want)
        fail_msg("%s alias case %zu: got %s", tk_distance_name(p.distance), c, kd_status_str(st));
      if (st != KD_OK && (memcmp(before, buf, sizeof before) != 0 || loss != SENTINEL))
        fail_msg("%s alias case %zu: an output was written", tk_distance_name(p.distance), c);
      memcpy(buf, before, sizeof before);
      loss = SENTINEL;
    }
  }
  free(buf);
}

/* A scratch allocation that cannot be had is KD_ERR_NOMEM, outputs untouched.
 * Nothing is read before the allocation, so a huge row of a tiny buffer is safe. */
static void out_of_memory(void **state) {
  (void)state;
  float buf[4] = {0};
  float *loss = &buf[0], *x = &buf[1];
  *loss = SENTINEL;
  size_t cols = (size_t)1 << (sizeof(size_t) * 8 - 6); /* scratch: 8 * cols bytes, too many */
  kd_status st = kd_loss_f32(KD_CROSS_ENTROPY, 1, 1, 1, cols, x, cols, x, cols, loss);
  assert_int_equal(st, KD_ERR_NOMEM);
  assert_true(*loss == SENTINEL);
}

static void isa_selection(void **state) {
  (void)state;
  kd_isa start = kd_get_isa();
  assert_int_not_equal(start, KD_ISA_AUTO);
  assert_true(kd_isa_supported(KD_ISA_SCALAR));
  assert_true(kd_isa_supported(KD_ISA_AUTO));
  assert_int_equal(kd_set_isa((kd_isa)99), KD_ERR_UNSUPPORTED);
  assert_int_equal(kd_set_isa((kd_isa)-1), KD_ERR_UNSUPPORTED);
  assert_false(kd_isa_supported((kd_isa)99));
  assert_int_equal(kd_get_isa(), start);
  for (kd_isa isa = KD_ISA_SCALAR; isa <= KD_ISA_NEON; isa++) {
    kd_status st = kd_set_isa(isa);
    if (kd_isa_supported(isa)) {
      assert_int_equal(st, KD_OK);
      assert_int_equal(kd_get_isa(), isa);
    } else {
      kd_isa before = kd_get_isa();
      assert_int_equal(st, KD_ERR_UNSUPPORTED);
      assert_int_equal(kd_get_isa(), before); /* unchanged */
      printf("[ INFO     ] %s: not supported here, kd_set_isa refused it\n", kd_isa_name(isa));
    }
  }
  assert_int_equal(kd_set_isa(KD_ISA_AUTO), KD_OK);
  kd_isa best = kd_get_isa();
  assert_int_not_equal(best, KD_ISA_AUTO);
  for (kd_isa isa = KD_ISA_SCALAR; isa <= KD_ISA_NEON; isa++)
    if (kd_isa_supported(isa)) assert_true(isa <= best || isa == KD_ISA_NEON);
  printf("[ INFO     ] automatic choice: %s\n", kd_isa_name(best));
}

static void names_and_version(void **state) {
  (void)state;
  assert_string_equal(kd_isa_name(KD_ISA_AUTO), "auto");
  assert_string_equal(kd_isa_name(KD_ISA_SCALAR), "scalar");
  assert_string_equal(kd_isa_name(KD_ISA_AVX2), "avx2");
  assert_string_equal(kd_isa_name(KD_ISA_AVX512), "avx512");
  assert_string_equal(kd_isa_name(KD_ISA_NEON), "neon");
  assert_string_equal(kd_isa_name((kd_isa)42), "unknown");
  for (int a = KD_OK; a <= KD_ERR_REDUCTION; a++) {
    assert_non_null(kd_status_str((kd_status)a));
    assert_string_not_equal(kd_status_str((kd_status)a), "unknown status");
    for (int b = KD_OK; b < a; b++)
      assert_string_not_equal(kd_status_str((kd_status)a), kd_status_str((kd_status)b));
  }
  assert_string_equal(kd_status_str((kd_status)99), "unknown status");
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", KDLOSS_VERSION_MAJOR, KDLOSS_VERSION_MINOR,
           KDLOSS_VERSION_PATCH);
  assert_string_equal(kd_version_string(), want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(argument_errors), cmocka_unit_test(aliasing),
      cmocka_unit_test(ex_argument_errors), cmocka_unit_test(ex_aliasing),
      cmocka_unit_test(out_of_memory),   cmocka_unit_test(isa_selection),
      cmocka_unit_test(names_and_version),
  };
  return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
