/*
 * Cross-entropy row passes, AVX2 + FMA with SLEEF. Pass for pass the
 * structure of src/scalar/ce_scalar.c (see src/kernels.h for the math), and
 * line for line that of src/avx512/ce_avx512.c: the same formulas, a float sum
 * per KD_BLOCK elements joining a double.
 *
 * Vectors: KD_U independent accumulators per sum, KD_U vectors per step; the
 * last block's remainder (under KD_U vectors) goes through maskload and
 * maskstore, so nothing past n is touched and no pointer needs alignment.
 * Lanes outside the mask are kept out of every sum and maximum explicitly.
 */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "ce_avx2.c needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#include <sleef.h>
#include <math.h>
#include "kernels.h"
#include "vec_avx2.h"
/* Accumulators per sum: see ce_avx512.c. */
#define KD_U 2

/* log: the u35 variant; see ce_avx512.c for the measurements (AVX2 celoss
 * 1.36-1.54 ns per element with u35, 1.94-2.60 with u10, same worst error). */
#define kd_logf Sleef_logf8_u35avx2
#define kd_expf Sleef_expf8_u10avx2 /* not exp2f: see ce_avx512.c */

/* expm1 on |d| < KD_EXPM1_BAND only: see ce_avx512.c. */
static inline __m256 kd_expm1f_band(__m256 d) {
  __m256 p = _mm256_set1_ps(KD_EXPM1_C8);
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C7));
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C6));
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C5));
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C4));
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C3));
  p = _mm256_fmadd_ps(p, d, _mm256_set1_ps(KD_EXPM1_C2));
  return _mm256_fmadd_ps(p, _mm256_mul_ps(d, d), d);
}

#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

static inline float kd_hmax(__m256 v) {
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

int kd_f32_rmax2_avx2(size_t n, const float *s, const float *t,
                      float *s_max, float *t_max) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY), inf = _mm256_set1_ps(INFINITY);
  __m256 ms[KD_U], mt[KD_U];
  __m256 bad = _mm256_setzero_ps();
  for (int k = 0; k < KD_U; k++) ms[k] = mt[k] = ninf;
  size_t j = 0;
  for (; j + KD_U * W <= n; j += KD_U * W) {
    for (int k = 0; k < KD_U; k++) {
      __m256 x = _mm256_loadu_ps(s + j + k * W), y = _mm256_loadu_ps(t + j + k * W);
      /* !(x < inf) is true for NaN and +inf alike. */
      bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(x, inf, _CMP_NLT_UQ),
                                           _mm256_cmp_ps(y, inf, _CMP_NLT_UQ)));
      ms[k] = _mm256_max_ps(x, ms[k]);
      mt[k] = _mm256_max_ps(y, mt[k]);
    }
  }
  for (; j < n; j += W) {
    /* Lanes past n become -inf: neither a maximum nor flagged. */
    __m256i m = kd_mask(n - j);
    __m256 x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(s + j, m), _mm256_castsi256_ps(m));
    __m256 y = _mm256_blendv_ps(ninf, _mm256_maskload_ps(t + j, m), _mm256_castsi256_ps(m));
    bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(x, inf, _CMP_NLT_UQ),
                                         _mm256_cmp_ps(y, inf, _CMP_NLT_UQ)));
    ms[0] = _mm256_max_ps(x, ms[0]);
    mt[0] = _mm256_max_ps(y, mt[0]);
  }
  for (int k = 1; k < KD_U; k++) {
    ms[0] = _mm256_max_ps(ms[0], ms[k]);
    mt[0] = _mm256_max_ps(mt[0], mt[k]);
  }
  *s_max = kd_hmax(ms[0]);
  *t_max = kd_hmax(mt[0]);
  return _mm256_movemask_ps(bad) != 0;
}

