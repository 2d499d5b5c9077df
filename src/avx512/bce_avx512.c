/* BCE-with-logits row passes, AVX-512 (F+BW+DQ+VL): src/bce_passes.h over vec_avx512.h. */
#include "vec_avx512.h"
#include "bce_passes.h"
