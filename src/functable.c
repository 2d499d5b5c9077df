/*
 * The function table: one kd_kernels per ISA built in, and the one in use,
 * chosen once (KDLOSS_ISA, else the best the CPU supports) and changed only
 * by kd_set_isa. Reading it is one atomic load per API call.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define KD_TABLE(name, id)                                                          \
  static const kd_kernels kd_table_##name = {                                        \
      .isa = id,                                                                     \
      .rmax2 = kd_f32_rmax2_##name,                                                  \
      .expsum2 = kd_f32_expsum2_##name,                                              \
      .expsum2rkl = kd_f32_expsum2rkl_##name,                                        \
      .celoss = kd_f32_celoss_##name,                                                \
      .cestats = kd_f32_cestats_##name,                                              \
      .cegrad = kd_f32_cegrad_##name,                                                \
      .rklgrad = kd_f32_rklgrad_##name,                                              \
      .ceshort = kd_f32_ceshort_##name,                                              \
      .klsum = kd_f32_klsum_##name,                                                  \
      .divloss = kd_f32_divloss_##name,                                              \
      .divstats = kd_f32_divstats_##name,                                            \
      .jsdfast = kd_f32_jsdfast_##name,                                              \
      .mse = kd_f32_mse_##name,                                                      \
      .msegrad = kd_f32_msegrad_##name,                                              \
      .bce = kd_f32_bce_##name,                                                      \
      .bcegrad = kd_f32_bcegrad_##name,                                              \
  };

KD_TABLE(scalar, KD_ISA_SCALAR)
#if KD_HAVE_AVX2
KD_TABLE(avx2, KD_ISA_AVX2)
#endif
#if KD_HAVE_AVX512
KD_TABLE(avx512, KD_ISA_AVX512)
#endif
#if KD_HAVE_NEON
KD_TABLE(neon, KD_ISA_NEON)
#endif

static const kd_kernels *built_in(kd_isa isa) {
  switch (isa) {
  case KD_ISA_SCALAR: return &kd_table_scalar;
#if KD_HAVE_AVX2
  case KD_ISA_AVX2: return &kd_table_avx2;
#endif
#if KD_HAVE_AVX512
  case KD_ISA_AVX512: return &kd_table_avx512;
#endif
#if KD_HAVE_NEON
  case KD_ISA_NEON: return &kd_table_neon;
#endif
  default: return NULL;
  }
}

const kd_kernels *kd_kernels_for(kd_isa isa) {
  if (isa == KD_ISA_AUTO) {
    static const kd_isa order[] = {KD_ISA_AVX512, KD_ISA_AVX2, KD_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
      const kd_kernels *k = kd_kernels_for(order[i]);
      if (k) return k;
    }
    return &kd_table_scalar;
  }
  const kd_kernels *k = built_in(isa);
  return k && kd_cpu_has(isa) ? k : NULL;
}

static _Atomic(const kd_kernels *) kd_current;

/* KDLOSS_ISA, read once: a bad value is ignored as a failed kd_set_isa is. */
static const kd_kernels *initial_choice(void) {
  const char *env = getenv("KDLOSS_ISA");
  if (env) {
    for (kd_isa isa = KD_ISA_AUTO; isa <= KD_ISA_NEON; isa++) {
      if (strcmp(env, kd_isa_name(isa)) == 0) {
        const kd_kernels *k = kd_kernels_for(isa);
        if (k) return k;
      }
    }
  }
  return kd_kernels_for(KD_ISA_AUTO);
}

const kd_kernels *kd_kernels_current(void) {
  const kd_kernels *k = atomic_load_explicit(&kd_current, memory_order_acquire);
  if (k) return k;
  /* First use. Two threads may both compute the choice; the first to store wins
   * and the other adopts it, so every thread sees one table. */
  const kd_kernels *expected = NULL, *choice = initial_choice();
  if (atomic_compare_exchange_strong_explicit(&kd_current, &expected, choice,
                                              memory_order_acq_rel, memory_order_acquire))
    return choice;
  return expected;
}

KD_API kd_status kd_set_isa(kd_isa isa) {
  const kd_kernels *k = kd_kernels_for(isa);
  if (!k) return KD_ERR_UNSUPPORTED;
  atomic_store_explicit(&kd_current, k, memory_order_release);
  return KD_OK;
}

KD_API kd_isa kd_get_isa(void) {
  return kd_kernels_current()->isa;
}

KD_API int kd_isa_supported(kd_isa isa) {
  return kd_kernels_for(isa) != NULL; /* NULL for values outside kd_isa too */
}

KD_API const char *kd_isa_name(kd_isa isa) {
  switch (isa) {
  case KD_ISA_AUTO: return "auto";
  case KD_ISA_SCALAR: return "scalar";
  case KD_ISA_AVX2: return "avx2";
  case KD_ISA_AVX512: return "avx512";
  case KD_ISA_NEON: return "neon";
  default: return "unknown";
  }
}
