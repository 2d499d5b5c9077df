/*
 * fuzz_kdloss.c -- libFuzzer differential harness: every input is one call of
 * kd_loss_f32, kd_loss_grad_f32 or kd_loss_ex_f32, checked against the whole
 * contract of kdloss.h and against the long double reference. Any violation
 * traps.
 *
 * Input bytes (missing bytes read as 0), in order:
 *   flags      bit 0 MSE; bit 1 gradient call; bit 2 in place; bit 3 loss NULL
 *              (gradient call, or kd_loss_ex_f32 with row_loss); bit 4 teacher is
 *              the student's buffer
 *   isa        kd_set_isa(scalar, avx2, avx512, neon)[byte % 4]; an ISA the CPU
 *              lacks must give KD_ERR_UNSUPPORTED and change nothing.
 *              KDLOSS_FUZZ_ISA=<name> in the environment pins the ISA instead.
 *   rows 1-40, cols 1-300 (2 bytes), padding of each leading dimension (0-16),
 *   start offsets in floats (0-3 each), factor, temperature (see param()),
 *   value distribution (scale exponent, shift), 8 bytes of seed, patches
 *   (count, then per patch: 2 bytes of index into student|teacher and a value
 *   from value(): +-0, +-inf, NaN, +-FLT_MAX, subnormals, raw bits), one
 *   argument error to inject (see inject()), and last (absent: one of the first
 *   two entry points) the kd_loss_ex_f32
 *   bytes: ex (bit 0: call kd_loss_ex_f32; bits 1-3: the distance, any of
 *   the eight, replacing flags bit 0; bit 4 KD_REDUCE_SUM; bit 5 row_loss
 *   given; bits 6-7 weights: NULL, mixed with zeros, all zero, mixed with
 *   one special value), beta (see beta()), and a byte seeding the weights.
 *
 * Checks: the status is the one the contract gives (argument errors in the
 * documented order, KD_ERR_NONFINITE from the values, rows of weight 0 never
 * read); on an argument error nothing in any buffer nor *loss changes; on
 * KD_ERR_NONFINITE *loss is NaN and nothing outside grad's rows x cols and
 * row_loss changes; on KD_OK the loss, every row_loss and every gradient
 * element are within the bound of tests/tolerance.h (inf where the value is
 * beyond float), nothing outside grad's rows x cols and row_loss changes (nor
 * the student, out of place, nor the teacher, nor the weights), and a second
 * call on the same inputs gives bitwise the same bytes.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bits.h"
#include "kdloss.h"
#include "reference.h"
#include "rng.h"
#include "tolerance.h"

#define MAX_ROWS 40 /* past two groups of short rows on every ISA (src/kernels.h) */
#define MAX_COLS 300
#define MAX_PAD 16
#define MAX_OFFSET 3
#define REGION (MAX_OFFSET + MAX_ROWS * (MAX_COLS + MAX_PAD))
#define N_DISTANCES 8 /* KD_CROSS_ENTROPY .. KD_BCE_SIGMOID */

typedef struct reader { const uint8_t *p; size_t left; } reader;

static uint8_t u8(reader *r) {
  if (!r->left) return 0;
  r->left--;
  return *r->p++;
}

static uint32_t u32(reader *r) {
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) v |= (uint32_t)u8(r) << (8 * k);
  return v;
}

/* A factor or temperature: mostly log-uniform from subnormal to 3e38, some
 * special values, some raw bits. */
static float param(reader *r) {
  uint8_t mode = u8(r), b = u8(r);
  switch (mode % 8) {
  case 0: return 1.0f;
  case 1: return (float)ldexp(1.0, (int)b % 256 - 149); /* 2^-149 .. 2^106 */
  case 2: return tk_f32_from_bits(u32(r));
  case 3: return (mode & 8 ? -1.0f : 1.0f) * FLT_MAX;
  case 4: return (mode & 8 ? -1.0f : 1.0f) * 0x1p-149f;
  default: {
    double e = -45.0 + 83.5 * b / 255.0, m = 1.0 + u8(r) / 32.0;
    return (float)((mode & 8 ? -1.0 : 1.0) * m * pow(10.0, e));
  }
  }
}

