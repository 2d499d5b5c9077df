/*
 * kernels.h -- the row kernels every ISA provides, and the function table.
 *
 * Internal. The API layer (kdloss.c) validates arguments and runs the row loop
 * once for all ISAs; a kernel computes one pass over one row and never checks
 * arguments. Names follow kd_f32_<operation>_<isa>. The SIMD ISAs compile
 * one skeleton per pass (src/ce_passes.h, src/mse_passes.h, and for the rest
 * of the family src/div_passes.h, src/bce_passes.h, which state their math)
 * over their operation layer (src/<isa>/vec_<isa>.h); src/scalar/ is the
 * one-lane reference the skeletons follow pass for pass. Every softmax
 * distance runs passes 1 and 2 below; the cross-entropies (LwF, FACIL with
 * eps = 1e-5/C) then the rest of this pipeline.
 *
 * Cross-entropy row, n classes, z = x / T (the pipeline's softmax(x)^(1/T)
 * renormalised is softmax(x/T) exactly):
 *   1. rmax2:    s_max, t_max; flags NaN and +inf.
 *   2. expsum2:  es_j = exp((s_j - s_max)/T), et_j likewise, into scratch;
 *                zs = sum es, zt = sum et. q = es/zs, r = et/zt.
 *   3a. celoss:  sum_j r_j * log(q_j + 1e-5)          (loss only: 2 exp + 1 log)
 *   3b. cestats: the same sum; then, per class, w_j = r_j/(q_j + 1e-5) and
 *                u_j = 1 - w_j; es is overwritten with q_j (negated where
 *                the u-form is used, w_j > KD_U_FORM_W) and et with w_j or
 *                u_j to match; sums: sum q*w, sum q*u (kd_ce_sums). sum q
 *                needs no pass: it is zs/zs, zs times the 1/zs of q_j.
 *   4. cegrad:   grad_j = scale * q_j * B_j, where B_j = sum_k q_k (w_k - w_j) is
 *                evaluated as   sum(q*w) - w_j * sum(q)   (w-form), or
 *                               u_j * sum(q) - sum(q*u)   (u-form).
 * Why two forms: each loses only rounding of its own size. Where the teacher
 * puts mass the student lacks, w is small and S - w_j stays accurate; where
 * student and teacher agree, w is near 1 and would cancel to noise in float,
 * while u is small and keeps its relative precision. A flag per class (the
 * sign of the stored q) picks the form without a third scratch array.
 * u_j = (q_j - r_j + 1e-5)/(q_j + 1e-5) needs q_j - r_j accurately: when r_j/q_j
 * is near 1 it is computed as -q_j * expm1(d_j), with
 * d_j = log(r_j/q_j) = ((t_j - s_j) - (t_max - s_max))/T + log(zs/zt),
 * which float evaluates with relative (not absolute) error: t_j - s_j and
 * t_max - s_max are each carried as a TwoSum pair (value + rounding error), so
 * their difference is exact at any offset between student and teacher. u_j
 * itself cancels where q_j - r_j is near -1e-5; cestats reports the size of
 * what it cancels from (u_size) for the conditioning check below.
 * The row loop then fixes one class: when q_max > 1/2 (zs < 2), B of the most
 * probable class cancels in either form, so it gets minus the sum of the other
 * gradients (the gradient sums to zero over a row); cegrad returns that sum.
 * Last, the row loop compares the largest gradient with the largest term it
 * was computed from (kd_grad_stats): a row whose gradient cancels by more than
 * KD_COND_LIMIT (two near-tied top classes with student == teacher, logits
 * nearly flat at a high temperature) is redone in double, from the logits.
 *
 * Why three passes with the exps cached in a per-row scratch (es, et), not
 * recomputed, and not an online normaliser (running maximum with rescaled
 * sums, two passes): each cross-entropy row is bound by exp and log, and both
 * alternatives call exp twice more per element to save only pass 1, which is
 * loads and maxima. The benchmark carries both as sketches
 * (bench/avx512/designs_avx512.c); docs/design.md has the measurement. The
 * scratch costs 8 bytes per class: on the stack up to 2048 classes, above
 * that one allocation per call.
 *
 * In the SIMD files sums run in float over blocks of KD_BLOCK elements per 4
 * lanes (each lane adds at most KD_BLOCK / 4 floats) and in double across
 * blocks, so a 128256-class row keeps ~1e-7 relative error; the
 * scalar file, with one lane, sums in double directly.
 */
