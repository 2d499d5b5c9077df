/*
 * What the running CPU and OS can execute. An ISA counts only when the CPU
 * has the instructions AND the OS saves the registers they use (XCR0): a CPU
 * with AVX-512 under an OS that does not save ZMM state must not use it.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}

int kd_cpu_has(kd_isa isa) {
  unsigned int a, b, c, d;
  if (isa == KD_ISA_SCALAR) return 1;
  if (isa != KD_ISA_AVX2 && isa != KD_ISA_AVX512) return 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!(fma && osxsave && avx)) return 0;
  unsigned long long xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return 0; /* XMM and YMM state */
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  int avx2 = (b >> 5) & 1;
  if (isa == KD_ISA_AVX2) return avx2;
  int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  return avx2 && f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM */
}

#elif defined(__aarch64__)

int kd_cpu_has(kd_isa isa) {
  return isa == KD_ISA_SCALAR || isa == KD_ISA_NEON; /* AdvSIMD is baseline on aarch64 */
}

#else

int kd_cpu_has(kd_isa isa) {
  return isa == KD_ISA_SCALAR;
}

#endif