/* A patched value: the specials float arithmetic trips on. */
static float value(reader *r) {
  static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                                   0x1p-149f, -0x1p-149f, FLT_MIN, 1e31f, -1e31f, 1e19f,
                                   3e38f, -3e38f, 1.0f};
  uint8_t mode = u8(r);
  if (mode < 128) return specials[mode % (sizeof specials / sizeof specials[0])];
  if (mode < 192) return tk_f32_from_bits(u32(r));
  return (float)((mode & 1 ? -1.0 : 1.0) * pow(10.0, -45.0 + 83.5 * u8(r) / 255.0));
}

/* JSD's beta: mostly inside (0, 1), some edges and invalid values. */
static float beta(reader *r) {
  static const float specials[] = {0.0f, 1.0f, -0.5f, NAN, 0x1p-149f, 1.0f - 0x1p-24f, 0.5f,
                                   INFINITY};
  uint8_t b = u8(r);
  if (b % 8 == 0) return specials[(b / 8) % 8];
  return (b + 0.5f) / 256.0f;
}

/* One call's arguments and buffers. The arena holds, one after the other, the
 * student, teacher and gradient regions, the weights, the row losses and the
 * loss. */
typedef struct call {
  int mse, with_grad, in_place, loss_null, same_ptr;
  int ex, params_null; /* kd_loss_ex_f32; with p NULL */
  int kind;            /* the injected argument error (INJ_NONE: none) */
  kd_distance distance;
  kd_reduction reduction;
  float factor, temperature, beta;
  size_t rows, cols, lds, ldt, ldg;
  const float *s, *t, *w;
  float *g, *loss, *row_loss;
} call;

#define ARENA (3 * REGION + 2 * MAX_ROWS + 1)
static float arena[ARENA];
static float before[ARENA], first[ARENA];
static double ref_grad[MAX_ROWS * MAX_COLS], ref_rows[MAX_ROWS];

#define S_BASE (arena)
#define T_BASE (arena + REGION)
#define G_BASE (arena + 2 * REGION)
#define W_BASE (arena + 3 * REGION)
#define RL_BASE (arena + 3 * REGION + MAX_ROWS)
#define LOSS (arena + 3 * REGION + 2 * MAX_ROWS)

/* MSE and BCE work element by element: no temperature, no infinities. */
static int elementwise(kd_distance d) {
  return d == KD_MSE || d == KD_BCE_SIGMOID;
}

/* Row i's weight (1 without weights). */
static float weight_of(const call *c, size_t i) {
  return c->w ? c->w[i] : 1.0f;
}

/* The weights' largest value and sum. */
static void weight_stats(const call *c, double *w_max, double *w_sum) {
  *w_max = *w_sum = 0;
  for (size_t i = 0; i < c->rows; i++) {
    *w_sum += weight_of(c, i);
    *w_max = fmax(*w_max, weight_of(c, i));
  }
}

static void violation(const call *c, const char *fmt, double a, double b) {
  fprintf(stderr,
          "kdloss contract violated: isa=%s %s distance %d %s%s%s rows=%zu cols=%zu "
          "ld=%zu/%zu/%zu factor=%a T=%a beta=%a reduction %d weights %s row_loss %s "
          "injected=%d: ",
          kd_isa_name(kd_get_isa()), c->ex ? "kd_loss_ex_f32" : "", (int)c->distance,
          c->with_grad ? "loss+grad" : "loss", c->in_place ? " in place" : "",
          c->loss_null ? " loss NULL" : "", c->rows, c->cols, c->lds, c->ldt, c->ldg,
          (double)c->factor, (double)c->temperature, (double)c->beta, (int)c->reduction,
          c->w ? "given" : "NULL", c->row_loss ? "given" : "NULL", c->kind);
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
  __builtin_trap();
}

static kd_status invoke(const call *c) {
  if (c->ex) {
    kd_params p = {c->distance, c->factor, c->temperature, c->beta, c->reduction, c->w};
    return kd_loss_ex_f32(c->params_null ? NULL : &p, c->rows, c->cols, c->s, c->lds, c->t,
                          c->ldt, c->loss, c->row_loss, c->with_grad ? c->g : NULL, c->ldg);
  }
  return c->with_grad ? kd_loss_grad_f32(c->distance, c->factor, c->temperature, c->rows, c->cols,
                                         c->s, c->lds, c->t, c->ldt, c->loss, c->g, c->ldg)
                      : kd_loss_f32(c->distance, c->factor, c->temperature, c->rows, c->cols,
                                    c->s, c->lds, c->t, c->ldt, c->loss);
}

/* Argument errors to inject: the call's pointers and sizes made wrong in one
 * way; expect() names the status. */
