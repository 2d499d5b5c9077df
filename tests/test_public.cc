// The installed view of kdloss: the public header compiled as C++ (its
// extern "C" guard), linked against the shared library alone (only the
// exported symbols). Checks properties that need no reference: statuses,
// finite results, a cross-entropy gradient that sums to zero over each row
// (softmax's gradient does), an MSE gradient equal to 2(s - t)/n.
#include <kdloss.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

static int failures = 0;
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
      failures++;                                                        \
    }                                                                    \
  } while (0)

int main() {
  char want[32];
  std::snprintf(want, sizeof want, "%d.%d.%d", KDLOSS_VERSION_MAJOR, KDLOSS_VERSION_MINOR,
                KDLOSS_VERSION_PATCH);
  CHECK(std::strcmp(kd_version_string(), want) == 0);
  const size_t rows = 4, cols = 37;
  std::vector<float> s(rows * cols), t(rows * cols), g(rows * cols);
  for (size_t i = 0; i < s.size(); i++) {
    s[i] = std::sin(0.37f * (float)i) * 3.0f;
    t[i] = std::cos(0.11f * (float)i) * 2.0f;
  }
  for (int isa = KD_ISA_SCALAR; isa <= KD_ISA_NEON; isa++) {
    if (!kd_isa_supported((kd_isa)isa)) continue;
    CHECK(kd_set_isa((kd_isa)isa) == KD_OK);
    float loss = -1.0f;
    CHECK(kd_loss_grad_f32(KD_CROSS_ENTROPY, 1.0f, 2.0f, rows, cols, s.data(), cols, t.data(),
                           cols, &loss, g.data(), cols) == KD_OK);
    CHECK(std::isfinite(loss) && loss > 0.0f);
    for (size_t i = 0; i < rows; i++) {
      double sum = 0.0, mag = 0.0;
      for (size_t j = 0; j < cols; j++) {
        sum += g[i * cols + j];
        mag += std::fabs(g[i * cols + j]);
      }
      CHECK(mag > 0.0 && std::fabs(sum) <= 1e-5 * mag);
    }
    CHECK(kd_loss_grad_f32(KD_MSE, 1.0f, 0.0f, rows, cols, s.data(), cols, t.data(), cols,
                           &loss, g.data(), cols) == KD_OK);
    for (size_t k = 0; k < s.size(); k++) {
      double want_g = 2.0 * ((double)s[k] - (double)t[k]) / (double)s.size();
      CHECK(std::fabs(g[k] - want_g) <= 1e-6 * std::fabs(want_g) + 1e-12);
    }
    std::printf("public API on %s: ok\n", kd_isa_name(kd_get_isa()));
  }
  CHECK(kd_loss_f32((kd_distance)8, 1, 1, 1, 1, s.data(), 1, t.data(), 1, nullptr) ==
        KD_ERR_DISTANCE);
  std::printf("%d failed\n", failures);
  return failures != 0;
}
