/* Cross-entropy row passes, aarch64 AdvSIMD: src/ce_passes.h and src/ce_short_passes.h
 * over vec_neon.h. */
#include "vec_neon.h"
#include "ce_passes.h"
#include "ce_short_passes.h"
