/* MSE row passes, portable C, the template of src/mse_passes.h. See
 * src/kernels.h; one lane, so sums are double. */
#include "kernels.h"

double kd_f32_mse_scalar(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    float d = s[j] - t[j];
    sum += d * d;
  }
  return sum;
}

double kd_f32_msegrad_scalar(size_t n, const float *s, const float *t,
                             float scale, float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n; j++) {
    float d = s[j] - t[j];
    sum += d * d;
    grad[j] = scale * d;
  }
  return sum;
}