#ifndef KD_KERNELS_H
#define KD_KERNELS_H

#include <math.h>
#include <stddef.h>
#include "kdloss.h"

#define KD_EPS 1e-5f       /* LwF's epsilon in log(q + 1e-5); FACIL's is KD_EPS / cols */
#define KD_BLOCK 256       /* elements per float partial sum before it joins a double */
#define KD_EXPM1_BAND 0.5f /* |d_j| below this: q_j - r_j via expm1 */
#define KD_U_FORM_W 0.5f   /* w_j above this: the gradient uses the u-form */
/* A row whose gradient terms exceed its largest gradient by more than this is
 * redone in double. Float rounding leaves ~3e-7 of the terms' size in B_j;
 * the contract allows 1e-5 of the largest gradient: 1e-5 / 3e-7 = 33, and 10
 * keeps a margin for the probabilities' own error (up to ~5e-6 far in the tail). */
#define KD_COND_LIMIT 10.0f

/* expm1 on |d| < KD_EXPM1_BAND, for the SIMD files: d + d^2 P(d), P of
 * degree 5, minimax for the relative error of expm1 on [-0.5, 0.5] (fitted
 * with mpmath by reweighted least squares on 1500 Chebyshev points, each
 * coefficient rounded to float in order of degree with the rest refitted):
 * 4.6e-9 in exact arithmetic, under a tenth of float's rounding. Evaluated in
 * float as ce_passes.h does, 0.95 ulp over every 61st float of the band
 * (a degree-8 Taylor polynomial: 0.99, two FMAs more). A library expm1
 * costs several exps (docs/design.md), and only this band needs it. */
#define KD_EXPM1_C2 0x1.000002p-1f
#define KD_EXPM1_C3 0x1.55555ap-3f
#define KD_EXPM1_C4 0x1.5551ccp-5f
#define KD_EXPM1_C5 0x1.110b5p-7f
#define KD_EXPM1_C6 0x1.6f4056p-10f
#define KD_EXPM1_C7 0x1.a689eep-13f

/* End of the block that starts at j. */
static inline size_t kd_block_end(size_t j, size_t n) {
  return n - j < KD_BLOCK ? n : j + KD_BLOCK;
}

/* Per-row constants of the cross-entropy passes, filled by the row loop. */
typedef struct kd_ce_row {
  float s_max, t_max; /* pass 1 */
  float max_gap, max_gap_lo; /* t_max - s_max as a TwoSum pair */
  float inv_temp;     /* 1/T */
  float eps;          /* the cross-entropies' epsilon: KD_EPS, or KD_EPS / cols (FACIL) */
  float beta;         /* KD_JSD's beta */
  float inv_zs, inv_zt, log_zs_zt; /* after pass 2 */
  float q_sum, qw_sum, qu_sum;     /* after pass 3b */
  float grad_scale;                /* factor / (rows * T) */
  const float *next_s, *next_t;    /* the next row's logits (this row's on the
                                      last row): pass 2 prefetches them */
  const float *grad_out;           /* the n floats pass 4 will write (pass 3b
                                      prefetches them) */
} kd_ce_row;

/* (t_j - t_max) - (s_j - s_max) for the scalar passes (passes.h has the
 * vector one), with t_j - s_j carried as a TwoSum pair: exact at any offset
 * between student and teacher. */
