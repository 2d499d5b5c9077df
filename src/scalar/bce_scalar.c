/* BCE-with-logits row passes, portable C (libm), the template of
 * src/bce_passes.h, which has the math. One lane, so sums are double. */
#include <math.h>
#include "kernels.h"

/* softplus(x) - sigmoid(y) x = |x| sigmoid(-sign(x) y) + log1p(exp(-|x|)):
 * two terms >= 0, no cancellation. c = sigmoid(-|y|) = e/(1+e), e = exp(-|y|);
 * sigmoid(-sign(x) y) is c where x and y have the same sign, else 1/(1+e).
 * 0 * y makes a NaN or infinity in y show in the sum; one in x shows through
 * |x| sig. */
static inline float bce_term(float x, float y, float ex, float ey) {
  float rcp = 1.0f / (1.0f + ey);
  float sig = (x >= 0.0f) == (y >= 0.0f) ? ey * rcp : rcp;
  return fabsf(x) * sig + log1pf(ex) + 0.0f * y;
}

/* sigmoid(x) - sigmoid(y) = -sigmoid(x) sigmoid(-y) expm1(y - x) near x == y,
 * else sigmoid(x) sigmoid(-y) - sigmoid(y) sigmoid(-x) (cancels by at most
 * 2.6x there); each sigmoid 1/(1+e) or e/(1+e), e = exp(-|z|). */
static inline float bce_grad(float x, float y, float ex, float ey) {
  float rx = 1.0f / (1.0f + ex), ry = 1.0f / (1.0f + ey);
  float cx = ex * rx, cy = ey * ry; /* sigmoid(-|x|), sigmoid(-|y|) */
  float sig_x = x >= 0.0f ? rx : cx, sig_nx = x >= 0.0f ? cx : rx;
  float sig_y = y >= 0.0f ? ry : cy, sig_ny = y >= 0.0f ? cy : ry;
  float d = y - x;
  if (fabsf(d) < KD_EXPM1_BAND) return -(sig_x * sig_ny) * expm1f(d);
  return sig_x * sig_ny - sig_y * sig_nx;
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
