/* BCE-with-logits row passes, aarch64 AdvSIMD: src/bce_passes.h over vec_neon.h. */
#include "vec_neon.h"
#include "bce_passes.h"