size_t kd_f32_expsum2_avx2(size_t n, const float *s, const float *t,
                           const kd_ce_row *row, float *es, float *et,
                           double *zs, double *zt) {
  const __m256 smax = _mm256_set1_ps(row->s_max), tmax = _mm256_set1_ps(row->t_max);
  const __m256 it = _mm256_set1_ps(row->inv_temp);
  double ds = 0.0, dt = 0.0;
  size_t first = n;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 fs[KD_U], ft[KD_U];
    for (int k = 0; k < KD_U; k++) fs[k] = ft[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        if (i % 16 == 0) kd_prefetch_next(row, i);
        __m256 x = _mm256_loadu_ps(s + i), y = _mm256_loadu_ps(t + i);
        if (first == n) {
          int e = _mm256_movemask_ps(_mm256_cmp_ps(x, smax, _CMP_EQ_OQ));
          if (e) first = i + (size_t)__builtin_ctz((unsigned)e);
        }
        __m256 a = kd_expf(_mm256_mul_ps(_mm256_sub_ps(x, smax), it));
        __m256 b = kd_expf(_mm256_mul_ps(_mm256_sub_ps(y, tmax), it));
        _mm256_storeu_ps(es + i, a);
        _mm256_storeu_ps(et + i, b);
        fs[k] = _mm256_add_ps(fs[k], a);
        ft[k] = _mm256_add_ps(ft[k], b);
      }
    }
    for (; j < end; j += W) {
      __m256i m = kd_mask(end - j);
      __m256 mf = _mm256_castsi256_ps(m);
      __m256 x = _mm256_maskload_ps(s + j, m), y = _mm256_maskload_ps(t + j, m);
      if (first == n) {
        int e = _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(x, smax, _CMP_EQ_OQ), mf));
        if (e) first = j + (size_t)__builtin_ctz((unsigned)e);
      }
      /* Lanes past end hold exp(-s_max/T), maybe inf: zeroed. */
      __m256 a = _mm256_and_ps(mf, kd_expf(_mm256_mul_ps(_mm256_sub_ps(x, smax), it)));
      __m256 b = _mm256_and_ps(mf, kd_expf(_mm256_mul_ps(_mm256_sub_ps(y, tmax), it)));
      _mm256_maskstore_ps(es + j, m, a);
      _mm256_maskstore_ps(et + j, m, b);
      fs[0] = _mm256_add_ps(fs[0], a);
      ft[0] = _mm256_add_ps(ft[0], b);
    }
    ds += kd_hsum_acc(fs);
    dt += kd_hsum_acc(ft);
  }
  *zs = ds;
  *zt = dt;
  return first;
}

