/*
 * kdloss.h -- fused, SIMD-optimised knowledge-distillation losses on CPUs.
 *
 * One header, C11, usable from C++. Every exported function is declared here.
 *
 * What it computes (student s, teacher t: rows x cols float32, row-major).
 * Each distance has a row distance d_i; z = x/T, q = softmax(s_i/T),
 * r = softmax(t_i/T) (== softmax(x)^(1/T) renormalised), sums over the row's
 * classes j, sigma(x) = 1/(1 + exp(-x)), C = cols:
 *
 *   KD_CROSS_ENTROPY (LwF):          d_i = -sum_j r_j log(q_j + 1e-5)
 *   KD_MSE (DER), T ignored:         d_i = (1/C) sum_j (s_j - t_j)^2
 *   KD_SOFT_CROSS_ENTROPY:           d_i = -sum_j r_j log q_j
 *   KD_KL_DIV:                       d_i =  sum_j r_j (log r_j - log q_j)
 *   KD_KL_DIV_REVERSE:               d_i =  sum_j q_j (log q_j - log r_j)
 *   KD_CROSS_ENTROPY_UNIFORM_EPS:    d_i = -sum_j r_j log((q_j + 1e-5/C) / (1 + 1e-5))
 *   KD_JSD, 0 < beta < 1:            d_i = beta KL(r||M) + (1-beta) KL(q||M),
 *                                          M = beta r + (1-beta) q
 *   KD_BCE_SIGMOID, T ignored:       d_i = (1/C) sum_j [softplus(s_j) - sigma(t_j) s_j]
 *                                   (= BCE(sigmoid(s_j), sigmoid(t_j)), with logits)
 *
 * Reduction, with w_i the row weight (1 when row_weight is NULL) and
 * W = sum_i w_i:
 *   KD_REDUCE_MEAN: c_i = factor * w_i / W   (all weights zero: loss 0, gradient 0)
 *   KD_REDUCE_SUM:  c_i = factor * w_i
 *   loss = sum_i c_i d_i;  row_loss[i] = factor * w_i * d_i whatever the reduction.
 * kd_loss_f32 and kd_loss_grad_f32 are kd_loss_ex_f32 with row_weight NULL,
 * KD_REDUCE_MEAN and no row_loss, bit for bit (KD_JSD: beta = 1/2).
 * A row of weight 0 is never read (padding rows may hold anything, NaN
 * included): it contributes exactly 0, its row_loss is 0 and its gradient 0.
 * So is a row whose c_i is 0 for factor 0, except that it is still checked.
 *
 * grad_ij = d loss / d s_ij, the teacher held fixed:
 *   KD_CROSS_ENTROPY:    c_i/T * q_j * (sum_k w_k q_k - w_j),  w_j = r_j / (q_j + 1e-5)
 *   KD_CROSS_ENTROPY_UNIFORM_EPS: the same with 1e-5/C for 1e-5
 *   KD_SOFT_CROSS_ENTROPY, KD_KL_DIV:  c_i/T * (q_j - r_j)
 *   KD_KL_DIV_REVERSE:   c_i/T * q_j * (L_j - sum_k q_k L_k),  L_j = log(q_j / r_j)
 *   KD_JSD:              c_i/T * q_j * (L_j - sum_k q_k L_k),  L_j = (1-beta) log(q_j / M_j)
 *   KD_MSE:              c_i * 2 (s_j - t_j) / C
 *   KD_BCE_SIGMOID:      c_i * (sigma(s_j) - sigma(t_j)) / C
 * None multiplies by T^2: factor carries it. The softmax distances are
 * computed stably (log q = (s_j - s_max)/T - log sum exp, never log of an
 * underflowed q), so they stay accurate where a float32 pipeline of the
 * literal formula would round log q to -inf.
 *
 * Masking: -inf is a valid logit of the softmax distances (a masked class:
 * probability 0, gradient 0). A class the teacher masks contributes 0
 * (0 log 0 = 0). A row entirely -inf in student or teacher, any NaN or +inf,
 * and for KD_MSE and KD_BCE_SIGMOID any infinity at all, is KD_ERR_NONFINITE.
 * Infinite distances (KD_OK, not errors):
 *   - KD_SOFT_CROSS_ENTROPY and KD_KL_DIV: a class the student masks where the
 *     teacher has mass makes d_i = +inf (loss and row_loss +-inf with the sign
 *     of factor). The gradient stays finite: it is its limit, c_i/T * (q_j - r_j)
 *     (what autograd through log_softmax gives).
 *   - KD_KL_DIV_REVERSE: a class the teacher masks where the student has mass
 *     makes d_i = +inf. The gradient has no finite limit there: grad_ij is
 *     +inf * sign(c_i) on the classes the teacher masks, -inf * sign(c_i) on
 *     the other classes the student does not mask, 0 on the classes the
 *     student masks.
 *   - KD_CROSS_ENTROPY, KD_CROSS_ENTROPY_UNIFORM_EPS and KD_JSD are always finite.
 *
 * Accuracy (every distance, every ISA, every shape, every valid input),
 * against the exact values:
 *   |loss - ref| <= max(1e-5 * |ref| + 1e-6 * sum_i |c_i|, one float ulp of ref)
 *   (sum_i |c_i| = |factor| for MEAN, |factor| sum_i w_i for SUM)
 *   max_ij |grad_ij - ref_ij| <= max(1e-5 * max_ij |ref_ij| + 1e-12 * scale,
 *                                    one float ulp of max_ij |ref_ij|)
 *   scale = max_i |c_i| / T (softmax distances), max_i |c_i| / C (BCE),
 *   2 max_i |c_i| / C (MSE)
 * and for each row_loss[i] the loss bound with |factor| w_i for sum_i |c_i|.
 * A loss or gradient element beyond float's range is +-inf with KD_OK (IEEE
 * overflow), on every ISA, in place or not.
 * The same ISA gives bitwise-identical results for the same inputs on every call.
 *
 * Memory: no alignment is required of any pointer. Element (i, j) of a matrix
 * with leading dimension ld is p[i*ld + j]; only the rows x cols elements so
 * addressed are read or written (row_weight: rows floats). grad may be
 * exactly student (grad == student and ld_grad == ld_student: computed in
 * place); any other overlap of the address span of grad with an input's span
 * is KD_ERR_ALIAS, and so is loss or row_loss overlapping an input (row_weight
 * included), grad, or each other. Inputs may alias each other (student ==
 * teacher is fine).
 *
 * Errors: argument errors are detected before any work and leave every output
 * untouched. KD_ERR_NONFINITE is found while computing: it sets *loss to NaN
 * (when loss is not NULL) and may leave grad and row_loss partly written. The library never
 * aborts, prints or exits.
 *
 * Threads: every function is reentrant and thread-safe. The implementation is
 * chosen once, on first use, from the CPU's features (see kd_set_isa). A call
 * runs on the calling thread alone unless a pool is configured (see
 * kd_set_num_threads and kd_set_parallel); results are the same bits either way.
 */
