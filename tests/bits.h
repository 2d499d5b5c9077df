/* bits.h -- a float's IEEE bits and back, without aliasing the object. */
#ifndef KD_TEST_BITS_H
#define KD_TEST_BITS_H

#include <stdint.h>
#include <string.h>

static inline float tk_f32_from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static inline uint32_t tk_f32_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

#endif /* KD_TEST_BITS_H */