static inline float kd_gap_parts_f32(float x, float y, const kd_ce_row *row) {
  float a = y - x, bb = a - y;
  float a_lo = (y - (a - bb)) + (-x - bb);
  return (a - row->max_gap) + (a_lo - row->max_gap_lo);
}

/* Pass 2 asks for the next row's logits at offset i, called for every i that
 * is a multiple of KD_PREFETCH_STRIDE (a cache line of floats, so each line
 * once), so that pass 1 of the next row finds them in cache: pass 1 does
 * almost no arithmetic to hide a miss behind, pass 2 is bound by exp
 * (docs/design.md). Pass 3b, bound by arithmetic too, likewise asks for the
 * lines pass 4 will write (grad_out), which a gradient buffer not in cache
 * would otherwise stall pass 4's stores on. Only addresses inside the
 * caller's rows (or the row loop's scratch) are named. */
#define KD_PREFETCH_STRIDE 16
static inline void kd_prefetch_next(const kd_ce_row *row, size_t i) {
  __builtin_prefetch(row->next_s + i);
  __builtin_prefetch(row->next_t + i);
}

/* Pass 1. Returns nonzero if s or t holds a NaN or +inf (maxima then unspecified). */
typedef int (*kd_rmax2_fn)(size_t n, const float *s, const float *t,
                           float *s_max, float *t_max);
/* Pass 2. Writes es, et (n floats each); returns the first j with s_j == s_max. */
typedef size_t (*kd_expsum2_fn)(size_t n, const float *s, const float *t,
                                const kd_ce_row *row, float *es, float *et,
                                double *zs, double *zt);
/* Reverse KL with its gradient, pass 2 (div_passes.h): expsum2 with the gap
 * parts p_j = (t_j - t_max) - (s_j - s_max) (t_j - s_j as a TwoSum pair)
 * stored in place of et (zt still summed); *num = sum_j es_j p_j, *p_max =
 * max_j |p_j|. Non-finite *num where a logit is -inf. */
typedef size_t (*kd_expsum2rkl_fn)(size_t n, const float *s, const float *t,
                                   const kd_ce_row *row, float *es, float *p, double *zs,
                                   double *zt, double *num, float *p_max);
/* sum_j q_j v_j of rklgrad's q_j = es_j/zs and v_j = p_j/T + log(zs/zt), from
 * pass 2's num (row: inv_zs, inv_temp, log_zs_zt as pass 3 takes them). */
static inline double kd_rkl_qv_sum(const kd_ce_row *row, double zs, double num) {
  return row->inv_zs * (row->inv_temp * num + row->log_zs_zt * zs);
}
/* Pass 3a. Returns sum_j r_j * log(q_j + 1e-5) (<= 0 up to rounding). */
typedef double (*kd_celoss_fn)(size_t n, const float *es, const float *et,
                               const kd_ce_row *row);
/* What pass 3b reports to the row loop. */
typedef struct kd_ce_sums {
  double q, qw, qu; /* sum q (divstats only), sum q*w, sum q*u */
  float u_size;     /* max over u-form j of q_j * (|q_j - r_j| + 1e-5) / (q_j + 1e-5) */
} kd_ce_sums;
/* Pass 3b. As 3a; overwrites es with q_j, negated where the u-form is used
 * (w_j > KD_U_FORM_W), and et with w_j or u_j to match. Sets sums' qw, qu
 * and u_size. */
typedef double (*kd_cestats_fn)(size_t n, const float *s, const float *t,
                                float *es_q, float *et_v, const kd_ce_row *row,
                                kd_ce_sums *sums);
/* What pass 4 reports to the row loop. */
typedef struct kd_grad_stats {
  double others; /* sum of grad_j over j != skip */
  float max_abs; /* max over j != skip of |grad_j| */
  float max_err; /* max over j != skip of scale * q_j * (|v_j| * sum q + |S|), S the
                    form's sum: the size of what B_j cancels from, which the
                    rounding error is proportional to */
} kd_grad_stats;
/* Pass 4. Writes grad_j to grad, which may be v itself (the row loop passes
 * the scratch when grad is the student in place: the student must survive
 * until the row is known to be well conditioned). */
