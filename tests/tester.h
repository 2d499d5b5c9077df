/*
 * tester.h -- runs one kdloss case on the ISA in use and checks it against the
 * long double reference (tests/reference.c), in the manner of
 * XNNPACK's testers: random and adversarial inputs, exact-size heap buffers,
 * NaN sentinels in the padding, bitwise repeatability, and a failure message
 * that names the ISA, the case, the seed and the first mismatching index.
 */
#ifndef KD_TESTER_H
#define KD_TESTER_H

#include <stddef.h>
#include <stdint.h>
#include "kdloss.h"
#include "rng.h" /* tk_next, tk_uniform, tk_normal */

typedef enum tk_inputs {
  TK_RANDOM,    /* student, teacher independent: scale * N(0,1) + shift */
  TK_IDENTICAL, /* teacher == student, value for value */
  TK_SAME_PTR,  /* teacher is the student's buffer itself */
  TK_NEAR,      /* teacher = student + 1e-3 * scale * N(0,1) */
  TK_GAPS,      /* uniform in [-scale, scale] + shift: gaps of hundreds when scale is */
  TK_MASKED,    /* random, about a third of each row -inf (at least one class left) */
  TK_PEAKED,    /* random, one class per row raised by 25: q_max near 1 */
  TK_ONE_LEFT,  /* every class -inf but one per row */
  TK_TIED,      /* identical; two top classes 1e-3 apart, the rest 30 or more below */
  TK_MASKED_BOTH, /* random, about a third of each row's classes -inf in both (at least one left) */
  TK_RAMP,      /* strictly increasing: scale j / 8 + shift (teacher: 0.8 of that slope) */
  TK_INPUTS_COUNT
} tk_inputs;

typedef enum tk_weights {
  TK_W_NONE,  /* row_weight NULL */
  TK_W_MIXED, /* random in [0, 3], about a quarter exactly 0 (those rows hold NaN) */
  TK_W_ZERO   /* every weight 0, every row NaN */
} tk_weights;

typedef struct tk_case {
  kd_distance distance;
  float factor, temperature;
  float beta;              /* KD_JSD */
  kd_reduction reduction;
  tk_weights weights;
  size_t rows, cols;
  size_t ld_pad;   /* every leading dimension is cols + ld_pad */
  size_t offset;   /* every matrix starts this many floats into its allocation */
  tk_inputs inputs;
  float scale, shift;
  float t_offset;  /* added to the teacher only: softmax ignores it, the kernels must too */
  int in_place;    /* gradient written over the student */
  uint64_t seed;
} tk_case;

/* A case with the usual defaults: factor 1, T 2, beta 1/2, MEAN, no weights,
 * random N(0, 3^2) logits. */
tk_case tk_default(kd_distance distance, size_t rows, size_t cols);

/* Runs the case through kd_loss_ex_f32 (loss and row_loss, then with the
 * gradient, each twice) and, when it has no weights, MEAN and (KD_JSD) beta
 * 1/2, through kd_loss_f32 and kd_loss_grad_f32 too, which must give the
 * same bits; fails the cmocka test on any violation of the contract. */
void tk_run(const tk_case *c);

/* The case at every leading-dimension padding {0, 1, 7, 16}, widths {1, 5,
 * 16, 17, 31, 100}, pointers aligned and 1 float off, out of place and in
 * place; seeds from seed0. */
void tk_run_strides(tk_case c, uint64_t seed0);

/* The case at rows {1, 3, 17, 64} with every tk_weights and both
 * reductions, then again in place with factor -2 (and, for the softmax
 * distances, masks on both sides); seeds from seed0. */
void tk_run_weights(tk_case c, uint64_t seed0);

/* Worst error seen by tk_run since the last reset, as a fraction of the
 * tolerance (<= 1 passes) and as a relative error. */
typedef struct tk_stats {
  size_t cases;
  double loss_tol_frac, grad_tol_frac;
  double loss_rel, grad_rel; /* |err|/|ref|; max|err|/max|ref| where max|ref| > 1e-25 */
} tk_stats;
extern tk_stats tk_worst;
void tk_print_worst(const char *isa);

/* Runs a cmocka group once per ISA the CPU and build support, through
 * cmocka's public API:
 *
 *   tk_isa_runs r = tk_isa_runs_start("ce");
 *   while (tk_isa_next(&r))
 *     r.failures += cmocka_run_group_tests_name(r.name, tests, NULL, NULL);
 *   return r.failures;
 *
 * tk_isa_next makes the next ISA current (kd_set_isa), names the group
 * "suite/isa", prints the previous group's worst errors, and names the ISAs it
 * leaves out; a kd_set_isa that does not take counts as a failure. After the
 * last ISA it restores the automatic choice and returns 0. KDLOSS_ISA naming a
 * supported ISA narrows the runs to it. */
typedef struct tk_isa_runs {
  const char *suite;
  kd_isa isa;     /* the current group's; KD_ISA_AUTO before the first */
  char name[64];  /* "suite/isa" */
  int failures;
} tk_isa_runs;
tk_isa_runs tk_isa_runs_start(const char *suite);
int tk_isa_next(tk_isa_runs *r);

/* "ce", "mse", "sce", "kl", "rkl", "facil", "jsd", "bce". */
const char *tk_distance_name(kd_distance d);

/* Every distance, in kd_distance order. */
extern const kd_distance tk_distances[8];

/* Elements of an array. */
#define TK_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* malloc that fails the test on NULL. */
void *tk_malloc(size_t bytes);

#endif
