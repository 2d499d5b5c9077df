/* Soft cross-entropy, KL, reverse KL and JSD row passes, AVX2 + FMA: src/div_passes.h
 * and src/jsd_passes.h over vec_avx2.h. */
#include "vec_avx2.h"
#include "div_passes.h"
#include "jsd_passes.h"
