// comb::kernels::detail parameter initialisation: a tiny counter-free generator
// (splitmix64) so that the same seed gives the same weights on every platform and standard
// library. Header-only; each caller owns its state, so it is thread-safe.
#pragma once

#include "kernels/tensor.hpp"

#include <cstdint>

namespace comb::kernels::detail {

/// Next 64 random bits of `state`.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Fills a CPU f32 tensor with uniform values in [-bound, bound).
inline void fill_uniform(tensor& t, float bound, uint64_t& state) {
  auto* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    float u = static_cast<float>(splitmix64(state) >> 40) * (1.0f / 16777216.0f);
    p[i] = (2.0f * u - 1.0f) * bound;
  }
}

} // namespace comb::kernels::detail
