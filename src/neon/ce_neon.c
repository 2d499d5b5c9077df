/*
 * Cross-entropy row passes, aarch64 AdvSIMD with SLEEF. Pass for pass the
 * structure of src/scalar/ce_scalar.c (see src/kernels.h for the math), and
 * line for line that of src/avx2/ce_avx2.c: the same formulas, a float sum per
 * KD_BLOCK elements joining a double.
 *
 * Vectors: KD_U independent accumulators per sum, KD_U vectors per step, then
 * single vectors. AdvSIMD has no masked loads or stores, so the last partial
 * vector of a row (under W elements) goes through a padded stack buffer
 * (vec_neon.h): nothing past n is touched and no pointer needs alignment. The
 * padding is chosen per pass so that its lanes add nothing to any sum or
 * maximum: -inf logits in passes 1-2 (exp(-inf) = 0), zero q and r after.
 */
#if !defined(__ARM_NEON)
#error "ce_neon.c needs AdvSIMD (__ARM_NEON; baseline on aarch64)"
#endif
#include <arm_neon.h>
#include <sleef.h>
#include <math.h>
#include "kernels.h"
#include "vec_neon.h"

/* Accumulators per sum: as on x86 (see ce_avx512.c), the passes wait on SLEEF
 * calls, and 2 keeps two independent call chains in flight. */
#define KD_U 2

/* log: the u35 variant, as on x86 (accuracy argument in ce_avx512.c). */
#define kd_logf Sleef_logf4_u35advsimd
#define kd_expf Sleef_expf4_u10advsimd

/* expm1 on |d| < KD_EXPM1_BAND only: see ce_avx512.c. */
static inline float32x4_t kd_expm1f_band(float32x4_t d) {
  float32x4_t p = vdupq_n_f32(KD_EXPM1_C8);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C7), p, d);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C6), p, d);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C5), p, d);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C4), p, d);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C3), p, d);
  p = vfmaq_f32(vdupq_n_f32(KD_EXPM1_C2), p, d);
  return vfmaq_f32(d, p, vmulq_f32(d, d));
}

#define kd_hsum_acc(acc) kd_hsum_n((acc), KD_U)

/* One vector of pass 1. */
static inline void kd_rmax2_vec(float32x4_t x, float32x4_t y, float32x4_t *ms,
                                float32x4_t *mt, uint32x4_t *ok) {
  const float32x4_t inf = vdupq_n_f32(INFINITY);
  /* x < inf is false for NaN and +inf alike. */
  *ok = vandq_u32(*ok, vandq_u32(vcltq_f32(x, inf), vcltq_f32(y, inf)));
  *ms = vmaxq_f32(x, *ms);
  *mt = vmaxq_f32(y, *mt);
}

int kd_f32_rmax2_neon(size_t n, const float *s, const float *t,
                      float *s_max, float *t_max) {
  float32x4_t ms[KD_U], mt[KD_U];
  uint32x4_t ok = vdupq_n_u32(~0u);
  for (int k = 0; k < KD_U; k++) ms[k] = mt[k] = vdupq_n_f32(-INFINITY);
  size_t j = 0;
  for (; j + KD_U * W <= n; j += KD_U * W) {
    for (int k = 0; k < KD_U; k++)
      kd_rmax2_vec(vld1q_f32(s + j + k * W), vld1q_f32(t + j + k * W), &ms[k], &mt[k], &ok);
  }
  for (; j + W <= n; j += W) kd_rmax2_vec(vld1q_f32(s + j), vld1q_f32(t + j), &ms[0], &mt[0], &ok);
  if (j < n) /* lanes past n are -inf: neither a maximum nor flagged */
    kd_rmax2_vec(kd_neon_load_tail(s + j, n - j, -INFINITY),
                 kd_neon_load_tail(t + j, n - j, -INFINITY), &ms[0], &mt[0], &ok);
  for (int k = 1; k < KD_U; k++) {
    ms[0] = vmaxq_f32(ms[0], ms[k]);
    mt[0] = vmaxq_f32(mt[0], mt[k]);
  }
  *s_max = vmaxvq_f32(ms[0]);
  *t_max = vmaxvq_f32(mt[0]);
  return vminvq_u32(ok) == 0;
}

/* The first of k lanes of x equal to s_max, as an index from j; n if none. */
static inline size_t kd_first_eq(float32x4_t x, float s_max, size_t j, size_t k, size_t n) {
  if (vmaxvq_u32(vceqq_f32(x, vdupq_n_f32(s_max))) == 0) return n;
  float b[W];
  vst1q_f32(b, x);
  for (size_t i = 0; i < k; i++)
    if (b[i] == s_max) return j + i;
  return n;
}

