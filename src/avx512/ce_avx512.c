/*
 * Cross-entropy row passes, AVX-512 (F+BW+DQ+VL) with SLEEF. Pass for pass the
 * structure of src/scalar/ce_scalar.c (see src/kernels.h for the math): the
 * same formulas, a float sum per KD_BLOCK elements joining a double.
 *
 * Vectors: KD_U independent accumulators per sum, KD_U vectors per step; the
 * last block's remainder (under KD_U vectors) goes through masked loads and
 * stores, so nothing past n is touched and no pointer needs alignment. Lanes
 * outside the mask are kept out of every sum and maximum explicitly.
 */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || \
    !defined(__AVX512VL__) || !defined(__AVX2__) || !defined(__FMA__)
#error "ce_avx512.c needs -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>
#include <math.h>
#include "kernels.h"
#include "vec_avx512.h"
/* Accumulators per sum. The cross-entropy passes wait on SLEEF, which is
 * called (libsleef is a shared library: every live vector is spilled around
 * each call), not on add latency. Measured, kernel alone, 1000 columns, ns
 * per element, three interleaved rounds on the shared 2-core machine:
 * AVX-512 expsum2 U=1 0.98-1.31, U=2 0.96-1.43, U=4 0.95-0.97; celoss
 * 0.45-0.62 for all; cestats 2.5-3.1 for all: noise. rmax2, loads and maxima
 * only, does gain: AVX2 U=1 0.21-0.22, U=2 0.15-0.16, U=4 0.14-0.17. So 2. */
#define KD_U 2

/*
 * log: the u35 variant. Measured on [1e-5, 1] (every float; q + 1e-5 lies
 * there): max relative error 2.6e-7 (u10: 6.5e-8). Each term r_j * log(q_j +
 * 1e-5) carries at most that relative error, far inside the 1e-5 contract; the
 * check program's worst |loss - ref| / tolerance was the same with either
 * (AVX-512 0.028, AVX2 0.036: the probabilities' own rounding dominates),
 * while celoss took 0.56-0.60 ns per element with u35 and 1.04-1.30 with u10
 * (AVX-512, 32000 columns; AVX2 1.36-1.54 against 1.94-2.60).
 */
#define kd_logf Sleef_logf16_u35avx512f
/*
 * exp: expf, not exp2f of x * log2(e)/T. exp2f is ~4 instructions shorter, and
 * measured 4-8% faster over whole calls (best of 25, 8 alternating rounds), but
 * the product with the rounded log2(e)/T adds one more rounding to every
 * argument, even where 1/T is exact: the worst gradient error of a 120-seed
 * random sweep (seeds 1-120, AVX-512) went from 0.58 to 0.75 of the
 * contract's bound. Not taken.
 */
#define kd_expf Sleef_expf16_u10avx512f

/* expm1 on |d| < KD_EXPM1_BAND only (kernels.h): d + d^2 (C2 + C3 d + ... +
 * C8 d^6), Horner with FMA. Outside the band (NaN and +-inf included) the
 * result is garbage that the caller never selects. */
static inline __m512 kd_expm1f_band(__m512 d) {
  __m512 p = _mm512_set1_ps(KD_EXPM1_C8);
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C7));
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C6));
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C5));
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C4));
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C3));
  p = _mm512_fmadd_ps(p, d, _mm512_set1_ps(KD_EXPM1_C2));
  return _mm512_fmadd_ps(p, _mm512_mul_ps(d, d), d);
}

#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

