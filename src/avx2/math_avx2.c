/* Array forms of the AVX2 inline exp and log, and of SLEEF's (math_arrays.h). */
#include "vec_avx2.h"
#include "math_avx2.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf8_u10avx2
#define KD_SLEEF_LOG_U10 Sleef_logf8_u10avx2
#define KD_SLEEF_LOG_U35 Sleef_logf8_u35avx2
#endif
#include "math_arrays.h"