enum {
  INJ_NONE, INJ_DISTANCE, INJ_NULL_S, INJ_NULL_T, INJ_NULL_OUT, INJ_ROWS0, INJ_COLS0,
  INJ_ROWS_HUGE, INJ_LD_S, INJ_LD_T, INJ_LD_G, INJ_GRAD_ON_T, INJ_GRAD_ON_S, INJ_LD_IN_PLACE,
  INJ_LOSS_IN_S, INJ_LOSS_IN_T, INJ_LOSS_IN_G,
  /* kd_loss_ex_f32 only */
  INJ_PARAMS_NULL, INJ_REDUCTION, INJ_ROW_LOSS_IN_S, INJ_ROW_LOSS_IN_G, INJ_ROW_LOSS_ON_LOSS,
  INJ_ROW_LOSS_ON_W, INJ_GRAD_ON_W, INJ_COUNT
};

static int inject(call *c, int kind) {
  switch (kind) {
  case INJ_DISTANCE: c->distance = (kd_distance)99; return KD_ERR_DISTANCE;
  case INJ_NULL_S: c->s = NULL; return KD_ERR_NULL;
  case INJ_NULL_T: c->t = NULL; return KD_ERR_NULL;
  case INJ_NULL_OUT:
    if (c->ex) c->loss = c->row_loss = NULL;
    else if (c->with_grad) c->g = NULL;
    else c->loss = NULL;
    return KD_ERR_NULL;
  case INJ_ROWS0: c->rows = 0; return KD_ERR_SHAPE;
  case INJ_COLS0: c->cols = 0; return KD_ERR_SHAPE;
  case INJ_ROWS_HUGE: c->rows = SIZE_MAX / 2; return KD_ERR_SHAPE;
  case INJ_LD_S: c->lds = c->cols - 1; return KD_ERR_STRIDE;
  case INJ_LD_T: c->ldt = c->cols - 1; return KD_ERR_STRIDE;
  case INJ_LD_G: if (!c->with_grad) return -1; c->ldg = c->cols - 1; return KD_ERR_STRIDE;
  case INJ_GRAD_ON_T: if (!c->with_grad) return -1; c->g = (float *)c->t; c->ldg = c->ldt;
    return KD_ERR_ALIAS;
  case INJ_GRAD_ON_S: /* one float: exactly s, but another ld, is not in place */
    if (!c->with_grad || c->same_ptr) return -1;
    c->g = (float *)c->s + (c->rows * c->cols > 1);
    c->ldg = c->lds + (c->rows * c->cols == 1);
    return KD_ERR_ALIAS;
  case INJ_LD_IN_PLACE: if (!c->with_grad || c->rows < 2 || c->same_ptr) return -1;
    c->g = (float *)c->s; c->ldg = c->lds + 1; return KD_ERR_ALIAS;
  case INJ_LOSS_IN_S: if (c->loss_null) return -1; c->loss = (float *)c->s; return KD_ERR_ALIAS;
  case INJ_LOSS_IN_T: if (c->loss_null) return -1; c->loss = (float *)c->t + c->cols - 1;
    return KD_ERR_ALIAS;
  case INJ_LOSS_IN_G: if (!c->with_grad || c->loss_null) return -1; c->loss = c->g;
    return KD_ERR_ALIAS;
  case INJ_PARAMS_NULL: if (!c->ex) return -1; c->params_null = 1; return KD_ERR_NULL;
  case INJ_REDUCTION: if (!c->ex) return -1; c->reduction = (kd_reduction)5;
    return KD_ERR_REDUCTION;
  case INJ_ROW_LOSS_IN_S: if (!c->row_loss) return -1; c->row_loss = (float *)c->s;
    return KD_ERR_ALIAS;
  case INJ_ROW_LOSS_IN_G: if (!c->row_loss || !c->with_grad) return -1;
    c->row_loss = c->g + c->ldg * (c->rows - 1); return KD_ERR_ALIAS;
  case INJ_ROW_LOSS_ON_LOSS: if (!c->row_loss || c->loss_null) return -1;
    c->row_loss = c->loss; return KD_ERR_ALIAS;
  case INJ_ROW_LOSS_ON_W: if (!c->row_loss || !c->w) return -1;
    c->row_loss = (float *)c->w; return KD_ERR_ALIAS;
  case INJ_GRAD_ON_W: if (!c->w || !c->with_grad || c->in_place) return -1;
    c->g = (float *)c->w; c->ldg = c->cols; return KD_ERR_ALIAS;
  default: return -1;
  }
}

