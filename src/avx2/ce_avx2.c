/* Cross-entropy row passes, AVX2 + FMA: src/ce_passes.h and src/ce_short_passes.h
 * over vec_avx2.h. */
#include "vec_avx2.h"
#include "ce_passes.h"
#include "ce_short_passes.h"