int kd_f32_rmax2_avx512(size_t n, const float *s, const float *t,
                        float *s_max, float *t_max) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), inf = _mm512_set1_ps(INFINITY);
  __m512 ms[KD_U], mt[KD_U];
  __mmask16 bad = 0;
  for (int k = 0; k < KD_U; k++) ms[k] = mt[k] = ninf;
  size_t j = 0;
  for (; j + KD_U * W <= n; j += KD_U * W) {
    for (int k = 0; k < KD_U; k++) {
      __m512 x = _mm512_loadu_ps(s + j + k * W), y = _mm512_loadu_ps(t + j + k * W);
      /* !(x < inf) is true for NaN and +inf alike. */
      bad |= _mm512_cmp_ps_mask(x, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(y, inf, _CMP_NLT_UQ);
      ms[k] = _mm512_max_ps(x, ms[k]);
      mt[k] = _mm512_max_ps(y, mt[k]);
    }
  }
  for (; j < n; j += W) {
    /* Lanes past n load as -inf: neither a maximum nor flagged. */
    __mmask16 m = kd_mask(n - j);
    __m512 x = _mm512_mask_loadu_ps(ninf, m, s + j), y = _mm512_mask_loadu_ps(ninf, m, t + j);
    bad |= _mm512_cmp_ps_mask(x, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(y, inf, _CMP_NLT_UQ);
    ms[0] = _mm512_max_ps(x, ms[0]);
    mt[0] = _mm512_max_ps(y, mt[0]);
  }
  for (int k = 1; k < KD_U; k++) {
    ms[0] = _mm512_max_ps(ms[0], ms[k]);
    mt[0] = _mm512_max_ps(mt[0], mt[k]);
  }
  *s_max = _mm512_reduce_max_ps(ms[0]);
  *t_max = _mm512_reduce_max_ps(mt[0]);
  return bad != 0;
}

size_t kd_f32_expsum2_avx512(size_t n, const float *s, const float *t,
                             const kd_ce_row *row, float *es, float *et,
                             double *zs, double *zt) {
  const __m512 smax = _mm512_set1_ps(row->s_max), tmax = _mm512_set1_ps(row->t_max);
  const __m512 it = _mm512_set1_ps(row->inv_temp);
  double ds = 0.0, dt = 0.0;
  size_t first = n;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 fs[KD_U], ft[KD_U];
    for (int k = 0; k < KD_U; k++) fs[k] = ft[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        if (i % 16 == 0) kd_prefetch_next(row, i);
        __m512 x = _mm512_loadu_ps(s + i), y = _mm512_loadu_ps(t + i);
        if (first == n) {
          __mmask16 e = _mm512_cmp_ps_mask(x, smax, _CMP_EQ_OQ);
          if (e) first = i + (size_t)__builtin_ctz(e);
        }
        __m512 a = kd_expf(_mm512_mul_ps(_mm512_sub_ps(x, smax), it));
        __m512 b = kd_expf(_mm512_mul_ps(_mm512_sub_ps(y, tmax), it));
        _mm512_storeu_ps(es + i, a);
        _mm512_storeu_ps(et + i, b);
        fs[k] = _mm512_add_ps(fs[k], a);
        ft[k] = _mm512_add_ps(ft[k], b);
      }
    }
    for (; j < end; j += W) {
      __mmask16 m = kd_mask(end - j);
      __m512 x = _mm512_maskz_loadu_ps(m, s + j), y = _mm512_maskz_loadu_ps(m, t + j);
      if (first == n) {
        __mmask16 e = _mm512_mask_cmp_ps_mask(m, x, smax, _CMP_EQ_OQ);
        if (e) first = j + (size_t)__builtin_ctz(e);
      }
      /* Lanes past end hold exp(-s_max/T), maybe inf: zeroed. */
      __m512 a = _mm512_maskz_mov_ps(m, kd_expf(_mm512_mul_ps(_mm512_sub_ps(x, smax), it)));
      __m512 b = _mm512_maskz_mov_ps(m, kd_expf(_mm512_mul_ps(_mm512_sub_ps(y, tmax), it)));
      _mm512_mask_storeu_ps(es + j, m, a);
      _mm512_mask_storeu_ps(et + j, m, b);
      fs[0] = _mm512_add_ps(fs[0], a);
      ft[0] = _mm512_add_ps(ft[0], b);
    }
    ds += kd_hsum_acc(fs);
    dt += kd_hsum_acc(ft);
  }
  *zs = ds;
  *zt = dt;
  return first;
}

double kd_f32_celoss_avx512(size_t n, const float *es, const float *et,
                            const kd_ce_row *row) {
  const __m512 izs = _mm512_set1_ps(row->inv_zs), izt = _mm512_set1_ps(row->inv_zt);
  const __m512 eps = _mm512_set1_ps(KD_EPS);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m512 q = _mm512_mul_ps(_mm512_loadu_ps(es + i), izs);
        __m512 r = _mm512_mul_ps(_mm512_loadu_ps(et + i), izt);
        f[k] = _mm512_fmadd_ps(r, kd_logf(_mm512_add_ps(q, eps)), f[k]);
      }
    }
    for (; j < end; j += W) {
      __mmask16 m = kd_mask(end - j);
      __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, es + j), izs);
      __m512 r = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, et + j), izt);
      f[0] = _mm512_mask3_fmadd_ps(r, kd_logf(_mm512_add_ps(q, eps)), f[0], m);
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

/* One vector of pass 3b: the signed q and w-or-u into *q_out, *v_out; adds
 * to the four sums and to the u_size maximum in lanes m. */
