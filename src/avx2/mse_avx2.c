/* MSE row passes, AVX2 + FMA: src/mse_passes.h over vec_avx2.h. */
#include "vec_avx2.h"
#include "mse_passes.h"
