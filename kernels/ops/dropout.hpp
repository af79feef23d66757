// comb::kernels inverted dropout with a counter-based generator: element i is kept when
// dropout_keep(seed, i, p), a pure function (splitmix64 of seed and i), so every backend
// and thread count draws the same mask.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

/// True when element `i` survives dropout with probability p of dropping.
inline bool dropout_keep(uint64_t seed, uint64_t i, float p) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // 24 random bits -> [0, 1).
  float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  return u >= p;
}

void dropout_ref(const float* x, int64_t n, float p, uint64_t seed, float* y, uint8_t* mask);
void dropout_cpu(const float* x, int64_t n, float p, uint64_t seed, float* y, uint8_t* mask);

void dropout_backward_ref(const float* dy, const uint8_t* mask, int64_t n, float p, float* dx);
void dropout_backward_cpu(const float* dy, const uint8_t* mask, int64_t n, float p, float* dx);

} // namespace comb::kernels