static inline void kd_cestats_vec(__m512 x, __m512 y, __m512 e_s, __m512 e_t,
                                  const kd_ce_row *row, __mmask16 m, __m512 *q_out,
                                  __m512 *v_out, __m512 *f, __m512 *fq, __m512 *fqw,
                                  __m512 *fqu, __m512 *u_size) {
  const __m512 eps = _mm512_set1_ps(KD_EPS);
  __m512 q = _mm512_mul_ps(e_s, _mm512_set1_ps(row->inv_zs));
  __m512 r = _mm512_mul_ps(e_t, _mm512_set1_ps(row->inv_zt));
  /* t_j - s_j as a TwoSum pair: exact at any offset between the two. */
  __m512 a = _mm512_sub_ps(y, x), bb = _mm512_sub_ps(a, y);
  __m512 a_lo = _mm512_add_ps(_mm512_sub_ps(y, _mm512_sub_ps(a, bb)),
                              _mm512_sub_ps(_mm512_xor_ps(x, _mm512_set1_ps(-0.0f)), bb));
  __m512 d = _mm512_fmadd_ps(
      _mm512_add_ps(_mm512_sub_ps(a, _mm512_set1_ps(row->max_gap)),
                    _mm512_sub_ps(a_lo, _mm512_set1_ps(row->max_gap_lo))),
      _mm512_set1_ps(row->inv_temp), _mm512_set1_ps(row->log_zs_zt));
  /* The scalar ternary as a select: the polynomial of NaN or +-inf (masked
   * classes, lanes past n) is computed but never chosen. */
  __mmask16 band = _mm512_cmp_ps_mask(_mm512_abs_ps(d), _mm512_set1_ps(KD_EXPM1_BAND),
                                      _CMP_LT_OQ);
  __m512 diff = _mm512_mask_mov_ps(_mm512_sub_ps(q, r), band,
                                   _mm512_fnmadd_ps(q, kd_expm1f_band(d), _mm512_setzero_ps()));
  /* A division: rcp14 + one Newton step (max error 0.53 ulp) was measured no
   * faster, cestats 1.112 vs 1.119 ns per element (1000 columns, in cache);
   * neither was a log-only loop per block ahead of this body to avoid the
   * spills around the SLEEF call (5%, AVX2 none), nor -fno-plt (within noise). */
  __m512 rcp = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(q, eps));
  __m512 w = _mm512_mul_ps(r, rcp), u = _mm512_mul_ps(_mm512_add_ps(diff, eps), rcp);
  *f = _mm512_mask3_fmadd_ps(r, kd_logf(_mm512_add_ps(q, eps)), *f, m);
  *fq = _mm512_mask_add_ps(*fq, m, *fq, q);
  *fqw = _mm512_mask3_fmadd_ps(q, w, *fqw, m);
  *fqu = _mm512_mask3_fmadd_ps(q, u, *fqu, m);
  __mmask16 u_form = _mm512_cmp_ps_mask(w, _mm512_set1_ps(0.5f), _CMP_GT_OQ);
  /* max(x, m) keeps m when x is NaN, as the scalar "x > m ? x : m". */
  __m512 size = _mm512_mul_ps(_mm512_mul_ps(q, _mm512_add_ps(_mm512_abs_ps(diff), eps)), rcp);
  *u_size = _mm512_mask_max_ps(*u_size, u_form & m, size, *u_size);
  /* -q by the sign bit, so a q of +0 becomes -0 and still marks the u-form. */
  *q_out = _mm512_mask_xor_ps(q, u_form, q, _mm512_set1_ps(-0.0f));
  *v_out = _mm512_mask_mov_ps(w, u_form, u);
}

double kd_f32_cestats_avx512(size_t n, const float *s, const float *t, float *es_q,
                             float *et_v, const kd_ce_row *row, kd_ce_sums *sums) {
  double sum = 0.0, dq = 0.0, dqw = 0.0, dqu = 0.0;
  __m512 u_size = _mm512_setzero_ps();
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 f[KD_U], fq[KD_U], fqw[KD_U], fqu[KD_U], q, v;
    for (int k = 0; k < KD_U; k++) f[k] = fq[k] = fqw[k] = fqu[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        kd_cestats_vec(_mm512_loadu_ps(s + i), _mm512_loadu_ps(t + i),
                       _mm512_loadu_ps(es_q + i), _mm512_loadu_ps(et_v + i), row,
                       (__mmask16)0xffff, &q, &v, &f[k], &fq[k], &fqw[k], &fqu[k], &u_size);
        _mm512_storeu_ps(es_q + i, q);
        _mm512_storeu_ps(et_v + i, v);
      }
    }
    for (; j < end; j += W) {
      __mmask16 m = kd_mask(end - j);
      kd_cestats_vec(_mm512_maskz_loadu_ps(m, s + j), _mm512_maskz_loadu_ps(m, t + j),
                     _mm512_maskz_loadu_ps(m, es_q + j), _mm512_maskz_loadu_ps(m, et_v + j),
                     row, m, &q, &v, &f[0], &fq[0], &fqw[0], &fqu[0], &u_size);
      _mm512_mask_storeu_ps(es_q + j, m, q);
      _mm512_mask_storeu_ps(et_v + j, m, v);
    }
    sum += kd_hsum_acc(f);
    dq += kd_hsum_acc(fq);
    dqw += kd_hsum_acc(fqw);
    dqu += kd_hsum_acc(fqu);
  }
  sums->q = dq;
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = _mm512_reduce_max_ps(u_size);
  return sum;
}