double kd_f32_celoss_avx2(size_t n, const float *es, const float *et,
                          const kd_ce_row *row) {
  const __m256 izs = _mm256_set1_ps(row->inv_zs), izt = _mm256_set1_ps(row->inv_zt);
  const __m256 eps = _mm256_set1_ps(KD_EPS);
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m256 q = _mm256_mul_ps(_mm256_loadu_ps(es + i), izs);
        __m256 r = _mm256_mul_ps(_mm256_loadu_ps(et + i), izt);
        f[k] = _mm256_fmadd_ps(r, kd_logf(_mm256_add_ps(q, eps)), f[k]);
      }
    }
    for (; j < end; j += W) {
      __m256i m = kd_mask(end - j);
      __m256 q = _mm256_mul_ps(_mm256_maskload_ps(es + j, m), izs);
      __m256 r = _mm256_mul_ps(_mm256_maskload_ps(et + j, m), izt);
      f[0] = _mm256_blendv_ps(f[0], _mm256_fmadd_ps(r, kd_logf(_mm256_add_ps(q, eps)), f[0]),
                              _mm256_castsi256_ps(m));
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

/* One vector of pass 3b: the signed q and w-or-u into *q_out, *v_out; adds
 * to the four sums and to the u_size maximum in lanes m. */
static inline void kd_cestats_vec(__m256 x, __m256 y, __m256 e_s, __m256 e_t,
                                  const kd_ce_row *row, __m256 m, __m256 *q_out,
                                  __m256 *v_out, __m256 *f, __m256 *fq, __m256 *fqw,
                                  __m256 *fqu, __m256 *u_size) {
  const __m256 eps = _mm256_set1_ps(KD_EPS), sign = _mm256_set1_ps(-0.0f);
  __m256 q = _mm256_mul_ps(e_s, _mm256_set1_ps(row->inv_zs));
  __m256 r = _mm256_mul_ps(e_t, _mm256_set1_ps(row->inv_zt));
  /* t_j - s_j as a TwoSum pair: exact at any offset between the two. */
  __m256 a = _mm256_sub_ps(y, x), bb = _mm256_sub_ps(a, y);
  __m256 a_lo = _mm256_add_ps(_mm256_sub_ps(y, _mm256_sub_ps(a, bb)),
                              _mm256_sub_ps(_mm256_xor_ps(x, sign), bb));
  __m256 d = _mm256_fmadd_ps(
      _mm256_add_ps(_mm256_sub_ps(a, _mm256_set1_ps(row->max_gap)),
                    _mm256_sub_ps(a_lo, _mm256_set1_ps(row->max_gap_lo))),
      _mm256_set1_ps(row->inv_temp), _mm256_set1_ps(row->log_zs_zt));
  /* The scalar ternary as a select: the polynomial of NaN or +-inf (masked
   * classes, lanes past n) is computed but never chosen. */
  __m256 band = _mm256_cmp_ps(_mm256_andnot_ps(sign, d), _mm256_set1_ps(KD_EXPM1_BAND),
                              _CMP_LT_OQ);
  __m256 diff = _mm256_blendv_ps(_mm256_sub_ps(q, r),
                                 _mm256_fnmadd_ps(q, kd_expm1f_band(d), _mm256_setzero_ps()), band);
  /* A division: rcp_ps needs two Newton steps to match it (one leaves 1.96
   * ulp), and measured no faster (cestats 2.07 vs 2.14 ns per element). */
  __m256 rcp = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(q, eps));
  __m256 w = _mm256_mul_ps(r, rcp), u = _mm256_mul_ps(_mm256_add_ps(diff, eps), rcp);
  *f = _mm256_blendv_ps(*f, _mm256_fmadd_ps(r, kd_logf(_mm256_add_ps(q, eps)), *f), m);
  *fq = _mm256_blendv_ps(*fq, _mm256_add_ps(*fq, q), m);
  *fqw = _mm256_blendv_ps(*fqw, _mm256_fmadd_ps(q, w, *fqw), m);
  *fqu = _mm256_blendv_ps(*fqu, _mm256_fmadd_ps(q, u, *fqu), m);
  __m256 u_form = _mm256_cmp_ps(w, _mm256_set1_ps(0.5f), _CMP_GT_OQ);
  /* max(x, m) keeps m when x is NaN, as the scalar "x > m ? x : m". */
  __m256 size = _mm256_mul_ps(_mm256_mul_ps(q, _mm256_add_ps(_mm256_andnot_ps(sign, diff), eps)),
                              rcp);
  *u_size = _mm256_blendv_ps(*u_size, _mm256_max_ps(size, *u_size), _mm256_and_ps(u_form, m));
  /* -q by the sign bit, so a q of +0 becomes -0 and still marks the u-form. */
  *q_out = _mm256_xor_ps(q, _mm256_and_ps(u_form, sign));
  *v_out = _mm256_blendv_ps(w, u, u_form);
}

double kd_f32_cestats_avx2(size_t n, const float *s, const float *t, float *es_q,
                           float *et_v, const kd_ce_row *row, kd_ce_sums *sums) {
  const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  double sum = 0.0, dq = 0.0, dqw = 0.0, dqu = 0.0;
  __m256 u_size = _mm256_setzero_ps();
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 f[KD_U], fq[KD_U], fqw[KD_U], fqu[KD_U], q, v;
    for (int k = 0; k < KD_U; k++) f[k] = fq[k] = fqw[k] = fqu[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        kd_cestats_vec(_mm256_loadu_ps(s + i), _mm256_loadu_ps(t + i),
                       _mm256_loadu_ps(es_q + i), _mm256_loadu_ps(et_v + i), row,
                       all, &q, &v, &f[k], &fq[k], &fqw[k], &fqu[k], &u_size);
        _mm256_storeu_ps(es_q + i, q);
        _mm256_storeu_ps(et_v + i, v);
      }
    }
    for (; j < end; j += W) {
      __m256i m = kd_mask(end - j);
      kd_cestats_vec(_mm256_maskload_ps(s + j, m), _mm256_maskload_ps(t + j, m),
                     _mm256_maskload_ps(es_q + j, m), _mm256_maskload_ps(et_v + j, m),
                     row, _mm256_castsi256_ps(m), &q, &v, &f[0], &fq[0], &fqw[0], &fqu[0],
                     &u_size);
      _mm256_maskstore_ps(es_q + j, m, q);
      _mm256_maskstore_ps(et_v + j, m, v);
    }
    sum += kd_hsum_acc(f);
    dq += kd_hsum_acc(fq);
    dqw += kd_hsum_acc(fqw);
    dqu += kd_hsum_acc(fqu);
  }
  sums->q = dq;
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = kd_hmax(u_size);
  return sum;
}

