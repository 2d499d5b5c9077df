/* Array forms of the NEON inline exp and log, and of SLEEF's (math_arrays.h). */
#include "vec_neon.h"
#include "math_neon.h"
#if KD_HAVE_SLEEF
#include <sleef.h>
#define KD_SLEEF_EXP_U10 Sleef_expf4_u10advsimd
#define KD_SLEEF_LOG_U10 Sleef_logf4_u10advsimd
#define KD_SLEEF_LOG_U35 Sleef_logf4_u35advsimd
#endif
#include "math_arrays.h"