typedef void (*kd_cegrad_fn)(size_t n, const float *q_signed, const float *v, float *grad,
                             const kd_ce_row *row, size_t skip, kd_grad_stats *stats);
/* The row loop's last step on a gradient row g from pass 4: when dominant
 * (zs < 2), the most probable class gets minus the sum of the others; then
 * the conditioning check. Nonzero: the row must be redone in double. */
static inline int kd_ce_grad_redo(float *g, int dominant, size_t argmax, const kd_grad_stats *st,
                                  const kd_ce_sums *sums, const kd_ce_row *row) {
  float max_abs = st->max_abs;
  if (dominant) {
    g[argmax] = (float)-st->others;
    max_abs = fabsf(g[argmax]) > max_abs ? fabsf(g[argmax]) : max_abs;
  }
  float size = fabsf(row->grad_scale) * sums->u_size * row->q_sum;
  size = st->max_err > size ? st->max_err : size;
  return size > KD_COND_LIMIT * max_abs;
}

/* Soft cross-entropy (kl == 0) or KL (kl == 1), after pass 2 (see div_passes.h).
 * Returns sum_j et_j * (-y_j) (y_j = (s_j - s_max)/T) or sum_j et_j * A_j
 * (A_j = ((t_j - t_max) - (s_j - s_max))/T), +inf when a class the student
 * masks is one the teacher does not; grad (NULL for none; may be s or et):
 * grad_j = grad_scale * (q_j - r_j), and into stats (grad only) max |grad_j|
 * and max_err = |grad_scale| max_j q_j (|A_j| + |log(zs/zt)| + 1) over the
 * classes where q - r comes from expm1(d_j): the size d_j's rounding error
 * is proportional to (div_passes.h). */
typedef double (*kd_klsum_fn)(size_t n, const float *s, const float *t, const float *es,
                              const float *et, const kd_ce_row *row, int kl, float *grad,
                              kd_grad_stats *stats);
/* The loss alone of soft cross-entropy (kind 0), KL (1) or reverse KL (2),
 * in place of pass 2 (see div_passes.h): zs and zt as expsum2 computes them,
 * nothing stored, and returns T times sum_j et_j (-y_j) (SCE), sum_j et_j A_j
 * (KL) or sum_j es_j A_j (reverse KL) (the row loop multiplies by 1/T), with
 * +inf (SCE, KL) or -inf (reverse KL) for the masks that make the distance
 * infinite. Needs s_max, t_max,
 * max_gap, max_gap_lo and inv_temp of row. */
typedef double (*kd_divloss_fn)(size_t n, const float *s, const float *t, const kd_ce_row *row,
                                int kind, double *zs, double *zt);
/* Reverse KL (jsd == 0) or JSD (jsd == 1), after pass 2 (see div_passes.h).
 * Overwrites es with q_j and et with v_j, the w-form values of pass 4 (all
 * classes w-form); sums: q = sum q, qw = sum q*v, u_size = max |v_j|.
 * Returns sum_j es_j * A_j, -inf when a class the teacher masks is one the
 * student does not (reverse KL), or the JSD row distance itself. */
typedef double (*kd_divstats_fn)(size_t n, const float *s, const float *t, float *es_q,
                                 float *et_v, const kd_ce_row *row, int jsd,
                                 kd_ce_sums *sums);
/* JSD by the direct pass (see jsd_passes.h), after pass 2, with c1 = beta zs/zt.
 * Returns sum_j term_j (<= 0 up to rounding; the row distance is -sum/zs)
 * and into sums the bound's sum; with grad, overwrites es with q_j and et
 * with v_j as divstats does and fills the gradient's sums. */
