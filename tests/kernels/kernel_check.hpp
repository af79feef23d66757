// Helpers for the kernels suites: seeded random tensors and the llm.c-style comparison
// (tolerance 1e-4 + |ref| * eps, non-finite values must match, first mismatches printed).
#pragma once

#include "kernels/backend.hpp"
#include "kernels/tensor.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

namespace comb::kernels::test {

/// Uniform f32 values in [lo, hi) from `rng`.
inline tensor random_f32(const shape& s, std::mt19937_64& rng, float lo = -1, float hi = 1) {
  auto t = tensor::zeros(s);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = d(rng);
  return t;
}

/// Uniform i32 values in [0, n).
inline tensor random_i32(const shape& s, std::mt19937_64& rng, int32_t n) {
  auto t = tensor::zeros(s, dtype::i32);
  std::uniform_int_distribution<int32_t> d(0, n - 1);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<int32_t>()[i] = d(rng);
  return t;
}

/// A CPU copy (for results of a device backend).
inline tensor host(const tensor& t) {
  if (t.device() == device::cpu)
    return t;
  auto h = t.to(device::cpu);
  REQUIRE(h);
  return *h;
}

/// Number of elements of `got` outside 1e-4 + |ref| * eps of `ref` (non-finite must match
/// exactly in kind); prints the first few mismatches with `what`.
inline int64_t mismatches(const std::string& what, const tensor& ref_t, const tensor& got_t,
                          float eps = 1e-4f) {
  auto ref = host(ref_t), got = host(got_t);
  if (ref.shape() != got.shape() || ref.dtype() != got.dtype()) {
    MESSAGE(what << ": shape/dtype " << got.describe() << " vs reference " << ref.describe());
    return std::max<int64_t>(1, ref.numel());
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    double r, g;
    switch (ref.dtype()) {
    case dtype::f32:
      r = ref.data<float>()[i], g = got.data<float>()[i];
      break;
    case dtype::i32:
      r = ref.data<int32_t>()[i], g = got.data<int32_t>()[i];
      break;
    case dtype::u8:
      r = ref.data<uint8_t>()[i], g = got.data<uint8_t>()[i];
      break;
    default:
      r = ref.data<int8_t>()[i], g = got.data<int8_t>()[i];
    }
    bool ok;
    if (!std::isfinite(r) || !std::isfinite(g))
      ok = (std::isnan(r) && std::isnan(g)) || r == g;
    else
      ok = std::fabs(r - g) <= 1e-4 + std::fabs(r) * eps;
    if (!ok && bad++ < 5)
      MESSAGE(what << ": element " << i << " is " << g << ", reference " << r);
  }
  return bad;
}

} // namespace comb::kernels::test