#ifndef KDLOSS_H
#define KDLOSS_H

#include <stddef.h>

#define KDLOSS_VERSION_MAJOR 0
#define KDLOSS_VERSION_MINOR 1
#define KDLOSS_VERSION_PATCH 0
#define KDLOSS_VERSION_NUMBER \
  (KDLOSS_VERSION_MAJOR * 10000 + KDLOSS_VERSION_MINOR * 100 + KDLOSS_VERSION_PATCH)

/* KD_API marks the exported symbols; everything else in the library is hidden. */
#if defined(_WIN32) && defined(KDLOSS_BUILDING_DLL)
#  define KD_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define KD_API __attribute__((visibility("default")))
#else
#  define KD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_distance {
  KD_CROSS_ENTROPY,             /* -sum_j r_j log(q_j + 1e-5)                   (LwF) */
  KD_MSE,                       /* mean_j (s_j - t_j)^2                          (DER) */
  KD_SOFT_CROSS_ENTROPY,        /* -sum_j r_j log q_j                           (PyCIL, Mammoth) */
  KD_KL_DIV,                    /*  sum_j r_j (log r_j - log q_j)               (Avalanche, torchdistill, Megatron) */
  KD_KL_DIV_REVERSE,            /*  sum_j q_j (log q_j - log r_j)               (Megatron's reverse option) */
  KD_CROSS_ENTROPY_UNIFORM_EPS, /* -sum_j r_j log((q_j + 1e-5/C) / (1 + 1e-5))  (FACIL) */
  KD_JSD,                       /* beta KL(r||M) + (1-beta) KL(q||M), M = beta r + (1-beta) q (Liger, GKD) */
  KD_BCE_SIGMOID                /* mean_j of BCE(sigmoid(s_j), sigmoid(t_j)), no temperature (iCaRL) */
} kd_distance;

