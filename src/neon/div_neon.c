/* Soft cross-entropy, KL, reverse KL and JSD row passes, aarch64 AdvSIMD: src/div_passes.h
 * and src/jsd_passes.h over vec_neon.h. */
#include "vec_neon.h"
#include "div_passes.h"
#include "jsd_passes.h"
