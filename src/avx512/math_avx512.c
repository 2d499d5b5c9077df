/* Array forms of the AVX-512 inline exp and log, and of SLEEF's (math_arrays.h). */
#include "vec_avx512.h"
#include "math_avx512.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf16_u10avx512f
#define KD_SLEEF_LOG_U10 Sleef_logf16_u10avx512f
#define KD_SLEEF_LOG_U35 Sleef_logf16_u35avx512f
#endif
#include "math_arrays.h"