typedef enum kd_reduction { KD_REDUCE_MEAN, KD_REDUCE_SUM } kd_reduction;

typedef enum kd_isa {
  KD_ISA_AUTO,   /* kd_set_isa only: the best ISA this CPU and build support */
  KD_ISA_SCALAR, /* portable C, always available */
  KD_ISA_AVX2,   /* x86-64 AVX2 + FMA */
  KD_ISA_AVX512, /* x86-64 AVX-512 F+BW+DQ+VL */
  KD_ISA_NEON    /* aarch64 AdvSIMD */
} kd_isa;

typedef enum kd_status {
  KD_OK = 0,
  KD_ERR_NULL,        /* a required pointer is NULL */
  KD_ERR_SHAPE,       /* rows or cols is 0, or a size overflows size_t */
  KD_ERR_STRIDE,      /* a leading dimension is smaller than cols */
  KD_ERR_DISTANCE,    /* not a kd_distance value */
  KD_ERR_TEMPERATURE, /* cross-entropy with temperature NaN, infinite or <= 0 */
  KD_ERR_FACTOR,      /* factor NaN or infinite */
  KD_ERR_NONFINITE,   /* NaN or +inf in an input, or a row entirely -inf; *loss is set to NaN */
  KD_ERR_ALIAS,       /* grad overlaps an input other than exactly in place */
  KD_ERR_NOMEM,       /* a needed allocation failed */
  KD_ERR_UNSUPPORTED, /* kd_set_isa: this CPU or this build lacks that ISA */
  KD_ERR_THREADS,     /* kd_set_num_threads: n < 0 or > 1024, or the pool cannot start */
  KD_ERR_WEIGHT,      /* a row weight negative, NaN or infinite */
  KD_ERR_BETA,        /* KD_JSD with beta outside (0, 1) */
  KD_ERR_REDUCTION    /* not a kd_reduction value */
} kd_status;

/*
 * Loss only. student/teacher: rows x cols with leading dimensions >= cols.
 * loss: where the scalar result goes (required).
 * Argument checks, in this order: distance (KD_ERR_DISTANCE), NULL pointers,
 * rows/cols zero or overflowing (KD_ERR_SHAPE), ld < cols (KD_ERR_STRIDE),
 * sizes again with the strides (KD_ERR_SHAPE), factor (KD_ERR_FACTOR),
 * temperature for the softmax distances (KD_ERR_TEMPERATURE: NaN, infinite, <= 0, or
 * subnormal, whose reciprocal overflows), then loss pointing into an input
 * (KD_ERR_ALIAS).
 * Scratch: cross-entropy rows of more than 2048 classes use 8*cols bytes of
 * heap per task (one task on the calling thread; on a pool, one per thread up
 * to the number of chunks, see kd_set_num_threads), all allocated before any
 * work (KD_ERR_NOMEM if it cannot be had, nothing written); narrower rows use
 * 16 KiB of stack on each thread that runs a chunk.
 */
KD_API kd_status kd_loss_f32(kd_distance distance, float factor, float temperature,
                             size_t rows, size_t cols,
                             const float *student, size_t ld_student,
                             const float *teacher, size_t ld_teacher,
                             float *loss);

