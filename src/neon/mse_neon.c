/* MSE row passes, aarch64 AdvSIMD: src/mse_passes.h over vec_neon.h. */
#include "vec_neon.h"
#include "mse_passes.h"
