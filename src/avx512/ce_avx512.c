/* Cross-entropy row passes, AVX-512 (F+BW+DQ+VL): src/ce_passes.h and src/ce_short_passes.h
 * over vec_avx512.h. */
#include "vec_avx512.h"
#include "ce_passes.h"
#include "ce_short_passes.h"
