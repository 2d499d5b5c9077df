/* MSE row passes, AVX-512 (F+BW+DQ+VL): src/mse_passes.h over vec_avx512.h. */
#include "vec_avx512.h"
#include "mse_passes.h"
