/* BCE-with-logits row passes, AVX2 + FMA: src/bce_passes.h over vec_avx2.h. */
#include "vec_avx2.h"
#include "bce_passes.h"
