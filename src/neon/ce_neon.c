/* Cross-entropy row passes, aarch64 AdvSIMD: src/ce_passes.h over vec_neon.h. */
#include "vec_neon.h"
#include "ce_passes.h"