/* The status kdloss.h gives for these arguments, before looking at values;
 * KD_OK when they are valid. `injected` is the status of the injected error,
 * which the documented order may put behind an error of the parameters. */
static kd_status expect_args(const call *c, int injected, int kind) {
  if (kind == INJ_PARAMS_NULL) return KD_ERR_NULL;
  if (kind == INJ_DISTANCE) return KD_ERR_DISTANCE;
  if (kind == INJ_REDUCTION) return KD_ERR_REDUCTION;
  if (kind >= INJ_NULL_S && kind <= INJ_LD_G) return (kd_status)injected;
  if (!isfinite(c->factor)) return KD_ERR_FACTOR;
  if (!elementwise(c->distance) && !(c->temperature >= FLT_MIN && c->temperature <= FLT_MAX))
    return KD_ERR_TEMPERATURE;
  if (c->distance == KD_JSD && !(c->beta > 0.0f && c->beta < 1.0f)) return KD_ERR_BETA;
  for (size_t i = 0; i < c->rows; i++)
    if (!(weight_of(c, i) >= 0.0f && weight_of(c, i) <= FLT_MAX)) return KD_ERR_WEIGHT;
  double w_sum, w_max;
  weight_stats(c, &w_max, &w_sum);
  /* The gradient's largest scale, c_i / T (softmax), 2 c_i / C (MSE), c_i / C (BCE). */
  if (c->with_grad && w_sum > 0) {
    double den = (c->reduction == KD_REDUCE_MEAN ? w_sum : 1.0) *
                 (elementwise(c->distance) ? (double)c->cols : c->temperature);
    double scale = (c->distance == KD_MSE ? 2.0 : 1.0) * c->factor * w_max / den;
    if (!(fabs(scale) <= FLT_MAX)) return KD_ERR_FACTOR;
  }
  return injected > 0 ? (kd_status)injected : KD_OK;
}

/* Whether the values make the call KD_ERR_NONFINITE (rows of weight 0 are
 * never read). */
static int nonfinite(const call *c) {
  for (size_t i = 0; i < c->rows; i++) {
    if (weight_of(c, i) == 0.0f) continue;
    const float *x[2] = {c->s + i * c->lds, c->t + i * c->ldt};
    for (int k = 0; k < 2; k++) {
      int live = 0;
      for (size_t j = 0; j < c->cols; j++) {
        float v = x[k][j];
        if (isnan(v) || v == INFINITY || (elementwise(c->distance) && v == -INFINITY)) return 1;
        live |= v != -INFINITY;
      }
      if (!live) return 1;
    }
  }
  return 0;
}

/* Whether arena float k lies in the rows x cols of a matrix at p, ld. */
static int inside(size_t k, const float *p, size_t rows, size_t cols, size_t ld) {
  if (arena + k < p) return 0;
  size_t off = (size_t)(arena + k - p);
  return off / ld < rows && off % ld < cols;
}

/* After a call: nothing changed but what may. */
static void check_untouched(const call *c, int grad_written) {
  for (size_t k = 0; k < ARENA - 1; k++) {
    if (memcmp(&arena[k], &before[k], sizeof(float)) == 0) continue;
    if (grad_written && inside(k, c->g, c->rows, c->cols, c->ldg)) continue;
    if (c->row_loss && inside(k, c->row_loss, 1, c->rows, c->rows)) continue;
    violation(c, "float %g of the arena written outside grad's rows x cols (now %g)", (double)k,
              (double)arena[k]);
  }
}

/* The bounds of tolerance.h: the loss's factor term is |factor| (mean) or
 * |factor| sum w (sum), row_loss[i]'s |factor| w_i. */
