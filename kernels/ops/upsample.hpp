// comb::kernels NHWC upsampling by an integer factor: nearest, or bilinear with
// half-pixel centres and edge clamping (PyTorch align_corners=False).
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void upsample_ref(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                  const upsample_params& p, float* y);
void upsample_cpu(const float* x, int64_t n, int64_t h, int64_t w, int64_t c,
                  const upsample_params& p, float* y);

} // namespace comb::kernels