/* One vector of pass 2: es, et into *a, *b; adds them to *fs, *ft. */
static inline void kd_expsum2_vec(float32x4_t x, float32x4_t y, const kd_ce_row *row,
                                  float32x4_t *a, float32x4_t *b, float32x4_t *fs,
                                  float32x4_t *ft) {
  const float32x4_t it = vdupq_n_f32(row->inv_temp);
  *a = kd_expf(vmulq_f32(vsubq_f32(x, vdupq_n_f32(row->s_max)), it));
  *b = kd_expf(vmulq_f32(vsubq_f32(y, vdupq_n_f32(row->t_max)), it));
  *fs = vaddq_f32(*fs, *a);
  *ft = vaddq_f32(*ft, *b);
}

size_t kd_f32_expsum2_neon(size_t n, const float *s, const float *t,
                           const kd_ce_row *row, float *es, float *et,
                           double *zs, double *zt) {
  double ds = 0.0, dt = 0.0;
  size_t first = n;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t fs[KD_U], ft[KD_U], a, b;
    for (int k = 0; k < KD_U; k++) fs[k] = ft[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        if (i % 16 == 0) kd_prefetch_next(row, i);
        float32x4_t x = vld1q_f32(s + i);
        if (first == n) first = kd_first_eq(x, row->s_max, i, W, n);
        kd_expsum2_vec(x, vld1q_f32(t + i), row, &a, &b, &fs[k], &ft[k]);
        vst1q_f32(es + i, a);
        vst1q_f32(et + i, b);
      }
    }
    for (; j + W <= end; j += W) {
      float32x4_t x = vld1q_f32(s + j);
      if (first == n) first = kd_first_eq(x, row->s_max, j, W, n);
      kd_expsum2_vec(x, vld1q_f32(t + j), row, &a, &b, &fs[0], &ft[0]);
      vst1q_f32(es + j, a);
      vst1q_f32(et + j, b);
    }
    if (j < end) {
      size_t k = end - j;
      float32x4_t x = kd_neon_load_tail(s + j, k, -INFINITY);
      if (first == n) first = kd_first_eq(x, row->s_max, j, k, n);
      kd_expsum2_vec(x, kd_neon_load_tail(t + j, k, -INFINITY), row, &a, &b, &fs[0], &ft[0]);
      kd_neon_store_tail(es + j, k, a);
      kd_neon_store_tail(et + j, k, b);
      j = end;
    }
    ds += kd_hsum_acc(fs);
    dt += kd_hsum_acc(ft);
  }
  *zs = ds;
  *zt = dt;
  return first;
}

/* One vector of pass 3a, added to f. */
static inline float32x4_t kd_celoss_vec(float32x4_t e_s, float32x4_t e_t, const kd_ce_row *row,
                                        float32x4_t f) {
  float32x4_t q = vmulq_f32(e_s, vdupq_n_f32(row->inv_zs));
  float32x4_t r = vmulq_f32(e_t, vdupq_n_f32(row->inv_zt));
  return vfmaq_f32(f, r, kd_logf(vaddq_f32(q, vdupq_n_f32(KD_EPS))));
}

double kd_f32_celoss_neon(size_t n, const float *es, const float *et,
                          const kd_ce_row *row) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        f[k] = kd_celoss_vec(vld1q_f32(es + i), vld1q_f32(et + i), row, f[k]);
      }
    }
    for (; j + W <= end; j += W) f[0] = kd_celoss_vec(vld1q_f32(es + j), vld1q_f32(et + j), row, f[0]);
    if (j < end) { /* padding: q = r = 0, so r * log(eps) = 0 */
      f[0] = kd_celoss_vec(kd_neon_load_tail(es + j, end - j, 0.0f),
                           kd_neon_load_tail(et + j, end - j, 0.0f), row, f[0]);
      j = end;
    }
    sum += kd_hsum_acc(f);
  }
  return sum;
}

/* One vector of pass 3b: the signed q and w-or-u into *q_out, *v_out; adds to
 * the four sums and to the u_size maximum. */