/* Lanes of the vector at j that join the returned sum: all but skip. */
static inline __mmask16 kd_keep(size_t skip, size_t j) {
  return skip - j < W ? (__mmask16) ~(1u << (skip - j)) : (__mmask16)0xffff;
}

/* One vector of pass 4: the sign of q_signed picks the form; *e gets the size
 * of the terms the bracket cancels from, scaled like the gradient. */
static inline __m512 kd_cegrad_vec(__m512 q_signed, __m512 v, const kd_ce_row *row,
                                   __m512 *e) {
  __m512 qs = _mm512_set1_ps(row->q_sum);
  __mmask16 u_form = _mm512_movepi32_mask(_mm512_castps_si512(q_signed));
  __m512 b_u = _mm512_fmsub_ps(v, qs, _mm512_set1_ps(row->qu_sum));
  __m512 b_w = _mm512_fnmadd_ps(v, qs, _mm512_set1_ps(row->qw_sum));
  __m512 b = _mm512_mask_mov_ps(b_w, u_form, b_u);
  __m512 sum = _mm512_mask_mov_ps(_mm512_set1_ps(fabsf(row->qw_sum)), u_form,
                                  _mm512_set1_ps(fabsf(row->qu_sum)));
  __m512 size = _mm512_fmadd_ps(_mm512_abs_ps(v), qs, sum);
  __m512 q = _mm512_abs_ps(q_signed);
  *e = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(fabsf(row->grad_scale)), q), size);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(row->grad_scale), q), b);
}

void kd_f32_cegrad_avx512(size_t n, const float *q_signed, const float *v, float *grad,
                          const kd_ce_row *row_in, size_t skip, kd_grad_stats *stats) {
  /* A local copy of *row: grad is a float * and could alias its float
   * fields, so without it every field was reloaded after every store.
   * Measured, kernel alone, 1000 columns, in cache, min of 300 x 200 calls:
   * AVX-512 0.281 -> 0.234 ns per element, AVX2 0.584 -> 0.460. */
  const kd_ce_row row_copy = *row_in, *row = &row_copy;
  double others = 0.0;
  __m512 max_abs = _mm512_setzero_ps(), max_err = _mm512_setzero_ps();
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m512 f[KD_U], e;
    for (int k = 0; k < KD_U; k++) f[k] = _mm512_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m512 g = kd_cegrad_vec(_mm512_loadu_ps(q_signed + i), _mm512_loadu_ps(v + i),
                                 row, &e);
        _mm512_storeu_ps(grad + i, g);
        /* max(x, m) keeps m when x is NaN, as the scalar "x > m ? x : m". */
        __mmask16 keep = kd_keep(skip, i);
        f[k] = _mm512_mask_add_ps(f[k], keep, f[k], g);
        max_abs = _mm512_mask_max_ps(max_abs, keep, _mm512_abs_ps(g), max_abs);
        max_err = _mm512_mask_max_ps(max_err, keep, e, max_err);
      }
    }
    for (; j < end; j += W) {
      __mmask16 m = kd_mask(end - j);
      __m512 g = kd_cegrad_vec(_mm512_maskz_loadu_ps(m, q_signed + j),
                               _mm512_maskz_loadu_ps(m, v + j), row, &e);
      _mm512_mask_storeu_ps(grad + j, m, g);
      __mmask16 keep = m & kd_keep(skip, j);
      f[0] = _mm512_mask_add_ps(f[0], keep, f[0], g);
      max_abs = _mm512_mask_max_ps(max_abs, keep, _mm512_abs_ps(g), max_abs);
      max_err = _mm512_mask_max_ps(max_err, keep, e, max_err);
    }
    others += kd_hsum_acc(f);
  }
  stats->others = others;
  stats->max_abs = _mm512_reduce_max_ps(max_abs);
  stats->max_err = _mm512_reduce_max_ps(max_err);
}
