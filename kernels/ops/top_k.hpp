// comb::kernels top-k: the k largest values of each row, descending, ties to the lower
// index, with their indices. NaN sorts below every number.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void top_k_ref(const float* x, int64_t rows, int64_t c, int k, float* values, int32_t* indices);
void top_k_cpu(const float* x, int64_t rows, int64_t c, int k, float* values, int32_t* indices);

} // namespace comb::kernels