static inline void kd_cestats_vec(float32x4_t x, float32x4_t y, float32x4_t e_s,
                                  float32x4_t e_t, const kd_ce_row *row, float32x4_t *q_out,
                                  float32x4_t *v_out, float32x4_t *f, float32x4_t *fq,
                                  float32x4_t *fqw, float32x4_t *fqu, float32x4_t *u_size) {
  const float32x4_t eps = vdupq_n_f32(KD_EPS);
  float32x4_t q = vmulq_f32(e_s, vdupq_n_f32(row->inv_zs));
  float32x4_t r = vmulq_f32(e_t, vdupq_n_f32(row->inv_zt));
  /* t_j - s_j as a TwoSum pair: exact at any offset between the two. */
  float32x4_t a = vsubq_f32(y, x), bb = vsubq_f32(a, y);
  float32x4_t a_lo = vaddq_f32(vsubq_f32(y, vsubq_f32(a, bb)), vsubq_f32(vnegq_f32(x), bb));
  float32x4_t d = vfmaq_f32(vdupq_n_f32(row->log_zs_zt),
                            vaddq_f32(vsubq_f32(a, vdupq_n_f32(row->max_gap)),
                                      vsubq_f32(a_lo, vdupq_n_f32(row->max_gap_lo))),
                            vdupq_n_f32(row->inv_temp));
  /* The scalar ternary as a select: the polynomial of NaN or +-inf (masked
   * classes) is computed but never chosen. |d| < band is false for NaN. */
  uint32x4_t band = vcaltq_f32(d, vdupq_n_f32(KD_EXPM1_BAND));
  float32x4_t diff = vbslq_f32(band, vnegq_f32(vmulq_f32(q, kd_expm1f_band(d))), vsubq_f32(q, r));
  float32x4_t rcp = vdivq_f32(vdupq_n_f32(1.0f), vaddq_f32(q, eps));
  float32x4_t w = vmulq_f32(r, rcp), u = vmulq_f32(vaddq_f32(diff, eps), rcp);
  *f = vfmaq_f32(*f, r, kd_logf(vaddq_f32(q, eps)));
  *fq = vaddq_f32(*fq, q);
  *fqw = vfmaq_f32(*fqw, q, w);
  *fqu = vfmaq_f32(*fqu, q, u);
  uint32x4_t u_form = vcgtq_f32(w, vdupq_n_f32(0.5f));
  /* maxnm, like the scalar "x > m ? x : m", never lets a NaN win. */
  float32x4_t size = vmulq_f32(vmulq_f32(q, vaddq_f32(vabsq_f32(diff), eps)), rcp);
  *u_size = vbslq_f32(u_form, vmaxnmq_f32(*u_size, size), *u_size);
  /* -q by the sign bit, so a q of +0 becomes -0 and still marks the u-form. */
  *q_out = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(q),
                                           vandq_u32(u_form, vdupq_n_u32(0x80000000u))));
  *v_out = vbslq_f32(u_form, u, w);
}

double kd_f32_cestats_neon(size_t n, const float *s, const float *t, float *es_q,
                           float *et_v, const kd_ce_row *row, kd_ce_sums *sums) {
  double sum = 0.0, dq = 0.0, dqw = 0.0, dqu = 0.0;
  float32x4_t u_size = vdupq_n_f32(0.0f);
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t f[KD_U], fq[KD_U], fqw[KD_U], fqu[KD_U], q, v;
    for (int k = 0; k < KD_U; k++) f[k] = fq[k] = fqw[k] = fqu[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        kd_cestats_vec(vld1q_f32(s + i), vld1q_f32(t + i), vld1q_f32(es_q + i),
                       vld1q_f32(et_v + i), row, &q, &v, &f[k], &fq[k], &fqw[k], &fqu[k],
                       &u_size);
        vst1q_f32(es_q + i, q);
        vst1q_f32(et_v + i, v);
      }
    }
    for (; j + W <= end; j += W) {
      kd_cestats_vec(vld1q_f32(s + j), vld1q_f32(t + j), vld1q_f32(es_q + j),
                     vld1q_f32(et_v + j), row, &q, &v, &f[0], &fq[0], &fqw[0], &fqu[0],
                     &u_size);
      vst1q_f32(es_q + j, q);
      vst1q_f32(et_v + j, v);
    }
    if (j < end) {
      /* Padding: q = r = 0 and finite logits (d = log(zs/zt) - max_gap/T, maybe
       * +-inf, never NaN), so w = 0, u = 1, every term is 0 and the lane is
       * not in the u-form (u_size untouched). */
      size_t k = end - j;
      kd_cestats_vec(kd_neon_load_tail(s + j, k, 0.0f), kd_neon_load_tail(t + j, k, 0.0f),
                     kd_neon_load_tail(es_q + j, k, 0.0f), kd_neon_load_tail(et_v + j, k, 0.0f),
                     row, &q, &v, &f[0], &fq[0], &fqw[0], &fqu[0], &u_size);
      kd_neon_store_tail(es_q + j, k, q);
      kd_neon_store_tail(et_v + j, k, v);
      j = end;
    }
    sum += kd_hsum_acc(f);
    dq += kd_hsum_acc(fq);
    dqw += kd_hsum_acc(fqw);
    dqu += kd_hsum_acc(fqu);
  }
  sums->q = dq;
  sums->qw = dqw;
  sums->qu = dqu;
  sums->u_size = vmaxnmvq_f32(u_size);
  return sum;
}