#define KD_JSD_FLOOR (-256.0f) /* y and zl clamp: exp of it is 0 */
#define KD_JSD_FAST_BETA 0.25f /* the gradient by the direct pass from this beta up */
/* JSD rows in double below these betas (div_passes.h): the loss, and the
 * gradient, which is O(beta) where lambda_j's error from d_j's rounding
 * (up to 2^-24 |A_j| where r_j >> q_j) is not. */
#define KD_JSD_F64_BETA 0x1p-16f
#define KD_JSD_F64_GRAD_BETA 0x1p-7f
typedef struct kd_jsd_sums {
  double bc;     /* sum_j (c1 et_j zl_j + c2 es_j y_j) */
  double q, qv;  /* grad: sum q, sum q*v */
  double qw;     /* grad: sum q_j w_j, w_j = |lambda_j| - y_j */
  float ql_max;  /* grad: max q_j |lambda_j| */
  float qw_max;  /* grad: max q_j w_j over the classes with es_j < 1 */
  float qw_top;  /* grad: and over those with es_j = 1 */
} kd_jsd_sums;
typedef double (*kd_jsdfast_fn)(size_t n, const float *s, const float *t, float *es_q,
                                float *et_v, const kd_ce_row *row, float c1, int grad,
                                kd_jsd_sums *sums);
/* BCE with logits: sum_j softplus(s_j) - sigmoid(t_j) s_j (non-finite for an
 * infinite input), and grad_j = scale * (sigmoid(s_j) - sigmoid(t_j)) (grad may be s). */
typedef double (*kd_bce_fn)(size_t n, const float *s, const float *t);
typedef double (*kd_bcegrad_fn)(size_t n, const float *s, const float *t,
                                float scale, float *grad);
/* MSE: sum_j (s_j - t_j)^2. */
typedef double (*kd_mse_fn)(size_t n, const float *s, const float *t);
/* MSE: the same sum, and grad_j = scale * (s_j - t_j) (grad may be s). */
typedef double (*kd_msegrad_fn)(size_t n, const float *s, const float *t,
                                float scale, float *grad);

/*
 * Short rows, n <= KD_SHORT_COLS (src/ce_short_passes.h): one call covers up
 * to KD_SHORT_ROWS rows, KD_LANES of them at a time, one row per lane. The
 * passes above run fused over a stack copy of the rows' columns, each row's
 * maxima, sums and flags held per lane: no per-row call, scratch round trip,
 * horizontal reduction or double sum, which cost more than the row's
 * arithmetic when it spans a vector or two. Every step is lane-wise, so a
 * row's result does not depend on which rows share its vector. Sums run in
 * float (a row is shorter than KD_BLOCK: the SIMD passes' own scheme).
 * Up to 64 classes: wider, the per-row passes are as fast on AVX2 (AVX-512
 * would still gain up to ~90 classes, by 15% at most; docs/design.md).
 */
#define KD_SHORT_COLS 64
#define KD_SHORT_ROWS 64
typedef struct kd_ce_short {
  size_t n;            /* classes per row */
  const float *s, *t;  /* row 0 of the call */
  size_t lds, ldt;
  float *grad;         /* row 0's gradient, or NULL for the loss only; may be s */
  size_t ldg;
  float inv_temp, grad_scale;
  int hot;             /* T > 1 (kdloss.c: only then can a shift overflow) */
} kd_ce_short;
/* What the short kernel says of each row. OK: loss[i] is the row's sum and
 * its gradient is written. NONFINITE: a NaN or +inf, or a side entirely
 * -inf. F64: the row loop must redo it in double (a gap between the maxima
 * beyond FLT_MAX; T > 1 with a maximum above 1e31, where the spread may
 * overflow; or a gradient that cancels beyond KD_COND_LIMIT). Only OK rows
 * have their gradient written, so in place the student of the others survives. */
enum { KD_ROW_OK, KD_ROW_NONFINITE, KD_ROW_F64 };
typedef void (*kd_ceshort_fn)(const kd_ce_short *a, size_t m, float *loss,
                              unsigned char *flag);

