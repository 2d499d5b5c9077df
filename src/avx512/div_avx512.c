/* Soft cross-entropy, KL, reverse KL and JSD row passes, AVX-512 (F+BW+DQ+VL): src/div_passes.h
 * and src/jsd_passes.h over vec_avx512.h. */
#include "vec_avx512.h"
#include "div_passes.h"
#include "jsd_passes.h"