/* All ones except the lane of skip, when skip falls in [j, j + W). */
static inline uint32x4_t kd_keep(size_t skip, size_t j) {
  static const uint32_t lane[W + 1][W] = {
      {0, ~0u, ~0u, ~0u}, {~0u, 0, ~0u, ~0u}, {~0u, ~0u, 0, ~0u}, {~0u, ~0u, ~0u, 0},
      {~0u, ~0u, ~0u, ~0u}};
  return vld1q_u32(lane[skip - j < W ? skip - j : W]); /* skip < j wraps to "all" */
}

/* One vector of pass 4: the sign of q_signed picks the u-form bracket. The
 * gradient into *g, the size of what its bracket cancels from into *e. */
static inline void kd_cegrad_vec(float32x4_t q_signed, float32x4_t v, const kd_ce_row *row,
                                 float32x4_t *g, float32x4_t *e) {
  const float32x4_t qs = vdupq_n_f32(row->q_sum);
  float32x4_t b_u = vfmaq_f32(vdupq_n_f32(-row->qu_sum), v, qs);
  float32x4_t b_w = vfmsq_f32(vdupq_n_f32(row->qw_sum), v, qs);
  /* All ones where the sign bit is set (-0 included). */
  uint32x4_t u_form = vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_f32(q_signed), 31));
  float32x4_t b = vbslq_f32(u_form, b_u, b_w);
  float32x4_t sum_size = vbslq_f32(u_form, vdupq_n_f32(fabsf(row->qu_sum)),
                                   vdupq_n_f32(fabsf(row->qw_sum)));
  float32x4_t size = vfmaq_f32(sum_size, vabsq_f32(v), qs);
  float32x4_t q = vabsq_f32(q_signed);
  *g = vmulq_f32(vmulq_f32(vdupq_n_f32(row->grad_scale), q), b);
  *e = vmulq_f32(vmulq_f32(vdupq_n_f32(fabsf(row->grad_scale)), q), size);
}

/* Adds g to the sum and the maxima, except in the lane of skip (whose lanes
 * then hold 0, which no maximum of absolute values can exceed). maxnm, like
 * the scalar comparisons, never lets a NaN win. */
static inline void kd_cegrad_acc(float32x4_t g, float32x4_t e, uint32x4_t keep, float32x4_t *f,
                                 float32x4_t *max_abs, float32x4_t *max_err) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  g = vbslq_f32(keep, g, zero);
  *f = vaddq_f32(*f, g);
  *max_abs = vmaxnmq_f32(*max_abs, vabsq_f32(g));
  *max_err = vmaxnmq_f32(*max_err, vbslq_f32(keep, e, zero));
}

void kd_f32_cegrad_neon(size_t n, const float *q_signed, const float *v, float *grad,
                        const kd_ce_row *row_in, size_t skip, kd_grad_stats *stats) {
  /* A local copy of *row: see kd_f32_cegrad_avx512 (the same aliasing; not
   * timed on ARM, only under qemu). */
  const kd_ce_row row_copy = *row_in, *row = &row_copy;
  double others = 0.0;
  float32x4_t max_abs = vdupq_n_f32(0.0f), max_err = max_abs, g, e;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float32x4_t f[KD_U];
    for (int k = 0; k < KD_U; k++) f[k] = vdupq_n_f32(0.0f);
    for (; j + KD_U * W <= end; j += KD_U * W) {
      for (int k = 0; k < KD_U; k++) {
        size_t i = j + k * W;
        kd_cegrad_vec(vld1q_f32(q_signed + i), vld1q_f32(v + i), row, &g, &e);
        vst1q_f32(grad + i, g);
        kd_cegrad_acc(g, e, kd_keep(skip, i), &f[k], &max_abs, &max_err);
      }
    }
    for (; j + W <= end; j += W) {
      kd_cegrad_vec(vld1q_f32(q_signed + j), vld1q_f32(v + j), row, &g, &e);
      vst1q_f32(grad + j, g);
      kd_cegrad_acc(g, e, kd_keep(skip, j), &f[0], &max_abs, &max_err);
    }
    if (j < end) { /* padding: q = 0 and v = 0, so g = e = 0 */
      size_t k = end - j;
      kd_cegrad_vec(kd_neon_load_tail(q_signed + j, k, 0.0f),
                    kd_neon_load_tail(v + j, k, 0.0f), row, &g, &e);
      kd_neon_store_tail(grad + j, k, g);
      kd_cegrad_acc(g, e, kd_keep(skip, j), &f[0], &max_abs, &max_err);
      j = end;
    }
    others += kd_hsum_acc(f);
  }
  stats->others = others;
  stats->max_abs = vmaxnmvq_f32(max_abs);
  stats->max_err = vmaxnmvq_f32(max_err);
}