typedef struct kd_kernels {
  kd_isa isa;
  kd_rmax2_fn rmax2;
  kd_expsum2_fn expsum2;
  kd_expsum2rkl_fn expsum2rkl;
  kd_celoss_fn celoss;
  kd_cestats_fn cestats;
  kd_cegrad_fn cegrad;
  /* Reverse KL with its gradient, pass 3 (div_passes.h): pass 4 over es and
   * p from expsum2rkl, with q_j = es_j/zs and v_j = p_j/T + log(zs/zt),
   * every class w-form; grad may be p. Needs q_sum and qw_sum = sum q v in row. */
  kd_cegrad_fn rklgrad;
  kd_ceshort_fn ceshort;
  kd_klsum_fn klsum;
  kd_divloss_fn divloss;
  kd_divstats_fn divstats;
  kd_jsdfast_fn jsdfast;
  kd_mse_fn mse;
  kd_msegrad_fn msegrad;
  kd_bce_fn bce;
  kd_bcegrad_fn bcegrad;
} kd_kernels;

#define KD_DECLARE_KERNELS(isa)                                                      \
  int kd_f32_rmax2_##isa(size_t, const float *, const float *, float *, float *);   \
  size_t kd_f32_expsum2_##isa(size_t, const float *, const float *,                 \
                              const kd_ce_row *, float *, float *, double *, double *); \
  size_t kd_f32_expsum2rkl_##isa(size_t, const float *, const float *,              \
                                 const kd_ce_row *, float *, float *, double *, double *, \
                                 double *, float *);                                   \
  double kd_f32_celoss_##isa(size_t, const float *, const float *, const kd_ce_row *); \
  double kd_f32_cestats_##isa(size_t, const float *, const float *, float *,        \
                              float *, const kd_ce_row *, kd_ce_sums *);             \
  void kd_f32_cegrad_##isa(size_t, const float *, const float *, float *,           \
                           const kd_ce_row *, size_t, kd_grad_stats *);             \
  void kd_f32_rklgrad_##isa(size_t, const float *, const float *, float *,          \
                            const kd_ce_row *, size_t, kd_grad_stats *);            \
  void kd_f32_ceshort_##isa(const kd_ce_short *, size_t, float *, unsigned char *); \
  double kd_f32_klsum_##isa(size_t, const float *, const float *, const float *,    \
                            const float *, const kd_ce_row *, int, float *,          \
                            kd_grad_stats *);                                        \
  double kd_f32_divloss_##isa(size_t, const float *, const float *, const kd_ce_row *, \
                              int, double *, double *);                             \
  double kd_f32_divstats_##isa(size_t, const float *, const float *, float *,       \
                               float *, const kd_ce_row *, int, kd_ce_sums *);       \
  double kd_f32_jsdfast_##isa(size_t, const float *, const float *, float *, float *, \
                              const kd_ce_row *, float, int, kd_jsd_sums *);          \
  double kd_f32_mse_##isa(size_t, const float *, const float *);                    \
  double kd_f32_msegrad_##isa(size_t, const float *, const float *, float, float *); \
  double kd_f32_bce_##isa(size_t, const float *, const float *);                    \
  double kd_f32_bcegrad_##isa(size_t, const float *, const float *, float, float *);

KD_DECLARE_KERNELS(scalar)
KD_DECLARE_KERNELS(avx2)
KD_DECLARE_KERNELS(avx512)
KD_DECLARE_KERNELS(neon)

/* functable.c: the table in use (chosen on first use), and the one for an ISA
 * (NULL when this CPU or build lacks it). */
const kd_kernels *kd_kernels_current(void);
const kd_kernels *kd_kernels_for(kd_isa isa);

/* cpu_features.c: 1 if the running CPU (and OS) can execute isa. */
int kd_cpu_has(kd_isa isa);

#endif /* KD_KERNELS_H */
