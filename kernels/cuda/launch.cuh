// Launch helpers shared by the ops' CUDA versions (kernels/ops/<op>.cu). Internal to
// kernels; compiled by nvcc only.
#pragma once

#include <cstdint>

namespace comb::kernels::cuda::detail {

/// Blocks for a grid-stride loop over `total` elements: at least 1, at most 65535.
inline int grid_for(int64_t total, int block) {
  int64_t g = (total + block - 1) / block;
  return static_cast<int>(g > 65535 ? 65535 : (g < 1 ? 1 : g));
}

} // namespace comb::kernels::cuda::detail
