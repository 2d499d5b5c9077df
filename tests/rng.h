/*
 * rng.h -- the one deterministic generator of the tests, the accuracy report
 * and the benchmarks: splitmix64, uniforms on 53 bits, Box-Muller normals.
 * tools/gen_golden.py and tools/accuracy_torch.py reproduce it bit for bit,
 * so a case's inputs are the same in C and in Python.
 */
#ifndef KD_RNG_H
#define KD_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t tk_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* [0, 1) */
static inline double tk_uniform(uint64_t *state) {
  return (double)(tk_next(state) >> 11) * 0x1.0p-53;
}

static inline double tk_normal(uint64_t *state) {
  double u = tk_uniform(state), v = tk_uniform(state);
  return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

#endif /* KD_RNG_H */
