/* BCE-with-logits row passes, portable C (libm), the template of
 * src/bce_passes.h, which has the math. One lane, so sums are double. */
#include <math.h>
#include "kernels.h"

/* softplus(x) - sigmoid(y) x = |x| sigmoid(-sign(x) y) + log1p(exp(-|x|)):
 * two terms >= 0, no cancellation. c = sigmoid(-|y|) = e/(1+e), e = exp(-|y|);
 * sigmoid(-sign(x) y) is c where x and y have the same sign, else 1/(1+e).
 * 0 * (x - y) makes any NaN or infinity in either input show in the sum. */
static inline float bce_term(float x, float y, float ex, float ey) {
  float rcp = 1.0f / (1.0f + ey);
  float sig = (x >= 0.0f) == (y >= 0.0f) ? ey * rcp : rcp;
  return fabsf(x) * sig + log1pf(ex) + 0.0f * (x - y);
}

/* sigmoid(x) - sigmoid(y). Near x == y: sign(x-y) sigmoid(hi) sigmoid(-lo)
 * (-expm1(-|x-y|)), an identity whose factors are each relatively accurate;
 * elsewhere the difference of the two sigmoids, each written through
 * c(z) = sigmoid(-|z|) so that the terms cancel by at most 8x. */
static inline float bce_grad(float x, float y, float ex, float ey) {
  float rx = 1.0f / (1.0f + ex), ry = 1.0f / (1.0f + ey);
  float cx = ex * rx, cy = ey * ry; /* sigmoid(-|x|), sigmoid(-|y|) */
  float d = x - y;
  if (fabsf(d) < KD_EXPM1_BAND) {
    int x_hi = x > y;
    float hi = x_hi ? x : y, c_hi = x_hi ? cx : cy, r_hi = x_hi ? rx : ry;
    float lo = x_hi ? y : x, c_lo = x_hi ? cy : cx, r_lo = x_hi ? ry : rx;
    float sig_hi = hi >= 0.0f ? r_hi : c_hi, sig_neg_lo = lo >= 0.0f ? c_lo : r_lo;
    float g = sig_hi * sig_neg_lo * -expm1f(-fabsf(d));
    return x_hi ? g : -g;
  }
  float sx = x >= 0.0f ? -cx : cx, sy = y >= 0.0f ? -cy : cy; /* sigmoid - (x >= 0) */
  float ones = (float)(x >= 0.0f) - (float)(y >= 0.0f);
  return (sx - sy) + ones;
}

double kd_f32_bce_scalar(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++)
    sum += bce_term(s[j], t[j], expf(-fabsf(s[j])), expf(-fabsf(t[j])));
  return sum;
}

double kd_f32_bcegrad_scalar(size_t n, const float *s, const float *t, float scale,
                             float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    float x = s[j], y = t[j], ex = expf(-fabsf(x)), ey = expf(-fabsf(y));
    sum += bce_term(x, y, ex, ey);
    grad[j] = scale * bce_grad(x, y, ex, ey);
  }
  return sum;
}