static void check_values(const call *c, double ref) {
  double w_max, w_sum;
  weight_stats(c, &w_max, &w_sum);
  if (c->loss) {
    double tol = tk_loss_tol(ref, fabs(c->factor) * (c->reduction == KD_REDUCE_SUM ? w_sum : 1));
    if (!tk_within(*c->loss, ref, tol)) violation(c, "loss %.9g, reference %.17g", *c->loss, ref);
  }
  for (size_t i = 0; c->row_loss && i < c->rows; i++)
    if (!tk_within(c->row_loss[i], ref_rows[i],
                   tk_loss_tol(ref_rows[i], fabs(c->factor) * weight_of(c, i))))
      violation(c, "row_loss %.9g, reference %.17g", c->row_loss[i], ref_rows[i]);
  if (!c->with_grad) return;
  double max_ref = 0;
  for (size_t k = 0; k < c->rows * c->cols; k++) max_ref = fmax(max_ref, fabs(ref_grad[k]));
  kd_params p = {c->distance, c->factor, c->temperature, c->beta, c->reduction, c->w};
  double tol = tk_grad_tol(max_ref, tk_grad_scale_ex(&p, c->cols, w_max, w_sum));
  for (size_t i = 0; i < c->rows; i++)
    for (size_t j = 0; j < c->cols; j++)
      if (!tk_within(c->g[i * c->ldg + j], ref_grad[i * c->cols + j], tol))
        violation(c, "grad %.9g, reference %.17g", c->g[i * c->ldg + j],
                  ref_grad[i * c->cols + j]);
}

static void set_isa(reader *r) {
  static const kd_isa isas[] = {KD_ISA_SCALAR, KD_ISA_AVX2, KD_ISA_AVX512, KD_ISA_NEON};
  static int pinned = -1;
  if (pinned < 0) {
    const char *name = getenv("KDLOSS_FUZZ_ISA");
    pinned = 0;
    for (size_t k = 0; name && k < 4; k++)
      if (strcmp(name, kd_isa_name(isas[k])) == 0) {
        if (kd_set_isa(isas[k]) != KD_OK) {
          fprintf(stderr, "fuzz_kdloss: KDLOSS_FUZZ_ISA=%s: not supported here\n", name);
          exit(2);
        }
        pinned = 1;
      }
  }
  uint8_t b = u8(r);
  if (pinned) return;
  kd_isa isa = isas[b % 4], was = kd_get_isa();
  kd_status st = kd_set_isa(isa);
  if (st != (kd_isa_supported(isa) ? KD_OK : KD_ERR_UNSUPPORTED) ||
      kd_get_isa() != (st == KD_OK ? isa : was)) {
    fprintf(stderr, "kd_set_isa(%s): %s, now %s\n", kd_isa_name(isa), kd_status_str(st),
            kd_isa_name(kd_get_isa()));
    __builtin_trap();
  }
}

/* The kd_loss_ex_f32 bytes (see the top): distance, reduction, beta, the
 * weights (in the arena, after the gradient region) and the row losses. */
