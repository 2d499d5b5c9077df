/* MSE row passes, portable C. See src/kernels.h. */
#include "kernels.h"

double kd_f32_mse_scalar(size_t n, const float *s, const float *t) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float f = 0.0f;
    for (; j < end; j++) {
      float d = s[j] - t[j];
      f += d * d;
    }
    sum += f;
  }
  return sum;
}

double kd_f32_msegrad_scalar(size_t n, const float *s, const float *t,
                             float scale, float *grad) {
  double sum = 0.0;
  for (size_t j = 0; j < n;) {
    size_t end = kd_block_end(j, n);
    float f = 0.0f;
    for (; j < end; j++) {
      float d = s[j] - t[j];
      f += d * d;
      grad[j] = scale * d;
    }
    sum += f;
  }
  return sum;
}