/*
 * Loss and gradient with respect to the student. loss may be NULL (gradient
 * only); grad (required) receives rows x cols values with leading dimension
 * ld_grad >= cols. Same checks as kd_loss_f32; KD_ERR_FACTOR also when the
 * gradient's scale, factor/(rows*T) or 2*factor/(rows*cols), overflows float;
 * then KD_ERR_ALIAS for grad overlapping an input other than exactly in place,
 * or loss inside grad or an input.
 * Cost: a cross-entropy row whose gradient would cancel in float by more than
 * 10x (student and teacher nearly equal on nearly flat or on extremely peaked
 * rows) is recomputed in double: correct, and several times slower. So are
 * cross-entropy rows with T > 1 whose logits span more than FLT_MAX, and
 * calls whose gradient scale is below 2^-90 (cross-entropy) or FLT_MIN (MSE).
 */
KD_API kd_status kd_loss_grad_f32(kd_distance distance, float factor, float temperature,
                                  size_t rows, size_t cols,
                                  const float *student, size_t ld_student,
                                  const float *teacher, size_t ld_teacher,
                                  float *loss,
                                  float *grad, size_t ld_grad);

/*
 * Every distance, with row weights, a reduction and per-row losses (see the
 * top of this file for the formulas). p: the parameters (required);
 * temperature is ignored by KD_MSE and KD_BCE_SIGMOID, beta by all but KD_JSD.
 * loss: the reduced loss, or NULL when row_loss is given; row_loss: NULL or
 * rows floats; grad: NULL (no gradient) or rows x cols with ld_grad >= cols.
 * Argument checks, in this order: p NULL (KD_ERR_NULL), distance
 * (KD_ERR_DISTANCE), reduction (KD_ERR_REDUCTION), NULL pointers (student,
 * teacher, loss and row_loss both: KD_ERR_NULL), shapes and strides as
 * kd_loss_f32, factor (KD_ERR_FACTOR), temperature (KD_ERR_TEMPERATURE),
 * beta (KD_ERR_BETA), the weights (KD_ERR_WEIGHT), the gradient scale
 * overflowing float (KD_ERR_FACTOR), then aliasing (KD_ERR_ALIAS). Costs,
 * scratch and threads as kd_loss_f32 and kd_loss_grad_f32, and: rows of
 * KD_SOFT_CROSS_ENTROPY, KD_KL_DIV, KD_KL_DIV_REVERSE or KD_JSD whose float
 * gradient would cancel (nearly flat rows at a high temperature, mostly) are
 * recomputed in double, as is every KD_JSD row when beta < 2^-16 (with a
 * gradient: beta < 2^-7), and so
 * is every row of these four whose float passes overflow (a logit gap over T,
 * or a partial sum, beyond FLT_MAX) or whose distance is infinite. The loss
 * alone of KD_SOFT_CROSS_ENTROPY, KD_KL_DIV and KD_KL_DIV_REVERSE uses no
 * scratch.
 */
typedef struct kd_params {
  kd_distance distance;
  float factor;
  float temperature;        /* ignored by KD_MSE and KD_BCE_SIGMOID */
  float beta;               /* KD_JSD only: 0 < beta < 1 */
  kd_reduction reduction;
  const float *row_weight;  /* NULL (every weight 1) or rows weights, each finite and >= 0 */
} kd_params;

KD_API kd_status kd_loss_ex_f32(const kd_params *p, size_t rows, size_t cols,
                                const float *student, size_t ld_student,
                                const float *teacher, size_t ld_teacher,
                                float *loss,      /* NULL allowed when row_loss is given */
                                float *row_loss,  /* NULL, or rows floats */
                                float *grad, size_t ld_grad);  /* grad NULL: no gradient */

