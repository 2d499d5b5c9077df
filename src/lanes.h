/*
 * lanes.h -- strided copies one lane at a time, for the operation layers'
 * kd_gather and kd_scatter (src/<isa>/vec_<isa>.h) where no hardware gather
 * or scatter serves. Baseline C; included after KD_LANES is defined.
 */
#ifndef KD_LANES_H
#define KD_LANES_H

#include <stddef.h>

/* b[i] = p[i * ld] for i < k, 0 for the other lanes. */
static inline void kd_lanes_from(const float *p, size_t ld, size_t k, float *b) {
  for (size_t i = 0; i < KD_LANES; i++) b[i] = i < k ? p[i * ld] : 0.0f;
}
/* p[i * ld] = b[i] for the lanes i set in bits. */
static inline void kd_lanes_to(float *p, size_t ld, unsigned bits, const float *b) {
  for (size_t i = 0; i < KD_LANES; i++)
    if (bits >> i & 1) p[i * ld] = b[i];
}

#endif /* KD_LANES_H */