static void read_ex(reader *r, call *c, uint8_t flags) {
  static const float bad_weights[] = {-1.0f, NAN, INFINITY, -0.0f, 0x1p-149f, FLT_MAX};
  uint8_t ex = u8(r);
  c->ex = ex & 1;
  c->params_null = 0;
  c->beta = 0.0f;
  c->reduction = KD_REDUCE_MEAN;
  c->w = NULL;
  c->row_loss = NULL;
  if (!c->ex) return;
  c->distance = (kd_distance)((ex >> 1) & 7);
  c->reduction = ex & 16 ? KD_REDUCE_SUM : KD_REDUCE_MEAN;
  c->beta = beta(r);
  uint64_t seed = u8(r);
  int mode = ex >> 6;
  if (mode) {
    for (size_t i = 0; i < c->rows; i++) {
      double u = tk_uniform(&seed);
      W_BASE[i] = mode == 2 || u < 0.25 ? 0.0f : (float)(4.0 * u);
    }
    if (mode == 3) {
      uint64_t k = tk_next(&seed);
      W_BASE[k % c->rows] = bad_weights[(k >> 8) % (sizeof bad_weights / sizeof bad_weights[0])];
    }
    c->w = W_BASE;
  }
  if (ex & 32) c->row_loss = RL_BASE;
  /* loss NULL needs row_loss instead (else it is the injected KD_ERR_NULL). */
  c->loss_null = ((flags >> 3) & 1) && c->row_loss;
  c->loss = c->loss_null ? NULL : LOSS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size};
  call c;
  uint8_t flags = u8(&r);
  set_isa(&r);
  c.mse = flags & 1;
  c.with_grad = (flags >> 1) & 1;
  c.in_place = c.with_grad && (flags >> 2) & 1;
  c.loss_null = c.with_grad && (flags >> 3) & 1;
  c.same_ptr = (flags >> 4) & 1;
  c.distance = c.mse ? KD_MSE : KD_CROSS_ENTROPY;
  c.rows = 1 + u8(&r) % MAX_ROWS;
  c.cols = 1 + (u8(&r) | (size_t)u8(&r) << 8) % MAX_COLS;
  c.lds = c.cols + u8(&r) % (MAX_PAD + 1);
  c.ldt = c.same_ptr ? c.lds : c.cols + u8(&r) % (MAX_PAD + 1);
  c.ldg = c.in_place ? c.lds : c.cols + u8(&r) % (MAX_PAD + 1);
  uint8_t offsets = u8(&r);
  c.factor = param(&r);
  c.temperature = param(&r);
  if (!c.mse && u8(&r) < 192) c.temperature = fabsf(c.temperature);

  /* Values: scale * N(0,1) + shift, then the patches; the padding is NaN. */
  for (size_t k = 0; k < ARENA; k++) arena[k] = NAN;
  float *s = S_BASE + (offsets & 3), *t = c.same_ptr ? s : T_BASE + ((offsets >> 2) & 3);
  uint8_t dist = u8(&r);
  double scale = pow(10.0, (dist & 63) * 0.65 - 5.0), shift = (dist >> 6) == 3 ? -3e38 : 0.0;
  uint64_t seed = (uint64_t)u32(&r) | (uint64_t)u32(&r) << 32;
  for (size_t i = 0; i < c.rows; i++)
    for (size_t j = 0; j < c.cols; j++) {
      s[i * c.lds + j] = (float)fmax(-FLT_MAX, fmin(FLT_MAX, scale * tk_normal(&seed) + shift));
      if (!c.same_ptr)
        t[i * c.ldt + j] = (float)fmax(-FLT_MAX, fmin(FLT_MAX, scale * tk_normal(&seed) + shift));
    }
  for (size_t n = u8(&r) % 16; n > 0; n--) {
    size_t k = (u8(&r) | (size_t)u8(&r) << 8) % (2 * c.rows * c.cols);
    size_t i = k % (c.rows * c.cols) / c.cols, j = k % c.cols;
    float v = value(&r);
    if (k < c.rows * c.cols || c.same_ptr) s[i * c.lds + j] = v;
    else t[i * c.ldt + j] = v;
  }
  c.s = s;
  c.t = t;
  c.g = c.in_place ? s : c.with_grad ? G_BASE + ((offsets >> 4) & 3) : NULL;
  c.loss = c.loss_null ? NULL : LOSS;
  *LOSS = -1.0f;
  int kind = u8(&r) % (2 * INJ_COUNT); /* half the inputs inject nothing */
  read_ex(&r, &c, flags);

  /* The reference, from the inputs as they are before any call. */
  kd_params p = {c.distance, c.factor, c.temperature, c.beta, c.reduction, c.w};
  double ref = nonfinite(&c) ? NAN
                             : kd_reference_ex_f64(&p, c.rows, c.cols, c.s, c.lds, c.t, c.ldt,
                                                   ref_rows, c.with_grad ? ref_grad : NULL);
  int bad = nonfinite(&c);
  int injected = kind < INJ_COUNT ? inject(&c, kind) : -1;
  if (injected < 0) kind = INJ_NONE;
  c.kind = kind;
  /* In place with the teacher in the student's buffer: grad overlaps the teacher. */
  if (injected < 0 && c.in_place && c.same_ptr) injected = KD_ERR_ALIAS;
  kd_status want = expect_args(&c, injected, kind);
  memcpy(before, arena, sizeof arena);

  kd_status st = invoke(&c);
  if (want == KD_OK && bad) want = KD_ERR_NONFINITE;
  if (st != want) violation(&c, "status %g, expected %g", st, want);
  if (want != KD_OK && want != KD_ERR_NONFINITE) {
    if (memcmp(arena, before, sizeof arena) != 0)
      violation(&c, "argument error %g wrote an output (kind %g)", st, kind);
    return 0;
  }
  check_untouched(&c, c.with_grad);
  if (want == KD_ERR_NONFINITE) {
    if (c.loss && !isnan(*c.loss)) violation(&c, "non-finite: loss %g, expected NaN", *c.loss, 0);
    return 0;
  }
  if (isnan(ref)) violation(&c, "the reference is NaN on valid inputs", 0, 0);
  check_values(&c, ref);

  /* Again on the same inputs: the same bytes. */
  memcpy(first, arena, sizeof arena);
  memcpy(arena, before, sizeof arena);
  if (invoke(&c) != st || memcmp(arena, first, sizeof arena) != 0)
    violation(&c, "a second call differs", 0, 0);
  return 0;
}