/* Lanes of the vector at j that join the returned sum: all but skip. */
static inline __m256 kd_keep(size_t skip, size_t j) {
  __m256i lane = _mm256_set1_epi32(skip - j < W ? (int)(skip - j) : -1);
  __m256i hit = _mm256_cmpeq_epi32(lane, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_castsi256_ps(_mm256_xor_si256(hit, _mm256_set1_epi32(-1)));
}

/* One vector of pass 4: the sign of q_signed picks the form; *e gets the size
 * of the terms the bracket cancels from, scaled like the gradient. */
static inline __m256 kd_cegrad_vec(__m256 q_signed, __m256 v, const kd_ce_row *row,
                                   __m256 *e) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 qs = _mm256_set1_ps(row->q_sum);
  __m256 b_u = _mm256_fmsub_ps(v, qs, _mm256_set1_ps(row->qu_sum));
  __m256 b_w = _mm256_fnmadd_ps(v, qs, _mm256_set1_ps(row->qw_sum));
  __m256 b = _mm256_blendv_ps(b_w, b_u, q_signed); /* blendv reads the sign bit */
  __m256 sum = _mm256_blendv_ps(_mm256_set1_ps(fabsf(row->qw_sum)),
                                _mm256_set1_ps(fabsf(row->qu_sum)), q_signed);
  __m256 size = _mm256_fmadd_ps(_mm256_andnot_ps(sign, v), qs, sum);
  __m256 q = _mm256_andnot_ps(sign, q_signed);
  *e = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(fabsf(row->grad_scale)), q), size);
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(row->grad_scale), q), b);
}

void kd_f32_cegrad_avx2(size_t n, const float *q_signed, const float *v, float *grad,
                        const kd_ce_row *row_in, size_t skip, kd_grad_stats *stats) {
  /* A local copy of *row: see kd_f32_cegrad_avx512. */
  const kd_ce_row row_copy = *row_in, *row = &row_copy;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  double others = 0.0;
  __m256 max_abs = _mm256_setzero_ps(), max_err = _mm256_setzero_ps();
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    __m256 f[KD_U], e;
    for (int k = 0; k < KD_U; k++) f[k] = _mm256_setzero_ps();
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        __m256 g = kd_cegrad_vec(_mm256_loadu_ps(q_signed + i), _mm256_loadu_ps(v + i),
                                 row, &e);
        _mm256_storeu_ps(grad + i, g);
        __m256 keep = kd_keep(skip, i);
        f[k] = _mm256_add_ps(f[k], _mm256_and_ps(keep, g));
        /* Both maxima start at 0 and take values >= 0: lanes zeroed drop out;
         * max(x, m) keeps m when x is NaN, as the scalar "x > m ? x : m". */
        max_abs = _mm256_max_ps(_mm256_and_ps(keep, _mm256_andnot_ps(sign, g)), max_abs);
        max_err = _mm256_max_ps(_mm256_and_ps(keep, e), max_err);
      }
    }
    for (; j < end; j += W) {
      __m256i m = kd_mask(end - j);
      __m256 g = kd_cegrad_vec(_mm256_maskload_ps(q_signed + j, m),
                               _mm256_maskload_ps(v + j, m), row, &e);
      _mm256_maskstore_ps(grad + j, m, g);
      __m256 keep = _mm256_and_ps(_mm256_castsi256_ps(m), kd_keep(skip, j));
      f[0] = _mm256_add_ps(f[0], _mm256_and_ps(keep, g));
      max_abs = _mm256_max_ps(_mm256_and_ps(keep, _mm256_andnot_ps(sign, g)), max_abs);
      max_err = _mm256_max_ps(_mm256_and_ps(keep, e), max_err);
    }
    others += kd_hsum_acc(f);
  }
  stats->others = others;
  stats->max_abs = kd_hmax(max_abs);
  stats->max_err = kd_hmax(max_err);
}