/*
 * Choose the implementation for the whole process. KD_ISA_AUTO restores the
 * automatic choice (AVX-512 > AVX2 > scalar on x86-64, NEON > scalar on
 * aarch64). An ISA this CPU or build lacks, or a value outside kd_isa, gives
 * KD_ERR_UNSUPPORTED and changes nothing. Calls already running finish on the
 * ISA they started with.
 *
 * The environment variable KDLOSS_ISA=scalar|avx2|avx512|neon|auto, read once
 * on first use, does the same as a kd_set_isa call at start-up. A value that is
 * unknown or unsupported here is ignored exactly as a failed kd_set_isa is: the
 * automatic choice stays in force. kd_get_isa() always tells the truth, so a
 * harness that forces an ISA compares kd_get_isa() with what it asked for
 * (kdloss's tests and benchmarks do).
 */
KD_API kd_status kd_set_isa(kd_isa isa);

/* The ISA in use now (never KD_ISA_AUTO). */
KD_API kd_isa kd_get_isa(void);

/* 1 if this CPU and build can run isa (KD_ISA_AUTO and KD_ISA_SCALAR: always 1). */
KD_API int kd_isa_supported(kd_isa isa);

/* "auto", "scalar", "avx2", "avx512", "neon"; "unknown" for other values. Static storage. */
KD_API const char *kd_isa_name(kd_isa isa);

/* A short English description of a status; "unknown status" for other values. */
KD_API const char *kd_status_str(kd_status status);

/*
 * Threads. A call is split into chunks of whole consecutive rows: as many
 * chunks as chunks of ceil(E / cols) rows would need, E = 4096 for
 * cross-entropy and 16384 for MSE (one row each when cols >= E), at most
 * 1024, their row counts equal to within one (the longer ones first). The
 * split depends only on the distance, rows and cols. Each chunk's
 * sum is computed in a fixed order and the chunk sums are added in chunk
 * order, so every thread count and every pool, the calling thread alone
 * included, gives bitwise the same loss and gradient. Rows are not split:
 * 8 rows keep at most 8 threads busy.
 * A call of a single chunk, or of fewer than 65536 elements (rows * cols)
 * for cross-entropy or 262144 for MSE, runs on the calling thread. With
 * KD_ERR_NONFINITE on a pool, which rows of grad were written may depend on
 * timing.
 *
 * The built-in pool (POSIX threads): n threads in all, the calling thread one
 * of them. n == 1, the default, starts no thread; n == 0 means one per online
 * CPU. Takes effect for later calls, process-wide; KD_ERR_THREADS (nothing
 * changed) for n < 0, n > 1024, or a pool that cannot start. After a call the
 * pool's threads watch for the next one for about 0.1 ms (yielding the CPU
 * now and then; not when n exceeds the CPUs), then sleep. The pool runs one
 * call at a time: a call that finds it busy with another runs on its own
 * thread rather than wait. A child of fork starts on one thread.
 * The environment variable KDLOSS_NUM_THREADS (a decimal integer), read once on
 * first use, does the same as a kd_set_num_threads call at start-up; any other
 * value, or one that call refuses, is ignored (one thread).
 */
KD_API kd_status kd_set_num_threads(int n);

/* The built-in pool's thread count (n == 0 resolved to the CPUs counted). */
KD_API int kd_get_num_threads(void);

/*
 * An engine's own pool. kdloss calls run(pool, task, ctx, count) and needs
 * task(ctx, i) run exactly once for every i in [0, count), on any threads in
 * any order, before run returns. count is at most the number of online CPUs.
 * run may be called from several threads at once (concurrent kdloss calls).
 * kd_set_parallel(run, pool) sends later parallel calls to run, whatever
 * kd_set_num_threads says; run == NULL goes back to the built-in pool. The
 * pool must stay usable until the last call that may use it has returned.
 * Always KD_OK.
 */
typedef void (*kd_task_fn)(void *ctx, size_t i);
typedef void (*kd_parallel_fn)(void *pool, kd_task_fn task, void *ctx, size_t count);
KD_API kd_status kd_set_parallel(kd_parallel_fn run, void *pool);

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
KD_API const char *kd_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* KDLOSS_H */
